"""Packaging: a wheel carries every data file the code reads, and trains as a checkout does."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from oncogym.agents import train as T

ROOT = Path(__file__).resolve().parents[1]


def _wheel(tmp_path: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path)],
        check=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("oncogym-*.whl")
    return wheel


def test_the_wheel_ships_the_data_files_the_code_reads(tmp_path):
    names = set(zipfile.ZipFile(_wheel(tmp_path)).namelist())
    for algo in T.ALGOS:
        assert f"oncogym/agents/hyperparams/{algo}.yml" in names, algo
    assert "oncogym/agents/search_spaces/ppo.yml" in names
    for path in (ROOT / "src" / "oncogym" / "scenario_data").glob("*.yaml"):
        assert f"oncogym/scenario_data/{path.name}" in names, path.name
    assert "oncogym/py.typed" in names


def test_default_hyperparameters_are_package_data_and_never_silently_missing(monkeypatch, tmp_path):
    assert T.HYPERPARAMS_DIR.parent == Path(T.__file__).parent
    assert (T.HYPERPARAMS_DIR / "ppo.yml").exists()
    monkeypatch.setattr(T, "HYPERPARAMS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"ppo.*missing from the installed package"):
        T.load_config("ppo", "oncogym/Melanoma-v1")


@pytest.mark.slow
def test_a_wheel_in_a_fresh_venv_trains_like_a_checkout(tmp_path):
    """Install the built wheel (CPU torch first, as the README's commands) into a new venv and
    train a few thousand steps with the shipped hyperparameters."""
    wheel = _wheel(tmp_path / "dist")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "torch==2.13.0"], check=True)
    subprocess.run([py, "-m", "pip", "install", "-q", str(wheel)], check=True)
    out = tmp_path / "run"
    code = (
        "from oncogym.agents.train import train;"
        f"train('oncogym/Melanoma-v1', 'ppo', run_dir={str(out)!r}, n_timesteps=2048,"
        " progress_bar=False, tensorboard=False, n_envs=8,"
        " overrides={'n_steps': 64, 'batch_size': 128})"
    )
    subprocess.run([py, "-c", code], check=True, cwd=tmp_path)
    assert (out / "model.zip").exists()
    config = (out / "config.yml").read_text()
    assert "gamma: 0.995" in config  # the shipped ppo.yml, not SB3's default 0.99
