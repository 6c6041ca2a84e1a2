"""A sweep directory: the names of its files and folders, and its sweep file read back.

    sweep.toml         the sweep file as given          base.toml    its base config
    runs/<run>/        each run's directory             records/     one JSON record per finished run
    results.parquet    one row per run                  timings.parquet  seconds and worker per run
    plots/             --plots figures
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from sim.config.schema import format_validation_error, read_config_file
from sim.config.sweep import SweepConfig
from sim.errors import ConfigError

SWEEP_FILE = "sweep.toml"
BASE_FILE = "base.toml"
RUNS_FOLDER = "runs"
RECORDS_FOLDER = "records"
RESULTS = "results.parquet"
PLOTS_FOLDER = "plots"
TIMINGS = "timings.parquet"


def read_sweep(path: Path) -> SweepConfig:
    raw = read_config_file(path, "sweep")
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, str(path))) from None
