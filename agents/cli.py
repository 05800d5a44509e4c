"""The ``oncogym`` command line (typer + rich).

``oncogym list`` shows the registered models; ``oncogym simulate`` runs a model —
one of the literature examples or a schedule given on the command line — and prints
a table (optionally a plot).  Bad arguments end with a one-line error naming the
allowed values, never a traceback.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

import oncogym

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="oncogym: tumour-immune simulation and RL benchmarks for cancer therapy scheduling.",
)
console = Console()
NON_TTY_WIDTH = 200
"""Console width when output is not a terminal (CI, a log file): tables print whole."""


class _StderrHandler(logging.StreamHandler):
    """Log lines to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _configure_output() -> None:
    """Progress as log lines (``oncogym.*`` loggers, INFO) and full-width tables.

    On a terminal the log lines go through rich (above the progress bars); elsewhere
    (CI, ``nohup``, a pipe) they are plain time-stamped lines on stderr, the only progress
    shown there, and tables are printed :data:`NON_TTY_WIDTH` columns wide instead of
    being wrapped at 80.
    """
    logger = logging.getLogger("oncogym")
    logger.setLevel(logging.INFO)
    for h in [h for h in logger.handlers if getattr(h, "_oncogym_cli", False)]:
        logger.removeHandler(h)
    handler: logging.Handler
    if console.is_terminal:
        from rich.logging import RichHandler

        handler = RichHandler(console=console, show_path=False, show_level=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        console.width = NON_TTY_WIDTH
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    handler._oncogym_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False


@app.callback()
def _setup() -> None:
    """oncogym: tumour-immune simulation and RL benchmarks for cancer therapy scheduling."""
    from oncogym import _jit

    from ._threads import prefer_workqueue_threading

    prefer_workqueue_threading()  # Numba's own thread pool beside torch (see _threads)
    _configure_output()
    if _jit.CACHE_IS_COLD:
        logging.getLogger("oncogym.agents.cli").info(
            "first run of this oncogym version here: the first simulation compiles the "
            "Numba kernels (about a minute; cached in %s)",
            _jit.nb.config.CACHE_DIR,
        )


@dataclass(frozen=True)
class Example:
    """A literature set-up: one model, an initial state and one or more treatment arms."""

    model: str
    days: float
    description: str
    y0: dict[str, float] = field(default_factory=dict)
    params: dict[str, float] = field(default_factory=dict)
    parameter_set: str | None = None
    arms: dict[str, list[tuple[str, float, float, float]]] = field(default_factory=dict)
    states: tuple[str, ...] = ()
    scale: dict[str, float] = field(default_factory=dict)


_CHEMO = [("chemo", 10.0 * i, 5.0, 1.0) for i in range(10)]
_IMMUNO = [("til", 7.0, 1e9, 1.0)] + [("il2", 8.0 + i, 5e6, 1.0) for i in range(6)]

EXAMPLES: dict[str, Example] = {
    "depillis2006-combination": Example(
        model="depillis2006",
        days=150,
        description="de Pillis 2006, patient 9 with a weakened immune system and 1e7 tumour "
        "cells: chemotherapy (q10d) or TIL + IL-2 alone fail, the combination clears.",
        y0={"T": 1e7, "N": 1e3, "L": 10.0, "C": 6e8},
        arms={
            "untreated": [],
            "chemo": _CHEMO,
            "TIL + IL-2": _IMMUNO,
            "combination": _CHEMO + _IMMUNO,
        },
        states=("T", "L", "C"),
    ),
    "kp1998-aci": Example(
        model="kirschner_panetta1998",
        days=1500,
        description="Kirschner & Panetta 1998: adoptive cell therapy just below and above the "
        "clearance threshold s1* = 540 cells/day.",
        y0={"E": 1.0, "T": 1e3, "IL": 0.0},
        arms={
            "s1 = 486/day (0.9 s1*)": [("aci", 0.0, 486.0 * 1500, 1500.0)],
            "s1 = 594/day (1.1 s1*)": [("aci", 0.0, 594.0 * 1500, 1500.0)],
        },
        states=("T", "E"),
    ),
    "kimmel2021-zuma1": Example(
        model="kimmel2021",
        days=120,
        description="Kimmel 2021: axi-cel CAR-T kinetics after lymphodepletion (ZUMA-1 "
        "medians 27.5, 9.1, 2.1 cells/uL at days 7, 14, 28).",
        arms={"axi-cel": []},
        states=("C", "B"),
        scale={"C": 1 / 5e8},
    ),
    "friberg2002-docetaxel": Example(
        model="friberg2002",
        days=21,
        description="Friberg 2002: docetaxel 100 mg/m2 (180 mg) over 1 h; neutrophil nadir "
        "near day 7-8.",
        arms={"docetaxel 180 mg": [("docetaxel", 0.0, 180.0, 1.0 / 24)]},
        states=("Circ",),
    ),
    "cartmath2021-hdlm2": Example(
        model="cartmath2021",
        days=200,
        description="CARTmath 2021: HDLM-2 tumour, 1.5e6 CAR-T cells on day 42.",
        arms={"untreated": [], "CAR-T day 42": [("car_t", 42.0, 1.5e6, 0.0)]},
        states=("T", "CT", "CM"),
    ),
}
DEFAULT_EXAMPLE = "depillis2006-combination"


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def _fail(message: str) -> None:
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _parse_dose(spec: str) -> tuple[str, float, float, float]:
    parts = spec.split(":")
    if len(parts) not in (3, 4):
        raise CliError(f"--dose: expected THERAPY:START_DAY:AMOUNT[:DURATION_DAYS], got {spec!r}")
    try:
        numbers = [float(x) for x in parts[1:]]
    except ValueError:
        raise CliError(
            f"--dose: START_DAY, AMOUNT and DURATION must be numbers in {spec!r}"
        ) from None
    duration = numbers[2] if len(numbers) == 3 else 0.0
    return parts[0], numbers[0], numbers[1], duration


def _number(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _parse_assignments_str(specs: Sequence[str], option: str) -> list[tuple[str, str]]:
    out = []
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name.strip():
            raise CliError(f"{option}: expected KEY=VALUE, got {spec!r}")
        out.append((name.strip(), value.strip()))
    return out


def _parse_assignments(specs: Sequence[str], option: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep:
            raise CliError(f"{option}: expected NAME=VALUE, got {spec!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise CliError(f"{option}: value of {name!r} must be a number, got {value!r}") from None
    return out


def _fmt(x: float) -> str:
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return str(x)
    return f"{x:.3g}"


def _report_days(days: float, n_rows: int) -> np.ndarray:
    return np.unique(np.round(np.linspace(0, days, n_rows), 6))


@app.command("list")
def list_models() -> None:
    """List models, literature examples, environments, protocols, baselines and algorithms."""
    table = Table(title="models")
    for col in ("model", "states", "therapies", "reference"):
        table.add_column(col, overflow="fold")
    for name in oncogym.models.available():
        m = oncogym.models.get(name)
        table.add_row(name, " ".join(m.state_names), " ".join(m.therapy_names) or "-", m.title)
    console.print(table)
    ex = Table(title="examples (oncogym simulate --example NAME)")
    ex.add_column("example")
    ex.add_column("model")
    ex.add_column("description", overflow="fold")
    for name, e in EXAMPLES.items():
        ex.add_row(name, e.model, e.description)
    console.print(ex)
    _list_envs_and_policies()


def _list_envs_and_policies() -> None:
    from oncogym.envs import ENV_IDS, STANDARD_OF_CARE, make_params

    from .policies import baseline_names

    envs = Table(title="environments (gymnasium.make(ID); oncogym evaluate/benchmark -s TASK)")
    for col in ("id", "task", "therapies: dose levels", "horizon / step"):
        envs.add_column(col, overflow="fold")
    policies = []
    for env_id, (task, horizon, decision) in ENV_IDS.items():
        p = make_params(task)
        levels = "\n".join(
            f"{t}: {'/'.join(f'{x:g}' for x in lv)} {u}"
            for t, lv, u in zip(p.therapies, p.dose_levels, p.therapy_units, strict=True)
        )
        envs.add_row(env_id, task, levels, f"{horizon:g} d / {decision} d")
        soc = STANDARD_OF_CARE.get(task)
        names = [f"{b} (SoC)" if b == soc else b for b in baseline_names(task)]
        policies.append(f"  {env_id} ({task}): {', '.join(names)}")
    console.print(envs)
    console.print(
        "baselines (oncogym evaluate NAME -s TASK):\n" + "\n".join(policies), highlight=False
    )
    try:
        from .train import ALGOS
    except ImportError:  # pragma: no cover - SB3 is a dependency
        return
    console.print("algorithms (oncogym train --algo): " + ", ".join(ALGOS), highlight=False)


@app.command()
def simulate(
    model: Annotated[
        str | None, typer.Argument(help="a registered model (see `oncogym list`)")
    ] = None,
    example: Annotated[
        str | None, typer.Option("--example", "-e", help="a literature example (see `list`)")
    ] = None,
    days: Annotated[float | None, typer.Option(help="horizon in days")] = None,
    dose: Annotated[
        list[str] | None,
        typer.Option("--dose", "-d", help="THERAPY:START_DAY:AMOUNT[:DURATION_DAYS], repeatable"),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE, repeatable")
    ] = None,
    y0: Annotated[
        list[str] | None, typer.Option("--y0", help="initial state NAME=VALUE, repeatable")
    ] = None,
    rows: Annotated[int, typer.Option(help="rows of the time table")] = 7,
    plot: Annotated[Path | None, typer.Option(help="write a PNG of the trajectories")] = None,
    scenario: Annotated[
        str | None, typer.Option("--scenario", "-s", help="run a scenario protocol instead")
    ] = None,
    protocol: Annotated[
        str | None, typer.Option(help="with --scenario: the protocol (default: standard of care)")
    ] = None,
    patients: Annotated[int, typer.Option(help="with --scenario: test-cohort patients")] = 1,
) -> None:
    """Simulate a model or literature example (time table), or a scenario protocol on one
    patient or a cohort of test patients (outcome table)."""
    if scenario is not None:
        _simulate_protocol(scenario, protocol, patients, plot)
        return
    try:
        if example is None and model is None:
            example = DEFAULT_EXAMPLE
        if example is not None:
            if example not in EXAMPLES:
                raise CliError(
                    f"--example: unknown example {example!r}; allowed: {', '.join(EXAMPLES)}"
                )
            ex = EXAMPLES[example]
            if model is not None and model != ex.model:
                raise CliError(f"example {example!r} runs model {ex.model!r}, not {model!r}")
        else:
            ex = Example(model=str(model), days=365.0, description="", arms={"schedule": []})
        m = oncogym.models.get(ex.model)
        horizon = float(days) if days is not None else ex.days
        params = dict(m.parameter_set(ex.parameter_set)) if ex.parameter_set else {}
        params.update(ex.params)
        params.update(_parse_assignments(param or [], "--param"))
        state = dict(ex.y0)
        state.update(_parse_assignments(y0 or [], "--y0"))
        extra = [_parse_dose(s) for s in dose or []]
        arms = {name: list(s) + extra for name, s in ex.arms.items()}
        trajs = {
            name: oncogym.simulate(m.name, horizon, params=params, y0=state, schedule=s, dt=0.25)
            for name, s in arms.items()
        }
    except (CliError, ValueError) as exc:
        _fail(str(exc))
        return
    except oncogym.SimulationError as exc:
        _fail(str(exc))
        return

    shown = ex.states or m.state_names[: min(3, m.n_states)]
    if ex.description:
        console.print(f"[bold]{example}[/]: {ex.description}", highlight=False)
    report = _report_days(horizon, rows)
    for s in shown:
        scale = ex.scale.get(s, 1.0)
        unit = "cells/uL" if s in ex.scale else m.states[m.state_names.index(s)].unit
        table = Table(title=f"{m.name}: {s} ({unit})")
        table.add_column("day", justify="right")
        for name in trajs:
            table.add_column(name, justify="right")
        columns = [np.interp(report, traj.t, traj[s]) * scale for traj in trajs.values()]
        for i, d in enumerate(report):
            table.add_row(f"{d:g}", *[_fmt(c[i]) for c in columns])
        console.print(table)
    if plot is not None:
        _plot(trajs, shown, ex.scale, plot, m.name)
        console.print(f"wrote {plot}")


def _simulate_protocol(
    scenario: str, protocol: str | None, patients: int, plot: Path | None
) -> None:
    from oncogym.clinical import RESPONSE_NAMES
    from oncogym.envs import STANDARD_OF_CARE

    from .evaluate import _plot_trajectories, rollout, summarise
    from .policies import ProtocolPolicy

    try:
        task, _ = _task_of(scenario)
        if task not in STANDARD_OF_CARE:
            raise CliError(
                f"--scenario: {task} has no protocols; scenarios: {', '.join(STANDARD_OF_CARE)}"
            )
        if patients < 1:
            raise CliError(f"--patients: must be >= 1, got {patients}")
        name = protocol or STANDARD_OF_CARE[task]
        res = rollout(ProtocolPolicy(name), task, n_patients=patients)
    except (CliError, ValueError) as exc:
        _fail(str(exc))
        return
    table = Table(title=f"{task}: {name} on {res.n} test patient(s)")
    for col in ("patient", "best response", "PFS d", "OS d", "death", "worst grades", "QALYs"):
        table.add_column(col, justify="right")
    for i in range(min(res.n, 20)):
        grades = ", ".join(
            f"{c} {g}" for c, g in zip(res.tox_categories, res.worst_grade[i], strict=True) if g
        )
        table.add_row(
            str(i),
            RESPONSE_NAMES[res.best_response[i]],
            f"{res.pfs_days[i]:.0f}",
            f"{res.os_days[i]:.0f}",
            res.death_cause[i],
            grades or "-",
            f"{res.qalys[i]:.3f}",
        )
    console.print(table)
    if res.n > 1:
        console.print(_metrics_table([summarise(res)], f"{task}: {name}, cohort summary"))
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        _plot_trajectories([res], plot, n_show=min(res.n, 8))
        console.print(f"wrote {plot}")


def _plot(trajs, states, scale, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(states), 1, figsize=(7, 2.4 * len(states)), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, s in zip(axes, states, strict=True):
        for name, traj in trajs.items():
            ax.plot(traj.t, np.maximum(traj[s] * scale.get(s, 1.0), 1e-1), label=name)
        ax.set_yscale("log")
        ax.set_ylabel(s)
    axes[0].legend(fontsize=8)
    axes[0].set_title(title)
    axes[-1].set_xlabel("day")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- policies, training, evaluation, benchmark ---------------------------------------------
def _split(values: Sequence[str] | None) -> list[str]:
    """Options given as repeats and/or comma-separated lists."""
    out: list[str] = []
    for v in values or []:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


def _int_list(values: Sequence[str] | None, option: str) -> list[int]:
    """Non-negative integers from ``0,1,2`` or repeated options; errors name ``option``."""
    try:
        out = [int(x) for x in _split(values)]
    except ValueError:
        raise CliError(f"{option}: expected integers, got {', '.join(values or [])}") from None
    bad = [x for x in out if x < 0]
    if bad:
        raise CliError(f"{option}: expected integers >= 0, got {bad[0]}")
    return out


def _workers(workers: int) -> int:
    if workers < 1:
        raise CliError(f"--workers: must be >= 1, got {workers}")
    return workers


def _check_report_folder(out: Path, force: bool) -> None:
    """``evaluate --out``: a new or empty folder, or a non-empty one with ``--force``."""
    if out.exists() and not out.is_dir():
        raise CliError(f"--out: {out} is a file, not a folder")
    if out.is_dir() and not force and any(out.iterdir()):
        raise CliError(
            f"--out: {out} is not empty; choose a new folder, or --force to replace the "
            "report an earlier evaluate wrote there"
        )


def _task_of(name: str) -> tuple[str, str]:
    """(task, env id) of a scenario/literature task name or a registered env id."""
    from oncogym.envs import ENV_IDS

    from .units import TASK_ENV_ID

    if name in ENV_IDS:
        return ENV_IDS[name][0], name
    if name in TASK_ENV_ID:
        return name, TASK_ENV_ID[name]
    allowed = ", ".join([*TASK_ENV_ID, *ENV_IDS])
    raise CliError(f"scenario: unknown {name!r}; allowed: {allowed}")


def _progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _metrics_table(rows: Sequence[dict[str, Any]], title: str) -> Table:
    from .evaluate import _fmt_months, _fmt_p

    table = Table(title=title)
    for col in (
        "policy",
        "ORR %",
        "CR %",
        "mPFS mo",
        "mOS mo (95% CI)",
        "OS end %",
        "G≥3 %",
        "QALYs",
        "Δ QALYs",
        "log-rank p",
    ):
        table.add_column(col, justify="left" if col == "policy" else "right", overflow="fold")
    for r in rows:
        dq = r.get("qalys_diff", math.nan)
        table.add_row(
            r["policy"],
            f"{100 * r['orr']:.1f}",
            f"{100 * r['cr_rate']:.1f}",
            _fmt_months(r["median_pfs_months"], math.nan, math.nan).split(" ")[0],
            _fmt_months(
                r["median_os_months"], r["median_os_months_low"], r["median_os_months_high"]
            ),
            f"{100 * r['os_horizon']:.1f}",
            f"{100 * r['grade3_any']:.1f}",
            f"{r['mean_qalys']:.3f}",
            "—" if not math.isfinite(dq) else f"{dq:+.3f}",
            _fmt_p(r.get("os_logrank_p", math.nan)),
        )
    return table


@app.command("policies")
def list_policies(
    scenario: Annotated[str, typer.Argument(help="a scenario or env id")] = "melanoma",
) -> None:
    """List the baselines of a scenario (what `evaluate` and `benchmark` accept)."""
    from .policies import baseline_names

    try:
        task, _ = _task_of(scenario)
    except CliError as exc:
        _fail(str(exc))
        return
    console.print(f"{task}: " + ", ".join(baseline_names(task)), highlight=False)


@app.command()
def evaluate(
    policy: Annotated[str, typer.Argument(help="a baseline name or a training run folder")],
    scenario: Annotated[str, typer.Option("--scenario", "-s", help="scenario or env id")] = (
        "melanoma"
    ),
    patients: Annotated[int, typer.Option(help="test-cohort size")] = 200,
    seed: Annotated[int, typer.Option(help="evaluation seed (scan noise)")] = 2024,
    out: Annotated[
        Path | None,
        typer.Option(help="write tables and figures here (a new or empty folder)"),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            help="with --out: write into a non-empty folder, replacing the report files "
            "(metrics.*, patients.csv, the figures) an earlier evaluate wrote there"
        ),
    ] = False,
    setting: Annotated[
        str | None,
        typer.Option(
            help="difficulty tier: default, noisy, irregular, missing_labs, pkpd, shift, hard "
            "(default: a trained agent's own, else default)"
        ),
    ] = None,
) -> None:
    """Evaluate one policy (a baseline or a trained agent) on a scenario's test cohort.

    --out must be a new or empty folder: a non-empty one is refused (nothing is written or
    removed), unless --force, which removes the earlier report's files there first (no other
    file, and nothing outside the folder)."""
    from .evaluate import clear_report, rollout, write_report
    from .policies import baseline_names, make_baseline

    try:
        task, _ = _task_of(scenario)
        if patients < 1:
            raise CliError(f"--patients: must be >= 1, got {patients}")
        if out is not None:
            _check_report_folder(out, force)
        if Path(policy).is_dir():
            from .train import load_agent

            pol = load_agent(policy)
        elif policy not in baseline_names(task) and ("/" in policy or Path(policy).suffix):
            raise CliError(
                f"policy: no training run folder {policy!r} (and it is not a baseline of "
                f"{task}: {', '.join(baseline_names(task))})"
            )
        else:
            pol = make_baseline(policy, task, seed=seed)
        with _progress() as prog:
            bar = prog.add_task(f"{getattr(pol, 'name', policy)} on {task}", total=None)
            res = rollout(
                pol,
                task,
                n_patients=patients,
                seed=seed,
                env_kwargs=None if setting is None else {"setting": setting},
                progress=lambda k, n: prog.update(bar, completed=k, total=n),
            )
        from .evaluate import summarise

        rows = [summarise(res)]
        if out is not None:
            if force:
                clear_report(out)
            rows = write_report([res], out)
    except (CliError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
        return
    console.print(_metrics_table(rows, f"{task}: {res.n} test patients ({res.wall_s:.1f} s)"))
    if out is not None:
        console.print(f"wrote {out}/metrics.md, metrics.csv, patients.csv and figures")


@app.command()
def train(
    env: Annotated[str, typer.Argument(help="env id or scenario")] = "oncogym/Melanoma-v1",
    algo: Annotated[str, typer.Option("--algo", help="algorithm (see `oncogym list`)")] = "ppo",
    seeds: Annotated[
        list[str] | None, typer.Option("--seed", "--seeds", help="seed(s), e.g. 0 or 0,1,2")
    ] = None,
    timesteps: Annotated[int | None, typer.Option(help="total environment steps")] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="hyperparameter YAML (default: the package's hyperparams/<algo>.yml)"),
    ] = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="run folder (one seed; default runs/<task>/<algo>_s<seed>)")
    ] = None,
    out: Annotated[Path, typer.Option(help="folder of the runs (several seeds)")] = Path("runs"),
    resume: Annotated[bool, typer.Option(help="continue a killed run from its checkpoint")] = False,
    n_envs: Annotated[int | None, typer.Option(help="patients stepped together")] = None,
    backend: Annotated[str, typer.Option(help="several seeds: local or ray")] = "local",
    workers: Annotated[int, typer.Option(help="several seeds: runs in parallel")] = 1,
    address: Annotated[str | None, typer.Option(help="Ray cluster address")] = None,
    clinical_evals: Annotated[
        int,
        typer.Option(
            help="one seed: clinical evaluations on validation patients during training "
            "(TensorBoard clinical/*; 0: none)"
        ),
    ] = 10,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="one seed: override a config key, KEY=VALUE (YAML value; dotted keys reach "
            "inside mappings), repeatable",
        ),
    ] = None,
    checkpoint_freq: Annotated[
        int, typer.Option(help="one seed: checkpoint every this many steps (0: none)")
    ] = 100_000,
    tensorboard: Annotated[bool, typer.Option(help="one seed: write TensorBoard logs")] = True,
    force: Annotated[
        bool,
        typer.Option(
            help="several seeds: retrain the runs in --out started with other settings "
            "(without it they are refused)"
        ),
    ] = False,
    cost_budget: Annotated[
        float | None,
        typer.Option(
            help="--algo ppo_lagrangian: new grade >= 3 toxicities allowed per "
            "patient-episode (a number >= 0; default: the scenario's cost_budget, its "
            "standard of care's)"
        ),
    ] = None,
) -> None:
    """Train an SB3 agent (one seed, or several seeds as parallel units).

    Several seeds: a run in --out with the same settings is skipped or, if it was killed,
    continued from its checkpoint; one started with other settings (or by a single-seed
    `train`) is refused, or with --force trained again from scratch."""
    from .backends import BACKENDS, run_units
    from .config import ConfigError
    from .lagrangian import check_budget
    from .train import ALGOS, parse_overrides
    from .train import train as train_run
    from .units import BenchmarkConfig, Unit

    try:
        task, env_id = _task_of(env)
        name = algo.lower()
        if name not in ALGOS:
            raise CliError(f"--algo: unknown algorithm {algo!r}; allowed: {', '.join(ALGOS)}")
        seed_list = _int_list(seeds, "--seed") or [0]
        _workers(workers)
        if clinical_evals < 0:
            raise CliError(f"--clinical-evals: must be >= 0, got {clinical_evals}")
        if checkpoint_freq < 0:
            raise CliError(f"--checkpoint-freq: must be >= 0, got {checkpoint_freq}")
        over = parse_overrides(overrides or [])
        if cost_budget is not None:
            if not ALGOS[name].lagrangian:
                allowed = ", ".join(a for a, s in ALGOS.items() if s.lagrangian)
                raise CliError(f"--cost-budget: only --algo {allowed} takes a cost budget")
            check_budget(cost_budget, "--cost-budget")
        if backend not in BACKENDS:
            raise CliError(f"--backend: unknown {backend!r}; allowed: {', '.join(BACKENDS)}")
        if len(seed_list) == 1 and backend == "local":
            if force:
                raise CliError(
                    "--force: several seeds only; one seed: choose another --run-dir, or --resume"
                )
            folder = run_dir or out / task / f"{name}_s{seed_list[0]}"
            path = train_run(
                env_id,
                name,
                seed=seed_list[0],
                n_timesteps=timesteps,
                run_dir=folder,
                config=config,
                resume=resume,
                n_envs=n_envs,
                progress_bar=console.is_terminal,
                clinical_evals=clinical_evals,
                overrides=over,
                checkpoint_freq=checkpoint_freq,
                tensorboard=tensorboard,
                cost_budget=cost_budget,
            )
            console.print(f"wrote {path}", highlight=False)
            return
        if run_dir is not None:
            raise CliError("--run-dir: one seed only; with several seeds use --out")
        if over:
            raise CliError("--set: one seed only; with several seeds use --config FILE")
        cfg = BenchmarkConfig(
            out_dir=str(out),
            timesteps=timesteps,
            n_envs=n_envs,
            train_config=None if config is None else str(config),
            runs_subdir="",
            train_overrides={} if cost_budget is None else {"lagrangian.cost_budget": cost_budget},
        )
        units = [Unit("train", task, f"{name}_s{s}", algo=name, seed=s) for s in seed_list]
        with _progress() as prog:
            bar = prog.add_task(f"{name} on {env_id}", total=len(units))

            def done(unit: Any, path: Any, exc: Any) -> None:
                prog.console.print(f"{'failed' if exc else 'done'}: {unit.key}", highlight=False)
                prog.advance(bar)

            failures = run_units(
                units,
                cfg,
                backend=backend,
                workers=workers,
                address=address,
                on_done=done,
                force=force,
            )
        if failures:
            raise CliError("; ".join(f"{k}: {type(e).__name__}: {e}" for k, e in failures.items()))
        for u in units:
            console.print(f"wrote {cfg.run_dir(u)}", highlight=False)
    except (CliError, ConfigError, ValueError, ImportError, FileNotFoundError) as exc:
        _fail(str(exc))


