"""MATPOWER case files (.m) as DC networks, following MATPOWER's own DC conventions.

What we keep and why:

- Buses: every bus except the isolated ones (BUS_TYPE = 4), as MATPOWER's ext2int does; their
  base load is PD. The reference bus is the first bus with BUS_TYPE = 3.
- Generators: in service (GEN_STATUS > 0) and at a connected bus. PG in a MATPOWER case also
  covers the AC losses, which the lossless DC model does not have: when sum(PG) is within 10 % of
  sum(PD) (a loss-sized gap) the committed outputs are scaled by sum(PD) / sum(PG) to balance
  the base load exactly. A larger gap is not losses (case57's PG covers 74 % of its PD: its
  reference unit is dispatched by the AC power flow), and scaling every unit by it would move
  the base flows: the outputs are kept and the slack supplies the gap (distributed: each unit in
  proportion to its headroom; reference: the reference bus's units, or the reference bus's import
  when it has none). Either way the note says so with the numbers.
- Branches: in service (BR_STATUS > 0) and between connected buses. MATPOWER's makeBdc uses the
  susceptance b = 1 / (BR_X * tap) with tap = TAP, or 1 when TAP = 0, so the stored reactance is
  BR_X * tap. A phase shifter (SHIFT, degrees) pushes -baseMVA * b * shift (rad) MW through its
  branch at flat angles (makeBdc's Pfinj), kept on the line as ``shift_flow_mw`` and added to every
  background flow (docs/models/capacity.md#phase-shifters). Negative reactances (series
  compensation, e.g. case300) are kept; a zero reactance is an error (b would be infinite).
  Lines are named "F-T"; parallel branches "F-T#2", "F-T#3", ... in file order.
- Ratings: RATE_A > 0 is the rating in MW. RATE_A = 0 means "unlimited" in MATPOWER; such
  branches get the default-rating rule of grid/network/ratings.py, or an error when no rule is given.
- Slack: distributed over the generators' headroom when the case has generator headroom (the
  case's own dispatch then picks up new load), else the reference bus.

The assembly shared with the CSV folder format (generation scaling, slack default, default
ratings, case-named errors) is :func:`assemble_network`.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from grid.errors import GridError
from grid.network.network import MAX_MW, SLACK_MODELS, Bus, Generator, Line, Network
from grid.network.ratings import RatingRule, rate_unrated_lines

# Columns each table must reach (1-based MATPOWER positions): PD is bus column 3, PMAX gen
# column 9, BR_STATUS branch column 11. Columns beyond these are not used by a DC model.
_NEEDED_COLUMNS = {
    "bus": ("BUS_I", "BUS_TYPE", "PD"),
    "gen": ("GEN_BUS", "PG", "QG", "QMAX", "QMIN", "VG", "MBASE", "GEN_STATUS", "PMAX"),
    "branch": (
        "F_BUS", "T_BUS", "BR_R", "BR_X", "BR_B", "RATE_A", "RATE_B", "RATE_C", "TAP", "SHIFT", "BR_STATUS",
    ),
}
_USED_COLUMNS = {
    "bus": ("BUS_I", "BUS_TYPE", "PD"),
    "gen": ("GEN_BUS", "PG", "GEN_STATUS", "PMAX"),
    "branch": ("F_BUS", "T_BUS", "BR_X", "RATE_A", "RATE_B", "RATE_C", "TAP", "SHIFT", "BR_STATUS"),
}
_ISOLATED, _REFERENCE = 4, 3
# MATPOWER's own default system base, for a case file that states none.
DEFAULT_BASE_MVA = 100.0
# A gap between committed generation and base load up to this share of the generation is taken for
# the AC losses of the case's power flow, and scaled away.
_LOSS_BAND = 0.10
_FIX_FORMAT = "check it against MATPOWER's case format (caseformat)"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _bus_list(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:20])
    return shown + (f", ... ({len(numbers)} buses)" if len(numbers) > 20 else "")


# --------------------------------------------------------------------------------------------
# Assembly shared with the CSV folder format
# --------------------------------------------------------------------------------------------


@dataclass
class CaseTables:
    """A case after status filters, before generation scaling and default ratings.

    Unrated lines carry ``thermal_limit_mw = inf`` at the positions in ``unrated`` until the
    rating rule replaces it. ``generators`` are (bus, Pg, Pmax) of in-service generators, as
    given. ``line_word``/``unrated_what``/``unrated_hint`` phrase the notes and the
    missing-ratings error in the file format's own terms (RATE_A vs rating_mw); the hint ends
    with an example ("(RATE_A = 0), e.g. branch 1-2").
    """

    name: str
    label: str
    buses: list[Bus]
    lines: list[Line]
    reference_bus: int
    generators: list[tuple[int, float, float]] = field(default_factory=list)
    unrated: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    line_word: str = "branches"
    unrated_what: str = "branches without RATE_A"
    unrated_hint: str = ""


def prefix_case(error: GridError, label: str) -> GridError:
    """The error with "case <label>: " in front unless it already names the case.

    Network's own messages say "network '<name>'", which names a built-in case already.
    """
    text = str(error)
    if f"case {label}" in text or f"network {label!r}" in text:
        return GridError(text)
    return GridError(f"case {label}: {text}")


def assemble_network(tables: CaseTables, rule: RatingRule | None, slack: str | None) -> Network:
    """Scale generation to the load, pick the slack, build the Network and rate unrated lines.

    ``rule`` None with unrated lines is an error: an unrated line must never become an unlimited
    one silently. ``slack`` None keeps the case default (distributed when there is headroom).
    """
    label = tables.label
    if tables.unrated and rule is None:
        raise GridError(
            f"case {label}: {len(tables.unrated)} of {len(tables.lines)} {tables.line_word} have no rating "
            f"{tables.unrated_hint}; set [network] default_rating_mw (MW) and optionally rating_margin, "
            "or rate them in the file"
        )
    notes = list(tables.notes)
    load_mw = math.fsum(bus.base_load_mw for bus in tables.buses)
    output_mw = math.fsum(pg for _, pg, _ in tables.generators)
    loss_sized = output_mw > 0 and load_mw > 0 and abs(load_mw / output_mw - 1.0) <= _LOSS_BAND + 1e-12
    factor = load_mw / output_mw if loss_sized else 1.0
    if loss_sized and factor != 1.0:
        notes.append(
            f"committed generation scaled by {factor:.4f} to the {load_mw:.1f} MW base load "
            "(the DC model has no losses)"
        )
    generators = [Generator(bus, pg * factor, pmax) for bus, pg, pmax in tables.generators]
    with_headroom = [g for g in generators if g.headroom_mw > 0]
    default_slack = "distributed" if with_headroom else "reference"
    if slack is None or slack == default_slack:
        chosen = default_slack
    else:
        if slack not in SLACK_MODELS:
            raise GridError(f"case {label}: unknown slack {slack!r}; choose one of {', '.join(SLACK_MODELS)}")
        chosen = slack
    if generators and not loss_sized:
        generators = _dispatch_gap(generators, load_mw - output_mw, chosen, tables.reference_bus, notes)
    above = sum(1 for g in generators if g.output_mw > g.max_mw)
    if above:
        # A unit past its Pmax has no headroom, so it takes no share of new load.
        notes.append(f"{above} generators are above their Pmax (no headroom)")
    if chosen == default_slack:
        if chosen == "distributed":
            headroom = [g for g in generators if g.headroom_mw > 0]
            notes.append(
                f"distributed slack (the default with generator headroom): {len(headroom)} generators "
                f"pick up new load in proportion to their headroom, "
                f"{math.fsum(g.headroom_mw for g in headroom):.1f} MW in total"
            )
    else:
        notes.append(f"{slack} slack set by the options (the case default is {default_slack})")
    try:
        network = Network(
            name=tables.name,
            buses=tuple(tables.buses),
            lines=tuple(tables.lines),
            reference_bus=tables.reference_bus,
            generators=tuple(generators),
            slack=chosen,
            notes=tuple(notes),
        )
        if tables.unrated:
            assert rule is not None
            network = rate_unrated_lines(network, tables.unrated, rule, tables.unrated_what, label)
    except GridError as error:
        raise prefix_case(error, label) from None
    return network


def _dispatch_gap(generators: list[Generator], gap_mw: float, slack: str, reference_bus: int,
                  notes: list[str]) -> list[Generator]:
    """The slack supplies a base-load gap that is not losses (see the module doc)."""
    if abs(gap_mw) < 1e-9:
        return generators
    share = [g.headroom_mw if slack == "distributed" or g.bus == reference_bus else 0.0 for g in generators]
    if slack != "distributed" and not any(share):
        # Units at the reference bus without headroom still carry the gap; none at all: import.
        share = [1.0 if g.bus == reference_bus else 0.0 for g in generators]
    total = math.fsum(share)
    if total <= 0:
        notes.append(f"committed generation differs from the base load by {gap_mw:+.1f} MW (not a loss-sized "
                     f"gap); the reference bus {reference_bus} imports it")
        return generators
    who = ("the distributed slack's units supply" if slack == "distributed"
           else f"the units at reference bus {reference_bus} supply")
    notes.append(f"committed generation differs from the base load by {gap_mw:+.1f} MW (more than "
                 f"{_LOSS_BAND:.0%}, not losses); {who} it in proportion to their headroom")
    return [Generator(g.bus, g.output_mw + gap_mw * w / total, g.max_mw) for g, w in zip(generators, share)]


# --------------------------------------------------------------------------------------------
# Reading a .m file
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatpowerData:
    """The bus, gen and branch columns a DC model uses, as float arrays in file order."""

    function_name: str
    base_mva: float | None
    bus: dict[str, np.ndarray]
    gen: dict[str, np.ndarray]
    branch: dict[str, np.ndarray]
    dclines: int


def _read_text(path: Path, label: str) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GridError(
            f"case {label}: not a text file (byte {exc.start} is not UTF-8); give a MATPOWER .m case file"
        ) from None
    except OSError as exc:
        raise GridError(f"case {label}: cannot read the file ({_one_line(exc.strerror or exc)}); check the path") from None


def _diagnose(text: str, label: str, error: Exception | None) -> str:
    """Find what a MATPOWER file gets wrong, for a message better than the parser's exception."""
    from matpowercaseframes.constants import COLUMNS
    from matpowercaseframes.reader import parse_file

    if re.search(r"function\s*mpc\s*=\s*\S.*\n", text) is None:
        return (
            f"case {label}: not a MATPOWER case file (no 'function mpc = <name>' line); "
            f"{_FIX_FORMAT}"
        )
    counts: dict[str, int] = {}
    for table in ("bus", "gen", "branch"):
        rows = parse_file(table, text)
        if rows is None:
            return (
                f"case {label}: no mpc.{table} = [ ... ]; table found; a MATPOWER case needs "
                f"mpc.bus, mpc.gen and mpc.branch, each closed by '];'"
            )
        if not rows:
            hint = " (keep a generator row with GEN_STATUS = 0 if none is in service)" if table == "gen" else ""
            return f"case {label}: mpc.{table} has no rows; give at least one row{hint}"
        template = COLUMNS.get(table, [])
        # The most common width is the intended one, so the odd row out is the one to name.
        width = Counter(len(row) for row in rows).most_common(1)[0][0]
        for number, row in enumerate(rows, start=1):
            if len(row) != width:
                return (
                    f"case {label}: mpc.{table} row {number} has {len(row)} columns but the other rows have "
                    f"{width}; every row of a table needs the same columns"
                )
            if len(row) > len(template):
                return (
                    f"case {label}: mpc.{table} row {number} has {len(row)} columns; MATPOWER's {table} table "
                    f"has at most {len(template)}; {_FIX_FORMAT}"
                )
            for column, value in enumerate(row):
                if isinstance(value, str):
                    name = template[column] if column < len(template) else f"column {column + 1}"
                    return (
                        f"case {label}: mpc.{table} row {number}, column {column + 1} ({name}): "
                        f"{value!r} is not a number"
                    )
        counts[table] = len(rows)
    # Names (mpc.bus_name, a cell array) label the table's rows one to one.
    for table, count in counts.items():
        names = parse_file(f"{table}_name", text)
        if names is not None and len(names) != count:
            return (
                f"case {label}: mpc.{table}_name has {len(names)} name{'s' * (len(names) != 1)} but mpc.{table} has "
                f"{count} row{'s' * (count != 1)}; give one name per row, or remove mpc.{table}_name"
            )
    if error is None:
        return f"case {label}: cannot read the MATPOWER tables; {_FIX_FORMAT}"
    return (
        f"case {label}: cannot read the MATPOWER file ({type(error).__name__}: {_one_line(error)[:200]}); "
        f"{_FIX_FORMAT}"
    )


