"""Compiled integration kernels: adaptive Dormand–Prince 5(4) / Rodas4 with dose events.

Everything here is a Numba kernel over flat ``float64`` arrays.  Kernels never
raise and never draw random numbers; failures come back as status codes
(:data:`STATUS_NAMES`).

Methods
-------
* ``DOPRI5`` — Dormand & Prince (1980) 5(4) pair with local extrapolation, FSAL,
  the standard step-size controller (safety 0.9, factor limits 0.2–10), an RMS
  error norm with ``atol[i] + rtol·max(|y_old|, |y_new|)`` (as in
  ``scipy.integrate.solve_ivp``) and Shampine's quartic dense output (the same
  interpolant as SciPy's ``RK45``), so output times do not shorten steps.
* ``RODAS4`` — the L-stable, stiffly accurate 6-stage Rosenbrock method of order
  4(3) of Hairer & Wanner (Solving ODEs II, 1996; coefficients as tabulated
  there), with a forward-difference Jacobian and an in-place LU factorisation.
  It lands exactly on output times (no interpolation).
* ``AUTO`` (default) — starts with DOPRI5 and switches to RODAS4 when Hairer's
  stiffness detector (``h·‖k7 − k6‖/‖y7 − y6‖ > 3.25``, in the error norm's
  scaling) has fired on 15 accepted steps with no run of 6 non-stiff ones in
  between; switches back when ``h·ρ̂(J) < 3`` (ρ̂ a scaled row-sum bound of the
  Jacobian's spectral radius) has held for 15 steps.  Several models are
  stiff in parts of their state space (de Pillis 2006 with a large tumour:
  tumour-driven inactivation ``q·T``, ``p·T`` reaches 10³/day; the docetaxel PK
  of Friberg 2002: ≈ 180/day), and an explicit method's step would be bounded by
  stability there.

Discontinuities — bolus doses and the edges of infusion windows — are
integration breakpoints: a step never crosses one.  The integration restarts
there with a fresh derivative evaluation and step-size estimate.

After each accepted step every state is clipped at zero and a state whose
extinction ``floor`` is positive and whose value fell below it is set to exactly
zero (e.g. fewer than one tumour cell).

Records
-------
The kernels take three named records (NamedTuples of arrays and scalars, which Numba
compiles as structs): :class:`Solver` (method, tolerances, extinction floors, step
limit), :class:`Doses` (a patient's dose events, sorted by time and applied by the
model's ``dose(k, amount, y, p)`` kernel, and its infusions, a constant rate added to
``u[k]`` on ``[start, end)``) and :class:`Scratch` (preallocated buffers).  A batch
passes the same records with one row per patient.

Outputs at time ``t`` are the state *before* any dose given at ``t`` (so
``out[0]`` is always ``y0``).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numba import prange

from oncogym._jit import jit, jit_parallel

# --- status codes -----------------------------------------------------------
OK = 0
MAX_STEPS = 1
STEP_UNDERFLOW = 2
NONFINITE = 3
SINGULAR = 4
STATUS_NAMES = {
    OK: "ok",
    MAX_STEPS: "maximum number of steps exceeded",
    STEP_UNDERFLOW: "step size underflow",
    NONFINITE: "non-finite state",
    SINGULAR: "singular iteration matrix",
}

# --- methods ------------------------------------------------------------------
AUTO = 0
DOPRI5 = 1
RODAS4 = 2
METHODS = {"auto": AUTO, "dopri5": DOPRI5, "rodas4": RODAS4}

# --- statistics slots ---------------------------------------------------------
STAT_ACCEPTED = 0
STAT_REJECTED = 1
STAT_RHS = 2
STAT_STIFF = 3  # accepted steps taken by RODAS4
STAT_SWITCHES = 4
N_STATS = 5
STAT_NAMES = ("accepted", "rejected", "rhs_evaluations", "stiff_steps", "method_switches")

# --- work-array rows ----------------------------------------------------------
# _F0 holds f(t, y) at the current point (DOPRI5's k1).  DOPRI5 uses _K2.._K7 for
# its stages; RODAS4 uses _K2.._K7 for its six increments and _FS for f evaluations.
_Y, _YNEW, _YSTAGE, _F0, _K2, _K3, _K4, _K5, _K6, _K7, _FS, _PIV = range(12)
_W = 12  # rows _W .. _W+n-1: iteration matrix (LU); _W+n .. _W+2n-1: Jacobian


def n_work_rows(n_states: int) -> int:
    """Rows of the per-patient work array for a model with ``n_states`` states."""
    return _W + 2 * n_states


class Solver(NamedTuple):
    """Integrator settings of a call (shared by every patient of a batch)."""

    method: int
    """:data:`AUTO`, :data:`DOPRI5` or :data:`RODAS4`"""
    rtol: float
    """relative tolerance"""
    atol: np.ndarray
    """absolute tolerance per state"""
    floor: np.ndarray
    """extinction floor per state (a positive value below it is set to 0; 0: clip only)"""
    max_steps: int
    """most steps between two breakpoints before :data:`MAX_STEPS`"""


class Doses(NamedTuple):
    """A patient's schedule (or a batch's: one row per patient, counts per patient).

    Events are instantaneous doses sorted by day, applied by the model's ``dose(k, amount,
    y, p)``; infusions add a constant ``rate`` to ``u[k]`` on ``[start, end)``.  Only the
    first ``n_events`` / ``n_infusions`` entries are read (arrays may be padded).
    """

    event_day: np.ndarray
    event_therapy: np.ndarray
    event_amount: np.ndarray
    n_events: Any
    infusion_start: np.ndarray
    infusion_end: np.ndarray
    infusion_therapy: np.ndarray
    infusion_rate: np.ndarray
    n_infusions: Any


class Scratch(NamedTuple):
    """Preallocated buffers of one patient (or one row per patient)."""

    u: np.ndarray
    """current infusion rate per model therapy"""
    work: np.ndarray
    """``(n_work_rows(n_states), n_states)`` stages, Jacobian, LU"""
    stats: np.ndarray
    """``(N_STATS,)`` int64 step counts of the last call (:data:`STAT_NAMES`)"""


def allocate_scratch(n_states: int, n_therapies: int, rows: int | None = None) -> Scratch:
    """Zeroed :class:`Scratch` for one patient, or for ``rows`` patients."""
    lead = () if rows is None else (rows,)
    return Scratch(
        u=np.zeros((*lead, max(n_therapies, 1))),
        work=np.zeros((*lead, n_work_rows(n_states), n_states)),
        stats=np.zeros((*lead, N_STATS), dtype=np.int64),
    )


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
        [
            1.0,
            -8048581381.0 / 2820520608.0,
            8663915743.0 / 2820520608.0,
            -12715105075.0 / 11282082432.0,
        ],
        [0.0, 0.0, 0.0, 0.0],
        [
            0.0,
            131558114200.0 / 32700410799.0,
            -68118460800.0 / 10900136933.0,
            87487479700.0 / 32700410799.0,
        ],
        [
            0.0,
            -1754552775.0 / 470086768.0,
            14199869525.0 / 1410260304.0,
            -10690763975.0 / 1880347072.0,
        ],
        [
            0.0,
            127303824393.0 / 49829197408.0,
            -318862633887.0 / 49829197408.0,
            701980252875.0 / 199316789632.0,
        ],
        [0.0, -282668133.0 / 205662961.0, 2019193451.0 / 616988883.0, -1453857185.0 / 822651844.0],
        [0.0, 40617522.0 / 29380423.0, -110615467.0 / 29380423.0, 69997945.0 / 29380423.0],
    ]
)

# --- Rodas4 (Hairer & Wanner 1996), in the form G·K_i = f(Y_i) + Σ_j C_ij/h·K_j,
#     G = I/(h·γ) − J, Y_i = y + Σ_j A_ij·K_j, y_new = y + Σ_j M_j·K_j, error = K_6 --
R_GAMMA = 0.25
R_ALPHA = (0.0, 0.386, 0.21, 0.63, 1.0, 1.0)
R_A21 = 1.544
R_A31, R_A32 = 0.9466785280815826, 0.2557011698983284
R_A41, R_A42, R_A43 = 3.314825187068521, 2.896124015972201, 0.9986419139977817
R_A51, R_A52, R_A53, R_A54 = (
    1.221224509226641,
    6.019134481288629,
    12.53708332932087,
    (-0.687886036105895),
)
R_C21 = -5.6688
R_C31, R_C32 = -2.430093356833875, -0.2063599157091915
R_C41, R_C42, R_C43 = -0.1073529058151375, -9.594562251023355, -20.47028614809616
R_C51, R_C52, R_C53, R_C54 = (
    7.496443313967647,
    -10.24680431464352,
    -33.99990352819905,
    11.7089089320616,
)
R_C61, R_C62, R_C63, R_C64, R_C65 = (
    8.083246795921522,
    -7.981132988064893,
    -31.52159432874371,
    16.31930543123136,
    -6.058818238834054,
)
# A6j = M_j for j < 5 (= A5j) and A65 = 1; M = (A51, A52, A53, A54, 1, 1)

SAFETY = 0.9
MIN_FACTOR = 0.2
MAX_FACTOR = 10.0
STIFF_LIMIT = 3.25
SWITCH_AFTER = 15


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
def _dense_dopri(work, h, theta, n, out_row):
    """DOPRI5 dense output at ``t_old + theta*h`` into ``out_row``."""
    q1 = theta
    q2 = theta * theta
    q3 = q2 * theta
    q4 = q3 * theta
    for i in range(n):
        acc = 0.0
        for s in range(7):
            coef = P[s, 0] * q1 + P[s, 1] * q2 + P[s, 2] * q3 + P[s, 3] * q4
            acc += work[_F0 + s, i] * coef
        out_row[i] = work[_Y, i] + h * acc


@jit
def _err_norm(work, e_row, n, rtol, atol):
    """RMS of ``work[e_row] / (atol + rtol·max(|y|, |y_new|))``; inf if not finite."""
    err = 0.0
    for i in range(n):
        sc = atol[i] + rtol * max(abs(work[_Y, i]), abs(work[_YNEW, i]))
        err += (work[e_row, i] / sc) ** 2
        if not math.isfinite(work[_YNEW, i]):
            return np.inf
    err = math.sqrt(err / n)
    if not math.isfinite(err):
        return np.inf
    return err


@jit
def initial_step(rhs, t, p, u, work, rtol, atol, t_span, order):
    """Hairer–Nørsett–Wanner starting step (as SciPy's ``select_initial_step``)."""
    n = work.shape[1]
    y = work[_Y]
    f0 = work[_F0]
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
    rhs(t + h0, work[_YSTAGE], p, u, work[_FS])
    d2 = 0.0
    for i in range(n):
        sc = atol[i] + abs(y[i]) * rtol
        d2 += ((work[_FS, i] - f0[i]) / sc) ** 2
    d2 = math.sqrt(d2 / n) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / (order + 1.0))
    return min(100.0 * h0, h1, t_span)


