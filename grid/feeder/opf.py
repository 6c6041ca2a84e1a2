"""The DSO's three-phase OPF on LinDist3Flow and its DLMPs (docs/models/dlmp.md#dlmp-2,
docs/models/dlmp.md#dlmp-3).

    min  sum_phi c0 P0_phi + sum_g sum_phi (a_g PG_g,phi^2 + b_g PG_g,phi)                 ($/h)
    s.t. (lambda^P_j,phi) inflow - outflow + PG at j = load + data-center load            j != head
         (lambda^Q_j,phi) the same for reactive power, less the SVG's injection
         w_j = w_i + M^P P_ij + M^Q Q_ij                      (grid.feeder.lindist3flow, per segment)
         w_head = V0^2 (the regulator as a fixed head voltage), w_min <= w_j <= w_max
         0 <= PG_g,phi <= PGmax_g
         -Pmax_ij,phi <= P_ij,phi <= Pmax_ij,phi   with line limits, each rated segment (eq-d-29)

The DLMP of bus j and phase phi is lambda^P_j,phi: what one more kW of load there costs per hour,
reported in $/MWh. LinDist3Flow is lossless, so while no voltage limit binds every DLMP equals
the substation price c0 (when no generator is at the margin); a binding limit makes prices differ
by location and phase. Data-center load and SVG injections are parameters here; the aggregator's
bilevel problem (next) makes them decisions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import pyomo.environ as pyo

from grid.errors import GridError, InfeasibleNetworkError
from grid.feeder.dlmp_parts import DlmpParts, dlmp_parts
from grid.feeder.inputs import DistributedGenerator, OpfSettings, line_bounds_kw, phases_at
from grid.feeder.lindist3flow import add_voltage_rows
from grid.network.three_phase import PHASE_NAMES, ThreePhaseFeeder
from grid.solvers.solve import solve

PHASES = range(3)
# How far outside its reach (kW) a flow's bound sits in a model given the reach: far enough above
# the KKT system's round-off margin (grid/solvers/kkt.py IMPLIED_MARGIN, in MW) that the bound's
# multiplier is left out.
REACH_MARGIN_KW = 1.0


@dataclass(frozen=True, eq=False)
class OpfResult:
    cost_per_h: float  # $/h
    voltage_pu: dict[int, np.ndarray] = field(repr=False)
    dlmp_p: dict[int, np.ndarray] = field(repr=False)  # $/MWh by bus (not the head), per phase
    dlmp_q: dict[int, np.ndarray] = field(repr=False)  # $/Mvarh
    head_kw: np.ndarray = field(repr=False)
    generator_kw: dict[str, np.ndarray] = field(repr=False)
    parts: DlmpParts | None = field(default=None, repr=False)  # each DLMP's energy, loss, congestion, voltage
    flow_kw: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)  # by segment, per phase
    flow_kvar: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)


def build_opf_model(feeder: ThreePhaseFeeder, generators: tuple[DistributedGenerator, ...] = (),
            settings: OpfSettings = OpfSettings(), *, extra_kw: Mapping[int, np.ndarray] | None = None,
            extra_kvar: Mapping[int, np.ndarray] | None = None, svg_kvar: Mapping[int, np.ndarray] | None = None,
            solver: str = "highs", decided_load_buses: tuple[int, ...] = (),
            flow_reach: Mapping[tuple[int, int, int], tuple[float, float]] | None = None) -> pyo.ConcreteModel:
    """The OPF as a Pyomo model (balances ``balance_p``/``balance_q`` by bus and phase);
    ``extra_kw``/``extra_kvar`` add load (e.g. data centers) and ``svg_kvar`` injects reactive
    power, by bus and phase. ``decided_load_buses`` get load variables ``dc_p[bus, phase]`` (MW)
    and ``dc_q[bus, phase]`` (Mvar, net of any SVG) in their balances, fixed at 0: another level
    decides them (grid.solvers.kkt ``parameters``). With ``settings.line_limits`` each rated
    segment's flow bounds are rows ``line_up``/``line_down[from, to, phase]``; ``flow_reach`` (kW,
    by the same key: the least and most flow any decision can give, docs/models/dlmp.md#eq-d-27)
    leaves out a row the flow cannot reach."""
    tables = {"extra_kw": extra_kw, "extra_kvar": extra_kvar, "svg_kvar": svg_kvar}
    _check_opf_inputs(feeder, generators, solver, tables)
    # Power in MW and Mvar inside the model (grid.feeder.lindist3flow.per_unit_scale says why); the
    # interface stays in kW. The components are declared in this order, which the solvers and the
    # KKT system's columns and rows follow.
    m = pyo.ConcreteModel(name="dso_opf")
    arcs = _add_flows(m, feeder, generators, settings)
    load_buses = [b for b in feeder.buses if b != feeder.head_bus]
    for bus in decided_load_buses:
        if bus not in load_buses:
            raise GridError(f"decided_load_buses: bus {bus} is not a load bus of {feeder.name}")
        if not feeder.is_three_phase(bus):
            raise GridError(f"decided_load_buses: bus {bus} of {feeder.name} lacks a phase; a site needs all three")
    m.dc_p = pyo.Var(list(decided_load_buses), PHASES, initialize=0.0)
    m.dc_q = pyo.Var(list(decided_load_buses), PHASES, initialize=0.0)
    m.dc_p.fix(0.0)
    m.dc_q.fix(0.0)
    _add_balances(m, feeder, generators, arcs, load_buses, decided_load_buses, tables)
    _add_line_limits(m, feeder, settings, flow_reach or {})
    m.objective = pyo.Objective(expr=_cost(m, generators, settings), sense=pyo.minimize)
    return m


def _check_opf_inputs(feeder: ThreePhaseFeeder, generators: tuple[DistributedGenerator, ...], solver: str,
                      tables: Mapping[str, Mapping[int, np.ndarray] | None]) -> None:
    """Refuse extra loads off the feeder and generators the model cannot take."""
    buses = set(feeder.buses)
    for what, table in tables.items():
        for bus, values in (table or {}).items():
            if bus not in buses:
                raise GridError(f"{what}: bus {bus} is not on {feeder.name}")
            lacking = [k for k in range(3) if values[k] and k not in feeder.bus_phases[bus]]
            if lacking:
                raise GridError(f"{what}: bus {bus} of {feeder.name} has no phase {PHASE_NAMES[lacking[0]]}")
    for g in generators:
        if g.bus not in buses or g.bus == feeder.head_bus:
            raise GridError(f"generator {g.name}: bus {g.bus} is not a load bus of {feeder.name}")
        if g.quadratic_cost > 0 and solver != "highs":
            raise GridError(f"generator {g.name}: a quadratic cost needs a QP solver; use --solver highs")


def _add_flows(m: pyo.ConcreteModel, feeder: ThreePhaseFeeder, generators: tuple[DistributedGenerator, ...],
               settings: OpfSettings) -> list[tuple[int, int]]:
    """Squared voltages, segment flows, the head's and the generators' output, and the
    LinDist3Flow voltage rows; returns the segments as (from, to) arcs."""
    arcs = [(s.from_bus, s.to_bus) for s in feeder.segments]
    low, high = settings.v_min_pu ** 2, settings.v_max_pu ** 2
    raised = {(bus, k): rise for bus, k, rise in settings.floor_raise}
    has = feeder.bus_phases
    # Declared on all three phases, and those a bus or segment lacks fixed at zero: fixed columns
    # drop out, and a three-phase feeder keeps the columns, and their order, it always had.
    m.w = pyo.Var(feeder.buses, PHASES, bounds=lambda _, bus, k: (
        (min(low + raised.get((bus, k), 0.0), high), high) if k in has[bus] else (None, None)))
    m.p = pyo.Var(arcs, PHASES)
    m.q = pyo.Var(arcs, PHASES)
    m.head = pyo.Var(PHASES)  # MW from the substation (may be negative: reverse flow)
    names = [g.name for g in generators]
    m.pg = pyo.Var(names, PHASES, bounds=lambda _, n, k: (0.0, generators[names.index(n)].max_kw_per_phase / 1e3))
    for bus in feeder.buses:
        for k in set(PHASES) - set(has[bus]):
            m.w[bus, k].fix(0.0)
    for i, j in arcs:
        for k in set(PHASES) - set(has[j]):
            m.p[i, j, k].fix(0.0)
            m.q[i, j, k].fix(0.0)
    for g in generators:
        for k in set(PHASES) - set(has[g.bus]):
            m.pg[g.name, k].fix(0.0)
    for k in PHASES:
        m.w[feeder.head_bus, k].fix(settings.head_voltage_pu ** 2)
    add_voltage_rows(m, feeder)
    return arcs


def _add_balances(m: pyo.ConcreteModel, feeder: ThreePhaseFeeder, generators: tuple[DistributedGenerator, ...],
                  arcs: list[tuple[int, int]], load_buses: list[int], decided_load_buses: tuple[int, ...],
                  tables: Mapping[str, Mapping[int, np.ndarray] | None]) -> None:
    """The nodal balances, whose duals are the DLMPs: active and reactive power at every load
    bus and phase (with the ``tables`` "extra_kw", "extra_kvar" and "svg_kvar" by bus and
    phase), and the head's active power."""

    def extra(name: str, bus: int) -> np.ndarray:
        return phases_at(tables[name], bus)

    out: dict[int, list[tuple[int, int]]] = {}
    into: dict[int, tuple[int, int]] = {}
    for i, j in arcs:
        out.setdefault(i, []).append((i, j))
        into[j] = (i, j)
    at_bus = {bus: [g.name for g in generators if g.bus == bus] for bus in feeder.buses}
    carries = {(s.from_bus, s.to_bus): s.phases for s in feeder.segments}

    def leaving(j: int, k: int) -> list[tuple[int, int]]:
        return [a for a in out.get(j, []) if k in carries[a]]

    has = feeder.bus_phases

    def balance_p(_: pyo.ConcreteModel, j: int, k: int) -> object:
        if k not in has[j]:
            return pyo.Constraint.Skip
        return (m.p[(*into[j], k)] - sum(m.p[(*a, k)] for a in leaving(j, k)) + sum(m.pg[n, k] for n in at_bus[j])
                - (m.dc_p[j, k] if j in decided_load_buses else 0.0)
                == float(feeder.load_kw[j][k] + extra("extra_kw", j)[k]) / 1e3)

    def balance_q(_: pyo.ConcreteModel, j: int, k: int) -> object:
        if k not in has[j]:
            return pyo.Constraint.Skip
        return (m.q[(*into[j], k)] - sum(m.q[(*a, k)] for a in leaving(j, k))
                - (m.dc_q[j, k] if j in decided_load_buses else 0.0)
                == float(feeder.load_kvar[j][k] + extra("extra_kvar", j)[k] - extra("svg_kvar", j)[k]) / 1e3)

    m.balance_p = pyo.Constraint(load_buses, PHASES, rule=balance_p)
    m.balance_q = pyo.Constraint(load_buses, PHASES, rule=balance_q)
    head = feeder.head_bus
    m.balance_head = pyo.Constraint(PHASES, rule=lambda _, k: (
        m.head[k] == sum(m.p[(*a, k)] for a in leaving(head, k)) + float(feeder.load_kw[head][k]) / 1e3))


