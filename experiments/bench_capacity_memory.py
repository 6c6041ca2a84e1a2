"""Where the capacity study's memory goes: resident and peak memory of this process at each step
the study reports, in one run.

One case (default case_ACTIVSg10k, 200 scenarios of the default base-load spread, every load bus
asking 100 MW, eps = 0.05, the study's defaults otherwise: the box for firm capacity, the partial
draw set, the paper's full-draw model beside it). At each progress line of capacity_study the
table gives the seconds since the start, the resident memory then (/proc/self/statm) and the
peak so far (getrusage), so the step that raises the peak shows (docs/models/capacity.md#memory).
No memory or time is asserted.

    .venv/bin/python experiments/bench_capacity_memory.py [--case case_ACTIVSg10k] [--scenarios 200] [--out experiments/out]

Writes bench_capacity_memory.csv. About a minute and 7 GB on case_ACTIVSg10k.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run as a script: the packages are this checkout's
    sys.path.insert(0, str(REPO))

from experiments.bench_capacity import _peak_mb  # noqa: E402
from sim.output.files import write_bench_csv  # noqa: E402
from sim.report.text import format_table  # noqa: E402

CSV_NAME = "bench_capacity_memory.csv"
DEMAND_MW = 100.0
COLUMNS = ["case", "scenarios", "seconds", "resident_gb", "peak_gb", "step"]


def _resident_gb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def _peak_gb() -> float:
    return _peak_mb() * 1024 * 1024 / 1e9


def run(case: str, count: int) -> list[dict[str, object]]:
    from grid.capacity.inputs.candidates import make_candidates
    from grid.capacity.study import capacity_study
    from grid.load.scenarios import BaseLoadSpread, sample_base_load
    from grid.network.cases import load_case
    from sim.random_streams import stream

    begun = time.perf_counter()
    rows: list[dict[str, object]] = []

    def note(step: str) -> None:
        rows.append({"case": case, "scenarios": count, "seconds": time.perf_counter() - begun,
                     "resident_gb": _resident_gb(), "peak_gb": _peak_gb(), "step": step})
        print(f"{rows[-1]['seconds']:6.1f} s  {step}", file=sys.stderr, flush=True)

    network = load_case(case)
    scenarios = sample_base_load(network, BaseLoadSpread(), count, stream(1, "scenarios"))
    candidates = make_candidates(network, {bus: DEMAND_MW for bus in network.load_buses})
    note("network, scenarios and candidates")
    capacity_study(network, scenarios, candidates, [0.05], progress=note)
    note("study done")
    # A block's progress line per 1,024 lines says the same as the one before it: keep the first.
    return [row for i, row in enumerate(rows)
            if i == 0 or not (str(row["step"]).startswith("background flows and tails")
                              and str(rows[i - 1]["step"]).startswith("background flows and tails")
                              and i + 1 < len(rows) and str(rows[i + 1]["step"]).startswith("background flows"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="case_ACTIVSg10k")
    parser.add_argument("--scenarios", type=int, default=200)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args(argv)
    rows = run(args.case, args.scenarios)
    shown = [[f"{row['seconds']:.1f}", f"{row['resident_gb']:.2f}", f"{row['peak_gb']:.2f}", str(row["step"])[:80]]
             for row in rows]
    print(format_table(["seconds", "resident GB", "peak GB", "step (the study's progress line)"], shown))
    write_bench_csv(args.out / CSV_NAME, COLUMNS, rows)
    print(f"wrote {args.out / CSV_NAME}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
