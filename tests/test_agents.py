"""Baselines, the cohort evaluator and the benchmark runner (issue 5, items 1, 3, 7)."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test
from lifelines.utils import median_survival_times

from oncogym.agents import benchmark as B
from oncogym.agents import units as U
from oncogym.agents.evaluate import (
    CohortRunner,
    EvaluationResult,
    clear_report,
    rollout,
    summarise,
    wilson_interval,
    write_report,
)
from oncogym.agents.policies import (
    AdaptivePolicy,
    NoTreatment,
    ProtocolPolicy,
    RandomPolicy,
    baseline_names,
    make_baseline,
    protocol_names,
)
from oncogym.clinical import Response
from oncogym.envs import OncologyEnv
from oncogym.envs.task import TASKS
from oncogym.scenarios import Cohort, load_scenario

N = 6


def _expected_doses(task: str, protocol: str, cohort: Cohort, n_steps: int, dd: int) -> np.ndarray:
    """Protocol amounts summed per decision interval, from the scenario data (per patient)."""
    sc = load_scenario(task)
    therapies = list(sc.therapies)
    proto = sc.protocols[protocol]
    out = np.zeros((len(cohort), n_steps, len(therapies)))
    for i, w in enumerate(cohort.weights_kg()):
        for therapy, day, amount, _dur in proto.schedule(sc.horizon_days, weight_kg=float(w)):
            k = int(day // dd)
            if k < n_steps:
                out[i, k, therapies.index(therapy)] += amount
    return out


@pytest.mark.parametrize(("task", "protocol"), [(t, p) for t in TASKS for p in protocol_names(t)])
def test_protocol_baseline_gives_the_protocol_doses_exactly(task, protocol):
    cohort = Cohort.test(task, N)
    res = rollout(ProtocolPolicy(protocol), task, cohort=cohort)
    n_steps = res.doses.shape[1]
    expected = _expected_doses(task, protocol, cohort, n_steps, res.decision_days)
    # compare the intervals each patient started alive
    alive = np.arange(n_steps)[None, :] * res.decision_days < res.os_days[:, None]
    alive &= ~(
        res.death[:, None]
        & (np.arange(n_steps)[None, :] * res.decision_days >= res.os_days[:, None])
    )
    proto = load_scenario(task).protocols[protocol]
    if proto.switches:
        # the first line's doses up to the visit that read progression (PFS event), then
        # the next line from its first dose, after the delay rounded up to a visit
        progressed = res.pfs_event & ~(res.death & (res.pfs_days >= res.os_days - 1e-9))
        prog = np.where(progressed, res.pfs_days, np.inf)
        first = np.arange(n_steps)[None, :] * res.decision_days < prog[:, None]
        np.testing.assert_allclose(res.doses[alive & first], expected[alive & first], rtol=1e-12)
        nxt = load_scenario(task).protocols[proto.next_line]
        delay = int(np.ceil(proto.next_line_delay_days / res.decision_days - 1e-9))
        for i in np.flatnonzero(np.isfinite(prog)):
            k0 = int(np.ceil(prog[i] / res.decision_days - 1e-9)) + delay
            sub = _expected_doses(task, nxt.name, cohort, n_steps, res.decision_days)[i]
            for k in range(k0, n_steps):
                if alive[i, k]:
                    want = sub[k - k0] + (0 if proto.until_progression else expected[i, k])
                    np.testing.assert_allclose(res.doses[i, k], want, rtol=1e-12)
        assert expected[alive & first].sum() > 0
        return
    np.testing.assert_allclose(res.doses[alive], expected[alive], rtol=1e-12, atol=0)
    assert expected[alive].sum() > 0


def test_no_treatment_gives_nothing_and_matches_untreated_arm():
    cohort = Cohort.test("melanoma", N)
    res = rollout(NoTreatment(), "melanoma", cohort=cohort)
    assert not res.doses.any()
    untreated = rollout(ProtocolPolicy("untreated"), "melanoma", cohort=cohort)
    np.testing.assert_array_equal(res.returns, untreated.returns)
    np.testing.assert_array_equal(res.os_days, untreated.os_days)
    soc = rollout(ProtocolPolicy("nivolumab_ipilimumab"), "melanoma", cohort=cohort)
    assert res.qalys.mean() < soc.qalys.mean()


def test_random_policy_is_reproducible_and_uses_every_level():
    a = rollout(RandomPolicy(seed=3), "nsclc", n_patients=N)
    b = rollout(RandomPolicy(seed=3), "nsclc", n_patients=N)
    c = rollout(RandomPolicy(seed=4), "nsclc", n_patients=N)
    np.testing.assert_array_equal(a.doses, b.doses)
    np.testing.assert_array_equal(a.returns, b.returns)
    assert not np.array_equal(a.doses, c.doses)


def test_rollout_is_deterministic_and_matches_the_vector_env():
    """The evaluator steps the env's own dynamics: same returns as OncologyVectorEnv."""
    from oncogym.envs import OncologyVectorEnv
    from oncogym.envs import functional as Fn

    cohort = Cohort.test("rcc", N)
    r1 = rollout(ProtocolPolicy("nivolumab_ipilimumab"), "rcc", cohort=cohort)
    r2 = rollout(ProtocolPolicy("nivolumab_ipilimumab"), "rcc", cohort=cohort)
    np.testing.assert_array_equal(r1.returns, r2.returns)
    venv = OncologyVectorEnv(N, "rcc", action_mode="continuous")
    venv.reset(seed=2024, options={"cohort": cohort})
    sched = cohort.schedules("nivolumab_ipilimumab", venv.params.horizon_days)
    acts = (
        np.stack([Fn.schedule_to_actions(venv.params, s) for s in sched])
        if isinstance(sched[0], list)
        else np.repeat(Fn.schedule_to_actions(venv.params, sched)[None], N, 0)
    )
    total = np.zeros(N)
    done = np.zeros(N, dtype=bool)
    for k in range(venv.params.n_steps):
        _, r, te, tr, _ = venv.step(acts[:, k])
        total += np.where(done, 0.0, r)
        done |= te | tr
        if done.all():
            break
    np.testing.assert_allclose(r1.returns, total, rtol=1e-12, atol=1e-15)


