"""Difficulty and robustness tiers (issue 15, item 1): the ``setting=`` argument of the
environments, the shifted test cohort, and the evaluator and the benchmark in a tier.

``tests/test_recorded.py`` holds ``setting="default"`` to the recorded v1 episodes."""

from __future__ import annotations

import json
import math
import pickle
from typing import ClassVar

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from typer.testing import CliRunner

import oncogym  # noqa: F401  (registers the ids)
from oncogym.agents import benchmark as B
from oncogym.agents import units as U
from oncogym.agents.cli import app
from oncogym.agents.evaluate import rollout
from oncogym.agents.policies import NoTreatment, make_baseline
from oncogym.envs import OncologyEnv, OncologyVectorEnv
from oncogym.envs.settings import (
    LAB_MISSING_PROB,
    PKPD_SD,
    SCAN_MISS_PROB,
    SETTINGS,
    SHIFT,
    VISIT_MISS_PROB,
    Setting,
    training_env_kwargs,
)
from oncogym.scenarios import Cohort, PopulationShift, lesion_slots

TIERS = list(SETTINGS)
OTHERS = [t for t in TIERS if t != "default"]
SHIFTED = [t for t in TIERS if SETTINGS[t].shift is not None]


ASK = ("anti_pd1", "anti_ctla4")


def _episode(setting: str | None, seed: int = 5, task: str = "melanoma", **kwargs):
    """One episode asking every step for the lowest nonzero level of the checkpoint
    inhibitors whenever the constraints allow it (so that a missed visit is the only reason
    for no dose)."""
    extra = {} if setting is None else {"setting": setting}
    env = OncologyEnv(task, **extra, **kwargs)
    obs, info = env.reset(seed=seed)
    out = {"obs": [obs], "reward": [], "terminated": [], "info": [info], "allowed": []}
    col = np.concatenate([[0], np.cumsum(env.params.n_levels)[:-1]])
    ask = np.array([t in ASK for t in env.params.therapies])
    while True:
        mask = env.action_masks()
        allowed = mask[col + 1] & ask
        out["allowed"].append(allowed)
        obs, r, te, tr, info = env.step(allowed.astype(np.int64))
        out["obs"].append(obs)
        out["reward"].append(r)
        out["terminated"].append(te)
        out["info"].append(info)
        if te or tr:
            break
    out["env"] = env
    return out


@pytest.fixture(scope="module")
def episodes():
    return {t: _episode(t) for t in TIERS}


def _comparable(ep):
    return {k: v for k, v in ep.items() if k != "env"}


# --- the default tier ---------------------------------------------------------------------
def test_the_default_setting_is_the_env_without_the_argument(episodes):
    plain = _episode(None)
    assert data_equivalence(_comparable(plain), _comparable(episodes["default"]), exact=True)
    env = OncologyEnv("melanoma")
    assert env.setting == "default" and env.params.setting is SETTINGS["default"]
    assert env.params.scan_sigma == pytest.approx(math.sqrt(math.log1p(0.1**2)))
    assert "missed_visit" not in plain["info"][1]


# --- every tier changes what the env returns ------------------------------------------------
def _doses(ep):
    return np.array([[sum(i["doses"].values())] for i in ep["info"][1:]])[:, 0]


def test_noisy_tier_measures_the_same_patient_with_more_noise(episodes):
    base, noisy = episodes["default"], episodes["noisy"]
    assert np.array_equal(base["info"][0]["state"], noisy["info"][0]["state"])  # same patient
    names = list(noisy["env"].observation_names)
    sld, anc = names.index("scan_sld_mm"), names.index("log10_ANC")
    assert noisy["obs"][0][sld] != base["obs"][0][sld]  # the baseline scan reads otherwise
    assert noisy["obs"][0][anc] == base["obs"][0][anc]  # the labs do not
    # the same standard normals, scaled by the larger sigma
    z_base = base["env"].state.scan_noise
    assert np.array_equal(z_base, noisy["env"].state.scan_noise)
    assert noisy["env"].params.scan_sigma == pytest.approx(math.sqrt(math.log1p(0.3**2)))


