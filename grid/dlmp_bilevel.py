"""The aggregator's bilevel problem as one MILP (spec `dlmp-bilevel.md`: KKT + big-M + binary
expansion + McCormick).

Upper level: the aggregator places ``total_kw`` of data-center load per phase across its sites,
in steps of ``step_kw`` (a site takes n steps, n in 0..2^bits - 1: the binary expansion
n = sum_k 2^k b_k), and pays each site's DLMP for its load. Lower level: the DSO's OPF
(grid/three_phase_opf.py), which sets the DLMPs. The OPF is replaced by its KKT conditions
(grid/kkt.py), and each product of a price and a binary, lambda b_k, by its McCormick envelope on
lambda in [-price_bound, price_bound] (exact for a binary). Every big-M comes from a stated bound:
the variables' ranges and the price bound.

This is the first bilevel piece of the DLMP issue: active power only, balanced per phase, no
SVG decisions yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyomo.environ as pyo

from grid.errors import GridError
from grid.kkt import kkt_system
from grid.solvers import MilpOutcome, solve_milp
from grid.three_phase import ThreePhaseFeeder
from grid.three_phase_opf import PHASES, DistributedGenerator, OpfSettings, build_opf_model


@dataclass(frozen=True)
class BilevelResult:
    steps: dict[int, int]  # site bus -> steps of load placed there
    load_kw: dict[int, float]  # per phase
    payment_per_h: float  # $/h: sum of DLMP x load over the sites and phases
    prices: dict[int, np.ndarray]  # $/MWh at each site, per phase
    solve: MilpOutcome


def aggregator_bilevel(feeder: ThreePhaseFeeder, generators: tuple[DistributedGenerator, ...],
                       settings: OpfSettings, sites: tuple[int, ...], *, total_kw: float, step_kw: float,
                       bits: int, price_bound: float, solver: str = "highs") -> BilevelResult:
    """Place ``total_kw`` per phase over ``sites`` at least cost for the aggregator."""
    if bits < 1 or step_kw <= 0:
        raise GridError("bits and step_kw must be positive")
    steps_needed = total_kw / step_kw
    if abs(steps_needed - round(steps_needed)) > 1e-9:
        raise GridError(f"total_kw: {total_kw:g} kW is not a whole number of {step_kw:g}-kW steps")
    lp = build_opf_model(feeder, generators, settings, solver=solver, decided_load_buses=tuple(sites))
    parameters = [lp.dc[bus, k] for bus in sites for k in PHASES]
    kkt = kkt_system(lp, dual_bound=price_bound, parameters=parameters)
    m = kkt.model
    m.objective.deactivate()
    m.b = pyo.Var(list(sites), range(bits), domain=pyo.Binary)
    m.u = pyo.Var(list(sites), PHASES, range(bits))  # lambda_{s,phi} b_{s,k}
    m.upper = pyo.ConstraintList()
    step_mw = step_kw / 1e3
    m.upper.add(sum(2 ** k * m.b[s, k] for s in sites for k in range(bits)) == round(steps_needed))
    payment = 0.0
    for s in sites:
        placed = step_mw * sum(2 ** k * m.b[s, k] for k in range(bits))
        for phase in PHASES:
            m.upper.add(kkt.x_of(lp.dc[s, phase]) == placed)
            price = kkt.y_of(lp.balance_p[s, phase])
            m.upper.add(price <= price_bound)
            m.upper.add(price >= -price_bound)
            for k in range(bits):
                u, b = m.u[s, phase, k], m.b[s, k]
                # McCormick of u = price x b, price in [-M, M], b in {0, 1}: exact at b = 0 and 1.
                m.upper.add(u <= price_bound * b)
                m.upper.add(u >= -price_bound * b)
                m.upper.add(u <= price + price_bound * (1 - b))
                m.upper.add(u >= price - price_bound * (1 - b))
                payment = payment + step_mw * 2 ** k * u
    m.aggregator = pyo.Objective(expr=payment, sense=pyo.minimize)
    outcome = solve_milp(m, solver, mip_gap=1e-9, what="the aggregator's bilevel problem")
    steps = {s: int(round(sum(2 ** k * pyo.value(m.b[s, k]) for k in range(bits)))) for s in sites}
    prices = {s: np.array([kkt.dual(lp.balance_p[s, phase]) for phase in PHASES]) for s in sites}
    return BilevelResult(steps, {s: steps[s] * step_kw for s in sites}, float(pyo.value(payment)), prices, outcome)
