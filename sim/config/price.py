"""The ``[price]`` table: DLMP coordination of a data-center aggregator with the DSO
(docs/models/dlmp.md).

Declared here and registered by the price study (sim/studies/registry.py), so `dcmarket price` and a run
with a ``[price]`` table read the same fields. Types and ranges are checked here; the checks that
need the feeder (buses, a generator at the head) are in grid/ and name the same fields.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, field_validator, model_validator

from grid.feeder.inputs import LINEARIZATIONS, DistributedGenerator, OpfSettings
from grid.feeder.workloads import MAX_SERVERS, Battery, Servers
from grid.network.three_phase import FEEDERS
from mechanisms.settings import MAX_SECONDS, Money, Settings
from sim.config.names import one_of


class GeneratorConfig(Settings):
    """A distributed generator: output per phase up to ``max_kw_per_phase``, cost
    ``cost_per_mwh`` PG + ``quadratic_cost`` PG^2 ($/h, PG in kW)."""

    name: str = Field(min_length=1, description="the generator's name")
    bus: int = Field(description="the bus it stands at")
    max_kw_per_phase: float = Field(gt=0, le=1e6, description="its output limit on each phase")
    cost_per_mwh: Money = Field(ge=0, description="b: the linear cost of its output")
    quadratic_cost: float = Field(default=0.0, ge=0, le=1e3, description='a, in a PG^2 (PG in kW); needs '
                                  'linearization = "mccormick"')

    def generator(self) -> DistributedGenerator:
        return DistributedGenerator(self.name, self.bus, self.max_kw_per_phase, self.cost_per_mwh, self.quadratic_cost)


class PriceSiteConfig(Settings):
    """A member's data-center site. ``power_factor`` and ``svg_kvar`` default to the table's."""

    bus: int = Field(description="the site's bus")
    max_kw: float = Field(gt=0, le=1e6, description="the most load it takes (three-phase)")
    min_kw: float = Field(default=0.0, ge=0, le=1e6, description="the least load it takes (three-phase)")
    member: str = Field(default="", description="the aggregator's member that owns it")
    power_factor: float | None = Field(default=None, gt=0, le=1, description="its lagging power factor; default: "
                                       "[price] power_factor")
    svg_kvar: float | None = Field(default=None, ge=0, le=1e6, description="its SVG rating per phase; default: "
                                   "[price] svg_kvar")


# The background load shapes a day may follow (grid/feeder/load_shapes.py), with the [price.day]
# fields each one reads beyond the common ones.
LOAD_SHAPES = {
    "activsg2000": ("a day of 2016 from MATPOWER's scenarios_ACTIVSg2000.m: one area's load (or all eight), "
                    "as a share of its 2016 peak", ("area",)),
    "flat": ("the spot loads every hour", ()),
    "hourly": ("one factor per hour, given in load_scale", ("load_scale",)),
}
# Rounds of the AC correction a study may ask for (each solves the whole study again).
MAX_AC_ROUNDS = 20
# Hours a study may span: a week of hours (each is three OPFs and two MILPs, about a second).
MAX_DAY_HOURS = 168


class DayConfig(Settings):
    """``[price.day]``: the study runs hour by hour (docs/models/dlmp.md#eq-d-18). Lists give one
    value per hour."""

    hours: int = Field(default=24, ge=1, le=MAX_DAY_HOURS, description="the hours studied, from first_hour")
    first_hour: str = Field(default="2016-08-11T00:00", description="the first hour (ISO 8601); with background "
                            "activsg2000 a whole hour of 2016 (default: the day of its peak load)")
    background: str = Field(default="activsg2000", description="the background load's shape: "
                            + "; ".join(f"{name}: {text}" for name, (text, _) in LOAD_SHAPES.items()))
    area: int | None = Field(default=None, ge=0, le=8, description="activsg2000: the area whose load shapes the "
                             "day (1 to 8; 0 or not given: the sum of all eight)")
    load_scale: list[float] | None = Field(default=None, description="hourly: the background load per hour, "
                                           "as a multiple of the spot loads (0 to 10)")
    background_scale: float = Field(default=1.0, gt=0, le=10, description="the whole background's multiple "
                                     "(any shape): 0.5 studies the feeder at half its spot loads' level")
    substation_price_per_mwh: list[Money] | None = Field(default=None, description="c0 per hour; default: "
                                                         "[price] substation_price_per_mwh every hour")
    demand_kw: list[float] | None = Field(default=None, description="the aggregator's load per hour (three-phase "
                                          "kW, whole steps); default: [price] total_kw (or utilization) every hour")
    availability: dict[str, list[float]] = Field(default_factory=dict, description="per generator name: its "
                                                 "available share of max_kw_per_phase per hour (0 to 1); default 1")

    @field_validator("background")
    @classmethod
    def _background(cls, name: str) -> str:
        return one_of(name, LOAD_SHAPES, "background shape")

    @field_validator("first_hour")
    @classmethod
    def _first_hour(cls, text: str) -> str:
        try:
            datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an ISO 8601 time; write e.g. 2016-08-11T00:00") from None
        return text

    @model_validator(mode="after")
    def _per_hour(self) -> "DayConfig":
        takes = LOAD_SHAPES[self.background][1]
        if self.background != "activsg2000" and self.area is not None:
            raise ValueError(f"area: only background activsg2000 reads it (background is {self.background!r})")
        if ("load_scale" in takes) != (self.load_scale is not None):
            raise ValueError("load_scale: give it with background \"hourly\", and only then")
        lists = {"load_scale": (self.load_scale, 0.0, 10.0), "substation_price_per_mwh":
                 (self.substation_price_per_mwh, 0.0, None), "demand_kw": (self.demand_kw, 0.0, 1e7),
                 **{f"availability.{name}": (values, 0.0, 1.0) for name, values in self.availability.items()}}
        for field, (values, low, high) in lists.items():
            if values is None:
                continue
            if len(values) != self.hours:
                raise ValueError(f"{field}: {len(values)} values for {self.hours} hours; give one per hour")
            bad = [v for v in values if v < low or (high is not None and v > high)]
            if bad:
                top = "" if high is None else f" and at most {high:g}"
                raise ValueError(f"{field}: {bad[0]:g} is out of range; each value must be at least {low:g}{top}")
        return self


class ServersConfig(Settings):
    """One site's servers (docs/models/dlmp.md#eq-d-19), by its bus."""

    bus: int = Field(description="the site's bus (one of [[price.sites]])")
    count: int = Field(ge=1, le=MAX_SERVERS, description="N: how many servers")
    idle_kw: float = Field(ge=0, le=1e3, description="P_idle: one server's power at rest")
    peak_kw: float = Field(gt=0, le=1e3, description="P_peak: one server's power at full use")
    capacity: float = Field(gt=0, le=1e9, description="mu: the work one server runs at full use (units)")
    pue: float = Field(default=1.3, ge=1, le=3, description="the facility's power usage effectiveness")

    def servers(self) -> Servers:
        return Servers(self.count, self.idle_kw, self.peak_kw, self.capacity, self.pue)


class BatteryConfig(Settings):
    """A site's battery (docs/models/dlmp.md#eq-d-28), by its bus."""

    bus: int = Field(description="the site's bus (one of [[price.sites]])")
    kw: float = Field(gt=0, le=1e6, description="the most it charges or discharges (kW, at power factor 1)")
    kwh: float = Field(gt=0, le=1e7, description="the most it holds (kWh)")
    efficiency: float = Field(default=0.9, gt=0, le=1, description="the round trip's efficiency (half the loss "
                              "each way)")
    start_share: float = Field(default=0.5, ge=0, le=1, description="its charge at the first hour's start, as a "
                               "share of kwh; it ends the day there")

    def battery(self) -> Battery:
        return Battery(self.kw, self.kwh, self.efficiency, self.start_share)


class JobConfig(Settings):
    """A batch job (docs/models/dlmp.md#eq-d-21)."""

    name: str = Field(min_length=1, description="the job's name")
    work: float = Field(ge=0, le=1e12, description="E: its work in all (unit-hours, whole steps)")
    release: int = Field(default=0, ge=0, le=MAX_DAY_HOURS - 1, description="the first hour it may run (0: the "
                         "day's first)")
    deadline: int = Field(ge=0, le=MAX_DAY_HOURS - 1, description="the last hour it may run")


class WorkloadConfig(Settings):
    """``[price.workload]``: what the aggregator schedules over the day (docs/models/dlmp.md#dlmp-8),
    in place of a load per hour."""

    work_step: float = Field(gt=0, le=1e9, description="work is placed in steps of this many units")
    interactive: list[float] = Field(description="the interactive work of each hour (units, whole steps)")
    servers: list[ServersConfig] = Field(min_length=1, description="each site's servers")
    jobs: list[JobConfig] = Field(default_factory=list, description="the batch jobs")
    batteries: list[BatteryConfig] = Field(default_factory=list, description="the sites' batteries (at most one a "
                                           "site; needs linearization \"strong-duality\")")


class PriceConfig(Settings):
    """``[price]``: the feeder's operating point, its generators, the aggregator's sites and
    workload, and how the bilevel problem is solved."""

    feeder: str = Field(default="ieee37", description="the three-phase feeder: "
                        + "; ".join(f"{name}: {entry.description}" for name, entry in FEEDERS.items()))
    head_voltage_pu: float = Field(default=1.03, ge=0.9, le=1.1, description="the head voltage, fixed (ieee37: in "
                                   "place of its regulator; ieee123: ahead of its head regulator)")
    v_min_pu: float = Field(default=0.95, gt=0, lt=1, description="the voltage band's floor")
    v_max_pu: float = Field(default=1.05, gt=1, le=1.2, description="the voltage band's ceiling")
    substation_price_per_mwh: Money = Field(default=45.0, ge=0, description="c0: the price of energy from the "
                                            "substation")
    generators: list[GeneratorConfig] = Field(default_factory=list, description="the distributed generators")
    sites: list[PriceSiteConfig] | None = Field(default=None, description="the sites; default (in a run): the "
                                                "aggregator's members' sites, sized by the MW they won")
    aggregator: str | None = Field(default=None, description="in a run with several aggregators, the one that "
                                   "operates its sites")
    total_kw: float | None = Field(default=None, ge=0, le=1e7, description="the load to place (three-phase); "
                                   "default: utilization of the sites' total, in whole steps")
    utilization: float = Field(default=0.8, gt=0, le=1, description="without total_kw: the share of the sites' "
                               "total to place")
    step_kw: float = Field(default=100.0, gt=0, le=1e6, description="the load is placed in steps of this size")
    power_factor: float = Field(default=0.9, gt=0, le=1, description="lagging, every site unless it says")
    svg_kvar: float = Field(default=200.0, ge=0, le=1e6, description="SVG rating per phase, every site unless it "
                            "says")
    svg_step_kvar: float = Field(default=50.0, gt=0, le=1e6, description="SVG levels are this far apart (per phase)")
    svg_cost_per_mvarh: Money = Field(default=0.0, ge=0, description="the cost of SVG output")
    price_bound: float = Field(default=10_000.0, gt=0, le=1e9, description="the stated bound on every DLMP: the "
                               "big-M of the KKT conditions and McCormick rows")
    linearization: str = Field(default="strong-duality", description='how the payment\'s price x decision terms '
                               'become linear: "strong-duality" or "mccormick"')
    voltage_ranges: bool = Field(default=True, description="thin the bilevel MILP by what the data let each voltage "
                                 "reach: a bound no decision can reach gets no binary (docs/models/dlmp.md#eq-d-27)")
    time_limit_s: float | None = Field(default=300.0, gt=0, le=MAX_SECONDS, description="the solver's time limit")
    ac_check: bool = Field(default=True, description="solve every hour of every case again as an AC power flow in "
                           "OpenDSS and report the linear model's error and every voltage outside the band")
    ac_correct: bool = Field(default=True, description="with ac_check: raise the linear model's voltage floors "
                             "and, with line_limits, cut its line bounds by what the AC flows measure, and solve "
                             "again, until no voltage is outside the band and no line over its rating")
    ac_rounds: int = Field(default=5, ge=1, le=MAX_AC_ROUNDS, description="the AC correction's most rounds")
    line_limits: bool = Field(default=True, description="hold each line's active flow per phase within its "
                              "ampacity in the DSO's OPF (docs/models/dlmp.md#eq-d-29); the AC check holds the "
                              "currents to the same ratings either way")
    line_rating_a: float | None = Field(default=None, gt=0, le=1e5, description="one ampacity per phase (A) for "
                                        "every line, in place of its conductor's; default: the feeder's ratings "
                                        "(docs/reference/cases.md#line-ratings)")
    day: DayConfig | None = Field(default=None, description="study a day hour by hour ([price.day]); default: one "
                                  "snapshot at the spot loads")
    workload: WorkloadConfig | None = Field(default=None, description="schedule servers' work over the day "
                                            "([price.workload], with [price.day]); default: a load per hour")

    @field_validator("feeder")
    @classmethod
    def _feeder(cls, name: str) -> str:
        return one_of(name, FEEDERS, "feeder")

    @field_validator("linearization")
    @classmethod
    def _linearization(cls, name: str) -> str:
        return one_of(name, LINEARIZATIONS, "linearization")

    @model_validator(mode="after")
    def _band(self) -> "PriceConfig":
        if not self.v_min_pu < self.head_voltage_pu < self.v_max_pu:
            raise ValueError(f"head_voltage_pu {self.head_voltage_pu:g} must lie inside [v_min_pu, v_max_pu] = "
                             f"[{self.v_min_pu:g}, {self.v_max_pu:g}] p.u.")
        return self

    @model_validator(mode="after")
    def _workload(self) -> "PriceConfig":
        if self.workload is None:
            return self
        if self.day is None:
            raise ValueError("workload: schedules work over hours; add [price.day] (hours, first_hour, background)")
        if self.day.demand_kw is not None:
            raise ValueError("day.demand_kw: the workload sets each hour's load; remove demand_kw or [price.workload]")
        if len(self.workload.interactive) != self.day.hours:
            raise ValueError(f"workload.interactive: {len(self.workload.interactive)} values for {self.day.hours} "
                             "hours; give one per hour")
        for i, job in enumerate(self.workload.jobs):
            if job.deadline >= self.day.hours:
                raise ValueError(f"workload.jobs[{i}].deadline: hour {job.deadline} is past the day's last "
                                 f"({self.day.hours - 1})")
        return self

    def opf_settings(self) -> OpfSettings:
        return OpfSettings(self.substation_price_per_mwh, self.head_voltage_pu, self.v_min_pu, self.v_max_pu,
                           line_limits=self.line_limits)


# The placements compared, by name, in report order: the baseline, the price-taking schedule (with
# [price.workload]), then the two cases of the DLMP model (docs/models/dlmp.md).
CASE_TITLES = {"pro-rata": "pro rata, no coordination", "price-taking": "price-taking schedule",
               "no-svg": "aggregator, no SVG (case 1)", "svg": "aggregator with SVG (case 2)"}
