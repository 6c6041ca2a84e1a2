"""Background-load scenarios: truncated-normal, base-load and copula sampling; CSV and Parquet input;
the memory guard (docs/models/capacity.md#ca-5-1, docs/models/capacity.md#ca-5-2)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import special
from scipy.stats import kstest, truncnorm

from grid import memory_guard
from grid.errors import GridError
from grid.load import scenarios as scenarios_module
from grid.load.files import (
    read_correlation_csv,
    read_scenarios_csv,
    read_scenarios_file,
    read_scenarios_parquet,
)
from grid.load.scenarios import (
    BaseLoadSpread,
    CorrelatedSpread,
    Scenarios,
    TruncatedNormalLoad,
    sample_base_load,
    sample_correlated,
    sample_truncated_normal,
)
from grid.memory_guard import check_scenario_memory, scenario_memory_bytes
from grid.network.cases import load_case
from grid.network.network import Bus, Generator, Line, Network

# docs/models/capacity.md#ca-5-2: the inferred supports, parent variance 5.
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


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_scenarios_reject_non_finite_samples(net, bad):
    data = np.zeros((2, 4))
    data[1, 2] = bad
    with pytest.raises(GridError) as exc:
        Scenarios(net.bus_numbers, data, np.zeros(4), np.ones(4))
    assert "finite" in one_line(exc)
    with pytest.raises(GridError) as exc:
        Scenarios(net.bus_numbers, np.full((2, 4), 2.0), np.zeros(4), np.ones(4))
    assert "sample 0 at bus 1 (2.0 MW) lies outside the box" in one_line(exc)


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


# --------------------------------------------------------------------------------------------
# Base-load spread, correlated loads, Parquet input and the memory guard

# Base load Pd per bus; bus 1 and 6 have none, bus 4 a negative one (a net injection).
BASE_LOAD = {1: 0.0, 2: 50.0, 3: 20.0, 4: -10.0, 5: 80.0, 6: 0.0}
# Committed generation per bus: bus 5 has two units (30 + 5 MW).
COMMITTED = {1: 100.0, 5: 35.0, 6: 15.0}
CENTRE = np.array([BASE_LOAD[b] - COMMITTED.get(b, 0.0) for b in sorted(BASE_LOAD)])  # Pd - Pg


@pytest.fixture
def loaded():
    buses = [Bus(number, base_load_mw=pd) for number, pd in BASE_LOAD.items()]
    lines = [Line("1-2", 1, 2, 100.0), Line("2-3", 2, 3, 100.0), Line("2-4", 2, 4, 100.0),
             Line("4-5", 4, 5, 100.0), Line("5-6", 5, 6, 100.0)]
    generators = [Generator(1, 100.0, 200.0), Generator(5, 30.0, 60.0), Generator(5, 5.0, 10.0),
                  Generator(6, 15.0, 20.0)]
    return Network("loaded-6", buses, lines, 1, generators=generators)


def normal_scores(samples: np.ndarray, dists) -> np.ndarray:
    """Phi^-1(F_j(x)) per column: the latent scores of a Gaussian copula, via scipy's CDFs."""
    u = np.column_stack([dist.cdf(samples[:, j]) for j, dist in enumerate(dists)])
    return special.ndtri(np.clip(u, 1e-15, 1 - 1e-15))


def correlation_tolerance(rho: float, count: int) -> float:
    # The sample correlation of n bivariate normal pairs has sd about (1 - rho^2) / sqrt(n); 5 sd.
    return 5 * (1 - rho**2) / math.sqrt(count)


