"""Firm and flexible capacity per bus: the whole study behind the products.

- Firm capacity c: the robust model (1) with (2); every limit's background term at its worst
  case over the load box.
- Flexible capacity per risk level eps_1 < eps_2 < ...: the CVaR model (4), nested:
  c <= c^eps_1 <= c^eps_2 <= ..., each tier solved with the safer tier's capacities as floors, so
  every incremental product c^eps_k - c^eps_(k-1) is non-negative. Two formulations give the same
  capacities: ``exact`` bounds each limit's data-center term by limit - CVaR(background) (a
  partial sort; the LP is the size of the robust one), ``scenario`` is the paper's LP (17).

Rules stated once here:

- Capacities are capped at the request: c_i <= D_i ("the request itself" is then what binds).
- Blocked limits: a limit whose background alone leaves less room than the floors already use
  (room < a . floors; for firm capacity: room < 0) cannot hold whatever data centers do. It is
  reported with the candidates it blocks, those whose shift factor on it is at least the touch
  factor (5 % by default), and they get no capacity beyond their floor; the limit is then left
  out and the rest of the network is solved as usual.
- Risk modes: ``per_constraint`` bounds CVaR_eps of every limit separately (the paper's model);
  ``joint`` keeps each product's interruption probability (any limit that its bus touches is
  violated) at or below eps with 95 % confidence: its in-sample count of interrupted scenarios
  may not exceed the largest count whose Wilson upper bound is at most eps (zero when the sample
  is too small to show eps). It lowers the risk level of the limits that cause the excess and
  solves again. The margin matters: an in-sample frequency of exactly eps, tuned on the same
  scenarios, is above eps out of sample about half the time.
"""

from __future__ import annotations

import dataclasses
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Sequence

import numpy as np
import scipy.sparse as sp

from grid.capacity.inputs.binomial import allowed_count
from grid.capacity.inputs.candidates import Candidates
from grid.capacity.inputs.corrections import Corrections
from grid.capacity.inputs.criteria import (
    FirmBox,
    SecurityCriteria,
    relies_on_counterflow,
    scenario_box,
)
from grid.capacity.lp.programs import (
    LinearProgram,
    bound_program,
    explicit_program,
    scenario_program,
)
from grid.capacity.lp.staged_solve import StageResult, TheoryCheck, solve_stages
from grid.capacity.lp.tie_break import CapacityRows
from grid.capacity.matrices.shift_factors import FlowModel, flow_model
from grid.capacity.rows.limits import (
    DEFAULT_TOUCH_FACTOR,
    EXTRA,
    LOWER,
    SUPPLY,
    UPPER,
    WITHDRAWAL,
    BlockMap,
    LimitTable,
    ShiftRows,
    build_limits,
    limit_rows,
    row_background,
    shift_factor_flows,
    tail_size,
    with_tails,
)
from grid.capacity.rows.outages import (
    LineCap,
    OutageSet,
    ScenarioFlows,
    check_pair_rows,
    screen,
    single_outages,
    standalone_after_outages,
    with_pairs,
)
from grid.capacity.rows.standalone import Standalone, standalone_capacity
from grid.errors import GridError
from grid.load.scenarios import Scenarios
from grid.memory_advice import without_hugepage_advice
from grid.memory_guard import check_scenario_lp_memory, check_shift_factor_memory
from grid.network.network import Network
from grid.solvers.names import check_solver
from grid.threads import with_blas_threads_beside

FORMULATIONS = ("exact", "scenario")
RISK_MODES = ("per_constraint", "joint")

# A limit counts as binding when its slack is below this fraction of its size (at least 1e-6 MW).
_BINDING_TOL = 1e-6
# Joint mode: at most this many re-solves per tier before the offending limits turn robust.
_JOINT_ROUNDS = 40
# Each re-solve lowers an offending limit's risk level a little below the needed ratio, so the
# loop does not creep towards the target.
_JOINT_SHRINK = 0.9
# Below this a product is not worth selling (or checking): it is withheld and reported instead.
MIN_PRODUCT_MW = 1e-6
# Lines x scenarios from which the firm model is solved in a second thread.
_THREAD_WORK = 1_000_000

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BlockedLimit:
    """A limit that background load alone breaks (see the module doc), and who it blocks."""

    name: str
    limit_mw: float
    background_mw: float          # the statistic that breaks it: worst case or CVaR
    statistic: str                # "worst-case" or "CVaR_0.05"
    buses: tuple[int, ...]        # candidate buses it blocks
    line: str | None = None       # the line's name, for a line limit

    def describe(self, max_buses: int | None = None) -> str:
        """One line for reports; ``max_buses`` shortens a long list of blocked buses."""
        shown = self.buses if max_buses is None else self.buses[:max_buses]
        who = (", ".join(str(b) for b in shown) + (" ..." if len(shown) < len(self.buses) else "")) or "no candidate bus"
        return (f"{self.name} ({self.limit_mw:.6g} MW) is broken by the {self.statistic} background "
                f"({self.background_mw:.6g} MW) alone; blocks {who}")


