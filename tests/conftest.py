"""Shared test policy: GLPK is optional on a developer's machine and required in CI."""

from __future__ import annotations

import os
import shutil

import pytest


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
