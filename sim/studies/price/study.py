"""`dcmarket price`: DLMP coordination of a data-center aggregator with the DSO on IEEE 37.

One study, two entry points: `dcmarket price CONFIG` reads the sites from ``[price] sites``; a
run whose config has a ``[price]`` table hands the aggregator the sites its members won
(agents/aggregator.py) and writes the same files under ``price/`` in its run directory.

What it computes (docs/models/dlmp.md#dlmp-4 to docs/models/dlmp.md#dlmp-6), three ways of placing the
same load:
- ``pro-rata``: no coordination, each site takes the load in proportion to its size, no SVG;
  the DSO's OPF prices it (the baseline; it may break a voltage limit, which is reported);
- ``no-svg`` (case 1 of docs/models/dlmp.md#eq-d-11): the aggregator's bilevel optimum, without reactive support;
- ``svg`` (Case 2): the same with its SVGs as decisions.
For each, the DSO's OPF at that decision gives the voltages, the DLMPs and its dispatch; the
aggregator's payment is its objective (docs/models/dlmp.md#eq-d-10) at those prices.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from agents.aggregator import Aggregator, MemberSite
from grid.errors import GridError, InfeasibleNetworkError, SolverError
from grid.feeder.bilevel import (
    TIE_BREAK_NODES,
    DataCenterSite,
    Decision,
    Hour,
    Workload,
    aggregator_bilevel,
    aggregator_payment,
    load_range,
)
from grid.feeder.inputs import DistributedGenerator, OpfSettings, node_values
from grid.feeder.opf import OpfResult
from grid.feeder.periods import Period
from grid.network.three_phase import (
    FEEDERS,
    PHASE_NAMES,
    ThreePhaseFeeder,
    distance_km,
    load_feeder,
    voltage_unbalance,
    with_line_rating,
)
from grid.solvers.names import check_solver
from sim.config.price import CASE_TITLES, PriceConfig
from sim.config.schema import ConfigError, ExperimentConfig
from sim.errors import named_after
from sim.execution.ordered_pool import OrderedPool
from sim.output import files as outputs
from sim.studies.after_auction import AfterAuction, Market
from sim.studies.command import study_command
from sim.studies.price.ac import (
    AC_COLUMNS,
    CUT_COLUMNS,
    FLOOR_COLUMNS,
    AcCheck,
    AcCorrection,
    ac_checks,
    ac_entry,
    ac_rows,
    at_node,
    count_overloads,
    count_violations,
    next_correction,
)
from sim.studies.price.periods import (
    CaseOutcome,
    HourCorrection,
    PeriodOutcome,
    case_outcome,
    hour_inputs,
    limits_text,
    price_periods,
)
from sim.studies.price.workload import workload_day
from sim.studies.result import StudyResult

Progress = Callable[[str], None]

VOLTAGE_COLUMNS = ("period", "case", "bus", "distance_km", "phase", "voltage_pu")
DLMP_COLUMNS = ("period", "case", "bus", "phase", "dlmp_usd_per_mwh", "energy_usd_per_mwh", "loss_usd_per_mwh",
                "congestion_usd_per_mwh", "voltage_usd_per_mwh", "reactive_usd_per_mvarh")
SITE_COLUMNS = ("period", "case", "bus", "member", "load_kw", "svg_a_kvar", "svg_b_kvar", "svg_c_kvar", "voltage_a_pu",
                "voltage_b_pu", "voltage_c_pu", "unbalance_pct", "dlmp_a_usd_per_mwh", "dlmp_b_usd_per_mwh",
                "dlmp_c_usd_per_mwh", "payment_usd_per_h")


def feeder_inputs(price: PriceConfig) -> tuple[ThreePhaseFeeder, tuple[DistributedGenerator, ...], OpfSettings]:
    feeder = load_feeder(price.feeder)
    if price.line_rating_a is not None:
        feeder = with_line_rating(feeder, price.line_rating_a)
    settings = price.opf_settings()
    generators = []
    for i, g in enumerate(price.generators):
        if g.bus not in feeder.buses or g.bus == feeder.head_bus:
            raise ConfigError(f"price.generators[{i}].bus: bus {g.bus} is not a load bus of {feeder.name}; "
                              f"use one of {_bus_list(feeder)}")
        generators.append(g.generator())
    if len({g.name for g in generators}) != len(generators):
        raise ConfigError("price.generators: two generators share a name; give each its own")
    return feeder, tuple(generators), settings


def price_sites(price: PriceConfig, feeder: ThreePhaseFeeder,
                won: Sequence[MemberSite] | None = None) -> tuple[tuple[DataCenterSite, ...], str]:
    """The sites and the field they came from: the auction's (``won``), else ``[price] sites``."""
    if won is not None:
        sites, where = [(s.bus, s.capacity_mw * 1e3, 0.0, s.member, None, None) for s in won], "the auction"
    elif price.sites:
        sites = [(s.bus, s.max_kw, s.min_kw, s.member, s.power_factor, s.svg_kvar) for s in price.sites]
        where = "price.sites"
    else:
        raise ConfigError("price.sites: no sites; list [[price.sites]] (bus, max_kw), or run the study after an "
                          "auction with an aggregator (dcmarket run)")
    out = []
    for i, (bus, max_kw, min_kw, member, pf, svg) in enumerate(sites):
        field = f"{where}[{i}]" if won is None else f"site at bus {bus} ({where})"
        if bus not in feeder.buses or bus == feeder.head_bus:
            raise ConfigError(f"{field}.bus: bus {bus} is not a load bus of {feeder.name}; use one of {_bus_list(feeder)}")
        if not feeder.is_three_phase(bus):
            phases = "".join(PHASE_NAMES[k] for k in feeder.bus_phases[bus])
            raise ConfigError(f"{field}.bus: bus {bus} of {feeder.name} has phase(s) {phases} only; a data-center site "
                              f"takes all three: use a three-phase bus, e.g. {_bus_list(feeder, three_phase=True)}")
        try:
            out.append(DataCenterSite(bus, max_kw, min_kw, price.power_factor if pf is None else pf,
                                      price.svg_kvar if svg is None else svg, member or f"bus {bus}"))
        except GridError as error:
            raise ConfigError(f"{field}: {error}") from None
    if len({s.bus for s in out}) != len(out):
        raise ConfigError(f"{where}: two sites at one bus; give each bus once")
    return tuple(out), where


