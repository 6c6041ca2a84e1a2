"""The periods of a price study: one snapshot at the spot loads, or the hours of ``[price.day]``
(docs/models/dlmp.md#eq-d-18), each with the load the aggregator places in it.

Every per-hour input is checked here, before any OPF is solved: a load that does not fit the
sites, an availability for a generator the study does not have, a day outside the series its
background follows. Each refusal is one line that names the field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Sequence

import numpy as np

from grid.errors import GridError, InfeasibleNetworkError
from grid.feeder.bilevel import DataCenterSite, Decision, Hour, Workload, aggregator_payment, check_fits
from grid.feeder.inputs import DistributedGenerator, OpfSettings
from grid.feeder.load_shapes import activsg2000_shape, flat_shape, hourly_shape
from grid.feeder.opf import OpfResult, dso_opf
from grid.feeder.periods import Period, period_inputs, snapshot
from grid.network.three_phase import ThreePhaseFeeder
from sim.config.price import DayConfig, PriceConfig
from sim.config.schema import ConfigError


@dataclass(frozen=True, eq=False)
class CaseOutcome:
    decision: Decision
    opf: OpfResult | None  # None: the OPF has no feasible dispatch at this decision
    payment_per_h: float | None
    solve: Any = None  # the bilevel MILP's outcome
    tie_break: str = ""  # how its tie-break stage ended (grid.feeder.bilevel.ScheduleResult.tie_break)


@dataclass(frozen=True, eq=False)
class PeriodOutcome:
    """One period of the study: its inputs, the load placed, and each case's outcome."""

    period: Period
    workload: Workload    # the table's: the load placed (a day without [price.workload]) and the SVG settings
    inputs: Hour          # the feeder, generators and settings its OPFs were solved on
    cases: dict[str, CaseOutcome]
    demand_kw: float | None = None  # the load placed; None when each case schedules its own (a workload)

    @property
    def background_kw(self) -> float:
        """The period's background load, every bus and phase (kW)."""
        return sum(float(kw.sum()) for kw in self.inputs.feeder.load_kw.values())


# How far a bilevel MILP's decision may overshoot a voltage limit (p.u.): HiGHS accepts a MIP
# solution that breaks a row by up to 1e-6, and at a decision that puts a voltage on its limit
# the exact OPF may then have no point inside the band (IEEE 123, a ceiling held by one generator).
MILP_ROUND_OFF_PU = 1e-6


def decision_opf(hour: Hour, decision: Decision, sites: Sequence[DataCenterSite], solver: str, *,
                 from_milp: bool = False) -> OpfResult | None:
    """The hour's OPF at a decision (None: no feasible dispatch). A decision ``from_milp`` that
    has no point in the band is priced in the band widened by ``MILP_ROUND_OFF_PU``, within which
    the MILP found it feasible."""
    inputs = decision.opf_inputs(sites)
    bands = [hour.settings]
    if from_milp:
        bands.append(dataclasses.replace(hour.settings, v_min_pu=hour.settings.v_min_pu - MILP_ROUND_OFF_PU,
                                         v_max_pu=hour.settings.v_max_pu + MILP_ROUND_OFF_PU))
    for settings in bands:
        try:
            return dso_opf(hour.feeder, hour.generators, settings, solver=solver, **inputs)
        except InfeasibleNetworkError:
            continue
    return None


def case_outcome(hour: Hour, decision: Decision, sites: Sequence[DataCenterSite], solver: str, workload: Workload,
                 *, from_milp: bool = False, solve: Any = None, tie_break: str = "") -> CaseOutcome:
    """One case in one hour: the decision priced by the hour's OPF (``decision_opf``) and what the
    aggregator pays at it (none without a feasible dispatch); ``workload`` gives the SVG settings."""
    opf = decision_opf(hour, decision, sites, solver, from_milp=from_milp)
    payment = None if opf is None else aggregator_payment(sites, decision, opf, workload)
    return CaseOutcome(decision, opf, payment, solve, tie_break)


def hour_inputs(feeder: ThreePhaseFeeder, generators: Sequence[DistributedGenerator], settings: OpfSettings,
                period: Period, raised: tuple[tuple[int, int, float], ...] = ()) -> Hour:
    """What the OPFs of ``period`` are solved on (grid/feeder/periods.py), with the AC correction's
    raised floors of that hour (none at first)."""
    hour_feeder, hour_generators, hour_settings = period_inputs(feeder, generators, settings, period)
    return Hour(hour_feeder, hour_generators, dataclasses.replace(hour_settings, floor_raise=raised))


def price_periods(price: PriceConfig, feeder: ThreePhaseFeeder, generators: Sequence[DistributedGenerator],
                  settings: OpfSettings, sites: Sequence[DataCenterSite],
                  workload: Workload) -> list[tuple[Period, Workload]]:
    """(period, the aggregator's load in it) for each period of the study, in time order.
    ``workload`` is the table's (total_kw or utilization): the snapshot's load, and a day's every
    hour unless ``[price.day] demand_kw`` says otherwise."""
    day = price.day
    if day is None:
        _check_fits(workload, sites, "price.total_kw")
        return [(snapshot(feeder, settings), workload)]
    names = {g.name for g in generators}
    for name in day.availability:
        if name not in names:
            raise ConfigError(f"price.day.availability.{name}: no generator of that name; name one of "
                              f"{', '.join(sorted(names)) or '(none: add [[price.generators]])'}")
    shape = _background(day, feeder)
    start = datetime.fromisoformat(day.first_hour)
    periods = []
    for t in range(day.hours):
        label = (start + timedelta(hours=t)).isoformat(timespec="minutes")
        price_t = settings.substation_price_per_mwh if day.substation_price_per_mwh is None \
            else day.substation_price_per_mwh[t]
        period = Period(label, price_t, shape[t], {name: values[t] for name, values in day.availability.items()})
        hour_load = workload
        field = "price.total_kw"
        if day.demand_kw is not None:
            field = f"price.day.demand_kw[{t}]"
            try:
                hour_load = dataclasses.replace(workload, total_kw=day.demand_kw[t])
            except GridError as error:
                raise ConfigError(f"{field}: {error}") from None
        if price.workload is None:   # with one, each case schedules its own load
            _check_fits(hour_load, sites, field)
        periods.append((period, hour_load))
    return periods


def _background(day: DayConfig, feeder: ThreePhaseFeeder) -> np.ndarray:
    """hours x buses x 3: the background's multiple of the spot loads, by the day's shape."""
    try:
        if day.background == "activsg2000":
            return activsg2000_shape(feeder, datetime.fromisoformat(day.first_hour), day.hours, day.area or 0)
        if day.background == "hourly":
            return hourly_shape(feeder, day.load_scale)
        return flat_shape(feeder, day.hours)
    except GridError as error:
        raise ConfigError(f"price.day: {error}") from None


def _check_fits(workload: Workload, sites: Sequence[DataCenterSite], field: str) -> None:
    try:
        check_fits(sites, workload)
    except GridError as error:
        raise ConfigError(f"{field}: {error}") from None
