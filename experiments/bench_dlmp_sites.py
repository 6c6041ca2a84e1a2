"""The aggregator's hour on IEEE 123 against the number of sites: the payment's MILP and the
tie-break stage (D-16) timed apart, with and without SVGs, HiGHS and GLPK, and the whole day of
experiments/ieee123_price_day.toml with ten sites, in one run.

The hours are those of experiments/ieee123_price_day.toml (11 August 2016, its prices, generators
and head voltage): 00:00 at 800 kW and 11:00 at 1,500 kW (900 kW on three sites), where nothing
binds in the linear model and many decisions pay the same. The sites are the first n of 66, 300, 51, 83, 76, 57, 44,
101, 108, 35 (three-phase buses), 300 kW each with 200 kvar of SVG per phase. Each row is one hour:
the payment alone (``tie_break_rule=False``), then the study's call (the payment, then the
tie-break within its node budget); "tie-break s" is the difference. The day rows solve the 24
hours of the example with ten sites, each bilevel case apart, as `dcmarket price` does (no AC
check), on one process and on two (``--workers 2``: the hours side by side).
GLPK runs the payment alone (it has no node budget). No timing is asserted.

    .venv/bin/python experiments/bench_dlmp_sites.py [--quick] [--out experiments/out]

--quick: 3 sites, HiGHS, no day. Writes bench_dlmp_sites.csv, rewritten after every row.
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
from grid.feeder.bilevel import DataCenterSite, Workload, aggregator_bilevel  # noqa: E402
from grid.solvers.names import check_solver  # noqa: E402
from sim.config.schema import parse_config  # noqa: E402
from sim.execution.ordered_pool import OrderedPool  # noqa: E402
from sim.output.files import write_bench_csv  # noqa: E402
from sim.report.text import format_table  # noqa: E402
from sim.studies.price.periods import hour_inputs, price_periods  # noqa: E402
from sim.studies.price.study import feeder_inputs, price_workload  # noqa: E402

CONFIG = HERE / "ieee123_price_day.toml"
CSV_NAME = "bench_dlmp_sites.csv"
BUSES = (66, 300, 51, 83, 76, 57, 44, 101, 108, 35)
HOURS = {0: 800.0, 11: 1500.0}   # hour of the day: the aggregator's load (kW)
COLUMNS = ["what", "hour", "sites", "svg", "solver", "status", "payment_s", "tie_break_s", "total_s", "payment_usd",
           "tie_break", "binaries"]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _hours(sites: int) -> tuple[list, tuple[DataCenterSite, ...], Any]:
    """The example's 24 hours (inputs, the table's workload per hour) with the first ``sites`` sites."""
    raw = tomllib.loads(CONFIG.read_text())
    raw["price"]["sites"] = [{"bus": b, "max_kw": 300.0, "member": f"site {b}"} for b in BUSES[:sites]]
    raw["price"]["total_kw"] = 800.0
    raw["price"]["day"]["demand_kw"] = [min(v, 300.0 * sites) for v in raw["price"]["day"]["demand_kw"]]
    price = parse_config(raw, source=str(CONFIG)).price
    feeder, generators, settings = feeder_inputs(price)
    chosen = tuple(DataCenterSite(b, 300.0, power_factor=0.9, svg_kvar=200.0) for b in BUSES[:sites])
    periods = price_periods(price, feeder, generators, settings, chosen, price_workload(price, chosen))
    return [(hour_inputs(feeder, generators, settings, period), load) for period, load in periods], chosen, price


def one_hour(hour: int, sites: int, svg: bool, solver: str, limit: float) -> dict[str, Any]:
    day, chosen, _ = _hours(sites)
    inputs, table = day[hour]
    workload = Workload(min(HOURS[hour], 300.0 * sites), table.step_kw, table.svg_step_kvar, 0.0)
    row: dict[str, Any] = {"what": "one hour", "hour": hour, "sites": sites, "svg": svg, "solver": solver}
    options = dict(svg=svg, price_bound=1e4, linearization="strong-duality", solver=solver, time_limit=limit)
    try:
        started = time.perf_counter()
        plain = aggregator_bilevel(inputs.feeder, inputs.generators, inputs.settings, chosen, workload,
                                   tie_break_rule=False, **options)
        row.update(payment_s=time.perf_counter() - started, status=plain.solve.status,
                   payment_usd=plain.payment_per_h, binaries=plain.solve.binaries)
        if solver == "highs":
            started = time.perf_counter()
            staged = aggregator_bilevel(inputs.feeder, inputs.generators, inputs.settings, chosen, workload, **options)
            total = time.perf_counter() - started
            row.update(total_s=total, tie_break_s=max(0.0, total - row["payment_s"]),
                       tie_break=staged.tie_break or "in the payment's MILP")
    except SolverError as error:
        row.update(status=f"no integer solution in {limit:g} s" if "no solution" in str(error) else f"error: {error}")
    return row


def _hour_case(feeder: Any, generators: Any, settings: Any, chosen: Any, workload: Workload, svg: bool,
               price_bound: float, limit: float) -> tuple[str, str]:
    """One hour's bilevel case as the study solves it: the MILP's status and how its tie-break ended."""
    result = aggregator_bilevel(feeder, generators, settings, chosen, workload, svg=svg, price_bound=price_bound,
                                linearization="strong-duality", time_limit=limit)
    return result.solve.status, result.tie_break


def whole_day(sites: int, svg: bool, workers: int, limit: float) -> dict[str, Any]:
    """One bilevel case in each of the example's 24 hours, as the study solves them, on
    ``workers`` processes (sim/execution/ordered_pool.py, as `dcmarket price --workers`)."""
    day, chosen, price = _hours(sites)
    tasks = [(inputs.feeder, inputs.generators, inputs.settings, chosen,
              Workload(table.total_kw, table.step_kw, table.svg_step_kvar, 0.0), svg, price.price_bound, limit)
             for inputs, table in day]
    started = time.perf_counter()
    with OrderedPool(workers, "grid.feeder.bilevel") as pool:
        outcomes = list(pool.map(_hour_case, tasks, "the hours"))
    statuses = {status for status, _ in outcomes}
    ends = [end for _, end in outcomes]
    return {"what": f"24 hours, {workers} process{'es' if workers > 1 else ''}", "hour": "0-23", "sites": sites,
            "svg": svg, "solver": "highs", "status": "optimal" if statuses == {"optimal"} else ", ".join(sorted(statuses)),
            "total_s": time.perf_counter() - started,
            "tie_break": f"{ends.count('optimal')} proven, {ends.count('node_limit')} at the node budget" if svg else "-"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 sites, HiGHS, no day")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per MILP (default 60)")
    parser.add_argument("--out", type=Path, default=HERE / "out", help="folder for the CSV")
    args = parser.parse_args(argv)
    solvers = ["highs"]
    if not args.quick:
        try:
            check_solver("glpk")
            solvers.append("glpk")
        except Exception:
            progress("glpsol not found: GLPK rows are left out (apt-get install glpk-utils)")
    rows: list[dict[str, Any]] = []
    path = args.out / CSV_NAME
    args.out.mkdir(parents=True, exist_ok=True)
    for sites in ((3,) if args.quick else (3, 5, 10)):
        for hour in HOURS:
            for svg in (False, True):
                for solver in solvers:
                    progress(f"{sites} sites, hour {hour}, {'SVG' if svg else 'no SVG'}, {solver}")
                    rows.append(one_hour(hour, sites, svg, solver, args.time_limit))
                    write_bench_csv(path, COLUMNS, rows)
    if not args.quick:
        for svg in (False, True):
            for workers in (1, 2):
                progress(f"the example's day with 10 sites, {'SVG' if svg else 'no SVG'}, {workers} process(es)")
                rows.append(whole_day(10, svg, workers, args.time_limit))
                write_bench_csv(path, COLUMNS, rows)

    def num(value: Any) -> str:
        return "-" if value is None else f"{value:.2f}"

    print(format_table(["what", "hour", "sites", "SVG", "solver", "status", "payment s", "tie-break s", "total s",
                        "payment $/h", "tie-break"],
                       [[r["what"], r["hour"], r["sites"], r["svg"], r["solver"], r["status"], num(r.get("payment_s")),
                         num(r.get("tie_break_s")), num(r.get("total_s")), num(r.get("payment_usd")),
                         r.get("tie_break", "-")] for r in rows]))
    print(f"\nCSV: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