@jit
def _attempt_dopri(rhs, t, h, p, u, work, rtol, atol):
    """One DOPRI5 step from ``work[_Y]`` (with f in ``_F0``); returns (err, h·|λ|)."""
    n = work.shape[1]
    y = work[_Y]
    ys = work[_YSTAGE]
    ynew = work[_YNEW]
    k1 = work[_F0]
    k2 = work[_K2]
    k3 = work[_K3]
    k4 = work[_K4]
    k5 = work[_K5]
    k6 = work[_K6]
    k7 = work[_K7]
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
        ys[i] = y[i] + h * (A61 * k1[i] + A62 * k2[i] + A63 * k3[i] + A64 * k4[i] + A65 * k5[i])
    rhs(t + h, ys, p, u, k6)
    for i in range(n):
        ynew[i] = y[i] + h * (B1 * k1[i] + B3 * k3[i] + B4 * k4[i] + B5 * k5[i] + B6 * k6[i])
    rhs(t + h, ynew, p, u, k7)
    # error estimate into _FS
    num = 0.0
    den = 0.0
    for i in range(n):
        work[_FS, i] = h * (
            E1 * k1[i] + E3 * k3[i] + E4 * k4[i] + E5 * k5[i] + E6 * k6[i] + E7 * k7[i]
        )
        # Hairer's stiffness estimate, in the error norm's scaling (a similarity
        # transform of J: same eigenvalues, but large states no longer swamp small ones)
        sc = atol[i] + rtol * abs(ynew[i])
        num += ((k7[i] - k6[i]) / sc) ** 2
        den += ((ynew[i] - ys[i]) / sc) ** 2
    err = _err_norm(work, _FS, n, rtol, atol)
    h_lambda = h * math.sqrt(num / den) if den > 0.0 else 0.0
    return err, h_lambda


