"""One run end to end: config -> model -> auction -> checks -> run directory and printed report."""

from __future__ import annotations

import argparse
import importlib
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from agents.aggregator import Aggregator
from grid.solvers.names import check_solver
from mechanisms.registry import MECHANISMS
from sim.config.overrides import Override
from sim.config.schema import (
    ExperimentConfig,
    dump_config,
    effective_config,
    load_config,
)
from sim.errors import named_after
from sim.market.model import Judgement, MarketModel
from sim.output import files as outputs
from sim.report.capacity import (
    capacity_columns,
    capacity_rows,
    capacity_summary,
    capacity_text,
)
from sim.report.text import (
    ROUND_TABLE_MAX_LINES,
    allocation_table,
    equilibrium_text,
    payments_table,
    products_table,
    round_table,
    round_table_lines,
)
from sim.studies.after_auction import AfterAuction
from sim.studies.result import AuctionResult, StudyResult

Progress = Callable[[str], None]


# What the equilibrium verdict checked, in words (docs/studies/auction.md#reading-the-verdict).
CHECKED_PRICES = ("every bidder's bundle maximises its surplus at the final prices, allowing each bidder "
                  "one increment on every product it does not hold (8); every unsold product is priced 0")


def equilibrium_summary(judgement: Judgement, step: float, item_prices: bool = True) -> dict[str, Any]:
    """The ``equilibrium`` section of summary.json."""
    certificate, tables = judgement.certificate, judgement.tables
    out: dict[str, Any] = {
        "checked": True,
        "checked_what": CHECKED_PRICES,
        "increment": step,
        "holds": certificate.prices_form_equilibrium,
        **certificate.as_dict(),
        "tables_skipped": judgement.tables_skipped,
    }
    if not item_prices:
        # The mechanism's per-product prices only label per-bidder payments (VCG).
        out.update(holds=None, prices_form_equilibrium=None, holds_true_valuations=None, violations=[],
                   violations_true=[], violation_count=0,
                   checked_what="no item prices: the mechanism charges each winner a payment, so (7a)/(7b) "
                                "do not apply; existence and welfare are still certified")
    if tables is not None:
        # The exact enumeration: every maximiser, and the efficient allocation with its tie rule.
        out["maximisers"] = {b.bidder: [list(s) for s in b.maximisers] for b in tables.bidders}
        out["maximisers_true"] = {b.bidder: [list(s) for s in b.maximisers_true] for b in tables.bidders}
        out["efficient_allocation"] = {bidder: list(s) for bidder, s in tables.efficient_allocation.items()}
        if certificate.optimum is None:  # no compact bids: the enumeration still knows the optimum
            out.update(efficient_welfare=tables.efficient_welfare, efficiency_gap=tables.efficiency_gap,
                       efficiency_bound_holds=tables.efficiency_bound_holds)
    return out


def build_summary(model: MarketModel) -> dict[str, Any]:
    outcome = model.mechanism.outcome()
    valuations = model.valuations
    bundles = outcome.bundles()
    values = {bidder: valuations[bidder](bundles[bidder]) for bidder in bundles}
    spec = MECHANISMS[outcome.mechanism]
    equilibrium = equilibrium_summary(model.judge(), model.mechanism.price_step, spec.item_prices)
    return {
        "seed": model.config.seed,
        "solver": model.config.solver,
        "units": {"capacity": "MW", "money": "$"},
        "mechanism": outcome.mechanism,
        "products": [p.as_dict() for p in model.products],
        "withheld_products": [p.as_dict() for p in model.capacity.withheld],
        "capacity": None if model.capacity.study is None
        else capacity_summary(model.capacity.study, model.grid_inputs.scenarios.count),
        "allocation": outcome.allocation,
        "prices": outcome.prices,
        "payments": outcome.payments,
        "bundles": {bidder: list(items) for bidder, items in bundles.items()},
        "values": values,
        "surplus": {bidder: values[bidder] - outcome.payments[bidder] for bidder in bundles},
        "rounds": outcome.rounds_with_bids,
        "rounds_run": outcome.rounds_run,
        "closed_by": outcome.closed_by,
        "welfare": math.fsum(values.values()),
        "efficient_welfare": equilibrium["efficient_welfare"],
        "equilibrium": equilibrium,
        "population": [{"name": d.name, "profile": d.profile, "fields": d.fields} for d in model.population],
        "aggregators": aggregator_shares(model, bundles, outcome.prices),
    }


