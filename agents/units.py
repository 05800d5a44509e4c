"""Benchmark units: independent pieces of work, run in this process, and the one loop that
every backend runs them with.

A unit is a training run ``(scenario, algorithm, seed)`` or an evaluation ``(scenario,
policy)``; :func:`run_unit` runs one and writes its result atomically (temporary file,
then rename) under the benchmark's folder, so that a rerun skips finished units and an
interrupted sweep resumes where it stopped.  :func:`run_pending` is the loop the backends
share — skip the finished units, run the rest through the backend, collect the failures by
unit name while the other units finish — and the backends only say how units are executed:
in this process or a local process pool (:mod:`oncogym.agents.backends`), or as Ray tasks
(:mod:`oncogym.agents.ray_backend`).
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oncogym.envs import ENV_IDS

from .evaluate import DEFAULT_PATIENTS, EVAL_SEED, rollout
from .policies import make_baseline

log = logging.getLogger(__name__)

TASK_ENV_ID = {task: env_id for env_id, (task, _, _) in ENV_IDS.items()}
"""Scenario/literature task -> registered environment id."""

OnDone = Callable[["Unit", "str | None", "BaseException | None"], None]
"""Called once per unit: ``(unit, result path or None, error or None)``."""
Outcome = tuple["Unit", "str | None", "BaseException | None"]
"""What a backend yields per unit it ran: the unit, its result path or its error."""


@dataclass(frozen=True)
class Unit:
    """One independent piece of a benchmark."""

    kind: str  # "train" or "eval"
    scenario: str
    policy: str  # baseline name, "<algo>_s<seed>" (trained) or an agent label
    algo: str | None = None
    seed: int = 0
    agent_dir: str | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.scenario}:{self.policy}"


@dataclass
class BenchmarkConfig:
    """Everything a unit needs (picklable: it travels to worker processes)."""

    out_dir: str
    n_patients: int = DEFAULT_PATIENTS
    eval_seed: int = EVAL_SEED
    timesteps: int | None = None
    train_overrides: dict[str, Any] = field(default_factory=dict)
    planner: dict[str, Any] = field(default_factory=dict)
    progress: bool = False
    train_config: str | None = None
    n_envs: int | None = None
    runs_subdir: str = "runs"

    def scenario_dir(self, scenario: str) -> Path:
        return Path(self.out_dir) / scenario

    def result_path(self, unit: Unit) -> Path:
        d = self.scenario_dir(unit.scenario)
        if unit.kind == "train":
            return self.run_dir(unit) / "model.zip"
        return d / "units" / f"{unit.policy}.pkl"

    def run_dir(self, unit: Unit) -> Path:
        return self.scenario_dir(unit.scenario) / self.runs_subdir / unit.policy


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _train_unit(unit: Unit, cfg: BenchmarkConfig) -> None:
    """Train one run; a run killed earlier continues from its newest checkpoint (a run
    killed before its first checkpoint starts again)."""
    import shutil

    from .config import ConfigError
    from .train import train

    run_dir = cfg.run_dir(unit)
    kwargs = {
        "seed": unit.seed,
        "n_timesteps": cfg.timesteps,
        "run_dir": run_dir,
        "progress_bar": cfg.progress,
    }
    if (run_dir / "config.yml").exists():
        try:
            train(TASK_ENV_ID[unit.scenario], unit.algo, resume=True, **kwargs)
            return
        except ConfigError as exc:
            if "no complete checkpoint" not in str(exc):
                raise
            shutil.rmtree(run_dir)
    train(
        TASK_ENV_ID[unit.scenario],
        unit.algo,
        config=cfg.train_config,
        n_envs=cfg.n_envs,
        overrides=cfg.train_overrides or None,
        **kwargs,
    )


def run_unit(unit: Unit, cfg: BenchmarkConfig) -> str:
    """Run one unit (in this process) and write its result; returns the result's path."""
    path = cfg.result_path(unit)
    if path.exists():
        return str(path)
    log.info("start: %s", unit.key)
    if unit.kind == "train":
        _train_unit(unit, cfg)
        return str(path)
    if unit.agent_dir is not None or unit.algo is not None:
        from .train import load_agent

        run_dir = unit.agent_dir or str(cfg.run_dir(unit))
        policy = load_agent(run_dir)
        policy.name = unit.policy
    else:
        kwargs = dict(cfg.planner) if unit.policy.startswith("mpc_") else {}
        policy = make_baseline(unit.policy, unit.scenario, seed=cfg.eval_seed, **kwargs)
    res = rollout(
        policy,
        unit.scenario,
        n_patients=cfg.n_patients,
        seed=cfg.eval_seed,
        progress=_progress_log(unit.key),
    )
    res.policy = unit.policy
    atomic_write_bytes(path, pickle.dumps(res))
    return str(path)


def _progress_log(key: str, every_s: float = 30.0) -> Callable[[int, int], None]:
    """A ``rollout`` progress callback that logs ``key: step k/n`` at most every
    ``every_s`` seconds (long evaluations, e.g. the planner's, show they are alive)."""
    last = [time.perf_counter()]

    def report(k: int, n: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= every_s and k < n:
            last[0] = now
            log.info("%s: step %d/%d", key, k, n)

    return report


def worker_init() -> None:
    """One thread per worker process: the pool, not the kernels, uses the cores."""
    import numba

    from ._threads import prefer_workqueue_threading

    prefer_workqueue_threading()

    numba.set_num_threads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def run_pending(
    units: Sequence[Unit],
    cfg: BenchmarkConfig,
    execute: Callable[[list[Unit]], Iterable[Outcome]],
    on_done: OnDone | None = None,
) -> dict[str, BaseException]:
    """Run the units whose result is missing through ``execute``; failures by unit key.

    Finished units are reported to ``on_done`` first (nothing is recomputed); ``execute``
    receives the others and yields one :data:`Outcome` per unit as each finishes.  A unit
    that fails does not stop the others.
    """
    done = on_done or (lambda u, p, e: None)
    todo: list[Unit] = []
    for u in units:
        path = cfg.result_path(u)
        if path.exists():
            done(u, str(path), None)
        else:
            todo.append(u)
    failures: dict[str, BaseException] = {}
    if todo:
        for unit, path, error in execute(todo):
            if error is not None:
                failures[unit.key] = error
            done(unit, path, error)
    return failures


def run_here(units: Sequence[Unit], cfg: BenchmarkConfig) -> Iterator[Outcome]:
    """Execute units one after the other in this process (a backend for
    :func:`run_pending`)."""
    for u in units:
        try:
            yield u, run_unit(u, cfg), None
        except Exception as exc:  # reported by name, never silently missing
            yield u, None, exc
