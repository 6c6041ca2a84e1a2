"""One run end to end: config -> model -> auction -> checks -> run directory and printed report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from agents.dso import flexible_increment_mw
from grid.errors import GridError
from grid.solvers import check_solver
from mechanisms.errors import SizeLimitError
from mechanisms.welfare import allocation_welfare
from sim import outputs
from sim.config import ConfigError, ExperimentConfig, dump_config, effective_config, load_config
from sim.model import MarketModel
from sim.report import (
    allocation_table,
    capacity_table,
    equilibrium_text,
    payments_table,
    products_table,
    round_table,
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunResult:
    config: ExperimentConfig
    summary: dict[str, Any]
    files: dict[str, bytes]
    report: str


def _capacity_summary(model: MarketModel) -> dict[str, Any] | None:
    cap = model.capacity
    if cap.firm is None or cap.flexible is None or model.grid_inputs is None:
        return None
    buses = []
    for bus, demand in sorted(cap.demand_mw.items(), key=lambda kv: model.grid_inputs.network.bus_index(kv[0])):
        firm = cap.firm.capacity_mw[bus]
        flexible = cap.flexible.capacity_mw[bus]
        buses.append(
            {
                "bus": bus,
                "demand_mw": demand,
                "firm_mw": firm,
                "flexible_mw": flexible,
                "increment_mw": flexible_increment_mw(firm, flexible),
            }
        )
    return {
        "case": model.grid_inputs.network.name,
        "scenarios": model.grid_inputs.scenarios.count,
        "risk_level": model.config.risk_level,
        "buses": buses,
        "firm_unserved_ratio": cap.firm.unserved_ratio,
        "flexible_unserved_ratio": cap.flexible.unserved_ratio,
        "firm_binding": list(cap.firm.binding),
        "flexible_binding": list(cap.flexible.binding),
    }


def build_summary(model: MarketModel) -> dict[str, Any]:
    outcome = model.auction.outcome()
    valuations = model.valuations
    bundles = outcome.bundles()
    try:
        report = model.judge()
        equilibrium: dict[str, Any] = {"checked": True, **report.as_dict()}
        welfare, efficient = report.welfare, report.efficient_welfare
    except SizeLimitError:
        limit = model.config.equilibrium.max_products
        reason = (
            f"the exact check enumerates 2^m bundles: {len(model.products)} products exceed "
            f"[equilibrium] max_products = {limit} (at most 16)"
        )
        equilibrium = {"checked": False, "reason": reason, "holds": None, "holds_true_valuations": None}
        welfare, efficient = allocation_welfare(bundles, valuations), None
    return {
        "seed": model.config.seed,
        "solver": model.config.solver,
        "units": {"capacity": "MW", "money": "$"},
        "products": [p.as_dict() for p in model.products],
        "withheld_products": [p.as_dict() for p in model.capacity.withheld],
        "capacity": _capacity_summary(model),
        "allocation": outcome.allocation,
        "prices": outcome.prices,
        "payments": outcome.payments,
        "bundles": {bidder: list(items) for bidder, items in bundles.items()},
        "values": {bidder: valuations[bidder](bundles[bidder]) for bidder in bundles},
        "rounds": outcome.rounds_with_bids,
        "rounds_run": outcome.rounds_run,
        "closed_by": outcome.closed_by,
        "welfare": welfare,
        "efficient_welfare": efficient,
        "equilibrium": equilibrium,
    }


def _table_rows(model: MarketModel) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    collector = model.datacollector
    bids = collector.get_table_dataframe("bids").to_dict("records")
    rounds = collector.get_table_dataframe("rounds").to_dict("records")
    return bids, rounds


def render_report(summary: dict[str, Any], bids: list[dict[str, Any]], rounds: list[dict[str, Any]]) -> str:
    sections = []
    if summary["capacity"] is not None:
        cap = summary["capacity"]
        sections.append(
            f"Capacity on '{cap['case']}' ({cap['scenarios']} scenarios, risk level {cap['risk_level']:g}):\n"
            + capacity_table(cap["buses"])
        )
    sections.append("Products:\n" + products_table(summary["products"]))
    if summary["withheld_products"]:
        ids = ", ".join(p["id"] for p in summary["withheld_products"])
        sections.append(f"Withheld (no capacity): {ids}")
    bidders = list(summary["payments"])
    closing = (
        "the auction closed after a round without new bids"
        if summary["closed_by"] == "no_new_bids"
        else f"the auction was stopped at max_rounds = {summary['rounds_run']} while bids were still coming"
    )
    sections.append(
        f"Rounds ({summary['rounds']} with bids; {closing}):\n" + round_table(bids, rounds, bidders)
    )
    products = [p["id"] for p in summary["products"]]
    sections.append("Final allocation:\n" + allocation_table(products, summary["allocation"], summary["prices"]))
    sections.append("Payments:\n" + payments_table(summary["bundles"], summary["payments"], summary["values"]))
    sections.append(equilibrium_text(summary))
    return "\n\n".join(sections)


def run_experiment(
    config_path: Path,
    out: Path,
    *,
    seed: int | None = None,
    solver: str | None = None,
    force: bool = False,
    progress: Progress = lambda _: None,
) -> RunResult:
    config = load_config(config_path, {"seed": seed, "solver": solver})
    outputs.check_out_dir(out, force)  # fail before the expensive part, not after
    if config.network is not None:
        check_solver(config.solver)
    try:
        model = MarketModel(config, base_dir=config_path.parent, progress=progress)
    except (ConfigError, GridError) as error:
        # Name the config, as the schema errors do; the error class (and exit code) stays.
        raise type(error)(f"{config_path}: {error}") from None
    model.run_auction()
    summary = build_summary(model)
    bids, rounds = _table_rows(model)

    files: dict[str, bytes] = {}
    csv_name = None
    if model.grid_inputs is not None and model.grid_inputs.scenarios_csv is not None:
        # Ship the scenarios with the run so that config.toml re-runs from the run directory.
        csv_name = outputs.SCENARIOS
        files[csv_name] = model.grid_inputs.scenarios_csv.read_bytes()
    files[outputs.CONFIG] = dump_config(effective_config(config, scenarios_csv=csv_name)).encode("utf-8")
    files[outputs.SUMMARY] = outputs.json_bytes(summary)
    files[outputs.PRODUCTS] = outputs.csv_bytes(outputs.PRODUCT_COLUMNS, summary["products"])
    if summary["capacity"] is not None:
        files[outputs.CAPACITY] = outputs.csv_bytes(outputs.CAPACITY_COLUMNS, summary["capacity"]["buses"])
    files[outputs.BIDS] = outputs.csv_bytes(outputs.BID_COLUMNS, bids)
    files[outputs.ROUNDS] = outputs.csv_bytes(outputs.ROUND_COLUMNS, rounds)
    outputs.write_run_directory(out, files, force=force)
    return RunResult(config=config, summary=summary, files=files, report=render_report(summary, bids, rounds))