@dataclass(frozen=True)
class CapacityResult:
    """One model's capacities.

    ``capacity_mw`` covers every bus of the network in bus order (0.0 off the candidates);
    ``limited_by`` names, per candidate bus, what holds its capacity back; ``binding`` names the
    limits that hold with equality.
    """

    model: str                          # "firm" or "flexible"
    risk: float                         # 0 for firm, eps for a flexible tier
    capacity_mw: dict[int, float]
    unserved_ratio: float
    binding: tuple[str, ...]
    limited_by: dict[int, str]
    blocked: tuple[BlockedLimit, ...]
    solver: str
    formulation: str
    theory: TheoryCheck | None = None
    row_risk: np.ndarray | None = field(default=None, repr=False)  # joint mode: eps per limit row
    # The program's own stage-2 optimum before the tie-break (candidates order): for the scenario
    # formulation, the capacities (17) itself found.
    stage2_mw: np.ndarray | None = field(default=None, repr=False)
    # Per limit row: left out as blocked (see the module doc); the risk check leaves them out too.
    blocked_rows: np.ndarray | None = field(default=None, repr=False)
    # The draw set the rows were written for: "partial" (a+ . c), or "full" (a . c) when the
    # criteria ask for it or when the two are the same LP (grid/capacity/inputs/criteria.py).
    draw: str = "full"

    def vector(self, candidates: Candidates) -> np.ndarray:
        return np.array([self.capacity_mw[b] for b in candidates.buses], dtype=float)


@dataclass(frozen=True, eq=False)
class CapacityStudy:
    """Firm capacity and one flexible tier per risk level (increasing), with what they rest on."""

    network: Network
    candidates: Candidates
    limits: LimitTable
    flows: FlowModel
    firm: CapacityResult
    tiers: tuple[CapacityResult, ...]
    risk_mode: str
    touch_factor: float
    joint_rounds: tuple[int, ...] = ()   # re-solves per tier in joint mode
    # Joint mode, per tier: the total flexible capacity (MW) that its first round, the
    # per-constraint model on the same floors, allowed; the difference is what joint risk costs.
    per_constraint_mw: tuple[float, ...] = ()
    # What firm capacity holds against (the criteria's background set on the scenarios' ranges).
    firm_box: FirmBox | None = None
    criteria: SecurityCriteria = SecurityCriteria()
    # The paper's model (draw = "full") on the same inputs, firm then each tier, when the partial
    # draw set changed some model: what the paper's numbers counted on counterflow for.
    full_draw: tuple[CapacityResult, ...] = ()
    outages: OutageSet | None = None     # under N-1: the outages studied and those that island

    # Stand-alone hosting capacity per candidate (C-20), firm then each tier (per-constraint rooms).
    standalone: tuple[Standalone, ...] = ()
    # Which lines ``limits`` holds: "all" (every finite line), or "screened" (only those that came
    # near their room, grid/capacity/screened.py: every line was checked, not every line is a row).
    line_rows: str = "all"

    def counterflow_mw(self) -> tuple[dict[int, float], ...]:
        """Per model (firm, then each tier) and candidate bus: the paper's capacity less this
        study's, what the full-draw model counted on other products' counterflow for (empty when
        the draw set changed nothing)."""
        if not self.full_draw:
            return ()
        return tuple({bus: paper.capacity_mw[bus] - mine.capacity_mw[bus] for bus in self.candidates.buses}
                     for paper, mine in zip(self.full_draw, (self.firm, *self.tiers)))

    def increments_mw(self, bus: int) -> list[float]:
        """The products of docs/models/auction.md#ca-4-1 at one candidate bus: [c, c^eps_1 - c,
        c^eps_2 - c^eps_1, ...] (MW), the firm product and each tier's incremental one. The
        nesting is a constraint of the tiers; the clip only removes solver noise."""
        sizes, safer = [], 0.0
        for model in (self.firm, *self.tiers):
            value = model.capacity_mw[bus]
            sizes.append(max(value - safer, 0.0))
            safer = max(safer, value)
        return sizes


@dataclass(frozen=True, eq=False)
class _Context:
    network: Network
    scenarios: Scenarios
    candidates: Candidates
    flows: FlowModel
    limits: LimitTable
    solver: str
    formulation: str
    theory: bool
    touch_factor: float = DEFAULT_TOUCH_FACTOR
    criteria: SecurityCriteria = SecurityCriteria()


# Below this the CVaR weights 1/(eps S) overflow and no sample can estimate the tail.
MIN_RISK = 1e-6


def check_risk_levels(levels: Sequence[float]) -> tuple[float, ...]:
    """The one rule for risk levels: real numbers in [1e-6, 1), each given once; sorted."""
    if not levels:
        raise GridError("risk_levels is empty; give at least one epsilon, e.g. [0.05]")
    for eps in levels:
        if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not MIN_RISK <= eps < 1.0:
            raise GridError(f"risk level (epsilon) {eps!r} must lie in [1e-6, 1) (e.g. 0.05 for 5%)")
    ordered = tuple(sorted(float(e) for e in levels))
    if len(set(ordered)) != len(ordered):
        raise GridError(f"risk_levels lists a level twice ({list(levels)}); give each level once")
    return ordered


# A risk level eps keeps eps x N of N scenarios in its tail; fewer than this cannot estimate a
# CVaR (one scenario would make the flexible capacity equal the firm one).
MIN_TAIL_SCENARIOS = 10


def check_tail(levels: Sequence[float], count: int, levels_name: str = "risk level") -> None:
    """Refuse a sample whose smallest risk level leaves fewer than MIN_TAIL_SCENARIOS scenarios
    in its tail (eps x N < 10); the message names the levels as ``levels_name`` and says how many
    scenarios, or what level, would do."""
    eps = min(levels)
    if eps > 0 and eps * count < MIN_TAIL_SCENARIOS * (1 - 1e-9):  # eps <= 0: check_risk_levels refuses it
        need = math.ceil(MIN_TAIL_SCENARIOS / eps * (1 - 1e-9))
        level = MIN_TAIL_SCENARIOS / count
        raise GridError(
            f"{count:,} {'scenarios leave' if count != 1 else 'scenario leaves'} {eps * count:g} in the tail of "
            f"{levels_name} {eps:g} (risk level x scenarios must be at least {MIN_TAIL_SCENARIOS}); use at least "
            f"{need:,} scenarios" + (f", or risk levels of at least {level:g}" if level < 1 else "")
        )


