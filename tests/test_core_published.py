"""Published and derived results (docs/model/equations.md), reproduced by the compiled core."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.optimize import brentq

import oncogym
from oncogym import radiotherapy as rt

# --- Kuznetsov et al. 1994 ---------------------------------------------------------


def _kuznetsov_equilibria() -> list[float]:
    """Tumour values of the positive equilibria: E = a(1 − bT)/n on the T-nullcline."""
    p = oncogym.models.get("kuznetsov1994").default_params()

    def g(T):
        E = p["a"] * (1 - p["b"] * T) / p["n"]
        return p["s"] + p["p"] * E * T / (p["g"] + T) - p["m"] * E * T - p["d"] * E

    grid = np.logspace(3, np.log10(1 / p["b"]) - 1e-9, 4000)
    vals = np.array([g(T) for T in grid])
    roots = []
    for i in np.flatnonzero(np.sign(vals[:-1]) != np.sign(vals[1:])):
        roots.append(brentq(g, grid[i], grid[i + 1], xtol=1e-6, rtol=1e-14))
    return roots


def test_kuznetsov_equilibria_and_bistability():
    """Three positive equilibria (dormant, saddle, escape); inocula on either side of the
    saddle's stable manifold end at the dormant or at the escaped state."""
    dormant, saddle, escape = _kuznetsov_equilibria()
    assert 8.0e6 < dormant < 8.4e6 and 2.5e8 < saddle < 2.9e8 and 4.4e8 < escape < 4.6e8
    # the saddle is the starting point (x, y) = (0.7616, 268.798) × 1e6 cells of the
    # Université Lyon 1 course code "immunogeneic_tumor_growth" (dimensionless model with
    # 4-digit parameters: agreement to rounding)
    p = oncogym.models.get("kuznetsov1994").default_params()
    saddle_e = p["a"] * (1 - p["b"] * saddle) / p["n"]
    assert saddle == pytest.approx(268.798e6, rel=5e-3)
    assert saddle_e == pytest.approx(0.7616e6, rel=5e-3)
    e0 = 1.3e4 / 0.0412  # effector baseline s/d
    inocula = np.array([1e2, 1e4, 1e6, 1e7, 3e7, 1e8, 2e8, 3e8])
    batch = oncogym.simulate_batch("kuznetsov1994", 3000, y0={"E": e0, "T": inocula}, dt=50)
    final = batch["T"][:, -1]
    assert_allclose(final[:5], dormant, rtol=1e-3)
    assert_allclose(final[5:], escape, rtol=1e-3)


def test_kuznetsov_dormancy_depends_on_initial_effectors():
    """The escape threshold moves with the initial effector level (bistable plane)."""
    inocula = np.logspace(5, 8.5, 40)

    def threshold(e0):
        b = oncogym.simulate_batch("kuznetsov1994", 3000, y0={"E": e0, "T": inocula}, dt=100)
        return inocula[np.argmax(b["T"][:, -1] > 1e8)]

    assert threshold(1e3) < threshold(1e5) < threshold(3e5)


def test_kuznetsov_larger_inoculum_provokes_stronger_response():
    """The mechanism behind sneaking-through: a small inoculum grows past the immune
    system at baseline effector recruitment, while an intermediate one provokes a
    stronger effector expansion and a deeper post-peak nadir.

    With the BioModels parameter set a literal sneaking-through window (small inocula
    escape, intermediate ones are held) does not appear anywhere in E0 ∈ [1e2, 1e7],
    T0 ∈ [1, 5e8], nor under ×0.3–×3 changes of s, p, d, m, g (scanned while writing
    this test); see the closing note of the core issue.
    """
    e0 = 1.3e4 / 0.0412
    b = oncogym.simulate_batch("kuznetsov1994", 400, y0={"E": e0, "T": [1e2, 3e7]}, dt=0.25)
    nadirs = []
    for T in b["T"]:
        k = int(T.argmax())
        nadirs.append(T[k:].min())
        assert T[k:].min() > 1e5  # neither is eliminated
    small, intermediate = nadirs
    assert intermediate < 0.85 * small
    assert b["E"][1].max() > b["E"][0].max()


# --- Kirschner & Panetta 1998 ------------------------------------------------------


