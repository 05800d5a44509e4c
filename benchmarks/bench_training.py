"""Training cost: environment steps per second of each benchmark algorithm, as trained.

Workload: :func:`oncogym.agents.train` on ``oncogym/Melanoma-v1`` (``--env``) with each
algorithm's committed hyperparameters (``agents/hyperparams``: n_envs, rollout length,
minibatch, epochs, networks), one torch thread, no checkpoints, logs or clinical
evaluations, ``--timesteps`` environment steps per run (whole rollouts, so every run ends
on a gradient update).  A first short run per algorithm compiles the kernels and is not
measured.  Each figure is the median of ``--repeats`` runs of SB3's ``learn`` (the
``learn_time_s`` of the run's metadata), in environment steps per second, and the
projected wall time of one benchmark-protocol run (200,000 steps).

Run: ``python benchmarks/bench_training.py`` (``--quick`` for a smoke run); writes
``benchmarks/results/bench_training.json`` and ``.md``.

**Wall time to beat the best open-loop schedule**: ``--time-to-open-loop DIR`` reads the
training logs of a benchmark folder (``DIR/<scenario>/runs/<algo>_s<seed>/logs/progress.csv``:
the clinical evaluations each run makes on validation patients while it trains) and the
folder's open-loop schedules (``DIR/<scenario>/open_loop.json``), scores each schedule on the
same validation patients with the same return (the horizon's, no follow-up), and reports per
scenario and algorithm how many runs reached it and after how many steps and how much wall
time (the run's elapsed time at that evaluation, interpolated from its log); writes
``benchmarks/results/time_to_open_loop.{json,md}``.  The validation cohort is the
training callback's (32 patients), so this is a coarse clock, not a test.

**Against an earlier revision, in the same run**: ``--against REV`` assembles ``REV``'s
package in a temporary folder and measures both trees in alternating subprocesses
(``--rounds`` pairs, each the median of ``--repeats`` runs), then prints both and the
ratio of their medians; writes ``benchmarks/results/bench_training_against.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path
from typing import Any

from _revision import run_worker, tree_of

ALGOS = ("ppo", "a2c", "maskable_ppo", "recurrent_ppo")
ENV_ID = "oncogym/Melanoma-v1"
PROTOCOL_STEPS = 200_000
CLINICAL = 32
"""Validation patients of the training runs' clinical evaluations
(``oncogym.agents.train.CLINICAL_EVAL_PATIENTS``)."""
RESULTS = Path(__file__).resolve().parent / "results" / "bench_training.json"
AGAINST = RESULTS.with_name("bench_training_against.json")


def _rollout(algo: str, env_id: str) -> int:
    """Environment steps per rollout (n_envs × n_steps) of ``algo``'s committed config."""
    from oncogym.agents.train import load_config

    cfg = load_config(algo, env_id)
    return int(cfg.n_envs) * int(cfg.hyperparams().get("n_steps", 5))


def train_once(algo: str, env_id: str, timesteps: int, seed: int) -> dict[str, float]:
    from oncogym.agents.train import train

    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        run = train(
            env_id,
            algo,
            seed=seed,
            n_timesteps=timesteps,
            run_dir=Path(tmp) / "run",
            progress_bar=False,
            checkpoint_freq=0,
            tensorboard=False,
            clinical_evals=0,
        )
        meta = json.loads((run / "metadata.json").read_text())
    session = meta["sessions"][-1]
    steps = session["end_timesteps"] - session["start_timesteps"]
    return {"steps": float(steps), "seconds": float(session["learn_time_s"])}


