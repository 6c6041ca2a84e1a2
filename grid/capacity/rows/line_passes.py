"""Passes over every line of a network too large to hold its shift-factor rows
(docs/models/capacity.md#screened-lines).

On case_ACTIVSg70k H has 88,207 x 70,000 entries (49 GB) and its rows on the 32,460 load buses
23 GB: no pass may keep it. Two passes see every line without it:

- ``scenario_tails``: the background flows of a chunk of scenarios at a time, by angle solves
  (FlowModel.flows: one pair of sparse triangular solves per scenario, not a dense product with
  H), keeping per line the K largest and K smallest (what CVaR needs, limits.tail_size);
- ``column_pass``: the columns of H on a block of buses at a time (one solve per bus), giving per
  candidate the stand-alone capacity (C-20) of every model, per line each model's data-center
  term under the partial draw set (a+ . c for the upper limit, a- . c for the lower, at given
  capacities) and the box's spread |h| . half.

Each pass's blocks are independent (a BlockMap runs them in this process or on a cluster's
workers) and are reduced here in block order, so the answer does not depend on where they ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from grid.capacity.inputs.criteria import COEFFICIENT_ZERO
from grid.capacity.matrices.csr_rows import interleaved
from grid.capacity.matrices.shift_factors import flow_model
from grid.capacity.rows.limits import BlockMap, in_threads
from grid.capacity.rows.standalone import least_ratios
from grid.network.network import Network
from grid.threads import usable_cores

T = TypeVar("T")

# Scenarios whose line flows one block computes: 500 x 88,207 lines is 0.35 GB, and a block holds
# about six arrays that size (the angles, the flows, their partitions) on each core.
SCENARIO_CHUNK = 500
# Buses whose columns of H one block computes: 512 x 88,207 lines is 0.36 GB (each block holds
# about four arrays that size).
COLUMN_BLOCK = 512


def _runner(block_map: BlockMap | None, cluster_group: int = 8) -> tuple[BlockMap, int]:
    """The map the passes use and how many blocks it gets at once: a cluster's (``cluster_group``),
    or this process's threads (one block per core)."""
    if block_map is not None:
        return block_map, cluster_group
    return in_threads, max(1, usable_cores())


