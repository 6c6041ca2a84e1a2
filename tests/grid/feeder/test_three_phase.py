"""The IEEE 37-node feeder and LinDist3Flow, against the figures of
docs/reference/cases.md#ieee-37-node-feeder and closed forms (docs/models/dlmp.md#dlmp-2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grid.feeder.lindist3flow import coupling_matrices, sweep_voltages
from grid.feeder.opf import power_flow
from grid.network.three_phase import delta_to_wye, load_ieee37
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
    # docs/reference/cases.md#ieee-37-node-feeder: 2,457 kW / 1,201 kvar in all;
    # per phase a 859.1 / 548.6, b 670.6 / 360.9, c 927.4 / 291.5.
    kw = sum(feeder.load_kw.values())
    kvar = sum(feeder.load_kvar.values())
    assert kw.sum() == pytest.approx(2457.0)
    np.testing.assert_allclose(kw, [859.1, 670.6, 927.4], atol=0.06)
    np.testing.assert_allclose(kvar, [548.6, 360.9, 291.5], atol=0.06)
    # Segment 799-701: 1,850 ft of config 721, R_aa = 0.2926 ohm/mile.
    head = parents[701]
    assert head.r_ohm[0, 0] == pytest.approx(0.2926 * 1850 / 5280)


@pytest.mark.parametrize("connection, p, q, expected", [
    # Wye equivalents (docs/reference/cases.md#ieee-37-node-feeder): bus 737 (AB 140 kW / 70 kvar) and
    # bus 736 (BC 42 / 21).
    ("AB", 140.0, 70.0, ([90.21, 49.79, 0.0], [-5.41, 75.41, 0.0])),
    ("BC", 42.0, 21.0, ([0.0, 27.06, 14.94], [0.0, -1.62, 22.62])),
    ("CA", 85.0, 40.0, ([30.95, 0.0, 54.05], [44.54, 0.0, -4.54])),
    ("3ph-delta", 126.0, 63.0, ([42.0, 42.0, 42.0], [21.0, 21.0, 21.0])),
])
def test_delta_loads_become_their_wye_equivalents(connection, p, q, expected):
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
    # The sqrt(3) terms: a flow on phase b alone moves phase a by r_ab - sqrt(3) x_ab (M^P, docs/models/dlmp.md#eq-d-2).
    assert mp[0, 1] == pytest.approx(r_m - math.sqrt(3) * x_m)
    assert mq[0, 1] == pytest.approx(x_m + math.sqrt(3) * r_m)


def test_voltages_match_the_feeders_check_and_the_sweep(feeder):
    """docs/reference/cases.md#ieee-37-node-feeder: with V799 = 1.0 p.u., constant-PQ wye loads
    and no regulator, V701 = [0.985, 0.990, 0.986] and the lowest voltages are a 0.945 at 740,
    b 0.966 at 738, c 0.962 at 736."""
    model = power_flow(feeder)
    sweep = sweep_voltages(feeder)
    for bus in feeder.buses:
        np.testing.assert_allclose(model[bus], sweep[bus], atol=1e-9)
    np.testing.assert_allclose(model[701], [0.985, 0.990, 0.986], atol=5e-4)
    for phase, (bus, value) in enumerate([(740, 0.945), (738, 0.966), (736, 0.962)]):
        lowest = min(model[b][phase] for b in feeder.buses)
        # Phase b: 738 and the buses behind it (no phase-b load) tie at the minimum.
        assert model[bus][phase] == pytest.approx(lowest, abs=1e-9) and lowest == pytest.approx(value, abs=5e-4)


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


# --- The DSO's OPF and its DLMPs (docs/models/dlmp.md#dlmp-2, docs/models/dlmp.md#dlmp-3) ---

from grid.errors import InfeasibleNetworkError  # noqa: E402
from grid.feeder.inputs import DistributedGenerator, OpfSettings  # noqa: E402
from grid.feeder.opf import dso_opf  # noqa: E402

# Head at 1.00 p.u. and a 0.95 p.u. floor: phase a at bus 740 (0.945 in the power flow) binds,
# so a generator at 711 (the same lateral) runs on phase a although it costs more than the
# substation, and prices differ by bus and phase.
TIGHT = OpfSettings(substation_price_per_mwh=45.0, head_voltage_pu=1.0, v_min_pu=0.95)
LATERAL_DG = (DistributedGenerator("G711", 711, 100.0, 60.0),)


def test_uncongested_dlmps_are_the_substation_price(feeder):
    """Lossless LinDist3Flow with no binding limit: one more kW anywhere costs c0; the cost is c0
    times the feeder's load, and the voltages are the power flow's at the same head voltage."""
    result = dso_opf(feeder, settings=OpfSettings(head_voltage_pu=1.03))
    for bus, price in result.dlmp_p.items():
        np.testing.assert_allclose(price, 45.0, atol=1e-6)
        np.testing.assert_allclose(result.dlmp_q[bus], 0.0, atol=1e-6)
    assert result.cost_per_h == pytest.approx(45.0 * 2457.0 / 1000.0, rel=1e-9)
    flow = sweep_voltages(feeder, 1.03)
    for bus in feeder.buses:
        np.testing.assert_allclose(result.voltage_pu[bus], flow[bus], atol=1e-9)


@pytest.mark.parametrize("bus, phase", [(740, 0), (711, 0), (741, 0), (737, 1), (701, 2), (725, 1)])
def test_dlmps_are_the_finite_differences_of_the_cost(feeder, bus, phase):
    """The dual of bus j's balance on phase phi against (cost(load + d) - cost(load - d)) / 2d. The
    bumped costs come from one model whose load at j is moved between solves (checked against the
    OPF built afresh below); the prices from the OPF built afresh."""
    base = dso_opf(feeder, LATERAL_DG, TIGHT)
    model = build_opf_model(feeder, LATERAL_DG, TIGHT, decided_load_buses=(bus,))
    delta = 0.05  # kW: small enough to keep the optimal basis

    def cost_with(kw: float, kvar: float) -> float:
        for k in range(3):
            model.dc_p[bus, k].fix(kw / 1e3 if k == phase else 0.0)
            model.dc_q[bus, k].fix(kvar / 1e3 if k == phase else 0.0)
        return solve_opf(model, feeder, LATERAL_DG, TIGHT).cost_per_h

    assert cost_with(0.0, 0.0) == pytest.approx(base.cost_per_h, rel=1e-12)
    numeric = (cost_with(delta, 0.0) - cost_with(-delta, 0.0)) / (2 * delta) * 1000.0
    assert base.dlmp_p[bus][phase] == pytest.approx(numeric, rel=1e-4, abs=1e-4)
    # Reactive power too: the voltage limit prices kvar where it binds.
    numeric_q = (cost_with(0.0, delta) - cost_with(0.0, -delta)) / (2 * delta) * 1000.0
    assert base.dlmp_q[bus][phase] == pytest.approx(numeric_q, rel=1e-4, abs=1e-4)


def test_binding_voltage_separates_prices_and_dispatches_the_lateral_generator(feeder):
    result = dso_opf(feeder, LATERAL_DG, TIGHT)
    assert result.generator_kw["G711"][0] > 1.0  # runs on phase a, the phase at its floor
    assert result.voltage_pu[740][0] == pytest.approx(0.95, abs=1e-7)
    assert result.dlmp_p[740][0] > 45.0 + 1.0  # behind the binding limit, load costs more
    prices = np.array([p for p in result.dlmp_p.values()])
    assert prices.max() - prices.min() > 1.0


def test_glpk_gives_the_same_prices(feeder):
    need_glpk()
    highs = dso_opf(feeder, LATERAL_DG, TIGHT)
    glpk = dso_opf(feeder, LATERAL_DG, TIGHT, solver="glpk")
    assert glpk.cost_per_h == pytest.approx(highs.cost_per_h, rel=1e-8)
    for bus in highs.dlmp_p:
        np.testing.assert_allclose(glpk.dlmp_p[bus], highs.dlmp_p[bus], atol=1e-5)


def test_a_quadratic_generator_cost_prices_at_its_marginal_cost(feeder):
    """With a_g > 0 and the generator between its bounds, the price at its bus on the phase it
    serves is its marginal cost b + 2 a PG (the KKT condition of its output)."""
    quad = (DistributedGenerator("G711", 711, 100.0, 30.0, quadratic_cost=0.0005),)
    result = dso_opf(feeder, quad, TIGHT)
    output = result.generator_kw["G711"][0]
    assert 0.0 < output < 100.0
    # HiGHS's QP duals are accurate to its optimality tolerance (about 1e-5 relative here).
    assert result.dlmp_p[711][0] == pytest.approx(30.0 + 2 * 0.0005 * output * 1000.0, rel=1e-4)


def test_an_infeasible_voltage_floor_is_one_line_naming_the_fix(feeder):
    with pytest.raises(InfeasibleNetworkError, match=r"no dispatch keeps every voltage within \[0.95, 1.05\] p.u.; "
                                                     r"raise the head voltage"):
        dso_opf(feeder, settings=OpfSettings(head_voltage_pu=0.96))


# --- KKT of the lower level (docs/models/dlmp.md#dlmp-5-1, KKT + big-M) ----------------------

import pyomo.environ as pyo  # noqa: E402
from pyomo.common.collections import ComponentMap  # noqa: E402

from grid.errors import SolverError  # noqa: E402
from grid.feeder.opf import build_opf_model, solve_opf  # noqa: E402
from grid.solvers.kkt import kkt_system  # noqa: E402
from grid.solvers.solve import solve_milp  # noqa: E402


def _hand_lp() -> pyo.ConcreteModel:
    """min 2g + 5h, g + h = 12, 0 <= g <= 10, 0 <= h <= 20."""
    lp = pyo.ConcreteModel()
    lp.g = pyo.Var(bounds=(0, 10))
    lp.h = pyo.Var(bounds=(0, 20))
    lp.balance = pyo.Constraint(expr=lp.g + lp.h == 12)
    lp.cost = pyo.Objective(expr=2 * lp.g + 5 * lp.h)
    return lp


def test_kkt_of_a_small_lp_by_hand():
    """min 2g + 5h, g + h = 12, 0 <= g <= 10, 0 <= h <= 20: g = 10, h = 2; the balance's price is
    5 (h at the margin) and g's upper bound earns 5 - 2 = 3."""
    lp = _hand_lp()
    kkt = kkt_system(lp, dual_bound=100.0)
    outcome = solve_milp(kkt.model, "highs", mip_gap=1e-9)
    assert outcome.objective == pytest.approx(30.0)
    assert kkt.primal(lp.g) == pytest.approx(10.0) and kkt.primal(lp.h) == pytest.approx(2.0)
    assert kkt.dual(lp.balance) == pytest.approx(5.0)
    multipliers = sorted(round(pyo.value(v), 9) for v in kkt.model.multipliers.values())
    assert multipliers == [0.0, 0.0, 0.0, 3.0]
    # A bound below a true multiplier (3) leaves no KKT point: the bound is a stated assumption.
    with pytest.raises(SolverError, match="infeasible"):
        solve_milp(kkt_system(lp, dual_bound=2.0).model, "highs", mip_gap=1e-9)


