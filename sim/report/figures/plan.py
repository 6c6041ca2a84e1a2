"""Figures (PNG) of the flexible-capacity plan: the hubs and modules on the feeder, the
cost-CVaR frontier, and how the sample and robust plans hold up out of sample.

As in sim/report/figures/plots.py: matplotlib is imported inside the functions, figures are bare ``Figure``
objects on the Agg canvas, written atomically with no timestamps (same inputs, same bytes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from grid.network.layout import bus_positions
from grid.network.network import Network
from grid.plan.data import PlanData
from grid.plan.dispatch import Evaluation
from grid.plan.milp import Plan
from sim.config.plan import SAMPLES
from sim.report.figures.plots import DPI, _write_png_atomically, hide_axes

_PLAN_LABELS = {"sample": "sample plan", "dro": "robust (DRO) plan"}
_MODULE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


def plot_plan_map(network: Network, data: PlanData, plans: Mapping[str, Plan], path: Path) -> None:
    """One panel per plan: the feeder, the data-center sites (sized by load), the candidate hubs
    (hollow when closed) and the units staged at each open hub, by module type."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    xy = bus_positions(network)
    figure = Figure(figsize=(7.0 * len(plans), 6.5))
    axes = np.atleast_1d(figure.subplots(1, len(plans)))
    for ax, (name, plan) in zip(axes, plans.items()):
        for line in network.lines:
            (x0, y0), (x1, y1) = xy[line.from_bus], xy[line.to_bus]
            ax.plot([x0, x1], [y0, y1], color="0.75", linewidth=1.5, zorder=1)
        ax.scatter([xy[b.number][0] for b in network.buses], [xy[b.number][1] for b in network.buses],
                   s=10, color="0.55", zorder=2)
        loads = np.array([s.load_mw for s in data.sites])
        ax.scatter([xy[s.bus][0] for s in data.sites], [xy[s.bus][1] for s in data.sites],
                   s=80 + 120 * loads / max(loads.max(), 1e-9), marker="s", color="#d62728", zorder=4)
        for s in data.sites:
            ax.annotate(f"DC {s.bus}\n{s.load_mw:g} MW", xy[s.bus], xytext=(9, -16), textcoords="offset points",
                        fontsize=7, color="#d62728")
        stock = plan.stock(data)
        for d, hub in enumerate(data.hubs):
            x, y = xy[hub.bus]
            opened = hub.name in plan.open_hubs
            ax.scatter([x], [y], s=260, marker="^", zorder=3, edgecolors="black", linewidths=1.2,
                       facecolors="#ffd92f" if opened else "none")
            text = ", ".join(f"{int(stock[d, k])} {m.name}" for k, m in enumerate(data.modules) if stock[d, k])
            ax.annotate(f"{hub.name} (bus {hub.bus})" + (f"\n{text}" if text else "\nclosed" if not opened else ""),
                        (x, y), xytext=(8, 6), textcoords="offset points", fontsize=7.5,
                        fontweight="bold" if opened else "normal")
        ax.set_title(f"{_PLAN_LABELS.get(name, name)}: {int(stock.sum())} units at {len(plan.open_hubs)} hubs, "
                     f"plan cost {plan.cost:,.0f} $", fontsize=10)
        hide_axes(ax)
    handles = [
        Line2D([], [], linestyle="none", marker="s", color="#d62728", markersize=8, label="data-center site (size: MW)"),
        Line2D([], [], linestyle="none", marker="^", markerfacecolor="#ffd92f", markeredgecolor="black", markersize=10,
               label="open staging hub (units staged)"),
        Line2D([], [], linestyle="none", marker="^", markerfacecolor="none", markeredgecolor="black", markersize=10,
               label="candidate hub, closed"),
    ]
    figure.legend(handles=handles, loc="lower center", ncols=3, frameon=False, fontsize=9)
    figure.suptitle(f"Flexible capacity modules staged on {network.name}", fontsize=12)
    _write_png_atomically(figure, path, DPI)


