"""The structural check of a PSS/E RAW file before the reader gets it: version, sections, records.

The reader (pypowsybl, grid/network/psse.py) reports any fault as "Parsing error" with no line,
reads a file that stops after its branch data, and drops a branch to an unknown bus without a
word. So before it runs, this module walks the file the way PSS/E's RAW format lays it out and
turns the first fault into one GridError naming the file, the line and the fix:

- line 1 is IC, SBASE, REV, ...: REV must be a version the reader reads (33 or 35), SBASE > 0;
  lines 2 and 3 are titles;
- v35 then has its system-wide data (GENERAL, RATING, ...), closed by a line "0";
- then the sections this package reads, in file order, each closed by a line whose first value is
  0 (``0 / END OF BUS DATA, BEGIN LOAD DATA``); a "Q" line or the end of the file before the
  last of them closes is a missing section;
- in those sections every value that the format makes a number must read as one, every bus a
  load, shunt, generator, branch or transformer names must be in the bus data, and no branch or
  transformer repeats another's buses and circuit id (the reader keeps only one of them).

Values are separated by commas or blanks; text may be quoted with ' or "; a "/" outside quotes
starts a comment; two commas in a row leave a value at its default. Sections after the
transformers (areas, DC lines, switched shunts, ...) are left to the reader.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from grid.errors import GridError

SUPPORTED_VERSIONS = (33, 35)
# The sections read, in file order, per version.
_SECTIONS = {
    33: ("BUS", "LOAD", "FIXED SHUNT", "GENERATOR", "BRANCH", "TRANSFORMER"),
    35: ("BUS", "LOAD", "FIXED SHUNT", "GENERATOR", "BRANCH", "SYSTEM SWITCHING DEVICE", "TRANSFORMER"),
}
# Per section: the 0-based positions that hold text (every other value is a number), and those
# that name a bus. Transformers have a record of 4 lines (5 for three windings): line 1's.
_TEXT = {
    33: {"BUS": {1}, "LOAD": {1}, "FIXED SHUNT": {1}, "GENERATOR": {1}, "BRANCH": {2},
         "TRANSFORMER": {3, 10, 20}},
    35: {"BUS": {1}, "LOAD": {1, 17}, "FIXED SHUNT": {1}, "GENERATOR": {1}, "BRANCH": {2, 6},
         "SYSTEM SWITCHING DEVICE": {2, 20}, "TRANSFORMER": {3, 10, 20}},
}
_BUS_FIELDS = {"LOAD": (0,), "FIXED SHUNT": (0,), "GENERATOR": (0,), "BRANCH": (0, 1),
               "SYSTEM SWITCHING DEVICE": (0, 1), "TRANSFORMER": (0, 1, 2)}
_RECORD = {"BUS": "bus", "LOAD": "load", "FIXED SHUNT": "fixed shunt", "GENERATOR": "generator",
           "BRANCH": "branch", "SYSTEM SWITCHING DEVICE": "switching device", "TRANSFORMER": "transformer"}
_TOKENS = re.compile(r"'[^']*'|\"[^\"]*\"|/|,|[^,\s'\"/]+")
_FIX = "check it against PSS/E's RAW format (Program Operation Manual, 'Power Flow Raw Data File Contents')"


@dataclass(frozen=True)
class RawOutline:
    """What the check found: the version, the system base and, per section, its records in file
    order as the reader names them (bus numbers; "B3-G1" for unit 1 at bus 3, "L-1-2-1" for
    circuit 1 of branch 1-2, "T-4-7-1" or "T-4-7-9-1" for a transformer)."""

    version: int
    base_mva: float
    records: dict[str, tuple[object, ...]]


def _record_key(section: str, values: list[str]) -> object:
    """The record's name in the reader's network (pypowsybl's PSS/E importer names them so)."""
    text = [v.replace(" ", "") for v in values] + [""] * 4

    def bus(position: int) -> str:
        return str(abs(int(float(text[position])))) if text[position] else "0"

    if section == "BUS":
        return int(bus(0))
    if section == "GENERATOR":
        return f"B{bus(0)}-G{text[1] or '1'}"
    if section == "BRANCH":
        return f"L-{bus(0)}-{bus(1)}-{text[2] or '1'}"
    if section == "TRANSFORMER":
        ends = [bus(0), bus(1)] + ([bus(2)] if bus(2) != "0" else [])
        return f"T-{'-'.join(ends)}-{text[3] or '1'}"
    return None


def fields(text: str) -> list[str]:
    """The values of one RAW line: quotes kept off, a comment cut, an empty value for ",,"."""
    values: list[str] = []
    expecting = True
    for token in _TOKENS.findall(text):
        if token == "/":
            break
        if token == ",":
            if expecting:
                values.append("")
            expecting = True
        else:
            values.append(token[1:-1] if token[0] in "'\"" else token)
            expecting = False
    return values


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


class _Lines:
    """The file's lines with their numbers, PSS/E's "@!" comment lines skipped."""

    def __init__(self, text: str, label: str) -> None:
        self.lines = text.splitlines()
        self.label = label
        self.at = 0

    def next(self) -> tuple[int, list[str]] | None:
        while self.at < len(self.lines):
            self.at += 1
            line = self.lines[self.at - 1]
            if not line.lstrip().startswith("@!"):
                return self.at, fields(line)
        return None

    def error(self, number: int, text: str) -> GridError:
        return GridError(f"case {self.label}, line {number}: {text}")


def _header(lines: _Lines) -> tuple[int, float]:
    found = lines.next()
    values = found[1] if found else []
    if len(values) < 3 or _number(values[2]) is None:
        raise GridError(f"case {lines.label}, line 1: no PSS/E version (REV, the third value of 'IC, SBASE, REV, ...'); "
                        f"a RAW file starts with its case identification, e.g. '0, 100.0, 35, 0, 1, 60.0'")
    version, base = _number(values[2]), _number(values[1])
    if version not in SUPPORTED_VERSIONS:
        raise GridError(f"case {lines.label}, line 1: PSS/E version {values[2]} (REV) is not read; the RAW reader reads "
                        f"versions {' and '.join(map(str, SUPPORTED_VERSIONS))}: save the case from PSS/E as one of them")
    if base is None or base <= 0:
        raise GridError(f"case {lines.label}, line 1: SBASE {values[1]!r} is not a system base > 0 MVA; give it, e.g. 100.0")
    assert found is not None
    lines.at = found[0] + 2  # the next two lines are titles, whatever they hold
    return int(version), base


def _closes(values: list[str]) -> bool:
    return bool(values) and values[0] == "0" and len(values) == 1


def _ended(values: list[str]) -> bool:
    return bool(values) and values[0].upper() == "Q"


def _missing(lines: _Lines, section: str, number: int | None) -> GridError:
    where = f"line {number}" if number is not None else f"line {len(lines.lines)} (the end of the file)"
    return GridError(f"case {lines.label}, {where}: the file ends before its {section} data closes (a line "
                     f"'0 / END OF {section} DATA'); the section is missing or cut short: {_FIX}")


def _check_record(lines: _Lines, number: int, values: list[str], section: str, text: set[int]) -> None:
    what = _RECORD[section]
    if not values or _number(values[0]) is None or float(values[0]) != int(float(values[0])):
        raise lines.error(number, f"{what} record starts with {values[0] if values else 'nothing'!r}, not a bus number; {_FIX}")
    for position, value in enumerate(values):
        if position not in text and value != "" and _number(value) is None:
            raise lines.error(number, f"{what} record, value {position + 1} is {value!r}, not a number; {_FIX}")


def _check_buses(lines: _Lines, number: int, values: list[str], section: str, buses: set[int]) -> None:
    for position in _BUS_FIELDS.get(section, ()):
        if position < len(values) and values[position] != "":
            bus = abs(int(float(values[position])))  # a negative J marks the metered end
            if bus and bus not in buses:
                raise lines.error(number, f"{_RECORD[section]} names bus {bus}, which is not in the bus data; "
                                          "fix the bus number or add the bus")


def _check_circuit(lines: _Lines, number: int, values: list[str], section: str, seen: dict[tuple, int]) -> None:
    """A branch or transformer is its buses (in any order) and its circuit id; twice is an error."""
    if section not in ("BRANCH", "TRANSFORMER"):
        return
    ends = [abs(int(float(v))) for v in values[:3 if section == "TRANSFORMER" else 2] if v not in ("", "0")]
    circuit = values[3 if section == "TRANSFORMER" else 2].strip() if len(values) > 3 else "1"
    key = (tuple(sorted(ends)), circuit or "1")
    if key in seen:
        raise lines.error(number, f"{_RECORD[section]} {'-'.join(map(str, ends))} circuit {circuit!r} is already on "
                                  f"line {seen[key]}; give parallel branches distinct circuit ids (CKT)")
    seen[key] = number


def _section(lines: _Lines, section: str, text: set[int], buses: set[int],
             seen: dict[tuple, int]) -> tuple[object, ...]:
    """Check one section's records up to its closing line; their keys (``_record_key``) in order."""
    keys: list[object] = []
    while (found := lines.next()) is not None:
        number, values = found
        if _ended(values):
            raise _missing(lines, section, number)
        if _closes(values):
            return tuple(keys)
        if not values:
            continue
        _check_record(lines, number, values, section, text)
        if section == "BUS":
            buses.add(int(float(values[0])))
        _check_buses(lines, number, values, section, buses)
        _check_circuit(lines, number, values, section, seen)
        if section == "TRANSFORMER":
            windings = 3 if len(values) > 2 and values[2] not in ("", "0") else 2
            _transformer_lines(lines, windings)
        keys.append(_record_key(section, values))
    raise _missing(lines, section, None)


def _transformer_lines(lines: _Lines, windings: int) -> None:
    """Lines 2 to 4 (5) of a transformer record: numbers only."""
    for _ in range(windings + 1):
        found = lines.next()
        if found is None or _ended(found[1]) or _closes(found[1]):
            raise _missing(lines, "TRANSFORMER", found[0] if found else None)
        number, values = found
        bad = next((v for v in values if v != "" and _number(v) is None), None)
        if bad is not None:
            raise lines.error(number, f"transformer record, {bad!r} is not a number; {_FIX}")


def check_raw(path: Path, label: str) -> RawOutline:
    """The file's version, system base and record counts; a GridError at its first fault."""
    try:
        text = path.read_bytes().decode("latin-1")
    except OSError as exc:
        raise GridError(f"case {label}: cannot read the file ({' '.join(str(exc.strerror or exc).split())}); check the path") from None
    if "\x00" in text:
        raise GridError(f"case {label}: not a text file (it holds NUL bytes); give a PSS/E RAW case file")
    lines = _Lines(text, label)
    version, base = _header(lines)
    if version >= 35:
        while (found := lines.next()) is not None and not _closes(found[1]):
            if _ended(found[1]):
                raise _missing(lines, "SYSTEM-WIDE", found[0])
        if found is None:
            raise _missing(lines, "SYSTEM-WIDE", None)
    buses: set[int] = set()
    seen: dict[tuple, int] = {}
    records = {section: _section(lines, section, _TEXT[version][section], buses, seen) for section in _SECTIONS[version]}
    if not records["BUS"]:
        raise GridError(f"case {label}: the bus data is empty; a case needs at least one bus")
    return RawOutline(version, base, records)
