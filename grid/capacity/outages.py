"""The N-1 outage set: every limit holds after any single branch outage, at its emergency rating.

After branch k (from bus i to bus j) goes out, the DC flow on line l becomes

    f_l' = f_l + LODF_lk f_k,      LODF_lk = phi_lk / (1 - phi_kk),   phi_l = H_l,j - H_l,i

(docs/models/capacity.md#eq-c-21): phi is the flow that a 1 MW transfer from i to j puts on each
line, with the reference-slack shift factors H. The LODF is a property of the topology alone, so
with any slack model the post-outage shift factors of l are h_l + LODF_lk h_k, and the phase
shifters' flows combine the same way. A pair (l, k) is then one more limit row of the capacity LP,
with line l's emergency rating as its limit. An outage with phi_kk = 1 splits the network in two
(islanding): no flow can replace it, and it is listed instead of studied.

Rows are not written for every pair: ``screen`` finds the pairs that bind or come within
SCREEN_MARGIN of their limit at given capacities, by the background's worst case (an upper bound of
every CVaR), and the study adds those and solves again until none is violated, so a large case's
millions of pairs never become rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial

import numpy as np
import scipy.sparse as sp

from grid.capacity.candidates import Candidates
from grid.capacity.criteria import COEFFICIENT_ZERO
from grid.capacity.limits import (
    LOWER,
    UPPER,
    LimitTable,
    _tails,
    budgeted_worst,
    line_limit_name,
    tail_size,
)
from grid.capacity.shift_factors import FlowModel
from grid.capacity.standalone import Standalone, standalone_capacity
from grid.errors import GridError
from grid.load.scenarios import Scenarios
from grid.risk_measures import cvar_from_tail

# A pair joins the LP when its worst-case post-outage flow comes within this share of its rating.
SCREEN_MARGIN = 0.01
# 1 - phi_kk below this: the outage islands part of the network.
ISLANDING = 1e-6
# The dense shift factors (lines x buses, 8 bytes each) that N-1 screening holds at once.
MAX_DENSE_BYTES = 1_500_000_000


@dataclass(frozen=True, eq=False)
class OutageSet:
    """Every single-branch outage of one network: the LODFs of those that keep it connected."""

    studied: np.ndarray          # line positions whose outage is studied
    islanding: tuple[str, ...]   # names of the lines whose outage islands the network
    lodf: np.ndarray             # (lines, studied): LODF[l, j] for the outage of studied[j]
    rows: np.ndarray             # (lines, buses): the slack model's shift factors h_l
    emergency_mw: np.ndarray     # (lines,) the rating after an outage


def single_outages(flows: FlowModel, emergency_factor: float, lines: tuple[int, ...] | None = None) -> OutageSet:
    """LODFs of every branch outage (or of those in ``lines``, a contingency list) that keeps the
    network connected (see the module doc)."""
    network = flows.network
    n_line, n_bus = len(network.lines), len(network.buses)
    if n_line * n_bus * 8 > MAX_DENSE_BYTES:
        raise GridError(f"network {network.name!r}: N-1 needs its shift factors ({n_line:,} lines x {n_bus:,} buses) "
                        f"in memory, above the ceiling of {MAX_DENSE_BYTES / 1e9:g} GB; study it with criterion = 'n-0'")
    positions = np.arange(n_line)
    reference = flows.reference_rows(positions)
    ends = np.array([(network.bus_index(line.from_bus), network.bus_index(line.to_bus)) for line in network.lines],
                    dtype=int).reshape(n_line, 2)
    phi = reference[:, ends[:, 1]] - reference[:, ends[:, 0]]          # (lines, outages)
    own = phi[positions, positions]
    listed = np.zeros(n_line, dtype=bool)
    listed[positions if lines is None else np.asarray(lines, dtype=int)] = True
    keeps = (np.abs(1.0 - own) >= ISLANDING) & listed
    studied = positions[keeps]
    lodf = phi[:, keeps] / (1.0 - own[keeps])
    return OutageSet(studied, tuple(network.lines[k].name for k in positions[listed & ~keeps]), lodf,
                     flows.with_slack(reference), emergency_ratings(flows, emergency_factor))


def emergency_ratings(flows: FlowModel, factor: float) -> np.ndarray:
    """Per line: its emergency rating (RATE_B, else RATE_C, in the case), else ``factor`` x its rating."""
    return np.array([line.emergency_limit_mw if line.emergency_limit_mw is not None else factor * line.thermal_limit_mw
                     for line in flows.network.lines], dtype=float)


def after_outage(outages: OutageSet, flows: FlowModel, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Every line's shift factors (lines x buses) and phase-shifter flows after the outage of
    ``outages.studied[j]`` (C-21): h_l + LODF_lk h_k, offset_l + LODF_lk offset_k."""
    k, lodf = outages.studied[j], outages.lodf[:, j]
    return outages.rows + np.outer(lodf, outages.rows[k]), flows.offset_mw + lodf * flows.offset_mw[k]


