"""An AC power flow of one hour of a feeder study in OpenDSS (opendssdirect), to check what the
linear model (LinDist3Flow, docs/models/dlmp.md#eq-d-1) says (docs/models/dlmp.md#eq-d-24).

The feeder is built in OpenDSS from our own data, as the study sees it:

- the head as a three-phase source at the study's head voltage, stiff (the regulator held its
  set point: the study fixes the head voltage in place of the regulator, D-6);
- each segment as a line on the phases it carries, with its series resistance and reactance
  (ohm, the whole segment; the rows and columns of those phases) and no shunt capacitance, as in
  LinDist3Flow; a segment without impedance (a closed switch) gets 1e-6 ohm on each phase, since
  OpenDSS needs one;
- a regulator as one single-phase transformer per phase at the segment's sending end, at its
  fixed ratio, with an impedance (1e-7 p.u.) too small to show in the check's digits;
- every load (background, data centers, an SVG's injection as negative kvar) as a constant-power
  single-phase wye load on its phase, the wye equivalents our model uses;
- each generator as a constant-power single-phase injection per phase at its dispatch, unity
  power factor.

Voltages are magnitudes in p.u. of the phase-to-neutral base. The only difference from the linear
model is then the physics: losses and the quadratic terms LinDist3Flow drops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from grid.errors import GridError
from grid.feeder.inputs import phases_at
from grid.network.three_phase import Segment, ThreePhaseFeeder

# Iterations OpenDSS may take before the flow is called diverged, and its tolerance (p.u.).
MAX_ITERATIONS = 100
TOLERANCE_PU = 1e-9
# A source this stiff (MVA of short circuit) has no drop worth a digit of the check.
_SOURCE_MVA = 1e9
# A closed switch's resistance (ohm) and a regulator's rating and impedance (% on it): too small
# to move a voltage in the check's digits, large enough for OpenDSS to factor.
_SWITCH_OHM = 1e-6
_REGULATOR_KVA = 1e5
_REGULATOR_PERCENT = 1e-5


@dataclass(frozen=True, eq=False)
class AcFlow:
    """The AC solution: per bus, per phase, the voltage magnitude (p.u.); the losses (kW, all
    phases); the iterations OpenDSS took; per segment (from, to), per phase, the current's
    magnitude at its sending end (A; NaN on a phase it does not carry)."""

    voltage_pu: dict[int, np.ndarray] = field(repr=False)
    losses_kw: float
    iterations: int
    current_a: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)


def opendss_flow(feeder: ThreePhaseFeeder, head_voltage_pu: float, *, extra_kw: Mapping[int, np.ndarray] | None = None,
                 extra_kvar: Mapping[int, np.ndarray] | None = None, svg_kvar: Mapping[int, np.ndarray] | None = None,
                 generator_kw: Mapping[int, np.ndarray] | None = None) -> AcFlow:
    """Solve the feeder with its loads (``feeder.load_kw``/``load_kvar``) plus ``extra_kw`` and
    ``extra_kvar``, less ``svg_kvar`` injected, and ``generator_kw`` injected, all per bus and phase
    (kW, kvar); GridError, naming the iterations, when it does not converge."""
    import opendssdirect as dss

    net_kw = {bus: feeder.load_kw[bus] + phases_at(extra_kw, bus) for bus in feeder.buses}
    net_kvar = {bus: feeder.load_kvar[bus] + phases_at(extra_kvar, bus) - phases_at(svg_kvar, bus)
                for bus in feeder.buses}
    kv_ln = float(feeder.base_kv_ll / np.sqrt(3.0))
    command = dss.Text.Command
    command("clear")
    command(f"new circuit.{feeder.name} basekv={feeder.base_kv_ll} pu={head_voltage_pu!r} phases=3 "
            f"bus1={feeder.head_bus} MVAsc3={_SOURCE_MVA:g} MVAsc1={_SOURCE_MVA:g}")
    for s in feeder.segments:
        _add_segment(command, s, kv_ln)
    for bus in feeder.buses:
        for k in feeder.bus_phases[bus]:
            if net_kw[bus][k] or net_kvar[bus][k]:
                command(f"new load.l{bus}_{k + 1} bus1={bus}.{k + 1} phases=1 conn=wye kv={kv_ln!r} model=1 "
                        f"kw={float(net_kw[bus][k])!r} kvar={float(net_kvar[bus][k])!r} vminpu=0.01 vmaxpu=2")
            injected = float(phases_at(generator_kw, bus)[k])
            if injected:
                command(f"new generator.g{bus}_{k + 1} bus1={bus}.{k + 1} phases=1 kv={kv_ln!r} model=1 "
                        f"kw={injected!r} kvar=0 vminpu=0.01 vmaxpu=2")
    command(f"set voltagebases=[{feeder.base_kv_ll}]")
    command("calcvoltagebases")
    command(f"set maxiterations={MAX_ITERATIONS} tolerance={TOLERANCE_PU!r}")
    command("solve mode=snap")
    if not dss.Solution.Converged():
        raise GridError(f"OpenDSS: the AC power flow of {feeder.name} did not converge in {dss.Solution.Iterations()} "
                        f"iterations (tolerance {TOLERANCE_PU:g} p.u.); the load may be beyond what the feeder "
                        "can carry")
    voltage = {}
    for bus in feeder.buses:
        dss.Circuit.SetActiveBus(str(bus))
        nodes = list(dss.Bus.Nodes())
        magnitudes = dss.Bus.puVmagAngle()[0::2]
        voltage[bus] = np.array([magnitudes[nodes.index(k + 1)] if k + 1 in nodes else np.nan for k in range(3)])
    return AcFlow(voltage, float(dss.Circuit.Losses()[0]) / 1e3, int(dss.Solution.Iterations()), _currents(feeder))


def _currents(feeder: ThreePhaseFeeder) -> dict[tuple[int, int], np.ndarray]:
    """Each segment's current per phase at its sending end (A), read from its OpenDSS line."""
    import opendssdirect as dss

    currents = {}
    for s in feeder.segments:
        dss.Circuit.SetActiveElement(f"line.s{s.from_bus}_{s.to_bus}")
        magnitudes = dss.CktElement.CurrentsMagAng()[0::2]   # terminal 1's conductors first
        amps = np.full(3, np.nan)
        for n, k in enumerate(s.phases):
            amps[k] = magnitudes[n]
        currents[s.from_bus, s.to_bus] = amps
    return currents


