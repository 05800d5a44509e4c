"""The clinical rulebook (oncogym.rules): each rule against hand-computed cases, and the
rules defined once — the env kernel, the readouts and the adaptive policy all use them."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

import oncogym
from oncogym import clinical, rules
from oncogym.envs import OncologyEnv
from oncogym.toxicity import IRAE_HAZARD, NEUTROPENIA_ANC_PER_L

R = rules.RECIST_1_1


def test_diameter_and_its_inverse():
    assert rules.diameter_mm(1e9, 1e9) == pytest.approx(10.0 * (6.0 / math.pi) ** (1 / 3))
    assert rules.diameter_mm(1e12, 1e9) == pytest.approx(124.07, abs=0.01)
    for mm in (0.0, 3.0, 12.4, 80.0):
        assert rules.diameter_mm(rules.cells_of_diameter(mm, 1e9), 1e9) == pytest.approx(mm)


def test_progression_needs_twenty_percent_and_five_mm_over_the_nadir():
    assert not rules.is_progression(24.0, True, 20.0, R)  # +20 % but +4 mm
    assert rules.is_progression(24.0, True, 20.0, R._replace(pd_min_increase_mm=4.0))
    assert not rules.is_progression(110.0, True, 100.0, R)  # +10 mm but +10 %
    assert rules.is_progression(30.0, True, 25.0, R)  # +20 %, +5 mm: boundary included
    assert not rules.is_progression(29.9, True, 25.0, R)
    assert rules.is_progression(12.0, True, 0.0, R)  # a lesion reappearing after CR
    assert not rules.is_progression(0.0, False, 0.0, R)


def test_scan_response_precedence():
    base = 50.0
    assert rules.scan_response(35.0, True, base, True, 35.0, R) == rules.PR  # −30 %
    assert rules.scan_response(36.0, True, base, True, 36.0, R) == rules.SD
    assert rules.scan_response(0.0, False, base, True, 30.0, R) == rules.CR
    assert rules.scan_response(40.0, True, 0.0, False, 0.0, R) == rules.PD  # PD before NE
    assert rules.scan_response(0.0, False, 0.0, False, 0.0, R) == rules.NE


def test_follow_up_keeps_progression_absorbing_and_the_best_response():
    """Baseline 40 mm: 26 (PR), 12 (PR), 0 (CR), 14 (PD: back over the 0 nadir), 0 (PD)."""
    base, nadir, progressed, best = 40.0, 40.0, False, rules.NE
    seen = []
    for day, mm in ((42.0, 26.0), (84.0, 12.0), (126.0, 0.0), (168.0, 14.0), (210.0, 0.0)):
        cat, nadir, progressed, best = rules.follow_up(
            mm, mm > 0, day, base, True, nadir, progressed, best, R
        )
        seen.append(cat)
    assert seen == [rules.PR, rules.PR, rules.CR, rules.PD, rules.PD]
    assert best == rules.CR and progressed and nadir == 0.0
    # stable disease counts as best response only from 6 weeks on
    _, _, _, early = rules.follow_up(38.0, True, 41.0, base, True, base, False, rules.NE, R)
    _, _, _, late = rules.follow_up(38.0, True, 42.0, base, True, base, False, rules.NE, R)
    assert early == rules.NE and late == rules.SD


def test_lethal_crossing_is_linear_in_log_cells():
    day = rules.lethal_crossing_day(10.0, 1e11, 11.0, 1e13, 1e12)
    assert day == pytest.approx(10.5)
    assert rules.lethal_crossing_day(3.0, 0.0, 4.0, 2e12, 1e12) == 4.0


def test_grades_count_thresholds():
    thr = np.asarray(NEUTROPENIA_ANC_PER_L)
    assert [rules.grade_below(v, thr) for v in (2.5e9, 1.8e9, 1.2e9, 0.7e9, 0.1e9)] == [
        0, 1, 2, 3, 4,
    ]  # fmt: skip
    thr = np.asarray(IRAE_HAZARD)
    assert rules.grade_at_least(1.0 - 1e-12, thr) == 3  # within AT_LEAST_RTOL
    assert rules.grade_at_least(0.05, thr) == 0 and rules.grade_at_least(9.0, thr) == 4
    assert rules.grade_at_least(10.0, thr) == 5
    start = rules.low_run_start(0.05e9, 0.1e9, 3.0, np.inf)
    assert start == 3.0 and rules.low_run_start(0.05e9, 0.1e9, 9.0, start) == 3.0
    assert rules.low_run_start(0.2e9, 0.1e9, 10.0, start) == np.inf


def test_readouts_apply_the_same_rules():
    d = np.array([[40.0, 26.0, 12.0, 0.0, 14.0, 0.0]])
    scans = np.array([0.0, 42.0, 84.0, 126.0, 168.0, 210.0])
    res = clinical.recist_responses(d, scans, scans)
    assert res.category[0].tolist() == [rules.NE, rules.PR, rules.PR, rules.CR, rules.PD, rules.PD]
    assert res.progression_day[0] == 168.0
    assert clinical.best_overall_response(res.category, scans)[0] == rules.CR
    assert clinical.tumour_diameter_mm(1e9) == rules.diameter_mm(1e9, rules.CELLS_PER_CM3)


def test_the_env_reads_recist_as_the_readouts_do():
    """With noise-free scans, the env's RECIST record of a patient equals the readout of
    the same diameters (both by the rulebook)."""
    env = OncologyEnv("melanoma", scan_noise_cv=0.0)
    env.reset(seed=4)
    days, mm, cats = [0.0], [float(env.state.scan_mm[0])], [int(env.state.recist[0])]
    while True:
        _, _, te, tr, _ = env.step(np.array([1, 0, 0]))
        s = env.state
        if s.scan_day[0] > days[-1]:
            days.append(float(s.scan_day[0]))
            mm.append(float(s.scan_mm[0]))
            cats.append(int(s.recist[0]))
        if te or tr:
            break
    assert len(days) > 4
    res = clinical.recist_responses(np.array([mm]), np.array(days), np.array(days))
    assert res.category[0].tolist() == cats
    assert clinical.best_overall_response(res.category, np.array(days))[0] == int(
        env.state.best_response[0]
    )


def test_thresholds_are_defined_once():
    names = ("CR_THRESHOLD_MM", "PR_DECREASE", "PD_INCREASE", "PD_MIN_INCREASE_MM",
             "MIN_SD_DAYS", "CELLS_PER_CM3", "LETHAL_CELLS", "DAYS_PER_YEAR")  # fmt: skip
    pattern = re.compile(rf"^\s*_?({'|'.join(names)})\s*=\s*[0-9]", re.MULTILINE)
    roots = {Path(oncogym.__file__).parent}
    for sub in ("envs", "agents"):
        roots.add(Path(__import__(f"oncogym.{sub}", fromlist=["x"]).__file__).parent)
    found = {}
    for root in roots:
        for path in root.rglob("*.py"):
            for m in pattern.finditer(path.read_text()):
                found.setdefault(m.group(1), []).append(path.name)
    assert found == {name: ["rules.py"] for name in names}


# --- several lesions ------------------------------------------------------------------------
def _lesions(*mm: float) -> np.ndarray:
    return np.array(mm, dtype=np.float64)


def test_target_lesions_are_the_measurable_ones_seen_at_baseline():
    target = np.zeros(4, dtype=np.bool_)
    seen0 = np.zeros(4, dtype=np.bool_)
    measurable_site = np.array([True, True, False, True])
    # 40 mm and 20 mm lesions, a 30 mm bone lesion (not measurable), one below 10 mm
    rules.baseline_lesions(_lesions(40.0, 20.0, 30.0, 6.0), measurable_site, target, seen0, R)
    assert target.tolist() == [True, True, False, False]
    assert seen0.tolist() == [True, True, True, False]
    total, visible, new = rules.lesion_scan(_lesions(40.0, 20.0, 30.0, 6.0), target, seen0, R)
    assert (total, visible, new) == (60.0, True, False)


def test_new_lesion_is_progression_even_when_the_sum_shrinks():
    target = np.array([True, True, False])
    seen0 = np.array([True, True, False])
    total, visible, new = rules.lesion_scan(_lesions(20.0, 10.0, 12.0), target, seen0, R)
    assert total == 30.0 and new  # the third lesion was not seen at baseline
    assert rules.scan_response(total, visible, 60.0, True, 60.0, R, new) == rules.PD
    assert rules.scan_response(total, visible, 60.0, True, 60.0, R, False) == rules.PR


def test_complete_response_needs_every_lesion_gone():
    target = np.array([True, True, False])
    seen0 = np.array([True, True, True])  # a non-measurable (bone) lesion seen at baseline
    total, visible, new = rules.lesion_scan(_lesions(0.0, 0.0, 15.0), target, seen0, R)
    assert total == 0.0 and visible and not new
    assert rules.scan_response(total, visible, 60.0, True, 60.0, R, new) != rules.CR
    total, visible, new = rules.lesion_scan(_lesions(0.0, 0.0, 0.0), target, seen0, R)
    assert rules.scan_response(total, visible, 60.0, True, 60.0, R, new) == rules.CR


def test_dissociated_response_is_one_lesion_shrinking_and_another_growing():
    target = np.array([True, True, False])
    base = _lesions(40.0, 40.0, 0.0)
    assert rules.dissociated(_lesions(20.0, 50.0, 0.0), base, target, R)  # -50 %, +25 % (+10 mm)
    assert not rules.dissociated(_lesions(20.0, 44.0, 0.0), base, target, R)  # +10 % only
    assert not rules.dissociated(_lesions(20.0, 20.0, 0.0), base, target, R)  # both shrink
    assert rules.dissociated(_lesions(20.0, 30.0, 12.0), base, target, R)  # a new lesion


def test_hazard_crossing_is_linear_in_the_hazard():
    assert rules.hazard_crossing_day(10.0, 0.2, 11.0, 0.6, 0.5) == pytest.approx(10.75)
    assert rules.hazard_crossing_day(10.0, 0.2, 11.0, 0.2, 0.5) == 11.0  # flat: at the end


def test_recist_over_lesions_in_the_readouts():
    """clinical.recist_responses on (patients, lesions, times): the sum over target lesions,
    CR only when every lesion is gone, a new lesion progresses."""
    t = np.arange(5.0) * 42.0
    scans = t
    # patient 0: both lesions vanish (CR); patient 1: one vanishes, the other stays (PR);
    # patient 2: the sum shrinks but a new lesion appears (PD)
    mm = np.array(
        [
            [[40, 20, 8, 0, 0], [30, 15, 0, 0, 0], [0, 0, 0, 0, 0]],
            [[40, 20, 0, 0, 0], [30, 30, 30, 30, 30], [0, 0, 0, 0, 0]],
            [[40, 20, 20, 20, 20], [30, 15, 15, 15, 15], [0, 0, 12, 12, 12]],
        ],
        dtype=np.float64,
    )
    res = clinical.recist_responses(mm, scans, t)
    R_ = clinical.Response
    assert res.category[0].tolist() == [R_.NE, R_.PR, R_.CR, R_.CR, R_.CR]
    assert res.category[1].tolist() == [R_.NE, R_.SD, R_.PR, R_.PR, R_.PR]
    assert res.category[2].tolist() == [R_.NE, R_.PR, R_.PD, R_.PD, R_.PD]
    assert res.progression_day.tolist() == [np.inf, np.inf, 84.0]
    assert res.target.tolist() == [[True, True, False]] * 3
    assert res.dissociated.tolist() == [False, False, True]
    bor = clinical.best_overall_response(res.category, res.scan_days)
    assert bor.tolist() == [R_.CR, R_.PR, R_.PR]
