"""What the firm (1)-(3) and flexible (4)/(17) capacity models share.

Both models limit the same things, once per bus and line with a finite limit:

* the withdrawal at bus i, ``c_i + p_i <= w_i`` (1b)/(4b);
* the flow on line l, ``(H(c + p))_l <= f_l`` (1c, upper)/(4c) and ``>= -f_l`` (1c, lower)/(4d).

Each is a `LimitRow`: ``a . c + b - limit <= 0``, where ``a`` holds the coefficients of the
candidate capacities and ``b`` the background term (``p_i``, ``(Hp)_l`` or ``-(Hp)_l``). The firm
model keeps ``b`` at its worst case over the box, the flexible model keeps its samples and bounds
its CVaR. Both are then solved in the same stages, each holding the optimum of the one before:
minimise the unserved ratio (1a)/(17a); maximise the total capacity (Theorem 1 / Proposition 1);
then a leximin on the unserved ratios (D_i - c_i)/D_i. The later stages only pick one answer where
(1a) has many optima, so that every solver returns the same capacities.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pyomo.environ as pyo

from grid.errors import GridError, InfeasibleNetworkError, SolverError
from grid.network import Network
from grid.scenarios import Scenarios
from grid.solvers import forget_solver, solve

# A row counts as binding when its slack is below this fraction of its limit (at least 1e-6 MW).
_BINDING_TOL = 1e-6


@dataclass(frozen=True)
class CapacityResult:
    """Capacities per bus (every bus of the network, in bus order; 0.0 off the candidates).

    ``unserved_ratio`` is the optimal value of (1a)/(17a); ``binding`` names the limits that hold
    with equality at the answer, e.g. "withdrawal limit at bus 4" or "line 1-2 upper limit".
    """

    model: str
    capacity_mw: dict[int, float]
    unserved_ratio: float
    binding: tuple[str, ...]
    solver: str


@dataclass(frozen=True)
class Candidates:
    """The buses with a data-center request (the complement of N_0) and their demand D_i."""

    buses: tuple[int, ...]       # in network bus order
    positions: np.ndarray        # their columns in the network's bus order
    demand_mw: np.ndarray        # D_i > 0


@dataclass(frozen=True, eq=False)
class LimitRow:
    """One limit, as ``coefficients . c[columns] + background - limit_mw <= 0`` (see module doc).

    ``background_mw`` holds the background values the LP sees (firm: the single worst case;
    flexible: the scenarios it keeps) and ``risk_mw`` their worst case (firm) or CVaR (flexible),
    which is what the limit effectively leaves for data centers.
    """

    kind: str                    # "withdrawal" | "upper" | "lower"
    label: str                   # bus number or line name
    limit_mw: float
    columns: np.ndarray          # candidate positions (into Candidates.buses) with a coefficient
    coefficients: np.ndarray
    background_mw: np.ndarray
    risk_mw: float

    @property
    def name(self) -> str:
        if self.kind == "withdrawal":
            return f"withdrawal limit at bus {self.label}"
        return f"line {self.label} {self.kind} limit"

    @property
    def limit_text(self) -> str:
        sign = "-" if self.kind == "lower" else ""
        return f"{sign}{self.limit_mw:.6g} MW"

    def load_at(self, capacities: np.ndarray) -> float:
        """The capacity term a . c for capacities indexed like Candidates.buses."""
        return float(self.coefficients @ capacities[self.columns]) if self.columns.size else 0.0

    def describe_background(self, risk_text: str) -> str:
        """'withdrawal limit at bus 3 (40 MW) is below the worst-case background load 45 MW'."""
        if self.kind == "withdrawal":
            return (f"{self.name} ({self.limit_text}) is below the {risk_text} background load "
                    f"{self.risk_mw:.6g} MW")
        if self.kind == "upper":
            return (f"{self.name} ({self.limit_text}) is below the {risk_text} background flow "
                    f"{self.risk_mw:.6g} MW")
        return (f"{self.name} ({self.limit_text}) is above the {risk_text} background flow "
                f"{-self.risk_mw:.6g} MW")


# Adds the model-specific limit constraints to a Pyomo model; ``slack`` (elastic copy only) is an
# indexed non-negative variable, one per row, that relaxes that row.
AddLimits = Callable[[pyo.ConcreteModel, Sequence[LimitRow], "pyo.Var | None"], None]


def check_inputs(network: Network, scenarios: Scenarios, demand_mw: Mapping[int, float]) -> Candidates:
    """Validate the shared inputs; the candidate set is the keys of ``demand_mw``."""
    if not isinstance(network, Network):
        raise GridError(f"network must be a grid.network.Network, got {type(network).__name__}")
    if not isinstance(scenarios, Scenarios):
        raise GridError(f"scenarios must be a grid.scenarios.Scenarios, got {type(scenarios).__name__}")
    if tuple(scenarios.buses) != network.bus_numbers:
        raise GridError(
            f"scenarios do not match network {network.name!r}: {_first_difference(scenarios.buses, network.bus_numbers)}; "
            "build the scenarios from this network"
        )
    if not demand_mw:
        raise GridError("demand_mw is empty; give D > 0 for at least one candidate bus")
    for bus, demand in demand_mw.items():
        network.bus_index(bus)  # GridError naming the unknown bus
        if isinstance(demand, bool) or not isinstance(demand, numbers.Real) or not (
            math.isfinite(demand) and demand > 0
        ):
            raise GridError(
                f"data-center demand at bus {bus} must be a finite number > 0 MW (got {demand!r}); "
                "leave buses without requests out of demand_mw"
            )
    buses = tuple(b for b in network.bus_numbers if b in demand_mw)
    return Candidates(
        buses=buses,
        positions=np.array([network.bus_index(b) for b in buses], dtype=int),
        demand_mw=np.array([float(demand_mw[b]) for b in buses]),
    )


def _first_difference(scenario_buses: Sequence[int], network_buses: Sequence[int]) -> str:
    if len(scenario_buses) != len(network_buses):
        return f"they cover {len(scenario_buses)} buses, the network has {len(network_buses)}"
    position = next(i for i, (a, b) in enumerate(zip(scenario_buses, network_buses)) if a != b)
    return (f"column {position + 1} is bus {scenario_buses[position]} but the network's bus "
            f"{position + 1} is {network_buses[position]}")


def finite_limits(network: Network) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the buses and lines with a finite limit (infinite ones cannot bind)."""
    buses = np.array(
        [i for i, bus in enumerate(network.buses) if math.isfinite(bus.withdrawal_limit_mw)], dtype=int
    )
    lines = np.array(
        [i for i, line in enumerate(network.lines) if math.isfinite(line.thermal_limit_mw)], dtype=int
    )
    return buses, lines


