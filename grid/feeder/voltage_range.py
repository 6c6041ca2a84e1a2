"""Each node's squared-voltage range over a box of decided injections (docs/models/dlmp.md#eq-d-27):
the data's own bound on how far a voltage can move, which the bilevel problem's big-M rows use.

LinDist3Flow is linear in the injections: a segment's flow is the load below it (lossless), and
each squared voltage is the head's, times the regulators' ratios squared on the way, plus the
segments' M^P P + M^Q Q terms (grid/feeder/lindist3flow.py). So

    w_j,phi = w0_j,phi + sum_c s_j,phi,c d_c

with d the decided injections (a site's kW and kvar per phase, a generator's kW, each in an
interval) and w0 the voltage at the fixed background loads with every d at zero. Over the box of
the d's the extremes are exact: each d at the end of its interval that the sign of s picks. The
OPF's other rows (its voltage band, the aggregator's totals) only shrink the set, so the range
is a valid bound at every point either level can reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from grid.errors import GridError
from grid.feeder.lindist3flow import coupling_matrices, per_unit_scale
from grid.network.three_phase import ThreePhaseFeeder


@dataclass(frozen=True)
class Injection:
    """One decided quantity at ``bus``, anywhere in [low, high]: each unit of it draws ``kw``
    and ``kvar`` per phase (a load positive, a generator's output negative). A site's load is one
    (its kW, a third on each phase), each phase of its SVG another, each phase of a generator
    another: quantities the decision-maker sets independently of each other."""

    bus: int
    low: float
    high: float
    kw: tuple[float, float, float]
    kvar: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise GridError(f"injection at bus {self.bus}: need low <= high, got {self.low:g} and {self.high:g}")


@dataclass(frozen=True)
class Sensitivity:
    """w = w0 + S d (D-27) for every node below the head, in ``nodes`` order: (bus, phase)."""

    nodes: tuple[tuple[int, int], ...]
    w0: np.ndarray   # p.u.^2, by node
    s: np.ndarray    # p.u.^2 per unit of each injection, nodes x injections
    low: np.ndarray  # the injections' ranges
    high: np.ndarray


Below = tuple[dict[int, np.ndarray], dict[int, np.ndarray], dict[int, np.ndarray], dict[int, np.ndarray]]


def _below(feeder: ThreePhaseFeeder, injections: Sequence[Injection]) -> Below:
    """The load below each bus per phase (kW, kvar): the fixed background's, and its sensitivity to
    each injection (3 x injections); lossless, so a segment carries what is below its far bus."""
    for injection in injections:
        if injection.bus not in feeder.bus_phases:
            raise GridError(f"injection: bus {injection.bus} is not on {feeder.name}")
    columns = len(injections)
    p0 = {bus: feeder.load_kw[bus].astype(float) for bus in feeder.buses}
    q0 = {bus: feeder.load_kvar[bus].astype(float) for bus in feeder.buses}
    p_of = {bus: np.zeros((3, columns)) for bus in feeder.buses}
    q_of = {bus: np.zeros((3, columns)) for bus in feeder.buses}
    for c, injection in enumerate(injections):
        p_of[injection.bus][:, c] += injection.kw
        q_of[injection.bus][:, c] += injection.kvar
    for segment in reversed(feeder.segments):   # leaves first
        i, j = segment.from_bus, segment.to_bus
        p0[i] = p0[i] + p0[j]
        q0[i] = q0[i] + q0[j]
        p_of[i] = p_of[i] + p_of[j]
        q_of[i] = q_of[i] + q_of[j]
    return p0, q0, p_of, q_of


def flow_ranges(feeder: ThreePhaseFeeder,
                injections: Sequence[Injection]) -> dict[tuple[int, int, int], tuple[float, float]]:
    """The least and greatest active flow (kW) of every segment and phase it carries, by (from,
    to, phase), over any values of the injections in their ranges: exact over the box, as D-27's
    voltages, since a flow is the load below (what the line limits of D-29 use)."""
    p0, _, p_of, _ = _below(feeder, injections)
    low = np.array([d.low for d in injections], dtype=float)
    high = np.array([d.high for d in injections], dtype=float)
    out = {}
    for segment in feeder.segments:
        j = segment.to_bus
        least = p0[j] + np.minimum(p_of[j] * low, p_of[j] * high).sum(axis=1)
        most = p0[j] + np.maximum(p_of[j] * low, p_of[j] * high).sum(axis=1)
        for k in segment.phases:
            out[segment.from_bus, j, k] = (float(least[k]), float(most[k]))
    return out


def sensitivity(feeder: ThreePhaseFeeder, head_voltage_pu: float, injections: Sequence[Injection]) -> Sensitivity:
    """The squared voltages as an affine function of the injections: the flows are the load below
    each segment, then w is swept from the head (as grid/feeder/lindist3flow.py ``sweep_voltages``)."""
    columns = len(injections)
    p0, q0, p_of, q_of = _below(feeder, injections)
    scale = per_unit_scale(feeder) * 1e-3   # p.u. of w per (ohm x kW)
    w0 = {feeder.head_bus: np.full(3, head_voltage_pu ** 2)}
    w_of = {feeder.head_bus: np.zeros((3, columns))}
    nodes, constant, rows = [], [], []
    for segment in feeder.segments:   # head first
        i, j = segment.from_bus, segment.to_bus
        mp, mq = coupling_matrices(segment.r_ohm, segment.x_ohm)
        gain = np.asarray(segment.tap, dtype=float) ** 2
        w0[j] = gain * w0[i] + scale * (mp @ p0[j] + mq @ q0[j])
        w_of[j] = gain[:, None] * w_of[i] + scale * (mp @ p_of[j] + mq @ q_of[j])
        for k in segment.phases:
            nodes.append((j, k))
            constant.append(w0[j][k])
            rows.append(w_of[j][k])
    return Sensitivity(tuple(nodes), np.array(constant), np.array(rows).reshape(len(nodes), columns),
                       np.array([d.low for d in injections], dtype=float),
                       np.array([d.high for d in injections], dtype=float))


def box_ranges(feeder: ThreePhaseFeeder, head_voltage_pu: float,
               injections: Sequence[Injection]) -> dict[tuple[int, int], tuple[float, float]]:
    """The least and greatest squared voltage (p.u.^2) of every node below the head, by (bus,
    phase), over any values of the injections in their ranges (D-27, the box's range)."""
    sens = sensitivity(feeder, head_voltage_pu, injections)
    least = sens.w0 + np.minimum(sens.s * sens.low, sens.s * sens.high).sum(axis=1)
    most = sens.w0 + np.maximum(sens.s * sens.low, sens.s * sens.high).sum(axis=1)
    return {node: (float(a), float(b)) for node, a, b in zip(sens.nodes, least, most)}