def screen(outages: OutageSet, flows: FlowModel, candidates: Candidates, scenarios: Scenarios,
           capacity: np.ndarray, draw: str, budget: float | None, known: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """The (line, outage) pairs not in ``known`` whose worst-case post-outage flow, with the
    candidates drawing ``capacity`` (in full, or each at its worst under the partial draw set),
    comes within SCREEN_MARGIN of the emergency rating, in either direction."""
    found = []
    limit = outages.emergency_mw
    finite = np.isfinite(limit)
    for j, k in enumerate(outages.studied):
        h, offset = after_outage(outages, flows, j)
        on = h[:, candidates.positions]
        if draw == "partial":
            up, down = np.maximum(on, 0.0) @ capacity, np.maximum(-on, 0.0) @ capacity
        else:
            up = on @ capacity
            down = -up
        high = budgeted_worst(h, scenarios.lower_mw, scenarios.upper_mw, budget) + offset + up
        low = -budgeted_worst(-h, scenarios.lower_mw, scenarios.upper_mw, budget) + offset - down
        near = (1.0 - SCREEN_MARGIN) * limit
        hit = finite & ((high > near) | (-low > near))
        hit[k] = False
        found += [(int(l), int(k)) for l in np.flatnonzero(hit) if (int(l), int(k)) not in known]
    return found


def with_pairs(table: LimitTable, outages: OutageSet, flows: FlowModel, scenarios: Scenarios,
               candidates: Candidates, pairs: list[tuple[int, int]], *, budget: float | None,
               touch_factor: float, with_scenarios: bool) -> LimitTable:
    """``table`` with an upper and a lower row for each (line, outage) pair appended: their
    coefficients h_l + LODF h_k on the candidates, worst case and scenario tails (as many as the
    table keeps per row)."""
    if not pairs:
        return table
    column = {int(k): j for j, k in enumerate(outages.studied)}
    lines = np.array([l for l, _ in pairs], dtype=int)
    out = np.array([k for _, k in pairs], dtype=int)
    factor = np.array([outages.lodf[l, column[k]] for l, k in pairs])
    h = outages.rows[lines] + factor[:, None] * outages.rows[out]
    offset = flows.offset_mw[lines] + factor * flows.offset_mw[out]
    worst = np.column_stack([budgeted_worst(h, scenarios.lower_mw, scenarios.upper_mw, budget) + offset,
                             budgeted_worst(-h, scenarios.lower_mw, scenarios.upper_mw, budget) - offset]).reshape(-1)
    keep = table.tail_mw.shape[1]
    top, top_i, low, low_i = _tails(h @ scenarios.samples_mw.T + offset[:, None], max(keep, 1), with_scenarios)
    tails = np.stack([top, -low], axis=1).reshape(2 * len(pairs), -1)
    tail_idx = np.stack([top_i, low_i], axis=1).reshape(2 * len(pairs), -1)
    on = np.where(np.abs(h[:, candidates.positions]) < COEFFICIENT_ZERO, 0.0, h[:, candidates.positions])
    coef = sp.csr_matrix(np.stack([on, -on], axis=1).reshape(2 * len(pairs), -1))
    touch = (coef >= touch_factor).tocsr()
    names = [flows.network.lines[k].name for k in out]
    return _appended(table, coef, touch, worst, tails, tail_idx, lines, out, factor, names, outages.emergency_mw[lines],
                     flows)


def _appended(table: LimitTable, coef: sp.csr_matrix, touch: sp.csr_matrix, worst: np.ndarray, tails: np.ndarray,
              tail_idx: np.ndarray, lines: np.ndarray, out: np.ndarray, factor: np.ndarray, names: list[str],
              limits: np.ndarray, flows: FlowModel) -> LimitTable:
    """The table with the new rows (each pair: upper, then lower) after its own."""
    count = len(table)
    outage = table.outage if table.outage is not None else np.full(count, -1)
    lodf = table.lodf if table.lodf is not None else np.zeros(count)
    outage_names = table.outage_names or ("",) * count
    return dataclasses.replace(
        table,
        kinds=table.kinds + (UPPER, LOWER) * len(lines),
        labels=table.labels + tuple(name for l in lines for name in (flows.network.lines[l].name,) * 2),
        limit_mw=np.concatenate([table.limit_mw, np.repeat(limits, 2)]),
        line=np.concatenate([table.line, np.repeat(lines, 2)]),
        bus=np.concatenate([table.bus, np.full(2 * len(lines), -1)]),
        touch=sp.vstack([table.touch, touch]).tocsr(),
        coef=sp.vstack([table.coef, coef]).tocsr(),
        affected=np.concatenate([table.affected, np.asarray(abs(coef).sum(axis=1)).ravel() > 0]),
        worst_mw=np.concatenate([table.worst_mw, worst]),
        tail_mw=np.vstack([table.tail_mw, tails[:, :table.tail_mw.shape[1]]]),
        tail_scenario=np.vstack([table.tail_scenario, tail_idx[:, :table.tail_mw.shape[1]]]),
        outage=np.concatenate([outage, np.repeat(out, 2)]),
        lodf=np.concatenate([lodf, np.repeat(factor, 2)]),
        outage_names=outage_names + tuple(name for name in names for _ in range(2)),
    )


def standalone_after_outages(outages: OutageSet, flows: FlowModel, candidates: Candidates, scenarios: Scenarios,
                             budget: float | None, levels: tuple[float, ...], touch_factor: float) -> list[Standalone]:
    """(C-20) after every studied outage, firm (worst case over the budgeted box) then each tier
    (CVaR of the scenarios), each the minimum over the outages."""
    models = [Standalone(np.full(len(candidates), np.inf), ("",) * len(candidates)) for _ in range(1 + len(levels))]
    base = scenarios.samples_mw @ outages.rows.T                              # (S, lines)
    limit = outages.emergency_mw
    for j, k in enumerate(outages.studied):
        lodf = outages.lodf[:, j]
        h, offset = after_outage(outages, flows, j)
        on = h[:, candidates.positions]
        coef = np.vstack([on, -on])
        worst = np.concatenate([budgeted_worst(h, scenarios.lower_mw, scenarios.upper_mw, budget) + offset,
                                budgeted_worst(-h, scenarios.lower_mw, scenarios.upper_mw, budget) - offset])
        after = base + np.outer(base[:, k], lodf) + offset                  # (S, lines)
        background = np.hstack([after, -after])
        rating = np.concatenate([limit, limit])
        rating[[k, k + limit.size]] = np.inf  # the line out of service carries nothing
        rooms = [rating - worst] + [rating - cvar_by_columns(background, eps) for eps in levels]
        models = [model.tighter(standalone_capacity(coef, np.where(np.isfinite(room), room, np.inf), touch_factor,
                                                    partial(_pair_name, flows.network, k)))
                  for model, room in zip(models, rooms)]
    return models


def _pair_name(network, outage: int, row: int) -> str:
    """The name of row ``row`` of the blocks standalone_after_outages stacks: every line's upper
    limit, then every line's lower limit, after the outage of line ``outage``."""
    count = len(network.lines)
    return line_limit_name(network.lines[row % count].name, UPPER if row < count else LOWER,
                           network.lines[outage].name)


def cvar_by_columns(values: np.ndarray, epsilon: float) -> np.ndarray:
    """Sample CVaR_eps (16) of each column, from its largest samples only (a partial sort)."""
    count = values.shape[0]
    keep = tail_size(epsilon, count)
    top = -np.sort(-np.partition(values, count - keep, axis=0)[count - keep:], axis=0)
    return cvar_from_tail(top.T, epsilon, count)
