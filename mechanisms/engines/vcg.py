"""A sealed-bid Vickrey-Clarke-Groves (VCG) auction over the same products as the SAA.

Rules (config ``[vcg]``):

- One sealed round. Each bidder reports its value of every bundle, in the XOR language of
  mechanisms/judge/winner_determination.py (a list of (bundle, value) pairs with free disposal); a
  straightforward bidder reports its true valuation exactly (`VCGState.report`), which enumerates
  all 2^m bundles, so at most ``max_products`` products are allowed. A bidder without a report
  bids nothing.
- The allocation maximises the reported welfare W (solve_winner_determination).
- Winner i pays its Clarke pivot payment p_i = W(-i) - (W - v_i(S_i)): the welfare the others
  lose because i takes part, with W(-i) the optimum without i. Losers pay 0. Truthful reporting
  is a dominant strategy, and 0 <= p_i <= v_i(S_i).
- Reserve (``reserve_usd`` r > 0): the auctioneer counts as one more bidder (a phantom seller)
  with the additive valuation r per product. It enters W and every W(-i), so a product goes
  unsold when no bidder adds more than r for it, and a winner of S_i pays at least r |S_i|.
  Its products are unsold (price 0) and it pays nothing. With r = 0 this is plain VCG.

Per-product prices are a reporting convention: VCG payments are per bidder, and the outcome's
``payments`` are those exact amounts. To fill ``Outcome.prices`` each winner's payment is split
over its products in proportion to the bidder's reported standalone values v_i({j}) of them
when these sum to a positive amount, else equally; the prices of a bundle sum to its payment.
They only label the payment: they are not item prices anyone faced (not a Walrasian
equilibrium in general), and ``price_step`` is 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
from pydantic import Field

from mechanisms.errors import MechanismError, SizeLimitError
from mechanisms.judge.winner_determination import (
    solve_winner_determination,
    xor_bids_from_value,
)
from mechanisms.mechanism import (
    Bid,
    MechanismSpec,
    Outcome,
    RoundResult,
    Standing,
    checked_market,
    standings_of,
)
from mechanisms.settings import MAX_MONEY, Settings

XorReport = tuple[tuple[frozenset[str], float], ...]


class VCGRules(Settings):
    """The VCG auction's rule table (config ``[vcg]``)."""

    # The exact report enumerates 2^m bundles per bidder.
    # 2^m XOR bids per bidder go into one MILP: 12 products take about 10 s with three bidders
    # (16 did not finish in 5 minutes), so the default stops at 12 and the cap at 14.
    max_products: int = Field(default=12, ge=1, le=14, description="the most products it sells: every bidder "
                              "reports its value of all 2^m bundles")
    reserve_usd: float = Field(default=0.0, ge=0, le=MAX_MONEY, description="a reserve price that every product must "
                               "reach, enforced by a phantom seller bid (see the module); 0: none")


@dataclass(frozen=True)
class Report:
    """A bidder's sealed XOR report: (bundle, value $) pairs, v(S) = max value of a listed T ⊆ S."""

    bidder: str
    bids: XorReport


@dataclass(frozen=True)
class VCGState:
    """The sealed question (a `ValuationQuery`): report your value of every bundle."""

    round: int
    products: tuple[str, ...]
    bidders: tuple[str, ...]
    max_products: int

    def report(self, bidder: str, valuation: Callable[[frozenset[str]], float]) -> list[Report]:
        """The truthful report of ``valuation``: its exact XOR representation."""
        m = len(self.products)
        if m > self.max_products:
            raise SizeLimitError(
                f"VCG needs each bidder's exact report over all 2^{m} bundles: {m} products exceed "
                f"[vcg] max_products = {self.max_products}; raise it (at most 14) or sell fewer products"
            )
        bids = xor_bids_from_value(valuation, self.products, max_products=self.max_products)
        return [Report(bidder, tuple(bids))]


@dataclass(frozen=True)
class Settlement:
    """What the sealed round decided, per bidder (every bidder present)."""

    bundles: dict[str, frozenset[str]]  # frozenset() for a loser
    values: dict[str, float]  # reported v_i(S_i)
    payments: dict[str, float]  # Clarke pivot payments, exact per bidder
    welfare: float  # reported welfare of the bidders (the reserve phantom's value left out)


