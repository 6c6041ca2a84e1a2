"""Exact capacity method against the paper's scenario LP (17): time, peak memory, equality.

For each case (default 'paper-4bus', 'ieee118', 'ieee300', 'case_ACTIVSg2000') and scenario
count S (default 2,000 and 10,000), the study ``grid.capacity.study.capacity_study`` computes firm and
flexible capacity (eps = 0.05) with each formulation ("exact": CVaR per limit by a partial sort,
an LP the size of the robust one; "scenario": LP (17) with one z per limit and scenario) and each
solver (HiGHS; GLPK through Pyomo for the LP stages, its tie-break QP in HiGHS). Candidates: every
load bus asks 100 MW on the real cases, whose background is the default base-load spread
(``sample_base_load``); the paper case asks D = {3: 40, 4: 30} MW over the truncated normals of
docs/models/capacity.md#ca-5-1. The draws are seeded and the same for every method.

Every measurement runs in a fresh subprocess (``--one SPEC``; short ones up to --repeats times, the
fastest kept), which reports its own peak
resident memory (ru_maxrss; with GLPK also glpsol's, reported apart) and its timings as JSON. A
subprocess first imports everything and solves a tiny warm-up study, so imports and solver
start-up are not charged. "total s" = load the case + sample the scenarios + capacity;
"capacity s" = the capacity computation alone (candidates + firm + flexible), the like-for-like
part. A scenario-LP measurement that runs longer than --limit-seconds (600) is killed with its
solver processes and reported as "did not finish"; a scenario LP that did not finish on a case
at the smaller S is then skipped at the larger S for that solver. The subprocesses run under an
address-space limit (--memory-limit-gb), so a model too big for the machine fails with "out of
memory" instead of swapping or meeting the kernel's OOM killer.

Equality: where the scenario LP finished, the largest |difference| of firm and flexible
capacities against the exact method (same solver), and of GLPK against HiGHS (same method),
both to be <= 1e-6 MW.

Also measured in the same run: the bare numpy/scipy floor on 'case_ACTIVSg2000' with 10,000
scenarios (dense shift factors of every line, the scenario flows H @ samples.T and one
np.partition per line for the eps S largest flows of both signs, with their CVaR), with the
exact method's time as a ratio to it (target: within 3x of the floor and under 10 s); and
'case_ACTIVSg10k' with 10,000 scenarios, exact method with HiGHS.

    .venv/bin/python experiments/bench_capacity.py [--quick] [--out experiments/out]

The full run takes up to about an hour (mostly scenario LPs running into the 600 s limit);
--quick (4-bus and ieee118 at S = 2,000, 5 s limit) takes about half a minute. Prints the
tables and writes bench_capacity.md and bench_capacity.csv (one row per measurement), both
rewritten after every measurement, so an interrupted run leaves the results so far.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run as a script: the packages are this checkout's
    sys.path.insert(0, str(REPO))

from sim.output.files import write_table_csv  # noqa: E402  (light: no numpy, no solver)

PAPER_CASE = "paper-4bus"
# The background loads of the paper's case (docs/models/capacity.md#ca-5-1), as in
# experiments/paper_4bus_additive.toml:
# bus -> (mean MW, variance MW^2, lower MW, upper MW).
PAPER_LOADS = {1: (25.0, 5.0, 20.0, 30.0), 2: (25.0, 5.0, 20.0, 30.0),
               3: (15.0, 5.0, 10.0, 20.0), 4: (20.0, 5.0, 10.0, 30.0)}
PAPER_DEMAND_MW = {3: 40.0, 4: 30.0}
CASE_DEMAND_MW = 100.0      # every load bus of a real case asks this much
EPSILON = 0.05
TOLERANCE_MW = 1e-6         # the two formulations and the two solvers must agree to this
FLOOR_TARGET_RATIO = 3.0    # the exact method within 3x of the numpy floor ...
FLOOR_TARGET_SECONDS = 10.0  # ... and under 10 s

DEFAULT_CASES = ["paper-4bus", "ieee118", "ieee300", "case_ACTIVSg2000"]
QUICK_CASES = ["paper-4bus", "ieee118"]
METHODS = ("exact", "scenario")
SOLVERS = ("highs", "glpk")
MARKER = "BENCH_CAPACITY_RESULT "
CSV_NAME, MD_NAME = "bench_capacity.csv", "bench_capacity.md"

CSV_FIELDS = [
    "part", "case", "buses", "lines", "candidates", "scenarios", "method", "solver", "status",
    "seconds_total", "seconds_load", "seconds_sample", "seconds_capacity", "seconds_wall",
    "peak_mb", "glpsol_peak_mb", "baseline_mb", "firm_total_mw", "flexible_total_mw",
    "max_diff_firm_vs_exact_mw", "max_diff_flexible_vs_exact_mw",
    "max_diff_firm_vs_highs_mw", "max_diff_flexible_vs_highs_mw",
    "speedup_total", "speedup_capacity", "speedup_lower_bound",
    "floor_ptdf_seconds", "floor_ptdf_method", "floor_ptdf_sparse_seconds", "floor_ptdf_dense_seconds",
    "floor_flows_seconds", "floor_partition_seconds", "ratio_total_to_floor", "ratio_capacity_to_floor",
    "runs", "limit_seconds", "note",
]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# =============================================================================================
# The child: one measurement in a fresh process


def _draw(network, case: str, count: int, seed: int):
    """The seeded background scenarios and the requests (bus -> MW) of a case."""
    from grid.load.scenarios import (
        BaseLoadSpread,
        TruncatedNormalLoad,
        sample_base_load,
        sample_truncated_normal,
    )
    from sim.random_streams import stream

    if case == PAPER_CASE:
        loads = {bus: TruncatedNormalLoad(*values) for bus, values in PAPER_LOADS.items()}
        return sample_truncated_normal(network, loads, count, stream(seed, "scenarios")), dict(PAPER_DEMAND_MW)
    scenarios = sample_base_load(network, BaseLoadSpread(), count, stream(seed, "scenarios"))
    return scenarios, {bus: CASE_DEMAND_MW for bus in network.load_buses}


def _peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux reports kB


class _SolverPeak:
    """Peak resident memory (VmHWM) of this process's glpsol children, polled from /proc.

    ru_maxrss of RUSAGE_CHILDREN would count the Python process's own pages that a child shares
    between fork and exec, so the solver's own peak is read while it runs (every ``interval``
    seconds; the growth of its last moments can be missed).
    """

    def __init__(self, name: str = "glpsol", interval: float = 0.05) -> None:
        import threading

        self.name, self.interval, self.peak_kb = name, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> "_SolverPeak":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        me = os.getpid()
        while not self._stop.wait(self.interval):
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                    name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:]
                    if name != self.name or int(rest.split()[1]) != me:
                        continue
                    for line in Path(f"/proc/{entry}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak_kb = max(self.peak_kb, int(line.split()[1]))
                except (OSError, ValueError, IndexError):
                    continue  # gone in the meantime


def _measure_capacity(spec: dict[str, Any]) -> dict[str, Any]:
    from grid.capacity.inputs.candidates import make_candidates
    from grid.capacity.matrices.shift_factors import flow_model
    from grid.capacity.study import capacity_study
    from grid.network.cases import load_case

    solver, formulation = spec["solver"], spec["method"]
    # Warm-up: imports, solver bindings, Pyomo writers and glpsol's first start, on a tiny study.
    warm = load_case(PAPER_CASE)
    scenarios, demand = _draw(warm, PAPER_CASE, 50, spec["seed"])
    capacity_study(warm, scenarios, make_candidates(warm, demand), [EPSILON], solver=solver,
                   formulation=formulation, threads=spec["threads"])
    flow_model.cache_clear()
    del warm, scenarios
    gc.collect()
    baseline = _peak_mb()

    with _SolverPeak() as solver_peak:
        start = time.perf_counter()
        network = load_case(spec["case"])
        loaded = time.perf_counter()
        scenarios, demand = _draw(network, spec["case"], spec["scenarios"], spec["seed"])
        sampled = time.perf_counter()
        candidates = make_candidates(network, demand)
        study = capacity_study(network, scenarios, candidates, [EPSILON], solver=solver,
                               formulation=formulation, threads=spec["threads"])
        done = time.perf_counter()
    return {
        "status": "ok",
        "buses": len(network.buses), "lines": len(network.lines), "candidates": len(candidates),
        "seconds_load": loaded - start, "seconds_sample": sampled - loaded,
        "seconds_capacity": done - sampled, "seconds_total": done - start,
        "peak_mb": _peak_mb(), "glpsol_peak_mb": solver_peak.peak_kb / 1024.0 if solver == "glpk" else None,
        "baseline_mb": baseline,
        "candidate_buses": list(candidates.buses),
        "firm_mw": [study.firm.capacity_mw[b] for b in candidates.buses],
        "flexible_mw": [study.tiers[0].capacity_mw[b] for b in candidates.buses],
    }


def _ptdf_builders(network):
    """Two bare ways to the dense shift factors H (lines x buses) of the network's slack model:
    one sparse LU of the reduced susceptance matrix solved for every line, or a dense solve."""
    import numpy as np
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    def parts():
        index = {bus.number: i for i, bus in enumerate(network.buses)}
        n_line, n_bus = len(network.lines), len(network.buses)
        x = np.array([1.0 if line.reactance_pu is None else line.reactance_pu for line in network.lines])
        rows = np.repeat(np.arange(n_line), 2)
        cols = np.array([index[b] for line in network.lines for b in (line.from_bus, line.to_bus)])
        incidence = sp.csr_matrix((np.tile([1.0, -1.0], n_line), (rows, cols)), shape=(n_line, n_bus))
        weighted = sp.diags(1.0 / x) @ incidence                   # diag(b) A
        b_matrix = (incidence.T @ weighted).tocsc()                # A' diag(b) A
        ref = index[network.reference_bus]
        keep = np.array([i for i in range(n_bus) if i != ref])
        return weighted, b_matrix[keep][:, keep], keep, n_line, n_bus

    def finish(h_reduced, keep, n_line, n_bus):
        h = np.zeros((n_line, n_bus))
        h[:, keep] = h_reduced
        if network.slack != "reference":   # distributed slack: H - (H alpha) 1'
            alpha = np.zeros(n_bus)
            for bus, share in network.participation().items():
                alpha[network.bus_index(bus)] = share
            h -= (h @ alpha)[:, None]
        return h

    def sparse_lu():
        weighted, b_red, keep, n_line, n_bus = parts()
        rhs = weighted[:, keep].T.toarray()
        return finish(-splu(b_red.tocsc()).solve(rhs).T, keep, n_line, n_bus)

    def dense():
        weighted, b_red, keep, n_line, n_bus = parts()
        rhs = weighted[:, keep].T.toarray()
        return finish(-np.linalg.solve(b_red.toarray(), rhs).T, keep, n_line, n_bus)

    return sparse_lu, dense


def _measure_floor(spec: dict[str, Any]) -> dict[str, Any]:
    """Shift factors, scenario flows and one partial sort per line, in bare numpy/scipy, with
    numpy's huge-page advice off as in the studies (grid/memory_advice.py): with it, the kernel's
    compaction stalls the floor's fresh arrays by seconds on some runs."""
    from grid.memory_advice import without_hugepage_advice

    with without_hugepage_advice():
        return _floor(spec)