@jit
def _jacobian(rhs, t, p, u, work, rtol, atol):
    """Forward-difference Jacobian at ``work[_Y]`` (``f(y)`` in ``_F0``) into rows ``_W+n..``.

    The increment ``√eps·max(|y_j|, atol_j/rtol)`` is taken upwards so a state at 0
    (an extinct population) stays non-negative.  Returns a scaled row-sum bound on
    the spectral radius, ``max_i Σ_j |J_ij|·s_j/s_i`` with ``s = atol + rtol·|y|``.
    """
    n = work.shape[1]
    y = work[_Y]
    ys = work[_YSTAGE]
    fs = work[_FS]
    f0 = work[_F0]
    jrow = _W + n
    for i in range(n):
        ys[i] = y[i]
    for j in range(n):
        yj = y[j]
        ys[j] = yj + 1.4901161193847656e-08 * max(abs(yj), atol[j] / rtol)
        delta = ys[j] - yj
        rhs(t, ys, p, u, fs)
        for i in range(n):
            work[jrow + i, j] = (fs[i] - f0[i]) / delta
        ys[j] = yj
    rho = 0.0
    for i in range(n):
        si = atol[i] + rtol * abs(y[i])
        acc = 0.0
        for j in range(n):
            acc += abs(work[jrow + i, j]) * (atol[j] + rtol * abs(y[j]))
        rho = max(rho, acc / si)
    return rho


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
        if big == 0.0 or not math.isfinite(big):
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
    """Solve ``G x = b`` in place with the factors from :func:`_lu_factor`."""
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
def _attempt_rodas(rhs, t, h, p, u, work, rtol, atol):
    """One RODAS4 step (Jacobian already in rows ``_W+n..``); returns err (−1: singular)."""
    n = work.shape[1]
    y = work[_Y]
    ys = work[_YSTAGE]
    ynew = work[_YNEW]
    fs = work[_FS]
    k1 = work[_K2]
    k2 = work[_K3]
    k3 = work[_K4]
    k4 = work[_K5]
    k5 = work[_K6]
    k6 = work[_K7]
    jrow = _W + n
    diag = 1.0 / (h * R_GAMMA)
    for i in range(n):
        for j in range(n):
            work[_W + i, j] = -work[jrow + i, j]
        work[_W + i, i] += diag
    if not _lu_factor(work, n):
        return -1.0
    ih = 1.0 / h
    # stage 1
    for i in range(n):
        k1[i] = work[_F0, i]
    _lu_solve(work, n, k1)
    # stage 2
    for i in range(n):
        ys[i] = y[i] + R_A21 * k1[i]
    rhs(t + R_ALPHA[1] * h, ys, p, u, fs)
    for i in range(n):
        k2[i] = fs[i] + ih * (R_C21 * k1[i])
    _lu_solve(work, n, k2)
    # stage 3
    for i in range(n):
        ys[i] = y[i] + R_A31 * k1[i] + R_A32 * k2[i]
    rhs(t + R_ALPHA[2] * h, ys, p, u, fs)
    for i in range(n):
        k3[i] = fs[i] + ih * (R_C31 * k1[i] + R_C32 * k2[i])
    _lu_solve(work, n, k3)
    # stage 4
    for i in range(n):
        ys[i] = y[i] + R_A41 * k1[i] + R_A42 * k2[i] + R_A43 * k3[i]
    rhs(t + R_ALPHA[3] * h, ys, p, u, fs)
    for i in range(n):
        k4[i] = fs[i] + ih * (R_C41 * k1[i] + R_C42 * k2[i] + R_C43 * k3[i])
    _lu_solve(work, n, k4)
    # stage 5
    for i in range(n):
        ys[i] = y[i] + R_A51 * k1[i] + R_A52 * k2[i] + R_A53 * k3[i] + R_A54 * k4[i]
    rhs(t + h, ys, p, u, fs)
    for i in range(n):
        k5[i] = fs[i] + ih * (R_C51 * k1[i] + R_C52 * k2[i] + R_C53 * k3[i] + R_C54 * k4[i])
    _lu_solve(work, n, k5)
    # stage 6: Y6 = Y5 + K5
    for i in range(n):
        ys[i] += k5[i]
    rhs(t + h, ys, p, u, fs)
    for i in range(n):
        k6[i] = fs[i] + ih * (
            R_C61 * k1[i] + R_C62 * k2[i] + R_C63 * k3[i] + R_C64 * k4[i] + R_C65 * k5[i]
        )
    _lu_solve(work, n, k6)
    for i in range(n):
        ynew[i] = ys[i] + k6[i]
    return _err_norm(work, _K7, n, rtol, atol)


