"""`agents`, `sim` and `grid` are generic names that other PyPI packages also install.

pytest runs with --import-mode=importlib; this test makes sure the modules under test are the
ones in this checkout and not a namesake from site-packages.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["sim", "agents", "mechanisms", "grid"])
def test_package_resolves_inside_this_repository(name):
    module = importlib.import_module(name)
    location = Path(module.__file__).resolve()
    assert location.parent == REPO / name, f"{name} imported from {location}, not from {REPO / name}"


def test_mechanisms_do_not_import_mesa_or_pyomo():
    # The architecture keeps the auction pure so it can be driven without simulation plumbing.
    for path in (REPO / "mechanisms").glob("*.py"):
        text = path.read_text()
        for banned in ("import mesa", "from mesa", "import pyomo", "from pyomo", "from grid", "from agents"):
            assert banned not in text, f"{path.name} has '{banned}'"