def test_base_load_box_is_centre_plus_minus_truncation(loaded):
    s = sample_base_load(loaded, BaseLoadSpread(sd_fraction=0.1, truncation_sd=2.0), 3000, np.random.default_rng(0))
    sd = 0.1 * np.abs([BASE_LOAD[b] for b in sorted(BASE_LOAD)])
    assert s.buses == (1, 2, 3, 4, 5, 6) and s.samples_mw.shape == (3000, 6)
    np.testing.assert_allclose(s.lower_mw, CENTRE - 2 * sd)
    np.testing.assert_allclose(s.upper_mw, CENTRE + 2 * sd)
    assert np.all(s.samples_mw >= s.lower_mw) and np.all(s.samples_mw <= s.upper_mw)
    # Buses without base load do not vary: they carry minus their committed generation.
    for bus, expected in ((1, -100.0), (6, -15.0)):
        j = loaded.bus_index(bus)
        assert np.all(s.samples_mw[:, j] == expected) and s.lower_mw[j] == s.upper_mw[j] == expected
    # The draw fills the box: some sample comes within 5 % of the box edge at every varying bus.
    for j in (1, 2, 3, 4):
        assert s.samples_mw[:, j].max() > CENTRE[j] + 0.95 * 2 * sd[j]
        assert s.samples_mw[:, j].min() < CENTRE[j] - 0.95 * 2 * sd[j]


@pytest.mark.parametrize("truncation", [1.0, 3.0])
def test_base_load_marginals_match_the_truncated_normal(loaded, truncation):
    count = 20000
    s = sample_base_load(loaded, BaseLoadSpread(0.1, truncation), count, np.random.default_rng(11))
    for bus in (2, 3, 4, 5):
        j = loaded.bus_index(bus)
        dist = truncnorm(-truncation, truncation, loc=CENTRE[j], scale=0.1 * abs(BASE_LOAD[bus]))
        column = s.samples_mw[:, j]
        assert abs(column.mean() - dist.mean()) < 4 * dist.std() / math.sqrt(count)
        # The sd estimate of a light-tailed sample has relative sd below 1/sqrt(2n) = 0.5 %; 3 %.
        assert abs(column.std() - dist.std()) < 0.03 * dist.std()
        # Kolmogorov-Smirnov statistic below its 0.1 % critical value 1.95 / sqrt(n).
        assert kstest(column, dist.cdf).statistic < 1.95 / math.sqrt(count)


def test_base_load_follows_its_documented_draw_order(loaded, monkeypatch):
    # Small blocks so that the draw spans several blocks (4 varying buses: 16 rows per block).
    monkeypatch.setattr(scenarios_module, "BLOCK_NUMBERS", 64)
    count, bound = 50, 1.0
    rng = np.random.default_rng(3)
    s = sample_base_load(loaded, BaseLoadSpread(0.1, bound), count, rng)

    replica = np.random.default_rng(3)
    key = [int(w) for w in replica.integers(0, 2**64, size=2, dtype=np.uint64)]
    blocks = []
    for k, rows in enumerate((16, 16, 16, 2)):
        child = np.random.Generator(np.random.PCG64(np.random.SeedSequence(key, spawn_key=(k,))))
        z = child.standard_normal((rows, 4)).reshape(-1)
        outside = np.flatnonzero(np.abs(z) > bound)
        while outside.size:
            z[outside] = child.standard_normal(outside.size)
            outside = outside[np.abs(z[outside]) > bound]
        blocks.append(z.reshape(rows, 4))
    z = np.vstack(blocks)
    varying = [1, 2, 3, 4]
    sd = 0.1 * np.abs(np.array([BASE_LOAD[b] for b in sorted(BASE_LOAD)]))[varying]
    np.testing.assert_array_equal(s.samples_mw[:, varying], z * sd + CENTRE[varying])
    # Nothing but the key came from the caller's generator.
    assert rng.bit_generator.state == replica.bit_generator.state


def test_base_load_is_the_same_on_any_number_of_threads(loaded, monkeypatch):
    monkeypatch.setattr(scenarios_module, "BLOCK_NUMBERS", 64)
    spread = BaseLoadSpread(0.05, 1.5)
    monkeypatch.setattr(scenarios_module, "_workers", lambda tasks: min(2, tasks))
    threaded = sample_base_load(loaded, spread, 500, np.random.default_rng(9)).samples_mw
    monkeypatch.setattr(scenarios_module, "_workers", lambda tasks: 1)
    serial = sample_base_load(loaded, spread, 500, np.random.default_rng(9)).samples_mw
    np.testing.assert_array_equal(threaded, serial)
    other = sample_base_load(loaded, spread, 500, np.random.default_rng(10)).samples_mw
    assert not np.array_equal(serial, other)


