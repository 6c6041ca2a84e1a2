"""Corrections the capacity study takes from a model outside its linear one (docs/models/ac-check.md#corrections).

The study's rows are linear in the candidate capacities c and the background net withdrawal p.
A finer model (an AC power flow, grid/ac/correct.py) can tell it two things in the same terms:

- per line and direction, a **derating**: MW taken off the line's limit in the intact network
  (its rows after an outage keep their emergency rating);
- **extra rows** ``a . c + min(g . p + g0, cap) <= limit``: coefficients on the candidates, on
  the background of every bus (network bus order), a constant g0, a cap on what the background
  term counts (infinite: none), and a limit, in MW. (g0 lets a row measured at a state p* count
  its background from there, g . (p - p*), and keep its limit on the scale of the new load's term.)
  A row may also ask a flexible tier to hold it at a share of the tier's eps (CVaR_{share eps}):
  several rows that stand for one limit then break together in no more scenarios than one would.

The study applies them to firm capacity and to every flexible tier alike, each model with its
own statistic of the background term (worst case over the box, or CVaR), as it does for a line's
shift factors. Without corrections (or with empty ones) the table is the one it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from grid.errors import GridError


@dataclass(frozen=True, eq=False)
class LinearRow:
    """One extra row: ``candidate_coef . c + min(background_coef . p + background_offset_mw,
    background_cap_mw) <= limit_mw``."""

    name: str                     # how reports name the limit, e.g. "voltage at bus 74 (linearised)"
    candidate_coef: np.ndarray    # (candidates,) MW per MW of capacity, candidates order
    background_coef: np.ndarray   # (buses,) per MW of background net withdrawal, network bus order
    limit_mw: float
    background_cap_mw: float = math.inf
    background_offset_mw: float = 0.0
    risk_share: float = 1.0       # a tier of risk eps holds the row at CVaR_{risk_share eps}


@dataclass(frozen=True, eq=False)
class Corrections:
    """Line deratings (lines x 2: MW off the upper, then the lower limit, network line order) and extra rows."""

    derating_mw: np.ndarray
    rows: tuple[LinearRow, ...] = field(default=())

    @classmethod
    def none(cls, lines: int) -> Corrections:
        """No correction for a network of ``lines`` lines."""
        return cls(np.zeros((lines, 2)))

    @property
    def empty(self) -> bool:
        return not self.rows and not np.any(self.derating_mw)

    def check(self, lines: int, buses: int, candidates: int) -> None:
        """One-line GridError naming the field when the corrections do not fit the study."""
        derating = np.asarray(self.derating_mw, dtype=float)
        if derating.shape != (lines, 2):
            raise GridError(f"Corrections.derating_mw must be lines x 2 ({lines} x 2: upper, lower), "
                            f"got shape {derating.shape}")
        if not np.all(np.isfinite(derating)) or np.any(derating < 0):
            raise GridError("Corrections.derating_mw must be finite MW >= 0 (taken off a line's limit)")
        for row in self.rows:
            if np.shape(row.candidate_coef) != (candidates,) or np.shape(row.background_coef) != (buses,):
                raise GridError(f"Corrections row {row.name!r}: give {candidates} candidate and {buses} background "
                                f"coefficients, got {np.shape(row.candidate_coef)} and {np.shape(row.background_coef)}")
            finite = np.all(np.isfinite(row.candidate_coef)) and np.all(np.isfinite(row.background_coef))
            if not finite or not math.isfinite(row.limit_mw) or not math.isfinite(row.background_offset_mw):
                raise GridError(f"Corrections row {row.name!r}: coefficients, offset and limit must be finite")
            if math.isnan(row.background_cap_mw) or row.background_cap_mw == -math.inf:
                raise GridError(f"Corrections row {row.name!r}: background_cap_mw must be a number or inf (no cap)")
            if not 0.0 < row.risk_share <= 1.0:
                raise GridError(f"Corrections row {row.name!r}: risk_share must be in (0, 1], got {row.risk_share!r}")
