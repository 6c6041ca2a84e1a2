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

from agents.aggregator import Aggregator
from agents.bidder import DataCenterBidder
from agents.bundle_ties import bundle_tie_policy
from agents.capacity_products import CapacityReport
from agents.dso import DSO
from agents.errors import AgentConfigError
from agents.populations import BidderDraw, draw_population
from agents.profiles import build_profile
from agents.valuations import ValuationProfile
from mechanisms.errors import MechanismError
from mechanisms.judge.certify import Certificate, certify
from mechanisms.judge.equilibrium import EquilibriumReport, check_equilibrium
from mechanisms.loop import play_round
from mechanisms.mechanism import Mechanism, MechanismSpec, Outcome, RoundResult
from mechanisms.products import Product, ProductCatalog
from mechanisms.settings import Settings
from sim.config.schema import ConfigError, ExperimentConfig
from sim.market.inputs import GridInputs, build_grid_inputs, product_catalog
from sim.random_streams import stream, stream_seed

Progress = Callable[[str], None]


class MarketModel(mesa.Model):
    """One market: the DSO's products (phase 1), the bidders and the mechanism's rounds (phase 2),
    the judgement of the outcome (phase 3). Each phase is a method below."""

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
        catalog = self._quantify(possible)
        self._register_bidders(bidder_specs, catalog)
        self.mechanism: Mechanism = self._build_mechanism(market, rules)
        # The history lives in the DataCollector's tables; the last round is kept for viewers.
        self.last_round: RoundResult | None = None
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

    # -- phase 1 ----------------------------------------------------------------------
    def _quantify(self, possible: ProductCatalog) -> ProductCatalog:
        """The DSO quantifies capacity and makes the products; the catalog valuations then name."""
        config, inputs = self.config, self.grid_inputs
        if inputs is None:
            explicit = tuple(p.product() for p in config.explicit_products or ())
            self.dso = DSO(self, products=explicit, solver=config.solver)
        else:
            self.dso = DSO(self, network=inputs.network, scenarios=inputs.scenarios, candidates=inputs.candidates,
                           settings=inputs.settings, solver=config.solver)
        theory = bool(config.product_grid and config.product_grid.theory_checks)
        self.capacity: CapacityReport = self.dso.quantify(self.progress, theory=theory)
        self.products: tuple[Product, ...] = self.capacity.products
        if not self.products:
            where = "the listed products all have" if inputs is None else "the network offers"
            raise ConfigError(f"products: {where} no capacity (below 1e-6 MW); nothing to auction")
        return ProductCatalog(offered=self.products, withheld=frozenset(p.id for p in self.capacity.withheld),
                              families=possible.families)

    # -- phase 2 ----------------------------------------------------------------------
    def _register_bidders(self, bidder_specs: list, catalog: ProductCatalog) -> None:
        """The config's bidders in config order (the alternating tie-break rule depends on it),
        then the drawn population."""
        for i, spec in enumerate(bidder_specs):
            # An aggregator is a bidder that also hands its products to its members afterwards.
            agent_class = Aggregator if spec.profile == "aggregator" else DataCenterBidder
            agent_class(self, name=spec.name, valuation=self._build_valuation(i, spec, catalog),
                        strategy=spec.chosen_strategy.build(), ties=bundle_tie_policy(spec.bundle_ties))
        self.population = self._draw_population(catalog, {spec.name for spec in bidder_specs})
        # Every bidder, aggregators included, in registration (config) order.
        self.bidders = self.agents.select(lambda agent: isinstance(agent, DataCenterBidder))

    def _build_mechanism(self, market: MechanismSpec, rules: Settings) -> Mechanism:
        try:
            return market.build([p.id for p in self.products], [b.name for b in self.bidders], rules,
                                stream(self.config.seed, "tie_break"))
        except MechanismError as error:
            # Rules that name products or bidders are checked by the engine, which knows them.
            raise ConfigError(f"{market.table}.{error}" if str(error).split(" ", 1)[0].endswith(":")
                              else f"{market.table}: {error}") from None

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
            DataCenterBidder(self, name=draw.name, valuation=valuation, strategy=population.chosen_strategy.build(),
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
        self.last_round = result
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
        for entry in result.withdrawals:
            self.datacollector.add_table_row("withdrawals", {
                "round": entry.round, "bidder": entry.bidder, "product": entry.product,
                "price": entry.price, "reoffered_at": entry.reoffered_at})
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
