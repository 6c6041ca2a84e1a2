"""The memory guard: refuse a scenario count whose matrices would not fit, before any work.

A study holds the S x n sample matrix and meets the S x L background line flows; with 10**6
scenarios of a 2,000-bus case that is 42 GB. Sampling would start, swap and run silently for
minutes, so the count is checked against the memory available first, with the estimate.
"""

from __future__ import annotations

import numbers
import os

from grid.errors import GridError
from grid.network.network import Network


def check_count(count: object) -> int:
    """A scenario count must be a whole number >= 1 (bools are not counts)."""
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
        raise GridError(f"scenario count must be an integer >= 1, got {count!r}")
    return int(count)


# Share of the available memory one scenario set may take: the LPs, the solver and the rest of
# the process need the remainder.
MEMORY_SHARE = 0.6


def scenario_memory_bytes(n_buses: int, n_lines: int, count: int) -> int:
    """Bytes that ``count`` scenarios occupy: 8 * count * (n_buses + n_lines).

    The S x n sample matrix and the S x L background line flows it induces (float64, 8 bytes
    each) are the two arrays that grow with S; everything else a study holds is per bus or per
    line. For case_ACTIVSg2000 (2,000 buses, 3,206 lines) that is about 42 kB per scenario.
    """
    for name, value in (("n_buses", n_buses), ("n_lines", n_lines), ("count", count)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise GridError(f"scenario_memory_bytes: {name} must be an integer >= 0, got {value!r}")
    return 8 * int(count) * (int(n_buses) + int(n_lines))


def _available_memory_bytes() -> int | None:
    """Memory this process may still use: MemAvailable, capped by a cgroup limit when one is set.

    None when the machine does not say (then no guard applies).
    """
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    # A container's limit is invisible in /proc/meminfo; cgroup v2, then v1.
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            with open(limit_file, encoding="ascii") as handle:
                limit_text = handle.read().strip()
            with open(usage_file, encoding="ascii") as handle:
                usage = int(handle.read().strip())
        except (OSError, ValueError):
            continue
        if limit_text.isdigit():
            available = min(available, max(int(limit_text) - usage, 0))
        break
    return available


def _format_bytes(value: float) -> str:
    """Two significant digits in decimal units (GB = 10^9 bytes): 416e9 -> '420 GB'."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{float(f'{value / size:.2g}'):g} {unit}"
    return f"{int(value)} bytes"


def check_scenario_memory(network: Network, count: int, available_bytes: int | None = None) -> int:
    """Refuse a scenario count whose samples and line flows would exhaust memory; call before drawing.

    Raises a one-line GridError when ``scenario_memory_bytes`` exceeds ``MEMORY_SHARE`` (60 %) of
    ``available_bytes`` (default: this machine's available memory, see above; no check when it
    cannot be read). Returns the estimate in bytes. Failing here takes milliseconds; running out
    of memory later takes the machine's swap, or the process, with it.
    """
    count = check_count(count)
    need = scenario_memory_bytes(len(network.buses), len(network.lines), count)
    if available_bytes is None:
        available_bytes = _available_memory_bytes()
        if available_bytes is None:
            return need
    elif isinstance(available_bytes, bool) or not isinstance(available_bytes, numbers.Integral) or available_bytes < 0:
        raise GridError(f"available_bytes must be an integer >= 0 or None, got {available_bytes!r}")
    if need > MEMORY_SHARE * available_bytes:
        per_scenario = scenario_memory_bytes(len(network.buses), len(network.lines), 1)
        most = int(MEMORY_SHARE * available_bytes) // per_scenario
        advice = (
            f"use at most {most:,} scenarios" if most >= 1
            else f"one scenario needs {_format_bytes(per_scenario)}; free memory or use a larger machine"
        )
        raise GridError(
            f"{count:,} scenarios on {network.name!r} need about {_format_bytes(need)} (samples and line flows); "
            f"this machine has {_format_bytes(available_bytes)} available; {advice}"
        )
    return need


def _over_share(need: int, count: int, available_bytes: int | None) -> tuple[int, int] | None:
    """(available bytes, the most of ``count`` that fits) when ``need`` is above the usable share of
    memory; None when it fits or the machine does not say what it has."""
    if available_bytes is None:
        available_bytes = _available_memory_bytes()
        if available_bytes is None:
            return None
    if need <= MEMORY_SHARE * available_bytes:
        return None
    return available_bytes, int(MEMORY_SHARE * available_bytes) // max(1, need // max(1, count))


# Bytes per (limit, scenario) pair of the scenario LP (17), measured as peak resident memory over
# the imported libraries (experiments/bench_capacity.py, ieee57 and ieee118): about 2.1 kB with
# HiGHS (the program, its HiGHS copies and the feasibility check) and 3.7 kB with GLPK through
# Pyomo (glpsol's own memory comes on top); rounded up.
SCENARIO_LP_BYTES = {"highs": 2_500, "glpk": 5_000}


def check_scenario_lp_memory(network: Network, rows: int, count: int, solver: str,
                             available_bytes: int | None = None) -> int:
    """Refuse the scenario formulation when (17) for ``rows`` limits and ``count`` scenarios
    would not fit; the exact formulation gives the same capacities in a fraction of it."""
    need = SCENARIO_LP_BYTES.get(solver, max(SCENARIO_LP_BYTES.values())) * int(rows) * int(count)
    over = _over_share(need, count, available_bytes)
    if over is not None:
        available_bytes, most = over
        raise GridError(
            f"formulation 'scenario' on {network.name!r} with {rows:,} limits x {count:,} scenarios needs about "
            f"{_format_bytes(need)} (the LP (17) has a row and a column per limit and scenario); this machine "
            f"has {_format_bytes(available_bytes)} available; use formulation = 'exact' (the same capacities) "
            f"or at most {most:,} scenarios"
        )
    return need


# Peak bytes per entry of the capacity study's dense shift-factor work: the rows of H kept for the
# scenario pass (lines x buses) and the LP's coefficient rows (two per line, one entry per
# candidate bus), with their copies while they are built. Measured as peak resident memory:
# case_ACTIVSg10k (12,706 lines, 10,000 buses, 4,170 candidates, 200 scenarios) took 7.0 GB,
# 28 bytes per entry of lines x (buses + 2 x candidates); rounded up.
SHIFT_FACTOR_BYTES = 32


def shift_factor_memory_bytes(n_lines: int, n_buses: int, n_candidates: int) -> int:
    """Peak bytes of a capacity study's dense shift-factor rows: 32 * L * (n + 2m)."""
    return SHIFT_FACTOR_BYTES * int(n_lines) * (int(n_buses) + 2 * int(n_candidates))


def shift_factor_rows_fit(network: Network, n_candidates: int, available_bytes: int | None = None) -> bool:
    """Whether a capacity study's dense shift-factor rows fit (check_shift_factor_memory would
    pass): what chooses the screened-lines study for ``lines = "auto"``."""
    need = shift_factor_memory_bytes(len(network.lines), len(network.buses), n_candidates)
    return _over_share(need, 1, available_bytes) is None


def check_shift_factor_memory(network: Network, n_candidates: int, available_bytes: int | None = None) -> int:
    """Refuse a capacity study whose dense shift-factor rows would not fit, before the first of them.

    A 70,000-bus case needs hundreds of GB in this form: the study would fill the machine for
    minutes and die. The message says how many candidate buses fit, or that none do.
    """
    n_lines, n_buses = len(network.lines), len(network.buses)
    need = shift_factor_memory_bytes(n_lines, n_buses, n_candidates)
    over = _over_share(need, 1, available_bytes)
    if over is None:
        return need
    available_bytes = over[0]
    usable = int(MEMORY_SHARE * available_bytes) // SHIFT_FACTOR_BYTES
    most = (usable - n_lines * n_buses) // max(1, 2 * n_lines)
    advice = (f"name at most {most:,} candidate buses ([network] candidate_buses)" if most >= 1 else
              f"the shift factors alone ({n_lines:,} lines x {n_buses:,} buses) do not fit, whatever the candidates; "
              "use a smaller case, a machine with more memory, or the screened-lines study ([products] lines = "
              '"auto" or "screened", docs/models/capacity.md#screened-lines)')
    raise GridError(
        f"capacity study on {network.name!r}: {n_lines:,} lines x ({n_buses:,} buses + 2 x {n_candidates:,} candidate "
        f"buses) of dense shift factors need about {_format_bytes(need)}; this machine has "
        f"{_format_bytes(available_bytes)} available; {advice}"
    )


# The flexible-capacity MILP (grid/plan/milp.py) per minute of a site's event: about 4 kB in Pyomo
# (measured: 300 scenarios of the default study, 83,000 variables and 139,000 constraints, took
# 99 MB for 24,000 event minutes), doubled for the solver's copy of it.
PLAN_MILP_BYTES_PER_STEP = 8_000


def check_plan_memory(event_steps: int, scenarios: int, available_bytes: int | None = None) -> int:
    """Refuse a plan MILP (or Stage II batch) that would not fit, before it is built."""
    need = PLAN_MILP_BYTES_PER_STEP * int(event_steps)
    over = _over_share(need, scenarios, available_bytes)
    if over is not None:
        available_bytes, most = over
        raise GridError(
            f"plan.scenarios: {scenarios:,} shock scenarios ({event_steps:,} site-minutes of events) need about "
            f"{_format_bytes(need)} for the MILP; this machine has {_format_bytes(available_bytes)} available; "
            f"use at most {most:,} scenarios"
        )
    return need
