"""Background net-load scenarios p: sampled, independent or correlated.

The firm model (1) needs only the support box [lower, upper] of p; the flexible model (17) needs
the samples p^(s). ``Scenarios`` carries both, with columns in network bus order.

Samplers:

* ``sample_truncated_normal``: explicit per-bus truncated normals (docs/models/capacity.md#ca-5-1), drawn with scipy.
* ``sample_base_load``: a spread around a case's base load (MATPOWER Pd minus committed Pg), for
  real networks that come without a load model; fast enough for thousands of buses.
* ``sample_correlated``: the same truncated-normal marginals joined by a Gaussian copula, so that
  buses move together while every bus keeps its distribution (and the robust box stays valid).

Empirical scenarios and correlation matrices are read by grid.load.files. Every sampler takes
a ``numpy.random.Generator`` and documents the order in which it draws, so a seed reproduces the
same array; ``grid.memory_guard.check_scenario_memory`` refuses a scenario count that would not
fit in memory before anything is drawn.
"""

from __future__ import annotations

import math
import numbers
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
from scipy import special

from grid.errors import GridError
from grid.memory_guard import check_count, check_scenario_memory
from grid.network.network import Network


def _truncnorm():
    """scipy.stats.truncnorm, imported where a load is drawn: scipy.stats costs 0.2 to 0.3 s to
    import, in every run that draws none."""
    from scipy.stats import truncnorm

    return truncnorm


@dataclass(frozen=True)
class TruncatedNormalLoad:
    """A parent normal N(mean, variance) truncated to [lower, upper], in MW (docs/models/capacity.md#ca-5-1).

    The bounds must be finite because the robust model (C-1) protects against every load in them.
    """

    mean_mw: float
    variance_mw2: float
    lower_mw: float
    upper_mw: float

    def __post_init__(self) -> None:
        for field_name in ("mean_mw", "variance_mw2", "lower_mw", "upper_mw"):
            value = getattr(self, field_name)
            if not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise GridError(f"TruncatedNormalLoad.{field_name} must be a finite number, got {value!r}")
        if self.variance_mw2 <= 0:
            raise GridError(
                f"TruncatedNormalLoad.variance_mw2 must be > 0 (got {self.variance_mw2}); "
                "use a fixed load with lower_mw close to upper_mw instead"
            )
        if self.lower_mw >= self.upper_mw:
            raise GridError(
                f"TruncatedNormalLoad: lower_mw ({self.lower_mw}) must be below upper_mw ({self.upper_mw})"
            )

    def distribution(self):  # -> scipy frozen distribution
        """The scipy.stats.truncnorm distribution (standardised bounds, loc = mean, scale = sd)."""
        sd = math.sqrt(self.variance_mw2)
        return _truncnorm()(
            (self.lower_mw - self.mean_mw) / sd, (self.upper_mw - self.mean_mw) / sd,
            loc=self.mean_mw, scale=sd,
        )


