"""Seeded populations of data-center bidders, drawn profile by profile.

A population is a mix of profiles (shares that sum to 1) and a size. Every bidder is drawn as
the same config fields a user would write for that profile (so it goes through the profile's own
validation) from one random stream: the same catalog, mix, size and seed give the same bidders.

Values are drawn per MW, so that a product's value follows its capacity: a developer values a
few buses (its candidate sites, 1 to 3 of them) at 5-30 $/MW per period, as in the paper's
examples (docs/models/auction.md#ca-6) scaled to MW.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from agents.errors import AgentConfigError
from mechanisms.products import FIRM, FLEX, GridProductKey, Product, ProductCatalog

RATE_USD_PER_MW = (5.0, 30.0)


@dataclass(frozen=True)
class BidderDraw:
    name: str
    profile: str
    fields: dict[str, Any]


def _buses(catalog: ProductCatalog) -> list[int]:
    return sorted({p.bus for p in catalog.offered if p.bus is not None})


def _sites(rng: np.random.Generator, catalog: ProductCatalog) -> list[int]:
    buses = _buses(catalog)
    if not buses:
        raise AgentConfigError("population: the products have no buses; populations need grid products")
    count = int(rng.integers(1, min(3, len(buses)) + 1))
    return sorted(int(b) for b in rng.choice(buses, size=count, replace=False))


def _rates(rng: np.random.Generator, buses: list[int]) -> dict[int, float]:
    low, high = RATE_USD_PER_MW
    return {bus: round(float(rng.uniform(low, high)), 2) for bus in buses}


def _products_at(catalog: ProductCatalog, buses: list[int]) -> list[Product]:
    return [p for p in catalog.offered if p.bus in buses]


def _risk_factor(product: Product) -> float:
    """Flexible capacity is worth less to a bidder without backup: 1 - 10 eps, floored at 0."""
    return max(0.0, 1.0 - 10.0 * product.risk)


def draw_additive(rng: np.random.Generator, catalog: ProductCatalog) -> dict[str, Any]:
    rates = _rates(rng, _sites(rng, catalog))
    return {"value_per_mw": {p.id: round(rates[p.bus] * _risk_factor(p), 2) for p in _products_at(catalog, list(rates))}}


def draw_sites(rng: np.random.Generator, catalog: ProductCatalog) -> dict[str, Any]:
    rates = _rates(rng, _sites(rng, catalog))
    values = {p.id: round(rates[p.bus] * _risk_factor(p) * p.capacity_mw, 2) for p in _products_at(catalog, list(rates))}
    return {"site_values": values, "max_sites": int(rng.integers(1, 3))}


def draw_per_mw(rng: np.random.Generator, catalog: ProductCatalog) -> dict[str, Any]:
    rates = _rates(rng, _sites(rng, catalog))
    return {"value_per_mw": {str(bus): rate for bus, rate in rates.items()},
            "backup_share": round(float(rng.uniform(0.0, 1.0)), 2)}


def draw_complements(rng: np.random.Generator, catalog: ProductCatalog) -> dict[str, Any]:
    rates = _rates(rng, _sites(rng, catalog))
    # The pair is worth more than its parts (a site needs both firm and flexible capacity).
    values = {str(bus): round(1.3 * rate * sum(p.capacity_mw for p in _products_at(catalog, [bus])), 2)
              for bus, rate in rates.items()}
    return {"site_values": values, "synergy_usd": round(0.2 * min(values.values()), 2)}


def draw_budget_capped(rng: np.random.Generator, catalog: ProductCatalog) -> dict[str, Any]:
    fields = draw_additive(rng, catalog)
    total = sum(rate * _mw(catalog, pid) for pid, rate in fields["value_per_mw"].items())
    fields["budget_usd"] = round(max(1.0, float(rng.uniform(0.5, 0.8)) * total), 2)
    return fields


def _mw(catalog: ProductCatalog, product_id: str) -> float:
    return next(p.capacity_mw for p in catalog.offered if p.id == product_id)


DRAWERS: dict[str, Callable[[np.random.Generator, ProductCatalog], dict[str, Any]]] = {
    "additive": draw_additive,
    "sites": draw_sites,
    "per_mw": draw_per_mw,
    "complements": draw_complements,
    "budget_capped": draw_budget_capped,
}

# Named mixes for experiments: gross substitutes only, and a market with complements and budgets.
MIXES: dict[str, dict[str, float]] = {
    "gross_substitutes": {"sites": 0.4, "per_mw": 0.3, "additive": 0.3},
    "mixed": {"sites": 0.3, "per_mw": 0.2, "additive": 0.2, "complements": 0.2, "budget_capped": 0.1},
}


def draw_population(catalog: ProductCatalog, count: int, mix: Mapping[str, float],
                    rng: np.random.Generator) -> list[BidderDraw]:
    """``count`` bidders whose profiles follow the shares of ``mix`` (largest remainders)."""
    if count < 1:
        raise AgentConfigError(f"population: count must be at least 1, got {count}")
    unknown = sorted(set(mix) - set(DRAWERS))
    if unknown:
        raise AgentConfigError(f"population.mix: no generator for profile {unknown[0]!r}; "
                               f"choose among {', '.join(DRAWERS)}")
    shares = np.array([float(mix[k]) for k in mix])
    if np.any(shares < 0) or not np.isclose(shares.sum(), 1.0):
        raise AgentConfigError(f"population.mix: shares must be >= 0 and sum to 1, got {dict(mix)}")
    exact = shares * count
    counts = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - counts), kind="stable")[: count - int(counts.sum())]:
        counts[k] += 1
    profiles = [kind for kind, c in zip(mix, counts) for _ in range(int(c))]
    return [BidderDraw(f"D{i + 1:03d}", kind, DRAWERS[kind](rng, catalog)) for i, kind in enumerate(profiles)]


def grid_catalog(buses: int, firm_mw: float = 10.0, flex_mw: float = 5.0, risk: float = 0.05) -> ProductCatalog:
    """A small grid-like catalog for experiments: firm and flexible capacity at each bus."""
    products = []
    for bus in range(1, buses + 1):
        products.append(Product.grid(GridProductKey(FIRM, bus), 0.0, firm_mw))
        products.append(Product.grid(GridProductKey(FLEX, bus), risk, flex_mw))
    return ProductCatalog(offered=tuple(products))
