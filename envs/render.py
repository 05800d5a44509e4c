"""Rendering of a single-patient episode: a text line per step, or a matplotlib figure."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import functional as Fn
from .task import EnvParams

_IMMUNE = ("L", "N", "R", "CARe")
"""Immune populations plotted where the model has them (CTL, NK, Tregs, CAR-T)."""


def snapshot(params: EnvParams, patients: Fn.Patients, b: int, reward: float) -> dict[str, Any]:
    """What the renderers need of one step, copied out of the patients' state."""
    names = params.model.state_names
    s, last = patients.view, patients.last
    return {
        "day": float(s.day[b]),
        "cells": float(Fn.tumour_cells(s.y[b : b + 1], params.tumour_index)[0]),
        "scan_log10": float(s.scan_log10_cells[b]),
        "scan_day": float(s.scan_day[b]),
        "immune": {n: float(s.y[b, names.index(n)]) for n in _IMMUNE if n in names},
        "grades": s.interval_grade[b].copy(),
        "doses": last.delivered[b].copy(),
        "blocked": last.blocked[b].copy(),
        "recist": int(s.recist[b]),
        "reward": float(reward),
        "alive": bool(s.alive[b]),
    }


def ansi_lines(params: EnvParams, history: list[dict[str, Any]]) -> str:
    """One text line per step so far."""
    from oncogym.clinical import RESPONSE_NAMES

    lines = []
    for h in history:
        doses = ", ".join(
            f"{t} {d:.3g}" + (" (blocked)" if bl else "")
            for t, d, bl in zip(params.therapies, h["doses"], h["blocked"], strict=True)
            if d > 0 or bl
        )
        tox = " ".join(
            f"{c[:4]}{g}" for c, g in zip(params.tox_categories, h["grades"], strict=True) if g
        )
        lines.append(
            f"day {h['day']:6.1f} | tumour {h['cells']:9.3g} cells | scan 10^{h['scan_log10']:.2f}"
            f" (day {h['scan_day']:.0f}, {RESPONSE_NAMES[h['recist']]}) | tox {tox or '-'}"
            f" | doses {doses or '-'} | reward {h['reward']:+.4f}"
            + ("" if h["alive"] else " | DEAD")
        )
    return "\n".join(lines) + "\n"


def rgb_array(params: EnvParams, history: list[dict[str, Any]]) -> np.ndarray:
    """An RGB image (H × W × 3, uint8): burden, immune cells, toxicity and doses so far."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    days = np.array([h["day"] for h in history])
    fig = Figure(figsize=(8, 7), dpi=80)
    canvas = FigureCanvasAgg(fig)
    ax = fig.subplots(4, 1, sharex=True)
    ax[0].semilogy(days, [max(h["cells"], 1.0) for h in history], label="tumour (true)")
    ax[0].semilogy(days, [10 ** h["scan_log10"] for h in history], ".", label="last scan")
    ax[0].axhline(params.lethal_cells, color="k", lw=0.5, ls="--")
    ax[0].set_ylabel("cells")
    ax[0].legend(loc="upper left", fontsize=7)
    for name in history[0]["immune"] if history else ():
        ax[1].semilogy(days, [max(h["immune"][name], 1.0) for h in history], label=name)
    ax[1].set_ylabel("immune cells")
    if history and history[0]["immune"]:
        ax[1].legend(loc="upper left", fontsize=7)
    for i, c in enumerate(params.tox_categories):
        ax[2].step(days, [h["grades"][i] for h in history], where="post", label=c)
    ax[2].set_ylim(-0.2, 5.2)
    ax[2].set_ylabel("grade")
    if params.tox_categories:
        ax[2].legend(loc="upper left", fontsize=7)
    for k, t in enumerate(params.therapies):
        d = np.array([h["doses"][k] for h in history]) / params.max_level[k]
        ax[3].bar(days + 0.8 * k, d, width=0.8, label=t)
    ax[3].set_ylabel("dose / max")
    ax[3].set_xlabel("day")
    ax[3].legend(loc="upper left", fontsize=7)
    fig.suptitle(params.title, fontsize=9)
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    return image