def price_workload(price: PriceConfig, sites: Sequence[DataCenterSite]) -> Workload:
    """``total_kw``, or ``utilization`` of what the sites can take, in whole steps."""
    step = price.step_kw
    if price.total_kw is None:
        most = round(load_range(sites, step)[1] / step)
        total = math.floor(price.utilization * most + 1e-9) * step
    else:
        total = price.total_kw
    try:
        return Workload(total, step, price.svg_step_kvar, price.svg_cost_per_mvarh)
    except GridError as error:
        raise ConfigError(f"price.{error}") from None


def check_before_auction(config: ExperimentConfig) -> None:
    """What a run can check of ``[price]`` before its auction: the feeder's inputs, explicit
    sites, and that sites from the auction will be buses of the feeder."""
    price: PriceConfig = config.price
    feeder, _, _ = feeder_inputs(price)
    if price.sites is not None:
        price_sites(price, feeder)
    elif config.network is not None and config.network.case != price.feeder:
        raise ConfigError(f"price: the sites would come from the auction on {config.network.case!r}, but the price "
                          f"study runs on {price.feeder!r}; set [network] case = {price.feeder!r} or list "
                          "[[price.sites]]")


def pro_rata(sites: Sequence[DataCenterSite], workload: Workload) -> Decision:
    """Load in proportion to each site's size, in whole steps (largest remainders first, then bus order)."""
    steps = round(workload.total_kw / workload.step_kw)
    capacity = sum(s.max_kw for s in sites)
    shares = [steps * s.max_kw / capacity for s in sites]
    taken = [math.floor(x + 1e-9) for x in shares]
    order = sorted(range(len(sites)), key=lambda i: (-(shares[i] - taken[i]), sites[i].bus))
    for i in order[: steps - sum(taken)]:
        taken[i] += 1
    return Decision({s.bus: n * workload.step_kw for s, n in zip(sites, taken)})


def run_price_study(config: ExperimentConfig, *, won: Sequence[MemberSite] | None = None, plots: bool = True,
                    progress: Progress = lambda _: None, workers: int = 1) -> StudyResult:
    """The whole study; ``won`` (the sites an auction's aggregator won) replace ``[price] sites``;
    ``plots=False`` leaves out the figures. With ``[price.day]`` it runs hour by hour
    (docs/models/dlmp.md#eq-d-18), else one snapshot at the spot loads; ``workers`` processes
    solve the hours of a day without workloads side by side (the same files as one)."""
    with OrderedPool(workers, __name__) as pool:
        return _price_study(config, won, plots, progress, pool)


def _price_study(config: ExperimentConfig, won: Sequence[MemberSite] | None, plots: bool, progress: Progress,
                 pool: OrderedPool) -> StudyResult:
    price: PriceConfig | None = config.price
    if price is None:
        raise ConfigError("price: missing [price]; dcmarket price needs a [price] table (docs/studies/price.md; "
                          "example: experiments/ieee37_price.toml)")
    check_solver(config.solver)
    feeder, generators, settings = feeder_inputs(price)
    sites, sites_from = price_sites(price, feeder, won)
    periods = price_periods(price, feeder, generators, settings, sites, price_workload(price, sites))
    first = periods[0][1]
    what = (f"{first.total_kw:g} kW" if len(periods) == 1 else
            f"the servers' work over {len(periods)} hours" if price.workload is not None else
            f"{sum(w.total_kw for _, w in periods) / 1e3:g} MWh over {len(periods)} hours")
    progress(f"{what} over {len(sites)} sites on {feeder.name} (head {settings.head_voltage_pu:g} p.u., "
             f"floor {settings.v_min_pu:g} p.u.)")
    hours, day_solves = _solve_periods(config, price, feeder, generators, settings, sites, periods, {}, progress,
                                       pool)
    checks: dict[tuple[int, str], AcCheck] = {}
    correction = None
    if price.ac_check:
        hours, day_solves, checks, correction = _ac_corrected(config, price, feeder, generators, settings, sites,
                                                              periods, hours, day_solves, progress, pool)
    summary = _summary(config, price, feeder, generators, sites, sites_from, hours, day_solves, checks)
    if correction is not None:
        summary["ac_correction"] = correction.summary(hours)
    files = _files(feeder, sites, hours, summary, plots, checks)
    if correction is not None and any(c.floors for c in correction.raised.values()):
        files["ac_floors.csv"] = outputs.csv_bytes(FLOOR_COLUMNS, correction.rows(hours))
    if correction is not None and any(c.cuts for c in correction.raised.values()):
        files["ac_line_cuts.csv"] = outputs.csv_bytes(CUT_COLUMNS, correction.cut_rows(hours))
    return StudyResult(summary, files, price_report(summary))


