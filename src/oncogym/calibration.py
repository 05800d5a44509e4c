"""Trial-style metrics of protocol arms on a cohort, and their check against published targets.

Used by ``experiments/calibration/calibrate.py`` (the fit and its report) and by the slow
calibration test.  One arm = one :meth:`oncogym.scenarios.Cohort.run` (a single
``simulate_batch`` call) reduced at once to per-patient readouts, so a 1,000-patient
two-year arm never keeps more than one trajectory array in memory.

Metric definitions (``CalibrationTarget.metric``):

* ``orr`` / ``cr_rate`` / ``pd_rate`` / ``dcr`` — best overall response CR or PR / CR /
  PD / CR, PR or SD (RECIST 1.1 on the scenario's scans, :mod:`oncogym.clinical`), all
  patients as denominator; with ``by_day`` only scans up to that day count.
* ``mixed_response_rate`` — share of patients with a mixed (dissociated) response at some
  scan up to the first progression (:func:`oncogym.rules.dissociated`).
* ``remission_rate`` — CR at some scan up to ``by_day`` (leukaemia: burden below the
  scenario's CR threshold, i.e. "overall remission within 3 months" for ``by_day: 91``).
* ``grade3_4_rate`` — share of patients with grade ≥ 3 toxicity in ``category`` (``any``:
  in some category): :func:`oncogym.clinical.grade3plus`, worst grade 3, 4 or 5 over the
  days the patient lives, the definition the evaluator's ``grade3_any`` counts too.  The
  name is the trials' "treatment-related grade 3–4 adverse events", the figure the
  targets compare it with (some trials report grade 3–5; the model's toxicity is all
  treatment-related, and a toxic death, grade 5, was a severe event too);
  ``any_grade_rate`` — worst grade ≥ 1.
* ``median_pfs_months`` / ``median_os_months`` — Kaplan–Meier medians in months of
  365.25/12 days (``inf`` if not reached).
* ``pfs_median_ratio`` / ``os_median_ratio`` — the arm's median over the ``versus`` arm's.
* ``os_rate`` / ``pfs_rate`` — Kaplan–Meier overall / progression-free survival at
  ``at_months`` months (a landmark rate such as "12-month OS 76 %").
* ``os_hazard_ratio`` / ``pfs_hazard_ratio`` — log-rank (observed/expected) estimate of
  the hazard ratio of the arm's overall / progression-free survival against ``versus``:
  HR = (O_a/E_a)/(O_v/E_v).
* ``orr_ratio`` / ``cr_ratio`` / ``grade3_4_ratio`` — the arm's ORR / complete-response
  rate / grade ≥ 3 rate over the ``versus`` arm's (dose–response, dose–toxicity and
  with/without comparisons within or across trials of one drug).
* ``antigen_negative_relapse_share`` — among responders (CR/PR) who later progress, the
  share whose tumour is mostly antigen-negative (T⁻ > T⁺) at the progression scan.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oncogym import clinical
from oncogym.scenarios import CalibrationTarget, Cohort, Scenario, lesion_slots


@dataclass(frozen=True)
class ArmSummary:
    """Per-patient readouts of one arm, small enough to keep for every arm of a fit."""

    arm: str
    n: int
    scan_days: np.ndarray
    """Scan days (n_scans,)."""
    category: np.ndarray
    """RECIST code per patient and scan (n, n_scans)."""
    best_response: np.ndarray
    """Best overall response over all scans (n,)."""
    pfs: clinical.Survival
    os: clinical.Survival
    worst_grades: dict[str, np.ndarray]
    """Worst grade per category and patient."""
    antigen_negative_at_progression: np.ndarray
    """T⁻ > T⁺ at the first PD scan (False where no PD) (n,)."""
    dissociated: np.ndarray | None = None
    """A mixed response at some scan up to the first PD (n,)."""
    baseline_sld_mm: np.ndarray | None = None
    """Baseline sum of the target lesions' diameters (n,)."""
    failed: int = 0
    """Patients whose integration failed (excluded from nothing: a failure raises)."""
    extras: dict[str, Any] = field(default_factory=dict)


