"""Independent plain-Python right-hand sides and a SciPy reference solver.

Written from the published equations (docs/model/equations.md), separately from the
compiled kernels, so a transcription error in either shows up as a disagreement.
Parameters are read by name from dicts.  ``solve_reference`` integrates with
``scipy.integrate.solve_ivp`` split at the same breakpoints as the core (dose
events and infusion edges), reporting the state before doses at each output
time.  The benchmarks use the same functions as the "plain Python RHS" peers use.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.integrate import solve_ivp


def kuznetsov1994(t, y, p, u):
    E, T = y
    return [
        p["s"] + p["p"] * E * T / (p["g"] + T) - p["m"] * E * T - p["d"] * E,
        p["a"] * T * (1 - p["b"] * T) - p["n"] * E * T,
    ]


def kirschner_panetta1998(t, y, p, u):
    E, T, IL = y
    return [
        p["c"] * T - p["mu2"] * E + p["p1"] * E * IL / (p["g1"] + IL) + u["aci"],
        p["r2"] * T * (1 - p["b"] * T) - p["a"] * E * T / (p["g2"] + T),
        p["p2"] * E * T / (p["g3"] + T) - p["mu3"] * IL + u["il2"],
    ]


def depillis2006(t, y, p, u):
    T, N, L, C, M, I = y
    # D = d·(L/T)^l/(s + (L/T)^l), in the overflow-free form d/(1 + s·(T/L)^l)
    # (an implicit solver may undershoot a tiny T below 0: the power needs T >= 0)
    D = 0.0 if L <= 0 else p["d"] / (1 + p["s"] * (max(T, 0.0) / L) ** p["l"])
    kill = 1 - math.exp(-M)
    DT = D * T
    return [
        p["a"] * T * (1 - p["b"] * T) - p["c"] * N * T - DT - p["KT"] * kill * T,
        p["e"] * C
        - p["f"] * N
        + p["g"] * N * T**2 / (p["h"] + T**2)
        - p["p"] * N * T
        - p["KN"] * kill * N,
        -p["m"] * L
        + p["j"] * L * DT**2 / (p["k"] + DT**2)
        - p["q"] * L * T
        + (p["r1"] * N + p["r2"] * C) * T
        - p["u"] * N * L**2
        - p["KL"] * kill * L
        + p["pI"] * L * I / (p["gI"] + I)
        + u["til"],
        p["alpha"] - p["beta"] * C - p["KC"] * kill * C,
        -p["gamma"] * M + u["chemo"],
        -p["muI"] * I + u["il2"],
    ]


depillis2006_p10 = depillis2006


def cartmath2021(t, y, p, u):
    CT, CM, T = y
    return [
        (p["phi"] - p["rho"]) * CT + p["theta"] * T * CM - p["alpha"] * T * CT + u["car_t"],
        p["eps"] * CT - p["theta"] * T * CM - p["mu"] * CM,
        p["r"] * T * (1 - p["b"] * T) - p["gamma"] * T * CT,
    ]


def kimmel2021(t, y, p, u):
    N, C, B = y
    X = N + C
    rC = p["rhoC"] + p["b"] * (X - p["KN"]) ** 2 / (p["a"] * X**2 + (X - p["KN"]) ** 2)
    return [
        -p["rN"] * N * math.log(X / p["KN"]),
        -rC * C * math.log(X / p["KC"]) + u["car_t"],
        p["rB"] * B - p["gammaB"] * B * C / (p["kB"] + C),
    ]


def friberg2002(t, y, p, u):
    A1, A2, A3, Prol, Tr1, Tr2, Tr3, Circ = y
    cp = A1 / p["V1"] / p["MW"]
    edrug = p["slope"] * cp
    ktr = 4 / p["MTT"]
    return [
        -(p["k10"] + p["k12"] + p["k13"]) * A1 + p["k21"] * A2 + p["k31"] * A3 + u["docetaxel"],
        p["k12"] * A1 - p["k21"] * A2,
        p["k13"] * A1 - p["k31"] * A3,
        ktr * Prol * (1 - edrug) * (p["Circ0"] / Circ) ** p["gamma"] - ktr * Prol,
        ktr * (Prol - Tr1),
        ktr * (Tr1 - Tr2),
        ktr * (Tr2 - Tr3),
        ktr * (Tr3 - Circ),
    ]


# where a bolus of each therapy lands (state name)
BOLUS_TARGET = {
    "kirschner_panetta1998": {"aci": "E", "il2": "IL"},
    "depillis2006": {"chemo": "M", "il2": "I", "til": "L"},
    "depillis2006_p10": {"chemo": "M", "il2": "I", "til": "L"},
    "cartmath2021": {"car_t": "CT"},
    "kimmel2021": {"car_t": "C"},
    "friberg2002": {"docetaxel": "A1"},
    "kuznetsov1994": {},
}

RHS = {
    name: globals()[name]
    for name in (
        "kuznetsov1994",
        "kirschner_panetta1998",
        "depillis2006",
        "depillis2006_p10",
        "cartmath2021",
        "kimmel2021",
        "friberg2002",
    )
}


def solve_reference(
    model,
    days,
    *,
    params=None,
    y0=None,
    schedule=(),
    dt=1.0,
    method="Radau",
    rtol=1e-10,
    atol=1e-10,
    rhs=None,
):
    """Reference trajectory with SciPy, split at every dose event and infusion edge.

    ``model`` is a :class:`oncogym.models.Model` (used for names and defaults only).
    Returns ``(t, y)`` with ``y`` of shape (n_times, n_states).
    """
    names = model.state_names
    p = model.default_params()
    p.update(params or {})
    state = model.default_state()
    state.update(y0 or {})
    y = np.array([state[n] for n in names], dtype=float)
    f = rhs or RHS[model.name]
    n_out = math.ceil(days / dt - 1e-9)
    t_out = np.arange(n_out + 1) * dt
    t_out[-1] = days
    events = sorted((s, th, a) for th, s, a, d in schedule if d == 0)
    infusions = [(s, s + d, th, a / d) for th, s, a, d in schedule if d > 0]
    edges = {0.0, float(days)}
    edges.update(e[0] for e in events)
    for a, b, _, _ in infusions:
        edges.update((a, b))
    edges = sorted(e for e in edges if 0 <= e <= days)
    out = np.empty((len(t_out), len(names)))
    out[0] = y
    therapies = model.therapy_names
    for t0, t1 in itertools.pairwise(edges):
        for s, th, a in events:
            if s == t0:
                y[names.index(BOLUS_TARGET[model.name][th])] += a
        u = dict.fromkeys(therapies, 0.0)
        for a, b, th, r in infusions:
            if a <= t0 < b:
                u[th] += r
        mask = (t_out > t0) & (t_out <= t1)
        t_eval = np.union1d(t_out[mask], [t1])
        sol = solve_ivp(
            lambda t, yy, u=u: f(t, yy, p, u),
            (t0, t1),
            y,
            method=method,
            rtol=rtol,
            atol=atol,
            t_eval=t_eval,
        )
        if not sol.success:
            raise RuntimeError(f"reference solver failed: {sol.message}")
        out[mask] = sol.y.T[np.searchsorted(t_eval, t_out[mask])]
        y = sol.y[:, -1].copy()
    return t_out, out
