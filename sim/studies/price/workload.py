"""A price study's day with ``[price.workload]`` (docs/models/dlmp.md#dlmp-8): the aggregator
schedules its servers' work over the hours instead of placing a given load in each.

Four schedules of the same work, each priced hour by hour by the DSO's OPF:

- ``pro-rata``: no coordination. Each batch job runs as soon as it is released, and each
  hour's work is split in proportion to the sites' room (grid/feeder/workloads.py).
- ``price-taking``: the cheapest day at prices held at the pro-rata day's DLMPs (D-22), as a
  scheduler that reads a price forecast plans it; it does not see its load move the prices.
- ``no-svg`` and ``svg``: the bilevel optimum over the day, one MILP (D-19 to D-21), without
  and with the SVGs.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np

from grid.errors import GridError, InfeasibleNetworkError, SolverError
from grid.feeder.bilevel import DataCenterSite, Decision, Hour, Workload, aggregator_schedule
from grid.feeder.inputs import DistributedGenerator, OpfSettings
from grid.feeder.periods import Period
from grid.feeder.price_taking import price_taking_schedule
from grid.feeder.upper_level import SvgSettings
from grid.feeder.workloads import BatchJob, Battery, SiteLoad, WorkPlan, uncoordinated
from grid.network.three_phase import ThreePhaseFeeder
from sim.config.price import CASE_TITLES, PriceConfig, WorkloadConfig
from sim.config.schema import ConfigError, ExperimentConfig
from sim.studies.price.periods import (
    CaseOutcome,
    HourCorrection,
    PeriodOutcome,
    case_outcome,
    hour_inputs,
    limits_text,
)

Progress = Callable[[str], None]
_TOLERANCE = 1e-9


def site_loads(work: WorkloadConfig, sites: Sequence[DataCenterSite]) -> dict[int, SiteLoad]:
    """Each site's load model (D-19) from its servers, its steps capped by the site's max_kw (the
    connection it holds, e.g. the MW its member won)."""
    by_bus = {}
    for i, servers in enumerate(work.servers):
        field = f"price.workload.servers[{i}]"
        if servers.bus in by_bus:
            raise ConfigError(f"{field}.bus: bus {servers.bus} is given twice; give each site's servers once")
        if servers.bus not in {s.bus for s in sites}:
            raise ConfigError(f"{field}.bus: no site at bus {servers.bus}; the sites are at "
                              f"{', '.join(str(s.bus) for s in sites)}")
        by_bus[servers.bus] = (field, servers)
    loads = {}
    for site in sites:
        if site.bus not in by_bus:
            raise ConfigError(f"price.workload.servers: the site at bus {site.bus} has no servers; list them")
        field, servers = by_bus[site.bus]
        try:
            load = servers.servers().load(work.work_step)
        except GridError as error:
            raise ConfigError(f"{field}: {error}") from None
        if load.idle_kw > site.max_kw + _TOLERANCE:
            raise ConfigError(f"{field}: the servers draw {load.idle_kw:g} kW at rest, above the site's max_kw "
                              f"{site.max_kw:g}; fewer servers or a larger site")
        fits = load.high if load.step_kw == 0 else math.floor((site.max_kw - load.idle_kw) / load.step_kw + _TOLERANCE)
        loads[site.bus] = SiteLoad(load.idle_kw, load.step_kw, 0, min(load.high, fits))
    return loads


def site_batteries(price: PriceConfig, sites: Sequence[DataCenterSite]) -> dict[int, Battery]:
    """Each site's battery (D-28), by bus: one line for one off the sites, twice at a bus, or with
    McCormick's linearization."""
    batteries: dict[int, Battery] = {}
    buses = {s.bus for s in sites}
    for i, entry in enumerate(price.workload.batteries if price.workload else ()):
        field = f"price.workload.batteries[{i}]"
        if entry.bus not in buses:
            raise ConfigError(f"{field}.bus: no site at bus {entry.bus}; the sites are at "
                              f"{', '.join(str(s.bus) for s in sites)}")
        if entry.bus in batteries:
            raise ConfigError(f"{field}.bus: bus {entry.bus} has a battery already; give each site one")
        batteries[entry.bus] = entry.battery()
    if batteries and price.linearization != "strong-duality":
        raise ConfigError('price.workload.batteries: a battery needs linearization = "strong-duality" (its power is '
                          "continuous; McCormick's rows are exact for binary decisions only)")
    return batteries


def work_plan(work: WorkloadConfig, loads: Sequence[SiteLoad]) -> WorkPlan:
    """The day's work in whole steps; one line naming the field for work the sites cannot run."""
    def steps(value: float, field: str) -> int:
        count = value / work.work_step
        if abs(count - round(count)) > _TOLERANCE * max(1.0, count):
            raise ConfigError(f"{field}: {value:g} is not a whole number of {work.work_step:g}-unit steps (work_step)")
        return round(count)

    interactive = tuple(steps(v, f"price.workload.interactive[{t}]") for t, v in enumerate(work.interactive))
    jobs = []
    for i, job in enumerate(work.jobs):
        try:
            jobs.append(BatchJob(job.name, steps(job.work, f"price.workload.jobs[{i}].work"), job.release,
                                 job.deadline))
        except GridError as error:
            raise ConfigError(f"price.workload.jobs[{i}]: {error}") from None
    plan = WorkPlan(interactive, tuple(jobs))
    try:
        plan.check(loads)
    except GridError as error:
        raise ConfigError(f"price.workload: {error}") from None
    return plan


