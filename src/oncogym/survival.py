"""Survival statistics, on lifelines: the project's one Kaplan–Meier.

Kaplan–Meier estimates (:func:`kaplan_meier`), medians (:func:`median_survival_days`; with
95 % confidence intervals: :func:`median_survival`), landmark survival
(:func:`survival_at`), log-rank tests (:func:`log_rank`) and Cox hazard ratios
(:func:`hazard_ratio`).  Inputs are per-patient ``(time_days, event)`` arrays, as
:func:`oncogym.clinical.overall_survival` and
:func:`oncogym.clinical.progression_free_survival` produce.

Conventions: lifelines' product-limit estimator, with censorings tied with events at
risk at that time, and its exponential-Greenwood confidence band; the median (and each
bound of its interval) is the smallest time with ``S(t) <= 0.5`` (no midpoint rule),
``inf`` when not reached, read with a tolerance of :data:`MEDIAN_RTOL`: lifelines
evaluates S as ``exp(Σ log(1 − d/n))``, so an estimate of exactly one half can come out
as 0.5000000000000001 (7/8 · 4/7), where lifelines' own median would then skip to the
next event or to "not reached"; the landmark ``S(day)`` counts events on that day.
lifelines (and pandas) are imported on first use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from oncogym.rules import DAYS_PER_MONTH

MEDIAN_RTOL = 1e-12
"""S(t) within this of one half counts as reaching it (see the module docstring)."""


class KaplanMeier(NamedTuple):
    """Product-limit estimate at each distinct event time."""

    time_days: np.ndarray
    """Distinct event times, increasing."""
    survival: np.ndarray
    """S(t) just after each event time."""
    at_risk: np.ndarray
    """Number at risk just before each event time."""
    events: np.ndarray
    """Number of events at each event time."""


@dataclass(frozen=True)
class MedianSurvival:
    """Kaplan–Meier median (days) with its 95 % confidence interval; inf = not reached."""

    median_days: float
    ci_low_days: float
    ci_high_days: float
    n: int
    events: int

    def months(self) -> tuple[float, float, float]:
        return (
            self.median_days / DAYS_PER_MONTH,
            self.ci_low_days / DAYS_PER_MONTH,
            self.ci_high_days / DAYS_PER_MONTH,
        )


@dataclass(frozen=True)
class LogRank:
    """Log-rank comparison of an arm against a reference arm."""

    statistic: float
    p_value: float


def check(time_days: Any, event: Any, field: str = "survival") -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(time_days, event)`` as float and bool arrays, else ``ValueError``.

    :param field: the name the messages use (``"<field>.time_days"``, ``"<field>.event"``)
    """
    if isinstance(time_days, (str, bytes)) or isinstance(time_days, dict):
        raise ValueError(f"{field}.time_days: expected a numeric array, got {time_days!r}")
    try:
        t = np.asarray(time_days, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{field}.time_days: expected a numeric array, got {time_days!r}"
        ) from None
    if t.ndim != 1 or t.size == 0:
        raise ValueError(
            f"{field}.time_days: must be a non-empty 1-D array (at least one patient), "
            f"got shape {t.shape}"
        )
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError(f"{field}.time_days: time_days must be finite and >= 0")
    e = np.asarray(event)
    if e.shape != t.shape:
        raise ValueError(
            f"{field}.event: time_days and event must be 1-D arrays of the same length, "
            f"got {t.shape} and {e.shape}"
        )
    if e.dtype != np.bool_:
        if e.dtype.kind not in "iuf" or not np.all(np.isin(e, (0, 1))):
            raise ValueError(f"{field}.event: event must be 0/1 or boolean")
        e = e.astype(bool)
    return t, e


def _fitter(t: np.ndarray, e: np.ndarray, alpha: float = 0.05) -> Any:
    from lifelines import KaplanMeierFitter

    return KaplanMeierFitter(alpha=alpha).fit(t, e)


def _first_at_or_below(curve: Any, q: float = 0.5) -> float:
    """Smallest time of a survival curve (a pandas Series or one-column frame) with
    ``S <= q`` (within :data:`MEDIAN_RTOL`); ``inf`` if never."""
    values = np.asarray(curve, dtype=np.float64).reshape(-1)
    hit = np.flatnonzero(values <= q + MEDIAN_RTOL)
    return float(curve.index[hit[0]]) if hit.size else float("inf")


