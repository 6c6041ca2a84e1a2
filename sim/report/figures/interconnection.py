"""Figures of the interconnection study (sim/studies/evolve.py): each regime's MW connected and
backlog over the months, and what became of the developers.

Drawn as the other figures are (sim/report/figures/plots.py): a bare ``Figure`` on the Agg canvas,
matplotlib imported inside the functions, no metadata that varies, written whole or not at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from sim.report.figures.plots import DPI, _write_png_atomically

SIZE_IN = (12.0, 5.0)
# What became of a developer, in the order the bars stack them, with their colours.
OUTCOMES = (("connected", "#2b8a3e"), ("waiting_at_end", "#adb5bd"), ("withdrawn_serious", "#f08c00"),
            ("withdrawn_speculative", "#ffd43b"), ("refused", "#c92a2a"), ("deterred", "#845ef7"),
            ("revoked", "#1971c2"))


def plot_over_time(cycles: Sequence[Mapping[str, Any]], path: Path | str | os.PathLike[str]) -> None:
    """Two panels over the months, a line per regime: MW connected (left) and MW waiting (right)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=SIZE_IN, dpi=DPI)
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    regimes = list(dict.fromkeys(row["regime"] for row in cycles))
    for regime in regimes:
        rows = [r for r in cycles if r["regime"] == regime]
        months = [r["month"] for r in rows]
        left.step(months, [r["connected_mw"] for r in rows], where="post", label=regime)
        right.step(months, [r["backlog_mw"] for r in rows], where="post", label=regime)
    for axis, title in ((left, "MW connected"), (right, "MW waiting (backlog)")):
        axis.set_xlabel("months")
        axis.set_ylabel("MW")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    left.legend(loc="upper left")
    figure.tight_layout()
    _write_png_atomically(figure, Path(path), DPI)


def plot_outcomes(regimes: Mapping[str, Mapping[str, Any]], months_per_cycle: int,
                  path: Path | str | os.PathLike[str]) -> None:
    """Left: stacked bars of what became of the developers in each regime. Right: the median and
    90th-percentile wait of the connected ones (months)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=SIZE_IN, dpi=DPI)
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    names = list(regimes)
    bottom = [0.0] * len(names)
    for key, colour in OUTCOMES:
        heights = [float(_outcome(regimes[n], key)) for n in names]
        left.bar(names, heights, bottom=bottom, color=colour, label=key.replace("_", " "))
        bottom = [b + h for b, h in zip(bottom, heights)]
    left.set_ylabel("developers")
    left.set_title("what became of the developers")
    left.set_ylim(0, 1.4 * max(bottom + [1.0]))  # room above the bars for the legend
    left.legend(fontsize="small", loc="upper center", ncol=3)
    for offset, key, label in ((-0.2, "median_wait_cycles", "median"), (0.2, "p90_wait_cycles", "90th percentile")):
        waits = [(regimes[n][key] or 0.0) * months_per_cycle for n in names]
        right.bar([k + offset for k in range(len(names))], waits, width=0.4, label=label)
    right.set_xticks(range(len(names)), names)
    right.set_ylabel("months")
    right.set_title("wait of the connected developers")
    right.legend()
    right.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    _write_png_atomically(figure, Path(path), DPI)


def _outcome(figures: Mapping[str, Any], key: str) -> int:
    if key == "withdrawn_serious":
        return int(figures["withdrawn"]) - int(figures["withdrawn_speculative"])
    return int(figures[key])
