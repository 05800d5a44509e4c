"""CTCAE-like toxicity grades (0–5) from the toxicity states of ``oncoimmune``.

Grades are computed at every output time, in the layout that
:mod:`oncogym.clinical` takes (``worst_grade``, ``patient_readouts(grades=...)``): the
worst grade of a category is the maximum over time.  Grade 5 is death and is absorbing:
once reached, every later time has grade 5.  Thresholds (module constants):

* **neutropenia** — ANC (cells/L, the Friberg ``ANC`` state) below 2.0e9 (G1, LLN),
  1.5e9 (G2), 1.0e9 (G3), 0.5e9 (G4): CTCAE v5 "neutrophil count decreased" (as
  recalled; unverified).  G5 (fatal neutropenic infection, a deterministic proxy chosen
  here): ANC below 0.1e9/L on every output time of a span of at least 14 days;
  needs the time axis, and is judged on the output grid.
* **lymphopenia** — ALC (cells/L) below 1.0e9 (G1, LLN), 0.8e9, 0.5e9, 0.2e9 (G4):
  CTCAE v5 "lymphocyte count decreased" (unverified); CTCAE has no grade 5
  here.  ALC = C / ``alc_volume_l`` (the model parameter maps the homeostatic
  C* = 6.25e10 cells to 2.0e9 cells/L).
* **irae** — the cumulative irAE hazard H (dimensionless; 1 − e^{−H} is the chance of
  an immune-related adverse event by then) graded deterministically by thresholds
  H ≥ 0.1, 0.5, 1, 2, 10 for G1…G5 (chosen; the calibration fits the hazard rate and
  its spread across patients, not these cut-offs).
* **crs** — the IL-6-like signal (pg/mL) ≥ 40, 150, 500, 2000, 10000 for G1…G5
  (chosen, standing in for the ASTCT grades; peak IL-6 rises with CRS grade, unverified).
  The grade follows the current signal, so the worst CRS grade is that of the peak.
* **radiation_late** — accumulated late-tissue BED (Gy₃) ≥ 100, 117, 133, 150, 183
  for G1…G5, i.e. EQD2 ≥ 60, 70, 80, 90, 110 Gy (chosen from typical normal-tissue
  tolerance doses, unverified; 60 Gy in 30 fractions gives BED₃ = 100, grade 1).

The grading rules themselves (counting thresholds below or reached, with a relative
round-off of ``AT_LEAST_RTOL`` = 1e-9 for "at or above"; the run of profound neutropenia)
are those of the rulebook :mod:`oncogym.rules`, which the environments call too;
:data:`GRADING` is the one table of what each category grades, which the environments
read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from oncogym import rules
from oncogym._jit import jit
from oncogym.models.oncoimmune import MODEL as _ONCOIMMUNE

NEUTROPENIA_ANC_PER_L = (2.0e9, 1.5e9, 1.0e9, 0.5e9)
"""ANC below these (cells/L) gives grades 1–4."""
NEUTROPENIA_FATAL_ANC_PER_L = 0.1e9
"""ANC below this (cells/L) for ``NEUTROPENIA_FATAL_DAYS`` in a row gives grade 5."""
NEUTROPENIA_FATAL_DAYS = 14.0
LYMPHOPENIA_ALC_PER_L = (1.0e9, 0.8e9, 0.5e9, 0.2e9)
"""ALC below these (cells/L) gives grades 1–4."""
IRAE_HAZARD = (0.1, 0.5, 1.0, 2.0, 10.0)
"""Cumulative irAE hazard at or above these gives grades 1–5 (grade 5 at 10: about 1 % of
patients on nivolumab + ipilimumab with the melanoma calibration, as the treatment-related
deaths of CheckMate 067, against 7 % with a threshold of 5)."""
CRS_IL6_PG_ML = (40.0, 150.0, 500.0, 2000.0, 10000.0)
"""IL-6-like signal (pg/mL) at or above these gives grades 1–5."""
RADIATION_LATE_BED_GY3 = (100.0, 117.0, 133.0, 150.0, 183.0)
"""Late-tissue BED (Gy₃) at or above these gives grades 1–5."""

AT_LEAST_RTOL = rules.AT_LEAST_RTOL
"""See :data:`oncogym.rules.AT_LEAST_RTOL`."""

GRADE_DEATH = 5


class Category(NamedTuple):
    """What one toxicity category grades, and how."""

    state: str
    """The ``oncoimmune`` state graded"""
    per_param: str | None
    """A parameter the state is divided by (ALC = C / ``alc_volume_l``), or None"""
    thresholds: tuple[float, ...]
    """Grade g is reached at the g-th threshold"""
    below: bool
    """True: the grade counts the thresholds the value is below (blood counts); False:
    the thresholds it reaches (signals, accumulated doses)"""
    fatal_run: bool
    """Grade 5 after :data:`NEUTROPENIA_FATAL_DAYS` below
    :data:`NEUTROPENIA_FATAL_ANC_PER_L` (profound neutropenia)"""


GRADING: dict[str, Category] = {
    "neutropenia": Category("ANC", None, NEUTROPENIA_ANC_PER_L, True, True),
    "lymphopenia": Category("C", "alc_volume_l", LYMPHOPENIA_ALC_PER_L, True, False),
    "irae": Category("irAE", None, IRAE_HAZARD, False, False),
    "crs": Category("IL6", None, CRS_IL6_PG_ML, False, False),
    "radiation_late": Category("BED_late", None, RADIATION_LATE_BED_GY3, False, False),
}
"""Every toxicity category of ``oncoimmune``: the one table the readouts and the
environments grade from."""
CATEGORIES = tuple(GRADING)


@jit
def _grade_values(values, thresholds, below, out):
    for i in range(values.shape[0]):
        if below:
            out[i] = rules.grade_below(values[i], thresholds)
        else:
            out[i] = rules.grade_at_least(values[i], thresholds)


def _grades_of(x: np.ndarray, category: Category) -> np.ndarray:
    """Grades of the values ``x`` (any shape) by the rulebook."""
    out = np.empty(x.shape, dtype=np.int8)
    thr = np.asarray(category.thresholds, dtype=np.float64)
    _grade_values(np.ascontiguousarray(x).reshape(-1), thr, category.below, out.reshape(-1))
    return out


def _absorb_death(grade: np.ndarray) -> np.ndarray:
    """Grade 5 stays 5 for every later time (last axis)."""
    dead = np.maximum.accumulate(grade == GRADE_DEATH, axis=-1)
    return np.where(dead, np.int8(GRADE_DEATH), grade).astype(np.int8)


@jit
def _fatal_runs(anc, t, threshold, days, fatal):
    """True from the time each row's ANC has been below ``threshold`` for ``days``."""
    for b in range(anc.shape[0]):
        start = np.inf
        for i in range(anc.shape[1]):
            start = rules.low_run_start(anc[b, i], threshold, t[i], start)
            fatal[b, i] = t[i] - start >= days