def test_adaptive_rules_escalate_hold_and_resume():
    runner = CohortRunner("melanoma", 1, cohort=Cohort.test("melanoma", 1))
    pol = AdaptivePolicy()
    pol.attach(runner)
    names = list(runner.observation_names)
    i_sld, i_since, i_day = names.index("scan_sld_mm"), names.index("weeks_since_scan"), -1
    i_new, i_irae = names.index("new_lesion"), names.index("grade_irae")
    th = runner.params.therapies

    def obs(day, sld, since, irae=0, new=0):
        o = np.zeros(len(names))
        o[i_sld], o[i_since], o[i_day], o[i_irae], o[i_new] = sld, since, day, irae, new
        return o

    a, _ = pol.predict(obs(0, 60.0, 0))  # first line: nivolumab monotherapy
    assert a[th.index("anti_pd1")] > 0 and a[th.index("anti_ctla4")] == 0
    pol.predict(obs(7, 60.0, 1))
    # the sum of target diameters 25 % (15 mm) over its nadir = progression
    a, _ = pol.predict(obs(14, 75.0, 0))
    assert a[th.index("anti_ctla4")] > 0, "second line (nivolumab + ipilimumab) starts"
    a, _ = pol.predict(obs(21, 75.0, 1, irae=3))
    assert not a.any(), "grade 3 holds everything"
    a, _ = pol.predict(obs(28, 75.0, 2, irae=2))
    assert not a.any(), "still held at grade 2"
    a, _ = pol.predict(obs(35, 75.0, 3, irae=1))
    # resumes where the line's clock stopped: its second week (no dose due), not skipped ahead
    assert pol.clock[0] == 2
    a, _ = pol.predict(obs(0, 60.0, 0))  # a new episode starts from the first line
    assert a[th.index("anti_ctla4")] == 0 and pol.line[0] == 0
    # a new lesion is progression too, even with the sum shrinking; it counts once
    pol.predict(obs(42, 50.0, 0))
    pol.predict(obs(84, 40.0, 0, new=1))
    assert pol.line[0] == 1
    pol.predict(obs(126, 40.0, 0, new=1))
    assert pol.line[0] == 1


