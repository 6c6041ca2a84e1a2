"""grid/network/radial.py: a feeder's impedances and DistFlow, against pandapower's AC power flow,
published voltages and a case worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from grid.ac.case_model import quiet_pandapower
from grid.errors import GridError
from grid.network.radial import RadialFeeder, distflow, linear_distflow, radial_feeder


class PandapowerFeeder:
    """The same feeder in pandapower (lines from ohms, loads as PQ, the head an external grid), built
    once; `run` sets the loads and solves it by Newton-Raphson."""

    def __init__(self, feeder: RadialFeeder) -> None:
        import pandapower as pp

        self.net = net = pp.create_empty_network()
        bus = [pp.create_bus(net, vn_kv=feeder.base_kv) for _ in feeder.buses]
        pp.create_ext_grid(net, bus[0], vm_pu=1.0)
        base_ohm = feeder.base_kv ** 2
        for k in range(1, feeder.size):
            pp.create_line_from_parameters(net, bus[feeder.parent[k]], bus[k], length_km=1.0,
                                           r_ohm_per_km=feeder.r_pu[k] * base_ohm,
                                           x_ohm_per_km=feeder.x_pu[k] * base_ohm, c_nf_per_km=0.0, max_i_ka=10.0)
            pp.create_load(net, bus[k], p_mw=0.0, q_mvar=0.0)

    def run(self, p_mw: np.ndarray, q_mvar: np.ndarray, head_pu: float) -> tuple[np.ndarray, np.ndarray]:
        """Voltage magnitudes (p.u.) and sending-end line flows (MW)."""
        import pandapower as pp

        self.net.load["p_mw"] = np.asarray(p_mw[1:], dtype=float)
        self.net.load["q_mvar"] = np.asarray(q_mvar[1:], dtype=float)
        self.net.ext_grid["vm_pu"] = head_pu
        with quiet_pandapower():
            pp.runpp(self.net, tolerance_mva=1e-10, numba=False)
        return self.net.res_bus.vm_pu.to_numpy(), self.net.res_line.p_from_mw.to_numpy()


def pandapower_state(feeder: RadialFeeder, p_mw: np.ndarray, q_mvar: np.ndarray,
                     head_pu: float) -> tuple[np.ndarray, np.ndarray]:
    return PandapowerFeeder(feeder).run(p_mw, q_mvar, head_pu)


@pytest.mark.parametrize("name, lowest_pu, at_bus", [("ieee33bw", 0.9131, 18), ("case69", 0.9092, 65)])
def test_the_sweep_is_the_ac_power_flow_and_finds_the_published_lowest_voltage(name, lowest_pu, at_bus):
    """Baran and Wu's feeder bottoms out at 0.9131 p.u. at bus 18, Das's 69-bus one at 0.9092 at bus
    65 (the figures these cases are known by); the sweep agrees with pandapower at base load and on
    a random load twice as heavy at some buses."""
    feeder = radial_feeder(name)
    rng = np.random.default_rng(7)
    for scale in (np.ones(feeder.size), rng.uniform(0.0, 2.0, feeder.size)):
        p, q = feeder.p_mw * scale, feeder.q_mvar * scale
        w, flow, _ = distflow(feeder, p, q, 1.0)
        voltage, pp_flow = pandapower_state(feeder, p, q, 1.0)
        assert np.sqrt(w) == pytest.approx(voltage, abs=1e-9)
        assert flow == pytest.approx(pp_flow, abs=1e-8)
    w, _, _ = distflow(feeder, feeder.p_mw, feeder.q_mvar, 1.0)
    assert round(float(np.sqrt(w).min()), 4) == lowest_pu
    assert feeder.buses[int(np.argmin(w))] == at_bus


def three_bus() -> RadialFeeder:
    """1 -> 2 -> 3 and 1 -> 4, with round impedances and loads."""
    return RadialFeeder("three", (1, 2, 4, 3), np.array([-1, 0, 0, 1]), np.array([0.0, 0.01, 0.03, 0.02]),
                        np.array([0.0, 0.02, 0.01, 0.01]), np.array([0.0, 1.0, 0.2, 0.5]),
                        np.array([0.0, 0.5, 0.0, 0.0]), 10.0)


def test_linear_distflow_by_hand():
    """Line 1-2 carries 1.5 MW and 0.5 Mvar: w_2 = 1 - 2 (0.01 x 1.5 + 0.02 x 0.5) = 0.95; line 2-3
    carries 0.5 MW: w_3 = 0.95 - 2 x 0.02 x 0.5 = 0.93; line 1-4 0.2 MW: w_4 = 1 - 2 x 0.03 x 0.2 = 0.988."""
    feeder = three_bus()
    w, flow = linear_distflow(feeder, feeder.p_mw, feeder.q_mvar, 1.0)
    assert w == pytest.approx([1.0, 0.95, 0.988, 0.93], abs=1e-12)
    assert flow == pytest.approx([1.5, 0.2, 0.5], abs=1e-12)
    assert feeder.leaves() == [2, 3]
    assert feeder.line_names() == ["1-2", "1-4", "2-3"]
    r, x = feeder.shared()
    assert r[3, 1] == pytest.approx(0.01) and r[3, 3] == pytest.approx(0.03) and r[2, 3] == 0.0


def test_the_linear_voltages_lie_above_the_ac_ones_by_the_losses():
    """Leaving out losses overstates every voltage (theory: each loss only adds to the drop), and the
    gap grows with the load."""
    feeder = radial_feeder("ieee33bw")
    gaps = []
    for scale in (0.5, 1.0, 1.5):
        w_lin, flow_lin = linear_distflow(feeder, scale * feeder.p_mw, scale * feeder.q_mvar, 1.0)
        w, flow, _ = distflow(feeder, scale * feeder.p_mw, scale * feeder.q_mvar, 1.0)
        assert np.all(w_lin >= w - 1e-15) and np.all(flow >= flow_lin - 1e-15)
        gaps.append(float((w_lin - w).max()))
    assert gaps[0] < gaps[1] < gaps[2]


def test_a_feeder_without_resistances_or_past_collapse_is_one_line():
    with pytest.raises(GridError, match=r"^plan.case: 'ieee37' has no resistances .* ieee33bw, case69$"):
        radial_feeder("ieee37", "plan.case")
    feeder = radial_feeder("ieee33bw")
    with pytest.raises(GridError, match="no power flow solution|did not converge"):
        distflow(feeder, 20 * feeder.p_mw, 20 * feeder.q_mvar, 1.0)
