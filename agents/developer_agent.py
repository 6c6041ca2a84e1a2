"""A data-center developer as a Mesa agent: it arrives, enters or is deterred, waits, and withdraws
or is decided by the regime (docs/models/interconnection.md#ic-developers)."""

from __future__ import annotations

import mesa

from agents.developers import Developer, WithdrawalSettings, withdrawal_hazard

# A developer's states; "future" until its arrival cycle.
FUTURE, WAITING, CONNECTED, REFUSED, WITHDRAWN, DETERRED, REVOKED = (
    "future", "waiting", "connected", "refused", "withdrawn", "deterred", "revoked")


class DeveloperAgent(mesa.Agent):
    """Each model step (one cycle), before the regime acts: arrive (and enter unless the deposit
    deters it); if waiting since an earlier cycle, withdraw with the hazard of its wait; if
    connected, start using the capacity once its build time has passed."""

    def __init__(self, model: mesa.Model, developer: Developer) -> None:
        super().__init__(model)
        self.developer = developer
        self.status = FUTURE
        self.decided_at: int | None = None  # the cycle it connected, was refused, withdrew or was deterred
        self.granted_mw = 0.0
        self.flexible = False
        self.payment_usd = 0.0
        self.in_use = False
        self.revoked_at: int | None = None

    def step(self) -> None:
        cycle, request = self.model.cycle, self.developer.request
        if self.status == FUTURE and request.arrival == cycle:
            entered = self.developer.enters(self.model.deposit_usd_per_mw)
            self._decide(WAITING if entered else DETERRED, None if entered else cycle)
        elif self.status == WAITING:
            settings: WithdrawalSettings = self.model.withdrawal
            hazard = withdrawal_hazard(self.developer, cycle - request.arrival, settings)
            if self.model.withdrawal_rng.random() < hazard:
                self._decide(WITHDRAWN, cycle)
        elif self.status == CONNECTED and not self.in_use:
            build = self.developer.build_cycles
            assert self.decided_at is not None
            self.in_use = build is not None and cycle >= self.decided_at + build

    def connect(self, cycle: int, mw: float, flexible: bool, payment_usd: float) -> None:
        self._decide(CONNECTED, cycle)
        self.granted_mw, self.flexible, self.payment_usd = mw, flexible, payment_usd
        self.in_use = self.developer.build_cycles == 0

    def revoke(self, cycle: int) -> None:
        """Its capacity taken back unused at ``cycle`` (use it or lose it); what it paid stays paid."""
        self.status, self.revoked_at = REVOKED, cycle

    def refuse(self, cycle: int) -> None:
        self._decide(REFUSED, cycle)

    def _decide(self, status: str, cycle: int | None) -> None:
        self.status, self.decided_at = status, cycle
