"""Bus layouts (grid/network/layout.py) and capacity maps (sim/report/figures/plots.py).

Networks are built here (trees, lattices, rings, random meshes) rather than loaded from MATPOWER
cases, so these tests do not depend on the case importer.
"""

from __future__ import annotations

import errno
import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grid.network.layout import bus_positions
from grid.network.network import Bus, Line, Network
from sim.errors import OutputError
from sim.report.figures.plots import (
    DPI,
    FIGURE_SIZE_IN,
    MapPanel,
    plot_capacity_map,
    plot_capacity_panels,
)


def make_network(
    count: int,
    pairs: list[tuple[int, int]],
    *,
    reference: int = 1,
    coordinates: dict[int, tuple[float, float]] | None = None,
) -> Network:
    """Buses 1..count joined by ``pairs`` (bus numbers); lines are named "a-b#k"."""
    coordinates = coordinates or {}
    return Network(
        name=f"test-{count}",
        buses=tuple(Bus(number, coordinates=coordinates.get(number)) for number in range(1, count + 1)),
        lines=tuple(Line(f"{a}-{b}#{k}", a, b, thermal_limit_mw=100.0, reactance_pu=0.1) for k, (a, b) in enumerate(pairs)),
        reference_bus=reference,
    )


def random_tree_pairs(count: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(1, bus)), bus) for bus in range(2, count + 1)]


def random_mesh_pairs(count: int, extra: int, seed: int) -> list[tuple[int, int]]:
    """A random tree plus ``extra`` distinct chords: connected and meshed."""
    pairs = random_tree_pairs(count, seed)
    seen = {frozenset(p) for p in pairs}
    rng = np.random.default_rng(seed + 1)
    while len(pairs) < count - 1 + extra:
        a, b = (int(v) for v in rng.integers(1, count + 1, size=2))
        if a != b and frozenset((a, b)) not in seen:
            seen.add(frozenset((a, b)))
            pairs.append((a, b))
    return pairs


def lattice_pairs(rows: int, cols: int, offset: int = 0) -> list[tuple[int, int]]:
    number = lambda r, c: offset + r * cols + c + 1  # noqa: E731
    pairs = [(number(r, c), number(r, c + 1)) for r in range(rows) for c in range(cols - 1)]
    pairs += [(number(r, c), number(r + 1, c)) for r in range(rows - 1) for c in range(cols)]
    return pairs


def ring_pairs(count: int) -> list[tuple[int, int]]:
    return [(bus, bus % count + 1) for bus in range(1, count + 1)]


def as_array(positions: dict[int, tuple[float, float]]) -> np.ndarray:
    return np.array(list(positions.values()), dtype=float)


def assert_unit_box(positions: dict[int, tuple[float, float]]) -> None:
    xy = as_array(positions)
    assert np.isfinite(xy).all()
    assert xy.min() >= 0.0 and xy.max() <= 1.0
    if len(xy) > 1:
        # Normalised, not merely inside: the drawing spans the box along its longer axis.
        assert (xy.max(axis=0) - xy.min(axis=0)).max() == pytest.approx(1.0)


# ----------------------------------------------------------------------------------- layout


@pytest.mark.parametrize(
    "network",
    [
        make_network(200, random_tree_pairs(200, seed=1), reference=50),
        make_network(300, random_mesh_pairs(300, 60, seed=2)),
        make_network(40, ring_pairs(40)),  # tied eigenvalues: any rotation of the pair is valid
        make_network(400, lattice_pairs(20, 20)),  # ditto, and large enough for ARPACK
    ],
    ids=["tree", "mesh", "ring", "lattice"],
)
def test_layout_is_deterministic_in_the_unit_box(network: Network) -> None:
    first = bus_positions(network)
    # A rebuilt network has no cached state, so equality is not an artefact of caching.
    rebuilt = Network(network.name, network.buses, network.lines, network.reference_bus)
    assert bus_positions(rebuilt) == first == bus_positions(network)
    assert list(first) == list(network.bus_numbers)
    assert_unit_box(first)
    xy = as_array(first)
    # No two buses drawn on the same spot (a collapsed layout would hide buses).
    gaps = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2)) + np.eye(len(xy))
    assert gaps.min() > 1e-4


