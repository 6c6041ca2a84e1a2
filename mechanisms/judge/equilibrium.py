"""Checks whether an auction outcome is a competitive equilibrium (docs/models/auction.md#eq-c-7) and
how efficient it is.

Proposition 3 says the final SAA outcome is a CE for the modified valuations (8), not for the true
ones, so both are checked: ``holds`` under (8) is what the auction promises, ``holds_true_valuations``
shows how far the increment moved the outcome from a true CE (Example 1 is a CE only under (8)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from mechanisms.errors import MechanismError
from mechanisms.judge.welfare import (
    Valuation,
    _BundleSpace,
    _check_size,
    _efficient_from_values,
    format_bundle,
    format_number,
)


@dataclass(frozen=True)
class BundleSurplus:
    """One row of Tables VI-IX: v_j(S), the (8) penalty delta*|S \\ X_j|, price(S) and the surplus."""

    bundle: tuple[str, ...]
    value: float
    penalty: float
    price: float
    surplus: float  # value - penalty - price


@dataclass(frozen=True)
class Violation:
    bidder: str  # "" for (7b), which concerns unsold products rather than a bidder
    condition: str  # "7a" or "7b"
    bundle: tuple[str, ...]  # the preferred bundle (7a) or the unsold products with positive price (7b)
    gain: float  # surplus of the preferred bundle minus that of the assigned one (7a) / their total price (7b)
    message: str
    held: tuple[str, ...] = ()  # (7a): the bundle the bidder was allocated


    def as_dict(self) -> dict:
        return {
            "bidder": self.bidder,
            "condition": self.condition,
            "bundle": list(self.bundle),
            "held": list(self.held),
            "gain": self.gain,
            "message": self.message,
        }


@dataclass(frozen=True)
class BidderCheck:
    bidder: str
    bundle: tuple[str, ...]
    surplus: float  # of the assigned bundle under (8); no penalty applies to X_j itself
    best_surplus: float
    maximisers: tuple[tuple[str, ...], ...]  # under (8), sorted by (size, product indices)
    surplus_true: float
    best_surplus_true: float
    maximisers_true: tuple[tuple[str, ...], ...]
    table: tuple[BundleSurplus, ...]  # every bundle under (8), sorted by (size, product indices)


@dataclass(frozen=True)
class EquilibriumReport:
    holds: bool  # (7a) and (7b) under the modified valuations (8)
    holds_true_valuations: bool  # (7a) and (7b) under the true valuations
    increment: float
    bidders: tuple[BidderCheck, ...]
    violations: tuple[Violation, ...]
    violations_true: tuple[Violation, ...]
    welfare: float
    efficient_welfare: float
    efficient_allocation: dict[str, tuple[str, ...]]
    efficiency_gap: float  # efficient_welfare - welfare
    efficiency_bound: float  # delta * |M|, the margin of (9)
    efficiency_bound_holds: bool

    def as_dict(self) -> dict:
        return {
            "holds": self.holds,
            "holds_true_valuations": self.holds_true_valuations,
            "increment": self.increment,
            "violations": [v.as_dict() for v in self.violations],
            "violations_true": [v.as_dict() for v in self.violations_true],
            "maximisers": {b.bidder: [list(s) for s in b.maximisers] for b in self.bidders},
            "maximisers_true": {b.bidder: [list(s) for s in b.maximisers_true] for b in self.bidders},
            "welfare": self.welfare,
            "efficient_welfare": self.efficient_welfare,
            "efficient_allocation": {bidder: list(s) for bidder, s in self.efficient_allocation.items()},
            "efficiency_gap": self.efficiency_gap,
            "efficiency_bound": self.efficiency_bound,
            "efficiency_bound_holds": self.efficiency_bound_holds,
        }


def _finite_number(x: object, what: str) -> float:
    try:
        value = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MechanismError(f"{what} is {x!r}; it must be a number") from None
    if not math.isfinite(value):
        raise MechanismError(f"{what} is {value}; it must be a finite number")
    return value


def _validated_prices(space: _BundleSpace, prices: Mapping[str, float]) -> list[float]:
    for product in prices:
        if product not in space.index:
            raise MechanismError(
                f"prices name unknown product {product!r}; products are " + ", ".join(space.products)
            )
    out = []
    for product in space.products:
        if product not in prices:
            raise MechanismError(f"no price for product {product!r}; pass a price for every product (0 if unsold)")
        price = _finite_number(prices[product], f"price of {product!r}")
        if price < 0:
            raise MechanismError(f"price of {product!r} is {format_number(price)}; prices must be non-negative")
        out.append(price)
    return out


def _validated_holdings(
    space: _BundleSpace, allocation: Mapping[str, str | None], bidders: Sequence[str]
) -> dict[str, int]:
    """X_j as bitmasks; a product missing from ``allocation`` counts as unsold."""
    known = set(bidders)
    holdings = {bidder: 0 for bidder in bidders}
    for product, bidder in allocation.items():
        if product not in space.index:
            raise MechanismError(
                f"allocation names unknown product {product!r}; products are " + ", ".join(space.products)
            )
        if bidder is None:
            continue
        if bidder not in known:
            raise MechanismError(
                f"allocation gives {product!r} to unknown bidder {bidder!r}; bidders are the keys of valuations: "
                + ", ".join(map(str, bidders))
            )
        holdings[bidder] |= 1 << space.index[product]
    return holdings


def _maximisers(surplus: np.ndarray, order: np.ndarray, tol: float) -> tuple[float, np.ndarray]:
    best = float(np.max(surplus))
    hits = order[surplus[order] >= best - tol]  # keeps the (size, indices) order of ``order``
    return best, hits


def preference_violation(bidder: str, bundle: tuple[str, ...], held: tuple[str, ...], best: float, own: float,
                         under: str) -> Violation:
    """(7a): ``bidder`` would rather have ``bundle`` (surplus ``best``) than its ``held`` one."""
    return Violation(
        bidder=bidder,
        condition="7a",
        bundle=bundle,
        held=held,
        gain=best - own,
        message=(
            f"{bidder} prefers {format_bundle(bundle)} (surplus {format_number(best)}) to its bundle "
            f"{format_bundle(held)} (surplus {format_number(own)}) under {under}"
        ),
    )


def unsold_violation(bundle: tuple[str, ...], total: float) -> Violation:
    """(7b): unsold products that carry a price."""
    if len(bundle) == 1:
        message = f"{bundle[0]} is unsold but priced {format_number(total)}; (7b) needs unsold products at price 0"
    else:
        message = (
            f"unsold products {format_bundle(bundle)} have positive prices (total {format_number(total)}); "
            "(7b) needs unsold products at price 0"
        )
    return Violation(bidder="", condition="7b", bundle=bundle, gain=total, message=message)


def _violation_7a(
    space: _BundleSpace, bidder: str, held: int, better: int, surplus: np.ndarray, under: str
) -> Violation:
    return preference_violation(bidder, space.tuple_of(better), space.tuple_of(held), float(surplus[better]),
                                float(surplus[held]), under)


def check_equilibrium(
    products: Sequence[str],
    valuations: Mapping[str, Valuation],
    allocation: Mapping[str, str | None],
    prices: Mapping[str, float],
    increment: float,
    *,
    max_products: int = 12,
    tolerance: float = 1e-9,
) -> EquilibriumReport:
    """Check Definition 1 ((C-7a), (C-7b), docs/models/auction.md#eq-c-7) for ``allocation`` (product ->
    bidder or None) at ``prices``.

    Checked under the modified valuations (8), v_hat_j(S) = v_j(S) - increment*|S \\ X_j|, and under
    the true ones; also reports welfare against the exact efficient allocation and the bound (9).
    """
    _check_size(
        len(products), max_products, "the equilibrium check enumerates 2^m bundles and 3^m bundle pairs"
    )
    space = _BundleSpace(products)
    delta, tolerance = _validated_increment_and_tolerance(increment, tolerance)
    bidders = list(valuations)
    price_list = _validated_prices(space, prices)
    holdings = _validated_holdings(space, allocation, bidders)
    values = {bidder: space.values(bidder, valuations[bidder]) for bidder in bidders}
    # One absolute tolerance for every comparison, scaled by the largest quantity in play so the
    # check means the same in $ as in $M.
    scale = max(
        [1.0, float(np.sum(price_list)), delta * space.m]
        + [float(np.max(np.abs(v))) for v in values.values()]
    )
    tol = tolerance * scale
    checks, violations, violations_true = _bidder_checks(space, values, holdings, price_list, delta, tol)
    unsold = _unsold_priced(space, holdings, price_list, tol)
    if unsold is not None:
        violations.append(unsold)
        violations_true.append(unsold)

    efficient = _efficient_from_values(space, values)
    welfare = float(sum(values[bidder][holdings[bidder]] for bidder in bidders))
    # (C-9), docs/models/auction.md#eq-c-9: each product can be mis-assigned by at most one increment.
    bound = delta * space.m
    return EquilibriumReport(
        holds=not violations,
        holds_true_valuations=not violations_true,
        increment=delta,
        bidders=tuple(checks),
        violations=tuple(violations),
        violations_true=tuple(violations_true),
        welfare=welfare,
        efficient_welfare=efficient.welfare,
        efficient_allocation=efficient.allocation,
        efficiency_gap=efficient.welfare - welfare,
        efficiency_bound=bound,
        efficiency_bound_holds=welfare >= efficient.welfare - bound - tol,
    )


def _validated_increment_and_tolerance(increment: float, tolerance: float) -> tuple[float, float]:
    delta = _finite_number(increment, "increment")
    if delta < 0:
        raise MechanismError(f"increment is {format_number(delta)}; the minimum bid increment must be >= 0")
    tolerance = _finite_number(tolerance, "tolerance")
    if tolerance < 0:
        raise MechanismError(f"tolerance is {format_number(tolerance)}; it must be >= 0")
    return delta, tolerance


def _bidder_checks(
    space: _BundleSpace, values: Mapping[str, np.ndarray], holdings: Mapping[str, int], price_list: list[float],
    delta: float, tol: float,
) -> tuple[list[BidderCheck], list[Violation], list[Violation]]:
    """Each bidder's table and demand sets under (8) and the true valuations, and the (7a)
    violations under each, in bidder order."""
    price = space.additive(price_list)
    # Bundles in the tables' order: by size, then by product indices.
    order = np.array(
        sorted(range(space.size), key=lambda s: (int(space.popcount[s]), [i for i in range(space.m) if s >> i & 1])),
        dtype=np.int64,
    )
    checks: list[BidderCheck] = []
    violations: list[Violation] = []
    violations_true: list[Violation] = []
    for bidder, v in values.items():
        held = holdings[bidder]
        penalty = delta * space.popcount[space.masks & ~held]  # (8): delta * |S \ X_j|
        surplus = v - penalty - price
        surplus_true = v - price
        best, hits = _maximisers(surplus, order, tol)
        best_true, hits_true = _maximisers(surplus_true, order, tol)
        # (7a): X_j must be in the demand set (6) at these prices; the first maximiser is named.
        if best - surplus[held] > tol:
            violations.append(_violation_7a(space, bidder, held, int(hits[0]), surplus, "modified valuations (8)"))
        if best_true - surplus_true[held] > tol:
            violations_true.append(
                _violation_7a(space, bidder, held, int(hits_true[0]), surplus_true, "true valuations")
            )
        table = tuple(
            BundleSurplus(
                bundle=space.tuple_of(int(s)),
                value=float(v[s]),
                penalty=float(penalty[s]),
                price=float(price[s]),
                surplus=float(surplus[s]),
            )
            for s in order
        )
        checks.append(
            BidderCheck(
                bidder=bidder,
                bundle=space.tuple_of(held),
                surplus=float(surplus[held]),
                best_surplus=best,
                maximisers=tuple(space.tuple_of(int(s)) for s in hits),
                surplus_true=float(surplus_true[held]),
                best_surplus_true=best_true,
                maximisers_true=tuple(space.tuple_of(int(s)) for s in hits_true),
                table=table,
            )
        )
    return checks, violations, violations_true


def _unsold_priced(space: _BundleSpace, holdings: Mapping[str, int], price_list: list[float],
                   tol: float) -> Violation | None:
    """(7b): sum of all prices equals the sum paid by winners, i.e. unsold products are priced 0."""
    sold = 0
    for held in holdings.values():
        sold |= held
    unsold_priced = [i for i in range(space.m) if not sold >> i & 1 and price_list[i] > tol]
    if not unsold_priced:
        return None
    bundle = tuple(space.products[i] for i in unsold_priced)
    return unsold_violation(bundle, float(sum(price_list[i] for i in unsold_priced)))
