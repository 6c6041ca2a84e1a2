"""Flexible capacity: the CVaR model (4), exactly through sorted tails or through the LP (17).

Flexible capacity c^eps may break a limit, but only with a bounded expected tail: the CVaR at
risk level eps of every limit's excess must be <= 0. Because the data-center term of a limit is
deterministic, CVaR(a . c + b) = a . c + CVaR(b) (proof of Proposition 1), so the ``exact``
formulation computes CVaR(b) once per limit by a partial sort and solves an LP the size of the
robust one. The ``scenario`` formulation is the paper's LP (17): the Rockafellar-Uryasev form (16)
with one eta per limit and one z per limit and scenario. Both give the same capacities.
"""

from __future__ import annotations

import math
import numbers
from typing import Mapping

import numpy as np

from grid.capacity.inputs.candidates import Candidates, make_candidates
from grid.capacity.study import CapacityResult, check_risk_levels, solve_one
from grid.errors import GridError
from grid.load.scenarios import Scenarios
from grid.network.network import Network
from grid.risk_measures import sample_cvar

__all__ = ["CapacityResult", "flexible_capacity", "sample_cvar"]


def flexible_capacity(
    network: Network,
    scenarios: Scenarios,
    demand_mw: Mapping[int, float],
    epsilon: float,
    firm_mw: Mapping[int, float],
    solver: str = "highs",
    *,
    formulation: str = "exact",
    theory: bool = False,
) -> CapacityResult:
    """Largest capacities whose limit excesses have CVaR_eps <= 0 over the scenario samples.

    ``firm_mw`` (e.g. ``firm_capacity(...).capacity_mw``) is a floor: c^eps_i >= c_i, so the
    flexible increment c^eps - c is never negative. Missing buses count as 0.
    """
    check_risk_levels([epsilon])
    candidates = make_candidates(network, demand_mw)
    floors = _floors(network, candidates, firm_mw)
    return solve_one(network, scenarios, candidates, risk=float(epsilon), floors=floors, solver=solver,
                     formulation=formulation, theory=theory)


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