def test_kp_aci_clearance_threshold():
    """Tumour-free state stable iff s1 > s1* = μ2·r2·g2/a = 540 cells/day."""
    p = oncogym.models.get("kirschner_panetta1998").default_params()
    s1_star = p["mu2"] * p["r2"] * p["g2"] / p["a"]
    assert s1_star == pytest.approx(540.0)
    out = {}
    for factor in (0.9, 1.1):
        s1 = factor * s1_star
        traj = oncogym.simulate(
            "kirschner_panetta1998",
            2000,
            y0={"E": s1 / p["mu2"], "T": 1e3, "IL": 0.0},
            schedule=[("aci", 0.0, s1 * 2000, 2000.0)],
            dt=10,
        )
        out[factor] = traj["T"]
    assert out[1.1][-1] == 0.0  # cleared (below one cell)
    assert out[0.9][-1] > 1e3  # persists at a positive equilibrium
    assert_allclose(out[0.9][-20:], out[0.9][-1], rtol=1e-3)


KP_TABLE = [
    # c, first day T < 1 cell (None: never), late-time range of T, limit-cycle period
    (0.0, None, (9.9e8, 1.01e9), None),
    (1e-4, 654, None, None),
    (1e-3, 172, None, None),
    (1e-2, 145, None, None),
    (0.02, 115, (1.3e-4, 3.8e5), 242),
    (0.025, None, (19, 1.7e5), 151),
    (0.03, None, (2.0e3, 7.0e4), 107),
]


@pytest.mark.parametrize(("c", "first_day", "late_range", "period"), KP_TABLE)
def test_kp_antigenicity_table(c, first_day, late_range, period):
    """The project's outcome table from (E, T, IL) = (1, 1, 1), no extinction floor."""
    traj = oncogym.simulate(
        "kirschner_panetta1998",
        3000,
        params={"c": c},
        dt=0.25,
        extinction=False,
        rtol=1e-10,
        atol=1e-30,
    )
    T, t = traj["T"], traj.t
    below = (T < 1) & (t > 1)
    if first_day is None:
        assert not below.any()
    else:
        assert t[np.argmax(below)] == pytest.approx(first_day, abs=1.0)
    late = t > 2000
    if late_range is not None:
        lo, hi = late_range
        assert T[late].min() == pytest.approx(lo, rel=0.1)
        assert T[late].max() == pytest.approx(hi, rel=0.1)
    if period is not None:
        x = T[late]
        peaks = np.flatnonzero((x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:])) + 1
        assert np.diff(t[late][peaks]).mean() == pytest.approx(period, abs=2.0)


def test_kp_dormancy_at_high_antigenicity():
    """c = 0.035: damped oscillation to a dormant tumour of ≈ 1.2–2.4e4 cells."""
    traj = oncogym.simulate("kirschner_panetta1998", 6000, params={"c": 0.035}, dt=5)
    T = traj["T"]
    assert 1.2e4 < T[-1] < 2.4e4
    # damped: the oscillation's amplitude shrinks from one 1000-day window to the next
    amp = [np.ptp(T[(traj.t >= a) & (traj.t < a + 1000)]) for a in (1000, 3000, 5000)]
    assert amp[0] > amp[1] > amp[2]
    assert amp[2] < 0.05 * T[-1]


def test_kp_il2_alone_unbounded_effectors_above_threshold():
    """With I ≈ s2/μ3, effectors grow as exp((p1·I/(g1+I) − μ2)·t): without bound once
    s2 > μ3·μ2·g1/(p1 − μ2) = 6.35e7 (derived), decaying below it."""
    p = oncogym.models.get("kirschner_panetta1998").default_params()
    s2_star = p["mu3"] * p["mu2"] * p["g1"] / (p["p1"] - p["mu2"])
    assert s2_star == pytest.approx(6.35e7, rel=1e-3)
    for factor in (0.8, 2.0):
        s2 = factor * s2_star
        traj = oncogym.simulate(
            "kirschner_panetta1998",
            300,
            y0={"E": 1e3, "T": 0.0, "IL": 0.0},
            schedule=[("il2", 0.0, s2 * 300, 300.0)],
            dt=10,
        )
        il = s2 / p["mu3"]
        predicted = p["p1"] * il / (p["g1"] + il) - p["mu2"]
        slope = np.polyfit(traj.t[5:], np.log(traj["E"][5:]), 1)[0]
        assert slope == pytest.approx(predicted, rel=1e-4)
        assert (slope > 0) == (factor > 1)


# --- de Pillis, Gu & Radunskaya 2006 ----------------------------------------------------


