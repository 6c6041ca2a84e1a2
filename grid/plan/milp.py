"""The two-stage mean-CVaR MILP of flexible capacity modules: docs/models/plan.md#fcm-3, whose
(F-1) to (F-16) are the (1) to (16) below.

Stage I (1)-(4): open staging hubs (z_d) and ship units of each module type from suppliers to
hubs (y_{l,d,g}). Stage II (5)-(12), per demand-shock scenario s: send units from hubs to the
data-center sites (x_{i,d,l}), dispatch them minute by minute within their power, state of
charge, ramp and energy limits, and declare a site stabilized (u_i) when its modules arrive and
cover its imbalance within T_stab(i).

Our readings of what the paper leaves open, each marked [ours] where it is applied:
- (7) with time steps: the need of site i at step k is the shock's deviation, split into what a
  module must supply (a surge) and what it must absorb (a drop); the power served at each step is
  at most that need. Storage serves both directions, generators and demand response only surges.
- A unit from hub d is at site i from tau_{d,i} minutes after the site's event starts.
- (8): t_i >= tau_{d,i} w_{i,d} for every hub that sends units (x <= M w), and a stabilized site
  has its need fully covered at every step from T_stab(i) after its event starts. The model
  carries (8) with t and w eliminated (see `_add_stage_two`); t_i is read back as the last
  arrival.
- A unit's energy and ramp count from its arrival: a late unit cannot lend them to the units
  already at the site.
- T_i in (5)/(13) is how long the site is disturbed in the scenario (onset to recovery).
- Risk (1), mean-CVaR: (1 - lambda) E[Q] + lambda CVaR_alpha(Q), CVaR linearized as (15)-(16).
- Distributionally robust (docs/models/plan.md#fcm-4): the same risk term at its worst over a
  total-variation ball of radius delta around the empirical scenario probabilities, replaced by
  the dual of that inner LP (derived in `_risk_term`), so the model stays one MILP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pyomo.environ as pyo

from grid.errors import GridError
from grid.memory_guard import check_plan_memory
from grid.plan.data import ModuleType, PlanData
from grid.plan.shocks import ShockScenarios
from grid.solvers.solve import MilpOutcome, solve_milp

Stock = Callable[[int, int], object]  # (hub, module) -> units there: a Pyomo expression or a number


@dataclass(frozen=True)
class RiskSettings:
    """The risk term of (1): weight lambda of CVaR against the mean, CVaR level alpha, and the
    total-variation radius delta of the ambiguity set (0: the sample model)."""

    lam: float
    alpha: float
    radius: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.lam <= 1.0:
            raise GridError(f"plan.lambda: {self.lam!r} is outside [0, 1]; 0 is risk-neutral, 1 pure CVaR")
        if not 0.0 <= self.alpha < 1.0:
            raise GridError(f"plan.alpha: {self.alpha!r} is outside [0, 1); e.g. 0.9 averages the worst 10 %")
        if not 0.0 <= self.radius <= 1.0:
            raise GridError(f"plan.dro_radius: {self.radius!r} is outside [0, 1] (a total-variation distance)")


@dataclass(frozen=True)
class Shipment:
    module: str
    hub: str
    supplier: str
    units: int


@dataclass(frozen=True)
class Plan:
    """A Stage I decision: the hubs opened and the units shipped to them."""

    open_hubs: tuple[str, ...]
    shipments: tuple[Shipment, ...]
    setup_cost: float  # $, sum_d c_d z_d
    transport_cost: float  # $, sum b_l s_gd y_{l,d,g}

    @property
    def cost(self) -> float:
        return self.setup_cost + self.transport_cost

    def stock(self, data: PlanData) -> np.ndarray:
        """Units at each hub, by (hub, module)."""
        hubs = {h.name: d for d, h in enumerate(data.hubs)}
        modules = {m.name: k for k, m in enumerate(data.modules)}
        out = np.zeros((len(data.hubs), len(data.modules)), dtype=int)
        for s in self.shipments:
            out[hubs[s.hub], modules[s.module]] += s.units
        return out

    def key(self) -> tuple:
        return (self.open_hubs, tuple(sorted((s.module, s.hub, s.supplier, s.units) for s in self.shipments)))


def plan_from_choice(data: PlanData, open_hubs: Sequence[str], units: dict[tuple[str, str, str], int]) -> Plan:
    """A Plan from hub names and units by (module, hub, supplier), with its Stage I cost (1)."""
    hubs = {h.name: h for h in data.hubs}
    modules = {m.name: m for m in data.modules}
    suppliers = {s.name: s for s in data.suppliers}
    shipments = tuple(Shipment(l, d, g, int(n)) for (l, d, g), n in sorted(units.items()) if n > 0)
    transport = math.fsum(modules[s.module].transport_cost_per_km * suppliers[s.supplier].distance_km[s.hub] * s.units
                          for s in shipments)
    setup = math.fsum(hubs[d].setup_cost for d in open_hubs)
    return Plan(tuple(d for d in (h.name for h in data.hubs) if d in set(open_hubs)), shipments, setup, transport)


@dataclass(frozen=True)
class _SiteEvent:
    """One (scenario, site) with a disturbance, and the steps where it needs modules."""

    scenario: int
    site: int
    steps: np.ndarray  # step indices k0..k1 (contiguous)
    up: np.ndarray  # MW to supply at each of those steps
    down: np.ndarray  # MW to absorb
    onset_min: float
    disturbed_h: float


def _event_ranges(shocks: ShockScenarios) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where Stage II has work: per (scenario, site), whether it has an event, and the first and
    last step with a non-zero deviation (a zero crossing inside an event stays in it)."""
    active = np.abs(shocks.deviation_mw) > 1e-12
    hit = active.any(axis=2)
    first = np.argmax(active, axis=2)
    last = active.shape[2] - 1 - np.argmax(active[:, :, ::-1], axis=2)
    return hit, first, last


