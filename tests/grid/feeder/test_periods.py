"""A day on the feeder (docs/models/dlmp.md#eq-d-18): each hour's OPF against a LinDist3Flow OPF
written here from scratch as matrices and solved by scipy's linprog, and the load shapes against
the raw MATPOWER file."""

from __future__ import annotations

import math
import re
from datetime import datetime

import numpy as np
import pytest
from scipy.optimize import linprog

from grid.errors import GridError
from grid.feeder.inputs import DistributedGenerator, OpfSettings
from grid.feeder.load_shapes import (
    ACTIVSG2000_SERIES,
    activsg2000_area_loads,
    activsg2000_shape,
    flat_shape,
    hourly_shape,
)
from grid.feeder.opf import dso_opf
from grid.feeder.periods import Period, period_inputs, snapshot
from grid.network.change_tables import case_path
from grid.network.three_phase import load_ieee37, load_ieee123

SETTINGS = OpfSettings(substation_price_per_mwh=45.0, head_voltage_pu=1.0, v_min_pu=0.95)
GENERATORS = (DistributedGenerator("G711", 711, 100.0, 60.0), DistributedGenerator("G733", 733, 80.0, 40.0))


@pytest.fixture(scope="module")
def feeder():
    return load_ieee37()


def independent_opf(feeder, generators, settings, load_kw, load_kvar):
    """The DSO's OPF written again, not through Pyomo: columns [w (bus, phase), P, Q (segment,
    phase), head (phase), PG (generator, phase)]; LinDist3Flow with its sqrt(3) coupling written out
    here; balances with the load on the right-hand side, so that each balance's marginal is its
    DLMP ($/MWh with flows in MW). A phase a segment lacks has no voltage row and its flows are held
    at zero; a phase a bus lacks has no balance and reads NaN; a regulator's ratio t multiplies the
    sending end's w by t^2; with line limits each rated line's P is boxed. Returns (cost $/h,
    {bus: DLMP per phase}, {bus: V per phase})."""
    buses, segments = list(feeder.buses), list(feeder.segments)
    nb, ns, ng = len(buses), len(segments), len(generators)
    w0, p0, q0 = 0, 3 * nb, 3 * nb + 3 * ns
    h0, g0 = q0 + 3 * ns, q0 + 3 * ns + 3
    n = g0 + 3 * ng
    at = {bus: i for i, bus in enumerate(buses)}
    s3 = math.sqrt(3.0)
    scale = 1e6 / (feeder.base_kv_ll * 1000.0 / s3) ** 2   # p.u. of w per ohm x MW
    rows, rhs = [], []

    def row():
        rows.append(np.zeros(n))
        return rows[-1]

    for s, seg in enumerate(segments):
        r, x = seg.r_ohm, seg.x_ohm
        # Arnold et al. 2016: the voltage drop of phase k from the flows of phase m, a = exp(-j2pi/3).
        for k in seg.phases:
            a = row()
            a[w0 + 3 * at[seg.to_bus] + k], a[w0 + 3 * at[seg.from_bus] + k] = 1.0, -seg.tap[k] ** 2
            for m in range(3):
                if m == k:
                    mp, mq = -2 * r[k, k], -2 * x[k, k]
                else:
                    # Balanced voltages: phase m's voltage is (m - k) thirds of a turn behind phase k's.
                    angle = -2 * math.pi * ((m - k) % 3) / 3
                    mp = -2 * (r[k, m] * math.cos(angle) - x[k, m] * math.sin(angle))
                    mq = -2 * (x[k, m] * math.cos(angle) + r[k, m] * math.sin(angle))
                a[p0 + 3 * s + m] -= scale * mp
                a[q0 + 3 * s + m] -= scale * mq
            rhs.append(0.0)
    equal = len(rows)
    balance = {}
    for j in buses:
        if j == feeder.head_bus:
            continue
        for k in feeder.bus_phases[j]:
            for kind, base in (("p", p0), ("q", q0)):
                a = row()
                for s, seg in enumerate(segments):
                    if seg.to_bus == j:
                        a[base + 3 * s + k] += 1.0
                    if seg.from_bus == j:
                        a[base + 3 * s + k] -= 1.0
                if kind == "p":
                    for g, gen in enumerate(generators):
                        if gen.bus == j:
                            a[g0 + 3 * g + k] += 1.0
                    balance[j, k] = len(rows) - 1
                rhs.append((load_kw if kind == "p" else load_kvar)[j][k] / 1e3)
    for k in range(3):
        a = row()
        a[h0 + k] = 1.0
        for s, seg in enumerate(segments):
            if seg.from_bus == feeder.head_bus:
                a[p0 + 3 * s + k] -= 1.0
        rhs.append(load_kw[feeder.head_bus][k] / 1e3)
    cost = np.zeros(n)
    cost[h0:h0 + 3] = settings.substation_price_per_mwh
    bounds = [(settings.v_min_pu ** 2, settings.v_max_pu ** 2)] * (3 * nb) + [(None, None)] * (6 * ns + 3)
    for g, gen in enumerate(generators):
        cost[g0 + 3 * g:g0 + 3 * g + 3] = gen.cost_per_mwh
        bounds += [(0.0, gen.max_kw_per_phase / 1e3)] * 3
    for k in range(3):
        bounds[w0 + 3 * at[feeder.head_bus] + k] = (settings.head_voltage_pu ** 2,) * 2
    for s, seg in enumerate(segments):
        for k in set(range(3)) - set(seg.phases):
            bounds[w0 + 3 * at[seg.to_bus] + k] = (0.0, 0.0)
            bounds[p0 + 3 * s + k] = bounds[q0 + 3 * s + k] = (0.0, 0.0)
    for g, gen in enumerate(generators):
        for k in set(range(3)) - set(feeder.bus_phases[gen.bus]):
            bounds[g0 + 3 * g + k] = (0.0, 0.0)
    if settings.line_limits:   # each rated line's active flow: the ampacity at the lowest voltage, less any cut
        cut = {(i, j, k): kw for i, j, k, kw in settings.line_cut}
        v_ln = feeder.base_kv_ll * 1000.0 / s3
        for s, seg in enumerate(segments):
            for k in seg.phases if seg.ampacity_a else ():
                kw = max(settings.v_min_pu * v_ln * seg.ampacity_a / 1e3 - cut.get((seg.from_bus, seg.to_bus, k), 0.0),
                         0.0) + settings.line_slack_kw
                bounds[p0 + 3 * s + k] = (-kw / 1e3, kw / 1e3)
    result = linprog(cost, A_eq=np.array(rows), b_eq=np.array(rhs), bounds=bounds, method="highs")
    assert result.status == 0, result.message
    marginal = result.eqlin.marginals
    dlmp = {j: np.array([marginal[balance[j, k]] if (j, k) in balance else np.nan for k in range(3)])
            for j in buses if j != feeder.head_bus}
    voltage = {j: np.array([math.sqrt(result.x[w0 + 3 * at[j] + k]) if k in feeder.bus_phases[j] else np.nan
                            for k in range(3)]) for j in buses}
    assert equal == sum(len(seg.phases) for seg in segments)
    return float(result.fun), dlmp, voltage


