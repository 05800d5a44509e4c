"""Benchmark units: independent pieces of work, run in this process, and the one loop that
every backend runs them with.

A unit is a training run ``(scenario, algorithm, seed)`` or an evaluation ``(scenario,
policy)``; :func:`run_unit` runs one and writes its result atomically (temporary file,
then rename) under the benchmark's folder, so that a rerun skips finished units and an
interrupted sweep resumes where it stopped.  :func:`run_pending` is the loop the backends
share — check the finished units' keys, skip the finished units, run the rest through the
backend, collect the failures by unit name while the other units finish — and the backends
only say how units are executed: in this process or a local process pool
(:mod:`oncogym.agents.backends`), or as Ray tasks (:mod:`oncogym.agents.ray_backend`).

**Unit keys.**  A result is reused only for the settings it was computed with.  Each unit
writes its key (:func:`unit_key`: the full resolved configuration — scenario and env id,
the fingerprint of the scenario's dynamics (a recalibration changes it), the difficulty
tier (``setting``), kind, policy, algorithm and seed, the test cohort's size and
evaluation seed, a protocol's doses, the planner settings of an ``mpc_`` baseline, the
training settings of a training run and of the evaluation of a trained run, the model
file of a given agent, and the oncogym version) beside its result before computing it:
``<scenario>/units/<policy>.key.json`` for an evaluation, ``<run>/unit.key.json`` inside
a training run's folder.  On a rerun
(:func:`check_units`) a finished unit — an evaluation whose ``.pkl`` exists, a training
run with a ``model.zip`` or a started ``config.yml`` — whose key equals the new one is
skipped (a started training run continues from its checkpoint); one whose key differs, or
has none (results from before unit keys), is refused with a :class:`StaleResultError`
naming the folder, the units and the differing fields, unless ``force``: then exactly
those units' results are removed (the evaluation's ``.pkl`` and key, or the training run's
folder) and recomputed.  No other file is removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
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
    follow_up_days: float = 0.0
    """Untreated follow-up after the horizon in every evaluation (the score's window)."""
    open_loop: dict[str, Any] = field(default_factory=dict)
    """Settings of the open-loop search (:func:`oncogym.agents.openloop.search_open_loop`)."""
    setting: str = "default"
    """Difficulty tier (:mod:`oncogym.envs.settings`) of every evaluation and training run
    (training on the tier's training population)."""
    source_dir: str | None = None
    """Tier evaluations: the benchmark folder whose trained runs and open-loop schedules are
    evaluated here (``None``: this folder's own).  They were chosen in the tier
    ``source_setting``; here they are only evaluated, in ``setting``."""
    source_setting: str | None = None
    """The tier the agents and open-loop schedules of ``source_dir`` were chosen in."""

    @property
    def eval_env_kwargs(self) -> dict[str, Any]:
        """Environment arguments of every evaluation (the tier; nothing for the default)."""
        return {} if self.setting == "default" else {"setting": self.setting}

    def scenario_dir(self, scenario: str) -> Path:
        return Path(self.out_dir) / scenario

    def result_path(self, unit: Unit) -> Path:
        d = self.scenario_dir(unit.scenario)
        if unit.kind == "train":
            return self.run_dir(unit) / "model.zip"
        return d / "units" / f"{unit.policy}.pkl"

    def source_scenario_dir(self, scenario: str) -> Path:
        """Where the scenario's trained runs and open-loop schedule live."""
        return Path(self.source_dir or self.out_dir) / scenario

    def run_dir(self, unit: Unit) -> Path:
        return self.source_scenario_dir(unit.scenario) / self.runs_subdir / unit.policy

    def key_path(self, unit: Unit) -> Path:
        """Where the unit's key (:func:`unit_key`) is stored, beside its result."""
        if unit.kind == "train":
            return self.run_dir(unit) / "unit.key.json"
        return self.scenario_dir(unit.scenario) / "units" / f"{unit.policy}.key.json"


def _version() -> str:
    import oncogym

    return str(oncogym.__version__)


def _sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_baseline(unit: Unit) -> bool:
    return unit.agent_dir is None and unit.algo is None


def _scenario_fields(unit: Unit) -> dict[str, Any]:
    """What a unit's result depends on in its scenario file: the patients' dynamics
    (:func:`oncogym.scenarios.dynamics_fingerprint`, recalibrations included), a protocol
    baseline's doses, and for the open-loop search (which starts from the protocols), a
    planner anchored on it and the adaptive rules (whose lines are protocols) every
    protocol."""
    from oncogym.envs.task import TASKS
    from oncogym.scenarios import dynamics_fingerprint, load_scenario

    if unit.scenario not in TASKS:
        return {}
    sc = load_scenario(unit.scenario)
    out: dict[str, Any] = {"scenario_sha256": dynamics_fingerprint(sc)}
    if _is_baseline(unit):
        words = {"name", "description", "source"}
        if unit.policy in sc.protocols:
            out["protocol"] = sc.protocols[unit.policy].model_dump(mode="json", exclude=words)
        elif unit.policy in ("open_loop", "adaptive") or unit.policy.startswith("mpc_"):
            doses = {
                name: p.model_dump(mode="json", exclude=words) for name, p in sc.protocols.items()
            }
            text = json.dumps(doses, sort_keys=True)
            out["protocols_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    return out


def unit_key(unit: Unit, cfg: BenchmarkConfig) -> dict[str, Any]:
    """The full resolved configuration a unit's result depends on (JSON values).

    Every unit: ``kind``, ``scenario``, ``env_id`` (with its version, e.g.
    ``oncogym/Melanoma-v1``), ``policy``, the ``oncogym`` version and, unless it is
    ``"default"``, the difficulty tier ``setting`` (so results keyed before tiers stay
    valid for the default tier); for a scenario, ``scenario_sha256`` (its patients'
    dynamics: a recalibration makes every result of the scenario stale), a protocol's
    ``protocol`` (its doses) and, for the open-loop search, the planners and the adaptive
    rules, ``protocols_sha256``; in a tier evaluation of another folder's agents and
    schedules (``cfg.source_dir``), ``chosen_in``: the tier they were chosen in.
    Evaluations: ``n_patients``, ``eval_seed`` and ``follow_up_days`` (when not 0); an
    ``mpc_`` baseline also ``planner``; ``open_loop`` and a planner anchored on it also
    ``open_loop`` (the search settings).  Training runs
    and the evaluations of trained runs: ``algo``, ``seed``, ``timesteps``,
    ``train_overrides``, ``train_config`` (the file's resolved path and SHA-256), ``n_envs``
    and ``hyperparams`` (the resolved hyperparameters: an edited packaged default counts).
    The evaluation of a given agent folder: ``agent_dir`` (resolved) and
    ``agent_model_sha256`` (its ``model.zip``).
    """
    key: dict[str, Any] = {
        "kind": unit.kind,
        "scenario": unit.scenario,
        "env_id": TASK_ENV_ID.get(unit.scenario),
        "policy": unit.policy,
    }
    if cfg.setting != "default":
        key["setting"] = cfg.setting
    key.update(_scenario_fields(unit))
    if cfg.source_setting is not None:  # agents and schedules chosen in another tier
        key["chosen_in"] = cfg.source_setting
    if unit.kind == "train" or unit.algo is not None:
        config = None
        if cfg.train_config is not None:
            path = Path(cfg.train_config)
            config = {"path": str(path.resolve()), "sha256": _sha256(path)}
        key.update(
            {
                "algo": unit.algo,
                "seed": int(unit.seed),
                "timesteps": cfg.timesteps,
                "train_overrides": dict(cfg.train_overrides),
                "train_config": config,
                "n_envs": cfg.n_envs,
                "hyperparams": _resolved_hyperparams(unit, cfg),
            }
        )
    if unit.kind == "eval":
        key.update({"n_patients": int(cfg.n_patients), "eval_seed": int(cfg.eval_seed)})
        if cfg.follow_up_days:
            key["follow_up_days"] = float(cfg.follow_up_days)
        if _is_baseline(unit) and unit.policy.startswith("mpc_"):
            key["planner"] = dict(cfg.planner)
        uses_open_loop = unit.policy == "open_loop" or (
            unit.policy.startswith("mpc_") and cfg.planner.get("anchor") == "open_loop"
        )
        if _is_baseline(unit) and uses_open_loop:
            key["open_loop"] = dict(cfg.open_loop)
        if unit.agent_dir is not None:
            agent = Path(unit.agent_dir)
            key["agent_dir"] = str(agent.resolve())
            key["agent_model_sha256"] = _sha256(agent / "model.zip")
    key["oncogym"] = _version()
    # as stored: JSON round trip (tuples -> lists), keys sorted
    return json.loads(json.dumps(key, sort_keys=True, default=str))


def _resolved_hyperparams(unit: Unit, cfg: BenchmarkConfig) -> dict[str, Any]:
    """The training run's hyperparameters as resolved from the config file (the packaged
    ``hyperparams/<algo>.yml`` by default) and the overrides, so that an edited default
    file is a change of settings too."""
    from .config import to_yaml_dict
    from .train import load_config

    if unit.algo is None:
        return {}
    conf = load_config(unit.algo, TASK_ENV_ID[unit.scenario], cfg.train_config, cfg.train_overrides)
    return to_yaml_dict(conf)


def _key_bytes(key: dict[str, Any]) -> bytes:
    return (json.dumps(key, indent=1, sort_keys=True) + "\n").encode()


class StaleResultError(ValueError):
    """Finished units in the folder were computed with other settings (or before unit
    keys); ``stale`` maps each unit's name to what differs.  The message is one line."""

    def __init__(self, folder: str | Path, stale: dict[str, str]) -> None:
        self.folder = str(folder)
        self.stale = dict(stale)
        groups: dict[str, list[str]] = {}
        for name, why in self.stale.items():
            groups.setdefault(why, []).append(name)
        parts = "; ".join(f"{', '.join(names)} ({why})" for why, names in groups.items())
        super().__init__(
            f"{self.folder}: {len(self.stale)} finished unit(s) were computed with other "
            f"settings: {parts}; pass a new --out, or --force to recompute them"
        )


_MISSING = object()


def _fmt_value(value: Any) -> str:
    return "(none)" if value is _MISSING else json.dumps(value, sort_keys=True)


def key_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """``field: old → new`` for each field that differs, comma-separated ('' if none)."""
    fields = [*new, *(f for f in old if f not in new)]
    return ", ".join(
        f"{f}: {_fmt_value(old.get(f, _MISSING))} → {_fmt_value(new.get(f, _MISSING))}"
        for f in fields
        if old.get(f, _MISSING) != new.get(f, _MISSING)
    )


def _started(unit: Unit, cfg: BenchmarkConfig) -> bool:
    """A result exists: an evaluation's ``.pkl``, or a training run begun or finished."""
    if unit.kind == "train":
        run = cfg.run_dir(unit)
        return (run / "model.zip").exists() or (run / "config.yml").exists()
    return cfg.result_path(unit).exists()


def stale_reason(unit: Unit, cfg: BenchmarkConfig) -> str | None:
    """Why the unit's existing result cannot be reused (None: no result, or its key
    equals the unit's key now)."""
    if not _started(unit, cfg):
        return None
    path = cfg.key_path(unit)
    try:
        old = json.loads(path.read_text())
    except FileNotFoundError:
        return "no unit key: the results predate unit keys"
    except (OSError, ValueError) as exc:
        return f"unreadable unit key {path.name}: {exc}"
    if not isinstance(old, dict):
        return f"unreadable unit key {path.name}"
    return key_difference(old, unit_key(unit, cfg)) or None


def _remove_result(unit: Unit, cfg: BenchmarkConfig) -> None:
    """Remove a unit's result so that it is recomputed (only the unit's own files)."""
    if unit.kind == "train":
        run = cfg.run_dir(unit)
        log.info("force: removing the training run %s", run)
        shutil.rmtree(run)
        return
    log.info("force: removing %s", cfg.result_path(unit))
    cfg.result_path(unit).unlink(missing_ok=True)
    cfg.key_path(unit).unlink(missing_ok=True)


def check_units(units: Sequence[Unit], cfg: BenchmarkConfig, *, force: bool = False) -> None:
    """Refuse to reuse finished units computed with other settings.

    :param force: instead of refusing, remove those units' results (an evaluation's
        ``.pkl`` and key, a training run's folder) so that they are recomputed
    :raises StaleResultError: naming the folder, each such unit and what differs
    """
    stale = {u.key: why for u in units if (why := stale_reason(u, cfg)) is not None}
    if not stale:
        return
    if not force:
        raise StaleResultError(cfg.out_dir, stale)
    for u in units:
        if u.key in stale:
            _remove_result(u, cfg)


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


def _train_unit(unit: Unit, cfg: BenchmarkConfig, key: bytes) -> None:
    """Train one run; a run killed earlier continues from its newest checkpoint (a run
    killed before its first checkpoint starts again).  ``key`` is written into the run
    folder before a new run starts."""
    from oncogym.envs.settings import training_env_kwargs

    from .config import ConfigError
    from .train import train

    run_dir = cfg.run_dir(unit)
    overrides = dict(cfg.train_overrides)
    for name, value in training_env_kwargs(cfg.setting).items():
        overrides[f"env_kwargs.{name}"] = value  # the tier, on its training population
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
    atomic_write_bytes(cfg.key_path(unit), key)
    train(
        TASK_ENV_ID[unit.scenario],
        unit.algo,
        config=cfg.train_config,
        n_envs=cfg.n_envs,
        overrides=overrides or None,
        **kwargs,
    )


def run_unit(unit: Unit, cfg: BenchmarkConfig) -> str:
    """Run one unit (in this process) and write its key and result; returns the result's
    path.

    :raises StaleResultError: the unit's existing result was computed with other settings
    """
    path = cfg.result_path(unit)
    why = stale_reason(unit, cfg)
    if why is not None:
        raise StaleResultError(cfg.out_dir, {unit.key: why})
    if path.exists():
        return str(path)
    log.info("start: %s", unit.key)
    key = _key_bytes(unit_key(unit, cfg))
    if unit.kind == "train":
        _train_unit(unit, cfg, key)
        return str(path)
    atomic_write_bytes(cfg.key_path(unit), key)  # first: a result never lacks its key
    if unit.agent_dir is not None or unit.algo is not None:
        from .train import load_agent

        run_dir = unit.agent_dir or str(cfg.run_dir(unit))
        policy = load_agent(run_dir)
        policy.name = unit.policy
    elif unit.policy == "open_loop":
        from .openloop import OpenLoopPolicy

        policy = OpenLoopPolicy(open_loop_schedule(unit.scenario, cfg))
    else:
        kwargs = dict(cfg.planner) if unit.policy.startswith("mpc_") else {}
        if kwargs.get("anchor") == "open_loop":
            kwargs["anchor"] = open_loop_schedule(unit.scenario, cfg)
        policy = make_baseline(unit.policy, unit.scenario, seed=cfg.eval_seed, **kwargs)
    res = rollout(
        policy,
        unit.scenario,
        n_patients=cfg.n_patients,
        seed=cfg.eval_seed,
        env_kwargs=cfg.eval_env_kwargs,
        progress=_progress_log(unit.key),
        follow_up_days=cfg.follow_up_days,
    )
    res.policy = unit.policy
    atomic_write_bytes(path, pickle.dumps(res))
    return str(path)


def open_loop_schedule(scenario: str, cfg: BenchmarkConfig) -> Any:
    """The scenario's best open-loop schedule for ``cfg.open_loop``: read from
    ``<scenario>/open_loop.json`` when it was searched with the same settings on the same
    scenario (``scenario``: its dynamics fingerprint and protocols, as in the unit key of
    ``open_loop``), else searched
    (on training patients; seeded, so every unit that needs it finds the same schedule) and
    written there with its training score and the schedule in words."""
    import json

    from .openloop import OpenLoopSchedule, search_open_loop

    path = cfg.source_scenario_dir(scenario) / "open_loop.json"
    settings = dict(cfg.open_loop)
    chosen_in = cfg.setting if cfg.source_setting is None else cfg.source_setting
    if chosen_in != "default":
        settings["setting"] = chosen_in
    # the search starts from the protocols on the scenario's patients: a file searched
    # before a recalibration or a protocol edit is searched again
    depends = _scenario_fields(Unit("eval", scenario, "open_loop"))
    if path.exists():
        data = json.loads(path.read_text())
        if data.get("requested") == settings and data.get("scenario") == depends:
            return OpenLoopSchedule.from_dict(data["schedule"])
    log.info("open-loop search: %s %s", scenario, settings or "(defaults)")
    res = search_open_loop(scenario, **settings)
    from oncogym.envs.task import make_params

    data = {"requested": settings, "scenario": depends, **res.to_dict(make_params(scenario))}
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())
    return res.schedule


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
    *,
    force: bool = False,
) -> dict[str, BaseException]:
    """Run the units whose result is missing through ``execute``; failures by unit key.

    The finished units' keys are checked first (:func:`check_units`: a result computed
    with other settings is refused, or with ``force`` removed and recomputed).  Finished
    units are reported to ``on_done`` (nothing is recomputed); ``execute`` receives the
    others and yields one :data:`Outcome` per unit as each finishes.  A unit that fails
    does not stop the others.

    :raises StaleResultError: before any unit runs
    """
    check_units(units, cfg, force=force)
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
