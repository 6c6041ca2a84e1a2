"""A Dask cluster for the studies that take ``--scheduler``: the client (one rule for reaching a
scheduler, with a short wait and a one-line error) and the capacity study's BlockMap on it
(grid/capacity/rows/limits.py: each block of lines' scenario tails computed on a worker)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar
from uuid import uuid4

import numpy as np

from sim.errors import ConfigError

T = TypeVar("T")

# How long to wait for a Dask scheduler to answer (Dask's own default is 30 s).
CONNECT_TIMEOUT_S = 5


def connect(scheduler: str) -> Any:
    """A Dask client of the scheduler at ``scheduler``, or a one-line error within
    CONNECT_TIMEOUT_S seconds: called before anything is written, so that a wrong address leaves
    nothing behind."""
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError("--scheduler: dask.distributed is not installed; pip install 'distributed>=2024.1'") from None
    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except Exception as error:  # a refused or silent port, a malformed address, a peer that is not Dask
        reason = " ".join(str(error).split())[:120] or type(error).__name__
        raise ConfigError(f"--scheduler: cannot reach a Dask scheduler at {scheduler!r} ({reason}; the wait is "
                          f"{CONNECT_TIMEOUT_S} s at most); give its address as tcp://host:port, or drop --scheduler to "
                          "run locally") from None


class ClusterBlocks:
    """A BlockMap (grid/capacity/rows/limits.py) on a Dask client: the shared arguments (the network,
    the samples) go to every worker once, each item is one task, and the results come back in the
    items' order. A worker that fails fails the study with its error."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __call__(self, function: Callable[..., T], shared: Mapping[str, Any], items: Sequence[tuple]) -> list[T]:
        if not items:
            return []
        from distributed import Future

        # Fresh keys each call (hash=False): a value scattered again under its content's key while the
        # previous call's copy is being released is lost to the new tasks.
        sent = {name: self.client.scatter(value, broadcast=True, hash=False) for name, value in shared.items()}
        # An item's large arrays (a chunk of scenarios is 280 MB on ACTIVSg70k) go ahead of their
        # task, to the worker that runs it, instead of inside the task graph, which the scheduler
        # would hold and warn about.
        placed = [tuple(self.client.scatter(part, hash=False) if _large(part) else part for part in item)
                  for item in items]
        # Keyed by the block function's name, as the scheduler would name a task of it alone.
        futures = [self.client.submit(aligned_call, function, *item, **sent, key=f"{function.__name__}-{uuid4().hex}")
                   for item in placed]
        try:
            return self.client.gather(futures)
        finally:
            for future in futures:
                future.release()
            for future in [*sent.values(), *(part for item in placed for part in item if isinstance(part, Future))]:
                future.release()


def aligned_call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` on a worker, each array argument first made C-contiguous and
    aligned. Dask hands a task its arrays in whatever place they were received, often not even at
    a multiple of 8 bytes; numpy then runs some reductions through buffers, in another order, and
    a sum comes out in other bits than in the study's process (on ACTIVSg70k the flexible
    capacities moved by 2.3e-6 MW). A copy where needed gives the bits of the same call here."""
    def ready(value: Any) -> Any:
        return np.require(value, requirements=["C", "A"]) if isinstance(value, np.ndarray) else value

    return function(*(ready(value) for value in args), **{name: ready(value) for name, value in kwargs.items()})


# Item arrays larger than this are scattered before their task rather than sent inside it.
_LARGE_ITEM_BYTES = 1 << 20


def _large(part: object) -> bool:
    return isinstance(part, np.ndarray) and part.nbytes > _LARGE_ITEM_BYTES


@contextmanager
def cluster_blocks(scheduler: str | None) -> Iterator[ClusterBlocks | None]:
    """The BlockMap of the cluster at ``scheduler`` while the study runs (None: this process),
    and the client closed after."""
    if scheduler is None:
        yield None
        return
    client = connect(scheduler)
    try:
        yield ClusterBlocks(client)
    finally:
        client.close()
