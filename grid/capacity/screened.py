"""The capacity study on a network too large for its line rows: every line screened, only the
lines that can bind written as rows (docs/models/capacity.md#screened-lines).

The study of grid/capacity/study.py writes two coefficient rows per line over the candidates; on
case_ACTIVSg70k (88,207 lines, 32,460 load buses) that alone is 46 GB, and the rows of H it
makes them from 49 GB. Here no row of H outlives its block:

1. the background statistics of every line, without H: the worst case over the background set
   from one angle solve (the centre) and the box's spread |h| . half from a column pass; the
   scenario tails from angle solves a chunk of scenarios at a time (grid/capacity/rows/line_passes.py);
2. a column pass gives each candidate's stand-alone capacity (C-20) in every model, and the line
   that sets it: those lines, and the lines the background alone breaks where a candidate touches
   them, are the first working set;
3. firm capacity and the tiers are solved on the working set's rows (the study's own models,
   grid/capacity/study.py), then a column pass loads every line with each model's capacities (a+ . c
   and a- . c, the partial draw set's worst case; h . c by one angle solve under the full draw
   set). The lines loaded within SCREEN_MARGIN of their room join the working set, the worst
   first, and the models are solved again, until no line outside the set comes near.

A model's optimum over fewer rows that every row holds is its optimum over all rows, stage by
stage (the argument of explicit_program's lazy rows, one level up), so the capacities are those
of the full study; the tests compare the two on meshed cases.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from grid.capacity.inputs.candidates import Candidates
from grid.capacity.inputs.criteria import SecurityCriteria
from grid.capacity.matrices.csr_rows import interleaved
from grid.capacity.matrices.shift_factors import FlowModel, flow_model
from grid.capacity.rows.limits import (
    DEFAULT_TOUCH_FACTOR,
    LOWER,
    UPPER,
    BlockMap,
    finite_lines,
    limit_rows,
    line_limit_name,
    tail_size,
    with_line_tails,
)
from grid.capacity.rows.line_passes import ColumnFindings, column_pass, scenario_tails
from grid.capacity.rows.standalone import Standalone, standalone_capacity
from grid.capacity.study import (
    CapacityResult,
    CapacityStudy,
    Progress,
    _Context,
    _flexible_tiers,
    _solve_model,
    check_study_options,
)
from grid.errors import GridError
from grid.load.scenarios import Scenarios
from grid.memory_advice import without_hugepage_advice
from grid.memory_guard import shift_factor_rows_fit
from grid.network.network import Network
from grid.risk_measures import cvar_from_tail

# Which capacity study writes which lines as rows, by name ([products] lines).
LINE_ROWS = {
    "auto": "every line when the dense rows fit in memory (docs/models/capacity.md#memory), else screened",
    "all": "every finite line's two rows (the study of grid/capacity/study.py)",
    "screened": "every line checked, only the lines near their room as rows (this module)",
}


# Why the checks after the study do not run on a screened study: both pick their states and rows
# from the table, which holds the screened lines only.
SCREENED_SKIP = ("the screened-lines study keeps only the lines near their room as rows; the checks after it "
                 "need every line's (not yet available: docs/models/capacity.md#screened-lines)")


def uses_screened(choice: str, network: Network, n_candidates: int) -> bool:
    """Whether ``choice`` (a LINE_ROWS name) means the screened study on this network."""
    if choice not in LINE_ROWS:
        raise GridError(f"unknown lines {choice!r}; choose one of {', '.join(LINE_ROWS)}")
    return choice == "screened" or (choice == "auto" and not shift_factor_rows_fit(network, n_candidates))


# A line joins the working set when a model loads it within this share of its limit of its room.
# Wider than N-1's screen (outages.SCREEN_MARGIN, 1 %): each round here costs a pass over every
# column of H and two LPs built anew. On ACTIVSg70k the rounds after the first added 106, 16, 5, ...
# lines at 1 %; 177, 59, 18, 3 at 10 % (five rounds); 902, 101, 20, ... at 25 %: no fewer rounds,
# as each round's allocation moves load onto other lines, and more lines held as rows.
SCREEN_MARGIN = 0.1
# Rounds of the working set before the study gives up (each costs a column pass).
MAX_ROUNDS = 20
# Coefficients (2 rows per line x candidates) one round may add to the working set.
ROUND_ENTRIES = 150_000_000


class _Lines:
    """Every finite line's background statistics, interleaved as the table's rows are (2 l: upper
    limit, 2 l + 1: lower limit, l a position in ``lines``)."""

    def __init__(self, network: Network, flows: FlowModel, scenarios: Scenarios, criteria: SecurityCriteria,
                 levels: tuple[float, ...], block_map: BlockMap | None, progress: Progress) -> None:
        self.lines = finite_lines(network)
        self.names = [network.lines[int(l)].name for l in self.lines]
        limit = np.array([network.lines[int(l)].thermal_limit_mw for l in self.lines], dtype=float)
        self.limit = np.repeat(limit, 2)
        box = criteria.firm_box(scenarios)
        self.box = box
        centre, half = (box.lower + box.upper) / 2.0, (box.upper - box.lower) / 2.0
        along = flows.flows(centre)[self.lines] + flows.offset_mw[self.lines]
        spread = np.zeros(self.lines.size)
        varying = np.flatnonzero(half > 0)
        if varying.size:
            progress(f"worst cases over the box: the columns of {varying.size:,} varying buses")
            spread = column_pass(network, self.lines, varying, np.zeros((2 * self.lines.size, 0)),
                                 np.zeros((varying.size, 0)), half[varying], DEFAULT_TOUCH_FACTOR,
                                 block_map, progress).spread
        worst = interleaved(along + spread, -along + spread)
        keep = tail_size(max(levels), scenarios.count)
        self.top, self.low = scenario_tails(network, self.lines, scenarios.samples_mw, keep, block_map, progress)
        cvars = [interleaved(cvar_from_tail(self.top, eps, scenarios.count),
                             cvar_from_tail(-self.low, eps, scenarios.count)) for eps in levels]
        # Per model (firm, then each tier): each row's room, limit less the background statistic.
        self.rooms = np.column_stack([self.limit - worst] + [self.limit - c for c in cvars])

    def name(self, row: int) -> str:
        return line_limit_name(self.names[row // 2], (UPPER, LOWER)[row % 2])


def _check_supported(criteria: SecurityCriteria, risk_mode: str, formulation: str) -> None:
    """The screened study covers the per-constraint exact models of the intact network over a box."""
    for wrong, what in ((criteria.outages != "n-0", f"[security] criterion = {criteria.outages!r}"),
                        (criteria.budget is not None, "a budgeted box ([security] budget)"),
                        (risk_mode != "per_constraint", f"risk_mode = {risk_mode!r}"),
                        (formulation != "exact", f"formulation = {formulation!r}")):
        if wrong:
            raise GridError(f"the screened-lines study (networks too large for their line rows) does not take "
                            f"{what} yet; use the default (n-0, box or peak, per_constraint, exact)")


@without_hugepage_advice()
def screened_capacity_study(
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
    criteria: SecurityCriteria = SecurityCriteria(),
    progress: Progress = lambda _: None,
    block_map: BlockMap | None = None,
) -> CapacityStudy:
    """Firm capacity and the flexible tiers as capacity_study computes them, with only the lines
    that come near their room as rows (module doc). ``block_map`` runs the passes' blocks on a
    cluster; the answer is the same to the last bit (blocks are reduced in order)."""
    levels = check_study_options(solver, risk_levels, formulation, risk_mode, touch_factor)
    _check_supported(criteria, risk_mode, formulation)
    flows = flow_model(network)
    progress(f"screened lines: background statistics of {len(network.lines):,} lines, {scenarios.count:,} scenarios")
    every = _Lines(network, flows, scenarios, criteria, levels, block_map, progress)
    m = len(candidates)
    progress(f"screened lines: stand-alone capacity of {m:,} candidates")
    alone = column_pass(network, every.lines, candidates.positions, every.rooms, np.zeros((m, 0)), np.zeros(m),
                        touch_factor, block_map, progress)
    working = _first_lines(every, alone, m, touch_factor)
    for round_ in range(1, MAX_ROUNDS + 1):
        progress(f"screened lines, round {round_}: {working.size:,} of {every.lines.size:,} lines as rows")
        ctx = _working_context(network, scenarios, candidates, flows, every, working, solver, theory,
                               touch_factor, criteria, max(levels))
        models = _solve_models(ctx, every, levels, progress)
        near = _near_lines(every, models, network, candidates, criteria, working, block_map, progress)
        if near.size == 0:
            return _study(ctx, every, alone, models, levels, risk_mode)
        # The next round's table is built without this one beside it: at ACTIVSg70k's size each
        # holds gigabytes of rows.
        del ctx, models
        progress(f"screened lines, round {round_}: {near.size:,} line(s) near their room join the rows")
        working = np.union1d(working, near)
    raise GridError(f"the screened-lines study did not settle in {MAX_ROUNDS} rounds; "
                    "report this case (the full study, on a larger machine, needs no rounds)")


def _first_lines(every: _Lines, alone: ColumnFindings, candidates: int, touch_factor: float) -> np.ndarray:
    """Positions (in every.lines) of the first working set: the lines the background alone breaks
    in some model where a candidate touches them (the blocked-limit rule must see each of them),
    and the lines that set some candidate's stand-alone capacity in some model, those that set
    the most first, as many as a round's coefficients allow."""
    broken = np.flatnonzero(np.any(every.rooms < 0.0, axis=1) & (alone.reach >= touch_factor)) // 2
    rows = alone.first[alone.first < 2 * every.lines.size] // 2
    lines, counts = np.unique(rows, return_counts=True)
    room = max(0, _round_lines(candidates) - np.unique(broken).size)
    if lines.size > room:
        lines = lines[np.argsort(-counts, kind="stable")[:room]]
    return np.union1d(lines, broken)


