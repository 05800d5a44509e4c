"""One shared Numba configuration for every kernel of the core.

``cache=True`` keeps compiled kernels on disk between runs; ``error_model="numpy"``
makes division by zero give inf/nan instead of raising (kernels never raise: they
return status codes).  ``parallel=True`` is used only by the outermost batch kernel.

Model kernels reach the integrator as first-class function pointers
(:func:`as_rhs_pointer`, :func:`as_dose_pointer`: Numba ``cfunc`` objects with one
fixed signature), not as dispatcher arguments.  Then the integrator is compiled once
for every model and its on-disk cache holds one entry; Numba's cache cannot store
functions specialised on dispatcher arguments reliably (its index keys hold weak
references that die between processes).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numba as nb
from numba import types


def _configure_cache() -> None:
    """Key Numba's on-disk cache by a hash of the whole package's source.

    Numba invalidates a cached kernel only when *its own* file changes, not when a
    kernel it calls from another module does (the oncoimmune model calls de Pillis's
    and the radiotherapy kernels).  Keying the cache folder by the source of every
    module makes any edit recompile everything, so a stale kernel can never run.
    A user-set ``NUMBA_CACHE_DIR`` is respected.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    nb.config.CACHE_DIR = str(base / "oncogym" / f"numba-{digest.hexdigest()[:16]}")


_configure_cache()

CACHE_IS_COLD = not Path(nb.config.CACHE_DIR).is_dir()
"""True when this version's kernels have not been compiled on this machine yet (the
first simulation then compiles them: about a minute)."""

_OPTIONS = {"cache": True, "error_model": "numpy", "nogil": True}

jit = nb.njit(**_OPTIONS)
"""Decorator for scalar/array kernels (serial)."""

jit_parallel = nb.njit(parallel=True, **_OPTIONS)
"""Decorator for the outermost batch kernel (``prange`` over patients)."""

jit_inline = nb.njit(inline="always", **_OPTIONS)
"""Decorator for helpers that take whole records and run in an inner loop: Numba inlines
them into their caller, so a record (a struct of ~100 arrays, passed by value) is not
copied at every call."""

_VEC = types.float64[::1]
RHS_SIGNATURE = types.void(types.float64, _VEC, _VEC, _VEC, _VEC)
"""``rhs(t, y, p, u, dydt)``"""
DOSE_SIGNATURE = types.void(types.int64, types.float64, _VEC, _VEC)
"""``dose(k, amount, y, p)``"""


def _pointer(fn: Callable, signature) -> Callable:
    py_func = getattr(fn, "py_func", fn)
    if nb.config.DISABLE_JIT:
        return py_func  # interpreted run: the integrator calls the Python function
    return nb.cfunc(signature, cache=True, error_model="numpy")(py_func)


def as_rhs_pointer(fn: Callable) -> Callable:
    """Compile a model's ``rhs(t, y, p, u, dydt)`` as a first-class function."""
    return _pointer(fn, RHS_SIGNATURE)


def as_dose_pointer(fn: Callable) -> Callable:
    """Compile a model's ``dose(k, amount, y, p)`` as a first-class function."""
    return _pointer(fn, DOSE_SIGNATURE)
