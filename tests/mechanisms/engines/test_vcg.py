"""The sealed-bid VCG auction against hand-worked payments and brute force.

Every expected number is worked out by hand in a comment or computed here by exhaustive search
over assignments of products to bidders; nothing is taken from the solver under test.
"""

from __future__ import annotations

import itertools
import random

import pytest
from pydantic import ValidationError

from agents.bundle_ties import bundle_tie_policy
from agents.strategies import Participant, Straightforward, respond_all
from agents.valuations import AdditiveValuation, BundleTableValuation
from mechanisms.engines.vcg import SPEC, Report, VCGAuction, VCGRules, VCGState
from mechanisms.errors import MechanismError
from mechanisms.loop import run_to_close
from mechanisms.mechanism import Bid, DemandQuery, Standing, ValuationQuery

F = frozenset
TOL = 1e-7


def table(*pairs) -> BundleTableValuation:
    """An XOR table from (products string, value): ("AB", 3) is {A, B} worth 3."""
    return BundleTableValuation(tuple((F(ids), float(v)) for ids, v in pairs))


def sealed(products, valuations, rules=None):
    """Run the one sealed round with truthful reports; valuations: bidder -> callable."""
    auction = VCGAuction(products, list(valuations), rules or VCGRules())
    state = auction.state()
    messages = [m for bidder, v in valuations.items() for m in state.report(bidder, v)]
    result = auction.run_round(messages)
    return auction, result, auction.outcome()


# ---------------------------------------------------------------- independent brute force


def brute_welfare(products, valuations) -> float:
    """Max over every assignment of each product to a bidder or to nobody, (n+1)^m of them."""
    bidders = list(valuations)
    best = 0.0
    for owners in itertools.product(range(len(bidders) + 1), repeat=len(products)):
        total = sum(valuations[b](F(p for p, o in zip(products, owners) if o == i)) for i, b in enumerate(bidders))
        best = max(best, total)
    return best


def random_xor(rng: random.Random, products) -> BundleTableValuation:
    bundles = [F(c) for r in range(1, len(products) + 1) for c in itertools.combinations(products, r)]
    picks = rng.sample(bundles, rng.randint(1, 3))
    return BundleTableValuation(tuple((b, float(rng.randint(1, 20))) for b in picks))


def random_market(seed: int):
    rng = random.Random(seed)
    products = ["A", "B", "C", "D"][: rng.randint(3, 4)]
    valuations = {f"b{i}": random_xor(rng, products) for i in range(rng.randint(2, 4))}
    return rng, products, valuations


# ---------------------------------------------------------------- hand-worked cases


def test_single_item_is_a_second_price_auction():
    _, _, out = sealed(["A"], {"x": table(("A", 10)), "y": table(("A", 7)), "z": table(("A", 4))})
    # W = 10; W(-x) = 7; p_x = 7 - (10 - 10) = 7.
    assert out.allocation == {"A": "x"}
    assert out.prices == {"A": 7}
    assert out.payments == {"x": 7, "y": 0, "z": 0}
    assert (out.mechanism, out.rounds_run, out.rounds_with_bids, out.closed_by) == ("vcg", 1, 1, "sealed")


def test_unit_demand_pays_the_minimal_walrasian_prices():
    # 1: A 10, B 8; 2: A 9, B 4, unit demand. 1->A, 2->B is 14; 1->B, 2->A is 17: efficient.
    # p1 = W(-1) - (17 - 8) = 9 - 9 = 0; p2 = W(-2) - (17 - 9) = 10 - 8 = 2.
    vals = {"1": table(("A", 10), ("B", 8)), "2": table(("A", 9), ("B", 4))}
    auction, _, out = sealed(["A", "B"], vals)
    assert out.allocation == {"A": "2", "B": "1"}
    assert out.payments == pytest.approx({"1": 0, "2": 2}, abs=TOL)
    assert out.prices == pytest.approx({"A": 2, "B": 0}, abs=TOL)
    assert auction.settlement.welfare == pytest.approx(17)


def test_complements_lose_to_two_single_item_bidders():
    # 1: {A,B} 3 only; 2: A 2; 3: B 2. W = 4 (2->A, 3->B) > 3.
    # W(-2) = max(3, 2) = 3, p2 = 3 - (4 - 2) = 1; likewise p3 = 1. Revenue 2 < 3 = 1's bid.
    vals = {"1": table(("AB", 3)), "2": table(("A", 2)), "3": table(("B", 2))}
    _, _, out = sealed(["A", "B"], vals)
    assert out.allocation == {"A": "2", "B": "3"}
    assert out.payments == pytest.approx({"1": 0, "2": 1, "3": 1}, abs=TOL)


