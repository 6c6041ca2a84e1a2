"""The feeder built in OpenDSS (grid/feeder/opendss.py) against an AC power flow written here from
scratch: a backward-forward sweep of the radial three-phase feeder in complex phasors, constant-
power wye loads, the series impedances of the phases each segment carries, ideal regulators at
their ratios, a stiff head. Two AC solvers that agree to 1e-6 p.u. say the OpenDSS model is our
feeder; the gap to LinDist3Flow is then the linearization's. Both feeders: IEEE 37 (three-phase)
and IEEE 123 (one- and two-phase laterals, four regulators)."""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest

from grid.errors import GridError
from grid.feeder.lindist3flow import sweep_voltages
from grid.feeder.opendss import opendss_flow
from grid.network.three_phase import load_ieee37, load_ieee123


@pytest.fixture(scope="module")
def feeder():
    return load_ieee37()


def sweep_ac(feeder, head_pu, kw, kvar, sweeps=200, currents=None):
    """Backward-forward sweep: load currents conj(S / V) at each bus and phase, branch currents
    summed from the leaves (a regulator of ratio t draws t times its secondary current), voltages
    V_to = t V_from - Z I from the head; magnitudes in p.u., NaN on a phase a bus lacks.
    ``currents``, a dict, gets each segment's branch current magnitude per phase (A)."""
    base = feeder.base_kv_ll * 1e3 / math.sqrt(3.0)
    a = cmath.exp(-2j * math.pi / 3)
    head = head_pu * base * np.array([1.0, a, a * a])
    volts = {bus: head.copy() for bus in feeder.buses}
    z = {s.to_bus: s.r_ohm + 1j * s.x_ohm for s in feeder.segments}
    tap = {s.to_bus: np.array(s.tap) for s in feeder.segments}
    for _ in range(sweeps):
        current = {bus: np.conj((kw[bus] + 1j * kvar[bus]) * 1e3 / volts[bus]) for bus in feeder.buses}
        for s in reversed(feeder.segments):   # leaves first
            current[s.from_bus] = current[s.from_bus] + tap[s.to_bus] * current[s.to_bus]
        before = {bus: v.copy() for bus, v in volts.items()}
        for s in feeder.segments:             # the head first
            volts[s.to_bus] = tap[s.to_bus] * volts[s.from_bus] - z[s.to_bus] @ current[s.to_bus]
        if max(np.abs(volts[b] - before[b]).max() for b in feeder.buses) < 1e-9 * base:
            break
    lacking = {bus: [k for k in range(3) if k not in feeder.bus_phases[bus]] for bus in feeder.buses}
    if currents is not None:
        currents.update({(s.from_bus, s.to_bus): np.where(np.isin(np.arange(3), lacking[s.to_bus]), np.nan,
                                                          np.abs(current[s.to_bus])) for s in feeder.segments})
    return {bus: np.where(np.isin(np.arange(3), lacking[bus]), np.nan, np.abs(v) / base) for bus, v in volts.items()}


def _both_flows(feeder, head_pu, sites_kw, svg, gen):
    """OpenDSS and the sweep at the spot loads plus data-center sites at pf 0.9 (kW per phase by
    bus), SVG injections and generators (per phase by bus): (OpenDSS's flow, the sweep's voltages)."""
    tan = math.tan(math.acos(0.9))
    extra_kvar = {bus: kw * tan for bus, kw in sites_kw.items()}
    ac = opendss_flow(feeder, head_pu, extra_kw=sites_kw, extra_kvar=extra_kvar, svg_kvar=svg, generator_kw=gen)
    kw = {b: feeder.load_kw[b] + sites_kw.get(b, 0) - gen.get(b, 0) for b in feeder.buses}
    kvar = {b: feeder.load_kvar[b] + extra_kvar.get(b, 0) - svg.get(b, 0) for b in feeder.buses}
    return ac, sweep_ac(feeder, head_pu, kw, kvar)


