"""Golden markets of issue 8, every expected value worked by hand in the comments."""

from __future__ import annotations

import csv
import json

import pytest
import tomli_w

from agents.valuations import AdditiveValuation, BundleTableValuation
from mechanisms.engines.saa import AuctionRules
from mechanisms.judge.certify import best_allocation, certify
from sim.cli import main
from tests.auction_driver import simulate


def unit_demand(values: dict[str, float]) -> BundleTableValuation:
    return BundleTableValuation(bundles=tuple((frozenset({p}), float(v)) for p, v in values.items()))


@pytest.mark.parametrize("increment", [1.0, 0.5, 0.1, 0.01])
def test_unit_demand_saa_reaches_the_efficient_allocation_near_the_minimal_prices(increment):
    # Bidder 1 values A 10, B 8; bidder 2 values A 9, B 4; each wants one item. Efficient: 1 gets
    # B, 2 gets A (8 + 9 = 17 against 10 + 4 = 14). Walrasian prices need bidder 1 to prefer B:
    # 8 - pB >= 10 - pA, and bidder 2 to prefer A: 9 - pA >= 4 - pB, with pA <= 9:
    # 2 <= pA - pB <= 5; the minimal vector is (2, 0).
    bidders = [("1", unit_demand({"A": 10, "B": 8})), ("2", unit_demand({"A": 9, "B": 4}))]
    auction, _ = simulate(("A", "B"), bidders, AuctionRules(increment=increment))
    outcome = auction.outcome()
    assert outcome.allocation == {"A": "2", "B": "1"}
    assert abs(outcome.prices["A"] - 2.0) <= 2 * increment + 1e-9
    assert abs(outcome.prices["B"] - 0.0) <= 2 * increment + 1e-9
    got = certify(("A", "B"), dict(bidders), outcome.allocation, outcome.prices, increment)
    assert got.prices_form_equilibrium and got.welfare == 17
    assert got.optimum.walrasian_exists and got.optimum.minimal_prices == pytest.approx({"A": 2.0, "B": 0.0})


def test_complements_without_equilibrium_are_reported_as_such():
    # Bidder 1 values only {A, B} at 3; bidder 2 wants one item at 2. Integer optimum 3 (bidder
    # 1 takes both; bidder 2 alone gets only 2). The LP relaxation puts 1/2 on bidder 1's {A, B}
    # and 1/2 on each of bidder 2's {A} and {B} (its one-bundle row: 1/2 + 1/2 <= 1; each item:
    # 1/2 + 1/2 <= 1): 1.5 + 1 + 1 = 3.5. A gap of 0.5 > 0: no item prices support any allocation.
    valuations = {"1": BundleTableValuation(bundles=((frozenset({"A", "B"}), 3.0),)),
                  "2": unit_demand({"A": 2, "B": 2})}
    optimum, _, _ = best_allocation(("A", "B"), valuations)
    assert optimum.welfare == pytest.approx(3.0) and optimum.lp_value == pytest.approx(3.5)
    assert optimum.walrasian_exists is False and optimum.lp_gap == pytest.approx(0.5)


def test_single_item_goes_to_the_highest_value_near_the_second():
    # Values 10, 7, 4. Bidders who also bid at zero surplus (the "largest" bundle rule): the
    # 7-bidder bids up to exactly 7, so bidder 1 wins at a price in [7, 7 + increment]. Under the
    # paper's rule after round 1 ("fewest_new") a bidder does not open a new bid at zero
    # surplus, so the 7-bidder stops below 7 and the price ends in [7 - increment, 7].
    for increment in (1.0, 0.5, 0.25, 0.1):
        bidders = [(f"{v}", AdditiveValuation(values={"A": float(v)})) for v in (10, 7, 4)]
        auction, _ = simulate(("A",), bidders, AuctionRules(increment=increment), ties="largest")
        outcome = auction.outcome()
        assert outcome.allocation == {"A": "10"}
        assert 7.0 - 1e-9 <= outcome.prices["A"] <= 7.0 + increment + 1e-9
        paper, _ = simulate(("A",), bidders, AuctionRules(increment=increment))
        assert paper.outcome().allocation == {"A": "10"}
        assert 7.0 - increment - 1e-9 <= paper.outcome().prices["A"] <= 7.0 + 1e-9


