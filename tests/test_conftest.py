"""tests/conftest.py's xdist groups name test modules that exist (a renamed module would
otherwise silently lose its group, and its fixtures would be made once per worker)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SHARED_FIXTURE_MODULES

REPO = Path(__file__).resolve().parents[1]


def test_every_shared_fixture_module_exists():
    assert SHARED_FIXTURE_MODULES and all((REPO / module).is_file() for module in SHARED_FIXTURE_MODULES)
