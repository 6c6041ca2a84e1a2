"""Which of several equally good bundles a bidder bids on, chosen by name.

Straightforward bidding (docs/models/auction.md#ca-4-2) says to bid on *a* bundle in the demand set; the
paper does not say which when several tie (docs/models/auction.md#ca-7-11). Each rule here is a lexicographic
order on bundles, given the products the bidder already holds (H) and product order:

- `largest`:    most products, then fewest new products (S minus H), then lowest product indices
- `smallest`:   fewest products, then fewest new products, then lowest product indices
- `fewest_new`: fewest new products, then lowest product indices of the new products
- `paper` (default): `largest` in the opening round, `fewest_new` afterwards. This reproduces
  Tables III and V up to the paper's arbitrary round-3 pick in Example 2
  (docs/models/auction.md#ca-6-2).

Only the new products matter for the bids, so "lowest product indices" compares the sorted
indices of S minus H lexicographically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from agents.errors import AgentConfigError

BundleKey = tuple


@dataclass(frozen=True)
class BundleRule:
    """One lexicographic order; `size_sign` is -1 to prefer larger, +1 smaller, 0 to ignore size."""

    size_sign: int

    def key(self, bundle: frozenset[str], held: frozenset[str], rank: Mapping[str, int]) -> BundleKey:
        new = sorted(rank[p] for p in bundle - held)
        return (self.size_sign * len(bundle), len(new), tuple(new))

    def best(self, bundles: Iterable[frozenset[str]], held: frozenset[str], rank: Mapping[str, int]) -> frozenset[str]:
        return min(bundles, key=lambda s: self.key(s, held, rank))


LARGEST = BundleRule(size_sign=-1)
SMALLEST = BundleRule(size_sign=1)
FEWEST_NEW = BundleRule(size_sign=0)


@dataclass(frozen=True)
class BundleTiePolicy:
    name: str
    opening: BundleRule
    later: BundleRule

    def rule(self, round_number: int) -> BundleRule:
        return self.opening if round_number == 1 else self.later


BUNDLE_TIE_POLICIES: dict[str, BundleTiePolicy] = {
    "paper": BundleTiePolicy("paper", opening=LARGEST, later=FEWEST_NEW),
    "largest": BundleTiePolicy("largest", opening=LARGEST, later=LARGEST),
    "smallest": BundleTiePolicy("smallest", opening=SMALLEST, later=SMALLEST),
    "fewest_new": BundleTiePolicy("fewest_new", opening=FEWEST_NEW, later=FEWEST_NEW),
}


def bundle_tie_policy(name: str) -> BundleTiePolicy:
    try:
        return BUNDLE_TIE_POLICIES[name]
    except KeyError:
        raise AgentConfigError(
            f"unknown bundle_ties {name!r}; choose one of {', '.join(BUNDLE_TIE_POLICIES)}"
        ) from None
