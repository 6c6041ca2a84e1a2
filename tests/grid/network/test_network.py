"""Networks, built-in cases and shift factors (docs/models/capacity.md#ca-2-1, docs/models/capacity.md#eq-c-10,
docs/models/capacity.md#ca-5-1)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from grid.capacity.matrices.shift_factors import path_matrix, ptdf, shift_factors
from grid.errors import GridError
from grid.network.cases import available_cases, load_case
from grid.network.network import Bus, Line, Network


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def with_reactances(network: Network, reactances: list[float]) -> Network:
    lines = tuple(dataclasses.replace(l, reactance_pu=x) for l, x in zip(network.lines, reactances))
    return dataclasses.replace(network, lines=lines)


def random_tree(rng: np.random.Generator, n_bus: int) -> Network:
    """A random tree with shuffled, non-contiguous bus labels, random orientations and reactances."""
    labels = [int(x) for x in rng.choice(np.arange(1, 10 * n_bus), size=n_bus, replace=False)]
    lines = []
    for position in range(1, n_bus):
        parent = labels[int(rng.integers(0, position))]
        child = labels[position]
        a, b = (parent, child) if rng.random() < 0.5 else (child, parent)
        lines.append(Line(f"L{position}", a, b, 100.0, float(rng.uniform(0.01, 1.0))))
    order = rng.permutation(len(lines))
    return Network(
        name="tree",
        buses=tuple(Bus(n) for n in labels),
        lines=tuple(lines[i] for i in order),
        reference_bus=labels[int(rng.integers(0, n_bus))],
    )


def test_paper_case_matches_spec_5_1():
    net = load_case("paper-4bus")
    assert "paper-4bus" in available_cases()
    assert net.bus_numbers == (1, 2, 3, 4)
    assert net.reference_bus == 1
    assert [b.withdrawal_limit_mw for b in net.buses] == [40.0] * 4
    assert [(l.name, l.from_bus, l.to_bus, l.thermal_limit_mw) for l in net.lines] == [
        ("1-2", 1, 2, 100.0), ("2-3", 2, 3, 50.0), ("2-4", 2, 4, 50.0)
    ]
    assert all(l.reactance_pu is None for l in net.lines)
    assert net.is_radial()
    # docs/models/capacity.md#ca-5-2: rows 1-2, 2-3, 2-4; columns buses 1..4.
    expected = np.array([[0, 1, 1, 1], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)
    np.testing.assert_array_equal(path_matrix(net), expected)
    np.testing.assert_array_equal(shift_factors(net), expected)


def test_load_case_returns_fresh_equal_networks_and_rejects_unknown_names():
    assert load_case("paper-4bus") == load_case("paper-4bus")
    with pytest.raises(GridError) as exc:
        load_case("ieee-9999")
    assert "ieee-9999" in one_line(exc) and "paper-4bus" in str(exc.value)


def test_path_matrix_equals_ptdf_on_the_paper_case_with_any_reactances():
    net = with_reactances(load_case("paper-4bus"), [0.07, 0.3, 1.9])
    np.testing.assert_allclose(ptdf(net), path_matrix(net), atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_path_matrix_equals_ptdf_on_random_trees(seed):
    rng = np.random.default_rng(seed)
    net = random_tree(rng, int(rng.integers(2, 40)))
    h = path_matrix(net)
    assert set(np.unique(h)) <= {-1.0, 0.0, 1.0}
    assert not h[:, net.bus_index(net.reference_bus)].any()
    np.testing.assert_allclose(ptdf(net), h, atol=1e-10)


def test_path_matrix_signs_follow_line_orientation():
    # 1 <- 2 -> 3 with reference 1: line "2-1" points towards the root.
    net = Network(
        "flip", (Bus(1), Bus(2), Bus(3)), (Line("2-1", 2, 1, 10.0), Line("2-3", 2, 3, 10.0)), 1
    )
    np.testing.assert_array_equal(path_matrix(net), [[0, -1, -1], [0, 0, 1]])


def test_ptdf_of_a_triangle_splits_flow_by_path_impedance():
    net = Network(
        "triangle",
        (Bus(1), Bus(2), Bus(3)),
        (Line("1-2", 1, 2, 10.0, 0.1), Line("2-3", 2, 3, 10.0, 0.1), Line("1-3", 1, 3, 10.0, 0.1)),
        1,
    )
    h = ptdf(net)
    # 1 MW withdrawn at bus 3: 2/3 on the direct line, 1/3 via 1-2-3 (impedance 2x vs 1x).
    np.testing.assert_allclose(h[:, 2], [1 / 3, 1 / 3, 2 / 3])
    np.testing.assert_allclose(h[:, 1], [2 / 3, -1 / 3, 1 / 3])
    np.testing.assert_array_equal(h[:, 0], 0.0)
    assert not net.is_radial()
    np.testing.assert_allclose(shift_factors(net), h)
    with pytest.raises(GridError) as exc:
        path_matrix(net)
    assert "triangle" in one_line(exc) and "ptdf" in str(exc.value)


def test_ptdf_names_the_first_line_without_reactance():
    net = Network(
        "triangle",
        (Bus(1), Bus(2), Bus(3)),
        (Line("1-2", 1, 2, 10.0, 0.1), Line("2-3", 2, 3, 10.0), Line("1-3", 1, 3, 10.0)),
        1,
    )
    with pytest.raises(GridError) as exc:
        shift_factors(net)
    assert "line 2-3" in one_line(exc) and "reactance_pu" in str(exc.value)


def _net(buses, lines, reference=1, name="t"):
    return Network(name, tuple(buses), tuple(lines), reference)


@pytest.mark.parametrize(
    "build, needle",
    [
        (lambda: _net([Bus(1), Bus(1)], []), "bus 1"),
        (lambda: _net([Bus(1), Bus(2)], [Line("1-7", 1, 7, 5.0)]), "bus 7"),
        (lambda: _net([Bus(1), Bus(2)], [Line("2-2", 2, 2, 5.0)]), "line 2-2"),
        (lambda: _net([Bus(1), Bus(2)], [Line("1-2", 1, 2, 5.0)], reference=9), "reference bus 9"),
        (lambda: _net([Bus(1), Bus(2, withdrawal_limit_mw=0.0)], [Line("1-2", 1, 2, 5.0)]), "bus 2"),
        (lambda: _net([Bus(1), Bus(2)], [Line("1-2", 1, 2, -5.0)]), "line 1-2"),
        (lambda: _net([Bus(1), Bus(2)], [Line("1-2", 1, 2, 5.0, reactance_pu=0.0)]), "line 1-2"),
        (lambda: _net([Bus(1), Bus(2), Bus(3)], [Line("1-2", 1, 2, 5.0)]), "bus 3"),
        (lambda: _net([Bus(1), Bus(2), Bus(3)], [Line("a", 1, 2, 5.0), Line("a", 2, 3, 5.0)]), "'a'"),
        (lambda: _net([], []), "no buses"),
    ],
)
def test_network_validation_names_the_culprit_in_one_line(build, needle):
    with pytest.raises(GridError) as exc:
        build()
    assert needle in one_line(exc)


def test_disconnected_network_names_an_unreachable_bus():
    with pytest.raises(GridError) as exc:
        _net([Bus(1), Bus(2), Bus(3), Bus(4)], [Line("1-2", 1, 2, 5.0), Line("3-4", 3, 4, 5.0)])
    assert "bus 3" in one_line(exc) and "not connected" in str(exc.value)


def test_bus_lookup():
    net = load_case("paper-4bus")
    assert net.bus_index(3) == 2 and net.has_bus(4) and not net.has_bus(7)
    with pytest.raises(GridError) as exc:
        net.bus_index(7)
    assert one_line(exc) == "unknown bus 7; network 'paper-4bus' has buses 1, 2, 3, 4"


def test_infinite_limits_are_allowed_and_a_single_bus_is_radial():
    net = _net([Bus(1)], [])
    assert net.is_radial() and path_matrix(net).shape == (0, 1)
    net = _net([Bus(1), Bus(2, math.inf)], [Line("1-2", 1, 2, math.inf)])
    assert net.is_radial()
