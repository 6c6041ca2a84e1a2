"""The Mesa market model: quantify capacity, sell it round by round, judge the outcome.

Phase 1 (when the model is built): the DSO turns the network and background-load scenarios
into products. Phase 2: model step k is round k of the chosen mechanism (the SAA by default,
`[mechanism] kind`); the bidders drop their sealed messages into the ballot box and the
mechanism resolves them; the DataCollector keeps the messages and standings. Phase 3 (`judge`):
the equilibrium and welfare checks on the final outcome, whatever the mechanism.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import mesa
import numpy as np

from agents.aggregator import Aggregator
from agents.bidder import DataCenterBidder
from agents.bundle_ties import bundle_tie_policy
from agents.dso import DSO, CapacityReport, ProductSettings, possible_families
from agents.errors import AgentConfigError
from agents.populations import BidderDraw, draw_population
from agents.profiles import build_profile
from agents.strategies import make_strategy
from agents.valuations import ValuationProfile
from grid.capacity.candidates import Candidates, make_candidates
from grid.capacity.study import check_tail
from grid.errors import GridError
from grid.load.files import read_correlation_csv, read_scenarios_file
from grid.load.scenarios import (
    BaseLoadSpread,
    CorrelatedSpread,
    Scenarios,
    TruncatedNormalLoad,
    sample_base_load,
    sample_correlated,
    sample_truncated_normal,
)
from grid.memory_guard import check_scenario_memory
from grid.network.cases import CaseOptions, load_case
from grid.network.network import Network
from mechanisms.errors import MechanismError
from mechanisms.judge.certify import Certificate, certify
from mechanisms.judge.equilibrium import EquilibriumReport, check_equilibrium
from mechanisms.loop import play_round
from mechanisms.mechanism import Mechanism, Outcome, RoundResult
from mechanisms.products import Product, ProductCatalog
from sim.config.schema import ConfigError, ExperimentConfig, NetworkConfig, SpreadConfig
from sim.random_streams import stream, stream_seed

Progress = Callable[[str], None]


@dataclass(frozen=True)
class GridInputs:
    network: Network
    scenarios: Scenarios
    candidates: Candidates
    settings: ProductSettings
    # Files the run read besides the config (scenarios, correlation matrix, a case file or
    # folder), by role, so that the run directory can carry copies and re-run on its own.
    input_files: dict[str, Path]
    # Draws more scenarios like ``scenarios`` (the risk check's fresh ones); None when they came
    # from a file, which is all there is.
    sampler: "ScenarioSampler | None" = None


def _case_options(network: NetworkConfig) -> CaseOptions:
    return CaseOptions(
        default_rating_mw=network.default_rating_mw,
        rating_margin=network.rating_margin,
        slack=network.slack,
        import_limit_mw=network.import_limit_mw,
        withdrawal_limit_mw=network.withdrawal_limit_mw,
    )


def _candidates(config: NetworkConfig, network: Network) -> Candidates:
    """Candidate buses: listed, or the keys of a demand table, or every load bus of the case."""
    if config.candidate_buses is not None:
        buses, field = list(config.candidate_buses), "network.candidate_buses"
    elif isinstance(config.demand_mw, dict):
        buses, field = list(config.demand_mw), "network.demand_mw"
    else:
        buses, field = list(network.load_buses), "network.candidate_buses"
        if not buses:
            raise ConfigError(f"{field}: case '{network.name}' has no load buses; list candidate_buses")
    for i, bus in enumerate(buses):
        if not network.has_bus(bus):
            where = f"{field}[{i}]" if field.endswith("candidate_buses") else f"{field}.{bus}"
            raise ConfigError(f"{where}: {_unknown_bus(bus, network)}")
    demand = config.demand_mw
    table = demand if isinstance(demand, dict) else {bus: float(demand) for bus in buses}
    try:
        return make_candidates(network, {bus: table[bus] for bus in buses})
    except GridError as error:
        raise ConfigError(f"network.demand_mw: {error}") from None


ScenarioSampler = Callable[[int, np.random.Generator], Scenarios]


def scenario_sampler(config: ExperimentConfig, network: Network, base_dir: Path,
                     files: dict[str, Path]) -> ScenarioSampler | Scenarios:
    """What [load] describes, checked and read once: a sampler ``(count, rng) -> Scenarios`` for
    a distribution, or the Scenarios of a scenarios_csv file itself. Files read are recorded in
    ``files``; the risk check calls the sampler chunk after chunk without reading them again."""
    load = config.load
    assert load is not None
    if load.scenarios_csv is not None:
        path = (base_dir / load.scenarios_csv).resolve()
        files["scenarios"] = path
        try:
            return read_scenarios_file(path, network)
        except GridError as error:
            raise ConfigError(f"load.scenarios_csv: {error}") from None
    if load.buses is not None:
        for bus in load.buses:
            if not network.has_bus(bus):
                raise ConfigError(f"load.buses.{bus}: {_unknown_bus(bus, network)}")
        base: BaseLoadSpread | dict[int, TruncatedNormalLoad] = {
            bus: TruncatedNormalLoad(mean_mw=b.mean, variance_mw2=b.variance, lower_mw=b.lower, upper_mw=b.upper)
            for bus, b in load.buses.items()
        }
    else:
        if not any(bus.base_load_mw for bus in network.buses):
            raise ConfigError(
                f"load: case '{network.name}' has no base loads to vary; give [load.buses] distributions "
                "or a scenarios_csv"
            )
        spread = load.spread or SpreadConfig()
        base = BaseLoadSpread(sd_fraction=spread.sd_fraction, truncation_sd=spread.truncation_sd)
    matrix = None
    if load.correlation_csv is not None:
        path = (base_dir / load.correlation_csv).resolve()
        files["correlation"] = path
        try:
            matrix = read_correlation_csv(path, network)
        except GridError as error:
            raise ConfigError(f"load.correlation_csv: {error}") from None
    try:
        if load.correlation is not None or matrix is not None:
            correlated = CorrelatedSpread(base, correlation=load.correlation, matrix=matrix)
            return lambda count, rng: sample_correlated(network, correlated, count, rng)
        if isinstance(base, BaseLoadSpread):
            spread_model = base
            return lambda count, rng: sample_base_load(network, spread_model, count, rng)
        loads = base
        return lambda count, rng: sample_truncated_normal(network, loads, count, rng)
    except GridError as error:
        raise ConfigError(f"load: {error}") from None


def sample_checked(sampler: ScenarioSampler, network: Network, count: int, rng: np.random.Generator,
                   field: str) -> Scenarios:
    """Draw ``count`` scenarios after the memory guard; errors name ``field``."""
    try:
        check_scenario_memory(network, count)
    except GridError as error:
        raise ConfigError(f"{field}: {error}") from None
    try:
        return sampler(count, rng)
    except GridError as error:
        raise ConfigError(f"load: {error}") from None


def build_grid_inputs(config: ExperimentConfig, base_dir: Path) -> GridInputs:
    """Network, candidates and scenarios from the config, with references checked against the network."""
    assert config.network is not None and config.load is not None and config.product_grid is not None
    files: dict[str, Path] = {}
    case = config.network.case
    case_path = (base_dir / case)
    if case_path.exists():
        files["case"] = case_path.resolve()
    try:
        network = load_case(case, _case_options(config.network), base_dir=base_dir)
    except GridError as error:
        raise ConfigError(f"network.case: {error}") from None
    candidates = _candidates(config.network, network)
    sampler = scenario_sampler(config, network, base_dir, files)
    if isinstance(sampler, Scenarios):
        scenarios, sampler = sampler, None
        try:
            check_tail(config.product_grid.risk_levels, scenarios.count, "products.risk_levels")
        except GridError as error:
            raise ConfigError(f"load.scenarios_csv: {config.load.scenarios_csv}: {error}") from None
    else:
        assert config.load.scenarios is not None
        scenarios = sample_checked(sampler, network, config.load.scenarios, stream(config.seed, "scenarios"),
                                   "load.scenarios")
    grid = config.product_grid
    settings = ProductSettings(
        risk_levels=tuple(sorted(grid.risk_levels)),
        risk_mode=grid.risk_mode,
        formulation=grid.formulation,
        block_mw=grid.block_mw,
        touch_factor=grid.touch_factor,
        firm_budget=grid.firm_budget,
    )
    return GridInputs(network, scenarios, candidates, settings, files, sampler)


def _unknown_bus(bus: int, network: Network) -> str:
    buses = network.bus_numbers
    shown = ", ".join(str(b) for b in buses[:20]) + (f", ... ({len(buses)} buses)" if len(buses) > 20 else "")
    return f"unknown bus {bus}; case '{network.name}' has buses {shown}"


def product_catalog(config: ExperimentConfig, grid: GridInputs | None) -> ProductCatalog:
    """What valuations may name before any capacity is computed (see ProductCatalog)."""
    if config.explicit_products is not None:
        return ProductCatalog(offered=tuple(
            Product(p.id, p.bus, p.risk, p.capacity_mw) for p in config.explicit_products
        ))
    assert grid is not None
    return ProductCatalog(families=frozenset(possible_families(grid.candidates.buses, grid.settings.risk_levels)))


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
        market, rules, bidder_specs = config.require_market()
        # Network, candidates and scenarios first, so a bad bus is reported as such.
        self.grid_inputs: GridInputs | None = None
        if config.explicit_products is None:
            progress("network and background scenarios")
            self.grid_inputs = build_grid_inputs(config, base_dir)
        # Valuations are checked against every product the config can produce before any LP is
        # solved, so a typo fails in milliseconds, not after the capacity models.
        possible = product_catalog(config, self.grid_inputs)
        for i, spec in enumerate(bidder_specs):
            self._build_valuation(i, spec, possible)

        # Phase 1: quantify capacity and make products.
        if self.grid_inputs is None:
            explicit = tuple(Product(p.id, p.bus, p.risk, p.capacity_mw) for p in config.explicit_products or ())
            self.dso = DSO(self, products=explicit, solver=config.solver)
        else:
            self.dso = DSO(
                self,
                network=self.grid_inputs.network,
                scenarios=self.grid_inputs.scenarios,
                candidates=self.grid_inputs.candidates,
                settings=self.grid_inputs.settings,
                solver=config.solver,
            )
        theory = bool(config.product_grid and config.product_grid.theory_checks)
        self.capacity: CapacityReport = self.dso.quantify(progress, theory=theory)
        self.products: tuple[Product, ...] = self.capacity.products
        if not self.products:
            where = "the listed products all have" if self.grid_inputs is None else "the network offers"
            raise ConfigError(f"products: {where} no capacity (below 1e-6 MW); nothing to auction")
        product_ids = [p.id for p in self.products]
        catalog = ProductCatalog(
            offered=self.products,
            withheld=frozenset(p.id for p in self.capacity.withheld),
            families=possible.families,
        )

        # Bidders, in config order (the alternating tie-break rule depends on it).
        for i, spec in enumerate(bidder_specs):
            # An aggregator is a bidder that also hands its products to its members afterwards.
            agent_class = Aggregator if spec.profile == "aggregator" else DataCenterBidder
            agent_class(
                self,
                name=spec.name,
                valuation=self._build_valuation(i, spec, catalog),
                strategy=make_strategy(spec.strategy),
                ties=bundle_tie_policy(spec.bundle_ties),
            )
        self.population = self._draw_population(catalog, {spec.name for spec in bidder_specs})
        # Every bidder, aggregators included, in registration (config) order.
        self.bidders = self.agents.select(lambda agent: isinstance(agent, DataCenterBidder))

        try:
            self.mechanism: Mechanism = market.build(
                product_ids, [b.name for b in self.bidders], rules, stream(config.seed, "tie_break")
            )
        except MechanismError as error:
            # Rules that name products or bidders are checked by the engine, which knows them.
            raise ConfigError(f"{market.table}.{error}" if str(error).split(" ", 1)[0].endswith(":")
                              else f"{market.table}: {error}") from None
        self.round_results: list[RoundResult] = []
        self._withdrawals_logged = 0
        self._ballot: list = []
        self.posted_state = self.mechanism.state()
        self.datacollector = mesa.DataCollector(
            tables={
                "bids": ["round", "bidder", "product", "amount"],
                "rounds": ["round", "product", "standing_bidder", "standing_price"],
                # SAA bid withdrawals (FCC rule), when the rules allow them.
                "withdrawals": ["round", "bidder", "product", "price", "reoffered_at"],
            }
        )

    def _draw_population(self, catalog: ProductCatalog, taken: set[str]) -> list[BidderDraw]:
        """The [population] bidders, drawn from their own stream after the products are known."""
        population = self.config.population
        if population is None:
            return []
        try:
            draws = draw_population(catalog, population.count, population.shares(),
                                    stream(self.config.seed, "population"))
        except AgentConfigError as error:
            raise ConfigError(f"population: {error}") from None
        for draw in draws:
            if draw.name in taken:
                raise ConfigError(f"population: drawn bidder {draw.name!r} clashes with a [[bidders]] name; rename it")
            try:
                valuation = build_profile(draw.profile, draw.fields, catalog)
            except AgentConfigError as error:
                raise ConfigError(f"population ({draw.name}, {draw.profile}): {error}") from None
            DataCenterBidder(self, name=draw.name, valuation=valuation, strategy=make_strategy(population.strategy),
                             ties=bundle_tie_policy(population.bundle_ties))
        return draws

    @staticmethod
    def _build_valuation(index: int, spec, catalog: ProductCatalog):
        try:
            return build_profile(spec.profile, spec, catalog)
        except AgentConfigError as error:
            raise ConfigError(f"bidders[{index}].{error}") from None

    # -- phase 2 ----------------------------------------------------------------------
    def submit_bids(self, messages: Iterable) -> None:
        self._ballot.extend(messages)

    def _collect(self, state) -> list:
        """The loop's ``respond``: post the state, let every bidder drop its messages."""
        self._ballot = []
        self.posted_state = state
        self.bidders.shuffle_do("step")
        return self._ballot

    def step(self) -> None:
        if not self.running:  # a closed auction has no more rounds (a viewer may step on)
            return
        result = play_round(self.mechanism, self._collect)
        self.round_results.append(result)
        for bid in result.bids:
            self.datacollector.add_table_row(
                "bids", {"round": result.round, "bidder": bid.bidder, "product": bid.product, "amount": bid.amount}
            )
        for product in self.mechanism.products:
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
        withdrawn = getattr(self.mechanism, "withdrawal_log", [])
        for entry in withdrawn[self._withdrawals_logged:]:
            self.datacollector.add_table_row("withdrawals", {
                "round": entry.round, "bidder": entry.bidder, "product": entry.product,
                "price": entry.price, "reoffered_at": entry.reoffered_at})
        self._withdrawals_logged = len(withdrawn)
        self.progress(f"round {result.round}: {len(result.bids)} new bids")
        if result.closed:
            self.running = False

    def run_auction(self) -> Outcome:
        while self.running:
            self.step()
        return self.mechanism.outcome()

    # -- phase 3 ----------------------------------------------------------------------
    @property
    def valuations(self) -> dict[str, ValuationProfile]:
        """Bidder name -> valuation, in config order (the AgentSet keeps insertion order)."""
        return {b.name: b.valuation for b in self.bidders}

    def judge(self) -> Judgement:
        """The certificates of the outcome (any size), and the exact bundle tables when the
        market is small enough to enumerate ([equilibrium] max_products)."""
        outcome = self.mechanism.outcome()
        products = list(self.mechanism.products)
        step = self.mechanism.price_step
        certificate = certify(products, self.valuations, outcome.allocation, outcome.prices, step)
        limit = self.config.equilibrium.max_products
        if len(products) > limit:
            reason = (f"the bundle tables enumerate 2^m bundles: {len(products)} products exceed "
                      f"[equilibrium] max_products = {limit} (at most 16)")
            return Judgement(certificate, None, reason)
        tables = check_equilibrium(products, self.valuations, outcome.allocation, outcome.prices, step,
                                   max_products=limit)
        return Judgement(certificate, tables, None)


@dataclass(frozen=True)
class Judgement:
    certificate: Certificate
    tables: EquilibriumReport | None     # the exact enumeration (small markets)
    tables_skipped: str | None