@app.command()
def tune(
    env: Annotated[str, typer.Argument(help="env id or scenario")] = "oncogym/Melanoma-v1",
    space: Annotated[
        Path | None,
        typer.Option(help="search-space YAML (default: the package's search_spaces/ppo.yml)"),
    ] = None,
    samples: Annotated[int | None, typer.Option(help="trials (default: the YAML's)")] = None,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("tune_results"),
    cpus: Annotated[int, typer.Option(help="CPUs of a local Ray instance / trials at once")] = 2,
    address: Annotated[str | None, typer.Option(help="Ray cluster address")] = None,
    seed: Annotated[int, typer.Option(help="seed of the Optuna sampler")] = 0,
) -> None:
    """Search an algorithm's hyperparameters with Ray Tune (Optuna + ASHA); write the best
    configuration in the YAML format `oncogym train --config` reads."""
    from .tune import tune_hyperparams

    try:
        _, env_id = _task_of(env)
        if samples is not None and samples < 1:
            raise CliError(f"--samples: must be >= 1, got {samples}")
        if cpus < 1:
            raise CliError(f"--cpus: must be >= 1, got {cpus}")
        path, params, score = tune_hyperparams(
            env_id, space, out=out, num_samples=samples, cpus=cpus, address=address, seed=seed
        )
    except (CliError, ValueError, ImportError, FileNotFoundError) as exc:
        _fail(str(exc))
        return
    best = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )
    console.print(f"best: {best} (validation mean return {score:.4f})", highlight=False)
    console.print(f"wrote {path}", highlight=False)


