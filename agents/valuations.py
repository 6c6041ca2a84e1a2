"""Valuation profiles of data-center bidders, each with its own demand oracle.

A profile gives v(S) in $ for a bundle S of product ids (v(empty) = 0) and answers the demand
question of spec (6) at posted prices: which bundle maximises v(S) - price(S), with ties settled
by a `BundleRule` (agents/bundle_ties.py). Oracles exploit the profile's structure so that they
do not enumerate 2^m bundles:

- `additive` (Condition 1): per product, keep it when its value covers its price.
- `symmetric_concave` (Condition 2): the best bundle of each size k is the k cheapest products
  (proof of Proposition 2, condition (18)); only the sizes and the price ties need a choice.
- `bundles`: an XOR table of bundle values with free disposal (complements allowed). At positive
  prices only the empty bundle and the table's bundles can maximise surplus.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from itertools import combinations
from typing import Callable, ClassVar, Iterable, Mapping, Sequence

from agents.bundle_ties import SMALLEST, BundleRule
from agents.errors import AgentConfigError

# Bundles whose surpluses differ by less than this (relative to the money involved) are tied.
_RELATIVE_TOLERANCE = 1e-9
# Brute-force enumeration covers 2^m bundles; beyond this it is refused.
MAX_ENUMERATED_PRODUCTS = 20


def _cost(bundle: Iterable[str], prices: Mapping[str, float]) -> float:
    """Price of a bundle; fsum is exactly rounded, so set iteration order cannot change it."""
    return math.fsum(prices[p] for p in bundle)


def money_tolerance(*amounts: float) -> float:
    return _RELATIVE_TOLERANCE * max(1.0, *(abs(a) for a in amounts))


class ValuationProfile(ABC):
    kind: ClassVar[str]

    @abstractmethod
    def value(self, bundle: frozenset[str]) -> float:
        """v(S) in $."""

    def __call__(self, bundle: Iterable[str]) -> float:
        return self.value(frozenset(bundle))

    @abstractmethod
    def choose_bundle(
        self,
        prices: Mapping[str, float],
        held: frozenset[str],
        rule: BundleRule,
        rank: Mapping[str, int],
    ) -> frozenset[str]:
        """A surplus-maximising bundle over the products in `prices`, the best one under `rule`."""

    @abstractmethod
    def describe(self) -> str:
        """A short human-readable summary for tables."""

    def demand(self, prices: Mapping[str, float]) -> frozenset[str]:
        """A surplus-maximising bundle over the products in ``prices`` (any one: the certificates
        only read its surplus)."""
        rank = {p: i for i, p in enumerate(prices)}
        return self.choose_bundle(prices, frozenset(), SMALLEST, rank)

    def atoms(self, products: Sequence[str]) -> list[list[tuple[frozenset[str], float]]] | None:
        """XOR bid lists whose OR is this valuation on ``products`` (winner determination runs on
        them, mechanisms/certify.py); None when there is no compact form."""
        return None


def enumerate_maximisers(
    valuation: Callable[[frozenset[str]], float],
    products: Sequence[str],
    prices: Mapping[str, float],
) -> list[frozenset[str]]:
    """All surplus-maximising bundles by brute force over the 2^m subsets (spec (6))."""
    if len(products) > MAX_ENUMERATED_PRODUCTS:
        raise AgentConfigError(
            f"demand by enumeration covers 2^m bundles: {len(products)} products exceeds the limit of "
            f"{MAX_ENUMERATED_PRODUCTS}"
        )
    surpluses: list[tuple[frozenset[str], float]] = []
    for size in range(len(products) + 1):
        for combo in combinations(products, size):
            bundle = frozenset(combo)
            surpluses.append((bundle, valuation(bundle) - _cost(bundle, prices)))
    best = max(s for _, s in surpluses)
    tol = money_tolerance(best, *prices.values())
    return [bundle for bundle, s in surpluses if s >= best - tol]


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AdditiveValuation(ValuationProfile):
    """v(S) = sum of per-product values (Condition 1); products not listed are worth 0."""

    values: Mapping[str, float]
    kind: ClassVar[str] = "additive"

    def value(self, bundle: frozenset[str]) -> float:
        # fsum is exactly rounded, so the value does not depend on the set's hash order.
        return math.fsum(self.values.get(p, 0.0) for p in bundle)

    def choose_bundle(self, prices, held, rule, rank):
        # Maximisers are exactly P plus any subset of Z (P: positive surplus, Z: zero surplus).
        positive, zero = set(), set()
        for product, price in prices.items():
            surplus = self.values.get(product, 0.0) - price
            if abs(surplus) <= money_tolerance(price, self.values.get(product, 0.0)):
                zero.add(product)
            elif surplus > 0:
                positive.add(product)
        if rule.size_sign < 0:
            extra = zero
        elif rule.size_sign > 0:
            extra = set()
        else:  # held zero-surplus products add nothing new; any other would
            extra = zero & held
        return frozenset(positive | extra)

    def describe(self) -> str:
        return "additive: " + ", ".join(f"{p} {v:g}" for p, v in self.values.items())

    def atoms(self, products):
        # Products do not interact: each is a bidder of its own.
        return [[(frozenset({p}), float(self.values[p]))] for p in products if self.values.get(p, 0.0) > 0]


@dataclass(frozen=True)
class SymmetricConcaveValuation(ValuationProfile):
    """v(S) = f(|S|) for a non-decreasing concave f with f(0) = 0 (Condition 2).

    `by_size[k-1]` is f(k); beyond the list, f stays flat at its last value.
    """

    by_size: tuple[float, ...]
    kind: ClassVar[str] = "symmetric_concave"

    def f(self, size: int) -> float:
        if size == 0 or not self.by_size:
            return 0.0
        return float(self.by_size[min(size, len(self.by_size)) - 1])

    def value(self, bundle: frozenset[str]) -> float:
        return self.f(len(bundle))

    def choose_bundle(self, prices, held, rule, rank):
        # Cheapest first; among equal prices, held products first (they add nothing new), then
        # product order, so each prefix is the best k-set under every rule's later keys.
        ordered = sorted(prices, key=lambda p: (prices[p], p not in held, rank[p]))
        cost = [0.0]
        for product in ordered:
            cost.append(cost[-1] + prices[product])
        surplus = [self.f(k) - cost[k] for k in range(len(ordered) + 1)]
        best = max(surplus)
        tol = money_tolerance(best, *prices.values())
        candidates = []
        for k, s in enumerate(surplus):
            if s >= best - tol:
                candidates.append(self._best_k_set(ordered, prices, held, rank, k))
        return rule.best(candidates, held, rank)

    @staticmethod
    def _best_k_set(ordered, prices, held, rank, k) -> frozenset[str]:
        """The k-set of minimum cost with the fewest new products, then the lowest new indices."""
        if k == 0:
            return frozenset()
        threshold = prices[ordered[k - 1]]
        tol = money_tolerance(threshold)
        forced = [p for p in ordered if prices[p] < threshold - tol]
        group = [p for p in ordered if abs(prices[p] - threshold) <= tol]
        group.sort(key=lambda p: (p not in held, rank[p]))
        return frozenset(forced + group[: k - len(forced)])

    def describe(self) -> str:
        return "symmetric concave: f(1..) = " + ", ".join(f"{v:g}" for v in self.by_size)

    def atoms(self, products):
        # A unit-demand slot per marginal value f(k) - f(k-1): the slots fill in decreasing order,
        # so any k products assigned to the first k slots are worth f(k).
        marginals = [self.f(k) - self.f(k - 1) for k in range(1, min(len(self.by_size), len(products)) + 1)]
        return [[(frozenset({p}), m) for p in products] for m in marginals if m > 0]


@dataclass(frozen=True)
class BundleTableValuation(ValuationProfile):
    """XOR bundle table with free disposal: v(S) = max value of a listed bundle contained in S."""

    bundles: tuple[tuple[frozenset[str], float], ...]
    kind: ClassVar[str] = "bundles"

    def value(self, bundle: frozenset[str]) -> float:
        return max((v for b, v in self.bundles if b <= bundle), default=0.0)

    def choose_bundle(self, prices, held, rule, rank):
        offered = frozenset(prices)
        if any(price <= 0 for price in prices.values()):
            # Free items make supersets tie with table bundles; enumerate to stay exact.
            maximisers = enumerate_maximisers(self.value, sorted(offered, key=rank.__getitem__), prices)
            return rule.best(maximisers, held, rank)
        # At positive prices, adding a product that raises no table value only costs money,
        # so the empty bundle and the table's own bundles are the only candidates.
        candidates = [frozenset()] + [b for b, _ in self.bundles if b <= offered]
        surplus = {b: self.value(b) - _cost(b, prices) for b in candidates}
        best = max(surplus.values())
        tol = money_tolerance(best, *prices.values())
        return rule.best([b for b, s in surplus.items() if s >= best - tol], held, rank)

    def atoms(self, products):
        offered = frozenset(products)
        return [[(b, v) for b, v in self.bundles if b <= offered and v > 0]]

    def demand(self, prices: Mapping[str, float]) -> frozenset[str]:
        # Free disposal and prices >= 0: every bundle's surplus is at most that of the table
        # bundle that gives its value, so the table (and the empty bundle) is all to compare.
        offered = frozenset(prices)
        best, best_surplus = frozenset(), 0.0
        for bundle, value in self.bundles:
            if bundle <= offered and value - _cost(bundle, prices) > best_surplus:
                best, best_surplus = bundle, value - _cost(bundle, prices)
        return best

    def describe(self) -> str:
        parts = ["{" + ", ".join(sorted(b)) + f"}} {v:g}" for b, v in self.bundles]
        return "bundles: " + "; ".join(parts)