def read_matpower_file(path: Path, label: str) -> MatpowerData:
    """Parse a .m case with matpowercaseframes; every failure becomes a one-line GridError."""
    from matpowercaseframes import CaseFrames

    text = _read_text(path, label)
    if re.search(r"function\s*mpc\s*=\s*\S.*\n", text) is None:
        raise GridError(_diagnose(text, label, None))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frames = CaseFrames(str(path))
    except Exception as exc:  # the parser raises AttributeError/ValueError/IndexError on bad files
        raise GridError(_diagnose(text, label, exc)) from None

    tables: dict[str, dict[str, np.ndarray]] = {}
    for table in ("bus", "gen", "branch"):
        frame = getattr(frames, table, None)
        if frame is None:
            raise GridError(_diagnose(text, label, None))
        missing = [name for name in _NEEDED_COLUMNS[table] if name not in frame.columns]
        if missing:
            needed = _NEEDED_COLUMNS[table]
            raise GridError(
                f"case {label}: mpc.{table} has {len(frame.columns)} columns but a DC model needs at least "
                f"{len(needed)} ({needed[0]} ... {needed[-1]}); {_FIX_FORMAT}"
            )
        columns: dict[str, np.ndarray] = {}
        for name in _USED_COLUMNS[table]:
            try:
                values = frame[name].to_numpy(dtype=float)
            except (TypeError, ValueError):
                # The parser turns a whole table into text when one cell is not a number.
                raise GridError(_diagnose(text, label, None)) from None
            values.flags.writeable = False
            columns[name] = values
        tables[table] = columns
    base_mva = getattr(frames, "baseMVA", None)
    dclines = getattr(frames, "dcline", None)
    return MatpowerData(
        function_name=str(getattr(frames, "name", "") or path.stem),
        base_mva=float(base_mva) if isinstance(base_mva, (int, float)) else None,
        bus=tables["bus"],
        gen=tables["gen"],
        branch=tables["branch"],
        dclines=0 if dclines is None else len(dclines),
    )


