"""The native vector environment: ``num_envs`` patients advanced in one compiled call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from . import _kernels as K
from . import functional as Fn
from .task import EnvParams


class OncologyVectorEnv(VectorEnv):
    """``num_envs`` independent patients of one task, stepped in one parallel compiled call.

    The same task, arguments and dynamics as :class:`oncogym.envs.OncologyEnv` (see its
    docstring), on the shared functions of :mod:`oncogym.envs.functional`.

    * **Autoreset**: ``AutoresetMode.SAME_STEP`` — a patient whose episode ends is replaced
      in the same step; the returned observation is the new patient's, and
      ``info["final_obs"]`` (an object array, ``None`` for the others) and
      ``info["final_info"]`` hold the last observation and info of the finished episode,
      with the masks ``info["_final_obs"]`` and ``info["_final_info"]``.
    * **Seeding**: sub-env ``i`` owns a generator seeded with ``seed + i`` (as
      :class:`gymnasium.vector.SyncVectorEnv` seeds its copies), so the same seed gives the
      same patients, noise and trajectories as ``SyncVectorEnv`` over ``OncologyEnv``, across
      resets.
    * **Options**: ``reset(options={"cohort": cohort, "index": i0})`` gives sub-env ``i``
      patient ``i0 + i`` of the cohort (an evaluation of a whole cohort in one batch);
      ``{"patient": (params, y0)}`` gives every sub-env that patient; ``"reset_mask"``
      resets only the masked sub-envs.
    * **Info**: the single env's info dicts (:meth:`OncologyFunctional.info
      <oncogym.envs.functional.OncologyFunctional.info>`) stacked exactly as
      :class:`gymnasium.vector.SyncVectorEnv` stacks them (same keys, types and ``_key``
      masks; names stay names, e.g. ``info["death_cause"]`` is an object array of
      ``"tumour"`` …, ``None`` for the living), built without a Python loop over patients;
      the masks of keys every patient has are one shared read-only array.
    * **Cost**: ``info["cost"]`` (float64 per sub-env) and ``info["cost_by_category"]``
      are the single env's (new grade ≥ 3 toxicities of the interval, see the *Info*
      section of :class:`~oncogym.envs.OncologyEnv`); as for every step key, a sub-env
      replaced in this step has ``info["_cost"]`` False and its last interval's cost in
      ``info["final_info"]["cost"]`` — add both up to count every event, toxic deaths
      included (the SB3 adapter does).

    :param num_envs: number of patients stepped together
    :param task: a task of :func:`oncogym.envs.task.make_params`
    :param max_episode_steps: accepted for ``gymnasium.make_vec``; episodes end at the
        horizon (the registered value equals the default number of intervals)
    The keyword arguments ``action_mode`` … ``render_mode`` (``setting`` and ``population``
    included) are those of :class:`oncogym.envs.OncologyEnv`.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "autoreset_mode": AutoresetMode.SAME_STEP,
        "render_modes": [],
    }

    def __init__(
        self,
        num_envs: int = 1,
        task: str = "melanoma",
        *,
        action_mode: str = "discrete",
        observation: str = "clinical",
        reward: str | Fn.RewardFn = "qaly",
        decision_days: int | None = None,
        horizon_days: float | None = None,
        scan_noise_cv: float | None = None,
        enforce_constraints: bool = True,
        min_dose_fraction: float = 0.05,
        reward_weights: Mapping[str, Any] | None = None,
        rtol: float = 1e-6,
        method: str = "auto",
        setting: str = "default",
        population: str | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        if (
            isinstance(num_envs, bool)
            or not isinstance(num_envs, (int, np.integer))
            or num_envs < 1
        ):
            raise ValueError(f"num_envs: expected a positive integer, got {num_envs!r}")
        if render_mode is not None:
            raise ValueError("render_mode: the vector env does not render; use OncologyEnv")
        self.functional = Fn.OncologyFunctional(
            task,
            action_mode=action_mode,
            reward=reward,
            min_dose_fraction=min_dose_fraction,
            observation=observation,
            decision_days=decision_days,
            horizon_days=horizon_days,
            scan_noise_cv=scan_noise_cv,
            enforce_constraints=enforce_constraints,
            reward_weights=reward_weights,
            rtol=rtol,
            method=method,
            setting=setting,
            population=population,
        )
        self.num_envs = int(num_envs)
        self.max_episode_steps = max_episode_steps
        self.render_mode = None
        self.single_action_space = self.functional.action_space
        self.single_observation_space = self.functional.observation_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.observation_names = self.functional.observation_names
        self._patients = self.functional.allocate(self.num_envs)
        self._rngs: list[np.random.Generator] = [
            seeding.np_random(None)[0] for _ in range(self.num_envs)
        ]
        self._ready = False

    # --- descriptive attributes -------------------------------------------------------------
    @property
    def params(self) -> EnvParams:
        """The task's parameters (:class:`~oncogym.envs.task.EnvParams`)."""
        return self.functional.params

    @property
    def action_mode(self) -> str:
        return self.functional.action_mode

    @property
    def setting(self) -> str:
        """The difficulty tier's name (:mod:`oncogym.envs.settings`)."""
        return self.params.setting.name

    @property
    def min_dose_fraction(self) -> float:
        return self.functional.min_dose_fraction

    @property
    def therapies(self) -> tuple[str, ...]:
        return self.params.therapies

    @property
    def state(self) -> K.State:
        """The patients' state, read-only (fields in :class:`~._kernels.State`)."""
        return self._patients.view

    @property
    def patients(self) -> Fn.Patients:
        """The batch the functional environment steps."""
        return self._patients

    @property
    def np_random_generators(self) -> list[np.random.Generator]:
        """The generator of each sub-env."""
        return self._rngs

    # --- Gymnasium API -----------------------------------------------------------------------
    def reset(
        self,
        *,
        seed: int | list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        n = self.num_envs
        if seed is None:
            seeds: list[int | None] = [None] * n
        elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            seeds = [int(seed) + i for i in range(n)]
        else:
            seeds = list(seed)
            if len(seeds) != n:
                raise ValueError(f"seed: expected {n} seeds, got {len(seeds)}")
        mask = None if options is None else options.get("reset_mask")
        if mask is not None:
            mask = np.asarray(mask, dtype=np.bool_)
            if mask.shape != (n,):
                raise ValueError(f"options['reset_mask']: expected shape ({n},), got {mask.shape}")
            rows = np.flatnonzero(mask)
        else:
            rows = np.arange(n)
        for i in rows:
            if seeds[i] is not None or not self._ready:
                self._rngs[i] = seeding.np_random(seeds[i])[0]
        self._reset_rows(rows, options)
        self._ready = True
        infos = self.functional.infos(self._patients, reset=True)
        if mask is not None:
            infos = infos.only(mask)
        return self.functional.observation(self._patients).copy(), infos.gymnasium()

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._ready:
            raise RuntimeError("step: call reset() before step()")
        fn, patients = self.functional, self._patients
        out = fn.step(patients, actions, parallel=True)
        rewards = out.reward.copy()
        terminated, truncated = out.terminated.copy(), out.truncated.copy()
        infos = fn.infos(patients, reset=False, rewards=rewards)
        done = terminated | truncated
        final = {}
        if done.any():
            rows = np.flatnonzero(done)
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in rows:
                final_obs[i] = out.observation[i].copy()
            final = {
                "final_obs": final_obs,
                "_final_obs": done.copy(),
                "final_info": infos.only(done).gymnasium(),
                "_final_info": done.copy(),
            }
            self._reset_rows(rows, None)
            infos = infos.where(done, fn.infos(patients, reset=True))
        info = infos.gymnasium()
        info.update(final)
        return fn.observation(patients).copy(), rewards, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """Allowed dose levels of the next step, ``(num_envs, sum(n_levels))`` bool."""
        return self.functional.action_masks(self._patients).copy()

    # --- internals ---------------------------------------------------------------------------
    def _reset_rows(self, rows: np.ndarray, options: Mapping[str, Any] | None) -> None:
        if len(rows) == 0:
            return
        fn = self.functional
        fn.initial(self._patients, rows, fn.draw([self._rngs[i] for i in rows], options, rows))
