"""Clinical readouts (oncogym.clinical): diameter, RECIST 1.1, BOR, PFS/OS, KM, toxicity.

Expected values are computed by hand in the comments; the per-scan RECIST and the
best overall response are also checked against a plain per-patient reference written
separately below, on random series (hypothesis).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from oncogym import clinical as cl
from oncogym.clinical import Response as R

CR, PR, SD, PD, NE = (int(r) for r in (R.CR, R.PR, R.SD, R.PD, R.NE))


def scans_of(values_mm, scan_days=None, **kw):
    """RECIST on a series given directly at the scans (scan grid = output grid)."""
    d = np.asarray(values_mm, dtype=float)
    days = np.arange(d.shape[-1]) * 42.0 if scan_days is None else np.asarray(scan_days, float)
    return cl.recist_responses(d, days, days, **kw)


# --- diameter -----------------------------------------------------------------------
def test_diameter_of_1e9_cells_is_12_41_mm():
    # V = 1 cm³ → d = (6/π)^(1/3) cm = 1.2407 cm
    assert cl.tumour_diameter_mm(1e9) == pytest.approx(12.407009817988, rel=1e-12)
    assert cl.tumour_diameter_mm(1e9) == pytest.approx(10 * (6 / math.pi) ** (1 / 3))
    assert isinstance(cl.tumour_diameter_mm(1e9), float)


def test_diameter_scaling_and_density():
    d = cl.tumour_diameter_mm(np.array([[0.0, 1e9, 8e9, 1e12]]))
    assert d.shape == (1, 4)
    assert_allclose(d[0], [0.0, 12.407009817988, 24.814019635976, 124.07009817988], rtol=1e-12)
    # half the density → double the volume → diameter × 2^(1/3)
    assert cl.tumour_diameter_mm(1e9, cells_per_cm3=5e8) == pytest.approx(
        12.407009817988 * 2 ** (1 / 3)
    )


# --- RECIST per scan ----------------------------------------------------------------
def test_baseline_scan_is_ne_and_unchanged_is_sd():
    r = scans_of([50.0, 50.0, 50.0])
    assert_array_equal(r.category, [NE, SD, SD])
    assert r.measurable
    assert r.progression_day == np.inf


def test_partial_response_boundary_30_percent_from_baseline():
    # 50 → 35 mm is exactly −30 % → PR; 35.5 mm (−29 %) → SD
    assert_array_equal(scans_of([50.0, 35.0]).category, [NE, PR])
    assert_array_equal(scans_of([50.0, 35.5]).category, [NE, SD])


def test_progression_needs_20_percent_and_5_mm():
    # nadir 20 mm: 24 mm is +20 % but only +4 mm → SD; 25 mm is +25 % and +5 mm → PD
    assert_array_equal(scans_of([20.0, 24.0]).category, [NE, SD])
    assert_array_equal(scans_of([20.0, 25.0]).category, [NE, PD])
    # nadir 100 mm: +19 mm (19 %) → SD; +20 mm (20 %) → PD
    assert_array_equal(scans_of([100.0, 119.0]).category, [NE, SD])
    assert_array_equal(scans_of([100.0, 120.0]).category, [NE, PD])


def test_progression_is_from_nadir_not_baseline():
    # 50 → 30 (−40 %, PR) → 37: still −26 % vs baseline, but +23 % and +7 mm vs nadir 30 → PD
    r = scans_of([50.0, 30.0, 37.0])
    assert_array_equal(r.category, [NE, PR, PD])
    assert r.progression_day == 84.0
    # and the nadir includes the baseline: 50 → 55 (SD) → 60 (+20 %, +10 mm vs 50) → PD
    assert_array_equal(scans_of([50.0, 55.0, 60.0]).category, [NE, SD, PD])
    # nadir is the minimum of all earlier scans, not the previous one: 50, 30, 34 (SD vs 30
    # would need ≥ 36), 36 (+6 mm, +20 % vs 30) → PD
    assert_array_equal(scans_of([50.0, 30.0, 34.0, 36.0]).category, [NE, PR, PR, PD])


def test_complete_response_then_regrowth_is_progression():
    # below 10 mm = not seen = CR; its measured diameter is 0, so reappearance (≥ 10 mm,
    # i.e. ≥ 5 mm over nadir 0) is PD; progression is absorbing even if it shrinks again
    r = scans_of([50.0, 9.9, 0.0, 10.0, 5.0, 40.0])
    assert_array_equal(r.category, [NE, CR, CR, PD, PD, PD])
    assert r.progression_day == 3 * 42.0
    # with a 5 mm detection limit, 9.9 mm is a −80 % PR
    r5 = scans_of([50.0, 9.9], cr_threshold_mm=5.0)
    assert_array_equal(r5.category, [NE, PR])


def test_not_measurable_baseline_is_ne_until_pd():
    r = scans_of([8.0, 9.0, 4.0, 14.0])
    assert not r.measurable
    assert_array_equal(r.category, [NE, NE, NE, PD])


def test_scans_after_death_are_ne_and_do_not_progress():
    r = scans_of([50.0, 30.0, 80.0, 90.0], death_day=60.0)
    assert_array_equal(r.category, [NE, PR, NE, NE])
    assert r.progression_day == np.inf
    assert r.last_assessment_day == 42.0
    # a scan on the day of death is still done
    r = scans_of([50.0, 30.0, 80.0], death_day=84.0)
    assert_array_equal(r.category, [NE, PR, PD])


def test_diameter_between_output_times_is_interpolated_linearly():
    r = cl.recist_responses([50.0, 30.0], [0.0, 5.0], [0.0, 10.0])
    assert_allclose(r.diameter_mm, [50.0, 40.0])
    assert_array_equal(r.category, [NE, SD])  # −20 %
    r = cl.recist_responses([[50.0, 30.0, 30.0]], [0.0, 7.5], [0.0, 10.0, 20.0])
    assert_allclose(r.diameter_mm, [[50.0, 35.0]])
    assert_array_equal(r.category, [[NE, PR]])


def test_custom_thresholds():
    assert_array_equal(scans_of([50.0, 40.0], pr_decrease=0.2).category, [NE, PR])
    assert_array_equal(scans_of([20.0, 24.0], pd_min_increase_mm=4.0).category, [NE, PD])
    assert_array_equal(scans_of([100.0, 110.0], pd_increase=0.1).category, [NE, PD])


# --- best overall response ------------------------------------------------------------
DAYS = np.array([0.0, 21.0, 42.0, 84.0])


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ([NE, PR, SD, PD], PR),  # unconfirmed PR counts, even early
        ([NE, PR, CR, SD], CR),  # CR beats PR
        ([NE, SD, SD, SD], SD),  # SD at day 42 ≥ 42
        ([NE, SD, PD, PD], PD),  # SD only at day 21 < 42, then PD
        ([NE, SD, NE, NE], NE),  # SD too early, no PD (e.g. death, end of follow-up)
        ([NE, NE, NE, NE], NE),
        ([NE, PD, CR, CR], PD),  # nothing after the first PD counts
        ([NE, SD, SD, PD], SD),  # SD long enough before PD
        ([NE, NE, PD, PD], PD),
    ],
)
def test_best_overall_response(category, expected):
    assert cl.best_overall_response(category, DAYS) == expected


def test_sd_duration_is_from_baseline_and_configurable():
    assert cl.best_overall_response([NE, SD, NE, NE], DAYS, min_sd_days=21.0) == SD
    assert cl.best_overall_response([NE, SD, NE, NE], DAYS + 100.0, min_sd_days=21.0) == SD
    assert cl.best_overall_response([NE, SD, SD, NE], DAYS, min_sd_days=43.0) == NE


def test_bor_vectorised_and_objective_response():
    cats = np.array([[NE, PR, SD, PD], [NE, SD, PD, PD], [NE, CR, CR, CR], [NE, SD, SD, SD]])
    bor = cl.best_overall_response(cats, DAYS)
    assert bor.dtype == np.int8
    assert_array_equal(bor, [PR, PD, CR, SD])
    assert_array_equal(cl.objective_response(bor), [True, False, True, False])
    assert_array_equal(cl.response_names(bor), ["PR", "PD", "CR", "SD"])
    assert cl.objective_response(CR) is True
    assert cl.RESPONSE_NAMES == ("CR", "PR", "SD", "PD", "NE")


# --- death, OS, PFS ---------------------------------------------------------------------
def test_death_interpolates_in_log_cells():
    # ln 1e12 is halfway between ln 1e11 and ln 1e13 → day 5 (linear in cells would give 0.91)
    assert cl.death_day([1e11, 1e13], [0.0, 10.0]) == pytest.approx(5.0, rel=1e-12)
    # 1e10 → 1e13 over days 10..40: ln-fraction (12-10)/(13-10) = 2/3 → day 30
    t = [0.0, 10.0, 40.0]
    assert cl.death_day([1e9, 1e10, 1e13], t) == pytest.approx(30.0, rel=1e-12)
    assert cl.death_day([1e9, 1e12, 1e13], t) == 10.0  # reached exactly at an output time
    assert cl.death_day([1e12, 1e9, 1e9], t) == 0.0  # lethal from the start
    assert cl.death_day([0.0, 0.0, 2e12], t) == 40.0  # log interpolation from 0 → later time
    assert cl.death_day([1e9, 1e11, 1e11], t) == np.inf
    assert cl.death_day([1e9, 1e10, 1e11], t, lethal_cells=1e11) == 40.0


def test_death_flag_and_burden_take_the_earlier():
    t = [0.0, 10.0, 20.0]
    cells = np.array([[1e9, 1e9, 1e9], [1e11, 1e13, 1e13], [1e11, 1e13, 1e13]])
    flag = np.array([[0, 0, 1], [0, 1, 1], [0, 0, 0]], dtype=bool)
    assert_allclose(cl.death_day(cells, t, death=flag), [20.0, 5.0, 5.0])
    flag[1] = [1, 1, 1]
    assert_allclose(cl.death_day(cells, t, death=flag.astype(int)), [20.0, 0.0, 5.0])


def test_overall_survival_events_and_censoring():
    t = [0.0, 10.0, 20.0]
    cells = np.array([[1e11, 1e13, 1e13], [1e9, 1e9, 1e9]])
    os_ = cl.overall_survival(cells, t)
    assert_allclose(os_.time_days, [5.0, 20.0])
    assert_array_equal(os_.event, [True, False])
    single = cl.overall_survival([1e9, 1e9, 1e9], t, death=[False, True, True])
    assert single.time_days == 10.0
    assert single.event


def test_pfs_progression_death_and_censoring_at_last_scan():
    t = np.arange(0.0, 101.0)
    scans = [0.0, 42.0, 84.0]
    diam = np.full((4, t.size), 50.0)
    diam[0, 60:] = 70.0  # PD seen at the day-84 scan
    diam[2, 30:] = 80.0  # PD seen at day 42 …
    cells = np.full((4, t.size), 1e10)
    cells[1, 50:] = 1e13  # dies on day 49.x … without PD at any scan before death
    cells[2, 50:] = 1e13  # … and also dies after its PD
    cells[1:3, 49] = 1e11  # ln-halfway between day 49 (1e11) and day 50 (1e13) → 49.5
    dead = cl.death_day(cells, t)
    assert_allclose(dead, [np.inf, 49.5, 49.5, np.inf])
    rec = cl.recist_responses(diam, scans, t, death_day=dead)
    os_ = cl.overall_survival(cells, t)
    pfs = cl.progression_free_survival(rec, os_)
    assert_allclose(pfs.time_days, [84.0, 49.5, 42.0, 84.0])  # last: censored at last scan, not 100
    assert_array_equal(pfs.event, [True, True, True, False])
    assert_allclose(os_.time_days, [100.0, 49.5, 49.5, 100.0])
    assert_array_equal(rec.category[1], [NE, SD, NE])  # day-84 scan after death
    assert_array_equal(rec.category[2], [NE, PD, NE])
    assert_allclose(rec.last_assessment_day, [84.0, 42.0, 42.0, 84.0])


# --- Kaplan–Meier ----------------------------------------------------------------------
def test_kaplan_meier_hand_example_with_ties_and_censoring():
    # t:  2  3  3  3  5  6  7  8     (event 1 / censored 0)
    # e:  1  1  1  0  0  1  0  1
    # t=2: n=8, d=1 → S = 7/8 = 0.875
    # t=3: n=7 (censored-at-3 still at risk), d=2 → S = 0.875·5/7 = 0.625
    # t=6: n=3 (6, 7, 8), d=1 → S = 0.625·2/3 = 0.41667   → median 6
    # t=8: n=1, d=1 → S = 0
    time = [3, 2, 3, 8, 5, 6, 7, 3]
    event = [1, 1, 0, 1, 0, 1, 0, 1]
    km = cl.kaplan_meier(time, event)
    assert_allclose(km.time_days, [2, 3, 6, 8])
    assert_array_equal(km.at_risk, [8, 7, 3, 1])
    assert_array_equal(km.events, [1, 2, 1, 1])
    assert_allclose(km.survival, [0.875, 0.625, 0.625 * 2 / 3, 0.0])
    assert cl.median_survival_days(time, event) == 6.0


def test_kaplan_meier_median_conventions():
    # S = 0.75, 0.5, 0.25, 0: smallest t with S ≤ 0.5 is 2 (no midpoint rule, unlike R's 2.5)
    assert cl.median_survival_days([1, 2, 3, 4], [True] * 4) == 2.0
    # never below 0.5: S = 0.75 then censored → not reached
    assert cl.median_survival_days([1, 2, 3, 4], [True, False, False, False]) == np.inf
    assert cl.median_survival_days([5.0, 6.0], [False, False]) == np.inf
    # 10 at risk; censoring at 1 and 2; events at 3 (n=8 → S=7/8), 4,4,4 (n=7 → S=7/8·4/7=0.5)
    t = [1, 2, 3, 4, 4, 4, 9, 9, 9, 9]
    e = [0, 0, 1, 1, 1, 1, 0, 0, 0, 0]
    assert_allclose(cl.kaplan_meier(t, e).survival, [7 / 8, 0.5])
    assert cl.median_survival_days(t, e) == 4.0


@given(st.lists(st.integers(0, 30), min_size=1, max_size=40))
def test_kaplan_meier_without_censoring_is_the_empirical_survival(times):
    t = np.asarray(times, float)
    km = cl.kaplan_meier(t, np.ones(t.size, bool))
    expected = [np.mean(t > u) for u in km.time_days]
    assert_allclose(km.survival, expected, atol=1e-12)
    # median: smallest observed time with at least half the sample at or before it
    assert cl.median_survival_days(t, np.ones(t.size, bool)) == np.sort(t)[(t.size - 1) // 2]


@given(
    st.lists(st.tuples(st.integers(0, 20), st.booleans()), min_size=1, max_size=40),
)
def test_kaplan_meier_is_a_nonincreasing_probability(rows):
    t = [r[0] for r in rows]
    e = [r[1] for r in rows]
    km = cl.kaplan_meier(t, e)
    assert np.all((km.survival >= 0) & (km.survival <= 1))
    assert np.all(np.diff(km.survival) <= 0)
    assert km.events.sum() == sum(e)


# --- toxicity ----------------------------------------------------------------------------
def test_worst_grade_and_grade3plus_rate():
    grades = {
        "neutropenia": np.array([[0, 1, 3, 2], [0, 0, 1, 0], [2, 4, 1, 0]]),
        "irae": np.array([[0, 0, 0, 0], [1, 3, 3, 1], [0, 0, 0, 0]]),
    }
    worst = cl.worst_grade(grades)
    assert_array_equal(worst["neutropenia"], [3, 1, 4])
    assert_array_equal(worst["irae"], [0, 3, 0])
    rates = cl.grade3plus_rate(worst)
    assert rates == pytest.approx({"neutropenia": 2 / 3, "irae": 1 / 3, "any": 1.0})
    assert "any" not in cl.grade3plus_rate(worst, include_any=False)
    assert cl.worst_grade({"crs": [0, 2, 1]})["crs"] == 2


def test_grade3plus_is_per_patient_and_counts_toxic_deaths():
    """One definition of a patient's grade >= 3 toxicity: worst grade 3, 4 or 5 (a toxic
    death counts), once per patient however many categories reach it; the rates are its
    means."""
    worst = {"irae": np.array([0, 3, 4, 5, 2, 5]), "crs": np.array([3, 0, 4, 0, 2, 5])}
    assert_array_equal(cl.grade3plus(worst), [True, True, True, True, False, True])
    assert_array_equal(cl.grade3plus(worst, "irae"), [False, True, True, True, False, True])
    assert_array_equal(cl.grade3plus(worst, "crs"), [True, False, True, False, False, True])
    assert cl.grade3plus(worst).dtype == np.bool_
    rates = cl.grade3plus_rate(worst)
    assert rates == pytest.approx({"irae": 4 / 6, "crs": 3 / 6, "any": 5 / 6})
    assert rates["any"] == np.mean(cl.grade3plus(worst))
    assert cl.SEVERE_GRADE == 3


# --- summary and the wired-up cohort -------------------------------------------------------
def test_summarise_hand_example():
    bor = np.array([CR, PR, SD, PD, NE], dtype=np.int8)
    pfs = cl.Survival(np.array([100.0, 80.0, 60.0, 42.0, 10.0]), np.array([0, 1, 1, 1, 1], bool))
    os_ = cl.Survival(np.array([100.0, 100.0, 90.0, 70.0, 10.0]), np.array([0, 0, 1, 1, 1], bool))
    worst = {"neutropenia": np.array([0, 3, 0, 0, 5])}
    s = cl.summarise(bor, pfs, os_, worst)
    assert s["n_patients"] == 5
    assert s["objective_response_rate"] == pytest.approx(0.4)
    assert s["complete_response_rate"] == pytest.approx(0.2)
    assert s["disease_control_rate"] == pytest.approx(0.6)
    # PFS: events at 10 (n=5 → 0.8), 42 (0.6), 60 (0.4) → median 60
    assert s["median_pfs_days"] == 60.0
    # OS: events at 10 (0.8), 70 (0.6), 90 (n=3 → 0.4) → median 90
    assert s["median_os_days"] == 90.0
    assert s["grade3plus_rate"] == pytest.approx({"neutropenia": 0.4, "any": 0.4})
    assert "grade3plus_rate" not in cl.summarise(bor, pfs, os_)


def test_patient_readouts_wires_grade5_death_into_recist_pfs_and_os():
    t = np.arange(0.0, 127.0)
    scans = [0.0, 42.0, 84.0, 126.0]
    cells = np.full((2, t.size), 1e10)
    cells[:, 30:] = 2e9  # diameter 26.7 → 15.6 mm: −42 % → PR from day 42
    tox = np.zeros((2, t.size), dtype=int)
    tox[1, 60:] = 5  # patient 1 dies of toxicity on day 60
    out = cl.patient_readouts(cells, t, scans, grades={"neutropenia": tox})
    assert_array_equal(out.recist.category, [[NE, PR, PR, PR], [NE, PR, NE, NE]])
    assert_array_equal(out.best_response, [PR, PR])
    assert_allclose(out.os.time_days, [126.0, 60.0])
    assert_array_equal(out.os.event, [False, True])
    assert_allclose(out.pfs.time_days, [126.0, 60.0])
    assert_array_equal(out.pfs.event, [False, True])
    assert_array_equal(out.worst_grades["neutropenia"], [0, 5])
    one = cl.patient_readouts(cells[1], t, scans, grades={"neutropenia": tox[1]})
    assert one.best_response == PR
    assert one.os.time_days == 60.0
    assert one.pfs.event
    assert_array_equal(one.recist.category, [NE, PR, NE, NE])


# --- reference implementation and properties -------------------------------------------
def reference_recist(d_scans, thr=10.0):
    """RECIST on one patient's diameters at the scans, written out scan by scan."""
    measured = [x if x >= thr else 0.0 for x in d_scans]
    base = measured[0]
    nadir = base
    out, progressed = [NE], False
    for x, seen in zip(measured[1:], [x >= thr for x in d_scans[1:]], strict=True):
        if progressed:
            out.append(PD)
        elif seen and x - nadir >= 0.2 * nadir - 1e-9 and x - nadir >= 5.0 - 1e-9:
            out.append(PD)
            progressed = True
        elif base == 0.0:
            out.append(NE)
        elif not seen:
            out.append(CR)
        elif x <= 0.7 * base + 1e-9:
            out.append(PR)
        else:
            out.append(SD)
        nadir = min(nadir, x)
    return out


