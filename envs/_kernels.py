"""Compiled kernels of the environments: one decision interval for B patients in one call.

Everything here is a Numba kernel over flat arrays (STYLE: no objects, no randomness, no
exceptions).  :func:`step_serial` and :func:`step_parallel` run the same per-patient
function :func:`_step_one`, so a single environment (serial, no thread start-up) and the
vector environment (``prange`` over patients) give identical numbers.

Per patient and interval ``[t, t + dt)`` the kernel

1. turns the requested dose of each therapy into the interval's schedule (one bolus, the
   weekday radiotherapy fractions, a lymphodepletion course, an infusion, or a CAR-T
   infusion two days after a course given in the same interval) and blocks it if a
   clinical constraint (minimum interval, maximum administrations, cumulative cap)
   forbids it;
2. integrates the patient over ``t, t + 1, …, t + dt`` (daily outputs) with the core's
   :func:`oncogym.integrate.simulate_one` into preallocated buffers;
3. grades toxicity at every output day (the thresholds of :mod:`oncogym.toxicity`, with
   the same absorbing grade 5 and the 14-day fatal-neutropenia rule on the daily grid),
   finds death (lethal burden, interpolated in ln(cells) as :func:`oncogym.clinical.
   death_day`, or grade 5), accumulates the reward components day by day;
4. performs the scans due in ``(t, t + dt]`` (noisy diameter, RECIST 1.1 as
   :func:`oncogym.clinical.recist_responses` with measured diameters) and writes the
   observation row.

All random numbers (scan noise) are drawn at reset by the caller and passed in.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba import prange

from oncogym.integrate import OK, Doses, Scratch, Solver, simulate_one

_OPTIONS = {"cache": True, "error_model": "numpy", "nogil": True}
jit = nb.njit(**_OPTIONS)
jit_parallel = nb.njit(parallel=True, **_OPTIONS)

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

# --- per-patient float bookkeeping (columns of F) ------------------------------------------
F_T = 0  # day (elapsed since start of treatment)
F_BASE_MM = 1  # measured baseline diameter (0: not measurable)
F_NADIR_MM = 2  # smallest measured diameter so far (baseline included)
F_SCAN_DAY = 3  # day of the latest scan
F_SCAN_LOG10 = 4  # log10(1 + cells) implied by the latest measured diameter
F_ANC_LOW = 5  # first day of the current run below the fatal ANC (inf: not low)
F_DEATH_DAY = 6  # day of death (inf: alive)
F_SCAN_MM = 7  # latest measured diameter (mm, 0 when not seen)
N_F = 8

# --- per-patient integer bookkeeping (columns of I) ----------------------------------------
I_ALIVE = 0
I_STATUS = 1  # integrator status of the last interval (0 = ok)
I_RECIST = 2  # RECIST code of the latest scan (oncogym.clinical.Response)
I_PROGRESSED = 3
I_SCAN_IDX = 4  # index of the next scan in scan_days
I_CAUSE = 5  # DEATH_* code
I_STEP = 6
I_BEST = 7  # best overall response so far
N_I = 8

DEATH_NONE = 0
DEATH_TUMOUR = 1
DEATH_TOXICITY = 2
DEATH_ERROR = 3  # integrator failure: the episode ends with info["error"]

# RECIST codes (oncogym.clinical.Response)
CR, PR, SD, PD, NE = 0, 1, 2, 3, 4

# --- reward components (columns of COMP) ---------------------------------------------------
C_DAYS_ALIVE = 0  # days alive in the interval
C_QALY = 1  # quality-adjusted life years lived in the interval (before treatment burden)
C_BURDEN_LOSS = 2  # years of utility lost to tumour burden
C_TOX_LOSS = 3  # years of utility lost to toxicity
C_ADMIN_LOSS = 4  # years of utility lost to administrations (hospital days, infusions)
C_DEATH_PENALTY = 5  # years of life lost before the horizon (charged at death)
C_LOG10_START = 6  # log10(1 + tumour cells) at the start of the interval
C_LOG10_END = 7  # log10(1 + tumour cells) at the end (at death if earlier)
C_DOSE_FRACTION = 8  # sum over therapies of delivered amount / maximum dose level
N_COMP = 9

# --- toxicity categories (rows of the toxicity spec) ---------------------------------------
TOX_BELOW = 0  # grade = number of thresholds the value is below (counts)
TOX_AT_LEAST = 1  # grade = number of thresholds reached (signals, accumulated doses)

# --- observation modes --------------------------------------------------------------------
OBS_CLINICAL = 0
OBS_FULL = 1

_EPS_DAY = 1e-9
_AT_LEAST_RTOL = 1e-9
_TOL_MM = 1e-9
_DAYS_PER_YEAR = 365.25


@jit
def _deliveries(kind, t, n_days, course_days, course_len, gap_days, offsets):
    """Write the day offsets of a therapy's deliveries in ``[t, t + n_days)``; return count.

    ``course_len`` is the length of a course given in the same interval (0: none).
    """
    if kind == BOLUS or kind == INFUSION:
        offsets[0] = 0.0
        return 1
    if kind == FRACTIONS:
        n = 0
        day0 = math.floor(t + _EPS_DAY)
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


@jit
def _min_interval(k, amount, min_int, levels):
    """Minimum days since the last dose before a dose of ``amount`` of therapy ``k``.

    ``min_int[k, j]`` is the interval of dose level ``levels[k, j]`` (rows padded with their
    last entry); an amount between levels takes the interval of the next level up, so a
    double dose needs the double interval (pembrolizumab 400 mg q6w, not q3w).
    """
    width = levels.shape[1]
    for j in range(1, width):
        if amount <= levels[k, j] * (1.0 + 1e-9):
            return min_int[k, j]
    return min_int[k, width - 1]


@jit
def _allowed(k, amount, n_deliv, first_day, interval, last, cum, nadm, min_int, levels, max_cum,
             max_adm):  # fmt: skip
    """Whether ``n_deliv`` deliveries of ``amount`` from ``first_day`` respect the constraints.

    ``interval`` is the interval length (days): an infusion's total is ``amount·interval``.
    """
    if n_deliv <= 0:
        return False
    if first_day - last[k] < _min_interval(k, amount, min_int, levels) - _EPS_DAY:
        return False
    if nadm[k] + n_deliv > max_adm[k]:
        return False
    total = amount * n_deliv if interval <= 0.0 else amount * interval
    if cum[k] + total > max_cum[k] * (1.0 + 1e-9) + 1e-12:
        return False
    return True


@jit
def _grade(value, thresholds, kind):
    g = 0
    if kind == TOX_BELOW:
        for i in range(thresholds.shape[0]):
            if value < thresholds[i]:
                g += 1
    else:
        for i in range(thresholds.shape[0]):
            if value >= thresholds[i] * (1.0 - _AT_LEAST_RTOL):
                g += 1
    return g


@jit
def _grade_row(y, p, t, F, grade, tox_state, tox_param, tox_scale, tox_thr, tox_kind,
               tox_fatal, fatal_anc, fatal_days, worst_ever):  # fmt: skip
    """Grade every category at one time; update the neutropenia run; return True on grade 5."""
    dead = False
    for c in range(tox_state.shape[0]):
        v = y[tox_state[c]] * tox_scale[c]
        if tox_param[c] >= 0:
            v = v / p[tox_param[c]]
        g = _grade(v, tox_thr[c], tox_kind[c])
        if tox_fatal[c]:
            if v < fatal_anc:
                if not math.isfinite(F[F_ANC_LOW]):
                    F[F_ANC_LOW] = t
                if t - F[F_ANC_LOW] >= fatal_days:
                    g = 5
            else:
                F[F_ANC_LOW] = np.inf
        if worst_ever[c] == 5:
            g = 5  # grade 5 is absorbing
        grade[c] = g
        if g >= 5:
            dead = True
    return dead


@jit
def _cells(y, tumour_idx):
    c = 0.0
    for i in range(tumour_idx.shape[0]):
        c += y[tumour_idx[i]]
    return c


@jit
def _diameter_mm(cells, cells_per_cm3):
    return 10.0 * np.cbrt(6.0 * (max(cells, 0.0) / cells_per_cm3) / np.pi)


@jit
def _scan(F, I, cells, day, z, sigma, cr_mm, cells_per_cm3, baseline):
    """One scan: noisy diameter, RECIST 1.1 update (clinical.recist_responses rules)."""
    true_mm = _diameter_mm(cells, cells_per_cm3)
    raw = true_mm * math.exp(sigma * z)
    visible = raw >= cr_mm
    measured = raw if visible else 0.0
    F[F_SCAN_DAY] = day
    F[F_SCAN_MM] = measured
    vol_cm3 = math.pi / 6.0 * (measured / 10.0) ** 3
    F[F_SCAN_LOG10] = math.log10(1.0 + vol_cm3 * cells_per_cm3)
    if baseline:
        F[F_BASE_MM] = measured
        F[F_NADIR_MM] = measured
        I[I_RECIST] = NE
        I[I_PROGRESSED] = 0
        I[I_BEST] = NE
        return
    base = F[F_BASE_MM]
    nadir = F[F_NADIR_MM]
    measurable = base > 0.0
    rise = measured - nadir
    is_pd = visible and rise >= 0.2 * nadir - _TOL_MM and rise >= 5.0 - _TOL_MM
    cat = SD
    if measured <= 0.7 * base + _TOL_MM:
        cat = PR
    if not visible:
        cat = CR
    if not measurable:
        cat = NE
    if is_pd:
        cat = PD
    if I[I_PROGRESSED]:
        cat = PD
    else:
        # best overall response: scans up to and including the first PD
        qualifies = cat == CR or cat == PR or cat == PD or (cat == SD and day >= 42.0)
        if qualifies and cat < I[I_BEST]:
            I[I_BEST] = cat
    if is_pd:
        I[I_PROGRESSED] = 1
    I[I_RECIST] = cat
    F[F_NADIR_MM] = min(nadir, measured)


@jit
def _observe(obs_mode, y, p, F, I, last, cum, worst_step, obs, lab_state, lab_param,
             lab_scale, max_level, cum_cap, days_cap, full_cap):  # fmt: skip
    """Write one observation row (float32); every value is clipped to its finite bounds."""
    t = F[F_T]
    j = 0
    if obs_mode == OBS_CLINICAL:
        obs[0] = min(max(F[F_SCAN_LOG10], 0.0), 14.0)
        obs[1] = min(max((t - F[F_SCAN_DAY]) / 7.0, 0.0), days_cap / 7.0)
        j = 2
        for i in range(lab_state.shape[0]):
            v = y[lab_state[i]] * lab_scale[i]
            if lab_param[i] >= 0:
                v = v / p[lab_param[i]]
            obs[j] = min(math.log10(1.0 + max(v, 0.0)), 14.0)
            j += 1
        for c in range(worst_step.shape[0]):
            obs[j] = worst_step[c]
            j += 1
    else:
        for i in range(y.shape[0]):
            obs[j] = min(math.log10(1.0 + max(y[i], 0.0)), full_cap)
            j += 1
    for k in range(last.shape[0]):
        obs[j] = min(max(t - last[k], 0.0), days_cap)
        j += 1
    for k in range(cum.shape[0]):
        obs[j] = min(cum[k] / max_level[k], cum_cap[k])
        j += 1
    obs[j] = min(t, days_cap)


@jit
def _start_one(y, p, F, I, last, cum, nadm, grade, worst_step, worst_ever, scan_z, obs,
               obs_mode, tumour_idx, scan_days, scan_sigma, cr_mm, cells_per_cm3,
               tox_state, tox_param, tox_scale, tox_thr, tox_kind, tox_fatal, fatal_anc,
               fatal_days, lab_state, lab_param, lab_scale, max_level, cum_cap, days_cap,
               full_cap):  # fmt: skip
    """Reset one patient's bookkeeping at day 0 (baseline scan, grades) and observe."""
    for i in range(F.shape[0]):
        F[i] = 0.0
    for i in range(I.shape[0]):
        I[i] = 0
    F[F_ANC_LOW] = np.inf
    F[F_DEATH_DAY] = np.inf
    I[I_ALIVE] = 1
    I[I_BEST] = NE
    I[I_RECIST] = NE
    for k in range(last.shape[0]):
        last[k] = -np.inf
        cum[k] = 0.0
        nadm[k] = 0
    for c in range(grade.shape[0]):
        worst_ever[c] = 0
    _grade_row(y, p, 0.0, F, grade, tox_state, tox_param, tox_scale, tox_thr, tox_kind,
               tox_fatal, fatal_anc, fatal_days, worst_ever)  # fmt: skip
    for c in range(grade.shape[0]):
        worst_step[c] = grade[c]
        worst_ever[c] = grade[c]
    if scan_days.shape[0] > 0 and scan_days[0] <= _EPS_DAY:
        _scan(F, I, _cells(y, tumour_idx), 0.0, scan_z[0], scan_sigma, cr_mm, cells_per_cm3,
              True)  # fmt: skip
        I[I_SCAN_IDX] = 1
    _observe(obs_mode, y, p, F, I, last, cum, worst_step, obs, lab_state, lab_param,
             lab_scale, max_level, cum_cap, days_cap, full_cap)  # fmt: skip