def _floor(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from grid.network.cases import load_case

    network = load_case(spec["case"])
    scenarios, _ = _draw(network, spec["case"], spec["scenarios"], spec["seed"])
    samples = scenarios.samples_mw                      # (S, buses)
    count = samples.shape[0]
    sparse_lu, dense = _ptdf_builders(network)
    warm_lu, warm_dense = _ptdf_builders(load_case(PAPER_CASE))   # warm-up: scipy's LU, LAPACK, BLAS
    np.partition(warm_lu() @ warm_dense().T, 1, axis=1)
    gc.collect()
    baseline = _peak_mb()

    start = time.perf_counter()
    h = sparse_lu()
    ptdf_sparse = time.perf_counter() - start
    ptdf_dense = None
    if len(network.buses) <= 5000:                     # a dense B of 10k buses is 0.8 GB; not a floor
        start = time.perf_counter()
        h_dense = dense()
        ptdf_dense = time.perf_counter() - start
        if not np.allclose(h, h_dense, atol=1e-9):
            raise RuntimeError("the two shift-factor computations disagree")
        del h_dense
    start = time.perf_counter()
    flows = h @ samples.T                               # (lines, S)
    flows_s = time.perf_counter() - start

    start = time.perf_counter()
    mass = EPSILON * count
    whole = int(math.floor(mass))                       # the w largest and the (w+1)-th
    keep = whole + 1
    part = np.partition(flows, [keep - 1, count - keep], axis=1)
    top = part[:, count - whole:].sum(axis=1)
    bottom = part[:, :whole].sum(axis=1)
    cvar_upper = (top + (mass - whole) * part[:, count - keep]) / mass
    cvar_lower = (-bottom - (mass - whole) * part[:, keep - 1]) / mass
    partition_s = time.perf_counter() - start
    assert cvar_upper.shape == cvar_lower.shape == (len(network.lines),)

    ptdf_s = ptdf_sparse if ptdf_dense is None else min(ptdf_sparse, ptdf_dense)
    return {
        "status": "ok", "buses": len(network.buses), "lines": len(network.lines),
        "floor_ptdf_seconds": ptdf_s,
        "floor_ptdf_method": "sparse LU" if ptdf_s == ptdf_sparse else "dense solve",
        "floor_ptdf_sparse_seconds": ptdf_sparse, "floor_ptdf_dense_seconds": ptdf_dense,
        "floor_flows_seconds": flows_s, "floor_partition_seconds": partition_s,
        "seconds_capacity": ptdf_s + flows_s + partition_s,
        "seconds_total": ptdf_s + flows_s + partition_s,
        "peak_mb": _peak_mb(), "baseline_mb": baseline,
    }


def child_main(spec_text: str) -> int:
    spec = json.loads(spec_text)
    limit = spec.get("memory_limit_bytes")
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))
    try:
        result = _measure_floor(spec) if spec["kind"] == "floor" else _measure_capacity(spec)
    except MemoryError:
        result = {"status": "oom", "peak_mb": _peak_mb()}
    print(MARKER + json.dumps(result), flush=True)
    return 0


