"""Compiled kernels of the environments: one decision interval for a batch of patients.

The kernels take named records — NamedTuples of arrays and scalars, which Numba compiles
as structs (flat: its parallel loops cannot take nested records):

* :class:`Task` — the task's constants, :class:`~oncogym.envs.task.EnvParams` compiled:
  therapy menu, delivery patterns and constraints, scans, toxicity grading, reward
  weights, observation layout;
* :class:`State` — what each patient is now: model state and parameters, the clinic's
  record (day, doses given, scans and RECIST, toxicity), the current observation;
* :class:`Interval` — what the last decision interval did: doses delivered and blocked,
  reward components;
* :class:`Work` — preallocated scratch; and the core's :class:`oncogym.integrate.Solver`.

Row ``b`` of every array is patient ``b``.  :func:`step_serial` and :func:`step_parallel`
run the same per-patient body :func:`_step_one` (a plain loop, or ``prange``), so a
single environment and the vector environment give identical numbers.  Per patient and
interval ``[t, t + dt)`` the step

1. turns the requested amount of each therapy into the interval's schedule
   (:func:`_schedule`: one bolus, the weekday radiotherapy fractions, a lymphodepletion
   course, an infusion, or a CAR-T infusion two days after a course given in the same
   interval) and blocks it if a clinical constraint (minimum interval, maximum
   administrations, cumulative cap) forbids it;
2. integrates the patient over ``t, t + 1, …, t + dt`` (daily outputs) with the core's
   :func:`oncogym.integrate.simulate_one`;
3. grades toxicity on every output day, finds death (lethal burden or grade 5) and
   accumulates the reward components (:func:`_days`);
4. performs the scans due in ``(t, t + dt]`` (:func:`_scan`: noisy diameter, RECIST 1.1)
   and writes the observation (:func:`_observe`).

The clinical rules — diameter, RECIST, the lethal crossing, grades — are the rulebook's
(:mod:`oncogym.rules`).  Kernels never raise and never draw random numbers: the scan noise
is drawn at reset by the caller, and so are the difficulty tier's per-patient draws
(:mod:`oncogym.envs.settings`), which the step reads from :class:`State`:

* ``drift`` — the drifted parameters are set to ``drift_base × drift[step]`` before the
  interval (PK/PD drift);
* ``visit_missed`` — a missed visit schedules no dose (step 1 gives nothing);
* ``scan_offset`` — days added to each scheduled scan, ``inf`` for a missed one (step 4);
* ``lab_missing`` — with ``Task.lab_flags`` the observation holds a missing lab (and the
  grade of its category) at its last observed value and writes an observed flag per lab.

Each is an array of width 0 when its knob is off, and then the step's arithmetic is the
same as without tiers, operation for operation (the default tier reproduces the recorded
episodes).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import prange

from oncogym import rules
from oncogym._jit import jit, jit_inline, jit_parallel
from oncogym.integrate import OK, Doses, Scratch, simulate_one

# --- delivery patterns within a decision interval ----------------------------------------
BOLUS = 0
"""one administration on the first day of the interval"""
FRACTIONS = 1
"""one fraction on every weekday (day mod 7 < 5) of the interval"""
COURSE = 2
"""one administration on each of ``course_days`` consecutive days from the first day"""
INFUSION = 3
"""a constant infusion over the whole interval; the amount is a rate per day"""
AFTER_COURSE = 4
"""a bolus ``gap_days`` after the end of a course given in the same interval (else day 0)"""

# --- death causes (State.death_cause) -----------------------------------------------------
DEATH_NONE = 0
DEATH_TUMOUR = 1
DEATH_TOXICITY = 2
DEATH_ERROR = 3
"""an integrator failure: the episode ends with ``info["error"]``"""

# --- observation modes --------------------------------------------------------------------
OBS_CLINICAL = 0
OBS_FULL = 1

CLINICAL_SLD_CAP_MM = 2000.0
"""Cap of the sum of target diameters in the clinical observation (mm)."""
CLINICAL_LOG10_CAP = 14.0
"""Cap of the log10(1 + x) entries of the clinical observation (scan burden, blood
counts): 1e14 cells, or cells per litre, lies above every lethal burden and blood count."""

EPS_DAY = 1e-9
"""Days closer than this are the same day (interval and scan boundaries)."""
DAYS_PER_YEAR = rules.DAYS_PER_YEAR


class Task(NamedTuple):
    """A task's constants as the kernels read them (built by ``EnvParams.kernel_task``).

    Per-therapy arrays follow ``EnvParams.therapies``; per-category arrays
    ``EnvParams.tox_categories``; per-level tables are padded with their last entry.
    """

    therapy_index: np.ndarray
    """index of each therapy in the model's therapy list"""
    delivery: np.ndarray
    """delivery pattern per therapy (BOLUS, FRACTIONS, COURSE, INFUSION, AFTER_COURSE)"""
    dose_levels: np.ndarray
    """``(n_therapies, max_levels)`` amounts, clinical units (level 0 = no dose)"""
    n_levels: np.ndarray
    max_level: np.ndarray
    min_interval_days: np.ndarray
    """``(n_therapies, max_levels)`` least days since the last dose, per dose level"""
    max_cumulative: np.ndarray
    max_administrations: np.ndarray
    admin_days: np.ndarray
    """days of full health lost per administration (treatment burden)"""
    course_days: int
    gap_days: int
    enforce_constraints: bool
    decision_days: int
    horizon_days: float
    tumour_index: np.ndarray
    """model states summed as tumour cells"""
    lesion_index: np.ndarray
    """``(n_lesions, 2)`` model states of each lesion (T⁺, T⁻; −1: none)"""
    measurable_site: np.ndarray
    """per lesion, whether RECIST can measure its site"""
    hazard_state: int
    """model state of the cumulative death hazard (−1: none)"""
    hazard_param: int
    """parameter holding the patient's death threshold (−1: none)"""
    lethal_cells: float
    scan_days: np.ndarray
    scan_sigma: float
    """sd of the log of a scan's multiplicative measurement noise"""
    cr_threshold_mm: float
    cells_per_cm3: float
    tox_state: np.ndarray
    """model state graded, per category"""
    tox_param: np.ndarray
    """parameter the state is divided by (−1: none), per category"""
    tox_scale: np.ndarray
    tox_thresholds: np.ndarray
    """``(n_categories, 5)`` thresholds of grades 1–5 (padded with ∓inf)"""
    tox_below: np.ndarray
    """True: the grade counts the thresholds the value is below; False: those it reaches"""
    tox_fatal: np.ndarray
    """grade 5 after ``fatal_days`` below ``fatal_anc`` (neutropenia)"""
    fatal_anc: float
    fatal_days: float
    tox_disutility: np.ndarray
    """utility lost per category at grades 0–5"""
    burden_weight: float
    burden_lo: float
    burden_span: float
    death_weight: float
    obs_mode: int
    lab_state: np.ndarray
    lab_param: np.ndarray
    lab_scale: np.ndarray
    cum_cap: np.ndarray
    days_cap: float
    full_cap: float
    lab_flags: bool
    """the clinical observation holds missing labs and writes an observed flag per lab"""
    grade_lab: np.ndarray
    """per toxicity category, the lab it is graded from (−1: none; held with that lab)"""
    drift_index: np.ndarray
    """parameters moved by the PK/PD drift (``State.drift``)"""


