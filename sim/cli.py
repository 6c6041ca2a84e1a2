"""The `dcmarket` command line.

One sub-command per study in the registry (sim/studies/registry.py): `run` an experiment config (the
auction), `capacity` of a config or a case alone, `plan` flexible capacity against demand shocks,
`price` DLMP coordination, `sweep` many runs. `log` prints a finished run's rounds, `results`
queries a sweep, `report` writes an HTML page, `view` serves Mesa's interactive view of an
auction, `cases` lists the built-in networks.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from sim.errors import USER_ERRORS, ConfigError, one_line
from sim.market.view_env import VIEW_CONFIG_ENV
from sim.output import files as outputs
from sim.report.text import format_table, mw, round_table
from sim.studies.registry import STUDIES


def build_parser() -> argparse.ArgumentParser:
    """The parser of `dcmarket`, one sub-command per study (docs/reference/cli.md is generated from it)."""
    parser = argparse.ArgumentParser(
        prog="dcmarket",
        description="Quantify grid capacity for AI data centers, sell it at auction, and plan "
        "flexible capacity against their demand shocks.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for study in STUDIES.values():
        sub = commands.add_parser(study.command, help=study.summary, description=study.description)
        study.arguments(sub)
        sub.set_defaults(study=study.name)

    commands.add_parser("cases", help="list the built-in network cases")

    log = commands.add_parser("log", help="print the round-by-round table of a finished run")
    log.add_argument("run_dir", type=Path, help="a run directory written by `dcmarket run`")
    log.add_argument("--round", type=int, help="only this round")
    log.add_argument("--bidder", help="only this bidder's bids and holdings")
    log.add_argument("--product", help="only this product")

    view = commands.add_parser("view", help="step through an auction in Mesa's interactive view (SolaraViz) in a browser")
    view.add_argument("config", type=Path, help="experiment config (TOML)")
    view.add_argument("--port", type=int, default=8765, help="port to serve on (default 8765)")
    view.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")

    report = commands.add_parser("report", help="write one self-contained HTML page for a run or sweep directory")
    report.add_argument("run_dir", type=Path, help="a run, sweep, plan, price or capacity directory")

    results = commands.add_parser("results", help="query a sweep's results table (DuckDB)")
    results.add_argument("run_dir", type=Path, help="a sweep directory written by `dcmarket sweep`")
    results.add_argument("--where", help="SQL condition on the columns, e.g. \"status = 'ok'\" or "
                         "'\"auction.increment\" >= 2' (quote dotted names)")
    results.add_argument("--group-by", nargs="+", metavar="COLUMN",
                         help="one row per group: runs, failures, mean/sd/min/max of the metrics")
    results.add_argument("--metric", action="append", metavar="COLUMN",
                         help="with --group-by: mean, sd, min and max of this column; with --plot: draw it "
                         "(repeatable)")
    results.add_argument("--plot", metavar="PARAMETER",
                         help="draw the metrics against this swept parameter, with bands over seeds, into DIR/plots/")
    results.add_argument("--limit", type=int, help="at most this many runs (without --group-by)")
    results.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    return parser


def _progress(quiet: bool):
    start = time.perf_counter()

    def report(message: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr, flush=True)

    return report


def _cases(_: argparse.Namespace) -> int:
    from grid.network.cases import describe_cases

    rows = [(c["name"], c["buses"], c["lines"], c["generators"], mw(c["load_mw"]), c["source"], c["ratings"])
            for c in describe_cases()]
    print(format_table(["case", "buses", "lines", "generators", "load (MW)", "source", "ratings"], rows,
                       [False, True, True, True, True, False, False]))
    print("\nAny MATPOWER .m file or CSV case folder also works as a case (see docs/reference/cases.md).")
    return 0


def _log(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir
    if not run_dir.is_dir():
        raise outputs.OutputError(f"{run_dir}: no such run directory")
    study = outputs.read_summary(run_dir, required=())
    for key, kind in (("plans", "plan"), ("cases", "price")):
        if key in study:
            raise outputs.OutputError(f"{run_dir}: is a {kind} directory (dcmarket {kind}); it has no auction rounds "
                                      "to show")
    if "products" in study and "allocation" not in study:
        raise outputs.OutputError(f"{run_dir}: is a capacity directory (dcmarket capacity); it has no auction rounds to show")
    summary = outputs.require_keys(study, run_dir)  # every key a run's summary has
    bidders = list(summary["payments"])
    products = [p["id"] for p in summary["products"]]
    if args.bidder is not None and args.bidder not in bidders:
        raise outputs.OutputError(f"--bidder: unknown bidder {args.bidder!r}; this run has {', '.join(bidders)}")
    if args.product is not None and args.product not in products:
        raise outputs.OutputError(f"--product: unknown product {args.product!r}; this run sells {', '.join(products)}")
    if args.round is not None and not 1 <= args.round <= summary["rounds_run"]:
        raise outputs.OutputError(f"--round: this run has rounds 1 to {summary['rounds_run']}, not {args.round}")
    bids = outputs.read_csv_rows(run_dir / outputs.BIDS, integers=("round",), numbers=("amount",))
    rounds = outputs.read_csv_rows(run_dir / outputs.ROUNDS, integers=("round",), numbers=("standing_price",))
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


def _results(args: argparse.Namespace) -> int:
    from sim.report.query import command

    return command(args)


def _view(args: argparse.Namespace) -> int:
    from sim.config.schema import load_config

    load_config(args.config).require_market()  # a bad config fails here, in one line, not in the browser
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port: {args.port} is not a port number (1-65535)")
    env = {**os.environ, VIEW_CONFIG_ENV: str(args.config.resolve())}
    print(f"Serving the auction of {args.config} at http://{args.host}:{args.port} (Ctrl-C stops)", flush=True)
    command = [sys.executable, "-m", "solara", "run", "sim.view", "--port", str(args.port), "--host", args.host,
               "--production"]
    server = subprocess.Popen(command, env=env)
    # Stopping `dcmarket view` (Ctrl-C, or a SIGTERM) stops the server too, so the port is freed.
    signal.signal(signal.SIGTERM, lambda *_: server.terminate())
    try:
        return server.wait()
    except KeyboardInterrupt:
        server.terminate()
        server.wait()
        return 130


def _report(args: argparse.Namespace) -> int:
    from sim.report.html import write_report

    print(f"Report: {write_report(args.run_dir)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        study = getattr(args, "study", None)
        if study is not None:
            return STUDIES[study].run(args, _progress(args.quiet))
        return {"log": _log, "cases": _cases, "results": _results, "report": _report,
                "view": _view}[args.command](args)
    except USER_ERRORS as error:
        print(f"error: {one_line(str(error))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader (e.g. `| head`) left; anything written to disk is already complete.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:  # a file the user pointed at cannot be read or written
        where = f"{error.filename}: " if error.filename else ""
        full = error.errno in (errno.ENOSPC, errno.EDQUOT)
        fix = "the disk may be full; free some space" if full else "check the path and its permissions"
        print(f"error: {where}{error.strerror or error}; {fix}", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory; use fewer scenarios, buses or products", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; no new run directory was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
