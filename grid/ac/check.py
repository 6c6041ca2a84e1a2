"""Check a data-center allocation with an AC power flow (pandapower, Newton-Raphson).

``check_allocation(case, allocation_mw, states, settings)`` adds the allocation (MW per bus) as
new load at a power factor to each background state, solves the AC power flow with and without
it, and reports line loadings (MVA, % of rating), bus voltages and the violations, each flagged
as pre-existing (also there without the new load) or caused by the new load.

The interface is narrow on purpose: a case, MW per bus, background states and settings in, a
typed result with tables out, so that a three-phase feeder check (OpenDSS) can offer the same.
The model and its rules are docs/models/ac-check.md; the AC model of the case is
grid/ac/case_model.py.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from grid.ac.case_model import RATINGS, AcCase, ac_case, quiet_pandapower
from grid.ac.sensitivity import VoltageSensitivity, voltage_sensitivity
from grid.errors import GridError
from grid.network.cases import CaseOptions
from grid.network.network import Network

OVERLOAD, LOW_VOLTAGE, HIGH_VOLTAGE = "overload", "low voltage", "high voltage"
PRE_EXISTING, CAUSED, UNKNOWN = "pre-existing", "caused by new load", "unknown"
_ORIGIN_KEYS = ((CAUSED, "caused"), (PRE_EXISTING, "pre_existing"), (UNKNOWN, "unknown"))
# What AcCheck.summary() counts, in its order.
SUMMARY_KEYS = ("states", "converged", "not_converged", "states_with_caused_violations") + tuple(
    f"{key}_{what}" for _, key in _ORIGIN_KEYS for what in ("overloads", "voltage_violations"))
# A limit counts as broken past this margin (% of rating, p.u. of voltage), so that round-off in
# a solution that sits on a limit is not reported.
_MARGIN = 1e-6
# pandapower runs its Newton-Raphson loop in lightsim2grid's C++ (a dependency; "auto": when the
# net allows it, docs/models/ac-check.md#speed), else in numpy, compiled when numba is there.
_NUMBA = importlib.util.find_spec("numba") is not None
# What changes between the runs on one net (pandapower's recycle option): PQ values and units.
_RECYCLE = {"bus_pq": True, "gen": True, "trafo": False}


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class AcSettings:
    """What the check assumes and how it solves; every field is validated with a one-line error.

    ``power_factor`` is the new load's (lagging: it draws reactive power), ``vmin_pu``/``vmax_pu``
    the voltage band every bus must stay in, ``rating`` the branch rating that loadings are a
    percentage of (MVA; a branch without one gets the DC network's default rating), and
    ``max_iterations``/``tolerance_mva`` the Newton-Raphson stopping rule (docs/models/ac-check.md#eq-a-4).
    ``enforce_q_limits`` holds generators within Qmin..Qmax (a unit at a limit stops holding its
    voltage), as MATPOWER's ENFORCE_Q_LIMS does.
    """

    power_factor: float = 0.95
    vmin_pu: float = 0.95
    vmax_pu: float = 1.05
    rating: str = "rate_a"
    max_iterations: int = 20
    tolerance_mva: float = 1e-8
    enforce_q_limits: bool = True

    def __post_init__(self) -> None:
        pf = self.power_factor
        if not _real(pf) or not 0 < pf <= 1:
            raise GridError(f"AcSettings.power_factor must be in (0, 1] (lagging), got {pf!r}")
        for name in ("vmin_pu", "vmax_pu"):
            value = getattr(self, name)
            if not _real(value) or value <= 0:
                raise GridError(f"AcSettings.{name} must be a voltage > 0 p.u., got {value!r}")
        if self.vmin_pu >= self.vmax_pu:
            raise GridError(f"AcSettings.vmin_pu ({self.vmin_pu!r}) must be below vmax_pu ({self.vmax_pu!r})")
        if self.rating not in RATINGS:
            raise GridError(f"AcSettings.rating must be one of {', '.join(RATINGS)}, got {self.rating!r}")
        iterations = self.max_iterations
        if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 1:
            raise GridError(f"AcSettings.max_iterations must be an integer >= 1, got {iterations!r}")
        if not _real(self.tolerance_mva) or self.tolerance_mva <= 0:
            raise GridError(f"AcSettings.tolerance_mva must be a mismatch > 0 MVA, got {self.tolerance_mva!r}")
        if not isinstance(self.enforce_q_limits, bool):
            raise GridError(f"AcSettings.enforce_q_limits must be true or false, got {self.enforce_q_limits!r}")

    @property
    def tan_phi(self) -> float:
        """Mvar of new load per MW (docs/models/ac-check.md#eq-a-7)."""
        return math.sqrt(1.0 - self.power_factor ** 2) / self.power_factor


@dataclass(frozen=True)
class BackgroundStates:
    """Background states to check: per state a label and the net load (MW) of the buses in
    ``buses`` (row s of ``load_mw``, columns in ``buses`` order), which replaces the case's PD;
    negative is a net injection. A bus that ``buses`` leaves out keeps its PD. Reactive load
    follows the rule of docs/models/ac-check.md#eq-a-6. The capacity study's backgrounds are net
    withdrawals (load less committed generation): build those with :meth:`from_net_withdrawals`.
    """

    labels: tuple[str, ...]
    buses: tuple[int, ...]
    load_mw: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        labels, buses = tuple(self.labels), tuple(self.buses)
        if not labels:
            raise GridError("BackgroundStates needs at least one state (label)")
        for label in labels:
            if not isinstance(label, str) or not label.strip():
                raise GridError(f"BackgroundStates.labels: every label must be a non-empty string, got {label!r}")
        if len(set(labels)) != len(labels):
            twice = next(label for label in labels if labels.count(label) > 1)
            raise GridError(f"BackgroundStates.labels: {twice!r} appears twice; give each state its own label")
        for bus in buses:
            if isinstance(bus, bool) or not isinstance(bus, numbers.Integral):
                raise GridError(f"BackgroundStates.buses: bus numbers are integers, got {bus!r}")
        if len(set(buses)) != len(buses):
            raise GridError("BackgroundStates.buses: a bus appears twice; give each bus one column")
        load = np.array(self.load_mw, dtype=float).reshape(len(labels), -1) if np.size(self.load_mw) else \
            np.zeros((len(labels), 0))
        if load.shape != (len(labels), len(buses)):
            raise GridError(f"BackgroundStates.load_mw must have one row per label and one column per bus "
                            f"({len(labels)} x {len(buses)}), got shape {np.shape(self.load_mw)}")
        if not np.isfinite(load).all():
            row, column = np.argwhere(~np.isfinite(load))[0]
            raise GridError(f"BackgroundStates.load_mw: state {labels[row]!r}, bus {buses[column]} is "
                            f"{load[row, column]:g}; give a finite MW")
        load.flags.writeable = False
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "buses", tuple(int(b) for b in buses))
        object.__setattr__(self, "load_mw", load)

    @classmethod
    def case_load(cls, label: str = "case load") -> BackgroundStates:
        """One state: the case's own loads."""
        return cls((label,), (), np.zeros((1, 0)))

    @classmethod
    def from_net_withdrawals(cls, network: Network, labels: Sequence[str], net_withdrawal_mw: np.ndarray,
                             buses: Sequence[int] | None = None) -> BackgroundStates:
        """States from the capacity study's background (grid/load/scenarios.py): net withdrawal,
        load less the bus's committed generation. The committed generation of ``network`` (the DC
        network the study used) is added back, so that the study's centre, PD - PG, gives the
        case's PD (docs/models/ac-check.md#eq-a-6)."""
        buses = tuple(network.bus_numbers) if buses is None else tuple(buses)
        committed = network.committed_generation_mw()
        withdrawal = np.array(net_withdrawal_mw, dtype=float).reshape(len(labels), len(buses))
        return cls(tuple(labels), buses, withdrawal + np.array([committed.get(b, 0.0) for b in buses]))

    @classmethod
    def from_rows(cls, rows: Mapping[str, Mapping[int, float]]) -> BackgroundStates:
        """States from {label: {bus: MW}}; every state must name the same buses."""
        labels = tuple(rows)
        buses = tuple(next(iter(rows.values()), {}))
        for label, loads in rows.items():
            if set(loads) != set(buses):
                raise GridError(f"BackgroundStates.from_rows: state {label!r} names other buses than "
                                f"state {labels[0]!r}; give every state the same buses")
        return cls(labels, buses, np.array([[rows[label][bus] for bus in buses] for label in labels], dtype=float))


@dataclass(frozen=True)
class PowerFlow:
    """One AC power flow. Arrays follow AcCheck.buses and AcCheck.lines (case orientation);
    they are NaN when the run did not converge. The mismatch is the largest bus power mismatch
    (MVA) at the last iterate, and the bus where it is."""

    converged: bool
    iterations: int
    max_mismatch_mva: float
    mismatch_bus: int | None
    vm_pu: np.ndarray = field(repr=False)
    va_degree: np.ndarray = field(repr=False)
    flows: np.ndarray = field(repr=False)       # (lines, 4): P from, Q from, P to, Q to (MW, Mvar)
    loading_pct: np.ndarray = field(repr=False)  # max(|S from|, |S to|) / rating, %


@dataclass(frozen=True)
class StateCheck:
    """A background state solved with the new load and without it (the baseline); when asked for,
    the voltage sensitivities of the buses whose violation the new load causes (A-10)."""

    label: str
    with_load: PowerFlow
    without_load: PowerFlow
    voltage: VoltageSensitivity | None = None

    @property
    def converged(self) -> bool:
        return self.with_load.converged


@dataclass(frozen=True)
class Violation:
    """A broken limit in a state with the new load: a line overload or a bus voltage outside the band."""

    state: str
    kind: str                # OVERLOAD, LOW_VOLTAGE or HIGH_VOLTAGE
    element: str             # "line 38-65" or "bus 9"
    value: float             # loading (%) or voltage (p.u.)
    limit: float             # 100 %, vmin_pu or vmax_pu
    value_without: float     # the same quantity without the new load (NaN when that run failed)
    origin: str              # PRE_EXISTING, CAUSED or UNKNOWN
    position: int = -1       # the line's position in AcCheck.lines, or the bus's in AcCheck.buses


@dataclass(frozen=True)
class AcCheck:
    """The result of :func:`check_allocation`: per state the two power flows, and the violations."""

    case: str
    settings: AcSettings
    allocation_mw: Mapping[int, float]
    buses: tuple[int, ...]
    lines: tuple[str, ...]
    from_bus: tuple[int, ...]
    to_bus: tuple[int, ...]
    rating_mva: np.ndarray = field(repr=False)
    states: tuple[StateCheck, ...] = ()
    violations: tuple[Violation, ...] = ()

    def failures(self) -> list[str]:
        """One line per power flow that did not converge."""
        found = []
        for state in self.states:
            runs = [(state.with_load, "with the new load"), (state.without_load, "without the new load")]
            if state.without_load is state.with_load:  # no new load: one run serves both
                runs = [(state.with_load, "(no new load)")]
            found += [_failure_text(self.case, state.label, which, run, self.settings) for run, which in runs
                      if not run.converged]
        return found

    def raise_on_failure(self) -> None:
        """A GridError with the first failure's one-line message, when a power flow did not converge."""
        failures = self.failures()
        if failures:
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            raise GridError(failures[0] + more)

    def summary(self) -> dict[str, int]:
        """Counts: states, how many converged, and the violations by kind and origin."""
        counts = {"states": len(self.states), "converged": sum(s.converged for s in self.states),
                  "not_converged": sum(not s.converged for s in self.states),
                  "states_with_caused_violations": len({v.state for v in self.violations if v.origin == CAUSED})}
        for origin, key in _ORIGIN_KEYS:
            picked = [v for v in self.violations if v.origin == origin]
            counts[f"{key}_overloads"] = sum(v.kind == OVERLOAD for v in picked)
            counts[f"{key}_voltage_violations"] = sum(v.kind != OVERLOAD for v in picked)
        return counts

    def states_frame(self) -> pd.DataFrame:
        """One row per state: convergence of both runs and its violations by origin."""
        rows = []
        for state in self.states:
            mine = [v for v in self.violations if v.state == state.label]
            rows.append({"state": state.label, "converged": state.with_load.converged,
                         "iterations": state.with_load.iterations,
                         "max_mismatch_mva": state.with_load.max_mismatch_mva,
                         "converged_without_load": state.without_load.converged,
                         "caused": sum(v.origin == CAUSED for v in mine),
                         "pre_existing": sum(v.origin == PRE_EXISTING for v in mine),
                         "unknown": sum(v.origin == UNKNOWN for v in mine)})
        return pd.DataFrame(rows)

    def lines_frame(self) -> pd.DataFrame:
        """One row per state and line: end flows with the new load, MVA loading with and without it."""
        frames = []
        for state in self.states:
            flows = state.with_load.flows
            frames.append(pd.DataFrame({
                "state": state.label, "line": self.lines, "from_bus": self.from_bus, "to_bus": self.to_bus,
                "rating_mva": self.rating_mva, "p_from_mw": flows[:, 0], "q_from_mvar": flows[:, 1],
                "p_to_mw": flows[:, 2], "q_to_mvar": flows[:, 3], "loading_pct": state.with_load.loading_pct,
                "loading_pct_without": state.without_load.loading_pct}))
        return pd.concat(frames, ignore_index=True)

    def buses_frame(self) -> pd.DataFrame:
        """One row per state and bus: voltage magnitude and angle with the new load, magnitude without."""
        return pd.concat([pd.DataFrame({
            "state": state.label, "bus": self.buses, "vm_pu": state.with_load.vm_pu,
            "va_degree": state.with_load.va_degree, "vm_pu_without": state.without_load.vm_pu})
            for state in self.states], ignore_index=True)

    def violations_frame(self) -> pd.DataFrame:
        """One row per violation (columns as the fields of :class:`Violation`)."""
        columns = ["state", "kind", "element", "value", "limit", "value_without", "origin"]
        return pd.DataFrame([[getattr(v, c) for c in columns] for v in self.violations], columns=columns)


def _failure_text(case: str, label: str, which: str, run: PowerFlow, settings: AcSettings) -> str:
    where = f" at bus {run.mismatch_bus}" if run.mismatch_bus is not None else ""
    mismatch = (f"largest power mismatch {run.max_mismatch_mva:.6g} MVA{where}" if math.isfinite(run.max_mismatch_mva)
                else "the iterates diverged")
    return (f"AC check of {case}, state {label!r} {which}: the Newton-Raphson power flow did not converge in "
            f"{run.iterations} iterations ({mismatch}, tolerance {settings.tolerance_mva:g} MVA); the load may be "
            "more than the network can carry, or raise AcSettings.max_iterations")


def check_allocation(
    case: str | Path,
    allocation_mw: Mapping[int, float],
    states: BackgroundStates,
    settings: AcSettings = AcSettings(),
    *,
    options: CaseOptions | None = None,
    base_dir: Path | None = None,
    sensitivities: bool = False,
    without: Sequence[PowerFlow] | None = None,
) -> AcCheck:
    """Solve every background state with and without the new load; list the violations.

    ``case`` is a MATPOWER case (a built-in name or a .m file, relative to ``base_dir`` if given);
    ``options`` are the DC study's case options, which set the ratings of unrated branches and the
    slack model that generation follows (docs/models/ac-check.md#eq-a-8). Bad input is a one-line
    GridError; a power flow that does not converge is reported in the result (``failures``,
    ``raise_on_failure``). With ``sensitivities``, each state carries dV/dP of the buses whose
    voltage violation the new load causes (docs/models/ac-check.md#eq-a-10). ``without`` are the
    states' runs without the new load when the caller has them already (one per state, from a
    check of the same states and settings): they are not solved again.
    """
    if not isinstance(states, BackgroundStates):
        raise GridError(f"states must be a BackgroundStates, got {type(states).__name__}")
    if not isinstance(settings, AcSettings):
        raise GridError(f"settings must be an AcSettings, got {type(settings).__name__}")
    model = ac_case(case, options, base_dir)
    added = allocation_vector(model, allocation_mw)
    p_background, q_background = background_loads(model, states)
    net = model.work_net(settings)
    net._ppc = None  # a check starts from scratch, whatever ran on the net before: same input, same output
    checked, found = [], []
    if without is not None and len(without) != len(states.labels):
        raise GridError(f"without: give one run per state ({len(states.labels)}), got {len(without)}")
    for row, label in enumerate(states.labels):
        baseline = _power_flow(model, net, p_background[row], q_background[row], settings) if without is None \
            else without[row]
        with_load = baseline if not added.any() else _power_flow(
            model, net, p_background[row] + added, q_background[row] + added * settings.tan_phi, settings)
        state = StateCheck(label, with_load, baseline)
        violations = _violations(model, state, settings)
        watched = [int(model.buses[v.position]) for v in violations if v.origin == CAUSED and v.kind != OVERLOAD]
        if sensitivities and watched:  # the net holds the run with the new load, the last one solved
            state = dataclasses.replace(state, voltage=voltage_sensitivity(model, net, sorted(set(watched)),
                                                                           settings.tan_phi))
        checked.append(state)
        found += violations
    return AcCheck(
        case=str(case), settings=settings, allocation_mw=dict(allocation_mw), buses=tuple(model.buses.tolist()),
        lines=model.lines, from_bus=tuple(model.from_bus.tolist()), to_bus=tuple(model.to_bus.tolist()),
        rating_mva=model.ratings_mva[settings.rating], states=tuple(checked), violations=tuple(found),
    )


def allocation_vector(model: AcCase, allocation_mw: Mapping[int, float]) -> np.ndarray:
    """New load per bus (MW) in the model's bus order."""
    if not isinstance(allocation_mw, Mapping):
        raise GridError(f"allocation_mw must be a mapping bus -> MW, got {type(allocation_mw).__name__}")
    position = {int(b): i for i, b in enumerate(model.buses.tolist())}
    added = np.zeros(len(model.buses))
    for bus, mw in allocation_mw.items():
        if isinstance(bus, bool) or not isinstance(bus, numbers.Integral) or int(bus) not in position:
            raise GridError(f"allocation_mw names bus {bus!r}, which is not a connected bus of case {model.name}")
        if not _real(mw) or mw < 0:
            raise GridError(f"allocation_mw for bus {bus} must be a finite MW >= 0, got {mw!r}")
        added[position[int(bus)]] += float(mw)
    return added


def background_loads(model: AcCase, states: BackgroundStates) -> tuple[np.ndarray, np.ndarray]:
    """P and Q of the background per state and bus (docs/models/ac-check.md#eq-a-6): the state's MW
    replaces PD; Q keeps the bus's QD/PD ratio, or QD itself where PD is 0."""
    position = {int(b): i for i, b in enumerate(model.buses.tolist())}
    unknown = [bus for bus in states.buses if bus not in position]
    if unknown:
        raise GridError(f"BackgroundStates.buses names bus {unknown[0]}, which is not a connected bus of case {model.name}")
    p = np.tile(model.pd_mw, (len(states.labels), 1))
    if states.buses:
        p[:, [position[bus] for bus in states.buses]] = states.load_mw
    has_p = model.pd_mw != 0
    ratio = np.divide(model.qd_mvar, model.pd_mw, out=np.zeros_like(model.qd_mvar), where=has_p)
    q = np.where(has_p, p * ratio, model.qd_mvar)
    return p, q


def schedule_state(model: AcCase, net: Any, p_mw: np.ndarray, q_mvar: np.ndarray) -> None:
    """Loads of the state, and the units' outputs following the change in total load
    (docs/models/ac-check.md#eq-a-8); the reference unit balances the rest, losses included."""
    net.load.loc[model.load_index, "p_mw"] = p_mw
    net.load.loc[model.load_index, "q_mvar"] = q_mvar
    change = float(p_mw.sum() - model.pd_mw.sum())
    output = model.unit_pg_mw + change * model.unit_share
    for table in ("gen", "sgen"):
        picked = np.array([t == table for t in model.unit_table], dtype=bool)
        if picked.any():
            net[table].loc[model.unit_index[picked], "p_mw"] = output[picked]


def _power_flow(model: AcCase, net: Any, p_mw: np.ndarray, q_mvar: np.ndarray, settings: AcSettings) -> PowerFlow:
    """One Newton-Raphson power flow of the state (docs/models/ac-check.md#eq-a-4)."""
    import pandapower as pp
    from pandapower.auxiliary import LoadflowNotConverged

    schedule_state(model, net, p_mw, q_mvar)
    try:
        with quiet_pandapower():
            # After the net's first run, only its loads and units change: pandapower recycles the
            # internal case (bus_pq, gen) and starts from the last solution, half the time per run.
            pp.runpp(net, algorithm="nr", calculate_voltage_angles=True, trafo_model="pi", init="auto",
                     max_iteration=int(settings.max_iterations), tolerance_mva=float(settings.tolerance_mva),
                     enforce_q_lims=settings.enforce_q_limits, numba=_NUMBA, recycle=_RECYCLE,
                     lightsim2grid="auto")
    except LoadflowNotConverged:
        failed = _failed(model, net)
        net._ppc = None  # the next run starts afresh, not from this diverged iterate
        return failed
    except Exception as exc:  # pandapower's own checks (islands, bad data) raise several types
        raise GridError(f"AC check of {model.name}: pandapower could not run the power flow "
                        f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]})") from None
    mismatch, bus = _mismatch(model, net)
    flows = _flows(model, net)
    return PowerFlow(True, int(net._ppc["iterations"]), mismatch, bus,
                     net.res_bus.vm_pu.loc[model.buses].to_numpy(), net.res_bus.va_degree.loc[model.buses].to_numpy(),
                     flows, _loading(flows, model.ratings_mva[settings.rating]))