def _day(feeder, hours=4):
    """Four hours that move every input: load from 60 % to 120 % of the spot loads (phase b
    heavier at 03:00), prices from 30 to 80 $/MWh, G733 from dark to full sun."""
    scale = hourly_shape(feeder, [0.6, 0.9, 1.1, 1.2])
    scale[3, :, 1] *= 1.1
    prices = [30.0, 45.0, 80.0, 55.0]
    sun = [0.0, 0.4, 1.0, 0.7]
    return [Period(f"2016-08-11T0{t}:00", prices[t], scale[t], {"G733": sun[t]}) for t in range(hours)]


def test_each_hours_dlmps_equal_an_opf_written_from_scratch(feeder):
    """Per hour: the study's OPF on period_inputs against the matrices above with the hour's loads
    (the spot loads scaled by hand), price and generator limits: the same cost, DLMPs and
    voltages. The voltage floor binds in some hours and not others, so prices differ by hour,
    bus and phase."""
    spread = []
    for period in _day(feeder):
        hour_feeder, hour_generators, hour_settings = period_inputs(feeder, GENERATORS, SETTINGS, period)
        mine = dso_opf(hour_feeder, hour_generators, hour_settings)
        at = {bus: i for i, bus in enumerate(feeder.buses)}
        kw = {b: feeder.load_kw[b] * period.load_scale[at[b]] for b in feeder.buses}
        kvar = {b: feeder.load_kvar[b] * period.load_scale[at[b]] for b in feeder.buses}
        by_hand = tuple(DistributedGenerator(g.name, g.bus, g.max_kw_per_phase * period.availability.get(g.name, 1.0),
                                             g.cost_per_mwh) for g in GENERATORS)
        priced = OpfSettings(period.substation_price_per_mwh, SETTINGS.head_voltage_pu, SETTINGS.v_min_pu,
                             SETTINGS.v_max_pu)
        cost, dlmp, voltage = independent_opf(feeder, by_hand, priced, kw, kvar)
        assert mine.cost_per_h == pytest.approx(cost, rel=1e-9)
        for bus in dlmp:
            np.testing.assert_allclose(mine.dlmp_p[bus], dlmp[bus], atol=1e-6)
        for bus in voltage:
            np.testing.assert_allclose(mine.voltage_pu[bus], voltage[bus], atol=1e-9)
        prices = np.concatenate(list(dlmp.values()))
        spread.append(prices.max() - prices.min())
    assert min(spread) < 1e-6 and max(spread) > 1.0   # flat in some hours, spread in others


