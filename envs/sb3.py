"""Stable-Baselines3 ``VecEnv`` adapter over the native vector environment.

SB3 does not take a Gymnasium ``VectorEnv``: its ``VecEnv`` has its own API (4-tuple
``step``, same-step reset with ``infos[i]["terminal_observation"]`` and
``infos[i]["TimeLimit.truncated"]``, seeds and options applied at the next ``reset``).
:class:`SB3VecEnv` maps one onto the other without per-env Python work beyond the info
dicts.  Importing this module imports stable_baselines3 (and torch).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from .vector import OncologyVectorEnv


class SB3VecEnv(VecEnv):
    """An :class:`OncologyVectorEnv` as a ``stable_baselines3`` ``VecEnv``.

    :param venv: the vector env, or ``None`` to build one from ``num_envs``, ``task`` and
        ``kwargs`` (the arguments of :class:`oncogym.envs.OncologyEnv`)
    :param num_envs: number of patients (when ``venv`` is None)
    :param task: task name (when ``venv`` is None)

    ``env_method("action_masks")`` returns one mask per env, so sb3-contrib's
    ``MaskablePPO`` works on it.  Rewards are float32, as in SB3's ``DummyVecEnv``.

    Every step's ``infos[i]`` holds ``"cost"`` (float) and ``"cost_by_category"``
    (category → 0 or 1) of the interval env ``i`` just lived — for an env whose episode
    ended, its last interval's (the single env's ``info["cost"]``, see
    :meth:`OncologyFunctional.cost <oncogym.envs.functional.OncologyFunctional.cost>`),
    so that callbacks and wrappers can add costs up per episode as they add rewards.
    """

    def __init__(
        self,
        venv: OncologyVectorEnv | None = None,
        *,
        num_envs: int = 1,
        task: str = "melanoma",
        **kwargs: Any,
    ) -> None:
        if venv is None:
            venv = OncologyVectorEnv(num_envs, task, **kwargs)
        elif kwargs:
            raise ValueError(
                f"SB3VecEnv: give either venv or arguments, not both ({sorted(kwargs)})"
            )
        if not isinstance(venv, OncologyVectorEnv):
            raise ValueError(f"venv: expected an OncologyVectorEnv, got {type(venv).__name__}")
        self.venv = venv
        self._categories = venv.params.tox_categories
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    # --- VecEnv API --------------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = self._options[0] if self._options and self._options[0] else None
        obs, _ = self.venv.reset(seed=seeds, options=options)
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait: call step_async first")
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        self._actions = None
        dones = terminated | truncated
        time_limit = truncated & ~terminated
        # a finished patient's step info is its successor's reset info (no cost): its last
        # interval's cost is in final_info ("cost" is left out when every env resets)
        cats = self._categories
        onset = np.zeros((self.num_envs, len(cats)), dtype=np.int64)
        for j, c in enumerate(cats):
            if "cost_by_category" in info:
                onset[:, j] = info["cost_by_category"][c]
            if dones.any():
                onset[dones, j] = info["final_info"]["cost_by_category"][c][dones]
        cost = onset.sum(axis=1).astype(np.float64).tolist()
        rows = onset.tolist()
        infos: list[dict[str, Any]] = [
            {
                "TimeLimit.truncated": bool(time_limit[i]),
                "cost": cost[i],
                "cost_by_category": dict(zip(cats, rows[i], strict=True)),
            }
            for i in range(self.num_envs)
        ]
        if dones.any():
            final_obs, final = info["final_obs"], info["final_info"]
            died = final.get("_death_cause", np.zeros(self.num_envs, dtype=np.bool_))
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = final_obs[i]
                infos[i]["day"] = float(final["day"][i])
                if died[i]:
                    infos[i]["death_cause"] = final["death_cause"][i]
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self.venv, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if len(list(self._get_indices(indices))) != self.num_envs:
            raise ValueError("set_attr: the native vector env shares attributes; set all envs")
        setattr(self.venv, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        idx = list(self._get_indices(indices))
        if method_name == "action_masks":
            masks = self.venv.action_masks()
            return [masks[i] for i in idx]
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in idx]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]

    def _get_indices(self, indices: VecEnvIndices) -> Iterable[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return indices
