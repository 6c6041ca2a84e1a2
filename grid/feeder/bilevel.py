"""The aggregator's bilevel problem as one MILP (docs/models/dlmp.md#dlmp-4 and
docs/models/dlmp.md#dlmp-5: KKT + big-M + binary expansion + McCormick).

Upper level (the data-center aggregator, docs/models/dlmp.md#dlmp-4): place ``total_kw`` of data-center load
over its member sites in whole steps, and, in the SVG case, set each site's static var generator
per phase, at least payment

    sum_sites sum_phi  lambda^P PDC + lambda^Q (QDC - QSVG) + c_svg |QSVG|          ($/h)

with PDC split evenly over the phases (a balanced three-phase connection) and QDC = tan(acos pf)
PDC (a fixed lagging power factor). Lower level: the DSO's OPF (grid/feeder/opf.py), which
sets the DLMPs lambda. The OPF is replaced by its KKT conditions (grid/solvers/kkt.py). Both decisions
are binary-expanded: a site takes n = sum_k 2^k b_k steps, an SVG phase sits at level
(sum_k 2^k c_k - L) x svg_step for L = rating / svg_step, so its output is one of -rating, ...,
0, ..., +rating. Each price x binary product gets its McCormick envelope on the price range
[-price_bound, price_bound], exact for a binary. Every big-M comes from a stated bound: the
variables' ranges (the data) and the price bound.

Among the DSO's optimal prices the model picks the ones best for the aggregator (the optimistic
bilevel convention); `aggregator_payment` prices one decision with the OPF alone, which is how
the tests enumerate.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pyomo.environ as pyo
from pyomo.common.collections import ComponentMap

from grid.errors import GridError, NoIncumbentError, SolverError
from grid.feeder.inputs import LINEARIZATIONS, DistributedGenerator, OpfSettings
from grid.feeder.opf import PHASES, OpfResult, build_opf_model
from grid.feeder.upper_level import SvgSettings, UpperLevel, voltage_tie_break
from grid.feeder.voltage_range import Injection, box_ranges, flow_ranges
from grid.feeder.workloads import Battery, SiteLoad, WorkPlan
from grid.network.three_phase import ThreePhaseFeeder
from grid.solvers.kkt import KKTSystem, kkt_system
from grid.solvers.solve import MilpOutcome, solve_milp

_TOLERANCE = 1e-9


@dataclass(frozen=True)
class DataCenterSite:
    """One member's site: its load range (three-phase kW), power factor and SVG rating."""

    bus: int
    max_kw: float
    min_kw: float = 0.0
    power_factor: float = 0.95  # lagging
    svg_kvar: float = 0.0  # SVG rating per phase (kvar); 0: no SVG at this site
    member: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.min_kw <= self.max_kw or not math.isfinite(self.max_kw):
            raise GridError(f"site at bus {self.bus}: need 0 <= min_kw <= max_kw (kW), got {self.min_kw:g} "
                            f"and {self.max_kw:g}")
        if not 0 < self.power_factor <= 1:
            raise GridError(f"site at bus {self.bus}: power_factor must be in (0, 1], got {self.power_factor:g}")
        if self.svg_kvar < 0:
            raise GridError(f"site at bus {self.bus}: svg_kvar must be >= 0 kvar, got {self.svg_kvar:g}")

    @property
    def kvar_per_kw(self) -> float:
        """tan(acos pf): the reactive power the site draws per kW."""
        return math.tan(math.acos(self.power_factor))


@dataclass(frozen=True)
class Workload:
    """What the aggregator places: ``total_kw`` (three-phase) in steps of ``step_kw``; SVG levels
    ``svg_step_kvar`` apart (per phase), each kvar of SVG output costing ``svg_cost_per_mvarh``."""

    total_kw: float
    step_kw: float
    svg_step_kvar: float = 50.0
    svg_cost_per_mvarh: float = 0.0

    def __post_init__(self) -> None:
        if not self.step_kw > 0 or not self.svg_step_kvar > 0:
            raise GridError("step_kw and svg_step_kvar must be positive")
        if self.total_kw < 0 or not _whole(self.total_kw / self.step_kw):
            raise GridError(f"total_kw: {self.total_kw:g} kW is not a whole number of {self.step_kw:g}-kW steps")
        if self.svg_cost_per_mvarh < 0:
            raise GridError("svg_cost_per_mvarh must be >= 0 $/Mvarh")


