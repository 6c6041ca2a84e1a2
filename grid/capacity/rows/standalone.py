"""Stand-alone hosting capacity: the most one bus can take with no other new load on the network.

The joint allocation (grid/capacity/study.py) shares the network among the candidates; a planner's
first question is the per-location number (docs/models/capacity.md#standalone). With only bus k
drawing, anywhere in [0, c_k], every limit r reads a_rk+ c_k <= room_r, so

    c_k = min over the limits with a_rk > 0 of room_r / a_rk             (C-20), per limit

with room_r = limit_r - worst(b_r) for firm capacity and limit_r - CVaR_eps(b_r) for the tier at
eps. The blocked-limit rule is the study's: a limit that the background alone breaks (room < 0)
gives 0 MW to the buses that touch it (coefficient at least the touch factor) and is otherwise
left out. A bus that no finite limit constrains has no stand-alone limit (infinity). Under N-1 the
limits after every outage count too (grid/capacity/rows/outages.py), block by block: the minimum over
blocks is the minimum over all.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import scipy.sparse as sp

from grid.capacity.inputs.criteria import COEFFICIENT_ZERO


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

    def tighter_by(self, least: np.ndarray, first: np.ndarray, name: Callable[[int], str]) -> Standalone:
        """``self.tighter(standalone_capacity(...))`` from least_ratios' arrays, naming only the
        limits that lower a capacity (a block of rows after an outage names few of its columns)."""
        take = least < self.capacity_mw
        binding = list(self.binding)
        for k in np.flatnonzero(take).tolist():
            binding[k] = name(int(first[k]))
        return Standalone(np.where(take, least, self.capacity_mw), tuple(binding))


def standalone_capacity(coefficients: np.ndarray | sp.spmatrix, rooms: np.ndarray, touch_factor: float,
                        name: Callable[[int], str]) -> Standalone:
    """(C-20) over one block of rows: ``coefficients`` (rows x candidates, any sign; only the
    positive parts count), ``rooms`` per row, ``name(row)`` for the limit that binds: per column
    the least ratio, and the first row (the smallest number of a tie) with a ratio that counts
    and attains it. A sparse matrix is worked on its non-zero entries alone (a table of a large
    case is never made dense); a dense one (the rows after an outage, whose coefficients are
    mostly non-zero) column-wise, a few million entries at a time, over ten times as fast."""
    least, first = least_ratios(coefficients, rooms, touch_factor)
    binding = [""] * least.size
    for k in np.flatnonzero(first < coefficients.shape[0]).tolist():
        binding[k] = name(int(first[k]))
    return Standalone(least, tuple(binding))


def least_ratios(coefficients: np.ndarray | sp.spmatrix, rooms: np.ndarray,
                 touch_factor: float) -> tuple[np.ndarray, np.ndarray]:
    """(C-20) per column: the least ratio (inf if none counts) and the first row that attains it
    (the row count if none): what standalone_capacity names."""
    if isinstance(coefficients, np.ndarray):
        return _dense_least(coefficients, rooms, touch_factor)
    return _sparse_least(sp.csr_matrix(coefficients), rooms, touch_factor)


def _sparse_least(matrix: sp.csr_matrix, rooms: np.ndarray, touch_factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column the least ratio, then the first row that attains it (the row count if none), a
    few million non-zeros at a time (row_chunks) in row order. A chunk whose rows are mostly
    non-zero (the lines' rows of a meshed network, the rows after an outage) is worked dense,
    column-wise, about ten times as fast as entry by entry; the least ratios and first rows are
    the same either way (the same ratios, and ties go to the earlier row)."""
    n_rows, n = matrix.shape
    least, first = np.full(n, np.inf), np.full(n, n_rows)
    for rows, chunk in row_chunks(matrix, np.arange(n_rows)):
        if worked_dense(chunk):
            block_least, block_first = _dense_least(chunk.toarray(), rooms[rows], touch_factor)
        else:
            block_least, block_first = _entries_least(chunk, rooms[rows], touch_factor)
        _merge(least, first, block_least, np.where(block_first < rows.size, rows[0] + block_first, n_rows), n_rows)
    return least, first