def aggregator_shares(model: MarketModel, bundles: dict[str, tuple[str, ...]],
                      prices: dict[str, float]) -> dict[str, Any]:
    """What each aggregator handed to each member: products, value, payment and surplus ($)."""
    out: dict[str, Any] = {}
    for agent in model.agents_by_type.get(Aggregator, []):
        shares, unassigned = agent.hand_out(bundles[agent.name], prices)
        out[agent.name] = {
            "members": {name: {"products": list(s.products), "value": s.value, "payment": s.payment,
                               "surplus": s.surplus} for name, s in shares.items()},
            "unassigned": list(unassigned),
            "unassigned_cost": math.fsum(prices[p] for p in unassigned),
        }
    return out


def _table_rows(model: MarketModel) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    collector = model.datacollector
    bids = collector.get_table_dataframe("bids").to_dict("records")
    rounds = collector.get_table_dataframe("rounds").to_dict("records")
    return bids, rounds


# How each mechanism's run ended, for the report (Outcome.closed_by).
CLOSINGS = {
    "no_new_bids": "the auction closed after a round without new bids",
    "max_rounds": "the auction was stopped at max_rounds = {rounds} while bids were still coming",
    "clock_cleared": "the clock auction closed when no product was wanted by more than one bidder",
    "sealed": "the sealed-bid auction closed after its one round",
    "queue_served": "the queue closed after every bidder's turn",
}


def render_report(summary: dict[str, Any], bids: list[dict[str, Any]], rounds: list[dict[str, Any]],
                  *, summary_only: bool = False) -> str:
    """The printed report; the round table is left out with ``summary_only`` or past
    ROUND_TABLE_MAX_LINES lines, so that big cases stay readable."""
    sections = []
    if summary["capacity"] is not None:
        sections.append(capacity_text(summary["capacity"]))
    sections.append("Products:\n" + products_table(summary["products"]))
    if summary["withheld_products"]:
        ids = ", ".join(p["id"] for p in summary["withheld_products"])
        sections.append(f"Withheld (no capacity): {ids}")
    bidders = list(summary["payments"])
    closing = CLOSINGS.get(summary["closed_by"], summary["closed_by"]).format(rounds=summary["rounds_run"])
    lines = 0 if summary_only else round_table_lines(bids, rounds)
    if summary_only or lines > ROUND_TABLE_MAX_LINES:
        why = "--summary-only" if summary_only else f"{lines:,} lines, more than {ROUND_TABLE_MAX_LINES}"
        sections.append(f"Rounds: {summary['rounds_run']:,} run, {summary['rounds']:,} with bids; {closing}. The round "
                        f"table ({why}) is not printed: read it in rounds.csv and bids.csv, or with dcmarket log RUN_DIR")
    else:
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
    summary_only: bool = False,
    progress: Progress = lambda _: None,
    sets: Sequence[Override] = (),
    plots: bool = False,
) -> AuctionResult:
    """`dcmarket run`: load the config, refuse a bad --out first, run, write the directory."""
    config = load_config(config_path, {"seed": seed, "solver": solver}, sets)
    outputs.check_out_dir(out, force)  # fail before the expensive part, not after
    result = auction_study(config, config_path, plots=plots, summary_only=summary_only, progress=progress)
    result.write(out, force=force)
    return result