def _failed(model: AcCase, net: Any) -> PowerFlow:
    mismatch, bus = _mismatch(model, net)
    nan_bus = np.full(len(model.buses), np.nan)
    nan_lines = np.full(len(model.lines), np.nan)
    return PowerFlow(False, int(net._ppc.get("iterations", 0)), mismatch, bus, nan_bus, nan_bus.copy(),
                     np.full((len(model.lines), 4), np.nan), nan_lines)


def _mismatch(model: AcCase, net: Any) -> tuple[float, int | None]:
    """The largest bus power mismatch (MVA) at the last iterate and its bus (docs/models/ac-check.md#eq-a-2):
    P at every bus but the reference, Q at the PQ buses."""
    internal = (net._ppc or {}).get("internal", {})
    if "V" not in internal or "Ybus" not in internal:
        return math.nan, None
    voltage, admittance = internal["V"], internal["Ybus"]
    with np.errstate(all="ignore"):
        mismatch = voltage * np.conj(admittance @ voltage) - internal["Sbus"]
    size = np.zeros(len(voltage))
    pv, pq = np.asarray(internal["pv"], dtype=np.int64), np.asarray(internal["pq"], dtype=np.int64)
    size[pv] = np.abs(mismatch[pv].real)
    size[pq] = np.maximum(np.abs(mismatch[pq].real), np.abs(mismatch[pq].imag))
    if not np.isfinite(size).all():
        return math.inf, None
    worst = int(np.argmax(size))
    lookup = np.asarray(net._pd2ppc_lookups["bus"])
    index = np.flatnonzero(lookup[model.buses] == worst)
    return float(size[worst] * net.sn_mva), int(model.buses[index[0]]) if index.size else None


