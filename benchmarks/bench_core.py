"""Speed of the batched core against SciPy on de Pillis 2006, at matched accuracy.

Workload (issue 2): ``depillis2006`` patient 9 with every parameter varied
log-normally (CV 20 %) and a log-uniform tumour burden 1e6–1e8 cells, 365 days,
chemotherapy (1-day infusion every 21 days) plus IL-2 (weekly 1-day infusions).

Contenders, all on the same patients and schedule:

* ``oncogym batch`` — :func:`oncogym.simulate_batch`, one parallel compiled call;
* ``oncogym loop`` — :func:`oncogym.simulate` called once per patient from Python;
* ``solve_ivp RK45`` — SciPy's default method with a plain Python right-hand side,
  split at the dose breakpoints (how peer projects integrate);
* ``solve_ivp LSODA`` — the same with SciPy's stiff/non-stiff switching solver.

All run at rtol 1e-8 with the core's per-state absolute tolerances and no extinction
floor, so they solve the same problem (the core is also timed with its default
1-cell extinction floor, which ends the integration of cleared tumours early); each
method's error is measured against a tight reference (Radau, rtol 1e-11) on the
SciPy subset of patients, relative to max(|reference|, 1e3 × atol) per state.  SciPy is
timed on a subset (``--scipy-patients``) and every rate is in simulated
patient-days per second.  Timings are medians of ``--repeats`` runs.

Run: ``python benchmarks/bench_core.py`` (add ``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np
import scipy

import oncogym

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference_models import depillis2006 as python_rhs
from reference_models import solve_reference

MODEL = "depillis2006"
RTOL = 1e-8


def cohort(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    m = oncogym.models.get(MODEL)
    rng = np.random.default_rng(seed)
    cv = 0.2
    sigma = math.sqrt(math.log(1 + cv**2))
    base = m.params_array()
    P = base * rng.lognormal(-(sigma**2) / 2, sigma, size=(n, base.size))
    Y0 = np.tile(m.state_array(), (n, 1))
    Y0[:, 0] = 10 ** rng.uniform(6, 8, n)
    return P, Y0


def schedule(days: int) -> list[tuple[str, float, float, float]]:
    chemo = [("chemo", float(d), 3.0, 1.0) for d in range(0, days, 21)]
    il2 = [("il2", float(d), 5e6, 1.0) for d in range(3, days, 7)]
    return chemo + il2


def scipy_solve(method, p_row, y_row, sched, days, atol):
    """Integrate one patient with solve_ivp and a Python RHS; returns y on the daily grid."""
    m = oncogym.models.get(MODEL)
    p = dict(zip(m.param_names, p_row, strict=True))
    y0 = dict(zip(m.state_names, y_row, strict=True))
    if method == "Radau-ref":
        return solve_reference(m, days, params=p, y0=y0, schedule=sched, rtol=1e-11, atol=1e-11)[1]
    return solve_reference(
        m,
        days,
        params=p,
        y0=y0,
        schedule=sched,
        method=method,
        rtol=RTOL,
        atol=atol,
        rhs=python_rhs,
    )[1]


FLOOR = 1e3 * oncogym.models.get(MODEL).atol
"""Absolute floor of the error metric per state: 1e3 × atol (1e-3 cells, 1e-5 mg/L of
drug, 10 IU/L of IL-2): below it no method's tolerance controls the value."""


