"""The ``[price]`` table: DLMP coordination of a data-center aggregator with the DSO (spec
`dlmp-bilevel.md`).

Declared here and registered by the price study (sim/studies/registry.py), so `dcmarket price` and a run
with a ``[price]`` table read the same fields. Types and ranges are checked here; the checks that
need the feeder (buses, a generator at the head) are in grid/ and name the same fields.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from grid.feeder.bilevel import LINEARIZATIONS
from mechanisms.settings import MAX_SECONDS, Money, Settings


class GeneratorConfig(Settings):
    """A distributed generator: output per phase up to ``max_kw_per_phase``, cost
    ``cost_per_mwh`` PG + ``quadratic_cost`` PG^2 ($/h, PG in kW)."""

    name: str = Field(min_length=1)
    bus: int
    max_kw_per_phase: float = Field(gt=0, le=1e6)
    cost_per_mwh: Money = Field(ge=0)
    quadratic_cost: float = Field(default=0.0, ge=0, le=1e3)


class PriceSiteConfig(Settings):
    """A member's data-center site. ``power_factor`` and ``svg_kvar`` default to the table's."""

    bus: int
    max_kw: float = Field(gt=0, le=1e6)
    min_kw: float = Field(default=0.0, ge=0, le=1e6)
    member: str = ""
    power_factor: float | None = Field(default=None, gt=0, le=1)
    svg_kvar: float | None = Field(default=None, ge=0, le=1e6)


class PriceConfig(Settings):
    """``[price]``: the feeder's operating point, its generators, the aggregator's sites and
    workload, and how the bilevel problem is solved."""

    feeder: Literal["ieee37"] = "ieee37"
    head_voltage_pu: float = Field(default=1.03, ge=0.9, le=1.1)
    v_min_pu: float = Field(default=0.95, gt=0, lt=1)
    v_max_pu: float = Field(default=1.05, gt=1, le=1.2)
    substation_price_per_mwh: Money = Field(default=45.0, ge=0)
    generators: list[GeneratorConfig] = Field(default_factory=list)
    # The sites; default (in a run): the aggregator's members' sites, sized by the MW they won.
    sites: list[PriceSiteConfig] | None = None
    # In a run with several aggregators, the one that operates its sites.
    aggregator: str | None = None
    # The load to place (three-phase kW); default: `utilization` of the sites' total, in whole steps.
    total_kw: float | None = Field(default=None, ge=0, le=1e7)
    utilization: float = Field(default=0.8, gt=0, le=1)
    step_kw: float = Field(default=100.0, gt=0, le=1e6)
    power_factor: float = Field(default=0.9, gt=0, le=1)  # lagging, every site unless it says
    svg_kvar: float = Field(default=200.0, ge=0, le=1e6)  # SVG rating per phase, every site unless it says
    svg_step_kvar: float = Field(default=50.0, gt=0, le=1e6)
    svg_cost_per_mvarh: Money = Field(default=0.0, ge=0)
    # The stated bound on every DLMP ($/MWh): the big-M of the KKT conditions and McCormick rows.
    price_bound: float = Field(default=10_000.0, gt=0, le=1e9)
    linearization: str = "strong-duality"
    time_limit_s: float | None = Field(default=300.0, gt=0, le=MAX_SECONDS)

    @field_validator("linearization")
    @classmethod
    def _linearization(cls, name: str) -> str:
        if name not in LINEARIZATIONS:
            raise ValueError(f"{name!r} is not one of {', '.join(LINEARIZATIONS)}")
        return name

    @model_validator(mode="after")
    def _band(self) -> "PriceConfig":
        if not self.v_min_pu < self.head_voltage_pu < self.v_max_pu:
            raise ValueError(f"head_voltage_pu {self.head_voltage_pu:g} must lie inside [v_min_pu, v_max_pu] = "
                             f"[{self.v_min_pu:g}, {self.v_max_pu:g}] p.u.")
        return self


# The placements compared, in report order: the baseline, then the two cases of the DLMP model
# (docs/models/dlmp.md).
CASES = ("pro-rata", "no-svg", "svg")
CASE_TITLES = {"pro-rata": "pro rata, no coordination", "no-svg": "aggregator, no SVG (case 1)",
               "svg": "aggregator with SVG (case 2)"}