def _ac_corrected(config: ExperimentConfig, price: PriceConfig, feeder: ThreePhaseFeeder,
                  generators: tuple[DistributedGenerator, ...], settings: OpfSettings,
                  sites: tuple[DataCenterSite, ...], periods: Sequence[tuple[Period, Workload]],
                  hours: list[PeriodOutcome], day_solves: dict[str, Any], progress: Progress, pool: OrderedPool
                  ) -> tuple[list[PeriodOutcome], dict[str, Any], dict[tuple[int, str], AcCheck], AcCorrection]:
    """The AC check of the solved study and, with ``ac_correct``, its correction round by round
    (docs/models/dlmp.md#eq-d-25): the study as it ends, its checks and the rounds' record. A round
    whose corrected model has no feasible placement stops the correction at the round before."""
    checks = ac_checks(sites, hours, settings, progress)
    correction = AcCorrection(broken=(count_violations(checks, settings),), overloaded=(count_overloads(checks),),
                              payments=(_day_payments(hours),), lines=settings.line_limits)
    corrections: dict[int, HourCorrection] = {}
    while price.ac_correct and not correction.clear and len(correction.broken) <= price.ac_rounds:
        corrections = next_correction(corrections, checks, feeder, settings)
        floors = sum(len(c.floors) for c in corrections.values())
        cuts = sum(len(c.cuts) for c in corrections.values())
        progress(f"AC correction, round {len(correction.broken)}: floors raised at {floors} bus-phase-hours, "
                 f"line bounds cut at {cuts} segment-phase-hours; solving again")
        try:
            hours, day_solves = _solve_periods(config, price, feeder, generators, settings, sites, periods,
                                               corrections, progress, pool)
        except InfeasibleNetworkError as error:
            return hours, day_solves, checks, dataclasses.replace(correction, stopped=str(error))
        checks = ac_checks(sites, hours, settings, progress)
        correction = dataclasses.replace(correction, broken=correction.broken + (count_violations(checks, settings),),
                                         overloaded=correction.overloaded + (count_overloads(checks),),
                                         payments=correction.payments + (_day_payments(hours),), raised=corrections)
    return hours, day_solves, checks, correction


def _day_payments(hours: Sequence[PeriodOutcome]) -> dict[str, float | None]:
    """Each case's payment over the periods ($), None when some period has no feasible dispatch."""
    return {case: None if any(h.cases[case].opf is None for h in hours)
            else round(sum(h.cases[case].payment_per_h for h in hours), 6) for case in hours[0].cases}


def _solve_periods(config: ExperimentConfig, price: PriceConfig, feeder: ThreePhaseFeeder,
                   generators: tuple[DistributedGenerator, ...], settings: OpfSettings,
                   sites: tuple[DataCenterSite, ...], periods: Sequence[tuple[Period, Workload]],
                   corrections: Mapping[int, HourCorrection], progress: Progress,
                   pool: OrderedPool) -> tuple[list[PeriodOutcome], dict[str, Any]]:
    """Every case in every period, with the AC correction's of each hour (``corrections``, by hour
    index; none at first); and the day MILPs' outcomes of a workload day. The periods of
    a day without workloads are independent: with several workers they go to the pool, and each
    one's progress lines are printed when it is done, in the day's order."""
    if price.workload is not None:
        return workload_day(config, price, feeder, generators, settings, sites, periods, progress, corrections)
    tasks, headers = [], []
    for t, (period, workload) in enumerate(periods):
        hour = hour_inputs(feeder, generators, settings, period, corrections.get(t, HourCorrection()))
        tasks.append((config, price, hour, sites, workload, "" if len(periods) == 1 else f" at {period.label}"))
        headers.append(f"hour {period.label}: {workload.total_kw:g} kW, substation "
                       f"{period.substation_price_per_mwh:g} $/MWh" if len(periods) > 1 else "")
    if pool.workers == 1 or len(tasks) == 1:
        solved = []
        for header, task in zip(headers, tasks):
            if header:
                progress(header)
            solved.append(_cases(*task, progress))
    else:
        progress(f"{len(tasks)} hours on {min(pool.workers, len(tasks))} worker processes")
        solved = []
        for header, (cases, lines) in zip(headers, pool.map(_cases_apart, tasks, "the hours of the day")):
            for line in (header, *lines):
                progress(line)
            solved.append(cases)
    hours = [PeriodOutcome(period, workload, task[2], cases, workload.total_kw)
             for (period, workload), task, cases in zip(periods, tasks, solved)]
    return hours, {}


def _cases_apart(config: ExperimentConfig, price: PriceConfig, hour: Hour, sites: tuple[DataCenterSite, ...],
                 workload: Workload, when: str) -> tuple[dict[str, CaseOutcome], list[str]]:
    """``_cases`` in a worker process: its outcomes and the progress lines it would have printed."""
    lines: list[str] = []
    return _cases(config, price, hour, sites, workload, when, lines.append), lines