def limit_rows(
    network: Network,
    shift: np.ndarray,
    candidates: Candidates,
    bus_rows: np.ndarray,
    line_rows: np.ndarray,
    withdrawal: tuple[np.ndarray, np.ndarray],
    upper: tuple[np.ndarray, np.ndarray],
    lower: tuple[np.ndarray, np.ndarray],
) -> list[LimitRow]:
    """Assemble the rows; each background pair is (values (M, n_rows), risk (n_rows,)).

    Order: withdrawal limits in bus order, then each line's upper and lower limit in line order.
    """
    rows: list[LimitRow] = []
    candidate_of_bus = {int(p): k for k, p in enumerate(candidates.positions)}
    for j, bus_pos in enumerate(bus_rows):
        k = candidate_of_bus.get(int(bus_pos))
        rows.append(LimitRow(
            kind="withdrawal",
            label=str(network.buses[bus_pos].number),
            limit_mw=float(network.buses[bus_pos].withdrawal_limit_mw),
            columns=np.array([] if k is None else [k], dtype=int),
            coefficients=np.array([] if k is None else [1.0]),
            background_mw=withdrawal[0][:, j],
            risk_mw=float(withdrawal[1][j]),
        ))
    on_candidates = shift[np.ix_(line_rows, candidates.positions)] if line_rows.size else None
    for j, line_pos in enumerate(line_rows):
        line = network.lines[line_pos]
        coefficients = on_candidates[j]
        columns = np.flatnonzero(coefficients)
        for kind, sign, (values, risk) in (("upper", 1.0, upper), ("lower", -1.0, lower)):
            rows.append(LimitRow(
                kind=kind,
                label=line.name,
                limit_mw=float(line.thermal_limit_mw),
                columns=columns,
                coefficients=sign * coefficients[columns],
                background_mw=values[:, j],
                risk_mw=float(risk[j]),
            ))
    return rows


