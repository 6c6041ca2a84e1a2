"""Firm (1)-(3) and flexible (4)/(17) capacity on the paper's 4-bus case and small hand cases.

Every expected value is computed here from the spec's closed forms (robust bounds, sample CVaR
by sorting), never copied from the code under test.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pyomo.environ as pyo
import pytest

from grid.cases import load_case
from grid.errors import GridError, InfeasibleNetworkError, SolverError
from grid.firm import firm_capacity
from grid.flexible import _flexible_capacity, flexible_capacity
from grid.network import Bus, Line, Network
from grid.scenarios import TruncatedNormalLoad, sample_truncated_normal
from grid.solvers import SOLVERS, check_solver, solve
from tests.conftest import need_glpk

PAPER_LOADS = {  # spec 5.2
    1: TruncatedNormalLoad(25.0, 5.0, 20.0, 30.0),
    2: TruncatedNormalLoad(25.0, 5.0, 20.0, 30.0),
    3: TruncatedNormalLoad(15.0, 5.0, 10.0, 20.0),
    4: TruncatedNormalLoad(20.0, 5.0, 10.0, 30.0),
}
DEMAND = {3: 40.0, 4: 30.0}  # spec 7.9: any D3 > D4 above the flexible capacities
TOL = 1e-6


def cvar(values: np.ndarray, eps: float) -> float:
    """Sample CVaR: mean of the worst eps*S values, the boundary value weighted fractionally."""
    ordered = np.sort(np.asarray(values, dtype=float))[::-1]
    mass = eps * ordered.size
    whole = int(math.floor(mass))
    return float((ordered[:whole].sum() + (mass - whole) * ordered[whole]) / mass)


def cvar_by_minimisation(values: np.ndarray, eps: float) -> float:
    """(16) directly: min over eta of eta + mean((x - eta)^+) / eps; the minimiser is a sample."""
    x = np.asarray(values, dtype=float)
    eta = x[:, None]
    return float(np.min(eta[:, 0] + np.maximum(x[None, :] - eta, 0.0).mean(axis=1) / eps))


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def modified(net: Network, **line_limits: float) -> Network:
    """The network with some line limits replaced; keys like l1_2 mean line "1-2"."""
    wanted = {k[1:].replace("_", "-"): v for k, v in line_limits.items()}
    lines = tuple(
        dataclasses.replace(l, thermal_limit_mw=wanted.get(l.name, l.thermal_limit_mw)) for l in net.lines
    )
    return dataclasses.replace(net, lines=lines)


@pytest.fixture(scope="module")
def net():
    return load_case("paper-4bus")


@pytest.fixture(scope="module")
def scenarios(net):
    return sample_truncated_normal(net, PAPER_LOADS, 2000, np.random.default_rng(2026))


def assert_capacities(result, expected: dict[int, float]):
    assert list(result.capacity_mw) == [1, 2, 3, 4]
    for bus, value in expected.items():
        assert result.capacity_mw[bus] == pytest.approx(value, abs=TOL), bus


# ---------------------------------------------------------------- firm capacity, model (1)


@pytest.mark.parametrize("solver", SOLVERS)
def test_firm_capacity_of_the_paper_case(net, scenarios, solver):
    # Spec 5.2: c3 <= 40-20, c4 <= 40-30, c3 <= 50-20, c4 <= 50-30, c3 + c4 <= 100-(30+20+30).
    # Bus 4 weighs more (1/D4 > 1/D3), so c4 = 10 and c3 takes the remaining 10 on line 1-2.
    result = firm_capacity(net, scenarios, DEMAND, solver)
    assert result.model == "firm" and result.solver == solver
    assert_capacities(result, {1: 0.0, 2: 0.0, 3: 10.0, 4: 10.0})
    assert result.unserved_ratio == pytest.approx(30 / 40 + 20 / 30, abs=1e-9)
    assert set(result.binding) == {"withdrawal limit at bus 4", "line 1-2 upper limit"}


@pytest.mark.parametrize("solver", SOLVERS)
def test_firm_capacity_with_bus_3_priority(net, scenarios, solver):
    # D3 < D4 puts the weight on bus 3: c3 = min(20, 30, 20) = 20, nothing left on line 1-2.
    result = firm_capacity(net, scenarios, {3: 30.0, 4: 40.0}, solver)
    assert_capacities(result, {1: 0.0, 2: 0.0, 3: 20.0, 4: 0.0})
    assert "withdrawal limit at bus 3" in result.binding and "line 1-2 upper limit" in result.binding


@pytest.mark.parametrize("solver", SOLVERS)
def test_stage_two_picks_the_largest_total_when_demand_is_not_scarce(net, scenarios, solver):
    # Tiny demands: every c with c3 >= 1, c4 >= 2 inside the limits reaches (1a) = 0. Stage 2
    # (Theorem 1) takes the largest total; with line 1-2 loosened the buses decouple, so the
    # answer is unique: c3 = min(40-20, 50-20) = 20, c4 = min(40-30, 50-30) = 10.
    loose = modified(net, l1_2=1000.0)
    result = firm_capacity(loose, scenarios, {3: 1.0, 4: 2.0}, solver)
    assert_capacities(result, {3: 20.0, 4: 10.0})
    assert result.unserved_ratio == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("solver", SOLVERS)
def test_stage_two_fills_line_capacity_beyond_a_small_request(net, scenarios, solver):
    # D3 = 1: stage 1 gives c4 = 10 and any c3 in [1, 10]; stage 2 fills line 1-2: c3 = 20 - 10.
    result = firm_capacity(net, scenarios, {3: 1.0, 4: 30.0}, solver)
    assert_capacities(result, {3: 10.0, 4: 10.0})


def triangle(limit_23: float) -> Network:
    return Network(
        "triangle",
        (Bus(1), Bus(2), Bus(3, withdrawal_limit_mw=50.0)),
        (Line("1-2", 1, 2, 10.0, 0.1), Line("2-3", 2, 3, limit_23, 0.1), Line("1-3", 1, 3, 10.0, 0.1)),
        1,
    )


@pytest.mark.parametrize("solver", SOLVERS)
def test_firm_capacity_on_a_meshed_network_uses_both_signs_of_h(solver):
    # PTDF columns: bus 2 -> (2/3, -1/3, 1/3), bus 3 -> (1/3, 1/3, 2/3) on lines 1-2, 2-3, 1-3.
    # Upper rows with p2 in [3, 6]: c3/3 + 4 <= 10, c3/3 - 3/3 <= 2 (the worst case of -p2/3 is at
    # the LOWER bound), 2 c3/3 + 2 <= 10; so c3 = min(18, 9, 12) = 9.
    net = triangle(2.0)
    loads = {2: TruncatedNormalLoad(4.5, 1.0, 3.0, 6.0)}
    scenarios = sample_truncated_normal(net, loads, 200, np.random.default_rng(3))
    result = firm_capacity(net, scenarios, {3: 100.0}, solver)
    assert result.capacity_mw == pytest.approx({1: 0.0, 2: 0.0, 3: 9.0}, abs=TOL)
    assert result.binding == ("line 2-3 upper limit",)


# ---------------------------------------------------------------- flexible capacity, model (17)


def flexible_closed_form(samples: np.ndarray, eps: float, firm: dict[int, float]) -> dict[int, float]:
    """Proposition 1's bounds with bus-4 priority (weights 1/D), spec 5.2."""
    p2, p3, p4 = samples[:, 1], samples[:, 2], samples[:, 3]
    trunk = 100.0 - cvar(p2 + p3 + p4, eps)
    c4 = min(40.0 - cvar(p4, eps), 50.0 - cvar(p4, eps), trunk - firm[3])
    c4 = max(c4, firm[4])
    c3 = min(40.0 - cvar(p3, eps), 50.0 - cvar(p3, eps), trunk - c4)
    c3 = max(c3, firm[3])
    return {3: c3, 4: c4}


