"""Firm capacity: the robust model (1) with the exact box reformulation (2), solved in stages.

Firm capacity must be served for every background load in the box [lower, upper] of the
scenarios. Over a box, the worst case of each limit is attained at a corner, so (1b)-(1c) become
ordinary linear rows (2a)-(2b) and the model is an LP.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pyomo.environ as pyo

from grid.capacity_lp import (
    CapacityResult,
    LimitRow,
    check_inputs,
    finite_limits,
    limit_rows,
    solve_capacity,
    split_constant_rows,
)
from grid.network import Network
from grid.scenarios import Scenarios
from grid.shift_factors import shared_shift_factors
from grid.solvers import check_solver

__all__ = ["CapacityResult", "firm_capacity"]


def firm_capacity(
    network: Network,
    scenarios: Scenarios,
    demand_mw: Mapping[int, float],
    solver: str = "highs",
) -> CapacityResult:
    """Largest capacities every candidate bus can take for any background load in the box.

    ``demand_mw`` maps each candidate bus to its requested D_i > 0; all other buses form N_0 and
    get c_i = 0. Stage 1 minimises the unserved ratio (1a); stage 2 holds it and maximises the
    total capacity (Theorem 1); a leximin on the unserved ratios settles any tie left.
    """
    check_solver(solver)
    candidates = check_inputs(network, scenarios, demand_mw)
    shift = shared_shift_factors(network)
    bus_rows, line_rows = finite_limits(network)
    lower, upper = scenarios.lower_mw, scenarios.upper_mw

    # (1b): the worst case of p_i is its upper bound.
    withdrawal = upper[bus_rows]
    # (2a)/(2b): max and min of (Hp)_l over the box pick p_j at the bound matching the sign of H_lj.
    positive, negative = np.maximum(shift[line_rows], 0.0), np.maximum(-shift[line_rows], 0.0)
    flow_max = positive @ upper - negative @ lower
    flow_min = positive @ lower - negative @ upper

    rows = limit_rows(
        network, shift, candidates, bus_rows, line_rows,
        withdrawal=(withdrawal[None, :], withdrawal),
        upper=(flow_max[None, :], flow_max),
        # The lower limit -f <= (H(c+p))_l is written as -(Hc)_l + (-(Hp)_l) - f <= 0.
        lower=(-flow_min[None, :], -flow_min),
    )
    rows = split_constant_rows(network, rows, "worst-case")
    floors = np.zeros(len(candidates.buses))
    return solve_capacity("firm", network, candidates, floors, rows, _add_robust_limits, solver, "worst-case")


def _add_robust_limits(m: pyo.ConcreteModel, rows: Sequence[LimitRow], slack: pyo.Var | None) -> None:
    """(1b), (2a), (2b): a . c <= limit - worst-case background (+ slack in the elastic copy)."""

    def rule(m: pyo.ConcreteModel, r: int):
        row = rows[r]
        load = sum(float(a) * m.c[int(k)] for k, a in zip(row.columns, row.coefficients))
        room = row.limit_mw - row.risk_mw
        return load <= room + (slack[r] if slack is not None else 0.0)

    m.limits = pyo.Constraint(range(len(rows)), rule=rule)
