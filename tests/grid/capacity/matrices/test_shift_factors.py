"""FlowModel (grid/capacity/matrices/shift_factors.py): flows through the bus angles equal the dense
shift factors times the withdrawals, on meshed networks under both slack models and on a radial
one (the path matrix)."""

from __future__ import annotations

import numpy as np
import pytest

from grid.capacity.matrices.shift_factors import FlowModel, shift_factors
from grid.network.cases import CaseOptions, load_case


@pytest.mark.parametrize("case, options", [
    ("ieee118", None),                                   # meshed, generators share the slack
    ("ieee118", CaseOptions(slack="reference")),        # meshed, one reference bus
    ("ieee33bw", None),                                  # radial: the path matrix, no angles
    ("ieee14", CaseOptions(slack="reference")),
])
def test_flows_through_the_angles_equal_dense_shift_factors_times_the_withdrawals(case, options):
    network = load_case(case, options)
    model = FlowModel(network)
    h = shift_factors(network)                        # row by row from the LU (or the tree)
    x = np.random.default_rng(3).normal(0.0, 10.0, size=(len(network.buses), 7))
    expected = h @ x
    scale = np.abs(expected).max()
    np.testing.assert_allclose(model.flows(x), expected, atol=1e-10 * scale)
    np.testing.assert_allclose(model.flows(x[:, 0]), expected[:, 0], atol=1e-10 * scale)
