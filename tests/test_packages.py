"""`agents`, `sim` and `grid` are generic names that other PyPI packages also install.

pytest runs with --import-mode=importlib; this test makes sure the modules under test are the
ones in this checkout and not a namesake from site-packages.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["sim", "agents", "mechanisms", "grid"])
def test_package_resolves_inside_this_repository(name):
    module = importlib.import_module(name)
    location = Path(module.__file__).resolve()
    assert location.parent == REPO / name, f"{name} imported from {location}, not from {REPO / name}"


def test_mechanisms_do_not_import_mesa_pyomo_or_other_packages():
    # The architecture keeps the auction pure so it can be driven without simulation plumbing.
    modules = sorted(p.stem for p in (REPO / "mechanisms").glob("*.py") if p.stem != "__init__")
    code = (
        "import sys\n"
        + "".join(f"import mechanisms.{m}\n" for m in modules)
        + "print(sorted({n.split('.')[0] for n in sys.modules} & {'mesa', 'pyomo', 'agents', 'grid', 'sim'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.stdout.strip() == "[]", result.stdout
