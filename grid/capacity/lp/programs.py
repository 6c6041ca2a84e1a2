"""The capacity models as sparse linear programs over the candidate capacities c.

Two formulations share one network part:

- ``bound_program``: each kept limit is one bound on its data-center term a . c <= room, where
  room = limit - statistic(background). With the worst case as the statistic this is the robust
  firm model (1) with (2); with the sample CVaR it is the exact form of the flexible model (4)
  (proof of Proposition 1). The LP is the size of the robust one, whatever the scenario count.
- ``scenario_program``: the flexible model as the paper writes it, (17a)-(17h): one eta per limit
  and one z per limit and scenario.

Line flows are not written with the dense shift-factor matrix. The LP carries the flow F_l of
every line, nodal balances A'F + x = 0 with x = c - alpha T (T = 1'c is the new load the slack
supplies in shares alpha), and, in a meshed network, bus angles with Kirchhoff's voltage law
written per unit of reactance, x_l F_l - theta_from + theta_to = 0 (theta_ref = 0), which keeps
the coefficients near 1 (susceptances reach 1e3 p.u. in real cases and upset the QP). A radial
network needs no angles: its balances alone fix the flows. Every row has a handful of non-zeros,
so a 10,000-bus model stays sparse, and a line limit is a bound on its F column.

Columns: c (candidates, in bus order), F (every line), theta (every bus, meshed only), T (when
the slack is distributed or the supply is limited), then the formulation's own columns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from grid.capacity.inputs.candidates import Candidates
from grid.capacity.matrices.shift_factors import FlowModel
from grid.capacity.rows.limits import LOWER, SUPPLY, UPPER, WITHDRAWAL, LimitTable
from grid.capacity.rows.standalone import FirstRows

INF = np.inf


@dataclass(frozen=True, eq=False)
class LazyRows:
    """Rows over the capacity columns alone, ``matrix[rows]`` . c <= ``upper``, that belong to
    the program but that a solver adds only when a solution breaks them (see `explicit_program`).
    ``matrix`` is the caller's table of rows, not a copy: the lazy rows are most of it."""

    matrix: sp.csr_matrix
    rows: np.ndarray
    upper: np.ndarray

    def loads(self, capacity: np.ndarray) -> np.ndarray:
        """matrix[rows] . capacity per lazy row: one product over the table, then the lazy rows'
        entries (the same sums row by row as over a copy of the rows)."""
        return (self.matrix @ capacity)[self.rows]

    def written(self, which: np.ndarray | None = None) -> sp.csr_matrix:
        """The lazy rows (or those at positions ``which`` among them) as a matrix of their own."""
        return self.matrix[self.rows if which is None else self.rows[which]]


@dataclass(frozen=True, eq=False)
class LinearProgram:
    """lo <= A x <= hi, col_lower <= x <= col_upper; the first ``n_cap`` columns are c (MW).

    ``lazy`` rows are part of the program too (see LazyRows); ``whole`` writes them out."""

    n_cap: int
    col_lower: np.ndarray
    col_upper: np.ndarray
    matrix: sp.csr_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    lazy: LazyRows | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    def whole(self) -> "LinearProgram":
        """The same program with its lazy rows written out as ordinary rows."""
        if self.lazy is None:
            return self
        rows = self.lazy.written()
        extra = sp.csr_matrix(rows, shape=(rows.shape[0], self.shape[1]))
        return replace(self, matrix=sp.vstack([self.matrix, extra]).tocsr(),
                       row_lower=np.r_[self.row_lower, np.full(extra.shape[0], -INF)],
                       row_upper=np.r_[self.row_upper, self.lazy.upper], lazy=None)

    def with_capacity_box(self, capacity: np.ndarray, tolerance: float) -> "LinearProgram":
        """The same program with each capacity column boxed to capacity +- tolerance (MW)."""
        lower, upper = self.col_lower.copy(), self.col_upper.copy()
        n = self.n_cap
        lower[:n] = np.maximum(lower[:n], capacity - tolerance)
        upper[:n] = np.minimum(upper[:n], capacity + tolerance)
        return replace(self, col_lower=lower, col_upper=upper)


