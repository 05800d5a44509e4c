"""The functional environment: every oncogym environment's dynamics, written once.

:class:`OncologyFunctional` has the shape of Gymnasium's ``FuncEnv`` (phys2d style):
:meth:`~OncologyFunctional.initial`, :meth:`~OncologyFunctional.transition`,
:meth:`~OncologyFunctional.observation`, :meth:`~OncologyFunctional.reward`,
:meth:`~OncologyFunctional.terminal`, :meth:`~OncologyFunctional.info`, and one composition
:meth:`~OncologyFunctional.step` that the single environment, the vector environment (and
the SB3 adapter over it), the evaluator and the planner all call.  Unlike ``FuncEnv`` it
works on a batch of patients in place (:class:`Patients`: preallocated records, so that a
step allocates nothing in the compiled part), and randomness is drawn only at reset
(patients and scan noise, :meth:`~OncologyFunctional.draw`).

A dose, from ``env.step`` to the integrator and back::

    OncologyEnv.step(action)                   # one patient; OncologyVectorEnv: n at once
      OncologyFunctional.step(patients, action)
        transition(patients, action)           # -> Interval (what the interval did)
          requested_amounts(action)            #   dose levels / fractions -> amounts
          _kernels.step_serial|step_parallel   #   one compiled call for every patient:
            _schedule                          #     constraints, the interval's doses
            integrate.simulate_one             #     the core's integrator, daily outputs
            _days, _scans, _observe            #     grades, death, utility, RECIST, obs
        reward(interval)                       # from the interval's components
        cost(patients)                         # new grade >= 3 toxicities (constrained RL)
        terminal(patients)                     # death; the horizon reached alive
        observation(patients)                  # written by the compiled step
      info(patients, 0, reset=False)           # the info dict (infos: stacked)

The kernels' records (:mod:`oncogym.envs._kernels`) are internal; :attr:`Patients.view`
is the public, read-only view of the patients' state (day, scans, RECIST, doses given,
toxicity, model state) that the planner, the evaluator and tests read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import numba
import numpy as np
from gymnasium import spaces

from oncogym import integrate
from oncogym.clinical import RESPONSE_NAMES, SEVERE_GRADE

from . import _kernels as K
from . import settings as S
from .task import FULL_OBS_CAP, EnvParams, make_params

COMPONENT_NAMES = K.COMPONENTS
"""Reward components of an interval (fields of :class:`~._kernels.Interval`), in order.
Years except ``days_alive`` (days), the log10 burdens and ``dose_fraction`` (sum over
therapies of delivered amount / maximum level)."""

DEATH_CAUSES = ("none", "tumour", "toxicity", "error")
"""``info["death_cause"]`` by the kernels' code (``State.death_cause``)."""

ACTION_MODES = ("discrete", "continuous")
REWARDS = ("qaly", "tumor_reduction")
"""Named reward presets (see :meth:`OncologyFunctional.reward`)."""

TUMOR_REDUCTION_DOSE_WEIGHT = 0.05
"""Dose cost per maximum-dose equivalent in the ``tumor_reduction`` preset."""

RewardFn = Callable[[Mapping[str, np.ndarray]], Any]


class Draws(NamedTuple):
    """What a reset draws for ``n`` patients: parameters, initial states, scan noise, and
    the difficulty tier's draws (``None``: nothing moved, :func:`oncogym.envs.settings.
    no_draws`)."""

    params: np.ndarray
    y0: np.ndarray
    scan_noise: np.ndarray
    tier: S.TierDraws | None = None


class Step(NamedTuple):
    """One step of every patient: what :meth:`OncologyFunctional.step` returns."""

    observation: np.ndarray
    """``(n, obs_size)`` float32 (a view of the state; copy before keeping)"""
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    interval: K.Interval
    """what the interval did (doses delivered and blocked, reward components)"""
    cost: np.ndarray
    """float64 per patient: new grade >= 3 toxicities in the interval
    (:meth:`OncologyFunctional.cost`)"""


def _read_only(record: Any) -> Any:
    views = []
    for a in record:
        v = a.view()
        v.flags.writeable = False
        views.append(v)
    return type(record)(*views)


