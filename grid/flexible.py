"""Flexible capacity: the CVaR model (4) through its scenario LP (17a)-(17h), solved in stages.

Flexible capacity c^eps may break a limit, but only with a bounded expected tail: the CVaR at
risk level eps of every limit's excess must be <= 0. The Rockafellar-Uryasev form (16) turns each
CVaR into one auxiliary eta and one z per scenario, which keeps the model an LP.
"""

from __future__ import annotations

import math
import numbers
from typing import Mapping, Sequence

import numpy as np
import pyomo.environ as pyo

from grid.capacity_lp import (
    CapacityResult,
    Candidates,
    LimitRow,
    check_inputs,
    finite_limits,
    limit_rows,
    solve_capacity,
    split_constant_rows,
)
from grid.errors import GridError
from grid.network import Network
from grid.scenarios import Scenarios
from grid.shift_factors import shared_shift_factors
from grid.solvers import check_solver

__all__ = ["CapacityResult", "flexible_capacity", "sample_cvar"]

# Lines whose scenario flows are computed at once; bounds the (S x lines) work array.
_LINE_BLOCK = 512


def sample_cvar(values: np.ndarray, epsilon: float) -> np.ndarray:
    """CVaR_eps (16) of equally likely samples along axis 0: the mean of the worst eps-fraction.

    With m = floor(eps S), it is (sum of the m largest + (eps S - m) * the (m+1)-th largest) / (eps S),
    which is exactly min over eta of eta + E[(X - eta)^+] / eps for the sample distribution.
    """
    values = np.asarray(values, dtype=float)
    count = values.shape[0]
    return _cvar_of_largest(_largest(values, _tail_size(epsilon, count)), epsilon, count)


def _tail_size(epsilon: float, count: int) -> int:
    """floor(eps S) + 1: the fewest largest samples that determine CVaR_eps."""
    return min(count, int(math.floor(epsilon * count)) + 1)


def _largest(values: np.ndarray, keep: int) -> np.ndarray:
    """The ``keep`` largest values of each column (unordered)."""
    if keep >= values.shape[0]:
        return values
    return -np.partition(-values, keep - 1, axis=0)[:keep]


def _cvar_of_largest(top: np.ndarray, epsilon: float, count: int) -> np.ndarray:
    """CVaR_eps of ``count`` samples from their floor(eps S) + 1 largest values (any order)."""
    mass = epsilon * count
    whole = min(int(math.floor(mass)), count - 1)
    ordered = np.sort(top, axis=0)[::-1]
    return (ordered[:whole].sum(axis=0) + (mass - whole) * ordered[whole]) / mass


def flexible_capacity(
    network: Network,
    scenarios: Scenarios,
    demand_mw: Mapping[int, float],
    epsilon: float,
    firm_mw: Mapping[int, float],
    solver: str = "highs",
) -> CapacityResult:
    """Largest capacities whose limit excesses have CVaR_eps <= 0 over the scenario samples.

    ``firm_mw`` (e.g. ``firm_capacity(...).capacity_mw``) is a floor: c^eps_i >= c_i, so the
    flexible increment c^eps - c is never negative. Missing buses count as 0.
    """
    return _flexible_capacity(network, scenarios, demand_mw, epsilon, firm_mw, solver, tail_only=True)