@jit
def start_batch(rows, Y, P, F, I, LAST, CUM, NADM, GRADE, WSTEP, WEVER, SCAN_Z, OBS, obs_mode,
                tumour_idx, scan_days, scan_sigma, cr_mm, cells_per_cm3, tox_state, tox_param,
                tox_scale, tox_thr, tox_kind, tox_fatal, fatal_anc, fatal_days, lab_state,
                lab_param, lab_scale, max_level, cum_cap, days_cap, full_cap):  # fmt: skip
    """Reset the patients in ``rows`` (their ``Y``, ``P`` and ``SCAN_Z`` rows already set)."""
    for r in range(rows.shape[0]):
        b = rows[r]
        _start_one(Y[b], P[b], F[b], I[b], LAST[b], CUM[b], NADM[b], GRADE[b], WSTEP[b],
                   WEVER[b], SCAN_Z[b], OBS[b], obs_mode, tumour_idx, scan_days, scan_sigma,
                   cr_mm, cells_per_cm3, tox_state, tox_param, tox_scale, tox_thr, tox_kind,
                   tox_fatal, fatal_anc, fatal_days, lab_state, lab_param, lab_scale,
                   max_level, cum_cap, days_cap, full_cap)  # fmt: skip


@jit
def _step_one(method, rhs, dose, y, p, F, I, last, cum, nadm, req, deliv, blocked, grade,
              worst_step, worst_ever, scan_z, comp, obs, t_out, ev_t, ev_k, ev_a, inf_t0,
              inf_t1, inf_k, inf_r, u, out, work, stats, offsets, tx_model, tx_kind,
              min_int, levels, max_cum, max_adm, max_level, admin_days, course_days, gap_days,
              enforce, decision_days, horizon, tumour_idx, lethal, scan_days, scan_sigma,
              cr_mm, cells_per_cm3, tox_state, tox_param, tox_scale, tox_thr, tox_kind,
              tox_fatal, fatal_anc, fatal_days, tox_disutility, burden_weight, burden_lo,
              burden_span, death_weight, obs_mode, lab_state, lab_param, lab_scale, cum_cap,
              days_cap, full_cap, rtol, atol, floor, max_steps):  # fmt: skip
    nt = req.shape[0]
    for c in range(comp.shape[0]):
        comp[c] = 0.0
    for k in range(nt):
        deliv[k] = 0.0
        blocked[k] = False
    if I[I_ALIVE] == 0:
        return
    t = F[F_T]
    dt = min(float(decision_days), horizon - t)
    n_days = math.ceil(dt - _EPS_DAY)
    n_out = n_days + 1
    for j in range(n_days):
        t_out[j] = t + j
    t_out[n_days] = t + dt

    # --- 1. schedule of the interval, constraints -----------------------------------------
    n_ev = 0
    n_inf = 0
    course_len = 0
    admin_loss = 0.0
    dose_fraction = 0.0
    for phase in range(2):  # courses first: a CAR-T infusion is timed after them
        for k in range(nt):
            kind = tx_kind[k]
            if (phase == 0) != (kind == COURSE):
                continue
            a = req[k]
            if a <= 0.0:
                continue
            n_deliv = _deliveries(kind, t, n_days, course_days, course_len, gap_days, offsets)
            if n_deliv == 0:
                continue  # e.g. radiotherapy asked for in an interval of weekend days only
            interval = dt if kind == INFUSION else 0.0
            first = t + offsets[0]
            if enforce and not _allowed(k, a, n_deliv, first, interval, last, cum, nadm,
                                        min_int, levels, max_cum, max_adm):  # fmt: skip
                blocked[k] = True
                continue
            if kind == INFUSION:
                inf_t0[n_inf] = t
                inf_t1[n_inf] = t + dt
                inf_k[n_inf] = tx_model[k]
                inf_r[n_inf] = a
                n_inf += 1
                total = a * dt
            else:
                for j in range(n_deliv):
                    ev_t[n_ev] = t + offsets[j]
                    ev_k[n_ev] = tx_model[k]
                    ev_a[n_ev] = a
                    n_ev += 1
                total = a * n_deliv
            if kind == COURSE:
                course_len = n_deliv
            deliv[k] = total
            cum[k] += total
            nadm[k] += n_deliv
            last[k] = t + offsets[n_deliv - 1]
            admin_loss += admin_days[k] * n_deliv
            dose_fraction += total / max_level[k]
    # events sorted by time (insertion sort: stable, few events)
    for i in range(1, n_ev):
        et = ev_t[i]
        ek = ev_k[i]
        ea = ev_a[i]
        j = i - 1
        while j >= 0 and ev_t[j] > et:
            ev_t[j + 1] = ev_t[j]
            ev_k[j + 1] = ev_k[j]
            ev_a[j + 1] = ev_a[j]
            j -= 1
        ev_t[j + 1] = et
        ev_k[j + 1] = ek
        ev_a[j + 1] = ea

    # --- 2. integrate -------------------------------------------------------------------------
    cells0 = _cells(y, tumour_idx)
    comp[C_LOG10_START] = math.log10(1.0 + cells0)
    status = simulate_one(rhs, dose, Solver(method, rtol, atol, floor, max_steps), y, p,
                          t_out[:n_out], Doses(ev_t, ev_k, ev_a, n_ev, inf_t0, inf_t1, inf_k,
                          inf_r, n_inf), Scratch(u, work, stats), out[:n_out])  # fmt: skip
    I[I_STEP] += 1
    I[I_STATUS] = status
    if status != OK:
        # the state stays at the start of the interval (finite); the episode ends
        I[I_ALIVE] = 0
        I[I_CAUSE] = DEATH_ERROR
        F[F_DEATH_DAY] = t
        comp[C_LOG10_END] = comp[C_LOG10_START]
        _observe(obs_mode, y, p, F, I, last, cum, worst_step, obs, lab_state, lab_param,
                 lab_scale, max_level, cum_cap, days_cap, full_cap)  # fmt: skip
        return

    # --- 3. toxicity, death, reward components day by day -----------------------------------
    for c in range(worst_step.shape[0]):
        worst_step[c] = 0
    qaly = 0.0
    burden_loss = 0.0
    tox_loss = 0.0
    alive_days = 0.0
    death = np.inf
    cause = DEATH_NONE
    j_end = n_days
    log_lethal = math.log(lethal)
    for j in range(1, n_out):
        row = out[j]
        tj = t_out[j]
        cells = _cells(row, tumour_idx)
        tox_dead = _grade_row(row, p, tj, F, grade, tox_state, tox_param, tox_scale, tox_thr,
                              tox_kind, tox_fatal, fatal_anc, fatal_days, worst_ever)  # fmt: skip
        for c in range(grade.shape[0]):
            if grade[c] > worst_step[c]:
                worst_step[c] = grade[c]
            if grade[c] > worst_ever[c]:
                worst_ever[c] = grade[c]
        if cells >= lethal:
            c0 = _cells(out[j - 1], tumour_idx)
            if c0 > 0.0:
                frac = (log_lethal - math.log(c0)) / (math.log(cells) - math.log(c0))
                frac = min(max(frac, 0.0), 1.0)
                death = t_out[j - 1] + frac * (tj - t_out[j - 1])
            else:
                death = tj
            cause = DEATH_TUMOUR
        if tox_dead and tj < death:
            death = tj
            cause = DEATH_TOXICITY
        # utility over (t_{j-1}, t_j], evaluated at its end (right Riemann sum)
        span = min(tj, death) - t_out[j - 1]
        if span > 0.0:
            b = (math.log10(1.0 + cells) - burden_lo) / burden_span
            b = burden_weight * min(max(b, 0.0), 1.0)
            tx = 0.0
            for c in range(grade.shape[0]):
                tx += tox_disutility[min(grade[c], 5)]
            util = max(1.0 - b - tx, 0.0)
            qaly += util * span
            burden_loss += b * span
            tox_loss += tx * span
            alive_days += span
        if cause != DEATH_NONE:
            j_end = j
            break
    for i in range(y.shape[0]):
        y[i] = out[j_end, i]
    comp[C_LOG10_END] = math.log10(1.0 + _cells(y, tumour_idx))
    comp[C_DAYS_ALIVE] = alive_days
    comp[C_QALY] = qaly / _DAYS_PER_YEAR
    comp[C_BURDEN_LOSS] = burden_loss / _DAYS_PER_YEAR
    comp[C_TOX_LOSS] = tox_loss / _DAYS_PER_YEAR
    comp[C_ADMIN_LOSS] = admin_loss / _DAYS_PER_YEAR
    comp[C_DOSE_FRACTION] = dose_fraction

    # --- 4. scans due in (t, t + dt], before death --------------------------------------------
    t_end = t_out[j_end]
    while I[I_SCAN_IDX] < scan_days.shape[0]:
        s = scan_days[I[I_SCAN_IDX]]
        if s > t_end + _EPS_DAY or s > death:
            break
        js = round(s - t)
        js = min(max(js, 0), j_end)
        _scan(F, I, _cells(out[js], tumour_idx), s, scan_z[I[I_SCAN_IDX]], scan_sigma, cr_mm,
              cells_per_cm3, False)  # fmt: skip
        I[I_SCAN_IDX] += 1

    if cause != DEATH_NONE:
        I[I_ALIVE] = 0
        I[I_CAUSE] = cause
        F[F_DEATH_DAY] = death
        F[F_T] = death
        comp[C_DEATH_PENALTY] = death_weight * max(horizon - death, 0.0) / _DAYS_PER_YEAR
    else:
        F[F_T] = t + dt
    _observe(obs_mode, y, p, F, I, last, cum, worst_step, obs, lab_state, lab_param,
             lab_scale, max_level, cum_cap, days_cap, full_cap)  # fmt: skip