def test_the_test_cvar_agrees_with_its_definition(scenarios):
    p4 = scenarios.samples_mw[:500, 3]
    for eps in (0.05, 0.0123, 0.3):
        assert cvar(p4, eps) == pytest.approx(cvar_by_minimisation(p4, eps), abs=1e-9)


@pytest.mark.parametrize("solver", SOLVERS)
def test_flexible_capacity_of_the_paper_case(net, scenarios, solver):
    firm = firm_capacity(net, scenarios, DEMAND, solver)
    result = flexible_capacity(net, scenarios, DEMAND, 0.05, firm.capacity_mw, solver)
    expected = flexible_closed_form(scenarios.samples_mw, 0.05, {3: 10.0, 4: 10.0})
    assert result.model == "flexible"
    assert_capacities(result, {1: 0.0, 2: 0.0, **expected})
    increments = {b: result.capacity_mw[b] - firm.capacity_mw[b] for b in (3, 4)}
    # Spec 5.2 reports about (7.1, 5.4) over many draws; one draw lands near it.
    assert increments[3] == pytest.approx(7.1, abs=0.6) and increments[4] == pytest.approx(5.4, abs=0.4)
    assert set(result.binding) == {"withdrawal limit at bus 4", "line 1-2 upper limit"}


def test_flexible_capacity_with_a_fractional_tail(net, scenarios):
    eps = 0.0123  # eps * S = 24.6: the 25th worst scenario counts with weight 0.6
    firm = {1: 0.0, 2: 0.0, 3: 10.0, 4: 10.0}
    result = flexible_capacity(net, scenarios, DEMAND, eps, firm)
    expected = flexible_closed_form(scenarios.samples_mw, eps, firm)
    assert_capacities(result, expected)


