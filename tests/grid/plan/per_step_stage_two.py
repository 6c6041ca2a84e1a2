"""Stage II written step by step in Pyomo, as the model stood before grid.plan.stage_two: the
reference the sparse rows and their exact reduction over stretches are held to. It was checked
then against a separately written Stage II and a monolithic MILP (issue 21's review), and every
hand-computed cost in test_milp.py ran through it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyomo.environ as pyo

from grid.plan.data import ModuleType, PlanData
from grid.plan.shocks import ShockScenarios
from grid.plan.stage_two import SiteEvent, site_events
from grid.solvers.solve import solve_milp

Stock = Callable[[int, int], object]


@dataclass
class _StageTwo:
    """Handles on the Stage II components, to read results back per scenario."""

    events: list[SiteEvent]
    cost: list  # Q_s per scenario, Pyomo expressions
    served: dict  # event index -> expression of MWh covered
    units: dict  # (event index, hub, module) -> x variable
    flows: dict  # (event index, module) -> (power supplied, power absorbed) variables per step (None: 0)
    stabilized: dict  # event index -> u variable


@dataclass
class _EventRows:
    """What one site event's rows share while they are added: its model, its step length, the
    units that arrived by each step per module kind, and the flow variables per step."""

    m: pyo.ConcreteModel
    add: Callable
    step_min: float
    arrived: list  # per step: the units arrived so far (0 before the first)
    up: list  # per step: power supplied (None: 0)
    down: list  # per step: power absorbed (None: 0)
    # Whether the event's last step is the window's: then nothing follows it in the model (F-12).
    to_window_end: bool = False

    @property
    def step_h(self) -> float:
        return self.step_min / 60.0


def _add_stage_two(m: pyo.ConcreteModel, data: PlanData, shocks: ShockScenarios, stock: Stock) -> _StageTwo:
    """Stage II (5)-(13) for every scenario; ``stock(d, l)`` couples it to Stage I (6)."""
    step_min = shocks.settings.step_min
    m.x = pyo.VarList(domain=pyo.NonNegativeIntegers)
    m.u = pyo.VarList(domain=pyo.Binary)
    m.p = pyo.VarList(domain=pyo.NonNegativeReals)
    m.soc = pyo.VarList(domain=pyo.NonNegativeReals)
    m.stage_two = pyo.ConstraintList()
    two = _StageTwo(site_events(shocks), [0.0] * shocks.count, {}, {}, {}, {})
    by_scenario_hub_module: dict[tuple[int, int, int], list] = {}
    for e, ev in enumerate(two.events):
        _add_event(m, data, step_min, e, ev, two, by_scenario_hub_module)
    # (6): units sent from a hub, over all sites, are at most its stock (per scenario and type).
    for (s, d, k), vars_ in by_scenario_hub_module.items():
        m.stage_two.add(sum(vars_) <= stock(d, k))
    return two


def _add_event(m: pyo.ConcreteModel, data: PlanData, step_min: float, e: int, ev: SiteEvent, two: _StageTwo,
               by_scenario_hub_module: dict[tuple[int, int, int], list]) -> None:
    """The rows of one site event: units sent (8), flows per module (7), each module kind's
    limits (10)-(12), coverage when stabilized, and its share of the scenario's cost (5), (13)."""
    add = m.stage_two.add
    site = data.sites[ev.site]
    minutes = ev.steps * step_min - ev.onset_min
    u = m.u.add()
    two.stabilized[e] = u
    x = _add_units(m, data, ev, u, e, two, by_scenario_hub_module)
    tau = data.travel_min[:, ev.site]
    to_window_end = int(ev.steps[-1]) >= round(data.window_min / step_min) - 1
    up_by_step: dict[int, list] = {}
    down_by_step: dict[int, list] = {}
    for k, module in enumerate(data.modules):
        keys = [d for d in range(len(data.hubs)) if (d, k) in x]
        if not keys:
            continue
        rows = _EventRows(m, add, step_min,
                          [sum(x[d, k] for d in keys if tau[d] <= minutes[j]) for j in range(len(ev.steps))],
                          [None] * len(ev.steps), [None] * len(ev.steps), to_window_end)
        two.flows[e, k] = (rows.up, rows.down)
        _add_flows(rows, module, ev, up_by_step, down_by_step)
        # A unit brings its energy and ramp only when it arrives: limits follow arrived[j], not
        # the fleet sent, so a late unit cannot lend its energy to the ones already there.
        MODULE_ROWS[module.kind](rows, module)
    # (7) at each step: served power is at most the need.
    for need, by_step in ((ev.up, up_by_step), (ev.down, down_by_step)):
        for j, vars_ in by_step.items():
            if len(vars_) > 1:
                add(sum(vars_) <= float(need[j]))
    # Stabilized (u = 1): the need is covered at every step from T_stab after the event starts.
    for j in range(len(ev.steps)):
        if minutes[j] < site.stabilize_min:
            continue
        if ev.up[j] > 0:
            add(sum(up_by_step.get(j, [])) >= float(ev.up[j]) * u)
        if ev.down[j] > 0:
            add(sum(down_by_step.get(j, [])) >= float(ev.down[j]) * u)
    step_h = step_min / 60.0
    supplied_total = sum(v for vars_ in up_by_step.values() for v in vars_) + \
        sum(v for vars_ in down_by_step.values() for v in vars_)
    need_mwh = float((ev.up.sum() + ev.down.sum()) * step_h)
    two.served[e] = supplied_total * step_h
    # (5): imbalance left uncovered at P_i, plus ENS (13) at gamma.
    two.cost[ev.scenario] = two.cost[ev.scenario] + site.imbalance_cost_per_mwh * (need_mwh - two.served[e]) \
        + data.ens_cost_per_mwh * site.load_mw * ev.disturbed_h * (1 - u)


