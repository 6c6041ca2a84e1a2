"""Figures (PNG) of a run: firm and flexible capacity per bus on the network's graph.

matplotlib is imported inside the functions, so importing this module (and the CLI that imports
it) costs nothing until a figure is drawn. Figures are drawn on a bare ``Figure`` with the Agg
canvas rather than through pyplot: no global backend switch, no figure registry to leak, and
the same inputs give byte-identical PNGs (no "Software" stamp, no timestamp).
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Collection, Mapping, Sequence

from grid.network.network import Network
from sim.output.files import write_error

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

__all__ = [
    "MapPanel",
    "plot_capacity_panels",
    "DEFAULT_FIRM_TITLE",
    "DEFAULT_FLEXIBLE_TITLE",
    "FIGURE_SIZE_IN",
    "DPI",
    "plot_capacity_map",
    "plot_mechanism_comparison",
    "figure_bytes",
]

DEFAULT_FIRM_TITLE = "Firm capacity (MW)"
DEFAULT_FLEXIBLE_TITLE = "Flexible capacity, risk 5 % (MW)"
# A fixed canvas (no bbox_inches="tight") so that the PNG's size does not depend on the data.
FIGURE_SIZE_IN = (14.0, 7.0)
DPI = 150
# Above this many buses, bus-number labels would cover the network.
LABEL_LIMIT = 60
# Capacities at or below this are solver noise, drawn as "no capacity".
_ZERO_MW = 1e-9
# A capacity below this is a bug upstream, not noise; say so rather than hide it.
_NEGATIVE_MW = -1e-6
_COLORMAP = "viridis"  # sequential and colour-blind safe; has no red, which marks blocked lines
_LINE_GREY = "0.72"
_DOT_GREY = "0.55"
_BLOCKED_RED = "#d62728"
_BINDING_ORANGE = "#ff7f0e"
# Panels per row of a map with more than two: two rows of two for firm and three tiers.
_PANELS_PER_ROW = 2


@dataclass(frozen=True)
class MapPanel:
    """One panel of a capacity map: MW per bus (a bus left out, or at 0 MW, has none) and the lines
    to mark: those the background alone overloads (blocked), those at their limit (binding), and,
    under N-1, the outages after which a binding limit binds (drawn dashed)."""

    title: str
    capacity_mw: Mapping[int, float]
    blocked_lines: Collection[str] = ()
    binding_lines: Collection[str] = ()
    outage_lines: Collection[str] = ()
    note: str = ""


def plot_capacity_map(
    network: Network,
    firm_mw: Mapping[int, float],
    flexible_mw: Mapping[int, float],
    path: Path | str | os.PathLike[str],
    *,
    title: str,
    blocked_lines: Collection[str] = (),
    highlight_buses: Collection[int] = (),
    firm_title: str = DEFAULT_FIRM_TITLE,
    flexible_title: str = DEFAULT_FLEXIBLE_TITLE,
    positions: Mapping[int, tuple[float, float]] | None = None,
    dpi: int = DPI,
) -> None:
    """Write a PNG with two panels, firm and flexible capacity per bus, on one layout and colour scale.

    Side by side with a shared scale so a reader sees at a glance where flexible capacity adds to
    firm. Buses missing from a mapping, or at 0 MW, are small grey dots; lines named in
    ``blocked_lines`` (those the background load alone can overload) are red in both panels; the
    reference bus is boxed; ``highlight_buses`` (e.g. the buses a bidder won) are ringed.
    ``positions`` defaults to ``grid.network.layout.bus_positions(network)``; pass it to reuse one
    layout across several maps. The file appears complete or not at all (written beside ``path``,
    then renamed).
    """
    plot_capacity_panels(network, [MapPanel(firm_title, firm_mw, blocked_lines),
                                   MapPanel(flexible_title, flexible_mw, blocked_lines)],
                         path, title=title, highlight_buses=highlight_buses, positions=positions, dpi=dpi)


def plot_capacity_panels(
    network: Network,
    panels: Sequence[MapPanel],
    path: Path | str | os.PathLike[str],
    *,
    title: str,
    highlight_buses: Collection[int] = (),
    positions: Mapping[int, tuple[float, float]] | None = None,
    dpi: int = DPI,
) -> None:
    """Write a PNG of one panel per entry of ``panels`` (one or two in a row, then rows of two), on
    one layout and one colour scale, each with its own marked lines. Buses with capacity carry
    their number (every bus on a network of at most LABEL_LIMIT buses; else the LABEL_LIMIT
    largest of each panel)."""
    if not panels:
        raise ValueError("panels: a capacity map needs at least one panel")
    values = [_capacities(network, panel.capacity_mw, f"panel {panel.title!r}") for panel in panels]
    marks = [_PanelLines(_line_positions(network, panel.blocked_lines, "blocked_lines"),
                         _line_positions(network, panel.binding_lines, "binding_lines"),
                         _line_positions(network, panel.outage_lines, "outage_lines")) for panel in panels]
    highlighted = _highlighted(network, highlight_buses)
    if positions is None:
        from grid.network.layout import bus_positions

        positions = bus_positions(network)
    xy = _position_array(network, positions)
    figure = _draw(network, xy, panels, values, marks, highlighted, title=title, dpi=dpi)
    _write_png_atomically(figure, Path(path), dpi)


@dataclass(frozen=True)
class _PanelLines:
    """Line positions one panel marks."""

    blocked: list[int]
    binding: list[int]
    outages: list[int]


def _capacities(network: Network, values: Mapping[int, float], name: str) -> list[float]:
    """MW per bus in bus order (0 where absent), rejecting buses and values that cannot be drawn."""
    out = [0.0] * len(network.buses)
    for bus, value in values.items():
        if not network.has_bus(bus):
            raise ValueError(f"{name}: bus {bus!r} is not a bus of network {network.name!r}")
        mw = float(value)
        if not math.isfinite(mw) or mw < _NEGATIVE_MW:
            raise ValueError(f"{name}: bus {bus} has capacity {value!r} MW; a capacity map needs finite MW >= 0")
        out[network.bus_index(bus)] = mw if mw > _ZERO_MW else 0.0
    return out


def _line_positions(network: Network, names: Collection[str], field: str) -> list[int]:
    """Positions of the named lines in line order; an unknown name is a caller's typo, not a no-op."""
    wanted = set(names)
    known = {line.name: position for position, line in enumerate(network.lines)}
    unknown = sorted(wanted - known.keys())
    if unknown:
        raise ValueError(
            f"{field}: {unknown[0]!r}{f' and {len(unknown) - 1} more' if len(unknown) > 1 else ''} "
            f"not a line of network {network.name!r}"
        )
    return sorted(known[name] for name in wanted)


