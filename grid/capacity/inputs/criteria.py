"""Security criteria: what the capacity models must hold against, as pieces chosen by name.

A capacity is firm (or flexible at a risk level) *against* three sets, each of which shapes the
rows of the same capacity LP (docs/models/capacity.md#security-criteria):

- the **background set** of firm capacity: the loads already on the network. ``"box"`` is the
  paper's, every load anywhere in its range [lower, upper] at once; ``"budgeted"`` lets at most
  ``budget`` loads leave the middle of their range at once (Bertsimas and Sim); ``"peak"`` is one
  state, every load at the top of its range (the forecast peak: the case's loads when the default
  spread varies them below it). Flexible tiers read the scenarios themselves (their CVaR);
- the **draw set**: what the new data centers themselves may withdraw. ``"full"`` is the paper's
  model, every product sold and drawn in full (x = c). ``"partial"`` holds for whatever sells and
  however much of it is used: each product's withdrawal anywhere in [0, c_i], independently. The
  worst case of a limit's data-center term a . x over that box is a+ . c (the positive part of
  each coefficient), so a withdrawal that relieves a limit (counterflow) is never counted on;
- the **outage set**: the network states the limits must hold in (``"n-0"``, the intact network).

``BACKGROUND_SETS``, ``DRAW_SETS`` and ``OUTAGE_SETS`` are the registries; ``SecurityCriteria`` is one choice of each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from grid.capacity.matrices.csr_rows import csr_entries_where
from grid.errors import GridError

if TYPE_CHECKING:
    from grid.load.scenarios import Scenarios

# What firm capacity holds against, in one line each.
BACKGROUND_SETS = {
    "box": "every load anywhere in its range at once, the worst corner (the paper's)",
    "budgeted": "at most `budget` loads away from the middle of their range at once (Bertsimas and Sim)",
    "peak": "the forecast peak: every load at the top of its range, one state",
}
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
# of the factorisation (grid/capacity/matrices/shift_factors.py zeroes the same), not a sign to act on.
COEFFICIENT_ZERO = 1e-12


@dataclass(frozen=True)
class SecurityCriteria:
    """One choice from each registry above."""

    draw: str = "partial"
    outages: str = "n-0"
    background: str = "box"
    # The budgeted box: how many loads may leave the middle of their range at once (Gamma).
    budget: float | None = None
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
        if self.background not in BACKGROUND_SETS:
            raise GridError(f"background {self.background!r} is not a background set; choose one of "
                            f"{', '.join(BACKGROUND_SETS)}")
        if (self.background == "budgeted") != (self.budget is not None):
            raise GridError("background 'budgeted' needs a budget (how many loads at their bounds at once), and only "
                            f"it takes one; got background {self.background!r} with budget {self.budget!r}")
        if self.budget is not None and not (isinstance(self.budget, (int, float)) and 0 <= self.budget <= 1e6):
            raise GridError(f"budget must be a number of loads in [0, 1e6], got {self.budget!r}")
        if not 0.5 <= self.emergency_factor <= 3.0:
            raise GridError(f"emergency_factor {self.emergency_factor!r} must lie in [0.5, 3] (x the normal rating)")


    def firm_box(self, scenarios: Scenarios) -> FirmBox:
        """The background set of firm capacity, on these scenarios' ranges."""
        if self.background == "peak":
            return FirmBox(scenarios.upper_mw, scenarios.upper_mw, None, "forecast peak")
        name = "worst-case" if self.budget is None else f"worst-case (budget {self.budget:g})"
        return FirmBox(scenarios.lower_mw, scenarios.upper_mw, self.budget, name)


@dataclass(frozen=True, eq=False)
class FirmBox:
    """The background states firm capacity holds against: each bus's net withdrawal in
    [lower, upper] (MW, bus order), at most ``budget`` of them away from the middle at once
    (None: all). The peak is the box with lower = upper. ``statistic`` names it in reports."""

    lower: np.ndarray
    upper: np.ndarray
    budget: float | None
    statistic: str

    def worst(self, h: np.ndarray) -> np.ndarray:
        """max of h_r . p per row over the set (C-2, and its budgeted form)."""
        return budgeted_worst(h, self.lower, self.upper, self.budget)

    def extremes(self, h: np.ndarray, offset_mw: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Per row of shift factors ``h`` whose flow is h_r . p + offset_r: the largest flow and the
        largest reverse flow over the set, (2a)/(2b)."""
        # (-h) . centre is -(h . centre) exactly (negation is exact), so one product serves both.
        along, spread = box_terms(np.atleast_2d(h), self.lower, self.upper, self.budget)
        return _added(along, spread) + offset_mw, _added(-along, spread) - offset_mw

    @property
    def is_point(self) -> bool:
        """Whether the set is one state (lower = upper: the forecast peak), so that a flow's
        extremes are its value there and -value, linear in the shift factors."""
        return not np.any(self.upper != self.lower)

    @property
    def own_share(self) -> float:
        """How far a bus's own load may go from the middle of its range toward the top (1: all the
        way; a budget below 1 lets it go that share of the way): its withdrawal limit's worst case."""
        return 1.0 if self.budget is None else min(self.budget, 1.0)


def scenario_box(scenarios: Scenarios) -> FirmBox:
    """Every load anywhere in its range: the box of (C-2), whose worst case bounds every CVaR."""
    return FirmBox(scenarios.lower_mw, scenarios.upper_mw, None, "worst-case")


def budgeted_worst(h: np.ndarray, lower: np.ndarray, upper: np.ndarray, budget: float | None) -> np.ndarray:
    """max of h_r . p per row over the load box, or over the budgeted box when ``budget`` is set.

    The box [lower, upper] is centre +- half. (2a): its worst case is h . centre + |h| . half,
    every load at the bound that matches the sign of its shift factor. With a budget Gamma
    (Bertsimas and Sim), at most Gamma loads may leave their centre (fractionally), so the worst
    case adds only the Gamma largest terms |h_j| half_j.
    """
    along, spread = box_terms(np.atleast_2d(h), lower, upper, budget)
    return _added(along, spread)


def box_terms(h: np.ndarray, lower: np.ndarray, upper: np.ndarray,
              budget: float | None) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The terms of budgeted_worst per row, added in this order: h . centre, then what the spread
    adds. The spread terms depend on |h| only, so the worst flow and the worst reverse flow share
    them; at a point (lower = upper: the forecast peak) they are zero and are not computed."""
    centre, half = (upper + lower) / 2.0, (upper - lower) / 2.0
    along = h @ centre
    if not half.any():
        return along, (np.zeros(h.shape[0]),)
    spread = np.abs(h) * half
    if budget is None or budget >= h.shape[1]:
        return along, (spread.sum(axis=1),)
    whole = int(math.floor(budget))
    # The whole + 1 largest terms, in descending order: the first ``whole`` count in full, the
    # next one by the fraction of the budget left.
    top = -np.sort(-np.partition(spread, h.shape[1] - whole - 1, axis=1)[:, h.shape[1] - whole - 1:], axis=1)
    return along, (top[:, :whole].sum(axis=1), (budget - whole) * top[:, whole])


def _added(first: np.ndarray, terms: tuple[np.ndarray, ...]) -> np.ndarray:
    for term in terms:
        first = first + term
    return first


def positive_part(coefficients: sp.csr_matrix) -> sp.csr_matrix:
    """a+ row by row: the data-center term's worst case over the partial draw set is a+ . c (C-19)."""
    if coefficients.has_canonical_format:   # the positive stored entries, read off in one pass
        return csr_entries_where(coefficients, coefficients.data > 0, values=True)
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