@pytest.mark.parametrize("name", ["depillis2006", "depillis2006_p10"])
def test_depillis_tumour_free_equilibrium(name):
    m = oncogym.models.get(name)
    p = m.default_params()
    expected = {
        "T": 0.0,
        "N": p["e"] * p["alpha"] / (p["f"] * p["beta"]),
        "L": 0.0,
        "C": p["alpha"] / p["beta"],
        "M": 0.0,
        "I": 0.0,
    }
    assert expected["N"] == pytest.approx(3.155e5, rel=1e-3)
    assert expected["C"] == pytest.approx(6.25e10)
    assert m.default_state() | {"T": 0.0} == pytest.approx(expected)
    traj = oncogym.simulate(name, 365, y0={"T": 0.0})
    assert_allclose(traj.y, np.tile(traj.y[0], (traj.t.size, 1)), rtol=1e-12)


WEAK = {"T": 1e7, "N": 1e3, "L": 10.0, "C": 6e8}  # the paper's "weakened immune system"
CHEMO = [("chemo", 10.0 * i, 5.0, 1.0) for i in range(10)]
IMMUNO = [("til", 7.0, 1e9, 1.0)] + [("il2", 8.0 + i, 5e6, 1.0) for i in range(6)]


def test_depillis_combination_clears_where_monotherapies_fail():
    """The paper's conclusion: chemo-immunotherapy eliminates a tumour that neither
    chemotherapy nor immunotherapy (TIL + IL-2) eliminates, patient 9."""
    final = {}
    for arm, sched in {
        "none": [],
        "chemo": CHEMO,
        "immuno": IMMUNO,
        "combo": CHEMO + IMMUNO,
    }.items():
        final[arm] = oncogym.simulate("depillis2006", 150, y0=WEAK, schedule=sched)["T"][-1]
    assert final["combo"] == 0.0
    for arm in ("none", "chemo", "immuno"):
        assert final[arm] > 5e8, arm


def test_depillis_patient_10_less_responsive():
    traj = oncogym.simulate("depillis2006_p10", 150, y0=WEAK, schedule=CHEMO + IMMUNO)
    assert traj["T"][-1] > 5e8


def test_depillis_il2_alone_nearly_inert():
    """IL-2 at 5e6 IU/L/day: I_max ≈ 5e5, p_I·I/(g_I + I) ≈ 0.003/day (derived)."""
    traj = oncogym.simulate("depillis2006", 30, schedule=[("il2", 0.0, 5e6 * 30, 30.0)], dt=0.5)
    p = oncogym.models.get("depillis2006").default_params()
    assert traj["I"].max() == pytest.approx(5e5, rel=1e-3)
    stim = p["pI"] * traj["I"].max() / (p["gI"] + traj["I"].max())
    assert stim == pytest.approx(0.003, rel=0.05)


def test_depillis_continuous_chemo_depletes_lymphocytes():
    """v_M = 1: M → 1/γ = 1.11; lymphocytes C are killed at K_C(1 − e^{−1.11}) ≈ 0.40/day
    against a turnover β = 0.012/day and fall to α/(β + 0.40): a 35-fold depletion
    (derived)."""
    traj = oncogym.simulate("depillis2006", 30, schedule=[("chemo", 0.0, 30.0, 30.0)], dt=0.5)
    p = oncogym.models.get("depillis2006").default_params()
    assert traj["M"][-1] == pytest.approx(1 / p["gamma"], rel=1e-6)
    kill = p["KC"] * (1 - np.exp(-1 / p["gamma"]))
    assert kill == pytest.approx(0.40, abs=0.005)
    c_floor = p["alpha"] / (p["beta"] + kill)
    assert traj["C"][-1] == pytest.approx(c_floor, rel=1e-3)
    assert traj["C"][0] / traj["C"][-1] == pytest.approx(35.0, rel=0.03)


# --- radiotherapy: the linear-quadratic model ------------------------------------------


