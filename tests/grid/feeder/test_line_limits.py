"""Line limits in the DSO's OPF (docs/models/dlmp.md#eq-d-29): the bound by hand, a binding limit
priced as congestion and worth its finite difference, the flow ranges against flows summed by
hand, and the aggregator's bilevel problem with a limit that binds against enumeration."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from grid.feeder.bilevel import DataCenterSite, Workload, aggregator_bilevel
from grid.feeder.inputs import DistributedGenerator, OpfSettings, line_bounds_kw
from grid.feeder.opf import dso_opf
from grid.feeder.voltage_range import Injection, flow_ranges
from grid.network.three_phase import load_ieee37, load_ieee123
from tests.grid.feeder.test_three_phase import _enumerated_payments

# A wide band, so that only the line limit can bind.
LOOSE = OpfSettings(substation_price_per_mwh=45.0, head_voltage_pu=1.0, v_min_pu=0.8, v_max_pu=1.2, line_limits=True)
LATERAL_DG = (DistributedGenerator("G711", 711, 100.0, 60.0),)


@pytest.fixture(scope="module")
def feeder():
    return load_ieee37()


def _below(feeder, bus):
    """The spot load (kW per phase) at and below ``bus``, summed by hand over the tree."""
    return sum((feeder.load_kw[b] for b in _tree(feeder, bus)), np.zeros(3))


def test_the_bound_is_the_ampacity_at_the_lowest_voltage_less_the_cut(feeder):
    # 703-730 is 2/0 AA, 230 A: 0.8 x 4,800 / sqrt(3) V x 230 A = 509.9 kW per phase.
    bounds = line_bounds_kw(feeder, LOOSE)
    assert bounds[703, 730, 0] == pytest.approx(0.8 * 4800 / math.sqrt(3) * 230 / 1e3)
    assert len(bounds) == 3 * len(feeder.segments)
    cut = dataclasses.replace(LOOSE, line_cut=((703, 730, 1, 100.0), (703, 730, 2, 1e6)))
    bounds = line_bounds_kw(feeder, cut)
    assert bounds[703, 730, 1] == pytest.approx(0.8 * 4800 / math.sqrt(3) * 230 / 1e3 - 100.0)
    assert bounds[703, 730, 2] == 0.0   # never below zero
    assert line_bounds_kw(feeder, dataclasses.replace(LOOSE, line_limits=False)) == {}
    switches = [(s.from_bus, s.to_bus) for s in load_ieee123().segments if s.config == "switch"]
    assert not set(switches) & {(i, j) for i, j, _ in line_bounds_kw(load_ieee123(), LOOSE)}


def _cut_to(feeder, kw_through):
    """LOOSE with 703-730's phase-a bound cut to ``kw_through`` kW."""
    bound = line_bounds_kw(feeder, LOOSE)[703, 730, 0]
    return dataclasses.replace(LOOSE, line_cut=((703, 730, 0, bound - kw_through),))


def test_a_binding_limit_prices_congestion_below_it_and_is_worth_its_cost(feeder):
    """703-730 phase a held 40 kW below the load behind it: the generator at 711 (behind it, 60
    $/MWh) makes up the 40 kW, so every bus behind the segment pays 60 $/MWh on phase a, 15 of it
    congestion, and the rest of the feeder pays the substation's 45. The parts add up to the DLMP;
    the bound's multiplier is what one more kW through it saves (a finite difference)."""
    behind = _below(feeder, 730)[0]
    opf = dso_opf(feeder, LATERAL_DG, _cut_to(feeder, behind - 40.0))
    assert opf.generator_kw["G711"][0] == pytest.approx(40.0, abs=1e-6)
    downstream = {730, 709, 708, 731, 732, 733, 734, 737, 738, 711, 740, 741, 710, 735, 736}
    for bus, price in opf.dlmp_p.items():
        np.testing.assert_allclose(opf.parts.total(bus), price, atol=1e-6)
        expected = 60.0 if bus in downstream else 45.0
        assert price[0] == pytest.approx(expected, abs=1e-6), bus
        assert opf.parts.congestion[bus][0] == pytest.approx(expected - 45.0, abs=1e-6)
        np.testing.assert_allclose(price[1:], 45.0, atol=1e-6)
    d = 1.0   # kW
    more = dso_opf(feeder, LATERAL_DG, _cut_to(feeder, behind - 40.0 + d)).cost_per_h
    assert (opf.cost_per_h - more) / (d / 1e3) == pytest.approx(15.0, rel=1e-9)


