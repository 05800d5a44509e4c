"""Friberg et al. 2002 — semi-mechanistic myelosuppression, with docetaxel PK.

Friberg LE, Henningsson A, Maas H, Nguyen L, Karlsson MO. Model of chemotherapy-induced
myelosuppression with parameter consistency across drugs. J Clin Oncol 2002;20:4713–4721.
Docetaxel three-compartment PK (Bruno et al. 1996) as used there (values checked against
the R package myelo, radivot/myelo ``fribergPars02``):

    dA1/dt = −(k10 + k12 + k13)·A1 + k21·A2 + k31·A3 + infusion      (mg)
    dA2/dt = k12·A1 − k21·A2,   dA3/dt = k13·A1 − k31·A3
    Cp     = A1 / V1 / MW                                              (µM)
    E      = slope·Cp
    dProl/dt = k_tr·Prol·(1 − E)·(Circ0/Circ)^γ − k_tr·Prol
    dTr_i/dt = k_tr·(Tr_{i−1} − Tr_i)   (Tr_0 = Prol, i = 1..3)
    dCirc/dt = k_tr·(Tr3 − Circ),   k_tr = 4/MTT

Rate constants are converted from 1/h to 1/day.  Therapy ``docetaxel`` in mg
(a 75–100 mg/m² dose over 1 h is a 1/24-day infusion).

Stiffness: the PK's fastest eigenvalue is ≈ −180/day while the marrow dynamics run
at ≈ 1/day, so the model is stiff for an explicit method; the default ``"auto"``
integrator switches to RODAS4 once the drug's fast phase is over.
"""

from __future__ import annotations

from oncogym._jit import jit
from oncogym.models.base import Model, Param, State, Therapy

A1, A2, A3, PROL, TR1, TR2, TR3, CIRC = range(8)
K10, K12, K21, K13, K31, V1, MW, SLOPE, MTT, GAM, CIRC0 = range(11)
DOCETAXEL = 0

_PK = "Bruno et al. 1996 docetaxel PK as used by Friberg et al. 2002 (checked against myelo)"
_PD = "Friberg et al. 2002, docetaxel (checked against the R package myelo)"


@jit
def rhs(t, y, p, u, dydt):
    a1 = y[A1]
    a2 = y[A2]
    a3 = y[A3]
    dydt[A1] = -(p[K10] + p[K12] + p[K13]) * a1 + p[K21] * a2 + p[K31] * a3 + u[DOCETAXEL]
    dydt[A2] = p[K12] * a1 - p[K21] * a2
    dydt[A3] = p[K13] * a1 - p[K31] * a3
    cp = a1 / p[V1] / p[MW]
    effect = p[SLOPE] * cp
    ktr = 4.0 / p[MTT]
    circ = max(y[CIRC], 1e-300)
    feedback = (p[CIRC0] / circ) ** p[GAM]
    prol = y[PROL]
    dydt[PROL] = ktr * prol * (1.0 - effect) * feedback - ktr * prol
    dydt[TR1] = ktr * (prol - y[TR1])
    dydt[TR2] = ktr * (y[TR1] - y[TR2])
    dydt[TR3] = ktr * (y[TR2] - y[TR3])
    dydt[CIRC] = ktr * (y[TR3] - y[CIRC])


@jit
def dose(k, amount, y, p):
    if k == DOCETAXEL:
        y[A1] += amount


_C0 = 5.05e9
MODEL = Model(
    name="friberg2002",
    title="Friberg et al. 2002: neutropenia transit model with docetaxel PK",
    reference="Friberg LE et al. Model of chemotherapy-induced myelosuppression with parameter "
    "consistency across drugs. J Clin Oncol 2002;20:4713-4721.",
    states=(
        State("A1", "mg", "docetaxel, central compartment", atol=1e-9),
        State("A2", "mg", "docetaxel, peripheral compartment 1", atol=1e-9),
        State("A3", "mg", "docetaxel, peripheral compartment 2", atol=1e-9),
        State("Prol", "cells/L", "proliferating marrow progenitors (ANC-equivalent)", atol=1.0),
        State("Tr1", "cells/L", "maturing cells, transit 1", atol=1.0),
        State("Tr2", "cells/L", "maturing cells, transit 2", atol=1.0),
        State("Tr3", "cells/L", "maturing cells, transit 3", atol=1.0),
        State("Circ", "cells/L", "circulating neutrophils (ANC)", atol=1.0),
    ),
    params=(
        Param("k10", 5.2 * 24, "1/day", "elimination (CL 38.5 L/h / V1; 5.2/h)", _PK),
        Param("k12", 1.06 * 24, "1/day", "central → peripheral 1 (1.06/h)", _PK),
        Param("k21", 1.51 * 24, "1/day", "peripheral 1 → central (1.51/h)", _PK),
        Param("k13", 1.26 * 24, "1/day", "central → peripheral 2 (1.26/h)", _PK),
        Param("k31", 0.084 * 24, "1/day", "peripheral 2 → central (0.084/h)", _PK),
        Param("V1", 7.4, "L", "central volume", _PK),
        Param("MW", 0.808, "mg/µmol", "docetaxel molar mass", _PK),
        Param("slope", 8.58, "1/µM", "linear drug effect on proliferation", _PD),
        Param("MTT", 88.7 / 24, "day", "mean transit time (88.7 h)", _PD),
        Param("gamma", 0.161, "-", "feedback exponent", _PD),
        Param("Circ0", _C0, "cells/L", "baseline ANC", _PD),
    ),
    therapies=(Therapy("docetaxel", "mg", "docetaxel into the central compartment"),),
    rhs=rhs,
    dose=dose,
    initial_state={
        "A1": 0.0,
        "A2": 0.0,
        "A3": 0.0,
        "Prol": _C0,
        "Tr1": _C0,
        "Tr2": _C0,
        "Tr3": _C0,
        "Circ": _C0,
    },
    notes="Baseline steady state Prol = Tr1..3 = Circ = Circ0.  Note the marrow states only "
    "start at Circ0 when the parameter Circ0 is left at its default: pass y0 with a new "
    "baseline.",
)
