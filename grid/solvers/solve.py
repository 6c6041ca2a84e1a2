"""The LP solvers grid/ supports, and one `solve` that reports outcomes the same way for all.

HiGHS and GLPK disagree on how they report a non-optimal LP: HiGHS may stop at "infeasible or
unbounded", GLPK (with its presolver) reports an unbounded LP as "other". ``solve`` settles both by
re-solving the constraints alone with a zero objective.
"""

from __future__ import annotations

import logging
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass

import pyomo.environ as pyo
from pyomo.opt import SolverResults, TerminationCondition

from grid.errors import NoIncumbentError, SolverError
from grid.solvers.names import SOLVERS, check_solver  # noqa: F401  (re-exported: one list, one check)

# Every HiGHS solve in the process uses one thread: HiGHS starts one scheduler per process with the
# first solve's thread count and refuses a different count later ("unknown" termination), and one
# thread keeps branch-and-bound paths, and so the outputs, the same on every machine.
HIGHS_THREADS = {"threads": 1}

# Outcomes that need the zero-objective re-solve to tell infeasible from unbounded.
_AMBIGUOUS = {
    TerminationCondition.unbounded,
    TerminationCondition.infeasibleOrUnbounded,
    TerminationCondition.other,
}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _run(model: pyo.ConcreteModel, solver: str, exact_check: bool = False,
         again: bool = False) -> tuple[object, TerminationCondition]:
    """Solve without loading; return the results and the termination condition."""
    try:
        if solver == "glpk":
            return _run_glpk(model, exact_check)
        highs = _kept_highs(model, solver) if again else pyo.SolverFactory(solver)
        results = highs.solve(model, load_solutions=False, options=dict(HIGHS_THREADS))
        return results, results.solver.termination_condition
    except SolverError:
        raise
    except Exception as exc:  # never let a raw Pyomo/solver traceback reach the user
        raise SolverError(f"solver {solver!r} failed ({_first_line(exc)}); try the other solver") from None


# The attribute of a model that keeps its HiGHS interface between solves (`solve(..., again=True)`).
_KEPT_HIGHS = "_dcmarket_kept_highs"


def _kept_highs(model: pyo.ConcreteModel, solver: str) -> object:
    """The model's own persistent HiGHS interface: Pyomo hands the model to HiGHS at the first
    solve (most of a small LP's time) and only what changed at the next. HiGHS's basis is cleared
    first, so that every solve starts cold, as a fresh one does: same vertex, same duals."""
    highs = getattr(model, _KEPT_HIGHS, None)
    if highs is None:
        highs = pyo.SolverFactory(solver)
        object.__setattr__(model, _KEPT_HIGHS, highs)
    kept = getattr(highs, "_solver_model", None)  # the highspy.Highs, once the model was passed
    if kept is not None:
        kept.clearSolver()
    return highs


def _run_glpk(model: pyo.ConcreteModel, exact_check: bool = False) -> tuple[object, TerminationCondition]:
    """GLPK through Pyomo, reading glpsol's own verdict from its log when it is not optimal.

    Pyomo only recognises GLPK's presolver messages; when the simplex itself proves an LP
    infeasible or unbounded ("LP HAS NO PRIMAL FEASIBLE SOLUTION") it reports "other".
    """
    results, log = _glpk_with_log(model, {"xcheck": None} if exact_check else {})
    condition = results.solver.termination_condition
    if condition == TerminationCondition.optimal:
        return results, condition
    log = log.upper()
    if "NO PRIMAL FEASIBLE SOLUTION" in log:
        return results, TerminationCondition.infeasible
    if "UNBOUNDED PRIMAL SOLUTION" in log:
        return results, TerminationCondition.unbounded
    if "NO DUAL FEASIBLE SOLUTION" in log:
        return results, TerminationCondition.infeasibleOrUnbounded
    return results, condition


def _glpk_with_log(model: pyo.ConcreteModel, options: dict[str, object]) -> tuple[object, str]:
    """GLPK through Pyomo with glpsol's log kept: Pyomo reads neither GLPK's simplex verdicts nor
    its branch-and-bound bound, and both are in the log ("" if it cannot be read)."""
    with tempfile.TemporaryDirectory(prefix="dcmarket-glpk-") as folder:
        log_path = os.path.join(folder, "glpsol.log")
        results = pyo.SolverFactory("glpk").solve(model, load_solutions=False, logfile=log_path, options=options)
        try:
            with open(log_path, encoding="utf-8", errors="replace") as handle:
                return results, handle.read()
        except OSError:
            return results, ""


