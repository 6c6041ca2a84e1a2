"""Figures (PNG) of a sweep: each outcome metric against each swept parameter, with a band over
the seeds. A numeric parameter gets lines (the mean over seeds) with a band of one standard
deviation and the min-max range; a categorical one (a mechanism, a profile) gets bars side by
side with the same spread. When several parameters vary, the others split the lines or bars.

As in sim/report/figures/plots.py: matplotlib inside the functions, bare ``Figure`` objects, atomic writes with
no timestamps (the same table gives the same bytes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from sim.report.figures.plots import DPI, _write_png_atomically, hide_axes
from sim.report.figures.run import plain

# (column, label with units), in panel order: a run sweep's default panels.
METRIC_PANELS = (
    ("efficiency", "efficiency (welfare / best)"),
    ("revenue_usd", "revenue ($)"),
    ("welfare_usd", "welfare ($)"),
    ("rounds", "rounds"),
)
# A plan sweep's (sim/config/sweep.py, PLAN_METRIC_TYPES): the sample plan on its fresh scenarios.
PLAN_PANELS = (
    ("sample_objective_usd", "sample plan: objective ($)"),
    ("sample_plan_cost_usd", "sample plan: plan cost ($)"),
    ("sample_fresh_expected_ens_mwh", "sample plan: E[ENS], fresh (MWh)"),
    ("sample_fresh_stabilized_share", "sample plan: hit sites stabilized, fresh"),
)


def default_panels(columns: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """A plan sweep's panels when the table has its columns, else a run sweep's."""
    return PLAN_PANELS if PLAN_PANELS[0][0] in columns else METRIC_PANELS
# Labels with units for the other columns one may choose (`dcmarket results --plot ... --metric`).
OTHER_LABELS = {"seconds": "wall seconds per run (s)", "efficient_welfare_usd": "best possible welfare ($)",
                "efficiency_gap_usd": "efficiency gap ($)", "rounds_run": "rounds run", "products": "products sold",
                "bidders": "bidders"}
_SPLIT_LIMIT = 8  # more combinations of the other parameters than this: pooled instead


def file_name(parameter: str, metrics: Sequence[str] = ()) -> str:
    """sweep_<parameter>.png for the default panels, sweep_<parameter>__<metrics>.png otherwise."""
    def safe(text: str) -> str:
        return "".join(c if c.isalnum() else "_" for c in text)

    tail = ("__" + "_".join(safe(m) for m in metrics)) if metrics else ""
    return f"sweep_{safe(parameter)}{tail}.png"


def plot_metrics_against(table, parameter: str, others: Sequence[str], path: Path, title: str,
                         metrics: Sequence[str] = ()) -> None:
    """``table``: the sweep's results (pandas), successful runs only; ``metrics``: the columns to
    draw, one panel each (default: ``default_panels``)."""
    from matplotlib.figure import Figure

    labels = {**OTHER_LABELS, **dict(METRIC_PANELS), **dict(PLAN_PANELS)}
    panels = [(m, labels.get(m, m)) for m in metrics] if metrics else list(default_panels(list(table.columns)))

    numeric = table[parameter].dtype.kind in "if"
    # Parameters set on only some points (a mechanism's own rules) follow the parameter; they split nothing.
    splits = [c for c in others if table[c].nunique() > 1 and table[c].notna().all()]
    # dropna=False: a parameter that only some points set (a mechanism's own rules) is empty elsewhere.
    groups = list(table.groupby(splits, sort=True, dropna=False)) \
        if splits and table.groupby(splits, dropna=False).ngroups <= _SPLIT_LIMIT else [((), table)]
    rows, columns = (1, len(panels)) if len(panels) < 3 else (2, (len(panels) + 1) // 2)
    figure = Figure(figsize=(6.0 * columns, 4.0 * rows + 0.5))
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax in axes[len(panels):]:
        hide_axes(ax)
    for ax, (metric, label) in zip(axes, panels):
        values = sorted(table[parameter].unique(), key=lambda v: (str(type(v)), v))
        for n, (key, group) in enumerate(groups):
            key = key if isinstance(key, tuple) else (key,)
            name = plain(", ".join(f"{c} = {v}" for c, v in zip(splits, key)) or "all runs")
            stats = group.groupby(parameter)[metric].agg(["mean", "std", "min", "max", "count"]).reindex(values)
            std = stats["std"].fillna(0.0)
            if numeric:
                x = list(stats.index)
                line = ax.plot(x, stats["mean"], marker="o", linewidth=1.6, label=name)[0]
                ax.fill_between(x, stats["mean"] - std, stats["mean"] + std, color=line.get_color(), alpha=0.25)
                ax.fill_between(x, stats["min"], stats["max"], color=line.get_color(), alpha=0.08)
            else:
                width = 0.8 / len(groups)
                x = [i + (n - (len(groups) - 1) / 2) * width for i in range(len(values))]
                ax.bar(x, stats["mean"], width, yerr=std, capsize=3, label=name)
        if not numeric:
            ax.set_xticks(range(len(values)), [plain(v) for v in values], fontsize=8)
        ax.set_xlabel(parameter)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if len(groups) > 1:
        axes[0].legend(fontsize=8)
    seeds = int(table.groupby([parameter, *splits], dropna=False)["seed"].nunique().min()) if len(table) else 0
    spread = "band 1 sd (dark) and min-max (light)" if numeric else "error bars 1 sd"
    figure.suptitle(f"{title}: mean over {seeds}+ seeds per point, {spread}", fontsize=11)
    figure.tight_layout()
    _write_png_atomically(figure, path, DPI)


def figure_drawers(table, parameters: Sequence[str], title: str) -> dict[str, Callable[[Path], None]]:
    """A drawer for each swept parameter that varies among the successful runs of ``table`` (the
    results, pandas), by parameter: a sweep's plots/ and its report draw the same figures."""
    ok = table[table["status"] == "ok"]
    if ok.empty:
        return {}
    return {parameter: (lambda path, parameter=parameter: plot_metrics_against(
                ok, parameter, [p for p in parameters if p != parameter], path, title))
            for parameter in parameters if ok[parameter].nunique() >= 2}


def sweep_figures(results_path: Path, parameters: Sequence[str], folder: Path, title: str) -> list[Path]:
    """One figure per swept parameter, from results.parquet; returns the files written."""
    import pandas as pd

    written = []
    for parameter, draw in figure_drawers(pd.read_parquet(results_path), parameters, title).items():
        draw(folder / file_name(parameter))
        written.append(folder / file_name(parameter))
    return written