def test_adaptive_needs_clinical_observations():
    env = OncologyEnv("melanoma", observation="full")
    env.reset(seed=0)
    with pytest.raises(ValueError, match='observation="clinical"'):
        AdaptivePolicy().attach(env)


def test_baselines_work_on_the_single_env():
    env = OncologyEnv("melanoma", action_mode="continuous")
    obs, _ = env.reset(seed=1)
    for pol in (ProtocolPolicy("nivolumab_ipilimumab"), AdaptivePolicy(), NoTreatment()):
        pol.attach(env)
        a, state = pol.predict(obs)
        assert a.shape == (len(env.unwrapped.therapies),) and state is None
        assert env.action_space.contains(a.astype(np.float32))


def test_make_baseline_errors_name_the_allowed_values():
    with pytest.raises(ValueError, match="allowed: no_treatment, random"):
        make_baseline("chemo_forever", "melanoma")
    pol = ProtocolPolicy("platinum_doublet")
    with pytest.raises(ValueError, match=r"allowed: .*nivolumab_ipilimumab"):
        pol.attach(OncologyEnv("melanoma"))
    assert "mpc_oracle" in baseline_names("depillis2006")
    assert "adaptive" not in baseline_names("depillis2006")


# --- metrics on hand-made outcomes -------------------------------------------------------------
def _result(name, os_days, death, pfs_days, pfs_event, best, grades, qalys):
    n = len(os_days)
    return EvaluationResult(
        policy=name,
        task="melanoma",
        therapies=("a",),
        tox_categories=("irae", "crs"),
        decision_days=7,
        horizon_days=730.0,
        returns=np.asarray(qalys, float) - 0.1,
        qalys=np.asarray(qalys, float),
        os_days=np.asarray(os_days, float),
        death=np.asarray(death, bool),
        death_cause=np.where(death, "tumour", "none"),
        pfs_days=np.asarray(pfs_days, float),
        pfs_event=np.asarray(pfs_event, bool),
        best_response=np.asarray(best),
        worst_grade=np.asarray(grades),
        doses=np.zeros((n, 2, 1)),
        burden=np.ones((n, 3)),
        errors=0,
        wall_s=1.0,
    )


CR, PR, SD, PD = Response.CR, Response.PR, Response.SD, Response.PD


def test_summary_metrics_equal_hand_computed_values():
    res = _result(
        "x",
        os_days=[100, 200, 300, 400, 730],
        death=[1, 1, 0, 1, 0],
        pfs_days=[50, 100, 150, 400, 730],
        pfs_event=[1, 1, 1, 1, 0],
        best=[CR, PR, SD, PD, CR],
        grades=[[3, 0], [0, 4], [2, 2], [0, 0], [5, 3]],
        qalys=[0.1, 0.3, 0.5, 0.7, 0.9],
    )
    m = summarise(res)
    assert m["orr"] == pytest.approx(3 / 5) and m["cr_rate"] == pytest.approx(2 / 5)
    assert (m["orr_low"], m["orr_high"]) == pytest.approx(wilson_interval(3, 5))
    assert m["grade3_irae"] == pytest.approx(2 / 5) and m["grade3_crs"] == pytest.approx(2 / 5)
    assert m["grade3_any"] == pytest.approx(3 / 5)
    assert m["mean_qalys"] == pytest.approx(0.5)
    assert m["qalys_sem"] == pytest.approx(np.std([0.1, 0.3, 0.5, 0.7, 0.9], ddof=1) / math.sqrt(5))
    # KM by hand: S = 4/5 after day 100, 3/5 after 200, (censor 300), 3/5 * 1/2 after 400
    assert m["median_os_months"] == pytest.approx(400 / (365.25 / 12))
    assert m["os_12m"] == pytest.approx(3 / 5)  # day 365: deaths at 100 and 200 only
    assert m["os_horizon"] == pytest.approx(0.3)
    # PFS: events at 50, 100, 150 -> S = 2/5 after 150: median at 150 days
    assert m["median_pfs_months"] == pytest.approx(150 / (365.25 / 12))
    km = KaplanMeierFitter().fit(res.os_days, res.death)
    lo, hi = np.asarray(median_survival_times(km.confidence_interval_)).ravel()[:2]
    assert m["median_os_months_low"] == pytest.approx(lo / (365.25 / 12))
    assert (math.isinf(hi) and math.isinf(m["median_os_months_high"])) or m[
        "median_os_months_high"
    ] == pytest.approx(hi / (365.25 / 12))