def test_given_coordinates_are_used_scaled_with_their_aspect_ratio() -> None:
    coordinates = {1: (10.0, 5.0), 2: (14.0, 5.0), 3: (14.0, 7.0), 4: (10.0, 7.0)}
    network = make_network(4, ring_pairs(4), coordinates=coordinates)
    positions = bus_positions(network)
    # x spans 4 units -> [0, 1]; y spans 2 units -> half the box, centred.
    expected = {1: (0.0, 0.25), 2: (1.0, 0.25), 3: (1.0, 0.75), 4: (0.0, 0.75)}
    for bus, (x, y) in expected.items():
        assert positions[bus] == pytest.approx((x, y))


def test_coordinates_are_ignored_unless_every_bus_has_them() -> None:
    pairs = random_tree_pairs(30, seed=3)
    partial = make_network(30, pairs, coordinates={1: (100.0, 100.0)})
    assert bus_positions(partial) == bus_positions(make_network(30, pairs))


def test_tree_layout_hangs_children_one_level_below_parents_within_their_span() -> None:
    count, reference = 500, 37
    network = make_network(count, random_tree_pairs(count, seed=4), reference=reference)
    positions = bus_positions(network)
    assert_unit_box(positions)

    # Parents and depths by breadth-first search from the reference bus.
    parent = {reference: None}
    depth = {reference: 0}
    queue = [reference]
    for bus in queue:
        for other, _ in network.adjacency[bus]:
            if other not in parent:
                parent[other], depth[other] = bus, depth[bus] + 1
                queue.append(other)
    level = 1.0 / max(depth.values())
    assert positions[reference][1] == pytest.approx(1.0)

    children: dict[int, list[int]] = {}
    for bus, up in parent.items():
        if up is not None:
            children.setdefault(up, []).append(bus)
            assert positions[bus][1] == pytest.approx(positions[up][1] - level)
    for bus, kids in children.items():
        xs = [positions[kid][0] for kid in kids]
        assert min(xs) - 1e-12 <= positions[bus][0] <= max(xs) + 1e-12
    leaves = sorted(positions[bus][0] for bus in network.bus_numbers if bus not in children)
    assert len(set(leaves)) == len(leaves)  # leaves never share a spot


def test_parallel_lines_do_not_make_a_feeder_meshed() -> None:
    network = make_network(3, [(1, 2), (1, 2), (2, 3)])
    assert not network.is_radial()
    assert bus_positions(network) == {1: (0.5, 1.0), 2: (0.5, 0.5), 3: (0.5, 0.0)}


def test_single_bus_sits_in_the_middle() -> None:
    assert bus_positions(make_network(1, [])) == {1: (0.5, 0.5)}


def test_long_feeder_does_not_hit_the_recursion_limit() -> None:
    count = 5000
    positions = bus_positions(make_network(count, [(bus, bus + 1) for bus in range(1, count)]))
    assert positions[1] == (0.5, 1.0) and positions[count] == (0.5, 0.0)


def test_spectral_layout_separates_two_loosely_joined_clusters() -> None:
    size = 150
    first = random_mesh_pairs(size, 150, seed=5)
    second = [(a + size, b + size) for a, b in random_mesh_pairs(size, 150, seed=6)]
    network = make_network(2 * size, first + second + [(1, size + 1)])
    xy = as_array(bus_positions(network))
    left, right = xy[:size], xy[size:]
    spread = max(np.sqrt(((part - part.mean(axis=0)) ** 2).sum(axis=1).mean()) for part in (left, right))
    assert np.linalg.norm(left.mean(axis=0) - right.mean(axis=0)) > 2 * spread
    # The clusters are also split by a line: the major (horizontal) axis puts one on each side.
    assert left[:, 0].max() < right[:, 0].min() or right[:, 0].max() < left[:, 0].min()