# =============================================================================================
# The parent: the plan, the subprocesses, the tables


@dataclass
class Job:
    part: str               # "compare", "floor" or "large"
    kind: str               # "capacity" or "floor"
    case: str
    scenarios: int
    method: str             # exact, scenario or "numpy floor"
    solver: str
    limit: float
    row: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)


def _status_text(result: dict[str, Any], limit: float, memory_gb: float | None) -> str:
    status = result.get("status")
    if status == "ok":
        return "ok"
    if status == "timeout":
        return f"did not finish in {limit:g} s"
    if status == "oom":
        return f"out of memory (limit {memory_gb:g} GB)" if memory_gb else "out of memory"
    return str(result.get("error", status))


def run_child(spec: dict[str, Any], limit: float) -> dict[str, Any]:
    """Run one measurement in a fresh process group; kill the group after ``limit`` seconds."""
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as scratch:
        # The solver's temp files (Pyomo's LP and solution files) go to the scratch folder, so a
        # killed glpsol leaves nothing behind.
        env = {**os.environ, "TMPDIR": scratch,
               "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--one", json.dumps(spec)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO),
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)      # the child and its glpsol, nothing else
            proc.communicate()
            return {"status": "timeout", "seconds_wall": time.perf_counter() - start}
        finally:
            if proc.poll() is None:                  # interrupted: leave no solver running
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            try:                                     # a solver the child left behind
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        wall = time.perf_counter() - start
    lines = [line for line in out.splitlines() if line.startswith(MARKER)]
    if lines:
        result = json.loads(lines[-1][len(MARKER):])
        result["seconds_wall"] = wall
        return result
    tail = [line for line in err.strip().splitlines() if line.strip()]
    if any("MemoryError" in line or "bad_alloc" in line for line in tail[-5:]):
        return {"status": "oom", "seconds_wall": wall}
    guard = re.search(r"needs about ([0-9.]+ [kMGT]?B)", tail[-1]) if tail else None
    if guard and "formulation 'scenario'" in tail[-1]:
        # The study's own memory guard refused (17) before building it.
        return {"status": "refused", "error": f"refused: needs about {guard.group(1)}", "seconds_wall": wall}
    if proc.returncode < 0:
        error = f"killed by signal {-proc.returncode}"
    else:
        error = f"failed: {tail[-1][:200] if tail else f'exit code {proc.returncode}'}"
    return {"status": "failed", "error": error, "seconds_wall": wall, "stderr": "\n".join(tail[-20:])}


