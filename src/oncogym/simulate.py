"""Public simulation API: one patient (:func:`simulate`) or many (:func:`simulate_batch`).

A schedule is a list of ``(therapy, start_day, amount, duration_days)``: a
duration of 0 is an instantaneous dose, a positive duration an infusion at
``amount / duration_days`` per day over ``[start_day, start_day + duration_days)``.
The output grid is ``0, dt, 2·dt, …, days`` (the last step shortened if ``days``
is not a multiple of ``dt``).  The state reported at time ``t`` is the state
*before* any dose given at ``t``.

Both functions run the same compiled per-patient kernel, so a batch of N patients
equals N single runs bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from oncogym import integrate
from oncogym.models import Model, get

DEFAULT_RTOL = 1e-8
DEFAULT_MAX_STEPS = 1_000_000


class Dose(NamedTuple):
    """One schedule entry (a plain 4-tuple works as well)."""

    therapy: str
    start_day: float
    amount: float
    duration_days: float = 0.0


class SimulationError(RuntimeError):
    """The integrator returned a failure status (the message names the patients)."""


@dataclass(frozen=True)
class Trajectory:
    """One simulated patient: ``t`` (days), ``y`` (n_times × n_states)."""

    t: np.ndarray
    y: np.ndarray
    state_names: tuple[str, ...]
    model: str
    status: str = "ok"
    stats: Mapping[str, int] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.y[:, _state_index(self.state_names, name)]

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def final(self) -> dict[str, float]:
        """The last state, by name."""
        return dict(zip(self.state_names, self.y[-1].tolist(), strict=True))


@dataclass(frozen=True)
class BatchTrajectory:
    """Many patients on one grid: ``y`` is (n_patients × n_times × n_states).

    ``traj["T"]`` is (n_patients × n_times); ``traj.patient(i)`` is a
    :class:`Trajectory`; ``status`` holds one integrator status code per patient
    (0 = ok, see :data:`oncogym.integrate.STATUS_NAMES`).
    """

    t: np.ndarray
    y: np.ndarray
    state_names: tuple[str, ...]
    model: str
    status: np.ndarray
    stats: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        return self.y[:, :, _state_index(self.state_names, name)]

    def __len__(self) -> int:
        return self.y.shape[0]

    @property
    def ok(self) -> np.ndarray:
        return self.status == integrate.OK

    def patient(self, i: int) -> Trajectory:
        return Trajectory(
            t=self.t,
            y=self.y[i],
            state_names=self.state_names,
            model=self.model,
            status=integrate.STATUS_NAMES[int(self.status[i])],
            stats=_stats_dict(self.stats[i]),
        )


def _state_index(names: tuple[str, ...], name: str) -> int:
    if name not in names:
        raise ValueError(f"state: unknown state {name!r}; allowed: {', '.join(names)}")
    return names.index(name)


def _stats_dict(row: np.ndarray) -> dict[str, int]:
    return {k: int(v) for k, v in zip(integrate.STAT_NAMES, row, strict=True)}


# --- validation -------------------------------------------------------------------
def _finite_number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name}: must be finite, got {v}")
    return v


def time_grid(days: Any, dt: Any) -> np.ndarray:
    """The output grid ``0, dt, …, days`` after validating both."""
    d = _finite_number("days", days)
    if d <= 0:
        raise ValueError(f"days: must be > 0, got {d}")
    step = _finite_number("dt", dt)
    if step <= 0:
        raise ValueError(f"dt: must be > 0, got {step}")
    n = math.ceil(d / step - 1e-9)
    if n > 10_000_000:
        raise ValueError(f"dt: too small for days={d} (more than 1e7 output times)")
    grid = np.arange(n + 1, dtype=np.float64) * step
    grid[-1] = d
    return grid


def _compile_schedule(
    model: Model, schedule: Iterable[Any] | None, days: float, field_: str = "schedule"
) -> tuple[list[tuple[float, int, float]], list[tuple[float, float, int, float]]]:
    """Validate a schedule; return sorted bolus events and infusion windows."""
    events: list[tuple[float, int, float]] = []
    infusions: list[tuple[float, float, int, float]] = []
    if schedule is None:
        return events, infusions
    if isinstance(schedule, (str, bytes, Mapping)) or not isinstance(schedule, Iterable):
        raise ValueError(
            f"{field_}: expected a list of (therapy, start_day, amount, duration_days), "
            f"got {schedule!r}"
        )
    for i, entry in enumerate(schedule):
        where = f"{field_}[{i}]"
        if isinstance(entry, Mapping):
            entry = (
                entry.get("therapy"),
                entry.get("start_day"),
                entry.get("amount"),
                entry.get("duration_days", 0.0),
            )
        if (
            isinstance(entry, (str, bytes))
            or not isinstance(entry, Sequence)
            or not (3 <= len(entry) <= 4)
        ):
            raise ValueError(
                f"{where}: expected (therapy, start_day, amount, duration_days), got {entry!r}"
            )
        therapy = entry[0]
        if not isinstance(therapy, str):
            raise ValueError(f"{where}.therapy: expected a therapy name, got {therapy!r}")
        try:
            k = model.therapy_index(therapy)
        except ValueError as exc:
            raise ValueError(f"{where}.therapy: {exc}".replace("schedule: ", "")) from None
        start = _finite_number(f"{where}.start_day", entry[1])
        amount = _finite_number(f"{where}.amount", entry[2])
        duration = _finite_number(f"{where}.duration_days", entry[3] if len(entry) == 4 else 0.0)
        if start < 0 or start > days:
            raise ValueError(f"{where}.start_day: must be within [0, days={days}], got {start}")
        if amount < 0:
            raise ValueError(f"{where}.amount: must be >= 0, got {amount}")
        if duration < 0:
            raise ValueError(f"{where}.duration_days: must be >= 0, got {duration}")
        spec = model.therapies[k]
        if amount == 0:
            continue  # no dose: no breakpoint, so a zero dose equals no treatment exactly
        if duration == 0:
            if not spec.bolus:
                raise ValueError(
                    f"{where}.duration_days: therapy {therapy!r} is infusion-only; "
                    "give a duration > 0"
                )
            events.append((start, k, amount))
        else:
            if not spec.infusion:
                raise ValueError(
                    f"{where}.duration_days: therapy {therapy!r} is instantaneous only; "
                    "give duration 0"
                )
            infusions.append((start, start + duration, k, amount / duration))
    events.sort(key=lambda e: (e[0], e[1]))
    infusions.sort(key=lambda e: (e[0], e[2]))
    return events, infusions


def _method(method: str) -> int:
    if method not in integrate.METHODS:
        raise ValueError(
            f"method: unknown method {method!r}; allowed: {', '.join(integrate.METHODS)}"
        )
    return integrate.METHODS[method]


def _tolerances(model: Model, rtol: Any, atol: Any) -> tuple[float, np.ndarray]:
    r = _finite_number("rtol", rtol)
    if not (0 < r < 1):
        raise ValueError(f"rtol: must be in (0, 1), got {r}")
    if atol is None:
        a = model.atol
    elif isinstance(atol, Mapping):
        a = model.atol.copy()
        for key, v in atol.items():
            a[_state_index(model.state_names, key)] = _finite_number(f"atol[{key!r}]", v)
    else:
        a = np.broadcast_to(np.asarray(atol, dtype=np.float64), (model.n_states,)).copy()
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError("atol: must be finite and > 0 for every state")
    return r, a


def _floor(model: Model, extinction: bool) -> np.ndarray:
    return model.floor if extinction else np.zeros(model.n_states)


# --- single patient ---------------------------------------------------------------
def simulate(
    model: str | Model,
    days: float,
    *,
    params: Mapping[str, float] | None = None,
    y0: Mapping[str, float] | None = None,
    schedule: Iterable[Any] | None = None,
    dt: float = 1.0,
    rtol: float = DEFAULT_RTOL,
    atol: Any = None,
    method: str = "auto",
    max_steps: int = DEFAULT_MAX_STEPS,
    extinction: bool = True,
    check: bool = True,
) -> Trajectory:
    """Simulate one patient.

    :param model: a registered model name (see :func:`oncogym.models.available`)
    :param days: horizon in days (> 0)
    :param params: parameter overrides by name (defaults: ``model.default_params()``)
    :param y0: initial-state overrides by name (defaults: ``model.default_state()``)
    :param schedule: list of ``(therapy, start_day, amount, duration_days)``
    :param dt: output interval in days
    :param rtol: relative tolerance; ``atol`` per state defaults to the model's
    :param method: ``"auto"`` (DOPRI5, switching to RODAS4 where the problem is
        stiff), ``"dopri5"`` or ``"rodas4"``
    :param extinction: apply the model's extinction floors (a cell population below
        its floor, default 1 cell, is set to 0); ``False`` only clips at zero
    :param check: raise :class:`SimulationError` if the integrator fails
        (otherwise the failed part of ``y`` is NaN and ``status`` says why)
    """
    m = get(model)
    t_out = time_grid(days, dt)
    p = m.params_array(params)
    y = m.state_array(y0)
    events, infusions = _compile_schedule(m, schedule, float(t_out[-1]))
    r, a = _tolerances(m, rtol, atol)
    seg = _method(method)
    doses = integrate.Doses(
        event_day=np.array([e[0] for e in events], dtype=np.float64),
        event_therapy=np.array([e[1] for e in events], dtype=np.int64),
        event_amount=np.array([e[2] for e in events], dtype=np.float64),
        n_events=len(events),
        infusion_start=np.array([e[0] for e in infusions], dtype=np.float64),
        infusion_end=np.array([e[1] for e in infusions], dtype=np.float64),
        infusion_therapy=np.array([e[2] for e in infusions], dtype=np.int64),
        infusion_rate=np.array([e[3] for e in infusions], dtype=np.float64),
        n_infusions=len(infusions),
    )
    solver = integrate.Solver(seg, r, a, _floor(m, extinction), int(max_steps))
    scratch = integrate.allocate_scratch(m.n_states, len(m.therapies))
    out = np.empty((t_out.shape[0], m.n_states), dtype=np.float64)
    status = integrate.simulate_one(
        m.rhs_pointer, m.dose_pointer, solver, y, p, t_out, doses, scratch, out
    )
    stats = scratch.stats
    traj = Trajectory(
        t=t_out,
        y=out,
        state_names=m.state_names,
        model=m.name,
        status=integrate.STATUS_NAMES[int(status)],
        stats=_stats_dict(stats),
    )
    if check and status != integrate.OK:
        raise SimulationError(f"simulate({m.name!r}): integrator failed: {traj.status}")
    return traj


# --- many patients ----------------------------------------------------------------
def _rows(
    model: Model, values: Any, n: int | None, kind: str
) -> tuple[np.ndarray | None, int | None]:
    """Turn batch params/y0 into a (B, k) array; ``None`` means 'defaults for everyone'."""
    names = model.param_names if kind == "params" else model.state_names
    base = model.params_array() if kind == "params" else model.state_array()
    if values is None:
        return None, n
    if isinstance(values, np.ndarray):
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != len(names):
            raise ValueError(
                f"{kind}: an array must have shape (n_patients, {len(names)}) in the order "
                f"{', '.join(names)}; got {values.shape}"
            )
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(f"{kind}: every value must be finite and >= 0")
        return np.ascontiguousarray(arr), arr.shape[0]
    if isinstance(values, Mapping):
        lengths = {len(np.atleast_1d(v)) for v in values.values() if np.ndim(v) > 0}
        if len(lengths) > 1:
            raise ValueError(f"{kind}: per-patient arrays have different lengths {sorted(lengths)}")
        per_patient = bool(lengths)
        b = lengths.pop() if lengths else (n or 1)
        arr = np.tile(base, (b, 1))
        for key, v in values.items():
            if key not in names:
                raise ValueError(
                    f"{kind}: unknown name {key!r} for model {model.name!r}; "
                    f"allowed: {', '.join(names)}"
                )
            col = np.broadcast_to(np.asarray(v, dtype=np.float64), (b,))
            if not np.all(np.isfinite(col)) or np.any(col < 0):
                raise ValueError(f"{kind}[{key!r}]: every value must be finite and >= 0")
            arr[:, names.index(key)] = col
        # scalars only: the same values for every patient, whatever their number
        return arr, (b if per_patient else None)
    if isinstance(values, Sequence) and not isinstance(values, (str, bytes)):
        build = model.params_array if kind == "params" else model.state_array
        rows = []
        for i, v in enumerate(values):
            try:
                rows.append(build(v))
            except ValueError as exc:
                raise ValueError(f"{kind}[{i}]: {exc}") from None
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(names)), len(rows)
    raise ValueError(
        f"{kind}: expected a mapping, a list of mappings or an array, got {type(values)!r}"
    )


def simulate_batch(
    model: str | Model,
    days: float,
    *,
    params: Any = None,
    y0: Any = None,
    schedules: Any = None,
    n: int | None = None,
    dt: float = 1.0,
    rtol: float = DEFAULT_RTOL,
    atol: Any = None,
    method: str = "auto",
    max_steps: int = DEFAULT_MAX_STEPS,
    extinction: bool = True,
    check: bool = True,
) -> BatchTrajectory:
    """Simulate many patients in one parallel compiled call.

    Each of ``params`` and ``y0`` may be ``None`` (model defaults for everyone), a
    mapping ``name -> scalar or per-patient array``, a list of per-patient
    mappings, or an array of shape (n_patients, n_params / n_states) in
    ``model.param_names`` / ``model.state_names`` order.  ``schedules`` is ``None``,
    one schedule shared by every patient, or a list with one schedule per patient.
    ``n`` gives the number of patients when nothing else does.

    Returns a :class:`BatchTrajectory`; with ``check=True`` a failure of any
    patient raises :class:`SimulationError` naming the patients.
    """
    m = get(model)
    t_out = time_grid(days, dt)
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"n: must be a positive integer, got {n!r}")
    p_rows, b_p = _rows(m, params, None, "params")
    y_rows, b_y = _rows(m, y0, None, "y0")
    per_patient = (
        isinstance(schedules, Sequence)
        and not isinstance(schedules, (str, bytes))
        and len(schedules) > 0
        and all(
            s is None
            or (
                isinstance(s, Sequence)
                and not isinstance(s, (str, bytes))
                and all(not isinstance(e, (str, bytes)) for e in s)
            )
            for s in schedules
        )
    )
    b_s = len(schedules) if per_patient else None
    sizes = {x for x in (b_p, b_y, b_s, n) if x is not None}
    if len(sizes) > 1:
        raise ValueError(
            f"n_patients: params, y0, schedules and n disagree on the number of patients "
            f"({sorted(sizes)})"
        )
    B = sizes.pop() if sizes else 1
    P = p_rows if p_rows is not None else np.tile(m.params_array(), (B, 1))
    Y0 = y_rows if y_rows is not None else np.tile(m.state_array(), (B, 1))
    if P.shape[0] != B:
        P = np.tile(P[:1], (B, 1))
    if Y0.shape[0] != B:
        Y0 = np.tile(Y0[:1], (B, 1))

    days_f = float(t_out[-1])
    if per_patient:
        compiled = [
            _compile_schedule(m, s, days_f, f"schedules[{i}]") for i, s in enumerate(schedules)
        ]
    else:
        compiled = [_compile_schedule(m, schedules, days_f, "schedules")] * B
    max_ev = max(1, max(len(c[0]) for c in compiled))
    max_inf = max(1, max(len(c[1]) for c in compiled))
    EV_T = np.zeros((B, max_ev))
    EV_K = np.zeros((B, max_ev), dtype=np.int64)
    EV_A = np.zeros((B, max_ev))
    N_EV = np.zeros(B, dtype=np.int64)
    INF_T0 = np.zeros((B, max_inf))
    INF_T1 = np.zeros((B, max_inf))
    INF_K = np.zeros((B, max_inf), dtype=np.int64)
    INF_R = np.zeros((B, max_inf))
    N_INF = np.zeros(B, dtype=np.int64)
    for b, (events, infusions) in enumerate(compiled):
        if events:
            ev = np.array(events, dtype=np.float64)
            N_EV[b] = len(events)
            EV_T[b, : len(events)] = ev[:, 0]
            EV_K[b, : len(events)] = ev[:, 1].astype(np.int64)
            EV_A[b, : len(events)] = ev[:, 2]
        if infusions:
            inf = np.array(infusions, dtype=np.float64)
            N_INF[b] = len(infusions)
            INF_T0[b, : len(infusions)] = inf[:, 0]
            INF_T1[b, : len(infusions)] = inf[:, 1]
            INF_K[b, : len(infusions)] = inf[:, 2].astype(np.int64)
            INF_R[b, : len(infusions)] = inf[:, 3]
    r, a = _tolerances(m, rtol, atol)
    solver = integrate.Solver(_method(method), r, a, _floor(m, extinction), int(max_steps))
    doses = integrate.Doses(EV_T, EV_K, EV_A, N_EV, INF_T0, INF_T1, INF_K, INF_R, N_INF)
    scratch = integrate.allocate_scratch(m.n_states, len(m.therapies), rows=B)
    OUT = np.empty((B, t_out.shape[0], m.n_states))
    STATUS = np.zeros(B, dtype=np.int64)
    integrate.simulate_batch_kernel(
        m.rhs_pointer, m.dose_pointer, solver, Y0, P, t_out, doses, scratch, OUT, STATUS
    )
    STATS = scratch.stats
    traj = BatchTrajectory(
        t=t_out, y=OUT, state_names=m.state_names, model=m.name, status=STATUS, stats=STATS
    )
    if check and np.any(STATUS != integrate.OK):
        bad = np.flatnonzero(STATUS != integrate.OK)
        detail = ", ".join(f"{i}: {integrate.STATUS_NAMES[int(STATUS[i])]}" for i in bad[:10])
        raise SimulationError(
            f"simulate_batch({m.name!r}): integrator failed for {len(bad)} patient(s) ({detail})"
        )
    return traj
