"""Certificates for any outcome, at any size: is it a competitive equilibrium, does one exist at
all, and how far is it from the best allocation (docs/models/auction.md#certificates).

- **Prices** ((7a), (7b), (8)): every bidder's bundle must maximise its surplus at the final
  prices and every unsold product must be priced 0. Each bidder's demand oracle answers "what is
  your best bundle at these prices?" exactly, so no bundle is enumerated. Under the modified
  valuations (8), v_hat_j(S) = v_j(S) - delta |S \\ X_j|, the best surplus is the oracle's at
  prices raised by delta on the products the bidder does not hold (its X_j costs no penalty).
- **Existence** (Theorem 2's converse, Bikhchandani and Mamer): a Walrasian equilibrium with item
  prices exists iff the LP relaxation of winner determination has an integral optimum. Each
  bidder contributes its valuation as *atoms*, XOR bid lists whose OR is its valuation (an
  additive bidder is one single-product atom per product, a symmetric concave one a unit-demand
  slot per marginal value, a bundle table one atom), so that the LP stays the size of the market.
- **Welfare**: the best allocation by MILP winner determination, and the bound (9): welfare at
  least the best minus delta |M|.

The exact enumeration in mechanisms/judge/equilibrium.py gives the same answers with full tables for
small markets; tests check the two against each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Protocol, Sequence

from mechanisms.errors import MechanismError
from mechanisms.judge.equilibrium import (
    Violation,
    preference_violation,
    unsold_violation,
)
from mechanisms.judge.winner_determination import (
    WinnerDetermination,
    solve_winner_determination,
)

Atoms = list[list[tuple[frozenset[str], float]]]
# Columns of the winner-determination LP above which it is skipped (with the reason): HiGHS
# solves a few hundred thousand in seconds; the MILP on top may take longer.
DEFAULT_COLUMN_LIMIT = 200_000


class Oracle(Protocol):
    """What the certificates need of a valuation: its value, its demand, its atoms."""

    def __call__(self, bundle: Iterable[str]) -> float: ...

    def demand(self, prices: Mapping[str, float]) -> frozenset[str]:
        """A surplus-maximising bundle over the products in ``prices``."""

    def atoms(self, products: Sequence[str]) -> Atoms | None:
        """XOR bid lists whose OR is the valuation, or None when it has no compact form."""


@dataclass(frozen=True)
class PriceCheck:
    holds: bool
    violations: tuple[Violation, ...]


@dataclass(frozen=True)
class Certificate:
    welfare: float                     # sum of the bidders' true values of their bundles ($)
    increment: float                   # delta of (8)
    modified: PriceCheck               # (7a)/(7b) under (8)
    true: PriceCheck                   # (7a)/(7b) under the true valuations
    optimum: WinnerDetermination | None
    efficient_allocation: dict[str, tuple[str, ...]] | None
    skipped: str | None                # why the existence and welfare certificates were not computed

    @property
    def prices_form_equilibrium(self) -> bool:
        return self.modified.holds

    @property
    def efficiency_bound(self) -> float:
        return self.increment * self.product_count

    product_count: int = 0

    def as_dict(self) -> dict:
        optimum = self.optimum
        best = optimum.welfare if optimum is not None else None
        out: dict = {
            "prices_form_equilibrium": self.modified.holds,
            "holds_true_valuations": self.true.holds,
            "walrasian_exists": optimum.walrasian_exists if optimum is not None else None,
            "lp_gap": optimum.lp_gap if optimum is not None else None,
            "lp_value": optimum.lp_value if optimum is not None else None,
            "efficient_welfare": best,
            "efficient_allocation": ({b: list(s) for b, s in self.efficient_allocation.items()}
                                     if self.efficient_allocation is not None else None),
            "efficiency_gap": None if best is None else best - self.welfare,
            "efficiency_bound": self.efficiency_bound,
            "efficiency_bound_holds": None if best is None else bool(
                self.welfare >= best - self.efficiency_bound - 1e-9 * max(1.0, abs(best))),
            "violation_count": len(self.modified.violations),
            "violations": [v.as_dict() for v in self.modified.violations[:20]],
            "violations_true": [v.as_dict() for v in self.true.violations[:20]],
            "skipped": self.skipped,
        }
        return out


def _penalised(prices: Mapping[str, float], held: frozenset[str], delta: float) -> dict[str, float]:
    """Prices under (8) for one bidder: delta more on every product it does not hold."""
    return {p: price + (0.0 if p in held else delta) for p, price in prices.items()}


def check_prices(
    products: Sequence[str],
    valuations: Mapping[str, Oracle],
    allocation: Mapping[str, str | None],
    prices: Mapping[str, float],
    delta: float,
    tolerance: float = 1e-9,
) -> PriceCheck:
    """(7a) and (7b) at ``prices`` under (8) with increment ``delta`` (0: the true valuations)."""
    bundles: dict[str, set[str]] = {bidder: set() for bidder in valuations}
    for product, winner in allocation.items():
        if winner is not None:
            if winner not in bundles:
                raise MechanismError(f"allocation gives {product!r} to unknown bidder {winner!r}")
            bundles[winner].add(product)
    scale = max([1.0, delta * len(products)] + [abs(prices[p]) for p in products])
    tol = tolerance * scale
    violations: list[Violation] = []
    under = "modified valuations (8)" if delta > 0 else "true valuations"
    for bidder, oracle in valuations.items():
        held = frozenset(bundles[bidder])
        quoted = _penalised({p: float(prices[p]) for p in products}, held, delta)
        best = oracle.demand(quoted)
        best_surplus = oracle(best) - math.fsum(quoted[p] for p in best)
        own = oracle(held) - math.fsum(prices[p] for p in held)
        if best_surplus > own + tol * max(1.0, abs(best_surplus)):
            violations.append(preference_violation(
                bidder, tuple(p for p in products if p in best), tuple(p for p in products if p in held),
                best_surplus, own, under))
    unsold = tuple(p for p in products if allocation.get(p) is None and prices[p] > tol)
    if unsold:
        violations.append(unsold_violation(unsold, math.fsum(prices[p] for p in unsold)))
    return PriceCheck(holds=not violations, violations=tuple(violations))


def atom_bids(products: Sequence[str], valuations: Mapping[str, Oracle], column_limit: int = DEFAULT_COLUMN_LIMIT
              ) -> tuple[dict[str, list[tuple[frozenset[str], float]]], dict[str, str], str | None]:
    """Every bidder's atoms as XOR bidders of their own (named bidder + separator + k), with the
    bidder each belongs to; or a reason when some valuation has no atoms or they are too many."""
    bids: dict[str, list[tuple[frozenset[str], float]]] = {}
    parent: dict[str, str] = {}
    columns = 0
    for bidder, oracle in valuations.items():
        atoms = oracle.atoms(products)
        if atoms is None:
            return {}, {}, (f"{bidder}'s valuation has no compact bid form, so winner determination "
                            "would enumerate its bundles")
        for k, atom in enumerate(atoms):
            name = f"{bidder}\x1f{k}"
            bids[name], parent[name] = atom, bidder
            columns += len(atom)
        if columns > column_limit:
            return {}, {}, (f"winner determination would have more than {column_limit:,} bid columns "
                            "(raise the limit to certify anyway)")
    return bids, parent, None


def merge_by_bidder(products: Sequence[str], valuations: Mapping[str, Oracle], parent: Mapping[str, str],
                    allocation: Mapping[str, frozenset[str]]) -> dict[str, tuple[str, ...]]:
    """The atoms' allocation gathered back per bidder, in product order."""
    merged: dict[str, list[str]] = {bidder: [] for bidder in valuations}
    for name, bundle in allocation.items():
        merged[parent[name]].extend(bundle)
    order = {p: i for i, p in enumerate(products)}
    return {b: tuple(sorted(items, key=order.__getitem__)) for b, items in merged.items()}


