"""An aggregator's valuation: one bidder's value for a portfolio of member data centers.

Its value for a bundle is the best assignment of the bundle's products to its members (each
member valued by its own profile): the OR of the members' valuations, computed by winner
determination over their atoms (mechanisms/judge/certify.py). Its demand at given prices is the best
assignment of products to members when every product costs its price. After the auction it
hands the products it won to its members by that assignment and reports what each member got,
pays (the prices of its products) and gains; a product no member wants stays with the
aggregator, which bears its price.

OR of gross-substitutes valuations is gross substitutes (M-natural concave functions are closed
under this merge, Murota), so an aggregator of gross-substitutes members is one too.

The Mesa agent that bids with it is agents/aggregator.py; this module imports no Mesa, so the
config schema reads the profile without the simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

from agents.bundle_ties import BundleRule
from agents.errors import AgentConfigError
from agents.valuations import ValuationProfile
from mechanisms.judge.certify import atom_bids, merge_by_bidder
from mechanisms.judge.winner_determination import best_welfare


@dataclass(frozen=True, eq=False)
class AggregatorValuation(ValuationProfile):
    members: tuple[tuple[str, ValuationProfile], ...]
    kind: ClassVar[str] = "aggregator"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def gross_substitutes(self) -> bool:
        return all(getattr(v, "gross_substitutes", False) for _, v in self.members)

    def assign(self, bundle: frozenset[str], prices: Mapping[str, float] | None = None) -> dict[str, tuple[str, ...]]:
        """The best assignment of ``bundle`` to the members (surplus at ``prices`` when given)."""
        return self._solve(frozenset(bundle), tuple(sorted((prices or {}).items())))[1]

    def value(self, bundle: frozenset[str]) -> float:
        return self._solve(frozenset(bundle), ())[0]

    def _solve(self, bundle: frozenset[str], priced: tuple[tuple[str, float], ...]) -> tuple[float, dict]:
        key = (bundle, priced)
        if key not in self._cache:
            products = sorted(bundle)
            prices = dict(priced)
            members = {name: _Priced(valuation, prices) if prices else valuation for name, valuation in self.members}
            bids, parent, skipped = atom_bids(products, members)
            if skipped is not None:
                raise AgentConfigError(f"aggregator: {skipped}")
            welfare, chosen = best_welfare(products, bids)
            self._cache[key] = (welfare, merge_by_bidder(products, members, parent, chosen))
        return self._cache[key]

    def choose_bundle(self, prices: Mapping[str, float], held: frozenset[str], rule: BundleRule,
                      rank: Mapping[str, int]) -> frozenset[str]:
        # The members' best assignment at these prices; among equally good assignments the one
        # winner determination returns (deterministic for the same input).
        _, allocation = self._solve(frozenset(prices), tuple(sorted(prices.items())))
        return frozenset(p for bundle in allocation.values() for p in bundle)

    def interest(self) -> frozenset[str] | None:
        wanted: set[str] = set()
        for _, valuation in self.members:
            own = valuation.interest()
            if own is None:
                return None
            wanted |= own
        return frozenset(wanted)

    def atoms(self, products: Sequence[str]):
        atoms: list = []
        for _, valuation in self.members:
            own = valuation.atoms(products)
            if own is None:
                return None
            atoms.extend(own)
        return atoms

    def describe(self) -> str:
        return "aggregator of " + ", ".join(f"{name} ({v.describe()})" for name, v in self.members)


@dataclass(frozen=True)
class _Priced:
    """A member's valuation net of prices, as atoms: winner determination on these finds the best
    surplus assignment (a bundle worth v at price p bids v - p; losing bids are dropped)."""

    valuation: ValuationProfile
    prices: Mapping[str, float]

    def __call__(self, bundle) -> float:
        return self.valuation(bundle) - math.fsum(self.prices.get(p, 0.0) for p in bundle)

    def atoms(self, products: Sequence[str]):
        own = self.valuation.atoms(products)
        if own is None:
            return None
        return [[(b, v - math.fsum(self.prices[p] for p in b)) for b, v in atom
                 if v - math.fsum(self.prices[p] for p in b) > 0] for atom in own]


def build_members(entries: Sequence[Mapping[str, Any]], build: Any, catalog: Any) -> tuple[tuple[str, ValuationProfile], ...]:
    """Each member entry is ``{name, profile, <that profile's fields>}``; errors name the member."""
    members: list[tuple[str, ValuationProfile]] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"members[{i}]"
        name, kind = entry.get("name"), entry.get("profile")
        if not isinstance(name, str) or not name.strip():
            raise AgentConfigError(f"{where}.name: every member needs a name")
        if name in seen:
            raise AgentConfigError(f"{where}.name: member {name!r} is listed twice; member names must be unique")
        seen.add(name)
        if kind == "aggregator":
            raise AgentConfigError(f"{where}.profile: an aggregator cannot be a member of an aggregator")
        if not isinstance(kind, str):
            raise AgentConfigError(f"{where}.profile: every member needs a profile, e.g. profile = \"sites\"")
        params = {k: v for k, v in entry.items() if k not in ("name", "profile")}
        try:
            members.append((name, build(kind, params, catalog)))
        except AgentConfigError as error:
            text = str(error)
            # Field errors read "field: what"; the others ("unknown field 'x'; ...") get a colon.
            joined = f"{where}.{text}" if text.split(" ", 1)[0].endswith(":") else f"{where}: {text}"
            raise AgentConfigError(joined) from None
    return tuple(members)