@dataclass
class VCGAuction:
    """Sealed-bid VCG auction with Clarke pivot payments and an optional reserve (module doc)."""

    products: Sequence[str]
    bidders: Sequence[str]
    rules: VCGRules = field(default_factory=VCGRules)
    kind: ClassVar[str] = "vcg"
    _settlement: Settlement | None = field(init=False, default=None, repr=False)
    _prices: dict[str, float] = field(init=False, default_factory=dict, repr=False)
    _rounds_with_bids: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.products, self.bidders = checked_market(self.products, self.bidders)
        m = len(self.products)
        if m > self.rules.max_products:
            # Refused before any round: the reports would be 2^m bundles per bidder.
            raise SizeLimitError(
                f"max_products: VCG needs each bidder's exact report over all 2^{m} bundles, and {m} products "
                f"exceed max_products = {self.rules.max_products}; raise it (at most 14) or sell fewer products"
            )

    # -- what bidders see -------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._settlement is not None

    @property
    def rounds_run(self) -> int:
        return int(self.closed)

    @property
    def price_step(self) -> float:
        return 0.0  # exact payments, no increment

    @property
    def settlement(self) -> Settlement | None:
        """None until the round has run."""
        return self._settlement

    def state(self) -> VCGState:
        return VCGState(
            round=self.rounds_run + 1,
            products=tuple(self.products),
            bidders=tuple(self.bidders),
            max_products=self.rules.max_products,
        )

    # -- the sealed round -------------------------------------------------------------
    def run_round(self, messages: Sequence[Any]) -> RoundResult:
        if self.closed:
            raise MechanismError("the VCG auction is sealed and has run its one round; no more rounds can run")
        reports = self._validated(list(messages))
        # Bidder order, not arrival order, so that the solver (and its ties) sees the same input.
        xor = {b: reports.get(b, ()) for b in self.bidders}
        bids = dict(xor)
        bids.update(self._phantom_bids())

        best = solve_winner_determination(self.products, bids)
        total = best.welfare
        bundles = {b: best.allocation[b] for b in self.bidders}
        values = {b: _xor_value(xor[b], bundles[b]) for b in self.bidders}
        payments = {b: 0.0 for b in self.bidders}
        for bidder in self.bidders:
            if not bundles[bidder]:
                continue  # the optimum stays optimal without a loser: W(-i) = W, p_i = 0
            without = solve_winner_determination(self.products, {k: v for k, v in bids.items() if k != bidder})
            pivot = without.welfare - (total - values[bidder])
            # 0 <= p_i <= v_i(S_i) holds exactly; clamping only removes solver round-off.
            payments[bidder] = min(max(pivot, 0.0), values[bidder])

        self._prices = {p: 0.0 for p in self.products}
        for bidder in self.bidders:
            if bundles[bidder]:
                self._prices.update(self._split(xor[bidder], bundles[bidder], payments[bidder]))
        self._settlement = Settlement(
            bundles=bundles,
            values=values,
            payments=payments,
            welfare=math.fsum(values.values()),
        )
        self._rounds_with_bids = int(any(v > 0 for r in reports.values() for _, v in r))
        return RoundResult(
            round=1,
            bids=tuple(
                Bid(b, "+".join(sorted(bundle)), float(value)) for b in self.bidders for bundle, value in xor[b]
            ),
            standings=self._standings(),
            closed=True,
        )

    def outcome(self) -> Outcome:
        if self._settlement is None:
            allocation: dict[str, str | None] = {p: None for p in self.products}
            return Outcome(
                mechanism=self.kind,
                allocation=allocation,
                prices={p: 0.0 for p in self.products},
                payments={b: 0.0 for b in self.bidders},
                rounds_with_bids=0,
                rounds_run=0,
                closed_by="open",
            )
        return Outcome(
            mechanism=self.kind,
            allocation=self._allocation(),
            prices=dict(self._prices),
            payments=dict(self._settlement.payments),
            rounds_with_bids=self._rounds_with_bids,
            rounds_run=1,
            closed_by="sealed",
        )

    # -- internals --------------------------------------------------------------------
    def _allocation(self) -> dict[str, str | None]:
        assert self._settlement is not None
        owner: dict[str, str | None] = {p: None for p in self.products}
        for bidder, bundle in self._settlement.bundles.items():
            for product in bundle:
                owner[product] = bidder
        return owner

    def _standings(self) -> dict[str, Standing | None]:
        return standings_of(self._allocation(), self._prices)

    def _phantom_bids(self) -> dict[str, XorReport]:
        """The reserve as a phantom seller: one single-product bid per product, which is the same
        as one additive bidder (nothing links the products) without its 2^m XOR bundles."""
        reserve = self.rules.reserve_usd
        if reserve <= 0:
            return {}
        prefix = "reserve"
        while any(b.startswith(prefix) for b in self.bidders):
            prefix = "_" + prefix  # no name clash with a real bidder
        return {f"{prefix}:{p}": ((frozenset({p}), reserve),) for p in self.products}

    def _split(self, report: XorReport, bundle: frozenset[str], payment: float) -> dict[str, float]:
        """The reporting convention of the module doc: shares by standalone value, else equal."""
        ordered = [p for p in self.products if p in bundle]
        standalone = [_xor_value(report, frozenset({p})) for p in ordered]
        weight_sum = math.fsum(standalone)
        weights = standalone if weight_sum > 0 else [1.0] * len(ordered)
        weight_sum = math.fsum(weights)
        shares = [payment * w / weight_sum for w in weights]
        # The largest share absorbs the round-off, so the bundle's prices sum to its payment.
        biggest = max(range(len(ordered)), key=lambda k: (weights[k], -k))
        rest = math.fsum(s for k, s in enumerate(shares) if k != biggest)
        shares[biggest] = max(payment - rest, 0.0)
        return dict(zip(ordered, shares))

    def _validated(self, messages: list[Any]) -> dict[str, XorReport]:
        known = set(self.products)
        reports: dict[str, XorReport] = {}
        for message in messages:
            if not isinstance(message, Report):
                raise MechanismError(
                    f"VCG round: got a {type(message).__name__} message; the sealed round takes one Report per bidder"
                )
            where = f"VCG report by {message.bidder!r}"
            if message.bidder not in self.bidders:
                raise MechanismError(f"{where}: unknown bidder; the bidders are {', '.join(self.bidders)}")
            if message.bidder in reports:
                raise MechanismError(f"{where}: a second report; each bidder reports once")
            try:
                pairs = tuple(message.bids)
            except TypeError:
                raise MechanismError(f"{where}: bids must be a sequence of (bundle, value) pairs") from None
            checked: list[tuple[frozenset[str], float]] = []
            for pair in pairs:
                try:
                    raw_bundle, raw_value = pair
                    bundle, value = frozenset(raw_bundle), float(raw_value)
                except (TypeError, ValueError):
                    raise MechanismError(f"{where}: {pair!r} is not a (bundle, value) pair") from None
                unknown = sorted(bundle - known)
                if unknown:
                    raise MechanismError(
                        f"{where}: unknown product(s) {', '.join(unknown)}; the auction sells {', '.join(self.products)}"
                    )
                if not bundle:
                    raise MechanismError(f"{where}: an empty bundle; every reported bundle names a product")
                if not math.isfinite(value) or value < 0:
                    raise MechanismError(f"{where}: value {raw_value!r} must be a finite amount >= 0 $")
                checked.append((bundle, value))
            reports[message.bidder] = tuple(checked)
        return reports


def _xor_value(report: XorReport, bundle: frozenset[str]) -> float:
    """v(S) = max value of a reported T ⊆ S (free disposal), 0 if none."""
    return max((v for t, v in report if t <= bundle), default=0.0)


def _build(products: Sequence[str], bidders: Sequence[str], rules: VCGRules,
           rng: np.random.Generator | None) -> VCGAuction:
    return VCGAuction(products, bidders, rules)  # deterministic: no randomness to draw


SPEC = MechanismSpec(
    kind="vcg",
    rules=VCGRules,
    build=_build,
    table="vcg",
    summary="sealed-bid VCG: exact XOR reports, welfare-maximising allocation, Clarke pivot payments",
    item_prices=False,
)
