"""A uniform-price ascending clock auction: one clock price per product.

Rules:

- Every product's clock starts at the opening price. In each round every bidder states the bundle
  it demands at the current clock prices (an empty bundle demands nothing).
- A product demanded by more than one bidder is over-demanded: its clock rises by one increment
  for the next round ("absolute": the increment in $; "percent": that percent of the current
  price, at least 0.01 $). Other clocks stay where they are.
- The auction closes after a round in which no product is over-demanded ("clock_cleared"), or
  after `max_rounds` rounds ("max_rounds"; clocks do not rise after the last round).
- Each product demanded by exactly one bidder in the last round goes to that bidder at its final
  clock price. Demand at a price binds: a product that every demander dropped in the same step
  (two or more at p, none at p + step) goes to the first of them in bidder order at p, the last
  price anyone asked for it, instead of staying unsold; a product still over-demanded when
  `max_rounds` stops the clock goes the same way at its final price. A product nobody ever
  demanded is unsold at price 0.

Between rounds there is no activity rule: a bidder may drop a product and demand it again later,
as straightforward bidders answering each round's prices do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Collection, Iterable, Mapping, Sequence

import numpy as np
from pydantic import Field, field_validator

from mechanisms.errors import MechanismError
from mechanisms.mechanism import (
    Bid,
    MechanismSpec,
    Outcome,
    RoundResult,
    Standing,
    checked_market,
)
from mechanisms.rounds import RoundBook
from mechanisms.settings import MAX_MONEY, MAX_ROUNDS, Settings

INCREMENT_KINDS = ("absolute", "percent")
# The smallest step a percent clock takes, so that a clock near 0 still moves.
MIN_PERCENT_STEP = 0.01
# Demands echo the posted clock price; the slack only forgives floating-point noise.
_MONEY_TOLERANCE = 1e-9


class ClockRules(Settings):
    """The clock auction's rule table (config ``[clock]``).

    - ``increment``: how far an over-demanded clock rises per round: $ ("absolute") or percent of
      its current price, at least 0.01 $ ("percent"). Required, > 0.
    - ``increment_kind``: "absolute" (default) or "percent".
    - ``opening_price``: every clock's first price ($, > 0); None: the increment when absolute,
      1 $ when percent.
    - ``max_rounds``: the auction stops after this many rounds (default 1000).
    """

    increment: float = Field(gt=0, le=MAX_MONEY)
    increment_kind: str = "absolute"
    opening_price: float | None = Field(default=None, gt=0, le=MAX_MONEY)
    max_rounds: int = Field(default=1000, ge=1, le=MAX_ROUNDS)

    @field_validator("increment_kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in INCREMENT_KINDS:
            raise ValueError(f"unknown increment_kind {value!r}; choose one of {', '.join(INCREMENT_KINDS)}")
        return value

    @property
    def effective_opening_price(self) -> float:
        if self.opening_price is not None:
            return self.opening_price
        return self.increment if self.increment_kind == "absolute" else 1.0

    def as_run(self) -> "ClockRules":
        return self.model_copy(update={"opening_price": self.effective_opening_price})

    def step_from(self, price: float) -> float:
        """How far an over-demanded clock at ``price`` rises ($)."""
        if self.increment_kind == "absolute":
            return self.increment
        return max(price * self.increment / 100.0, MIN_PERCENT_STEP)


@dataclass(frozen=True)
class ClockState:
    """Before a round: the clock prices, and what each bidder demanded last round."""

    round: int
    products: tuple[str, ...]
    bidders: tuple[str, ...]
    prices: Mapping[str, float]
    demands: Mapping[str, frozenset[str]]  # bidder -> its demand last round (empty in round 1)

    def prices_for(self, bidder: str, among: Collection[str] | None = None) -> dict[str, float]:
        # Uniform prices: every bidder faces the same clocks.
        if among is None:
            return dict(self.prices)
        return {p: self.prices[p] for p in among if p in self.prices}

    def held_by(self, bidder: str) -> frozenset[str]:
        return self.demands.get(bidder, frozenset())

    def messages(self, bidder: str, bundle: frozenset[str]) -> list[Bid]:
        """One demand per product of the bundle, at its clock price."""
        return [Bid(bidder, p, self.prices[p]) for p in self.products if p in bundle]


@dataclass
class ClockAuction(RoundBook):
    """Uniform-price ascending clock auction; the rules are in the module docstring.

    ``price_step`` is what the equilibrium judge's tolerance (8) uses: the increment for an
    absolute clock; for a percent clock, the largest step any clock has taken, and at least the
    step from the opening price (a clock that never rose still has that granularity). A bidder
    that dropped a product did so when its clock rose by at most that much, so (8) holds with it.
    """

    products: Sequence[str]
    bidders: Sequence[str]
    rules: ClockRules
    rng: np.random.Generator | None = None  # unused: the clock has no random rule
    kind: ClassVar[str] = "clock"
    called: ClassVar[str] = "the clock auction"
    _prices: dict[str, float] = field(init=False, repr=False)
    _demands: dict[str, frozenset[str]] = field(init=False, repr=False)  # bidder -> last demand
    _demanders: dict[str, tuple[str, ...]] = field(init=False, repr=False)  # product -> last round's
    # product -> (the last clock price anyone demanded it at, who did): demand at a price binds.
    _last_demand: dict[str, tuple[float, tuple[str, ...]]] = field(init=False, repr=False)
    _largest_step: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.products, self.bidders = checked_market(self.products, self.bidders)
        opening = self.rules.effective_opening_price
        self._prices = {p: opening for p in self.products}
        self._demands = {b: frozenset() for b in self.bidders}
        self._demanders = {p: () for p in self.products}
        self._last_demand = {}
        self._largest_step = self.rules.step_from(opening)

    # -- what bidders see -------------------------------------------------------------
    @property
    def price_step(self) -> float:
        return self._largest_step

    @property
    def prices(self) -> dict[str, float]:
        """The current clock prices."""
        return dict(self._prices)

    def state(self) -> ClockState:
        return ClockState(
            round=self._rounds_run + 1,
            products=tuple(self.products),
            bidders=tuple(self.bidders),
            prices=dict(self._prices),
            demands=dict(self._demands),
        )

    # -- one round --------------------------------------------------------------------
    def run_round(self, messages: Iterable[Bid]) -> RoundResult:
        round_number = self._open_round()
        demands = self._validated(list(messages), round_number)

        demanders: dict[str, list[str]] = {p: [] for p in self.products}
        bundles: dict[str, set[str]] = {b: set() for b in self.bidders}
        for demand in demands:
            demanders[demand.product].append(demand.bidder)
            bundles[demand.bidder].add(demand.product)
        self._demanders = {p: tuple(bs) for p, bs in demanders.items()}
        for product, bidders in self._demanders.items():
            if bidders:
                self._last_demand[product] = (self._prices[product], bidders)
        self._demands = {b: frozenset(ps) for b, ps in bundles.items()}
        # Standings use the prices the round was bid at, before any clock moves.
        standings = {
            p: (Standing(bs[0], self._prices[p]) if len(bs) == 1 else None) for p, bs in self._demanders.items()
        }

        over_demanded = [p for p in self.products if len(self._demanders[p]) > 1]
        closing = ("clock_cleared" if not over_demanded
                   else "max_rounds" if round_number >= self.rules.max_rounds else None)
        self._close_round(round_number, had_messages=bool(demands), closed_by=closing)
        if closing is None:
            for product in over_demanded:
                step = self.rules.step_from(self._prices[product])
                self._prices[product] += step
                self._largest_step = max(self._largest_step, step)
        return RoundResult(round=round_number, bids=tuple(demands), standings=standings, closed=self.closed)

    def outcome(self) -> Outcome:
        allocation: dict[str, str | None] = {}
        prices: dict[str, float] = {}
        for product in self.products:
            # The last price anyone demanded it at, and who did (see the module doc).
            last = self._last_demand.get(product)
            if last is None:
                allocation[product], prices[product] = None, 0.0
            else:
                allocation[product], prices[product] = last[1][0], last[0]
        return self._priced_outcome(allocation, prices)

    # -- internals --------------------------------------------------------------------
    def _validated(self, demands: list[Bid], round_number: int) -> list[Bid]:
        bidder_rank = {b: i for i, b in enumerate(self.bidders)}
        product_rank = {p: i for i, p in enumerate(self.products)}
        seen: set[tuple[str, str]] = set()
        for demand in demands:
            where = f"round {round_number}: demand by {demand.bidder!r} for {demand.product!r}"
            if demand.bidder not in bidder_rank:
                raise MechanismError(f"{where}: unknown bidder; the bidders are {', '.join(self.bidders)}")
            if demand.product not in product_rank:
                raise MechanismError(f"{where}: unknown product; the auction sells {', '.join(self.products)}")
            if (demand.bidder, demand.product) in seen:
                raise MechanismError(f"{where}: a bidder may demand a product once per round")
            seen.add((demand.bidder, demand.product))
            price = self._prices[demand.product]
            if not math.isfinite(demand.amount) or abs(demand.amount - price) > _MONEY_TOLERANCE:
                raise MechanismError(f"{where}: amount {demand.amount:g} $ is not the clock price {price:g} $")
        return sorted(demands, key=lambda d: (product_rank[d.product], bidder_rank[d.bidder]))


SPEC = MechanismSpec(
    kind="clock",
    rules=ClockRules,
    build=lambda products, bidders, rules, rng: ClockAuction(products, bidders, rules, rng=rng),
    table="clock",
    summary="uniform-price ascending clock auction: one price per product, raised while more than one "
            "bidder demands it",
)
