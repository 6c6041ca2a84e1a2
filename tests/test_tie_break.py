"""The capacity-space tie-break QP (grid/tie_break.py) against HiGHS's QP and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from grid.tie_break import _highs_qp, _kkt_holds, separable_qp


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
    """Enumerate active sets of rows and bounds: the KKT point that is feasible and optimal."""
    n = len(q)
    best, best_value = None, np.inf
    constraints = [(a[j], b[j]) for j in range(len(b))]
    constraints += [(np.eye(n)[i], upper[i]) for i in range(n)] + [(-np.eye(n)[i], -lower[i]) for i in range(n)]
    for size in range(0, n + 1):
        for active in itertools.combinations(range(len(constraints)), size):
            rows = np.array([constraints[k][0] for k in active]).reshape(size, n)
            rhs = np.array([constraints[k][1] for k in active])
            if size and np.linalg.matrix_rank(rows) < size:
                continue
            kkt = np.block([[np.diag(q), rows.T], [rows, np.zeros((size, size))]])
            point = np.linalg.solve(kkt, np.r_[-g, rhs])[:n]
            if np.all(a @ point <= b + 1e-9) and np.all(point >= lower - 1e-9) and np.all(point <= upper + 1e-9):
                value = 0.5 * q @ point**2 + g @ point
                if value < best_value - 1e-12:
                    best, best_value = point, value
    return best


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