def test_kkt_drops_the_multipliers_of_bounds_the_rows_never_reach():
    """min 2g + 5h, g + h = 12, 0 <= g <= 10, 0 <= h <= 20: the row keeps h in [2, 12], so neither
    of h's bounds can bind; the thinned system has two multipliers (g's), not four, and the
    same optimum (g = 10, h = 2, price 5, g's upper bound earning 3)."""
    lp = _hand_lp()
    full = kkt_system(lp, dual_bound=100.0)
    thin = kkt_system(lp, dual_bound=100.0, implied=ComponentMap([(lp.h, (2.0, 12.0))]))
    assert len(full.model.multipliers) == 4 and len(thin.model.multipliers) == 2
    assert len(thin.model.z) == len(full.model.z) - 2
    for kkt in (full, thin):
        assert solve_milp(kkt.model, "highs", mip_gap=1e-9).objective == pytest.approx(30.0)
        assert kkt.primal(lp.g) == pytest.approx(10.0) and kkt.dual(lp.balance) == pytest.approx(5.0)
    assert sorted(round(pyo.value(v), 9) for v in thin.model.multipliers.values()) == [0.0, 3.0]


@pytest.mark.parametrize("dual_bound", [1e4, 1e5, 1e6])
def test_kkt_prices_equal_the_opf_duals_with_the_decision_fixed(feeder, dual_bound):
    """With the data-center load fixed, the single-level model's prices are the OPF's DLMPs, and
    they do not move as the big-M on prices grows."""
    dc = {738: np.array([30.0, 30.0, 30.0]), 725: np.array([60.0, 60.0, 60.0])}
    reference = dso_opf(feeder, LATERAL_DG, TIGHT, extra_kw=dc)
    lp = build_opf_model(feeder, LATERAL_DG, TIGHT, extra_kw=dc)
    kkt = kkt_system(lp, dual_bound=dual_bound)
    outcome = solve_milp(kkt.model, "highs", mip_gap=1e-9)
    assert outcome.objective == pytest.approx(reference.cost_per_h, rel=1e-9)
    for bus, prices in reference.dlmp_p.items():
        for phase in range(3):
            assert kkt.dual(lp.balance_p[bus, phase]) == pytest.approx(prices[phase], abs=1e-6)


