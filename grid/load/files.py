"""Scenarios and correlation matrices from files: CSV or Parquet, columns named by bus number.

A scenario file holds one row per scenario and one column per bus (MW of background net
withdrawal); buses without a column carry no background load, and the robust box is each bus's
sample range, since a file gives no support of its own. A correlation file is a bus x bus matrix
with a header row and a first column of bus numbers. Every error is one line that names the
file, the row or column, and the culprit.
"""

from __future__ import annotations

import csv
import math
import os

import numpy as np

from grid.errors import GridError
from grid.load.scenarios import Scenarios, _factor
from grid.memory_guard import check_scenario_memory
from grid.network.network import Network


def read_correlation_csv(path: str | os.PathLike, network: Network) -> np.ndarray:
    """Read a correlation matrix: header row and first column of bus numbers, values in between.

    The top-left cell is a free label (e.g. ``bus``); rows may come in any order but must name
    exactly the header's buses. Returns the n x n matrix in network bus order, for
    ``CorrelatedSpread.matrix``; buses the file leaves out get correlation 0 with every other
    bus. Checked here, naming the file and the culprit: every bus known, no duplicates, finite
    numbers, unit diagonal, symmetry, positive semidefiniteness.
    """
    label = os.fspath(path)
    numbered = _read_csv_rows(path, label, "correlation file")
    if not numbered:
        raise GridError(f"correlation file {label!r} is empty; expected a header of bus numbers and one row per bus")
    _, header = numbered[0]
    columns: list[int] = []
    for position, text in enumerate(header[1:], start=2):
        bus = _parse_bus(text, network, f"{label}: header column {position}")
        if bus in columns:
            raise GridError(f"{label}: bus {bus} has two columns ({columns.index(bus) + 2} and {position})")
        columns.append(bus)
    if not columns:
        raise GridError(f"{label}: the header names no buses; put bus numbers after the first cell")
    values = np.full((len(columns), len(columns)), np.nan)
    seen: dict[int, int] = {}
    for line_number, row in numbered[1:]:
        bus = _parse_bus(row[0], network, f"{label}, line {line_number}, first column")
        if bus not in columns:
            raise GridError(f"{label}, line {line_number}: bus {bus} has a row but no column in the header")
        if bus in seen:
            raise GridError(f"{label}: bus {bus} has two rows (lines {seen[bus]} and {line_number})")
        seen[bus] = line_number
        if len(row) != len(columns) + 1:
            raise GridError(
                f"{label}, line {line_number}: {len(row)} cells but the header has {len(columns) + 1} columns"
            )
        i = columns.index(bus)
        for other, text in zip(columns, row[1:]):
            try:
                values[i, columns.index(other)] = float(text)
            except ValueError:
                raise GridError(
                    f"{label}, line {line_number}, column for bus {other}: {text.strip()!r} is not a number"
                ) from None
    missing = [bus for bus in columns if bus not in seen]
    if missing:
        raise GridError(f"{label}: bus {missing[0]} has a column but no row; give one row per header bus")
    _factor(values, tuple(columns), label)
    matrix = np.eye(len(network.buses))
    positions = [network.bus_index(bus) for bus in columns]
    matrix[np.ix_(positions, positions)] = values
    return matrix


def _parse_bus(text: str, network: Network, where: str) -> int:
    try:
        bus = int(text.strip())
    except ValueError:
        raise GridError(f"{where} is {text.strip()!r}, not an integer bus number") from None
    try:
        network.bus_index(bus)
    except GridError as exc:
        raise GridError(f"{where} names an {exc}") from None
    return bus


# --------------------------------------------------------------------------------------------
# Empirical scenarios from files


def _read_csv_rows(path: str | os.PathLike, label: str, what: str) -> list[tuple[int, list[str]]]:
    """(file line number, cells) of the non-blank rows; a trailing newline is not a row."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle)]
    except FileNotFoundError:
        raise GridError(f"{what} {label!r} not found; check the path") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise GridError(f"cannot read {what} {label!r}: {exc}") from None
    return [(number, row) for number, row in enumerate(rows, start=1) if any(c.strip() for c in row)]


def read_scenarios_file(path: str | os.PathLike, network: Network) -> Scenarios:
    """Read empirical scenarios from a ``.csv`` or ``.parquet`` file (chosen by the suffix).

    Both formats hold one column per bus, named by its bus number, and one row per scenario of
    background net withdrawal in MW; see ``read_scenarios_csv`` and ``read_scenarios_parquet``.
    """
    label = os.fspath(path)
    suffix = os.path.splitext(label)[1].lower()
    if suffix == ".csv":
        return read_scenarios_csv(path, network)
    if suffix == ".parquet":
        return read_scenarios_parquet(path, network)
    raise GridError(f"scenario file {label!r} has suffix {suffix or '(none)'!r}; use a .csv or .parquet file")


def read_scenarios_csv(path: str | os.PathLike, network: Network) -> Scenarios:
    """Read scenarios from a CSV: header = bus numbers, one row per scenario, values in MW.

    Buses without a column carry no background load. The robust box is the per-bus sample range,
    since a file gives no support of its own.
    """
    label = os.fspath(path)
    numbered = _read_csv_rows(path, label, "scenario file")
    if not numbered:
        raise GridError(f"scenario file {label!r} is empty; expected a header of bus numbers and one row per scenario")
    _, header = numbered[0]
    columns: list[int] = []
    for position, text in enumerate(header, start=1):
        bus = _parse_bus(text, network, f"{label}: header column {position}")
        if bus in columns:
            raise GridError(f"{label}: bus {bus} has two columns ({columns.index(bus) + 1} and {position})")
        columns.append(bus)
    data = numbered[1:]
    if not data:
        raise GridError(f"scenario file {label!r} has a header but no scenario rows")
    for line_number, row in data:
        if len(row) != len(columns):
            raise GridError(
                f"{label}, line {line_number}: {len(row)} cells but the header has {len(columns)} columns"
            )
    try:
        values = np.array([row for _, row in data], dtype=str).astype(float)
    except ValueError:
        values = None
    if values is None or not np.all(np.isfinite(values)):
        _raise_first_bad_cell(label, data, columns)
    return _scenarios_from_columns(network, columns, values)


def _scenarios_from_columns(network: Network, columns: list[int], values: np.ndarray) -> Scenarios:
    """Scenarios with the file's columns placed in bus order and the sample range as the box."""
    samples = np.zeros((values.shape[0], len(network.buses)))
    for position, bus in enumerate(columns):
        samples[:, network.bus_index(bus)] = values[:, position]
    return Scenarios._adopt(network.bus_numbers, samples, samples.min(axis=0), samples.max(axis=0))


