"""Measure the cost budget of every scenario: the standard of care's new grade >= 3
toxicities per patient-episode on training patients (issue 15, item 3).

The cost of constrained RL is the environments' ``info["cost"]``: a toxicity category
costs 1 in the interval in which the patient's worst grade in it first reaches >= 3.  An
episode's costs add up to the number of categories whose worst grade is >= 3 at its end,
which is what the evaluator's ``grade3_events`` averages (no scenario patient has a grade
>= 3 on day 0).  The budget of a scenario is that figure for its standard of care
(:data:`oncogym.envs.STANDARD_OF_CARE`), treated by the evaluator
(:func:`oncogym.agents.evaluate.rollout`, default environment: weekly decisions, the
scenario's horizon) on training patients ``Cohort.train(scenario, PATIENTS, DRAW)`` —
never the test cohort the benchmark scores on.

    python experiments/constrained/budgets.py            # print the table
    python experiments/constrained/budgets.py --write    # and write each scenario YAML's
                                                         # cost_budget block

``--write`` replaces (or appends) the ``cost_budget:`` block at the end of
``src/oncogym/scenario_data/<scenario>.yaml``; the hand-written rest of the file is kept.
"""

from __future__ import annotations

import argparse
import math
import re
import textwrap
import time

from oncogym.agents.evaluate import rollout, summarise
from oncogym.agents.policies import make_baseline
from oncogym.envs import STANDARD_OF_CARE
from oncogym.scenarios import SCENARIO_DIR, Cohort, scenario_data, validate_scenario

PATIENTS = 1000
DRAW = 0
COMMAND = "python experiments/constrained/budgets.py --write"


def measure(scenario: str, patients: int = PATIENTS, draw: int = DRAW) -> dict:
    """The standard of care's grade >= 3 events per patient-episode on training patients."""
    protocol = STANDARD_OF_CARE[scenario]
    t0 = time.perf_counter()
    cohort = Cohort.train(scenario, patients, draw)
    res = rollout(make_baseline(protocol, scenario), scenario, cohort=cohort)
    events = (res.worst_grade >= 3).sum(axis=1)
    row = summarise(res)
    return {
        "scenario": scenario,
        "protocol": protocol,
        "patients": patients,
        "draw": draw,
        "events": float(events.mean()),
        "sem": float(events.std(ddof=1) / math.sqrt(patients)),
        "grade3_any": row["grade3_any"],
        "max_events": int(events.max()),
        "wall_s": time.perf_counter() - t0,
    }


def yaml_block(m: dict) -> str:
    source = (
        "new grade >= 3 toxicities per patient-episode (the env cost added up) of the "
        f"standard of care on Cohort.train({m['scenario']}, {m['patients']}, {m['draw']}), "
        f"default env (weekly decisions, the scenario's horizon); {COMMAND}"
    )
    lines = textwrap.wrap(source, width=88)
    quoted = '"' + "\n    ".join(lines) + '"'
    return (
        "cost_budget:\n"
        f"  events: {m['events']:.3f}\n"
        f"  protocol: {m['protocol']}\n"
        f"  patients: {m['patients']}\n"
        f"  draw: {m['draw']}\n"
        f"  sem: {m['sem']:.3f}\n"
        f"  source: {quoted}\n"
    )


_BLOCK = re.compile(r"^cost_budget:\n(?:[ \t]+.*\n?)*", flags=re.M)


def write_block(scenario: str, block: str) -> None:
    path = SCENARIO_DIR / f"{scenario}.yaml"
    text = path.read_text()
    if _BLOCK.search(text):
        text = _BLOCK.sub(block, text)
    else:
        comment = (
            "\n# Budget of constrained RL (oncogym train --algo ppo_lagrangian), written by\n"
            "# experiments/constrained/budgets.py\n"
        )
        text = text.rstrip("\n") + "\n" + comment + block
    path.write_text(text)
    # the file still validates, and holds what was measured
    sc = validate_scenario(scenario_data(scenario), where=path.name)
    assert sc.cost_budget is not None and f"events: {sc.cost_budget.events:.3f}" in block


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", nargs="*", default=list(STANDARD_OF_CARE))
    ap.add_argument("--patients", type=int, default=PATIENTS)
    ap.add_argument("--write", action="store_true", help="write each scenario YAML's block")
    args = ap.parse_args()
    print(
        "| scenario | standard of care | patients | grade ≥ 3 events / patient (± sem) "
        "| grade ≥ 3 any % | wall s |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for sc in args.scenarios:
        m = measure(sc, args.patients)
        print(
            f"| {sc} | {m['protocol']} | {m['patients']} | {m['events']:.3f} ± {m['sem']:.3f} "
            f"| {100 * m['grade3_any']:.1f} | {m['wall_s']:.0f} |",
            flush=True,
        )
        if args.write:
            write_block(sc, yaml_block(m))


if __name__ == "__main__":
    main()
