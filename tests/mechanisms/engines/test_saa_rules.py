"""The SAA's optional FCC-style rules (mechanisms/engines/saa.py), with expected values worked by hand,
and the paper's rules unchanged when none of them is set."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agents.valuations import AdditiveValuation
from mechanisms.engines.saa import (
    AuctionRules,
    Bid,
    SimultaneousAscendingAuction,
    Withdrawal,
    WithdrawnBid,
)
from mechanisms.errors import MechanismError
from mechanisms.mechanism import Standing
from mechanisms.settings import first_error
from tests.auction_driver import PAPER_PRODUCTS, round_log, simulate

F3, X3, F4, X4 = PAPER_PRODUCTS
EXAMPLE_1 = [
    ("B1", AdditiveValuation({F3: 20, X3: 0, F4: 30, X4: 15})),
    ("B2", AdditiveValuation({F3: 30, X3: 20, F4: 10, X4: 10})),
]
TABLE_III = [  # docs/models/auction.md#ca-6-1
    ({"B1": ({F3, F4, X4}, 5), "B2": ({F3, X3, F4, X4}, 5)},
     {F3: ("B1", 5), X3: ("B2", 5), F4: ("B2", 5), X4: ("B1", 5)}),
    ({"B1": ({F4}, 10), "B2": ({F3}, 10)},
     {F3: ("B2", 10), X3: ("B2", 5), F4: ("B1", 10), X4: ("B1", 5)}),
    ({"B1": ({F3}, 15)}, {F3: ("B1", 15), X3: ("B2", 5), F4: ("B1", 10), X4: ("B1", 5)}),
    ({"B2": ({F3}, 20)}, {F3: ("B2", 20), X3: ("B2", 5), F4: ("B1", 10), X4: ("B1", 5)}),
    ({}, {F3: ("B2", 20), X3: ("B2", 5), F4: ("B1", 10), X4: ("B1", 5)}),
]
FIVE = ["P1", "P2", "P3", "P4", "P5"]


def rules_error(**fields) -> str:
    with pytest.raises(ValidationError) as error:
        AuctionRules(increment=1, **fields)
    return first_error(error.value)


# ------------------------------------------------------------------ the paper's rules by default
@pytest.mark.parametrize("rules", [
    AuctionRules(increment=5),
    # Every new rule spelled out at its default.
    AuctionRules(increment=5, increment_kind="absolute", reserve_prices={}, stage_rounds=[], waivers=0,
                 withdrawals_allowed=0, visibility="all_bids", tie_break="alternating", max_rounds=1000),
])
def test_example_1_is_unchanged_under_the_default_rules(rules):
    auction, results = simulate(PAPER_PRODUCTS, EXAMPLE_1, rules)
    assert round_log(results) == TABLE_III
    outcome = auction.outcome()
    assert outcome.prices == {F3: 20, X3: 5, F4: 10, X4: 5}
    assert outcome.payments == {"B1": 15, "B2": 25}
    assert (outcome.rounds_with_bids, outcome.rounds_run, outcome.closed_by) == (4, 5, "no_new_bids")
    assert auction.price_step == 5 and auction.withdrawal_log == []
    assert auction.withdrawal_payments == {"B1": 0, "B2": 0}


def test_default_state_has_no_activity_rule_and_every_bundle_is_feasible():
    state = SimultaneousAscendingAuction(FIVE, ["x"], AuctionRules(increment=1)).state()
    assert state.points == {} and state.eligibility == {} and state.activity_requirement == 0
    assert state.feasible("x", frozenset(FIVE)) and state.view("x") is state


# ------------------------------------------------------------------ percent increments
def test_percent_increment_rounds_the_minimum_bid_up_to_the_cent():
    rules = AuctionRules(increment=5, increment_kind="percent", opening_bid=10)
    auction = SimultaneousAscendingAuction(["A", "B"], ["x", "y"], rules)
    assert auction.minimum_bid("A") == 10  # the opening bid is not a percent
    assert auction.price_step == pytest.approx(0.5)  # 10 -> 10.50 before any bid
    auction.run_round([Bid("x", "A", 100), Bid("y", "B", 33.33)])
    assert auction.minimum_bid("A") == 105  # 100 * 1.05
    assert auction.minimum_bid("B") == 35.00  # 33.33 * 1.05 = 34.9965, up to the cent
    assert auction.state().minimum_bids == {"A": 105, "B": 35.0}
    assert auction.price_step == pytest.approx(5)  # the largest step: 105 - 100
    with pytest.raises(MechanismError, match="34.99 \\$ is below the minimum acceptable bid 35 \\$"):
        auction.run_round([Bid("x", "B", 34.99)])


def test_percent_rules_validate_and_write_their_opening_bid():
    assert AuctionRules(increment=5, increment_kind="percent").as_run().opening_bid == 5
    assert rules_error(increment_kind="ratio").startswith("increment_kind: unknown increment_kind 'ratio'")
    assert AuctionRules(increment=2).raised(7) == 9


# ------------------------------------------------------------------ reserve prices
def test_a_reserve_raises_the_opening_bid_of_its_product_only():
    auction = SimultaneousAscendingAuction(["A", "B"], ["x"], AuctionRules(increment=5, reserve_prices={"A": 12}))
    assert auction.state().minimum_bids == {"A": 12, "B": 5}
    assert auction.opening_bid("A") == 12
    with pytest.raises(MechanismError, match="below the minimum acceptable bid 12"):
        auction.run_round([Bid("x", "A", 11)])


def test_a_product_nobody_values_at_its_reserve_stays_unsold():
    bidders = [("x", AdditiveValuation({"A": 10, "B": 8}))]
    auction, _ = simulate(["A", "B"], bidders, AuctionRules(increment=5, reserve_prices={"A": 12}))
    outcome = auction.outcome()
    assert outcome.allocation == {"A": None, "B": "x"}
    assert outcome.prices == {"A": 0.0, "B": 5}


def test_reserves_name_known_products_and_are_not_negative():
    with pytest.raises(MechanismError, match="reserve_prices: unknown product 'Z'; the auction's products are A, B"):
        SimultaneousAscendingAuction(["A", "B"], ["x"], AuctionRules(increment=1, reserve_prices={"Z": 3}))
    assert rules_error(reserve_prices={"A": -1}).startswith("reserve_prices.A: input should be greater than or equal to 0")


# ------------------------------------------------------------------ eligibility and activity
def activity_auction(**rules) -> SimultaneousAscendingAuction:
    points = dict.fromkeys(FIVE, 1.0)
    return SimultaneousAscendingAuction(FIVE, ["x", "y"], AuctionRules(increment=1, eligibility_points=points, **rules))


def test_a_bid_set_beyond_eligibility_is_rejected():
    rules = AuctionRules(increment=1, eligibility_points={"A": 2, "B": 2, "C": 1}, initial_eligibility={"x": 3})
    auction = SimultaneousAscendingAuction(["A", "B", "C"], ["x", "y"], rules)
    state = auction.state()
    assert state.eligibility == {"x": 3, "y": 5}  # y: every product's points
    assert not state.feasible("x", frozenset({"A", "B"})) and state.feasible("x", frozenset({"A", "C"}))
    assert state.points_of({"A", "B"}) == 4
    with pytest.raises(MechanismError, match=r"^round 1: bidder 'x' would be active on 4 points \(0 held \+ 4 bid\), "
                                             r"above its eligibility of 3 points$"):
        auction.run_round([Bid("x", "A", 1), Bid("x", "B", 1)])
    auction.run_round([Bid("x", "A", 1), Bid("x", "C", 1), Bid("y", "B", 1)])
    # Held products count: x holds 3 points, so it cannot add B.
    with pytest.raises(MechanismError, match=r"active on 5 points \(3 held \+ 2 bid\)"):
        auction.run_round([Bid("x", "B", 2)])


def test_activity_below_the_requirement_cuts_eligibility():
    auction = activity_auction(activity_requirement=[0.8])
    auction.run_round([Bid("x", "P1", 1), Bid("x", "P2", 1)])
    assert auction.eligibility == {"x": pytest.approx(2.5), "y": 0.0}  # 2 / 0.8; y was idle
    state = auction.state()
    assert state.eligibility["x"] == pytest.approx(2.5) and state.held_by("x") == {"P1", "P2"}
    assert state.feasible("x", frozenset()) and not state.feasible("x", frozenset({"P3"}))
    with pytest.raises(MechanismError, match="active on 3 points"):
        auction.run_round([Bid("x", "P3", 1)])


def test_a_waiver_keeps_eligibility_once():
    auction = activity_auction(activity_requirement=[0.8], waivers=1)
    # Both short of 0.8 * 5 = 4 points: each uses its waiver.
    auction.run_round([Bid("x", "P1", 1), Bid("x", "P2", 1)] + [Bid("y", p, 1) for p in ("P3", "P4", "P5")])
    assert auction.eligibility == {"x": 5, "y": 5} and auction.waivers_left == {"x": 0, "y": 0}
    # x is active on its 2 held points only; y on 3 held + 1 bid = 4, enough.
    auction.run_round([Bid("y", "P1", 2)])
    assert auction.eligibility == {"x": pytest.approx(2.5), "y": 5}


def test_a_later_stage_raises_the_requirement():
    auction = activity_auction(activity_requirement=[0.5, 1.0], stage_rounds=[2])
    assert auction.state().activity_requirement == 0.5
    auction.run_round([Bid("x", p, 1) for p in ("P1", "P2", "P3")] + [Bid("y", "P4", 1)])
    assert auction.eligibility == {"x": 5, "y": 2}  # x: 3 >= 2.5; y: 1 / 0.5
    assert auction.state().activity_requirement == 1.0
    auction.run_round([Bid("y", "P5", 1)])  # x holds 3 points, y 1 + 1
    assert auction.eligibility == {"x": 3, "y": 2}


def test_the_closing_round_does_not_cut_eligibility():
    auction = activity_auction(activity_requirement=[0.8])
    auction.run_round([Bid("x", p, 1) for p in FIVE])
    auction.run_round([])
    assert auction.closed and auction.eligibility == {"x": 5, "y": 0}


@pytest.mark.parametrize("fields, message", [
    ({"waivers": 1}, "waivers needs eligibility_points"),
    ({"stage_rounds": [3]}, "stage_rounds needs eligibility_points"),
    ({"eligibility_points": {"A": 1}, "stage_rounds": [3]},
     "activity_requirement has 1 fraction(s) but stage_rounds makes 2 stages"),
    ({"eligibility_points": {"A": 1}, "activity_requirement": [0.8, 1.2], "stage_rounds": [3]},
     "activity_requirement[1]: input should be less than or equal to 1"),
    ({"eligibility_points": {"A": 1}, "activity_requirement": [0.8, 0.9, 1], "stage_rounds": [5, 5]},
     "stage_rounds: stage starts must increase round by round, got [5, 5]"),
    ({"eligibility_points": {"A": -1}}, "eligibility_points.A: input should be greater than or equal to 0"),
])
def test_activity_rules_are_validated_by_field(fields, message):
    assert message.lower() in rules_error(**fields).lower()


def test_activity_tables_name_known_products_and_bidders():
    with pytest.raises(MechanismError, match="eligibility_points: no points for product 'B'"):
        SimultaneousAscendingAuction(["A", "B"], ["x"], AuctionRules(increment=1, eligibility_points={"A": 1}))
    with pytest.raises(MechanismError, match="initial_eligibility: unknown bidder 'w'"):
        SimultaneousAscendingAuction(["A"], ["x"], AuctionRules(increment=1, eligibility_points={"A": 1},
                                                                initial_eligibility={"w": 1}))
    written = AuctionRules(increment=1, eligibility_points={"A": 1}).as_run()
    assert written.activity_requirement == [1.0] and written.initial_eligibility is None


# ------------------------------------------------------------------ withdrawals
def test_a_withdrawn_product_is_reoffered_at_the_second_highest_bid_and_the_withdrawer_pays_the_gap():
    auction = SimultaneousAscendingAuction(["P"], ["A", "B", "C"], AuctionRules(increment=1, withdrawals_allowed=1))
    auction.run_round([Bid("B", "P", 7)])
    auction.run_round([Bid("A", "P", 10)])
    result = auction.run_round([Withdrawal("A", "P")])
    assert result.standings == {"P": None} and not result.closed and result.bids == ()
    assert auction.withdrawal_log == [WithdrawnBid(3, "A", "P", 10, 7)]
    assert result.withdrawals == (WithdrawnBid(3, "A", "P", 10, 7),)  # the round carries its own
    assert auction.minimum_bid("P") == 7  # B's bid, the second highest received
    assert auction.state().withdrawals_left == {"A": 0, "B": 1, "C": 1}
    auction.run_round([Bid("B", "P", 7)])
    auction.run_round([])
    outcome = auction.outcome()
    assert outcome.allocation == {"P": "B"} and outcome.prices == {"P": 7}
    assert auction.withdrawal_payments == {"A": 3, "B": 0, "C": 0}
    assert outcome.payments == {"A": 3, "B": 7, "C": 0}
    assert outcome.rounds_with_bids == 4  # the withdrawal round counts


def test_an_unsold_withdrawn_product_is_priced_at_its_opening_bid():
    auction = SimultaneousAscendingAuction(["P"], ["A"], AuctionRules(increment=1, opening_bid=4, withdrawals_allowed=1))
    auction.run_round([Bid("A", "P", 10)])
    auction.run_round([Withdrawal("A", "P")])
    assert auction.minimum_bid("P") == 4  # no other bid: the opening bid
    auction.run_round([])
    assert auction.outcome().payments == {"A": 6}  # 10 - 4
    assert auction.outcome().allocation == {"P": None}


def test_a_later_withdrawn_bid_as_high_clears_the_earlier_payment():
    rules = AuctionRules(increment=1, withdrawals_allowed=1, tie_break="first_bid")
    auction = SimultaneousAscendingAuction(["P"], ["A", "B"], rules)
    auction.run_round([Bid("A", "P", 10), Bid("B", "P", 10)])  # A wins the tie
    auction.run_round([Withdrawal("A", "P")])
    assert auction.minimum_bid("P") == 10  # B's tied bid
    auction.run_round([Bid("B", "P", 10)])
    auction.run_round([Withdrawal("B", "P")])
    auction.run_round([])
    # Unsold: the final price is the opening bid 1. A's 10 is matched by B's withdrawn 10.
    assert auction.withdrawal_payments == {"A": 0, "B": 9}


def test_a_new_bid_in_the_withdrawal_round_takes_the_product():
    auction = SimultaneousAscendingAuction(["P"], ["A", "C"], AuctionRules(increment=1, withdrawals_allowed=2))
    auction.run_round([Bid("A", "P", 10)])
    result = auction.run_round([Withdrawal("A", "P"), Bid("C", "P", 11)])
    assert result.standings == {"P": Standing("C", 11)}
    auction.run_round([])
    assert auction.outcome().payments == {"A": 0, "C": 11}


@pytest.mark.parametrize("allowed, messages, error", [
    (0, [Withdrawal("A", "P")], r"round 2: withdrawal by 'A' of 'P': withdrawals are off"),
    (1, [Withdrawal("C", "P")], "only the standing high bidder may withdraw"),
    (1, [Withdrawal("A", "Z")], "unknown product 'Z'"),
    (1, [Withdrawal("W", "P")], "unknown bidder"),
    (1, ["withdraw"], "the SAA takes Bid and Withdrawal messages, not str"),
])
def test_invalid_withdrawals_are_rejected(allowed, messages, error):
    auction = SimultaneousAscendingAuction(["P"], ["A", "C"], AuctionRules(increment=1, withdrawals_allowed=allowed))
    auction.run_round([Bid("A", "P", 10)])
    with pytest.raises(MechanismError, match=error):
        auction.run_round(messages)


def test_withdrawal_rounds_are_counted_per_bidder():
    auction = SimultaneousAscendingAuction(["P", "Q"], ["A", "C"], AuctionRules(increment=1, withdrawals_allowed=1))
    auction.run_round([Bid("A", "P", 5), Bid("A", "Q", 5)])
    auction.run_round([Withdrawal("A", "P"), Withdrawal("A", "Q")])  # one round, two bids
    auction.run_round([Bid("A", "P", 5)])
    with pytest.raises(MechanismError, match="has used its 1 withdrawal round"):
        auction.run_round([Withdrawal("A", "P")])


# ------------------------------------------------------------------ visibility
def test_standing_prices_visibility_hides_other_holders():
    rules = AuctionRules(increment=1, visibility="standing_prices", eligibility_points={"A": 1, "B": 1, "C": 1},
                         activity_requirement=[0.2])
    auction = SimultaneousAscendingAuction(["A", "B", "C"], ["x", "y"], rules)
    result = auction.run_round([Bid("x", "A", 3), Bid("y", "B", 4)])
    assert result.standings["B"] == Standing("y", 4)  # the auctioneer's log is complete
    shared = auction.state()
    assert shared.standings == {"A": Standing("", 3), "B": Standing("", 4), "C": None}
    assert shared.held_by("x") == {"A"} and shared.held_by("y") == {"B"}
    seen = shared.view("x")
    assert seen.standings == {"A": Standing("x", 3), "B": Standing("", 4), "C": None}
    assert seen.held_by("x") == {"A"} and seen.held_by("y") == frozenset()
    assert seen.prices_for("x") == {"A": 3, "B": 5, "C": 1}
    assert seen.eligibility == {"x": 3} and seen.feasible("x", frozenset({"B"}))


def test_all_bids_visibility_shows_every_holder():
    auction = SimultaneousAscendingAuction(["A", "B"], ["x", "y"], AuctionRules(increment=1))
    auction.run_round([Bid("x", "A", 3), Bid("y", "B", 4)])
    state = auction.state()
    assert state.view("x").standings == {"A": Standing("x", 3), "B": Standing("y", 4)}
    assert rules_error(visibility="none").startswith("visibility: unknown visibility 'none'")


def test_straightforward_bidders_play_the_same_under_standing_prices():
    auction, results = simulate(PAPER_PRODUCTS, EXAMPLE_1, AuctionRules(increment=5, visibility="standing_prices"))
    assert round_log(results) == TABLE_III


# ------------------------------------------------------------------ first_bid tie-breaking
def test_first_bid_gives_every_tie_to_the_first_bidder_listed():
    auction = SimultaneousAscendingAuction(["A", "B"], ["x", "y", "z"], AuctionRules(increment=1, tie_break="first_bid"))
    result = auction.run_round([Bid(b, p, 1) for p in ("A", "B") for b in ("z", "y", "x")])
    assert {p: s.bidder for p, s in result.new_standings.items()} == {"A": "x", "B": "x"}
    assert result.ties == {"A": ("x", "y", "z"), "B": ("x", "y", "z")}
    # Alternating priority would have given B to y.
    alternating = SimultaneousAscendingAuction(["A", "B"], ["x", "y", "z"], AuctionRules(increment=1))
    result = alternating.run_round([Bid(b, p, 1) for p in ("A", "B") for b in ("z", "y", "x")])
    assert {p: s.bidder for p, s in result.new_standings.items()} == {"A": "x", "B": "y"}
