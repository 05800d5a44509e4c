"""The clinical rulebook: tumour size, RECIST 1.1, death and toxicity grading, written once.

Every rule is a compiled scalar function (Numba, :mod:`oncogym._jit`), called by the
environment kernel (one patient at a scan or a day), by the vectorised readouts of
:mod:`oncogym.clinical` and :mod:`oncogym.toxicity` (compiled loops over patients and
times) and by the adaptive baseline policy (on what the clinic measured).  The thresholds
are defined here, once, with their source; the toxicity thresholds per category are in
:mod:`oncogym.toxicity`.

Size
    Each lesion is a sphere of uniform density :data:`CELLS_PER_CM3`: ``d = 10·(6V/π)^(1/3)``
    mm with ``V = cells / density`` cm³ (1e9 cells → 12.41 mm; 1e12 cells → 124.1 mm).

RECIST 1.1 (Eisenhauer et al., Eur J Cancer 2009;45:228–247), on the patient's lesions
    A lesion below ``cr_threshold_mm`` (default :data:`CR_THRESHOLD_MM`) is not seen: its
    measured diameter is 0.  At baseline every lesion seen is a target lesion (the model
    has at most one lesion per site and at most four: RECIST's 5 in all and 2 per organ
    hold) and the baseline is the sum of their diameters; with none the patient is not
    measurable.  At a follow-up scan the sum is over the target lesions seen
    (:func:`lesion_scan`), and in this order of precedence: **PD** if a lesion that was not
    a target is seen (a new lesion) or the sum is at least :data:`PD_INCREASE` (20 %)
    *and* :data:`PD_MIN_INCREASE_MM` (5 mm) above the nadir (smallest sum so far, baseline
    included, so a lesion reappearing after CR is PD); **NE** if the baseline was not
    measurable; **CR** if no lesion is seen; **PR** if the sum is at least
    :data:`PR_DECREASE` (30 %) below baseline; **SD** otherwise.  Boundaries are inclusive
    within :data:`TOL_MM`.  Progression is absorbing (every later scan is PD).  Best
    overall response (no confirmation) counts the scans up to and including the first
    PD: CR, PR and PD always count, SD only from :data:`MIN_SD_DAYS` after baseline.  A
    mixed (dissociated) response is a scan with one target lesion 30 % below its baseline
    and another 20 % (and 5 mm) above it, or a new lesion (:func:`dissociated`).

Death
    The first of: the patient's cumulative hazard of death (background plus a burden- and
    site-dependent cancer hazard, a model state) reaching their death threshold (a
    unit-exponential draw), interpolated linearly in the hazard between output days
    (:func:`hazard_crossing_day`); the tumour burden reaching the lethal burden (default
    :data:`LETHAL_CELLS`), interpolated linearly in ln(cells); a grade-5 toxicity.

Toxicity grades
    The number of thresholds a value is below (blood counts) or at or above (signals,
    accumulated doses; within a relative :data:`AT_LEAST_RTOL`); a fatal run is a value
    below a threshold on every day of a span (profound neutropenia).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from oncogym._jit import jit

CELLS_PER_CM3 = 1e9
"""Tumour cells per cm³ of tissue (≈ 1 g): the classical approximation (Del Monte, Cell
Cycle 2009;8:505–506, who argues real tumours hold fewer, ~1e8; unverified here)."""
LETHAL_CELLS = 1e12
"""Lethal tumour burden of a solid tumour (cells, ≈ 1 kg): the classical approximation
(unverified here); scenarios set their own."""
CR_THRESHOLD_MM = 10.0
"""RECIST 1.1: a lesion is measurable from 10 mm, a lymph node is normal below 10 mm."""
PR_DECREASE = 0.30
"""RECIST 1.1 partial response: at least a 30 % decrease from baseline."""
PD_INCREASE = 0.20
"""RECIST 1.1 progression: at least a 20 % increase over the nadir ..."""
PD_MIN_INCREASE_MM = 5.0
"""... and at least 5 mm in absolute terms."""
MIN_SD_DAYS = 42.0
"""RECIST 1.1 leaves the minimum interval for stable disease to the protocol; 6 weeks is
the usual choice (the first on-treatment scan of most trials)."""
TOL_MM = 1e-9
"""Boundaries of the RECIST rules are inclusive within this many mm (rounding)."""
AT_LEAST_RTOL = 1e-9
"""A value within this relative distance below an "at or above" threshold reaches it, so
that round-off in accumulated quantities (30 × 2 Gy → BED₃ 99.99999999999997) does not
flip a grade."""

DAYS_PER_YEAR = 365.25
"""Days per (Julian) year: QALYs and life-years."""
DAYS_PER_MONTH = DAYS_PER_YEAR / 12.0
"""Days per month, for comparing medians with trial reports in months."""

# Response codes (the values of oncogym.clinical.Response)
CR, PR, SD, PD, NE = 0, 1, 2, 3, 4


class Recist(NamedTuple):
    """The RECIST settings of a readout (defaults: RECIST 1.1, the constants above)."""

    cr_threshold_mm: float = CR_THRESHOLD_MM
    pr_decrease: float = PR_DECREASE
    pd_increase: float = PD_INCREASE
    pd_min_increase_mm: float = PD_MIN_INCREASE_MM
    min_sd_days: float = MIN_SD_DAYS


RECIST_1_1 = Recist()


# --- size ------------------------------------------------------------------------------
@jit
def diameter_mm(cells, cells_per_cm3):
    """Diameter (mm) of a sphere of ``cells`` tumour cells at ``cells_per_cm3``."""
    return 10.0 * np.cbrt(6.0 * (max(cells, 0.0) / cells_per_cm3) / np.pi)


@jit
def cells_of_diameter(mm, cells_per_cm3):
    """Tumour cells in a sphere of diameter ``mm`` (the inverse of :func:`diameter_mm`)."""
    vol_cm3 = math.pi / 6.0 * (mm / 10.0) ** 3
    return vol_cm3 * cells_per_cm3


# --- RECIST 1.1 ------------------------------------------------------------------------
@jit
def is_visible(true_mm, rule):
    """Whether a lesion of ``true_mm`` is seen on a scan (at least the CR threshold, > 0)."""
    return true_mm >= rule.cr_threshold_mm and true_mm > 0.0


@jit
def is_progression(measured_mm, visible, nadir_mm, rule):
    """RECIST progression of a follow-up measurement over the nadir (mm)."""
    rise = measured_mm - nadir_mm
    return (
        visible
        and rise >= rule.pd_increase * nadir_mm - TOL_MM
        and rise >= rule.pd_min_increase_mm - TOL_MM
    )


@jit
def scan_response(measured_mm, visible, baseline_mm, measurable, nadir_mm, rule, new_lesion=False):
    """RECIST category of one follow-up scan (before absorbing progression).

    ``measured_mm`` is the sum of the target lesions' measured diameters, ``visible``
    whether any lesion is seen, ``new_lesion`` whether a lesion that was not a target at
    baseline is seen now (unequivocal progression).
    """
    if new_lesion or is_progression(measured_mm, visible, nadir_mm, rule):
        return PD
    if not measurable:
        return NE
    if not visible:
        return CR
    if measured_mm <= (1.0 - rule.pr_decrease) * baseline_mm + TOL_MM:
        return PR
    return SD


@jit
def counts_for_best_response(category, days_since_baseline, rule):
    """Whether a scan's category can be the best overall response (SD only when late)."""
    if category == CR or category == PR or category == PD:
        return True
    return category == SD and days_since_baseline >= rule.min_sd_days - 1e-9