def workload_day(config: ExperimentConfig, price: PriceConfig, feeder: ThreePhaseFeeder,
                 generators: tuple[DistributedGenerator, ...], settings: OpfSettings,
                 sites: tuple[DataCenterSite, ...], periods: Sequence[tuple[Period, Workload]],
                 progress: Progress, corrections: Mapping[int, HourCorrection] | None = None
                 ) -> tuple[list[PeriodOutcome], dict[str, object]]:
    """The four schedules, each hour priced by its OPF; and the day MILPs' outcomes by case.
    ``corrections``: the AC correction's, by hour index."""
    loads = site_loads(price.workload, sites)
    plan = work_plan(price.workload, [loads[s.bus] for s in sites])
    batteries = site_batteries(price, sites)
    table = periods[0][1]   # the SVG settings and their cost
    hours = [hour_inputs(feeder, generators, settings, period, (corrections or {}).get(t, HourCorrection()))
             for t, (period, _) in enumerate(periods)]

    def priced(t: int, decision: Decision, from_milp: bool = False, tie_break: str = "",
               milp_payment: float | None = None) -> CaseOutcome:
        return case_outcome(hours[t], decision, sites, config.solver, table, from_milp=from_milp, tie_break=tie_break,
                            milp_payment=milp_payment)

    steps, _ = uncoordinated(plan, [loads[s.bus] for s in sites])
    schedules: dict[str, list[CaseOutcome]] = {"pro-rata": [
        priced(t, Decision({s.bus: loads[s.bus].kw(n) for s, n in zip(sites, split)}))
        for t, split in enumerate(steps)]}
    progress(f"price-taking schedule at the pro-rata day's DLMPs, {plan.periods} hours")
    held_p, held_q = _held_prices(schedules["pro-rata"], hours, sites)
    decisions, _, solved = price_taking_schedule(held_p, held_q, sites, loads, plan, solver=config.solver,
                                                 time_limit=price.time_limit_s, batteries=batteries)
    schedules["price-taking"] = [priced(t, d) for t, d in enumerate(decisions)]
    day_solves: dict[str, object] = {"price-taking": solved}
    for case, svg in (("no-svg", False), ("svg", True)):
        progress(f"bilevel problem over {plan.periods} hours, {CASE_TITLES[case]}")
        try:
            day = aggregator_schedule(hours, sites, loads, plan, SvgSettings(table.svg_step_kvar,
                                      table.svg_cost_per_mvarh), svg=svg, price_bound=price.price_bound,
                                      linearization=price.linearization, voltage_ranges=price.voltage_ranges,
                                      solver=config.solver, batteries=batteries,
                                      time_limit=price.time_limit_s, what=f"the day's bilevel problem ({case})")
        except SolverError as error:
            if "infeasible" not in str(error):
                raise
            raise InfeasibleNetworkError(
                f"price.workload: no schedule of the work keeps {limits_text(settings)} in every hour "
                f"({CASE_TITLES[case]}); move work, raise head_voltage_pu or add generators") from None
        done = day.solve
        progress(f"  {done.status} in {done.seconds:.1f} s, payment {day.payment:,.3f} $ (MILP: {done.columns:,} "
                 f"columns, {done.binaries:,} binary; {done.rows:,} rows)")
        ends = day.tie_break or ("",) * len(day.decisions)   # none: the rule did not run in stages
        schedules[case] = [priced(t, d, from_milp=True, tie_break=end, milp_payment=paid)
                           for t, (d, end, paid) in enumerate(zip(day.decisions, ends, day.payments_per_h))]
        if any(outcome.opf is None for outcome in schedules[case]):
            raise GridError(f"price: the OPF is infeasible in some hour of the {case} day the bilevel problem chose")
        day_solves[case] = done
    outcomes = []
    for t, (period, workload) in enumerate(periods):
        outcomes.append(PeriodOutcome(period, workload, hours[t], {case: schedules[case][t] for case in schedules}))
    return outcomes, day_solves


def _held_prices(baseline: Sequence[CaseOutcome], hours: Sequence[Hour], sites: Sequence[DataCenterSite]
                 ) -> tuple[list[dict[int, np.ndarray]], list[dict[int, np.ndarray]]]:
    """Per hour, each site's DLMPs (P and Q) of the uncoordinated day; in an hour whose OPF has no
    feasible dispatch at that schedule, the substation's price (and no reactive price)."""
    held_p, held_q = [], []
    for outcome, hour in zip(baseline, hours):
        if outcome.opf is None:
            held_p.append({s.bus: np.full(3, hour.settings.substation_price_per_mwh) for s in sites})
            held_q.append({s.bus: np.zeros(3) for s in sites})
        else:
            held_p.append({s.bus: outcome.opf.dlmp_p[s.bus] for s in sites})
            held_q.append({s.bus: outcome.opf.dlmp_q[s.bus] for s in sites})
    return held_p, held_q