def _add_segment(command: Callable[[str], object], s: Segment, kv_ln: float) -> None:
    """A segment as OpenDSS lines (and its regulator's transformers, if it has one)."""
    present = list(s.phases)
    nodes = "." + ".".join(str(k + 1) for k in present)
    sending = str(s.from_bus)
    if s.tap != (1.0, 1.0, 1.0):
        sending = f"{s.from_bus}r{s.to_bus}"
        for k in present:
            command(f"new transformer.r{s.from_bus}_{s.to_bus}_{k + 1} phases=1 windings=2 "
                    f"buses=[{s.from_bus}.{k + 1} {sending}.{k + 1}] conns=[wye wye] kvs=[{kv_ln!r} {kv_ln!r}] "
                    f"kvas=[{_REGULATOR_KVA:g} {_REGULATOR_KVA:g}] xhl={_REGULATOR_PERCENT:g} "
                    f"%loadloss={_REGULATOR_PERCENT:g} %noloadloss=0 %imag=0 ppm=0 taps=[1 {s.tap[k]!r}]")
    r, x = s.r_ohm[np.ix_(present, present)], s.x_ohm[np.ix_(present, present)]
    if not r.any() and not x.any():
        r = np.eye(len(present)) * _SWITCH_OHM
    command(f"new line.s{s.from_bus}_{s.to_bus} bus1={sending}{nodes} bus2={s.to_bus}{nodes} phases={len(present)} "
            f"length=1 units=none rmatrix={_lower(r)} xmatrix={_lower(x)} cmatrix={_lower(np.zeros_like(r))}")


def _lower(matrix: np.ndarray) -> str:
    """A symmetric square matrix as OpenDSS reads it: its lower triangle, rows split by |."""
    n = len(matrix)
    return "[" + " | ".join(" ".join(repr(float(matrix[i, j])) for j in range(i + 1)) for i in range(n)) + "]"