def test_small_meshed_networks_lay_out() -> None:
    triangle = bus_positions(make_network(3, ring_pairs(3)))
    assert_unit_box(triangle)
    assert len(set(triangle.values())) == 3


def test_two_thousand_bus_meshed_network_lays_out() -> None:
    count = 2000
    network = make_network(count, random_mesh_pairs(count, 600, seed=7), reference=17)
    positions = bus_positions(network)
    assert len(positions) == count
    assert_unit_box(positions)


# ----------------------------------------------------------------------------------- plots


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    assert data[-8:-4] == b"IEND"  # the whole file, not a truncated one
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def expected_size(dpi: int) -> tuple[int, int]:
    return round(FIGURE_SIZE_IN[0] * dpi), round(FIGURE_SIZE_IN[1] * dpi)


@pytest.fixture(scope="module")
def small_mesh() -> Network:
    return make_network(30, random_mesh_pairs(30, 8, seed=8), reference=3)


def test_capacity_map_is_a_png_of_the_expected_size_and_byte_identical(tmp_path: Path, small_mesh: Network) -> None:
    firm = {4: 12.5, 9: 40.0, 20: 0.0}
    flexible = {4: 20.0, 9: 55.0, 11: 7.5}
    blocked = [small_mesh.lines[0].name, small_mesh.lines[5].name]
    kwargs = dict(title="30-bus test network", blocked_lines=blocked, highlight_buses=[9])
    first, second = tmp_path / "a" / "map.png", tmp_path / "b" / "map.png"
    plot_capacity_map(small_mesh, firm, flexible, first, **kwargs)
    plot_capacity_map(small_mesh, firm, flexible, second, **kwargs)
    assert png_size(first) == expected_size(DPI)
    assert first.read_bytes() == second.read_bytes()
    # Overwriting in place gives the same bytes and leaves no temporary file behind.
    plot_capacity_map(small_mesh, firm, flexible, first, **kwargs)
    assert first.read_bytes() == second.read_bytes()
    assert sorted(p.name for p in first.parent.iterdir()) == ["map.png"]


def test_capacity_map_with_no_capacity_anywhere(tmp_path: Path) -> None:
    network = make_network(300, random_tree_pairs(300, seed=9))
    path = tmp_path / "zero.png"
    plot_capacity_map(
        network, {bus: 0.0 for bus in network.bus_numbers}, {}, path, title="nothing to sell",
        blocked_lines=[line.name for line in network.lines[:10]], dpi=50,
    )
    assert png_size(path) == expected_size(50)


def test_capacity_map_of_a_single_bus(tmp_path: Path) -> None:
    path = tmp_path / "one.png"
    plot_capacity_map(make_network(1, []), {1: 5.0}, {1: 8.0}, path, title="one bus", highlight_buses=[1], dpi=50)
    assert png_size(path) == expected_size(50)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png"]


def test_capacity_map_of_a_thousand_buses_with_precomputed_positions(tmp_path: Path) -> None:
    network = make_network(1000, random_mesh_pairs(1000, 300, seed=10))
    positions = bus_positions(network)
    firm = {bus: float(bus % 17) for bus in network.bus_numbers[::9]}
    flexible = {bus: 1.5 * value for bus, value in firm.items()}
    path = tmp_path / "big.png"
    plot_capacity_map(
        network, firm, flexible, path, title="1,000 buses", positions=positions,
        flexible_title="Flexible capacity, risk 10 % (MW)", dpi=50,
    )
    assert png_size(path) == expected_size(50)


