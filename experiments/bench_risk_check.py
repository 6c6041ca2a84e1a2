"""The out-of-sample risk check against the capacity study it checks, in one run.

One case (default case_ACTIVSg2000; 10,000 study scenarios varying each load below its base, every
load bus asking 100 MW, eps = 0.05): the capacity study (`dcmarket capacity CASE`'s criteria),
then the risk check on --verify fresh scenarios (default 100,000) twice from the same seed: every
row, and only the rows some state of the study's box can break
(docs/models/capacity.md#eq-c-24). The two must give the same count for every product; the table
gives each time and its ratio to the study's. No timing is asserted.

    .venv/bin/python experiments/bench_risk_check.py [--case case_ACTIVSg2000] [--scenarios 10000] [--verify 100000] [--out experiments/out]

Writes bench_risk_check.csv. A few minutes on this 2-core machine.
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

from grid.capacity.inputs.candidates import make_candidates  # noqa: E402
from grid.capacity.study import capacity_study  # noqa: E402
from grid.capacity.verify import verify_risk  # noqa: E402
from grid.load.scenarios import BaseLoadSpread, sample_base_load  # noqa: E402
from grid.network.cases import load_case  # noqa: E402
from sim.output.files import write_bench_csv  # noqa: E402
from sim.random_streams import stream  # noqa: E402
from sim.report.text import format_table  # noqa: E402

CSV_NAME = "bench_risk_check.csv"
COLUMNS = ["case", "scenarios", "fresh", "step", "seconds", "ratio_to_study", "interruptions"]
SPREAD = BaseLoadSpread(above_sd=0.0)


def run(case: str, count: int, fresh: int) -> list[dict[str, object]]:
    network = load_case(case)
    scenarios = sample_base_load(network, SPREAD, count, stream(1, "scenarios"))
    candidates = make_candidates(network, {bus: 100.0 for bus in network.load_buses})
    begun = time.perf_counter()
    study = capacity_study(network, scenarios, candidates, [0.05])
    rows = [{"step": "capacity study", "seconds": time.perf_counter() - begun, "interruptions": None}]
    results = []
    for name, box in (("risk check, every row", None),
                      ("risk check, rows the box can break", (scenarios.lower_mw, scenarios.upper_mw))):
        rng = stream(2, "verification")
        begun = time.perf_counter()
        checks = verify_risk(study, lambda n: sample_base_load(network, SPREAD, n, rng), fresh,
                             product_ids=lambda bus, m: f"{bus}/{m}", box=box)
        rows.append({"step": name, "seconds": time.perf_counter() - begun,
                     "interruptions": sum(c.interruptions for c in checks)})
        results.append(checks)
    if results[0] != results[1]:
        raise RuntimeError("the risk check with the skip counted otherwise than on every row")
    for row in rows:
        row.update(case=case, scenarios=count, fresh=fresh, ratio_to_study=row["seconds"] / rows[0]["seconds"])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="case_ACTIVSg2000")
    parser.add_argument("--scenarios", type=int, default=10_000)
    parser.add_argument("--verify", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args(argv)
    rows = run(args.case, args.scenarios, args.verify)
    print(format_table(["step", "seconds", "vs study", "interruptions"],
                       [[r["step"], f"{r['seconds']:.1f}", f"{r['ratio_to_study']:.2f}x",
                         "" if r["interruptions"] is None else f"{r['interruptions']:,}"] for r in rows]))
    write_bench_csv(args.out / CSV_NAME, COLUMNS, rows)
    print(f"wrote {args.out / CSV_NAME}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
