"""`dcmarket plan`: the two-stage flexible-capacity plan, alone or after an auction.

One study, two entry points: `dcmarket plan CONFIG` reads the sites from ``[plan] sites``; a
run whose config has a ``[plan]`` table hands the DSO the sites that won flexible capacity
(agents/dso.py) and writes the same files under ``plan/`` in its run directory.

What it computes (docs/models/plan.md#fcm-6):
- the sample plan at ``lambda`` and the distributionally robust plan at ``dro_radius``;
- each plan's Stage II on the in-sample scenarios, on fresh ones from the same generator, and
  on a shifted generator (``[plan.shift]``): cost, CVaR, worst case over the ambiguity set and
  energy not served, side by side;
- the cost-CVaR frontier: the sample plan for each of ``frontier_lambdas``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from agents.capacity_products import SiteDefaults
from grid.errors import GridError
from grid.network.cases import load_case
from grid.network.network import Network
from grid.network.radial import radial_feeder
from grid.plan.data import (
    Hub,
    ModuleType,
    PlanData,
    PlanSite,
    Supplier,
    check_buses,
    check_catalogue,
    check_plan_data,
    travel_minutes,
)
from grid.plan.dispatch import Evaluation, batch_size
from grid.plan.feeder_limits import LimitRows, limit_rows
from grid.plan.groups import solve_by_groups
from grid.plan.milp import (
    Plan,
    PlanSolution,
    RiskSettings,
    evaluate_plan,
    solve_plan,
)
from grid.plan.risk import cvar, cvar_interval, mean_cvar, mean_interval, ratio_interval, worst_case_mean_cvar
from grid.plan.shocks import ShockScenarios, ShockSite, draw_shocks
from grid.solvers.names import check_solver
from sim.config.plan import SAMPLES, PlanConfig, SiteConfig
from sim.config.schema import ConfigError, ExperimentConfig
from sim.errors import named_after
from sim.execution.cluster import cluster_blocks
from sim.execution.ordered_pool import OrderedPool, check_workers
from sim.output import files as outputs
from sim.random_streams import stream
from sim.studies.after_auction import AfterAuction, Market
from sim.studies.command import study_command
from sim.studies.result import StudyResult

Progress = Callable[[str], None]

SHIPMENT_COLUMNS = ("plan", "module", "hub", "hub_bus", "supplier", "units")
DISPATCH_COLUMNS = ("plan", "scenario", "bus", "hub", "module", "units")
COST_COLUMNS = ("plan", "sample", "scenario", "cost_usd", "ens_mwh", "uncovered_mwh", "sites_disturbed",
                "sites_stabilized")
SITE_COLUMNS = ("plan", "sample", "scenario", "bus", "ens_mwh", "shed_mwh", "uncovered_mwh", "stabilized", "arrival_min")
FRONTIER_COLUMNS = ("lambda", "plan_cost_usd", "expected_cost_usd", "cvar_usd", "expected_total_usd",
                    "cvar_total_usd", "objective_usd", "units", "hubs")


def sites_from_config(plan: PlanConfig, sites: Sequence[SiteConfig]) -> tuple[PlanSite, ...]:
    return tuple(
        PlanSite(
            bus=s.bus,
            load_mw=s.load_mw,
            owner=s.owner if s.owner is not None else f"bus {s.bus}",
            stabilize_min=s.stabilize_min if s.stabilize_min is not None else plan.stabilize_min,
            imbalance_cost_per_mwh=(s.imbalance_cost_per_mwh if s.imbalance_cost_per_mwh is not None
                                    else plan.imbalance_cost_per_mwh),
        )
        for s in sites
    )


def catalogue(plan: PlanConfig, network: Network) -> tuple[tuple[ModuleType, ...], tuple[Hub, ...], tuple[Supplier, ...]]:
    """Module types, hubs and suppliers of ``[plan]``, checked (grid.plan.data.check_catalogue).
    A run calls this before its auction, so that a bad [plan] fails before the expensive part."""
    modules = tuple(m.module_type() for m in plan.modules)
    hubs = tuple(h.hub() for h in plan.hubs)
    suppliers = tuple(s.supplier() for s in plan.suppliers)
    check_catalogue(modules, hubs, suppliers, network)
    return modules, hubs, suppliers


def plan_data(plan: PlanConfig, network: Network, sites: Sequence[PlanSite],
              stabilize_fields: Sequence[str] = ()) -> PlanData:
    """The model's data from the ``[plan]`` table and the sites, checked against the network.

    ``stabilize_fields`` names the field that set each site's window, for errors (default: the
    ``[[plan.sites]]`` entry)."""
    modules, hubs, suppliers = catalogue(plan, network)
    check_buses(network, (), sites)
    explicit = None
    if plan.travel.minutes is not None:
        names = [h.name for h in hubs]
        buses = {site.bus for site in sites}
        explicit = {}
        for hub, table in plan.travel.minutes.items():
            if hub not in names:
                raise GridError(f"plan.travel.minutes.{hub}: unknown hub {hub!r}; choose one of {', '.join(names)}")
            explicit[hub] = {}
            for key, minutes in table.items():
                try:
                    bus = int(key)
                except ValueError:
                    raise GridError(f"plan.travel.minutes.{hub}.{key}: keys are site bus numbers") from None
                if bus not in buses:
                    # A typo would silently fall back to the road time; a site an auction did not
                    # create is no typo, so only listed sites are held to this.
                    if plan.sites is not None:
                        raise GridError(f"plan.travel.minutes.{hub}.{key}: bus {bus} is not a site; the sites are "
                                        f"{', '.join(str(b) for b in sorted(buses))}")
                    continue
                explicit[hub][bus] = minutes
    settings = plan.shock_settings()
    tau = travel_minutes(network, hubs, sites, section_km=plan.travel.section_km, speed_kmh=plan.travel.speed_kmh,
                         explicit=explicit)
    data = PlanData(network.name, modules, hubs, suppliers, tuple(sites), tau, plan.ens_cost_per_mwh,
                    settings.window_min, tuple(stabilize_fields), feeder_limit_rows(plan, network, sites))
    check_plan_data(data, network)
    return data


def feeder_limit_rows(plan: PlanConfig, network: Network, sites: Sequence[PlanSite]) -> LimitRows | None:
    """``[plan.feeder_limits]`` as rows over the sites (grid.plan.feeder_limits), or None when off."""
    limits = plan.feeder_limits
    if limits is None or not limits.enabled:
        return None
    for k, site in enumerate(sites):
        if site.imbalance_cost_per_mwh > plan.ens_cost_per_mwh:
            # Shed load is priced at gamma instead of P_i: were it cheaper, the plan would shed for profit.
            raise GridError(f"plan.ens_cost_per_mwh: {plan.ens_cost_per_mwh:g} $/MWh is below bus {site.bus}'s "
                            f"imbalance price ({site.imbalance_cost_per_mwh:g} $/MWh); with plan.feeder_limits "
                            "shedding load must not cost less than leaving it uncovered: raise it")
    feeder = radial_feeder(network.name, "plan.case")
    return limit_rows(feeder, network, [(s.bus, s.load_mw) for s in sites], limits.settings())


def stabilize_fields(plan: PlanConfig) -> tuple[str, ...]:
    """Which field set each listed site's T_stab: its own entry, or the [plan] default."""
    return tuple(f"plan.sites[{k}].stabilize_min" if s.stabilize_min is not None else "plan.stabilize_min"
                 for k, s in enumerate(plan.sites or ()))


