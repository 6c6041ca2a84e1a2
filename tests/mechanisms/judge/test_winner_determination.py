"""Winner determination and Walrasian certificates (docs/models/auction.md#ca-4-3, (C-6) to (C-9)) against hand
values and brute force.

Every expected number is worked out by hand in a comment or computed here by exhaustive search over
allocations / bundles / an integer price grid; nothing is taken from the code under test.
"""

from __future__ import annotations

import itertools
import math
import random
from types import SimpleNamespace

import pytest

import mechanisms.judge.winner_determination as wd
from mechanisms.errors import MechanismError
from mechanisms.judge.winner_determination import (
    solve_winner_determination,
    xor_bids_from_value,
)

F = frozenset
TOL = 1e-7


# ---------------------------------------------------------------- independent brute-force helpers


def xor_value(bids, bundle) -> float:
    """v_i(S) = max over listed T ⊆ S of value(T), v_i(∅) = 0 (free disposal)."""
    return max([v for t, v in bids if F(t) <= bundle], default=0.0)


def subsets(products):
    for r in range(len(products) + 1):
        for combo in itertools.combinations(products, r):
            yield F(combo)


def brute_force_welfare(products, bids) -> float:
    """Max over every assignment of each product to a bidder or to nobody, (n+1)^m of them."""
    bidders = list(bids)
    best = 0.0
    for owners in itertools.product(range(len(bidders) + 1), repeat=len(products)):
        held = [F(p for p, o in zip(products, owners) if o == i) for i in range(len(bidders))]
        best = max(best, sum(xor_value(bids[b], held[i]) for i, b in enumerate(bidders)))
    return best


def is_equilibrium(products, bids, allocation, prices) -> bool:
    """Definition 1 (docs/models/auction.md#eq-c-7): (C-7a) every held bundle is in the demand set (C-6) over all
    subsets; (C-7b) unsold price 0."""
    if any(prices[p] < -1e-9 for p in products):
        return False
    sold = set().union(*allocation.values())
    if any(prices[p] > TOL for p in products if p not in sold):
        return False
    for bidder, held in allocation.items():
        mine = xor_value(bids[bidder], held) - sum(prices[p] for p in held)
        for s in subsets(products):
            if xor_value(bids[bidder], s) - sum(prices[p] for p in s) > mine + TOL:
                return False
    return True


def assert_disjoint_and_valued(products, bids, result) -> None:
    assert set(result.allocation) == set(bids)
    seen: set[str] = set()
    for held in result.allocation.values():
        assert not (held & seen)
        seen |= held
    assert seen <= set(products)
    got = sum(xor_value(bids[b], held) for b, held in result.allocation.items())
    assert got == pytest.approx(result.welfare, abs=1e-9)


# ---------------------------------------------------------------- hand-computed markets


def test_unit_demand_two_bidders_two_items():
    products = ["A", "B"]
    bids = {"1": [(F("A"), 10.0), (F("B"), 8.0)], "2": [(F("A"), 9.0), (F("B"), 4.0)]}
    r = solve_winner_determination(products, bids)
    # 1:A + 2:B = 14, 1:B + 2:A = 17.
    assert r.welfare == 17.0
    assert r.allocation == {"1": F("B"), "2": F("A")}
    assert r.lp_value == pytest.approx(17.0)
    assert r.lp_gap == 0.0 and r.walrasian_exists
    # Supporting 1:B, 2:A (both sold, so (7b) is void):
    #   bidder 1 prefers B:  8 - pB >= 10 - pA  ->  pA - pB >= 2;   8 - pB >= 0
    #   bidder 2 prefers A:  9 - pA >=  4 - pB  ->  pA - pB <= 5;   9 - pA >= 0
    # Min sum: pB = 0, pA = 2 (sum 2, unique). Max sum: pA <= 9 and pB <= pA - 2 give
    # pA + pB <= 2 pA - 2 <= 16, attained only at (9, 7).
    assert r.minimal_prices == pytest.approx({"A": 2.0, "B": 0.0}, abs=TOL)
    assert r.maximal_prices == pytest.approx({"A": 9.0, "B": 7.0}, abs=TOL)
    assert is_equilibrium(products, bids, r.allocation, r.prices)
    # Surplus at the returned prices: bidder 1 gets 8 - pB, bidder 2 gets 9 - pA.
    assert r.utilities == pytest.approx({"1": 8 - r.prices["B"], "2": 9 - r.prices["A"]}, abs=TOL)


