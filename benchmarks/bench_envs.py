"""Speed of the environments: steps/s and simulated patient-days/s with random actions.

Workload (issue 4, item 10): ``oncogym/Melanoma-v1`` (oncoimmune, weekly decisions, 2-year
horizon, default discrete actions and clinical observations), random actions drawn in
advance from the action space, episodes reset as they end:

* ``single env`` — :class:`oncogym.envs.OncologyEnv` through ``gymnasium.make`` (with its
  TimeLimit/OrderEnforcing/PassiveEnvChecker wrappers), one step at a time;
* ``vector env`` — :class:`oncogym.envs.OncologyVectorEnv` (``gymnasium.make_vec``) at 64
  and 1,024 envs: one parallel compiled call per step for all patients;
* peers, in the same run where installed: DTR-Bench's ``GhaffariCancerEnv`` (package
  ``DTRGym``) and immunosim's ``CombinationTherapy-v0``; a peer that is not importable is
  reported as skipped.

Simulated patient-days are counted from the env's own clock (``info["day"]``), so the last
shortened interval and early deaths are counted as they are.  Every figure is the median
of ``--repeats`` runs after a warm-up (compilation is not measured).

Run: ``python benchmarks/bench_envs.py`` (``--quick`` for a smoke run); writes
``benchmarks/results/bench_envs.json`` (``--json`` to change).

**Against an earlier revision, in the same run**: ``--against REV`` (a git revision of this
repository, e.g. the release before a change) checks ``REV`` out into a temporary folder
and measures the single env and the 64- and 1,024-env vector env of both trees in alternating
subprocesses (``--rounds`` pairs, each the median of ``--repeats`` runs; each tree keeps its
own compiled-kernel cache), then prints both and the ratio of their medians.  Writes
``benchmarks/results/bench_envs_against.json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numba
import numpy as np
from _revision import run_worker, tree_of

import oncogym

ENV_ID = "oncogym/Melanoma-v1"
RESULTS = Path(__file__).resolve().parent / "results" / "bench_envs.json"
AGAINST = RESULTS.with_name("bench_envs_against.json")


def median_run(fn: Callable[[], tuple[float, float, float]], repeats: int) -> dict[str, float]:
    """Median over repeats of (seconds, env-steps, patient-days) → rates."""
    runs = [fn() for _ in range(repeats)]
    secs = statistics.median(r[0] for r in runs)
    steps = statistics.median(r[1] / r[0] for r in runs)
    days = statistics.median(r[2] / r[0] for r in runs)
    return {"seconds": secs, "steps_per_s": steps, "patient_days_per_s": days}


def bench_single(steps: int, repeats: int, seed: int) -> dict[str, Any]:
    env = gym.make(ENV_ID)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    env.reset(seed=seed)
    for a in actions[:20]:  # warm-up
        _, _, te, tr, _ = env.step(a)
        if te or tr:
            env.reset()

    def run() -> tuple[float, float, float]:
        env.reset(seed=seed)
        day = 0.0
        days = 0.0
        t0 = time.perf_counter()
        for a in actions:
            _, _, te, tr, info = env.step(a)
            days += info["day"] - day
            day = info["day"]
            if te or tr:
                env.reset()
                day = 0.0
        return time.perf_counter() - t0, float(len(actions)), days

    out = median_run(run, repeats)
    out.update(method="oncogym single env (gym.make)", envs=1, steps=steps)
    out["us_per_step"] = 1e6 / out["steps_per_s"]
    return out


def bench_vector(n_envs: int, steps: int, repeats: int, seed: int) -> dict[str, Any]:
    venv = gym.make_vec(ENV_ID, num_envs=n_envs)
    venv.action_space.seed(seed)
    actions = [venv.action_space.sample() for _ in range(steps)]
    venv.reset(seed=seed)
    venv.step(actions[0])  # warm-up

    def run() -> tuple[float, float, float]:
        venv.reset(seed=seed)
        day = np.zeros(n_envs)
        days = 0.0
        t0 = time.perf_counter()
        for a in actions:
            _, _, te, tr, info = venv.step(a)
            done = te | tr
            end = (
                np.where(done, info["final_info"]["day"], info["day"])
                if done.any()
                else info["day"]
            )
            days += float(np.sum(end - day))
            day = np.where(done, 0.0, info["day"])
        return time.perf_counter() - t0, float(n_envs * len(actions)), days

    out = median_run(run, repeats)
    out.update(method=f"oncogym vector env, {n_envs} envs", envs=n_envs, steps=steps)
    return out


def _peer_env(module: str, ids: list[str]) -> tuple[gym.Env | None, str]:
    """Make a peer env if its package imports; otherwise say why not."""
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # any import failure means: not usable here
        return None, f"skipped: {module} not importable ({type(exc).__name__})"
    candidates = list(ids)
    for name in getattr(mod, "registered_id", []) or []:
        if any(i.split("-")[0] in name for i in ids):
            candidates.insert(0, name)
    for env_id in candidates:
        try:
            return gym.make(env_id), env_id
        except Exception:
            continue
    return None, f"skipped: {module} imported but none of {candidates} could be made"


def bench_peer(label: str, module: str, ids: list[str], steps: int, repeats: int, seed: int):
    env, note = _peer_env(module, ids)
    row: dict[str, Any] = {"method": label, "envs": 1, "steps": steps, "note": note}
    if env is None:
        return row
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    env.reset(seed=seed)

    def run() -> tuple[float, float, float]:
        env.reset(seed=seed)
        t0 = time.perf_counter()
        n = 0
        for a in actions:
            _, _, te, tr, _ = env.step(a)
            n += 1
            if te or tr:
                env.reset()
        return time.perf_counter() - t0, float(n), float("nan")

    row.update(median_run(run, repeats))
    row["note"] = f"{note} (patient-days per step depend on the peer's time step)"
    return row


def _worker(path: Path | None, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """This script's single and 1,024-env measurements, in a subprocess on ``path``."""
    options = ["--single-steps", str(args.single_steps), "--vector-steps", str(args.vector_steps)]
    options += ["--repeats", str(args.repeats), "--seed", str(args.seed)]
    return run_worker(__file__, path, options, out)