@pytest.mark.parametrize("eps", [0.05, 1 / 30])
def test_tail_only_scenario_rows_give_the_full_lp_answer(net, eps):
    scenarios = sample_truncated_normal(net, PAPER_LOADS, 300, np.random.default_rng(11))
    firm = {3: 10.0, 4: 10.0}
    tail = _flexible_capacity(net, scenarios, DEMAND, eps, firm, "highs", tail_only=True)
    full = _flexible_capacity(net, scenarios, DEMAND, eps, firm, "highs", tail_only=False)
    for bus in (3, 4):
        assert tail.capacity_mw[bus] == pytest.approx(full.capacity_mw[bus], abs=TOL)
    assert_capacities(full, flexible_closed_form(scenarios.samples_mw, eps, firm))


@pytest.mark.parametrize("solver", SOLVERS)
def test_flexible_capacity_on_a_meshed_network(solver):
    net = triangle(2.0)
    loads = {2: TruncatedNormalLoad(4.5, 1.0, 3.0, 6.0)}
    scenarios = sample_truncated_normal(net, loads, 400, np.random.default_rng(5))
    p2 = scenarios.samples_mw[:, 1]
    eps = 0.1
    # c3 <= (f_l - CVaR(H_l2 p2)) / H_l3 on each upper row; lower rows and w3 = 50 stay slack.
    expected = min(
        (10.0 - cvar(2 / 3 * p2, eps)) * 3,
        (2.0 - cvar(-1 / 3 * p2, eps)) * 3,
        (10.0 - cvar(1 / 3 * p2, eps)) * 1.5,
    )
    result = flexible_capacity(net, scenarios, {3: 100.0}, eps, {3: 9.0}, solver)
    assert result.capacity_mw[3] == pytest.approx(expected, abs=TOL)
    assert result.binding == ("line 2-3 upper limit",)


# ---------------------------------------------------------------- infeasible and unbounded


def paper_scenarios(net: Network, **changes: TruncatedNormalLoad):
    loads = dict(PAPER_LOADS)
    loads.update({int(k[1:]): v for k, v in changes.items()})
    return sample_truncated_normal(net, loads, 300, np.random.default_rng(9))


