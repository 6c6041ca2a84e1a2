"""Shared test policy: GLPK is optional on a developer's machine and required in CI; each test
module runs on one pytest-xdist worker, the longest first."""

from __future__ import annotations

import gc
import os
import shutil
from pathlib import Path

import pytest
import tomli_w

# One BLAS thread per process. pytest-xdist already runs one worker per core; OpenBLAS's own
# threads on top of that spin for cores that are busy, and the small matrices of the tests (the
# tie-break's L-BFGS-B, 118-bus inverses) gain nothing from them (docs/testing.md#fast). Set here,
# before numpy is first imported, so that the workers and every process a test starts inherit it;
# a caller's value stays.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# Compiled bytecode for the suite's processes, even where the shell sets PYTHONDONTWRITEBYTECODE
# (as the reference machine's does). Without it each pytest-xdist worker compiles every test
# module and the checkout's packages again (collection: 7.4 s of CPU instead of 4.2 s), and so
# does each of the ~60 processes the suite starts (0.25 s each for sim, grid, agents and
# mechanisms): about 20 s of CPU per run (docs/testing.md#fast). The files go to the usual
# __pycache__ folders, which .gitignore lists. Set before the workers start, so they inherit it.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def write_toml(folder: Path, data: dict, name: str = "config.toml") -> Path:
    """A config written as TOML in ``folder``; its path."""
    path = folder / name
    path.write_text(tomli_w.dumps(data))
    return path


def need_glpk() -> None:
    """Skip when glpsol is missing, unless CI asked for the cross-check (DCMARKET_REQUIRE_GLPK=1)."""
    if shutil.which("glpsol") is not None:
        return
    if os.environ.get("DCMARKET_REQUIRE_GLPK"):
        pytest.fail("glpsol is not installed but DCMARKET_REQUIRE_GLPK is set; apt-get install glpk-utils")
    pytest.skip("glpsol not installed; apt-get install glpk-utils to cross-check HiGHS against GLPK")


@pytest.fixture(autouse=True)
def _glpk_for_glpk_tests(request: pytest.FixtureRequest) -> None:
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("solver") == "glpk":
        need_glpk()


# Each test module runs on one xdist worker, whole: its module fixtures (a study run, the
# reference sweep, the browser, the docs site, one read of the source tree) are made once, and so
# is what the product caches per process for its tests (a case read, its AC model, a factorised
# network). Spread test by test, both workers made many of them: 4 % more CPU in all, measured
# with both versions of the suite run at once (docs/testing.md#fast).
#
# The longest modules go first, longest first (their wall seconds in one run of the suite on the
# reference machine, 25 to 3 s); every other module follows, those with a slow test first. A
# worker that drew a long module last would leave the other idle at the end.
LONGEST_MODULES = (
    "tests/sim/studies/test_sweep.py",  # with the Dask cluster's tests, below
    "tests/experiments/test_scripts.py",
    "tests/sim/studies/price/test_study.py",
    "tests/sim/report/test_browser.py",
    "tests/experiments/test_notebooks.py",
    "tests/grid/feeder/test_three_phase.py",
    "tests/sim/test_api.py",
    "tests/sim/studies/test_capacity.py",
    "tests/sim/studies/test_plan.py",
    "tests/grid/capacity/rows/test_outages.py",
    "tests/grid/capacity/test_study.py",
    "tests/grid/network/test_change_tables.py",
    "tests/sim/output/test_files.py",
    "tests/sim/studies/test_auction.py",
    "tests/sim/report/test_figures.py",
    "tests/agents/test_aggregator.py",
)

# The tests that run on the suite's one Dask LocalCluster (the dask_cluster fixture), by node-id
# prefix. They join the group of the first module above (test_sweep.py, which holds one of
# them), so that one worker starts the cluster once: each LocalCluster start costs its worker
# processes' imports (about 3 s of CPU each), and four tests started six of them.
DASK_CLUSTER_TESTS = (
    "tests/sim/studies/test_sweep.py::test_a_dask_local_cluster_gives_the_same_table",
    "tests/sim/execution/test_cluster.py::test_a_two_worker_cluster_gives_the_capacities_of_the_study_in_process",
    "tests/experiments/test_scripts.py::test_a_dask_benchmark_runs_on_the_suites_cluster",
    "tests/grid/capacity/test_screened.py::test_a_two_worker_cluster_gives_the_same_bits",
    "tests/sim/studies/test_plan.py::test_a_plan_on_a_dask_cluster_writes_the_local_files",
)
DASK_CLUSTER_GROUP = LONGEST_MODULES[0]