def row_loads(flows: FlowModel, limits: LimitTable, candidates: Candidates, capacity: np.ndarray,
              draw: str = "full") -> np.ndarray:
    """What the data-center capacities add to each limited quantity at worst: a_r . c when every
    product is drawn in full, a_r+ . c over the partial draw set (grid/capacity/inputs/criteria.py)."""
    if draw == "partial":
        return limits.coef_positive @ np.asarray(capacity, dtype=float)
    full = np.zeros(len(flows.network.buses))
    full[candidates.positions] = capacity
    loads = np.zeros(len(limits))
    kinds = np.array(limits.kinds)
    wd = kinds == WITHDRAWAL
    loads[wd] = full[limits.bus[wd]]
    lines = (kinds == UPPER) | (kinds == LOWER)
    if np.any(lines):
        line_flow = flows.flows(full)
        sign = np.where(kinds[lines] == UPPER, 1.0, -1.0)
        values = line_flow[limits.line[lines]]
        if limits.has_outages:  # after an outage: f_l + LODF f_k (C-21)
            after = limits.outage[lines] >= 0
            values[after] += limits.lodf[lines][after] * line_flow[limits.outage[lines][after]]
        loads[lines] = sign * values
    loads[kinds == SUPPLY] = float(np.sum(capacity))
    extra = kinds == EXTRA
    if np.any(extra):
        loads[extra] = limits.coef[extra] @ np.asarray(capacity, dtype=float)
    return loads


def _tolerance(limits: LimitTable) -> np.ndarray:
    return _BINDING_TOL * np.maximum(1.0, np.abs(limits.limit_mw))


def _solve_model(ctx: _Context, model: str, risk: float, rooms: np.ndarray, floors: np.ndarray,
                 statistic: str, row_risk: np.ndarray | None = None) -> CapacityResult:
    """One model (firm or one flexible tier) with the given rooms (limit - statistic) and floors."""
    limits, candidates = ctx.limits, ctx.candidates
    draw = _draw(ctx, rooms)
    screen = _screen(ctx, rooms, floors, statistic, draw)
    caps = candidates.demand_mw.copy()
    withdrawal_caps = _withdrawal_caps(ctx, rooms, screen.kept)
    caps[screen.pinned] = floors[screen.pinned]
    what = f"{model} capacity LP" if model == "firm" else f"{model} capacity LP (eps = {risk:g})"
    kept_rows = screen.kept & (np.array(limits.kinds) != WITHDRAWAL)
    capped = np.minimum(caps, np.where(screen.pinned, caps, withdrawal_caps))
    # Rows after an outage go over the lines' flows when drawn in full (bound_program); the
    # partial set's a+ and the corrections' extra rows carry no flow and are written out.
    if draw == "partial" or limits.has_extra:
        bounded = explicit_program(_load_rows(limits, draw), rooms, kept_rows, floors, capped,
                                   limits.first_rows((model, risk, draw)))
    else:
        bounded = bound_program(ctx.flows, candidates, limits, rooms, kept_rows, floors, capped)
    tie_program = None
    if ctx.formulation == "scenario" and model != "firm":
        program = _scenario_program(ctx, risk, row_risk, screen.kept, floors, caps, draw)
        tie_program = bounded
    else:
        program = bounded
    rows = _capacity_rows(ctx, rooms, kept_rows, bounded, draw)
    stages = solve_stages(program, candidates.demand_mw, what, ctx.solver, theory=ctx.theory,
                          tie_program=tie_program, capacity_rows=rows)
    return _capacity_result(ctx, model, risk, rooms, floors, screen, stages, row_risk, draw)


def _load_rows(limits: LimitTable, draw: str) -> sp.csr_matrix:
    """Every row's data-center coefficients on the candidates, as the draw set reads them: a+
    (partial) or a (full)."""
    return limits.coef_positive if draw == "partial" else limits.coef


def _draw(ctx: _Context, rooms: np.ndarray) -> str:
    """The draw set this model's rows are written for: the criteria's, except that the partial
    set is solved as the full one when the two are the same LP (grid/capacity/inputs/criteria.py), so
    that such networks keep the paper's numbers to the last digit."""
    if ctx.criteria.draw == "full":
        return "full"
    rows = np.flatnonzero(ctx.limits.affected)
    return "partial" if relies_on_counterflow(*ctx.limits.coef_signs, rooms, rows) else "full"


@dataclass(frozen=True, eq=False)
class _Screen:
    """The blocked-limit rule (see the module doc) applied to one model's rooms and floors."""

    broken: np.ndarray                # per row: the background alone leaves less room than the floors use
    kept: np.ndarray                  # per row: not broken, and some candidate weighs on it
    pinned: np.ndarray                # per candidate: touches a broken limit, so held at its floor
    blocked: list[BlockedLimit]       # the broken limits, in row order


def _screen(ctx: _Context, rooms: np.ndarray, floors: np.ndarray, statistic: str, draw: str) -> _Screen:
    """Which limits break under the background at these floors, and whom they block."""
    limits, candidates = ctx.limits, ctx.candidates
    at_floors = row_loads(ctx.flows, limits, candidates, floors, draw)
    broken = rooms < at_floors - 1e-9 * np.maximum(1.0, np.abs(limits.limit_mw))
    pinned = np.zeros(len(candidates), dtype=bool)
    blocked = []
    for r in np.flatnonzero(broken):
        cols = limits.touch.indices[limits.touch.indptr[r]:limits.touch.indptr[r + 1]]
        pinned[cols] = True
        blocked.append(BlockedLimit(
            name=limits.name(int(r)),
            limit_mw=float(limits.limit_mw[r]),
            background_mw=float(limits.limit_mw[r] - rooms[r]),
            statistic=statistic,
            buses=tuple(candidates.buses[int(k)] for k in sorted(cols)),
            line=limits.labels[r] if limits.kinds[r] in (UPPER, LOWER) else None,
        ))
    return _Screen(broken, ~broken & limits.affected, pinned, blocked)


