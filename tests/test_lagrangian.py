"""Lagrangian PPO (issue 15, item 3): the dual update, the reward penalty, the callback, the
training runs (λ logged, saved and resumed), the budgets of the scenarios and the errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml

pytest.importorskip("stable_baselines3")

from stable_baselines3.common.logger import Logger

from oncogym.agents.config import ConfigError
from oncogym.agents.evaluate import CohortRunner, rollout, summarise
from oncogym.agents.lagrangian import (
    CostPenalty,
    LagrangianCallback,
    check_budget,
    dual_update,
    lambda_at,
)
from oncogym.agents.policies import make_baseline
from oncogym.agents.train import HYPERPARAMS_DIR, load_agent, load_config, train
from oncogym.envs import ENV_IDS, STANDARD_OF_CARE, SB3VecEnv
from oncogym.scenarios import (
    Cohort,
    available_scenarios,
    load_scenario,
    scenario_data,
    validate_scenario,
)

ENV = "oncogym/Melanoma-v1"
# 10-step episodes, so that a 128-step rollout of 4 patients ends about 12 of them
TINY = {
    "n_envs": 4,
    "n_steps": 32,
    "batch_size": 64,
    "n_epochs": 1,
    "env_kwargs.horizon_days": 70,
}
TOXIC = {"task": "nsclc", "enforce_constraints": False, "horizon_days": 140}


def _tiny(run_dir: Path, n_timesteps: int = 384, **kwargs: Any) -> Path:
    over = {**TINY, **kwargs.pop("overrides", {})}
    return train(
        ENV,
        "ppo_lagrangian",
        n_timesteps=n_timesteps,
        run_dir=run_dir,
        overrides=over,
        progress_bar=False,
        checkpoint_freq=kwargs.pop("checkpoint_freq", 0),
        clinical_evals=0,
        tensorboard=False,
        **kwargs,
    )


def _check_updates(updates: list[dict], budget: float, lr: float, lam0: float) -> None:
    """Every logged λ is the dual update of the one before and that rollout's mean cost."""
    lam = lam0
    for row in updates:
        if "validation_cost" in row:  # dual_cost: validation
            lam = dual_update(lam, row["validation_cost"], budget, lr)
        elif row["episodes"]:
            lam = dual_update(lam, row["ep_cost_mean"], budget, lr)
        assert row["lambda"] == pytest.approx(lam, abs=1e-12), row
        lam = row["lambda"]


# --- the dual update ------------------------------------------------------------------------
def test_dual_update_is_projected_gradient_ascent():
    assert dual_update(0.0, 0.8, 0.5, 0.1) == pytest.approx(0.03)  # over budget: up
    assert dual_update(0.2, 0.3, 0.5, 0.1) == pytest.approx(0.18)  # under: down
    assert dual_update(0.01, 0.0, 0.5, 0.1) == 0.0  # never below 0
    assert dual_update(0.4, 0.5, 0.5, 0.1) == 0.4  # on budget: unchanged
    lam = 0.0
    for _ in range(10):  # constant excess: linear rise
        lam = dual_update(lam, 1.0, 0.5, 0.2)
    assert lam == pytest.approx(1.0)
    for _ in range(12):  # constant slack: falls to 0 (clipped) and stays there
        lam = dual_update(lam, 0.0, 0.5, 0.2)
    assert lam == 0.0


def test_lambda_at_takes_the_last_update_before_a_checkpoint():
    hist = [{"timesteps": 128, "lambda": 0.1}, {"timesteps": 256, "lambda": 0.3}]
    assert lambda_at(hist, 100, 0.05) == 0.05
    assert lambda_at(hist, 256, 0.05) == 0.3
    assert lambda_at(hist, 200, 0.05) == 0.1


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, "0.5", True, None])
def test_bad_budgets_are_refused_by_name(bad):
    with pytest.raises(ValueError, match=r"cost_budget: expected a number >= 0"):
        check_budget(bad)


# --- the penalty and the callback ------------------------------------------------------------
def test_cost_penalty_subtracts_lambda_times_cost_and_counts_episode_costs():
    n, lam = 3, 0.7
    raw = SB3VecEnv(num_envs=n, **TOXIC)
    pen = CostPenalty(SB3VecEnv(num_envs=n, **TOXIC), lam=lam)
    raw.seed(4)
    pen.seed(4)
    raw.reset()
    pen.reset()
    nvec = raw.action_space.nvec
    action = np.broadcast_to(nvec - 1, (n, len(nvec)))
    running, ended = np.zeros(n), []
    for _ in range(45):
        _, r_raw, d_raw, i_raw = raw.step(action)
        _, r_pen, d_pen, i_pen = pen.step(action)
        cost = np.array([i["cost"] for i in i_raw])
        np.testing.assert_array_equal(d_pen, d_raw)
        np.testing.assert_allclose(r_pen, r_raw - lam * cost, rtol=0, atol=1e-6)
        assert r_pen.dtype == np.float32
        running += cost
        for i in np.flatnonzero(d_raw):
            ended.append(running[i])
            assert i_pen[i]["episode_cost"] == running[i]
            running[i] = 0.0
    assert pen.pop_episode_costs() == ended and pen.pop_episode_costs() == []
    assert sum(ended) > 0


