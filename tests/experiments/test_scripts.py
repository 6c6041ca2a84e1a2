"""The study and benchmark scripts run end to end on tiny sizes and write their CSV."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPTS = [
    ("flexible_sampling_study.py", ["--draws", "2", "--sizes", "200"], "flexible_sampling.csv", 2),
    # paper-4bus and ieee118, exact and scenario LP (the latter killed at the quick limit on ieee118), the floor.
    ("bench_capacity.py", ["--quick", "--solvers", "highs"], "bench_capacity.csv", 5),
    # Through the Mesa model at 20 x 4 and 40 x 8, certified.
    ("bench_auction.py", ["--quick"], "bench_auction.csv", 2),
    # Two populations of each mix, four mechanisms each.
    # Two sites, without SVG and with 3 levels: both linearizations, GLPK on strong duality.
    ("bench_dlmp.py", ["--quick"], "bench_dlmp.csv", 6),
    # 8 runs three ways: a pool, a Dask LocalCluster, separate calls.
    ("bench_sweep.py", ["--quick"], "bench_sweep.csv", 3),
    # Five commands, once each.
    ("bench_startup.py", ["--repeat", "1"], "bench_startup.csv", 5),
    ("compare_mechanisms.py", ["--populations", "2", "--bidders", "4", "--buses", "2"], "compare_mechanisms.csv", 16),
]


@pytest.mark.parametrize("script, args, output, rows", SCRIPTS, ids=[s[0] for s in SCRIPTS])
def test_script_runs_and_writes_its_csv(tmp_path, script, args, output, rows):
    result = subprocess.run(
        [sys.executable, str(REPO / "experiments" / script), *args, "--out", str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with (tmp_path / output).open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == rows
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp-*"))  # no partial file left