def test_irregular_tier_misses_visits_and_moves_scans(episodes):
    ep, base = episodes["irregular"], episodes["default"]
    assert np.array_equal(base["info"][0]["state"], ep["info"][0]["state"])
    missed = np.array([i["missed_visit"] for i in ep["info"][1:]])
    assert ep["info"][0]["missed_visit"] is False
    assert missed.any() and not missed[0]
    doses = _doses(ep)
    allowed = np.array(ep["allowed"]).any(axis=1)
    # a missed visit gives nothing; an attended one gives what the constraints allow
    assert np.all(doses[missed] == 0)
    assert np.all(doses[~missed & allowed] > 0)
    assert not any(ep["info"][k + 1]["blocked"] for k in np.flatnonzero(missed))
    s = ep["env"].state
    assert np.array_equal(s.visit_missed[0, : len(missed)], missed)
    # scans on the scheduled day plus the drawn delay (tested below), the missed ones never
    offset = s.scan_offset[0]
    assert offset[0] == 0.0
    assert set(offset[np.isfinite(offset)]) <= {0.0, 7.0, 14.0}
    assert not np.array_equal(_doses(base), doses)


def test_scans_happen_on_the_delayed_days_and_missed_scans_hold():
    env = OncologyEnv("melanoma", setting="irregular")
    for seed in range(40):  # a patient with a delayed and a missed scan
        env.reset(seed=seed)
        off = env.state.scan_offset[0][:8]
        if np.isinf(off).any() and (off[np.isfinite(off)] > 0).any():
            break
    else:
        pytest.fail("no patient with both a delayed and a missed scan in 40 seeds")
    due = env.params.scan_days + env.state.scan_offset[0]
    scan_days = set()
    while True:
        _, _, te, tr, _ = env.step(np.zeros(3, dtype=np.int64))
        scan_days.add(float(env.state.scan_day[0]))
        if te or tr:
            break
    last = float(env.state.day[0])
    expected = {float(d) for d in due if np.isfinite(d) and d <= last + 1e-9}
    assert scan_days == expected
    missed_days = env.params.scan_days[np.isinf(env.state.scan_offset[0])]
    assert not scan_days & set(missed_days.tolist())


def test_missing_labs_tier_holds_labs_and_flags_them(episodes):
    ep = episodes["missing_labs"]
    names = list(ep["env"].observation_names)
    base_names = list(episodes["default"]["env"].observation_names)
    assert len(names) == len(base_names) + 2 and names[-1] == "day"
    grades = [i for i, n in enumerate(names) if n.startswith("grade_")]
    assert names[grades[-1] + 1 : grades[-1] + 3] == ["observed_ANC", "observed_ALC"]
    assert ep["env"].observation_space.shape == (len(names),)
    obs = np.array(ep["obs"])
    flags = obs[:, [names.index("observed_ANC"), names.index("observed_ALC")]]
    assert flags[0].tolist() == [1.0, 1.0] and (flags == 0).any() and (flags == 1).any()
    anc, alc = names.index("log10_ANC"), names.index("log10_ALC")
    neutro, lympho = names.index("grade_neutropenia"), names.index("grade_lymphopenia")
    p = ep["env"].state.params[0]
    alc_l = p[ep["env"].params.model.param_names.index("alc_volume_l")]
    sn = ep["env"].params.model.state_names
    for k in range(1, len(obs)):
        state = ep["info"][k]["state"]
        true_anc = np.float32(min(math.log10(1 + state[sn.index("ANC")]), 14.0))
        true_alc = np.float32(min(math.log10(1 + state[sn.index("C")] / alc_l), 14.0))
        for col, flag, true, grade in ((anc, 0, true_anc, neutro), (alc, 1, true_alc, lympho)):
            if flags[k, flag] == 0:  # held: the last observed value and grade
                assert obs[k, col] == obs[k - 1, col] and obs[k, grade] == obs[k - 1, grade]
            else:
                assert obs[k, col] == true
    assert episodes["missing_labs"]["info"][0]["state"].tolist() == (
        episodes["default"]["info"][0]["state"].tolist()
    )