def test_cost_penalty_needs_costs_in_the_infos():
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    pen = CostPenalty(DummyVecEnv([lambda: gym.make("CartPole-v1")]))
    pen.reset()
    with pytest.raises(ValueError, match="no 'cost'"):
        pen.step(np.zeros(1, dtype=np.int64))
    with pytest.raises(ValueError, match="lam: expected a number >= 0"):
        CostPenalty(DummyVecEnv([lambda: gym.make("CartPole-v1")]), lam=-1.0)


def test_callback_raises_lambda_over_budget_and_lowers_it_to_zero_under(tmp_path):
    pen = CostPenalty(SB3VecEnv(num_envs=2, **TOXIC), lam=0.0)
    cb = LagrangianCallback(pen, cost_budget=0.5, lambda_lr=0.2, run_dir=tmp_path)
    cb.model = SimpleNamespace(logger=Logger(folder=None, output_formats=[]))  # what it reads
    seen = []
    for t, costs in enumerate([[1, 1, 2], [1, 2], [], [0, 0], [0], [0, 1, 0], [0], [0], [0]]):
        pen.episode_costs.extend(map(float, costs))
        cb.num_timesteps = 100 * (t + 1)
        cb.on_rollout_end()
        seen.append(pen.lam)
    # +0.2*(4/3-0.5), +0.2*(1.5-0.5), no episode, -0.1, -0.1, -0.2/6, -0.1 then clipped at 0
    assert seen[0] == pytest.approx(0.2 * (4 / 3 - 0.5))
    assert seen[1] == pytest.approx(seen[0] + 0.2)
    assert seen[2] == seen[1]  # no episode ended: λ kept
    assert seen[3] == pytest.approx(seen[2] - 0.1)
    assert seen[4] == pytest.approx(max(0.0, seen[3] - 0.1))
    assert seen[-3] == pytest.approx(0.1 / 3) and seen[-2] == seen[-1] == 0.0  # clipped
    record = json.loads((tmp_path / "lagrangian.json").read_text())
    assert [r["lambda"] for r in record["updates"]] == seen
    assert record["updates"][2]["ep_cost_mean"] is None and record["updates"][2]["episodes"] == 0
    assert record["cost_budget"] == 0.5 and record["lambda_lr"] == 0.2
    assert cb.summary()["lambda_max"] == max(seen)


def test_callback_on_validation_cost_ignores_the_training_episodes(tmp_path):
    """``dual_cost: validation``: the dual step compares the deterministic policy's cost on
    validation patients with the budget, whatever the exploring training episodes cost."""
    pen = CostPenalty(SB3VecEnv(num_envs=2, **TOXIC), lam=0.0)
    measured = iter([0.9, 0.9, 0.1, 0.0])
    cb = LagrangianCallback(
        pen,
        cost_budget=0.5,
        lambda_lr=1.0,
        run_dir=tmp_path,
        validation_cost=lambda: next(measured),
    )
    cb.model = SimpleNamespace(logger=Logger(folder=None, output_formats=[]))
    seen = []
    for t in range(4):
        pen.episode_costs.extend([2.0, 2.0])  # the training episodes stay far over budget
        cb.num_timesteps = 100 * (t + 1)
        cb.on_rollout_end()
        seen.append(pen.lam)
    assert seen == pytest.approx([0.4, 0.8, 0.4, 0.0])
    record = json.loads((tmp_path / "lagrangian.json").read_text())
    assert [r["validation_cost"] for r in record["updates"]] == [0.9, 0.9, 0.1, 0.0]
    assert [r["ep_cost_mean"] for r in record["updates"]] == [2.0] * 4
    assert cb.summary()["validation_cost_last"] == 0.0


# --- training runs ----------------------------------------------------------------------------
def test_lagrangian_run_on_validation_cost_measures_the_deterministic_policy(tmp_path):
    """The shipped setting: every update evaluates the current policy on the same
    validation patients; λ follows those costs."""
    run = _tiny(tmp_path / "val", cost_budget=0.0, overrides={"lagrangian.dual_patients": 16})
    record = json.loads((run / "lagrangian.json").read_text())
    assert record["dual_cost"] == "validation" and record["dual_patients"] == 16
    updates = record["updates"]
    assert len(updates) == 3
    costs = [r["validation_cost"] for r in updates]
    # events per patient of 16 patients: multiples of 1/16
    assert all(c >= 0 and abs(c * 16 - round(c * 16)) < 1e-9 for c in costs)
    _check_updates(updates, 0.0, 1.0, 0.0)
    log = (run / "logs" / "progress.csv").read_text().splitlines()[0].split(",")
    assert "lagrangian/validation_cost" in log