class State(NamedTuple):
    """Per-patient state: row ``b`` of every array is patient ``b``."""

    y: np.ndarray
    """model state ``(n, n_states)``"""
    params: np.ndarray
    """model parameters ``(n, n_params)``"""
    day: np.ndarray
    """days since the start of treatment (at death: the day of death)"""
    alive: np.ndarray
    death_cause: np.ndarray
    """DEATH_NONE, DEATH_TUMOUR, DEATH_TOXICITY or DEATH_ERROR"""
    death_day: np.ndarray
    """inf while alive"""
    status: np.ndarray
    """integrator status of the last interval (0 = ok)"""
    steps: np.ndarray
    """decision intervals stepped"""
    scan_noise: np.ndarray
    """``(n, n_scans·n_lesions)`` standard normal draws, one per lesion and scheduled scan
    (drawn at reset; scan i, lesion k at column i·n_lesions + k)"""
    next_scan: np.ndarray
    """index of the next scheduled scan"""
    scan_day: np.ndarray
    """day of the latest scan"""
    scan_mm: np.ndarray
    """latest measured sum of the target lesions' diameters (mm; 0: none seen)"""
    scan_log10_cells: np.ndarray
    """log10(1 + cells) implied by the latest scan's measured lesions (all lesions seen)"""
    scan_seen: np.ndarray
    """lesions seen at the latest scan"""
    scan_new: np.ndarray
    """a new lesion (not seen at baseline) seen at the latest scan"""
    baseline_mm: np.ndarray
    """measured baseline sum of target diameters (0: not measurable)"""
    nadir_mm: np.ndarray
    """smallest measured sum so far, baseline included"""
    target: np.ndarray
    """``(n, n_lesions)`` target lesions (seen at baseline at a measurable site)"""
    seen0: np.ndarray
    """``(n, n_lesions)`` lesions seen at baseline"""
    recist: np.ndarray
    """RECIST code of the latest scan (:class:`oncogym.clinical.Response`)"""
    best_response: np.ndarray
    progressed: np.ndarray
    last_dose_day: np.ndarray
    """``(n, n_therapies)`` day of the last delivery (−inf: never)"""
    cumulative_dose: np.ndarray
    """``(n, n_therapies)`` amount delivered so far (clinical units)"""
    administrations: np.ndarray
    """``(n, n_therapies)`` deliveries so far"""
    interval_grade: np.ndarray
    """``(n, n_categories)`` worst toxicity grade in the last interval"""
    worst_grade: np.ndarray
    """``(n, n_categories)`` worst toxicity grade so far"""
    anc_low_since: np.ndarray
    """first day of the current run below the fatal ANC (inf: not low)"""
    obs: np.ndarray
    """``(n, obs_size)`` float32 current observation"""
    scan_offset: np.ndarray
    """``(n, n_scans)`` days added to each scheduled scan, ``inf``: missed (width 0: none)"""
    visit_missed: np.ndarray
    """``(n, n_steps)`` the visit of step ``k`` is missed: no dose (width 0: none)"""
    lab_missing: np.ndarray
    """``(n, n_steps + 1, n_labs)`` lab missing at the observation after ``k`` steps
    (width 0: none)"""
    lab_last: np.ndarray
    """``(n, n_labs)`` last observed log10(1 + lab) (with ``Task.lab_flags``)"""
    grade_last: np.ndarray
    """``(n, n_categories)`` last observed grade (with ``Task.lab_flags``)"""
    drift: np.ndarray
    """``(n, n_steps, n_drift)`` factors of the drifted parameters over step ``k``
    (width 0: none)"""
    drift_base: np.ndarray
    """``(n, n_drift)`` the drifted parameters as drawn"""


