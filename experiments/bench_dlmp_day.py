"""The aggregator's day as one MILP (grid.feeder.bilevel.aggregator_schedule) on IEEE 37: solve time
against the hours and the sites, with and without SVGs, for both linearizations and both solvers,
in one run.

The instance is experiments/ieee37_price_workload.toml's: the day of 11 August 2016 (the sum of
ACTIVSg2000's areas as the background, its substation prices and generators), at each site 40
servers of 3 to 10 kW (20 requests per second each, PUE 1.3), interactive traffic from that
file, and one batch job of 2 steps per hour of the horizon, free to run in any hour. The first
H hours of the day, and the first n of the sites 738, 725, 731. Each row is one call, the call
the study makes (tie-break rule on: with SVGs over several hours that is the day's MILP, then
one small MILP per hour, D-16), with a time limit per MILP (--time-limit, 60 s).

    .venv/bin/python experiments/bench_dlmp_day.py [--quick] [--out experiments/out]

The table gives the status, the wall seconds of the call, the first MILP's solver seconds, the
payment over the hours ($), the model's size, and within this run the ratio of each time to
the one-hour time of the same sites, SVGs, linearization and solver. "agree" checks the payment
against strong duality with HiGHS on the same instance where both proved optimality. McCormick
runs only up to 3 hours (its relaxation is weak: docs/benchmarks.md#bench-dlmp). No timing is
asserted. --quick: 2 sites, 1 and 3 hours. Writes bench_dlmp_day.csv, rewritten after every row.
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run as a script: the packages are this checkout's
    sys.path.insert(0, str(REPO))

from grid.errors import SolverError  # noqa: E402
from grid.feeder.bilevel import DataCenterSite, Hour, aggregator_schedule  # noqa: E402
from grid.feeder.periods import period_inputs  # noqa: E402
from grid.feeder.upper_level import SvgSettings  # noqa: E402
from grid.feeder.workloads import BatchJob, Servers, WorkPlan  # noqa: E402
from grid.solvers.names import check_solver  # noqa: E402
from sim.config.schema import parse_config  # noqa: E402
from sim.output.files import write_bench_csv  # noqa: E402
from sim.report.text import format_table  # noqa: E402
from sim.studies.price.periods import price_periods  # noqa: E402
from sim.studies.price.study import feeder_inputs, price_workload  # noqa: E402

CONFIG = HERE / "ieee37_price_workload.toml"
CSV_NAME = "bench_dlmp_day.csv"
COLUMNS = ["hours", "sites", "svg", "linearization", "solver", "status", "wall_s", "solver_s", "payment_usd",
           "gap_pct", "columns", "binaries", "rows", "wall_over_one_hour", "agreement", "time_limit_s"]
SERVERS = Servers(40, 3.0, 10.0, 20.0, 1.3)
WORK_STEP = 80.0


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def instance(hours: int, sites: int) -> tuple[list[Hour], tuple[DataCenterSite, ...], dict, WorkPlan]:
    """The first ``hours`` hours and the first ``sites`` sites of the example's day."""
    raw = tomllib.loads(CONFIG.read_text())
    raw["price"].pop("workload")
    price = parse_config(raw, source=str(CONFIG)).price
    feeder, generators, settings = feeder_inputs(price)
    chosen = tuple(DataCenterSite(s.bus, s.max_kw, power_factor=0.9, svg_kvar=200.0) for s in price.sites[:sites])
    periods = price_periods(price, feeder, generators, settings, chosen, price_workload(price, chosen))[:hours]
    day = [Hour(*period_inputs(feeder, generators, settings, period)) for period, _ in periods]
    loads = {s.bus: SERVERS.load(WORK_STEP) for s in chosen}
    room = sum(load.high for load in loads.values())
    traffic = tomllib.loads(CONFIG.read_text())["price"]["workload"]["interactive"]
    # The example's traffic on three sites, scaled to these sites' room and left room for the job.
    interactive = tuple(min(room - 2, round(v / WORK_STEP * sites / 3)) for v in traffic[:hours])
    return day, chosen, loads, WorkPlan(interactive, (BatchJob("batch", 2 * hours, 0, hours - 1),))


