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

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pyomo.environ as pyo

from grid.errors import GridError
from grid.feeder.inputs import LINEARIZATIONS, DistributedGenerator, OpfSettings
from grid.feeder.opf import PHASES, OpfResult, build_opf_model
from grid.network.three_phase import ThreePhaseFeeder
from grid.solvers.kkt import KKTSystem, kkt_system
from grid.solvers.solve import MilpOutcome, solve_milp

_TOLERANCE = 1e-9
# The tie-break rule's weights, $/h per p.u.^2: of the lowest squared site voltage (at most about
# 0.2 p.u.^2 apart, so 0.002 $/h), then of the sites' mean squared voltage (a hundredth of that,
# below what one SVG step moves the lowest voltage by).
VOLTAGE_TIE_BREAK_USD = 0.01
MEAN_VOLTAGE_TIE_BREAK_USD = 1e-4


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
    """The aggregator's decision: three-phase kW per site and SVG output per site and phase
    (kvar, positive = injected)."""

    load_kw: dict[int, float]
    svg_kvar: dict[int, np.ndarray] = field(default_factory=dict)

    def opf_inputs(self, sites: tuple[DataCenterSite, ...]) -> dict[str, dict[int, np.ndarray]]:
        """``extra_kw``, ``extra_kvar`` and ``svg_kvar`` for the DSO's OPF, by bus and phase."""
        kw = {s.bus: np.full(3, self.load_kw[s.bus] / 3.0) for s in sites}
        kvar = {s.bus: kw[s.bus] * s.kvar_per_kw for s in sites}
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


def svg_levels(site: DataCenterSite, workload: Workload) -> int:
    """L: the SVG's output is (n - L) x svg_step for n in 0..2L."""
    levels = site.svg_kvar / workload.svg_step_kvar
    if not _whole(levels):
        raise GridError(f"site at bus {site.bus}: svg_kvar {site.svg_kvar:g} is not a whole number of "
                        f"{workload.svg_step_kvar:g}-kvar steps (svg_step_kvar)")
    return round(levels)


@dataclass(frozen=True, eq=False)
class BilevelResult:
    decision: Decision
    payment_per_h: float  # $/h, the upper level's objective
    prices_p: dict[int, np.ndarray]  # $/MWh at each site, per phase (the KKT model's duals)
    prices_q: dict[int, np.ndarray]  # $/Mvarh
    solve: MilpOutcome


