"""Two-stage mean-CVaR plan of flexible capacity modules: solve time and optimality gap against the
number of shock scenarios, HiGHS against GLPK, in one run.

For each scenario count S (default 5, 10, 20, 40, 80) the default study
(experiments/ieee33bw_plan.toml: IEEE 33-bus feeder, four data-center sites, four candidate hubs,
three module types) draws S demand-shock scenarios from its generator (seeded,
``stream(seed, "shocks")``; a draw of S starts with the draw of any smaller S) and solves two
models with ``grid.plan.milp.solve_plan``, the same call as ``dcmarket plan``: the sample model
(radius 0) and the distributionally robust model (the config's ``dro_radius``), both at the
config's lambda and alpha, to the config's mip_gap (or --mip-gap) with a per-solve time limit
(--time-limit, 300 s). HiGHS solves every S; GLPK, far slower on MILPs, the S up to
--glpk-max-scenarios (20).

    .venv/bin/python experiments/bench_fcm.py [--quick] [--out experiments/out]

Per solve the table reports the status, the wall seconds around ``solve_plan`` (build the Pyomo
model + solve + read the plan), the solver's seconds (``MilpOutcome.seconds``: Pyomo hands the
model over and the solver runs), the objective and best bound ($), the gap, the plan's Stage I
cost, units staged and hubs opened, and the model's size (columns, binaries, general integers,
rows, as ``grid.solvers.solve.solve_milp`` hands it to the solver).
Ratios are within this run: growth = solver seconds / those of the same model and solver at the
smallest S; GLPK / HiGHS = solver seconds at equal S and model (">" when a solve stopped at the
time limit: a lower bound). Where both solvers proved optimality, their objectives must agree to
the mip_gap (each is within it of the optimum): the "agree" column says "agree" or "DISAGREE";
where one stopped at the time limit it checks that each incumbent is no better than the other's
bound ("consistent" / "INCONSISTENT"). No timing is asserted.

The full run takes about 10-25 minutes (mostly GLPK); --quick (S = 5 and 10, GLPK on both)
about a minute. Progress goes to stderr; writes bench_fcm.csv, rewritten after every solve, so an
interrupted run leaves the rows so far.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run as a script: the packages are this checkout's
    sys.path.insert(0, str(REPO))


from grid.errors import GridError, SolverError  # noqa: E402
from grid.plan.milp import RiskSettings, solve_plan  # noqa: E402
from grid.plan.shocks import draw_shocks  # noqa: E402
from grid.solvers.names import check_solver  # noqa: E402
from sim.config.schema import load_config  # noqa: E402
from sim.output.files import write_bench_csv  # noqa: E402
from sim.random_streams import stream  # noqa: E402
from sim.report.text import format_table  # noqa: E402
from sim.studies.plan import listed_plan_data, shock_sites  # noqa: E402

DEFAULT_CONFIG = HERE / "ieee33bw_plan.toml"
DEFAULT_SCENARIOS = [5, 10, 20, 40, 80]
QUICK_SCENARIOS = [5, 10]
SOLVER_NAMES = {"highs": "HiGHS", "glpk": "GLPK"}
AGREE_SLACK = 1e-6  # relative, on top of the mip_gap: solver feasibility tolerances
CSV_NAME = "bench_fcm.csv"
COLUMNS = [
    "model", "radius", "solver", "scenarios", "status", "wall_s", "build_s", "solver_s", "objective_usd",
    "bound_usd", "gap_pct", "plan_cost_usd", "risk_term_usd", "units", "open_hubs", "variables", "binaries",
    "integers", "constraints", "growth_vs_smallest_s", "glpk_over_highs", "rel_diff_vs_highs", "agreement",
    "lambda", "alpha", "mip_gap", "time_limit_s", "seed", "note",
]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def ticker(label: str, started: float, every: float = 30.0) -> Iterator[None]:
    """A line on stderr every ``every`` seconds while a solve runs."""
    stop = threading.Event()

    def tick() -> None:
        begun = time.perf_counter()
        while not stop.wait(every):
            now = time.perf_counter()
            progress(f"    ... {label}: {now - begun:.0f} s so far (run {now - started:.0f} s)")

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def measure(data, shocks, risk: RiskSettings, solver: str, mip_gap: float, time_limit: float,
            label: str, started: float) -> dict[str, Any]:
    begun = time.perf_counter()
    try:
        with ticker(label, started):
            solution = solve_plan(data, shocks, risk, solver=solver, mip_gap=mip_gap, time_limit=time_limit)
    except (SolverError, GridError) as error:
        return {"status": "error", "wall_s": time.perf_counter() - begun, "note": str(error)}
    wall = time.perf_counter() - begun
    outcome = solution.solve
    return {
        "status": outcome.status, "wall_s": wall, "build_s": wall - outcome.seconds, "solver_s": outcome.seconds,
        "objective_usd": outcome.objective, "bound_usd": outcome.bound, "gap_pct": 100.0 * outcome.gap,
        "plan_cost_usd": solution.plan.cost, "risk_term_usd": solution.risk_term,
        "units": int(solution.plan.stock(data).sum()), "open_hubs": " ".join(solution.plan.open_hubs) or "-",
        # The MILP as the solver saw it (grid.solvers.solve.solve_milp counts it).
        "variables": outcome.columns, "binaries": outcome.binaries, "integers": outcome.integers,
        "constraints": outcome.rows,
    }


def fill_comparisons(rows: list[dict[str, Any]], mip_gap: float) -> None:
    """Growth against the smallest S, GLPK / HiGHS at equal S, and whether the objectives agree."""
    solved = [r for r in rows if r.get("solver_s") is not None]
    for r in solved:
        same = [o for o in solved if o["model"] == r["model"] and o["solver"] == r["solver"]]
        base = min(same, key=lambda o: o["scenarios"])
        r["growth_vs_smallest_s"] = r["solver_s"] / base["solver_s"] if base["solver_s"] > 0 else float("nan")
    for r in rows:
        if r["solver"] != "glpk":
            continue
        highs = next((o for o in rows if o["solver"] == "highs" and o["model"] == r["model"]
                      and o["scenarios"] == r["scenarios"]), None)
        if highs is None or highs.get("solver_s") is None or r.get("solver_s") is None:
            r["agreement"] = "n/a"
            continue
        r["glpk_over_highs"] = r["solver_s"] / highs["solver_s"] if highs["solver_s"] > 0 else float("nan")
        scale = max(1.0, abs(highs["objective_usd"]))
        r["rel_diff_vs_highs"] = (r["objective_usd"] - highs["objective_usd"]) / scale
        tolerance = mip_gap + AGREE_SLACK
        if r["status"] == "optimal" and highs["status"] == "optimal":
            r["agreement"] = "agree" if abs(r["rel_diff_vs_highs"]) <= tolerance else "DISAGREE"
        else:
            # Neither incumbent may beat the other solver's proven bound.
            ok = (r["objective_usd"] >= highs["bound_usd"] - tolerance * scale
                  and highs["objective_usd"] >= r["bound_usd"] - tolerance * scale)
            r["agreement"] = "consistent" if ok else "INCONSISTENT"


def _num(value: Any, fmt: str, missing: str = "-") -> str:
    return missing if value is None else format(value, fmt)


def table(rows: list[dict[str, Any]]) -> str:
    headers = ["S", "model", "solver", "status", "wall (s)", "solver (s)", "objective ($)", "bound ($)",
               "gap (%)", "plan cost ($)", "units", "hubs", "cols", "bin", "int", "rows", "growth (x)",
               "GLPK/HiGHS (x)", "diff vs HiGHS (%)", "agree"]
    out = []
    for r in rows:
        capped = ">" if r["status"] == "time_limit" else ""
        growth = r.get("growth_vs_smallest_s")
        ratio = r.get("glpk_over_highs")
        diff = r.get("rel_diff_vs_highs")
        out.append((
            str(r["scenarios"]), r["model"], SOLVER_NAMES[r["solver"]], r["status"], _num(r.get("wall_s"), ".1f"),
            _num(r.get("solver_s"), ".1f"), _num(r.get("objective_usd"), ",.0f"), _num(r.get("bound_usd"), ",.0f"),
            _num(r.get("gap_pct"), ".3f"), _num(r.get("plan_cost_usd"), ",.0f"), _num(r.get("units"), "d"),
            r.get("open_hubs", "-"), _num(r.get("variables"), ",d"), _num(r.get("binaries"), ",d"),
            _num(r.get("integers"), ",d"), _num(r.get("constraints"), ",d"),
            "-" if growth is None else capped + format(growth, ".1f"),
            "-" if ratio is None else (">" if r["status"] == "time_limit" else "") + format(ratio, ".1f"),
            "-" if diff is None else format(100.0 * diff, "+.4f"), r.get("agreement", ""),
        ))
    right = [True, False, False, False] + [True] * 9 + [True] * 7
    right[11] = False
    right[19] = False
    return format_table(headers, out, right)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    write_bench_csv(path, COLUMNS, rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="S = 5 and 10 (GLPK on both): about a minute")
    parser.add_argument("--scenarios", type=int, nargs="+", default=None,
                        help=f"scenario counts S [default: {' '.join(map(str, DEFAULT_SCENARIOS))}; "
                             f"--quick {' '.join(map(str, QUICK_SCENARIOS))}]")
    parser.add_argument("--glpk-max-scenarios", type=int, default=20,
                        help="GLPK solves only the S up to this (0: no GLPK)")
    parser.add_argument("--time-limit", type=float, default=300.0, help="per-solve time limit (s)")
    parser.add_argument("--mip-gap", type=float, default=None, help="relative MIP gap [default: the config's mip_gap]")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="study config with a [plan] table")
    parser.add_argument("--seed", type=int, default=None, help="[default: the config's seed]")
    parser.add_argument("--out", type=Path, default=HERE / "out", help=f"folder for {CSV_NAME}")
    args = parser.parse_args(argv)
    if args.scenarios is None:
        args.scenarios = QUICK_SCENARIOS if args.quick else DEFAULT_SCENARIOS
    args.scenarios = sorted(set(args.scenarios))
    if args.scenarios[0] < 1:
        parser.error("--scenarios: counts must be at least 1")
    if args.time_limit <= 0:
        parser.error("--time-limit: must be positive")
    if args.mip_gap is not None and not 0 < args.mip_gap < 1:
        parser.error("--mip-gap: must be in (0, 1)")
    if args.seed is not None and args.seed < 0:
        parser.error("--seed: must be a non-negative integer")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    config = load_config(args.config, {"seed": args.seed})
    plan = config.plan
    if plan is None or plan.sites is None:
        raise SystemExit(f"{args.config}: needs a [plan] table with [[plan.sites]]")
    data = listed_plan_data(config, args.config.parent)
    settings = plan.shock_settings()
    mip_gap = args.mip_gap if args.mip_gap is not None else plan.mip_gap
    models = [("sample", RiskSettings(plan.lam, plan.alpha, 0.0))]
    if plan.dro_radius > 0:
        models.append(("dro", RiskSettings(plan.lam, plan.alpha, plan.dro_radius)))
    solvers = []
    for name in ("highs", "glpk"):
        if name == "glpk" and args.glpk_max_scenarios < args.scenarios[0]:
            continue
        try:
            check_solver(name)
        except (GridError, SolverError) as error:
            progress(f"skipping {SOLVER_NAMES[name]}: {error}")
            continue
        solvers.append(name)
    if not solvers:
        raise SystemExit("no solver available")
    jobs = [(count, model, risk, solver) for count in args.scenarios for model, risk in models for solver in solvers
            if solver != "glpk" or count <= args.glpk_max_scenarios]
    target = args.out / CSV_NAME
    progress(f"{len(jobs)} solves on {data.network_name}: {len(data.sites)} sites, {len(data.hubs)} hubs, "
             f"{len(data.modules)} module types; lambda {plan.lam:g}, alpha {plan.alpha:g}, radius "
             f"{plan.dro_radius:g}, mip_gap {mip_gap:g}, time limit {args.time_limit:g} s, seed {config.seed}")
    rows: list[dict[str, Any]] = []
    shocks_by_count = {}
    for position, (count, model, risk, solver) in enumerate(jobs, start=1):
        if count not in shocks_by_count:
            shocks_by_count[count] = draw_shocks(shock_sites(data), settings, count, stream(config.seed, "shocks"))
        label = f"[{position}/{len(jobs)}] S={count} {model} {SOLVER_NAMES[solver]}"
        progress(f"{label} ... (run {time.perf_counter() - started:.0f} s)")
        row: dict[str, Any] = {"model": model, "radius": risk.radius, "solver": solver, "scenarios": count,
                               "lambda": risk.lam, "alpha": risk.alpha, "mip_gap": mip_gap,
                               "time_limit_s": args.time_limit, "seed": config.seed}
        row.update(measure(data, shocks_by_count[count], risk, solver, mip_gap, args.time_limit, label, started))
        rows.append(row)
        if row["status"] == "error":
            progress(f"{label}: error after {row['wall_s']:.1f} s: {row['note']}")
        else:
            progress(f"{label}: {row['status']} in {row['wall_s']:.1f} s (solver {row['solver_s']:.1f} s), "
                     f"gap {row['gap_pct']:.3f} %, objective {row['objective_usd']:,.0f} $")
        fill_comparisons(rows, mip_gap)
        write_csv(target, rows)
    print(f"Flexible-capacity MILP (docs/models/plan.md) on {data.network_name}, {args.config.name}: "
          f"lambda {plan.lam:g}, alpha {plan.alpha:g}, DRO radius {plan.dro_radius:g}; mip_gap {mip_gap:g}, "
          f"time limit {args.time_limit:g} s per solve; GLPK up to S = {args.glpk_max_scenarios}; seed "
          f"{config.seed}\n")
    print(table(rows))
    print("\nwall = build + solve + read the plan (solve_plan); solver = MilpOutcome.seconds; gap = (objective - "
          "bound) / max(1, |objective|); plan cost = Stage I set-up + transport; units = modules staged; cols/bin/"
          "int/rows = unfixed variables, binaries, general integers, constraints of the MILP; growth = solver s / "
          "those at the smallest S (same model and solver); GLPK/HiGHS = solver s at equal S and model (\">\" = the "
          f"solve hit the time limit: a lower bound); agree = objectives within mip_gap + {AGREE_SLACK:g} "
          "(both optimal), or each incumbent no better than the other's bound (consistent).")
    errors: dict[str, list[str]] = {}  # message -> the solves that failed with it
    for r in rows:
        if r["status"] == "error":
            errors.setdefault(r["note"], []).append(f"S={r['scenarios']} {r['model']} {SOLVER_NAMES[r['solver']]}")
    for note, which in errors.items():
        print(f"- error in {', '.join(which)}: {note}")
    print(f"\nWrote {target} ({len(rows)} rows) in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
