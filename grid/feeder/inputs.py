"""What a feeder study is given, without Pyomo: the distributed generators, the OPF's operating
point and the names of the bilevel problem's linearizations. The config (sim/config/price.py)
reads them, so a run that never prices a feeder never imports the formulations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from grid.network.three_phase import Segment, ThreePhaseFeeder

# How the payment's price x decision terms become linear (docs/models/dlmp.md#dlmp-4).
LINEARIZATIONS = ("mccormick", "strong-duality")


@dataclass(frozen=True)
class DistributedGenerator:
    name: str
    bus: int
    max_kw_per_phase: float
    cost_per_mwh: float  # b_g
    quadratic_cost: float = 0.0  # a_g, $/h per kW^2 (needs a QP: HiGHS)


@dataclass(frozen=True)
class OpfSettings:
    substation_price_per_mwh: float = 45.0  # c0
    head_voltage_pu: float = 1.03
    v_min_pu: float = 0.95
    v_max_pu: float = 1.05
    # The AC correction's raised floors (docs/models/dlmp.md#eq-d-25): (bus, phase, how much the
    # floor of squared voltage is raised, p.u.), none by default.
    floor_raise: tuple[tuple[int, int, float], ...] = ()
    # Hold each rated segment's active flow per phase within its rating (docs/models/dlmp.md#eq-d-29).
    line_limits: bool = False
    # The AC correction's cuts of those bounds (docs/models/dlmp.md#eq-d-30): (from bus, to bus,
    # phase, kW below the rating's bound), none by default.
    line_cut: tuple[tuple[int, int, int, float], ...] = ()
    # kW every line bound is widened by: a bilevel MILP's decision may use its rows' round-off.
    line_slack_kw: float = 0.0


def rated_kw(feeder: ThreePhaseFeeder, segment: Segment, v_min_pu: float) -> float:
    """D-29 before any cut: the active power per phase (kW) that carries the segment's ampacity at
    the band's lowest voltage."""
    return v_min_pu * feeder.base_v_ln * segment.ampacity_a / 1e3


def line_bounds_kw(feeder: ThreePhaseFeeder, settings: OpfSettings) -> dict[tuple[int, int, int], float]:
    """D-29: the most active power (kW) each rated segment may carry on each of its phases, either
    way: the ampacity at the band's lowest voltage, less the AC correction's cut, never below 0.
    Empty without ``settings.line_limits``."""
    if not settings.line_limits:
        return {}
    cut = {(i, j, k): kw for i, j, k, kw in settings.line_cut}
    return {(s.from_bus, s.to_bus, k): max(0.0, rated_kw(feeder, s, settings.v_min_pu)
                                           - cut.get((s.from_bus, s.to_bus, k), 0.0)) + settings.line_slack_kw
            for s in feeder.segments if s.ampacity_a is not None for k in s.phases}


def phases_at(table: Mapping[int, np.ndarray] | None, bus: int) -> np.ndarray:
    """A by-bus table's three phases at ``bus`` (kW or kvar), zeros where the table has none: how
    the OPF and the AC check read extra loads, SVG output and generation."""
    return np.asarray((table or {}).get(bus, np.zeros(3)), dtype=float)


def node_values(table: Mapping[int, np.ndarray]) -> list[tuple[int, int, float]]:
    """Every (bus, phase, value) of a by-bus table of results (voltages, prices), without the
    phases a bus lacks, which read NaN: what minima, maxima and tables run over."""
    return [(bus, k, float(v[k])) for bus, v in table.items() for k in range(3) if not np.isnan(v[k])]
