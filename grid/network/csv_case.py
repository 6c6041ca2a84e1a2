"""Networks from a folder of CSV files: our own plain format for cases MATPOWER does not have.

Format
------
A case folder holds two or three CSV files: UTF-8, comma-separated, one header line naming the
columns (in any order, case-insensitive). Blank lines are skipped. An unknown column is an error,
so that a misspelt optional column (say ``rating`` for ``rating_mw``) is not silently ignored.

``buses.csv`` (required), one row per bus:

- ``bus``: integer bus number, unique (required).
- ``base_load_mw``: base-case load in MW (blank = 0).
- ``withdrawal_limit_mw``: limit on the bus's net withdrawal in MW, > 0 (blank = no limit).
- ``x``, ``y``: coordinates for plots; both columns or neither, and a row gives both or neither.
- ``type``: ``ref`` marks the reference (slack/substation) bus, exactly one; other rows blank.
  Without the column the first bus is the reference bus (and a note says so).

``lines.csv`` (required), one row per line or transformer:

- ``from``, ``to``: bus numbers (required); positive flow runs from -> to.
- ``name``: unique name (blank = ``from-to``; parallel lines ``from-to#2``, ``from-to#3``, ...).
- ``rating_mw``: thermal limit in MW; blank or 0 = unrated (see below); ``inf`` = deliberately
  unlimited.
- ``reactance_pu``: series reactance in p.u., non-zero, negative allowed; may be blank when the
  network is radial (a tree's flows do not depend on reactances).
- ``in_service``: 1 (default) or 0 (the line is left out).

``generators.csv`` (optional), one row per generator:

- ``bus``: bus number (required).
- ``output_mw``: committed output Pg in MW (required).
- ``max_mw``: maximum output Pmax in MW (required).
- ``in_service``: 1 (default) or 0.

Example (a meshed 3-bus case with one generator)::

    buses.csv               lines.csv                       generators.csv
    bus,base_load_mw,type   from,to,rating_mw,reactance_pu  bus,output_mw,max_mw
    1,0,ref                 1,2,100,0.1                     1,50,200
    2,30,                   2,3,,0.1
    3,20,                   1,3,80,0.2

The rules are MATPOWER's (grid/network/matpower.py): committed generation is scaled to the total
base load, because the DC model is lossless; with generator headroom the slack defaults to
distributed, else to the reference bus. An unrated line gets
max(default_rating_mw, rating_margin x |base-case DC flow|) (grid/network/ratings.py); without either
option an unrated line is an error, because it would otherwise be unlimited. Errors name the
file, the line number and the column: ``case/lines.csv, line 5, column rating_mw: 'abc' is not
a number``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from grid.errors import GridError
from grid.network.matpower import CaseTables, assemble_network
from grid.network.network import MAX_MW, Bus, Line, Network
from grid.network.ratings import RatingRule

BUS_COLUMNS = ("bus", "base_load_mw", "withdrawal_limit_mw", "x", "y", "type")
LINE_COLUMNS = ("from", "to", "name", "rating_mw", "reactance_pu", "in_service")
GENERATOR_COLUMNS = ("bus", "output_mw", "max_mw", "in_service")


@dataclass(frozen=True)
class CsvRow:
    """One data row: its line number in the file and its cells by (lower-case) column name."""

    line: int
    cells: dict[str, str]


@dataclass(frozen=True)
class CsvTable:
    """A CSV file read as text, with typed accessors whose errors name file, line and column."""

    display: str
    columns: tuple[str, ...]
    rows: tuple[CsvRow, ...]

    def has(self, column: str) -> bool:
        return column in self.columns

    def error(self, row: CsvRow | None, column: str | None, message: str) -> GridError:
        where = self.display
        if row is not None:
            where += f", line {row.line}"
        if column is not None:
            where += f", column {column}"
        return GridError(f"{where}: {message}")

    def text(self, row: CsvRow, column: str) -> str:
        """The stripped cell; '' when blank or when the file has no such column."""
        return row.cells.get(column, "")

    def number(
        self,
        row: CsvRow,
        column: str,
        *,
        blank: float | None = None,
        allow_inf: bool = False,
        low: float | None = None,
        low_inclusive: bool = True,
        unit: str = "",
        ceiling: float | None = None,
    ) -> float | None:
        """The cell as a float; ``blank`` when empty; bounds checked with the column's unit;
        with ``ceiling``, a finite value at most that in size."""
        text = self.text(row, column)
        if text == "":
            return blank
        try:
            value = float(text)
        except ValueError:
            raise self.error(row, column, f"{text!r} is not a number") from None
        if math.isnan(value) or (math.isinf(value) and not allow_inf):
            raise self.error(row, column, f"{text!r} is not a finite number")
        if low is not None and (value < low or (value == low and not low_inclusive)):
            relation = ">=" if low_inclusive else ">"
            raise self.error(row, column, f"{text!r} must be {relation} {low:g}{unit}")
        if ceiling is not None and math.isfinite(value) and abs(value) > ceiling:
            raise self.error(row, column, f"{text!r} is above the ceiling of {ceiling:g}{unit} in size")
        return value

    def bus(self, row: CsvRow, column: str) -> int:
        """The cell as an integer bus number (required)."""
        text = self.text(row, column)
        if text == "":
            raise self.error(row, column, "blank; give a bus number")
        try:
            return int(text)
        except ValueError:
            pass
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not value.is_integer():
            raise self.error(row, column, f"{text!r} is not an integer bus number")
        return int(value)

    def flag(self, row: CsvRow, column: str) -> bool:
        """A 0/1 cell; blank means 1."""
        text = self.text(row, column)
        if text in ("", "1"):
            return True
        if text == "0":
            return False
        raise self.error(row, column, f"{text!r} must be 1 (in service) or 0 (out of service)")


def read_table(path: Path, display: str, required: Sequence[str], optional: Sequence[str]) -> CsvTable:
    """Read a CSV file as text rows, checking its header against the known columns.

    ``display`` is how messages name the file (the path as the user wrote it).
    """
    try:
        raw = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GridError(f"{display}: not UTF-8 text (byte {exc.start}); save it as a UTF-8 CSV file") from None
    except OSError as exc:
        raise GridError(f"{display}: cannot read the file ({exc.strerror or exc}); check the path") from None
    reader = csv.reader(raw.splitlines())
    header: list[str] | None = None
    header_line = 0
    rows: list[CsvRow] = []
    try:
        for fields in reader:
            if not any(cell.strip() for cell in fields):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in fields]
                header_line = reader.line_num
                continue
            if len(fields) != len(header):
                raise GridError(
                    f"{display}, line {reader.line_num}: {len(fields)} fields but the header "
                    f"(line {header_line}) names {len(header)} columns"
                )
            rows.append(CsvRow(reader.line_num, {name: cell.strip() for name, cell in zip(header, fields)}))
    except csv.Error as exc:
        raise GridError(f"{display}, line {reader.line_num}: not valid CSV ({exc})") from None
    if header is None:
        raise GridError(f"{display} is empty; its first line must name the columns ({', '.join(required)}, ...)")
    known = tuple(required) + tuple(optional)
    for position, name in enumerate(header):
        if name == "":
            raise GridError(f"{display}, line {header_line}: column {position + 1} has no name; name it or delete it")
        if name not in known:
            raise GridError(
                f"{display}, line {header_line}: unknown column {name!r}; known columns are {', '.join(known)}"
            )
        if header.index(name) != position:
            raise GridError(f"{display}, line {header_line}: column {name!r} appears twice")
    for name in required:
        if name not in header:
            raise GridError(
                f"{display}, line {header_line}: missing required column {name!r}; required columns are "
                f"{', '.join(required)}"
            )
    return CsvTable(display, tuple(header), tuple(rows))


def _line_names(table: CsvTable, ends: list[tuple[CsvRow, int, int]]) -> list[str]:
    """Given names where present, else "from-to" (then "#2", "#3", ...) without clashing."""
    given: dict[str, int] = {}
    for row, _, _ in ends:
        name = table.text(row, "name")
        if name:
            if name in given:
                raise table.error(
                    row, "name", f"{name!r} is also the name on line {given[name]}; line names must be unique"
                )
            given[name] = row.line
    names: list[str] = []
    used = set(given)
    counts: dict[str, int] = {}
    for row, start, end in ends:
        name = table.text(row, "name")
        if not name:
            base = f"{start}-{end}"
            count = counts.get(base, 0)
            while True:
                count += 1
                name = base if count == 1 else f"{base}#{count}"
                if name not in used:
                    break
            counts[base] = count
            used.add(name)
        names.append(name)
    return names


def load_csv_case(
    folder: Path,
    *,
    name: str | None = None,
    label: str | None = None,
    rule: RatingRule | None = None,
    slack: str | None = None,
) -> tuple[Network, int]:
    """The network of a CSV case folder (format in the module doc) and its number of unrated lines.

    ``name`` defaults to the folder's name, ``label`` (how messages name the case and its files)
    to the folder path.
    """
    name = name or folder.resolve().name
    label = label or str(folder)
    prefix = label.rstrip("/\\")
    for required in ("buses.csv", "lines.csv"):
        if not (folder / required).is_file():
            raise GridError(
                f"case {label}: the folder has no {required}; a CSV case folder needs buses.csv and "
                "lines.csv (generators.csv is optional)"
            )
    notes: list[str] = []
    buses, first_line, reference_bus = _read_buses(folder, prefix, notes)
    lines, unrated, unrated_rows = _read_lines(folder, prefix, buses, first_line, notes)
    generators = _read_generators(folder, prefix, first_line, notes)
    tables = CaseTables(
        name=name,
        label=label,
        buses=buses,
        lines=lines,
        reference_bus=reference_bus,
        generators=generators,
        unrated=unrated,
        notes=notes,
        line_word="lines",
        unrated_what="lines without rating_mw",
        unrated_hint=(
            f"(rating_mw blank or 0), e.g. line {lines[unrated[0]].name} (lines.csv line {unrated_rows[0]})"
            if unrated else ""
        ),
    )
    return assemble_network(tables, rule, slack), len(unrated)


def _read_buses(folder: Path, prefix: str, notes: list[str]) -> tuple[list[Bus], dict[int, int], int]:
    """buses.csv: the buses, the file line of each bus number, and the reference bus."""
    table = read_table(folder / "buses.csv", f"{prefix}/buses.csv", ("bus",), BUS_COLUMNS[1:])
    if not table.rows:
        raise table.error(None, None, "has no buses; give one row per bus")
    if table.has("x") != table.has("y"):
        present = "x" if table.has("x") else "y"
        raise table.error(None, None, f"has column {present!r} without its partner; give both x and y or neither")
    buses: list[Bus] = []
    first_line: dict[int, int] = {}
    reference: tuple[int, int] | None = None  # (bus, line)
    for row in table.rows:
        number = table.bus(row, "bus")
        if number in first_line:
            raise table.error(
                row, "bus", f"bus {number} appears again (first on line {first_line[number]}); bus numbers must be unique"
            )
        first_line[number] = row.line
        bus = _bus(table, row, number)  # its numbers are checked before its type, row by row
        if _is_reference(table, row, number, reference):
            reference = (number, row.line)
        buses.append(bus)
    if table.has("type"):
        if reference is None:
            raise table.error(None, "type", "no bus has type ref; mark exactly one bus (the reference/slack bus) with ref")
        return buses, first_line, reference[0]
    notes.append(f"buses.csv has no type column: the first bus, {buses[0].number}, is the reference bus")
    return buses, first_line, buses[0].number


def _bus(table: CsvTable, row: CsvRow, number: int) -> Bus:
    limit = table.number(row, "withdrawal_limit_mw", blank=math.inf, allow_inf=True, low=0, low_inclusive=False,
                         unit=" MW", ceiling=MAX_MW)
    load = table.number(row, "base_load_mw", blank=0.0, unit=" MW", ceiling=MAX_MW)
    x, y = table.number(row, "x"), table.number(row, "y")
    if (x is None) != (y is None):
        missing = "y" if y is None else "x"
        raise table.error(row, missing, "blank while the other coordinate is given; give both x and y or neither")
    assert limit is not None and load is not None
    return Bus(number, withdrawal_limit_mw=limit, base_load_mw=load, coordinates=None if x is None else (x, y))


def _is_reference(table: CsvTable, row: CsvRow, number: int, reference: tuple[int, int] | None) -> bool:
    """Whether the row's type marks the reference bus; a second one, or another type, is refused."""
    kind = table.text(row, "type").lower()
    if kind == "ref":
        if reference is not None:
            raise table.error(
                row, "type",
                f"bus {number} is a second reference bus (bus {reference[0]} on line {reference[1]} is the first); "
                "mark exactly one bus with type = ref",
            )
        return True
    if kind != "":
        raise table.error(row, "type", f"{table.text(row, 'type')!r} is not a bus type; write ref for the reference bus, else leave it blank")
    return False