def split_constant_rows(
    network: Network, rows: Sequence[LimitRow], risk_text: str
) -> list[LimitRow]:
    """Check the rows no candidate can affect numerically and return the others.

    A row without candidate coefficients cannot shape the capacities, but if its background alone
    breaks the limit no allocation is feasible, so it is reported here by name.
    """
    for row in rows:
        if row.columns.size == 0 and row.risk_mw - row.limit_mw > 1e-9 * (1.0 + abs(row.limit_mw)):
            raise InfeasibleNetworkError(
                f"infeasible network {network.name!r}: {row.describe_background(risk_text)} even with "
                "no data-center load; raise the limit or lower the load bounds"
            )
    return [row for row in rows if row.columns.size]


def check_bounded(candidates: Candidates, rows: Sequence[LimitRow]) -> None:
    """A candidate that no finite limit pushes back on could take unlimited capacity in stage 2.

    Only a positive coefficient caps c_k from above, so a candidate without one in any row is
    unbounded. (The converse can fail in meshed networks; stage 2 catches that case.)
    """
    capped = np.zeros(len(candidates.buses), dtype=bool)
    for row in rows:
        capped[row.columns[row.coefficients > 0]] = True
    if not capped.all():
        bus = candidates.buses[int(np.argmin(capped))]
        raise GridError(_unbounded_message(bus))


def needed_rows(rows: Sequence[LimitRow], floors: np.ndarray) -> list[LimitRow]:
    """Drop rows that hold for every c >= floors, so the LP stays small.

    A row whose coefficients are all <= 0 only gains slack as capacities grow; if it holds at the
    floors it holds everywhere. In a radial network this removes one of the two flow limits of
    every line (the direction data-center load cannot push).
    """
    kept = []
    for row in rows:
        if np.all(row.coefficients <= 0):
            at_floors = float(row.coefficients @ floors[row.columns]) + row.risk_mw - row.limit_mw
            if at_floors <= 1e-9 * (1.0 + abs(row.limit_mw)):
                continue
        kept.append(row)
    return kept


def _unbounded_message(bus: int) -> str:
    return (
        f"data-center capacity at bus {bus} is unbounded: no finite withdrawal or line limit caps it; "
        f"set withdrawal_limit_mw on bus {bus}"
    )


def _build(
    candidates: Candidates,
    floors: np.ndarray,
    rows: Sequence[LimitRow],
    add_limits: AddLimits,
    elastic: bool,
) -> pyo.ConcreteModel:
    """The LP of (1)/(17) with the epigraph of (.)^+; elastic: minimise the row slacks instead."""
    m = pyo.ConcreteModel()
    n = len(candidates.buses)
    demand = candidates.demand_mw
    m.c = pyo.Var(range(n), bounds=lambda _, k: (float(floors[k]), None))
    # u_k >= (D_k - c_k)^+ through two linear rows; minimising sum u/D makes it an equality.
    m.u = pyo.Var(range(n), within=pyo.NonNegativeReals)
    m.epigraph = pyo.Constraint(range(n), rule=lambda m, k: m.u[k] >= float(demand[k]) - m.c[k])
    m.unserved = pyo.Expression(expr=sum(m.u[k] * (1.0 / float(demand[k])) for k in range(n)))
    if elastic:
        m.slack = pyo.Var(range(len(rows)), within=pyo.NonNegativeReals)
        add_limits(m, rows, m.slack)
        m.objective = pyo.Objective(expr=sum(m.slack[r] for r in range(len(rows))))
    else:
        add_limits(m, rows, None)
        m.objective = pyo.Objective(expr=m.unserved)  # (1a) / (17a)
    return m


def _solve_holding(
    m: pyo.ConcreteModel, solver: str, name: str, expr, value: float, *, upper: bool
) -> str:
    """Hold the previous stage's optimum (expr <= value, or >= value), then solve the next stage.

    Holding the optimum exactly keeps a later stage from trading capacity between buses inside
    a tolerance (a shift of tol / |1/D_i - 1/D_j| MW); the looser retries only guard against a
    solver that finds the exact hold infeasible through round-off.
    """
    status = "infeasible"
    for tolerance in (0.0, 1e-9, 1e-6):
        slack = tolerance * (1.0 + abs(value))
        bound = expr <= value + slack if upper else expr >= value - slack
        m.add_component(name, pyo.Constraint(expr=bound))
        status = solve(m, solver)
        if status != "infeasible":
            return status
        m.del_component(name)
        forget_solver(m)
    return status


