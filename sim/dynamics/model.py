"""The Mesa model of interconnection over time (docs/models/interconnection.md#ic-model).

Each step is one cycle: the developers act first (arrivals, entries, withdrawals; activated through
``AgentSet.shuffle_do``, their withdrawal draws from their own stream), then the regime decides on
the requests still pending, in arrival order, against the headroom left; connections take their
MW off it. The DataCollector keeps one row per cycle; ``requests()`` gives one row per developer.

The headroom here is a fixed table per bus that connections use up (mechanisms.interconnection's
ledger rules): the DSO's re-quantification with the connected load as background is the next step.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import mesa

from agents.developer_agent import CONNECTED, DETERRED, REFUSED, REVOKED, WAITING, WITHDRAWN, DeveloperAgent
from agents.developers import Developer, WithdrawalSettings
from mechanisms.interconnection.requests import Headroom, Ledger, Regime
from sim.dynamics.metrics import fractional_value, idle_mw
from sim.random_streams import stream, stream_seed


class InterconnectionModel(mesa.Model):
    def __init__(self, developers: Sequence[Developer], regime: Regime, headroom: Mapping[int, Headroom],
                 withdrawal: WithdrawalSettings, *, seed: int) -> None:
        super().__init__(rng=stream_seed(seed, "activation"))
        self.regime, self.withdrawal = regime, withdrawal
        self.withdrawal_rng = stream(seed, "withdrawals")
        self.ledger = Ledger(headroom)
        self.cycle = 0
        self.developers = [DeveloperAgent(self, d) for d in developers]  # arrival order
        self._by_id = {a.developer.request.id: a for a in self.developers}
        self.revenue_usd = 0.0
        self.datacollector = mesa.DataCollector(model_reporters={
            "cycle": "cycle",
            "connected_mw": lambda m: m.total_mw(CONNECTED),
            "backlog_mw": lambda m: m.total_mw(WAITING),
            "waiting": lambda m: m.count(WAITING),
            "connected": lambda m: m.count(CONNECTED),
            "refused": lambda m: m.count(REFUSED),
            "withdrawn": lambda m: m.count(WITHDRAWN),
            "deterred": lambda m: m.count(DETERRED),
            "revoked": lambda m: m.count(REVOKED),
            "unused_mw": lambda m: sum(a.granted_mw for a in m.developers if a.status == CONNECTED and not a.in_use),
            "revenue_usd": "revenue_usd",
            "deposits_forfeited_usd": lambda m: m.forfeited_usd(),
            "value_connected_usd": "value_connected_usd",
            "value_possible_usd": "value_possible_usd",
            "idle_mw": "idle_mw",
        })
        self.value_connected_usd = self.value_possible_usd = self.idle_mw = 0.0

    @property
    def deposit_usd_per_mw(self) -> float:
        return self.regime.deposit_usd_per_mw

    def step(self) -> None:
        self.agents.shuffle_do("step")
        self._revoke_unused()
        pending = [a.developer.request for a in self.developers if a.status == WAITING]
        self.value_possible_usd = sum(fractional_value([r for r in pending if r.bus == bus], room)
                                      for bus, room in self.room().items())
        result = self.regime.step(self.cycle, pending, self.headroom())
        self.value_connected_usd = 0.0
        for c in result.connections:
            request = self._by_id[c.request].developer.request
            self.ledger.take(request.bus, c.mw, c.flexible)
            self._by_id[c.request].connect(c.cycle, c.mw, c.flexible, c.payment_usd)
            self.revenue_usd += c.payment_usd
            self.value_connected_usd += c.mw * request.value_usd_per_mw
        for r in result.refusals:
            self._by_id[r.request].refuse(r.cycle)
        self.idle_mw = idle_mw([a.developer.request for a in self.developers if a.status == WAITING], self.room())
        self.datacollector.collect(self)
        self.cycle += 1

    def _revoke_unused(self) -> None:
        """Use it or lose it: capacity still unused ``use_deadline_cycles`` after its connection goes
        back to the headroom before the regime acts (docs/models/interconnection.md#ic-auction)."""
        deadline = self.regime.use_deadline_cycles
        if deadline is None:
            return
        for a in self.developers:
            if a.status == CONNECTED and not a.in_use and self.cycle - (a.decided_at or 0) >= deadline:
                self.ledger.release(a.developer.request.bus, a.granted_mw, a.flexible)
                a.revoke(self.cycle)

    def room(self) -> dict[int, float]:
        """The headroom left of the kind the regime grants (flexible if it grants curtailable load)."""
        return {bus: self.ledger.room(bus, self.regime.curtailable) for bus in self.ledger.buses}

    def headroom(self) -> dict[int, Headroom]:
        """What each bus can still take: the ledger's room, firm within flexible."""
        return {bus: Headroom(self.ledger.room(bus, False), self.ledger.room(bus, True))
                for bus in self.ledger.buses}

    def total_mw(self, status: str) -> float:
        """MW granted (connected) or asked (otherwise) by the developers in ``status``."""
        return sum(a.granted_mw if status == CONNECTED else a.developer.request.mw
                   for a in self.developers if a.status == status)

    def count(self, status: str) -> int:
        return sum(1 for a in self.developers if a.status == status)

    def forfeited_usd(self) -> float:
        return sum(self.deposit_usd_per_mw * a.developer.request.mw for a in self.developers if a.status == WITHDRAWN)

    def requests(self) -> list[dict[str, Any]]:
        """One row per developer: what it asked, what became of it, when, and what it paid."""
        rows = []
        for a in self.developers:
            r = a.developer.request
            rows.append({"request": r.id, "bus": r.bus, "mw": r.mw, "value_usd_per_mw": r.value_usd_per_mw,
                         "arrival": r.arrival, "speculative": a.developer.speculative, "status": a.status,
                         "decided_at": a.decided_at,
                         "wait_cycles": None if a.decided_at is None else a.decided_at - r.arrival,
                         "granted_mw": a.granted_mw, "flexible": a.flexible, "payment_usd": a.payment_usd,
                         "in_use": a.in_use, "revoked_at": a.revoked_at})
        return rows