def plot_frontier(rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any], path: Path) -> None:
    """Expected total cost against CVaR of the total, one point per lambda (in-sample); lambdas
    that chose the same plan share one label. The robust plan is marked for comparison."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.0, 5.5))
    ax = figure.subplots()
    x = [r["cvar_total_usd"] for r in rows]
    y = [r["expected_total_usd"] for r in rows]
    ax.plot(x, y, marker="o", color="#1f77b4", label="sample plan for each lambda")
    # Points closer than 2 % of the axis spans would print their labels on top of each other
    # (lambdas within the MIP gap of one plan): one label lists them all.
    span_x = max(max(x) - min(x), 1e-9)
    span_y = max(max(y) - min(y), 1e-9)
    groups: list[list[Mapping[str, Any]]] = []
    for r in rows:
        for group in groups:
            if (abs(group[0]["cvar_total_usd"] - r["cvar_total_usd"]) < 0.02 * span_x
                    and abs(group[0]["expected_total_usd"] - r["expected_total_usd"]) < 0.02 * span_y):
                group.append(r)
                break
        else:
            groups.append([r])
    for group in groups:
        text = "\n".join(f"λ = {r['lambda']:g}: {r['units']} units at {r['hubs'] or 'no hub'}" for r in group)
        ax.annotate(text, (group[0]["cvar_total_usd"], group[0]["expected_total_usd"]), xytext=(8, 6),
                    textcoords="offset points", fontsize=8)
    robust = summary["plans"].get("dro")
    if robust is not None:
        inside = summary["evaluation"]["dro"]["in-sample"]
        rx = robust["plan_cost_usd"] + inside["cvar_usd"]
        ry = robust["plan_cost_usd"] + inside["expected_cost_usd"]
        ax.scatter([rx], [ry], marker="D", s=60, color="#ff7f0e", zorder=3,
                   label=f"robust plan, radius {robust['dro_radius']:g}, lambda {robust['lambda']:g}")
    alpha = next(iter(summary["plans"].values()))["alpha"]
    ax.set_xlabel(f"CVaR at alpha = {alpha:g} of plan cost + Stage II cost ($)")
    ax.set_ylabel("Expected plan cost + Stage II cost ($)")
    ax.set_title("Cost-CVaR frontier over lambda (in-sample scenarios; down and left is better)", fontsize=10)
    ax.grid(color="0.9")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    ax.margins(x=0.15, y=0.15)
    figure.tight_layout()
    _write_png_atomically(figure, path, DPI)


def plot_out_of_sample(summary: Mapping[str, Any], evaluations: Mapping[tuple[str, str], Evaluation],
                       path: Path) -> None:
    """Box plots of Stage II cost and of energy not served per scenario, for each plan on the
    in-sample, fresh and shifted scenarios: the tails side by side."""
    from matplotlib.figure import Figure

    plans = list(summary["plans"])
    labels = [s for s in SAMPLES if (plans[0], s) in evaluations]
    figure = Figure(figsize=(16.0, 5.5))
    axes = figure.subplots(1, 3)
    plan_cost = {name: summary["plans"][name]["plan_cost_usd"] for name in plans}
    panels = (("Stage II cost per scenario ($)", lambda name, ev: ev.cost),
              ("Plan cost + Stage II cost per scenario ($)", lambda name, ev: plan_cost[name] + ev.cost),
              ("Energy not served per scenario (MWh)", lambda name, ev: ev.ens_mwh.sum(axis=1)))
    for ax, (title, values) in zip(axes, panels):
        data, positions, ticks, names = [], [], [], []
        for g, label in enumerate(labels):
            for k, name in enumerate(plans):
                data.append(values(name, evaluations[name, label]))
                positions.append(g * (len(plans) + 1) + k)
            ticks.append(g * (len(plans) + 1) + (len(plans) - 1) / 2)
            names.append(label)
        parts = ax.boxplot(data, positions=positions, widths=0.7, showmeans=True, patch_artist=True)
        for box, position in zip(parts["boxes"], range(len(data))):
            box.set_facecolor(_MODULE_COLOURS[position % len(plans)])
            box.set_alpha(0.55)
        ax.set_xticks(ticks, names)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", color="0.9")
    from matplotlib.patches import Patch

    figure.legend(handles=[Patch(facecolor=_MODULE_COLOURS[k], alpha=0.55, label=_PLAN_LABELS.get(n, n))
                           for k, n in enumerate(plans)], loc="lower center", ncols=len(plans), frameon=False)
    figure.suptitle("How the plans hold up: scenarios they were planned on, fresh ones, and a shifted shock "
                    "distribution (triangle: mean)", fontsize=11)
    figure.tight_layout(rect=(0, 0.06, 1, 0.95))
    _write_png_atomically(figure, path, DPI)


def plot_dispatch(data: PlanData, profile: Sequence[Mapping[str, Any]], scenario: int,
                  evaluations: Mapping[str, Evaluation], window_min: float, path: Path) -> None:
    """One scenario minute by minute: at each hit site, the load deviation and what each module
    type supplied (+) or absorbed (-), one row of panels per plan."""
    from matplotlib.figure import Figure

    plans = list(evaluations)
    buses = sorted({r["bus"] for r in profile if r["scenario"] == scenario})
    columns = max(1, len(buses))
    figure = Figure(figsize=(4.2 * columns + 1.0, 3.4 * len(plans) + 1.2))
    axes = np.atleast_2d(figure.subplots(len(plans), columns, squeeze=False))
    names = [m.name for m in data.modules]
    site_index = {s.bus: i for i, s in enumerate(data.sites)}
    for row, name in enumerate(plans):
        ev = evaluations[name]
        for col, bus in enumerate(buses):
            ax = axes[row, col]
            rows = [r for r in profile if r["plan"] == name and r["scenario"] == scenario and r["bus"] == bus]
            minutes = np.array([r["minute"] for r in rows])
            deviation = np.array([r["deviation_mw"] for r in rows])
            # A step holds for its whole minute: bars span it, and the deviation's last value is repeated at its end.
            step = float(minutes[1] - minutes[0]) if minutes.size > 1 else 1.0
            up = np.zeros_like(minutes)
            down = np.zeros_like(minutes)
            for k, module in enumerate(names):
                power = np.array([r[f"{module}_mw"] for r in rows])
                positive, negative = np.maximum(power, 0.0), np.minimum(power, 0.0)
                colour = _MODULE_COLOURS[k % len(_MODULE_COLOURS)]
                if positive.any():
                    ax.bar(minutes, positive, bottom=up, width=step, align="edge", color=colour, alpha=0.8,
                           label=module if row == 0 and col == 0 else None)
                    up = up + positive
                if negative.any():
                    ax.bar(minutes, negative, bottom=down, width=step, align="edge", color=colour, alpha=0.8,
                           label=module if row == 0 and col == 0 and not positive.any() else None)
                    down = down + negative
            ax.step(np.append(minutes, minutes[-1] + step), np.append(deviation, deviation[-1]), where="post",
                    color="black", linewidth=1.2, label="load deviation" if row == 0 and col == 0 else None)
            i = site_index[bus]
            state = "stabilized" if ev.stabilized[scenario, i] else f"not stabilized, ENS {ev.ens_mwh[scenario, i]:.3f} MWh"
            ax.set_title(f"{_PLAN_LABELS.get(name, name)}, bus {bus}: {state}", fontsize=8.5)
            ax.set_xlim(0, window_min)
            ax.axhline(0, color="0.6", linewidth=0.8)
            ax.grid(color="0.92")
            if col == 0:
                ax.set_ylabel("MW (+ load above schedule\n/ module supplying)", fontsize=8)
            if row == len(plans) - 1:
                ax.set_xlabel("minute of the event window (min)", fontsize=8)
    figure.legend(loc="lower center", ncols=len(names) + 1, frameon=False, fontsize=9)
    figure.suptitle(f"Dispatch in scenario {scenario} (the sample plan's costliest in sample): modules against "
                    "the load deviation", fontsize=11)
    figure.tight_layout(rect=(0, 0.05, 1, 0.96))
    _write_png_atomically(figure, path, DPI)
