"""The corrected tiers keep the linear study's risk (grid/ac/tier_risk.py): four correction rows
on bus 4 of the paper's case, each held at CVaR_eps on its own, break in different scenarios, so
that bus 4's product is interrupted far more often than eps; counted here scenario by scenario."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grid.ac.tier_risk import hold_products, tier_interruptions
from grid.capacity.inputs.binomial import allowed_count
from grid.capacity.inputs.candidates import make_candidates
from grid.capacity.inputs.corrections import Corrections, LinearRow
from grid.capacity.study import capacity_study
from grid.load.scenarios import TruncatedNormalLoad, sample_truncated_normal
from grid.network.cases import load_case

LOADS = {1: TruncatedNormalLoad(25.0, 5.0, 20.0, 30.0), 2: TruncatedNormalLoad(25.0, 5.0, 20.0, 30.0),
         3: TruncatedNormalLoad(15.0, 5.0, 10.0, 20.0), 4: TruncatedNormalLoad(20.0, 5.0, 10.0, 30.0)}
EPS = 0.2


def sorted_cvar(values: np.ndarray, eps: float) -> float:
    ordered = np.sort(values)[::-1]
    mass = eps * ordered.size
    whole = int(math.floor(mass))
    return float((ordered[:whole].sum() + (mass - whole) * ordered[whole]) / mass)


def interrupted_here(rows: tuple[LinearRow, ...], c4: float, samples: np.ndarray) -> int:
    """Scenarios in which some row c4 + p_j <= limit breaks (each row's background is one bus)."""
    broken = np.zeros(samples.shape[0], dtype=bool)
    for row in rows:
        broken |= c4 + samples @ row.background_coef > row.limit_mw + 1e-7
    return int(broken.sum())


def test_rows_that_break_apart_are_held_until_the_product_keeps_its_risk():
    net = load_case("paper-4bus")
    scenarios = sample_truncated_normal(net, LOADS, 1000, np.random.default_rng(3))
    candidates = make_candidates(net, {3: 40.0, 4: 30.0})
    samples = scenarios.samples_mw
    # Row j: c4 + p_j <= CVaR_eps(p_j) + 5, so that each alone gives the tier c4 = 5 MW.
    rows = tuple(LinearRow(f"row {j}", np.array([0.0, 1.0]), np.eye(4)[j], sorted_cvar(samples[:, j], EPS) + 5.0)
                 for j in range(4))
    corrections = Corrections(np.zeros((3, 2)), rows)

    def solve(given: Corrections):
        return capacity_study(net, scenarios, candidates, [EPS], corrections=given)

    linear = capacity_study(net, scenarios, candidates, [EPS])
    h = linear.flows.rows(np.arange(len(net.lines)))
    plain = solve(corrections)
    allowed = allowed_count(EPS, scenarios.count)
    # Without holding: every row binds at c4 = 5 MW and their union breaks the promise.
    assert plain.tiers[0].capacity_mw[4] == pytest.approx(5.0, abs=1e-5)
    assert interrupted_here(rows, 5.0, samples) > 1.3 * allowed
    held, grown = hold_products(plain, scenarios, h, tier_interruptions(linear, scenarios, h)[0], corrections, solve)
    c4 = held.tiers[0].capacity_mw[4]
    assert 0.0 < c4 < 5.0
    assert interrupted_here(grown.rows, c4, samples) <= allowed
    assert any(row.risk_share < 1.0 for row in grown.rows)
