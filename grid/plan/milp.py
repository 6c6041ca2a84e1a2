"""The two-stage mean-CVaR MILP of flexible capacity modules: docs/models/plan.md#fcm-3, whose
(F-1) to (F-16) are the (1) to (16) below.

Stage I (1)-(4): open staging hubs (z_d) and ship units of each module type from suppliers to
hubs (y_{l,d,g}). Stage II (5)-(13), per demand-shock scenario, is grid.plan.stage_two's rows,
coupled to Stage I by the stock at each hub (6); its readings of what the paper leaves open are
listed there. The risk term:
- Risk (1), mean-CVaR: (1 - lambda) E[Q] + lambda CVaR_alpha(Q), CVaR linearized as (15)-(16).
- Distributionally robust (docs/models/plan.md#fcm-4): the same risk term at its worst over a
  total-variation ball of radius delta around the empirical scenario probabilities, replaced by
  the dual of that inner LP (derived in `_risk_term`), so the model stays one MILP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pyomo.environ as pyo

from grid.errors import GridError
from grid.memory_guard import check_plan_memory
from grid.plan.data import PlanData
from grid.plan.dispatch import BATCH, Evaluation, Mapper, evaluate_stock
from grid.plan.shocks import ShockScenarios
from grid.plan.stage_two import event_steps, stage_two_rows
from grid.plan.stage_two_pyomo import add_stage_two
from grid.solvers.solve import MilpOutcome, solve_milp


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


def _risk_term(m: pyo.ConcreteModel, cost: list, risk: RiskSettings, weighted: int | None = None) -> object:
    """Mean-CVaR of the scenario costs, at its worst over the total-variation ball.

    ``weighted``: only the first so many scenarios carry probability (1 / weighted each); the others
    are in the ball's support at probability 0, so that the worst case may move mass onto them
    (their rows mu + kappa >= v_s), which is all they do (docs/models/plan.md#eq-f-tail).

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
    weighted = count if weighted is None else weighted
    if risk.radius == 0 and weighted < count:
        raise ValueError("scenarios at probability 0 change only the worst case over a ball of positive radius")
    phat = 1.0 / weighted
    m.zeta = pyo.Var()
    m.eta = pyo.Var(range(count), domain=pyo.NonNegativeReals)
    m.risk_rows = pyo.ConstraintList()
    for s, q in enumerate(cost):
        m.risk_rows.add(m.eta[s] >= q - m.zeta)
    values = [(1 - risk.lam) * q + risk.lam * m.eta[s] / (1 - risk.alpha) for s, q in enumerate(cost)]
    nominal = risk.lam * m.zeta + phat * sum(values[:weighted])
    if risk.radius == 0:
        return nominal
    m.mu = pyo.Var()
    m.kappa = pyo.Var(domain=pyo.NonNegativeReals)
    m.nu = pyo.Var(range(weighted), domain=pyo.NonNegativeReals)
    for s, v in enumerate(values):
        m.risk_rows.add(m.mu + m.kappa >= v)
        if s < weighted:  # (column b_s: no mass to take from a scenario at probability 0)
            m.risk_rows.add(m.nu[s] >= m.mu - m.kappa - v)
    return nominal + 2 * risk.radius * m.kappa + phat * sum(m.nu[s] for s in range(weighted))


@dataclass(frozen=True)
class PlanSolution:
    """The optimal plan of one model, its objective (1) and how the solve went."""

    plan: Plan
    risk: RiskSettings
    objective: float  # $, Stage I cost + risk term
    risk_term: float  # $, the (worst-case) mean-CVaR of the Stage II costs
    solve: MilpOutcome
    scenarios: int
    # 0: one MILP. Else the number of scenario groups (grid.plan.groups): then ``solve`` holds the
    # groups' bounds, the plan's exact objective as the incumbent and their lower bound as the bound.
    groups: int = 0


@dataclass
class StageOne:
    """Stage I (1)-(4) in a Pyomo model: z, y and their costs, and the stock each hub holds."""

    routes: list[tuple[int, int, int]]  # (module, hub, supplier) with a y variable
    setup: object  # sum_d c_d z_d
    transport: object  # sum b_l s_gd y_{l,d,g}

    def stock(self, m: pyo.ConcreteModel, d: int, k: int) -> object:
        shipped = [m.y[r] for r in self.routes if r[0] == k and r[1] == d]
        return sum(shipped) if shipped else 0

    def plan(self, m: pyo.ConcreteModel, data: PlanData) -> Plan:
        """The plan at the model's current values."""
        chosen = {}
        for k, d, g in self.routes:
            n = int(round(pyo.value(m.y[k, d, g])))
            if n > 0:
                chosen[data.modules[k].name, data.hubs[d].name, data.suppliers[g].name] = n
        open_hubs = [h.name for d, h in enumerate(data.hubs) if pyo.value(m.z[d]) > 0.5]
        return plan_from_choice(data, open_hubs, chosen)


def add_stage_one(m: pyo.ConcreteModel, data: PlanData) -> StageOne:
    """z_d (binary), y_{l,d,g} (integer, within the supplier's inventory and the hub's room),
    inventories (2) and hub limits (3)."""
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
    return StageOne(routes, setup, transport)


def solve_plan(data: PlanData, shocks: ShockScenarios, risk: RiskSettings, *, solver: str = "highs",
               mip_gap: float = 1e-4, time_limit: float | None = None, aggregate: bool = True,
               weighted: int | None = None) -> PlanSolution:
    """Build and solve the two-stage MILP (1)-(16); return the Stage I plan. ``weighted``: see `_risk_term`."""
    if shocks.count == 0:
        raise GridError("plan.scenarios: no shock scenarios; give at least one")
    check_plan_memory(event_steps(shocks), shocks.count)
    m = pyo.ConcreteModel(name="fcm_two_stage")
    one = add_stage_one(m, data)
    stage_two = add_stage_two(m, stage_two_rows(data, shocks, aggregate=aggregate), lambda d, k: one.stock(m, d, k))
    risk_expr = _risk_term(m, stage_two.cost, risk, weighted)
    m.objective = pyo.Objective(expr=one.setup + one.transport + risk_expr, sense=pyo.minimize)
    outcome = solve_milp(m, solver, mip_gap=mip_gap, time_limit=time_limit, what="the flexible-capacity plan",
                         more_time="raise plan.time_limit_s, or lower plan.scenarios")
    plan = one.plan(m, data)
    return PlanSolution(plan, risk, outcome.objective, outcome.objective - plan.cost, outcome,
                        shocks.count if weighted is None else weighted)


def evaluate_plan(data: PlanData, plan: Plan, shocks: ShockScenarios, *, solver: str = "highs",
                  profiles: bool = False, aggregate: bool = True, mapper: Mapper | None = None,
                  batch: int = BATCH, progress: Callable[[str], None] = lambda _: None) -> Evaluation:
    """Stage II of ``plan`` on every scenario of ``shocks`` (grid.plan.dispatch)."""
    return evaluate_stock(data, plan.stock(data), shocks, solver=solver, profiles=profiles, aggregate=aggregate,
                          mapper=mapper, batch=batch, progress=progress)
