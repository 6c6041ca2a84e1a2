"""Figures of the headroom study (sim/studies/headroom/study.py): the headroom duration curves and the
map of stand-alone headroom per bus.

Drawn as the other figures are (sim/report/figures/plots.py): a bare ``Figure`` on the Agg
canvas, matplotlib imported inside the functions, no metadata that varies, written whole or not
at all. The map is the capacity map's two panels, firm against the highest curtailment level.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from grid.capacity.headroom import allowed_hours
from grid.network.network import Network
from sim.report.figures.plots import DPI, _write_png_atomically, plot_capacity_map

DURATION_SIZE_IN = (14.0, 6.0)
# The hours axis starts here (share of the hours, %): a log scale needs a floor, and one hour of
# a year (0.011 %) sits just above it.
_FIRST_SHARE_PCT = 0.008
_LEVEL_GREY = "0.45"


def level_name(level: float) -> str:
    """How figures and tables name a level: "firm" for 0, else its share of the hours in %."""
    return "firm" if level == 0 else f"{level * 100:g} % of hours"


def plot_duration(series: Mapping[int, np.ndarray], levels: Sequence[float], at_levels: Mapping[int, Sequence[float]],
                  totals: tuple[np.ndarray, np.ndarray], joint: Sequence[float] | None,
                  path: Path | str | os.PathLike[str], *, title: str) -> None:
    """Two panels. Left: each bus's hourly stand-alone headroom sorted from the lowest hour up,
    against the share of the hours with less (log scale), its level values marked. Right: the sum
    over the buses of the stand-alone headroom at each share of the hours up to the highest level
    (``totals`` = (shares, MW): not deliverable at once) and, when given, the joint totals at the
    levels (the buses at once)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=DURATION_SIZE_IN, dpi=DPI)
    FigureCanvasAgg(figure)
    left = figure.add_axes((0.06, 0.13, 0.42, 0.75))
    right = figure.add_axes((0.56, 0.13, 0.42, 0.75))
    _draw_curves(left, series, levels, at_levels)
    _draw_totals(right, levels, totals, joint)
    figure.suptitle(title, fontsize=13, y=0.975)
    _write_png_atomically(figure, Path(path), DPI)


def _draw_curves(ax, series: Mapping[int, np.ndarray], levels: Sequence[float],
                 at_levels: Mapping[int, Sequence[float]]) -> None:
    from matplotlib import colormaps

    colours = colormaps["tab10"]
    for k, (bus, hourly) in enumerate(series.items()):
        values = np.sort(np.asarray(hourly, dtype=float))
        count = values.size
        # The i-th lowest hour at i / T: the share of the hours with at most this headroom.
        share = 100.0 * np.arange(1, count + 1) / count
        finite = np.isfinite(values)
        colour = colours(k % 10)
        ax.step(share[finite], values[finite], where="post", color=colour, linewidth=1.1, label=f"bus {bus}")
        # Level p sits at the (floor(p T) + 1)-th lowest hour (H-3).
        marks = [(100.0 * (allowed_hours(p, count) + 1) / count, v) for p, v in zip(levels, at_levels[bus])
                 if np.isfinite(v)]
        if marks:
            ax.scatter(*zip(*marks), s=18, color=colour, zorder=3)
    for p in levels:
        if p > 0:
            ax.axvline(100.0 * p, color=_LEVEL_GREY, linestyle="--", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlim(_FIRST_SHARE_PCT, 100.0)
    ax.set_xlabel("share of the hours with at most this headroom (%, log scale); dashed: the curtailment levels")
    ax.set_ylabel("stand-alone headroom (MW)")
    ax.set_title("Hourly headroom of the top buses (dots: MW at firm and each level)", fontsize=10)
    if series:
        ax.legend(fontsize=8, ncols=2, loc="upper left")
    ax.grid(True, which="major", linewidth=0.3)


def _draw_totals(ax, levels: Sequence[float], totals: tuple[np.ndarray, np.ndarray],
                 joint: Sequence[float] | None) -> None:
    shares, total = totals
    ax.step(100.0 * shares, total / 1000.0, where="post", color="tab:blue", linewidth=1.4,
            label="sum of stand-alone headroom (each bus alone: not deliverable at once)")
    for p in levels:
        if p > 0:
            ax.axvline(100.0 * p, color=_LEVEL_GREY, linestyle="--", linewidth=0.8)
    if joint is not None:
        gw = np.asarray(joint, dtype=float) / 1000.0
        ax.plot([100.0 * p for p in levels], gw, "o-", color="tab:orange",
                label="every bus at once (capacity study on the hours, CVaR per limit)")
        for p, value in zip(levels, gw):
            ax.annotate(f"{value:,.1f} GW", (100.0 * p, value), xytext=(4, 6), textcoords="offset points",
                        fontsize=8, color="tab:orange")
    ax.set_yscale("log")
    highest = 100.0 * max(levels)
    ax.set_xlim(-0.03 * highest, 1.15 * highest)  # room for the last label
    ax.set_xlabel("share of the hours a new load may be curtailed in (%)")
    ax.set_ylabel("GW (log scale)")
    ax.set_title("Total headroom against curtailment", fontsize=10)
    ax.legend(fontsize=8, loc="center right")
    ax.grid(True, which="both", linewidth=0.3)


def plot_headroom_map(network: Network, firm_mw: Mapping[int, float], level_mw: Mapping[int, float], level: float,
                      path: Path | str | os.PathLike[str], *, title: str, overloaded_lines: Sequence[str] = (),
                      highlight_buses: Sequence[int] = ()) -> None:
    """The capacity map's two panels: stand-alone firm headroom and at ``level``, per bus; red:
    the lines the background alone overloads in some hour; ringed: ``highlight_buses``."""
    plot_capacity_map(network, firm_mw, level_mw, path, title=title, blocked_lines=overloaded_lines,
                      highlight_buses=highlight_buses, firm_title="Stand-alone headroom, firm: every hour (MW)",
                      flexible_title=f"Stand-alone headroom, curtailed in at most {level_name(level)} (MW)")
