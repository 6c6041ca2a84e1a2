"""The study and benchmark scripts run end to end on tiny sizes and write their CSV."""

from __future__ import annotations

import csv
import runpy
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Each test starts a script in a fresh process, and most scripts start more.
pytestmark = pytest.mark.slow


def script(name: str, args: list[str], output: str, rows: int, case: str = ""):
    """One script call: its arguments, the CSV it writes and that CSV's row count."""
    return pytest.param(name, args, output, rows, id=name + (f"-{case}" if case else ""))


SCRIPTS = [
    script("flexible_sampling_study.py", ["--draws", "2", "--sizes", "200"], "flexible_sampling.csv", 2),
    # paper-4bus, exact and scenario LP (both finish: the equality check); the numpy floor on ieee14.
    script("bench_capacity.py", ["--quick", "--solvers", "highs", "--cases", "paper-4bus", "--scenarios", "100",
                                 "--floor-case", "ieee14", "--floor-scenarios", "100"], "bench_capacity.csv", 3),
    # ieee14 (a real case: every load bus asks), exact; the scenario LP killed at its limit (0.01 s:
    # always, before its imports end).
    script("bench_capacity.py", ["--quick", "--solvers", "highs", "--cases", "ieee14", "--scenarios", "100",
                                 "--limit-seconds", "0.01", "--floor-case", "none"], "bench_capacity.csv", 2, "killed"),
    # Through the Mesa model at 20 x 4 and 40 x 8, certified.
    script("bench_auction.py", ["--quick"], "bench_auction.csv", 2),
    # One site, without SVG and with 3 levels: both linearizations, GLPK on strong duality.
    script("bench_dlmp.py", ["--quick", "--sites", "1"], "bench_dlmp.csv", 6),
    script("bench_dlmp_sites.py", ["--quick"], "bench_dlmp_sites.csv", 4),
    # The four light commands, once each, each a fresh process (fresh processes import the
    # auction and the capacity study in tests/sim/test_api.py and studies/test_capacity.py).
    script("bench_startup.py", ["--repeat", "1", "--quick"], "bench_startup.csv", 4),
    # Two background states on ieee14, each solved with and without the new load.
    script("bench_ac_check.py", ["--cases", "ieee14", "--states", "2"], "bench_ac_check.csv", 1),
    # The floor, the N-0 study and the N-1 study on ieee30 (every branch: it ships no list).
    script("bench_n1.py", ["--case", "ieee30", "--scenarios", "200"], "bench_n1.csv", 3),
    # The study, then the risk check with and without the skip (equal counts, or it fails).
    script("bench_risk_check.py", ["--case", "ieee30", "--scenarios", "200", "--verify", "2000"],
           "bench_risk_check.csv", 3),
    # Memory at each step of an ieee14 study: its progress lines, the start and the end.
    script("bench_capacity_memory.py", ["--case", "ieee14", "--scenarios", "100"], "bench_capacity_memory.csv", 8),
    # A fixed plan's Stage II: reduced on 1 and 2 processes, per step and through Pyomo (equal means, or it says so).
    script("bench_fcm_evaluation.py", ["--scenarios", "30", "--compare", "10"], "bench_fcm_evaluation.csv", 4),
    # Groups of 2 on 4 and 6 scenarios, one process, the monolithic MILP beside both.
    script("bench_fcm_groups.py", ["--scenarios", "4", "6", "--group-size", "2", "--workers", "1",
                                   "--monolithic-max", "6"], "bench_fcm_groups.csv", 2),
    # The robust model's two rounds on 4 scenarios in groups of 2.
    script("bench_fcm_groups.py", ["--scenarios", "4", "--group-size", "2", "--workers", "1", "--radius", "0.1",
                                   "--monolithic-max", "4"], "bench_fcm_groups.csv", 1, "robust"),
    # One population of each mix, four mechanisms each.
    script("compare_mechanisms.py", ["--populations", "1", "--bidders", "4", "--buses", "2"],
           "compare_mechanisms.csv", 8),
]


# The benchmarks that run on Dask, each on the suite's LocalCluster (tests/conftest.py's
# dask_cluster, started once) through their --scheduler; the LocalCluster each starts without it
# (a few lines) is left to their full runs.
DASK_SCRIPTS = [
    # One run three ways: in process (--workers 1), on the cluster, as a separate call
    # (tests/sim/studies/test_sweep.py runs sweeps on a pool and on the cluster).
    script("bench_sweep.py", ["--seeds", "1", "--increments", "1", "--workers", "1"], "bench_sweep.csv", 3),
    # ieee14 in process and on the cluster, each in its own process (equal capacities, or it fails).
    script("bench_capacity_cluster.py", ["--case", "ieee14", "--scenarios", "200"], "bench_capacity_cluster.csv", 2),
]


def _run_script(script_name: str, args: list[str], path: Path, capsys) -> None:
    # The script's main() in this process (its imports are already here); the processes it
    # starts itself are still its own.
    main = runpy.run_path(str(REPO / "experiments" / script_name), run_name="dcmarket_script")["main"]
    code = main([*args, "--out", str(path)])
    assert code == 0, capsys.readouterr().err[-2000:]


def _check_csv(tmp_path: Path, output: str, rows: int) -> None:
    with (tmp_path / output).open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == rows
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp-*"))  # no partial file left


@pytest.mark.parametrize("script_name, args, output, rows", SCRIPTS)
def test_script_runs_and_writes_its_csv(tmp_path, capsys, script_name, args, output, rows):
    _run_script(script_name, args, tmp_path, capsys)
    _check_csv(tmp_path, output, rows)


@pytest.mark.parametrize("script_name, args, output, rows", DASK_SCRIPTS)
def test_a_dask_benchmark_runs_on_the_suites_cluster(tmp_path, capsys, dask_cluster, script_name, args, output,
                                                     rows):
    _run_script(script_name, [*args, "--scheduler", dask_cluster.scheduler_address], tmp_path, capsys)
    _check_csv(tmp_path, output, rows)
