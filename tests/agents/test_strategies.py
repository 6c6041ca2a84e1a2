"""Bidding strategies: hand-traced auctions, invariants every round, and their config."""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path

import pytest

from agents.bundle_ties import bundle_tie_policy
from agents.strategies import (
    BudgetLimited,
    DemandReduction,
    Jump,
    Participant,
    Straightforward,
    make_strategy,
    respond_all,
)
from agents.valuations import (
    AdditiveValuation,
    BundleTableValuation,
    SymmetricConcaveValuation,
)
from mechanisms.engines.saa import AuctionRules, SimultaneousAscendingAuction
from mechanisms.loop import run_to_close
from sim.config.schema import ConfigError, parse_config

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
PAPER = bundle_tie_policy("paper")


def auction(products, participants, rules):
    engine = SimultaneousAscendingAuction(products, [p.name for p in participants], rules)
    results = []
    outcome = run_to_close(engine, respond_all(participants), results.append)
    return engine, outcome, results


def test_jump_bids_jump_while_the_value_allows_and_shorten_the_auction():
    # One product, values 10 (jumper) and 7 (straightforward), increment 1, opening bid 1.
    # Round 1: the jumper bids 1 + 3 = 4 (surplus 6 >= 0), the other bids 1: the jumper holds at 4.
    # Round 2: the other bids 5; round 3: the jumper jumps to 6 + 3 = 9 (surplus 1); the other
    # (value 7) cannot pay 10 and stops. The jumper wins at 9, where straightforward bidding
    # stops between 7 and 8 after more rounds.
    jumper = Participant("J", AdditiveValuation(values={"A": 10.0}), Jump(increments=3), PAPER)
    other = Participant("S", AdditiveValuation(values={"A": 7.0}), Straightforward(), PAPER)
    _, outcome, results = auction(("A",), [jumper, other], AuctionRules(increment=1))
    assert [(b.bidder, b.amount) for r in results for b in r.bids] == [("J", 4.0), ("S", 1.0), ("S", 5.0), ("J", 9.0)]
    assert outcome.allocation == {"A": "J"} and outcome.prices == {"A": 9.0}
    plain = Participant("J", AdditiveValuation(values={"A": 10.0}), Straightforward(), PAPER)
    _, slow, _ = auction(("A",), [plain, other], AuctionRules(increment=1))
    assert slow.allocation == {"A": "J"} and 7.0 <= slow.prices["A"] <= 8.0
    assert outcome.rounds_run < slow.rounds_run


def test_demand_reduction_keeps_one_unit_and_pays_less():
    # X values one unit at 10 and two at 18; Y wants one unit at 5. Straightforward, X fights Y
    # for both units and pays about 5 each. Reducing demand once it holds one unit, X lets Y
    # have the other at a low price and keeps its own cheap: its surplus rises.
    x_value = SymmetricConcaveValuation(by_size=(10.0, 18.0))
    y = Participant("Y", BundleTableValuation(bundles=((frozenset({"A"}), 5.0), (frozenset({"B"}), 5.0))),
                    Straightforward(), PAPER)
    rules = AuctionRules(increment=1)
    _, plain, _ = auction(("A", "B"), [Participant("X", x_value, Straightforward(), PAPER), y], rules)
    _, reduced, _ = auction(("A", "B"), [Participant("X", x_value, DemandReduction(keep=1), PAPER), y], rules)

    def surplus(outcome):
        won = frozenset(p for p, w in outcome.allocation.items() if w == "X")
        return x_value(won) - outcome.payments["X"]

    assert sorted(plain.bundles()["X"]) == ["A", "B"]
    assert len(reduced.bundles()["X"]) == 1 and len(reduced.bundles()["Y"]) == 1
    assert surplus(reduced) > surplus(plain)
    assert reduced.payments["X"] + reduced.payments["Y"] < plain.payments["X"] + plain.payments["Y"]


