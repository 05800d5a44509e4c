"""Training Stable-Baselines3 agents on the oncogym environments, and loading them back.

:func:`train` runs one algorithm on one env id with hyperparameters from
``oncogym/agents/hyperparams/<algo>.yml`` (package data; rl-zoo layout, validated by
:mod:`oncogym.agents.config`) on the native batched vector env
(:class:`oncogym.envs.SB3VecEnv`: ``n_envs`` patients advanced in one compiled call),
with ``VecNormalize`` where configured, TensorBoard logs (when ``tensorboard`` is
installed), a progress bar (when ``tqdm`` and ``rich`` are), checkpoints that
``resume=True`` continues after a crash, and seeds.  :func:`load_agent` returns a policy
with SB3's ``predict`` on raw observations, which the evaluator scores like any baseline.

Algorithms (:data:`ALGOS`):

========================  ===================  =================================================
name                      class                environment
========================  ===================  =================================================
``ppo`` (default)         PPO                  MultiDiscrete dose levels
``a2c``                   A2C                  MultiDiscrete dose levels
``sac``, ``td3``          SAC, TD3             ``action_mode="continuous"`` (Box [0, 1])
``dqn``                   DQN                  Discrete(prod(n_levels)) by :class:`DiscreteActions`
``recurrent_ppo``         sb3-contrib          MultiDiscrete, LSTM policy (``ppo_lstm``; one
                                               LSTM call per sequence in the update:
                                               :mod:`oncogym.agents.recurrent`)
``maskable_ppo``          sb3-contrib          MultiDiscrete with the env's ``action_masks()``
                                               (``ppo_mask``)
``ppo_lagrangian``        PPO + Lagrangian     MultiDiscrete; reward ``r − λ·cost`` (new grade
                                               >= 3 toxicities), λ by dual ascent on a cost
                                               budget (:mod:`oncogym.agents.lagrangian`)
========================  ===================  =================================================

A run folder holds ``config.yml`` (the resolved configuration), ``command.txt`` (one line
per invocation), ``metadata.json`` (package versions, git revision and dirty flag, wall
time, timesteps), ``checkpoints/`` (model, VecNormalize statistics and, off-policy, the
replay buffer), ``logs/`` (CSV and TensorBoard), and at the end ``model.zip`` and
``vecnormalize.pkl`` (when used); a ``ppo_lagrangian`` run also ``lagrangian.json`` (λ after
every rollout) and ``metadata.json["lagrangian"]`` (budget, final λ).

Command line (``oncogym train`` calls this function)::

    oncogym train oncogym/Melanoma-v1 --algo ppo --seed 0 --run-dir runs/m0
    oncogym train oncogym/Melanoma-v1 --run-dir runs/m0 --resume
    oncogym train oncogym/Melanoma-v1 --algo ppo_lagrangian --cost-budget 0.3
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import importlib.util
import json
import logging
import os
import pickle
import platform
import re
import shlex
import subprocess
import sys
import time
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from stable_baselines3.common.logger import Logger, make_output_format
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import (
    VecEnv,
    VecEnvWrapper,
    VecMonitor,
    VecNormalize,
)
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from oncogym.agents._threads import prefer_workqueue_threading
from oncogym.agents.config import (
    ConfigError,
    LagrangianConfig,
    NoiseConfig,
    RunConfig,
    build_policy_kwargs,
    default_policy,
    parse_schedule,
    read_yaml,
    select_entry,
    set_dotted,
    to_yaml_dict,
    validate,
)
from oncogym.agents.lagrangian import (
    CostPenalty,
    LagrangianCallback,
    check_budget,
    find_penalty,
    lambda_at,
    read_record,
    scenario_budget,
)
from oncogym.envs.registration import ENV_IDS, VECTOR_ENTRY_POINT

log = logging.getLogger(__name__)

HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"
"""Where the default ``<algo>.yml`` files are: package data of ``oncogym.agents``, so that a
wheel install trains with the same hyperparameters as a checkout."""

CHECKPOINT_PREFIX = "rl_model"
DEFAULT_CHECKPOINT_FREQ = 100_000
DEFAULT_CLINICAL_EVALS = 10
"""Clinical evaluations on validation patients over a training run (0: none)."""
CLINICAL_EVAL_PATIENTS = 32
"""Validation patients per clinical evaluation."""
VERSION_PACKAGES = (
    "oncogym",
    "stable-baselines3",
    "sb3-contrib",
    "torch",
    "gymnasium",
    "numpy",
    "numba",
)


# --- algorithms ----------------------------------------------------------------------------
@dataclass(frozen=True)
class AlgoSpec:
    """How to train one algorithm on the oncogym envs."""

    module: str
    class_name: str
    action_mode: str
    """``action_mode`` of the env the algorithm needs."""
    discrete_index: bool = False
    """Flatten MultiDiscrete to one Discrete index (:class:`DiscreteActions`)."""
    masked: bool = False
    recurrent: bool = False
    lagrangian: bool = False
    """Constrained: PPO on ``r − λ·cost`` with λ by dual ascent (:mod:`.lagrangian`)."""

    def load_class(self) -> type[BaseAlgorithm]:
        try:
            module = importlib.import_module(self.module)
        except ImportError as err:  # sb3-contrib is optional
            package = (err.name or self.module).split(".")[0].replace("_", "-")
            raise ConfigError(
                f"{self.class_name} needs the {package} package (pip install {package})"
            ) from err
        return getattr(module, self.class_name)  # type: ignore[no-any-return]


ALGOS: dict[str, AlgoSpec] = {
    "ppo": AlgoSpec("stable_baselines3", "PPO", "discrete"),
    "a2c": AlgoSpec("stable_baselines3", "A2C", "discrete"),
    "sac": AlgoSpec("stable_baselines3", "SAC", "continuous"),
    "td3": AlgoSpec("stable_baselines3", "TD3", "continuous"),
    "dqn": AlgoSpec("stable_baselines3", "DQN", "discrete", discrete_index=True),
    "recurrent_ppo": AlgoSpec(
        "oncogym.agents.recurrent", "RecurrentPPO", "discrete", recurrent=True
    ),
    "maskable_ppo": AlgoSpec("sb3_contrib", "MaskablePPO", "discrete", masked=True),
    "ppo_lagrangian": AlgoSpec("stable_baselines3", "PPO", "discrete", lagrangian=True),
}
ALIASES = {"ppo_lstm": "recurrent_ppo", "ppo_mask": "maskable_ppo"}
"""rl-baselines3-zoo's names of the sb3-contrib algorithms."""