def test_zero_spread_draws_nothing(loaded):
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    s = sample_base_load(loaded, BaseLoadSpread(sd_fraction=0.0), 4, rng)
    assert rng.bit_generator.state == before
    np.testing.assert_array_equal(s.samples_mw, np.tile(CENTRE, (4, 1)))
    np.testing.assert_array_equal(s.lower_mw, CENTRE)


@pytest.mark.parametrize(
    "kwargs, needle",
    [({"sd_fraction": -0.1}, "sd_fraction"), ({"sd_fraction": math.nan}, "sd_fraction"),
     ({"truncation_sd": 0.5}, "truncation_sd"), ({"truncation_sd": math.inf}, "truncation_sd")],
)
def test_base_load_spread_validation(kwargs, needle):
    with pytest.raises(GridError) as exc:
        BaseLoadSpread(**kwargs)
    assert needle in one_line(exc)


def test_samplers_want_a_numpy_generator(loaded):
    with pytest.raises(GridError) as exc:
        sample_base_load(loaded, BaseLoadSpread(), 10, np.random.RandomState(0))
    assert "numpy.random.Generator" in one_line(exc)
    with pytest.raises(GridError) as exc:
        sample_base_load(loaded, BaseLoadSpread(), 0, np.random.default_rng(0))
    assert "count" in one_line(exc)


def base_marginals(spread: BaseLoadSpread, buses):
    return [truncnorm(-spread.truncation_sd, spread.truncation_sd, loc=CENTRE[j],
                      scale=spread.sd_fraction * abs(BASE_LOAD[j + 1])) for j in buses]


def test_one_factor_copula_recovers_rho_and_keeps_the_marginals(loaded):
    rho, count = 0.6, 20000
    spread = BaseLoadSpread(0.1, 2.5)
    s = sample_correlated(loaded, CorrelatedSpread(spread, correlation=rho), count, np.random.default_rng(5))
    varying = [1, 2, 3, 4]
    dists = base_marginals(spread, varying)
    np.testing.assert_array_equal(s.lower_mw, sample_base_load(loaded, spread, 1, np.random.default_rng(0)).lower_mw)
    assert np.all(s.samples_mw >= s.lower_mw) and np.all(s.samples_mw <= s.upper_mw)
    np.testing.assert_array_equal(s.samples_mw[:, [0, 5]], np.tile(CENTRE[[0, 5]], (count, 1)))
    for column, dist in zip(s.samples_mw[:, varying].T, dists):
        assert abs(column.mean() - dist.mean()) < 4 * dist.std() / math.sqrt(count)
        assert abs(column.std() - dist.std()) < 0.03 * dist.std()
    scores = normal_scores(s.samples_mw[:, varying], dists)
    corr = np.corrcoef(scores, rowvar=False)
    off = corr[~np.eye(4, dtype=bool)]
    assert np.all(np.abs(off - rho) < correlation_tolerance(rho, count))


def test_matrix_copula_from_csv_recovers_the_matrix(loaded, tmp_path):
    path = tmp_path / "corr.csv"
    # Rows in another order than the header; bus 4 is left out, so it is independent.
    path.write_text("bus,5,2,3\n2,0.5,1,-0.3\n5,1,0.5,0.4\n3,0.4,-0.3,1\n")
    matrix = read_correlation_csv(path, loaded)
    target = np.eye(6)
    for (p, q), value in {(5, 2): 0.5, (5, 3): 0.4, (2, 3): -0.3}.items():
        target[p - 1, q - 1] = target[q - 1, p - 1] = value
    np.testing.assert_array_equal(matrix, target)

    count = 20000
    spread = BaseLoadSpread(0.1, 3.0)
    s = sample_correlated(loaded, CorrelatedSpread(spread, matrix=matrix), count, np.random.default_rng(8))
    varying = [1, 2, 3, 4]
    assert np.all(s.samples_mw >= s.lower_mw) and np.all(s.samples_mw <= s.upper_mw)
    corr = np.corrcoef(normal_scores(s.samples_mw[:, varying], base_marginals(spread, varying)), rowvar=False)
    expected = target[np.ix_(varying, varying)]
    for p in range(4):
        for q in range(p + 1, 4):
            assert abs(corr[p, q] - expected[p, q]) < correlation_tolerance(expected[p, q], count), (p, q)


