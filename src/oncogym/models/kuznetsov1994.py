"""Kuznetsov, Makalkin, Taylor & Perelson 1994 — immunogenic tumour growth.

Bull Math Biol 56(2):295–321.  Dimensional two-variable form (the E–T conjugate
eliminated by quasi-steady state):

    dE/dt = s + p·E·T/(g + T) − m·E·T − d·E
    dT/dt = a·T·(1 − b·T) − n·E·T

Values checked against BioModels BIOMD0000000762 (Biosimulant/models-oncology).
The model shows bistability between a dormant and an escaping tumour and
"sneaking through" of small inocula.
"""

from __future__ import annotations

from oncogym._jit import jit
from oncogym.models.base import Model, Param, State

E, T = 0, 1
S, P, G, M, D, N, A, B = range(8)

_SRC = "Kuznetsov et al. 1994 (checked against BioModels BIOMD0000000762)"


@jit
def rhs(t, y, p, u, dydt):
    e = y[E]
    tt = y[T]
    dydt[E] = p[S] + p[P] * e * tt / (p[G] + tt) - p[M] * e * tt - p[D] * e
    dydt[T] = p[A] * tt * (1.0 - p[B] * tt) - p[N] * e * tt


@jit
def dose(k, amount, y, p):
    pass


MODEL = Model(
    name="kuznetsov1994",
    title="Kuznetsov et al. 1994: effector cells and an immunogenic tumour",
    reference="Kuznetsov VA, Makalkin IA, Taylor MA, Perelson AS. Bull Math Biol 1994;56:295-321.",
    states=(
        State("E", "cells", "effector (cytotoxic T) cells"),
        State("T", "cells", "tumour cells", floor=1.0),
    ),
    params=(
        Param("s", 1.3e4, "cells/day", "baseline influx of effectors", _SRC),
        Param("p", 0.1245, "1/day", "max tumour-driven effector recruitment", _SRC),
        Param("g", 2.019e7, "cells", "half-saturation of recruitment", _SRC),
        Param("m", 3.422e-10, "1/(cell·day)", "effector inactivation by tumour", _SRC),
        Param("d", 0.0412, "1/day", "effector death", _SRC),
        Param("n", 1.101e-7, "1/(cell·day)", "tumour kill by effectors", _SRC),
        Param("a", 0.18, "1/day", "tumour maximal growth rate", _SRC),
        Param("b", 2.0e-9, "1/cell", "inverse carrying capacity (K = 5e8)", _SRC),
    ),
    therapies=(),
    rhs=rhs,
    dose=dose,
    initial_state={"E": 3.2e5, "T": 5e6},
    notes="Initial state: the BioModels encoding's E0 = 3.2e5, T0 = 5e6.",
)