def _require_optimal(status: str, solver: str, what: str) -> None:
    if status != "optimal":
        raise SolverError(f"solver {solver!r} reported {what} {status}; try the other solver")


def _leximin_unserved(
    m: pyo.ConcreteModel, candidates: Candidates, solver: str, model_name: str, total: float
) -> None:
    """Leximin on the unserved ratios r_k = (D_k - c_k) / D_k, with the total capacity held.

    Minimise the worst ratio t over the candidates not yet fixed; a candidate at t that cannot
    get below t while the others stay at or below t is fixed at t (at least one always is);
    repeat for the rest. The leximin vector is unique on a convex set and r_k fixes c_k, so every
    solver ends at the same capacities, and shortage is shared as evenly as the limits allow.
    Solves: one per level plus one per candidate found at its level's worst ratio.
    """
    what = f"the leximin stage of the {model_name} capacity LP"
    n = len(candidates.buses)
    demand = [float(d) for d in candidates.demand_mw]

    def ratio(k: int):
        return (demand[k] - m.c[k]) / demand[k]

    m.worst = pyo.Var()
    m.worst_ratio = pyo.Constraint(range(n), rule=lambda m, k: m.worst >= ratio(k))
    m.fairness = pyo.Objective(expr=m.worst)
    m.improve = pyo.Objective(expr=m.worst)
    m.improve.deactivate()
    free = list(range(n))
    level = 0
    while free:
        m.fairness.activate()
        if level == 0:
            status = _solve_holding(m, solver, "hold_total", m.total.expr, total, upper=False)
        else:
            status = solve(m, solver)
        _require_optimal(status, solver, what)
        m.fairness.deactivate()
        worst = float(pyo.value(m.worst))
        tol = 1e-7 * (1.0 + abs(worst))
        at_worst = [k for k in free if float(pyo.value(ratio(k))) >= worst - tol]
        # Hold the level while testing, one candidate at a time, who is stuck at it.
        level_hold = pyo.Constraint(expr=m.worst <= worst + 1e-10 * (1.0 + abs(worst)))
        m.add_component(f"hold_level_{level}", level_hold)
        m.improve.activate()
        stuck = []
        for k in at_worst:
            m.improve.set_value(ratio(k))
            _require_optimal(solve(m, solver), solver, what)
            if float(pyo.value(ratio(k))) >= worst - tol:
                stuck.append(k)
        m.improve.deactivate()
        level_hold.deactivate()
        for k in stuck or at_worst:  # one is always stuck; round-off must not loop forever
            # r_k <= worst, with r_k >= worst proven: r_k = worst from now on.
            m.add_component(f"hold_ratio_{k}", pyo.Constraint(expr=ratio(k) <= worst + 1e-10 * (1.0 + abs(worst))))
            m.worst_ratio[k].deactivate()
            free.remove(k)
        level += 1
    # Every capacity is now pinned; one last solve loads a point that meets every hold.
    m.pinned = pyo.Objective(expr=sum(m.c[k] for k in m.c), sense=pyo.maximize)
    _require_optimal(solve(m, solver), solver, what)


def solve_capacity(
    model_name: str,
    network: Network,
    candidates: Candidates,
    floors: np.ndarray,
    rows: Sequence[LimitRow],
    add_limits: AddLimits,
    solver: str,
    risk_text: str,
) -> CapacityResult:
    """Min unserved ratio (1a); then, holding each optimum in turn: max total capacity, then a
    leximin on the unserved ratios. The later stages only settle ties."""
    check_bounded(candidates, rows)
    lp_rows = needed_rows(rows, floors)
    m = _build(candidates, floors, lp_rows, add_limits, elastic=False)
    status = solve(m, solver)
    if status == "infeasible":
        _diagnose_infeasible(network, candidates, floors, lp_rows, add_limits, solver, risk_text)
    _require_optimal(status, solver, f"the {model_name} capacity LP")
    best = float(pyo.value(m.unserved))

    # Stage 2 (Theorem 1 / Proposition 1): among the minimisers of (1a), take the largest total.
    m.objective.deactivate()
    m.total = pyo.Objective(expr=sum(m.c[k] for k in m.c), sense=pyo.maximize)
    status = _solve_holding(m, solver, "hold_unserved", m.unserved, best, upper=True)
    if status == "unbounded":
        _raise_unbounded(m, candidates, lp_rows, solver)
    _require_optimal(status, solver, f"stage 2 of the {model_name} capacity LP")

    # Stage 3 settles ties that (1a) and the total leave open (e.g. equal demands sharing a line).
    total = float(pyo.value(m.total))
    m.total.deactivate()
    _leximin_unserved(m, candidates, solver, model_name, total)

    values = np.array([pyo.value(m.c[k]) for k in range(len(candidates.buses))], dtype=float)
    values = np.maximum(values, floors)  # solver round-off below a bound
    capacity = {bus: 0.0 for bus in network.bus_numbers}
    for bus, value in zip(candidates.buses, values):
        capacity[bus] = float(value)
    unserved = float(np.sum(np.maximum(candidates.demand_mw - values, 0.0) / candidates.demand_mw))
    return CapacityResult(
        model=model_name,
        capacity_mw=capacity,
        unserved_ratio=unserved,
        binding=_binding(candidates, floors, rows, values),
        solver=solver,
    )