def rel_error(y, ref):
    """max |y − ref| / (|ref| + FLOOR): relative error wherever a value is resolved."""
    return float(np.max(np.abs(y - ref) / (np.abs(ref) + FLOOR)))


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=1024)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--scipy-patients", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for CI smoke tests")
    ap.add_argument("--json", type=Path, help="write the results here as JSON")
    args = ap.parse_args(argv)
    if args.quick:
        args.patients, args.days, args.scipy_patients, args.repeats = 16, 60, 2, 1

    m = oncogym.models.get(MODEL)
    P, Y0 = cohort(args.patients, args.seed)
    sched = schedule(args.days)
    atol = m.atol
    kw = dict(params=P, y0=Y0, schedules=sched, rtol=RTOL, extinction=False)

    # warm-up (compilation is not part of the measurement)
    oncogym.simulate_batch(MODEL, args.days, **{**kw, "params": P[:2], "y0": Y0[:2]})
    t_batch, _ = median_time(lambda: oncogym.simulate_batch(MODEL, args.days, **kw), args.repeats)
    batch = oncogym.simulate_batch(MODEL, args.days, **kw)
    kw_floor = {**kw, "extinction": True}
    t_floor, _ = median_time(
        lambda: oncogym.simulate_batch(MODEL, args.days, **kw_floor), args.repeats
    )
    batch_floor = oncogym.simulate_batch(MODEL, args.days, **kw_floor)
    patient_days = args.patients * args.days

    n_loop = min(args.patients, 128)

    def loop():
        for i in range(n_loop):
            oncogym.simulate(
                MODEL,
                args.days,
                params=dict(zip(m.param_names, P[i], strict=True)),
                y0=dict(zip(m.state_names, Y0[i], strict=True)),
                schedule=sched,
                rtol=RTOL,
                extinction=False,
            )

    t_loop, _ = median_time(loop, args.repeats)

    k = args.scipy_patients
    idx = np.linspace(0, args.patients - 1, k).astype(int)
    refs = [scipy_solve("Radau-ref", P[i], Y0[i], sched, args.days, atol) for i in idx]
    rows = [
        {
            "method": "oncogym batch (auto DOPRI5/Rodas4)",
            "patients": args.patients,
            "seconds": t_batch,
            "patient_days_per_s": patient_days / t_batch,
            "error": max(rel_error(batch.y[i], r) for i, r in zip(idx, refs, strict=True)),
        },
        {
            "method": "oncogym batch, default 1-cell extinction floor",
            "patients": args.patients,
            "seconds": t_floor,
            "patient_days_per_s": patient_days / t_floor,
            "error": max(rel_error(batch_floor.y[i], r) for i, r in zip(idx, refs, strict=True)),
        },
        {
            "method": "oncogym simulate(), Python loop",
            "patients": n_loop,
            "seconds": t_loop,
            "patient_days_per_s": n_loop * args.days / t_loop,
            "error": None,
        },
    ]
    scipy_repeats = max(1, min(args.repeats, 3))
    for method in ("RK45", "LSODA"):
        results = {}

        def run(method=method, results=results):
            results["y"] = [scipy_solve(method, P[i], Y0[i], sched, args.days, atol) for i in idx]

        t, _ = median_time(run, scipy_repeats)
        err = max(rel_error(y, r) for y, r in zip(results["y"], refs, strict=True))
        rows.append(
            {
                "method": f"solve_ivp {method}, Python RHS",
                "patients": k,
                "seconds": t,
                "patient_days_per_s": k * args.days / t,
                "error": err,
            }
        )
    base = {r["method"]: r["patient_days_per_s"] for r in rows}
    for r in rows:
        r["speedup_vs_RK45"] = r["patient_days_per_s"] / base["solve_ivp RK45, Python RHS"]
        r["speedup_vs_LSODA"] = r["patient_days_per_s"] / base["solve_ivp LSODA, Python RHS"]
    info = {
        "workload": f"{MODEL}, {args.patients} patients (params log-normal CV 20 %, T0 "
        f"1e6-1e8), {args.days} days, chemo q21d + IL-2 weekly, rtol {RTOL}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
        "cpus": os.cpu_count(),
        "repeats": args.repeats,
        "batch_statuses_ok": int(np.sum(batch.status == 0)),
        "batch_steps_per_patient_median": float(np.median(batch.stats[:, 0])),
        "batch_stiff_patients": int(np.sum(batch.stats[:, 4] > 0)),
    }
    print(f"# bench_core: {info['workload']}")
    print(
        f"# {info['cpus']} CPUs, numba {info['numba']} ({info['numba_threads']} threads), "
        f"scipy {info['scipy']}; medians of {args.repeats} runs (SciPy: {scipy_repeats})"
    )
    print()
    print("| method | patients | time (s) | patient-days/s | × RK45 | × LSODA | max rel. error |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        err = "—" if r["error"] is None else f"{r['error']:.1e}"
        print(
            f"| {r['method']} | {r['patients']} | {r['seconds']:.3f} | "
            f"{r['patient_days_per_s']:,.0f} | {r['speedup_vs_RK45']:,.0f} | "
            f"{r['speedup_vs_LSODA']:,.0f} | {err} |"
        )
    out = {"info": info, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