# --- The aggregator's bilevel problem as one MILP -------------------------------------------------

import itertools  # noqa: E402

from grid.errors import GridError  # noqa: E402
from grid.feeder.bilevel import (  # noqa: E402
    DataCenterSite,
    Decision,
    Workload,
    aggregator_bilevel,
    aggregator_payment,
)


def _opf_on_one_model(feeder, generators, settings, sites):
    """The DSO's OPF at any decision on ``sites``, on one model built once: the sites' load and
    net reactive power (less the SVG's) are its fixed ``dc_p``/``dc_q``, moved before each solve."""
    model = build_opf_model(feeder, generators, settings, decided_load_buses=tuple(s.bus for s in sites))

    def at(decision):
        inputs = decision.opf_inputs(sites)
        for s in sites:
            net = inputs["extra_kvar"][s.bus] - inputs["svg_kvar"].get(s.bus, np.zeros(3))
            for k in range(3):
                model.dc_p[s.bus, k].fix(inputs["extra_kw"][s.bus][k] / 1e3)
                model.dc_q[s.bus, k].fix(net[k] / 1e3)
        return solve_opf(model, feeder, generators, settings)

    return at


def test_one_model_solved_at_many_decisions_is_the_opf_at_each(feeder):
    """What the enumerations below rest on: moving the fixed loads of one model and solving it
    again gives the OPF built afresh at each decision, back and forth."""
    settings = OpfSettings(substation_price_per_mwh=45.0, head_voltage_pu=1.0, v_min_pu=0.95)
    sites = (DataCenterSite(738, max_kw=270.0, power_factor=0.9, svg_kvar=40.0),
             DataCenterSite(725, max_kw=270.0, power_factor=0.9))
    opf_at = _opf_on_one_model(feeder, LATERAL_DG, settings, sites)
    with_svg = Decision({738: 180.0, 725: 90.0}, {738: np.array([40.0, 0.0, -40.0])})
    for decision in (with_svg, Decision({738: 0.0, 725: 270.0}), with_svg):
        mine, fresh = opf_at(decision), dso_opf(feeder, LATERAL_DG, settings, **decision.opf_inputs(sites))
        assert mine.cost_per_h == pytest.approx(fresh.cost_per_h, rel=1e-9)
        for bus in fresh.dlmp_p:
            np.testing.assert_allclose(mine.dlmp_p[bus], fresh.dlmp_p[bus], atol=1e-6)
            np.testing.assert_allclose(mine.dlmp_q[bus], fresh.dlmp_q[bus], atol=1e-6)
            np.testing.assert_allclose(mine.voltage_pu[bus], fresh.voltage_pu[bus], atol=1e-9)
    crowded = Decision({738: 270.0, 725: 0.0})  # without the generator, too much load for the floor
    with pytest.raises(InfeasibleNetworkError):
        dso_opf(feeder, (), settings, **crowded.opf_inputs(sites))
    with pytest.raises(InfeasibleNetworkError):
        _opf_on_one_model(feeder, (), settings, sites)(crowded)