def test_ieee123_dlmps_equal_an_opf_written_from_scratch_over_laterals_and_regulators():
    """IEEE 123 at its stated taps, three hours at 1.2, 1.5 and 1.55 times the spot loads, a cheap
    generator on a phase-a lateral and a dear one at bus 65: the study's OPF and the matrices above
    agree on cost, on every DLMP, its parts' sum and voltage of every phase each bus has, and both
    read NaN on the phases a bus lacks. The floor binds in the later hours only, so prices differ by
    hour, bus and phase."""
    feeder = load_ieee123()
    generators = (DistributedGenerator("G111", 111, 40.0, 30.0), DistributedGenerator("G65", 65, 150.0, 60.0))
    settings = OpfSettings(substation_price_per_mwh=45.0, head_voltage_pu=1.0, v_min_pu=0.96)
    scale = hourly_shape(feeder, [1.2, 1.5, 1.55])
    spread = []
    for t in range(3):
        period = Period(f"2016-08-11T1{t}:00", 45.0, scale[t], {})
        hour_feeder, hour_generators, hour_settings = period_inputs(feeder, generators, settings, period)
        mine = dso_opf(hour_feeder, hour_generators, hour_settings)
        kw = {b: feeder.load_kw[b] * scale[t][i] for i, b in enumerate(feeder.buses)}
        kvar = {b: feeder.load_kvar[b] * scale[t][i] for i, b in enumerate(feeder.buses)}
        priced = OpfSettings(period.substation_price_per_mwh, 1.0, 0.96, settings.v_max_pu)
        cost, dlmp, voltage = independent_opf(feeder, generators, priced, kw, kvar)
        assert mine.cost_per_h == pytest.approx(cost, rel=1e-9)
        for bus in dlmp:
            np.testing.assert_allclose(mine.dlmp_p[bus], dlmp[bus], atol=1e-6)
            np.testing.assert_allclose(mine.parts.total(bus), dlmp[bus], atol=1e-6)
        for bus in voltage:
            np.testing.assert_allclose(mine.voltage_pu[bus], voltage[bus], atol=1e-9)
        prices = np.concatenate([p[~np.isnan(p)] for p in dlmp.values()])
        spread.append(prices.max() - prices.min())
        assert sum(np.isnan(p).sum() for p in dlmp.values()) == 3 * len(dlmp) - sum(
            len(feeder.bus_phases[b]) for b in dlmp)
    assert spread[0] < 1e-6 and min(spread[1:]) > 1.0


def test_the_snapshot_period_is_the_feeder_as_it_is(feeder):
    hour_feeder, hour_generators, hour_settings = period_inputs(feeder, GENERATORS, SETTINGS, snapshot(feeder, SETTINGS))
    for bus in feeder.buses:
        assert np.array_equal(hour_feeder.load_kw[bus], feeder.load_kw[bus])
        assert np.array_equal(hour_feeder.load_kvar[bus], feeder.load_kvar[bus])
    assert hour_generators == GENERATORS and hour_settings == SETTINGS