def _flexible_capacity(
    network: Network,
    scenarios: Scenarios,
    demand_mw: Mapping[int, float],
    epsilon: float,
    firm_mw: Mapping[int, float],
    solver: str,
    tail_only: bool,
) -> CapacityResult:
    """``tail_only=False`` writes (17c,e,g) for every scenario; tests use it to check the reduction."""
    check_solver(solver)
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not 0.0 < epsilon < 1.0:
        raise GridError(f"risk level epsilon must be in (0, 1), got {epsilon!r}")
    epsilon = float(epsilon)
    candidates = check_inputs(network, scenarios, demand_mw)
    floors = _floors(network, candidates, firm_mw)
    shift = shared_shift_factors(network)
    bus_rows, line_rows = finite_limits(network)
    samples = scenarios.samples_mw
    count = scenarios.count

    # Every scenario of a row shifts by the same a . c, so the scenarios with the largest
    # background term are the tail for any c. Keeping the floor(eps S) + 1 largest gives the same
    # CVaR as all S (the RU function (16) decreases until eta reaches that tail), so the other z
    # rows of (17c,e,g) are slack at every optimum and can be left out.
    tail = _tail_size(epsilon, count)

    def reduce(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        largest = _largest(values, tail)
        return (largest if tail_only else values), _cvar_of_largest(largest, epsilon, count)

    withdrawal = reduce(samples[:, bus_rows])
    upper_parts, lower_parts = [], []
    for start in range(0, line_rows.size, _LINE_BLOCK):
        block = line_rows[start:start + _LINE_BLOCK]
        # Background flows (H p^(s))_l as numbers, so Pyomo never expands H p symbolically.
        flows = samples @ shift[block].T
        upper_parts.append(reduce(flows))
        lower_parts.append(reduce(-flows))
    kept = tail if tail_only else count
    upper = _stack(upper_parts, kept)
    lower = _stack(lower_parts, kept)

    risk_text = f"CVaR_{epsilon:g}"
    rows = limit_rows(network, shift, candidates, bus_rows, line_rows, withdrawal, upper, lower)
    rows = split_constant_rows(network, rows, risk_text)

    def add_limits(m: pyo.ConcreteModel, rows: Sequence[LimitRow], slack: pyo.Var | None) -> None:
        _add_cvar_limits(m, rows, slack, 1.0 / (epsilon * count))

    return solve_capacity("flexible", network, candidates, floors, rows, add_limits, solver, risk_text)


def _stack(parts: list[tuple[np.ndarray, np.ndarray]], keep: int) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros((keep, 0)), np.zeros(0)
    return np.hstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _floors(network: Network, candidates: Candidates, firm_mw: Mapping[int, float]) -> np.ndarray:
    """c^eps_i >= c_i: validate the firm capacities and align them with the candidates."""
    for bus, value in firm_mw.items():
        network.bus_index(bus)  # GridError naming the unknown bus
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            math.isfinite(value) and value >= 0
        ):
            raise GridError(f"firm capacity at bus {bus} must be a finite number >= 0 MW, got {value!r}")
        if value > 0 and bus not in candidates.buses:
            raise GridError(
                f"firm capacity at bus {bus} is {value} MW but bus {bus} has no data-center demand; "
                "add it to demand_mw or set its firm capacity to 0"
            )
    return np.array([float(firm_mw.get(bus, 0.0)) for bus in candidates.buses])


def _add_cvar_limits(
    m: pyo.ConcreteModel, rows: Sequence[LimitRow], slack: pyo.Var | None, weight: float
) -> None:
    """(17b)-(17h) for every row, with ``weight`` = 1 / (eps S).

    The capacity term a . c of a row is the same in all its scenario rows, so it is written once
    as a variable y_r = a . c; each scenario row then has three non-zeros instead of |a| + 2.
    """
    n_rows = len(rows)
    m.eta = pyo.Var(range(n_rows))   # the threshold of (16), free
    m.dc_load = pyo.Var(range(n_rows))  # y_r = a . c
    m.dc_load_def = pyo.Constraint(
        range(n_rows),
        rule=lambda m, r: m.dc_load[r]
        == sum(float(a) * m.c[int(k)] for k, a in zip(rows[r].columns, rows[r].coefficients)),
    )
    pairs = [(r, t) for r in range(n_rows) for t in range(rows[r].background_mw.size)]
    m.z = pyo.Var(pairs, within=pyo.NonNegativeReals)  # (17h)

    def excess(m: pyo.ConcreteModel, r: int, t: int):
        # (17c)/(17e)/(17g): z >= a . c + b_t - limit - eta, with b_t a precomputed number.
        row = rows[r]
        return m.z[r, t] >= m.dc_load[r] + (float(row.background_mw[t]) - row.limit_mw) - m.eta[r]

    def cvar(m: pyo.ConcreteModel, r: int):
        # (17b)/(17d)/(17f): eta + sum_s z / (eps S) <= 0.
        total = sum(m.z[r, t] for t in range(rows[r].background_mw.size))
        return m.eta[r] + weight * total <= (slack[r] if slack is not None else 0.0)

    m.excess = pyo.Constraint(pairs, rule=excess)
    m.cvar = pyo.Constraint(range(n_rows), rule=cvar)
