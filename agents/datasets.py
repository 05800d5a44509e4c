"""Offline-RL datasets: what a clinic's behaviour produces, stored as Minari datasets.

A dataset is one episode per *training* patient (:meth:`oncogym.scenarios.Cohort.train`
draw :data:`DATASET_DRAW`, never the test cohort) of a scenario's registered environment in
its discrete action mode (``MultiDiscrete``: one dose-level index per therapy), treated by
one **behaviour policy**:

* ``"protocols"`` — a mixture of the scenario's protocols: each patient gets one protocol,
  drawn uniformly (seeded), from day 0 — a clinic where different physicians prefer
  different labelled regimens;
* ``"adaptive_noisy"`` — the rule-based adaptive therapy
  (:class:`oncogym.agents.policies.AdaptivePolicy`) with clinician-like noise, all seeded:
  with probability ``line_eps`` the patient starts on another protocol line (any other
  protocol of the scenario first, then the adaptive policy's later lines); at every visit
  where doses are due they are **delayed** by a week with probability ``delay_eps`` (the
  line's clock pauses: nothing given, the schedule resumes next visit); and each dose given
  is given at **another dose level** of the grid with probability ``level_eps`` (e.g.
  nivolumab 480 mg instead of 240 mg);
* ``"planner"`` — the model-predictive planner (:class:`oncogym.agents.planner.MPCPlanner`,
  oracle mode by default: an expert that knows the patient, small settings) — optional and
  slow.

Protocols and the adaptive rules prescribe clinical amounts (per-kg doses at the patient's
weight); in the discrete environment each amount is given as the **nearest dose level** on a
log scale (:func:`levels_of`: a dose is never dropped, nivolumab 3 mg/kg at 80 kg = 240 mg
→ level 240 mg), so the behaviour acts on the grid every offline learner acts on.

The behaviour's **action probabilities** are exact and stored: every behaviour is a mixture
over deterministic "worlds" (the protocols, the line choices) with per-visit noise whose
outcome is visible in the action, so ``π_b(a_t | history)`` is the posterior-weighted
likelihood of the action over the worlds (a Bayes filter over the latent choice, updated
with each action).  Weighted importance sampling needs nothing else.

Stored per episode (Minari's layout: ``observations`` has one more row than the actions;
``infos[key][0]`` is the reset's, ``infos[key][t + 1]`` the step's that took
``actions[t]``), exactly as the environment returned them: observations (float32),
actions (int64 level indices), rewards (the default ``"qaly"`` reward), terminations
(death), truncations (the last step, as the recovered environment's ``TimeLimit`` reports
it: a patient who dies in the last interval is terminated and truncated) and the infos
:data:`INFO_KEYS`.  Episode metadata:
the patient's index in the training cohort, the scan-noise seed and the behaviour's latent
choice.  Replaying an episode's actions in ``dataset.recover_environment()`` reset with
``seed=<scan-noise seed>, options={"cohort": Cohort.train(scenario, n, DATASET_DRAW),
"index": patient}`` reproduces it number for number (tested).

Dataset metadata (``dataset.storage.metadata["oncogym"]``): scenario, env id and version,
env keyword arguments, behaviour name and settings, seed, cohort draw and number of
patients, oncogym and minari versions, the observation names, the dose levels and what the
infos mean.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import oncogym
from oncogym.envs import ENV_IDS
from oncogym.envs import functional as Fn
from oncogym.envs.task import TASKS, EnvParams

from ._policy import Policy, protocol_names
from .policies import AdaptivePolicy, ProtocolPolicy, default_lines

BEHAVIOURS = ("protocols", "adaptive_noisy", "planner")
"""Behaviour policies a dataset can be collected with (see the module docstring)."""
DATASET_VERSION = 0
"""Version of the dataset ids (``oncogym/<scenario>/<behaviour>-v0``)."""
DATASET_DRAW = 5_555
"""Training-cohort draw (:meth:`Cohort.train` ``k``) the datasets' patients come from."""
DEFAULT_PATIENTS = 200
DEFAULT_NOISE = {"line_eps": 0.2, "delay_eps": 0.05, "level_eps": 0.02}
"""Default clinician noise of ``"adaptive_noisy"``."""
DEFAULT_PLANNER = {"n_samples": 16, "n_iters": 2, "replan_every": 2}
"""Default (small) settings of the ``"planner"`` behaviour."""
INSTALL_HINT = 'pip install -e ".[offline]"'

