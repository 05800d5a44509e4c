"""The pure functions of every oncogym environment (Gymnasium phys2d style).

The single environment (:class:`oncogym.envs.OncologyEnv`), the native vector environment
(:class:`oncogym.envs.OncologyVectorEnv`) and planners share these functions; they differ
only in how many patients a :class:`BatchState` holds and in whether the compiled step
runs serially or in parallel.

* :func:`allocate` — a :class:`BatchState` for ``n`` patients with every buffer;
* :func:`sample_patients` — draw patients from the task's training distribution;
* :func:`initial` — start patients at day 0 (baseline scan, grades, first observation);
* :func:`action_to_request` — validate actions and turn them into requested doses;
* :func:`transition` — advance every patient by one decision interval in one compiled call;
* :func:`observation`, :func:`reward`, :func:`terminal` — read the result;
* :func:`action_masks` — the dose levels the constraints allow in the next interval.

Unlike phys2d, state is updated in place: the buffers are preallocated once so that a
step allocates nothing in the compiled part and little in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from oncogym import integrate

from . import _kernels as K
from .task import EnvParams

COMPONENT_NAMES = (
    "days_alive",
    "qaly",
    "burden_loss",
    "toxicity_loss",
    "treatment_loss",
    "death_penalty",
    "log10_burden_start",
    "log10_burden_end",
    "dose_fraction",
)
"""Reward components (columns of :attr:`BatchState.COMP`), in the kernels' order.  Years
except ``days_alive`` (days), the log10 burdens and ``dose_fraction`` (sum over therapies of
delivered amount / maximum level)."""

DEATH_CAUSES = ("none", "tumour", "toxicity", "error")
"""``info["death_cause"]`` by the kernels' code."""

REWARDS = ("qaly", "tumor_reduction")
"""Named reward presets (see :func:`reward`)."""

TUMOR_REDUCTION_DOSE_WEIGHT = 0.05
"""Dose cost per maximum-dose equivalent in the ``tumor_reduction`` preset."""


@dataclass(eq=False)
class BatchState:
    """State of ``n`` patients plus the preallocated work buffers of the compiled step.

    Row ``b`` of every array is patient ``b``.  ``Y`` (model state) and ``P`` (parameters)
    are float64; the clinical bookkeeping is in ``F``/``I`` (columns named in
    :mod:`oncogym.envs._kernels`); ``LAST``, ``CUM``, ``NADM`` are per therapy: day of the
    last delivery, cumulative amount, number of administrations.  ``OBS`` holds the
    current observation, ``COMP`` the last interval's reward components, ``REQ`` the
    requested and ``DELIV`` the delivered amounts, ``BLOCKED`` which requests the
    constraints refused.
    """

    Y: np.ndarray
    P: np.ndarray
    F: np.ndarray
    I: np.ndarray
    LAST: np.ndarray
    CUM: np.ndarray
    NADM: np.ndarray
    GRADE: np.ndarray
    WSTEP: np.ndarray
    WEVER: np.ndarray
    SCAN_Z: np.ndarray
    COMP: np.ndarray
    OBS: np.ndarray
    REQ: np.ndarray
    DELIV: np.ndarray
    BLOCKED: np.ndarray
    MASK: np.ndarray
    T_OUT: np.ndarray
    EV_T: np.ndarray
    EV_K: np.ndarray
    EV_A: np.ndarray
    INF_T0: np.ndarray
    INF_T1: np.ndarray
    INF_K: np.ndarray
    INF_R: np.ndarray
    U: np.ndarray
    OUT: np.ndarray
    WORK: np.ndarray
    STATS: np.ndarray
    OFFSETS: np.ndarray

    @property
    def n(self) -> int:
        return self.Y.shape[0]

    @property
    def day(self) -> np.ndarray:
        return self.F[:, K.F_T]

    @property
    def alive(self) -> np.ndarray:
        return self.I[:, K.I_ALIVE] == 1


def obs_size(params: EnvParams) -> int:
    nt = params.n_therapies
    if params.obs_mode == K.OBS_CLINICAL:
        return 2 + len(params.lab_names) + len(params.tox_categories) + 2 * nt + 1
    return params.model.n_states + 2 * nt + 1


