"""The AC check and its correction (grid/ac): seconds per background state, and what correcting a
capacity study costs, in one run.

Part 1, per case in --cases: the AC model's first build in the process (with pandapower's import
for the first case), then --states background states drawn by the capacity study's base-load
spread (PD - PG +/- 5 %, seed 1) and checked with 20 MW of new load at each of the five buses
with the largest base load. A state is two power flows, with the new load and without it.

Part 2, per study in --studies (a `dcmarket capacity` target and its flags, as STUDIES below
names them): the capacity study, its AC check and the AC correction in process (the risk check
on --verify fresh scenarios), with per model the linear and the corrected MW, the cost, the
violations caused by new load that the first and the last check find, the re-solves and the
seconds. No timing is asserted.

Part 3, per study in --scaled: the simplest correction to compare with: the linear study's firm
allocation times alpha, bisected (--halvings times) for the largest alpha at which the AC check,
at the states its own rule picks for that allocation, finds no violation caused by new load.

    .venv/bin/python experiments/bench_ac_check.py [--cases ieee14 ...] [--states N]
        [--studies ieee57 ieee118 activsg2000] [--scaled activsg2000] [--out experiments/out]

Writes bench_ac_check.csv and, with --studies, bench_ac_correction.csv, with --scaled
bench_ac_scaled.csv. Part 2 on case_ACTIVSg2000 takes about a minute.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run as a script: the packages are this checkout's
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from grid.ac.case_model import ac_case  # noqa: E402
from grid.ac.check import CAUSED, BackgroundStates, check_allocation  # noqa: E402
from grid.ac.states import check_states, dense_flows  # noqa: E402
from grid.ac.study_check import AcTarget  # noqa: E402
from grid.load.scenarios import BaseLoadSpread, sample_base_load  # noqa: E402
from sim.config.overrides import parse_override  # noqa: E402
from sim.market.inputs import build_grid_inputs  # noqa: E402
from sim.output.files import write_bench_csv  # noqa: E402
from sim.report.text import format_table  # noqa: E402
from sim.studies.capacity import capacity_run, read_target  # noqa: E402

CSV_NAME = "bench_ac_check.csv"
COLUMNS = ["case", "buses", "branches", "states", "build_s", "seconds_per_state", "converged",
           "caused_violations", "pre_existing_violations"]
DEFAULT_CASES = ["ieee14", "ieee118", "case_ACTIVSg2000", "case_ACTIVSg10k"]
CORRECTION_CSV = "bench_ac_correction.csv"
SCALED_CSV = "bench_ac_scaled.csv"
SCALED_COLUMNS = ["study", "linear_mw", "alpha", "scaled_mw", "first_unclean_alpha", "checks", "seconds"]
CORRECTION_COLUMNS = ["study", "model", "linear_mw", "corrected_mw", "cost_mw", "caused_before", "caused_after",
                      "resolves", "stopped", "seconds"]
# `dcmarket capacity` targets with their overrides (as the CLI flags would set them).
STUDIES = {
    "ieee57": ("ieee57", {"demand_mw": 150.0, "risk_levels": [0.01, 0.05]}),
    "ieee118": (str(HERE / "ieee118_capacity.toml"), {}),
    "activsg2000": ("case_ACTIVSg2000", {"demand_mw": 5.0, "scenarios": 2000, "risk_levels": [0.05],
                                         "sets": ["security.background=budgeted", "security.budget=100"]}),
}


def measure(case: str, count: int) -> dict[str, object]:
    begun = time.perf_counter()
    model = ac_case(case)
    built = time.perf_counter() - begun
    network = model.network
    samples = sample_base_load(network, BaseLoadSpread(), count, np.random.default_rng(1))
    states = BackgroundStates.from_net_withdrawals(network, [f"scenario {s}" for s in range(count)],
                                                   samples.samples_mw, samples.buses)
    allocation = {int(bus): 20.0 for bus in model.buses[np.argsort(-model.pd_mw, kind="stable")[:5]]}
    begun = time.perf_counter()
    result = check_allocation(case, allocation, states)
    seconds = time.perf_counter() - begun
    summary = result.summary()
    return {"case": case, "buses": len(model.buses), "branches": len(model.lines), "states": count,
            "build_s": built, "seconds_per_state": seconds / count, "converged": summary["converged"],
            "caused_violations": summary["caused_overloads"] + summary["caused_voltage_violations"],
            "pre_existing_violations": summary["pre_existing_overloads"] + summary["pre_existing_voltage_violations"]}


def correct(name: str, verify: int) -> list[dict[str, object]]:
    """One study of STUDIES with its AC correction: a row per model."""
    config, base_dir, source = _target(name)
    begun = time.perf_counter()
    result = capacity_run(config, base_dir, source=source, verify=verify, theory=False)
    seconds = time.perf_counter() - begun
    correction = result.summary["ac_check"]["correction"]
    iterations = list(csv.DictReader(io.StringIO(result.files["ac_correction.csv"].decode("utf-8"))))
    rows = []
    for model, linear in correction["linear_mw"].items():
        caused = [int(r["caused_overloads"]) + int(r["caused_voltage_violations"])
                  for r in iterations if r["model"] == model and r["checked"] == "True"]
        rows.append({"study": name, "model": model, "linear_mw": linear, "corrected_mw": correction["corrected_mw"][model],
                     "cost_mw": correction["cost_mw"][model], "caused_before": caused[0] if caused else "",
                     "caused_after": caused[-1] if caused else "", "resolves": correction["iterations"],
                     "stopped": correction["stopped"], "seconds": seconds})
    return rows


def _target(name: str):
    """A study of STUDIES read as `dcmarket capacity` reads its target and flags."""
    target, flags = STUDIES[name]
    overrides = {"seed": None, "solver": None, "risk_levels": None, "demand_mw": None, "scenarios": None,
                 **flags, "sets": [parse_override(text) for text in flags.get("sets", [])]}
    return read_target(target, overrides)


def scaled(name: str, halvings: int) -> dict[str, object]:
    """Part 3: the largest alpha of the bisection, and alpha times the linear firm MW."""
    config, base_dir, _ = _target(name)
    begun = time.perf_counter()
    grid = build_grid_inputs(config, base_dir)
    study = grid.settings.study(grid.network, grid.scenarios, grid.candidates, solver=config.solver, theory=False,
                                compare_full_draw=False)
    dense = dense_flows(study, grid.scenarios)
    target = AcTarget(config.network.case, config.ac.settings(), config.network.case_options(), base_dir)
    firm = study.firm.vector(study.candidates)

    def clean(alpha: float) -> bool:
        capacity = alpha * firm
        states = check_states(study, grid.scenarios, dense, capacity, study.firm.draw, corners=True,
                              worst=config.ac.states, blocked=study.firm.blocked_rows)
        groups: dict[bytes, list] = {}
        for state in states:
            groups.setdefault(state.drawn.tobytes(), []).append(state)
        for group in groups.values():
            result = target.check(study, capacity, group)
            if any(v.origin == CAUSED for v in result.violations) or not all(r.converged for r in result.states):
                return False
        return True

    low, high, checks = 0.0, 1.0, 1
    if clean(1.0):
        low = 1.0
    else:
        for checks in range(2, halvings + 2):
            middle = (low + high) / 2.0
            low, high = (middle, high) if clean(middle) else (low, middle)
    return {"study": name, "linear_mw": float(firm.sum()), "alpha": low, "scaled_mw": low * float(firm.sum()),
            "first_unclean_alpha": high, "checks": checks, "seconds": time.perf_counter() - begun}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="MATPOWER cases by name or path")
    parser.add_argument("--states", type=int, default=10, help="background states per case")
    parser.add_argument("--studies", nargs="*", default=[], choices=list(STUDIES),
                        help="capacity studies to correct in AC (part 2; none by default)")
    parser.add_argument("--scaled", nargs="*", default=[], choices=list(STUDIES),
                        help="studies whose linear firm allocation is scaled down until AC-clean (part 3)")
    parser.add_argument("--halvings", type=int, default=7, help="bisection steps of part 3")
    parser.add_argument("--verify", type=int, default=1000, help="fresh scenarios of each study's risk check")
    parser.add_argument("--out", type=Path, default=HERE / "out", help=f"folder for {CSV_NAME} and {CORRECTION_CSV}")
    args = parser.parse_args(argv)
    if args.states < 1 or args.verify < 1:
        parser.error("--states and --verify: at least 1 (the AC check runs only with a risk check)")
    rows = []
    for case in args.cases:
        rows.append(measure(case, args.states))
        print(f"{case}: {rows[-1]['seconds_per_state']:.3f} s per state", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    _table(COLUMNS, rows, args.out / CSV_NAME)
    corrected = []
    for name in args.studies:
        corrected += correct(name, args.verify)
        print(f"{name}: corrected in {corrected[-1]['seconds']:.1f} s", file=sys.stderr)
    if corrected:
        _table(CORRECTION_COLUMNS, corrected, args.out / CORRECTION_CSV)
    bisected = [scaled(name, args.halvings) for name in args.scaled]
    if bisected:
        _table(SCALED_COLUMNS, bisected, args.out / SCALED_CSV)
    return 0


def _table(columns: list[str], rows: list[dict[str, object]], path: Path) -> None:
    print(format_table(columns, [[f"{r[c]:.4g}" if isinstance(r[c], float) else r[c] for c in columns] for r in rows],
                       [c not in ("case", "study", "model", "stopped") for c in columns]))
    write_bench_csv(path, columns, rows)


if __name__ == "__main__":
    sys.exit(main())
