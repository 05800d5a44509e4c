"""Robustness tiers for learned policies: the v1 benchmark's agents, trained on the default
tier, evaluated in every tier.

For melanoma and LBCL, the committed agents of ``experiments/results`` (PPO and MaskablePPO,
seeds 0–4, 200k steps on the default tier), the standard of care and the best open-loop
schedule of that run (``<scenario>/open_loop.json``) treat 200 test patients in every tier
of :data:`oncogym.envs.settings.SETTINGS` (``rollout(env_kwargs={"setting": tier})``; the
shifted tiers on ``Cohort.test(task, 200, shift=SHIFT)``, as the evaluator does).  Score:
mean return with the benchmark's 26-week untreated follow-up.  Writes
``experiments/tiers/agents.md``.  Run from the repository root::

    python experiments/tiers/agents.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from oncogym.agents.evaluate import EVAL_SEED, rollout
from oncogym.agents.openloop import OpenLoopPolicy, load_schedule
from oncogym.agents.policies import make_baseline
from oncogym.agents.train import load_agent
from oncogym.envs import STANDARD_OF_CARE
from oncogym.envs.settings import SETTINGS

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results"
SCENARIOS = ("melanoma", "lbcl")
ALGOS = ("ppo", "maskable_ppo")
SEEDS = range(5)
PATIENTS = 200
FOLLOW_UP_DAYS = 182.0
OTHER_SHAPE = tuple(t for t, knobs in SETTINGS.items() if knobs.lab_missing_prob > 0)
"""Tiers whose observation has another shape (two lab-observed flags): an agent trained on
the default tier cannot read it (shown as —)."""


def score(policy, task: str, tier: str) -> float:
    res = rollout(
        policy,
        task,
        n_patients=PATIENTS,
        seed=EVAL_SEED,
        env_kwargs={"setting": tier},
        follow_up_days=FOLLOW_UP_DAYS,
    )
    return float(np.mean(res.score_returns))


def main() -> None:
    t0 = time.perf_counter()
    tiers = list(SETTINGS)
    lines = [
        "# Robustness tiers: learned policies trained on the default tier",
        "",
        "Written by `python experiments/tiers/agents.py`: mean score (return with 26 weeks of "
        f"untreated follow-up) on {PATIENTS} test patients per tier; agents: mean ± sd over "
        "seeds 0–4 of the committed v1 runs (`experiments/results/<scenario>/runs/`).",
        "",
    ]
    for task in SCENARIOS:
        soc = STANDARD_OF_CARE[task]
        rows: dict[str, list[str]] = {}
        rows[soc] = [f"{score(make_baseline(soc, task), task, t):.3f}" for t in tiers]
        sched = load_schedule(RESULTS / task / "open_loop.json")
        rows["open_loop"] = [f"{score(OpenLoopPolicy(sched), task, t):.3f}" for t in tiers]
        for algo in ALGOS:
            per_tier = []
            for t in tiers:
                if t in OTHER_SHAPE:
                    per_tier.append("—")
                    continue
                vals = [
                    score(load_agent(RESULTS / task / "runs" / f"{algo}_s{k}"), task, t)
                    for k in SEEDS
                ]
                per_tier.append(f"{np.mean(vals):.3f} ± {np.std(vals, ddof=1):.3f}")
            rows[f"{algo} (5 seeds)"] = per_tier
            print(f"{task} {algo}: {time.perf_counter() - t0:.0f} s", flush=True)
        lines += [
            f"## {task}",
            "",
            "| policy | " + " | ".join(f"`{t}`" for t in tiers) + " |",
            "|---|" + "---:|" * len(tiers),
        ]
        lines += [f"| {name} | " + " | ".join(v) + " |" for name, v in rows.items()]
        lines.append("")
    lines.append(
        f"—: {', '.join(f'`{t}`' for t in OTHER_SHAPE)} add two entries to the observation "
        "(the labs' observed flags), so an agent trained on the default tier cannot be "
        "evaluated there (it must be trained in the tier)."
    )
    lines.append("")
    wall = time.perf_counter() - t0
    lines.append(f"Wall time {wall / 60:.1f} min on this project's 2-core machine.")
    (HERE / "agents.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {HERE / 'agents.md'} ({wall / 60:.1f} min)")


if __name__ == "__main__":
    main()
