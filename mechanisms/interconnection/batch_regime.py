"""A batch study: every large request studied together at stated dates (docs/models/interconnection.md#ic-batch).

Rules (config ``[regime]`` with ``kind = "batch"``), after the Texas regulator's 2026 "Batch Zero":

- Requests of at least ``threshold_mw`` join the next batch: batches start at ``first_cycle`` and
  then every ``every_cycles`` cycles (0: one batch only), and a batch's study takes
  ``study_cycles``. Batches may not overlap (``every_cycles`` >= ``study_cycles``).
- When a batch's study ends, each bus's headroom is allocated among the batch's requests there
  that are still pending, by ``allocation``:
  - ``"pro_rata"``: every request gets the same share of its MW, min(1, room / asked MW);
  - ``"readiness"``: in order of readiness (then arrival, then id), each gets all its MW if it
    fits in what is left, else nothing.
  A request that gets nothing is refused.
  With ``flexible_above_threshold`` the batch's loads connect as curtailable load, on the bus's
  flexible headroom, as the 2025 Texas law makes large loads curtailable in emergencies.
- Smaller requests skip the batch: each cycle, in arrival order, each connects with all its MW if
  the firm headroom left after the batch holds it, and waits otherwise.
- A connection pays ``tariff_usd_per_mw`` per MW granted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from pydantic import Field, model_validator

from mechanisms.interconnection.requests import (
    Connection,
    CycleResult,
    Headroom,
    Ledger,
    Refusal,
    Regime,
    Request,
    fits,
    grant_whole,
)
from mechanisms.settings import MAX_ROUNDS, MW, Money, Settings

ALLOCATIONS = ("pro_rata", "readiness")


class BatchRegimeRules(Settings):
    """The batch study's rule table."""

    first_cycle: int = Field(default=0, ge=0, le=MAX_ROUNDS, description="the cycle the first batch starts")
    every_cycles: int = Field(default=0, ge=0, le=MAX_ROUNDS, description="cycles between batches; 0: one batch")
    study_cycles: int = Field(default=4, ge=1, le=MAX_ROUNDS, description="cycles a batch's study takes")
    threshold_mw: MW = Field(default=75.0, ge=0, description="requests of at least this many MW are batched")
    allocation: str = Field(default="pro_rata", description="how a bus's headroom is shared: pro_rata or readiness")
    flexible_above_threshold: bool = Field(default=False, description="batched loads connect as curtailable load")
    tariff_usd_per_mw: Money = Field(default=0.0, ge=0, description="the connection charge per MW")

    @model_validator(mode="after")
    def _consistent(self) -> "BatchRegimeRules":
        if self.allocation not in ALLOCATIONS:
            raise ValueError(f"allocation: unknown rule {self.allocation!r}; choose one of {', '.join(ALLOCATIONS)}")
        if 0 < self.every_cycles < self.study_cycles:
            raise ValueError(f"every_cycles: {self.every_cycles} is shorter than a study ({self.study_cycles} "
                             f"cycles); batches would overlap; give every_cycles >= study_cycles, or 0 for one batch")
        return self


@dataclass
class BatchRegime(Regime):
    rules: BatchRegimeRules
    kind: str = "batch"
    batch_of: dict[str, int] = field(default_factory=dict)  # request -> the cycle its batch began

    @property
    def curtailable(self) -> bool:
        return self.rules.flexible_above_threshold

    def is_batch_date(self, cycle: int) -> bool:
        first, every = self.rules.first_cycle, self.rules.every_cycles
        return cycle == first if every == 0 else cycle >= first and (cycle - first) % every == 0

    def step(self, cycle: int, pending: Sequence[Request], headroom: Mapping[int, Headroom]) -> CycleResult:
        live = {r.id for r in pending}
        self.batch_of = {k: c for k, c in self.batch_of.items() if k in live}
        ledger = Ledger(headroom)
        ending = [r for r in pending if r.id in self.batch_of
                  and self.batch_of[r.id] + self.rules.study_cycles == cycle]
        connections, refusals = self._allocate(cycle, ending, ledger)
        decided = {c.request for c in connections} | {r.request for r in refusals}
        for request in pending:
            if request.id in self.batch_of or request.id in decided:
                continue
            if request.mw >= self.rules.threshold_mw:
                if self.is_batch_date(cycle):
                    self.batch_of[request.id] = cycle
                elif self.rules.every_cycles == 0 and cycle > self.rules.first_cycle:
                    refusals.append(Refusal(request.id, cycle, f"it came after the only batch (cycle "
                                                               f"{self.rules.first_cycle})"))
                    decided.add(request.id)
            elif (granted := grant_whole(ledger, request, cycle, self.rules.tariff_usd_per_mw)) is not None:
                connections.append(granted)
                decided.add(request.id)
        for key in decided:
            self.batch_of.pop(key, None)
        kept = tuple(r.id for r in pending if r.id not in decided)
        return CycleResult(cycle, tuple(connections), tuple(refusals), kept)

    def _allocate(self, cycle: int, ending: Sequence[Request],
                  ledger: Ledger) -> tuple[list[Connection], list[Refusal]]:
        """A batch's grants, bus by bus (buses in increasing order, requests as the rule orders them)."""
        flexible = self.rules.flexible_above_threshold
        connections: list[Connection] = []
        refusals: list[Refusal] = []
        for bus in sorted({r.bus for r in ending}):
            here = [r for r in ending if r.bus == bus]
            room = ledger.room(bus, flexible)
            if self.rules.allocation == "pro_rata":
                share = min(1.0, room / sum(r.mw for r in here))
                grants = [(r, r.mw * share) for r in here]
            else:
                grants = []
                for r in sorted(here, key=lambda r: (-r.readiness, r.arrival, r.id)):
                    grants.append((r, r.mw if fits(r.mw, room) else 0.0))
                    room -= grants[-1][1]
            for r, mw in grants:
                if mw <= 0.0:
                    refusals.append(Refusal(r.id, cycle, f"no headroom left at bus {bus} for the batch"))
                    continue
                ledger.take(bus, mw, flexible)
                connections.append(Connection(r.id, cycle, mw, flexible, self.rules.tariff_usd_per_mw * mw))
        return connections, refusals
