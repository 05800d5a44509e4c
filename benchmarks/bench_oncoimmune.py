"""Speed of the batched core on ``oncoimmune`` against SciPy, at matched tolerances.

Workload (issue 3, item 7): the melanoma scenario's virtual patients (a 1,024-patient
cohort, ``Cohort("melanoma", 1024, seed)``: every patient with its own parameters and
initial burden) under the CheckMate 067 combination — nivolumab 1 mg/kg + ipilimumab
3 mg/kg every 3 weeks ×4, then nivolumab 3 mg/kg every 2 weeks — for ``--days`` days
(28 states; checkpoint PK, priming, Tregs, toxicity states all active).

Contenders, on the same patients, schedule and tolerances (rtol ``RTOL``, the model's
per-state absolute tolerances, no extinction floor):

* ``oncogym batch`` — :meth:`oncogym.scenarios.Cohort.run`, i.e. one
  :func:`oncogym.simulate_batch` call (parallel, compiled, adaptive DOPRI5/RODAS4);
  also timed with the default 1-cell extinction floor;
* ``solve_ivp RK45`` and ``solve_ivp LSODA`` — SciPy with a plain-Python right-hand
  side: the compiled kernel's Python source, ``oncoimmune.rhs.py_func``, called with
  NumPy arrays (its helper functions stay compiled, so this is if anything faster than
  a hand-written Python RHS), split at every dose (doses applied with
  ``oncoimmune.dose.py_func``), as peer projects integrate.

Each method's error is measured on the SciPy subset of patients against a tight
reference (Radau, rtol 1e-10, same Python RHS), relative to max(|reference|, 1e3 × atol)
per state (helpers shared with ``bench_core.py``).  SciPy is timed on
``--scipy-patients`` patients; every rate is in simulated patient-days per second;
timings are medians of ``--repeats`` runs (SciPy: at most 3).

Run: ``python benchmarks/bench_oncoimmune.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
from pathlib import Path

import numba
import numpy as np
import scipy
from scipy.integrate import solve_ivp

import oncogym
from oncogym import integrate
from oncogym.models import oncoimmune
from oncogym.scenarios import Cohort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import median_time

MODEL = oncogym.models.get("oncoimmune")
SCENARIO = "melanoma"
PROTOCOL = "nivolumab_ipilimumab"
RTOL = 1e-8
FLOOR = 1e3 * MODEL.atol
"""Absolute floor of the error metric per state (1e3 × the state's atol)."""
STIFF = integrate.STAT_NAMES.index("stiff_steps")


def rel_error(y: np.ndarray, ref: np.ndarray) -> float:
    """max |y − ref| / (|ref| + FLOOR) over times and states.

    :param y: trajectory (n_times × n_states)
    :param ref: reference trajectory of the same shape
    """
    return float(np.max(np.abs(y - ref) / (np.abs(ref) + FLOOR)))


def scipy_solve(
    method: str,
    p: np.ndarray,
    y0: np.ndarray,
    schedule: list[tuple[str, float, float, float]],
    days: float,
    rtol: float,
    atol: np.ndarray,
) -> np.ndarray:
    """One patient with ``solve_ivp`` and the Python RHS; y on the daily grid.

    Bolus doses only (the benchmark protocol has no infusions); the state reported at a
    dose day is the state before the dose, as in the core.

    :param method: a ``solve_ivp`` method
    :param p: parameter row
    :param y0: initial state
    :param schedule: ``(therapy, day, amount, 0)`` entries
    :param days: horizon (integer days)
    :param rtol: relative tolerance
    :param atol: per-state absolute tolerances
    """
    rhs_py = oncoimmune.rhs.py_func
    dose_py = oncoimmune.dose.py_func
    u = np.zeros(len(MODEL.therapies))
    dydt = np.zeros(MODEL.n_states)

    def f(t: float, y: np.ndarray) -> np.ndarray:
        rhs_py(t, y, p, u, dydt)
        return dydt.copy()

    t_out = np.arange(int(days) + 1, dtype=np.float64)
    out = np.empty((t_out.size, MODEL.n_states))
    out[0] = y0
    y = y0.copy()
    events = sorted((d, MODEL.therapy_index(th), a) for th, d, a, _ in schedule)
    edges = sorted({0.0, float(days), *(e[0] for e in events)})
    for t0, t1 in itertools.pairwise(edges):
        for d, k, a in events:
            if d == t0:
                dose_py(k, a, y, p)
        mask = (t_out > t0) & (t_out <= t1)
        t_eval = np.union1d(t_out[mask], [t1])
        sol = solve_ivp(f, (t0, t1), y, method=method, rtol=rtol, atol=atol, t_eval=t_eval)
        if not sol.success:
            raise RuntimeError(f"solve_ivp {method} failed: {sol.message}")
        out[mask] = sol.y.T[np.searchsorted(t_eval, t_out[mask])]
        y = np.maximum(sol.y[:, -1], 0.0)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=1024)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--scipy-patients", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for CI smoke tests")
    ap.add_argument("--json", type=Path, help="write the results here as JSON")
    args = ap.parse_args(argv)
    if args.quick:
        args.patients, args.days, args.scipy_patients, args.repeats = 16, 60, 1, 1

    cohort = Cohort(SCENARIO, args.patients, args.seed)
    weights = cohort.weights_kg()
    if np.ptp(weights) > 0:
        raise RuntimeError("the benchmark assumes one shared schedule (equal body weights)")
    sched = cohort.scenario.protocol(PROTOCOL).schedule(args.days, weight_kg=float(weights[0]))
    atol = MODEL.atol
    kw = dict(days=args.days, rtol=RTOL, extinction=False)

    # warm-up (compilation is not part of the measurement)
    Cohort(SCENARIO, 2, args.seed).run(PROTOCOL, **kw)
    t_batch, _ = median_time(lambda: cohort.run(PROTOCOL, **kw), args.repeats)
    batch = cohort.run(PROTOCOL, **kw)
    kw_floor = {**kw, "extinction": True}
    t_floor, _ = median_time(lambda: cohort.run(PROTOCOL, **kw_floor), args.repeats)
    batch_floor = cohort.run(PROTOCOL, **kw_floor)
    patient_days = args.patients * args.days

    k = args.scipy_patients
    idx = np.linspace(0, args.patients - 1, k).astype(int)
    refs = [
        scipy_solve("Radau", cohort.params[i], cohort.y0[i], sched, args.days, 1e-10, 1e-3 * atol)
        for i in idx
    ]
    rows = [
        {
            "method": "oncogym batch (Cohort.run → simulate_batch, auto DOPRI5/Rodas4)",
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
    ]
    scipy_repeats = max(1, min(args.repeats, 3))
    for method in ("RK45", "LSODA"):
        results: dict[str, list[np.ndarray]] = {}

        def run(method: str = method, results: dict = results) -> None:
            results["y"] = [
                scipy_solve(method, cohort.params[i], cohort.y0[i], sched, args.days, RTOL, atol)
                for i in idx
            ]

        t, _ = median_time(run, scipy_repeats)
        rows.append(
            {
                "method": f"solve_ivp {method}, Python RHS (rhs.py_func)",
                "patients": k,
                "seconds": t,
                "patient_days_per_s": k * args.days / t,
                "error": max(rel_error(y, r) for y, r in zip(results["y"], refs, strict=True)),
            }
        )
    base = {r["method"].split(",")[0]: r["patient_days_per_s"] for r in rows}
    for r in rows:
        r["speedup_vs_RK45"] = r["patient_days_per_s"] / base["solve_ivp RK45"]
        r["speedup_vs_LSODA"] = r["patient_days_per_s"] / base["solve_ivp LSODA"]
    info = {
        "workload": f"oncoimmune, Cohort({SCENARIO!r}, {args.patients}, {args.seed}) under "
        f"{PROTOCOL} (CheckMate 067), {args.days} days, rtol {RTOL}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
        "cpus": os.cpu_count(),
        "repeats": args.repeats,
        "scipy_repeats": scipy_repeats,
        "batch_statuses_ok": int(np.sum(batch.status == 0)),
        "batch_steps_per_patient_median": float(np.median(batch.stats[:, 0])),
        "batch_stiff_patients": int(np.sum(batch.stats[:, STIFF] > 0)),
    }
    print(f"# bench_oncoimmune: {info['workload']}")
    print(
        f"# {info['cpus']} CPUs, numba {info['numba']} ({info['numba_threads']} threads), "
        f"scipy {info['scipy']}; medians of {args.repeats} runs (SciPy: {scipy_repeats}); "
        f"error vs Radau rtol 1e-10 on {k} patients"
    )
    print()
    print("| method | patients | time (s) | patient-days/s | × RK45 | × LSODA | max rel. error |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['method']} | {r['patients']} | {r['seconds']:.3f} | "
            f"{r['patient_days_per_s']:,.0f} | {r['speedup_vs_RK45']:,.0f} | "
            f"{r['speedup_vs_LSODA']:,.0f} | {r['error']:.1e} |"
        )
    out = {"info": info, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