def _cases(config: ExperimentConfig, price: PriceConfig, hour: Hour, sites: tuple[DataCenterSite, ...],
           workload: Workload, when: str, progress: Progress) -> dict[str, CaseOutcome]:
    """The three placements of one period's load: pro rata, then the bilevel optimum without and
    with SVGs, each priced by the period's OPF (``hour``). ``when`` names the period in messages."""
    feeder, generators, settings = hour.feeder, hour.generators, hour.settings
    outcomes = {"pro-rata": case_outcome(hour, pro_rata(sites, workload), sites, config.solver, workload)}
    for case, svg in (("no-svg", False), ("svg", True)):
        progress(f"bilevel problem, {CASE_TITLES[case]}{when}")
        try:
            result = aggregator_bilevel(feeder, generators, settings, sites, workload, svg=svg,
                                        price_bound=price.price_bound, linearization=price.linearization,
                                        voltage_ranges=price.voltage_ranges,
                                        solver=config.solver, time_limit=price.time_limit_s)
        except SolverError as error:
            if "infeasible" not in str(error):
                raise
            raise InfeasibleNetworkError(
                f"price: no placement of {workload.total_kw:g} kW over the sites{when} keeps {limits_text(settings)}"
                f" ({CASE_TITLES[case]}); lower the load, raise head_voltage_pu or add generators") from None
        done = result.solve
        progress(f"  {done.status} in {done.seconds:.1f} s, payment {result.payment_per_h:,.3f} $/h (MILP: "
                 f"{done.columns:,} columns, {done.binaries:,} binary; {done.rows:,} rows)"
                 + (f"; tie-break: best of {TIE_BREAK_NODES} nodes" if result.tie_break == "node_limit" else
                    "; tie-break: the held payment out of reach, the payment's decision kept"
                    if result.tie_break == "infeasible" else ""))
        outcomes[case] = case_outcome(hour, result.decision, sites, config.solver, workload, from_milp=True,
                                      solve=done, tie_break=result.tie_break, milp_payment=result.payment_per_h)
        if outcomes[case].opf is None:  # the bilevel problem keeps the OPF feasible; this would be a bug
            raise GridError(f"price: the OPF is infeasible at the {case} decision{when} the bilevel problem chose")
    return outcomes