def test_wilson_interval_known_value():
    # 5/10: 0.2366 - 0.7634 (Wilson 1927; e.g. Newcombe 1998 Table I method 3)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0


def test_log_rank_and_hazard_ratio_match_lifelines():
    rng = np.random.default_rng(0)
    t1, t2 = rng.exponential(300, 40).clip(1, 730), rng.exponential(500, 40).clip(1, 730)
    e1, e2 = t1 < 730, t2 < 730
    a = _result("a", t1, e1, t1, e1, [SD] * 40, [[0, 0]] * 40, rng.random(40))
    b = _result("b", t2, e2, t2, e2, [SD] * 40, [[0, 0]] * 40, rng.random(40))
    m = summarise(a, reference=b)
    ref = logrank_test(t1, t2, event_observed_A=e1, event_observed_B=e2)
    assert m["os_logrank_p"] == pytest.approx(ref.p_value, rel=1e-12)
    assert m["os_hr"] > 1.0  # shorter survival than the reference
    d = a.qalys - b.qalys
    assert m["qalys_diff"] == pytest.approx(d.mean())
    assert summarise(b, reference=b)["qalys_diff"] == 0.0


def test_write_report_writes_tables_and_figures(tmp_path):
    cohort = Cohort.test("melanoma", N)
    res = [
        rollout(make_baseline(n, "melanoma"), "melanoma", cohort=cohort)
        for n in ("no_treatment", "nivolumab_ipilimumab")
    ]
    rows = write_report(res, tmp_path, reference="nivolumab_ipilimumab")
    assert [r["policy"] for r in rows] == ["no_treatment", "nivolumab_ipilimumab"]
    for f in (
        "metrics.csv",
        "metrics.md",
        "patients.csv",
        "km_os.png",
        "km_pfs.png",
        "trajectories.png",
        "swimmer_no_treatment.png",
    ):
        assert (tmp_path / f).stat().st_size > 0
    assert "nivolumab_ipilimumab" in (tmp_path / "metrics.md").read_text()
    with pytest.raises(ValueError, match="reference"):
        write_report(res, tmp_path, reference="pembrolizumab")
    # report_files knows every file write_report writes (evaluate --force and the
    # benchmark remove an earlier report by it), and nothing else
    (tmp_path / "notes.md").write_text("mine")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "metrics.csv").write_text("mine")
    names = {p.name for p in tmp_path.iterdir()} - {"notes.md", "sub"}
    assert {p.name for p in clear_report(tmp_path)} == names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.md", "sub"]
    assert (tmp_path / "sub" / "metrics.csv").exists()


