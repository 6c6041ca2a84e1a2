"""Background net-load scenarios p: sampled truncated normals or read from a CSV file.

The firm model (1) needs only the support box [lower, upper] of p; the flexible model (17) needs
the samples p^(s). ``Scenarios`` carries both, with columns in network bus order.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy.stats import truncnorm

from grid.errors import GridError
from grid.network import Network


@dataclass(frozen=True)
class TruncatedNormalLoad:
    """Spec 5.1: a parent normal N(mean, variance) truncated to [lower, upper], in MW.

    The bounds must be finite because the robust model (1) protects against every load in them.
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
        return truncnorm(
            (self.lower_mw - self.mean_mw) / sd, (self.upper_mw - self.mean_mw) / sd,
            loc=self.mean_mw, scale=sd,
        )


@dataclass(frozen=True, eq=False)
class Scenarios:
    """Background net load per scenario and bus (MW), plus the support box used by model (1).

    ``samples_mw[s, j]`` is the load at bus ``buses[j]`` in scenario ``s``. ``lower_mw`` and
    ``upper_mw`` bound every sample; for sampled loads they are the truncation bounds, for CSV
    data the per-bus sample range. Compared by identity (it holds arrays).
    """

    buses: tuple[int, ...]
    samples_mw: np.ndarray
    lower_mw: np.ndarray
    upper_mw: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "buses", tuple(self.buses))
        n_bus = len(self.buses)
        # Private read-only copies, so neither the caller nor a model can change them afterwards.
        samples = np.array(self.samples_mw, dtype=float)
        lower = np.array(self.lower_mw, dtype=float)
        upper = np.array(self.upper_mw, dtype=float)
        if samples.ndim != 2 or samples.shape[1] != n_bus or samples.shape[0] < 1:
            raise GridError(
                f"Scenarios.samples_mw must have shape (S >= 1, {n_bus}) for {n_bus} buses, got {samples.shape}"
            )
        if lower.shape != (n_bus,) or upper.shape != (n_bus,):
            raise GridError(
                f"Scenarios.lower_mw/upper_mw must have shape ({n_bus},), got {lower.shape} and {upper.shape}"
            )
        if not (np.all(np.isfinite(samples)) and np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
            raise GridError("Scenarios: samples and bounds must all be finite numbers")
        if np.any(lower > upper):
            bus = self.buses[int(np.argmax(lower > upper))]
            raise GridError(f"Scenarios: lower_mw exceeds upper_mw at bus {bus}")
        outside = (samples < lower - 1e-9) | (samples > upper + 1e-9)
        if np.any(outside):
            row, col = np.argwhere(outside)[0]
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


def sample_truncated_normal(
    network: Network,
    loads: Mapping[int, TruncatedNormalLoad],
    count: int,
    rng: np.random.Generator,
) -> Scenarios:
    """Draw ``count`` independent truncated-normal loads per bus (spec 5.1), buses in bus order.

    Buses absent from ``loads`` carry no background load (samples 0, box [0, 0]). Sampling walks
    the buses in network order so a seed reproduces the same arrays regardless of dict order.
    """
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
        raise GridError(f"scenario count must be an integer >= 1, got {count!r}")
    for bus, load in loads.items():
        try:
            network.bus_index(bus)
        except GridError as exc:
            raise GridError(f"background load given for {exc}") from None
        if not isinstance(load, TruncatedNormalLoad):
            raise GridError(f"load at bus {bus} must be a TruncatedNormalLoad, got {type(load).__name__}")
    n_bus = len(network.buses)
    samples = np.zeros((int(count), n_bus))
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
        draw = truncnorm((low - mean) / sd, (high - mean) / sd, loc=mean, scale=sd).rvs(
            size=(len(columns), int(count)), random_state=rng
        )
        # The inverse-CDF sampler can land a hair outside the bounds through round-off.
        samples[:, columns] = np.clip(draw, low, high).T
        lower[columns], upper[columns] = low[:, 0], high[:, 0]
    return Scenarios(network.bus_numbers, samples, lower, upper)


def read_scenarios_csv(path: str | os.PathLike, network: Network) -> Scenarios:
    """Read scenarios from a CSV: header = bus numbers, one row per scenario, values in MW.

    Buses without a column carry no background load. The robust box is the per-bus sample range,
    since a file gives no support of its own.
    """
    label = os.fspath(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle)]
    except FileNotFoundError:
        raise GridError(f"scenario file {label!r} not found; check the path") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise GridError(f"cannot read scenario file {label!r}: {exc}") from None

    # (file line number, cells) for non-blank rows; a trailing newline is not a scenario.
    numbered = [(number, row) for number, row in enumerate(rows, start=1) if any(c.strip() for c in row)]
    if not numbered:
        raise GridError(f"scenario file {label!r} is empty; expected a header of bus numbers and one row per scenario")
    header_line, header = numbered[0]
    columns: list[int] = []
    for position, text in enumerate(header, start=1):
        try:
            bus = int(text.strip())
        except ValueError:
            raise GridError(
                f"{label}: header column {position} is {text.strip()!r}, not an integer bus number"
            ) from None
        try:
            network.bus_index(bus)
        except GridError as exc:
            raise GridError(f"{label}: header column {position} names an {exc}") from None
        if bus in columns:
            raise GridError(f"{label}: bus {bus} has two columns ({columns.index(bus) + 1} and {position})")
        columns.append(bus)
    data = numbered[1:]
    if not data:
        raise GridError(f"scenario file {label!r} has a header but no scenario rows")
    for line_number, row in data:
        if len(row) != len(columns):
            raise GridError(
                f"{label}, line {line_number}: {len(row)} cells but the header has {len(columns)} columns"
            )
    try:
        values = np.array([row for _, row in data], dtype=str).astype(float)
    except ValueError:
        values = None
    if values is None or not np.all(np.isfinite(values)):
        _raise_first_bad_cell(label, data, columns)

    samples = np.zeros((len(data), len(network.buses)))
    for position, bus in enumerate(columns):
        samples[:, network.bus_index(bus)] = values[:, position]
    return Scenarios(network.bus_numbers, samples, samples.min(axis=0), samples.max(axis=0))


def _raise_first_bad_cell(label: str, data: list[tuple[int, list[str]]], columns: list[int]) -> None:
    """Locate the first cell that is not a finite number (slow path, only on error)."""
    for line_number, row in data:
        for bus, text in zip(columns, row):
            try:
                value = float(text)
            except ValueError:
                raise GridError(
                    f"{label}, line {line_number}, column for bus {bus}: {text.strip()!r} is not a number"
                ) from None
            if not math.isfinite(value):
                raise GridError(
                    f"{label}, line {line_number}, column for bus {bus}: {text.strip()!r} is not a finite number"
                )
    raise GridError(f"{label}: could not parse the scenario values")  # pragma: no cover
