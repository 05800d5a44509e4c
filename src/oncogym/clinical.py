"""Clinical readouts of simulated trajectories: diameter, RECIST 1.1, PFS, OS, toxicity.

Vectorised over patients: per-patient time series are arrays of shape ``(n_patients,
n_times)`` on one shared time grid ``t_days`` (a single patient may be given as
``(n_times,)``, and the results then lose their patient axis).  The rules themselves —
diameter, RECIST 1.1, best overall response, the lethal-burden crossing — are those of
the rulebook :mod:`oncogym.rules` (the same compiled functions the environments call),
applied here by compiled loops over patients and scans; the survival statistics are
:mod:`oncogym.survival` (lifelines).

Conventions (the choices a reader needs to reproduce a number):

* **Clock.** All days are on the trajectory's clock (``simulate`` starts at day 0 =
  start of treatment).  Survival times are the day of the event or of censoring on
  that clock, so with ``t_days[0] == 0`` they are days since start of treatment.
* **Diameter.** A single spherical lesion at ``1e9`` cells per cm³ (≈ 1 g of
  tissue; :data:`oncogym.rules.CELLS_PER_CM3`); ``d = (6V/π)^(1/3)``.
* **RECIST 1.1** on that one target lesion (``diameter`` stands for the sum of
  target diameters; rules in :mod:`oncogym.rules`).  Baseline = first scan.  A lesion
  smaller than ``cr_threshold_mm`` (default 10 mm, the RECIST size of a normal node and
  of a measurable lesion) is not seen: its *measured* diameter is 0 and the scan is CR.
  A patient whose baseline lesion is not seen is *not measurable*: their scans are NE
  unless they meet the PD rule.  Otherwise, in this order: PD if measured ≥ (1 + 20 %)
  × nadir and ≥ nadir + 5 mm, where the nadir is the smallest measured diameter at any
  earlier scan, baseline included (so regrowth to a visible size after CR is PD); PR if
  ≤ (1 − 30 %) × baseline; SD otherwise.  Boundaries are inclusive (with a 1e-9 mm
  tolerance for rounding).  Progression is absorbing: every scan after the first PD is
  PD.  Scans after death are NE.  Diameters at scan days between output times are
  interpolated linearly.
* **Best overall response** from the scans up to the first PD, no confirmation
  required: CR if any CR, else PR if any PR, else SD if some CR/PR/SD scan lies
  ≥ ``min_sd_days`` (default 42) after baseline, else PD if PD was recorded, else
  NE (e.g. death or end of follow-up before the SD minimum).  ORR and CR rate
  use all patients as denominator (NE counts as no response).
* **Death** is the first time the tumour reaches ``lethal_cells`` (default
  ``1e12``, :data:`oncogym.rules.LETHAL_CELLS`), interpolated linearly in ln(cells)
  between the two output times around the crossing, or the first output time at which
  a death flag is set (e.g. any toxicity grade 5), whichever is first.
* **OS**: event = death; censored at the last output time ``t_days[-1]``.
  **PFS**: event = first scan with PD or death, whichever is first; censored at
  the last tumour assessment (last scan on or before death/end of follow-up), as
  in FDA/EMA PFS guidance.  Hence PFS ≤ OS for every patient.
* **Toxicity**: a patient's worst grade per category is the highest CTCAE-like grade
  (:mod:`oncogym.toxicity`) at the output times up to the first one at or after death;
  *grade ≥ 3 toxicity* (:func:`grade3plus`) is a worst grade of 3, 4 or 5 (toxic
  death included), once per patient, in a category or in any; rates are over all
  patients.
* **Kaplan–Meier** (:mod:`oncogym.survival`, lifelines): product-limit estimator;
  censorings tied with events at the same time are at risk at that time; the median is
  the smallest time with ``S(t) ≤ 0.5`` (no midpoint rule), and ``inf`` when not reached.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from oncogym import rules
from oncogym._jit import jit
from oncogym.survival import (
    KaplanMeier,
    check,
    kaplan_meier,
    median_survival_days,
    survival_at,
)

DEFAULT_CELLS_PER_CM3 = rules.CELLS_PER_CM3
"""Tumour cell density (cells per cm³; :data:`oncogym.rules.CELLS_PER_CM3`)."""
DEFAULT_LETHAL_CELLS = rules.LETHAL_CELLS
"""Lethal tumour burden (cells, ≈ 1 kg; :data:`oncogym.rules.LETHAL_CELLS`)."""
DEFAULT_CR_THRESHOLD_MM = rules.CR_THRESHOLD_MM
"""Diameter below which the lesion counts as disappeared (mm; RECIST node < 10 mm)."""
DEFAULT_MIN_SD_DAYS = rules.MIN_SD_DAYS
"""Minimum time after baseline at which SD must be seen to be the best response (days)."""
DAYS_PER_MONTH = rules.DAYS_PER_MONTH
"""Days per month, for comparing medians with trial reports in months."""
MAX_GRADE = 5
"""Highest CTCAE grade (5 = death)."""


class Response(enum.IntEnum):
    """RECIST 1.1 categories; the codes are what the arrays hold (``int8``)."""

    CR = 0
    """complete response"""
    PR = 1
    """partial response"""
    SD = 2
    """stable disease"""
    PD = 3
    """progressive disease"""
    NE = 4
    """not evaluable (baseline scan, not measurable, after death, too early for SD)"""


RESPONSE_NAMES: tuple[str, ...] = tuple(r.name for r in Response)
"""Name of each response code, indexed by code."""


class RecistResult(NamedTuple):
    """RECIST 1.1 assessment at each scan.

    Shapes are for ``(n_patients, n_times)`` input; a single patient drops the
    first axis.
    """

    category: np.ndarray
    """:class:`Response` code per scan, ``int8`` ``(n_patients, n_scans)``; scan 0 is
    the baseline and is NE."""
    scan_days: np.ndarray
    """Scan days ``(n_scans,)``."""
    diameter_mm: np.ndarray
    """Model diameter at each scan (mm), summed over the lesions, ``(n_patients, n_scans)``."""
    measurable: np.ndarray
    """Some lesion's baseline diameter ≥ ``cr_threshold_mm`` (bool, ``(n_patients,)``)."""
    progression_day: np.ndarray
    """Day of the first PD scan, ``inf`` if none (``(n_patients,)``)."""
    last_assessment_day: np.ndarray
    """Day of the last scan performed (on or before death), ``(n_patients,)``."""
    lesion_mm: np.ndarray | None = None
    """Model diameter of each lesion at each scan (mm), ``(n_patients, n_lesions, n_scans)``."""
    target: np.ndarray | None = None
    """Target lesions (seen at baseline), ``(n_patients, n_lesions)``."""
    dissociated: np.ndarray | None = None
    """A mixed response at some scan up to the first PD (``rules.dissociated``),
    ``(n_patients,)``."""