def against(args: argparse.Namespace) -> dict[str, Any]:
    """Both trees, measured in alternating subprocesses; the ratio of their medians."""
    with tempfile.TemporaryDirectory(prefix="bench_envs_") as tmp:
        ref_path = tree_of(args.against, Path(tmp))
        runs: dict[str, list[dict[str, Any]]] = {"current": [], args.against: []}
        for r in range(args.rounds):
            for label, path in (("current", None), (args.against, ref_path)):
                res = _worker(path, args, Path(tmp) / f"{label}_{r}.json")
                runs[label].append({row["method"]: row for row in res["rows"]})
                print(f"# round {r + 1}/{args.rounds}: {label} done", flush=True)
    metrics = (
        ("oncogym single env (gym.make)", "us_per_step", "µs per step"),
        ("oncogym vector env, 64 envs", "steps_per_s", "env-steps/s"),
        ("oncogym vector env, 1024 envs", "steps_per_s", "env-steps/s"),
    )
    table = []
    for method, key, unit in metrics:
        cur = [run[method][key] for run in runs["current"]]
        ref = [run[method][key] for run in runs[args.against]]
        table.append(
            {
                "method": method,
                "unit": unit,
                "current": cur,
                args.against: ref,
                "ratio": statistics.median(cur) / statistics.median(ref),
            }
        )
    print(f"\n| environment | measure | current (median of rounds) | {args.against} | ratio |")
    print("|---|---|---:|---:|---:|")
    for row in table:
        print(
            f"| {row['method']} | {row['unit']} | {statistics.median(row['current']):,.0f} | "
            f"{statistics.median(row[args.against]):,.0f} | {row['ratio']:.3f} |"
        )
    out = {
        "against": args.against,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "load_average": os.getloadavg(),
        "rows": table,
    }
    AGAINST.parent.mkdir(parents=True, exist_ok=True)
    AGAINST.write_text(json.dumps(out, indent=2, default=float))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--single-steps", type=int, default=2000)
    ap.add_argument("--vector-steps", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    ap.add_argument("--json", type=Path, default=RESULTS, help="where to write the results")
    ap.add_argument("--against", help="a git revision to measure in the same run")
    ap.add_argument("--rounds", type=int, default=3, help="--against: alternating rounds")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.single_steps, args.vector_steps, args.repeats = 200, 5, 1
    if args.against:
        return against(args)
    sizes = (64, 1024) if not args.quick else (64,)

    rows = [bench_single(args.single_steps, args.repeats, args.seed)]
    for n in sizes:
        rows.append(bench_vector(n, args.vector_steps, args.repeats, args.seed))
    peers = [
        (
            "DTR-Bench GhaffariCancerEnv",
            "DTRGym",
            ["GhaffariCancerEnv-continuous", "GhaffariCancerEnv-discrete"],
        ),
        (
            "immunosim CombinationTherapy-v0",
            "immunosim",
            ["immunosim/CombinationTherapy-v0", "CombinationTherapy-v0"],
        ),
    ]
    for label, module, ids in peers if not args.worker else ():
        rows.append(bench_peer(label, module, ids, args.single_steps, args.repeats, args.seed))

    info = {
        "workload": f"{ENV_ID}, random actions, weekly steps, 2-year episodes",
        "oncogym": oncogym.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "gymnasium": gym.__version__,
        "numba_threads": numba.get_num_threads(),
        "package": str(Path(oncogym.__file__).parent),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "repeats": args.repeats,
        "targets": {"single_env_us_per_step": 200, "vector_1024_steps_per_s": 20000},
    }
    print(f"# bench_envs: {info['workload']}")
    print(
        f"# {info['cpus']} CPUs (load average {info['load_average']}), numba {info['numba']} "
        f"({info['numba_threads']} threads), gymnasium {info['gymnasium']}; medians of "
        f"{args.repeats} runs"
    )
    print()
    print("| environment | envs | env-steps/s | µs per step | patient-days/s | note |")
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        if "steps_per_s" not in r:
            print(f"| {r['method']} | {r['envs']} | — | — | — | {r['note']} |")
            continue
        us = 1e6 / r["steps_per_s"] if r["envs"] == 1 else float("nan")
        pdays = r["patient_days_per_s"]
        print(
            f"| {r['method']} | {r['envs']} | {r['steps_per_s']:,.0f} | "
            f"{'—' if us != us else f'{us:,.0f}'} | "
            f"{'—' if pdays != pdays else f'{pdays:,.0f}'} | {r.get('note', '')} |"
        )
    out = {"info": info, "rows": rows}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(out, indent=2, default=float))
        tmp.replace(args.json)
    return out


if __name__ == "__main__":
    main()
