"""Unbalanced three-phase feeders as data objects: the IEEE 37-node and 123-node test feeders.

The feeders of the DLMP study (docs/models/dlmp.md): segments with their 3x3 phase impedance (ohm),
the phases each segment carries, a regulator's fixed taps where one stands, and per-phase loads (kW,
kvar). A bus has the phases of the segment that feeds it; rows and columns of a missing phase are
zero. ``FEEDERS`` names the built-in feeders.

The IEEE 37-node feeder's data are bundled in grid/network/data/ieee37_*.csv, as
docs/reference/cases.md#ieee-37-node-feeder describes them:

- The 35 line segments with their lengths and configurations (721-724). The configuration
  matrices are in ohm per mile.
- The spot loads as the IEEE document gives them. All are delta-connected (AB, BC, CA, or
  3-phase delta).

What is left out, and why:
- The regulator (799 -> 799r). A study fixes the head voltage instead (docs/models/dlmp.md#eq-d-6:
  the regulator is not modelled).
- The in-line transformer XFM-1 to bus 775. Bus 775 has no load, so no flow crosses it.
- Shunt susceptance: LinDist3Flow neglects it.
- Load models (constant Z, I or PQ): every load is taken as constant power, as the check of
  docs/reference/cases.md#ieee-37-node-feeder does.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Iterable, NamedTuple

import numpy as np

from grid.errors import GridError
from grid.network.bundled import bundled_data

FEET_PER_MILE = 5280.0
# A delta branch's phase pair, in (from, to) phase indices.
_DELTA_BRANCHES = {"AB": (0, 1), "BC": (1, 2), "CA": (2, 0)}
_SQRT3 = math.sqrt(3.0)


PHASE_NAMES = ("a", "b", "c")


@dataclass(frozen=True, eq=False)
class Segment:
    from_bus: int
    to_bus: int
    length_ft: float
    config: str
    r_ohm: np.ndarray = field(repr=False)  # (3, 3) phase resistance of the whole segment
    x_ohm: np.ndarray = field(repr=False)  # (3, 3) phase reactance
    phases: tuple[int, ...] = (0, 1, 2)  # the phases it carries (0, 1, 2 for a, b, c)
    # A regulator at the sending end: its fixed voltage ratio per phase (docs/models/dlmp.md#eq-d-26).
    tap: tuple[float, float, float] = (1.0, 1.0, 1.0)
    # The conductor's ampacity per phase (A), from the feeder's rating table; None: unrated (a
    # switch, or a feeder without ratings).
    ampacity_a: float | None = None


@dataclass(frozen=True, eq=False)
class ThreePhaseFeeder:
    """A radial three-phase feeder: buses in breadth-first order from the head, segments oriented
    away from it, and per-phase wye-equivalent loads (kW, kvar) by bus."""

    name: str
    head_bus: int
    base_kv_ll: float
    buses: tuple[int, ...]
    segments: tuple[Segment, ...]
    load_kw: dict[int, np.ndarray] = field(repr=False)
    load_kvar: dict[int, np.ndarray] = field(repr=False)

    @property
    def base_v_ln(self) -> float:
        """Phase-to-neutral base voltage (V)."""
        return self.base_kv_ll * 1000.0 / _SQRT3

    def parent_segment(self) -> dict[int, Segment]:
        """The segment that feeds each bus (all but the head)."""
        return {s.to_bus: s for s in self.segments}

    @cached_property
    def bus_phases(self) -> dict[int, tuple[int, ...]]:
        """The phases each bus has: all three at the head, else those of the segment feeding it."""
        out = {self.head_bus: (0, 1, 2)}
        out.update({s.to_bus: s.phases for s in self.segments})
        return out

    def nodes(self) -> list[tuple[int, int]]:
        """Every (bus, phase) the feeder has, in bus order: what voltages and prices are reported on."""
        return [(bus, k) for bus in self.buses for k in self.bus_phases[bus]]

    def is_three_phase(self, bus: int) -> bool:
        return len(self.bus_phases.get(bus, ())) == 3


def delta_to_wye(connection: str, p_kw: float, q_kvar: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-phase (a, b, c) kW and kvar of a delta load, with balanced voltages
    (docs/reference/cases.md#ieee-37-node-feeder).

    A branch load S_xy draws S_xy e^(-j pi/6)/sqrt3 on phase x and S_xy e^(+j pi/6)/sqrt3 on
    phase y: P_x = (P + Q/sqrt3)/2, Q_x = (Q - P/sqrt3)/2, P_y = (P - Q/sqrt3)/2,
    Q_y = (Q + P/sqrt3)/2. A 3-phase delta load splits evenly: each phase takes a third.
    """
    p = np.zeros(3)
    q = np.zeros(3)
    if connection == "3ph-delta":
        return np.full(3, p_kw / 3.0), np.full(3, q_kvar / 3.0)
    if connection not in _DELTA_BRANCHES:
        raise GridError(f"load connection {connection!r}: use AB, BC, CA or 3ph-delta")
    x, y = _DELTA_BRANCHES[connection]
    p[x] += 0.5 * (p_kw + q_kvar / _SQRT3)
    q[x] += 0.5 * (q_kvar - p_kw / _SQRT3)
    p[y] += 0.5 * (p_kw - q_kvar / _SQRT3)
    q[y] += 0.5 * (q_kvar + p_kw / _SQRT3)
    return p, q


