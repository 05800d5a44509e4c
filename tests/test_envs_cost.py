"""The cost signal of constrained RL (issue 15, item 3): ``info["cost"]`` counts the new
grade >= 3 toxicities of each interval, in the single env, the vector env and the SB3
adapter, without changing observations, rewards or terminations."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
import recorded
from numpy.testing import assert_array_equal

import oncogym  # noqa: F401  (registers the ids)
from oncogym.clinical import grade3plus
from oncogym.envs import STANDARD_OF_CARE, OncologyEnv, OncologyVectorEnv, SB3VecEnv

# toxic deaths and several grade >= 3 categories within a few months (test_envs_vector)
TOXIC = ("nsclc", {"enforce_constraints": False, "horizon_days": 140})


def _max_levels(env) -> np.ndarray:
    return env.action_space.nvec - 1


def _episode(env: OncologyEnv, seed: int, action) -> tuple[list[dict], dict]:
    """Infos of one episode (the reset's first) and the last one."""
    _, info = env.reset(seed=seed)
    infos = [info]
    while True:
        _, _, te, tr, info = env.step(action(env))
        infos.append(info)
        if te or tr:
            return infos, info


@pytest.mark.parametrize("task", list(STANDARD_OF_CARE))
def test_no_therapy_costs_nothing(task):
    """Untreated patients of every scenario, for the whole horizon: no grade >= 3 toxicity,
    so no cost (all toxicity in the model is treatment-related)."""
    venv = OncologyVectorEnv(8, task)
    venv.reset(seed=3)
    fn, patients = venv.functional, venv.patients  # one episode each, no autoreset
    zero = np.zeros((8, venv.params.n_therapies), dtype=np.int64)
    total = np.zeros(8)
    for _ in range(venv.params.n_steps):
        total += fn.step(patients, zero).cost
    assert_array_equal(total, 0.0)
    assert venv.state.worst_grade.max() < 3
    assert not patients.severe_onset.any()


@pytest.mark.parametrize(
    ("task", "kwargs", "action"),
    [
        (*TOXIC, _max_levels),
        ("melanoma", {"enforce_constraints": False, "horizon_days": 364}, _max_levels),
        ("lbcl", {"horizon_days": 200}, _max_levels),
        ("melanoma", {"horizon_days": 364}, lambda env: env.action_space.sample()),
    ],
)
def test_episode_costs_count_the_categories_at_grade3(task, kwargs, action):
    """Per step, a category costs 1 exactly when its worst grade goes from < 3 to >= 3;
    per episode, the costs add up to the categories with worst grade >= 3 at the end
    (clinical.grade3plus per category), toxic deaths included."""
    env = OncologyEnv(task, **kwargs)
    env.action_space.seed(0)
    cats = env.params.tox_categories
    events = deaths = 0
    for seed in range(6):
        infos, last = _episode(env, seed, action)
        assert "cost" not in infos[0] and "cost_by_category" not in infos[0]
        for before, after in itertools.pairwise(infos):
            new = {
                c: int(after["worst_toxicity"][c] >= 3 and before["worst_toxicity"][c] < 3)
                for c in cats
            }
            assert after["cost_by_category"] == new
            assert after["cost"] == float(sum(new.values()))
            assert isinstance(after["cost"], float)
        total = sum(i["cost"] for i in infos[1:])
        worst = {c: np.array([last["worst_toxicity"][c]]) for c in cats}
        assert total == sum(int(grade3plus(worst, c)[0]) for c in cats)
        assert all(infos[0]["worst_toxicity"][c] < 3 for c in cats)  # nothing at day 0
        events += total
        deaths += last.get("death_cause") == "toxicity"
    assert events > 0  # the case exercises the cost
    if (task, kwargs) == TOXIC:
        assert deaths > 0


def _episode_costs_vector(venv: OncologyVectorEnv, actions: list[np.ndarray]) -> list[list]:
    """Episode costs per sub-env from the vector env's infos (final_info at a reset)."""
    n = venv.num_envs
    running, done_costs = np.zeros(n), [[] for _ in range(n)]
    for a in actions:
        _, _, te, tr, info = venv.step(a)
        done = te | tr
        has = info.get("_cost", np.zeros(n, dtype=np.bool_))  # absent when all reset
        assert_array_equal(has, ~done)
        cost = np.where(has, info.get("cost", 0.0), 0.0)
        if done.any():
            cost = np.where(done, info["final_info"]["cost"], cost)
        running += cost
        for i in np.flatnonzero(done):
            done_costs[i].append(running[i])
            running[i] = 0.0
    return done_costs


def test_vector_env_and_sb3_adapter_costs_equal_the_single_env():
    """The same seeds give the same episode costs in the single env, the native vector env
    (step infos plus final_info) and the SB3 adapter (every env's infos[i])."""
    task, kwargs = TOXIC
    n, steps = 3, 45  # 20-step episodes: two resets each
    venv = OncologyVectorEnv(n, task, **kwargs)
    venv.reset(seed=7)
    nvec = venv.single_action_space.nvec
    actions = [np.broadcast_to(nvec - 1, (n, len(nvec)))] * steps
    vec = _episode_costs_vector(venv, actions)

    singles = []
    for i in range(n):
        env = OncologyEnv(task, **kwargs)
        env.reset(seed=7 + i)
        costs, running = [], 0.0
        for a in actions:
            _, _, te, tr, info = env.step(a[i])
            running += info["cost"]
            if te or tr:
                costs.append(running)
                running = 0.0
                env.reset()
        singles.append(costs)
    assert vec == singles
    assert sum(map(sum, singles)) > 0

    sb3 = SB3VecEnv(num_envs=n, task=task, **kwargs)
    sb3.seed(7)
    sb3.reset()
    adapter = [[] for _ in range(n)]
    running = np.zeros(n)
    for a in actions:
        _, _, dones, infos = sb3.step(a)
        for i, info in enumerate(infos):
            assert info["cost"] == sum(info["cost_by_category"].values())
            running[i] += info["cost"]
            if dones[i]:
                adapter[i].append(running[i])
                running[i] = 0.0
    assert adapter == singles


def test_costs_are_deterministic_for_a_seed():
    task, kwargs = TOXIC

    def run() -> list[float]:
        venv = OncologyVectorEnv(4, task, **kwargs)
        venv.reset(seed=123)
        rng = np.random.default_rng(0)
        out = []
        for _ in range(30):
            nvec = venv.single_action_space.nvec
            a = rng.integers(0, nvec, size=(4, len(nvec)))
            _, _, _, _, info = venv.step(a)
            out.append(info["cost"].copy())
            if "final_info" in info:
                out.append(info["final_info"]["cost"].copy())
        return out

    first, second = run(), run()
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert_array_equal(a, b)
    assert sum(float(x.sum()) for x in first) > 0


@pytest.mark.parametrize(
    "name",
    [
        "melanoma_max_unconstrained",
        "lbcl_max_unconstrained",
        "melanoma_discrete",
        "nsclc_full_biweekly",
    ],
)
def test_recorded_episodes_unchanged_and_their_costs_follow_the_recorded_grades(name):
    """Replaying episodes recorded before the cost existed: observations, rewards and
    flags equal the recording number for number, and each step's cost is the new
    grade >= 3 categories of the recorded worst grades."""
    env_id, kwargs, kind, seed = recorded.SINGLE_CASES[name]
    with np.load(recorded.PATH) as data:
        rec = {
            k.removeprefix(f"single/{name}/"): data[k]
            for k in data.files
            if k.startswith(f"single/{name}/")
        }
    env = gym.make(env_id, **kwargs)
    rng = np.random.default_rng(1000 + seed)
    obs, _ = env.reset(seed=seed)
    assert_array_equal(obs, rec["obs"][0])
    worst = rec["info_worst_toxicity"]
    t, total = 0, 0.0
    while True:
        obs, r, te, tr, info = env.step(recorded._action(kind, env.action_space, rng))
        t += 1
        assert_array_equal(obs, rec["obs"][t])
        assert (r, te, tr) == (rec["reward"][t], rec["terminated"][t], rec["truncated"][t])
        new = (worst[t] >= 3) & (worst[t - 1] < 3)
        assert list(info["cost_by_category"].values()) == new.astype(int).tolist()
        assert info["cost"] == new.sum()
        total += info["cost"]
        if te or tr:
            break
    assert t == len(rec["reward"]) - 1
    if name.endswith("unconstrained"):
        assert total > 0
