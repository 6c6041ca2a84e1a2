"""The capacity study with its scenario tails in process and on a Dask LocalCluster, in one run:
time, peak memory, and the same capacities.

One case (default case_ACTIVSg2000, 10,000 scenarios below the forecast peak, every load bus asking
100 MW, eps = 0.05, the partial draw set, the forecast peak for firm capacity). Each way runs in a
fresh process of its own (`--one`), so that each peak resident memory is that study's alone:

1. in process: limit_rows keeps every block's rows of H for the scenario pass (grid/capacity/rows/limits.py);
2. on a LocalCluster of --workers worker processes (one thread each): this process keeps no row
   of H, and each worker makes the rows of its blocks and their tails (line_block_tails).

`--lines` picks the study as `[products] lines` does: "auto" (the default) takes the screened-lines
study (grid/capacity/screened.py) when the dense rows would not fit, as on case_ACTIVSg70k; there
the cluster's workers run the passes' blocks (scenario chunks and columns of H):

    .venv/bin/python experiments/bench_capacity_cluster.py --case case_ACTIVSg70k --scenarios 10000

The table gives each way's seconds and its peak resident memory (the study's process, and each
worker's), and the run ends with an error, after printing and writing its table, if the two
disagree on any capacity by more than 1e-9 MW. No timing is asserted.

    .venv/bin/python experiments/bench_capacity_cluster.py [--case case_ACTIVSg2000] [--scenarios 10000]
        [--workers 2 | --scheduler ADDRESS] [--out experiments/out]

--scheduler uses a running Dask scheduler for the second way instead of a LocalCluster started for
it (its workers' peak memory then includes whatever they ran before). Writes
bench_capacity_cluster.csv. About a minute on case_ACTIVSg2000 on this 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
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

CSV_NAME = "bench_capacity_cluster.csv"
EPSILON = 0.05
DEMAND_MW = 100.0
COLUMNS = ["case", "scenarios", "lines", "way", "seconds", "peak_mb", "worker_peak_mb", "firm_mw", "flexible_mw"]


def one(case: str, count: int, workers: int, scheduler: str | None = None, lines: str = "auto") -> dict[str, object]:
    """One study in this process: ``workers`` = 0 in process, else on ``scheduler`` if given, or on a
    LocalCluster of that many workers. Its progress goes to stderr, with the seconds so far."""
    from agents.capacity_products import ProductSettings
    from grid.capacity.inputs.candidates import make_candidates
    from grid.capacity.inputs.criteria import SecurityCriteria
    from grid.load.scenarios import BaseLoadSpread, sample_base_load
    from grid.network.cases import load_case
    from sim.execution.cluster import ClusterBlocks
    from sim.random_streams import stream

    network = load_case(case)
    scenarios = sample_base_load(network, BaseLoadSpread(above_sd=0.0), count, stream(1, "scenarios"))
    candidates = make_candidates(network, {bus: DEMAND_MW for bus in network.load_buses})
    criteria = SecurityCriteria(background="peak")
    cluster = client = None
    if workers:
        from distributed import Client, LocalCluster

        if scheduler is None:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                   scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        client = Client(scheduler if scheduler is not None else cluster)
    try:
        begun = time.perf_counter()
        settings = ProductSettings(risk_levels=(EPSILON,), criteria=criteria, lines=lines)
        study = settings.study(network, scenarios, candidates, solver="highs", theory=False, compare_full_draw=False,
                               block_map=ClusterBlocks(client) if client is not None else None,
                               progress=lambda text: print(f"{time.perf_counter() - begun:8.1f} s  {text}",
                                                           file=sys.stderr, flush=True))
        seconds = time.perf_counter() - begun
        worker_peak = max(client.run(_peak_mb).values()) if client is not None else None
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    return {"seconds": seconds, "peak_mb": _peak_mb(), "worker_peak_mb": worker_peak, "lines": study.line_rows,
            "firm": {str(k): v for k, v in study.firm.capacity_mw.items()},
            "flexible": {str(k): v for k, v in study.tiers[0].capacity_mw.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="case_ACTIVSg2000")
    parser.add_argument("--scenarios", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="the cluster way on this running Dask scheduler [default: a LocalCluster of --workers]")
    parser.add_argument("--lines", choices=("auto", "all", "screened"), default="auto",
                        help="which lines become rows, as [products] lines [default: auto]")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # internal: one way, JSON out
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one(args.case, args.scenarios, args.one, args.scheduler, args.lines)))
        return 0
    rows, found = [], []
    cluster_way = f"LocalCluster, {args.workers} workers" if args.scheduler is None else f"scheduler {args.scheduler}"
    for way, workers in (("in process", 0), (cluster_way, args.workers)):
        print(f"{way} ...", file=sys.stderr, flush=True)
        scheduler = [] if args.scheduler is None else ["--scheduler", args.scheduler]
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--case", args.case, "--scenarios",
                               str(args.scenarios), "--lines", args.lines, "--one", str(workers), *scheduler],
                              stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{way} failed with exit code {done.returncode} (a negative code is the signal that "
                             "killed it; its error, if any, is above)")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{way}: {result['seconds']:.1f} s, peak {result['peak_mb']:,.0f} MB, {result['lines']} lines, "
              f"firm {sum(result['firm'].values()):,.1f} MW, flexible {sum(result['flexible'].values()):,.1f} MW",
              file=sys.stderr, flush=True)
        found.append(result)
        rows.append({"case": args.case, "scenarios": args.scenarios, "lines": result["lines"], "way": way, "seconds": result["seconds"],
                     "peak_mb": result["peak_mb"], "worker_peak_mb": result["worker_peak_mb"],
                     "firm_mw": sum(result["firm"].values()), "flexible_mw": sum(result["flexible"].values())})
    differ = []
    for model in ("firm", "flexible"):
        here, there = found[0][model], found[1][model]
        worst = max((abs(here[bus] - there.get(bus, 0.0)) for bus in here), default=0.0)
        if here.keys() != there.keys() or worst > 1e-9:
            differ.append(f"the cluster's {model} capacities differ from the study in process (by {worst:.3g} MW)")
    # The table and the CSV are written either way: a run of ACTIVSg70k takes an hour and a half.
    shown = [[row["lines"], row["way"], f"{row['seconds']:.1f}", f"{row['peak_mb']:,.0f}",
              "" if row["worker_peak_mb"] is None else f"{row['worker_peak_mb']:,.0f}",
              f"{row['firm_mw']:,.1f}", f"{row['flexible_mw']:,.1f}"] for row in rows]
    print(format_table(["lines", "way", "seconds", "peak MB", "worker peak MB", "firm MW", "flexible MW"], shown))
    write_bench_csv(args.out / CSV_NAME, COLUMNS, rows)
    print(f"wrote {args.out / CSV_NAME}")
    if differ:
        raise SystemExit("; ".join(differ))
    print("\nthe same firm and flexible capacity at every bus, to 1e-9 MW")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
