"""Every finite limit of the capacity models, with what the background load does to it.

Each limit is a row ``a . c + b - limit <= 0`` over the candidate capacities c:

- a withdrawal limit at bus i (1b)/(4b): a = 1 at candidate i, b = p_i;
- a line's upper and lower flow limit (1c)/(4c)/(4d): a = +-H[l, candidates], b = +-(H p)_l;
- the supply limit (generation headroom or import at the reference bus): a = 1 everywhere,
  b = sum_j p_j (new load and background growth must both be generated);
- an extra row handed in as a correction (grid/capacity/inputs/corrections.py): its own a on the
  candidates and b = min(g . p + g0, its cap); corrections also take a derating off a line's limits.

The capacity models only ever need a statistic of the background term b per row: its worst case
over the load box (firm, (2a)/(2b)) or its sample CVaR (flexible, proof of Proposition 1: CVaR is
translation equivariant and a . c is deterministic, so CVaR(a . c + b) = a . c + CVaR(b)). So this
module computes, row by row and in blocks of lines, the worst case and the K largest samples of
b with their scenario numbers (a partial sort), and never stores the dense H or all line flows.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Mapping, Protocol, Sequence, TypeVar

import numpy as np
import scipy.sparse as sp

from grid.capacity.inputs.candidates import Candidates
from grid.capacity.inputs.corrections import Corrections
from grid.capacity.inputs.criteria import (
    COEFFICIENT_ZERO,
    FirmBox,
    positive_part,
    scenario_box,
)
from grid.capacity.matrices.csr_rows import (
    csr_from_dense,
    extended,
    interleaved,
    per_row,
)
from grid.capacity.matrices.shift_factors import FlowModel, flow_model
from grid.capacity.rows.standalone import FirstRows
from grid.errors import GridError
from grid.load.scenarios import Scenarios
from grid.network.network import Network
from grid.risk_measures import cvar_from_tail
from grid.threads import one_blas_thread, usable_cores

WITHDRAWAL, UPPER, LOWER, SUPPLY, EXTRA = "withdrawal", "upper", "lower", "supply", "extra"

# A candidate "touches" a limit when 1 MW withdrawn there moves the limited quantity by at least
# this much (a distribution-factor cut-off, as in transmission loading relief practice): such
# a candidate is interrupted when the limit is violated and is blocked when background load
# alone breaks the limit.
DEFAULT_TOUCH_FACTOR = 0.05

# Lines whose scenario flows are computed at once; bounds the (lines x S) work array.
LINE_BLOCK = 1024


def line_limit_name(line: str, kind: str, outage: str = "") -> str:
    """A line limit as reports name it: "line 38-65 upper limit", and after an outage "line 38-65
    upper limit after the outage of 30-38"."""
    return f"line {line} {kind} limit" + (f" after the outage of {outage}" if outage else "")


def tail_size(epsilon: float, count: int) -> int:
    """floor(eps S) + 1: the fewest largest samples that determine CVaR_eps of S samples."""
    return min(count, int(math.floor(epsilon * count)) + 1)


