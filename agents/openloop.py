"""The best open-loop schedule: a fixed dosing calendar found by search on training patients.

A closed-loop policy (an RL agent, the planner, the adaptive rules) sees each patient's
scans and labs and may change course; an **open-loop** schedule gives every patient the
same calendar from day 0, whatever happens — what a protocol is.  The strongest simple
baseline for a learned policy is therefore not the labelled protocols but the best fixed
schedule on the environment's own dose grid, and the benchmark's question becomes how
much a closed-loop policy adds over it.

Search space (per therapy, as a clinician writes a regimen): a dose level of the
environment's grid (the lowest, 0, leaves the therapy out), the first decision step, the
interval between doses in decision steps (1, 2, 3, 4, 6, 8 or 12) and the number of doses.
Doses the environment's constraints forbid (minimum intervals, lifetime caps, CAR-T
sequencing) are withheld by the environment, exactly as for any other policy.

Search: Optuna's TPE sampler (seeded, one process: the same settings give the same
schedule) maximising the mean return of the default ``"qaly"`` reward — the quantity the
RL agents are trained on — on a training cohort (:meth:`oncogym.scenarios.Cohort.train`,
never the test cohort), every candidate evaluated on the same patients with the
evaluator's own rollout (:func:`oncogym.agents.evaluate.rollout`).  Every labelled
protocol expressible on the grid starts the search (enqueued first), so the result is at
least as good on the training patients as the best such protocol.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oncogym.envs.task import TASKS, EnvParams

from ._policy import Policy, _day_index, protocol_names

EVERY_STEPS = (1, 2, 3, 4, 6, 8, 12)
"""Allowed intervals between doses, in decision steps (weeks in every scenario)."""
DEFAULT_TRIALS = 300
"""Default number of schedules the search evaluates."""
DEFAULT_SEARCH_PATIENTS = 200
"""Default size of the training cohort each schedule is scored on."""
SEARCH_DRAW = 7_777
"""Training-cohort draw (:meth:`Cohort.train` ``k``) the search scores schedules on."""


@dataclass(frozen=True)
class Regimen:
    """One therapy's part of a schedule: ``count`` doses of level ``level`` every
    ``every`` decision steps from step ``start``."""

    therapy: str
    level: int
    start: int
    every: int
    count: int

    def steps(self, n_steps: int) -> range:
        stop = min(n_steps, self.start + self.every * self.count)
        return range(self.start, stop, self.every)


@dataclass(frozen=True)
class OpenLoopSchedule:
    """A fixed schedule of dose-level indices for a task (one regimen per therapy given)."""

    task: str
    regimens: tuple[Regimen, ...]

    def table(self, params: EnvParams) -> np.ndarray:
        """Dose-level index per decision step and therapy, ``(n_steps, n_therapies)``."""
        out = np.zeros((params.n_steps, params.n_therapies), dtype=np.int64)
        for r in self.regimens:
            if r.therapy not in params.therapies:
                raise ValueError(
                    f"schedule: therapy {r.therapy!r} is not offered by {params.name}; "
                    f"allowed: {', '.join(params.therapies)}"
                )
            k = params.therapies.index(r.therapy)
            if not 0 <= r.level < int(params.n_levels[k]):
                raise ValueError(
                    f"schedule: level of {r.therapy} must be in 0..{int(params.n_levels[k]) - 1}, "
                    f"got {r.level}"
                )
            for s in r.steps(params.n_steps):
                out[s, k] = r.level
        return out

    def describe(self, params: EnvParams) -> str:
        """The schedule in words, e.g. ``anti_pd1 480 every 4 weeks from week 0 (27 doses)``."""
        parts = []
        unit = "weeks" if params.decision_days == 7 else f"x {params.decision_days} days"
        for r in self.regimens:
            if r.level == 0:
                continue
            k = params.therapies.index(r.therapy)
            amount = params.dose_levels[k][r.level]
            n = len(r.steps(params.n_steps))
            every = "once" if n == 1 else f"every {r.every} {unit}"
            parts.append(f"{r.therapy} {amount:g} {every} from step {r.start} ({n} doses)")
        return "; ".join(parts) if parts else "no treatment"

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "regimens": [asdict(r) for r in self.regimens]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OpenLoopSchedule:
        try:
            regimens = tuple(Regimen(**r) for r in data["regimens"])
            return cls(str(data["task"]), regimens)
        except (KeyError, TypeError) as exc:
            raise ValueError(
                "schedule: expected {'task': ..., 'regimens': [{'therapy', 'level', 'start', "
                f"'every', 'count'}}, ...]}}: {exc}"
            ) from None


class OpenLoopPolicy(Policy):
    """A fixed schedule of dose levels (:class:`OpenLoopSchedule`), the same for every
    patient: step ``k`` of an episode (the observation's ``day`` entry) gives row ``k``."""

    action_mode = "discrete"

    def __init__(self, schedule: OpenLoopSchedule, name: str = "open_loop") -> None:
        super().__init__()
        self.schedule = schedule
        self.name = name
        self._table: np.ndarray | None = None

    def attach(self, env: Any) -> None:
        super().attach(env)
        if self.params.name != self.schedule.task:
            raise ValueError(f"schedule: made for {self.schedule.task}, not {self.params.name}")
        self._table = self.schedule.table(self.params)

    def _actions(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        if self._table is None:
            raise ValueError("attach(env) first: the policy needs the environment's task")
        k = np.clip(_day_index(obs, self.params), 0, self._table.shape[0] - 1)
        return self._table[k]


@dataclass
class SearchResult:
    """What :func:`search_open_loop` found, with the settings that reproduce it."""

    schedule: OpenLoopSchedule
    value: float
    settings: dict[str, Any]
    best_protocol: str | None
    best_protocol_value: float
    n_evaluated: int
    wall_s: float
    history: list[float] = field(default_factory=list)

    def to_dict(self, params: EnvParams | None = None) -> dict[str, Any]:
        out = {
            "schedule": self.schedule.to_dict(),
            "mean_return_train": self.value,
            "settings": self.settings,
            "best_protocol": self.best_protocol,
            "best_protocol_return_train": self.best_protocol_value,
            "n_evaluated": self.n_evaluated,
            "wall_s": self.wall_s,
        }
        if params is not None:
            out["description"] = self.schedule.describe(params)
        return out


def _params(task: str) -> EnvParams:
    from oncogym.envs.task import make_params

    return make_params(task)


def protocol_regimens(task: str, params: EnvParams) -> dict[str, OpenLoopSchedule]:
    """The labelled protocols that are one periodic regimen per therapy on the dose grid
    (flat doses at a grid level, from day 0 or a later week), as schedules."""
    from oncogym.scenarios import load_scenario

    scenario = load_scenario(task)
    out = {}
    for name in protocol_names(task):
        proto = scenario.protocols[name]
        regimens = []
        ok = not (proto.until_progression or proto.next_line)
        seen = set()
        for d in proto.doses:
            k = params.therapies.index(d.therapy) if d.therapy in params.therapies else -1
            levels = params.dose_levels[k] if k >= 0 else ()
            dd = params.decision_days
            every = (d.every_days or 0) / dd
            if (
                not ok
                or k < 0
                or d.therapy in seen
                or d.until_day is not None
                or d.duration_days > 0
                or getattr(d, "per_kg", False)
                or float(d.amount) not in levels
                or d.day % dd
                or (d.every_days and (every != int(every) or int(every) not in EVERY_STEPS))
            ):
                ok = False
                break
            seen.add(d.therapy)
            count = d.count if d.count is not None else (params.n_steps if d.every_days else 1)
            regimens.append(
                Regimen(
                    d.therapy,
                    levels.index(float(d.amount)),
                    int(d.day // dd),
                    int(every) if d.every_days else 1,
                    int(count),
                )
            )
        if ok and regimens:
            out[name] = OpenLoopSchedule(task, tuple(regimens))
    return out


def search_open_loop(
    task: str,
    *,
    n_trials: int = DEFAULT_TRIALS,
    n_patients: int = DEFAULT_SEARCH_PATIENTS,
    draw: int = SEARCH_DRAW,
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
    setting: str = "default",
) -> SearchResult:
    """The best fixed schedule of ``task`` on a training cohort (see the module docstring).

    :param task: a scenario (:data:`oncogym.envs.task.TASKS`)
    :param n_trials: schedules to evaluate (the enqueued protocols count)
    :param n_patients: training patients each schedule is scored on
    :param draw: training-cohort index (:meth:`Cohort.train`)
    :param seed: seed of the sampler and of the scan noise
    :param progress: called as ``progress(trial, n_trials, best_so_far)``
    :param setting: a difficulty tier (:mod:`oncogym.envs.settings`): the schedules are
        scored in it, on the training patients (never shifted)
    """
    import optuna

    from oncogym.scenarios import Cohort

    from .evaluate import rollout

    if task not in TASKS:
        raise ValueError(
            f"task: the open-loop search needs a scenario; allowed: {', '.join(TASKS)}"
        )
    for name, v in (("n_trials", n_trials), ("n_patients", n_patients)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    from oncogym.envs.settings import training_env_kwargs

    env_kwargs = training_env_kwargs(setting)
    params = _params(task)
    cohort = Cohort.train(task, n_patients, draw)
    n_steps = params.n_steps

    def score(schedule: OpenLoopSchedule) -> float:
        res = rollout(
            OpenLoopPolicy(schedule), task, cohort=cohort, seed=seed, env_kwargs=env_kwargs
        )
        return float(np.mean(res.returns))

    def build(trial: Any) -> OpenLoopSchedule:
        regimens = []
        for k, th in enumerate(params.therapies):
            level = trial.suggest_int(f"{th}.level", 0, int(params.n_levels[k]) - 1)
            start = trial.suggest_int(f"{th}.start", 0, n_steps - 1)
            every = trial.suggest_categorical(f"{th}.every", EVERY_STEPS)
            count = trial.suggest_int(f"{th}.count", 1, n_steps, log=True)
            if level > 0:
                regimens.append(Regimen(th, level, start, int(every), count))
        return OpenLoopSchedule(task, tuple(regimens))

    t0 = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(40, n_trials))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    known = protocol_regimens(task, params)
    for sched in known.values():
        fixed: dict[str, Any] = {}
        given = {r.therapy: r for r in sched.regimens}
        for th in params.therapies:
            r = given.get(th)
            fixed[f"{th}.level"] = r.level if r else 0
            fixed[f"{th}.start"] = r.start if r else 0
            fixed[f"{th}.every"] = r.every if r else EVERY_STEPS[0]
            fixed[f"{th}.count"] = min(n_steps, r.count) if r else 1
        study.enqueue_trial(fixed)
    best_proto, best_proto_value = None, -math.inf
    history: list[float] = []
    best = -math.inf
    for i in range(n_trials):
        trial = study.ask()
        value = score(build(trial))
        study.tell(trial, value)
        if i < len(known):
            name = list(known)[i]
            if value > best_proto_value:
                best_proto, best_proto_value = name, value
        best = max(best, value)
        history.append(best)
        if progress is not None:
            progress(i + 1, n_trials, best)
    schedule = build(optuna.trial.FixedTrial(study.best_params))
    settings = {"n_trials": n_trials, "n_patients": n_patients, "draw": draw, "seed": seed}
    if env_kwargs:
        settings["setting"] = setting
    return SearchResult(
        schedule,
        float(study.best_value),
        settings,
        best_proto,
        float(best_proto_value) if best_proto is not None else float("nan"),
        len(study.trials),
        time.perf_counter() - t0,
        history,
    )


def save_search(result: SearchResult, path: str | Path) -> None:
    """Write a search result as JSON (the schedule, its training score, the settings)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = result.to_dict(_params(result.schedule.task))
    path.write_text(json.dumps(data, indent=2) + "\n")


def load_schedule(path: str | Path) -> OpenLoopSchedule:
    """The schedule of a file written by :func:`save_search` (or a bare schedule dict)."""
    data = json.loads(Path(path).read_text())
    return OpenLoopSchedule.from_dict(data.get("schedule", data))


def open_loop_baseline(task: str, *, seed: int = 0, **settings: Any) -> OpenLoopPolicy:
    """The open-loop baseline of the benchmark: search, then a policy giving the schedule."""
    res = search_open_loop(task, seed=seed, **settings)
    pol = OpenLoopPolicy(res.schedule)
    pol.search = res  # type: ignore[attr-defined]
    return pol


__all__: Sequence[str] = (
    "EVERY_STEPS",
    "OpenLoopPolicy",
    "OpenLoopSchedule",
    "Regimen",
    "SearchResult",
    "load_schedule",
    "open_loop_baseline",
    "protocol_regimens",
    "save_search",
    "search_open_loop",
)