def shock_sites(data: PlanData) -> list[ShockSite]:
    return [ShockSite(s.bus, s.load_mw, s.owner) for s in data.sites]


def _evaluation_row(plan: Plan, ev: Evaluation, risk: RiskSettings, shocks: ShockScenarios) -> dict[str, Any]:
    ens = ev.ens_mwh.sum(axis=1)
    disturbed = shocks.kind >= 0

    def interval(bounds: tuple[float, float]) -> list[float | None]:
        return [float(b) if np.isfinite(b) else None for b in bounds]

    return {
        "expected_cost_usd": float(ev.cost.mean()),
        # 95 % intervals from the scenarios' spread (docs/models/plan.md#eq-f-ci); null below two scenarios.
        "expected_cost_ci_usd": interval(mean_interval(ev.cost)),
        "cvar_usd": cvar(ev.cost, risk.alpha),
        "cvar_ci_usd": interval(cvar_interval(ev.cost, risk.alpha)),
        "mean_cvar_usd": mean_cvar(ev.cost, risk.lam, risk.alpha),
        "worst_case_mean_cvar_usd": worst_case_mean_cvar(ev.cost, risk.lam, risk.alpha, risk.radius),
        "max_cost_usd": float(ev.cost.max()),
        "expected_ens_mwh": float(ens.mean()),
        "expected_ens_ci_mwh": interval(mean_interval(ens)),
        "cvar_ens_mwh": cvar(ens, risk.alpha),
        "max_ens_mwh": float(ens.max()),
        "share_scenarios_with_ens": float((ens > 1e-9).mean()),
        # Part of the ENS: load shed to keep the feeder within its limits (0 with them off).
        "expected_shed_mwh": float(ev.shed_mwh.sum(axis=1).mean()),
        # Of the sites an event hit (a site without one needs no stabilizing).
        "stabilized_share": float(ev.stabilized[disturbed].mean()) if disturbed.any() else 1.0,
        "stabilized_share_ci": interval(ratio_interval((ev.stabilized & disturbed).sum(axis=1), disturbed.sum(axis=1))),
        # t_i of (8): minutes from the event to the last unit's arrival, over hit sites that got units.
        "mean_arrival_min": float(np.nanmean(ev.arrival_min)) if np.isfinite(ev.arrival_min).any() else None,
        "expected_total_usd": plan.cost + float(ev.cost.mean()),
        "scenarios": int(ev.cost.size),
    }


