"""The Python examples of the Markdown pages (README, docs), as the tests run them.

Every fenced block tagged ``python`` is an example that must run: the blocks of one page
build on each other, so they run in order in one namespace, as a reader would paste them
into one session.  Blocks tagged otherwise (``bash``, ``text``, ``yaml``) are not run.

A fence may be indented (inside a list item or an admonition); the block is dedented by
the fence's indentation.  Each block is compiled with the page as its file name and its
own line numbers, so a traceback points at the line of the page that failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
"""The repository root."""

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```python\b[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    flags=re.M | re.S,
)


@dataclass(frozen=True)
class Block:
    """One ``python`` block of a page."""

    source: str
    """the code, dedented"""
    line: int
    """line of the page where the code starts (1-based)"""


def python_blocks(path: str | Path) -> list[Block]:
    """The ``python`` blocks of a Markdown page, in order."""
    text = Path(path).read_text(encoding="utf-8")
    blocks = []
    for m in _FENCE.finditer(text):
        indent = m.group("indent")
        lines = m.group("body").splitlines(keepends=True)
        body = "".join(ln[len(indent) :] if ln.startswith(indent) else ln for ln in lines)
        start = text.count("\n", 0, m.start("body")) + 1
        blocks.append(Block(body, start))
    return blocks


def run_blocks(path: str | Path, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the ``python`` blocks of a page in order in one namespace; return it."""
    path = Path(path).resolve()
    ns: dict[str, Any] = {"__name__": "__docs__"} if namespace is None else namespace
    for block in python_blocks(path):
        # padded with blank lines: a traceback names the page and its line (the file name
        # is absolute, so the line is shown whatever the working directory)
        code = compile("\n" * (block.line - 1) + block.source, str(path), "exec")
        exec(code, ns)
    return ns
