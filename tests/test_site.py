"""The documentation site builds with ``mkdocs build --strict``: every generated page (envs,
scenarios, parameters, API), every link and anchor, every docstring mkdocstrings reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_docs_site_builds_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings_handlers.python")
    pytest.importorskip("mkdocs_gen_files")
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    for page in (
        "index.html",
        "envs/Melanoma-v1/index.html",
        "scenarios/melanoma/index.html",
        "model/equations/index.html",
        "model/parameters/index.html",
        "tutorials/custom-protocol/index.html",
        "api/core/index.html",
    ):
        assert (site / page).is_file(), page
    assert (site / "envs" / "Melanoma-v1.png").stat().st_size > 10_000
    # the API pages document the installed layout: oncogym.envs and oncogym.agents included
    api = (site / "api" / "agents" / "index.html").read_text(encoding="utf-8")
    assert "oncogym.agents.train" in api