class Interval(NamedTuple):
    """What the last decision interval did, per patient (years unless stated)."""

    delivered: np.ndarray
    """``(n, n_therapies)`` amounts given (clinical units; an infusion: rate × days)"""
    blocked: np.ndarray
    """``(n, n_therapies)`` requests the constraints refused"""
    days_alive: np.ndarray
    """days alive in the interval"""
    qaly: np.ndarray
    """quality-adjusted life years lived (before treatment burden)"""
    burden_loss: np.ndarray
    """utility lost to tumour burden"""
    toxicity_loss: np.ndarray
    """utility lost to toxicity"""
    treatment_loss: np.ndarray
    """utility lost to administrations (hospital days, infusions)"""
    death_penalty: np.ndarray
    """years of life lost before the horizon (charged at death)"""
    log10_burden_start: np.ndarray
    """log10(1 + tumour cells) at the start of the interval"""
    log10_burden_end: np.ndarray
    """log10(1 + tumour cells) at its end (at death if earlier)"""
    dose_fraction: np.ndarray
    """sum over therapies of amount delivered / highest dose level"""


COMPONENTS = Interval._fields[2:]
"""The reward components of an :class:`Interval`, in order."""


class Work(NamedTuple):
    """Preallocated scratch per patient (row ``b``); nothing is allocated in the step."""

    t_out: np.ndarray
    """``(n, decision_days + 1)`` output days of the interval"""
    out: np.ndarray
    """``(n, decision_days + 1, n_states)`` model state on those days"""
    offsets: np.ndarray
    """day offsets of one therapy's deliveries"""
    lesion_mm: np.ndarray
    """``(n, n_lesions)`` the lesions' diameters as the scan being read sees them"""
    grade: np.ndarray
    """``(n, n_categories)`` grade on the day being graded"""
    event_day: np.ndarray
    event_therapy: np.ndarray
    event_amount: np.ndarray
    infusion_start: np.ndarray
    infusion_end: np.ndarray
    infusion_therapy: np.ndarray
    infusion_rate: np.ndarray
    u: np.ndarray
    integrator: np.ndarray
    stats: np.ndarray


# --- schedule and constraints -------------------------------------------------------------
@jit_inline
def _deliveries(kind, t, n_days, course_days, course_len, gap_days, offsets):
    """Write the day offsets of a therapy's deliveries in ``[t, t + n_days)``; return count.

    ``course_len`` is the length of a course given in the same interval (0: none).
    """
    if kind == BOLUS or kind == INFUSION:
        offsets[0] = 0.0
        return 1
    if kind == FRACTIONS:
        n = 0
        day0 = math.floor(t + EPS_DAY)
        for j in range(n_days):
            if (day0 + j) % 7 < 5:
                offsets[n] = float(j)
                n += 1
        return n
    if kind == COURSE:
        n = min(course_days, n_days)
        for j in range(n):
            offsets[j] = float(j)
        return n
    # AFTER_COURSE
    off = 0.0
    if course_len > 0:
        off = float(min(course_len + gap_days, n_days - 1))
    offsets[0] = off
    return 1