@dataclass(frozen=True, eq=False)
class LimitTable:
    """The rows (see the module doc) and their background statistics, in a fixed order:
    withdrawal limits in bus order, then each line's upper and lower limit in line order, then
    the supply limit, then the extra rows of the corrections (post-outage rows come after them).
    """

    kinds: tuple[str, ...]
    labels: tuple[str, ...]           # bus number, line name or "supply"
    limit_mw: np.ndarray              # (R,)
    line: np.ndarray                  # (R,) line position for upper/lower rows, else -1
    bus: np.ndarray                   # (R,) bus position for withdrawal rows, else -1
    touch: sp.csr_matrix              # (R, candidates) True where the candidate touches the row
    coef: sp.csr_matrix               # (R, candidates) a_r: what 1 MW at each candidate adds to the row
    affected: np.ndarray              # (R,) True if some candidate's coefficient is non-zero
    worst_mw: np.ndarray              # (R,) max of b over the load box
    tail_mw: np.ndarray               # (R, K) the K largest samples of b, descending
    tail_scenario: np.ndarray         # (R, K) their scenario numbers
    count: int                        # S
    # Post-outage rows (grid/capacity/rows/outages.py): per row the line position out of service (-1:
    # the intact network) and the LODF that carries its pre-outage flow onto the row's line.
    outage: np.ndarray | None = None
    lodf: np.ndarray | None = None
    outage_names: tuple[str, ...] = ()  # per row: the line out of service, "" in the intact network
    # The extra rows' background coefficients g (extra rows x buses), in the order of their rows,
    # their constants g0 and the most their background term g . p + g0 counts (LinearRow).
    extra_background: np.ndarray | None = None
    extra_offset_mw: np.ndarray | None = None
    extra_cap_mw: np.ndarray | None = None
    extra_risk_share: np.ndarray | None = None   # the share of a tier's eps each extra row holds at

    def extra_terms(self, rows: np.ndarray, samples: np.ndarray) -> np.ndarray:
        """min(g . p + g0, cap) of the given extra rows (positions among the extra rows) per
        sample (rows, S)."""
        values = (samples @ self.extra_background[rows].T).T + self.extra_offset_mw[rows][:, None]
        return np.minimum(values, self.extra_cap_mw[rows][:, None])

    def __len__(self) -> int:
        return len(self.kinds)

    @property
    def has_outages(self) -> bool:
        return self.outage is not None and bool(np.any(self.outage >= 0))

    def name(self, row: int) -> str:
        kind, label = self.kinds[row], self.labels[row]
        if kind == WITHDRAWAL:
            return f"withdrawal limit at bus {label}"
        if kind == SUPPLY:
            return f"supply limit ({label})"
        if kind == EXTRA:
            return label
        return line_limit_name(label, kind, self.outage_names[row] if self.outage_names else "")

    @functools.cached_property
    def row_of(self) -> dict[str, int]:
        """Each row by its name (the inverse of ``name``), as CapacityResult.binding lists them."""
        return {self.name(r): r for r in range(len(self.kinds))}

    @functools.cached_property
    def has_extra(self) -> bool:
        """Whether the corrections' extra rows are here: they carry no line flow, so no program
        can write them over the flows."""
        return EXTRA in self.kinds

    @functools.cached_property
    def explicit(self) -> bool:
        """Whether the scenario program and the capacity-space rows need the rows written out over
        the candidates (a . c <= room): extra rows carry no flow, and a row after an outage has
        no flow column of its own there (bound_program writes it as F_l + LODF_lk F_k itself)."""
        return self.has_outages or self.has_extra

    @functools.cached_property
    def extra_rows(self) -> np.ndarray:
        """The corrections' extra rows of the table: together, in the order of extra_background's rows."""
        return np.flatnonzero(np.array(self.kinds) == EXTRA)

    def extra_position(self, rows: np.ndarray) -> np.ndarray:
        """Where these extra rows of the table sit among the extra rows (extra_background's rows)."""
        return np.asarray(rows, dtype=int) - (self.extra_rows[0] if self.extra_rows.size else 0)

    @functools.cached_property
    def risk_share(self) -> np.ndarray:
        """Per row, the share of a tier's eps it holds at: 1 but for extra rows that ask for less."""
        share = np.ones(len(self.kinds))
        if self.extra_risk_share is not None:
            share[self.extra_rows] = self.extra_risk_share
        return share

    def cvar(self, epsilon: np.ndarray | float) -> np.ndarray:
        """Sample CVaR of each row's background term at eps times its risk_share. At one eps for
        every row it is kept (a copy is returned): each model of a study asks again, and each N-1
        pass only for its new rows (carry_row_caches)."""
        if np.ndim(epsilon) != 0:
            return cvar_from_tail(self.tail_mw, np.asarray(epsilon, dtype=float) * self.risk_share, self.count)
        kept = self.__dict__.setdefault(_CVAR_CACHE, {})
        key = float(epsilon)
        if key not in kept:
            kept[key] = cvar_from_tail(self.tail_mw, key * self.risk_share, self.count)
        return kept[key].copy()

    def first_rows(self, key: Hashable) -> FirstRows:
        """The rows that set the stand-alone bounds of one model's written-out program (``key``
        names the model), kept with the table and carried to the tables an N-1 pass grows from it
        (carry_row_caches), which keep its rows in front of theirs."""
        return self.__dict__.setdefault(_FIRST_ROWS, {}).setdefault(key, FirstRows())

    @functools.cached_property
    def coef_signs(self) -> tuple[np.ndarray, np.ndarray]:
        """Per row: whether some coefficient is positive, and whether some is negative (made once:
        every model of a study asks, grid/capacity/inputs/criteria.py)."""
        return coefficient_signs(self.coef)

    @functools.cached_property
    def coef_positive(self) -> sp.csr_matrix:
        """a+ of every row: the data-center term under the partial draw set (grid/capacity/inputs/criteria.py)."""
        return positive_part(self.coef)


