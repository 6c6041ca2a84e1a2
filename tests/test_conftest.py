"""tests/conftest.py's ordering names test modules that exist (a renamed module would otherwise
silently lose its place among the longest, and might be drawn last)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import DASK_CLUSTER_TESTS, LONGEST_MODULES, xdist_group

REPO = Path(__file__).resolve().parents[1]


def test_every_listed_module_exists():
    assert LONGEST_MODULES and all((REPO / module).is_file() for module in LONGEST_MODULES)
    assert len(set(LONGEST_MODULES)) == len(LONGEST_MODULES)


def test_a_test_runs_with_its_module_and_the_dask_tests_with_the_first():
    assert xdist_group("tests/grid/ac/test_check.py::test_x[a-b]") == "tests/grid/ac/test_check.py"
    assert {xdist_group(nodeid + "[x]") for nodeid in DASK_CLUSTER_TESTS} == {LONGEST_MODULES[0]}
