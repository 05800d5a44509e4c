"""Barros et al. 2021 "CARTmath" — effector and memory CAR-T cells against a tumour.

Barros LRC, Paixão EA, Valli AMP, Naozuka GT, Fassoni AC, Almeida RC. CARTmath — a
mathematical model of CAR-T immunotherapy in preclinical studies of hematological
cancers. Cancers 2021;13:2941 (checked against the authors' code tmglncc/CARTmath and
BIOMD0000001019/1020):

    dC_T/dt = (φ − ρ)·C_T + θ·T·C_M − α·T·C_T
    dC_M/dt = ε·C_T − θ·T·C_M − μ·C_M
    dT/dt   = r·T·(1 − b·T) − γ·T·C_T

Defaults are the HDLM-2 (Hodgkin lymphoma) fit; ``parameter_set("raji")`` gives
the Raji (Burkitt lymphoma) fit.  Therapy ``car_t``: CAR-T cells into C_T.
"""

from __future__ import annotations

from oncogym._jit import jit
from oncogym.models.base import Model, Param, State, Therapy

CT, CM, T = 0, 1, 2
PHI, RHO, EPS, THETA, ALPHA, MU, R, B, GAMMA = range(9)
CAR_T = 0

_SRC = "Barros et al. 2021 (checked against the authors' code, tmglncc/CARTmath rk4.R)"


@jit
def rhs(t, y, p, u, dydt):
    ct = y[CT]
    cm = y[CM]
    tt = y[T]
    dydt[CT] = (p[PHI] - p[RHO]) * ct + p[THETA] * tt * cm - p[ALPHA] * tt * ct + u[CAR_T]
    dydt[CM] = p[EPS] * ct - p[THETA] * tt * cm - p[MU] * cm
    dydt[T] = p[R] * tt * (1.0 - p[B] * tt) - p[GAMMA] * tt * ct


@jit
def dose(k, amount, y, p):
    if k == CAR_T:
        y[CT] += amount


MODEL = Model(
    name="cartmath2021",
    title="CARTmath (Barros et al. 2021): effector and memory CAR-T cells",
    reference="Barros LRC et al. CARTmath - a mathematical model of CAR-T immunotherapy in "
    "preclinical studies of hematological cancers. Cancers 2021;13:2941.",
    states=(
        State("CT", "cells", "effector CAR-T cells", floor=1.0),
        State("CM", "cells", "memory CAR-T cells", floor=1.0),
        State("T", "cells", "tumour cells", floor=1.0),
    ),
    params=(
        Param("phi", 0.265, "1/day", "effector expansion", _SRC),
        Param("rho", 0.35, "1/day", "effector death", _SRC),
        Param("eps", 0.15, "1/day", "memory formation", _SRC),
        Param("theta", 6.0e-6, "1/(cell·day)", "memory reactivation on antigen contact", _SRC),
        Param("alpha", 4.5e-8, "1/(cell·day)", "tumour-induced effector exhaustion", _SRC),
        Param("mu", 5.0e-3, "1/day", "memory death", _SRC),
        Param("r", 5.650026e-2, "1/day", "tumour growth", _SRC),
        Param("b", 1.404029e-12, "1/cell", "inverse carrying capacity", _SRC),
        Param("gamma", 3.715843e-6, "1/(cell·day)", "tumour kill by effector CAR-T", _SRC),
    ),
    therapies=(Therapy("car_t", "cells", "CAR-T cell infusion into the effector pool"),),
    rhs=rhs,
    dose=dose,
    initial_state={"CT": 0.0, "CM": 0.0, "T": 2e6},
    parameter_sets={
        "hdlm2": {},
        "raji": {
            "phi": 0.83,
            "rho": 0.8300536,
            "eps": 1.59795,
            "theta": 2.3e-4,
            "alpha": 1.248506e-8,
            "mu": 6.89e-7,
            "r": 5.071721e-1,
            "b": 0.0,
            "gamma": 3.365388e-8,
        },
    },
    notes="Default state: HDLM-2 inoculum T0 = 2e6 cells with no CAR-T (the authors' app "
    "gives 1.5e6 CAR-T cells at day 42).  The authors zero populations below 1e-6 cells; "
    "this project's extinction floor is 1 cell.",
)
