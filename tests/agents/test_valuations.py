"""Valuation profiles: each demand oracle against brute-force enumeration, and input checks."""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

from agents.bundle_ties import (
    BUNDLE_TIE_POLICIES,
    FEWEST_NEW,
    LARGEST,
    SMALLEST,
    bundle_tie_policy,
)
from agents.errors import AgentConfigError
from agents.profiles import build_profile
from agents.valuations import (
    AdditiveValuation,
    BundleTableValuation,
    SymmetricConcaveValuation,
    enumerate_maximisers,
)

PRODUCTS = ["a", "b", "c", "d", "e"]
RANK = {p: i for i, p in enumerate(PRODUCTS)}


def _random_concave(rng: np.random.Generator) -> SymmetricConcaveValuation:
    marginals = np.sort(rng.integers(0, 6, size=rng.integers(1, 6)) * 5)[::-1]
    return SymmetricConcaveValuation(tuple(float(v) for v in np.cumsum(marginals)))


def _random_additive(rng: np.random.Generator) -> AdditiveValuation:
    return AdditiveValuation({p: float(rng.integers(0, 8) * 5) for p in PRODUCTS})


def _random_table(rng: np.random.Generator) -> BundleTableValuation:
    bundles = {}
    for _ in range(rng.integers(1, 5)):
        size = rng.integers(1, 4)
        bundle = frozenset(rng.choice(PRODUCTS, size=size, replace=False).tolist())
        bundles[bundle] = float(rng.integers(1, 12) * 5)
    return BundleTableValuation(tuple(bundles.items()))


@pytest.mark.parametrize("maker", [_random_additive, _random_concave, _random_table])
@pytest.mark.parametrize("rule", [LARGEST, SMALLEST, FEWEST_NEW], ids=["largest", "smallest", "fewest_new"])
def test_oracle_picks_the_brute_force_best_maximiser(maker, rule):
    rng = np.random.default_rng([zlib.crc32(maker.__name__.encode()), rule.size_sign + 1])
    for _ in range(150):
        valuation = maker(rng)
        # Prices on a 5 $ grid make ties common, which is where the rules matter.
        prices = {p: float(rng.integers(1, 8) * 5) for p in PRODUCTS}
        held = frozenset(p for p in PRODUCTS if rng.random() < 0.3)
        maximisers = enumerate_maximisers(valuation, PRODUCTS, prices)
        expected = min(maximisers, key=lambda s: rule.key(s, held, RANK))
        chosen = valuation.choose_bundle(prices, held, rule, RANK)
        assert chosen in maximisers, (valuation, prices, chosen)
        # The bids depend on the new products only; the oracle must pick the same ones.
        assert rule.key(chosen, held, RANK) == rule.key(expected, held, RANK), (valuation, prices, held)


def test_bundle_oracle_with_free_products_enumerates():
    valuation = BundleTableValuation(((frozenset({"a", "b"}), 30.0),))
    prices = {"a": 0.0, "b": 10.0, "c": 0.0}
    chosen = valuation.choose_bundle(prices, frozenset(), LARGEST, {"a": 0, "b": 1, "c": 2})
    assert chosen == {"a", "b", "c"}  # c is free, so the largest maximiser takes it


def test_values_of_each_profile_by_hand():
    additive = AdditiveValuation({"a": 20, "b": 5})
    assert additive({"a", "b", "c"}) == 25 and additive(()) == 0
    concave = SymmetricConcaveValuation((30, 50))  # extends flat beyond two products
    assert [concave(PRODUCTS[:k]) for k in range(5)] == [0, 30, 50, 50, 50]
    table = BundleTableValuation(((frozenset({"a", "b"}), 30.0), (frozenset({"a"}), 12.0)))
    assert table({"a"}) == 12 and table({"a", "b", "c"}) == 30 and table({"b"}) == 0


def test_paper_policy_is_largest_first_then_fewest_new():
    policy = bundle_tie_policy("paper")
    assert policy.rule(1) is LARGEST and policy.rule(2) is FEWEST_NEW and policy.rule(9) is FEWEST_NEW
    assert set(BUNDLE_TIE_POLICIES) == {"paper", "largest", "smallest", "fewest_new"}
    # Example 2, round 3 (docs/models/auction.md#ca-6-2): B1 holds flex@3... here item 3; items 2 and 4 both cost 10.
    b1 = SymmetricConcaveValuation((30, 50, 55, 60))
    items = ["1", "2", "3", "4"]
    prices = {"1": 15.0, "2": 10.0, "3": 5.0, "4": 10.0}
    chosen = b1.choose_bundle(prices, frozenset({"3"}), policy.rule(3), {p: i for i, p in enumerate(items)})
    assert chosen == {"2", "3"}


def test_build_profile_checks_values():
    offered = ["firm@3", "flex@3"]
    cases = [
        ("additive", {"values": {"firm@3": -1}}, "values.firm@3: value -1 \\$ is negative"),
        ("additive", {"values": {"firm@9": 1}}, "values.firm@9: unknown product 'firm@9'"),
        ("additive", {"values": {"firm@3": float("inf")}}, "values.firm@3: input should be a finite number"),
        ("symmetric_concave", {"by_size": [30, 20]}, "by_size: value of 2 products \\(20\\) is below"),
        ("symmetric_concave", {"by_size": [10, 30]}, "must be concave"),
        ("symmetric_concave", {"by_size": []}, "needs the values of 1, 2"),
        ("bundles", {"bundles": [{"products": ["firm@3", "firm@3"], "value": 5}]}, "listed twice"),
        ("bundles", {"bundles": [{"products": ["firm@3"], "value": 5}, {"products": ["firm@3"], "value": 6}]},
         "already listed"),
        ("bundles", {"bundles": [{"products": [], "value": 5}]}, r"bundles\[0\].products: list should have at least 1 item"),
        ("auction", {}, "unknown profile 'auction'"),
    ]
    for kind, params, message in cases:
        with pytest.raises(AgentConfigError, match=message):
            build_profile(kind, params, offered)


