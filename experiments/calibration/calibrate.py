"""Calibrate the six oncogym scenarios against published trials and write the report.

For each scenario (``src/oncogym/scenario_data/<name>.yaml``) this script

1. starts from the hand-written distributions (the ``.fitted.yaml`` file is ignored, so a
   rerun reproduces the same fit);
2. fits the scenario's free knobs (``calibration.knobs`` in its YAML: a handful of
   distribution medians/CVs) by Nelder–Mead in the normalised knob box (log scale where
   the knob says so) on a fixed *training* cohort (``Cohort.train(scenario, n_fit, 0)``),
   so the objective is deterministic (common random numbers: every evaluation draws the
   same standard normals);
3. writes the fitted values to ``src/oncogym/scenario_data/<name>.fitted.yaml``, which
   :func:`oncogym.scenarios.load_scenario` merges over the hand-written file;
4. re-runs every arm on the named *test* cohort (``Cohort.test(scenario, n)``, 1,000
   patients by default, disjoint from the training cohort) and writes
   ``experiments/calibration/REPORT.md``: simulated against published figures, the
   ordering of arms, extra readouts, seeds, cohort sizes and wall times.

The loss is the sum over the *fit* targets (``role: fit``; ``validation`` targets, from
other trials or arms, are only reported) of ((simulated − published) / tolerance)² for
``within`` targets and (distance outside the band / tolerance)² for ``at_least`` /
``at_most`` targets (a bound without tolerance is scaled by 8 points, 1.5 months or 0.15),
plus 4 for every published ordering of arms that is not kept.
Each arm is one batched :meth:`oncogym.scenarios.Cohort.run` call (one parallel
``simulate_batch`` over all patients).

Run from the repository root::

    python experiments/calibration/calibrate.py                 # fit all six, then report
    python experiments/calibration/calibrate.py --no-fit        # report the committed fit
    python experiments/calibration/calibrate.py --scenarios melanoma nsclc --maxfev 40
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.optimize import minimize

import oncogym
from oncogym import calibration, clinical, scenarios

HERE = Path(__file__).resolve().parent
REPORT = HERE / "REPORT.md"
RTOL = 1e-6
"""Integrator tolerance of every cohort run (the trial readouts move by far less than the
cohort's sampling error between 1e-6 and 1e-8)."""
ORDER_PENALTY = 4.0
DEFAULT_FIT_PATIENTS = 200


@dataclass
class Args:
    """Command-line options (see ``--help``)."""

    scenarios: list[str]
    fit_patients: int | None
    patients: int
    maxfev: int
    fit: bool
    report: Path
    restarts: int = 1
    warm_start: bool = False


# --- knobs ---------------------------------------------------------------------------------
def knob_value(knob: scenarios.Knob, u: float) -> float:
    """Knob value at normalised position ``u`` in [0, 1].

    :param knob: the knob
    :param u: position in its box
    """
    u = min(max(u, 0.0), 1.0)
    if knob.log:
        return float(math.exp(math.log(knob.low) + u * (math.log(knob.high) - math.log(knob.low))))
    return float(knob.low + u * (knob.high - knob.low))


def knob_position(knob: scenarios.Knob, value: float) -> float:
    """Normalised position of ``value`` in the knob's box (clipped to [0, 1]).

    :param knob: the knob
    :param value: a knob value
    """
    if knob.log:
        u = (math.log(value) - math.log(knob.low)) / (math.log(knob.high) - math.log(knob.low))
    else:
        u = (value - knob.low) / (knob.high - knob.low)
    return min(max(u, 0.0), 1.0)


def _entry(data: dict[str, Any], path: str) -> tuple[dict[str, Any], str, str]:
    """The mapping that holds a knob's distribution, the distribution's key, the attribute."""
    *keys, name, attr = path.split(".")
    node = data
    for k in keys:
        node = node[k]
    return node, name, attr


def current_value(data: dict[str, Any], path: str) -> float:
    """The value at a knob path (``params.<name>.<median|cv>``, ``lesions.burden.median``,
    ``lesions.sites.<site>.infiltration.cv``, …) in scenario data.

    :param data: scenario data (merged YAML)
    :param path: the knob path
    """
    node, name, attr = _entry(data, path)
    entry = node[name]
    if isinstance(entry, (int, float)):
        return float(entry) if attr == "median" else 0.0
    return float(entry.get(attr, 0.0))


def with_knobs(data: dict[str, Any], values: dict[str, float]) -> dict[str, Any]:
    """A copy of scenario data with knob values set.

    :param data: scenario data
    :param values: knob path -> value
    """
    out = copy.deepcopy(data)
    for path, v in values.items():
        node, name, attr = _entry(out, path)
        entry = node.get(name, {})
        if isinstance(entry, (int, float)):
            entry = {"median": float(entry)}
        entry = dict(entry)
        entry[attr] = float(v)
        node[name] = entry
    return out


# --- evaluation -------------------------------------------------------------------------------
def run_arms(
    sc: scenarios.Scenario, cohort: scenarios.Cohort, role: str | None = None
) -> dict[str, calibration.ArmSummary]:
    """Run every arm the scenario's targets (of ``role``, default all) need, one batched
    call each.

    :param sc: the scenario
    :param cohort: its cohort
    :param role: ``fit`` for the fit's arms only
    """
    return {
        arm: calibration.run_arm(cohort, arm, rtol=RTOL)
        for arm in calibration.scenario_arms(sc, role)
    }


def fit_targets(sc: scenarios.Scenario) -> list[scenarios.CalibrationTarget]:
    """The targets that enter the fit's loss (``role: fit``)."""
    return [t for t in sc.targets if t.role == "fit"]


def _default_scale(metric: str) -> float:
    """Loss scale of a one-sided bound given without tolerance: 1.5 months, 0.15 for a
    ratio, 8 points for a rate."""
    if metric.endswith("months"):
        return 1.5
    return 0.15 if metric.endswith("ratio") else 0.08


def loss(checks: Sequence[calibration.TargetCheck]) -> float:
    """The calibration loss of a set of target checks (module docstring).

    :param checks: targets with simulated values
    """
    total = 0.0
    for c in checks:
        t = c.target
        scale = t.tolerance if t.tolerance > 0 else _default_scale(t.metric)
        if not math.isfinite(c.error):
            total += 100.0
        elif t.kind == "within":
            total += ((c.simulated - t.value) / scale) ** 2
        else:
            total += (c.error / scale) ** 2
    total += ORDER_PENALTY * sum(not ok for _, ok in calibration.ordering_checks(checks))
    return total


def fit(name: str, args: Args, log: Any) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit one scenario's knobs on its training cohort.

    :param name: scenario name
    :param args: options
    :param log: a print-like function
    :return: fitted knob values and fit information
    """
    data = scenarios.scenario_data(name, fitted=False)
    sc0 = scenarios.validate_scenario(data, where=name)
    knobs = sc0.calibration.knobs
    n_fit = args.fit_patients or sc0.calibration.fit_patients or DEFAULT_FIT_PATIENTS
    # the start: the scenario file's values, or (--warm-start) the committed fitted ones
    start_data = scenarios.scenario_data(name, fitted=True) if args.warm_start else data
    u0 = np.array([knob_position(k, current_value(start_data, k.path)) for k in knobs])
    cache: dict[tuple[float, ...], float] = {}
    best: dict[str, Any] = {"loss": math.inf, "u": u0}
    t0 = time.perf_counter()

    def objective(u: np.ndarray) -> float:
        key = tuple(np.round(np.clip(u, 0.0, 1.0), 6))
        if key in cache:
            return cache[key]
        values = {k.path: knob_value(k, float(x)) for k, x in zip(knobs, u, strict=True)}
        sc = scenarios.validate_scenario(with_knobs(data, values), where=name)
        cohort = scenarios.Cohort.train(sc, n_fit, 0)
        try:
            checks = calibration.check_targets(fit_targets(sc), run_arms(sc, cohort, "fit"))
            out = loss(checks)
        except oncogym.SimulationError as exc:  # a knob setting the integrator cannot handle
            log(f"  [{name}] integration failed at {values}: {exc}")
            out = 1e6
        out += 100.0 * float(np.sum(np.clip(u - 1.0, 0.0, None) + np.clip(-u, 0.0, None)))
        cache[key] = out
        if out < best["loss"]:
            best.update(loss=out, u=np.clip(u, 0.0, 1.0).copy())
            shown = ", ".join(f"{p.split('.', 1)[1]}={v:.4g}" for p, v in values.items())
            log(f"  [{name}] eval {len(cache):3d} loss {out:8.3f}  {shown}")
        return out

    start = objective(u0)
    # Nelder-Mead in rounds: each round restarts from the best point so far with a fresh,
    # smaller simplex (a collapsed simplex stalls on a loss that is a step function of the
    # knobs: rates over a fixed cohort)
    rounds = max(1, args.restarts + 1)
    for r in range(rounds if knobs else 0):
        budget = args.maxfev - len(cache)
        if budget <= 0:
            break
        step = 0.15 / (1 + r)
        u_start = best["u"]
        simplex = [u_start] + [
            np.clip(
                u_start + step * np.eye(len(knobs))[i] * (1 if u_start[i] < 1 - step else -1),
                0.0,
                1.0,
            )
            for i in range(len(knobs))
        ]
        minimize(
            objective,
            u_start,
            method="Nelder-Mead",
            options={
                "maxfev": budget if r == rounds - 1 else max(budget // (rounds - r), 1),
                "initial_simplex": np.array(simplex),
                "xatol": 1e-3,
                "fatol": 1e-3,
            },
        )
    values = {k.path: knob_value(k, float(x)) for k, x in zip(knobs, best["u"], strict=True)}
    info = {
        "fit_patients": n_fit,
        "fit_cohort": "Cohort.train(scenario, fit_patients, k=0)",
        "start": "the fitted values before this fit" if args.warm_start else "the scenario file",
        "start_loss": round(start, 4),
        "loss": round(best["loss"], 4),
        "evaluations": len(cache),
        "wall_s": time.perf_counter() - t0,
    }
    return values, info


def write_fitted(name: str, values: dict[str, float], info: dict[str, Any]) -> Path:
    """Write ``<name>.fitted.yaml`` (fitted knob values plus how they were obtained).

    :param name: scenario name
    :param values: knob path -> value
    :param info: fit information
    """
    out: dict[str, Any] = {
        "calibration_info": {k: v for k, v in info.items() if k != "wall_s"}
        | {"fit_wall_s": round(info["wall_s"], 1), "script": "experiments/calibration/calibrate.py"}
    }
    for path, v in values.items():
        *keys, attr = path.split(".")
        node = out
        for k in keys:
            node = node.setdefault(k, {})
        node[attr] = float(f"{v:.6g}")
    path = scenarios.SCENARIO_DIR / f"{name}.fitted.yaml"
    header = (
        f"# Calibrated values of scenario {name!r}, written by experiments/calibration/"
        "calibrate.py.\n# Do not edit by hand: rerun the script.  Merged over "
        f"{name}.yaml by oncogym.scenarios.load_scenario.\n"
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_text(header + yaml.safe_dump(out, sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


# --- report ---------------------------------------------------------------------------------
def _fmt(metric: str, v: float) -> str:
    if not math.isfinite(v):
        return "not reached" if v == math.inf else "n/a"
    if metric.endswith("months"):
        return f"{v:.1f} mo"
    if metric.endswith("ratio"):
        return f"{v:.2f}"
    return f"{100 * v:.1f} %"


def _tol(t: scenarios.CalibrationTarget) -> str:
    if t.metric.endswith("months"):
        tol = f"{t.tolerance:.1f} mo"
    elif t.metric.endswith("ratio"):
        tol = f"{t.tolerance:.2f}"
    else:
        tol = f"{100 * t.tolerance:.0f} pts"
    if t.tolerance == 0 and t.kind != "within":
        return {"at_least": "≥ value", "at_most": "≤ value"}[t.kind]
    sign = {"within": "±", "at_least": "≥ value −", "at_most": "≤ value +"}[t.kind]
    return f"{sign} {tol}"


def _pct(x: float) -> str:
    return "–" if not math.isfinite(x) else f"{100 * x:.1f} %"


def arm_lines(arms: dict[str, calibration.ArmSummary]) -> list[str]:
    """A Markdown table of the usual readouts of every arm.

    :param arms: summaries by arm
    """
    lines = [
        "| arm | ORR | CR | SD as best | PD as best | median PFS | median OS | OS 12 mo "
        "| deaths before progression | grade ≥ 3 (any) | grade 5 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for arm, s in arms.items():
        bor = s.best_response
        worst = np.max(np.stack(list(s.worst_grades.values())), axis=0)
        severe = clinical.grade3plus(s.worst_grades)
        mp = clinical.median_survival_days(*s.pfs) / clinical.DAYS_PER_MONTH
        mo = clinical.median_survival_days(*s.os) / clinical.DAYS_PER_MONTH
        lines.append(
            f"| {arm} | {100 * np.mean(clinical.objective_response(bor)):.1f} % | "
            f"{100 * np.mean(bor == clinical.Response.CR):.1f} % | "
            f"{100 * np.mean(bor == clinical.Response.SD):.1f} % | "
            f"{100 * np.mean(bor == clinical.Response.PD):.1f} % | {_fmt('months', mp)} | "
            f"{_fmt('months', mo)} | "
            f"{100 * clinical.survival_at(*s.os, 12 * clinical.DAYS_PER_MONTH):.1f} % | "
            f"{_pct(calibration.deaths_before_progression(s))} | "
            f"{100 * np.mean(severe):.1f} % | "
            f"{100 * np.mean(worst == 5):.1f} % |"
        )
    return lines


FIGURES = HERE / "figures"
"""Where the report's survival figures go (``<scenario>_os.png``)."""

_SURVIVAL_METRICS = {
    "os": ("os_rate", "median_os_months"),
    "pfs": ("pfs_rate", "median_pfs_months"),
}
"""The published figures each survival figure draws: landmark rates and medians."""
_ENDPOINT_WORDS = {"os": "overall survival", "pfs": "progression-free survival"}
LANDMARK_NUDGE_MONTHS = 0.35
"""A validation landmark at the month of a fit landmark of the same arm is drawn this much
to the right, so that neither marker hides the other."""


def plot_survival(
    name: str,
    sc: scenarios.Scenario,
    arms: dict[str, calibration.ArmSummary],
    checks: Sequence[calibration.TargetCheck],
    path: Path,
    endpoint: str = "os",
) -> None:
    """Kaplan–Meier OS (or PFS) of every arm with a published figure of that endpoint, with
    those figures on it.

    Published landmarks (``os_rate``, ``pfs_rate``) are points at their month with the
    tolerance as an error bar; medians (``median_os_months``, ``median_pfs_months``) are
    points at S = 0.5 with theirs; one-sided bounds are triangles whose bar shows the
    tolerance on the side the bound allows.  Filled: fit targets; hollow outline: validation
    (nudged right by :data:`LANDMARK_NUDGE_MONTHS` where it shares its month with a fit
    landmark of the same arm).

    :param name: scenario name
    :param sc: the scenario
    :param arms: summaries by arm
    :param checks: the target checks
    :param path: where to write the PNG
    :param endpoint: ``os`` or ``pfs``
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from oncogym.survival import kaplan_meier

    rate_metric, _ = _SURVIVAL_METRICS[endpoint]
    words = _ENDPOINT_WORDS[endpoint]
    shown = [c for c in checks if c.target.metric in _SURVIVAL_METRICS[endpoint]]
    names = list(dict.fromkeys(c.target.arm for c in shown))
    if not names:
        return
    colours = plt.get_cmap("tab10").colors
    fig, ax = plt.subplots(figsize=(8.0, 5.2))
    horizon_months = sc.horizon_days / clinical.DAYS_PER_MONTH
    for k, arm in enumerate(names):
        colour = colours[k % len(colours)]
        km = kaplan_meier(*getattr(arms[arm], endpoint))
        end_days = sc.horizon_days
        if endpoint == "pfs":
            # progression-free survivors are censored at their last scan, so past the last
            # scan only the deaths are left at risk and the curve would drop to 0: end there
            end_days = float(arms[arm].scan_days[-1])
        keep = km.time_days <= end_days
        t_km, s_km = km.time_days[keep], km.survival[keep]
        end = end_days / clinical.DAYS_PER_MONTH
        t = np.concatenate([[0.0], t_km / clinical.DAYS_PER_MONTH, [end]])
        surv = np.concatenate([[1.0], s_km, [s_km[-1] if s_km.size else 1.0]])
        ax.step(t, surv, where="post", color=colour, lw=1.6, label=arm.replace("_", " "))
        landmarks_fitted = {
            float(c.target.at_months)
            for c in shown
            if c.target.arm == arm and c.target.metric == rate_metric and c.target.role == "fit"
        }
        for c in shown:
            tg = c.target
            if tg.arm != arm:
                continue
            if tg.metric == rate_metric:
                x, y, yerr, xerr = float(tg.at_months), tg.value, tg.tolerance, 0.0
                if tg.role != "fit" and x in landmarks_fitted:
                    x += LANDMARK_NUDGE_MONTHS  # beside the fit target at the same month
            else:
                x, y, yerr, xerr = tg.value, 0.5, 0.0, tg.tolerance
            face = colour if tg.role == "fit" else "white"
            marker = {"within": "o", "at_least": "^", "at_most": "v"}[tg.kind]
            # a bound's bar runs only on the side its tolerance allows (value − tol for
            # at least, value + tol for at most)
            side = {"within": [[1.0], [1.0]], "at_least": [[1.0], [0.0]]}.get(
                tg.kind, [[0.0], [1.0]]
            )
            ax.errorbar(
                x,
                y,
                yerr=np.asarray(side) * yerr,
                xerr=np.asarray(side) * xerr,
                fmt=marker,
                ms=7,
                mfc=face,
                mec=colour,
                ecolor=colour,
                capsize=3,
                lw=1.0,
            )
    ax.set_xlim(0, horizon_months * 1.04)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("months from the start of treatment")
    ax.set_ylabel(f"{words} (Kaplan–Meier)")
    ax.set_title(
        f"{sc.title}\nsimulated {words} (lines) against the published figures (markers)",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    from matplotlib.lines import Line2D

    handles += [
        Line2D([], [], marker="o", ls="", mfc="grey", mec="grey", label="fit target"),
        Line2D([], [], marker="o", ls="", mfc="white", mec="grey", label="validation target"),
        Line2D([], [], marker="^", ls="", mfc="white", mec="grey", label="lower / upper bound"),
    ]
    ax.legend(handles=handles, fontsize=7, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def population_lines(sc: scenarios.Scenario, cohort: scenarios.Cohort) -> list[str]:
    """How the scenario's virtual patients are made (lesions, selection), for the report."""
    out = []
    m = cohort.model
    slots = scenarios.lesion_slots(m)
    cells = np.stack(
        [
            cohort.y0[:, m.state_names.index(a)] + cohort.y0[:, m.state_names.index(b)]
            for a, b in slots
        ],
        axis=1,
    )
    sld = scenarios.baseline_sld_mm(sc, m, cohort.y0)
    q25, q50, q75 = np.quantile(sld, [0.25, 0.5, 0.75])
    total = cells.sum(axis=1)
    b25, b50, b75 = np.quantile(total, [0.25, 0.5, 0.75])
    measured = (
        f"Test cohort at baseline: sum of target diameters {q50:.0f} mm (IQR {q25:.0f}-{q75:.0f}), "
        f"tumour cells {b50:.2g} (IQR {b25:.2g}-{b75:.2g})"
    )
    if sc.lesions is not None:
        per = (cells > 0).sum(axis=1)
        shares = ", ".join(
            f"{k.replace('_', ' ')} {100 * np.mean(cells[:, i] > 0):.0f} %"
            for i, k in enumerate(sc.lesions.sites)
        )
        measured += f"; lesions per patient {np.mean(per):.2f} ({shares})"
    out.append(measured + ".")
    if sc.lesions is not None:
        sites = ", ".join(
            f"{k.replace('_', ' ')} ({100 * v.prevalence:.0f} %"
            + (", not measurable" if not v.measurable else "")
            + ")"
            for k, v in sc.lesions.sites.items()
        )
        out.append(f"Lesions: up to {len(sc.lesions.sites)} per patient, at {sites}.")
    if sc.selection is not None and sc.selection.median is None:
        out.append(
            "Virtual population: plausible patients from the distributions; only those with "
            f"measurable disease are accepted ({sc.selection.source.strip()})."
        )
    elif sc.selection is not None:
        sel = sc.selection
        out.append(
            f"Virtual population: plausible patients from the distributions, selected by "
            f"acceptance–rejection (Allen et al. 2016) so that the baseline sum of target "
            f"diameters is log-normal with median {sel.median:g} mm and cv {sel.cv:g} "
            f"({sel.source.strip()}); patients without measurable disease are not accepted."
        )
    else:
        out.append("Virtual population: the distributions as given (no selection).")
    return [*out, ""]


def evaluate(name: str, args: Args) -> tuple[list[str], bool, float]:
    """Run the fitted scenario on the test cohort; its report section.

    :param name: scenario name
    :param args: options
    :return: Markdown lines, the summary cells (knobs, fit / validation targets and
        orderings met), wall seconds
    """
    t0 = time.perf_counter()
    sc = scenarios.load_scenario(name)
    cohort = scenarios.Cohort.test(sc, args.patients)
    arms = run_arms(sc, cohort)
    wall = time.perf_counter() - t0
    checks = calibration.check_targets(sc.targets, arms)
    orders = calibration.ordering_checks(checks)
    knobs = sc.calibration.knobs
    figures = {ep: FIGURES / f"{name}_{ep}.png" for ep in _SURVIVAL_METRICS}
    for ep, figure in figures.items():
        plot_survival(name, sc, arms, checks, figure, ep)
    n_fit = sum(c.target.role == "fit" for c in checks)
    n_val = len(checks) - n_fit
    if n_val == 0:
        status = "no validation targets: the fit is not tested on figures it did not see"
    else:
        status = f"validated on {n_val} figures the fit never saw"
    if len(knobs) >= n_fit:
        status += (
            f"; {len(knobs)} knobs for {n_fit} fit targets: the fit targets are "
            "*identified* (matched by construction), not evidence of validity"
        )
    else:
        status += f"; {len(knobs)} knobs for {n_fit} fit targets"
    lines = [
        f"## {sc.title} (`{name}`)",
        "",
        f"Test cohort: `Cohort.test({name!r}, {args.patients})`; {len(arms)} arms (one batched "
        f"call each, {sc.horizon_days:.0f} days).  Knobs {len(knobs)}, fit targets {n_fit}, "
        f"validation targets {n_val}: {status}.",
        "",
        *population_lines(sc, cohort),
        "",
    ]
    missed: list[str] = []
    for role, title in (("fit", "Fit targets"), ("validation", "Validation targets")):
        mine = [c for c in checks if c.target.role == role]
        if not mine:
            continue
        met = sum(c.met for c in mine)
        lines += [
            f"{title} ({met} of {len(mine)} met):",
            "",
            "| target | arm | published | simulated | tolerance | met | source |",
            "|---|---|---:|---:|---|:-:|---|",
        ]
        for c in mine:
            t = c.target
            what = calibration.target_label(t)
            lines.append(
                f"| {what} | {t.arm} | {_fmt(t.metric, t.value)} | "
                f"{_fmt(t.metric, c.simulated)} | {_tol(t)} | {'yes' if c.met else '**no**'} "
                f"| {t.source} |"
            )
            if not c.met:
                why = t.note.strip() or "no reason recorded"
                missed.append(f"* {role}: {what}, {t.arm}: {why}")
        lines.append("")
    if missed:
        lines += ["Missed targets and why:", "", *missed, ""]
    if orders:
        lines += [
            "Published ordering of arms (fit targets, and validation targets of one trial; "
            "one landmark at a time):",
            "",
        ]
        lines += [f"* {d}: {'kept' if ok else '**not kept**'}" for d, ok in orders]
    for ep, figure in figures.items():
        if figure.exists():
            lines += [
                "",
                f"![Simulated {_ENDPOINT_WORDS[ep]} and the published figures]"
                f"(figures/{figure.name})",
            ]
    lines += [
        "",
        "All arms (readouts not targeted are shown for context; *deaths before progression*: "
        "the share of the arm's deaths that came before any RECIST progression):",
        "",
    ]
    lines += arm_lines(arms)
    if knobs:
        data = scenarios.scenario_data(name)
        lines += ["", f"Fitted knobs ({sc.calibration.note.strip()}):", ""]
        lines += ["| knob | fitted | box |", "|---|---:|---|"]
        lines += [
            f"| `{k.path}` | {current_value(data, k.path):.4g} | [{k.low:g}, {k.high:g}]"
            f"{' log' if k.log else ''} |"
            for k in knobs
        ]
    fit_met = sum(c.met for c in checks if c.target.role == "fit")
    val_met = sum(c.met for c in checks if c.target.role == "validation")
    order_ok = sum(ok for _, ok in orders)
    cells = f"{len(knobs)} | {fit_met} / {n_fit} | {val_met} / {n_val} | {order_ok} / {len(orders)}"
    lines.append("")
    return lines, cells, wall


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--scenarios",
        nargs="+",
        default=scenarios.available_scenarios(),
        help="scenarios to fit (the report always evaluates all of them)",
    )
    ap.add_argument(
        "--fit-patients",
        type=int,
        default=None,
        help=f"training cohort size (default: the scenario's calibration.fit_patients, else "
        f"{DEFAULT_FIT_PATIENTS})",
    )
    ap.add_argument("--patients", type=int, default=1000, help="test cohort size (report)")
    ap.add_argument(
        "--maxfev", type=int, default=200, help="loss evaluations per scenario (all rounds)"
    )
    ap.add_argument(
        "--restarts",
        type=int,
        default=1,
        help="Nelder-Mead restarts from the best point, with a smaller simplex",
    )
    ap.add_argument(
        "--warm-start",
        action="store_true",
        help="start the fit from the committed fitted values (<name>.fitted.yaml) instead of "
        "the scenario file's",
    )
    ap.add_argument("--no-fit", dest="fit", action="store_false", help="only evaluate and report")
    ap.add_argument("--report", type=Path, default=REPORT)
    ap.add_argument("--no-report", dest="write_report", action="store_false", help="only fit")
    ns = ap.parse_args(argv)
    args = Args(
        ns.scenarios,
        ns.fit_patients,
        ns.patients,
        ns.maxfev,
        ns.fit,
        ns.report,
        ns.restarts,
        ns.warm_start,
    )
    for name in args.scenarios:
        if name not in scenarios.available_scenarios():
            ap.error(f"--scenarios: unknown {name!r}; allowed: {scenarios.available_scenarios()}")

    def log(msg: str) -> None:
        print(msg, flush=True)

    t_all = time.perf_counter()
    fit_info: dict[str, dict[str, Any]] = {}
    if args.fit:
        for name in args.scenarios:
            log(f"fitting {name} ...")
            values, info = fit(name, args, log)
            write_fitted(name, values, info)
            fit_info[name] = info
            log(
                f"  [{name}] done: loss {info['start_loss']} -> {info['loss']} in "
                f"{info['evaluations']} evaluations, {info['wall_s']:.0f} s"
            )
    scenarios._load_cached.cache_clear()
    if not ns.write_report:
        return 0

    sections: list[str] = []
    summary = [
        "| scenario | knobs | fit targets met | validation targets met | orderings kept | "
        "fit cohort | fit loss (start → end) | fit evaluations | fit wall time |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for name in scenarios.available_scenarios():  # the report always covers every scenario
        log(f"evaluating {name} on the test cohort ...")
        lines, cells, wall = evaluate(name, args)
        log(f"  [{name}] test cohort: {wall:.1f} s")
        sections += lines
        info = fit_info.get(name)
        if info is None:
            fitted = scenarios.SCENARIO_DIR / f"{name}.fitted.yaml"
            stored = yaml.safe_load(fitted.read_text()) if fitted.exists() else {}
            info = (stored or {}).get("calibration_info", {})
        fit_s = info.get("wall_s", info.get("fit_wall_s"))
        wall_fit = "–" if fit_s is None else f"{fit_s:.0f} s"
        summary.append(
            f"| {name} | {cells} | {info.get('fit_patients', '–')} | "
            f"{info.get('start_loss', '–')} → "
            f"{info.get('loss', '–')} | {info.get('evaluations', '–')} | {wall_fit} |"
        )
    total = time.perf_counter() - t_all
    cmd = "python experiments/calibration/calibrate.py --no-fit"
    header = [
        "# Calibration report",
        "",
        "Written by `experiments/calibration/calibrate.py`; every number below comes from "
        "running it.",
        "",
        f"* reproduce: `{cmd}` rewrites this file identically (every number here comes "
        "from the committed scenario files; nothing depends on the machine or the thread "
        "count); `python experiments/calibration/calibrate.py` refits first",
        "* fit: Nelder–Mead over each scenario's knobs on its training cohort "
        "`Cohort.train(scenario, n_fit, 0)` (seed "
        f"`SeedSequence({scenarios.ROOT_SEED}, spawn_key=(1, 0))`; n_fit in the table), "
        "minimising the squared misses of the *fit* targets only (the loss in the module "
        "docstring); the fitted values are in `<name>.fitted.yaml` with their "
        "`calibration_info`",
        "* validation: the *validation* targets (other trials or arms, chosen before the "
        "fit) never enter the loss; they are only computed here",
        f"* report: the test cohort `Cohort.test(scenario, {args.patients})` (seed "
        f"`SeedSequence({scenarios.ROOT_SEED}, spawn_key=(0,))`), disjoint from the "
        f"training cohort; integrator `simulate_batch`, rtol {RTOL:g}, daily output",
        "* virtual patients: plausible patients from each scenario's distributions; where a "
        "scenario has a `selection`, accepted by acceptance–rejection (Allen RJ, Rieger TR, "
        "Musante CJ. CPT Pharmacometrics Syst Pharmacol 2016;5:140-146) so that their "
        "baseline sum of target diameters follows the trials' published distribution",
        "* rates are over all patients; toxicity (`grade3_4_rate`, the column grade ≥ 3) "
        "counts the patients whose worst grade over the days they live (to death or the "
        "horizon) is 3, 4 or 5 (toxic deaths included) in the target's category, or in "
        "any: `oncogym.clinical.grade3plus`, the definition of the evaluator's `grade3_any` "
        "(the same protocol on the same patients gives the same figure; an arm that "
        "switches at progression excepted, which the evaluator reads off its noisy scans "
        "and this report off the true lesions); the targets are the trials' "
        "treatment-related grade 3–4 (or 3–5) figures, and the model has no other adverse "
        "events; tolerances ±8 points for rates",
        "* the arms' table also gives *deaths before progression*: the share of an arm's "
        "deaths that came before any RECIST progression "
        "(`oncogym.calibration.deaths_before_progression`). In trials of advanced solid "
        "tumours nearly every patient progresses before dying; a high share means the "
        "virtual patients die with stable disease, their survival tied to the burden they "
        "start with rather than to progression, so the arm's PFS and OS cannot both match",
        "",
        *summary,
        "",
    ]
    text = "\n".join(header + sections) + "\n"
    tmp = args.report.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, args.report)
    log(f"wrote {args.report} ({total:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
