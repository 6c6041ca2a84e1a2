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
from typing import Callable, Iterator

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
    non-zero entries alone, so a sparse table of a large case is never made dense, and a few
    million of them at a time (row_chunks), so that its work arrays stay small beside the table:
    first the least ratio per column, then per column the first row (the smallest number of a
    tie) that attains it."""
    matrix = sp.csr_matrix(coefficients)
    n_rows, n = matrix.shape
    least = np.full(n, np.inf)
    for _, column, ratio in _live_ratios(matrix, rooms, touch_factor):
        np.minimum.at(least, column, ratio)
    first = np.full(n, n_rows)
    for row, column, ratio in _live_ratios(matrix, rooms, touch_factor):
        hit = ratio == least[column]
        np.minimum.at(first, column[hit], row[hit])
    bound = np.flatnonzero(first < n_rows)
    binding = [""] * n
    for k in bound.tolist():
        binding[k] = name(int(first[k]))
    return Standalone(least, tuple(binding))


def _live_ratios(matrix: sp.csr_matrix, rooms: np.ndarray, touch_factor: float
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(row, column, ratio) of the entries that count, a chunk of rows at a time: a positive
    coefficient a of a row with room >= 0 gives room / a; a broken limit (room < 0) gives 0 MW to
    the buses that touch it (a >= the touch factor) and is otherwise left out."""
    for rows, chunk in row_chunks(matrix, np.arange(matrix.shape[0])):
        row = np.repeat(rows, np.diff(chunk.indptr))
        room, a = rooms[row], chunk.data
        live = (a > COEFFICIENT_ZERO) & ((room >= 0.0) | (a >= touch_factor))
        room, a = room[live], a[live]
        yield row[live], chunk.indices[live], np.where(room >= 0.0, room / a, 0.0)


# Non-zeros that row_chunks hands out at once: the work arrays on them take about 40 bytes each.
_ENTRIES = 4_000_000


def row_chunks(matrix: sp.csr_matrix, rows: np.ndarray) -> Iterator[tuple[np.ndarray, sp.csr_matrix]]:
    """(positions in ``rows``, those rows of ``matrix``) in order, whole rows of about _ENTRIES
    non-zeros at a time (at least one row): for (C-20) here and for the stand-alone rows that the
    written-out program starts from (grid/capacity/lp/programs.py)."""
    total = np.cumsum(np.diff(matrix.indptr)[rows])   # entries up to and including each row
    start = 0
    while start < rows.size:
        before = int(total[start - 1]) if start else 0
        stop = max(start + 1, int(np.searchsorted(total, before + _ENTRIES, side="right")))
        yield np.arange(start, stop), matrix[rows[start:stop]]
        start = stop
