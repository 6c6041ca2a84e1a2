"""Sampling error of an interruption frequency: a binomial proportion from S scenarios."""

from __future__ import annotations

import math

from grid.risk_measures import Z95


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion (sound even at 0 successes)."""
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    z2 = Z95**2
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = Z95 * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials**2)) / (1 + z2 / trials)
    return (max(0.0, centre - half), min(1.0, centre + half))


def allowed_count(eps: float, trials: int) -> int:
    """The most interruptions in ``trials`` scenarios whose 95 % Wilson upper bound stays at or
    below eps: 0 when even none is not enough (fewer than `scenarios_needed` scenarios)."""
    count = 0
    # The upper bound grows with the count, so walk up from 0 (about eps * trials steps).
    while count < trials and wilson_interval(count + 1, trials)[1] <= eps:
        count += 1
    return count


def scenarios_needed(eps: float) -> int:
    """Fewest scenarios for which zero interruptions show eps with 95 % confidence."""
    # Wilson's upper bound at 0 successes is z^2 / (n + z^2).
    return math.ceil(Z95**2 * (1 - eps) / eps)
