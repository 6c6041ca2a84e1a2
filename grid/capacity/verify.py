"""Out-of-sample risk check: does each product keep its promise on scenarios it has never seen?

For every model (firm, then each flexible tier) all candidate buses withdraw their capacity up to
that tier, c^eps_k, the load the tier's constraints were written for (under the partial draw set,
each limit sees its worst draw, a+ . c^eps_k). In each fresh scenario a
product at bus i of tier k is *interrupted* when some limit that bus i touches (shift factor at
least the touch factor; its own withdrawal limit; the supply limit) is violated. Per product the
check reports the realised interruption probability with a 95 % Wilson interval, against the
promised epsilon, and the expected interrupted energy per hour of operation (probability times
the product's MW times one hour: an interrupted increment is shed whole).

Per-constraint CVaR bounds each limit separately, not the union of the limits a bus touches, so
in that mode a product can exceed its epsilon; the check reports it ("exceeds") instead of
hiding it. Limits that background load alone breaks (blocked limits) are left out: the buses they
block were given no capacity there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sp

from grid.capacity.inputs.binomial import wilson_interval
from grid.capacity.inputs.criteria import FirmBox
from grid.capacity.rows.limits import (
    LOWER,
    SUPPLY,
    UPPER,
    WITHDRAWAL,
    LimitTable,
    row_background,
)
from grid.capacity.rows.outages import outage_bound
from grid.capacity.study import (
    MIN_PRODUCT_MW,
    CapacityResult,
    CapacityStudy,
    interrupted_counts,
    row_loads,
)
from grid.load.scenarios import Scenarios
from grid.memory_advice import without_hugepage_advice
from grid.threads import with_blas_threads_beside

# Scenarios per chunk: at most this many, and few enough that one (limits + buses) x chunk
# float array stays within the byte budget (a handful of such arrays live at once; on
# case_ACTIVSg10k a fixed 10,000 took 8.4 GB).
CHUNK = 10_000
_CHUNK_BYTES = 256 * 2**20
# Precompute the dense shift-factor rows when they take at most this many bytes; beyond, line
# flows come from sparse angle solves per chunk (cheaper for 10,000-bus networks).
_DENSE_H_BYTES = 400 * 2**20


@dataclass(frozen=True)
class RiskCheck:
    """One product family (a bus and a tier; all its blocks share the check)."""

    product: str
    bus: int
    promised_risk: float
    capacity_mw: float
    interruptions: int
    scenarios: int

    @property
    def realised_probability(self) -> float:
        return self.interruptions / self.scenarios

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.interruptions, self.scenarios)

    @property
    def expected_interrupted_mwh(self) -> float:
        """Per hour of operation: P(interrupted) x MW x 1 h."""
        return self.realised_probability * self.capacity_mw

    @property
    def verdict(self) -> str:
        low, _ = self.interval
        if self.realised_probability <= self.promised_risk:
            return "within"
        if low <= self.promised_risk:
            return "within sampling error"
        return "exceeds"

    def as_dict(self) -> dict[str, object]:
        low, high = self.interval
        return {
            "product": self.product,
            "bus": self.bus,
            "promised_risk": self.promised_risk,
            "capacity_mw": self.capacity_mw,
            "scenarios": self.scenarios,
            "interruptions": self.interruptions,
            "realised_probability": self.realised_probability,
            "ci95_low": low,
            "ci95_high": high,
            "expected_interrupted_mwh": self.expected_interrupted_mwh,
            "verdict": self.verdict,
        }


Sampler = Callable[[int], Scenarios]


def _inside(samples: np.ndarray, box: tuple[np.ndarray, np.ndarray]) -> bool:
    lower, upper = box
    slack = 1e-9 * np.maximum(1.0, np.abs(upper))
    return bool(np.all(samples >= lower - slack) and np.all(samples <= upper + slack))


def row_ceiling(limits: LimitTable, lines: np.ndarray, dense: np.ndarray, offset_mw: np.ndarray,
                box: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Per row, an upper bound of its background term b_r over the load box ``box`` = (lower,
    upper), which holds every scenario the check can draw (C-24): exact for a withdrawal limit (the
    bus's upper bound), the supply (the sum of them) and a line of the intact network (its worst
    corner), and a correction's row (its capped background term at its worst corner); for a
    post-outage row the bound (C-22) of its two lines' worst corners. ``dense``
    holds the shift-factor rows of ``lines``; a row on another line gets no bound (infinity)."""
    lower, upper = box
    whole = FirmBox(lower, upper, None, "worst-case")
    up, down = np.full(offset_mw.size, np.inf), np.full(offset_mw.size, np.inf)
    up[lines], down[lines] = whole.extremes(dense, offset_mw[lines])
    kinds = np.array(limits.kinds)
    ceiling = np.full(len(limits), np.inf)
    withdrawal = kinds == WITHDRAWAL
    ceiling[withdrawal] = upper[limits.bus[withdrawal]]
    ceiling[kinds == SUPPLY] = upper.sum()
    if limits.extra_background is not None:  # a correction's row: its capped background term at its worst
        ceiling[limits.extra_rows] = np.minimum(whole.worst(limits.extra_background) + limits.extra_offset_mw,
                                                limits.extra_cap_mw)
    for kind, same, other in ((UPPER, up, down), (LOWER, down, up)):
        on = np.flatnonzero(kinds == kind)
        value = same[limits.line[on]]
        if limits.has_outages:
            out = limits.outage[on]
            after = out >= 0
            value[after] = outage_bound(value[after], same[out[after]], other[out[after]], limits.lodf[on][after])
        ceiling[on] = value
    return ceiling


