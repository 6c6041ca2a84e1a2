"""The hourly loads of `dcmarket headroom`: a MATPOWER change table or a CSV/Parquet file, as bus
loads per hour in the network's bus order, every reference checked before the long work.

- A change table (``scenarios_ACTIVSg2000.m``) is applied to the case's base loads with
  MATPOWER's semantics (grid/load/hourly.py); every area it names must be an area of the case.
- A file holds a ``timestamp`` column (ISO 8601, ascending, each hour once) and one column per
  bus (``"1071"`` or ``"bus 1071"``: that bus's load, MW) or per area (``"area 5"``: the area's
  total load, MW, shared by its buses in proportion to their base loads, as a change table's
  CT_REP of an area does). Buses it does not name keep their base load.

Every error is one line naming ``headroom.hourly`` (or the field at fault), the file, the line or
column, and the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from grid.errors import GridError
from grid.load.hourly import hourly_loads
from grid.memory_guard import check_scenario_memory
from grid.network.cases import case_file, matpower_data_dir
from grid.network.change_tables import (
    CT_TAREABRCH,
    CT_TAREABUS,
    CT_TAREAGEN,
    CT_TAREAGENCOST,
    CT_TAREALOAD,
    ChangeTable,
    read_case_columns,
    read_change_table,
)
from grid.network.network import Network
from sim.config.headroom import MAX_HOURS, HeadroomConfig
from sim.errors import ConfigError

FIELD = "headroom.hourly"
TIMESTAMP = "timestamp"
_AREA_TABLES = (CT_TAREABUS, CT_TAREAGEN, CT_TAREABRCH, CT_TAREALOAD, CT_TAREAGENCOST)
_BUS_COLUMN = re.compile(r"(?:bus\s*)?(-?\d+)", re.IGNORECASE)
_AREA_COLUMN = re.compile(r"area\s*(-?\d+)", re.IGNORECASE)


@dataclass(frozen=True, eq=False)
class HourlySeries:
    """Bus load per hour (hours x buses, MW, network bus order), each hour's name, and where the
    hours came from."""

    hours: tuple[str, ...]
    load_mw: np.ndarray
    path: Path
    kind: str                 # "change table", "csv" or "parquet"

    def describe(self) -> str:
        return f"{len(self.hours):,} hours from {self.path.name} ({self.kind})"


def hourly_path(headroom: HeadroomConfig, base_dir: Path) -> Path:
    """The file ``headroom.hourly`` names: a path (relative to the config), a change table in the
    matpower package, or by default scenarios_<case>.m beside the case's own file."""
    if headroom.hourly is None:
        return _shipped_series(headroom, base_dir)
    given = Path(headroom.hourly).expanduser()
    path = given if given.is_absolute() else base_dir / given
    if path.is_file():
        return path
    shipped = matpower_data_dir() / (given.name if given.suffix == ".m" else f"{given.name}.m")
    if given.parent == Path(".") and shipped.is_file():
        return shipped
    raise ConfigError(f"{FIELD}: {headroom.hourly!r} is neither a file (relative to the config) nor a change table in "
                      "the matpower package; give a .m change table, a .csv or .parquet file, or a name such as "
                      "scenarios_ACTIVSg2000")


def _shipped_series(headroom: HeadroomConfig, base_dir: Path) -> Path:
    try:
        case = case_file(headroom.case, base_dir)
    except GridError:
        case = None
    if case is not None:
        for stem in (case.stem.removeprefix("case_"), case.stem):
            candidate = case.with_name(f"scenarios_{stem}.m")
            if candidate.is_file():
                return candidate
    raise ConfigError(f"{FIELD}: case {headroom.case} ships no hourly loads (scenarios_<case>.m beside its file); "
                      "give [headroom] hourly (a change table, or a CSV/Parquet file with a timestamp column)")


