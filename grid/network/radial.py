"""A balanced radial feeder with its impedances, and DistFlow on it: docs/models/plan.md#fcm-feeder.

`Network` (grid/network/network.py) keeps what the capacity study needs, reactances for the
shift factors; a feeder's voltages need resistances and reactive loads too. This module reads
them for the built-in feeders that state them (ieee33bw, case69), and computes on them:

* the linear DistFlow of Baran and Wu, lossless (#eq-f-ldf): squared voltages
  w = w_0 - 2 (R p + X q), line flows P = B p, where R, X hold the resistance and reactance that
  two buses' paths from the head share and B marks the buses below each line;
* the full DistFlow with losses, by backward/forward sweep (#eq-f-distflow): the AC power flow of a
  radial feeder without shunts, used for the loss allowance of the linear rows and to check them.

Everything is per unit on 1 MVA and the feeder's kV, so p and q are MW and Mvar.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from grid.errors import GridError
from grid.network.csv_case import CsvRow, CsvTable

# Baran and Wu's feeder (1989) and Das's 69-bus feeder are both 12.66 kV.
IEEE33BW_KV = 12.66
# The sweep stops when no squared voltage moves by more than this (p.u.), or fails after so many passes.
SWEEP_TOLERANCE = 1e-12
SWEEP_PASSES = 200


@dataclass(frozen=True)
class RadialFeeder:
    """Buses in breadth-first order from the head (position 0); line k feeds bus k + 1 from its parent."""

    name: str
    buses: tuple[int, ...]  # bus numbers
    parent: np.ndarray  # (n,) position of each bus's parent; -1 at the head
    r_pu: np.ndarray  # (n,) resistance of the line into each bus (0 at the head)
    x_pu: np.ndarray  # (n,) reactance
    p_mw: np.ndarray  # (n,) the case's load
    q_mvar: np.ndarray  # (n,)
    base_kv: float
    _position: dict[int, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._position.update({b: k for k, b in enumerate(self.buses)})

    @property
    def size(self) -> int:
        return len(self.buses)

    def position(self, bus: int) -> int:
        return self._position[bus]

    def line_names(self) -> list[str]:
        """Line k (into bus k + 1), named "from-to" as grid.network names them."""
        return [f"{self.buses[self.parent[k]]}-{self.buses[k]}" for k in range(1, self.size)]

    def leaves(self) -> list[int]:
        """Positions of the buses that feed no other."""
        fed = set(int(p) for p in self.parent[1:])
        return [k for k in range(1, self.size) if k not in fed]

    def below(self) -> np.ndarray:
        """B (lines x buses): 1 where the bus lies below the line, i.e. the line is on its path from the head."""
        n = self.size
        path = np.zeros((n - 1, n))
        for b in range(1, n):
            k = b
            while k > 0:
                path[k - 1, b] = 1.0
                k = int(self.parent[k])
        return path

    def shared(self) -> tuple[np.ndarray, np.ndarray]:
        """R, X (buses x buses): the resistance and reactance two buses' paths from the head share."""
        path = self.below()
        return path.T @ (self.r_pu[1:, None] * path), path.T @ (self.x_pu[1:, None] * path)


def linear_distflow(feeder: RadialFeeder, p_mw: np.ndarray, q_mvar: np.ndarray,
                    head_pu: float) -> tuple[np.ndarray, np.ndarray]:
    """Squared voltages (n,) and line flows (n - 1,) MW of the lossless linear DistFlow (#eq-f-ldf)."""
    r, x = feeder.shared()
    return head_pu ** 2 - 2.0 * (r @ p_mw + x @ q_mvar), feeder.below() @ p_mw


