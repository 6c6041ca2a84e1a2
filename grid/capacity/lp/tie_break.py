"""The tie-break QP in capacity space, with the limits added as they are needed.

Stage 3 (grid/capacity/lp/staged_solve.py) picks, among the capacity vectors c that reach the optimum of
stages 1 and 2, the one minimising sum ((D - c)/D)^2. On the full program that QP carries every
flow and angle column of the network; on a 2,000-bus case it takes seconds. Projected on c, the
same feasible set is {c : bounds, a_r . c <= room_r for every limit r} (the flows are a linear
function of c), and only the limits that bind at the answer matter. So the QP runs on c alone,
starting with the limits that bind at the stage-2 vertex, and adds every limit the answer
violates until it violates none: the QP optimum over a subset of the limits that satisfies all
of them is the optimum over all of them (and it is unique: the objective is strictly convex).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from grid.errors import SolverError

# Rows whose slack at the starting vertex is at most this (relative to the limit) start in the QP.
BINDING = 1e-7
# A limit counts as violated by more than this (relative to the limit, at least 1e-6 MW).
VIOLATED = 1e-7
# Rounds of adding limits; each adds every violated one, so a handful is the norm.
MAX_ROUNDS = 60
_HOLD_SLACK = 1e-9
# L-BFGS-B iterations on the dual before HiGHS answers instead. Where the dual converges it takes
# under 150 (IEEE 118, ACTIVSg2000, full and partial draws); where it does not (the partial rows
# of ACTIVSg2000's flexible tier) 5,000 took 13 s for an answer HiGHS then found in 0.3 s.
DUAL_ITERATIONS = 500
# HiGHS's active-set QP solver sometimes ends at the optimum with row residuals a little above its
# 1e-7 tolerance and calls that a "solve error". A point whose rows and bounds hold within this
# (MW, or MW per p.u. of reactance) is accepted; anything worse is an error.
QP_RESIDUAL = 1e-3


def model_residual(h) -> float:
    """Largest violation of a row or column bound by HiGHS's last point, computed from the model
    itself: after a QP "solve error" HiGHS marks its point invalid but still returns it."""
    import highspy
    import scipy.sparse as sp

    x = np.asarray(h.getSolution().col_value, dtype=float)
    lp = h.getLp()
    if x.size != lp.num_col_:
        return float("inf")
    parts = (np.asarray(lp.a_matrix_.value_), np.asarray(lp.a_matrix_.index_), np.asarray(lp.a_matrix_.start_))
    rowwise = lp.a_matrix_.format_ == highspy.MatrixFormat.kRowwise
    matrix = (sp.csr_matrix if rowwise else sp.csc_matrix)(parts, shape=(lp.num_row_, lp.num_col_))
    activity = matrix @ x if lp.num_row_ else np.zeros(0)
    violations = (
        np.asarray(lp.row_lower_) - activity, activity - np.asarray(lp.row_upper_),
        np.asarray(lp.col_lower_) - x, x - np.asarray(lp.col_upper_),
    )
    return max(float(np.max(v, initial=0.0)) for v in violations)


@dataclass(frozen=True)
class CapacityRows:
    """A program's limits in capacity space.

    ``rows_at(c, min_slack)`` gives (ids, A, rhs) of the limits whose slack rhs - A c at ``c``
    is at most ``min_slack`` MW-relative (negative: violated), A dense (rows x candidates).
    """

    lower: np.ndarray
    upper: np.ndarray
    rows_at: Callable[[np.ndarray, float], tuple[np.ndarray, np.ndarray, np.ndarray]]


def lazy_tie_break(rows: CapacityRows, demand: np.ndarray, served: float, total: float,
                   start: np.ndarray, what: str) -> np.ndarray:
    """The tie-break QP on c alone (module doc): hold sum c/D >= served and sum c >= total,
    minimise sum ((D - c)/D)^2, scaled by max(D)^2 as the full QP is.

    Each round's QP has a diagonal Hessian, box bounds and a few dozen rows: its dual has one
    variable per row, so it is solved there (`separable_qp`) and its answer checked against the
    optimality conditions; HiGHS's active-set QP, whose cost grows with the free capacities (two
    seconds a solve on 1,125 candidates), only answers when that check fails.
    """
    demand = np.asarray(demand, dtype=float)
    n = len(demand)
    scale = float(np.max(demand)) ** 2
    q = 2.0 * scale / demand**2
    g = -2.0 * scale / demand
    lower, upper = np.asarray(rows.lower, dtype=float), np.asarray(rows.upper, dtype=float)
    # Holds as a . c <= b rows: -(1/D) . c <= -served, -1 . c <= -total (a hair loose).
    a_rows = [-1.0 / demand, -np.ones(n)]
    b_rows = [-(served - _HOLD_SLACK * (1.0 + abs(served))), -(total - _HOLD_SLACK * (1.0 + abs(total)))]
    added: set[int] = set()

    def add(ids: np.ndarray, a: np.ndarray, rhs: np.ndarray) -> int:
        count = 0
        for row_id, coefficients, bound in zip(ids, a, rhs):
            if int(row_id) not in added:
                added.add(int(row_id))
                a_rows.append(np.asarray(coefficients, dtype=float))
                b_rows.append(float(bound))
                count += 1
        return count

    add(*rows.rows_at(np.asarray(start, dtype=float), BINDING))
    for _ in range(MAX_ROUNDS):
        a, b = np.vstack(a_rows), np.asarray(b_rows)
        c = separable_qp(q, g, a, b, lower, upper)
        if c is None:
            c = _highs_qp(q, g, a, b, lower, upper, what)
        if add(*rows.rows_at(c, -VIOLATED)) == 0:
            return c
    raise SolverError(f"the tie-break QP of the {what} still violated limits after {MAX_ROUNDS} rounds; "
                      "this is a bug, please report it")


def separable_qp(q: np.ndarray, g: np.ndarray, a: np.ndarray, b: np.ndarray, lower: np.ndarray,
                 upper: np.ndarray, tolerance: float = 1e-9) -> np.ndarray | None:
    """min 1/2 sum q_i c_i^2 + g . c  s.t.  a c <= b, lower <= c <= upper (q > 0), by its dual;
    None when the answer fails the optimality (KKT) check, so the caller asks another solver.

    For multipliers mu >= 0 of the rows the best c is c(mu) = clip(-(g + a' mu) / q, bounds);
    the dual psi(mu) is concave with gradient a c(mu) - b and is maximised by L-BFGS-B. The
    answer is then polished on its active set (free capacities, rows with mu > 0) by solving the
    KKT equations exactly, and accepted only if it is feasible and optimal to ``tolerance``.
    """
    from scipy.optimize import minimize, nnls

    def c_of(mu: np.ndarray) -> np.ndarray:
        return np.clip(-(g + a.T @ mu) / q, lower, upper)

    def negative_dual(mu: np.ndarray) -> tuple[float, np.ndarray]:
        c = c_of(mu)
        residual = a @ c - b
        return -(0.5 * float(q @ c**2) + float(g @ c) + float(mu @ residual)), -residual

    m = len(b)
    result = minimize(negative_dual, np.zeros(m), jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * m,
                      options={"maxiter": DUAL_ITERATIONS, "gtol": 1e-12, "ftol": 1e-15})
    mu = np.maximum(result.x, 0.0)
    c = c_of(mu)
    size = 1.0 + float(np.max(np.abs(c), initial=0.0))
    free = (c > lower + tolerance * size) & (c < upper - tolerance * size)
    active = (mu > tolerance) | (np.abs(a @ c - b) <= 1e-7 * (1.0 + np.abs(b)))
    if np.any(active) and np.any(free):
        # Exact on the active set: q_F c_F + g_F + a_RF' mu_R = 0 and a_R c = b_R.
        a_rf = a[np.ix_(active, free)]
        fixed = a[np.ix_(active, ~free)] @ c[~free]
        system = (a_rf / q[free]) @ a_rf.T
        rhs = -(a_rf @ (g[free] / q[free])) + fixed - b[active]
        # Non-negative least squares: rows can be parallel (the two holds, when every request is
        # the same), and only a split of their multiplier with both parts >= 0 certifies.
        mu_r = nnls(system, rhs, maxiter=50 * system.shape[0] + 100)[0]
        mu = np.zeros(m)
        mu[active] = mu_r
        c = c.copy()
        c[free] = -(g[free] + a[:, free].T @ mu) / q[free]
    return c if _kkt_holds(q, g, a, b, lower, upper, c, mu, 1e-7) else None


def _kkt_holds(q, g, a, b, lower, upper, c, mu, tolerance: float) -> bool:
    """Feasible, multipliers >= 0 with complementary slack, and no capacity could move to lower
    the objective: the optimality conditions of a convex QP."""
    scale_b = tolerance * (1.0 + np.abs(b))
    scale_c = tolerance * (1.0 + np.abs(c))
    slack = b - a @ c
    if np.any(slack < -scale_b) or np.any(c < lower - scale_c) or np.any(c > upper + scale_c):
        return False
    if np.any(mu < -tolerance) or np.any((mu > tolerance) & (slack > 1e3 * scale_b)):
        return False
    gradient = q * c + g + a.T @ mu
    grad_scale = tolerance * 1e3 * (1.0 + np.abs(g))
    at_lower = c <= lower + scale_c
    at_upper = c >= upper - scale_c
    inside = ~at_lower & ~at_upper
    return bool(np.all(np.abs(gradient[inside]) <= grad_scale[inside])
                and np.all(gradient[at_lower & ~at_upper] >= -grad_scale[at_lower & ~at_upper])
                and np.all(gradient[at_upper & ~at_lower] <= grad_scale[at_upper & ~at_lower]))


def _highs_qp(q, g, a, b, lower, upper, what: str) -> np.ndarray:
    """The same QP in HiGHS's active-set solver (the fallback of `separable_qp`)."""
    import highspy

    n = len(q)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = 0
    lp.col_cost_ = np.asarray(g, dtype=float)
    lp.col_lower_ = lower
    lp.col_upper_ = upper
    h.passModel(lp)
    hessian = highspy.HighsHessian()
    hessian.dim_ = n
    hessian.format_ = highspy.HessianFormat.kTriangular
    hessian.start_ = np.arange(n + 1, dtype=np.int32)
    hessian.index_ = np.arange(n, dtype=np.int32)
    hessian.value_ = np.asarray(q, dtype=float)
    h.passHessian(hessian)
    for coefficients, bound in zip(a, b):
        nz = np.flatnonzero(coefficients)
        h.addRow(-highspy.kHighsInf, float(bound), len(nz), nz.astype(np.int32), coefficients[nz])
    h.run()
    status = h.getModelStatus()
    # HiGHS's active-set QP may call a degenerate face (one point, say) a "solve error" while
    # standing on it; a point that keeps every row and bound is accepted.
    if status != highspy.HighsModelStatus.kOptimal and not (
        status == highspy.HighsModelStatus.kSolveError and model_residual(h) <= QP_RESIDUAL
    ):
        raise SolverError(f"the tie-break QP of the {what} stopped with status "
                          f"{h.modelStatusToString(status)}; try --solver glpk")
    return np.clip(np.asarray(h.getSolution().col_value, dtype=float), lower, upper)
