"""Linear-quadratic (LQ) radiobiology: surviving fraction, BED, EQD2, TCP.

The standard LQ model (e.g. Fowler, Br J Radiol 1989;62:679–694).  With full repair
between fractions, ``n`` fractions of ``d`` Gy leave a surviving fraction
``exp(−n·(α·d + β·d²))`` with ``β = α/(α/β)``; ``BED = n·d·(1 + d/(α/β))`` and
``EQD2 = BED/(1 + 2/(α/β))``.  Poisson tumour control probability ``TCP = exp(−N0·SF)``.

The ``lq_*`` functions are compiled kernels for the dynamics core; the others are
the validated public API (scalars or NumPy arrays).
"""

from __future__ import annotations

import numpy as np

from oncogym._jit import jit


@jit
def lq_log_survival(dose_gy, alpha, alpha_beta):
    """ln SF of one acute fraction: −(α·d + (α/(α/β))·d²) (kernel, no checks)."""
    return -(alpha * dose_gy + (alpha / alpha_beta) * dose_gy * dose_gy)


@jit
def lq_bed(dose_gy, alpha_beta):
    """BED of one fraction of ``dose_gy`` (kernel, no checks)."""
    return dose_gy * (1.0 + dose_gy / alpha_beta)


def _check(name: str, value, *, positive: bool = False) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    if positive and np.any(arr <= 0):
        raise ValueError(f"{name}: must be > 0, got {value!r}")
    if not positive and np.any(arr < 0):
        raise ValueError(f"{name}: must be >= 0, got {value!r}")
    return arr


def _out(x: np.ndarray):
    return float(x) if x.ndim == 0 else x


def surviving_fraction(dose_gy, alpha, alpha_beta, n_fractions=1):
    """Surviving fraction after ``n_fractions`` fractions of ``dose_gy`` Gy each.

    :param dose_gy: dose per fraction (Gy, >= 0)
    :param alpha: α (1/Gy, >= 0)
    :param alpha_beta: α/β ratio (Gy, > 0)
    :param n_fractions: number of fractions (>= 0), full repair in between
    """
    d = _check("dose_gy", dose_gy)
    a = _check("alpha", alpha)
    ab = _check("alpha_beta", alpha_beta, positive=True)
    n = _check("n_fractions", n_fractions)
    return _out(np.exp(-n * (a * d + (a / ab) * d * d)))


def bed(dose_gy, n_fractions, alpha_beta):
    """Biologically effective dose (Gy_{α/β}) of ``n_fractions`` × ``dose_gy``."""
    d = _check("dose_gy", dose_gy)
    n = _check("n_fractions", n_fractions)
    ab = _check("alpha_beta", alpha_beta, positive=True)
    return _out(n * d * (1.0 + d / ab))


def eqd2(dose_gy, n_fractions, alpha_beta):
    """Equivalent dose in 2-Gy fractions (Gy) of ``n_fractions`` × ``dose_gy``."""
    ab = _check("alpha_beta", alpha_beta, positive=True)
    return _out(np.asarray(bed(dose_gy, n_fractions, alpha_beta)) / (1.0 + 2.0 / ab))


def tumour_control_probability(n_clonogens, surviving):
    """Poisson TCP = exp(−N0·SF)."""
    n0 = _check("n_clonogens", n_clonogens)
    sf = _check("surviving", surviving)
    if np.any(sf > 1):
        raise ValueError(f"surviving: must be in [0, 1], got {surviving!r}")
    return _out(np.exp(-n0 * sf))


__all__ = [
    "bed",
    "eqd2",
    "lq_bed",
    "lq_log_survival",
    "surviving_fraction",
    "tumour_control_probability",
]