def _entries_least(matrix: sp.csr_matrix, rooms: np.ndarray, touch_factor: float) -> tuple[np.ndarray, np.ndarray]:
    """_sparse_least of one chunk, entry by entry."""
    n_rows, n = matrix.shape
    row = np.repeat(np.arange(n_rows), np.diff(matrix.indptr))
    room, a = rooms[row], matrix.data
    live = _counts(a, room, touch_factor)
    row, column, ratio = row[live], matrix.indices[live], _ratio(a[live], room[live])
    least = np.full(n, np.inf)
    np.minimum.at(least, column, ratio)
    first = np.full(n, n_rows)
    hit = ratio == least[column]
    np.minimum.at(first, column[hit], row[hit])
    return least, first


def _dense_least(coefficients: np.ndarray, rooms: np.ndarray, touch_factor: float) -> tuple[np.ndarray, np.ndarray]:
    """What _sparse_least gives, on a dense matrix, one block of rows at a time in row order: a
    block's least ratio replaces the one so far only if smaller, so a tie keeps the earlier row."""
    n_rows, n = coefficients.shape
    least, first = np.full(n, np.inf), np.full(n, n_rows)
    step = max(1, _ENTRIES // max(n, 1))
    for start in range(0, n_rows, step):
        a, room = coefficients[start:start + step], rooms[start:start + step, None]
        live = _counts(a, room, touch_factor)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(live, _ratio(a, room), np.inf)
        block_least = ratio.min(axis=0)
        hit = live & (ratio == block_least)
        found = hit.any(axis=0)
        _merge(least, first, block_least, np.where(found, start + hit.argmax(axis=0), n_rows), n_rows)
    return least, first


def _merge(least: np.ndarray, first: np.ndarray, block_least: np.ndarray, block_first: np.ndarray,
           none: int) -> None:
    """Fold a later block's least ratios and first rows (``none`` where it has none) into the
    running ones, in place: the block's row replaces the earlier one only where its ratio is
    smaller, or where no earlier row had one."""
    found = block_first != none
    better = found & ((block_least < least) | (first == none))
    np.minimum(least, np.where(found, block_least, np.inf), out=least)
    first[better] = block_first[better]


def _counts(a: np.ndarray, room: np.ndarray, touch_factor: float) -> np.ndarray:
    """Which coefficients give a ratio (C-20): a positive one of a row with room >= 0, or of a
    broken row (room < 0) that it touches (a >= the touch factor); the others are left out."""
    return (a > COEFFICIENT_ZERO) & ((room >= 0.0) | (a >= touch_factor))


def _ratio(a: np.ndarray, room: np.ndarray) -> np.ndarray:
    """room / a, or 0 MW for a broken row (room < 0)."""
    return np.where(room >= 0.0, room / a, 0.0)


@dataclass(eq=False)
class FirstRows:
    """The rows of a written-out program (grid/capacity/lp/programs.py explicit_program) that set
    some column's stand-alone bound min room_r / a_rk over its positive a_rk (C-20): every row
    that attains a column's least ratio. Kept between the passes of one model: an N-1 pass writes
    the rows of the pass before and its new pairs after them, at the same rooms, so only the new
    rows are read. Any other call (other rows first, other rooms) reads every row again."""

    rows: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    rooms: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    least: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    # Every (position in rows, column) whose ratio is its column's least.
    position: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    column: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def find(self, load_rows: sp.csr_matrix, rows: np.ndarray, rooms: np.ndarray) -> np.ndarray:
        """The positions (in ``rows``, rows of ``load_rows``) of the rows that set some column's
        bound at ``rooms`` (one per row of load_rows), ascending, each once."""
        if not self._continues(load_rows, rows, rooms):
            self._start(load_rows.shape[1])
        new = rows[self.rows.size:]
        # The chunks' ratios are kept for the second pass when they are few (an N-1 pass's new
        # rows), else made again: the first call over a large table would hold them all.
        kept = (list(_ratios(load_rows, new, rooms))
                if 2 * int(np.sum(np.diff(load_rows.indptr)[new])) <= _KEPT_RATIOS else None)

        def chunks():
            return kept if kept is not None else _ratios(load_rows, new, rooms)

        least = np.full(load_rows.shape[1], np.inf)
        for _, ratios in chunks():
            if isinstance(ratios, np.ndarray):
                np.minimum(least, ratios.min(axis=0), out=least)
            else:
                np.minimum.at(least, ratios[1], ratios[2])
        found = [_attaining(positions, ratios, least) for positions, ratios in chunks()]
        after = self.rows.size
        position = np.concatenate([found_position + after for found_position, _ in found] or [np.zeros(0, np.int64)])
        column = np.concatenate([found_column for _, found_column in found] or [np.zeros(0, np.int64)])
        # A column keeps the rows read before where their least still stands, and takes the new
        # rows' where theirs is as small: the pairs whose ratio is the least over every row.
        overall = np.minimum(self.least, least)
        old = self.least[self.column] == overall[self.column]
        new_kept = least[column] == overall[column]
        self.position = np.concatenate([self.position[old], position[new_kept]])
        self.column = np.concatenate([self.column[old], column[new_kept]])
        self.least = overall
        self.rows, self.rooms = rows.copy(), rooms[rows]
        return np.unique(self.position)

    def _start(self, columns: int) -> None:
        """Forget every row read: the next call reads all of its rows."""
        self.rows, self.rooms = np.zeros(0, dtype=np.int64), np.zeros(0)
        self.least = np.full(columns, np.inf)
        self.position, self.column = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)

    def _continues(self, load_rows: sp.csr_matrix, rows: np.ndarray, rooms: np.ndarray) -> bool:
        """Whether ``rows`` starts with the rows read before, at the same rooms."""
        known = self.rows.size
        return (self.least.size == load_rows.shape[1] and known <= rows.size
                and np.array_equal(rows[:known], self.rows) and np.array_equal(rooms[self.rows], self.rooms))