def _round_lines(candidates: int) -> int:
    """How many lines' rows one round may add: ROUND_ENTRIES coefficients."""
    return max(1, ROUND_ENTRIES // (2 * max(candidates, 1)))


def _working_context(network: Network, scenarios: Scenarios, candidates: Candidates, flows: FlowModel,
                     every: _Lines, working: np.ndarray, solver: str, theory: bool, touch_factor: float,
                     criteria: SecurityCriteria, max_risk: float) -> _Context:
    """The study's context with a table of the working set's lines (and every other limit)."""
    table, _ = limit_rows(network, flows, scenarios, candidates, touch_factor, every.box, None,
                          keep_rows=False, lines=every.lines[working])
    table = with_line_tails(table, every.top[working], every.low[working], scenarios, max_risk)
    return _Context(network, scenarios, candidates, flows, table, solver, "exact", theory, touch_factor, criteria)


def _solve_models(ctx: _Context, every: _Lines, levels: tuple[float, ...],
                  progress: Progress) -> list[CapacityResult]:
    limits = ctx.limits
    progress(f"firm capacity: robust LP with {ctx.solver}")
    firm = _solve_model(ctx, "firm", 0.0, limits.limit_mw - limits.worst_mw, np.zeros(len(ctx.candidates)),
                        every.box.statistic)
    tiers, _, _ = _flexible_tiers(ctx, levels, "per_constraint", firm.vector(ctx.candidates), progress)
    return [firm, *tiers]


def _near_lines(every: _Lines, models: list[CapacityResult], network: Network, candidates: Candidates,
                criteria: SecurityCriteria, working: np.ndarray, block_map: BlockMap | None,
                progress: Progress) -> np.ndarray:
    """Positions of the lines outside ``working`` that some model's capacities load within
    SCREEN_MARGIN of their room (as the draw set reads them), worst first, at most a round's worth."""
    capacities = np.column_stack([model.vector(candidates) for model in models])
    if criteria.draw == "full":
        flows = flow_model(network)
        injected = np.zeros((len(network.buses), capacities.shape[1]))
        injected[candidates.positions] = capacities
        along = flows.flows(injected)[every.lines]
        loads = interleaved(along, -along)
    else:
        progress("screened lines: every line loaded with the models' capacities")
        found = column_pass(network, every.lines, candidates.positions, np.zeros((2 * every.lines.size, 0)),
                            capacities, np.zeros(len(candidates)), DEFAULT_TOUCH_FACTOR, block_map, progress)
        loads = interleaved(found.upper, found.lower)
    scale = np.maximum(1.0, np.abs(every.limit))[:, None]
    over = (loads - every.rooms) / scale
    hot = np.any((over > -SCREEN_MARGIN) & (loads > 0.0), axis=1)
    share = np.max(np.where(hot[:, None], over, -np.inf), axis=1)
    lines = np.flatnonzero(hot.reshape(-1, 2).any(axis=1))
    lines = lines[~np.isin(lines, working)]
    most = _round_lines(len(candidates))
    if lines.size > most:
        worst = share.reshape(-1, 2).max(axis=1)[lines]
        lines = np.sort(lines[np.argsort(-worst, kind="stable")[:most]])
    return lines


def _study(ctx: _Context, every: _Lines, alone: ColumnFindings, models: list[CapacityResult],
           levels: tuple[float, ...], risk_mode: str) -> CapacityStudy:
    """The study as capacity_study returns it, its table holding the working set's lines."""
    limits = ctx.limits
    others = np.array([kind not in (UPPER, LOWER) for kind in limits.kinds])
    room_rows = [limits.limit_mw - limits.worst_mw] + [limits.limit_mw - limits.cvar(eps) for eps in levels]
    standalone = []
    for k, rooms in enumerate(room_rows):
        first = alone.first[k]
        binding = tuple(every.name(int(r)) if r < 2 * every.lines.size else "" for r in first)
        mine = Standalone(alone.least[k].copy(), binding)
        if np.any(others):
            rest = np.flatnonzero(others)
            theirs = standalone_capacity(limits.coef[rest], rooms[rest], ctx.touch_factor,
                                         lambda r: limits.name(int(rest[r])))
            mine = mine.tighter(theirs)
        standalone.append(mine)
    firm, *tiers = models
    return CapacityStudy(ctx.network, ctx.candidates, limits, ctx.flows, firm, tuple(tiers), risk_mode,
                         ctx.touch_factor, firm_box=every.box, criteria=ctx.criteria, standalone=tuple(standalone),
                         line_rows="screened")
