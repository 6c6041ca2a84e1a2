"""The plan's risk measures evaluated on cost samples, outside the MILP.

These are the yardsticks the report and the tests hold the MILP to: mean-CVaR by sorting (the
same sample CVaR as the capacity study, `grid.risk_measures.sample_cvar`), and its worst case over a
total-variation ball solved as the explicit supremum over distributions, not through the dual
that the MILP embeds (docs/models/plan.md#eq-f-dro-dual).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from grid.errors import SolverError
from grid.risk_measures import sample_cvar


def cvar(costs: np.ndarray, alpha: float) -> float:
    """CVaR_alpha (14) of equally likely costs: the mean of the worst (1 - alpha) share."""
    return float(sample_cvar(np.asarray(costs, dtype=float), 1.0 - alpha))


def mean_cvar(costs: np.ndarray, lam: float, alpha: float) -> float:
    """(1 - lambda) E[Q] + lambda CVaR_alpha(Q), the risk term of (1) [ours: mean-CVaR]."""
    costs = np.asarray(costs, dtype=float)
    return float((1.0 - lam) * costs.mean() + lam * cvar(costs, alpha))


def worst_case_mean_cvar(costs: np.ndarray, lam: float, alpha: float, radius: float) -> float:
    """sup over {p : 1/2 ||p - 1/S||_1 <= radius} of (1 - lambda) E_p[Q] + lambda CVaR^p_alpha(Q).

    Solved as one LP in the distribution p and CVaR's own weights q (CVaR^p_alpha(Q) =
    max {q'Q : 0 <= q <= p / (1 - alpha), sum q = 1}), so that it checks the MILP's dual
    independently. Variables [p, q, a], with a_s >= |p_s - 1/S|.
    """
    costs = np.asarray(costs, dtype=float)
    count = costs.size
    if radius == 0:
        return mean_cvar(costs, lam, alpha)
    phat = np.full(count, 1.0 / count)
    eye = np.eye(count)
    zero = np.zeros((count, count))
    objective = -np.concatenate([(1.0 - lam) * costs, lam * costs, np.zeros(count)])
    upper = np.vstack([
        np.hstack([-eye / (1.0 - alpha), eye, zero]),  # q <= p / (1 - alpha)
        np.hstack([eye, zero, -eye]),  # p - phat <= a
        np.hstack([-eye, zero, -eye]),  # phat - p <= a
        np.concatenate([np.zeros(2 * count), np.ones(count)])[None, :],  # sum a <= 2 radius
    ])
    upper_rhs = np.concatenate([np.zeros(count), phat, -phat, [2.0 * radius]])
    equal = np.vstack([np.concatenate([np.ones(count), np.zeros(2 * count)]),
                       np.concatenate([np.zeros(count), np.ones(count), np.zeros(count)])])
    result = linprog(objective, A_ub=upper, b_ub=upper_rhs, A_eq=equal, b_eq=[1.0, 1.0],
                     bounds=[(0, None)] * (3 * count), method="highs")
    if result.status != 0:
        raise SolverError(f"worst-case risk LP failed ({result.message}); report this with the plan config")
    return float(-result.fun)