def kaplan_meier(time_days: Any, event: Any) -> KaplanMeier:
    """Kaplan–Meier estimate at the distinct event times (lifelines).

    :param time_days: event or censoring times, ``(n,)``, finite, >= 0
    :param event: True for an event, False for censored, ``(n,)``
    """
    t, e = check(time_days, event)
    kmf = _fitter(t, e)
    table = kmf.event_table
    rows = table["observed"].to_numpy() > 0
    times = table.index.to_numpy(dtype=np.float64)[rows]
    surv = kmf.survival_function_.iloc[:, 0].reindex(table.index).to_numpy()[rows]
    return KaplanMeier(
        time_days=times,
        survival=surv,
        at_risk=table["at_risk"].to_numpy()[rows].astype(np.int64),
        events=table["observed"].to_numpy()[rows].astype(np.int64),
    )


def median_survival_days(time_days: Any, event: Any) -> float:
    """Kaplan–Meier median (days): smallest time with ``S(t) <= 0.5``; ``inf`` if not reached.

    :param time_days: event or censoring times, ``(n,)``, finite, >= 0
    :param event: True for an event, False for censored, ``(n,)``
    """
    t, e = check(time_days, event)
    return _first_at_or_below(_fitter(t, e).survival_function_)


def median_survival(time_days: Any, event: Any, *, alpha: float = 0.05) -> MedianSurvival:
    """Kaplan–Meier median and its (1 − alpha) confidence interval (lifelines)."""
    t, e = check(time_days, event, "median_survival")
    kmf = _fitter(t, e, alpha)
    band = kmf.confidence_interval_survival_function_
    low, high = (_first_at_or_below(band.iloc[:, i]) for i in (0, 1))
    return MedianSurvival(
        median_days=_first_at_or_below(kmf.survival_function_),
        ci_low_days=low,
        ci_high_days=high,
        n=int(t.size),
        events=int(e.sum()),
    )


def survival_at(time_days: Any, event: Any, day: float) -> float:
    """Kaplan–Meier survival at ``day`` (events on that day count; 1 before the first
    event; past the last time, the last estimate).

    :param time_days: event or censoring times, ``(n,)``, finite, >= 0
    :param event: True for an event, False for censored, ``(n,)``
    :param day: the landmark (days)
    """
    t, e = check(time_days, event)
    return float(_fitter(t, e).survival_function_at_times(float(day)).iloc[0])


def log_rank(time_days: Any, event: Any, ref_time_days: Any, ref_event: Any) -> LogRank:
    """Log-rank test of one arm against a reference arm (two-sided)."""
    from lifelines.statistics import logrank_test

    t, e = check(time_days, event, "log_rank")
    rt, re_ = check(ref_time_days, ref_event, "log_rank(reference)")
    res = logrank_test(t, rt, event_observed_A=e, event_observed_B=re_)
    return LogRank(statistic=float(res.test_statistic), p_value=float(res.p_value))


def hazard_ratio(
    time_days: Any, event: Any, ref_time_days: Any, ref_event: Any
) -> tuple[float, float, float]:
    """Cox proportional-hazards ratio of an arm vs a reference arm, with 95 % CI.

    ``(nan, nan, nan)`` when the fit does not converge (lifelines warns of, or fails on, a
    perfect separation: e.g. every death in one arm of a tiny cohort), where no finite
    ratio is estimable.
    """
    import warnings

    import pandas as pd
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError, ConvergenceWarning

    t, e = check(time_days, event, "hazard_ratio")
    rt, re_ = check(ref_time_days, ref_event, "hazard_ratio(reference)")
    df = pd.DataFrame(
        {
            "time": np.concatenate([t, rt]),
            "event": np.concatenate([e, re_]).astype(int),
            "arm": np.concatenate([np.ones(t.size), np.zeros(rt.size)]),
        }
    )
    nan = (math.nan, math.nan, math.nan)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            cph = CoxPHFitter().fit(df, duration_col="time", event_col="event")
        except ConvergenceError:
            return nan
    for w in caught:  # anything else is passed on
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        return nan
    hr = float(np.exp(cph.params_["arm"]))
    low, high = (float(np.exp(x)) for x in cph.confidence_intervals_.loc["arm"])
    return hr, low, high


__all__ = [
    "DAYS_PER_MONTH",
    "KaplanMeier",
    "LogRank",
    "MedianSurvival",
    "check",
    "hazard_ratio",
    "kaplan_meier",
    "log_rank",
    "median_survival",
    "median_survival_days",
    "survival_at",
]
