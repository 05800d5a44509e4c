"""The public core API: registry, simulate, simulate_batch, schedules and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import oncogym
from oncogym import SimulationError

REFERENCE_MODELS = [
    "cartmath2021",
    "depillis2006",
    "depillis2006_p10",
    "friberg2002",
    "kimmel2021",
    "kirschner_panetta1998",
    "kuznetsov1994",
]


# --- registry -------------------------------------------------------------------------


def test_available_lists_reference_models():
    assert set(REFERENCE_MODELS) <= set(oncogym.models.available())
    assert oncogym.models.available() == sorted(oncogym.models.available())


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_model_metadata_complete(name):
    m = oncogym.models.get(name)
    assert m.name == name
    assert len(m.state_names) == len(set(m.state_names)) == len(m.default_state())
    assert list(m.default_params()) == list(m.param_names)
    assert list(m.default_state()) == list(m.state_names)
    for p in m.params:
        assert p.unit and p.source and p.description, p
        assert np.isfinite(p.value) and p.value >= 0
    for s in m.states:
        assert s.unit and s.description
    assert m.describe().startswith(f"### {name}")


def test_expected_names():
    assert oncogym.models.get("kuznetsov1994").param_names == tuple("spgmdnab")
    kp = oncogym.models.get("kirschner_panetta1998")
    assert kp.state_names == ("E", "T", "IL")
    assert kp.param_names == ("c", "mu2", "p1", "g1", "r2", "b", "a", "g2", "p2", "g3", "mu3")
    assert kp.therapy_names == ("aci", "il2")
    dp = oncogym.models.get("depillis2006")
    assert dp.state_names == ("T", "N", "L", "C", "M", "I")
    assert dp.param_names == tuple(
        "a b c d l s e f g h j k m q p r1 r2 u KT KN KL KC alpha beta gamma pI gI muI".split()
    )
    assert dp.therapy_names == ("chemo", "il2", "til")
    assert oncogym.models.get("cartmath2021").therapy_names == ("car_t",)
    assert oncogym.models.get("friberg2002").therapy_names == ("docetaxel",)


def test_unknown_model():
    with pytest.raises(ValueError, match=r"model: unknown model 'nope'; allowed: .*depillis2006"):
        oncogym.models.get("nope")
    with pytest.raises(ValueError, match="model: unknown model"):
        oncogym.simulate("nope", 10)


def test_parameter_sets():
    m = oncogym.models.get("cartmath2021")
    raji = m.parameter_set("raji")
    assert raji["phi"] == 0.83 and raji["b"] == 0.0
    assert m.parameter_set("hdlm2") == m.default_params()
    with pytest.raises(ValueError, match=r"parameter_set: unknown set 'x'.*allowed: hdlm2, raji"):
        m.parameter_set("x")


# --- simulate: outputs and schedule semantics -----------------------------------------


def test_trajectory_shape_and_grid():
    traj = oncogym.simulate("depillis2006", 10.5, dt=2.0)
    assert_array_equal(traj.t, [0, 2, 4, 6, 8, 10, 10.5])
    assert traj.y.shape == (7, 6)
    assert traj.state_names == ("T", "N", "L", "C", "M", "I")
    assert_array_equal(traj["T"], traj.y[:, 0])
    assert traj.ok and traj.status == "ok"
    assert traj.final()["C"] == traj.y[-1, 3]
    assert_array_equal(traj.y[0], oncogym.models.get("depillis2006").state_array())


def test_bolus_is_recorded_after_its_time_and_decays_exactly():
    """M(t) = A·e^{−γ(t − t0)} after a bolus A at t0; the output at t0 is pre-dose."""
    gamma = 0.9
    traj = oncogym.simulate(
        "depillis2006", 12, schedule=[("chemo", 5.0, 3.0, 0.0)], dt=0.5, atol={"M": 1e-12}
    )
    M = traj["M"]
    assert np.all(M[traj.t <= 5.0] == 0.0)
    after = traj.t > 5.0
    assert_allclose(M[after], 3.0 * np.exp(-gamma * (traj.t[after] - 5.0)), rtol=1e-7)


def test_infusion_window_matches_closed_form():
    """Rate r on [2, 5): M = r/γ(1 − e^{−γ(t−2)}), then exponential decay."""
    gamma, rate = 0.9, 4.0 / 3.0
    traj = oncogym.simulate(
        "depillis2006", 10, schedule=[("chemo", 2.0, 4.0, 3.0)], dt=0.25, atol={"M": 1e-12}
    )
    t, M = traj.t, traj["M"]
    during = (t >= 2) & (t <= 5)
    expected = rate / gamma * (1 - np.exp(-gamma * (t[during] - 2)))
    assert_allclose(M[during], expected, rtol=1e-7, atol=1e-14)
    m5 = rate / gamma * (1 - np.exp(-gamma * 3))
    after = t > 5
    assert_allclose(M[after], m5 * np.exp(-gamma * (t[after] - 5)), rtol=1e-7)
    assert np.all(M[t < 2] == 0)


def test_overlapping_infusions_add():
    one = oncogym.simulate("depillis2006", 8, schedule=[("il2", 1.0, 2e6, 4.0)])
    two = oncogym.simulate(
        "depillis2006", 8, schedule=[("il2", 1.0, 1e6, 4.0), ("il2", 1.0, 1e6, 4.0)]
    )
    assert_allclose(one.y, two.y, rtol=1e-12)


def test_dose_entries_accept_tuples_namedtuples_and_dicts():
    a = oncogym.simulate("depillis2006", 20, schedule=[("chemo", 1, 2.0, 0.5)])
    b = oncogym.simulate("depillis2006", 20, schedule=[oncogym.Dose("chemo", 1, 2.0, 0.5)])
    c = oncogym.simulate(
        "depillis2006",
        20,
        schedule=[{"therapy": "chemo", "start_day": 1, "amount": 2.0, "duration_days": 0.5}],
    )
    assert_array_equal(a.y, b.y)
    assert_array_equal(a.y, c.y)


def test_schedule_order_does_not_matter():
    s = [("chemo", 10, 1.0, 1.0), ("til", 3, 1e8, 0.0), ("il2", 3, 1e6, 0.0)]
    a = oncogym.simulate("depillis2006", 30, y0={"T": 2e7}, schedule=s)
    b = oncogym.simulate("depillis2006", 30, y0={"T": 2e7}, schedule=s[::-1])
    assert_array_equal(a.y, b.y)


def test_extinction_floor_sets_tumour_to_zero():
    traj = oncogym.simulate("depillis2006", 60)  # patient 9 clears a 1e6 inoculum
    zero = np.flatnonzero(traj["T"] == 0)
    assert zero.size and np.all(traj["T"][zero[0] :] == 0)
    assert np.all(traj["T"][: zero[0]] >= 1.0)


def test_deterministic_repeat():
    kw = dict(y0={"T": 2e7}, schedule=[("chemo", 0, 5.0, 1.0), ("il2", 2, 1e6, 0.0)])
    a = oncogym.simulate("depillis2006_p10", 100, **kw)
    b = oncogym.simulate("depillis2006_p10", 100, **kw)
    assert_array_equal(a.y, b.y)
    assert a.stats == b.stats


def test_integrator_failure_is_reported_not_silent():
    with pytest.raises(SimulationError, match="maximum number of steps"):
        oncogym.simulate("depillis2006_p10", 100, y0={"T": 1e7}, max_steps=50)
    traj = oncogym.simulate("depillis2006_p10", 100, y0={"T": 1e7}, max_steps=50, check=False)
    assert not traj.ok and traj.status == "maximum number of steps exceeded"
    assert np.isnan(traj.y[-1]).all() and np.isfinite(traj.y[0]).all()


# --- batch ---------------------------------------------------------------------------


def _varied_batch(n=12, seed=0):
    rng = np.random.default_rng(seed)
    m = oncogym.models.get("depillis2006")
    base = m.params_array()
    P = base * rng.lognormal(0.0, 0.2, size=(n, base.size))
    Y0 = np.tile(m.state_array(), (n, 1))
    Y0[:, 0] = 10 ** rng.uniform(6, 8, n)
    schedules = [
        [
            ("chemo", float(d), float(rng.uniform(0, 5)), 1.0)
            for d in range(0, 60, int(rng.integers(7, 21)))
        ]
        + [("il2", float(rng.uniform(0, 30)), float(rng.uniform(0, 1e7)), 0.0)]
        for _ in range(n)
    ]
    return P, Y0, schedules


def test_batch_equals_single_runs_bit_for_bit():
    P, Y0, schedules = _varied_batch()
    m = oncogym.models.get("depillis2006")
    batch = oncogym.simulate_batch("depillis2006", 90, params=P, y0=Y0, schedules=schedules)
    assert batch.y.shape == (12, 91, 6) and len(batch) == 12
    for i in range(12):
        single = oncogym.simulate(
            "depillis2006",
            90,
            params=dict(zip(m.param_names, P[i], strict=True)),
            y0=dict(zip(m.state_names, Y0[i], strict=True)),
            schedule=schedules[i],
        )
        assert_array_equal(batch.y[i], single.y)
        assert batch.patient(i).stats == single.stats


def test_batch_bit_for_bit_on_stiff_model():
    kw = dict(y0={"T": [1e6, 1e7, 5e7]}, schedules=[("chemo", 0.0, 5.0, 1.0)])
    batch = oncogym.simulate_batch("depillis2006_p10", 60, **kw)
    for i, t0 in enumerate([1e6, 1e7, 5e7]):
        single = oncogym.simulate("depillis2006_p10", 60, y0={"T": t0}, schedule=kw["schedules"])
        assert_array_equal(batch.y[i], single.y)


def test_batch_input_forms_agree():
    m = oncogym.models.get("kimmel2021")
    rb = [0.105, 0.19, 0.265]
    by_mapping = oncogym.simulate_batch("kimmel2021", 50, params={"rB": rb})
    by_list = oncogym.simulate_batch("kimmel2021", 50, params=[{"rB": r} for r in rb])
    P = np.tile(m.params_array(), (3, 1))
    P[:, m.param_names.index("rB")] = rb
    by_array = oncogym.simulate_batch("kimmel2021", 50, params=P)
    assert_array_equal(by_mapping.y, by_list.y)
    assert_array_equal(by_mapping.y, by_array.y)
    shared = oncogym.simulate_batch("kimmel2021", 50, n=4)
    assert shared.y.shape[0] == 4 and np.all(shared.y == shared.y[0])
    assert by_mapping["B"].shape == (3, 51)
    # a mapping of scalars is the same for every patient, whatever their number (the README's
    # simulate_batch example: an array of parameters with y0={"B": ...})
    scalar_y0 = oncogym.simulate_batch("kimmel2021", 50, params=P, y0={"B": 50.0})
    assert scalar_y0.y.shape[0] == 3
    for i in range(3):
        one = oncogym.simulate("kimmel2021", 50, params={"rB": rb[i]}, y0={"B": 50.0})
        assert_array_equal(scalar_y0.y[i], one.y)


def test_batch_bad_input():
    with pytest.raises(ValueError, match=r"n_patients: .*disagree"):
        oncogym.simulate_batch("kimmel2021", 10, params={"rB": [0.1, 0.2]}, y0={"N": [1, 2, 3]})
    with pytest.raises(ValueError, match=r"params: an array must have shape \(n_patients, 9\)"):
        oncogym.simulate_batch("kimmel2021", 10, params=np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"params\['rB'\]: every value must be finite"):
        oncogym.simulate_batch("kimmel2021", 10, params={"rB": [0.1, np.nan]})
    with pytest.raises(ValueError, match=r"y0\[1\]: y0: unknown name 'Q'"):
        oncogym.simulate_batch("kimmel2021", 10, y0=[{"N": 1.0}, {"Q": 1.0}])
    with pytest.raises(ValueError, match=r"schedules\[1\]\[0\].amount: must be >= 0"):
        oncogym.simulate_batch("kimmel2021", 10, schedules=[[], [("car_t", 1, -5.0, 0)]])
    with pytest.raises(ValueError, match="n: must be a positive integer"):
        oncogym.simulate_batch("kimmel2021", 10, n=0)


def test_batch_failure_names_patients():
    with pytest.raises(SimulationError, match=r"failed for 1 patient\(s\) \(1: maximum"):
        oncogym.simulate_batch("depillis2006_p10", 100, y0={"T": [0.0, 1e7]}, max_steps=200)


# --- bad input -------------------------------------------------------------------------

BAD = [
    ({"days": 0}, "days: must be > 0"),
    ({"days": -3}, "days: must be > 0"),
    ({"days": float("nan")}, "days: must be finite"),
    ({"days": float("inf")}, "days: must be finite"),
    ({"days": "ten"}, "days: expected a number"),
    ({"dt": 0}, "dt: must be > 0"),
    ({"dt": float("nan")}, "dt: must be finite"),
    ({"params": {"zz": 1.0}}, "params: unknown name 'zz'.*allowed: a, b, c"),
    ({"params": {"a": float("nan")}}, r"params\['a'\]: must be finite"),
    ({"params": {"a": float("inf")}}, r"params\['a'\]: must be finite"),
    ({"params": {"a": -1.0}}, "params: values must be >= 0; negative: a"),
    ({"params": {"a": "x"}}, r"params\['a'\]: expected a number"),
    ({"y0": {"Q": 1.0}}, "y0: unknown name 'Q'.*allowed: T, N, L, C, M, I"),
    ({"y0": {"T": -1.0}}, "y0: states must be >= 0; negative: T"),
    ({"y0": {"T": float("nan")}}, r"y0\['T'\]: must be finite"),
    (
        {"schedule": [("pembro", 0, 1.0, 0)]},
        r"schedule\[0\].therapy: unknown therapy 'pembro'.*"
        r"allowed: chemo, il2, til",
    ),
    ({"schedule": [("chemo", 0, -1.0, 0)]}, r"schedule\[0\].amount: must be >= 0"),
    ({"schedule": [("chemo", 0, float("nan"), 0)]}, r"schedule\[0\].amount: must be finite"),
    ({"schedule": [("chemo", 0, float("inf"), 0)]}, r"schedule\[0\].amount: must be finite"),
    ({"schedule": [("chemo", float("nan"), 1.0, 0)]}, r"schedule\[0\].start_day: must be finite"),
    ({"schedule": [("chemo", 50, 1.0, 0)]}, r"schedule\[0\].start_day: must be within \[0, "),
    ({"schedule": [("chemo", -1, 1.0, 0)]}, r"schedule\[0\].start_day: must be within"),
    ({"schedule": [("chemo", 1, 1.0, -2)]}, r"schedule\[0\].duration_days: must be >= 0"),
    ({"schedule": [("chemo", 1)]}, r"schedule\[0\]: expected \(therapy, start_day, amount"),
    ({"schedule": [(3, 1, 1.0, 0)]}, r"schedule\[0\].therapy: expected a therapy name"),
    ({"schedule": "chemo"}, "schedule: expected a list"),
    ({"method": "euler"}, "method: unknown method 'euler'; allowed: auto, dopri5, rodas4"),
    ({"rtol": 0}, r"rtol: must be in \(0, 1\)"),
    ({"atol": -1}, "atol: must be finite and > 0"),
]


@pytest.mark.parametrize(
    ("kwargs", "message"), BAD, ids=[f"{m.split(':')[0]}-{i}" for i, (_, m) in enumerate(BAD)]
)
def test_bad_input_names_the_field(kwargs, message):
    args = {"days": 30}
    args.update(kwargs)
    days = args.pop("days")
    with pytest.raises(ValueError, match=message):
        oncogym.simulate("depillis2006", days, **args)


def test_no_therapy_model_rejects_schedule():
    with pytest.raises(ValueError, match=r"unknown therapy 'chemo'.*this model takes no therapy"):
        oncogym.simulate("kuznetsov1994", 10, schedule=[("chemo", 0, 1.0, 0)])


def test_unknown_state_lookup():
    traj = oncogym.simulate("kuznetsov1994", 5)
    with pytest.raises(ValueError, match="state: unknown state 'X'; allowed: E, T"):
        traj["X"]


# --- compiled vs interpreted ------------------------------------------------------------

_SCRIPT = """
import json, oncogym
t = oncogym.simulate("depillis2006", 6, y0={"T": 2e7}, dt=0.5,
                     schedule=[("chemo", 0.0, 5.0, 1.0), ("til", 2.0, 1e8, 0.0)])