def test_complements_have_no_walrasian_equilibrium():
    products = ["A", "B"]
    bids = {"1": [(F("AB"), 3.0)], "2": [(F("A"), 2.0), (F("B"), 2.0)]}
    r = solve_winner_determination(products, bids)
    # Integer: 1 takes {A,B} (3) or 2 takes one item (2).  LP: x_1AB = x_2A = x_2B = 1/2 is feasible
    # with value 1.5 + 1 + 1 = 3.5, and the dual u_2 = 0.5, pA = pB = 1.5, u_1 = 0 also costs 3.5.
    assert r.welfare == 3.0
    assert r.allocation == {"1": F("AB"), "2": F()}
    assert r.lp_value == pytest.approx(3.5)
    assert r.lp_gap == pytest.approx(0.5)
    assert not r.walrasian_exists
    assert r.prices is None and r.utilities is None
    assert r.minimal_prices is None and r.maximal_prices is None


def test_exposure_market_has_an_equilibrium_range():
    products = ["A", "B"]
    bids = {"1": [(F("AB"), 3.0)], "2": [(F("A"), 2.0)], "3": [(F("B"), 2.0)]}
    r = solve_winner_determination(products, bids)
    # 2:A + 3:B = 4 beats 1:AB = 3.  CE prices: pA <= 2, pB <= 2 (2 and 3 buy) and pA + pB >= 3
    # (1 stays out): min sum 3 (not unique componentwise), max (2, 2).
    assert r.welfare == 4.0
    assert r.allocation == {"1": F(), "2": F("A"), "3": F("B")}
    assert r.lp_value == pytest.approx(4.0) and r.walrasian_exists
    assert sum(r.minimal_prices.values()) == pytest.approx(3.0, abs=TOL)
    assert r.maximal_prices == pytest.approx({"A": 2.0, "B": 2.0}, abs=TOL)
    for prices in (r.prices, r.minimal_prices, r.maximal_prices, {"A": 1.5, "B": 1.5}):
        assert is_equilibrium(products, bids, r.allocation, prices)
        assert sum(r.minimal_prices.values()) - TOL <= sum(prices.values()) <= 4.0 + TOL
    assert all(r.minimal_prices[p] <= r.maximal_prices[p] + TOL for p in products)


def test_single_item_second_and_first_price():
    bids = {"1": [(F("A"), 10.0)], "2": [(F("A"), 7.0)], "3": [(F("A"), 4.0)]}
    r = solve_winner_determination(["A"], bids)
    # Bidder 1 wins; p <= 10 keeps it buying and p >= 7 keeps bidder 2 out.
    assert r.welfare == 10.0
    assert r.allocation == {"1": F("A"), "2": F(), "3": F()}
    assert r.walrasian_exists
    assert r.minimal_prices["A"] == pytest.approx(7.0, abs=TOL)
    assert r.maximal_prices["A"] == pytest.approx(10.0, abs=TOL)
    assert 7.0 - TOL <= r.prices["A"] <= 10.0 + TOL


def test_unbid_product_and_bidder_without_bids():
    products = ["A", "B", "C"]
    bids = {"1": [(F("A"), 5.0)], "2": [], "3": [(F("AB"), 0.0)]}
    r = solve_winner_determination(products, bids)
    assert r.welfare == 5.0
    assert r.allocation == {"1": F("A"), "2": F(), "3": F()}
    for prices in (r.prices, r.minimal_prices, r.maximal_prices):
        assert prices["B"] == 0.0 and prices["C"] == 0.0
    assert r.minimal_prices["A"] == pytest.approx(0.0, abs=TOL)
    assert r.maximal_prices["A"] == pytest.approx(5.0, abs=TOL)


def test_no_bids_at_all():
    r = solve_winner_determination(["A", "B"], {"1": [], "2": []})
    assert r.welfare == 0.0 and r.lp_value == 0.0 and r.walrasian_exists
    assert r.allocation == {"1": F(), "2": F()}
    assert r.prices == r.minimal_prices == r.maximal_prices == {"A": 0.0, "B": 0.0}