# --- benchmark runner ----------------------------------------------------------------------------
def test_benchmark_runs_units_resumes_and_reports(tmp_path):
    kw = dict(baselines=["no_treatment", "nivolumab", "adaptive"], n_patients=4)
    rows = B.run_benchmark(["melanoma"], tmp_path, **kw)
    assert [r["policy"] for r in rows["melanoma"]] == ["no_treatment", "nivolumab", "adaptive"]
    unit = tmp_path / "melanoma" / "units" / "nivolumab.pkl"
    stamp = unit.stat().st_mtime_ns
    with open(unit, "rb") as fh:
        assert pickle.load(fh).n == 4
    again = B.run_benchmark(["melanoma"], tmp_path, **kw)  # resumes: nothing recomputed
    assert unit.stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(pd.DataFrame(again["melanoma"]), pd.DataFrame(rows["melanoma"]))
    assert (tmp_path / "benchmark.json").exists()
    # other settings: refused before anything runs, naming each unit and what differs
    with pytest.raises(B.StaleResultError, match="eval_seed: 2024 → 7") as err:
        B.run_benchmark(["melanoma"], tmp_path, **{**kw, "eval_seed": 7})
    assert set(err.value.stale) == {f"eval:melanoma:{b}" for b in kw["baselines"]}
    assert str(tmp_path) in str(err.value) and unit.stat().st_mtime_ns == stamp


def test_unit_key_holds_the_full_configuration(tmp_path):
    import oncogym

    cfg = U.BenchmarkConfig(
        out_dir=str(tmp_path),
        n_patients=5,
        planner={"n_samples": 8},
        timesteps=256,
        n_envs=4,
        train_overrides={"learning_rate": 1e-3},
    )
    common = {
        "scenario": "melanoma",
        "env_id": "oncogym/Melanoma-v1",
        "oncogym": oncogym.__version__,
        "scenario_sha256": oncogym.scenarios.dynamics_fingerprint("melanoma"),
    }
    evaluation = {"n_patients": 5, "eval_seed": 2024}
    training = {
        "timesteps": 256,
        "n_envs": 4,
        "train_overrides": {"learning_rate": 1e-3},
        "train_config": None,
    }
    base = U.unit_key(B.Unit("eval", "melanoma", "nivolumab"), cfg)
    protocol = base.pop("protocol")
    assert base == {**common, **evaluation, "kind": "eval", "policy": "nivolumab"}
    assert protocol["doses"][0]["therapy"] == "anti_pd1"
    mpc = U.unit_key(B.Unit("eval", "melanoma", "mpc_oracle"), cfg)
    assert mpc["planner"] == {"n_samples": 8} and "timesteps" not in mpc
    assert len(mpc["protocols_sha256"]) == 64
    adaptive = U.unit_key(B.Unit("eval", "melanoma", "adaptive"), cfg)
    assert adaptive["protocols_sha256"] == mpc["protocols_sha256"]
    run = U.unit_key(B.Unit("train", "melanoma", "ppo_s1", algo="ppo", seed=1), cfg)
    hyper = run.pop("hyperparams")
    assert run == {
        **common,
        **training,
        "kind": "train",
        "policy": "ppo_s1",
        "algo": "ppo",
        "seed": 1,
    }
    assert hyper["learning_rate"] == 1e-3 and hyper["n_steps"] == 128  # resolved + override
    run["hyperparams"] = hyper
    trained = U.unit_key(B.Unit("eval", "melanoma", "ppo_s1", algo="ppo", seed=1), cfg)
    assert trained == {**run, **evaluation, "kind": "eval"}
    config = tmp_path / "ppo.yml"
    config.write_text("default: {}\n")
    with_file = U.BenchmarkConfig(out_dir=str(tmp_path), train_config=str(config))
    first = U.unit_key(B.Unit("train", "melanoma", "ppo_s1", algo="ppo", seed=1), with_file)
    config.write_text("default: {n_steps: 64}\n")  # the file's content is part of the key
    second = U.unit_key(B.Unit("train", "melanoma", "ppo_s1", algo="ppo", seed=1), with_file)
    assert "train_config: " in U.key_difference(first, second)
    # an edited packaged default is a change of settings too
    import shutil

    from oncogym.agents import train as T

    folder = tmp_path / "hp"
    shutil.copytree(T.HYPERPARAMS_DIR, folder)
    plain = U.BenchmarkConfig(out_dir=str(tmp_path))
    unit = B.Unit("train", "melanoma", "ppo_s1", algo="ppo", seed=1)
    before = U.unit_key(unit, plain)
    text = (folder / "ppo.yml").read_text().replace("n_epochs: 10", "n_epochs: 5", 1)
    (folder / "ppo.yml").write_text(text)
    T.HYPERPARAMS_DIR, saved = folder, T.HYPERPARAMS_DIR
    try:
        after = U.unit_key(unit, plain)
    finally:
        T.HYPERPARAMS_DIR = saved
    assert "n_epochs" in U.key_difference(before, after)