@jit
def follow_up(
    measured_mm,
    visible,
    days_since_baseline,
    baseline_mm,
    measurable,
    nadir_mm,
    progressed,
    best,
    rule,
    new_lesion=False,
):
    """One follow-up scan: ``(category, nadir_mm, progressed, best)`` after it.

    Progression is absorbing; the best overall response counts the scans up to and
    including the first PD; the nadir takes the new measurement.
    """
    cat = scan_response(measured_mm, visible, baseline_mm, measurable, nadir_mm, rule, new_lesion)
    now_pd = cat == PD
    if progressed:
        cat = PD
    elif counts_for_best_response(cat, days_since_baseline, rule) and cat < best:
        best = cat
    return cat, min(nadir_mm, measured_mm), progressed or now_pd, best


@jit
def lesion_scan(lesion_mm, target, seen0, rule):
    """Read one scan of several lesions: ``(sum_mm, any_visible, new_lesion)``.

    ``lesion_mm`` are the lesions' diameters as the scan sees them (mm); ``seen0`` which
    lesions were seen at baseline and ``target`` which of those are target lesions (seen
    at a measurable site: every such lesion, at most one per site here, so at most 5 and
    2 per organ; bone lesions are not measurable).  The sum is over the target lesions
    seen (a target no longer seen counts 0); a lesion seen now that was not seen at
    baseline is a new lesion.  At baseline call it with ``seen0`` = the visible lesions.
    """
    total = 0.0
    visible = False
    new = False
    for i in range(lesion_mm.shape[0]):
        if is_visible(lesion_mm[i], rule):
            visible = True
            if target[i]:
                total += lesion_mm[i]
            elif not seen0[i]:
                new = True
    return total, visible, new