@jit_inline
def _min_interval(task, k, amount):
    """Least days since the last dose before a dose of ``amount`` of therapy ``k``.

    An amount between levels takes the interval of the next level up, so a double dose
    needs the double interval (pembrolizumab 400 mg q6w, not q3w).
    """
    width = task.dose_levels.shape[1]
    for j in range(1, width):
        if amount <= task.dose_levels[k, j] * (1.0 + 1e-9):
            return task.min_interval_days[k, j]
    return task.min_interval_days[k, width - 1]


@jit_inline
def _allowed(task, state, b, k, amount, n_deliv, first_day, interval):
    """Whether ``n_deliv`` deliveries of ``amount`` from ``first_day`` respect the constraints.

    ``interval`` is the interval length (days): an infusion's total is ``amount·interval``.
    """
    if n_deliv <= 0:
        return False
    if first_day - state.last_dose_day[b, k] < _min_interval(task, k, amount) - EPS_DAY:
        return False
    if state.administrations[b, k] + n_deliv > task.max_administrations[k]:
        return False
    total = amount * n_deliv if interval <= 0.0 else amount * interval
    if state.cumulative_dose[b, k] + total > task.max_cumulative[k] * (1.0 + 1e-9) + 1e-12:
        return False
    return True


@jit_inline
def _interval_days(task, t):
    """``(dt, n_days)``: length of the interval from day ``t`` (shortened at the horizon)."""
    dt = min(float(task.decision_days), task.horizon_days - t)
    return dt, math.ceil(dt - EPS_DAY)


@jit_inline
def _visit_missed(state, b):
    """The patient misses the visit of this step (a tier's irregular visits)."""
    k = state.steps[b]
    return k < state.visit_missed.shape[1] and state.visit_missed[b, k]


@jit_inline
def _schedule(task, state, interval, work, requested, b):
    """Turn the requested amounts into the interval's events and infusions.

    Courses first (a CAR-T infusion is timed after them); a request the constraints
    forbid is blocked; at a missed visit nothing is given.  Returns ``(n_events,
    n_infusions, admin_days, dose_fraction)``.
    """
    if _visit_missed(state, b):
        return 0, 0, 0.0, 0.0
    t = state.day[b]
    dt, n_days = _interval_days(task, t)
    offsets = work.offsets[b]
    n_ev = 0
    n_inf = 0
    course_len = 0
    admin_days = 0.0
    dose_fraction = 0.0
    for phase in range(2):
        for k in range(requested.shape[1]):
            kind = task.delivery[k]
            if (phase == 0) != (kind == COURSE):
                continue
            a = requested[b, k]
            if a <= 0.0:
                continue
            n_deliv = _deliveries(
                kind, t, n_days, task.course_days, course_len, task.gap_days, offsets
            )
            if n_deliv == 0:
                continue  # e.g. radiotherapy asked for in an interval of weekend days only
            span = dt if kind == INFUSION else 0.0
            if task.enforce_constraints and not _allowed(
                task, state, b, k, a, n_deliv, t + offsets[0], span
            ):
                interval.blocked[b, k] = True
                continue
            if kind == INFUSION:
                work.infusion_start[b, n_inf] = t
                work.infusion_end[b, n_inf] = t + dt
                work.infusion_therapy[b, n_inf] = task.therapy_index[k]
                work.infusion_rate[b, n_inf] = a
                n_inf += 1
                total = a * dt
            else:
                for j in range(n_deliv):
                    work.event_day[b, n_ev] = t + offsets[j]
                    work.event_therapy[b, n_ev] = task.therapy_index[k]
                    work.event_amount[b, n_ev] = a
                    n_ev += 1
                total = a * n_deliv
            if kind == COURSE:
                course_len = n_deliv
            interval.delivered[b, k] = total
            state.cumulative_dose[b, k] += total
            state.administrations[b, k] += n_deliv
            state.last_dose_day[b, k] = t + offsets[n_deliv - 1]
            admin_days += task.admin_days[k] * n_deliv
            dose_fraction += total / task.max_level[k]
    _sort_events(work, b, n_ev)
    return n_ev, n_inf, admin_days, dose_fraction


