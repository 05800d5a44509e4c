"""Registration of the environment ids with Gymnasium (``oncogym/<Name>-v1``).

Difficulty tiers are an argument of every id, not ids of their own:
``gym.make("oncogym/Melanoma-v1", setting="irregular")`` (:mod:`oncogym.envs.settings`);
the default tier is the registered env unchanged."""

from __future__ import annotations

import math

import gymnasium as gym

ENTRY_POINT = "oncogym.envs.oncology:OncologyEnv"
VECTOR_ENTRY_POINT = "oncogym.envs.vector:OncologyVectorEnv"

# id -> (task, horizon_days, decision_days)
ENV_IDS: dict[str, tuple[str, float, int]] = {
    "oncogym/Melanoma-v1": ("melanoma", 730.0, 7),
    "oncogym/NSCLC-v1": ("nsclc", 730.0, 7),
    "oncogym/RCC-v1": ("rcc", 730.0, 7),
    "oncogym/Prostate-v1": ("prostate", 1460.0, 7),
    "oncogym/BALL-v1": ("b_all", 730.0, 7),
    "oncogym/LBCL-v1": ("lbcl", 730.0, 7),
    "oncogym/DePillis2006-v1": ("depillis2006", 150.0, 1),
    "oncogym/KirschnerPanetta1998-v1": ("kirschner_panetta1998", 730.0, 7),
}
"""Every registered id with its task and default horizon and decision interval.  The
prostate horizon is four years (sipuleucel-T's survival benefit shows after two); the de
Pillis task decides daily over 150 days, as the published control studies of that model."""


def register_envs() -> None:
    """Register every id (idempotent; ``import oncogym`` calls it)."""
    for env_id, (task, horizon, decision) in ENV_IDS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point=ENTRY_POINT,
            vector_entry_point=VECTOR_ENTRY_POINT,
            max_episode_steps=math.ceil(horizon / decision - 1e-9),
            kwargs={"task": task, "horizon_days": horizon, "decision_days": decision},
        )