@app.command()
def datasets(
    scenario: Annotated[
        list[str] | None,
        typer.Option("--scenario", "-s", help="scenario(s), repeatable (default melanoma)"),
    ] = None,
    behaviour: Annotated[
        str,
        typer.Option(
            "--behaviour",
            "-b",
            help="behaviour policies, comma-separated: protocols, adaptive_noisy, planner",
        ),
    ] = "protocols,adaptive_noisy",
    patients: Annotated[int, typer.Option(help="training patients (one episode each)")] = 200,
    seed: Annotated[int, typer.Option(help="seed of the behaviour's noise and the scans")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(help="Minari datasets root (default: $MINARI_DATASETS_PATH, ~/.minari)"),
    ] = None,
    force: Annotated[bool, typer.Option(help="replace datasets of the same id")] = False,
    noise: Annotated[
        list[str] | None,
        typer.Option(help="adaptive_noisy noise KEY=VALUE, repeatable (e.g. delay_eps=0.1)"),
    ] = None,
    planner: Annotated[
        list[str] | None,
        typer.Option(help="planner behaviour setting KEY=VALUE, repeatable (e.g. n_samples=8)"),
    ] = None,
) -> None:
    """Write offline-RL datasets (Minari, ids oncogym/<scenario>/<behaviour>-v0): one episode
    per training patient under a clinic's behaviour policy, in the discrete env."""
    try:
        from .datasets import (
            BEHAVIOURS,
            dataset_id,
            make_behaviour,
            make_dataset,
            require_minari,
        )

        require_minari()
        scenarios = [_task_of(s)[0] for s in (scenario or ["melanoma"])]
        behaviours = [b.strip() for b in behaviour.split(",") if b.strip()]
        for b in behaviours:
            if b not in BEHAVIOURS:
                raise CliError(f"--behaviour: unknown {b!r}; allowed: {', '.join(BEHAVIOURS)}")
        if patients < 1:
            raise CliError(f"--patients: must be >= 1, got {patients}")
        if seed < 0:
            raise CliError(f"--seed: must be >= 0, got {seed}")
        noise_kw = {k: float(v) for k, v in _parse_assignments(noise or [], "--noise").items()}
        planner_kw = {k: _number(v) for k, v in _parse_assignments_str(planner or [], "--planner")}
        rows = []
        for sc in scenarios:  # bad scenarios and settings fail here, before any work
            for b in behaviours:
                dataset_id(sc, b)
                make_behaviour(
                    sc,
                    b,
                    noise=noise_kw if b == "adaptive_noisy" else None,
                    planner=planner_kw if b == "planner" else None,
                )
        for sc in scenarios:
            for b in behaviours:
                ds = make_dataset(
                    sc,
                    b,
                    n_patients=patients,
                    seed=seed,
                    out=out,
                    force=force,
                    noise=noise_kw if b == "adaptive_noisy" else None,
                    planner=planner_kw if b == "planner" else None,
                )
                meta = ds.storage.metadata
                rows.append(
                    (
                        meta["dataset_id"],
                        str(meta["total_episodes"]),
                        str(meta["total_steps"]),
                        f"{meta['oncogym']['mean_return']:.3f}",
                    )
                )
    except (CliError, ValueError, ImportError) as exc:
        _fail(str(exc))
        return
    table = Table(title=f"Minari datasets ({out or 'Minari default root'})")
    for col in ("dataset id", "episodes", "steps", "mean return"):
        table.add_column(col)
    for r in rows:
        table.add_row(*r)
    console.print(table)


