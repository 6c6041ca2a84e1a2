"""A first-come-first-served interconnection queue: today's practice, the baseline the auctions beat.

Rules: bidders arrive one at a time in a fixed order (the config's, its reverse, or a seeded
random permutation). Each arriving bidder is quoted a flat connection tariff for every product
still unconnected and takes whichever of them it wants; later arrivals see only what is left.
Every bidder arrives exactly once, one round per arrival, and the queue closes after the last
arrival. Connected products cost their holder the tariff; unconnected products have price 0.

The queue ignores value on purpose: at a tariff of 0 the first arrival takes everything it
values at all, however little, which is the inefficiency the auctions are compared against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Collection, Iterable, Mapping, Sequence

import numpy as np
from pydantic import field_validator

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
from mechanisms.settings import MAX_MONEY, Settings

QUEUE_ORDERS = ("config", "random", "reverse")
# Requests echo the posted tariff; the slack only forgives floating-point noise.
_MONEY_TOLERANCE = 1e-9


class QueueRules(Settings):
    """The queue's rule table (config ``[queue]``).

    - ``order``: arrival order: "config" (bidders in config order), "reverse", or "random" (the
      permutation ``rng.permutation(number of bidders)`` of config order, drawn once from the
      generator the run passes the builder, so a seed fixes it).
    - ``tariff_usd``: the connection charge per product ($, 0 to MAX_MONEY).
    """

    order: str = "config"
    tariff_usd: float = 0.0

    @field_validator("order")
    @classmethod
    def _known_order(cls, value: str) -> str:
        if value not in QUEUE_ORDERS:
            raise ValueError(f"unknown order {value!r}; choose one of {', '.join(QUEUE_ORDERS)}")
        return value

    @field_validator("tariff_usd")
    @classmethod
    def _money(cls, value: float) -> float:
        if value < 0:
            raise ValueError(f"the tariff must be >= 0 $, got {value:g}")
        if value > MAX_MONEY:
            raise ValueError(f"the tariff must be <= {MAX_MONEY:g} $, got {value:g}")
        return value


def arrival_order(bidders: Sequence[str], order: str, rng: np.random.Generator | None) -> tuple[str, ...]:
    """The bidders in the order they join the queue (see `QueueRules.order`)."""
    if order == "config":
        return tuple(bidders)
    if order == "reverse":
        return tuple(reversed(bidders))
    if order == "random":
        if rng is None:
            raise MechanismError("queue order 'random' needs a random generator; pass the run's seeded rng")
        return tuple(bidders[int(i)] for i in rng.permutation(len(bidders)))
    raise MechanismError(f"unknown order {order!r}; choose one of {', '.join(QUEUE_ORDERS)}")


@dataclass(frozen=True)
class QueueState:
    """Before an arrival: only the arriving bidder is quoted, the tariff on every free product."""

    round: int
    products: tuple[str, ...]
    current: str | None  # the arriving bidder; None once the queue has served everyone
    tariff: float
    connected: Mapping[str, str]  # product -> the bidder it went to

    def prices_for(self, bidder: str, among: Collection[str] | None = None) -> dict[str, float]:
        # Bidders not at the head of the queue may take nothing now: they are quoted no product.
        if bidder != self.current:
            return {}
        wanted = self.products if among is None else [p for p in among if p in set(self.products)]
        return {p: self.tariff for p in wanted if p not in self.connected}

    def held_by(self, bidder: str) -> frozenset[str]:
        return frozenset(p for p, b in self.connected.items() if b == bidder)

    def messages(self, bidder: str, bundle: frozenset[str]) -> list[Bid]:
        """One request per product of the bundle, at the tariff."""
        return [Bid(bidder, p, self.tariff) for p in self.products if p in bundle]


@dataclass
class InterconnectionQueue(RoundBook):
    """First-come-first-served queue; the rules are in the module docstring."""

    products: Sequence[str]
    bidders: Sequence[str]
    rules: QueueRules
    rng: np.random.Generator | None = None
    kind: ClassVar[str] = "queue"
    called: ClassVar[str] = "the queue"
    closed_reason: ClassVar[str] = "every bidder has arrived"
    arrivals: tuple[str, ...] = field(init=False)
    _connected: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.products, self.bidders = checked_market(self.products, self.bidders)
        self.arrivals = arrival_order(self.bidders, self.rules.order, self.rng)
        self._connected = {}

    @property
    def price_step(self) -> float:
        return 0.0  # the tariff is posted, not discovered

    @property
    def current(self) -> str | None:
        """The bidder at the head of the queue, None once all have arrived."""
        return None if self.closed else self.arrivals[self._rounds_run]

    def state(self) -> QueueState:
        return QueueState(
            round=self._rounds_run + 1,
            products=tuple(self.products),
            current=self.current,
            tariff=self.rules.tariff_usd,
            connected=dict(self._connected),
        )

    def run_round(self, messages: Iterable[Bid]) -> RoundResult:
        round_number = self._open_round()
        requests = self._validated(list(messages), round_number)
        for request in requests:
            self._connected[request.product] = request.bidder
        self._close_round(round_number, had_messages=bool(requests),
                          closed_by="queue_served" if round_number >= len(self.arrivals) else None)
        return RoundResult(
            round=round_number,
            bids=tuple(requests),
            standings=self._standings(),
            closed=self.closed,
        )

    def outcome(self) -> Outcome:
        allocation: dict[str, str | None] = {p: self._connected.get(p) for p in self.products}
        prices = {p: (self.rules.tariff_usd if allocation[p] is not None else 0.0) for p in self.products}
        return self._priced_outcome(allocation, prices)

    # -- internals --------------------------------------------------------------------
    def _standings(self) -> dict[str, Standing | None]:
        tariff = self.rules.tariff_usd
        return {p: (Standing(self._connected[p], tariff) if p in self._connected else None) for p in self.products}

    def _validated(self, requests: list[Bid], round_number: int) -> list[Bid]:
        current = self.current
        product_rank = {p: i for i, p in enumerate(self.products)}
        seen: set[str] = set()
        for request in requests:
            where = f"round {round_number}: request by {request.bidder!r} for {request.product!r}"
            if request.bidder not in self.bidders:
                raise MechanismError(f"{where}: unknown bidder; the bidders are {', '.join(self.bidders)}")
            if request.bidder != current:
                raise MechanismError(f"{where}: only {current!r}, at the head of the queue, may request this round")
            if request.product not in product_rank:
                raise MechanismError(f"{where}: unknown product; the queue connects {', '.join(self.products)}")
            if request.product in self._connected:
                raise MechanismError(f"{where}: already connected to {self._connected[request.product]!r}")
            if request.product in seen:
                raise MechanismError(f"{where}: a product may be requested once")
            seen.add(request.product)
            tariff = self.rules.tariff_usd
            if not math.isfinite(request.amount) or abs(request.amount - tariff) > _MONEY_TOLERANCE:
                raise MechanismError(f"{where}: amount {request.amount:g} $ is not the tariff {tariff:g} $")
        return sorted(requests, key=lambda r: product_rank[r.product])


SPEC = MechanismSpec(
    kind="queue",
    rules=QueueRules,
    build=lambda products, bidders, rules, rng: InterconnectionQueue(products, bidders, rules, rng=rng),
    table="queue",
    summary="first-come-first-served interconnection queue (today's practice): each arrival takes what it "
            "wants of what is left at a flat tariff",
)