def _has_feasible_point(model: pyo.ConcreteModel, solver: str) -> bool | None:
    """Solve the constraints alone (zero objective): True/False, or None if that fails too."""
    active = list(model.component_data_objects(pyo.Objective, active=True))
    for objective in active:
        objective.deactivate()
    name = "_feasibility_objective"
    while model.component(name) is not None:
        name += "_"
    model.add_component(name, pyo.Objective(expr=0.0))
    try:
        _, condition = _run(model, solver)
    finally:
        model.del_component(name)
        for objective in active:
            objective.activate()
    if condition == TerminationCondition.optimal:
        return True
    if condition == TerminationCondition.infeasible:
        return False
    return None


def solve(model: pyo.ConcreteModel, solver: str, *, exact_check: bool = False, again: bool = False) -> str:
    """Solve a Pyomo LP; return "optimal", "infeasible" or "unbounded".

    The solution is loaded into the model only when optimal. Any other outcome (time limit,
    numerical trouble, a crash) raises SolverError with a one-line message. ``exact_check`` has
    GLPK re-check its final basis in exact arithmetic (glpsol --xcheck): on LinDist3Flow's long
    chains of voltage rows its floating-point simplex can stop "optimal" with a voltage 4e-4
    p.u. below its floor. ``again``: the model will be solved again with some fixed values moved
    (an enumeration); HiGHS keeps it between solves (`_kept_highs`), each solve started cold.
    """
    check_solver(solver)
    results, condition = _run(model, solver, exact_check, again)
    if condition == TerminationCondition.optimal:
        try:
            model.solutions.load_from(results)
        except Exception as exc:
            raise SolverError(f"solver {solver!r}: could not load the solution ({_first_line(exc)})") from None
        return "optimal"
    if condition == TerminationCondition.infeasible:
        return "infeasible"
    if condition in _AMBIGUOUS:
        feasible = _has_feasible_point(model, solver)
        if feasible is True:
            return "unbounded"
        if feasible is False:
            return "infeasible"
    raise SolverError(
        f"solver {solver!r} stopped with termination {condition}; "
        "try the other solver"
    )


@dataclass(frozen=True)
class MilpOutcome:
    """How a MILP solve ended. ``gap`` is the solver's relative gap between the incumbent and its
    best bound ((incumbent - bound) / max(1, |incumbent|)); 0 when proven optimal."""

    solver: str
    status: str  # "optimal", or "time_limit" with an incumbent loaded
    objective: float
    bound: float
    seconds: float
    # The model as the solver saw it: free columns (binaries, general integers among them), rows.
    columns: int = 0
    binaries: int = 0
    integers: int = 0
    rows: int = 0

    @property
    def gap(self) -> float:
        return relative_gap(self.objective, self.bound)


def relative_gap(upper: float, lower: float) -> float:
    """A minimisation's gap between a feasible objective and a bound: (upper - lower) / max(1, |upper|), 0 at most."""
    return max(0.0, upper - lower) / max(1.0, abs(upper))


def solve_milp(model: pyo.ConcreteModel, solver: str, *, mip_gap: float = 1e-6,
               time_limit: float | None = None, what: str = "the model",
               more_time: str = "allow more time", node_limit: int | None = None) -> MilpOutcome:
    """Solve a Pyomo MILP (minimisation) to ``mip_gap``; load the incumbent.

    A time limit that leaves an incumbent is not an error: the outcome says "time_limit" and
    carries the gap (benchmarks report it). So is HiGHS's ``node_limit`` (branch-and-bound nodes;
    GLPK has none and runs to its gap or time limit): "node_limit". Infeasibility, or a stop
    without any incumbent, raises SolverError naming ``what``.
    """
    check_solver(solver)
    size = _model_size(model)
    started = time.perf_counter()
    results, glpk_log = _run_milp(model, solver, mip_gap, time_limit, what, node_limit)
    seconds = time.perf_counter() - started
    condition = results.solver.termination_condition
    if node_limit is not None and solver != "glpk" and condition not in (
            TerminationCondition.optimal, TerminationCondition.maxTimeLimit, TerminationCondition.infeasible,
            TerminationCondition.infeasibleOrUnbounded):
        status = "node_limit"   # HiGHS's node limit has no termination condition of its own in Pyomo
    else:
        status = _milp_status(condition, solver, what)
    _load_incumbent(model, results, solver, what, more_time)
    try:
        objective = float(pyo.value(next(model.component_data_objects(pyo.Objective, active=True))))
    except ValueError:   # GLPK stopped by its time limit before an integer solution: no values to read
        raise NoIncumbentError(f"solver {solver!r} found no solution for {what} within the time limit; "
                               f"{more_time}") from None
    bound = results.problem.lower_bound
    finite = bound is not None and math.isfinite(float(bound))
    if status == "optimal":
        bound = min(float(bound), objective) if finite else objective
    else:
        bound = float(bound) if finite else _glpk_bound(glpk_log)
        if relative_gap(objective, bound) <= mip_gap * (1 + 1e-9):
            status = "optimal"  # proven within the requested gap
    return MilpOutcome(solver, status, objective, bound, seconds, **size)


