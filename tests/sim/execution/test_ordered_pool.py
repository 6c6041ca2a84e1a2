"""The ordered pool (sim/execution/ordered_pool.py): results in the tasks' order whatever order
the workers finish in, one process when one worker is asked for, one line for a bad count and for
a worker that dies."""

from __future__ import annotations

import os
import time

import pytest

from grid.errors import SolverError
from sim.errors import ConfigError
from sim.execution.ordered_pool import MAX_WORKERS, OrderedPool


def _slower_first(index: int, count: int) -> tuple[int, int]:
    """The first tasks sleep longest, so that the workers finish them last."""
    time.sleep(0.05 * (count - index))
    return index, os.getpid()


def _dies(index: int) -> int:
    if index == 1:
        os._exit(3)
    return index


def test_results_come_in_the_tasks_order_from_other_processes():
    tasks = [(i, 6) for i in range(6)]
    with OrderedPool(2, __name__) as pool:
        results = list(pool.map(_slower_first, tasks, "the tasks"))
        again = list(pool.map(_slower_first, tasks[:3], "the tasks"))   # a second round shares the pool
    assert [i for i, _ in results] == list(range(6)) and [i for i, _ in again] == [0, 1, 2]
    assert os.getpid() not in {pid for _, pid in results}
    assert len({pid for _, pid in results}) == 2


def test_one_worker_runs_in_this_process():
    with OrderedPool(1, __name__) as pool:
        assert [pid for _, pid in pool.map(_slower_first, [(0, 1), (1, 1)], "the tasks")] == [os.getpid()] * 2


@pytest.mark.parametrize("workers", [0, -1, True, 2.0, MAX_WORKERS + 1])
def test_a_bad_worker_count_is_one_line_naming_the_field(workers):
    with pytest.raises(ConfigError, match=rf"^--workers: give 1 to {MAX_WORKERS} worker processes$"):
        OrderedPool(workers, __name__)


def test_a_worker_that_dies_is_one_line_naming_the_fix():
    with pytest.raises(SolverError, match="a worker process died while solving the tasks .*fewer --workers"):
        with OrderedPool(2, __name__) as pool:
            list(pool.map(_dies, [(0,), (1,), (2,)], "the tasks"))