def reference_bor(cats, days, min_sd=42.0):
    seen = []
    for c in cats:
        seen.append(c)
        if c == PD:
            break
    days = days[: len(seen)]
    if CR in seen:
        return CR
    if PR in seen:
        return PR
    if any(c in (CR, PR, SD) and d - days[0] >= min_sd for c, d in zip(seen, days, strict=True)):
        return SD
    return PD if PD in seen else NE


series = st.lists(
    st.lists(st.integers(0, 80).map(float), min_size=6, max_size=6), min_size=1, max_size=8
)


@given(series, st.sampled_from([21.0, 42.0, 56.0]))
@settings(max_examples=200)
def test_recist_and_bor_match_reference(rows, interval):
    d = np.asarray(rows)
    days = np.arange(d.shape[1]) * interval
    r = cl.recist_responses(d, days, days)
    bor = cl.best_overall_response(r.category, days)
    for i, row in enumerate(rows):
        expected = reference_recist(row)
        assert r.category[i].tolist() == expected
        assert bor[i] == reference_bor(expected, days)
        assert bor[i] in [int(x) for x in R]


@given(
    st.lists(
        st.lists(st.floats(1e6, 1e13), min_size=8, max_size=8),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.integers(0, 7), min_size=6, max_size=6),
)
@settings(max_examples=100)
def test_vectorised_equals_per_patient_loop_and_pfs_le_os(rows, tox_start):
    t = np.array([0.0, 10.0, 30.0, 42.0, 60.0, 84.0, 100.0, 126.0])
    scans = np.array([0.0, 42.0, 84.0, 126.0])
    cells = np.asarray(rows)
    n = cells.shape[0]
    tox = np.zeros(cells.shape, dtype=int)
    for i in range(n):
        if tox_start[i] < 7:
            tox[i, tox_start[i] :] = 5
    flag = tox == 5
    diam = cl.tumour_diameter_mm(cells)
    dead = cl.death_day(cells, t, death=flag)
    rec = cl.recist_responses(diam, scans, t, death_day=dead)
    os_ = cl.overall_survival(cells, t, death=flag)
    pfs = cl.progression_free_survival(rec, os_)
    bor = cl.best_overall_response(rec.category, scans)
    batch = cl.patient_readouts(cells, t, scans, grades={"g": tox})
    assert_array_equal(batch.best_response, bor)
    assert_array_equal(batch.pfs.time_days, pfs.time_days)
    for i in range(n):
        d1 = cl.death_day(cells[i], t, death=flag[i])
        assert d1 == dead[i]
        r1 = cl.recist_responses(diam[i], scans, t, death_day=d1)
        assert_array_equal(r1.category, rec.category[i])
        assert r1.progression_day == rec.progression_day[i]
        o1 = cl.overall_survival(cells[i], t, death=flag[i])
        p1 = cl.progression_free_survival(r1, o1)
        assert (o1.time_days, o1.event) == (os_.time_days[i], os_.event[i])
        assert (p1.time_days, p1.event) == (pfs.time_days[i], pfs.event[i])
        assert cl.best_overall_response(r1.category, scans) == bor[i]
        one = cl.patient_readouts(cells[i], t, scans, grades={"g": tox[i]})
        assert one.best_response == bor[i]
    # properties
    assert np.all(pfs.time_days <= os_.time_days)
    assert np.all(pfs.event >= os_.event)  # a death is always a PFS event
    assert np.all(np.isin(bor, [int(x) for x in R]))


