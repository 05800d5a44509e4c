"""The benchmark: baselines and RL agents on scenarios' test cohorts, as independent units.

A benchmark is a set of **units**: training runs ``(scenario, algorithm, seed)`` and
evaluations ``(scenario, policy)`` (a baseline, a trained run, or a given agent folder).
Units run in this process, a local process pool or on Ray (:mod:`oncogym.agents.backends`);
the report of a scenario is assembled from its evaluation units in a fixed order
(baselines in :func:`~oncogym.agents.policies.baseline_names` order, then agents sorted by
name), so the tables do not depend on how units were run.

Each unit (:mod:`oncogym.agents.units`) writes its key — the full resolved configuration
its result depends on (:func:`~oncogym.agents.units.unit_key`) — and then its result,
atomically, under ``<out>/<scenario>/``.  A rerun skips the units whose result exists with
an equal key, so an interrupted sweep resumes where it stopped (a killed training run
continues from its checkpoint).  A finished unit whose key differs (other patients,
evaluation seed, planner or training settings, oncogym version …), or that has no key (a
folder from before unit keys), is never reused: the run stops before computing anything,
with a :class:`~oncogym.agents.units.StaleResultError` naming the folder, the units and
the differing fields (old → new).  ``force=True`` (``oncogym benchmark --force``)
recomputes exactly those units instead — each one's evaluation ``.pkl`` and key, or its
training run's folder, is removed first — and still skips the units whose key matches; no
other result is removed.  The report files of each scenario (tables and figures) are
rewritten as a whole on every run: those of an earlier report (e.g. the swimmer plot of a
policy no longer benchmarked) are removed.

Layout::

    <out>/<scenario>/runs/<algo>_s<seed>/     training runs (oncogym.agents.train),
                    .../unit.key.json         each with its unit key
    <out>/<scenario>/units/<policy>.pkl       EvaluationResult per policy
    <out>/<scenario>/units/<policy>.key.json  its unit key
    <out>/<scenario>/metrics.{csv,md}, patients.csv, km_os.png, km_pfs.png,
                    swimmer_<policy>.png, trajectories.png
    <out>/<scenario>/open_loop.json           the best open-loop schedule and its search
    <out>/benchmark.json                      the resolved settings and wall times
    <out>/aggregate.{md,json}, performance_profiles.png, scenario_scores.png, pareto.png
                                              normalised scores and rliable aggregates
                                              (when every scenario has the oracle planner)
    <out>/tiers/<tier>/<scenario>/...         the same agents and baselines (planners
                                              aside) evaluated in a robustness tier
    <out>/tiers.{md,json}                     scores per tier (:func:`run_tiers`)
"""

from __future__ import annotations

import json
import logging
import pickle
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from oncogym.envs import STANDARD_OF_CARE
from oncogym.envs.task import LITERATURE_TASKS, TASKS

from .backends import BACKENDS, run_units
from .evaluate import DEFAULT_PATIENTS, EVAL_SEED, EvaluationResult, clear_report, write_report
from .policies import baseline_names
from .units import (
    TASK_ENV_ID,
    BenchmarkConfig,
    OnDone,
    StaleResultError,
    Unit,
    _is_baseline,
    atomic_write_bytes,
    check_units,
)

log = logging.getLogger(__name__)

__all__ = [
    "BACKENDS",
    "PROTOCOLS",
    "QUICK",
    "TASK_ENV_ID",
    "BenchmarkConfig",
    "BenchmarkError",
    "StaleResultError",
    "Unit",
    "aggregate_report",
    "check_open_loop",
    "check_planner",
    "check_scenarios",
    "load_results",
    "plan_tiers",
    "plan_units",
    "report",
    "run_benchmark",
    "run_tiers",
    "run_units",
    "tier_units",
]
QUICK = {
    "train": ("ppo",),
    "timesteps": 300_000,
    "patients": 100,
    "planner": {"n_samples": 16, "n_iters": 2, "horizon_steps": 6, "replan_every": 4},
    "open_loop": {"n_trials": 60, "n_patients": 100},
    "out": "benchmark_results/quick",
}
"""``oncogym benchmark --quick`` (the README's first command): one PPO seed for a few CPU
minutes, every baseline with a cheaper planner and open-loop search, 100 test patients."""

