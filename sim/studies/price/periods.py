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
    # What the bilevel MILP priced the decision at ($/h), at its own duals of the OPF.
    milp_payment_per_h: float | None = None


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


# How far a bilevel MILP's decision may overshoot a voltage limit (p.u.) and a line limit (kW):
# HiGHS accepts a MIP solution that breaks a row by up to 1e-6 (MW on a flow), and at a decision
# that puts a voltage or a flow on its limit the exact OPF may then have no point inside (IEEE 123,
# a ceiling held by one generator).
MILP_ROUND_OFF_PU = 1e-6
MILP_ROUND_OFF_KW = 1e-2


@dataclass(frozen=True)
class HourCorrection:
    """The AC correction's changes to one hour's OPF: raised voltage floors (bus, phase, rise of
    the floor of w in p.u., docs/models/dlmp.md#eq-d-25) and cut line bounds (from bus, to bus,
    phase, kW, docs/models/dlmp.md#eq-d-30)."""

    floors: tuple[tuple[int, int, float], ...] = ()
    cuts: tuple[tuple[int, int, int, float], ...] = ()


def limits_text(settings: OpfSettings) -> str:
    """What the OPF holds, for messages: the voltage band, and the line ratings with line limits."""
    lines = " and every line within its rating" if settings.line_limits else ""
    return f"every voltage within [{settings.v_min_pu:g}, {settings.v_max_pu:g}] p.u.{lines}"


def decision_opf(hour: Hour, decision: Decision, sites: Sequence[DataCenterSite], solver: str, *,
                 from_milp: bool = False) -> OpfResult | None:
    """The hour's OPF at a decision (None: no feasible dispatch). A decision ``from_milp`` that
    has no point in the band is priced in the band widened by ``MILP_ROUND_OFF_PU``, within which
    the MILP found it feasible."""
    inputs = decision.opf_inputs(sites)
    bands = [hour.settings]
    if from_milp:
        bands.append(dataclasses.replace(hour.settings, v_min_pu=hour.settings.v_min_pu - MILP_ROUND_OFF_PU,
                                         v_max_pu=hour.settings.v_max_pu + MILP_ROUND_OFF_PU,
                                         line_slack_kw=MILP_ROUND_OFF_KW))
    for settings in bands:
        try:
            return dso_opf(hour.feeder, hour.generators, settings, solver=solver, **inputs)
        except InfeasibleNetworkError:
            continue
    return None


def case_outcome(hour: Hour, decision: Decision, sites: Sequence[DataCenterSite], solver: str, workload: Workload,
                 *, from_milp: bool = False, solve: Any = None, tie_break: str = "",
                 milp_payment: float | None = None) -> CaseOutcome:
    """One case in one hour: the decision priced by the hour's OPF (``decision_opf``) and what the
    aggregator pays at it (none without a feasible dispatch); ``workload`` gives the SVG settings,
    ``milp_payment`` what the bilevel MILP priced the decision at."""
    opf = decision_opf(hour, decision, sites, solver, from_milp=from_milp)
    payment = None if opf is None else aggregator_payment(sites, decision, opf, workload)
    return CaseOutcome(decision, opf, payment, solve, tie_break, milp_payment)


def hour_inputs(feeder: ThreePhaseFeeder, generators: Sequence[DistributedGenerator], settings: OpfSettings,
                period: Period, correction: HourCorrection = HourCorrection()) -> Hour:
    """What the OPFs of ``period`` are solved on (grid/feeder/periods.py), with the AC correction's
    raised floors and cut line bounds of that hour (none at first)."""
    hour_feeder, hour_generators, hour_settings = period_inputs(feeder, generators, settings, period)
    return Hour(hour_feeder, hour_generators, dataclasses.replace(hour_settings, floor_raise=correction.floors,
                                                                  line_cut=correction.cuts))


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
    """hours x buses x 3: the background's multiple of the spot loads, by the day's shape, times
    ``background_scale``."""
    try:
        if day.background == "activsg2000":
            shape = activsg2000_shape(feeder, datetime.fromisoformat(day.first_hour), day.hours, day.area or 0)
        elif day.background == "hourly":
            shape = hourly_shape(feeder, day.load_scale)
        else:
            shape = flat_shape(feeder, day.hours)
        return shape if day.background_scale == 1.0 else shape * day.background_scale
    except GridError as error:
        raise ConfigError(f"price.day: {error}") from None


def _check_fits(workload: Workload, sites: Sequence[DataCenterSite], field: str) -> None:
    try:
        check_fits(sites, workload)
    except GridError as error:
        raise ConfigError(f"{field}: {error}") from None