def test_copula_with_explicit_loads(net):
    loads = {2: TruncatedNormalLoad(20.0, 25.0, 18.0, 40.0), 3: PAPER_LOADS[3], 4: PAPER_LOADS[4]}
    rho, count = 0.4, 20000
    s = sample_correlated(net, CorrelatedSpread(loads, correlation=rho), count, np.random.default_rng(2))
    np.testing.assert_array_equal(s.lower_mw, [0, 18, 10, 10])
    np.testing.assert_array_equal(s.upper_mw, [0, 40, 20, 30])
    assert np.all(s.samples_mw >= s.lower_mw) and np.all(s.samples_mw <= s.upper_mw)
    assert not s.samples_mw[:, 0].any()
    dists = [loads[bus].distribution() for bus in (2, 3, 4)]
    block = s.samples_mw[:, 1:]
    for column, dist in zip(block.T, dists):
        # Bus 2's truncation is asymmetric: its mean (about 22.8 MW) is not the parent mean.
        assert abs(column.mean() - dist.mean()) < 4 * dist.std() / math.sqrt(count)
        assert kstest(column, dist.cdf).statistic < 1.95 / math.sqrt(count)
    corr = np.corrcoef(normal_scores(block, dists), rowvar=False)
    assert np.all(np.abs(corr[~np.eye(3, dtype=bool)] - rho) < correlation_tolerance(rho, count))


def test_copula_marginals_on_either_side_of_the_parent_mean(net):
    # Intervals right of, left of and around the parent mean take different branches of the
    # inverse CDF; each must still give its truncated normal.
    loads = {1: TruncatedNormalLoad(10.0, 4.0, 12.0, 20.0), 2: TruncatedNormalLoad(10.0, 4.0, 0.0, 9.0),
             3: TruncatedNormalLoad(10.0, 4.0, 9.0, 10.5), 4: TruncatedNormalLoad(10.0, 1.0, 14.0, 16.0)}
    count = 20000
    s = sample_correlated(net, CorrelatedSpread(loads, correlation=0.7), count, np.random.default_rng(6))
    for j, bus in enumerate((1, 2, 3, 4)):
        dist = loads[bus].distribution()
        column = s.samples_mw[:, j]
        assert loads[bus].lower_mw <= column.min() and column.max() <= loads[bus].upper_mw
        assert abs(column.mean() - dist.mean()) < 4 * dist.std() / math.sqrt(count)
        assert kstest(column, dist.cdf).statistic < 1.95 / math.sqrt(count)


def test_singular_correlation_moves_buses_in_lockstep(net):
    loads = {3: PAPER_LOADS[3], 4: PAPER_LOADS[4]}
    matrix = np.eye(4)
    matrix[2, 3] = matrix[3, 2] = 1.0  # positive semidefinite but not definite
    s = sample_correlated(net, CorrelatedSpread(loads, matrix=matrix), 2000, np.random.default_rng(1))
    dists = [loads[3].distribution(), loads[4].distribution()]
    scores = normal_scores(s.samples_mw[:, 2:], dists)
    np.testing.assert_allclose(scores[:, 0], scores[:, 1], atol=1e-6)


def test_correlated_draws_are_reproducible(loaded):
    spread = CorrelatedSpread(BaseLoadSpread(), correlation=0.3)
    a = sample_correlated(loaded, spread, 300, np.random.default_rng(4)).samples_mw
    b = sample_correlated(loaded, spread, 300, np.random.default_rng(4)).samples_mw
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs, needle",
    [({}, "exactly one"), ({"correlation": 0.5, "matrix": np.eye(6)}, "exactly one"),
     ({"correlation": 1.0}, "[0, 1)"), ({"correlation": -0.2}, "[0, 1)"),
     ({"matrix": np.ones((2, 3))}, "square")],
)
def test_correlated_spread_validation(kwargs, needle):
    with pytest.raises(GridError) as exc:
        CorrelatedSpread(BaseLoadSpread(), **kwargs)
    assert needle in one_line(exc)