def read_hourly(headroom: HeadroomConfig, network: Network, base_dir: Path) -> HourlySeries:
    """Each hour's bus loads from the source ``headroom.hourly`` names (module doc)."""
    path = hourly_path(headroom, base_dir)
    suffix = path.suffix.lower()
    try:
        if suffix == ".m":
            return _from_change_table(headroom, network, base_dir, path)
        if suffix in (".csv", ".parquet"):
            return _from_file(headroom, network, base_dir, path, suffix)
    except GridError as error:
        raise ConfigError(f"{FIELD}: {error}") from None
    raise ConfigError(f"{FIELD}: {path.name} is neither a MATPOWER change table (.m) nor a .csv or .parquet file")


def _from_change_table(headroom: HeadroomConfig, network: Network, base_dir: Path, path: Path) -> HourlySeries:
    case = _matpower_case(headroom, base_dir, "a change table")
    table = read_change_table(path)
    _check_areas(table, case, headroom.area_column)
    labels = table.labels
    if labels.size > MAX_HOURS:
        raise GridError(f"change table {path.name} has {labels.size:,} labels, above the {MAX_HOURS:,} hours a "
                        "series may hold; split it")
    hourly = hourly_loads(table, network, case, area_column=headroom.area_column)
    if headroom.first_hour is None:
        names = tuple(f"label {label}" for label in hourly.labels.tolist())
    else:
        start = datetime.fromisoformat(headroom.first_hour)
        first = int(hourly.labels[0])
        names = tuple((start + timedelta(hours=label - first)).isoformat(timespec="minutes")
                      for label in hourly.labels.tolist())
    return HourlySeries(names, np.array(hourly.load_mw), path, "change table")


def _matpower_case(headroom: HeadroomConfig, base_dir: Path, what: str) -> Path:
    try:
        return case_file(headroom.case, base_dir)
    except GridError:
        raise GridError(f"{what} needs the case's MATPOWER file for its areas and rows, but case {headroom.case} is "
                        "not a MATPOWER case; give bus columns in a CSV or Parquet file") from None


def _check_areas(table: ChangeTable, case: Path, area_column: str) -> None:
    """Every area a change names is an area of the case (a missing one would scale nothing)."""
    named = np.isin(table.table, _AREA_TABLES)
    if not named.any():
        return
    areas = np.unique(read_case_columns(case, area_column).area)
    unknown = np.flatnonzero(named & ~np.isin(table.row.astype(float), areas))
    if unknown.size:
        i = int(unknown[0])
        shown = ", ".join(f"{a:g}" for a in areas[:12]) + (" ..." if areas.size > 12 else "")
        raise GridError(f"change table {table.source}, line {int(table.line[i])}: area {int(table.row[i])} is not an "
                        f"area of case {case.stem} ({area_column} has {shown}); fix the row, or set "
                        "headroom.area_column")


def _from_file(headroom: HeadroomConfig, network: Network, base_dir: Path, path: Path, suffix: str) -> HourlySeries:
    frame = _read_frame(path, suffix)
    label = path.name
    column = next((c for c in frame.columns if str(c).strip().lower() == TIMESTAMP), None)
    if column is None:
        raise GridError(f"{label} has no {TIMESTAMP} column; name the column of each hour's time (ISO 8601) "
                        f"'{TIMESTAMP}'")
    hours = _timestamps(frame[column], label)
    if not 1 <= len(hours) <= MAX_HOURS:
        raise GridError(f"{label} has {len(hours):,} hours; give between 1 and {MAX_HOURS:,}")
    check_scenario_memory(network, len(hours))
    columns = [c for c in frame.columns if c != column]
    if not columns:
        raise GridError(f"{label} has no load columns; add one column per bus number (or per 'area N')")
    values = _numbers(frame, columns, label)
    load = np.tile([bus.base_load_mw for bus in network.buses], (len(hours), 1))
    kinds = {_column_kind(str(c), label) for c in columns}
    if kinds == {"bus"}:
        _set_buses(load, network, columns, values, label)
    elif kinds == {"area"}:
        case = _matpower_case(headroom, base_dir, "an area column")
        _scale_areas(load, network, case, headroom.area_column, columns, values, label)
    else:
        raise GridError(f"{label} mixes bus and area columns; give either one column per bus or one per area")
    return HourlySeries(hours, load, path, suffix.removeprefix("."))


