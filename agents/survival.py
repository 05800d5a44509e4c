"""Survival statistics for cohort evaluation, on lifelines.

Kaplan–Meier medians with 95 % confidence intervals, log-rank tests against a
reference arm (the standard of care) and Cox hazard ratios.  Inputs are per-patient
``(time_days, event)`` arrays as produced by :func:`oncogym.clinical.overall_survival`
and :func:`oncogym.clinical.progression_free_survival`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test
from lifelines.utils import median_survival_times

DAYS_PER_MONTH = 365.25 / 12.0


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


def _check(time_days: np.ndarray, event: np.ndarray, field: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(time_days, dtype=np.float64)
    e = np.asarray(event)
    if t.ndim != 1 or t.shape != e.shape:
        raise ValueError(f"{field}: time_days and event must be 1-D arrays of the same length")
    if t.size == 0:
        raise ValueError(f"{field}: needs at least one patient")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError(f"{field}: time_days must be finite and >= 0")
    if not np.all(np.isin(e, (0, 1, True, False))):
        raise ValueError(f"{field}: event must be 0/1 or boolean")
    return t, e.astype(bool)


def median_survival(time_days, event, *, alpha: float = 0.05) -> MedianSurvival:
    """Kaplan–Meier median and its (1 − alpha) confidence interval (lifelines)."""
    t, e = _check(time_days, event, "median_survival")
    kmf = KaplanMeierFitter(alpha=alpha).fit(t, e)
    ci = median_survival_times(kmf.confidence_interval_)
    low, high = (float(x) for x in np.asarray(ci, dtype=np.float64).ravel()[:2])
    return MedianSurvival(
        median_days=float(kmf.median_survival_time_),
        ci_low_days=low,
        ci_high_days=high,
        n=int(t.size),
        events=int(e.sum()),
    )


def log_rank(time_days, event, ref_time_days, ref_event) -> LogRank:
    """Log-rank test of one arm against a reference arm (two-sided)."""
    t, e = _check(time_days, event, "log_rank")
    rt, re_ = _check(ref_time_days, ref_event, "log_rank(reference)")
    res = logrank_test(t, rt, event_observed_A=e, event_observed_B=re_)
    return LogRank(statistic=float(res.test_statistic), p_value=float(res.p_value))


def hazard_ratio(time_days, event, ref_time_days, ref_event) -> tuple[float, float, float]:
    """Cox proportional-hazards ratio of an arm vs a reference arm, with 95 % CI."""
    import pandas as pd

    t, e = _check(time_days, event, "hazard_ratio")
    rt, re_ = _check(ref_time_days, ref_event, "hazard_ratio(reference)")
    df = pd.DataFrame(
        {
            "time": np.concatenate([t, rt]),
            "event": np.concatenate([e, re_]).astype(int),
            "arm": np.concatenate([np.ones(t.size), np.zeros(rt.size)]),
        }
    )
    cph = CoxPHFitter().fit(df, duration_col="time", event_col="event")
    hr = float(np.exp(cph.params_["arm"]))
    low, high = (float(np.exp(x)) for x in cph.confidence_intervals_.loc["arm"])
    return hr, low, high
