"""The README's Python examples run as written (they cannot drift from the code).

The blocks build on each other (the first imports ``oncogym``), so they run in order in one
namespace, as a reader would paste them into one session.
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_examples_run_in_order(tmp_path, monkeypatch):
    assert len(BLOCKS) >= 4
    monkeypatch.chdir(tmp_path)  # anything an example writes stays in the test's folder
    namespace: dict = {"__name__": "__readme__"}
    for i, block in enumerate(BLOCKS):
        exec(compile(block, f"README.md python block {i}", "exec"), namespace)