def _profound_too_long(anc: np.ndarray, t: np.ndarray) -> np.ndarray:
    """True from the time ANC has been below the fatal threshold for the fatal span."""
    rows = np.ascontiguousarray(anc).reshape(-1, anc.shape[-1])
    fatal = np.zeros(rows.shape, dtype=np.bool_)
    _fatal_runs(rows, t, NEUTROPENIA_FATAL_ANC_PER_L, NEUTROPENIA_FATAL_DAYS, fatal)
    return fatal.reshape(anc.shape)


def _series(source: Any) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """The graded series (and the time axis, if any) from a trajectory or a mapping."""
    if isinstance(source, Mapping):
        items = dict(source.items())
        t = items.pop("t", None)
    elif hasattr(source, "state_names") and hasattr(source, "t"):
        names = set(source.state_names)
        needed = {"ANC", "C", "irAE", "IL6", "BED_late"}
        if not needed <= names:
            raise ValueError(
                f"source: trajectory lacks toxicity states {sorted(needed - names)}; "
                "simulate the 'oncoimmune' model"
            )
        items = {name: source[name] for name in sorted(needed)}
        t = source.t
    else:
        raise ValueError(
            "source: expected an oncoimmune Trajectory/BatchTrajectory or a mapping of "
            f"arrays, got {type(source)!r}"
        )
    out: dict[str, np.ndarray] = {}
    for key, value in items.items():
        if key not in {"ANC", "ALC", "C", "irAE", "IL6", "BED_late"}:
            allowed = "ANC, ALC, C, irAE, IL6, BED_late, t"
            raise ValueError(f"source: unknown series {key!r}; allowed: {allowed}")
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"source[{key!r}]: expected numbers, got {value!r}") from None
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"source[{key!r}]: must be finite (a failed simulation?)")
        if np.any(arr < 0):
            raise ValueError(f"source[{key!r}]: must be >= 0")
        out[key] = arr
    if not out:
        raise ValueError("source: no series to grade (give ANC, ALC or C, irAE, IL6, BED_late)")
    shapes = {a.shape for a in out.values()}
    if len(shapes) > 1:
        raise ValueError(f"source: series have different shapes {sorted(shapes)}")
    t_arr = None
    if t is not None:
        t_arr = np.asarray(t, dtype=np.float64)
        shape = shapes.pop()
        if t_arr.ndim != 1 or len(shape) == 0 or t_arr.shape[0] != shape[-1]:
            raise ValueError(
                f"source['t']: must be 1-D with one time per sample; got {t_arr.shape}"
            )
        if not np.all(np.isfinite(t_arr)) or np.any(np.diff(t_arr) < 0):
            raise ValueError("source['t']: must be finite and non-decreasing")
    return out, t_arr


