"""Cohort evaluation in the clinic's terms: response, survival, toxicity, return.

A policy (a baseline of :mod:`oncogym.agents.policies`, the planner or a trained SB3
agent) treats every patient of a named test cohort (:meth:`oncogym.scenarios.Cohort.test`:
fixed seed, disjoint from the training draws) for one episode, through the environment's
own transition (:mod:`oncogym.envs.functional`), under the default ``"qaly"`` reward.
:func:`rollout` returns an :class:`EvaluationResult` (per-patient arrays);
:func:`summarise` turns it into metrics — objective and complete response rates (95 %
Wilson intervals), Kaplan–Meier median PFS and OS with 95 % intervals and OS at 12 and 24
months (lifelines), grade >= 3 toxicity rate per category and in any category
(:func:`oncogym.clinical.grade3plus`), mean QALYs and mean return,
log-rank test and Cox hazard ratio of OS against a reference arm (the standard of care);
:func:`write_report` writes CSV, Markdown and PNG figures (Kaplan–Meier curves, swimmer
plots of the schedules given, example trajectories).

Definitions: OS = day of death (lethal burden or grade-5 toxicity), censored at the
horizon; PFS = first RECIST 1.1 progression on the scan schedule (the environment's own
readout, from the measured scans) or death, censored at the horizon; best overall
response = the environment's (confirmed-free) RECIST best response; grade >= 3 toxicity
= the patient's worst grade in the episode (up to death or the horizon) is 3, 4 or 5
(:func:`oncogym.clinical.grade3plus`, the definition of the calibration report's grade
rates: the same protocol on the same cohort gives the same figure, unless it switches at
progression, which the environment reads off its noisy scans and the report's
:meth:`~oncogym.scenarios.Cohort.run` off the true lesions); an integrator failure
ends that patient's episode and is counted in ``errors`` (censored at that day).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oncogym.clinical import (
    DAYS_PER_MONTH,
    SEVERE_GRADE,
    Response,
    grade3plus_rate,
    survival_at,
)
from oncogym.envs import OncologyVectorEnv
from oncogym.envs import functional as Fn
from oncogym.envs.task import TASKS, EnvParams
from oncogym.rules import DAYS_PER_YEAR

EVAL_SEED = 2024
"""Seed of the evaluation's scan noise (and of the patients of literature tasks)."""
DEFAULT_PATIENTS = 200
"""Default size of the test cohort."""
VALIDATION_DRAW = 9_999
"""Index of the training-distribution cohort used for validation (:meth:`Cohort.train`
draw ``k``): hyperparameter search and the clinical metrics logged while training."""


def validation_cohort(task: str, n_patients: int) -> tuple[Any, int]:
    """``(cohort, seed)`` of the validation patients of ``task``: a draw of the training
    distribution (never the test cohort); ``None`` for a literature task (its patients are
    then drawn from the seed)."""
    from oncogym.scenarios import Cohort

    cohort = Cohort.train(task, n_patients, VALIDATION_DRAW) if task in TASKS else None
    return cohort, VALIDATION_DRAW


