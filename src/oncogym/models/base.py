"""Models as data: states, parameters and therapies with units and sources.

A :class:`Model` bundles the metadata of a published model with two compiled
kernels:

* ``rhs(t, y, p, u, dydt)`` — the right-hand side over flat ``float64`` arrays
  (``u[k]`` is the current infusion rate of therapy ``k``), writing ``dydt``;
* ``dose(k, amount, y, p)`` — an instantaneous dose of therapy ``k`` applied to
  the state in place (a bolus into a compartment, a cell infusion, a radiation
  fraction).

This module is the one place where user dictionaries become parameter and state
arrays, with validation that names the offending field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from oncogym._jit import as_dose_pointer, as_rhs_pointer


@dataclass(frozen=True)
class Param:
    """A model parameter: default value, unit, meaning and where the value comes from."""

    name: str
    value: float
    unit: str
    description: str
    source: str


@dataclass(frozen=True)
class State:
    """A state variable.

    ``floor`` is the extinction threshold: a value that falls below it is set to
    exactly 0.  Only populations without an external source get one (tumour cells,
    CAR-T cells): a population fed by a source (NK cells from lymphocytes, effectors
    from a constant influx) would chatter at the floor, and concentrations have none.
    ``atol`` is the absolute tolerance of the integrator for this state.
    """

    name: str
    unit: str
    description: str
    floor: float = 0.0
    atol: float = 1e-6


@dataclass(frozen=True)
class Therapy:
    """A therapy the model accepts.

    A schedule entry ``(name, start_day, amount, duration_days)`` gives ``amount``
    (in ``unit``) instantaneously when ``duration_days == 0`` — through the model's
    ``dose`` kernel — or as a constant infusion of ``amount / duration_days`` per
    day added to ``u[k]`` otherwise.  ``bolus``/``infusion`` say which forms the
    model supports.
    """

    name: str
    unit: str
    description: str
    bolus: bool = True
    infusion: bool = True


@dataclass(frozen=True)
class Model:
    """A registered model: metadata plus compiled ``rhs`` and ``dose`` kernels."""

    name: str
    title: str
    reference: str
    states: tuple[State, ...]
    params: tuple[Param, ...]
    therapies: tuple[Therapy, ...]
    rhs: Callable
    dose: Callable
    initial_state: Mapping[str, float]
    notes: str = ""
    parameter_sets: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    # --- compiled kernels as first-class functions (compiled on first use) ----
    @cached_property
    def rhs_pointer(self) -> Callable:
        """``rhs`` as the function pointer the integrator takes."""
        return as_rhs_pointer(self.rhs)

    @cached_property
    def dose_pointer(self) -> Callable:
        """``dose`` as the function pointer the integrator takes."""
        return as_dose_pointer(self.dose)

    # --- names (cached: read on every reset of every patient) -----------------
    @cached_property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    @cached_property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @cached_property
    def therapy_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.therapies)

    @property
    def n_states(self) -> int:
        return len(self.states)

    # --- defaults ------------------------------------------------------------
    def default_params(self) -> dict[str, float]:
        """Default parameter values, by name."""
        return {p.name: p.value for p in self.params}

    def default_state(self) -> dict[str, float]:
        """Default initial state, by name."""
        return {name: float(self.initial_state[name]) for name in self.state_names}

    def parameter_set(self, name: str) -> dict[str, float]:
        """A named published parameter set (full dict), e.g. ``"raji"`` for CARTmath."""
        if name not in self.parameter_sets:
            allowed = ", ".join(sorted(self.parameter_sets)) or "(none)"
            raise ValueError(
                f"parameter_set: unknown set {name!r} for model {self.name!r}; allowed: {allowed}"
            )
        out = self.default_params()
        out.update(self.parameter_sets[name])
        return out

    def therapy_index(self, name: str) -> int:
        names = self.therapy_names
        if name not in names:
            allowed = ", ".join(names) or "(none: this model takes no therapy)"
            raise ValueError(
                f"schedule: unknown therapy {name!r} for model {self.name!r}; allowed: {allowed}"
            )
        return names.index(name)

    # --- arrays (the one place dicts become arrays) ---------------------------
    def params_array(self, overrides: Mapping[str, float] | None = None) -> np.ndarray:
        """Parameter vector with ``overrides`` applied; validates names and values."""
        p = np.array([q.value for q in self.params], dtype=np.float64)
        if overrides:
            _apply(p, overrides, self.param_names, "params", self.name)
            if np.any(p < 0):
                bad = [n for n, v in zip(self.param_names, p, strict=True) if v < 0]
                raise ValueError(f"params: values must be >= 0; negative: {', '.join(bad)}")
        return p

    def state_array(self, overrides: Mapping[str, float] | None = None) -> np.ndarray:
        """Initial-state vector: the default state with ``overrides`` applied."""
        y = np.array([self.initial_state[s] for s in self.state_names], dtype=np.float64)
        if overrides:
            _apply(y, overrides, self.state_names, "y0", self.name)
            if np.any(y < 0):
                bad = [n for n, v in zip(self.state_names, y, strict=True) if v < 0]
                raise ValueError(f"y0: states must be >= 0; negative: {', '.join(bad)}")
        return y

    @property
    def floor(self) -> np.ndarray:
        return np.array([s.floor for s in self.states], dtype=np.float64)

    @property
    def atol(self) -> np.ndarray:
        return np.array([s.atol for s in self.states], dtype=np.float64)

    def describe(self) -> str:
        """A Markdown table of states, parameters and therapies with units and sources."""
        lines = [f"### {self.name} — {self.title}", "", self.reference, ""]
        lines += ["| state | unit | meaning |", "|---|---|---|"]
        lines += [f"| {s.name} | {s.unit} | {s.description} |" for s in self.states]
        lines += ["", "| parameter | value | unit | meaning | source |", "|---|---|---|---|---|"]
        lines += [
            f"| {q.name} | {q.value:.6g} | {q.unit} | {q.description} | {q.source} |"
            for q in self.params
        ]
        if self.therapies:
            lines += ["", "| therapy | unit | meaning |", "|---|---|---|"]
            lines += [f"| {t.name} | {t.unit} | {t.description} |" for t in self.therapies]
        if self.notes:
            lines += ["", self.notes]
        return "\n".join(lines)


def _apply(
    arr: np.ndarray, overrides: Mapping[str, float], names: tuple[str, ...], field_: str, model: str
) -> None:
    if not isinstance(overrides, Mapping):
        raise ValueError(f"{field_}: expected a mapping of name -> value, got {type(overrides)!r}")
    for key, value in overrides.items():
        if key not in names:
            raise ValueError(
                f"{field_}: unknown name {key!r} for model {model!r}; allowed: {', '.join(names)}"
            )
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{field_}[{key!r}]: expected a number, got {value!r}") from None
        if not math.isfinite(v):
            raise ValueError(f"{field_}[{key!r}]: must be finite, got {v}")
        arr[names.index(key)] = v
