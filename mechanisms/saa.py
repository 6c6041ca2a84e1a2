"""The simultaneous ascending auction (SAA) engine, spec 4.2.

The engine knows products and bidders by name only. It takes each round's sealed bids, checks
them against the minimum acceptable bid, resolves the round and posts the standing high bids.
It never decides what anyone bids: that is the bidders' business (agents/).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Iterable, Mapping, Sequence

import numpy as np
from pydantic import Field, field_validator

from mechanisms.errors import MechanismError
from mechanisms.mechanism import Bid, MechanismSpec, Outcome, RoundResult, Standing, checked_market
from mechanisms.settings import MAX_MONEY, Settings
from mechanisms.tie_breaking import TIE_BREAK_RULES, TieBreaker, make_tie_breaker

# Money compares with a little slack so that bids computed as `standing + increment`
# in floating point are never rejected for a rounding error.
_MONEY_TOLERANCE = 1e-9


class AuctionRules(Settings):
    """The SAA's rule table (config ``[auction]``), spec 4.2."""

    increment: float = Field(gt=0, le=MAX_MONEY)
    opening_bid: float | None = Field(default=None, gt=0, le=MAX_MONEY)  # None: the increment
    tie_break: str = "alternating"
    max_rounds: int = Field(default=1000, ge=1)

    @field_validator("tie_break")
    @classmethod
    def _known_rule(cls, value: str) -> str:
        if value not in TIE_BREAK_RULES:
            raise ValueError(f"unknown tie_break {value!r}; choose one of {', '.join(TIE_BREAK_RULES)}")
        return value

    @property
    def effective_opening_bid(self) -> float:
        return self.increment if self.opening_bid is None else self.opening_bid

    def as_run(self) -> "AuctionRules":
        return self.model_copy(update={"opening_bid": self.effective_opening_bid})


@dataclass(frozen=True)
class AuctionState:
    """What every bidder sees before a round: the posted standings and minimum acceptable bids."""

    round: int  # the round about to be bid
    products: tuple[str, ...]
    bidders: tuple[str, ...]
    standings: Mapping[str, Standing | None]
    minimum_bids: Mapping[str, float]

    def held_by(self, bidder: str) -> frozenset[str]:
        return frozenset(p for p, s in self.standings.items() if s is not None and s.bidder == bidder)

    def prices_for(self, bidder: str) -> dict[str, float]:
        """Its own standing bid on what it holds (carried over), the minimum bid elsewhere."""
        held = self.held_by(bidder)
        return {p: (self.standings[p].price if p in held else self.minimum_bids[p])  # type: ignore[union-attr]
                for p in self.products}

    def messages(self, bidder: str, bundle: frozenset[str]) -> list[Bid]:
        """The minimum acceptable bid on each product of the bundle it does not hold yet."""
        held = self.held_by(bidder)
        return [Bid(bidder, p, self.minimum_bids[p]) for p in self.products if p in bundle and p not in held]