def _raise_first_bad_cell(label: str, data: list[tuple[int, list[str]]], columns: list[int]) -> None:
    """Locate the first cell that is not a finite number (slow path, only on error)."""
    for line_number, row in data:
        for bus, text in zip(columns, row):
            try:
                value = float(text)
            except ValueError:
                raise GridError(
                    f"{label}, line {line_number}, column for bus {bus}: {text.strip()!r} is not a number"
                ) from None
            if not math.isfinite(value):
                raise GridError(
                    f"{label}, line {line_number}, column for bus {bus}: {text.strip()!r} is not a finite number"
                )
    raise GridError(f"{label}: could not parse the scenario values")  # pragma: no cover


def read_scenarios_parquet(path: str | os.PathLike, network: Network) -> Scenarios:
    """Read scenarios from Parquet: columns named by bus numbers (strings), one row per scenario.

    Same rules as the CSV reader: values are MW of background net withdrawal, buses without a
    column carry no load, the box is the per-bus sample range. Numeric columns of any width are
    accepted, and text columns whose every value parses as a number (what a CSV would give);
    rows count from 1 in messages. A pandas index stored in the file is ignored. The row count
    is read from the file's metadata and checked against memory before the data is loaded.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    label = os.fspath(path)
    if not os.path.exists(label):
        raise GridError(f"scenario file {label!r} not found; check the path")
    if os.path.isfile(label) and os.path.getsize(label) == 0:
        raise GridError(f"scenario file {label!r} is empty; expected one column per bus and one row per scenario")
    try:
        parquet = pq.ParquetFile(label)
        schema = parquet.schema_arrow
        row_count = parquet.metadata.num_rows
    except (OSError, pa.ArrowException) as exc:
        raise GridError(f"cannot read scenario file {label!r} as Parquet: {_one_line(exc)}") from None
    index_columns = set()
    if schema.pandas_metadata:
        index_columns = {name for name in schema.pandas_metadata.get("index_columns", []) if isinstance(name, str)}
    names = [name for name in schema.names if name not in index_columns]
    if not names:
        raise GridError(f"scenario file {label!r} is empty; expected one column per bus and one row per scenario")
    columns: list[int] = []
    for position, name in enumerate(names, start=1):
        bus = _parse_bus(name, network, f"{label}: column {position}")
        if bus in columns:
            raise GridError(f"{label}: bus {bus} has two columns ({columns.index(bus) + 1} and {position})")
        columns.append(bus)
    if row_count == 0:
        raise GridError(f"scenario file {label!r} has columns but no scenario rows")
    check_scenario_memory(network, row_count)
    try:
        table = parquet.read(columns=names)
    except (OSError, pa.ArrowException) as exc:
        raise GridError(f"cannot read scenario file {label!r} as Parquet: {_one_line(exc)}") from None
    values = np.empty((table.num_rows, len(columns)))
    for position, bus in enumerate(columns):
        values[:, position] = _parquet_column(table.column(position), label, bus)
    return _scenarios_from_columns(network, columns, values)


def _parquet_column(column, label: str, bus: int) -> np.ndarray:
    """One Parquet column as finite float64 MW, or a GridError naming the first bad row."""
    import pyarrow as pa

    kind = column.type
    where = f"{label}, column for bus {bus}"
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0]) + 1
        raise GridError(f"{where}, row {row}: missing value; every scenario needs a number for every bus")
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        values = column.cast(pa.float64()).to_numpy()
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        texts = column.to_pylist()
        values = np.empty(len(texts))
        for row, text in enumerate(texts, start=1):
            try:
                values[row - 1] = float(text)
            except ValueError:
                raise GridError(f"{where}, row {row}: {text.strip()!r} is not a number") from None
    else:
        raise GridError(f"{where}, row 1: {column[0].as_py()!r} is not a number (column type {kind}); store MW as numbers")
    finite = np.isfinite(values)
    if not finite.all():
        row = int(np.argmin(finite))
        raise GridError(f"{where}, row {row + 1}: {values[row]} is not a finite number")
    return values


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