def distflow(feeder: RadialFeeder, p_mw: np.ndarray, q_mvar: np.ndarray, head_pu: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The full DistFlow (#eq-f-distflow) by backward/forward sweep: squared voltages (n,), and the
    active and reactive flow (n - 1,) into each line at its sending end, losses included."""
    n = feeder.size
    w = np.full(n, head_pu ** 2)
    order = range(1, n)  # breadth-first: every parent before its children
    for _ in range(SWEEP_PASSES):
        p_in, q_in = np.array(p_mw, dtype=float), np.array(q_mvar, dtype=float)
        for b in reversed(order):  # each line carries its bus's load, what leaves below, and its own loss
            loss = (p_in[b] ** 2 + q_in[b] ** 2) / w[b]
            p_in[b] += feeder.r_pu[b] * loss
            q_in[b] += feeder.x_pu[b] * loss
            p_in[feeder.parent[b]] += p_in[b]
            q_in[feeder.parent[b]] += q_in[b]
        new = np.full(n, head_pu ** 2)
        for b in order:
            a = feeder.parent[b]
            r, x = feeder.r_pu[b], feeder.x_pu[b]
            new[b] = new[a] - 2.0 * (r * p_in[b] + x * q_in[b]) + (r * r + x * x) * (p_in[b] ** 2 + q_in[b] ** 2) / new[a]
            if not new[b] > 0.0:
                raise GridError(f"feeder {feeder.name}: no power flow solution (voltage collapse past bus "
                                f"{feeder.buses[b]}); the loads are beyond what the feeder can carry")
        step = float(np.max(np.abs(new - w)))
        w = new
        if step < SWEEP_TOLERANCE:
            return w, p_in[1:], q_in[1:]
    raise GridError(f"feeder {feeder.name}: the power flow did not converge in {SWEEP_PASSES} sweeps; the loads are "
                    "near the feeder's limit of what it can carry")


def _tree(name: str, buses: list[int], edges: list[tuple[int, int, float, float]], head: int,
          load: dict[int, tuple[float, float]], base_kv: float) -> RadialFeeder:
    """Order a feeder breadth-first from ``head``; edges are (bus, bus, r p.u., x p.u.), either way round."""
    links: dict[int, list[tuple[int, float, float]]] = {b: [] for b in buses}
    for a, b, r, x in edges:
        links[a].append((b, r, x))
        links[b].append((a, r, x))
    order, parent, r_pu, x_pu = [head], [-1], [0.0], [0.0]
    seen = {head: 0}
    queue = deque([head])
    while queue:
        bus = queue.popleft()
        for other, r, x in links[bus]:
            if other in seen:
                continue
            seen[other] = len(order)
            order.append(other)
            parent.append(seen[bus])
            r_pu.append(r)
            x_pu.append(x)
            queue.append(other)
    if len(order) != len(buses) or len(edges) != len(buses) - 1:
        raise GridError(f"feeder {name}: not radial and connected ({len(buses)} buses, {len(edges)} lines)")
    p = np.array([load.get(b, (0.0, 0.0))[0] for b in order])
    q = np.array([load.get(b, (0.0, 0.0))[1] for b in order])
    return RadialFeeder(name, tuple(order), np.array(parent), np.array(r_pu), np.array(x_pu), p, q, base_kv)


def _ieee33bw() -> RadialFeeder:
    """Baran and Wu's 33-bus feeder from the bundled CSVs: ohms and kW, kvar; the tie switches open."""
    from grid.network.cases import ieee33bw_tables

    loads, branches = ieee33bw_tables()
    base_ohm = IEEE33BW_KV ** 2 / 1.0
    load = {loads.bus(r, "bus"): (_number(loads, r, "p_kw") / 1000.0, _number(loads, r, "q_kvar") / 1000.0)
            for r in loads.rows}
    edges = [(branches.bus(r, "from"), branches.bus(r, "to"), _number(branches, r, "r_ohm") / base_ohm,
              _number(branches, r, "x_ohm") / base_ohm) for r in branches.rows if branches.flag(r, "status")]
    return _tree("ieee33bw", sorted(load), edges, 1, load, IEEE33BW_KV)


def _number(table: CsvTable, row: CsvRow, column: str) -> float:
    value = table.number(row, column)
    assert value is not None  # a required column
    return value


def _case69() -> RadialFeeder:
    """MATPOWER's case69.m: its tables give ohms and kW, kvar (its own MATLAB code converts them)."""
    from grid.network.cases import case69_frames

    frames = case69_frames()
    base_kv = float(frames.bus["BASE_KV"].iloc[0])
    base_ohm = base_kv ** 2 / 1.0
    load = {int(r.BUS_I): (float(r.PD) / 1000.0, float(r.QD) / 1000.0) for r in frames.bus.itertuples()}
    edges = [(int(r.F_BUS), int(r.T_BUS), float(r.BR_R) / base_ohm, float(r.BR_X) / base_ohm)
             for r in frames.branch.itertuples() if r.BR_STATUS > 0]
    head = int(frames.bus.loc[frames.bus["BUS_TYPE"] == 3, "BUS_I"].iloc[0])
    return _tree("case69", sorted(load), edges, head, load, base_kv)


RADIAL_FEEDERS = {"ieee33bw": _ieee33bw, "case69": _case69}


def radial_feeder(name: str, field_name: str = "case") -> RadialFeeder:
    """A built-in feeder with its impedances and reactive loads."""
    if name not in RADIAL_FEEDERS:
        raise GridError(f"{field_name}: {name!r} has no resistances or reactive loads here; the feeder's limits need "
                        f"one of {', '.join(RADIAL_FEEDERS)}")
    return RADIAL_FEEDERS[name]()


def power_factor_tan(power_factor: float) -> float:
    """Mvar per MW of a load at ``power_factor`` (lagging)."""
    return math.tan(math.acos(power_factor))