class _Builder:
    """Collects columns and rows (COO triplets) of one program."""

    def __init__(self) -> None:
        self.col_lower: list[np.ndarray] = []
        self.col_upper: list[np.ndarray] = []
        self.n_cols = 0
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.row_lower: list[np.ndarray] = []
        self.row_upper: list[np.ndarray] = []
        self.n_rows = 0

    def columns(self, lower: np.ndarray, upper: np.ndarray) -> int:
        """Add columns; return the first one's index."""
        first = self.n_cols
        self.col_lower.append(np.asarray(lower, dtype=float))
        self.col_upper.append(np.asarray(upper, dtype=float))
        self.n_cols += len(lower)
        return first

    def add_rows(self, count: int, lower: np.ndarray, upper: np.ndarray) -> int:
        first = self.n_rows
        self.row_lower.append(np.broadcast_to(np.asarray(lower, dtype=float), (count,)).copy())
        self.row_upper.append(np.broadcast_to(np.asarray(upper, dtype=float), (count,)).copy())
        self.n_rows += count
        return first

    def entries(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> None:
        self.rows.append(np.asarray(rows, dtype=np.int64))
        self.cols.append(np.asarray(cols, dtype=np.int64))
        self.vals.append(np.asarray(vals, dtype=float))

    def build(self, n_cap: int) -> LinearProgram:
        rows = np.concatenate(self.rows) if self.rows else np.zeros(0, dtype=np.int64)
        cols = np.concatenate(self.cols) if self.cols else np.zeros(0, dtype=np.int64)
        vals = np.concatenate(self.vals) if self.vals else np.zeros(0)
        matrix = sp.csr_matrix((vals, (rows, cols)), shape=(self.n_rows, self.n_cols))
        matrix.sum_duplicates()
        return LinearProgram(
            n_cap=n_cap,
            col_lower=np.concatenate(self.col_lower),
            col_upper=np.concatenate(self.col_upper),
            matrix=matrix,
            row_lower=np.concatenate(self.row_lower) if self.row_lower else np.zeros(0),
            row_upper=np.concatenate(self.row_upper) if self.row_upper else np.zeros(0),
        )


@dataclass(frozen=True)
class _NetworkPart:
    flow: int | None       # first F column, None when no line or supply limit is kept
    total: int | None      # the T column, None when neither the slack nor a supply limit needs it


def _network_part(builder: _Builder, flows: FlowModel, candidates: Candidates, needs_flows: bool,
                  needs_total: bool, flow_bounds: tuple[np.ndarray, np.ndarray] | None = None,
                  total_upper: float = INF) -> _NetworkPart:
    """Flow, angle and total columns with the balance and voltage-law rows (see the module doc)."""
    network = flows.network
    n_bus, n_line, n = len(network.buses), len(network.lines), len(candidates)
    distributed = network.slack != "reference"
    total = None
    if needs_total or (needs_flows and distributed):
        total = builder.columns(np.zeros(1), np.full(1, total_upper))
        row = builder.add_rows(1, 0.0, 0.0)       # T = 1'c
        builder.entries(np.full(n + 1, row), np.r_[np.arange(n), total], np.r_[np.ones(n), -1.0])
    if not needs_flows:
        return _NetworkPart(None, total)
    low, high = flow_bounds if flow_bounds is not None else (np.full(n_line, -INF), np.full(n_line, INF))
    flow = builder.columns(low, high)
    # Balances at every bus but the reference (its row is implied: all balances sum to zero).
    keep = flows.keep
    first = builder.add_rows(keep.size, 0.0, 0.0)
    row_of_bus = np.full(n_bus, -1, dtype=np.int64)
    row_of_bus[keep] = first + np.arange(keep.size)
    incidence = flows.incidence.tocoo()
    mask = row_of_bus[incidence.col] >= 0
    builder.entries(row_of_bus[incidence.col[mask]], flow + incidence.row[mask], incidence.data[mask])
    cand_rows = row_of_bus[candidates.positions]
    has_row = cand_rows >= 0
    builder.entries(cand_rows[has_row], np.arange(n)[has_row], np.ones(int(has_row.sum())))
    if distributed:
        shared = np.flatnonzero(flows.alpha)
        ok = row_of_bus[shared] >= 0
        builder.entries(row_of_bus[shared[ok]], np.full(int(ok.sum()), total), -flows.alpha[shared[ok]])
    if not flows.radial:
        theta_lower = np.full(n_bus, -INF)
        theta_upper = np.full(n_bus, INF)
        theta_lower[flows.reference] = theta_upper[flows.reference] = 0.0
        theta = builder.columns(theta_lower, theta_upper)
        kvl = builder.add_rows(n_line, 0.0, 0.0)
        lines = np.arange(n_line)
        builder.entries(kvl + lines, flow + lines, 1.0 / flows.susceptance)
        # x_l F_l - theta_from + theta_to = 0: the incidence's signs, negated.
        builder.entries(kvl + incidence.row, theta + incidence.col, -incidence.data)
    return _NetworkPart(flow, total)


def _capacity_columns(builder: _Builder, floors: np.ndarray, caps: np.ndarray) -> None:
    builder.columns(floors, np.maximum(caps, floors))


def bound_program(
    flows: FlowModel,
    candidates: Candidates,
    limits: LimitTable,
    rooms: np.ndarray,
    kept: np.ndarray,
    floors: np.ndarray,
    caps: np.ndarray,
) -> LinearProgram:
    """a . c <= room for every kept row (bool mask ``kept``): line limits bound the F columns,
    the supply limit bounds T; withdrawal rows are folded into ``caps`` by the caller.
    floors <= c <= caps. A line's limit after an outage (every product drawn in full) is the row
    F_l + LODF_lk F_k <= room (C-21), two non-zeros where its shift factors would write one per
    candidate."""
    builder = _Builder()
    _capacity_columns(builder, floors, caps)
    n_line = len(flows.network.lines)
    low, high = np.full(n_line, -INF), np.full(n_line, INF)
    supply_room = None
    after = np.zeros(len(limits), dtype=bool) if limits.outage is None else limits.outage >= 0
    for r in np.flatnonzero(kept & ~after):
        kind = limits.kinds[r]
        if kind == UPPER:
            high[limits.line[r]] = rooms[r]
        elif kind == LOWER:
            low[limits.line[r]] = -rooms[r]
        elif kind == SUPPLY:
            supply_room = float(rooms[r])
    pairs = np.flatnonzero(kept & after)
    needs_flows = bool(np.isfinite(low).any() or np.isfinite(high).any() or pairs.size)
    part = _network_part(builder, flows, candidates, needs_flows, supply_room is not None, (low, high),
                         INF if supply_room is None else supply_room)
    if pairs.size:
        sign = np.where(np.array(limits.kinds)[pairs] == UPPER, 1.0, -1.0)
        first = builder.add_rows(pairs.size, -INF, rooms[pairs])
        rows = first + np.arange(pairs.size)
        builder.entries(np.r_[rows, rows], part.flow + np.r_[limits.line[pairs], limits.outage[pairs]],
                        np.r_[sign, sign * limits.lodf[pairs]])
    return builder.build(len(candidates))


def explicit_program(load_rows: sp.csr_matrix, rooms: np.ndarray, kept: np.ndarray, floors: np.ndarray,
                     caps: np.ndarray, first: FirstRows | None = None) -> LinearProgram:
    """load_rows[r] . c <= room_r for every kept row, written out over the candidate columns alone:
    the partial draw set's rows a_r+ . c <= room_r (grid/capacity/inputs/criteria.py), which no flow
    variable can carry (a+ is not the shift factor of any withdrawal). floors <= c <= caps.

    On a meshed network these rows are dense (every line's a+ reaches most candidates: 3.6
    million non-zeros on ACTIVSg2000), and a simplex over all of them took 18 s where a handful
    bind. So only the rows that set some candidate's stand-alone capacity (C-20) are written at
    first; the others are lazy (LazyRows): HiGHS adds those a solution breaks and solves again
    (grid/capacity/lp/staged_solve.py) until none is broken. A stage's optimum over fewer rows that
    keeps every row is the optimum over all of them, so the capacities are the whole program's.
    ``first`` keeps which rows those are between the calls of one model (FirstRows): an N-1 pass
    then reads only the rows it added.

    Before either, a row that holds with every candidate at its cap (and at its floor where its
    coefficient is negative) is left out: floors <= c <= caps keep it, so it can never bind
    (docs/models/capacity.md#eq-c-25). Its coefficients are not copied, which is most of the
    memory when the requests are small next to the lines.
    """
    builder = _Builder()
    n = load_rows.shape[1]
    _capacity_columns(builder, floors, caps)
    rows = np.flatnonzero(kept & (_most_load(load_rows, floors, caps) > rooms))
    first_rows = (first or FirstRows()).find(load_rows, rows, rooms)
    written = load_rows[rows[first_rows]].tocoo()
    first = builder.add_rows(first_rows.size, -INF, rooms[rows[first_rows]])
    builder.entries(first + written.row, written.col, written.data)
    program = builder.build(n)
    later = np.setdiff1d(np.arange(rows.size), first_rows)
    if later.size == 0:
        return program
    # The lazy rows stay in the caller's table: no copy of most of its coefficients per solve.
    return replace(program, lazy=LazyRows(load_rows, rows[later], rooms[rows[later]]))


def _most_load(load_rows: sp.csr_matrix, floors: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Per row, the most a . c over floors <= c <= caps (C-25): a+ . caps + a- . floors."""
    if load_rows.nnz == 0 or load_rows.data.min() >= 0.0:   # the partial draw set's a+: no copy
        return load_rows @ caps
    return load_rows.maximum(0.0) @ caps + load_rows.minimum(0.0) @ floors


def scenario_program(
    flows: FlowModel,
    candidates: Candidates,
    limits: LimitTable,
    background: np.ndarray,
    epsilon: np.ndarray,
    kept: np.ndarray,
    floors: np.ndarray,
    caps: np.ndarray,
    *,
    load_rows: sp.csr_matrix | None = None,
) -> LinearProgram:
    """(17a)-(17h) for every kept row; ``background`` is (kept rows, S): b of each row per scenario,
    ``epsilon`` the risk level of each kept row.

    Per kept row r, with v_r the column that carries its data-center term a_r . c (+-F_l for a
    line, c_k for a withdrawal limit, T for the supply): eta_r free, z_{r,s} >= 0,
    (17c/e/g) z_{r,s} - s_r v_r + eta_r >= b_{r,s} - limit_r and (17b/d/f) eta_r + sum_s z_{r,s}/(eps S) <= 0.
    With ``load_rows`` (the partial draw set's a+ per row) v_r is a column of its own, held to
    load_rows[r] . c by one equality row, and the network part is not needed.
    """
    builder = _Builder()
    n = len(candidates)
    # Withdrawal rows stay rows here (they are part of (17)); caps then only carry the request.
    _capacity_columns(builder, floors, caps)
    rows = np.flatnonzero(kept)
    kinds = [limits.kinds[r] for r in rows]
    count = background.shape[1] if background.ndim == 2 else 0
    if load_rows is not None:
        if rows.size == 0:
            return builder.build(n)
        load_column, load_sign = _load_columns(builder, load_rows, rows), np.ones(rows.size)
    else:
        part = _network_part(builder, flows, candidates, needs_flows=any(k in (UPPER, LOWER) for k in kinds),
                             needs_total=SUPPLY in kinds)
        if rows.size == 0:
            return builder.build(n)
        load_column, load_sign = _signed_load_columns(limits, candidates, part, rows, kinds)
    k = rows.size
    eta = builder.columns(np.full(k, -INF), np.full(k, INF))
    z = builder.columns(np.zeros(k * count), np.full(k * count, INF))
    # (17c/e/g): z_{r,s} - s_r v_r + eta_r >= b_{r,s} - limit_r
    excess = builder.add_rows(k * count, (background - limits.limit_mw[rows][:, None]).reshape(-1), INF)
    rr = excess + np.arange(k * count)
    which = np.repeat(np.arange(k), count)
    builder.entries(rr, z + np.arange(k * count), np.ones(k * count))
    builder.entries(rr, load_column[which], -load_sign[which])
    builder.entries(rr, eta + which, np.ones(k * count))
    # (17b/d/f): eta_r + sum_s z_{r,s} / (eps S) <= 0
    cvar = builder.add_rows(k, -INF, 0.0)
    builder.entries(cvar + np.arange(k), eta + np.arange(k), np.ones(k))
    weights = 1.0 / (np.broadcast_to(np.asarray(epsilon, dtype=float), (k,)) * count)
    builder.entries(cvar + which, z + np.arange(k * count), np.repeat(weights, count))
    return builder.build(n)


def _signed_load_columns(limits: LimitTable, candidates: Candidates, part: _NetworkPart, rows: np.ndarray,
                         kinds: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per kept row, the column that carries a_r . c and its sign: c_k for a withdrawal limit,
    T for the supply, +-F_l for a line."""
    column_of_bus = {int(p): i for i, p in enumerate(candidates.positions)}
    load_column = np.empty(rows.size, dtype=np.int64)
    load_sign = np.ones(rows.size)
    for i, (r, kind) in enumerate(zip(rows, kinds)):
        if kind == WITHDRAWAL:
            load_column[i] = column_of_bus[int(limits.bus[r])]
        elif kind == SUPPLY:
            load_column[i] = part.total
        else:
            load_column[i] = part.flow + int(limits.line[r])
            load_sign[i] = 1.0 if kind == UPPER else -1.0
    return load_column, load_sign


def _load_columns(builder: _Builder, load_rows: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """One free column v_r per kept row with v_r - load_rows[r] . c = 0; returns the columns."""
    first = builder.columns(np.full(rows.size, -INF), np.full(rows.size, INF))
    block = load_rows[rows].tocoo()
    equal = builder.add_rows(rows.size, 0.0, 0.0)
    builder.entries(equal + block.row, block.col, -block.data)
    builder.entries(equal + np.arange(rows.size), first + np.arange(rows.size), np.ones(rows.size))
    return first + np.arange(rows.size)
