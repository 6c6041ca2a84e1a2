"""The solvers dcmarket can use, by name, and whether each is installed: a module of its own,
without Pyomo, so that the command line lists them and a study checks its solver before any
model is built, and a run that never builds a Pyomo model never imports it (grid/solvers/solve.py
drives the solvers through Pyomo)."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from functools import lru_cache

from grid.errors import GridError, SolverError

SOLVERS: tuple[str, ...] = ("highs", "glpk")

_INSTALL_HINT = {
    "highs": "pip install highspy",
    "glpk": "apt-get install glpk-utils (provides glpsol), or use --solver highs",
}


def _installed(name: str) -> bool:
    """What Pyomo's own availability checks look for: the highspy module, the glpsol program."""
    if name == "glpk":
        return shutil.which("glpsol") is not None
    importlib.import_module("highspy")
    return True


@lru_cache(maxsize=None)
def _is_available(name: str) -> bool:
    try:
        available = _installed(name)
    except Exception:  # a broken install is reported as "not installed", with the fix
        return False
    if available and name == "highs":
        _swallow_highs_banner()
    return available


def _swallow_highs_banner() -> None:
    """HiGHS prints its banner on stdout (from C, past sys.stdout) the first time a Highs object
    is made in a process, whatever its options: in the middle of a report. Make that first one
    here, once, with file descriptor 1 pointed at /dev/null."""
    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    sink = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(sink, 1)
        highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(sink)


def check_solver(name: str) -> None:
    """GridError for an unknown solver name, SolverError (with the install fix) if it is missing."""
    if name not in SOLVERS:
        raise GridError(f"unknown solver {name!r}; choose one of {', '.join(SOLVERS)}")
    if not _is_available(name):
        raise SolverError(f"solver {name!r} is not installed; {_INSTALL_HINT[name]}")
