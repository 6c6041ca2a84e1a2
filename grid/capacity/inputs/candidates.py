"""The candidate buses: where data centers ask to connect, and how much (D_i, MW).

The candidate set is the complement of N_0 in (C-1a), docs/models/capacity.md#eq-c-1a. It is
derived here once, in network bus order, and every later stage (the capacity models, the products,
the reports) takes it from here.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from grid.errors import GridError
from grid.network.network import Network


@dataclass(frozen=True, eq=False)
class Candidates:
    """Buses with a data-center request and their demand D_i > 0 (MW), in network bus order."""

    buses: tuple[int, ...]
    positions: np.ndarray        # their columns in the network's bus order
    demand_mw: np.ndarray        # D_i > 0, aligned with ``buses``

    def __len__(self) -> int:
        return len(self.buses)

    def demand(self) -> dict[int, float]:
        return {bus: float(d) for bus, d in zip(self.buses, self.demand_mw)}


def make_candidates(network: Network, demand_mw: Mapping[int, float]) -> Candidates:
    """Validate the requests against the network; the candidates are the keys of ``demand_mw``."""
    if not isinstance(network, Network):
        raise GridError(f"network must be a grid.network.network.Network, got {type(network).__name__}")
    if not demand_mw:
        raise GridError("demand_mw is empty; give D > 0 MW for at least one candidate bus")
    for bus, demand in demand_mw.items():
        network.bus_index(bus)  # GridError naming the unknown bus
        if isinstance(demand, bool) or not isinstance(demand, numbers.Real) or not (
            math.isfinite(demand) and demand > 0
        ):
            raise GridError(
                f"data-center demand at bus {bus} must be a finite number > 0 MW (got {demand!r}); "
                "leave buses without requests out of demand_mw"
            )
    buses = tuple(b for b in network.bus_numbers if b in demand_mw)
    return Candidates(
        buses=buses,
        positions=np.array([network.bus_index(b) for b in buses], dtype=int),
        demand_mw=np.array([float(demand_mw[b]) for b in buses]),
    )
