"""The capacity-space tie-break QP (grid/capacity/lp/tie_break.py) against HiGHS's QP and brute force."""

from __future__ import annotations

import numpy as np
import pytest

from grid.capacity.lp.tie_break import _highs_qp, _kkt_holds, separable_qp
from tests.qp_brute_force import diagonal_qp_by_active_sets


def random_qp(rng: np.random.Generator, parallel: bool):
    n, m = int(rng.integers(3, 5)), int(rng.integers(1, 4))
    q = rng.uniform(0.5, 3.0, n)
    g = -rng.uniform(1.0, 10.0, n)
    lower = np.zeros(n)
    upper = rng.uniform(1.0, 5.0, n)
    a = rng.uniform(-1.0, 2.0, (m, n))
    b = a @ (upper * rng.uniform(0.2, 0.8, n))   # a point inside: feasible
    if parallel:
        # Two parallel rows, as the two holds are when every request is the same.
        a = np.vstack([a, 2.0 * a[0]])
        b = np.r_[b, 2.0 * b[0] + 0.5]
    return q, g, a, b, lower, upper


def brute_force(q, g, a, b, lower, upper):
    """The QP's exact minimiser: rows and bounds as one set of constraints, enumerated."""
    n = len(q)
    return diagonal_qp_by_active_sets(q, g, np.vstack([a, np.eye(n), -np.eye(n)]), np.r_[b, upper, -lower], 1e-9)


@pytest.mark.parametrize("seed", range(30))
def test_the_dual_solution_is_the_qp_optimum_or_it_declines(seed):
    rng = np.random.default_rng(seed)
    q, g, a, b, lower, upper = random_qp(rng, parallel=seed % 2 == 1)
    expected = brute_force(q, g, a, b, lower, upper)
    got = separable_qp(q, g, a, b, lower, upper)
    if got is not None:   # when it answers, it is the optimum
        np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(_highs_qp(q, g, a, b, lower, upper, "test"), expected, atol=1e-5)


def test_it_answers_the_common_case_and_the_check_rejects_a_wrong_point():
    # Equal requests, a supply row and the two (parallel) holds: the even split 2, 2, 2.
    q, g = np.full(3, 2.0), np.full(3, -2.0 * 10)
    a = np.array([[1.0, 1.0, 1.0], [-0.1, -0.1, -0.1], [-1.0, -1.0, -1.0]])
    b = np.array([6.0, -0.6, -6.0])
    lower, upper = np.zeros(3), np.full(3, 10.0)
    got = separable_qp(q, g, a, b, lower, upper)
    np.testing.assert_allclose(got, [2.0, 2.0, 2.0], atol=1e-9)
    assert not _kkt_holds(q, g, a, b, lower, upper, np.array([3.0, 2.0, 1.0]), np.zeros(3), 1e-7)