@dataclass
class SimultaneousAscendingAuction:
    """Round-by-round SAA over indivisible products.

    Rules (spec 4.2): in each round bidders bid simultaneously on any products; a new bid must
    be at least the standing high bid plus the increment (the opening bid where there is none);
    standing bids carry over, so a holder does not re-bid; equal highest new bids are settled by
    the tie-break rule; the auction closes after a round with no new bids, or when `max_rounds`
    rounds have run. Winners pay their standing bids; unsold products have price 0.
    """

    products: Sequence[str]
    bidders: Sequence[str]
    rules: AuctionRules
    rng: np.random.Generator | None = None
    kind: ClassVar[str] = "saa"
    _standings: dict[str, Standing | None] = field(init=False, repr=False)
    _tie_breaker: TieBreaker = field(init=False, repr=False)
    _rounds_run: int = field(init=False, default=0)
    _rounds_with_bids: int = field(init=False, default=0)
    _closed_by: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.products, self.bidders = checked_market(self.products, self.bidders)
        self._standings = {p: None for p in self.products}
        self._tie_breaker = make_tie_breaker(self.rules.tie_break, self.bidders, self.rng)

    # -- what bidders see -------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed_by is not None

    @property
    def rounds_run(self) -> int:
        return self._rounds_run

    @property
    def price_step(self) -> float:
        return self.rules.increment

    def minimum_bid(self, product: str) -> float:
        standing = self._standing(product)
        if standing is None:
            return self.rules.effective_opening_bid
        return standing.price + self.rules.increment

    def state(self) -> AuctionState:
        return AuctionState(
            round=self._rounds_run + 1,
            products=tuple(self.products),
            bidders=tuple(self.bidders),
            standings=dict(self._standings),
            minimum_bids={p: self.minimum_bid(p) for p in self.products},
        )

    # -- one round --------------------------------------------------------------------
    def run_round(self, bids: Iterable[Bid]) -> RoundResult:
        if self.closed:
            raise MechanismError(f"the auction closed after round {self._rounds_run}; no more rounds can run")
        round_number = self._rounds_run + 1
        ordered = self._validated(list(bids), round_number)

        by_product: dict[str, list[Bid]] = {p: [] for p in self.products}
        for bid in ordered:
            by_product[bid.product].append(bid)

        self._tie_breaker.start_round()
        new_standings: dict[str, Standing] = {}
        ties: dict[str, tuple[str, ...]] = {}
        for product in self.products:  # product order matters for alternating priority
            product_bids = by_product[product]
            if not product_bids:
                continue
            top = max(b.amount for b in product_bids)
            tied = tuple(b.bidder for b in product_bids if b.amount >= top - _MONEY_TOLERANCE)
            if len(tied) > 1:
                winner = self._tie_breaker.choose(product, tied)
                ties[product] = tied
            else:
                winner = tied[0]
            # Every valid new bid beats the standing bid by at least the increment.
            new_standings[product] = Standing(bidder=winner, price=top)
        self._standings.update(new_standings)

        self._rounds_run = round_number
        if ordered:
            self._rounds_with_bids += 1
            if round_number >= self.rules.max_rounds:
                self._closed_by = "max_rounds"
        else:
            self._closed_by = "no_new_bids"
        return RoundResult(
            round=round_number,
            bids=tuple(ordered),
            new_standings=new_standings,
            ties=ties,
            standings=dict(self._standings),
            closed=self.closed,
        )

    def outcome(self) -> Outcome:
        allocation = {p: (s.bidder if s is not None else None) for p, s in self._standings.items()}
        prices = {p: (s.price if s is not None else 0.0) for p, s in self._standings.items()}
        return Outcome.priced(self.kind, self.bidders, allocation, prices, rounds_with_bids=self._rounds_with_bids,
                              rounds_run=self._rounds_run, closed_by=self._closed_by or "open")

    # -- internals --------------------------------------------------------------------
    def _standing(self, product: str) -> Standing | None:
        if product not in self._standings:
            raise MechanismError(f"unknown product {product!r}; the auction sells {', '.join(self.products)}")
        return self._standings[product]

    def _validated(self, bids: list[Bid], round_number: int) -> list[Bid]:
        bidder_rank = {b: i for i, b in enumerate(self.bidders)}
        product_rank = {p: i for i, p in enumerate(self.products)}
        seen: set[tuple[str, str]] = set()
        for bid in bids:
            where = f"round {round_number}: bid by {bid.bidder!r} on {bid.product!r}"
            if bid.bidder not in bidder_rank:
                raise MechanismError(f"{where}: unknown bidder; the bidders are {', '.join(self.bidders)}")
            standing = self._standing(bid.product)
            if (bid.bidder, bid.product) in seen:
                raise MechanismError(f"{where}: a bidder may bid once per product per round")
            seen.add((bid.bidder, bid.product))
            if not math.isfinite(bid.amount):
                raise MechanismError(f"{where}: amount {bid.amount} is not a finite number of $")
            if standing is not None and standing.bidder == bid.bidder:
                raise MechanismError(f"{where}: the bidder already holds the standing high bid; standing bids carry over")
            minimum = self.minimum_bid(bid.product)
            if bid.amount < minimum - _MONEY_TOLERANCE:
                raise MechanismError(f"{where}: {bid.amount:g} $ is below the minimum acceptable bid {minimum:g} $")
        return sorted(bids, key=lambda b: (product_rank[b.product], bidder_rank[b.bidder]))


SPEC = MechanismSpec(
    kind="saa",
    rules=AuctionRules,
    build=lambda products, bidders, rules, rng: SimultaneousAscendingAuction(products, bidders, rules, rng=rng),
    table="auction",
    summary="simultaneous ascending auction (the paper's): rounds of bids on any products, standing bids carry over",
)
