"""The ``oncogym`` command: examples run end to end, bad arguments give one-line errors."""

from __future__ import annotations

import pickle

import pytest
from typer.testing import CliRunner

from oncogym.agents.cli import EXAMPLES, app
from oncogym.agents.evaluate import REPORT_FILES

runner = CliRunner()


def test_list_shows_models_and_examples():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    for name in ("depillis2006", "kirschner_panetta1998", "friberg2002", *EXAMPLES):
        assert name in result.output


def test_default_simulate_is_the_de_pillis_combination():
    result = runner.invoke(app, ["simulate", "--rows", "3"])
    assert result.exit_code == 0, result.output
    assert "combination" in result.output and "depillis2006: T (cells)" in result.output
    # the combination arm clears the tumour by day 75, the others do not
    t_table = result.output.split("depillis2006: T (cells)")[1].split("depillis2006: L")[0]
    last_row = next(line for line in t_table.splitlines() if line.strip().startswith("│ 150"))
    cells = [c.strip() for c in last_row.strip("│ ").split("│")]
    assert cells[-1] == "0" and all(float(c) > 5e8 for c in cells[1:-1])


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_every_example_runs(example, tmp_path):
    png = tmp_path / "plot.png"
    result = runner.invoke(app, ["simulate", "--example", example, "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert png.stat().st_size > 1000


def test_custom_schedule_and_overrides():
    result = runner.invoke(
        app,
        [
            "simulate",
            "depillis2006",
            "--days",
            "30",
            "--dose",
            "chemo:0:5:1",
            "--param",
            "d=2.0",
            "--y0",
            "T=2e7",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2e+07" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulate", "--example", "nope"], "--example: unknown example 'nope'; allowed:"),
        (["simulate", "nope"], "model: unknown model 'nope'; allowed:"),
        (["simulate", "depillis2006", "-d", "pembro:0:1"], "unknown therapy 'pembro'"),
        (["simulate", "depillis2006", "-d", "chemo:0"], "--dose: expected THERAPY:START_DAY"),
        (["simulate", "depillis2006", "-d", "chemo:0:x"], "must be numbers"),
        (["simulate", "depillis2006", "-p", "d"], "--param: expected NAME=VALUE"),
        (["simulate", "depillis2006", "-p", "zz=1"], "params: unknown name 'zz'"),
        (["simulate", "depillis2006", "--days", "-5"], "days: must be > 0"),
        (["simulate", "depillis2006", "-d", "chemo:0:-1"], "amount: must be >= 0"),
    ],
)
def test_bad_arguments_one_line_error(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    # one error line, the last (a log line may come first: the first-compile notice of a
    # cold kernel cache, as on a clean CI machine)
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error:") and message in lines[-1]
    assert sum(line.startswith("error:") for line in lines) == 1


# --- policies, evaluation, benchmark (issue 5) ----------------------------------------------------
def test_list_shows_envs_baselines_and_algorithms():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    for name in ("oncogym/Melanoma-v1", "nivolumab_ipilimumab (SoC)", "mpc_population", "ppo"):
        assert name in result.output


def test_simulate_a_protocol_on_one_patient_and_a_cohort(tmp_path):
    png = tmp_path / "t.png"
    one = runner.invoke(app, ["simulate", "-s", "nsclc", "--protocol", "pembrolizumab"])
    assert one.exit_code == 0, one.output
    assert "pembrolizumab on 1 test patient" in one.output
    many = runner.invoke(app, ["simulate", "-s", "melanoma", "--patients", "4", "--plot", str(png)])
    assert many.exit_code == 0, many.output
    assert "cohort summary" in many.output and png.stat().st_size > 1000


def test_evaluate_a_baseline_writes_the_report(tmp_path):
    result = runner.invoke(
        app,
        ["evaluate", "adaptive", "-s", "oncogym/RCC-v1", "--patients", "4", "--out", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    assert "rcc: 4 test patients" in result.output
    assert "| adaptive |" in (tmp_path / "metrics.md").read_text()
    assert (tmp_path / "metrics.md").exists() and (tmp_path / "km_os.png").exists()


def test_benchmark_on_a_tiny_cohort(tmp_path):
    result = runner.invoke(
        app,
        [
            "benchmark",
            "-s",
            "melanoma",
            "-b",
            "no_treatment,nivolumab_ipilimumab",
            "--patients",
            "3",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    text = (tmp_path / "melanoma" / "metrics.md").read_text()
    assert "no_treatment" in text and "against `nivolumab_ipilimumab`" in text
    # not a terminal: time-stamped progress lines on stderr, and the table is not wrapped
    # at 80 columns (each policy's row is one line with every column)
    assert "start: eval:melanoma:no_treatment" in result.stderr
    row = next(line for line in result.stdout.splitlines() if "nivolumab_ipilimumab │" in line)
    assert row.count("│") == 11 and "100.0" in row


def _one_error_line(result, *parts: str) -> str:
    """The command failed with one ``error:`` line (the last) holding every part."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert sum(line.startswith("error:") for line in lines) == 1
    for part in parts:
        assert part in lines[-1], lines[-1]
    return lines[-1]


def _snapshot(folder):
    return {p: p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_benchmark_rerun_with_other_settings_is_refused_until_forced(tmp_path):
    """Issue 14, item 6: a finished unit is reused only for the settings it was computed
    with; other settings are refused (nothing runs, nothing changes) or, with --force,
    recomputed."""
    out = tmp_path / "b"

    def bench(baselines, patients, *extra):
        args = ["benchmark", "-s", "melanoma", "-b", baselines, "--patients", str(patients)]
        return runner.invoke(app, [*args, "--out", str(out), *extra])

    first = bench("no_treatment,nivolumab", 2)
    assert first.exit_code == 0, first.output
    unit = out / "melanoma" / "units" / "no_treatment.pkl"
    assert (out / "melanoma" / "units" / "no_treatment.key.json").exists()
    before = _snapshot(out)

    refused = bench("no_treatment", 3)
    _one_error_line(
        refused,
        str(out),
        "eval:melanoma:no_treatment (n_patients: 2 → 3)",
        "pass a new --out, or --force",
    )
    assert _snapshot(out) == before  # nothing ran, nothing was written or removed

    forced = bench("no_treatment", 3, "--force")
    assert forced.exit_code == 0, forced.output
    assert "melanoma: 3 test patients" in forced.output
    assert (out / "melanoma" / "metrics.md").read_text().startswith("# melanoma: 3 test patients")
    with open(unit, "rb") as fh:
        assert pickle.load(fh).n == 3
    # the scenario's report is this run's alone; the other unit's result is kept
    assert not (out / "melanoma" / "swimmer_nivolumab.png").exists()
    assert (out / "melanoma" / "units" / "nivolumab.pkl").exists()

    stamp = unit.stat().st_mtime_ns
    again = bench("no_treatment", 3)  # the same settings: resumed, nothing recomputed
    assert again.exit_code == 0, again.output
    assert unit.stat().st_mtime_ns == stamp

    # a folder from before unit keys: refused, not reused
    (out / "melanoma" / "units" / "no_treatment.key.json").unlink()
    _one_error_line(
        bench("no_treatment", 3), "eval:melanoma:no_treatment (no unit key: the results predate"
    )
    assert unit.stat().st_mtime_ns == stamp


def test_evaluate_into_a_non_empty_folder_is_refused_unless_forced(tmp_path):
    out = tmp_path / "eval"
    first = runner.invoke(
        app, ["evaluate", "adaptive", "-s", "rcc", "--patients", "3", "--out", str(out)]
    )
    assert first.exit_code == 0, first.output
    (out / "notes.txt").write_text("mine")  # not the report's: kept even with --force
    (out / "sub").mkdir()
    (out / "sub" / "metrics.md").write_text("mine")
    (tmp_path / "metrics.md").write_text("outside")
    before = _snapshot(tmp_path)

    args = ["evaluate", "no_treatment", "-s", "rcc", "--patients", "2", "--out", str(out)]
    _one_error_line(runner.invoke(app, args), f"--out: {out} is not empty", "--force")
    assert _snapshot(tmp_path) == before

    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [*REPORT_FILES, "swimmer_no_treatment.png", "notes.txt", "sub"]
    )  # no stale swimmer_adaptive.png
    assert "adaptive" not in (out / "metrics.md").read_text()
    assert (out / "sub" / "metrics.md").read_text() == "mine"
    assert (tmp_path / "metrics.md").read_text() == "outside"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "foo"], "policy: unknown baseline 'foo' for melanoma; allowed: no_treatment"),
        (["evaluate", "random", "-s", "mars"], "scenario: unknown 'mars'; allowed: melanoma"),
        (["evaluate", "random", "--patients", "0"], "--patients: must be >= 1"),
        (
            ["simulate", "-s", "nsclc", "--protocol", "x"],
            "protocol: 'x' is not a protocol of nsclc",
        ),
        (["simulate", "-s", "depillis2006"], "--scenario: depillis2006 has no protocols"),
        (["benchmark", "-s", "melanoma", "-b", "x"], "policy: unknown baseline 'x' for melanoma"),
        (["benchmark", "--backend", "slurm"], "backend: unknown 'slurm'; allowed: local, ray"),
        (["benchmark", "--train", "xgboost"], "--train: unknown algorithm 'xgboost'; allowed:"),
        (["benchmark", "--seeds", "a"], "--seeds: expected integers"),
        (["benchmark", "--planner", "foo=1"], "planner: unknown setting 'foo'; allowed:"),
        (["benchmark", "--planner", "foo"], "--planner: expected KEY=VALUE"),
        (["train", "--algo", "xgb"], "--algo: unknown algorithm 'xgb'; allowed: ppo"),
        (["train", "mars"], "scenario: unknown 'mars'"),
        (["train", "--seeds", "0,1", "--workers", "0"], "--workers: must be >= 1, got 0"),
        (["benchmark", "--workers", "0"], "--workers: must be >= 1, got 0"),
        (["train", "--seeds", "-1"], "--seed: expected integers >= 0, got -1"),
        (["benchmark", "--seeds", "0,-2"], "--seeds: expected integers >= 0, got -2"),
        (["tune", "--cpus", "0"], "--cpus: must be >= 1, got 0"),
        (["train", "--force"], "--force: several seeds only"),
        (
            ["evaluate", "runs/melanoma/ppo_s9"],
            "policy: no training run folder 'runs/melanoma/ppo_s9' (and it is not a baseline",
        ),
    ],
)
def test_agent_commands_bad_arguments_one_line(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_train_one_seed_then_several_and_evaluate_the_agent(tmp_path):
    one = runner.invoke(
        app,
        [
            "train",
            "melanoma",
            "--timesteps",
            "256",
            "--n-envs",
            "4",
            "--run-dir",
            str(tmp_path / "r0"),
        ],
    )
    assert one.exit_code == 0, one.output
    assert (tmp_path / "r0" / "model.zip").exists()
    # progress where there is no progress bar: clinical evaluations on validation patients
    assert one.stderr.count("validation (32 patients) QALYs") >= 5
    args = [
        "train",
        "oncogym/RCC-v1",
        "--algo",
        "a2c",
        "--seeds",
        "0,1",
        "--timesteps",
        "64",
        "--n-envs",
        "4",
        "--out",
        str(tmp_path),
    ]
    many = runner.invoke(app, args)
    assert many.exit_code == 0, many.output
    for s in (0, 1):
        assert (tmp_path / "rcc" / f"a2c_s{s}" / "model.zip").exists()
    # the same runs with another budget: refused (before training anything), not reused
    other = runner.invoke(app, ["128" if a == "64" else a for a in args])
    _one_error_line(other, "train:rcc:a2c_s0, train:rcc:a2c_s1 (timesteps: 64 → 128)")
    ev = runner.invoke(app, ["evaluate", str(tmp_path / "r0"), "--patients", "2"])
    assert ev.exit_code == 0, ev.output
    assert "melanoma: 2 test patients" in ev.output
    again = runner.invoke(app, ["train", "melanoma", "--run-dir", str(tmp_path / "r0")])
    assert again.exit_code == 2 and "already holds a run; continue it with --resume" in again.output
    # an agent evaluated on a scenario it was not trained on: named, not a dose-level error
    wrong = runner.invoke(app, ["evaluate", str(tmp_path / "r0"), "-s", "nsclc", "--patients", "2"])
    assert wrong.exit_code == 2
    assert "trained on oncogym/Melanoma-v1 (melanoma); evaluate it on melanoma" in wrong.output


def test_benchmark_with_open_loop_follow_up_and_ceiling_writes_the_aggregates(tmp_path):
    """Issue 14: the open-loop baseline, the follow-up score, the planner warm-started from
    the open-loop schedule and the rliable aggregates, end to end (tiny settings)."""
    import json

    out = tmp_path / "v1"
    args = [
        "benchmark", "-s", "melanoma",
        "-b", "no_treatment,nivolumab,nivolumab_ipilimumab,open_loop,mpc_oracle",
        "--patients", "8", "--follow-up-days", "91",
        "--open-loop", "n_trials=6", "--open-loop", "n_patients=8",
        "--planner", "anchor=open_loop", "--planner", "n_samples=4", "--planner", "n_iters=1",
        "--planner", "horizon_steps=2", "--planner", "replan_every=8",
    ]  # fmt: skip
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    sc = out / "melanoma"
    schedule = json.loads((sc / "open_loop.json").read_text())
    assert schedule["requested"] == {"n_trials": 6, "n_patients": 8}
    assert schedule["n_evaluated"] == 6 and schedule["description"]
    key = json.loads((sc / "units" / "mpc_oracle.key.json").read_text())
    assert key["follow_up_days"] == 91.0 and key["open_loop"] == schedule["requested"]
    assert "untreated follow-up of 91 days" in (sc / "metrics.md").read_text()
    data = json.loads((out / "aggregate.json").read_text())
    mel = data["per_scenario"]["melanoma"]
    assert mel["normalised"]["mpc_oracle"] == 1.0
    assert mel["normalised"][mel["best_protocol"]] == 0.0
    assert set(data["aggregate"]) == {"open_loop", "no_treatment", "mpc_oracle"}
    for name in ("aggregate.md", "performance_profiles.png", "scenario_scores.png", "pareto.png"):
        assert (out / name).exists(), name
    # another follow-up is other settings: refused, naming what differs
    refused = runner.invoke(app, [*args[:-12], "--follow-up-days", "30", "--out", str(out)])
    _one_error_line(refused, "follow_up_days: 91.0 → 30.0")


def test_benchmark_protocol_presets_and_their_errors(tmp_path):
    bad = runner.invoke(app, ["benchmark", "--protocol", "v9", "--out", str(tmp_path / "x")])
    _one_error_line(bad, "--protocol: unknown 'v9'; allowed: v1")
    both = runner.invoke(app, ["benchmark", "--protocol", "v1", "--quick"])
    _one_error_line(both, "--quick and --protocol: choose one")
    wrong = runner.invoke(app, ["benchmark", "--open-loop", "trials=3", "-b", "open_loop"])
    _one_error_line(wrong, "open_loop: unknown setting 'trials'; allowed: n_trials")
    anchor = runner.invoke(app, ["benchmark", "--planner", "anchor=x", "-b", "mpc_oracle"])
    _one_error_line(anchor, "planner: anchor must be 'open_loop'")