# Where a LimitTable keeps its CVaR per risk level (LimitTable.cvar), and its models' FirstRows.
_CVAR_CACHE = "_dcmarket_cvar"
_FIRST_ROWS = "_dcmarket_first_rows"


def coefficient_signs(coef: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Per row of canonical CSR rows: whether some stored coefficient is positive, and whether
    some is negative, read from the stored values (no comparison matrix is made)."""
    return per_row(np.logical_or, coef, coef.data > 0, bool), per_row(np.logical_or, coef, coef.data < 0, bool)


def carry_row_caches(older: LimitTable, newer: LimitTable, added: sp.csr_matrix,
                     at_most: tuple[int, int] | None = None) -> None:
    """Give ``newer`` (``older`` with the coefficient rows ``added`` after its own) the per-row
    facts ``older`` has made already, extended by the added rows': each N-1 pass grows the table,
    and these would otherwise be made again over every row at each pass. ``at_most`` (rows,
    non-zeros): the room a new buffer of a+ takes (csr_rows.extended)."""
    made = older.__dict__
    if "coef_signs" in made:
        newer.__dict__["coef_signs"] = tuple(np.concatenate([mine, theirs]) for mine, theirs
                                             in zip(made["coef_signs"], coefficient_signs(added)))
    if "coef_positive" in made:
        newer.__dict__["coef_positive"] = extended(made["coef_positive"], positive_part(added), at_most)
    if _FIRST_ROWS in made:   # each FirstRows checks that its rows still lead before it reads on
        newer.__dict__[_FIRST_ROWS] = made[_FIRST_ROWS]
    if made.get(_CVAR_CACHE) and newer.tail_mw.shape[1] and newer.extra_risk_share is older.extra_risk_share:
        start = len(older)
        share = newer.risk_share[start:]
        newer.__dict__[_CVAR_CACHE] = {
            eps: np.concatenate([values, cvar_from_tail(newer.tail_mw[start:], eps * share, newer.count)])
            for eps, values in made[_CVAR_CACHE].items()}


def _tails(values: np.ndarray, keep: int, with_index: bool = True, *, scratch: bool = False
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ``keep`` largest and ``keep`` smallest values of each row, with their columns.

    One partition serves both tails (a line's upper and lower limit see b and -b). Largest come
    back descending, smallest ascending (so that -smallest is descending). Without ``with_index``
    the columns are not tracked (a plain partition is about twice as fast) and come back as -1.
    ``scratch``: ``values`` is the caller's temporary, partitioned in place rather than copied
    (the scenario flows of a block of lines or pairs, hundreds of megabytes a pass).
    """
    count = values.shape[1]
    keep = min(keep, count)
    kth = [keep - 1, count - keep] if 2 * keep < count else None
    if not with_index:
        if scratch:
            values.sort(axis=1) if kth is None else values.partition(kth, axis=1)
            part = values
        else:
            part = np.sort(values, axis=1) if kth is None else np.partition(values, kth, axis=1)
        top = -np.sort(-part[:, count - keep:], axis=1)
        low = np.sort(part[:, :keep], axis=1)
        none = np.full(top.shape, -1, dtype=np.int64)
        return top, none, low, none
    if kth is None:
        order = np.argsort(values, axis=1, kind="stable")
        top_idx, low_idx = order[:, count - keep:], order[:, :keep]
    else:
        part = np.argpartition(values, kth, axis=1)
        top_idx, low_idx = part[:, count - keep:], part[:, :keep]
    top = np.take_along_axis(values, top_idx, axis=1)
    low = np.take_along_axis(values, low_idx, axis=1)
    # Sort each tail; ties broken by scenario number so the order never depends on the partition.
    top_order = np.lexsort((top_idx, -top), axis=1) if top.size else top_idx
    low_order = np.lexsort((low_idx, low), axis=1) if low.size else low_idx
    top_idx = np.take_along_axis(top_idx, top_order, axis=1)
    low_idx = np.take_along_axis(low_idx, low_order, axis=1)
    return (np.take_along_axis(top, top_order, axis=1), top_idx,
            np.take_along_axis(low, low_order, axis=1), low_idx)


@dataclass(frozen=True, eq=False)
class ShiftRows:
    """The shift-factor rows of the limited lines, in blocks (positions, rows), kept between the
    worst-case pass and the scenario pass so that H is computed once here; or only the blocks'
    positions, when a cluster's workers make the rows from ``network`` (BlockMap)."""

    blocks: tuple[tuple[np.ndarray, np.ndarray | None], ...]   # rows None: not kept (limit_rows(keep_rows=False))
    offset_mw: np.ndarray        # every line's flow from the phase shifters alone (FlowModel.offset_mw)
    network: Network             # what the rows are made from when not kept, here or on a cluster's worker


T = TypeVar("T")


class BlockMap(Protocol):
    """Runs ``function(*item, **shared)`` for every item and returns the results in the items'
    order: in this process (``in_process``), or on a Dask cluster (sim/execution/cluster.py), where
    ``shared`` is sent to each worker once."""

    def __call__(self, function: Callable[..., T], shared: Mapping[str, Any], items: Sequence[tuple]) -> list[T]: ...


def in_process(function: Callable[..., T], shared: Mapping[str, Any], items: Sequence[tuple]) -> list[T]:
    """The BlockMap of one process."""
    return [function(*item, **shared) for item in items]


def in_threads(function: Callable[..., T], shared: Mapping[str, Any], items: Sequence[tuple]) -> list[T]:
    """The BlockMap of this process on its usable cores: the blocks' solves and array work
    release the interpreter, so two blocks run side by side on two cores (one BLAS thread each:
    docs/models/capacity.md#blas-threads). Results in the items' order."""
    workers = min(usable_cores(), len(items))
    if workers <= 1:
        return in_process(function, shared, items)
    with one_blas_thread(), ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda item: function(*item, **shared), items))


