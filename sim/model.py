"""The Mesa market model: quantify capacity, run the auction round by round, judge the outcome.

Phase 1 (when the model is built): the DSO turns the network and background-load scenarios
into products. Phase 2: model step k is auction round k; the bidders drop sealed bids into the
ballot box and the SAA engine resolves them; the DataCollector keeps the bids and standings.
Phase 3 (`judge`): the equilibrium and welfare checks on the final outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import mesa

from agents.bidder import DataCenterBidder
from agents.bundle_ties import bundle_tie_policy
from agents.dso import DSO, CapacityReport
from agents.errors import AgentConfigError
from agents.strategies import make_strategy
from agents.valuations import ValuationProfile, build_profile
from grid.cases import load_case
from grid.errors import GridError
from grid.network import Network
from grid.scenarios import Scenarios, TruncatedNormalLoad, read_scenarios_csv, sample_truncated_normal
from mechanisms.equilibrium import EquilibriumReport, check_equilibrium
from mechanisms.products import Product, firm_id, flex_id
from mechanisms.saa import (
    AuctionOutcome,
    AuctionRules,
    AuctionState,
    Bid,
    RoundResult,
    SimultaneousAscendingAuction,
)
from sim.config import ConfigError, ExperimentConfig
from sim.random_streams import stream, stream_seed

Progress = Callable[[str], None]


@dataclass(frozen=True)
class GridInputs:
    network: Network
    scenarios: Scenarios
    scenarios_csv: Path | None  # the CSV the scenarios came from, if any


def build_grid_inputs(config: ExperimentConfig, base_dir: Path) -> GridInputs:
    """Network and scenarios from the config, with references checked against the network."""
    assert config.network is not None and config.load is not None
    try:
        network = load_case(config.network.case)
    except GridError as error:
        raise ConfigError(f"network.case: {error}") from None
    for i, bus in enumerate(config.network.candidate_buses):
        if not network.has_bus(bus):
            raise ConfigError(f"network.candidate_buses[{i}]: {_unknown_bus(bus, network)}")
    load = config.load
    if load.scenarios_csv is not None:
        csv_path = (base_dir / load.scenarios_csv).resolve()
        try:
            scenarios = read_scenarios_csv(csv_path, network)
        except GridError as error:
            raise ConfigError(f"load.scenarios_csv: {error}") from None
        return GridInputs(network, scenarios, csv_path)
    assert load.buses is not None and load.scenarios is not None
    for bus in load.buses:
        if not network.has_bus(bus):
            raise ConfigError(f"load.buses.{bus}: {_unknown_bus(bus, network)}")
    loads = {
        bus: TruncatedNormalLoad(mean_mw=b.mean, variance_mw2=b.variance, lower_mw=b.lower, upper_mw=b.upper)
        for bus, b in load.buses.items()
    }
    scenarios = sample_truncated_normal(network, loads, load.scenarios, stream(config.seed, "scenarios"))
    return GridInputs(network, scenarios, None)


def _unknown_bus(bus: int, network: Network) -> str:
    buses = ", ".join(str(b) for b in network.bus_numbers)
    return f"unknown bus {bus}; case '{network.name}' has buses {buses}"


def possible_product_ids(config: ExperimentConfig) -> list[str]:
    """Product ids the config can produce, known before any capacity is computed."""
    if config.explicit_products is not None:
        return [p.id for p in config.explicit_products]
    assert config.network is not None
    return [pid for bus in config.network.candidate_buses for pid in (firm_id(bus), flex_id(bus))]


class MarketModel(mesa.Model):
    def __init__(
        self,
        config: ExperimentConfig,
        *,
        base_dir: Path = Path("."),
        progress: Progress = lambda _: None,
    ) -> None:
        # Bids are sealed and simultaneous, so activation order must not matter; it is still
        # drawn from its own stream so that a strategy that peeks would stay reproducible.
        super().__init__(rng=stream_seed(config.seed, "activation"))
        self.config = config
        self.progress = progress
        # Network and scenarios are cheap; build them first so a bad bus is reported as such.
        self.grid_inputs: GridInputs | None = None
        if config.explicit_products is None:
            self.grid_inputs = build_grid_inputs(config, base_dir)
        # Valuations are checked against every product id the config can produce before any
        # LP is solved, so a typo fails in milliseconds, not after the capacity models.
        possible = possible_product_ids(config)
        for i, spec in enumerate(config.bidders):
            self._build_valuation(i, spec, possible, [])

        # Phase 1: quantify capacity and make products.
        if self.grid_inputs is None:
            explicit = tuple(Product(p.id, p.bus, p.risk, p.capacity_mw) for p in config.explicit_products or ())
            self.dso = DSO(self, products=explicit, solver=config.solver)
        else:
            assert config.network is not None
            self.dso = DSO(
                self,
                network=self.grid_inputs.network,
                scenarios=self.grid_inputs.scenarios,
                demand_mw=config.network.demand_mw,
                risk_level=config.risk_level,
                solver=config.solver,
            )
        self.capacity: CapacityReport = self.dso.quantify(progress)
        self.products: tuple[Product, ...] = self.capacity.products
        if not self.products:
            where = "the listed products all have" if self.grid_inputs is None else "the network offers"
            raise ConfigError(f"products: {where} no capacity (below 1e-6 MW); nothing to auction")
        product_ids = [p.id for p in self.products]
        withheld = [p.id for p in self.capacity.withheld]

        # Bidders, in config order (the alternating tie-break rule depends on it).
        for i, spec in enumerate(config.bidders):
            DataCenterBidder(
                self,
                name=spec.name,
                valuation=self._build_valuation(i, spec, product_ids, withheld),
                strategy=make_strategy(spec.strategy),
                ties=bundle_tie_policy(spec.bundle_ties),
            )
        self.bidders = self.agents_by_type[DataCenterBidder]

        rules = AuctionRules(
            increment=config.auction.increment,
            opening_bid=config.auction.opening_bid,
            tie_break=config.auction.tie_break,
            max_rounds=config.auction.max_rounds,
        )
        self.auction = SimultaneousAscendingAuction(
            product_ids, [b.name for b in config.bidders], rules, rng=stream(config.seed, "tie_break")
        )
        self.round_results: list[RoundResult] = []
        self._ballot: list[Bid] = []
        self.posted_state: AuctionState = self.auction.state()
        self.datacollector = mesa.DataCollector(
            tables={
                "bids": ["round", "bidder", "product", "amount"],
                "rounds": ["round", "product", "standing_bidder", "standing_price"],
            }
        )

    @staticmethod
    def _build_valuation(index: int, spec, offered: list[str], withheld: list[str]):
        try:
            return build_profile(spec.profile, spec.profile_params(), offered, withheld)
        except AgentConfigError as error:
            raise ConfigError(f"bidders[{index}].{error}") from None

    # -- phase 2 ----------------------------------------------------------------------
    def submit_bids(self, bids: Iterable[Bid]) -> None:
        self._ballot.extend(bids)

    def step(self) -> None:
        self._ballot = []
        # Every bidder sees the same posted state; build it once, not once per bidder.
        self.posted_state = self.auction.state()
        self.bidders.shuffle_do("step")
        result = self.auction.run_round(self._ballot)
        self.round_results.append(result)
        for bid in result.bids:
            self.datacollector.add_table_row(
                "bids", {"round": result.round, "bidder": bid.bidder, "product": bid.product, "amount": bid.amount}
            )
        for product in self.auction.products:
            standing = result.standings[product]
            self.datacollector.add_table_row(
                "rounds",
                {
                    "round": result.round,
                    "product": product,
                    "standing_bidder": standing.bidder if standing else "",
                    "standing_price": standing.price if standing else 0.0,
                },
            )
        self.progress(f"round {result.round}: {len(result.bids)} new bids")
        if result.closed:
            self.running = False

    def run_auction(self) -> AuctionOutcome:
        while self.running:
            self.step()
        return self.auction.outcome()

    # -- phase 3 ----------------------------------------------------------------------
    @property
    def valuations(self) -> dict[str, ValuationProfile]:
        """Bidder name -> valuation, in config order (the AgentSet keeps insertion order)."""
        return {b.name: b.valuation for b in self.bidders}

    def judge(self) -> EquilibriumReport:
        outcome = self.auction.outcome()
        return check_equilibrium(
            list(self.auction.products),
            self.valuations,
            outcome.allocation,
            outcome.prices,
            self.config.auction.increment,
            max_products=self.config.equilibrium.max_products,
        )