def _enumerated_payments(feeder, generators, settings, sites, workload, svg_choices):
    """Every decision: placements of the load in whole steps, times every SVG setting in
    ``svg_choices`` (bus -> list of per-phase kvar arrays). Each is solved as the DSO's OPF and
    paid at its DLMPs (None: the OPF is infeasible)."""
    opf_at = _opf_on_one_model(feeder, generators, settings, sites)
    out = {}
    steps_total = round(workload.total_kw / workload.step_kw)
    svg_buses = sorted(svg_choices)
    for steps in itertools.product(range(steps_total + 1), repeat=len(sites)):
        if sum(steps) != steps_total or any(n * workload.step_kw > s.max_kw for s, n in zip(sites, steps)):
            continue
        for svg in itertools.product(*(range(len(svg_choices[b])) for b in svg_buses)):
            decision = Decision({s.bus: n * workload.step_kw for s, n in zip(sites, steps)},
                                {b: svg_choices[b][i] for b, i in zip(svg_buses, svg)})
            try:
                opf = opf_at(decision)
            except GridError:
                out[steps, svg] = None
                continue
            out[steps, svg] = aggregator_payment(sites, decision, opf, workload)
    return out


# (generator kW per phase, step kW per phase, site buses, head voltage p.u., what the instance exercises)
BILEVEL_CASES = [
    (80.0, 30.0, (738, 725), 1.00, "the floor binds everywhere; one placement breaks it"),
    (70.0, 25.0, (738, 731), 1.00, "two placements break the floor"),
    # Head at 1.01: load at bus 725 leaves the floor slack (every DLMP 45 $/MWh); one step at the
    # weak end 738 makes it bind and raises the prices (58.7 $/MWh there): placements move prices.
    (100.0, 40.0, (738, 725), 1.01, "a placement moves the prices"),
]
# Each instance's enumeration, once for all its parametrizations.
_PLACEMENTS: dict = {}


