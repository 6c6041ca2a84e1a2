"""Which background states the AC check runs for a capacity allocation (docs/models/ac-check.md#states).

A linear study promises its capacities for a set of backgrounds; an AC power flow at every one of
them is out of reach, and most are far from any limit. The check takes, per model:

- for firm capacity, the state that the DC model found worst for each line limit that binds or
  comes within 1 % of its (corrected) limit, among the limits it keeps (not those that background
  alone breaks, which block their candidates): the corner of the background box (or of the budgeted
  box, the largest deviations first) that pushes that line hardest in the binding direction, with
  the products drawn as the model's draw set makes worst for it (all in full; or, under partial
  draws, those that load the line in that direction); at most MAX_CORNERS of them, the most
  loaded first;
- the ``worst`` sampled scenarios whose DC flows, with the allocation drawn in full, load some
  line most (relative to its corrected limit), among those in which the linear model holds (every
  row the model keeps): a flexible tier may break a limit in its tail, which is the risk it is
  sold with, not an error of the DC model.

The same state twice (two lines with one worst corner) is checked once. States are net
withdrawals per bus (load less committed generation), as the study's scenarios.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from grid.capacity.rows.limits import LOWER, UPPER
from grid.capacity.study import CapacityStudy
from grid.load.scenarios import Scenarios

# A line within this share of its rating counts as binding for the choice of corners.
NEAR = 0.01
# Corner states checked for firm capacity, at most.
MAX_CORNERS = 10
# Dense shift factors (lines x buses, 8 bytes each) this selection may hold.
MAX_DENSE_BYTES = 400_000_000


def budgeted_corner(h: np.ndarray, lower: np.ndarray, upper: np.ndarray, budget: float | None) -> np.ndarray:
    """The background that maximises h . p over the box (every load at the bound its sign picks),
    or over the budgeted box: only the ``budget`` largest deviations |h_j| half_j leave the centre,
    the last one in part (docs/models/capacity.md#eq-c-2-budget)."""
    centre, half = (upper + lower) / 2.0, (upper - lower) / 2.0
    step = np.sign(h) * half
    if budget is None or budget >= h.size:
        return centre + step
    order = np.argsort(-np.abs(h) * half, kind="stable")
    weight = np.zeros(h.size)
    whole = int(math.floor(budget))
    weight[order[:whole]] = 1.0
    if whole < h.size:
        weight[order[whole]] = budget - whole
    return centre + weight * step


@dataclass(frozen=True, eq=False)
class CheckState:
    """One state to check: its label, the background's net withdrawal per bus (MW), and which
    candidates draw their capacity in it (a boolean mask, candidate order)."""

    label: str
    withdrawal_mw: np.ndarray
    drawn: np.ndarray


@dataclass(frozen=True, eq=False)
class DenseFlows:
    """The network's shift factors (lines x buses) and every scenario's background flows
    (scenarios x lines, with the phase shifters'), made once for all the models checked."""

    h: np.ndarray
    background_mw: np.ndarray


def dense_flows(study: CapacityStudy, scenarios: Scenarios) -> DenseFlows | None:
    """DenseFlows of the study's network, or None when it is too large for the dense selection
    (MAX_DENSE_BYTES)."""
    network, flows = study.network, study.flows
    if len(network.lines) * len(network.buses) * 8 > MAX_DENSE_BYTES:
        return None
    h = flows.rows(np.arange(len(network.lines)))
    return DenseFlows(h, scenarios.samples_mw @ h.T + flows.offset_mw)


def line_limits(study: CapacityStudy, blocked: np.ndarray | None = None) -> np.ndarray:
    """Each line's limit in the intact network per direction (lines x 2: upper, lower), as the
    study's table has it, corrections included; inf for a line without one, or whose row the
    model left out as ``blocked`` (per table row)."""
    limits = study.limits
    out = np.full((len(study.network.lines), 2), np.inf)
    kinds = np.array(limits.kinds)
    kept = np.ones(len(limits), dtype=bool) if limits.outage is None else limits.outage < 0
    if blocked is not None:
        kept[:blocked.size] &= ~blocked
    for side, kind in enumerate((UPPER, LOWER)):
        rows = np.flatnonzero((kinds == kind) & kept)
        out[limits.line[rows], side] = limits.limit_mw[rows]
    return out


def check_states(study: CapacityStudy, scenarios: Scenarios, dense: DenseFlows, capacity: np.ndarray, draw: str, *,
                 corners: bool, worst: int, blocked: np.ndarray | None = None) -> list[CheckState]:
    """The states for one model's ``capacity`` (candidate order) under its ``draw`` set; ``blocked``
    are the table rows the model left out (background alone breaks them), which no state must hold."""
    limit = line_limits(study, blocked)
    chosen = _corners(study, dense.h, capacity, draw, limit, scenarios) if corners else []
    if worst > 0:
        chosen += _sampled(study, scenarios, dense, capacity, limit, blocked, worst)
    return unique_states(chosen)


def unique_states(states: list[CheckState]) -> list[CheckState]:
    """The states without repeats (the same background and products drawn), first label kept."""
    unique: dict[bytes, CheckState] = {}
    for state in states:
        unique.setdefault(state.withdrawal_mw.tobytes() + state.drawn.tobytes(), state)
    return list(unique.values())


def holding(study: CapacityStudy, dense: DenseFlows, states: list[CheckState], capacity: np.ndarray,
            blocked: np.ndarray | None = None) -> list[CheckState]:
    """The states in which the linear model holds every row it keeps, with their products drawn."""
    if not states:
        return []
    limit = line_limits(study, blocked)
    withdrawal = np.array([s.withdrawal_mw for s in states])
    drawn = np.array([np.where(s.drawn, capacity, 0.0) for s in states])          # (states, candidates)
    flow = withdrawal @ dense.h.T + drawn @ dense.h[:, study.candidates.positions].T + study.flows.offset_mw
    ok = _lines_hold(flow, limit) & _extra_rows_hold(study, withdrawal, drawn, blocked)
    return [state for state, good in zip(states, ok) if good]


def _lines_hold(flow: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Per state (row of ``flow``): every line within its limits per direction, to round-off."""
    tolerance = 1e-6 * np.maximum(1.0, np.abs(limit))
    holds = np.all(np.where(np.isfinite(limit[:, 0]), flow <= limit[:, 0] + tolerance[:, 0], True), axis=1)
    return holds & np.all(np.where(np.isfinite(limit[:, 1]), -flow <= limit[:, 1] + tolerance[:, 1], True), axis=1)


def _sampled(study: CapacityStudy, scenarios: Scenarios, dense: DenseFlows, capacity: np.ndarray, limit: np.ndarray,
             blocked: np.ndarray | None, worst: int) -> list[CheckState]:
    """The ``worst`` scenarios with the highest DC loading among those where the linear model holds."""
    flow = dense.background_mw + dense.h[:, study.candidates.positions] @ capacity     # (S, lines)
    usable = np.isfinite(limit) & (limit > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.maximum(np.where(usable[:, 0], flow / limit[:, 0], 0.0), np.where(usable[:, 1], -flow / limit[:, 1], 0.0))
    loading = ratio.max(axis=1) if ratio.size else np.zeros(len(flow))
    holds = _lines_hold(flow, limit) & _extra_rows_hold(study, scenarios.samples_mw, capacity[None, :], blocked)
    everyone = np.ones(capacity.size, dtype=bool)
    order = [s for s in np.argsort(-loading, kind="stable") if holds[s]][:worst]
    return [CheckState(f"scenario {int(s) + 1} (DC loading {loading[s]:.3f})", scenarios.samples_mw[s], everyone)
            for s in order]


def _extra_rows_hold(study: CapacityStudy, withdrawal: np.ndarray, drawn: np.ndarray,
                     blocked: np.ndarray | None) -> np.ndarray:
    """Per background (row of ``withdrawal``): every extra row of the corrections that the model
    keeps holds, with the new load ``drawn`` (one row per background, or one for all)."""
    limits = study.limits
    if limits.extra_background is None:
        return np.ones(len(withdrawal), dtype=bool)
    rows = limits.extra_rows
    value = limits.extra_terms(np.arange(rows.size), withdrawal).T + (limits.coef[rows] @ drawn.T).T
    kept = np.ones(rows.size, dtype=bool) if blocked is None else ~blocked[rows]
    bound = limits.limit_mw[rows] + 1e-6 * np.maximum(1.0, np.abs(limits.limit_mw[rows]))
    return np.all((value <= bound) | ~kept, axis=1)


def _corners(study: CapacityStudy, h: np.ndarray, capacity: np.ndarray, draw: str, limit: np.ndarray,
             scenarios: Scenarios) -> list[CheckState]:
    """One state per binding line direction, the most loaded first, at most MAX_CORNERS."""
    lower, upper, budget = study.firm_box.lower, study.firm_box.upper, study.firm_box.budget
    positions = study.candidates.positions
    found = []
    for l in np.flatnonzero(np.isfinite(limit).any(axis=1)):
        for side, (kind, sign) in enumerate(((UPPER, 1.0), (LOWER, -1.0))):
            if not np.isfinite(limit[l, side]):
                continue
            row = sign * h[l]
            drawn = row[positions] > 0 if draw == "partial" else np.ones(capacity.size, dtype=bool)
            state = budgeted_corner(row, lower, upper, budget)
            flow = row @ state + row[positions] @ np.where(drawn, capacity, 0.0) + sign * study.flows.offset_mw[l]
            if flow >= (1.0 - NEAR) * limit[l, side]:
                label = f"worst corner for line {study.network.lines[l].name} {kind} limit"
                found.append((flow / limit[l, side], CheckState(label, state, drawn)))
    found.sort(key=lambda item: -item[0])
    return [state for _, state in found[:MAX_CORNERS]]