def test_pkpd_tier_moves_clearance_and_kill_within_the_patient(episodes):
    ep, base = episodes["pkpd"], episodes["default"]
    env = ep["env"]
    p = env.params
    assert np.array_equal(base["info"][0]["state"], ep["info"][0]["state"])
    names = [p.model.param_names[i] for i in p.drift_index]
    assert names == ["pd1_half_life_d", "ctla4_half_life_d", "muI", "gamma", "d", "KT", "car_kill"]
    s = env.state
    k = int(s.steps[0]) - 1  # the last step's factors are in force
    assert np.allclose(s.params[0, p.drift_index], s.drift_base[0] * s.drift[0, k])
    others = np.setdiff1d(np.arange(len(p.model.param_names)), p.drift_index)
    assert np.array_equal(s.params[0, others], base["env"].state.params[0, others])
    assert not data_equivalence(ep["obs"], base["obs"])


def test_shift_tier_draws_the_same_patient_shifted(episodes):
    base, ep = episodes["default"], episodes["shift"]
    env = ep["env"]
    m = env.params.model
    sn = m.state_names
    tumour = [sn.index(x) for pair in lesion_slots(m) for x in pair]
    y_base, y_shift = base["info"][0]["state"], ep["info"][0]["state"]
    total = y_base[tumour].sum()
    factor = min(SHIFT.burden, max(0.5 * env.params.lethal_cells / total, 1.0))
    assert y_shift[tumour] == pytest.approx(y_base[tumour] * factor)
    assert y_shift[sn.index("C")] == pytest.approx(0.7 * y_base[sn.index("C")])
    assert ep["info"][0]["tumour_cells"] > base["info"][0]["tumour_cells"]
    # population="train": the tier's other knobs on the training distribution
    train = _episode("shift", population="train")
    assert data_equivalence(_comparable(train), _comparable(base), exact=True)
    hard_train = OncologyEnv("melanoma", setting="hard", population="train")
    _, info = hard_train.reset(seed=5)
    assert np.array_equal(info["state"], y_base)


@pytest.mark.parametrize("tier", OTHERS)
def test_every_tier_changes_what_the_env_returns(tier, episodes):
    ep, base = episodes[tier], episodes["default"]
    same_obs = data_equivalence(ep["obs"], base["obs"])
    same_doses = np.array_equal(_doses(ep), _doses(base))
    same_patient = np.array_equal(ep["info"][0]["state"], base["info"][0]["state"])
    assert not (same_obs and same_doses and same_patient)
    assert same_patient == (tier not in SHIFTED)


# --- determinism, spaces ------------------------------------------------------------------
@pytest.mark.parametrize("tier", OTHERS)
def test_same_seed_same_episode_in_every_tier(tier, episodes):
    again = _episode(tier)
    assert data_equivalence(_comparable(again), _comparable(episodes[tier]), exact=True)
    other = _episode(tier, seed=6)
    assert not data_equivalence(other["obs"], episodes[tier]["obs"])
    # pickled mid-episode, the copy continues exactly like the original
    env = OncologyEnv("melanoma", setting=tier)
    env.reset(seed=1)
    env.step(np.array([1, 0, 0]))
    clone = pickle.loads(pickle.dumps(env))
    for a in ([1, 1, 0], [0, 0, 1], [2, 0, 0], [0, 0, 0]):
        assert data_equivalence(env.step(np.array(a)), clone.step(np.array(a)), exact=True)
    # a reset without a seed continues the stream: a new episode, the same again on replay
    replay = pickle.loads(pickle.dumps(env))
    assert data_equivalence(env.reset()[0], replay.reset()[0], exact=True)