@pytest.mark.parametrize("max_kw, step_kw, buses, head, _what", BILEVEL_CASES)
@pytest.mark.parametrize("price_bound", [1e4, 1e5])
@pytest.mark.parametrize("linearization", ["mccormick", "strong-duality"])
def test_bilevel_optimum_equals_enumeration_of_the_placements(feeder, max_kw, step_kw, buses, head, _what, price_bound,
                                                              linearization):
    """The single-level MILP (KKT, big-M, binary expansion, McCormick) against every placement of
    3 steps over two sites (active power only: power factor 1), each solved as the DSO's OPF and
    paid at its DLMPs. Placements that break the voltage floor must be avoided by both. The
    answer does not move as the price bound grows."""
    settings = OpfSettings(substation_price_per_mwh=45.0, head_voltage_pu=head, v_min_pu=0.95)
    generators = (DistributedGenerator("G711", 711, max_kw, 60.0),)
    sites = tuple(DataCenterSite(bus, max_kw=9 * step_kw, power_factor=1.0) for bus in buses)
    workload = Workload(total_kw=9 * step_kw, step_kw=3 * step_kw)
    key = (max_kw, step_kw, buses, head)  # the placements do not depend on the bound or the linearization
    if key not in _PLACEMENTS:
        _PLACEMENTS[key] = _enumerated_payments(feeder, generators, settings, sites, workload, {})
    enumerated = _PLACEMENTS[key]
    feasible = {key: pay for key, pay in enumerated.items() if pay is not None}
    ranked = sorted(feasible.values())
    assert ranked[1] - ranked[0] > 1e-3  # a unique best placement, so the choice is checked too
    best = min(feasible, key=feasible.get)
    result = aggregator_bilevel(feeder, generators, settings, sites, workload, svg=False, price_bound=price_bound,
                                linearization=linearization, tie_break_rule=False)
    assert result.payment_per_h == pytest.approx(feasible[best], rel=1e-7)
    assert tuple(round(result.decision.load_kw[b] / workload.step_kw) for b in buses) == best[0]
    if head > 1.0:  # the instance where the placement decides whether the floor binds
        prices = {key: pay / (workload.total_kw / 1e3) for key, pay in feasible.items()}
        assert max(prices.values()) - min(prices.values()) > 1.0
    else:
        assert len(feasible) < len(enumerated)


SVG_LEVELS = [np.array(levels, dtype=float) for levels in itertools.product((-40.0, 0.0, 40.0), repeat=3)]
_SVG_ENUMERATION: dict = {}


def _svg_enumeration(feeder, generators, settings, sites, workload):
    """The 108 OPF solves of the SVG instance, once for all its parametrizations."""
    if not _SVG_ENUMERATION:
        _SVG_ENUMERATION.update(_enumerated_payments(feeder, generators, settings, sites, workload, {738: SVG_LEVELS}))
    return _SVG_ENUMERATION


@pytest.mark.parametrize("price_bound", [1e4, 1e5])
@pytest.mark.parametrize("linearization", [pytest.param("mccormick", marks=pytest.mark.slow),  # McCormick's MILP
                                           "strong-duality"])
def test_bilevel_with_reactive_power_and_an_svg_equals_enumeration(feeder, price_bound, linearization):
    """Data centers at power factor 0.9 and a +-40 kvar SVG per phase at bus 738 (three levels per
    phase, 27 settings): the MILP's payment and decision against all 4 x 27 decisions. The SVG
    costs 2 $/Mvarh, so among settings that lower the prices equally the cheapest wins."""
    settings = OpfSettings(substation_price_per_mwh=45.0, head_voltage_pu=1.0, v_min_pu=0.95)
    generators = (DistributedGenerator("G711", 711, 80.0, 60.0),)
    sites = (DataCenterSite(738, max_kw=270.0, power_factor=0.9, svg_kvar=40.0),
             DataCenterSite(725, max_kw=270.0, power_factor=0.9))
    workload = Workload(total_kw=270.0, step_kw=90.0, svg_step_kvar=40.0, svg_cost_per_mvarh=2.0)
    enumerated = _svg_enumeration(feeder, generators, settings, sites, workload)
    feasible = {key: pay for key, pay in enumerated.items() if pay is not None}
    ranked = sorted(feasible.values())
    assert ranked[1] - ranked[0] > 1e-4
    best = min(feasible, key=feasible.get)
    result = aggregator_bilevel(feeder, generators, settings, sites, workload, svg=True, price_bound=price_bound,
                                linearization=linearization, tie_break_rule=False)
    assert result.payment_per_h == pytest.approx(feasible[best], rel=1e-7)
    assert tuple(round(result.decision.load_kw[s.bus] / 90.0) for s in sites) == best[0]
    np.testing.assert_allclose(result.decision.svg_kvar[738], SVG_LEVELS[best[1][0]])
    # The MILP's own prices at the sites are the DSO's OPF duals at its decision.
    opf = dso_opf(feeder, generators, settings, **result.decision.opf_inputs(sites))
    for s in sites:
        np.testing.assert_allclose(result.prices_p[s.bus], opf.dlmp_p[s.bus], atol=1e-5)
        np.testing.assert_allclose(result.prices_q[s.bus], opf.dlmp_q[s.bus], atol=1e-5)
    # The SVG is worth something here: the best decision without it pays more.
    without = min(pay for (steps, svg), pay in feasible.items() if not SVG_LEVELS[svg[0]].any())
    assert without > feasible[best] + 1e-3


