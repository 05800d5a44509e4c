"""Offline RL (issue 15.2): Minari datasets of a clinic's behaviour, behaviour cloning, and
off-policy evaluation against the simulator's truth.  Datasets here are a handful of
patients, most on a 26-week horizon, so each test takes seconds."""

from __future__ import annotations

import sys
from importlib.util import find_spec

import numpy as np
import pytest
from typer.testing import CliRunner

from oncogym.agents.cli import app
from oncogym.agents.datasets import (
    DATASET_DRAW,
    INFO_KEYS,
    Discretised,
    dataset_id,
    datasets_root,
    levels_of,
    make_dataset,
)
from oncogym.agents.evaluate import rollout
from oncogym.agents.offline import (
    fqe,
    load_data,
    select_by_fqe,
    target_actions,
    train_bc,
    train_cql,
    wis,
)
from oncogym.agents.policies import AdaptivePolicy, ProtocolPolicy
from oncogym.envs.task import make_params
from oncogym.scenarios import Cohort

needs_minari = pytest.mark.skipif(
    find_spec("minari") is None or find_spec("h5py") is None,
    reason='needs the offline extra: pip install -e ".[offline]"',
)
SHORT = {"horizon_days": 182.0}  # 26 weekly visits
runner = CliRunner()


def _arrays(ds):
    eps = list(ds.iterate_episodes())
    return [
        (e.observations, e.actions, e.rewards, e.terminations, e.truncations, e.infos) for e in eps
    ]


