"""Stage II as sparse rows, its exact reduction over stretches, and the fast evaluation
(docs/models/plan.md#eq-f-stretch, #fcm-evaluation).

Yardsticks: the step-by-step Pyomo formulation the rows replaced (per_step_stage_two.py), the
rows without the reduction, costs worked out by hand, and a serial run for the process pool.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache

import numpy as np
import pytest

from grid.plan.data import Hub, Supplier, check_plan_data
from grid.plan.dispatch import evaluate_stock
from grid.plan.milp import plan_from_choice
from grid.plan.risk import cvar, cvar_interval, mean_interval, ratio_interval
from grid.plan.shocks import ShockSettings, ShockSite, draw_shocks
from grid.plan.stage_two import ABSORB, SUPPLY, stage_two_rows
from tests.fcm_builders import demand_response, feeder, generator, hand_shocks, plan_data, site, storage
from tests.grid.plan.per_step_stage_two import reference_costs

P = 1000.0  # imbalance_cost_per_mwh of every hand-built site
MIN = 1.0 / 60.0


@lru_cache(maxsize=None)
def mixed():
    """Three sites, two hubs, every module kind, slow ramps and small energies so that every
    limit binds somewhere; drawn 30-minute scenarios with ramps, plateaus and oscillations."""
    hubs = [Hub("near", 17, 100.0, 6, 1.0), Hub("far", 6, 80.0, 6, 2.0)]
    modules = [storage(unit_mw=0.25, energy_mwh=0.05, eta_charge=0.9, eta_discharge=0.9),
               generator(unit_mw=0.4, ramp_mw_per_min=0.1), demand_response(unit_mw=0.2, energy_mwh=0.03)]
    suppliers = [Supplier("S", {"bess": 4, "gen": 2, "dr": 3}, {"near": 5.0, "far": 3.0})]
    sites = [site(18, load_mw=1.0, stabilize_min=12.0), site(14, load_mw=0.8, owner="b", stabilize_min=14.0),
             site(25, load_mw=1.2, owner="c", stabilize_min=20.0)]
    data = plan_data(modules, hubs, suppliers, sites, window_min=30.0)
    check_plan_data(data, feeder())
    shock_settings = ShockSettings(window_min=30.0, step_min=1.0, event_probability=0.9, duration_min=(3.0, 15.0),
                                   ramp_min=(0.0, 4.0), recovery_min=(0.0, 5.0), period_min=(2.0, 5.0))
    shocks = draw_shocks([ShockSite(s.bus, s.load_mw, s.owner) for s in sites], shock_settings, 40,
                         np.random.default_rng(11))
    return data, shocks


STOCKS = {
    "storage and DR": {("bess", "near", "S"): 2, ("dr", "far", "S"): 2},
    "every kind": {("bess", "near", "S"): 1, ("gen", "near", "S"): 1, ("bess", "far", "S"): 2, ("gen", "far", "S"): 1,
                   ("dr", "far", "S"): 1},
    "generators": {("gen", "near", "S"): 2},
}


@pytest.mark.parametrize("name", sorted(STOCKS))
def test_rows_give_the_step_by_step_models_costs(name):
    data, shocks = mixed()
    plan = plan_from_choice(data, sorted({d for _, d, _ in STOCKS[name]}), STOCKS[name])
    expected = reference_costs(data, plan.stock(data), shocks)
    assert expected.max() > 0  # the scenarios disturb the sites
    for aggregate in (True, False):
        got = evaluate_stock(data, plan.stock(data), shocks, aggregate=aggregate).cost
        # The tie-break on units (0.01 $ per unit) may leave that much uncovered: Q_s to a cent.
        np.testing.assert_allclose(got, expected, rtol=1e-7, atol=0.02)


def test_the_reduction_keeps_the_costs_and_shrinks_the_model():
    data, shocks = mixed()
    stock = plan_from_choice(data, ["near", "far"], STOCKS["storage and DR"]).stock(data)
    whole = stage_two_rows(data, shocks, stock=stock, aggregate=False)
    reduced = stage_two_rows(data, shocks, stock=stock, aggregate=True)
    assert reduced.columns < 0.8 * whole.columns and reduced.rows < 0.8 * whole.rows
    np.testing.assert_allclose(evaluate_stock(data, stock, shocks, aggregate=True).cost,
                               evaluate_stock(data, stock, shocks, aggregate=False).cost, rtol=1e-7, atol=0.02)


def one_site(module, units: int = 1, stabilize_min: float = 4.0):
    hub = Hub("H", 17, 100.0, 4, 1.0)  # tau = 2 min to bus 18
    return plan_data([module], [hub], [Supplier("S", {module.name: 4}, {"H": 5.0})],
                     [site(18, stabilize_min=stabilize_min)]), np.array([[units]])


def test_a_plateau_is_one_power_per_module_and_its_energy_binds_at_the_end():
    # A 0.4 MW drop over minutes 0..9, one 0.5 MW storage unit of 0.1 MWh at 50 % (room 0.05 MWh)
    # arriving at minute 2: it absorbs 0.05 MWh in all, 7.5 of the 8 minutes it is there.
    data, stock = one_site(storage())
    shocks = hand_shocks(data, np.full((1, 1, 10), -0.4))
    rows = stage_two_rows(data, shocks, stock=stock)
    powers = [c for c, k in enumerate(rows.kind) if k in (SUPPLY, ABSORB)]
    assert [(rows.first[c], rows.last[c]) for c in powers] == [(2, 3), (4, 9)]  # T_stab = 4 cuts the stretch
    q = evaluate_stock(data, stock, shocks).cost
    # Stabilized: it keeps 0.04 MWh of room for minutes 4..9 and uses the rest in minutes 2..3.
    assert q[0] == pytest.approx(P * (0.4 * 10 * MIN - 0.05), rel=1e-9)


def test_a_generator_keeps_its_steps_and_ramps_within_the_stretch():
    # A 0.5 MW surge over minutes 0..9; one generator unit (0.5 MW, 0.1 MW/min) from minute 2:
    # 0.1, 0.2, ..., 0.5 MW over minutes 2..6, then 0.5 MW: served 0.1+0.2+0.3+0.4+0.5*4 MW-min.
    data, stock = one_site(generator(unit_mw=0.5, ramp_mw_per_min=0.1))
    shocks = hand_shocks(data, np.full((1, 1, 10), 0.5))
    rows = stage_two_rows(data, shocks, stock=stock)
    assert sum(1 for k in rows.kind if k == SUPPLY) == 8  # minute by minute from the arrival
    q = evaluate_stock(data, stock, shocks).cost
    served = (0.1 + 0.2 + 0.3 + 0.4 + 0.5 * 4) * MIN
    assert q[0] == pytest.approx(P * (0.5 * 10 * MIN - served) + 5000.0 * 10 * MIN, rel=1e-9)


def test_profiles_spread_a_stretch_over_its_minutes():
    data, stock = one_site(demand_response(unit_mw=0.5, energy_mwh=1.0), stabilize_min=2.0)
    shocks = hand_shocks(data, np.full((1, 1, 10), 0.3))
    ev = evaluate_stock(data, stock, shocks, profiles=True)
    assert [row["dr_mw"] for row in ev.profiles] == [0.0, 0.0] + [0.3] * 8
    assert ev.stabilized[0, 0] and ev.cost[0] == pytest.approx(P * 0.3 * 2 * MIN)


def _pool_map(work, tasks):
    with ProcessPoolExecutor(max_workers=2) as pool:
        yield from pool.map(work, *zip(*tasks))


def test_batches_on_worker_processes_give_the_serial_answer(monkeypatch):
    data, shocks = mixed()
    stock = plan_from_choice(data, ["near", "far"], STOCKS["every kind"]).stock(data)
    monkeypatch.setattr("grid.plan.dispatch.BATCH", 7)
    serial = evaluate_stock(data, stock, shocks, profiles=True)
    pooled = evaluate_stock(data, stock, shocks, profiles=True, mapper=_pool_map)
    for name in ("cost", "uncovered_mwh", "ens_mwh", "stabilized", "arrival_min"):
        np.testing.assert_array_equal(getattr(pooled, name), getattr(serial, name))
    assert pooled.dispatch == serial.dispatch and pooled.profiles == serial.profiles


# --- 95 % intervals of the out-of-sample figures (docs/models/plan.md#eq-f-ci) -------------------

def coverage(draw, truth, interval, repeats: int = 400) -> float:
    rng = np.random.default_rng(2026)
    hits = 0
    for _ in range(repeats):
        low, high = interval(*draw(rng))
        hits += low <= truth <= high
    return hits / repeats


def test_intervals_cover_known_values_about_95_percent_of_the_time():
    # Exponential costs: E = 1, CVaR_0.9 = VaR + 1 = ln 10 + 1; a share of 0.7 over 0..3 sites a scenario.
    # 400 repeats: a true 95 % lands in [0.92, 0.98] with probability above 0.99.
    assert 0.92 <= coverage(lambda r: (r.exponential(size=400),), 1.0, mean_interval) <= 0.98
    assert 0.92 <= coverage(lambda r: (r.exponential(size=2000), 0.9), np.log(10) + 1, cvar_interval) <= 0.98

    def shares(r):
        trials = r.integers(0, 4, size=400)
        return r.binomial(trials, 0.7), trials

    assert 0.92 <= coverage(shares, 0.7, ratio_interval) <= 0.98


def test_interval_edges():
    assert mean_interval(np.array([3.0, 3.0])) == (3.0, 3.0)
    assert ratio_interval(np.zeros(3), np.zeros(3)) == (1.0, 1.0)  # no site hit: nothing to stabilize
    assert ratio_interval(np.array([2, 1]), np.array([2, 1])) == (1.0, 1.0)
    low, high = cvar_interval(np.arange(10.0), 0.8)
    assert low < cvar(np.arange(10.0), 0.8) == 8.5 < high
