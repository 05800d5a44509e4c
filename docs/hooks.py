"""MkDocs hook: the source tree mkdocstrings reads (mkdocs.yml's handler ``paths``).

The repository maps ``oncogym.envs`` and ``oncogym.agents`` to ``envs/`` and ``agents/``
(pyproject's package-dir), which a static reader of ``src/`` cannot see; this lays the
installed package out under ``build/docs_api_src`` with symlinks.  Its ``on_config`` runs
before every plugin's (mkdocstrings keeps only search paths that exist when it starts).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parent.parent
API_SRC = ROOT / "build" / "docs_api_src"


def api_source_tree() -> None:
    pkg = API_SRC / "oncogym"
    if pkg.is_symlink() or pkg.is_file():
        pkg.unlink()
    elif pkg.exists():
        shutil.rmtree(pkg)
    pkg.mkdir(parents=True)
    for entry in (ROOT / "src" / "oncogym").iterdir():
        if entry.name not in {"envs", "agents", "__pycache__"}:
            (pkg / entry.name).symlink_to(entry)
    (pkg / "envs").symlink_to(ROOT / "envs")
    (pkg / "agents").symlink_to(ROOT / "agents")


@event_priority(100)
def on_config(config):
    api_source_tree()
    return config