@lru_cache(maxsize=None)
def read_builtin_matpower_file(path: str, label: str) -> MatpowerData:
    """``read_matpower_file`` once per process for the package's own case files (they never change)."""
    return read_matpower_file(Path(path), label)


# --------------------------------------------------------------------------------------------
# From the tables to a network
# --------------------------------------------------------------------------------------------


def _show(value: float) -> str:
    """A table value as the file would write it (7, 0.5, inf), not as numpy's repr."""
    return f"{float(value):g}"


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_bus_numbers(values: np.ndarray, what: str, label: str) -> np.ndarray:
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        row = _first(bad)
        raise GridError(
            f"case {label}: {what} row {row + 1} has bus number {_show(values[row])}; bus numbers are integers"
        )
    return values.astype(np.int64)


def _check_finite(
    values: np.ndarray, mask: np.ndarray, describe: Callable[[int], str], column: str, label: str,
    ceiling: float | None = None,
) -> None:
    """Every masked value finite and, with ``ceiling``, at most that in size (MW)."""
    bad = mask & ~np.isfinite(values)
    if bad.any():
        row = _first(bad)
        raise GridError(f"case {label}: {describe(row)} has {column} = {_show(values[row])}; give a finite number")
    if ceiling is not None and (mask & (np.abs(values) > ceiling)).any():
        row = _first(mask & (np.abs(values) > ceiling))
        raise GridError(f"case {label}: {describe(row)} has {column} = {_show(values[row])} MW; at most {ceiling:g} MW "
                        "in size (the ceiling per bus, line and generator)")


