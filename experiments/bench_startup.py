"""Start-up of the command line: how long `dcmarket --help` and `dcmarket log` take, against a
bare Python and against importing what a run needs, in one run.

Each command runs --repeat times (default 7) in a fresh process; the table reports the median
and fastest wall seconds and the median as a multiple of a bare `python -c pass`. The heavy
libraries (Pyomo, pandas, Mesa, pydantic, matplotlib) are imported only where they are used, so
`--help` and `log` should cost a small multiple of the bare interpreter, and a run's imports
(`import sim.studies.auction`, `import sim.studies.capacity`) show what they save. No timing is
asserted (tests check instead that the light commands import none of those libraries, and that
the capacity study imports no Mesa).

    .venv/bin/python experiments/bench_startup.py [--repeat N] [--quick] [--out experiments/out]

--quick times the light commands alone (the bare interpreter, the two --help and `log`), without
the two imports of a study: a smoke test of the script in a second.

Writes bench_startup.csv. About 20 seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run as a script: the packages are this checkout's
    sys.path.insert(0, str(REPO))

from sim.output.files import write_bench_csv  # noqa: E402
from sim.report.text import format_table  # noqa: E402

CSV_NAME = "bench_startup.csv"
COLUMNS = ["command", "repeats", "median_s", "fastest_s", "over_bare_python"]
CLI = [sys.executable, "-m", "sim.cli"]


def timed(command: list[str], repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        begun = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        seconds.append(time.perf_counter() - begun)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs of each command")
    parser.add_argument("--quick", action="store_true", help="the light commands only, not the imports of a study")
    parser.add_argument("--out", type=Path, default=HERE / "out", help=f"folder for {CSV_NAME}")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat: at least 1")
    with tempfile.TemporaryDirectory(prefix="dcmarket-startup-") as scratch:
        run_dir = Path(scratch) / "run"
        # The run that `log` reads is made here, in process: only the timed commands need their own.
        from sim.cli import main as dcmarket

        with contextlib.redirect_stdout(io.StringIO()):
            if dcmarket(["run", str(HERE / "paper_4bus_additive.toml"), "--out", str(run_dir), "--quiet"]) != 0:
                raise SystemExit("the 4-bus run that `dcmarket log` reads failed")
        commands = [
            ("python -c pass (bare interpreter)", [sys.executable, "-c", "pass"]),
            ("dcmarket --help", [*CLI, "--help"]),
            ("dcmarket run --help", [*CLI, "run", "--help"]),
            ("dcmarket log RUN", [*CLI, "log", str(run_dir)]),
        ]
        if not args.quick:
            commands += [
                ("import sim.studies.auction (what a run imports)", [sys.executable, "-c", "import sim.studies.auction"]),
                ("import sim.studies.capacity (what `dcmarket capacity` imports)",
                 [sys.executable, "-c", "import sim.studies.capacity"]),
            ]
        rows = []
        for label, command in commands:
            print(f"{label} ...", file=sys.stderr, flush=True)
            seconds = timed(command, args.repeat)
            rows.append({"command": label, "repeats": args.repeat, "median_s": statistics.median(seconds),
                         "fastest_s": min(seconds)})
    bare = rows[0]["median_s"]
    for row in rows:
        row["over_bare_python"] = row["median_s"] / bare
    print(format_table(["command", "median (s)", "fastest (s)", "x bare python"],
                       [(r["command"], f"{r['median_s']:.3f}", f"{r['fastest_s']:.3f}", f"{r['over_bare_python']:.1f}")
                        for r in rows], [False, True, True, True]))
    target = args.out / CSV_NAME
    write_bench_csv(target, COLUMNS, rows)
    print(f"\nwrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