PROTOCOLS: dict[str, dict[str, Any]] = {
    "v1": {
        "scenarios": tuple(TASKS),
        "train": ("ppo", "a2c", "recurrent_ppo", "maskable_ppo"),
        "seeds": tuple(range(10)),
        "timesteps": 200_000,
        "patients": 1000,
        "follow_up_days": 182.0,
        "open_loop": {"n_trials": 300, "n_patients": 200},
        "planner": {
            "anchor": "open_loop",
            "n_samples": 16,
            "n_iters": 2,
            "horizon_steps": 8,
            "replan_every": 2,
        },
        "skip_baselines": ("mpc_population",),
        "tiers": ("noisy", "irregular", "pkpd", "shift"),
        "out": "benchmark_results/v1",
    }
}
"""Standard benchmark protocols (``oncogym benchmark --protocol v1``).

``v1``: all six scenarios; PPO, A2C, RecurrentPPO and MaskablePPO with their committed
hyperparameters and the same budget (200,000 environment steps per run), 10 training seeds
each; the final model of every run is evaluated (no checkpoint or seed is picked, so no
choice is made on test patients); 1,000-patient test cohorts; every policy scored on the
default ``"qaly"`` return over the horizon plus 26 weeks of untreated follow-up (so doses in
the last weeks pay for their late effects); baselines: no treatment, random, every labelled
protocol, the adaptive rules, the best open-loop schedule (300 schedules searched on 200
training patients) and the oracle planner warm-started from it (the ceiling: normalised
score 1; a strong planner, not a proven bound); the population planner is left out (its
particle filter costs hours on 1,000 patients per scenario); aggregates with rliable
(:mod:`oncogym.agents.aggregate`); then every agent and baseline but the planners (the
agents as trained, the open-loop schedule as searched, on the default tier) evaluated again
in the robustness tiers ``noisy``, ``irregular``, ``pkpd`` and ``shift`` (the tiers an
agent trained on the default tier can read: ``missing_labs`` and ``hard`` add observation
entries), :func:`run_tiers`."""


def check_scenarios(scenarios: Sequence[str]) -> list[str]:
    allowed = (*TASKS, *LITERATURE_TASKS)
    out = []
    for s in scenarios:
        if s not in allowed:
            raise ValueError(f"scenario: unknown {s!r}; allowed: {', '.join(allowed)}")
        out.append(s)
    if not out:
        raise ValueError("scenario: give at least one")
    return out


