"""Solve a capacity program in stages, each holding the optimum of the one before.

1. (1a)/(4a)/(17a): minimise the unserved ratio sum_k (D_k - c_k)/D_k. Capacities are capped at
   the request (c_k <= D_k), so this is: maximise sum_k c_k / D_k.
2. Theorem 1 / Proposition 1: among those minimisers, maximise the total capacity 1'c.
3. Ties: stage 2 can still leave a face of optima (equal requests sharing a line). A strictly
   convex tie-break, min sum_k ((D_k - c_k)/D_k)^2, picks the one point that spreads the
   shortage as evenly as the limits allow. It is one quadratic program, whatever the number of
   candidates (an exact leximin needs a linear program per level), and its optimum is unique,
   so every solver that reaches stages 1 and 2 ends at the same capacities. Given the capacity
   program's limits in capacity space (grid/capacity/lp/tie_break.py), it runs on the capacities alone with
   the limits added as they bind, solved through its dual; otherwise on the whole program.

HiGHS runs all three stages on one instance, warm-started (stage 2 and the QP add a hold row and
change the objective). GLPK has no QP: with GLPK the two LP stages run in GLPK (through Pyomo)
and the tie-break QP runs in HiGHS with GLPK's stage optima held. Tests check that both paths
give the same capacities.

The HiGHS path talks to highspy directly rather than through Pyomo's persistent interface:
that interface redirects the process's stdout while it solves (so two solves cannot run in
parallel threads) and does not clear a QP objective when a linear one replaces it. The Pyomo
model of the same program (`to_pyomo`) is what the other solvers see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from grid.capacity.lp.programs import LinearProgram
from grid.capacity.lp.tie_break import (
    QP_RESIDUAL,
    CapacityRows,
    lazy_tie_break,
    model_residual,
)
from grid.errors import SolverError
from grid.solvers.names import check_solver

if TYPE_CHECKING:  # Pyomo is imported where a model is built: a HiGHS run never needs it
    import pyomo.environ as pyo

# Holds are written at the optimum itself first; the looser ones only catch solvers that call the
# exact hold infeasible through round-off.
_HOLD_SLACKS = (1e-9, 1e-7, 1e-6)


@dataclass(frozen=True)
class TheoryCheck:
    """Theorem 1 / Proposition 1 numerically: does every minimiser of (1a) maximise 1'c?

    ``max_total_mw`` is max 1'c over the feasible set; ``minimiser_total_mw`` is (min, max) of 1'c
    over the minimisers of (1a). The theorem holds on this instance when both ends equal the max.
    """

    max_total_mw: float
    minimiser_total_mw: tuple[float, float]

    @property
    def holds(self) -> bool:
        low, _ = self.minimiser_total_mw
        return low >= self.max_total_mw - 1e-6 * max(1.0, abs(self.max_total_mw))


@dataclass(frozen=True)
class StageResult:
    capacity_mw: np.ndarray      # (candidates,) after the tie-break
    served_sum: float            # stage 1 optimum: sum_k c_k / D_k
    total_mw: float              # stage 2 optimum: 1'c
    theory: TheoryCheck | None
    # The program's own stage-2 optimum (a vertex, before the tie-break): with a tie program,
    # what (17) itself chose, so that tests can compare it with the exact program's constraints.
    stage2_mw: np.ndarray | None = None


def _status_error(what: str, status: object, solver: str) -> SolverError:
    other = "glpk" if solver == "highs" else "highs"
    return SolverError(f"solver {solver!r} stopped with status {status} on {what}; try --solver {other}")


class _HighsStages:
    """One HiGHS instance holding the program; stages change its objective and add holds."""

    def __init__(self, program: LinearProgram, what: str) -> None:
        import highspy

        check_solver("highs")   # also keeps HiGHS's banner off stdout

        self._hs = highspy
        self.program = program
        self.what = what
        self.n_cols = program.shape[1]
        self.n = program.n_cap
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        # Deterministic: simplex and the QP solver in one thread give the same bits every run.
        h.setOptionValue("threads", 1)
        # A cycling QP (see _tie_break) must end in an error, not spin for ever; the null space
        # can grow to the number of candidates (HiGHS's default cap is 4,000).
        h.setOptionValue("qp_iteration_limit", 50 * self.n_cols + 10_000)
        h.setOptionValue("qp_nullspace_limit", max(4000, 2 * self.n + 100))
        if program.lazy is not None:
            # The partial draw set's rows over c alone: primal simplex (the floors are feasible)
            # took 1.8 s of CPU where HiGHS's default took 2.7 s for ACTIVSg2000's tier, same optimum.
            h.setOptionValue("simplex_strategy", 4)
            # Their rows are dense and none is implied by another (C-25 left those out), so
            # presolve finds nothing to remove: on ACTIVSg2000 under N-1 it was half of every
            # solve (HiGHS's runs 2.28 s with it, 1.08 s without, over the study's 9 models).
            h.setOptionValue("presolve", "off")
        lp = highspy.HighsLp()
        lp.num_col_ = self.n_cols
        lp.num_row_ = program.shape[0]
        lp.col_cost_ = np.zeros(self.n_cols)
        lp.col_lower_ = program.col_lower
        lp.col_upper_ = program.col_upper
        lp.row_lower_ = program.row_lower
        lp.row_upper_ = program.row_upper
        csc = program.matrix.tocsc()
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = csc.indptr.astype(np.int32)
        lp.a_matrix_.index_ = csc.indices.astype(np.int32)
        lp.a_matrix_.value_ = csc.data
        lp.a_matrix_.num_col_ = self.n_cols
        lp.a_matrix_.num_row_ = program.shape[0]
        status = h.passModel(lp)
        if status == highspy.HighsStatus.kError:
            raise SolverError(f"HiGHS rejected the {what} (passModel failed); this is a bug, please report it")
        self.h = h
        self._index = np.arange(self.n, dtype=np.int32)
        # The program's lazy rows not yet passed to HiGHS (see programs.LazyRows).
        self._waiting = None if program.lazy is None else np.ones(program.lazy.upper.size, dtype=bool)

    def _cost(self, on_capacity: np.ndarray) -> None:
        self.h.changeColsCost(self.n, self._index, np.asarray(on_capacity, dtype=float))

    def _run(self, stage: str) -> np.ndarray | None:
        """Solve; the capacities when optimal, None when infeasible, SolverError otherwise. With
        lazy rows, the rows the optimum breaks are added and the model solved again (warm), until
        it breaks none: then it is the optimum of the whole program."""
        while True:
            self.h.run()
            status = self.h.getModelStatus()
            if not (status == self._hs.HighsModelStatus.kOptimal or (
                    status == self._hs.HighsModelStatus.kSolveError and self._residual() <= QP_RESIDUAL)):
                break
            values = np.asarray(self.h.getSolution().col_value, dtype=float)[: self.n]
            if self._add_broken_rows(values):
                continue
            self.last = np.clip(values, self.program.col_lower[: self.n], self.program.col_upper[: self.n])
            return self.last
        if status == self._hs.HighsModelStatus.kInfeasible:
            return None
        raise _status_error(f"{stage} of the {self.what}", self.h.modelStatusToString(status), "highs")

    def _add_broken_rows(self, capacity: np.ndarray) -> bool:
        """Pass HiGHS the waiting lazy rows that ``capacity`` breaks (beyond 1e-9 of their size);
        whether there were any."""
        if self._waiting is None or not self._waiting.any():
            return False
        lazy = self.program.lazy
        waiting = np.flatnonzero(self._waiting)
        # Every row's product, then the waiting ones: the same sums row by row, without the copy of
        # the waiting rows that indexing the matrix makes (most of the rows, tens of millions of
        # coefficients under N-1, at every re-solve).
        excess = lazy.loads(capacity)[waiting] - lazy.upper[waiting]
        broken = waiting[excess > 1e-9 * np.maximum(1.0, np.abs(lazy.upper[waiting]))]
        if broken.size == 0:
            return False
        self._waiting[broken] = False
        block = lazy.written(broken)
        self.h.addRows(broken.size, np.full(broken.size, -self._hs.kHighsInf), lazy.upper[broken], block.nnz,
                       block.indptr[:-1].astype(np.int32), block.indices.astype(np.int32), block.data)
        # Rows that cut off the optimum leave its basis dual feasible: dual simplex goes on from it,
        # where primal simplex starts over from a phase 1 (ACTIVSg2000 N-1, the study's 9 models:
        # 1.47 s of staged solves against 1.65 s).
        self.h.setOptionValue("simplex_strategy", 1)
        return True

    def _residual(self) -> float:
        return model_residual(self.h)

    def optimise(self, on_capacity: np.ndarray, stage: str) -> np.ndarray:
        self._cost(on_capacity)
        values = self._run(stage)
        if values is None:
            raise _status_error(f"{stage} of the {self.what}", "infeasible", "highs")
        return values

    def hold(self, coefficients: np.ndarray, value: float, stage: str, on_capacity: np.ndarray,
             quadratic: np.ndarray | None = None) -> np.ndarray:
        """Add coefficients . c >= value (minus a slack), then optimise the next objective."""
        row = self.h.getNumRow()
        for relative in _HOLD_SLACKS:
            low = value - relative * (1.0 + abs(value))
            if self.h.getNumRow() == row:
                self.h.addRow(low, self._hs.kHighsInf, self.n, self._index, np.asarray(coefficients, dtype=float))
            else:
                self.h.changeRowBounds(row, low, self._hs.kHighsInf)
            self._cost(on_capacity)
            if quadratic is not None:
                self._hessian(quadratic)
            values = self._run(stage)
            if values is not None:
                return values
        raise _status_error(f"{stage} of the {self.what}", "infeasible after holding the previous stage", "highs")

    def unique_optimum(self) -> bool:
        """True when the last LP optimum is the only one: no non-basic column or row has a zero
        reduced cost (dual non-degenerate), so no direction keeps the objective. Then the
        tie-break has nothing to choose and is skipped."""
        basis = self.h.getBasis()
        solution = self.h.getSolution()
        if not (basis.valid and solution.dual_valid):
            return False
        basic = self._hs.HighsBasisStatus.kBasic
        tol = 1e-9
        for statuses, duals in ((basis.col_status, solution.col_dual), (basis.row_status, solution.row_dual)):
            nonbasic = np.array([status != basic for status in statuses], dtype=bool)
            if np.any(nonbasic & (np.abs(np.asarray(duals, dtype=float)) <= tol)):
                return False
        return True

    def _hessian(self, diagonal: np.ndarray) -> None:
        hessian = self._hs.HighsHessian()
        hessian.dim_ = self.n_cols
        hessian.format_ = self._hs.HessianFormat.kTriangular
        hessian.start_ = np.r_[np.arange(self.n + 1), np.full(self.n_cols - self.n, self.n)].astype(np.int32)
        hessian.index_ = np.arange(self.n, dtype=np.int32)
        hessian.value_ = np.asarray(diagonal, dtype=float)
        self.h.passHessian(hessian)


def _tie_break(stages: _HighsStages, demand: np.ndarray, served: float, total: float,
               capacity_rows: CapacityRows | None = None) -> np.ndarray:
    """Stage 3: hold 1'c >= total, minimise sum ((D - c)/D)^2 = const - 2 c/D + c^2/D^2.

    The objective is scaled by max(D)^2 (so its curvature is at least 2 per MW^2): HiGHS's QP
    solver works to absolute tolerances and, with curvatures near 1e-3, cycles between the
    vertices of a tied edge instead of stopping inside it.
    """
    if stages.unique_optimum():
        return stages.last
    if capacity_rows is not None:
        return lazy_tie_break(capacity_rows, demand, served, total, stages.last, stages.what)
    scale = float(np.max(demand)) ** 2
    return stages.hold(np.ones(stages.n), total, "the tie-break QP", -2.0 * scale / demand,
                       quadratic=2.0 * scale / demand**2)


def solve_stages_highs(program: LinearProgram, demand: np.ndarray, what: str, *, theory: bool = False,
                       holds: tuple[float, float] | None = None,
                       capacity_rows: CapacityRows | None = None) -> StageResult:
    """All stages in HiGHS; ``holds`` = (stage-1 optimum, stage-2 optimum) from another solver
    skips the two LP stages and runs only the tie-break; with ``capacity_rows`` the tie-break
    runs on the capacities alone (grid/capacity/lp/tie_break.py)."""
    demand = np.asarray(demand, dtype=float)
    stages = _HighsStages(program, what)
    if stages.n == 0:
        return StageResult(np.zeros(0), 0.0, 0.0, None)
    weights = 1.0 / demand
    if holds is not None:
        served, total = holds
        stages.hold(weights, served, "the held stage 1", -np.ones(stages.n))
        return StageResult(_tie_break(stages, demand, served, total, capacity_rows), served, total, None)
    first = _lp_stages(stages, weights, theory)
    return StageResult(_tie_break(stages, demand, first.served_sum, first.total_mw, capacity_rows),
                       first.served_sum, first.total_mw, first.theory, first.stage2_mw)


def _lp_stages(stages: _HighsStages, weights: np.ndarray, theory: bool) -> StageResult:
    """Stages 1 and 2, leaving both holds on the instance; the Theorem 1 check (when asked) runs
    on a second instance, so that asking for it cannot move the capacities by a round-off."""
    c = stages.optimise(-weights, "stage 1 (min unserved ratio)")
    served = float(weights @ c)
    c = stages.hold(weights, served, "stage 2 (max total capacity)", -np.ones(stages.n))
    total = float(np.sum(c))
    check = _theory_check(stages.program, weights, served, total, stages.what) if theory else None
    return StageResult(c, served, total, check, stage2_mw=c.copy())


def _theory_check(program: LinearProgram, weights: np.ndarray, served: float, total: float,
                  what: str) -> TheoryCheck:
    """max 1'c over the feasible set, and min 1'c over the minimisers of (1a)."""
    check = _HighsStages(program, what)
    ones = np.ones(check.n)
    max_total = float(np.sum(check.optimise(-ones, "the Theorem 1 check")))
    low = float(np.sum(check.hold(weights, served, "the Theorem 1 check", ones)))
    return TheoryCheck(max_total, (low, total))


def admits(program: LinearProgram, capacity: np.ndarray, what: str, tolerance: float = 1e-6) -> bool:
    """Does ``program`` have a feasible point whose capacities are within ``tolerance`` MW of
    ``capacity``? (One LP with the capacity columns boxed; the other columns are free to adapt.)"""
    boxed = program.with_capacity_box(np.asarray(capacity, dtype=float), tolerance)
    stages = _HighsStages(boxed, what)
    return stages.n == 0 or stages._run("the feasibility check") is not None


def _lp_stages_highs(program: LinearProgram, demand: np.ndarray, what: str, theory: bool) -> StageResult:
    stages = _HighsStages(program, what)
    if stages.n == 0:
        return StageResult(np.zeros(0), 0.0, 0.0, None)
    return _lp_stages(stages, 1.0 / np.asarray(demand, dtype=float), theory)


# ---------------------------------------------------------------------------- other solvers
def to_pyomo(program: LinearProgram) -> pyo.ConcreteModel:
    """The program as a Pyomo model: x[j] with bounds, rows[i] lo <= A_i x <= hi."""
    import pyomo.environ as pyo
    from pyomo.core.expr.numeric_expr import LinearExpression

    m = pyo.ConcreteModel()
    program = program.whole()
    lower, upper = program.col_lower, program.col_upper

    def bounds(_, j):
        return (None if np.isneginf(lower[j]) else float(lower[j]), None if np.isposinf(upper[j]) else float(upper[j]))

    m.x = pyo.Var(range(program.shape[1]), bounds=bounds)
    csr = program.matrix.tocsr()

    def row(m, i):
        start, stop = csr.indptr[i], csr.indptr[i + 1]
        expr = LinearExpression(constant=0.0, linear_coefs=[float(v) for v in csr.data[start:stop]],
                                linear_vars=[m.x[int(j)] for j in csr.indices[start:stop]])
        lo, hi = program.row_lower[i], program.row_upper[i]
        if lo == hi:
            return expr == float(lo)
        return pyo.inequality(None if np.isneginf(lo) else float(lo), expr, None if np.isposinf(hi) else float(hi))

    m.rows = pyo.Constraint(range(program.shape[0]), rule=row)
    return m


def _capacity(m: pyo.ConcreteModel, n: int, program: LinearProgram) -> np.ndarray:
    values = np.array([m.x[k].value for k in range(n)], dtype=float)
    return np.clip(values, program.col_lower[:n], program.col_upper[:n])


def solve_stages_pyomo(program: LinearProgram, demand: np.ndarray, what: str, solver: str, *,
                       theory: bool = False, tie_program: LinearProgram | None = None,
                       capacity_rows: CapacityRows | None = None) -> StageResult:
    """Stages 1 and 2 with a Pyomo solver (e.g. GLPK), the tie-break QP in HiGHS (on
    ``tie_program`` when given, see `solve_stages`).

    Every objective and the hold are components of their own, built once and switched on and
    off, so that no stage depends on another having removed a component by name.
    """
    import pyomo.environ as pyo
    from pyomo.core.expr.numeric_expr import LinearExpression

    from grid.solvers.solve import solve

    check_solver(solver)
    demand = np.asarray(demand, dtype=float)
    n = program.n_cap
    if n == 0:
        return StageResult(np.zeros(0), 0.0, 0.0, None)
    m = to_pyomo(program)
    weights = 1.0 / demand
    served_expr = LinearExpression(constant=0.0, linear_coefs=[float(w) for w in weights],
                                   linear_vars=[m.x[k] for k in range(n)])
    total_expr = LinearExpression(constant=0.0, linear_coefs=[1.0] * n, linear_vars=[m.x[k] for k in range(n)])
    m.max_served = pyo.Objective(expr=served_expr, sense=pyo.maximize)
    m.max_total = pyo.Objective(expr=total_expr, sense=pyo.maximize)
    m.min_total = pyo.Objective(expr=total_expr, sense=pyo.minimize)
    m.served_level = pyo.Param(mutable=True, initialize=0.0)
    m.hold_served = pyo.Constraint(expr=served_expr >= m.served_level)
    m.hold_served.deactivate()

    def optimise(objective: pyo.Objective, stage: str) -> str:
        for other in (m.max_served, m.max_total, m.min_total):
            other.deactivate()
        objective.activate()
        return solve(m, solver)

    status = optimise(m.max_served, "stage 1 (min unserved ratio)")
    if status != "optimal":
        raise _status_error(f"stage 1 (min unserved ratio) of the {what}", status, solver)
    served = float(weights @ _capacity(m, n, program))
    m.hold_served.activate()
    for relative in _HOLD_SLACKS:
        m.served_level.set_value(served - relative * (1.0 + abs(served)))
        status = optimise(m.max_total, "stage 2 (max total capacity)")
        if status == "optimal":
            break
    else:
        raise _status_error(f"stage 2 of the {what}", "infeasible after holding stage 1", solver)
    stage2 = _capacity(m, n, program)
    total = float(np.sum(stage2))
    check = None
    if theory:
        status = optimise(m.min_total, "the Theorem 1 check")
        if status != "optimal":
            raise _status_error(f"the Theorem 1 check of the {what}", status, solver)
        low = float(np.sum(_capacity(m, n, program)))
        m.hold_served.deactivate()
        status = optimise(m.max_total, "the Theorem 1 check")
        if status != "optimal":
            raise _status_error(f"the Theorem 1 check of the {what}", status, solver)
        check = TheoryCheck(float(np.sum(_capacity(m, n, program))), (low, total))
    result = solve_stages_highs(tie_program or program, demand, what, holds=(served, total),
                                capacity_rows=capacity_rows)
    return StageResult(result.capacity_mw, served, total, check, stage2_mw=stage2)


def solve_stages(program: LinearProgram, demand: np.ndarray, what: str, solver: str = "highs", *,
                 theory: bool = False, tie_program: LinearProgram | None = None,
                 capacity_rows: CapacityRows | None = None) -> StageResult:
    """The staged solve with the named solver (see the module doc).

    ``tie_program`` is an equivalent program with the same feasible capacities (the exact form of
    the scenario LP (17)): stages 1 and 2 run on ``program`` and the tie-break QP on
    ``tie_program`` with their optima held, because HiGHS's QP solver misjudges feasibility on
    (17)'s thousands of degenerate z columns. The equivalence is not taken on trust: ``program``
    must admit the tie-break's capacities (one more LP), else SolverError.
    """
    if solver == "highs":
        check_solver(solver)
        if tie_program is None:
            return solve_stages_highs(program, demand, what, theory=theory, capacity_rows=capacity_rows)
        first = _lp_stages_highs(program, demand, what, theory)
        result = solve_stages_highs(tie_program, demand, what, holds=(first.served_sum, first.total_mw),
                                    capacity_rows=capacity_rows)
        chosen = StageResult(result.capacity_mw, first.served_sum, first.total_mw, first.theory, first.stage2_mw)
    else:
        chosen = solve_stages_pyomo(program, demand, what, solver, theory=theory, tie_program=tie_program,
                                    capacity_rows=capacity_rows)
    if tie_program is not None and not admits(program, chosen.capacity_mw, what):
        raise SolverError(f"the {what} does not admit the capacities its exact form chose; "
                          "the two formulations disagree: please report this with the config")
    return chosen