def _plan_dict(solution: PlanSolution, data: PlanData, in_sample: Evaluation) -> dict[str, Any]:
    """One plan for summary.json. Its objective is the plan cost plus its own risk term (its
    lambda, alpha and radius) re-evaluated on the in-sample scenarios, each Stage II solved
    alone for the fixed plan: the value of the plan the study reports, whatever the incumbent's
    rounding. Beside it the MILP's incumbent, its best bound and the gap between them: the plan
    is optimal within that gap, not beyond it."""
    plan = solution.plan
    stock = plan.stock(data)
    risk = solution.risk
    return {
        "open_hubs": list(plan.open_hubs),
        "units_by_hub": {h.name: {m.name: int(stock[d, k]) for k, m in enumerate(data.modules) if stock[d, k]}
                         for d, h in enumerate(data.hubs) if h.name in plan.open_hubs},
        "setup_cost_usd": plan.setup_cost,
        "transport_cost_usd": plan.transport_cost,
        "plan_cost_usd": plan.cost,
        "objective_usd": plan.cost + worst_case_mean_cvar(in_sample.cost, risk.lam, risk.alpha, risk.radius),
        "milp_objective_usd": solution.objective,
        "milp_bound_usd": solution.solve.bound,
        # 0: one MILP; else the scenario groups whose bounds certify the plan (docs/models/plan.md#fcm-groups).
        "groups": solution.groups,
        "risk_term_usd": solution.risk_term,
        "lambda": solution.risk.lam,
        "alpha": solution.risk.alpha,
        "dro_radius": solution.risk.radius,
        "solver": solution.solve.solver,
        "status": solution.solve.status,
        "mip_gap": solution.solve.gap,
        # No solve time here: the summary is byte-reproducible; progress lines show the seconds.
    }


def plan_network(config: ExperimentConfig, base_dir: Path) -> tuple[PlanConfig, Network]:
    """The ``[plan]`` table and its network (``[plan] case``, else the run's ``[network]``)."""
    plan: PlanConfig | None = config.plan
    if plan is None:
        raise ConfigError("plan: missing [plan]; dcmarket plan needs a [plan] table (docs/studies/plan.md; "
                          "example: experiments/ieee33bw_plan.toml)")
    case = plan.case or (config.network.case if config.network is not None else None)
    if case is None:
        raise ConfigError("plan.case: no network; give [plan] case (e.g. \"ieee33bw\") or a [network] table")
    try:
        return plan, load_case(case, base_dir=base_dir)
    except GridError as error:
        raise ConfigError(f"plan.case: {error}") from None


def listed_plan_data(config: ExperimentConfig, base_dir: Path, network: Network | None = None) -> PlanData:
    """The model's data for the sites ``[plan] sites`` lists (the study without an auction), checked;
    ``network`` when the caller has loaded it already."""
    plan, network = plan_network(config, base_dir) if network is None else (config.plan, network)
    if plan.sites is None:
        raise ConfigError("plan.sites: no sites; list [[plan.sites]] (bus, load_mw), or run the plan after an "
                          "auction with dcmarket run")
    return plan_data(plan, network, sites_from_config(plan, plan.sites), stabilize_fields(plan))