def _flows(model: AcCase, net: Any) -> np.ndarray:
    """End flows per line in the case's from -> to orientation (docs/models/ac-check.md#eq-a-5)."""
    flows = np.full((len(model.lines), 4), np.nan)
    for kind in model.branches:
        values = net[kind.table].loc[kind.elements, list(kind.columns)].to_numpy(dtype=float)
        values[kind.turned] = values[kind.turned][:, [2, 3, 0, 1]]
        flows[kind.positions] = values
    # A transformer's charging sits on its buses in the net; its end flows carry it again.
    vm = net.res_bus.vm_pu
    for column, end, buses in ((1, 0, model.from_bus), (3, 1, model.to_bus)):
        flows[:, column] -= model.charging_pu[:, end] * vm.loc[buses].to_numpy() ** 2 * model.base_mva
    return flows


def _loading(flows: np.ndarray, rating_mva: np.ndarray) -> np.ndarray:
    """MVA loading in % of rating: the larger end (docs/models/ac-check.md#eq-a-5)."""
    apparent = np.maximum(np.hypot(flows[:, 0], flows[:, 1]), np.hypot(flows[:, 2], flows[:, 3]))
    return 100.0 * apparent / rating_mva


def _violations(model: AcCase, state: StateCheck, settings: AcSettings) -> list[Violation]:
    """Broken limits with the new load, each flagged by the run without it (docs/models/ac-check.md#eq-a-9)."""
    run, baseline = state.with_load, state.without_load
    if not run.converged:
        return []
    checks: list[tuple[str, Sequence[str], np.ndarray, np.ndarray, np.ndarray]] = [
        (OVERLOAD, [f"line {name}" for name in model.lines], run.loading_pct, baseline.loading_pct,
         np.full(len(model.lines), 100.0)),
        (LOW_VOLTAGE, [f"bus {b}" for b in model.buses.tolist()], run.vm_pu, baseline.vm_pu,
         np.full(len(model.buses), settings.vmin_pu)),
        (HIGH_VOLTAGE, [f"bus {b}" for b in model.buses.tolist()], run.vm_pu, baseline.vm_pu,
         np.full(len(model.buses), settings.vmax_pu)),
    ]
    found = []
    for kind, names, value, before, limit in checks:
        sign = -1.0 if kind == LOW_VOLTAGE else 1.0
        broken = sign * (value - limit) > _MARGIN
        was_broken = sign * (before - limit) > _MARGIN
        for i in np.flatnonzero(broken).tolist():
            origin = UNKNOWN if not baseline.converged else PRE_EXISTING if was_broken[i] else CAUSED
            found.append(Violation(state.label, kind, names[i], float(value[i]), float(limit[i]), float(before[i]),
                                   origin, i))
    return found
