"""Exact minimiser of a small separable convex QP by enumerating active sets (test helper).

min 1/2 sum q_i x_i^2 + g'x  s.t.  a x <= b, with q > 0. A convex QP's minimiser is the minimiser
over the affine set of its active constraints, so solving the KKT system of every independent
set of at most n constraints held as equalities, and keeping the best feasible point, finds it
exactly (a few hundred tiny systems at the sizes the tests use).
"""

from __future__ import annotations

import itertools

import numpy as np


def diagonal_qp_by_active_sets(q: np.ndarray, g: np.ndarray, a: np.ndarray, b: np.ndarray,
                               tolerance: np.ndarray | float) -> np.ndarray | None:
    """The minimiser, or None if no candidate is feasible within ``tolerance`` (per row or one)."""
    n = len(q)
    best, best_value = None, np.inf
    for size in range(n + 1):
        for active in itertools.combinations(range(len(b)), size):
            rows = a[list(active)].reshape(size, n)
            if size and np.linalg.matrix_rank(rows) < size:
                continue
            kkt = np.block([[np.diag(q), rows.T], [rows, np.zeros((size, size))]])
            point = np.linalg.solve(kkt, np.r_[-g, b[list(active)]])[:n]
            if np.all(a @ point <= b + tolerance):
                value = 0.5 * q @ point**2 + g @ point
                if value < best_value - 1e-12:
                    best, best_value = point, value
    return best
