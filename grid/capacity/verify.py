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

from grid.capacity.binomial import wilson_interval
from grid.capacity.limits import LOWER, UPPER, row_background
from grid.capacity.study import (
    MIN_PRODUCT_MW,
    CapacityResult,
    CapacityStudy,
    interrupted_counts,
    row_loads,
)
from grid.load.scenarios import Scenarios

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


def verify_risk(
    study: CapacityStudy,
    sample: Sampler,
    count: int,
    *,
    product_ids: Callable[[int, int], str],
    chunk: int | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[RiskCheck]:
    """Check every product on ``count`` fresh scenarios drawn by ``sample(n)`` in chunks.

    ``product_ids(bus, model_index)`` names the product family (model 0 = firm, k = tier k).
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
    if lines.size * len(study.network.buses) * 8 <= _DENSE_H_BYTES:
        dense = np.vstack([h for _, h in flows.blocks(lines)]) if lines.size else None

        def line_flows(wanted: np.ndarray, p: np.ndarray) -> np.ndarray:
            # Every row is checked, so ``wanted`` is always all the limited lines.
            return dense @ p.T + flows.offset_mw[wanted][:, None]
    else:
        def line_flows(wanted: np.ndarray, p: np.ndarray) -> np.ndarray:
            return flows.flows(np.ascontiguousarray(p.T))[wanted] + flows.offset_mw[wanted][:, None]
    every_row = np.arange(len(limits))

    counts = [np.zeros(len(candidates), dtype=np.int64) for _ in models]
    done = 0
    while done < count:
        size = min(chunk, count - done)
        scenarios = sample(size)
        background = row_background(limits, scenarios.samples_mw, every_row, line_flows)
        for m, load in enumerate(loads):
            excess = (load[:, None] + background - limits.limit_mw[:, None]) > tolerance[:, None]
            excess &= live[m][:, None]
            counts[m] += interrupted_counts(limits.touch, sp.csr_matrix(excess))
        done += size
        progress(f"risk check: {done:,}/{count:,} fresh scenarios")

    checks: list[RiskCheck] = []
    for k, bus in enumerate(candidates.buses):
        for m, (model, size) in enumerate(zip(models, study.increments_mw(bus))):
            if size >= MIN_PRODUCT_MW:   # the products the DSO offers
                checks.append(RiskCheck(product_ids(bus, m), bus, model.risk, float(size), int(counts[m][k]), count))
    return checks
