"""The AC check (grid/ac): seconds per background state on the MATPOWER cases, in one run.

Per case: the AC model's first build in the process (with pandapower's import for the first
case), then --states background states drawn by the capacity study's base-load spread
(PD - PG +/- 5 %, seed 1) and checked with 20 MW of new load at each of the five buses with the
largest base load. A state is two power flows, with the new load and without it. No timing is
asserted.

    .venv/bin/python experiments/bench_ac_check.py [--cases ieee14 ieee118 ...] [--states N] [--out experiments/out]

Writes bench_ac_check.csv. About a minute with the defaults.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run as a script: the packages are this checkout's
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from grid.ac.case_model import ac_case  # noqa: E402
from grid.ac.check import BackgroundStates, check_allocation  # noqa: E402
from grid.load.scenarios import BaseLoadSpread, sample_base_load  # noqa: E402
from sim.output.files import write_bench_csv  # noqa: E402
from sim.report.text import format_table  # noqa: E402

CSV_NAME = "bench_ac_check.csv"
COLUMNS = ["case", "buses", "branches", "states", "build_s", "seconds_per_state", "converged",
           "caused_violations", "pre_existing_violations"]
DEFAULT_CASES = ["ieee14", "ieee118", "case_ACTIVSg2000", "case_ACTIVSg10k"]


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="MATPOWER cases by name or path")
    parser.add_argument("--states", type=int, default=10, help="background states per case")
    parser.add_argument("--out", type=Path, default=HERE / "out", help=f"folder for {CSV_NAME}")
    args = parser.parse_args(argv)
    if args.states < 1:
        parser.error("--states: at least 1")
    rows = []
    for case in args.cases:
        rows.append(measure(case, args.states))
        print(f"{case}: {rows[-1]['seconds_per_state']:.3f} s per state", file=sys.stderr)
    print(format_table(COLUMNS, [[f"{r[c]:.3g}" if isinstance(r[c], float) else r[c] for c in COLUMNS] for r in rows],
                       [c != "case" for c in COLUMNS]))
    args.out.mkdir(parents=True, exist_ok=True)
    write_bench_csv(args.out / CSV_NAME, COLUMNS, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