def toxicity_grades(source: Any, *, alc_volume_l: Any = None) -> dict[str, np.ndarray]:
    """CTCAE-like grades 0–5 per category along a trajectory.

    :param source: an ``oncoimmune`` :class:`~oncogym.simulate.Trajectory` or
        :class:`~oncogym.simulate.BatchTrajectory`, or a mapping with any of
        ``"ANC"`` (cells/L), ``"ALC"`` (cells/L) or ``"C"`` (cells), ``"irAE"``,
        ``"IL6"`` (pg/mL), ``"BED_late"`` (Gy₃), all of one shape with time on the
        last axis, and optionally ``"t"`` (days; needed for neutropenia grade 5)
    :param alc_volume_l: litres that turn ``C`` into ALC (default: the model's
        ``alc_volume_l``); a scalar or an array that broadcasts against ``C``
    :returns: ``{category: int8 array of grades}`` with the shape of the series, for
        every category whose series is present (all five for a trajectory)
    """
    series, t = _series(source)
    if "ALC" not in series and "C" in series:
        if alc_volume_l is None:
            alc_volume_l = _ONCOIMMUNE.default_params()["alc_volume_l"]
        vol = np.asarray(alc_volume_l, dtype=np.float64)
        if not np.all(np.isfinite(vol)) or np.any(vol <= 0):
            raise ValueError(f"alc_volume_l: must be finite and > 0, got {alc_volume_l!r}")
        series["ALC"] = series["C"] / vol
    grades: dict[str, np.ndarray] = {}
    for name, category in GRADING.items():
        key = "ALC" if category.per_param == "alc_volume_l" else category.state
        if key not in series:
            continue
        g = _grades_of(series[key], category)
        if category.fatal_run and t is not None:
            g = np.where(_profound_too_long(series[key], t), np.int8(GRADE_DEATH), g)
        grades[name] = _absorb_death(g)
    return grades


__all__ = [
    "AT_LEAST_RTOL",
    "CATEGORIES",
    "CRS_IL6_PG_ML",
    "GRADE_DEATH",
    "GRADING",
    "IRAE_HAZARD",
    "LYMPHOPENIA_ALC_PER_L",
    "NEUTROPENIA_ANC_PER_L",
    "NEUTROPENIA_FATAL_ANC_PER_L",
    "NEUTROPENIA_FATAL_DAYS",
    "RADIATION_LATE_BED_GY3",
    "Category",
    "toxicity_grades",
]
