"""Threading of Numba's parallel kernels beside torch (shared by training, evaluation, CLI)."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def prefer_workqueue_threading() -> None:
    """Run the env's parallel Numba kernel on Numba's own thread pool, not OpenMP.

    Numba picks its OpenMP layer by default, and two OpenMP runtimes (Numba's and torch's)
    spin-waiting on a machine with few cores starve each other: Melanoma PPO ran at
    400-8000 steps/s from one identical run to the next on two cores, steadily ~5000 with
    the workqueue layer (or with ``OMP_WAIT_POLICY=PASSIVE`` set before torch loads).  Only
    possible before the process's first parallel kernel, and only when the user has not
    chosen a layer (``NUMBA_THREADING_LAYER``).
    """
    if os.environ.get("NUMBA_THREADING_LAYER"):
        return
    try:
        import numba
        from numba.np.ufunc import parallel
    except ImportError:  # pragma: no cover - numba is a dependency
        return
    if not getattr(parallel, "_is_initialized", True):
        numba.config.THREADING_LAYER = "workqueue"
    elif numba.threading_layer() == "omp":
        # debug, not info: only a process that ran a parallel kernel before (a test session,
        # a notebook) gets here, and the CLI's one-line errors must stay one line
        log.debug("numba runs on OpenMP beside torch; set NUMBA_THREADING_LAYER=workqueue")