@dataclass(frozen=True, eq=False)
class Decision:
    """The aggregator's decision: three-phase kW per site (its servers), SVG output per site and
    phase (kvar, positive = injected), and a battery's net kW per site (positive = charging, at
    power factor 1; D-28)."""

    load_kw: dict[int, float]
    svg_kvar: dict[int, np.ndarray] = field(default_factory=dict)
    battery_kw: dict[int, float] = field(default_factory=dict)

    def opf_inputs(self, sites: tuple[DataCenterSite, ...]) -> dict[str, dict[int, np.ndarray]]:
        """``extra_kw``, ``extra_kvar`` and ``svg_kvar`` for the DSO's OPF, by bus and phase."""
        kvar = {s.bus: np.full(3, self.load_kw[s.bus] / 3.0) * s.kvar_per_kw for s in sites}
        kw = {s.bus: np.full(3, (self.load_kw[s.bus] + self.battery_kw.get(s.bus, 0.0)) / 3.0) for s in sites}
        svg = {bus: np.asarray(q, dtype=float) for bus, q in self.svg_kvar.items()}
        return {"extra_kw": kw, "extra_kvar": kvar, "svg_kvar": svg}


def aggregator_payment(sites: tuple[DataCenterSite, ...], decision: Decision, opf: OpfResult,
                       workload: Workload) -> float:
    """The aggregator's payment (docs/models/dlmp.md#eq-d-10) at one decision, with the OPF's prices ($/h)."""
    inputs = decision.opf_inputs(sites)
    total = 0.0
    for s in sites:
        svg = inputs["svg_kvar"].get(s.bus, np.zeros(3))
        total += float(opf.dlmp_p[s.bus] @ inputs["extra_kw"][s.bus]) / 1e3
        total += float(opf.dlmp_q[s.bus] @ (inputs["extra_kvar"][s.bus] - svg)) / 1e3
        total += workload.svg_cost_per_mvarh * float(np.abs(svg).sum()) / 1e3
    return total


def step_range(site: DataCenterSite, step_kw: float) -> tuple[int, int]:
    """The least and most whole steps the site can take."""
    return math.ceil(site.min_kw / step_kw - _TOLERANCE), math.floor(site.max_kw / step_kw + _TOLERANCE)


def load_range(sites: Sequence[DataCenterSite], step_kw: float) -> tuple[float, float]:
    """The least and most load (three-phase kW) the sites can take together, in whole steps."""
    ranges = [step_range(s, step_kw) for s in sites]
    return sum(low for low, _ in ranges) * step_kw, sum(high for _, high in ranges) * step_kw


def svg_levels(site: DataCenterSite, svg_step_kvar: float) -> int:
    """L: the SVG's output is (n - L) x svg_step for n in 0..2L."""
    levels = site.svg_kvar / svg_step_kvar
    if not _whole(levels):
        raise GridError(f"site at bus {site.bus}: svg_kvar {site.svg_kvar:g} is not a whole number of "
                        f"{svg_step_kvar:g}-kvar steps (svg_step_kvar)")
    return round(levels)


@dataclass(frozen=True, eq=False)
class BilevelResult:
    decision: Decision
    payment_per_h: float  # $/h, the upper level's objective
    prices_p: dict[int, np.ndarray]  # $/MWh at each site, per phase (the KKT model's duals)
    prices_q: dict[int, np.ndarray]  # $/Mvarh
    solve: MilpOutcome
    tie_break: str = ""  # the tie-break stage's end, as ScheduleResult.tie_break


@dataclass(frozen=True)
class Hour:
    """One period's lower level: the feeder, generators and settings of its OPF
    (grid/feeder/periods.py ``period_inputs``)."""

    feeder: ThreePhaseFeeder
    generators: tuple[DistributedGenerator, ...]
    settings: OpfSettings


# The tie-break stage's budget (branch-and-bound nodes, per period): a count, not seconds, so the
# same config gives the same decision on any machine.
TIE_BREAK_NODES = 500


