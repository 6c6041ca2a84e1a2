"""Core-selecting payments nearest to VCG (docs/models/interconnection.md#eq-ic-core), by hand and
against every coalition enumerated on small markets."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from scipy.optimize import linprog

from mechanisms.errors import SizeLimitError
from mechanisms.interconnection.core_payments import MAX_CORE_WINNERS, core_rows
from mechanisms.interconnection.registry import regime_spec
from mechanisms.interconnection.requests import Headroom, Request

BUS = 3


def auction(requests, room, payment, reserve=0.0):
    spec = regime_spec("auction")
    result = spec.build(spec.rules(payment=payment, reserve_usd_per_mw=reserve)).step(
        0, requests, {BUS: Headroom(room, room)})
    return {c.request: c.payment_usd for c in result.connections}


def test_the_threshold_problem_by_hand():
    # X wants all 100 MW at 10 $/MW (1,000 $); Y and Z 50 MW each at 12 $/MW (600 $ each) win. VCG
    # charges each 1,000 - 600 = 400 $: 800 $ in all, and X would pay 1,000 $. The core asks
    # q_Y + q_Z >= 1,000; the least revenue is 1,000 $, and the point nearest VCG (400, 400) splits
    # it: 500 $ each.
    market = [Request("X", BUS, 100.0, 10.0, 0), Request("Y", BUS, 50.0, 12.0, 0), Request("Z", BUS, 50.0, 12.0, 0)]
    assert auction(market, 100.0, "vcg") == pytest.approx({"Y": 400.0, "Z": 400.0})
    assert auction(market, 100.0, "core") == pytest.approx({"Y": 500.0, "Z": 500.0})
    # Unequal VCG: Y bids 14 $/MW (VCG 1,000 - 600 = 400; Z's VCG 1,000 - 700 = 300). Nearest point
    # of q_Y + q_Z = 1,000 to (400, 300): (550, 450).
    market[1] = Request("Y", BUS, 50.0, 14.0, 0)
    assert auction(market, 100.0, "core") == pytest.approx({"Y": 550.0, "Z": 450.0}, abs=1e-5)


def test_vcg_in_the_core_is_kept():
    # The hand-checked auction of test_regimes: B pays 600 $ and C 0 $; the only coalition row with
    # both, q_B + q_C >= W({A}) = 600, holds, so the core rule charges VCG.
    market = [Request("A", BUS, 60.0, 10.0, 0), Request("B", BUS, 50.0, 20.0, 0), Request("C", BUS, 30.0, 5.0, 1)]
    assert auction(market, 100.0, "core") == auction(market, 100.0, "vcg") == pytest.approx({"B": 600.0, "C": 0.0})
    # With a reserve the same holds on the net values, and the reserve is paid on top.
    assert auction(market, 100.0, "core", reserve=6.0) == pytest.approx({"B": 540.0})


def _knapsack(values, sizes, room, members):
    best = 0.0
    for size in range(len(members) + 1):
        for chosen in combinations(members, size):
            if sum(sizes[k] for k in chosen) <= room + 1e-9:
                best = max(best, sum(values[k] for k in chosen))
    return best


@pytest.mark.parametrize("seed", range(15))
def test_core_payments_against_enumeration(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(3, 8))
    requests = [Request(f"r{k}", BUS, float(rng.integers(5, 50)), float(rng.uniform(1.0, 20.0)), 0) for k in range(n)]
    room = float(rng.integers(30, 120))
    values = [r.mw * r.value_usd_per_mw for r in requests]
    sizes = [r.mw for r in requests]
    core, vcg = auction(requests, room, "core"), auction(requests, room, "vcg")
    assert set(core) == set(vcg)
    winners = sorted(int(k[1:]) for k in core)
    q = np.array([core[f"r{k}"] for k in winners])
    bids = np.array([values[k] for k in winners])
    assert np.all(q >= np.array([vcg[f"r{k}"] for k in winners]) - 1e-6) and np.all(q <= bids + 1e-6)
    # Every blocking coalition, enumerated: winners K pay at least W(N \ K) - bids of W \ K.
    rows, bounds = [], []
    for size in range(1, len(winners) + 1):
        for chosen in combinations(range(len(winners)), size):
            rest = [k for k in range(n) if k not in {winners[c] for c in chosen}]
            row = np.isin(np.arange(len(winners)), chosen).astype(float)
            rows.append(row)
            bounds.append(_knapsack(values, sizes, room, rest) - sum(bids[c] for c in range(len(winners))
                                                                    if c not in chosen))
    rows_a, bounds_a = np.array(rows), np.array(bounds)
    assert np.all(rows_a @ q >= bounds_a - 1e-6)
    # The least revenue of the core, by an LP over the enumerated rows.
    least = linprog(np.ones(len(winners)), A_ub=-rows_a, b_ub=-bounds_a, bounds=list(zip(np.zeros(len(winners)), bids)),
                    method="highs")
    assert q.sum() == pytest.approx(least.fun, rel=1e-7, abs=1e-6)
    v = np.array([vcg[f"r{k}"] for k in winners])
    if np.all(rows_a @ v >= bounds_a - 1e-9):
        np.testing.assert_allclose(q, v, atol=1e-9)


def test_too_many_winners_for_the_enumeration():
    with pytest.raises(SizeLimitError, match="use payment = \"vcg\""):
        core_rows(list(range(MAX_CORE_WINNERS + 1)), [1.0] * (MAX_CORE_WINNERS + 1), lambda _: 0.0)
