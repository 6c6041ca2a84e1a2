"""Hourly headroom (docs/models/headroom.md): each bus's stand-alone headroom in every hour, the
MW at each curtailment level, the shares of hours and energy curtailed, and the joint total.

The references are built here: every hour's flows recomputed from scratch by a dense solve of the
susceptance matrix, and the largest injection found by bisection (IEEE 14); quantiles and energy
shares worked out by hand on a 3-bus feeder; C-20 applied hour by hour; flows of a low-rank
series against the plain product.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from grid.capacity.headroom import (
    allowed_hours,
    check_levels,
    following_withdrawals,
    headroom_series,
    hourly_background,
    hourly_headroom,
    joint_headroom,
    line_flows,
    source_tails,
    table_with_tails,
)
from grid.capacity.inputs.candidates import make_candidates
from grid.capacity.matrices.shift_factors import flow_model
from grid.capacity.rows.limits import limit_rows
from grid.capacity.rows.standalone import standalone_capacity
from grid.errors import GridError
from grid.load.scenarios import Scenarios
from grid.network.cases import load_case
from grid.network.network import Bus, Line, Network

TOUCH = 0.05
LEVELS = (0.0, 0.05, 0.1)


def _study(network: Network, load: np.ndarray, buses, levels=LEVELS, following: str = "scaled"):
    """The pipeline of the headroom study: net withdrawals, the limit table, every hour's rooms."""
    samples = following_withdrawals(network, load, following)
    scenarios = Scenarios(network.bus_numbers, samples, samples.min(axis=0), samples.max(axis=0))
    table, shift = limit_rows(network, flow_model(network), scenarios,
                              make_candidates(network, {b: 1.0 for b in buses}), TOUCH)
    background = hourly_background(table, shift, samples)
    return table, background, hourly_headroom(table, background, levels, touch_factor=TOUCH)


# ------------------------------------------------------------------------------- brute force
class DenseFlows:
    """DC flows of any withdrawals from a dense solve of B theta = -(w - alpha 1'w), from scratch."""

    def __init__(self, network: Network) -> None:
        n = len(network.buses)
        self.index = {bus.number: i for i, bus in enumerate(network.buses)}
        self.ends = np.array([(self.index[line.from_bus], self.index[line.to_bus]) for line in network.lines])
        self.x = np.array([line.reactance_pu for line in network.lines])
        b = np.zeros((n, n))
        for (i, j), x in zip(self.ends, self.x):
            b[i, i] += 1 / x
            b[j, j] += 1 / x
            b[i, j] -= 1 / x
            b[j, i] -= 1 / x
        self.keep = [i for i in range(n) if i != self.index[network.reference_bus]]
        self.b = b[np.ix_(self.keep, self.keep)]
        headroom = np.zeros(n)
        for g in network.generators:
            headroom[self.index[g.bus]] += max(g.max_mw - g.output_mw, 0.0)
        self.alpha = headroom / headroom.sum()

    def __call__(self, withdrawal: np.ndarray) -> np.ndarray:
        """Line flows (lines, m) of withdrawal vectors (buses, m)."""
        net = withdrawal - self.alpha[:, None] * withdrawal.sum(axis=0)
        theta = np.zeros_like(net)
        theta[self.keep] = np.linalg.solve(self.b, -net[self.keep])
        return (theta[self.ends[:, 0]] - theta[self.ends[:, 1]]) / self.x[:, None]


def brute_hourly_headroom(network: Network, load: np.ndarray, buses) -> np.ndarray:
    """(buses, T): per hour, the largest withdrawal x at the bus alone that keeps every line within
    its rating both ways and the generators' growth within their headroom, by bisection on flows
    recomputed from scratch. Generation follows the load as "scaled": committed output times
    min(load / base, 1), the rest through the headroom shares. A limit the hour's background
    alone breaks gives 0 when the bus moves it by at least TOUCH per MW, else is left out."""
    flows = DenseFlows(network)
    committed = np.zeros(len(network.buses))
    for g in network.generators:
        committed[flows.index[g.bus]] += g.output_mw
    supply = sum(max(g.max_mw - g.output_mw, 0.0) for g in network.generators)
    rating = np.array([line.thermal_limit_mw for line in network.lines])
    columns = [flows.index[b] for b in buses]
    out = np.zeros((len(buses), load.shape[0]))
    for t in range(load.shape[0]):
        p = load[t] - min(load[t].sum() / committed.sum(), 1.0) * committed
        base = flows(p[:, None])[:, 0]
        growth = p.sum()
        unit = np.eye(len(p))[:, columns]
        factor = flows(p[:, None] + unit) - base[:, None]            # (lines, buses): MW per MW at the bus
        # Rows: every line's upper and lower limit, then the supply.
        limit = np.r_[rating, rating, supply]
        coef = np.vstack([factor, -factor, np.ones((1, len(buses)))])
        broken = np.r_[base, -base, growth] > limit + 1e-9
        blocked = np.any(broken[:, None] & (coef >= TOUCH), axis=0)   # 0 MW this hour
        counted = ~broken

        def holds(x: np.ndarray) -> np.ndarray:
            """Per bus: does x MW there alone keep every counted limit? Flows from scratch."""
            f = flows(p[:, None] + unit * x[None, :])
            value = np.vstack([f, -f, growth + x[None, :]])
            return np.all(value[counted] <= limit[counted, None] + 1e-9, axis=0)

        low, high = np.zeros(len(buses)), np.full(len(buses), 1e5)
        assert not holds(high).any(), "a limit of IEEE 14 binds every bus below 100 GW"
        for _ in range(60):
            middle = (low + high) / 2
            ok = holds(middle)
            low, high = np.where(ok, middle, low), np.where(ok, high, middle)
        out[:, t] = np.where(blocked, 0.0, low)
    return out


