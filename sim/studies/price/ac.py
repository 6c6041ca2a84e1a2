"""The price study's AC check (docs/models/dlmp.md#eq-d-24): every hour of every case solved again
as an AC power flow in OpenDSS (grid/feeder/opendss.py) at the case's decision and the OPF's
dispatch, against the linear voltages the study priced."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from grid.errors import GridError
from grid.feeder.bilevel import DataCenterSite
from grid.feeder.inputs import OpfSettings, node_values
from grid.feeder.opendss import AcFlow, opendss_flow
from grid.network.three_phase import PHASE_NAMES
from sim.studies.price.periods import PeriodOutcome

Progress = Callable[[str], None]
# A voltage this far past the band (p.u.) is a violation, not round-off.
VIOLATION_PU = 1e-6
AC_COLUMNS = ("period", "case", "bus", "phase", "linear_pu", "ac_pu", "error_pu")
FLOOR_COLUMNS = ("period", "bus", "phase", "rise_pu2")


@dataclass(frozen=True, eq=False)
class AcCheck:
    """One hour of one case: the AC flow, and the linear voltages it is held against."""

    flow: AcFlow
    linear_pu: dict[int, np.ndarray] = field(repr=False)

    def error(self, bus: int) -> np.ndarray:
        """Linear minus AC (p.u.): positive where LinDist3Flow puts the voltage higher."""
        return self.linear_pu[bus] - self.flow.voltage_pu[bus]

    def violations(self, settings: OpfSettings) -> list[tuple[int, str, float]]:
        """(bus, phase, AC voltage) outside the band."""
        return [(bus, PHASE_NAMES[k], v) for bus, k, v in node_values(self.flow.voltage_pu)
                if v < settings.v_min_pu - VIOLATION_PU or v > settings.v_max_pu + VIOLATION_PU]


def ac_checks(sites: Sequence[DataCenterSite], hours: Sequence[PeriodOutcome], settings: OpfSettings,
              progress: Progress) -> dict[tuple[int, str], AcCheck]:
    """An AC flow per hour and case whose OPF was feasible, on the feeder that hour was solved on,
    keyed by (hour index, case); ``settings`` give the head voltage."""
    progress(f"AC check: OpenDSS power flows of {len(hours)} hour(s) x {len(hours[0].cases)} cases")
    checks = {}
    for t, hour in enumerate(hours):
        hour_feeder = hour.inputs.feeder
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
            checks[t, case] = AcCheck(flow, outcome.opf.voltage_pu)
    return checks


def at_node(extreme: tuple[float, int, int]) -> dict[str, Any]:
    """A (value, bus, phase index) extreme as summary.json gives it: value, bus and phase name."""
    value, bus, k = extreme
    return {"value": round(value, 6), "bus": bus, "phase": PHASE_NAMES[k]}


def ac_entry(check: AcCheck, settings: OpfSettings, line_rating_a: float | None) -> dict[str, Any]:
    """One hour of one case, for summary.json: voltages against the band; the largest segment
    current, and with ``line_rating_a`` every one above it (reported: the correction moves voltage
    floors only)."""
    low = min((v, bus, k) for bus, k, v in node_values(check.flow.voltage_pu))
    loads = [(float(amps[k]), segment, k) for segment, amps in check.flow.current_a.items() for k in range(3)
             if not np.isnan(amps[k])]
    top, segment, phase = max(loads)
    errors = {bus: np.abs(check.error(bus)) for bus in check.flow.voltage_pu}
    worst = max((gap, bus, k) for bus, k, gap in node_values(errors))
    return {
        "min_voltage_pu": at_node(low),
        "max_linear_error_pu": at_node(worst),
        "violations": [{"bus": bus, "phase": phase, "voltage_pu": round(v, 6)}
                       for bus, phase, v in check.violations(settings)],
        "losses_kw": round(check.flow.losses_kw, 6),
        "iterations": check.flow.iterations,
        "max_line_current": {"current_a": round(top, 4), "segment": f"{segment[0]}-{segment[1]}",
                             "phase": PHASE_NAMES[phase]},
        "line_violations": [{"segment": f"{s[0]}-{s[1]}", "phase": PHASE_NAMES[k], "current_a": round(amps, 4)}
                            for amps, s, k in loads if line_rating_a is not None and amps > line_rating_a],
    }


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


def count_violations(checks: dict[tuple[int, str], AcCheck], settings: OpfSettings) -> int:
    """Bus-phase-hours outside the band, over every case."""
    return sum(len(check.violations(settings)) for check in checks.values())


def raise_floors(raised: dict[int, tuple[tuple[int, int, float], ...]], checks: dict[tuple[int, str], AcCheck],
                 head_bus: int) -> dict[int, tuple[tuple[int, int, float], ...]]:
    """The AC correction's next floors (docs/models/dlmp.md#eq-d-25): per hour, bus and phase, the
    largest gap between the linear and the AC squared voltage over the cases, where the linear
    model is the higher, kept at least as high as before (the floors only rise)."""
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
    return {t: tuple((b, k, r) for (b, k), r in sorted(v.items())) for t, v in sorted(rise.items())}


@dataclass(frozen=True)
class AcCorrection:
    """The AC correction's rounds: bus-phase-hours outside the band after each (the first: the
    study as it was), the floors raised last, and why it stopped early, if it did."""

    broken: tuple[int, ...]
    payments: tuple[dict[str, float | None], ...] = ()   # each case's payment over the periods ($), per round
    raised: dict[int, tuple[tuple[int, int, float], ...]] = field(default_factory=dict)
    stopped: str = ""

    def summary(self, hours: Sequence[PeriodOutcome]) -> dict[str, Any]:
        return {"violations_by_round": list(self.broken), "rounds": len(self.broken) - 1,
                "payment_usd_by_round": {case: [p[case] for p in self.payments] for case in self.payments[0]},
                "clear": self.broken[-1] == 0, "stopped": self.stopped or None,
                "floors_raised": sum(len(rows) for rows in self.raised.values()),
                "largest_rise_pu2": round(max((rise for rows in self.raised.values() for _, _, rise in rows),
                                              default=0.0), 6)}

    def rows(self, hours: Sequence[PeriodOutcome]) -> list[dict[str, Any]]:
        """ac_floors.csv: each raised floor, by hour, bus and phase."""
        return [{"period": hours[t].period.label, "bus": bus, "phase": PHASE_NAMES[k], "rise_pu2": round(rise, 9)}
                for t, rows in self.raised.items() for bus, k, rise in rows]
