"""What a config's [network], [load] and [products] tables become before any bidder exists: the
network, the candidate buses, the background-load scenarios (or their sampler) and the product
settings, with every reference checked against the network. The Mesa model and the capacity
study (which uses no Mesa) both start here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from agents.capacity_products import ProductSettings, possible_families
from grid.capacity.inputs.candidates import Candidates, make_candidates
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
from grid.network.cases import load_case
from grid.network.change_tables import shipped_contingency_lines
from grid.network.network import Network
from mechanisms.products import ProductCatalog
from sim.config.schema import ConfigError, ExperimentConfig, NetworkConfig, SpreadConfig
from sim.random_streams import stream


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
            bus: b.distribution() for bus, b in load.buses.items()
        }
    else:
        if not any(bus.base_load_mw for bus in network.buses):
            raise ConfigError(
                f"load: case '{network.name}' has no base loads to vary; give [load.buses] distributions "
                "or a scenarios_csv"
            )
        base = (load.spread or SpreadConfig()).spread()
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
        network = load_case(case, config.network.case_options(), base_dir=base_dir)
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
    settings = config.product_grid.product_settings(config.security)
    return GridInputs(network, scenarios, candidates, _with_contingencies(settings, config, network, base_dir), files,
                      sampler)


def _with_contingencies(settings: ProductSettings, config: ExperimentConfig, network: Network,
                        base_dir: Path) -> ProductSettings:
    """Under N-1 with ``contingencies = "case"``: the case's own list, where it ships one."""
    assert config.network is not None
    if settings.criteria.outages != "n-1" or config.security.contingencies != "case":
        return settings
    try:
        shipped = shipped_contingency_lines(network, config.network.case, base_dir)
    except GridError as error:
        raise ConfigError(f"security.contingencies: {error}") from None
    if shipped is None:
        return settings
    lines, source = shipped
    criteria = dataclasses.replace(settings.criteria, outage_lines=lines, outage_source=source)
    return dataclasses.replace(settings, criteria=criteria)


def _unknown_bus(bus: int, network: Network) -> str:
    buses = network.bus_numbers
    shown = ", ".join(str(b) for b in buses[:20]) + (f", ... ({len(buses)} buses)" if len(buses) > 20 else "")
    return f"unknown bus {bus}; case '{network.name}' has buses {shown}"


def product_catalog(config: ExperimentConfig, grid: GridInputs | None) -> ProductCatalog:
    """What valuations may name before any capacity is computed (see ProductCatalog)."""
    if config.explicit_products is not None:
        return ProductCatalog(offered=tuple(p.product() for p in config.explicit_products))
    assert grid is not None
    return ProductCatalog(families=frozenset(possible_families(grid.candidates.buses, grid.settings.risk_levels)))
