"""The `dcmarket` command line.

`run` an experiment config, `capacity` of a config or a case alone, `log` a finished run's rounds,
`cases` lists the built-in networks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from agents.errors import AgentConfigError
from grid.errors import GridError
from grid.solvers import SOLVERS
from mechanisms.errors import MechanismError
from sim import outputs
from sim.config import ConfigError
from sim.capacity_run import DEFAULT_DEMAND_MW, DEFAULT_RISK, DEFAULT_SCENARIOS, DEFAULT_VERIFY, run_capacity
from sim.report import format_table, round_table
from sim.run import run_experiment

# Errors that come from the user's input or environment: one line, no traceback.
USER_ERRORS = (ConfigError, GridError, MechanismError, AgentConfigError, outputs.OutputError)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcmarket",
        description="Quantify grid capacity for AI data centers and sell it in a simultaneous ascending auction.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run an experiment config and write its run directory")
    run.add_argument("config", type=Path, help="experiment config (TOML)")
    run.add_argument("--out", type=Path, help="run directory to write (default: runs/<config name>)")
    run.add_argument("--seed", type=int, help="override the config's seed")
    run.add_argument("--solver", choices=SOLVERS, help="override the config's LP solver")
    run.add_argument("--force", action="store_true", help="replace an existing run directory")
    run.add_argument("--quiet", action="store_true", help="print no progress lines on stderr")
    run.add_argument("--summary-only", action="store_true",
                     help="print products, outcome and verdict without the round table (big cases)")

    cap = commands.add_parser(
        "capacity",
        help="firm and flexible capacity per bus, with an out-of-sample risk check and a map",
        description="Quantify capacity for a config (TOML) or straight for a case: a built-in name "
        "(see `dcmarket cases`), a MATPOWER .m file or a CSV case folder. For a case, every load bus "
        f"asks {DEFAULT_DEMAND_MW:g} MW (--demand) and the base loads vary by 5 %% (sd), "
        f"{DEFAULT_SCENARIOS} scenarios (--scenarios).",
    )
    cap.add_argument("target", help="experiment config (.toml) or case (name, .m file, CSV folder)")
    cap.add_argument("--out", type=Path, help="directory to write (default: runs/<name>-capacity)")
    cap.add_argument("--risk", type=float, nargs="+", metavar="EPS",
                     help=f"risk levels of the flexible tiers (default: the config's, or {DEFAULT_RISK:g})")
    cap.add_argument("--verify", type=int, default=DEFAULT_VERIFY, metavar="N",
                     help=f"fresh scenarios for the out-of-sample risk check; 0 skips it (default {DEFAULT_VERIFY:,})")
    cap.add_argument("--demand", type=float, metavar="MW", help="request per load bus when TARGET is a case")
    cap.add_argument("--scenarios", type=int, metavar="N", help="scenario count when TARGET is a case")
    cap.add_argument("--seed", type=int, help="override the seed")
    cap.add_argument("--solver", choices=SOLVERS, help="override the LP solver")
    cap.add_argument("--no-theory", action="store_true", help="skip the Theorem 1 / Proposition 1 checks")
    cap.add_argument("--force", action="store_true", help="replace an existing directory")
    cap.add_argument("--quiet", action="store_true", help="print no progress lines on stderr")

    commands.add_parser("cases", help="list the built-in network cases")

    log = commands.add_parser("log", help="print the round-by-round table of a finished run")
    log.add_argument("run_dir", type=Path, help="a run directory written by `dcmarket run`")
    log.add_argument("--round", type=int, help="only this round")
    log.add_argument("--bidder", help="only this bidder's bids and holdings")
    log.add_argument("--product", help="only this product")
    return parser


def _progress(quiet: bool):
    start = time.perf_counter()

    def report(message: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr, flush=True)

    return report


def _run(args: argparse.Namespace) -> int:
    if args.seed is not None and args.seed < 0:
        raise ConfigError("--seed: must be a non-negative integer")
    out = args.out or Path("runs") / args.config.stem
    result = run_experiment(
        args.config,
        out,
        seed=args.seed,
        solver=args.solver,
        force=args.force,
        summary_only=args.summary_only,
        progress=_progress(args.quiet),
    )
    print(result.report)
    print(f"\nRun directory: {out}")
    return 0


def _capacity(args: argparse.Namespace) -> int:
    for name in ("seed", "verify", "scenarios"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "scenarios" else 0):
            raise ConfigError(f"--{name}: must be a {'positive' if name == 'scenarios' else 'non-negative'} integer")
    if args.demand is not None and not args.demand > 0:
        raise ConfigError("--demand: must be a positive number of MW")
    stem = Path(args.target).stem if args.target.lower().endswith(".toml") else Path(args.target).name
    out = args.out or Path("runs") / f"{stem}-capacity"
    overrides = {"seed": args.seed, "solver": args.solver, "risk_levels": args.risk,
                 "demand_mw": args.demand, "scenarios": args.scenarios}
    result = run_capacity(args.target, out, overrides=overrides, verify=args.verify, theory=not args.no_theory,
                          force=args.force, progress=_progress(args.quiet))
    print(result.report)
    print(f"\nCapacity directory: {out}")
    return 0


def _cases(_: argparse.Namespace) -> int:
    from grid.cases import describe_cases

    rows = [(c["name"], c["buses"], c["lines"], c["generators"], f"{c['load_mw']:,.1f}", c["source"], c["ratings"])
            for c in describe_cases()]
    print(format_table(["case", "buses", "lines", "generators", "load (MW)", "source", "ratings"], rows,
                       [False, True, True, True, True, False, False]))
    print("\nAny MATPOWER .m file or CSV case folder also works as a case (see README).")
    return 0


def _log(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir
    if not run_dir.is_dir():
        raise outputs.OutputError(f"{run_dir}: no such run directory")
    if "allocation" not in outputs.read_summary(run_dir, required=("products",)):
        raise outputs.OutputError(f"{run_dir}: is a capacity directory (dcmarket capacity); it has no auction rounds to show")
    summary = outputs.read_summary(run_dir)
    bidders = list(summary["payments"])
    products = [p["id"] for p in summary["products"]]
    if args.bidder is not None and args.bidder not in bidders:
        raise outputs.OutputError(f"--bidder: unknown bidder {args.bidder!r}; this run has {', '.join(bidders)}")
    if args.product is not None and args.product not in products:
        raise outputs.OutputError(f"--product: unknown product {args.product!r}; this run sells {', '.join(products)}")
    if args.round is not None and not 1 <= args.round <= summary["rounds_run"]:
        raise outputs.OutputError(f"--round: this run has rounds 1 to {summary['rounds_run']}, not {args.round}")
    bids = outputs.read_csv_rows(run_dir / outputs.BIDS)
    rounds = outputs.read_csv_rows(run_dir / outputs.ROUNDS)
    print(
        round_table(
            bids,
            rounds,
            bidders,
            round_filter=args.round,
            bidder_filter=args.bidder,
            product_filter=args.product,
        )
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"run": _run, "capacity": _capacity, "log": _log, "cases": _cases}[args.command](args)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader (e.g. `| head`) left; anything written to disk is already complete.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:  # a file the user pointed at cannot be read or written
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{error.strerror or error}; check the path and its permissions", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory; use fewer scenarios, buses or products", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; no new run directory was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
