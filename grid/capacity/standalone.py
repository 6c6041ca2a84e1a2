"""Stand-alone hosting capacity: the most one bus can take with no other new load on the network.

The joint allocation (grid/capacity/study.py) shares the network among the candidates; a planner's
first question is the per-location number (docs/models/capacity.md#standalone). With only bus k
drawing, anywhere in [0, c_k], every limit r reads a_rk+ c_k <= room_r, so

    c_k = min over the limits with a_rk > 0 of room_r / a_rk             (C-20), per limit

with room_r = limit_r - worst(b_r) for firm capacity and limit_r - CVaR_eps(b_r) for the tier at
eps. The blocked-limit rule is the study's: a limit that the background alone breaks (room < 0)
gives 0 MW to the buses that touch it (coefficient at least the touch factor) and is otherwise
left out. A bus that no finite limit constrains has no stand-alone limit (infinity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grid.capacity.limits import LimitTable


@dataclass(frozen=True, eq=False)
class Standalone:
    """Per candidate (in candidate order): the stand-alone capacity (MW; inf when nothing limits
    it) and the row that binds (-1 when none does)."""

    capacity_mw: np.ndarray
    binding_row: np.ndarray

    def binding_names(self, limits: LimitTable) -> tuple[str, ...]:
        return tuple(limits.name(int(r)) if r >= 0 else "" for r in self.binding_row)


def standalone_capacity(limits: LimitTable, rooms: np.ndarray, touch_factor: float) -> Standalone:
    """Each candidate's stand-alone capacity under ``rooms`` (one per row of ``limits``)."""
    positive = limits.coef_positive.tocsc()
    n = positive.shape[1]
    capacity = np.full(n, np.inf)
    binding = np.full(n, -1, dtype=np.int64)
    broken = rooms < 0.0
    for k in range(n):
        rows = positive.indices[positive.indptr[k]:positive.indptr[k + 1]]
        weights = positive.data[positive.indptr[k]:positive.indptr[k + 1]]
        blocking = rows[broken[rows] & (weights >= touch_factor)]
        if blocking.size:
            capacity[k], binding[k] = 0.0, int(blocking[0])
            continue
        live = ~broken[rows]
        if not np.any(live):
            continue
        ratios = rooms[rows[live]] / weights[live]
        best = int(np.argmin(ratios))
        capacity[k], binding[k] = float(ratios[best]), int(rows[live][best])
    return Standalone(capacity, binding)