def summarise_arm(cohort: Cohort, arm: str, traj: Any) -> ArmSummary:
    """Reduce a cohort run to an :class:`ArmSummary`.

    :param cohort: the cohort that was run
    :param arm: the protocol name (a label)
    :param traj: the :class:`~oncogym.simulate.BatchTrajectory` of ``cohort.run``
    """
    ro = cohort.readouts(traj)
    scans = ro.recist.scan_days
    cat = ro.recist.category
    # antigen status at the first PD scan
    is_pd = cat == clinical.Response.PD
    has_pd = is_pd.any(axis=1)
    first = np.argmax(is_pd, axis=1)
    t = traj.t
    k = np.clip(np.searchsorted(t, scans[first]), 0, t.size - 1)
    rows = np.arange(cohort.n)
    slots = lesion_slots(cohort.model)
    tp = sum(traj[a][rows, k] for a, _ in slots)
    tn = sum(traj[b][rows, k] for _, b in slots)
    neg = has_pd & (tn > tp)
    return ArmSummary(
        arm=arm,
        n=cohort.n,
        scan_days=scans,
        category=cat,
        best_response=ro.best_response,
        pfs=ro.pfs,
        os=ro.os,
        worst_grades=ro.worst_grades,
        antigen_negative_at_progression=neg,
        dissociated=np.asarray(ro.recist.dissociated, dtype=bool),
        baseline_sld_mm=np.sum(ro.recist.lesion_mm[:, :, 0] * ro.recist.target, axis=1),
    )


def subgroup(s: ArmSummary, which: str | None) -> ArmSummary:
    """The patients of an arm below or above its median baseline sum of diameters.

    :param s: the arm
    :param which: ``"sld_below_median"``, ``"sld_above_median"`` or None (the whole arm)
    """
    if which is None:
        return s
    sld = s.baseline_sld_mm
    keep = sld < np.median(sld) if which == "sld_below_median" else sld >= np.median(sld)
    return ArmSummary(
        arm=f"{s.arm} ({which})",
        n=int(keep.sum()),
        scan_days=s.scan_days,
        category=s.category[keep],
        best_response=s.best_response[keep],
        pfs=clinical.Survival(s.pfs.time_days[keep], s.pfs.event[keep]),
        os=clinical.Survival(s.os.time_days[keep], s.os.event[keep]),
        worst_grades={k: v[keep] for k, v in s.worst_grades.items()},
        antigen_negative_at_progression=s.antigen_negative_at_progression[keep],
        dissociated=s.dissociated[keep],
        baseline_sld_mm=sld[keep],
    )


def run_arm(cohort: Cohort, arm: str, **kwargs: Any) -> ArmSummary:
    """Run protocol ``arm`` on ``cohort`` (one batched call) and summarise it.

    :param cohort: the cohort
    :param arm: a protocol name of the cohort's scenario
    :param kwargs: passed to :meth:`Cohort.run` (``rtol``, ``dt``, …)
    """
    traj = cohort.run(arm, **kwargs)
    return summarise_arm(cohort, arm, traj)


def _best_by_day(s: ArmSummary, by_day: float | None) -> np.ndarray:
    if by_day is None:
        return s.best_response
    keep = s.scan_days <= by_day + 1e-9
    return clinical.best_overall_response(s.category[:, keep], s.scan_days[keep])


def _worst_any(s: ArmSummary) -> np.ndarray:
    """Worst grade over every category, per patient."""
    return np.max(np.stack(list(s.worst_grades.values())), axis=0)


def logrank_hazard_ratio(a: clinical.Survival, b: clinical.Survival) -> float:
    """Hazard ratio of ``a`` against ``b`` by the log-rank O/E estimate.

    :param a: survival of the experimental arm
    :param b: survival of the reference arm
    """
    t = np.concatenate([a.time_days, b.time_days])
    e = np.concatenate([a.event, b.event]).astype(bool)
    g = np.concatenate([np.ones(len(a.time_days), bool), np.zeros(len(b.time_days), bool)])
    times = np.unique(t[e])
    if times.size == 0:
        return float("nan")
    o_a = e_a = o_b = e_b = 0.0
    for tt in times:
        at_risk = t >= tt
        n = at_risk.sum()
        n_a = (at_risk & g).sum()
        d = (e & (t == tt)).sum()
        d_a = (e & (t == tt) & g).sum()
        o_a += d_a
        o_b += d - d_a
        e_a += d * n_a / n
        e_b += d * (n - n_a) / n
    if e_a == 0 or e_b == 0 or o_b == 0:
        return float("nan")
    return float((o_a / e_a) / (o_b / e_b))