def test_repeated_bundle_counts_at_its_best_value():
    r = solve_winner_determination(["A"], {"1": [(F("A"), 2.0), (F("A"), 6.0)], "2": [(F("A"), 5.0)]})
    assert r.welfare == 6.0 and r.allocation["1"] == F("A")
    assert r.minimal_prices["A"] == pytest.approx(5.0, abs=TOL)


# ---------------------------------------------------------------- random markets against brute force


def random_xor_market(rng: random.Random):
    products = [f"p{j}" for j in range(rng.randint(3, 4))]
    nonempty = [s for s in subsets(products) if s]
    bids = {}
    for i in range(rng.randint(2, 4)):
        bundles = rng.sample(nonempty, rng.randint(1, 4))
        bids[f"b{i}"] = [(s, float(rng.randint(1, 12))) for s in bundles]
    return products, bids


def test_random_xor_markets_match_brute_force():
    rng = random.Random(20240611)
    seen_gap = seen_ce = 0
    for _ in range(120):
        products, bids = random_xor_market(rng)
        r = solve_winner_determination(products, bids)
        assert r.welfare == pytest.approx(brute_force_welfare(products, bids), abs=1e-9)
        assert_disjoint_and_valued(products, bids, r)
        assert r.lp_value >= r.welfare - 1e-9 and r.lp_gap >= 0.0
        assert r.walrasian_exists == (r.lp_gap == 0.0)
        if r.walrasian_exists:
            seen_ce += 1
            for prices in (r.prices, r.minimal_prices, r.maximal_prices):
                assert is_equilibrium(products, bids, r.allocation, prices)
            assert sum(r.minimal_prices.values()) <= sum(r.prices.values()) + TOL
            assert sum(r.prices.values()) <= sum(r.maximal_prices.values()) + TOL
        else:
            seen_gap += 1
            assert r.lp_gap > 0.0 and r.prices is None
    assert seen_gap > 0 and seen_ce > 0  # both branches exercised


def integer_grid_equilibria(products, bids, allocation, top: int):
    """All integer price vectors in {0..top}^m that support ``allocation`` (docs/models/auction.md#eq-c-7)."""
    found = []
    for combo in itertools.product(range(top + 1), repeat=len(products)):
        prices = dict(zip(products, map(float, combo)))
        if is_equilibrium(products, bids, allocation, prices):
            found.append(combo)
    return found


def test_random_unit_demand_markets_have_lattice_equilibria():
    # Unit demand satisfies gross substitutes, so a CE exists (Theorem 2); the CE price set is an integral
    # lattice for integer values, so its componentwise min / max are the grid's min / max.
    rng = random.Random(7)
    for _ in range(12):
        products = ["A", "B", "C"]
        bids = {
            f"b{i}": [(F([p]), float(rng.randint(0, 6))) for p in products] for i in range(rng.randint(2, 3))
        }
        r = solve_winner_determination(products, bids)
        assert r.walrasian_exists and r.lp_gap == 0.0
        assert r.welfare == pytest.approx(brute_force_welfare(products, bids), abs=1e-9)
        assert_disjoint_and_valued(products, bids, r)
        grid = integer_grid_equilibria(products, bids, r.allocation, top=6)
        assert grid, "a unit-demand market must have integer CE prices"
        low = {p: float(min(c[j] for c in grid)) for j, p in enumerate(products)}
        high = {p: float(max(c[j] for c in grid)) for j, p in enumerate(products)}
        assert r.minimal_prices == pytest.approx(low, abs=TOL)
        assert r.maximal_prices == pytest.approx(high, abs=TOL)
        assert is_equilibrium(products, bids, r.allocation, r.prices)


def test_random_additive_markets_have_equilibria():
    # Additive (Condition 1) is gross substitutes; the XOR list is written out by hand here.
    rng = random.Random(11)
    for _ in range(25):
        products = [f"p{j}" for j in range(rng.randint(3, 4))]
        bids = {}
        for i in range(rng.randint(2, 4)):
            item = {p: rng.uniform(0.0, 10.0) for p in products}
            bids[f"b{i}"] = [(s, sum(item[p] for p in s)) for s in subsets(products) if s]
        r = solve_winner_determination(products, bids)
        # Additive welfare: each product goes to its highest value.
        expected = sum(max(xor_value(b, F([p])) for b in bids.values()) for p in products)
        assert r.welfare == pytest.approx(expected, rel=1e-9)
        assert r.walrasian_exists
        for prices in (r.prices, r.minimal_prices, r.maximal_prices):
            assert is_equilibrium(products, bids, r.allocation, prices)


