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
from typing import Callable, Sequence

import numpy as np
import scipy.sparse as sp

from grid.capacity.inputs.candidates import Candidates
from grid.capacity.inputs.criteria import COEFFICIENT_ZERO, FirmBox
from grid.capacity.matrices.csr_rows import (
    csr_entries_where,
    csr_from_dense,
    extended,
    interleaved,
    stacked,
)
from grid.capacity.matrices.shift_factors import FlowModel
from grid.capacity.rows.limits import (
    LOWER,
    UPPER,
    LimitTable,
    _tails,
    carry_row_caches,
    in_threads,
    line_limit_name,
)
from grid.capacity.rows.standalone import Standalone, least_ratios
from grid.errors import GridError
from grid.load.scenarios import Scenarios
from grid.risk_measures import cvar_both_ways
from grid.threads import limit_blas, usable_cores

# A pair joins the LP when its worst-case post-outage flow comes within this share of its rating.
SCREEN_MARGIN = 0.01
# 1 - phi_kk below this: the outage islands part of the network.
ISLANDING = 1e-6
# The dense shift factors (lines x buses, 8 bytes each) that N-1 screening holds at once.
MAX_DENSE_BYTES = 1_500_000_000
# The intact network's scenario flows (lines x scenarios) are kept whole up to this size.
FLOW_CACHE_BYTES = 512 * 2**20
# Candidate groups of the stand-alone screen (C-23): more groups, tighter bounds, more passes.
# On ACTIVSg2000 at 2,000 scenarios the sweep after every outage took 62 s with 8 groups, 22 s
# with 32 and 23 s with 128 (the screen's own passes then cost what they save).
_GROUPS = 32
# Coefficients (2 rows per pair x candidates) that the screened pairs may add to the LP's table:
# about 0.5 GB of sparse rows, with their scenario tails beside them.
MAX_PAIR_ENTRIES = 40_000_000
# A pass's room is the pairs whose rows take 1 / _PASS_SHARE of MAX_PAIR_ENTRIES (555 pairs at
# 1,125 candidates). On ACTIVSg2000 at its forecast peak the LP needs about a thousand pairs in
# all; passes of an eighth (4,444 pairs) made the table several times larger than that, and its
# scenario tails and rows took longer than the passes a smaller room adds.
_PASS_SHARE = 64
# Outages whose pair bounds (lines x outages) are formed at once.
_OUTAGE_BLOCK = 256
# Pairs the screen evaluates exactly in one go (their rows of shift factors: 4096 x buses).
_SCREEN_BATCH = 4096
# Outages evaluated for the stand-alone capacity between two screens: each screen starts from the
# capacities found so far, which fall as outages are evaluated, so smaller blocks skip more pairs.
_STANDALONE_BLOCK = 32