def auction_study(config: ExperimentConfig, config_path: Path, *, plots: bool = False, summary_only: bool = False,
                  progress: Progress = lambda _: None) -> AuctionResult:
    """The auction and the studies after it, in process; nothing is written.

    ``config_path`` names the config in messages, and its folder is where relative paths start.
    """
    if config.network is not None:
        check_solver(config.solver)
    followers = [(study, study.check(config, config_path)) for study in after_auction_studies(config)]
    with named_after(config_path):
        model = MarketModel(config, base_dir=config_path.parent, progress=progress)
    outcome = model.run_auction()
    summary = build_summary(model)
    bids, rounds = _table_rows(model)
    files = _auction_files(model, config, summary, bids, rounds)
    report = render_report(summary, bids, rounds, summary_only=summary_only)
    if plots:
        files.update(_run_figures(model, summary, rounds))
    after: dict[str, StudyResult] = {}
    for study, checked in followers:
        section, after[study.table] = study.run(model, summary, config, config_path, checked, progress)
        summary[study.table] = section
        files.update(_nested(study.folder, after[study.table].files))
        report += f"\n\n{study.heading} (files in {study.folder}/):\n" + after[study.table].report
    files[outputs.SUMMARY] = outputs.json_bytes(summary)  # last: the studies after the auction add to it
    return AuctionResult(summary, files, report, config=config, outcome=outcome, products=model.products,
                         capacity=model.capacity.study, after=after)


def _auction_files(model: MarketModel, config: ExperimentConfig, summary: Mapping[str, Any],
                   bids: list[dict[str, Any]], rounds: list[dict[str, Any]]) -> dict[str, bytes]:
    """The run directory's own files (summary.json comes last): input copies, the effective config,
    products, capacity per bus, bids, withdrawals and rounds."""
    inputs = model.grid_inputs.input_files if model.grid_inputs is not None else {}
    files, copied = outputs.input_copies(inputs)
    files[outputs.CONFIG] = dump_config(effective_config(config, copied=copied)).encode("utf-8")
    files[outputs.PRODUCTS] = outputs.csv_bytes(outputs.PRODUCT_COLUMNS, summary["products"])
    if model.capacity.study is not None:
        study = model.capacity.study
        files[outputs.CAPACITY] = outputs.csv_bytes(capacity_columns(study), capacity_rows(study))
    files[outputs.BIDS] = outputs.csv_bytes(outputs.BID_COLUMNS, bids)
    withdrawals = model.datacollector.get_table_dataframe("withdrawals").to_dict("records")
    if withdrawals:
        files[outputs.WITHDRAWALS] = outputs.csv_bytes(outputs.WITHDRAWAL_COLUMNS, withdrawals)
    files[outputs.ROUNDS] = outputs.csv_bytes(outputs.ROUND_COLUMNS, rounds)
    return files


# The studies a run may chain after its auction, in order: the config table that turns each on,
# and the module that declares it (as AFTER_AUCTION). A module is imported only when its table is
# in the config: a plain auction never loads the plan's or the price's formulations.
AFTER_AUCTION_MODULES = (("plan", "sim.studies.plan"), ("price", "sim.studies.price.study"))


def after_auction_studies(config: ExperimentConfig) -> tuple[AfterAuction, ...]:
    """The studies ``config`` chains after its auction, in order."""
    return tuple(importlib.import_module(module).AFTER_AUCTION for table, module in AFTER_AUCTION_MODULES
                 if getattr(config, table) is not None)


def _nested(folder: str, study_files: Mapping[str, bytes]) -> dict[str, bytes]:
    """A study's files as a folder of the run directory."""
    return {f"{folder}/{name}": content for name, content in study_files.items()}


def _run_figures(model: MarketModel, summary: dict[str, Any], rounds: list[dict[str, Any]]) -> dict[str, bytes]:
    """The run's figures (``--plots``): price paths, holdings per round and, with a network, the
    capacity map."""
    from sim.report.figures.plots import figure_bytes
    from sim.report.figures.run import round_figures
    from sim.studies.capacity import capacity_map_png

    files = figure_bytes(round_figures(rounds, summary))
    if model.capacity.study is not None:
        study = model.capacity.study
        files[outputs.CAPACITY_MAP] = capacity_map_png(study, f"Capacity for data centers on {study.network.name}")
    return files


def command(args: argparse.Namespace, progress: Progress) -> int:
    """`dcmarket run CONFIG`."""
    out = args.out or Path("runs") / args.config.stem
    result = run_experiment(
        args.config,
        out,
        seed=args.seed,
        solver=args.solver,
        force=args.force,
        summary_only=args.summary_only,
        progress=progress,
        sets=args.sets,
        plots=args.plots,
    )
    print(result.report)
    print(f"\nRun directory: {out}")
    return 0
