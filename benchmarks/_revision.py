"""An importable ``oncogym`` of an earlier git revision, for the benchmarks' ``--against``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def tree_of(rev: str, into: Path) -> Path:
    """An importable ``oncogym`` package of git revision ``rev`` (its core, envs and
    agents assembled as the installed package lays them out); returns its parent folder,
    to put on ``PYTHONPATH``."""
    src = into / "checkout"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(src), rev],
        check=True,
        capture_output=True,
    )
    pkg = into / "path" / "oncogym"
    shutil.copytree(src / "src" / "oncogym", pkg)
    shutil.copytree(src / "envs", pkg / "envs")
    shutil.copytree(src / "agents", pkg / "agents")
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(src)],
        check=True,
        capture_output=True,
    )
    return pkg.parent


def run_worker(script: str, path: Path | None, options: list[str], out: Path) -> dict[str, Any]:
    """Run ``script --worker --json out *options`` in a subprocess importing ``oncogym`` from
    ``path`` (a :func:`tree_of` folder; ``None``: this tree) and return its JSON, checking
    that the package it measured is the one asked for (its ``info["package"]``)."""
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = str(path)
    cmd = [sys.executable, script, "--worker", "--json", str(out), *options]
    subprocess.run(cmd, check=True, env=env, cwd=tempfile.gettempdir())
    res: dict[str, Any] = json.loads(out.read_text())
    if path is not None and not res["info"]["package"].startswith(str(path)):
        raise RuntimeError(f"the reference run imported {res['info']['package']}, not {path}")
    return res
