"""Exact efficient allocation: the benchmark max_{(Y_j) feasible} sum_j v_j(Y_j) on the right of (C-9),
docs/models/auction.md#eq-c-9.

Bundles are bitmasks in product order (bit i set <=> products[i] in the bundle), so every
bidder's valuation is evaluated once per bundle and the rest is array arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from mechanisms.errors import MechanismError, SizeLimitError
from mechanisms.products import checked_ids

Valuation = Callable[[frozenset[str]], float]


@dataclass(frozen=True)
class EfficientAllocation:
    """A welfare-maximising feasible allocation; products may stay unassigned."""

    welfare: float
    allocation: dict[str, tuple[str, ...]]  # every bidder present, products in product order


class _BundleSpace:
    """All 2^m bundles of a product list, indexed by bitmask; shared by the welfare and equilibrium checks."""

    def __init__(self, products: Sequence[str]) -> None:
        self.products: tuple[str, ...] = checked_ids(products)
        self.m = len(self.products)
        self.size = 1 << self.m
        masks = np.arange(self.size, dtype=np.int64)
        self.masks = masks
        self.popcount = np.zeros(self.size, dtype=np.int64)
        for i in range(self.m):
            self.popcount += (masks >> i) & 1
        self.index = {p: i for i, p in enumerate(self.products)}
        self._bundles: list[frozenset[str]] | None = None
        self._submasks: list[tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def bundles(self) -> list[frozenset[str]]:
        if self._bundles is None:
            bundles: list[frozenset[str]] = [frozenset()]
            # Doubling on the highest bit reuses the smaller bundles instead of decoding each mask.
            for i, product in enumerate(self.products):
                bundles.extend(b | {product} for b in bundles[: 1 << i])
            self._bundles = bundles
        return self._bundles

    def mask_of(self, products: Iterable[str]) -> int:
        mask = 0
        for p in products:
            mask |= 1 << self.index[p]
        return mask

    def tuple_of(self, mask: int) -> tuple[str, ...]:
        return tuple(p for i, p in enumerate(self.products) if mask >> i & 1)

    def additive(self, weights: Sequence[float]) -> np.ndarray:
        """sum_{i in S} w_i for every S, summed in product order so that equal inputs give equal floats."""
        out = np.zeros(self.size, dtype=np.float64)
        for i, w in enumerate(weights):
            half = 1 << i
            out[half : 2 * half] = out[:half] + float(w)
        return out

    def values(self, bidder: str, valuation: Valuation) -> np.ndarray:
        """v_j(S) for every bundle; rejects valuations the welfare maths cannot use."""
        out = np.empty(self.size, dtype=np.float64)
        for mask, bundle in enumerate(self.bundles):
            value = valuation(bundle)
            try:
                out[mask] = float(value)
            except (TypeError, ValueError):
                raise MechanismError(
                    f"valuation of bidder {bidder!r} returned {value!r} for {format_bundle(self.tuple_of(mask))}; "
                    "a valuation must return a number"
                ) from None
        bad = np.flatnonzero(~np.isfinite(out))
        if bad.size:
            mask = int(bad[0])
            raise MechanismError(
                f"valuation of bidder {bidder!r} is {out[mask]} for {format_bundle(self.tuple_of(mask))}; "
                "valuations must be finite"
            )
        # v(empty) = 0 is part of the model (docs/models/auction.md#ca-4-3); a constant offset would silently
        # shift welfare.
        if not math.isclose(out[0], 0.0, abs_tol=1e-9 * max(1.0, float(np.max(np.abs(out))))):
            raise MechanismError(
                f"valuation of bidder {bidder!r} gives v(empty bundle) = {out[0]:.10g}; valuations must have v(empty) = 0"
            )
        out[0] = 0.0
        return out

    def submask_blocks(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per popcount k: the masks S with |S| = k and a (2^k, C(m,k)) array of their submasks T.

        Row r of the array is T = pdep(r, S), which is increasing in r, so row order is ascending T
        and argmax along rows breaks ties towards the smallest T. Grouping by k bounds the memory
        of one block to 2^k C(m,k) entries instead of all 3^m pairs at once.
        """
        if self._submasks is None:
            blocks = []
            for k in range(self.m + 1):
                sets = self.masks[self.popcount == k]
                positions = np.zeros((sets.size, k), dtype=np.int64)
                rest = sets.copy()
                for col in range(k):
                    low = rest & -rest
                    positions[:, col] = low
                    rest ^= low
                r = np.arange(1 << k, dtype=np.int64)
                subs = np.zeros((1 << k, sets.size), dtype=np.int64)
                for col in range(k):
                    subs += ((r >> col) & 1)[:, None] * positions[None, :, col]
                blocks.append((sets, subs))
            self._submasks = blocks
        return self._submasks


