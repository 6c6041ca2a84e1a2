"""Figure (PNG) of drawn demand shocks: example profiles and what the generator draws overall.

The shock generator's output is plotted (docs/models/plan.md#fcm-5), so that a reader can check
that the drawn drops, surges and oscillations look like the events they are meant to model. Drawn
like sim/report/figures/plots.py: a bare ``Figure`` on the Agg canvas (no pyplot state), matplotlib imported
only when a figure is drawn, fixed canvas size, and written through
``sim.report.figures.plots._write_png_atomically``, so the same scenarios give byte-identical PNGs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from grid.plan.shocks import SHOCK_KINDS, ShockScenarios
from sim.report.figures.plots import DPI, _write_png_atomically

__all__ = ["FIGURE_SIZE_IN", "plot_shocks"]

FIGURE_SIZE_IN = (14.0, 7.5)
# Tableau blue, orange, green: distinguishable for the common colour-vision deficiencies.
_KIND_COLOURS = {"drop": "#1f77b4", "surge": "#ff7f0e", "oscillation": "#2ca02c"}
# Line styles tell the example scenarios apart while colour tells the kind.
_SCENARIO_STYLES = ("-", "--", ":", "-.")
# Beyond this many example lines a legend would cover the panel; the rest are counted instead.
_LEGEND_LIMIT = 12
_HISTOGRAM_BINS = 30


def plot_shocks(scenarios: ShockScenarios, path: Path | str | os.PathLike[str], *, examples: int = 6,
                title: str | None = None) -> None:
    """Write a PNG with two panels: example deviation profiles, and peak deviations per kind.

    Left: the deviation (MW, + above schedule) against the minute, one line per site with an
    event in each of the first ``examples`` scenarios that have one, coloured by kind and labelled
    with scenario, bus and kind. Right: a stacked histogram over all scenarios of each event's
    peak |deviation| (MW) by kind, with the share of site-scenarios without an event. The file
    appears complete or not at all.
    """
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 0:
        raise ValueError(f"examples: must be an integer >= 0 (scenarios to draw), got {examples!r}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    settings = scenarios.settings
    count, n, _ = scenarios.deviation_mw.shape
    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=DPI)
    FigureCanvasAgg(figure)
    # Room below the panels for the example legend, which would otherwise cover the profiles.
    left = figure.add_axes((0.06, 0.25, 0.42, 0.63))
    right = figure.add_axes((0.56, 0.25, 0.42, 0.63))

    _draw_examples(left, scenarios, examples)
    _draw_peaks(right, scenarios)

    if title is None:
        title = (f"Demand shocks at {n} data-center site{'s' if n != 1 else ''}: {count:,} scenario"
                 f"{'s' if count != 1 else ''}, {settings.window_min:g}-minute window, {settings.step_min:g}-minute steps")
    figure.suptitle(title, fontsize=13, y=0.975)
    _write_png_atomically(figure, Path(path), DPI)


def _draw_examples(ax, scenarios: ShockScenarios, examples: int) -> None:  # ax: matplotlib Axes
    settings = scenarios.settings
    # Each value holds for its step, so the profile is drawn as steps, closed at the window's end.
    minutes = np.append(settings.minutes, settings.window_min)
    with_event = np.flatnonzero((scenarios.kind >= 0).any(axis=1))[:examples]
    lines = 0
    for position, scenario in enumerate(with_event):
        style = _SCENARIO_STYLES[position % len(_SCENARIO_STYLES)]
        for site_index, site in enumerate(scenarios.sites):
            code = int(scenarios.kind[scenario, site_index])
            if code < 0:
                continue
            kind = SHOCK_KINDS[code]
            ax.plot(
                minutes, np.append(profile := scenarios.deviation_mw[scenario, site_index], profile[-1]),
                drawstyle="steps-post", linestyle=style, linewidth=1.3, color=_KIND_COLOURS[kind],
                label=f"scenario {scenario}, bus {site.bus}: {kind}" if lines < _LEGEND_LIMIT else None,
            )
            lines += 1
    ax.axhline(0.0, color="0.6", linewidth=0.8, zorder=0)
    ax.set_xlim(0.0, settings.window_min)
    ax.set_xlabel("minute of the event window (min)")
    ax.set_ylabel("load deviation from schedule (MW, + above)")
    ax.set_title(f"Example profiles: first {len(with_event)} scenario{'s' if len(with_event) != 1 else ''} with an event",
                 fontsize=11)
    ax.grid(color="0.92")
    ax.set_axisbelow(True)
    if lines == 0:
        empty = "no scenario has an event" if examples else "no examples requested (examples=0)"
        ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center", va="center", color="0.4")
        return
    listed = f"{lines} profiles, first {_LEGEND_LIMIT} listed" if lines > _LEGEND_LIMIT else f"{lines} profiles"
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=3, fontsize=8, frameon=False,
              title=f"{listed} (colour: kind; line style: scenario)", title_fontsize=8)


def _draw_peaks(ax, scenarios: ShockScenarios) -> None:  # ax: matplotlib Axes
    # Peak |deviation| per (scenario, site), without an |deviation| copy of the whole array.
    peak_mw = np.maximum(scenarios.deviation_mw.max(axis=2), -scenarios.deviation_mw.min(axis=2))
    kinds = scenarios.kind
    events = int((kinds >= 0).sum())
    cells = kinds.size
    ax.set_xlabel("peak |load deviation| of an event (MW)")
    ax.set_ylabel("events (site-scenarios)")
    ax.set_title("What the generator draws: peak deviation per event, by kind", fontsize=11)
    ax.grid(axis="y", color="0.92")
    ax.set_axisbelow(True)
    if events == 0:
        ax.text(0.5, 0.5, "no events drawn", transform=ax.transAxes, ha="center", va="center", color="0.4")
        return
    drawn = [(kind, peak_mw[kinds == code]) for code, kind in enumerate(SHOCK_KINDS)]
    drawn = [(kind, values) for kind, values in drawn if values.size]
    top = float(max(values.max() for _, values in drawn))
    edges = np.linspace(0.0, top if top > 0 else 1.0, _HISTOGRAM_BINS + 1)
    ax.hist(
        [values for _, values in drawn], bins=edges, stacked=True,
        color=[_KIND_COLOURS[kind] for kind, _ in drawn],
        label=[f"{kind}: {values.size:,} ({100.0 * values.size / cells:.1f} %)" for kind, values in drawn],
    )
    ax.legend(loc="upper right", fontsize=8, frameon=True, framealpha=0.85,
              title=f"no event: {cells - events:,} ({100.0 * (cells - events) / cells:.1f} %)", title_fontsize=8)