def _known_buses(ends: np.ndarray, unique: np.ndarray, label: str, column: str, says: Callable[[int], str]) -> None:
    """GridError for the first row of ``ends`` that names a bus mpc.bus lacks; ``says(row)`` words it."""
    unknown = ~np.isin(ends, unique)
    if unknown.any():
        row = _first(unknown)
        raise GridError(f"case {label}: {says(row)}, which is not in mpc.bus; fix its {column}")


def _branch_lines(data: MatpowerData, unique: np.ndarray, is_connected: dict[int, bool], label: str,
                  notes: list[str]) -> tuple[list[Line], list[int]]:
    """The in-service branches between connected buses as Lines (DC conventions: x tap, the
    phase shifter's flow at flat angles), and the positions of the unrated ones."""
    branch = data.branch
    f_bus = _check_bus_numbers(branch["F_BUS"], "mpc.branch", label)
    t_bus = _check_bus_numbers(branch["T_BUS"], "mpc.branch", label)

    def describe(row: int) -> str:
        return f"branch {row + 1} ({f_bus[row]}-{t_bus[row]})"

    for column, ends in (("F_BUS", f_bus), ("T_BUS", t_bus)):
        _known_buses(ends, unique, label, column, lambda row, ends=ends: f"{describe(row)} names bus {ends[row]}")
    br_status = branch["BR_STATUS"]
    _check_finite(br_status, np.ones(br_status.size, bool), describe, "BR_STATUS", label)
    ends_connected = np.array(
        [is_connected[f] and is_connected[t] for f, t in zip(f_bus.tolist(), t_bus.tolist())], dtype=bool
    )
    on = (br_status > 0) & ends_connected
    x, rate, tap, shift = branch["BR_X"], branch["RATE_A"], branch["TAP"], branch["SHIFT"]
    for values, column in ((x, "BR_X"), (rate, "RATE_A"), (tap, "TAP"), (branch["RATE_B"], "RATE_B"),
                           (branch["RATE_C"], "RATE_C")):
        _check_finite(values, on, describe, column, label, MAX_MW if column.startswith("RATE") else None)
    for bad, fix in (
        (on & (f_bus == t_bus), "connects a bus to itself; remove it or fix F_BUS/T_BUS"),
        (on & (x == 0), "has zero reactance (BR_X = 0); a DC power flow needs x != 0; give it a reactance or merge the buses"),
        (on & (rate < 0), "has a negative RATE_A; give a rating > 0 MW, or 0 for none"),
        (on & (tap < 0), "has a negative TAP; give a tap ratio > 0, or 0 for none"),
    ):
        if bad.any():
            row = _first(bad)
            raise GridError(f"case {label}: {describe(row)} {fix}")
    if ((br_status > 0) & ~ends_connected).any():
        notes.append(f"{int(((br_status > 0) & ~ends_connected).sum())} branches to isolated buses dropped")
    if (br_status <= 0).any():
        notes.append(f"{int((br_status <= 0).sum())} out-of-service branches (BR_STATUS = 0) dropped")
    _check_finite(shift, on, describe, "SHIFT", label)
    shifted = on & (shift != 0)
    base_mva = data.base_mva if data.base_mva is not None and data.base_mva > 0 else DEFAULT_BASE_MVA
    if shifted.any():
        notes.append(f"{int(shifted.sum())} phase-shifting branches: their shifts enter the DC flows as fixed "
                     f"injections (baseMVA {base_mva:g})")
    if data.dclines:
        notes.append(f"{data.dclines} DC lines (mpc.dcline) ignored")

    # makeBdc: b = 1 / (x * tap), tap = 1 where TAP = 0; Pfinj = -b * shift (rad), in MW.
    reactance = x * np.where(tap == 0, 1.0, tap)
    shift_flow = -base_mva * np.radians(np.where(on, shift, 0.0)) / np.where(on, reactance, 1.0)
    lines: list[Line] = []
    unrated: list[int] = []
    seen: dict[str, int] = {}
    # The emergency rating: RATE_B where given (> 0), else RATE_C, else none (the study's factor).
    emergency = np.where(branch["RATE_B"] > 0, branch["RATE_B"], np.where(branch["RATE_C"] > 0, branch["RATE_C"], 0.0))
    for f, t, xt, r, pushed, e in zip(f_bus[on].tolist(), t_bus[on].tolist(), reactance[on].tolist(), rate[on].tolist(),
                                      shift_flow[on].tolist(), emergency[on].tolist()):
        base = f"{f}-{t}"
        count = seen.get(base, 0) + 1
        seen[base] = count
        if r == 0:
            unrated.append(len(lines))
        lines.append(Line(base if count == 1 else f"{base}#{count}", f, t, r if r > 0 else math.inf, xt,
                          shift_flow_mw=pushed + 0.0,  # + 0.0: no -0.0 in the outputs
                          emergency_limit_mw=e if e > 0 and r > 0 else None))
    return lines, unrated