class Survival(NamedTuple):
    """Right-censored survival times, one per patient."""

    time_days: np.ndarray
    """Day of the event or of censoring (float)."""
    event: np.ndarray
    """True for an event, False for censored (bool)."""


class PatientReadouts(NamedTuple):
    """All readouts of one cohort run (see :func:`patient_readouts`)."""

    diameter_mm: np.ndarray
    """Tumour diameter at every output time (mm)."""
    recist: RecistResult
    """Per-scan RECIST assessment."""
    best_response: np.ndarray
    """Best overall response code per patient."""
    pfs: Survival
    """Progression-free survival."""
    os: Survival
    """Overall survival."""
    worst_grades: dict[str, np.ndarray]
    """Worst toxicity grade per category per patient."""


# --- validation -------------------------------------------------------------------
def _number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite float in the stated range, else ValueError naming ``name``."""
    lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
    hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
    allowed = " and ".join(s for s in (lo, hi) if s) or "finite"
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{name}: expected a number ({allowed}), got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number ({allowed}), got {value!r}") from None
    bad = not np.isfinite(v)
    if low is not None:
        bad = bad or (v <= low if low_open else v < low)
    if high is not None:
        bad = bad or (v >= high if high_open else v > high)
    if bad:
        raise ValueError(f"{name}: must be finite and {allowed}, got {value!r}")
    return v


def _float_array(name: str, value: Any) -> np.ndarray:
    if isinstance(value, Mapping | str | bytes):
        raise ValueError(f"{name}: expected a numeric array, got {type(value).__name__}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a numeric array, got {value!r}") from None
    return arr


def _time_grid(name: str, value: Any) -> np.ndarray:
    t = _float_array(name, value)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"{name}: must be a non-empty 1-D array, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{name}: must be finite")
    if np.any(np.diff(t) <= 0):
        raise ValueError(f"{name}: must be strictly increasing")
    return t


def _series(name: str, value: Any, n_times: int) -> tuple[np.ndarray, bool]:
    """A (n_patients, n_times) float array and whether the input was 1-D."""
    arr = _float_array(name, value)
    if arr.ndim not in (1, 2) or arr.shape[-1] != n_times:
        raise ValueError(
            f"{name}: must have shape (n_times,) or (n_patients, n_times) with "
            f"n_times = {n_times}, got {arr.shape}"
        )
    if arr.ndim == 2 and arr.shape[0] == 0:
        raise ValueError(f"{name}: must hold at least one patient")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: must be finite (no NaN or inf)")
    if np.any(arr < 0):
        raise ValueError(f"{name}: must be >= 0")
    return np.atleast_2d(arr), arr.ndim == 1


def _per_patient(name: str, value: Any, n: int, *, allow_inf: bool = False) -> np.ndarray:
    """A (n,) float array from a scalar or an (n,) array."""
    arr = _float_array(name, value)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name}: must be a scalar or have shape ({n},), got {arr.shape}")
    ok = ~np.isnan(arr) if allow_inf else np.isfinite(arr)
    if not np.all(ok):
        raise ValueError(f"{name}: must be {'not NaN' if allow_inf else 'finite'}")
    return arr


def _flags(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A boolean array of ``shape`` from bools or 0/1 values."""
    arr = np.asarray(value)
    if arr.ndim == len(shape) - 1:
        arr = arr[np.newaxis]
    if arr.shape != shape:
        raise ValueError(f"{name}: must have shape {shape[1:]} or {shape}, got {arr.shape}")
    if arr.dtype != np.bool_:
        if arr.dtype.kind not in "iuf" or not np.all(np.isin(arr, (0, 1))):
            raise ValueError(f"{name}: must be boolean (True/False or 0/1)")
        arr = arr.astype(bool)
    return arr