@jit_inline
def _sort_events(work, b, n_ev):
    """Sort patient ``b``'s events by day (insertion sort: stable, few events)."""
    day, therapy, amount = work.event_day[b], work.event_therapy[b], work.event_amount[b]
    for i in range(1, n_ev):
        et = day[i]
        ek = therapy[i]
        ea = amount[i]
        j = i - 1
        while j >= 0 and day[j] > et:
            day[j + 1] = day[j]
            therapy[j + 1] = therapy[j]
            amount[j + 1] = amount[j]
            j -= 1
        day[j + 1] = et
        therapy[j + 1] = ek
        amount[j + 1] = ea


# --- toxicity, tumour, scans ------------------------------------------------------------
@jit_inline
def _grade_day(task, state, work, b, y, day):
    """Grade every category on one day into ``work.grade[b]``; True on grade 5."""
    p = state.params[b]
    dead = False
    for c in range(task.tox_state.shape[0]):
        v = y[task.tox_state[c]] * task.tox_scale[c]
        if task.tox_param[c] >= 0:
            v = v / p[task.tox_param[c]]
        if task.tox_below[c]:
            g = rules.grade_below(v, task.tox_thresholds[c])
        else:
            g = rules.grade_at_least(v, task.tox_thresholds[c])
        if task.tox_fatal[c]:
            start = rules.low_run_start(v, task.fatal_anc, day, state.anc_low_since[b])
            state.anc_low_since[b] = start
            if day - start >= task.fatal_days:
                g = 5
        if state.worst_grade[b, c] == 5:
            g = 5  # grade 5 is absorbing
        work.grade[b, c] = g
        if g >= 5:
            dead = True
    return dead


@jit_inline
def _cells(y, tumour_index):
    c = 0.0
    for i in range(tumour_index.shape[0]):
        c += y[tumour_index[i]]
    return c


@jit_inline
def _recist(task):
    return rules.Recist(
        task.cr_threshold_mm,
        rules.PR_DECREASE,
        rules.PD_INCREASE,
        rules.PD_MIN_INCREASE_MM,
        rules.MIN_SD_DAYS,
    )


@jit_inline
def _scan(task, state, work, b, y, day, noise, baseline):
    """One scan of patient ``b`` (model state ``y``): each lesion's diameter with its own
    measurement noise (``noise``: the scan's draws, one per lesion), then the RECIST 1.1
    record of the rulebook over the lesions."""
    rule = _recist(task)
    mm = work.lesion_mm[b]
    seen_cells = 0.0
    n_seen = 0
    for k in range(task.lesion_index.shape[0]):
        cells = 0.0
        for c in range(2):
            i = task.lesion_index[k, c]
            if i >= 0:
                cells += y[i]
        raw = rules.diameter_mm(cells, task.cells_per_cm3) * math.exp(task.scan_sigma * noise[k])
        if rules.is_visible(raw, rule):
            mm[k] = raw
            seen_cells += rules.cells_of_diameter(raw, task.cells_per_cm3)
            n_seen += 1
        else:
            mm[k] = 0.0
    state.scan_day[b] = day
    state.scan_log10_cells[b] = math.log10(1.0 + seen_cells)
    state.scan_seen[b] = n_seen
    if baseline:
        rules.baseline_lesions(mm, task.measurable_site, state.target[b], state.seen0[b], rule)
        total, _, _ = rules.lesion_scan(mm, state.target[b], state.seen0[b], rule)
        state.scan_mm[b] = total
        state.scan_new[b] = False
        state.baseline_mm[b] = total
        state.nadir_mm[b] = total
        state.recist[b] = rules.NE
        state.progressed[b] = False
        state.best_response[b] = rules.NE
        return
    total, visible, new = rules.lesion_scan(mm, state.target[b], state.seen0[b], rule)
    state.scan_mm[b] = total
    state.scan_new[b] = new
    base = state.baseline_mm[b]
    cat, nadir, progressed, best = rules.follow_up(
        total,
        visible,
        day,
        base,
        base > 0.0,
        state.nadir_mm[b],
        state.progressed[b],
        state.best_response[b],
        rule,
        new,
    )
    state.recist[b] = cat
    state.nadir_mm[b] = nadir
    state.progressed[b] = progressed
    state.best_response[b] = best


@jit_inline
def _lab_missing(state, b, i):
    """Lab ``i`` is not drawn at the visit after ``steps`` steps (a tier's missing labs)."""
    k = state.steps[b]
    return k < state.lab_missing.shape[1] and state.lab_missing[b, k, i]


