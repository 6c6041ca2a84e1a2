"""What a data-center aggregator schedules over a day (docs/models/dlmp.md#eq-d-19 to
docs/models/dlmp.md#eq-d-21), as data: how each site's power follows the work it runs, the
interactive work of each hour, and batch jobs with a release and a deadline.

Work is counted in whole steps of ``work_step`` units (requests per second, GPU-hours, whatever
the servers' ``capacity`` counts), so that the aggregator's decisions stay a finite set: the
bilevel problem expands them in binary, and the tests enumerate them.

- A site's servers (D-19): N servers, each drawing P_idle at rest and P_peak at full use, run u =
  W / (N mu) of their capacity; the facility draws PUE times that:
  PDC = PUE (N P_idle + (P_peak - P_idle) W / mu), kW, three-phase. Every server stays on, so
  the idle part is drawn every hour.
- Interactive work (D-20): W_tot,t steps in hour t, split across the sites in that hour.
- Batch jobs (D-21): E_j steps in all, run in the hours release_j ... deadline_j, on any sites.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from grid.errors import GridError

_TOLERANCE = 1e-9
# The most servers one site may list, and the most steps a site may run in an hour: the MILP
# expands each site's steps in binary, so a bound keeps its size known.
MAX_SERVERS = 1_000_000
MAX_SITE_STEPS = 10_000


@dataclass(frozen=True)
class SiteLoad:
    """How a site's three-phase load follows its work: ``idle_kw`` + ``step_kw`` x steps, with
    steps in [low, high] every hour."""

    idle_kw: float
    step_kw: float
    low: int
    high: int

    def __post_init__(self) -> None:
        if not (self.idle_kw >= 0 and self.step_kw >= 0 and 0 <= self.low <= self.high <= MAX_SITE_STEPS):
            raise GridError(f"site load: need idle_kw >= 0, step_kw >= 0 and 0 <= low <= high <= {MAX_SITE_STEPS} "
                            f"steps, got {self.idle_kw:g} kW, {self.step_kw:g} kW, {self.low} and {self.high}")

    def kw(self, steps: int) -> float:
        return self.idle_kw + self.step_kw * steps


@dataclass(frozen=True)
class Servers:
    """A site's servers (D-19): ``count`` servers of ``idle_kw`` and ``peak_kw`` each, ``capacity``
    work units each at full use, in a facility of power usage effectiveness ``pue``."""

    count: int
    idle_kw: float
    peak_kw: float
    capacity: float
    pue: float = 1.3

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SERVERS:
            raise GridError(f"servers: count must be 1 to {MAX_SERVERS:,}, got {self.count}")
        if not 0 <= self.idle_kw <= self.peak_kw or self.peak_kw <= 0:
            raise GridError(f"servers: need 0 <= idle_kw <= peak_kw and peak_kw > 0, got {self.idle_kw:g} and "
                            f"{self.peak_kw:g} kW")
        if not self.capacity > 0 or not 1.0 <= self.pue <= 3.0:
            raise GridError(f"servers: need capacity > 0 and pue in [1, 3], got {self.capacity:g} and {self.pue:g}")

    def load(self, work_step: float) -> SiteLoad:
        """The site's load per work step (D-19): idle PUE N P_idle, PUE (P_peak - P_idle) / mu per
        unit of work, and at most N mu / work_step whole steps."""
        high = math.floor(self.count * self.capacity / work_step + _TOLERANCE)
        if high > MAX_SITE_STEPS:
            raise GridError(f"servers: {high:,} steps of {work_step:g} fit this site, above the {MAX_SITE_STEPS:,} an "
                            "hour may hold; take a larger work_step")
        return SiteLoad(self.pue * self.count * self.idle_kw,
                        self.pue * (self.peak_kw - self.idle_kw) * work_step / self.capacity, 0, high)


@dataclass(frozen=True)
class Battery:
    """A site's battery (docs/models/dlmp.md#eq-d-28): it charges or discharges up to ``kw`` (at
    the site's connection, power factor 1), holds up to ``kwh``, loses ``1 - efficiency`` of what
    goes round (half of it each way), and ends the day at the charge it began with,
    ``start_share`` of ``kwh``."""

    kw: float
    kwh: float
    efficiency: float = 0.9
    start_share: float = 0.5

    def __post_init__(self) -> None:
        if not (0 < self.kw <= 1e6 and 0 < self.kwh <= 1e7):
            raise GridError(f"battery: need 0 < kw <= 1e6 and 0 < kwh <= 1e7, got {self.kw:g} kW and {self.kwh:g} kWh")
        if not (0 < self.efficiency <= 1 and 0 <= self.start_share <= 1):
            raise GridError(f"battery: need efficiency in (0, 1] and start_share in [0, 1], got {self.efficiency:g} "
                            f"and {self.start_share:g}")

    @property
    def one_way(self) -> float:
        """The efficiency of charging, and of discharging: the round trip's square root."""
        return math.sqrt(self.efficiency)