def test_lagrangian_run_raises_lambda_over_a_zero_budget(tmp_path):
    over = {"lagrangian.lambda_lr": 1.0, "lagrangian.dual_cost": "training"}
    run = _tiny(tmp_path / "zero", cost_budget=0.0, overrides=over)
    record = json.loads((run / "lagrangian.json").read_text())
    updates = record["updates"]
    assert record["dual_cost"] == "training" and "dual_patients" not in record
    assert len(updates) == 3 and all(r["episodes"] > 0 for r in updates)
    assert not any("validation_cost" in r for r in updates)
    _check_updates(updates, 0.0, 1.0, 0.0)
    assert updates[-1]["lambda"] > 0  # some episode had a grade >= 3 event
    meta = json.loads((run / "metadata.json").read_text())
    lag = meta["lagrangian"]
    assert lag["lambda_final"] == updates[-1]["lambda"] and lag["cost_budget"] == 0.0
    assert lag["budget_source"].startswith("cost_budget argument")
    config = yaml.safe_load((run / "config.yml").read_text())
    assert config["algo"] == "ppo_lagrangian"
    assert config["hyperparams"]["lagrangian"]["cost_budget"] == 0.0
    log = (run / "logs" / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"lagrangian/lambda", "lagrangian/ep_cost_mean", "lagrangian/cost_budget"} <= set(log)
    agent = load_agent(run)  # evaluated like any PPO agent, on the default reward
    assert agent.algo == "ppo_lagrangian"
    res = rollout(agent, "melanoma", n_patients=4)
    assert res.n == 4


def test_lagrangian_run_under_a_large_budget_lowers_lambda_to_zero(tmp_path):
    run = _tiny(
        tmp_path / "slack",
        cost_budget=5.0,
        overrides={"lagrangian.lambda_init": 1.0, "lagrangian.lambda_lr": 0.3},
    )
    updates = json.loads((run / "lagrangian.json").read_text())["updates"]
    _check_updates(updates, 5.0, 0.3, 1.0)
    lams = [r["lambda"] for r in updates]
    assert lams == sorted(lams, reverse=True) and lams[-1] == 0.0


def test_default_budget_is_the_scenarios_and_resume_continues_lambda(tmp_path):
    run = _tiny(tmp_path / "run", n_timesteps=256, checkpoint_freq=128)
    first = json.loads((run / "lagrangian.json").read_text())
    budget = load_scenario("melanoma").cost_budget.events
    assert first["cost_budget"] == budget
    assert first["budget_source"] == "scenario melanoma: cost_budget.events"
    train(ENV, "ppo_lagrangian", run_dir=run, resume=True, n_timesteps=512, progress_bar=False)
    record = json.loads((run / "lagrangian.json").read_text())
    updates = record["updates"]
    assert [r["timesteps"] for r in updates] == [128, 256, 384, 512]
    assert updates[:2] == first["updates"]
    _check_updates(updates, budget, 1.0, 0.0)  # the resumed session started from λ(256)
    assert record["budget_source"] == first["budget_source"]
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["lagrangian"]["updates"] == 4
    assert meta["lagrangian"]["lambda_final"] == updates[-1]["lambda"]