@dataclass(frozen=True, eq=False)
class Scenarios:
    """Background net load per scenario and bus (MW), plus the support box used by model (1).

    ``samples_mw[s, j]`` is the load at bus ``buses[j]`` in scenario ``s``. ``lower_mw`` and
    ``upper_mw`` bound every sample; for sampled loads they are the truncation bounds, for file
    data the per-bus sample range. Compared by identity (it holds arrays).
    """

    buses: tuple[int, ...]
    samples_mw: np.ndarray
    lower_mw: np.ndarray
    upper_mw: np.ndarray

    def __post_init__(self) -> None:
        # Private read-only copies, so neither the caller nor a model can change them afterwards.
        self._freeze(
            np.array(self.samples_mw, dtype=float),
            np.array(self.lower_mw, dtype=float),
            np.array(self.upper_mw, dtype=float),
        )

    @classmethod
    def _adopt(cls, buses: tuple[int, ...], samples: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> Scenarios:
        """Wrap arrays this module has just built and nobody else holds, without copying them.

        A copy of a 10,000 x 2,000 sample matrix costs 160 MB and, on a fresh process, more time
        than drawing it; the samplers own their arrays, so they skip it.
        """
        instance = object.__new__(cls)
        object.__setattr__(instance, "buses", buses)
        instance._freeze(
            np.asarray(samples, dtype=float), np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
        )
        return instance

    def _freeze(self, samples: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
        object.__setattr__(self, "buses", tuple(self.buses))
        n_bus = len(self.buses)
        if samples.ndim != 2 or samples.shape[1] != n_bus or samples.shape[0] < 1:
            raise GridError(
                f"Scenarios.samples_mw must have shape (S >= 1, {n_bus}) for {n_bus} buses, got {samples.shape}"
            )
        if lower.shape != (n_bus,) or upper.shape != (n_bus,):
            raise GridError(
                f"Scenarios.lower_mw/upper_mw must have shape ({n_bus},), got {lower.shape} and {upper.shape}"
            )
        if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
            raise GridError("Scenarios: samples and bounds must all be finite numbers")
        if np.any(lower > upper):
            bus = self.buses[int(np.argmax(lower > upper))]
            raise GridError(f"Scenarios: lower_mw exceeds upper_mw at bus {bus}")
        # With finite bounds, one pair of comparisons also catches nan and inf samples (they fail
        # one of them), which saves a full pass over large sample matrices.
        inside = samples >= lower - 1e-9
        inside &= samples <= upper + 1e-9
        if not inside.all():
            if not np.all(np.isfinite(samples)):
                raise GridError("Scenarios: samples and bounds must all be finite numbers")
            row, col = np.argwhere(~inside)[0]
            raise GridError(
                f"Scenarios: sample {row} at bus {self.buses[col]} ({samples[row, col]} MW) lies outside "
                f"the box [{lower[col]}, {upper[col]}]"
            )
        for name, array in (("samples_mw", samples), ("lower_mw", lower), ("upper_mw", upper)):
            array.flags.writeable = False
            object.__setattr__(self, name, array)

    @property
    def count(self) -> int:
        """Number of scenarios S."""
        return int(self.samples_mw.shape[0])

    def subset(self, start: int, count: int) -> Scenarios:
        """Scenarios start .. start + count - 1 (a read-only view, no copy), same box."""
        if not 0 <= start < self.count or count < 1:
            raise GridError(f"Scenarios.subset: rows {start}..{start + count - 1} outside 0..{self.count - 1}")
        return Scenarios._adopt(self.buses, self.samples_mw[start:start + count], self.lower_mw, self.upper_mw)


def _check_rng(rng: object) -> None:
    # A legacy RandomState or an int seed would draw a different stream than the documented one.
    if not isinstance(rng, np.random.Generator):
        raise GridError(
            f"rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(seed)), got {type(rng).__name__}"
        )


def sample_truncated_normal(
    network: Network,
    loads: Mapping[int, TruncatedNormalLoad],
    count: int,
    rng: np.random.Generator,
) -> Scenarios:
    """Draw ``count`` independent truncated-normal loads per bus (docs/models/capacity.md#ca-5-1), buses
    in bus order.

    Buses absent from ``loads`` carry no background load (samples 0, box [0, 0]). Sampling walks
    the buses in network order so a seed reproduces the same arrays regardless of dict order.

    Draw order: scipy's inverse-CDF sampler, one uniform per draw, ``count`` draws for the first
    loaded bus (in bus order), then ``count`` for the next, and so on. Published studies depend
    on these exact numbers, so this path stays on scipy.
    """
    count = check_count(count)
    for bus, load in loads.items():
        try:
            network.bus_index(bus)
        except GridError as exc:
            raise GridError(f"background load given for {exc}") from None
        if not isinstance(load, TruncatedNormalLoad):
            raise GridError(f"load at bus {bus} must be a TruncatedNormalLoad, got {type(load).__name__}")
    n_bus = len(network.buses)
    samples = np.zeros((count, n_bus))
    lower = np.zeros(n_bus)
    upper = np.zeros(n_bus)
    order = network.bus_numbers
    columns = [j for j, bus in enumerate(order) if bus in loads]
    if columns:
        chosen = [loads[order[j]] for j in columns]
        mean = np.array([[load.mean_mw] for load in chosen])
        sd = np.sqrt([[load.variance_mw2] for load in chosen])
        low = np.array([[load.lower_mw] for load in chosen])
        high = np.array([[load.upper_mw] for load in chosen])
        # One call with one row per bus draws the same stream as a loop over the buses in bus
        # order (count draws each), without building a scipy distribution per bus.
        draw = _truncnorm()((low - mean) / sd, (high - mean) / sd, loc=mean, scale=sd).rvs(
            size=(len(columns), count), random_state=rng
        )
        # The inverse-CDF sampler can land a hair outside the bounds through round-off.
        samples[:, columns] = np.clip(draw, low, high).T
        lower[columns], upper[columns] = low[:, 0], high[:, 0]
    return Scenarios(network.bus_numbers, samples, lower, upper)


# --------------------------------------------------------------------------------------------
# Spread around a case's base load


@dataclass(frozen=True)
class BaseLoadSpread:
    """Default background load for a real case: base load plus a truncated-normal deviation.

    At bus j the background net withdrawal is Pd_j - Pg_j + sd_j z_j, with Pd the case's base
    load, Pg the committed generation at the bus, sd_j = ``sd_fraction`` * |Pd_j| and z_j a
    standard normal truncated to [-``truncation_sd``, ``truncation_sd``]. Real cases carry no
    load model, so a proportional spread is the neutral default; buses without base load do not
    vary. ``truncation_sd`` must be at least 1: below that the robust box is narrower than one sd
    and rejection sampling would waste most draws; narrow the box with ``sd_fraction`` instead.
    """

    sd_fraction: float = 0.05
    truncation_sd: float = 3.0
    # How far above its base a load may go, in sd; None: truncation_sd (symmetric). 0: the base
    # is the forecast peak, and loads vary below it (what `dcmarket capacity CASE` assumes).
    above_sd: float | None = None

    def __post_init__(self) -> None:
        if self.above_sd is not None and (isinstance(self.above_sd, bool) or not isinstance(self.above_sd, numbers.Real)
                                          or not 0 <= self.above_sd <= self.truncation_sd):
            raise GridError(f"BaseLoadSpread.above_sd must lie in [0, truncation_sd = {self.truncation_sd}] "
                            f"(got {self.above_sd!r}); 0 keeps every load at or below its base")
        for name in ("sd_fraction", "truncation_sd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise GridError(f"BaseLoadSpread.{name} must be a finite number, got {value!r}")
        if self.sd_fraction < 0:
            raise GridError(f"BaseLoadSpread.sd_fraction must be >= 0 (got {self.sd_fraction}); 0 fixes every load at its base")
        if self.truncation_sd < 1:
            raise GridError(
                f"BaseLoadSpread.truncation_sd must be >= 1 (got {self.truncation_sd}); "
                "narrow the box with a smaller sd_fraction instead"
            )


def _base_centre_and_sd(network: Network, spread: BaseLoadSpread) -> tuple[np.ndarray, np.ndarray]:
    """Centre Pd - Pg (MW) and deviation sd (MW) per bus, in bus order."""
    base = np.array([bus.base_load_mw for bus in network.buses], dtype=float)
    centre = base.copy()
    for bus, output in network.committed_generation_mw().items():
        centre[network.bus_index(bus)] -= output
    return centre, spread.sd_fraction * np.abs(base)


# Numbers per block of a blocked draw (512 kB): a block and its temporaries stay in cache, and
# a large draw splits into enough blocks to keep every core busy. Part of the documented draw
# order, so changing it changes every seeded draw.
BLOCK_NUMBERS = 2**16


def _workers(tasks: int) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, tasks))


def _run_blocks(task: Callable[[int], None], blocks: int) -> None:
    """Run ``task(k)`` for every block k, on threads when there is more than one block.

    numpy's generators and ufuncs release the GIL for array work, so threads scale. Results never
    depend on the number of threads: each block draws from its own stream and writes its own rows.
    """
    workers = _workers(blocks)
    if workers == 1:
        for k in range(blocks):
            task(k)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(task, k) for k in range(blocks)]:
            future.result()