def run_plan_study(config: ExperimentConfig, base_dir: Path, *, sites: Sequence[PlanSite] | None = None,
                   network: Network | None = None, frontier: bool = True, plots: bool = True,
                   progress: Progress = lambda _: None, workers: int = 1, scheduler: str | None = None) -> StudyResult:
    """The whole study; ``sites`` (from an auction) replace ``[plan] sites``; ``network`` is the
    plan's network when the caller has loaded it already (``plan_network``); ``workers``
    processes solve the MILPs and Stage II of the plans (the same files as one), or the Dask
    cluster at ``scheduler``; ``plots=False``
    leaves out the figures."""
    plan, network = plan_network(config, base_dir) if network is None else (config.plan, network)
    check_solver(config.solver)
    check_workers(workers)
    if sites is None:
        data = listed_plan_data(config, base_dir, network)
    else:  # from an auction: every window is the [plan] default
        data = plan_data(plan, network, sites, ("plan.stabilize_min",) * len(sites))
    settings, shifted = plan.shock_settings(), plan.shifted_settings()
    progress(f"{plan.scenarios} shock scenarios at {len(data.sites)} sites")
    in_sample = draw_shocks(shock_sites(data), settings, plan.scenarios, stream(config.seed, "shocks"))
    inside, fresh, moved = SAMPLES
    samples: dict[str, ShockScenarios] = {inside: in_sample}
    if plan.out_of_sample > 0:
        samples[fresh] = draw_shocks(shock_sites(data), settings, plan.out_of_sample,
                                     stream(config.seed, "shocks_out_of_sample"))
        samples[moved] = draw_shocks(shock_sites(data), shifted, plan.out_of_sample, stream(config.seed, "shocks_shifted"))
    cache: dict[tuple[tuple, str], Evaluation] = {}
    with OrderedPool(workers, "grid.plan.milp") as local, cluster_blocks(scheduler) as cluster:
        pool = Tasks(local, cluster)
        solutions = _solve_plans(config, data, in_sample, frontier, pool, progress)
        plans = {name: solutions[name] for name in ("sample", "dro") if name in solutions}

        def evaluated(solution: PlanSolution, label: str, name: str) -> Evaluation:
            # Plans that agree (the DRO plan often equals the sample plan) share their Stage II solves.
            key = (solution.plan.key(), label)
            if key not in cache:
                progress(f"Stage II of the {name} plan, {label} ({samples[label].count:,} scenarios)")
                cache[key] = evaluate_plan(data, solution.plan, samples[label], solver=config.solver,
                                           profiles=label == "in-sample", progress=progress,
                                           mapper=lambda work, tasks: pool.map(work, tasks, "Stage II of a plan"),
                                           batch=batch_size(samples[label].count, pool.workers))
            return cache[key]

        evaluations = {(name, label): evaluated(solution, label, name)
                       for name, solution in plans.items() for label in samples}
        on_frontier = sorted((s for k, s in solutions.items() if k.startswith("frontier") or k == "sample"),
                             key=lambda s: s.risk.lam) if frontier else []
        frontier_rows = [_frontier_row(data, s, evaluated(s, "in-sample", f"frontier {s.risk.lam:g}"))
                         for s in on_frontier]
    summary = _summary(config, plan, data, plans, evaluations, frontier_rows, samples)
    files = _files(data, plans, evaluations, frontier_rows, samples, summary, network, plots)
    return StudyResult(summary, files, plan_report(summary))


class Tasks:
    """Where the study's independent tasks run: the local pool, or a Dask cluster when one is given
    (each task one Dask task, results in order: the same files)."""

    def __init__(self, local: OrderedPool, cluster: Any = None) -> None:
        self.local, self.cluster = local, cluster

    @property
    def workers(self) -> int:
        if self.cluster is not None:
            return max(1, sum(self.cluster.client.nthreads().values()))
        return self.local.workers

    def map(self, work: Callable, tasks: Sequence[tuple], what: str) -> Iterable:
        if self.cluster is not None:
            return self.cluster(work, {}, tasks)
        return self.local.map(work, tasks, what)