print(json.dumps({"y": t.y.tolist(), "stats": t.stats}))
"""


def test_jit_equals_pure_python():
    """NUMBA_DISABLE_JIT=1 runs the same kernels as plain Python: typing-only bugs
    (integer division, wrong dtypes) would show up as a difference."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    interpreted = json.loads(out.stdout)
    compiled = oncogym.simulate(
        "depillis2006",
        6,
        y0={"T": 2e7},
        dt=0.5,
        schedule=[("chemo", 0.0, 5.0, 1.0), ("til", 2.0, 1e8, 0.0)],
    )
    assert interpreted["stats"] == compiled.stats
    assert_allclose(compiled.y, np.array(interpreted["y"]), rtol=1e-13, atol=0)


# --- properties ---------------------------------------------------------------------------

THERAPY_RANGES = {"chemo": 10.0, "il2": 1e7, "til": 1e9}

dose_st = st.tuples(
    st.sampled_from(sorted(THERAPY_RANGES)),
    st.floats(0, 60, allow_nan=False),
    st.floats(0, 1, allow_nan=False),
    st.sampled_from([0.0, 0.5, 1.0, 5.0]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doses=st.lists(dose_st, max_size=8),
    log_t0=st.floats(4, 9),
    patient=st.sampled_from(["depillis2006", "depillis2006_p10"]),
)
def test_random_schedules_stay_finite_and_nonnegative(doses, log_t0, patient):
    schedule = [(th, s, f * THERAPY_RANGES[th], d) for th, s, f, d in doses]
    traj = oncogym.simulate(patient, 60, y0={"T": 10**log_t0}, schedule=schedule)
    assert np.all(np.isfinite(traj.y))
    assert np.all(traj.y >= 0)
    assert np.all(traj["C"] > 0)  # lymphocytes have a source: never extinct


@settings(max_examples=20, deadline=None)
@given(starts=st.lists(st.floats(0, 60, allow_nan=False), min_size=1, max_size=6))
def test_zero_dose_equals_untreated(starts):
    schedule = [("chemo", s, 0.0, d) for s, d in zip(starts, [0.0, 1.0] * 3, strict=False)]
    treated = oncogym.simulate("depillis2006", 60, y0={"T": 2e7}, schedule=schedule)
    untreated = oncogym.simulate("depillis2006", 60, y0={"T": 2e7})
    assert_array_equal(treated.y, untreated.y)


@settings(max_examples=15, deadline=None)
@given(scale=st.floats(0.5, 2.0), n=st.integers(1, 6))
def test_batch_of_identical_patients_equals_single(scale, n):
    schedule = [("car_t", 42.0, 1.5e6 * scale, 0.0)]
    batch = oncogym.simulate_batch("cartmath2021", 120, n=n, schedules=schedule)
    single = oncogym.simulate("cartmath2021", 120, schedule=schedule)
    for i in range(n):
        assert_array_equal(batch.y[i], single.y)