@dataclass(frozen=True, eq=False)
class ScheduleResult:
    """The aggregator's day: per period its decision, its payment ($/h) and the site prices of
    the KKT model; per batch job its steps per period; the MILP's outcome."""

    decisions: tuple[Decision, ...]
    payments_per_h: tuple[float, ...]
    prices_p: tuple[dict[int, np.ndarray], ...]
    prices_q: tuple[dict[int, np.ndarray], ...]
    batch_steps: dict[str, tuple[int, ...]]
    solve: MilpOutcome
    # Per period, how the tie-break stage ended (D-16): "optimal", or "node_limit" when its budget
    # ran out first and its best decision stands; empty when the rule did not run in stages.
    tie_break: tuple[str, ...] = ()

    @property
    def payment(self) -> float:
        """$ over the periods, each 1 h."""
        return float(sum(self.payments_per_h))


# How the payment's price x decision terms become linear (docs/models/dlmp.md#eq-d-13 to
# docs/models/dlmp.md#eq-d-15).
def aggregator_bilevel(feeder: ThreePhaseFeeder, generators: tuple[DistributedGenerator, ...],
                       settings: OpfSettings, sites: tuple[DataCenterSite, ...], workload: Workload, *,
                       svg: bool, price_bound: float, linearization: str = "mccormick",
                       tie_break_rule: bool = True, solver: str = "highs",
                       time_limit: float | None = None, voltage_ranges: bool = True) -> BilevelResult:
    """The aggregator's best decision against the DSO's OPF in one period; ``svg`` lets it use
    its SVGs: ``workload.total_kw`` placed over the sites in whole ``step_kw`` steps, each site
    within its min_kw and max_kw (the schedule below with one period and no batch work).

    ``tie_break_rule`` [ours]: among decisions that cost the aggregator the same, prefer the one
    that leaves the lowest site voltage highest, then the sites' mean voltage highest. Prices are
    often flat (no voltage limit binds) and then many decisions tie, SVG settings above all;
    without a rule the solver's path would pick one. An aggregator that is indifferent supports
    the voltage. The weights (VOLTAGE_TIE_BREAK_USD, MEAN_VOLTAGE_TIE_BREAK_USD) can reorder
    decisions whose payments differ by less than 0.002 $/h.

    ``linearization``: "mccormick" writes each price x bit product with its envelope (step 4);
    "strong-duality" (step 5) writes the whole payment sum lambda x (PDC, QDC - QSVG) as the
    lower level's dual objective less its cost, which holds at every KKT point. The payment is
    exactly that sum (the data-center loads are the only parameters of the OPF), so both give
    the same optimum; the second needs a linear lower level (no quadratic generator cost) and
    no product variables.
    """
    ranges, needed = _checked_inputs(sites, workload)
    loads = {s.bus: SiteLoad(0.0, workload.step_kw, *ranges[s.bus]) for s in sites}
    day = aggregator_schedule([Hour(feeder, generators, settings)], sites, loads, WorkPlan((needed,)),
                              SvgSettings(workload.svg_step_kvar, workload.svg_cost_per_mvarh), svg=svg,
                              price_bound=price_bound, linearization=linearization, tie_break_rule=tie_break_rule,
                              solver=solver, time_limit=time_limit, voltage_ranges=voltage_ranges)
    return BilevelResult(day.decisions[0], day.payments_per_h[0], day.prices_p[0], day.prices_q[0], day.solve,
                         day.tie_break[0] if day.tie_break else "")


