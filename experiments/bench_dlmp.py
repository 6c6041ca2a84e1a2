"""The aggregator's bilevel problem on IEEE 37: solve time against the number of sites and SVG
levels, for the two linearizations of the payment (McCormick and strong duality), in one run.

The instance is the price study's (experiments/ieee37_price.toml: head 1.03 p.u., band 0.95-1.05
p.u., generators at 711 and 733): n sites of 600 kW at power factor 0.9 at the weak ends of the
feeder (738, 725, 731, 741, 735 in that order), 500 kW per site to place in 100-kW steps, and
SVGs of +-200 kvar per phase in 200- or 50-kvar steps (3 or 9 levels per phase). Each row is one
``grid.feeder.bilevel.aggregator_bilevel`` call, the call `dcmarket price` makes, with a per-solve
time limit (--time-limit, 60 s).

    .venv/bin/python experiments/bench_dlmp.py [--quick] [--out experiments/out]

Per solve the table reports the status, the wall seconds (build the KKT model + solve), the
solver's seconds, the aggregator's payment ($/h), the MIP gap and the model's size. Ratios are
within this run: McCormick / strong duality = solver seconds on the same instance (">" when
McCormick stopped at the time limit: a lower bound); "agree" checks that the two payments match
where both proved optimality. GLPK solves the strong-duality rows too (--glpk), as a second
solver on the same model. No timing is asserted.

The full run takes about 7 minutes (mostly McCormick at its time limit); --quick (two sites,
3 SVG levels) under a minute. Writes bench_dlmp.csv, rewritten after every solve.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run as a script: the packages are this checkout's
    sys.path.insert(0, str(REPO))

from grid.errors import GridError, SolverError  # noqa: E402
from grid.feeder.bilevel import DataCenterSite, Workload, aggregator_bilevel  # noqa: E402
from grid.feeder.inputs import DistributedGenerator, OpfSettings  # noqa: E402
from grid.network.three_phase import load_ieee37  # noqa: E402
from grid.solvers.names import check_solver  # noqa: E402
from sim.output.files import write_bench_csv  # noqa: E402
from sim.report.text import format_table  # noqa: E402

SITE_BUSES = (738, 725, 731, 741, 735)
SETTINGS = OpfSettings(45.0, 1.03, 0.95, 1.05)
GENERATORS = (DistributedGenerator("G711", 711, 150.0, 55.0), DistributedGenerator("G733", 733, 150.0, 58.0))
SVG_STEPS = {3: 200.0, 9: 50.0}  # levels per phase -> step (kvar) for a +-200 kvar SVG
CSV_NAME = "bench_dlmp.csv"
COLUMNS = ["sites", "svg_levels", "linearization", "solver", "status", "wall_s", "solver_s", "payment_usd_per_h",
           "gap_pct", "columns", "binaries", "rows", "mccormick_over_strong_duality", "agreement", "time_limit_s",
           "note"]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(feeder, sites: int, levels: int, linearization: str, solver: str, time_limit: float) -> dict[str, Any]:
    chosen = tuple(DataCenterSite(bus, 600.0, power_factor=0.9, svg_kvar=200.0) for bus in SITE_BUSES[:sites])
    workload = Workload(500.0 * sites, 100.0, SVG_STEPS.get(levels, 200.0))
    begun = time.perf_counter()
    try:
        result = aggregator_bilevel(feeder, GENERATORS, SETTINGS, chosen, workload, svg=levels > 0, price_bound=1e4,
                                    linearization=linearization, solver=solver, time_limit=time_limit)
    except (SolverError, GridError) as error:
        return {"status": "error", "wall_s": time.perf_counter() - begun, "note": str(error)}
    outcome = result.solve
    return {"status": outcome.status, "wall_s": time.perf_counter() - begun, "solver_s": outcome.seconds,
            "payment_usd_per_h": result.payment_per_h, "gap_pct": 100.0 * outcome.gap, "columns": outcome.columns,
            "binaries": outcome.binaries, "rows": outcome.rows}


def fill_comparisons(rows: list[dict[str, Any]]) -> None:
    """McCormick against strong duality (HiGHS) on the same instance, and GLPK against HiGHS."""
    for r in rows:
        if r["linearization"] == "strong-duality" and r["solver"] == "highs":
            continue
        base = next((o for o in rows if (o["sites"], o["svg_levels"]) == (r["sites"], r["svg_levels"])
                     and o["linearization"] == "strong-duality" and o["solver"] == "highs"), None)
        if base is None or base.get("solver_s") is None or r.get("solver_s") is None:
            continue
        if r["linearization"] == "mccormick" and base["solver_s"] > 0:
            r["mccormick_over_strong_duality"] = r["solver_s"] / base["solver_s"]
        if r["status"] == "optimal" and base["status"] == "optimal":
            same = abs(r["payment_usd_per_h"] - base["payment_usd_per_h"]) <= 1e-6 * max(1.0, base["payment_usd_per_h"])
            r["agreement"] = "agree" if same else "DISAGREE"
        else:
            r["agreement"] = "n/a"


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table(rows: list[dict[str, Any]]) -> str:
    headers = ["sites", "SVG levels", "linearization", "solver", "status", "wall (s)", "solver (s)", "payment ($/h)",
               "gap (%)", "cols", "bin", "rows", "McCormick / SD (x)", "agree"]
    out = []
    for r in rows:
        ratio = r.get("mccormick_over_strong_duality")
        out.append((str(r["sites"]), str(r["svg_levels"] or "no SVG"), r["linearization"], r["solver"], r["status"],
                    _num(r.get("wall_s"), ".1f"), _num(r.get("solver_s"), ".2f"),
                    _num(r.get("payment_usd_per_h"), ".4f"), _num(r.get("gap_pct"), ".3f"),
                    _num(r.get("columns"), ",d"), _num(r.get("binaries"), ",d"), _num(r.get("rows"), ",d"),
                    "-" if ratio is None else (">" if r["status"] == "time_limit" else "") + format(ratio, ".1f"),
                    r.get("agreement", "")))
    return format_table(headers, out, [True, True, False, False, False] + [True] * 8 + [False])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two sites, 3 SVG levels: under a minute")
    parser.add_argument("--sites", type=int, nargs="+", default=None, help="site counts [default: 2 3 4 5]")
    parser.add_argument("--time-limit", type=float, default=60.0, help="per-solve time limit (s)")
    parser.add_argument("--no-glpk", action="store_true", help="skip the GLPK rows")
    parser.add_argument("--out", type=Path, default=HERE / "out", help=f"folder for {CSV_NAME}")
    args = parser.parse_args(argv)
    if args.sites is None:
        args.sites = [2] if args.quick else [2, 3, 4, 5]
    if not all(1 <= n <= len(SITE_BUSES) for n in args.sites):
        parser.error(f"--sites: counts from 1 to {len(SITE_BUSES)}")
    if args.time_limit <= 0:
        parser.error("--time-limit: must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    feeder = load_ieee37()
    solvers = ["highs"]
    if not args.no_glpk:
        try:
            check_solver("glpk")
            solvers.append("glpk")
        except (GridError, SolverError) as error:
            progress(f"skipping GLPK: {error}")
    levels = [0, 3] if args.quick else [0, 3, 9]
    jobs = [(n, level, linearization, solver) for n in sorted(set(args.sites)) for level in levels
            for linearization in ("strong-duality", "mccormick") for solver in solvers
            if solver == "highs" or linearization == "strong-duality"]
    target = args.out / CSV_NAME
    rows: list[dict[str, Any]] = []
    for position, (n, level, linearization, solver) in enumerate(jobs, start=1):
        label = f"[{position}/{len(jobs)}] {n} sites, {level or 'no'} SVG levels, {linearization}, {solver}"
        progress(f"{label} ... (run {time.perf_counter() - started:.0f} s)")
        row: dict[str, Any] = {"sites": n, "svg_levels": level, "linearization": linearization, "solver": solver,
                               "time_limit_s": args.time_limit}
        row.update(measure(feeder, n, level, linearization, solver, args.time_limit))
        rows.append(row)
        progress(f"{label}: {row['status']} in {row['wall_s']:.1f} s")
        fill_comparisons(rows)
        write_bench_csv(target, COLUMNS, rows)
    print(table(rows))
    for r in rows:
        if r["status"] == "error":
            print(f"error, {r['sites']} sites, {r['svg_levels'] or 'no'} SVG levels, {r['linearization']}, "
                  f"{r['solver']}: {r['note']}")
    print(f"\n{len(rows)} solves in {time.perf_counter() - started:.0f} s; wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