def xdist_group(nodeid: str) -> str:
    """The group that pytest-xdist keeps on one worker: the test's module, or for the Dask
    cluster's tests the first module's group."""
    if nodeid.startswith(DASK_CLUSTER_TESTS):
        return DASK_CLUSTER_GROUP
    return nodeid.split("::", 1)[0]


class _SuiteCluster:
    """The suite's one Dask LocalCluster: started by the first test that takes it and closed after
    the last (counted at collection), not at the end of the session. Idle, its worker processes
    and the scheduler still cost about 12 % of a core (3.7 s of CPU in 30 s, measured), which a
    cluster kept to the end would take from the other tests."""

    def __init__(self) -> None:
        self.cluster = None
        self.remaining = 0

    def take(self):
        if self.cluster is None:
            from distributed import LocalCluster

            # Two worker processes of one thread; no dashboard, the scheduler's own HTTP server on
            # a free port, not 8787 (tests run side by side).
            self.cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        return self.cluster

    def release(self) -> None:
        self.remaining -= 1
        if self.remaining <= 0:
            self.close()

    def close(self) -> None:
        cluster, self.cluster = self.cluster, None
        if cluster is not None:
            cluster.close()


_CLUSTER = _SuiteCluster()


@pytest.fixture
def dask_cluster(request: pytest.FixtureRequest):
    """The suite's Dask LocalCluster (two worker processes), started once per pytest-xdist worker.
    Only the tests in DASK_CLUSTER_TESTS may take it: any other would start a second cluster on
    another worker, or find it closed."""
    if not request.node.nodeid.startswith(DASK_CLUSTER_TESTS):
        pytest.fail(f"{request.node.nodeid} takes dask_cluster: add it to DASK_CLUSTER_TESTS in tests/conftest.py")
    cluster = _CLUSTER.take()
    request.addfinalizer(_CLUSTER.release)
    return cluster


def pytest_sessionfinish(session) -> None:
    _CLUSTER.close()  # when a test that would have taken it last was skipped


def pytest_collection_modifyitems(config, items):
    """Longest work first: the longest modules (longest first), then the other modules with a slow
    test, then the rest. pytest-xdist hands out each module whole, where its first test falls in
    this order (a listed module's tests keep their order; another's slow tests come first).
    Started first, the long modules overlap and the short ones fill the gaps at the end."""
    rank = {module: position for position, module in enumerate(LONGEST_MODULES)}

    def key(item) -> tuple[int, int, int]:
        group = xdist_group(item.nodeid)
        if group in rank:  # in the Dask cluster's group, its tests first: it closes after the last
            return (0, rank[group], 0 if item.nodeid.startswith(DASK_CLUSTER_TESTS) else 1)
        return (1, 0, 0) if item.get_closest_marker("slow") else (2, 0, 0)

    items.sort(key=key)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` (pyproject's addopts) with the groups above. pytest-xdist marks a group
    by a suffix on the node id, which pytest 9.2's structured node ids drop without a word
    (pytest-xdist issue 1386), so the groups are named here, by module, for its scheduler."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModulesLongestFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid)

    # The groups in the order pytest_collection_modifyitems gave (longest first): this scheduler
    # would otherwise sort them by their number of tests, a poor measure of their time.
    config.option.loadscopereorder = False
    return ModulesLongestFirst(config, log)


def pytest_collection_finish(session) -> None:
    """Garbage collection sized for a test worker rather than for a study. A worker holds every
    library the suite imports and every test module for its whole life, and Python's collector
    walked all of it again at each full collection: about 20 s of the run's CPU in all, 0.2 to
    0.4 s a time. Frozen after collection, those objects are out of its reach (they never die),
    and collections start after 10,000 new container objects instead of 700, so that a test's
    short-lived models are collected in fewer, larger passes: about 6 s in all, with the same
    peak memory per worker (docs/testing.md#fast). The processes the tests start keep Python's
    own settings, as a user's do.

    Also counts the tests that take the Dask cluster, once deselection is done, so that the
    cluster closes after the last of them."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    _CLUSTER.remaining = sum(1 for item in session.items if item.nodeid.startswith(DASK_CLUSTER_TESTS))
