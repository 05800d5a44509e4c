"""One shared Numba configuration for every kernel of the core.

``cache=True`` keeps compiled kernels on disk between runs; ``error_model="numpy"``
makes division by zero give inf/nan instead of raising (kernels never raise: they
return status codes).  ``parallel=True`` is used only by the outermost batch kernel.
"""

from __future__ import annotations

import numba as nb

_OPTIONS = {"cache": True, "error_model": "numpy", "nogil": True}

jit = nb.njit(**_OPTIONS)
"""Decorator for scalar/array kernels (serial)."""

jit_parallel = nb.njit(parallel=True, **_OPTIONS)
"""Decorator for the outermost batch kernel (``prange`` over patients)."""
