"""Each DLMP split into its energy, loss, congestion and voltage parts (docs/models/dlmp.md#eq-d-23),
from the duals of the OPF's voltage rows rather than from its balances, so that the parts adding
up to the DLMP is a check of the duals against each other.

Stationarity in w_k,psi (D-9) gives each bus and phase's voltage multiplier from the duals beta of
the LinDist3Flow rows (D-1): nu_k,psi = sum over child segments c of t_c,psi^2 beta_c - beta of
the segment feeding k (t the regulator ratio of D-26, 1 on a plain segment). It is what a binding
voltage limit is worth ($/h per p.u. of w; positive at the floor, negative at the ceiling, zero
inside the band). One more MW of load at bus j, phase phi, adds a MW of flow on phase phi of every
segment from the head to j, so the squared voltage of bus k, phase psi falls by
d_k,psi,j,phi = -scale sum over the segments s both paths share of G_s,k,psi M^P_s[psi, phi] (D-2),
where G_s,k,psi is the product of t^2 over the segments below s on the path to k: a regulator
passes on a drop above it scaled by its ratio squared. Then

    DLMP_j,phi = lambda_head,phi + 0 (loss) + sum_{s on the path to j} (eta+ - eta-)_s,phi
                 + sum_k,psi nu_k,psi d_k,psi,j,phi

LinDist3Flow is lossless, so the loss part is zero; it is reported, so that a table with it reads
the same as one from a model that has it. The congestion part is the line limits' (D-29): each
segment on the way to j whose flow on phase phi is at its bound passes on that bound's dual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from grid.feeder.lindist3flow import coupling_matrices, per_unit_scale
from grid.network.three_phase import PHASE_NAMES, Segment, ThreePhaseFeeder

# A multiplier below this ($/h per p.u. of w, or $/MWh) is a limit that does not bind.
_BINDING = 1e-7


@dataclass(frozen=True, eq=False)
class DlmpParts:
    """Per bus (not the head), per phase, $/MWh: the energy, loss, congestion and voltage parts,
    and the binding voltage limits as (bus, phase name, multiplier in $/h per p.u. of w)."""

    energy: dict[int, np.ndarray] = field(repr=False)
    loss: dict[int, np.ndarray] = field(repr=False)
    congestion: dict[int, np.ndarray] = field(repr=False)
    voltage: dict[int, np.ndarray] = field(repr=False)
    binding: tuple[tuple[int, str, float], ...] = ()
    # The binding line limits (D-29): (from bus, to bus, phase name, eta+ - eta- in $/MWh).
    binding_lines: tuple[tuple[int, int, str, float], ...] = ()

    def total(self, bus: int) -> np.ndarray:
        return self.energy[bus] + self.loss[bus] + self.congestion[bus] + self.voltage[bus]


def voltage_multipliers(feeder: ThreePhaseFeeder, row_duals: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
    """nu per bus (not the head) and phase, from the duals of each segment's voltage rows, keyed
    by the segment's far bus."""
    children: dict[int, list[tuple[int, np.ndarray]]] = {}
    for segment in feeder.segments:
        children.setdefault(segment.from_bus, []).append((segment.to_bus, np.asarray(segment.tap) ** 2))
    return {bus: sum((gain * row_duals[c] for c, gain in children.get(bus, [])), np.zeros(3)) - row_duals[bus]
            for bus in feeder.buses if bus != feeder.head_bus}


def dlmp_parts(feeder: ThreePhaseFeeder, head_price: np.ndarray, row_duals: Mapping[int, np.ndarray],
               line_duals: Mapping[tuple[int, int], np.ndarray] | None = None) -> DlmpParts:
    """The parts of every DLMP (see the module doc): ``head_price`` per phase ($/MWh, the dual of
    the head's balance), ``row_duals`` the duals of each segment's three voltage rows by its far
    bus ($/h per p.u. of w), ``line_duals`` eta+ - eta- of each limited segment by (from, to) arc
    ($/MWh per phase; none: no line limits)."""
    nu = voltage_multipliers(feeder, row_duals)
    binding = [(bus, k) for bus, values in nu.items() for k in range(3) if abs(values[k]) > _BINDING]
    parent = feeder.parent_segment()
    path = {bus: _path_gains(bus, parent, feeder.head_bus) for bus in nu}
    drop = {(s.from_bus, s.to_bus): -per_unit_scale(feeder) * coupling_matrices(s.r_ohm, s.x_ohm)[0]
            for s in feeder.segments}
    voltage = {}
    for bus in nu:
        part = np.zeros(3)
        for k, psi in binding:
            shared = sorted(path[k].keys() & path[bus].keys())   # sorted: the same sum, bit for bit, every run
            part += nu[k][psi] * sum((path[k][arc][psi] * drop[arc][psi] for arc in shared), np.zeros(3))
        voltage[bus] = part
    lines = line_duals or {}
    congestion = {bus: sum((lines[arc] for arc in sorted(path[bus]) if arc in lines), np.zeros(3)) for bus in nu}

    def present(values: dict[int, np.ndarray]) -> dict[int, np.ndarray]:  # NaN on a phase a bus lacks
        return {bus: np.where(np.isin(np.arange(3), feeder.bus_phases[bus]), v, np.nan) for bus, v in values.items()}

    return DlmpParts(present({bus: np.asarray(head_price, dtype=float).copy() for bus in nu}),
                     present({bus: np.zeros(3) for bus in nu}), present(congestion),
                     present(voltage), tuple((bus, PHASE_NAMES[k], float(nu[bus][k])) for bus, k in binding),
                     tuple((i, j, PHASE_NAMES[k], float(eta[k])) for (i, j), eta in sorted(lines.items())
                           for k in range(3) if abs(eta[k]) > _BINDING))


def _path_gains(bus: int, parent: Mapping[int, Segment], head: int) -> dict[tuple[int, int], np.ndarray]:
    """The segments from the head to ``bus``, as (from, to) arcs, each with its G per phase: the
    product of the squared regulator ratios of the segments below it on that path."""
    out, product = {}, np.ones(3)
    while bus != head:
        segment = parent[bus]
        out[segment.from_bus, segment.to_bus] = product.copy()
        product = product * np.asarray(segment.tap) ** 2
        bus = segment.from_bus
    return out