@dataclass(eq=False)
class Patients:
    """``n`` patients of one task: their state, the last interval, the scratch buffers.

    Built by :meth:`OncologyFunctional.allocate`; the compiled step writes ``state``,
    ``interval`` and ``work`` in place.  Read them through :attr:`view` and
    :attr:`last` (read-only arrays that follow the patients).
    """

    state: K.State
    interval: K.Interval
    work: K.Work
    requested: np.ndarray
    """``(n, n_therapies)`` scratch: the amounts an action asks for"""
    mask: np.ndarray
    """``(n, sum(n_levels))`` scratch of :meth:`OncologyFunctional.action_masks`"""
    severe_onset: np.ndarray
    """``(n, n_categories)`` bool: the categories whose worst grade reached grade >= 3 in
    the last interval, having been below 3 before it (the cost,
    :meth:`OncologyFunctional.cost`); cleared when a patient starts"""
    worst_before: np.ndarray
    """``(n, n_categories)`` scratch: the worst grades before the interval"""

    @property
    def n(self) -> int:
        return int(self.state.day.shape[0])

    @cached_property
    def view(self) -> K.State:
        """The patients' state, read-only (fields documented in :class:`~._kernels.State`)."""
        return _read_only(self.state)

    @cached_property
    def last(self) -> K.Interval:
        """The last interval's outcome, read-only (:class:`~._kernels.Interval`)."""
        return _read_only(self.interval)

    def rows(self, m: int) -> Patients:
        """The first ``m`` patients, sharing this batch's memory (planner scratch)."""

        def head(record: Any) -> Any:
            return type(record)(*(a[:m] for a in record))

        return Patients(
            head(self.state),
            head(self.interval),
            head(self.work),
            self.requested[:m],
            self.mask[:m],
            self.severe_onset[:m],
            self.worst_before[:m],
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("view", None)  # views are rebuilt on the unpickled arrays
        state.pop("last", None)
        state.pop("_entries", None)
        return state

    def call(self, kernel: Any, *args: Any) -> Any:
        """Call a compiled kernel on records of these patients.

        Numba types a record argument field by field in Python at every call (~0.4 µs a
        field, ~40 µs for the step's ~100 arrays).  The records' types never change, so
        the kernel's compiled entry point for them is looked up once (``Dispatcher.
        compile`` of the arguments' own types) and called directly afterwards.  Keyed by
        the kernel and the identity of every argument, so other arguments get their own.
        """
        entries = self.__dict__.setdefault("_entries", {})
        key = (kernel, *map(id, args))
        entry = entries.get(key)
        if entry is None:
            if not hasattr(kernel, "compile"):  # NUMBA_DISABLE_JIT: plain Python
                return kernel(*args)
            entry = kernel.compile(tuple(numba.typeof(a) for a in args))
            entries[key] = (entry, args)  # the arguments stay alive: their ids stay theirs
        else:
            entry = entry[0]
        return entry(*args)


def copy_rows(
    dst: Patients,
    src: Patients,
    src_rows: np.ndarray | None = None,
    *,
    dst_rows: np.ndarray | None = None,
) -> None:
    """Copy patients' state and last interval (with its cost) from ``src`` to ``dst``.

    ``src_rows`` picks the source patients (default: the first ones), ``dst_rows`` where
    they go (default: the first ones); both sides must hold the same number of patients.
    """
    pairs = (
        (dst.state, src.state),
        (dst.interval, src.interval),
        ((dst.severe_onset,), (src.severe_onset,)),
    )
    for d_rec, s_rec in pairs:
        for d, s in zip(d_rec, s_rec, strict=True):
            m = d.shape[0] if dst_rows is None else len(dst_rows)
            value = s[:m] if src_rows is None else s[src_rows]
            if dst_rows is None:
                d[:] = value
            else:
                d[dst_rows] = value


def end_episodes(patients: Patients, rows: np.ndarray) -> None:
    """Stop stepping patients ``rows`` (a planner's simulations past the horizon)."""
    patients.state.alive[rows] = False


def continue_clinic(dst: Patients, dst_rows: np.ndarray, src: Patients, b: int) -> None:
    """Give patients ``dst_rows`` of ``dst`` patient ``b``'s clinic record of ``src`` — day,
    doses given, scan schedule — so that they continue its episode (a particle filter
    attached mid-episode)."""
    d, s = dst.state, src.state
    for name in ("last_dose_day", "cumulative_dose", "administrations"):
        getattr(d, name)[dst_rows] = getattr(s, name)[b]
    d.day[dst_rows] = s.day[b]
    d.next_scan[dst_rows] = s.next_scan[b]
    d.steps[dst_rows] = s.steps[b]
    share_schedule(dst, dst_rows, src, b)


def share_schedule(dst: Patients, dst_rows: np.ndarray, src: Patients, b: int) -> None:
    """Give patients ``dst_rows`` of ``dst`` patient ``b``'s clinic schedule of ``src``:
    the tier's scan delays, missed visits and missing labs (nothing without a tier)."""
    d, s = dst.state, src.state
    for name in ("scan_offset", "visit_missed", "lab_missing"):
        target, source = getattr(d, name), getattr(s, name)
        if target.shape[1:] == source.shape[1:]:
            target[dst_rows] = source[b]


def tumour_cells(y: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Tumour cells of each row of model states ``y``: the states ``index`` added left to
    right, as the kernels add them (so one patient and a batch round alike, bit for bit)."""
    out = y[:, index[0]].copy()
    for i in index[1:]:
        out += y[:, i]
    return out


def observation_layout(params: EnvParams) -> list[tuple[str, str, float, float]]:
    """``(name, unit, low, high)`` of every observation entry, in order."""
    rows: list[tuple[str, str, float, float]] = []
    days = params.days_cap
    cap = K.CLINICAL_LOG10_CAP
    if params.obs_mode == K.OBS_CLINICAL:
        rows.append(
            ("scan_log10_cells", "log10(1 + cells) of the lesions seen at the last scan", 0.0, cap)
        )
        rows.append(("weeks_since_scan", "weeks", 0.0, days / 7.0))
        rows.append(
            (
                "scan_sld_mm",
                "mm, sum of the target lesions' diameters at the last scan",
                0.0,
                K.CLINICAL_SLD_CAP_MM,
            )
        )
        rows.append(("lesions_seen", "lesions seen at the last scan", 0.0, float(params.n_lesions)))
        rows.append(("new_lesion", "1 if the last scan saw a lesion absent at baseline", 0.0, 1.0))
        rows.append(("recist", "RECIST 1.1 category of the last scan: 0 CR … 3 PD, 4 NE", 0.0, 4.0))
        rows += [
            (f"log10_{n}", f"log10(1 + {u})", 0.0, cap)
            for n, u in zip(params.lab_names, params.lab_units, strict=True)
        ]
        rows += [
            (f"grade_{c}", "CTCAE-like grade, worst in the last interval", 0.0, 5.0)
            for c in params.tox_categories
        ]
        if params.lab_flags:
            rows += [
                (f"observed_{n}", f"1 if {n} was measured at this visit (else held)", 0.0, 1.0)
                for n in params.lab_names
            ]
    else:
        rows += [
            (f"log10_{s.name}", f"log10(1 + {s.unit})", 0.0, FULL_OBS_CAP)
            for s in params.model.states
        ]
    rows += [
        (f"days_since_{t}", "days (capped; never given = cap)", 0.0, days) for t in params.therapies
    ]
    rows += [
        (f"cumulative_{t}", "maximum-dose equivalents", 0.0, float(c))
        for t, c in zip(params.therapies, params.cum_cap, strict=True)
    ]
    rows.append(("day", "days since start of treatment", 0.0, days))
    return rows


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
            raise ValueError(
                f"schedule: therapy {therapy!r} is not offered; allowed: "
                f"{', '.join(params.therapies)}"
            )
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
                raise ValueError(
                    f"schedule: {therapy} on day {day} does not follow the delivery "
                    f"pattern (expected day {step * dd + expected})"
                )
        frac = value / params.max_level[k]
        if frac > 1.0 + 1e-9:
            raise ValueError(
                f"schedule: {therapy} {value} exceeds the highest level {params.max_level[k]}"
            )
        out[step, k] = max(out[step, k], min(frac, 1.0))
    return out


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")
    return value


class OncologyFunctional:
    """The dynamics, observation, reward and info of one task (see the module docstring).

    Takes the arguments of :class:`oncogym.envs.OncologyEnv` (less ``render_mode``),
    validates them and holds the result; every adapter builds one.

    :param task: a task of :func:`oncogym.envs.task.make_params`
    :param action_mode: ``"discrete"`` (dose-level indices) or ``"continuous"`` (fractions
        of each therapy's highest level)
    :param reward: ``"qaly"``, ``"tumor_reduction"`` or a callable of the components
    :param min_dose_fraction: continuous actions below this are no dose
    :param params_kwargs: the other arguments of :func:`~oncogym.envs.task.make_params`
        (``observation``, ``decision_days``, ``horizon_days``, ``scan_noise_cv``,
        ``enforce_constraints``, ``reward_weights``, ``rtol``, ``method``, ``setting``,
        ``population``); ``None`` means the task's default
    """

    def __init__(
        self,
        task: str = "melanoma",
        *,
        action_mode: str = "discrete",
        reward: str | RewardFn = "qaly",
        min_dose_fraction: float = 0.05,
        **params_kwargs: Any,
    ) -> None:
        _check_choice("action_mode", action_mode, ACTION_MODES)
        if not callable(reward):
            _check_choice("reward", reward, REWARDS)
        if (
            isinstance(min_dose_fraction, bool)
            or not isinstance(min_dose_fraction, (int, float))
            or not 0 <= min_dose_fraction < 1
        ):
            raise ValueError(
                f"min_dose_fraction: expected a number in [0, 1), got {min_dose_fraction!r}"
            )
        kwargs = {k: v for k, v in params_kwargs.items() if v is not None}
        self._setup(make_params(task, **kwargs), action_mode, reward, float(min_dose_fraction))

    @classmethod
    def from_params(
        cls,
        params: EnvParams,
        *,
        action_mode: str = "discrete",
        reward: str | RewardFn = "qaly",
        min_dose_fraction: float = 0.05,
    ) -> OncologyFunctional:
        """The functional environment of already-built parameters."""
        fn = cls.__new__(cls)
        fn._setup(params, action_mode, reward, min_dose_fraction)
        return fn

    def _setup(self, params: EnvParams, action_mode: str, reward: Any, mdf: float) -> None:
        self.params = params
        self.action_mode = action_mode
        self.reward_kind = reward
        self.min_dose_fraction = mdf
        if action_mode == "discrete":
            self.action_space: spaces.Space = spaces.MultiDiscrete(params.n_levels.copy())
        else:
            self.action_space = spaces.Box(0.0, 1.0, shape=(params.n_therapies,), dtype=np.float32)
        layout = observation_layout(params)
        self.observation_space = spaces.Box(
            np.array([r[2] for r in layout], dtype=np.float32),
            np.array([r[3] for r in layout], dtype=np.float32),
            dtype=np.float32,
        )
        self.observation_names = tuple(r[0] for r in layout)
        self._blocked_names = [
            tuple(t for k, t in enumerate(params.therapies) if code >> k & 1)
            for code in range(2**params.n_therapies)
        ]

    def with_params(self, params: EnvParams) -> OncologyFunctional:
        """The same action mode, reward and dose threshold on other parameters."""
        return OncologyFunctional.from_params(
            params,
            action_mode=self.action_mode,
            reward=self.reward_kind,
            min_dose_fraction=self.min_dose_fraction,
        )

    # --- state ----------------------------------------------------------------------------
    def allocate(self, n: int) -> Patients:
        """:class:`Patients` for ``n`` patients (zeroed: call :meth:`initial`)."""
        p = self.params
        m = p.model
        ns, nt, ncat = m.n_states, p.n_therapies, len(p.tox_categories)
        mo, me = p.max_out, p.max_events

        def f(*shape: int) -> np.ndarray:
            return np.zeros((n, *shape))

        def i(*shape: int) -> np.ndarray:
            return np.zeros((n, *shape), dtype=np.int64)

        def flag(*shape: int) -> np.ndarray:
            return np.zeros((n, *shape), dtype=np.bool_)

        state = K.State(
            y=f(ns),
            params=np.tile(m.params_array(), (n, 1)),
            day=f(),
            alive=flag(),
            death_cause=i(),
            death_day=np.full(n, np.inf),
            status=i(),
            steps=i(),
            scan_noise=f(max(1, len(p.scan_days)) * p.n_lesions),
            next_scan=i(),
            scan_day=f(),
            scan_mm=f(),
            scan_log10_cells=f(),
            scan_seen=i(),
            scan_new=flag(),
            baseline_mm=f(),
            nadir_mm=f(),
            target=flag(p.n_lesions),
            seen0=flag(p.n_lesions),
            recist=i(),
            best_response=i(),
            progressed=flag(),
            last_dose_day=np.full((n, nt), -np.inf),
            cumulative_dose=f(nt),
            administrations=i(nt),
            interval_grade=i(ncat),
            worst_grade=i(ncat),
            anc_low_since=np.full(n, np.inf),
            obs=np.zeros((n, len(self.observation_names)), dtype=np.float32),
            **S.no_draws(p, n)._asdict(),
            lab_last=f(len(p.lab_names)),
            grade_last=i(ncat),
            drift_base=f(len(p.drift_index)),
        )
        interval = K.Interval(f(nt), flag(nt), *(f() for _ in COMPONENT_NAMES))
        scratch = integrate.allocate_scratch(ns, len(m.therapies), rows=n)
        work = K.Work(
            t_out=f(mo),
            out=f(mo, ns),
            offsets=f(mo),
            lesion_mm=f(p.n_lesions),
            grade=i(ncat),
            event_day=f(me),
            event_therapy=i(me),
            event_amount=f(me),
            infusion_start=f(max(1, nt)),
            infusion_end=f(max(1, nt)),
            infusion_therapy=i(max(1, nt)),
            infusion_rate=f(max(1, nt)),
            u=scratch.u,
            integrator=scratch.work,
            stats=scratch.stats,
        )
        return Patients(
            state,
            interval,
            work,
            f(nt),
            np.ones((n, int(p.n_levels.sum())), dtype=np.bool_),
            flag(ncat),
            i(ncat),
        )

    def draw(
        self,
        rngs: list[np.random.Generator],
        options: Mapping[str, Any] | None = None,
        env_indices: Any = None,
    ) -> Draws:
        """Patients for ``len(rngs)`` resets: drawn from each generator, or fixed by ``options``.

        Drawn patients come from the task's training distribution (moved by the setting's
        population shift, if any), then one standard normal per scheduled scan; a tier's own
        draws come from a child of each generator (:func:`oncogym.envs.settings.draw`).
        ``options["patient"]`` (``(params, y0)``, dicts by name or arrays in model order)
        fixes every patient; ``options["cohort"]`` with ``options["index"]`` (default 0)
        gives patient ``index + env_indices[j]`` to the ``j``-th reset (in a vector env,
        sub-env ``i`` gets patient ``index + i``); fixed patients are used as given (a
        setting's population shift is not applied to them: give a shifted cohort,
        ``Cohort.test(..., shift=...)``); the scan noise and the tier's draws still come
        from the generators.
        """
        p = self.params
        n = len(rngs)
        env_indices = np.arange(n) if env_indices is None else env_indices
        if options is not None and not isinstance(options, Mapping):
            raise ValueError(f"options: expected a dict, got {type(options).__name__}")
        opts = dict(options or {})
        opts.pop("reset_mask", None)
        unknown = set(opts) - {"patient", "cohort", "index"}
        if unknown:
            raise ValueError(
                f"options: unknown keys {sorted(unknown)}; allowed: patient, cohort, index"
            )
        if "patient" in opts and "cohort" in opts:
            raise ValueError("options: give either 'patient' or 'cohort', not both")
        m = p.model
        P = np.empty((n, len(m.param_names)))
        Y0 = np.empty((n, m.n_states))
        Z = np.empty((n, max(1, len(p.scan_days)) * p.n_lesions))
        for j, rng in enumerate(rngs):
            if "patient" in opts:
                P[j], Y0[j] = patient_rows(p, opts["patient"])
            elif "cohort" in opts:
                P[j], Y0[j] = self._cohort_patient(opts, int(env_indices[j]))
            else:
                P[j], Y0[j] = (row[0] for row in p.sampler.sample(rng, 1))
            Z[j] = rng.standard_normal(Z.shape[1])
        tier = S.draw(p, list(rngs)) if p.setting.draws else None
        return Draws(P, Y0, Z, tier)

    def _cohort_patient(self, opts: Mapping[str, Any], offset: int) -> tuple:
        cohort = opts["cohort"]
        m = self.params.model
        if not hasattr(cohort, "params") or not hasattr(cohort, "y0"):
            raise ValueError(f"options['cohort']: expected a Cohort, got {type(cohort).__name__}")
        if cohort.params.shape[1] != len(m.param_names):
            raise ValueError(f"options['cohort']: not a cohort of model {m.name!r}")
        index = opts.get("index", 0)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ValueError(f"options['index']: expected an integer, got {index!r}")
        i = int(index) + offset
        if not 0 <= i < cohort.params.shape[0]:
            size = cohort.params.shape[0]
            raise ValueError(f"options['index']: patient {i} is outside the cohort of {size}")
        return cohort.params[i], cohort.y0[i]

    def initial(self, patients: Patients, rows: Any, draws: Draws) -> None:
        """Start patients ``rows`` at day 0 with ``draws``: baseline scan, grades, first
        observation."""
        rows = np.asarray(rows, dtype=np.int64)
        s = patients.state
        s.params[rows] = draws.params
        s.y[rows] = draws.y0
        s.scan_noise[rows] = draws.scan_noise
        tier = draws.tier if draws.tier is not None else S.no_draws(self.params, len(rows))
        for name, value in tier._asdict().items():
            getattr(s, name)[rows] = value
        s.drift_base[rows] = s.params[rows][:, self.params.drift_index]
        K.start(self.params.kernel_task, s, patients.interval, patients.work, rows)
        patients.severe_onset[rows] = False

    # --- one interval ---------------------------------------------------------------------
    def requested_amounts(self, action: Any, out: np.ndarray) -> np.ndarray:
        """Validate ``action`` (``(n, n_therapies)``) and write the amounts it asks for.

        ``"discrete"``: integer dose-level indices, ``0 <= a < n_levels``;
        ``"continuous"``: fractions of the highest dose level in ``[0, 1]`` (below
        ``min_dose_fraction``: no dose).  Anything else — wrong shape, NaN, out of range,
        non-integer levels — raises :class:`ValueError`.
        """
        p = self.params
        a = np.asarray(action)
        if a.shape != out.shape:
            raise ValueError(f"action: expected shape {out.shape[1:]} per env, got {a.shape[1:]}")
        if a.dtype.kind not in "iufb":
            raise ValueError(f"action: expected numbers, got dtype {a.dtype}")
        if self.action_mode == "discrete":
            if a.dtype.kind == "f":
                if not np.all(np.isfinite(a)):
                    raise ValueError("action: NaN or infinite dose level")
                if not np.all(a == np.round(a)):
                    raise ValueError(f"action: dose levels must be integers, got {a.tolist()}")
            idx = a.astype(np.int64)
            if np.any(idx < 0) or np.any(idx >= p.n_levels):
                raise ValueError(
                    f"action: dose levels must lie in [0, n_levels) with n_levels = "
                    f"{p.n_levels.tolist()}, got {a.tolist()}"
                )
            out[:] = p.level_table[np.arange(p.n_therapies), idx]
        else:
            x = a.astype(np.float64)
            if not np.all(np.isfinite(x)):
                raise ValueError("action: NaN or infinite dose fraction")
            if np.any(x < 0.0) or np.any(x > 1.0):
                raise ValueError(f"action: dose fractions must lie in [0, 1], got {x.tolist()}")
            np.multiply(x, p.max_level, out=out)
            out[x < self.min_dose_fraction] = 0.0
        return out

    def transition(self, patients: Patients, action: Any, *, parallel: bool = False) -> K.Interval:
        """Advance every patient by one decision interval under ``action``.

        One compiled call: schedules, constraints, integration, toxicity, death, scans,
        reward components and the next observation.  ``parallel`` runs patients on all
        cores (identical results).  Returns what the interval did (:attr:`Patients.last`).
        """
        requested = self.requested_amounts(action, patients.requested)
        p = self.params
        m = p.model
        kernel = K.step_parallel if parallel else K.step_serial
        worst = patients.state.worst_grade
        np.copyto(patients.worst_before, worst)
        patients.call(
            kernel,
            m.rhs_pointer,
            m.dose_pointer,
            p.solver,
            p.kernel_task,
            patients.state,
            patients.interval,
            patients.work,
            requested,
        )
        onset = patients.severe_onset
        np.greater_equal(worst, SEVERE_GRADE, out=onset)
        onset &= patients.worst_before < SEVERE_GRADE
        return patients.last

    def observation(self, patients: Patients) -> np.ndarray:
        """The current observations, ``(n, obs_size)`` float32 (read-only; written by the
        compiled step, see the observation table of :class:`~oncogym.envs.OncologyEnv`)."""
        return patients.view.obs

    def reward(self, interval: K.Interval) -> np.ndarray:
        """Rewards of an interval (float64, one per patient).

        * ``"qaly"`` — quality-adjusted life years lived in the interval, minus the treatment
          burden, minus (once, at death) the years of life lost before the horizon;
        * ``"tumor_reduction"`` — the fall of log10 tumour cells over the interval minus
          :data:`TUMOR_REDUCTION_DOSE_WEIGHT` per maximum-dose equivalent (peer style; it
          does not price death and can be gamed — provided for comparison);
        * a callable receiving :func:`components` (arrays) and returning the rewards.
        """
        kind = self.reward_kind
        if kind == "qaly":
            return interval.qaly - interval.treatment_loss - interval.death_penalty
        if kind == "tumor_reduction":
            return (
                interval.log10_burden_start
                - interval.log10_burden_end
                - TUMOR_REDUCTION_DOSE_WEIGHT * interval.dose_fraction
            )
        n = interval.qaly.shape[0]
        r = np.asarray(kind(components(interval)), dtype=np.float64)
        r = np.broadcast_to(r, (n,)).copy()
        if not np.all(np.isfinite(r)):
            raise ValueError("reward: the reward callable returned a non-finite value")
        return r

    def cost(self, patients: Patients) -> np.ndarray:
        """Costs of the last interval (float64, one per patient): the number of new grade
        >= 3 toxicities.

        A toxicity category counts 1 in the interval in which the patient's worst grade in
        it first reaches 3, 4 or 5 (:data:`oncogym.clinical.SEVERE_GRADE`): its grade on
        some day of the interval is >= 3 and every earlier grade of the episode was < 3.
        So each category costs at most once per patient-episode, and the costs of an
        episode add up to the number of categories whose worst grade is >= 3 at its end —
        the per-category count of :func:`oncogym.clinical.grade3plus` — less any category
        already at grade >= 3 on day 0, before the first dose (which the policy did not
        cause; no scenario's patients have one).  A toxic death (grade 5) in a category
        not yet at grade 3 counts 1; grades after death are not graded.  Per category:
        :attr:`Patients.severe_onset`.
        """
        return patients.severe_onset.sum(axis=1, dtype=np.float64)

    def terminal(self, patients: Patients) -> tuple[np.ndarray, np.ndarray]:
        """``(terminated, truncated)``: death (or integrator failure); the horizon reached
        alive."""
        s = patients.view
        truncated = s.alive & (s.day >= self.params.horizon_days - 1e-9)
        return ~s.alive, truncated

    def step(self, patients: Patients, action: Any, *, parallel: bool = False) -> Step:
        """:meth:`transition`, then :meth:`reward`, :meth:`terminal`, :meth:`observation`
        and :meth:`cost`."""
        interval = self.transition(patients, action, parallel=parallel)
        terminated, truncated = self.terminal(patients)
        return Step(
            self.observation(patients),
            self.reward(interval),
            terminated,
            truncated,
            interval,
            self.cost(patients),
        )

    def action_masks(self, patients: Patients) -> np.ndarray:
        """Allowed dose levels of the next interval, ``(n, sum(n_levels))`` bool (a view)."""
        patients.call(
            K.masks, self.params.kernel_task, patients.state, patients.work, patients.mask
        )
        return patients.mask

    # --- info -----------------------------------------------------------------------------
    def info(
        self, patients: Patients, b: int, *, reset: bool, reward: float = 0.0
    ) -> dict[str, Any]:
        """The info dict of patient ``b`` (true state, toxicity, RECIST, doses, components).

        Keys: ``day``, ``state`` (model state), ``tumour_cells``, ``toxicity`` (worst grade
        in the last interval per category), ``worst_toxicity`` (worst so far), ``recist``
        and ``best_response`` (names), ``doses`` and ``cumulative_doses`` (per therapy),
        ``blocked`` (therapies refused); in a setting with irregular visits
        ``missed_visit`` (the visit of the last step was missed: nothing given; False at
        reset); after a step ``reward_components`` (with the ``reward``), ``cost`` (float:
        new grade >= 3 toxicities in the interval, :meth:`cost`) and ``cost_by_category``
        (category → 0 or 1); after death
        ``death_cause`` and ``death_day``; after an integrator failure ``error``.
        """
        p = self.params
        s, last = patients.view, patients.last
        th, cats = p.therapies, p.tox_categories
        info: dict[str, Any] = {
            "day": float(s.day[b]),
            "state": s.y[b].copy(),
            "tumour_cells": float(tumour_cells(s.y[b : b + 1], p.tumour_index)[0]),
            "toxicity": dict(zip(cats, s.interval_grade[b].tolist(), strict=True)),
            "worst_toxicity": dict(zip(cats, s.worst_grade[b].tolist(), strict=True)),
            "recist": RESPONSE_NAMES[int(s.recist[b])],
            "best_response": RESPONSE_NAMES[int(s.best_response[b])],
            "doses": dict(zip(th, last.delivered[b].tolist(), strict=True)),
            "cumulative_doses": dict(zip(th, s.cumulative_dose[b].tolist(), strict=True)),
            "blocked": tuple(t for t, x in zip(th, last.blocked[b], strict=True) if x),
        }
        if p.setting.irregular:
            info["missed_visit"] = bool(not reset and self._missed(s)[b])
        if not reset:
            comps = {n: float(getattr(last, n)[b]) for n in COMPONENT_NAMES}
            comps["reward"] = reward
            info["reward_components"] = comps
            onset = patients.severe_onset[b]
            info["cost"] = float(onset.sum())
            info["cost_by_category"] = dict(zip(cats, onset.astype(np.int64).tolist(), strict=True))
        cause = int(s.death_cause[b])
        if cause != K.DEATH_NONE:
            info["death_cause"] = DEATH_CAUSES[cause]
            info["death_day"] = float(s.death_day[b])
        if cause == K.DEATH_ERROR:
            info["error"] = f"integrator failed: {integrate.STATUS_NAMES[int(s.status[b])]}"
        return info

    @staticmethod
    def _missed(s: K.State) -> np.ndarray:
        """Whether each patient's last visit (step ``steps - 1``) was missed."""
        k = s.steps - 1
        ok = (k >= 0) & (k < s.visit_missed.shape[1])
        out = np.zeros(s.steps.shape[0], dtype=np.bool_)
        rows = np.flatnonzero(ok)
        out[rows] = s.visit_missed[rows, k[rows]]
        return out

    def infos(
        self, patients: Patients, *, reset: bool, rewards: np.ndarray | None = None
    ) -> _Stacked:
        """The info of every patient, stacked as a Gymnasium vector env stacks
        :meth:`info` dicts (arrays over patients, with their ``_key`` masks): see
        :class:`_Stacked`."""
        p = self.params
        s, last = patients.view, patients.last
        n = patients.n
        every = np.ones(n, dtype=np.bool_)
        every.flags.writeable = False  # shared by the keys every patient has
        cause = s.death_cause
        dead = cause != K.DEATH_NONE
        error = cause == K.DEATH_ERROR
        names = np.asarray(RESPONSE_NAMES, dtype=object)
        codes = (last.blocked * (1 << np.arange(p.n_therapies))).sum(axis=1)
        blocked = np.empty(n, dtype=object)
        blocked[:] = [self._blocked_names[c] for c in codes]

        cats, th = p.tox_categories, p.therapies
        leaves: dict[str, tuple] = {
            "day": (s.day.copy(), every, None),
            "state": (s.y.copy(), every, None),
            "tumour_cells": (tumour_cells(s.y, p.tumour_index), every, None),
            "toxicity": (s.interval_grade.copy(), every, cats),
            "worst_toxicity": (s.worst_grade.copy(), every, cats),
            "recist": (names[s.recist], every, None),
            "best_response": (names[s.best_response], every, None),
            "doses": (last.delivered.copy(), every, th),
            "cumulative_doses": (s.cumulative_dose.copy(), every, th),
            "blocked": (blocked, every, None),
        }
        if p.setting.irregular:
            missed = np.zeros(n, dtype=np.bool_) if reset else self._missed(s)
            leaves["missed_visit"] = (missed, every, None)
        comps = np.empty((n, len(COMPONENT_NAMES) + 1))
        for i, c in enumerate(COMPONENT_NAMES):
            comps[:, i] = getattr(last, c)
        comps[:, -1] = 0.0 if rewards is None else rewards
        on = np.zeros(n, dtype=np.bool_) if reset else every
        leaves["reward_components"] = (comps, on, (*COMPONENT_NAMES, "reward"))
        onset = patients.severe_onset
        leaves["cost"] = (onset.sum(axis=1, dtype=np.float64), on, None)
        leaves["cost_by_category"] = (onset.astype(np.int64), on, cats)
        causes = np.full(n, None, dtype=object)
        causes[dead] = np.asarray(DEATH_CAUSES, dtype=object)[cause[dead]]
        leaves["death_cause"] = (causes, dead, None)
        leaves["death_day"] = (np.where(dead, s.death_day, 0.0), dead, None)
        errors = np.full(n, None, dtype=object)
        for b in np.flatnonzero(error):
            errors[b] = f"integrator failed: {integrate.STATUS_NAMES[int(s.status[b])]}"
        leaves["error"] = (errors, error, None)
        return _Stacked(leaves, every)


def components(interval: K.Interval) -> dict[str, np.ndarray]:
    """An interval's reward components by name (arrays, one value per patient)."""
    return {name: getattr(interval, name) for name in COMPONENT_NAMES}


class _Stacked:
    """Per-patient infos, merged and laid out as Gymnasium vector infos.

    Leaves are ``(values, present, names)``: ``values`` an array over patients and
    ``present`` the mask of the patients that have the key; a leaf with ``names`` is a
    dict of per-patient values (``values[:, i]`` is key ``names[i]``).  The layout is
    Gymnasium's: every key an array over patients and a ``_key`` mask, dicts recursively,
    keys no patient has left out, 0 (``None`` in object arrays) for the patients without
    the key.  Masks are read-only; identical masks are one array.
    """

    def __init__(self, leaves: dict[str, tuple], every: np.ndarray) -> None:
        self.leaves = leaves
        self.every = every
        """the (read-only) mask of keys every patient has"""

    def where(self, rows: np.ndarray, other: _Stacked) -> _Stacked:
        """These infos, with ``other``'s for the patients ``rows`` (a bool mask)."""
        out = {}
        for key, (va, ma, names) in self.leaves.items():
            vb, mb, _ = other.leaves[key]
            if ma is self.every and mb is other.every:
                mask = self.every
            else:
                mask = ma.copy()
                mask[rows] = mb[rows]
            value = va.copy()
            value[rows] = vb[rows]
            out[key] = (value, mask, names)
        return _Stacked(out, self.every)

    def only(self, rows: np.ndarray) -> _Stacked:
        """These infos for the patients ``rows`` only (the others lack every key)."""
        out = {k: (v, m & rows, names) for k, (v, m, names) in self.leaves.items()}
        return _Stacked(out, self.every)

    def gymnasium(self) -> dict[str, Any]:
        """The Gymnasium vector layout (see the class docstring)."""
        out: dict[str, Any] = {}
        for key, (value, mask, names) in self.leaves.items():
            if mask is not self.every:
                if not mask.any():
                    continue
                if not mask.all():
                    value = value.copy()
                    value[~mask] = None if value.dtype == object else 0
                mask = mask.copy()
                mask.flags.writeable = False
            if names is None:
                out[key] = value
            else:
                group: dict[str, Any] = {}
                for i, name in enumerate(names):
                    group[name] = value[:, i]
                    group[f"_{name}"] = mask
                out[key] = group
            out[f"_{key}"] = mask
        return out
