"""The model-predictive planner baseline (issue 5, item 1): agents/planner.py.

Tiny settings (a 12-week horizon, a few patients, short plans) keep these fast; the
full-size comparison with the standard of care is a measurement, not a test.
"""

from __future__ import annotations

import numpy as np
import pytest

from oncogym.agents.planner import MODES, MPCPlanner
from oncogym.envs import OncologyEnv, OncologyVectorEnv
from oncogym.scenarios import Cohort

TASK = "melanoma"
HORIZON = 84.0
N = 4
SMALL = {"horizon_steps": 3, "n_samples": 8, "n_iters": 2, "env_kwargs": {"horizon_days": HORIZON}}


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    return Cohort.test(TASK, N)


def _env(cohort: Cohort) -> tuple[OncologyVectorEnv, np.ndarray]:
    env = OncologyVectorEnv(N, TASK, action_mode="continuous", horizon_days=HORIZON)
    obs, _ = env.reset(seed=7, options={"cohort": cohort})
    return env, obs


def _episode(env, obs, act) -> np.ndarray:
    """First-episode return of each patient under ``act(obs, env) -> actions``."""
    total = np.zeros(env.num_envs)
    done = np.zeros(env.num_envs, dtype=np.bool_)
    while not done.all():
        obs, r, te, tr, _ = env.step(act(obs, env))
        total += np.where(done, 0.0, r)
        done |= te | tr
    return total


def _levels(params, actions: np.ndarray) -> np.ndarray:
    """Dose-level index of each continuous action (which must be a level exactly)."""
    frac = (params.level_table / params.max_level[:, None]).astype(np.float32)
    hit = np.isclose(actions[:, :, None], frac[None], atol=1e-6)
    assert hit.any(axis=2).all(), f"action not on a dose level: {actions}"
    return hit.argmax(axis=2)


def test_oracle_beats_no_treatment(cohort):
    env, obs = _env(cohort)
    none = _episode(env, obs, lambda o, e: np.zeros((N, e.params.n_therapies)))
    env, obs = _env(cohort)
    planner = MPCPlanner(TASK, mode="oracle", **SMALL)
    planner.attach(env)
    assert planner.name == "mpc_oracle"
    oracle = _episode(env, obs, lambda o, e: planner.predict(o)[0])
    assert oracle.mean() > none.mean()
    assert np.all(oracle >= none - 1e-3)


@pytest.mark.parametrize("mode", MODES)
def test_actions_in_range_and_allowed(cohort, mode):
    env, obs = _env(cohort)
    planner = MPCPlanner(TASK, mode=mode, **SMALL)
    planner.attach(env)
    for _ in range(6):
        mask = env.action_masks()
        actions, state = planner.predict(obs)
        assert state is None
        assert actions.shape == (N, env.params.n_therapies)
        assert np.all((actions >= 0) & (actions <= 1))
        assert all(env.single_action_space.contains(a) for a in actions)
        col = np.concatenate([[0], np.cumsum(env.params.n_levels)[:-1]])
        assert np.take_along_axis(mask, col + _levels(env.params, actions), axis=1).all()
        obs, _, _, _, info = env.step(actions)
        assert all(b == () for b in info["blocked"])


def test_population_never_reads_the_true_patient(cohort):
    """A planner that sees garbage in P and Y during every call acts identically."""
    envs = [_env(cohort) for _ in range(2)]
    planners = [MPCPlanner(TASK, mode="population", **SMALL) for _ in range(2)]
    rng = np.random.default_rng(0)

    def hidden(env, call):
        s = env.patients.state  # the kernels' record, writable
        saved = s.params.copy(), s.y.copy()
        s.params[:] *= rng.uniform(0.1, 10.0, s.params.shape)
        s.y[:] = rng.uniform(0.0, 1e12, s.y.shape)
        try:
            return call()
        finally:
            s.params[:], s.y[:] = saved

    planners[0].attach(envs[0][0])
    hidden(envs[1][0], lambda: planners[1].attach(envs[1][0]))
    obs = [envs[0][1], envs[1][1]]
    for _ in range(7):  # the particles step with the requested doses each visit
        a0 = planners[0].predict(obs[0])[0]
        a1 = hidden(envs[1][0], lambda o=obs[1]: planners[1].predict(o)[0])
        np.testing.assert_array_equal(a0, a1)
        obs = [envs[0][0].step(a0)[0], envs[1][0].step(a1)[0]]


def test_oracle_reads_the_true_patient(cohort):
    """Contrast with the test above: the oracle's plan does depend on P."""
    env, obs = _env(cohort)
    planner = MPCPlanner(TASK, mode="oracle", **SMALL)
    planner.attach(env)
    a = planner.predict(obs)[0]
    names = env.params.model.param_names
    env.patients.state.params[:, names.index("a")] *= 3.0  # fast tumours
    env.patients.state.params[:, names.index("pdl1")] *= 30.0  # that PD-1 blockade cannot hold
    planner.attach(env)
    b = planner.predict(obs)[0]
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("mode", MODES)
def test_same_seed_same_actions(cohort, mode):
    runs = []
    for _ in range(2):
        env, obs = _env(cohort)
        planner = MPCPlanner(TASK, mode=mode, seed=3, **SMALL)
        planner.attach(env)
        seq = []
        for _ in range(4):
            a = planner.predict(obs)[0]
            seq.append(a)
            obs = env.step(a)[0]
        runs.append(np.stack(seq))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_single_env_and_new_episodes():
    env = OncologyEnv(TASK, action_mode="continuous", horizon_days=28.0)
    obs, _ = env.reset(seed=1)
    planner = MPCPlanner(TASK, mode="population", replan_every=2, **{**SMALL, "env_kwargs": {}})
    planner.attach(env)
    for _episode_index in range(2):
        done = False
        while not done:
            a, _ = planner.predict(obs)
            assert a.shape == (env.params.n_therapies,) and env.action_space.contains(a)
            obs, _, te, tr, _ = env.step(a)
            done = te or tr
        obs, _ = env.reset(seed=2)
    assert planner._episodes[0] == 2  # the reset started a new particle filter


def test_dead_patient_gets_no_dose(cohort):
    env, obs = _env(cohort)
    planner = MPCPlanner(TASK, mode="oracle", **SMALL)
    planner.attach(env)
    env.patients.state.alive[0] = False
    assert np.all(planner.predict(obs)[0][0] == 0.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"mode: expected one of oracle, population, got 'mcts'"):
        MPCPlanner(TASK, mode="mcts")
    with pytest.raises(ValueError, match="terminal"):
        MPCPlanner(TASK, terminal="bonus")
    with pytest.raises(ValueError, match="horizon_steps"):
        MPCPlanner(TASK, horizon_steps=0)
    with pytest.raises(ValueError, match="n_elite"):
        MPCPlanner(TASK, n_samples=4, n_elite=5)
    with pytest.raises(RuntimeError, match="attach"):
        MPCPlanner(TASK).predict(np.zeros(14))
    with pytest.raises(ValueError, match="task"):
        MPCPlanner(TASK).attach(OncologyEnv("nsclc"))
