"""The price-taking schedule (docs/models/dlmp.md#eq-d-22): the aggregator's day with the prices
held, as a scheduler that reads a price forecast would plan it.

    min  sum_t sum_d sum_phi  ( lambda^P_d,phi,t + tan(acos pf_d) lambda^Q_d,phi,t ) PDC_d,t / 3
                            + lambda^P_d,phi,t (CH_d,t - DIS_d,t) / 3                               ($)
    s.t. (D-19) PDC from the steps, (D-20) each hour's work, (D-21) each job within its window,
         (D-28) each battery's charge CH and discharge DIS within its ratings, back where it began

with the prices lambda fixed (the study holds them at the DLMPs of the uncoordinated day). No
KKT: the schedule does not see that its own load moves the prices, which is what the bilevel
problem adds. The DSO's OPF then prices it like any other schedule.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pyomo.environ as pyo

from grid.errors import GridError
from grid.feeder.bilevel import DataCenterSite, Decision, add_storage
from grid.feeder.workloads import Battery, SiteLoad, WorkPlan
from grid.solvers.solve import MilpOutcome, solve_milp


def price_taking_schedule(prices_p: Sequence[Mapping[int, np.ndarray]], prices_q: Sequence[Mapping[int, np.ndarray]],
                          sites: tuple[DataCenterSite, ...], loads: Mapping[int, SiteLoad], plan: WorkPlan, *,
                          solver: str = "highs", time_limit: float | None = None,
                          batteries: Mapping[int, Battery] | None = None
                          ) -> tuple[tuple[Decision, ...], dict[str, tuple[int, ...]], MilpOutcome]:
    """Per hour the decision, per job its steps per hour, and the MILP's outcome. ``prices_p``
    and ``prices_q`` give, per hour, each site's prices per phase ($/MWh, $/Mvarh); ``batteries``
    (by site bus, D-28) draw at power factor 1 at the active prices."""
    if not len(prices_p) == len(prices_q) == plan.periods:
        raise GridError(f"price-taking schedule: prices for {len(prices_p)} hours, work for {plan.periods}")
    plan.check([loads[s.bus] for s in sites])
    hours = range(plan.periods)
    m = pyo.ConcreteModel(name="price_taking")
    m.steps = pyo.Var([(s.bus, t) for s in sites for t in hours], domain=pyo.NonNegativeIntegers,
                      bounds=lambda _, bus, t: (loads[bus].low, loads[bus].high))
    slots = [(j, t) for j, job in enumerate(plan.jobs) for t in range(job.release, job.deadline + 1)]
    m.batch = pyo.Var(slots, domain=pyo.NonNegativeIntegers, bounds=lambda _, j, t: (0, plan.jobs[j].steps))
    m.work = pyo.ConstraintList()
    for t in hours:
        m.work.add(sum(m.steps[s.bus, t] for s in sites)
                   == plan.interactive[t] + sum(m.batch[j, u] for j, u in slots if u == t))
    for j, job in enumerate(plan.jobs):
        m.work.add(sum(m.batch[k, t] for k, t in slots if k == j) == job.steps)
    stored = add_storage(m, dict(batteries or {}), plan.periods)
    cost = 0.0
    for (bus, t), draw in stored.items():   # MW at $/MWh, a third on each phase
        cost += float(np.sum(prices_p[t][bus])) / 3.0 * draw
    for t in hours:
        for s in sites:
            # $/MWh x kW / 1e3 per phase, a third of the site's load on each.
            price = float(np.sum(prices_p[t][s.bus] + s.kvar_per_kw * prices_q[t][s.bus])) / 3e3
            cost += price * (loads[s.bus].idle_kw + loads[s.bus].step_kw * m.steps[s.bus, t])
    m.cost = pyo.Objective(expr=cost, sense=pyo.minimize)
    outcome = solve_milp(m, solver, mip_gap=1e-9, time_limit=time_limit, what="the price-taking schedule")
    decisions = tuple(Decision({s.bus: loads[s.bus].kw(round(pyo.value(m.steps[s.bus, t]))) for s in sites}, {},
                               {bus: 1e3 * float(pyo.value(stored[bus, t])) for bus in (batteries or {})})
                      for t in hours)
    placed = {job.name: tuple(round(pyo.value(m.batch[j, t])) if job.release <= t <= job.deadline else 0
                              for t in hours) for j, job in enumerate(plan.jobs)}
    return decisions, placed, outcome