def _codes(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf" or arr.dtype == np.bool_:
        raise ValueError(f"{name}: must hold response codes {_ALLOWED_CODES}")
    if not np.all(np.isin(arr, [int(r) for r in Response])):
        raise ValueError(f"{name}: must hold response codes {_ALLOWED_CODES}, got {value!r}")
    return arr.astype(np.int8)


_ALLOWED_CODES = ", ".join(f"{int(r)}={r.name}" for r in Response)


def _grades(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    allowed = f"integers 0..{MAX_GRADE}"
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
        raise ValueError(f"{name}: grades must be {allowed}")
    if arr.ndim not in (1, 2) or arr.size == 0:
        raise ValueError(f"{name}: must have shape (n_times,) or (n_patients, n_times)")
    if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
        raise ValueError(f"{name}: grades must be {allowed}")
    if np.any(arr < 0) or np.any(arr > MAX_GRADE):
        raise ValueError(f"{name}: grades must be {allowed}, got range {arr.min()}..{arr.max()}")
    return arr.astype(np.int8)


def _squeeze(x: np.ndarray, single: bool) -> np.ndarray:
    return x[0] if single else x


# --- diameter ---------------------------------------------------------------------
def tumour_diameter_mm(cells: Any, cells_per_cm3: float = DEFAULT_CELLS_PER_CM3) -> Any:
    """Diameter (mm) of a sphere holding ``cells`` tumour cells.

    Assumes one spherical lesion of uniform density ``cells_per_cm3`` (default 1e9
    cells/cm³ ≈ 1 g/cm³, the classical approximation; unverified):
    ``V = cells / cells_per_cm3`` (cm³), ``d = (6V/π)^(1/3)`` (cm) × 10.  1e9 cells →
    12.41 mm; 1e12 cells → 124.1 mm.

    :param cells: tumour cell count(s), any shape, finite and >= 0
    :param cells_per_cm3: cell density (cells per cm³, > 0)
    :return: diameter in mm, same shape (a float for scalar input)
    """
    density = _number("cells_per_cm3", cells_per_cm3, low=0.0, low_open=True)
    c = _float_array("cells", cells)
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ValueError("cells: must be finite and >= 0")
    d = np.empty(c.shape)
    _diameters(np.ascontiguousarray(c).reshape(-1), density, d.reshape(-1))
    return float(d) if d.ndim == 0 else d


@jit
def _diameters(cells, cells_per_cm3, out):
    for i in range(cells.shape[0]):
        out[i] = rules.diameter_mm(cells[i], cells_per_cm3)


# --- RECIST -----------------------------------------------------------------------
def _at_scans(values: np.ndarray, t_days: np.ndarray, scan_days: np.ndarray) -> np.ndarray:
    """Linear interpolation of each row of ``values`` (on ``t_days``) at ``scan_days``."""
    if t_days.size == 1:
        return np.repeat(values[:, :1], scan_days.size, axis=1)
    k = np.clip(np.searchsorted(t_days, scan_days, side="right") - 1, 0, t_days.size - 2)
    w = (scan_days - t_days[k]) / (t_days[k + 1] - t_days[k])
    return values[:, k] * (1.0 - w) + values[:, k + 1] * w


def recist_responses(
    diameter_mm: Any,
    scan_days: Any,
    t_days: Any,
    *,
    cr_threshold_mm: float = DEFAULT_CR_THRESHOLD_MM,
    death_day: Any = None,
    pr_decrease: float = rules.PR_DECREASE,
    pd_increase: float = rules.PD_INCREASE,
    pd_min_increase_mm: float = rules.PD_MIN_INCREASE_MM,
    measurable_site: Any = None,
) -> RecistResult:
    """RECIST 1.1 category at each scan (rules in the module docstring).

    :param diameter_mm: lesion diameters (mm) at each output time: one lesion as
        ``(n_times,)`` or ``(n_patients, n_times)``, several as ``(n_patients, n_lesions,
        n_times)``; finite and >= 0
    :param scan_days: scan days, strictly increasing, within ``[t_days[0],
        t_days[-1]]``; the first is the baseline
    :param t_days: output times of ``diameter_mm`` (days), strictly increasing
    :param cr_threshold_mm: lesions below this diameter are not seen; a baseline with no
        lesion at or above it is not measurable (mm, >= 0)
    :param death_day: day of death per patient (scalar or ``(n_patients,)``,
        ``inf`` = alive; e.g. :func:`death_day`); later scans are NE.  None: no deaths
    :param pr_decrease: fractional decrease from baseline for PR (in (0, 1))
    :param pd_increase: fractional increase from nadir for PD (>= 0)
    :param pd_min_increase_mm: absolute increase from nadir also needed for PD (mm, >= 0)
    :param measurable_site: per lesion, whether its site is measurable (default all; a
        bone lesion is not: it counts for CR and as a new lesion, never in the sum)
    :return: a :class:`RecistResult`
    """
    t = _time_grid("t_days", t_days)
    scans = _time_grid("scan_days", scan_days)
    if scans[0] < t[0] or scans[-1] > t[-1]:
        raise ValueError(
            f"scan_days: must lie within the output times [{t[0]}, {t[-1]}], "
            f"got [{scans[0]}, {scans[-1]}]"
        )
    arr = _float_array("diameter_mm", diameter_mm)
    if arr.ndim == 3:
        n, k = arr.shape[:2]
        d, _ = _series("diameter_mm", arr.reshape(n * k, arr.shape[2]), t.size)
        lesions = d.reshape(n, k, t.size)
        single = False
    else:
        d, single = _series("diameter_mm", arr, t.size)
        lesions = d[:, np.newaxis, :]
    thr = _number("cr_threshold_mm", cr_threshold_mm, low=0.0)
    pr = _number("pr_decrease", pr_decrease, low=0.0, high=1.0, low_open=True, high_open=True)
    pd = _number("pd_increase", pd_increase, low=0.0)
    pd_mm = _number("pd_min_increase_mm", pd_min_increase_mm, low=0.0)
    n = lesions.shape[0]
    dead = (
        np.full(n, np.inf)
        if death_day is None
        else _per_patient("death_day", death_day, n, allow_inf=True)
    )

    k = lesions.shape[1]
    true_mm = np.ascontiguousarray(
        _at_scans(lesions.reshape(n * k, t.size), t, scans).reshape(n, k, scans.size)
    )
    rule = rules.Recist(thr, pr, pd, pd_mm, rules.MIN_SD_DAYS)
    cat = np.empty((n, scans.size), dtype=np.int8)
    progression = np.empty(n)
    n_done = np.empty(n, dtype=np.int64)
    mixed = np.zeros(n, dtype=np.bool_)
    target = np.empty((n, k), dtype=np.bool_)
    seen0 = np.empty((n, k), dtype=np.bool_)
    sites = np.ones(k, dtype=np.bool_) if measurable_site is None else measurable_site
    sites = np.asarray(sites, dtype=np.bool_)
    if sites.shape != (k,):
        raise ValueError(f"measurable_site: expected {k} flags (one per lesion), got {sites.shape}")
    _recist_rows(true_mm, scans, dead, rule, sites, cat, progression, n_done, mixed, target, seen0)
    last = scans[np.maximum(n_done - 1, 0)]
    total = true_mm.sum(axis=1)
    return RecistResult(
        category=_squeeze(cat, single),
        scan_days=scans,
        diameter_mm=_squeeze(total, single),
        measurable=_squeeze(target.any(axis=1), single),
        progression_day=_squeeze(progression, single),
        last_assessment_day=_squeeze(last, single),
        lesion_mm=_squeeze(true_mm, single),
        target=_squeeze(target, single),
        dissociated=_squeeze(mixed, single),
    )


@jit
def _recist_rows(true_mm, scans, dead, rule, sites, cat, progression, n_done, mixed, target, seen0):
    """RECIST categories of each patient's scans (baseline NE, NE after death), the day
    of the first PD, the number of scans done and whether a scan up to the first PD showed
    a mixed response, with the rulebook's rules."""
    for b in range(true_mm.shape[0]):
        base_mm = true_mm[b, :, 0]
        rules.baseline_lesions(base_mm, sites, target[b], seen0[b], rule)
        base, _, _ = rules.lesion_scan(base_mm, target[b], seen0[b], rule)
        measurable = base > 0.0
        nadir = base
        progressed = False
        best = rules.NE
        cat[b, 0] = rules.NE
        progression[b] = np.inf
        n_done[b] = 1 if scans[0] <= dead[b] else 0
        for j in range(1, scans.shape[0]):
            if scans[j] > dead[b]:
                cat[b, j] = rules.NE
                continue
            n_done[b] = j + 1
            now_mm = true_mm[b, :, j]
            measured, visible, new = rules.lesion_scan(now_mm, target[b], seen0[b], rule)
            if not progressed and rules.dissociated(now_mm, base_mm, target[b], rule):
                mixed[b] = True
            c, nadir, now, best = rules.follow_up(
                measured,
                visible,
                scans[j] - scans[0],
                base,
                measurable,
                nadir,
                progressed,
                best,
                rule,
                new,
            )
            if now and not progressed:
                progression[b] = scans[j]
            progressed = now
            cat[b, j] = c


def best_overall_response(
    category: Any, scan_days: Any, *, min_sd_days: float = DEFAULT_MIN_SD_DAYS
) -> Any:
    """Best overall response per patient, RECIST 1.1 without confirmation.

    Only scans up to and including the first PD count.  CR if any CR; else PR if
    any PR; else SD if a CR/PR/SD scan lies >= ``min_sd_days`` after the first
    scan (baseline); else PD if a PD was recorded; else NE.

    :param category: :class:`Response` codes, ``(n_scans,)`` or ``(n_patients, n_scans)``
        (e.g. ``RecistResult.category``)
    :param scan_days: scan days ``(n_scans,)``, strictly increasing; the first is baseline
    :param min_sd_days: minimum interval from baseline for SD to count (days, >= 0)
    :return: ``int8`` code per patient (a NumPy scalar for one patient)
    """
    scans = _time_grid("scan_days", scan_days)
    cat = _codes("category", category)
    if cat.ndim not in (1, 2) or cat.shape[-1] != scans.size:
        raise ValueError(
            f"category: must have shape (n_scans,) or (n_patients, n_scans) with "
            f"n_scans = {scans.size}, got {cat.shape}"
        )
    single = cat.ndim == 1
    cat = np.atleast_2d(cat)
    min_sd = _number("min_sd_days", min_sd_days, low=0.0)

    rule = rules.Recist(min_sd_days=min_sd)
    bor = np.empty(cat.shape[0], dtype=np.int8)
    _best_rows(np.ascontiguousarray(cat), scans, rule, bor)
    return _squeeze(bor, single)


@jit
def _best_rows(cat, scans, rule, bor):
    """Best overall response of each row of scan categories (up to the first PD)."""
    for b in range(cat.shape[0]):
        best = rules.NE
        for j in range(cat.shape[1]):
            c = cat[b, j]
            if rules.counts_for_best_response(c, scans[j] - scans[0], rule) and c < best:
                best = c
            if c == rules.PD:
                break
        bor[b] = best


def objective_response(best_response: Any) -> Any:
    """True where the best overall response is CR or PR.

    :param best_response: :class:`Response` codes (any shape)
    :return: bool array of the same shape (a bool for scalar input)
    """
    bor = _codes("best_response", best_response)
    out = (bor == Response.CR) | (bor == Response.PR)
    return bool(out) if out.ndim == 0 else out


def response_names(codes: Any) -> np.ndarray:
    """The names (``"CR"``, …) of :class:`Response` codes, same shape.

    :param codes: response codes (any shape)
    """
    return np.asarray(RESPONSE_NAMES)[_codes("codes", codes)]


# --- survival ---------------------------------------------------------------------
def death_day(
    cells: Any,
    t_days: Any,
    *,
    lethal_cells: float = DEFAULT_LETHAL_CELLS,
    death: Any = None,
    hazard: Any = None,
    threshold: Any = None,
) -> Any:
    """Day of death per patient, ``inf`` if alive at ``t_days[-1]``.

    Death is the first of: the crossing of ``cells >= lethal_cells``, interpolated
    linearly in ln(cells) between the output times around it (at ``t_days[0]`` if
    already lethal; at the later time if the earlier count is 0); the cumulative hazard
    ``hazard`` reaching the patient's ``threshold``, interpolated linearly in the hazard;
    the first output time at which ``death`` is set.

    :param cells: tumour cells, ``(n_times,)`` or ``(n_patients, n_times)``, finite, >= 0
    :param t_days: output times (days), strictly increasing
    :param lethal_cells: lethal tumour burden (cells, > 0)
    :param death: optional death flags of the same shape (e.g. any grade == 5)
    :param hazard: optional cumulative hazard of death, the shape of ``cells`` (the
        ``oncoimmune`` state ``Hz``)
    :param threshold: each patient's death threshold (scalar or ``(n_patients,)``; the
        parameter ``death_threshold``); needed with ``hazard``
    :return: float per patient (a float for one patient)
    """
    t = _time_grid("t_days", t_days)
    c, single = _series("cells", cells, t.size)
    lethal = _number("lethal_cells", lethal_cells, low=0.0, low_open=True)
    day = np.empty(c.shape[0])
    _lethal_days(np.ascontiguousarray(c), t, lethal, day)

    if hazard is not None:
        h, _ = _series("hazard", hazard, t.size)
        if h.shape != c.shape:
            raise ValueError(f"hazard: must have the shape of cells {c.shape}, got {h.shape}")
        if threshold is None:
            raise ValueError("threshold: needed with hazard (each patient's death threshold)")
        thr = _per_patient("threshold", threshold, c.shape[0], allow_inf=True)
        hz = np.empty(c.shape[0])
        _hazard_days(np.ascontiguousarray(h), t, thr, hz)
        day = np.minimum(day, hz)
    if death is not None:
        flag = _flags("death", death, c.shape)
        j = np.argmax(flag, axis=1)
        day = np.minimum(day, np.where(flag.any(axis=1), t[j], np.inf))
    return float(day[0]) if single else day


@jit
def _hazard_days(hazard, t, threshold, day):
    """First day each row's cumulative hazard reaches its threshold (rulebook); inf if never."""
    for b in range(hazard.shape[0]):
        day[b] = np.inf
        for k in range(t.shape[0]):
            if hazard[b, k] >= threshold[b]:
                if k == 0:
                    day[b] = t[0]
                else:
                    day[b] = rules.hazard_crossing_day(
                        t[k - 1], hazard[b, k - 1], t[k], hazard[b, k], threshold[b]
                    )
                break


@jit
def _lethal_days(cells, t, lethal, day):
    """First day each row reaches ``lethal`` (interpolated by the rulebook); inf if never."""
    for b in range(cells.shape[0]):
        day[b] = np.inf
        for k in range(t.shape[0]):
            if cells[b, k] >= lethal:
                if k == 0:
                    day[b] = t[0]
                else:
                    day[b] = rules.lethal_crossing_day(
                        t[k - 1], cells[b, k - 1], t[k], cells[b, k], lethal
                    )
                break


def overall_survival(
    cells: Any,
    t_days: Any,
    *,
    lethal_cells: float = DEFAULT_LETHAL_CELLS,
    death: Any = None,
    hazard: Any = None,
    threshold: Any = None,
) -> Survival:
    """Overall survival: death (see :func:`death_day`), censored at ``t_days[-1]``.

    :param cells: tumour cells, ``(n_times,)`` or ``(n_patients, n_times)``, finite, >= 0
    :param t_days: output times (days), strictly increasing
    :param lethal_cells: lethal tumour burden (cells, > 0)
    :param death: optional death flags of the same shape (e.g. any grade == 5)
    :param hazard: optional cumulative hazard of death (see :func:`death_day`)
    :param threshold: each patient's death threshold (with ``hazard``)
    :return: :class:`Survival` (time in days on the trajectory clock)
    """
    t = _time_grid("t_days", t_days)
    day = np.asarray(
        death_day(
            cells,
            t,
            lethal_cells=lethal_cells,
            death=death,
            hazard=hazard,
            threshold=threshold,
        )
    )
    event = np.isfinite(day)
    time = np.where(event, day, t[-1])
    if time.ndim == 0:
        return Survival(np.float64(time), np.bool_(event))
    return Survival(time, event)


def progression_free_survival(responses: RecistResult, overall: Survival) -> Survival:
    """PFS: first PD scan or death, whichever first; else censored at the last scan.

    :param responses: RECIST result (:func:`recist_responses`) of the cohort
    :param overall: overall survival (:func:`overall_survival`) of the same patients
    :return: :class:`Survival` (time in days on the trajectory clock)
    """
    if not isinstance(responses, RecistResult):
        raise ValueError(f"responses: expected a RecistResult, got {type(responses).__name__}")
    if not isinstance(overall, Survival):
        raise ValueError(f"overall: expected a Survival, got {type(overall).__name__}")
    prog = np.asarray(responses.progression_day, dtype=np.float64)
    os_time = np.asarray(overall.time_days, dtype=np.float64)
    os_event = np.asarray(overall.event)
    if prog.shape != os_time.shape or os_event.shape != os_time.shape:
        raise ValueError(
            f"overall: must have one entry per patient of responses, shape {prog.shape}, "
            f"got {os_time.shape}"
        )
    if os_event.dtype != np.bool_:
        raise ValueError("overall: event must be boolean")
    dies = np.where(os_event, os_time, np.inf)
    first = np.minimum(prog, dies)
    event = np.isfinite(first)
    time = np.where(event, first, np.asarray(responses.last_assessment_day))
    if time.ndim == 0:
        return Survival(np.float64(time), np.bool_(event))
    return Survival(time, event)


# --- toxicity ---------------------------------------------------------------------
def worst_grade(grades: Mapping[str, Any]) -> dict[str, Any]:
    """Worst (highest) grade over time per category and patient.

    :param grades: category name → grades 0..5, ``(n_times,)`` or ``(n_patients, n_times)``
    :return: category name → ``int8`` worst grade per patient (a NumPy scalar for 1-D)
    """
    if not isinstance(grades, Mapping):
        raise ValueError(f"grades: expected a mapping name -> array, got {type(grades).__name__}")
    out: dict[str, Any] = {}
    for name, value in grades.items():
        g = _grades(f"grades[{name!r}]", value)
        out[name] = g.max(axis=-1)
    return out


SEVERE_GRADE = 3
"""The lowest grade of a severe toxicity (CTCAE grade 3; 4 is life-threatening, 5 death)."""


def _worst_per_patient(worst_grades: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Validated ``(n_patients,)`` worst grades per category, all of one length."""
    if not isinstance(worst_grades, Mapping):
        raise ValueError(
            f"worst_grades: expected a mapping name -> array, got {type(worst_grades).__name__}"
        )
    out: dict[str, np.ndarray] = {}
    shape = None
    for name, value in worst_grades.items():
        g = np.atleast_1d(np.asarray(value))
        if g.ndim != 1 or g.size == 0:
            raise ValueError(f"worst_grades[{name!r}]: must be a non-empty (n_patients,) array")
        g = _grades(f"worst_grades[{name!r}]", g)
        if shape is not None and g.shape != shape:
            raise ValueError(
                f"worst_grades[{name!r}]: every category needs the same patients, "
                f"shape {shape}, got {g.shape}"
            )
        shape = g.shape
        out[name] = g
    return out


def grade3plus(worst_grades: Mapping[str, Any], category: str = "any") -> np.ndarray:
    """Which patients had grade ≥ 3 toxicity: the one definition oncogym counts by.

    A patient has grade ≥ 3 toxicity in a category when their worst grade in it is 3, 4
    or 5; in ``"any"`` category when that holds in some category.  The worst grade is the
    highest over the days the patient is followed, from the start of treatment to death
    or the end of follow-up (grades after death do not count: :func:`patient_readouts`
    and the environments grade the same days).  Counted once per patient, however many
    times or categories reach grade 3.  Grade 5 (death from toxicity) counts: the
    patient's severe event was fatal.  All toxicity in the model is treatment-related.

    The calibration's ``grade3_4_rate`` targets and the report
    (:func:`oncogym.calibration.metric`), :func:`grade3plus_rate` and the evaluator's
    ``grade3_<category>`` / ``grade3_any`` (``oncogym.agents.evaluate.summarise``) are all
    the mean of this over the same patients.

    :param worst_grades: category name → worst grade per patient (``(n_patients,)``,
        integers 0..5), e.g. from :func:`worst_grade` or
        :attr:`PatientReadouts.worst_grades`
    :param category: a key of ``worst_grades``, or ``"any"`` (every category given)
    :return: ``bool`` per patient ``(n_patients,)``
    """
    worst = _worst_per_patient(worst_grades)
    if category == "any" and "any" not in worst:
        if not worst:
            raise ValueError("worst_grades: no category to grade")
        return np.logical_or.reduce([g >= SEVERE_GRADE for g in worst.values()])
    if category not in worst:
        allowed = ", ".join(["any", *worst])
        raise ValueError(f"category: {category!r} is not graded; allowed: {allowed}")
    return worst[category] >= SEVERE_GRADE


def grade3plus_rate(
    worst_grades: Mapping[str, Any], *, include_any: bool = True
) -> dict[str, float]:
    """Fraction of patients with grade ≥ 3 toxicity (:func:`grade3plus`), per category.

    :param worst_grades: category name → worst grade per patient (``(n_patients,)``,
        integers 0..5), e.g. from :func:`worst_grade`
    :param include_any: also report ``"any"``: worst grade >= 3 in some category
    :return: category name → rate in [0, 1]
    """
    worst = _worst_per_patient(worst_grades)
    if include_any and "any" in worst:
        raise ValueError("worst_grades: the category name 'any' is reserved when include_any=True")
    rates = {name: float(np.mean(grade3plus(worst, name))) for name in worst}
    if include_any and worst:
        rates["any"] = float(np.mean(grade3plus(worst, "any")))
    return rates


# --- whole cohort -------------------------------------------------------------------
def patient_readouts(
    cells: Any,
    t_days: Any,
    scan_days: Any,
    *,
    grades: Mapping[str, Any] | None = None,
    cells_per_cm3: float = DEFAULT_CELLS_PER_CM3,
    lethal_cells: float = DEFAULT_LETHAL_CELLS,
    cr_threshold_mm: float = DEFAULT_CR_THRESHOLD_MM,
    min_sd_days: float = DEFAULT_MIN_SD_DAYS,
    lesion_cells: Any = None,
    measurable_site: Any = None,
    hazard: Any = None,
    death_threshold: Any = None,
) -> PatientReadouts:
    """Every readout of a cohort run, wired consistently.

    Death = lethal burden, the cumulative hazard reaching the death threshold (when
    ``hazard`` is given) or any grade 5 (``grades`` must then be on ``t_days``); scans
    after death are NE, and the worst grades count the output times up to the first one
    at or after death (as the environments grade them).  RECIST reads the lesions of
    ``lesion_cells`` (default: ``cells`` as one lesion).

    :param cells: total tumour cells, ``(n_times,)`` or ``(n_patients, n_times)``
    :param t_days: output times (days), strictly increasing
    :param scan_days: scan days within the output times; the first is baseline
    :param grades: optional category name → toxicity grades, same shape as ``cells``
    :param cells_per_cm3: cell density for the diameter (cells per cm³, > 0)
    :param lethal_cells: lethal tumour burden (cells, > 0)
    :param cr_threshold_mm: RECIST disappearance / measurability threshold (mm, >= 0)
    :param min_sd_days: minimum interval from baseline for SD as best response (days)
    :param lesion_cells: optional cells per lesion, ``(n_patients, n_lesions, n_times)``
    :param measurable_site: per lesion, whether its site is measurable (default all)
    :param hazard: optional cumulative hazard of death, the shape of ``cells``
    :param death_threshold: each patient's death threshold (with ``hazard``)
    :return: :class:`PatientReadouts`
    """
    t = _time_grid("t_days", t_days)
    c, single = _series("cells", cells, t.size)
    worst: dict[str, Any] = {}
    flag = None
    if grades is not None:
        flag = np.zeros(c.shape, dtype=bool)
        for name, value in grades.items():
            g = np.atleast_2d(np.asarray(value))
            if g.shape != c.shape:
                raise ValueError(
                    f"grades[{name!r}]: must have the shape of cells {c.shape}, got {g.shape}"
                )
            flag |= g >= MAX_GRADE
    death_kw = {"lethal_cells": lethal_cells, "death": flag}
    if hazard is not None:
        death_kw.update(hazard=np.atleast_2d(hazard), threshold=death_threshold)
    dead = np.atleast_1d(death_day(c, t, **death_kw))
    overall = overall_survival(c, t, **death_kw)
    if grades is not None:
        # toxicity counts while the patient lives: up to the first output time at or after
        # death (the environments grade the same days: the interval ends at death's output)
        last = np.searchsorted(t, dead - 1e-9, side="left")  # first t >= death (len: alive)
        lived = np.arange(t.size)[np.newaxis, :] <= last[:, np.newaxis]
        worst = worst_grade(
            {
                name: np.where(lived, np.atleast_2d(np.asarray(value)), 0)
                for name, value in grades.items()
            }
        )
        if single:
            worst = {k: v[0] for k, v in worst.items()}
    diameter = tumour_diameter_mm(c, cells_per_cm3)
    if lesion_cells is None:
        seen = diameter
    else:
        les = _float_array("lesion_cells", lesion_cells)
        if les.ndim != 3 or les.shape[0] != c.shape[0] or les.shape[2] != t.size:
            raise ValueError(
                f"lesion_cells: must have shape (n_patients, n_lesions, n_times) = "
                f"({c.shape[0]}, k, {t.size}), got {les.shape}"
            )
        seen = tumour_diameter_mm(les, cells_per_cm3)
    recist = recist_responses(
        seen,
        scan_days,
        t,
        cr_threshold_mm=cr_threshold_mm,
        death_day=dead,
        measurable_site=measurable_site,
    )
    bor = best_overall_response(recist.category, recist.scan_days, min_sd_days=min_sd_days)
    pfs = progression_free_survival(recist, overall)
    if single:
        recist = RecistResult(
            recist.category[0],
            recist.scan_days,
            recist.diameter_mm[0],
            recist.measurable[0],
            recist.progression_day[0],
            recist.last_assessment_day[0],
            recist.lesion_mm[0],
            recist.target[0],
            recist.dissociated[0],
        )
        return PatientReadouts(
            diameter[0],
            recist,
            bor[0],
            Survival(pfs.time_days[0], pfs.event[0]),
            Survival(overall.time_days[0], overall.event[0]),
            worst,
        )
    return PatientReadouts(diameter, recist, bor, pfs, overall, worst)


def summarise(
    best_response: Any,
    pfs: Survival,
    os: Survival,
    worst_grades: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Trial-style summary of a cohort.

    :param best_response: best overall response code per patient ``(n_patients,)``
    :param pfs: progression-free survival of the same patients
    :param os: overall survival of the same patients
    :param worst_grades: optional category name → worst grade per patient
    :return: dict with ``n_patients``, ``objective_response_rate`` (CR + PR),
        ``complete_response_rate``, ``disease_control_rate`` (CR + PR + SD), each
        over all patients; ``median_pfs_days`` and ``median_os_days`` (Kaplan–Meier,
        ``inf`` if not reached); ``grade3plus_rate`` (category → rate, plus ``"any"``)
    """
    bor = np.atleast_1d(_codes("best_response", best_response))
    if bor.ndim != 1 or bor.size == 0:
        raise ValueError(f"best_response: must be a non-empty (n_patients,) array, got {bor.shape}")
    n = bor.size
    for name, surv in (("pfs", pfs), ("os", os)):
        if not isinstance(surv, Survival):
            raise ValueError(f"{name}: expected a Survival, got {type(surv).__name__}")
        if np.shape(surv.time_days) != (n,):
            raise ValueError(
                f"{name}: must hold one time per patient ({n}), "
                f"got shape {np.shape(surv.time_days)}"
            )
    out: dict[str, Any] = {
        "n_patients": n,
        "objective_response_rate": float(np.mean(objective_response(bor))),
        "complete_response_rate": float(np.mean(bor == Response.CR)),
        "disease_control_rate": float(np.mean(bor <= Response.SD)),
        "median_pfs_days": median_survival_days(*check(*pfs, "pfs")),
        "median_os_days": median_survival_days(*check(*os, "os")),
    }
    if worst_grades is not None:
        for name, value in worst_grades.items():
            if np.shape(value) != (n,):
                raise ValueError(
                    f"worst_grades[{name!r}]: must hold one grade per patient ({n}), "
                    f"got shape {np.shape(value)}"
                )
        out["grade3plus_rate"] = grade3plus_rate(worst_grades)
    return out


__all__ = [
    "DAYS_PER_MONTH",
    "DEFAULT_CELLS_PER_CM3",
    "DEFAULT_CR_THRESHOLD_MM",
    "DEFAULT_LETHAL_CELLS",
    "DEFAULT_MIN_SD_DAYS",
    "MAX_GRADE",
    "RESPONSE_NAMES",
    "SEVERE_GRADE",
    "KaplanMeier",
    "PatientReadouts",
    "RecistResult",
    "Response",
    "Survival",
    "best_overall_response",
    "death_day",
    "grade3plus",
    "grade3plus_rate",
    "kaplan_meier",
    "median_survival_days",
    "objective_response",
    "overall_survival",
    "patient_readouts",
    "progression_free_survival",
    "recist_responses",
    "response_names",
    "summarise",
    "survival_at",
    "tumour_diameter_mm",
    "worst_grade",
]
