"""First come, first served over time: today's interconnection queue (docs/models/interconnection.md#ic-queue).

Rules (config ``[regime]`` with ``kind = "queue"``):

- A request joins the queue at its arrival cycle. Studies start in arrival order, at most
  ``studies_at_once`` at a time (1: serial studies; 0: no limit, every request studied at once,
  as a cluster study), and take ``study_cycles`` cycles: a study started at cycle t ends at
  t + study_cycles.
- When its study ends, a request connects with all its MW if the bus's firm headroom, less what
  requests ending earlier in the queue took, still holds it; else it is refused. Studies never
  reserve headroom: a request studied later may find it gone.
- A connection pays ``tariff_usd_per_mw`` per MW. The ``deposit_usd_per_mw`` is held while the
  request waits and refunded when it connects or is refused; a developer that withdraws forfeits it
  (the developers weigh it when they decide to stay).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from pydantic import Field

from mechanisms.interconnection.requests import CycleResult, Headroom, Ledger, Refusal, Regime, Request, grant_whole
from mechanisms.settings import MAX_COUNT, MAX_ROUNDS, Money, Settings


class QueueRegimeRules(Settings):
    """The queue's rule table."""

    study_cycles: int = Field(default=4, ge=1, le=MAX_ROUNDS, description="cycles a study takes")
    studies_at_once: int = Field(default=1, ge=0, le=MAX_COUNT,
                                 description="studies that run at the same time; 0: no limit (a cluster study)")
    tariff_usd_per_mw: Money = Field(default=0.0, ge=0, description="the connection charge per MW")
    deposit_usd_per_mw: Money = Field(default=0.0, ge=0,
                                      description="held while waiting; refunded on connection or refusal")


@dataclass
class QueueRegime(Regime):
    rules: QueueRegimeRules
    kind: str = "queue"
    started: dict[str, int] = field(default_factory=dict)  # request -> the cycle its study began

    @property
    def deposit_usd_per_mw(self) -> float:
        return self.rules.deposit_usd_per_mw

    def step(self, cycle: int, pending: Sequence[Request], headroom: Mapping[int, Headroom]) -> CycleResult:
        live = {r.id for r in pending}
        self.started = {k: c for k, c in self.started.items() if k in live}  # withdrawn: their study stops
        ledger = Ledger(headroom)
        connections, refusals, done = [], [], set()
        for request in pending:
            began = self.started.get(request.id)
            if began is None or began + self.rules.study_cycles > cycle:
                continue
            done.add(request.id)
            granted = grant_whole(ledger, request, cycle, self.rules.tariff_usd_per_mw)
            if granted is not None:
                connections.append(granted)
            else:
                refusals.append(Refusal(request.id, cycle,
                                        f"no firm headroom at bus {request.bus} when its study ended"))
        for request in pending:
            if request.id in done or request.id in self.started:
                continue
            if self.rules.studies_at_once and len(self.started) - len(done) >= self.rules.studies_at_once:
                break
            self.started[request.id] = cycle
        for key in done:
            del self.started[key]
        kept = tuple(r.id for r in pending if r.id not in done)
        return CycleResult(cycle, tuple(connections), tuple(refusals), kept)