def test_a_limit_no_generator_can_relieve_is_one_line(feeder):
    from grid.errors import InfeasibleNetworkError
    with pytest.raises(InfeasibleNetworkError, match="OPF on ieee37 is infeasible"):
        dso_opf(feeder, (), _cut_to(feeder, _below(feeder, 730)[0] - 40.0))


def test_flow_ranges_hold_every_flow_and_reach_their_ends(feeder):
    """A site at 738 (0 to 300 kW, a third per phase) and the generator at 711 on phase a (0 to 100
    kW, a negative load): each segment's range is the spot load below it plus the extremes of the
    injections below it, summed by hand."""
    injections = [Injection(738, 0.0, 300.0, (1 / 3,) * 3), Injection(711, 0.0, 100.0, (-1.0, 0.0, 0.0))]
    ranges = flow_ranges(feeder, injections)
    behind = {s.to_bus: {738: 738 in _tree(feeder, s.to_bus), 711: 711 in _tree(feeder, s.to_bus)}
              for s in feeder.segments}
    for s in feeder.segments:
        base = _below(feeder, s.to_bus)
        for k in s.phases:
            low = base[k] - (100.0 if behind[s.to_bus][711] and k == 0 else 0.0)
            high = base[k] + (100.0 if behind[s.to_bus][738] else 0.0)
            assert ranges[s.from_bus, s.to_bus, k] == pytest.approx((low, high), abs=1e-9)


def _tree(feeder, bus):
    children = {}
    for s in feeder.segments:
        children.setdefault(s.from_bus, []).append(s.to_bus)
    out, stack = set(), [bus]
    while stack:
        b = stack.pop()
        out.add(b)
        stack += children.get(b, [])
    return out


@pytest.mark.parametrize("linearization", ["mccormick", "strong-duality"])
@pytest.mark.parametrize("voltage_ranges", [True, False])
def test_bilevel_with_a_binding_line_limit_equals_enumeration(feeder, linearization, voltage_ranges):
    """Two sites, 738 behind 703-730 and 725 not, 270 kW in three 90 kW steps at power factor 1,
    703-730 phase a held to 20 kW above its load: one step at 738 (30 kW on phase a) already needs
    the generator at 711, so placements there pay 60 $/MWh on phase a. The MILP (with and without
    the flow ranges that leave out rows no placement reaches) finds the enumeration's best."""
    settings = _cut_to(feeder, _below(feeder, 730)[0] + 20.0)
    sites = (DataCenterSite(738, max_kw=270.0, power_factor=1.0), DataCenterSite(725, max_kw=270.0, power_factor=1.0))
    workload = Workload(total_kw=270.0, step_kw=90.0)
    enumerated = _enumerated_payments(feeder, LATERAL_DG, settings, sites, workload, {})
    free = _enumerated_payments(feeder, LATERAL_DG, dataclasses.replace(settings, line_limits=False), sites,
                                workload, {})
    assert enumerated != free   # the limit moves some placement's payment
    best = min(enumerated, key=enumerated.get)
    result = aggregator_bilevel(feeder, LATERAL_DG, settings, sites, workload, svg=False, price_bound=1e4,
                                linearization=linearization, tie_break_rule=False, voltage_ranges=voltage_ranges)
    assert result.payment_per_h == pytest.approx(enumerated[best], rel=1e-7)
    opf = dso_opf(feeder, LATERAL_DG, settings, **result.decision.opf_inputs(sites))
    for s in sites:
        np.testing.assert_allclose(result.prices_p[s.bus], opf.dlmp_p[s.bus], atol=1e-5)