def _fake_result(cfg, unit, key_cfg=None):
    """A finished unit (as if run with ``key_cfg``'s settings) without running it."""
    if unit.kind == "train":
        cfg.run_dir(unit).mkdir(parents=True)
        (cfg.run_dir(unit) / "config.yml").write_text("algo: ppo\n")  # a started run
    else:
        cfg.result_path(unit).parent.mkdir(parents=True, exist_ok=True)
        cfg.result_path(unit).write_bytes(b"result")
    if key_cfg is not None:
        key = U.unit_key(unit, key_cfg)
        cfg.key_path(unit).write_text(json.dumps(key))


def test_a_unit_with_other_settings_is_refused_or_with_force_removed(tmp_path, monkeypatch):
    old = U.BenchmarkConfig(out_dir=str(tmp_path), timesteps=128, planner={"n_samples": 8})
    new = U.BenchmarkConfig(out_dir=str(tmp_path), timesteps=256, planner={"n_samples": 16})
    run = B.Unit("train", "melanoma", "ppo_s0", algo="ppo", seed=0)
    mpc = B.Unit("eval", "melanoma", "mpc_oracle")
    same = B.Unit("eval", "melanoma", "nivolumab")
    for u in (run, mpc, same):
        _fake_result(new, u, old)
    (tmp_path / "melanoma" / "notes.txt").write_text("mine")
    with pytest.raises(B.StaleResultError) as err:
        U.check_units([run, mpc, same], new)
    assert err.value.stale == {
        "train:melanoma:ppo_s0": "timesteps: 128 → 256",
        "eval:melanoma:mpc_oracle": 'planner: {"n_samples": 8} → {"n_samples": 16}',
    }
    assert "pass a new --out, or --force" in str(err.value)
    assert (new.run_dir(run) / "config.yml").exists()  # refused: nothing removed
    # an older oncogym: every unit differs
    version = U.unit_key(same, old)["oncogym"]
    monkeypatch.setattr(U, "_version", lambda: "0.0.1")
    with pytest.raises(B.StaleResultError) as old_version:
        U.check_units([same], new)
    assert old_version.value.stale == {"eval:melanoma:nivolumab": f'oncogym: "{version}" → "0.0.1"'}
    monkeypatch.undo()
    # force: exactly the differing units' results go (the run's folder, the .pkl and key)
    U.check_units([run, mpc, same], new, force=True)
    assert not new.run_dir(run).exists()
    assert not new.result_path(mpc).exists() and not new.key_path(mpc).exists()
    assert new.result_path(same).exists() and new.key_path(same).exists()
    assert (tmp_path / "melanoma" / "notes.txt").exists()
    U.check_units([run, mpc, same], new)  # nothing left to refuse


def test_a_started_training_run_with_the_same_key_is_resumed_one_without_a_key_refused(tmp_path):
    cfg = U.BenchmarkConfig(out_dir=str(tmp_path), timesteps=256)
    run = B.Unit("train", "melanoma", "ppo_s0", algo="ppo", seed=0)
    _fake_result(cfg, run, cfg)
    assert U.stale_reason(run, cfg) is None  # run_unit continues it from its checkpoint
    cfg.key_path(run).unlink()
    with pytest.raises(B.StaleResultError, match="predate unit keys"):
        U.check_units([run], cfg)