def test_opendss_gives_the_sweeps_voltages_with_data_centers_svgs_and_a_generator(feeder):
    """The spot loads, three data-center sites of 500 kW at pf 0.9, an SVG injecting 200 kvar on two
    phases and a generator of 80 kW on phase a: OpenDSS and the sweep agree to 1e-6 p.u. everywhere,
    and the losses are the head's power less the loads'."""
    sites_kw = {738: np.full(3, 500 / 3), 725: np.full(3, 500 / 3), 731: np.full(3, 500 / 3)}
    ac, swept = _both_flows(feeder, 1.03, sites_kw, {738: np.array([200.0, 0.0, 200.0])},
                            {711: np.array([80.0, 0.0, 0.0])})
    for bus in feeder.buses:
        np.testing.assert_allclose(ac.voltage_pu[bus], swept[bus], atol=1e-6)
    assert 20.0 < ac.losses_kw < 200.0 and ac.iterations >= 2


def test_linear_voltages_are_close_to_ac_and_above_it_at_the_far_end(feeder):
    """LinDist3Flow drops the losses, so at the spot loads it puts the far end higher than AC, by
    at most a few thousandths of a p.u. here."""
    ac = opendss_flow(feeder, 1.0)
    linear = sweep_voltages(feeder, 1.0)
    error = np.array([linear[b] - ac.voltage_pu[b] for b in feeder.buses])
    assert 0.0 < error.max() < 0.005 and (linear[740][0] > ac.voltage_pu[740][0])


def test_opendss_gives_the_sweeps_voltages_on_ieee123_with_laterals_and_regulators():
    """IEEE 123 at its stated taps, two data-center sites of 300 kW at pf 0.9 on three-phase buses,
    an SVG on one phase and a generator of 30 kW on a phase-a lateral: OpenDSS and the sweep agree
    to 1e-6 p.u. on every phase each bus has, and neither reports a phase a bus lacks."""
    feeder = load_ieee123()
    ac, swept = _both_flows(feeder, 1.0, {66: np.full(3, 100.0), 83: np.full(3, 100.0)},
                            {66: np.array([0.0, 0.0, 50.0])}, {111: np.array([30.0, 0.0, 0.0])})
    for bus in feeder.buses:
        np.testing.assert_allclose(ac.voltage_pu[bus], swept[bus], atol=1e-6)
        assert np.isnan(ac.voltage_pu[bus]).sum() == 3 - len(feeder.bus_phases[bus])
    # The head regulator's six taps up: bus 149 is 1.0375 p.u. on every phase.
    np.testing.assert_allclose(ac.voltage_pu[149], 1.0375, atol=1e-6)


def test_a_flow_that_does_not_converge_is_one_line(feeder):
    heavy = {bus: np.full(3, 3e3) for bus in (738, 741, 740)}   # 27 MW on the far laterals
    with pytest.raises(GridError, match=r"OpenDSS: the AC power flow of ieee37 did not converge in \d+ iterations"):
        opendss_flow(feeder, 1.0, extra_kw=heavy)


def test_opendss_segment_currents_are_the_sweeps_on_ieee123():
    """Each segment's current per phase (A) against the sweep's branch currents, with laterals,
    regulators (the line after its transformers carries the secondary current) and a site."""
    feeder = load_ieee123()
    sites = {66: np.full(3, 150.0)}
    ac = opendss_flow(feeder, 1.0, extra_kw=sites)
    kw = {b: feeder.load_kw[b] + sites.get(b, 0) for b in feeder.buses}
    swept: dict = {}
    sweep_ac(feeder, 1.0, kw, feeder.load_kvar, currents=swept)
    assert set(ac.current_a) == set(swept)
    for segment, amps in swept.items():
        np.testing.assert_allclose(ac.current_a[segment], amps, rtol=1e-5, atol=1e-4, err_msg=str(segment))
    head = ac.current_a[feeder.segments[0].from_bus, feeder.segments[0].to_bus]
    # 3.94 MW at 2.4 kV a phase, phase a the most loaded: some 500 to 700 A a phase at the head.
    assert 400.0 < np.nanmax(head) < 800.0
