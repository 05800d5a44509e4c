"""Wall time of a small benchmark sweep on the local backend and on a local Ray instance.

The sweep: two scenarios (melanoma, nsclc) × five baselines plus PPO trained with two seeds
(20k steps each), evaluated on 50 test patients — 4 training units and 14 evaluation
units.  Each backend runs it from an empty folder with 2 workers (a 2-process pool; a
2-CPU local Ray instance, its start-up included), ``--repeats`` times; the script reports
the median wall time and checks that the two backends' tables are identical (all
metrics, timing columns aside).  Results: ``benchmarks/results/bench_backends.{json,md}``.

Usage: ``python benchmarks/bench_backends.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from oncogym.agents.benchmark import run_benchmark

SCENARIOS = ("melanoma", "nsclc")
BASELINES = {
    "melanoma": ["no_treatment", "random", "nivolumab", "nivolumab_ipilimumab", "adaptive"],
    "nsclc": ["no_treatment", "random", "pembrolizumab", "platinum_doublet", "adaptive"],
}
TIMING = ("wall_s", "train_wall_s")
OUT = Path(__file__).resolve().parent / "results"


def sweep(out: Path, backend: str) -> None:
    for sc in SCENARIOS:  # baselines differ per scenario: one call each, same folder
        run_benchmark(
            [sc],
            out,
            baselines=BASELINES[sc],
            algos=["ppo"],
            seeds=[0, 1],
            timesteps=20_000,
            n_patients=50,
            backend=backend,
            workers=2,
        )


def tables(out: Path) -> dict[str, pd.DataFrame]:
    res = {}
    for sc in SCENARIOS:
        df = pd.read_csv(out / sc / "metrics.csv")
        res[sc] = df.drop(columns=[c for c in TIMING if c in df.columns])
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import ray

    times: dict[str, list[float]] = {"local": [], "ray": []}
    ref = None
    identical = True
    for _ in range(args.repeats):
        for backend in ("local", "ray"):
            out = Path(tempfile.mkdtemp(prefix=f"sweep_{backend}_"))
            t0 = time.perf_counter()  # Ray's start-up counts: it is part of the backend
            if backend == "ray":
                ray.init(
                    num_cpus=2,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            try:
                sweep(out, backend)
            finally:
                if backend == "ray":
                    ray.shutdown()
            times[backend].append(time.perf_counter() - t0)
            t = tables(out)
            if ref is None:
                ref = t
            else:
                for sc in SCENARIOS:
                    identical &= t[sc].equals(ref[sc])
            shutil.rmtree(out)
    result = {
        "sweep": "melanoma + nsclc: 5 baselines each + PPO 2 seeds x 20k steps, 50 patients",
        "workers": 2,
        "repeats": args.repeats,
        "wall_s": times,
        "median_wall_s": {k: statistics.median(v) for k, v in times.items()},
        "tables_identical": bool(identical),
        "machine": platform.platform(),
        "date": time.strftime("%Y-%m-%d"),
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_backends.json").write_text(json.dumps(result, indent=2))
    md = (
        "| backend | workers | median wall (s) | runs (s) |\n|---|---:|---:|---|\n"
        + "".join(
            f"| {k} | 2 | {result['median_wall_s'][k]:.1f} | {', '.join(f'{x:.1f}' for x in v)} |\n"
            for k, v in times.items()
        )
        + f"\nTables identical across backends and repeats: {identical}.\n"
    )
    (OUT / "bench_backends.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