def format_bundle(bundle: Iterable[str]) -> str:
    return "{" + ", ".join(bundle) + "}"


def format_number(x: float) -> str:
    return f"{x:.10g}"


def _efficient_from_values(space: _BundleSpace, values: Mapping[str, np.ndarray]) -> EfficientAllocation:
    # W_j[S] = max_{T subset S} W_{j-1}[S \ T] + v_j(T) with W_0 = 0 everywhere, so products may stay
    # unsold (this matters when some v_j(T) < 0). Ties go to the smallest T of the later bidder,
    # i.e. towards earlier bidders and towards leaving products unassigned.
    w = np.zeros(space.size, dtype=np.float64)
    choices: list[np.ndarray] = []
    for v in values.values():
        w_new = np.empty_like(w)
        choice = np.empty(space.size, dtype=np.int64)
        for sets, subs in space.submask_blocks():
            cand = w[sets[None, :] ^ subs] + v[subs]
            best = np.argmax(cand, axis=0)
            cols = np.arange(sets.size)
            w_new[sets] = cand[best, cols]
            choice[sets] = subs[best, cols]
        choices.append(choice)
        w = w_new
    full = space.size - 1
    allocation: dict[str, tuple[str, ...]] = {}
    remaining = full
    for bidder, choice in zip(reversed(list(values)), reversed(choices)):
        taken = int(choice[remaining])
        allocation[bidder] = space.tuple_of(taken)
        remaining ^= taken
    allocation = {bidder: allocation[bidder] for bidder in values}
    return EfficientAllocation(welfare=float(w[full]), allocation=allocation)


def _check_size(m: int, max_products: int, what: str) -> None:
    if m > max_products:
        raise SizeLimitError(
            f"{what}: {m} products exceeds the limit of {max_products}; "
            f"pass max_products={m} or use fewer products"
        )


def efficient_allocation(
    products: Sequence[str], valuations: Mapping[str, Valuation], *, max_products: int = 12
) -> EfficientAllocation:
    """Exact max of sum_j v_j(Y_j) over disjoint bundles, by a dynamic programme over subsets, O(n 3^m).

    Deterministic: ties go to earlier bidders in ``valuations`` order and to leaving products unassigned.
    """
    _check_size(len(products), max_products, "exact welfare needs 3^m bundle pairs")
    space = _BundleSpace(products)
    values = {bidder: space.values(bidder, valuation) for bidder, valuation in valuations.items()}
    return _efficient_from_values(space, values)


def allocation_welfare(allocation: Mapping[str, Iterable[str]], valuations: Mapping[str, Valuation]) -> float:
    """sum_j v_j(Y_j) over every bidder in ``valuations``; a bidder missing from ``allocation`` gets nothing."""
    owner: dict[str, str] = {}
    for bidder, bundle in allocation.items():
        if bidder not in valuations:
            raise MechanismError(
                f"allocation names unknown bidder {bidder!r}; bidders are the keys of valuations: "
                + ", ".join(map(str, valuations))
            )
        for product in bundle:
            if product in owner:
                raise MechanismError(
                    f"product {product!r} is allocated to both {owner[product]!r} and {bidder!r}; bundles must be disjoint"
                )
            owner[product] = bidder
    total = 0.0
    for bidder, valuation in valuations.items():
        total += float(valuation(frozenset(allocation.get(bidder, ()))))
    return total
