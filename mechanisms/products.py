"""The products a mechanism sells: indivisible grid-capacity items (capacity, risk, location).

Grid products are named here and only here. The id scheme:

- ``firm@BUS``: the firm capacity c_i of bus BUS (risk 0);
- ``flex@BUS``: the flexible increment c_i^eps - c_i, when the config has one risk level;
- ``flex@BUS:5%``: with several risk levels, the increment of the 5 % tier over the next safer
  tier (c_i^eps_k - c_i^eps_(k-1), with eps_0 = firm); the tier label is 100 * eps in %g form;
- ``...#N``: block N (1, 2, ...) of a product split into blocks of a given MW size, as spectrum
  auctions split licences (``firm@3#2``, ``flex@3:5%#1``).

Configs that list their own products may use any other id; those ids carry no structure.

A grid product carries its structure as a `GridProductKey` (``Product.key``): code reads the
kind, bus, tier and block from the key, never back from the id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from mechanisms.errors import MechanismError

FIRM = "firm"
FLEX = "flex"

_GRID_ID = re.compile(r"^(firm|flex)@(-?\d+)(?::([0-9.e+-]+)%)?(?:#([1-9]\d*))?$")


@dataclass(frozen=True)
class Product:
    """One indivisible capacity item (docs/models/auction.md#ca-4-1).

    ``risk`` is the probability that the capacity is interrupted: 0 for firm capacity,
    epsilon for an incremental flexible item. ``bus`` is None for abstract test items.
    """

    id: str
    bus: int | None
    risk: float
    capacity_mw: float
    # The id's structure; derived from the id when a product is listed by hand (None: free-form).
    key: "GridProductKey | None" = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.key is None:
            object.__setattr__(self, "key", parse_product_id(self.id))
        elif self.key.id != self.id:
            raise MechanismError(f"product id {self.id!r} does not match its key ({self.key.id!r})")

    @classmethod
    def grid(cls, key: "GridProductKey", risk: float, capacity_mw: float) -> "Product":
        """A grid product: its id and bus come from its key."""
        return cls(key.id, key.bus, risk, capacity_mw, key)

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "bus": self.bus, "risk": self.risk, "capacity_mw": self.capacity_mw}


@dataclass(frozen=True)
class GridProductKey:
    """What a grid product id encodes: kind, bus, risk tier label (or None) and block (or None)."""

    kind: str
    bus: int
    tier: str | None = None
    block: int | None = None

    @property
    def id(self) -> str:
        return product_id(self.kind, self.bus, tier=self.tier, block=self.block)

    @property
    def family(self) -> str:
        """The id without its block number: every block of one product shares it."""
        return product_id(self.kind, self.bus, tier=self.tier)


def risk_label(risk: float) -> str:
    """The tier label of a risk level: 0.05 -> '5%', 0.025 -> '2.5%', 0.001 -> '0.1%'."""
    return f"{risk * 100:g}%"


def product_id(kind: str, bus: int, *, tier: str | None = None, block: int | None = None) -> str:
    """The one place grid product ids are made (see the module doc for the scheme)."""
    if kind not in (FIRM, FLEX):
        raise MechanismError(f"product kind must be {FIRM!r} or {FLEX!r}, got {kind!r}")
    if kind == FIRM and tier is not None:
        raise MechanismError("firm products have no risk tier")
    text = f"{kind}@{bus}"
    if tier is not None:
        text += f":{tier}"
    if block is not None:
        if block < 1:
            raise MechanismError(f"block numbers start at 1, got {block}")
        text += f"#{block}"
    return text


def parse_product_id(text: str) -> GridProductKey | None:
    """The structure of a grid product id, or None for a free-form id (explicit products)."""
    match = _GRID_ID.match(text)
    if match is None:
        return None
    kind, bus, tier, block = match.groups()
    if kind == FIRM and tier is not None:
        return None
    return GridProductKey(kind, int(bus), f"{tier}%" if tier is not None else None, int(block) if block else None)


@dataclass(frozen=True)
class ProductCatalog:
    """What a valuation key may name: an offered product, a withheld one (no capacity; values on
    it are ignored), or a grid product family (an id without its block number), which stands for
    all of its blocks. Before capacity is computed the catalog holds only the families and ids a
    config can produce, so that typos fail before any LP is solved.
    """

    offered: tuple[Product, ...] = ()
    withheld: frozenset[str] = frozenset()
    families: frozenset[str] = frozenset()

    def resolve(self, key: str) -> tuple[Product, ...] | None:
        """The offered products a key names ((): it exists but is not for sale), None if unknown."""
        for product in self.offered:
            if product.id == key:
                return (product,)
        if key in self.withheld:
            return ()
        parsed = parse_product_id(key)
        if parsed is None or parsed.family not in self.families:
            return None
        if parsed.block is not None:
            # A block the computed capacity does not reach is like a withheld product.
            return ()
        return tuple(p for p in self.offered if p.key is not None and p.key.family == key)

    def describe(self) -> str:
        """The names a user may write, for error messages (at most 20)."""
        names = sorted({p.id for p in self.offered} | set(self.withheld) | set(self.families))
        shown = ", ".join(names[:20])
        return shown + (f", ... ({len(names)} in all)" if len(names) > 20 else "")


def check_unique_ids(products: Sequence[Product]) -> None:
    checked_ids([product.id for product in products])


def checked_ids(ids: Sequence[str]) -> tuple[str, ...]:
    """Product ids as the mechanisms take them: strings, each once."""
    seen: set[str] = set()
    for p in ids:
        if not isinstance(p, str):
            raise MechanismError(f"products must be product ids (str), got {p!r}; use product_ids(products)")
        if p in seen:
            raise MechanismError(f"product id {p!r} appears twice; product ids must be unique")
        seen.add(p)
    return tuple(ids)


def product_ids(products: Iterable[Product]) -> tuple[str, ...]:
    return tuple(p.id for p in products)
