"""de Pillis, Gu & Radunskaya 2006 — mixed immunotherapy and chemotherapy.

J Theor Biol 238:841–862 (equations and patient 9's values checked against three
independent implementations):

    D     = d·(L/T)^l / (s + (L/T)^l)            (= d/(1 + s·(T/L)^l))
    dT/dt = a·T(1 − bT) − c·N·T − D·T − K_T·(1 − e^{−M})·T
    dN/dt = e·C − f·N + g·N·T²/(h + T²) − p·N·T − K_N·(1 − e^{−M})·N
    dL/dt = −m·L + j·L·(D·T)²/(k + (D·T)²) − q·L·T + (r1·N + r2·C)·T − u·N·L²
            − K_L·(1 − e^{−M})·L + p_I·L·I/(g_I + I) + v_L
    dC/dt = α − β·C − K_C·(1 − e^{−M})·C
    dM/dt = −γ·M + v_M
    dI/dt = −μ_I·I + v_I

Therapies: ``chemo`` (v_M, mg/L of drug in blood), ``il2`` (v_I, IU/L) and ``til``
(v_L, tumour-infiltrating lymphocytes, cells).  Two patients from the paper:
``depillis2006`` (patient 9) and ``depillis2006_p10`` (patient 10).
"""

from __future__ import annotations

import math

from oncogym._jit import jit
from oncogym.models.base import Model, Param, State, Therapy

T, N, L, C, M, I = range(6)
(
    A,
    B,
    CC,
    D,
    LL,
    S,
    E,
    F,
    G,
    H,
    J,
    K,
    MM,
    Q,
    PP,
    R1,
    R2,
    U,
    KT,
    KN,
    KL,
    KC,
    ALPHA,
    BETA,
    GAMMA,
    PI,
    GI,
    MUI,
) = range(28)
CHEMO, IL2, TIL = 0, 1, 2


@jit
def cd8_kill_fraction(d, l, s, lymph, tumour):
    """D = d·(L/T)^l/(s + (L/T)^l), computed as d/(1 + s·(T/L)^l).

    The second form is the same function but cannot overflow when one population is
    many logs below the other (T → 1e-150 without an extinction floor): it gives
    0 when L = 0 and d when T = 0.
    """
    if lymph <= 0.0:
        return 0.0
    return d / (1.0 + s * (tumour / lymph) ** l)


@jit
def rhs(t, y, p, u, dydt):
    tt = y[T]
    nn = y[N]
    ll = y[L]
    cc = y[C]
    mm = y[M]
    ii = y[I]
    dk = cd8_kill_fraction(p[D], p[LL], p[S], ll, tt)
    dt_kill = dk * tt
    drug = -math.expm1(-mm)  # 1 − e^{−M}
    dydt[T] = p[A] * tt * (1.0 - p[B] * tt) - p[CC] * nn * tt - dt_kill - p[KT] * drug * tt
    dydt[N] = (
        p[E] * cc
        - p[F] * nn
        + p[G] * nn * tt * tt / (p[H] + tt * tt)
        - p[PP] * nn * tt
        - p[KN] * drug * nn
    )
    dydt[L] = (
        -p[MM] * ll
        + p[J] * ll * dt_kill * dt_kill / (p[K] + dt_kill * dt_kill)
        - p[Q] * ll * tt
        + (p[R1] * nn + p[R2] * cc) * tt
        - p[U] * nn * ll * ll
        - p[KL] * drug * ll
        + p[PI] * ll * ii / (p[GI] + ii)
        + u[TIL]
    )
    dydt[C] = p[ALPHA] - p[BETA] * cc - p[KC] * drug * cc
    dydt[M] = -p[GAMMA] * mm + u[CHEMO]
    dydt[I] = -p[MUI] * ii + u[IL2]


@jit
def dose(k, amount, y, p):
    if k == CHEMO:
        y[M] += amount
    elif k == IL2:
        y[I] += amount
    elif k == TIL:
        y[L] += amount


_V = "de Pillis et al. 2006 (checked against three implementations)"
_P10 = "de Pillis et al. 2006, patient 10 (one MATLAB replication only; unverified, see notes)"

_STATES = (
    State("T", "cells", "tumour cells", floor=1.0),
    State("N", "cells", "natural killer (NK) cells"),
    State("L", "cells", "tumour-specific CD8+ T cells"),
    State("C", "cells", "circulating lymphocytes"),
    # absolute tolerances at levels with no effect (kill 1 − e^{−M} ≈ 1e-8/day;
    # p_I·I/(g_I + I) ≈ 1e-10/day): tracking smaller values of a decayed drug only
    # costs steps
    State("M", "mg/L", "chemotherapy drug in blood", atol=1e-8),
    State("I", "IU/L", "IL-2 in blood", atol=1e-2),
)

_THERAPIES = (
    Therapy("chemo", "mg/L", "chemotherapy into the blood (the paper's v_M)"),
    Therapy("il2", "IU/L", "IL-2 (the paper's v_I)"),
    Therapy("til", "cells", "tumour-infiltrating lymphocytes, adoptive CD8+ transfer (v_L)"),
)