def test_a_period_keeps_each_loads_power_factor_and_the_feeder_untouched(feeder):
    period = _day(feeder)[3]
    before = {b: feeder.load_kw[b].copy() for b in feeder.buses}
    hour_feeder, _, _ = period_inputs(feeder, GENERATORS, SETTINGS, period)
    for bus in feeder.buses:
        assert np.array_equal(feeder.load_kw[bus], before[bus])
        loaded = feeder.load_kw[bus] > 0
        np.testing.assert_allclose(hour_feeder.load_kvar[bus][loaded] / hour_feeder.load_kw[bus][loaded],
                                   feeder.load_kvar[bus][loaded] / feeder.load_kw[bus][loaded], rtol=1e-12)
    assert hour_feeder.load_kw[740][0] == pytest.approx(1.2 * feeder.load_kw[740][0])
    assert hour_feeder.load_kw[740][1] == pytest.approx(1.32 * feeder.load_kw[740][1])


@pytest.mark.parametrize("change, message", [
    (dict(load_scale=np.ones((3, 3))), "load_scale has 3 buses"),
    (dict(availability={"G999": 0.5}), "availability names G999"),
])
def test_a_period_that_does_not_fit_the_study_is_one_line(feeder, change, message):
    fields = dict(label="h", substation_price_per_mwh=45.0, load_scale=np.ones((len(feeder.buses), 3)))
    with pytest.raises(GridError, match=message):
        period_inputs(feeder, GENERATORS, SETTINGS, Period(**{**fields, **change}))


@pytest.mark.parametrize("change, message", [
    (dict(load_scale=np.full((36, 3), 11.0)), r"must lie in \[0, 10\]"),
    (dict(load_scale=np.ones((36, 2))), "buses x 3 phases"),
    (dict(substation_price_per_mwh=-1.0), "substation price"),
    (dict(availability={"G711": 1.5}), r"availability must lie in \[0, 1\]"),
])
def test_a_bad_period_is_refused_when_made(change, message):
    fields = dict(label="h", substation_price_per_mwh=45.0, load_scale=np.ones((36, 3)))
    with pytest.raises(GridError, match=message):
        Period(**{**fields, **change})


def _raw_area_loads():
    """The area loads read straight from the .m file's text: every row 'label prob table row col
    type value' of the change table."""
    text = case_path(ACTIVSG2000_SERIES).read_text()
    rows = re.findall(r"^\s*(\d+)\s+[\d.]+\s+CT_TAREALOAD\s+(\d+)\s+CT_LOAD_ALL_P\s+CT_REP\s+([\d.eE+-]+)",
                      text, re.M)
    assert len(rows) == 8784 * 8
    loads = np.zeros((8784, 8))
    for label, area, value in rows:
        loads[int(label) - 1, int(area) - 1] = float(value)
    return loads


def test_the_activsg2000_day_is_the_files_area_load_over_its_peak(feeder):
    """The shape against the file's text: 11 August 2016 for the sum of the areas peaks at 1 at
    15:00 (the year's peak hour), and area 7's day is its own loads over its own peak."""
    raw = _raw_area_loads()
    assert np.array_equal(activsg2000_area_loads(), raw)
    total = raw.sum(axis=1)
    peak = int(np.argmax(total))
    assert (peak // 24, peak % 24) == (datetime(2016, 8, 11).timetuple().tm_yday - 1, 15)
    day = activsg2000_shape(feeder, datetime(2016, 8, 11), 24, 0)
    assert day.shape == (24, len(feeder.buses), 3) and np.all(day == day[:, :1, :1])
    assert day[15, 0, 0] == 1.0 and day[:, 0, 0].min() == pytest.approx(total[peak - 15:peak + 9].min() / total[peak])
    start = (datetime(2016, 3, 1) - datetime(2016, 1, 1)).days * 24 + 6
    area = activsg2000_shape(feeder, datetime(2016, 3, 1, 6), 5, 7)
    np.testing.assert_allclose(area[:, 3, 2], raw[start:start + 5, 6] / raw[:, 6].max(), rtol=1e-15)
    assert np.array_equal(flat_shape(feeder, 5), np.ones((5, len(feeder.buses), 3)))


@pytest.mark.parametrize("first, hours, area, message", [
    (datetime(2016, 12, 31, 12), 24, 0, "do not fit"),
    (datetime(2015, 12, 31), 24, 0, "do not fit"),
    (datetime(2016, 5, 1, 0, 30), 24, 0, "do not fit"),
    (datetime(2016, 5, 1), 24, 9, "areas 1 to 8"),
])
def test_a_day_outside_the_series_is_one_line(feeder, first, hours, area, message):
    with pytest.raises(GridError, match=message):
        activsg2000_shape(feeder, first, hours, area)