def test_kkt_prices_equal_the_opf_duals_with_a_quadratic_generator(feeder):
    """A quadratic cost adds 2 a PG to stationarity; the KKT model's prices are still the QP's duals."""
    quad = (DistributedGenerator("G711", 711, 100.0, 30.0, quadratic_cost=0.0005),)
    dc = {738: np.array([30.0, 30.0, 30.0])}
    reference = dso_opf(feeder, quad, TIGHT, extra_kw=dc)
    lp = build_opf_model(feeder, quad, TIGHT, extra_kw=dc)  # kept: the KKT system refers to its components
    kkt = kkt_system(lp, dual_bound=1e4)
    solve_milp(kkt.model, "highs", mip_gap=1e-9)
    for bus, prices in reference.dlmp_p.items():
        for phase in range(3):
            assert kkt.dual(lp.balance_p[bus, phase]) == pytest.approx(prices[phase], rel=1e-4, abs=1e-3)
    assert kkt.primal(lp.pg["G711", 0]) * 1e3 == pytest.approx(reference.generator_kw["G711"][0], rel=1e-4)


def test_bilevel_refuses_a_workload_the_sites_cannot_take(feeder):
    sites = (DataCenterSite(738, max_kw=90.0), DataCenterSite(725, max_kw=90.0))
    with pytest.raises(GridError, match="total_kw: 270 kW does not fit the sites"):
        aggregator_bilevel(feeder, (), TIGHT, sites, Workload(270.0, 90.0), svg=False, price_bound=1e4)
    with pytest.raises(GridError, match="total_kw: 100 kW is not a whole number of 90-kW steps"):
        Workload(100.0, 90.0)
    with pytest.raises(GridError, match="svg_kvar 50 is not a whole number of 40-kvar steps"):
        aggregator_bilevel(feeder, (), TIGHT, (DataCenterSite(738, 90.0, svg_kvar=50.0),), Workload(90.0, 90.0, 40.0),
                           svg=True, price_bound=1e4)


def test_strong_duality_refuses_a_quadratic_generator(feeder):
    quad = (DistributedGenerator("G711", 711, 100.0, 30.0, quadratic_cost=0.0005),)
    with pytest.raises(GridError, match="strong duality needs linear generator costs; use \"mccormick\""):
        aggregator_bilevel(feeder, quad, TIGHT, (DataCenterSite(738, 90.0),), Workload(90.0, 90.0), svg=False,
                           price_bound=1e4, linearization="strong-duality")


def test_mccormick_handles_a_quadratic_generator_as_enumeration_does(feeder):
    """With a_g > 0 the KKT rows carry 2 a PG and only the McCormick form applies; its optimum is
    still the best of the enumerated placements."""
    settings = OpfSettings(substation_price_per_mwh=45.0, head_voltage_pu=1.0, v_min_pu=0.95)
    quad = (DistributedGenerator("G711", 711, 120.0, 40.0, quadratic_cost=0.0002),)
    sites = (DataCenterSite(738, 270.0, power_factor=1.0), DataCenterSite(725, 270.0, power_factor=1.0))
    workload = Workload(270.0, 90.0)
    enumerated = {k: v for k, v in _enumerated_payments(feeder, quad, settings, sites, workload, {}).items()
                  if v is not None}
    best = min(enumerated, key=enumerated.get)
    result = aggregator_bilevel(feeder, quad, settings, sites, workload, svg=False, price_bound=1e4,
                                linearization="mccormick", tie_break_rule=False)
    # HiGHS's QP duals (the enumeration's prices) are accurate to about 1e-5 relative.
    assert result.payment_per_h == pytest.approx(enumerated[best], rel=1e-4)
    assert tuple(round(result.decision.load_kw[s.bus] / 90.0) for s in sites) == best[0]