def deaths_before_progression(s: ArmSummary) -> float:
    """Share of an arm's deaths that came before any RECIST progression: deaths whose
    progression-free survival event is the death itself (NaN without deaths).

    In the trials of advanced solid tumours almost every patient who dies has progressed
    first, so most deaths end a period after progression; a model whose patients die with
    stable disease couples overall survival to the burden at baseline rather than to
    progression.

    :param s: the arm's summary
    """
    died = np.asarray(s.os.event, bool)
    if not died.any():
        return float("nan")
    first = np.asarray(s.pfs.event, bool) & (
        np.asarray(s.pfs.time_days, float) >= np.asarray(s.os.time_days, float)
    )
    return float(np.sum(died & first) / np.sum(died))


def metric(target: CalibrationTarget, arms: Mapping[str, ArmSummary]) -> float:
    """The simulated value of ``target``'s metric.

    :param target: the target (metric, arm, and its options)
    :param arms: summaries by arm name (must contain ``target.arm`` and ``target.versus``)
    """
    s = subgroup(arms[target.arm], target.subgroup)
    m = target.metric
    v = None if target.versus is None else subgroup(arms[target.versus], target.versus_subgroup)
    if m in ("orr", "cr_rate", "pd_rate", "dcr"):
        bor = _best_by_day(s, target.by_day)
        if m == "orr":
            return float(np.mean(clinical.objective_response(bor)))
        if m == "pd_rate":
            return float(np.mean(bor == clinical.Response.PD))
        if m == "dcr":
            return float(np.mean(bor <= clinical.Response.SD))
        return float(np.mean(bor == clinical.Response.CR))
    if m == "mixed_response_rate":
        return float(np.mean(s.dissociated))
    if m == "remission_rate":
        keep = s.scan_days <= (target.by_day or math.inf) + 1e-9
        return float(np.mean(np.any(s.category[:, keep] == clinical.Response.CR, axis=1)))
    if m == "grade3_4_rate":
        return float(np.mean(clinical.grade3plus(s.worst_grades, target.category or "any")))
    if m == "any_grade_rate":
        cat = target.category or "any"
        worst = _worst_any(s) if cat == "any" else s.worst_grades[cat]
        return float(np.mean(worst >= 1))
    if m == "median_pfs_months":
        return clinical.median_survival_days(*s.pfs) / clinical.DAYS_PER_MONTH
    if m == "median_os_months":
        return clinical.median_survival_days(*s.os) / clinical.DAYS_PER_MONTH
    if m in ("pfs_median_ratio", "os_median_ratio"):
        assert v is not None
        which = "pfs" if m.startswith("pfs") else "os"
        num = clinical.median_survival_days(*getattr(s, which))
        den = clinical.median_survival_days(*getattr(v, which))
        return float(num / den) if den > 0 else float("nan")
    if m in ("os_rate", "pfs_rate"):
        # past the last follow-up day (24 months = 730.5 days of a 730-day horizon) the
        # estimate is the last one
        surv = s.os if m == "os_rate" else s.pfs
        return clinical.survival_at(*surv, float(target.at_months) * clinical.DAYS_PER_MONTH)
    if m in ("os_hazard_ratio", "pfs_hazard_ratio"):
        which = "pfs" if m.startswith("pfs") else "os"
        assert v is not None
        return logrank_hazard_ratio(getattr(s, which), getattr(v, which))
    if m in ("orr_ratio", "cr_ratio", "grade3_4_ratio"):
        assert v is not None
        base = target.model_copy(
            update={
                "metric": {"orr_ratio": "orr", "cr_ratio": "cr_rate"}.get(m, "grade3_4_rate"),
                "versus": None,
                "subgroup": None,
            }
        )
        pair = {"arm": s, "versus": v}
        num = metric(base.model_copy(update={"arm": "arm"}), pair)
        den = metric(base.model_copy(update={"arm": "versus"}), pair)
        return num / den if den > 0 else float("nan")
    if m == "antigen_negative_relapse_share":
        responders = clinical.objective_response(s.best_response)
        relapsed = responders & np.any(s.category == clinical.Response.PD, axis=1)
        if not relapsed.any():
            return float("nan")
        return float(np.mean(s.antigen_negative_at_progression[relapsed]))
    raise ValueError(f"metric: unknown metric {m!r}")