# How the payment's price x decision terms become linear (docs/models/dlmp.md#eq-d-13 to
# docs/models/dlmp.md#eq-d-15).
def aggregator_bilevel(feeder: ThreePhaseFeeder, generators: tuple[DistributedGenerator, ...],
                       settings: OpfSettings, sites: tuple[DataCenterSite, ...], workload: Workload, *,
                       svg: bool, price_bound: float, linearization: str = "mccormick",
                       tie_break_rule: bool = True, solver: str = "highs",
                       time_limit: float | None = None) -> BilevelResult:
    """The aggregator's best decision against the DSO's OPF; ``svg`` lets it use its SVGs.

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
    ranges, needed, levels = _checked_inputs(generators, sites, workload, svg=svg, linearization=linearization)
    buses = [s.bus for s in sites]
    lp = build_opf_model(feeder, generators, settings, solver=solver, decided_load_buses=tuple(buses))
    parameters = [var[bus, k] for var in (lp.dc_p, lp.dc_q) for bus in buses for k in PHASES]
    kkt = kkt_system(lp, dual_bound=price_bound, parameters=parameters)
    upper = _UpperLevel.on(kkt, lp, price_bound, mccormick=linearization == "mccormick")
    # Site by site, phase by phase: the rows and the payment's terms are written in this order,
    # which the solver's tie-breaking follows (same config, same decision).
    for s in sites:
        upper.add_site(s, ranges[s.bus], levels[s.bus], workload)
    m = kkt.model
    m.upper.add(sum(upper.steps_of.values()) == needed)
    tie_break = _voltage_tie_break(kkt, lp, sites, settings) if tie_break_rule else 0.0
    if not upper.mccormick:
        # The balances carry the load as -dc on the left: the payment is minus the parameters' value.
        upper.payment += -kkt.parameter_value
    m.aggregator = pyo.Objective(expr=upper.payment + tie_break, sense=pyo.minimize)
    outcome = solve_milp(m, solver, mip_gap=1e-9, time_limit=time_limit, what="the aggregator's bilevel problem")
    return _bilevel_result(upper, sites, levels, workload, outcome)


def _checked_inputs(generators: tuple[DistributedGenerator, ...], sites: tuple[DataCenterSite, ...],
                    workload: Workload, *, svg: bool, linearization: str
                    ) -> tuple[dict[int, tuple[int, int]], int, dict[int, int]]:
    """Each site's step range, the steps to place, and each site's SVG levels L (0 without SVG);
    refuses what the model cannot be built from before the OPF is built."""
    if linearization not in LINEARIZATIONS:
        raise GridError(f"linearization: {linearization!r} is not one of {', '.join(LINEARIZATIONS)}")
    if linearization == "strong-duality" and any(g.quadratic_cost > 0 for g in generators):
        raise GridError("linearization: strong duality needs linear generator costs; use \"mccormick\" with "
                        "quadratic_cost")
    buses = [s.bus for s in sites]
    if len(set(buses)) != len(buses):
        raise GridError("sites: one site per bus")
    ranges = {s.bus: step_range(s, workload.step_kw) for s in sites}
    needed = round(workload.total_kw / workload.step_kw)
    low_kw, high_kw = load_range(sites, workload.step_kw)
    if not low_kw - _TOLERANCE <= workload.total_kw <= high_kw + _TOLERANCE:
        raise GridError(f"total_kw: {workload.total_kw:g} kW does not fit the sites' min_kw and max_kw "
                        f"in {workload.step_kw:g}-kW steps")
    levels = {s.bus: svg_levels(s, workload) if svg else 0 for s in sites}
    return ranges, needed, levels


@dataclass(eq=False)
class _UpperLevel:
    """The aggregator's rows on the KKT model, and its payment as it grows term by term.

    Rows, bits and payment terms go in site by site, phase by phase, always in the same order:
    the solver's choice among equally good decisions follows it, and the study promises the same
    files for the same config.
    """

    kkt: KKTSystem
    lp: pyo.ConcreteModel
    price_bound: float
    mccormick: bool
    payment: object = 0.0
    steps_of: dict[int, object] = field(default_factory=dict)  # steps taken, by site
    svg_of: dict[tuple[int, int], object] = field(default_factory=dict)  # Mvar injected, by site and phase

    @classmethod
    def on(cls, kkt: KKTSystem, lp: pyo.ConcreteModel, price_bound: float, *, mccormick: bool) -> _UpperLevel:
        m = kkt.model
        m.objective.deactivate()
        m.upper = pyo.ConstraintList()
        m.bits = pyo.VarList(domain=pyo.Binary)
        m.products = pyo.VarList()  # price x bit, one per (price, bit) pair
        m.svg_magnitude = pyo.VarList(domain=pyo.NonNegativeReals)  # |QSVG| per site and phase
        return cls(kkt, lp, price_bound, mccormick)

    def priced(self, price: pyo.Var, bit: pyo.Var) -> pyo.Var:
        """u = price x bit by McCormick on price in [-M, M], bit in {0, 1}: exact at 0 and 1."""
        m = self.kkt.model
        u, bound = m.products.add(), self.price_bound
        m.upper.add(u <= bound * bit)
        m.upper.add(u >= -bound * bit)
        m.upper.add(u <= price + bound * (1 - bit))
        m.upper.add(u >= price - bound * (1 - bit))
        return u

    def expansion(self, count: int) -> list[pyo.Var]:
        return [self.kkt.model.bits.add() for _ in range(max(1, math.ceil(math.log2(count + 1))))]

    def add_site(self, s: DataCenterSite, steps_range: tuple[int, int], levels: int, workload: Workload) -> None:
        """The site's load in whole steps, then per phase its prices' bounds, its load, and its SVG."""
        m, kkt, lp = self.kkt.model, self.kkt, self.lp
        low, high = steps_range
        bits = self.expansion(high)
        steps = sum(2 ** k * b for k, b in enumerate(bits))
        self.steps_of[s.bus] = steps
        m.upper.add(steps >= low)
        m.upper.add(steps <= high)
        step_mw = workload.step_kw / 1e3
        for phase in PHASES:
            p_price, q_price = self.bounded_prices(s.bus, phase)
            # PDC per phase = step/3 x n; QDC = tan(acos pf) PDC.
            per_phase = step_mw / 3.0
            m.upper.add(kkt.x_of(lp.dc_p[s.bus, phase]) == per_phase * steps)
            net_q = s.kvar_per_kw * per_phase * steps
            if self.mccormick:
                self.add_load_products(s, per_phase, bits, p_price, q_price)
            if levels:
                net_q = net_q - self.add_svg(s, phase, levels, q_price, workload)
            m.upper.add(kkt.x_of(lp.dc_q[s.bus, phase]) == net_q)

    def bounded_prices(self, bus: int, phase: int) -> tuple[pyo.Var, pyo.Var]:
        """The DLMPs (P, Q) at the bus and phase, held within the stated price bound."""
        p_price = self.kkt.y_of(self.lp.balance_p[bus, phase])
        q_price = self.kkt.y_of(self.lp.balance_q[bus, phase])
        for price in (p_price, q_price):
            self.kkt.model.upper.add(price <= self.price_bound)
            self.kkt.model.upper.add(price >= -self.price_bound)
        return p_price, q_price

    def add_load_products(self, s: DataCenterSite, per_phase: float, bits: list[pyo.Var], p_price: pyo.Var,
                          q_price: pyo.Var) -> None:
        """McCormick: lambda^P PDC + lambda^Q QDC, one product per step bit."""
        for k, bit in enumerate(bits):
            self.payment += per_phase * 2 ** k * self.priced(p_price, bit)
            if s.kvar_per_kw > 0:
                self.payment += s.kvar_per_kw * per_phase * 2 ** k * self.priced(q_price, bit)

    def add_svg(self, s: DataCenterSite, phase: int, levels: int, q_price: pyo.Var, workload: Workload) -> object:
        """The SVG phase's level (binary-expanded), its output's cost, and with McCormick its
        -lambda^Q QSVG term; returns the output (Mvar injected)."""
        m = self.kkt.model
        svg_step_mvar = workload.svg_step_kvar / 1e3
        svg_bits = self.expansion(2 * levels)
        level = sum(2 ** k * c for k, c in enumerate(svg_bits))
        m.upper.add(level <= 2 * levels)
        output = svg_step_mvar * (level - levels)  # Mvar injected
        self.svg_of[s.bus, phase] = output
        if self.mccormick:  # - lambda^Q QSVG = - step x (sum 2^k lambda c_k - L lambda)
            self.payment += svg_step_mvar * levels * q_price
            for k, bit in enumerate(svg_bits):
                self.payment -= svg_step_mvar * 2 ** k * self.priced(q_price, bit)
        magnitude = m.svg_magnitude.add()  # |QSVG|: its price makes the two rows tight
        m.upper.add(magnitude >= output)
        m.upper.add(magnitude >= -output)
        self.payment += workload.svg_cost_per_mvarh * magnitude
        return output


def _voltage_tie_break(kkt: KKTSystem, lp: pyo.ConcreteModel, sites: tuple[DataCenterSite, ...],
                       settings: OpfSettings) -> object:
    """The tie-break rule's term ($/h): the lowest, then the mean squared site voltage, rewarded."""
    m = kkt.model
    m.lowest_w = pyo.Var(bounds=(settings.v_min_pu ** 2, settings.v_max_pu ** 2))
    for s in sites:
        for phase in PHASES:
            m.upper.add(m.lowest_w <= kkt.x_of(lp.w[s.bus, phase]))
    mean_w = sum(kkt.x_of(lp.w[s.bus, phase]) for s in sites for phase in PHASES) / (3 * len(sites))
    return -VOLTAGE_TIE_BREAK_USD * m.lowest_w - MEAN_VOLTAGE_TIE_BREAK_USD * mean_w


def _bilevel_result(upper: _UpperLevel, sites: tuple[DataCenterSite, ...], levels: dict[int, int],
                    workload: Workload, outcome: MilpOutcome) -> BilevelResult:
    """The decision, its payment and the site prices, read off the solved model."""
    kkt, lp = upper.kkt, upper.lp
    svg_step_mvar = workload.svg_step_kvar / 1e3
    decision = Decision(
        {s.bus: round(pyo.value(upper.steps_of[s.bus])) * workload.step_kw for s in sites},
        {s.bus: np.array([round(pyo.value(upper.svg_of[s.bus, k]) / svg_step_mvar) * workload.svg_step_kvar
                          for k in PHASES]) for s in sites if levels[s.bus]},
    )
    return BilevelResult(
        decision, float(pyo.value(upper.payment)),
        {s.bus: np.array([kkt.dual(lp.balance_p[s.bus, k]) for k in PHASES]) for s in sites},
        {s.bus: np.array([kkt.dual(lp.balance_q[s.bus, k]) for k in PHASES]) for s in sites},
        outcome,
    )


def _whole(value: float) -> bool:
    return abs(value - round(value)) <= _TOLERANCE
