"""SB3 training: configs, every algorithm's train-and-load, seeds, and resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("stable_baselines3")

from oncogym.agents.config import ConfigError
from oncogym.agents.train import (
    ALGOS,
    HYPERPARAMS_DIR,
    DiscreteActions,
    find_checkpoint,
    index_to_levels,
    load_agent,
    load_config,
    tensorboard_available,
    train,
)
from oncogym.envs import ENV_IDS, OncologyVectorEnv, SB3VecEnv

ENV = "oncogym/Melanoma-v1"

# Tiny budgets: 4 patients, a few hundred steps.
TINY: dict[str, dict[str, Any]] = {
    "ppo": {"n_envs": 4, "n_steps": 32, "batch_size": 64, "n_epochs": 2},
    "a2c": {"n_envs": 4, "n_steps": 8},
    "sac": {
        "n_envs": 4,
        "learning_starts": 64,
        "buffer_size": 2000,
        "batch_size": 32,
        "gradient_steps": 1,
    },
    "td3": {
        "n_envs": 4,
        "learning_starts": 64,
        "buffer_size": 2000,
        "batch_size": 32,
        "gradient_steps": 1,
    },
    "dqn": {"n_envs": 4, "learning_starts": 64, "buffer_size": 2000, "batch_size": 32},
    "recurrent_ppo": {"n_envs": 4, "n_steps": 32, "batch_size": 64, "n_epochs": 2},
    "maskable_ppo": {"n_envs": 4, "n_steps": 32, "batch_size": 64, "n_epochs": 2},
    "ppo_lagrangian": {"n_envs": 4, "n_steps": 32, "batch_size": 64, "n_epochs": 2},
}


def _tiny_train(algo: str, run_dir: Path, n_timesteps: int = 256, **kwargs: Any) -> Path:
    return train(
        ENV,
        algo,
        n_timesteps=n_timesteps,
        run_dir=run_dir,
        overrides={**TINY[algo], **kwargs.pop("overrides", {})},
        progress_bar=False,
        checkpoint_freq=kwargs.pop("checkpoint_freq", 0),
        clinical_evals=kwargs.pop("clinical_evals", 0),
        **kwargs,
    )


# --- configuration -------------------------------------------------------------------------
@pytest.mark.parametrize("algo", list(ALGOS))
@pytest.mark.parametrize("env_id", ["default", *ENV_IDS])
def test_shipped_hyperparams_validate(algo: str, env_id: str) -> None:
    if ALGOS[algo].module == "sb3_contrib":
        pytest.importorskip("sb3_contrib")
    path = HYPERPARAMS_DIR / f"{algo}.yml"
    assert path.exists(), f"missing {path}"
    cfg = load_config(algo, env_id)
    assert cfg.n_envs >= 1 and cfg.n_timesteps >= 1


def test_ppo_scenario_defaults() -> None:
    for env_id in list(ENV_IDS)[:6]:
        cfg = load_config("ppo", env_id)
        hp = cfg.hyperparams()
        assert 16 <= cfg.n_envs <= 64
        assert 0.99 <= hp["gamma"] <= 0.998
        assert cfg.normalize is not None and cfg.normalize.reward and cfg.normalize.obs
        assert (cfg.n_envs * hp["n_steps"]) % hp["batch_size"] == 0


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ({"n_stepz": 64}, "'n_stepz'"),
        ({"normalize": {"obs": True, "rewards": True}}, "'normalize.rewards'"),
        ({"env_kwargs": {"horizon": 100}}, "'horizon'"),
        ({"policy_kwargs": {"net_archh": [8]}}, "'net_archh'"),
        ({"buffer_size": 100}, "'buffer_size'"),  # an off-policy key given to PPO
    ],
)
def test_unknown_keys_are_rejected_by_name(tmp_path: Path, entry: dict, named: str) -> None:
    path = tmp_path / "ppo.yml"
    path.write_text(yaml.safe_dump({"default": {"n_envs": 4}, ENV: entry}))
    with pytest.raises(ConfigError, match="unknown") as err:
        load_config("ppo", ENV, path)
    message = str(err.value)
    assert "\n" not in message
    assert named in message
    assert "allowed keys" in message
    assert str(path) in message


def test_a_file_without_an_entry_for_the_env_is_an_error(tmp_path: Path) -> None:
    """A flat file (or one for other envs only) would otherwise train on built-in defaults."""
    flat = tmp_path / "flat.yml"
    flat.write_text(yaml.safe_dump({"n_steps": 64, "batch_size": 32}))
    with pytest.raises(ConfigError, match="no 'default' or 'oncogym/Melanoma-v1' entry") as err:
        load_config("ppo", ENV, flat)
    assert "'n_steps'" in str(err.value) and str(flat) in str(err.value)
    other = tmp_path / "other.yml"
    other.write_text(yaml.safe_dump({"oncogym/NSCLC-v1": {"n_steps": 64}}))
    with pytest.raises(ConfigError, match="'oncogym/NSCLC-v1'"):
        load_config("ppo", ENV, other)


def test_unknown_key_lists_the_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config("dqn", ENV, {"n_stepz": 64})
    assert "target_update_interval" in str(err.value) and "n_steps" in str(err.value)


def test_wrong_values_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="n_steps"):
        load_config("ppo", ENV, {"n_steps": "many"})
    with pytest.raises(ConfigError, match="learning_rate"):
        load_config("ppo", ENV, {"learning_rate": "cosine_3e-4"})
    with pytest.raises(ConfigError, match="activation_fn"):
        _tiny_train("ppo", tmp_path / "r", overrides={"policy_kwargs": {"activation_fn": "x"}})
    with pytest.raises(ConfigError, match="action_mode"):
        _tiny_train("sac", tmp_path / "s", overrides={"env_kwargs": {"action_mode": "discrete"}})
    with pytest.raises(ConfigError, match="unknown algorithm"):
        train(ENV, "ppo2", run_dir=tmp_path / "p")


def test_overrides_and_merge(tmp_path: Path) -> None:
    path = tmp_path / "a2c.yml"
    path.write_text(yaml.safe_dump({"default": {"n_envs": 8, "gamma": 0.9}, ENV: {"gamma": 0.95}}))
    cfg = load_config("a2c", ENV, path, {"policy_kwargs.net_arch": [16], "n_steps": 4})
    assert cfg.n_envs == 8 and cfg.hyperparams() == {"gamma": 0.95, "n_steps": 4}
    assert cfg.policy_kwargs == {"net_arch": [16]}
    assert load_config("a2c", "oncogym/RCC-v1", path).hyperparams() == {"gamma": 0.9}


def test_discrete_index_wrapper_round_trip() -> None:
    nvec = np.array([3, 3, 2])
    all_levels = index_to_levels(np.arange(18), nvec)
    assert all_levels.shape == (18, 3)
    assert len({tuple(r) for r in all_levels}) == 18
    assert (all_levels < nvec).all()
    venv = DiscreteActions(SB3VecEnv(num_envs=2, task="melanoma"))
    assert venv.action_space.n == 18
    venv.seed(0)
    venv.reset()
    obs, *_ = venv.step(np.array([0, 17]))
    assert obs.shape == (2, venv.observation_space.shape[0])


# --- training and loading ------------------------------------------------------------------
def test_ppo_run_folder_and_agent(tmp_path: Path) -> None:
    run = _tiny_train("ppo", tmp_path / "run", checkpoint_freq=128, seed=3)
    for name in ("config.yml", "command.txt", "metadata.json", "model.zip", "vecnormalize.pkl"):
        assert (run / name).is_file(), name
    config = yaml.safe_load((run / "config.yml").read_text())
    assert config["algo"] == "ppo" and config["env_id"] == ENV and config["seed"] == 3
    assert config["hyperparams"]["n_steps"] == 32
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["num_timesteps"] == 256 and meta["finished"]
    assert meta["wall_time_s"] > 0
    for pkg in ("oncogym", "stable-baselines3", "torch", "gymnasium", "numpy", "numba"):
        assert meta["versions"][pkg], pkg
    assert "revision" in meta["git"] and "dirty" in meta["git"]
    assert find_checkpoint(run, normalize=True, off_policy=False) is not None
    assert (run / "logs" / "progress.csv").is_file()
    if tensorboard_available():
        assert list((run / "logs" / "tensorboard").glob("events.out.tfevents.*"))

    agent = load_agent(run)
    assert agent.name == "ppo" and agent.action_mode == "discrete"
    assert agent.env_kwargs["action_mode"] == "discrete"
    env = OncologyVectorEnv(5, agent.task, **agent.env_kwargs)
    obs, _ = env.reset(seed=0)
    actions, state = agent.predict(obs, deterministic=True)
    assert state is None
    assert actions.shape == (5, 3)
    assert env.action_space.contains(actions.astype(env.action_space.dtype))
    # the saved statistics normalise inside predict: equal to the model on normalised obs
    norm = agent.obs_normalizer.normalize_obs(obs)
    direct, _ = agent.model.predict(norm, deterministic=True)
    np.testing.assert_array_equal(actions, direct)
    single, _ = agent.predict(obs[0], deterministic=True)
    np.testing.assert_array_equal(single, actions[0])


def _check_agent(run: Path, algo: str) -> None:
    agent = load_agent(run)
    assert agent.algo == algo
    assert agent.action_mode == ALGOS[algo].action_mode
    n = 6
    env = OncologyVectorEnv(n, agent.task, **agent.env_kwargs)
    obs, _ = env.reset(seed=1)
    agent.attach(env)
    state, start = None, np.ones(n, dtype=bool)
    for _ in range(5):
        masks = env.action_masks()
        actions, state = agent.predict(obs, state, start, deterministic=True)
        start[:] = False
        assert actions.shape == (n, 3)
        assert env.action_space.contains(np.asarray(actions, dtype=env.action_space.dtype))
        if algo == "maskable_ppo":  # each chosen level is allowed
            offsets = np.concatenate([[0], np.cumsum(env.single_action_space.nvec)[:-1]])
            assert masks[np.arange(n)[:, None], offsets + actions].all()
        if algo == "recurrent_ppo":
            assert state is not None and state[0].shape[-2] == n
        obs, *_ = env.step(actions)


@pytest.mark.parametrize("algo", [a for a in ALGOS if a != "ppo"])
def test_algorithm_trains_and_loads(tmp_path: Path, algo: str) -> None:
    if ALGOS[algo].module == "sb3_contrib":
        pytest.importorskip("sb3_contrib")
    run = _tiny_train(algo, tmp_path / algo, checkpoint_freq=128)
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["num_timesteps"] >= 256
    if algo in ("sac", "td3", "dqn"):  # off-policy checkpoints keep the replay buffer
        assert list((run / "checkpoints").glob("*replay_buffer*.pkl"))
    _check_agent(run, algo)


def _parameters(run: Path) -> list[torch.Tensor]:
    agent = load_agent(run)
    return [p.detach().clone() for p in agent.model.policy.parameters()]


def test_same_seed_same_parameters(tmp_path: Path) -> None:
    a = _parameters(_tiny_train("ppo", tmp_path / "a", seed=7, tensorboard=False))
    b = _parameters(_tiny_train("ppo", tmp_path / "b", seed=7, tensorboard=False))
    c = _parameters(_tiny_train("ppo", tmp_path / "c", seed=8, tensorboard=False))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_clinical_metrics_are_logged_during_training(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import pandas as pd

    with caplog.at_level("INFO", logger="oncogym.agents.train"):
        run = _tiny_train("ppo", tmp_path / "run", n_timesteps=256, clinical_evals=2)
    lines = [r.getMessage() for r in caplog.records if "validation (32 patients)" in r.message]
    assert len(lines) == 2 and "128/256 steps" in lines[0] and "256/256 steps" in lines[1]
    log = pd.read_csv(run / "logs" / "progress.csv")
    rows = log.dropna(subset=["clinical/qalys"])
    assert list(rows["time/total_timesteps"].astype(int)) == [128, 256]
    assert rows["clinical/orr"].between(0, 1).all()
    assert rows["clinical/grade3_any"].between(0, 1).all()
    assert (rows["clinical/qalys"] > 0).all()
    if tensorboard_available():
        assert list((run / "logs" / "tensorboard").rglob("events.out.tfevents.*"))
    with pytest.raises(ConfigError, match="clinical_evals: must be >= 0"):
        _tiny_train("ppo", tmp_path / "bad", clinical_evals=-1)


# --- resume --------------------------------------------------------------------------------
def test_resume_after_kill(tmp_path: Path) -> None:
    run = tmp_path / "run"
    tiny = TINY["ppo"]
    cmd = [
        sys.executable,
        "-m",
        "oncogym.agents.cli",
        "train",
        ENV,
        "--algo",
        "ppo",
        "--seed",
        "1",
        "--run-dir",
        str(run),
        "--timesteps",
        "1000000",
        "--checkpoint-freq",
        "64",
        "--no-tensorboard",
        "--clinical-evals",
        "0",
        *[f"--set={k}={v}" for k, v in tiny.items()],
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if find_checkpoint(run, normalize=True, off_policy=False) is not None:
                time.sleep(0.3)  # let it get a step or two past the checkpoint
                break
            if proc.poll() is not None:
                pytest.fail(f"training exited early: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
        else:
            pytest.fail("no checkpoint within 120 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "model.zip").exists()
    ckpt = find_checkpoint(run, normalize=True, off_policy=False)
    assert ckpt is not None
    ckpt_steps = int(ckpt.stem.split("_")[2])
    assert ckpt_steps >= 64

    rollout = tiny["n_envs"] * tiny["n_steps"]
    target = ckpt_steps + 2 * rollout
    train(
        ENV,
        "ppo",
        run_dir=run,
        resume=True,
        n_timesteps=target,
        progress_bar=False,
        clinical_evals=0,
    )
    meta = json.loads((run / "metadata.json").read_text())
    session = meta["sessions"][-1]
    assert session["start_timesteps"] == ckpt_steps
    assert session["resumed_from"] == f"checkpoints/{ckpt.name}"
    agent = load_agent(run)
    assert agent.model.num_timesteps == target == meta["num_timesteps"]
    assert (run / "command.txt").read_text().count("\n") == 2
    # the resumed session's log continues the count
    log = (run / "logs" / "progress-resume1.csv").read_text().splitlines()
    header = log[0].split(",")
    total = [int(float(row.split(",")[header.index("time/total_timesteps")])) for row in log[1:]]
    assert total[0] == ckpt_steps + rollout and total[-1] == target
    # a finished run resumes to nothing more
    train(
        ENV,
        "ppo",
        run_dir=run,
        resume=True,
        progress_bar=False,
        n_timesteps=target,
        clinical_evals=0,
    )
    assert load_agent(run).model.num_timesteps == target


def test_resume_needs_a_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run_dir"):
        train(ENV, resume=True)
    run = _tiny_train("ppo", tmp_path / "run", n_timesteps=128)
    with pytest.raises(ConfigError, match="already holds a run"):
        _tiny_train("ppo", run, n_timesteps=128)
    with pytest.raises(ConfigError, match="not a2c"):
        train(ENV, "a2c", run_dir=run, resume=True)


def test_cli_train_reports_config_errors(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from oncogym.agents.cli import app

    result = CliRunner().invoke(
        app, ["train", ENV, "--run-dir", str(tmp_path / "r"), "--set", "n_stepz=3"]
    )
    assert result.exit_code == 2
    # one error line, last, naming the key (a log line about numba's threading layer may come
    # first when another test already started numba's OpenMP pool); no traceback
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error:") and "'n_stepz'" in lines[-1]
    assert sum(line.startswith("error:") for line in lines) == 1
    assert "Traceback" not in result.output