def _binding(
    candidates: Candidates, floors: np.ndarray, rows: Sequence[LimitRow], values: np.ndarray
) -> tuple[str, ...]:
    """Names of the limits that hold with equality, judged from the numbers, not solver duals.

    For the flexible model this uses CVaR(a.c + b) = a.c + CVaR(b), so it does not depend on which
    of the many optimal eta the solver returned.
    """
    names = [
        row.name
        for row in rows
        if row.load_at(values) + row.risk_mw - row.limit_mw >= -_BINDING_TOL * max(1.0, row.limit_mw)
    ]
    names += [
        f"firm capacity floor at bus {bus}"
        for bus, value, floor in zip(candidates.buses, values, floors)
        if floor > 0 and value - floor <= _BINDING_TOL * max(1.0, floor)
    ]
    return tuple(names)


def _diagnose_infeasible(
    network: Network,
    candidates: Candidates,
    floors: np.ndarray,
    rows: Sequence[LimitRow],
    add_limits: AddLimits,
    solver: str,
    risk_text: str,
) -> None:
    """Name the limit that fails: an elastic copy minimises the total relaxation over all rows."""
    m = _build(candidates, floors, rows, add_limits, elastic=True)
    if solve(m, solver) != "optimal":
        raise InfeasibleNetworkError(
            f"infeasible network {network.name!r}: no data-center allocation meets every limit "
            f"(solver {solver!r} could not locate the failing limit)"
        )
    slack = np.array([pyo.value(m.slack[r]) for r in range(len(rows))], dtype=float)
    worst = int(np.argmax(slack))
    row = rows[worst]
    others = int(np.sum(slack > 1e-7 * (1.0 + np.array([r.limit_mw for r in rows])))) - 1
    also = f" ({others} other limit{'s also fail' if others != 1 else ' also fails'})" if others > 0 else ""
    if row.risk_mw - row.limit_mw > 1e-9 * (1.0 + row.limit_mw):
        text = f"{row.describe_background(risk_text)} even with no data-center load"
    else:
        floor_text = " that keeps the firm capacities" if np.any(floors > 0) else ""
        text = (
            f"{row.name} ({row.limit_text}) cannot hold under the {risk_text} background load: the "
            f"least-violating data-center allocation{floor_text} still exceeds it by {slack[worst]:.4g} MW"
        )
    fix = "raise the limit or lower the load bounds"
    if np.any(floors > 0):
        fix = "raise the limit, lower the load bounds or use firm capacities computed for these scenarios"
    raise InfeasibleNetworkError(f"infeasible network {network.name!r}: {text}{also}; {fix}")


def _raise_unbounded(m: pyo.ConcreteModel, candidates: Candidates, rows: Sequence[LimitRow], solver: str) -> None:
    """Stage 2 ran away (possible in meshed networks whose shift factors cancel): name a bus.

    Capping every capacity at a huge value turns the ray into a vertex; the buses that reach the
    cap are the unbounded ones.
    """
    scale = max([1.0] + [row.limit_mw for row in rows] + list(candidates.demand_mw))
    cap = 1e6 * scale
    for k in m.c:
        m.c[k].setub(cap)
    if solve(m, solver) == "optimal":
        for k, bus in enumerate(candidates.buses):
            if pyo.value(m.c[k]) >= 0.5 * cap:
                raise GridError(_unbounded_message(bus))
    raise GridError(
        "data-center capacity is unbounded at some candidate bus: no finite limit caps it; "
        "set withdrawal_limit_mw on the candidate buses"
    )
