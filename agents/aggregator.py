"""An aggregator: one bidder for a portfolio of member data centers (its valuation:
agents/aggregator_valuation.py). After the auction it hands the products it won to its members
and reports what each member got, pays and gains; a product no member wants stays with the
aggregator, which bears its price."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from agents.aggregator_valuation import AggregatorValuation
from agents.bidder import DataCenterBidder


@dataclass(frozen=True)
class MemberShare:
    products: tuple[str, ...]
    value: float
    payment: float

    @property
    def surplus(self) -> float:
        return self.value - self.payment


class Aggregator(DataCenterBidder):
    """A bidder that bids for its members' portfolio and hands the products out afterwards."""

    valuation: AggregatorValuation

    def hand_out(self, won: Sequence[str], prices: Mapping[str, float]) -> tuple[dict[str, MemberShare], tuple[str, ...]]:
        """Each member's share of ``won`` (products, value, payment at the final prices) and the
        products no member takes."""
        assignment = self.valuation.assign(frozenset(won))
        members = dict(self.valuation.members)
        shares = {
            name: MemberShare(tuple(bundle), members[name](bundle), math.fsum(prices[p] for p in bundle))
            for name, bundle in assignment.items()
        }
        taken = {p for bundle in assignment.values() for p in bundle}
        return shares, tuple(p for p in won if p not in taken)

    def operated_sites(self, won: Sequence[str], prices: Mapping[str, float],
                       products: Mapping[str, Any]) -> list["MemberSite"]:
        """The sites the aggregator runs for its members after the auction (it then operates them
        against DLMPs, sim/studies/price/study.py), one per bus in bus order: the MW of every product won
        there (firm and flexible alike), held by the members the products went to
        (``hand_out``); a product no member took stays with the aggregator."""
        shares, unassigned = self.hand_out(won, prices)
        holders: dict[int, list[str]] = {}
        megawatts: dict[int, float] = {}
        held = [(name, p) for name, share in shares.items() for p in share.products]
        held += [(self.name, p) for p in unassigned]
        for name, product_id in held:
            product = products[product_id]
            megawatts[product.bus] = megawatts.get(product.bus, 0.0) + product.capacity_mw
            if name not in holders.setdefault(product.bus, []):
                holders[product.bus].append(name)
        return [MemberSite("+".join(sorted(holders[bus])), bus, megawatts[bus]) for bus in sorted(megawatts)]


@dataclass(frozen=True)
class MemberSite:
    """A site the aggregator operates after the auction: its bus, the MW won there and who holds it."""

    member: str
    bus: int
    capacity_mw: float
