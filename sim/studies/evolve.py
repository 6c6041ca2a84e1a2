"""`dcmarket evolve`: interconnection over time, allocation regimes compared on the same arrivals
(docs/studies/interconnection.md; the rules and equations in docs/models/interconnection.md).

1. The developers of the whole run are drawn once from the seed (stream "arrivals").
2. Each regime of ``[[dynamics.regimes]]`` runs the Mesa model (sim/dynamics/model.py) cycle by
   cycle on those developers and the buses' headroom, its withdrawals drawn from the same stream,
   so that the regimes differ only by their rules.
3. cycles.csv (a row per regime and cycle), requests.csv (a row per regime and developer),
   summary.json (each regime's figures, sim/dynamics/metrics.py), config.toml, and the figures
   connected.png and outcomes.png (sim/report/figures/interconnection.py).
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

from agents.developers import draw_developers
from sim.config.dynamics import DynamicsConfig
from sim.config.schema import ExperimentConfig
from sim.dynamics.metrics import summarize
from sim.dynamics.model import InterconnectionModel
from sim.output import files as outputs
from sim.random_streams import stream
from sim.report.text import format_table
from sim.studies.command import study_command
from sim.studies.result import StudyResult

Progress = Callable[[str], None]

CYCLE_COLUMNS = ["regime", "cycle", "month", "connected_mw", "backlog_mw", "waiting", "connected", "refused",
                 "withdrawn", "deterred", "revoked", "unused_mw", "idle_mw", "value_connected_usd",
                 "value_possible_usd", "revenue_usd", "deposits_forfeited_usd"]
REQUEST_COLUMNS = ["regime", "request", "bus", "mw", "value_usd_per_mw", "arrival", "speculative", "status",
                   "decided_at", "wait_cycles", "granted_mw", "flexible", "in_use", "revoked_at", "payment_usd"]


def run_evolve_study(config: ExperimentConfig, progress: Progress = lambda _: None, plots: bool = True) -> StudyResult:
    """Every regime of ``[dynamics]`` on the same seeded arrivals; ``plots=False`` leaves out the figures."""
    dynamics = config.dynamics
    assert dynamics is not None
    developers = draw_developers(dynamics.arrivals, dynamics.cycles, [b.bus for b in dynamics.buses],
                                 stream(config.seed, "arrivals"))
    progress(f"{len(developers):,} developers arrive over {dynamics.cycles} cycles of {dynamics.cycle_months} months")
    cycles: list[dict[str, Any]] = []
    requests: list[dict[str, Any]] = []
    figures: dict[str, dict[str, Any]] = {}
    for table in dynamics.regimes:
        model = InterconnectionModel(developers, table.build(), dynamics.headroom(), dynamics.withdrawal,
                                     seed=config.seed)
        for cycle in range(dynamics.cycles):
            model.step()
            if (cycle + 1) % 20 == 0 or cycle + 1 == dynamics.cycles:
                progress(f"{table.label}: cycle {cycle + 1} of {dynamics.cycles}")
        history = model.datacollector.get_model_vars_dataframe()
        rows = model.requests()
        figures[table.label] = {"kind": table.kind, **summarize(rows, history)}
        cycles += [{"regime": table.label, "month": int(r["cycle"]) * dynamics.cycle_months, **r}
                   for r in history.to_dict("records")]
        requests += [{"regime": table.label, **r} for r in rows]
    summary = {"regimes": figures, "cycles": dynamics.cycles, "cycle_months": dynamics.cycle_months,
               "developers": len(developers), "seed": config.seed}
    files = {"cycles.csv": outputs.csv_bytes(CYCLE_COLUMNS, cycles),
             "requests.csv": outputs.csv_bytes(REQUEST_COLUMNS, requests),
             "summary.json": outputs.json_bytes(summary)}
    if plots:
        from sim.report.figures.interconnection import plot_outcomes, plot_over_time
        from sim.report.figures.plots import figure_bytes

        files.update(figure_bytes({
            "connected.png": lambda path: plot_over_time(cycles, path),
            "outcomes.png": lambda path: plot_outcomes(figures, dynamics.cycle_months, path)}))
    return StudyResult(summary, files, report(summary, dynamics))


def report(summary: dict[str, Any], dynamics: DynamicsConfig) -> str:
    """The regimes side by side: what connected, how fast, what was lost on the way."""
    months = dynamics.cycle_months

    def wait(value: float | None) -> str:
        return "-" if value is None else f"{value * months:g}"

    rows = [(label, f"{f['connected']:,}", f"{f['connected_mw']:,.0f}", wait(f["median_wait_cycles"]),
             wait(f["p90_wait_cycles"]), f"{f['withdrawn']:,}", f"{f['refused']:,}", f"{f['waiting_at_end']:,}",
             f"{f['revoked']:,}", f"{f['revenue_usd'] / 1e6:,.1f}",
             "-" if f["mean_cycle_efficiency"] is None else f"{f['mean_cycle_efficiency']:.2f}")
            for label, f in summary["regimes"].items()]
    head = (f"Interconnection over {summary['cycles']} cycles of {months} months: {summary['developers']:,} "
            f"developers, seed {summary['seed']}\n\n")
    return head + format_table(
        ["regime", "connected", "MW", "median wait (months)", "p90 wait (months)", "withdrawn", "refused", "waiting",
         "revoked", "revenue (M$)", "cycle efficiency"], rows,
        [False, True, True, True, True, True, True, True, True, True, True])


def command(args: argparse.Namespace, progress: Progress) -> int:
    """`dcmarket evolve CONFIG`."""
    return study_command(args, "evolve", lambda config: run_evolve_study(config, progress, plots=not args.no_plots),
                         "Interconnection", table="dynamics", page="interconnection")
