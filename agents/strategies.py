"""Bidding strategies, chosen by name. A strategy answers a mechanism's posted state with messages.

Every mechanism asks one of two questions (mechanisms/mechanism.py): a `DemandQuery` ("at these
prices, which bundle?") or a `ValuationQuery` ("report your values"). A strategy declares which
mechanisms it can play, so that a config pairing it with another is refused before any run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Sequence

from agents.bundle_ties import BundleTiePolicy
from agents.errors import AgentConfigError
from agents.valuations import ValuationProfile
from mechanisms.mechanism import DemandQuery, ValuationQuery


class BiddingStrategy(Protocol):
    name: ClassVar[str]
    # Mechanism kinds it can play; None: every mechanism.
    mechanisms: ClassVar[frozenset[str] | None]

    def bids(self, bidder: str, valuation: ValuationProfile, state: Any, ties: BundleTiePolicy) -> list[Any]: ...


def demanded_bundle(bidder: str, valuation: ValuationProfile, state: DemandQuery, ties: BundleTiePolicy) -> frozenset[str]:
    """A surplus-maximising bundle at the prices the state quotes this bidder (spec (6)), the
    best one under its tie policy."""
    prices = state.prices_for(bidder)
    held = state.held_by(bidder) & frozenset(prices)
    rank = {p: i for i, p in enumerate(state.products)}
    return valuation.choose_bundle(prices, held, ties.rule(state.round), rank)


class StraightforwardBidding:
    """Ask for a surplus-maximising bundle at the posted prices every round (Definition 2, spec
    4.2); report the true valuation where a mechanism asks for one.

    In the SAA the bidder faces its own standing price on products it holds and the minimum
    acceptable bid elsewhere, and bids the minimum on the products of its bundle it does not
    hold; in a clock auction it states its demand at the clock prices; in a queue it takes its
    best bundle of what is left.
    """

    name: ClassVar[str] = "straightforward"
    mechanisms: ClassVar[frozenset[str] | None] = None

    def bids(self, bidder: str, valuation: ValuationProfile, state: Any, ties: BundleTiePolicy) -> list[Any]:
        if isinstance(state, ValuationQuery):
            return state.report(bidder, valuation)
        if isinstance(state, DemandQuery):
            return state.messages(bidder, demanded_bundle(bidder, valuation, state, ties))
        raise AgentConfigError(f"strategy {self.name!r} cannot answer {type(state).__name__}")


STRATEGIES: dict[str, type] = {"straightforward": StraightforwardBidding}


def make_strategy(name: str) -> BiddingStrategy:
    try:
        return STRATEGIES[name]()
    except KeyError:
        raise AgentConfigError(f"strategy: unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}") from None


@dataclass(frozen=True)
class Participant:
    """A bidder outside Mesa (tests, benchmarks): what the Mesa agent holds, without the model."""

    name: str
    valuation: ValuationProfile
    strategy: BiddingStrategy
    ties: BundleTiePolicy

    def messages(self, state: Any) -> list[Any]:
        return self.strategy.bids(self.name, self.valuation, state, self.ties)


def respond_all(participants: Sequence[Participant]):
    """The loop's ``respond`` for plain participants, in their order."""
    return lambda state: [message for p in participants for message in p.messages(state)]