def matpower_tables(data: MatpowerData, name: str, label: str) -> CaseTables:
    """Apply MATPOWER's status filters and DC conventions; check every value we use."""
    bus_i = _check_bus_numbers(data.bus["BUS_I"], "mpc.bus", label)
    bus_type = data.bus["BUS_TYPE"]
    pd = data.bus["PD"]
    unique, first_rows, counts = np.unique(bus_i, return_index=True, return_counts=True)
    if (counts > 1).any():
        number = int(unique[counts > 1][0])
        rows = np.flatnonzero(bus_i == number)[:2] + 1
        raise GridError(
            f"case {label}: bus {number} appears twice in mpc.bus (rows {rows[0]} and {rows[1]}); "
            "bus numbers must be unique"
        )
    bad_type = ~np.isin(bus_type, (1, 2, 3, 4))
    if bad_type.any():
        row = _first(bad_type)
        raise GridError(
            f"case {label}: bus {bus_i[row]} has BUS_TYPE {_show(bus_type[row])}; MATPOWER bus types are "
            "1 (PQ), 2 (PV), 3 (reference) and 4 (isolated)"
        )
    connected = bus_type != _ISOLATED
    _check_finite(pd, connected, lambda r: f"bus {bus_i[r]}", "PD", label, MAX_MW)
    is_connected = dict(zip(bus_i.tolist(), connected.tolist()))
    notes: list[str] = []
    if not connected.any():
        raise GridError(f"case {label}: every bus is isolated (BUS_TYPE = 4); connect at least the reference bus")
    references = np.flatnonzero(connected & (bus_type == _REFERENCE))
    if references.size == 0:
        raise GridError(
            f"case {label}: no reference bus (BUS_TYPE = 3) among the {int(connected.sum())} connected buses; "
            "give the slack bus BUS_TYPE 3"
        )
    reference = int(bus_i[references[0]])
    if references.size > 1:
        notes.append(f"{references.size} buses have BUS_TYPE = 3; the first, bus {reference}, is the reference bus")
    if (~connected).any():
        notes.append(f"{int((~connected).sum())} isolated buses (BUS_TYPE = 4) dropped")
    buses = [Bus(n, base_load_mw=p) for n, p in zip(bus_i[connected].tolist(), pd[connected].tolist())]

    # Generators.
    gen = data.gen
    gen_bus = _check_bus_numbers(gen["GEN_BUS"], "mpc.gen", label)
    _known_buses(gen_bus, unique, label, "GEN_BUS", lambda row: f"generator {row + 1} is at bus {gen_bus[row]}")
    status = gen["GEN_STATUS"]
    _check_finite(status, np.ones(status.size, bool), lambda r: f"generator {r + 1} (bus {gen_bus[r]})", "GEN_STATUS", label)
    at_connected = np.array([is_connected[b] for b in gen_bus.tolist()], dtype=bool)
    on = (status > 0) & at_connected
    for column in ("PG", "PMAX"):
        _check_finite(gen[column], on, lambda r: f"generator {r + 1} (bus {gen_bus[r]})", column, label, MAX_MW)
    if ((status > 0) & ~at_connected).any():
        notes.append(f"{int(((status > 0) & ~at_connected).sum())} generators at isolated buses dropped")
    if (status <= 0).any():
        notes.append(f"{int((status <= 0).sum())} out-of-service generators (GEN_STATUS = 0) dropped")
    generators = list(zip(gen_bus[on].tolist(), gen["PG"][on].tolist(), gen["PMAX"][on].tolist()))

    lines, unrated = _branch_lines(data, unique, is_connected, label, notes)
    return CaseTables(
        name=name,
        label=label,
        buses=buses,
        lines=lines,
        reference_bus=reference,
        generators=generators,
        unrated=unrated,
        notes=notes,
        line_word="branches",
        unrated_what="branches without RATE_A",
        unrated_hint=f"(RATE_A = 0), e.g. branch {lines[unrated[0]].name}" if unrated else "",
    )


def load_matpower_case(
    path: Path,
    *,
    name: str | None = None,
    label: str | None = None,
    rule: RatingRule | None = None,
    slack: str | None = None,
    builtin: bool = False,
) -> tuple[Network, int]:
    """The DC network of a MATPOWER .m file and its number of unrated branches.

    ``name`` defaults to the file stem, ``label`` (how errors name the case) to the path.
    ``builtin`` caches the parse, for the package's own files only.
    """
    name = name or path.stem
    label = label or str(path)
    data = read_builtin_matpower_file(str(path), label) if builtin else read_matpower_file(path, label)
    tables = matpower_tables(data, name, label)
    return assemble_network(tables, rule, slack), len(tables.unrated)