def _attaining(positions: np.ndarray, ratios: np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray],
               least: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position, column) of each ratio of a chunk (as _ratios gives it) equal to its column's
    least; a column no row bounds (least inf) has none."""
    if isinstance(ratios, np.ndarray):
        row, column = np.nonzero((ratios <= least) & (ratios < np.inf))
        return positions[row], column
    position, column, ratio = ratios
    hit = ratio <= least[column]
    return position[hit], column[hit]


def _ratios(load_rows: sp.csr_matrix, rows: np.ndarray, rooms: np.ndarray
            ) -> Iterator[tuple[np.ndarray, np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Per chunk of whole rows (row_chunks), in row order: the chunk's positions in ``rows`` and
    room / a of its positive entries, as a dense (chunk rows x columns) array with inf elsewhere
    when the chunk is mostly non-zero (about ten times as fast as entry by entry, the same
    ratios), else as (position, column, ratio) per positive entry."""
    for chunk_positions, chunk in row_chunks(load_rows, rows):
        room = rooms[rows[chunk_positions]]
        if worked_dense(chunk):
            a = chunk.toarray()
            with np.errstate(divide="ignore", invalid="ignore"):
                yield chunk_positions, np.where(a > 0, room[:, None] / a, np.inf)
            continue
        positions = np.repeat(chunk_positions, np.diff(chunk.indptr))
        positive = chunk.data > 0
        yield chunk_positions, (positions[positive], chunk.indices[positive],
                                rooms[rows[positions[positive]]] / chunk.data[positive])


# Entries (about twice the non-zeros, for a dense chunk's inf) whose ratios FirstRows.find keeps
# between its two passes: 128 MB of ratios.
_KEPT_RATIOS = 16_000_000
# Non-zeros that row_chunks hands out at once: the work arrays on them take about 40 bytes each.
_ENTRIES = 4_000_000
# The share of non-zeros above which a chunk of rows is worked dense.
DENSE_SHARE = 0.25


def worked_dense(chunk: sp.csr_matrix) -> bool:
    """Whether a chunk of rows is mostly non-zero enough (DENSE_SHARE) to be worked as a dense
    array, column-wise, rather than entry by entry."""
    return chunk.nnz >= DENSE_SHARE * chunk.shape[0] * chunk.shape[1]


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