def best_allocation(
    products: Sequence[str], valuations: Mapping[str, Oracle], column_limit: int = DEFAULT_COLUMN_LIMIT
) -> tuple[WinnerDetermination | None, dict[str, tuple[str, ...]] | None, str | None]:
    """Winner determination over every bidder's atoms, with its certificates: (result,
    allocation by bidder, None), or (None, None, why not)."""
    bids, parent, skipped = atom_bids(products, valuations, column_limit)
    if skipped is not None:
        return None, None, skipped
    result = solve_winner_determination(products, bids)
    return result, merge_by_bidder(products, valuations, parent, result.allocation), None


def certify(
    products: Sequence[str],
    valuations: Mapping[str, Oracle],
    allocation: Mapping[str, str | None],
    prices: Mapping[str, float],
    increment: float,
    *,
    column_limit: int = DEFAULT_COLUMN_LIMIT,
) -> Certificate:
    """Every certificate of the module doc for one outcome."""
    if not (math.isfinite(increment) and increment >= 0):
        raise MechanismError(f"increment is {increment!r}; it must be a number >= 0")
    missing = [p for p in products if p not in prices]
    if missing:
        raise MechanismError(f"no price for product {missing[0]!r}; pass a price for every product (0 if unsold)")
    won: dict[str, list[str]] = {bidder: [] for bidder in valuations}
    for product, winner in allocation.items():
        if winner is not None:
            won.setdefault(winner, []).append(product)
    welfare = math.fsum(valuations[b](won[b]) for b in valuations)
    optimum, efficient, skipped = best_allocation(products, valuations, column_limit)
    return Certificate(
        welfare=welfare,
        increment=float(increment),
        modified=check_prices(products, valuations, allocation, prices, float(increment)),
        true=check_prices(products, valuations, allocation, prices, 0.0),
        optimum=optimum,
        efficient_allocation=efficient,
        skipped=skipped,
        product_count=len(products),
    )