@app.command()
def benchmark(
    scenario: Annotated[
        list[str] | None, typer.Option("--scenario", "-s", help="scenario(s), repeatable")
    ] = None,
    baselines: Annotated[
        list[str] | None,
        typer.Option("--baselines", "-b", help="baseline names (default: all), comma-separated"),
    ] = None,
    algo: Annotated[
        list[str] | None, typer.Option("--train", "-t", help="algorithms to train, e.g. ppo,a2c")
    ] = None,
    seeds: Annotated[
        list[str] | None, typer.Option("--seeds", help="training seeds, e.g. 0,1,2")
    ] = None,
    timesteps: Annotated[
        int | None, typer.Option(help="training timesteps per run (default: the config's)")
    ] = None,
    agent: Annotated[
        list[str] | None, typer.Option("--agent", "-a", help="trained run folders, repeatable")
    ] = None,
    patients: Annotated[int, typer.Option(help="test-cohort size")] = 200,
    seed: Annotated[int, typer.Option(help="evaluation seed (scan noise)")] = 2024,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("benchmark_results"),
    backend: Annotated[str, typer.Option(help="local or ray")] = "local",
    workers: Annotated[int, typer.Option(help="parallel units (processes / Ray tasks)")] = 1,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: RAY_ADDRESS or local)")
    ] = None,
    planner: Annotated[
        list[str] | None,
        typer.Option(help="planner setting KEY=VALUE, repeatable (e.g. n_samples=16)"),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(help="the README's short run: PPO (300k steps), 100 patients, fast planner"),
    ] = False,
    protocol: Annotated[
        str | None,
        typer.Option(
            help="a standard protocol (v1: six scenarios, four algorithms, 10 seeds, 1,000 "
            "patients, follow-up, open-loop baseline, ceiling); options given explicitly win"
        ),
    ] = None,
    follow_up_days: Annotated[
        float | None,
        typer.Option(help="untreated follow-up after the horizon in every evaluation (days)"),
    ] = None,
    open_loop: Annotated[
        list[str] | None,
        typer.Option(
            "--open-loop",
            help="open-loop search setting KEY=VALUE, repeatable: n_trials, n_patients, draw, seed",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            help="recompute the finished units in --out computed with other settings "
            "(without it such a folder is refused)"
        ),
    ] = False,
    setting: Annotated[
        str,
        typer.Option(
            help="difficulty tier of every evaluation and training run: default, noisy, "
            "irregular, missing_labs, pkpd, shift, hard"
        ),
    ] = "default",
    tiers: Annotated[
        list[str] | None,
        typer.Option(
            "--tiers",
            help="robustness tiers in which the agents and baselines (planners aside) are "
            "evaluated again as trained, comma-separated (e.g. noisy,shift; v1: noisy, "
            "irregular, pkpd, shift); 'none' for none",
        ),
    ] = None,
) -> None:
    """All baselines plus trained agents on one or more scenarios: tables and figures.

    A rerun into the same --out with the same settings skips the finished units (an
    interrupted sweep resumes; a killed training run continues from its checkpoint).  Each
    unit's result is stored with its settings (scenario and env id, patients, evaluation
    seed, planner, training settings, oncogym version); a finished unit computed with other
    settings is never reused: the command stops, naming the units and what differs, before
    running anything.  Pass a new --out, or --force to recompute exactly those units (their
    result files or training run folders are replaced; nothing else is removed).

    --setting runs every evaluation in a difficulty tier (a shifted tier on the shifted test
    cohort) and trains every agent in it (on the training population); the tier is part of
    every unit's key.

    --tiers evaluates the same agents (as trained) and baselines (the open-loop schedule as
    searched; the planners left out) again in each robustness tier, under <out>/tiers/<tier>/,
    and writes <out>/tiers.md with the scores per tier and what closed loop adds over the
    open-loop schedule in each."""
    from .benchmark import PROTOCOLS, QUICK, BenchmarkError, plan_units, run_benchmark

    if quick and protocol:
        _fail("--quick and --protocol: choose one")
        return
    preset: dict[str, Any] = dict(QUICK) if quick else {}
    if protocol is not None:
        if protocol not in PROTOCOLS:
            _fail(f"--protocol: unknown {protocol!r}; allowed: {', '.join(PROTOCOLS)}")
            return
        preset = dict(PROTOCOLS[protocol])
    if preset:
        scenario = scenario or list(preset.get("scenarios", ())) or None
        algo = algo or list(preset["train"])
        seeds = seeds or [",".join(str(x) for x in preset.get("seeds", (0,)))]
        timesteps = timesteps or preset["timesteps"]
        if patients == 200:
            patients = preset["patients"]
        planner = planner or [f"{k}={v}" for k, v in preset["planner"].items()]
        open_loop = open_loop or [f"{k}={v}" for k, v in preset["open_loop"].items()]
        if follow_up_days is None:
            follow_up_days = preset.get("follow_up_days", 0.0)
        if out == Path("benchmark_results"):
            out = Path(preset["out"])
        tiers = tiers or [",".join(preset.get("tiers", ()))]
    try:
        tasks = [_task_of(s)[0] for s in _split(scenario)] or ["melanoma"]
        chosen = _split(baselines) or None
        algos = [a.lower() for a in _split(algo)]
        if algos:
            from .train import ALGOS

            bad = [a for a in algos if a not in ALGOS]
            if bad:
                raise CliError(
                    f"--train: unknown algorithm {bad[0]!r}; allowed: {', '.join(ALGOS)}"
                )
        seed_list = _int_list(seeds, "--seeds") or [0]
        _workers(workers)
        if patients < 1:
            raise CliError(f"--patients: must be >= 1, got {patients}")
        planner_kw = {k: _number(v) for k, v in _parse_assignments_str(planner or [], "--planner")}
        open_loop_kw = {
            k: _number(v) for k, v in _parse_assignments_str(open_loop or [], "--open-loop")
        }
        if follow_up_days is not None and not follow_up_days >= 0:
            raise CliError(f"--follow-up-days: must be >= 0, got {follow_up_days}")
        tier_list = [t for t in _split(tiers) if t != "none"]
        skip = tuple(preset.get("skip_baselines", ())) if chosen is None else ()
        train_units, eval_units = plan_units(
            tasks, baselines=chosen, algos=algos, seeds=seed_list, agents=_split(agent), skip=skip
        )
        with _progress() as prog:
            bar = prog.add_task("benchmark units", total=len(train_units) + len(eval_units))

            def done(unit: Any, path: Any, exc: Any) -> None:
                status = "failed" if exc is not None else "done"
                prog.console.print(f"{status}: {unit.key}", highlight=False)
                prog.advance(bar)

            rows = run_benchmark(
                tasks,
                out,
                baselines=chosen,
                algos=algos,
                seeds=seed_list,
                agents=_split(agent),
                n_patients=patients,
                eval_seed=seed,
                timesteps=timesteps,
                planner=planner_kw,
                backend=backend,
                workers=workers,
                address=address,
                on_done=done,
                force=force,
                follow_up_days=follow_up_days or 0.0,
                open_loop=open_loop_kw,
                skip_baselines=skip,
                setting=setting,
                tiers=tier_list,
            )
    except BenchmarkError as exc:
        _fail(str(exc))
        return
    except (CliError, ValueError, ImportError) as exc:
        _fail(str(exc))
        return
    for task, task_rows in rows.items():
        console.print(_metrics_table(task_rows, f"{task}: {patients} test patients"))
        console.print(f"wrote {out / task}/metrics.md, km_os.png, swimmer_*.png", highlight=False)
    if (out / "aggregate.md").exists():
        console.print((out / "aggregate.md").read_text(), highlight=False, markup=False)
        console.print(f"wrote {out}/aggregate.md, performance_profiles.png", highlight=False)
    if tier_list and (out / "tiers.md").exists():
        console.print((out / "tiers.md").read_text(), highlight=False, markup=False)
        console.print(f"wrote {out}/tiers.md and {out}/tiers/<tier>/", highlight=False)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