def _add_units(m: pyo.ConcreteModel, data: PlanData, ev: SiteEvent, u: object, e: int, two: _StageTwo,
               by_scenario_hub_module: dict[tuple[int, int, int], list]) -> dict[tuple[int, int], object]:
    """Units x sent from each hub in time, per module type that can serve the event (7), (8).

    (8) in projected form: t_i >= tau_{d,i} w_{i,d}, x <= M w and t_i <= T_stab(i) + M (1 - u_i)
    say together that a stabilized site gets no units from a hub slower than T_stab(i), which
    is x <= M (1 - u_i) for those hubs. Eliminating t and w keeps the same feasible plans
    and a tighter relaxation; t_i (the last arrival) is read back from x.
    """
    tau = data.travel_min[:, ev.site]
    stabilize_min = data.sites[ev.site].stabilize_min
    x = {}
    for d in range(len(data.hubs)):
        if tau[d] >= data.window_min:
            continue
        for k, module in enumerate(data.modules):
            if not module.absorbs and not ev.up.any():
                continue  # (7): this type cannot serve a drop
            bound = data.unit_bound(d, k)
            if bound == 0:
                continue
            var = m.x.add()
            var.setub(bound)
            x[d, k] = var
            two.units[e, d, k] = var
            by_scenario_hub_module.setdefault((ev.scenario, d, k), []).append(var)
            if tau[d] > stabilize_min:
                m.stage_two.add(var <= bound * (1 - u))
    return x


def _add_flows(rows: _EventRows, module: ModuleType, ev: SiteEvent, up_by_step: dict[int, list],
               down_by_step: dict[int, list]) -> None:
    """Power each module type supplies (and absorbs) per step, at most what its arrived units carry."""
    for j in range(len(ev.steps)):
        if ev.up[j] > 0:
            rows.up[j] = rows.m.p.add()
            rows.up[j].setub(float(ev.up[j]))
            up_by_step.setdefault(j, []).append(rows.up[j])
        if module.absorbs and ev.down[j] > 0:
            rows.down[j] = rows.m.p.add()
            rows.down[j].setub(float(ev.down[j]))
            down_by_step.setdefault(j, []).append(rows.down[j])
        flow = [v for v in (rows.up[j], rows.down[j]) if v is not None]
        if flow:
            if isinstance(rows.arrived[j], (int, float)):
                for v in flow:
                    v.fix(0.0)  # nothing has arrived yet
            else:
                rows.add(sum(flow) <= module.unit_mw * rows.arrived[j])


def add_storage(rows: _EventRows, module: ModuleType) -> None:
    """(10)-(11): state of charge of the units at the site, each arriving at initial_soc."""
    assert module.energy_mwh is not None
    level: object = 0.0
    before: object = 0
    for j, arrived in enumerate(rows.arrived):
        if isinstance(arrived, (int, float)):
            continue  # no unit here yet
        change = module.initial_soc * module.energy_mwh * (arrived - before)
        if rows.down[j] is not None:
            change = change + module.eta_charge * rows.down[j] * rows.step_h
        if rows.up[j] is not None:
            change = change - rows.up[j] * rows.step_h / module.eta_discharge
        soc = rows.m.soc.add()
        rows.add(soc == level + change)
        rows.add(soc <= module.energy_mwh * arrived)
        level, before = soc, arrived


def add_generator(rows: _EventRows, module: ModuleType) -> None:
    """(12): |p_{t+1} - p_t| <= R_max per unit present within the window: from zero before the
    event, and back to zero after it when the window goes on (docs/models/plan.md#eq-f-12); an
    event that runs to the window's end has no step after it, so no ramp down."""
    assert module.ramp_mw_per_min is not None
    steps = len(rows.arrived)
    previous: object = 0.0
    for j in range(steps if rows.to_window_end else steps + 1):
        current = rows.up[j] if j < steps and rows.up[j] is not None else 0.0
        present = rows.arrived[min(j, steps - 1)]
        if not (isinstance(current, float) and isinstance(previous, float)):
            ramp = module.ramp_mw_per_min * rows.step_min * present
            rows.add(current - previous <= ramp)
            rows.add(previous - current <= ramp)
        previous = current


def add_demand_response(rows: _EventRows, module: ModuleType) -> None:
    """Demand response: the energy curtailed so far is at most that of the units arrived."""
    assert module.energy_mwh is not None
    used: object = 0.0
    for j, arrived in enumerate(rows.arrived):
        if rows.up[j] is None or isinstance(arrived, (int, float)):
            continue
        total = rows.m.soc.add()
        rows.add(total == used + rows.up[j] * rows.step_h)
        rows.add(total <= module.energy_mwh * arrived)
        used = total


# Each module kind's own rows (grid.plan.data.MODULE_KINDS), one function per kind.
MODULE_ROWS: dict[str, Callable[[_EventRows, ModuleType], None]] = {
    "storage": add_storage,
    "generator": add_generator,
    "demand_response": add_demand_response,
}


def reference_costs(data: PlanData, stock: np.ndarray, shocks: ShockScenarios, solver: str = "highs") -> np.ndarray:
    """Q_s of every scenario with the plan's ``stock`` fixed, one MILP per scenario."""
    out = np.zeros(shocks.count)
    for s in range(shocks.count):
        m = pyo.ConcreteModel()
        st = _add_stage_two(m, data, shocks.subset([s]), lambda d, k: int(stock[d, k]))
        if not st.events:
            continue
        m.objective = pyo.Objective(expr=sum(st.cost), sense=pyo.minimize)
        solve_milp(m, solver, mip_gap=1e-9, what="the reference Stage II")
        out[s] = pyo.value(st.cost[0])
    return out