@needs_minari
def test_cli_writes_datasets_that_minari_loads_with_metadata(tmp_path):
    result = runner.invoke(
        app,
        [
            *("datasets", "-s", "melanoma", "-b", "protocols,adaptive_noisy", "--patients", "5"),
            *("--out", str(tmp_path), "--seed", "3"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "oncogym/melanoma/protocols-v0" in result.output
    import minari

    with datasets_root(tmp_path):
        for behaviour in ("protocols", "adaptive_noisy"):
            did = dataset_id("melanoma", behaviour)
            ds = minari.load_dataset(did)
            assert ds.total_episodes == 5
            meta = ds.storage.metadata["oncogym"]
            assert meta["scenario"] == "melanoma"
            assert meta["env_id"] == "oncogym/Melanoma-v1" and meta["env_version"] == 1
            assert meta["behaviour"] == behaviour
            assert meta["seed"] == 3 and meta["n_patients"] == 5
            assert meta["cohort"] == {"kind": "Cohort.train", "draw": DATASET_DRAW, "n": 5}
            assert meta["oncogym_version"]
            assert set(meta["infos"]) == set(INFO_KEYS)
            assert ds.spec.action_space.__class__.__name__ == "MultiDiscrete"
            assert list(ds.spec.action_space.nvec) == [3, 3, 2]
            ep = next(ds.iterate_episodes())
            assert set(ep.infos) == set(INFO_KEYS)
            assert len(ep.observations) == len(ep.actions) + 1 == len(ep.infos["day"])
            prob = ep.infos["behaviour_prob"]
            assert np.isnan(prob[0]) and np.all((prob[1:] > 0) & (prob[1:] <= 1))
            episode_meta = list(ds.storage.get_episode_metadata(range(5)))
            assert [m["patient"] for m in episode_meta] == [0, 1, 2, 3, 4]
            assert [m["scan_noise_seed"] for m in episode_meta] == [3, 4, 5, 6, 7]
        noisy = ds.storage.metadata["oncogym"]["behaviour_settings"]
        assert noisy["delay_eps"] == 0.05 and noisy["level_eps"] == 0.02
    # the same command again is refused (nothing replaced) unless --force
    again = runner.invoke(app, ["datasets", "--patients", "5", "--out", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output


@needs_minari
def test_episodes_replay_exactly_in_the_recovered_environment(tmp_path):
    ds = make_dataset("lbcl", "adaptive_noisy", n_patients=4, seed=1, out=tmp_path, **_short())
    env = ds.recover_environment()
    cohort = Cohort.train("lbcl", 4, DATASET_DRAW)
    meta = list(ds.storage.get_episode_metadata(range(4)))
    for ep, m in zip(ds.iterate_episodes(), meta, strict=True):
        seed, index = int(m["scan_noise_seed"]), int(m["patient"])
        obs, _ = env.reset(seed=seed, options={"cohort": cohort, "index": index})
        assert np.array_equal(obs, ep.observations[0])
        for t, a in enumerate(ep.actions):
            obs, r, term, trunc, _ = env.step(a)
            assert np.array_equal(obs, ep.observations[t + 1])
            assert r == ep.rewards[t]
            assert (term, trunc) == (ep.terminations[t], ep.truncations[t])
        assert term or trunc


def _short():
    return {"env_kwargs": SHORT}


@needs_minari
def test_same_seed_same_dataset_other_seed_other_noise(tmp_path):
    kw = {"n_patients": 6, **_short()}
    a = _arrays(make_dataset("melanoma", "adaptive_noisy", seed=5, out=tmp_path / "a", **kw))
    b = _arrays(make_dataset("melanoma", "adaptive_noisy", seed=5, out=tmp_path / "b", **kw))
    c = _arrays(make_dataset("melanoma", "adaptive_noisy", seed=6, out=tmp_path / "c", **kw))
    for ea, eb in zip(a, b, strict=True):
        for xa, xb in zip(ea[:5], eb[:5], strict=True):
            assert np.array_equal(xa, xb)
        for k in ea[5]:
            assert np.array_equal(ea[5][k], eb[5][k], equal_nan=True)
    assert any(not np.array_equal(ea[1], ec[1]) for ea, ec in zip(a, c, strict=True))


def test_levels_of_maps_clinical_amounts_to_the_nearest_level():
    p = make_params("melanoma")  # anti_pd1 levels 240, 480 mg
    frac = np.array([[210 / 480, 0, 0], [400 / 480, 0, 0], [0.01, 1 / 3, 0], [1.0, 1.0, 1.0]])
    assert levels_of(p, frac).tolist() == [[1, 0, 0], [2, 0, 0], [0, 1, 0], [2, 2, 1]]


@needs_minari
def test_bc_reproduces_a_deterministic_protocol_and_scores_it_online(tmp_path):
    ds = make_dataset(
        "melanoma", "protocols", protocols=["nivolumab_ipilimumab"], n_patients=12,
        out=tmp_path, **_short(),
    )  # fmt: skip
    data = load_data(ds)
    bc = train_bc(data, seed=0)
    assert bc.train_accuracy >= 0.99
    # online, on the same patients and scans, it gives what the protocol gave
    cohort = Cohort.train("melanoma", 12, DATASET_DRAW)
    online = rollout(bc, "melanoma", cohort=cohort, seed=0)
    assert online.n == 12
    np.testing.assert_allclose(online.returns, data.returns(), rtol=0, atol=1e-9)
    # the same seed trains the same network
    again = train_bc(data, seed=0)
    obs = data.obs[:, 3]
    assert np.array_equal(bc.act(obs, data.weight_kg), again.act(obs, data.weight_kg))


@needs_minari
def test_conservative_q_learning_stays_with_the_data_and_is_seeded(tmp_path):
    ds = make_dataset(
        "melanoma", "protocols", protocols=["nivolumab_ipilimumab"], n_patients=12,
        out=tmp_path, **_short(),
    )  # fmt: skip
    data = load_data(ds)
    cql = train_cql(data, alpha=1.0, steps=800, seed=0)
    # one action per state in the data: the conservative term pushes the others down
    assert cql.train_accuracy >= 0.99
    assert cql.info["final_conservative"] < 0.1
    again = train_cql(data, alpha=1.0, steps=800, seed=0)
    obs = data.obs[:, 5]
    assert np.array_equal(cql.act(obs, data.weight_kg), again.act(obs, data.weight_kg))
    # offline selection by FQE: every candidate's estimate, the highest picked; a policy
    # that acts as the data did everywhere gets the protocol's own estimate
    protocol = Discretised(ProtocolPolicy("nivolumab_ipilimumab"))
    none = Discretised(ProtocolPolicy("nivolumab_ipilimumab"))
    best, est = select_by_fqe(
        data, {"a": protocol, "b": none}, iterations=10, steps_per_iteration=10
    )
    assert best == "a" and est["a"] == est["b"]
    with pytest.raises(ValueError, match="candidates: expected at least one"):
        select_by_fqe(data, {})
    with pytest.raises(ValueError, match="alpha: expected a number"):
        train_cql(data, alpha=-1.0)


@needs_minari
def test_ope_on_policy_is_close_to_the_true_value(tmp_path):
    ds = make_dataset(
        "melanoma", "protocols", protocols=["nivolumab_ipilimumab"], n_patients=40,
        out=tmp_path, **_short(),
    )  # fmt: skip
    data = load_data(ds)
    target = Discretised(ProtocolPolicy("nivolumab_ipilimumab"))
    acts = target_actions(target, data)
    assert np.all((acts[:, :-1] == data.actions).all(axis=2) | ~data.valid)
    truth = rollout(
        target, "melanoma", cohort=Cohort.train("melanoma", 40, DATASET_DRAW), seed=0,
        env_kwargs=SHORT,
    ).returns.mean()  # fmt: skip
    assert truth == pytest.approx(data.returns().mean(), abs=1e-12)
    w = wis(data, acts)
    assert w.estimate == pytest.approx(truth, abs=1e-9)  # all weights 1: the mean return
    assert w.detail["ess"] == pytest.approx(40)
    q = fqe(data, acts, iterations=40, steps_per_iteration=25, seed=0)
    assert abs(q.estimate - truth) < 0.1 * abs(truth) + 0.01, (q.estimate, truth)


@needs_minari
def test_wis_with_the_noisy_behaviour_weights_only_matching_histories(tmp_path):
    ds = make_dataset(
        "lbcl", "adaptive_noisy", n_patients=30, seed=2, out=tmp_path,
        noise={"line_eps": 0.3, "delay_eps": 0.1, "level_eps": 0.0}, **_short(),
    )  # fmt: skip
    data = load_data(ds)
    assert np.all(data.behaviour_prob[data.valid] < 1 + 1e-12)
    assert np.any(data.behaviour_prob[data.valid] < 1)
    acts = target_actions(AdaptivePolicy(), data)
    res = wis(data, acts)
    match = ((acts[:, :-1] == data.actions).all(axis=2) | ~data.valid).all(axis=1)
    assert res.detail["matching_episodes"] == int(match.sum()) > 0
    # per-decision WIS written out step by step: the weight of episode i at step t is the
    # product over its first t + 1 steps of 1[a = target] / p_b (frozen once it has ended)
    total = 0.0
    for t in range(data.actions.shape[1]):
        num = den = 0.0
        for k in range(data.n):
            rho = 1.0
            for u in range(min(t, data.lengths[k] - 1) + 1):
                same = np.array_equal(data.actions[k, u], acts[k, u])
                rho *= same / data.behaviour_prob[k, u]
            num += rho * (data.rewards[k, t] if t < data.lengths[k] else 0.0)
            den += rho
        total += num / den
    assert res.estimate == pytest.approx(total, rel=1e-9)


def test_datasets_without_minari_fail_with_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "minari", None)
    result = runner.invoke(app, ["datasets", "--out", str(tmp_path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[-1] == 'error: minari is not installed: pip install -e ".[offline]"'
    assert sum(line.startswith("error:") for line in lines) == 1
    assert "Traceback" not in result.output