@jit
def step_serial(method, rhs, dose, Y, P, F, I, LAST, CUM, NADM, REQ, DELIV, BLOCKED, GRADE,
                WSTEP, WEVER, SCAN_Z, COMP, OBS, T_OUT, EV_T, EV_K, EV_A, INF_T0, INF_T1,
                INF_K, INF_R, U, OUT, WORK, STATS, OFFSETS, tx_model, tx_kind, min_int,
                levels, max_cum, max_adm, max_level, admin_days, course_days, gap_days, enforce,
                decision_days, horizon, tumour_idx, lethal, scan_days, scan_sigma, cr_mm,
                cells_per_cm3, tox_state, tox_param, tox_scale, tox_thr, tox_kind, tox_fatal,
                fatal_anc, fatal_days, tox_disutility, burden_weight, burden_lo, burden_span,
                death_weight, obs_mode, lab_state, lab_param, lab_scale, cum_cap, days_cap,
                full_cap, rtol, atol, floor, max_steps):  # fmt: skip
    """Advance every patient by one decision interval, one after the other."""
    for b in range(Y.shape[0]):
        _step_one(method, rhs, dose, Y[b], P[b], F[b], I[b], LAST[b], CUM[b], NADM[b], REQ[b],
                  DELIV[b], BLOCKED[b], GRADE[b], WSTEP[b], WEVER[b], SCAN_Z[b], COMP[b],
                  OBS[b], T_OUT[b], EV_T[b], EV_K[b], EV_A[b], INF_T0[b], INF_T1[b],
                  INF_K[b], INF_R[b], U[b], OUT[b], WORK[b], STATS[b], OFFSETS[b], tx_model,
                  tx_kind, min_int, levels, max_cum, max_adm, max_level, admin_days, course_days,
                  gap_days, enforce, decision_days, horizon, tumour_idx, lethal, scan_days,
                  scan_sigma, cr_mm, cells_per_cm3, tox_state, tox_param, tox_scale, tox_thr,
                  tox_kind, tox_fatal, fatal_anc, fatal_days, tox_disutility, burden_weight,
                  burden_lo, burden_span, death_weight, obs_mode, lab_state, lab_param,
                  lab_scale, cum_cap, days_cap, full_cap, rtol, atol, floor,
                  max_steps)  # fmt: skip