INFO_KEYS = {
    "day": "days since the start of treatment",
    "tumour_cells": "true tumour cells (all lesions)",
    "qaly": "QALYs lived in the interval less the treatment burden (0 at reset)",
    "doses": "amounts delivered in the interval per therapy (clinical units; 0 at reset)",
    "blocked": "doses the constraints refused in the interval, per therapy",
    "death_cause": "0 alive, 1 tumour, 2 toxicity, 3 integrator error",
    "body_weight_kg": "the patient's body weight (what a clinic knows; per-kg doses)",
    "behaviour_prob": "π_b(actions[t] | history) in the step's info (index t + 1); NaN at reset",
}
"""The infos stored per step and what they mean (also in the dataset metadata)."""


def require_minari() -> Any:
    """The ``minari`` module (with its HDF5 storage), or an ``ImportError`` of one line."""
    try:
        import h5py  # noqa: F401  (Minari's storage)
        import minari
    except ImportError:
        raise ImportError(f"minari is not installed: {INSTALL_HINT}") from None
    return minari


@contextlib.contextmanager
def datasets_root(path: str | Path | None) -> Iterator[Path | None]:
    """Point Minari at ``path`` (``MINARI_DATASETS_PATH``) inside the block; ``None``
    leaves Minari's own setting (``MINARI_DATASETS_PATH`` or ``~/.minari/datasets``)."""
    if path is None:
        yield None
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(path).resolve())
    try:
        yield Path(path)
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def _check(name: str, value: Any, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}: unknown {value!r}; allowed: {', '.join(allowed)}")
    return value


def env_id_of(scenario: str) -> str:
    """The registered env id of a scenario."""
    _check("scenario", scenario, TASKS)
    return next(i for i, (task, _, _) in ENV_IDS.items() if task == scenario)


def dataset_id(scenario: str, behaviour: str, version: int = DATASET_VERSION) -> str:
    """``oncogym/<scenario>/<behaviour>-v<version>`` (``_`` written ``-``)."""
    _check("scenario", scenario, TASKS)
    _check("behaviour", behaviour, BEHAVIOURS)
    return f"oncogym/{scenario}/{behaviour.replace('_', '-')}-v{version}"


# --- the dose grid -----------------------------------------------------------------------------
def levels_of(params: EnvParams, fractions: Any, min_dose_fraction: float = 0.05) -> np.ndarray:
    """Dose-level indices for continuous actions (fractions of each highest level).

    A fraction below ``min_dose_fraction`` is no dose (level 0), as in the continuous env;
    any other amount becomes the non-zero level nearest to it on a log scale (ties: the
    lower level), so a dose is never dropped.  ``(n, n_therapies)`` → int64.
    """
    x = np.atleast_2d(np.asarray(fractions, dtype=np.float64))
    out = np.zeros(x.shape, dtype=np.int64)
    for j in range(params.n_therapies):
        n = int(params.n_levels[j])
        on = x[:, j] >= min_dose_fraction
        if n < 2 or not on.any():
            continue
        amount = x[on, j] * params.max_level[j]
        levels = params.level_table[j, 1:n]
        dist = np.abs(np.log(amount)[:, None] - np.log(levels)[None, :])
        out[on, j] = 1 + np.argmin(dist, axis=1)
    return out


