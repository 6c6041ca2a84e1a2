"""Firm capacity: the robust model (1) with the exact box reformulation (2), solved in stages.

Firm capacity must be served for every background load in the box [lower, upper] of the
scenarios. Over a box, the worst case of each limit is attained at a corner, so (1b)-(1c) become
ordinary linear rows (2a)-(2b) and the model is an LP (see grid.capacity.study for the shared rules).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from grid.capacity.inputs.candidates import make_candidates
from grid.capacity.study import CapacityResult, solve_one
from grid.load.scenarios import Scenarios
from grid.network.network import Network

__all__ = ["CapacityResult", "firm_capacity"]


def firm_capacity(
    network: Network,
    scenarios: Scenarios,
    demand_mw: Mapping[int, float],
    solver: str = "highs",
    *,
    theory: bool = False,
) -> CapacityResult:
    """Largest capacities every candidate bus can take for any background load in the box.

    ``demand_mw`` maps each candidate bus to its requested D_i > 0; all other buses form N_0 and
    get c_i = 0. Stage 1 minimises the unserved ratio (1a); stage 2 holds it and maximises the
    total capacity (Theorem 1); a strictly convex tie-break settles any tie left.
    """
    candidates = make_candidates(network, demand_mw)
    return solve_one(network, scenarios, candidates, risk=0.0, floors=np.zeros(len(candidates)),
                     solver=solver, theory=theory)