HOT = TruncatedNormalLoad(40.0, 5.0, 35.0, 45.0)  # worst case 45 MW > w = 40 MW


@pytest.mark.parametrize("solver", SOLVERS)
def test_infeasible_withdrawal_at_a_candidate_bus_is_named(net, solver):
    with pytest.raises(InfeasibleNetworkError) as exc:
        firm_capacity(net, paper_scenarios(net, b3=HOT), DEMAND, solver)
    message = one_line(exc)
    assert "withdrawal limit at bus 3 (40 MW)" in message and "45 MW" in message
    with pytest.raises(InfeasibleNetworkError) as exc:
        flexible_capacity(net, paper_scenarios(net, b3=HOT), DEMAND, 0.05, {}, solver)
    assert "withdrawal limit at bus 3" in one_line(exc) and "CVaR" in str(exc.value)


@pytest.mark.parametrize("solver", SOLVERS)
def test_infeasible_withdrawal_at_another_bus_is_named(net, solver):
    with pytest.raises(InfeasibleNetworkError) as exc:
        firm_capacity(net, paper_scenarios(net, b2=HOT), DEMAND, solver)
    assert "withdrawal limit at bus 2" in one_line(exc)


@pytest.mark.parametrize("solver", SOLVERS)
def test_infeasible_line_is_named(net, solver):
    tight = modified(net, l1_2=70.0)  # worst-case trunk flow 30 + 20 + 30 = 80 MW
    with pytest.raises(InfeasibleNetworkError) as exc:
        firm_capacity(tight, paper_scenarios(tight), DEMAND, solver)
    assert "line 1-2 upper limit (70 MW)" in one_line(exc) and "80 MW" in str(exc.value)
    # Line 2-3 cannot carry bus 3's worst case 20 MW, and no candidate sits behind it.
    tight = modified(net, l2_3=15.0)
    with pytest.raises(InfeasibleNetworkError) as exc:
        firm_capacity(tight, paper_scenarios(tight), {4: 30.0}, solver)
    assert "line 2-3 upper limit (15 MW)" in one_line(exc)


@pytest.mark.parametrize("solver", SOLVERS)
def test_infeasible_firm_floor_is_reported(net, solver):
    with pytest.raises(InfeasibleNetworkError) as exc:
        flexible_capacity(net, paper_scenarios(net), DEMAND, 0.05, {3: 30.0, 4: 0.0}, solver)
    message = one_line(exc)
    assert "bus 3" in message and "firm capacities" in message


def test_unbounded_capacity_names_the_bus(net, scenarios):
    open_net = Network(
        "open",
        (Bus(1, 40.0), Bus(2, 40.0), Bus(3, 40.0), Bus(4)),
        (Line("1-2", 1, 2, math.inf), Line("2-3", 2, 3, 50.0), Line("2-4", 2, 4, math.inf)),
        1,
    )
    with pytest.raises(GridError) as exc:
        firm_capacity(open_net, scenarios, DEMAND)
    assert "bus 4" in one_line(exc) and "withdrawal_limit_mw" in str(exc.value)


@pytest.mark.parametrize("solver", SOLVERS)
def test_unbounded_meshed_capacity_names_a_bus(solver):
    # Only line 2-3 is limited; withdrawing equally at buses 2 and 3 never loads it.
    net = Network(
        "open-triangle",
        (Bus(1), Bus(2), Bus(3)),
        (Line("1-2", 1, 2, math.inf, 0.1), Line("2-3", 2, 3, 10.0, 0.1), Line("1-3", 1, 3, math.inf, 0.1)),
        1,
    )
    scenarios = sample_truncated_normal(net, {}, 5, np.random.default_rng(0))
    with pytest.raises(GridError) as exc:
        firm_capacity(net, scenarios, {2: 10.0, 3: 10.0}, solver)
    assert "unbounded" in one_line(exc) and "withdrawal_limit_mw" in str(exc.value)


# ---------------------------------------------------------------- input validation and solvers


