"""Phase shifters in the DC model (docs/models/capacity.md#phase-shifters): the flows a shifter
causes with no withdrawal, against MATPOWER's makeBdc rebuilt here with numpy and against the
loop flow worked by hand, and what they do to capacity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grid.capacity.inputs.candidates import make_candidates
from grid.capacity.inputs.criteria import SecurityCriteria
from grid.capacity.study import capacity_study
from grid.load.scenarios import Scenarios
from grid.network.cases import load_case
from grid.network.ratings import phase_shift_flows
from tests.grid.network.test_cases import write_m

SHIFT_DEG = 5.0
X = 0.1


def ring(tmp_path, shift: float = SHIFT_DEG, tap: float = 0.0):
    """Buses 1 (reference, generator), 2 and 3 on a ring of equal reactances, 100 MW ratings; a
    phase shifter on branch 1-2."""
    path = write_m(tmp_path, [(1, 3, 0.0), (2, 1, 0.0), (3, 1, 0.0)], [(1, 0.0, 1000.0, 1)],
                   [(1, 2, X, 100, tap, shift, 1), (2, 3, X, 100, 0, 0, 1), (1, 3, X, 100, 0, 0, 1)])
    return load_case(str(path))


def make_bdc_flows(network, shift_deg: np.ndarray, tap: np.ndarray, base_mva: float = 100.0) -> np.ndarray:
    """MATPOWER's makeBdc and a DC power flow with no load: Pf = Bf theta + Pfinj, with
    Bbus theta = -Pbusinj on the buses but the reference (theta_ref = 0), all in per unit."""
    index = {n: i for i, n in enumerate(network.bus_numbers)}
    lines = network.lines
    x = np.array([0.1 for _ in lines])
    b = 1.0 / (x * np.where(tap == 0, 1.0, tap))
    cft = np.zeros((len(lines), len(index)))
    for l, line in enumerate(lines):
        cft[l, index[line.from_bus]], cft[l, index[line.to_bus]] = 1.0, -1.0
    bf = b[:, None] * cft
    bbus = cft.T @ bf
    pfinj = b * (-np.radians(shift_deg))
    pbusinj = cft.T @ pfinj
    keep = [i for i in range(len(index)) if i != index[network.reference_bus]]
    theta = np.zeros(len(index))
    theta[keep] = np.linalg.solve(bbus[np.ix_(keep, keep)], -pbusinj[keep])
    return base_mva * (bf @ theta + pfinj)


def test_shifter_flows_are_makebdcs_and_the_hand_loop_flow(tmp_path):
    network = ring(tmp_path)
    assert any("phase-shifting branches" in note for note in network.notes)
    flows = phase_shift_flows(network)
    expected = make_bdc_flows(network, np.array([SHIFT_DEG, 0.0, 0.0]), np.zeros(3))
    np.testing.assert_allclose(flows, expected, atol=1e-9)
    # By hand: around the loop 1 -> 2 -> 3 -> 1 the angle drops sum to the shift, so with three
    # equal reactances a flow F = -baseMVA * shift / (3 x) circulates (negative: from 1 to 3 to 2).
    loop = -100.0 * math.radians(SHIFT_DEG) / (3 * X)
    np.testing.assert_allclose(flows, [loop, loop, -loop], atol=1e-9)


def test_a_tap_scales_the_shifters_push_as_makebdc_does(tmp_path):
    network = ring(tmp_path, tap=1.05)
    expected = make_bdc_flows(network, np.array([SHIFT_DEG, 0.0, 0.0]), np.array([1.05, 0.0, 0.0]))
    np.testing.assert_allclose(phase_shift_flows(network), expected, atol=1e-9)


def test_a_shifter_on_a_tree_moves_nothing(tmp_path):
    path = write_m(tmp_path, [(1, 3, 0.0), (2, 1, 10.0)], [(1, 10.0, 100.0, 1)], [(1, 2, X, 100, 0, 10.0, 1)])
    network = load_case(str(path))
    assert network.lines[0].shift_flow_mw != 0.0 and np.all(phase_shift_flows(network) == 0.0)


def test_firm_capacity_counts_the_loop_flow(tmp_path):
    """A candidate at bus 3 with no background load: 2/3 of its withdrawal runs on line 1-3, 1/3
    on 1-2-3. The shifter's loop flow adds -F = 29.09 MW on 1-3, so 1-3 binds at
    (100 - 29.09) * 3/2 MW instead of 150 MW."""
    loop = -100.0 * math.radians(SHIFT_DEG) / (3 * X)
    for shift, expected in ((0.0, 150.0), (SHIFT_DEG, (100.0 + loop) * 1.5)):
        folder = tmp_path / f"shift{shift:g}"
        folder.mkdir()
        network = ring(folder, shift=shift)
        zeros = np.zeros((10, 3))
        scenarios = Scenarios(network.bus_numbers, zeros, zeros[0], zeros[0])
        study = capacity_study(network, scenarios, make_candidates(network, {3: 400.0}), [0.1],
                               criteria=SecurityCriteria(draw="full"))
        assert study.firm.capacity_mw[3] == pytest.approx(expected, abs=1e-6)
        assert study.firm.limited_by[3] == "line 1-3 upper limit"