# ------------------------------------------------------------------------------ scenario tails
def scenario_chunk_tails(samples: np.ndarray, keep: int, *, network: Network,
                         lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One chunk of scenarios (rows of ``samples``, MW per bus): per line its ``keep`` largest
    background flows, descending, and its ``keep`` smallest, ascending (fewer when the chunk has
    fewer scenarios)."""
    flows = flow_model(network)
    values = flows.flows(samples.T)
    if lines.size != values.shape[0] or np.any(lines != np.arange(lines.size)):
        values = values[lines]
    values += flows.offset_mw[lines][:, None]
    return _largest(values, keep), _smallest(values, keep)


def _largest(values: np.ndarray, keep: int) -> np.ndarray:
    """The ``keep`` largest values of each row, descending."""
    count = values.shape[1]
    keep = min(keep, count)
    part = values if keep == count else np.partition(values, count - keep, axis=1)[:, count - keep:]
    return -np.sort(-part, axis=1)


def _smallest(values: np.ndarray, keep: int) -> np.ndarray:
    """The ``keep`` smallest values of each row, ascending."""
    count = values.shape[1]
    keep = min(keep, count)
    part = values if keep == count else np.partition(values, keep - 1, axis=1)[:, :keep]
    return np.sort(part, axis=1)


def scenario_tails(network: Network, lines: np.ndarray, samples: np.ndarray, keep: int,
                   block_map: BlockMap | None = None, progress=lambda _: None) -> tuple[np.ndarray, np.ndarray]:
    """Per line (in ``lines``' order): the ``keep`` largest background flows over all scenarios,
    descending, and the ``keep`` smallest, ascending: what limits._tails gives of the full
    (lines x S) flow matrix, a chunk of scenarios at a time. Each chunk's tails merge into the
    running ones in chunk order."""
    count = samples.shape[0]
    chunks = [(start, min(start + SCENARIO_CHUNK, count)) for start in range(0, count, SCENARIO_CHUNK)]
    # A chunk's tails are as large as its flows when K reaches the chunk (eps S >= the chunk), and a
    # cluster's results all arrive before any merges: two chunks at a time (eight killed the
    # study's process on ACTIVSg70k, 16 GB, with 10,000 scenarios).
    run, group = _runner(block_map, cluster_group=2)
    top = low = None
    # The chunks go in groups, so that the running tails absorb each group's results before the
    # next arrives (every chunk's tails at once would be S / chunk times their size).
    for first in range(0, len(chunks), group):
        mine = chunks[first:first + group]
        found = run(scenario_chunk_tails, {"network": network, "lines": lines},
                    [(samples[a:b], keep) for a, b in mine])
        for chunk_top, chunk_low in found:
            top = chunk_top if top is None else _largest(np.concatenate([top, chunk_top], axis=1), keep)
            low = chunk_low if low is None else _smallest(np.concatenate([low, chunk_low], axis=1), keep)
        progress(f"background flows and tails: {mine[-1][1]:,}/{count:,} scenarios")
    return top, low


# ------------------------------------------------------------------------------- column pass
@dataclass(frozen=True)
class ColumnFindings:
    """What a column pass found, reduced over its blocks.

    ``least`` and ``first`` (models x candidates): (C-20) per model and candidate, and the row of
    the interleaved line rows (2 l + 0 upper, 2 l + 1 lower, l a position in the pass's lines)
    that sets it (2 L when no line limits it). ``upper`` and ``lower`` (lines x capacity vectors):
    a+ . c and a- . c at each vector of capacities asked for. ``spread`` (lines,): |h| . half.
    ``reach`` (2 L,): each interleaved row's largest coefficient over the pass's buses (whether
    some bus touches it).
    """

    least: np.ndarray
    first: np.ndarray
    upper: np.ndarray
    lower: np.ndarray
    spread: np.ndarray
    reach: np.ndarray


def column_block(positions: np.ndarray, capacities: np.ndarray, half: np.ndarray, *, network: Network,
                 lines: np.ndarray, rooms: np.ndarray, touch_factor: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One block of buses (network positions): its columns of H on ``lines`` (one solve per
    bus), then (C-20) against each column of ``rooms`` (2 L x models, rows interleaved upper and
    lower), the partial draw set's terms at ``capacities`` (block buses x vectors) and the
    spread at ``half`` (block buses,), and each row's largest coefficient in the block."""
    flows = flow_model(network)
    unit = np.zeros((len(network.buses), positions.size))
    unit[positions, np.arange(positions.size)] = 1.0
    h = flows.flows(unit)
    del unit
    if lines.size != h.shape[0] or np.any(lines != np.arange(lines.size)):
        h = h[lines]
    magnitude = np.abs(h)
    # The coefficient rows zero the factorisation's round-off the same way (limits._line_rows).
    h[magnitude < COEFFICIENT_ZERO] = 0.0
    magnitude[magnitude < COEFFICIENT_ZERO] = 0.0
    # max(h, 0) = (|h| + h) / 2 and max(-h, 0) = (|h| - h) / 2: two products, no copies of h.
    along, across = h @ capacities, magnitude @ capacities
    upper, lower = (across + along) / 2.0, (across - along) / 2.0
    spread = magnitude @ half
    del magnitude
    reach = interleaved(h.max(axis=1), -h.min(axis=1))
    least = np.empty((rooms.shape[1], positions.size))
    first = np.empty((rooms.shape[1], positions.size), dtype=np.int64)
    if rooms.shape[1]:
        # Bus by bus: each arg-max then runs along contiguous memory (along a column of h it
        # took half of the pass's time on ACTIVSg70k).
        by_bus = np.ascontiguousarray(h.T)
        for m in range(rooms.shape[1]):
            least[m], first[m] = _least(by_bus, rooms[0::2, m], rooms[1::2, m], touch_factor)
    return least, first, upper, lower, spread, reach


def _least(by_bus: np.ndarray, room_up: np.ndarray, room_down: np.ndarray,
           touch_factor: float) -> tuple[np.ndarray, np.ndarray]:
    """(C-20) per bus over the upper rows (coefficient h, room ``room_up``) and the lower rows
    (-h, ``room_down``) of every line, interleaved as standalone.least_ratios reads them, and the
    first interleaved row that sets it; ``by_bus`` is H's columns as rows (buses x lines).

    A row with room > 0 gives room / a for a > 0: its least is the largest a / room, one product
    and one arg-max per direction (the value is then room / a of that row, as least_ratios
    divides). Rows with room <= 0 give 0 MW where they count (least_ratios' rule) and are few, so
    they are looked at alone; a column whose arg-max falls on a round-off coefficient is left to
    least_ratios itself."""
    n, n_lines = by_bus.shape
    least, first = np.full(n, np.inf), np.full(n, 2 * n_lines, dtype=np.int64)
    columns = np.arange(n)
    weighted = np.empty_like(by_bus)   # one buffer for both directions: a fresh one costs its page faults
    for side, (sign, room) in enumerate(((1.0, room_up), (-1.0, room_down))):
        scale = np.where(room > 0.0, sign / np.where(room > 0.0, room, 1.0), 0.0)
        np.multiply(by_bus, scale[None, :], out=weighted)
        top = np.argmax(weighted, axis=1)
        a = sign * by_bus[columns, top]
        found = weighted[columns, top] > 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(found, room[top] / a, np.inf)
        row = 2 * top + side
        take = (value < least) | ((value == least) & (row < first) & found)
        least, first = np.where(take, value, least), np.where(take, row, first)
        odd = found & (a <= COEFFICIENT_ZERO)
        if np.any(odd):   # a tiny coefficient won: let the general rule decide these columns
            rows = interleaved(by_bus[odd].T, -by_bus[odd].T)
            least[odd], first[odd] = least_ratios(rows, interleaved(room_up, room_down), touch_factor)
    for side, (sign, room) in enumerate(((1.0, room_up), (-1.0, room_down))):
        for line in np.flatnonzero(room <= 0.0):
            a = sign * by_bus[:, line]
            counts = (a > COEFFICIENT_ZERO) & ((room[line] >= 0.0) | (a >= touch_factor))
            row = 2 * line + side
            take = counts & ((least > 0.0) | (row < first))
            least[take], first[take] = 0.0, row
    return least, first


def column_pass(network: Network, lines: np.ndarray, positions: np.ndarray, rooms: np.ndarray,
                capacities: np.ndarray, half: np.ndarray, touch_factor: float,
                block_map: BlockMap | None = None, progress=lambda _: None) -> ColumnFindings:
    """``column_block`` over every block of ``positions`` (the buses, usually the candidates),
    reduced: (C-20) per bus, and the per-line terms summed over the blocks in block order."""
    blocks = [np.arange(start, min(start + COLUMN_BLOCK, positions.size))
              for start in range(0, positions.size, COLUMN_BLOCK)]
    run, group = _runner(block_map)
    shared = {"network": network, "lines": lines, "rooms": rooms, "touch_factor": touch_factor}
    least = np.empty((rooms.shape[1], positions.size))
    first = np.empty((rooms.shape[1], positions.size), dtype=np.int64)
    upper = np.zeros((lines.size, capacities.shape[1]))
    lower = np.zeros((lines.size, capacities.shape[1]))
    spread = np.zeros(lines.size)
    reach = np.full(2 * lines.size, -np.inf)
    for start in range(0, len(blocks), group):
        mine = blocks[start:start + group]
        found = run(column_block, shared, [(positions[b], capacities[b], half[b]) for b in mine])
        for b, (block_least, block_first, block_upper, block_lower, block_spread, block_reach) in zip(mine, found):
            least[:, b], first[:, b] = block_least, block_first
            upper += block_upper
            lower += block_lower
            spread += block_spread
            np.maximum(reach, block_reach, out=reach)
        progress(f"columns of the shift factors: {mine[-1][-1] + 1:,}/{positions.size:,} buses")
    return ColumnFindings(least, first, upper, lower, spread, reach)