def test_correlated_spread_checks_against_the_network(loaded, net):
    with pytest.raises(GridError) as exc:
        sample_correlated(loaded, CorrelatedSpread(BaseLoadSpread(), matrix=np.eye(4)), 10, np.random.default_rng(0))
    assert "(4, 4)" in one_line(exc) and "6 buses" in str(exc.value)
    bad = np.eye(6)
    bad[1, 2] = bad[2, 1] = 0.9
    bad[1, 4] = bad[4, 1] = 0.9
    bad[2, 4] = bad[4, 2] = -0.9
    with pytest.raises(GridError) as exc:
        sample_correlated(loaded, CorrelatedSpread(BaseLoadSpread(), matrix=bad), 10, np.random.default_rng(0))
    smallest = np.linalg.eigvalsh(bad[np.ix_([1, 2, 3, 4], [1, 2, 3, 4])])[0]
    assert "positive semidefinite" in one_line(exc) and f"{smallest:.4g}" in str(exc.value)
    with pytest.raises(GridError) as exc:
        sample_correlated(net, CorrelatedSpread({9: PAPER_LOADS[1]}, correlation=0.2), 10, np.random.default_rng(0))
    assert "bus 9" in one_line(exc)


@pytest.mark.parametrize(
    "text, needles",
    [
        ("", ["empty"]),
        ("bus\n", ["names no buses"]),
        ("bus,1,2\n1,1,0.5\n2,0.4,1\n", ["bus 1", "bus 2", "symmetric"]),
        ("bus,2,3\n2,0.9,0.5\n3,0.5,1\n", ["diagonal", "bus 2", "0.9"]),
        ("bus,1,2\n1,1,1.5\n2,1.5,1\n", ["outside [-1, 1]"]),
        ("bus,2,3,5\n2,1,0.9,-0.9\n3,0.9,1,0.9\n5,-0.9,0.9,1\n", ["positive semidefinite", "smallest eigenvalue is -0.8"]),
        ("bus,1,9\n1,1,0\n9,0,1\n", ["column 3", "bus 9"]),
        ("bus,1,1\n1,1,0\n", ["bus 1", "two columns"]),
        ("bus,1,2\n1,1,0\n1,1,0\n2,0,1\n", ["bus 1", "two rows"]),
        ("bus,1,2\n1,1,0\n", ["bus 2", "no row"]),
        ("bus,1,2\n1,1,0\n2,0,1\n3,0,0\n", ["line 4", "bus 3", "no column"]),
        ("bus,1,2\n1,1,x\n2,0,1\n", ["line 2", "bus 2", "'x'"]),
        ("bus,1,2\n1,1,0,0\n2,0,1\n", ["line 2", "4 cells"]),
        ("bus,1,2\n1,1,nan\n2,nan,1\n", ["bus 1", "bus 2", "finite"]),
        ("bus,1,2\none,1,0\n2,0,1\n", ["line 2", "'one'"]),
    ],
)
def test_correlation_csv_errors_name_file_and_culprit(loaded, tmp_path, text, needles):
    path = tmp_path / "corr.csv"
    path.write_text(text)
    with pytest.raises(GridError) as exc:
        read_correlation_csv(path, loaded)
    message = one_line(exc)
    assert "corr.csv" in message
    for needle in needles:
        assert needle in message


def write_parquet(path, columns: dict) -> None:
    pq.write_table(pa.table(columns), path)


def test_parquet_round_trip_equals_csv(net, tmp_path):
    rng = np.random.default_rng(0)
    values = {"4": rng.normal(10, 1, 40), "2": rng.normal(20, 2, 40)}
    write_parquet(tmp_path / "loads.parquet", values)
    lines = ["4,2"] + [f"{float(a)!r},{float(b)!r}" for a, b in zip(values["4"], values["2"])]
    (tmp_path / "loads.csv").write_text("\n".join(lines) + "\n")
    from_parquet = read_scenarios_file(tmp_path / "loads.parquet", net)
    from_csv = read_scenarios_file(tmp_path / "loads.csv", net)
    for field in ("samples_mw", "lower_mw", "upper_mw"):
        np.testing.assert_array_equal(getattr(from_parquet, field), getattr(from_csv, field))
    assert from_parquet.buses == (1, 2, 3, 4) and from_parquet.count == 40
    np.testing.assert_array_equal(from_parquet.samples_mw[:, 3], values["4"])


