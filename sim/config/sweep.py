"""A sweep file (`dcmarket sweep SWEEP.toml`): a base config, the overrides to vary, and the seeds.

    base = "paper_4bus_additive.toml"    # relative to the sweep file
    seeds = { count = 10 }               # seeds 0..9 (start = 0); or a list: seeds = [1, 2, 3]

    [grid]                               # every combination of these values
    "auction.increment" = [1, 2, 4]

    [[points]]                           # and/or listed combinations
    "auction.increment" = 3
    "mechanism.kind" = "clock"

    [sample]                             # and/or a seeded random sample
    count = 20
    seed = 1
    "auction.increment" = { uniform = [0.5, 5.0] }    # or { integers = [1, 5] }, { choice = [...] }

Parameter sets: the grid's combinations (or one empty set), each merged with every point, each
merged with every sample draw; then every set runs with every seed. Keys are `--set` paths
(sim/config/overrides.py) and are checked like them.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping

import numpy as np
from pydantic import Field, field_validator, model_validator

from mechanisms.settings import MAX_SEED, Settings
from sim.config.overrides import parse_path

DISTRIBUTIONS = ("uniform", "integers", "choice")
# The outcome columns of results.parquet (after run, status, error, seed and the swept
# parameters) and their types: fixed, so that a column stays numeric when every run failed.
METRIC_TYPES = {"mechanism": "string", "products": "int64", "bidders": "int64", "welfare_usd": "float64",
                "efficient_welfare_usd": "float64", "efficiency": "float64", "revenue_usd": "float64",
                "rounds": "int64", "rounds_run": "int64", "closed_by": "string", "equilibrium_holds": "bool",
                "equilibrium_holds_true": "bool", "walrasian_exists": "bool", "efficiency_gap_usd": "float64"}
# A plan run's outcome (`dcmarket plan` without its frontier and figures): per plan (sample, dro),
# its Stage I and objective, and its Stage II on the fresh scenarios.
PLAN_METRIC_TYPES = {
    **{f"{plan}_{name}": kind for plan in ("sample", "dro") for name, kind in (
        ("plan_cost_usd", "float64"), ("objective_usd", "float64"), ("units", "int64"), ("hubs", "string"))},
    **{f"{plan}_fresh_{name}": "float64" for plan in ("sample", "dro") for name in (
        "expected_cost_usd", "cvar_usd", "expected_ens_mwh", "stabilized_share")},
}
# The studies a sweep can run (each run is that study's command on the base config with its
# overrides and seed), and the outcome columns each writes.
SWEEP_STUDIES = {"run": METRIC_TYPES, "plan": PLAN_METRIC_TYPES}
METRICS = tuple(METRIC_TYPES)
# Columns a swept parameter may not be named after.
RESERVED_COLUMNS = frozenset({"run", "status", "error", "seed", "seconds", "worker",
                              *(m for metrics in SWEEP_STUDIES.values() for m in metrics)})
# Runs in one sweep (parameter sets times seeds); each leaves a run directory and a record.
MAX_RUNS = 10_000_000
# An integer the results table holds (a 64-bit column).
INT64 = (-(2**63), 2**63 - 1)


class SeedRange(Settings):
    count: int = Field(ge=1, le=MAX_RUNS, description="how many seeds")
    start: int = Field(default=0, ge=0, le=MAX_SEED, description="the first seed")

    @model_validator(mode="after")
    def _fits(self) -> "SeedRange":
        if self.start + self.count - 1 > MAX_SEED:
            raise ValueError(f"start + count - 1 must be at most {MAX_SEED} (seeds are 64-bit integers)")
        return self


class SampleConfig(Settings):
    """``count`` draws of the parameters named besides ``count`` and ``seed``."""

    count: int = Field(ge=1, le=1_000_000, description="how many draws")
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="the sample's seed")
    parameters: dict[str, dict[str, Any]] = Field(min_length=1, description="written as the table's other keys: a "
                                                  "--set path = { uniform = [lo, hi] }, { integers = [lo, hi] } or "
                                                  "{ choice = [...] }")

    @model_validator(mode="before")
    @classmethod
    def _collect(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "parameters" not in data:
            fixed = {k: data[k] for k in ("count", "seed") if k in data}
            return {**fixed, "parameters": {k: v for k, v in data.items() if k not in ("count", "seed")}}
        return data

    @field_validator("parameters")
    @classmethod
    def _distributions(cls, parameters: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for key, spec in parameters.items():
            _check_key(key)
            if len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
                raise ValueError(f"{key}: give one of {', '.join(DISTRIBUTIONS)}, e.g. {{ uniform = [0.5, 5.0] }}")
            kind, values = next(iter(spec.items()))
            if not isinstance(values, list) or not values:
                raise ValueError(f"{key}.{kind}: give a non-empty list")
            if kind in ("uniform", "integers"):
                if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                for v in values) or values[0] > values[1]:
                    raise ValueError(f"{key}.{kind}: give [low, high] with low <= high")
                if kind == "integers" and not all(isinstance(v, int) for v in values):
                    raise ValueError(f"{key}.integers: give whole numbers [low, high]")
                if kind == "integers" and not all(INT64[0] <= v <= INT64[1] for v in values):
                    raise ValueError(f"{key}.integers: low and high must fit the results table (64-bit integers, "
                                     f"{INT64[0]} to {INT64[1]})")
                if kind == "uniform" and not math.isfinite(float(values[1]) - float(values[0])):
                    raise ValueError(f"{key}.uniform: high - low overflows; give a range below 1e308")
            if kind == "choice":
                for value in values:
                    _check_value(key, value)
        return parameters

    def draws(self) -> list[dict[str, Any]]:
        """The sample, one dict per draw; each parameter from its own stream, seeded by ``seed``
        and the parameter's name, so adding a parameter does not move the others' values."""
        columns: dict[str, list[Any]] = {}
        for key in self.parameters:
            kind, values = next(iter(self.parameters[key].items()))
            rng = np.random.default_rng([self.seed, *key.encode("utf-8")])
            if kind == "uniform":
                columns[key] = [float(x) for x in rng.uniform(values[0], values[1], self.count)]
            elif kind == "integers":
                columns[key] = [int(x) for x in rng.integers(values[0], values[1], self.count, endpoint=True)]
            else:
                columns[key] = [values[int(i)] for i in rng.integers(0, len(values), self.count)]
        return [{key: columns[key][i] for key in self.parameters} for i in range(self.count)]


class SweepConfig(Settings):
    """A sweep file (`dcmarket sweep SWEEP.toml`): a base config, the `--set` paths to vary, and the seeds."""

    base: str = Field(min_length=1, description="the base config, relative to the sweep file")
    study: str = Field(default="run", description="what each run is: run (`dcmarket run`: the auction and the "
                       "studies after it) or plan (`dcmarket plan` without its frontier and figures)")
    seeds: list[int] | SeedRange = Field(default_factory=lambda: [0], description="every parameter set runs with "
                                         "each seed: a list, or { count = N, start = 0 }")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="every combination of these values, by "
                                       "--set path")
    points: list[dict[str, Any]] = Field(default_factory=list, description="listed combinations, each merged with "
                                         "every grid combination")
    sample: SampleConfig | None = Field(default=None, description="a seeded random sample, each draw merged with "
                                        "every set above")

    @field_validator("study")
    @classmethod
    def _study(cls, study: str) -> str:
        if study not in SWEEP_STUDIES:
            raise ValueError(f"unknown study {study!r}; choose one of {', '.join(SWEEP_STUDIES)}")
        return study

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: list[int] | SeedRange) -> list[int] | SeedRange:
        if isinstance(seeds, list):
            if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
                raise ValueError("give distinct non-negative seeds, or { count = N, start = 0 }")
            if max(seeds) > MAX_SEED:
                raise ValueError(f"seed {max(seeds)} is above {MAX_SEED} (seeds are 64-bit integers)")
        return seeds

    @field_validator("grid")
    @classmethod
    def _grid(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            _check_key(key)
            if not values:
                raise ValueError(f"{key}: give at least one value")
            for value in values:
                _check_value(key, value)
        return grid

    @field_validator("points")
    @classmethod
    def _points(cls, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for point in points:
            for key, value in point.items():
                _check_key(key)
                _check_value(key, value)
        return points

    @model_validator(mode="after")
    def _one_path_one_key(self) -> "SweepConfig":
        """Two spellings of one field would fight over it, and the table would show both."""
        keys = list(self.grid) + [k for p in self.points for k in p] + list(self.sample.parameters if self.sample else [])
        seen: dict[tuple, str] = {}
        for key in keys:
            path = parse_path(key)
            if seen.setdefault(path, key) != key:
                raise ValueError(f"{key!r} and {seen[path]!r} name the same field; write it one way")
        return self

    @model_validator(mode="after")
    def _bounded(self) -> "SweepConfig":
        """The number of runs, counted before any is listed: a grid of 30 fields of 10 values
        would otherwise be listed to the end of memory."""
        seeds = self.seeds.count if isinstance(self.seeds, SeedRange) else len(self.seeds)
        sets = math.prod(len(values) for values in self.grid.values()) * max(1, len(self.points))
        runs = sets * (self.sample.count if self.sample is not None else 1) * seeds
        if runs > MAX_RUNS:
            raise ValueError(f"the sweep has {runs:,} runs (parameter sets times seeds); at most {MAX_RUNS:,}: "
                             "vary fewer values or seeds, or split it into several sweeps")
        return self

    def seed_list(self) -> list[int]:
        if isinstance(self.seeds, SeedRange):
            return list(range(self.seeds.start, self.seeds.start + self.seeds.count))
        return list(self.seeds)

    def parameter_sets(self) -> list[dict[str, Any]]:
        """Every parameter set, in a fixed order (grid, then points, then sample draws)."""
        keys = list(self.grid)
        sets: list[dict[str, Any]] = [dict(zip(keys, combo)) for combo in itertools.product(*self.grid.values())]
        if self.points:
            sets = [{**s, **p} for s in sets for p in self.points]
        if self.sample is not None:
            sets = [{**s, **d} for s in sets for d in self.sample.draws()]
        return sets

    def swept_keys(self) -> list[str]:
        """The parameters that vary, in first-seen order (the results table's columns)."""
        keys: dict[str, None] = {}
        for parameter_set in self.parameter_sets():
            keys.update(dict.fromkeys(parameter_set))
        return list(keys)


def _check_key(key: str) -> None:
    if key != key.strip() or any(part != part.strip() for part in key.split(".")):
        raise ValueError(f"{key!r}: write the path without spaces around its parts")
    if parse_path(key)[0] == "seed":  # parse_path raises a ValueError naming a malformed key
        raise ValueError("seed: sweep seeds with `seeds`, not as a parameter")
    if key in RESERVED_COLUMNS:
        raise ValueError(f"{key}: the results table has a column of that name; a sweep cannot vary it")


def _check_value(key: str, value: Any) -> None:
    """Values a run's config and the results table can hold: finite numbers, strings, booleans,
    and lists and tables of them (no dates, no inf or nan)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{key}: {value} is not a finite number")
    if isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
        shown = f"{value:.3e}".replace("e+", "e")
        raise ValueError(f"{key}: {shown} does not fit the results table (64-bit integers, at most "
                         f"{INT64[1]:,} in size); give a smaller number, or a float")
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_value(key, item)
    elif isinstance(value, dict):
        for item in value.values():
            _check_value(key, item)
    elif not isinstance(value, (str, int, float, bool)):
        raise ValueError(f"{key}: a {type(value).__name__} cannot be a config value here; use a number or a string")