def algo_name(algo: str) -> str:
    """The canonical name of ``algo`` (case-insensitive; rl-zoo aliases accepted)."""
    key = str(algo).lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in ALGOS:
        allowed = ", ".join([*ALGOS, *ALIASES])
        raise ConfigError(f"algo: unknown algorithm {algo!r}; allowed: {allowed}")
    return key


# --- environments --------------------------------------------------------------------------
def env_spec_kwargs(env_id: str) -> dict[str, Any]:
    """The registered arguments of ``env_id`` (task, horizon and decision interval)."""
    if env_id not in gym.registry:
        raise ConfigError(f"env_id: unknown id {env_id!r}; allowed: {', '.join(ENV_IDS)}")
    spec = gym.spec(env_id)
    if spec.vector_entry_point != VECTOR_ENTRY_POINT:
        raise ConfigError(f"env_id: {env_id!r} is not an oncogym environment")
    return dict(spec.kwargs)


def evaluator_env_kwargs(env_id: str, env_kwargs: Mapping[str, Any], action_mode: str) -> dict:
    """What an :class:`~oncogym.envs.OncologyVectorEnv` of ``task`` needs to be the training
    env: the registered horizon and interval, the config's arguments and the action mode."""
    kwargs = env_spec_kwargs(env_id)
    kwargs.pop("task")
    kwargs.update(env_kwargs)
    kwargs["action_mode"] = action_mode
    return kwargs


class DiscreteActions(VecEnvWrapper):
    """A MultiDiscrete ``VecEnv`` seen through one ``Discrete(prod(nvec))`` index per env.

    Index ``k`` is the C-order (last therapy fastest) position of the dose-level tuple:
    ``np.unravel_index(k, nvec)``.  DQN needs a single Discrete action; the scenarios have
    at most 24 combinations.
    """

    def __init__(self, venv: VecEnv) -> None:
        space = venv.action_space
        if not isinstance(space, spaces.MultiDiscrete):
            raise ValueError(f"DiscreteActions: expected MultiDiscrete, got {space}")
        self.nvec = np.asarray(space.nvec, dtype=np.int64)
        super().__init__(venv, action_space=spaces.Discrete(int(np.prod(self.nvec))))

    def reset(self) -> Any:
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self.venv.step_async(index_to_levels(actions, self.nvec))

    def step_wait(self) -> VecEnvStepReturn:
        return self.venv.step_wait()


def index_to_levels(index: Any, nvec: np.ndarray) -> np.ndarray:
    """Discrete indices ``(n,)`` → dose levels ``(n, len(nvec))`` (a scalar → ``(len,)``)."""
    idx = np.asarray(index, dtype=np.int64)
    levels = np.stack(np.unravel_index(idx.reshape(-1), tuple(nvec)), axis=-1)
    return levels.reshape(*idx.shape, len(nvec)) if idx.ndim else levels[0]


def make_vec_env(
    env_id: str,
    spec: AlgoSpec,
    config: RunConfig,
    *,
    gamma: float,
) -> VecEnv:
    """The training ``VecEnv``: SB3VecEnv → (DiscreteActions) → VecMonitor → (CostPenalty,
    Lagrangian algorithms: ``r − λ·cost``) → (VecNormalize).  VecMonitor sees the reward
    before the penalty, so ``rollout/ep_rew_mean`` stays the QALY return."""
    from oncogym.envs import SB3VecEnv

    kwargs = evaluator_env_kwargs(env_id, config.env_kwargs, spec.action_mode)
    kwargs["task"] = env_spec_kwargs(env_id)["task"]
    venv: VecEnv = SB3VecEnv(num_envs=config.n_envs, **kwargs)
    if spec.discrete_index:
        venv = DiscreteActions(venv)
    venv = VecMonitor(venv)
    if spec.lagrangian:
        lag = config.lagrangian
        venv = CostPenalty(venv, lam=lag.lambda_init if lag is not None else 0.0)
    if config.normalize is not None:
        n = config.normalize
        venv = VecNormalize(
            venv,
            norm_obs=n.obs,
            norm_reward=n.reward,
            clip_obs=n.clip_obs,
            clip_reward=n.clip_reward,
            gamma=gamma,
        )
    return venv


