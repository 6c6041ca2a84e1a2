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
When a round proposes many plans, each is first screened on a spread subset of the scenarios and
only the most promising are evaluated on all S (docs/models/plan.md#eq-f-screen): the upper bound
is still one plan's exact objective, so the gap stays certified; screening can only miss a plan
that would have lowered it.

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
    candidates: int  # distinct plans the groups chose (and the seeds)
    all_optimal: bool  # every group's MILP ended within its gap (else its bound is still valid, only looser)
    rounds: int = 1  # more: the robust model's later rounds, with the tail scenarios (#eq-f-tail)
    screened_out: int = 0  # candidates evaluated on the screening scenarios only (#eq-f-screen)

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

# When a round proposes more than FULL_EVALUATIONS new plans and S exceeds SCREEN_SCENARIOS, each
# new plan is evaluated first on SCREEN_SCENARIOS scenarios spread evenly over the S (every group
# has its share, so no group's plans are favoured), and only the FULL_EVALUATIONS best by that
# estimate on all S (docs/models/plan.md#eq-f-screen).
SCREEN_SCENARIOS = 100
FULL_EVALUATIONS = 3


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
                    seeds: Sequence[Plan] = (), screen: int = SCREEN_SCENARIOS, full: int = FULL_EVALUATIONS,
                    progress: Callable[[str], None] = lambda _: None) -> GroupedSolution:
    """Bounds on the S-scenario plan from groups of ``group_size`` consecutive scenarios (the last
    may be smaller); ``workers`` sizes the evaluation's batches for ``mapper``. For the robust model
    later rounds add the dearest scenarios of the plans so far to every group (#eq-f-tail); plans
    known beforehand (``seeds``: the study's plans found already) are candidates too, evaluated on
    all S first, and give the robust model's first round its tail: the dearest scenario of each.
    ``screen`` and ``full``: see SCREEN_SCENARIOS (#eq-f-screen)."""
    count = shocks.count
    if count == 0:
        raise GridError("plan.scenarios: no shock scenarios; give at least one")
    if group_size < 1:
        raise GridError(f"plan.group_size: {group_size!r} is not a positive number of scenarios")
    if screen < 1 or full < 1:
        raise ValueError(f"screen ({screen}) and full ({full}) must each be at least 1")
    starts = list(range(0, count, group_size))
    map_ = mapper or serial_map
    settings = (solver, mip_gap, time_limit)
    judge = _Judge(data, shocks, risk, mapper, workers, screen, full, progress)

    tailed = risk.radius > 0 and tail > 0 and len(starts) > 1
    known = judge.evaluate(list(seeds), every=True)
    chosen: list[int] = []
    if tailed:
        # The worst case over the ball puts its mass on the dearest scenario, so for plans near a
        # known one that scenario's row binds; later rounds add more where the gap asks for it.
        chosen = list(dict.fromkeys(s for entry in known for s in entry.dearest(1)))
    progress(f"{len(starts)} groups of up to {group_size} scenarios"
             + (f", each with {len(chosen)} of the dearest scenarios of the plans given" if chosen else ""))
    rounds = [_solve_round(data, shocks, risk, starts, group_size, chosen, settings, map_)]
    progress(f"lower bound {rounds[0].bound:,.2f} $")
    proposed = judge.evaluate(rounds[0].plans)
    while tailed and len(rounds) < ROUNDS:
        best = judge.best()
        if relative_gap(best.objective, max(r.bound for r in rounds)) <= TARGET_GAP:
            break
        new = _more_tail(best, proposed, tail, chosen)
        if not new:
            break
        chosen += new
        progress(f"round {len(rounds) + 1}: every group with {len(chosen)} of the dearest scenarios "
                 "of the plans so far")
        rounds.append(_solve_round(data, shocks, risk, starts, group_size, chosen, settings, map_))
        progress(f"lower bound {rounds[-1].bound:,.2f} $")
        proposed = judge.evaluate(rounds[-1].plans)
    best = judge.best()
    return GroupedSolution(best.plan, risk, best.objective, max(r.bound for r in rounds), count, group_size,
                           len(starts), len(judge.seen), all(r.all_optimal for r in rounds), len(rounds),
                           sum(not e.full for e in judge.seen.values()))


