"""Kirschner & Panetta 1998 — effector cells, tumour and IL-2 under immunotherapy.

J Math Biol 37:235–252:

    dE/dt  = c·T − μ2·E + p1·E·IL/(g1 + IL) + s1
    dT/dt  = r2·T·(1 − b·T) − a·E·T/(g2 + T)
    dIL/dt = p2·E·T/(g3 + T) − μ3·IL + s2

``c`` is the tumour's antigenicity; the therapies are adoptive cellular
immunotherapy ``aci`` (s1, effector cells/day) and exogenous ``il2`` (s2).
Parameter values checked against BioModels BIOMD0000000732.  With s1 > 0 the
tumour-free state is stable iff s1 > μ2·r2·g2/a = 540 cells/day (derived).
"""

from __future__ import annotations

from oncogym._jit import jit
from oncogym.models.base import Model, Param, State, Therapy

E, T, IL = 0, 1, 2
C, MU2, P1, G1, R2, B, A, G2, P2, G3, MU3 = range(11)
ACI, IL2 = 0, 1

_SRC = "Kirschner & Panetta 1998 (checked against BioModels BIOMD0000000732)"


@jit
def rhs(t, y, p, u, dydt):
    e = y[E]
    tt = y[T]
    il = y[IL]
    dydt[E] = p[C] * tt - p[MU2] * e + p[P1] * e * il / (p[G1] + il) + u[ACI]
    dydt[T] = p[R2] * tt * (1.0 - p[B] * tt) - p[A] * e * tt / (p[G2] + tt)
    dydt[IL] = p[P2] * e * tt / (p[G3] + tt) - p[MU3] * il + u[IL2]


@jit
def dose(k, amount, y, p):
    if k == ACI:
        y[E] += amount
    elif k == IL2:
        y[IL] += amount


MODEL = Model(
    name="kirschner_panetta1998",
    title="Kirschner & Panetta 1998: effector cells, tumour, IL-2 and immunotherapy",
    reference="Kirschner D, Panetta JC. Modeling immunotherapy of the tumor-immune "
    "interaction. J Math Biol 1998;37:235-252.",
    states=(
        State("E", "cells", "activated effector cells"),
        State("T", "cells", "tumour cells", floor=1.0),
        State("IL", "IL-2 units", "IL-2 concentration (count-like unit of the paper)"),
    ),
    params=(
        Param("c", 0.035, "1/day", "antigenicity (BioModels default; paper range 0–0.05)", _SRC),
        Param("mu2", 0.03, "1/day", "effector death", _SRC),
        Param("p1", 0.1245, "1/day", "IL-2-driven effector proliferation", _SRC),
        Param("g1", 2e7, "IL-2 units", "half-saturation for p1", _SRC),
        Param("r2", 0.18, "1/day", "tumour growth", _SRC),
        Param("b", 1e-9, "1/cell", "inverse carrying capacity", _SRC),
        Param("a", 1.0, "1/day", "maximal kill rate", _SRC),
        Param("g2", 1e5, "cells", "half-saturation of kill", _SRC),
        Param("p2", 5.0, "1/day", "IL-2 production", _SRC),
        Param("g3", 1e3, "cells", "half-saturation of IL-2 production", _SRC),
        Param("mu3", 10.0, "1/day", "IL-2 clearance", _SRC),
    ),
    therapies=(
        Therapy("aci", "effector cells", "adoptive cellular immunotherapy (the paper's s1)"),
        Therapy("il2", "IL-2 units", "exogenous IL-2 (the paper's s2)"),
    ),
    rhs=rhs,
    dose=dose,
    initial_state={"E": 1.0, "T": 1.0, "IL": 1.0},
    notes="Initial state E0 = T0 = IL0 = 1: the state from which this project computed its "
    "antigenicity table (dormancy, clearance days, limit-cycle periods and ranges; "
    "docs/model/equations.md); tests/test_core_published.py reproduces that table.",
)