def observation_layout(params: EnvParams) -> list[tuple[str, str, float, float]]:
    """``(name, unit, low, high)`` of every observation entry, in order."""
    rows: list[tuple[str, str, float, float]] = []
    days = params.days_cap
    if params.obs_mode == K.OBS_CLINICAL:
        rows.append(("scan_log10_cells", "log10(1 + cells) at the last scan", 0.0, 14.0))
        rows.append(("weeks_since_scan", "weeks", 0.0, days / 7.0))
        rows += [(f"log10_{n}", f"log10(1 + {u})", 0.0, 14.0)
                 for n, u in zip(params.lab_names, params.lab_units, strict=True)]  # fmt: skip
        rows += [(f"grade_{c}", "CTCAE-like grade, worst in the last interval", 0.0, 5.0)
                 for c in params.tox_categories]  # fmt: skip
    else:
        m = params.model
        rows += [(f"log10_{s.name}", f"log10(1 + {s.unit})", 0.0, FULL_CAP) for s in m.states]
    rows += [(f"days_since_{t}", "days (capped; never given = cap)", 0.0, days)
             for t in params.therapies]  # fmt: skip
    rows += [(f"cumulative_{t}", "maximum-dose equivalents", 0.0, float(cap))
             for t, cap in zip(params.therapies, params.cum_cap, strict=True)]  # fmt: skip
    rows.append(("day", "days since start of treatment", 0.0, days))
    return rows


FULL_CAP = 20.0
"""Upper bound of a log10(1 + state) entry of the ``"full"`` observation (clipped)."""


def allocate(params: EnvParams, n: int) -> BatchState:
    """A :class:`BatchState` for ``n`` patients (all buffers zero; call :func:`initial`)."""
    m = params.model
    ns, nt, ncat = m.n_states, params.n_therapies, len(params.tox_categories)
    mo, me = params.max_out, params.max_events
    return BatchState(
        Y=np.zeros((n, ns)),
        P=np.tile(m.params_array(), (n, 1)),
        F=np.zeros((n, K.N_F)),
        I=np.zeros((n, K.N_I), dtype=np.int64),
        LAST=np.full((n, nt), -np.inf),
        CUM=np.zeros((n, nt)),
        NADM=np.zeros((n, nt), dtype=np.int64),
        GRADE=np.zeros((n, ncat), dtype=np.int64),
        WSTEP=np.zeros((n, ncat), dtype=np.int64),
        WEVER=np.zeros((n, ncat), dtype=np.int64),
        SCAN_Z=np.zeros((n, max(1, len(params.scan_days)))),
        COMP=np.zeros((n, K.N_COMP)),
        OBS=np.zeros((n, obs_size(params)), dtype=np.float32),
        REQ=np.zeros((n, nt)),
        DELIV=np.zeros((n, nt)),
        BLOCKED=np.zeros((n, nt), dtype=np.bool_),
        MASK=np.ones((n, int(params.n_levels.sum())), dtype=np.bool_),
        T_OUT=np.zeros((n, mo)),
        EV_T=np.zeros((n, me)),
        EV_K=np.zeros((n, me), dtype=np.int64),
        EV_A=np.zeros((n, me)),
        INF_T0=np.zeros((n, max(1, nt))),
        INF_T1=np.zeros((n, max(1, nt))),
        INF_K=np.zeros((n, max(1, nt)), dtype=np.int64),
        INF_R=np.zeros((n, max(1, nt))),
        U=np.zeros((n, max(1, len(m.therapies)))),
        OUT=np.zeros((n, mo, ns)),
        WORK=np.zeros((n, integrate.n_work_rows(ns), ns)),
        STATS=np.zeros((n, integrate.N_STATS), dtype=np.int64),
        OFFSETS=np.zeros((n, mo)),
    )