class CohortRunner:
    """A cohort stepped for exactly one episode each (no autoreset), on the env's dynamics.

    Builds and resets an :class:`~oncogym.envs.OncologyVectorEnv` (same validation, same
    patients, same scan noise for the same seed) and steps its functional environment
    (:meth:`OncologyFunctional.step <oncogym.envs.functional.OncologyFunctional.step>`)
    directly, so that finished patients stay finished.  Exposes what policies may
    ``attach`` to, like the vector env: ``params``, ``functional``, ``patients``,
    ``state`` (the read-only view), ``num_envs``, ``action_mode``, ``observation_names``,
    the single spaces and :meth:`action_masks`.
    """

    def __init__(
        self,
        task: str,
        n_patients: int,
        *,
        cohort: Any = None,
        action_mode: str = "continuous",
        seed: int = EVAL_SEED,
        env_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        kwargs = dict(env_kwargs or {})
        # every policy is scored on the default reward: an agent trained on other weights
        # or another reward is compared with the baselines on the same scale
        kwargs.pop("reward", None)
        kwargs.pop("reward_weights", None)
        kwargs.pop("action_mode", None)
        self.venv = OncologyVectorEnv(n_patients, task, action_mode=action_mode, **kwargs)
        options = None if cohort is None else {"cohort": cohort}
        self.obs, _ = self.venv.reset(seed=seed, options=options)
        self.functional: Fn.OncologyFunctional = self.venv.functional
        self.patients: Fn.Patients = self.venv.patients
        self.params: EnvParams = self.functional.params
        self.state = self.patients.view
        self.num_envs = n_patients
        self.action_mode = action_mode
        self.min_dose_fraction = self.functional.min_dose_fraction
        self.observation_names = self.venv.observation_names
        self.single_action_space = self.venv.single_action_space
        self.single_observation_space = self.venv.single_observation_space

    def action_masks(self) -> np.ndarray:
        return self.venv.action_masks()

    def step(self, actions: Any) -> Fn.Step:
        """Apply ``actions`` to every patient (the ``"qaly"`` reward)."""
        out = self.functional.step(self.patients, actions, parallel=True)
        self.obs = out.observation.copy()
        return out

    def done(self) -> np.ndarray:
        terminated, truncated = self.functional.terminal(self.patients)
        return terminated | truncated


@dataclass
class EvaluationResult:
    """Per-patient outcome of one policy on one cohort (arrays have one row per patient)."""

    policy: str
    task: str
    therapies: tuple[str, ...]
    tox_categories: tuple[str, ...]
    decision_days: int
    horizon_days: float
    returns: np.ndarray
    qalys: np.ndarray
    os_days: np.ndarray
    death: np.ndarray
    death_cause: np.ndarray
    pfs_days: np.ndarray
    pfs_event: np.ndarray
    best_response: np.ndarray
    worst_grade: np.ndarray
    doses: np.ndarray
    """Delivered amounts, ``(n, n_steps, n_therapies)`` (clinical units)."""
    burden: np.ndarray
    """True tumour cells at each decision day, ``(n, n_steps + 1)`` (NaN after death)."""
    errors: int
    wall_s: float
    meta: dict[str, Any] = field(default_factory=dict)
    follow_up_days: float = 0.0
    """Untreated follow-up simulated after the horizon (0: none)."""
    follow_up_returns: np.ndarray | None = None
    """Return of the follow-up window per patient (see :func:`rollout`); ``None`` without."""

    @property
    def n(self) -> int:
        return int(self.returns.shape[0])

    @property
    def score_returns(self) -> np.ndarray:
        """Return over the horizon plus the untreated follow-up (the benchmark's score per
        patient; the plain return when there is no follow-up)."""
        if self.follow_up_returns is None:
            return self.returns
        return self.returns + self.follow_up_returns


def _actions_of(policy: Any, obs: np.ndarray, state: Any, start: np.ndarray) -> tuple[Any, Any]:
    out = policy.predict(obs, state=state, episode_start=start, deterministic=True)
    if isinstance(out, tuple) and len(out) == 2:
        return out
    return out, None


def rollout(
    policy: Any,
    task: str,
    *,
    n_patients: int = DEFAULT_PATIENTS,
    cohort: Any = None,
    seed: int = EVAL_SEED,
    env_kwargs: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    follow_up_days: float = 0.0,
) -> EvaluationResult:
    """Treat each patient of the test cohort for one episode with ``policy``.

    With ``follow_up_days`` > 0 every patient alive at the horizon is followed, untreated,
    for that many more days on the same dynamics (its whole state carried over), and
    ``follow_up_returns`` holds what the default reward adds there: the quality-adjusted
    life lived in the window minus the years lost in it at death; a patient who died before
    the horizon loses the whole window (``death_weight`` × window in years), as in one
    episode of horizon + follow-up with no treatment after the horizon.  Doses that only
    pay off before the horizon and harm after it (a late toxic drug: the toxicity comes
    after the episode ends) then cost what they cost.  Response, progression and survival
    metrics stay those of the treatment horizon.

    :param policy: anything with SB3's ``predict`` (and optionally ``attach(env)``,
        ``action_mode``, ``env_kwargs``, ``name``)
    :param task: a scenario (test cohort :meth:`Cohort.test(task, n_patients)
        <oncogym.scenarios.Cohort.test>`) or a literature task (patients drawn with seeds
        ``seed + i``)
    :param n_patients: cohort size (ignored when ``cohort`` is given)
    :param cohort: an explicit :class:`~oncogym.scenarios.Cohort`
    :param seed: seed of the scan noise
    :param env_kwargs: environment arguments (default: the policy's ``env_kwargs``, less
        its ``population``), e.g. ``{"setting": "irregular"}``: a difficulty tier
        (:mod:`oncogym.envs.settings`); with a population shift (``"shift"``, ``"hard"``)
        the test cohort is :meth:`Cohort.test(task, n_patients, shift=...)
        <oncogym.scenarios.Cohort.test>` unless ``population="train"`` is given here
    :param progress: called as ``progress(step, n_steps)`` after every step
    :param follow_up_days: untreated follow-up after the horizon (days; 0 = none)
    """
    from oncogym.envs.settings import evaluation_shift
    from oncogym.scenarios import Cohort

    if (
        isinstance(follow_up_days, bool)
        or not isinstance(follow_up_days, int | float)
        or not math.isfinite(follow_up_days)
        or follow_up_days < 0
    ):
        raise ValueError(f"follow_up_days: expected a number of days >= 0, got {follow_up_days!r}")

    mode = getattr(policy, "action_mode", "continuous")
    kwargs = dict(getattr(policy, "env_kwargs", None) or {})
    # an agent trained on a shifted tier's training population is tested on its test
    # population: the policy's population does not carry over (only env_kwargs' does)
    kwargs.pop("population", None)
    kwargs.update(env_kwargs or {})
    if cohort is None and task in TASKS:
        cohort = Cohort.test(task, n_patients, shift=evaluation_shift(kwargs))
    n = len(cohort) if cohort is not None else int(n_patients)
    if n < 1:
        raise ValueError(f"n_patients: expected a positive integer, got {n_patients!r}")
    trained_on = getattr(policy, "env_id", None)
    if trained_on is not None and getattr(policy, "task", task) != task:
        raise ValueError(
            f"policy: trained on {trained_on} ({policy.task}); evaluate it on {policy.task}, "
            f"not {task}"
        )
    t0 = time.perf_counter()
    runner = CohortRunner(task, n, cohort=cohort, action_mode=mode, seed=seed, env_kwargs=kwargs)
    if hasattr(policy, "attach"):
        policy.attach(runner)
    p, s = runner.params, runner.state
    n_steps, nt = p.n_steps, p.n_therapies
    doses = np.zeros((n, n_steps, nt))
    burden = np.full((n, n_steps + 1), np.nan)
    burden[:, 0] = Fn.tumour_cells(s.y, p.tumour_index)
    returns = np.zeros(n)
    qalys = np.zeros(n)
    pfs_day = np.full(n, np.nan)
    obs, state = runner.obs, None
    start = np.ones(n, dtype=np.bool_)
    for k in range(n_steps):
        was_alive = s.alive.copy()
        actions, state = _actions_of(policy, obs, state, start)
        start = np.zeros(n, dtype=np.bool_)
        out = runner.step(np.asarray(actions).reshape(n, -1))
        obs = runner.obs
        returns += out.reward
        qalys += out.interval.qaly - out.interval.treatment_loss
        doses[:, k] = out.interval.delivered
        burden[:, k + 1] = np.where(was_alive, Fn.tumour_cells(s.y, p.tumour_index), np.nan)
        newly = s.progressed & np.isnan(pfs_day)
        pfs_day[newly] = s.scan_day[newly]
        if progress is not None:
            progress(k + 1, n_steps)
        if runner.done().all():
            break
    cause = np.asarray(Fn.DEATH_CAUSES)[s.death_cause]
    died = (cause == "tumour") | (cause == "toxicity")
    os_days = np.where(cause != "none", s.death_day, p.horizon_days)
    os_days = np.minimum(os_days, p.horizon_days)
    prog = ~np.isnan(pfs_day)
    pfs_days = np.where(prog, np.minimum(np.nan_to_num(pfs_day, nan=np.inf), os_days), os_days)
    fu_returns = None
    if follow_up_days > 0:
        fu_returns = _follow_up(runner, task, cohort, seed, mode, kwargs, float(follow_up_days))
    return EvaluationResult(
        policy=str(getattr(policy, "name", type(policy).__name__)),
        task=task,
        therapies=p.therapies,
        tox_categories=p.tox_categories,
        decision_days=p.decision_days,
        horizon_days=float(p.horizon_days),
        returns=returns,
        qalys=qalys,
        os_days=os_days,
        death=died,
        death_cause=cause,
        pfs_days=pfs_days,
        pfs_event=prog | died,
        best_response=s.best_response.copy(),
        worst_grade=s.worst_grade.copy(),
        doses=doses,
        burden=burden,
        errors=int(np.sum(cause == "error")),
        wall_s=time.perf_counter() - t0,
        meta={
            "seed": seed,
            "n_patients": n,
            "cohort": repr(cohort) if cohort is not None else None,
            "setting": p.setting.name,
        },
        follow_up_days=float(follow_up_days),
        follow_up_returns=fu_returns,
    )


def _follow_up(
    runner: CohortRunner,
    task: str,
    cohort: Any,
    seed: int,
    mode: str,
    kwargs: Mapping[str, Any],
    days: float,
) -> np.ndarray:
    """Return of an untreated follow-up of ``days`` after the horizon (see :func:`rollout`)."""
    p = runner.params
    n = runner.num_envs
    ext = dict(kwargs)
    ext["horizon_days"] = float(p.horizon_days) + days
    follow = CohortRunner(task, n, cohort=cohort, action_mode=mode, seed=seed, env_kwargs=ext)
    # the whole state carries over; only the pre-drawn scan noise is longer (more scans)
    for d_rec, s_rec in (
        (follow.patients.state, runner.patients.state),
        (follow.patients.interval, runner.patients.interval),
    ):
        for d, src in zip(d_rec, s_rec, strict=True):
            if d.shape == src.shape:
                d[...] = src
            else:
                d[:, : src.shape[1]] = src
    alive = runner.state.alive.copy()
    out = np.zeros(n)
    out[~alive] = -p.death_weight * days / DAYS_PER_YEAR
    zero = np.zeros((n, p.n_therapies), dtype=np.int64 if mode == "discrete" else np.float64)
    while not follow.done().all():
        step = follow.step(zero)
        out += np.where(alive, step.reward, 0.0)
    return out


# --- metrics -------------------------------------------------------------------------------
def wilson_interval(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion ``k / n``."""
    if n <= 0:
        return math.nan, math.nan
    ph = k / n
    denom = 1 + z * z / n
    centre = (ph + z * z / (2 * n)) / denom
    half = z * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def summarise(
    result: EvaluationResult, reference: EvaluationResult | None = None
) -> dict[str, Any]:
    """Metrics of one policy (and its OS comparison with ``reference``).

    Keys: ``policy, n, orr, orr_low, orr_high, cr_rate, cr_low, cr_high,
    median_pfs_months (+ _low/_high), median_os_months (+ _low/_high), os_12m, os_horizon
    (KM OS at 12 months and at the horizon),
    grade3_<category> and grade3_any (:func:`oncogym.clinical.grade3plus`: worst grade
    3, 4 or 5, toxic deaths included), grade3_events (categories at grade >= 3 per
    patient: the mean episode cost of constrained RL, ``info["cost"]`` added up, when no
    category is at grade >= 3 on day 0), mean_qalys, qalys_sem, mean_return, return_sem,
    follow_up_days, mean_score, score_sem (the return plus the follow-up, see :func:`rollout`),
    tox_deaths, errors, wall_s`` and, with a reference, ``os_logrank_p, os_hr, os_hr_low,
    os_hr_high, qalys_diff, qalys_diff_low, qalys_diff_high`` (a paired difference: the
    same patients).  Medians not reached are ``inf``.
    """
    from oncogym.survival import hazard_ratio, log_rank, median_survival

    n = result.n
    br = result.best_response
    n_or = int(np.sum((br == Response.CR) | (br == Response.PR)))
    n_cr = int(np.sum(br == Response.CR))
    out: dict[str, Any] = {"policy": result.policy, "task": result.task, "n": n}
    out["orr"] = n_or / n
    out["orr_low"], out["orr_high"] = wilson_interval(n_or, n)
    out["cr_rate"] = n_cr / n
    out["cr_low"], out["cr_high"] = wilson_interval(n_cr, n)
    for key, t, e in (
        ("pfs", result.pfs_days, result.pfs_event),
        ("os", result.os_days, result.death),
    ):
        ms = median_survival(t, e)
        m, lo, hi = ms.months()
        out[f"median_{key}_months"], out[f"median_{key}_months_low"] = m, lo
        out[f"median_{key}_months_high"] = hi
    day12 = 12 * DAYS_PER_MONTH
    out["os_12m"] = (
        survival_at(result.os_days, result.death, day12)
        if day12 <= result.horizon_days
        else math.nan
    )
    out["os_horizon"] = survival_at(result.os_days, result.death, result.horizon_days)
    # grade >= 3 toxicity by the core's one definition (clinical.grade3plus), as the
    # calibration report counts it: worst grade 3, 4 or 5 over the days the patient lived
    worst = {c: result.worst_grade[:, j] for j, c in enumerate(result.tox_categories)}
    rates = grade3plus_rate(worst) if worst else {"any": 0.0}
    for cat in result.tox_categories:
        out[f"grade3_{cat}"] = rates[cat]
    out["grade3_any"] = rates["any"]
    severe = result.worst_grade >= SEVERE_GRADE
    out["grade3_events"] = float(severe.sum(axis=1).mean()) if severe.size else 0.0
    out["mean_qalys"] = float(result.qalys.mean())
    out["qalys_sem"] = float(result.qalys.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    out["mean_return"] = float(result.returns.mean())
    out["return_sem"] = float(result.returns.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    score = result.score_returns
    out["follow_up_days"] = float(result.follow_up_days)
    out["mean_score"] = float(score.mean())
    out["score_sem"] = float(score.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    out["tox_deaths"] = int(np.sum(result.death_cause == "toxicity"))
    out["errors"] = result.errors
    out["wall_s"] = result.wall_s
    if reference is not None:
        if reference.n != n:
            raise ValueError("reference: must be evaluated on the same cohort")
        if result is reference or result.policy == reference.policy:
            nan = math.nan
            out.update(
                os_logrank_p=nan,
                os_hr=1.0,
                os_hr_low=nan,
                os_hr_high=nan,
                qalys_diff=0.0,
                qalys_diff_low=nan,
                qalys_diff_high=nan,
            )
        else:
            lr = log_rank(result.os_days, result.death, reference.os_days, reference.death)
            out["os_logrank_p"] = lr.p_value
            if result.death.any() or reference.death.any():
                hr = hazard_ratio(result.os_days, result.death, reference.os_days, reference.death)
            else:
                hr = (math.nan, math.nan, math.nan)
            out["os_hr"], out["os_hr_low"], out["os_hr_high"] = hr
            d = result.qalys - reference.qalys
            sem = d.std(ddof=1) / math.sqrt(n) if n > 1 else math.nan
            out["qalys_diff"] = float(d.mean())
            out["qalys_diff_low"] = float(d.mean() - 1.959963984540054 * sem)
            out["qalys_diff_high"] = float(d.mean() + 1.959963984540054 * sem)
    return out


# --- report ----------------------------------------------------------------------------------
def _fmt_pct(x: float, lo: float | None = None, hi: float | None = None) -> str:
    if lo is None:
        return f"{100 * x:.1f}"
    return f"{100 * x:.1f} ({100 * lo:.0f}–{100 * hi:.0f})"


def _fmt_months(m: float, lo: float, hi: float) -> str:
    def one(v: float) -> str:
        return "NR" if not np.isfinite(v) else f"{v:.1f}"

    return f"{one(m)} ({one(lo)}–{one(hi)})"


def _months(r: Mapping[str, Any], key: str) -> str:
    k = f"median_{key}_months"
    return _fmt_months(r[k], r[f"{k}_low"], r[f"{k}_high"])


def _fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return "—"
    return "<0.001" if p < 1e-3 else f"{p:.3f}"


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The headline table (one row per policy) in Markdown."""
    head = (
        "| policy | ORR % (95 % CI) | CR % | median PFS, mo (95 % CI) | median OS, mo (95 % CI) "
        "| OS at horizon % | grade ≥ 3 % | QALYs (mean ± sem) | Δ QALYs vs SoC (95 % CI) "
        "| OS log-rank p | OS HR (95 % CI) | return | score |\n"
        "|---|---|---:|---|---|---:|---:|---|---|---:|---|---:|---:|\n"
    )
    lines = []
    for r in rows:
        hr = r.get("os_hr", math.nan)
        hr_s = (
            "—"
            if not np.isfinite(r.get("os_hr_low", math.nan))
            else (f"{hr:.2f} ({r['os_hr_low']:.2f}–{r['os_hr_high']:.2f})")
        )
        dq = r.get("qalys_diff", math.nan)
        dq_s = (
            "—"
            if not np.isfinite(r.get("qalys_diff_low", math.nan))
            else (f"{dq:+.3f} ({r['qalys_diff_low']:+.3f}, {r['qalys_diff_high']:+.3f})")
        )
        os_end = r.get("os_horizon", math.nan)
        lines.append(
            f"| {r['policy']} | {_fmt_pct(r['orr'], r['orr_low'], r['orr_high'])} "
            f"| {_fmt_pct(r['cr_rate'])} "
            f"| {_months(r, 'pfs')} | {_months(r, 'os')} "
            f"| {'—' if not np.isfinite(os_end) else f'{100 * os_end:.1f}'} "
            f"| {_fmt_pct(r['grade3_any'])} "
            f"| {r['mean_qalys']:.3f} ± {r['qalys_sem']:.3f} | {dq_s} "
            f"| {_fmt_p(r.get('os_logrank_p', math.nan))} | {hr_s} | {r['mean_return']:.3f} "
            f"| {r.get('mean_score', r['mean_return']):.3f} |"
        )
    days = {float(r.get("follow_up_days", 0.0)) for r in rows}
    note = (
        "\nscore: the return plus an untreated follow-up of "
        f"{', '.join(f'{d:g}' for d in sorted(days))} days after the horizon.\n"
        if any(days)
        else "\nscore: the return (no follow-up after the horizon).\n"
    )
    return head + "\n".join(lines) + "\n" + note


def toxicity_table(rows: Sequence[Mapping[str, Any]], categories: Sequence[str]) -> str:
    """Grade >= 3 rate per toxicity category (Markdown)."""
    head = "| policy | " + " | ".join(categories) + " | any | toxic deaths |\n"
    head += "|---|" + "---:|" * (len(categories) + 2) + "\n"
    body = [
        f"| {r['policy']} | "
        + " | ".join(f"{100 * r[f'grade3_{c}']:.1f}" for c in categories)
        + f" | {100 * r['grade3_any']:.1f} | {r['tox_deaths']} |"
        for r in rows
    ]
    return head + "\n".join(body) + "\n"


def patients_frame(results: Sequence[EvaluationResult]) -> Any:
    """One row per (policy, patient): outcomes and doses given (pandas DataFrame)."""
    import pandas as pd

    from oncogym.clinical import RESPONSE_NAMES

    frames = []
    for res in results:
        d = {
            "policy": res.policy,
            "patient": np.arange(res.n),
            "return": res.returns,
            "qalys": res.qalys,
            "os_days": res.os_days,
            "death": res.death.astype(int),
            "death_cause": res.death_cause,
            "pfs_days": res.pfs_days,
            "pfs_event": res.pfs_event.astype(int),
            "best_response": np.asarray(RESPONSE_NAMES)[res.best_response],
        }
        for j, c in enumerate(res.tox_categories):
            d[f"worst_grade_{c}"] = res.worst_grade[:, j]
        for j, t in enumerate(res.therapies):
            d[f"total_{t}"] = res.doses[:, :, j].sum(axis=1)
            d[f"administrations_{t}"] = (res.doses[:, :, j] > 0).sum(axis=1)
        frames.append(pd.DataFrame(d))
    return pd.concat(frames, ignore_index=True)


KM_CURVES_PER_PANEL = 6
"""At most this many Kaplan–Meier curves share one panel (the reference counts as one)."""
SWIMMER_PATIENTS = 30
"""Patients drawn in a swimmer plot (the first of the test cohort, sorted by survival)."""


def _km_panels(
    results: Sequence[EvaluationResult], reference: str | None
) -> tuple[EvaluationResult | None, list[list[EvaluationResult]]]:
    """The reference and the others in groups of at most ``KM_CURVES_PER_PANEL`` curves
    (the reference is drawn in every panel)."""
    ref = next((r for r in results if r.policy == reference), None)
    others = [r for r in results if r is not ref]
    per = KM_CURVES_PER_PANEL - (ref is not None)
    groups = [others[i : i + per] for i in range(0, len(others), per)] or [[]]
    return ref, groups


def _plot_km(
    results: Sequence[EvaluationResult],
    which: str,
    path: Path,
    title: str,
    reference: str | None = None,
) -> None:
    """Kaplan–Meier curves with 95 % bands, censoring ticks and a number-at-risk table;
    the reference (standard of care) in black in every panel, at most
    :data:`KM_CURVES_PER_PANEL` curves per panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from lifelines import KaplanMeierFitter
    from lifelines.plotting import add_at_risk_counts

    ref, groups = _km_panels(results, reference)
    horizon = max(r.horizon_days for r in results) / DAYS_PER_MONTH
    step = 3 if horizon <= 24 else 6 if horizon <= 60 else 12
    ticks = np.arange(0, math.ceil(horizon / step - 0.05) * step + 1e-9, step)
    n_rows = KM_CURVES_PER_PANEL + 1
    fig, axes = plt.subplots(
        len(groups), 1, figsize=(8, (3.4 + 0.2 * n_rows) * len(groups)), squeeze=False
    )
    colours = plt.get_cmap("tab10")
    label = "overall survival" if which == "os" else "progression-free survival"
    for a, group in zip(axes[:, 0], groups, strict=True):
        fitters = []
        members = ([ref] if ref is not None else []) + group
        for c, res in enumerate(members):
            t = (res.os_days if which == "os" else res.pfs_days) / DAYS_PER_MONTH
            e = res.death if which == "os" else res.pfs_event
            is_ref = res is ref
            name = f"{res.policy} (reference)" if is_ref else res.policy
            kmf = KaplanMeierFitter(label=name).fit(t, e)
            colour = "black" if is_ref else colours((c - (ref is not None)) % 10)
            kmf.plot_survival_function(
                ax=a,
                ci_show=True,
                ci_alpha=0.10,
                show_censors=True,
                censor_styles={"marker": "|", "ms": 5, "mew": 0.8},
                color=colour,
                lw=2.4 if is_ref else 1.3,
            )
            fitters.append(kmf)
        a.set_xlim(0, ticks[-1])
        a.set_xticks(ticks)
        a.set_ylim(0, 1.02)
        a.set_ylabel(label)
        a.set_xlabel("months since start of treatment")
        a.grid(alpha=0.25)
        a.legend(fontsize=7, loc="lower left", framealpha=0.85)
        add_at_risk_counts(
            *fitters, ax=a, rows_to_show=["At risk"], xticks=ticks[ticks <= horizon], fontsize=7
        )
    n = results[0].n
    panels = f", {len(groups)} panels" if len(groups) > 1 else ""
    axes[0, 0].set_title(
        f"{title}\n{n} patients per arm{panels}; shaded: 95 % confidence band, | censored",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_swimmer(res: EvaluationResult, path: Path, n_show: int = SWIMMER_PATIENTS) -> None:
    """One lane per patient: survival bar, every administration (marker area ∝ dose as a
    share of the largest dose of that therapy given in the cohort, day 0 included),
    progression and death."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = np.arange(min(n_show, res.n))
    idx = idx[np.argsort(res.os_days[idx], kind="stable")]
    nt = len(res.therapies)
    fig, ax = plt.subplots(figsize=(9, 0.3 * len(idx) + 2.2))
    colours = plt.get_cmap("tab10")
    days = np.arange(res.doses.shape[1]) * res.decision_days
    top = res.doses.max(axis=(0, 1))
    lane = 0.8 / max(nt, 1)
    for row, i in enumerate(idx):
        ax.barh(row, res.os_days[i], color="0.9", height=0.86, zorder=0)
        for j in range(nt):
            given = res.doses[i, :, j] > 0
            if not given.any():
                continue
            share = res.doses[i, given, j] / top[j]
            ax.scatter(
                days[given],
                np.full(given.sum(), row - 0.4 + lane * (j + 0.5)),
                s=4 + 36 * share,
                color=colours(j),
                marker="s",
                linewidths=0,
                zorder=2,
            )
        if res.pfs_event[i] and res.pfs_days[i] < res.os_days[i]:
            ax.scatter(res.pfs_days[i], row, marker=">", color="k", s=22, zorder=3)
        if res.death[i]:
            ax.scatter(res.os_days[i], row, marker="x", color="firebrick", s=30, zorder=3)
    for j, t in enumerate(res.therapies):
        label = f"{t} (largest dose {top[j]:.3g})" if top[j] > 0 else f"{t} (never given)"
        ax.scatter([], [], color=colours(j), marker="s", s=30, label=label)
    ax.scatter([], [], marker=">", color="k", label="progression (RECIST)")
    ax.scatter([], [], marker="x", color="firebrick", label="death")
    ax.set_yticks(range(len(idx)), [str(i) for i in idx], fontsize=6)
    ax.set_xlim(-0.6 * res.decision_days, res.horizon_days * 1.01)
    ax.set_ylim(-0.7, len(idx) - 0.3)
    ax.set_xlabel("day (marker area: dose as a share of the largest dose given)")
    ax.set_ylabel("patient (test cohort index)")
    shown = f"{len(idx)} of {res.n} patients" if len(idx) < res.n else f"all {res.n} patients"
    ax.set_title(
        f"{res.task}: schedules given by {res.policy}\n"
        f"{shown} (the first of the test cohort), sorted by overall survival",
        fontsize=10,
    )
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=min(nt + 2, 4))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_trajectories(results: Sequence[EvaluationResult], path: Path, n_show: int = 4) -> None:
    """The same ``n_show`` patients under every policy, on shared axes; a marker on a
    patient's curve at each day a dose was given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(results)
    cols = min(3, k)
    rows = math.ceil(k / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 3.2 * rows + 0.6), squeeze=False, sharex=True, sharey=True
    )
    colours = plt.get_cmap("tab10")
    for a, res in zip(axes.ravel(), results, strict=False):
        days = np.arange(res.burden.shape[1]) * res.decision_days
        for i in range(min(n_show, res.n)):
            a.semilogy(days, res.burden[i], lw=1.1, color=colours(i))
            dosed = (res.doses[i] > 0).any(axis=1)
            a.scatter(days[:-1][dosed], res.burden[i, :-1][dosed], s=9, color=colours(i), zorder=3)
        a.set_title(res.policy, fontsize=9)
        a.grid(alpha=0.25)
    for a in axes.ravel()[k:]:
        a.axis("off")
    for c in range(cols):
        lowest = axes[(k - 1 - c) // cols if c > (k - 1) % cols else rows - 1, c]
        lowest.set_xlabel("day")
        lowest.xaxis.set_tick_params(labelbottom=True)
    for a in axes[:, 0]:
        a.set_ylabel("tumour cells (true burden)")
    for i in range(min(n_show, results[0].n)):
        axes[0, 0].plot([], [], color=colours(i), label=f"patient {i}")
    axes[0, 0].scatter([], [], s=9, color="0.3", label="dose given")
    axes[0, 0].legend(fontsize=6, loc="lower left")
    fig.suptitle(
        f"{results[0].task}: the same {min(n_show, results[0].n)} test patients under each policy",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


REPORT_FILES = (
    "metrics.csv",
    "metrics.md",
    "patients.csv",
    "km_os.png",
    "km_pfs.png",
    "trajectories.png",
)
"""The files :func:`write_report` writes, besides one ``swimmer_<policy>.png`` per policy."""


def report_files(folder: str | Path) -> list[Path]:
    """The report files (:func:`write_report`'s) directly inside ``folder``: its plain files
    named in :data:`REPORT_FILES` or ``swimmer_*.png``; nothing in subfolders."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if (p.name in REPORT_FILES or (p.name.startswith("swimmer_") and p.suffix == ".png"))
        and (p.is_file() or p.is_symlink())
    )


def clear_report(folder: str | Path) -> list[Path]:
    """Remove the report files of an earlier :func:`write_report` from ``folder`` (only
    :func:`report_files`: a link is removed, not what it points to); return them."""
    removed = report_files(folder)
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def write_report(
    results: Sequence[EvaluationResult],
    out_dir: str | Path,
    *,
    reference: str | None = None,
    title: str | None = None,
    extra_rows: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Write ``metrics.csv``, ``metrics.md``, ``patients.csv``, ``km_os.png``,
    ``km_pfs.png``, ``swimmer_<policy>.png`` and ``trajectories.png`` to ``out_dir``.

    :param results: one per policy, all on the same cohort
    :param reference: the policy the others are compared with (e.g. the standard of care)
    :param extra_rows: extra columns per policy name (training budget, wall time …)
    :return: the metric rows
    """
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ref = None
    if reference is not None:
        found = [r for r in results if r.policy == reference]
        if not found:
            names = ", ".join(r.policy for r in results)
            raise ValueError(f"reference: {reference!r} is not among the policies ({names})")
        ref = found[0]
    rows = [summarise(r, ref) for r in results]
    for row in rows:
        row.update((extra_rows or {}).get(row["policy"], {}))
    pd.DataFrame(rows).to_csv(out / "metrics.csv", index=False)
    patients_frame(results).to_csv(out / "patients.csv", index=False)
    task = results[0].task
    heading = title or f"{task}: {results[0].n} test patients"
    md = [f"# {heading}\n"]
    if reference is not None:
        md.append(f"Comparisons (Δ QALYs, log-rank, hazard ratio) against `{reference}`.\n")
    md.append(markdown_table(rows))
    md.append("\n## Grade ≥ 3 toxicity, % of patients\n")
    md.append(toxicity_table(rows, results[0].tox_categories))
    (out / "metrics.md").write_text("\n".join(md))
    _plot_km(results, "os", out / "km_os.png", f"{task}: overall survival", reference)
    _plot_km(results, "pfs", out / "km_pfs.png", f"{task}: progression-free survival", reference)
    for res in results:
        _plot_swimmer(res, out / f"swimmer_{res.policy}.png")
    _plot_trajectories(results, out / "trajectories.png")
    return rows