def event_steps(shocks: ShockScenarios) -> int:
    """Site-steps that Stage II models: from each event's first to its last non-zero step."""
    hit, first, last = _event_ranges(shocks)
    return int(np.where(hit, last - first + 1, 0).sum())


def _site_events(shocks: ShockScenarios) -> list[_SiteEvent]:
    hit, first, last = _event_ranges(shocks)
    up, down = shocks.need_up_mw(), shocks.need_down_mw()
    events = []
    for s, i in zip(*np.nonzero(hit)):
        steps = np.arange(first[s, i], last[s, i] + 1)
        events.append(_SiteEvent(int(s), int(i), steps, up[s, i, steps], down[s, i, steps],
                                 float(shocks.onset_min[s, i]), float(shocks.disturbed_h[s, i])))
    return events


@dataclass
class _StageTwo:
    """Handles on the Stage II components, to read results back per scenario."""

    events: list[_SiteEvent]
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
    two = _StageTwo(_site_events(shocks), [0.0] * shocks.count, {}, {}, {}, {})
    by_scenario_hub_module: dict[tuple[int, int, int], list] = {}
    for e, ev in enumerate(two.events):
        _add_event(m, data, step_min, e, ev, two, by_scenario_hub_module)
    # (6): units sent from a hub, over all sites, are at most its stock (per scenario and type).
    for (s, d, k), vars_ in by_scenario_hub_module.items():
        m.stage_two.add(sum(vars_) <= stock(d, k))
    return two