def _rows(name: str) -> list[dict[str, str]]:
    with bundled_data(name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def build_feeder(name: str, head: int, base_kv_ll: float, raw: Iterable[Segment],
                 loads: Iterable[tuple[int, np.ndarray, np.ndarray]]) -> ThreePhaseFeeder:
    """A feeder from its segments in any order and its loads (bus, kW and kvar per phase): buses in
    breadth-first order from ``head``, each segment after the one feeding it. GridError when the
    segments do not form one tree from the head, a segment carries a phase its sending bus lacks,
    or a load stands on a phase its bus lacks."""
    raw = list(raw)
    children: dict[int, list[Segment]] = {}
    for segment in raw:
        children.setdefault(segment.from_bus, []).append(segment)
    order, segments, queue = [head], [], [head]
    phases = {head: (0, 1, 2)}
    while queue:  # breadth-first, so every segment comes after the one feeding it
        bus = queue.pop(0)
        for segment in sorted(children.get(bus, []), key=lambda s: s.to_bus):
            if segment.to_bus in phases:
                raise GridError(f"{name}: bus {segment.to_bus} is fed twice; the segments must form a tree")
            if not set(segment.phases) <= set(phases[bus]):
                raise GridError(f"{name}: segment {bus}-{segment.to_bus} carries a phase bus {bus} lacks")
            phases[segment.to_bus] = segment.phases
            segments.append(segment)
            order.append(segment.to_bus)
            queue.append(segment.to_bus)
    if len(segments) != len(raw):
        raise GridError(f"{name}: the bundled segments do not form one tree from bus {head}")
    load_kw = {bus: np.zeros(3) for bus in order}
    load_kvar = {bus: np.zeros(3) for bus in order}
    for bus, p, q in loads:
        missing = [PHASE_NAMES[k] for k in range(3) if (p[k] or q[k]) and k not in phases.get(bus, ())]
        if missing:
            raise GridError(f"{name}: a load at bus {bus} stands on phase {missing[0]}, which the bus lacks")
        load_kw[bus] += p
        load_kvar[bus] += q
    return ThreePhaseFeeder(name, head, base_kv_ll, tuple(order), tuple(segments), load_kw, load_kvar)


def _configs(name: str) -> dict[str, dict[str, np.ndarray]]:
    """Each line configuration's r and x (ohm per mile, 3 x 3) from a bundled table."""
    configs: dict[str, dict[str, np.ndarray]] = {}
    for row in _rows(name):
        matrix = configs.setdefault(row["config"], {"r": np.zeros((3, 3)), "x": np.zeros((3, 3))})
        matrix[row["quantity"]][int(row["row"]), int(row["col"])] = float(row["ohm_per_mile"])
        if "phases" in row:
            matrix["phases"] = tuple(PHASE_NAMES.index(c) for c in row["phases"])
    return configs


def _ratings(name: str) -> dict[str, float]:
    """Each line configuration's conductor ampacity (A) from a bundled table
    (docs/reference/cases.md#line-ratings)."""
    return {row["config"]: float(row["ampacity_a"]) for row in _rows(name)}


def _segment(row: dict[str, str], config: dict[str, np.ndarray], ratings: dict[str, float],
             tap: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Segment:
    miles = float(row["length_ft"]) / FEET_PER_MILE
    return Segment(int(row["from"]), int(row["to"]), float(row["length_ft"]), row["config"], config["r"] * miles,
                   config["x"] * miles, config.get("phases", (0, 1, 2)), tap, ratings.get(row["config"]))


def load_ieee37() -> ThreePhaseFeeder:
    """The IEEE 37-node feeder (4.8 kV delta, underground), head at bus 799, from the bundled CSVs."""
    configs, ratings = _configs("ieee37_configs.csv"), _ratings("ieee37_ratings.csv")
    raw = [_segment(row, configs[row["config"]], ratings) for row in _rows("ieee37_lines.csv")]
    loads = [(int(row["bus"]), *delta_to_wye(row["connection"], float(row["P_kW"]), float(row["Q_kvar"])))
             for row in _rows("ieee37_loads.csv")]
    return build_feeder("ieee37", 799, 4.8, raw, loads)


# A step-voltage regulator moves its ratio 5/8 % per tap, 16 taps each way (+-10 %).
REGULATOR_STEP_PU = 0.00625


def phase_load(connection: str, p_kw: float, q_kvar: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-phase kW and kvar of a spot load: a wye load on one phase (a, b or c) or on three
    (3ph-wye, a third each), or a delta load (``delta_to_wye``)."""
    if connection in PHASE_NAMES:
        p, q = np.zeros(3), np.zeros(3)
        k = PHASE_NAMES.index(connection)
        p[k], q[k] = p_kw, q_kvar
        return p, q
    if connection == "3ph-wye":
        return np.full(3, p_kw / 3.0), np.full(3, q_kvar / 3.0)
    return delta_to_wye(connection, p_kw, q_kvar)


def load_ieee123() -> ThreePhaseFeeder:
    """The IEEE 123-node feeder (4.16 kV wye, overhead and underground, one-, two- and three-phase
    laterals), head at bus 150, from the bundled CSVs (docs/reference/cases.md#ieee-123-node-feeder):
    its four regulators at their stated taps, its closed switches as segments without impedance, its
    shunt capacitors as constant kvar injections."""
    configs, ratings = _configs("ieee123_configs.csv"), _ratings("ieee123_ratings.csv")
    taps: dict[tuple[int, int], list[float]] = {}
    for row in _rows("ieee123_regulators.csv"):
        ratio = taps.setdefault((int(row["from"]), int(row["to"])), [1.0, 1.0, 1.0])
        ratio[PHASE_NAMES.index(row["phase"])] = 1.0 + REGULATOR_STEP_PU * int(row["tap"])
    raw = []
    for row in _rows("ieee123_lines.csv"):
        tap = taps.pop((int(row["from"]), int(row["to"])), [1.0, 1.0, 1.0])
        raw.append(_segment(row, configs[row["config"]], ratings, (tap[0], tap[1], tap[2])))
    if taps:
        raise GridError(f"ieee123: regulator {min(taps)} stands on no segment")
    loads = [(int(row["bus"]), *phase_load(row["connection"], float(row["P_kW"]), float(row["Q_kvar"])))
             for row in _rows("ieee123_loads.csv")]
    loads += [(int(row["bus"]), np.zeros(3), -phase_load(row["phase"], 0.0, float(row["kvar"]))[1])
              for row in _rows("ieee123_capacitors.csv")]
    return build_feeder("ieee123", 150, 4.16, raw, loads)


class FeederEntry(NamedTuple):
    load: Callable[[], ThreePhaseFeeder]
    description: str
    doc: str  # where docs/reference/cases.md describes it
    one_phase: str  # what the one-phase equivalent (`dcmarket cases`, grid/network/cases.py) leaves out


# The built-in feeders by name.
FEEDERS: dict[str, FeederEntry] = {
    "ieee37": FeederEntry(load_ieee37, "the IEEE 37-node feeder: 4.8 kV, three-phase throughout",
                          "docs/reference/cases.md#ieee-37-node-feeder", "regulator and XFM-1 left out"),
    "ieee123": FeederEntry(load_ieee123, "the IEEE 123-node feeder: 4.16 kV, one-, two- and three-phase laterals, "
                           "four regulators", "docs/reference/cases.md#ieee-123-node-feeder", "regulators at ratio 1"),
}


def with_line_rating(feeder: ThreePhaseFeeder, ampacity_a: float) -> ThreePhaseFeeder:
    """The feeder with every line (not a closed switch) rated ``ampacity_a`` per phase, in place of
    its conductor's rating."""
    segments = tuple(s if s.config == "switch" else dataclasses.replace(s, ampacity_a=ampacity_a)
                     for s in feeder.segments)
    return dataclasses.replace(feeder, segments=segments)


def load_feeder(name: str) -> ThreePhaseFeeder:
    """A built-in feeder by its name in ``FEEDERS``."""
    if name not in FEEDERS:
        raise GridError(f"feeder {name!r}: use one of {', '.join(FEEDERS)}")
    return FEEDERS[name].load()


def distance_km(feeder: ThreePhaseFeeder) -> dict[int, float]:
    """Each bus's distance from the head along the feeder (km), for voltage profiles."""
    out = {feeder.head_bus: 0.0}
    for segment in feeder.segments:  # breadth-first: the parent is always known
        out[segment.to_bus] = out[segment.from_bus] + segment.length_ft * 0.0003048
    return out


def voltage_unbalance(voltage_pu: np.ndarray) -> float:
    """The unbalance index of docs/models/dlmp.md#eq-d-17 (NEMA's PVUR on magnitudes): the largest
    deviation of a phase voltage from the three phases' mean, over that mean (a fraction; 0 when balanced)."""
    v = np.asarray(voltage_pu, dtype=float)
    mean = float(v.mean())
    return float(np.max(np.abs(v - mean)) / mean)