def test_revenue_can_be_zero_although_a_loser_offers_more():
    # The textbook core violation: 1: {A,B} 2; 2: A 2; 3: B 2. W = 4.
    # W(-2) = max(2 ({A,B} to 1), 2 (B to 3)) = 2, p2 = 2 - (4 - 2) = 0; p3 = 0 likewise.
    # Bidder 1 would pay 2 for both, yet the winners pay nothing.
    vals = {"1": table(("AB", 2)), "2": table(("A", 2)), "3": table(("B", 2))}
    _, _, out = sealed(["A", "B"], vals)
    assert out.allocation == {"A": "2", "B": "3"}
    assert out.payments == pytest.approx({"1": 0, "2": 0, "3": 0}, abs=TOL)
    assert sum(out.prices.values()) == pytest.approx(0, abs=TOL)


def test_bundle_payment_split_by_standalone_values():
    # 1 additive A 3, B 1 (bundle 4); 2: {A,B} 2. W = 4, W(-1) = 2, p1 = 2 - 0 = 2.
    # Standalone 3 : 1 -> A 1.5, B 0.5.
    _, _, out = sealed(["A", "B"], {"1": AdditiveValuation({"A": 3, "B": 1}), "2": table(("AB", 2))})
    assert out.bundles()["1"] == ("A", "B")
    assert out.payments["1"] == pytest.approx(2)
    assert out.prices == pytest.approx({"A": 1.5, "B": 0.5})


def test_bundle_payment_split_equally_without_standalone_values():
    # 1: {A,B} 5 only; 2: {A,B} 3. p1 = 3, standalone values 0 -> equal halves.
    _, _, out = sealed(["A", "B"], {"1": table(("AB", 5)), "2": table(("AB", 3))})
    assert out.payments["1"] == pytest.approx(3)
    assert out.prices == pytest.approx({"A": 1.5, "B": 1.5})


def test_round_log_lists_every_reported_bundle_and_the_standings():
    vals = {"1": table(("A", 10), ("B", 8)), "2": table(("BA", 9))}
    auction, result, out = sealed(["A", "B"], vals)
    # 1 is unit demand, so W = max(10 (A to 1), 9 ({A,B} to 2)) = 10; W(-1) = 9, p1 = 9 - (10 - 10) = 9.
    assert set(result.bids) == {Bid("1", "A", 10), Bid("1", "B", 8), Bid("2", "A+B", 9)}
    assert result.closed and result.round == 1
    assert out.allocation == {"A": "1", "B": None}
    assert dict(result.standings) == {"A": Standing("1", pytest.approx(9)), "B": None}
    assert auction.closed and auction.price_step == 0.0


def test_no_reports_sell_nothing():
    auction = VCGAuction(["A"], ["x"])
    auction.run_round([])
    out = auction.outcome()
    assert out.allocation == {"A": None} and out.payments == {"x": 0}
    assert (out.rounds_run, out.rounds_with_bids, out.closed_by) == (1, 0, "sealed")


# ---------------------------------------------------------------- reserve


@pytest.mark.parametrize("reserve, winner, price", [(8, "x", 8), (5, "x", 7), (11, None, 0)])
def test_reserve_on_a_single_item(reserve, winner, price):
    # Values 10, 7. Reserve 8: W(-x) = max(7, 8) = 8, p = 8. Reserve 5: p = 7 (second price).
    # Reserve 11: the phantom seller's 11 beats 10, the item stays unsold.
    _, _, out = sealed(["A"], {"x": table(("A", 10)), "y": table(("A", 7))}, VCGRules(reserve_usd=reserve))
    assert out.allocation == {"A": winner}
    assert out.prices == pytest.approx({"A": price})
    assert out.payments == pytest.approx({"x": price if winner else 0, "y": 0})


def test_reserve_is_additive_per_product():
    # 1: {A,B} 10; reserve 3 per product. W = 10 > 6; W(-1) = 6 (both to the phantom), p1 = 6.
    # Reserve 6: phantom values both at 12 > 10, unsold.
    _, _, out = sealed(["A", "B"], {"1": table(("AB", 10))}, VCGRules(reserve_usd=3))
    assert out.payments == pytest.approx({"1": 6})
    _, _, out = sealed(["A", "B"], {"1": table(("AB", 10))}, VCGRules(reserve_usd=6))
    assert out.allocation == {"A": None, "B": None}


def test_reserve_phantom_does_not_clash_with_a_bidder_named_reserve():
    vals = {"reserve:A": table(("A", 10)), "y": table(("A", 7))}
    _, _, out = sealed(["A"], vals, VCGRules(reserve_usd=8))
    assert out.allocation == {"A": "reserve:A"} and out.payments["reserve:A"] == pytest.approx(8)


# ---------------------------------------------------------------- random markets