# ---------------------------------------------------------------- xor_bids_from_value


def test_xor_bids_from_additive_value_keep_all_bundles():
    item = {"A": 1.0, "B": 2.0, "C": 4.0}
    bids = xor_bids_from_value(lambda s: sum(item[p] for p in s), ["A", "B", "C"])
    assert len(bids) == 7
    assert {s: v for s, v in bids} == {s: sum(item[p] for p in s) for s in subsets("ABC") if s}


def test_xor_bids_drop_bundles_implied_by_free_disposal():
    # Worth 5 whenever A is held: every superset of {A} adds nothing.
    assert xor_bids_from_value(lambda s: 5.0 if "A" in s else 0.0, ["A", "B", "C"]) == [(F("A"), 5.0)]
    # Unit demand max(3, 4): only the singletons survive; {A,B} equal to its best subset is dropped.
    unit = {"A": 3.0, "B": 4.0}
    assert sorted(xor_bids_from_value(lambda s: max([unit[p] for p in s], default=0.0), ["A", "B"]),
                  key=lambda b: b[1]) == [(F("A"), 3.0), (F("B"), 4.0)]
    # Exact comparison: a superset a hair above its subset is kept.
    kept = xor_bids_from_value(lambda s: {F("A"): 1.0, F("AB"): 1.0 + 1e-12}.get(s, 0.0), ["A", "B"])
    assert kept == [(F("A"), 1.0), (F("AB"), 1.0 + 1e-12)]
    assert xor_bids_from_value(lambda s: 0.0, ["A", "B"]) == []


def test_xor_bids_reproduce_the_value_under_free_disposal():
    # A non-monotone value: free disposal lifts v(S) to the best subset value.
    raw = {F("A"): 3.0, F("B"): 1.0, F("AB"): 2.0, F("C"): 0.0, F("AC"): 5.0, F("BC"): 1.0, F("ABC"): 4.0}
    bids = xor_bids_from_value(lambda s: raw[s], ["A", "B", "C"])
    for s in subsets("ABC"):
        assert xor_value(bids, s) == max([raw.get(t, 0.0) for t in subsets(sorted(s))])


def test_xor_bids_size_limit():
    with pytest.raises(MechanismError) as err:
        xor_bids_from_value(lambda s: 1.0, [f"p{j}" for j in range(5)], max_products=4)
    message = str(err.value)
    assert "\n" not in message and "4" in message and "5 products" in message


# ---------------------------------------------------------------- validation and solver failures


@pytest.mark.parametrize(
    "bids, needle",
    [
        ({"north-dc": [(F("Z"), 1.0)]}, "Z"),
        ({"north-dc": [(F("AB"), -1.0)]}, ">= 0"),
        ({"north-dc": [(F("A"), math.nan)]}, "finite"),
        ({"north-dc": [(F("A"), math.inf)]}, "finite"),
        ({"north-dc": [(F("A"), "lots")]}, "not a number"),
        ({"north-dc": [(F(), 2.0)]}, "empty bundle"),
    ],
)
def test_invalid_bids_raise_one_line_errors(bids, needle):
    with pytest.raises(MechanismError) as err:
        solve_winner_determination(["A", "B"], bids)
    message = str(err.value)
    assert "\n" not in message
    assert "north-dc" in message and needle in message


def test_invalid_bid_names_the_bundle():
    with pytest.raises(MechanismError, match=r"bidder 'x' bundle \{A, B\}"):
        solve_winner_determination(["A", "B"], {"x": [(F("BA"), -2.0)]})


def test_duplicate_product_ids_are_rejected():
    with pytest.raises(MechanismError, match="'A' appears twice"):
        solve_winner_determination(["A", "B", "A"], {"x": [(F("A"), 1.0)]})
    with pytest.raises(MechanismError, match="'A' appears twice"):
        xor_bids_from_value(lambda s: 1.0, ["A", "A"])


def test_solver_failure_is_a_one_line_mechanism_error(monkeypatch):
    monkeypatch.setattr(wd, "linprog", lambda *a, **k: SimpleNamespace(status=4, message="numerical\ntrouble"))
    with pytest.raises(MechanismError) as err:
        solve_winner_determination(["A"], {"x": [(F("A"), 1.0)]})
    assert "\n" not in str(err.value) and "status 4" in str(err.value)
