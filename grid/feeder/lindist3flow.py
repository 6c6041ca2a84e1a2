"""LinDist3Flow (Arnold et al., PESGM 2016; docs/models/dlmp.md#eq-d-1) in Pyomo.

Per segment i -> j, with w the squared phase-to-neutral voltage magnitudes (p.u.) and P, Q the
per-phase flows into the segment:

    w_j = w_i + M^P P_ij + M^Q Q_ij

on each phase the segment carries (a lateral may carry one or two); a regulator at the sending end
multiplies w_i by its fixed ratio squared, per phase (docs/models/dlmp.md#eq-d-26). M^P and M^Q
hold -2 r_kk (-2 x_kk) on the diagonal and the sqrt(3) coupling terms off it (`coupling_matrices`).
The model is lossless: each phase's flow into a bus is what leaves it plus the bus's load.
`add_voltage_rows` writes these rows for the DSO's OPF (grid/feeder/opf.py, whose `power_flow` is
the OPF with nothing to dispatch); `sweep_voltages` computes the same voltages without a solver,
to check it.
"""

from __future__ import annotations

import math

import numpy as np
import pyomo.environ as pyo

from grid.network.three_phase import ThreePhaseFeeder

_SQRT3 = math.sqrt(3.0)


def coupling_matrices(r: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """M^P and M^Q (docs/models/dlmp.md#eq-d-2) from a segment's 3x3 r and x (same units as r, x)."""
    mp = np.array([
        [-2 * r[0, 0], r[0, 1] - _SQRT3 * x[0, 1], r[0, 2] + _SQRT3 * x[0, 2]],
        [r[1, 0] + _SQRT3 * x[1, 0], -2 * r[1, 1], r[1, 2] - _SQRT3 * x[1, 2]],
        [r[2, 0] - _SQRT3 * x[2, 0], r[2, 1] + _SQRT3 * x[2, 1], -2 * r[2, 2]],
    ])
    mq = np.array([
        [-2 * x[0, 0], x[0, 1] + _SQRT3 * r[0, 1], x[0, 2] - _SQRT3 * r[0, 2]],
        [x[1, 0] - _SQRT3 * r[1, 0], -2 * x[1, 1], x[1, 2] + _SQRT3 * r[1, 2]],
        [x[2, 0] + _SQRT3 * r[2, 0], x[2, 1] - _SQRT3 * r[2, 1], -2 * x[2, 2]],
    ])
    return mp, mq


def per_unit_scale(feeder: ThreePhaseFeeder) -> float:
    """p.u. of w per (ohm x MW): w = V^2 / V_base^2, and M (ohm) times P (W) is in V^2. Flows are
    in MW so that the voltage rows' coefficients stay near 0.01-1 rather than 1e-5."""
    return 1e6 / feeder.base_v_ln ** 2


def voltage_row_keys(feeder: ThreePhaseFeeder) -> list[tuple[int, int]]:
    """The voltage rows' keys, (far bus, phase), segment by segment: one per phase a segment carries."""
    return [(s.to_bus, k) for s in feeder.segments for k in s.phases]


def add_voltage_rows(m: pyo.ConcreteModel, feeder: ThreePhaseFeeder) -> None:
    """w_j = t_k^2 w_i + M^P P_ij + M^Q Q_ij (docs/models/dlmp.md#eq-d-1, #eq-d-26) for every segment
    and phase it carries, as ``m.voltage[far bus, phase]``, on ``m.w[bus, phase]`` (p.u.) and
    ``m.p``/``m.q[from, to, phase]`` (MW, Mvar). The one place these rows are written."""
    scale = per_unit_scale(feeder)
    parent = feeder.parent_segment()

    def row(_: pyo.ConcreteModel, j: int, k: int) -> object:
        segment = parent[j]
        i, phases = segment.from_bus, segment.phases
        mp, mq = coupling_matrices(segment.r_ohm, segment.x_ohm)
        sending = m.w[i, k] if segment.tap[k] == 1.0 else segment.tap[k] ** 2 * m.w[i, k]
        return m.w[j, k] == sending + scale * sum(mp[k, n] * m.p[i, j, n] + mq[k, n] * m.q[i, j, n] for n in phases)

    m.voltage = pyo.Constraint(voltage_row_keys(feeder), rule=row)


def sweep_voltages(feeder: ThreePhaseFeeder, head_voltage_pu: float = 1.0) -> dict[int, np.ndarray]:
    """The same voltages without a solver: flows are downstream load sums (lossless), then
    w is swept from the head. A second formulation to check the model against. A phase a bus
    lacks reads NaN."""
    downstream_kw = {bus: feeder.load_kw[bus].copy() for bus in feeder.buses}
    downstream_kvar = {bus: feeder.load_kvar[bus].copy() for bus in feeder.buses}
    for segment in reversed(feeder.segments):  # leaves first
        downstream_kw[segment.from_bus] += downstream_kw[segment.to_bus]
        downstream_kvar[segment.from_bus] += downstream_kvar[segment.to_bus]
    w = {feeder.head_bus: np.full(3, head_voltage_pu ** 2)}
    scale = per_unit_scale(feeder)
    for segment in feeder.segments:
        mp, mq = coupling_matrices(segment.r_ohm, segment.x_ohm)
        j, present = segment.to_bus, list(segment.phases)
        w[j] = np.full(3, np.nan)
        w[j][present] = (np.asarray(segment.tap)[present] ** 2 * w[segment.from_bus][present]
                         + scale * 1e-3 * (mp @ downstream_kw[j] + mq @ downstream_kvar[j])[present])
    return {bus: np.sqrt(value) for bus, value in w.items()}
