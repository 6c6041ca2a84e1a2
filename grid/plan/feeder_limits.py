"""The feeder's voltage and line limits as rows over the sites' net deviations: docs/models/plan.md#fcm-feeder.

With the option on, Stage II keeps every minute's state of the feeder within its limits: the case's
loads (scaled), each data-center site at its scheduled load plus its deviation less what its
modules cover and what is shed, all at the sites' power factor. On the linear DistFlow of the
feeder (grid.network.radial) each limit is one linear row over the sites' net deviations n_i,

    sum_i A[r, i] n_i <= b[r]                                                        (#eq-f-limits)

a lower voltage limit at a feeder end (A = 2 (R + X tan phi) at the sites' buses) or a line's
rating (A = 1 for the sites below it). ``b`` is the room the row has before any shock, less a loss
allowance: the gap between the lossless linear state and the full DistFlow one at the heaviest
state any shock can cause, so that the rows keep the AC state within the limits too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from grid.errors import GridError
from grid.network.network import Network
from grid.network.radial import RadialFeeder, distflow, linear_distflow, power_factor_tan

# A shock moves a site's load by at most its whole schedule (grid.plan.shocks: depth <= 1), so no
# dispatched state loads a site past twice its schedule: the loss allowance is taken there.
HEAVIEST_SHOCK = 2.0


@dataclass(frozen=True)
class LimitSettings:
    """``[plan.feeder_limits]``."""

    v_min_pu: float = 0.95
    v_max_pu: float = 1.05
    head_voltage_pu: float = 1.0
    power_factor: float = 0.95
    background_scale: float = 1.0
    line_rating_mw: float | None = None  # every line's; None: the case's ratings


@dataclass(frozen=True)
class LimitRows:
    """The limits that a site's deviation can reach: sum_i a[r, i] n_i <= room[r] (#eq-f-limits)."""

    a: np.ndarray  # (rows, sites)
    room: np.ndarray  # (rows,) before any shock, less the loss allowance
    names: tuple[str, ...]  # "voltage at bus 18", "line 1-2"
    base_voltage_pu: np.ndarray  # (buses,) full DistFlow before any shock
    settings: LimitSettings

    @property
    def count(self) -> int:
        return len(self.names)


def _loads(feeder: RadialFeeder, sites: Sequence[tuple[int, float]], settings: LimitSettings,
           site_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """p, q of the case's loads (scaled) with each site (bus, MW) at ``site_scale`` times its schedule."""
    tan = power_factor_tan(settings.power_factor)
    p = feeder.p_mw * settings.background_scale
    q = feeder.q_mvar * settings.background_scale
    for bus, load in sites:
        p[feeder.position(bus)] += site_scale * load
        q[feeder.position(bus)] += site_scale * load * tan
    return p, q


def _ratings(feeder: RadialFeeder, network: Network, settings: LimitSettings) -> np.ndarray:
    """Each line's rating (MW), in the feeder's line order."""
    if settings.line_rating_mw is not None:
        return np.full(feeder.size - 1, settings.line_rating_mw)
    rating = {frozenset((line.from_bus, line.to_bus)): line.thermal_limit_mw for line in network.lines}
    return np.array([rating.get(frozenset((feeder.buses[feeder.parent[k]], feeder.buses[k])), math.inf)
                     for k in range(1, feeder.size)])


def limit_rows(feeder: RadialFeeder, network: Network, sites: Sequence[tuple[int, float]],
               settings: LimitSettings) -> LimitRows:
    """The rows of #eq-f-limits for sites (bus, scheduled MW), checked to hold before any shock.

    Only lower voltage limits at the feeder's ends and upper line limits: with loads alone, flows
    point away from the head and voltages fall along every path, so the ends are the lowest buses,
    no voltage rises past the head's, and a line's flow cannot turn negative (#eq-f-ends)."""
    check_settings(settings)
    tan = power_factor_tan(settings.power_factor)
    at = np.array([feeder.position(bus) for bus, _ in sites])
    r, x = feeder.shared()
    leaves = feeder.leaves()
    ratings = _ratings(feeder, network, settings)
    rated = [k for k in range(feeder.size - 1) if math.isfinite(ratings[k])]
    lines = feeder.line_names()
    names = tuple([f"voltage at bus {feeder.buses[k]}" for k in leaves] + [f"line {lines[k]}" for k in rated])
    a = np.vstack([2.0 * (r[leaves][:, at] + tan * x[leaves][:, at]), feeder.below()[rated][:, at]])

    head = settings.head_voltage_pu
    base = _loads(feeder, sites, settings, 1.0)
    w_lin, flow_lin = linear_distflow(feeder, *base, head)
    room = np.concatenate([w_lin[leaves] - settings.v_min_pu ** 2, ratings[rated] - flow_lin[rated]])
    _check_room(room, names, settings, "")
    heavy = _loads(feeder, sites, settings, HEAVIEST_SHOCK)
    try:
        w_heavy, flow_heavy, _ = distflow(feeder, *heavy, head)
    except GridError as error:
        raise GridError(f"plan.feeder_limits: every site at twice its load_mw, the heaviest a shock can make it: "
                        f"{error}; lower the sites' load_mw or plan.feeder_limits.background_scale") from None
    # The loss allowance: how far the full DistFlow's voltage lies below, and its flow above, the linear one's.
    w_heavy_lin, flow_heavy_lin = linear_distflow(feeder, *heavy, head)
    room = room - np.concatenate([(w_heavy_lin - w_heavy)[leaves], (flow_heavy - flow_heavy_lin)[rated]])
    _check_room(room, names, settings, ", with the loss allowance")
    # A row holds whatever the shocks do when even every site surging by its whole load (the most a
    # shock can ask, uncovered) stays within its room.
    keep = a @ np.array([load for _, load in sites]) > room
    base_w, _, _ = distflow(feeder, *base, head)
    return LimitRows(a[keep], room[keep], tuple(n for n, k in zip(names, keep) if k), np.sqrt(base_w), settings)


def _check_room(room: np.ndarray, names: Sequence[str], settings: LimitSettings, allowance: str) -> None:
    if np.all(room >= 0.0):
        return
    # Voltages first, then lines: their rooms are in different units.
    voltage = np.array([n.startswith("voltage") for n in names])
    broken = np.where(voltage & (room < 0.0), room, np.inf)
    worst = int(np.argmin(broken)) if np.isfinite(broken).any() else int(np.argmin(room))
    if names[worst].startswith("voltage"):
        level = math.sqrt(max(room[worst] + settings.v_min_pu ** 2, 0.0))
        short = f"{level:.4f} p.u. against v_min_pu {settings.v_min_pu:g}"
    else:
        short = f"{-room[worst]:.4g} MW over its rating"
    raise GridError(f"plan.feeder_limits: before any shock the feeder already breaks its {names[worst]} limit ({short} "
                    f"on the linear DistFlow{allowance}); lower the sites' load_mw or plan.feeder_limits.background_scale,"
                    " or relax v_min_pu or line_rating_mw, or raise head_voltage_pu")


def check_settings(settings: LimitSettings) -> None:
    """What the config schema cannot see across fields."""
    if not settings.v_min_pu < settings.head_voltage_pu <= settings.v_max_pu:
        raise GridError(f"plan.feeder_limits.head_voltage_pu: {settings.head_voltage_pu:g} p.u. must lie above v_min_pu "
                        f"({settings.v_min_pu:g}) and at most v_max_pu ({settings.v_max_pu:g}); with loads alone no bus "
                        "is higher than the head")
