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

The robust model's ball couples every scenario through mu + kappa >= v_s, and a group that sees
only its own scenarios sets kappa by its own dearest one: a weak bound. Any scenario may be added to
a group's ball at probability 0, which keeps only its row, a row the whole model has too; so later
rounds add the dearest scenarios of the plans so far to every group (docs/models/plan.md#eq-f-tail).
Every round's bound is valid; the highest is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from grid.errors import GridError
from grid.plan.data import PlanData
from grid.plan.dispatch import Mapper, batch_size, evaluate_stock, serial_map
from grid.plan.milp import Plan, PlanSolution, RiskSettings, solve_plan
from grid.plan.risk import worst_case_mean_cvar
from grid.plan.shocks import ShockScenarios
from grid.solvers.solve import MilpOutcome, relative_gap


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
    rounds: int = 1  # more: the robust model's later rounds, with the tail scenarios (#eq-f-tail)

    @property
    def gap(self) -> float:
        return relative_gap(self.objective, self.bound)

    def as_solution(self, solver: str, seconds: float) -> PlanSolution:
        """The plan as the study reports a MILP's: the exact objective as the incumbent, the groups'
        lower bound as the bound; "optimal" within that gap, which the bounds prove."""
        outcome = MilpOutcome(solver, "optimal", self.objective, min(self.bound, self.objective), seconds)
        return PlanSolution(self.plan, self.risk, self.objective, self.objective - self.plan.cost, outcome,
                            self.scenarios, self.groups)


def solve_group(data: PlanData, shocks: ShockScenarios, risk: RiskSettings, solver: str, mip_gap: float,
                time_limit: float | None, weighted: int | None = None) -> PlanSolution:
    """One group's MILP (a worker's task); scenarios past ``weighted`` are the tail's (#eq-f-tail)."""
    return solve_plan(data, shocks, risk, solver=solver, mip_gap=mip_gap, time_limit=time_limit, weighted=weighted)


# The robust model's later rounds add to every group, at probability 0, the dearest scenarios of the
# plans so far (docs/models/plan.md#eq-f-tail): this many of the best plan's, and the dearest of
# each plan the last round proposed; at most TAIL_MAX in all, and at most ROUNDS rounds, until the
# gap is within TARGET_GAP or no scenario is new.
TAIL_SCENARIOS = 5
TAIL_MAX = 25
ROUNDS = 4
TARGET_GAP = 0.01


@dataclass
class _Round:
    """What the group MILPs of one round gave."""

    bound: float
    plans: list[Plan]
    all_optimal: bool


def _solve_round(data: PlanData, shocks: ShockScenarios, risk: RiskSettings, starts: list[int], group_size: int,
                 tail: list[int], settings: tuple[str, float, float | None], map_: Mapper) -> _Round:
    """Every group's MILP, each with the ``tail`` scenarios it does not hold at probability 0."""
    count = shocks.count
    tasks = []
    for a in starts:
        own = list(range(a, min(count, a + group_size)))
        extra = [s for s in tail if s not in own]
        tasks.append((data, shocks.subset(own + extra), risk, *settings, len(own) if extra else None))
    solutions = list(map_(solve_group, tasks))
    bound = sum(s.scenarios / count * s.solve.bound for s in solutions)
    return _Round(bound, [s.plan for s in solutions], all(s.solve.status == "optimal" for s in solutions))


def solve_by_groups(data: PlanData, shocks: ShockScenarios, risk: RiskSettings, *, group_size: int,
                    solver: str = "highs", mip_gap: float = 1e-3, time_limit: float | None = None,
                    mapper: Mapper | None = None, workers: int = 1, tail: int = TAIL_SCENARIOS,
                    seeds: Sequence[Plan] = (), progress: Callable[[str], None] = lambda _: None) -> GroupedSolution:
    """Bounds on the S-scenario plan from groups of ``group_size`` consecutive scenarios (the last
    may be smaller); ``workers`` sizes the evaluation's batches for ``mapper``. For the robust model
    later rounds add the dearest scenarios of the plans so far to every group (#eq-f-tail); plans
    known beforehand (``seeds``, e.g. the sample plan) are candidates too, and give the first
    round its tail."""
    count = shocks.count
    if count == 0:
        raise GridError("plan.scenarios: no shock scenarios; give at least one")
    if group_size < 1:
        raise GridError(f"plan.group_size: {group_size!r} is not a positive number of scenarios")
    starts = list(range(0, count, group_size))
    map_ = mapper or serial_map
    settings = (solver, mip_gap, time_limit)
    evaluated: dict[tuple, Evaluated] = {}

    def evaluate(plans: list[Plan]) -> list[Evaluated]:
        """Each plan not seen before, evaluated exactly on all scenarios."""
        new = {p.key(): p for p in plans if p.key() not in evaluated}
        progress(f"{len(new)} new plans to evaluate on {count:,} scenarios")
        for key, plan in new.items():
            costs = evaluate_stock(data, plan.stock(data), shocks, mapper=mapper, batch=batch_size(count, workers)).cost
            evaluated[key] = (plan.cost + worst_case_mean_cvar(costs, risk.lam, risk.alpha, risk.radius), plan, costs)
        return [evaluated[key] for key in new]

    tailed = risk.radius > 0 and tail > 0 and len(starts) > 1
    chosen: list[int] = []
    if seeds and tailed:
        known = evaluate(list(seeds))
        chosen = _more_tail(min(evaluated.values(), key=_objective), known, tail, chosen)
    progress(f"{len(starts)} groups of up to {group_size} scenarios"
             + (f", each with {len(chosen)} of the dearest scenarios of the plans given" if chosen else ""))
    rounds = [_solve_round(data, shocks, risk, starts, group_size, chosen, settings, map_)]
    progress(f"lower bound {rounds[0].bound:,.2f} $")
    proposed = evaluate(rounds[0].plans)
    while tailed and len(rounds) < ROUNDS:
        best = min(evaluated.values(), key=_objective)
        if relative_gap(best[0], max(r.bound for r in rounds)) <= TARGET_GAP:
            break
        new = _more_tail(best, proposed, tail, chosen)
        if not new:
            break
        chosen += new
        progress(f"round {len(rounds) + 1}: every group with {len(chosen)} of the dearest scenarios of the plans so far")
        rounds.append(_solve_round(data, shocks, risk, starts, group_size, chosen, settings, map_))
        progress(f"lower bound {rounds[-1].bound:,.2f} $")
        proposed = evaluate(rounds[-1].plans)
    best = min(evaluated.values(), key=_objective)
    return GroupedSolution(best[1], risk, best[0], max(r.bound for r in rounds), count, group_size, len(starts),
                           len(evaluated), all(r.all_optimal for r in rounds), len(rounds))


# A plan evaluated on all scenarios: (its exact objective, the plan, its Stage II cost per scenario).
Evaluated = tuple[float, Plan, np.ndarray]


def _objective(entry: Evaluated) -> float:
    return entry[0]


def _more_tail(best: Evaluated, proposed: list[Evaluated], tail: int, chosen: list[int]) -> list[int]:
    """Scenarios for the next round's tail not in it yet: the ``tail`` dearest of the best plan, then
    the dearest of each plan just proposed; the tail stays within TAIL_MAX."""
    more = _dearest(best[2], tail) + [s for entry in proposed for s in _dearest(entry[2], 1)]
    return [s for s in dict.fromkeys(more) if s not in chosen][:TAIL_MAX - len(chosen)]


def _dearest(costs: np.ndarray, count: int) -> list[int]:
    """The ``count`` scenarios of highest cost, dearest first (ties by index)."""
    return [int(s) for s in np.argsort(-costs, kind="stable")[:count]]
