"""The interconnection queue and the ascending clock auction, run through the shared market loop
with straightforward bidders; expected outcomes are worked out by hand in the comments."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pytest
from pydantic import ValidationError

from agents.bundle_ties import bundle_tie_policy
from agents.strategies import Participant, Straightforward, respond_all
from agents.valuations import AdditiveValuation, ValuationProfile
from mechanisms.engines import clock, queue
from mechanisms.engines.clock import ClockAuction, ClockRules, ClockState
from mechanisms.engines.queue import InterconnectionQueue, QueueRules, QueueState
from mechanisms.errors import MechanismError
from mechanisms.judge.equilibrium import check_equilibrium
from mechanisms.loop import run_to_close
from mechanisms.mechanism import (
    Bid,
    DemandQuery,
    Mechanism,
    Outcome,
    RoundResult,
    Standing,
)
from mechanisms.settings import first_error

# x arrives first in config order and only values A; y values both.
QUEUE_MARKET = [("x", AdditiveValuation({"A": 5})), ("y", AdditiveValuation({"A": 10, "B": 3}))]


def play(mechanism: Mechanism, bidders: Sequence[tuple[str, ValuationProfile]], ties: str) -> tuple[Outcome, list[RoundResult]]:
    policy = bundle_tie_policy(ties)
    participants = [Participant(name, valuation, Straightforward(), policy) for name, valuation in bidders]
    results: list[RoundResult] = []
    outcome = run_to_close(mechanism, respond_all(participants), results.append)
    # Every outcome: winners pay the prices of what they won, unsold products cost nothing.
    assert sum(outcome.payments.values()) == pytest.approx(sum(outcome.prices.values()))
    for product, winner in outcome.allocation.items():
        if winner is None:
            assert outcome.prices[product] == 0.0
    return outcome, results


def run_queue(rules: QueueRules, bidders=QUEUE_MARKET, *, ties: str = "fewest_new", rng=None):
    mechanism = InterconnectionQueue(("A", "B"), [name for name, _ in bidders], rules, rng=rng)
    return play(mechanism, bidders, ties)


def run_clock(products: Sequence[str], bidders, rules: ClockRules, *, ties: str = "paper"):
    return play(ClockAuction(products, [name for name, _ in bidders], rules), bidders, ties)


def one_line_error(call) -> str:
    with pytest.raises(MechanismError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------- queue
def test_queue_config_order_serves_x_first_whatever_y_would_pay():
    # Round 1, x at tariff 0: A's surplus 5 > 0; B's is 0 and fewest_new adds no tied product.
    # Round 2, y: only B is left, surplus 3 > 0.
    outcome, results = run_queue(QueueRules())
    assert outcome.allocation == {"A": "x", "B": "y"}
    assert outcome.prices == {"A": 0.0, "B": 0.0}
    assert outcome.payments == {"x": 0.0, "y": 0.0}
    assert (outcome.rounds_run, outcome.rounds_with_bids, outcome.closed_by) == (2, 2, "queue_served")
    assert [r.bids for r in results] == [(Bid("x", "A", 0.0),), (Bid("y", "B", 0.0),)]
    assert results[0].standings == {"A": Standing("x", 0.0), "B": None}
    assert results[1].standings == {"A": Standing("x", 0.0), "B": Standing("y", 0.0)}
    assert [r.closed for r in results] == [False, True]


def test_queue_reverse_order_lets_y_take_both():
    # y first: A (10) and B (3) both have positive surplus at 0; x then finds nothing left.
    outcome, _ = run_queue(QueueRules(order="reverse"))
    assert outcome.allocation == {"A": "y", "B": "y"}
    assert outcome.bundles() == {"x": (), "y": ("A", "B")}
    assert (outcome.rounds_run, outcome.rounds_with_bids) == (2, 1)


def test_queue_tariff_prices_out_low_values():
    # Tariff 4: x takes A (5 > 4); y is left B, worth 3 < 4, and takes nothing.
    outcome, _ = run_queue(QueueRules(tariff_usd=4))
    assert outcome.allocation == {"A": "x", "B": None}
    assert outcome.prices == {"A": 4.0, "B": 0.0}
    assert outcome.payments == {"x": 4.0, "y": 0.0}
    assert (outcome.rounds_run, outcome.rounds_with_bids) == (2, 1)


def test_queue_first_arrival_takes_only_what_it_values_even_under_the_largest_rule():
    # The paper policy's opening rule (largest bundle) applies in round 1, i.e. to the first
    # arrival only. At tariff 0, B (worth 0 to x) would tie at zero surplus, but a bidder only
    # prices the products it values (ValuationProfile.interest), so x leaves B to y.
    outcome, _ = run_queue(QueueRules(), ties="paper")
    assert outcome.allocation == {"A": "x", "B": "y"}


def test_queue_ignores_value_so_the_judge_finds_an_efficiency_gap():
    outcome, _ = run_queue(QueueRules())
    report = check_equilibrium(["A", "B"], dict(QUEUE_MARKET), outcome.allocation, outcome.prices, 0.0)
    # Efficient: y takes both (10 + 3 = 13); the queue gives A to x (5 + 3 = 8).
    assert (report.welfare, report.efficient_welfare) == (8, 13)
    assert not report.holds


def test_queue_random_order_is_the_documented_seeded_permutation():
    names = ["a", "b", "c", "d", "e"]

    def order(seed: int) -> tuple[str, ...]:
        rules = QueueRules(order="random")
        return InterconnectionQueue(["A"], names, rules, rng=np.random.default_rng(seed)).arrivals

    for seed in (0, 1, 7):
        expected = tuple(names[i] for i in np.random.default_rng(seed).permutation(len(names)))
        assert order(seed) == expected == order(seed)
    assert len({order(seed) for seed in range(10)}) > 1
    message = one_line_error(lambda: InterconnectionQueue(["A"], names, QueueRules(order="random")))
    assert "random generator" in message


def test_queue_state_quotes_only_the_bidder_at_the_head():
    mechanism = InterconnectionQueue(["A", "B"], ["x", "y"], QueueRules(tariff_usd=2))
    state = mechanism.state()
    assert isinstance(state, QueueState) and isinstance(state, DemandQuery)
    assert (state.round, state.current) == (1, "x")
    assert state.prices_for("x") == {"A": 2.0, "B": 2.0}
    assert state.prices_for("y") == {}
    assert state.messages("x", frozenset({"B", "A"})) == [Bid("x", "A", 2.0), Bid("x", "B", 2.0)]
    mechanism.run_round([Bid("x", "B", 2.0)])
    state = mechanism.state()
    assert (state.round, state.current) == (2, "y")
    assert state.prices_for("y") == {"A": 2.0}
    assert state.prices_for("x") == {}
    assert state.held_by("x") == {"B"} and state.held_by("y") == frozenset()
    assert mechanism.price_step == 0.0


def test_queue_rejects_invalid_requests_in_one_line():
    mechanism = InterconnectionQueue(["A", "B"], ["x", "y"], QueueRules(tariff_usd=2))
    message = one_line_error(lambda: mechanism.run_round([Bid("y", "A", 2.0)]))
    assert message == "round 1: request by 'y' for 'A': only 'x', at the head of the queue, may request this round"
    message = one_line_error(lambda: mechanism.run_round([Bid("x", "A", 3.0)]))
    assert message == "round 1: request by 'x' for 'A': amount 3 $ is not the tariff 2 $"
    assert "unknown product" in one_line_error(lambda: mechanism.run_round([Bid("x", "C", 2.0)]))
    assert "unknown bidder" in one_line_error(lambda: mechanism.run_round([Bid("z", "A", 2.0)]))
    assert "once" in one_line_error(lambda: mechanism.run_round([Bid("x", "A", 2.0), Bid("x", "A", 2.0)]))
    assert mechanism.rounds_run == 0  # rejected rounds change nothing
    mechanism.run_round([Bid("x", "A", 2.0)])
    message = one_line_error(lambda: mechanism.run_round([Bid("y", "A", 2.0)]))
    assert message == "round 2: request by 'y' for 'A': already connected to 'x'"
    mechanism.run_round([])
    assert "closed" in one_line_error(lambda: mechanism.run_round([]))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"order": "x"}, "order: unknown order 'x'; choose one of config, random, reverse"),
        ({"tariff_usd": -1}, "tariff_usd: the tariff must be >= 0 $, got -1"),
        ({"tariff_usd": 2e12}, "tariff_usd: the tariff must be <= 1e+12 $, got 2e+12"),
        ({"tariff_usd": "5"}, "tariff_usd: input should be a valid number"),
        ({"tarif_usd": 5}, "unknown field 'tarif_usd'; did you mean 'tariff_usd'?"),
    ],
)
def test_queue_rules_errors_name_the_field(fields, expected):
    with pytest.raises(ValidationError) as error:
        QueueRules(**fields)
    assert first_error(error.value) == expected


def test_queue_spec_builds_the_queue():
    spec = queue.SPEC
    assert (spec.kind, spec.table, spec.rules) == ("queue", "queue", QueueRules)
    built = spec.build(["A"], ["x", "y"], QueueRules(order="reverse"), np.random.default_rng(0))
    assert isinstance(built, InterconnectionQueue) and built.arrivals == ("y", "x")


# ------------------------------------------------------------------------------- clock
SINGLE = [("a", AdditiveValuation({"A": 10})), ("b", AdditiveValuation({"A": 7})), ("c", AdditiveValuation({"A": 4}))]


def test_clock_single_product_paper_ties_keep_zero_surplus_demand():
    # Round k is bid at price k. Under the paper policy (fewest_new after round 1) a bidder keeps
    # a product it demanded last round at zero surplus: c stays at 4 and leaves at 5, b stays at
    # 7 and leaves at 8. Round 8: only a demands, at 8.
    outcome, results = run_clock(["A"], SINGLE, ClockRules(increment=1, opening_price=1))
    assert outcome.allocation == {"A": "a"} and outcome.prices == {"A": 8.0}
    assert outcome.payments == {"a": 8.0, "b": 0.0, "c": 0.0}
    assert (outcome.rounds_run, outcome.rounds_with_bids, outcome.closed_by) == (8, 8, "clock_cleared")
    assert [len(r.bids) for r in results] == [3, 3, 3, 3, 2, 2, 2, 1]
    assert [r.bids[0].amount for r in results] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert results[-1].standings == {"A": Standing("a", 8.0)}
    assert all(r.standings == {"A": None} for r in results[:-1])


def test_clock_single_product_smallest_ties_drop_at_zero_surplus():
    # With `smallest` a bidder drops a product as soon as its surplus is 0: b leaves at 7.
    outcome, _ = run_clock(["A"], SINGLE, ClockRules(increment=1, opening_price=1), ties="smallest")
    assert outcome.prices == {"A": 7.0} and outcome.allocation == {"A": "a"}
    assert outcome.rounds_run == 7


def test_clock_without_competition_clears_at_the_opening_price():
    bidders = [(name, AdditiveValuation({product: 10})) for name, product in (("x", "A"), ("y", "B"), ("z", "C"))]
    outcome, _ = run_clock(["A", "B", "C"], bidders, ClockRules(increment=2))  # opening: the increment
    assert outcome.allocation == {"A": "x", "B": "y", "C": "z"}
    assert outcome.prices == {"A": 2.0, "B": 2.0, "C": 2.0}
    assert (outcome.rounds_run, outcome.closed_by) == (1, "clock_cleared")


TWO = [("x", AdditiveValuation({"A": 10, "B": 8})), ("y", AdditiveValuation({"A": 9, "B": 4}))]


def test_clock_two_products_run_like_two_english_auctions():
    # Additive values: each clock is an English auction. Paper policy: y keeps B at 4 (zero
    # surplus, held) and leaves at 5; y keeps A at 9 and leaves at 10, where x keeps it at zero
    # surplus. B stops at 5 after round 5 while A rises to 10 in round 10.
    outcome, results = run_clock(["A", "B"], TWO, ClockRules(increment=1, opening_price=1))
    assert outcome.allocation == {"A": "x", "B": "x"}
    assert outcome.prices == {"A": 10.0, "B": 5.0}
    assert outcome.payments == {"x": 15.0, "y": 0.0}
    assert (outcome.rounds_run, outcome.rounds_with_bids) == (10, 10)
    assert [r.standings["B"] for r in results[4:]] == [Standing("x", 5.0)] * 6
    assert all(r.standings["B"] is None for r in results[:4])
    # The judge's tolerance (8) with the clock's price step accepts the outcome.
    assert check_equilibrium(["A", "B"], dict(TWO), outcome.allocation, outcome.prices, 1.0).holds


def test_clock_two_products_smallest_ties_stop_at_the_second_value():
    outcome, _ = run_clock(["A", "B"], TWO, ClockRules(increment=1, opening_price=1), ties="smallest")
    # y leaves B at 4 and A at 9 (zero surplus): x wins both at the losing values.
    assert outcome.allocation == {"A": "x", "B": "x"}
    assert outcome.prices == {"A": 9.0, "B": 4.0}
    assert outcome.rounds_run == 9


def test_clock_percent_increments_rise_geometrically():
    # 10 % from 1 $: 1, 1.1, 1.21, 1.331; y (value 1.3) leaves at 1.331 and x wins there.
    bidders = [("x", AdditiveValuation({"A": 100})), ("y", AdditiveValuation({"A": 1.3}))]
    auction = ClockAuction(["A"], ["x", "y"], ClockRules(increment=10, increment_kind="percent"))
    assert auction.price_step == pytest.approx(0.1)  # the step from the opening price
    outcome, results = play(auction, bidders, "paper")
    assert [r.bids[0].amount for r in results] == pytest.approx([1.0, 1.1, 1.21, 1.331])
    assert outcome.prices["A"] == pytest.approx(1.331) and outcome.allocation == {"A": "x"}
    assert auction.price_step == pytest.approx(0.121)  # the largest step taken, 1.21 -> 1.331
    assert check_equilibrium(["A"], dict(bidders), outcome.allocation, outcome.prices, auction.price_step).holds


def test_clock_percent_step_is_at_least_a_cent():
    auction = ClockAuction(["A"], ["x", "y"], ClockRules(increment=1, increment_kind="percent", opening_price=0.5))
    auction.run_round([Bid("x", "A", 0.5), Bid("y", "A", 0.5)])
    assert auction.prices == {"A": pytest.approx(0.51)}  # 1 % of 0.5 is 0.005 < 0.01


def test_clock_stopped_at_max_rounds_sells_an_over_demanded_product_to_its_first_demander():
    bidders = [("x", AdditiveValuation({"A": 100, "B": 100})), ("y", AdditiveValuation({"A": 100}))]
    auction = ClockAuction(["A", "B"], ["x", "y"], ClockRules(increment=1, max_rounds=3))
    outcome, _ = play(auction, bidders, "paper")
    assert (outcome.rounds_run, outcome.closed_by) == (3, "max_rounds")
    # A was still over-demanded at 3 $: demand binds, so it goes to x (first in bidder order).
    assert outcome.allocation == {"A": "x", "B": "x"}
    assert outcome.prices == {"A": 3.0, "B": 1.0}
    assert auction.prices == {"A": 3.0, "B": 1.0}  # no rise after the last round


def test_clock_demand_binds_so_a_product_dropped_by_all_at_once_is_not_unsold():
    # Equal values 5: both keep A at 5 (zero surplus, held), both leave at 6. Nobody is left at
    # 6, but both demanded it at 5: it goes to x (first in bidder order) at 5.
    bidders = [("x", AdditiveValuation({"A": 5})), ("y", AdditiveValuation({"A": 5}))]
    outcome, _ = run_clock(["A"], bidders, ClockRules(increment=1))
    assert outcome.allocation == {"A": "x"} and outcome.prices == {"A": 5.0}
    assert (outcome.rounds_run, outcome.rounds_with_bids, outcome.closed_by) == (6, 5, "clock_cleared")


def test_clock_state_is_a_demand_query_holding_last_demand():
    auction = ClockAuction(["A", "B"], ["x", "y"], ClockRules(increment=2, opening_price=3))
    state = auction.state()
    assert isinstance(state, ClockState) and isinstance(state, DemandQuery)
    assert state.prices_for("x") == state.prices_for("y") == {"A": 3.0, "B": 3.0}
    assert state.held_by("x") == frozenset()
    assert state.messages("y", frozenset({"B", "A"})) == [Bid("y", "A", 3.0), Bid("y", "B", 3.0)]
    assert state.messages("y", frozenset()) == []
    result = auction.run_round([Bid("y", "A", 3.0), Bid("x", "A", 3.0), Bid("x", "B", 3.0)])
    assert result.bids == (Bid("x", "A", 3.0), Bid("y", "A", 3.0), Bid("x", "B", 3.0))  # product, bidder order
    assert result.standings == {"A": None, "B": Standing("x", 3.0)}
    state = auction.state()
    assert state.round == 2 and state.prices == {"A": 5.0, "B": 3.0}
    assert state.held_by("x") == {"A", "B"} and state.held_by("y") == {"A"}


def test_clock_rejects_invalid_demands_in_one_line():
    auction = ClockAuction(["A"], ["x", "y"], ClockRules(increment=1, opening_price=2))
    message = one_line_error(lambda: auction.run_round([Bid("x", "A", 3.0)]))
    assert message == "round 1: demand by 'x' for 'A': amount 3 $ is not the clock price 2 $"
    assert "unknown bidder" in one_line_error(lambda: auction.run_round([Bid("z", "A", 2.0)]))
    assert "unknown product" in one_line_error(lambda: auction.run_round([Bid("x", "B", 2.0)]))
    message = one_line_error(lambda: auction.run_round([Bid("x", "A", 2.0), Bid("x", "A", 2.0)]))
    assert message == "round 1: demand by 'x' for 'A': a bidder may demand a product once per round"
    assert auction.rounds_run == 0
    auction.run_round([Bid("x", "A", 2.0 + 1e-12)])  # floating-point noise is forgiven
    assert auction.closed
    assert "closed" in one_line_error(lambda: auction.run_round([]))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "increment: field required"),
        ({"increment": 0}, "increment: input should be greater than 0"),
        ({"increment": 1, "increment_kind": "pct"}, "increment_kind: unknown increment_kind 'pct'; choose one of absolute, percent"),
        ({"increment": 1, "opening_price": 0}, "opening_price: input should be greater than 0"),
        ({"increment": 1, "max_rounds": 0}, "max_rounds: input should be greater than or equal to 1"),
    ],
)
def test_clock_rules_errors_name_the_field(fields, expected):
    with pytest.raises(ValidationError) as error:
        ClockRules(**fields)
    assert first_error(error.value) == expected


def test_clock_as_run_writes_the_effective_opening_price():
    assert ClockRules(increment=2).as_run().opening_price == 2
    assert ClockRules(increment=5, increment_kind="percent").as_run().opening_price == 1.0
    assert ClockRules(increment=5, opening_price=3).as_run().opening_price == 3


def test_clock_spec_builds_the_clock():
    spec = clock.SPEC
    assert (spec.kind, spec.table, spec.rules) == ("clock", "clock", ClockRules)
    built = spec.build(["A"], ["x"], ClockRules(increment=1), None)
    assert isinstance(built, ClockAuction) and built.price_step == 1
