"""MATPOWER change tables (chgtab): the reader, and contingency lists for a Network.

A change table (MATPOWER's idx_ct.m, applied by apply_changes.m) lists one change per row:
label, probability, table, row, column, change type, new value. The rows that share a label form
one change set, applied to the base case in file order. MATPOWER ships two kinds for the
synthetic ACTIVSg grids: ``scenarios_ACTIVSg2000.m`` (8,784 hourly area loads of 2016, each a
CT_TAREALOAD / CT_LOAD_ALL_P / CT_REP row) and ``contab_ACTIVSg*.m`` (the case's contingency
list: CT_TBRCH / BR_STATUS / CT_REP 0 branch outages, and generator outages).

- :func:`read_change_table` turns a file into a :class:`ChangeTable` (numpy columns, every code
  checked against idx_ct.m and apply_changes.m).
- :func:`contingencies` turns the branch-status changes into outages of the network's lines
  (:class:`Contingency`); :func:`single_branch_outages` lists every one-line outage and whether
  it islands the network, and :func:`islanded_buses` says which buses any outage cuts off.
- The load changes become hourly loads and background scenarios in grid/load/hourly.py, which
  builds on :func:`read_case_columns` and :func:`change_sets` here.

The Network keeps neither bus areas nor branch rows, so the functions that need them read the
case file again (with matpowercaseframes, as grid/network/matpower.py does) and check that the
network is the one that file makes.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grid.errors import GridError
from grid.network.cases import case_file, matpower_data_dir
from grid.network.matpower import read_matpower_file
from grid.network.network import Network

# --------------------------------------------------------------------------------------------
# MATPOWER's codes (idx_ct.m) and the named columns define_constants brings into a table file
# --------------------------------------------------------------------------------------------

CT_TBUS, CT_TGEN, CT_TBRCH, CT_TAREABUS, CT_TAREAGEN, CT_TAREABRCH = 1, 2, 3, 4, 5, 6
CT_TLOAD, CT_TAREALOAD, CT_TGENCOST, CT_TAREAGENCOST = 7, 8, 9, 10
CT_REP, CT_REL, CT_ADD = 1, 2, 3
CT_LOAD_ALL_PQ, CT_LOAD_FIX_PQ, CT_LOAD_DIS_PQ, CT_LOAD_ALL_P, CT_LOAD_FIX_P, CT_LOAD_DIS_P = 1, 2, 3, 4, 5, 6
CT_MODCOST_F, CT_MODCOST_X = -1, -2
TABLE_NAMES = {
    CT_TBUS: "CT_TBUS", CT_TGEN: "CT_TGEN", CT_TBRCH: "CT_TBRCH", CT_TAREABUS: "CT_TAREABUS",
    CT_TAREAGEN: "CT_TAREAGEN", CT_TAREABRCH: "CT_TAREABRCH", CT_TLOAD: "CT_TLOAD",
    CT_TAREALOAD: "CT_TAREALOAD", CT_TGENCOST: "CT_TGENCOST", CT_TAREAGENCOST: "CT_TAREAGENCOST",
}
CHANGE_TYPE_NAMES = {CT_REP: "CT_REP", CT_REL: "CT_REL", CT_ADD: "CT_ADD"}
_PD, _BR_STATUS = 3, 11


def _numbered(names: str, first: int = 1) -> dict[str, int]:
    return {name: number for number, name in enumerate(names.split(), start=first)}


# The names a change table may write instead of numbers: every constant of define_constants.m.
_CONSTANTS: dict[str, float] = {
    **_numbered("PQ PV REF NONE"),
    **_numbered("BUS_I BUS_TYPE PD QD GS BS BUS_AREA VM VA BASE_KV ZONE VMAX VMIN LAM_P LAM_Q MU_VMAX MU_VMIN"),
    **_numbered("F_BUS T_BUS BR_R BR_X BR_B RATE_A RATE_B RATE_C TAP SHIFT BR_STATUS PF QF PT QT MU_SF MU_ST "
                "ANGMIN ANGMAX MU_ANGMIN MU_ANGMAX"),
    **_numbered("GEN_BUS PG QG QMAX QMIN VG MBASE GEN_STATUS PMAX PMIN PC1 PC2 QC1MIN QC1MAX QC2MIN QC2MAX "
                "RAMP_AGC RAMP_10 RAMP_30 RAMP_Q APF MU_PMAX MU_PMIN MU_QMAX MU_QMIN"),
    "PW_LINEAR": 1, "POLYNOMIAL": 2, **_numbered("MODEL STARTUP SHUTDOWN NCOST COST"),
    **_numbered("CT_LABEL CT_PROB CT_TABLE CT_ROW CT_COL CT_CHGTYPE CT_NEWVAL"),
    **{name: code for code, name in TABLE_NAMES.items()},
    **{name: code for code, name in CHANGE_TYPE_NAMES.items()},
    **_numbered("CT_LOAD_ALL_PQ CT_LOAD_FIX_PQ CT_LOAD_DIS_PQ CT_LOAD_ALL_P CT_LOAD_FIX_P CT_LOAD_DIS_P"),
    "CT_MODCOST_F": CT_MODCOST_F, "CT_MODCOST_X": CT_MODCOST_X,
}

# The columns apply_changes.m lets each table change (it refuses the others).
_BUS_COLUMNS = frozenset({3, 4, 5, 6, 12, 13})                   # PD QD GS BS VMAX VMIN
_BRANCH_COLUMNS = frozenset(range(3, 14))                         # BR_R ... ANGMAX
_GEN_COLUMNS = frozenset({4, 5, *range(8, 22)})                   # QMAX QMIN GEN_STATUS ... APF
_LOAD_CODES = frozenset(range(1, 7))                              # CT_LOAD_*, or their negatives
_COLUMNS = {CT_TBUS: _BUS_COLUMNS, CT_TAREABUS: _BUS_COLUMNS, CT_TBRCH: _BRANCH_COLUMNS,
            CT_TAREABRCH: _BRANCH_COLUMNS, CT_TGEN: _GEN_COLUMNS, CT_TAREAGEN: _GEN_COLUMNS}

# The largest file read_change_table accepts. The largest MATPOWER ships is 3.6 MB (8,784 hours
# x 8 areas, parsed in about 0.2 s); 200 MB, 55 times that, is some 3.7 million changes and took
# 15 s and 0.65 GB at the peak (measured). A year of per-bus hourly loads of a 10k-bus case
# (3.5 GB) would hold the machine for minutes before any study ran; split such a table by label.
MAX_CHANGE_TABLE_BYTES = 200 * 10**6

_START = re.compile(r"^\s*chgtab\s*=\s*\[(.*)$")
_WIDTH = 7


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ChangeTable:
    """A MATPOWER change table, one entry per change (file order), as read-only numpy arrays.

    ``label``, ``table``, ``row``, ``column`` and ``change_type`` are integers (the codes of
    idx_ct.m); ``probability`` and ``new_value`` floats; ``line`` is the file line of each change,
    for messages. Construction checks every code (a one-line GridError names ``source`` and the
    line). Compared by identity (it holds arrays).
    """

    source: str
    label: np.ndarray
    probability: np.ndarray
    table: np.ndarray
    row: np.ndarray
    column: np.ndarray
    change_type: np.ndarray
    new_value: np.ndarray
    line: np.ndarray

    def __post_init__(self) -> None:
        names = ("label", "probability", "table", "row", "column", "change_type", "new_value", "line")
        arrays = [np.array(getattr(self, name), dtype=float).reshape(-1) for name in names]
        if len({a.size for a in arrays}) != 1:
            raise GridError(f"change table {self.source}: the columns have different lengths "
                            f"({', '.join(f'{n} {a.size}' for n, a in zip(names, arrays))})")
        _check_changes(self.source, *arrays)
        for name, array in zip(names, arrays):
            if name not in ("probability", "new_value"):
                array = array.astype(np.int64)
            array.flags.writeable = False
            object.__setattr__(self, name, array)

    def __len__(self) -> int:
        return int(self.label.size)

    @property
    def labels(self) -> np.ndarray:
        """The distinct labels, ascending."""
        return np.unique(self.label)


def _check_changes(source: str, label: np.ndarray, probability: np.ndarray, table: np.ndarray, row: np.ndarray,
                   column: np.ndarray, change_type: np.ndarray, new_value: np.ndarray, line: np.ndarray) -> None:
    """Every change one that apply_changes.m accepts; the first that is not, named by its line."""
    columns = {"label": label, "prob": probability, "table": table, "row": row, "col": column,
               "chgtype": change_type, "newval": new_value}
    for name, values in columns.items():
        bad = ~np.isfinite(values)
        if bad.any():
            _refuse(source, line, bad, f"{name} is {values[bad][0]}; give a finite number")
    for name in ("label", "table", "row", "col", "chgtype"):
        values = columns[name]
        _refuse(source, line, values != np.round(values), f"{name} is {{}}, not a whole number", values)
    _refuse(source, line, label < 1, "label is {}; labels are integers >= 1", label)
    _refuse(source, line, (probability < 0) | (probability > 1), "prob is {}; give a probability in [0, 1]",
            probability)
    _refuse(source, line, (table < 1) | (table > 10),
            "table code {} is unknown; use one of idx_ct.m's CT_TBUS (1) ... CT_TAREAGENCOST (10)", table)
    _refuse(source, line, (change_type < 1) | (change_type > 3),
            "change type {} is unknown; use CT_REP (1), CT_REL (2) or CT_ADD (3)", change_type)
    _refuse(source, line, row < 0, "row is {}; give a row number >= 1, or 0 for every row", row)
    refused = np.flatnonzero(~_column_allowed(table, column, change_type))
    if refused.size:
        i = int(refused[0])
        raise GridError(f"change table {source}, line {int(line[i])}: column {int(column[i])} cannot be changed "
                        f"by a {TABLE_NAMES[int(table[i])]} {CHANGE_TYPE_NAMES[int(change_type[i])]} change "
                        "(apply_changes.m refuses it); see idx_ct.m for the columns and codes each table takes")


def _column_allowed(table: np.ndarray, column: np.ndarray, change_type: np.ndarray) -> np.ndarray:
    allowed = np.ones(table.size, dtype=bool)
    for code, columns in _COLUMNS.items():
        at = table == code
        allowed[at] = np.isin(column[at], list(columns))
    loads = (table == CT_TLOAD) | (table == CT_TAREALOAD)
    allowed[loads] = np.isin(np.abs(column[loads]), list(_LOAD_CODES))
    costs = (table == CT_TGENCOST) | (table == CT_TAREAGENCOST)
    # A cost-function code (CT_MODCOST_F/X) scales or shifts: it cannot replace.
    modcost = costs & ((column == CT_MODCOST_F) | (column == CT_MODCOST_X))
    allowed[costs] = column[costs] >= 1
    allowed[modcost] = change_type[modcost] != CT_REP
    return allowed


def _refuse(source: str, line: np.ndarray, bad: np.ndarray, message: str, values: np.ndarray | None = None) -> None:
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        text = message.format(f"{values[i]:g}") if values is not None else message
        raise GridError(f"change table {source}, line {int(line[i])}: {text}")


# --------------------------------------------------------------------------------------------
# Reading a file
# --------------------------------------------------------------------------------------------


def read_change_table(path: str | os.PathLike[str]) -> ChangeTable:
    """The ``chgtab = [ ... ];`` matrix of a MATPOWER change-table file.

    Read line by line: comments (``%``) and continuations (``...``) as MATLAB reads them, rows
    ended by ``;`` or a line break, values separated by blanks or commas, each a number or a name
    from define_constants (``CT_TAREALOAD``, ``BR_STATUS``, ``-CT_LOAD_ALL_P``). Statements after
    the matrix (e.g. ``chgtab(:, 2) = 0.1``) are not run. Every failure is a one-line GridError
    naming the file, the line and the fix: no file, a file above ``MAX_CHANGE_TABLE_BYTES``, no
    chgtab matrix, a row without 7 values, a value that is not a number, a code MATPOWER does
    not know. The 8,784-hour scenarios file (70,272 changes) reads in about 0.2 s.
    """
    source = os.fspath(path)
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise GridError(f"change table {source}: cannot read it ({exc.strerror or exc}); check the path") from None
    if size > MAX_CHANGE_TABLE_BYTES:
        raise GridError(f"change table {source}: {size / 1e6:.0f} MB is above the {MAX_CHANGE_TABLE_BYTES / 1e6:.0f} MB "
                        "a change table may have; split it into files of fewer labels")
    matrix, lines = _read_matrix(path, source)
    return ChangeTable(source, *matrix.T, line=lines)


# Rows converted to numbers at a time: the tokens of one block (some 50 MB of Python strings) are
# all that is held besides the arrays, however long the file.
_BLOCK_ROWS = 2**17


def _read_matrix(path: str | os.PathLike[str], source: str) -> tuple[np.ndarray, np.ndarray]:
    """The chgtab matrix (rows x 7) and the file line of each row."""
    blocks: list[np.ndarray] = []
    line_blocks: list[np.ndarray] = []
    tokens: list[str] = []
    lines: list[int] = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, row in _matrix_rows(handle, source):
                if len(row) != _WIDTH:
                    raise GridError(f"change table {source}, line {number}: a row of {len(row)} values; every row "
                                    "needs 7 (label prob table row col chgtype newval)")
                tokens.extend(row)
                lines.append(number)
                if len(lines) == _BLOCK_ROWS:
                    blocks.append(_numbers(tokens, lines, source))
                    line_blocks.append(np.array(lines))
                    tokens, lines = [], []
    except UnicodeDecodeError as exc:
        raise GridError(f"change table {source}: not a text file (byte {exc.start} is not UTF-8); "
                        "give a MATPOWER change-table .m file") from None
    except OSError as exc:
        raise GridError(f"change table {source}: cannot read it ({exc.strerror or exc}); check the path") from None
    if lines:
        blocks.append(_numbers(tokens, lines, source))
        line_blocks.append(np.array(lines))
    if not blocks:
        raise GridError(f"change table {source}: chgtab has no rows; give at least one change")
    return np.concatenate(blocks).reshape(-1, _WIDTH), np.concatenate(line_blocks)


def _numbers(tokens: list[str], lines: list[int], source: str) -> np.ndarray:
    """The tokens as floats, names replaced by their values."""
    named = [_CONSTANTS.get(token, token) for token in tokens]
    try:
        # numpy parses the number strings in one pass, several times faster than float() per token.
        return np.array(named, dtype=float)
    except ValueError:
        # A signed name (-CT_LOAD_ALL_P) or a bad token: one by one, to name the line.
        return np.array([_number(token, source, lines[k // _WIDTH]) for k, token in enumerate(tokens)])


def _matrix_rows(handle: Iterable[str], source: str) -> Iterator[tuple[int, list[str]]]:
    """(line of the row's first value, its tokens) for every row of the chgtab matrix."""
    opened = 0
    pending: list[str] = []
    first = 0
    for number, raw in enumerate(handle, start=1):
        text = raw.split("%", 1)[0]
        if not opened:
            match = _START.match(text)
            if match is None:
                continue
            opened, text = number, match.group(1)
        continued = "..." in text
        text = text.split("...", 1)[0]
        closed = "]" in text
        pieces = text.split("]", 1)[0].split(";")
        for k, piece in enumerate(pieces):
            tokens = piece.replace(",", " ").split()
            if tokens and not pending:
                first = number
            pending.extend(tokens)
            # A ';' ends a row, and so does the line's end unless '...' carries it on.
            if pending and (k < len(pieces) - 1 or not continued or closed):
                yield first, pending
                pending = []
        if closed:
            return
    if not opened:
        raise GridError(f"change table {source}: no 'chgtab = [ ... ];' matrix; a MATPOWER change table assigns "
                        "its rows to chgtab (see idx_ct.m)")
    raise GridError(f"change table {source}, line {opened}: the chgtab matrix opened here is never closed; "
                    "end it with '];'")


def _number(token: str, source: str, line: int) -> float:
    value = _CONSTANTS.get(token)
    if value is not None:
        return value
    if token[0] in "+-" and token[1:] in _CONSTANTS:
        return -_CONSTANTS[token[1:]] if token[0] == "-" else _CONSTANTS[token[1:]]
    try:
        return float(token)
    except ValueError:
        raise GridError(f"change table {source}, line {line}: {token!r} is not a number or a MATPOWER constant; "
                        "write a number or a name from define_constants (e.g. CT_TAREALOAD)") from None


# --------------------------------------------------------------------------------------------
# The case file's columns that the Network does not keep
# --------------------------------------------------------------------------------------------

_ISOLATED = 4
AREA_COLUMNS = ("BUS_AREA", "ZONE")


@dataclass(frozen=True, eq=False)
class CaseColumns:
    """The bus, gen and branch columns that changes read, in file order (0-based rows here).

    ``area`` is BUS_AREA, or ZONE when asked. ``nominal`` and ``realized`` are the in-service
    dispatchable load per bus (MATPOWER's isload: PMIN < 0 = PMAX) at its nominal size (-PMIN)
    and at its dispatch (-PG). Branch ends are bus rows.
    """

    label: str
    bus_number: np.ndarray
    live: np.ndarray
    pd: np.ndarray
    area: np.ndarray
    nominal: np.ndarray
    realized: np.ndarray
    from_row: np.ndarray
    to_row: np.ndarray
    branch_on: np.ndarray

    @property
    def has_dispatchable_load(self) -> bool:
        return bool(self.nominal.any() or self.realized.any())


def case_path(case: str | os.PathLike[str]) -> Path:
    """A MATPOWER .m file: a path, or the stem of a file in the matpower package (``case_ACTIVSg2000``)."""
    path = Path(case).expanduser()
    if path.is_file():
        return path
    shipped = matpower_data_dir() / f"{os.fspath(case)}.m"
    if not path.suffix and shipped.is_file():
        return shipped
    raise GridError(f"case {os.fspath(case)}: no such file; give the MATPOWER .m file the network was built from "
                    "(or the stem of one in the matpower package, e.g. case_ACTIVSg2000)")


def read_case_columns(case: str | os.PathLike[str], area_column: str = "BUS_AREA") -> CaseColumns:
    """The columns of a MATPOWER case that change tables read and the Network does not keep.

    Parsed with matpowercaseframes like grid/network/matpower.py; a file it cannot read gets that
    importer's diagnosis (a one-line GridError).
    """
    # Imported here, as the importer does, so that importing this module stays cheap.
    from matpowercaseframes import CaseFrames

    if area_column not in AREA_COLUMNS:
        raise GridError(f"area_column {area_column!r} is not a bus column for areas; use 'BUS_AREA' or 'ZONE'")
    path = case_path(case)
    label = os.fspath(case)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frames = CaseFrames(str(path))
        bus = [frames.bus[c].to_numpy(float) for c in ("BUS_I", "BUS_TYPE", "PD", area_column)]
        gen = [frames.gen[c].to_numpy(float) for c in ("GEN_BUS", "PG", "GEN_STATUS", "PMAX", "PMIN")]
        branch = [frames.branch[c].to_numpy(float) for c in ("F_BUS", "T_BUS", "BR_STATUS")]
    except Exception:  # the parser's own errors say little; the importer's diagnosis names the culprit
        read_matpower_file(path, label)
        raise GridError(f"case {label}: cannot read its bus, gen and branch tables with columns through "
                        f"{area_column} and PMIN; check it against MATPOWER's caseformat") from None
    number, kind, pd, area = bus
    row_of = _row_lookup(number, label)
    gen_bus, pg, status, pmax, pmin = gen
    dispatchable = (pmin < 0) & (pmax == 0) & (status > 0)
    at = row_of(gen_bus[dispatchable], "mpc.gen")
    nominal, realized = np.zeros(number.size), np.zeros(number.size)
    np.add.at(nominal, at, -pmin[dispatchable])
    np.add.at(realized, at, -pg[dispatchable])
    # PD of isolated buses is not checked by the importer; a missing one is no load.
    return CaseColumns(label, number.astype(np.int64), kind != _ISOLATED, np.nan_to_num(pd), area, nominal, realized,
                       row_of(branch[0], "mpc.branch"), row_of(branch[1], "mpc.branch"), branch[2] > 0)


def _row_lookup(numbers: np.ndarray, label: str) -> Callable[[np.ndarray, str], np.ndarray]:
    """A map from bus numbers to their bus rows, refusing numbers the bus table does not have."""
    order = np.argsort(numbers, kind="stable")
    ordered = numbers[order]

    def rows(values: np.ndarray, table: str) -> np.ndarray:
        at = np.clip(np.searchsorted(ordered, values), 0, max(ordered.size - 1, 0))
        unknown = ordered[at] != values
        if unknown.any():
            raise GridError(f"case {label}: {table} names bus {values[unknown][0]:g}, which is not in mpc.bus; "
                            "fix the case file")
        return order[at]

    return rows


def network_bus_rows(case: CaseColumns, network: Network) -> np.ndarray:
    """The bus row of each network bus, after checking the network is the one the case makes.

    The importer keeps every bus but the isolated ones (BUS_TYPE 4), in file order.
    """
    rows = np.flatnonzero(case.live)
    if tuple(case.bus_number[rows].tolist()) != network.bus_numbers:
        raise GridError(f"network {network.name!r} does not match case {case.label}: its buses are not the case's "
                        "connected buses in file order; build the network from this case (load_case)")
    return rows


def network_line_positions(case: CaseColumns, network: Network) -> np.ndarray:
    """Each branch row's position in network.lines (-1: no line), after checking they match.

    The importer keeps a branch when it is in service between connected buses, in file order.
    """
    kept = case.branch_on & case.live[case.from_row] & case.live[case.to_row]
    positions = np.full(kept.size, -1, dtype=np.int64)
    positions[kept] = np.arange(int(kept.sum()))
    ends = [(line.from_bus, line.to_bus) for line in network.lines]
    if ends != list(zip(case.bus_number[case.from_row[kept]].tolist(), case.bus_number[case.to_row[kept]].tolist())):
        raise GridError(f"network {network.name!r} does not match case {case.label}: its lines are not the case's "
                        "in-service branches in file order; build the network from this case (load_case)")
    return positions


def change_sets(table: ChangeTable) -> Iterator[tuple[int, np.ndarray]]:
    """(label, the indices of its changes in file order), labels ascending."""
    order = np.argsort(table.label, kind="stable")
    labels, starts = np.unique(table.label[order], return_index=True)
    for label, chunk in zip(labels.tolist(), np.split(order, starts[1:])):
        yield label, chunk


def at_line(table: ChangeTable, i: int) -> str:
    """How messages name change ``i``: the file and its line."""
    return f"change table {table.source}, line {int(table.line[i])}"


# --------------------------------------------------------------------------------------------
# Contingencies
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contingency:
    """One label's branch outages, as positions in ``network.lines``.

    ``branch_rows`` are the 1-based rows of mpc.branch the label takes out. Rows that are out of
    service in the case already (the network has no line for them) have no position.
    ``other_changes`` counts the label's changes that are not branch statuses (generator outages,
    ratings, loads): not applied here.
    """

    label: int
    probability: float
    branch_rows: tuple[int, ...]
    line_positions: tuple[int, ...]
    line_names: tuple[str, ...]
    other_changes: int = 0


def contingencies(table: ChangeTable, network: Network, case: str | os.PathLike[str]) -> tuple[Contingency, ...]:
    """The branch outages of every label that changes a branch status, labels ascending.

    ``case`` is the .m file ``network`` was built from (or a stem in the matpower package).
    Labels without a BR_STATUS change (a generator outage) are left out. BR_STATUS changes follow
    apply_changes.m: CT_TBRCH names a branch row (0: every branch), CT_TAREABRCH every branch
    with an end in the area (BUS_AREA); CT_REP, CT_REL and CT_ADD act on the status in turn, and a
    branch whose status ends <= 0 is out. A row the case does not have is an error naming the
    label and the row, and so is a label that puts back a branch the case has out of service
    (the network has no line for it).
    """
    case_data = read_case_columns(case)
    positions = network_line_positions(case_data, network)
    found: list[Contingency] = []
    for label, changes in change_sets(table):
        statuses: dict[int, float] = {}
        status_changes = 0
        for i in changes.tolist():
            if int(table.table[i]) in (CT_TBRCH, CT_TAREABRCH) and int(table.column[i]) == _BR_STATUS:
                _change_status(table, i, label, case_data, statuses)
                status_changes += 1
        if status_changes:
            found.append(_contingency(table, changes, label, statuses, case_data, positions, network,
                                      len(changes) - status_changes))
    return tuple(found)


def _change_status(table: ChangeTable, i: int, label: int, case: CaseColumns, statuses: dict[int, float]) -> None:
    code, row, kind, value = int(table.table[i]), int(table.row[i]), int(table.change_type[i]), float(table.new_value[i])
    count = case.branch_on.size
    if code == CT_TAREABRCH:
        rows = np.flatnonzero((case.area[case.from_row] == row) | (case.area[case.to_row] == row)).tolist()
    elif row == 0:
        rows = list(range(count))
    elif row > count:
        raise GridError(f"{at_line(table, i)}: label {label} changes branch row {row}, but case {case.label} has "
                        f"{count} branches; fix the row")
    else:
        rows = [row - 1]
    for r in rows:
        old = statuses.get(r, 1.0 if case.branch_on[r] else 0.0)
        statuses[r] = value if kind == CT_REP else old * value if kind == CT_REL else old + value


def _contingency(table: ChangeTable, changes: np.ndarray, label: int, statuses: dict[int, float], case: CaseColumns,
                 positions: np.ndarray, network: Network, other: int) -> Contingency:
    back = [r for r, status in statuses.items() if status > 0 and not case.branch_on[r]]
    if back:
        raise GridError(f"change table {table.source}: label {label} puts branch row {back[0] + 1} back in service, "
                        f"but it is out of service in case {case.label} and the network has no line for it")
    out = sorted(r for r, status in statuses.items() if status <= 0)
    lines = [int(positions[r]) for r in out if positions[r] >= 0]
    return Contingency(
        label=label,
        probability=float(table.probability[changes[0]]),
        branch_rows=tuple(r + 1 for r in out),
        line_positions=tuple(lines),
        line_names=tuple(network.lines[p].name for p in lines),
        other_changes=other,
    )


# --------------------------------------------------------------------------------------------
# Islanding
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BranchOutage:
    """The outage of one line: whether it islands the network, and what it cuts off the reference bus."""

    position: int
    name: str
    islands: bool
    stranded_buses: int
    stranded_load_mw: float


def single_branch_outages(network: Network) -> tuple[BranchOutage, ...]:
    """Every line's outage alone, in line order, flagged when it leaves some bus disconnected.

    A line islands the network exactly when it is a bridge (on no cycle); parallel lines share
    their cycle, so neither of a pair islands. One depth-first search from the reference bus
    (Tarjan's low-link, iterative so that 10,000-bus cases do not hit Python's recursion limit)
    finds them all in O(buses + lines), and the bus count and base load cut off with each.
    """
    index = {bus: k for k, bus in enumerate(network.bus_numbers)}
    ends = [(index[line.from_bus], index[line.to_bus]) for line in network.lines]
    below = _bridges(len(index), ends, index[network.reference_bus])
    sizes, loads = _subtree_totals(below, [bus.base_load_mw for bus in network.buses])
    outages = []
    for position, line in enumerate(network.lines):
        child = below.bridge_child[position]
        outages.append(BranchOutage(position, line.name, child >= 0, sizes[child] if child >= 0 else 0,
                                    loads[child] if child >= 0 else 0.0))
    return tuple(outages)


@dataclass(frozen=True)
class _Search:
    """A depth-first search tree: each bus's parent (-1 at the root) in visiting order, and for each
    line the bus below it when it is a bridge (-1 otherwise)."""

    order: list[int]
    parent: list[int]
    bridge_child: list[int]


def _bridges(count: int, ends: Sequence[tuple[int, int]], root: int) -> _Search:
    neighbours: list[list[tuple[int, int]]] = [[] for _ in range(count)]
    for edge, (a, b) in enumerate(ends):
        neighbours[a].append((b, edge))
        neighbours[b].append((a, edge))
    found = [-1] * count
    low = [0] * count
    parent, via = [-1] * count, [-1] * count
    bridge_child = [-1] * len(ends)
    next_edge = [0] * count
    order = [root]
    found[root] = 0
    stack = [root]
    while stack:
        v = stack[-1]
        if next_edge[v] < len(neighbours[v]):
            w, edge = neighbours[v][next_edge[v]]
            next_edge[v] += 1
            if edge == via[v]:
                continue  # the tree edge back up; a parallel line has its own number and counts
            if found[w] < 0:
                found[w] = low[w] = len(order)
                parent[w], via[w] = v, edge
                order.append(w)
                stack.append(w)
            else:
                low[v] = min(low[v], found[w])
            continue
        stack.pop()
        u = parent[v]
        if u >= 0:
            low[u] = min(low[u], low[v])
            if low[v] > found[u]:
                bridge_child[via[v]] = v
    return _Search(order, parent, bridge_child)


def _subtree_totals(search: _Search, loads: Sequence[float]) -> tuple[list[int], list[float]]:
    """Buses and base load in each bus's subtree (the part a bridge above it would cut off)."""
    sizes = [1] * len(loads)
    totals = list(loads)
    for v in reversed(search.order):
        u = search.parent[v]
        if u >= 0:
            sizes[u] += sizes[v]
            totals[u] += totals[v]
    return sizes, totals


def islanded_buses(network: Network, line_positions: Iterable[int]) -> tuple[int, ...]:
    """The buses (in bus order) that an outage of these lines cuts off the reference bus.

    scipy's sparse connected components on the lines left in service; for a
    :class:`Contingency`, pass its ``line_positions``.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    out = set(int(p) for p in line_positions)
    unknown = [p for p in out if not 0 <= p < len(network.lines)]
    if unknown:
        raise GridError(f"line position {unknown[0]} is not a line of network {network.name!r} "
                        f"(positions 0 ... {len(network.lines) - 1})")
    index = {bus: k for k, bus in enumerate(network.bus_numbers)}
    kept = [line for position, line in enumerate(network.lines) if position not in out]
    rows = [index[line.from_bus] for line in kept]
    cols = [index[line.to_bus] for line in kept]
    n = len(index)
    graph = coo_matrix((np.ones(len(kept)), (rows, cols)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    cut = component != component[index[network.reference_bus]]
    return tuple(bus for bus, off in zip(network.bus_numbers, cut.tolist()) if off)



def shipped_contingency_lines(network: Network, case: str | os.PathLike[str],
                              base_dir: Path | None = None) -> tuple[tuple[int, ...], str] | None:
    """The single-branch outages of the case's own contingency list, contab_<name>.m beside its
    .m file, <name> the case's file name without a leading "case_" (case_ACTIVSg2000.m ships
    contab_ACTIVSg2000.m), as line positions of ``network``, and the file's name;
    None when the case has no such list. Labels that take out several branches at once, or only
    branches already out of service, are not single outages and are left out. ``case`` is read as
    load_case reads it (a built-in name, or a path relative to ``base_dir``)."""
    try:
        path = case_file(case, base_dir)
    except GridError:
        return None
    listed = next((path.with_name(f"contab_{stem}.m") for stem in (path.stem.removeprefix("case_"), path.stem)
                   if path.with_name(f"contab_{stem}.m").is_file()), None)
    if listed is None:
        return None
    found = contingencies(read_change_table(listed), network, path)
    lines = sorted({c.line_positions[0] for c in found if len(c.line_positions) == 1})
    return tuple(lines), listed.name