@pytest.fixture(scope="module")
def ieee14_hours():
    """IEEE 14 with 30 hours of loads, each bus drawn apart between 0.3 and 1.8 times its base
    load, its lines rated lower: some hours above the base (the headroom shares supply the
    growth), some lines overloaded by the background alone (the blocked-limit rule)."""
    built = load_case("ieee14")
    # Ratings at 70 % of the built-in rule, so that the background alone breaks a line at times.
    network = dataclasses.replace(built, lines=tuple(dataclasses.replace(line, thermal_limit_mw=0.7 * line.thermal_limit_mw)
                                                     for line in built.lines))
    rng = np.random.default_rng(7)
    base = np.array([bus.base_load_mw for bus in network.buses])
    load = base[None, :] * rng.uniform(0.3, 1.8, size=(30, base.size))
    buses = network.load_buses
    return network, load, buses, _study(network, load, buses), brute_hourly_headroom(network, load, buses)


def test_every_hour_matches_the_bisection_on_flows_recomputed_from_scratch(ieee14_hours):
    network, load, buses, (table, background, found), brute = ieee14_hours
    assert found.overloaded, "the case should overload a line in some hour, to exercise the blocked-limit rule"
    assert np.any(brute == 0) and np.all(np.isfinite(brute))
    series = headroom_series(table, background, np.arange(len(buses)), touch_factor=TOUCH)
    np.testing.assert_allclose(series, brute, atol=1e-6)


def test_levels_are_the_order_statistics_of_the_hours_and_the_shares_follow(ieee14_hours):
    _, load, buses, (_, _, found), brute = ieee14_hours
    hours = load.shape[0]
    ordered = np.sort(brute, axis=1)
    for j, level in enumerate(LEVELS):
        m = int(math.floor(level * hours + 1e-9))            # 0, 1 and 3 of 30 hours
        x = ordered[:, m]
        np.testing.assert_allclose(found.capacity_mw[:, j], x, atol=1e-6)
        below = brute < x[:, None] - 1e-6
        np.testing.assert_allclose(found.hours_curtailed[:, j], below.sum(axis=1) / hours)
        shortfall = np.where(below, x[:, None] - brute, 0.0).sum(axis=1)
        expected = np.divide(shortfall, x * hours, out=np.zeros_like(x), where=x > 0)
        np.testing.assert_allclose(found.energy_curtailed[:, j], expected, atol=1e-9)
    assert np.all(np.diff(found.capacity_mw, axis=1) >= 0), "more curtailment never leaves less headroom"
    assert np.all(found.hours_curtailed <= np.array(LEVELS)[None, :] + 1e-12)


def test_the_binding_limit_is_the_one_that_attains_the_bound_in_the_binding_hour(ieee14_hours):
    network, load, buses, (table, background, found), brute = ieee14_hours
    rows = {table.name(r): r for r in range(len(table))}
    for k in range(len(buses)):
        for j in range(len(LEVELS)):
            value, hour, name = found.capacity_mw[k, j], found.binding_hour[k, j], found.binding[k][j]
            assert brute[k, hour] == pytest.approx(value, abs=1e-6)
            r = rows[name]
            a = table.coef[r, k]
            room = background.rooms(table, np.array([r]))[0, hour]
            assert a > 0 and (room / a if room >= 0 else 0.0) == pytest.approx(value, abs=1e-6)