def _read_frame(path: Path, suffix: str):
    import pandas as pd

    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        return pd.read_parquet(path)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise GridError(f"cannot read {path.name} ({type(error).__name__}: {str(error).splitlines()[0][:120]}); "
                        "give a CSV with a header row, or a Parquet file") from None


def _timestamps(values, label: str) -> tuple[str, ...]:
    import pandas as pd

    parsed = pd.to_datetime(values, errors="coerce", format="ISO8601")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if bad.size:
        raise GridError(f"{label}, row {int(bad[0]) + 1}: timestamp {str(values.iloc[bad[0]])!r} is not an ISO 8601 "
                        "time; write e.g. 2016-01-01T00:00")
    steps = np.diff(parsed.to_numpy().astype("datetime64[ns]").astype(np.int64))
    if np.any(steps <= 0):
        row = int(np.flatnonzero(steps <= 0)[0]) + 2
        raise GridError(f"{label}, row {row}: timestamp {parsed.iloc[row - 1]} does not follow the one before; give "
                        "each hour once, in ascending order")
    return tuple(t.isoformat(timespec="minutes") for t in parsed)


def _numbers(frame, columns: list, label: str) -> np.ndarray:
    import pandas as pd

    values = np.empty((len(frame), len(columns)))
    for k, column in enumerate(columns):
        parsed = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(parsed))
        if bad.size:
            raise GridError(f"{label}, row {int(bad[0]) + 1}, column {str(column)!r}: "
                            f"{str(frame[column].iloc[bad[0]])!r} is not a finite number of MW")
        values[:, k] = parsed
    return values


def _column_kind(name: str, label: str) -> str:
    if _AREA_COLUMN.fullmatch(name.strip()):
        return "area"
    if _BUS_COLUMN.fullmatch(name.strip()):
        return "bus"
    raise GridError(f"{label}: column {name!r} is neither a bus number ('1071' or 'bus 1071') nor an area "
                    f"('area 5'); rename or drop it")


def _set_buses(load: np.ndarray, network: Network, columns: list, values: np.ndarray, label: str) -> None:
    seen: dict[int, str] = {}
    for k, column in enumerate(columns):
        bus = int(_BUS_COLUMN.fullmatch(str(column).strip()).group(1))
        if not network.has_bus(bus):
            raise GridError(f"{label}: column {str(column)!r} names bus {bus}, which is not a bus of case "
                            f"{network.name}; fix the column or drop it")
        if bus in seen:
            raise GridError(f"{label}: bus {bus} has two columns ({seen[bus]!r} and {str(column)!r}); keep one")
        seen[bus] = str(column)
        load[:, network.bus_index(bus)] = values[:, k]


def _scale_areas(load: np.ndarray, network: Network, case: Path, area_column: str, columns: list,
                 values: np.ndarray, label: str) -> None:
    data = read_case_columns(case, area_column)
    area_of = dict(zip(data.bus_number.tolist(), data.area.tolist()))
    areas = np.array([area_of[bus] for bus in network.bus_numbers])
    base = load[0].copy()
    seen: set[float] = set()
    for k, column in enumerate(columns):
        area = float(_AREA_COLUMN.fullmatch(str(column).strip()).group(1))
        members = np.flatnonzero(areas == area)
        if members.size == 0:
            raise GridError(f"{label}: column {str(column)!r} names area {area:g}, which is not an area of case "
                            f"{network.name} ({area_column}); fix the column or headroom.area_column")
        if area in seen:
            raise GridError(f"{label}: area {area:g} has two columns; keep one")
        seen.add(area)
        total = float(base[members].sum())
        if total == 0 and np.any(values[:, k] != 0):
            raise GridError(f"{label}: area {area:g} has no base load to share out; give its buses' loads instead")
        share = base[members] / total if total else np.zeros(members.size)
        load[:, members] = values[:, k][:, None] * share[None, :]
