"""The hourly headroom study on ACTIVSg2000 (docs/studies/headroom.md): 8,784 hours of 2016,
every load bus (1,125), firm and three curtailment levels, with the joint allocation.

Two measurements in one run:

- end to end: `dcmarket headroom experiments/activsg2000_headroom.toml` in a fresh process (wall
  time, CPU time, peak memory), the command a planner runs (target: 30 s on the reference
  machine); the machine's load average is printed, since other work stretches the wall time;
- the time split: the same study in this process, each step timed from the study's own progress
  lines (imports first).

    .venv/bin/python experiments/bench_headroom.py [--config FILE] [--out experiments/out]

Prints the table and writes bench_headroom.csv. About a minute. No timing is asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run as a script: the packages are this checkout's
    sys.path.insert(0, str(REPO))

CSV_NAME = "bench_headroom.csv"
COLUMNS = ["step", "seconds", "share"]
CONFIG = HERE / "activsg2000_headroom.toml"
# The study's progress lines that open each step, in order, and the step's name in the table.
STEPS = (
    ("network ", "case"),
    ("hourly loads", "hourly loads (change table applied)"),
    ("hours from", "shift factors, every limit's room in every hour"),
    ("hourly headroom: ", "stand-alone headroom per bus (screen and exact pass), duration curves"),
    ("every bus at once", "joint allocation (capacity study: 4 tiers)"),
    ("headroom duration plot and map", "summary, tables, duration plot and map"),
)


def end_to_end(config: Path) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds and peak MB of `dcmarket headroom CONFIG` in a fresh process, and
    its report. On a shared machine the wall time counts the other processes' share of the cores;
    the CPU time is what the study itself used."""
    with tempfile.TemporaryDirectory(prefix="bench-headroom-") as folder:
        begun = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "sim.cli", "headroom", str(config), "--out", f"{folder}/out",
                               "--quiet"], cwd=REPO, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - begun
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, done.stdout


def split(config: Path) -> list[tuple[str, float]]:
    """(step, seconds) of the study run in this process, imports first."""
    begun = time.perf_counter()
    from sim.config.schema import load_config
    from sim.studies.headroom.study import headroom_run

    stamps: list[tuple[str, float]] = [("imports (sim, grid, numpy, scipy, pandas, matplotlib)", begun)]

    def progress(message: str) -> None:
        for prefix, name in STEPS:
            if prefix in message and name not in (s for s, _ in stamps):
                stamps.append((name, time.perf_counter()))

    loaded = load_config(config, table="headroom")
    headroom_run(loaded, config.parent, source=str(config), progress=progress)
    stamps.append(("end", time.perf_counter()))
    return [(name, stamps[k + 1][1] - at) for k, (name, at) in enumerate(stamps[:-1])]


def main(argv: list[str] | None = None) -> int:
    from sim.output.files import write_bench_csv
    from sim.report.text import format_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG, help="a config with a [headroom] table")
    parser.add_argument("--out", type=Path, default=HERE / "out", help=f"folder for {CSV_NAME}")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    wall, cpu, peak_mb, report = end_to_end(args.config)
    steps = split(args.config)
    total = sum(seconds for _, seconds in steps)
    rows = [{"step": name, "seconds": round(seconds, 2), "share": round(seconds / total, 3)} for name, seconds in steps]
    rows.append({"step": "in process, all steps", "seconds": round(total, 2), "share": 1.0})
    rows.append({"step": f"end to end: dcmarket headroom (fresh process, peak {peak_mb:,.0f} MB), wall",
                 "seconds": round(wall, 2), "share": ""})
    rows.append({"step": f"end to end, CPU time (user + system; load average {load:.1f} before)",
                 "seconds": round(cpu, 2), "share": ""})
    print(report)
    print(format_table(COLUMNS, [[r[c] for c in COLUMNS] for r in rows], [False, True, True]))
    args.out.mkdir(parents=True, exist_ok=True)
    write_bench_csv(args.out / CSV_NAME, COLUMNS, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