def test_firm_is_c20_hour_by_hour_and_the_worst_hour_when_no_limit_breaks():
    """Level 0 is the least over the hours of (C-20) with each hour's rooms; with loads at or
    below the base no limit breaks, and it is (C-20) with each limit at its own worst hour."""
    network = load_case("ieee14")
    base = np.array([bus.base_load_mw for bus in network.buses])
    load = base[None, :] * np.random.default_rng(3).uniform(0.5, 1.0, size=(30, base.size))
    table, background, found = _study(network, load, network.load_buses, levels=(0.0,))
    assert found.overloaded == ()
    rooms = background.rooms(table, np.arange(len(table)))
    hourly = np.array([standalone_capacity(table.coef, rooms[:, t], TOUCH, table.name).capacity_mw
                       for t in range(rooms.shape[1])])
    np.testing.assert_allclose(found.capacity_mw[:, 0], hourly.min(axis=0), rtol=1e-12)
    worst = standalone_capacity(table.coef, rooms.min(axis=1), TOUCH, table.name)
    np.testing.assert_allclose(found.capacity_mw[:, 0], worst.capacity_mw, rtol=1e-12)


# ------------------------------------------------------------------------------- by hand
def feeder() -> Network:
    """1 (reference, outer grid) -> 2 -> 3, ratings 100 and 50 MW: 1 MW at bus 3 loads both lines
    by 1 MW, at bus 2 the first line only."""
    buses = (Bus(1), Bus(2, base_load_mw=30.0), Bus(3, base_load_mw=20.0))
    lines = (Line("1-2", 1, 2, 100.0), Line("2-3", 2, 3, 50.0))
    return Network("feeder", buses, lines, reference_bus=1)


def test_quantiles_and_energy_shares_by_hand():
    """Ten hours of loads at buses 2 and 3. Bus 3's headroom is min(100 - L2 - L3, 50 - L3):
    hours 1-10 give 25, 30, 35, 40, 45, 10, 20, 30, 40, 5 MW (worked out below)."""
    l2 = np.array([45, 40, 35, 30, 25, 40, 40, 40, 40, 40], dtype=float)
    l3 = np.array([25, 20, 15, 10, 5, 40, 30, 20, 10, 45], dtype=float)
    load = np.column_stack([np.zeros(10), l2, l3])
    # 100 - l2 - l3: 30 40 50 60 70 20 30 40 50 15;  50 - l3: 25 30 35 40 45 10 20 30 40 5.
    expected3 = np.array([25, 30, 35, 40, 45, 10, 20, 30, 40, 5], dtype=float)
    table, background, found = _study(feeder(), load, (2, 3), levels=(0.0, 0.1, 0.2))
    series = headroom_series(table, background, [1], touch_factor=TOUCH)[0]
    np.testing.assert_allclose(series, expected3, atol=1e-9)
    # Sorted: 5 10 20 25 30 30 35 40 40 45. p = 0.1 allows 1 hour: x = 10; p = 0.2 two: x = 20.
    np.testing.assert_allclose(found.capacity_mw[1], [5.0, 10.0, 20.0], atol=1e-9)
    # At 10 MW only hour 10 (5 MW) falls short: 5 MWh of 10 x 10 = 100 MWh. At 20 MW hours 10
    # and 6 fall short by 15 and 10: 25 of 200 MWh.
    np.testing.assert_allclose(found.hours_curtailed[1], [0.0, 0.1, 0.2])
    np.testing.assert_allclose(found.energy_curtailed[1], [0.0, 0.05, 0.125], atol=1e-12)
    assert found.binding[1] == ("line 2-3 upper limit",) * 3
    assert [int(h) for h in found.binding_hour[1]] == [9, 5, 6]
    # Bus 2 moves only line 1-2: 100 - l2 - l3 = 15 in hour 10, 20 in hour 6, 30 in hours 1 and 7.
    np.testing.assert_allclose(found.capacity_mw[0], [15.0, 20.0, 30.0], atol=1e-9)
    assert found.binding[0] == ("line 1-2 upper limit",) * 3


def test_a_limit_the_background_breaks_gives_zero_only_in_its_hours():
    """Hour 3 puts 60 MW at bus 3: line 2-3 (50 MW) breaks. Bus 3 moves it 1 MW per MW, so it gets
    0 that hour (its firm headroom is 0; allowed one hour in five it keeps the next lowest); bus 2
    does not move it, and the line is left out of bus 2's hour."""
    load = np.array([[0, 10, 20], [0, 10, 30], [0, 10, 60], [0, 10, 40], [0, 10, 10]], dtype=float)
    table, background, found = _study(feeder(), load, (2, 3), levels=(0.0, 0.2))
    assert dict(found.overloaded) == {"line 2-3 upper limit": 1}
    series = headroom_series(table, background, [0, 1], touch_factor=TOUCH)
    np.testing.assert_allclose(series[1], [30, 20, 0, 10, 40], atol=1e-9)
    np.testing.assert_allclose(series[0], [70, 60, 30, 50, 80], atol=1e-9)
    np.testing.assert_allclose(found.capacity_mw[1], [0.0, 10.0], atol=1e-9)