def _add_line_limits(m: pyo.ConcreteModel, feeder: ThreePhaseFeeder, settings: OpfSettings,
                     reach: Mapping[tuple[int, int, int], tuple[float, float]]) -> None:
    """D-29 (docs/models/dlmp.md#eq-d-29): P_ij,phi <= Pmax (``line_up``) and P_ij,phi >= -Pmax
    (``line_down``) for each rated segment and phase, but for a side the flow cannot reach.
    Declared only with line limits, so that a model without them keeps its rows and their order."""
    bounds = line_bounds_kw(feeder, settings)
    if not bounds:
        return
    for (i, j, k), (least, most) in reach.items():
        # The flow's own range, a little wider: it never binds, and it gives each limit row's
        # slack the finite range the KKT system's big-M needs (grid/solvers/kkt.py).
        m.p[i, j, k].setlb((least - REACH_MARGIN_KW) / 1e3)
        m.p[i, j, k].setub((most + REACH_MARGIN_KW) / 1e3)
    up = [key for key, most in bounds.items() if reach.get(key, (-math.inf, math.inf))[1] > most]
    down = [key for key, most in bounds.items() if reach.get(key, (-math.inf, math.inf))[0] < -most]
    m.line_up = pyo.Constraint(up, rule=lambda _, i, j, k: m.p[i, j, k] <= bounds[i, j, k] / 1e3)
    m.line_down = pyo.Constraint(down, rule=lambda _, i, j, k: m.p[i, j, k] >= -bounds[i, j, k] / 1e3)


