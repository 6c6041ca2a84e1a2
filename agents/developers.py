"""Data-center developers over time: who arrives, who enters, and when a waiting developer gives up
(docs/models/interconnection.md#ic-developers). Pure Python: the Mesa agent is agents/developer_agent.py.

Each cycle a Poisson number of developers arrives. Each asks for MW drawn log-uniformly at a bus
drawn uniformly among the candidates, values connecting at a uniform draw of $ per MW, and is
*speculative* with the stated share: a speculative request is one of several a developer files
for the same project, and it leaves the queue sooner. A speculative developer enters only if the
regime's deposit per MW is within its tolerance (drawn uniformly up to a ceiling): deposits
deter speculation at entry. A waiting developer withdraws in a cycle with the hazard
h(w) = min(1, h0 (1 + g w)) after w cycles of waiting, h0 by its kind. Once connected, a serious
developer starts using its capacity after a uniform number of cycles; a speculative one never does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from pydantic import Field, model_validator

from mechanisms.interconnection.requests import Request
from mechanisms.settings import MAX_COUNT, MAX_MONEY, MAX_MW, Settings


class ArrivalSettings(Settings):
    """Who arrives (config ``[dynamics.arrivals]``)."""

    rate_per_cycle: float = Field(default=5.0, ge=0, le=MAX_COUNT, description="mean arrivals per cycle (Poisson)")
    mw: list[float] = Field(default=[20.0, 300.0], min_length=2, max_length=2,
                            description="request sizes, log-uniform between the two (MW)")
    value_usd_per_mw: list[float] = Field(default=[50_000.0, 500_000.0], min_length=2, max_length=2,
                                          description="what connecting is worth, uniform ($ per MW)")
    speculative_share: float = Field(default=0.5, ge=0, le=1, description="share of speculative requests")
    deposit_tolerance_usd_per_mw: float = Field(default=20_000.0, ge=0, le=MAX_MONEY,
                                                description="the most a speculative developer puts at risk, per MW")
    build_cycles: list[int] = Field(default=[2, 8], min_length=2, max_length=2, description="cycles a serious "
                                    "developer takes from connection to using its capacity, uniform (speculative: "
                                    "never)")

    @model_validator(mode="after")
    def _ranges(self) -> "ArrivalSettings":
        for name, (low, high), ceiling in (("mw", self.mw, MAX_MW), ("value_usd_per_mw", self.value_usd_per_mw,
                                                                      MAX_MONEY)):
            if not 0 < low <= high <= ceiling:
                raise ValueError(f"{name}: need 0 < low <= high <= {ceiling:g}, got [{low:g}, {high:g}]")
        low, high = self.build_cycles
        if not 0 <= low <= high <= MAX_COUNT:
            raise ValueError(f"build_cycles: need 0 <= low <= high <= {MAX_COUNT:g}, got [{low}, {high}]")
        return self


class WithdrawalSettings(Settings):
    """When a waiting developer gives up (config ``[dynamics.withdrawal]``)."""

    serious_hazard: float = Field(default=0.02, ge=0, le=1, description="h0 of a serious request, per cycle")
    speculative_hazard: float = Field(default=0.2, ge=0, le=1, description="h0 of a speculative request, per cycle")
    growth_per_cycle: float = Field(default=0.1, ge=0, le=MAX_COUNT, description="g: how the hazard grows with waiting")


@dataclass(frozen=True)
class Developer:
    """A request and what the regime does not see: whether it is speculative, the most it would put
    at risk as a deposit ($ per MW), and the cycles it takes from connection to using its capacity
    (None: never, as a speculative request)."""

    request: Request
    speculative: bool
    deposit_tolerance_usd_per_mw: float = math.inf
    build_cycles: int | None = 0

    def enters(self, deposit_usd_per_mw: float) -> bool:
        return not self.speculative or deposit_usd_per_mw <= self.deposit_tolerance_usd_per_mw


def withdrawal_hazard(developer: Developer, waited: int, settings: WithdrawalSettings) -> float:
    """h(w) = min(1, h0 (1 + g w)), the chance that a developer who has waited ``waited`` cycles
    withdraws in the next one (docs/models/interconnection.md#eq-ic-hazard)."""
    base = settings.speculative_hazard if developer.speculative else settings.serious_hazard
    return min(1.0, base * (1.0 + settings.growth_per_cycle * waited))


def draw_developers(settings: ArrivalSettings, cycles: int, buses: Sequence[int],
                    rng: np.random.Generator) -> list[Developer]:
    """Every arrival of ``cycles`` cycles, in arrival order; ids ``d1``, ``d2``, ... The draws are
    made cycle by cycle in a fixed order, so the same seed gives the same developers."""
    if not buses:
        raise ValueError("dynamics.arrivals: no candidate buses to connect to")
    out: list[Developer] = []
    low_mw, high_mw = np.log(settings.mw[0]), np.log(settings.mw[1])
    for cycle in range(cycles):
        for _ in range(int(rng.poisson(settings.rate_per_cycle))):
            mw = float(np.exp(rng.uniform(low_mw, high_mw)))
            bus = int(buses[int(rng.integers(len(buses)))])
            value = float(rng.uniform(*settings.value_usd_per_mw))
            speculative = bool(rng.random() < settings.speculative_share)
            tolerance = float(rng.uniform(0.0, settings.deposit_tolerance_usd_per_mw))
            readiness = float(rng.uniform(0.0, 0.5) if speculative else rng.uniform(0.5, 1.0))
            build = int(rng.integers(settings.build_cycles[0], settings.build_cycles[1] + 1))
            request = Request(f"d{len(out) + 1}", bus, mw, value, cycle, readiness)
            out.append(Developer(request, speculative, tolerance if speculative else math.inf,
                                 None if speculative else build))
    return out
