"""oncogym.survival (the one Kaplan–Meier, on lifelines) against hand-computed values and
lifelines' own results."""

from __future__ import annotations

import numpy as np
import pytest
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test

from oncogym import clinical, survival

# a small hand-checked example: times with ties and censoring
T = np.array([1, 2, 2, 3, 4, 4, 5, 6, 7, 8], dtype=float)
E = np.array([1, 1, 0, 1, 1, 1, 0, 1, 0, 1])


def test_median_matches_hand_computation_and_numpy_core():
    # S: t=1 9/10; t=2 (1 event, 9 at risk) 0.8; t=3 (7 at risk) 0.6857; t=4 (2 of 6) 0.457
    res = survival.median_survival(T, E)
    assert res.median_days == 4.0
    assert res.n == 10 and res.events == 7
    km = clinical.kaplan_meier(T, E)
    assert clinical.median_survival_days(T, E) == res.median_days
    s_at_4 = km.survival[km.time_days == 4.0][0]
    assert s_at_4 == pytest.approx(0.9 * (8 / 9) * (6 / 7) * (4 / 6))


def test_an_estimate_of_exactly_one_half_is_the_median():
    """S = 7/8 · 4/7 = 1/2 at t = 4: lifelines computes 0.5000000000000001 and its own
    median skips to "not reached"; the median is the smallest t with S(t) <= 1/2."""
    t = [1, 2, 3, 4, 4, 4, 9, 9, 9, 9]
    e = [0, 0, 1, 1, 1, 1, 0, 0, 0, 0]
    assert KaplanMeierFitter().fit(t, e).median_survival_time_ == np.inf
    assert survival.median_survival_days(t, e) == 4.0
    assert survival.median_survival(t, e).median_days == 4.0
    # no censoring, an even cohort: half have died exactly at the 5th death
    t10 = np.arange(1.0, 11.0)
    assert survival.median_survival_days(t10, np.ones(10, bool)) == 5.0


def test_clinical_and_evaluator_share_the_one_kaplan_meier():
    assert clinical.kaplan_meier is survival.kaplan_meier
    assert clinical.median_survival_days is survival.median_survival_days
    assert clinical.survival_at is survival.survival_at


def test_median_ci_matches_lifelines():
    rng = np.random.default_rng(1)
    t = rng.exponential(300, 200)
    e = rng.random(200) < 0.8
    res = survival.median_survival(t, e)
    kmf = KaplanMeierFitter().fit(t, e)
    assert res.median_days == kmf.median_survival_time_
    assert res.ci_low_days <= res.median_days <= res.ci_high_days
    assert res.median_days == pytest.approx(300 * np.log(2) / 0.8, rel=0.25)


def test_log_rank_matches_lifelines_and_detects_difference():
    rng = np.random.default_rng(2)
    a = rng.exponential(400, 300)
    b = rng.exponential(250, 300)
    ea = np.ones(300, bool)
    eb = np.ones(300, bool)
    ours = survival.log_rank(a, ea, b, eb)
    ref = logrank_test(a, b, event_observed_A=ea, event_observed_B=eb)
    assert ours.statistic == pytest.approx(ref.test_statistic)
    assert ours.p_value == pytest.approx(ref.p_value)
    assert ours.p_value < 1e-4
    same = survival.log_rank(a, ea, a, ea)
    assert same.p_value == pytest.approx(1.0)


def test_log_rank_hand_computed_two_by_two():
    """Two arms, one event each: A at t=1 (2 at risk, 1 in A), B at t=2."""
    # t=1: n=4 at risk (2 A, 2 B), d=1 in A: E_A = 0.5, V = 2*2*1*3/(16*3) = 0.25
    # t=2: n=2 (1 A, 1 B) after A's event & B's... B event at t=2: E_A = 0.5, V = 0.25
    a_t, a_e = np.array([1.0, 3.0]), np.array([1, 0])
    b_t, b_e = np.array([2.0, 3.0]), np.array([1, 0])
    o_minus_e = (1 - 0.5) + (0 - 1 / 3)
    var = 0.25 + (1 * 2 * 1 * 2) / (3**2 * 2)
    res = survival.log_rank(a_t, a_e, b_t, b_e)
    assert res.statistic == pytest.approx(o_minus_e**2 / var)


def test_hazard_ratio_recovers_exponential_ratio():
    rng = np.random.default_rng(3)
    a = rng.exponential(1 / 0.5, 2000)
    b = rng.exponential(1 / 1.0, 2000)
    hr, low, high = survival.hazard_ratio(a, np.ones(2000), b, np.ones(2000))
    assert low < 0.5 < high
    assert hr == pytest.approx(0.5, rel=0.1)


@pytest.mark.parametrize(
    ("t", "e", "message"),
    [
        (np.array([1.0, -1.0]), np.array([1, 1]), "time_days must be finite and >= 0"),
        (np.array([1.0, np.nan]), np.array([1, 1]), "time_days must be finite"),
        (np.array([1.0, 2.0]), np.array([1, 2]), "event must be 0/1"),
        (np.array([1.0, 2.0]), np.array([1]), "same length"),
        (np.array([]), np.array([]), "at least one patient"),
    ],
)
def test_bad_input(t, e, message):
    with pytest.raises(ValueError, match=message):
        survival.median_survival(t, e)