def _cost(m: pyo.ConcreteModel, generators: tuple[DistributedGenerator, ...], settings: OpfSettings) -> object:
    """The DSO's cost ($/h): energy from the substation and from the generators."""
    cost = sum(settings.substation_price_per_mwh * m.head[k] for k in PHASES)
    for g in generators:
        for k in PHASES:
            cost += g.cost_per_mwh * m.pg[g.name, k]
            if g.quadratic_cost > 0:  # a zero square term still makes the model a QP
                cost += g.quadratic_cost * 1e6 * m.pg[g.name, k] ** 2
    return cost


def dso_opf(feeder: ThreePhaseFeeder, generators: tuple[DistributedGenerator, ...] = (),
            settings: OpfSettings = OpfSettings(), *, extra_kw: Mapping[int, np.ndarray] | None = None,
            extra_kvar: Mapping[int, np.ndarray] | None = None, svg_kvar: Mapping[int, np.ndarray] | None = None,
            solver: str = "highs") -> OpfResult:
    """Solve the OPF (``build_opf_model``) and read its prices."""
    m = build_opf_model(feeder, generators, settings, extra_kw=extra_kw, extra_kvar=extra_kvar,
                        svg_kvar=svg_kvar, solver=solver)
    return solve_opf(m, feeder, generators, settings, solver)


