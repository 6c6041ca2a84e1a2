"""The states the AC check runs at (grid/ac/states.py): the budgeted worst corner against brute
force over the box's corners, and the chosen states against the rule that picks them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

from grid.ac.states import MAX_CORNERS, NEAR, budgeted_corner, check_states, dense_flows
from grid.capacity.inputs.candidates import make_candidates
from grid.capacity.study import capacity_study
from grid.load.scenarios import BaseLoadSpread, sample_base_load
from grid.network.cases import load_case


@pytest.mark.parametrize("budget", [None, 0.0, 1.0, 2.0, 2.5, 6.0])
def test_the_budgeted_corner_maximises_over_the_budgeted_box(budget):
    """max h . p over {centre + z half : |z_j| <= 1, sum |z_j| <= budget}, as an LP in (z+, z-)
    solved by scipy, against h at the corner the function returns."""
    rng = np.random.default_rng(4)
    h = rng.normal(size=6)
    lower = rng.uniform(0, 5, 6)
    upper = lower + rng.uniform(0, 3, 6)
    centre, half = (lower + upper) / 2, (upper - lower) / 2
    gain = h * half
    rows = [np.ones(12)] if budget is not None else None
    solved = linprog(np.r_[-gain, gain], A_ub=rows, b_ub=None if budget is None else [budget], bounds=[(0, 1)] * 12)
    assert h @ budgeted_corner(h, lower, upper, budget) == pytest.approx(h @ centre - solved.fun, abs=1e-9)


def test_states_are_the_binding_corners_and_the_most_loaded_scenarios():
    network = load_case("ieee14")
    scenarios = sample_base_load(network, BaseLoadSpread(), 300, np.random.default_rng(2))
    candidates = make_candidates(network, {bus.number: 60.0 for bus in network.buses if bus.base_load_mw > 0})
    study = capacity_study(network, scenarios, candidates, [0.05])
    firm = study.firm.vector(candidates)
    states = check_states(study, scenarios, dense_flows(study, scenarios), firm, study.firm.draw, corners=True,
                          worst=4)
    corners = [s for s in states if s.label.startswith("worst corner")]
    sampled = [s for s in states if s.label.startswith("scenario")]
    assert 0 < len(corners) <= MAX_CORNERS and len(sampled) == 4
    h = study.flows.rows(np.arange(len(network.lines)))
    limit = np.array([line.thermal_limit_mw for line in network.lines])
    names = [line.name for line in network.lines]
    for state in corners:  # each corner loads its line to within NEAR of its rating, drawn as labelled
        name, kind = state.label.split(" ")[4], state.label.split(" ")[5]
        l = names.index(name)
        sign = 1.0 if kind == "upper" else -1.0
        flow = sign * (h[l] @ state.withdrawal_mw + h[l, candidates.positions] @ np.where(state.drawn, firm, 0.0))
        assert flow >= (1 - NEAR) * limit[l] - 1e-9
    # The sampled ones are the scenarios with the highest DC loading, recomputed here.
    flows = scenarios.samples_mw @ h.T + h[:, candidates.positions] @ firm
    loading = (np.abs(flows) / limit).max(axis=1)
    expected = set(np.argsort(-loading)[:4].tolist())
    assert {int(s.label.split()[1]) - 1 for s in sampled} == expected