@jit_inline
def _observe_held_labs(task, state, b, obs, j):
    """Labs, grades and observed flags from entry ``j`` on (``Task.lab_flags``): a missing
    lab, and the grade of the category graded from it, keep their last observed value."""
    y = state.y[b]
    n_labs = task.lab_state.shape[0]
    for i in range(n_labs):
        if not _lab_missing(state, b, i):
            v = y[task.lab_state[i]] * task.lab_scale[i]
            if task.lab_param[i] >= 0:
                v = v / state.params[b, task.lab_param[i]]
            state.lab_last[b, i] = min(math.log10(1.0 + max(v, 0.0)), CLINICAL_LOG10_CAP)
        obs[j] = state.lab_last[b, i]
        j += 1
    for c in range(state.interval_grade.shape[1]):
        i = task.grade_lab[c]
        if i < 0 or not _lab_missing(state, b, i):
            state.grade_last[b, c] = state.interval_grade[b, c]
        obs[j] = state.grade_last[b, c]
        j += 1
    for i in range(n_labs):
        obs[j] = 0.0 if _lab_missing(state, b, i) else 1.0
        j += 1
    return j


@jit_inline
def _observe(task, state, b):
    """Write patient ``b``'s observation row (float32), every value within its bounds."""
    obs = state.obs[b]
    y = state.y[b]
    t = state.day[b]
    cap = CLINICAL_LOG10_CAP
    j = 0
    if task.obs_mode == OBS_CLINICAL:
        obs[0] = min(max(state.scan_log10_cells[b], 0.0), cap)
        obs[1] = min(max((t - state.scan_day[b]) / 7.0, 0.0), task.days_cap / 7.0)
        obs[2] = min(state.scan_mm[b], CLINICAL_SLD_CAP_MM)
        obs[3] = state.scan_seen[b]
        obs[4] = 1.0 if state.scan_new[b] else 0.0
        obs[5] = state.recist[b]
        j = 6
        if task.lab_flags:
            j = _observe_held_labs(task, state, b, obs, j)
        else:
            for i in range(task.lab_state.shape[0]):
                v = y[task.lab_state[i]] * task.lab_scale[i]
                if task.lab_param[i] >= 0:
                    v = v / state.params[b, task.lab_param[i]]
                obs[j] = min(math.log10(1.0 + max(v, 0.0)), cap)
                j += 1
            for c in range(state.interval_grade.shape[1]):
                obs[j] = state.interval_grade[b, c]
                j += 1
    else:
        for i in range(y.shape[0]):
            obs[j] = min(math.log10(1.0 + max(y[i], 0.0)), task.full_cap)
            j += 1
    for k in range(task.max_level.shape[0]):
        obs[j] = min(max(t - state.last_dose_day[b, k], 0.0), task.days_cap)
        j += 1
    for k in range(task.max_level.shape[0]):
        obs[j] = min(state.cumulative_dose[b, k] / task.max_level[k], task.cum_cap[k])
        j += 1
    obs[j] = min(t, task.days_cap)


# --- start of an episode -------------------------------------------------------------------
@jit_inline
def _clear_interval(interval, b):
    for k in range(interval.delivered.shape[1]):
        interval.delivered[b, k] = 0.0
        interval.blocked[b, k] = False
    for field in (
        interval.days_alive,
        interval.qaly,
        interval.burden_loss,
        interval.toxicity_loss,
        interval.treatment_loss,
        interval.death_penalty,
        interval.log10_burden_start,
        interval.log10_burden_end,
        interval.dose_fraction,
    ):
        field[b] = 0.0


@jit
def _start_one(task, state, interval, work, b):
    """Start patient ``b`` (its ``y``, ``params`` and ``scan_noise`` already set) at day 0:
    clinic record, grades, baseline scan, observation."""
    state.day[b] = 0.0
    state.alive[b] = True
    state.death_cause[b] = DEATH_NONE
    state.death_day[b] = np.inf
    state.status[b] = OK
    state.steps[b] = 0
    state.next_scan[b] = 0
    state.scan_day[b] = 0.0
    state.scan_mm[b] = 0.0
    state.scan_log10_cells[b] = 0.0
    state.baseline_mm[b] = 0.0
    state.nadir_mm[b] = 0.0
    state.recist[b] = rules.NE
    state.best_response[b] = rules.NE
    state.progressed[b] = False
    state.anc_low_since[b] = np.inf
    for k in range(state.last_dose_day.shape[1]):
        state.last_dose_day[b, k] = -np.inf
        state.cumulative_dose[b, k] = 0.0
        state.administrations[b, k] = 0
    for c in range(state.worst_grade.shape[1]):
        state.worst_grade[b, c] = 0
    _clear_interval(interval, b)
    _grade_day(task, state, work, b, state.y[b], 0.0)
    for c in range(state.worst_grade.shape[1]):
        state.interval_grade[b, c] = work.grade[b, c]
        state.worst_grade[b, c] = work.grade[b, c]
    state.scan_seen[b] = 0
    state.scan_new[b] = False
    for k in range(state.target.shape[1]):
        state.target[b, k] = False
        state.seen0[b, k] = False
    if task.scan_days.shape[0] > 0 and task.scan_days[0] <= EPS_DAY:
        n_les = task.lesion_index.shape[0]
        _scan(task, state, work, b, state.y[b], 0.0, state.scan_noise[b, 0:n_les], True)
        state.next_scan[b] = 1
    _observe(task, state, b)