def measure(hours: int, sites: int, svg: bool, linearization: str, solver: str, limit: float) -> dict[str, Any]:
    day, chosen, loads, plan = instance(hours, sites)
    row: dict[str, Any] = {"hours": hours, "sites": sites, "svg": svg, "linearization": linearization,
                           "solver": solver, "time_limit_s": limit}
    started = time.perf_counter()
    try:
        result = aggregator_schedule(day, chosen, loads, plan, SvgSettings(50.0, 0.0), svg=svg, price_bound=1e4,
                                     linearization=linearization, solver=solver, time_limit=limit)
    except SolverError as error:
        row.update(status="error", wall_s=time.perf_counter() - started, note=str(error))
        return row
    done = result.solve
    row.update(status=done.status, wall_s=time.perf_counter() - started, solver_s=done.seconds,
               payment_usd=result.payment, gap_pct=100.0 * done.gap, columns=done.columns, binaries=done.binaries,
               rows=done.rows)
    return row


def _ratios(rows: list[dict[str, Any]]) -> None:
    """Within the run: wall time over the one-hour row of the same kind; payment against strong
    duality with HiGHS on the same instance."""
    def key(r: dict[str, Any]) -> tuple:
        return r["sites"], r["svg"], r["linearization"], r["solver"]

    one = {key(r): r for r in rows if r["hours"] == 1 and r["status"] == "optimal"}
    reference = {(r["hours"], r["sites"], r["svg"]): r for r in rows
                 if r["linearization"] == "strong-duality" and r["solver"] == "highs" and r["status"] == "optimal"}
    for r in rows:
        base = one.get(key(r))
        r["wall_over_one_hour"] = None if base is None or r["status"] == "error" else r["wall_s"] / base["wall_s"]
        ref = reference.get((r["hours"], r["sites"], r["svg"]))
        if ref is not None and r is not ref and r["status"] == "optimal":
            r["agreement"] = "agree" if abs(r["payment_usd"] - ref["payment_usd"]) <= 1e-6 * max(
                1.0, ref["payment_usd"]) else f"differs by {r['payment_usd'] - ref['payment_usd']:.4g} $"


def _num(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 sites, 1 and 3 hours")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per MILP (default 60)")
    parser.add_argument("--out", type=Path, default=HERE / "out", help="folder for the CSV")
    args = parser.parse_args(argv)
    glpk = True
    try:
        check_solver("glpk")
    except Exception:
        glpk = False
        progress("glpsol not found: GLPK rows are left out (apt-get install glpk-utils)")
    grid = [(h, n) for n in ((2,) if args.quick else (2, 3)) for h in ((1, 3) if args.quick else (1, 3, 6, 12, 24))]
    rows: list[dict[str, Any]] = []
    for hours, sites in grid:
        for svg in (False, True):
            runs = [("strong-duality", "highs")]
            if glpk and hours <= 6:
                runs.append(("strong-duality", "glpk"))
            if hours <= 3 and not svg:   # with SVGs McCormick stops at its time limit even in one hour
                runs.append(("mccormick", "highs"))
            for linearization, solver in runs:
                progress(f"{hours} h, {sites} sites, {'SVG' if svg else 'no SVG'}, {linearization}, {solver}")
                rows.append(measure(hours, sites, svg, linearization, solver, args.time_limit))
                _ratios(rows)
                write_bench_csv(args.out / CSV_NAME, COLUMNS, rows)
    table = [(r["hours"], r["sites"], "yes" if r["svg"] else "no", r["linearization"], r["solver"], r["status"],
              _num(r.get("wall_s"), ".2f"), _num(r.get("solver_s"), ".2f"), _num(r.get("payment_usd"), ",.3f"),
              _num(r.get("binaries"), ","), _num(r.get("wall_over_one_hour"), ".1f"), r.get("agreement") or "")
             for r in rows]
    print(format_table(["hours", "sites", "SVG", "linearization", "solver", "status", "wall s", "solver s",
                        "payment $", "binaries", "vs 1 h", "check"], table, [True] * 2 + [False] * 4 + [True] * 5
                       + [False]))
    print(f"\nwrote {args.out / CSV_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
