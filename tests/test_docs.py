"""The documentation's Python examples run as written (a broken tutorial fails here).

Each page's ``python`` blocks run in order in one namespace, in a temporary working
directory (:mod:`snippets`); ``bash`` blocks are illustrations and are not run.  A page
whose examples take more than about 30 s in all is marked ``slow`` (:data:`SLOW_PAGES`).
"""

from __future__ import annotations

import matplotlib
import numba
import pytest
import torch
import yaml
from snippets import ROOT, python_blocks, run_blocks

DOCS = ROOT / "docs"
TUTORIALS = sorted((DOCS / "tutorials").glob("*.md"))
PAGES = [*TUTORIALS, *([DOCS / "index.md"] if python_blocks(DOCS / "index.md") else [])]
SLOW_PAGES: set[str] = set()
"""Pages (paths under docs/) whose examples take more than ~30 s with compiled kernels."""


def _param(page):
    name = str(page.relative_to(DOCS))
    marks = [pytest.mark.slow] if name in SLOW_PAGES else []
    return pytest.param(page, id=name, marks=marks)


@pytest.mark.parametrize("page", [_param(p) for p in PAGES])
def test_page_examples_run(page, tmp_path, monkeypatch):
    assert python_blocks(page), f"{page.name}: no python examples"
    matplotlib.use("Agg")  # figures are written to files, never shown
    monkeypatch.chdir(tmp_path)  # anything an example writes stays in the test's folder
    threads = torch.get_num_threads(), numba.get_num_threads()
    try:
        run_blocks(page, {"__name__": "__docs__"})
    finally:  # examples may set thread counts, as a reader would; the suite goes on as before
        torch.set_num_threads(threads[0])
        numba.set_num_threads(threads[1])


def test_every_tutorial_is_in_the_navigation():
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]
    listed = {
        path
        for section in nav
        if isinstance(section, dict) and "Tutorials" in section
        for entry in section["Tutorials"]
        for path in (entry.values() if isinstance(entry, dict) else [entry])
    }
    on_disk = {f"tutorials/{p.name}" for p in TUTORIALS}
    assert on_disk == listed