@jit
def start(task, state, interval, work, rows):
    """Start the patients ``rows`` (see :func:`_start_one`)."""
    for r in range(rows.shape[0]):
        _start_one(task, state, interval, work, rows[r])


# --- one decision interval -----------------------------------------------------------------
@jit_inline
def _days(task, state, interval, work, b, n_out):
    """Grade, find death and add up the utility on each output day of the interval.

    Returns ``(j_end, death_day, cause)``: the last output day lived (the day of death's
    output day), the day of death (inf: alive) and its cause.
    """
    t_out, out = work.t_out[b], work.out[b]
    for c in range(state.interval_grade.shape[1]):
        state.interval_grade[b, c] = 0
    qaly = 0.0
    burden_loss = 0.0
    tox_loss = 0.0
    alive_days = 0.0
    death = np.inf
    cause = DEATH_NONE
    j_end = n_out - 1
    for j in range(1, n_out):
        row = out[j]
        tj = t_out[j]
        cells = _cells(row, task.tumour_index)
        tox_dead = _grade_day(task, state, work, b, row, tj)
        for c in range(state.interval_grade.shape[1]):
            g = work.grade[b, c]
            state.interval_grade[b, c] = max(state.interval_grade[b, c], g)
            state.worst_grade[b, c] = max(state.worst_grade[b, c], g)
        if cells >= task.lethal_cells:
            death = rules.lethal_crossing_day(
                t_out[j - 1], _cells(out[j - 1], task.tumour_index), tj, cells, task.lethal_cells
            )
            cause = DEATH_TUMOUR
        if task.hazard_state >= 0:
            h1 = row[task.hazard_state]
            threshold = state.params[b, task.hazard_param]
            if h1 >= threshold:
                h0 = out[j - 1][task.hazard_state]
                hz_day = rules.hazard_crossing_day(t_out[j - 1], h0, tj, h1, threshold)
                if hz_day < death:
                    death = hz_day
                    cause = DEATH_TUMOUR
        if tox_dead and tj < death:
            death = tj
            cause = DEATH_TOXICITY
        # utility over (t_{j-1}, t_j], evaluated at its end (right Riemann sum)
        span = min(tj, death) - t_out[j - 1]
        if span > 0.0:
            burden = (math.log10(1.0 + cells) - task.burden_lo) / task.burden_span
            burden = task.burden_weight * min(max(burden, 0.0), 1.0)
            tox = 0.0
            for c in range(state.interval_grade.shape[1]):
                tox += task.tox_disutility[min(work.grade[b, c], 5)]
            qaly += max(1.0 - burden - tox, 0.0) * span
            burden_loss += burden * span
            tox_loss += tox * span
            alive_days += span
        if cause != DEATH_NONE:
            j_end = j
            break
    interval.days_alive[b] = alive_days
    interval.qaly[b] = qaly / DAYS_PER_YEAR
    interval.burden_loss[b] = burden_loss / DAYS_PER_YEAR
    interval.toxicity_loss[b] = tox_loss / DAYS_PER_YEAR
    return j_end, death, cause


@jit_inline
def _scans(task, state, work, b, j_end, death):
    """The scheduled scans of ``(t, t_out[j_end]]`` before death, on the output days
    (moved by ``scan_offset`` where a tier delays or misses them)."""
    t_out, out = work.t_out[b], work.out[b]
    t = t_out[0]
    while state.next_scan[b] < task.scan_days.shape[0]:
        i = state.next_scan[b]
        s = task.scan_days[i]
        if state.scan_offset.shape[1] > 0:  # a tier's delayed (+days) or missed (inf) scans
            if state.scan_offset[b, i] == np.inf:
                state.next_scan[b] = i + 1
                continue
            s = s + state.scan_offset[b, i]
        if s > t_out[j_end] + EPS_DAY or s > death:
            break
        js = min(max(round(s - t), 0), j_end)
        n_les = task.lesion_index.shape[0]
        noise = state.scan_noise[b, i * n_les : (i + 1) * n_les]
        _scan(task, state, work, b, out[js], s, noise, False)
        state.next_scan[b] = i + 1