def test_input_validation(net, scenarios):
    with pytest.raises(GridError) as exc:
        firm_capacity(net, scenarios, {7: 10.0})
    assert "bus 7" in one_line(exc)
    with pytest.raises(GridError) as exc:
        firm_capacity(net, scenarios, {3: 0.0})
    assert "bus 3" in one_line(exc)
    with pytest.raises(GridError) as exc:
        flexible_capacity(net, scenarios, DEMAND, 1.0, {})
    assert "epsilon" in one_line(exc)
    with pytest.raises(GridError) as exc:
        flexible_capacity(net, scenarios, DEMAND, 0.05, {2: 5.0})
    assert "bus 2" in one_line(exc)
    other = Network("two", (Bus(1), Bus(2, 5.0)), (Line("1-2", 1, 2, 9.0),), 1)
    with pytest.raises(GridError) as exc:
        firm_capacity(other, scenarios, {2: 1.0})
    assert "'two'" in one_line(exc)


def test_check_solver():
    check_solver("highs")
    with pytest.raises(GridError) as exc:
        check_solver("cplex")
    assert not isinstance(exc.value, SolverError)
    assert "cplex" in one_line(exc) and "highs" in str(exc.value) and "glpk" in str(exc.value)


def _tiny_lp(kind: str) -> pyo.ConcreteModel:
    m = pyo.ConcreteModel()
    m.x = pyo.Var(within=pyo.NonNegativeReals)
    m.y = pyo.Var(within=pyo.NonNegativeReals)
    if kind == "infeasible":
        m.c = pyo.Constraint(expr=m.x + m.y <= -1)
        m.o = pyo.Objective(expr=m.x)
    elif kind == "unbounded":
        m.c = pyo.Constraint(expr=m.x - m.y <= 1)
        m.o = pyo.Objective(expr=m.x, sense=pyo.maximize)
    else:
        m.c = pyo.Constraint(expr=m.x + m.y <= 3)
        m.o = pyo.Objective(expr=m.x + 2 * m.y, sense=pyo.maximize)
    return m


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("kind", ["optimal", "infeasible", "unbounded"])
def test_solve_reports_outcomes_alike_for_both_solvers(solver, kind):
    m = _tiny_lp(kind)
    assert solve(m, solver) == kind
    if kind == "optimal":
        assert pyo.value(m.y) == pytest.approx(3.0)
    else:
        assert m.x.value is None  # nothing loaded
    assert len(list(m.component_objects(pyo.Objective, active=True))) == 1


# ---------------------------------------------------------------- ties that (1a) leaves open
@pytest.mark.parametrize("solver", SOLVERS)
def test_equal_demands_share_the_line_evenly_with_every_solver(net, scenarios, solver):
    # D3 = D4: every split of line 1-2's 20 MW minimises (1a) and the total; stage 3 evens out the
    # unserved ratios, so (10, 10), which bus 4's withdrawal bound (c4 <= 10) also allows.
    firm = firm_capacity(net, scenarios, {3: 30.0, 4: 30.0}, solver)
    assert_capacities(firm, {1: 0.0, 2: 0.0, 3: 10.0, 4: 10.0})
    # Flexible: an even split (16.2 each) would break bus 4's CVaR bound (15.4), so bus 4 sits at
    # that bound and bus 3 takes the rest of line 1-2.
    eps, p = 0.05, scenarios.samples_mw
    trunk = 100.0 - cvar(p[:, 1] + p[:, 2] + p[:, 3], eps)
    c4 = min(40.0 - cvar(p[:, 3], eps), trunk / 2)
    c3 = min(40.0 - cvar(p[:, 2], eps), trunk - c4)
    assert c4 < trunk / 2  # the case the comment describes
    flexible = flexible_capacity(net, scenarios, {3: 30.0, 4: 30.0}, eps, firm.capacity_mw, solver)
    assert_capacities(flexible, {1: 0.0, 2: 0.0, 3: c3, 4: c4})


