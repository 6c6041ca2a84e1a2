"""Speed and memory of the Pyomo capacity models: firm (1)-(2) and flexible CVaR (17).

Part a, scenario scaling on 'paper-4bus' (spec 5.1 loads, D = {3: 40, 4: 30} MW, eps = 0.05):
for each scenario count S, firm_capacity and flexible_capacity with HiGHS and GLPK (GLPK is
skipped if glpsol is missing), and the flexible model with every scenario row
(``_flexible_capacity(..., tail_only=False)``) against the default tail-only rows.

Part b, network scaling: random radial networks of N buses (a random tree rooted at bus 1),
10 candidate buses and S = 2,000, firm and flexible with HiGHS.

Times are the best of up to --repeats runs (repeats stop once a measurement has used 2 s); peak
memory comes from one extra run under tracemalloc, so tracing never slows the timed runs. The
solve call is split into "solver" (HiGHS's run() or glpsol's wall time) and "translate"
(Pyomo handing the model to the solver and reading the answer back); the rest is "build"
(numpy background terms and Pyomo model construction).

    .venv/bin/python experiments/bench_capacity.py [--quick] [--out experiments/out]

Prints one table per part and writes bench_capacity.csv (one row per measurement).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

import grid.capacity_lp as capacity_lp
import grid.solvers as grid_solvers
from grid.cases import load_case
from grid.capacity_lp import CapacityResult
from grid.errors import SolverError
from grid.firm import firm_capacity
from grid.flexible import _flexible_capacity, flexible_capacity
from grid.network import Bus, Line, Network
from grid.scenarios import Scenarios, TruncatedNormalLoad, sample_truncated_normal
from grid.shift_factors import shared_shift_factors, shift_factors
from grid.solvers import check_solver
from sim.outputs import write_table_csv
from sim.random_streams import stream

HERE = Path(__file__).resolve().parent

# Spec 5.1 background loads of the paper's 4-bus case (as in experiments/paper_4bus_*.toml).
PAPER_LOADS = {
    1: TruncatedNormalLoad(25.0, 5.0, 20.0, 30.0),
    2: TruncatedNormalLoad(25.0, 5.0, 20.0, 30.0),
    3: TruncatedNormalLoad(15.0, 5.0, 10.0, 20.0),
    4: TruncatedNormalLoad(20.0, 5.0, 10.0, 30.0),
}
PAPER_DEMAND_MW = {3: 40.0, 4: 30.0}
EPSILON = 0.05

# A measurement is repeated (up to --repeats) only while its runs together took less than this.
REPEAT_BUDGET_S = 2.0

CSV_FIELDS = [
    "part", "case", "buses", "lines", "candidates", "scenarios", "solver", "model", "variant",
    "seconds", "build_seconds", "translate_seconds", "solver_seconds", "solve_calls", "runs",
    "peak_mb", "constraints", "variables", "ratio_glpk_highs", "ratio_full_tail_time",
    "ratio_full_tail_memory", "ratio_time_to_smallest", "ratio_buses_to_smallest",
    "capacity_total_mw", "demand_total_mw", "unserved_ratio", "increment_total_mw", "capacity_mw",
    "increment_mw",
]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Measuring one model call


@dataclass
class Measurement:
    result: CapacityResult
    seconds: float             # best wall time of the timed runs
    build_seconds: float       # outside the solve calls: numpy + Pyomo model construction
    translate_seconds: float   # inside the solve calls but outside the solver itself
    solver_seconds: float      # HiGHS run() / glpsol wall time
    solve_calls: int
    runs: int
    peak_mb: float
    constraints: int
    variables: int


class _SolveSpy:
    """Times the solve calls of grid.capacity_lp and the solver proper, while active.

    Patches, for the duration of ``active()`` only: ``grid.capacity_lp.solve`` (the solve call:
    Pyomo -> solver -> Pyomo), ``grid.solvers._run`` (reads glpsol's wall time from Pyomo's
    results) and ``highspy.Highs.run`` (the HiGHS solve itself). Model sizes are read from the
    first model solved when ``count_size`` is set (counting is kept out of the timed runs).
    """

    def __init__(self) -> None:
        self.solve_seconds = 0.0
        self.solver_seconds = 0.0
        self.calls = 0
        self.constraints = 0
        self.variables = 0
        self.count_size = False

    def reset(self, count_size: bool = False) -> None:
        self.solve_seconds = self.solver_seconds = 0.0
        self.calls = self.constraints = self.variables = 0
        self.count_size = count_size

    @contextlib.contextmanager
    def active(self) -> Iterator["_SolveSpy"]:
        spy = self
        original_solve = capacity_lp.solve
        original_run = grid_solvers._run

        def timed_solve(model, solver):
            if spy.count_size and spy.calls == 0:
                spy.constraints = model.nconstraints()
                spy.variables = model.nvariables()
            spy.calls += 1
            start = time.perf_counter()
            try:
                return original_solve(model, solver)
            finally:
                spy.solve_seconds += time.perf_counter() - start

        def timed_run(model, solver):
            results, condition = original_run(model, solver)
            if solver == "glpk":
                elapsed = getattr(results.solver, "time", None)
                if isinstance(elapsed, (int, float)) and math.isfinite(elapsed):
                    spy.solver_seconds += float(elapsed)
            return results, condition

        highs_class, original_highs_run = _highs_class()
        if highs_class is not None:
            def highs_run(self, *args, **kwargs):
                start = time.perf_counter()
                try:
                    return original_highs_run(self, *args, **kwargs)
                finally:
                    spy.solver_seconds += time.perf_counter() - start

            had_own_run = "run" in highs_class.__dict__
            highs_class.run = highs_run
        capacity_lp.solve = timed_solve
        grid_solvers._run = timed_run
        try:
            yield self
        finally:
            capacity_lp.solve = original_solve
            grid_solvers._run = original_run
            if highs_class is not None:
                if had_own_run:
                    highs_class.run = original_highs_run
                else:
                    del highs_class.run


def _highs_class() -> tuple[Any, Any]:
    try:
        import highspy
    except ImportError:
        return None, None
    cls = highspy.Highs
    return cls, cls.run


SPY = _SolveSpy()


def measure(call: Callable[[], CapacityResult], repeats: int, trace_memory: bool) -> Measurement:
    """Best-of-``repeats`` wall time (stopping early past REPEAT_BUDGET_S), then one traced run."""
    best: tuple[float, float, float, int] | None = None
    result = None
    used, runs = 0.0, 0
    with SPY.active():
        while runs < max(1, repeats) and (runs == 0 or used < REPEAT_BUDGET_S):
            gc.collect()
            SPY.reset()
            start = time.perf_counter()
            result = call()
            elapsed = time.perf_counter() - start
            used += elapsed
            runs += 1
            if best is None or elapsed < best[0]:
                best = (elapsed, SPY.solve_seconds, SPY.solver_seconds, SPY.calls)
        peak_mb = math.nan
        gc.collect()
        SPY.reset(count_size=True)
        if trace_memory:
            tracemalloc.start()
            try:
                tracemalloc.reset_peak()
                call()
                peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
            finally:
                tracemalloc.stop()
        else:
            call()
    assert best is not None and result is not None
    seconds, solve_s, solver_s, calls = best
    return Measurement(
        result=result,
        seconds=seconds,
        build_seconds=seconds - solve_s,
        translate_seconds=max(solve_s - solver_s, 0.0),
        solver_seconds=solver_s,
        solve_calls=calls,
        runs=runs,
        peak_mb=peak_mb,
        constraints=SPY.constraints,
        variables=SPY.variables,
    )


def solver_ready(name: str) -> bool:
    try:
        check_solver(name)
    except SolverError as exc:
        progress(f"skipping {name}: {exc}")
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Part a: scenario scaling on paper-4bus


def _mw_text(values: dict[int, float]) -> str:
    return ";".join(f"{bus}:{value:.12g}" for bus, value in values.items())


def _row(part: str, case: str, network: Network, scenarios: Scenarios, solver: str, model: str,
         variant: str, m: Measurement, demand: dict[int, float],
         firm: CapacityResult | None) -> dict[str, Any]:
    capacity = {bus: m.result.capacity_mw[bus] for bus in demand}
    row: dict[str, Any] = {
        "part": part, "case": case, "buses": len(network.buses), "lines": len(network.lines),
        "candidates": len(demand), "scenarios": scenarios.count, "solver": solver, "model": model,
        "variant": variant, "seconds": m.seconds, "build_seconds": m.build_seconds,
        "translate_seconds": m.translate_seconds, "solver_seconds": m.solver_seconds,
        "solve_calls": m.solve_calls, "runs": m.runs, "peak_mb": m.peak_mb,
        "constraints": m.constraints, "variables": m.variables,
        "capacity_total_mw": sum(capacity.values()), "demand_total_mw": sum(demand.values()),
        "unserved_ratio": m.result.unserved_ratio, "capacity_mw": _mw_text(capacity),
    }
    if firm is not None:
        increment = {bus: capacity[bus] - firm.capacity_mw[bus] for bus in demand}
        row["increment_total_mw"] = sum(increment.values())
        row["increment_mw"] = _mw_text(increment)
    return row


def warm_up(solvers: list[str]) -> None:
    """Import solver bindings and Pyomo writers once, so the first measurement is not charged."""
    network = load_case("paper-4bus")
    scenarios = sample_truncated_normal(network, PAPER_LOADS, 100, stream(0, "warm-up"))
    for solver in solvers:
        firm = firm_capacity(network, scenarios, PAPER_DEMAND_MW, solver=solver)
        flexible_capacity(network, scenarios, PAPER_DEMAND_MW, EPSILON, firm.capacity_mw, solver=solver)


def part_a(args: argparse.Namespace, solvers: list[str]) -> list[dict[str, Any]]:
    case = "paper-4bus"
    network = load_case(case)
    rows: list[dict[str, Any]] = []
    plan = [
        (size, solver, variant)
        for size in args.scenarios
        for solver in solvers
        for variant in (["firm", "tail"] + (["full"] if size <= args.full_max else []))
    ]
    done = 0
    for size in args.scenarios:
        scenarios = sample_truncated_normal(network, PAPER_LOADS, size, stream(args.seed, "scenarios"))
        for solver in solvers:
            firm: CapacityResult | None = None
            for variant in ["firm", "tail"] + (["full"] if size <= args.full_max else []):
                done += 1
                label = f"[a {done}/{len(plan)}] S={size} {solver} " + (
                    "firm" if variant == "firm" else f"flexible {variant}")
                progress(f"{label} ...")
                if variant == "firm":
                    m = measure(lambda: firm_capacity(network, scenarios, PAPER_DEMAND_MW, solver=solver),
                                args.repeats, not args.no_memory)
                    firm = m.result
                    row = _row("a", case, network, scenarios, solver, "firm", "box", m, PAPER_DEMAND_MW, None)
                else:
                    assert firm is not None
                    floors = firm.capacity_mw
                    if variant == "tail":  # the public entry point, tail-only rows
                        call = lambda: flexible_capacity(network, scenarios, PAPER_DEMAND_MW, EPSILON, floors,
                                                         solver=solver)
                    else:
                        call = lambda: _flexible_capacity(network, scenarios, PAPER_DEMAND_MW, EPSILON, floors,
                                                          solver, tail_only=False)
                    m = measure(call, args.repeats, not args.no_memory)
                    row = _row("a", case, network, scenarios, solver, "flexible", variant, m,
                               PAPER_DEMAND_MW, firm)
                progress(f"{label}: {m.seconds:.3f} s, peak {m.peak_mb:.1f} MB")
                rows.append(row)

    # Ratios within this run: GLPK over HiGHS for the same (S, model, variant); full over tail.
    index = {(r["scenarios"], r["solver"], r["model"], r["variant"]): r for r in rows}
    for r in rows:
        highs = index.get((r["scenarios"], "highs", r["model"], r["variant"]))
        if r["solver"] == "glpk" and highs is not None:
            r["ratio_glpk_highs"] = r["seconds"] / highs["seconds"]
        tail = index.get((r["scenarios"], r["solver"], "flexible", "tail"))
        if r["variant"] == "full" and tail is not None:
            r["ratio_full_tail_time"] = r["seconds"] / tail["seconds"]
            if math.isfinite(r["peak_mb"]) and tail["peak_mb"] > 0:
                r["ratio_full_tail_memory"] = r["peak_mb"] / tail["peak_mb"]
    return rows


def print_part_a(rows: list[dict[str, Any]]) -> None:
    print(f"\nPart a: scenario scaling on paper-4bus, eps = {EPSILON:g}, D = "
          + ", ".join(f"bus {b}: {v:g} MW" for b, v in PAPER_DEMAND_MW.items()))
    print("  variant: firm = robust box LP; tail = CVaR LP with the floor(eps S)+1 largest scenarios "
          "per row (default); full = every scenario row")
    header = (f"{'S':>6} {'solver':>6} {'variant':>7} {'time s':>8} {'build s':>8} {'transl s':>8} "
              f"{'solver s':>8} {'peak MB':>8} {'constr':>7} {'glpk/highs':>10} {'full/tail t':>11} "
              f"{'full/tail MB':>12}  {'capacity MW':>17}  {'increment MW':>17}")
    print(header)
    print("-" * len(header))
    for r in rows:
        capacity = " ".join(f"{float(v.split(':')[1]):8.3f}" for v in r["capacity_mw"].split(";"))
        increment = (" ".join(f"{float(v.split(':')[1]):8.3f}" for v in r["increment_mw"].split(";"))
                     if r.get("increment_mw") else "")
        print(
            f"{r['scenarios']:>6} {r['solver']:>6} {('firm' if r['model'] == 'firm' else r['variant']):>7} "
            f"{r['seconds']:>8.3f} {r['build_seconds']:>8.3f} {r['translate_seconds']:>8.3f} "
            f"{r['solver_seconds']:>8.3f} {_fmt(r['peak_mb'], '8.1f')} {r['constraints']:>7} "
            f"{_fmt(r.get('ratio_glpk_highs'), '10.2f')} {_fmt(r.get('ratio_full_tail_time'), '11.1f')} "
            f"{_fmt(r.get('ratio_full_tail_memory'), '12.1f')}  {capacity:>17}  {increment:>17}"
        )
    flexible = [r for r in rows if r["model"] == "flexible"]
    if flexible:
        spreads = []
        for size in sorted({r["scenarios"] for r in flexible}):
            at = [np.array([float(v.split(":")[1]) for v in r["increment_mw"].split(";")])
                  for r in flexible if r["scenarios"] == size]
            spreads.append((size, float(np.max(np.ptp(np.array(at), axis=0)))))
        print("  capacity/increment columns: bus " + ", bus ".join(str(b) for b in PAPER_DEMAND_MW)
              + "; largest increment difference across solvers and variants at one S: "
              + ", ".join(f"S={s}: {d:.1e} MW" for s, d in spreads))


def _fmt(value: Any, spec: str) -> str:
    width = int(spec.split(".")[0])
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return f"{'-':>{width}}"
    return f"{value:>{spec}}"


# ---------------------------------------------------------------------------------------------
# Part b: network scaling on random radial networks


def random_radial_case(
    n_bus: int, n_candidates: int, rng: np.random.Generator
) -> tuple[Network, dict[int, TruncatedNormalLoad], dict[int, float]]:
    """A random recursive tree on buses 1..N rooted at bus 1, lines oriented away from the root.

    Every bus carries a small truncated-normal load (mean 0.5-2 MW, sd 20 % of the mean, support
    mean +- 50 %). Candidates get demands of 20-40 MW. Limits are set so the firm model is
    feasible but scarce: a candidate's withdrawal limit is its worst-case load plus 50-90 % of its
    demand, and a line's limit is its worst-case downstream flow plus 20-60 % of the demand
    downstream of it (plus 1 MW on lines with no candidate below them).
    """
    if n_bus < 2 or not 1 <= n_candidates < n_bus:
        raise SystemExit(f"need 1 <= candidates < buses, got {n_candidates} candidates for {n_bus} buses")
    parent = {bus: int(rng.integers(1, bus)) for bus in range(2, n_bus + 1)}
    mean = rng.uniform(0.5, 2.0, size=n_bus + 1)
    loads = {
        bus: TruncatedNormalLoad(float(mean[bus]), float((0.2 * mean[bus]) ** 2),
                                 float(0.5 * mean[bus]), float(1.5 * mean[bus]))
        for bus in range(1, n_bus + 1)
    }
    chosen = rng.choice(np.arange(2, n_bus + 1), size=n_candidates, replace=False)
    demand = {int(bus): float(rng.integers(20, 41)) for bus in sorted(chosen)}

    worst_below = {bus: loads[bus].upper_mw for bus in range(1, n_bus + 1)}
    demand_below = {bus: demand.get(bus, 0.0) for bus in range(1, n_bus + 1)}
    for bus in range(n_bus, 1, -1):  # parents have smaller numbers: children first
        worst_below[parent[bus]] += worst_below[bus]
        demand_below[parent[bus]] += demand_below[bus]

    buses = []
    for bus in range(1, n_bus + 1):
        room = rng.uniform(0.5, 0.9) * demand[bus] if bus in demand else 5.0
        buses.append(Bus(bus, withdrawal_limit_mw=round(loads[bus].upper_mw + room, 3)))
    lines = []
    for bus in range(2, n_bus + 1):
        room = rng.uniform(0.2, 0.6) * demand_below[bus] if demand_below[bus] > 0 else 1.0
        lines.append(Line(f"{parent[bus]}-{bus}", parent[bus], bus,
                          thermal_limit_mw=round(worst_below[bus] + room, 3)))
    network = Network(name=f"random-radial-{n_bus}", buses=tuple(buses), lines=tuple(lines), reference_bus=1)
    return network, loads, demand


def part_b(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    solver = "highs"
    for position, n_bus in enumerate(args.buses, start=1):
        rng = np.random.default_rng([args.seed, n_bus])
        network, loads, demand = random_radial_case(n_bus, args.candidates, rng)
        case = network.name
        label = f"[b {position}/{len(args.buses)}] N={n_bus}"

        progress(f"{label}: sampling {args.network_scenarios} scenarios ...")
        start = time.perf_counter()
        scenarios = sample_truncated_normal(network, loads, args.network_scenarios, stream(args.seed, "scenarios"))
        sample_s = time.perf_counter() - start
        start = time.perf_counter()
        shift_factors(network)
        shift_s = time.perf_counter() - start
        shared_shift_factors(network)  # both models then reuse this copy, as in a real run

        progress(f"{label}: firm ...")
        firm_m = measure(lambda: firm_capacity(network, scenarios, demand, solver=solver),
                         args.repeats, not args.no_memory)
        firm = firm_m.result
        progress(f"{label}: firm {firm_m.seconds:.3f} s; flexible ...")
        flex_m = measure(
            lambda: flexible_capacity(network, scenarios, demand, EPSILON, firm.capacity_mw, solver=solver),
            args.repeats, not args.no_memory,
        )
        progress(f"{label}: flexible {flex_m.seconds:.3f} s")
        for model, m, floor in (("firm", firm_m, None), ("flexible", flex_m, firm)):
            row = _row("b", case, network, scenarios, solver, model, "box" if model == "firm" else "tail",
                       m, demand, floor)
            row["sample_seconds"] = sample_s
            row["shift_factor_seconds"] = shift_s
            rows.append(row)

    for model in ("firm", "flexible"):
        sel = [r for r in rows if r["model"] == model]
        if sel:
            base = sel[0]
            for r in sel:
                r["ratio_time_to_smallest"] = r["seconds"] / base["seconds"]
                r["ratio_buses_to_smallest"] = r["buses"] / base["buses"]
    return rows


def print_part_b(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\nPart b: random radial networks, {args.candidates} candidate buses, "
          f"S = {args.network_scenarios}, eps = {EPSILON:g}, HiGHS")
    header = (f"{'N':>6} {'model':>8} {'sample s':>8} {'H s':>7} {'time s':>8} {'build s':>8} "
              f"{'transl s':>8} {'solver s':>8} {'peak MB':>8} {'constr':>7} {'N ratio':>7} "
              f"{'t ratio':>7} {'slope':>5} {'capacity MW':>11} {'demand MW':>9} {'unserved':>8}")
    print(header)
    print("-" * len(header))
    for r in rows:
        n_ratio, t_ratio = r.get("ratio_buses_to_smallest"), r.get("ratio_time_to_smallest")
        slope = math.log(t_ratio) / math.log(n_ratio) if n_ratio and n_ratio > 1 and t_ratio else None
        print(
            f"{r['buses']:>6} {r['model']:>8} {r['sample_seconds']:>8.3f} {r['shift_factor_seconds']:>7.3f} "
            f"{r['seconds']:>8.3f} {r['build_seconds']:>8.3f} {r['translate_seconds']:>8.3f} "
            f"{r['solver_seconds']:>8.3f} {_fmt(r['peak_mb'], '8.1f')} {r['constraints']:>7} "
            f"{n_ratio:>7.1f} {t_ratio:>7.2f} {_fmt(slope, '5.2f')} {r['capacity_total_mw']:>11.2f} "
            f"{r['demand_total_mw']:>9.1f} {r['unserved_ratio']:>8.3f}"
        )
    print("  t ratio = time / time at the smallest N; slope = log(t ratio) / log(N ratio). "
          "'sample s' (drawing the scenarios) and 'H s' (shift factors) are outside the model times.")
    print("  capacity MW and demand MW are totals over the candidates; unserved is the optimum of (1a)/(17a), "
          "the sum over candidates of (D - c)^+ / D.")


# ---------------------------------------------------------------------------------------------


def write_csv(rows: list[dict[str, Any]], target: Path) -> None:
    fields = list(dict.fromkeys(CSV_FIELDS + [k for r in rows for k in r if k not in CSV_FIELDS]))
    write_table_csv(target, fields, [{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (S 500, 2000; N 50, 200; one timed run), under a minute")
    parser.add_argument("--parts", nargs="+", choices=["a", "b"], default=["a", "b"], help="which parts to run")
    parser.add_argument("--scenarios", type=int, nargs="+", default=None,
                        help="part a scenario counts S [default: 500 2000 8000 32000]")
    parser.add_argument("--full-max", type=int, default=None,
                        help="largest S for the full-row flexible variant [default: 8000]")
    parser.add_argument("--solvers", nargs="+", choices=list(grid_solvers.SOLVERS), default=["highs", "glpk"],
                        help="part a solvers (missing ones are skipped)")
    parser.add_argument("--buses", type=int, nargs="+", default=None,
                        help="part b network sizes N [default: 50 200 1000]")
    parser.add_argument("--candidates", type=int, default=10, help="part b candidate buses")
    parser.add_argument("--network-scenarios", type=int, default=2000, help="part b scenario count S")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per measurement, best kept; repeats stop after 2 s [default: 3]")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc run")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=HERE / "out", help="folder for bench_capacity.csv")
    args = parser.parse_args(argv)
    if args.scenarios is None:
        args.scenarios = [500, 2000] if args.quick else [500, 2000, 8000, 32000]
    if args.full_max is None:
        args.full_max = 2000 if args.quick else 8000
    if args.buses is None:
        args.buses = [50, 200] if args.quick else [50, 200, 1000]
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    for name, values in (("--scenarios", args.scenarios), ("--buses", args.buses)):
        if any(v < 2 for v in values):
            parser.error(f"{name} values must be at least 2")

    started = time.perf_counter()
    solvers = [s for s in dict.fromkeys(args.solvers) if solver_ready(s)]
    if not solvers:
        parser.error("no solver available")
    warm_up(solvers if "a" in args.parts else ["highs"])

    rows: list[dict[str, Any]] = []
    rows_a = part_a(args, solvers) if "a" in args.parts else []
    rows_b: list[dict[str, Any]] = []
    if "b" in args.parts:
        if "highs" in solvers:
            rows_b = part_b(args)
        else:
            progress("skipping part b: it uses HiGHS, which is not available")
    rows = rows_a + rows_b
    target = args.out / "bench_capacity.csv"
    write_csv(rows, target)

    if rows_a:
        print_part_a(rows_a)
    if rows_b:
        print_part_b(rows_b, args)
    print("\nTimes are wall-clock seconds (best of the timed runs); build = numpy + Pyomo model "
          "construction, transl = Pyomo <-> solver hand-over, solver = HiGHS run() / glpsol wall time "
          "(each model solves a sequence of LPs on one persistent solver: min unserved (1a), max total, "
          "min worst unserved ratio, then one per candidate but the last, to settle ties). Peak MB is Python-heap memory "
          "traced by tracemalloc (incl. numpy, not HiGHS's C++ heap or the glpsol process).")
    print(f"\nWrote {target} ({len(rows)} rows) in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
