"""Gymnasium environments on the oncogym core (installed as ``oncogym.envs``).

``import oncogym`` (or ``import oncogym.envs``) registers the ids of
:data:`~oncogym.envs.registration.ENV_IDS` with Gymnasium::

    import gymnasium as gym
    import oncogym

    env = gym.make("oncogym/Melanoma-v1")                       # one patient
    venv = gym.make_vec("oncogym/Melanoma-v1", num_envs=1024)    # native vector env
    sb3_env = oncogym.envs.SB3VecEnv(num_envs=64, task="melanoma")  # for stable-baselines3

Layout: :mod:`.task` (parameters as data), :mod:`.settings` (the difficulty tiers of the
``setting=`` argument), :mod:`.functional` (``OncologyFunctional``: the
dynamics, observation, reward and info of a task, and the one ``step`` every adapter
calls), :mod:`._kernels` (the compiled step), :mod:`.oncology` (``OncologyEnv``),
:mod:`.vector` (``OncologyVectorEnv``), :mod:`.sb3` (``SB3VecEnv``; imported lazily because
it pulls in torch), :mod:`.render`, :mod:`.registration`.
"""

from __future__ import annotations

from typing import Any

from .functional import OncologyFunctional, Patients
from .oncology import OncologyEnv
from .registration import ENV_IDS, register_envs
from .task import STANDARD_OF_CARE, EnvParams, make_params
from .vector import OncologyVectorEnv

register_envs()


def __getattr__(name: str) -> Any:
    if name == "SB3VecEnv":  # stable_baselines3 imports torch: only when asked for
        from .sb3 import SB3VecEnv

        return SB3VecEnv
    raise AttributeError(f"module 'oncogym.envs' has no attribute {name!r}")


__all__ = [
    "ENV_IDS",
    "STANDARD_OF_CARE",
    "EnvParams",
    "OncologyEnv",
    "OncologyFunctional",
    "OncologyVectorEnv",
    "Patients",
    "SB3VecEnv",
    "make_params",
    "register_envs",
]
