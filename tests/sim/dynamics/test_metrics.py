"""A run's figures (docs/models/interconnection.md#ic-metrics), by hand on the serial queue of the
hand-checked case, and the efficiency benchmark as an upper bound on every regime's cycles."""

from __future__ import annotations

import numpy as np
import pytest

from agents.developers import ArrivalSettings, WithdrawalSettings, draw_developers
from mechanisms.interconnection.requests import Request
from sim.dynamics.metrics import fractional_value, idle_mw, summarize
from tests.sim.dynamics.test_model import BUS, A, B, C, model


def test_the_benchmark_and_idle_room_by_hand():
    requests = [A.request, B.request, C.request]
    # By value per MW: B (20 $/MW) whole, then 50 of A's 60 MW at 10 $/MW.
    assert fractional_value(requests, 100.0) == pytest.approx(50 * 20 + 50 * 10)
    assert fractional_value(requests, 500.0) == pytest.approx(1000 + 600 + 150)
    assert fractional_value(requests, 0.0) == 0.0
    other = Request("D", BUS + 1, 5.0, 1.0, 0)
    assert idle_mw(requests + [other], {BUS: 100.0, BUS + 1: 20.0}) == pytest.approx(100.0 + 5.0)


def test_the_serial_queue_run_by_hand():
    # Cycle 0: A and B wait, 100 MW idle during A's study; the benchmark 1,500 $ (B whole, 50 MW
    # of A). Cycle 1: A connects (600 $ of 1,500 $); 40 MW idle while B and C wait. Cycle 2: B
    # is refused (0 of 800 $: 40 MW of B); C waits on 40 MW: 30 idle. Cycle 3: C (150 of 150 $).
    m = model("queue", study_cycles=1, studies_at_once=1, tariff_usd_per_mw=2.0)
    for _ in range(4):
        m.step()
    history = m.datacollector.get_model_vars_dataframe()
    assert history["value_possible_usd"].tolist() == pytest.approx([1500.0, 1500.0, 800.0, 150.0])
    assert history["value_connected_usd"].tolist() == pytest.approx([0.0, 600.0, 0.0, 150.0])
    assert history["idle_mw"].tolist() == pytest.approx([100.0, 40.0, 30.0, 0.0])
    summary = summarize(m.requests(), history)
    assert summary == {
        "requests": 3, "connected": 2, "connected_mw": 90.0, "median_wait_cycles": 1.5, "p90_wait_cycles": 2.0,
        "withdrawn": 0, "withdrawn_speculative": 0, "refused": 1, "deterred": 0, "waiting_at_end": 0,
        "revoked": 0, "revoked_mw": 0.0, "revenue_usd": 180.0, "deposits_forfeited_usd": 0.0, "idle_mw_cycles": 170.0,
        "mean_cycle_efficiency": pytest.approx((0 + 0.4 + 0 + 1) / 4),
    }


@pytest.mark.parametrize("kind, rules", [
    ("queue", {"study_cycles": 2, "studies_at_once": 3}),
    ("batch", {"every_cycles": 3, "study_cycles": 2, "threshold_mw": 30.0}),
    ("batch", {"every_cycles": 3, "study_cycles": 2, "threshold_mw": 30.0, "flexible_above_threshold": True}),
    ("batch", {"every_cycles": 2, "study_cycles": 1, "threshold_mw": 10.0, "allocation": "readiness"}),
    ("auction", {"every_cycles": 2}),
    ("auction", {"every_cycles": 3, "reserve_usd_per_mw": 100_000.0, "flexible": True}),
    ("auction", {"every_cycles": 2, "use_it_or_lose_it_cycles": 3}),
])
def test_no_cycle_beats_its_benchmark(kind, rules):
    drawn = draw_developers(ArrivalSettings(rate_per_cycle=3.0, mw=[5.0, 80.0]), 16, [BUS], np.random.default_rng(4))
    m = model(kind, developers=drawn, withdrawal=WithdrawalSettings(), headroom=(150.0, 220.0), **rules)
    for _ in range(16):
        m.step()
    history = m.datacollector.get_model_vars_dataframe()
    assert (history["value_connected_usd"] <= history["value_possible_usd"] * (1 + 1e-12) + 1e-9).all()
    assert history["value_connected_usd"].sum() > 0
    summary = summarize(m.requests(), history)
    assert summary["connected_mw"] == pytest.approx(history["connected_mw"].iloc[-1])
    assert summary["connected"] + summary["withdrawn"] + summary["refused"] + summary["deterred"] \
        + summary["waiting_at_end"] + summary["revoked"] == summary["requests"] == len(drawn)
