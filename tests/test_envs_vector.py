"""Vector environments: the native batched env, SyncVectorEnv over the single env, the SB3
adapter — same seeds, same trajectories, across resets (issue 4, item 7); training smoke runs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from numpy.testing import assert_array_equal

import oncogym  # noqa: F401  (registers the ids)
from oncogym.envs import OncologyEnv, OncologyVectorEnv, SB3VecEnv
from oncogym.scenarios import Cohort

N_ENVS = 4


def _actions(space: gym.Space, n: int, seed: int) -> list[np.ndarray]:
    space.seed(seed)
    return [space.sample() for _ in range(n)]


@pytest.mark.parametrize(
    ("task", "kwargs"),
    [
        ("melanoma", {"horizon_days": 35}),  # 5 steps: several resets in 14 steps
        ("nsclc", {"horizon_days": 30, "action_mode": "continuous", "observation": "full"}),
        ("depillis2006", {"horizon_days": 6}),
        ("kirschner_panetta1998", {"horizon_days": 21}),
        ("nsclc", {"enforce_constraints": False, "horizon_days": 140}),  # toxic deaths
    ],
)
def test_single_sync_and_native_vector_envs_agree_across_resets(task, kwargs):
    """Same observations, rewards and flags, and the same infos: the native vector env's
    info is the single env's info stacked as SyncVectorEnv stacks it (keys, types, masks,
    final_obs / final_info), to the last bit."""
    native = OncologyVectorEnv(N_ENVS, task, **kwargs)
    sync = SyncVectorEnv(
        [lambda: OncologyEnv(task, **kwargs) for _ in range(N_ENVS)],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )
    singles = [OncologyEnv(task, **kwargs) for _ in range(N_ENVS)]
    max_dose = not kwargs.get("enforce_constraints", True)
    actions = _actions(native.action_space, 14, seed=1)
    if max_dose:
        actions = [np.broadcast_to(native.single_action_space.nvec - 1, a.shape) for a in actions]

    obs_n, info_n = native.reset(seed=11)
    obs_s, info_s = sync.reset(seed=11)
    assert data_equivalence(obs_n, obs_s)
    assert data_equivalence(info_n, info_s, exact=True)
    single_obs = [env.reset(seed=11 + i)[0] for i, env in enumerate(singles)]
    assert data_equivalence(np.stack(single_obs), obs_n)
    resets = 0
    for a in actions:
        on, rn, ten, trn, info_n = native.step(a)
        os_, rs, tes, trs, info_s = sync.step(a)
        assert data_equivalence((on, rn, ten, trn), (os_, rs, tes, trs), exact=True)
        assert data_equivalence(info_n, info_s, exact=True), sorted(info_s)
        for i, env in enumerate(singles):
            o, r, te, tr, _ = env.step(a[i])
            assert r == rn[i] and te == ten[i] and tr == trn[i]
            if te or tr:
                resets += 1
                assert data_equivalence(o, info_n["final_obs"][i])
                assert data_equivalence(info_s["final_obs"][i], info_n["final_obs"][i])
                assert info_n["_final_obs"][i] and info_n["final_info"]["_day"][i]
                o, _ = env.reset()
            assert data_equivalence(o, on[i])
    assert resets >= N_ENVS


def test_make_vec_uses_the_native_vector_env():
    venv = gym.make_vec("oncogym/Melanoma-v1", num_envs=3)
    assert isinstance(venv, OncologyVectorEnv)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert venv.action_space.shape == (3, 3) and venv.observation_space.shape[0] == 3
    obs, _ = venv.reset(seed=0)
    assert venv.observation_space.contains(obs)
    assert venv.action_masks().shape == (3, 8)


def test_cohort_option_and_reset_mask():
    cohort = Cohort.test("rcc", 6)
    venv = OncologyVectorEnv(3, "rcc")
    venv.reset(seed=0, options={"cohort": cohort, "index": 2})
    assert_array_equal(venv.state.y, cohort.y0[2:5])
    venv.step(np.ones((3, 3), dtype=np.int64))
    before = venv.state.y.copy()
    venv.reset(options={"cohort": cohort, "reset_mask": np.array([False, True, False])})
    assert_array_equal(venv.state.y[[0, 2]], before[[0, 2]])
    assert_array_equal(venv.state.y[1], cohort.y0[1])
    with pytest.raises(ValueError, match="reset_mask"):
        venv.reset(options={"reset_mask": [True]})
    with pytest.raises(ValueError, match="action"):
        venv.step(np.full((3, 3), 7))


def test_sb3_vecenv_adapter():
    from stable_baselines3.common.vec_env import VecEnv

    venv = SB3VecEnv(num_envs=N_ENVS, task="melanoma", horizon_days=21)
    assert isinstance(venv, VecEnv)
    native = OncologyVectorEnv(N_ENVS, "melanoma", horizon_days=21)
    venv.seed(5)
    obs = venv.reset()
    obs_n, _ = native.reset(seed=5)
    assert_array_equal(obs, obs_n)
    for t, a in enumerate(_actions(native.action_space, 4, seed=0)):
        obs, rewards, dones, infos = venv.step(a)
        obs_n, r_n, te, tr, info_n = native.step(a)
        assert rewards.dtype == np.float32
        assert_array_equal(rewards, r_n.astype(np.float32))
        assert_array_equal(obs, obs_n)
        assert_array_equal(dones, te | tr)
        for i, info in enumerate(infos):
            assert info["TimeLimit.truncated"] == bool(tr[i] and not te[i])
            if dones[i]:
                assert_array_equal(info["terminal_observation"], info_n["final_obs"][i])
        if t == 2:  # horizon of 21 days: three weekly steps
            assert dones.all()
    masks = np.stack(venv.env_method("action_masks"))
    assert masks.shape == (N_ENVS, 8) and masks.dtype == np.bool_
    assert venv.get_attr("therapies")[0] == ("anti_pd1", "anti_ctla4", "il2")
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * N_ENVS


def test_ppo_smoke_on_single_env_and_sb3_vecenv():
    from stable_baselines3 import PPO

    env = gym.make("oncogym/Melanoma-v1")
    PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu").learn(256)
    venv = SB3VecEnv(num_envs=8, task="melanoma")
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(256)
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert action.shape == (8, 3)


def test_maskable_ppo_smoke():
    sb3_contrib = pytest.importorskip("sb3_contrib")
    env = OncologyEnv("nsclc")
    model = sb3_contrib.MaskablePPO(
        "MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu"
    )
    model.learn(128)
    venv = SB3VecEnv(num_envs=4, task="nsclc")
    model = sb3_contrib.MaskablePPO(
        "MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu"
    )
    model.learn(128)
    obs = venv.reset()
    action, _ = model.predict(obs, action_masks=np.stack(venv.env_method("action_masks")))
    _, _, _, infos = venv.step(action)
    assert all("TimeLimit.truncated" in i for i in infos)