def aggregator_schedule(hours: Sequence[Hour], sites: tuple[DataCenterSite, ...], loads: dict[int, SiteLoad],
                        plan: WorkPlan, svg_settings: SvgSettings, *, svg: bool, price_bound: float,
                        linearization: str = "strong-duality", tie_break_rule: bool = True, solver: str = "highs",
                        time_limit: float | None = None, what: str = "the aggregator's bilevel problem",
                        payment_cap: Sequence[float] | None = None, node_limit: int | None = None,
                        voltage_ranges: bool = True, batteries: Mapping[int, Battery] | None = None,
                        battery_kw: Mapping[int, float] | None = None) -> ScheduleResult:
    """The aggregator's best day against each period's OPF, as one MILP: one KKT model per
    period (its own OPF, prices and site rows), linked by the work (docs/models/dlmp.md#eq-d-20,
    #eq-d-21): in period t the sites run the interactive steps of t and the batch steps placed
    in t; each batch job's steps are placed within its window. Each site's load follows its steps
    (``loads``, D-19). The payment is the sum of the periods' payments.

    The tie-break rule (D-16), when on. Without SVGs, in one period its voltage terms join the
    payment, as in aggregator_bilevel; over several periods nothing is left to choose once the
    steps are fixed, and the day is solved once. With SVGs it runs in stages: the day is solved
    for its payment alone first, then each period again with its steps fixed and its payment held
    at the day's (``payment_cap``, $/h per period), for the rule to choose among that period's
    equally cheap SVG settings (one period: its steps too; docs/models/dlmp.md#eq-d-16) within a
    budget of TIE_BREAK_NODES branch-and-bound nodes (``node_limit``; HiGHS), whose best decision
    stands when the budget runs out (``tie_break`` says which). The rule's tiny weights in the
    payment's MILP kept HiGHS from closing its gap in 300 s over a day on IEEE 37, and in one hour
    with ten sites on IEEE 123, where the payment alone is proven in a second.

    ``voltage_ranges``: write each voltage bound's big-M rows from what the period's decisions
    let that voltage reach (docs/models/dlmp.md#eq-d-27; a bound it cannot reach gets none);
    False writes every bound with the band's span, as the KKT system alone would.

    ``batteries`` (by site bus, D-28): each charges and discharges within its ratings over the
    periods and ends where it began; ``battery_kw`` holds a site's battery at a given net draw in a
    single period (the tie-break stage of a day)."""
    batteries, held = dict(batteries or {}), dict(battery_kw or {})
    _check_schedule(hours, sites, loads, plan, linearization)
    _check_batteries(sites, batteries, held, linearization, len(hours))
    if tie_break_rule and svg and payment_cap is None:
        return _held_tie_break(hours, sites, loads, plan, svg_settings, batteries, svg=svg, price_bound=price_bound,
                               linearization=linearization, solver=solver, time_limit=time_limit, what=what,
                               voltage_ranges=voltage_ranges)
    if tie_break_rule and len(hours) > 1 and not svg:   # with the steps fixed there is nothing left to choose
        tie_break_rule = False
    levels = {s.bus: svg_levels(s, svg_settings.step_kvar) if svg else 0 for s in sites}
    buses = [s.bus for s in sites]
    m = pyo.ConcreteModel(name="aggregator_day")
    stored = add_storage(m, batteries, len(hours))
    uppers, tie_break = [], 0.0
    for t, hour in enumerate(hours):
        injections = _injections(hour, sites, loads, levels, svg_settings, _battery_reach(batteries, held))
        lp, kkt = _lower_level(hour, tuple(buses), injections, price_bound, solver, voltage_ranges)
        upper = UpperLevel.on(kkt, lp, price_bound, mccormick=linearization == "mccormick")
        # Site by site, phase by phase: the rows and the payment's terms are written in this order,
        # which the solver's tie-breaking follows (same config, same decision).
        for s in sites:
            extra = (stored[s.bus, t] / 3.0 if s.bus in batteries else held[s.bus] / 3e3 if s.bus in held else None)
            upper.add_site(s.bus, s.kvar_per_kw, loads[s.bus], levels[s.bus], svg_settings, extra_mw=extra)
        if not upper.mccormick:
            # The balances carry the load as -dc on the left: the payment is minus the parameters' value.
            upper.payment += -kkt.parameter_value
        if tie_break_rule:
            tie_break = tie_break + voltage_tie_break(kkt, lp, buses, hour.settings)
        m.add_component(f"period_{t}", kkt.model)
        uppers.append(upper)
    batch = _add_work(m, uppers, plan)
    if payment_cap is not None:
        m.cap = pyo.ConstraintList()
        for upper, cap in zip(uppers, payment_cap):
            m.cap.add(upper.payment <= cap)
    m.aggregator = pyo.Objective(expr=sum(u.payment for u in uppers) + tie_break, sense=pyo.minimize)
    outcome = solve_milp(m, solver, mip_gap=1e-9, time_limit=time_limit, what=what, node_limit=node_limit)
    # Each battery's net draw (kW) by (bus, period): held in its one period, or the day's decision.
    draws = {**{(bus, 0): kw for bus, kw in held.items()}, **{key: 1e3 * draw for key, draw in stored.items()}}
    return _schedule_result(uppers, sites, loads, levels, svg_settings, plan, batch, outcome, draws)