def test_withheld_products_are_ignored_not_rejected():
    profile = build_profile("additive", {"values": {"firm@3": 5, "flex@3": 7}}, ["firm@3"], withheld=["flex@3"])
    assert profile.values == {"firm@3": 5}
    table = build_profile(
        "bundles", {"bundles": [{"products": ["firm@3", "flex@3"], "value": 9}, {"products": ["firm@3"], "value": 4}]},
        ["firm@3"], withheld=["flex@3"],
    )
    assert table.bundles == ((frozenset({"firm@3"}), 4.0),)


def test_concave_oracle_is_exact_on_all_price_vectors_of_a_small_grid():
    # Every price vector on {5, 10, 15}^4 and every held set: the structured oracle must agree
    # with enumeration, including the many exact price ties.
    items = PRODUCTS[:4]
    rank = {p: i for i, p in enumerate(items)}
    valuation = SymmetricConcaveValuation((25, 45, 60, 65))
    for levels in itertools.product((5.0, 10.0, 15.0), repeat=4):
        prices = dict(zip(items, levels))
        maximisers = enumerate_maximisers(valuation, items, prices)
        for held_bits in range(16):
            held = frozenset(p for i, p in enumerate(items) if held_bits >> i & 1)
            for rule in (LARGEST, SMALLEST, FEWEST_NEW):
                chosen = valuation.choose_bundle(prices, held, rule, rank)
                best = min(maximisers, key=lambda s: rule.key(s, held, rank))
                assert chosen in maximisers
                assert rule.key(chosen, held, rank) == rule.key(best, held, rank)


def test_tie_rules_on_hand_computed_cases():
    # Additive, values a 10, b 5, c 8 at prices a 5, b 5, c 10: a is positive, b is zero, c negative.
    # Maximisers: {a} and {a, b}. largest -> {a, b}; smallest -> {a}; fewest_new with b held -> {a, b}
    # (b adds nothing new), without b held -> {a}.
    additive = AdditiveValuation({"a": 10, "b": 5, "c": 8})
    prices = {"a": 5.0, "b": 5.0, "c": 10.0}
    rank = {"a": 0, "b": 1, "c": 2}
    assert additive.choose_bundle(prices, frozenset(), LARGEST, rank) == {"a", "b"}
    assert additive.choose_bundle(prices, frozenset(), SMALLEST, rank) == {"a"}
    assert additive.choose_bundle(prices, frozenset({"b"}), FEWEST_NEW, rank) == {"a", "b"}
    assert additive.choose_bundle(prices, frozenset(), FEWEST_NEW, rank) == {"a"}
    # Concave f = 20, 30, 35 at prices a 10, b 10, c 5: size 1 -> 20 - 5 = 15; size 2 -> 30 - 15 = 15
    # ({c} plus a or b); size 3 -> 35 - 25 = 10. Maximisers {c}, {a, c}, {b, c}.
    concave = SymmetricConcaveValuation((20, 30, 35))
    prices = {"a": 10.0, "b": 10.0, "c": 5.0}
    assert concave.choose_bundle(prices, frozenset(), LARGEST, rank) == {"a", "c"}  # lowest index
    assert concave.choose_bundle(prices, frozenset(), SMALLEST, rank) == {"c"}
    # Holding b and c, {c} and {b, c} both add nothing new: the same bids (none) either way.
    assert concave.choose_bundle(prices, frozenset({"b", "c"}), FEWEST_NEW, rank) - {"b", "c"} == set()
    # Holding a: {c} and {a, c} both mean one new bid, on c (not b: {b, c} would need two).
    assert concave.choose_bundle(prices, frozenset({"a"}), FEWEST_NEW, rank) - {"a"} == {"c"}
    assert concave.choose_bundle(prices, frozenset({"b"}), LARGEST, rank) == {"b", "c"}  # held b first
    # Bundles: {a, b} 25 and {c} 12 at prices 10, 5, 7: surpluses 10 and 5 -> {a, b} for every rule;
    # at c = 2 both reach 10: largest -> {a, b}; smallest and fewest_new -> {c}.
    table = BundleTableValuation(((frozenset({"a", "b"}), 25.0), (frozenset({"c"}), 12.0)))
    assert table.choose_bundle({"a": 10.0, "b": 5.0, "c": 7.0}, frozenset(), SMALLEST, rank) == {"a", "b"}
    tied = {"a": 10.0, "b": 5.0, "c": 2.0}
    assert table.choose_bundle(tied, frozenset(), LARGEST, rank) == {"a", "b"}
    assert table.choose_bundle(tied, frozenset(), SMALLEST, rank) == {"c"}
    assert table.choose_bundle(tied, frozenset(), FEWEST_NEW, rank) == {"c"}
    assert table.choose_bundle(tied, frozenset({"a", "b"}), FEWEST_NEW, rank) == {"a", "b"}
