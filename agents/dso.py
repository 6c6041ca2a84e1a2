"""The distribution/transmission system operator: owns the network and turns capacity into
products (how: agents/capacity_products.py)."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import mesa

from agents.capacity_products import (
    CapacityReport,
    ProductSettings,
    SiteDefaults,
    products_from_study,
    sites_with_flexible_capacity,
    split_by_capacity,
)
from grid.capacity.inputs.candidates import Candidates
from grid.load.scenarios import Scenarios
from grid.network.network import Network
from grid.plan.data import PlanSite
from mechanisms.products import Product


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
        candidates: Candidates | None = None,
        settings: ProductSettings | None = None,
        solver: str = "highs",
        products: Sequence[Product] = (),
    ) -> None:
        super().__init__(model)
        self.network = network
        self.scenarios = scenarios
        self.candidates = candidates
        self.settings = settings
        self.solver = solver
        self.explicit_products = tuple(products)

    def quantify(self, progress: Callable[[str], None] = lambda _: None, *, theory: bool = False) -> CapacityReport:
        if self.network is None:
            offered, withheld = split_by_capacity(self.explicit_products)
            return CapacityReport(products=tuple(offered), withheld=tuple(withheld))
        assert self.scenarios is not None and self.candidates is not None and self.settings is not None
        study = self.settings.study(self.network, self.scenarios, self.candidates, solver=self.solver, theory=theory,
                                    progress=progress)
        offered, withheld = products_from_study(study, self.settings.block_mw)
        return CapacityReport(products=tuple(offered), withheld=tuple(withheld), study=study)

    def sites_to_protect(self, products: Sequence[Product], allocation: Mapping[str, str | None],
                         defaults: SiteDefaults) -> tuple[PlanSite, ...]:
        """After the auction: the sites that won flexible capacity, for the flexible-capacity plan."""
        return sites_with_flexible_capacity(products, allocation, defaults)
