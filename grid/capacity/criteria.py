"""Security criteria: what the capacity models must hold against, as pieces chosen by name.

A capacity is firm (or flexible at a risk level) *against* three sets, each of which shapes the
rows of the same capacity LP (docs/models/capacity.md#security-criteria):

- the **background set**: the loads already on the network (the box of the scenarios, or the
  budgeted box; its statistic per limit is the room ``limit - statistic(b)``);
- the **draw set**: what the new data centers themselves may withdraw. ``"full"`` is the paper's
  model, every product sold and drawn in full (x = c). ``"partial"`` holds for whatever sells and
  however much of it is used: each product's withdrawal anywhere in [0, c_i], independently. The
  worst case of a limit's data-center term a . x over that box is a+ . c (the positive part of
  each coefficient), so a withdrawal that relieves a limit (counterflow) is never counted on;
- the **outage set**: the network states the limits must hold in (``"n-0"``, the intact network).

``DRAW_SETS`` and ``OUTAGE_SETS`` are the registries; ``SecurityCriteria`` is one choice of each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from grid.errors import GridError

# What each draw set promises, in one line (reports and the docs' reference read these).
DRAW_SETS = {
    "partial": "each product drawn anywhere in [0, its capacity], independently (unsold, idle or partly used)",
    "full": "every product sold and drawn in full (the paper's model)",
}
OUTAGE_SETS = {
    "n-0": "the intact network",
    "n-1": "the intact network and after any single branch outage that keeps it connected, at emergency ratings",
}

# A data-center coefficient (a shift factor, or 1) smaller than this in magnitude is round-off
# of the factorisation (grid/capacity/shift_factors.py zeroes the same), not a sign to act on.
COEFFICIENT_ZERO = 1e-12


@dataclass(frozen=True)
class SecurityCriteria:
    """One choice from each registry above."""

    draw: str = "partial"
    outages: str = "n-0"
    # N-1: a line's rating after an outage, where the case gives no RATE_B or RATE_C, is its normal
    # rating times this (1: none of the short-term headroom that emergency ratings grant).
    emergency_factor: float = 1.0
    # N-1: the line positions whose outage is studied (a contingency list); None: every branch.
    outage_lines: tuple[int, ...] | None = None
    # Where that list came from, for the reports ("every branch", or a file's name).
    outage_source: str = "every branch"

    def __post_init__(self) -> None:
        if self.draw not in DRAW_SETS:
            raise GridError(f"draw {self.draw!r} is not a draw set; choose one of {', '.join(DRAW_SETS)}")
        if self.outages not in OUTAGE_SETS:
            raise GridError(f"outages {self.outages!r} is not an outage set; choose one of {', '.join(OUTAGE_SETS)}")
        if not 0.5 <= self.emergency_factor <= 3.0:
            raise GridError(f"emergency_factor {self.emergency_factor!r} must lie in [0.5, 3] (x the normal rating)")


def positive_part(coefficients: sp.csr_matrix) -> sp.csr_matrix:
    """a+ row by row: the data-center term's worst case over the partial draw set is a+ . c (C-19)."""
    positive = coefficients.maximum(0.0).tocsr()
    positive.eliminate_zeros()
    return positive


def relies_on_counterflow(positive: np.ndarray, negative: np.ndarray, rooms: np.ndarray, rows: np.ndarray) -> bool:
    """Whether the full-draw model, on these rows, counts on a withdrawal that relieves a limit;
    ``positive`` and ``negative`` say per row whether some coefficient has that sign.

    It does not when every row's coefficients share one sign and each row whose coefficients are
    all negative has room >= 0 without any new load: then a+ . c = a . c on the first kind, and
    the second kind holds for every c >= 0 under both draw sets, so the two models are the same
    LP (on a radial network fed from its reference bus, always; docs/models/capacity.md#draw-sets).
    """
    if rows.size == 0:
        return False
    up, down = positive[rows], negative[rows]
    if np.any(up & down):
        return True
    return bool(np.any(down & ~up & (rooms[rows] < 0)))
