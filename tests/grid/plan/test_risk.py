"""The plan's risk measures outside the MILP (grid/plan/risk.py): the worst case of mean-CVaR over a
total-variation ball, in closed form, against the supremum solved as an LP over distributions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from scipy.optimize import linprog

from grid.plan.risk import cvar, mean_cvar, worst_case_mean_cvar


def supremum_lp(costs: np.ndarray, lam: float, alpha: float, radius: float) -> float:
    """sup over {p : 1/2 ||p - 1/S||_1 <= radius} of (1 - lambda) E_p[Q] + lambda CVaR^p_alpha(Q), as one
    LP in the distribution p, CVaR's own weights q (CVaR^p = max {q'Q : 0 <= q <= p / (1 - alpha),
    sum q = 1}) and a_s >= |p_s - 1/S|: variables [p, q, a]."""
    count = costs.size
    phat = np.full(count, 1.0 / count)
    eye, zero = sparse.identity(count, format="csr"), sparse.csr_matrix((count, count))
    upper = sparse.vstack([sparse.hstack([-eye / (1.0 - alpha), eye, zero]), sparse.hstack([eye, zero, -eye]),
                           sparse.hstack([-eye, zero, -eye]),
                           sparse.csr_matrix(np.concatenate([np.zeros(2 * count), np.ones(count)])[None, :])])
    equal = np.vstack([np.concatenate([np.ones(count), np.zeros(2 * count)]),
                       np.concatenate([np.zeros(count), np.ones(count), np.zeros(count)])])
    result = linprog(-np.concatenate([(1.0 - lam) * costs, lam * costs, np.zeros(count)]), A_ub=upper,
                     b_ub=np.concatenate([np.zeros(count), phat, -phat, [2.0 * radius]]), A_eq=equal, b_eq=[1.0, 1.0],
                     bounds=[(0, None)] * (3 * count), method="highs")
    assert result.status == 0
    return float(-result.fun)


@pytest.mark.parametrize("seed", range(6))
def test_the_closed_form_is_the_supremum_over_the_ball(seed):
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 40))
    costs = np.round(rng.exponential(size=count) * 100, 0 if seed % 2 else 6)  # ties when rounded
    for lam in (0.0, 0.3, 1.0):
        for alpha in (0.0, 0.5, 0.9):
            for radius in (0.01, 0.1, 0.37, 1.0):
                assert worst_case_mean_cvar(costs, lam, alpha, radius) == pytest.approx(
                    supremum_lp(costs, lam, alpha, radius), rel=1e-9, abs=1e-9)


def test_edges_of_the_ball():
    costs = np.array([5.0, 1.0, 9.0, 3.0])
    assert worst_case_mean_cvar(costs, 0.4, 0.5, 0.0) == mean_cvar(costs, 0.4, 0.5)
    assert worst_case_mean_cvar(costs, 0.4, 0.5, 1e-12) == pytest.approx(mean_cvar(costs, 0.4, 0.5))
    assert worst_case_mean_cvar(costs, 0.4, 0.5, 1.0) == pytest.approx(9.0)  # every distribution: all on the max
    # lambda 0, radius 0.25: a quarter of the mass moves from 1 $ to 9 $.
    assert worst_case_mean_cvar(costs, 0.0, 0.5, 0.25) == pytest.approx(costs.mean() + 0.25 * (9.0 - 1.0))
    assert cvar(costs, 0.5) == 7.0


def test_ten_thousand_scenarios_take_no_quadratic_memory():
    # The LP over distributions held (3S)^2 dense numbers: 22 GB at S = 10,000. Closed form: checked
    # against lambda 0's own closed form (mean plus the moved mass).
    costs = np.random.default_rng(1).exponential(size=10_000) * 1000
    moved = np.sort(costs)
    expected = costs.mean() + 0.1 * moved[-1] - moved[:1000].sum() / 10_000
    assert worst_case_mean_cvar(costs, 0.0, 0.9, 0.1) == pytest.approx(expected, rel=1e-12)