def _solve_plans(config: ExperimentConfig, data: PlanData, in_sample: ShockScenarios, frontier: bool,
                 pool: Tasks, progress: Progress) -> dict[str, PlanSolution]:
    """Every MILP the study needs, side by side on ``pool``'s workers (they are independent): the
    sample plan, the robust plan when the radius is positive, and the frontier's plans at the
    other lambdas (the chosen plan sits on its frontier)."""
    plan = config.plan
    risks = {"sample": RiskSettings(plan.lam, plan.alpha, 0.0)}
    if plan.dro_radius > 0:
        risks["dro"] = RiskSettings(plan.lam, plan.alpha, plan.dro_radius)
    if frontier:
        risks.update({f"frontier {lam:g}": RiskSettings(lam, plan.alpha, 0.0)
                      for lam in sorted(set(plan.frontier_lambdas) - {plan.lam})})
    labels = {name: {"sample": "sample plan", "dro": "distributionally robust plan"}.get(name, name + " plan")
              for name in risks}
    for name, risk in risks.items():
        progress(f"solving the {labels[name]} (lambda {risk.lam:g}, alpha {risk.alpha:g}, "
                 f"radius {risk.radius:g})" + (f" on {pool.workers} worker processes" if pool.workers > 1 else ""))
    if plan.group_size is not None:
        found: list[Plan] = []  # the robust plan's groups start from the sample plan's tail (#eq-f-tail)

        def grouped(risk: RiskSettings) -> PlanSolution:
            solution = _by_groups(config, data, in_sample, risk, pool, progress, tuple(found))
            found.append(solution.plan)
            return solution

        solved: Iterable[PlanSolution] = (grouped(risk) for risk in risks.values())
    else:
        tasks = [(data, in_sample, risk, config.solver, plan.mip_gap, plan.time_limit_s) for risk in risks.values()]
        solved = pool.map(_solved, tasks, "the plan's MILPs")
    out = {}
    for name, solution in zip(risks, solved):
        done = solution.solve
        if solution.groups:
            progress(f"  {labels[name]}: {solution.groups} groups in {done.seconds:.1f} s, bounds "
                     f"{done.bound:,.2f} to {done.objective:,.2f} $, certified gap {done.gap:.2%}")
        else:
            progress(f"  {labels[name]}: {done.status} in {done.seconds:.1f} s, gap {done.gap:.2%}, objective "
                     f"{solution.objective:,.0f} $ (MILP: {done.columns:,} columns, {done.binaries:,} binary and "
                     f"{done.integers:,} integer; {done.rows:,} rows)")
        out[name] = solution
    return out


def _by_groups(config: ExperimentConfig, data: PlanData, in_sample: ShockScenarios, risk: RiskSettings,
               pool: Tasks, progress: Progress, seeds: Sequence[Plan] = ()) -> PlanSolution:
    """One plan by scenario groups on ``pool`` (grid.plan.groups), as the study reports a MILP's;
    ``seeds``: plans the study found already."""
    plan = config.plan
    started = time.perf_counter()
    grouped = solve_by_groups(data, in_sample, risk, group_size=plan.group_size, solver=config.solver,
                              mip_gap=plan.mip_gap, time_limit=plan.time_limit_s,
                              mapper=lambda work, tasks: pool.map(work, tasks, "a group's MILP"),
                              workers=pool.workers, seeds=seeds, progress=progress)
    return grouped.as_solution(config.solver, time.perf_counter() - started)


def _solved(data: PlanData, shocks: ShockScenarios, risk: RiskSettings, solver: str, mip_gap: float,
            time_limit: float) -> PlanSolution:
    """One MILP of the study (a worker's task)."""
    return solve_plan(data, shocks, risk, solver=solver, mip_gap=mip_gap, time_limit=time_limit)


def _frontier_row(data: PlanData, solution: PlanSolution, ev: Evaluation) -> dict[str, Any]:
    alpha, plan = solution.risk.alpha, solution.plan
    return {
        "lambda": solution.risk.lam, "plan_cost_usd": plan.cost, "expected_cost_usd": float(ev.cost.mean()),
        "cvar_usd": cvar(ev.cost, alpha), "expected_total_usd": plan.cost + float(ev.cost.mean()),
        "cvar_total_usd": plan.cost + cvar(ev.cost, alpha), "objective_usd": solution.objective,
        "units": int(plan.stock(data).sum()), "hubs": " ".join(plan.open_hubs),
    }