@pytest.mark.parametrize("tier", TIERS)
def test_checkers_pass_and_observations_stay_in_bounds(tier, episodes):
    gym_check_env(gym.make("oncogym/Melanoma-v1", setting=tier).unwrapped)
    sb3_check_env(gym.make("oncogym/Melanoma-v1", setting=tier).unwrapped)
    space = episodes[tier]["env"].observation_space
    assert all(space.contains(o) for o in episodes[tier]["obs"])


@pytest.mark.parametrize(
    ("task", "tier"), [("depillis2006", "irregular"), ("kirschner_panetta1998", "missing_labs")]
)
def test_literature_tasks_take_the_model_free_tiers(task, tier):
    env_id = {"depillis2006": "DePillis2006", "kirschner_panetta1998": "KirschnerPanetta1998"}
    env = gym.make(f"oncogym/{env_id[task]}-v1", setting=tier, action_mode="continuous")
    gym_check_env(env.unwrapped)
    env = env.unwrapped
    ep = _episode(tier, task=task, horizon_days=60)
    assert all(ep["env"].observation_space.contains(o) for o in ep["obs"])
    n_labs = len(env.params.lab_names)
    default = OncologyEnv(task)
    assert env.observation_space.shape[0] == default.observation_space.shape[0] + (
        n_labs if tier == "missing_labs" else 0
    )


@pytest.mark.parametrize(
    ("tier", "kwargs"),
    [
        ("irregular", {"horizon_days": 35}),
        ("missing_labs", {"horizon_days": 28, "action_mode": "continuous"}),
        ("hard", {"horizon_days": 42}),
    ],
)
def test_native_vector_env_equals_sync_vector_env_in_a_tier(tier, kwargs):
    n = 4
    native = OncologyVectorEnv(n, "melanoma", setting=tier, **kwargs)
    sync = SyncVectorEnv(
        [lambda: OncologyEnv("melanoma", setting=tier, **kwargs) for _ in range(n)],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )
    assert native.single_observation_space == sync.single_observation_space
    on, info_n = native.reset(seed=3)
    os_, info_s = sync.reset(seed=3)
    assert data_equivalence((on, info_n), (os_, info_s), exact=True)
    native.action_space.seed(0)
    missed = False
    for _ in range(14):
        a = native.action_space.sample()
        out_n, out_s = native.step(a), sync.step(a)
        assert data_equivalence(out_n, out_s, exact=True), sorted(out_s[4])
        assert native.observation_space.contains(out_n[0])
        missed |= bool(out_n[4].get("missed_visit", np.zeros(1)).any())
    assert missed == (tier != "missing_labs")
    venv = gym.make_vec("oncogym/Melanoma-v1", num_envs=2, setting=tier)
    assert venv.unwrapped.setting == tier


def test_interpreted_kernels_give_the_same_episode_in_the_hard_tier():
    """The tier's kernel paths (drift, missed visits, moved scans, held labs) run the same
    with NUMBA_DISABLE_JIT=1 (plain Python): no typing-only behaviour."""
    import os
    import subprocess
    import sys

    code = (
        "import json, numpy as np; from oncogym.envs import OncologyEnv; "
        "env = OncologyEnv('melanoma', setting='hard', horizon_days=126); "
        "env.reset(seed=2); out = []\n"
        "while True:\n"
        "    obs, r, te, tr, info = env.step(np.array([1, 0, 0]))\n"
        "    out.append([*obs.tolist(), r, float(info['missed_visit'])])\n"
        "    if te or tr: break\n"
        "print(json.dumps(out))"
    )
    runs = []
    for disable in ("1", "0"):
        env = {**os.environ, "NUMBA_DISABLE_JIT": disable}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        runs.append(np.array(json.loads(out.stdout)))
    assert runs[0].shape == runs[1].shape and (runs[0][:, -1] == 1).any()
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-9, atol=1e-12)


# --- the draws, over many patients ----------------------------------------------------------
@pytest.fixture(scope="module")
def hard_patients():
    venv = OncologyVectorEnv(400, "melanoma", setting="hard")
    venv.reset(seed=0)
    return venv


