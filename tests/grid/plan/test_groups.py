"""The plan by scenario groups (docs/models/plan.md#fcm-groups): its lower bound below the optimum
that enumeration of every Stage I decision finds, its plan's objective above it, the bound rising
as groups merge, and the same answer on worker processes."""

from __future__ import annotations

import pytest

from grid.plan.groups import solve_by_groups
from grid.plan.milp import RiskSettings
from tests.grid.plan.test_milp import brute_force, enumerated, instance
from tests.grid.plan.test_stage_two import _pool_map

CASES = [(0.5, 0.75, 0.0), (0.0, 0.5, 0.0), (1.0, 0.5, 0.2)]


@pytest.mark.parametrize("lam, alpha, radius", CASES)
def test_the_groups_bracket_the_enumerated_optimum(lam, alpha, radius):
    data, shocks = instance()  # 4 scenarios
    optimum = brute_force(lam, alpha, radius)[0][0]
    bounds = []
    for size in (1, 2, 4):
        for tail in (0, 5):
            result = solve_by_groups(data, shocks, RiskSettings(lam, alpha, radius), group_size=size, mip_gap=1e-9,
                                     tail=tail)
            assert result.groups == -(-4 // size) and result.all_optimal
            assert result.bound <= optimum + 1e-6 <= result.objective + 2e-6
        bounds.append(solve_by_groups(data, shocks, RiskSettings(lam, alpha, radius), group_size=size, mip_gap=1e-9,
                                      tail=0).bound)
    # Nested groups (1 into 2 into 4): the minimum of a sum is at least the sum of the minima.
    assert bounds[0] <= bounds[1] + 1e-6 <= bounds[2] + 2e-6
    # One group is the whole model: its bound is the optimum, and so is its plan's objective.
    assert bounds[2] == pytest.approx(optimum, rel=1e-7) and result.objective == pytest.approx(optimum, rel=1e-7)


@pytest.mark.parametrize("lam, alpha, radius", [(1.0, 0.5, 0.2), (0.5, 0.75, 0.3), (0.25, 0.9, 0.1)])
def test_the_tail_rounds_close_the_robust_gap(lam, alpha, radius):
    """docs/models/plan.md#eq-f-tail: with the dearest scenarios in every group's ball the lower bound
    rises and the plan found is the enumerated optimum, where each group alone proposes worse plans."""
    data, shocks = instance()
    optimum = brute_force(lam, alpha, radius)[0][0]
    risk = RiskSettings(lam, alpha, radius)
    for size in (1, 2):
        alone = solve_by_groups(data, shocks, risk, group_size=size, mip_gap=1e-9, tail=0)
        tailed = solve_by_groups(data, shocks, risk, group_size=size, mip_gap=1e-9)
        assert alone.rounds == 1 and tailed.rounds >= 2
        assert alone.bound + 50.0 < tailed.bound <= optimum + 1e-6
        assert tailed.objective == pytest.approx(optimum, rel=1e-7)
    assert alone.objective > optimum + 1.0  # groups of two alone miss the optimal plan


def test_a_known_plan_gives_the_first_round_its_tail():
    """Seeded with the sample plan (as the study does), the robust groups start with its dearest
    scenarios: the first round's bound is already above the unseeded one, and every bound stays
    below the enumerated optimum."""
    data, shocks = instance()
    risk = RiskSettings(1.0, 0.5, 0.2)
    optimum = brute_force(1.0, 0.5, 0.2)[0][0]
    sample = solve_by_groups(data, shocks, RiskSettings(1.0, 0.5, 0.0), group_size=4, mip_gap=1e-9).plan
    alone = solve_by_groups(data, shocks, risk, group_size=1, mip_gap=1e-9, tail=0)
    seeded = solve_by_groups(data, shocks, risk, group_size=1, mip_gap=1e-9, seeds=[sample])
    one_round = solve_by_groups(data, shocks, risk, group_size=1, mip_gap=1e-9, seeds=[sample], tail=0)
    assert one_round.bound == pytest.approx(alone.bound)  # no tail: the seed is only a candidate
    assert alone.bound + 50.0 < seeded.bound <= optimum + 1e-6 <= seeded.objective + 2e-6
    assert seeded.objective == pytest.approx(optimum, rel=1e-7)


def test_groups_on_worker_processes_give_the_serial_answer():
    data, shocks = instance()
    risk = RiskSettings(0.5, 0.75, 0.0)
    serial = solve_by_groups(data, shocks, risk, group_size=1, mip_gap=1e-9)
    pooled = solve_by_groups(data, shocks, risk, group_size=1, mip_gap=1e-9, mapper=_pool_map, workers=2)
    assert (pooled.objective, pooled.bound, pooled.plan.key()) == (serial.objective, serial.bound, serial.plan.key())


@pytest.mark.parametrize("lam, alpha, radius", CASES)
def test_screening_keeps_the_upper_bound_exact(lam, alpha, radius):
    """docs/models/plan.md#eq-f-screen: with the candidates screened on two of the four scenarios
    and only the best one evaluated on all, the objective reported is still the reported plan's
    exact one (enumeration's value of that plan), the bound is unchanged, and the plan is no better
    than the one full evaluation of every candidate finds."""
    data, shocks = instance()
    risk = RiskSettings(lam, alpha, radius)
    every = solve_by_groups(data, shocks, risk, group_size=1, mip_gap=1e-9, tail=0)
    screened = solve_by_groups(data, shocks, risk, group_size=1, mip_gap=1e-9, tail=0, screen=2, full=1)
    exact = dict((key, total) for total, key in brute_force(lam, alpha, radius))
    assert screened.objective == pytest.approx(exact[screened.plan.key()], rel=1e-9)
    assert every.objective == pytest.approx(exact[every.plan.key()], rel=1e-9)
    assert screened.bound == every.bound and screened.candidates == every.candidates
    assert screened.objective >= every.objective - 1e-9
    assert screened.screened_out == every.candidates - 1 > 0 and every.screened_out == 0


def test_screening_settings_must_be_positive():
    data, shocks = instance()
    with pytest.raises(ValueError, match="at least 1"):
        solve_by_groups(data, shocks, RiskSettings(0.5, 0.75), group_size=1, screen=0)



@pytest.mark.parametrize("lam, alpha, radius", CASES)
def test_a_known_plan_is_a_candidate_for_any_model(lam, alpha, radius):
    """The frontier's plans seed each other (docs/models/plan.md#fcm-groups): the enumerated optimum
    given as a seed is what groups of one report, with its exact objective, whatever they propose."""
    data, shocks = instance()
    best_total, best_key = brute_force(lam, alpha, radius)[0]
    best_plan = enumerated()[best_key][0]
    seeded = solve_by_groups(data, shocks, RiskSettings(lam, alpha, radius), group_size=1, mip_gap=1e-9, tail=0,
                             seeds=[best_plan])
    assert seeded.plan.key() == best_key and seeded.objective == pytest.approx(best_total, rel=1e-9)