def sample_patients(
    params: EnvParams, rng: np.random.Generator, n: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``n`` patients and their scan noise: ``(P, Y0, scan_z)``.

    The patient comes first from ``rng`` (the scenario's training distribution), then one
    standard normal per scheduled scan.
    """
    P, Y0 = params.sampler.sample(rng, n)
    z = rng.standard_normal((n, max(1, len(params.scan_days))))
    return P, Y0, z


def patient_rows(params: EnvParams, patient: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``(params, y0)`` of one patient (dicts by name or arrays) into rows."""
    m = params.model
    if not isinstance(patient, (tuple, list)) or len(patient) != 2:
        raise ValueError(
            "options['patient']: expected (params, y0) as dicts by name or arrays in "
            f"model order, got {type(patient).__name__}"
        )
    rows = []
    for what, value, names, build in (
        ("params", patient[0], m.param_names, m.params_array),
        ("y0", patient[1], m.state_names, m.state_array),
    ):
        if isinstance(value, Mapping):
            rows.append(build(value))
            continue
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape != (len(names),):
            raise ValueError(
                f"options['patient'] {what}: expected {len(names)} values in the order "
                f"{', '.join(names)}, got shape {arr.shape}"
            )
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(f"options['patient'] {what}: values must be finite and >= 0")
        rows.append(arr.copy())
    return rows[0], rows[1]


def _start_args(params: EnvParams, s: BatchState) -> tuple:
    return (
        s.Y, s.P, s.F, s.I, s.LAST, s.CUM, s.NADM, s.GRADE, s.WSTEP, s.WEVER, s.SCAN_Z, s.OBS,
        params.obs_mode, params.tumour_index, params.scan_days, params.scan_sigma,
        params.cr_threshold_mm, params.cells_per_cm3, params.tox_state, params.tox_param,
        params.tox_scale, params.tox_thresholds, params.tox_kind, params.tox_fatal,
        _FATAL_ANC, _FATAL_DAYS, params.lab_state, params.lab_param, params.lab_scale,
        params.max_level, params.cum_cap, params.days_cap, FULL_CAP,
    )  # fmt: skip


def _fatal() -> tuple[float, float]:
    from oncogym import toxicity

    return toxicity.NEUTROPENIA_FATAL_ANC_PER_L, toxicity.NEUTROPENIA_FATAL_DAYS


_FATAL_ANC, _FATAL_DAYS = _fatal()


def initial(
    params: EnvParams,
    state: BatchState,
    rows: np.ndarray,
    P: np.ndarray,
    Y0: np.ndarray,
    scan_z: np.ndarray,
    *,
    args: StepArgs | None = None,
) -> None:
    """Start the patients ``rows`` of ``state`` at day 0 with parameters ``P``, states ``Y0``.

    Writes their first observation into ``state.OBS``.  ``args`` caches the argument
    tuple (:class:`StepArgs`).
    """
    rows = np.asarray(rows, dtype=np.int64)
    state.P[rows] = P
    state.Y[rows] = Y0
    state.SCAN_Z[rows] = scan_z
    state.COMP[rows] = 0.0
    state.DELIV[rows] = 0.0
    state.BLOCKED[rows] = False
    K.start_batch(rows, *(args.start if args is not None else _start_args(params, state)))


def action_to_request(
    params: EnvParams,
    actions: Any,
    mode: str,
    out: np.ndarray,
    *,
    min_dose_fraction: float = 0.0,
) -> np.ndarray:
    """Validate ``actions`` (shape ``(n, n_therapies)``) and write requested amounts to ``out``.

    ``"discrete"``: integer dose-level indices, ``0 <= a < n_levels``; ``"continuous"``:
    fractions of the maximum dose level in ``[0, 1]`` (below ``min_dose_fraction``: no
    dose).  Anything else — wrong shape, NaN, out of range, non-integer levels — raises
    :class:`ValueError`.
    """
    a = np.asarray(actions)
    if a.shape != out.shape:
        raise ValueError(f"action: expected shape {out.shape[1:]} per env, got {a.shape[1:]}")
    if a.dtype.kind not in "iufb":
        raise ValueError(f"action: expected numbers, got dtype {a.dtype}")
    if mode == "discrete":
        if a.dtype.kind == "f":
            if not np.all(np.isfinite(a)):
                raise ValueError("action: NaN or infinite dose level")
            if not np.all(a == np.round(a)):
                raise ValueError(f"action: dose levels must be integers, got {a.tolist()}")
        idx = a.astype(np.int64)
        if np.any(idx < 0) or np.any(idx >= params.n_levels):
            raise ValueError(
                f"action: dose levels must lie in [0, n_levels) with n_levels = "
                f"{params.n_levels.tolist()}, got {a.tolist()}"
            )
        out[:] = params.level_table[np.arange(params.n_therapies), idx]
    else:
        x = a.astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError("action: NaN or infinite dose fraction")
        if np.any(x < 0.0) or np.any(x > 1.0):
            raise ValueError(f"action: dose fractions must lie in [0, 1], got {x.tolist()}")
        np.multiply(x, params.max_level, out=out)
        out[x < min_dose_fraction] = 0.0
    return out


def _step_args(params: EnvParams, s: BatchState) -> tuple:
    m = params.model
    return (
        params.method, m.rhs_pointer, m.dose_pointer, s.Y, s.P, s.F, s.I, s.LAST, s.CUM,
        s.NADM, s.REQ, s.DELIV, s.BLOCKED, s.GRADE, s.WSTEP, s.WEVER, s.SCAN_Z, s.COMP,
        s.OBS, s.T_OUT, s.EV_T, s.EV_K, s.EV_A, s.INF_T0, s.INF_T1, s.INF_K, s.INF_R, s.U,
        s.OUT, s.WORK, s.STATS, s.OFFSETS, params.tx_model, params.tx_kind,
        params.min_interval_days, params.level_table, params.max_cumulative,
        params.max_administrations, params.max_level, params.admin_days, params.course_days,
        params.gap_days, params.enforce_constraints, params.decision_days, params.horizon_days,
        params.tumour_index, params.lethal_cells, params.scan_days, params.scan_sigma,
        params.cr_threshold_mm, params.cells_per_cm3, params.tox_state, params.tox_param,
        params.tox_scale, params.tox_thresholds, params.tox_kind, params.tox_fatal,
        _FATAL_ANC, _FATAL_DAYS, params.tox_disutility, params.burden_weight,
        params.burden_lo, params.burden_span, params.death_weight, params.obs_mode,
        params.lab_state, params.lab_param, params.lab_scale, params.cum_cap,
        params.days_cap, FULL_CAP, params.rtol, params.atol, params.floor, params.max_steps,
    )  # fmt: skip


class StepArgs:
    """The argument tuple of the compiled step, built once per (params, state) pair."""

    def __init__(self, params: EnvParams, state: BatchState) -> None:
        self.args = _step_args(params, state)
        self.start = _start_args(params, state)


def transition(
    params: EnvParams,
    state: BatchState,
    *,
    parallel: bool = False,
    args: StepArgs | None = None,
) -> None:
    """Advance every patient of ``state`` by one decision interval (requests in ``state.REQ``).

    One compiled call: schedules, constraints, integration, toxicity, death, scans,
    reward components and the next observation.  ``parallel`` runs patients on all
    cores (identical results).  ``args`` caches the argument tuple (:class:`StepArgs`).
    """
    a = args.args if args is not None else _step_args(params, state)
    if parallel:
        K.step_parallel(*a)
    else:
        K.step_serial(*a)


def observation(params: EnvParams, state: BatchState) -> np.ndarray:
    """The current observations (float32, ``(n, obs_size)``; a view of ``state.OBS``)."""
    return state.OBS


def components(state: BatchState) -> dict[str, np.ndarray]:
    """The last interval's reward components by name (views, one value per patient)."""
    return {name: state.COMP[:, i] for i, name in enumerate(COMPONENT_NAMES)}


RewardFn = Callable[[Mapping[str, np.ndarray]], Any]


def reward(params: EnvParams, state: BatchState, kind: str | RewardFn = "qaly") -> np.ndarray:
    """Rewards of the last interval (float64, one per patient).

    * ``"qaly"`` — quality-adjusted life years lived in the interval, minus the treatment
      burden, minus (once, at death) the years of life lost before the horizon;
    * ``"tumor_reduction"`` — the fall of log10 tumour cells over the interval minus
      :data:`TUMOR_REDUCTION_DOSE_WEIGHT` per maximum-dose equivalent (peer style; it does
      not price death and can be gamed — provided for comparison);
    * a callable receiving :func:`components` (arrays) and returning the rewards.
    """
    c = state.COMP
    if kind == "qaly":
        return c[:, K.C_QALY] - c[:, K.C_ADMIN_LOSS] - c[:, K.C_DEATH_PENALTY]
    if kind == "tumor_reduction":
        return (c[:, K.C_LOG10_START] - c[:, K.C_LOG10_END]) - TUMOR_REDUCTION_DOSE_WEIGHT * c[
            :, K.C_DOSE_FRACTION
        ]
    r = np.asarray(kind(components(state)), dtype=np.float64)
    r = np.broadcast_to(r, (state.n,)).copy()
    if not np.all(np.isfinite(r)):
        raise ValueError("reward: the reward callable returned a non-finite value")
    return r


def terminal(params: EnvParams, state: BatchState) -> tuple[np.ndarray, np.ndarray]:
    """``(terminated, truncated)``: death (or integrator failure); the horizon reached alive."""
    alive = state.I[:, K.I_ALIVE] == 1
    truncated = alive & (state.F[:, K.F_T] >= params.horizon_days - 1e-9)
    return ~alive, truncated


def action_masks(params: EnvParams, state: BatchState) -> np.ndarray:
    """Allowed dose levels of the next interval, ``(n, sum(n_levels))`` bool (a view)."""
    level_table = params.level_table
    K.masks(
        state.F, state.I, state.LAST, state.CUM, state.NADM, state.MASK, level_table,
        params.n_levels, params.tx_kind, params.min_interval_days, params.max_cumulative,
        params.max_administrations, params.course_days, params.decision_days,
        params.horizon_days, params.enforce_constraints,
    )  # fmt: skip
    return state.MASK


def schedule_to_actions(params: EnvParams, schedule: Any) -> np.ndarray:
    """Continuous actions (fractions of each highest dose level) that give ``schedule``.

    ``schedule`` is a list of ``(therapy, start_day, amount, duration_days)`` (e.g.
    :meth:`oncogym.scenarios.Protocol.schedule`); the result has one row per decision
    interval.  Each dose must fit the therapy's delivery pattern: boluses on the first
    day of an interval (a CAR-T infusion also two days after a lymphodepletion course),
    radiotherapy fractions on weekdays, lymphodepletion as a course from the first day.
    A dose that does not fit, or exceeds the highest level, raises :class:`ValueError`.

    :param params: the task
    :param schedule: the schedule to express
    """
    dd = params.decision_days
    out = np.zeros((params.n_steps, params.n_therapies))
    course_in = np.zeros(params.n_steps, dtype=np.int64)
    entries = sorted(schedule, key=lambda e: (e[1], e[0]))
    for therapy, day, amount, *rest in entries:
        duration = float(rest[0]) if rest else 0.0
        if therapy not in params.therapies:
            raise ValueError(f"schedule: therapy {therapy!r} is not offered; allowed: "
                             f"{', '.join(params.therapies)}")  # fmt: skip
        k = params.therapies.index(therapy)
        step = int(np.floor(float(day) / dd + 1e-9))
        if step >= params.n_steps or amount <= 0:
            continue
        offset = float(day) - step * dd
        kind = params.tx_kind[k]
        value = float(amount)
        if kind == K.INFUSION:
            value = float(amount) / duration if duration > 0 else float(amount)
        elif kind == K.BOLUS and abs(offset) > 1e-9:
            raise ValueError(f"schedule: {therapy} on day {day} is not on a decision day")
        elif kind == K.COURSE:
            course_in[step] = max(course_in[step], round(offset) + 1)
        elif kind == K.AFTER_COURSE:
            expected = course_in[step] + params.gap_days if course_in[step] else 0
            if abs(offset - expected) > 1e-9:
                raise ValueError(f"schedule: {therapy} on day {day} does not follow the delivery "
                                 f"pattern (expected day {step * dd + expected})")  # fmt: skip
        frac = value / params.max_level[k]
        if frac > 1.0 + 1e-9:
            raise ValueError(f"schedule: {therapy} {value} exceeds the highest level "
                             f"{params.max_level[k]}")  # fmt: skip
        out[step, k] = max(out[step, k], min(frac, 1.0))
    return out