def test_parquet_accepts_integer_and_text_numbers_and_ignores_a_pandas_index(net, tmp_path):
    import pandas as pd

    write_parquet(tmp_path / "a.parquet", {"1": pa.array([1, 2], pa.int32()), "3": ["1.5", " 2 "]})
    s = read_scenarios_parquet(tmp_path / "a.parquet", net)
    np.testing.assert_array_equal(s.samples_mw, [[1, 0, 1.5, 0], [2, 0, 2, 0]])
    frame = pd.DataFrame({"2": [5.0, 6.0]}, index=pd.Index([10, 20], name="scenario"))
    frame.to_parquet(tmp_path / "b.parquet")
    s = read_scenarios_file(tmp_path / "b.parquet", net)
    np.testing.assert_array_equal(s.samples_mw, [[0, 5, 0, 0], [0, 6, 0, 0]])


@pytest.mark.parametrize(
    "columns, needles",
    [
        ({"1": [1.0], "9": [2.0]}, ["column 2", "bus 9"]),
        ({"bus2": [1.0]}, ["column 1", "'bus2'"]),
        ({"1": [1.0], "01": [2.0]}, ["bus 1", "two columns"]),
        ({"1": [1.0, None, 3.0]}, ["row 2", "bus 1", "missing"]),
        ({"2": [1.0, math.nan]}, ["row 2", "bus 2", "finite"]),
        ({"2": [1.0, math.inf]}, ["row 2", "bus 2", "finite"]),
        ({"2": ["1.5", "abc"]}, ["row 2", "bus 2", "'abc'"]),
        ({"3": [True, False]}, ["row 1", "bus 3", "not a number"]),
        ({"1": pa.array([], pa.float64())}, ["no scenario rows"]),
        ({}, ["empty"]),
    ],
)
def test_parquet_errors_name_file_row_and_column(net, tmp_path, columns, needles):
    path = tmp_path / "bad.parquet"
    write_parquet(path, columns)
    with pytest.raises(GridError) as exc:
        read_scenarios_file(path, net)
    message = one_line(exc)
    assert "bad.parquet" in message
    for needle in needles:
        assert needle in message


def test_scenario_file_errors(net, tmp_path):
    (tmp_path / "text.parquet").write_text("1,2\n3,4\n")
    (tmp_path / "zero.parquet").write_bytes(b"")
    (tmp_path / "loads.xlsx").write_text("")
    for path, needle in ((tmp_path / "text.parquet", "cannot read"), (tmp_path / "nope.parquet", "not found"),
                         (tmp_path / "zero.parquet", "empty"),
                         (tmp_path / "loads.xlsx", ".csv or .parquet"), (tmp_path / "nope.csv", "not found")):
        with pytest.raises(GridError) as exc:
            read_scenarios_file(path, net)
        assert path.name in one_line(exc) and needle in str(exc.value)


def activsg_sized(name: str = "case_ACTIVSg2000") -> Network:
    """2,000 buses and 3,206 lines, like the Texas synthetic case, for the memory estimate."""
    buses = [Bus(number) for number in range(1, 2001)]
    lines = [Line(f"c{i}", i, i + 1, 100.0) for i in range(1, 2000)]
    lines += [Line(f"x{i}", i, i + 2, 100.0) for i in range(1, 1208)]
    return Network(name, buses, lines, 1)