def _summary(config: ExperimentConfig, plan: PlanConfig, data: PlanData, plans: Mapping[str, PlanSolution],
             evaluations: Mapping[tuple[str, str], Evaluation], frontier_rows: list[dict[str, Any]],
             samples: Mapping[str, ShockScenarios]) -> dict[str, Any]:
    return {
        "seed": config.seed,
        "solver": config.solver,
        "units": {"money": "$", "energy": "MWh", "power": "MW", "time": "min"},
        "network": data.network_name,
        "sites": [{"bus": s.bus, "load_mw": s.load_mw, "owner": s.owner, "stabilize_min": s.stabilize_min,
                   "imbalance_cost_per_mwh": s.imbalance_cost_per_mwh} for s in data.sites],
        "travel_min": {h.name: {str(s.bus): round(float(data.travel_min[d, i]), 3) for i, s in enumerate(data.sites)}
                       for d, h in enumerate(data.hubs)},
        "scenarios": {label: shocks.count for label, shocks in samples.items()},
        "shift": dict(plan.shift),
        "plans": {name: _plan_dict(solution, data, evaluations[name, "in-sample"]) for name, solution in plans.items()},
        "evaluation": {name: {label: _evaluation_row(plans[name].plan, evaluations[name, label],
                                                     RiskSettings(plan.lam, plan.alpha, plan.dro_radius),
                                                     samples[label])
                              for label in samples} for name in plans},
        "frontier": frontier_rows,
        "feeder_limits": _limits_dict(data.limits),
    }


def _limits_dict(limits: LimitRows | None) -> dict[str, Any] | None:
    if limits is None:
        return None
    return {**dataclasses.asdict(limits.settings), "rows": list(limits.names),
            "lowest_voltage_before_shocks_pu": round(float(limits.base_voltage_pu.min()), 6)}


def _files(data: PlanData, plans: Mapping[str, PlanSolution], evaluations: Mapping[tuple[str, str], Evaluation],
           frontier_rows: list[dict[str, Any]], samples: Mapping[str, ShockScenarios], summary: dict[str, Any],
           network: Network, plots: bool) -> dict[str, bytes]:
    hub_bus = {h.name: h.bus for h in data.hubs}
    shipments = [{"plan": name, "module": s.module, "hub": s.hub, "hub_bus": hub_bus[s.hub], "supplier": s.supplier,
                  "units": s.units} for name, solution in plans.items() for s in solution.plan.shipments]
    dispatch = [{"plan": name, **row} for name in plans for row in evaluations[name, "in-sample"].dispatch]
    profile = [{"plan": name, **row} for name in plans for row in evaluations[name, "in-sample"].profiles]
    profile_columns = (("plan", "scenario", "bus", "minute", "deviation_mw") + tuple(f"{m.name}_mw" for m in data.modules)
                       + (("shed_mw",) if data.limits is not None else ()))
    # The scenario to draw minute by minute: the sample plan's costliest in sample.
    worst = int(np.argmax(evaluations["sample", "in-sample"].cost))
    costs = []
    per_site = []  # (13): ENS per node and scenario, with what the site got
    for (name, label), ev in evaluations.items():
        disturbed = samples[label].kind >= 0
        for s, i in zip(*np.nonzero(disturbed)):
            per_site.append({"plan": name, "sample": label, "scenario": int(s), "bus": data.sites[i].bus,
                             "ens_mwh": round(float(ev.ens_mwh[s, i]), 9),
                             "shed_mwh": round(float(ev.shed_mwh[s, i]), 9),
                             "uncovered_mwh": round(float(ev.uncovered_mwh[s, i]), 9),
                             "stabilized": int(ev.stabilized[s, i]),
                             "arrival_min": None if np.isnan(ev.arrival_min[s, i]) else float(ev.arrival_min[s, i])})
        for s in range(ev.cost.size):
            costs.append({"plan": name, "sample": label, "scenario": s, "cost_usd": round(float(ev.cost[s]), 6),
                          "ens_mwh": round(float(ev.ens_mwh[s].sum()), 9),
                          "uncovered_mwh": round(float(ev.uncovered_mwh[s].sum()), 9),
                          "sites_disturbed": int(disturbed[s].sum()),
                          "sites_stabilized": int((ev.stabilized[s] & disturbed[s]).sum())})
    files = {
        "summary.json": outputs.json_bytes(summary),
        "plan.csv": outputs.csv_bytes(SHIPMENT_COLUMNS, shipments),
        "dispatch.csv": outputs.csv_bytes(DISPATCH_COLUMNS, dispatch),
        "dispatch_profile.csv": outputs.csv_bytes(profile_columns, profile),
        "scenario_costs.csv": outputs.csv_bytes(COST_COLUMNS, costs),
        "site_outcomes.csv": outputs.csv_bytes(SITE_COLUMNS, per_site),
        "shocks.csv": samples["in-sample"].table().round(9).to_csv(index=False, lineterminator="\n").encode(),
        "shock_events.csv": samples["in-sample"].events().round(9).to_csv(index=False, lineterminator="\n").encode(),
    }
    if frontier_rows:
        files["frontier.csv"] = outputs.csv_bytes(FRONTIER_COLUMNS, frontier_rows)
    if plots:
        files.update(_figures(data, plans, evaluations, frontier_rows, samples, summary, network, profile, worst))
    return files