def star(limit_23: float) -> Network:
    """Bus 1 feeds bus 2 over a 22 MW line; buses 3, 4, 5 hang off bus 2."""
    return Network(
        "star",
        tuple(Bus(b, withdrawal_limit_mw=100.0) for b in range(1, 6)),
        (Line("1-2", 1, 2, 22.0), Line("2-3", 2, 3, limit_23), Line("2-4", 2, 4, 50.0), Line("2-5", 2, 5, 50.0)),
        1,
    )


@pytest.mark.parametrize("solver", SOLVERS)
def test_leximin_shares_what_a_capped_candidate_leaves(solver):
    # Line 2-3 caps c3 at 2, so bus 3's unserved ratio 28/30 is the worst whatever the others get.
    # Minimising only that worst ratio would leave c4 + c5 = 20 open; the leximin goes on to the
    # next level and splits it evenly: (c3, c4, c5) = (2, 10, 10), with both solvers. Without
    # bus 3 the same two buses also get 11 each of the 22 MW line.
    net = star(2.0)
    scenarios = sample_truncated_normal(net, {}, 10, np.random.default_rng(0))
    result = firm_capacity(net, scenarios, {3: 30.0, 4: 30.0, 5: 30.0}, solver)
    assert result.capacity_mw == pytest.approx({1: 0.0, 2: 0.0, 3: 2.0, 4: 10.0, 5: 10.0}, abs=TOL)
    pair = firm_capacity(net, scenarios, {4: 30.0, 5: 30.0}, solver)
    assert pair.capacity_mw == pytest.approx({1: 0.0, 2: 0.0, 3: 0.0, 4: 11.0, 5: 11.0}, abs=TOL)


@pytest.mark.parametrize("solver", SOLVERS)
def test_unserved_ratio_objective_serves_small_demands_first(solver):
    # (1a) weighs each MW by 1/D_k: with D = 10, 20, 40 sharing line 1-2's 22 MW, bus 3 is
    # filled to its demand (10 MW), bus 4 gets the remaining 12 MW and bus 5 nothing. The
    # optimum is unique, so no tie-settling stage has a say.
    net = star(50.0)
    scenarios = sample_truncated_normal(net, {}, 10, np.random.default_rng(0))
    result = firm_capacity(net, scenarios, {3: 10.0, 4: 20.0, 5: 40.0}, solver)
    assert result.capacity_mw == pytest.approx({1: 0.0, 2: 0.0, 3: 10.0, 4: 12.0, 5: 0.0}, abs=TOL)


def test_highs_and_glpk_agree_on_random_tied_networks():
    # Random trees where every candidate asks the same demand: (1a) is full of ties, and only the
    # leximin makes the answer unique. GLPK (a separate program, no persistent state) must agree.
    need_glpk()
    rng = np.random.default_rng(42)
    for trial in range(6):
        size = int(rng.integers(5, 9))
        lines = []
        for bus in range(2, size + 1):
            parent = int(rng.integers(1, bus))
            # Room for the worst background (4 MW a bus) plus 5-30 MW for data centers.
            lines.append(Line(f"{parent}-{bus}", parent, bus, float(4 * size + rng.integers(5, 30))))
        net = Network(f"tree{trial}", tuple(Bus(b, withdrawal_limit_mw=25.0) for b in range(1, size + 1)),
                      tuple(lines), 1)
        loads = {b: TruncatedNormalLoad(2.0, 1.0, 0.0, 4.0) for b in range(2, size + 1)}
        scenarios = sample_truncated_normal(net, loads, 300, rng)
        demand = {int(b): 40.0 for b in rng.choice(np.arange(2, size + 1), size=3, replace=False)}
        for model in ("firm", "flexible"):
            answers = []
            for solver in SOLVERS:
                firm = firm_capacity(net, scenarios, demand, solver)
                result = firm if model == "firm" else flexible_capacity(
                    net, scenarios, demand, 0.05, firm.capacity_mw, solver)
                answers.append(result.capacity_mw)
            assert answers[0] == pytest.approx(answers[1], abs=1e-6), (trial, model, demand)