def _highlighted(network: Network, buses: Collection[int]) -> list[int]:
    positions = set()
    for bus in buses:
        if not network.has_bus(bus):
            raise ValueError(f"highlight_buses: bus {bus!r} is not a bus of network {network.name!r}")
        positions.add(network.bus_index(bus))
    return sorted(positions)


def _position_array(network: Network, positions: Mapping[int, tuple[float, float]]) -> list[tuple[float, float]]:
    try:
        xy = [positions[bus] for bus in network.bus_numbers]
    except KeyError as missing:
        raise ValueError(f"positions: bus {missing.args[0]} of network {network.name!r} has no position") from None
    out = [(float(x), float(y)) for x, y in xy]
    for bus, point in zip(network.bus_numbers, out):
        if not all(math.isfinite(v) for v in point):
            raise ValueError(f"positions: bus {bus} has position {point}; positions must be finite")
    return out


def _grid(count: int) -> tuple[int, int]:
    """(rows, columns) of the panels: a row of one or two, else rows of _PANELS_PER_ROW."""
    columns = count if count <= 2 else _PANELS_PER_ROW
    return -(-count // columns), columns


def _draw(network: Network, xy: list[tuple[float, float]], panels: Sequence[MapPanel], values: list[list[float]],
          marks: list[_PanelLines], highlighted: list[int], *, title: str, dpi: int) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    shape = _map_shape(network, xy)
    largest = max(max(v) for v in values)
    # All zero still needs a valid scale; 1 MW keeps the colour bar readable.
    norm = Normalize(vmin=0.0, vmax=largest if largest > 0 else 1.0)
    rows, columns = _grid(len(panels))
    # Fixed panel boxes instead of constrained layout: it measured every text twice per save and
    # cost more than the drawing itself. Equal aspect shrinks each panel inside its box. Two
    # panels in a row keep the canvas of FIGURE_SIZE_IN; each further row adds its height.
    height = FIGURE_SIZE_IN[1] if rows == 1 else 0.85 * FIGURE_SIZE_IN[1] * rows
    figure = Figure(figsize=(FIGURE_SIZE_IN[0], height), dpi=dpi)
    FigureCanvasAgg(figure)
    band = 0.78 / rows
    axes: list[Axes] = []
    for i, (panel, mw, lines) in enumerate(zip(panels, values, marks)):
        row, column = divmod(i, columns)
        box = (0.015 + column * 0.455 * 2 / max(columns, 2), 0.12 + (rows - 1 - row) * band,
               0.44 * 2 / max(columns, 2), band * (1.0 if rows == 1 else 0.9))
        ax = figure.add_axes(box, sharex=axes[0] if axes else None, sharey=axes[0] if axes else None)
        axes.append(ax)
        _draw_panel(ax, shape, mw, panel, lines, norm, highlighted)

    colorbar = figure.colorbar(ScalarMappable(norm=norm, cmap=_COLORMAP), cax=figure.add_axes((0.93, 0.2, 0.012, 0.62)))
    colorbar.set_label("MW")
    figure.suptitle(title, fontsize=14, y=0.975)
    handles = _legend_handles(any(m.blocked for m in marks), any(m.binding for m in marks),
                              any(m.outages for m in marks), bool(highlighted))
    figure.legend(handles=handles, loc="lower center", ncols=min(len(handles), 4), frameon=False, fontsize=9)
    return figure


@dataclass(frozen=True, eq=False)
class _MapShape:
    """What every panel shares: where buses and lines are drawn, and how big."""

    bus_numbers: tuple[int, ...]
    points: np.ndarray                # (buses, x/y)
    segments: np.ndarray              # (lines, 2 ends, x/y)
    reference: int                    # the reference bus's position
    size_low: float                   # marker areas (points^2): the smallest capacity, the largest,
    size_high: float
    dot: float                        # and a bus without capacity
    line_width: float
    low: np.ndarray                   # the drawing's lower-left and upper-right corners
    high: np.ndarray
    margin: float


def _map_shape(network: Network, xy: list[tuple[float, float]]) -> _MapShape:
    import numpy as np

    n = len(xy)
    points = np.asarray(xy, dtype=float).reshape(n, 2)
    index = {bus: position for position, bus in enumerate(network.bus_numbers)}
    ends = np.array([(index[line.from_bus], index[line.to_bus]) for line in network.lines], dtype=np.int64).reshape(-1, 2)
    # Marker areas shrink with the bus count so 10,000 buses stay distinguishable; 60 buses get
    # the full size that room for labels allows.
    scale = min(1.0, max(0.12, math.sqrt(LABEL_LIMIT / n)))
    # Fit the panels to the drawing, not to the unit box: a wide meshed layout would otherwise sit
    # in a strip of a square panel.
    low, high = points.min(axis=0), points.max(axis=0)
    return _MapShape(
        bus_numbers=tuple(network.bus_numbers), points=points, segments=points[ends],
        reference=index[network.reference_bus],
        size_low=30.0 * scale, size_high=300.0 * scale, dot=14.0 * scale,
        line_width=1.0 if n <= LABEL_LIMIT else (0.6 if n <= 2000 else 0.35),
        low=low, high=high, margin=0.04 * float((high - low).max()) or 0.5,
    )


def _draw_lines(ax: Axes, shape: _MapShape, lines: _PanelLines) -> None:
    """The lines in grey, then this panel's outages (dashed), binding (orange) and blocked (red)."""
    import numpy as np
    from matplotlib.collections import LineCollection

    width = shape.line_width
    plain = np.ones(len(shape.segments), dtype=bool)
    plain[lines.blocked + lines.binding + lines.outages] = False
    ax.add_collection(LineCollection(shape.segments[plain], colors=_LINE_GREY, linewidths=width, zorder=1))
    bold = max(2.5 * width + 0.5, 1.5)
    for positions, colour, style, z in ((lines.outages, "black", (0, (3, 2)), 2), (lines.binding, _BINDING_ORANGE, "-", 2),
                                        (lines.blocked, _BLOCKED_RED, "-", 3)):
        if positions:
            ax.add_collection(LineCollection(shape.segments[positions], colors=colour, linewidths=bold,
                                             linestyles=style, zorder=z))


def _draw_panel(ax: Axes, shape: _MapShape, values: list[float], panel: MapPanel, lines: _PanelLines,
                norm: Normalize, highlighted: list[int]) -> None:
    """One panel: the lines, a marker per bus sized and coloured by its MW, the rings and the
    reference bus's box, the bus numbers and the panel's total."""
    import numpy as np

    n, points = len(shape.points), shape.points
    mw = np.asarray(values, dtype=float)
    ax.set_title(panel.title)
    ax.set_aspect("equal")
    ax.set_xlim(shape.low[0] - shape.margin, shape.high[0] + shape.margin)
    ax.set_ylim(shape.low[1] - shape.margin, shape.high[1] + shape.margin)
    hide_axes(ax)  # layout coordinates carry no meaning a reader could use
    _draw_lines(ax, shape, lines)
    empty = mw <= 0
    # Marker area per bus (points^2), kept to push each bus-number label clear of its marker.
    area = np.where(empty, shape.dot, shape.size_low + (shape.size_high - shape.size_low) * mw / norm.vmax)
    ax.scatter(points[empty, 0], points[empty, 1], s=shape.dot, c=_DOT_GREY, linewidths=0, zorder=3)
    # Largest first so small markers are drawn on top rather than hidden; stable for ties.
    order = np.flatnonzero(~empty)
    order = order[np.argsort(-mw[order], kind="stable")]
    ax.scatter(
        points[order, 0], points[order, 1], s=area[order],
        c=mw[order], cmap=_COLORMAP, norm=norm,
        edgecolors="0.15", linewidths=0.4 if n <= 2000 else 0.2, zorder=4,
    )
    if highlighted:
        ring = shape.size_high * 1.6
        area[highlighted] = np.maximum(area[highlighted], ring)
        ax.scatter(
            points[highlighted, 0], points[highlighted, 1], s=ring,
            facecolors="none", edgecolors="black", linewidths=1.4, zorder=5,
        )
    square = max(shape.size_high, 40.0)
    # A square's corner reaches sqrt(2) times further than a circle of the same area.
    area[shape.reference] = max(area[shape.reference], 2.0 * square)
    ax.scatter(
        points[shape.reference, 0], points[shape.reference, 1], s=square, marker="s",
        facecolors="none", edgecolors="black", linewidths=1.2, zorder=6,
    )
    # Every bus on a small network; on a large one, the buses with the most capacity.
    labelled = np.arange(n) if n <= LABEL_LIMIT else order[:LABEL_LIMIT]
    _label_buses(ax, shape, area, labelled)
    served = int((~empty).sum())
    ax.annotate(
        f"{served} bus{'es' if served != 1 else ''} with capacity, {mw.sum():.1f} MW in total"
        + (f"; {panel.note}" if panel.note else ""),
        (0.0, 0.0), xycoords="axes fraction", xytext=(0, -10), textcoords="offset points",
        fontsize=9, color="0.3", va="top",
    )


def _label_buses(ax: Axes, shape: _MapShape, area: np.ndarray, positions: np.ndarray) -> None:
    """The number of each bus in ``positions`` just past its marker (``area``, points^2)."""
    import numpy as np
    from matplotlib import patheffects

    # A white halo keeps a number legible where a line runs through it.
    halo = [patheffects.withStroke(linewidth=2.0, foreground="white")]
    # Diagonal offset of (radius / sqrt 2 + 2) points puts the label just past the marker.
    offsets = np.sqrt(area) / 2.0 / math.sqrt(2.0) + 2.0
    for position in positions.tolist():
        shift = float(offsets[position])
        ax.annotate(
            str(shape.bus_numbers[position]), shape.points[position], xytext=(shift, shift), textcoords="offset points",
            fontsize=7, color="0.25", zorder=7, path_effects=halo,
        )


def _legend_handles(blocked: bool, binding: bool, outages: bool, highlighted: bool) -> list[Line2D]:
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=_LINE_GREY, linewidth=1.5, label="line"),
        Line2D([], [], linestyle="none", marker="o", markersize=4, markerfacecolor=_DOT_GREY,
               markeredgewidth=0, label="bus without capacity"),
        Line2D([], [], linestyle="none", marker="o", markersize=9, markerfacecolor=colormaps[_COLORMAP](0.6),
               markeredgecolor="0.15", markeredgewidth=0.5, label="bus with capacity (colour and size: MW)"),
        Line2D([], [], linestyle="none", marker="s", markersize=10, markerfacecolor="none",
               markeredgecolor="black", label="reference bus"),
    ]
    extra = [(blocked, Line2D([], [], color=_BLOCKED_RED, linewidth=2.5, label="blocked by background load")),
             (binding, Line2D([], [], color=_BINDING_ORANGE, linewidth=2.5, label="at its limit (binding)")),
             (outages, Line2D([], [], color="black", linewidth=2.0, linestyle=(0, (3, 2)),
                              label="outage after which a limit binds (N-1)"))]
    handles[1:1] = [handle for shown, handle in extra if shown]
    if highlighted:
        handles.append(Line2D([], [], linestyle="none", marker="o", markersize=11, markerfacecolor="none",
                              markeredgecolor="black", markeredgewidth=1.4, label="highlighted bus"))
    return handles