# --- configuration -------------------------------------------------------------------------
def load_config(
    algo: str,
    env_id: str,
    config: str | Path | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RunConfig:
    """The validated configuration of ``algo`` on ``env_id``.

    :param config: a YAML file keyed by env id (default
        ``oncogym/agents/hyperparams/<algo>.yml``, shipped with the package),
        or an already selected entry (a mapping of keys)
    :param overrides: keys laid over the entry; dotted keys reach into mappings
        (``{"policy_kwargs.net_arch": [32, 32]}``)
    """
    name = algo_name(algo)
    spec = ALGOS[name]
    if isinstance(config, Mapping):
        entry, where = dict(config), "config"
    else:
        path = Path(config) if config is not None else HYPERPARAMS_DIR / f"{name}.yml"
        if config is None and not path.exists():
            raise FileNotFoundError(
                f"config: the default hyperparameters of {name} ({path}) are missing from the "
                "installed package; reinstall oncogym or pass --config"
            )
        else:
            entry = select_entry(read_yaml(path), env_id, str(path))
            where = f"{path} [{env_id}]"
    for key, value in (overrides or {}).items():
        set_dotted(entry, key, value)
    return validate(spec.load_class(), entry, where)


def algorithm_kwargs(spec: AlgoSpec, config: RunConfig, n_actions: int) -> dict[str, Any]:
    """The constructor arguments of the config, YAML forms turned into objects."""
    kwargs = config.hyperparams()
    for key in ("learning_rate", "clip_range", "clip_range_vf"):
        if isinstance(kwargs.get(key), str):
            kwargs[key] = parse_schedule(kwargs[key])
    if "train_freq" in kwargs and isinstance(kwargs["train_freq"], list):
        kwargs["train_freq"] = tuple(kwargs["train_freq"])
    noise = kwargs.get("action_noise")
    if isinstance(noise, NoiseConfig):
        mean, sigma = np.zeros(n_actions), noise.sigma * np.ones(n_actions)
        kwargs["action_noise"] = (
            NormalActionNoise(mean, sigma)
            if noise.kind == "normal"
            else OrnsteinUhlenbeckActionNoise(mean, sigma)
        )
    return kwargs


# --- run folder ----------------------------------------------------------------------------
def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSION_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_revision(path: Path | None = None) -> dict[str, Any]:
    """``{"revision": HEAD, "dirty": bool}`` of the source tree (``None`` outside git)."""
    cwd = path or Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return {"revision": None, "dirty": None}
    if head.returncode != 0:
        return {"revision": None, "dirty": None}
    return {"revision": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def default_run_dir(algo: str, env_id: str, seed: int) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    env_name = env_id.split("/")[-1]
    return Path("runs") / algo / f"{env_name}-seed{seed}-{stamp}"


_CKPT = re.compile(rf"^{CHECKPOINT_PREFIX}_(\d+)_steps\.zip$")


def find_checkpoint(run_dir: Path, *, normalize: bool, off_policy: bool) -> Path | None:
    """The newest complete checkpoint (model, and VecNormalize / replay buffer if used).

    A checkpoint cut short by a crash (a missing companion file or an unreadable zip) is
    skipped in favour of the one before.
    """
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return None
    found = sorted(
        ((int(m.group(1)), p) for p in folder.iterdir() if (m := _CKPT.match(p.name))),
        reverse=True,
    )
    for steps, path in found:
        if normalize and not checkpoint_file(run_dir, "vecnormalize", steps).exists():
            continue
        if off_policy and not checkpoint_file(run_dir, "replay_buffer", steps).exists():
            continue
        try:
            with zipfile.ZipFile(path) as z:
                if z.testzip() is not None:
                    continue
        except (zipfile.BadZipFile, OSError):
            continue
        return path
    return None


def checkpoint_file(run_dir: Path, kind: str, steps: int) -> Path:
    """``CheckpointCallback``'s name of the VecNormalize / replay-buffer file at ``steps``."""
    return run_dir / "checkpoints" / f"{CHECKPOINT_PREFIX}_{kind}_{steps}_steps.pkl"


def _steps_of(path: Path) -> int:
    m = _CKPT.match(path.name)
    assert m is not None
    return int(m.group(1))


def _progress_bar_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("tqdm", "rich"))


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def _make_logger(run_dir: Path, session: int, *, tensorboard: bool, verbose: int) -> Logger:
    folder = run_dir / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    suffix = "" if session == 0 else f"-resume{session}"
    formats = [make_output_format("csv", str(folder), suffix)]
    if tensorboard:
        formats.append(make_output_format("tensorboard", str(folder / "tensorboard"), suffix))
    if verbose:
        formats.append(make_output_format("stdout", str(folder), suffix))
    return Logger(folder=str(folder), output_formats=formats)


# --- training ------------------------------------------------------------------------------
def train(
    env_id: str,
    algo: str = "ppo",
    *,
    seed: int = 0,
    n_timesteps: int | None = None,
    run_dir: str | Path | None = None,
    config: str | Path | Mapping[str, Any] | None = None,
    resume: bool = False,
    progress_bar: bool = True,
    n_envs: int | None = None,
    checkpoint_freq: int = DEFAULT_CHECKPOINT_FREQ,
    tensorboard: bool = True,
    overrides: Mapping[str, Any] | None = None,
    torch_threads: int | None = 1,
    clinical_evals: int = DEFAULT_CLINICAL_EVALS,
    cost_budget: float | None = None,
) -> Path:
    """Train ``algo`` on ``env_id``; return the run folder.

    :param env_id: an oncogym id, e.g. ``"oncogym/Melanoma-v1"``
    :param algo: a name of :data:`ALGOS` (or an rl-zoo alias)
    :param seed: seeds Python, NumPy, torch, the action space and the patients
        (sub-env ``i`` gets ``seed + i``)
    :param n_timesteps: total environment steps (default: the config's); with ``resume``,
        a larger value extends a finished run
    :param run_dir: the run folder (default ``runs/<algo>/<Env>-seed<seed>-<time>``);
        required with ``resume``
    :param config: hyperparameter YAML (default ``oncogym/agents/hyperparams/<algo>.yml``) or
        an entry as a mapping; ignored with ``resume`` (the run's ``config.yml`` is used)
    :param resume: continue the run in ``run_dir`` from its newest complete checkpoint (or
        its final model), keeping the timestep count (``reset_num_timesteps=False``)
    :param progress_bar: show SB3's progress bar (skipped when tqdm or rich is missing)
    :param n_envs: patients stepped together (default: the config's)
    :param checkpoint_freq: save a checkpoint every this many environment steps (summed
        over envs; rounded to whole vector steps); 0 disables checkpoints
    :param tensorboard: write TensorBoard logs (skipped when tensorboard is missing)
    :param clinical_evals: clinical evaluations of the current policy on validation
        patients over the run (:class:`ClinicalEvalCallback`: QALYs, ORR, grade >= 3 rate
        … in the logs and TensorBoard, and a progress line each); 0 disables them
    :param overrides: config keys laid over the file's entry (dotted keys reach inside)
    :param cost_budget: ``ppo_lagrangian`` only: new grade >= 3 toxicities allowed per
        patient-episode (a number >= 0; the config's ``lagrangian.cost_budget``); default:
        the config's, else the scenario's ``cost_budget.events`` (its standard of care's).
        The resolved budget is written into the run's ``config.yml``
    :param torch_threads: torch's intra-op threads while training (restored afterwards;
        ``None`` leaves torch's setting).  One is the default: the policies are small MLPs,
        and torch's thread pool spinning beside the env's parallel Numba kernel
        oversubscribes the cores (a 256-step PPO run took 7 s with two threads on two
        cores, 0.35 s with one)
    """
    import torch

    t_start = time.perf_counter()
    name = algo_name(algo)
    if cost_budget is not None:
        if not ALGOS[name].lagrangian:
            lagrangians = ", ".join(a for a, s in ALGOS.items() if s.lagrangian)
            raise ConfigError(
                f"cost_budget: only a constrained algorithm ({lagrangians}) takes a cost "
                f"budget, not {name}"
            )
        if resume:
            raise ConfigError(
                "cost_budget: a resumed run keeps the budget of its config.yml; leave it out"
            )
        try:
            cost_budget = check_budget(cost_budget)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    if resume:
        if run_dir is None:
            raise ConfigError("resume: give the run_dir of the run to continue")
        run_dir = Path(run_dir)
        saved = read_yaml(run_dir / "config.yml")
        if saved.get("env_id") != env_id or algo_name(saved.get("algo", "")) != name:
            raise ConfigError(
                f"resume: {run_dir} is a {saved.get('algo')} run on {saved.get('env_id')}, "
                f"not {name} on {env_id}"
            )
        seed = int(saved.get("seed", seed))
        entry = dict(saved.get("hyperparams") or {})
        if n_timesteps is not None:
            entry["n_timesteps"] = n_timesteps
        cfg = validate(ALGOS[name].load_class(), entry, f"{run_dir / 'config.yml'}")
    else:
        over = dict(overrides or {})
        if cost_budget is not None:
            over["lagrangian.cost_budget"] = cost_budget
        if n_envs is not None:
            over["n_envs"] = n_envs
        if n_timesteps is not None:
            over["n_timesteps"] = n_timesteps
        cfg = load_config(name, env_id, config, over)
        run_dir = Path(run_dir) if run_dir is not None else default_run_dir(name, env_id, seed)
        if (run_dir / "config.yml").exists():
            raise ConfigError(
                f"run_dir: {run_dir} already holds a run; continue it with --resume "
                "(resume=True), or choose another folder"
            )
    spec = ALGOS[name]
    env_kwargs = cfg.env_kwargs
    if env_kwargs.get("action_mode", spec.action_mode) != spec.action_mode:
        raise ConfigError(
            f"env_kwargs.action_mode: {name} needs action_mode={spec.action_mode!r}, "
            f"got {env_kwargs['action_mode']!r}"
        )
    if int(clinical_evals) < 0:
        raise ConfigError(f"clinical_evals: must be >= 0, got {clinical_evals}")
    budget_source = None
    if cfg.lagrangian is not None and not spec.lagrangian:
        lagrangians = ", ".join(a for a, s in ALGOS.items() if s.lagrangian)
        raise ConfigError(f"lagrangian: only {lagrangians} takes this key, not {name}")
    if spec.lagrangian:
        lag = cfg.lagrangian or LagrangianConfig()
        budget_source = "config"
        if lag.cost_budget is None:
            task = env_spec_kwargs(env_id)["task"]
            try:
                events = scenario_budget(task)
            except ValueError as err:
                raise ConfigError(str(err)) from None
            lag = lag.model_copy(update={"cost_budget": events})
            budget_source = f"scenario {task}: cost_budget.events"
        elif cost_budget is not None:
            budget_source = "cost_budget argument (--cost-budget)"
        if resume:
            budget_source = None  # the first session's, from the run's lagrangian.json
        cfg = cfg.model_copy(update={"lagrangian": lag})
    env_spec_kwargs(env_id)  # fail early on an unknown id
    build_policy_kwargs(cfg.policy_kwargs)  # ... and on an unknown activation or optimizer
    run_dir.mkdir(parents=True, exist_ok=True)
    threads_before = torch.get_num_threads()
    if torch_threads is not None:
        torch.set_num_threads(int(torch_threads))
    prefer_workqueue_threading()
    try:
        return _train(
            env_id,
            name,
            cfg,
            run_dir,
            seed=seed,
            resume=resume,
            progress_bar=progress_bar,
            checkpoint_freq=checkpoint_freq,
            tensorboard=tensorboard,
            clinical_evals=int(clinical_evals),
            t_start=t_start,
            budget_source=budget_source,
        )
    finally:
        torch.set_num_threads(threads_before)


def _train(
    env_id: str,
    name: str,
    cfg: RunConfig,
    run_dir: Path,
    *,
    seed: int,
    resume: bool,
    progress_bar: bool,
    checkpoint_freq: int,
    tensorboard: bool,
    clinical_evals: int,
    t_start: float,
    budget_source: str | None = None,
) -> Path:
    import torch

    spec = ALGOS[name]
    algo_class = spec.load_class()
    policy_kwargs = build_policy_kwargs(cfg.policy_kwargs)

    # the record of the run
    meta_path = run_dir / "metadata.json"
    meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    with (run_dir / "command.txt").open("a") as f:
        f.write(shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])) + "\n")
    if not resume:
        resolved = {
            "algo": name,
            "env_id": env_id,
            "seed": seed,
            "hyperparams": to_yaml_dict(cfg),
        }
        (run_dir / "config.yml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    sessions: list[dict[str, Any]] = meta.setdefault("sessions", [])
    meta.update(
        {
            "algo": name,
            "algo_class": f"{algo_class.__module__}.{algo_class.__name__}",
            "env_id": env_id,
            "seed": seed,
            "n_envs": cfg.n_envs,
            "n_timesteps": cfg.n_timesteps,
            "finished": False,
            "versions": package_versions(),
            "git": git_revision(),
            "torch_threads": torch.get_num_threads(),
        }
    )

    # environment and model
    gamma = float(cfg.hyperparams().get("gamma", _default_arg(algo_class, "gamma", 0.99)))
    normalize = cfg.normalize is not None
    off_policy = issubclass(algo_class, OffPolicyAlgorithm)
    set_random_seed(seed)
    source: Path | None = None
    if resume:
        source = find_checkpoint(run_dir, normalize=normalize, off_policy=off_policy)
        final = run_dir / "model.zip"
        if meta.get("finished_timesteps") and final.exists():
            if source is None or meta["finished_timesteps"] >= _steps_of(source):
                source = final
        if source is None:
            raise ConfigError(f"resume: {run_dir} has no complete checkpoint to resume from")
    venv = make_vec_env(env_id, spec, cfg, gamma=gamma)
    if source is not None and normalize:
        stats = (
            run_dir / "vecnormalize.pkl"
            if source.name == "model.zip"
            else checkpoint_file(run_dir, "vecnormalize", _steps_of(source))
        )
        venv = VecNormalize.load(str(stats), venv.venv)  # type: ignore[attr-defined]
        venv.training = True
    tb = tensorboard and tensorboard_available()
    if tensorboard and not tb:
        log.info("tensorboard is not installed: no TensorBoard logs")
    if source is None:
        model = algo_class(
            cfg.policy or default_policy(algo_class),
            venv,
            seed=seed,
            policy_kwargs=policy_kwargs,
            **_model_kwargs(spec, cfg, venv),
        )
    else:
        model = algo_class.load(str(source), env=venv, device="cpu")
        if off_policy and source.name != "model.zip":
            model.load_replay_buffer(  # type: ignore[attr-defined]
                str(checkpoint_file(run_dir, "replay_buffer", _steps_of(source)))
            )
        elif off_policy and (run_dir / "replay_buffer.pkl").exists():
            model.load_replay_buffer(str(run_dir / "replay_buffer.pkl"))  # type: ignore[attr-defined]
        # new random streams for the continuation (the generators' states are not saved)
        model.set_random_seed(seed + model.num_timesteps)
        log.info("resuming %s from %s at %d timesteps", run_dir, source, model.num_timesteps)
    verbose = int(cfg.hyperparams().get("verbose", 0) or 0)
    model.set_logger(_make_logger(run_dir, len(sessions), tensorboard=tb, verbose=verbose))

    callbacks = []
    if checkpoint_freq > 0:
        callbacks.append(
            CheckpointCallback(
                save_freq=max(int(checkpoint_freq) // cfg.n_envs, 1),
                save_path=str(run_dir / "checkpoints"),
                name_prefix=CHECKPOINT_PREFIX,
                save_replay_buffer=off_policy,
                save_vecnormalize=normalize,
            )
        )
    if clinical_evals > 0:
        nvec = None
        inner: Any = venv
        while inner is not None and nvec is None:
            nvec = getattr(inner, "nvec", None) if isinstance(inner, DiscreteActions) else None
            inner = getattr(inner, "venv", None)
        callbacks.append(
            ClinicalEvalCallback(
                env_id=env_id,
                algo=name,
                env_kwargs=evaluator_env_kwargs(env_id, cfg.env_kwargs, spec.action_mode),
                eval_freq=max(cfg.n_timesteps // clinical_evals, cfg.n_envs),
                total_timesteps=cfg.n_timesteps,
                nvec=nvec,
            )
        )
    lagrangian = None
    if spec.lagrangian:
        lag = cfg.lagrangian
        assert lag is not None and lag.cost_budget is not None
        penalty = find_penalty(venv)
        record = read_record(run_dir) if source is not None else {}
        history = [r for r in record.get("updates", []) if r["timesteps"] <= model.num_timesteps]
        penalty.lam = lambda_at(history, model.num_timesteps, lag.lambda_init)
        validation_cost = None
        if lag.dual_cost == "validation":
            validation_cost = _validation_cost(
                model,
                env_id=env_id,
                algo=name,
                env_kwargs=evaluator_env_kwargs(env_id, cfg.env_kwargs, spec.action_mode),
                n_patients=lag.dual_patients,
            )
        lagrangian = LagrangianCallback(
            penalty,
            cost_budget=lag.cost_budget,
            lambda_lr=lag.lambda_lr,
            run_dir=run_dir,
            history=history,
            settings={
                "budget_source": budget_source or record.get("budget_source"),
                "lambda_init": lag.lambda_init,
                "dual_cost": lag.dual_cost,
                **({"dual_patients": lag.dual_patients} if validation_cost else {}),
            },
            validation_cost=validation_cost,
        )
        callbacks.append(lagrangian)
    start_steps = int(model.num_timesteps)
    session: dict[str, Any] = {
        "started": _now(),
        "resumed_from": str(source.relative_to(run_dir)) if source is not None else None,
        "start_timesteps": start_steps,
    }
    sessions.append(session)
    _write_json(meta_path, meta)

    remaining = cfg.n_timesteps - start_steps
    t_learn = time.perf_counter()
    try:
        if remaining > 0:
            with warnings.catch_warnings():
                # SB3's bar is tqdm.rich, which warns "rich is experimental/alpha" on every
                # construction: under warnings-as-errors that warning aborted the bar half
                # built (and its __del__ then failed too)
                if _progress_bar_available():
                    from tqdm import TqdmExperimentalWarning

                    warnings.simplefilter("ignore", TqdmExperimentalWarning)
                model.learn(
                    total_timesteps=remaining,
                    callback=callbacks,
                    progress_bar=progress_bar and _progress_bar_available(),
                    reset_num_timesteps=source is None,
                )
        learn_s = time.perf_counter() - t_learn
        model.save(str(run_dir / "model.zip"))
        if normalize:
            venv.save(str(run_dir / "vecnormalize.pkl"))  # type: ignore[attr-defined]
    finally:
        model.logger.close()
        venv.close()
    wall = time.perf_counter() - t_start
    steps = int(model.num_timesteps)
    session.update(
        {
            "finished": _now(),
            "end_timesteps": steps,
            "wall_time_s": round(wall, 3),
            "learn_time_s": round(learn_s, 3),
            "timesteps_per_s": round((steps - start_steps) / learn_s, 1) if learn_s > 0 else None,
        }
    )
    meta.update(
        {
            "finished": True,
            "finished_timesteps": steps,
            "num_timesteps": steps,
            "wall_time_s": round(sum(s.get("wall_time_s", 0.0) for s in sessions), 3),
        }
    )
    if lagrangian is not None:
        meta["lagrangian"] = lagrangian.summary()
    _write_json(meta_path, meta)
    return run_dir


def _default_arg(klass: type, name: str, fallback: Any) -> Any:
    import inspect

    param = inspect.signature(klass.__init__).parameters.get(name)
    return fallback if param is None else param.default


def _model_kwargs(spec: AlgoSpec, cfg: RunConfig, venv: VecEnv) -> dict[str, Any]:
    space = venv.action_space
    n_actions = int(np.prod(space.shape)) if isinstance(space, spaces.Box) else 0
    kwargs = algorithm_kwargs(spec, cfg, n_actions)
    kwargs.setdefault("device", "cpu")  # small MLPs: the CPU beats a GPU round trip
    return kwargs


# --- loading -------------------------------------------------------------------------------
class TrainedAgent:
    """A trained model as a policy on raw observations, for the evaluator.

    ``predict(observation, state=None, episode_start=None, deterministic=False)`` takes
    observations of an :class:`~oncogym.envs.OncologyVectorEnv` built with
    :attr:`env_kwargs` (shape ``(n_envs, obs_dim)`` or ``(obs_dim,)``), applies the saved
    VecNormalize observation statistics, and returns ``(actions, state)`` in the env's
    action space (DQN's indices mapped back to dose levels).  RecurrentPPO returns its
    LSTM state: pass it back with ``episode_start`` on the next call.  MaskablePPO asks the
    env given to :meth:`attach` for ``action_masks()``.

    :ivar name: label in tables (default: the algorithm name)
    :ivar algo: the algorithm name of :data:`ALGOS`
    :ivar action_mode: the env ``action_mode`` the model acts in
    :ivar env_kwargs: arguments of ``OncologyVectorEnv`` (besides ``num_envs``, ``task``)
    :ivar env_id: the training env id
    :ivar task: its task
    :ivar model: the SB3 model
    """

    def __init__(
        self,
        model: BaseAlgorithm,
        *,
        algo: str,
        env_id: str,
        env_kwargs: Mapping[str, Any],
        obs_normalizer: VecNormalize | None = None,
        nvec: np.ndarray | None = None,
        name: str | None = None,
    ) -> None:
        self.model = model
        self.algo = algo
        self.spec = ALGOS[algo]
        self.env_id = env_id
        self.task = env_spec_kwargs(env_id)["task"]
        self.action_mode = self.spec.action_mode
        self.env_kwargs = dict(env_kwargs)
        self.name = name or algo
        self.obs_normalizer = obs_normalizer
        self.nvec = nvec
        self.env: Any = None

    def attach(self, env: Any) -> None:
        """Keep ``env`` to ask for its ``action_masks()`` (MaskablePPO)."""
        self.env = env

    def normalize_obs(self, observation: Any) -> np.ndarray:
        obs = np.asarray(observation, dtype=np.float32)
        if self.obs_normalizer is not None and self.obs_normalizer.norm_obs:
            obs = np.asarray(self.obs_normalizer.normalize_obs(obs), dtype=np.float32)
        return obs

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        obs = self.normalize_obs(observation)
        if self.spec.masked:
            masks = None
            if self.env is not None and hasattr(self.env, "action_masks"):
                masks = np.asarray(self.env.action_masks())
                if obs.ndim == 1:
                    masks = masks.reshape(-1, masks.shape[-1])[0]
            actions, state = self.model.predict(  # type: ignore[call-arg]
                obs, state, episode_start, deterministic, action_masks=masks
            )
        else:
            actions, state = self.model.predict(obs, state, episode_start, deterministic)
        if self.nvec is not None:
            actions = index_to_levels(actions, self.nvec)
        return actions, state

    def __repr__(self) -> str:
        return f"TrainedAgent(name={self.name!r}, algo={self.algo!r}, env_id={self.env_id!r})"


def load_agent(
    run_dir: str | Path, *, checkpoint: str | Path | None = None, name: str | None = None
) -> TrainedAgent:
    """The trained policy of a run folder (its ``model.zip``, or ``checkpoint``).

    :param run_dir: a folder written by :func:`train`
    :param checkpoint: a checkpoint zip of the run instead of the final model (its
        VecNormalize statistics are used)
    :param name: the policy's label (default: the algorithm name)
    """
    run_dir = Path(run_dir)
    saved = read_yaml(run_dir / "config.yml")
    algo = algo_name(saved.get("algo", ""))
    env_id = str(saved["env_id"])
    spec = ALGOS[algo]
    cfg = validate(spec.load_class(), saved.get("hyperparams") or {}, str(run_dir / "config.yml"))
    path = Path(checkpoint) if checkpoint is not None else run_dir / "model.zip"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no model (has the run finished?)")
    model = spec.load_class().load(str(path), device="cpu")
    normalizer = None
    if cfg.normalize is not None:
        stats = (
            checkpoint_file(run_dir, "vecnormalize", _steps_of(path))
            if checkpoint is not None
            else run_dir / "vecnormalize.pkl"
        )
        with stats.open("rb") as f:
            normalizer = pickle.load(f)
        normalizer.training = False
    nvec = None
    if spec.discrete_index:
        from oncogym.envs import OncologyVectorEnv

        kwargs = evaluator_env_kwargs(env_id, cfg.env_kwargs, spec.action_mode)
        probe = OncologyVectorEnv(1, env_spec_kwargs(env_id)["task"], **kwargs)
        nvec = np.asarray(probe.single_action_space.nvec, dtype=np.int64)
        probe.close()
    return TrainedAgent(
        model,
        algo=algo,
        env_id=env_id,
        env_kwargs=evaluator_env_kwargs(env_id, cfg.env_kwargs, spec.action_mode),
        obs_normalizer=normalizer,
        nvec=nvec,
        name=name,
    )


# --- clinical evaluation while training ----------------------------------------------------


def _validation_rollout(
    model: BaseAlgorithm,
    *,
    env_id: str,
    algo: str,
    env_kwargs: Mapping[str, Any],
    n_patients: int,
    nvec: np.ndarray | None = None,
) -> Any:
    """``model``'s current policy, deterministic, on ``n_patients`` validation patients
    (:func:`oncogym.agents.evaluate.validation_cohort`: the same patients at every call),
    observations normalised by the training env's current statistics."""
    from .evaluate import rollout, validation_cohort

    venv = model.get_env()
    agent = TrainedAgent(
        model,
        algo=algo,
        env_id=env_id,
        env_kwargs=env_kwargs,
        obs_normalizer=venv if isinstance(venv, VecNormalize) else None,
        nvec=nvec,
    )
    cohort, seed = validation_cohort(agent.task, n_patients)
    return rollout(agent, agent.task, cohort=cohort, n_patients=n_patients, seed=seed)


def _validation_cost(model: BaseAlgorithm, **kwargs: Any) -> Callable[[], float]:
    """``dual_cost: validation`` of the Lagrangian: a function returning the grade >= 3
    events per patient of :func:`_validation_rollout`."""
    from .evaluate import summarise

    def cost() -> float:
        return float(summarise(_validation_rollout(model, **kwargs))["grade3_events"])

    return cost


class ClinicalEvalCallback(BaseCallback):
    """Every ``eval_freq`` environment steps, treat the validation cohort
    (:func:`oncogym.agents.evaluate.validation_cohort`: patients of the training
    distribution, never the test cohort) with the current policy, deterministically, and
    record clinical metrics in the run's logger (CSV and TensorBoard): ``clinical/qalys``,
    ``clinical/return``, ``clinical/orr``, ``clinical/cr_rate``, ``clinical/grade3_any``,
    ``clinical/os_horizon`` (KM OS at the horizon), ``clinical/tox_deaths``.  Each
    evaluation is also a log line (``oncogym.agents.train`` logger), so a run shows its
    progress where no progress bar does (CI, log files).
    """

    def __init__(
        self,
        *,
        env_id: str,
        algo: str,
        env_kwargs: Mapping[str, Any],
        eval_freq: int,
        total_timesteps: int,
        n_patients: int = CLINICAL_EVAL_PATIENTS,
        nvec: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.env_id = env_id
        self.algo = algo
        self.env_kwargs = dict(env_kwargs)
        self.eval_freq = max(int(eval_freq), 1)
        self.total_timesteps = int(total_timesteps)
        self.n_patients = int(n_patients)
        self.nvec = nvec
        self.history: list[dict[str, float]] = []
        self._next = 0

    def _init_callback(self) -> None:
        self._next = (self.num_timesteps // self.eval_freq + 1) * self.eval_freq

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.eval_freq * max(
                1, (self.num_timesteps - self._next) // self.eval_freq + 1
            )
            self.evaluate()
        return True

    def evaluate(self) -> dict[str, float]:
        """Run one clinical evaluation now; record and return its metrics."""
        from .evaluate import summarise

        res = _validation_rollout(
            self.model,
            env_id=self.env_id,
            algo=self.algo,
            env_kwargs=self.env_kwargs,
            n_patients=self.n_patients,
            nvec=self.nvec,
        )
        row = summarise(res)
        metrics = {
            "qalys": row["mean_qalys"],
            "return": row["mean_return"],
            "orr": row["orr"],
            "cr_rate": row["cr_rate"],
            "grade3_any": row["grade3_any"],
            "os_horizon": row["os_horizon"],
            "tox_deaths": float(row["tox_deaths"]),
        }
        for key, value in metrics.items():
            self.logger.record(f"clinical/{key}", value)
        self.logger.record("time/total_timesteps", self.num_timesteps)
        self.logger.dump(self.num_timesteps)
        self.history.append({"timesteps": float(self.num_timesteps), **metrics})
        log.info(
            "%s %s: %d/%d steps; validation (%d patients) QALYs %.3f, ORR %.0f %%, "
            "grade>=3 %.0f %%, OS at horizon %.0f %%",
            self.algo,
            self.env_id,
            self.num_timesteps,
            max(self.total_timesteps, self.num_timesteps),  # SB3 ends on a whole rollout
            self.n_patients,
            metrics["qalys"],
            100 * metrics["orr"],
            100 * metrics["grade3_any"],
            100 * metrics["os_horizon"],
        )
        return metrics


# --- command line --------------------------------------------------------------------------
def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["n_steps=64", "policy_kwargs.net_arch=[32, 32]"]`` → a dict (YAML values)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set: expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--set {key}: not a YAML value: {value!r}") from None
    return out


__all__ = [
    "ALGOS",
    "DiscreteActions",
    "TrainedAgent",
    "algo_name",
    "load_agent",
    "load_config",
    "train",
]
