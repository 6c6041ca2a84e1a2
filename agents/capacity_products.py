"""What the DSO sells, without the agent: the settings that turn a capacity study into products,
the products of a study (firm and each flexible tier per bus, in blocks), and the sites an
auction's flexible products create for the plan. No Mesa here, so the capacity study and the
plan, which need no model, do not import it (agents/dso.py holds the Mesa agent)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from agents.errors import AgentConfigError
from grid.capacity.inputs.candidates import Candidates
from grid.capacity.inputs.corrections import Corrections
from grid.capacity.inputs.criteria import SecurityCriteria
from grid.capacity.rows.limits import DEFAULT_TOUCH_FACTOR, BlockMap
from grid.capacity.screened import screened_capacity_study, uses_screened
from grid.capacity.study import MIN_PRODUCT_MW, CapacityStudy, capacity_study
from grid.errors import GridError
from grid.load.scenarios import Scenarios
from grid.network.network import Network
from grid.plan.data import PlanSite
from mechanisms.products import (
    FIRM,
    FLEX,
    GridProductKey,
    Product,
    product_id,
    risk_label,
)


@dataclass(frozen=True)
class ProductSettings:
    """How the DSO turns capacities into products (config ``[products]``)."""

    risk_levels: tuple[float, ...]
    risk_mode: str = "per_constraint"
    formulation: str = "exact"
    block_mw: float | None = None
    touch_factor: float = DEFAULT_TOUCH_FACTOR
    criteria: SecurityCriteria = SecurityCriteria()
    lines: str = "auto"             # which lines become rows (grid/capacity/screened.py: LINE_ROWS)

    def study(self, network: Network, scenarios: Scenarios, candidates: Candidates, *, solver: str, theory: bool,
              progress: Callable[[str], None] = lambda _: None,
              corrections: Corrections | None = None, compare_full_draw: bool = True,
              block_map: BlockMap | None = None) -> CapacityStudy:
        """The capacity study these settings ask for (the one call every caller makes); ``corrections``
        come from a check outside the linear model (grid/capacity/inputs/corrections.py); without
        ``compare_full_draw`` the paper's model is not solved beside it (no counterflow report);
        ``block_map`` runs its scenario tails on a cluster (sim/execution/cluster.py). A network
        whose dense line rows do not fit (or ``lines = "screened"``) gets the screened-lines study."""
        if uses_screened(self.lines, network, len(candidates)):
            if corrections is not None and not corrections.empty:
                raise GridError("the screened-lines study takes no AC corrections yet; set [ac] correct = false")
            return screened_capacity_study(network, scenarios, candidates, self.risk_levels, solver=solver,
                                           formulation=self.formulation, risk_mode=self.risk_mode,
                                           touch_factor=self.touch_factor, theory=theory, criteria=self.criteria,
                                           progress=progress, block_map=block_map)
        return capacity_study(network, scenarios, candidates, self.risk_levels, solver=solver,
                              formulation=self.formulation, risk_mode=self.risk_mode, touch_factor=self.touch_factor,
                              criteria=self.criteria, theory=theory, progress=progress, corrections=corrections,
                              compare_full_draw=compare_full_draw, block_map=block_map)


@dataclass(frozen=True)
class CapacityReport:
    """Phase-1 result: the capacity study (None for explicit products) and the products."""

    products: tuple[Product, ...]
    withheld: tuple[Product, ...] = ()
    study: CapacityStudy | None = None


def split_by_capacity(products: Sequence[Product]) -> tuple[list[Product], list[Product]]:
    """(offered, withheld): a product below MIN_PRODUCT_MW is not worth selling."""
    offered = [p for p in products if p.capacity_mw >= MIN_PRODUCT_MW]
    withheld = [p for p in products if p.capacity_mw < MIN_PRODUCT_MW]
    return offered, withheld


def tier_labels(risk_levels: Sequence[float]) -> list[str | None]:
    """The id tier of each risk level: none with one level (``flex@BUS``), '5%' etc. with several."""
    return [None] * len(risk_levels) if len(risk_levels) == 1 else [risk_label(r) for r in risk_levels]


# Blocks one product may be split into (each is a product of the auction).
MAX_BLOCKS = 1000


def _blocks(kind: str, bus: int, tier: str | None, risk: float, capacity_mw: float,
            block_mw: float | None) -> list[Product]:
    """One product, or blocks of ``block_mw`` (the last one holds the remainder)."""
    if block_mw is None or capacity_mw <= block_mw:
        block = None if block_mw is None else 1
        return [Product.grid(GridProductKey(kind, bus, tier, block), risk, capacity_mw)]
    ratio = capacity_mw / block_mw
    if not ratio <= MAX_BLOCKS:
        raise AgentConfigError(f"products.block_mw: {block_mw:g} MW splits {product_id(kind, bus, tier=tier)} "
                               f"({capacity_mw:g} MW) into {ratio:.3g} blocks; at most {MAX_BLOCKS:,} a product: "
                               "give a larger block_mw")
    count = math.ceil(ratio - 1e-9)
    sizes = [block_mw] * (count - 1) + [capacity_mw - block_mw * (count - 1)]
    return [Product.grid(GridProductKey(kind, bus, tier, i + 1), risk, size) for i, size in enumerate(sizes)]


def products_from_study(study: CapacityStudy, block_mw: float | None = None) -> tuple[list[Product], list[Product]]:
    """The products of docs/models/auction.md#ca-4-1, per candidate bus in bus order: the firm item
    (c_i, 0, i), then one incremental item per risk tier (c^eps_k - c^eps_(k-1), eps_k, i), each
    split into blocks if asked.

    Returns (offered, withheld).
    """
    labels = tier_labels([t.risk for t in study.tiers])
    products: list[Product] = []
    for bus in study.candidates.buses:
        firm, *increments = study.increments_mw(bus)
        products += _blocks(FIRM, bus, None, 0.0, firm, block_mw)
        for tier, label, size in zip(study.tiers, labels, increments):
            products += _blocks(FLEX, bus, label, tier.risk, size, block_mw)
    return split_by_capacity(products)


def possible_families(candidates: Sequence[int], risk_levels: Sequence[float]) -> list[str]:
    """Every product id (without block numbers) a network config can produce, before any LP."""
    labels = tier_labels(risk_levels)
    return [pid for bus in candidates
            for pid in [product_id(FIRM, bus)] + [product_id(FLEX, bus, tier=label) for label in labels]]


@dataclass(frozen=True)
class SiteDefaults:
    """What the DSO assumes for a site the auction created (``[plan]`` defaults)."""

    stabilize_min: float
    imbalance_cost_per_mwh: float


def sites_with_flexible_capacity(products: Sequence[Product], allocation: Mapping[str, str | None],
                                 defaults: SiteDefaults) -> tuple[PlanSite, ...]:
    """The data centers whose demand shocks the DSO must plan for: every bus where flexible
    capacity was sold. The site's load is all the MW (firm and flexible) sold there; its owner,
    whose sites shock together, is the bidder holding most of those MW (ties: the first name)."""
    held: dict[int, dict[str, float]] = {}
    flexible: set[int] = set()
    for product in products:
        holder = allocation.get(product.id)
        if holder is None or product.bus is None:
            continue
        by_holder = held.setdefault(product.bus, {})
        by_holder[holder] = by_holder.get(holder, 0.0) + product.capacity_mw
        if product.risk > 0:
            flexible.add(product.bus)
    sites = []
    for bus in sorted(flexible):
        by_holder = held[bus]
        owner = min(by_holder, key=lambda name: (-by_holder[name], name))
        sites.append(PlanSite(bus, math.fsum(by_holder.values()), owner, defaults.stabilize_min,
                              defaults.imbalance_cost_per_mwh))
    return tuple(sites)