def measure(spec: dict[str, Any], limit: float, args: argparse.Namespace) -> dict[str, Any]:
    """The fastest of up to --repeats runs, each in a fresh process; repeats stop once the runs
    together took --repeat-budget seconds (so only short measurements repeat) or one fails."""
    best: dict[str, Any] | None = None
    runs, used = 0, 0.0
    while runs < max(1, args.repeats) and (runs == 0 or used < args.repeat_budget):
        result = run_child(spec, limit)
        runs += 1
        used += result.get("seconds_wall", 0.0)
        if result.get("status") != "ok":
            if best is None:
                return {**result, "runs": runs}
            break                                    # a repeat failed: keep the run that finished
        if best is None or result["seconds_total"] < best["seconds_total"]:
            best = result
    assert best is not None
    return {**best, "runs": runs}


def _max_diff(a: dict[str, Any], b: dict[str, Any], key: str) -> float:
    if a.get("candidate_buses") != b.get("candidate_buses"):
        raise RuntimeError("two measurements of one case have different candidates")
    return max((abs(x - y) for x, y in zip(a[key], b[key])), default=0.0)


def fill_comparisons(jobs: list[Job]) -> None:
    """Differences, speed-ups and floor ratios between the measurements done so far."""
    done = {(j.part, j.case, j.scenarios, j.method, j.solver): j for j in jobs if j.result}
    sizes: dict[str, tuple[Any, Any, Any]] = {}
    for j in jobs:
        if j.result.get("status") == "ok" and j.kind == "capacity":
            sizes[j.case] = (j.result["buses"], j.result["lines"], j.result["candidates"])
        elif j.result.get("status") == "ok":
            sizes.setdefault(j.case, (j.result["buses"], j.result["lines"], None))
    for j in jobs:
        if not j.result:
            continue
        row = j.row
        row.update({"part": j.part, "case": j.case, "scenarios": j.scenarios, "method": j.method,
                    "solver": j.solver, "limit_seconds": j.limit})
        row["buses"], row["lines"], candidates = sizes.get(j.case, (None, None, None))
        if j.kind == "capacity":
            row["candidates"] = candidates
        for key in ("runs", "seconds_total", "seconds_load", "seconds_sample", "seconds_capacity", "seconds_wall",
                    "peak_mb", "glpsol_peak_mb", "baseline_mb", "floor_ptdf_seconds", "floor_ptdf_method",
                    "floor_ptdf_sparse_seconds", "floor_ptdf_dense_seconds", "floor_flows_seconds",
                    "floor_partition_seconds"):
            if key in j.result:
                row[key] = j.result[key]
        if j.result.get("status") != "ok":
            continue
        if j.kind == "capacity":
            row["firm_total_mw"] = sum(j.result["firm_mw"])
            row["flexible_total_mw"] = sum(j.result["flexible_mw"])
            exact = done.get((j.part, j.case, j.scenarios, "exact", j.solver))
            if j.method == "scenario" and exact and exact.result.get("status") == "ok":
                row["max_diff_firm_vs_exact_mw"] = _max_diff(j.result, exact.result, "firm_mw")
                row["max_diff_flexible_vs_exact_mw"] = _max_diff(j.result, exact.result, "flexible_mw")
            highs = done.get((j.part, j.case, j.scenarios, j.method, "highs"))
            if j.solver != "highs" and highs and highs.result.get("status") == "ok":
                row["max_diff_firm_vs_highs_mw"] = _max_diff(j.result, highs.result, "firm_mw")
                row["max_diff_flexible_vs_highs_mw"] = _max_diff(j.result, highs.result, "flexible_mw")
            if j.method == "exact":
                _speedup(j, done.get((j.part, j.case, j.scenarios, "scenario", j.solver)))
        else:
            exact = done.get(("compare", j.case, j.scenarios, "exact", "highs"))
            if exact and exact.result.get("status") == "ok":
                row["ratio_total_to_floor"] = exact.result["seconds_total"] / j.result["seconds_total"]
                row["ratio_capacity_to_floor"] = exact.result["seconds_capacity"] / j.result["seconds_total"]