def _site_columns(rows: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """sites.csv's columns: a battery's net draw after the load when some site has one (D-28)."""
    if not any("battery_kw" in row for row in rows):
        return SITE_COLUMNS
    at = SITE_COLUMNS.index("load_kw") + 1
    return SITE_COLUMNS[:at] + ("battery_kw",) + SITE_COLUMNS[at:]


def _site_row(case: str, site: DataCenterSite, outcome: CaseOutcome, workload: Workload) -> dict[str, Any]:
    svg = outcome.decision.svg_kvar.get(site.bus, np.zeros(3))
    row: dict[str, Any] = {"case": case, "bus": site.bus, "member": site.member,
                           "load_kw": outcome.decision.load_kw[site.bus],
                           **{f"svg_{p}_kvar": float(q) for p, q in zip(PHASE_NAMES, svg)}}
    battery = outcome.decision.battery_kw
    if site.bus in battery:
        row["battery_kw"] = round(battery[site.bus], 6)
    opf = outcome.opf
    if opf is None:
        return row
    voltage = opf.voltage_pu[site.bus]
    row.update({f"voltage_{p}_pu": round(float(v), 6) for p, v in zip(PHASE_NAMES, voltage)})
    row["unbalance_pct"] = round(100.0 * voltage_unbalance(voltage), 6)
    row.update({f"dlmp_{p}_usd_per_mwh": round(float(x), 6) for p, x in zip(PHASE_NAMES, opf.dlmp_p[site.bus])})
    alone = Decision({site.bus: outcome.decision.load_kw[site.bus]},
                     {site.bus: svg} if site.bus in outcome.decision.svg_kvar else {},
                     {site.bus: battery[site.bus]} if site.bus in battery else {})
    row["payment_usd_per_h"] = round(aggregator_payment((site,), alone, opf, workload), 6)
    return row


def _case_entry(outcome: CaseOutcome, sites: Sequence[DataCenterSite]) -> dict[str, Any]:
    """One case in one period: the decision, the MILP's outcome, and what the OPF says of it."""
    opf = outcome.opf
    entry: dict[str, Any] = {
        "feasible": opf is not None,
        "load_kw": {str(b): kw for b, kw in outcome.decision.load_kw.items()},
        "svg_kvar": {str(b): [float(q) for q in v] for b, v in outcome.decision.svg_kvar.items()},
    }
    if outcome.decision.battery_kw:   # net draw, positive charging (D-28)
        entry["battery_kw"] = {str(b): round(kw, 6) for b, kw in outcome.decision.battery_kw.items()}
    if outcome.solve is not None:
        entry["milp"] = _milp(outcome.solve)
    if outcome.milp_payment_per_h is not None:
        entry["milp"] = {**entry.get("milp", {}), "payment_usd_per_h": round(outcome.milp_payment_per_h, 6)}
    if outcome.tie_break:
        entry["tie_break"] = outcome.tie_break
    if opf is None:
        return entry
    placed_kw = sum(outcome.decision.load_kw.values())
    lowest = min((v, b, k) for b, k, v in node_values(opf.voltage_pu))
    site_v = min((float(opf.voltage_pu[s.bus][k]), s.bus, k) for s in sites for k in range(3))
    prices = np.array([v for _, _, v in node_values(opf.dlmp_p)])
    unbalance = [voltage_unbalance(opf.voltage_pu[s.bus]) for s in sites]
    entry.update({
        "payment_usd_per_h": round(outcome.payment_per_h, 6),
        "average_price_usd_per_mwh": round(outcome.payment_per_h / (placed_kw / 1e3), 6) if placed_kw else None,
        "dso_cost_usd_per_h": round(opf.cost_per_h, 6),
        "min_voltage_pu": at_node(lowest),
        "min_site_voltage_pu": at_node(site_v),
        "site_unbalance_pct": {str(s.bus): round(100 * u, 6) for s, u in zip(sites, unbalance)},
        "mean_site_unbalance_pct": round(100 * float(np.mean(unbalance)), 6),
        "dlmp_range_usd_per_mwh": [round(float(prices.min()), 6), round(float(prices.max()), 6)],
        "binding_voltage_limits": [{"bus": bus, "phase": phase, "usd_per_h_per_pu": round(value, 6)}
                                   for bus, phase, value in opf.parts.binding],
        "binding_line_limits": [{"segment": f"{i}-{j}", "phase": phase, "usd_per_mwh": round(value, 6)}
                                for i, j, phase, value in opf.parts.binding_lines],
        "generators_kw": {n: [round(float(x), 6) for x in kw] for n, kw in opf.generator_kw.items()},
        "substation_kw": [round(float(x), 6) for x in opf.head_kw],
    })
    return entry


def _milp(done: Any) -> dict[str, Any]:
    return {"status": done.status, "gap": done.gap, "columns": done.columns, "binaries": done.binaries,
            "rows": done.rows}


def _over_periods(case: str, entries: Sequence[dict[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """One case over the study's periods (1 h each): totals and means of what every period has,
    the extremes with the period they occur in. One period gives that period's numbers."""
    solved = [(label, e) for label, e in zip(labels, entries) if e["feasible"]]
    out: dict[str, Any] = {"title": CASE_TITLES[case], "feasible": len(solved) == len(entries),
                           "infeasible_periods": [label for label, e in zip(labels, entries) if not e["feasible"]]}
    if len(solved) < len(entries):  # a total over some hours is no total of the study
        return out
    payment = sum(e["payment_usd_per_h"] for e in entries)
    energy_mwh = sum(sum(e["load_kw"].values()) + sum(e.get("battery_kw", {}).values()) for e in entries) / 1e3
    lowest = min(((e["min_voltage_pu"], label) for label, e in solved), key=lambda item: item[0]["value"])
    site_low = min(((e["min_site_voltage_pu"], label) for label, e in solved), key=lambda item: item[0]["value"])
    out.update({
        "payment_usd": round(payment, 6),
        "payment_usd_per_h": round(payment / len(entries), 6),
        "energy_mwh": round(energy_mwh, 6),
        "average_price_usd_per_mwh": round(payment / energy_mwh, 6) if energy_mwh else None,
        "dso_cost_usd": round(sum(e["dso_cost_usd_per_h"] for e in entries), 6),
        "min_voltage_pu": {**lowest[0], "period": lowest[1]},
        "min_site_voltage_pu": {**site_low[0], "period": site_low[1]},
        "site_unbalance_pct": {bus: max(e["site_unbalance_pct"][bus] for e in entries)
                               for bus in entries[0]["site_unbalance_pct"]},
        "mean_site_unbalance_pct": round(float(np.mean([e["mean_site_unbalance_pct"] for e in entries])), 6),
        "dlmp_range_usd_per_mwh": [min(e["dlmp_range_usd_per_mwh"][0] for e in entries),
                                   max(e["dlmp_range_usd_per_mwh"][1] for e in entries)],
    })
    checked = [(label, e["ac"]) for label, e in solved if "ac" in e]
    if checked:
        low = min(checked, key=lambda item: item[1]["min_voltage_pu"]["value"])
        worst = max(checked, key=lambda item: item[1]["max_linear_error_pu"]["value"])
        loaded = max(checked, key=lambda item: item[1]["max_line_current"]["current_a"])
        rated = [(label, ac) for label, ac in checked if ac["max_line_loading"] is not None]
        heaviest = max(rated, key=lambda item: item[1]["max_line_loading"]["loading"]) if rated else None
        out["ac"] = {"min_voltage_pu": {**low[1]["min_voltage_pu"], "period": low[0]},
                     "max_linear_error_pu": {**worst[1]["max_linear_error_pu"], "period": worst[0]},
                     "violations": sum(len(ac["violations"]) for _, ac in checked),
                     "periods_with_violations": [label for label, ac in checked if ac["violations"]],
                     "losses_kwh": round(sum(ac["losses_kw"] for _, ac in checked), 6),
                     "max_line_current": {**loaded[1]["max_line_current"], "period": loaded[0]},
                     "max_line_loading": (None if heaviest is None else
                                          {**heaviest[1]["max_line_loading"], "period": heaviest[0]}),
                     "line_violations": sum(len(ac["line_violations"]) for _, ac in checked),
                     "periods_with_line_violations": [label for label, ac in checked if ac["line_violations"]]}
    return out


def _summary(config: ExperimentConfig, price: PriceConfig, feeder: ThreePhaseFeeder,
             generators: Sequence[DistributedGenerator], sites: Sequence[DataCenterSite], sites_from: str,
             hours: Sequence[PeriodOutcome], day_solves: Mapping[str, Any],
             checks: Mapping[tuple[int, str], AcCheck]) -> dict[str, Any]:
    periods = [{
        "period": hour.period.label,
        "substation_price_usd_per_mwh": hour.period.substation_price_per_mwh,
        "background_kw": round(hour.background_kw, 6),
        "demand_kw": hour.demand_kw,
        "availability": dict(hour.period.availability),
        "cases": {case: _case_entry(outcome, sites) for case, outcome in hour.cases.items()},
    } for hour in hours]
    for (t, case), check in checks.items():
        periods[t]["cases"][case]["ac"] = ac_entry(check, price.opf_settings())
    labels = [p["period"] for p in periods]
    cases = {case: _over_periods(case, [p["cases"][case] for p in periods], labels) for case in hours[0].cases}
    for case, done in day_solves.items():
        cases[case]["milp"] = _milp(done)
    energies = {round(c["energy_mwh"], 6) for c in cases.values() if "energy_mwh" in c}
    energy = energies.pop() if len(energies) == 1 else None   # one load for every case, or each its own
    workload = hours[0].workload
    return {
        "seed": config.seed,
        "solver": config.solver,
        "units": {"money": "$", "power": "kW", "reactive": "kvar", "voltage": "p.u.", "price": "$/MWh",
                  "energy": "MWh", "period": "1 h", "unbalance": "% (max phase deviation from the mean, NEMA)"},
        "feeder": feeder.name,
        "head_voltage_pu": price.head_voltage_pu,
        "voltage_band_pu": [price.v_min_pu, price.v_max_pu],
        "substation_price_usd_per_mwh": price.substation_price_per_mwh,
        "day": None if price.day is None else price.day.model_dump(mode="json"),
        "generators": [{"name": g.name, "bus": g.bus, "max_kw_per_phase": g.max_kw_per_phase,
                        "cost_usd_per_mwh": g.cost_per_mwh, "quadratic_cost": g.quadratic_cost} for g in generators],
        "sites_from": sites_from,
        "sites": [{"bus": s.bus, "member": s.member, "max_kw": s.max_kw, "min_kw": s.min_kw,
                   "power_factor": s.power_factor, "svg_kvar": s.svg_kvar} for s in sites],
        "workload": {"total_kw": workload.total_kw if len(hours) == 1 else None, "energy_mwh": energy,
                     "servers": None if price.workload is None else price.workload.model_dump(mode="json"),
                     "step_kw": workload.step_kw, "svg_step_kvar": workload.svg_step_kvar,
                     "svg_cost_usd_per_mvarh": workload.svg_cost_per_mvarh},
        "price_bound_usd_per_mwh": price.price_bound,
        "linearization": price.linearization,
        "cases": cases,
        "periods": periods,
    }


def _files(feeder: ThreePhaseFeeder, sites: Sequence[DataCenterSite], hours: Sequence[PeriodOutcome],
           summary: dict[str, Any], plots: bool, checks: Mapping[tuple[int, str], AcCheck]) -> dict[str, bytes]:
    distance = distance_km(feeder)
    voltages, prices, site_rows = [], [], []
    for hour in hours:
        label = hour.period.label
        for case, outcome in hour.cases.items():
            site_rows += [{"period": label, **_site_row(case, s, outcome, hour.workload)} for s in sites]
            if outcome.opf is None:
                continue
            for bus in feeder.buses:
                for k in feeder.bus_phases[bus]:
                    phase = PHASE_NAMES[k]
                    voltages.append({"period": label, "case": case, "bus": bus,
                                     "distance_km": round(distance[bus], 6), "phase": phase,
                                     "voltage_pu": round(float(outcome.opf.voltage_pu[bus][k]), 6)})
                    if bus in outcome.opf.dlmp_p:
                        parts = outcome.opf.parts
                        prices.append({"period": label, "case": case, "bus": bus, "phase": phase,
                                       "dlmp_usd_per_mwh": round(float(outcome.opf.dlmp_p[bus][k]), 6),
                                       **{f"{name}_usd_per_mwh": round(float(getattr(parts, name)[bus][k]), 6)
                                          for name in ("energy", "loss", "congestion", "voltage")},
                                       "reactive_usd_per_mvarh": round(float(outcome.opf.dlmp_q[bus][k]), 6)})
    files = {
        "summary.json": outputs.json_bytes(summary),
        "voltages.csv": outputs.csv_bytes(VOLTAGE_COLUMNS, voltages),
        "dlmp.csv": outputs.csv_bytes(DLMP_COLUMNS, prices),
        "sites.csv": outputs.csv_bytes(_site_columns(site_rows), site_rows),
    }
    if checks:
        files["ac_voltages.csv"] = outputs.csv_bytes(AC_COLUMNS, ac_rows(checks, hours))
    if plots:
        hardest = _hardest(hours)
        solved = {case: o.opf for case, o in hardest.cases.items() if o.opf is not None}
        files.update(_figures(feeder, sites, solved, distance, summary,
                              "" if len(hours) == 1 else f" at {hardest.period.label}"))
    return files


def _hardest(hours: Sequence[PeriodOutcome]) -> PeriodOutcome:
    """The period the maps and profiles show: the one whose lowest voltage without coordination
    (pro rata) is lowest, an infeasible one first; the first such in time."""
    def low(hour: PeriodOutcome) -> float:
        opf = hour.cases["pro-rata"].opf
        return -np.inf if opf is None else min(v for _, _, v in node_values(opf.voltage_pu))

    return min(hours, key=low)


def _figures(feeder: ThreePhaseFeeder, sites: Sequence[DataCenterSite], solved: Mapping[str, OpfResult],
             distance: Mapping[int, float], summary: dict[str, Any], when: str) -> dict[str, bytes]:
    """The figures of one period (``when`` names it on a day, else ""), the costs over the
    study and, on a day, the day's prices, loads and voltages hour by hour."""
    from sim.report.figures.plots import figure_bytes
    from sim.report.figures.price import (
        plot_costs,
        plot_day,
        plot_dlmp_map,
        plot_dlmp_parts,
        plot_unbalance,
        plot_voltage_profile,
    )

    drawn = {
        "voltage_profile.png": lambda p: plot_voltage_profile(feeder, solved, distance, sites, summary, p, when),
        "unbalance.png": lambda p: plot_unbalance(sites, solved, p, when),
        "dlmp_map.png": lambda p: plot_dlmp_map(feeder, solved, sites, p, when),
        "dlmp_parts.png": lambda p: plot_dlmp_parts(solved, sites, p, when),
        "costs.png": lambda p: plot_costs(summary, p),
    }
    if len(summary["periods"]) > 1:
        drawn["day.png"] = lambda p: plot_day(summary, p)
    return figure_bytes(drawn)


def _bus_list(feeder: ThreePhaseFeeder, three_phase: bool = False) -> str:
    """The feeder's load buses (or those with all three phases) as a short hint, with where the docs list them."""
    buses = sorted(b for b in feeder.buses if b != feeder.head_bus and (feeder.is_three_phase(b) or not three_phase))
    doc = FEEDERS[feeder.name].doc if feeder.name in FEEDERS else "docs/reference/cases.md"
    listed = ", ".join(map(str, buses[:5])) + f", ... {buses[-1]}" if three_phase else f"{buses[0]} to {buses[-1]}"
    return f"{listed} ({doc})"


def price_report(summary: Mapping[str, Any]) -> str:
    """What the study found, for the terminal: per case over the study (a snapshot: its loads and
    SVG settings too), then on a day the hours one by one."""
    from sim.report.text import format_table

    sites, periods = summary["sites"], summary["periods"]
    one = len(periods) == 1
    headers = ["case", "payment ($/h)" if one else "payment ($, day)", "avg price ($/MWh)", "DLMP range ($/MWh)",
               "lowest V (p.u.)", "lowest site V (p.u.)", "site unbalance (%)"]
    if one:
        headers += ["load kW by site", "SVG kvar by site"]
    rows = []
    for case, c in summary["cases"].items():
        row: tuple = (c["title"], "infeasible" if one else f"infeasible in {len(c['infeasible_periods'])} h",
                      "-", "-", "-", "-", "-")
        if c["feasible"]:
            low, site_low = c["min_voltage_pu"], c["min_site_voltage_pu"]
            where = "" if one else " " + low["period"][-5:]
            site_where = "" if one else " " + site_low["period"][-5:]
            average = c["average_price_usd_per_mwh"]  # None when no load is placed
            row = (c["title"], f"{c['payment_usd_per_h' if one else 'payment_usd']:,.2f}",
                   "-" if average is None else f"{average:.2f}",
                   "{:.2f} to {:.2f}".format(*c["dlmp_range_usd_per_mwh"]),
                   f"{low['value']:.4f} ({low['bus']}{low['phase']}{where})",
                   f"{site_low['value']:.4f} ({site_low['bus']}{site_low['phase']}{site_where})",
                   " / ".join(f"{c['site_unbalance_pct'][str(s['bus'])]:.2f}" for s in sites))
        if one:
            entry = periods[0]["cases"][case]
            row += (", ".join(f"{b}: {kw:g}" for b, kw in entry["load_kw"].items()),
                    "; ".join(f"{b}: " + "/".join(f"{q:g}" for q in v) for b, v in entry["svg_kvar"].items()) or "-")
        rows.append(row)
    work = summary["workload"]
    hours = f"{len(periods)} hours from {periods[0]['period']}"
    load = (f"{work['total_kw']:g} kW" if one else f"the servers' work over {hours}" if work["energy_mwh"] is None
            else f"{work['energy_mwh']:g} MWh over {hours}")
    price = (f"substation {summary['substation_price_usd_per_mwh']:g} $/MWh" if one else
             "substation {:g} to {:g} $/MWh".format(*_extremes(p["substation_price_usd_per_mwh"] for p in periods)))
    head = (f"{load} of data-center load over {len(sites)} sites ({', '.join(str(s['bus']) for s in sites)}; sites "
            f"from {summary['sites_from']}) on {summary['feeder']}, head {summary['head_voltage_pu']:g} p.u., band "
            f"{summary['voltage_band_pu'][0]:g} to {summary['voltage_band_pu'][1]:g} p.u., {price}.")
    text = head + "\n\n" + format_table(headers, rows, [False] + [True] * 6 + [False, False][:len(headers) - 7])
    text += _ac_lines(summary, one) + _correction_line(summary.get("ac_correction"))
    if not one:
        text += "\n\n" + _hours_table(summary)
    for period in periods:
        for case, c in period["cases"].items():
            milp = c.get("milp")
            if milp is not None and _prices_not_unique(c):
                text += (f"\nNote: {CASE_TITLES[case]}{'' if one else ' at ' + period['period']}: the OPF's prices at "
                         f"this decision are not unique; the bilevel problem paid {milp['payment_usd_per_h']:.3f} $/h "
                         f"at the duals best for the aggregator, the DSO's solver's pay {c['payment_usd_per_h']:.3f} "
                         "$/h (docs/models/dlmp.md#eq-d-29).")
            if milp is not None and milp.get("status", "optimal") != "optimal":
                text += (f"\nNote: {CASE_TITLES[case]}{'' if one else ' at ' + period['period']}: the MILP stopped at "
                         f"its time limit (gap {milp['gap']:.2%}); its decision is the best found, not proven optimal. "
                         "Raise [price] time_limit_s.")
    return text


def _ac_lines(summary: Mapping[str, Any], one: bool) -> str:
    """The AC check, a line per case: the lowest AC voltage, the largest gap to the linear model,
    the voltages outside the band, the most loaded segment and any over its rating."""
    lines = []
    for c in summary["cases"].values():
        ac = c.get("ac")
        if ac is None:
            continue
        low, gap = ac["min_voltage_pu"], ac["max_linear_error_pu"]
        at = (lambda item: "" if one else " " + item["period"][-5:])
        broken = ("no voltage outside the band" if not ac["violations"] else
                  f"{ac['violations']} bus-phase{'s' if one else '-hours'} outside the band"
                  + ("" if one else f" (in {len(ac['periods_with_violations'])} hours)"))
        line, most = ac["max_line_current"], ac["max_line_loading"]
        loading = ("" if most is None else f", the most loaded {most['loading']:.1%} of its {most['rating_a']:g} A "
                   f"({most['segment']}{most['phase']}{at(most)})")
        over = (f"; {ac['line_violations']} segment-phase{'s' if one else '-hours'} over their rating"
                if ac["line_violations"] else "; no line over its rating" if most is not None else "")
        lines.append(f"  {c['title']}: lowest {low['value']:.4f} p.u. ({low['bus']}{low['phase']}{at(low)}); "
                     f"linear - AC at most {gap['value']:.4f} p.u. ({gap['bus']}{gap['phase']}{at(gap)}); {broken}; "
                     f"segments carry at most {line['current_a']:.0f} A ({line['segment']}{line['phase']}"
                     f"{at(line)}){loading}{over}")
    return "\n\nAC check (OpenDSS, at each decision and dispatch):\n" + "\n".join(lines) if lines else ""


def _prices_not_unique(entry: Mapping[str, Any]) -> bool:
    """Whether the MILP's own duals priced the case's decision differently from the OPF's solver:
    the OPF has several optimal duals there (docs/models/dlmp.md#eq-d-29)."""
    paid, milp = entry.get("payment_usd_per_h"), entry.get("milp", {}).get("payment_usd_per_h")
    return paid is not None and milp is not None and abs(paid - milp) > 1e-6 * max(1.0, abs(paid)) + 1e-6


def _correction_line(correction: Mapping[str, Any] | None) -> str:
    """The AC correction in one line: what was out of bounds after each round, and how it ended."""
    if not correction or not correction["rounds"]:
        return ""
    ending = ("clear" if correction["clear"] else f"stopped: {correction['stopped']}" if correction["stopped"]
              else "not clear after the last round (raise [price] ac_rounds)")
    if not correction["lines_held"] and correction["line_violations_by_round"][-1]:
        ending += "; lines reported, not held: line_limits = false"
    return (f"\nAC correction, {correction['rounds']} round(s): voltages outside the band "
            f"{' -> '.join(map(str, correction['violations_by_round']))}, segment-phases over their rating "
            f"{' -> '.join(map(str, correction['line_violations_by_round']))} ({ending}); "
            f"{correction['floors_raised']} floor(s) raised, {correction['lines_cut']} line bound(s) cut")


def _extremes(values: Iterable[float]) -> tuple[float, float]:
    values = list(values)
    return min(values), max(values)


def _hours_table(summary: Mapping[str, Any]) -> str:
    """Hour by hour: the inputs, and per case the payment and the lowest site voltage."""
    from sim.report.text import format_table

    cases = list(summary["cases"])
    given = summary["periods"][0]["demand_kw"] is not None   # else each case schedules its own load
    headers = ["hour", "substation ($/MWh)", "background (kW)"]
    headers += ["data centers (kW)"] if given else [f"{case} (kW)" for case in cases]
    headers += [f"{case} ($/h)" for case in cases] + [f"{case} lowest site V" for case in cases]
    rows = []
    for period in summary["periods"]:
        entries = [period["cases"][case] for case in cases]
        load = ([f"{period['demand_kw']:g}"] if given else
                [f"{sum(e['load_kw'].values()):,.0f}" for e in entries])
        rows.append((period["period"], f"{period['substation_price_usd_per_mwh']:.2f}",
                     f"{period['background_kw']:,.0f}",
                     *load, *(f"{e['payment_usd_per_h']:,.2f}" if e["feasible"] else "infeasible" for e in entries),
                     *(f"{e['min_site_voltage_pu']['value']:.4f}" if e["feasible"] else "-" for e in entries)))
    return format_table(headers, rows, [False] + [True] * (len(headers) - 1))


def command(args: argparse.Namespace, progress: Progress) -> int:
    """`dcmarket price CONFIG`."""
    return study_command(args, "price", lambda config: run_price_study(config, plots=not args.no_plots,
                                                                       progress=progress, workers=args.workers),
                         "Price")


def _operating_aggregator(model: Market, name: str | None, config_path: Path) -> Aggregator:
    """The aggregator that operates its sites: ``[price] aggregator``, or the run's only one."""
    aggregators = list(model.agents_by_type.get(Aggregator, []))
    if name is not None:
        chosen = [a for a in aggregators if a.name == name]
        if not chosen:
            names = ", ".join(a.name for a in aggregators) or "none"
            raise ConfigError(f"{config_path}: price.aggregator: no aggregator named {name!r} bids in this run "
                              f"(aggregators: {names})")
        return chosen[0]
    if len(aggregators) != 1:
        raise ConfigError(f"{config_path}: price.aggregator: the run has {len(aggregators)} aggregators; name the "
                          "one that operates its sites, or list [[price.sites]]")
    return aggregators[0]


def _after_auction(model: Market, summary: dict[str, Any], config: ExperimentConfig, config_path: Path,
                   checked: None, progress: Progress) -> tuple[dict[str, Any], StudyResult]:
    """The aggregator runs its members' sites against the DLMPs ([price] sites, when given, replace them)."""
    won = None
    if config.price.sites is None:
        agent = _operating_aggregator(model, config.price.aggregator, config_path)
        won = agent.operated_sites(summary["bundles"][agent.name], summary["prices"], {p.id: p for p in model.products})
        if not won:
            raise ConfigError(f"{config_path}: price: aggregator {agent.name!r} won nothing, so there is no site "
                              "to operate; list [[price.sites]] or remove [price]")
    progress("DLMP coordination of the aggregator's sites")
    with named_after(config_path):
        priced = run_price_study(config, won=won, progress=progress)
    section = {"directory": outputs.PRICE_FOLDER, "sites_from": priced.summary["sites_from"],
               "sites": priced.summary["sites"],
               "payment_usd_per_h": {case: c.get("payment_usd_per_h") for case, c in priced.summary["cases"].items()}}
    return section, priced


def _check_after_auction(config: ExperimentConfig, config_path: Path) -> None:
    with named_after(config_path):  # a bad [price] fails here, not after the auction
        check_before_auction(config)


AFTER_AUCTION = AfterAuction("price", outputs.PRICE_FOLDER, "DLMP coordination of the aggregator's sites after the auction",
                             _check_after_auction, _after_auction)
