"""Stage II of a fixed flexible-capacity plan on many scenarios: time per scenario of the reduced
rows on HiGHS (grid.plan.dispatch) on 1 and 2 worker processes, against the rows without the
reduction and the Pyomo path, in one run.

The plan is the default study's robust plan (experiments/ieee33bw_plan.toml; hubs H6 with 7
storage and 1 demand-response units, H13 with 5 storage and 1 generator: every module kind), and
the scenarios the study's generator (seeded, ``stream(seed, "shocks_out_of_sample")``).

    .venv/bin/python experiments/bench_fcm_evaluation.py [--scenarios 10000] [--out experiments/out]

Rows: ``reduced`` (the default: stretches reduced, straight on HiGHS) on 1 and on 2 worker
processes over --scenarios scenarios; ``per-step`` (no reduction) and ``pyomo`` (the same rows
through Pyomo's HiGHS interface) on --compare scenarios, the first of the same draw, one process.
Ratios are per scenario against ``reduced`` on one process. Every row's mean Q_s over the first
--compare scenarios must agree (the "same" column); E[Q] comes with its 95 % interval. No timing
is asserted. Writes bench_fcm_evaluation.csv.
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

import numpy as np  # noqa: E402

from grid.plan.dispatch import BATCH, batch_size, evaluate_stock  # noqa: E402
from grid.plan.milp import plan_from_choice  # noqa: E402
from grid.plan.risk import mean_interval  # noqa: E402
from grid.plan.shocks import draw_shocks  # noqa: E402
from sim.config.schema import load_config  # noqa: E402
from sim.execution.ordered_pool import OrderedPool  # noqa: E402
from sim.output.files import write_bench_csv  # noqa: E402
from sim.random_streams import stream  # noqa: E402
from sim.report.text import format_table  # noqa: E402
from sim.studies.plan import listed_plan_data, shock_sites  # noqa: E402

DEFAULT_CONFIG = HERE / "ieee33bw_plan.toml"
CSV_NAME = "bench_fcm_evaluation.csv"
PLAN = {("bess", "H6", "S1"): 7, ("dr", "H6", "S1"): 1, ("bess", "H13", "S2"): 5, ("gen", "H13", "S2"): 1}
COLUMNS = ["method", "workers", "scenarios", "seconds", "ms_per_scenario", "vs_reduced_1", "expected_cost_usd",
           "ci_low_usd", "ci_high_usd", "first_mean_usd", "same", "seed"]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(method: str, workers: int, data, stock, shocks, compare: int) -> dict[str, Any]:
    started = time.perf_counter()
    with OrderedPool(workers, "grid.plan.dispatch") as pool:
        ev = evaluate_stock(data, stock, shocks, aggregate=method != "per-step", solver="highs",
                            mapper=lambda work, tasks: pool.map(work, tasks, "Stage II"),
                            batch=batch_size(shocks.count, workers), progress=progress)
    seconds = time.perf_counter() - started
    low, high = mean_interval(ev.cost)
    return {"method": method, "workers": workers, "scenarios": shocks.count, "seconds": seconds,
            "ms_per_scenario": 1e3 * seconds / shocks.count, "expected_cost_usd": float(ev.cost.mean()),
            "ci_low_usd": low, "ci_high_usd": high, "first_mean_usd": float(ev.cost[:compare].mean())}


def measure_pyomo(data, stock, shocks) -> dict[str, Any]:
    """The same rows built into a Pyomo model and solved through its HiGHS interface, per scenario."""
    from grid.plan import dispatch

    started = time.perf_counter()
    costs = np.zeros(shocks.count)
    for s in range(shocks.count):
        one = shocks.subset([s])
        rows = dispatch.stage_two_rows(data, one, stock=stock, tie_break=dispatch.UNIT_TIE_BREAK_USD)
        if rows.events:
            costs[s] = rows.scenario_costs(dispatch._solve_rows_pyomo(rows, "highs"))[0]
    seconds = time.perf_counter() - started
    low, high = mean_interval(costs)
    return {"method": "pyomo", "workers": 1, "scenarios": shocks.count, "seconds": seconds,
            "ms_per_scenario": 1e3 * seconds / shocks.count, "expected_cost_usd": float(costs.mean()),
            "ci_low_usd": low, "ci_high_usd": high, "first_mean_usd": float(costs.mean())}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--scenarios", type=int, default=10_000, help="scenarios of the reduced rows")
    parser.add_argument("--compare", type=int, default=500, help="scenarios of the per-step and Pyomo rows")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="study config with a [plan] table")
    parser.add_argument("--out", type=Path, default=HERE / "out", help=f"folder for {CSV_NAME}")
    args = parser.parse_args(argv)
    if not 1 <= args.compare <= args.scenarios <= 1_000_000:
        parser.error("--compare and --scenarios: give 1 <= compare <= scenarios <= 1,000,000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = load_config(args.config)
    plan = config.plan
    data = listed_plan_data(config, args.config.parent)
    stock = plan_from_choice(data, ["H6", "H13"], PLAN).stock(data)
    shocks = draw_shocks(shock_sites(data), plan.shock_settings(), args.scenarios,
                         stream(config.seed, "shocks_out_of_sample"))
    first = shocks.subset(slice(0, args.compare))
    rows = []
    for method, workers, sample in (("reduced", 1, shocks), ("reduced", 2, shocks), ("per-step", 1, first)):
        progress(f"{method} on {workers} process(es), {sample.count:,} scenarios ...")
        rows.append(measure(method, workers, data, stock, sample, args.compare))
    progress(f"pyomo, {first.count:,} scenarios ...")
    rows.append(measure_pyomo(data, stock, first))
    base = rows[0]["ms_per_scenario"]
    for row in rows:
        row["vs_reduced_1"] = row["ms_per_scenario"] / base
        row["same"] = "same" if abs(row["first_mean_usd"] - rows[0]["first_mean_usd"]) <= 0.02 else "DIFFERENT"
        row["seed"] = config.seed
    print(f"Stage II of a fixed plan (docs/models/plan.md#fcm-evaluation) on {data.network_name}, "
          f"{args.config.name}: H6 7 bess + 1 dr, H13 5 bess + 1 gen; {BATCH} scenarios a task at most\n")
    print(format_table(["method", "processes", "scenarios", "s", "ms/scenario", "x reduced", "E[Q] ($)",
                        "95 % interval ($)", f"mean of first {args.compare} ($)", "agree"],
                       [(r["method"], str(r["workers"]), f"{r['scenarios']:,}", f"{r['seconds']:.1f}",
                         f"{r['ms_per_scenario']:.2f}", f"{r['vs_reduced_1']:.2f}", f"{r['expected_cost_usd']:,.2f}",
                         f"{r['ci_low_usd']:,.2f} to {r['ci_high_usd']:,.2f}", f"{r['first_mean_usd']:,.4f}", r["same"])
                        for r in rows], [False] + [True] * 8 + [False]))
    target = args.out / CSV_NAME
    write_bench_csv(target, COLUMNS, rows)
    print(f"\nWrote {target} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