def _add_event(m: pyo.ConcreteModel, data: PlanData, step_min: float, e: int, ev: _SiteEvent, two: _StageTwo,
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


def _add_units(m: pyo.ConcreteModel, data: PlanData, ev: _SiteEvent, u: object, e: int, two: _StageTwo,
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


def _add_flows(rows: _EventRows, module: ModuleType, ev: _SiteEvent, up_by_step: dict[int, list],
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


def _risk_term(m: pyo.ConcreteModel, cost: list, risk: RiskSettings) -> object:
    """Mean-CVaR of the scenario costs, at its worst over the total-variation ball.

    Sample model (radius 0), (14)-(16): (1 - lambda) sum_s p_s Q_s + lambda (zeta + sum_s p_s eta_s / (1 - alpha)),
    eta_s >= Q_s - zeta, eta_s >= 0.

    DRO [ours, docs/models/plan.md#eq-f-dro-dual]: with v_s = (1 - lambda) Q_s + lambda eta_s /
    (1 - alpha), the worst case over {p >= 0, sum p = 1, 1/2 sum |p_s - phat_s| <= delta} is
    lambda zeta + sup_p sum_s p_s v_s (the sup and the min over zeta swap: the ball is compact and
    the function is linear in p, convex in zeta).
    Writing p = phat + a - b with a, b >= 0 (rows: sum a - sum b = 0 [mu], sum a + sum b <= 2 delta
    [kappa], b_s - a_s <= phat_s [nu_s]), the inner LP's dual is
        sum_s phat_s v_s + min 2 delta kappa + sum_s phat_s nu_s
        s.t. mu + kappa - nu_s >= v_s (column a_s),  nu_s >= mu - kappa - v_s (column b_s),  nu, kappa >= 0,
    and the first row reads mu + kappa >= v_s (nu_s > 0 only where mu - kappa > v_s, where it holds
    anyway), so the whole model stays one MILP. At delta = 0, kappa grows until nu = 0: the sample
    model; at delta = 1 the optimum is max_s v_s (every distribution is in the ball).
    """
    count = len(cost)
    phat = 1.0 / count
    m.zeta = pyo.Var()
    m.eta = pyo.Var(range(count), domain=pyo.NonNegativeReals)
    m.risk_rows = pyo.ConstraintList()
    for s, q in enumerate(cost):
        m.risk_rows.add(m.eta[s] >= q - m.zeta)
    values = [(1 - risk.lam) * q + risk.lam * m.eta[s] / (1 - risk.alpha) for s, q in enumerate(cost)]
    nominal = risk.lam * m.zeta + phat * sum(values)
    if risk.radius == 0:
        return nominal
    m.mu = pyo.Var()
    m.kappa = pyo.Var(domain=pyo.NonNegativeReals)
    m.nu = pyo.Var(range(count), domain=pyo.NonNegativeReals)
    for s, v in enumerate(values):
        m.risk_rows.add(m.mu + m.kappa >= v)
        m.risk_rows.add(m.nu[s] >= m.mu - m.kappa - v)
    return nominal + 2 * risk.radius * m.kappa + phat * sum(m.nu[s] for s in range(count))


@dataclass(frozen=True)
class PlanSolution:
    """The optimal plan of one model, its objective (1) and how the solve went."""

    plan: Plan
    risk: RiskSettings
    objective: float  # $, Stage I cost + risk term
    risk_term: float  # $, the (worst-case) mean-CVaR of the Stage II costs
    solve: MilpOutcome
    scenarios: int


def solve_plan(data: PlanData, shocks: ShockScenarios, risk: RiskSettings, *, solver: str = "highs",
               mip_gap: float = 1e-4, time_limit: float | None = None) -> PlanSolution:
    """Build and solve the two-stage MILP (1)-(16); return the Stage I plan."""
    if shocks.count == 0:
        raise GridError("plan.scenarios: no shock scenarios; give at least one")
    check_plan_memory(event_steps(shocks), shocks.count)
    m = pyo.ConcreteModel(name="fcm_two_stage")
    hubs, modules, suppliers = data.hubs, data.modules, data.suppliers
    inventory = data.inventory()
    distance = data.distance()
    m.z = pyo.Var(range(len(hubs)), domain=pyo.Binary)
    routes = [(k, d, g) for k in range(len(modules)) for d in range(len(hubs)) for g in range(len(suppliers))
              if inventory[g, k] > 0 and math.isfinite(distance[g, d])]
    m.y = pyo.Var(routes, domain=pyo.NonNegativeIntegers)
    for k, d, g in routes:
        m.y[k, d, g].setub(int(min(inventory[g, k], hubs[d].capacity_units)))
    m.stage_one = pyo.ConstraintList()
    for g in range(len(suppliers)):  # (2)
        for k in range(len(modules)):
            shipped = [m.y[r] for r in routes if r[0] == k and r[2] == g]
            if shipped:
                m.stage_one.add(sum(shipped) <= int(inventory[g, k]))
    for d, hub in enumerate(hubs):  # (3)
        shipped = [m.y[r] for r in routes if r[1] == d]
        if shipped:
            m.stage_one.add(sum(shipped) <= hub.capacity_units * m.z[d])
    setup = sum(hub.setup_cost * m.z[d] for d, hub in enumerate(hubs))
    transport = sum(modules[k].transport_cost_per_km * distance[g, d] * m.y[k, d, g] for k, d, g in routes)

    def stock(d: int, k: int) -> object:
        shipped = [m.y[r] for r in routes if r[0] == k and r[1] == d]
        return sum(shipped) if shipped else 0

    stage_two = _add_stage_two(m, data, shocks, stock)
    risk_expr = _risk_term(m, stage_two.cost, risk)
    m.objective = pyo.Objective(expr=setup + transport + risk_expr, sense=pyo.minimize)
    outcome = solve_milp(m, solver, mip_gap=mip_gap, time_limit=time_limit, what="the flexible-capacity plan",
                         more_time="raise plan.time_limit_s, or lower plan.scenarios")
    chosen = {}
    for k, d, g in routes:
        n = int(round(pyo.value(m.y[k, d, g])))
        if n > 0:
            chosen[modules[k].name, hubs[d].name, suppliers[g].name] = n
    open_hubs = [h.name for d, h in enumerate(hubs) if pyo.value(m.z[d]) > 0.5]
    plan = plan_from_choice(data, open_hubs, chosen)
    return PlanSolution(plan, risk, outcome.objective, outcome.objective - plan.cost, outcome, shocks.count)


@dataclass(frozen=True)
class Evaluation:
    """Stage II of a fixed plan, scenario by scenario: each Q_s at its own optimum."""

    cost: np.ndarray  # (S,) $, Q_s
    uncovered_mwh: np.ndarray  # (S, sites) imbalance energy not covered
    ens_mwh: np.ndarray  # (S, sites) energy not served (13)
    stabilized: np.ndarray  # (S, sites) bool; True where there was no event
    arrival_min: np.ndarray  # (S, sites) t_i: last module arrival after the event starts; NaN if none sent
    dispatch: list[dict]  # units sent: scenario, site bus, hub, module, units
    # Minute by minute, when asked: scenario, bus, minute, deviation_mw, then per module type its
    # power (MW, + supplied, - absorbed).
    profiles: list[dict] = field(default_factory=list)


# Units sent cost nothing in (5), so among dispatches of equal cost the solver could send any
# number of idle units: each unit sent carries this tie-break ($, plus as much again per hour of
# travel), so that the units reported (and t_i) are the fewest and nearest that achieve Q_s. It can
# leave at most this much of imbalance cost uncovered per unit; Q_s is reported without it.
UNIT_TIE_BREAK_USD = 0.01


def evaluate_plan(data: PlanData, plan: Plan, shocks: ShockScenarios, *, solver: str = "highs",
                  batch: int = 50, mip_gap: float = 1e-9, profiles: bool = False,
                  progress: Callable[[str], None] = lambda _: None) -> Evaluation:
    """Solve Stage II with the plan's stock fixed, ``batch`` scenarios per MILP.

    Scenarios are independent once Stage I is fixed, so a batch's total is minimised by
    minimising each Q_s; batches keep each model small.
    """
    stock_units = plan.stock(data)
    count, sites = shocks.count, len(data.sites)
    cost = np.zeros(count)
    uncovered = np.zeros((count, sites))
    ens = np.zeros((count, sites))
    stabilized = np.ones((count, sites), dtype=bool)
    arrival = np.full((count, sites), np.nan)
    dispatch: list[dict] = []
    profile_rows: list[dict] = []
    for start in range(0, count, batch):
        rows = list(range(start, min(count, start + batch)))
        part = shocks.subset(rows)
        m = pyo.ConcreteModel(name="fcm_stage_two")
        st = _add_stage_two(m, data, part, lambda d, k: int(stock_units[d, k]))
        if not st.events:
            continue  # no event in this batch: nothing to dispatch, every Q_s is 0
        idle = sum(UNIT_TIE_BREAK_USD * (1.0 + data.travel_min[d, st.events[e].site] / 60.0) * var
                   for (e, d, _), var in st.units.items())
        m.objective = pyo.Objective(expr=sum(st.cost) + idle, sense=pyo.minimize)
        solve_milp(m, solver, mip_gap=mip_gap, what="Stage II of the plan")
        for s, q in enumerate(st.cost):
            cost[rows[s]] = pyo.value(q)
        step_h = shocks.settings.step_min / 60.0
        for e, ev in enumerate(st.events):
            s = rows[ev.scenario]
            site = data.sites[ev.site]
            need = float((ev.up.sum() + ev.down.sum()) * step_h)
            uncovered[s, ev.site] = max(0.0, need - pyo.value(st.served[e]))
            ok = pyo.value(st.stabilized[e]) > 0.5
            stabilized[s, ev.site] = ok
            ens[s, ev.site] = 0.0 if ok else site.load_mw * ev.disturbed_h
        for (e, d, k), var in sorted(st.units.items(), key=lambda item: item[0]):
            n = int(round(pyo.value(var)))
            if n > 0:
                ev = st.events[e]
                # t_i: the last arrival among the hubs that send units ([ours] under (8),
                # docs/models/plan.md#eq-f-8).
                s = rows[ev.scenario]
                arrival[s, ev.site] = np.fmax(arrival[s, ev.site], data.travel_min[d, ev.site])
                dispatch.append({"scenario": rows[ev.scenario], "bus": data.sites[ev.site].bus,
                                 "hub": data.hubs[d].name, "module": data.modules[k].name, "units": n})
        if profiles:
            profile_rows += _profile_rows(data, part, st, rows)
        if count > batch:
            progress(f"Stage II: {rows[-1] + 1:,} of {count:,} scenarios")
    return Evaluation(cost, uncovered, ens, stabilized, arrival, dispatch, profile_rows)


def _profile_rows(data: PlanData, shocks: ShockScenarios, st: _StageTwo, rows: Sequence[int]) -> list[dict]:
    """The dispatch of each disturbed site, minute by minute, from a solved Stage II model."""
    step_min = shocks.settings.step_min
    out = []
    for e, ev in enumerate(st.events):
        power = np.zeros((len(data.modules), len(ev.steps)))
        for k in range(len(data.modules)):
            if (e, k) not in st.flows:
                continue
            up_vars, down_vars = st.flows[e, k]
            for j in range(len(ev.steps)):
                up = pyo.value(up_vars[j]) if up_vars[j] is not None else 0.0
                down = pyo.value(down_vars[j]) if down_vars[j] is not None else 0.0
                power[k, j] = up - down
        for j, step in enumerate(ev.steps):
            row = {"scenario": rows[ev.scenario], "bus": data.sites[ev.site].bus, "minute": float(step * step_min),
                   "deviation_mw": round(float(shocks.deviation_mw[ev.scenario, ev.site, step]), 9) + 0.0}
            row.update({f"{m.name}_mw": round(float(power[k, j]), 9) + 0.0 for k, m in enumerate(data.modules)})
            out.append(row)
    return out
