"""Independent tasks of one study on a pool of spawned worker processes, their results in the
order the tasks were given: what lets `dcmarket price` solve the hours of a day on every core
and still print and write exactly what one process would."""

from __future__ import annotations

from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any, Callable, Iterator, Sequence

from grid.errors import SolverError
from sim.errors import ConfigError
from sim.execution.pool_worker import warm_up

# The most worker processes on one machine (a sweep's, a study's): each holds its own solver and models.
MAX_WORKERS = 1024


def check_workers(workers: object) -> int:
    """A worker count, refused in one line unless a whole number from 1 to MAX_WORKERS."""
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers: give 1 to {MAX_WORKERS} worker processes")
    return workers


class OrderedPool:
    """``map`` runs a picklable function on argument tuples: in this process with one worker,
    else on ``workers`` spawned processes (each warmed up with ``warm``, a module to import once),
    yielding results in the tasks' order. The pool starts at the first ``map`` with more than
    one task and ends with the ``with`` block, so rounds of tasks share it."""

    def __init__(self, workers: int, warm: str) -> None:
        self.workers = check_workers(workers)
        self.warm = warm
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> OrderedPool:
        return self

    def __exit__(self, *_: object) -> None:
        if self._pool is not None:
            # Done or interrupted: drop the tasks not started and leave no worker behind.
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(self, work: Callable[..., Any], tasks: Sequence[tuple], what: str) -> Iterator[Any]:
        """``work(*task)`` for each task, in order; ``what`` names the tasks in the one-line error
        a dead worker gives (the machine ran out of memory, most likely)."""
        if self.workers == 1 or len(tasks) <= 1:
            for task in tasks:
                yield work(*task)
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=min(self.workers, len(tasks)), mp_context=get_context("spawn"),
                                             initializer=warm_up, initargs=(self.warm,))
        futures: list[Future] = [self._pool.submit(work, *task) for task in tasks]
        try:
            for future in futures:
                yield future.result()
        except BrokenProcessPool:
            raise SolverError(f"a worker process died while solving {what} (out of memory?); "
                             "run with fewer --workers") from None
        finally:
            for future in futures:
                future.cancel()
