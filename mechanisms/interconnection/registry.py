"""Allocation regimes by name (config ``[regime] kind``): each declares its rule table and how to build it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from mechanisms.errors import MechanismError
from mechanisms.interconnection.auction_regime import AuctionRegime, AuctionRegimeRules
from mechanisms.interconnection.batch_regime import BatchRegime, BatchRegimeRules
from mechanisms.interconnection.queue_regime import QueueRegime, QueueRegimeRules
from mechanisms.interconnection.requests import Regime
from mechanisms.settings import Settings


@dataclass(frozen=True)
class RegimeSpec:
    kind: str
    rules: type[Settings]
    build: Callable[[Settings], Regime]
    summary: str


REGIMES: dict[str, RegimeSpec] = {spec.kind: spec for spec in (
    RegimeSpec("queue", QueueRegimeRules, QueueRegime,  # type: ignore[arg-type]
               "first come, first served: studies in arrival order, serial or in clusters"),
    RegimeSpec("batch", BatchRegimeRules, BatchRegime,  # type: ignore[arg-type]
               "every large request studied together at stated dates, the headroom shared by a stated rule"),
    RegimeSpec("auction", AuctionRegimeRules, AuctionRegime,  # type: ignore[arg-type]
               "periodic auctions: each bus's headroom sold to the pending requests every few cycles"),
)}


def regime_spec(kind: str) -> RegimeSpec:
    try:
        return REGIMES[kind]
    except KeyError:
        raise MechanismError(f"regime.kind: unknown regime {kind!r}; choose one of {', '.join(REGIMES)}") from None
