"""Figures (PNG) of the DLMP study: voltage profiles per phase, the unbalance index at the
data-center buses, the DLMP map and the aggregator's cost, for each placement compared.

As in sim/report/figures/plots.py: matplotlib is imported inside the functions, figures are bare ``Figure``
objects on the Agg canvas, written atomically with no timestamps (same inputs, same bytes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from grid.feeder.bilevel import DataCenterSite
from grid.feeder.opf import OpfResult
from grid.network.cases import load_case
from grid.network.layout import bus_positions
from grid.network.three_phase import PHASE_NAMES, ThreePhaseFeeder, voltage_unbalance
from sim.config.price import CASE_TITLES
from sim.report.figures.plots import DPI, _write_png_atomically, hide_axes

_CASE_COLOURS = {"pro-rata": "#7f7f7f", "price-taking": "#ff7f0e", "no-svg": "#d62728", "svg": "#1f77b4"}


def plot_voltage_profile(feeder: ThreePhaseFeeder, solved: Mapping[str, OpfResult], distance: Mapping[int, float],
                         sites: Sequence[DataCenterSite], summary: Mapping[str, Any], path: Path,
                         when: str = "") -> None:
    """One panel per phase: every bus's voltage against its distance from the head, one colour
    per placement, the feeder drawn segment by segment, the band's floor dashed, the sites marked;
    ``when`` names the period drawn (" at <hour>") on a day."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(15.0, 4.8))
    axes = figure.subplots(1, 3, sharey=True)
    floor = summary["voltage_band_pu"][0]
    for k, ax in enumerate(axes):
        for case, opf in solved.items():
            colour = _CASE_COLOURS[case]
            _segments(ax, [((distance[s.from_bus], opf.voltage_pu[s.from_bus][k]),
                            (distance[s.to_bus], opf.voltage_pu[s.to_bus][k])) for s in feeder.segments
                           if k in s.phases], color=colour, linewidth=1.3, alpha=0.85)
            ax.scatter([distance[s.bus] for s in sites], [opf.voltage_pu[s.bus][k] for s in sites], marker="s",
                       s=40, color=colour, zorder=3, label=CASE_TITLES[case])
        for n, s in enumerate(sites):  # staggered: sites at the same distance would overlap
            ax.annotate(f"DC {s.bus}", (distance[s.bus], floor), xytext=(0, 3 + 9 * n), textcoords="offset points",
                        fontsize=7, ha="center")
        ax.axhline(floor, color="black", linestyle="--", linewidth=1.0)
        ax.set_title(f"phase {PHASE_NAMES[k]}", fontsize=10)
        ax.set_xlabel("distance from the substation (km)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("voltage magnitude (p.u.)")
    axes[0].legend(fontsize=8, loc="lower left")
    figure.suptitle(f"Voltage along the {feeder.name} feeder per phase{when} (dashed: the {floor:g} p.u. floor; "
                    "squares: data-center sites)", fontsize=11)
    figure.tight_layout()
    _write_png_atomically(figure, path, DPI)


def plot_unbalance(sites: Sequence[DataCenterSite], solved: Mapping[str, OpfResult], path: Path,
                   when: str = "") -> None:
    """The unbalance index at each data-center bus, bars grouped by site, one per placement."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.5))
    ax = figure.subplots()
    width = 0.8 / max(len(solved), 1)
    x = np.arange(len(sites))
    for n, (case, opf) in enumerate(solved.items()):
        values = [100 * voltage_unbalance(opf.voltage_pu[s.bus]) for s in sites]
        bars = ax.bar(x + (n - (len(solved) - 1) / 2) * width, values, width, color=_CASE_COLOURS[case],
                      label=CASE_TITLES[case])
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, [f"bus {s.bus}" for s in sites])
    ax.set_ylabel("voltage unbalance (%, max deviation from the phase mean)")
    ax.set_title(f"Phase unbalance at the data-center buses{when}", fontsize=11)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    _write_png_atomically(figure, path, DPI)


def plot_dlmp_map(feeder: ThreePhaseFeeder, solved: Mapping[str, OpfResult], sites: Sequence[DataCenterSite],
                  path: Path, when: str = "") -> None:
    """The feeder drawn as a tree from the substation, each bus coloured by its DLMP: one row per
    placement, one column per phase, one colour scale for all panels."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    xy = bus_positions(load_case(feeder.name))
    cases = list(solved)
    prices = np.array([opf.dlmp_p[b] for opf in solved.values() for b in opf.dlmp_p])
    low, high = float(np.nanmin(prices)), float(np.nanmax(prices))   # NaN: a phase a bus lacks
    norm = Normalize(low, high if high - low > 0.5 else low + 0.5)  # a flat map still needs a scale
    figure = Figure(figsize=(13.0, 3.9 * len(cases) + 0.6))
    axes = np.atleast_2d(figure.subplots(len(cases), 3))
    site_buses = {s.bus for s in sites}
    load_buses = [b for b in feeder.buses if b != feeder.head_bus]
    for row, case in enumerate(cases):
        opf = solved[case]
        for k in range(3):
            ax = axes[row, k]
            _segments(ax, [(xy[s.from_bus], xy[s.to_bus]) for s in feeder.segments], color="0.7", linewidth=1.2,
                      zorder=1)
            on_phase = [b for b in load_buses if k in feeder.bus_phases[b]]
            ax.scatter([xy[b][0] for b in on_phase], [xy[b][1] for b in on_phase],
                       c=[opf.dlmp_p[b][k] for b in on_phase], cmap="viridis", norm=norm, s=38, zorder=2)
            ax.scatter([xy[b][0] for b in site_buses], [xy[b][1] for b in site_buses], marker="s", s=110,
                       facecolors="none", edgecolors="#d62728", linewidths=1.6, zorder=3)
            head = xy[feeder.head_bus]
            ax.scatter([head[0]], [head[1]], marker="^", s=90, color="black", zorder=3)
            phase_prices = [opf.dlmp_p[b][k] for b in on_phase]
            ax.set_title(f"phase {PHASE_NAMES[k]}: {min(phase_prices):.1f} to {max(phase_prices):.1f} $/MWh", fontsize=9)
            hide_axes(ax)
        axes[row, 0].text(-0.08, 0.5, CASE_TITLES[case], transform=axes[row, 0].transAxes, rotation=90,
                          ha="center", va="center", fontsize=10, fontweight="bold")
    figure.colorbar(ScalarMappable(norm=norm, cmap="viridis"), ax=axes, label="DLMP ($/MWh)", shrink=0.8)
    figure.suptitle(f"DLMPs on {feeder.name}{when} (triangle: substation; red squares: data-center sites)",
                    fontsize=11)
    _write_png_atomically(figure, path, DPI)


def _segments(ax: Any, segments: Sequence[tuple[tuple[float, float], tuple[float, float]]], **style: Any) -> None:
    """Each segment as its own line, drawn as one collection: the pixels of one ``ax.plot`` per
    segment (same caps, joins and order), without matplotlib's cost per line."""
    from matplotlib.collections import LineCollection

    lines = LineCollection(segments, capstyle="projecting", joinstyle="round", **style)
    ax.add_collection(lines)


def plot_costs(summary: Mapping[str, Any], path: Path) -> None:
    """The aggregator's payment per placement: $/h in a snapshot, $ over the hours on a day."""
    from matplotlib.figure import Figure

    cases = [c for c, v in summary["cases"].items() if v["feasible"]]
    figure = Figure(figsize=(7.5, 4.3))
    ax = figure.subplots()
    x = np.arange(len(cases))
    one = len(summary["periods"]) == 1
    unit = "$/h" if one else "$"
    payment = [summary["cases"][c]["payment_usd_per_h" if one else "payment_usd"] for c in cases]
    bars = ax.bar(x, payment, 0.6, color=[_CASE_COLOURS[c] for c in cases])
    average = [summary["cases"][c]["average_price_usd_per_mwh"] for c in cases]  # None: no load placed
    ax.bar_label(bars, labels=[f"{p:,.2f} {unit}\n" + ("-" if a is None else f"{a:.2f} $/MWh")
                               for p, a in zip(payment, average)], fontsize=8)
    ax.set_xticks(x, [CASE_TITLES[c] for c in cases], fontsize=8)
    ax.set_ylabel(f"aggregator's payment ({unit})")
    ax.set_ylim(0, max(payment) * 1.25 if payment and max(payment) > 0 else 1)
    infeasible = [CASE_TITLES[c] for c, v in summary["cases"].items() if not v["feasible"]]
    note = f" ({', '.join(infeasible)}: breaks a voltage limit)" if infeasible else ""
    work, hours = summary["workload"], len(summary["periods"])
    load = (f"{work['total_kw']:g} kW" if one else f"the servers' work over {hours} hours" if work["energy_mwh"] is None
            else f"{work['energy_mwh']:g} MWh over {hours} hours")
    ax.set_title(f"What the aggregator pays for {load} at the DLMPs{note}", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    _write_png_atomically(figure, path, DPI)


def plot_day(summary: Mapping[str, Any], path: Path) -> None:
    """A day hour by hour, three panels over one time axis: the substation's price and the
    highest DLMP at the sites per placement ($/MWh); the background and data-center load (kW);
    the lowest site voltage per placement against the band's floor (p.u.)."""
    from matplotlib.figure import Figure

    periods = summary["periods"]
    hours = np.arange(len(periods))
    labels = [p["period"][-5:] for p in periods]
    figure = Figure(figsize=(10.0, 9.0))
    price_ax, load_ax, volt_ax = figure.subplots(3, 1, sharex=True)
    price_ax.step(hours, [p["substation_price_usd_per_mwh"] for p in periods], where="mid", color="black",
                  linestyle="--", label="substation")
    for case in summary["cases"]:
        entries = [p["cases"][case] for p in periods]
        top = [e["dlmp_range_usd_per_mwh"][1] if e["feasible"] else np.nan for e in entries]
        low = [e["min_site_voltage_pu"]["value"] if e["feasible"] else np.nan for e in entries]
        price_ax.plot(hours, top, marker="o", markersize=3, color=_CASE_COLOURS[case], label=CASE_TITLES[case])
        volt_ax.plot(hours, low, marker="o", markersize=3, color=_CASE_COLOURS[case], label=CASE_TITLES[case])
    price_ax.set_ylabel("highest DLMP ($/MWh)")
    price_ax.legend(fontsize=8)
    load_ax.bar(hours, [p["background_kw"] for p in periods], 0.8, color="0.75", label="background")
    for case in summary["cases"]:   # each case's data-center load on top of the background
        load_ax.plot(hours, [p["background_kw"] + sum(p["cases"][case]["load_kw"].values()) for p in periods],
                     marker="o", markersize=3, color=_CASE_COLOURS[case], label=f"+ data centers, {CASE_TITLES[case]}")
    load_ax.set_ylabel("load (kW, three phases)")
    load_ax.legend(fontsize=8)
    volt_ax.axhline(summary["voltage_band_pu"][0], color="black", linestyle="--", linewidth=1.0)
    volt_ax.set_ylabel("lowest site voltage (p.u.)")
    volt_ax.set_xticks(hours, labels, rotation=90, fontsize=7)
    volt_ax.set_xlabel(f"hour from {periods[0]['period']}")
    for ax in (price_ax, load_ax, volt_ax):
        ax.grid(alpha=0.3)
    figure.suptitle(f"A day on {summary['feeder']}: prices, loads and voltages hour by hour", fontsize=11)
    figure.tight_layout()
    _write_png_atomically(figure, path, DPI)


def plot_dlmp_parts(solved: Mapping[str, OpfResult], sites: Sequence[DataCenterSite], path: Path,
                    when: str = "") -> None:
    """Each site's DLMP per phase and placement, stacked from its parts (docs/models/dlmp.md#eq-d-23):
    the parts that raise it stacked up from zero, those that lower it (a load on that phase that
    relieves a binding limit) hatched and hanging from the top; the loss part is zero in this model
    and congestion is drawn where a line limit binds, each only when not zero. A dot marks the DLMP."""
    from matplotlib.figure import Figure

    cases = list(solved)
    figure = Figure(figsize=(max(7.5, 1.9 * len(sites) * len(cases)), 4.6))
    ax = figure.subplots()
    colours = {"energy": "0.7", "loss": "#9467bd", "congestion": "#8c564b", "voltage": "#d62728"}
    xs = iter(_bar_positions(len(sites), len(cases)))
    labels, drawn = [], set()
    for s in sites:
        for case in cases:
            parts = solved[case].parts
            for k, phase in enumerate(PHASE_NAMES):
                x, top = next(xs), 0.0
                values = [(name, float(getattr(parts, name)[s.bus][k])) for name in colours]
                # The parts that raise the price stack up; those that lower it hang from the top, hatched.
                for name, value in sorted((item for item in values if item[1] != 0.0), key=lambda item: item[1] < 0):
                    ax.bar(x, value, 0.8, bottom=top, color=colours[name], hatch="//" if value < 0 else None,
                           edgecolor="white" if value < 0 else None,
                           label=None if name in drawn else f"{name} part")
                    drawn.add(name)
                    top += value
                ax.plot([x], [solved[case].dlmp_p[s.bus][k]], "o", color="black", markersize=3)
                labels.append(f"{s.bus}{phase}\n{case}" if k == 1 else f"{s.bus}{phase}")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(_bar_positions(len(sites), len(cases)), labels, fontsize=6)
    ax.set_ylabel("$/MWh")
    ax.set_title(f"DLMP parts at the data-center sites{when} (dots: the DLMP)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    _write_png_atomically(figure, path, DPI)


def _bar_positions(sites: int, cases: int) -> list[float]:
    """The x of each bar of plot_dlmp_parts: three phases per site and case, groups 0.6 apart."""
    out, x = [], 0.0
    for _ in range(sites * cases):
        out += [x, x + 1, x + 2]
        x += 3.6
    return out
