"""Stand-alone hosting capacity: the most one bus can take with no other new load on the network.

The joint allocation (grid/capacity/study.py) shares the network among the candidates; a planner's
first question is the per-location number (docs/models/capacity.md#standalone). With only bus k
drawing, anywhere in [0, c_k], every limit r reads a_rk+ c_k <= room_r, so

    c_k = min over the limits with a_rk > 0 of room_r / a_rk             (C-20), per limit

with room_r = limit_r - worst(b_r) for firm capacity and limit_r - CVaR_eps(b_r) for the tier at
eps. The blocked-limit rule is the study's: a limit that the background alone breaks (room < 0)
gives 0 MW to the buses that touch it (coefficient at least the touch factor) and is otherwise
left out. A bus that no finite limit constrains has no stand-alone limit (infinity). Under N-1 the
limits after every outage count too (grid/capacity/outages.py), block by block: the minimum over
blocks is the minimum over all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sp

from grid.capacity.criteria import COEFFICIENT_ZERO


@dataclass(frozen=True, eq=False)
class Standalone:
    """Per candidate (in candidate order): the stand-alone capacity (MW; inf when nothing limits
    it) and the limit that binds ("" when none does)."""

    capacity_mw: np.ndarray
    binding: tuple[str, ...]

    def tighter(self, other: Standalone) -> Standalone:
        """Per candidate, the smaller of the two (and its limit)."""
        take = other.capacity_mw < self.capacity_mw
        return Standalone(np.where(take, other.capacity_mw, self.capacity_mw),
                          tuple(o if t else s for s, o, t in zip(self.binding, other.binding, take)))


def standalone_capacity(coefficients: np.ndarray | sp.spmatrix, rooms: np.ndarray, touch_factor: float,
                        name: Callable[[int], str]) -> Standalone:
    """(C-20) over one block of rows: ``coefficients`` (rows x candidates, any sign; only the
    positive parts count), ``rooms`` per row, ``name(row)`` for the limit that binds. Works on the
    non-zero entries alone, so a sparse table of a large case is never made dense, and on a few
    million of them at a time (whole columns), so that its work arrays stay small beside the table."""
    columns = sp.csc_matrix(coefficients)
    columns.sort_indices()
    n = columns.shape[1]
    capacity = np.full(n, np.inf)
    binding = [""] * n
    start = 0
    while start < n:
        # Whole columns, up to _ENTRIES non-zeros (at least one column).
        stop = max(start + 1, int(np.searchsorted(columns.indptr, columns.indptr[start] + _ENTRIES, side="right")) - 1)
        stop = min(stop, n)
        _columns_alone(columns, start, stop, rooms, touch_factor, name, capacity, binding)
        start = stop
    return Standalone(capacity, tuple(binding))


# Non-zeros handled at once by standalone_capacity: its work arrays take about 40 bytes each.
_ENTRIES = 4_000_000


def _columns_alone(columns: sp.csc_matrix, start: int, stop: int, rooms: np.ndarray, touch_factor: float,
                   name: Callable[[int], str], capacity: np.ndarray, binding: list[str]) -> None:
    """(C-20) for the columns start..stop-1 of ``columns``, written into ``capacity`` and ``binding``."""
    lo, hi = columns.indptr[start], columns.indptr[stop]
    column = start + np.repeat(np.arange(stop - start), np.diff(columns.indptr[start:stop + 1]))
    data = columns.data[lo:hi]
    positive = data > COEFFICIENT_ZERO
    row, column, a = columns.indices[lo:hi][positive], column[positive], data[positive]
    room = rooms[row]
    # A broken limit gives 0 MW to the buses that touch it and is otherwise left out.
    live = (room >= 0.0) | (a >= touch_factor)
    row, column, a, room = row[live], column[live], a[live], room[live]
    ratio = np.where(room >= 0.0, room / a, 0.0)
    if ratio.size:
        # Entries run by column, rows ascending within each: per column the least ratio, and the
        # first row that attains it (the smallest row of a tie).
        starts = np.flatnonzero(np.r_[True, column[1:] != column[:-1]])
        least = np.minimum.reduceat(ratio, starts)
        segment = np.cumsum(np.r_[False, column[1:] != column[:-1]])
        attains = np.flatnonzero(ratio == least[segment])
        first = attains[np.r_[True, segment[attains][1:] != segment[attains][:-1]]]
        capacity[column[first]] = ratio[first]
        for k, r in zip(column[first].tolist(), row[first].tolist()):
            binding[k] = name(int(r))
