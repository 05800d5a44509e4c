"""The best open-loop schedule, the untreated follow-up after the horizon, and the rliable
aggregates of the benchmark."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from oncogym.agents.aggregate import (
    CEILING,
    aggregate,
    over_open_loop,
    pareto_front,
    scenario_scores,
    score_matrices,
    trained_run,
)
from oncogym.agents.evaluate import rollout
from oncogym.agents.openloop import (
    OpenLoopPolicy,
    OpenLoopSchedule,
    Regimen,
    load_schedule,
    protocol_regimens,
    save_search,
    search_open_loop,
)
from oncogym.agents.policies import ProtocolPolicy, baseline_names
from oncogym.envs.task import TASKS, make_params
from oncogym.rules import DAYS_PER_YEAR
from oncogym.scenarios import Cohort


# --- the open-loop schedule -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("task", "protocol"),
    [("melanoma", "nivolumab_480_q4w"), ("nsclc", "pembrolizumab_chemotherapy")],
)
def test_a_protocol_as_an_open_loop_schedule_gives_the_same_patients_the_same_outcome(
    task, protocol
):
    sched = protocol_regimens(task, make_params(task))[protocol]
    a = rollout(OpenLoopPolicy(sched), task, n_patients=40)
    b = rollout(ProtocolPolicy(protocol), task, n_patients=40)
    np.testing.assert_array_equal(a.doses, b.doses)
    np.testing.assert_array_equal(a.returns, b.returns)


def test_schedule_table_and_description():
    p = make_params("melanoma")
    s = OpenLoopSchedule(
        "melanoma", (Regimen("anti_pd1", 2, 0, 4, 3), Regimen("anti_ctla4", 1, 1, 3, 4))
    )
    t = s.table(p)
    assert t.shape == (p.n_steps, p.n_therapies)
    assert np.flatnonzero(t[:, 0]).tolist() == [0, 4, 8]
    assert np.flatnonzero(t[:, 1]).tolist() == [1, 4, 7, 10]
    assert set(t[:, 1]) == {0, 1}
    assert s.describe(p) == (
        "anti_pd1 480 every 4 weeks from step 0 (3 doses); "
        "anti_ctla4 1 every 3 weeks from step 1 (4 doses)"
    )
    assert OpenLoopSchedule.from_dict(s.to_dict()) == s


def test_bad_schedules_are_named():
    p = make_params("melanoma")
    with pytest.raises(ValueError, match=r"level of anti_ctla4 must be in 0..2, got 5"):
        OpenLoopSchedule("melanoma", (Regimen("anti_ctla4", 5, 0, 1, 1),)).table(p)
    with pytest.raises(ValueError, match=r"therapy 'chemo' is not offered.*allowed: anti_pd1"):
        OpenLoopSchedule("melanoma", (Regimen("chemo", 1, 0, 1, 1),)).table(p)
    with pytest.raises(ValueError, match="schedule: expected"):
        OpenLoopSchedule.from_dict({"task": "melanoma", "regimens": [{"therapy": "x"}]})
    with pytest.raises(ValueError, match="task: the open-loop search needs a scenario"):
        search_open_loop("depillis2006", n_trials=2)
    with pytest.raises(ValueError, match="n_trials: expected a positive integer"):
        search_open_loop("melanoma", n_trials=0)
    pol = OpenLoopPolicy(OpenLoopSchedule("nsclc", ()))
    with pytest.raises(ValueError, match="made for nsclc, not melanoma"):
        rollout(pol, "melanoma", n_patients=2)


def test_search_is_reproducible_and_at_least_the_best_enqueued_protocol(tmp_path):
    kw = {"n_trials": 14, "n_patients": 24, "seed": 3}
    a = search_open_loop("melanoma", **kw)
    b = search_open_loop("melanoma", **kw)
    assert a.schedule == b.schedule and a.value == b.value
    assert a.best_protocol in protocol_regimens("melanoma", make_params("melanoma"))
    assert a.value >= a.best_protocol_value
    assert a.history == sorted(a.history) and a.history[-1] == a.value
    # the value is the schedule's mean return on the training cohort, not the test cohort
    cohort = Cohort.train("melanoma", 24, a.settings["draw"])
    again = rollout(OpenLoopPolicy(a.schedule), "melanoma", cohort=cohort, seed=3)
    assert float(np.mean(again.returns)) == pytest.approx(a.value, rel=1e-12)
    save_search(a, tmp_path / "s.json")
    assert load_schedule(tmp_path / "s.json") == a.schedule


def test_open_loop_is_a_baseline_of_every_scenario_only():
    for t in TASKS:
        assert "open_loop" in baseline_names(t)
    assert "open_loop" not in baseline_names("depillis2006")


# --- follow-up after the horizon --------------------------------------------------------------
def _nivolumab(extra=()):
    return OpenLoopSchedule("melanoma", (Regimen("anti_pd1", 2, 0, 4, 27), *extra))


def test_follow_up_zero_leaves_the_evaluation_unchanged():
    a = rollout(OpenLoopPolicy(_nivolumab()), "melanoma", n_patients=30)
    b = rollout(OpenLoopPolicy(_nivolumab()), "melanoma", n_patients=30, follow_up_days=0)
    np.testing.assert_array_equal(a.returns, b.returns)
    assert b.follow_up_returns is None
    np.testing.assert_array_equal(b.score_returns, b.returns)
    with pytest.raises(ValueError, match="follow_up_days: expected a number of days >= 0"):
        rollout(OpenLoopPolicy(_nivolumab()), "melanoma", n_patients=2, follow_up_days=-1)


def test_follow_up_equals_one_longer_episode_untreated_after_the_horizon():
    fu = 182.0
    sched = _nivolumab()
    a = rollout(OpenLoopPolicy(sched), "melanoma", n_patients=40, follow_up_days=fu)
    p = make_params("melanoma")
    stop = OpenLoopSchedule(
        "melanoma", (Regimen("anti_pd1", 2, 0, 4, math.ceil(p.n_steps / 4)),)
    )  # the same doses, none after the horizon
    b = rollout(
        OpenLoopPolicy(stop),
        "melanoma",
        n_patients=40,
        env_kwargs={"horizon_days": p.horizon_days + fu},
    )
    np.testing.assert_array_equal(a.doses, b.doses[:, : p.n_steps])
    assert not b.doses[:, p.n_steps :].any()
    np.testing.assert_allclose(a.score_returns, b.returns, rtol=0, atol=1e-9)
    dead = a.death
    assert dead.any()
    np.testing.assert_allclose(
        a.follow_up_returns[dead], -p.death_weight * fu / DAYS_PER_YEAR, rtol=1e-12
    )


def test_doses_in_the_last_weeks_are_not_free_with_the_follow_up():
    """Ipilimumab 3 mg/kg in the last 8 weeks on top of nivolumab: its toxicity comes after
    the horizon; with the follow-up it costs what it costs."""
    late = (Regimen("anti_ctla4", 2, 97, 3, 3),)
    kw = {"n_patients": 200, "follow_up_days": 182.0}
    base = rollout(OpenLoopPolicy(_nivolumab()), "melanoma", **kw)
    more = rollout(OpenLoopPolicy(_nivolumab(late)), "melanoma", **kw)
    assert more.doses[:, 97:, 1].any() and not more.doses[:, :97, 1].any()
    assert more.score_returns.mean() < base.score_returns.mean()
    # the part after the horizon is where the late doses are paid for
    assert more.follow_up_returns.mean() < base.follow_up_returns.mean()


# --- aggregates -------------------------------------------------------------------------------
def _res(name, value):
    return SimpleNamespace(policy=name, score_returns=np.full(5, float(value)))


def _scenario(offset=0.0, algo_values=(0.5, 0.6, 0.7)):
    rows = [
        _res("proto_a", 1.0 + offset),
        _res("proto_b", 0.8 + offset),
        _res(CEILING, 2.0 + offset),
        _res("open_loop", 1.2 + offset),
        _res("no_treatment", 0.0 + offset),
    ]
    rows += [_res(f"ppo_s{k}", 1.0 + v + offset) for k, v in enumerate(algo_values)]
    return scenario_scores(rows, ["proto_a", "proto_b"])


def test_normalised_scores_have_the_best_protocol_at_0_and_the_ceiling_at_1():
    s = _scenario()
    assert s["best_protocol"] == "proto_a"
    assert s["normalised"]["proto_a"] == 0.0
    assert s["normalised"][CEILING] == 1.0
    assert s["normalised"]["open_loop"] == pytest.approx(0.2)
    assert s["normalised"]["no_treatment"] == pytest.approx(-1.0)
    assert s["above_ceiling"] == []
    with pytest.raises(ValueError, match="ceiling 'mpc_oracle' is missing"):
        scenario_scores([_res("proto_a", 1.0)], ["proto_a"])
    with pytest.raises(ValueError, match="does not score above the best protocol"):
        scenario_scores([_res("proto_a", 1.0), _res(CEILING, 0.5)], ["proto_a"])


def test_score_matrices_and_rliable_aggregates():
    per = {"melanoma": _scenario(), "nsclc": _scenario(offset=0.3, algo_values=(0.9, 0.1))}
    mats, scenarios, seeds = score_matrices(per)
    assert scenarios == ["melanoma", "nsclc"]
    assert seeds["ppo"] == [0, 1]  # seed 2 only in melanoma: dropped
    np.testing.assert_allclose(mats["ppo"], [[0.5, 0.9], [0.6, 0.1]])
    assert mats["open_loop"].shape == (1, 2)
    agg = aggregate(mats, reps=200)
    r = agg["ppo"]
    assert r["mean"] == pytest.approx(np.mean([0.5, 0.9, 0.6, 0.1]))
    assert r["mean_low"] <= r["mean"] <= r["mean_high"]
    assert r["iqm_low"] <= r["iqm"] <= r["iqm_high"]
    # P(ppo run > open loop) per scenario, averaged: melanoma 2/2, nsclc 1/2
    assert r["p_improve_open_loop"] == pytest.approx(0.75)
    # what closed loop adds over the open-loop schedule, per scenario, over the seeds
    diff = over_open_loop(per, seeds, reps=200)
    assert diff["melanoma"]["ppo"][0] == pytest.approx(0.35)  # (0.3 + 0.4) / 2
    assert diff["melanoma"]["ppo"][1] <= 0.35 <= diff["melanoma"]["ppo"][2]
    assert diff["nsclc"]["ppo"][0] == pytest.approx(0.3)  # (0.7 - 0.1) / 2
    again = aggregate(mats, reps=200)
    for name, row in agg.items():  # point estimates exact; bootstrap bounds to resampling noise
        for k, v in row.items():
            tol = 0.0 if k in ("runs", "iqm", "mean", "p_improve_open_loop") else 0.1
            assert again[name][k] == pytest.approx(v, abs=tol), (name, k)


def test_trained_run_labels_and_pareto_front():
    assert trained_run("maskable_ppo_s12") == ("maskable_ppo", 12)
    assert trained_run("nivolumab") is None
    pts = [(10.0, 1.0), (20.0, 1.2), (15.0, 0.9), (5.0, 0.8), (20.0, 1.1)]
    assert pareto_front(pts) == [3, 0, 1]


def test_the_saved_open_loop_schedule_is_searched_again_for_other_protocols(tmp_path, monkeypatch):
    """``<scenario>/open_loop.json`` is reused only for the same search settings *and* the
    same scenario (dynamics fingerprint and protocols, as the unit key of ``open_loop``)."""
    import json

    from oncogym.agents import openloop, units
    from oncogym.scenarios import dynamics_fingerprint, load_scenario

    calls = []
    search = openloop.search_open_loop

    def counting(*args, **kwargs):
        calls.append(args)
        return search(*args, **kwargs)

    monkeypatch.setattr(openloop, "search_open_loop", counting)
    cfg = units.BenchmarkConfig(out_dir=str(tmp_path), open_loop={"n_trials": 2, "n_patients": 4})
    (tmp_path / "melanoma").mkdir()
    first = units.open_loop_schedule("melanoma", cfg)
    path = tmp_path / "melanoma" / "open_loop.json"
    data = json.loads(path.read_text())
    assert data["scenario"]["scenario_sha256"] == dynamics_fingerprint(load_scenario("melanoma"))
    assert len(data["scenario"]["protocols_sha256"]) == 64
    assert units.open_loop_schedule("melanoma", cfg).to_dict() == first.to_dict()
    assert len(calls) == 1  # reused
    data["scenario"]["protocols_sha256"] = "0" * 64  # searched before a protocol edit
    path.write_text(json.dumps(data))
    units.open_loop_schedule("melanoma", cfg)
    assert len(calls) == 2
    assert json.loads(path.read_text())["scenario"]["protocols_sha256"] != "0" * 64