def line_block_tails(lines: np.ndarray, keep: int, with_index: bool, *, network: Network, samples: np.ndarray,
                     rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The scenario tails of one block of lines: the background flows H p + the shifters' offset,
    and ``_tails`` of them. ``rows`` are the block's rows of H when limit_rows kept them; else they
    are made from the network (its factorisation made once per process), as a cluster's worker
    does."""
    flows = flow_model(network)
    h = flows.rows(lines) if rows is None else rows
    # Not made contiguous: BLAS reads the transposed view as fast, and the copy would cost more.
    return _tails(h @ samples.T + flows.offset_mw[lines][:, None], keep, with_index, scratch=True)


def limit_rows(
    network: Network,
    flows: FlowModel,
    scenarios: Scenarios,
    candidates: Candidates,
    touch_factor: float = DEFAULT_TOUCH_FACTOR,
    box: FirmBox | None = None,
    corrections: Corrections | None = None,
    *,
    keep_rows: bool = True,
    lines: np.ndarray | None = None,
    every_row: np.ndarray | None = None,
) -> tuple[LimitTable, ShiftRows]:
    """Every finite limit with its worst case over firm capacity's background set ``box`` (default:
    the scenarios' box), but no scenario tails yet; with ``corrections``, the lines' limits less
    their deratings and the extra rows last (grid/capacity/inputs/corrections.py).

    That is all the robust firm model needs, so it can be solved while `with_tails` runs. The
    rows of H are kept for the scenario pass unless ``keep_rows`` is False (a cluster's workers
    make their own: L x n floats less in this process). ``lines`` (positions, increasing) limits
    the line rows to those lines (the screened study's working set, grid/capacity/screened.py).
    ``every_row`` is H whole (lines x buses) when the caller holds it already (the N-1 study's
    outage set): its rows are read instead of solved for again.
    """
    if tuple(scenarios.buses) != network.bus_numbers:
        raise GridError(
            f"scenarios do not match network {network.name!r}; build the scenarios from this network"
        )
    if corrections is not None:
        corrections.check(len(network.lines), len(network.buses), len(candidates))
    box = box or scenario_box(scenarios)
    rows = _RowColumns()
    # The table's order (see LimitTable): withdrawal limits, then the lines, then the supply.
    _withdrawal_rows(rows, network, box, candidates)
    derating = None if corrections is None else np.asarray(corrections.derating_mw, dtype=float)
    blocks = _line_rows(rows, network, flows, box, candidates, touch_factor, derating, keep_rows, lines, every_row)
    _supply_row(rows, network, box, len(candidates))
    if corrections is not None and corrections.rows:
        _extra_rows(rows, corrections, box, touch_factor)
    return rows.table(len(candidates), scenarios.count), ShiftRows(tuple(blocks), flows.offset_mw, network)


@dataclass(eq=False)
class _RowColumns:
    """A LimitTable's columns as they grow, one block of rows at a time."""

    kinds: list[str] = dataclasses.field(default_factory=list)
    labels: list[str] = dataclasses.field(default_factory=list)
    limits: list[float] = dataclasses.field(default_factory=list)
    line_pos: list[int] = dataclasses.field(default_factory=list)
    bus_pos: list[int] = dataclasses.field(default_factory=list)
    # One array per block of rows:
    worst: list[np.ndarray] = dataclasses.field(default_factory=list)
    touch_blocks: list[sp.csr_matrix] = dataclasses.field(default_factory=list)
    coef_blocks: list[sp.csr_matrix] = dataclasses.field(default_factory=list)
    affected: list[np.ndarray] = dataclasses.field(default_factory=list)
    extra_background: np.ndarray | None = None
    extra_offset_mw: np.ndarray | None = None
    extra_cap_mw: np.ndarray | None = None
    extra_risk_share: np.ndarray | None = None

    def add(self, kind: str, label: str, limit: float, line: int = -1, bus: int = -1) -> None:
        self.kinds.append(kind)
        self.labels.append(label)
        self.limits.append(limit)
        self.line_pos.append(line)
        self.bus_pos.append(bus)

    def table(self, n_cand: int, count: int) -> LimitTable:
        """The table, with room for the tails that `with_tails` adds."""
        rows = len(self.kinds)
        return LimitTable(
            kinds=tuple(self.kinds),
            labels=tuple(self.labels),
            limit_mw=np.array(self.limits, dtype=float),
            line=np.array(self.line_pos, dtype=int),
            bus=np.array(self.bus_pos, dtype=int),
            touch=(sp.vstack(self.touch_blocks).tocsr() if self.touch_blocks
                   else sp.csr_matrix((0, n_cand), dtype=bool)),
            coef=(sp.vstack(self.coef_blocks).tocsr() if self.coef_blocks else sp.csr_matrix((0, n_cand))),
            affected=np.concatenate(self.affected) if self.affected else np.zeros(0, dtype=bool),
            worst_mw=np.concatenate(self.worst) if self.worst else np.zeros(0),
            tail_mw=np.zeros((rows, 0)),
            tail_scenario=np.zeros((rows, 0), dtype=int),
            count=count,
            extra_background=self.extra_background,
            extra_offset_mw=self.extra_offset_mw,
            extra_cap_mw=self.extra_cap_mw,
            extra_risk_share=self.extra_risk_share,
        )


def _withdrawal_rows(rows: _RowColumns, network: Network, box: FirmBox, candidates: Candidates) -> None:
    """Withdrawal limits (1b)/(4b): the background is the bus's own load."""
    bus_rows = [i for i, bus in enumerate(network.buses) if math.isfinite(bus.withdrawal_limit_mw)]
    if not bus_rows:
        return
    lower, upper = box.lower, box.upper
    candidate_column = {int(p): k for k, p in enumerate(candidates.positions)}
    cols = np.array(bus_rows, dtype=int)
    rows.worst.append((upper[cols] + lower[cols]) / 2.0 + box.own_share * (upper[cols] - lower[cols]) / 2.0)
    touch = sp.lil_matrix((len(bus_rows), len(candidates)), dtype=bool)
    hit = np.zeros(len(bus_rows), dtype=bool)
    for r, i in enumerate(bus_rows):
        rows.add(WITHDRAWAL, str(network.buses[i].number), float(network.buses[i].withdrawal_limit_mw), bus=i)
        if i in candidate_column:
            touch[r, candidate_column[i]] = True
            hit[r] = True
    rows.touch_blocks.append(touch.tocsr())
    rows.coef_blocks.append(touch.tocsr().astype(float))
    rows.affected.append(hit)


def _line_rows(rows: _RowColumns, network: Network, flows: FlowModel, box: FirmBox, candidates: Candidates,
               touch_factor: float, derating: np.ndarray | None = None,
               keep: bool = True, lines: np.ndarray | None = None,
               every_row: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Line limits (1c)/(4c)/(4d), a block of lines at a time; each line gives its upper and its
    lower row, interleaved, each limit less its derating (lines x 2) if any. Returns the blocks'
    shift-factor rows for the scenario pass (None for each, without ``keep``). ``lines``: only
    these of the finite lines (default: all); ``every_row``: H whole, read instead of solved for."""
    finite = finite_lines(network)
    if lines is not None:
        finite = np.intersect1d(finite, np.asarray(lines, dtype=int))
    blocks = []
    for block, h in flows.blocks(finite, LINE_BLOCK, every_row):
        blocks.append((block, h if keep else None))
        # (2a)/(2b): the worst flow in each direction.
        rows.worst.append(np.column_stack(box.extremes(h, flows.offset_mw[block])).reshape(-1))
        on_candidates = h[:, candidates.positions]
        rows.touch_blocks.append(csr_from_dense(interleaved(on_candidates >= touch_factor,
                                                            -on_candidates >= touch_factor)))
        signed = np.where(np.abs(on_candidates) < COEFFICIENT_ZERO, 0.0, on_candidates)
        rows.coef_blocks.append(csr_from_dense(interleaved(signed, -signed)))
        rows.affected.append(np.repeat(np.any(on_candidates != 0.0, axis=1), 2))
        for l in block:
            line = network.lines[int(l)]
            for side, kind in enumerate((UPPER, LOWER)):
                off = 0.0 if derating is None else float(derating[int(l), side])
                rows.add(kind, line.name, float(line.thermal_limit_mw) - off, line=int(l))
    return blocks


def finite_lines(network: Network) -> np.ndarray:
    """Positions of the lines with a finite limit: those with rows, in line order."""
    return np.array([l for l, line in enumerate(network.lines) if math.isfinite(line.thermal_limit_mw)], dtype=int)


def _supply_row(rows: _RowColumns, network: Network, box: FirmBox, n_cand: int) -> None:
    """The supply limit: all new load and the background's growth must be generated."""
    supply = network.supply_limit_mw()
    if not math.isfinite(supply):
        return
    rows.worst.append(box.worst(np.ones((1, box.lower.size))))
    rows.touch_blocks.append(sp.csr_matrix(np.ones((1, n_cand), dtype=bool)))
    rows.coef_blocks.append(sp.csr_matrix(np.ones((1, n_cand))))
    rows.affected.append(np.array([n_cand > 0]))
    # What the number is: generators' headroom, or the import limit of a reference slack.
    imported = network.slack == "reference" and math.isfinite(network.import_limit_mw)
    rows.add(SUPPLY, f"import at bus {network.reference_bus}" if imported else "generation headroom", float(supply))


def _extra_rows(rows: _RowColumns, corrections: Corrections, box: FirmBox, touch_factor: float) -> None:
    """The corrections' extra rows: a . c + min(g . p + g0, cap) <= limit, with the worst case over the box."""
    background = np.vstack([row.background_coef for row in corrections.rows]).astype(float)
    offset = np.array([row.background_offset_mw for row in corrections.rows], dtype=float)
    cap = np.array([row.background_cap_mw for row in corrections.rows], dtype=float)
    coef = np.vstack([row.candidate_coef for row in corrections.rows]).astype(float)
    coef[np.abs(coef) < COEFFICIENT_ZERO] = 0.0
    worst = box.worst(background) + offset
    rows.worst.append(np.minimum(worst, cap))
    rows.extra_offset_mw, rows.extra_cap_mw = offset, cap
    rows.extra_risk_share = np.array([row.risk_share for row in corrections.rows], dtype=float)
    rows.touch_blocks.append(csr_from_dense(coef >= touch_factor))
    rows.coef_blocks.append(csr_from_dense(coef))
    rows.affected.append(np.any(coef != 0.0, axis=1))
    rows.extra_background = background
    for row in corrections.rows:
        rows.add(EXTRA, row.name, float(row.limit_mw))


def with_tails(
    table: LimitTable,
    shift: ShiftRows,
    scenarios: Scenarios,
    max_risk: float,
    progress=lambda _: None,
    *,
    with_scenarios: bool = False,
    block_map: BlockMap | None = None,
    line_flows: Callable[[np.ndarray], np.ndarray] | None = None,
) -> LimitTable:
    """The table with the K largest background samples of every row (what CVaR_eps needs for
    every eps <= max_risk): background flows a block of lines at a time, then a partial sort.

    ``with_scenarios`` also keeps which scenario each tail value comes from (``tail_scenario``),
    which the joint risk mode needs to find a product's violations in sample; otherwise those
    are -1. With ``block_map`` (a Dask cluster's, sim/execution/cluster.py) the lines' blocks are computed
    there, each from the network and the samples (``line_block_tails``), with the same result.
    ``line_flows`` gives the background flows (lines x scenarios) of a block of line positions
    when the caller has made them already (the N-1 study's ScenarioFlows, which its pairs read
    too): the tails are then taken from them, and no flow is computed here. Each call returns a
    new array, whose tails are taken in place.
    """
    count = scenarios.count
    keep = tail_size(max_risk, count) if max_risk > 0 else 1
    samples = scenarios.samples_mw          # (S, n)
    tails: list[np.ndarray] = []
    tail_idx: list[np.ndarray] = []
    kinds = np.array(table.kinds)
    withdrawal = np.flatnonzero(kinds == WITHDRAWAL)
    if withdrawal.size:
        top, top_i, _, _ = _tails(samples[:, table.bus[withdrawal]].T, keep, with_scenarios, scratch=True)
        tails.append(top)
        tail_idx.append(top_i)
    done = sum(block.size for block, _ in shift.blocks)
    if block_map is not None and shift.blocks:
        progress(f"background flows and tails: {done} lines in {len(shift.blocks)} blocks on the cluster")
        found = block_map(line_block_tails, {"network": shift.network, "samples": samples},
                          [(block, keep, with_scenarios) for block, _ in shift.blocks])
    else:
        found, finished = [], 0
        for block, h in shift.blocks:
            found.append(_tails(line_flows(block), keep, with_scenarios, scratch=True) if line_flows is not None else
                         line_block_tails(block, keep, with_scenarios, network=shift.network, samples=samples, rows=h))
            finished += block.size
            progress(f"background flows and tails: {finished}/{done} lines")
    for (block, _), (top, top_i, low, low_i) in zip(shift.blocks, found):
        tails.append(np.stack([top, -low], axis=1).reshape(2 * block.size, -1))
        tail_idx.append(np.stack([top_i, low_i], axis=1).reshape(2 * block.size, -1))
    if np.any(kinds == SUPPLY):
        top, top_i, _, _ = _tails(samples.sum(axis=1)[None, :], keep, with_scenarios, scratch=True)
        tails.append(top)
        tail_idx.append(top_i)
    if table.extra_background is not None:
        terms = table.extra_terms(np.arange(len(table.extra_background)), samples)
        top, top_i, _, _ = _tails(terms, keep, with_scenarios, scratch=True)
        tails.append(top)
        tail_idx.append(top_i)
    return dataclasses.replace(
        table,
        tail_mw=np.vstack(tails) if tails else np.zeros((0, keep)),
        tail_scenario=np.vstack(tail_idx) if tail_idx else np.zeros((0, keep), dtype=int),
    )


def with_line_tails(table: LimitTable, top: np.ndarray, low: np.ndarray, scenarios: Scenarios,
                    max_risk: float) -> LimitTable:
    """The table with its tails, the line rows' taken from tails made elsewhere: ``top`` and
    ``low`` (the table's lines in order x K) are each line's K largest background flows,
    descending, and K smallest, ascending (grid/capacity/rows/line_passes.py made them without H).
    The other rows' tails are with_tails' own."""
    bare = with_tails(table, ShiftRows((), np.zeros(0), None), scenarios, max_risk)
    kinds = np.array(table.kinds)
    on_lines = (kinds == UPPER) | (kinds == LOWER)
    tail = np.empty((len(table), bare.tail_mw.shape[1]))
    tail[~on_lines] = bare.tail_mw
    tail[on_lines] = interleaved(top, -low)
    return dataclasses.replace(table, tail_mw=tail, tail_scenario=np.full(tail.shape, -1, dtype=np.int64))


def build_limits(
    network: Network,
    flows: FlowModel,
    scenarios: Scenarios,
    candidates: Candidates,
    max_risk: float,
    touch_factor: float = DEFAULT_TOUCH_FACTOR,
    progress=lambda _: None,
    *,
    with_scenarios: bool = False,
    box: FirmBox | None = None,
) -> LimitTable:
    """All finite limits with their worst case and the tails CVaR_eps needs for eps <= max_risk."""
    table, shift = limit_rows(network, flows, scenarios, candidates, touch_factor, box)
    return with_tails(table, shift, scenarios, max_risk, progress, with_scenarios=with_scenarios)


LineFlows = Callable[[np.ndarray, np.ndarray], np.ndarray]


def shift_factor_flows(flows: FlowModel) -> LineFlows:
    """(line positions, samples (S, n)) -> background flows (lines, S) through rows of H."""

    def compute(lines: np.ndarray, samples: np.ndarray) -> np.ndarray:
        if not lines.size:
            return np.zeros((0, len(samples)))
        return np.vstack([h @ samples.T for _, h in flows.blocks(lines)]) + flows.offset_mw[lines][:, None]

    return compute


def row_background(table: LimitTable, samples: np.ndarray, rows: np.ndarray, line_flows: LineFlows) -> np.ndarray:
    """b_{r,s} of the given rows for every sample (rows, S): a bus's own load for a withdrawal
    limit, +-(H p)_l for a line's upper/lower limit, sum_j p_j for the supply limit.

    ``line_flows`` computes the lines' flows (the caller knows whether dense rows of H or sparse
    angle solves are cheaper for its sizes).
    """
    rows = np.asarray(rows, dtype=int)
    kinds = np.array(table.kinds)[rows] if rows.size else np.zeros(0, dtype=str)
    out = np.empty((rows.size, samples.shape[0]))
    withdrawal = kinds == WITHDRAWAL
    out[withdrawal] = samples[:, table.bus[rows[withdrawal]]].T
    on_lines = (kinds == UPPER) | (kinds == LOWER)
    if np.any(on_lines):
        sign = np.where(kinds[on_lines] == UPPER, 1.0, -1.0)
        own = table.line[rows[on_lines]]
        if table.has_outages:
            # A post-outage row reads f_l + LODF f_k (docs/models/capacity.md#eq-c-21).
            out_line = table.outage[rows[on_lines]]
            lines, pick = np.unique(np.concatenate([own, out_line[out_line >= 0]]), return_inverse=True)
            flows = line_flows(lines, samples)
            values = flows[pick[:own.size]]
            after = out_line >= 0
            values[after] += table.lodf[rows[on_lines]][after][:, None] * flows[pick[own.size:]]
            out[on_lines] = sign[:, None] * values
        else:
            lines, pick = np.unique(own, return_inverse=True)
            out[on_lines] = sign[:, None] * line_flows(lines, samples)[pick]
    out[kinds == SUPPLY] = samples.sum(axis=1)[None, :]
    extra = kinds == EXTRA
    if np.any(extra):
        out[extra] = table.extra_terms(table.extra_position(rows[extra]), samples)
    return out
