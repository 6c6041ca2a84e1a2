"""Rules that settle equal highest new bids on a product, chosen by name.

`alternating` (default) reproduces the paper's alternating priority (docs/models/auction.md#ca-4-2): a pointer over
the bidders in config order is reset to the first bidder each round; for each tied product, in
product order, the first tied bidder at or after the pointer wins, and the pointer moves past
the winner. `random` draws the winner uniformly from a seeded stream. `first_bid` gives every
tie to the tied bidder listed first in the config, every round, with no rotation (a fixed
priority order, as an auctioneer ranking bidders by registration time would).
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from mechanisms.errors import MechanismError


class TieBreaker(Protocol):
    def start_round(self) -> None: ...

    def choose(self, product: str, tied: Sequence[str]) -> str: ...


class AlternatingPriority:
    def __init__(self, bidders: Sequence[str]) -> None:
        self._rank = {b: i for i, b in enumerate(bidders)}
        self._count = len(bidders)
        self._pointer = 0

    def start_round(self) -> None:
        self._pointer = 0

    def choose(self, product: str, tied: Sequence[str]) -> str:
        # Distance from the pointer, wrapping round the bidder list.
        winner = min(tied, key=lambda b: (self._rank[b] - self._pointer) % self._count)
        self._pointer = (self._rank[winner] + 1) % self._count
        return winner


class RandomPriority:
    def __init__(self, bidders: Sequence[str], rng: np.random.Generator) -> None:
        self._rank = {b: i for i, b in enumerate(bidders)}
        self._rng = rng

    def start_round(self) -> None:
        pass

    def choose(self, product: str, tied: Sequence[str]) -> str:
        # Sort first so the draw depends on the seed only, not on the order bids arrived in.
        ordered = sorted(tied, key=self._rank.__getitem__)
        return ordered[int(self._rng.integers(len(ordered)))]


class FirstBidderPriority:
    """`first_bid`: the tied bidder earliest in config order wins, whatever it won before."""

    def __init__(self, bidders: Sequence[str]) -> None:
        self._rank = {b: i for i, b in enumerate(bidders)}

    def start_round(self) -> None:
        pass

    def choose(self, product: str, tied: Sequence[str]) -> str:
        return min(tied, key=self._rank.__getitem__)


TIE_BREAK_RULES: tuple[str, ...] = ("alternating", "random", "first_bid")


def make_tie_breaker(name: str, bidders: Sequence[str], rng: np.random.Generator | None) -> TieBreaker:
    if name == "alternating":
        return AlternatingPriority(bidders)
    if name == "random":
        if rng is None:
            raise MechanismError("tie_break 'random' needs a seeded random generator")
        return RandomPriority(bidders, rng)
    if name == "first_bid":
        return FirstBidderPriority(bidders)
    raise MechanismError(f"unknown tie_break {name!r}; choose one of {', '.join(TIE_BREAK_RULES)}")