def solve_opf(m: pyo.ConcreteModel, feeder: ThreePhaseFeeder, generators: tuple[DistributedGenerator, ...] = (),
              settings: OpfSettings = OpfSettings(), solver: str = "highs") -> OpfResult:
    """Solve a model of ``build_opf_model`` and read its prices. The model may be solved again
    after its fixed ``dc_p``/``dc_q`` are moved (tests enumerate decisions on one model): HiGHS
    then keeps the model between solves, each started cold (grid/solvers/solve.py, ``again``)."""
    load_buses = [b for b in feeder.buses if b != feeder.head_bus]
    if m.component("dual") is None:
        m.dual = pyo.Suffix(direction=pyo.Suffix.IMPORT)
    status = solve(m, solver, exact_check=True, again=True)
    if status != "optimal":
        raise InfeasibleNetworkError(
            f"the OPF on {feeder.name} is {status}: no dispatch keeps every voltage within "
            f"[{settings.v_min_pu:g}, {settings.v_max_pu:g}] p.u.; raise the head voltage, add generation or shed load")
    # lambda^P = d cost / d load is the dual of the balance row with the load (MW) on its
    # right-hand side: $/h per MW, that is $/MWh.
    # A phase a bus lacks has no row: its price and voltage read NaN, its rows' duals 0.
    has = feeder.bus_phases
    dlmp_p = {j: _by_phase(has[j], lambda k: m.dual[m.balance_p[j, k]]) for j in load_buses}
    dlmp_q = {j: _by_phase(has[j], lambda k: m.dual[m.balance_q[j, k]]) for j in load_buses}
    row_duals = {j: np.nan_to_num(_by_phase(has[j], lambda k: m.dual[m.voltage[j, k]])) for j in load_buses}
    head_price = np.array([m.dual[m.balance_head[k]] for k in PHASES])
    line_duals = _line_duals(m)
    return OpfResult(
        cost_per_h=float(pyo.value(m.objective)),
        voltage_pu={b: np.sqrt(_by_phase(has[b], lambda k: pyo.value(m.w[b, k]))) for b in feeder.buses},
        dlmp_p=dlmp_p,
        dlmp_q=dlmp_q,
        head_kw=1e3 * np.array([pyo.value(m.head[k]) for k in PHASES]),
        generator_kw={g.name: 1e3 * np.nan_to_num(_by_phase(has[g.bus], lambda k: pyo.value(m.pg[g.name, k])))
                      for g in generators},
        parts=dlmp_parts(feeder, head_price, row_duals, line_duals),
        flow_kw={(s.from_bus, s.to_bus): 1e3 * _by_phase(s.phases, lambda k: pyo.value(m.p[s.from_bus, s.to_bus, k]))
                 for s in feeder.segments},
        flow_kvar={(s.from_bus, s.to_bus): 1e3 * _by_phase(s.phases, lambda k: pyo.value(m.q[s.from_bus, s.to_bus, k]))
                   for s in feeder.segments},
    )


def _line_duals(m: pyo.ConcreteModel) -> dict[tuple[int, int], np.ndarray]:
    """eta+ - eta- per rated segment and phase ($/MWh, D-29): what the upper bound on its flow is
    worth less what the lower one is. Pyomo's dual of a <= row is <= 0 and of a >= row >= 0, so
    eta+ = -dual(line_up) and eta- = dual(line_down)."""
    out: dict[tuple[int, int], np.ndarray] = {}
    for name in ("line_up", "line_down"):
        rows = m.component(name)
        for (i, j, k), row in (rows.items() if rows is not None else ()):
            out.setdefault((i, j), np.zeros(3))[k] -= m.dual[row]
    return out


def _by_phase(phases: tuple[int, ...], value: Callable[[int], float]) -> np.ndarray:
    """Three values, one per phase, from ``value`` on the phases given and NaN on the others."""
    out = np.full(3, np.nan)
    for k in phases:
        out[k] = value(k)
    return out


def power_flow(feeder: ThreePhaseFeeder, head_voltage_pu: float = 1.0, solver: str = "highs") -> dict[int, np.ndarray]:
    """Per-phase voltage magnitudes (p.u.) by bus of the feeder's loads: the OPF with nothing to
    dispatch and no voltage band has one feasible point, the LinDist3Flow power flow."""
    unbounded = OpfSettings(head_voltage_pu=head_voltage_pu, v_min_pu=0.0, v_max_pu=10.0)
    return dso_opf(feeder, (), unbounded, solver=solver).voltage_pu
