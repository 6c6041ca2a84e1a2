"""The feeder's limits in Stage II (docs/models/plan.md#fcm-feeder).

Yardsticks: pandapower's AC power flow on every dispatched state that the limits touch (and on the
same plan dispatched without them, which does break them); limit rows worked by hand on a
three-bus feeder, with pandapower's losses; the full DistFlow on random states; Stage I by
enumeration with the limits on; the minute-by-minute rows against the reduced ones.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from grid.errors import GridError
from grid.network.cases import load_case
from grid.network.radial import distflow, radial_feeder
from grid.plan.dispatch import evaluate_stock
from grid.plan.feeder_limits import LimitSettings, limit_rows
from grid.plan.milp import RiskSettings, evaluate_plan, solve_plan
from grid.plan.risk import mean_cvar
from grid.plan.shocks import draw_shocks
from grid.plan.stage_two_limits import limit_states
from sim.config.schema import load_config
from sim.studies.plan import listed_plan_data, shock_sites
from tests.fcm_builders import feeder, two_site_data, two_site_shocks
from tests.grid.network.test_radial import PandapowerFeeder, pandapower_state, three_bus
from tests.grid.plan.test_milp import all_stage_one

EXAMPLE = Path(__file__).resolve().parents[3] / "experiments" / "ieee33bw_plan_limits.toml"
TOL = 1e-9


@lru_cache(maxsize=None)
def example():
    """The example's data and 40 drawn scenarios."""
    config = load_config(EXAMPLE)
    data = listed_plan_data(config, EXAMPLE.parent, load_case("ieee33bw"))
    shocks = draw_shocks(shock_sites(data), config.plan.shock_settings(), 40, np.random.default_rng(3))
    return data, shocks


def robust_stock(data) -> np.ndarray:
    """The example's robust plan: 5 storage and 3 demand-response units at H6."""
    stock = np.zeros((len(data.hubs), len(data.modules)), dtype=int)
    stock[0, [m.name for m in data.modules].index("bess")] = 5
    stock[0, [m.name for m in data.modules].index("dr")] = 3
    return stock


def dispatched_states(data, shocks, stock, limits_on: bool):
    """Every (scenario, minute) where the uncovered surges would break a limit, with each site's net
    load (MW) as Stage II dispatched it: schedule + deviation - modules' power - load shed."""
    states = limit_states(data.limits, shocks)
    run = data if limits_on else dataclasses.replace(data, limits=None)
    profile = evaluate_stock(run, stock, shocks, profiles=True).profiles
    relief = {}
    for row in profile:
        moved = sum(row[f"{m.name}_mw"] for m in data.modules) + row.get("shed_mw", 0.0)
        relief[row["scenario"], row["bus"], row["minute"]] = moved
    step = shocks.settings.step_min
    out = []
    for s, t in sorted({(int(s), int(t)) for s, _, t in zip(*np.nonzero(states.binding))}):
        net = {site.bus: site.load_mw + float(shocks.deviation_mw[s, i, t]) - relief.get((s, site.bus, t * step), 0.0)
               for i, site in enumerate(data.sites)}
        out.append(net)
    return out