def _speedup(exact: Job, scenario: Job | None) -> None:
    """Scenario LP time over exact time; a lower bound when the scenario LP was killed."""
    row, mine = exact.row, exact.result
    for key in ("speedup_total", "speedup_capacity", "speedup_lower_bound"):
        row.pop(key, None)
    if scenario is None or not scenario.result:
        return
    theirs = scenario.result
    if theirs.get("status") == "ok":
        row["speedup_total"] = theirs["seconds_total"] / mine["seconds_total"]
        row["speedup_capacity"] = theirs["seconds_capacity"] / mine["seconds_capacity"]
        row["speedup_lower_bound"] = False
    elif theirs.get("status") == "timeout":
        # The killed process had spent about what this one spent on start-up and warm-up before
        # its clock started, and about this one's load and sampling time before its capacity part.
        startup = mine["seconds_wall"] - mine["seconds_total"]
        spent = scenario.limit - startup
        row["speedup_total"] = spent / mine["seconds_total"]
        row["speedup_capacity"] = (spent - mine["seconds_load"] - mine["seconds_sample"]) / mine["seconds_capacity"]
        row["speedup_lower_bound"] = True


# --------------------------------------------------------------------------------------------
# Output


def _num(value: Any, spec: str = ".3g") -> str:
    if value is None or value == "" or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, spec)