@dataclass(frozen=True)
class TargetCheck:
    """One target, its simulated value and whether it is met."""

    target: CalibrationTarget
    simulated: float
    met: bool

    @property
    def error(self) -> float:
        """Signed distance outside the tolerance band (0 when met)."""
        t = self.target
        v = self.simulated
        if not math.isfinite(v):
            # a median not reached (inf) meets a lower bound; anything else undefined misses
            return 0.0 if v == math.inf and t.kind == "at_least" else math.inf
        lo = t.value - t.tolerance if t.kind in ("within", "at_least") else -math.inf
        hi = t.value + t.tolerance if t.kind in ("within", "at_most") else math.inf
        return 0.0 if lo <= v <= hi else (v - hi if v > hi else v - lo)


def target_label(target: CalibrationTarget) -> str:
    """A target in words, as the calibration report's first column writes it (e.g.
    ``"os_rate at 24 months"``, ``"grade3_4_rate (crs)"``, ``"os_hazard_ratio vs x"``)."""
    what = target.metric
    what += f" ({target.category})" if target.category not in (None, "any") else ""
    what += f" by day {target.by_day:.0f}" if target.by_day else ""
    what += f" at {target.at_months:g} months" if target.at_months else ""
    return what + (f" vs {target.versus}" if target.versus else "")


def check_targets(
    targets: Iterable[CalibrationTarget], arms: Mapping[str, ArmSummary], *, widen: float = 1.0
) -> list[TargetCheck]:
    """Every target with its simulated value; ``widen`` multiplies the tolerances.

    :param targets: the scenario's targets
    :param arms: summaries by arm name
    :param widen: tolerance factor (e.g. 1.5 for a smaller cohort)
    """
    out = []
    for t in targets:
        v = metric(t, arms)
        tt = t.model_copy(update={"tolerance": t.tolerance * widen})
        check = TargetCheck(tt, v, True)
        out.append(TargetCheck(tt, v, check.error == 0.0))
    return out


def ordering_checks(checks: Sequence[TargetCheck]) -> list[tuple[str, bool]]:
    """Published ordering of arms per metric: for each metric (and category, response
    window and landmark) with fit targets on several arms, the simulated values must rank
    the arms as the published ones do; so must validation targets of one ``trial``.
    Landmarks are not mixed (a 24-month rate of one arm is not ranked against a 12-month
    rate of another), and validation figures without a shared ``trial`` are not ranked:
    they come from other trials and populations, and a ranking across trials (CheckMate
    066's nivolumab against KEYNOTE-006's pembrolizumab) is not a published ordering.

    :param checks: the result of :func:`check_targets`
    :return: ``(description, kept)`` per metric group with at least two arms
    """
    Group = tuple[str, str | None, float | None, float | None, str | None]
    groups: dict[Group, list[TargetCheck]] = {}
    for c in checks:
        t = c.target
        if t.metric.endswith("ratio") or t.kind != "within":
            continue
        if t.role != "fit" and t.trial is None:
            continue
        trial = None if t.role == "fit" else t.trial
        groups.setdefault((t.metric, t.category, t.by_day, t.at_months, trial), []).append(c)
    out = []
    for (m, cat, _, at, trial), cs in groups.items():
        if len({c.target.arm for c in cs}) < len(cs) or len(cs) < 2:
            continue  # one figure per arm (figures of one arm from two trials are not ranked)
        pub = sorted(cs, key=lambda c: c.target.value)
        sim_ok = all(
            a.simulated < b.simulated
            for a, b in itertools.pairwise(pub)
            if a.target.value < b.target.value
        )
        label = " < ".join(c.target.arm for c in pub)
        what = m + ("" if cat in (None, "any") else f" ({cat})")
        what += "" if at is None else f" at {at:g} months"
        what += "" if trial is None else f" ({trial}, validation)"
        out.append((f"{what}: {label}", sim_ok))
    return out


def scenario_arms(scenario: Scenario, role: str | None = None) -> list[str]:
    """The arms a scenario's targets need (``calibration.arms`` plus every target arm).

    :param scenario: the scenario
    :param role: only the targets of this role (``fit`` or ``validation``); all by default
    """
    arms = list(scenario.calibration.arms)
    for t in scenario.targets:
        if role is not None and t.role != role:
            continue
        for a in (t.arm, t.versus):
            if a is not None and a not in arms:
                arms.append(a)
    return arms


__all__ = [
    "ArmSummary",
    "TargetCheck",
    "check_targets",
    "logrank_hazard_ratio",
    "metric",
    "ordering_checks",
    "run_arm",
    "scenario_arms",
    "summarise_arm",
]
