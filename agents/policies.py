"""Baseline policies with Stable-Baselines3's ``predict`` signature.

Every policy here answers ``predict(observation, state=None, episode_start=None,
deterministic=False) -> (action, state)`` like an SB3 model, so one evaluator
(:mod:`oncogym.agents.evaluate`) scores baselines and trained agents alike.  Observations
may be one patient's ``(obs_dim,)`` or a batch ``(n_envs, obs_dim)``; the action has the
same leading shape.  A policy declares the ``action_mode`` of the environment it drives
(``"continuous"``: fractions of each therapy's highest dose level; ``"discrete"``: dose
level indices).  Policies that need to know the patient rows' task (the protocol and
adaptive baselines: per-kg doses need the body weight) implement ``attach(env)``; the
evaluator calls it after ``reset`` with the environment (an :class:`OncologyEnv`, an
:class:`OncologyVectorEnv` or the evaluator's cohort runner — anything with ``params`` and
``state``).  They read only what a clinic knows: the observation, the task and the body
weight.

* :class:`NoTreatment` — never doses;
* :class:`RandomPolicy` — a uniformly random dose level of every therapy each step;
* :class:`ProtocolPolicy` — a scenario protocol (``Scenario.protocols``) exactly as its
  data says, as a fixed schedule from day 0 (no stopping rule: the protocols are those the
  scenarios are calibrated with);
* :class:`AdaptivePolicy` — rule-based adaptive therapy over lines of protocols (rules in
  its docstring);
* ``"open_loop"`` — the best fixed schedule on the dose grid, found by search on training
  patients (:mod:`oncogym.agents.openloop`);
* :func:`make_baseline` — a baseline by name (:func:`baseline_names`).

The model-predictive planner is in :mod:`oncogym.agents.planner`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from oncogym import rules
from oncogym.envs import STANDARD_OF_CARE
from oncogym.envs import functional as Fn
from oncogym.envs.task import EnvParams

from ._policy import (
    _NO_TASK,
    Policy,
    _day_index,
    _state_of,
    protocol_names,
)

ADAPTIVE_LINES: dict[str, tuple[str, ...]] = {
    "melanoma": ("nivolumab", "nivolumab_ipilimumab"),
    "rcc": ("nivolumab", "nivolumab_ipilimumab"),
    "nsclc": ("pembrolizumab", "platinum_doublet"),
    "prostate": ("sipuleucel_t", "docetaxel"),
}
"""Lines of therapy of the adaptive baseline, in order (first line, then each escalation).
Scenarios not listed use their standard of care first, then their other protocols in file
order.  Checkpoint monotherapy escalates to the combination (melanoma, RCC); chemotherapy
follows immunotherapy (NSCLC) and docetaxel sipuleucel-T (prostate), as in the clinic."""

HOLD_GRADE = 3
"""Treatment is held while some toxicity grade is at least this ..."""
RESUME_GRADE = 1
"""... and resumed once every grade is at most this."""


class NoTreatment(Policy):
    """Never doses (natural history)."""

    name = "no_treatment"

    def __init__(self, n_therapies: int | None = None) -> None:
        super().__init__()
        self._n = n_therapies

    def _actions(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        n = self.params.n_therapies if self.params is not None else self._n
        if n is None:
            raise ValueError(_NO_TASK)
        return np.zeros((obs.shape[0], n))


class RandomPolicy(Policy):
    """A uniformly random dose level of every therapy at every step (discrete actions).

    :param seed: seed of its own generator (reproducible evaluations)
    """

    name = "random"
    action_mode = "discrete"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.rng = np.random.default_rng(seed)

    def _actions(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        if self.params is None:
            raise ValueError(_NO_TASK)
        return self.rng.integers(
            0, self.params.n_levels, size=(obs.shape[0], len(self.params.n_levels))
        )


class _ScheduleTables:
    """Per-step continuous actions of protocols, per body weight (per-kg doses)."""

    def __init__(self, params: EnvParams) -> None:
        if params.scenario is None:
            raise ValueError(f"task: {params.name!r} has no protocols (only scenario tasks do)")
        self.params = params
        self._cache: dict[tuple[str, float], np.ndarray] = {}
        names = params.model.param_names
        self._weight_col = names.index("body_weight_kg") if "body_weight_kg" in names else -1

    def protocol(self, name: str) -> Any:
        protocols = self.params.scenario.protocols
        if name not in protocols:
            allowed = ", ".join(protocols)
            raise ValueError(
                f"protocol: {name!r} is not a protocol of {self.params.name}; allowed: {allowed}"
            )
        return protocols[name]

    def weights(self, env: Any, n: int) -> np.ndarray:
        state = _state_of(env)
        if self._weight_col < 0 or state is None:
            return np.zeros(n)
        w = state.params[:, self._weight_col]
        if w.shape[0] != n:
            raise ValueError(f"observation: {n} rows but the environment has {w.shape[0]} patients")
        return w

    def table(self, name: str, weight_kg: float) -> np.ndarray:
        proto = self.protocol(name)
        key = (name, float(weight_kg) if proto.has_per_kg else 0.0)
        if key not in self._cache:
            sched = proto.schedule(
                self.params.horizon_days, weight_kg=key[1] if proto.has_per_kg else None
            )
            self._cache[key] = Fn.schedule_to_actions(self.params, sched)
        return self._cache[key]


class ProtocolPolicy(Policy):
    """A scenario protocol, dose for dose, from the scenario data.

    The protocol's schedule (:meth:`oncogym.scenarios.Protocol.schedule`; per-kg doses at
    the patient's body weight) is turned into one action per decision interval with
    :func:`oncogym.envs.functional.schedule_to_actions`; step ``k`` of an episode (read
    from the observation's ``day`` entry) gives row ``k``.  A protocol that changes at
    progression (``until_progression``, ``next_line``) reads progression from the
    observation's RECIST category (the first scan reading PD, as
    :meth:`oncogym.scenarios.Cohort.run` does on the true lesions): its doses stop there
    and the next line starts ``next_line_delay_days`` later (rounded up to a visit).  The
    environment's constraints still apply (they never block a labelled protocol).

    :param protocol: a key of the scenario's ``protocols`` (checked at :meth:`attach`)
    """

    def __init__(self, protocol: str) -> None:
        super().__init__()
        self.protocol = protocol
        self.name = protocol
        self._tables: _ScheduleTables | None = None
        self._switch = np.zeros(0, dtype=np.int64)

    def attach(self, env: Any) -> None:
        super().attach(env)
        self._tables = _ScheduleTables(self.params)
        proto = self._tables.protocol(self.protocol)  # fail early on a wrong name
        if proto.calibration_only:
            raise ValueError(
                f"protocol: {self.protocol!r} is a calibration arm outside the environment's "
                "dose levels; it is not a baseline policy"
            )
        self._proto = proto
        names = [r[0] for r in Fn.observation_layout(self.params)]
        self._i_recist = names.index("recist") if "recist" in names else -1
        if proto.switches and self._i_recist < 0:
            raise ValueError(
                f"protocol: {self.protocol!r} changes at progression; it needs "
                'observation="clinical"'
            )

    def _actions(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        if self._tables is None:
            raise ValueError(_NO_TASK)
        p = self.params
        steps = _day_index(obs, p)
        n = obs.shape[0]
        if self._switch.shape[0] != n:
            self._switch = np.full(n, -1, dtype=np.int64)
        self._switch[steps <= 0] = -1
        weights = self._tables.weights(self.env, n)
        out = np.zeros((n, p.n_therapies))
        proto = self._proto
        for i, (k, w) in enumerate(zip(steps, weights, strict=True)):
            if proto.switches and self._switch[i] < 0 and obs[i, self._i_recist] == rules.PD:
                self._switch[i] = k
            switched = self._switch[i] >= 0
            if not (switched and proto.until_progression):
                table = self._tables.table(self.protocol, w)
                if 0 <= k < table.shape[0]:
                    out[i] = table[k]
            if switched and proto.next_line is not None:
                delay = int(np.ceil(proto.next_line_delay_days / p.decision_days - 1e-9))
                j = k - self._switch[i] - delay
                table = self._tables.table(proto.next_line, w)
                if 0 <= j < table.shape[0]:
                    out[i] = np.maximum(out[i], table[j])
        return out


class AdaptivePolicy(Policy):
    """Rule-based adaptive therapy over lines of protocols, from what a clinic observes.

    Rules (per patient, applied at every visit):

    1. **Start**: the first line (:data:`ADAPTIVE_LINES`, else the standard of care) starts
       on day 0.
    2. **Escalate on progression**: at each new scan (the observation's weeks since scan
       fall inside the last interval) the measured sum of target diameters is compared with
       its nadir (baseline included) by the rulebook's RECIST 1.1 progression rule
       (:func:`oncogym.rules.is_progression`: >= 20 % and >= 5 mm above the nadir, so a
       lesion reappearing after reading 0 is progression), and a new lesion is progression
       too; the patient then starts the next line from its first dose (after the last line:
       the last line continues) and the nadir restarts at that scan.
    3. **Hold on toxicity**: while any toxicity grade of the last interval is >= 3 nothing
       is given and the line's clock stops (doses are delayed, not skipped); treatment
       resumes once every grade is <= 1.

    :param lines: protocol names in order (default :data:`ADAPTIVE_LINES` / standard of care
        then the scenario's other protocols)
    """

    name = "adaptive"

    def __init__(self, lines: Sequence[str] | None = None) -> None:
        super().__init__()
        self._lines_arg = tuple(lines) if lines is not None else None
        self.lines: tuple[str, ...] = ()
        self._tables: _ScheduleTables | None = None
        self._n = 0

    def attach(self, env: Any) -> None:
        super().attach(env)
        params = self.params
        self._tables = _ScheduleTables(params)
        self.lines = self._lines_arg or default_lines(params)
        for line in self.lines:
            self._tables.protocol(line)
        names = [r[0] for r in Fn.observation_layout(params)]
        if "scan_sld_mm" not in names:
            raise ValueError('observation: the adaptive policy needs observation="clinical"')
        self._i_sld = names.index("scan_sld_mm")
        self._i_new = names.index("new_lesion")
        self._i_since = names.index("weeks_since_scan")
        self._i_grades = [i for i, nm in enumerate(names) if nm.startswith("grade_")]
        self._n = 0

    def _ensure(self, n: int) -> None:
        if self._n != n:
            self._n = n
            self.line = np.zeros(n, dtype=np.int64)
            self.clock = np.zeros(n, dtype=np.int64)
            self.nadir_mm = np.full(n, np.inf)
            self.holding = np.zeros(n, dtype=np.bool_)
            self.had_new = np.zeros(n, dtype=np.bool_)

    def _actions(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        if self._tables is None:
            raise ValueError(_NO_TASK)
        p = self.params
        n = obs.shape[0]
        self._ensure(n)
        day = obs[:, -1]
        start = day <= 0.0
        self.line[start] = 0
        self.clock[start] = 0
        self.nadir_mm[start] = np.inf
        self.holding[start] = False
        self.had_new[start] = False
        sld = obs[:, self._i_sld]
        new_lesion = obs[:, self._i_new] > 0.5
        new_scan = obs[:, self._i_since] * 7.0 < p.decision_days - 1e-6
        for i in np.flatnonzero(new_scan):
            d, nadir = float(sld[i]), self.nadir_mm[i]
            appeared = bool(new_lesion[i]) and not self.had_new[i]  # a new lesion counts once
            self.had_new[i] = self.had_new[i] or bool(new_lesion[i])
            if np.isfinite(nadir) and not start[i]:
                if appeared or rules.is_progression(d, d > 0.0, nadir, rules.RECIST_1_1):
                    if self.line[i] + 1 < len(self.lines):
                        self.line[i] += 1
                        self.clock[i] = 0
                    self.nadir_mm[i] = d
                    continue
            self.nadir_mm[i] = min(nadir, d)
        grades = obs[:, self._i_grades] if self._i_grades else np.zeros((n, 1))
        worst = grades.max(axis=1)
        self.holding = np.where(self.holding, worst > RESUME_GRADE, worst >= HOLD_GRADE)
        weights = self._tables.weights(self.env, n)
        out = np.zeros((n, p.n_therapies))
        for i in range(n):
            if self.holding[i]:
                continue
            table = self._tables.table(self.lines[self.line[i]], weights[i])
            k = self.clock[i]
            if k < table.shape[0]:
                out[i] = table[k]
            self.clock[i] += 1
        return out


def default_lines(params: EnvParams) -> tuple[str, ...]:
    """The adaptive baseline's lines of therapy for a scenario task."""
    if params.name in ADAPTIVE_LINES:
        return ADAPTIVE_LINES[params.name]
    soc = STANDARD_OF_CARE[params.name]
    others = [
        k
        for k, v in params.scenario.protocols.items()
        if k != soc and v.doses and not v.calibration_only
    ]
    return (soc, *others)


def baseline_names(task: str) -> list[str]:
    """Every baseline of ``task``: no_treatment, random, its protocols, adaptive, the best
    open-loop schedule (scenarios), the planners."""
    from oncogym.envs.task import TASKS

    names = ["no_treatment", "random"]
    if task in TASKS:
        names += [*protocol_names(task), "adaptive", "open_loop"]
    return [*names, "mpc_oracle", "mpc_population"]


def make_baseline(name: str, task: str, *, seed: int = 0, **kwargs: Any) -> Any:
    """A baseline policy by name (see :func:`baseline_names`).

    :param name: ``"no_treatment"``, ``"random"``, a protocol of the scenario,
        ``"adaptive"``, ``"open_loop"``, ``"mpc_oracle"`` or ``"mpc_population"``
    :param task: the scenario or literature task
    :param seed: seed of the random, open-loop and planner baselines
    :param kwargs: planner settings (:class:`oncogym.agents.planner.MPCPlanner`) or
        open-loop search settings (:func:`oncogym.agents.openloop.search_open_loop`: the
        search runs here, on training patients)
    """
    allowed = baseline_names(task)
    if name not in allowed:
        raise ValueError(
            f"policy: unknown baseline {name!r} for {task}; allowed: {', '.join(allowed)}"
        )
    if name == "no_treatment":
        return NoTreatment()
    if name == "random":
        return RandomPolicy(seed)
    if name == "adaptive":
        return AdaptivePolicy()
    if name == "open_loop":
        from .openloop import open_loop_baseline

        return open_loop_baseline(task, seed=seed, **kwargs)
    if name.startswith("mpc_"):
        from .planner import MPCPlanner

        return MPCPlanner(task, mode=name.removeprefix("mpc_"), seed=seed, **kwargs)
    return ProtocolPolicy(name)
