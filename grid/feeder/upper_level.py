"""The aggregator's rows on one period's KKT model (docs/models/dlmp.md#dlmp-4 and #dlmp-5): its
sites' work steps in binary, their load and reactive power as the OPF's decided parameters, its
SVGs, and its payment term by term; and the tie-break rule's voltage terms (D-16).

grid/feeder/bilevel.py builds one KKT model per period and links the periods' steps by the
day's work (D-20, D-21); this module writes what one period holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pyomo.environ as pyo

from grid.feeder.inputs import OpfSettings
from grid.feeder.opf import PHASES
from grid.feeder.workloads import SiteLoad
from grid.solvers.kkt import KKTSystem

# The tie-break rule's weights, $/h per p.u.^2: of the lowest squared site voltage (at most about
# 0.2 p.u.^2 apart, so 0.002 $/h), then of the sites' mean squared voltage (a hundredth of that,
# below what one SVG step moves the lowest voltage by).
VOLTAGE_TIE_BREAK_USD = 0.01
MEAN_VOLTAGE_TIE_BREAK_USD = 1e-4


@dataclass(frozen=True)
class SvgSettings:
    """SVG levels ``step_kvar`` apart per phase, each kvar of output costing ``cost_per_mvarh``."""

    step_kvar: float
    cost_per_mvarh: float


@dataclass(eq=False)
class UpperLevel:
    """The aggregator's rows on one period's KKT model, and its payment as it grows term by term.

    Rows, bits and payment terms go in site by site, phase by phase, always in the same order:
    the solver's choice among equally good decisions follows it, and the study promises the same
    files for the same config.
    """

    kkt: KKTSystem
    lp: pyo.ConcreteModel
    price_bound: float
    mccormick: bool
    payment: object = 0.0
    steps_of: dict[int, object] = field(default_factory=dict)  # work steps run, by site
    svg_of: dict[tuple[int, int], object] = field(default_factory=dict)  # Mvar injected, by site and phase

    @classmethod
    def on(cls, kkt: KKTSystem, lp: pyo.ConcreteModel, price_bound: float, *, mccormick: bool) -> UpperLevel:
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

    def add_site(self, bus: int, kvar_per_kw: float, load: SiteLoad, levels: int, svg: SvgSettings,
                 extra_mw: object | None = None) -> None:
        """The site's work in whole steps, then per phase its prices' bounds, its load (the idle
        part and the steps' part, D-19, and ``extra_mw`` per phase at power factor 1: a battery's
        draw, D-28), and its SVG."""
        m, kkt, lp = self.kkt.model, self.kkt, self.lp
        bits = self.expansion(load.high)
        steps = sum(2 ** k * b for k, b in enumerate(bits))
        self.steps_of[bus] = steps
        m.upper.add(steps >= load.low)
        m.upper.add(steps <= load.high)
        # PDC per phase = (idle + step x n) / 3 (a balanced connection); QDC = tan(acos pf) PDC.
        idle_mw, step_mw = load.idle_kw / 1e3 / 3.0, load.step_kw / 1e3 / 3.0
        per_phase = step_mw * steps + idle_mw if idle_mw else step_mw * steps
        for phase in PHASES:
            p_price, q_price = self.bounded_prices(bus, phase)
            m.upper.add(kkt.x_of(lp.dc_p[bus, phase]) == (per_phase if extra_mw is None else per_phase + extra_mw))
            net_q = kvar_per_kw * step_mw * steps + kvar_per_kw * idle_mw if idle_mw else kvar_per_kw * step_mw * steps
            if self.mccormick:
                self.add_load_products(kvar_per_kw, idle_mw, step_mw, bits, p_price, q_price)
            if levels:
                net_q = net_q - self.add_svg(bus, phase, levels, q_price, svg)
            m.upper.add(kkt.x_of(lp.dc_q[bus, phase]) == net_q)

    def bounded_prices(self, bus: int, phase: int) -> tuple[pyo.Var, pyo.Var]:
        """The DLMPs (P, Q) at the bus and phase, held within the stated price bound."""
        p_price = self.kkt.y_of(self.lp.balance_p[bus, phase])
        q_price = self.kkt.y_of(self.lp.balance_q[bus, phase])
        for price in (p_price, q_price):
            self.kkt.model.upper.add(price <= self.price_bound)
            self.kkt.model.upper.add(price >= -self.price_bound)
        return p_price, q_price

    def add_load_products(self, kvar_per_kw: float, idle_mw: float, step_mw: float, bits: list[pyo.Var],
                          p_price: pyo.Var, q_price: pyo.Var) -> None:
        """McCormick: lambda^P PDC + lambda^Q QDC; the idle part is a price times a constant, the
        steps' part one product per bit."""
        if idle_mw:
            self.payment += idle_mw * (p_price + kvar_per_kw * q_price)
        for k, bit in enumerate(bits):
            self.payment += step_mw * 2 ** k * self.priced(p_price, bit)
            if kvar_per_kw > 0:
                self.payment += kvar_per_kw * step_mw * 2 ** k * self.priced(q_price, bit)

    def add_svg(self, bus: int, phase: int, levels: int, q_price: pyo.Var, svg: SvgSettings) -> object:
        """The SVG phase's level (binary-expanded), its output's cost, and with McCormick its
        -lambda^Q QSVG term; returns the output (Mvar injected)."""
        m = self.kkt.model
        svg_step_mvar = svg.step_kvar / 1e3
        svg_bits = self.expansion(2 * levels)
        level = sum(2 ** k * c for k, c in enumerate(svg_bits))
        m.upper.add(level <= 2 * levels)
        output = svg_step_mvar * (level - levels)  # Mvar injected
        self.svg_of[bus, phase] = output
        if self.mccormick:  # - lambda^Q QSVG = - step x (sum 2^k lambda c_k - L lambda)
            self.payment += svg_step_mvar * levels * q_price
            for k, bit in enumerate(svg_bits):
                self.payment -= svg_step_mvar * 2 ** k * self.priced(q_price, bit)
        magnitude = m.svg_magnitude.add()  # |QSVG|: its price makes the two rows tight
        m.upper.add(magnitude >= output)
        m.upper.add(magnitude >= -output)
        self.payment += svg.cost_per_mvarh * magnitude
        return output


def voltage_tie_break(kkt: KKTSystem, lp: pyo.ConcreteModel, buses: list[int], settings: OpfSettings) -> object:
    """The tie-break rule's term ($/h) of one period: the lowest, then the mean squared site
    voltage, rewarded."""
    m = kkt.model
    m.lowest_w = pyo.Var(bounds=(settings.v_min_pu ** 2, settings.v_max_pu ** 2))
    for bus in buses:
        for phase in PHASES:
            m.upper.add(m.lowest_w <= kkt.x_of(lp.w[bus, phase]))
    mean_w = sum(kkt.x_of(lp.w[bus, phase]) for bus in buses for phase in PHASES) / (3 * len(buses))
    return -VOLTAGE_TIE_BREAK_USD * m.lowest_w - MEAN_VOLTAGE_TIE_BREAK_USD * mean_w