@jit
def integrate_segment(rhs, solver, p, scratch, t0, t1, h_in, mode, t_out, out, i_out):
    """Integrate ``scratch.work[_Y]`` from ``t0`` to ``t1`` (no discontinuity inside).

    ``solver.method`` is AUTO, DOPRI5 or RODAS4; ``mode`` the method in use on entry
    (AUTO may switch it).  Writes every output ``t_out[j]`` in ``(t0, t1]`` from
    ``j = i_out`` on.  Returns ``(status, h_next, i_out, mode)``.
    """
    u, work, stats = scratch.u, scratch.work, scratch.stats
    method, rtol, atol, floor = solver.method, solver.rtol, solver.atol, solver.floor
    max_steps = solver.max_steps
    n = work.shape[1]
    n_out = t_out.shape[0]
    y = work[_Y]
    ynew = work[_YNEW]
    t = t0
    if t1 - t0 <= 1e-12 * max(1.0, abs(t0)):
        # a sliver below floating-point resolution (two breakpoints 1e-13 apart): the
        # state does not change over it, and the step size is kept for what follows
        while i_out < n_out and t_out[i_out] <= t1:
            for i in range(n):
                out[i_out, i] = y[i]
            i_out += 1
        return OK, h_in, i_out, mode
    rhs(t, y, p, u, work[_F0])
    stats[STAT_RHS] += 1
    h_next = h_in
    if h_next <= 0.0:
        h_next = initial_step(rhs, t, p, u, work, rtol, atol, t1 - t0, 4.0)
        stats[STAT_RHS] += 1
    n_steps = 0
    rejected = False
    jac_fresh = False
    rho = 0.0
    streak = 0  # accepted steps arguing for a switch
    calm = 0  # consecutive accepted steps arguing against it
    while t < t1:
        h = h_next
        # RODAS4 has no dense output here: it steps onto output times
        t_stop = t1
        if mode == RODAS4 and i_out < n_out and t_out[i_out] < t_stop:
            t_stop = t_out[i_out]
        if t_stop - t <= 1e-12 * max(1.0, abs(t)):
            # the rest of the segment is a sliver below floating-point resolution
            t = t_stop
            while i_out < n_out and t_out[i_out] <= t:
                for i in range(n):
                    out[i_out, i] = y[i]
                i_out += 1
            continue
        last = False
        if t + 1.000001 * h >= t_stop:
            h = t_stop - t
            last = True
        if h <= 1e-14 * max(1.0, abs(t)):
            return STEP_UNDERFLOW, h_next, i_out, mode
        n_steps += 1
        if n_steps > max_steps:
            return MAX_STEPS, h_next, i_out, mode
        h_lambda = 0.0
        if mode == RODAS4:
            if not jac_fresh:
                rho = _jacobian(rhs, t, p, u, work, rtol, atol)
                stats[STAT_RHS] += n
                jac_fresh = True
            err = _attempt_rodas(rhs, t, h, p, u, work, rtol, atol)
            stats[STAT_RHS] += 5
            if err < 0.0:
                return SINGULAR, h_next, i_out, mode
            expo = 0.25
        else:
            err, h_lambda = _attempt_dopri(rhs, t, h, p, u, work, rtol, atol)
            stats[STAT_RHS] += 6
            expo = 0.2
        if not math.isfinite(err):
            stats[STAT_REJECTED] += 1
            h_next = h * MIN_FACTOR
            rejected = True
            if h_next <= 1e-14 * max(1.0, abs(t)):
                return NONFINITE, h_next, i_out, mode
            continue
        if err > 1.0:
            stats[STAT_REJECTED] += 1
            h_next = h * max(MIN_FACTOR, SAFETY * err ** (-expo))
            rejected = True
            continue
        # --- accepted ---------------------------------------------------------
        stats[STAT_ACCEPTED] += 1
        t_new = t_stop if last else t + h
        if mode == RODAS4:
            stats[STAT_STIFF] += 1
        while i_out < n_out and t_out[i_out] <= t_new:
            if t_out[i_out] >= t_new:
                for i in range(n):
                    out[i_out, i] = ynew[i]
            else:  # only DOPRI5 gets here
                _dense_dopri(work, h, (t_out[i_out] - t) / h, n, out[i_out])
            _clean(out[i_out], floor)
            i_out += 1
        for i in range(n):
            y[i] = ynew[i]
        cleaned = _clean(y, floor)
        if mode == DOPRI5 and not cleaned:
            for i in range(n):
                work[_F0, i] = work[_K7, i]  # FSAL
        else:
            rhs(t_new, y, p, u, work[_F0])
            stats[STAT_RHS] += 1
        jac_fresh = False
        t = t_new
        factor = MAX_FACTOR if err == 0.0 else min(MAX_FACTOR, SAFETY * err ** (-expo))
        if rejected:
            factor = min(1.0, factor)
        rejected = False
        if not last or factor < 1.0:
            h_next = h * factor
        # --- stiffness switching (AUTO) -----------------------------------------
        if method == AUTO:
            if mode == DOPRI5:
                # Hairer's counting: 15 stiff verdicts switch; 6 non-stiff ones in a row
                # forgive the count (rejections interleave with stiff steps)
                if h_lambda > STIFF_LIMIT:
                    streak += 1
                    calm = 0
                else:
                    calm += 1
                    if calm >= 6:
                        streak = 0
                if streak >= SWITCH_AFTER:
                    mode = RODAS4
                    streak = 0
                    calm = 0
                    stats[STAT_SWITCHES] += 1
            else:
                streak = streak + 1 if h_next * rho < 3.0 else 0
                if streak >= SWITCH_AFTER:
                    mode = DOPRI5
                    streak = 0
                    stats[STAT_SWITCHES] += 1
    return OK, h_next, i_out, mode


