"""The ``[headroom]`` table: hourly headroom per bus on a network (docs/studies/headroom.md).

Declared here and registered by the headroom study (sim/studies/registry.py). Types and ranges
are checked here; the checks that need the network or the hourly file (buses, areas, columns)
are in sim/studies/headroom/inputs.py and name the same fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from grid.capacity.headroom import FOLLOWING, MAX_LEVEL, check_levels
from grid.capacity.rows.limits import DEFAULT_TOUCH_FACTOR
from grid.errors import GridError
from grid.network.cases import CaseOptions
from grid.network.network import SLACK_MODELS
from mechanisms.settings import MAX_MW, Settings

# The curtailment levels a planner asks about first (Duke's "Rethinking Load Growth": 0.25, 0.5
# and 1 % of the hours of a year).
DEFAULT_LEVELS = (0.0025, 0.005, 0.01)
# Ceilings: levels studied at once, buses listed by name, buses in the report and the plot.
MAX_LEVELS = 10
MAX_TOP = 50
# The most hours a series may hold: eleven years of hours. Memory is checked once the case is known.
MAX_HOURS = 100_000
# A request is one number for every bus of the joint allocation; above this it is no request.
MAX_REQUEST_MW = MAX_MW
# The fields chosen by name, and the names each takes.
_NAMES = {"following": tuple(FOLLOWING), "slack": SLACK_MODELS}


class HeadroomConfig(Settings):
    """``[headroom]``: the case, its hourly loads, the levels of curtailment and what to report."""

    case: str = Field(min_length=1, description="a built-in case name (`dcmarket cases`), a MATPOWER .m file or a "
                      "CSV case folder, relative to the config")
    hourly: str | None = Field(default=None, min_length=1, description="the hourly loads: a MATPOWER change table (a "
                               "name in the matpower package such as scenarios_ACTIVSg2000, or a .m file), or a .csv / "
                               ".parquet file with a timestamp column and one column per bus number (its load, MW) or "
                               "per area (\"area 5\": the area's total, MW); default: scenarios_<case>.m beside the case")
    area_column: Literal["BUS_AREA", "ZONE"] = Field(default="BUS_AREA", description="the case's bus column that "
                                                     "numbers a change table's (and a CSV's) areas")
    first_hour: str | None = Field(default=None, description="a change table: the time of its first label, ISO 8601 "
                                   "(\"2016-01-01T00:00\"); its labels are then consecutive hours; default: hours "
                                   "are named by label")
    curtailment: list[float] = Field(default=list(DEFAULT_LEVELS), min_length=1, max_length=MAX_LEVELS,
                                     description=f"curtailment levels, as shares of the hours (0.005 is 0.5 %), each "
                                     f"in (0, {MAX_LEVEL:g}]; firm (0 %) is always reported beside them")
    buses: Literal["load"] | list[int] = Field(default="load", description='the buses studied: "load" (every bus '
                                               "with base load) or a list of bus numbers")
    following: str = Field(default="scaled", description="how generation follows the hourly load: " + "; ".join(
        f'"{name}": {text}' for name, text in FOLLOWING.items()))
    joint: bool = Field(default=True, description="also allocate the buses at once (the capacity study's nested tiers "
                        "on the hours, CVaR at each level): the total the network takes simultaneously")
    joint_request_mw: float | None = Field(default=None, gt=0, le=MAX_REQUEST_MW, description="joint: what every bus "
                                           "asks; default: ten times the largest stand-alone headroom, so that no "
                                           "request binds")
    touch_factor: float = Field(default=DEFAULT_TOUCH_FACTOR, gt=0, le=1, description="a limit that the hour's "
                                "background alone breaks gives 0 MW to the buses whose shift factor on it is at least "
                                "this, and is left out for the others")
    top: int = Field(default=10, ge=1, le=MAX_TOP, description="buses listed in the report and drawn in the "
                     "duration plot (the largest headroom at the highest level)")
    slack: str | None = Field(default=None, description='who supplies new load: "reference" or "distributed"; '
                              "default: the case's (distributed when it has generators)")
    default_rating_mw: float | None = Field(default=None, gt=0, le=MAX_MW, description="rating of the lines the case "
                                            "leaves unrated (a floor)")

    @field_validator("curtailment")
    @classmethod
    def _levels(cls, levels: list[float]) -> list[float]:
        try:
            ordered = check_levels(levels)
        except GridError as error:
            raise ValueError(str(error)) from None
        if ordered[0] <= 0:
            raise ValueError("0 is firm, which is always reported; list only levels above 0")
        return list(ordered)

    @field_validator("first_hour")
    @classmethod
    def _iso_time(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an ISO 8601 time; write e.g. \"2016-01-01T00:00\"") from None
        return value

    @field_validator("buses")
    @classmethod
    def _unique_buses(cls, buses: str | list[int]) -> str | list[int]:
        if isinstance(buses, list):
            if not buses:
                raise ValueError('the list is empty; list bus numbers, or write "load" for every load bus')
            if len(set(buses)) != len(buses):
                raise ValueError("a bus is listed twice; list each bus once")
        return buses

    @field_validator("following", "slack")
    @classmethod
    def _registered_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        names = _NAMES[info.field_name]
        if value is not None and value not in names:
            raise ValueError(f"unknown {info.field_name} {value!r}; choose one of {', '.join(names)}")
        return value

    def case_options(self) -> CaseOptions:
        return CaseOptions(default_rating_mw=self.default_rating_mw, slack=self.slack)