def feeder_state(fdr, settings: LimitSettings, net_loads: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """p, q (MW, Mvar) per bus: the case's loads times background_scale, plus each site's net load
    (bus: MW) at the sites' power factor."""
    tan = np.tan(np.arccos(settings.power_factor))
    p, q = fdr.p_mw * settings.background_scale, fdr.q_mvar * settings.background_scale
    for bus, mw in net_loads.items():
        p[fdr.position(bus)] += mw
        q[fdr.position(bus)] += mw * tan
    return p, q


def ac_extremes(data, states: list[dict[int, float]]) -> list[tuple[float, float]]:
    """pandapower's lowest voltage (p.u.) and highest line flow less its rating (MW) in each state."""
    settings = data.limits.settings
    fdr = radial_feeder(data.network_name)
    grid = PandapowerFeeder(fdr)
    out = []
    for net_loads in states:
        voltage, flow = grid.run(*feeder_state(fdr, settings, net_loads), settings.head_voltage_pu)
        out.append((float(voltage.min()), float((flow - settings.line_rating_mw).max())))
    return out


def distinct(states: list[dict[int, float]]) -> list[dict[int, float]]:
    """Each state once (a stretch repeats its state minute after minute)."""
    return list({tuple(round(v, 12) for v in state.values()): state for state in states}.values())


def test_no_dispatched_state_breaks_the_feeder_limits_in_an_ac_power_flow():
    """docs/models/plan.md#fcm-feeder: with the limits on, pandapower finds every state Stage II
    dispatched within 0.90 p.u. and 5 MW; the same plan dispatched without them goes below 0.90."""
    data, shocks = example()
    stock = robust_stock(data)
    limited = distinct(dispatched_states(data, shocks, stock, limits_on=True))
    assert len(limited) >= 20  # the limits bind in many states of these scenarios
    for lowest, over in ac_extremes(data, limited):
        assert lowest >= data.limits.settings.v_min_pu - TOL
        assert over <= TOL
    free = ac_extremes(data, distinct(dispatched_states(data, shocks, stock, limits_on=False)))
    assert min(lowest for lowest, _ in free) < data.limits.settings.v_min_pu - 0.002


def test_the_limits_only_add_cost_and_only_where_they_bind():
    data, shocks = example()
    stock = robust_stock(data)
    on = evaluate_stock(data, stock, shocks)
    off = evaluate_stock(dataclasses.replace(data, limits=None), stock, shocks)
    binds = limit_states(data.limits, shocks).binding.any(axis=(1, 2))
    assert np.all(on.cost >= off.cost - 1e-6)
    assert on.cost[~binds] == pytest.approx(off.cost[~binds], abs=1e-6)
    assert np.any(on.cost[binds] > off.cost[binds] + 1.0)
    assert on.shed_mwh.sum() > 0 and off.shed_mwh.sum() == 0
    assert np.all(on.ens_mwh >= on.shed_mwh - 1e-12)


def test_the_reduction_over_stretches_stays_exact_with_the_limits():
    """docs/models/plan.md#eq-f-stretch: the limit rows break stretches where another site moves, so
    the reduced rows and the minute-by-minute ones give the same Q_s."""
    data, shocks = example()
    stock = robust_stock(data)
    reduced = evaluate_stock(data, stock, shocks, aggregate=True)
    by_minute = evaluate_stock(data, stock, shocks, aggregate=False)
    assert reduced.cost == pytest.approx(by_minute.cost, rel=1e-7, abs=1e-4)


def test_limit_rows_by_hand_on_three_buses():
    """Feeder 1 -> 2 -> 3, 1 -> 4 (tests/grid/network/test_radial.py), a 0.3 MW site at bus 3, unity
    power factor, v_min 0.95, 1.9 MW per line. Lossless by hand: w_3 = 1 - 2 (0.01 x 1.8 + 0.02 x 0.5)
    - 2 x 0.02 x 0.8 = 0.912 before a shock and 0.894 with the site doubled; line 1-2 carries 1.8 and
    2.1 MW. The loss allowance is pandapower's gap at the doubled site."""
    fdr = three_bus()
    settings = LimitSettings(v_min_pu=0.95, power_factor=1.0, line_rating_mw=1.9)
    rows = limit_rows(fdr, None, [(3, 0.3)], settings)
    p_heavy = fdr.p_mw.copy()
    p_heavy[3] += 0.6
    voltage, flow = pandapower_state(fdr, p_heavy, fdr.q_mvar, 1.0)
    voltage_room = 0.912 - (0.894 - voltage[3] ** 2) - 0.95 ** 2
    line_room = 1.9 - 1.8 - (flow[0] - 2.1)
    # Bus 4's voltage and line 1-4 do not see the site; line 2-3 (0.8 MW of 1.9) cannot bind.
    assert rows.names == ("voltage at bus 3", "line 1-2")
    assert rows.a[:, 0] == pytest.approx([2 * (0.01 + 0.02), 1.0])
    assert rows.room == pytest.approx([voltage_room, line_room], abs=1e-9)
    assert 0 < line_room < 0.1 and 0 < voltage_room < 0.912 - 0.9025


def test_states_within_the_rows_are_within_the_ac_limits():
    """The loss allowance: random net deviations that satisfy the rows keep the full DistFlow
    within the limits, and some random ones do break the rows (the rows are not vacuous)."""
    data, _ = example()
    limits, settings = data.limits, data.limits.settings
    fdr = radial_feeder("ieee33bw")
    loads = np.array([s.load_mw for s in data.sites])
    leaves = [fdr.buses[k] for k in fdr.leaves()]
    rng = np.random.default_rng(11)
    inside = 0
    for _ in range(300):
        n = rng.uniform(-1.0, 1.0, loads.size) * loads
        if np.any(limits.a @ n > limits.room):
            continue
        inside += 1
        state = feeder_state(fdr, settings, {site.bus: mw for site, mw in zip(data.sites, loads + n)})
        w, flow, _ = distflow(fdr, *state, settings.head_voltage_pu)
        assert np.sqrt(w).min() >= settings.v_min_pu - TOL
        assert flow.max() <= settings.line_rating_mw + TOL
        assert fdr.buses[int(np.argmin(w))] in leaves  # #eq-f-ends: the lowest voltage is at an end
    assert 50 < inside < 300


def two_site_with_limits():
    data = two_site_data()
    settings = LimitSettings(v_min_pu=0.9, head_voltage_pu=1.05, background_scale=0.3, power_factor=1.0,
                             line_rating_mw=10.0)
    limits = limit_rows(radial_feeder("ieee33bw"), feeder(), [(s.bus, s.load_mw) for s in data.sites], settings)
    return dataclasses.replace(data, limits=limits), two_site_shocks(data)


@pytest.mark.parametrize("lam, alpha", [(0.0, 0.5), (0.5, 0.5), (1.0, 0.75)])
def test_the_milp_with_limits_equals_enumeration_of_stage_one(lam, alpha):
    data, shocks = two_site_with_limits()
    assert limit_states(data.limits, shocks).binding.any(axis=(1, 2)).sum() == 3
    best = min(plan.cost + mean_cvar(evaluate_plan(data, plan, shocks).cost, lam, alpha)
               for plan in all_stage_one(data))
    solution = solve_plan(data, shocks, RiskSettings(lam, alpha, 0.0), mip_gap=1e-9)
    assert solution.objective == pytest.approx(best, rel=1e-6)
    unlimited = solve_plan(dataclasses.replace(data, limits=None), shocks, RiskSettings(lam, alpha, 0.0), mip_gap=1e-9)
    assert solution.objective > unlimited.objective + 1.0


def test_a_feeder_the_sites_overload_before_any_shock_is_one_line():
    """The default example's 4.3 MW of sites on the 3.7 MW feeder: no state to dispatch from."""
    data, _ = example()
    sites = [(s.bus, 2 * s.load_mw) for s in data.sites]
    with pytest.raises(GridError, match=r"^plan.feeder_limits: before any shock the feeder already breaks its "
                                        r"voltage at bus \d+ limit \(0\.\d{4} p.u. against v_min_pu 0.9 on the "
                                        r"linear DistFlow\); .* raise head_voltage_pu$"):
        limit_rows(radial_feeder("ieee33bw"), feeder(), sites, data.limits.settings)
    with pytest.raises(GridError, match=r"^plan.feeder_limits.head_voltage_pu: 1.06 p.u. must lie above v_min_pu"):
        limit_rows(radial_feeder("ieee33bw"), feeder(), sites, LimitSettings(head_voltage_pu=1.06))