def test_tier_draws_have_the_documented_rates(hard_patients):
    s, p = hard_patients.state, hard_patients.params
    assert not s.visit_missed[:, 0].any() and not s.lab_missing[:, 0].any()
    assert s.visit_missed[:, 1:].mean() == pytest.approx(VISIT_MISS_PROB, abs=0.01)
    assert s.lab_missing[:, 1:].mean() == pytest.approx(LAB_MISSING_PROB, abs=0.01)
    follow = s.scan_offset[:, 1:][:, p.scan_days[1:] < p.horizon_days - 30]
    assert np.all(s.scan_offset[:, 0] == 0.0)
    assert np.isinf(follow).mean() == pytest.approx(SCAN_MISS_PROB, abs=0.02)
    taken = follow[np.isfinite(follow)]
    assert [np.mean(taken == d) for d in (0.0, 7.0, 14.0)] == pytest.approx(
        [0.5, 0.3, 0.2], abs=0.03
    )
    logf = np.log(s.drift)
    assert np.all(logf[:, 0] == 0.0)
    assert logf[:, 60:, 0].std() == pytest.approx(PKPD_SD, rel=0.15)  # clearance
    # one clearance factor: a half-life goes down by what IL-2 clearance goes up by
    assert np.allclose(logf[:, :, 0], -logf[:, :, 2])
    assert np.allclose(logf[:, :, 4], logf[:, :, 5])  # one kill factor
    assert not np.allclose(logf[:, 1:, 0], logf[:, 1:, 4])  # two independent factors


def test_tiers_share_their_draws_with_the_same_seed():
    irregular = OncologyVectorEnv(8, "melanoma", setting="irregular")
    hard = OncologyVectorEnv(8, "melanoma", setting="hard")
    default = OncologyVectorEnv(8, "melanoma")
    for venv in (irregular, hard, default):
        venv.reset(seed=42)
    assert np.array_equal(irregular.state.visit_missed, hard.state.visit_missed)
    assert np.array_equal(irregular.state.scan_offset, hard.state.scan_offset)
    assert np.array_equal(irregular.state.scan_noise, default.state.scan_noise)


# --- the shifted population -------------------------------------------------------------------
def test_shifted_test_cohort_differs_in_the_documented_direction():
    base = Cohort.test("melanoma", 200)
    shifted = Cohort.test("melanoma", 200, shift=SHIFT)
    m = base.model
    tumour = [m.state_names.index(x) for pair in lesion_slots(m) for x in pair]
    burden_b, burden_s = base.y0[:, tumour].sum(1), shifted.y0[:, tumour].sum(1)
    assert np.median(burden_s) / np.median(burden_b) == pytest.approx(2.0, rel=0.05)
    assert np.all(burden_s >= burden_b) and np.all(burden_s <= 0.5 * 1e12 + 1)
    pn, sn = m.param_names, m.state_names
    for name in ("infil_1", "infil_2", "infil_3", "infil_4", "alpha"):
        col = pn.index(name)
        assert np.allclose(shifted.params[:, col], 0.7 * base.params[:, col])
    assert np.allclose(shifted.y0[:, sn.index("C")], 0.7 * base.y0[:, sn.index("C")])
    # still eligible under the shifted (higher) hazard: the thresholds rise with it
    thr = pn.index("death_threshold")
    assert np.all(shifted.params[:, thr] >= base.params[:, thr] - 1e-12)
    assert "shift=PopulationShift(burden=2.0" in repr(shifted)
    # the same draws, moved: another draw order would give other patients
    assert np.array_equal(shifted.params[:, pn.index("a")], base.params[:, pn.index("a")])
    # training draws stay unshifted
    assert np.array_equal(Cohort.train("melanoma", 5).y0, Cohort.train("melanoma", 5).y0)
    with pytest.raises(ValueError, match=r"shift\.burden"):
        Cohort.test("melanoma", 5, shift=PopulationShift(burden=0.0))