def _withdrawal_caps(ctx: _Context, rooms: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Per candidate: the room of its bus's kept withdrawal limit (inf without one), a bound of c."""
    limits, candidates = ctx.limits, ctx.candidates
    column_of_bus = {int(p): k for k, p in enumerate(candidates.positions)}
    withdrawal_caps = np.full(len(candidates), np.inf)
    for r in np.flatnonzero(kept):
        if limits.kinds[r] == WITHDRAWAL:
            withdrawal_caps[column_of_bus[int(limits.bus[r])]] = rooms[r]
    return withdrawal_caps


def _scenario_program(ctx: _Context, risk: float, row_risk: np.ndarray | None, kept: np.ndarray,
                      floors: np.ndarray, caps: np.ndarray, draw: str) -> LinearProgram:
    """The paper's scenario LP (17) on the kept limits."""
    limits = ctx.limits
    eps = (np.full(len(limits), risk) if row_risk is None else row_risk) * limits.risk_share
    # Below 1/S the CVaR of S samples is their maximum, which (17) also gives at eps = 1/(2S)
    # without dividing by zero.
    eps = np.maximum(eps, 0.5 / limits.count)
    background = row_background(limits, ctx.scenarios.samples_mw, np.flatnonzero(kept),
                                shift_factor_flows(ctx.flows))
    load_rows = _load_rows(limits, draw) if draw == "partial" or limits.explicit else None
    return scenario_program(ctx.flows, ctx.candidates, limits, background, eps[kept], kept, floors, caps,
                            load_rows=load_rows)


def _capacity_result(ctx: _Context, model: str, risk: float, rooms: np.ndarray, floors: np.ndarray,
                     screen: _Screen, stages: StageResult, row_risk: np.ndarray | None, draw: str) -> CapacityResult:
    """The solved capacities (never below the floors), the limits that bind, and why each bus
    gets no more."""
    limits, candidates = ctx.limits, ctx.candidates
    values = np.maximum(stages.capacity_mw, floors)
    loads = row_loads(ctx.flows, limits, candidates, values, draw)
    binding_rows = np.flatnonzero(screen.kept & (loads >= rooms - _tolerance(limits)))
    capacity = {bus: 0.0 for bus in ctx.network.bus_numbers}
    for bus, value in zip(candidates.buses, values):
        capacity[bus] = float(value)
    return CapacityResult(
        model=model,
        risk=risk,
        capacity_mw=capacity,
        unserved_ratio=float(np.sum((candidates.demand_mw - values) / candidates.demand_mw)),
        binding=tuple(limits.name(int(r)) for r in binding_rows),
        limited_by=_limited_by(ctx, values, floors, screen.pinned, screen.blocked, binding_rows, model),
        blocked=tuple(screen.blocked),
        solver=ctx.solver,
        formulation="robust" if model == "firm" else ctx.formulation,
        theory=stages.theory,
        row_risk=row_risk,
        stage2_mw=stages.stage2_mw,
        blocked_rows=screen.broken,
        draw=draw,
    )


def _capacity_rows(ctx: _Context, rooms: np.ndarray, kept_rows: np.ndarray, bounded, draw: str) -> CapacityRows:
    """The kept limits in capacity space, for the tie-break on c alone (grid/capacity/lp/tie_break.py):
    a_r . c <= room_r, with a_r the signed shift factors of a line on the candidates (their
    positive parts over the partial draw set), or ones for the supply; withdrawal limits are
    already bounds of c."""
    limits, candidates = ctx.limits, ctx.candidates
    n = len(candidates)
    scale = np.maximum(1.0, np.abs(limits.limit_mw))

    def rows_at(c: np.ndarray, min_slack: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        slack = rooms - row_loads(ctx.flows, limits, candidates, c, draw)
        ids = np.flatnonzero(kept_rows & (slack <= min_slack * scale))
        if draw == "partial" or limits.explicit:
            return ids, _load_rows(limits, draw)[ids].toarray(), rooms[ids]
        a = np.zeros((ids.size, n))
        lines = [k for k, r in enumerate(ids) if limits.kinds[r] in (UPPER, LOWER)]
        if lines:
            h = ctx.flows.rows(limits.line[ids[lines]])[:, candidates.positions]
            signs = np.array([1.0 if limits.kinds[ids[k]] == UPPER else -1.0 for k in lines])
            a[lines] = signs[:, None] * h
        a[[k for k, r in enumerate(ids) if limits.kinds[r] == SUPPLY]] = 1.0
        return ids, a, rooms[ids]

    return CapacityRows(bounded.col_lower[:n].copy(), bounded.col_upper[:n].copy(), rows_at)


def _limited_by(ctx: _Context, values: np.ndarray, floors: np.ndarray, pinned: np.ndarray,
                blocked: list[BlockedLimit], binding_rows: np.ndarray, model: str) -> dict[int, str]:
    """What holds each candidate back: its request, a blocked limit, its floor, or the binding
    limit on which its withdrawal weighs most (largest positive coefficient)."""
    candidates, limits = ctx.candidates, ctx.limits
    coefficient: dict[int, np.ndarray] = {}
    line_rows = [r for r in binding_rows if limits.kinds[r] in (UPPER, LOWER)]
    after = [r for r in line_rows if limits.has_outages and limits.outage[r] >= 0]
    line_rows = [r for r in line_rows if not (limits.has_outages and limits.outage[r] >= 0)]
    if line_rows:
        h = ctx.flows.rows(limits.line[line_rows])[:, candidates.positions]
        for r, row in zip(line_rows, h):
            coefficient[int(r)] = row if limits.kinds[r] == UPPER else -row
    for r in after + [r for r in binding_rows if limits.kinds[r] == EXTRA]:
        coefficient[int(r)] = limits.coef[int(r)].toarray().ravel()
    column_of_bus = {int(p): k for k, p in enumerate(candidates.positions)}
    for r in binding_rows:
        if limits.kinds[r] == WITHDRAWAL:
            row = np.zeros(len(candidates))
            row[column_of_bus[int(limits.bus[r])]] = 1.0
            coefficient[int(r)] = row
        elif limits.kinds[r] == SUPPLY:
            coefficient[int(r)] = np.ones(len(candidates))
    blocking: dict[int, str] = {}
    for b in blocked:  # the first blocking limit names the bus: its own before the lines upstream
        for bus in b.buses:
            blocking.setdefault(bus, b.name)
    rows = np.array(list(coefficient), dtype=int)
    weight = np.vstack([coefficient[int(r)] for r in rows]) if rows.size else np.zeros((0, len(candidates)))
    reach = np.diff(limits.touch.indptr)[rows]   # how many candidates touch each binding limit
    result: dict[int, str] = {}
    for k, bus in enumerate(candidates.buses):
        demand = float(candidates.demand_mw[k])
        if values[k] >= demand - _BINDING_TOL * max(1.0, demand):
            result[bus] = "request"
        elif pinned[k]:
            result[bus] = f"blocked: {blocking.get(bus, 'a blocked limit')}"
        else:
            weighs = weight[:, k] > 1e-9
            touching = weighs & (weight[:, k] >= ctx.touch_factor)
            at_floor = floors[k] > 0 and values[k] <= floors[k] + _BINDING_TOL * max(1.0, floors[k])
            if touching.any() or (weighs.any() and not at_floor):
                pool = touching if touching.any() else weighs
                result[bus] = limits.name(_most_local(rows, reach, weight[:, k], pool))
            elif at_floor:
                result[bus] = "floor: the safer tier's capacity" if model != "firm" else "floor"
            else:
                result[bus] = "shared limits (no single binding limit)"
    return result


def _most_local(rows: np.ndarray, reach: np.ndarray, weight: np.ndarray, pool: np.ndarray) -> int:
    """Of the binding limits in ``pool``, the most local one (the fewest candidates touch it), so
    that a line behind the bus is named before a system-wide one such as the supply; then the one
    the bus weighs on most (to 9 decimals), then the first row. A binding limit is named even at
    the floor: it is why the tier adds nothing there."""
    found = np.flatnonzero(pool)
    found = found[reach[found] == reach[found].min()]
    best = min(found, key=lambda i: (-round(weight[i], 9), int(rows[i])))
    return int(rows[best])


def solve_one(
    network: Network,
    scenarios: Scenarios,
    candidates: Candidates,
    *,
    risk: float,
    floors: np.ndarray,
    solver: str = "highs",
    formulation: str = "exact",
    theory: bool = False,
    criteria: SecurityCriteria = SecurityCriteria(),
) -> CapacityResult:
    """One model alone: firm capacity (risk 0) or the flexible capacity at one risk level."""
    check_solver(solver)
    if formulation not in FORMULATIONS:
        raise GridError(f"unknown formulation {formulation!r}; choose one of {', '.join(FORMULATIONS)}")
    if criteria.outages != "n-0":
        raise GridError(f"solve_one studies the intact network; for outages = {criteria.outages!r} use capacity_study")
    flows = flow_model(network)
    box = criteria.firm_box(scenarios)
    limits = build_limits(network, flows, scenarios, candidates, risk, box=box)
    ctx = _Context(network, scenarios, candidates, flows, limits, solver, formulation, theory, criteria=criteria)
    if risk == 0:
        return _solve_model(ctx, "firm", 0.0, limits.limit_mw - limits.worst_mw, floors, box.statistic)
    return _solve_model(ctx, "flexible", risk, limits.limit_mw - limits.cvar(risk), floors, f"CVaR_{risk:g}")


# ------------------------------------------------------------------------------- the study
def check_study_options(solver: str, risk_levels: Sequence[float], formulation: str, risk_mode: str,
                        touch_factor: float) -> tuple[float, ...]:
    """The one check of a study's options, for every study of capacity; the levels, sorted."""
    check_solver(solver)
    levels = check_risk_levels(risk_levels)
    if formulation not in FORMULATIONS:
        raise GridError(f"unknown formulation {formulation!r}; choose one of {', '.join(FORMULATIONS)}")
    if risk_mode not in RISK_MODES:
        raise GridError(f"unknown risk_mode {risk_mode!r}; choose one of {', '.join(RISK_MODES)}")
    if not 0.0 < touch_factor <= 1.0:
        raise GridError(f"touch_factor must be in (0, 1], got {touch_factor!r}")
    return levels


# One LP thread of ours runs beside the scenario tails' dense products (_firm_and_tails).
@with_blas_threads_beside(1)
@without_hugepage_advice()
def capacity_study(
    network: Network,
    scenarios: Scenarios,
    candidates: Candidates,
    risk_levels: Sequence[float],
    *,
    solver: str = "highs",
    formulation: str = "exact",
    risk_mode: str = "per_constraint",
    touch_factor: float = DEFAULT_TOUCH_FACTOR,
    theory: bool = False,
    threads: int = 2,
    criteria: SecurityCriteria = SecurityCriteria(),
    progress: Progress = lambda _: None,
    compare_full_draw: bool = True,
    rows: tuple[LimitTable, ShiftRows] | None = None,
    corrections: Corrections | None = None,
    block_map: BlockMap | None = None,
) -> CapacityStudy:
    """Firm capacity and the nested flexible tiers (see the module doc), against ``criteria``
    (grid/capacity/inputs/criteria.py: the background set of firm capacity, the draw set, the outages).

    Without ``compare_full_draw`` the paper's model is not solved beside a partial draw set (no
    counterflow report: ``full_draw`` stays empty). ``rows`` are limit_rows of these scenarios,
    candidates and touch factor over the box (background "box") when the caller has built them
    already; when their table carries the tails of the largest risk level (``tail_mw``), they are
    not computed again. ``corrections`` (line deratings, extra rows) apply to firm capacity and
    every tier alike (grid/capacity/inputs/corrections.py); rows built without them cannot be reused.
    ``block_map`` runs the scenario tails' blocks of lines elsewhere (a Dask cluster,
    sim/execution/cluster.py); this process then keeps no rows of H for them.
    """
    levels = check_study_options(solver, risk_levels, formulation, risk_mode, touch_factor)
    if rows is None:
        check_shift_factor_memory(network, len(candidates))
    flows = flow_model(network)
    if rows is None:
        progress(f"shift factors and worst cases: {len(network.lines)} lines")
    box = criteria.firm_box(scenarios)
    if rows is not None and (criteria.background != "box" or rows[0].coef.shape[1] != len(candidates)
                             or rows[0].count != scenarios.count or not (corrections is None or corrections.empty)):
        raise GridError("rows were built for other scenarios, candidates, background or without corrections; "
                        "build them with limit_rows")
    security = _security(flows, scenarios, criteria, box, risk_mode, block_map, progress)
    base, shift = rows or limit_rows(network, flows, scenarios, candidates, touch_factor, box, corrections,
                                     keep_rows=block_map is None,
                                     every_row=None if security is None else security.outages.rows)
    if formulation == "scenario":
        check_scenario_lp_memory(network, int(np.sum(base.affected)), scenarios.count, solver)
    firm_ctx = _Context(network, scenarios, candidates, flows, base, solver, formulation, theory, touch_factor,
                        criteria)
    firm, limits = _firm_and_tails(firm_ctx, shift, max(levels), risk_mode, box.statistic, threads, progress,
                                   block_map, None if security is None else security.made_flows)
    del shift
    ctx = _Context(network, scenarios, candidates, flows, limits, solver, formulation, theory, touch_factor, criteria)
    ctx, firm, tiers, rounds, reference = _models(ctx, firm, levels, risk_mode, security, progress)
    full_draw = (_full_draw(ctx, levels, risk_mode, (firm, *tiers), security, box.statistic, progress)
                 if compare_full_draw else ())
    alone = _standalone(ctx, levels, security, box, progress)
    return CapacityStudy(network, candidates, ctx.limits, flows, firm, tuple(tiers), risk_mode, touch_factor,
                         tuple(rounds), tuple(reference), box, criteria, full_draw,
                         security.outages if security else None, alone)


def _standalone(ctx: _Context, levels: tuple[float, ...], security: _Security | None, box: FirmBox,
                progress: Progress) -> tuple[Standalone, ...]:
    """(C-20) per model, over the table's rows and, under N-1, after every outage."""
    limits = ctx.limits
    rooms = [limits.limit_mw - limits.worst_mw] + [limits.limit_mw - limits.cvar(eps) for eps in levels]
    alone = [standalone_capacity(limits.coef, room, ctx.touch_factor, limits.name) for room in rooms]
    if security is None:
        return tuple(alone)
    progress(f"N-1: stand-alone capacity after each of {security.outages.studied.size} outages")
    after = standalone_after_outages(security.outages, ctx.flows, ctx.candidates, box, levels,
                                     ctx.touch_factor, alone, security.background(ctx.flows, ctx.scenarios))
    return tuple(mine.tighter(theirs) for mine, theirs in zip(alone, after))


def _security(flows: FlowModel, scenarios: Scenarios, criteria: SecurityCriteria, box: FirmBox, risk_mode: str,
              block_map: BlockMap | None, progress: Progress) -> _Security | None:
    """The N-1 screening state, or None under N-0. Its outage set holds H whole, which the limit
    table then reads instead of solving for it again; in process, its intact scenario flows are
    made at once and give the lines' tails too (a cluster's workers make those themselves)."""
    if criteria.outages != "n-1":
        return None
    progress(f"N-1: shift factors and line outage distribution factors of {len(flows.network.lines)} lines")
    security = _Security(single_outages(flows, criteria.emergency_factor, criteria.outage_lines), box,
                         risk_mode == "joint")
    if block_map is None:
        progress(f"N-1: intact scenario flows, {len(flows.network.lines)} lines x {scenarios.count} scenarios")
        security.background(flows, scenarios)
    return security


@dataclass(eq=False)
class _Security:
    """The N-1 screening state of one study: the outages, and the pairs already in the table."""

    outages: OutageSet
    box: FirmBox
    with_scenarios: bool
    known: set[tuple[int, int]] = field(default_factory=set)
    # The intact network's scenario flows, made on first use and shared by every pass.
    _background: ScenarioFlows | None = None

    @property
    def made_flows(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """The intact scenario flows of a block of lines, when they are made already."""
        return None if self._background is None else self._background.lines

    def background(self, flows: FlowModel, scenarios: Scenarios) -> ScenarioFlows:
        if self._background is None:
            self._background = ScenarioFlows(self.outages, flows, scenarios)
        return self._background

    def add(self, ctx: _Context, capacities: Sequence[tuple[np.ndarray, str, LineCap | None]], box: FirmBox,
            progress: Progress) -> _Context | None:
        """ctx with the pairs that come near their limit at any of these (capacity, draw, the
        lines' CVaR bound of a tier or None), the background anywhere in ``box``, or None."""
        new: list[tuple[int, int]] = []
        for capacity, draw, line_cap in capacities:
            new += screen(self.outages, ctx.flows, ctx.candidates, capacity, draw, box,
                          self.known | set(new), line_cap)
        if not new:
            return None
        check_pair_rows(len(self.known) + len(new), len(ctx.candidates), ctx.criteria.emergency_factor)
        self.known |= set(new)
        progress(f"N-1: {len(new)} (line, outage) pair(s) near their emergency rating added ({len(self.known)} in all)")
        limits = with_pairs(ctx.limits, self.outages, ctx.flows, ctx.candidates, new,
                            box=self.box, touch_factor=ctx.touch_factor,
                            with_scenarios=self.with_scenarios, background=self.background(ctx.flows, ctx.scenarios))
        return dataclasses.replace(ctx, limits=limits)


def _models(ctx: _Context, firm: CapacityResult, levels: tuple[float, ...], risk_mode: str,
            security: _Security | None, progress: Progress):
    """The firm model and the tiers; under N-1, solved again with every (line, outage) pair that
    the screen finds near its limit until none is left (grid/capacity/rows/outages.py). Pairs added for
    a tier hold at the firm capacities already (the screen would have added them otherwise), so
    firm capacity does not change then."""
    zeros = np.zeros(len(ctx.candidates))
    while security is not None:
        grown = security.add(ctx, [(firm.vector(ctx.candidates), firm.draw, None)], security.box, progress)
        if grown is None:
            break
        ctx = grown
        firm = _solve_model(ctx, "firm", 0.0, ctx.limits.limit_mw - ctx.limits.worst_mw, zeros, security.box.statistic)
    while True:
        tiers, rounds, reference = _flexible_tiers(ctx, levels, risk_mode, firm.vector(ctx.candidates), progress)
        # The tiers' CVaR is at most the worst case over the scenarios' whole range, and at most
        # (C-22) on the lines' own CVaRs.
        grown = None if security is None else security.add(
            ctx, [(tier.vector(ctx.candidates), tier.draw,
                   None if risk_mode == "joint" else _line_cvar(ctx.limits, tier.risk, len(ctx.network.lines)))
                  for tier in tiers], scenario_box(ctx.scenarios), progress)
        if grown is None:
            # Rows added after firm capacity was solved hold at it (see above): not blocked.
            extra = len(ctx.limits) - firm.blocked_rows.size
            firm = dataclasses.replace(firm, blocked_rows=np.concatenate([firm.blocked_rows, np.zeros(extra, bool)]))
            return ctx, firm, tiers, rounds, reference
        ctx = grown


def _line_cvar(limits: LimitTable, eps: float, n_line: int) -> LineCap:
    """Per line of the network: the CVaR at eps of its background flow and of its reverse flow,
    from its rows of the intact network (infinity for a line without rows: no bound)."""
    statistic = limits.cvar(eps)
    kinds = np.array(limits.kinds)
    intact = np.ones(len(limits), dtype=bool) if limits.outage is None else limits.outage < 0
    caps = []
    for kind in (UPPER, LOWER):
        rows = np.flatnonzero(intact & (kinds == kind))
        cap = np.full(n_line, np.inf)
        cap[limits.line[rows]] = statistic[rows]
        caps.append(cap)
    return caps[0], caps[1]


def _full_draw(ctx: _Context, levels: tuple[float, ...], risk_mode: str, models: tuple[CapacityResult, ...],
               security: _Security | None, statistic: str, progress: Progress) -> tuple[CapacityResult, ...]:
    """The paper's model (every product drawn in full) on the same inputs, when the partial draw
    set changed some model; () when every model was the same LP under both."""
    if all(model.draw == "full" for model in models):
        return ()
    progress("the paper's model (every product drawn in full), for the counterflow report")
    full = dataclasses.replace(ctx, criteria=dataclasses.replace(ctx.criteria, draw="full"))
    firm = _solve_model(full, "firm", 0.0, full.limits.limit_mw - full.limits.worst_mw,
                        np.zeros(len(ctx.candidates)), statistic)
    if security is not None:  # its own screening, on a copy: the study's table stays the partial one's
        security = dataclasses.replace(security, known=set(security.known))
    _, firm, tiers, _, _ = _models(full, firm, levels, risk_mode, security, lambda _: None)
    return (firm, *tiers)


def _firm_and_tails(firm_ctx: _Context, shift: ShiftRows, max_risk: float, risk_mode: str,
                    statistic: str, threads: int, progress: Progress,
                    block_map: BlockMap | None = None,
                    line_flows: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[CapacityResult, LimitTable]:
    """Firm capacity, and the limits with their scenario tails (from ``line_flows`` when the
    caller has the lines' scenario flows already: with_tails).

    The firm model needs only the worst cases, so it is solved while the scenario flows and their
    tails are computed (a second core; HiGHS releases the interpreter while it solves).
    """
    base, network, scenarios = firm_ctx.limits, firm_ctx.network, firm_ctx.scenarios
    zeros = np.zeros(len(firm_ctx.candidates))
    solve_firm = partial(_solve_model, firm_ctx, "firm", 0.0, base.limit_mw - base.worst_mw, zeros, statistic)
    tails = partial(with_tails, base, shift, scenarios, max_risk, progress, with_scenarios=risk_mode == "joint",
                    block_map=block_map, line_flows=line_flows)
    if risk_mode != "joint" and base.tail_mw.shape[1] >= tail_size(max_risk, scenarios.count):
        # The caller's rows carry the tails already (capacity_study's ``rows``).
        progress(f"firm capacity: robust LP with {firm_ctx.solver}")
        return solve_firm(), base
    # A thread only pays off when the scenario pass is long; on small cases its start-up and the
    # hand-over cost more than they save.
    if threads > 1 and len(network.lines) * scenarios.count >= _THREAD_WORK:
        with ThreadPoolExecutor(max_workers=1) as pool:
            firm_job = pool.submit(solve_firm)
            progress(f"background statistics: {len(network.lines)} lines, {scenarios.count} scenarios")
            limits = tails()
            progress(f"firm capacity: robust LP with {firm_ctx.solver}")
            firm = firm_job.result()
    else:
        progress(f"firm capacity: robust LP with {firm_ctx.solver}")
        firm = solve_firm()
        progress(f"background statistics: {len(network.lines)} lines, {scenarios.count} scenarios")
        limits = tails()
    return firm, limits


def _flexible_tiers(ctx: _Context, levels: tuple[float, ...], risk_mode: str, floors: np.ndarray,
                    progress: Progress) -> tuple[list[CapacityResult], list[int], list[float]]:
    """The flexible tiers, safest first, each on the previous tier's capacities as floors; in
    joint mode also the re-solves per tier and the per-constraint model's total capacity."""
    tiers, rounds, reference = [], [], []
    limits = ctx.limits
    for eps in levels:
        if risk_mode == "joint":
            tier, used, per_constraint = _joint_tier(ctx, eps, floors, progress)
            rounds.append(used)
            reference.append(per_constraint)
        else:
            progress(f"flexible capacity, eps = {eps:g}: {ctx.formulation} formulation with {ctx.solver}")
            tier = _solve_model(ctx, "flexible", eps, limits.limit_mw - limits.cvar(eps), floors, f"CVaR_{eps:g}")
        tiers.append(tier)
        floors = tier.vector(ctx.candidates)
    return tiers, rounds, reference


# ------------------------------------------------------------------------------- joint mode
def interrupted_counts(touch: sp.csr_matrix, violated: sp.csr_matrix) -> np.ndarray:
    """Per candidate: in how many scenarios at least one limit it touches is violated.

    ``touch`` is (rows, candidates), ``violated`` is (rows, scenarios), both boolean.
    """
    hits = (touch.T.astype(np.int32) @ violated.astype(np.int32)).tocsr()
    hits.data = (hits.data > 0).astype(np.int32)
    hits.eliminate_zeros()
    return np.diff(hits.indptr)


def in_sample_violations(limits: LimitTable, loads: np.ndarray, rows: np.ndarray) -> sp.csr_matrix:
    """(rows, scenarios) True where a_r . c + b_{r,s} exceeds the limit, from the kept tails.

    A row whose CVaR bound holds is violated in at most eps S < K scenarios, all inside its tail.
    """
    slack = limits.limit_mw - loads + _tolerance(limits)
    mask = np.zeros(limits.tail_mw.shape, dtype=bool)
    mask[rows] = limits.tail_mw[rows] > slack[rows, None]
    r, k = np.nonzero(mask)
    return sp.csr_matrix((np.ones(r.size, dtype=bool), (r, limits.tail_scenario[r, k])),
                         shape=(len(limits), limits.count))


def _joint_tier(ctx: _Context, eps: float, floors: np.ndarray, progress: Progress
                ) -> tuple[CapacityResult, int, float]:
    """One flexible tier whose products each stay interrupted in at most eps of the scenarios.

    Returns the tier, the rounds it took, and the total capacity of its first round (every limit
    at eps: the per-constraint model on the same floors).
    """
    limits, candidates = ctx.limits, ctx.candidates
    row_risk = np.full(len(limits), eps)
    statistic = f"CVaR (joint, eps = {eps:g})"
    allowed = allowed_count(eps, limits.count)
    target = allowed / limits.count
    for round_ in range(1, _JOINT_ROUNDS + 1):
        rooms = limits.limit_mw - limits.cvar(row_risk)
        result = _solve_model(ctx, "flexible", eps, rooms, floors, statistic, row_risk=row_risk.copy())
        values = result.vector(candidates)
        if round_ == 1:
            per_constraint = float(values.sum())
        loads = row_loads(ctx.flows, limits, candidates, values, result.draw)
        live = np.flatnonzero(~result.blocked_rows & limits.affected)
        violated = in_sample_violations(limits, loads, live)
        counts = interrupted_counts(limits.touch, violated)
        frequency = counts / limits.count
        selling = values - floors >= MIN_PRODUCT_MW
        excess = np.flatnonzero(selling & (counts > allowed))
        progress(f"joint risk, eps = {eps:g}, round {round_}: {excess.size} product(s) above "
                 f"{allowed} of {limits.count} interrupted scenarios "
                 f"(worst {frequency[selling].max(initial=0.0):.4f})")
        if excess.size == 0:
            return result, round_, per_constraint
        offending_rows = np.flatnonzero(np.diff(violated.indptr) > 0)
        touch = limits.touch.tocsc()
        for k in excess:
            rows = touch.indices[touch.indptr[k]:touch.indptr[k + 1]]
            rows = np.intersect1d(rows, offending_rows)
            factor = _JOINT_SHRINK * target / frequency[k]
            row_risk[rows] = np.minimum(row_risk[rows], row_risk[rows] * factor)
        if round_ == _JOINT_ROUNDS - 1:
            # Last resort: the limits still at fault become robust (CVaR at eps S < 1 is the max).
            row_risk[offending_rows] = 0.0
    raise GridError(f"joint risk mode did not settle for eps = {eps:g} after {_JOINT_ROUNDS} rounds; "
                    "use risk_mode = 'per_constraint'")
