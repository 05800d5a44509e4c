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
from .oncology import (
    build_spaces,
    check_min_dose_fraction,
    check_mode,
    choose_patients,
)
from .task import EnvParams, make_params


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
    * **Info**: arrays with one row per sub-env — ``day``, ``tumour_cells``, ``state``,
      ``toxicity`` (worst grade in the interval, per category), ``recist`` (code of
      :class:`oncogym.clinical.Response`), ``doses``, ``blocked``, ``death_cause`` (code of
      :data:`oncogym.envs.functional.DEATH_CAUSES`), ``reward_components`` (dict of arrays).

    :param num_envs: number of patients stepped together
    :param task: a task of :func:`oncogym.envs.task.make_params`
    :param max_episode_steps: accepted for ``gymnasium.make_vec``; episodes end at the
        horizon (the registered value equals the default number of intervals)
    :param kwargs: the arguments of :class:`oncogym.envs.OncologyEnv`
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
        check_mode(action_mode, reward, None)
        kwargs: dict[str, Any] = {
            "observation": observation,
            "horizon_days": horizon_days,
            "enforce_constraints": enforce_constraints,
            "reward_weights": reward_weights,
            "rtol": rtol,
            "method": method,
        }
        if decision_days is not None:
            kwargs["decision_days"] = decision_days
        if scan_noise_cv is not None:
            kwargs["scan_noise_cv"] = scan_noise_cv
        self.params: EnvParams = make_params(task, **kwargs)
        self.num_envs = int(num_envs)
        self.action_mode = action_mode
        self.reward_kind = reward
        self.min_dose_fraction = check_min_dose_fraction(min_dose_fraction)
        self.max_episode_steps = max_episode_steps
        self.render_mode = None
        self.single_action_space, self.single_observation_space = build_spaces(
            self.params, action_mode
        )
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.observation_names = tuple(r[0] for r in Fn.observation_layout(self.params))
        self._state = Fn.allocate(self.params, self.num_envs)
        self._args = Fn.StepArgs(self.params, self._state)
        self._rngs: list[np.random.Generator] = [
            seeding.np_random(None)[0] for _ in range(self.num_envs)
        ]
        self._ready = False

    # --- pickling: the compiled kernels' argument tuple holds function pointers ---------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_args", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._args = Fn.StepArgs(self.params, self._state)

    # --- descriptive attributes -------------------------------------------------------------
    @property
    def therapies(self) -> tuple[str, ...]:
        return self.params.therapies

    @property
    def state(self) -> Fn.BatchState:
        return self._state

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
        info = self._infos(np.zeros(n), reset=True)
        return self._state.OBS.copy(), info

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._ready:
            raise RuntimeError("step: call reset() before step()")
        s = self._state
        Fn.action_to_request(
            self.params, actions, self.action_mode, s.REQ, min_dose_fraction=self.min_dose_fraction
        )
        Fn.transition(self.params, s, parallel=True, args=self._args)
        rewards = Fn.reward(self.params, s, self.reward_kind)
        terminated, truncated = Fn.terminal(self.params, s)
        infos = self._infos(rewards, reset=False)
        done = terminated | truncated
        if done.any():
            rows = np.flatnonzero(done)
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in rows:
                final_obs[i] = s.OBS[i].copy()
            infos["final_obs"] = final_obs
            infos["_final_obs"] = done.copy()
            infos["final_info"] = _masked(self._infos(rewards, reset=False), done)
            infos["_final_info"] = done.copy()
            self._reset_rows(rows, None)
            reset_info = self._infos(rewards, reset=True)
            for key in ("day", "tumour_cells", "state", "toxicity", "recist", "doses",
                        "blocked"):  # fmt: skip
                infos[key][rows] = reset_info[key][rows]
        return s.OBS.copy(), rewards, terminated, truncated, infos

    def action_masks(self) -> np.ndarray:
        """Allowed dose levels of the next step, ``(num_envs, sum(n_levels))`` bool."""
        return Fn.action_masks(self.params, self._state).copy()

    # --- internals ---------------------------------------------------------------------------
    def _reset_rows(self, rows: np.ndarray, options: Mapping[str, Any] | None) -> None:
        if len(rows) == 0:
            return
        P, Y0, Z = choose_patients(self.params, [self._rngs[i] for i in rows], options, rows)
        Fn.initial(self.params, self._state, rows, P, Y0, Z, args=self._args)

    def _infos(self, rewards: np.ndarray, *, reset: bool) -> dict[str, Any]:
        s = self._state
        p = self.params
        info: dict[str, Any] = {
            "day": s.F[:, K.F_T].copy(),
            "tumour_cells": s.Y[:, p.tumour_index].sum(axis=1),
            "state": s.Y.copy(),
            "toxicity": s.WSTEP.copy(),
            "recist": s.I[:, K.I_RECIST].copy(),
            "doses": s.DELIV.copy(),
            "blocked": s.BLOCKED.copy(),
        }
        if not reset:
            comps = {n: s.COMP[:, i].copy() for i, n in enumerate(Fn.COMPONENT_NAMES)}
            comps["reward"] = np.asarray(rewards, dtype=np.float64).copy()
            info["reward_components"] = comps
            info["death_cause"] = s.I[:, K.I_CAUSE].copy()
        return info


def _masked(info: dict[str, Any], mask: np.ndarray) -> dict[str, Any]:
    """``info`` with its own ``_key`` masks (Gymnasium's vector info convention)."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        out[key] = _masked(value, mask) if isinstance(value, dict) else value
        out[f"_{key}"] = mask.copy()
    return out
