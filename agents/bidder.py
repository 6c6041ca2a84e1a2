"""Data-center developers who bid for grid capacity."""

from __future__ import annotations

import mesa

from agents.bundle_ties import BundleTiePolicy
from agents.strategies import BiddingStrategy
from agents.valuations import ValuationProfile


class DataCenterBidder(mesa.Agent):
    """A bidder with a private valuation profile, a bidding strategy and a bundle tie policy.

    Each model step (one auction round) it reads the state the model posted and drops its sealed
    bids into the model's ballot box; the auction engine resolves them. It never touches the
    engine's state itself.
    """

    def __init__(
        self,
        model: mesa.Model,
        name: str,
        valuation: ValuationProfile,
        strategy: BiddingStrategy,
        ties: BundleTiePolicy,
    ) -> None:
        super().__init__(model)
        self.name = name
        self.valuation = valuation
        self.strategy = strategy
        self.ties = ties

    def step(self) -> None:
        state = self.model.posted_state
        self.model.submit_bids(self.strategy.bids(self.name, self.valuation, state, self.ties))