# --- configuration and errors -------------------------------------------------------------------
def test_shipped_config_is_ppos_plus_the_lagrangian():
    for env_id in ENV_IDS:
        lag = load_config("ppo_lagrangian", env_id)
        ppo = load_config("ppo", env_id)
        assert lag.model_dump(exclude={"lagrangian"}) == ppo.model_dump(exclude={"lagrangian"})
        assert lag.lagrangian is not None and lag.lagrangian.cost_budget is None
        assert ppo.lagrangian is None
    text = (HYPERPARAMS_DIR / "ppo.yml").read_text()
    assert "lagrangian" not in text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cost_budget": -0.5}, r"cost_budget: expected a number >= 0"),
        ({"cost_budget": math.nan}, r"cost_budget: expected a number >= 0"),
        (
            {"overrides": {"lagrangian.cost_budget": -1}},
            r"lagrangian\.cost_budget: Input should be greater than or equal to 0",
        ),
        (
            {"overrides": {"lagrangian.lambda_lr": 0}},
            r"lagrangian\.lambda_lr: Input should be greater than 0",
        ),
        (
            {"overrides": {"lagrangian.lambda_rate": 0.1}},
            r"unknown key 'lagrangian\.lambda_rate'; allowed keys: cost_budget, dual_cost, "
            r"dual_patients, lambda_init, lambda_lr",
        ),
    ],
)
def test_bad_lagrangian_settings_are_named(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        _tiny(tmp_path / "bad", **kwargs)
    assert not (tmp_path / "bad" / "model.zip").exists()


def test_cost_budget_belongs_to_the_lagrangian_only(tmp_path):
    with pytest.raises(ConfigError, match=r"cost_budget: only a constrained algorithm "):
        train(ENV, "ppo", cost_budget=0.5, run_dir=tmp_path / "a", progress_bar=False)
    with pytest.raises(ConfigError, match=r"lagrangian: only ppo_lagrangian takes this key"):
        train(
            ENV,
            "ppo",
            run_dir=tmp_path / "b",
            overrides={"lagrangian.cost_budget": 0.5},
            progress_bar=False,
        )


def test_a_literature_task_needs_an_explicit_budget(tmp_path):
    with pytest.raises(ConfigError, match=r"cost_budget: depillis2006 is not a scenario"):
        train("oncogym/DePillis2006-v1", "ppo_lagrangian", run_dir=tmp_path, progress_bar=False)


def test_cli_cost_budget_errors(tmp_path):
    from typer.testing import CliRunner

    from oncogym.agents.cli import app

    runner = CliRunner()
    out = runner.invoke(
        app,
        [
            "train",
            "melanoma",
            "--cost-budget",
            "-1",
            "--algo",
            "ppo_lagrangian",
            "--run-dir",
            str(tmp_path / "r"),
        ],
    )
    assert out.exit_code != 0
    assert "--cost-budget: expected a number >= 0" in out.output
    out = runner.invoke(
        app, ["train", "melanoma", "--cost-budget", "0.5", "--run-dir", str(tmp_path / "r")]
    )
    assert out.exit_code != 0
    assert "--cost-budget: only --algo ppo_lagrangian takes a cost budget" in out.output


# --- the budgets ------------------------------------------------------------------------------
def test_every_scenario_has_the_standard_of_cares_budget():
    for sc in available_scenarios():
        budget = load_scenario(sc).cost_budget
        assert budget is not None, sc
        assert budget.protocol == STANDARD_OF_CARE[sc]
        assert 0 < budget.events < 5 and budget.patients >= 1000
        assert "experiments/constrained/budgets.py" in budget.source


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"events": -0.1}, r"cost_budget\.events: Input should be greater than or equal to 0"),
        ({"protocol": "chemo"}, r"cost_budget\.protocol: unknown protocol 'chemo'; allowed: "),
        ({"patient": 3}, r"cost_budget\.patient: unknown key; allowed: events, protocol"),
    ],
)
def test_bad_cost_budget_in_a_scenario_is_named(change, match):
    data = scenario_data("melanoma")
    data["cost_budget"] = {**data["cost_budget"], **change}
    with pytest.raises(ValueError, match=match):
        validate_scenario(data, where="melanoma.yaml")


def test_evaluator_grade3_events_is_the_mean_episode_cost():
    """summarise's grade3_events equals the env cost added up over each episode."""
    cohort = Cohort.train("melanoma", 24, 3)
    policy = make_baseline(STANDARD_OF_CARE["melanoma"], "melanoma")
    res = rollout(policy, "melanoma", cohort=cohort)
    policy = make_baseline(STANDARD_OF_CARE["melanoma"], "melanoma")
    runner = CohortRunner("melanoma", 24, cohort=cohort, action_mode=policy.action_mode)
    policy.attach(runner)
    total = np.zeros(24)
    for _ in range(runner.params.n_steps):
        actions, _ = policy.predict(runner.obs, deterministic=True)
        total += runner.step(np.asarray(actions).reshape(24, -1)).cost
    assert summarise(res)["grade3_events"] == pytest.approx(total.mean(), abs=1e-12)
    assert total.sum() > 0


@pytest.mark.parametrize(
    "scenario",
    [sc if sc == "lbcl" else pytest.param(sc, marks=pytest.mark.slow) for sc in STANDARD_OF_CARE],
)
def test_budget_in_the_yaml_is_what_the_script_measures(scenario):
    """Re-measured as the YAML says (1000 training patients): the stored budget is not stale
    (a recalibration that changes the toxicity must rerun the script)."""
    import importlib.util

    path = Path(__file__).parents[1] / "experiments" / "constrained" / "budgets.py"
    spec = importlib.util.spec_from_file_location("budgets", path)
    budgets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(budgets)
    stored = load_scenario(scenario).cost_budget
    m = budgets.measure(scenario, stored.patients, stored.draw)
    assert f"{m['events']:.3f}" == f"{stored.events:.3f}"
