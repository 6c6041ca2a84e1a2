"""A Mesa-free driver for tests: straightforward bidders against the pure SAA engine."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from agents.bundle_ties import bundle_tie_policy
from agents.strategies import Participant, Straightforward, respond_all
from agents.valuations import ValuationProfile
from mechanisms.engines.saa import AuctionRules, SimultaneousAscendingAuction
from mechanisms.loop import run_to_close
from mechanisms.mechanism import RoundResult

PAPER_PRODUCTS = ("firm@3", "flex@3", "firm@4", "flex@4")  # the paper's items 1-4


def simulate(
    products: Sequence[str],
    bidders: Sequence[tuple[str, ValuationProfile]],
    rules: AuctionRules,
    *,
    ties: str = "paper",
    rng: np.random.Generator | None = None,
) -> tuple[SimultaneousAscendingAuction, list[RoundResult]]:
    auction = SimultaneousAscendingAuction(products, [name for name, _ in bidders], rules, rng=rng)
    policy = bundle_tie_policy(ties)
    participants = [Participant(name, valuation, Straightforward(), policy) for name, valuation in bidders]
    results: list[RoundResult] = []
    run_to_close(auction, respond_all(participants), results.append)
    return auction, results


def round_log(results: Sequence[RoundResult]) -> list[tuple[dict[str, tuple[set[str], float]], dict[str, tuple[str, float]]]]:
    """Per round: bidder -> (products bid, amount), and product -> (holder, price) after the round."""
    log = []
    for result in results:
        bids: dict[str, tuple[set[str], float]] = {}
        for bid in result.bids:
            products, _ = bids.get(bid.bidder, (set(), bid.amount))
            products.add(bid.product)
            bids[bid.bidder] = (products, bid.amount)
        standings = {p: (s.bidder, s.price) for p, s in result.standings.items() if s is not None}
        log.append((bids, standings))
    return log