@jit
def simulate_one(rhs, dose, solver, y0, p, t_out, doses, scratch, out):
    """Simulate one patient over the output grid ``t_out`` (ascending).

    ``rhs`` and ``dose`` are the model's kernels, ``solver`` a :class:`Solver`,
    ``doses`` a :class:`Doses` (only its first ``n_events`` events and
    ``n_infusions`` infusions are read: arrays may be padded) and ``scratch`` a
    :class:`Scratch`.  ``out[j]`` receives the state at ``t_out[j]`` before doses at
    that time.  Returns a status code; ``scratch.stats`` receives step counts.
    """
    u, work, stats = scratch.u, scratch.work, scratch.stats
    ev_t, ev_k, ev_amt = doses.event_day, doses.event_therapy, doses.event_amount
    inf_t0, inf_t1 = doses.infusion_start, doses.infusion_end
    inf_k, inf_rate = doses.infusion_therapy, doses.infusion_rate
    n_ev, n_inf = doses.n_events, doses.n_infusions
    floor = solver.floor
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
    mode = RODAS4 if solver.method == RODAS4 else DOPRI5
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
        status, h, i_out, mode = integrate_segment(
            rhs, solver, p, scratch, t, tb, h, mode, t_out, out, i_out
        )
        if status != OK:
            for j in range(i_out, n_out):
                for i in range(n):
                    out[j, i] = np.nan
            return status
        t = tb
    return OK