def _lower_level(hour: Hour, buses: tuple[int, ...], injections: Sequence[Injection], price_bound: float,
                 solver: str, voltage_ranges: bool) -> tuple[pyo.ConcreteModel, KKTSystem]:
    """One period's OPF with the sites' loads as parameters, and its KKT system: with
    ``voltage_ranges`` each voltage's range over the injections (D-27) thins the big-M rows; with
    line limits each flow's range (D-27 on flows) gives the limit rows their big-M, and a limit row
    no decision reaches is left out (D-29)."""
    reach = flow_ranges(hour.feeder, injections) if hour.settings.line_limits else None
    lp = build_opf_model(hour.feeder, hour.generators, hour.settings, solver=solver, decided_load_buses=buses,
                         flow_reach=reach)
    parameters = [var[bus, k] for var in (lp.dc_p, lp.dc_q) for bus in buses for k in PHASES]
    implied = ComponentMap((lp.p[key], (lo / 1e3, hi / 1e3)) for key, (lo, hi) in (reach or {}).items())
    if voltage_ranges:
        implied.update((lp.w[node], span) for node, span in
                       box_ranges(hour.feeder, hour.settings.head_voltage_pu, injections).items())
    return lp, kkt_system(lp, dual_bound=price_bound, parameters=parameters, implied=implied or None)


def _held_tie_break(hours: Sequence[Hour], sites: tuple[DataCenterSite, ...], loads: dict[int, SiteLoad],
                    plan: WorkPlan, svg_settings: SvgSettings, batteries: Mapping[int, Battery],
                    **options: object) -> ScheduleResult:
    """The day for its payment, then each period's tie-break with its payment held within
    round-off of the day's, and over several periods its steps and batteries fixed (see
    aggregator_schedule)."""
    day = aggregator_schedule(hours, sites, loads, plan, svg_settings, tie_break_rule=False, batteries=batteries,
                              **options)
    picked = []   # per period: decision, payment, prices P and Q, how the stage ended
    for t, (hour, decision) in enumerate(zip(hours, day.decisions)):
        # One period chooses its steps again among the equally cheap; a day's are tied by its work.
        fixed = loads if len(hours) == 1 else {s.bus: _fixed(loads[s.bus], decision.load_kw[s.bus]) for s in sites}
        work = plan if len(hours) == 1 else WorkPlan((sum(f.low for f in fixed.values()),))
        held = day.payments_per_h[t] + 1e-7 * max(1.0, abs(day.payments_per_h[t]))
        try:
            one = aggregator_schedule([hour], sites, fixed, work, svg_settings, tie_break_rule=True,
                                      payment_cap=(held,), node_limit=TIE_BREAK_NODES,
                                      battery_kw=decision.battery_kw, **options)
            picked.append((one.decisions[0], one.payments_per_h[0], one.prices_p[0], one.prices_q[0],
                           one.solve.status))
        except NoIncumbentError:   # nothing found within the budget: the payment's own decision stands
            picked.append((decision, day.payments_per_h[t], day.prices_p[t], day.prices_q[t], "node_limit"))
        except SolverError as error:
            if "infeasible" not in str(error):
                raise
            # The held payment is out of reach of the stage's model by round-off (a payment the
            # day's MILP reached through its rows' tolerances): the payment's own decision stands.
            picked.append((decision, day.payments_per_h[t], day.prices_p[t], day.prices_q[t], "infeasible"))
    decisions, payments, prices_p, prices_q, ends = zip(*picked)
    return dataclasses.replace(day, decisions=decisions, payments_per_h=payments, prices_p=prices_p,
                               prices_q=prices_q, tie_break=ends)


def _injections(hour: Hour, sites: tuple[DataCenterSite, ...], loads: dict[int, SiteLoad],
                levels: dict[int, int], svg_settings: SvgSettings,
                battery: Mapping[int, tuple[float, float]]) -> list[Injection]:
    """What the period's OPF takes from the upper level and decides itself (D-27): each site's
    kW over its steps (a third on each phase, with its power factor's kvar), its battery's net kW
    (``battery``: the least and most, at power factor 1), each phase of its SVG over its levels,
    each generator phase up to its rating (a negative load)."""
    injections = []
    for s in sites:
        load = loads[s.bus]
        injections.append(Injection(s.bus, load.kw(load.low), load.kw(load.high), (1 / 3,) * 3,
                                    (s.kvar_per_kw / 3,) * 3))
        if s.bus in battery:
            injections.append(Injection(s.bus, *battery[s.bus], (1 / 3,) * 3))
        rating = levels[s.bus] * svg_settings.step_kvar
        injections += [Injection(s.bus, -rating, rating, (0.0,) * 3, _unit(k, -1.0)) for k in PHASES if rating]
    for g in hour.generators:
        injections += [Injection(g.bus, 0.0, g.max_kw_per_phase, _unit(k, -1.0))
                       for k in hour.feeder.bus_phases[g.bus]]
    return injections


