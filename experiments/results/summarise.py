"""Summarise committed benchmark results: best agent against best protocol, per scenario.

Reads ``<results>/<scenario>/metrics.csv`` and ``patients.csv`` written by ``oncogym
benchmark`` and writes ``<results>/SUMMARY.md``:

* per algorithm, the spread over training seeds (mean ± sd of QALYs, median OS, grade ≥ 3);
* the best trained agent (highest mean QALYs) against the best protocol (the scenario
  protocol with the highest mean QALYs — not necessarily the standard of care): paired
  difference in QALYs with its 95 % CI, OS log-rank p-value and Cox hazard ratio, and
  grade ≥ 3 toxicity rates, on the same test patients.

Usage: ``python experiments/results/summarise.py [results_dir]``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd

from oncogym.agents.policies import protocol_names
from oncogym.envs import STANDARD_OF_CARE
from oncogym.survival import hazard_ratio, log_rank

Z = 1.959963984540054


def _months(x: float) -> str:
    return "NR" if not math.isfinite(x) else f"{x:.1f}"


def scenario_summary(d: Path) -> str:
    task = d.name
    m = pd.read_csv(d / "metrics.csv")
    pts = pd.read_csv(d / "patients.csv")
    protos = [p for p in protocol_names(task) if p in set(m.policy)]
    agents = m[m["algo"].notna()] if "algo" in m else m.iloc[0:0]
    lines = [f"## {task}\n"]
    n = int(m["n"].iloc[0])
    lines.append(
        f"{n} test patients (`Cohort.test({task!r}, {n})`), standard of care "
        f"`{STANDARD_OF_CARE[task]}`.\n"
    )
    if len(agents):
        lines.append(
            "| algorithm | seeds | timesteps | train wall s (mean) | QALYs mean ± sd over "
            "seeds | median OS mo (per seed) | grade ≥ 3 % (mean) |"
        )
        lines.append("|---|---:|---:|---:|---|---|---:|")
        for algo, g in agents.groupby("algo"):
            sd = g["mean_qalys"].std(ddof=1) if len(g) > 1 else 0.0
            lines.append(
                f"| {algo} | {len(g)} | {int(g['train_timesteps'].iloc[0]):,} "
                f"| {g['train_wall_s'].mean():.0f} "
                f"| {g['mean_qalys'].mean():.3f} ± {sd:.3f} "
                f"| {', '.join(_months(x) for x in g['median_os_months'])} "
                f"| {100 * g['grade3_any'].mean():.1f} |"
            )
        lines.append("")
    best_p = m[m.policy.isin(protos)].sort_values("mean_qalys", ascending=False).iloc[0]
    rows = [("best protocol", best_p)]
    if len(agents):
        ranked = agents.sort_values("mean_qalys", ascending=False)
        rows.append(("best agent", ranked.iloc[0]))
        safe = ranked[ranked.grade3_any <= best_p.grade3_any]
        if len(safe) and safe.iloc[0].policy != ranked.iloc[0].policy:
            rows.append(("best agent with grade ≥ 3 ≤ the protocol's", safe.iloc[0]))
        for _, r in ranked.iloc[1:].iterrows():
            rows.append(("agent", r))
    planners = m[m.policy.str.startswith("mpc_")]
    for _, r in planners.iterrows():
        rows.append(("planner", r))
    ref = pts[pts.policy == best_p.policy].sort_values("patient")
    lines.append(f"Against the best protocol, `{best_p.policy}` (paired, same patients):\n")
    lines.append(
        "| role | policy | QALYs | Δ QALYs (95 % CI) | median OS mo | OS at horizon % "
        "| OS log-rank p | OS HR (95 % CI) | ORR % | grade ≥ 3 % |"
    )
    lines.append("|---|---|---:|---|---:|---:|---:|---|---:|---:|")
    for role, r in rows:
        x = pts[pts.policy == r.policy].sort_values("patient")
        diff = x["qalys"].to_numpy() - ref["qalys"].to_numpy()
        sem = diff.std(ddof=1) / math.sqrt(len(diff))
        if r.policy == best_p.policy:
            dq, p, hr = "—", "—", "—"
        else:
            dq = f"{diff.mean():+.3f} ({diff.mean() - Z * sem:+.3f}, {diff.mean() + Z * sem:+.3f})"
            lr = log_rank(x.os_days, x.death, ref.os_days, ref.death)
            p = "<0.001" if lr.p_value < 1e-3 else f"{lr.p_value:.3f}"
            h = hazard_ratio(x.os_days, x.death, ref.os_days, ref.death)
            hr = f"{h[0]:.2f} ({h[1]:.2f}–{h[2]:.2f})"
        lines.append(
            f"| {role} | {r.policy} | {r.mean_qalys:.3f} | {dq} | {_months(r.median_os_months)} "
            f"| {100 * r.os_horizon:.1f} | {p} | {hr} | {100 * r.orr:.1f} "
            f"| {100 * r.grade3_any:.1f} |"
        )
    lines.append("")
    return "\n".join(lines)


def main(results: Path) -> None:
    parts = [
        "# Benchmark results: summary\n",
        "Written by `python experiments/results/summarise.py` from the per-scenario "
        "`metrics.csv` / `patients.csv`; full tables in `<scenario>/metrics.md`.\n",
    ]
    manifest = results / "benchmark.json"
    if manifest.exists():
        info = json.loads(manifest.read_text())
        parts.append(
            f"Last `oncogym benchmark` invocation: {info['wall_s_total'] / 60:.1f} min "
            f"(training {info['wall_s_train'] / 60:.1f} min), backend "
            f"{info['backend']} with {info['workers']} workers.  Finished units are "
            "skipped, so after a resumed or partial rerun this is not the cost of the "
            "whole sweep; per-run training times are in the tables.\n"
        )
    for d in sorted(p for p in results.iterdir() if (p / "metrics.csv").exists()):
        parts.append(scenario_summary(d))
    (results / "SUMMARY.md").write_text("\n".join(parts))
    print((results / "SUMMARY.md").read_text())


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
