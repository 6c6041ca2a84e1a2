"""The corrected tiers keep the risk the linear study gave their products (docs/models/ac-check.md#eq-a-14).

Per-constraint CVaR holds each row at eps on its own, and a product is interrupted when any row
its bus touches breaks (grid/capacity/verify.py). The AC correction adds a row per limit, checked
state and iteration, so that one voltage measured at five states is five rows, each breaking in
scenarios of its own, and the union a product sees grows past what the linear study promised
(on IEEE 118, 9 of 21 flexible products beyond their eps out of sample). After each re-solve this
counts, per tier and product, the scenarios of the study's own sample in which some row the bus
touches breaks; where a product is interrupted in more of them than its linear study's product
(or than eps S allows, if more), the correction rows that break there are held at a smaller share
of eps (LinearRow.risk_share) and the study is solved again.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import scipy.sparse as sp

from grid.capacity.inputs.binomial import allowed_count
from grid.capacity.inputs.corrections import Corrections
from grid.capacity.rows.limits import EXTRA, row_background
from grid.capacity.study import (
    MIN_PRODUCT_MW,
    CapacityStudy,
    interrupted_counts,
    row_loads,
)
from grid.load.scenarios import Scenarios

# Re-solves at most per correction step, and the smallest share a row is held at (below 1/(eps S)
# the CVaR of the sample is its maximum already: the row holds in every scenario).
ROUNDS = 6
MIN_SHARE = 1e-3


def tier_interruptions(study: CapacityStudy, scenarios: Scenarios, h: np.ndarray) -> tuple[list[np.ndarray], list[sp.csr_matrix], np.ndarray]:
    """Per tier: in how many of the study's scenarios each candidate is interrupted (some live
    row its bus touches breaks at the tier's loads), which rows break in which scenario, and the
    rows looked at (those some candidate with capacity touches). ``h`` is the shift-factor matrix
    (lines x buses)."""
    limits, candidates, flows = study.limits, study.candidates, study.flows
    selling = study.tiers[-1].vector(candidates) > 0 if study.tiers else np.zeros(len(candidates), dtype=bool)
    rows = np.flatnonzero(limits.affected & (limits.touch[:, np.flatnonzero(selling)].getnnz(axis=1) > 0))

    def line_flows(wanted: np.ndarray, p: np.ndarray) -> np.ndarray:
        return h[wanted] @ p.T + flows.offset_mw[wanted][:, None]

    background = row_background(limits, scenarios.samples_mw, rows, line_flows)
    tolerance = 1e-7 * np.maximum(1.0, np.abs(limits.limit_mw[rows]))
    counts, broken = [], []
    for tier in study.tiers:
        load = row_loads(flows, limits, candidates, tier.vector(candidates), tier.draw)[rows]
        excess = (load[:, None] + background - limits.limit_mw[rows, None]) > tolerance[:, None]
        excess &= ~tier.blocked_rows[rows, None]
        broken.append(sp.csr_matrix(excess))
        counts.append(interrupted_counts(limits.touch[rows], broken[-1]))
    return counts, broken, rows


def offending_rows(study: CapacityStudy, scenarios: Scenarios, h: np.ndarray,
                   linear: list[np.ndarray]) -> dict[int, float]:
    """Correction rows (positions among the extra rows) to hold at a smaller share, with the
    factor: those that break where a product is interrupted more often than ``linear`` (the
    linear study's counts per tier and candidate) and allowed_count(eps, S) allow."""
    limits, candidates = study.limits, study.candidates
    if EXTRA not in limits.kinds:
        return {}
    counts, broken, rows = tier_interruptions(study, scenarios, h)
    extra = np.isin(rows, limits.extra_rows)
    found: dict[int, float] = {}
    floors = study.firm.vector(candidates)
    for tier, count, linear_count, breaks in zip(study.tiers, counts, linear, broken):
        values = tier.vector(candidates)
        allowed = np.maximum(allowed_count(tier.risk, scenarios.count), linear_count)
        over = np.flatnonzero((values - floors >= MIN_PRODUCT_MW) & (count > allowed))
        floors = values
        at_fault = extra & (np.diff(breaks.indptr) > 0)
        for k in over:
            touched = at_fault & (limits.touch[rows, k].toarray().ravel())
            factor = float(np.clip(0.9 * max(allowed[k], 1) / count[k], 0.25, 0.5))
            for r in limits.extra_position(rows[touched]):
                found[int(r)] = min(found.get(int(r), 1.0), factor)
    return found


def hold_products(study: CapacityStudy, scenarios: Scenarios, h: np.ndarray, linear: list[np.ndarray],
                  corrections: Corrections, solve: Callable[[Corrections], CapacityStudy],
                  progress: Callable[[str], None] = lambda _: None) -> tuple[CapacityStudy, Corrections]:
    """The study solved again with smaller shares for the rows offending_rows names, until none
    is named or after ROUNDS re-solves."""
    for _ in range(ROUNDS):
        shrink = offending_rows(study, scenarios, h, linear)
        if not shrink:
            break
        progress(f"AC correction: {len(shrink)} row(s) held at a smaller share of eps (products beyond the "
                 "linear study's risk)")
        rows = tuple(dataclasses.replace(row, risk_share=max(row.risk_share * shrink[r], MIN_SHARE))
                     if r in shrink else row for r, row in enumerate(corrections.rows))
        corrections = Corrections(corrections.derating_mw, rows)
        study = solve(corrections)
    return study, corrections
