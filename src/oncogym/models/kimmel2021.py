"""Kimmel, Locke & Altrock 2021 — CAR-T versus normal T cells after lymphodepletion.

Proc R Soc B 288:20210229 (large B-cell lymphoma, axicabtagene ciloleucel, ZUMA-1).
Table 1 of the paper (checked against the paper's text and BIOMD0000001041):

    dN/dt = −r_N·N·ln((N + C)/K_N)
    dC/dt = −r_C(N + C)·C·ln((N + C)/K_C)
    r_C(X) = ρ_C + b·(X − K_N)²/(a·X² + (X − K_N)²)
    dB/dt = r_B·B − γ_B·B·C/(k_B + C)

Cells (not cells/µL); the SBML's per-µL values are these divided by 5e8.
Time 0 is the CAR-T infusion after lymphodepletion: N(0) = 3e9 normal T cells,
C(0) = 1.8e8 CAR-T cells, B(0) = 9.486e10 tumour cells (94.86 ml).
"""

from __future__ import annotations

import math

from oncogym._jit import jit
from oncogym.models.base import Model, Param, State, Therapy

N, C, B = 0, 1, 2
KN, KC, RN, RHOC, A, BB, RB, GB, KB = range(9)
CAR_T = 0

_SRC = "Kimmel et al. 2021, Table 1 (checked against the paper's text)"


@jit
def rhs(t, y, p, u, dydt):
    n = y[N]
    c = y[C]
    b = y[B]
    x = n + c
    if x > 0.0:
        lx = math.log(x)
        kn = p[KN]
        dev = (x - kn) * (x - kn)
        rc = p[RHOC] + p[BB] * dev / (p[A] * x * x + dev)
        dydt[N] = -p[RN] * n * (lx - math.log(kn))
        dydt[C] = -rc * c * (lx - math.log(p[KC]))
    else:
        dydt[N] = 0.0
        dydt[C] = 0.0
    dydt[C] += u[CAR_T]
    dydt[B] = p[RB] * b - p[GB] * b * c / (p[KB] + c)


@jit
def dose(k, amount, y, p):
    if k == CAR_T:
        y[C] += amount


MODEL = Model(
    name="kimmel2021",
    title="Kimmel, Locke & Altrock 2021: CAR-T and normal T cells after lymphodepletion",
    reference="Kimmel GJ, Locke FL, Altrock PM. The roles of T cell competition and "
    "stochastic extinction events in chimeric antigen receptor T cell therapy. Proc R Soc B "
    "2021;288:20210229.",
    states=(
        State("N", "cells", "normal T cells"),
        State("C", "cells", "CAR-T cells"),
        State("B", "cells", "CD19+ tumour cells (1 ml ≈ 1e9 cells)", floor=1.0),
    ),
    params=(
        Param("KN", 2.50e11, "cells", "normal T-cell carrying capacity", _SRC),
        Param("KC", 6.96e10, "cells", "CAR-T carrying capacity", _SRC),
        Param("rN", 0.170, "1/day", "normal T-cell growth", _SRC),
        Param("rhoC", 2.51e-2, "1/day", "baseline CAR-T growth", _SRC),
        Param("a", 0.423, "-", "signalling inefficiency", _SRC),
        Param("b", 0.525, "1/day", "impact of immune reconstitution", _SRC),
        Param("rB", 0.19, "1/day", "tumour net growth (the paper's 'medium' PFS fit)", _SRC),
        Param("gammaB", 1.15, "1/day", "maximal kill", _SRC),
        Param("kB", 2.024e9, "cells", "kill saturation", _SRC),
    ),
    therapies=(Therapy("car_t", "cells", "CAR-T cell infusion"),),
    rhs=rhs,
    dose=dose,
    initial_state={"N": 3.0e9, "C": 1.8e8, "B": 9.486e10},
    parameter_sets={"slow": {"rB": 0.105}, "medium": {"rB": 0.19}, "fast": {"rB": 0.265}},
    notes="Parameter sets slow/medium/fast are the tumour growth rates with which the paper "
    "recapitulates ZUMA-1 progression-free survival.  The paper treats cure as a stochastic "
    "extinction event; this deterministic core applies a 1-cell extinction floor instead.",
)
