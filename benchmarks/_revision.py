"""An importable ``oncogym`` of an earlier git revision, for the benchmarks' ``--against``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

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