@dataclass(frozen=True)
class Evaluated:
    """A candidate plan's Stage II cost on ``scenarios`` (None: all S) and its objective there:
    exact when ``full``, else the screening estimate."""

    objective: float  # $, plan cost + the risk term on those scenarios
    plan: Plan
    costs: np.ndarray  # $, Stage II cost per scenario evaluated
    scenarios: np.ndarray | None = None

    @property
    def full(self) -> bool:
        return self.scenarios is None

    def dearest(self, count: int) -> list[int]:
        """The ``count`` scenarios (of all S) of highest cost among those evaluated, dearest first
        (ties by index)."""
        order = [int(s) for s in np.argsort(-self.costs, kind="stable")[:count]]
        return order if self.scenarios is None else [int(self.scenarios[s]) for s in order]


class _Judge:
    """Evaluates candidate plans once each, screening them when there are many (#eq-f-screen)."""

    def __init__(self, data: PlanData, shocks: ShockScenarios, risk: RiskSettings, mapper: Mapper | None,
                 workers: int, screen: int, full: int, progress: Callable[[str], None]) -> None:
        self.data, self.shocks, self.risk, self.mapper, self.workers = data, shocks, risk, mapper, workers
        self.screen, self.full, self.progress = screen, full, progress
        self.seen: dict[tuple, Evaluated] = {}

    def best(self) -> Evaluated:
        return min((e for e in self.seen.values() if e.full), key=lambda e: e.objective)

    def evaluate(self, plans: list[Plan], every: bool = False) -> list[Evaluated]:
        """Each plan not seen before; on all S scenarios, or, when more than ``full`` are new and
        not ``every``, only the ``full`` best of them after screening."""
        new = {p.key(): p for p in plans if p.key() not in self.seen}
        count = self.shocks.count
        keep = list(new)
        if not every and len(new) > self.full and count > self.screen:
            rows = (np.arange(self.screen) * count) // self.screen
            subset = self.shocks.subset(rows)
            self.progress(f"{len(new)} new plans: screened on {self.screen} of the {count:,} scenarios, "
                          f"the best {self.full} evaluated on all")
            for key, plan in new.items():
                self.seen[key] = self._evaluate(plan, subset, rows)
            keep = sorted(new, key=lambda k: self.seen[k].objective)[:self.full]
        elif new:
            self.progress(f"{len(new)} new plans to evaluate on {count:,} scenarios")
        for key in keep:
            self.seen[key] = self._evaluate(new[key], self.shocks, None)
        return [self.seen[key] for key in new]

    def _evaluate(self, plan: Plan, shocks: ShockScenarios, rows: np.ndarray | None) -> Evaluated:
        costs = evaluate_stock(self.data, plan.stock(self.data), shocks, mapper=self.mapper,
                               batch=batch_size(shocks.count, self.workers)).cost
        risk = self.risk
        return Evaluated(plan.cost + worst_case_mean_cvar(costs, risk.lam, risk.alpha, risk.radius), plan, costs, rows)


def _more_tail(best: Evaluated, proposed: list[Evaluated], tail: int, chosen: list[int]) -> list[int]:
    """Scenarios for the next round's tail not in it yet: the ``tail`` dearest of the best plan, then
    the dearest of each plan just proposed (of the scenarios it was evaluated on); the tail stays
    within TAIL_MAX."""
    more = best.dearest(tail) + [s for entry in proposed for s in entry.dearest(1)]
    return [s for s in dict.fromkeys(more) if s not in chosen][:TAIL_MAX - len(chosen)]
