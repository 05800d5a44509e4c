"""Robustness tiers: the standard of care and no treatment in every tier, per scenario.

For every difficulty tier of :data:`oncogym.envs.settings.SETTINGS`, the evaluator
(:func:`oncogym.agents.evaluate.rollout`, scan-noise seed 2024, default ``"qaly"``
reward) treats the melanoma test cohort (``Cohort.test("melanoma", 200)``; in the shifted
tiers ``Cohort.test("melanoma", 200, shift=SHIFT)``) with no treatment, the standard of
care (nivolumab + ipilimumab, CheckMate 067) and the adaptive rules (the closed-loop
baseline that reads the scans and the grades).  Writes ``experiments/tiers/results.md``
(the README's "Robustness tiers" quotes it); ``--scenario lbcl`` the same for another
scenario (``experiments/tiers/results_<scenario>.md``).  Run from the repository root::

    python experiments/tiers/run.py             # melanoma, 200 patients, every tier
    python experiments/tiers/run.py --scenario lbcl
    python experiments/tiers/run.py --patients 20 --out /tmp/tiers.md   # a quick look
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

import oncogym
from oncogym.agents.evaluate import DEFAULT_PATIENTS, EVAL_SEED, rollout, summarise
from oncogym.agents.policies import make_baseline
from oncogym.envs import STANDARD_OF_CARE
from oncogym.envs.settings import SETTINGS

HERE = Path(__file__).resolve().parent


def _ci(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and normal 95 % interval of a paired difference."""
    m = float(x.mean())
    h = 1.959963984540054 * float(x.std(ddof=1)) / math.sqrt(len(x)) if len(x) > 1 else math.nan
    return m, m - h, m + h


def _revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="melanoma", choices=sorted(STANDARD_OF_CARE))
    ap.add_argument("--patients", type=int, default=DEFAULT_PATIENTS)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    TASK = args.scenario
    SOC = STANDARD_OF_CARE[TASK]
    POLICIES = ("no_treatment", SOC, "adaptive")
    if args.out is None:
        args.out = HERE / ("results.md" if TASK == "melanoma" else f"results_{TASK}.md")

    t_all = time.perf_counter()
    rows, walls = {}, {}
    for tier in SETTINGS:
        t0 = time.perf_counter()
        for name in POLICIES:
            res = rollout(
                make_baseline(name, TASK, seed=EVAL_SEED),
                TASK,
                n_patients=args.patients,
                env_kwargs={"setting": tier},
            )
            rows[tier, name] = (summarise(res), res)
        walls[tier] = time.perf_counter() - t0
        print(f"{tier}: {walls[tier]:.1f} s", flush=True)
    wall = time.perf_counter() - t_all

    n = args.patients
    flags = "" if n == DEFAULT_PATIENTS else f" --patients {n}"
    if TASK != "melanoma":
        flags = f" --scenario {TASK}" + flags
    lines = [
        f"# Robustness tiers: {TASK}, {n} test patients",
        "",
        f"Written by `python experiments/tiers/run.py{flags}` "
        f"(oncogym {oncogym.__version__}, revision {_revision()}; {wall / 60:.1f} min on "
        f"{os.cpu_count()} CPU cores, {platform.machine()}, a machine shared with other jobs).",
        "",
        f'Every row: the evaluator (`rollout`, scan-noise seed {EVAL_SEED}, default `"qaly"` '
        f'reward) on `Cohort.test("{TASK}", {n})`; the shifted tiers (`shift`, `hard`) on '
        f'`Cohort.test("{TASK}", {n}, shift=SHIFT)` (burden × 2, infiltration × 0.7, '
        "lymphocyte production × 0.7).  Tiers: `oncogym.envs.settings`.",
        "",
        "## Scores (mean return, QALYs over the two-year horizon)",
        "",
        f"| tier | no treatment | standard of care ({SOC}) | SoC − none (95 % CI, paired) "
        "| adaptive | wall s |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for tier in SETTINGS:
        none, soc, ada = (rows[tier, p] for p in POLICIES)
        d, lo, hi = _ci(soc[1].returns - none[1].returns)
        lines.append(
            f"| `{tier}` | {none[0]['mean_return']:.3f} | {soc[0]['mean_return']:.3f} "
            f"| {d:+.3f} ({lo:+.3f}, {hi:+.3f}) | {ada[0]['mean_return']:.3f} "
            f"| {walls[tier]:.0f} |"
        )
    lines += [
        "",
        "## Clinical readouts",
        "",
        "| tier | policy | ORR % | OS at 24 mo % | grade ≥ 3 % | QALYs | doses given per patient |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for tier in SETTINGS:
        for name in POLICIES:
            r, res = rows[tier, name]
            given = float((res.doses > 0).any(axis=2).sum(axis=1).mean())
            lines.append(
                f"| `{tier}` | {name} | {100 * r['orr']:.1f} | {100 * r['os_horizon']:.1f} "
                f"| {100 * r['grade3_any']:.1f} | {r['mean_qalys']:.3f} | {given:.1f} |"
            )
    lines += [
        "",
        "ORR and grade ≥ 3 as the evaluator reads them (RECIST 1.1 on the measured scans: "
        "the noisy and irregular tiers change the readout as well as the care). "
        "Doses given: visits with at least one administration.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out} ({wall / 60:.1f} min)")


if __name__ == "__main__":
    main()
