"""The base of the baseline policies: SB3's ``predict`` over single or batched observations
(see :mod:`oncogym.agents.policies`), shared by :mod:`~oncogym.agents.policies` and
:mod:`~oncogym.agents.openloop`."""

from __future__ import annotations

from typing import Any

import numpy as np

from oncogym.envs.task import EnvParams

_NO_TASK = "attach(env) first: the policy needs the environment's task"


def _batch(observation: Any) -> tuple[np.ndarray, bool]:
    obs = np.asarray(observation, dtype=np.float64)
    if obs.ndim == 1:
        return obs[np.newaxis], True
    if obs.ndim != 2:
        raise ValueError(f"observation: expected (obs_dim,) or (n_envs, obs_dim), got {obs.shape}")
    return obs, False


def _params_of(env: Any) -> EnvParams:
    params = getattr(env, "params", None)
    if params is None:
        params = getattr(getattr(env, "unwrapped", None), "params", None)
    if not isinstance(params, EnvParams):
        raise ValueError(f"env: expected an oncogym environment, got {type(env).__name__}")
    return params


def _state_of(env: Any) -> Any:
    """The env's read-only patient state (:attr:`oncogym.envs.Patients.view`)."""
    state = getattr(env, "state", None)
    if state is None:
        state = getattr(getattr(env, "unwrapped", None), "state", None)
    return state


class Policy:
    """Base class: SB3's ``predict`` over single or batched observations."""

    name = "policy"
    action_mode = "continuous"

    def __init__(self) -> None:
        self.params: EnvParams | None = None
        self.env: Any = None

    def attach(self, env: Any) -> None:
        """Bind to an environment (called by the evaluator after every ``reset``)."""
        self.env = env
        self.params = _params_of(env)

    def _actions(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        raise NotImplementedError

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Actions for ``observation`` (SB3 signature; ``state`` is passed through)."""
        obs, single = _batch(observation)
        actions = self._actions(obs, deterministic)
        return (actions[0] if single else actions), state

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _day_index(obs: np.ndarray, params: EnvParams) -> np.ndarray:
    """Decision step of each row, from the observation's last entry (days since start)."""
    return np.rint(obs[:, -1] / params.decision_days).astype(np.int64)


def protocol_names(task: str) -> list[str]:
    """The protocols of a scenario (those with doses)."""
    from oncogym.scenarios import load_scenario

    return [
        k for k, v in load_scenario(task).protocols.items() if v.doses and not v.calibration_only
    ]