def test_the_evaluator_tests_a_shifted_tier_on_the_shifted_cohort():
    n = 5
    shifted = rollout(NoTreatment(), "melanoma", n_patients=n, env_kwargs={"setting": "shift"})
    cohort = Cohort.test("melanoma", n, shift=SHIFT)
    again = rollout(NoTreatment(), "melanoma", cohort=cohort, env_kwargs={"setting": "shift"})
    assert data_equivalence(shifted.returns, again.returns, exact=True)
    assert "shift=" in shifted.meta["cohort"] and shifted.meta["setting"] == "shift"
    base = rollout(NoTreatment(), "melanoma", n_patients=n)
    assert np.all(shifted.burden[:, 0] > base.burden[:, 0])

    class Trained(NoTreatment):  # an agent trained on the tier's training population
        env_kwargs: ClassVar[dict] = {"setting": "shift", "population": "train"}

    agent = rollout(Trained(), "melanoma", n_patients=n)
    assert data_equivalence(agent.returns, shifted.returns, exact=True)
    explicit = rollout(
        NoTreatment(), "melanoma", n_patients=n, env_kwargs=training_env_kwargs("shift")
    )
    assert data_equivalence(explicit.returns, base.returns, exact=True)


# --- the evaluator in every tier ------------------------------------------------------------
@pytest.mark.parametrize("tier", TIERS)
def test_rollout_works_in_every_tier(tier):
    policy = make_baseline("nivolumab_ipilimumab", "melanoma")
    res = rollout(policy, "melanoma", n_patients=6, env_kwargs={"setting": tier})
    assert res.meta["setting"] == tier and res.n == 6
    assert np.all(np.isfinite(res.returns)) and res.errors == 0
    if tier == "default":
        plain = rollout(make_baseline("nivolumab_ipilimumab", "melanoma"), "melanoma", n_patients=6)
        assert data_equivalence(res.returns, plain.returns, exact=True)
    if SETTINGS[tier].irregular:
        base = rollout(make_baseline("nivolumab_ipilimumab", "melanoma"), "melanoma", n_patients=6)
        assert (res.doses.sum(axis=2) == 0).sum() > (base.doses.sum(axis=2) == 0).sum()


def test_the_adaptive_rules_and_the_planner_run_in_the_hard_tier():
    for name, kwargs in (
        ("adaptive", {}),
        ("mpc_oracle", {"horizon_steps": 2, "n_samples": 4, "n_iters": 1}),
        ("mpc_population", {"horizon_steps": 2, "n_samples": 4, "n_iters": 1, "n_particles": 4}),
    ):
        policy = make_baseline(name, "melanoma", seed=1, **kwargs)
        res = rollout(policy, "melanoma", n_patients=3, env_kwargs={"setting": "hard"})
        assert np.all(np.isfinite(res.returns)), name


# --- errors -------------------------------------------------------------------------------
def test_bad_tiers_are_named_with_the_allowed_values():
    allowed = "default, noisy, irregular, missing_labs, pkpd, shift, hard"
    with pytest.raises(ValueError, match=f"setting: expected one of {allowed}, got 'easy'"):
        OncologyEnv("melanoma", setting="easy")
    with pytest.raises(ValueError, match="setting: expected one of"):
        OncologyVectorEnv(2, "melanoma", setting=3)
    with pytest.raises(ValueError, match="population: expected None or 'train', got 'test'"):
        OncologyEnv("melanoma", population="test")
    with pytest.raises(ValueError, match=r"'pkpd' .* scenario tasks only.* default, noisy"):
        OncologyEnv("depillis2006", setting="pkpd")
    with pytest.raises(ValueError, match=r"'hard' .*scenario tasks only"):
        OncologyEnv("kirschner_panetta1998", setting="hard")
    with pytest.raises(ValueError, match="setting: expected one of"):
        rollout(NoTreatment(), "melanoma", n_patients=2, env_kwargs={"setting": "easy"})
    with pytest.raises(ValueError, match="visit_miss_prob: expected a number in"):
        Setting("x", "bad", visit_miss_prob=1.0)
    with pytest.raises(ValueError, match="scan_delay_probs: must add up to 1"):
        Setting("x", "bad", scan_delay_probs=(0.5, 0.4))
    with pytest.raises(ValueError, match="setting: expected one of"):
        B.run_benchmark(["melanoma"], "unused", setting="easy")
    result = CliRunner().invoke(app, ["benchmark", "--setting", "easy", "--patients", "2"])
    assert result.exit_code != 0
    assert "setting: expected one of default, noisy" in result.output