def bench(algos: list[str], env_id: str, timesteps: int, repeats: int, seed: int) -> list[dict]:
    rows = []
    for algo in algos:
        rollout = _rollout(algo, env_id)
        steps = max(rollout, timesteps // rollout * rollout)
        train_once(algo, env_id, rollout, seed)  # warm-up: compiles, loads torch kernels
        runs = [train_once(algo, env_id, steps, seed + 1 + r) for r in range(repeats)]
        rate = statistics.median(r["steps"] / r["seconds"] for r in runs)
        rows.append(
            {
                "algo": algo,
                "steps_per_run": int(runs[0]["steps"]),
                "rollout": rollout,
                "steps_per_s": rate,
                "seconds": [r["seconds"] for r in runs],
                "protocol_run_min": PROTOCOL_STEPS / rate / 60.0,
            }
        )
        print(f"# {algo}: {rate:,.0f} steps/s", flush=True)
    return rows


def _info() -> dict[str, Any]:
    import numpy as np
    import stable_baselines3
    import torch

    import oncogym

    return {
        "oncogym": oncogym.__version__,
        "package": str(Path(oncogym.__file__).parent),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "stable-baselines3": stable_baselines3.__version__,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }


def markdown(rows: list[dict], info: dict[str, Any], env_id: str) -> str:
    lines = [
        f"Training throughput on `{env_id}`, committed hyperparameters, 1 torch thread "
        f"(median of runs; load average at the end {info['load_average'][0]:.1f} on "
        f"{info['cpu_count']} CPUs).",
        "",
        "| algorithm | steps per run | env-steps/s | one 200k-step protocol run (min) |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['algo']} | {r['steps_per_run']:,} | {r['steps_per_s']:,.0f} | "
            f"{r['protocol_run_min']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def time_to_open_loop(results: Path) -> list[dict[str, Any]]:
    """Per scenario and algorithm: runs whose validation return reached the open-loop
    schedule's on the same validation patients, and when (steps, wall seconds)."""
    import numpy as np
    import pandas as pd

    from oncogym.agents.evaluate import rollout, validation_cohort
    from oncogym.agents.openloop import OpenLoopPolicy, load_schedule
    from oncogym.agents.train import CLINICAL_EVAL_PATIENTS

    rows = []
    for sc_dir in sorted(p for p in results.iterdir() if (p / "open_loop.json").is_file()):
        task = sc_dir.name
        if CLINICAL_EVAL_PATIENTS != CLINICAL:
            raise RuntimeError("CLINICAL: the training callback's patients changed")
        cohort, seed = validation_cohort(task, CLINICAL)
        policy = OpenLoopPolicy(load_schedule(sc_dir / "open_loop.json"))
        res = rollout(policy, task, cohort=cohort, n_patients=CLINICAL, seed=seed)
        target = float(np.mean(res.returns))
        by_algo: dict[str, list[dict[str, Any]]] = {}
        for run in sorted((sc_dir / "runs").glob("*_s*")):
            log = pd.read_csv(run / "logs" / "progress.csv")
            clock = log.dropna(subset=["time/time_elapsed", "time/total_timesteps"])
            evals = log.dropna(subset=["clinical/return"])
            hit = evals[evals["clinical/return"] >= target]
            entry: dict[str, Any] = {
                "run": run.name,
                "final": float(evals["clinical/return"].iloc[-1]),
            }
            if len(hit):
                steps = float(hit["time/total_timesteps"].iloc[0])
                entry["steps"] = steps
                entry["wall_s"] = float(
                    np.interp(steps, clock["time/total_timesteps"], clock["time/time_elapsed"])
                )
            by_algo.setdefault(run.name.rsplit("_s", 1)[0], []).append(entry)
        for algo, runs in by_algo.items():
            reached = [r for r in runs if "steps" in r]
            rows.append(
                {
                    "scenario": task,
                    "algo": algo,
                    "open_loop_return": target,
                    "runs": len(runs),
                    "reached": len(reached),
                    "median_steps": statistics.median(r["steps"] for r in reached)
                    if reached
                    else None,
                    "median_wall_s": statistics.median(r["wall_s"] for r in reached)
                    if reached
                    else None,
                    "median_final": statistics.median(r["final"] for r in runs),
                    "detail": runs,
                }
            )
    return rows


def time_markdown(rows: list[dict[str, Any]], results: Path) -> str:
    lines = [
        f"Wall time to beat the best open-loop schedule (`{results}`): the training runs' "
        f"clinical evaluations on {CLINICAL} validation patients (return over the horizon, "
        "no follow-up) against the open-loop schedule on the same patients.",
        "",
        "| scenario | algorithm | open-loop return | runs that reached it | median steps | "
        "median wall time (s) | median final validation return |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        steps = "—" if r["median_steps"] is None else f"{r['median_steps']:,.0f}"
        wall = "—" if r["median_wall_s"] is None else f"{r['median_wall_s']:.0f}"
        lines.append(
            f"| {r['scenario']} | {r['algo']} | {r['open_loop_return']:.3f} | "
            f"{r['reached']}/{r['runs']} | {steps} | {wall} | {r['median_final']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def _worker(path: Path | None, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    options = ["--algos", ",".join(args.algos), "--env", args.env]
    options += ["--timesteps", str(args.timesteps), "--repeats", str(args.repeats)]
    return run_worker(__file__, path, [*options, "--seed", str(args.seed)], out)


def against(args: argparse.Namespace) -> dict[str, Any]:
    """Both trees in alternating subprocesses; the ratio of their median rates."""
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        ref_path = tree_of(args.against, Path(tmp))
        runs: dict[str, list[dict[str, Any]]] = {"current": [], args.against: []}
        for r in range(args.rounds):
            for label, path in (("current", None), (args.against, ref_path)):
                res = _worker(path, args, Path(tmp) / f"{label}_{r}.json")
                runs[label].append({row["algo"]: row for row in res["rows"]})
                print(f"# round {r + 1}/{args.rounds}: {label} done", flush=True)
    table = []
    for algo in args.algos:
        cur = [run[algo]["steps_per_s"] for run in runs["current"]]
        ref = [run[algo]["steps_per_s"] for run in runs[args.against]]
        table.append(
            {
                "algo": algo,
                "current": cur,
                args.against: ref,
                "ratio": statistics.median(cur) / statistics.median(ref),
            }
        )
    lines = [
        f"Training throughput on `{args.env}` (env-steps/s, median of {args.rounds} "
        f"alternating rounds of {args.repeats} runs of {args.timesteps:,} steps), this tree "
        f"against `{args.against}`.",
        "",
        f"| algorithm | current | {args.against} | ratio |",
        "|---|---:|---:|---:|",
    ]
    for row in table:
        lines.append(
            f"| {row['algo']} | {statistics.median(row['current']):,.0f} | "
            f"{statistics.median(row[args.against]):,.0f} | {row['ratio']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    out = {
        "against": args.against,
        "env": args.env,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "timesteps": args.timesteps,
        "load_average": os.getloadavg(),
        "rows": table,
    }
    AGAINST.parent.mkdir(parents=True, exist_ok=True)
    AGAINST.write_text(json.dumps(out, indent=2, default=float))
    AGAINST.with_suffix(".md").write_text(text)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--algos", default=",".join(ALGOS), help="comma-separated algorithms")
    ap.add_argument("--env", default=ENV_ID)
    ap.add_argument("--timesteps", type=int, default=16_384, help="steps per measured run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="one short run each, a smoke run")
    ap.add_argument("--json", type=Path, default=RESULTS, help="where to write the results")
    ap.add_argument("--against", help="a git revision to measure in the same run")
    ap.add_argument("--rounds", type=int, default=3, help="--against: alternating rounds")
    ap.add_argument(
        "--time-to-open-loop",
        type=Path,
        metavar="DIR",
        help="from a benchmark folder's training logs: when each run beat the open-loop schedule",
    )
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.time_to_open_loop is not None:
        rows = time_to_open_loop(args.time_to_open_loop)
        out_json = RESULTS.with_name("time_to_open_loop.json")
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(rows, indent=2, default=float))
        text = time_markdown(rows, args.time_to_open_loop)
        out_json.with_suffix(".md").write_text(text)
        print(text)
        return {"rows": rows}
    args.algos = [a.strip() for a in str(args.algos).split(",") if a.strip()]
    unknown = [a for a in args.algos if a not in ALGOS]
    if unknown:
        ap.error(f"--algos: unknown {', '.join(unknown)}; allowed: {', '.join(ALGOS)}")
    if args.quick:
        args.timesteps, args.repeats = 1, 1
    if args.against:
        return against(args)
    rows = bench(args.algos, args.env, args.timesteps, args.repeats, args.seed)
    info = _info()
    out = {"env": args.env, "info": info, "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2, default=float))
    if not args.worker:
        text = markdown(rows, info, args.env)
        args.json.with_suffix(".md").write_text(text)
        print("\n" + text)
    return out


if __name__ == "__main__":
    main()