def _figures(data: PlanData, plans: Mapping[str, PlanSolution], evaluations: Mapping[tuple[str, str], Evaluation],
             frontier_rows: list[dict[str, Any]], samples: Mapping[str, ShockScenarios], summary: dict[str, Any],
             network: Network, profile: list[dict[str, Any]], worst: int) -> dict[str, bytes]:
    """The study's PNGs; ``worst`` is the scenario drawn minute by minute from ``profile``."""
    from sim.report.figures.plan import (
        plot_dispatch,
        plot_frontier,
        plot_out_of_sample,
        plot_plan_map,
    )
    from sim.report.figures.plots import figure_bytes
    from sim.report.figures.shocks import plot_shocks

    drawn = {
        "plan_map.png": lambda p: plot_plan_map(network, data, {n: s.plan for n, s in plans.items()}, p),
        "shocks.png": lambda p: plot_shocks(samples["in-sample"], p,
                                            title=f"Demand shocks drawn at {len(data.sites)} data-center sites"),
        "out_of_sample.png": lambda p: plot_out_of_sample(summary, evaluations, p),
        "dispatch.png": lambda p: plot_dispatch(data, profile, worst, {n: evaluations[n, "in-sample"] for n in plans},
                                                samples["in-sample"].settings.window_min, p),
    }
    if frontier_rows:
        drawn["frontier.png"] = lambda p: plot_frontier(frontier_rows, summary, p)
    return figure_bytes(drawn)


def _money(value: float) -> str:
    return f"{value:,.0f} $"


def _bounds(p: Mapping[str, Any]) -> str:
    """Where a plan's bounds come from: one MILP's incumbent and bound, or the scenario groups'."""
    if p.get("groups"):
        return f"{p['groups']} scenario groups: lower bound {_money(p['milp_bound_usd'])}"
    return f"MILP: incumbent {_money(p['milp_objective_usd'])}, bound {_money(p['milp_bound_usd'])}"


def _proof(status: str, gap: float) -> str:
    """What the MILP proved: optimal within its gap, or, stopped early, only how far from its bound."""
    if status == "optimal":
        return f"optimal within a gap of {gap:.2%}"
    return f"NOT proven optimal: stopped at the time limit {gap:.2%} from its bound; raise plan.time_limit_s"


def _within(value: float, interval: Sequence[float | None], spec: str) -> str:
    """``value ± half-width`` of its 95 % interval (the wider side, for a share clipped at 0 or 1)."""
    if interval[0] is None or interval[1] is None:
        return format(value, spec)
    half = max(value - interval[0], interval[1] - value)
    return f"{format(value, spec)} ± {format(half, spec)}"


