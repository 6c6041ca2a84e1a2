"""Periodic capacity auctions: every few cycles, each bus's headroom sold to the pending requests
(docs/models/interconnection.md#ic-auction).

Rules (config ``[regime]`` with ``kind = "auction"``):

- Auctions are held at ``first_cycle`` and then every ``every_cycles`` cycles. Between them,
  requests wait.
- At an auction every pending request bids its value: v_r $ per MW for all of its m_r MW (all or
  nothing). Requests want their own bus only, so each bus is its own knapsack: the winners
  maximise the sum of (v_r - reserve) m_r over requests with v_r above the reserve, within the
  bus's room (firm headroom, or flexible headroom when ``flexible`` sells curtailable capacity).
- Payments (``payment``): "vcg", each winner pays the reserve on its MW plus the welfare the others
  lose because it takes part (the Clarke pivot, with the reserve as the auctioneer's own value);
  "core", the reserve plus the minimum-revenue core payments nearest to VCG
  (mechanisms/interconnection/core_payments.py); or "pay_as_bid", v_r m_r.
- Winners connect at the auction; losers stay pending for the next one.
- Use it or lose it (``use_it_or_lose_it_cycles`` k > 0): a winner that has not started using its
  capacity k cycles after the award loses it, unrefunded; the capacity is sold again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from pydantic import Field, model_validator
from scipy.optimize import Bounds, LinearConstraint, milp

from mechanisms.errors import MechanismError
from mechanisms.interconnection.core_payments import core_rows, vcg_nearest_core
from mechanisms.interconnection.requests import Connection, CycleResult, Headroom, Ledger, Regime, Request
from mechanisms.settings import MAX_ROUNDS, Money, Settings

PAYMENTS = ("vcg", "core", "pay_as_bid")


class AuctionRegimeRules(Settings):
    """The periodic auction's rule table."""

    first_cycle: int = Field(default=0, ge=0, le=MAX_ROUNDS, description="the cycle of the first auction")
    every_cycles: int = Field(default=4, ge=1, le=MAX_ROUNDS, description="cycles between auctions")
    payment: str = Field(default="vcg", description="vcg (Clarke pivot), core (the minimum-revenue core point "
                         "nearest VCG) or pay_as_bid")
    reserve_usd_per_mw: Money = Field(default=0.0, ge=0, description="the lowest value per MW that can win")
    flexible: bool = Field(default=False, description="sell the flexible (curtailable) headroom instead of the firm")
    use_it_or_lose_it_cycles: int = Field(default=0, ge=0, le=MAX_ROUNDS, description="cycles after the award by "
                                          "which a winner must use its capacity or lose it (unrefunded); 0: never")

    @model_validator(mode="after")
    def _known_payment(self) -> "AuctionRegimeRules":
        if self.payment not in PAYMENTS:
            raise ValueError(f"payment: unknown rule {self.payment!r}; choose one of {', '.join(PAYMENTS)}")
        return self


def best_set(values: Sequence[float], sizes: Sequence[float], room: float) -> tuple[float, list[int]]:
    """max sum_k values_k x_k s.t. sum_k sizes_k x_k <= room, x binary (docs/models/interconnection.md#eq-ic-wd):
    the welfare and the chosen indices, in increasing order."""
    if not values:
        return 0.0, []
    values_a, sizes_a = np.asarray(values, dtype=float), np.asarray(sizes, dtype=float)
    result = milp(-values_a, integrality=np.ones(values_a.size), bounds=Bounds(0, 1),
                  constraints=LinearConstraint(sizes_a[None, :], -np.inf, room + 1e-9 * max(1.0, room)),
                  options={"mip_rel_gap": 0.0})
    if result.status != 0 or result.x is None:
        raise MechanismError(f"the auction's winner determination failed ({result.message})")
    chosen = [k for k in range(values_a.size) if result.x[k] > 0.5]
    return float(values_a[chosen].sum()), chosen


@dataclass
class AuctionRegime(Regime):
    rules: AuctionRegimeRules
    kind: str = "auction"

    @property
    def use_deadline_cycles(self) -> int | None:
        return self.rules.use_it_or_lose_it_cycles or None

    @property
    def curtailable(self) -> bool:
        return self.rules.flexible

    def is_auction(self, cycle: int) -> bool:
        first = self.rules.first_cycle
        return cycle >= first and (cycle - first) % self.rules.every_cycles == 0

    def step(self, cycle: int, pending: Sequence[Request], headroom: Mapping[int, Headroom]) -> CycleResult:
        if not self.is_auction(cycle):
            return CycleResult(cycle, kept=tuple(r.id for r in pending))
        ledger = Ledger(headroom)
        connections: list[Connection] = []
        for bus in sorted({r.bus for r in pending}):
            connections += self._sell(cycle, bus, [r for r in pending if r.bus == bus], ledger)
        won = {c.request for c in connections}
        return CycleResult(cycle, tuple(connections), (), tuple(r.id for r in pending if r.id not in won))

    def _sell(self, cycle: int, bus: int, bidders: Sequence[Request], ledger: Ledger) -> list[Connection]:
        """One bus's knapsack and its payments (#eq-ic-wd, #eq-ic-vcg)."""
        reserve, flexible = self.rules.reserve_usd_per_mw, self.rules.flexible
        bidders = [r for r in bidders if r.value_usd_per_mw > reserve]
        room = ledger.room(bus, flexible)
        net = [(r.value_usd_per_mw - reserve) * r.mw for r in bidders]
        sizes = [r.mw for r in bidders]
        welfare, chosen = best_set(net, sizes, room)
        pays = self._payments(bidders, net, sizes, room, welfare, chosen)
        out = []
        for k, pay in zip(chosen, pays):
            r = bidders[k]
            ledger.take(bus, r.mw, flexible)
            out.append(Connection(r.id, cycle, r.mw, flexible, pay))
        return out

    def _payments(self, bidders: Sequence[Request], net: Sequence[float], sizes: Sequence[float], room: float,
                  welfare: float, chosen: Sequence[int]) -> list[float]:
        """Each winner's payment by the rule (#eq-ic-vcg, #eq-ic-core), in ``chosen``'s order."""
        reserve = self.rules.reserve_usd_per_mw
        if self.rules.payment == "pay_as_bid":
            return [bidders[k].value_usd_per_mw * bidders[k].mw for k in chosen]

        def without(excluded: frozenset[int]) -> float:
            kept = [j for j in range(len(bidders)) if j not in excluded]
            return best_set([net[j] for j in kept], [sizes[j] for j in kept], room)[0]

        pays = [min(net[k], max(0.0, without(frozenset({k})) - (welfare - net[k]))) for k in chosen]  # VCG
        if self.rules.payment == "core":
            rows, bounds = core_rows(chosen, [net[k] for k in chosen], without)
            pays = [float(q) for q in vcg_nearest_core([net[k] for k in chosen], pays, rows, bounds)]
        return [reserve * bidders[k].mw + q for k, q in zip(chosen, pays)]
