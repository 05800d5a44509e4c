"""The ``oncogym`` command line (typer + rich).

``oncogym list`` shows the registered models; ``oncogym simulate`` runs a model —
one of the literature examples or a schedule given on the command line — and prints
a table (optionally a plot).  Bad arguments end with a one-line error naming the
allowed values, never a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

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
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
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
    """List the registered models and the literature examples."""
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
) -> None:
    """Simulate a model, or a literature example, and print a table."""
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


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
