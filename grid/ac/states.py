"""Which background states the AC check runs for a capacity allocation (docs/models/ac-check.md#states).

A linear study promises its capacities for a set of backgrounds; an AC power flow at every one of
them is out of reach, and most are far from any limit. The check takes, per model:

- for firm capacity, the state that the DC model found worst for each line limit that binds or
  comes within 1 % of its rating: the corner of the background box (or of the budgeted box, the
  largest deviations first) that pushes that line hardest in the binding direction, with the
  products drawn as the model's draw set makes worst for it (all in full; or, under partial
  draws, those that load the line in that direction); at most MAX_CORNERS of them, the most
  loaded first;
- the ``worst`` sampled scenarios whose DC flows, with the allocation drawn in full, load some
  line most (relative to its rating).

States are net withdrawals per bus (load less committed generation), as the study's scenarios.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from grid.capacity.limits import LOWER, UPPER
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


def check_states(study: CapacityStudy, scenarios: Scenarios, dense: DenseFlows, capacity: np.ndarray, draw: str, *,
                 corners: bool, worst: int) -> list[CheckState]:
    """The states for one model's ``capacity`` (candidate order) under its ``draw`` set."""
    network, candidates = study.network, study.candidates
    h = dense.h
    limit = np.array([line.thermal_limit_mw for line in network.lines])
    chosen = _corners(study, h, capacity, draw, limit, scenarios) if corners else []
    if worst > 0:
        flow = dense.background_mw + h[:, candidates.positions] @ capacity     # (S, lines)
        with np.errstate(divide="ignore", invalid="ignore"):
            loading = np.where(np.isfinite(limit), np.abs(flow) / limit, 0.0).max(axis=1)
        everyone = np.ones(capacity.size, dtype=bool)
        chosen += [CheckState(f"scenario {int(s) + 1} (DC loading {loading[s]:.3f})", scenarios.samples_mw[s], everyone)
                   for s in np.argsort(-loading, kind="stable")[:worst]]
    return chosen


def _corners(study: CapacityStudy, h: np.ndarray, capacity: np.ndarray, draw: str, limit: np.ndarray,
             scenarios: Scenarios) -> list[CheckState]:
    """One state per binding line direction, the most loaded first, at most MAX_CORNERS."""
    lower, upper, budget = study.firm_box.lower, study.firm_box.upper, study.firm_box.budget
    positions = study.candidates.positions
    found = []
    for l in np.flatnonzero(np.isfinite(limit)):
        for kind, sign in ((UPPER, 1.0), (LOWER, -1.0)):
            row = sign * h[l]
            drawn = row[positions] > 0 if draw == "partial" else np.ones(capacity.size, dtype=bool)
            state = budgeted_corner(row, lower, upper, budget)
            flow = row @ state + row[positions] @ np.where(drawn, capacity, 0.0) + sign * study.flows.offset_mw[l]
            if flow >= (1.0 - NEAR) * limit[l]:
                label = f"worst corner for line {study.network.lines[l].name} {kind} limit"
                found.append((flow / limit[l], CheckState(label, state, drawn)))
    found.sort(key=lambda item: -item[0])
    return [state for _, state in found[:MAX_CORNERS]]
