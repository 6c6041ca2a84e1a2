"""The IEEE 37-node feeder and LinDist3Flow, against the shared data note's own figures and
closed forms (spec `dlmp-bilevel.md` section 2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grid.lindist3flow import coupling_matrices, power_flow, sweep_voltages
from grid.three_phase import delta_to_wye, load_ieee37
from tests.conftest import need_glpk


@pytest.fixture(scope="module")
def feeder():
    return load_ieee37()


def test_feeder_is_the_37_node_tree_with_its_loads(feeder):
    # 36 buses joined by 35 segments from the head 799 (775 sits behind XFM-1 and has no load).
    assert len(feeder.buses) == 36 and len(feeder.segments) == 35 and feeder.buses[0] == 799
    parents = feeder.parent_segment()
    assert set(parents) == set(feeder.buses) - {799}
    seen = {799}
    for segment in feeder.segments:  # every segment leaves a bus already reached
        assert segment.from_bus in seen
        seen.add(segment.to_bus)
    # Data note: 2,457 kW / 1,201 kvar in all; per phase a 859.1 / 548.6, b 670.6 / 360.9, c 927.4 / 291.5.
    kw = sum(feeder.load_kw.values())
    kvar = sum(feeder.load_kvar.values())
    assert kw.sum() == pytest.approx(2457.0)
    np.testing.assert_allclose(kw, [859.1, 670.6, 927.4], atol=0.06)
    np.testing.assert_allclose(kvar, [548.6, 360.9, 291.5], atol=0.06)
    # Segment 799-701: 1,850 ft of config 721, R_aa = 0.2926 ohm/mile.
    head = parents[701]
    assert head.r_ohm[0, 0] == pytest.approx(0.2926 * 1850 / 5280)


@pytest.mark.parametrize("connection, p, q, expected", [
    # The data note's wye table: bus 737 (AB 140 kW / 70 kvar) and bus 736 (BC 42 / 21).
    ("AB", 140.0, 70.0, ([90.21, 49.79, 0.0], [-5.41, 75.41, 0.0])),
    ("BC", 42.0, 21.0, ([0.0, 27.06, 14.94], [0.0, -1.62, 22.62])),
    ("CA", 85.0, 40.0, ([30.95, 0.0, 54.05], [44.54, 0.0, -4.54])),
    ("3ph-delta", 126.0, 63.0, ([42.0, 42.0, 42.0], [21.0, 21.0, 21.0])),
])
def test_delta_loads_become_the_data_notes_wye_equivalents(connection, p, q, expected):
    kw, kvar = delta_to_wye(connection, p, q)
    np.testing.assert_allclose(kw, expected[0], atol=0.006)
    np.testing.assert_allclose(kvar, expected[1], atol=0.006)
    assert kw.sum() == pytest.approx(p) and kvar.sum() == pytest.approx(q)


def test_coupling_matrices_reduce_to_the_positive_sequence_drop():
    """Balanced flows on a segment with self r_s, x_s and mutual r_m, x_m: every phase's w drops by
    2 ((r_s - r_m) P + (x_s - x_m) Q), the single-phase LinDistFlow with the sequence impedance."""
    r_s, r_m, x_s, x_m = 0.3, 0.1, 0.2, 0.05
    r = np.full((3, 3), r_m) + np.eye(3) * (r_s - r_m)
    x = np.full((3, 3), x_m) + np.eye(3) * (x_s - x_m)
    mp, mq = coupling_matrices(r, x)
    p, q = 2.0, 1.5
    drop = mp @ np.full(3, p) + mq @ np.full(3, q)
    np.testing.assert_allclose(drop, -2 * ((r_s - r_m) * p + (x_s - x_m) * q))
    # The sqrt(3) terms: a flow on phase b alone moves phase a by r_ab - sqrt(3) x_ab (spec's M^P).
    assert mp[0, 1] == pytest.approx(r_m - math.sqrt(3) * x_m)
    assert mq[0, 1] == pytest.approx(x_m + math.sqrt(3) * r_m)


def test_voltages_match_the_data_notes_check_and_the_sweep(feeder):
    """Data note: with V799 = 1.0 p.u., constant-PQ wye loads and no regulator, V701 = [0.985,
    0.990, 0.986] and the lowest voltages are a 0.945 at 740, b 0.966 at 738, c 0.962 at 736."""
    model = power_flow(feeder)
    sweep = sweep_voltages(feeder)
    for bus in feeder.buses:
        np.testing.assert_allclose(model[bus], sweep[bus], atol=1e-9)
    np.testing.assert_allclose(model[701], [0.985, 0.990, 0.986], atol=5e-4)
    for phase, (bus, value) in enumerate([(740, 0.945), (738, 0.966), (736, 0.962)]):
        lowest = min(feeder.buses, key=lambda b: model[b][phase])
        assert lowest == bus and model[bus][phase] == pytest.approx(value, abs=5e-4)


def test_head_voltage_shifts_every_w_by_the_same_amount(feeder):
    """LinDist3Flow is linear in w: raising V0 from 1.00 to 1.05 p.u. adds 1.05^2 - 1 to every w."""
    low, high = sweep_voltages(feeder, 1.0), sweep_voltages(feeder, 1.05)
    for bus in feeder.buses:
        np.testing.assert_allclose(high[bus] ** 2 - low[bus] ** 2, 1.05 ** 2 - 1.0, atol=1e-12)


def test_glpk_gives_the_same_voltages(feeder):
    need_glpk()
    highs, glpk = power_flow(feeder), power_flow(feeder, solver="glpk")
    for bus in feeder.buses:
        np.testing.assert_allclose(glpk[bus], highs[bus], atol=1e-7)