def _run_milp(model: pyo.ConcreteModel, solver: str, mip_gap: float, time_limit: float | None,
              what: str, node_limit: int | None = None) -> tuple[SolverResults, str]:
    """The solver's results, and GLPK's log (empty for HiGHS), which alone holds GLPK's bound."""
    try:
        glpk_log = ""
        if solver == "glpk":
            options: dict[str, object] = {"mipgap": mip_gap}
            if time_limit is not None:
                options["tmlim"] = max(1, int(math.ceil(time_limit)))
            results, glpk_log = _glpk_with_log(model, options)
        else:
            options = {"mip_rel_gap": mip_gap, "random_seed": 0, **HIGHS_THREADS}
            if node_limit is not None:
                options["mip_max_nodes"] = node_limit
            results = pyo.SolverFactory(solver).solve(model, load_solutions=False, options=options,
                                                      timelimit=time_limit)
    except SolverError:
        raise
    except Exception as exc:  # never let a raw Pyomo/solver traceback reach the user
        raise SolverError(f"solver {solver!r} failed on {what} ({_first_line(exc)}); try the other solver") from None
    return results, glpk_log


def _milp_status(condition: TerminationCondition, solver: str, what: str) -> str:
    """The outcome's status, "optimal" or "time_limit" (an incumbent may be loaded); any other stop
    is an error."""
    if condition == TerminationCondition.optimal:
        return "optimal"
    if condition in (TerminationCondition.maxTimeLimit, TerminationCondition.maxIterations,
                     TerminationCondition.feasible):
        # GLPK reports "feasible" both when it stops at the gap tolerance and at its time limit;
        # the bounds tell which.
        return "time_limit"
    if condition in (TerminationCondition.infeasible, TerminationCondition.infeasibleOrUnbounded):
        raise SolverError(f"{what} is infeasible ({solver}); check the data it was built from")
    raise SolverError(f"solver {solver!r} stopped on {what} with termination {condition}; try the other solver")


def _load_incumbent(model: pyo.ConcreteModel, results: SolverResults, solver: str, what: str, more_time: str) -> None:
    # A time-limit stop is reported in the outcome (status and gap); Pyomo's warning about loading
    # an "aborted" solve's incumbent would only repeat it, on the user's terminal.
    pyomo_log = logging.getLogger("pyomo.core")
    level = pyomo_log.level
    pyomo_log.setLevel(logging.ERROR)
    try:
        model.solutions.load_from(results)
    except Exception as exc:
        raise NoIncumbentError(f"solver {solver!r} found no solution for {what} within the time limit "
                               f"({_first_line(exc)}); {more_time}") from None
    finally:
        pyomo_log.setLevel(level)


def _model_size(model: pyo.ConcreteModel) -> dict[str, int]:
    """Columns (fixed variables left out: the writers drop them), binaries, integers, rows."""
    columns = binaries = integers = 0
    for var in model.component_data_objects(pyo.Var, active=True, descend_into=True):
        if var.fixed:
            continue
        columns += 1
        if var.is_binary():
            binaries += 1
        elif var.is_integer():
            integers += 1
    rows = sum(1 for _ in model.component_data_objects(pyo.Constraint, active=True, descend_into=True))
    return {"columns": columns, "binaries": binaries, "integers": integers, "rows": rows}


_GLPK_PROGRESS = re.compile(r"mip\s*=\s*(\S+)\s*>=\s*(\S+)")


def _glpk_bound(log: str) -> float:
    """GLPK's best bound from its last branch-and-bound line (``mip = incumbent >= bound``):
    Pyomo does not read it when glpsol stops at the gap tolerance or its time limit."""
    found = _GLPK_PROGRESS.findall(log)
    if not found:
        return -math.inf
    try:
        return float(found[-1][1])
    except ValueError:  # "-inf" before any bound is known parses; anything else is no bound
        return -math.inf
