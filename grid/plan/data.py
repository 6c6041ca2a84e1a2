"""What the flexible-capacity plan is made of: module types, staging hubs, suppliers, sites.

The sets of docs/models/plan.md#fcm-2. Suppliers G hold inventories Gg(g, l) of module types L;
staging hubs D (at feeder buses) can be opened at a set-up cost c_d and hold at most Dmax(d)
units; load nodes i are data-center buses. Every check here raises a GridError that names the
field (``plan.hubs[1].bus``, ``plan.suppliers[0].inventory``, ...) and says the fix, so a plan
never reaches the solver with data it cannot mean.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from grid.errors import GridError
from grid.network.network import Network
from grid.plan.feeder_limits import LimitRows

# What each module kind can do in Stage II ((F-10) to (F-12), docs/models/plan.md#fcm-technologies).
# Storage supplies and absorbs power within its state of charge; a fast generator and a
# demand-response contract only supply (cover a surge), the generator within its ramp rate, demand
# response within its energy.
MODULE_KINDS = ("storage", "generator", "demand_response")


@dataclass(frozen=True)
class ModuleType:
    """One flexible capacity module type l; power and energy are per unit."""

    name: str
    kind: str
    unit_mw: float
    transport_cost_per_km: float  # b_l, $ per unit and km
    energy_mwh: float | None = None  # storage: capacity E_max; demand response: curtailable energy
    eta_charge: float = 0.95
    eta_discharge: float = 0.95
    initial_soc: float = 0.5  # storage: share of E_max charged when the event starts
    ramp_mw_per_min: float | None = None  # generator: R_max per unit

    @property
    def absorbs(self) -> bool:
        """Can it take power in (cover a drop)? Only storage charges."""
        return self.kind == "storage"


@dataclass(frozen=True)
class Hub:
    name: str
    bus: int
    setup_cost: float  # c_d, $
    capacity_units: int  # Dmax(d)
    activation_min: float  # from the start of an event to a module leaving the hub


@dataclass(frozen=True)
class Supplier:
    name: str
    inventory: Mapping[str, int]  # Gg(g, l): units by module type
    distance_km: Mapping[str, float]  # s_gd: by hub name


@dataclass(frozen=True)
class PlanSite:
    """A data-center bus i: its scheduled load, owner (for correlated shocks), stabilization
    window T_stab(i) and the penalty P_i on each MWh of imbalance left uncovered."""

    bus: int
    load_mw: float
    owner: str
    stabilize_min: float
    imbalance_cost_per_mwh: float


@dataclass(frozen=True)
class PlanData:
    """Everything the two-stage model needs apart from the shock scenarios."""

    network_name: str
    modules: tuple[ModuleType, ...]
    hubs: tuple[Hub, ...]
    suppliers: tuple[Supplier, ...]
    sites: tuple[PlanSite, ...]
    # tau_{d,i}: minutes from the start of an event until a module from hub d is at site i.
    travel_min: np.ndarray = field(repr=False)
    ens_cost_per_mwh: float  # gamma in (5)
    window_min: float
    # The config field that set each site's T_stab, for errors: "plan.sites[k].stabilize_min" for
    # a listed site, "plan.stabilize_min" where the [plan] default applies (e.g. sites from an auction).
    stabilize_fields: tuple[str, ...] = ()
    # The feeder's voltage and line limits in Stage II (docs/models/plan.md#fcm-feeder); None: off.
    limits: LimitRows | None = None

    def stabilize_field(self, site: int) -> str:
        if site < len(self.stabilize_fields):
            return self.stabilize_fields[site]
        return f"plan.sites[{site}].stabilize_min"

    def inventory(self) -> np.ndarray:
        """Gg as an array (supplier, module)."""
        return np.array([[s.inventory.get(m.name, 0) for m in self.modules] for s in self.suppliers], dtype=int)

    def distance(self) -> np.ndarray:
        """s_gd as an array (supplier, hub); NaN where a supplier does not serve a hub."""
        return np.array([[s.distance_km.get(h.name, math.nan) for h in self.hubs] for s in self.suppliers])

    def unit_bound(self, hub: int, module: int) -> int:
        """The most units of one type a hub can ever hold: its capacity, or all the stock there is."""
        reachable = [s.inventory.get(self.modules[module].name, 0) for s in self.suppliers
                     if self.hubs[hub].name in s.distance_km]
        return int(min(self.hubs[hub].capacity_units, sum(reachable)))


def feeder_hops(network: Network, source: int) -> dict[int, int]:
    """Lines on the shortest path from ``source`` to every bus (breadth-first on the feeder)."""
    neighbours: dict[int, list[int]] = {b.number: [] for b in network.buses}
    for line in network.lines:
        neighbours[line.from_bus].append(line.to_bus)
        neighbours[line.to_bus].append(line.from_bus)
    hops = {source: 0}
    queue = deque([source])
    while queue:
        bus = queue.popleft()
        for other in neighbours[bus]:
            if other not in hops:
                hops[other] = hops[bus] + 1
                queue.append(other)
    return hops


def travel_minutes(network: Network, hubs: Sequence[Hub], sites: Sequence[PlanSite], *,
                   section_km: float, speed_kmh: float,
                   explicit: Mapping[str, Mapping[int, float]] | None = None) -> np.ndarray:
    """tau_{d,i} = activation time + road time along the feeder [ours].

    The paper leaves tau open. Modules travel by road from the hub to the site; the road follows
    the feeder, each line section ``section_km`` long, at ``speed_kmh``. ``explicit`` (minutes by
    hub name and site bus) replaces the road time where a planner knows it.
    """
    explicit = explicit or {}
    tau = np.empty((len(hubs), len(sites)))
    for d, hub in enumerate(hubs):
        hops = feeder_hops(network, hub.bus)
        for i, site in enumerate(sites):
            given = explicit.get(hub.name, {})
            road = given[site.bus] if site.bus in given else 60.0 * hops[site.bus] * section_km / speed_kmh
            tau[d, i] = hub.activation_min + road
    return tau


def check_buses(network: Network, hubs: Sequence[Hub], sites: Sequence[PlanSite]) -> None:
    """Every hub and site is on the network (before anything walks the feeder to them)."""
    buses = {b.number for b in network.buses}
    for table, items in (("hubs", hubs), ("sites", sites)):
        for k, item in enumerate(items):
            if item.bus not in buses:
                raise GridError(f"plan.{table}[{k}].bus: bus {item.bus} is not on {network.name}; "
                                f"choose a bus between {min(buses)} and {max(buses)}")


def check_catalogue(modules: Sequence[ModuleType], hubs: Sequence[Hub], suppliers: Sequence[Supplier],
                    network: Network) -> None:
    """What can be checked before the sites are known (a run checks it before its auction): module
    types, hubs and suppliers, and what they name. The one place for these rules; the config
    schema only checks types and ranges."""
    names = [m.name for m in modules]
    if not modules:
        raise GridError("plan.modules: no module types; list at least one [[plan.modules]]")
    for k, m in enumerate(modules):
        where = f"plan.modules[{k}]"
        if m.name in names[:k]:
            raise GridError(f"{where}.name: module type {m.name!r} is listed twice; give each type once")
        if m.kind not in MODULE_KINDS:
            raise GridError(f"{where}.kind: unknown kind {m.kind!r}; choose one of {', '.join(MODULE_KINDS)}")
        if m.kind in ("storage", "demand_response") and m.energy_mwh is None:
            raise GridError(f"{where}.energy_mwh: a {m.kind} module needs its energy per unit (MWh)")
        if m.kind == "generator" and m.energy_mwh is not None:
            raise GridError(f"{where}.energy_mwh: applies to storage and demand response, not to a generator; remove it")
        if m.kind == "generator" and m.ramp_mw_per_min is None:
            raise GridError(f"{where}.ramp_mw_per_min: a generator module needs its ramp rate per unit (MW/min)")
        if m.kind != "generator" and m.ramp_mw_per_min is not None:
            raise GridError(f"{where}.ramp_mw_per_min: applies to generators, not to a {m.kind} module; remove it")
    if not hubs:
        raise GridError("plan.hubs: no candidate staging hubs; list at least one [[plan.hubs]]")
    hub_names = [h.name for h in hubs]
    for k, supplier in enumerate(suppliers):
        if supplier.name in [g.name for g in suppliers[:k]]:
            raise GridError(f"plan.suppliers[{k}].name: supplier {supplier.name!r} is listed twice; give each once")
        for module, units in supplier.inventory.items():
            if module not in names:
                raise GridError(f"plan.suppliers[{k}].inventory.{module}: unknown module type {module!r}; "
                                f"choose one of {', '.join(names)}")
            if units < 0:
                raise GridError(f"plan.suppliers[{k}].inventory.{module}: {units} units is negative; "
                                "give a non-negative number of units")
        for hub in supplier.distance_km:
            if hub not in hub_names:
                raise GridError(f"plan.suppliers[{k}].distance_km.{hub}: unknown hub {hub!r}; "
                                f"choose one of {', '.join(hub_names)}")
    check_buses(network, hubs, ())
    for k, hub in enumerate(hubs):
        if hub.name in hub_names[:k]:
            raise GridError(f"plan.hubs[{k}].name: hub {hub.name!r} is listed twice; give each hub once")
        if not any(hub.name in s.distance_km for s in suppliers):
            raise GridError(f"plan.hubs[{k}]: hub {hub.name!r} is unreachable: no supplier lists a distance to it; "
                            "add it to a supplier's distance_km or remove the hub")
    if not suppliers or sum(sum(s.inventory.values()) for s in suppliers) == 0:
        raise GridError("plan.suppliers: no supplier holds any module; give at least one a positive inventory")


def check_plan_data(data: PlanData, network: Network) -> None:
    """Field-named errors for data the model cannot mean (docs/models/plan.md#fcm-7, "invalid
    data"): the catalogue, then the sites against the hubs' travel times and the event window."""
    check_catalogue(data.modules, data.hubs, data.suppliers, network)
    if not data.sites:
        raise GridError("plan.sites: no data-center sites to protect; list [[plan.sites]] or run after an auction "
                        "that sold flexible capacity")
    check_buses(network, (), data.sites)
    site_buses = [s.bus for s in data.sites]
    for k, site in enumerate(data.sites):
        if site.bus in site_buses[:k]:
            raise GridError(f"plan.sites[{k}].bus: bus {site.bus} is listed twice; give each site once")
    for d, hub in enumerate(data.hubs):
        if np.all(data.travel_min[d] >= data.window_min):
            raise GridError(f"plan.hubs[{d}]: hub {hub.name!r} is unreachable: its modules reach no site within the "
                            f"{data.window_min:g}-min event window; move it closer or remove it")
    for k, site in enumerate(data.sites):
        field = data.stabilize_field(k)
        if site.stabilize_min > data.window_min:
            raise GridError(f"{field}: {site.stabilize_min:g} min (bus {site.bus}) is longer than the event window "
                            f"({data.window_min:g} min); shorten it or lengthen plan.shocks.window_min")
        fastest = int(np.argmin(data.travel_min[:, k]))
        if data.travel_min[fastest, k] > site.stabilize_min:
            raise GridError(
                f"{field}: {site.stabilize_min:g} min is shorter than the fastest arrival at "
                f"bus {site.bus} ({data.travel_min[fastest, k]:.1f} min from hub {data.hubs[fastest].name!r}); "
                "lengthen the window, or add a closer or faster-activating hub"
            )
