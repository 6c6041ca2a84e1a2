"""The plan on many scenarios by scenario groups, with a certified gap: docs/models/plan.md#fcm-groups.

The risk term is an average over the scenarios once its own variables (CVaR's threshold zeta, and
the DRO dual's mu and kappa) are first-stage (docs/models/plan.md#eq-f-separable). Split the S
scenarios into groups G_1..G_K: the minimum of a sum is at least the sum of the minima, so

    min_x sum_k |G_k|/S F_k(x)  >=  sum_k |G_k|/S min_x F_k(x),

where F_k is the two-stage model on group k's scenarios alone, the same MILP with the same risk
settings (for the DRO model, the ball around the group's own empirical distribution). Each group's
MILP bound is a valid lower bound on its minimum whatever its gap, so the weighted sum of the
groups' bounds is a lower bound on the S-scenario optimum. Every plan a group chose is feasible:
evaluated exactly on all S scenarios (each Stage II solved alone, grid.plan.dispatch), the best is
an upper bound. Groups are independent MILPs: they run side by side on the caller's mapper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from grid.errors import GridError
from grid.plan.data import PlanData
from grid.plan.dispatch import Mapper, batch_size, evaluate_stock, serial_map
from grid.plan.milp import Plan, PlanSolution, RiskSettings, solve_plan
from grid.plan.risk import worst_case_mean_cvar
from grid.plan.shocks import ShockScenarios
from grid.solvers.solve import MilpOutcome


@dataclass(frozen=True)
class GroupedSolution:
    """The best plan the groups found, its exact objective on all scenarios (the upper bound), the
    groups' lower bound, and what it took."""

    plan: Plan
    risk: RiskSettings
    objective: float  # $, plan cost + the risk term on all S scenarios, each Stage II solved alone
    bound: float  # $, sum_k |G_k|/S (group k's MILP bound)
    scenarios: int
    group_size: int
    groups: int
    candidates: int  # distinct plans the groups chose, each evaluated on all scenarios
    all_optimal: bool  # every group's MILP ended within its gap (else its bound is still valid, only looser)

    @property
    def gap(self) -> float:
        """(upper - lower) / max(1, |upper|), as a MILP's gap."""
        return (self.objective - self.bound) / max(1.0, abs(self.objective))

    def as_solution(self, solver: str, seconds: float) -> PlanSolution:
        """The plan as the study reports a MILP's: the exact objective as the incumbent, the groups'
        lower bound as the bound; "optimal" within that gap, which the bounds prove."""
        outcome = MilpOutcome(solver, "optimal", self.objective, min(self.bound, self.objective), seconds)
        return PlanSolution(self.plan, self.risk, self.objective, self.objective - self.plan.cost, outcome,
                            self.scenarios, self.groups)


def solve_group(data: PlanData, shocks: ShockScenarios, risk: RiskSettings, solver: str, mip_gap: float,
                time_limit: float | None) -> PlanSolution:
    """One group's MILP (a worker's task)."""
    return solve_plan(data, shocks, risk, solver=solver, mip_gap=mip_gap, time_limit=time_limit)


def solve_by_groups(data: PlanData, shocks: ShockScenarios, risk: RiskSettings, *, group_size: int,
                    solver: str = "highs", mip_gap: float = 1e-3, time_limit: float | None = None,
                    mapper: Mapper | None = None, workers: int = 1,
                    progress: Callable[[str], None] = lambda _: None) -> GroupedSolution:
    """Bounds on the S-scenario plan from groups of ``group_size`` consecutive scenarios (the last
    may be smaller); ``workers`` sizes the evaluation's batches for ``mapper``."""
    count = shocks.count
    if count == 0:
        raise GridError("plan.scenarios: no shock scenarios; give at least one")
    if group_size < 1:
        raise GridError(f"plan.group_size: {group_size!r} is not a positive number of scenarios")
    starts = list(range(0, count, group_size))
    tasks = [(data, shocks.subset(slice(a, min(count, a + group_size))), risk, solver, mip_gap, time_limit)
             for a in starts]
    map_ = mapper or serial_map
    progress(f"{len(tasks)} groups of up to {group_size} scenarios")
    solutions = list(map_(solve_group, tasks))
    bound = sum(task[1].count / count * s.solve.bound for task, s in zip(tasks, solutions))
    candidates: dict[tuple, Plan] = {}
    for s in solutions:
        candidates.setdefault(s.plan.key(), s.plan)
    progress(f"lower bound {bound:,.2f} $; {len(candidates)} distinct plans to evaluate on {count:,} scenarios")
    best: tuple[float, Plan] | None = None
    for plan in candidates.values():
        costs = evaluate_stock(data, plan.stock(data), shocks, mapper=mapper, batch=batch_size(count, workers)).cost
        value = plan.cost + worst_case_mean_cvar(costs, risk.lam, risk.alpha, risk.radius)
        if best is None or value < best[0]:
            best = (value, plan)
    assert best is not None
    return GroupedSolution(best[1], risk, best[0], bound, count, group_size, len(tasks), len(candidates),
                           all(s.solve.status == "optimal" for s in solutions))