def _draw_blocks(
    rng: np.random.Generator,
    rows: int,
    columns: int,
    bound: float | tuple[float, float] | None,
    consume: Callable[[slice, np.ndarray], None],
) -> None:
    """Draw a rows x columns array of standard normals block by block, handing each to ``consume``.

    Draw order, fixed so that a generator state reproduces the numbers on any number of cores:
    from ``rng`` one call ``integers(0, 2**64, size=2, dtype=uint64)``, the key; the rows are cut
    into blocks of max(1, 2^16 // columns) rows; block k draws from
    PCG64(SeedSequence(key, spawn_key=(k,))) its normals in row-major order, then, with a
    ``bound``, redraw passes (see ``_redraw_outside``) that truncate them to [-bound, bound] (or
    to [low, high] for a pair).
    Nothing else is drawn from ``rng``. ``consume(rows, block)`` may modify the block in place.
    """
    key = [int(word) for word in rng.integers(0, 2**64, size=2, dtype=np.uint64)]
    step = max(1, BLOCK_NUMBERS // max(columns, 1))

    def task(k: int) -> None:
        child = np.random.Generator(np.random.PCG64(np.random.SeedSequence(key, spawn_key=(k,))))
        span = slice(k * step, min(rows, (k + 1) * step))
        block = child.standard_normal((span.stop - span.start, columns))
        if bound is not None:
            low, high = (-bound, bound) if isinstance(bound, (int, float)) else bound
            _redraw_outside(block, low, high, child)
        consume(span, block)

    _run_blocks(task, -(-rows // step))


def _redraw_outside(z: np.ndarray, low: float, high: float, rng: np.random.Generator) -> None:
    """Turn standard normals into normals truncated to [low, high] by redrawing, in place.

    Order: each pass draws one fresh normal for every entry still outside, in increasing flat
    (row-major) index, until none is outside. With -low >= 1 and high >= 0 at most 66 % of the
    entries need a redraw and each pass keeps at most 66 % of those, so a few dozen passes finish.
    """
    flat = z.reshape(-1)  # a view: z is C-contiguous
    outside = np.flatnonzero((flat > high) | (flat < low))
    while outside.size:
        fresh = rng.standard_normal(outside.size)
        flat[outside] = fresh
        outside = outside[(fresh > high) | (fresh < low)]


def _write_rows(
    samples: np.ndarray,
    rows: slice,
    columns: np.ndarray,
    centre: np.ndarray,
    scale: np.ndarray,
    t: np.ndarray,
    box: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """samples[rows] = centre, plus scale * t in the varying ``columns`` (t is used up in place).

    With a ``box`` (lower, upper per bus) the result is clipped into it. Each block fills its own
    rows of the output, so the output's pages are first touched in parallel and no second
    full-size array is ever built.
    """
    view = samples[rows]
    if columns.size == centre.size:
        np.multiply(t, scale, out=view)
        view += centre
        if box is not None:
            np.clip(view, box[0], box[1], out=view)
        return
    t *= scale[columns]
    t += centre[columns]
    if box is not None:
        np.clip(t, box[0][columns], box[1][columns], out=t)
    view[:] = centre
    view[:, columns] = t


def sample_base_load(
    network: Network, spread: BaseLoadSpread, count: int, rng: np.random.Generator
) -> Scenarios:
    """Draw ``count`` independent scenarios of the base-load spread (see ``BaseLoadSpread``).

    The box is Pd - Pg - truncation_sd * sd to Pd - Pg + above_sd * sd per bus (above_sd defaults
    to truncation_sd), exactly the truncation bounds, so the
    robust model protects against every sample. Refuses (GridError) a count whose samples and
    line flows would not fit in memory, before drawing.

    Draw order: with m the buses with sd > 0 (in bus order), a ``count`` x m array of normals
    truncated to [-truncation_sd, truncation_sd] by ``_draw_blocks`` (a 128-bit key from ``rng``,
    then per block of scenarios its own keyed stream: row-major normals, then redraws of the ones
    outside, in row-major order). Nothing is drawn when no bus varies.

    Speed: 2,000 varying buses x 10,000 scenarios take about 0.2 s on two cores (numpy's normal
    generator on threads; scipy's truncnorm takes about 15 s for the same draw).
    """
    count = check_count(count)
    if not isinstance(spread, BaseLoadSpread):
        raise GridError(f"spread must be a BaseLoadSpread, got {type(spread).__name__}")
    _check_rng(rng)
    check_scenario_memory(network, count)
    centre, sd = _base_centre_and_sd(network, spread)
    columns = np.flatnonzero(sd > 0)
    above = spread.truncation_sd if spread.above_sd is None else float(spread.above_sd)
    bound = spread.truncation_sd if spread.above_sd is None else (-spread.truncation_sd, above)
    samples = np.empty((count, centre.size))
    if columns.size:
        # centre + sd * z with low <= z <= high never rounds past centre + low sd or
        # centre + high sd (rounding is monotone), so no clip is needed.
        _draw_blocks(
            rng, count, columns.size, bound,
            lambda rows, z: _write_rows(samples, rows, columns, centre, sd, z),
        )
    else:
        samples[:] = centre
    return Scenarios._adopt(network.bus_numbers, samples, centre - spread.truncation_sd * sd, centre + above * sd)


# --------------------------------------------------------------------------------------------
# Correlated loads: a Gaussian copula over the truncated-normal marginals


@dataclass(frozen=True, eq=False)
class CorrelatedSpread:
    """Truncated-normal marginals joined by a Gaussian copula, so buses move together.

    ``base`` gives the marginals: a ``BaseLoadSpread`` (every bus with base load varies) or a
    mapping bus -> ``TruncatedNormalLoad`` (the listed buses vary; others carry no load, as in
    ``sample_truncated_normal``). Each bus keeps exactly its marginal, so the robust box stays the
    truncation box. State the dependence in one of two ways:

    * ``correlation = rho`` in [0, 1): a one-factor model, latent z_j = sqrt(rho) F + sqrt(1 - rho)
      e_j with a common F, so every pair of varying buses has latent correlation rho;
    * ``matrix``: a full n x n correlation matrix in network bus order (``read_correlation_csv``
      builds one from a file; buses it leaves out are independent of the rest). It must be
      symmetric with unit diagonal and positive semidefinite; this is checked against the
      network when sampling, where bus numbers can name the culprit.

    The correlations are those of the latent normal scores, not of the MW loads (truncation
    shrinks the latter slightly). Compared by identity (it may hold an array).
    """

    base: BaseLoadSpread | Mapping[int, TruncatedNormalLoad]
    correlation: float | None = None
    matrix: np.ndarray | None = None

    def __post_init__(self) -> None:
        if isinstance(self.base, Mapping):
            for bus, load in self.base.items():
                if not isinstance(load, TruncatedNormalLoad):
                    raise GridError(
                        f"CorrelatedSpread.base: load at bus {bus} must be a TruncatedNormalLoad, got {type(load).__name__}"
                    )
            object.__setattr__(self, "base", dict(self.base))
        elif not isinstance(self.base, BaseLoadSpread):
            raise GridError(
                "CorrelatedSpread.base must be a BaseLoadSpread or a mapping bus -> TruncatedNormalLoad, "
                f"got {type(self.base).__name__}"
            )
        if (self.correlation is None) == (self.matrix is None):
            raise GridError("CorrelatedSpread: give exactly one of correlation (one-factor rho) and matrix")
        if self.correlation is not None:
            rho = self.correlation
            if isinstance(rho, bool) or not isinstance(rho, numbers.Real) or not 0 <= rho < 1:
                raise GridError(
                    f"CorrelatedSpread.correlation must be a number in [0, 1), got {rho!r}; "
                    "use a matrix for negative or perfect correlation"
                )
        else:
            matrix = np.array(self.matrix, dtype=float)
            if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
                raise GridError(f"CorrelatedSpread.matrix must be a square n x n array, got shape {matrix.shape}")
            matrix.flags.writeable = False
            object.__setattr__(self, "matrix", matrix)


def _marginals(
    network: Network, base: BaseLoadSpread | Mapping[int, TruncatedNormalLoad]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per bus (bus order): centre, scale, standardised bounds a, b, and the MW box lower, upper.

    A bus varies when its scale is > 0; its load is centre + scale * t with t on [a, b].
    """
    n_bus = len(network.buses)
    if isinstance(base, BaseLoadSpread):
        centre, scale = _base_centre_and_sd(network, base)
        above = base.truncation_sd if base.above_sd is None else base.above_sd
        a = np.full(n_bus, -base.truncation_sd)
        b = np.full(n_bus, float(above))
        return centre, scale, a, b, centre - base.truncation_sd * scale, centre + above * scale
    centre, scale = np.zeros(n_bus), np.zeros(n_bus)
    a, b = np.zeros(n_bus), np.zeros(n_bus)
    lower, upper = np.zeros(n_bus), np.zeros(n_bus)
    for bus, load in base.items():
        try:
            j = network.bus_index(bus)
        except GridError as exc:
            raise GridError(f"background load given for {exc}") from None
        sd = math.sqrt(load.variance_mw2)
        centre[j], scale[j] = load.mean_mw, sd
        a[j], b[j] = (load.lower_mw - load.mean_mw) / sd, (load.upper_mw - load.mean_mw) / sd
        lower[j], upper[j] = load.lower_mw, load.upper_mw
    return centre, scale, a, b, lower, upper


def _truncated_quantile_of_normal(z: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """Map standard-normal scores z (rows x m) to standard normals truncated to [a_j, b_j], in place.

    t = F^-1(Phi(z)) with F the truncated CDF: t = Phi^-1(Phi(a) + Phi(z) (Phi(b) - Phi(a))).
    Phi(x) near 1 loses its digits, so an entry is computed on the mirrored side,
    t = -Phi^-1(Phi(-b) + Phi(-z) (Phi(-a) - Phi(-b))), when its interval lies right of 0, or
    straddles 0 and z > 0; there every Phi value is at most about 1/2 and keeps its digits.
    """
    mirror = (z > 0) & (b > 0) | (a >= 0)
    sign = np.where(mirror, -1.0, 1.0)
    base = np.where(mirror, special.ndtr(-b), special.ndtr(a))
    mass = np.where(mirror, special.ndtr(-a) - special.ndtr(-b), special.ndtr(b) - special.ndtr(a))
    t = sign * special.ndtri(base + special.ndtr(sign * z) * mass)
    # Round-off (or Phi^-1 of 0 for a score beyond -38) may leave the interval by a hair.
    np.clip(t, a, b, out=z)


def _factor(matrix: np.ndarray, buses: tuple[int, ...], where: str) -> np.ndarray:
    """A square root L (L L^T = matrix) of a checked correlation matrix.

    Cholesky when positive definite (unique, so a seed gives the same draw on every machine);
    otherwise a symmetric eigen-root, after checking that no eigenvalue is clearly negative.
    """
    problem = _correlation_problem(matrix, buses)
    if problem:
        raise GridError(f"{where}: {problem}")
    if matrix.shape[0] == 0:
        return matrix.copy()
    try:
        return np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        pass
    values, vectors = np.linalg.eigh(matrix)
    tolerance = 1e-9 * matrix.shape[0]
    if values[0] < -tolerance:
        weights = np.abs(vectors[:, 0])
        raise GridError(
            f"{where}: the correlation matrix is not positive semidefinite: its smallest eigenvalue is "
            f"{values[0]:.4g} (eigenvalue 1 of {len(values)}, its eigenvector weighs most on bus "
            f"{buses[int(np.argmax(weights))]}); make the correlations consistent"
        )
    return vectors * np.sqrt(np.clip(values, 0.0, None))


def _correlation_problem(matrix: np.ndarray, buses: tuple[int, ...]) -> str | None:
    """The first entry that keeps ``matrix`` from being a correlation matrix, named by buses."""
    tolerance = 1e-9
    bad = np.argwhere(~np.isfinite(matrix))
    if bad.size:
        i, j = bad[0]
        return f"entry (bus {buses[i]}, bus {buses[j]}) is {matrix[i, j]}, not a finite number"
    diagonal = np.abs(np.diagonal(matrix) - 1.0) > tolerance
    if diagonal.any():
        i = int(np.argmax(diagonal))
        return f"diagonal entry at bus {buses[i]} is {matrix[i, i]:.6g}, but a correlation matrix has 1 there"
    bad = np.argwhere(np.abs(matrix) > 1 + tolerance)
    if bad.size:
        i, j = bad[0]
        return f"entry (bus {buses[i]}, bus {buses[j]}) is {matrix[i, j]:.6g}, outside [-1, 1]"
    bad = np.argwhere(np.abs(matrix - matrix.T) > tolerance)
    if bad.size:
        i, j = bad[0]
        return (
            f"entry (bus {buses[i]}, bus {buses[j]}) is {matrix[i, j]:.6g} but (bus {buses[j]}, bus {buses[i]}) "
            f"is {matrix[j, i]:.6g}; the matrix must be symmetric"
        )
    return None


def sample_correlated(
    network: Network, spread: CorrelatedSpread, count: int, rng: np.random.Generator
) -> Scenarios:
    """Draw ``count`` scenarios whose buses are correlated through a Gaussian copula.

    Each varying bus j gets a latent standard-normal score z_j; the scores are correlated as
    ``spread`` says, and each is mapped through the bus's own truncated-normal quantile,
    load_j = centre_j + scale_j F_j^-1(Phi(z_j)). So every marginal is exactly the truncated
    normal of ``spread.base`` and the box is its truncation box. Refuses (GridError) a count
    whose samples and line flows would not fit in memory, before drawing.

    Draw order (m = varying buses, in bus order; nothing is drawn when m = 0). One-factor: first
    ``count`` common factors F from ``rng`` itself (``standard_normal(count)``, one per scenario),
    then a ``count`` x m array e of standard normals from ``_draw_blocks`` (a 128-bit key from
    ``rng``, then one keyed stream per block of scenarios, row-major); z = sqrt(rho) F +
    sqrt(1 - rho) e. Matrix: the same array e only, and z = e L^T with L the Cholesky factor of the
    varying buses' block (an eigen-root when that block is singular).

    Speed (2,000 varying buses x 10,000 scenarios, two cores): about 0.5-1 s one-factor (the
    normal CDF and its inverse dominate); a full matrix adds its factorisation and a
    10,000 x 2,000 x 2,000 product, about 2-3 s in all.
    """
    count = check_count(count)
    if not isinstance(spread, CorrelatedSpread):
        raise GridError(f"spread must be a CorrelatedSpread, got {type(spread).__name__}")
    _check_rng(rng)
    centre, scale, a, b, lower, upper = _marginals(network, spread.base)
    columns = np.flatnonzero(scale > 0)
    factor = None if spread.matrix is None else _varying_factor(network, spread.matrix, columns)
    check_scenario_memory(network, count)
    samples = np.empty((count, centre.size))
    if columns.size == 0:
        samples[:] = centre
        return Scenarios._adopt(network.bus_numbers, samples, lower, upper)
    a_c, b_c = a[columns], b[columns]

    def finish(rows: slice, z: np.ndarray) -> None:
        _truncated_quantile_of_normal(z, a_c, b_c)
        # centre + scale * b can round a hair past the stated upper bound of an explicit load.
        _write_rows(samples, rows, columns, centre, scale, z, (lower, upper))

    if factor is None:
        _one_factor_scores(rng, count, columns.size, float(spread.correlation), finish)  # type: ignore[arg-type]
    else:
        _matrix_scores(rng, count, factor, finish)
    return Scenarios._adopt(network.bus_numbers, samples, lower, upper)


def _varying_factor(network: Network, matrix: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """The square root of the correlation matrix's block of the varying buses (``columns``)."""
    n_bus = len(network.buses)
    if matrix.shape != (n_bus, n_bus):
        raise GridError(
            f"CorrelatedSpread.matrix has shape {matrix.shape} but network {network.name!r} has "
            f"{n_bus} buses; give one row and column per bus in bus order (read_correlation_csv builds it)"
        )
    # Only the varying buses' block matters; a sub-block of a correlation matrix is one too.
    varying_buses = tuple(network.bus_numbers[j] for j in columns)
    return _factor(matrix[np.ix_(columns, columns)], varying_buses, "CorrelatedSpread.matrix")


def _one_factor_scores(rng: np.random.Generator, count: int, m: int, rho: float,
                       finish: Callable[[slice, np.ndarray], None]) -> None:
    """z = sqrt(rho) F + sqrt(1 - rho) e, handed to ``finish`` block by block (draw order: see
    `sample_correlated`)."""
    common = rng.standard_normal(count)
    loading, own = math.sqrt(rho), math.sqrt(1.0 - rho)

    def one_factor(rows: slice, e: np.ndarray) -> None:
        e *= own
        e += loading * common[rows, None]
        finish(rows, e)

    _draw_blocks(rng, count, m, None, one_factor)


def _matrix_scores(rng: np.random.Generator, count: int, factor: np.ndarray,
                   finish: Callable[[slice, np.ndarray], None]) -> None:
    """z = e L^T, handed to ``finish`` block by block (draw order: see `sample_correlated`)."""
    m = factor.shape[0]
    # One large product: per-block products would re-read the m x m factor for every block.
    e = np.empty((count, m))
    _draw_blocks(rng, count, m, None, lambda rows, block, out=e: out.__setitem__(rows, block))
    z = e @ factor.T
    del e
    step = max(1, BLOCK_NUMBERS // m)
    _run_blocks(lambda k: finish(slice(k * step, (k + 1) * step), z[k * step:(k + 1) * step]), -(-count // step))
