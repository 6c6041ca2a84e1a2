"""The price study's AC check (docs/models/dlmp.md#eq-d-24): every hour of every case solved again
as an AC power flow in OpenDSS (grid/feeder/opendss.py) at the case's decision and the OPF's
dispatch, against the linear voltages the study priced."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from grid.errors import GridError
from grid.feeder.bilevel import DataCenterSite
from grid.feeder.inputs import OpfSettings, node_values, rated_kw
from grid.feeder.opendss import AcFlow, opendss_flow
from grid.network.three_phase import PHASE_NAMES, ThreePhaseFeeder
from sim.studies.price.periods import HourCorrection, PeriodOutcome

Progress = Callable[[str], None]
# A voltage this far past the band (p.u.) is a violation, not round-off; so is a current this
# share above its rating.
VIOLATION_PU = 1e-6
OVERLOAD_SHARE = 1e-6
AC_COLUMNS = ("period", "case", "bus", "phase", "linear_pu", "ac_pu", "error_pu")
FLOOR_COLUMNS = ("period", "bus", "phase", "rise_pu2")
CUT_COLUMNS = ("period", "segment", "phase", "cut_kw")


@dataclass(frozen=True, eq=False)
class AcCheck:
    """One hour of one case: the AC flow, the linear voltages and flows it is held against, and
    the ratings of the rated segments (A per phase, by (from, to))."""

    flow: AcFlow
    linear_pu: dict[int, np.ndarray] = field(repr=False)
    linear_kw: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)
    linear_kvar: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)
    ratings: dict[tuple[int, int], float] = field(default_factory=dict, repr=False)

    def error(self, bus: int) -> np.ndarray:
        """Linear minus AC (p.u.): positive where LinDist3Flow puts the voltage higher."""
        return self.linear_pu[bus] - self.flow.voltage_pu[bus]

    def violations(self, settings: OpfSettings) -> list[tuple[int, str, float]]:
        """(bus, phase, AC voltage) outside the band."""
        return [(bus, PHASE_NAMES[k], v) for bus, k, v in node_values(self.flow.voltage_pu)
                if v < settings.v_min_pu - VIOLATION_PU or v > settings.v_max_pu + VIOLATION_PU]

    def loadings(self) -> list[tuple[float, tuple[int, int], int, float, float]]:
        """(current / rating, segment, phase index, current A, rating A) of every rated segment-phase."""
        return [(float(amps[k]) / rating, segment, k, float(amps[k]), rating)
                for segment, rating in self.ratings.items() for amps in (self.flow.current_a[segment],)
                for k in range(3) if not np.isnan(amps[k])]

    def overloads(self) -> list[tuple[float, tuple[int, int], int, float, float]]:
        """The loadings above the rating (by more than round-off)."""
        return [row for row in self.loadings() if row[0] > 1.0 + OVERLOAD_SHARE]


def ac_checks(sites: Sequence[DataCenterSite], hours: Sequence[PeriodOutcome], settings: OpfSettings,
              progress: Progress) -> dict[tuple[int, str], AcCheck]:
    """An AC flow per hour and case whose OPF was feasible, on the feeder that hour was solved on,
    keyed by (hour index, case); ``settings`` give the head voltage."""
    progress(f"AC check: OpenDSS power flows of {len(hours)} hour(s) x {len(hours[0].cases)} cases")
    checks = {}
    for t, hour in enumerate(hours):
        hour_feeder = hour.inputs.feeder
        ratings = {(s.from_bus, s.to_bus): s.ampacity_a for s in hour_feeder.segments if s.ampacity_a is not None}
        at = {g.name: g.bus for g in hour.inputs.generators}
        for case, outcome in hour.cases.items():
            if outcome.opf is None:
                continue
            injected: dict[int, np.ndarray] = {}
            for name, kw in outcome.opf.generator_kw.items():
                injected[at[name]] = injected.get(at[name], np.zeros(3)) + kw
            try:
                flow = opendss_flow(hour_feeder, settings.head_voltage_pu, generator_kw=injected,
                                    **outcome.decision.opf_inputs(sites))
            except GridError as error:
                raise GridError(f"price: AC check at {hour.period.label}, {case}: {error}") from None
            checks[t, case] = AcCheck(flow, outcome.opf.voltage_pu, outcome.opf.flow_kw, outcome.opf.flow_kvar,
                                      ratings)
    return checks


def at_node(extreme: tuple[float, int, int]) -> dict[str, Any]:
    """A (value, bus, phase index) extreme as summary.json gives it: value, bus and phase name."""
    value, bus, k = extreme
    return {"value": round(value, 6), "bus": bus, "phase": PHASE_NAMES[k]}


def ac_entry(check: AcCheck, settings: OpfSettings) -> dict[str, Any]:
    """One hour of one case, for summary.json: voltages against the band; the largest segment
    current, the most loaded rated segment, and every segment-phase above its rating."""
    low = min((v, bus, k) for bus, k, v in node_values(check.flow.voltage_pu))
    loads = [(float(amps[k]), segment, k) for segment, amps in check.flow.current_a.items() for k in range(3)
             if not np.isnan(amps[k])]
    top, segment, phase = max(loads)
    errors = {bus: np.abs(check.error(bus)) for bus in check.flow.voltage_pu}
    worst = max((gap, bus, k) for bus, k, gap in node_values(errors))
    loadings = check.loadings()
    most = max(loadings, default=None)
    return {
        "min_voltage_pu": at_node(low),
        "max_linear_error_pu": at_node(worst),
        "violations": [{"bus": bus, "phase": phase, "voltage_pu": round(v, 6)}
                       for bus, phase, v in check.violations(settings)],
        "losses_kw": round(check.flow.losses_kw, 6),
        "iterations": check.flow.iterations,
        "max_line_current": {"current_a": round(top, 4), "segment": f"{segment[0]}-{segment[1]}",
                             "phase": PHASE_NAMES[phase]},
        "max_line_loading": None if most is None else _loading(most),
        "line_violations": [_loading(row) for row in check.overloads()],
    }


def _loading(row: tuple[float, tuple[int, int], int, float, float]) -> dict[str, Any]:
    share, (i, j), k, amps, rating = row
    return {"segment": f"{i}-{j}", "phase": PHASE_NAMES[k], "current_a": round(amps, 4), "rating_a": rating,
            "loading": round(share, 6)}


def ac_rows(checks: dict[tuple[int, str], AcCheck], hours: Sequence[PeriodOutcome]) -> list[dict[str, Any]]:
    """ac_voltages.csv: per hour, case, bus and phase the linear and AC voltage and their gap."""
    rows = []
    for (t, case), check in checks.items():
        for bus, k, ac in node_values(check.flow.voltage_pu):
            rows.append({"period": hours[t].period.label, "case": case, "bus": bus, "phase": PHASE_NAMES[k],
                         "linear_pu": round(float(check.linear_pu[bus][k]), 6), "ac_pu": round(ac, 6),
                         "error_pu": round(float(check.error(bus)[k]), 6)})
    return rows


# How far above the measured gap a raised floor sits (p.u. of squared voltage): the AC voltage
# then clears the floor by about half this, not by round-off.
_RAISE_MARGIN = 2e-6
# How far below the flow that would carry exactly the rating a cut bound sits, as a share of the
# rated flow: the AC current then clears its rating by about this much, not by round-off.
_CUT_MARGIN = 1e-3


def count_violations(checks: dict[tuple[int, str], AcCheck], settings: OpfSettings) -> int:
    """Bus-phase-hours outside the band, over every case."""
    return sum(len(check.violations(settings)) for check in checks.values())


def count_overloads(checks: dict[tuple[int, str], AcCheck]) -> int:
    """Segment-phase-hours above their rating, over every case."""
    return sum(len(check.overloads()) for check in checks.values())


def next_correction(corrections: Mapping[int, HourCorrection], checks: dict[tuple[int, str], AcCheck],
                    feeder: ThreePhaseFeeder, settings: OpfSettings) -> dict[int, HourCorrection]:
    """The AC correction's next round, per hour: floors raised (D-25) and line bounds cut (D-30)
    by what the checks measured over the cases; both only ever tighten."""
    floors = _raised_floors({t: c.floors for t, c in corrections.items()}, checks, feeder.head_bus)
    cuts = (_cut_lines({t: c.cuts for t, c in corrections.items()}, checks, feeder, settings)
            if settings.line_limits else {})
    return {t: HourCorrection(floors.get(t, ()), cuts.get(t, ())) for t in sorted(floors.keys() | cuts.keys())}


def _raised_floors(raised: Mapping[int, tuple[tuple[int, int, float], ...]], checks: dict[tuple[int, str], AcCheck],
                   head_bus: int) -> dict[int, tuple[tuple[int, int, float], ...]]:
    """D-25 (docs/models/dlmp.md#eq-d-25): per hour, bus and phase, the largest gap between the
    linear and the AC squared voltage over the cases, where the linear model is the higher, kept at
    least as high as before (the floors only rise)."""
    rise: dict[int, dict[tuple[int, int], float]] = {t: {(b, k): r for b, k, r in v} for t, v in raised.items()}
    for (t, _), check in checks.items():
        for bus, ac in check.flow.voltage_pu.items():
            if bus == head_bus:   # held at its voltage: its gap is the stiff source's round-off
                continue
            gap = check.linear_pu[bus] ** 2 - ac ** 2
            for k in range(3):
                if gap[k] > 0:   # False on a phase the bus lacks (NaN)
                    hour = rise.setdefault(t, {})
                    hour[bus, k] = max(hour.get((bus, k), 0.0), float(gap[k]) + _RAISE_MARGIN)
    return {t: tuple((b, k, r) for (b, k), r in sorted(v.items())) for t, v in sorted(rise.items()) if v}


def _cut_lines(cut: Mapping[int, tuple[tuple[int, int, int, float], ...]], checks: dict[tuple[int, str], AcCheck],
               feeder: ThreePhaseFeeder, settings: OpfSettings) -> dict[int, tuple[tuple[int, int, int, float], ...]]:
    """D-30 (docs/models/dlmp.md#eq-d-30): per hour, segment and phase above its rating in some
    case, the bound cut to the active flow that, with the segment's reactive flow as it is, scales
    its linear apparent flow by rating / AC current, less a margin: the cut the largest over the
    cases and never smaller than before."""
    segments = {(s.from_bus, s.to_bus): s for s in feeder.segments}
    out: dict[int, dict[tuple[int, int, int], float]] = {t: {(i, j, k): kw for i, j, k, kw in v}
                                                           for t, v in cut.items()}
    for (t, _), check in checks.items():
        for share, (i, j), k, _, _ in check.overloads():
            rated = rated_kw(feeder, segments[i, j], settings.v_min_pu)
            p, q = float(check.linear_kw[i, j][k]), float(check.linear_kvar[i, j][k])
            apparent = (p * p + q * q) / (share * share)   # the squared apparent flow that carries the rating
            target = math.sqrt(max(apparent - q * q, 0.0)) - _CUT_MARGIN * rated
            hour = out.setdefault(t, {})
            hour[i, j, k] = max(hour.get((i, j, k), 0.0), rated - target)
    return {t: tuple((i, j, k, kw) for (i, j, k), kw in sorted(v.items())) for t, v in sorted(out.items()) if v}


@dataclass(frozen=True)
class AcCorrection:
    """The AC correction's rounds: bus-phase-hours outside the band and segment-phase-hours above
    their rating after each (the first: the study as it was), the hours' corrections last made,
    and why it stopped early, if it did."""

    broken: tuple[int, ...]
    overloaded: tuple[int, ...] = ()
    payments: tuple[dict[str, float | None], ...] = ()   # each case's payment over the periods ($), per round
    raised: dict[int, HourCorrection] = field(default_factory=dict)
    stopped: str = ""
    lines: bool = True   # whether the OPF holds the lines (line limits): only then are overloads corrected

    @property
    def clear(self) -> bool:
        """Nothing left that the correction can move: no voltage outside the band and, with line
        limits, no line over its rating."""
        return self.broken[-1] == 0 and (not self.lines or self.overloaded[-1] == 0)

    def summary(self, hours: Sequence[PeriodOutcome]) -> dict[str, Any]:
        floors = [rise for c in self.raised.values() for _, _, rise in c.floors]
        cuts = [kw for c in self.raised.values() for _, _, _, kw in c.cuts]
        return {"violations_by_round": list(self.broken), "line_violations_by_round": list(self.overloaded),
                "rounds": len(self.broken) - 1,
                "payment_usd_by_round": {case: [p[case] for p in self.payments] for case in self.payments[0]},
                "clear": self.clear, "lines_held": self.lines, "stopped": self.stopped or None,
                "floors_raised": len(floors), "largest_rise_pu2": round(max(floors, default=0.0), 6),
                "lines_cut": len(cuts), "largest_cut_kw": round(max(cuts, default=0.0), 4)}

    def rows(self, hours: Sequence[PeriodOutcome]) -> list[dict[str, Any]]:
        """ac_floors.csv: each raised floor, by hour, bus and phase."""
        return [{"period": hours[t].period.label, "bus": bus, "phase": PHASE_NAMES[k], "rise_pu2": round(rise, 9)}
                for t, c in self.raised.items() for bus, k, rise in c.floors]

    def cut_rows(self, hours: Sequence[PeriodOutcome]) -> list[dict[str, Any]]:
        """ac_line_cuts.csv: each cut line bound, by hour, segment and phase."""
        return [{"period": hours[t].period.label, "segment": f"{i}-{j}", "phase": PHASE_NAMES[k],
                 "cut_kw": round(kw, 6)} for t, c in self.raised.items() for i, j, k, kw in c.cuts]