def _seconds(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _diff(row: dict[str, Any], what: str) -> str:
    values = [row.get(f"max_diff_firm_vs_{what}_mw"), row.get(f"max_diff_flexible_vs_{what}_mw")]
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    worst = max(values)
    return f"{worst:.1e}" + ("" if worst <= TOLERANCE_MW else " FAIL")


def _speed_cell(row: dict[str, Any]) -> str:
    if row.get("speedup_total") is None:
        return "–"
    sign = ">" if row.get("speedup_lower_bound") else ""

    def ratio(value: float) -> str:
        return f"{sign}{value:,.0f}×" if value >= 100 else f"{sign}{value:.3g}×"

    return f"{ratio(row['speedup_total'])} / {ratio(row['speedup_capacity'])}"


def _memory_cell(row: dict[str, Any]) -> str:
    if row.get("peak_mb") is None:
        return "–"
    text = f"{row['peak_mb']:.0f}"
    if row.get("solver") == "glpk":   # 0: glpsol ran too briefly to be sampled
        text += f" (glpsol {row['glpsol_peak_mb']:.0f})" if row.get("glpsol_peak_mb") else " (glpsol –)"
    return text


def _table(headers: list[str], body: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if i in right else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in right else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return [line(headers), rule] + [line(r) for r in body]


def main_table(jobs: list[Job]) -> list[str]:
    headers = ["case", "buses", "lines", "S", "method", "solver", "total s", "capacity s", "peak MB",
               "max diff vs exact MW", "max diff vs HiGHS MW", "exact speed-up (total / capacity)", "status"]
    body = []
    for j in jobs:
        if j.kind != "capacity" or not j.row:
            continue
        r = j.row
        status = r.get("status", "")
        body.append([
            r["case"], _num(r.get("buses"), "d"), _num(r.get("lines"), "d"), f"{r['scenarios']:,}", r["method"],
            "HiGHS" if r["solver"] == "highs" else "GLPK",
            _seconds(r.get("seconds_total")) if status == "ok" else "–",
            _seconds(r.get("seconds_capacity")) if status == "ok" else "–",
            _memory_cell(r) if status == "ok" else "–",
            _diff(r, "exact"), _diff(r, "highs"), _speed_cell(r), status,
        ])
    return _table(headers, body, right={1, 2, 3, 6, 7, 8, 9, 10, 11})


def floor_section(jobs: list[Job]) -> list[str]:
    lines: list[str] = []
    for j in jobs:
        if j.kind != "floor" or not j.row:
            continue
        r = j.row
        if r.get("status") != "ok":
            lines.append(f"Numpy floor on {j.case}, S = {j.scenarios:,}: {r.get('status')}.")
            continue
        exact = next((e for e in jobs if e.part == "compare" and e.case == j.case and e.scenarios == j.scenarios
                      and e.method == "exact" and e.solver == "highs" and e.result.get("status") == "ok"), None)
        ptdf_note = (f"{r['floor_ptdf_method']}; sparse LU {r['floor_ptdf_sparse_seconds']:.3f} s"
                     + (f", dense solve {r['floor_ptdf_dense_seconds']:.3f} s" if r.get("floor_ptdf_dense_seconds")
                        is not None else ""))
        headers = ["case", "S", "shift factors s", "flows s", "partial sort s", "floor s", "floor peak MB",
                   "exact total s", "exact capacity s", "total / floor", "capacity / floor", "target"]
        if exact is not None:
            total, capacity = exact.result["seconds_total"], exact.result["seconds_capacity"]
            met = total <= FLOOR_TARGET_RATIO * r["seconds_total"] and total < FLOOR_TARGET_SECONDS
            cells = [_seconds(total), _seconds(capacity), f"{r['ratio_total_to_floor']:.2f}×",
                     f"{r['ratio_capacity_to_floor']:.2f}×", "met" if met else "NOT met"]
        else:
            cells = ["–", "–", "–", "–", "no exact HiGHS run at this case and S"]
        body = [[j.case, f"{j.scenarios:,}", f"{r['floor_ptdf_seconds']:.3f}", f"{r['floor_flows_seconds']:.3f}",
                 f"{r['floor_partition_seconds']:.3f}", f"{r['seconds_total']:.3f}", f"{r['peak_mb']:.0f}", *cells]]
        lines += [f"Bare numpy floor (shift factors: {ptdf_note}; flows H @ samples.T; np.partition per line for "
                  f"the floor(eps S)+1 largest flows of both signs, with their CVaR) against the exact method with "
                  f"HiGHS, end to end. Target: within {FLOOR_TARGET_RATIO:g}× of the floor and under "
                  f"{FLOOR_TARGET_SECONDS:g} s.", ""]
        lines += _table(headers, body, right=set(range(1, 11)))
    return lines


def equality_line(jobs: list[Job]) -> str:
    diffs = [v for j in jobs for k, v in j.row.items() if k.startswith("max_diff") and v is not None]
    if not diffs:
        return "Equality check: no pair of finished runs to compare."
    worst = max(diffs)
    verdict = "passed" if worst <= TOLERANCE_MW else "FAILED"
    return (f"Equality check ({len(diffs)} comparisons of firm or flexible capacities): largest |difference| "
            f"{worst:.2e} MW, tolerance {TOLERANCE_MW:g} MW: {verdict}.")


def _versions() -> str:
    parts = [f"Python {platform.python_version()}"]
    for name in ("numpy", "scipy", "highspy", "pyomo"):
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    glpsol = shutil.which("glpsol")
    if glpsol:
        try:
            first = subprocess.run([glpsol, "--version"], capture_output=True, text=True, timeout=10).stdout
            parts.append(first.splitlines()[0].replace("GLPSOL--GLPK LP/MIP Solver", "GLPK").strip())
        except (OSError, subprocess.SubprocessError, IndexError):
            pass
    return ", ".join(parts)


def code_state() -> str:
    """The commit, the tree of grid/ and any uncommitted change under it (read-only git), so that
    a run can tell whether the code it measures changed while it ran."""
    def git(*command: str) -> str:
        return subprocess.run(["git", *command], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        head, tree, dirty = git("rev-parse", "--short", "HEAD"), git("rev-parse", "--short", "HEAD:grid"), \
            git("status", "--porcelain", "--", "grid")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not head:
        return "unknown"
    return f"commit {head}, grid/ tree {tree}" + (f", {len(dirty.splitlines())} uncommitted grid/ files" if dirty else "")


def _same_grid(start: str, end: str) -> bool:
    """Whether two code_state() texts describe the same grid/ code (other commits do not matter)."""
    def grid_part(text: str) -> str:
        return text.split(", ", 1)[1] if ", " in text else text

    return grid_part(start) == grid_part(end) and "uncommitted" not in start


def _machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    total = _meminfo("MemTotal")
    memory = f", {total / 2**30:.0f} GB RAM" if total else ""
    return f"{cores} cores{' (' + model + ')' if model else ''}{memory}"


def _meminfo(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def report(jobs: list[Job], args: argparse.Namespace, started: float, finished: bool) -> str:
    memory = f"{args.memory_limit_gb:g} GB address space" if args.memory_limit_gb else "none"
    lines = [
        "# Capacity benchmark: exact method vs scenario LP (17)" + ("" if finished else " (partial: still running)"),
        "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {time.perf_counter() - started:.0f} s so far"
        if not finished else
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC in {time.perf_counter() - started:.0f} s",
        f"on {_machine()}; {_versions()}.",
        f"Code: {args.code_at_start}" + ("" if not finished or args.code_at_end == args.code_at_start else
                                        f"; at the end: {args.code_at_end}" + (" (grid/ unchanged)" if _same_grid(
                                            args.code_at_start, args.code_at_end) else
                                            " (grid/ CHANGED during the run: results may mix versions)")) + ".",
        "",
        f"Settings: eps = {EPSILON:g}; real cases: every load bus asks {CASE_DEMAND_MW:g} MW over the default "
        "base-load spread; paper-4bus: D = {3: 40, 4: 30} MW over the paper's loads; seed "
        f"{args.seed} (same draws for every method); capacity_study threads = {args.threads}; scenario-LP limit "
        f"{args.limit_seconds:g} s (other measurements {args.exact_limit_seconds:g} s); memory limit per "
        f"measurement: {memory}.",
        "",
        f"Each row is the fastest of up to {args.repeats} runs, each in a fresh process (repeats stop once a "
        f"measurement's runs took {args.repeat_budget:g} s, so long ones run once). total s = load the case + sample + capacity; capacity s = firm and "
        "flexible capacity alone (after sampling). Peak MB = the process's peak resident memory (ru_maxrss, "
        "including about 130-250 MB of imported libraries; with GLPK also glpsol's own peak, polled every "
        "0.05 s). Max diff = "
        "largest |difference| over the candidates of firm and flexible capacity, against the exact method "
        "with the same solver, and against HiGHS with the same method. Exact speed-up = scenario LP time / "
        "exact time with the same solver (\">\" = a lower bound: the scenario LP was killed at the limit). "
        "GLPK solves the two LP stages; the tie-break QP always runs in HiGHS.",
        "",
        *main_table(jobs),
        "",
        equality_line(jobs),
    ]
    notes = sorted({j.row.get("note") for j in jobs if j.row.get("note")})
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    floor = floor_section(jobs)
    if floor:
        lines += ["", *floor]
    return "\n".join(lines) + "\n"


def write_outputs(jobs: list[Job], args: argparse.Namespace, started: float, finished: bool) -> str:
    fill_comparisons(jobs)
    text = report(jobs, args, started, finished)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / MD_NAME
    partial = target.with_name(target.name + ".tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(target)
    rows = [{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in j.row.items()} for j in jobs if j.row]
    write_table_csv(args.out / CSV_NAME, CSV_FIELDS, rows)
    return text


# --------------------------------------------------------------------------------------------


def solver_missing(name: str) -> str | None:
    import importlib.util

    if name == "glpk" and shutil.which("glpsol") is None:
        return "glpsol not found (apt-get install glpk-utils)"
    if name == "highs" and importlib.util.find_spec("highspy") is None:
        return "highspy not installed"
    return None


def plan(args: argparse.Namespace, solvers: list[str]) -> list[Job]:
    jobs = []
    for case in args.cases:
        for count in sorted(args.scenarios):
            for method in METHODS:
                for solver in solvers:
                    limit = args.limit_seconds if method == "scenario" else args.exact_limit_seconds
                    jobs.append(Job("compare", "capacity", case, count, method, solver, limit))
    if args.floor_case:
        jobs.append(Job("floor", "floor", args.floor_case, args.floor_scenarios, "numpy floor", "-",
                        args.exact_limit_seconds))
    if args.large_case and "highs" in solvers:
        jobs.append(Job("large", "capacity", args.large_case, args.large_scenarios, "exact", "highs",
                        args.exact_limit_seconds))
    return jobs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="paper-4bus and ieee118 at S = 2,000, 5 s scenario-LP limit, floor on ieee118, "
                             "no 10k case: well under a minute")
    parser.add_argument("--cases", nargs="+", default=None, help=f"cases to compare [default: {' '.join(DEFAULT_CASES)}]")
    parser.add_argument("--scenarios", type=int, nargs="+", default=None, help="scenario counts S [default: 2000 10000]")
    parser.add_argument("--solvers", nargs="+", choices=SOLVERS, default=list(SOLVERS),
                        help="solvers (missing ones are skipped)")
    parser.add_argument("--limit-seconds", type=float, default=None,
                        help="kill a scenario-LP measurement after this long [default: 600; --quick 5]")
    parser.add_argument("--exact-limit-seconds", type=float, default=None,
                        help="safety limit for the other measurements [default: 3600; --quick 120]")
    parser.add_argument("--memory-limit-gb", type=float, default=None,
                        help="address-space limit per measurement, 0 for none [default: 70%% of the memory "
                             "available at start, at most 64]")
    parser.add_argument("--floor-case", default=None,
                        help="case of the numpy floor, 'none' to skip [default: case_ACTIVSg2000; --quick ieee118]")
    parser.add_argument("--floor-scenarios", type=int, default=None, help="S of the floor [default: 10000; --quick 2000]")
    parser.add_argument("--large-case", default=None,
                        help="the large case, exact method with HiGHS only, 'none' to skip "
                             "[default: case_ACTIVSg10k; --quick none]")
    parser.add_argument("--large-scenarios", type=int, default=10000, help="S of the large case")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs per measurement (each a fresh process), the fastest kept [default: 3; --quick 1]")
    parser.add_argument("--repeat-budget", type=float, default=30.0,
                        help="no further repeat once a measurement's runs took this many seconds")
    parser.add_argument("--threads", type=int, default=2, help="capacity_study threads (HiGHS)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=HERE / "out", help=f"folder for {MD_NAME} and {CSV_NAME}")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one measurement
    args = parser.parse_args(argv)
    if args.one is not None:
        return args
    quick = args.quick
    if args.cases is None:
        args.cases = QUICK_CASES if quick else DEFAULT_CASES
    if args.scenarios is None:
        args.scenarios = [2000] if quick else [2000, 10000]
    if args.repeats is None:
        args.repeats = 1 if quick else 3
    if args.limit_seconds is None:
        args.limit_seconds = 5.0 if quick else 600.0
    if args.exact_limit_seconds is None:
        args.exact_limit_seconds = 120.0 if quick else 3600.0
    if args.floor_case is None:
        args.floor_case = "ieee118" if quick else "case_ACTIVSg2000"
    if args.floor_scenarios is None:
        args.floor_scenarios = 2000 if quick else 10000
    if args.large_case is None:
        args.large_case = "none" if quick else "case_ACTIVSg10k"
    for name in ("floor_case", "large_case"):
        if getattr(args, name).lower() == "none":
            setattr(args, name, None)
    if args.memory_limit_gb is None:
        available = _meminfo("MemAvailable")
        args.memory_limit_gb = min(64.0, round(0.7 * available / 2**30, 1)) if available else 0.0
    if any(s < 100 for s in [*args.scenarios, args.floor_scenarios, args.large_scenarios]):
        parser.error("scenario counts must be at least 100")
    if args.limit_seconds <= 0 or args.exact_limit_seconds <= 0:
        parser.error("limits must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one is not None:
        return child_main(args.one)
    started = time.perf_counter()
    args.code_at_start = args.code_at_end = code_state()
    solvers = []
    for name in dict.fromkeys(args.solvers):
        missing = solver_missing(name)
        if missing:
            progress(f"skipping {name}: {missing}")
        else:
            solvers.append(name)
    if not solvers:
        raise SystemExit("no solver available")
    jobs = plan(args, solvers)
    memory_bytes = int(args.memory_limit_gb * 2**30) if args.memory_limit_gb else None
    unfinished: dict[tuple[str, str], tuple[int, str]] = {}   # (case, solver) -> (S, status) of a failed scenario LP
    for position, job in enumerate(jobs, start=1):
        label = (f"[{position}/{len(jobs)}] {job.case} S={job.scenarios} {job.method}"
                 + (f" {job.solver}" if job.kind == "capacity" else ""))
        earlier = unfinished.get((job.case, job.solver)) if job.method == "scenario" else None
        if earlier is not None:
            count, status = earlier
            job.result = {"status": "skipped"}
            job.row["status"] = f"skipped: {status} at S = {count:,}"
            job.row["note"] = (f"{job.case}, scenario LP with {'HiGHS' if job.solver == 'highs' else 'GLPK'}: "
                               f"{status} at S = {count:,}, so not run at larger S.")
            progress(f"{label}: {job.row['status']}")
        else:
            progress(f"{label} ...")
            spec = {"kind": job.kind, "case": job.case, "scenarios": job.scenarios, "method": job.method,
                    "solver": job.solver, "seed": args.seed, "threads": args.threads,
                    "memory_limit_bytes": memory_bytes}
            job.result = measure(spec, job.limit, args)
            job.row["status"] = _status_text(job.result, job.limit, args.memory_limit_gb)
            if job.result.get("stderr"):
                progress(job.result["stderr"])
            if job.method == "scenario" and job.result.get("status") != "ok":
                unfinished.setdefault((job.case, job.solver), (job.scenarios, job.row["status"]))
            if job.result.get("status") == "ok":
                peak = job.result["peak_mb"]
                progress(f"{label}: {job.result['seconds_total']:.3f} s "
                         f"(capacity {job.result['seconds_capacity']:.3f} s), peak {peak:.0f} MB, "
                         f"fastest of {job.result['runs']}")
            else:
                progress(f"{label}: {job.row['status']} (process ran {job.result['seconds_wall']:.1f} s)")
        write_outputs(jobs, args, started, finished=False)
    args.code_at_end = code_state()
    text = write_outputs(jobs, args, started, finished=True)
    print(text)
    print(f"Wrote {args.out / MD_NAME} and {args.out / CSV_NAME} ({sum(1 for j in jobs if j.row)} rows) "
          f"in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
