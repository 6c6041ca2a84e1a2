"""A sweep directory: the names of its files and folders, and its sweep file read back.

    sweep.toml         the sweep file as given          base.toml    its base config
    runs/<run>/        each run's directory             records/     one JSON record per finished run
    results.parquet    one row per run                  timings.parquet  seconds and worker per run
    plots/             --plots figures
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from pydantic import ValidationError

from sim.config.schema import format_validation_error, read_config_file
from sim.config.sweep import SweepConfig
from sim.errors import ConfigError, OutputError

SWEEP_FILE = "sweep.toml"
BASE_FILE = "base.toml"
RUNS_FOLDER = "runs"
RECORDS_FOLDER = "records"
RESULTS = "results.parquet"
PLOTS_FOLDER = "plots"
TIMINGS = "timings.parquet"
# The columns every sweep writes to each table (sim/studies/sweep.py), besides the swept parameters
# and its study's outcome columns (sim/config/sweep.py, SWEEP_STUDIES).
TABLE_COLUMNS = {RESULTS: ("run", "status", "error", "seed"), TIMINGS: ("run", "seconds", "worker")}


def read_sweep(path: Path) -> SweepConfig:
    raw = read_config_file(path, "sweep")
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, str(path))) from None


def rebuild_tables(sweep_dir: Path) -> str:
    """How to write a sweep directory's tables again: its records hold every finished run."""
    return (f"run the same `dcmarket sweep SWEEP.toml --out {sweep_dir}` again: it rebuilds the tables from "
            f"{RECORDS_FOLDER}/")


def read_table(sweep_dir: Path, name: str, columns: Sequence[str] = ()) -> Any:
    """One of a sweep directory's Parquet tables (a pyarrow Table), with the columns a sweep
    writes to it and ``columns``; an empty, truncated or foreign file is an error naming it and
    saying how to rebuild it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = sweep_dir / name
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise OutputError(f"{path}: not found; {rebuild_tables(sweep_dir)}") from None
    except (pa.ArrowException, OSError, ValueError) as error:
        # Arrow's text repeats the path ("Could not open Parquet input source '<path>': ..."); keep the rest.
        reason = " ".join(str(error).split("': ", 1)[-1].split())[:100]
        raise OutputError(f"{path}: not a readable Parquet table ({reason}); {rebuild_tables(sweep_dir)}") from None
    missing = [c for c in (*TABLE_COLUMNS.get(name, ()), *columns) if c not in table.column_names]
    if missing:
        raise OutputError(f"{path}: has no column {missing[0][:60]!r}; it is not the table the sweep wrote: "
                          f"{rebuild_tables(sweep_dir)}")
    return table


def read_sweep_copy(sweep_dir: Path) -> SweepConfig:
    """The sweep file as a sweep directory keeps it; a damaged copy is an error naming it."""
    path = sweep_dir / SWEEP_FILE
    try:
        return read_sweep(path)
    except ConfigError as error:
        reason = str(error).removeprefix(f"{path}: ")[:100]
        raise OutputError(f"{path}: the directory's copy of the sweep file is damaged ({reason}); copy the sweep "
                          f"file back over it, or run `dcmarket sweep SWEEP.toml --out {sweep_dir} --force` to run the "
                          "sweep again") from None
