"""Background-load scenarios: truncated-normal sampling and CSV input (spec 5.1, 5.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import truncnorm

from grid.cases import load_case
from grid.errors import GridError
from grid.scenarios import Scenarios, TruncatedNormalLoad, read_scenarios_csv, sample_truncated_normal

# Spec 5.2: the inferred supports, parent variance 5.
PAPER_LOADS = {
    1: TruncatedNormalLoad(25.0, 5.0, 20.0, 30.0),
    2: TruncatedNormalLoad(25.0, 5.0, 20.0, 30.0),
    3: TruncatedNormalLoad(15.0, 5.0, 10.0, 20.0),
    4: TruncatedNormalLoad(20.0, 5.0, 10.0, 30.0),
}


@pytest.fixture
def net():
    return load_case("paper-4bus")


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_same_seed_gives_identical_samples(net):
    a = sample_truncated_normal(net, PAPER_LOADS, 500, np.random.default_rng(42))
    b = sample_truncated_normal(net, dict(reversed(PAPER_LOADS.items())), 500, np.random.default_rng(42))
    c = sample_truncated_normal(net, PAPER_LOADS, 500, np.random.default_rng(43))
    np.testing.assert_array_equal(a.samples_mw, b.samples_mw)
    assert not np.array_equal(a.samples_mw, c.samples_mw)
    assert a.count == 500 and a.buses == (1, 2, 3, 4) and a.samples_mw.shape == (500, 4)


def test_samples_stay_in_the_truncation_box(net):
    s = sample_truncated_normal(net, PAPER_LOADS, 5000, np.random.default_rng(1))
    np.testing.assert_array_equal(s.lower_mw, [20, 20, 10, 10])
    np.testing.assert_array_equal(s.upper_mw, [30, 30, 20, 30])
    assert np.all(s.samples_mw >= s.lower_mw) and np.all(s.samples_mw <= s.upper_mw)


def test_sample_mean_matches_the_truncated_normal_mean(net):
    # Bus 2's truncation is asymmetric, so its mean (about 22.8) differs from the parent mean 20.
    loads = {2: TruncatedNormalLoad(20.0, 25.0, 18.0, 40.0), 4: PAPER_LOADS[4]}
    count = 20000
    s = sample_truncated_normal(net, loads, count, np.random.default_rng(7))
    for bus, load in loads.items():
        sd = math.sqrt(load.variance_mw2)
        dist = truncnorm((load.lower_mw - load.mean_mw) / sd, (load.upper_mw - load.mean_mw) / sd,
                         loc=load.mean_mw, scale=sd)
        column = s.samples_mw[:, net.bus_index(bus)]
        assert abs(column.mean() - dist.mean()) < 4 * dist.std() / math.sqrt(count)
        assert abs(column.std() - dist.std()) < 0.05 * dist.std()


def test_buses_without_a_load_have_zero_background(net):
    s = sample_truncated_normal(net, {3: PAPER_LOADS[3]}, 10, np.random.default_rng(0))
    for bus in (1, 2, 4):
        j = net.bus_index(bus)
        assert not s.samples_mw[:, j].any() and s.lower_mw[j] == 0 and s.upper_mw[j] == 0


def test_sampling_rejects_bad_input(net):
    with pytest.raises(GridError) as exc:
        sample_truncated_normal(net, {9: PAPER_LOADS[1]}, 10, np.random.default_rng(0))
    assert "bus 9" in one_line(exc)
    with pytest.raises(GridError) as exc:
        sample_truncated_normal(net, PAPER_LOADS, 0, np.random.default_rng(0))
    assert "count" in one_line(exc)


@pytest.mark.parametrize(
    "args, needle",
    [((10.0, 0.0, 5.0, 15.0), "variance_mw2"), ((10.0, 1.0, 15.0, 5.0), "lower_mw"),
     ((10.0, 1.0, 15.0, 15.0), "lower_mw"), ((10.0, 1.0, 5.0, math.inf), "upper_mw")],
)
def test_truncated_normal_load_validation(args, needle):
    with pytest.raises(GridError) as exc:
        TruncatedNormalLoad(*args)
    assert needle in one_line(exc)


def test_scenarios_are_read_only_copies(net):
    data = np.zeros((2, 4))
    s = Scenarios(net.bus_numbers, data, np.zeros(4), np.zeros(4))
    data[0, 0] = 5.0
    assert s.samples_mw[0, 0] == 0.0
    with pytest.raises(ValueError):
        s.samples_mw[0, 0] = 1.0


def test_read_csv_maps_columns_to_bus_order(net, tmp_path):
    path = tmp_path / "loads.csv"
    path.write_text("4, 2\n10.5,20\n12,  21.5\n11,19\n\n")
    s = read_scenarios_csv(path, net)
    assert s.buses == (1, 2, 3, 4) and s.count == 3
    np.testing.assert_array_equal(s.samples_mw, [[0, 20, 0, 10.5], [0, 21.5, 0, 12], [0, 19, 0, 11]])
    np.testing.assert_array_equal(s.lower_mw, [0, 19, 0, 10.5])
    np.testing.assert_array_equal(s.upper_mw, [0, 21.5, 0, 12])


@pytest.mark.parametrize(
    "text, needles",
    [
        ("", ["empty"]),
        ("\n\n", ["empty"]),
        ("1,2\n", ["no scenario rows"]),
        ("1,bus2\n1,2\n", ["column 2", "'bus2'"]),
        ("1,9\n1,2\n", ["bus 9"]),
        ("1,3,1\n1,2,3\n", ["bus 1", "two columns"]),
        ("1,2\n1,2\n3,abc\n", ["line 3", "bus 2", "'abc'"]),
        ("1,2\n1,2\n3,\n", ["line 3", "bus 2"]),
        ("1,2\n1,nan\n", ["line 2", "bus 2", "finite"]),
        ("1,2\ninf,1\n", ["line 2", "bus 1", "finite"]),
        ("1,2\n1,2,3\n", ["line 2", "3 cells"]),
    ],
)
def test_read_csv_errors_name_file_and_cell(net, tmp_path, text, needles):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(GridError) as exc:
        read_scenarios_csv(path, net)
    message = one_line(exc)
    assert "bad.csv" in message
    for needle in needles:
        assert needle in message


def test_read_csv_missing_file(net, tmp_path):
    with pytest.raises(GridError) as exc:
        read_scenarios_csv(tmp_path / "nope.csv", net)
    assert "nope.csv" in one_line(exc) and "not found" in str(exc.value)


def test_sampling_draws_bus_by_bus_in_bus_order(net):
    loads = {4: PAPER_LOADS[4], 1: PAPER_LOADS[1], 3: PAPER_LOADS[3]}
    s = sample_truncated_normal(net, loads, 300, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    for bus in (1, 3, 4):
        load = loads[bus]
        sd = math.sqrt(load.variance_mw2)
        expected = truncnorm((load.lower_mw - load.mean_mw) / sd, (load.upper_mw - load.mean_mw) / sd,
                             loc=load.mean_mw, scale=sd).rvs(size=300, random_state=rng)
        np.testing.assert_array_equal(s.samples_mw[:, net.bus_index(bus)], expected)