def test_tie_break_rule_picks_the_highest_lowest_site_voltage_among_equal_payments(feeder):
    """Head at 1.03 p.u.: no limit binds, every DLMP is 45 $/MWh and every decision costs the same.
    The rule then picks the decision whose lowest site voltage is highest (then the highest mean),
    which enumeration finds independently."""
    settings = OpfSettings(substation_price_per_mwh=45.0, head_voltage_pu=1.03, v_min_pu=0.95)
    sites = (DataCenterSite(738, 270.0, power_factor=0.9, svg_kvar=40.0), DataCenterSite(725, 270.0, power_factor=0.9))
    workload = Workload(270.0, 90.0, svg_step_kvar=40.0)
    outcomes = []
    steps_options = [(n, 3 - n) for n in range(4)]
    opf_at = _opf_on_one_model(feeder, (), settings, sites)
    for (n738, n725), svg in itertools.product(steps_options, SVG_LEVELS):
        decision = Decision({738: n738 * 90.0, 725: n725 * 90.0}, {738: svg})
        opf = opf_at(decision)
        w = np.array([opf.voltage_pu[s.bus] ** 2 for s in sites])
        outcomes.append((aggregator_payment(sites, decision, opf, workload), -w.min(), -w.mean(), (n738, n725), svg))
    payments = [o[0] for o in outcomes]
    assert max(payments) - min(payments) < 1e-9  # flat prices: a tie everywhere
    _, low, _, steps, svg = min(outcomes, key=lambda o: (round(o[0], 9), round(o[1], 9), o[2]))
    result = aggregator_bilevel(feeder, (), settings, sites, workload, svg=True, price_bound=1e4,
                                linearization="strong-duality")
    assert tuple(round(result.decision.load_kw[s.bus] / 90.0) for s in sites) == steps
    np.testing.assert_allclose(result.decision.svg_kvar[738], svg)
    assert result.payment_per_h == pytest.approx(payments[0], rel=1e-9)


def test_unbalance_index_and_distances_by_hand(feeder):
    from grid.network.three_phase import distance_km, voltage_unbalance

    # Mean 1.0; phase c is 0.03 above it.
    assert voltage_unbalance(np.array([1.0, 0.97, 1.03])) == pytest.approx(0.03)
    assert voltage_unbalance(np.array([0.98, 0.98, 0.98])) == 0.0
    distance = distance_km(feeder)
    assert distance[701] == pytest.approx(1850 * 0.3048 / 1000)  # 799-701: 1,850 ft
    assert distance[702] == pytest.approx((1850 + 960) * 0.3048 / 1000)  # then 701-702: 960 ft


def test_the_one_phase_ieee37_case_matches_the_three_phase_feeder(feeder):
    from grid.network.cases import load_case

    network = load_case("ieee37")
    assert sorted(b.number for b in network.buses) == sorted(feeder.buses)
    assert network.reference_bus == 799 and len(network.lines) == 35
    for bus in network.buses:
        assert bus.base_load_mw == pytest.approx(feeder.load_kw[bus.number].sum() / 1e3)


@pytest.mark.parametrize("linearization", ["mccormick", "strong-duality"])
def test_glpk_solves_the_bilevel_milp_to_the_same_decision(feeder, linearization):
    """A second solver on the SVG instance's MILP: the same payment and decision as HiGHS."""
    need_glpk()
    settings = OpfSettings(substation_price_per_mwh=45.0, head_voltage_pu=1.0, v_min_pu=0.95)
    generators = (DistributedGenerator("G711", 711, 80.0, 60.0),)
    sites = (DataCenterSite(738, max_kw=270.0, power_factor=0.9, svg_kvar=40.0),
             DataCenterSite(725, max_kw=270.0, power_factor=0.9))
    workload = Workload(total_kw=270.0, step_kw=90.0, svg_step_kvar=40.0, svg_cost_per_mvarh=2.0)
    results = [aggregator_bilevel(feeder, generators, settings, sites, workload, svg=True, price_bound=1e4,
                                  linearization=linearization, tie_break_rule=False, solver=solver)
               for solver in ("highs", "glpk")]
    assert results[1].payment_per_h == pytest.approx(results[0].payment_per_h, rel=1e-7)
    assert results[1].decision.load_kw == results[0].decision.load_kw
    np.testing.assert_allclose(results[1].decision.svg_kvar[738], results[0].decision.svg_kvar[738])