def check_open_loop(settings: Mapping[str, Any]) -> None:
    """Open-loop settings must be :func:`~oncogym.agents.openloop.search_open_loop`
    arguments."""
    allowed = ("n_trials", "n_patients", "draw", "seed")
    for key, value in settings.items():
        if key not in allowed:
            raise ValueError(f"open_loop: unknown setting {key!r}; allowed: {', '.join(allowed)}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"open_loop: {key} must be a non-negative integer, got {value!r}")


def check_planner(settings: Mapping[str, Any]) -> None:
    """Planner settings must be :class:`~oncogym.agents.planner.MPCPlanner` arguments."""
    import inspect

    from .planner import MPCPlanner

    allowed = [
        p
        for p in inspect.signature(MPCPlanner.__init__).parameters
        if p not in ("self", "task", "mode", "seed")
    ]
    for key in settings:
        if key not in allowed:
            raise ValueError(f"planner: unknown setting {key!r}; allowed: {', '.join(allowed)}")
    if "anchor" in settings and settings["anchor"] != "open_loop":
        raise ValueError(
            f"planner: anchor must be 'open_loop' (the best open-loop schedule), "
            f"got {settings['anchor']!r}"
        )


def plan_units(
    scenarios: Sequence[str],
    *,
    baselines: Sequence[str] | None = None,
    algos: Sequence[str] = (),
    seeds: Sequence[int] = (0,),
    agents: Sequence[str | Path] = (),
    skip: Sequence[str] = (),
) -> tuple[list[Unit], list[Unit]]:
    """The training and evaluation units of a benchmark, in report order.

    :param baselines: baseline names (default: every baseline of each scenario); names a
        scenario does not have are an error
    :param algos: algorithms to train (:data:`oncogym.agents.train.ALGOS`), one run per seed
    :param agents: trained run folders to evaluate as well (label: the folder's name)
    :param skip: baselines left out when ``baselines`` is ``None`` (all the others run)
    """
    train_units: list[Unit] = []
    eval_units: list[Unit] = []
    for sc in check_scenarios(scenarios):
        names = baseline_names(sc)
        chosen = [b for b in names if b not in skip] if baselines is None else list(baselines)
        for b in chosen:
            if b not in names:
                raise ValueError(
                    f"policy: unknown baseline {b!r} for {sc}; allowed: {', '.join(names)}"
                )
            eval_units.append(Unit("eval", sc, b))
        trained = []
        for algo in algos:
            for seed in seeds:
                u = Unit("train", sc, f"{algo}_s{int(seed)}", algo=algo, seed=int(seed))
                train_units.append(u)
                trained.append(Unit("eval", sc, u.policy, algo=algo, seed=int(seed)))
        for a in agents:
            path = Path(a)
            if not (path / "model.zip").exists():
                raise ValueError(f"agent: {path} is not a training run folder (no model.zip)")
            trained.append(Unit("eval", sc, path.name, agent_dir=str(path)))
        eval_units += sorted(trained, key=lambda u: u.policy)
    return train_units, eval_units


class BenchmarkError(RuntimeError):
    """Some units failed; ``failures`` maps each unit's key to its error."""

    def __init__(self, failures: Mapping[str, BaseException]) -> None:
        self.failures = dict(failures)
        lines = "; ".join(f"{k}: {type(e).__name__}: {e}" for k, e in self.failures.items())
        super().__init__(f"{len(self.failures)} unit(s) failed: {lines}")


def load_results(cfg: BenchmarkConfig, units: Sequence[Unit]) -> dict[str, list[EvaluationResult]]:
    """Evaluation results per scenario, in the units' order."""
    out: dict[str, list[EvaluationResult]] = {}
    for u in units:
        with open(cfg.result_path(u), "rb") as fh:
            out.setdefault(u.scenario, []).append(pickle.load(fh))
    return out


def _training_columns(cfg: BenchmarkConfig, u: Unit) -> dict[str, Any]:
    run = Path(u.agent_dir) if u.agent_dir else cfg.run_dir(u)
    meta_path = run / "metadata.json"
    if not meta_path.exists():
        return {}
    meta = json.loads(meta_path.read_text())
    sessions = meta.get("sessions") or []
    return {
        "algo": meta.get("algo"),
        "train_seed": meta.get("seed"),
        "train_timesteps": sessions[-1].get("end_timesteps") if sessions else None,
        "train_wall_s": sum(float(x.get("wall_time_s") or 0.0) for x in sessions),
    }


def report(cfg: BenchmarkConfig, eval_units: Sequence[Unit]) -> dict[str, list[dict[str, Any]]]:
    """Assemble and write each scenario's tables and figures from its evaluation units
    (the report files of an earlier report in the scenario's folder are removed first)."""
    results = load_results(cfg, eval_units)
    rows: dict[str, list[dict[str, Any]]] = {}
    for sc, res in results.items():
        clear_report(cfg.scenario_dir(sc))
        names = [r.policy for r in res]
        ref = STANDARD_OF_CARE.get(sc)
        ref = ref if ref in names else None
        extra = {
            u.policy: _training_columns(cfg, u)
            for u in eval_units
            if u.scenario == sc and (u.algo or u.agent_dir)
        }
        title = None
        if cfg.setting != "default":
            title = f"{sc}: {res[0].n} test patients, setting {cfg.setting!r}"
        rows[sc] = write_report(
            res, cfg.scenario_dir(sc), reference=ref, title=title, extra_rows=extra
        )
    aggregate_report(cfg, results, rows)
    return rows


def _kind(name: str, scenario: str) -> str:
    from .aggregate import trained_run
    from .policies import protocol_names

    if name in protocol_names(scenario):
        return "protocol"
    if name == "open_loop":
        return "open_loop"
    if name.startswith("mpc_"):
        return "planner"
    if trained_run(name) is not None:
        return "agent"
    return "other"


def aggregate_report(
    cfg: BenchmarkConfig,
    results: Mapping[str, Sequence[EvaluationResult]],
    rows: Mapping[str, Sequence[Mapping[str, Any]]],
) -> dict[str, Any] | None:
    """Normalised scores and rliable aggregates over the scenarios (``<out>/aggregate.md``,
    ``aggregate.json``, ``performance_profiles.png``, ``scenario_scores.png``,
    ``pareto.png``), when every scenario has the ceiling and a protocol and the ceiling
    scores above the best protocol (else ``None``, with a logged warning for the latter)."""
    from .aggregate import AGGREGATE_FILES, CEILING, scenario_scores, write_aggregate
    from .policies import protocol_names

    for name in AGGREGATE_FILES:  # an earlier run's aggregate never outlives its results
        (Path(cfg.out_dir) / name).unlink(missing_ok=True)
    per = {}
    for sc, res in results.items():
        names = {r.policy for r in res}
        protos = [p for p in protocol_names(sc) if p in names] if sc in TASKS else []
        if CEILING not in names or not protos:
            return None
        try:
            per[sc] = scenario_scores(res, protos)
        except ValueError as exc:  # e.g. a weak planner below a protocol: no scale
            log.warning("no aggregates: %s: %s", sc, exc)
            return None
    pareto = {
        sc: [{**r, "kind": _kind(str(r["policy"]), sc)} for r in rs] for sc, rs in rows.items()
    }
    return write_aggregate(per, cfg.out_dir, pareto_rows=pareto)


TIER_FILES = ("tiers.md", "tiers.json")
"""What :func:`run_tiers` writes in the benchmark folder."""


def _observation_shape(scenario: str, setting: str) -> tuple[int, ...]:
    from oncogym.envs import OncologyEnv

    return tuple(OncologyEnv(task=scenario, setting=setting).observation_space.shape or ())


def tier_units(eval_units: Sequence[Unit], tier: str, source_setting: str) -> list[Unit]:
    """The evaluation units of a tier: the benchmark's baselines but the planners (their
    oracle sees the true state: the tiers change what the clinic sees, or the patients,
    and the planner's cost is the benchmark's largest) and its trained runs, unless the
    tier's observation has another shape than the one they were trained on (then they
    are left out, with a logged warning)."""
    out: list[Unit] = []
    readable: dict[str, bool] = {}
    for u in eval_units:
        if u.policy.startswith("mpc_") and _is_baseline(u):
            continue
        if u.algo is not None or u.agent_dir is not None:
            if u.scenario not in readable:
                readable[u.scenario] = _observation_shape(u.scenario, tier) == _observation_shape(
                    u.scenario, source_setting
                )
                if not readable[u.scenario]:
                    log.warning(
                        "tier %s: %s's agents cannot read its observation (another shape): "
                        "left out",
                        tier,
                        u.scenario,
                    )
            if not readable[u.scenario]:
                continue
        out.append(u)
    return out


def plan_tiers(
    cfg: BenchmarkConfig, eval_units: Sequence[Unit], tiers: Sequence[str]
) -> list[tuple[BenchmarkConfig, list[Unit]]]:
    """Each tier's benchmark folder (``<out>/tiers/<tier>/``, reading the agents and
    open-loop schedules of ``<out>``) and its evaluation units (:func:`tier_units`)."""
    from dataclasses import replace

    from oncogym.envs.settings import get_setting

    out = Path(cfg.out_dir)
    plan = []
    for tier in tiers:
        get_setting(tier)
        if tier == cfg.setting:
            raise ValueError(f"tiers: {tier!r} is the benchmark's own setting; give other tiers")
        tcfg = replace(
            cfg,
            out_dir=str(out / "tiers" / tier),
            setting=tier,
            source_dir=str(out),
            source_setting=cfg.setting,
        )
        plan.append((tcfg, tier_units(eval_units, tier, cfg.setting)))
    return plan


def run_tiers(
    cfg: BenchmarkConfig,
    eval_units: Sequence[Unit],
    tiers: Sequence[str],
    *,
    force: bool = False,
    **run: Any,
) -> tuple[dict[str, Any], dict[str, BaseException]]:
    """Evaluate the benchmark's agents and baselines again in each robustness tier.

    The agents stay as trained and the open-loop schedule as searched, in ``cfg.setting``
    (the default tier): the question is how what was learned on clean data fares when the
    clinic is messier (scan noise, missed visits, PK/PD variability) or the patients differ
    (``shift``: the shifted test cohort).  Each tier is a benchmark folder of its own,
    ``<out>/tiers/<tier>/`` (units keyed with the tier and ``chosen_in``, tables and figures
    per scenario); ``<out>/tiers.md`` / ``tiers.json`` put the mean scores side by side with
    what closed loop adds over the open-loop schedule in each tier.  Finished units with
    another key are refused (or, with ``force``, recomputed) before anything runs.

    :param eval_units: the benchmark's evaluation units (finished)
    :param run: :func:`~oncogym.agents.backends.run_units` arguments
    :return: the summary (as in ``tiers.json``) and the failed units
    """
    plan = plan_tiers(cfg, eval_units, tiers)
    for tcfg, units in plan:
        check_units(units, tcfg, force=force)
    out = Path(cfg.out_dir)
    for name in TIER_FILES:
        (out / name).unlink(missing_ok=True)
    results = {cfg.setting: load_results(cfg, eval_units)}
    failures: dict[str, BaseException] = {}
    for tcfg, units in plan:
        failed = run_units(units, tcfg, **run)
        failures.update({f"{tcfg.setting}:{k}": e for k, e in failed.items()})
        finished = [u for u in units if tcfg.result_path(u).exists()]
        if finished:
            report(tcfg, finished)
            results[tcfg.setting] = load_results(tcfg, finished)
    summary = tier_summary(results)
    atomic_write_bytes(out / "tiers.json", json.dumps(summary, indent=2).encode())
    (out / "tiers.md").write_text(tier_markdown(summary, cfg))
    return summary, failures


def tier_summary(
    results: Mapping[str, Mapping[str, Sequence[EvaluationResult]]], reps: int = 2000
) -> dict[str, Any]:
    """Per scenario and tier: each baseline's mean score, each algorithm's mean over its
    seeds with a 95 % percentile-bootstrap CI over the seeds, the best protocol, and each
    algorithm's mean difference from the open-loop schedule with its CI (seeded)."""
    from .aggregate import OPEN_LOOP, bootstrap_mean_ci, trained_run
    from .policies import protocol_names

    rng = np.random.default_rng(0)

    def mean_ci(x: np.ndarray) -> list[float]:
        return bootstrap_mean_ci(x, rng, reps)

    per: dict[str, Any] = {}
    for tier, by_scenario in results.items():
        for sc, res in by_scenario.items():
            score = {r.policy: float(np.mean(r.score_returns)) for r in res}
            runs: dict[str, dict[int, float]] = {}
            baselines = {}
            for name, v in score.items():
                tr = trained_run(name)
                if tr is None:
                    baselines[name] = v
                else:
                    runs.setdefault(tr[0], {})[tr[1]] = v
            protos = [p for p in protocol_names(sc) if p in score] if sc in TASKS else []
            entry: dict[str, Any] = {"baselines": baselines, "agents": {}, "over_open_loop": {}}
            if protos:
                best = max(protos, key=lambda p: score[p])
                entry["best_protocol"] = [best, score[best]]
            for algo, by_seed in sorted(runs.items()):
                x = np.array([by_seed[k] for k in sorted(by_seed)])
                entry["agents"][algo] = {"seeds": sorted(by_seed), "score": mean_ci(x)}
                if OPEN_LOOP in score:
                    entry["over_open_loop"][algo] = mean_ci(x - score[OPEN_LOOP])
            per.setdefault(sc, {})[tier] = entry
    return {"tiers": list(results), "per_scenario": per}


def _ci(v: Sequence[float]) -> str:
    mean, lo, hi = v
    if np.isnan(lo):
        return f"{mean:+.3f}"
    return f"{mean:+.3f} ({lo:+.3f}, {hi:+.3f})"


def tier_markdown(summary: Mapping[str, Any], cfg: BenchmarkConfig) -> str:
    """``tiers.md``: one table of mean scores and one of closed loop − open loop per
    scenario, tiers as columns."""
    from .aggregate import OPEN_LOOP

    tiers = list(summary["tiers"])
    head = "| policy | " + " | ".join(f"`{t}`" for t in tiers) + " |"
    rule = "|---|" + "---:|" * len(tiers)
    lines = [
        "# Scores per robustness tier",
        "",
        f"Written by `oncogym benchmark` (`{cfg.out_dir}`).  The agents as trained and the "
        f"open-loop schedule as searched on the `{cfg.setting}` tier, evaluated on "
        f"{cfg.n_patients} test patients in every tier (the shifted tiers on the shifted "
        "test cohort; `oncogym.envs.settings`); score: mean return"
        + (
            f" with {cfg.follow_up_days:g} days of untreated follow-up"
            if cfg.follow_up_days
            else ""
        )
        + ".  Agents: mean over their seeds (95 % bootstrap CI over seeds).  The planners "
        "are not run in the tiers (their oracle sees the true state).  —: not evaluated "
        "(an agent cannot read a tier whose observation has another shape).",
        "",
    ]
    for sc, by_tier in summary["per_scenario"].items():
        lines += [f"## {sc}", "", head, rule]
        soc = STANDARD_OF_CARE.get(sc)
        names: list[str] = []
        for pick in (soc, OPEN_LOOP):
            if pick and any(pick in e["baselines"] for e in by_tier.values()):
                names.append(pick)
        row = []
        for t in tiers:
            e = by_tier.get(t)
            row.append(f"{e['best_protocol'][1]:.3f}" if e and "best_protocol" in e else "—")
        for name in names:
            vals = [
                f"{by_tier[t]['baselines'][name]:.3f}"
                if t in by_tier and name in by_tier[t]["baselines"]
                else "—"
                for t in tiers
            ]
            label = f"{name} (standard of care)" if name == soc else name
            lines.append(f"| {label} | " + " | ".join(vals) + " |")
        lines.append("| best protocol (in each tier) | " + " | ".join(row) + " |")
        algos = sorted({a for e in by_tier.values() for a in e["agents"]})
        for algo in algos:
            vals, n = [], 0
            for t in tiers:
                a = by_tier.get(t, {}).get("agents", {}).get(algo)
                vals.append("—" if a is None else _ci(a["score"]).lstrip("+"))
                n = max(n, len(a["seeds"]) if a else 0)
            lines.append(f"| {algo} ({n} seeds) | " + " | ".join(vals) + " |")
        if any(e["over_open_loop"] for e in by_tier.values()):
            lines += ["", "Closed loop − open loop (mean over seeds, 95 % CI):", "", head, rule]
            for algo in algos:
                vals = [
                    _ci(by_tier[t]["over_open_loop"][algo])
                    if t in by_tier and algo in by_tier[t]["over_open_loop"]
                    else "—"
                    for t in tiers
                ]
                lines.append(f"| {algo} | " + " | ".join(vals) + " |")
        lines.append("")
    return "\n".join(lines)


def run_benchmark(
    scenarios: Sequence[str],
    out_dir: str | Path,
    *,
    baselines: Sequence[str] | None = None,
    algos: Sequence[str] = (),
    seeds: Sequence[int] = (0,),
    agents: Sequence[str | Path] = (),
    n_patients: int = DEFAULT_PATIENTS,
    eval_seed: int = EVAL_SEED,
    timesteps: int | None = None,
    train_overrides: Mapping[str, Any] | None = None,
    train_config: str | Path | None = None,
    n_envs: int | None = None,
    planner: Mapping[str, Any] | None = None,
    backend: str = "local",
    workers: int = 1,
    address: str | None = None,
    on_done: OnDone | None = None,
    force: bool = False,
    follow_up_days: float = 0.0,
    open_loop: Mapping[str, Any] | None = None,
    skip_baselines: Sequence[str] = (),
    setting: str = "default",
    tiers: Sequence[str] = (),
) -> dict[str, list[dict[str, Any]]]:
    """Plan, run (skipping finished units with the same key) and report a benchmark.

    :param follow_up_days: untreated follow-up after the horizon in every evaluation (see
        :func:`oncogym.agents.evaluate.rollout`); the scores include it
    :param open_loop: settings of the open-loop search (the ``open_loop`` baseline and the
        planner's ``anchor="open_loop"``)
    :param skip_baselines: baselines left out when ``baselines`` is ``None``
    :param setting: a difficulty tier (:mod:`oncogym.envs.settings`): every evaluation runs
        in it (a shifted tier on the shifted test cohort) and every training run trains in
        it (on the training population); part of every unit's key
    :param tiers: robustness tiers in which the agents and baselines (the planners aside)
        are evaluated again, as trained and searched in ``setting`` (:func:`run_tiers`)
    :param force: recompute the finished units whose key differs from the settings given
        (without it they are refused; see the module's docstring)
    :return: metric rows per scenario (also written under ``out_dir``)
    :raises StaleResultError: before anything runs, when finished units in ``out_dir``
        were computed with other settings (and not ``force``)
    :raises BenchmarkError: after every other unit finished, naming each failed unit
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: unknown {backend!r}; allowed: {', '.join(BACKENDS)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected a positive integer, got {workers!r}")
    from oncogym.envs.settings import get_setting

    get_setting(setting)
    check_planner(planner or {})
    check_open_loop(open_loop or {})
    if isinstance(follow_up_days, bool) or not isinstance(follow_up_days, int | float):
        raise ValueError(f"follow_up_days: expected a number of days >= 0, got {follow_up_days!r}")
    if not follow_up_days >= 0:
        raise ValueError(f"follow_up_days: expected a number of days >= 0, got {follow_up_days!r}")
    train_units, eval_units = plan_units(
        scenarios,
        baselines=baselines,
        algos=algos,
        seeds=seeds,
        agents=agents,
        skip=skip_baselines,
    )
    cfg = BenchmarkConfig(
        out_dir=str(out_dir),
        n_patients=int(n_patients),
        eval_seed=int(eval_seed),
        timesteps=timesteps,
        train_overrides=dict(train_overrides or {}),
        planner=dict(planner or {}),
        train_config=None if train_config is None else str(train_config),
        n_envs=n_envs,
        follow_up_days=float(follow_up_days),
        open_loop=dict(open_loop or {}),
        setting=setting,
    )
    check_units([*train_units, *eval_units], cfg, force=force)  # before anything runs
    for tcfg, units in plan_tiers(cfg, eval_units, tiers):
        check_units(units, tcfg, force=force)
    run = {"backend": backend, "workers": workers, "address": address, "on_done": on_done}
    t0 = time.perf_counter()
    failures = run_units(train_units, cfg, **run)
    t_train = time.perf_counter() - t0
    ok_eval = [
        u for u in eval_units if not (u.algo and f"train:{u.scenario}:{u.policy}" in failures)
    ]
    failures.update(run_units(ok_eval, cfg, **run))
    finished = [u for u in eval_units if cfg.result_path(u).exists()]
    rows = report(cfg, finished) if finished else {}
    t_main = time.perf_counter() - t0
    if tiers and finished:
        _, failed = run_tiers(cfg, finished, tiers, force=force, **run)
        failures.update(failed)
    manifest = {
        "scenarios": list(scenarios),
        "config": asdict(cfg),
        "units": [asdict(u) for u in (*train_units, *eval_units)],
        "backend": backend,
        "workers": workers,
        "tiers": list(tiers),
        "wall_s_train": t_train,
        "wall_s_main": t_main,
        "wall_s_total": time.perf_counter() - t0,
        "failed": {k: f"{type(e).__name__}: {e}" for k, e in failures.items()},
    }
    atomic_write_bytes(Path(out_dir) / "benchmark.json", json.dumps(manifest, indent=2).encode())
    if failures:
        raise BenchmarkError(failures)
    return rows