def exposure_config() -> dict:
    return {
        "seed": 1,
        "products": [{"id": "A", "capacity_mw": 1.0}, {"id": "B", "capacity_mw": 1.0}],
        "auction": {"increment": 1},
        "bidders": [
            {"name": "pair", "profile": "bundles", "bundles": [{"products": ["A", "B"], "value": 3}]},
            {"name": "onlyA", "profile": "additive", "values": {"A": 2}},
            {"name": "onlyB", "profile": "additive", "values": {"B": 2}},
        ],
    }


def test_exposure_leaves_the_straightforward_complement_bidder_with_a_loss(tmp_path, capsys):
    # Round 1 at opening bids of 1: "pair" bids on A and B (3 - 2 = 1 > 0), onlyA on A and onlyB
    # on B. Alternating priority starts at "pair": it wins the tie on A; the pointer moves on, so
    # onlyB wins B. Round 2: "pair" would pay 1 (its A) + 2 (B) = 3 for its 3 $ pair, surplus 0,
    # the same as giving up; it bids nothing, and onlyA (2 - 2 = 0) neither: the auction closes.
    # "pair" holds A alone, worth 0 to it, and pays 1. An equilibrium exists all the same:
    # prices (1.5, 1.5) with onlyA and onlyB winning (welfare 4).
    path = tmp_path / "exposure.toml"
    path.write_text(tomli_w.dumps(exposure_config()))
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["allocation"] == {"A": "pair", "B": "onlyB"}
    assert summary["prices"] == {"A": 1, "B": 1}
    assert summary["surplus"] == {"pair": -1, "onlyA": 0, "onlyB": 1}
    eq = summary["equilibrium"]
    assert eq["walrasian_exists"] is True and eq["prices_form_equilibrium"] is False
    assert summary["welfare"] == 2 and summary["efficient_welfare"] == 4
    with (out / "bids.csv").open(newline="") as handle:
        bids = [(r["round"], r["bidder"], r["product"], float(r["amount"])) for r in csv.DictReader(handle)]
    assert bids == [("1", "pair", "A", 1.0), ("1", "onlyA", "A", 1.0), ("1", "pair", "B", 1.0), ("1", "onlyB", "B", 1.0)]
    printed = capsys.readouterr().out
    assert "pair    A                     0         1           -1" in printed
    assert "(7a) pair prefers {} (surplus 0) to its bundle {A} (surplus -1)" in printed


def test_withdrawing_the_exposed_bid_costs_the_fcc_withdrawal_payment(tmp_path):
    # The exposure market again, with one withdrawal round allowed and "pair" withdrawing what is
    # no longer worth its price. Round 2: "pair" holds A at 1 but now wants nothing (B costs 2):
    # A alone is worth 0 < 1, so it withdraws A. A is re-offered at the highest bid it received
    # that was not withdrawn, onlyA's 1 $; onlyA (value 2) bids 1 in round 3 and wins A at 1.
    # The withdrawal payment is max(0, 1 - 1) = 0: "pair" leaves without a loss.
    config = exposure_config()
    config["auction"]["withdrawals_allowed"] = 1
    config["bidders"][0]["strategy"] = "withdraw_exposed"
    path = tmp_path / "withdraw.toml"
    path.write_text(tomli_w.dumps(config))
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["allocation"] == {"A": "onlyA", "B": "onlyB"}
    assert summary["surplus"]["pair"] == 0 and summary["payments"]["pair"] == 0
    assert summary["welfare"] == 4 and summary["equilibrium"]["prices_form_equilibrium"] is True
    with (out / "withdrawals.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["round"], r["bidder"], r["product"], float(r["price"]), float(r["reoffered_at"])) for r in rows] == [
        ("2", "pair", "A", 1.0, 1.0)]
