"""The Ray backend of the benchmark: each unit is a Ray task (optional extra ``oncogym[ray]``).

The units and what they write are those of :mod:`oncogym.agents.units` — the same
function (:func:`~oncogym.agents.units.run_unit`) runs in a Ray worker instead of a local
process, under the same loop (:func:`~oncogym.agents.units.run_pending`), so both backends
give the same files.  ``address`` (or ``RAY_ADDRESS``)
joins an existing cluster; otherwise a local Ray instance with ``workers`` CPUs starts and
is shut down afterwards.  A task whose worker process dies is retried (at most
:data:`MAX_RETRIES` times, Ray's own ``max_retries``); an exception raised by the unit
itself is not retried and is reported by unit name.  Every worker must see the same
``out_dir`` (a shared file system on a multi-node cluster).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from .units import BenchmarkConfig, Outcome, Unit, run_unit, worker_init

MAX_RETRIES = 3
"""Retries of a unit whose worker process died (node failure, OOM kill, SIGKILL)."""

INSTALL_HINT = 'backend "ray" needs Ray: pip install "oncogym[ray]"'


def require_ray() -> Any:
    """The ``ray`` module, or an :class:`ImportError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return ray


def init_ray(workers: int, address: str | None) -> bool:
    """Connect to ``address``/``RAY_ADDRESS`` or start a local instance; True if started."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    addr = address or os.environ.get("RAY_ADDRESS")
    quiet = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if addr:
        ray.init(address=addr, **quiet)
    else:
        ray.init(num_cpus=max(1, int(workers)), **quiet)
    return True


def _unit_task(unit: Unit, cfg: BenchmarkConfig) -> str:
    worker_init()
    return run_unit(unit, cfg)


def run_on_ray(
    units: Sequence[Unit],
    cfg: BenchmarkConfig,
    *,
    workers: int = 1,
    address: str | None = None,
    max_retries: int = MAX_RETRIES,
) -> Iterator[Outcome]:
    """Execute units as Ray tasks, yielding each as it finishes (a backend for
    :func:`~oncogym.agents.units.run_pending`).  A local instance started here is shut
    down when the last unit is done."""
    ray = require_ray()
    started = init_ray(workers, address)
    try:
        task = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(_unit_task)
        refs = {task.remote(u, cfg): u for u in units}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    yield refs[ref], ray.get(ref), None
                except Exception as exc:  # RayTaskError wraps the unit's own exception
                    cause = getattr(exc, "cause", None)
                    yield refs[ref], None, cause if isinstance(cause, BaseException) else exc
    finally:
        if started:
            ray.shutdown()