def test_lq_reference_values():
    assert rt.surviving_fraction(2.0, 0.3, 10.0) == pytest.approx(0.4868, abs=1e-4)
    sf = rt.surviving_fraction(2.0, 0.3, 10.0, n_fractions=30)
    assert sf == pytest.approx(4.16e-10, rel=2e-3)
    assert -np.log10(sf) == pytest.approx(9.38, abs=0.01)
    assert rt.bed(2.0, 30, 10.0) == pytest.approx(72.0)
    assert rt.eqd2(2.0, 30, 10.0) == pytest.approx(60.0)
    assert rt.surviving_fraction(2.0, 0.15, 3.0) == pytest.approx(0.6065, abs=1e-4)
    assert rt.bed(2.0, 30, 3.0) == pytest.approx(100.0)
    assert rt.eqd2(2.0, 30, 3.0) == pytest.approx(60.0)
    assert rt.tumour_control_probability(1e9, sf) == pytest.approx(0.66, abs=0.005)
    # the compiled kernels agree with the public functions
    assert np.exp(30 * rt.lq_log_survival(2.0, 0.3, 10.0)) == pytest.approx(sf, rel=1e-12)
    assert 30 * rt.lq_bed(2.0, 3.0) == pytest.approx(100.0)
    # hypofractionation: same physical dose, higher BED for the same α/β
    assert rt.bed(12.0, 5, 10.0) > rt.bed(2.0, 30, 10.0)


@pytest.mark.parametrize(
    ("fn", "kwargs", "field"),
    [
        (rt.surviving_fraction, {"dose_gy": -1, "alpha": 0.3, "alpha_beta": 10}, "dose_gy"),
        (rt.surviving_fraction, {"dose_gy": 2, "alpha": 0.3, "alpha_beta": 0}, "alpha_beta"),
        (rt.bed, {"dose_gy": float("nan"), "n_fractions": 3, "alpha_beta": 3}, "dose_gy"),
        (rt.eqd2, {"dose_gy": 2, "n_fractions": -1, "alpha_beta": 3}, "n_fractions"),
        (rt.tumour_control_probability, {"n_clonogens": 1e9, "surviving": 2.0}, "surviving"),
    ],
)
def test_lq_bad_input(fn, kwargs, field):
    with pytest.raises(ValueError, match=field):
        fn(**kwargs)


# --- Kimmel et al. 2021 CAR-T kinetics against ZUMA-1 -----------------------------------


def test_kimmel_car_t_kinetics_match_zuma1_medians():
    """Moffitt ZUMA-1 median CAR-T counts 27.5, 9.1, 2.1, 0.1 cells/µL at days 7, 14, 28,
    90; the model (cells ÷ 5e8 = cells/µL) peaks near day 7 at the same order."""
    traj = oncogym.simulate("kimmel2021", 120, dt=0.25)
    per_ul = traj["C"] / 5e8
    peak_day = traj.t[np.argmax(per_ul)]
    assert 5.0 <= peak_day <= 9.0
    observed = {7: 27.5, 14: 9.1, 28: 2.1, 90: 0.1}
    for day, median in observed.items():
        sim = per_ul[int(day * 4)]
        assert median / 4 < sim < median * 4, (day, sim, median)
    # the decline from the peak follows the data's order of magnitude per fortnight
    assert per_ul[7 * 4] > per_ul[14 * 4] > per_ul[28 * 4] > per_ul[90 * 4]


def test_kimmel_lymphodepletion_depth_matters():
    """More normal T cells at infusion (weaker lymphodepletion) → less CAR-T expansion and
    more tumour (Kimmel 2021)."""
    b = oncogym.simulate_batch("kimmel2021", 120, y0={"N": [3e9, 1e10, 3e10]}, dt=1)
    car_t_peak = b["C"].max(axis=1)
    tumour_day60 = b["B"][:, 60]
    assert car_t_peak[0] > car_t_peak[1] > car_t_peak[2]
    assert tumour_day60[0] < tumour_day60[1] < tumour_day60[2]


# --- Friberg et al. 2002 neutropenia ---------------------------------------------------


def test_friberg_nadir_near_one_week():
    """Docetaxel 100 mg/m² (≈ 180 mg) as a 1-h infusion: ANC nadir at day 7–9, grade 4
    (< 1.0e9/L), recovery to baseline by day 21."""
    traj = oncogym.simulate("friberg2002", 28, schedule=[("docetaxel", 0.0, 180.0, 1 / 24)], dt=0.1)
    anc = traj["Circ"]
    nadir_day = traj.t[np.argmin(anc)]
    assert 6.5 <= nadir_day <= 9.5
    assert anc.min() < 1.0e9
    assert anc[traj.t == 21.0][0] > 0.8 * 5.05e9
    smaller = oncogym.simulate(
        "friberg2002", 28, schedule=[("docetaxel", 0.0, 75.0, 1 / 24)], dt=0.1
    )["Circ"]
    assert smaller.min() > anc.min()  # dose-dependent depth
