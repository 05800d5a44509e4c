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


def test_readme_exploit_table_is_the_one_exploits_py_wrote():
    """The README's "Can the default reward be gamed?" returns are experiments/exploits.md's
    (a hand edit once put other numbers into four of its rows)."""
    import re

    readme = README.read_text()
    section = readme.split("**Can the default reward be gamed?**", 1)[1].split("\n## ", 1)[0]
    written = (ROOT / "experiments" / "exploits.md").read_text()
    names = {"melanoma": "melanoma", "NSCLC": "nsclc", "RCC": "rcc", "prostate": "prostate"}
    names |= {"B-ALL": "b_all", "LBCL": "lbcl"}

    def cells(line: str) -> list[str]:
        return [c.strip().replace("**", "").replace("−", "-") for c in line.strip("|").split("|")]

    expected = {}
    for line in written.splitlines():
        m = re.match(r"\| (\w+) \(`\w+`\) \|", line)
        if m:
            expected[m[1]] = cells(line)[1:5]
    rows = [cells(line) for line in section.splitlines() if line.startswith("| ")]
    rows = [r for r in rows if r[0] in names]
    assert [names[r[0]] for r in rows] == list(expected)
    for r in rows:
        assert r[1:5] == expected[names[r[0]]], r[0]


def test_readme_results_table_is_the_committed_aggregate():
    """The README's benchmark table (closed loop minus the best open-loop schedule, mean
    over seeds with the bootstrap CI) and its seed count are experiments/results'
    aggregate.json, not a hand copy of an earlier run."""
    import json
    import re

    readme = README.read_text()
    section = readme.split("### Results (`experiments/results/`)", 1)[1].split("\n## ", 1)[0]
    data = json.loads((ROOT / "experiments" / "results" / "aggregate.json").read_text())
    names = {"melanoma": "melanoma", "NSCLC": "nsclc", "RCC": "rcc", "prostate": "prostate"}
    names |= {"B-ALL": "b_all", "LBCL": "lbcl"}
    header = next(line for line in section.splitlines() if line.startswith("| scenario |"))
    order = {"PPO": "ppo", "A2C": "a2c", "RecurrentPPO": "recurrent_ppo"}
    order |= {"MaskablePPO": "maskable_ppo"}
    algos = [order[a] for a in re.findall(r"\b(PPO|A2C|RecurrentPPO|MaskablePPO)\b", header)]
    assert sorted(algos) == sorted(data["over_open_loop"]["melanoma"])
    seeds = re.search(r"mean over (\d+) seeds", header)
    assert seeds and {len(data["seeds"][a]) for a in algos} == {int(seeds[1])}

    def fmt(x: float) -> str:
        return f"{x:+.2f}".replace("-", "−")

    rows = [line for line in section.splitlines() if line.startswith("| ")]
    seen = set()
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] not in names:
            continue
        sc = names[cells[0]]
        seen.add(sc)
        written = [c.replace("**", "").strip() for c in cells[-1].split(" / ")]
        expected = ["{} ({}, {})".format(*map(fmt, data["over_open_loop"][sc][a])) for a in algos]
        assert written == expected, sc
    assert seen == set(names.values())