@dataclass(frozen=True)
class BatchJob:
    """E_j ``steps`` of work to run in periods ``release`` ... ``deadline`` (inclusive, 0 first)."""

    name: str
    steps: int
    release: int
    deadline: int

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise GridError(f"batch job {self.name}: steps must be >= 0, got {self.steps}")
        if not 0 <= self.release <= self.deadline:
            raise GridError(f"batch job {self.name}: its deadline (hour {self.deadline}) comes before its release "
                            f"(hour {self.release}); give release <= deadline")


@dataclass(frozen=True)
class WorkPlan:
    """The work of the day: ``interactive`` steps per period (D-20) and the batch ``jobs`` (D-21)."""

    interactive: tuple[int, ...]
    jobs: tuple[BatchJob, ...] = ()

    @property
    def periods(self) -> int:
        return len(self.interactive)

    def check(self, loads: Sequence[SiteLoad]) -> None:
        """Refuse work the sites cannot run: an hour whose interactive work exceeds every site's
        room, a job past the last period, or batch work that does not fit its window beside the
        interactive work (a necessary condition, checked per job and for every job together)."""
        room = sum(load.high for load in loads)
        for t, steps in enumerate(self.interactive):
            if not 0 <= steps <= room:
                raise GridError(f"interactive work in hour {t}: {steps} steps, but the sites run 0 to {room}")
        spare = [room - steps for steps in self.interactive]
        for job in self.jobs:
            if job.deadline >= self.periods:
                raise GridError(f"batch job {job.name}: deadline hour {job.deadline} is past the last hour "
                                f"({self.periods - 1})")
            window = sum(spare[job.release:job.deadline + 1])
            if job.steps > window:
                raise GridError(f"batch job {job.name}: {job.steps} steps do not fit hours {job.release} to "
                                f"{job.deadline} ({window} steps spare beside the interactive work)")
        if sum(job.steps for job in self.jobs) > sum(spare):
            raise GridError("batch jobs: together they need more steps than the day has spare")


def split_pro_rata(steps: int, loads: Sequence[SiteLoad]) -> list[int]:
    """``steps`` over the sites in proportion to their room (``high``), in whole steps: the
    largest remainders first, then site order. No site gets more than its room."""
    room = sum(load.high for load in loads)
    shares = [steps * load.high / room if room else 0.0 for load in loads]
    taken = [math.floor(x + _TOLERANCE) for x in shares]
    order = sorted(range(len(loads)), key=lambda i: (-(shares[i] - taken[i]), i))
    for i in order[: steps - sum(taken)]:
        taken[i] += 1
    return taken


def uncoordinated(plan: WorkPlan, loads: Sequence[SiteLoad]) -> tuple[list[list[int]], dict[str, tuple[int, ...]]]:
    """The baseline without coordination: every batch job runs as soon as it is released, as
    much as the sites have spare beside the interactive work and the jobs before it (in the
    plan's order), and each hour's work is split pro rata. Returns the steps per hour and site,
    and each job's steps per hour."""
    room = sum(load.high for load in loads)
    spare = [room - steps for steps in plan.interactive]
    placed: dict[str, tuple[int, ...]] = {}
    for job in plan.jobs:
        left, runs = job.steps, [0] * plan.periods
        for t in range(job.release, job.deadline + 1):
            runs[t] = min(left, spare[t])
            spare[t] -= runs[t]
            left -= runs[t]
        if left:
            raise GridError(f"batch job {job.name}: run as soon as released, {left} of its steps miss hour "
                            f"{job.deadline}; the baseline cannot schedule it")
        placed[job.name] = tuple(runs)
    totals = [plan.interactive[t] + sum(runs[t] for runs in placed.values()) for t in range(plan.periods)]
    return [split_pro_rata(total, loads) for total in totals], placed
