"""Compiled integration kernels: adaptive Dormand–Prince 5(4) with dose events.

Everything here is a Numba kernel over flat ``float64`` arrays.  Kernels never
raise and never draw random numbers; failures come back as status codes
(:data:`STATUS_NAMES`).

Method
------
Dormand & Prince (1980) 5(4) pair with local extrapolation, FSAL, the standard
PI-free step-size controller (safety 0.9, factor limits 0.2–10), an RMS error
norm with ``atol[i] + rtol·max(|y_old|, |y_new|)`` (as in
``scipy.integrate.solve_ivp``) and Shampine's quartic dense output (the same
interpolant as SciPy's ``RK45``), so that output times do not shorten steps.

Discontinuities — bolus doses and the edges of infusion windows — are
integration breakpoints: a step never crosses one.  The integration restarts
there with a fresh derivative evaluation.

After each accepted step every state is clipped at zero and a state whose
extinction ``floor`` is positive and whose value fell below it is set to exactly
zero (e.g. fewer than one tumour cell).

A second method for stiff models, :func:`integrate_segment_rosenbrock`, is the
L-stable Rosenbrock 2(3) pair of Shampine & Reichelt (1997, MATLAB's ``ode23s``)
with a finite-difference Jacobian, an LU factorisation done in place in the
work array, and its own quadratic dense output.

Stiffness: Hairer's detector (``h·|λ| ≈ h·‖k7 − k6‖/‖y7 − y6‖ > 3.25``) counts
accepted steps whose size was bounded by stability rather than accuracy; the
count is returned in ``stats[STAT_STIFF]`` so a model that is stiff for this
method is reported, not silently slow.

Schedules
---------
* events: ``ev_t[j], ev_k[j], ev_amt[j]`` (sorted by time) — instantaneous doses
  applied by the model's ``dose(k, amount, y, p)`` kernel;
* infusions: ``inf_t0[j], inf_t1[j], inf_k[j], inf_rate[j]`` — a constant rate
  added to ``u[k]`` on ``[t0, t1)``.

Outputs at time ``t`` are the state *before* any dose given at ``t`` (so
``out[0]`` is always ``y0``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from oncogym._jit import jit, jit_parallel

# --- status codes -----------------------------------------------------------
OK = 0
MAX_STEPS = 1
STEP_UNDERFLOW = 2
NONFINITE = 3
STATUS_NAMES = {
    OK: "ok",
    MAX_STEPS: "maximum number of steps exceeded",
    STEP_UNDERFLOW: "step size underflow",
    NONFINITE: "non-finite state",
}

# --- statistics slots ---------------------------------------------------------
STAT_ACCEPTED = 0
STAT_REJECTED = 1
STAT_RHS = 2
STAT_STIFF = 3
N_STATS = 4

# --- work-array rows ----------------------------------------------------------
_Y, _YNEW, _YSTAGE, _K1, _K2, _K3, _K4, _K5, _K6, _K7, _YINT, _PIV = range(12)
_W = 12  # rows _W .. _W+n-1: Rosenbrock iteration matrix; _W+n .. _W+2n-1: Jacobian


def n_work_rows(n_states: int) -> int:
    """Rows of the per-patient work array for a model with ``n_states`` states."""
    return _W + 2 * n_states

# --- Dormand–Prince 5(4) tableau ----------------------------------------------
C2, C3, C4, C5 = 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0
A21 = 1.0 / 5.0
A31, A32 = 3.0 / 40.0, 9.0 / 40.0
A41, A42, A43 = 44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0
A51, A52, A53, A54 = 19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0
A61, A62, A63, A64, A65 = (
    9017.0 / 3168.0,
    -355.0 / 33.0,
    46732.0 / 5247.0,
    49.0 / 176.0,
    -5103.0 / 18656.0,
)
B1, B3, B4, B5, B6 = 35.0 / 384.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0
# error estimate coefficients (5th minus 4th order), as in SciPy's RK45.E
E1, E3, E4, E5, E6, E7 = (
    -71.0 / 57600.0,
    71.0 / 16695.0,
    -71.0 / 1920.0,
    17253.0 / 339200.0,
    -22.0 / 525.0,
    1.0 / 40.0,
)
# Shampine's dense-output polynomial coefficients (SciPy RK45.P), row i: stage i
P = np.array(
    [
        [1.0, -8048581381.0 / 2820520608.0, 8663915743.0 / 2820520608.0,
         -12715105075.0 / 11282082432.0],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 131558114200.0 / 32700410799.0, -68118460800.0 / 10900136933.0,
         87487479700.0 / 32700410799.0],
        [0.0, -1754552775.0 / 470086768.0, 14199869525.0 / 1410260304.0,
         -10690763975.0 / 1880347072.0],
        [0.0, 127303824393.0 / 49829197408.0, -318862633887.0 / 49829197408.0,
         701980252875.0 / 199316789632.0],
        [0.0, -282668133.0 / 205662961.0, 2019193451.0 / 616988883.0,
         -1453857185.0 / 822651844.0],
        [0.0, 40617522.0 / 29380423.0, -110615467.0 / 29380423.0, 69997945.0 / 29380423.0],
    ]
)  # fmt: skip

SAFETY = 0.9
MIN_FACTOR = 0.2
MAX_FACTOR = 10.0
STIFF_LIMIT = 3.25


@jit
def _clean(y, floor):
    """Clip at zero and apply extinction floors in place; return True if changed."""
    changed = False
    for i in range(y.shape[0]):
        v = y[i]
        if v < 0.0 or (v < floor[i] and v != 0.0):
            y[i] = 0.0
            changed = True
    return changed


@jit
def _dense(work, h, theta, n):
    """Dense output at ``t_old + theta*h`` into ``work[_YINT]``."""
    q1 = theta
    q2 = theta * theta
    q3 = q2 * theta
    q4 = q3 * theta
    for i in range(n):
        acc = 0.0
        for s in range(7):
            coef = P[s, 0] * q1 + P[s, 1] * q2 + P[s, 2] * q3 + P[s, 3] * q4
            acc += work[_K1 + s, i] * coef
        work[_YINT, i] = work[_Y, i] + h * acc


@jit
def initial_step(rhs, t, y, p, u, f0, work, rtol, atol, t_span):
    """Hairer–Nørsett–Wanner starting step (as in SciPy's ``select_initial_step``)."""
    n = y.shape[0]
    d0 = 0.0
    d1 = 0.0
    for i in range(n):
        sc = atol[i] + abs(y[i]) * rtol
        d0 += (y[i] / sc) ** 2
        d1 += (f0[i] / sc) ** 2
    d0 = math.sqrt(d0 / n)
    d1 = math.sqrt(d1 / n)
    if d0 < 1e-5 or d1 < 1e-5:
        h0 = 1e-6
    else:
        h0 = 0.01 * d0 / d1
    h0 = min(h0, t_span)
    for i in range(n):
        work[_YSTAGE, i] = y[i] + h0 * f0[i]
    rhs(t + h0, work[_YSTAGE], p, u, work[_K2])
    d2 = 0.0
    for i in range(n):
        sc = atol[i] + abs(y[i]) * rtol
        d2 += ((work[_K2, i] - f0[i]) / sc) ** 2
    d2 = math.sqrt(d2 / n) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** 0.2
    return min(100.0 * h0, h1, t_span)


@jit
def integrate_segment(
    rhs, t0, t1, p, u, work, h_in, rtol, atol, floor, t_out, i_out, out, max_steps, stats
):
    """Integrate ``work[_Y]`` from ``t0`` to ``t1`` (no discontinuity inside).

    Writes dense output for every ``t_out[j]`` with ``t0 < t_out[j] <= t1``
    starting at ``j = i_out``.  Returns ``(status, h_next, i_out)``.
    """
    n = work.shape[1]
    n_out = t_out.shape[0]
    y = work[_Y]
    ynew = work[_YNEW]
    ys = work[_YSTAGE]
    k1 = work[_K1]
    k2 = work[_K2]
    k3 = work[_K3]
    k4 = work[_K4]
    k5 = work[_K5]
    k6 = work[_K6]
    k7 = work[_K7]

    t = t0
    rhs(t, y, p, u, k1)
    stats[STAT_RHS] += 1
    h = h_in
    if h <= 0.0:
        h = initial_step(rhs, t, y, p, u, k1, work, rtol, atol, t1 - t0)
        stats[STAT_RHS] += 1
    h_next = h
    n_steps = 0
    step_rejected = False
    while t < t1:
        last = False
        h = h_next
        if t + h >= t1 or t + 1.000001 * h >= t1:
            h = t1 - t
            last = True
        if h <= 1e-14 * max(1.0, abs(t)):
            return STEP_UNDERFLOW, h_next, i_out
        # stages
        for i in range(n):
            ys[i] = y[i] + h * A21 * k1[i]
        rhs(t + C2 * h, ys, p, u, k2)
        for i in range(n):
            ys[i] = y[i] + h * (A31 * k1[i] + A32 * k2[i])
        rhs(t + C3 * h, ys, p, u, k3)
        for i in range(n):
            ys[i] = y[i] + h * (A41 * k1[i] + A42 * k2[i] + A43 * k3[i])
        rhs(t + C4 * h, ys, p, u, k4)
        for i in range(n):
            ys[i] = y[i] + h * (A51 * k1[i] + A52 * k2[i] + A53 * k3[i] + A54 * k4[i])
        rhs(t + C5 * h, ys, p, u, k5)
        for i in range(n):
            ys[i] = y[i] + h * (
                A61 * k1[i] + A62 * k2[i] + A63 * k3[i] + A64 * k4[i] + A65 * k5[i]
            )
        rhs(t + h, ys, p, u, k6)
        for i in range(n):
            ynew[i] = y[i] + h * (B1 * k1[i] + B3 * k3[i] + B4 * k4[i] + B5 * k5[i] + B6 * k6[i])
        rhs(t + h, ynew, p, u, k7)
        stats[STAT_RHS] += 6
        # error norm
        err = 0.0
        finite = True
        for i in range(n):
            e = h * (
                E1 * k1[i] + E3 * k3[i] + E4 * k4[i] + E5 * k5[i] + E6 * k6[i] + E7 * k7[i]
            )
            sc = atol[i] + rtol * max(abs(y[i]), abs(ynew[i]))
            err += (e / sc) ** 2
            if not math.isfinite(ynew[i]) or not math.isfinite(k7[i]):
                finite = False
        err = math.sqrt(err / n)
        if not finite or not math.isfinite(err):
            stats[STAT_REJECTED] += 1
            h_next = h * MIN_FACTOR
            step_rejected = True
            if h_next <= 1e-14 * max(1.0, abs(t)):
                return NONFINITE, h_next, i_out
            continue
        n_steps += 1
        if n_steps > max_steps:
            return MAX_STEPS, h_next, i_out
        if err <= 1.0:
            # accepted
            stats[STAT_ACCEPTED] += 1
            t_new = t1 if last else t + h
            # stiffness detection (Hairer): h*|lambda| from k7-k6 and ynew-ys
            num = 0.0
            den = 0.0
            for i in range(n):
                num += (k7[i] - k6[i]) ** 2
                den += (ynew[i] - ys[i]) ** 2
            if den > 0.0 and h * math.sqrt(num / den) > STIFF_LIMIT:
                stats[STAT_STIFF] += 1
            # dense output for outputs inside (t, t_new]
            while i_out < n_out and t_out[i_out] <= t_new:
                if t_out[i_out] >= t_new:
                    for i in range(n):
                        out[i_out, i] = ynew[i]
                else:
                    _dense(work, h, (t_out[i_out] - t) / h, n)
                    for i in range(n):
                        out[i_out, i] = work[_YINT, i]
                _clean(out[i_out], floor)
                i_out += 1
            # advance
            for i in range(n):
                y[i] = ynew[i]
            changed = _clean(y, floor)
            if changed:
                rhs(t_new, y, p, u, k1)
                stats[STAT_RHS] += 1
            else:
                for i in range(n):
                    k1[i] = k7[i]
            t = t_new
            if err == 0.0:
                factor = MAX_FACTOR
            else:
                factor = min(MAX_FACTOR, SAFETY * err ** (-0.2))
            if step_rejected:
                factor = min(1.0, factor)
            step_rejected = False
            if not last or factor < 1.0:
                h_next = h * factor
        else:
            stats[STAT_REJECTED] += 1
            h_next = h * max(MIN_FACTOR, SAFETY * err ** (-0.2))
            step_rejected = True
    return OK, h_next, i_out


@jit
def simulate_one(
    segment,
    rhs,
    dose,
    y0,
    p,
    t_out,
    ev_t,
    ev_k,
    ev_amt,
    n_ev,
    inf_t0,
    inf_t1,
    inf_k,
    inf_rate,
    n_inf,
    u,
    rtol,
    atol,
    floor,
    max_steps,
    out,
    work,
    stats,
):
    """Simulate one patient over the output grid ``t_out`` (ascending).

    ``segment`` is the integrator (:func:`integrate_segment` or
    :func:`integrate_segment_rosenbrock`); ``rhs`` and ``dose`` are the model's kernels.

    ``out[j]`` receives the state at ``t_out[j]`` before doses at that time.
    Only the first ``n_ev`` events and ``n_inf`` infusions are read (arrays may
    be padded).  Returns a status code; ``stats`` accumulates step counts.
    """
    n = y0.shape[0]
    n_out = t_out.shape[0]
    y = work[_Y]
    for i in range(n):
        y[i] = y0[i]
        out[0, i] = y0[i]
    for s in range(stats.shape[0]):
        stats[s] = 0
    t = t_out[0]
    t_end = t_out[n_out - 1]
    i_out = 1
    i_ev = 0
    h = 0.0
    while True:
        # doses due now (outputs at t were recorded before them)
        dosed = False
        while i_ev < n_ev and ev_t[i_ev] <= t:
            dose(ev_k[i_ev], ev_amt[i_ev], y, p)
            i_ev += 1
            dosed = True
        _clean(y, floor)
        if dosed:
            h = 0.0  # restart step-size selection after a discontinuity
        if t >= t_end:
            break
        # next breakpoint and the infusion rates that hold until it
        tb = t_end
        if i_ev < n_ev and ev_t[i_ev] < tb:
            tb = ev_t[i_ev]
        for j in range(u.shape[0]):
            u[j] = 0.0
        for j in range(n_inf):
            a = inf_t0[j]
            b = inf_t1[j]
            if a > t and a < tb:
                tb = a
            if b > t and b < tb:
                tb = b
            if a <= t and t < b:
                u[inf_k[j]] += inf_rate[j]
        status, h, i_out = segment(
            rhs, t, tb, p, u, work, h, rtol, atol, floor, t_out, i_out, out, max_steps, stats
        )
        if status != OK:
            for j in range(i_out, n_out):
                for i in range(n):
                    out[j, i] = np.nan
            return status
        t = tb
    return OK


@jit_parallel
def simulate_batch_kernel(
    segment,
    rhs,
    dose,
    Y0,
    P,
    t_out,
    EV_T,
    EV_K,
    EV_AMT,
    N_EV,
    INF_T0,
    INF_T1,
    INF_K,
    INF_RATE,
    N_INF,
    U,
    rtol,
    atol,
    floor,
    max_steps,
    OUT,
    WORK,
    STATS,
    STATUS,
):
    """Simulate ``B`` patients in parallel; row ``b`` of every array is patient ``b``.

    All buffers (``U``, ``OUT``, ``WORK``, ``STATS``) are preallocated by the
    caller: nothing is allocated inside the loop.
    """
    B = Y0.shape[0]
    for b in prange(B):
        STATUS[b] = simulate_one(
            segment,
            rhs,
            dose,
            Y0[b],
            P[b],
            t_out,
            EV_T[b],
            EV_K[b],
            EV_AMT[b],
            N_EV[b],
            INF_T0[b],
            INF_T1[b],
            INF_K[b],
            INF_RATE[b],
            N_INF[b],
            U[b],
            rtol,
            atol,
            floor,
            max_steps,
            OUT[b],
            WORK[b],
            STATS[b],
        )


# --- Rosenbrock 2(3) (Shampine & Reichelt 1997) for stiff models ----------------
ROS_D = 1.0 / (2.0 + math.sqrt(2.0))
ROS_E32 = 6.0 + math.sqrt(2.0)


@jit
def _lu_factor(work, n):
    """In-place LU with partial pivoting of rows ``_W.._W+n-1``; pivots in ``_PIV``."""
    for k in range(n):
        piv = k
        big = abs(work[_W + k, k])
        for r in range(k + 1, n):
            v = abs(work[_W + r, k])
            if v > big:
                big = v
                piv = r
        work[_PIV, k] = piv
        if big == 0.0:
            return False
        if piv != k:
            for c in range(n):
                tmp = work[_W + k, c]
                work[_W + k, c] = work[_W + piv, c]
                work[_W + piv, c] = tmp
        inv = 1.0 / work[_W + k, k]
        for r in range(k + 1, n):
            f = work[_W + r, k] * inv
            work[_W + r, k] = f
            if f != 0.0:
                for c in range(k + 1, n):
                    work[_W + r, c] -= f * work[_W + k, c]
    return True


@jit
def _lu_solve(work, n, b):
    """Solve ``W x = b`` in place with the factors from :func:`_lu_factor`."""
    for k in range(n):
        piv = int(work[_PIV, k])
        if piv != k:
            tmp = b[k]
            b[k] = b[piv]
            b[piv] = tmp
    for r in range(n):
        acc = b[r]
        for c in range(r):
            acc -= work[_W + r, c] * b[c]
        b[r] = acc
    for r in range(n - 1, -1, -1):
        acc = b[r]
        for c in range(r + 1, n):
            acc -= work[_W + r, c] * b[c]
        b[r] = acc / work[_W + r, r]


@jit
def integrate_segment_rosenbrock(
    rhs, t0, t1, p, u, work, h_in, rtol, atol, floor, t_out, i_out, out, max_steps, stats
):
    """Same contract as :func:`integrate_segment`, with the ode23s Rosenbrock pair.

    Uses rows ``_K1`` (F0), ``_K2`` (k1), ``_K3`` (F1), ``_K4`` (k2), ``_K5`` (F2),
    ``_K6`` (k3), ``_K7`` (scratch) of the work array.  The Jacobian is formed by
    forward differences after every accepted step (reused after a rejection).
    """
    n = work.shape[1]
    n_out = t_out.shape[0]
    y = work[_Y]
    ynew = work[_YNEW]
    ys = work[_YSTAGE]
    f0 = work[_K1]
    k1 = work[_K2]
    f1 = work[_K3]
    k2 = work[_K4]
    f2 = work[_K5]
    k3 = work[_K6]
    fp = work[_K7]
    d = ROS_D
    e32 = ROS_E32
    sqrt_eps = 1.4901161193847656e-08
    jrow = _W + n

    t = t0
    rhs(t, y, p, u, f0)
    stats[STAT_RHS] += 1
    h = h_in
    if h <= 0.0:
        h = initial_step(rhs, t, y, p, u, f0, work, rtol, atol, t1 - t0)
        stats[STAT_RHS] += 1
    h_next = h
    n_steps = 0
    step_rejected = False
    jac_fresh = False
    while t < t1:
        last = False
        h = h_next
        if t + h >= t1 or t + 1.000001 * h >= t1:
            h = t1 - t
            last = True
        if h <= 1e-14 * max(1.0, abs(t)):
            return STEP_UNDERFLOW, h_next, i_out
        # Jacobian by forward differences (rows _W+n..), refreshed after each accepted step
        if not jac_fresh:
            for j in range(n):
                yj = y[j]
                delta = sqrt_eps * max(abs(yj), atol[j] / rtol if rtol > 0.0 else 1.0, 1e-12)
                for i in range(n):
                    ys[i] = y[i]
                ys[j] = yj + delta
                rhs(t, ys, p, u, fp)
                for i in range(n):
                    work[jrow + i, j] = (fp[i] - f0[i]) / delta
            stats[STAT_RHS] += n
            jac_fresh = True
        # W = I − h·d·J
        for i in range(n):
            for j in range(n):
                work[_W + i, j] = -h * d * work[jrow + i, j]
            work[_W + i, i] += 1.0
        ok = _lu_factor(work, n)
        if not ok:
            return NONFINITE, h_next, i_out
        # stages
        for i in range(n):
            k1[i] = f0[i]
        _lu_solve(work, n, k1)
        for i in range(n):
            ys[i] = y[i] + 0.5 * h * k1[i]
        rhs(t + 0.5 * h, ys, p, u, f1)
        for i in range(n):
            k2[i] = f1[i] - k1[i]
        _lu_solve(work, n, k2)
        for i in range(n):
            k2[i] += k1[i]
            ynew[i] = y[i] + h * k2[i]
        rhs(t + h, ynew, p, u, f2)
        for i in range(n):
            k3[i] = f2[i] - e32 * (k2[i] - f1[i]) - 2.0 * (k1[i] - f0[i])
        _lu_solve(work, n, k3)
        stats[STAT_RHS] += 2
        err = 0.0
        finite = True
        for i in range(n):
            e = h / 6.0 * (k1[i] - 2.0 * k2[i] + k3[i])
            sc = atol[i] + rtol * max(abs(y[i]), abs(ynew[i]))
            err += (e / sc) ** 2
            if not math.isfinite(ynew[i]) or not math.isfinite(f2[i]):
                finite = False
        err = math.sqrt(err / n)
        if not finite or not math.isfinite(err):
            stats[STAT_REJECTED] += 1
            h_next = h * MIN_FACTOR
            step_rejected = True
            if h_next <= 1e-14 * max(1.0, abs(t)):
                return NONFINITE, h_next, i_out
            continue
        n_steps += 1
        if n_steps > max_steps:
            return MAX_STEPS, h_next, i_out
        if err <= 1.0:
            stats[STAT_ACCEPTED] += 1
            t_new = t1 if last else t + h
            # dense output: y(t + s·h) = y + h·[s(1−s)/(1−2d)·k1 + s(s−2d)/(1−2d)·k2]
            while i_out < n_out and t_out[i_out] <= t_new:
                if t_out[i_out] >= t_new:
                    for i in range(n):
                        out[i_out, i] = ynew[i]
                else:
                    s = (t_out[i_out] - t) / h
                    c1 = s * (1.0 - s) / (1.0 - 2.0 * d)
                    c2 = s * (s - 2.0 * d) / (1.0 - 2.0 * d)
                    for i in range(n):
                        out[i_out, i] = y[i] + h * (c1 * k1[i] + c2 * k2[i])
                _clean(out[i_out], floor)
                i_out += 1
            for i in range(n):
                y[i] = ynew[i]
            jac_fresh = False
            if _clean(y, floor):
                rhs(t_new, y, p, u, f0)
                stats[STAT_RHS] += 1
            else:
                for i in range(n):
                    f0[i] = f2[i]
            t = t_new
            if err == 0.0:
                factor = 5.0
            else:
                factor = min(5.0, 0.8 * err ** (-1.0 / 3.0))
            if step_rejected:
                factor = min(1.0, factor)
            step_rejected = False
            if not last or factor < 1.0:
                h_next = h * factor
        else:
            stats[STAT_REJECTED] += 1
            h_next = h * max(MIN_FACTOR, 0.8 * err ** (-1.0 / 3.0))
            step_rejected = True
    return OK, h_next, i_out
