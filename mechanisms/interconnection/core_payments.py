"""Core-selecting payments, nearest to VCG, for one bus's knapsack auction
(docs/models/interconnection.md#eq-ic-core).

Winners W with bids b_i (their net values, above the reserve) pay q_i. A coalition of the seller
with the bidders N \\ K would block unless the winners in K pay at least what it could raise:

    sum_{i in K} q_i >= W(N \\ K) - sum_{i in W \\ K} b_i        for every nonempty K ⊆ W,
    q_i <= b_i,

where W(S) is the knapsack's optimum over the bidders in S. K = {i} gives q_i >= VCG_i. Among these
payments the rule takes the least total revenue R* (the minimum-revenue core), and among those the
point nearest to the VCG payments in the Euclidean norm (Day and Cramton's rule). When the VCG
payments satisfy every constraint they are that point, and are returned as they are.
"""

from __future__ import annotations

from itertools import combinations
from typing import Callable, Sequence

import numpy as np
from scipy.optimize import LinearConstraint, linprog, minimize

from mechanisms.errors import MechanismError, SizeLimitError

# Every subset of the winners is a constraint: 2^10 - 1 = 1,023 knapsacks at most.
MAX_CORE_WINNERS = 10
# Slack for a constraint met "exactly" (money sums of $ amounts).
_TOL = 1e-7


def core_rows(winners: Sequence[int], bids: Sequence[float],
              without: Callable[[frozenset[int]], float]) -> tuple[np.ndarray, np.ndarray]:
    """The rows sum_{i in K} q_i >= W(N \\ K) - sum_{i in W \\ K} b_i, one per nonempty K ⊆ W, as (A, c)
    with A q >= c; ``without(K)`` is W(N \\ K), ``bids`` the winners' bids in ``winners``' order."""
    if len(winners) > MAX_CORE_WINNERS:
        raise SizeLimitError(f"regime.payment = \"core\": {len(winners)} winners at one bus, above the "
                             f"{MAX_CORE_WINNERS} whose coalitions are enumerated; use payment = \"vcg\"")
    rows, bounds = [], []
    for size in range(1, len(winners) + 1):
        for chosen in combinations(range(len(winners)), size):
            row = np.zeros(len(winners))
            row[list(chosen)] = 1.0
            others = sum(bids[k] for k in range(len(winners)) if k not in chosen)
            rows.append(row)
            bounds.append(without(frozenset(winners[k] for k in chosen)) - others)
    return np.array(rows), np.array(bounds)


def vcg_nearest_core(bids: Sequence[float], vcg: Sequence[float], rows: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The minimum-revenue core point nearest to ``vcg`` (#eq-ic-core)."""
    bids_a, vcg_a = np.asarray(bids, dtype=float), np.asarray(vcg, dtype=float)
    if np.all(rows @ vcg_a >= bounds - _TOL):
        return vcg_a
    n = bids_a.size
    least = linprog(np.ones(n), A_ub=-rows, b_ub=-bounds, bounds=list(zip(vcg_a, bids_a)), method="highs")
    if least.status != 0:
        raise MechanismError(f"the core payments' revenue LP failed ({least.message})")
    revenue = float(least.fun)
    nearest = minimize(lambda q: float(np.sum((q - vcg_a) ** 2)), least.x, jac=lambda q: 2.0 * (q - vcg_a),
                       method="SLSQP", bounds=list(zip(vcg_a, bids_a)),
                       constraints=[LinearConstraint(rows, bounds, np.inf),
                                    LinearConstraint(np.ones((1, n)), revenue, revenue)],
                       options={"ftol": 1e-12, "maxiter": 500})
    q = np.clip(nearest.x if nearest.success else least.x, vcg_a, bids_a)
    if not (np.all(rows @ q >= bounds - 1e-6 * max(1.0, float(np.abs(bounds).max())))
            and abs(q.sum() - revenue) <= 1e-6 * max(1.0, revenue)):
        q = least.x  # the LP's point is in the minimum-revenue core; only its nearness is lost
    return q
