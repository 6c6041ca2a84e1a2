"""Valuation profiles of data-center bidders, each with its own demand oracle.

A profile gives v(S) in $ for a bundle S of product ids (v(empty) = 0) and answers the demand
question (C-6) of docs/models/auction.md#eq-c-6 at posted prices: which bundle maximises
v(S) - price(S), with ties settled by a `BundleRule` (agents/bundle_ties.py). Oracles exploit the
profile's structure so that they do not enumerate 2^m bundles:

- `additive` (Condition 1): per product, keep it when its value covers its price.
- `symmetric_concave` (Condition 2): the best bundle of each size k is the k cheapest products
  (proof of Proposition 2, condition (18)); only the sizes and the price ties need a choice.
- `bundles`: an XOR table of bundle values with free disposal (complements allowed). At positive
  prices only the empty bundle and the table's bundles can maximise surplus.
- `sites`: up to k sites, v(S) = the k largest product values in S (an assignment valuation; unit
  demand for k = 1). The best k products by surplus, with choices only among surplus ties and
  free products.
- `per_mw`: additive, each product worth its MW times its bus's rate, discounted for its
  interruption risk net of the bidder's backup; the additive oracle.
- `budget_capped`: v(S) = min(budget, sum of values). Not gross substitutes; demand is a knapsack,
  solved by enumeration over the products worth their price, or by a MILP when there are many.
- `complements`: a site is worth its value only with all of its products (firm and flexible), plus a
  synergy per extra complete site. Not gross substitutes; the best j sites are the j with the
  largest value net of cost, so scanning j is exact.

Prices are >= 0 (docs/models/auction.md#eq-c-6); the oracles rely on it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from itertools import combinations
from typing import Callable, ClassVar, Iterable, Mapping, Sequence

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from agents.bundle_ties import SMALLEST, BundleRule
from agents.errors import AgentConfigError
from mechanisms.judge.winner_determination import xor_bids_from_value
from mechanisms.products import Product

# Bundles whose surpluses differ by less than this (relative to the money involved) are tied.
_RELATIVE_TOLERANCE = 1e-9
# Brute-force enumeration covers 2^m bundles; beyond this it is refused.
MAX_ENUMERATED_PRODUCTS = 20


def _cost(bundle: Iterable[str], prices: Mapping[str, float]) -> float:
    """Price of a bundle; fsum is exactly rounded, so set iteration order cannot change it."""
    return math.fsum(prices[p] for p in bundle)


def money_tolerance(*amounts: float) -> float:
    return _RELATIVE_TOLERANCE * max([1.0, *(abs(a) for a in amounts)])


class ValuationProfile(ABC):
    kind: ClassVar[str]
    # Kelso-Crawford gross substitutes (docs/models/auction.md#def-3), as the registry declares it.
    gross_substitutes: ClassVar[bool] = False

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

    def interest(self) -> frozenset[str] | None:
        """The products that can add value (the others never enter a demanded bundle at a
        positive price); None: any product may. Strategies price only these, which keeps a
        round cheap when thousands of products are on sale."""
        return None

    def atoms(self, products: Sequence[str]) -> list[list[tuple[frozenset[str], float]]] | None:
        """XOR bid lists whose OR is this valuation on ``products`` (winner determination runs on
        them, mechanisms/judge/certify.py); None when there is no compact form."""
        return None


def enumerate_maximisers(
    valuation: Callable[[frozenset[str]], float],
    products: Sequence[str],
    prices: Mapping[str, float],
) -> list[frozenset[str]]:
    """All surplus-maximising bundles by brute force over the 2^m subsets (docs/models/auction.md#eq-c-6)."""
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
    gross_substitutes: ClassVar[bool] = True

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

    def interest(self):
        return frozenset(p for p, v in self.values.items() if v > 0)

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
    gross_substitutes: ClassVar[bool] = True

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
    gross_substitutes: ClassVar[bool] = False

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

    def interest(self):
        return frozenset(p for b, v in self.bundles if v > 0 for p in b)

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


def _fewest_new_first(products: Iterable[str], held: frozenset[str], rank: Mapping[str, int]) -> list[str]:
    """Held products first (they add no new bid), then product order: taking a prefix gives the
    fewest new products with the lowest indices, which every rule prefers among equal sizes."""
    return sorted(products, key=lambda p: (p not in held, rank[p]))


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SitesValuation(ValuationProfile):
    """Up to k sites: v(S) = the sum of the k largest product values in S.

    A developer that can build at most k data centers (one per product it wins) gets nothing from
    a (k+1)-th site, so only its k best sites count. With k = 1 this is unit demand. It is an
    assignment valuation (the weighted rank of a uniform matroid), hence gross substitutes.
    """

    values: Mapping[str, float]
    max_sites: int = 1
    kind: ClassVar[str] = "sites"
    gross_substitutes: ClassVar[bool] = True

    def value(self, bundle: frozenset[str]) -> float:
        top = sorted((float(self.values.get(p, 0.0)) for p in bundle), reverse=True)[: self.max_sites]
        return math.fsum(top)

    def choose_bundle(self, prices, held, rule, rank):
        # With s_j = v_j - p_j, the best surplus is the sum of the k largest positive s_j, and the
        # maximisers are exactly T + Z: T an optimal set of at most k products by s, Z any set of
        # free (zero-price) products. So only two places leave a choice: which of the products
        # tied at the k-th surplus (or, with room to spare, which zero-surplus ones) fill T, and
        # how many free products join. The rules want either the fewest (smallest, fewest_new)
        # or the most (largest) of them; both candidates are built and the rule picks.
        k = self.max_sites
        worth = {p: float(self.values.get(p, 0.0)) for p in prices}
        tol = money_tolerance(*prices.values(), *worth.values())
        surplus = {p: worth[p] - prices[p] for p in prices}
        free = {p for p, price in prices.items() if price <= tol}
        positive = sorted((p for p in prices if surplus[p] > tol), key=lambda p: -surplus[p])
        if len(positive) <= k:
            # Every profitable product fits; zero-surplus products may take the spare places.
            forced = set(positive)
            pool = [p for p in prices if abs(surplus[p]) <= tol]
            need, room = 0, k - len(positive)
        else:
            threshold = surplus[positive[k - 1]]
            forced = {p for p in positive if surplus[p] > threshold + tol}
            pool = [p for p in positive if abs(surplus[p] - threshold) <= tol]
            need = room = k - len(forced)
        fewest = forced | set(_fewest_new_first(pool, held, rank)[:need])
        # Free pool products may join as Z without taking a place in T; the paid ones need one.
        paid = _fewest_new_first([p for p in pool if p not in free], held, rank)
        most = forced | free | set(paid[:room])
        return rule.best([frozenset(fewest), frozenset(most)], held, rank)

    def describe(self) -> str:
        head = "unit demand" if self.max_sites == 1 else f"up to {self.max_sites} sites"
        return f"{head}: " + ", ".join(f"{p} {v:g}" for p, v in self.values.items())

    def interest(self):
        return frozenset(p for p, v in self.values.items() if v > 0)

    def atoms(self, products):
        # k identical unit-demand slots: an assignment fills them with k distinct products, and
        # the best assignment takes the k largest values, which is v.
        slot = [(frozenset({p}), float(self.values[p])) for p in products if self.values.get(p, 0.0) > 0]
        return [list(slot) for _ in range(min(self.max_sites, len(slot)))]


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PerMWValuation(ValuationProfile):
    """A value per MW at each bus, discounted for the product's interruption risk.

    A product at bus b with risk eps and q MW is worth
    q * rate_b * max(0, 1 - eps * (1 - backup_share) * outage_penalty). An interruption costs a
    data center far more than the energy it did not get (lost jobs, SLA penalties, restarts):
    ``outage_penalty`` is that loss per MW at interruption probability 1, as a multiple of the
    MW's value, so with the default 10 a 10 % risk wipes out the value. Backup generation carries
    ``backup_share`` of the load through an interruption, which scales the loss down. Firm
    capacity (eps = 0) keeps the full rate; buses without a rate are worth nothing.
    Additive across products, so gross substitutes; the oracle is the additive one.
    """

    rates: Mapping[int, float]
    products: tuple[Product, ...]
    backup_share: float = 0.0
    outage_penalty: float = 10.0
    additive: AdditiveValuation = field(init=False, repr=False, compare=False)
    kind: ClassVar[str] = "per_mw"
    gross_substitutes: ClassVar[bool] = True

    def __post_init__(self) -> None:
        values = {p.id: self.product_value(p) for p in self.products if p.bus in self.rates}
        object.__setattr__(self, "additive", AdditiveValuation(values=values))

    @property
    def values(self) -> Mapping[str, float]:
        return self.additive.values

    def risk_factor(self, risk: float) -> float:
        """The share of a MW's value left at interruption probability ``risk``."""
        return max(0.0, 1.0 - risk * (1.0 - self.backup_share) * self.outage_penalty)

    def product_value(self, product: Product) -> float:
        return product.capacity_mw * float(self.rates.get(product.bus, 0.0)) * self.risk_factor(product.risk)

    def value(self, bundle: frozenset[str]) -> float:
        return self.additive.value(bundle)

    def choose_bundle(self, prices, held, rule, rank):
        return self.additive.choose_bundle(prices, held, rule, rank)

    def interest(self):
        return self.additive.interest()

    def atoms(self, products):
        return self.additive.atoms(products)

    def describe(self) -> str:
        rates = ", ".join(f"bus {b} {r:g}" for b, r in self.rates.items())
        return (f"per MW ($/MW): {rates}; backup {self.backup_share:g}, "
                f"outage penalty {self.outage_penalty:g}x")


# --------------------------------------------------------------------------------------------
# Budget-capped demand enumerates the subsets of the products worth their price up to this many;
# beyond, a MILP finds it (2^16 bundles as numpy arrays take a few ms).
BUDGET_ENUMERATION_LIMIT = 16
# Atoms are an XOR table of all 2^m bundles of the valued products; beyond this, none.
BUDGET_ATOM_LIMIT = 12


@dataclass(frozen=True)
class BudgetCappedValuation(ValuationProfile):
    """Budget-additive: v(S) = min(budget, sum of the product values in S).

    A bidder with additive values that cannot spend (or use) more than a fixed amount: a
    financing limit, or a single facility whose value saturates. It is submodular but not gross
    substitutes (raising one price can make a large product worth buying instead of two small
    ones, dropping a small one whose price did not move).
    """

    values: Mapping[str, float]
    budget: float
    kind: ClassVar[str] = "budget_capped"
    gross_substitutes: ClassVar[bool] = False

    def value(self, bundle: frozenset[str]) -> float:
        return min(self.budget, math.fsum(float(self.values.get(p, 0.0)) for p in bundle))

    def choose_bundle(self, prices, held, rule, rank):
        # A product worth less than its price is in no maximiser: dropping it lowers the capped
        # value by at most its worth and saves its price. The rest is a knapsack (NP-hard in
        # general), so it is enumerated when small and solved as a MILP otherwise.
        # Free products worth nothing join or leave any bundle without changing its surplus: only
        # the largest rule takes them, and they need not be enumerated.
        tol = money_tolerance(self.budget, *prices.values())
        idle = {p for p in prices if self.values.get(p, 0.0) <= 0 and prices[p] <= tol}
        relevant = sorted((p for p in prices if p not in idle and self.values.get(p, 0.0) >= prices[p] - tol),
                          key=rank.__getitem__)
        if len(relevant) <= BUDGET_ENUMERATION_LIMIT:
            chosen = self._by_enumeration(relevant, prices, held, rule)
        else:
            chosen = self._by_milp(relevant, prices, held, rule)
        return chosen | idle if rule.size_sign < 0 else chosen

    def _by_enumeration(self, relevant, prices, held, rule) -> frozenset[str]:
        r = len(relevant)
        if r == 0:
            return frozenset()
        bits = (np.arange(1 << r)[:, None] >> np.arange(r)) & 1
        worth = np.array([float(self.values.get(p, 0.0)) for p in relevant])
        cost = np.array([float(prices[p]) for p in relevant])
        surplus = np.minimum(self.budget, bits @ worth) - bits @ cost
        best = float(surplus.max())
        tied = bits[surplus >= best - money_tolerance(best, *prices.values())]
        new = tied * np.array([p not in held for p in relevant], dtype=np.int64)
        # The rule's keys as numbers: size, new count, and for the lowest new indices the sum of
        # 2^(r-1-position) over new products (positions in rank order): among equally many new
        # products, the lexicographically smallest sorted indices have the largest such sum.
        lowest = new @ (1 << np.arange(r - 1, -1, -1, dtype=np.int64))
        order = np.lexsort((-lowest, new.sum(axis=1), rule.size_sign * tied.sum(axis=1)))
        return frozenset(p for p, bit in zip(relevant, tied[order[0]]) if bit)

    def _by_milp(self, relevant, prices, held, rule) -> frozenset[str]:
        # Variables x_j (binary: buy product j) and t (the capped value): max t - sum p_j x_j
        # with t <= budget (its bound) and t <= sum v_j x_j.
        n = len(relevant)
        worth = np.array([float(self.values.get(p, 0.0)) for p in relevant])
        cost = np.array([float(prices[p]) for p in relevant])
        capped = LinearConstraint(np.append(-worth, 1.0)[None, :], -np.inf, 0.0)
        bounds = Bounds(np.zeros(n + 1), np.append(np.ones(n), self.budget))
        integrality = np.append(np.ones(n), 0)
        options = {"mip_rel_gap": 0.0}
        first = milp(np.append(cost, -1.0), constraints=[capped], integrality=integrality, bounds=bounds,
                     options=options)
        if first.x is None:
            raise RuntimeError(f"budget_capped demand: the MILP found no solution ({first.message})")
        bundle = frozenset(p for p, x in zip(relevant, first.x) if x > 0.5)
        best = self.value(bundle) - _cost(bundle, prices)
        # Among bundles as good, the rule's size and new-product count (small integer weights);
        # the lowest-indices tie-break is not applied at this size.
        tol = money_tolerance(best, *prices.values())
        as_good = LinearConstraint(np.append(-cost, 1.0)[None, :], best - tol, np.inf)
        weights = rule.size_sign * (n + 1) + np.array([p not in held for p in relevant], dtype=float)
        second = milp(np.append(weights, 0.0), constraints=[capped, as_good], integrality=integrality,
                      bounds=bounds, options=options)
        if second.x is not None:
            ranked = frozenset(p for p, x in zip(relevant, second.x) if x > 0.5)
            # HiGHS's feasibility tolerance may exceed ours; keep the first answer if so.
            if self.value(ranked) - _cost(ranked, prices) >= best - tol:
                return ranked
        return bundle

    def describe(self) -> str:
        return f"budget-capped at {self.budget:g}: " + ", ".join(f"{p} {v:g}" for p, v in self.values.items())

    def interest(self):
        return frozenset(p for p, v in self.values.items() if v > 0)

    def atoms(self, products):
        valued = [p for p in products if self.values.get(p, 0.0) > 0]
        if len(valued) > BUDGET_ATOM_LIMIT:
            return None
        bids = xor_bids_from_value(self.value, valued, max_products=BUDGET_ATOM_LIMIT) if valued else []
        return [bids] if bids else []


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Site:
    """A site of the complements profile: worth ``value`` only when all its products are held."""

    bus: int
    products: frozenset[str]
    value: float


# Atoms of the complements profile list every subset of sites; beyond this many sites, none.
COMPLEMENTS_ATOM_SITES = 10


@dataclass(frozen=True)
class ComplementsValuation(ValuationProfile):
    """Firm and flexible capacity at a site are worth something only together.

    A data center needs its whole connection at one site: firm capacity for the critical load
    and the flexible increment for the rest (a site is all the products offered at its bus). A
    complete site is worth its value; each complete site beyond the first adds ``synergy`` (a
    portfolio across locations hedges outages and lets load move). Incomplete sites are worth 0:
    v(S) = sum of complete sites' values + synergy * max(0, complete - 1). Not gross substitutes.
    """

    sites: tuple[Site, ...]
    synergy: float = 0.0
    kind: ClassVar[str] = "complements"
    gross_substitutes: ClassVar[bool] = False

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for site in self.sites:
            # An empty site would be complete for free; overlapping ones would double count.
            if not site.products or seen & site.products:
                raise ValueError(f"complements: site at bus {site.bus} has no products or shares some")
            seen |= site.products

    def value(self, bundle: frozenset[str]) -> float:
        complete = [s.value for s in self.sites if s.products <= bundle]
        return math.fsum(complete) + self.synergy * max(0, len(complete) - 1)

    def choose_bundle(self, prices, held, rule, rank):
        # A bundle's surplus is g(J) minus the price of its products outside its complete sites J,
        # with g(J) = sum over J of (value - cost) + synergy * max(0, |J| - 1). So the maximisers
        # are the optimal J plus free products that complete no other site. g depends on |J| only
        # through the synergy, so the best J of each size j is the j sites of largest net value:
        # scanning j is exact. Choices remain among sites tied at the j-th place and free products.
        sites = [s for s in self.sites if s.products <= prices.keys()]  # others can never complete
        tol = money_tolerance(self.synergy, *prices.values(), *(s.value for s in sites))
        free = {p for p, price in prices.items() if price <= tol}
        sign = rule.size_sign
        # What the rule's bundle holds of a site it does not complete: nothing, or (largest) every
        # free product but one, leaving out a new one with the highest index if it can.
        base: set[str] = set()
        adds: list[frozenset[str]] = []
        for site in sites:
            spare = site.products & free if sign < 0 else set()
            if spare == site.products:
                spare = spare - {max(spare, key=lambda p: (p not in held, rank[p]))}
            base |= spare
            adds.append(site.products - spare)
        if sign < 0:
            base |= free.difference(*(s.products for s in sites))
        net = [s.value - _cost(s.products, prices) for s in sites]
        order = sorted(range(len(sites)), key=lambda i: -net[i])
        surplus, running = [0.0], 0.0
        for j, i in enumerate(order, start=1):
            running += net[i]
            surplus.append(running + self.synergy * (j - 1))
        best = max(surplus)
        tol = max(tol, money_tolerance(best))
        candidates = []
        for j, s in enumerate(surplus):
            if s >= best - tol:
                chosen = self._best_sites(j, order, net, adds, held, rank, sign, tol)
                candidates.append(frozenset(base.union(*(adds[i] for i in chosen))))
        return rule.best(candidates, held, rank)

    @staticmethod
    def _best_sites(j, order, net, adds, held, rank, sign, tol) -> list[int]:
        """The j sites of largest net value that the rule likes best among ties at the j-th.

        (With no cap on sites, surplus is linear in how many of a tied group are taken, so a
        partial pick never beats taking none or all of them; each j is still answered exactly.)
        """
        if j == 0:
            return []
        threshold = net[order[j - 1]]
        forced = [i for i in order if net[i] > threshold + tol]
        tied = [i for i in order if abs(net[i] - threshold) <= tol]

        def key(i: int) -> tuple:
            # Size and new-product count add up over sites, so the best r by them are the r best;
            # among sites equal in both, the one whose new products include the lowest index
            # gives the lexicographically smallest new indices (sites share no products).
            new = sorted(rank[p] for p in adds[i] if p not in held)
            return (sign * len(adds[i]), len(new), new[0] if new else -1)

        return forced + sorted(tied, key=key)[: j - len(forced)]

    def describe(self) -> str:
        parts = [f"bus {s.bus} ({', '.join(sorted(s.products))}) {s.value:g}" for s in self.sites]
        return "complements: " + "; ".join(parts) + (f"; synergy {self.synergy:g}" if self.synergy else "")

    def interest(self):
        return frozenset(p for site in self.sites if site.value > 0 for p in site.products)

    def atoms(self, products):
        offered = frozenset(products)
        usable = [s for s in self.sites if s.products <= offered]
        if len(usable) > COMPLEMENTS_ATOM_SITES:
            return None
        bids = []
        for size in range(1, len(usable) + 1):
            for combo in combinations(usable, size):
                worth = math.fsum(s.value for s in combo) + self.synergy * (size - 1)
                if worth > 0:
                    bids.append((frozenset().union(*(s.products for s in combo)), worth))
        return [bids] if bids else []