def hide_axes(ax: Axes) -> None:
    """No frame, ticks or tick labels (a map, an unused panel). The ticks are emptied too: placing
    the title, matplotlib still makes tick objects for hidden axes, a third of the time of a map
    of nine panels, for nothing that is drawn."""
    ax.set_axis_off()
    ax.set_xticks([])
    ax.set_yticks([])


def figure_bytes(drawers: Mapping[str, Callable[[Path], None]]) -> dict[str, bytes]:
    """Each figure's PNG bytes, by file name: every drawer draws into a scratch folder (the
    studies hand their files to one atomic directory write, not to the disk one by one)."""
    import tempfile

    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="dcmarket-figures-") as scratch:
        for name, draw in drawers.items():
            path = Path(scratch) / name
            draw(path)
            out[name] = path.read_bytes()
    return out


def _write_png_atomically(figure: Figure, path: Path, dpi: int) -> None:
    """Save beside ``path`` and rename, so a crash or a full disk never leaves half a PNG.

    The temporary name carries the process and thread so that concurrent writers of one path do
    not write into each other's file; the last rename wins with a complete picture.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        with open(partial, "wb") as handle:
            # "Software" is the only metadata Agg writes that would vary (matplotlib's version).
            figure.savefig(handle, format="png", dpi=dpi, metadata={"Software": None})
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise write_error(path, error) from None
        raise


# Panels of the mechanism comparison: column, title, scale to percent.
_COMPARISON_PANELS = (
    ("efficiency", "Efficiency (welfare / best, %)", 100.0),
    ("revenue_usd", "Revenue ($)", 1.0),
    ("allocated_share", "Capacity allocated (% of MW)", 100.0),
    ("min_surplus_usd", "Lowest bidder surplus ($)", 1.0),
)


def plot_mechanism_comparison(rows: list[dict], mechanisms: list[str], path: Path) -> None:
    """Box plots per mechanism (and population mix) of efficiency, revenue, capacity allocated and
    the lowest bidder surplus (below 0: a bidder paid more than its bundle is worth)."""
    from matplotlib.figure import Figure

    mixes = list(dict.fromkeys(r["mix"] for r in rows))
    figure = Figure(figsize=(12.0, 8.0))
    axes = figure.subplots(2, 2)
    for ax, (column, title, scale) in zip(axes.flat, _COMPARISON_PANELS):
        data, labels, positions = [], [], []
        for m_index, mix in enumerate(mixes):
            for k_index, kind in enumerate(mechanisms):
                values = [scale * float(r[column]) for r in rows if r["mix"] == mix and r["mechanism"] == kind
                          and not math.isnan(float(r[column]))]
                data.append(values or [math.nan])
                labels.append(kind)
                positions.append(m_index * (len(mechanisms) + 1) + k_index)
        ax.boxplot(data, positions=positions, widths=0.7, showmeans=True)
        ax.set_xticks(positions, labels, rotation=0, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", color="0.9")
        for m_index, mix in enumerate(mixes):
            centre = m_index * (len(mechanisms) + 1) + (len(mechanisms) - 1) / 2
            # Under the mechanism names, so that the label never covers a box.
            ax.annotate(mix, (centre, 0.0), xycoords=("data", "axes fraction"), ha="center", va="top",
                        fontsize=8, color="0.35", xytext=(0, -16), textcoords="offset points")
    figure.suptitle("Same products, same bidders: four mechanisms", fontsize=12)
    figure.tight_layout()
    _write_png_atomically(figure, path, DPI)
