"""What every mechanism is: the small interface the market runs, whatever sells the products.

A mechanism knows products and bidders by name only. Round after round it posts a *state* (what
bidders may see and what it asks of them), takes the bidders' *messages* and resolves the round,
until it closes; then it gives an `Outcome`. Single-shot mechanisms (a sealed-bid VCG auction)
are one round; a queue is one round per arrival. Bidders never touch a mechanism's internals:
their strategies answer its state (agents/strategies.py), and the loop that alternates the two
exists once (mechanisms/loop.py).

Every state answers the question a straightforward bidder asks, "what would each product cost
me?", through `DemandQuery`; a mechanism that asks for a whole valuation instead (VCG) posts a
`ValuationQuery`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    ClassVar,
    Collection,
    Mapping,
    Protocol,
    Sequence,
    runtime_checkable,
)

import numpy as np

from mechanisms.errors import MechanismError
from mechanisms.settings import Settings


@dataclass(frozen=True)
class Bid:
    """A message naming one product and an amount ($): an SAA bid, a clock demand at the posted
    price, a queue request at the tariff. A sealed report of a bundle value uses ``product`` for
    the bundle (ids joined by '+')."""

    bidder: str
    product: str
    amount: float


@dataclass(frozen=True)
class Standing:
    """Who holds a product after a round, and at what price ($)."""

    bidder: str
    price: float


@dataclass(frozen=True)
class WithdrawnBid:
    """A standing bid withdrawn in a round (the SAA's FCC bid withdrawal), as the auction logged it."""

    round: int
    bidder: str
    product: str
    price: float  # the withdrawn standing bid ($)
    reoffered_at: float  # the product's minimum bid from the next round until someone bids ($)


@dataclass(frozen=True)
class RoundResult:
    """Everything a round did: the history of a run is the sequence of these (sim/market/model.py
    records each once, in its DataCollector tables)."""

    round: int
    bids: tuple[Bid, ...]  # every message of the round, in product order then bidder order
    standings: Mapping[str, Standing | None]  # after the round, every product
    closed: bool
    # SAA detail: products whose standing changed this round, and the bidders tied on each.
    new_standings: Mapping[str, Standing] = field(default_factory=dict)
    ties: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    withdrawals: tuple[WithdrawnBid, ...] = ()  # bids withdrawn this round (SAA)


@dataclass(frozen=True)
class Outcome:
    mechanism: str
    allocation: dict[str, str | None]  # product -> winner, None if unsold
    prices: dict[str, float]  # product -> price its winner pays ($); 0 for unsold products
    payments: dict[str, float]  # bidder -> total paid ($), every bidder
    rounds_with_bids: int
    rounds_run: int  # including a closing round without messages
    closed_by: str  # "no_new_bids" | "max_rounds" | "sealed" | "queue_served" | "clock_cleared"

    @classmethod
    def priced(cls, mechanism: str, bidders: Sequence[str], allocation: dict[str, str | None],
               prices: dict[str, float], *, rounds_with_bids: int, rounds_run: int, closed_by: str) -> "Outcome":
        """An outcome where every winner pays the prices of what it won."""
        return cls(mechanism, allocation, prices, payments_of(bidders, allocation, prices),
                   rounds_with_bids, rounds_run, closed_by)

    def bundles(self) -> dict[str, tuple[str, ...]]:
        """Bidder -> products won, in product order."""
        won: dict[str, list[str]] = {bidder: [] for bidder in self.payments}
        for product, winner in self.allocation.items():
            if winner is not None:
                won[winner].append(product)
        return {bidder: tuple(items) for bidder, items in won.items()}


# ------------------------------------------------------------------------------- questions
@runtime_checkable
class DemandQuery(Protocol):
    """A price-based question: at these prices, which bundle do you want?"""

    round: int
    products: tuple[str, ...]

    def prices_for(self, bidder: str, among: Collection[str] | None = None) -> Mapping[str, float]:
        """What each product the bidder may take now would cost it ($); products it may not take
        are left out, and so are those not ``among`` when given."""

    def held_by(self, bidder: str) -> frozenset[str]:
        """Products the bidder already holds (its standing bids, its last demand)."""

    def messages(self, bidder: str, bundle: frozenset[str]) -> list[Bid]:
        """The messages that say "I want ``bundle`` at these prices"."""


@runtime_checkable
class ValuationQuery(Protocol):
    """A sealed question: report your value for every bundle you care about."""

    round: int
    products: tuple[str, ...]

    def report(self, bidder: str, valuation: Any) -> list[Any]:
        """The messages of a truthful report of ``valuation`` (what a straightforward bidder sends)."""


# ------------------------------------------------------------------------------- mechanisms
class Mechanism(Protocol):
    kind: ClassVar[str]
    products: tuple[str, ...]
    bidders: tuple[str, ...]

    @property
    def closed(self) -> bool: ...

    @property
    def price_step(self) -> float:
        """The price granularity its outcome can be judged to: the increment in (8), 0 for
        mechanisms that set exact prices."""

    def state(self) -> Any: ...

    def run_round(self, messages: Sequence[Any]) -> RoundResult: ...

    def outcome(self) -> Outcome: ...


Builder = Callable[[Sequence[str], Sequence[str], Any, "np.random.Generator | None"], Mechanism]


@dataclass(frozen=True)
class MechanismSpec:
    """A mechanism by name: its rule table (config ``[table]``) and how to build it."""

    kind: str
    rules: type[Settings]
    build: Builder
    table: str  # the config table of its rules ("auction" for the SAA, for the earlier configs)
    summary: str
    # False when the outcome's per-product prices only label per-bidder payments (VCG): the
    # price conditions (7a)/(7b) do not apply to them.
    item_prices: bool = True


def checked_market(products: Sequence[str], bidders: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Products and bidders as every mechanism takes them: at least one of each, names unique."""
    products, bidders = tuple(products), tuple(bidders)
    for kind, names in (("product", products), ("bidder", bidders)):
        if not names:
            raise MechanismError(f"a mechanism needs at least one {kind}")
        if len(set(names)) != len(names):
            duplicate = next(n for n in names if names.count(n) > 1)
            raise MechanismError(f"{kind} {duplicate!r} appears twice; {kind} names must be unique")
    return products, bidders


def standings_of(allocation: Mapping[str, str | None], prices: Mapping[str, float]) -> dict[str, Standing | None]:
    """Standings for a round log from an allocation and its prices."""
    return {p: (Standing(b, float(prices.get(p, 0.0))) if b is not None else None) for p, b in allocation.items()}


def payments_of(bidders: Sequence[str], allocation: Mapping[str, str | None], prices: Mapping[str, float]) -> dict[str, float]:
    """Every bidder's total payment: the prices of what it won (0 for a bidder that won nothing)."""
    payments = {bidder: 0.0 for bidder in bidders}
    for product, winner in allocation.items():
        if winner is not None:
            payments[winner] += prices[product]
    return payments