@jit
def doses_row(doses, b):
    """Patient ``b``'s :class:`Doses` from a batch (arrays with one row per patient)."""
    return Doses(
        doses.event_day[b],
        doses.event_therapy[b],
        doses.event_amount[b],
        doses.n_events[b],
        doses.infusion_start[b],
        doses.infusion_end[b],
        doses.infusion_therapy[b],
        doses.infusion_rate[b],
        doses.n_infusions[b],
    )


@jit
def scratch_row(scratch, b):
    """Patient ``b``'s :class:`Scratch` from a batch."""
    return Scratch(scratch.u[b], scratch.work[b], scratch.stats[b])


@jit_parallel
def simulate_batch_kernel(rhs, dose, solver, Y0, P, t_out, doses, scratch, OUT, STATUS):
    """Simulate ``B`` patients in parallel; row ``b`` of every array is patient ``b``.

    ``doses`` and ``scratch`` hold one row per patient (:func:`doses_row`,
    :func:`scratch_row`); every buffer is preallocated by the caller: nothing is
    allocated inside the loop.
    """
    for b in prange(Y0.shape[0]):
        row = doses_row(doses, b)
        STATUS[b] = simulate_one(
            rhs, dose, solver, Y0[b], P[b], t_out, row, scratch_row(scratch, b), OUT[b]
        )