# The chunks' sampling threads and the flows' dense products alternate; one core stays for the
# rest of the process (measured: docs/models/capacity.md#blas-threads).
@with_blas_threads_beside(1)
@without_hugepage_advice()
def verify_risk(
    study: CapacityStudy,
    sample: Sampler,
    count: int,
    *,
    product_ids: Callable[[int, int], str],
    chunk: int | None = None,
    box: tuple[np.ndarray, np.ndarray] | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[RiskCheck]:
    """Check every product on ``count`` fresh scenarios drawn by ``sample(n)`` in chunks.

    ``product_ids(bus, model_index)`` names the product family (model 0 = firm, k = tier k).
    ``box`` (lower, upper per bus) bounds every scenario ``sample`` draws (the study's scenarios'
    box): with it, only the rows that some state of the box can break are evaluated (C-24); a chunk
    with a sample outside it is checked on every row.
    """
    limits, candidates, flows = study.limits, study.candidates, study.flows
    if chunk is None:
        chunk = max(100, min(CHUNK, _CHUNK_BYTES // (8 * (len(limits) + len(study.network.buses)))))
    models: list[CapacityResult] = [study.firm, *study.tiers]
    capacities = [m.vector(candidates) for m in models]
    # Each model's products at the draw its rows were written for: in full, or each at the level
    # that loads a limit most (a+ . c, the partial draw set's worst case).
    loads = [row_loads(flows, limits, candidates, c, m.draw) for m, c in zip(models, capacities)]
    # The rows each model leaves out: blocked by background alone (see the module doc).
    live = [~m.blocked_rows & limits.affected for m in models]
    tolerance = 1e-7 * np.maximum(1.0, np.abs(limits.limit_mw))
    kinds = np.array(limits.kinds)
    lines = np.unique(limits.line[(kinds == UPPER) | (kinds == LOWER)])
    rows = np.arange(len(limits))
    if lines.size * len(study.network.buses) * 8 <= _DENSE_H_BYTES:
        dense = np.vstack([h for _, h in flows.blocks(lines)]) if lines.size else np.zeros((0, len(study.network.buses)))

        def line_flows(wanted: np.ndarray, p: np.ndarray) -> np.ndarray:
            return dense[np.searchsorted(lines, wanted)] @ p.T + flows.offset_mw[wanted][:, None]

        if box is not None:
            # Only the rows that some state of the box can break at some model's loads (C-24).
            ceiling = row_ceiling(limits, lines, dense, flows.offset_mw, box)
            rows = np.flatnonzero(np.any([keep & (load + ceiling > limits.limit_mw + tolerance)
                                          for keep, load in zip(live, loads)], axis=0))
    else:
        def line_flows(wanted: np.ndarray, p: np.ndarray) -> np.ndarray:
            return flows.flows(np.ascontiguousarray(p.T))[wanted] + flows.offset_mw[wanted][:, None]
    every_row = np.arange(len(limits))

    counts = [np.zeros(len(candidates), dtype=np.int64) for _ in models]
    done = 0
    while done < count:
        size = min(chunk, count - done)
        scenarios = sample(size)
        checked = rows if box is None or _inside(scenarios.samples_mw, box) else every_row
        background = row_background(limits, scenarios.samples_mw, checked, line_flows)
        for m, load in enumerate(loads):
            excess = (load[checked, None] + background - limits.limit_mw[checked, None]) > tolerance[checked, None]
            excess &= live[m][checked, None]
            counts[m] += interrupted_counts(limits.touch[checked], sp.csr_matrix(excess))
        done += size
        progress(f"risk check: {done:,}/{count:,} fresh scenarios")

    checks: list[RiskCheck] = []
    for k, bus in enumerate(candidates.buses):
        for m, (model, size) in enumerate(zip(models, study.increments_mw(bus))):
            if size >= MIN_PRODUCT_MW:   # the products the DSO offers
                checks.append(RiskCheck(product_ids(bus, m), bus, model.risk, float(size), int(counts[m][k]), count))
    return checks