def test_a_map_of_four_panels_marks_each_panel_s_lines_and_is_byte_identical(tmp_path: Path, small_mesh: Network) -> None:
    line = small_mesh.lines[0].name
    panels = [MapPanel("firm", {4: 1.0}, blocked_lines=[line]), MapPanel("1 %", {4: 2.0}, binding_lines=[line]),
              MapPanel("5 %", {4: 3.0}, outage_lines=[line]), MapPanel("10 %", {4: 4.0, 5: 1.0}, note="a note")]
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    for path in (first, second):
        plot_capacity_panels(small_mesh, panels, path, title="four", dpi=50)
    assert first.read_bytes() == second.read_bytes()
    assert png_size(first) == (int(FIGURE_SIZE_IN[0] * 50), int(2 * 0.85 * FIGURE_SIZE_IN[1] * 50))
    with pytest.raises(ValueError, match="binding_lines: 'no such line'"):
        plot_capacity_panels(small_mesh, [MapPanel("x", {}, binding_lines=["no such line"])], tmp_path / "c.png",
                             title="bad")
    with pytest.raises(ValueError, match="at least one panel"):
        plot_capacity_panels(small_mesh, [], tmp_path / "d.png", title="none")
    assert not (tmp_path / "c.png").exists() and not (tmp_path / "d.png").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(firm_mw={99: 1.0}), "bus 99"),
        (dict(flexible_mw={2: math.nan}), "bus 2"),
        (dict(flexible_mw={2: -5.0}), "bus 2"),
        (dict(blocked_lines=["no such line"]), "no such line"),
        (dict(highlight_buses=[0]), "bus 0"),
        (dict(positions={1: (0.0, 0.0)}), "no position"),
        (dict(positions={bus: (math.nan, 0.0) for bus in range(1, 31)}), "finite"),
    ],
)
def test_bad_inputs_name_the_culprit_and_write_nothing(tmp_path: Path, small_mesh: Network, change: dict, message: str) -> None:
    arguments = dict(firm_mw={4: 1.0}, flexible_mw={4: 2.0}, title="bad")
    arguments.update(change)
    path = tmp_path / "bad.png"
    with pytest.raises(ValueError, match=message):
        plot_capacity_map(small_mesh, path=path, **arguments)
    assert list(tmp_path.iterdir()) == []


def test_a_crash_while_writing_leaves_no_file(tmp_path: Path, small_mesh: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure

    def half_then_crash(self: Figure, handle, **kwargs) -> None:
        handle.write(b"\x89PNG half a picture")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", half_then_crash)
    with pytest.raises(OutputError) as error:
        plot_capacity_map(small_mesh, {4: 1.0}, {4: 2.0}, tmp_path / "map.png", title="crash")
    assert str(error.value) == (f"{tmp_path / 'map.png'}: cannot write (No space left on device): the disk may be "
                                "full, or its quota used up; free some space, or choose another --out")
    assert list(tmp_path.iterdir()) == []


def test_importing_plots_does_not_import_matplotlib() -> None:
    code = "import sys, sim.report.figures.plots; sys.exit('matplotlib' in sys.modules)"
    root = Path(__file__).resolve().parents[3]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0


def test_hidden_axes_draw_the_pixels_of_set_axis_off_without_tick_objects():
    """hide_axes empties the ticks as well as hiding the axes: the same picture, byte for byte,
    and no tick objects made when the figure is drawn (the titles placed) beyond the one each axis
    makes when first asked (matplotlib's lazy tick list, read here without asking it)."""
    import io

    from matplotlib.figure import Figure

    from sim.report.figures.plots import hide_axes

    def png(hide) -> tuple[bytes, int]:
        figure = Figure(figsize=(4.0, 3.0))
        axes = figure.subplots(2, 2)
        for k, ax in enumerate(axes.flat):
            ax.plot([0, 1, 2], [k, 2 - k, k], color="C0")
            ax.set_title(f"panel {k}", fontsize=8)
            hide(ax)
        out = io.BytesIO()
        figure.savefig(out, format="png", dpi=60, metadata={"Software": None})
        ticks = sum(len(vars(axis).get("majorTicks", [])) for ax in axes.flat for axis in (ax.xaxis, ax.yaxis))
        return out.getvalue(), ticks

    plain, made = png(lambda ax: ax.set_axis_off())
    hidden, none = png(hide_axes)
    assert hidden == plain
    assert none == 8 < made  # 2 x 2 panels, an x and a y axis each
