"""Constrained RL on melanoma: PPO against Lagrangian PPO at cost budgets, and the protocols,
on the QALY–toxicity plane (issue 15, item 3).

Trains plain PPO and ``ppo_lagrangian`` at each budget (same seed, same PPO
hyperparameters, ``oncogym/agents/hyperparams/ppo*.yml``), then scores every agent and every
protocol of the scenario on the test cohort (``Cohort.test``, the benchmark's patients; the
default ``"qaly"`` reward, no penalty) and writes, into ``--out``:

* ``results.md`` / ``results.csv``: mean QALYs, grade ≥ 3 rate, grade ≥ 3 events per patient
  (the mean episode cost), the final λ, training wall time, and which policies are on the
  Pareto front (:func:`oncogym.agents.aggregate.pareto_front`: no other policy has more
  QALYs and less grade ≥ 3 toxicity);
* ``pareto.png``: :func:`oncogym.agents.aggregate.plot_pareto` of those rows;
* ``lambda.png``: λ and the mean episode cost per rollout of each Lagrangian run;
* ``runs/<name>/``: each run's config, command, metadata, ``lagrangian.json``, model and
  VecNormalize statistics (checkpoints and TensorBoard logs are not kept).

    python experiments/constrained/run.py --timesteps 200000 --budgets 0.56 0.28

A run folder that holds a finished model is reused (delete it to retrain).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import time
from pathlib import Path

from oncogym.agents._policy import protocol_names
from oncogym.agents.aggregate import pareto_front, plot_pareto
from oncogym.agents.evaluate import rollout, summarise
from oncogym.agents.policies import make_baseline
from oncogym.agents.train import load_agent, train
from oncogym.envs import ENV_IDS, STANDARD_OF_CARE
from oncogym.scenarios import DEFAULT_TEST_PATIENTS, Cohort, load_scenario

HERE = Path(__file__).resolve().parent


def _env_id(task: str) -> str:
    return next(e for e, (t, *_) in ENV_IDS.items() if t == task)


def train_runs(args: argparse.Namespace) -> list[dict]:
    """Train (or reuse) plain PPO and one Lagrangian PPO per budget."""
    env_id = _env_id(args.scenario)
    specs = [("ppo", "ppo", None)] + [
        (f"ppo_lagrangian_b{b:g}", "ppo_lagrangian", b) for b in args.budgets
    ]
    out = []
    for name, algo, budget in specs:
        run_dir = args.out / "runs" / name
        if not (run_dir / "model.zip").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
            t0 = time.perf_counter()
            train(
                env_id,
                algo,
                seed=args.seed,
                n_timesteps=args.timesteps,
                run_dir=run_dir,
                progress_bar=False,
                checkpoint_freq=0,
                clinical_evals=0,
                tensorboard=False,
                cost_budget=budget,
            )
            print(f"trained {name} in {time.perf_counter() - t0:.0f} s", flush=True)
        meta = json.loads((run_dir / "metadata.json").read_text())
        out.append({"name": name, "algo": algo, "run_dir": run_dir, "meta": meta})
    return out


def evaluate(args: argparse.Namespace, runs: list[dict]) -> list[dict]:
    """Every protocol and every agent on the test cohort, as summarise rows."""
    task = args.scenario
    cohort = Cohort.test(task, args.patients)
    soc = STANDARD_OF_CARE[task]
    rows = []
    reference = rollout(make_baseline(soc, task), task, cohort=cohort)
    for name in ["no_treatment", *protocol_names(task)]:
        res = reference if name == soc else rollout(make_baseline(name, task), task, cohort=cohort)
        row = summarise(res, reference)
        row.update(kind="protocol" if name != "no_treatment" else "other", budget=None)
        rows.append(row)
        print(f"evaluated {name}", flush=True)
    for run in runs:
        agent = load_agent(run["run_dir"], name=run["name"])
        row = summarise(rollout(agent, task, cohort=cohort), reference)
        lag = run["meta"].get("lagrangian") or {}
        row.update(
            kind="agent",
            budget=lag.get("cost_budget"),
            lambda_final=lag.get("lambda_final"),
            train_wall_s=run["meta"]["wall_time_s"],
            timesteps=run["meta"]["num_timesteps"],
        )
        rows.append(row)
        print(f"evaluated {run['name']}", flush=True)
    front = set(pareto_front([(r["grade3_any"], r["mean_qalys"]) for r in rows]))
    for i, r in enumerate(rows):
        r["pareto"] = i in front
    return rows


def plot_lambda(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lag_runs = [r for r in runs if r["algo"] == "ppo_lagrangian"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    for r in lag_runs:
        rec = json.loads((r["run_dir"] / "lagrangian.json").read_text())
        ups = rec["updates"]
        steps = [u["timesteps"] / 1000 for u in ups]
        (line,) = a1.plot(steps, [u["lambda"] for u in ups], label=f"budget {rec['cost_budget']:g}")
        a2.plot(
            steps,
            [math.nan if u["ep_cost_mean"] is None else u["ep_cost_mean"] for u in ups],
            color=line.get_color(),
            ls=":",
            label=f"budget {rec['cost_budget']:g}: training episodes",
        )
        if any("validation_cost" in u for u in ups):
            a2.plot(
                steps,
                [u.get("validation_cost", math.nan) for u in ups],
                color=line.get_color(),
                marker=".",
                label=f"budget {rec['cost_budget']:g}: validation, deterministic",
            )
        a2.axhline(rec["cost_budget"], color=line.get_color(), ls="--", lw=0.8)
    a1.set(xlabel="training steps (thousands)", ylabel="λ (QALYs per event)", title="λ")
    a2.set(
        xlabel="training steps (thousands)",
        ylabel="grade ≥ 3 events per patient",
        title="cost per rollout (dashed: budget)",
    )
    for ax in (a1, a2):
        ax.grid(alpha=0.25)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(x: float | None, spec: str) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def write_results(args: argparse.Namespace, rows: list[dict], runs: list[dict]) -> None:
    out = args.out
    cols = [
        "policy",
        "kind",
        "budget",
        "lambda_final",
        "mean_qalys",
        "qalys_sem",
        "qalys_diff",
        "qalys_diff_low",
        "qalys_diff_high",
        "grade3_any",
        "grade3_events",
        "tox_deaths",
        "orr",
        "os_horizon",
        "pareto",
        "timesteps",
        "train_wall_s",
    ]
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    sc = load_scenario(args.scenario)
    lines = [
        f"# Constrained RL on {args.scenario}: QALYs against grade ≥ 3 toxicity\n",
        f"Written by `python experiments/constrained/run.py {args.command}`.  "
        f"Test cohort: `Cohort.test({args.scenario!r}, {args.patients})`, default reward; "
        f"standard of care {STANDARD_OF_CARE[args.scenario]} (its budget on training patients: "
        f"{sc.cost_budget.events:.3f} events per patient-episode, scenario YAML).  "
        f"Agents: seed {args.seed}, {args.timesteps:,} steps each.\n",
        "| policy | kind | budget (events/episode) | final λ | QALYs (mean ± sem) "
        "| Δ QALYs vs SoC (95 % CI) | grade ≥ 3 % | grade ≥ 3 events / patient | toxic deaths "
        "| ORR % | OS at horizon % | Pareto | training s |",
        "|---|---|---:|---:|---|---|---:|---:|---:|---:|---:|:-:|---:|",
    ]
    for r in rows:
        dq = (
            "—"
            if not math.isfinite(r.get("qalys_diff_low", math.nan))
            else f"{r['qalys_diff']:+.3f} ({r['qalys_diff_low']:+.3f}, {r['qalys_diff_high']:+.3f})"
        )
        lines.append(
            f"| {r['policy']} | {r['kind']} | {_fmt(r.get('budget'), '.2f')} "
            f"| {_fmt(r.get('lambda_final'), '.3f')} "
            f"| {r['mean_qalys']:.3f} ± {r['qalys_sem']:.3f} | {dq} "
            f"| {100 * r['grade3_any']:.1f} | {r['grade3_events']:.3f} | {r['tox_deaths']} "
            f"| {100 * r['orr']:.1f} | {100 * r['os_horizon']:.1f} "
            f"| {'✓' if r['pareto'] else ''} | {_fmt(r.get('train_wall_s'), '.0f')} |"
        )
    lines.append("")
    lines.append(
        "Pareto: no other row has both more mean QALYs and a lower grade ≥ 3 rate "
        "(`oncogym.agents.aggregate.pareto_front`).  Figures: `pareto.png`, `lambda.png`.\n"
    )
    for r in runs:
        rec_path = r["run_dir"] / "lagrangian.json"
        if rec_path.exists():
            ups = json.loads(rec_path.read_text())["updates"]
            last = [u for u in ups[-5:] if u["ep_cost_mean"] is not None]
            mean_last = sum(u["ep_cost_mean"] for u in last) / len(last) if last else math.nan
            val = [u["validation_cost"] for u in ups[-5:] if "validation_cost" in u]
            dual = (
                f"; the deterministic policy's on validation patients (what the dual step "
                f"compares with the budget) {sum(val) / len(val):.3f}"
                if val
                else ""
            )
            lines.append(
                f"- `{r['name']}`: {len(ups)} dual updates; λ peaked at "
                f"{max(u['lambda'] for u in ups):.3f}, ended at {ups[-1]['lambda']:.3f}; "
                f"cost over the last 5 rollouts: training episodes' {mean_last:.3f} "
                f"(exploring, stochastic policy){dual}."
            )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    plot_pareto(
        {args.scenario: rows},
        out / "pareto.png",
        title=f"{args.scenario}: QALYs against grade ≥ 3 toxicity "
        f"({args.patients}-patient test cohort)",
    )
    plot_lambda(runs, out / "lambda.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="melanoma")
    ap.add_argument("--timesteps", type=int, default=200_000)
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.56, 0.28])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--patients", type=int, default=DEFAULT_TEST_PATIENTS)
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    if any(not math.isfinite(b) or b < 0 for b in args.budgets):
        ap.error(f"--budgets: expected numbers >= 0, got {args.budgets}")
    args.command = (
        f"--scenario {args.scenario} --timesteps {args.timesteps} "
        f"--budgets {' '.join(f'{b:g}' for b in args.budgets)} --seed {args.seed} "
        f"--patients {args.patients}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    runs = train_runs(args)
    rows = evaluate(args, runs)
    write_results(args, rows, runs)
    print(f"wrote {args.out / 'results.md'} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
