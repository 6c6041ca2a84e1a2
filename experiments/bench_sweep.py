"""A sweep against separate runs: a 200-run sweep of the 4-bus study (increment x seeds) with
`dcmarket sweep --workers 2`, on a Dask LocalCluster, and as 200 separate `dcmarket run` calls,
in one run.

The sweep file is experiments/sweep_4bus_increment.toml (increments 1, 2, 4 and 8 x 50 seeds of
experiments/paper_4bus_additive.toml). Each way writes its own directory under a temporary
folder; the table reports wall seconds, runs per second and the time as a fraction of the
separate calls', and checks that the pool's and the cluster's results.parquet are the same bytes
and that each separate run's summary.json equals the sweep's run of the same overrides and seed.
No timing is asserted.

    .venv/bin/python experiments/bench_sweep.py [--quick] [--seeds N] [--increments X ...] [--scheduler ADDRESS]
        [--out experiments/out]

The full run takes about 9 minutes (the separate calls, about 2 s each, dominate); --quick
(8 runs: 2 increments x 4 seeds) about 40 seconds. --seeds and --increments set the sweep's
size (tests/experiments/test_scripts.py runs one run, on one worker). --scheduler runs the Dask way
on a running scheduler instead of a LocalCluster started inside (its row then times the sweep
alone). Writes bench_sweep.csv.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run as a script: the packages are this checkout's
    sys.path.insert(0, str(REPO))

import subprocess  # noqa: E402

import tomli_w  # noqa: E402

from sim.output.files import write_bench_csv  # noqa: E402
from sim.report.text import format_table  # noqa: E402

SWEEP = HERE / "sweep_4bus_increment.toml"
CSV_NAME = "bench_sweep.csv"
COLUMNS = ["way", "runs", "wall_s", "runs_per_s", "fraction_of_separate", "same_table", "note"]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 runs instead of 200")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per increment [default: 50; --quick 4]")
    parser.add_argument("--increments", type=float, nargs="+", default=None,
                        help="auction increments [default: 1 2 4 8; --quick 1 2]")
    parser.add_argument("--workers", type=int, default=2, help="pool workers and Dask workers")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="the Dask way on this running scheduler [default: a LocalCluster of --workers, started inside]")
    parser.add_argument("--out", type=Path, default=HERE / "out", help=f"folder for {CSV_NAME}")
    args = parser.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        parser.error("--seeds: at least 1")
    import tomllib

    from distributed import LocalCluster

    from sim.studies.sweep import plan_runs, read_sweep, run_sweep

    with tempfile.TemporaryDirectory(prefix="dcmarket-bench-sweep-") as scratch:
        folder = Path(scratch)
        data = tomllib.loads(SWEEP.read_text())
        data["base"] = str((HERE / data["base"]).resolve())
        if args.quick:
            data["seeds"] = {"count": 4}
            data["grid"] = {"auction.increment": [1, 2]}
        if args.seeds is not None:
            data["seeds"] = {"count": args.seeds}
        if args.increments is not None:
            data["grid"] = {"auction.increment": args.increments}
        sweep_file = folder / "sweep.toml"
        sweep_file.write_text(tomli_w.dumps(data))
        specs = plan_runs(read_sweep(sweep_file))
        rows = []

        progress(f"sweep of {len(specs)} runs on {args.workers} worker processes ...")
        begun = time.perf_counter()
        run_sweep(sweep_file, folder / "pool", workers=args.workers, quiet=True)
        rows.append({"way": f"dcmarket sweep --workers {args.workers}", "runs": len(specs),
                     "wall_s": time.perf_counter() - begun})

        if args.scheduler is not None:
            progress(f"the same sweep on the Dask scheduler at {args.scheduler} ...")
            begun = time.perf_counter()
            run_sweep(sweep_file, folder / "dask", scheduler=args.scheduler, quiet=True)
            way = f"dcmarket sweep --scheduler {args.scheduler}"
        else:
            progress(f"the same sweep on a Dask LocalCluster of {args.workers} workers ...")
            begun = time.perf_counter()
            with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster:
                run_sweep(sweep_file, folder / "dask", scheduler=cluster.scheduler_address, quiet=True)
            way = f"dcmarket sweep --scheduler (LocalCluster, {args.workers} workers, started inside)"
        rows.append({"way": way, "runs": len(specs), "wall_s": time.perf_counter() - begun})
        same = (folder / "pool" / "results.parquet").read_bytes() == (folder / "dask" / "results.parquet").read_bytes()
        rows[1]["same_table"] = "same" if same else "DIFFERENT"

        progress(f"{len(specs)} separate dcmarket run calls ...")
        begun = time.perf_counter()
        mismatches = 0
        for position, spec in enumerate(specs, start=1):
            target = folder / "separate" / spec.run
            command = [sys.executable, "-m", "sim.cli", "run", data["base"], "--out", str(target), "--quiet",
                       "--summary-only", "--seed", str(spec.seed)]
            for key, value in spec.parameters.items():
                command += ["--set", f"{key}={value}"]
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=REPO)
            same_run = (target / "summary.json").read_bytes() == (folder / "pool" / "runs" / spec.run /
                                                                   "summary.json").read_bytes()
            mismatches += not same_run
            if position % 20 == 0:
                progress(f"  {position}/{len(specs)} ({time.perf_counter() - begun:.0f} s)")
        rows.append({"way": "separate dcmarket run calls, one after another", "runs": len(specs),
                     "wall_s": time.perf_counter() - begun,
                     "same_table": "same runs" if mismatches == 0 else f"{mismatches} DIFFERENT",
                     "note": "each call imports dcmarket again"})
    separate = rows[-1]["wall_s"]
    for row in rows:
        row["runs_per_s"] = row["runs"] / row["wall_s"]
        row["fraction_of_separate"] = row["wall_s"] / separate
    print(format_table(["way", "runs", "wall (s)", "runs/s", "fraction of separate", "check"],
                       [(r["way"], str(r["runs"]), f"{r['wall_s']:.1f}", f"{r['runs_per_s']:.2f}",
                         f"{r['fraction_of_separate']:.3f}", r.get("same_table", "")) for r in rows],
                       [False, True, True, True, True, False]))
    target = args.out / CSV_NAME
    write_bench_csv(target, COLUMNS, rows)
    print(f"\nwrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
