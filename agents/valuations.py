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
from typing import Any, Callable, ClassVar, Iterable, Mapping, Sequence

from agents.bundle_ties import BundleRule
from agents.errors import AgentConfigError
from mechanisms.products import Product, ProductCatalog

# Bundles whose surpluses differ by less than this (relative to the money involved) are tied.
_RELATIVE_TOLERANCE = 1e-9
# Brute-force enumeration covers 2^m bundles; beyond this it is refused.
MAX_ENUMERATED_PRODUCTS = 20


def _cost(bundle: Iterable[str], prices: Mapping[str, float]) -> float:
    """Price of a bundle; fsum is exactly rounded, so set iteration order cannot change it."""
    return math.fsum(prices[p] for p in bundle)


def _tolerance(*amounts: float) -> float:
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
    tol = _tolerance(best, *prices.values())
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
            if abs(surplus) <= _tolerance(price, self.values.get(product, 0.0)):
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
        tol = _tolerance(best, *prices.values())
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
        tol = _tolerance(threshold)
        forced = [p for p in ordered if prices[p] < threshold - tol]
        group = [p for p in ordered if abs(prices[p] - threshold) <= tol]
        group.sort(key=lambda p: (p not in held, rank[p]))
        return frozenset(forced + group[: k - len(forced)])

    def describe(self) -> str:
        return "symmetric concave: f(1..) = " + ", ".join(f"{v:g}" for v in self.by_size)


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
        tol = _tolerance(best, *prices.values())
        return rule.best([b for b, s in surplus.items() if s >= best - tol], held, rank)

    def describe(self) -> str:
        parts = ["{" + ", ".join(sorted(b)) + f"}} {v:g}" for b, v in self.bundles]
        return "bundles: " + "; ".join(parts)


