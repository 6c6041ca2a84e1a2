"""The distribution/transmission system operator: owns the network and turns capacity into products."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import mesa

from grid.firm import CapacityResult, firm_capacity
from grid.flexible import flexible_capacity
from grid.network import Network
from grid.scenarios import Scenarios
from mechanisms.products import Product, firm_id, flex_id

# Below this a product is not worth selling: it is withheld and reported instead.
MIN_PRODUCT_MW = 1e-6


@dataclass(frozen=True)
class CapacityReport:
    """Phase-1 result: capacities per bus and the products made from them."""

    products: tuple[Product, ...]
    withheld: tuple[Product, ...] = ()
    firm: CapacityResult | None = None
    flexible: CapacityResult | None = None
    demand_mw: Mapping[int, float] = field(default_factory=dict)


def flexible_increment_mw(firm_mw: float, flexible_mw: float) -> float:
    """c^eps - c (spec 4.1). c^eps >= c is a constraint of the flexible model; clip solver noise."""
    return max(flexible_mw - firm_mw, 0.0)


def split_by_capacity(products: Sequence[Product]) -> tuple[list[Product], list[Product]]:
    """(offered, withheld): a product below MIN_PRODUCT_MW is not worth selling."""
    offered = [p for p in products if p.capacity_mw >= MIN_PRODUCT_MW]
    withheld = [p for p in products if p.capacity_mw < MIN_PRODUCT_MW]
    return offered, withheld


def products_from_capacity(
    candidates: Sequence[int], firm: Mapping[int, float], flexible: Mapping[int, float], risk: float
) -> tuple[list[Product], list[Product]]:
    """Spec 4.1: per candidate bus, a firm item (c_i, 0, i) and an increment (c_i^eps - c_i, eps, i).

    Products come in bus order, firm before flex. Returns (offered, withheld).
    """
    products: list[Product] = []
    for bus in candidates:
        firm_mw = max(firm[bus], 0.0)
        increment_mw = flexible_increment_mw(firm[bus], flexible[bus])
        products += [Product(firm_id(bus), bus, 0.0, firm_mw), Product(flex_id(bus), bus, risk, increment_mw)]
    return split_by_capacity(products)


class DSO(mesa.Agent):
    """Owns the network; when the model is built it quantifies firm and flexible capacity.

    With explicit products (no network) it simply offers them.
    """

    def __init__(
        self,
        model: mesa.Model,
        *,
        network: Network | None = None,
        scenarios: Scenarios | None = None,
        demand_mw: Mapping[int, float] | None = None,
        risk_level: float | None = None,
        solver: str = "highs",
        products: Sequence[Product] = (),
    ) -> None:
        super().__init__(model)
        self.network = network
        self.scenarios = scenarios
        self.demand_mw = dict(demand_mw or {})
        self.risk_level = risk_level
        self.solver = solver
        self.explicit_products = tuple(products)

    def quantify(self, progress: Callable[[str], None] = lambda _: None) -> CapacityReport:
        if self.network is None:
            offered, withheld = split_by_capacity(self.explicit_products)
            return CapacityReport(products=tuple(offered), withheld=tuple(withheld))
        assert self.scenarios is not None and self.risk_level is not None
        progress(f"firm capacity: robust LP (1)-(2) on '{self.network.name}' with {self.solver}")
        firm = firm_capacity(self.network, self.scenarios, self.demand_mw, solver=self.solver)
        progress(
            f"flexible capacity: CVaR LP (17), {self.scenarios.count} scenarios, "
            f"eps = {self.risk_level:g}, with {self.solver}"
        )
        flexible = flexible_capacity(
            self.network, self.scenarios, self.demand_mw, self.risk_level, firm.capacity_mw, solver=self.solver
        )
        candidates = [b for b in self.network.bus_numbers if b in self.demand_mw]
        offered, withheld = products_from_capacity(candidates, firm.capacity_mw, flexible.capacity_mw, self.risk_level)
        return CapacityReport(
            products=tuple(offered),
            withheld=tuple(withheld),
            firm=firm,
            flexible=flexible,
            demand_mw=self.demand_mw,
        )