class Discretised(Policy):
    """A continuous-action policy (a protocol, the adaptive rules, the planner) acting on the
    discrete env's dose grid through :func:`levels_of`."""

    action_mode = "discrete"

    def __init__(self, policy: Any, name: str | None = None) -> None:
        super().__init__()
        self.policy = policy
        self.name = name or str(getattr(policy, "name", type(policy).__name__))
        self.env_kwargs = getattr(policy, "env_kwargs", None)

    def attach(self, env: Any) -> None:
        super().attach(env)
        if hasattr(self.policy, "attach"):
            self.policy.attach(env)
        self._mdf = float(getattr(env, "min_dose_fraction", 0.05))

    def _actions(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        out, _ = self.policy.predict(obs, deterministic=True)
        if getattr(self.policy, "action_mode", "continuous") == "discrete":
            return np.asarray(out, dtype=np.int64).reshape(obs.shape[0], -1)
        return levels_of(self.params, np.asarray(out).reshape(obs.shape[0], -1), self._mdf)


# --- behaviour policies --------------------------------------------------------------------------
class Behaviour(Policy):
    """A mixture of deterministic "worlds" with clinician noise; exact action probabilities.

    Each patient's world is drawn from ``priors`` at the start of the episode.  At each
    visit the world's dose levels ``b`` (:class:`Discretised`) are perturbed: if any dose
    is due, with probability ``delay_eps`` nothing is given (the world is told, so a rule
    with a clock — the adaptive policy — delays rather than skips); otherwise each dose
    given is moved to another non-zero level of its therapy with probability ``level_eps``.
    :attr:`last_prob` holds ``π_b(a | history)`` of the actions just returned: the
    likelihood of the action in every world weighted by the posterior over worlds given the
    episode's earlier actions.

    ``predict`` is always the behaviour, noise included (``deterministic`` is ignored): the
    evaluator's ``rollout`` of a :class:`Behaviour` scores the clinic that made the data.

    :param worlds: ``(name, policy)`` pairs; the policies give continuous or discrete actions
    :param priors: probability of each world (sums to 1)
    :param seed: seed of the world draws and the noise
    """

    action_mode = "discrete"

    def __init__(
        self,
        worlds: Sequence[tuple[str, Any]],
        priors: Sequence[float],
        *,
        delay_eps: float = 0.0,
        level_eps: float = 0.0,
        seed: int = 0,
        name: str = "behaviour",
    ) -> None:
        super().__init__()
        if not worlds or len(worlds) != len(priors):
            raise ValueError("worlds: expected one prior per world and at least one world")
        for field_name, eps in (("delay_eps", delay_eps), ("level_eps", level_eps)):
            if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 <= eps < 1:
                raise ValueError(f"{field_name}: expected a probability in [0, 1), got {eps!r}")
        pri = np.asarray(priors, dtype=np.float64)
        if np.any(pri < 0) or not math.isclose(pri.sum(), 1.0, rel_tol=1e-9):
            raise ValueError(f"priors: expected probabilities summing to 1, got {pri.tolist()}")
        self.world_names = [w for w, _ in worlds]
        self.worlds = [Discretised(p, name=w) for w, p in worlds]
        self.priors = pri
        self.delay_eps = float(delay_eps)
        self.level_eps = float(level_eps)
        self.seed = seed
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.world: np.ndarray = np.zeros(0, dtype=np.int64)
        self.last_prob: np.ndarray = np.zeros(0)

    def attach(self, env: Any) -> None:
        super().attach(env)
        for w in self.worlds:
            w.attach(env)
        self._n = 0

    def _start(self, rows: np.ndarray, n: int) -> None:
        if self._n != n:
            self._n = n
            self.world = np.zeros(n, dtype=np.int64)
            self.post = np.tile(self.priors, (n, 1))
        self.world[rows] = self.rng.choice(len(self.worlds), size=len(rows), p=self.priors)
        self.post[rows] = self.priors

    def _likelihood(self, base: np.ndarray, a: np.ndarray) -> np.ndarray:
        """``P(a | world's levels base)`` under the noise, per row."""
        nl = self.params.n_levels[None, :]
        due = (base > 0).any(axis=1)
        zero = ~(a > 0).any(axis=1)
        per = np.where(
            base == 0,
            (a == 0).astype(np.float64),
            np.where(
                nl <= 2,
                (a == base).astype(np.float64),
                np.where(
                    a == base,
                    1.0 - self.level_eps,
                    np.where(a > 0, self.level_eps / np.maximum(nl - 2, 1), 0.0),
                ),
            ),
        )
        given = (1.0 - self.delay_eps) * per.prod(axis=1)
        delayed = np.where(zero, self.delay_eps, 0.0)
        return np.where(due, given + delayed, zero.astype(np.float64))

    def _actions(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        n = obs.shape[0]
        start = np.flatnonzero(obs[:, -1] <= 0.0) if self._n == n else np.arange(n)
        if len(start):
            self._start(start, n)
        base = np.stack([w._actions(obs, True) for w in self.worlds])  # (W, n, nt)
        rows = np.arange(n)
        b = base[self.world, rows]
        # the noise: one draw of each kind per patient and therapy, whatever happens
        u_delay = self.rng.random(n)
        u_level = self.rng.random(b.shape)
        u_pick = self.rng.random(b.shape)
        a = b.copy()
        nl = np.broadcast_to(self.params.n_levels[None, :], b.shape)
        move = (b > 0) & (nl > 2) & (u_level < self.level_eps)
        # another non-zero level, uniformly: draw among nl - 2 and skip the base level
        other = 1 + np.floor(u_pick * np.maximum(nl - 2, 1)).astype(np.int64)
        other = np.where(other >= b, other + 1, other)
        a[move] = other[move]
        delay = (b > 0).any(axis=1) & (u_delay < self.delay_eps)
        a[delay] = 0
        like = np.stack([self._likelihood(base[w], a) for w in range(len(self.worlds))], axis=1)
        prob = (self.post * like).sum(axis=1)
        self.last_prob = prob
        self.post = np.where(
            prob[:, None] > 0, self.post * like / np.where(prob > 0, prob, 1)[:, None], 0
        )
        # worlds with a clock delay rather than skip: tell each world where it was delayed
        for w, pol in enumerate(self.worlds):
            inner = pol.policy
            if isinstance(inner, AdaptivePolicy):
                was_delayed = (base[w] > 0).any(axis=1) & ~(a > 0).any(axis=1) & ~inner.holding
                inner.clock[was_delayed] -= 1
        return a

    def settings(self) -> dict[str, Any]:
        return {
            "worlds": dict(zip(self.world_names, self.priors.tolist(), strict=True)),
            "delay_eps": self.delay_eps,
            "level_eps": self.level_eps,
            "seed": self.seed,
        }


def _line_worlds(task: str, line_eps: float) -> tuple[list[tuple[str, Any]], list[float]]:
    from oncogym.envs.task import make_params

    default = default_lines(make_params(task))
    alts = []
    for q in protocol_names(task):
        if q == default[0]:
            continue
        lines = (q,) if q in default[1:] else (q, *default[1:])
        alts.append(lines)
    worlds: list[tuple[str, Any]] = [(" → ".join(default), AdaptivePolicy(default))]
    priors = [1.0 - line_eps if alts else 1.0]
    for lines in alts:
        worlds.append((" → ".join(lines), AdaptivePolicy(lines)))
        priors.append(line_eps / len(alts))
    return worlds, priors


def make_behaviour(
    scenario: str,
    behaviour: str,
    *,
    seed: int = 0,
    protocols: Sequence[str] | None = None,
    noise: Mapping[str, float] | None = None,
    planner: Mapping[str, Any] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> Behaviour:
    """The behaviour policy ``behaviour`` of ``scenario`` (see the module docstring).

    :param protocols: ``"protocols"``: the protocols of the mixture (default: all)
    :param noise: ``"adaptive_noisy"``: ``line_eps``, ``delay_eps``, ``level_eps``
        (default :data:`DEFAULT_NOISE`)
    :param planner: ``"planner"``: :class:`~oncogym.agents.planner.MPCPlanner` settings
        (default :data:`DEFAULT_PLANNER`, oracle mode)
    """
    _check("scenario", scenario, TASKS)
    _check("behaviour", behaviour, BEHAVIOURS)
    name = behaviour
    if behaviour == "protocols":
        allowed = protocol_names(scenario)
        chosen = list(protocols) if protocols else allowed
        for p in chosen:
            _check("protocol", p, allowed)
        worlds = [(p, ProtocolPolicy(p)) for p in chosen]
        return Behaviour(worlds, [1.0 / len(worlds)] * len(worlds), seed=seed, name=name)
    if behaviour == "adaptive_noisy":
        settings = dict(DEFAULT_NOISE)
        for k, v in (noise or {}).items():
            _check("noise", k, tuple(DEFAULT_NOISE))
            settings[k] = v
        line_eps = settings["line_eps"]
        if isinstance(line_eps, bool) or not isinstance(line_eps, int | float):
            raise ValueError(f"line_eps: expected a probability in [0, 1), got {line_eps!r}")
        if not 0 <= line_eps < 1:
            raise ValueError(f"line_eps: expected a probability in [0, 1), got {line_eps!r}")
        worlds, priors = _line_worlds(scenario, float(line_eps))
        return Behaviour(
            worlds,
            priors,
            delay_eps=settings["delay_eps"],
            level_eps=settings["level_eps"],
            seed=seed,
            name=name,
        )
    import inspect

    from .planner import MPCPlanner

    allowed = [
        k
        for k in inspect.signature(MPCPlanner.__init__).parameters
        if k not in ("self", "task", "seed", "env_kwargs", "anchor")
    ]
    for k in planner or {}:
        _check("planner setting", k, allowed)
    kwargs = {"mode": "oracle", **DEFAULT_PLANNER, **dict(planner or {})}
    mpc = MPCPlanner(scenario, seed=seed, env_kwargs=env_kwargs, **kwargs)
    beh = Behaviour([(mpc.name, mpc)], [1.0], seed=seed, name=name)
    beh.planner_settings = kwargs  # type: ignore[attr-defined]
    return beh


# --- collection -----------------------------------------------------------------------------------
@dataclasses.dataclass
class Episodes:
    """Episodes of one behaviour on a cohort, as the environment returned them (padded
    arrays; ``lengths`` gives each episode's number of steps)."""

    observations: np.ndarray  # (n, S + 1, obs_dim) float32
    actions: np.ndarray  # (n, S, nt) int64
    rewards: np.ndarray  # (n, S)
    terminations: np.ndarray  # (n, S) bool
    truncations: np.ndarray  # (n, S) bool
    infos: dict[str, np.ndarray]  # (n, S + 1, ...)
    lengths: np.ndarray  # (n,)
    worlds: list[str]  # the behaviour's latent choice per patient
    seeds: np.ndarray  # scan-noise seed per patient

    @property
    def n(self) -> int:
        return int(self.lengths.shape[0])

    def returns(self) -> np.ndarray:
        return self.rewards.sum(axis=1)


def collect(
    scenario: str,
    behaviour: Behaviour,
    cohort: Any,
    *,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
) -> Episodes:
    """One episode per patient of ``cohort`` under ``behaviour``, in the discrete env
    (patient ``i``'s scan noise from seed ``seed + i``, as the vector env seeds it)."""
    from .evaluate import CohortRunner

    n = len(cohort)
    runner = CohortRunner(
        scenario, n, cohort=cohort, action_mode="discrete", seed=seed, env_kwargs=env_kwargs
    )
    behaviour.attach(runner)
    p, s = runner.params, runner.state
    S, nt = p.n_steps, p.n_therapies
    names = p.model.param_names
    weight = (
        s.params[:, names.index("body_weight_kg")].copy()
        if "body_weight_kg" in names
        else np.zeros(n)
    )
    obs = np.zeros((n, S + 1, runner.obs.shape[1]), dtype=np.float32)
    obs[:, 0] = runner.obs
    actions = np.zeros((n, S, nt), dtype=np.int64)
    rewards = np.zeros((n, S))
    term = np.zeros((n, S), dtype=np.bool_)
    trunc = np.zeros((n, S), dtype=np.bool_)
    info = {
        "day": np.zeros((n, S + 1)),
        "tumour_cells": np.zeros((n, S + 1)),
        "qaly": np.zeros((n, S + 1)),
        "doses": np.zeros((n, S + 1, nt)),
        "blocked": np.zeros((n, S + 1, nt), dtype=np.bool_),
        "death_cause": np.zeros((n, S + 1), dtype=np.int64),
        "body_weight_kg": np.repeat(weight[:, None], S + 1, axis=1),
        "behaviour_prob": np.full((n, S + 1), np.nan),
    }

    def record(k: int, rows: np.ndarray) -> None:
        info["day"][rows, k] = s.day[rows]
        info["tumour_cells"][rows, k] = Fn.tumour_cells(s.y, p.tumour_index)[rows]
        info["death_cause"][rows, k] = s.death_cause[rows]

    everyone = np.arange(n)
    record(0, everyone)
    lengths = np.full(n, S, dtype=np.int64)
    done = np.zeros(n, dtype=np.bool_)
    for k in range(S):
        a, _ = behaviour.predict(runner.obs, deterministic=True)
        prob = behaviour.last_prob
        a = np.where(done[:, None], 0, a)
        out = runner.step(a)
        rows = np.flatnonzero(~done)
        actions[rows, k] = a[rows]
        rewards[rows, k] = out.reward[rows]
        term[rows, k] = out.terminated[rows]
        trunc[rows, k] = out.truncated[rows] | (k + 1 >= S)  # the spec's TimeLimit
        obs[rows, k + 1] = out.observation[rows]
        record(k + 1, rows)
        iv = out.interval
        info["qaly"][rows, k + 1] = (iv.qaly - iv.treatment_loss)[rows]
        info["doses"][rows, k + 1] = iv.delivered[rows]
        info["blocked"][rows, k + 1] = iv.blocked[rows]
        info["behaviour_prob"][rows, k + 1] = prob[rows]
        ended = (out.terminated | out.truncated) & ~done
        lengths[ended] = k + 1
        done |= ended
        if done.all():
            break
    if not done.all():
        raise RuntimeError("collect: some episodes did not end at the horizon")
    return Episodes(
        observations=obs,
        actions=actions,
        rewards=rewards,
        terminations=term,
        truncations=trunc,
        infos=info,
        lengths=lengths,
        worlds=[behaviour.world_names[w] for w in behaviour.world],
        seeds=seed + np.arange(n),
    )


def _env_spec(scenario: str, env_kwargs: Mapping[str, Any]) -> Any:
    import gymnasium as gym

    spec = gym.spec(env_id_of(scenario))
    kwargs = {**spec.kwargs, "action_mode": "discrete", **env_kwargs}
    steps = math.ceil(float(kwargs["horizon_days"]) / int(kwargs["decision_days"]) - 1e-9)
    return dataclasses.replace(spec, kwargs=kwargs, max_episode_steps=steps)


def write_dataset(
    dataset_id_: str,
    episodes: Episodes,
    *,
    scenario: str,
    behaviour: Behaviour,
    metadata: Mapping[str, Any],
    env_kwargs: Mapping[str, Any] | None = None,
) -> Any:
    """Write ``episodes`` as the Minari dataset ``dataset_id_`` (under Minari's datasets
    root: see :func:`datasets_root`) and return it."""
    minari = require_minari()
    from minari.data_collector.episode_buffer import EpisodeBuffer

    spec = _env_spec(scenario, dict(env_kwargs or {}))
    buffers = []
    for i in range(episodes.n):
        T = int(episodes.lengths[i])
        buffers.append(
            EpisodeBuffer(
                id=i,
                seed=int(episodes.seeds[i]),
                observations=episodes.observations[i, : T + 1],
                actions=episodes.actions[i, :T],
                rewards=episodes.rewards[i, :T],
                terminations=episodes.terminations[i, :T],
                truncations=episodes.truncations[i, :T],
                infos={k: v[i, : T + 1] for k, v in episodes.infos.items()},
            )
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*author_email.*", category=UserWarning)
        ds = minari.create_dataset_from_buffers(
            dataset_id=dataset_id_,
            buffer=buffers,
            env=spec,
            eval_env=spec,
            algorithm_name=behaviour.name,
            author="oncogym",
            code_permalink=f"oncogym {oncogym.__version__}: oncogym.agents.datasets",
            description=(
                f"{scenario}: {episodes.n} training patients treated by the "
                f"{behaviour.name!r} behaviour policy in {spec.id} (discrete dose levels)."
            ),
            requirements=[f"oncogym=={oncogym.__version__}"],
        )
    ds.storage.update_metadata({"oncogym": dict(metadata)})
    ds.storage.update_episode_metadata(
        [
            {"patient": i, "scan_noise_seed": int(episodes.seeds[i]), "world": episodes.worlds[i]}
            for i in range(episodes.n)
        ]
    )
    return ds


def make_dataset(
    scenario: str,
    behaviour: str,
    *,
    n_patients: int = DEFAULT_PATIENTS,
    seed: int = 0,
    draw: int = DATASET_DRAW,
    out: str | Path | None = None,
    force: bool = False,
    protocols: Sequence[str] | None = None,
    noise: Mapping[str, float] | None = None,
    planner: Mapping[str, Any] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> Any:
    """Collect and write one dataset (:func:`dataset_id`); returns the loaded dataset.

    :param n_patients: training patients (one episode each)
    :param seed: seed of the behaviour's randomness and of the scan noise
    :param draw: the training cohort (:meth:`Cohort.train` ``k``)
    :param out: Minari datasets root (default: ``MINARI_DATASETS_PATH`` or ``~/.minari``)
    :param force: replace an existing dataset of the same id (otherwise refused)
    :param env_kwargs: environment arguments other than the registered ones (e.g. a shorter
        ``horizon_days``), recorded in the dataset's env spec and metadata
    """
    from oncogym.scenarios import Cohort

    minari = require_minari()
    _check("scenario", scenario, TASKS)
    _check("behaviour", behaviour, BEHAVIOURS)
    for field_name, value, low in (("n_patients", n_patients, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{field_name}: expected an integer >= {low}, got {value!r}")
    env_kwargs = dict(env_kwargs or {})
    allowed_env = ("horizon_days", "scan_noise_cv")
    for k in env_kwargs:
        _check("env_kwargs", k, allowed_env)
    did = dataset_id(scenario, behaviour)
    with datasets_root(out):
        if did in minari.list_local_datasets():
            if not force:
                raise ValueError(
                    f"dataset: {did} already exists under {minari.storage.get_dataset_path()}; "
                    "pass force=True (--force) to replace it"
                )
            minari.delete_dataset(did)
        cohort = Cohort.train(scenario, int(n_patients), draw)
        beh = make_behaviour(
            scenario,
            behaviour,
            seed=seed,
            protocols=protocols,
            noise=noise,
            planner=planner,
            env_kwargs=env_kwargs,
        )
        episodes = collect(scenario, beh, cohort, seed=seed, env_kwargs=env_kwargs)
        env_id = env_id_of(scenario)
        params = beh.params
        settings = beh.settings()
        if behaviour == "planner":
            settings["planner"] = dict(beh.planner_settings)  # type: ignore[attr-defined]
        meta = {
            "scenario": scenario,
            "env_id": env_id,
            "env_version": int(env_id.rsplit("-v", 1)[1]),
            "env_kwargs": {"action_mode": "discrete", **env_kwargs},
            "behaviour": behaviour,
            "behaviour_settings": settings,
            "seed": int(seed),
            "cohort": {"kind": "Cohort.train", "draw": int(draw), "n": int(n_patients)},
            "n_patients": int(n_patients),
            "oncogym_version": oncogym.__version__,
            "minari_version": minari.__version__,
            "observation_names": list(runner_names(params)),
            "therapies": list(params.therapies),
            "dose_levels": [list(map(float, lv)) for lv in params.dose_levels],
            "infos": INFO_KEYS,
            "mean_return": float(episodes.returns().mean()),
        }
        write_dataset(
            did, episodes, scenario=scenario, behaviour=beh, metadata=meta, env_kwargs=env_kwargs
        )
        return minari.load_dataset(did)


def runner_names(params: EnvParams) -> tuple[str, ...]:
    """Observation names of a task (the env's ``observation_names``)."""
    return tuple(r[0] for r in Fn.observation_layout(params))
