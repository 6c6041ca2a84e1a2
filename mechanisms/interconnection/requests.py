"""What an allocation regime sees and decides, cycle by cycle (docs/models/interconnection.md).

A cycle is the clock's step (a month or a quarter). A developer's *request* asks for MW at one
bus. Each cycle the caller (the simulation) hands the regime the requests still pending, in
arrival order, and the headroom the DSO has quantified at each bus; the regime answers which
requests connect now, with what MW and payment, and which it refuses. Withdrawals are the
developers' own choice: a request missing from ``pending`` has withdrawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from mechanisms.errors import MechanismError
from mechanisms.settings import MAX_MONEY, MAX_MW


@dataclass(frozen=True)
class Request:
    """One developer's request: ``mw`` at ``bus``, made at cycle ``arrival``.

    ``value_usd_per_mw`` is what the connection is worth to its developer, $ per MW (what it bids in
    an auction); ``readiness`` in [0, 1] is how far its project is (site control, permits, financing).
    """

    id: str
    bus: int
    mw: float
    value_usd_per_mw: float
    arrival: int
    readiness: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.mw <= MAX_MW or not math.isfinite(self.mw):
            raise MechanismError(f"request {self.id!r}: mw {self.mw!r} must be above 0 and at most {MAX_MW:g} MW")
        if not 0.0 <= self.value_usd_per_mw <= MAX_MONEY:
            raise MechanismError(f"request {self.id!r}: value_usd_per_mw {self.value_usd_per_mw!r} must be "
                                 f"0 to {MAX_MONEY:g} $")
        if self.arrival < 0:
            raise MechanismError(f"request {self.id!r}: arrival {self.arrival!r} must be a cycle >= 0")
        if not 0.0 <= self.readiness <= 1.0:
            raise MechanismError(f"request {self.id!r}: readiness {self.readiness!r} must be in [0, 1]")


@dataclass(frozen=True)
class Headroom:
    """What a bus can take this cycle: ``firm_mw`` for load that is never curtailed, and
    ``flexible_mw`` (at least firm) when the new load accepts curtailment at the study's risk level."""

    firm_mw: float
    flexible_mw: float

    def __post_init__(self) -> None:
        if self.firm_mw < 0 or self.flexible_mw < self.firm_mw:
            raise MechanismError(f"headroom: need 0 <= firm_mw <= flexible_mw, got {self.firm_mw!r} and "
                                 f"{self.flexible_mw!r}")


@dataclass(frozen=True)
class Connection:
    """A request granted ``mw`` (all it asked, or a pro-rata share) at ``cycle``; ``flexible``: as
    curtailable load. ``payment_usd`` is what it pays the regime for it (deposits refunded apart)."""

    request: str
    cycle: int
    mw: float
    flexible: bool
    payment_usd: float


@dataclass(frozen=True)
class Refusal:
    request: str
    cycle: int
    reason: str


@dataclass(frozen=True)
class CycleResult:
    """What one cycle decided, and the requests it keeps (studying or waiting), in arrival order."""

    cycle: int
    connections: tuple[Connection, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    kept: tuple[str, ...] = field(default=())


class Regime:
    """An allocation regime: stateful across cycles, like a mechanism across rounds. Each regime
    overrides ``step`` and whichever of these defaults its rules change."""

    kind: str

    @property
    def curtailable(self) -> bool:
        """Whether it grants flexible headroom (the room its efficient benchmark may use)."""
        return False

    @property
    def use_deadline_cycles(self) -> int | None:
        """Cycles after its connection by which a request must use its capacity or lose it (None: never)."""
        return None

    @property
    def deposit_usd_per_mw(self) -> float:
        """What a request puts at risk while it waits, $ per MW (forfeited if it withdraws)."""
        return 0.0

    def step(self, cycle: int, pending: Sequence[Request], headroom: Mapping[int, Headroom]) -> CycleResult:
        raise NotImplementedError


class Ledger:
    """Headroom as grants use it (docs/models/interconnection.md#eq-ic-ledger): with F and X a bus's
    firm and flexible headroom and f, x the firm and flexible MW granted there, the firm room is
    min(F - f, X - f - x) and the flexible room X - f - x. A firm MW uses both rooms, a flexible MW
    the flexible room and, once flexible load fills what firm room exceeds, the firm room too (firm
    load is served first in every state where curtailment binds). A grant given back restores both."""

    def __init__(self, headroom: Mapping[int, Headroom]) -> None:
        self.limits = {bus: (h.firm_mw, h.flexible_mw) for bus, h in headroom.items()}
        self.granted = {bus: [0.0, 0.0] for bus in headroom}  # [firm MW, flexible MW]

    @property
    def buses(self) -> list[int]:
        return list(self.limits)

    def room(self, bus: int, flexible: bool) -> float:
        firm, total = self.limits.get(bus, (0.0, 0.0))
        f, x = self.granted.get(bus, (0.0, 0.0))
        return max(0.0, total - f - x if flexible else min(firm - f, total - f - x))

    def take(self, bus: int, mw: float, flexible: bool) -> None:
        self.granted.setdefault(bus, [0.0, 0.0])[1 if flexible else 0] += mw

    def release(self, bus: int, mw: float, flexible: bool) -> None:
        self.granted[bus][1 if flexible else 0] -= mw


def fits(mw: float, room: float) -> bool:
    """``mw`` fits in ``room`` up to floating-point noise in the sums of MW."""
    return mw <= room + 1e-9 * max(1.0, mw)


def grant_whole(ledger: Ledger, request: Request, cycle: int, tariff_usd_per_mw: float) -> Connection | None:
    """All of ``request``'s MW as firm load at ``cycle``, paying the tariff, if its bus's firm room
    still holds it (and that room is then taken); None if it does not fit."""
    if not fits(request.mw, ledger.room(request.bus, False)):
        return None
    ledger.take(request.bus, request.mw, False)
    return Connection(request.id, cycle, request.mw, False, tariff_usd_per_mw * request.mw)
