"""Shared test policy: GLPK is optional on a developer's machine and required in CI; the modules
whose tests share an expensive fixture each stay on one pytest-xdist worker."""

from __future__ import annotations

import os
import shutil

import pytest

# One BLAS thread per process. pytest-xdist already runs one worker per core; OpenBLAS's own
# threads on top of that spin for cores that are busy, and the small matrices of the tests (the
# tie-break's L-BFGS-B, 118-bus inverses) gain nothing from them (docs/testing.md#fast). Set here,
# before numpy is first imported, so that the workers and every process a test starts inherit it;
# a caller's value stays.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


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


# Test modules whose tests share an expensive module fixture (a study run, the reference sweep,
# the browser, the SVG instance's 108 OPF solves, the docs site) or a cached read of the source
# tree: each runs on one xdist worker, so that the fixture is made once. Every other test goes to
# the next free worker.
# Listed longest first (their times in the suite: 20 to 1 s on the reference machine): see
# pytest_collection_modifyitems.
SHARED_FIXTURE_MODULES = (
    "tests/sim/studies/test_sweep.py",
    "tests/sim/studies/test_capacity.py",
    "tests/sim/studies/test_price.py",
    "tests/grid/feeder/test_three_phase.py",
    "tests/sim/report/test_browser.py",
    "tests/sim/studies/test_plan.py",
    "tests/grid/capacity/test_outages.py",
    "tests/sim/studies/test_auction.py",
    "tests/test_docs.py",
    "tests/test_layout.py",
    "tests/test_function_length.py",
    "tests/sim/report/test_html.py",
)


def pytest_collection_modifyitems(config, items):
    """Longest work first: the shared-fixture modules (longest first), then the other slow tests,
    then the rest, each in collection order. A worker that drew a long module last would leave the
    other idle at the end; started first, the long ones overlap and the short ones fill the gaps."""
    rank = {module: position for position, module in enumerate(SHARED_FIXTURE_MODULES)}

    def key(item) -> tuple[int, int]:
        module = item.nodeid.split("::", 1)[0]
        if module in rank:
            return (0, rank[module])
        return (1, 0) if item.get_closest_marker("slow") else (2, 0)

    items.sort(key=key)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` (pyproject's addopts) with the groups above. pytest-xdist marks a group
    by a suffix on the node id, which pytest 9.2's structured node ids drop without a word
    (pytest-xdist issue 1386), so the groups are named here, by module, for its scheduler."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureModules(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in SHARED_FIXTURE_MODULES else nodeid

    # The groups in the order pytest_collection_modifyitems gave (longest first): this scheduler
    # would otherwise sort them by their number of tests, a poor measure of their time.
    config.option.loadscopereorder = False
    return SharedFixtureModules(config, log)
