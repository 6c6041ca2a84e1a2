"""The flexible-capacity plan on many scenarios by scenario groups: time to a certified gap against
the scenario count, with the monolithic MILP beside it, in one run.

For each S (default 30, 100, 300, 1,000) the default study (experiments/ieee33bw_plan.toml) draws
S in-sample scenarios (``stream(seed, "shocks")``, as the study does) and runs
``grid.plan.groups.solve_by_groups`` for its sample model (lambda 0.25, alpha 0.9), or with --radius
its robust model (two rounds, the second with the dearest scenarios in every group): groups of
--group-size scenarios, each the study's MILP at its mip_gap, on --workers processes; the lower
bound is the groups' weighted MILP bounds, the upper bound the best group plan evaluated on all S
scenarios. Up to --monolithic-max scenarios the whole MILP is solved too, to the same gap with a
--time-limit, for its objective and bound.

    .venv/bin/python experiments/bench_fcm_groups.py [--scenarios 30 100] [--out experiments/out]

Writes bench_fcm_groups.csv. No timing is asserted; "within" says whether the monolithic MILP's
plan cost lies between the groups' bounds (it must, up to its own gap).
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

from grid.plan.groups import solve_by_groups  # noqa: E402
from grid.plan.milp import RiskSettings, solve_plan  # noqa: E402
from grid.plan.shocks import draw_shocks  # noqa: E402
from sim.config.schema import load_config  # noqa: E402
from sim.execution.ordered_pool import OrderedPool  # noqa: E402
from sim.output.files import write_bench_csv  # noqa: E402
from sim.random_streams import stream  # noqa: E402
from sim.report.text import format_table  # noqa: E402
from sim.studies.plan import listed_plan_data, shock_sites  # noqa: E402

DEFAULT_CONFIG = HERE / "ieee33bw_plan.toml"
CSV_NAME = "bench_fcm_groups.csv"
COLUMNS = ["scenarios", "radius", "rounds", "group_size", "groups", "workers", "seconds", "lower_usd", "upper_usd", "gap_pct", "candidates",
           "hubs", "units", "monolithic_seconds", "monolithic_status", "monolithic_objective_usd",
           "monolithic_bound_usd", "within", "seed"]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--scenarios", type=int, nargs="+", default=[30, 100, 300, 1000])
    parser.add_argument("--group-size", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--monolithic-max", type=int, default=100, help="largest S solved as one MILP too")
    parser.add_argument("--time-limit", type=float, default=600.0, help="the monolithic MILP's time limit (s)")
    parser.add_argument("--radius", type=float, default=0.0, help="total-variation radius; 0: the sample model")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="study config with a [plan] table")
    parser.add_argument("--out", type=Path, default=HERE / "out", help=f"folder for {CSV_NAME}")
    args = parser.parse_args(argv)
    if min(args.scenarios) < 1 or max(args.scenarios) > 100_000 or args.group_size < 1:
        parser.error("--scenarios: 1 to 100,000; --group-size: at least 1")
    if not 0.0 <= args.radius <= 1.0:
        parser.error(f"--radius: {args.radius:g} is not a total-variation radius; give 0 to 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = load_config(args.config)
    plan = config.plan
    data = listed_plan_data(config, args.config.parent)
    risk = RiskSettings(plan.lam, plan.alpha, args.radius)
    rows: list[dict[str, Any]] = []
    with OrderedPool(args.workers, "grid.plan.milp") as pool:
        for count in sorted(set(args.scenarios)):
            shocks = draw_shocks(shock_sites(data), plan.shock_settings(), count, stream(config.seed, "shocks"))
            progress(f"S = {count:,}: groups of {args.group_size} on {args.workers} process(es) ...")
            started = time.perf_counter()
            result = solve_by_groups(data, shocks, risk, group_size=args.group_size, mip_gap=plan.mip_gap,
                                     mapper=lambda work, tasks: pool.map(work, tasks, "a group's MILP"),
                                     workers=args.workers, progress=progress)
            row: dict[str, Any] = {
                "scenarios": count, "radius": args.radius, "rounds": result.rounds, "group_size": args.group_size, "groups": result.groups, "workers": args.workers,
                "seconds": time.perf_counter() - started, "lower_usd": result.bound, "upper_usd": result.objective,
                "gap_pct": 100.0 * result.gap, "candidates": result.candidates, "hubs": " ".join(result.plan.open_hubs),
                "units": int(result.plan.stock(data).sum()), "seed": config.seed}
            if count <= args.monolithic_max:
                progress(f"S = {count:,}: the monolithic MILP ...")
                started = time.perf_counter()
                whole = solve_plan(data, shocks, risk, mip_gap=plan.mip_gap, time_limit=args.time_limit)
                row.update(monolithic_seconds=time.perf_counter() - started, monolithic_status=whole.solve.status,
                           monolithic_objective_usd=whole.objective, monolithic_bound_usd=whole.solve.bound,
                           within="yes" if result.bound <= whole.objective * (1 + plan.mip_gap) + 1e-6
                           and whole.solve.bound <= result.objective + 1e-6 else "NO")
            rows.append(row)
            progress(f"S = {count:,}: bounds {result.bound:,.1f} to {result.objective:,.1f} $, gap {result.gap:.2%}, "
                     f"{row['seconds']:.0f} s")

    def money(value: Any) -> str:
        return "-" if value is None else f"{value:,.1f}"

    print(f"The plan by scenario groups (docs/models/plan.md#fcm-groups) on {data.network_name}, {args.config.name}: "
          f"{'robust model, radius ' + format(args.radius, 'g') if args.radius else 'sample model'}, lambda {plan.lam:g}, "
          f"alpha {plan.alpha:g}; MIP gap {plan.mip_gap:g}; seed {config.seed}\n")
    print(format_table(
        ["S", "groups", "rounds", "s", "lower ($)", "upper ($)", "gap", "plans", "hubs", "units", "monolithic s", "status",
         "objective ($)", "bound ($)", "within"],
        [(f"{r['scenarios']:,}", f"{r['groups']} x {r['group_size']}", str(r["rounds"]), f"{r['seconds']:.1f}", money(r["lower_usd"]),
          money(r["upper_usd"]), f"{r['gap_pct']:.2f} %", str(r["candidates"]), r["hubs"], str(r["units"]),
          f"{r['monolithic_seconds']:.1f}" if "monolithic_seconds" in r else "-", r.get("monolithic_status", "-"),
          money(r.get("monolithic_objective_usd")), money(r.get("monolithic_bound_usd")), r.get("within", "-"))
         for r in rows], [True, False, True, True, True, True, True, True, False, True, True, False, True, True, False]))
    target = args.out / CSV_NAME
    write_bench_csv(target, COLUMNS, rows)
    print(f"\nWrote {target} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