# --- the benchmark ------------------------------------------------------------------------
def test_the_setting_is_in_every_unit_key_unless_default(tmp_path):
    default = U.BenchmarkConfig(out_dir=str(tmp_path))
    hard = U.BenchmarkConfig(out_dir=str(tmp_path), setting="hard")
    for unit in (
        B.Unit("eval", "melanoma", "nivolumab"),
        B.Unit("train", "melanoma", "ppo_s0", algo="ppo", seed=0),
        B.Unit("eval", "melanoma", "ppo_s0", algo="ppo", seed=0),
    ):
        assert "setting" not in U.unit_key(unit, default)  # keys from before tiers hold
        assert U.unit_key(unit, hard)["setting"] == "hard"
        assert U.key_difference(U.unit_key(unit, default), U.unit_key(unit, hard)) == (
            'setting: (none) → "hard"'
        )


def test_benchmark_in_a_tier_trains_and_evaluates_in_it(tmp_path):
    kw = dict(
        baselines=["no_treatment"],
        algos=["ppo"],
        seeds=[0],
        timesteps=128,
        n_envs=4,
        n_patients=2,
        setting="hard",
    )
    rows = B.run_benchmark(["melanoma"], tmp_path, **kw)
    assert [r["policy"] for r in rows["melanoma"]] == ["no_treatment", "ppo_s0"]
    run = tmp_path / "melanoma" / "runs" / "ppo_s0"
    config = yaml.safe_load((run / "config.yml").read_text())
    assert config["hyperparams"]["env_kwargs"] == {"setting": "hard", "population": "train"}
    assert json.loads((run / "unit.key.json").read_text())["setting"] == "hard"
    for policy in ("no_treatment", "ppo_s0"):
        with open(tmp_path / "melanoma" / "units" / f"{policy}.pkl", "rb") as fh:
            res = pickle.load(fh)
        assert res.meta["setting"] == "hard" and "shift=" in res.meta["cohort"]
    assert "setting 'hard'" in (tmp_path / "melanoma" / "metrics.md").read_text()
    assert json.loads((tmp_path / "benchmark.json").read_text())["config"]["setting"] == "hard"
    # the same folder in another tier is refused before anything runs
    with pytest.raises(B.StaleResultError, match='setting: "hard" → \\(none\\)'):
        B.run_benchmark(["melanoma"], tmp_path, **{**kw, "setting": "default"})


def test_evaluate_cli_takes_a_setting(tmp_path):
    result = CliRunner().invoke(
        app, ["evaluate", "no_treatment", "--patients", "3", "--setting", "irregular"]
    )
    assert result.exit_code == 0, result.output
    bad = CliRunner().invoke(app, ["evaluate", "no_treatment", "--setting", "easy"])
    assert bad.exit_code != 0 and "setting: expected one of" in bad.output