# --------------------------------------------------------------------------------------------
def _money(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AgentConfigError(f"{where}: expected a finite number of $, got {value!r}")
    if value < 0:
        raise AgentConfigError(f"{where}: value {value:g} $ is negative; valuations must be >= 0")
    return float(value)


def _one_product(key: str, where: str, catalog: ProductCatalog) -> str | None:
    """The product a key names (None if it exists but is withheld); error if unknown or if it
    names a family split into several blocks (a per-product value must name one product)."""
    products = catalog.resolve(key)
    if products is None:
        raise AgentConfigError(f"{where}: unknown product {key!r}; the products are {catalog.describe()}")
    if len(products) > 1:
        raise AgentConfigError(
            f"{where}: {key!r} is split into {len(products)} blocks ({products[0].id}, ...); name one block, "
            "or give value_per_mw for the whole product"
        )
    return products[0].id if products else None


def build_additive(params: Mapping[str, Any], catalog: ProductCatalog) -> AdditiveValuation:
    """Values in $ per product (``values``), or in $/MW (``value_per_mw``) times each product's MW.

    ``value_per_mw`` keys may be a product id or a product without its block number (its bus and
    risk tier), which prices every block of it, so that changes in capacity change the auction.
    """
    values, per_mw = params.get("values"), params.get("value_per_mw")
    if (values is None) == (per_mw is None):
        raise AgentConfigError("values: the additive profile needs either values ($ per product) or value_per_mw ($/MW)")
    kept: dict[str, float] = {}
    if values is not None:
        if not isinstance(values, Mapping) or not values:
            raise AgentConfigError("values: the additive profile needs a table of product id -> value ($)")
        for key, value in values.items():
            amount = _money(value, f"values.{key}")
            product = _one_product(key, f"values.{key}", catalog)
            if product is not None:
                kept[product] = amount
        return AdditiveValuation(values=kept)
    if not isinstance(per_mw, Mapping) or not per_mw:
        raise AgentConfigError("value_per_mw: expected a table of product id -> value ($/MW)")
    for key, rate in per_mw.items():
        where = f"value_per_mw.{key}"
        amount = _money(rate, where)
        products = catalog.resolve(key)
        if products is None:
            raise AgentConfigError(f"{where}: unknown product {key!r}; the products are {catalog.describe()}")
        for product in products:
            if product.id in kept:
                raise AgentConfigError(f"{where}: product {product.id} is priced twice; give each product one rate")
            if not math.isfinite(product.capacity_mw):
                raise AgentConfigError(f"{where}: product {product.id} has no capacity (MW) to price per MW")
            kept[product.id] = amount * product.capacity_mw
    return AdditiveValuation(values=kept)


def build_symmetric_concave(params: Mapping[str, Any], catalog: ProductCatalog) -> SymmetricConcaveValuation:
    by_size = params.get("by_size")
    if not isinstance(by_size, (list, tuple)) or not by_size:
        raise AgentConfigError("by_size: the symmetric_concave profile needs the values of 1, 2, ... products ($)")
    values = [_money(v, f"by_size[{i}]") for i, v in enumerate(by_size)]
    previous_value, previous_marginal = 0.0, math.inf
    for size, value in enumerate(values, start=1):
        marginal = value - previous_value
        if marginal < -_tolerance(value):
            raise AgentConfigError(
                f"by_size: value of {size} products ({value:g}) is below that of {size - 1} ({previous_value:g}); "
                "valuations must not decrease with bundle size"
            )
        if marginal > previous_marginal + _tolerance(value):
            raise AgentConfigError(
                f"by_size: marginal value of product {size} ({marginal:g}) exceeds that of product {size - 1} "
                f"({previous_marginal:g}); the profile must be concave (use the bundles profile for complements)"
            )
        previous_value, previous_marginal = value, marginal
    return SymmetricConcaveValuation(by_size=tuple(values))


def build_bundle_table(params: Mapping[str, Any], catalog: ProductCatalog) -> BundleTableValuation:
    entries = params.get("bundles")
    if not isinstance(entries, (list, tuple)) or not entries:
        raise AgentConfigError("bundles: the bundles profile needs a list of {products = [...], value = ...}")
    table: list[tuple[frozenset[str], float]] = []
    seen: set[frozenset[str]] = set()
    for i, entry in enumerate(entries):
        where = f"bundles[{i}]"
        if not isinstance(entry, Mapping) or set(entry) != {"products", "value"}:
            raise AgentConfigError(f"{where}: expected {{products = [...], value = ...}}")
        products = entry["products"]
        if not isinstance(products, (list, tuple)) or not products:
            raise AgentConfigError(f"{where}.products: expected a non-empty list of product ids")
        if len(set(products)) != len(products):
            raise AgentConfigError(f"{where}.products: a product is listed twice")
        value = _money(entry["value"], f"{where}.value")
        bundle = frozenset(products)
        if bundle in seen:
            raise AgentConfigError(f"{where}.products: this bundle is already listed; give each bundle once")
        seen.add(bundle)
        named = [_one_product(p, f"{where}.products", catalog) for p in products]
        if all(p is not None for p in named):
            table.append((frozenset(named), value))
    return BundleTableValuation(bundles=tuple(table))


ProfileBuilder = Callable[[Mapping[str, Any], ProductCatalog], ValuationProfile]

PROFILES: dict[str, ProfileBuilder] = {
    "additive": build_additive,
    "symmetric_concave": build_symmetric_concave,
    "bundles": build_bundle_table,
}

# The config fields each profile reads its parameters from (exactly one of them).
PROFILE_FIELDS: dict[str, tuple[str, ...]] = {
    "additive": ("values", "value_per_mw"),
    "symmetric_concave": ("by_size",),
    "bundles": ("bundles",),
}


def build_profile(
    kind: str,
    params: Mapping[str, Any],
    offered: ProductCatalog | Iterable[str],
    withheld: Iterable[str] = (),
) -> ValuationProfile:
    """Build a profile by name from its config parameters.

    ``offered`` is the catalog of products (or, for abstract items, just their ids); ``withheld``
    (with plain ids) are product ids that exist but are not sold (zero capacity): values on them
    are ignored rather than rejected.
    """
    try:
        builder = PROFILES[kind]
    except KeyError:
        raise AgentConfigError(f"profile: unknown profile {kind!r}; choose one of {', '.join(PROFILES)}") from None
    if not isinstance(offered, ProductCatalog):
        # Abstract items carry no MW, so value_per_mw cannot price them.
        offered = ProductCatalog(
            offered=tuple(Product(pid, None, 0.0, math.nan) for pid in offered), withheld=frozenset(withheld)
        )
    return builder(params, offered)