def test_levels_are_checked():
    assert check_levels([0.01, 0.0025]) == (0.0025, 0.01)
    for bad in ([], [0.6], [-0.01], [0.01, 0.01], [True]):
        with pytest.raises(GridError):
            check_levels(bad)
    assert allowed_hours(0.005, 8784) == 43 and allowed_hours(0.0025, 8784) == 21


# ------------------------------------------------------------------------------- flows and following
def test_low_rank_hours_give_the_plain_product():
    """Area-like hours (each of three groups of buses scaled together) span few directions: the
    flows through a basis of them equal H P' to round-off."""
    network = load_case("ieee118")
    base = np.array([bus.base_load_mw for bus in network.buses])
    groups = np.arange(base.size) % 3
    factors = np.random.default_rng(5).uniform(0.4, 1.2, size=(300, 3))
    samples = following_withdrawals(network, base[None, :] * factors[:, groups], "scaled")
    scenarios = Scenarios(network.bus_numbers, samples, samples.min(axis=0), samples.max(axis=0))
    _, shift = limit_rows(network, flow_model(network), scenarios,
                          make_candidates(network, {network.load_buses[0]: 1.0}), TOUCH)
    plain = np.vstack([h @ samples.T + shift.offset_mw[block][:, None] for block, h in shift.blocks])
    np.testing.assert_allclose(line_flows(shift, samples), plain, atol=1e-8 * np.abs(plain).max())


def test_generation_follows_the_load_by_output_below_the_base_and_headroom_above():
    network = load_case("ieee14")
    base = np.array([bus.base_load_mw for bus in network.buses])
    committed = np.zeros(base.size)
    for g in network.generators:
        committed[network.bus_index(g.bus)] += g.output_mw
    half, more = 0.5 * base, 1.2 * base
    scaled = following_withdrawals(network, np.vstack([half, more]), "scaled")
    # Below the base every unit scales with the load: balanced, nothing left to the slack.
    np.testing.assert_allclose(scaled[0], half - 0.5 * committed * base.sum() / committed.sum(), atol=1e-9)
    assert scaled[0].sum() == pytest.approx(0.0, abs=1e-9)
    # Above it the committed output stays and the growth is the slack's (the headroom shares).
    np.testing.assert_allclose(scaled[1], more - committed, atol=1e-9)
    np.testing.assert_allclose(following_withdrawals(network, np.vstack([half]), "slack")[0], half - committed)
    with pytest.raises(GridError, match="generation following"):
        following_withdrawals(network, half[None, :], "uniform")


def test_joint_total_holds_every_hour_at_level_zero_and_never_exceeds_the_sum_alone():
    """Every bus at once, level 0: every limit holds in every hour with every subset drawn (the
    partial draw set: a+ . c), checked on the dense flows; each bus gets no more than alone."""
    network = load_case("ieee14")
    base = np.array([bus.base_load_mw for bus in network.buses])
    load = base[None, :] * np.random.default_rng(11).uniform(0.5, 1.0, size=(200, base.size))
    buses = network.load_buses
    table, background, found = _study(network, load, buses, levels=(0.0, 0.05))
    samples = following_withdrawals(network, load, "scaled")
    scenarios = Scenarios(network.bus_numbers, samples, samples.min(axis=0), samples.max(axis=0))
    joint = joint_headroom(network, scenarios, buses, (0.0, 0.05), request_mw=1e4, touch_factor=TOUCH)
    assert joint.capped == ()
    # The study hands the capacity study its own rows and the hours' tails: the same allocation.
    table, shift = limit_rows(network, flow_model(network), scenarios, make_candidates(network, {b: 1.0 for b in buses}),
                              TOUCH)
    rows = (table_with_tails(table, background, source_tails(background, 12)), shift)
    again = joint_headroom(network, scenarios, buses, (0.0, 0.05), request_mw=1e4, touch_factor=TOUCH, rows=rows)
    np.testing.assert_allclose(again.capacity_mw, joint.capacity_mw, atol=1e-6)
    assert np.all(joint.capacity_mw <= found.capacity_mw + 1e-6)
    assert joint.total_mw[0] <= joint.total_mw[1] + 1e-9
    flows = DenseFlows(network)
    columns = [flows.index[b] for b in buses]
    factor = flows(np.eye(len(base))[:, columns]) - flows(np.zeros((len(base), 1)))
    worst_new = np.maximum(factor, 0) @ joint.capacity_mw[:, 0], np.maximum(-factor, 0) @ joint.capacity_mw[:, 0]
    background_flows = flows(samples.T)
    rating = np.array([line.thermal_limit_mw for line in network.lines])
    assert np.all(background_flows.max(axis=1) + worst_new[0] <= rating + 1e-6)
    assert np.all(-background_flows.min(axis=1) + worst_new[1] <= rating + 1e-6)
