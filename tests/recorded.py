"""Recorded trajectories: the environments, the evaluator and the planner of a past release.

``python tests/recorded.py`` writes ``tests/data/recorded_v1.npz`` from the installed
package; ``tests/test_recorded.py`` replays the same episodes and compares every number.
Only the public API is used (``gymnasium.make``, ``make_vec``, ``SB3VecEnv``,
``oncogym.agents.evaluate.rollout``), so the recording outlives a rewrite of the kernels:
any later change of the implementation must reproduce it step for step, and a change of the
dynamics bumps the env version and records a new file.

Each episode stores the observations, rewards, termination flags, action masks and the
info entries that exist in every release (in therapy / category order), with death causes,
RECIST and best responses as names.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import oncogym  # noqa: F401  (registers the ids)
from oncogym.envs import ENV_IDS

PATH = Path(__file__).parent / "data" / "recorded_v1.npz"

RESPONSES = ("CR", "PR", "SD", "PD", "NE")
CAUSES = ("none", "tumour", "toxicity", "error")
COMPONENTS = (
    "days_alive",
    "qaly",
    "burden_loss",
    "toxicity_loss",
    "treatment_loss",
    "death_penalty",
    "log10_burden_start",
    "log10_burden_end",
    "dose_fraction",
    "reward",
)

SINGLE_CASES: dict[str, tuple[str, dict[str, Any], str, int]] = {}
"""name -> (env id, make kwargs, action kind, seed)."""
for _env_id in ENV_IDS:
    _short = _env_id.split("/")[1].split("-")[0].lower()
    SINGLE_CASES[f"{_short}_discrete"] = (_env_id, {}, "random_levels", 0)
    SINGLE_CASES[f"{_short}_continuous"] = (_env_id, {"action_mode": "continuous"}, "random_box", 1)
SINGLE_CASES["melanoma_max_unconstrained"] = (
    "oncogym/Melanoma-v1",
    {"enforce_constraints": False},
    "max_levels",
    2,
)
SINGLE_CASES["lbcl_max_unconstrained"] = (
    "oncogym/LBCL-v1",
    {"enforce_constraints": False},
    "max_levels",
    3,
)
SINGLE_CASES["nsclc_full_biweekly"] = (
    "oncogym/NSCLC-v1",
    {"observation": "full", "decision_days": 14, "scan_noise_cv": 0.3},
    "random_levels",
    4,
)
for _seed in (6, 7, 8):
    SINGLE_CASES[f"nsclc_untreated_{_seed}"] = ("oncogym/NSCLC-v1", {}, "zeros", _seed)
SINGLE_CASES["prostate_tumor_reduction"] = (
    "oncogym/Prostate-v1",
    {"reward": "tumor_reduction", "horizon_days": 400.0},
    "random_levels",
    5,
)

VECTOR_CASES = {
    "melanoma": ("oncogym/Melanoma-v1", {}, 3, 130),
    "b_all": ("oncogym/BALL-v1", {"action_mode": "continuous"}, 3, 130),
    "depillis2006": ("oncogym/DePillis2006-v1", {}, 2, 170),
}
"""name -> (env id, kwargs, num_envs, steps): long enough for autoresets."""

PLANNER = {
    "horizon_steps": 3,
    "n_samples": 6,
    "n_iters": 2,
    "n_particles": 8,
    "n_plan_particles": 2,
}
EVAL_CASES = {
    "melanoma": (
        "no_treatment",
        "random",
        "nivolumab_ipilimumab",
        "adaptive",
        "mpc_oracle",
        "mpc_population",
    ),
    "lbcl": ("axicabtagene_ciloleucel", "adaptive"),
    "prostate": ("sipuleucel_t_then_docetaxel",),
}
EVAL_PATIENTS = 6


def _action(kind: str, space: gym.Space, rng: np.random.Generator) -> np.ndarray:
    if kind == "random_levels":
        return rng.integers(0, space.nvec)
    if kind == "zeros":
        return np.zeros(space.shape, dtype=space.dtype)
    if kind == "max_levels":
        return space.nvec - 1
    return rng.random(space.shape[0]).astype(np.float32)


def _info_row(info: dict[str, Any], therapies, categories) -> dict[str, Any]:
    blocked = info["blocked"]
    comps = info.get("reward_components")
    return {
        "day": info["day"],
        "tumour_cells": info["tumour_cells"],
        "state": np.asarray(info["state"]),
        "toxicity": [info["toxicity"][c] for c in categories],
        "worst_toxicity": [info["worst_toxicity"][c] for c in categories],
        "recist": RESPONSES.index(info["recist"]),
        "best_response": RESPONSES.index(info["best_response"]),
        "doses": [info["doses"][t] for t in therapies],
        "cumulative_doses": [info["cumulative_doses"][t] for t in therapies],
        "blocked": [t in blocked for t in therapies],
        "components": [np.nan] * len(COMPONENTS)
        if comps is None
        else [comps[c] for c in COMPONENTS],
        "death_cause": CAUSES.index(info.get("death_cause", "none")),
        "death_day": info.get("death_day", np.inf),
    }


def _stack(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    return {k: np.asarray([r[k] for r in rows]) for k in rows[0]}


def single_episode(name: str, extra: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """The episode of case ``name`` (``extra``: more ``gym.make`` arguments)."""
    env_id, kwargs, kind, seed = SINGLE_CASES[name]
    env = gym.make(env_id, **kwargs, **(extra or {}))
    base = env.unwrapped
    therapies, categories = base.params.therapies, base.params.tox_categories
    rng = np.random.default_rng(1000 + seed)
    obs, info = env.reset(seed=seed)
    out: dict[str, list[Any]] = {
        "obs": [obs],
        "reward": [0.0],
        "terminated": [False],
        "truncated": [False],
    }
    rows, masks = [_info_row(info, therapies, categories)], []
    while True:
        masks.append(base.action_masks())
        obs, r, te, tr, info = env.step(_action(kind, env.action_space, rng))
        out["obs"].append(obs)
        out["reward"].append(r)
        out["terminated"].append(te)
        out["truncated"].append(tr)
        rows.append(_info_row(info, therapies, categories))
        if te or tr:
            break
    rec = {k: np.asarray(v) for k, v in out.items()}
    rec["masks"] = np.asarray(masks)
    rec.update({f"info_{k}": v for k, v in _stack(rows).items()})
    return rec


def vector_run(name: str, extra: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """The vector run of case ``name`` (``extra``: more ``gym.make_vec`` arguments)."""
    env_id, kwargs, n, steps = VECTOR_CASES[name]
    venv = gym.make_vec(
        env_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs, **(extra or {})
    )
    rng = np.random.default_rng(77)
    obs, info = venv.reset(seed=11)
    rec: dict[str, list[Any]] = {
        "obs": [obs],
        "reward": [],
        "terminated": [],
        "truncated": [],
        "final_obs": [],
        "day": [info["day"]],
        "masks": [],
    }
    for _ in range(steps):
        rec["masks"].append(venv.action_masks())
        space = venv.single_action_space
        kind = "random_levels" if hasattr(space, "nvec") else "random_box"
        a = np.stack([_action(kind, space, rng) for _ in range(n)])
        obs, r, te, tr, info = venv.step(a)
        rec["obs"].append(obs)
        rec["reward"].append(r)
        rec["terminated"].append(te)
        rec["truncated"].append(tr)
        rec["day"].append(info["day"])
        done = te | tr
        fo = np.zeros_like(obs)
        for i in np.flatnonzero(done):
            fo[i] = info["final_obs"][i]
        rec["final_obs"].append(fo)
    return {k: np.asarray(v) for k, v in rec.items()}


def sb3_run() -> dict[str, np.ndarray]:
    from oncogym.envs import SB3VecEnv

    env = SB3VecEnv(num_envs=2, task="rcc")
    env.seed(21)
    rng = np.random.default_rng(5)
    obs = env.reset()
    rec: dict[str, list[Any]] = {"obs": [obs], "reward": [], "done": [], "terminal_obs": []}
    for _ in range(120):
        obs, r, done, infos = env.step(rng.integers(0, env.action_space.nvec, size=(2, 3)))
        rec["obs"].append(obs)
        rec["reward"].append(r)
        rec["done"].append(done)
        rec["terminal_obs"].append(
            [i.get("terminal_observation", np.zeros_like(obs[0])) for i in infos]
        )
    return {k: np.asarray(v) for k, v in rec.items()}


def evaluation(
    task: str, policy: str, env_kwargs: dict[str, Any] | None = None
) -> dict[str, np.ndarray]:
    from oncogym.agents.evaluate import rollout
    from oncogym.agents.policies import make_baseline

    kwargs = PLANNER if policy.startswith("mpc_") else {}
    res = rollout(
        make_baseline(policy, task, seed=3, **kwargs),
        task,
        n_patients=EVAL_PATIENTS,
        env_kwargs=env_kwargs,
    )
    return {
        "returns": res.returns,
        "qalys": res.qalys,
        "os_days": res.os_days,
        "death": res.death,
        "death_cause": np.array([CAUSES.index(c) for c in res.death_cause]),
        "pfs_days": res.pfs_days,
        "pfs_event": res.pfs_event,
        "best_response": res.best_response,
        "worst_grade": res.worst_grade,
        "doses": res.doses,
        "burden": res.burden,
    }


def record_all() -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in SINGLE_CASES:
        out.update({f"single/{name}/{k}": v for k, v in single_episode(name).items()})
    for name in VECTOR_CASES:
        out.update({f"vector/{name}/{k}": v for k, v in vector_run(name).items()})
    out.update({f"sb3/rcc/{k}": v for k, v in sb3_run().items()})
    for task, policies in EVAL_CASES.items():
        for policy in policies:
            out.update(
                {f"eval/{task}/{policy}/{k}": v for k, v in evaluation(task, policy).items()}
            )
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    data = record_all()
    np.savez_compressed(target, **data)
    print(f"{target}: {len(data)} arrays, {target.stat().st_size / 1e6:.2f} MB")