def _params(p10: bool) -> tuple[Param, ...]:
    def v(p9: float, p10v: float | None = None) -> float:
        return p10v if (p10 and p10v is not None) else p9

    def src(differs: bool) -> str:
        return _P10 if (p10 and differs) else _V

    return (
        Param("a", 4.31e-1, "1/day", "tumour growth", _V),
        Param("b", 1.02e-9, "1/cell", "inverse carrying capacity", _V),
        Param("c", 6.41e-11, "1/(cell·day)", "NK kill of tumour", _V),
        Param("d", v(2.34, 1.88), "1/day", "max CD8 fractional kill", src(True)),
        Param("l", v(2.09, 1.81), "-", "exponent of L/T in D", src(True)),
        Param("s", v(8.39e-2, 5.12e-1), "-", "steepness of D", src(True)),
        Param("e", 2.08e-7, "1/day", "fraction of C becoming NK per day", _V),
        Param("f", 4.12e-2, "1/day", "NK death", _V),
        Param("g", 1.25e-2, "1/day", "max NK recruitment", _V),
        Param("h", 2.02e7, "cells²", "NK recruitment steepness", _V),
        Param("j", 2.49e-2, "1/day", "max CD8 recruitment", _V),
        Param("k", v(3.66e7, 5.66e7), "cells²", "CD8 recruitment steepness", src(True)),
        Param("m", v(2.04e-1, 9.12), "1/day", "CD8 death", src(True)),
        Param("q", v(1.42e-6, 1.59e-6), "1/(cell·day)", "CD8 inactivation by tumour", src(True)),
        Param("p", v(3.42e-6, 3.59e-6), "1/(cell·day)", "NK inactivation by tumour", src(True)),
        Param("r1", 1.10e-7, "1/(cell·day)", "NK-debris stimulation of CD8", _V),
        Param("r2", 6.50e-11, "1/(cell·day)", "CD8 priming from C–T encounters", _V),
        Param("u", 3.00e-10, "1/(cell²·day)", "NK regulation of CD8", _V),
        Param("KT", 9.00e-1, "1/day", "chemo kill of tumour", _V),
        Param("KN", 6.00e-1, "1/day", "chemo kill of NK", _V),
        Param("KL", 6.00e-1, "1/day", "chemo kill of CD8", _V),
        Param("KC", 6.00e-1, "1/day", "chemo kill of circulating lymphocytes", _V),
        Param("alpha", v(7.50e8, 5.00e8), "cells/day", "lymphocyte production", src(True)),
        Param("beta", v(1.20e-2, 8.00e-3), "1/day", "lymphocyte turnover", src(True)),
        Param("gamma", 9.00e-1, "1/day", "drug elimination (t½ = 0.77 d)", _V),
        Param("pI", 1.25e-1, "1/day", "IL-2-driven CD8 proliferation", _V),
        Param("gI", 2.00e7, "IU/L", "half-saturation of IL-2 effect", _V),
        Param("muI", 1.00e1, "1/day", "IL-2 clearance", _V),
    )


def _homeostatic(p10: bool, tumour: float) -> dict[str, float]:
    """Tumour-free equilibrium (0, e·α/(f·β), 0, α/β, 0, 0) plus a tumour inoculum."""
    alpha, beta = (5.0e8, 8.0e-3) if p10 else (7.5e8, 1.2e-2)
    c_star = alpha / beta
    return {"T": tumour, "N": 2.08e-7 * c_star / 4.12e-2, "L": 0.0, "C": c_star, "M": 0.0, "I": 0.0}


_NOTES_P9 = (
    "Default state: the tumour-free homeostatic state C* = α/β, N* = e·C*/f (L = M = I = 0) "
    "plus an inoculum of 1e6 tumour cells."
)
_NOTES_P10 = (
    "Patient 10 differs from patient 9 in d, l, s, k, m, q, p, α, β.  These values come from "
    "a single public MATLAB replication (unverified); the CD8 death rate m = 9.12/day in "
    "particular is 45x patient 9's and removes tumour-specific CD8 cells within hours, so "
    "patient 10 is effectively without a CD8 response.  Treat this set as less certain than "
    "patient 9.  " + _NOTES_P9
)

MODEL = Model(
    name="depillis2006",
    title="de Pillis, Gu & Radunskaya 2006: chemo-immunotherapy, patient 9",
    reference="de Pillis LG, Gu W, Radunskaya AE. Mixed immunotherapy and chemotherapy of "
    "tumors: modeling, applications and biological interpretations. J Theor Biol "
    "2006;238:841-862.",
    states=_STATES,
    params=_params(p10=False),
    therapies=_THERAPIES,
    rhs=rhs,
    dose=dose,
    initial_state=_homeostatic(False, 1e6),
    notes=_NOTES_P9,
)

MODEL_P10 = Model(
    name="depillis2006_p10",
    title="de Pillis, Gu & Radunskaya 2006: chemo-immunotherapy, patient 10",
    reference=MODEL.reference,
    states=_STATES,
    params=_params(p10=True),
    therapies=_THERAPIES,
    rhs=rhs,
    dose=dose,
    initial_state=_homeostatic(True, 1e6),
    notes=_NOTES_P10,
)