@jit
def baseline_lesions(lesion_mm, measurable_site, target, seen0, rule):
    """Write which lesions a baseline scan sees (``seen0``) and which are targets."""
    for i in range(lesion_mm.shape[0]):
        seen0[i] = is_visible(lesion_mm[i], rule)
        target[i] = seen0[i] and measurable_site[i]


@jit
def dissociated(lesion_mm, baseline_mm, target, rule):
    """Whether a scan shows a mixed (dissociated) response: one target lesion at least
    ``pr_decrease`` (30 %) below its baseline while another is at least ``pd_increase``
    (20 %) and ``pd_min_increase_mm`` above its baseline, or a new lesion appears while a
    target shrinks."""
    shrinks = False
    grows = False
    for i in range(lesion_mm.shape[0]):
        seen = is_visible(lesion_mm[i], rule)
        d = lesion_mm[i] if seen else 0.0
        if target[i]:
            if d <= (1.0 - rule.pr_decrease) * baseline_mm[i] + TOL_MM:
                shrinks = True
            rise = d - baseline_mm[i]
            if (
                rise >= rule.pd_increase * baseline_mm[i] - TOL_MM
                and rise >= rule.pd_min_increase_mm - TOL_MM
            ):
                grows = True
        elif seen:
            grows = True
    return shrinks and grows


# --- death -----------------------------------------------------------------------------
@jit
def lethal_crossing_day(t0, cells0, t1, cells1, lethal_cells):
    """Day the burden reaches ``lethal_cells`` between ``(t0, cells0)`` and ``(t1, cells1)``.

    Linear in ln(cells); ``t1`` when the earlier count is 0.
    """
    if cells0 > 0.0:
        lo = math.log(cells0)
        frac = (math.log(lethal_cells) - lo) / (math.log(cells1) - lo)
        frac = min(max(frac, 0.0), 1.0)
        return t0 + frac * (t1 - t0)
    return t1


@jit
def hazard_crossing_day(t0, hazard0, t1, hazard1, threshold):
    """Day the cumulative hazard reaches the patient's ``threshold`` between ``(t0,
    hazard0)`` and ``(t1, hazard1)``: linear in the hazard (it rises smoothly)."""
    if hazard1 <= hazard0:
        return t1
    frac = min(max((threshold - hazard0) / (hazard1 - hazard0), 0.0), 1.0)
    return t0 + frac * (t1 - t0)


# --- toxicity grades -------------------------------------------------------------------
@jit
def grade_below(value, thresholds):
    """Number of ``thresholds`` that ``value`` is below (counts: ANC, ALC)."""
    g = 0
    for i in range(thresholds.shape[0]):
        if value < thresholds[i]:
            g += 1
    return g


@jit
def grade_at_least(value, thresholds):
    """Number of ``thresholds`` that ``value`` reaches (signals, accumulated doses)."""
    g = 0
    for i in range(thresholds.shape[0]):
        if value >= thresholds[i] * (1.0 - AT_LEAST_RTOL):
            g += 1
    return g


@jit
def low_run_start(value, threshold, day, run_start):
    """First day of the current run of ``value`` below ``threshold`` (``inf``: not low)."""
    if value < threshold:
        return run_start if math.isfinite(run_start) else day
    return np.inf
