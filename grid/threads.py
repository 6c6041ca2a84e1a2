"""How many BLAS threads grid/'s numeric work may start.

OpenBLAS starts one thread per core for every dense product, and a thread that finds its core
busy spins instead of yielding. Beside our own threads (an LP solved in HiGHS while the scenario
tails are computed) or other work on the machine, that made the capacity study and its risk check
slower, not faster, on the 2-core reference machine (docs/models/capacity.md#blas-threads).
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from functools import lru_cache, wraps
from typing import Callable, TypeVar

from threadpoolctl import ThreadpoolController

Result = TypeVar("Result")


def usable_cores() -> int:
    """The cores this process may run on (its affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def blas_threads_beside(busy: int) -> int:
    """BLAS threads for dense products that run beside ``busy`` threads of our own: the usable
    cores less those, at least one."""
    return max(1, usable_cores() - busy)


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    """The BLAS libraries numpy and scipy load, found once: a fresh search takes about 1 ms, a
    limit through the kept controller 0.01 ms. Both are imported first, so that neither library
    is missed whoever asks first."""
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401

    return ThreadpoolController()


def limit_blas(threads: int) -> AbstractContextManager:
    """A context with at most ``threads`` BLAS threads; the caller's setting comes back after."""
    return _controller().limit(limits=threads, user_api="blas")


def one_blas_thread() -> AbstractContextManager:
    """For BLAS calls on small blocks (SuperLU's supernodes, L-BFGS-B's vectors), where a thread's
    start and hand-over cost more than the work it takes."""
    return limit_blas(1)


def with_blas_threads_beside(busy: int) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    """Decorator: run the function with ``blas_threads_beside(busy)`` BLAS threads."""

    def decorate(function: Callable[..., Result]) -> Callable[..., Result]:
        @wraps(function)
        def limited(*args, **kwargs) -> Result:
            with limit_blas(blas_threads_beside(busy)):
                return function(*args, **kwargs)

        return limited

    return decorate