def test_the_staged_tie_break_keeps_the_proven_payment_on_ten_ieee123_sites():
    """Ten sites with SVGs on IEEE 123, an hour whose prices are flat: the payment alone is proven
    optimal; the tie-break stage runs out of its node budget, and its decision pays that payment
    (to 1e-7) at voltages at least as high as the payment's own decision, the same on a second
    call (a node count, not seconds)."""
    from grid.feeder.bilevel import TIE_BREAK_NODES
    from grid.network.three_phase import load_ieee123

    feeder = load_ieee123()
    settings = OpfSettings(substation_price_per_mwh=32.0, head_voltage_pu=0.99, v_min_pu=0.95)
    buses = (66, 300, 51, 83, 76, 57, 44, 101, 108, 35)
    sites = tuple(DataCenterSite(b, 300.0, power_factor=0.9, svg_kvar=200.0) for b in buses)
    workload = Workload(800.0, 100.0, svg_step_kvar=50.0)
    plain = aggregator_bilevel(feeder, (), settings, sites, workload, svg=True, price_bound=1e4,
                               linearization="strong-duality", tie_break_rule=False)
    staged = [aggregator_bilevel(feeder, (), settings, sites, workload, svg=True, price_bound=1e4,
                                 linearization="strong-duality") for _ in range(2)]
    assert plain.solve.status == "optimal" and TIE_BREAK_NODES == 500
    assert staged[0].tie_break == "node_limit" and staged[0].solve.status == "optimal"
    assert staged[0].payment_per_h == pytest.approx(plain.payment_per_h, rel=1e-7)

    def lowest_site_voltage(decision):
        opf = dso_opf(feeder, (), settings, **decision.opf_inputs(sites))
        return min(float(np.nanmin(opf.voltage_pu[b])) for b in buses)

    assert lowest_site_voltage(staged[0].decision) >= lowest_site_voltage(plain.decision) - 1e-9
    assert staged[0].decision.load_kw == staged[1].decision.load_kw
    for bus in buses:
        np.testing.assert_array_equal(staged[0].decision.svg_kvar[bus], staged[1].decision.svg_kvar[bus])


def test_a_tie_break_stage_without_any_solution_keeps_the_payments_decision(feeder, monkeypatch):
    """When the tie-break stage finds nothing within its node budget (forced here), the payment's
    own decision, payment and prices stand, and the stage is reported as stopped at the budget."""
    import grid.feeder.bilevel as bilevel
    from grid.errors import NoIncumbentError

    settings = OpfSettings(substation_price_per_mwh=45.0, head_voltage_pu=1.03, v_min_pu=0.95)
    sites = (DataCenterSite(738, 270.0, power_factor=0.9, svg_kvar=40.0), DataCenterSite(725, 270.0, power_factor=0.9))
    workload = Workload(270.0, 90.0, svg_step_kvar=40.0)
    plain = aggregator_bilevel(feeder, (), settings, sites, workload, svg=True, price_bound=1e4,
                               linearization="strong-duality", tie_break_rule=False)
    solve = bilevel.solve_milp

    def no_incumbent_in_the_budget(model, solver, **options):
        if options.get("node_limit") is not None:
            raise NoIncumbentError("solver 'highs' found no solution for the model within the time limit")
        return solve(model, solver, **options)

    monkeypatch.setattr(bilevel, "solve_milp", no_incumbent_in_the_budget)
    staged = aggregator_bilevel(feeder, (), settings, sites, workload, svg=True, price_bound=1e4,
                                linearization="strong-duality")
    assert staged.tie_break == "node_limit" and staged.solve.status == "optimal"
    assert staged.decision.load_kw == plain.decision.load_kw
    np.testing.assert_array_equal(staged.decision.svg_kvar[738], plain.decision.svg_kvar[738])
    assert staged.payment_per_h == plain.payment_per_h


# docs/reference/cases.md#line-ratings, typed from the conductor table (A per phase).
_RATED = {"ieee37": {"721": 698.0, "722": 483.0, "723": 230.0, "724": 156.0},
          "ieee123": {**{str(c): 530.0 for c in range(1, 9)}, "9": 230.0, "10": 230.0, "11": 230.0, "12": 202.0}}


@pytest.mark.parametrize("name", sorted(_RATED))
def test_every_line_carries_its_conductors_ampacity_and_switches_none(name):
    from grid.network.three_phase import load_feeder
    feeder = load_feeder(name)
    for segment in feeder.segments:
        if segment.config == "switch":
            assert segment.ampacity_a is None
        else:
            assert segment.ampacity_a == _RATED[name][segment.config], (segment.from_bus, segment.to_bus)
    assert {s.config for s in feeder.segments} - {"switch"} == set(_RATED[name])
