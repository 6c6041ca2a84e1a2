"""The plan's risk measures evaluated on cost samples, outside the MILP.

These are the yardsticks the report and the tests hold the MILP to: mean-CVaR by sorting (the
same sample CVaR as the capacity study, `grid.risk_measures.sample_cvar`), and its worst case over a
total-variation ball under the ball's worst distribution, not through the dual that the MILP
embeds (docs/models/plan.md#eq-f-dro-dual); and 95 % intervals of the figures a plan reports on
fresh scenarios.
"""

from __future__ import annotations

import numpy as np

from grid.risk_measures import Z95, sample_cvar


def cvar(costs: np.ndarray, alpha: float) -> float:
    """CVaR_alpha (14) of equally likely costs: the mean of the worst (1 - alpha) share."""
    return float(sample_cvar(np.asarray(costs, dtype=float), 1.0 - alpha))


def mean_cvar(costs: np.ndarray, lam: float, alpha: float) -> float:
    """(1 - lambda) E[Q] + lambda CVaR_alpha(Q), the risk term of (1) [ours: mean-CVaR]."""
    costs = np.asarray(costs, dtype=float)
    return float((1.0 - lam) * costs.mean() + lam * cvar(costs, alpha))


def worst_case_mean_cvar(costs: np.ndarray, lam: float, alpha: float, radius: float) -> float:
    """sup over {p : 1/2 ||p - 1/S||_1 <= radius} of (1 - lambda) E_p[Q] + lambda CVaR^p_alpha(Q)
    (docs/models/plan.md#eq-f-dro).

    The ball holds a largest distribution in first-order stochastic dominance: the radius's mass
    taken from the cheapest scenarios and put on the dearest. The mean and CVaR both grow with
    dominance, so that distribution is the worst case of both at once; the risk measure is then
    evaluated under it, in O(S log S). tests/grid/plan/test_risk.py holds it to the supremum
    solved as an LP over distributions and CVaR's weights.
    """
    costs = np.asarray(costs, dtype=float)
    if radius == 0:
        return mean_cvar(costs, lam, alpha)
    order = np.argsort(costs, kind="stable")
    sorted_costs = costs[order]
    weights = np.full(costs.size, 1.0 / costs.size)
    # Take the radius's mass from the cheapest scenarios (never from the dearest, which receives it).
    taken = np.minimum(weights[:-1], np.maximum(0.0, radius - np.concatenate([[0.0], np.cumsum(weights[:-1])[:-1]])))
    weights[:-1] -= taken
    weights[-1] += taken.sum()
    mean = float(weights @ sorted_costs)
    # CVaR under these weights: the mean of the dearest (1 - alpha) of the mass.
    tail = 1.0 - alpha
    above = np.concatenate([[0.0], np.cumsum(weights[::-1])[:-1]])  # mass dearer than each scenario
    share = np.clip(tail - above, 0.0, weights[::-1])
    cvar_p = float(share @ sorted_costs[::-1]) / tail
    return (1.0 - lam) * mean + lam * cvar_p


def mean_interval(values: np.ndarray) -> tuple[float, float]:
    """95 % interval of E[X] from independent samples: mean -/+ z s / sqrt(n), asymptotic by the
    central limit theorem (docs/models/plan.md#eq-f-ci)."""
    values = np.asarray(values, dtype=float)
    half = Z95 * float(values.std(ddof=1)) / np.sqrt(values.size) if values.size > 1 else np.inf
    return float(values.mean()) - half, float(values.mean()) + half


def ratio_interval(hits: np.ndarray, trials: np.ndarray) -> tuple[float, float]:
    """95 % interval of sum(hits) / sum(trials) over independent scenarios (sites of one scenario
    move together, so the scenario is the sample): the delta method, var = var(h - R t) / (n tbar^2)."""
    hits, trials = np.asarray(hits, dtype=float), np.asarray(trials, dtype=float)
    if trials.sum() == 0:
        return 1.0, 1.0
    ratio = hits.sum() / trials.sum()
    n = hits.size
    spread = float((hits - ratio * trials).std(ddof=1)) if n > 1 else np.inf
    half = Z95 * spread / (np.sqrt(n) * trials.mean())
    return max(0.0, ratio - half), min(1.0, ratio + half)


def cvar_interval(costs: np.ndarray, alpha: float) -> tuple[float, float]:
    """95 % interval of CVaR_alpha: the sample CVaR -/+ z sd((Q - VaR)+) / ((1 - alpha) sqrt(n)), the
    estimator's asymptotic law (its influence function is VaR + (Q - VaR)+ / (1 - alpha) - CVaR)."""
    costs = np.asarray(costs, dtype=float)
    centre = cvar(costs, alpha)
    if costs.size < 2:
        return -np.inf, np.inf
    var = float(np.quantile(costs, alpha, method="inverted_cdf"))
    half = Z95 * float(np.maximum(costs - var, 0.0).std(ddof=1)) / ((1.0 - alpha) * np.sqrt(costs.size))
    return centre - half, centre + half
