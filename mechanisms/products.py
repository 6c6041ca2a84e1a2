"""The products a mechanism sells: indivisible grid-capacity items (capacity, risk, location)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from mechanisms.errors import MechanismError


@dataclass(frozen=True)
class Product:
    """One indivisible capacity item (spec 4.1).

    ``risk`` is the probability that the capacity is interrupted: 0 for firm capacity,
    epsilon for an incremental flexible item. ``bus`` is None for abstract test items.
    """

    id: str
    bus: int | None
    risk: float
    capacity_mw: float

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "bus": self.bus, "risk": self.risk, "capacity_mw": self.capacity_mw}


def firm_id(bus: int) -> str:
    return f"firm@{bus}"


def flex_id(bus: int) -> str:
    return f"flex@{bus}"


def check_unique_ids(products: Sequence[Product]) -> None:
    seen: set[str] = set()
    for product in products:
        if product.id in seen:
            raise MechanismError(f"product id {product.id!r} appears twice; product ids must be unique")
        seen.add(product.id)


def product_ids(products: Iterable[Product]) -> tuple[str, ...]:
    return tuple(p.id for p in products)
