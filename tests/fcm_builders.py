"""Tiny, hand-checkable instances of the flexible-capacity-module (FCM) model for the tests.

Travel times come from the built-in IEEE 33-bus feeder with 1 km line sections driven at
60 km/h, so that tau_{d,i} = activation_min + (lines between hub and site) minutes. Shock
scenarios are written by hand (one deviation profile per scenario and site) rather than drawn,
so that every Stage II cost can be worked out on paper.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from grid.network.cases import load_case
from grid.network.network import Network
from grid.plan.data import Hub, ModuleType, PlanData, PlanSite, Supplier, travel_minutes
from grid.plan.shocks import ShockScenarios, ShockSettings, ShockSite

SECTION_KM = 1.0
SPEED_KMH = 60.0  # with SECTION_KM: one minute per line section


@lru_cache(maxsize=None)
def feeder() -> Network:
    return load_case("ieee33bw")


def generator(name: str = "gen", *, unit_mw: float = 0.5, ramp_mw_per_min: float = 10.0,
              transport_cost_per_km: float = 1.0) -> ModuleType:
    return ModuleType(name, "generator", unit_mw, transport_cost_per_km, ramp_mw_per_min=ramp_mw_per_min)


def storage(name: str = "bess", *, unit_mw: float = 0.5, energy_mwh: float = 0.1, initial_soc: float = 0.5,
            eta_charge: float = 1.0, eta_discharge: float = 1.0, transport_cost_per_km: float = 1.0) -> ModuleType:
    return ModuleType(name, "storage", unit_mw, transport_cost_per_km, energy_mwh=energy_mwh,
                      eta_charge=eta_charge, eta_discharge=eta_discharge, initial_soc=initial_soc)


def demand_response(name: str = "dr", *, unit_mw: float = 0.5, energy_mwh: float = 0.02,
                    transport_cost_per_km: float = 1.0) -> ModuleType:
    return ModuleType(name, "demand_response", unit_mw, transport_cost_per_km, energy_mwh=energy_mwh)


def site(bus: int, *, load_mw: float = 1.0, owner: str = "acme", stabilize_min: float = 4.0,
         imbalance_cost_per_mwh: float = 1000.0) -> PlanSite:
    return PlanSite(bus, load_mw, owner, stabilize_min, imbalance_cost_per_mwh)


def plan_data(modules: Sequence[ModuleType], hubs: Sequence[Hub], suppliers: Sequence[Supplier],
              sites: Sequence[PlanSite], *, ens_cost_per_mwh: float = 5000.0, window_min: float = 10.0,
              travel_min: np.ndarray | None = None) -> PlanData:
    """A PlanData on the 33-bus feeder; travel times from the feeder unless given."""
    if travel_min is None:
        travel_min = travel_minutes(feeder(), hubs, sites, section_km=SECTION_KM, speed_kmh=SPEED_KMH)
    return PlanData(network_name="ieee33bw", modules=tuple(modules), hubs=tuple(hubs), suppliers=tuple(suppliers),
                    sites=tuple(sites), travel_min=np.asarray(travel_min, dtype=float),
                    ens_cost_per_mwh=ens_cost_per_mwh, window_min=window_min)


def settings(window_min: float = 10.0, step_min: float = 1.0) -> ShockSettings:
    return ShockSettings(window_min=window_min, step_min=step_min)


def hand_shocks(data: PlanData, profiles: np.ndarray, *, step_min: float = 1.0,
                disturbed_h: np.ndarray | None = None) -> ShockScenarios:
    """Scenarios from hand-written deviations ``profiles[s, i, k]`` (MW, + surge, - drop).

    Each (scenario, site) with a non-zero profile has an event whose onset is its first
    non-zero step and which is disturbed from there to the end of its last non-zero step
    (unless ``disturbed_h`` says otherwise).
    """
    shock_settings = settings(data.window_min, step_min)
    profiles = np.asarray(profiles, dtype=float)
    count, n, steps = profiles.shape
    assert steps == shock_settings.steps and n == len(data.sites)
    onset = np.full((count, n), np.nan)
    hours = np.zeros((count, n))
    kind = np.full((count, n), -1)
    depth = np.full((count, n), np.nan)
    for s in range(count):
        for i in range(n):
            nonzero = np.flatnonzero(profiles[s, i] != 0.0)
            if nonzero.size == 0:
                continue
            onset[s, i] = nonzero[0] * step_min
            hours[s, i] = (nonzero[-1] + 1 - nonzero[0]) * step_min / 60.0
            row = profiles[s, i]
            kind[s, i] = 2 if (row > 0).any() and (row < 0).any() else (1 if (row > 0).any() else 0)
            depth[s, i] = np.abs(row).max() / data.sites[i].load_mw
    if disturbed_h is not None:
        hours = np.asarray(disturbed_h, dtype=float)
    sites = tuple(ShockSite(p.bus, p.load_mw, p.owner) for p in data.sites)
    return ShockScenarios(sites=sites, settings=shock_settings, deviation_mw=profiles, kind=kind,
                          onset_min=onset, disturbed_h=hours, depth_fraction=depth)


def block(steps: int, first: int, length: int, mw: float) -> np.ndarray:
    """A rectangular deviation of ``mw`` over steps first .. first + length - 1."""
    row = np.zeros(steps)
    row[first:first + length] = mw
    return row


# --- The two-site instance of the brute-force, frontier and DRO tests -------------------------
#
# Site A at bus 18 (end of the main feeder), site B at bus 22 (end of the lateral from bus 2).
# Hub H1 at bus 17 is one line from A, hub H2 at bus 21 one line from B; each activates in 1 min,
# so tau = 2 min to its own site and 20 min (beyond the 10-min window) to the other one.
# One supplier holds 2 generators and 1 battery. Four scenarios, all 0.5 MW for a few minutes:
#   s0: surge at A (6 min)   s1: drop at A (6 min)   s2: surge at A (5 min)   s3: surge at A and B.
# A battery at H1 covers every event at A (it charges and discharges); a generator at H2 covers
# only B's event in s3, the tail: worth it under CVaR, not on average.

TWO_SITE_STEPS = 10


def two_site_data() -> PlanData:
    modules = (generator("gen", unit_mw=0.5, ramp_mw_per_min=10.0, transport_cost_per_km=2.0),
               storage("bess", unit_mw=0.5, energy_mwh=0.1, initial_soc=0.5, transport_cost_per_km=15.0))
    hubs = (Hub("H1", 17, 100.0, 2, 1.0), Hub("H2", 21, 200.0, 2, 1.0))
    suppliers = (Supplier("S", {"gen": 2, "bess": 1}, {"H1": 10.0, "H2": 20.0}),)
    return plan_data(modules, hubs, suppliers, (site(18), site(22)))


def two_site_shocks(data: PlanData) -> ShockScenarios:
    t = TWO_SITE_STEPS
    profiles = np.zeros((4, 2, t))
    profiles[0, 0] = block(t, 2, 6, 0.5)
    profiles[1, 0] = block(t, 2, 6, -0.5)
    profiles[2, 0] = block(t, 3, 5, 0.5)
    profiles[3, 0] = block(t, 2, 6, 0.5)
    profiles[3, 1] = block(t, 2, 6, 0.5)
    return hand_shocks(data, profiles)