def test_a_budget_limited_bidder_never_commits_more_than_its_budget():
    # Values A 10 and B 10 against a rival at 7 each; budget 12. At every round the standing
    # prices of what it holds plus its new bids stay within 12 $.
    budget = BudgetLimited(budget_usd=12.0)
    b = Participant("B", AdditiveValuation(values={"A": 10.0, "B": 10.0}), budget, PAPER)
    rival = Participant("R", AdditiveValuation(values={"A": 7.0, "B": 7.0}), Straightforward(), PAPER)
    engine = SimultaneousAscendingAuction(("A", "B"), ["B", "R"], AuctionRules(increment=1))
    while not engine.closed:
        state = engine.state()
        bids = b.messages(state)
        committed = math.fsum(state.standings[p].price for p in state.held_by("B")) + math.fsum(x.amount for x in bids)
        assert committed <= 12.0 + 1e-9
        engine.run_round(bids + rival.messages(state))
    outcome = engine.outcome()
    assert outcome.payments["B"] <= 12.0
    # Without the budget it outbids the rival on both units at about 7 each: more than 12 $.
    plain = Participant("B", AdditiveValuation(values={"A": 10.0, "B": 10.0}), Straightforward(), PAPER)
    _, unlimited, _ = auction(("A", "B"), [plain, rival], AuctionRules(increment=1))
    assert unlimited.bundles()["B"] == ("A", "B") and unlimited.payments["B"] > 12.0


def test_straightforward_bidders_stay_within_their_eligibility():
    # Three products of 1 point; "big" may use 2 points, so although it values all three it asks
    # for two at most; the engine never rejects its bids.
    rules = AuctionRules(increment=1, eligibility_points={"A": 1, "B": 1, "C": 1},
                         initial_eligibility={"big": 2})
    big = Participant("big", AdditiveValuation(values={"A": 9.0, "B": 8.0, "C": 7.0}), Straightforward(), PAPER)
    small = Participant("small", AdditiveValuation(values={"C": 3.0}), Straightforward(), PAPER)
    _, outcome, results = auction(("A", "B", "C"), [big, small], rules)
    assert {p for r in results for x in r.bids if x.bidder == "big" for p in [x.product]} <= {"A", "B"}
    assert sorted(outcome.bundles()["big"]) == ["A", "B"] and outcome.bundles()["small"] == ("C",)


def _config(**bidder_changes):
    config = tomllib.loads((EXPERIMENTS / "paper_4bus_additive.toml").read_text())
    config["bidders"][0].update(bidder_changes)
    return config


def test_strategies_are_configured_by_name_or_table_with_field_named_errors():
    config = parse_config(_config(strategy={"name": "budget_limited", "budget_usd": 40}))
    strategy = make_strategy(config.bidders[0].strategy)
    assert isinstance(strategy, BudgetLimited) and strategy.budget_usd == 40
    assert isinstance(make_strategy("jump"), Jump) and make_strategy("jump").increments == 3
    cases = [
        ({"strategy": {"name": "budget_limited"}}, "bidders[0].strategy: budget_usd: field required"),
        ({"strategy": {"name": "jump", "increments": 0}}, "bidders[0].strategy: increments: input should be greater than or equal to 1"),
        ({"strategy": {"name": "jump", "step": 2}}, "bidders[0].strategy: unknown field 'step'"),
        ({"strategy": "sniping"}, "bidders[0].strategy: unknown strategy 'sniping'"),
    ]
    for change, message in cases:
        with pytest.raises(ConfigError) as exc:
            parse_config(_config(**change), "cfg")
        assert message in str(exc.value), str(exc.value)


def test_a_strategy_is_refused_for_a_mechanism_it_cannot_play():
    config = _config(strategy="jump")
    config["mechanism"] = {"kind": "clock"}
    config["clock"] = copy.deepcopy(config.pop("auction"))
    config["clock"] = {"increment": 5}
    with pytest.raises(ConfigError) as exc:
        parse_config(config, "cfg")
    assert "bidders[0].strategy: 'jump' plays only saa, not the 'clock' mechanism" in str(exc.value)


def test_a_strategy_is_validated_once_from_config_to_agent(monkeypatch):
    """The schema reads each strategy once; the rule check, the model and the effective config
    use what it read (three reads before)."""
    import agents.strategies as strategies
    from sim.config.schema import effective_config
    from sim.market.model import MarketModel

    reads = []
    original = strategies.strategy_parts
    monkeypatch.setattr(strategies, "strategy_parts", lambda value: reads.append(value) or original(value))
    raw = _config(strategy={"name": "budget_limited", "budget_usd": 40})
    config = parse_config(raw)
    model = MarketModel(config, base_dir=EXPERIMENTS)
    assert len(reads) == len(raw["bidders"])  # the second bidder's default is read too, once
    assert isinstance(model.bidders[0].strategy, BudgetLimited) and model.bidders[0].strategy.budget_usd == 40
    written = effective_config(config)["bidders"]
    assert written[0]["strategy"] == {"name": "budget_limited", "budget_usd": 40}
    assert written[1]["strategy"] == "straightforward"
