"""The README's Python examples run as written (they cannot drift from the code).

The blocks build on each other (the first imports ``oncogym``), so they run in order in one
namespace, as a reader would paste them into one session (:mod:`snippets`).
"""

from __future__ import annotations

from snippets import ROOT, python_blocks, run_blocks

README = ROOT / "README.md"


def test_readme_examples_run_in_order(tmp_path, monkeypatch):
    assert len(python_blocks(README)) >= 4
    monkeypatch.chdir(tmp_path)  # anything an example writes stays in the test's folder
    run_blocks(README, {"__name__": "__readme__"})
