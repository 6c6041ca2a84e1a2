"""The pandapower export of an allocation (grid/ac/export.py): the JSON, loaded and solved by
pandapower alone, reproduces the AC check's own power flow of the same state (the case's loads
with the allocation drawn in full), and holds the new loads apart at the check's power factor."""

from __future__ import annotations

import io
import math

import numpy as np
import pandapower as pp
import pytest

from grid.ac.case_model import ac_case
from grid.ac.check import AcSettings, BackgroundStates, check_allocation
from grid.ac.export import allocation_json
from grid.errors import GridError

ALLOCATION = {9: 25.0, 14: 12.0, 4: 30.0}
SETTINGS = AcSettings(power_factor=0.9)


def solved(text: str):
    net = pp.from_json(io.StringIO(text))
    pp.runpp(net, algorithm="nr", calculate_voltage_angles=True, trafo_model="pi", enforce_q_lims=True,
             tolerance_mva=1e-8, numba=False)
    return net


def test_the_exported_net_solves_to_the_ac_checks_state():
    text = allocation_json("ieee14", ALLOCATION, SETTINGS)
    assert allocation_json("ieee14", ALLOCATION, SETTINGS) == text  # byte for byte: a run's file is reproducible
    net = solved(text)
    check = check_allocation("ieee14", ALLOCATION, BackgroundStates.case_load(), SETTINGS)
    run = check.states[0].with_load
    assert run.converged
    buses = list(check.buses)
    np.testing.assert_allclose(net.res_bus.vm_pu.loc[buses], run.vm_pu, atol=1e-6)
    np.testing.assert_allclose(net.res_bus.va_degree.loc[buses], run.va_degree, atol=1e-6)
    # Branch flows: both ends' MW of every branch, in the case's orientation (Q of a transformer
    # carries its charging, which the check moves; lines' Q compare as they are).
    flows = np.full((len(check.lines), 4), np.nan)
    for kind in ac_case("ieee14").branches:
        values = net[kind.table].loc[kind.elements, list(kind.columns)].to_numpy(dtype=float)
        values[kind.turned] = values[kind.turned][:, [2, 3, 0, 1]]
        flows[kind.positions] = values
    np.testing.assert_allclose(flows[:, [0, 2]], run.flows[:, [0, 2]], atol=1e-6)
    mva = np.maximum(np.hypot(flows[:, 0], flows[:, 1]), np.hypot(flows[:, 2], flows[:, 3]))
    lines = [kind for kind in ac_case("ieee14").branches if kind.table == "res_line"][0].positions
    np.testing.assert_allclose(100 * mva[lines] / check.rating_mva[lines], run.loading_pct[lines], atol=1e-6)


def test_the_new_loads_stand_apart_at_the_power_factor():
    net = pp.from_json(io.StringIO(allocation_json("ieee14", ALLOCATION, SETTINGS)))
    new = net.load[net.load.name.str.startswith("new load")]
    assert dict(zip(new.bus.astype(int), new.p_mw)) == ALLOCATION
    tan_phi = math.sqrt(1 - 0.9 ** 2) / 0.9
    np.testing.assert_allclose(new.q_mvar, new.p_mw * tan_phi, rtol=1e-12)
    case = net.load[net.load.name.str.startswith("case load")]
    assert case.p_mw.sum() == pytest.approx(259.0)  # IEEE 14's PD
    # The units follow the added 67 MW as the check schedules them; the rest is the reference's.
    assert "67 MW of new load at 3 buses" in net.name


def test_a_bus_the_case_lacks_is_one_line():
    with pytest.raises(GridError, match="allocation_mw names bus 99, which is not a connected bus of case ieee14"):
        allocation_json("ieee14", {99: 1.0})