def test_benchmark_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="scenario: unknown 'mars'"):
        B.run_benchmark(["mars"], tmp_path)
    with pytest.raises(ValueError, match="backend: unknown 'slurm'; allowed: local, ray"):
        B.run_benchmark(["melanoma"], tmp_path, backend="slurm")
    with pytest.raises(ValueError, match="not a training run folder"):
        B.run_benchmark(["melanoma"], tmp_path, agents=[tmp_path])


def test_benchmark_failed_unit_is_reported_by_name(tmp_path, monkeypatch):
    from oncogym.agents import units as U

    real = U.run_unit

    def flaky(unit, cfg):
        if unit.policy == "nivolumab":
            raise RuntimeError("boom")
        return real(unit, cfg)

    monkeypatch.setattr(U, "run_unit", flaky)
    with pytest.raises(B.BenchmarkError, match="eval:melanoma:nivolumab: RuntimeError: boom"):
        B.run_benchmark(
            ["melanoma"], tmp_path, baselines=["no_treatment", "nivolumab"], n_patients=3
        )
    # the other unit finished and is reported
    assert (tmp_path / "melanoma" / "units" / "no_treatment.pkl").exists()


def test_ray_backend_without_ray_says_how_to_install(tmp_path, monkeypatch):
    import sys

    from typer.testing import CliRunner

    from oncogym.agents.cli import app

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(ImportError, match=r'pip install "oncogym\[ray\]"'):
        B.run_benchmark(
            ["melanoma"], tmp_path, baselines=["no_treatment"], n_patients=2, backend="ray"
        )
    result = CliRunner().invoke(
        app,
        [
            "benchmark",
            "-b",
            "no_treatment",
            "--patients",
            "2",
            "--backend",
            "ray",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2 and "oncogym[ray]" in result.output
    assert "Traceback" not in result.output


def test_benchmark_trains_evaluates_and_reports_the_budget(tmp_path):
    kw = dict(
        baselines=["no_treatment"], algos=["ppo"], seeds=[0], timesteps=256, n_envs=4, n_patients=2
    )
    rows = B.run_benchmark(["melanoma"], tmp_path, **kw)
    by = {r["policy"]: r for r in rows["melanoma"]}
    assert list(by) == ["no_treatment", "ppo_s0"]
    assert by["ppo_s0"]["algo"] == "ppo" and by["ppo_s0"]["train_timesteps"] >= 256
    assert by["ppo_s0"]["train_wall_s"] > 0
    assert (tmp_path / "melanoma" / "runs" / "ppo_s0" / "model.zip").exists()
    assert (tmp_path / "melanoma" / "runs" / "ppo_s0" / "unit.key.json").exists()
    # another budget: the run and its evaluation are refused, not reused
    with pytest.raises(B.StaleResultError) as err:
        B.run_benchmark(["melanoma"], tmp_path, **{**kw, "timesteps": 512})
    assert err.value.stale == {
        "train:melanoma:ppo_s0": "timesteps: 256 → 512",
        "eval:melanoma:ppo_s0": "timesteps: 256 → 512",
    }
    # a run killed before it finished (here before its first checkpoint) with the same key
    # is not refused: it is trained again, and keeps its key
    run = tmp_path / "melanoma" / "runs" / "ppo_s0"
    (run / "model.zip").unlink()
    (tmp_path / "melanoma" / "units" / "ppo_s0.pkl").unlink()
    B.run_benchmark(["melanoma"], tmp_path, **kw)
    assert (run / "model.zip").exists()
    assert json.loads((run / "unit.key.json").read_text())["timesteps"] == 256
    # the same seed gives the same agent and the same table (a fresh folder)
    again = B.run_benchmark(["melanoma"], tmp_path / "again", **kw)
    a, b = (
        pd.DataFrame(r).drop(columns=["wall_s", "train_wall_s"])
        for r in (rows["melanoma"], again["melanoma"])
    )
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def _import_graph(package_dir, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in the file, lazily or not)."""
    import ast
    from pathlib import Path

    modules = {p.stem for p in Path(package_dir).glob("*.py") if p.stem != "__init__"}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for m in modules:
        tree = ast.parse((Path(package_dir) / f"{m}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level == 1:
                    targets = [base] if base else [a.name for a in node.names]
                elif base.startswith(f"{package}."):
                    targets = [base.removeprefix(f"{package}.").split(".")[0]]
                else:
                    continue
                graph[m] |= {t for t in targets if t in modules and t != m}
    return graph


@pytest.mark.parametrize("package", ["agents", "envs"])
def test_modules_import_each_other_without_a_cycle(package):
    """agents: units <- backends <- benchmark, the Ray backend beside the local pool (the
    benchmark and the Ray backend used to import each other)."""
    import importlib
    from pathlib import Path

    folder = Path(importlib.import_module(f"oncogym.{package}").__file__).parent
    graph = _import_graph(folder, f"oncogym.{package}")
    assert len(graph) >= 6
    done: set[str] = set()
    for _ in range(len(graph)):
        ready = {m for m, deps in graph.items() if m not in done and deps <= done}
        done |= ready
    cycle = {m: sorted(d - done) for m, d in graph.items() if m not in done}
    assert not cycle, f"import cycle among {cycle}"
    if package == "agents":
        assert "benchmark" not in graph["ray_backend"] and "ray_backend" not in graph["benchmark"]


def test_the_evaluator_scores_every_policy_on_the_default_reward() -> None:
    """An agent's training reward weights do not follow it into the evaluation: its QALYs are
    on the baselines' scale."""
    from oncogym.agents.evaluate import CohortRunner

    plain = CohortRunner("melanoma", 4)
    weighted = CohortRunner(
        "melanoma", 4, env_kwargs={"reward_weights": {"burden_weight": 0.0}, "reward": "qaly"}
    )
    action = np.ones((4, plain.params.n_therapies))
    a, b = plain.step(action), weighted.step(action)
    np.testing.assert_array_equal(a.reward, b.reward)
    # not vacuous: in the env itself those weights change the reward of the same step
    from oncogym.envs import OncologyVectorEnv

    rewards = []
    for weights in (None, {"burden_weight": 0.0}):
        venv = OncologyVectorEnv(4, "melanoma", action_mode="continuous", reward_weights=weights)
        venv.reset(seed=0)
        rewards.append(venv.step(action)[1])
    assert not np.allclose(rewards[0], rewards[1])


def test_a_recalibrated_scenario_makes_its_results_stale(tmp_path, monkeypatch):
    """Issue 14 item 6: results are keyed by the scenario's dynamics (a refit changes them)
    and a protocol's doses, not only by the env id."""
    import oncogym.scenarios

    kw = dict(baselines=["no_treatment", "nivolumab"], n_patients=2)
    B.run_benchmark(["melanoma"], tmp_path, **kw)
    key = json.loads((tmp_path / "melanoma" / "units" / "nivolumab.key.json").read_text())
    assert key["scenario_sha256"] == oncogym.scenarios.dynamics_fingerprint("melanoma")
    nivolumab = load_scenario("melanoma").protocols["nivolumab"]
    assert key["protocol"]["doses"] == [d.model_dump(mode="json") for d in nivolumab.doses]
    assert "protocol" not in json.loads(
        (tmp_path / "melanoma" / "units" / "no_treatment.key.json").read_text()
    )
    B.run_benchmark(["melanoma"], tmp_path, **kw)  # unchanged: reused
    monkeypatch.setattr(oncogym.scenarios, "dynamics_fingerprint", lambda sc: "refitted")
    with pytest.raises(B.StaleResultError, match=r'scenario_sha256: ".*" → "refitted"'):
        B.run_benchmark(["melanoma"], tmp_path, **kw)
