"""Bidding strategies, chosen by name. A strategy turns a posted auction state into new bids."""

from __future__ import annotations

from typing import Protocol

from agents.bundle_ties import BundleTiePolicy
from agents.errors import AgentConfigError
from agents.valuations import ValuationProfile
from mechanisms.saa import AuctionState, Bid


class BiddingStrategy(Protocol):
    name: str

    def bids(self, bidder: str, valuation: ValuationProfile, state: AuctionState, ties: BundleTiePolicy) -> list[Bid]: ...


class StraightforwardBidding:
    """Bid on a surplus-maximising bundle every round (Definition 2, spec 4.2).

    The bidder faces its own standing price on products it holds and the minimum acceptable
    bid elsewhere, picks a demanded bundle by its tie policy, and bids the minimum on the
    products of that bundle it does not hold.
    """

    name = "straightforward"

    def bids(self, bidder: str, valuation: ValuationProfile, state: AuctionState, ties: BundleTiePolicy) -> list[Bid]:
        held = state.held_by(bidder)
        prices = {
            p: (state.standings[p].price if p in held else state.minimum_bids[p])  # type: ignore[union-attr]
            for p in state.products
        }
        rank = {p: i for i, p in enumerate(state.products)}
        bundle = valuation.choose_bundle(prices, held, ties.rule(state.round), rank)
        return [Bid(bidder, p, state.minimum_bids[p]) for p in sorted(bundle - held, key=rank.__getitem__)]


STRATEGIES: dict[str, type] = {"straightforward": StraightforwardBidding}


def make_strategy(name: str) -> BiddingStrategy:
    try:
        return STRATEGIES[name]()
    except KeyError:
        raise AgentConfigError(f"strategy: unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}") from None
