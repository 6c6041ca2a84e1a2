"""Hourly headroom per bus: the most a bus can take alone if its new load accepts curtailment in
at most a given share of the hours (docs/models/headroom.md#one-hour and #year).

Each hour t of a series (a MATPOWER change table, or a CSV of loads) is one background state:
the hour's loads net of the committed generation, the difference supplied by the generators in
their participation factors (the network's slack model, folded into the shift factors H). Every
limit r of the capacity study's table (grid/capacity/rows/limits.py) then has that hour's room

    room_rt = limit_r - b_rt                                                   (H-1)

and the stand-alone hosting capacity (C-20) with those rooms is the bus's headroom in hour t,

    h_kt = min over the rows r with a_rk > 0 of room_rt / a_rk                 (H-2)

(blocked-limit rule per hour: a row the hour's background breaks gives 0 MW to the buses that
touch it and is otherwise left out that hour). At curtailment level p (a share of the T hours)
a new load of x MW at bus k is curtailed in the hours with h_kt < x, so

    x_k(p) = the largest x with #{t : h_kt < x} <= floor(p T)                  (H-3)

which is the (floor(p T) + 1)-th smallest h_kt; p = 0 is firm, the minimum over the hours. The
share of energy curtailed is sum_t (x - h_kt)+ / (x T)                          (H-4).

Cost. T h_kt values per bus against every row would be hours x rows x buses (some 10^11 on
ACTIVSg2000), so each bus keeps only the rows that can set one of its K lowest hours, K =
floor(p_max T) + 1 (H-5): any single row's K-th smallest ratio bounds x_k(p_max) from above, and
a row whose smallest ratio over all hours is above that bound never sets an hour below it. The
rows left are evaluated over every hour, a chunk of buses at a time (memory bounded).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import scipy.sparse as sp

from grid.capacity.inputs.criteria import COEFFICIENT_ZERO
from grid.capacity.rows.limits import (
    LOWER,
    SUPPLY,
    UPPER,
    WITHDRAWAL,
    LimitTable,
    ShiftRows,
)
from grid.errors import GridError
from grid.load.scenarios import Scenarios
from grid.network.network import Network

Progress = Callable[[str], None]

# Values of one (kept rows x hours) work array; several such arrays live at once (about 64 MB each).
_CHUNK_VALUES = 2**23
# Hourly series spanning at most this many directions are multiplied through a basis of them (H-6).
_RANK_PROBE = 64
# A low-rank basis is used only when it reproduces every hourly value to this share of the largest.
_RANK_TOLERANCE = 1e-12
# The largest curtailment level: a load curtailed in more than half the hours is not connected.
MAX_LEVEL = 0.5


def check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    """Curtailment levels as shares of the hours, each in [0, MAX_LEVEL], given once; sorted."""
    if not levels:
        raise GridError("curtailment levels are empty; give at least one share of hours, e.g. [0.005]")
    for p in levels:
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 <= p <= MAX_LEVEL:
            raise GridError(f"curtailment level {p!r} must lie in [0, {MAX_LEVEL:g}] (a share of the hours: "
                            "0.005 is 0.5 %)")
    ordered = tuple(sorted(float(p) for p in levels))
    if len(set(ordered)) != len(ordered):
        raise GridError(f"curtailment levels list a level twice ({list(levels)}); give each level once")
    return ordered


def allowed_hours(level: float, hours: int) -> int:
    """floor(p T): the hours a load at level p may be curtailed in (a hair of slack for 0.005 x 8784)."""
    return int(math.floor(level * hours + 1e-9))


# ------------------------------------------------------------------------------- generation following
# How the generators follow the hourly load (H-0), by name: what each rule promises, in one line.
FOLLOWING = {
    "scaled": "below the base load every committed unit scales with the load (participation in proportion to its "
              "output); above it the network's participation factors (generator headroom) supply the rest",
    "slack": "the network's participation factors (generator headroom) supply every change from the base load, "
             "up and down, as in the capacity study's scenarios",
}


def following_withdrawals(network: Network, load_mw: np.ndarray, rule: str = "scaled") -> np.ndarray:
    """Net withdrawal (hours x buses, network bus order): each hour's load less the generation
    that follows it by ``rule`` (FOLLOWING, docs/models/headroom.md#eq-h-0).

    What the returned generation does not cover, the network's slack model supplies through the
    shift factors: under "scaled" only growth above the base load L_0 (the committed output), so
    no unit is scaled below zero or above its Pmax while the growth fits the headroom; under
    "slack" every change, so a unit's share of a drop can exceed its output on a day of low load.
    """
    if rule not in FOLLOWING:
        raise GridError(f"generation following {rule!r} is not a rule; choose one of {', '.join(FOLLOWING)}")
    load_mw = np.asarray(load_mw, dtype=float)
    committed = np.zeros(len(network.buses))
    for bus, output in network.committed_generation_mw().items():
        committed[network.bus_index(bus)] += output
    if rule == "slack":
        return load_mw - committed
    base = float(committed.sum())
    scale = np.minimum(load_mw.sum(axis=1) / base, 1.0) if base > 0 else np.zeros(load_mw.shape[0])
    return load_mw - scale[:, None] * committed[None, :]


# ------------------------------------------------------------------------------- the background
@dataclass(frozen=True, eq=False)
class HourlyBackground:
    """What each hour's background does to each limit row: b_rt = sign_r * values[source_r, t].

    ``values`` holds the background quantities once (each line's flow, the withdrawal of each bus
    with a withdrawal limit, the total withdrawal), so a line's upper and lower rows share one.
    """

    values: np.ndarray       # (quantities, T)
    source: np.ndarray       # (R,) the quantity of each row
    sign: np.ndarray         # (R,) +1 or -1

    @property
    def hours(self) -> int:
        return int(self.values.shape[1])

    def rooms(self, table: LimitTable, rows: np.ndarray) -> np.ndarray:
        """(H-1) for these rows, every hour: (rows, T) (docs/models/headroom.md#eq-h-1)."""
        rows = np.asarray(rows, dtype=int)
        return table.limit_mw[rows][:, None] - self.sign[rows][:, None] * self.values[self.source[rows]]


def hourly_background(table: LimitTable, shift: ShiftRows, samples: np.ndarray) -> HourlyBackground:
    """The background of every row of ``table`` (built by limit_rows for these hours) in every hour
    of ``samples`` (hours x buses: net withdrawal, load minus committed generation)."""
    samples = np.asarray(samples, dtype=float)
    kinds = np.array(table.kinds)
    lines = np.concatenate([block for block, _ in shift.blocks]) if shift.blocks else np.zeros(0, dtype=int)
    flows = line_flows(shift, samples)
    withdrawal = np.flatnonzero(kinds == WITHDRAWAL)
    quantities = [flows, samples[:, table.bus[withdrawal]].T, samples.sum(axis=1)[None, :]]
    source = np.zeros(len(table), dtype=int)
    line_at = np.full(max(int(lines.max(initial=-1)) + 1, 1), -1)
    line_at[lines] = np.arange(lines.size)
    on_lines = (kinds == UPPER) | (kinds == LOWER)
    source[on_lines] = line_at[table.line[on_lines]]
    source[withdrawal] = lines.size + np.arange(withdrawal.size)
    source[kinds == SUPPLY] = lines.size + withdrawal.size
    sign = np.where(kinds == LOWER, -1.0, 1.0)
    return HourlyBackground(np.vstack(quantities), source, sign)


def line_flows(shift: ShiftRows, samples: np.ndarray) -> np.ndarray:
    """Each limited line's background flow in every hour, (lines in block order, T)
    (docs/models/headroom.md#eq-h-6).

    Hourly load tables are often low-rank: an area table moves each area's buses together, so its
    hours span at most areas + 1 directions. Then P' = Q C (Q a basis, found from a random probe
    with a fixed seed) and H P' = (H Q) C: on ACTIVSg2000 about 40 times fewer operations, the
    probe and the check included. The basis is used only when it reproduces every value to 1e-12
    of the largest, else H P' is formed as is.
    """
    samples_t = np.asarray(samples, dtype=float).T
    basis = _low_rank(samples_t)
    blocks = []
    for block, h in shift.blocks:
        flows = h @ samples_t if basis is None else (h @ basis[0]) @ basis[1]
        blocks.append(flows + shift.offset_mw[block][:, None])
    return np.vstack(blocks) if blocks else np.zeros((0, samples_t.shape[1]))


def _low_rank(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(Q, C) with matrix = Q C to 1e-12 of its largest value, or None when it is not low-rank."""
    rows, columns = matrix.shape
    probe = min(_RANK_PROBE, rows, columns)
    if probe == 0 or probe < _RANK_PROBE:
        return None
    omega = np.random.default_rng(0).standard_normal((columns, probe))
    u, s, _ = np.linalg.svd(matrix @ omega, full_matrices=False)
    if s[0] == 0.0:
        return None
    rank = int(np.sum(s > s[0] * 1e-10))
    if rank >= probe:
        return None
    basis = u[:, :rank]
    coefficients = basis.T @ matrix
    scale = max(float(np.abs(matrix).max()), 1.0)
    for start in range(0, columns, 1024):
        part = slice(start, start + 1024)
        if np.abs(matrix[:, part] - basis @ coefficients[:, part]).max() > _RANK_TOLERANCE * scale:
            return None
    return basis, coefficients


# ------------------------------------------------------------------------------- the screen (H-5)
@dataclass(frozen=True, eq=False)
class _Pairs:
    """The (row, candidate) pairs kept for the exact pass, in candidate order (CSC of a+)."""

    row: np.ndarray
    column: np.ndarray
    a: np.ndarray


def _row_order_statistics(background: HourlyBackground, table: LimitTable, keep: int) -> tuple[np.ndarray, ...]:
    """Per row: the smallest room over the hours and its ``keep``-th smallest room."""
    values = background.values
    count = values.shape[1]
    keep = min(keep, count)
    low_k, high_k = keep - 1, count - keep
    smallest, largest = np.empty(values.shape[0]), np.empty(values.shape[0])
    kth_small, kth_large = np.empty(values.shape[0]), np.empty(values.shape[0])
    for start in range(0, values.shape[0], 1024):
        part = values[start:start + 1024]
        kth = sorted({0, low_k, high_k, count - 1})
        ordered = np.partition(part, kth, axis=1)
        smallest[start:start + 1024], largest[start:start + 1024] = ordered[:, 0], ordered[:, -1]
        kth_small[start:start + 1024], kth_large[start:start + 1024] = ordered[:, low_k], ordered[:, high_k]
    up = background.sign > 0
    src, limit = background.source, table.limit_mw
    room_min = limit - np.where(up, largest[src], -smallest[src])
    room_k = limit - np.where(up, kth_large[src], -kth_small[src])
    return room_min, room_k


@dataclass(frozen=True, eq=False)
class SourceTails:
    """Each background quantity's K largest hourly values (descending) and K smallest (ascending)."""

    top: np.ndarray
    bottom: np.ndarray


def source_tails(background: HourlyBackground, keep: int) -> SourceTails:
    """The ``keep`` largest and smallest hourly values of every background quantity (a partial
    sort, a block of quantities at a time)."""
    values = background.values
    count = values.shape[1]
    keep = min(keep, count)
    top, bottom = np.empty((values.shape[0], keep)), np.empty((values.shape[0], keep))
    for start in range(0, values.shape[0], 1024):
        part = np.partition(values[start:start + 1024], sorted({keep - 1, count - keep}), axis=1)
        top[start:start + 1024] = -np.sort(-part[:, count - keep:], axis=1)
        bottom[start:start + 1024] = np.sort(part[:, :keep], axis=1)
    return SourceTails(top, bottom)


def _statistics_from(tails: SourceTails, table: LimitTable, background: HourlyBackground,
                     keep: int) -> tuple[np.ndarray, np.ndarray]:
    """_row_order_statistics read off the tails (which hold at least ``keep`` values)."""
    up, src, limit = background.sign > 0, background.source, table.limit_mw
    room_min = limit - np.where(up, tails.top[src, 0], -tails.bottom[src, 0])
    room_k = limit - np.where(up, tails.top[src, keep - 1], -tails.bottom[src, keep - 1])
    return room_min, room_k


def table_with_tails(table: LimitTable, background: HourlyBackground, tails: SourceTails) -> LimitTable:
    """``table`` with each row's largest hourly background values, b_rt descending (what the
    capacity study's CVaR reads, grid/capacity/rows/limits.py with_tails), from the hours' own flows;
    the hours they come from are not kept (-1), which the per-constraint risk mode does not need."""
    up = background.sign[:, None] > 0
    largest = np.where(up, tails.top[background.source], -tails.bottom[background.source])
    return dataclasses.replace(table, tail_mw=largest, tail_scenario=np.full(largest.shape, -1, dtype=np.int64))


def _screen(table: LimitTable, background: HourlyBackground, keep: int, touch_factor: float,
            columns: np.ndarray, statistics: tuple[np.ndarray, np.ndarray] | None = None) -> _Pairs:
    """(H-5), docs/models/headroom.md#eq-h-5: per candidate, the rows whose smallest ratio over
    the hours can reach its ``keep`` lowest hours. ``columns`` picks the candidates; ``statistics`` are _row_order_statistics for
    ``keep`` when the caller has them."""
    room_min, room_k = statistics or _row_order_statistics(background, table, keep)
    positive = sp.csc_matrix(table.coef[:, columns].maximum(0.0))
    positive.data[positive.data <= COEFFICIENT_ZERO] = 0.0
    positive.eliminate_zeros()
    positive.sort_indices()
    row, a = positive.indices, positive.data
    column = np.repeat(np.arange(positive.shape[1]), np.diff(positive.indptr))
    touches = a >= touch_factor
    # A ratio never falls below max(room_min, 0) / a: a broken hour gives 0 or leaves the row out.
    lowest = np.maximum(room_min[row], 0.0) / a
    # An upper bound of the keep-th smallest ratio: exact where the row is never left out.
    kth = np.where(touches, np.maximum(room_k[row], 0.0) / a, np.where(room_min[row] >= 0, room_k[row] / a, np.inf))
    bound = np.full(positive.shape[1], np.inf)
    np.minimum.at(bound, column, kth)
    kept = lowest <= bound[column] * (1.0 + 1e-12) + 1e-12
    return _Pairs(row[kept], columns[column[kept]], a[kept])


# ------------------------------------------------------------------------------- the exact pass
def _ratios(table: LimitTable, background: HourlyBackground, pairs: _Pairs, part: slice | np.ndarray,
            touch_factor: float, hours: np.ndarray | None = None) -> np.ndarray:
    """room_rt / a_rk of these pairs, every hour (or, per pair, the hours ``hours`` names), with the
    blocked-limit rule per hour (docs/models/headroom.md#eq-h-2)."""
    rows = pairs.row[part]
    if hours is None:
        ratio = background.rooms(table, rows)
    else:
        ratio = (table.limit_mw[rows][:, None]
                 - background.sign[rows][:, None] * background.values[background.source[rows][:, None], hours])
    a = pairs.a[part][:, None]
    broken = ratio < 0.0
    ratio /= a
    ratio[broken] = 0.0
    ratio[broken & (a < touch_factor)] = np.inf
    return ratio


def _hourly_minima(table: LimitTable, background: HourlyBackground, pairs: _Pairs, touch_factor: float,
                   progress: Progress) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(candidates, their headroom in every hour (H-2)), over the kept pairs in chunks of about
    _CHUNK_VALUES values; a candidate whose pairs span two chunks is finished in the second."""
    size = max(_CHUNK_VALUES // max(background.hours, 1), 1)
    chunks = range(0, pairs.row.size, size)
    open_column, open_minimum = -1, None
    for done, first in enumerate(chunks, start=1):
        part = slice(first, min(first + size, pairs.row.size))
        column = pairs.column[part]
        starts = np.flatnonzero(np.r_[True, column[1:] != column[:-1]])
        minima = np.minimum.reduceat(_ratios(table, background, pairs, part, touch_factor), starts, axis=0)
        who = column[starts]
        if who[0] == open_column:
            np.minimum(minima[0], open_minimum, out=minima[0])
        elif open_minimum is not None:
            yield np.array([open_column]), open_minimum[None, :]
        if len(who) > 1:
            yield who[:-1], minima[:-1]
        open_column, open_minimum = int(who[-1]), minima[-1].copy()
        if done % 20 == 0 or done == len(chunks):
            progress(f"hourly headroom: {done}/{len(chunks)} blocks of (limit, bus) pairs")
    if open_minimum is not None:
        yield np.array([open_column]), open_minimum[None, :]


def _setting_rows(table: LimitTable, background: HourlyBackground, pairs: _Pairs, hours: np.ndarray,
                  touch_factor: float) -> np.ndarray:
    """Per candidate and each of its hours (candidates x levels; -1: none), the row that attains
    (H-2) there: the first of its kept pairs with the smallest ratio."""
    found = np.full(hours.shape, -1, dtype=np.int64)
    if pairs.row.size == 0:
        return found
    at = hours[pairs.column]                                         # (pairs, levels)
    ratio = _ratios(table, background, pairs, slice(None), touch_factor, np.maximum(at, 0))
    starts = np.flatnonzero(np.r_[True, pairs.column[1:] != pairs.column[:-1]])
    minima = np.minimum.reduceat(ratio, starts, axis=0)
    segment = np.cumsum(np.r_[False, pairs.column[1:] != pairs.column[:-1]])
    index = np.where((ratio == minima[segment]) & np.isfinite(ratio), np.arange(pairs.row.size)[:, None],
                     pairs.row.size)
    first = np.minimum.reduceat(index, starts, axis=0)
    who = pairs.column[starts]
    found[who] = np.where(first < pairs.row.size, pairs.row[np.minimum(first, pairs.row.size - 1)], -1)
    found[hours < 0] = -1
    return found


# ------------------------------------------------------------------------------- the result
@dataclass(frozen=True, eq=False)
class Headroom:
    """Per candidate (candidate order) and curtailment level (``levels`` order, ascending).

    ``capacity_mw`` is x_k(p) (H-3) (inf: no finite limit constrains the bus); the shares are of
    the hours and of the energy x T (H-4) that the load at x_k(p) loses; ``binding_hour`` is the
    hour whose headroom sets x_k(p) (-1: none) and ``binding`` the limit that sets it there ("":
    none). ``lowest_mw`` holds each candidate's K lowest hourly headrooms, ascending, K =
    floor(max level x T) + 1, exact (H-5): x_k(p) for any p up to the largest level reads off it.
    Every number is stand-alone: the bus alone takes new load, so the sum over buses is not
    deliverable at once.
    """

    levels: tuple[float, ...]
    hours: int
    capacity_mw: np.ndarray
    hours_curtailed: np.ndarray
    energy_curtailed: np.ndarray
    binding_hour: np.ndarray
    binding: tuple[tuple[str, ...], ...]
    lowest_mw: np.ndarray
    pairs: int = 0                    # (limit, bus) pairs evaluated over every hour after (H-5)
    # The limits the background alone breaks in some hour, with how many hours (row order).
    overloaded: tuple[tuple[str, int], ...] = ()

    def at_share(self, share: float) -> np.ndarray:
        """x_k(share) of every candidate, for any share up to the largest level (H-3)."""
        m = allowed_hours(share, self.hours)
        if m >= self.lowest_mw.shape[1]:
            raise GridError(f"curtailment share {share:g} is above the largest level studied "
                            f"({max(self.levels):g}); study it as a level")
        return self.lowest_mw[:, m]


def hourly_headroom(table: LimitTable, background: HourlyBackground, levels: Sequence[float], *,
                    touch_factor: float, tails: SourceTails | None = None,
                    progress: Progress = lambda _: None) -> Headroom:
    """(H-2) to (H-5) for every candidate of ``table`` (built by limit_rows on these hours):
    docs/models/headroom.md#eq-h-3 and docs/models/headroom.md#eq-h-4.
    ``tails``: source_tails of the background, at least floor(max level x T) + 1 wide, when the
    caller has them (the joint total reads them too)."""
    levels = check_levels(levels)
    hours = background.hours
    if len(background.source) != len(table):
        raise GridError("the hourly background was built for another limit table; build it with hourly_background")
    count = table.coef.shape[1]
    keep = min(allowed_hours(levels[-1], hours) + 1, hours)
    if tails is None or tails.top.shape[1] < keep:
        tails = source_tails(background, keep)
    statistics = _statistics_from(tails, table, background, keep)
    pairs = _screen(table, background, keep, touch_factor, np.arange(count), statistics)
    progress(f"hourly headroom: {pairs.row.size:,} (limit, bus) pairs of {count:,} buses kept for {hours:,} hours")
    lowest = np.full((count, keep), np.inf)
    lowest_hour = np.full((count, keep), -1, dtype=np.int64)
    for who, minima in _hourly_minima(table, background, pairs, touch_factor, progress):
        lowest[who], lowest_hour[who] = _smallest(minima, keep)
    m = np.array([allowed_hours(p, hours) for p in levels])
    capacity = lowest[:, m]                                          # (H-3)
    below = lowest[:, None, :] < capacity[:, :, None]               # (candidates, levels, K)
    shortfall = np.where(below, capacity[:, :, None] - lowest[:, None, :], 0.0).sum(axis=2)
    usable = np.isfinite(capacity) & (capacity > 0)
    energy = np.divide(shortfall, capacity * hours, out=np.zeros_like(capacity), where=usable)   # (H-4)
    binding_hour = np.where(np.isfinite(capacity), lowest_hour[:, m], -1)
    rows = _setting_rows(table, background, pairs, binding_hour, touch_factor)
    names = tuple(tuple(table.name(int(r)) if r >= 0 else "" for r in per_bus) for per_bus in rows.tolist())
    return Headroom(levels, hours, capacity, below.sum(axis=2) / hours, energy, binding_hour, names, lowest,
                    int(pairs.row.size), _overloaded(table, background, statistics[0]))


def _overloaded(table: LimitTable, background: HourlyBackground, room_min: np.ndarray) -> tuple[tuple[str, int], ...]:
    """The rows whose room is negative in some hour, and in how many."""
    broken = np.flatnonzero(room_min < 0)
    hours = (background.rooms(table, broken) < 0).sum(axis=1) if broken.size else np.zeros(0, dtype=int)
    return tuple((table.name(int(r)), int(h)) for r, h in zip(broken.tolist(), hours.tolist()))


def _smallest(minima: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``keep`` smallest values, ascending (ties by hour), and their hours."""
    hours = minima.shape[1]
    if keep < hours:
        order = np.argpartition(minima, keep - 1, axis=1)[:, :keep]
    else:
        order = np.tile(np.arange(hours), (minima.shape[0], 1))
    values = np.take_along_axis(minima, order, axis=1)
    ranked = np.lexsort((order, values), axis=1)
    return np.take_along_axis(values, ranked, axis=1), np.take_along_axis(order, ranked, axis=1)


def headroom_series(table: LimitTable, background: HourlyBackground, columns: Sequence[int], *,
                    touch_factor: float) -> np.ndarray:
    """(H-2) in every hour for a few candidates (by column), exact: (len(columns), T). The screen
    (H-5) with K = T keeps every row that can set any hour; for duration curves."""
    columns = np.asarray(columns, dtype=int)
    series = np.full((columns.size, background.hours), np.inf)
    if columns.size == 0:
        return series
    pairs = _screen(table, background, background.hours, touch_factor, columns)
    where = {int(c): i for i, c in enumerate(columns.tolist())}
    for who, minima in _hourly_minima(table, background, pairs, touch_factor, lambda _: None):
        series[[where[int(k)] for k in who]] = minima
    return series


# ------------------------------------------------------------------------------- at once (H-7)
@dataclass(frozen=True, eq=False)
class JointHeadroom:
    """What the candidates take at once, per level (``levels`` order): the capacity study's nested
    tiers on the hours (H-7). ``capacity_mw`` is (candidates, levels); ``request_mw`` the one
    request every candidate made; ``capped`` the buses whose allocation reached it at some level
    (then the total is a floor of what the network takes)."""

    levels: tuple[float, ...]
    capacity_mw: np.ndarray
    request_mw: float
    capped: tuple[int, ...]

    @property
    def total_mw(self) -> np.ndarray:
        return self.capacity_mw.sum(axis=0)


def joint_headroom(network: Network, scenarios: Scenarios, buses: Sequence[int], levels: Sequence[float], *,
                   request_mw: float, touch_factor: float, solver: str = "highs",
                   rows: tuple[LimitTable, ShiftRows] | None = None,
                   progress: Progress = lambda _: None) -> JointHeadroom:
    """(H-7), docs/models/headroom.md#eq-h-7: every bus of ``buses`` asks ``request_mw`` at once;
    the capacity study on the hours as equally likely ``scenarios`` (net withdrawal) allocates,
    for level 0, against every hour (CVaR at a level below 1/T is the worst hour) and, for p > 0,
    with CVaR_p of each limit's background: a stand-in for "curtailed in at most p of the hours"
    that is conservative per limit (CVaR_p >= the quantile), not per bus (a bus that touches
    several limits may be curtailed in their hours together). Tiers nest (each holds the one
    before), the draw set is partial (whatever subset connects, drawing anywhere up to its
    capacity). ``rows``: the limit rows of these scenarios and buses, when the caller has them."""
    from grid.capacity.inputs.candidates import make_candidates
    from grid.capacity.study import MIN_RISK, capacity_study

    levels = check_levels(levels)
    candidates = make_candidates(network, {bus: request_mw for bus in buses})
    risks = [max(p, MIN_RISK) for p in levels]
    study = capacity_study(network, scenarios, candidates, risks, solver=solver, touch_factor=touch_factor,
                           progress=progress, compare_full_draw=False, rows=rows)
    capacity = np.column_stack([tier.vector(candidates) for tier in study.tiers])
    at_request = np.any(capacity >= request_mw * (1 - 1e-9), axis=1)
    return JointHeadroom(levels, capacity, float(request_mw),
                         tuple(b for b, hit in zip(candidates.buses, at_request.tolist()) if hit))
