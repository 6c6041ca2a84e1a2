"""Certificates at any size (mechanisms/judge/certify.py) against the exact enumeration, hand values and
the SAA on random gross-substitutes populations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from agents.valuations import (
    AdditiveValuation,
    BundleTableValuation,
    SymmetricConcaveValuation,
)
from mechanisms.engines.saa import AuctionRules
from mechanisms.judge.certify import best_allocation, certify, check_prices
from mechanisms.judge.equilibrium import check_equilibrium
from tests.auction_driver import simulate


def unit_demand(values: dict[str, float]) -> BundleTableValuation:
    return BundleTableValuation(bundles=tuple((frozenset({p}), float(v)) for p, v in values.items()))


def random_valuation(rng: np.random.Generator, products: tuple[str, ...]):
    kind = rng.integers(3)
    if kind == 0:
        return AdditiveValuation(values={p: float(rng.integers(0, 20)) for p in products})
    if kind == 1:
        marginals = np.sort(rng.integers(0, 20, size=len(products)))[::-1]
        return SymmetricConcaveValuation(by_size=tuple(float(v) for v in np.cumsum(marginals)))
    table = {}
    for size in range(1, len(products) + 1):
        for combo in itertools.combinations(products, size):
            if rng.random() < 0.4:
                table[frozenset(combo)] = float(rng.integers(1, 30))
    return BundleTableValuation(bundles=tuple(table.items()))


@pytest.mark.parametrize("seed", range(60))
def test_oracle_certificates_agree_with_the_exact_enumeration(seed):
    # Random markets, random allocations and prices: the demand-oracle check of (7a)/(7b) and
    # the MILP optimum must give the exact checker's answers (bundle enumeration, 3^m DP).
    rng = np.random.default_rng(seed)
    products = tuple(f"p{i}" for i in range(int(rng.integers(1, 5))))
    valuations = {f"b{j}": random_valuation(rng, products) for j in range(int(rng.integers(1, 4)))}
    allocation = {p: (None if rng.random() < 0.3 else str(rng.choice(list(valuations)))) for p in products}
    prices = {p: float(rng.choice([0, rng.integers(0, 20)])) for p in products}
    delta = float(rng.choice([0, 1, 5]))
    exact = check_equilibrium(products, valuations, allocation, prices, delta)
    got = certify(products, valuations, allocation, prices, delta)
    assert got.prices_form_equilibrium == exact.holds
    assert got.true.holds == exact.holds_true_valuations
    assert got.welfare == pytest.approx(exact.welfare)
    assert got.optimum is not None and got.optimum.welfare == pytest.approx(exact.efficient_welfare)
    assert [v.condition for v in got.modified.violations] == [v.condition for v in exact.violations]


def test_unit_demand_market_has_an_equilibrium_at_prices_2_and_0():
    # Bidder 1 values A 10, B 8; bidder 2 values A 9, B 4 (each wants one item). Efficient:
    # 1 gets B, 2 gets A, welfare 17. At (A, B) = (2, 0): bidder 1's surplus is 8 from B and
    # 8 from A, bidder 2's 7 from A and 4 from B: both hold a best bundle.
    valuations = {"1": unit_demand({"A": 10, "B": 8}), "2": unit_demand({"A": 9, "B": 4})}
    got = certify(("A", "B"), valuations, {"A": "2", "B": "1"}, {"A": 2.0, "B": 0.0}, 0.0)
    assert got.prices_form_equilibrium and got.welfare == 17
    assert got.optimum.walrasian_exists and got.optimum.welfare == 17
    assert got.optimum.minimal_prices == pytest.approx({"A": 2.0, "B": 0.0})
    # At (1, 0) bidder 1 would rather have A (surplus 9 > 8).
    low = check_prices(("A", "B"), valuations, {"A": "2", "B": "1"}, {"A": 1.0, "B": 0.0}, 0.0)
    assert not low.holds and low.violations[0].bidder == "1" and low.violations[0].bundle == ("A",)


def test_complements_without_an_equilibrium_report_the_gap():
    # Bidder 1 values only {A, B} at 3; bidder 2 wants one item at 2. Best integer welfare 3
    # (either way); the LP mixes half of each: 0.5 * 3 + 0.5 * (2 + ...) = 3.5.
    valuations = {
        "1": BundleTableValuation(bundles=((frozenset({"A", "B"}), 3.0),)),
        "2": unit_demand({"A": 2, "B": 2}),
    }
    optimum, allocation, skipped = best_allocation(("A", "B"), valuations)
    assert skipped is None
    assert optimum.welfare == pytest.approx(3.0) and optimum.lp_value == pytest.approx(3.5)
    assert not optimum.walrasian_exists and optimum.lp_gap == pytest.approx(0.5)
    certificate = certify(("A", "B"), valuations, {"A": "1", "B": "1"}, {"A": 1.5, "B": 1.5}, 0.0)
    summary = certificate.as_dict()
    assert summary["walrasian_exists"] is False and summary["lp_gap"] == pytest.approx(0.5)


def test_atoms_reproduce_each_valuation():
    # The OR of a valuation's atoms must be the valuation: best assignment of a bundle's products
    # to the atoms (each atom takes at most one of its bundles), by brute force.
    rng = np.random.default_rng(7)
    products = ("a", "b", "c", "d")
    for _ in range(30):
        valuation = random_valuation(rng, products)
        atoms = valuation.atoms(products)
        for size in range(len(products) + 1):
            for combo in itertools.combinations(products, size):
                bundle = frozenset(combo)
                assert _or_value(atoms, bundle) == pytest.approx(valuation(bundle)), (valuation, bundle)


def _or_value(atoms, bundle: frozenset[str]) -> float:
    best = 0.0
    choices = [[None] + [(b, v) for b, v in atom if b <= bundle] for atom in atoms]
    for pick in itertools.product(*choices):
        used, total, clash = set(), 0.0, False
        for item in pick:
            if item is None:
                continue
            b, v = item
            if used & b:
                clash = True
                break
            used |= b
            total += v
        if not clash:
            best = max(best, total)
    return best


def random_gs_population(rng: np.random.Generator, products: tuple[str, ...], bidders: int):
    """Additive, symmetric concave and unit-demand bidders on a 1 $ grid (all gross substitutes)."""
    valuations = []
    for j in range(bidders):
        kind = j % 3
        if kind == 0:
            valuation = AdditiveValuation(values={p: float(rng.integers(0, 15)) for p in products})
        elif kind == 1:
            marginals = np.sort(rng.integers(0, 15, size=len(products)))[::-1]
            valuation = SymmetricConcaveValuation(by_size=tuple(float(v) for v in np.cumsum(marginals)))
        else:
            valuation = unit_demand({p: float(rng.integers(0, 15)) for p in products})
        valuations.append((f"b{j}", valuation))
    return valuations


@pytest.mark.parametrize("seed", range(100))
def test_the_saa_reaches_an_equilibrium_of_8_on_random_gross_substitutes_populations(seed):
    # Proposition 3: with gross substitutes and straightforward bidding the final outcome is a CE
    # under (8), and (9) bounds the welfare loss by delta |M|.
    rng = np.random.default_rng(10_000 + seed)
    products = tuple(f"p{i}" for i in range(int(rng.integers(2, 9))))
    bidders = random_gs_population(rng, products, int(rng.integers(2, 6)))
    auction, _ = simulate(products, bidders, AuctionRules(increment=1.0))
    outcome = auction.outcome()
    valuations = dict(bidders)
    got = certify(products, valuations, outcome.allocation, outcome.prices, 1.0)
    assert got.prices_form_equilibrium, [v.message for v in got.modified.violations]
    summary = got.as_dict()
    assert summary["efficiency_bound_holds"]
    assert summary["walrasian_exists"]      # Theorem 2: gross substitutes, so one exists