def plan_report(summary: Mapping[str, Any]) -> str:
    """What the study found, for the terminal: the plans, then how they hold up."""
    from sim.report.text import format_table

    lines = []
    for name, p in summary["plans"].items():
        label = "Sample plan" if name == "sample" else f"Distributionally robust plan (radius {p['dro_radius']:g})"
        stock = "; ".join(f"{hub}: " + ", ".join(f"{n} {m}" for m, n in units.items())
                          for hub, units in p["units_by_hub"].items()) or "no modules"
        lines.append(f"{label}, lambda {p['lambda']:g}, alpha {p['alpha']:g}: hubs {', '.join(p['open_hubs']) or 'none'}"
                     f" ({stock}); plan cost {_money(p['plan_cost_usd'])}, objective {_money(p['objective_usd'])} "
                     f"re-evaluated ({_bounds(p)}, {_proof(p['status'], p['mip_gap'])})")
    headers = ["plan", "scenarios", "E[cost] ($)", "CVaR ($)", "worst case ($)", "E[ENS] (MWh)", "CVaR ENS (MWh)",
               "max ENS (MWh)", "hit sites stabilized"]
    rows = []
    for name, by_sample in summary["evaluation"].items():
        for label, row in by_sample.items():
            rows.append((f"{name}, {label}", f"{row['scenarios']:,}",
                         _within(row["expected_cost_usd"], row["expected_cost_ci_usd"], ",.0f"),
                         _within(row["cvar_usd"], row["cvar_ci_usd"], ",.0f"), f"{row['worst_case_mean_cvar_usd']:,.0f}",
                         _within(row["expected_ens_mwh"], row["expected_ens_ci_mwh"], ".3f"),
                         f"{row['cvar_ens_mwh']:.3f}", f"{row['max_ens_mwh']:.3f}",
                         _within(row["stabilized_share"], row["stabilized_share_ci"], ".1%")))
    limits = summary.get("feeder_limits")
    if limits:
        lines.append(f"Feeder limits: {len(limits['rows'])} rows a shock can reach ({', '.join(limits['rows'])}); "
                     f"voltage {limits['v_min_pu']:g} to {limits['v_max_pu']:g} p.u., lowest "
                     f"{limits['lowest_voltage_before_shocks_pu']:.4f} p.u. before any shock; E[ENS] includes the load "
                     "shed to stay within them: " + ", ".join(
                         f"{name}, {label} {row['expected_shed_mwh']:.3f} MWh"
                         for name, by_sample in summary["evaluation"].items() for label, row in by_sample.items()))
    sections = ["\n".join(lines),
                "Stage II costs of each plan (CVaR at alpha; worst case: mean-CVaR over the ambiguity set; "
                "± the half-width of a 95 % interval):\n"
                + format_table(headers, rows, [False] + [True] * 8)]
    if summary["frontier"]:
        frontier = [(f"{r['lambda']:g}", f"{r['plan_cost_usd']:,.0f}", f"{r['expected_total_usd']:,.0f}",
                     f"{r['cvar_total_usd']:,.0f}", str(r["units"]), r["hubs"] or "-") for r in summary["frontier"]]
        sections.append("Cost-CVaR frontier (in-sample, $):\n" + format_table(
            ["lambda", "plan cost", "E[total]", "CVaR total", "units", "hubs"], frontier,
            [True, True, True, True, True, False]))
    return "\n\n".join(sections)


def command(args: argparse.Namespace, progress: Progress) -> int:
    """`dcmarket plan CONFIG`."""
    return study_command(args, "plan", lambda config: run_plan_study(
        config, args.config.parent, frontier=not args.no_frontier, plots=not args.no_plots, progress=progress,
        workers=args.workers, scheduler=args.scheduler), "Plan")


def _check_after_auction(config: ExperimentConfig, config_path: Path) -> Network:
    """The [plan] network, loaded once, and its catalogue checked: a bad [plan] fails before the auction."""
    with named_after(config_path):
        _, network = plan_network(config, config_path.parent)
        catalogue(config.plan, network)
    return network


def _after_auction(model: Market, summary: dict[str, Any], config: ExperimentConfig, config_path: Path,
                   network: Network, progress: Progress) -> tuple[dict[str, Any], StudyResult]:
    """The DSO plans flexible capacity modules for the sites that won flexible capacity ([plan]
    sites, when given, replace them)."""
    plan = config.plan
    sites = None
    if plan.sites is None:
        sites = model.dso.sites_to_protect(model.products, summary["allocation"],
                                           SiteDefaults(plan.stabilize_min, plan.imbalance_cost_per_mwh))
        if not sites:
            raise ConfigError(f"{config_path}: plan: the auction sold no flexible capacity, so there is no site "
                              "to plan for; list [[plan.sites]] or remove [plan]")
    progress("flexible-capacity plan for the auction's sites")
    with named_after(config_path):
        study = run_plan_study(config, config_path.parent, sites=sites, network=network, progress=progress)
    section = {"directory": outputs.PLAN_FOLDER, "sites_from": "auction" if sites else "config",
               "sites": study.summary["sites"], "plans": study.summary["plans"]}
    return section, study


AFTER_AUCTION = AfterAuction("plan", outputs.PLAN_FOLDER,
                             "Flexible-capacity plan for the sites that won flexible capacity",
                             _check_after_auction, _after_auction)