def test_benchmark_evaluates_its_agents_and_schedule_again_in_each_tier(tmp_path):
    """Issue 15: the benchmark reports scores per tier; the agents as trained and the
    open-loop schedule as searched on the default tier (nothing retrained or re-searched)."""
    kw = dict(
        baselines=["no_treatment", "nivolumab", "open_loop"],
        algos=["ppo"],
        seeds=[0, 1],
        timesteps=128,
        n_envs=4,
        n_patients=4,
        open_loop={"n_trials": 3, "n_patients": 4},
        tiers=["noisy", "missing_labs", "shift"],
    )
    B.run_benchmark(["melanoma"], tmp_path, **kw)
    tiers = tmp_path / "tiers"
    for tier in ("noisy", "missing_labs", "shift"):
        units = tiers / tier / "melanoma" / "units"
        assert (units / "open_loop.pkl").exists() and (units / "nivolumab.pkl").exists()
        assert not (tiers / tier / "melanoma" / "open_loop.json").exists()  # not re-searched
        assert not (tiers / tier / "melanoma" / "runs").exists()  # nothing retrained
        key = json.loads((units / "open_loop.key.json").read_text())
        assert key["setting"] == tier and key["chosen_in"] == "default"
    # an agent trained on the default tier cannot read missing_labs' longer observation
    assert (tiers / "noisy" / "melanoma" / "units" / "ppo_s1.pkl").exists()
    assert not (tiers / "missing_labs" / "melanoma" / "units" / "ppo_s0.pkl").exists()
    key = json.loads((tiers / "shift" / "melanoma" / "units" / "ppo_s0.key.json").read_text())
    assert key["chosen_in"] == "default" and key["timesteps"] == 128

    def score(tier, policy):
        folder = tmp_path if tier == "default" else tiers / tier
        with open(folder / "melanoma" / "units" / f"{policy}.pkl", "rb") as fh:
            return float(np.mean(pickle.load(fh).score_returns))

    summary = json.loads((tmp_path / "tiers.json").read_text())
    mel = summary["per_scenario"]["melanoma"]
    assert summary["tiers"] == ["default", "noisy", "missing_labs", "shift"]
    for tier in summary["tiers"]:
        assert mel[tier]["baselines"]["open_loop"] == pytest.approx(score(tier, "open_loop"))
    # a fixed schedule does not read the scans: noisier scans leave it unchanged; the
    # shifted cohort does not
    assert score("noisy", "open_loop") == score("default", "open_loop")
    assert score("shift", "open_loop") != score("default", "open_loop")
    agents = mel["noisy"]["agents"]["ppo"]
    assert agents["seeds"] == [0, 1]
    mean = np.mean([score("noisy", "ppo_s0"), score("noisy", "ppo_s1")])
    assert agents["score"][0] == pytest.approx(mean)
    assert mel["noisy"]["over_open_loop"]["ppo"][0] == pytest.approx(
        mean - score("noisy", "open_loop")
    )
    assert "ppo" not in mel["missing_labs"]["agents"]
    text = (tmp_path / "tiers.md").read_text()
    assert "Closed loop − open loop" in text and "| ppo (2 seeds) |" in text
    assert "setting 'shift'" in (tiers / "shift" / "melanoma" / "metrics.md").read_text()
    # a rerun computes nothing; other settings are refused before anything runs
    pkl = tiers / "noisy" / "melanoma" / "units" / "ppo_s0.pkl"
    before = pkl.stat().st_mtime_ns
    B.run_benchmark(["melanoma"], tmp_path, **kw)
    assert pkl.stat().st_mtime_ns == before
    with pytest.raises(B.StaleResultError, match="eval_seed"):
        B.run_benchmark(["melanoma"], tmp_path, **{**kw, "eval_seed": 5, "tiers": ["noisy"]})


def test_benchmark_tiers_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="setting: expected one of default, noisy"):
        B.run_benchmark(["melanoma"], tmp_path, baselines=["no_treatment"], tiers=["easy"])
    with pytest.raises(ValueError, match="tiers: 'default' is the benchmark's own setting"):
        B.run_benchmark(["melanoma"], tmp_path, baselines=["no_treatment"], tiers=["default"])
    assert not any(tmp_path.iterdir())  # refused before anything was written
    result = CliRunner().invoke(
        app, ["benchmark", "--tiers", "easy", "-b", "no_treatment", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0 and "setting: expected one of" in result.output


def test_the_v1_protocol_tiers_are_readable_by_agents_trained_on_the_default():
    from oncogym.agents.benchmark import PROTOCOLS, _observation_shape

    tiers = PROTOCOLS["v1"]["tiers"]
    assert set(tiers) == set(SETTINGS) - {"default", "missing_labs", "hard"}
    for task in PROTOCOLS["v1"]["scenarios"]:
        for tier in tiers:
            assert _observation_shape(task, tier) == _observation_shape(task, "default")
