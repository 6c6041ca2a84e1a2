"""Sample CVaR (docs/models/capacity.md, eq. 16) two ways: from sorted tails (cvar_from_tail) and
from one partition of every row, upwards and downwards (cvar_both_ways), against the definition
min over eta of eta + E[(X - eta)^+] / eps, evaluated here at every sample as eta."""

from __future__ import annotations

import numpy as np
import pytest

from grid.risk_measures import cvar_both_ways, cvar_from_tail


def _by_definition(row: np.ndarray, eps: float) -> float:
    """The minimum over eta of eta + mean((x - eta)^+) / eps; piecewise linear in eta with its
    kinks at the samples, so the minimum is at one of them."""
    return min(eta + np.maximum(row - eta, 0.0).mean() / eps for eta in row)


@pytest.mark.parametrize("count", [1, 7, 40, 401])
def test_both_ways_is_the_definition_at_every_level(count):
    rng = np.random.default_rng(count)
    values = rng.normal(0.0, 10.0, (6, count))
    values[0] = 3.0                                    # all tied
    values[1, : count // 2] = values[1, 0]             # half tied at one value
    levels = (0.01, 0.05, 0.1, 0.5, 0.999)
    found = cvar_both_ways(values, levels)
    for (upper, lower), eps in zip(found, levels):
        for r, row in enumerate(values):
            assert upper[r] == pytest.approx(_by_definition(row, eps), rel=1e-12, abs=1e-12)
            assert lower[r] == pytest.approx(_by_definition(-row, eps), rel=1e-12, abs=1e-12)


def test_both_ways_agrees_with_the_sorted_tails():
    rng = np.random.default_rng(7)
    values = rng.lognormal(0.0, 1.0, (50, 10_000)) * rng.choice([-1.0, 1.0], (50, 10_000))
    levels = (0.01, 0.05, 0.1)
    descending = -np.sort(-values, axis=1)
    for (upper, lower), eps in zip(cvar_both_ways(values, levels), levels):
        np.testing.assert_allclose(upper, cvar_from_tail(descending, eps, values.shape[1]), rtol=1e-12)
        np.testing.assert_allclose(lower, cvar_from_tail(-descending[:, ::-1], eps, values.shape[1]), rtol=1e-12)


def test_no_level_no_work():
    assert cvar_both_ways(np.zeros((3, 5)), ()) == []


def test_the_leading_sums_are_a_cumulative_sums_bits():
    """cvar_from_tail adds each row's leading samples left to right instead of making every
    cumulative sum: the same bits as np.cumsum read at each row's count, at one eps for all rows
    and at a different eps per row (joint mode), including rows whose count is 0 (eps S < 1)."""
    from grid.risk_measures import _leading_sums

    rng = np.random.default_rng(8)
    tail = -np.sort(-rng.normal(size=(300, 51)) * 100.0, axis=1)
    for whole in (np.full(300, 50), rng.integers(0, 51, 300), np.zeros(300, dtype=int)):
        expected = np.concatenate([np.zeros((300, 1)), np.cumsum(tail, axis=1)], axis=1)[np.arange(300), whole]
        assert np.array_equal(_leading_sums(tail, whole), expected)
