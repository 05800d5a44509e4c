"""The Ray backend (issue 6): same tables as the local backend, retries after a worker dies,
failures reported by unit name.  Runs on a local 2-CPU Ray instance (loopback only)."""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip(
    "ray", reason='the Ray extra is not installed (pip install "oncogym[ray]")'
)

from oncogym.agents import benchmark as B  # noqa: E402

BASELINES = ["no_treatment", "nivolumab", "adaptive", "mpc_oracle"]
PLANNER = {"n_samples": 8, "n_iters": 1, "horizon_steps": 4, "replan_every": 4}
TIMING = ("wall_s", "train_wall_s")


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _table(out: Path) -> pd.DataFrame:
    df = pd.read_csv(out / "melanoma" / "metrics.csv")
    return df.drop(columns=[c for c in TIMING if c in df.columns])


def _run(out: Path, backend: str, **kw):
    return B.run_benchmark(
        ["melanoma"],
        out,
        baselines=BASELINES,
        n_patients=3,
        planner=PLANNER,
        backend=backend,
        workers=2,
        **kw,
    )


@pytest.fixture(scope="module")
def local_table(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    _run(out, "local")
    return _table(out)


def test_ray_backend_reproduces_the_local_backend(ray_instance, local_table, tmp_path):
    _run(tmp_path, "ray")
    pd.testing.assert_frame_equal(_table(tmp_path), local_table, check_exact=True)
    assert list(_table(tmp_path)["policy"]) == BASELINES


def _unit_workers() -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if b"ray::_unit_task" in cmd:
            pids.append(int(d.name))
    return pids


def test_a_killed_worker_is_retried_and_the_table_is_complete(ray_instance, local_table, tmp_path):
    killed: list[int] = []

    def killer():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            pids = _unit_workers()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
                return
            time.sleep(0.05)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    _run(tmp_path, "ray")
    t.join(timeout=5)
    assert killed, "no unit worker was seen running"
    pd.testing.assert_frame_equal(_table(tmp_path), local_table, check_exact=True)


def test_a_failing_unit_is_reported_by_name_and_the_rest_finish(ray_instance, tmp_path):
    bad = tmp_path / "broken_agent"
    bad.mkdir()
    (bad / "model.zip").write_bytes(b"not a zip file")
    with pytest.raises(B.BenchmarkError, match="eval:melanoma:broken_agent"):
        B.run_benchmark(
            ["melanoma"],
            tmp_path / "out",
            baselines=["no_treatment"],
            agents=[bad],
            n_patients=2,
            backend="ray",
            workers=2,
        )
    assert (tmp_path / "out" / "melanoma" / "units" / "no_treatment.pkl").exists()


def test_rerun_skips_finished_units(ray_instance, tmp_path):
    kw = {"baselines": ["no_treatment"], "n_patients": 2, "backend": "ray", "workers": 2}
    B.run_benchmark(["melanoma"], tmp_path, **kw)
    unit = tmp_path / "melanoma" / "units" / "no_treatment.pkl"
    stamp = unit.stat().st_mtime_ns
    B.run_benchmark(["melanoma"], tmp_path, **kw)
    assert unit.stat().st_mtime_ns == stamp


def test_tune_writes_a_config_that_train_reads(ray_instance, tmp_path):
    from oncogym.agents.train import load_config
    from oncogym.agents.tune import tune_hyperparams

    space = tmp_path / "space.yml"
    space.write_text(
        "algo: ppo\nnum_samples: 2\nvalidation_patients: 2\n"
        "budget: {timesteps_per_report: 256, reports: 2}\n"
        "space:\n  learning_rate: {type: loguniform, low: 1.0e-4, high: 1.0e-3}\n"
        "  gamma: {type: choice, values: [0.99, 0.995]}\n"
    )
    path, params, score = tune_hyperparams(
        "oncogym/Melanoma-v1",
        space,
        out=tmp_path / "out",
        cpus=2,
    )
    assert set(params) == {"learning_rate", "gamma"} and math.isfinite(score)
    cfg = load_config("ppo", "oncogym/Melanoma-v1", path)
    assert cfg.learning_rate == pytest.approx(params["learning_rate"])
    assert cfg.gamma == params["gamma"]


def test_tune_space_errors_are_named(tmp_path):
    from oncogym.agents.tune import load_search, tune_hyperparams

    bad = tmp_path / "bad.yml"
    bad.write_text("algo: ppo\nspace: {}\nbudgett: {}\n")
    with pytest.raises(ValueError, match="budgett: unknown key; allowed: algo"):
        load_search(bad)
    bad.write_text("space:\n  lr: {type: uniform, low: 1, high: 2}\n")
    with pytest.raises(ValueError, match="'lr' is not a ppo hyperparameter; allowed:"):
        tune_hyperparams("oncogym/Melanoma-v1", bad)