@pytest.mark.parametrize("seed", range(12))
def test_random_markets_efficient_rational_and_exact_pivot(seed):
    _, products, vals = random_market(seed)
    auction, _, out = sealed(products, vals)
    bundles = {b: F(held) for b, held in out.bundles().items()}
    total = sum(vals[b](bundles[b]) for b in vals)
    assert total == pytest.approx(brute_welfare(products, vals), abs=TOL)
    for bidder, v in vals.items():
        own = v(bundles[bidder])
        assert -TOL <= out.payments[bidder] <= own + TOL  # individual rationality
        others = {b: w for b, w in vals.items() if b != bidder}
        assert out.payments[bidder] == pytest.approx(brute_welfare(products, others) - (total - own), abs=TOL)
    for bidder, held in bundles.items():  # prices of a bundle sum to its payment
        assert sum(out.prices[p] for p in held) == pytest.approx(out.payments[bidder], abs=TOL)
    assert all(out.prices[p] == 0 for p, b in out.allocation.items() if b is None)


def utility(products, vals, liar, report):
    """The liar's true utility when it sends ``report`` and everyone else is truthful."""
    auction = VCGAuction(products, list(vals))
    state = auction.state()
    messages = [m for b, v in vals.items() if b != liar for m in state.report(b, v)]
    auction.run_round(messages + [Report(liar, report)])
    out = auction.outcome()
    return vals[liar](F(out.bundles()[liar])) - out.payments[liar]


@pytest.mark.parametrize("seed", range(6))
def test_random_misreports_never_pay_off(seed):
    rng, products, vals = random_market(100 + seed)
    liar = rng.choice(sorted(vals))
    honest = VCGState(1, tuple(products), tuple(vals), 16).report(liar, vals[liar])[0].bids
    truthful = utility(products, vals, liar, honest)
    # Unrelated random tables, and the true report shaded or inflated bundle by bundle.
    lies = [random_xor(rng, products).bundles for _ in range(2)]
    lies += [tuple((b, v * rng.uniform(0.3, 1.7)) for b, v in honest) for _ in range(2)]
    for lie in lies:
        assert utility(products, vals, liar, lie) <= truthful + TOL


# ---------------------------------------------------------------- loop, spec, determinism


def test_runs_through_the_loop_with_straightforward_participants():
    auction = VCGAuction(["A", "B"], ["1", "2"])
    state = auction.state()
    assert isinstance(state, ValuationQuery) and not isinstance(state, DemandQuery)
    participants = [
        Participant("1", table(("A", 10), ("B", 8)), Straightforward(), bundle_tie_policy("paper")),
        Participant("2", table(("A", 9), ("B", 4)), Straightforward(), bundle_tie_policy("paper")),
    ]
    rounds = []
    out = run_to_close(auction, respond_all(participants), rounds.append)
    assert len(rounds) == 1 and out.closed_by == "sealed"
    assert out.allocation == {"A": "2", "B": "1"}
    assert out.payments == pytest.approx({"1": 0, "2": 2}, abs=TOL)


def test_spec_builds_a_vcg_auction():
    auction = SPEC.build(["A"], ["x"], VCGRules(reserve_usd=1), None)
    assert isinstance(auction, VCGAuction) and auction.kind == SPEC.kind == "vcg"
    assert SPEC.table == "vcg" and SPEC.item_prices is False
    assert VCGRules() == VCGRules(max_products=12, reserve_usd=0.0)


def test_outcome_does_not_depend_on_message_order():
    _, products, vals = random_market(7)
    state = VCGAuction(products, list(vals)).state()
    messages = [m for b, v in vals.items() for m in state.report(b, v)]
    outcomes = []
    for order in (messages, messages[::-1]):
        auction = VCGAuction(products, list(vals))
        auction.run_round(order)
        outcomes.append(auction.outcome())
    assert outcomes[0] == outcomes[1]


# ---------------------------------------------------------------- errors


def one_line_error(call, *fragments):
    with pytest.raises(MechanismError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_too_many_products_for_the_exact_report():
    # Refused when the auction is built, before any bidder enumerates its 2^m bundles.
    one_line_error(lambda: VCGAuction(["A", "B", "C"], ["x"], VCGRules(max_products=2)), "VCG", "max_products", "3")


def test_bad_reports_are_refused():
    auction = VCGAuction(["A", "B"], ["x", "y"])
    good = Report("x", ((F("A"), 1.0),))
    one_line_error(lambda: auction.run_round([good, good]), "'x'", "report")
    one_line_error(lambda: auction.run_round([Report("z", ())]), "'z'", "unknown bidder")
    one_line_error(lambda: auction.run_round([Report("x", ((F("C"), 1.0),))]), "unknown product", "C")
    one_line_error(lambda: auction.run_round([Report("x", ((F(), 1.0),))]), "empty bundle")
    one_line_error(lambda: auction.run_round([Report("x", ((F("A"), -1.0),))]), ">= 0")
    one_line_error(lambda: auction.run_round([Bid("x", "A", 1.0)]), "Bid", "Report")
    assert not auction.closed
    auction.run_round([good])
    one_line_error(lambda: auction.run_round([]), "one round")


@pytest.mark.parametrize("fields", [{"max_products": 0}, {"max_products": 21}, {"reserve_usd": -1.0},
                                    {"reserve": 1.0}])
def test_rules_are_validated(fields):
    with pytest.raises(ValidationError):
        VCGRules(**fields)
