"""The simultaneous ascending auction (SAA) engine, spec 4.2.

The engine knows products and bidders by name only. It takes each round's sealed bids, checks
them against the minimum acceptable bid, resolves the round and posts the standing high bids.
It never decides what anyone bids: that is the bidders' business (agents/).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from mechanisms.errors import MechanismError
from mechanisms.tie_breaking import TieBreaker, make_tie_breaker

# Money compares with a little slack so that bids computed as `standing + increment`
# in floating point are never rejected for a rounding error.
_MONEY_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Bid:
    bidder: str
    product: str
    amount: float


@dataclass(frozen=True)
class Standing:
    """The standing high bid on a product: who holds it and at what price ($)."""

    bidder: str
    price: float


@dataclass(frozen=True)
class AuctionRules:
    increment: float
    opening_bid: float | None = None  # None: the increment (spec 4.2: round 1 opens at delta)
    tie_break: str = "alternating"
    max_rounds: int = 1000

    def __post_init__(self) -> None:
        if not (math.isfinite(self.increment) and self.increment > 0):
            raise MechanismError(f"auction increment must be a positive number of $, got {self.increment}")
        if self.opening_bid is not None and not (math.isfinite(self.opening_bid) and self.opening_bid > 0):
            raise MechanismError(f"auction opening_bid must be a positive number of $, got {self.opening_bid}")
        if self.max_rounds < 1:
            raise MechanismError(f"auction max_rounds must be at least 1, got {self.max_rounds}")

    @property
    def effective_opening_bid(self) -> float:
        return self.increment if self.opening_bid is None else self.opening_bid


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


@dataclass(frozen=True)
class RoundResult:
    round: int
    bids: tuple[Bid, ...]  # every new bid of the round, in product order then bidder order
    new_standings: Mapping[str, Standing]  # products whose standing high bid changed this round
    ties: Mapping[str, tuple[str, ...]]  # product -> bidders tied at the highest new bid
    standings: Mapping[str, Standing | None]  # after the round, every product
    closed: bool


@dataclass(frozen=True)
class AuctionOutcome:
    allocation: dict[str, str | None]  # product -> winner, None if unsold
    prices: dict[str, float]  # product -> final price ($); 0 for unsold products
    payments: dict[str, float]  # bidder -> total paid ($), every bidder
    rounds_with_bids: int
    rounds_run: int  # including the closing round without bids
    closed_by: str  # "no_new_bids" | "max_rounds"

    def bundles(self) -> dict[str, tuple[str, ...]]:
        """Bidder -> products won, in product order."""
        won: dict[str, list[str]] = {bidder: [] for bidder in self.payments}
        for product, winner in self.allocation.items():
            if winner is not None:
                won[winner].append(product)
        return {bidder: tuple(items) for bidder, items in won.items()}


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
    _standings: dict[str, Standing | None] = field(init=False, repr=False)
    _tie_breaker: TieBreaker = field(init=False, repr=False)
    _rounds_run: int = field(init=False, default=0)
    _rounds_with_bids: int = field(init=False, default=0)
    _closed_by: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.products = tuple(self.products)
        self.bidders = tuple(self.bidders)
        for kind, names in (("product", self.products), ("bidder", self.bidders)):
            if not names:
                raise MechanismError(f"an auction needs at least one {kind}")
            if len(set(names)) != len(names):
                duplicate = next(n for n in names if names.count(n) > 1)
                raise MechanismError(f"{kind} {duplicate!r} appears twice; {kind} names must be unique")
        self._standings = {p: None for p in self.products}
        self._tie_breaker = make_tie_breaker(self.rules.tie_break, self.bidders, self.rng)

    # -- what bidders see -------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed_by is not None

    @property
    def rounds_run(self) -> int:
        return self._rounds_run

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

    def outcome(self) -> AuctionOutcome:
        allocation = {p: (s.bidder if s is not None else None) for p, s in self._standings.items()}
        prices = {p: (s.price if s is not None else 0.0) for p, s in self._standings.items()}
        payments = {bidder: 0.0 for bidder in self.bidders}
        for standing in self._standings.values():
            if standing is not None:
                payments[standing.bidder] += standing.price
        return AuctionOutcome(
            allocation=allocation,
            prices=prices,
            payments=payments,
            rounds_with_bids=self._rounds_with_bids,
            rounds_run=self._rounds_run,
            closed_by=self._closed_by or "open",
        )

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
