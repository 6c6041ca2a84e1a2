"""Figures (PNG) of one auction run, from its rounds table: each product's price path over the
rounds, and who holds what in each round.

As in sim/report/figures/plots.py: matplotlib is imported inside the functions, figures are bare ``Figure``
objects on the Agg canvas, written atomically with no timestamps (same run, same bytes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from sim.report.figures.plots import DPI, _write_png_atomically

PRICE_PATH = "price_path.png"
HOLDINGS = "holdings.png"
# Colours by bidder, in the run's bidder order; "nobody" is white.
_BIDDER_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                   "#bcbd22", "#17becf")
# Above this many products a legend per product would hide the lines; the lines stay, the legend goes.
_LEGEND_LIMIT = 16


def plain(text: str) -> str:
    """A name as matplotlib should print it: a "$" would otherwise start maths mode."""
    return str(text).replace("$", r"\$")


def _by_product(rounds: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[int, float, str]]]:
    out: dict[str, list[tuple[int, float, str]]] = {}
    for row in rounds:
        price = float(row["standing_price"]) if row["standing_price"] not in ("", None) else 0.0
        out.setdefault(str(row["product"]), []).append((int(row["round"]), price, str(row["standing_bidder"] or "")))
    return {p: sorted(v) for p, v in out.items()}


def plot_price_paths(rounds: Sequence[Mapping[str, Any]], products: Sequence[str], path: Path,
                     title: str) -> None:
    """The standing price ($) of each product after each round, one line per product."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    series = _by_product(rounds)
    figure = Figure(figsize=(10.0, 5.5))
    ax = figure.subplots()
    for n, product in enumerate(products):
        points = series.get(product, [])
        if points:
            # Markers of different shapes keep products at the same price apart.
            ax.step([r for r, _, _ in points], [p for _, p, _ in points], where="post", label=plain(product), linewidth=1.6,
                    marker="osD^v<>ph"[n % 9], markersize=4, alpha=0.85)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("standing price ($)")
    ax.set_title(plain(title), fontsize=11)
    ax.grid(alpha=0.3)
    if len(products) <= _LEGEND_LIMIT:
        ax.legend(fontsize=8, ncols=2 if len(products) > 8 else 1, loc="upper left")
    figure.tight_layout()
    _write_png_atomically(figure, path, DPI)


def plot_holdings(rounds: Sequence[Mapping[str, Any]], products: Sequence[str], bidders: Sequence[str],
                  path: Path, title: str) -> None:
    """A grid of products (rows) by rounds (columns), each cell coloured by the bidder standing
    on the product after that round (white: nobody)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    series = _by_product(rounds)
    last = max((r for points in series.values() for r, _, _ in points), default=1)
    code = {name: i + 1 for i, name in enumerate(bidders)}
    grid = [[0] * last for _ in products]
    for row, product in enumerate(products):
        for round_number, _, holder in series.get(product, []):
            grid[row][round_number - 1] = code.get(holder, 0)
    colours = ["#ffffff"] + [_BIDDER_COLOURS[i % len(_BIDDER_COLOURS)] for i in range(len(bidders))]
    figure = Figure(figsize=(min(16.0, 4.0 + 0.25 * last), min(12.0, 2.0 + 0.35 * len(products))))
    ax = figure.subplots()
    ax.imshow(grid, aspect="auto", cmap=ListedColormap(colours), vmin=0, vmax=len(bidders), interpolation="nearest",
              extent=(0.5, last + 0.5, len(products) - 0.5, -0.5))
    ax.set_yticks(range(len(products)), [plain(p) for p in products], fontsize=8)
    ax.set_xlabel("round")
    ax.set_title(plain(title), fontsize=11)
    handles = [Patch(facecolor=colours[code[b]], edgecolor="0.5", label=plain(b)) for b in bidders]
    handles.append(Patch(facecolor="#ffffff", edgecolor="0.5", label="nobody"))
    figure.legend(handles=handles[:24], loc="lower center", ncols=min(len(handles), 8), frameon=False, fontsize=8)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    _write_png_atomically(figure, path, DPI)


def round_figures(rounds: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> dict[str, Callable[[Path], None]]:
    """The run's round figures by file name (``--plots`` writes them; the HTML report draws them
    when the run did not)."""
    products = [p["id"] for p in summary["products"]]
    bidders = list(summary["payments"])
    mechanism = summary["mechanism"]
    return {
        PRICE_PATH: lambda path: plot_price_paths(
            rounds, products, path, f"Standing price of each product by round ({mechanism}, {len(bidders)} bidders)"),
        HOLDINGS: lambda path: plot_holdings(rounds, products, bidders, path,
                                             f"Who stands on each product after each round ({mechanism})"),
    }
