"""Errors raised by grid/, each a one-line message that names the culprit and the fix."""


class GridError(ValueError):
    """Bad network/scenario data; one-line message naming the bus/line/field and the fix."""


class InfeasibleNetworkError(GridError):
    """The limits cannot hold even at the best data-center allocation; names the limit that fails."""


class SolverError(GridError):
    """Solver missing or failed; message names the solver and the fix.

    Example: "solver 'glpk' is not installed; apt-get install glpk-utils (provides glpsol),
    or use --solver highs".
    """


class NoIncumbentError(SolverError):
    """A MILP stopped at a limit (time or nodes) before it found any solution."""