def _read_lines(folder: Path, prefix: str, buses: list[Bus], first_line: dict[int, int],
                notes: list[str]) -> tuple[list[Line], list[int], list[int]]:
    """lines.csv: the lines in service, the positions of the unrated ones and their file lines."""
    table = read_table(folder / "lines.csv", f"{prefix}/lines.csv", ("from", "to"), LINE_COLUMNS[2:])
    kept: list[tuple[CsvRow, int, int]] = []
    dropped = 0
    for row in table.rows:
        ends = []
        for column in ("from", "to"):
            bus = table.bus(row, column)
            if bus not in first_line:
                raise table.error(row, column, f"bus {bus} is not in buses.csv; add it there or fix the number")
            ends.append(bus)
        if ends[0] == ends[1]:
            raise table.error(row, "to", f"the line connects bus {ends[0]} to itself; fix from or to")
        if table.flag(row, "in_service"):
            kept.append((row, ends[0], ends[1]))
        else:
            dropped += 1
    if dropped:
        notes.append(f"{dropped} out-of-service lines (in_service = 0) dropped")
    lines: list[Line] = []
    unrated: list[int] = []
    unrated_rows: list[int] = []
    meshed = len(kept) >= len(buses)  # more lines than a tree has: there is a loop
    for (row, start, end), line_name in zip(kept, _line_names(table, kept)):
        rating = table.number(row, "rating_mw", blank=0.0, allow_inf=True, low=0, unit=" MW", ceiling=MAX_MW)
        reactance = table.number(row, "reactance_pu")
        if reactance == 0:
            raise table.error(
                row, "reactance_pu",
                f"line {line_name} has zero reactance; a DC power flow needs x != 0; give it a reactance or merge the buses",
            )
        if reactance is None and meshed:
            what = "blank" if table.has("reactance_pu") else "missing (no reactance_pu column)"
            raise table.error(
                row, "reactance_pu",
                f"line {line_name}: reactance {what}, but the network is meshed ({len(kept)} lines, {len(buses)} buses); "
                "a meshed network needs a reactance on every line",
            )
        assert rating is not None
        if rating == 0:
            unrated.append(len(lines))
            unrated_rows.append(row.line)
        lines.append(Line(line_name, start, end, rating if rating > 0 else math.inf, reactance))
    return lines, unrated, unrated_rows


def _read_generators(folder: Path, prefix: str, first_line: dict[int, int],
                     notes: list[str]) -> list[tuple[int, float, float]]:
    """generators.csv, when there is one: (bus, output, maximum) of each generator in service."""
    generators: list[tuple[int, float, float]] = []
    if not (folder / "generators.csv").is_file():
        return generators
    table = read_table(folder / "generators.csv", f"{prefix}/generators.csv", GENERATOR_COLUMNS[:3], GENERATOR_COLUMNS[3:])
    off = 0
    for row in table.rows:
        bus = table.bus(row, "bus")
        if bus not in first_line:
            raise table.error(row, "bus", f"bus {bus} is not in buses.csv; add it there or fix the number")
        output = table.number(row, "output_mw", unit=" MW", ceiling=MAX_MW)
        maximum = table.number(row, "max_mw", unit=" MW", ceiling=MAX_MW)
        for column, value in (("output_mw", output), ("max_mw", maximum)):
            if value is None:
                raise table.error(row, column, "blank; give a number of MW")
        if table.flag(row, "in_service"):
            assert output is not None and maximum is not None
            generators.append((bus, output, maximum))
        else:
            off += 1
    if off:
        notes.append(f"{off} out-of-service generators (in_service = 0) dropped")
    return generators