def test_memory_estimate_is_what_the_arrays_take(loaded):
    # The two arrays that grow with S, made for real: the samples and their line flows.
    from grid.capacity.matrices.shift_factors import shift_factors

    drawn = sample_base_load(loaded, BaseLoadSpread(), 300, np.random.default_rng(0))
    flows = drawn.samples_mw @ shift_factors(loaded).T
    assert scenario_memory_bytes(len(loaded.buses), len(loaded.lines), 300) == drawn.samples_mw.nbytes + flows.nbytes
    assert scenario_memory_bytes(4, 3, 0) == 0
    with pytest.raises(GridError) as exc:
        scenario_memory_bytes(4, -1, 10)
    assert "n_lines" in one_line(exc)


def test_memory_guard_message_names_case_need_and_limit():
    network = activsg_sized()
    assert len(network.lines) == 3206
    with pytest.raises(GridError) as exc:
        check_scenario_memory(network, 10_000_000, available_bytes=23 * 10**9)
    most = int(0.6 * 23e9) // (8 * 5206)  # 60 % of 23 GB over 41,648 bytes per scenario
    assert one_line(exc) == (
        "10,000,000 scenarios on 'case_ACTIVSg2000' need about 420 GB (samples and line flows); "
        f"this machine has 23 GB available; use at most {most:,} scenarios"
    )
    assert check_scenario_memory(network, most, available_bytes=23 * 10**9) == 8 * most * 5206
    with pytest.raises(GridError):
        check_scenario_memory(network, most + 1, available_bytes=23 * 10**9)
    with pytest.raises(GridError) as exc:
        check_scenario_memory(network, 1, available_bytes=1000)
    assert "one scenario needs 42 kB" in one_line(exc)


def test_memory_guard_reads_this_machine(loaded):
    available = memory_guard._available_memory_bytes()
    assert available is None or available > 0
    assert check_scenario_memory(loaded, 10) == 8 * 10 * 11


def test_memory_guard_refuses_before_drawing_or_reading(loaded, net, tmp_path, monkeypatch):
    monkeypatch.setattr(memory_guard, "_available_memory_bytes", lambda: 10_000)
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    for call in (lambda: sample_base_load(loaded, BaseLoadSpread(), 1000, rng),
                 lambda: sample_correlated(loaded, CorrelatedSpread(BaseLoadSpread(), correlation=0.5), 1000, rng)):
        with pytest.raises(GridError) as exc:
            call()
        assert "1,000 scenarios on 'loaded-6' need about 88 kB" in one_line(exc)
    assert rng.bit_generator.state == before
    write_parquet(tmp_path / "big.parquet", {"1": np.zeros(1000)})
    with pytest.raises(GridError) as exc:
        read_scenarios_file(tmp_path / "big.parquet", net)
    assert "1,000 scenarios on 'paper-4bus'" in one_line(exc)
    # When the machine does not say, there is nothing to guard against.
    monkeypatch.setattr(memory_guard, "_available_memory_bytes", lambda: None)
    assert check_scenario_memory(loaded, 10**9) == 8 * 10**9 * 11


def test_the_scenario_formulation_is_refused_before_building_when_it_would_not_fit(net, monkeypatch):
    # (17) takes about 2.5 kB per (limit, scenario) with HiGHS: a few limits x 2,000 scenarios of
    # the 4-bus case are tens of MB, over 60 % of a pretended 20 MB.
    from grid.capacity.inputs.candidates import make_candidates
    from grid.capacity.study import capacity_study

    rng = np.random.default_rng(0)
    scenarios = sample_truncated_normal(net, {b: TruncatedNormalLoad(20.0, 5.0, 10.0, 30.0) for b in (1, 2, 3, 4)},
                                        2000, rng)
    candidates = make_candidates(net, {3: 40.0, 4: 30.0})
    monkeypatch.setattr(memory_guard, "_available_memory_bytes", lambda: 20 * 10**6)
    with pytest.raises(GridError) as exc:
        capacity_study(net, scenarios, candidates, [0.05], formulation="scenario")
    text = one_line(exc)
    assert "formulation 'scenario' on 'paper-4bus'" in text and "x 2,000 scenarios" in text
    assert "use formulation = 'exact'" in text
    exact = capacity_study(net, scenarios, candidates, [0.05])   # the exact LP is not refused
    assert exact.tiers[0].capacity_mw[3] > 0
