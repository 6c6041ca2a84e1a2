"""What `dcmarket headroom` writes and prints: headroom.csv (per bus), totals.csv (per level),
summary.json, the duration plot and the map (sim/report/figures/headroom.py), the report.

Every number is labelled for what it is: a bus's *stand-alone* headroom (that bus alone takes
new load; the sum over buses is not deliverable at once) or the *joint* allocation (every bus at
once, from the capacity study on the hours, with CVaR standing in for the count of hours).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from grid.capacity.headroom import FOLLOWING, Headroom, JointHeadroom, allowed_hours
from grid.network.network import Network
from sim.report.text import format_table, mw

HEADROOM = "headroom.csv"
TOTALS = "totals.csv"
DURATION = "headroom_duration.png"
MAP = "headroom_map.png"
# A copy of the hourly file a study read (.csv, .parquet or .m), beside its config.toml.
HOURLY_COPY = "hourly"
TOTAL_COLUMNS = ("level", "hours_allowed", "standalone_sum_mw", "buses_with_headroom", "buses_at_zero",
                 "buses_without_limit", "joint_mw")
STANDALONE = ("stand-alone: each bus alone takes new load (no other new load on the network); the sum over "
              "buses is NOT deliverable at once")
JOINT = ("joint: every bus at once, the capacity study's nested tiers on the hours as equally likely scenarios, "
         "partial draws; level 0 holds in every hour, a level p > 0 bounds CVaR_p of each limit's background (a "
         "conservative stand-in, per limit, for 'curtailed in at most p of the hours'; a bus touching several "
         "limits can be curtailed in more hours)")


@dataclass(frozen=True, eq=False)
class HeadroomOutcome:
    """Everything the files and the report are made of."""

    network: Network
    buses: tuple[int, ...]
    hours: tuple[str, ...]
    source: str
    following: str
    headroom: Headroom
    joint: JointHeadroom | None
    joint_note: str
    top: tuple[int, ...]                 # candidate columns, largest headroom at the top level first
    series: np.ndarray                   # (top, T) their hourly headroom


def tag(level: float) -> str:
    """A level in column names: "firm", "p0.25" (0.25 % of hours)."""
    return "firm" if level == 0 else f"p{level * 100:g}"


def level_text(level: float) -> str:
    return "firm (every hour)" if level == 0 else f"{level * 100:g} % of hours"


def headroom_columns(levels: Sequence[float], joint: bool) -> tuple[str, ...]:
    columns = ["bus"]
    for level in levels:
        t = tag(level)
        columns += [f"{t}_mw", f"{t}_hours_curtailed", f"{t}_energy_curtailed", f"{t}_binding_limit",
                    f"{t}_binding_hour"]
    if joint:
        columns += [f"joint_{tag(level)}_mw" for level in levels]
    return tuple(columns)


def headroom_rows(outcome: HeadroomOutcome) -> list[dict[str, Any]]:
    """One row per bus (bus order): MW per level (empty: no limit), the hours curtailed and the
    share of the energy, the limit and the hour that set it; the joint allocation."""
    h, rows = outcome.headroom, []
    for k, bus in enumerate(outcome.buses):
        row: dict[str, Any] = {"bus": bus}
        for j, level in enumerate(h.levels):
            t, value = tag(level), float(h.capacity_mw[k, j])
            hour = int(h.binding_hour[k, j])
            row.update({f"{t}_mw": _number(value), f"{t}_hours_curtailed": int(round(h.hours_curtailed[k, j] * h.hours)),
                        f"{t}_energy_curtailed": _share(h.energy_curtailed[k, j]), f"{t}_binding_limit": h.binding[k][j],
                        f"{t}_binding_hour": outcome.hours[hour] if hour >= 0 else ""})
        if outcome.joint is not None:
            row.update({f"joint_{tag(level)}_mw": _number(float(outcome.joint.capacity_mw[k, j]))
                        for j, level in enumerate(h.levels)})
        rows.append(row)
    return rows


def _number(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def _share(value: float) -> float:
    return float(f"{value:.6g}")


def total_rows(outcome: HeadroomOutcome) -> list[dict[str, Any]]:
    h = outcome.headroom
    rows = []
    for j, level in enumerate(h.levels):
        values = h.capacity_mw[:, j]
        finite = np.isfinite(values)
        rows.append({
            "level": level, "hours_allowed": allowed_hours(level, h.hours),
            "standalone_sum_mw": round(float(values[finite].sum()), 6),
            "buses_with_headroom": int(np.sum(finite & (values > 0))), "buses_at_zero": int(np.sum(values <= 0)),
            "buses_without_limit": int(np.sum(~finite)),
            "joint_mw": None if outcome.joint is None else round(float(outcome.joint.total_mw[j]), 6),
        })
    return rows


def summary(outcome: HeadroomOutcome, seed: int, solver: str) -> dict[str, Any]:
    h = outcome.headroom
    return {
        "seed": seed,
        "solver": solver,
        "units": {"headroom": "MW", "hours_curtailed": "hours", "energy_curtailed": "1 (of the energy x T)"},
        "headroom": {
            "case": outcome.network.name,
            "hours": {"count": h.hours, "source": outcome.source, "first": outcome.hours[0], "last": outcome.hours[-1]},
            "following": {"rule": outcome.following, "means": FOLLOWING[outcome.following]},
            "slack": outcome.network.slack,
            "buses": len(outcome.buses),
            "levels": list(h.levels),
            "standalone": STANDALONE,
            "joint": JOINT if outcome.joint is not None else outcome.joint_note,
            "joint_request_mw": None if outcome.joint is None else outcome.joint.request_mw,
            "joint_capped_buses": [] if outcome.joint is None else list(outcome.joint.capped),
            "totals": total_rows(outcome),
            "top": [{"bus": outcome.buses[k], **{f"{tag(level)}_mw": _number(float(h.capacity_mw[k, j]))
                                                 for j, level in enumerate(h.levels)},
                     "binding_limit": h.binding[k][-1]} for k in outcome.top],
            "overloaded_by_background": [{"limit": name, "hours": hours} for name, hours in h.overloaded],
            "pairs_evaluated": h.pairs,
        },
    }


def report(outcome: HeadroomOutcome) -> str:
    h = outcome.headroom
    totals = total_rows(outcome)
    head = (f"Hourly headroom on '{outcome.network.name}' ({len(outcome.buses):,} buses, {outcome.source}; "
            f"generation following: {outcome.following}, slack {outcome.network.slack})")
    table = format_table(
        ["level", "hours allowed", "stand-alone sum (MW)", "buses > 0", "joint (MW)"],
        [(level_text(r["level"]), r["hours_allowed"], mw(r["standalone_sum_mw"]), r["buses_with_headroom"],
          "-" if r["joint_mw"] is None else mw(r["joint_mw"])) for r in totals],
        [False, True, True, True, True])
    top = format_table(
        ["bus", *[f"{level_text(level)} (MW)" for level in h.levels], "binding at the highest level"],
        [(outcome.buses[k], *[_mw_or_none(h.capacity_mw[k, j]) for j in range(len(h.levels))], h.binding[k][-1])
         for k in outcome.top],
        [True] * (len(h.levels) + 1) + [False])
    notes = [f"  {STANDALONE}.", f"  {JOINT if outcome.joint is not None else outcome.joint_note}."]
    if h.overloaded:
        notes.append(f"  {len(h.overloaded)} limit(s) are broken by the background alone in some hour (worst: "
                     f"{max(h.overloaded, key=lambda item: item[1])[0]}, {max(n for _, n in h.overloaded)} hours): "
                     "buses that touch one get 0 MW in those hours.")
    return "\n".join([head, table, "", f"Top {len(outcome.top)} buses (stand-alone):", top, "", *notes])


def _mw_or_none(value: float) -> str:
    return mw(float(value)) if math.isfinite(value) else "no limit"


def figure_drawers(outcome: HeadroomOutcome) -> dict[str, Callable[..., None]]:
    """The duration plot and the map, by file name (drawn by sim.report.figures.plots.figure_bytes)."""
    from sim.report.figures.headroom import plot_duration, plot_headroom_map

    h = outcome.headroom
    name = outcome.network.name
    buses = [outcome.buses[k] for k in outcome.top]
    series = {bus: outcome.series[i] for i, bus in enumerate(buses)}
    at_levels = {bus: h.capacity_mw[k] for bus, k in zip(buses, outcome.top)}
    count = h.lowest_mw.shape[1]
    shares = np.arange(count) / h.hours
    lowest = np.where(np.isfinite(h.lowest_mw), h.lowest_mw, 0.0)
    totals = (shares, lowest.sum(axis=0))
    joint = None if outcome.joint is None else outcome.joint.total_mw
    firm, top_level = _finite_map(outcome, 0), _finite_map(outcome, len(h.levels) - 1)
    lines = sorted({limit.split(" ")[1] for limit, _ in h.overloaded if limit.startswith("line ")})
    return {
        DURATION: lambda path: plot_duration(series, h.levels, at_levels, totals, joint, path,
                                             title=f"Hourly headroom on {name} ({h.hours:,} hours)"),
        MAP: lambda path: plot_headroom_map(outcome.network, firm, top_level, h.levels[-1], path,
                                            title=f"Stand-alone headroom for new load on {name} (each bus alone: the totals are not deliverable at once)",
                                            overloaded_lines=lines, highlight_buses=buses),
    }


def _finite_map(outcome: HeadroomOutcome, level: int) -> dict[int, float]:
    values = outcome.headroom.capacity_mw[:, level]
    return {bus: float(v) for bus, v in zip(outcome.buses, values.tolist()) if math.isfinite(v)}
