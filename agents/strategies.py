"""Bidding strategies, chosen by name; each declares its own config fields and the mechanisms it
can play. A strategy answers a mechanism's posted state with messages.

Every mechanism asks one of two questions (mechanisms/mechanism.py): a `DemandQuery` ("at these
prices, which bundle?") or a `ValuationQuery` ("report your values"). In a config a bidder names
its strategy as a string (`strategy = "jump"`) or as a table with the strategy's fields
(`strategy = { name = "budget_limited", budget_usd = 400 }`).

- `straightforward` (default): a surplus-maximising bundle at the posted prices, every round
  (Definition 2, docs/models/auction.md#ca-4-2); the true valuation where a mechanism asks for one. Under an
  eligibility limit (FCC activity rule) it drops, one at a time, the new product whose loss
  costs the least surplus until the bundle fits.
- `jump` (SAA): straightforward, but each new bid jumps ``increments`` increments above the
  minimum while its bundle still has non-negative surplus at the jumped prices, to signal
  strength and shorten the auction.
- `demand_reduction` (SAA, clock): straightforward until it holds ``keep`` products; from then
  on it bids only to keep what it holds, leaving other products to rivals so that prices stop
  rising (the multi-unit demand reduction of Ausubel and Cramton).
- `budget_limited` (any price mechanism): straightforward within a budget: what it holds at
  its standing prices plus its new bids never exceed ``budget_usd``; new products are added by
  surplus until the budget is spent.
- `withdraw_exposed` (SAA with `withdrawals_allowed`): straightforward, and it withdraws a
  standing bid that is no longer worth its price to it (see `WithdrawExposed`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Protocol, Sequence

from pydantic import Field, ValidationError

from agents.bundle_ties import BundleTiePolicy
from agents.errors import AgentConfigError
from agents.valuations import ValuationProfile
from mechanisms.engines.saa import Withdrawal
from mechanisms.mechanism import Bid, DemandQuery, ValuationQuery
from mechanisms.settings import MAX_COUNT, MAX_MONEY, Settings, first_error


class BiddingStrategy(Protocol):
    name: ClassVar[str]

    def bids(self, bidder: str, valuation: ValuationProfile, state: Any, ties: BundleTiePolicy) -> list[Any]: ...


def demanded_bundle(bidder: str, valuation: ValuationProfile, state: DemandQuery, ties: BundleTiePolicy) -> frozenset[str]:
    """A surplus-maximising bundle at the prices the state quotes this bidder (docs/models/auction.md#eq-c-6), the
    best one under its tie policy. Only the products the valuation cares about are priced."""
    interest = valuation.interest()
    among = None if interest is None else interest | state.held_by(bidder)
    prices = state.prices_for(bidder, among)
    held = state.held_by(bidder) & frozenset(prices)
    rank = {p: i for i, p in enumerate(prices)}
    rule = ties.rule(state.round)
    bundle = valuation.choose_bundle(prices, held, rule, rank)
    if rule.size_sign == 0:
        # "Fewest new products" is indifferent to held products that cost no surplus; keep them
        # (as the additive oracle does), since in a clock auction a product every demander drops
        # unasked would go to whoever asked first at the last price, not to who values it most.
        best = _surplus(valuation, bundle, prices)
        for product in sorted(held - bundle, key=rank.__getitem__):
            kept = bundle | {product}
            if _surplus(valuation, kept, prices) >= best - 1e-9 * max(1.0, abs(best)):
                bundle = kept
    return bundle


def _surplus(valuation: ValuationProfile, bundle: frozenset[str], prices: Mapping[str, float]) -> float:
    return valuation(bundle) - math.fsum(prices[p] for p in bundle)


def _trim(bundle: frozenset[str], keep: frozenset[str], fits: Callable[[frozenset[str]], bool],
          valuation: ValuationProfile, prices: Mapping[str, float]) -> frozenset[str]:
    """Drop new products (not in ``keep``), the cheapest loss of surplus first, until it fits."""
    while not fits(bundle):
        new = sorted(bundle - keep)
        if not new:
            return bundle
        bundle = max((bundle - {p} for p in new), key=lambda b: (_surplus(valuation, b, prices), sorted(b)))
    return bundle


def _eligible(bidder: str, state: Any) -> Callable[[frozenset[str]], bool]:
    feasible = getattr(state, "feasible", None)
    return (lambda bundle: True) if feasible is None else (lambda bundle: feasible(bidder, bundle))


class Straightforward:
    name: ClassVar[str] = "straightforward"

    def bids(self, bidder: str, valuation: ValuationProfile, state: Any, ties: BundleTiePolicy) -> list[Any]:
        if isinstance(state, ValuationQuery):
            return state.report(bidder, valuation)
        if isinstance(state, DemandQuery):
            bundle = self.bundle(bidder, valuation, state, ties)
            return state.messages(bidder, bundle)
        raise AgentConfigError(f"strategy {self.name!r} cannot answer {type(state).__name__}")

    def bundle(self, bidder: str, valuation: ValuationProfile, state: DemandQuery, ties: BundleTiePolicy) -> frozenset[str]:
        bundle = demanded_bundle(bidder, valuation, state, ties)
        prices = state.prices_for(bidder, bundle)
        return _trim(bundle, state.held_by(bidder), _eligible(bidder, state), valuation, prices)



class JumpFields(Settings):
    increments: int = Field(default=3, ge=1, le=1000, description="the most increments a new bid jumps")


@dataclass(frozen=True)
class Jump(Straightforward):
    increments: int = 3
    name: ClassVar[str] = "jump"

    def bids(self, bidder, valuation, state, ties):
        bundle = self.bundle(bidder, valuation, state, ties)
        held = state.held_by(bidder)
        new = [p for p in state.products if p in bundle and p not in held]
        if not new:
            return []
        prices = state.prices_for(bidder, bundle)
        # The largest jump (up to ``increments``) that leaves the bundle worth its price.
        for k in range(self.increments, 0, -1):
            jumped = {**prices, **{p: state.jump_bid(p, k) for p in new}}
            if _surplus(valuation, bundle, jumped) >= 0:
                return [Bid(bidder, p, jumped[p]) for p in new]
        return state.messages(bidder, bundle)


class DemandReductionFields(Settings):
    keep: int = Field(default=1, ge=1, le=MAX_COUNT,
                      description="once it holds this many products, it bids only to keep them")


@dataclass(frozen=True)
class DemandReduction(Straightforward):
    keep: int = 1
    name: ClassVar[str] = "demand_reduction"

    def bundle(self, bidder, valuation, state, ties):
        bundle = super().bundle(bidder, valuation, state, ties)
        held = state.held_by(bidder)
        if len(held) < self.keep:
            return bundle
        # Hold on to what it has (while still worth its price), ask for nothing new.
        return bundle & held


class BudgetFields(Settings):
    budget_usd: float = Field(gt=0, le=MAX_MONEY, description="the most it commits: held products at their prices plus new bids")


@dataclass(frozen=True)
class BudgetLimited(Straightforward):
    budget_usd: float = math.inf
    name: ClassVar[str] = "budget_limited"

    def bundle(self, bidder, valuation, state, ties):
        bundle = super().bundle(bidder, valuation, state, ties)
        prices = state.prices_for(bidder, bundle)

        def fits(candidate: frozenset[str]) -> bool:
            return math.fsum(prices[p] for p in candidate) <= self.budget_usd + 1e-9

        return _trim(bundle, frozenset(), fits, valuation, prices)


class _NoFields(Settings):
    pass


@dataclass(frozen=True)
class WithdrawExposed(Straightforward):
    """Straightforward, and when the rules allow bid withdrawals, it withdraws a standing bid
    whose product is no longer worth its price to it (its marginal value in what it holds is
    below the price): the exposure a complements bidder is left with when it loses the rest of
    its package. It owes the FCC withdrawal payment if the product then sells for less."""

    name: ClassVar[str] = "withdraw_exposed"

    def bids(self, bidder, valuation, state, ties):
        messages = super().bids(bidder, valuation, state, ties)
        if state.withdrawals_left.get(bidder, 0) <= 0:
            return messages
        held = state.held_by(bidder)
        wanted = self.bundle(bidder, valuation, state, ties)
        for product in sorted(held - wanted):
            marginal = valuation(held) - valuation(held - {product})
            if marginal < state.standings[product].price:
                messages.append(Withdrawal(bidder, product))
        return messages


@dataclass(frozen=True)
class StrategySpec:
    name: str
    fields: type[Settings]
    build: Callable[[Any], BiddingStrategy]
    mechanisms: frozenset[str] | None  # the mechanism kinds it can play; None: every one
    summary: str


STRATEGIES: dict[str, StrategySpec] = {
    spec.name: spec
    for spec in (
        StrategySpec("straightforward", _NoFields, lambda f: Straightforward(), None,
                     "a surplus-maximising bundle at the posted prices; the true values when asked"),
        StrategySpec("jump", JumpFields, lambda f: Jump(increments=f.increments), frozenset({"saa"}),
                     "straightforward, with new bids jumping up to `increments` increments"),
        StrategySpec("demand_reduction", DemandReductionFields, lambda f: DemandReduction(keep=f.keep),
                     frozenset({"saa", "clock"}), "stops asking for more once it holds `keep` products"),
        StrategySpec("budget_limited", BudgetFields, lambda f: BudgetLimited(budget_usd=f.budget_usd),
                     frozenset({"saa", "clock", "queue"}), "straightforward within `budget_usd` of commitments"),
        StrategySpec("withdraw_exposed", _NoFields, lambda f: WithdrawExposed(), frozenset({"saa"}),
                     "straightforward, withdrawing standing bids no longer worth their price (FCC withdrawals)"),
    )
}


@dataclass(frozen=True)
class ChosenStrategy:
    """A config's ``strategy`` once validated: its spec, its fields, and what the config wrote
    (kept for the effective config). The schema makes it; everything after reads it."""

    spec: StrategySpec
    fields: Settings
    written: str | Mapping[str, Any]

    def build(self) -> BiddingStrategy:
        return self.spec.build(self.fields)


def choose_strategy(value: "str | Mapping[str, Any] | ChosenStrategy") -> ChosenStrategy:
    """The strategy a config names, validated (a ChosenStrategy passes through)."""
    if isinstance(value, ChosenStrategy):
        return value
    spec, fields = strategy_parts(value)
    return ChosenStrategy(spec, fields, value)


def strategy_parts(value: str | Mapping[str, Any]) -> tuple[StrategySpec, Settings]:
    """A config's ``strategy`` (a name, or a table with ``name`` and the strategy's fields),
    validated: the spec and its fields. Errors are one line naming the field."""
    if isinstance(value, str):
        name, given = value, {}
    elif isinstance(value, Mapping):
        given = {k: v for k, v in value.items() if k != "name"}
        name = value.get("name")
        if not isinstance(name, str):
            raise AgentConfigError("strategy.name: a strategy table needs name = one of " + ", ".join(STRATEGIES))
    else:
        raise AgentConfigError(f"strategy: expected a name or a table, got {value!r}")
    if name not in STRATEGIES:
        raise AgentConfigError(f"strategy: unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    spec = STRATEGIES[name]
    try:
        return spec, spec.fields.model_validate(given)
    except ValidationError as error:
        raise AgentConfigError(f"strategy.{first_error(error)}") from None


def make_strategy(value: "str | Mapping[str, Any] | ChosenStrategy") -> BiddingStrategy:
    return choose_strategy(value).build()


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
