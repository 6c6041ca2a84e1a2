"""N-1 firm and flexible capacity on ACTIVSg2000 with the case's contingency list, against the
N-0 numpy floor timed in the same run.

One process, one case (default case_ACTIVSg2000, 10,000 scenarios, eps = 0.05, seed 1, every load
bus asking 100 MW). Measured, in this order:

1. the numpy floor of the intact network (dense shift factors by sparse LU, the scenario flows,
   one partial sort per line for its CVaR: experiments/bench_capacity.py's floor);
2. the N-0 study (capacity_study, exact formulation, HiGHS) at the same criteria;
3. the N-1 study: the same, criterion n-1 over the case's own contingency list.

Both studies use the forecast peak as firm capacity's background (`background = "peak"`: N-1 is
studied at the peak, as planning standards do), the scenarios varying each load below it, and the
partial draw set. Over the whole range below the peak (the box, what `dcmarket capacity CASE`
uses) the case is far from N-1 secure: 68,788 pairs come within 1 % of their rating at zero new
load, and firm capacity is 2.67 MW (docs/models/capacity.md#eq-c-22). The table gives each
time, the N-1 time as a ratio to the floor (the issue's target: within 3x), each study's time in
parts (from its progress lines: firm and flexible capacity with the screening passes, the paper's
full-draw model solved beside them for the counterflow report, and under N-1 the stand-alone
capacity after every outage), the pairs the screen added, its passes, the outages studied and
islanding, and the firm and flexible totals. No timing is asserted.

    .venv/bin/python experiments/bench_n1.py [--case case_ACTIVSg2000] [--scenarios 10000] [--out experiments/out]

Writes bench_n1.csv. About a minute on this 2-core machine when idle.
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

from experiments.bench_capacity import _measure_floor  # noqa: E402
from grid.capacity.inputs.candidates import make_candidates  # noqa: E402
from grid.capacity.inputs.criteria import SecurityCriteria  # noqa: E402
from grid.capacity.study import capacity_study  # noqa: E402
from grid.load.scenarios import BaseLoadSpread, sample_base_load  # noqa: E402
from grid.network.cases import load_case  # noqa: E402
from grid.network.change_tables import shipped_contingency_lines  # noqa: E402
from sim.output.files import write_bench_csv  # noqa: E402
from sim.random_streams import stream  # noqa: E402
from sim.report.text import format_table  # noqa: E402

CSV_NAME = "bench_n1.csv"
EPSILON = 0.05
DEMAND_MW = 100.0
COLUMNS = ["case", "scenarios", "step", "seconds", "ratio_to_floor", "capacities_s", "capacities_to_floor",
           "paper_model_s", "standalone_s", "outages_studied", "islanding", "pairs_added", "screen_passes", "firm_mw",
           "flexible_mw"]
# The study's progress lines that start its last two parts (grid/capacity/study.py).
PAPER_MODEL = "the paper's model"
STANDALONE = "N-1: stand-alone capacity"


def _phases(marks: list[tuple[float, str]], seconds: float) -> dict[str, float]:
    """The study's time in three parts, from its progress lines: firm and flexible capacity (with
    the N-1 screening passes), the paper's model beside them (the counterflow report; under N-0
    also the stand-alone pass, which has no line of its own) and, under N-1, the stand-alone
    capacity after every outage."""
    starts = {key: next((t for t, text in marks if text.startswith(key)), None) for key in (PAPER_MODEL, STANDALONE)}
    alone = starts[STANDALONE] if starts[STANDALONE] is not None else seconds
    paper = starts[PAPER_MODEL] if starts[PAPER_MODEL] is not None else alone
    return {"capacities_s": paper, "paper_model_s": alone - paper, "standalone_s": seconds - alone}


def _study(network, scenarios, candidates, criteria: SecurityCriteria) -> tuple[dict[str, object], int]:
    """One study, timed in parts, with its pass count (progress lines that add pairs)."""
    marks: list[tuple[float, str]] = []
    begun = time.perf_counter()
    study = capacity_study(network, scenarios, candidates, [EPSILON], criteria=criteria,
                           progress=lambda text: marks.append((time.perf_counter() - begun, text)))
    seconds = time.perf_counter() - begun
    passes = [text for _, text in marks if "pair(s) near" in text]
    outages = study.outages
    return {"seconds": seconds, **_phases(marks, seconds), "firm_mw": sum(study.firm.capacity_mw.values()),
            "flexible_mw": sum(study.tiers[0].capacity_mw.values()),
            "outages_studied": None if outages is None else int(outages.studied.size),
            "islanding": None if outages is None else len(outages.islanding),
            "pairs_added": None if outages is None else int(np.sum(study.limits.outage >= 0)) // 2,
            "screen_passes": None if outages is None else len(passes)}, len(study.limits)


def run(case: str, count: int) -> list[dict[str, object]]:
    floor = _measure_floor({"case": case, "scenarios": count, "seed": 1})
    warm = load_case("ieee14")   # imports, HiGHS's start-up: not charged to either study
    _study(warm, sample_base_load(warm, BaseLoadSpread(above_sd=0.0), 200, stream(1, "scenarios")),
           make_candidates(warm, {bus: DEMAND_MW for bus in warm.load_buses}), SecurityCriteria(outages="n-1"))
    network = load_case(case)
    scenarios = sample_base_load(network, BaseLoadSpread(above_sd=0.0), count, stream(1, "scenarios"))
    candidates = make_candidates(network, {bus: DEMAND_MW for bus in network.load_buses})
    listed = shipped_contingency_lines(network, case)
    intact, _ = _study(network, scenarios, candidates, SecurityCriteria(background="peak"))
    secure, _ = _study(network, scenarios, candidates, SecurityCriteria(
        background="peak", outages="n-1", outage_lines=None if listed is None else listed[0],
        outage_source="every branch" if listed is None else listed[1]))
    rows = [{"step": "numpy floor (N-0)", "seconds": floor["seconds_capacity"]},
            {"step": "N-0 study", **intact}, {"step": "N-1 study", **secure}]
    for row in rows:
        row.update(case=case, scenarios=count, ratio_to_floor=row["seconds"] / floor["seconds_capacity"])
        if row.get("capacities_s") is not None:
            row["capacities_to_floor"] = row["capacities_s"] / floor["seconds_capacity"]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="case_ACTIVSg2000")
    parser.add_argument("--scenarios", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args(argv)
    rows = run(args.case, args.scenarios)
    def part(row: dict[str, object], key: str, ratio: str = "") -> str:
        if row.get(key) is None:
            return ""
        return f"{row[key]:.1f}" + (f" ({row[ratio]:.1f}x)" if ratio else "")

    shown = [[row["step"], f"{row['seconds']:.1f}", f"{row['ratio_to_floor']:.1f}x",
              part(row, "capacities_s", "capacities_to_floor"), part(row, "paper_model_s"), part(row, "standalone_s"),
              "" if row.get("pairs_added") is None else f"{row['pairs_added']:,}",
              "" if row.get("screen_passes") is None else str(row["screen_passes"]),
              "" if row.get("firm_mw") is None else f"{row['firm_mw']:,.1f}",
              "" if row.get("flexible_mw") is None else f"{row['flexible_mw']:,.1f}"] for row in rows]
    print(format_table(["step", "seconds", "vs floor", "firm + flexible s (vs floor)", "paper's model s",
                        "stand-alone s", "pairs added", "passes", "firm MW", "flexible MW"], shown))
    secure = rows[-1]
    print(f"\n{args.case}, {args.scenarios:,} scenarios: {secure['outages_studied']:,} outages studied, "
          f"{secure['islanding']:,} islanding (listed, not studied)")
    write_bench_csv(args.out / CSV_NAME, COLUMNS, rows)
    print(f"wrote {args.out / CSV_NAME}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