@jit_inline
def _drift(task, state, b):
    """Set the drifted parameters for this step: drawn value × factor (PK/PD drift)."""
    k = state.steps[b]
    if k < state.drift.shape[1]:
        for i in range(task.drift_index.shape[0]):
            state.params[b, task.drift_index[i]] = state.drift_base[b, i] * state.drift[b, k, i]


@jit
def _step_one(rhs, dose, solver, task, state, interval, work, requested, b):
    """Advance patient ``b`` by one decision interval (the module docstring's four parts)."""
    _clear_interval(interval, b)
    if not state.alive[b]:
        return
    _drift(task, state, b)
    t = state.day[b]
    dt, n_days = _interval_days(task, t)
    n_out = n_days + 1
    for j in range(n_days):
        work.t_out[b, j] = t + j
    work.t_out[b, n_days] = t + dt

    n_ev, n_inf, admin_days, dose_fraction = _schedule(task, state, interval, work, requested, b)

    y = state.y[b]
    interval.log10_burden_start[b] = math.log10(1.0 + _cells(y, task.tumour_index))
    doses = Doses(
        work.event_day[b],
        work.event_therapy[b],
        work.event_amount[b],
        n_ev,
        work.infusion_start[b],
        work.infusion_end[b],
        work.infusion_therapy[b],
        work.infusion_rate[b],
        n_inf,
    )
    scratch = Scratch(work.u[b], work.integrator[b], work.stats[b])
    status = simulate_one(
        rhs,
        dose,
        solver,
        y,
        state.params[b],
        work.t_out[b, :n_out],
        doses,
        scratch,
        work.out[b, :n_out],
    )
    state.steps[b] += 1
    state.status[b] = status
    if status != OK:
        # the state stays at the start of the interval (finite); the episode ends
        state.alive[b] = False
        state.death_cause[b] = DEATH_ERROR
        state.death_day[b] = t
        interval.log10_burden_end[b] = interval.log10_burden_start[b]
        _observe(task, state, b)
        return

    interval.treatment_loss[b] = admin_days / DAYS_PER_YEAR
    interval.dose_fraction[b] = dose_fraction
    j_end, death, cause = _days(task, state, interval, work, b, n_out)
    for i in range(y.shape[0]):
        y[i] = work.out[b, j_end, i]
    interval.log10_burden_end[b] = math.log10(1.0 + _cells(y, task.tumour_index))
    _scans(task, state, work, b, j_end, death)
    if cause != DEATH_NONE:
        state.alive[b] = False
        state.death_cause[b] = cause
        state.death_day[b] = death
        state.day[b] = death
        interval.death_penalty[b] = (
            task.death_weight * max(task.horizon_days - death, 0.0) / DAYS_PER_YEAR
        )
    else:
        state.day[b] = t + dt
    _observe(task, state, b)


@jit
def step_serial(rhs, dose, solver, task, state, interval, work, requested):
    """Advance every patient by one decision interval, one after the other."""
    for b in range(state.day.shape[0]):
        _step_one(rhs, dose, solver, task, state, interval, work, requested, b)


@jit_parallel
def step_parallel(rhs, dose, solver, task, state, interval, work, requested):
    """Advance every patient by one decision interval, in parallel (``prange``)."""
    for b in prange(state.day.shape[0]):
        _step_one(rhs, dose, solver, task, state, interval, work, requested, b)


@jit
def masks(task, state, work, out):
    """Allowed dose levels of the next interval, flattened per patient (MultiDiscrete order)."""
    offsets = work.offsets[0]
    for b in range(state.day.shape[0]):
        t = state.day[b]
        dt, n_days = _interval_days(task, t)
        n_days = max(n_days, 1)
        col = 0
        for k in range(task.n_levels.shape[0]):
            kind = task.delivery[k]
            n_deliv = _deliveries(kind, t, n_days, task.course_days, 0, 0, offsets)
            span = dt if kind == INFUSION else 0.0
            for j in range(task.n_levels[k]):
                ok = True
                if j > 0 and task.enforce_constraints:
                    ok = state.alive[b] and _allowed(
                        task, state, b, k, task.dose_levels[k, j], n_deliv, t + offsets[0], span
                    )
                out[b, col + j] = ok
            col += task.n_levels[k]
