"""Each DLMP's parts (docs/models/dlmp.md#eq-d-23), read from the voltage rows' duals, against the
DLMP read from the balances' duals, and the binding limit's multiplier against a finite
difference of the OPF's cost."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from grid.feeder.inputs import DistributedGenerator, OpfSettings
from grid.feeder.load_shapes import hourly_shape
from grid.feeder.opf import dso_opf
from grid.feeder.periods import Period, period_inputs
from grid.network.three_phase import load_ieee37, load_ieee123

TIGHT = OpfSettings(substation_price_per_mwh=45.0, head_voltage_pu=1.0, v_min_pu=0.95)
LATERAL_DG = (DistributedGenerator("G711", 711, 100.0, 60.0),)


@pytest.fixture(scope="module")
def feeder():
    return load_ieee37()


def _hours(feeder):
    scale = hourly_shape(feeder, [0.5, 0.8, 1.0, 0.95])
    scale[3, :, 2] *= 1.35   # phase c heavier in the last hour: its floor binds too
    return [Period(f"h{t}", price, scale[t]) for t, price in enumerate([30.0, 45.0, 60.0, 52.0])]


def test_the_parts_add_up_to_the_dlmp_in_every_hour_bus_and_phase(feeder):
    """Four hours from a light one where nothing binds to a heavy one where the floor binds on two
    phases and the lateral generator is at the margin: energy + loss + congestion + voltage equal
    the balance's dual to 1e-6 $/MWh everywhere; the energy part is the hour's substation price;
    without a binding limit the voltage part is zero."""
    bound = []
    for period in _hours(feeder):
        opf = dso_opf(*period_inputs(feeder, LATERAL_DG, TIGHT, period))
        parts = opf.parts
        for bus, price in opf.dlmp_p.items():
            np.testing.assert_allclose(parts.total(bus), price, atol=1e-6)
            np.testing.assert_allclose(parts.energy[bus], period.substation_price_per_mwh, atol=1e-9)
            assert not parts.loss[bus].any() and not parts.congestion[bus].any()
            if not parts.binding:
                np.testing.assert_allclose(parts.voltage[bus], 0.0, atol=1e-9)
        bound.append(len(parts.binding))
    assert bound[0] == 0 and max(bound) >= 2


def test_a_binding_limit_is_at_the_floor_and_worth_its_cost(feeder):
    """The limit named binding sits at the floor, and its multiplier is the cost of raising the
    floor of squared voltage there: (cost(w_min + d) - cost(w_min - d)) / 2d, the floor raised for
    every bus (only the binding one counts)."""
    opf = dso_opf(feeder, LATERAL_DG, TIGHT)
    ((bus, phase, value),) = opf.parts.binding
    assert (bus, phase) == (740, "a") and value > 0
    assert opf.voltage_pu[bus][0] == pytest.approx(0.95, abs=1e-9)
    d = 1e-6

    def cost(w_min: float) -> float:
        return dso_opf(feeder, LATERAL_DG, dataclasses.replace(TIGHT, v_min_pu=math.sqrt(w_min))).cost_per_h

    numeric = (cost(0.95 ** 2 + d) - cost(0.95 ** 2 - d)) / (2 * d)
    assert value == pytest.approx(numeric, rel=1e-4)


def test_a_load_on_another_phase_relieves_the_limit_below_the_energy_price(feeder):
    """The sqrt(3) coupling (D-2): with phase a's floor binding at 740, more load on phase c of the
    same lateral raises phase a's voltage, so its voltage part is negative."""
    opf = dso_opf(feeder, LATERAL_DG, TIGHT)
    assert opf.parts.voltage[740][0] > 1.0 and opf.parts.voltage[740][2] < -0.1


def test_a_limit_beyond_a_regulator_scales_the_drops_above_it_by_the_ratio_squared():
    """IEEE 123 with 300 kW more on the phase-a lateral at bus 114 and a dear generator at 113: the
    ceiling binds at bus 83, phase b, below the regulator 160-67 (ratio 1.0125 on phase b). The
    parts add up to the DLMP on every phase of every bus, also above the regulator, where each
    drop reaches bus 83 scaled by the ratio squared (D-23, D-26); the DLMP at bus 60, phase b, is
    the cost's finite difference; a single-phase bus has parts on its own phase only."""
    feeder = load_ieee123()
    generators = (DistributedGenerator("G113", 113, 400.0, 80.0),)
    settings = OpfSettings(substation_price_per_mwh=45.0, head_voltage_pu=1.0, v_min_pu=0.95)
    extra = {114: np.array([300.0, 0.0, 0.0])}
    opf = dso_opf(feeder, generators, settings, extra_kw=extra)
    assert [(bus, phase) for bus, phase, _ in opf.parts.binding] == [(83, "b")]
    assert feeder.parent_segment()[67].tap[1] == pytest.approx(1.0125)
    for bus, dlmp in opf.dlmp_p.items():
        np.testing.assert_allclose(opf.parts.total(bus), dlmp, atol=1e-6)
    assert abs(opf.dlmp_p[60][1] - 45.0) > 10.0   # the ceiling moves prices above the regulator

    def cost(kw: float) -> float:
        more = {**extra, 60: np.array([0.0, kw, 0.0])}
        return dso_opf(feeder, generators, settings, extra_kw=more).cost_per_h

    step = 1.0  # kW
    assert opf.dlmp_p[60][1] == pytest.approx((cost(step) - cost(-step)) / (2 * step) * 1e3, rel=1e-5)
    assert np.isnan(opf.parts.voltage[114][1:]).all() and not np.isnan(opf.parts.voltage[114][0])
