"""The voltage ranges of docs/models/dlmp.md#eq-d-27 against the solver-free sweep (a second
formulation of LinDist3Flow), and the bilevel MILP they thin out against the full one."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from grid.errors import GridError
from grid.feeder.bilevel import DataCenterSite, Workload, aggregator_bilevel, aggregator_payment
from grid.feeder.inputs import DistributedGenerator, OpfSettings
from grid.feeder.lindist3flow import sweep_voltages
from grid.feeder.opf import dso_opf
from grid.feeder.voltage_range import Injection, box_ranges, sensitivity
from grid.network.three_phase import load_ieee37, load_ieee123

HEAD = 1.02


@pytest.fixture(scope="module")
def ieee123():
    return load_ieee123()


def _injections() -> list[Injection]:
    """A three-phase site at 66 (kW at power factor 0.9), its SVG on phase b, a generator on
    phase a at 64, and a one-phase load on bus 11 (phase a only): below and above regulators."""
    third = (1 / 3,) * 3
    return [Injection(66, 0.0, 600.0, third, (0.484 / 3,) * 3),
            Injection(66, -200.0, 200.0, (0.0,) * 3, (0.0, -1.0, 0.0)),
            Injection(64, -150.0, 0.0, (1.0, 0.0, 0.0)),
            Injection(11, 0.0, 40.0, (1.0, 0.0, 0.0), (0.5, 0.0, 0.0))]


def _swept(feeder, injections, values) -> dict:
    """The sweep's squared voltages with each injection at the given value added to the loads."""
    kw = {b: v.copy() for b, v in feeder.load_kw.items()}
    kvar = {b: v.copy() for b, v in feeder.load_kvar.items()}
    for injection, value in zip(injections, values):
        kw[injection.bus] = kw[injection.bus] + value * np.asarray(injection.kw)
        kvar[injection.bus] = kvar[injection.bus] + value * np.asarray(injection.kvar)
    loaded = dataclasses.replace(feeder, load_kw=kw, load_kvar=kvar)
    return {b: v ** 2 for b, v in sweep_voltages(loaded, HEAD).items()}


def test_each_range_end_is_the_sweep_at_the_corner_its_signs_pick(ieee123):
    """Exact, not just valid: for every node, the sweep at the corner the sensitivity's signs pick
    gives the range's least (and the opposite corner its greatest) to 1e-12 p.u.^2."""
    injections = _injections()
    sens = sensitivity(ieee123, HEAD, injections)
    ranges = box_ranges(ieee123, HEAD, injections)
    assert set(ranges) == {(b, k) for b, k in ieee123.nodes() if b != ieee123.head_bus}
    checked = 0
    for n, node in enumerate(sens.nodes[::17]):
        row = sens.s[sens.nodes.index(node)]
        lowest = np.where(row > 0, sens.low, sens.high)
        w_low = _swept(ieee123, injections, lowest)[node[0]][node[1]]
        w_high = _swept(ieee123, injections, sens.low + sens.high - lowest)[node[0]][node[1]]
        assert w_low == pytest.approx(ranges[node][0], abs=1e-12)
        assert w_high == pytest.approx(ranges[node][1], abs=1e-12)
        checked += 1
    assert checked >= 15
    # Below the regulator at 160-67 a site's full load moves voltages, and differently per phase.
    assert ranges[66, 0][1] - ranges[66, 0][0] > 0.01


def test_every_point_of_the_box_lies_within_the_ranges(ieee123):
    injections = _injections()
    ranges = box_ranges(ieee123, HEAD, injections)
    rng = np.random.default_rng(7)
    for _ in range(20):
        swept = _swept(ieee123, injections, [rng.uniform(d.low, d.high) for d in injections])
        for (bus, k), (least, most) in ranges.items():
            assert least - 1e-12 <= swept[bus][k] <= most + 1e-12


def test_no_injections_give_the_sweep_itself(ieee123):
    swept = {b: v ** 2 for b, v in sweep_voltages(ieee123, HEAD).items()}
    for (bus, k), (least, most) in box_ranges(ieee123, HEAD, []).items():
        assert least == most == pytest.approx(swept[bus][k], abs=1e-12)


def test_an_injection_off_the_feeder_or_upside_down_is_refused(ieee123):
    with pytest.raises(GridError, match="bus 9999 is not on"):
        box_ranges(ieee123, HEAD, [Injection(9999, 0.0, 1.0, (1.0, 0.0, 0.0))])
    with pytest.raises(GridError, match="need low <= high"):
        Injection(66, 1.0, 0.0, (1.0, 0.0, 0.0))


@pytest.mark.parametrize("svg", [False, True])
def test_the_thinned_bilevel_milp_pays_and_places_as_the_full_one(svg):
    """IEEE 37 with the floor binding at the weak end (a lateral generator at the margin): the
    MILP with D-27's ranges has fewer binaries and the same proven payment, and its decision,
    priced by the DSO's OPF alone, pays that payment (placements may tie, so not the same one)."""
    feeder = load_ieee37()
    settings = OpfSettings(substation_price_per_mwh=45.0, head_voltage_pu=1.0, v_min_pu=0.95)
    generators = (DistributedGenerator("G711", 711, 80.0, 60.0),)
    sites = (DataCenterSite(738, 270.0, power_factor=0.9, svg_kvar=40.0 if svg else 0.0),
             DataCenterSite(725, 270.0, power_factor=0.9), DataCenterSite(702, 270.0, power_factor=0.9))
    workload = Workload(total_kw=360.0, step_kw=90.0, svg_step_kvar=40.0, svg_cost_per_mvarh=2.0)
    results = [aggregator_bilevel(feeder, generators, settings, sites, workload, svg=svg, price_bound=1e4,
                                  linearization="strong-duality", tie_break_rule=False, voltage_ranges=tight)
               for tight in (True, False)]
    thin, full = results
    assert thin.solve.status == full.solve.status == "optimal"
    assert thin.solve.binaries < full.solve.binaries
    assert thin.payment_per_h == pytest.approx(full.payment_per_h, rel=1e-9)
    opf = dso_opf(feeder, generators, settings, **thin.decision.opf_inputs(sites))
    assert aggregator_payment(sites, thin.decision, opf, workload) == pytest.approx(full.payment_per_h, rel=1e-7)
