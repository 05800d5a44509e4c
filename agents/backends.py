"""Where benchmark units run: this process, a local process pool, or a Ray cluster.

:func:`run_units` is the entry point of the benchmark and of ``oncogym train --seeds``: it
runs :func:`oncogym.agents.units.run_pending` (check the finished units' keys, skip
finished units, collect failures by unit name) with the backend's way of executing units
— :func:`~oncogym.agents.units.run_here` for one worker, :func:`run_in_pool` for several
(processes started with ``spawn``, one thread each), or
:func:`oncogym.agents.ray_backend.run_on_ray`.  Every backend runs the same
:func:`~oncogym.agents.units.run_unit`, so all write the same files.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

from . import units as U
from .units import BenchmarkConfig, OnDone, Outcome, Unit

BACKENDS = ("local", "ray")


def run_in_pool(units: Sequence[Unit], cfg: BenchmarkConfig, workers: int) -> Iterator[Outcome]:
    """Execute units in a pool of ``workers`` processes, yielding each as it finishes."""
    ctx = multiprocessing.get_context("spawn")  # no fork after Numba/torch started threads
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=U.worker_init
    ) as pool:
        futures = {pool.submit(U.run_unit, u, cfg): u for u in units}
        for fut in as_completed(futures):
            try:
                yield futures[fut], fut.result(), None
            except Exception as exc:
                yield futures[fut], None, exc


def run_units(
    units: Sequence[Unit],
    cfg: BenchmarkConfig,
    *,
    backend: str = "local",
    workers: int = 1,
    address: str | None = None,
    on_done: OnDone | None = None,
    force: bool = False,
) -> dict[str, BaseException]:
    """Run units (finished ones skipped) on a backend; failures by unit key.

    :param backend: ``"local"`` (this process with one worker, else a process pool) or
        ``"ray"`` (Ray tasks; ``address`` or ``RAY_ADDRESS`` joins a cluster)
    :param workers: local processes, or the CPUs of a local Ray instance
    :param force: recompute finished units whose key differs instead of refusing them
        (:func:`~oncogym.agents.units.check_units`)
    :raises ~oncogym.agents.units.StaleResultError: finished units computed with other
        settings, before any unit runs (unless ``force``)
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: unknown {backend!r}; allowed: {', '.join(BACKENDS)}")
    if backend == "ray":
        from .ray_backend import run_on_ray

        def execute(todo: list[Unit]) -> Iterator[Outcome]:
            return run_on_ray(todo, cfg, workers=workers, address=address)

    elif workers <= 1:

        def execute(todo: list[Unit]) -> Iterator[Outcome]:
            return U.run_here(todo, cfg)

    else:

        def execute(todo: list[Unit]) -> Iterator[Outcome]:
            return run_in_pool(todo, cfg, workers)

    return U.run_pending(units, cfg, execute, on_done, force=force)