@jit_parallel
def step_parallel(method, rhs, dose, Y, P, F, I, LAST, CUM, NADM, REQ, DELIV, BLOCKED, GRADE,
                  WSTEP, WEVER, SCAN_Z, COMP, OBS, T_OUT, EV_T, EV_K, EV_A, INF_T0, INF_T1,
                  INF_K, INF_R, U, OUT, WORK, STATS, OFFSETS, tx_model, tx_kind, min_int,
                  levels, max_cum, max_adm, max_level, admin_days, course_days, gap_days, enforce,
                  decision_days, horizon, tumour_idx, lethal, scan_days, scan_sigma, cr_mm,
                  cells_per_cm3, tox_state, tox_param, tox_scale, tox_thr, tox_kind,
                  tox_fatal, fatal_anc, fatal_days, tox_disutility, burden_weight, burden_lo,
                  burden_span, death_weight, obs_mode, lab_state, lab_param, lab_scale,
                  cum_cap, days_cap, full_cap, rtol, atol, floor, max_steps):  # fmt: skip
    """Advance every patient by one decision interval in parallel (``prange``)."""
    for b in prange(Y.shape[0]):
        _step_one(method, rhs, dose, Y[b], P[b], F[b], I[b], LAST[b], CUM[b], NADM[b], REQ[b],
                  DELIV[b], BLOCKED[b], GRADE[b], WSTEP[b], WEVER[b], SCAN_Z[b], COMP[b],
                  OBS[b], T_OUT[b], EV_T[b], EV_K[b], EV_A[b], INF_T0[b], INF_T1[b],
                  INF_K[b], INF_R[b], U[b], OUT[b], WORK[b], STATS[b], OFFSETS[b], tx_model,
                  tx_kind, min_int, levels, max_cum, max_adm, max_level, admin_days, course_days,
                  gap_days, enforce, decision_days, horizon, tumour_idx, lethal, scan_days,
                  scan_sigma, cr_mm, cells_per_cm3, tox_state, tox_param, tox_scale, tox_thr,
                  tox_kind, tox_fatal, fatal_anc, fatal_days, tox_disutility, burden_weight,
                  burden_lo, burden_span, death_weight, obs_mode, lab_state, lab_param,
                  lab_scale, cum_cap, days_cap, full_cap, rtol, atol, floor,
                  max_steps)  # fmt: skip


@jit
def masks(F, I, LAST, CUM, NADM, MASK, levels, n_levels, tx_kind, min_int, max_cum, max_adm,
          course_days, decision_days, horizon, enforce):  # fmt: skip
    """Allowed dose levels of the next interval, flattened per patient (MultiDiscrete order)."""
    nt = levels.shape[0]
    offsets = np.empty(max(decision_days, 1) + 1)
    for b in range(F.shape[0]):
        t = F[b, F_T]
        dt = min(float(decision_days), horizon - t)
        n_days = max(math.ceil(dt - _EPS_DAY), 1)
        col = 0
        for k in range(nt):
            kind = tx_kind[k]
            n_deliv = _deliveries(kind, t, n_days, course_days, 0, 0, offsets)
            interval = dt if kind == INFUSION else 0.0
            for j in range(n_levels[k]):
                if j == 0 or not enforce:
                    ok = True
                else:
                    ok = I[b, I_ALIVE] == 1 and _allowed(
                        k, levels[k, j], n_deliv, t + offsets[0], interval, LAST[b], CUM[b],
                        NADM[b], min_int, levels, max_cum, max_adm)  # fmt: skip
                MASK[b, col + j] = ok
            col += n_levels[k]