@dataclass(frozen=True, eq=False)
class OutageSet:
    """Every single-branch outage of one network: the LODFs of those that keep it connected."""

    studied: np.ndarray          # line positions whose outage is studied
    islanding: tuple[str, ...]   # names of the lines whose outage islands the network
    lodf: np.ndarray             # (lines, studied): LODF[l, j] for the outage of studied[j]
    rows: np.ndarray             # (lines, buses): the slack model's shift factors h_l
    emergency_mw: np.ndarray     # (lines,) the rating after an outage

    def on(self, candidates: Candidates) -> np.ndarray:
        """(lines, candidates): ``rows`` on the candidates' columns, made once for the candidates
        asked last (every screen of a study asks for the same ones). Read-only."""
        kept = self.__dict__.get("_on")
        if kept is None or not np.array_equal(kept[0], candidates.positions):
            on = self.rows[:, candidates.positions]
            on.flags.writeable = False
            kept = (np.array(candidates.positions), on)
            self.__dict__["_on"] = kept
        return kept[1]

    def extremes(self, box: FirmBox, offset_mw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per line of the intact network, whose flow is ``rows`` . p + ``offset_mw``: the largest
        flow and reverse flow over ``box``, made once for the box asked last (a tier's screens
        ask for the scenarios' box each time, and it reads every line's whole row). Read-only."""
        key = (box.lower, box.upper, box.budget, offset_mw)
        kept = self.__dict__.get("_extremes")
        if kept is None or not _same_key(kept[0], key):
            made = box.extremes(self.rows, offset_mw)
            for array in made:
                array.flags.writeable = False
            kept = (tuple(np.array(part) if isinstance(part, np.ndarray) else part for part in key), made)
            self.__dict__["_extremes"] = kept
        return kept[1]


def _same_key(kept: tuple, key: tuple) -> bool:
    """Whether two keys of arrays and numbers hold the same values."""
    return all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b for a, b in zip(kept, key))


class ScenarioFlows:
    """Each line's background flow on the intact network in every scenario (lines x scenarios,
    with the phase shifters' flows), by lines; kept whole when it fits FLOW_CACHE_BYTES, else
    made again for each block asked for. A pair's post-outage flows are f_l + LODF_lk f_k (C-21).
    Stored line by line (each line's scenarios contiguous): a pair's flows then read two rows, and
    their tails partition along rows, both about three times as fast as by columns."""

    def __init__(self, outages: OutageSet, flows: FlowModel, scenarios: Scenarios) -> None:
        self._rows, self._offset, self._samples = outages.rows, flows.offset_mw, scenarios.samples_mw
        self.count = scenarios.count
        n_line = outages.rows.shape[0]
        self._whole = None
        if self.count * n_line * 8 <= FLOW_CACHE_BYTES:
            whole = np.empty((n_line, self.count))
            # Made before any thread of the study starts: every core's BLAS thread may work on it.
            # Each block of lines is written where it is kept, and its rows of H are read in place.
            with limit_blas(usable_cores()):
                for chunk in self.chunks(n_line):
                    np.matmul(self._rows[chunk], self._samples.T, out=whole[chunk])
                    whole[chunk] += self._offset[chunk][:, None]
            self._whole = whole

    def _made(self, lines: np.ndarray) -> np.ndarray:
        # Lines x scenarios straight from the product: each line's scenarios contiguous, no turn.
        return self._rows[lines] @ self._samples.T + self._offset[lines][:, None]

    def lines(self, lines: np.ndarray) -> np.ndarray:
        """(lines, scenarios) flows of these line positions (an array of positions), as a new
        array the caller may overwrite."""
        return self._whole[lines] if self._whole is not None else self._made(lines)

    def after(self, lines: np.ndarray, out: np.ndarray | int, factor: np.ndarray) -> np.ndarray:
        """(pairs, scenarios) flows of line ``lines[i]`` after the outage of ``out[i]`` (or of the
        one line ``out`` for all)."""
        if np.ndim(out) == 0:
            rows = self.lines(np.concatenate([lines, [int(out)]]))
            return rows[:-1] + factor[:, None] * rows[-1]
        if self._whole is not None:
            return _plus_scaled(self._whole[lines], factor, self._whole[out])
        both, where = np.unique(np.concatenate([lines, out]), return_inverse=True)
        made = self._made(both)
        return _plus_scaled(made[where[:lines.size]], factor, made[where[lines.size:]])

    def chunks(self, count: int) -> list[slice]:
        """Slices of ``count`` lines or pairs whose flows (count x scenarios, with a copy or two)
        stay within FLOW_CACHE_BYTES / 4."""
        size = max(1, FLOW_CACHE_BYTES // (4 * 8 * max(self.count, 1)))
        return [slice(start, min(start + size, count)) for start in range(0, count, size)]


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


def post_outage_rows(outages: OutageSet, flows: FlowModel, lines: np.ndarray, out: np.ndarray | int,
                     factor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shift factors (pairs x buses) and phase-shifter flows of line ``lines[i]`` after the outage
    of ``out[i]`` (or of one line ``out`` for all), ``factor`` their LODFs (C-21):
    h_l + LODF_lk h_k, offset_l + LODF_lk offset_k."""
    return (_plus_scaled(outages.rows[lines], factor, outages.rows[out]),
            flows.offset_mw[lines] + factor * flows.offset_mw[out])


def _plus_scaled(rows: np.ndarray, factor: np.ndarray, other: np.ndarray) -> np.ndarray:
    """rows + factor[:, None] * other, in ``other``'s storage when it is a fresh copy (a fancy
    index): the same numbers (both operations commute exactly) with one temporary less, half the
    time on the N-1 screen's blocks of pairs x scenarios."""
    if other.shape == rows.shape and other.base is None:
        scaled = other
        scaled *= factor[:, None]
    else:  # one line's row for all pairs, or a view of stored rows: a new array
        scaled = factor[:, None] * other
    scaled += rows
    return scaled


def _background_extremes(outages: OutageSet, flows: FlowModel, box: FirmBox) -> tuple[np.ndarray, np.ndarray]:
    """Per line, intact network: the largest flow and the largest reverse flow of the background
    over ``box``."""
    return outages.extremes(box, flows.offset_mw)


def _line_extremes(intact: _Intact, capacity: np.ndarray, draw: str) -> tuple[np.ndarray, np.ndarray]:
    """Per line, intact network: the largest flow and the largest reverse flow that the background
    set and the candidates' draws can make, the loads' term at its worst draw."""
    load_up, load_down = _load_terms(intact.on, capacity, draw)
    return intact.up + load_up, intact.down + load_down


def _load_terms(on: np.ndarray, capacity: np.ndarray, draw: str) -> tuple[np.ndarray, np.ndarray]:
    """Per row of coefficients ``on`` (rows x candidates): the most the candidates drawing
    ``capacity`` add to the flow and to the reverse flow (a+ . c and a- . c under the partial draw
    set; a . c and -a . c in full)."""
    if draw == "partial":
        # a- = a+ - a exactly (0 - a or a - a), in a+'s storage: one temporary, not three.
        part = np.maximum(on, 0.0)
        up = part @ capacity
        return up, np.subtract(part, on, out=part) @ capacity
    load = on @ capacity
    return load, -load


def _pair_bounds(up: np.ndarray, down: np.ndarray, lodf: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper bounds of the largest post-outage flow and reverse flow of every line (rows) after
    each outage in ``out`` (columns, with their LODF columns): f_l + LODF f_k is at most
    max f_l + LODF+ max f_k + LODF- max(-f_k) (C-22), since a maximum of a sum is at most the sum
    of the maxima and the same corner of the box need not serve both."""
    return outage_bounds(up[:, None], down[:, None], up[out], down[out], lodf)


def outage_bounds(up: np.ndarray, down: np.ndarray, up_out: np.ndarray, down_out: np.ndarray,
                  lodf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """outage_bound in both directions at once, for arrays that broadcast (a block of lines x
    outages, or pairs side by side): LODF+ and LODF- made once (LODF- = LODF+ - LODF exactly) and
    each sum built in place, the same numbers as outage_bound in half the passes."""
    plus = np.maximum(lodf, 0.0)
    minus = plus - lodf
    bounds = []
    for same, same_out, other_out in ((up, up_out, down_out), (down, down_out, up_out)):
        bound = plus * same_out
        bound += same
        bound += minus * other_out
        bounds.append(bound)
    return bounds[0], bounds[1]


def outage_bound(same: np.ndarray, same_out: np.ndarray, other_out: np.ndarray, lodf: np.ndarray) -> np.ndarray:
    """(C-22), element by element: the largest flow of a line in one direction (``same``), given
    the largest flows of the line out in the same and the other direction, bounds the line's
    largest flow in that direction after the outage."""
    return same + np.maximum(lodf, 0.0) * same_out + np.maximum(-lodf, 0.0) * other_out


# Per line: a bound on its background's statistic in each direction (flow, reverse flow).
LineCap = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True, eq=False)
class _Intact:
    """What a screen's bounds and exact evaluations read of the intact network, made once per
    screen: each line's shift factors on the candidates, and a bound on its background's
    statistic in each direction (the largest flow and reverse flow over the box, or a tier's
    CVaR where that is smaller: ``capped``)."""

    on: np.ndarray                      # (lines, candidates)
    up: np.ndarray                      # (lines,)
    down: np.ndarray                    # (lines,)
    point: bool                         # the box is one state (the forecast peak), nothing capped
    capped: bool = False

    @classmethod
    def of(cls, outages: OutageSet, flows: FlowModel, candidates: Candidates, box: FirmBox,
           line_cap: LineCap | None = None) -> _Intact:
        up, down = _background_extremes(outages, flows, box)
        if line_cap is not None:
            up, down = np.minimum(up, line_cap[0]), np.minimum(down, line_cap[1])
        return cls(outages.on(candidates), up, down, box.is_point and line_cap is None, line_cap is not None)

    def after(self, outages: OutageSet, flows: FlowModel, candidates: Candidates, box: FirmBox, lines: np.ndarray,
              out: np.ndarray, factor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per pair of an uncapped screen (a capped one reads _capped_terms): its shift factors on
        the candidates, and the background's largest flow and reverse flow after the outage
        (C-21). At one state it is the flow there, linear in the shift factors, f_l + LODF f_k, so
        only the candidates' columns are formed; a box with a spread needs each pair's whole row
        (the spread reads |h| of every bus)."""
        if self.point:
            flow = self.up[lines] + factor * self.up[out]
            return _plus_scaled(self.on[lines], factor, self.on[out]), flow, -flow
        h, offset = post_outage_rows(outages, flows, lines, out, factor)
        return (h[:, candidates.positions], *box.extremes(h, offset))

    def caps(self, lines: np.ndarray, out: np.ndarray, factor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(C-22) on the capped lines' statistics, per pair and direction (C-29): CVaR is
        subadditive and positively homogeneous, so that bounds the pair's CVaR as the box's
        extreme does."""
        return outage_bounds(self.up[lines], self.down[lines], self.up[out], self.down[out], factor)


def screen(outages: OutageSet, flows: FlowModel, candidates: Candidates,
           capacity: np.ndarray, draw: str, box: FirmBox, known: set[tuple[int, int]],
           line_cap: LineCap | None = None) -> list[tuple[int, int]]:
    """The (line, outage) pairs not in ``known`` whose worst-case post-outage flow, with the
    candidates drawing ``capacity`` (in full, or each at its worst under the partial draw set),
    comes within SCREEN_MARGIN of the emergency rating, in either direction; past twice a pass's
    room (_pass_room), the room's worth of the worst of them (_worst_first). For a tier,
    ``line_cap`` is each line's CVaR of its flow and of its reverse flow: a pair's background
    term is then the least of two bounds on its CVaR (_capped_terms), and a pair whose CVaR
    cannot come near is left out even where the box's worst case would.

    The bound (C-22) clears most pairs with one multiply-add each; only the pairs it cannot clear
    are evaluated exactly, in descending order of their bound over the rating: once the pass's
    room is full of pairs whose exact share is above every bound left, no pair left can change
    what the pass adds, and none is evaluated (at ACTIVSg2000's forecast peak the first pass
    finds 295,143 pairs near and keeps 555)."""
    limit = outages.emergency_mw
    near = np.where(np.isfinite(limit), (1.0 - SCREEN_MARGIN) * limit, np.inf)
    intact = _Intact.of(outages, flows, candidates, box, line_cap)
    maybe = _maybe_pairs(outages, flows, candidates, capacity, draw, box, near, intact)
    # Largest bound first; equal bounds in outage order, then line order.
    order = np.lexsort((maybe.line, maybe.column, -maybe.share))
    room = _pass_room(len(candidates))
    parts: list[_Near] = []
    count = 0
    for first in range(0, order.size, _SCREEN_BATCH):
        stop = min(first + _SCREEN_BATCH, order.size)
        batch = order[first:stop]
        part = _near_pairs(outages, flows, candidates, capacity, draw, box, maybe.line[batch],
                           maybe.column[batch], near, known, intact)
        parts.append(part)
        count += part.line.size
        # Pairs past the point where a pair at a time would have stopped have shares at most their
        # bound, below every share in the room: they change nothing.
        if count > 2 * room and stop < order.size and _room_beats(_kth_share(parts, room), maybe.share[order[stop]]):
            break
    found = _Near.joined(parts)
    # In outage order, then line order, as a pass over every outage finds them.
    ranked = np.lexsort((found.line, found.column))
    return _worst_first(list(zip(found.line[ranked].tolist(), found.outage[ranked].tolist(),
                                 found.share[ranked].tolist())), len(candidates))


@dataclass(frozen=True)
class _Maybe:
    """The pairs whose bound (C-22) reaches their threshold, by outage column, then line: each
    pair's line, outage column and bound as a share of its line's threshold."""

    line: np.ndarray
    column: np.ndarray
    share: np.ndarray


@dataclass(frozen=True)
class _Near:
    """Pairs found within the margin, not yet known: line, outage column, outage (the line out)
    and worst flow as a share of the threshold."""

    line: np.ndarray
    column: np.ndarray
    outage: np.ndarray
    share: np.ndarray

    @classmethod
    def joined(cls, parts: Sequence[_Near]) -> _Near:
        if not parts:
            empty = np.zeros(0, dtype=int)
            return cls(empty, empty, empty, np.zeros(0))
        return cls(*(np.concatenate([getattr(part, name) for part in parts])
                     for name in ("line", "column", "outage", "share")))


def _kth_share(parts: Sequence[_Near], room: int) -> float:
    """The room-th largest share found so far (there are more than room)."""
    shares = np.concatenate([part.share for part in parts])
    return float(np.partition(shares, shares.size - room)[shares.size - room])


def _maybe_pairs(outages: OutageSet, flows: FlowModel, candidates: Candidates, capacity: np.ndarray, draw: str,
                 box: FirmBox, near: np.ndarray, intact: _Intact | None = None) -> _Maybe:
    """The pairs whose bound (C-22) leaves their line near its rating, with the bound over the
    rating.

    The bound is at most max(F+_l, F-_l) + |LODF_lk| max(F+_k, F-_k), one multiply per pair; only
    the pairs this reaches the threshold with have (C-22) itself formed, with the same numbers as
    forming it for every pair (most pairs are far from their rating)."""
    up, down = _line_extremes(intact or _Intact.of(outages, flows, candidates, box), capacity, draw)
    limit = outages.emergency_mw
    # The bound is exact when LODF = 0; a hair of slack keeps rounding from clearing a pair.
    slack = 1e-9 * np.maximum(1.0, np.where(np.isfinite(limit), np.abs(limit), 1.0))
    threshold = near - slack
    high = np.maximum(up, down)
    swing = np.maximum(high, 0.0)             # F+_k + F-_k >= 0, so the larger is never below 0
    # What |LODF_lk| max(F+_k, F-_k) must reach for line l to come near (a margin for rounding).
    gap = threshold - high
    gap -= 1e-9 * (np.abs(threshold) + np.abs(high) + 1.0)
    lines, columns, shares = [], [], []
    for start in range(0, outages.studied.size, _OUTAGE_BLOCK):
        block = np.arange(start, min(start + _OUTAGE_BLOCK, outages.studied.size))
        out = outages.studied[block]
        lodf = outages.lodf[:, block]
        reach = np.abs(lodf)
        reach *= swing[out]
        column, line = np.nonzero((reach > gap[:, None]).T)   # by outage, lines ascending
        factor = lodf[line, column]
        bound = np.maximum(*outage_bounds(up[line], down[line], up[out[column]], down[out[column]], factor))
        maybe = (bound > threshold[line]) & (line != out[column])
        lines.append(line[maybe])
        columns.append(block[column[maybe]])
        shares.append(bound[maybe] / near[line[maybe]])
    if not lines:
        return _Maybe(np.zeros(0, dtype=int), np.zeros(0, dtype=int), np.zeros(0))
    return _Maybe(np.concatenate(lines), np.concatenate(columns), np.concatenate(shares))


def _room_beats(kth: float, bound: float) -> bool:
    """Whether the room-th largest share found is strictly above ``bound`` (with a margin for the
    bound's rounding), so that no pair whose share is at most ``bound`` can enter the room."""
    return kth > bound + 1e-9 * max(1.0, abs(bound))


def _pass_room(candidates: int) -> int:
    """How many pairs one pass adds when more come near than it takes whole: those whose rows
    take a share (1 / _PASS_SHARE) of MAX_PAIR_ENTRIES."""
    return max(1, MAX_PAIR_ENTRIES // (_PASS_SHARE * max(candidates, 1)))


def _worst_first(found: list[tuple[int, int, float]], candidates: int) -> list[tuple[int, int]]:
    """The pairs a pass adds: all of them when they are at most twice the pass's room
    (_pass_room); else the room's worth, those that load their line most (flow over rating)
    first. The intact network's allocation can overload hundreds of thousands of pairs at once
    (ACTIVSg2000 at its forecast peak: 295,143); the worst are what the LP needs first, and the
    next pass finds any pair still near. A handful more than the room is taken whole, not left
    for a pass of its own."""
    room = _pass_room(candidates)
    if len(found) <= 2 * room:
        return [(l, k) for l, k, _ in found]
    order = sorted(range(len(found)), key=lambda i: -found[i][2])[:room]
    return [found[i][:2] for i in sorted(order)]


def _near_pairs(outages: OutageSet, flows: FlowModel, candidates: Candidates, capacity: np.ndarray, draw: str,
                box: FirmBox, lines: np.ndarray, column: np.ndarray, near: np.ndarray, known: set[tuple[int, int]],
                intact: _Intact | None = None) -> _Near:
    """Of the pairs (lines[i], outage column[i]), exactly: those within the margin, not yet
    known, each with its worst flow as a share of the rating."""
    out = outages.studied[column]
    intact = intact or _Intact.of(outages, flows, candidates, box)
    factor = outages.lodf[lines, column]
    if intact.capped:
        high, reverse, load_up, load_down = _capped_terms(intact, outages, flows, box, capacity, draw, near,
                                                          lines, out, factor)
    else:
        on, high, reverse = intact.after(outages, flows, candidates, box, lines, out, factor)
        load_up, load_down = _load_terms(on, capacity, draw)
    high, reverse = high + load_up, reverse + load_down
    hit = np.flatnonzero((high > near[lines]) | (reverse > near[lines]))
    if known:
        hit = hit[np.array([(l, k) not in known for l, k in zip(lines[hit].tolist(), out[hit].tolist())], dtype=bool)]
    share = np.maximum(high[hit], reverse[hit]) / near[lines[hit]]
    return _Near(lines[hit], column[hit], out[hit], share)


def _capped_terms(intact: _Intact, outages: OutageSet, flows: FlowModel, box: FirmBox, capacity: np.ndarray,
                  draw: str, near: np.ndarray, lines: np.ndarray, out: np.ndarray, factor: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A tier's screen's background terms (the least of the box's extreme and the cap, C-29) and
    load terms per pair. The box's extreme, which reads each pair's whole row, is formed only for
    the pairs whose cap with their load term comes near: for the others the cap stands in, and
    they are not near either way. The pairs found are those of forming it for every pair; their
    shares may differ in the last bits (the box's product over fewer rows), as they do between
    batch sizes. The candidates' coefficients come from the intact rows on them."""
    on = _plus_scaled(intact.on[lines], factor, intact.on[out])
    load_up, load_down = _load_terms(on, capacity, draw)
    high, reverse = intact.caps(lines, out, factor)
    need = np.flatnonzero((high + load_up > near[lines]) | (reverse + load_down > near[lines]))
    if need.size:
        h, offset = post_outage_rows(outages, flows, lines[need], out[need], factor[need])
        box_high, box_reverse = box.extremes(h, offset)
        high[need], reverse[need] = np.minimum(box_high, high[need]), np.minimum(box_reverse, reverse[need])
    return high, reverse, load_up, load_down


def _most_pairs(candidates: int) -> int:
    """The most (line, outage) pairs a table holds: an upper and a lower row of ``candidates``
    coefficients each, within MAX_PAIR_ENTRIES."""
    return MAX_PAIR_ENTRIES // (2 * max(candidates, 1))


def check_pair_rows(pairs: int, candidates: int, emergency_factor: float) -> None:
    """Refuse more screened pairs than the table can hold (_most_pairs), saying what to change."""
    if candidates and pairs > _most_pairs(candidates):   # rows of no coefficient take no room
        raise GridError(
            f"N-1: {pairs:,} (line, outage) pairs come within {SCREEN_MARGIN:.0%} of their emergency rating, too many "
            f"rows for the capacity LP ({2 * pairs:,} rows x {candidates:,} candidates, above the ceiling of "
            f"{MAX_PAIR_ENTRIES:,} coefficients): the background set overloads the network after outages "
            f"(emergency_factor = {emergency_factor:g}); study the forecast peak instead of the box, raise "
            "[security] emergency_factor, or use criterion = 'n-0'")


def with_pairs(table: LimitTable, outages: OutageSet, flows: FlowModel,
               candidates: Candidates, pairs: list[tuple[int, int]], *, box: FirmBox,
               touch_factor: float, with_scenarios: bool, background: ScenarioFlows) -> LimitTable:
    """``table`` with an upper and a lower row for each (line, outage) pair appended: their
    coefficients h_l + LODF h_k on the candidates, worst case and scenario tails (as many as the
    table keeps per row). The pairs' scenario flows combine the intact network's (C-21), so a
    pair costs one multiply-add per scenario, not a product with every bus."""
    if not pairs:
        return table
    column = {int(k): j for j, k in enumerate(outages.studied)}
    lines = np.array([l for l, _ in pairs], dtype=int)
    out = np.array([k for _, k in pairs], dtype=int)
    factor = np.array([outages.lodf[l, column[k]] for l, k in pairs])
    h, offset = post_outage_rows(outages, flows, lines, out, factor)
    worst = np.column_stack(box.extremes(h, offset)).reshape(-1)
    keep = max(table.tail_mw.shape[1], 1)
    # One chunk at a time: two threads were no faster (the work is memory-bound), and held twice the memory.
    parts = [_tails(background.after(lines[chunk], out[chunk], factor[chunk]), keep, with_scenarios, scratch=True)
             for chunk in background.chunks(len(pairs))]
    top, top_i, low, low_i = (np.vstack([part[i] for part in parts]) for i in range(4))
    tails = interleaved(top, -low)
    tail_idx = interleaved(top_i, low_i)
    on = np.where(np.abs(h[:, candidates.positions]) < COEFFICIENT_ZERO, 0.0, h[:, candidates.positions])
    coef = csr_from_dense(interleaved(on, -on))
    # A coefficient at or above touch_factor (> COEFFICIENT_ZERO) is a stored one: read the flags
    # off the stored values instead of converting a second dense array.
    touch = csr_entries_where(coef, coef.data >= touch_factor)
    names = [flows.network.lines[k].name for k in out]
    return _appended(table, coef, touch, worst, tails, tail_idx, lines, out, factor, names, outages.emergency_mw[lines],
                     flows)


def _appended(table: LimitTable, coef: sp.csr_matrix, touch: sp.csr_matrix, worst: np.ndarray, tails: np.ndarray,
              tail_idx: np.ndarray, lines: np.ndarray, out: np.ndarray, factor: np.ndarray, names: list[str],
              limits: np.ndarray, flows: FlowModel) -> LimitTable:
    """The table with the new rows (each pair: upper, then lower) after its own, in buffers with
    room for as many pair rows as check_pair_rows lets a study have: no later pass copies it."""
    count = len(table)
    pair_rows = 0 if table.outage is None else int(np.sum(table.outage >= 0))
    rows_most = count - pair_rows + 2 * _most_pairs(coef.shape[1])
    nnz_most = table.coef.nnz + MAX_PAIR_ENTRIES
    outage = table.outage if table.outage is not None else np.full(count, -1)
    lodf = table.lodf if table.lodf is not None else np.zeros(count)
    outage_names = table.outage_names or ("",) * count
    grown = dataclasses.replace(
        table,
        kinds=table.kinds + (UPPER, LOWER) * len(lines),
        labels=table.labels + tuple(name for l in lines for name in (flows.network.lines[l].name,) * 2),
        limit_mw=np.concatenate([table.limit_mw, np.repeat(limits, 2)]),
        line=np.concatenate([table.line, np.repeat(lines, 2)]),
        bus=np.concatenate([table.bus, np.full(2 * len(lines), -1)]),
        touch=extended(table.touch, touch, (rows_most, nnz_most)),
        coef=extended(table.coef, coef, (rows_most, nnz_most)),
        affected=np.concatenate([table.affected, np.diff(coef.indptr) > 0]),
        worst_mw=np.concatenate([table.worst_mw, worst]),
        tail_mw=stacked(table.tail_mw, tails[:, :table.tail_mw.shape[1]], rows_most),
        tail_scenario=stacked(table.tail_scenario, tail_idx[:, :table.tail_mw.shape[1]], rows_most),
        outage=np.concatenate([outage, np.repeat(out, 2)]),
        lodf=np.concatenate([lodf, np.repeat(factor, 2)]),
        outage_names=outage_names + tuple(name for name in names for _ in range(2)),
    )
    carry_row_caches(table, grown, coef, (rows_most, nnz_most))
    return grown


def standalone_after_outages(outages: OutageSet, flows: FlowModel, candidates: Candidates,
                             box: FirmBox, levels: tuple[float, ...], touch_factor: float,
                             intact: Sequence[Standalone], background: ScenarioFlows) -> list[Standalone]:
    """(C-20) after every studied outage, firm (worst case over its background set) then each tier
    (CVaR of the scenarios), each the minimum over the outages, where it is below ``intact`` (the
    intact network's, per model; elsewhere infinity). A pair that provably cannot go below the
    capacities known so far (``intact``, tightened by the outages already evaluated) for any
    candidate (C-23) is not evaluated; the screen is made again every _STANDALONE_BLOCK outages."""
    limit = outages.emergency_mw
    statistics = _intact_statistics(outages, flows, box, levels, background)
    on = outages.on(candidates)
    models = [Standalone(np.full(len(candidates), np.inf), ("",) * len(candidates)) for _ in intact]
    shared = {"outages": outages, "flows": flows, "candidates": candidates, "box": box, "levels": levels,
              "background": background, "touch_factor": touch_factor}
    for start in range(0, outages.studied.size, _STANDALONE_BLOCK):
        columns = np.arange(start, min(start + _STANDALONE_BLOCK, outages.studied.size))
        known = [np.minimum(mine.capacity_mw, found.capacity_mw) for mine, found in zip(intact, models)]
        wanted = _may_bind(on, known, statistics, limit, outages.studied[columns], outages.lodf[:, columns])
        # The block's outages side by side (their partitions are most of the sweep), folded in
        # outage order: the same capacities and binding limits as one outage at a time.
        block = _Block(statistics[1:], known)
        found = in_threads(_outage_least, shared, [(int(columns[j]), np.flatnonzero(wanted[:, j]), block)
                                                   for j in np.flatnonzero(wanted.any(axis=0))])
        for ratios, name in found:
            models = [model.tighter_by(least, first, name) for model, (least, first) in zip(models, ratios)]
    return models


@dataclass(frozen=True, eq=False)
class _Block:
    """What the sweep knows when a block of outages starts: per tier each intact line's CVaR of
    its flow and of its reverse flow, and per model (firm, then each tier) the stand-alone
    capacities found so far."""

    statistics: list[tuple[np.ndarray, np.ndarray]]
    known: list[np.ndarray]

    def exact_lines(self, coef: np.ndarray, rating: np.ndarray, lines: np.ndarray, k: int,
                    factor: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Which of ``lines`` (after outage k; ``coef`` their upper rows' coefficients, then their
        lower rows') need their scenario flows: those with a row whose room, bounded below by
        (C-29) on the lines' CVaRs, may still give some candidate less than it has
        (may_lower). Also each tier's rooms (upper rows, then lower), infinite on the lines that
        need none: their rows cannot lower a capacity (ties keep the earlier row), so they are
        left out as rows that count for no candidate."""
        need = np.zeros(lines.size, dtype=bool)
        bounded = []
        for (up, down), known in zip(self.statistics, self.known[1:]):
            room = np.tile(rating, 2) - np.concatenate(outage_bounds(up[lines], down[lines], up[k], down[k], factor))
            lowers = may_lower(coef, room, known)
            need |= lowers[:lines.size] | lowers[lines.size:]
            bounded.append(room)
        for room in bounded:
            room[np.tile(~need, 2)] = np.inf
        return need, bounded


def may_lower(coef: np.ndarray, room: np.ndarray, known: np.ndarray, slack: float = 0.0) -> np.ndarray:
    """Per row of ``coef`` (rows x candidates) and its room: whether room < known_b a_b for some
    candidate b, the room widened by ``slack`` (relative) so that a ratio room / a that rounds
    below known_b (C-20) is caught too; a room below zero counts. A candidate without a finite
    capacity yet (known = inf) is lowered by any row with a coefficient on it."""
    finite = np.isfinite(known)
    lowers = np.zeros(coef.shape[0], dtype=bool)
    if coef.shape[0] and finite.any():
        scaled = coef * known[None, :] if finite.all() else coef[:, finite] * known[finite][None, :]
        reach = scaled.max(axis=1)
        lowers = room < reach + slack * np.abs(reach)
    if coef.shape[0] and not finite.all():
        lowers |= (coef[:, ~finite] > COEFFICIENT_ZERO).any(axis=1)
    return lowers


def _outage_least(j: int, lines: np.ndarray, block: _Block, *, touch_factor: float, **data
                  ) -> tuple[list[tuple[np.ndarray, np.ndarray]], Callable[[int], str]]:
    """(C-20) of ``lines`` after outage ``j``, per model: least_ratios of its pair rows; and their
    names. Only the rows that may lower a capacity known when the block started are read
    (may_lower): the others give ratios at or above it, which change nothing."""
    coef, rooms, name = _pair_rows(j=j, lines=lines, block=block, **data)
    found = []
    for room, known in zip(rooms, block.known):
        rows = np.flatnonzero(may_lower(coef, room, known, slack=1e-9))
        least, first = least_ratios(coef[rows], room[rows], touch_factor)
        # Back to the outage's row numbers (its row count where no row sets a ratio).
        found.append((least, np.append(rows, coef.shape[0])[first]))
    return found, name


def _may_bind(on: np.ndarray, known: list[np.ndarray], statistics: list[tuple[np.ndarray, np.ndarray]],
              limit: np.ndarray, out: np.ndarray, lodf: np.ndarray) -> np.ndarray:
    """(lines, outages): the pairs after these outages (``lodf`` their columns) that may lower some
    candidate's capacity below ``known`` in some model (C-23)."""
    wanted = np.zeros(lodf.shape, dtype=bool)
    for (up, down), capacity in zip(statistics, known):
        bound_up, bound_down = _pair_bounds(up, down, lodf, out)
        wanted |= _CoefficientScreen(on, capacity).may_bind(limit[:, None] - bound_up, limit[:, None] - bound_down,
                                                            lodf, out)
    wanted[out, np.arange(out.size)] = False  # the line out of service carries nothing
    return wanted


def _intact_statistics(outages: OutageSet, flows: FlowModel, box: FirmBox,
                       levels: tuple[float, ...], background: ScenarioFlows) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per model (firm, then each tier), per line of the intact network: the background statistic
    of its flow and of its reverse flow (worst case over firm capacity's background set; CVaR_eps)."""
    rows = outages.rows
    firm = _background_extremes(outages, flows, box)
    tiers = [(np.empty(rows.shape[0]), np.empty(rows.shape[0])) for _ in levels]
    for chunk in background.chunks(rows.shape[0]):
        values = background.lines(np.arange(chunk.start, chunk.stop))
        for (up, down), both in zip(tiers, cvar_both_ways(values, levels)):
            up[chunk], down[chunk] = both
    return [firm, *tiers]


class _CoefficientScreen:
    """The stand-alone screen of one model (C-23). Candidates are grouped by their intact
    stand-alone capacity; within group g, a post-outage coefficient of line l after outage k is
    at most P_lg + |LODF_lk| A_kg (P: the group's largest positive coefficient on l; A: its
    largest |coefficient| on k), so a pair whose room is at least cmax_g times that leaves the
    whole group where it is."""

    def __init__(self, on: np.ndarray, capacity: np.ndarray) -> None:
        finite = np.isfinite(capacity)
        ranked = np.flatnonzero(finite)[np.argsort(capacity[finite], kind="stable")]
        groups = [g for g in np.array_split(ranked, min(_GROUPS, ranked.size)) if g.size] if ranked.size else []
        unbounded = np.flatnonzero(~finite)
        self._groups = [(float(capacity[g].max()), *self._extremes(on[:, g])) for g in groups]
        self._unbounded = self._extremes(on[:, unbounded]) if unbounded.size else None

    @staticmethod
    def _extremes(on: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.maximum(on, 0.0).max(axis=1), np.maximum(-on, 0.0).max(axis=1), np.abs(on).max(axis=1)

    def may_bind(self, room_up: np.ndarray, room_down: np.ndarray, lodf: np.ndarray, out: np.ndarray) -> np.ndarray:
        """(lines, outages): the pairs that may lower some candidate's capacity, given lower
        bounds of their rooms; a room that may be negative (a limit the background may break)
        always counts."""
        swing = np.abs(lodf)
        found = (room_up < 0.0) | (room_down < 0.0)
        for cmax, positive, negative, size in self._groups:
            # A hair of slack so that a pair the exact evaluation might find equal is evaluated.
            scale = cmax * (1.0 + 1e-9)
            found |= room_up < scale * (positive[:, None] + swing * size[out]) + 1e-9
            found |= room_down < scale * (negative[:, None] + swing * size[out]) + 1e-9
        if self._unbounded is not None:  # any positive coefficient can give such a candidate a limit
            positive, negative, size = self._unbounded
            found |= (positive[:, None] + swing * size[out] > 0.0) | (negative[:, None] + swing * size[out] > 0.0)
        return found


def _pair_rows(outages: OutageSet, flows: FlowModel, candidates: Candidates,
               box: FirmBox, levels: tuple[float, ...], background: ScenarioFlows, j: int,
               lines: np.ndarray, block: _Block) -> tuple[np.ndarray, list[np.ndarray], Callable[[int], str]]:
    """After outage ``j``, the upper then the lower limit of each of ``lines``: coefficients on the
    candidates, rooms per model, and the rows' names. A tier's rooms are exact (from the pairs'
    scenario flows) on the lines whose room bounded below by (C-29) could still lower a capacity,
    and infinite on the others, whose rows cannot (block.exact_lines): most pairs are spared their
    scenario flows and partitions, and the capacities and binding limits are the same."""
    k = int(outages.studied[j])
    factor = outages.lodf[lines, j]
    h, offset = post_outage_rows(outages, flows, lines, k, factor)
    on = h[:, candidates.positions]
    worst = np.concatenate(box.extremes(h, offset))
    rating = outages.emergency_mw[lines]
    coef = np.vstack([on, -on])
    need, bounded = block.exact_lines(coef, rating, lines, k, factor)
    exact = np.flatnonzero(need)
    if exact.size:
        after = background.after(lines[exact], k, factor[exact])
        for room, (up, down) in zip(bounded, cvar_both_ways(after, levels, scratch=True)):
            room[exact], room[lines.size + exact] = rating[exact] - up, rating[exact] - down
    rating = np.tile(rating, 2)
    rooms = [np.where(np.isfinite(rating), room, np.inf) for room in [rating - worst, *bounded]]
    network = flows.network

    def name(row: int) -> str:
        line = int(lines[row % lines.size])
        return line_limit_name(network.lines[line].name, UPPER if row < lines.size else LOWER, network.lines[k].name)

    return coef, rooms, name