def _battery_reach(batteries: Mapping[int, Battery], held: Mapping[int, float]) -> dict[int, tuple[float, float]]:
    """Each battery's least and most net draw in a period (kW): its ratings, or the draw it is held at."""
    return {**{bus: (kw, kw) for bus, kw in held.items()}, **{bus: (-b.kw, b.kw) for bus, b in batteries.items()}}


def add_storage(m: pyo.ConcreteModel, batteries: Mapping[int, Battery], periods: int) -> dict[tuple[int, int], object]:
    """Each battery's charge, discharge and state of charge per period (MW, MWh; 1-h periods) and
    its rows (D-28); returns its net draw (MW, three-phase) by (bus, period). Nothing is added
    without batteries, so the model stays as it was."""
    if not batteries:
        return {}
    buses, times = list(batteries), range(periods)
    m.charge = pyo.Var(buses, times, bounds=lambda _, b, t: (0.0, batteries[b].kw / 1e3))
    m.discharge = pyo.Var(buses, times, bounds=lambda _, b, t: (0.0, batteries[b].kw / 1e3))
    m.stored = pyo.Var(buses, times, bounds=lambda _, b, t: (0.0, batteries[b].kwh / 1e3))
    m.storage = pyo.ConstraintList()
    for bus, battery in batteries.items():
        start = battery.start_share * battery.kwh / 1e3
        for t in times:
            before = start if t == 0 else m.stored[bus, t - 1]
            m.storage.add(m.stored[bus, t] == before + battery.one_way * m.charge[bus, t]
                          - m.discharge[bus, t] / battery.one_way)
        m.storage.add(m.stored[bus, periods - 1] == start)
    return {(bus, t): m.charge[bus, t] - m.discharge[bus, t] for bus in buses for t in times}


def _check_batteries(sites: tuple[DataCenterSite, ...], batteries: Mapping[int, Battery],
                     held: Mapping[int, float], linearization: str, periods: int) -> None:
    """Refuse a battery the MILP cannot write: off the sites, priced by McCormick rows (exact for
    bits only; a battery's power is continuous), or held over several periods."""
    buses = {s.bus for s in sites}
    for bus in (*batteries, *held):
        if bus not in buses:
            raise GridError(f"battery at bus {bus}: no site there; a battery belongs to a data-center site")
    if batteries and linearization != "strong-duality":
        raise GridError('battery: needs linearization "strong-duality" (its power is continuous; McCormick\'s '
                        "rows are exact for binary decisions only)")
    if held and periods != 1:
        raise GridError("battery_kw: holds a battery in one period only")


def _unit(phase: int, value: float) -> tuple[float, float, float]:
    return tuple(value if k == phase else 0.0 for k in PHASES)


def _fixed(load: SiteLoad, kw: float) -> SiteLoad:
    """The site's load model held at the steps that draw ``kw``."""
    steps = 0 if load.step_kw == 0 else round((kw - load.idle_kw) / load.step_kw)
    return dataclasses.replace(load, low=steps, high=steps)


def _add_work(m: pyo.ConcreteModel, uppers: Sequence[UpperLevel], plan: WorkPlan) -> pyo.Var:
    """The day's work on the periods' steps: each period's sites run its interactive steps and
    the batch steps placed in it (D-20); each job's steps are placed within its window (D-21).
    Returns the batch placements, by (job, period) within the windows."""
    slots = [(j, t) for j, job in enumerate(plan.jobs) for t in range(job.release, job.deadline + 1)]
    m.batch = pyo.Var(slots, domain=pyo.NonNegativeIntegers,
                      bounds=lambda _, j, t: (0, plan.jobs[j].steps))
    m.work = pyo.ConstraintList()
    for t, upper in enumerate(uppers):
        m.work.add(sum(upper.steps_of.values())
                   == plan.interactive[t] + sum(m.batch[j, u] for j, u in slots if u == t))
    for j, job in enumerate(plan.jobs):
        m.work.add(sum(m.batch[j, t] for k, t in slots if k == j) == job.steps)
    return m.batch