# --- bad input ---------------------------------------------------------------------------
T3 = [0.0, 10.0, 20.0]
OK_REC = cl.recist_responses([50.0, 40.0, 30.0], [0.0, 20.0], T3)
OK_OS = cl.overall_survival([1e9, 1e9, 1e9], T3)

BAD = [
    ("cells", lambda: cl.tumour_diameter_mm(-1.0)),
    ("cells", lambda: cl.tumour_diameter_mm([1e9, np.nan])),
    ("cells", lambda: cl.tumour_diameter_mm("many")),
    ("cells_per_cm3", lambda: cl.tumour_diameter_mm(1e9, cells_per_cm3=0.0)),
    ("cells_per_cm3", lambda: cl.tumour_diameter_mm(1e9, cells_per_cm3=np.inf)),
    ("diameter_mm", lambda: cl.recist_responses([50.0, -1.0, 3.0], [0.0], T3)),
    ("diameter_mm", lambda: cl.recist_responses([50.0, 40.0], [0.0], T3)),
    ("diameter_mm", lambda: cl.recist_responses([[[[50.0, 40.0, 1.0]]]], [0.0], T3)),
    ("diameter_mm", lambda: cl.recist_responses(np.zeros((0, 3)), [0.0], T3)),
    ("diameter_mm", lambda: cl.recist_responses([50.0, np.inf, 1.0], [0.0], T3)),
    ("scan_days", lambda: cl.recist_responses([50.0] * 3, [0.0, 30.0], T3)),
    ("scan_days", lambda: cl.recist_responses([50.0] * 3, [10.0, 5.0], T3)),
    ("scan_days", lambda: cl.recist_responses([50.0] * 3, [], T3)),
    ("t_days", lambda: cl.recist_responses([50.0] * 3, [0.0], [0.0, 10.0, 10.0])),
    ("t_days", lambda: cl.recist_responses([50.0] * 3, [0.0], [0.0, np.nan, 20.0])),
    ("cr_threshold_mm", lambda: cl.recist_responses([50.0] * 3, [0.0], T3, cr_threshold_mm=-1)),
    ("cr_threshold_mm", lambda: cl.recist_responses([50.0] * 3, [0.0], T3, cr_threshold_mm=True)),
    ("pr_decrease", lambda: cl.recist_responses([50.0] * 3, [0.0], T3, pr_decrease=1.0)),
    ("pd_increase", lambda: cl.recist_responses([50.0] * 3, [0.0], T3, pd_increase=-0.1)),
    (
        "pd_min_increase_mm",
        lambda: cl.recist_responses([50.0] * 3, [0.0], T3, pd_min_increase_mm=np.nan),
    ),
    ("death_day", lambda: cl.recist_responses([50.0] * 3, [0.0], T3, death_day=np.nan)),
    ("death_day", lambda: cl.recist_responses([50.0] * 3, [0.0], T3, death_day=[1.0, 2.0])),
    ("category", lambda: cl.best_overall_response([NE, 7], [0.0, 42.0])),
    ("category", lambda: cl.best_overall_response([NE, 1.5], [0.0, 42.0])),
    ("category", lambda: cl.best_overall_response([NE, SD, SD], [0.0, 42.0])),
    ("category", lambda: cl.best_overall_response([True, False], [0.0, 42.0])),
    ("scan_days", lambda: cl.best_overall_response([NE, SD], [42.0, 0.0])),
    ("min_sd_days", lambda: cl.best_overall_response([NE, SD], [0.0, 42.0], min_sd_days=-1)),
    ("best_response", lambda: cl.objective_response([0, 9])),
    ("codes", lambda: cl.response_names([-1])),
    ("cells", lambda: cl.death_day([1e9, -1.0, 1e9], T3)),
    ("t_days", lambda: cl.death_day([1e9, 1e9, 1e9], [[0.0, 1.0, 2.0]])),
    ("lethal_cells", lambda: cl.death_day([1e9] * 3, T3, lethal_cells=0.0)),
    ("death", lambda: cl.death_day([1e9] * 3, T3, death=[0, 2, 0])),
    ("death", lambda: cl.death_day([1e9] * 3, T3, death=[False, True])),
    ("cells", lambda: cl.overall_survival([1e9, 1e9], T3)),
    ("lethal_cells", lambda: cl.overall_survival([1e9] * 3, T3, lethal_cells=-1e12)),
    ("responses", lambda: cl.progression_free_survival((1, 2), OK_OS)),
    ("overall", lambda: cl.progression_free_survival(OK_REC, (20.0, False))),
    (
        "overall",
        lambda: cl.progression_free_survival(OK_REC, cl.Survival(np.zeros(2), np.zeros(2, bool))),
    ),
    ("survival.time_days", lambda: cl.kaplan_meier([], [])),
    ("survival.time_days", lambda: cl.kaplan_meier([1.0, np.nan], [1, 1])),
    ("survival.event", lambda: cl.kaplan_meier([1.0, 2.0], [1, 1, 0])),
    ("survival.event", lambda: cl.median_survival_days([1.0, 2.0], [1, 3])),
    ("grades", lambda: cl.worst_grade([0, 1, 2])),
    ("grades['crs']", lambda: cl.worst_grade({"crs": [0, 6]})),
    ("grades['crs']", lambda: cl.worst_grade({"crs": [0, -1]})),
    ("grades['crs']", lambda: cl.worst_grade({"crs": [0, 1.5]})),
    ("grades['crs']", lambda: cl.worst_grade({"crs": [True, False]})),
    ("worst_grades", lambda: cl.grade3plus_rate([1, 2])),
    ("worst_grades", lambda: cl.grade3plus_rate({"any": [1]})),
    ("worst_grades['b']", lambda: cl.grade3plus_rate({"a": [1, 2], "b": [3]})),
    ("worst_grades['a']", lambda: cl.grade3plus_rate({"a": [[1, 2]]})),
    ("worst_grades", lambda: cl.grade3plus([1, 2])),
    ("worst_grades", lambda: cl.grade3plus({})),
    ("worst_grades['b']", lambda: cl.grade3plus({"a": [1, 2], "b": [3]})),
    ("worst_grades['a']", lambda: cl.grade3plus({"a": [1, 6]})),
    ("category", lambda: cl.grade3plus({"a": [1, 2]}, "crs")),
    ("best_response", lambda: cl.summarise([], OK_OS, OK_OS)),
    ("best_response", lambda: cl.summarise([5], OK_OS, OK_OS)),
    ("pfs", lambda: cl.summarise([SD], (1.0, True), OK_OS)),
    ("os", lambda: cl.summarise([SD, SD], cl.Survival(np.ones(2), np.ones(2, bool)), OK_OS)),
    (
        "worst_grades['a']",
        lambda: cl.summarise(
            [SD],
            cl.Survival(np.ones(1), np.ones(1, bool)),
            OK_OS._replace(time_days=np.ones(1), event=np.ones(1, bool)),
            {"a": [1, 2]},
        ),
    ),
    ("grades['g']", lambda: cl.patient_readouts([1e9] * 3, T3, [0.0], grades={"g": [0, 0]})),
    ("scan_days", lambda: cl.patient_readouts([1e9] * 3, T3, [0.0, 25.0])),
]


@pytest.mark.parametrize(("field", "call"), BAD, ids=[f"{i}-{b[0]}" for i, b in enumerate(BAD)])
def test_bad_input_raises_value_error_naming_the_field(field, call):
    with pytest.raises(ValueError, match=f"^{re.escape(field)}"):
        call()