def _check_schedule(hours: Sequence[Hour], sites: tuple[DataCenterSite, ...], loads: dict[int, SiteLoad],
                    plan: WorkPlan, linearization: str) -> None:
    """Refuse what the MILP cannot be built from, before any OPF is built."""
    if linearization not in LINEARIZATIONS:
        raise GridError(f"linearization: {linearization!r} is not one of {', '.join(LINEARIZATIONS)}")
    if linearization == "strong-duality" and any(g.quadratic_cost > 0 for h in hours for g in h.generators):
        raise GridError("linearization: strong duality needs linear generator costs; use \"mccormick\" with "
                        "quadratic_cost")
    buses = [s.bus for s in sites]
    if len(set(buses)) != len(buses):
        raise GridError("sites: one site per bus")
    missing = [b for b in buses if b not in loads]
    if missing:
        raise GridError(f"site loads: no load model for the site at bus {missing[0]}")
    if plan.periods != len(hours):
        raise GridError(f"work plan: {plan.periods} periods of interactive work for {len(hours)} periods")
    plan.check([loads[b] for b in buses])


def check_fits(sites: Sequence[DataCenterSite], workload: Workload) -> None:
    """Refuse a total the sites cannot take in whole steps: one line with their range and the fix
    (the caller names the field)."""
    low_kw, high_kw = load_range(sites, workload.step_kw)
    if not low_kw - _TOLERANCE <= workload.total_kw <= high_kw + _TOLERANCE:
        raise GridError(f"{workload.total_kw:g} kW does not fit the sites ({low_kw:g} to {high_kw:g} kW in "
                        f"{workload.step_kw:g}-kW steps); change it or the sites' min_kw and max_kw")


def _checked_inputs(sites: tuple[DataCenterSite, ...], workload: Workload) -> tuple[dict[int, tuple[int, int]], int]:
    """Each site's step range and the steps to place; refuses a total the sites cannot take."""
    try:
        check_fits(sites, workload)
    except GridError as error:
        raise GridError(f"total_kw: {error}") from None
    return {s.bus: step_range(s, workload.step_kw) for s in sites}, round(workload.total_kw / workload.step_kw)


def _schedule_result(uppers: Sequence[UpperLevel], sites: tuple[DataCenterSite, ...], loads: dict[int, SiteLoad],
                     levels: dict[int, int], svg_settings: SvgSettings, plan: WorkPlan, batch: pyo.Var,
                     outcome: MilpOutcome, battery: Mapping[tuple[int, int], object]) -> ScheduleResult:
    """Each period's decision, payment and site prices, and the batch placements, read off the
    solved model."""
    step_mvar = svg_settings.step_kvar / 1e3
    decisions, payments, prices_p, prices_q = [], [], [], []
    for t, upper in enumerate(uppers):
        kkt, lp = upper.kkt, upper.lp
        decisions.append(Decision(
            {s.bus: loads[s.bus].kw(round(pyo.value(upper.steps_of[s.bus]))) for s in sites},
            {s.bus: np.array([round(pyo.value(upper.svg_of[s.bus, k]) / step_mvar) * svg_settings.step_kvar
                              for k in PHASES]) for s in sites if levels[s.bus]},
            {bus: float(pyo.value(draw)) for (bus, period), draw in battery.items() if period == t},
        ))
        payments.append(float(pyo.value(upper.payment)))
        prices_p.append({s.bus: np.array([kkt.dual(lp.balance_p[s.bus, k]) for k in PHASES]) for s in sites})
        prices_q.append({s.bus: np.array([kkt.dual(lp.balance_q[s.bus, k]) for k in PHASES]) for s in sites})
    placed = {job.name: tuple(round(pyo.value(batch[j, t])) if job.release <= t <= job.deadline else 0
                              for t in range(plan.periods)) for j, job in enumerate(plan.jobs)}
    return ScheduleResult(tuple(decisions), tuple(payments), tuple(prices_p), tuple(prices_q), placed, outcome)


def _whole(value: float) -> bool:
    return abs(value - round(value)) <= _TOLERANCE
