"""Experiment configs: the TOML schema, validation with field-named errors, the effective config.

A config describes one run. Either the DSO quantifies products from a network
(`[network]`, `[load]`, `[products]`) or the config lists them (`[[products]]`). Every error is
one line that names the field (`auction.increment`, `bidders[1].by_size`, ...) and the fix.
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Mapping, Sequence, Union

import tomli_w
from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from agents.bundle_ties import BUNDLE_TIE_POLICIES
from agents.capacity_products import ProductSettings
from agents.errors import AgentConfigError
from agents.populations import DRAWERS, MIXES
from agents.profiles import (
    PROFILES,
    AdditiveFields,
    AggregatorFields,
    BudgetCappedFields,
    BundlesFields,
    ComplementsFields,
    PerMWFields,
    SitesFields,
    SymmetricConcaveFields,
)
from agents.strategies import STRATEGIES, ChosenStrategy, choose_strategy
from grid.ac.check import AcSettings
from grid.ac.correct import DEFAULT_MAX_ITERATIONS, MAX_ITERATIONS_CEILING
from grid.capacity.inputs.criteria import (
    BACKGROUND_SETS,
    DRAW_SETS,
    OUTAGE_SETS,
    SecurityCriteria,
)
from grid.capacity.rows.limits import DEFAULT_TOUCH_FACTOR
from grid.capacity.screened import LINE_ROWS
from grid.capacity.study import (
    FORMULATIONS,
    MIN_PRODUCT_MW,
    RISK_MODES,
    check_risk_levels,
    check_tail,
)
from grid.errors import GridError
from grid.load.scenarios import BaseLoadSpread, TruncatedNormalLoad
from grid.network.cases import CaseOptions
from grid.network.network import SLACK_MODELS
from grid.solvers.names import SOLVERS
from mechanisms.engines.clock import ClockRules
from mechanisms.engines.queue import QueueRules
from mechanisms.engines.saa import AuctionRules
from mechanisms.engines.vcg import VCGRules
from mechanisms.mechanism import MechanismSpec
from mechanisms.products import Product, risk_label
from mechanisms.registry import DEFAULT_MECHANISM, MECHANISMS
from mechanisms.settings import MAX_COUNT, MAX_MW, MAX_SEED, MW, Settings, SignedMW
from sim.config.dynamics import DynamicsConfig
from sim.config.headroom import HeadroomConfig
from sim.config.names import one_of
from sim.config.overrides import (
    NestingError,
    Override,
    OverrideError,
    apply_overrides,
    load_toml,
)
from sim.config.plan import PlanConfig
from sim.config.price import PriceConfig
from sim.errors import SHOWN_CHARS, ConfigError, cut_quoted, shown


class _Section(Settings):
    """A table of the config file."""


def _bus_keys(table: Any) -> Any:
    """TOML keys are strings; bus tables are keyed by bus number."""
    if not isinstance(table, Mapping):
        return table
    converted: dict[int, Any] = {}
    for key, value in table.items():
        text = str(key)
        if not re.fullmatch(r"-?[0-9]+", text):
            raise ValueError(f"key {key!r} is not a bus number; use integer bus numbers as keys")
        if int(text) in converted:
            raise ValueError(f"bus {int(text)} is given twice (as {key!r}); give each bus once")
        converted[int(text)] = value
    return converted




_REGISTRIES: dict[str, Iterable[str]] = {
    "profile": PROFILES,
    "strategy": STRATEGIES,
    "bundle_ties": BUNDLE_TIE_POLICIES,
    "draw": DRAW_SETS,
    "criterion": OUTAGE_SETS,
    "background": BACKGROUND_SETS,
    "lines": LINE_ROWS,
}


def _positive_table(table: dict[int, float], what: str, floor: float = 0.0) -> dict[int, float]:
    for bus, mw in table.items():
        if not (math.isfinite(mw) and mw > 0):
            raise ValueError(f"bus {bus}: {what} must be a positive number of MW, got {mw}")
        if mw < floor:
            raise ValueError(f"bus {bus}: {what} must be at least {floor:g} MW (the smallest product), got {mw:g}")
    return table


# An unrated line's rating is at most this many times its base-case flow.
MAX_RATING_MARGIN = 1000.0


class NetworkConfig(_Section):
    case: str = Field(min_length=1, description="a built-in case name (`dcmarket cases`), a MATPOWER .m file or a "
                      "CSV case folder, relative to the config")
    candidate_buses: list[int] | None = Field(default=None, min_length=1, description="the buses that may host data "
                                              "centers; default: the buses demand_mw names when it is a table, else "
                                              "every load bus of the case")
    demand_mw: MW | dict[int, MW] = Field(description="data-center demand D_i: a table by candidate bus, or one "
                                          "number for every candidate")
    slack: str | None = Field(default=None, description='who supplies new load: "reference" (the reference bus) or '
                              '"distributed" (the generators); default: distributed when the case has generators')
    import_limit_mw: float | None = Field(default=None, ge=0, le=MAX_MW, description="with a reference slack: the most "
                                          "the reference bus may import; default: no limit")
    withdrawal_limit_mw: MW | dict[int, MW] | None = Field(default=None, description="w-bar, the most a bus "
                                                           "may withdraw: one number, or a table by bus")
    default_rating_mw: float | None = Field(default=None, gt=0, le=MAX_MW, description="rating of the lines the case "
                                            "leaves unrated (a floor)")
    rating_margin: float | None = Field(default=None, gt=0, le=MAX_RATING_MARGIN, description="unrated lines are rated "
                                        "at least this times their base-case DC flow")

    @field_validator("demand_mw", "withdrawal_limit_mw", mode="before")
    @classmethod
    def _bus_tables(cls, table: Any) -> Any:
        return _bus_keys(table)

    @field_validator("candidate_buses")
    @classmethod
    def _unique_buses(cls, buses: list[int] | None) -> list[int] | None:
        if buses is not None and len(set(buses)) != len(buses):
            raise ValueError("a bus is listed twice; list each candidate bus once")
        return buses

    @field_validator("demand_mw")
    @classmethod
    def _positive_demand(cls, demand: float | dict[int, float]) -> float | dict[int, float]:
        if isinstance(demand, dict):
            if not demand:
                raise ValueError("the table is empty; give D > 0 MW per candidate bus, or one number for all")
            return _positive_table(demand, "demand", MIN_PRODUCT_MW)
        if not demand > 0:
            raise ValueError(f"demand must be a positive number of MW, got {demand}")
        if demand < MIN_PRODUCT_MW:
            raise ValueError(f"demand must be at least {MIN_PRODUCT_MW:g} MW (the smallest product), got {demand:g}")
        return demand

    @field_validator("withdrawal_limit_mw")
    @classmethod
    def _positive_limits(cls, limits: float | dict[int, float] | None) -> float | dict[int, float] | None:
        if isinstance(limits, dict):
            return _positive_table(limits, "withdrawal limit")
        if limits is not None and not limits > 0:
            raise ValueError(f"withdrawal limit must be a positive number of MW, got {limits}")
        return limits

    @field_validator("slack")
    @classmethod
    def _known_slack(cls, value: str | None) -> str | None:
        return None if value is None else one_of(value, SLACK_MODELS, "slack")

    @model_validator(mode="after")
    def _demand_matches_candidates(self) -> "NetworkConfig":
        if self.candidate_buses is None or not isinstance(self.demand_mw, dict):
            return self
        missing = [b for b in self.candidate_buses if b not in self.demand_mw]
        if missing:
            raise ValueError(f"demand_mw has no value for candidate bus {missing[0]}; give every candidate a demand (MW)")
        extra = [b for b in self.demand_mw if b not in self.candidate_buses]
        if extra:
            raise ValueError(f"demand_mw names bus {extra[0]}, which is not in candidate_buses; add it there or remove it")
        return self

    def case_options(self) -> CaseOptions:
        """How the case is loaded: its slack model, limits and default ratings."""
        return CaseOptions(default_rating_mw=self.default_rating_mw, rating_margin=self.rating_margin,
                           slack=self.slack, import_limit_mw=self.import_limit_mw,
                           withdrawal_limit_mw=self.withdrawal_limit_mw)


class BusLoadConfig(_Section):
    """Truncated normal background net load at one bus (MW; variance in MW^2)."""

    mean: SignedMW = Field(description="mean of the parent normal")
    variance: float = Field(gt=0, le=MAX_MW**2, description="variance of the parent normal")
    lower: SignedMW = Field(description="lower truncation bound")
    upper: SignedMW = Field(description="upper truncation bound, above lower")

    @model_validator(mode="after")
    def _ordered_bounds(self) -> "BusLoadConfig":
        if not self.lower < self.upper:
            raise ValueError(f"lower ({self.lower:g} MW) must be below upper ({self.upper:g} MW)")
        return self

    def distribution(self) -> TruncatedNormalLoad:
        return TruncatedNormalLoad(mean_mw=self.mean, variance_mw2=self.variance, lower_mw=self.lower,
                                   upper_mw=self.upper)


class SpreadConfig(_Section):
    """The default background: each bus's base load with sd = sd_fraction x |base load|."""

    sd_fraction: float = Field(default=0.05, gt=0, le=1, description="standard deviation as a fraction of |base load|")
    truncation_sd: float = Field(default=3.0, gt=0, le=10, description="loads are truncated this many sd from the base")
    above_sd: float | None = Field(default=None, ge=0, le=10, description="how many sd above its base a load may go "
                                   "(default: truncation_sd, symmetric); 0 makes the base load the forecast peak, "
                                   "loads varying below it")

    def spread(self) -> BaseLoadSpread:
        return BaseLoadSpread(sd_fraction=self.sd_fraction, truncation_sd=self.truncation_sd, above_sd=self.above_sd)


class LoadConfig(_Section):
    # The memory guard (grid.load.scenarios) refuses counts that do not fit, with the estimate, once
    # the network is known; this bound only catches typos.
    scenarios: int | None = Field(default=None, ge=1, le=1_000_000_000, description="how many load scenarios to draw")
    buses: dict[int, BusLoadConfig] | None = Field(default=None, description="a truncated normal per bus; buses not "
                                                   "named carry no background load")
    spread: SpreadConfig | None = Field(default=None, description="without buses: every bus varies around its base "
                                        "load (the default)")
    correlation: float | None = Field(default=None, ge=0, lt=1, description="one correlation for every pair of buses "
                                      "(a one-factor Gaussian copula, same marginals)")
    correlation_csv: str | None = Field(default=None, description="a CSV correlation matrix by bus number, instead "
                                        "of correlation")
    scenarios_csv: str | None = Field(default=None, description="instead of drawing: a CSV or Parquet file, one "
                                      "column per bus number, one row per scenario (MW)")

    @field_validator("buses", mode="before")
    @classmethod
    def _load_bus_keys(cls, table: Any) -> Any:
        return _bus_keys(table)

    @model_validator(mode="after")
    def _one_source(self) -> "LoadConfig":
        if self.scenarios_csv is not None:
            given = [n for n in ("scenarios", "buses", "spread", "correlation", "correlation_csv")
                     if getattr(self, n) is not None]
            if given:
                raise ValueError(
                    f"give either scenarios_csv or scenarios (with [load.buses], [load.spread] or the case's base "
                    f"loads), not both; remove {given[0]}"
                )
            return self
        if self.scenarios is None:
            raise ValueError(
                "needs scenarios (a count: the case's base loads vary by [load.spread], or by [load.buses] "
                "distributions) or scenarios_csv (a CSV or Parquet file, one column per bus, MW)"
            )
        if self.buses is not None and self.spread is not None:
            raise ValueError("give either [load.buses] (a distribution per bus) or [load.spread] (around the base loads), not both")
        if self.correlation is not None and self.correlation_csv is not None:
            raise ValueError("give either correlation (one number for every pair of buses) or correlation_csv, not both")
        return self


class ProductGridConfig(_Section):
    risk_levels: list[float] = Field(min_length=1, max_length=20, description="epsilon of each flexible tier, in "
                                     "(0, 1); several levels give nested tiers")
    risk_mode: str = Field(default="per_constraint", description='"per_constraint" (CVaR of each limit) or "joint" '
                           "(each product's interruption probability <= epsilon)")
    formulation: str = Field(default="exact", description='"exact" or "scenario" (the paper\'s scenario LP: the same '
                             "answer, far slower)")
    block_mw: float | None = Field(default=None, gt=0, le=MAX_MW, description="split products into blocks of this "
                                   "many MW")
    touch_factor: float = Field(default=DEFAULT_TOUCH_FACTOR, gt=0, le=1, description="shift factor from which a "
                                "bus counts as touching a limit")
    theory_checks: bool = Field(default=False, description="check Theorem 1 and Proposition 1 in `dcmarket run` "
                                "(always on in `dcmarket capacity`)")
    lines: str = Field(default="auto", description='which lines become rows of the capacity LP: "auto" (every line '
                       'when their dense rows fit in memory, else screened), "all", or "screened" (every line '
                       "checked, only those near their room as rows; docs/models/capacity.md#screened-lines)")

    @field_validator("risk_levels")
    @classmethod
    def _in_unit_interval(cls, levels: list[float]) -> list[float]:
        try:
            check_risk_levels(levels)
        except GridError as error:
            raise ValueError(str(error)) from None
        # Distinct levels can still share a product id's tier label (0.05 and 0.0500000001).
        labels = [risk_label(eps) for eps in levels]
        for i, label in enumerate(labels):
            if labels.index(label) != i:
                raise ValueError(f"risk levels {levels[labels.index(label)]} and {levels[i]} are the same tier "
                                 f"({label}); give distinct levels")
        return levels

    @field_validator("risk_mode")
    @classmethod
    def _known_mode(cls, value: str) -> str:
        return one_of(value, RISK_MODES, "risk_mode")

    @field_validator("formulation")
    @classmethod
    def _known_formulation(cls, value: str) -> str:
        return one_of(value, FORMULATIONS, "formulation")

    @field_validator("lines")
    @classmethod
    def _known_lines(cls, value: str) -> str:
        return one_of(value, LINE_ROWS, "lines")

    def product_settings(self, security: SecurityConfig) -> ProductSettings:
        """How the DSO turns capacities into products, against ``security`` (the [security] table)."""
        return ProductSettings(risk_levels=tuple(sorted(self.risk_levels)), risk_mode=self.risk_mode,
                               formulation=self.formulation, block_mw=self.block_mw,
                               touch_factor=self.touch_factor, criteria=security.criteria(), lines=self.lines)


class ExplicitProductConfig(_Section):
    id: str = Field(min_length=1, description="the product id, without spaces or commas")
    bus: int | None = Field(default=None, description="the bus it is at, if any")
    risk: float = Field(default=0.0, ge=0, lt=1, description="its interruption risk epsilon (0: firm)")
    capacity_mw: float = Field(ge=0, le=MAX_MW, description="its capacity")

    def product(self) -> Product:
        return Product(self.id, self.bus, self.risk, self.capacity_mw)

    @field_validator("id")
    @classmethod
    def _no_spaces(cls, value: str) -> str:
        if value != value.strip() or any(ch.isspace() for ch in value) or "," in value:
            raise ValueError(f"product id {value!r} must not contain spaces or commas")
        return value


class MechanismConfig(_Section):
    """``[mechanism]``: which mechanism sells the products; its rules are in its own table."""

    kind: str = Field(default=DEFAULT_MECHANISM, description='the mechanism: "saa", "clock", "vcg" or "queue"; '
                      "its rules go in its own table")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        return one_of(value, MECHANISMS, "mechanism")


class _BiddingChoice(_Section):
    """How bidders bid: a strategy (a name, or a table with `name` and the strategy's own fields)
    and a bundle tie policy. Shared by `[[bidders]]` entries and `[population]`."""

    strategy: str | dict[str, Any] = Field(default="straightforward", validate_default=True,
                                           description="how it bids: a strategy's name, "
                                           "or a table with name and the strategy's fields (see Strategies)")
    bundle_ties: str = Field(default="paper", description='which of equally good bundles it bids on: "paper", '
                             '"largest", "smallest" or "fewest_new"')

    @field_validator("bundle_ties")
    @classmethod
    def _registered_name(cls, value: str, info: ValidationInfo) -> str:
        return one_of(value, _REGISTRIES[info.field_name], info.field_name)

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str | dict[str, Any]) -> ChosenStrategy:
        """Validated here, once: the field then holds the ChosenStrategy (written back as given)."""
        try:
            return choose_strategy(value)
        except AgentConfigError as error:
            raise ValueError(str(error).removeprefix("strategy: ").removeprefix("strategy.")) from None

    @field_serializer("strategy")
    def _written_strategy(self, value: ChosenStrategy) -> str | dict[str, Any]:
        return value.written if isinstance(value, ChosenStrategy) else value

    @property
    def chosen_strategy(self) -> ChosenStrategy:
        return choose_strategy(self.strategy)


class _BidderBase(_BiddingChoice):
    """What every bidder has; its profile's own fields come from the profile (agents/profiles.py)."""

    name: str = Field(min_length=1, description="the bidder's name, unique, without commas")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if value != value.strip() or "," in value:
            raise ValueError(f"bidder name {value!r} must not have surrounding spaces or commas")
        return value

    @classmethod
    def unknown_field_message(cls, key: str) -> str:
        own = PROFILES[cls.profile_name]
        if any(key in spec.field_names() for spec in PROFILES.values() if spec is not own):
            return (f"field {key!r} does not belong to profile {own.name!r}; it reads only "
                    + " or ".join(repr(f) for f in own.field_names()))
        return super().unknown_field_message(key)


_PROFILE_FIELD = "the valuation profile, which sets the entry's other fields"


# A bidder entry of each profile: the common fields, `profile = "<name>"` and the profile's own
# (agents/profiles.py); tests check that every registered profile has its entry here.
class AdditiveBidder(_BidderBase, AdditiveFields):
    profile: Literal["additive"] = Field(description=_PROFILE_FIELD)


class SymmetricConcaveBidder(_BidderBase, SymmetricConcaveFields):
    profile: Literal["symmetric_concave"] = Field(description=_PROFILE_FIELD)


class BundlesBidder(_BidderBase, BundlesFields):
    profile: Literal["bundles"] = Field(description=_PROFILE_FIELD)


class SitesBidder(_BidderBase, SitesFields):
    profile: Literal["sites"] = Field(description=_PROFILE_FIELD)


class PerMWBidder(_BidderBase, PerMWFields):
    profile: Literal["per_mw"] = Field(description=_PROFILE_FIELD)


class BudgetCappedBidder(_BidderBase, BudgetCappedFields):
    profile: Literal["budget_capped"] = Field(description=_PROFILE_FIELD)


class ComplementsBidder(_BidderBase, ComplementsFields):
    profile: Literal["complements"] = Field(description=_PROFILE_FIELD)


class AggregatorBidder(_BidderBase, AggregatorFields):
    profile: Literal["aggregator"] = Field(description=_PROFILE_FIELD)


# `profile` picks the entry's schema, so each profile validates exactly its own keys.
BidderConfig = Annotated[
    Union[AdditiveBidder, SymmetricConcaveBidder, BundlesBidder, SitesBidder,
          PerMWBidder, BudgetCappedBidder, ComplementsBidder, AggregatorBidder],
    Field(discriminator="profile"),
]


# Bidders listed, or drawn by [population].
MAX_BIDDERS = 100_000


class PopulationConfig(_BiddingChoice):
    """``[population]``: bidders drawn from seeded generators (agents/populations.py), in addition
    to or instead of ``[[bidders]]``."""

    count: int = Field(ge=1, le=MAX_BIDDERS, description="how many bidders to draw")
    mix: str | dict[str, float] = Field(default="gross_substitutes", description='a named mix ("gross_substitutes" '
                                        'or "mixed") or a table of shares by profile that sum to 1')

    @field_validator("mix", mode="before")
    @classmethod
    def _known_mix(cls, value: Any) -> Any:
        if isinstance(value, str):
            return one_of(value, MIXES, "mix")
        if not isinstance(value, Mapping):
            raise ValueError(f"a mix is a name ({', '.join(MIXES)}) or a table of shares by profile, got {value!r}")
        for kind, share in value.items():
            one_of(kind, DRAWERS, "profile")
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
                raise ValueError(f"share of {kind!r} must be a number in [0, 1], got {share!r}")
        if not math.isclose(sum(value.values()), 1.0, abs_tol=1e-9):
            raise ValueError(f"shares must sum to 1, got {sum(value.values()):g}")
        return value

    def shares(self) -> dict[str, float]:
        return dict(MIXES[self.mix]) if isinstance(self.mix, str) else dict(self.mix)


class SecurityConfig(_Section):
    """``[security]``: what firm and flexible capacity must hold against (grid/capacity/inputs/criteria.py)."""

    draw: str = Field(default="partial", description='"partial": every product drawn anywhere up to its capacity, '
                      'independently (holds whatever sells); "full": every product sold and drawn in full (the '
                      "paper's model, which may count on other products' counterflow)")
    criterion: str = Field(default="n-0", description='the outages the limits hold in: "n-0" (the intact network) or '
                           '"n-1" (also after any single branch outage that keeps it connected)')
    contingencies: Literal["case", "all"] = Field(default="case", description='N-1: "case": the case\'s own '
                                                  "contingency list where it ships one (contab_<case>.m, its single-"
                                                  'branch outages), else every branch; "all": every branch')
    emergency_factor: float = Field(default=1.0, ge=0.5, le=3.0, description="N-1: a line's rating after an outage, "
                                    "where the case gives no RATE_B or RATE_C, is its rating times this")
    # Firm capacity's background set (docs/models/capacity.md#background-sets); flexible tiers read the scenarios.
    background: str = Field(default="box", description='what firm capacity holds against: "box" (every load '
                                   'anywhere in its range at once, the paper\'s), "budgeted" (at most `budget` loads '
                                   'away from the middle of their range at once) or "peak" (every load at the top of '
                                   'its range: the forecast peak); default: "budgeted" with a budget, else "box"')
    budget: float | None = Field(default=None, ge=0, le=MAX_COUNT, description='the budgeted box: how many loads may '
                                 'leave the middle of their range at once (Bertsimas and Sim)')

    @field_validator("draw", "criterion", "background")
    @classmethod
    def _registered_name(cls, value: str, info: ValidationInfo) -> str:
        return one_of(value, _REGISTRIES[info.field_name], info.field_name)

    @model_validator(mode="before")
    @classmethod
    def _default_background(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("background") is None:
            return {**data, "background": "budgeted" if data.get("budget") is not None else "box"}
        return data

    @model_validator(mode="after")
    def _background_and_budget(self) -> "SecurityConfig":
        if self.background == "budgeted" and self.budget is None:
            raise ValueError('background = "budgeted" needs budget, how many loads at their bounds at once (e.g. 30)')
        if self.background != "budgeted" and self.budget is not None:
            raise ValueError(f'budget applies to background = "budgeted", not {self.background!r}; drop budget')
        return self

    def criteria(self) -> SecurityCriteria:
        return SecurityCriteria(draw=self.draw, outages=self.criterion, emergency_factor=self.emergency_factor,
                                background=self.background, budget=self.budget)


class AcConfig(_Section):
    """``[ac]``: the AC power flow check of `dcmarket capacity` (docs/models/ac-check.md)."""

    check: bool = Field(default=True, description="check the firm and the riskiest tier's allocation with an AC power "
                        "flow (pandapower) at the states the DC model found worst (MATPOWER cases; --verify 0 skips it)")
    states: int = Field(default=5, ge=0, le=100, description="sampled scenarios checked per model besides the firm "
                        "corners: those whose DC flows load a line most")
    power_factor: float = Field(default=0.95, gt=0, le=1, description="of the new loads (lagging)")
    vmin_pu: float = Field(default=0.95, gt=0, lt=1, description="the voltage band's floor")
    vmax_pu: float = Field(default=1.05, gt=1, le=1.5, description="the voltage band's ceiling")
    correct: bool = Field(default=True, description="tighten the linear study where the AC check finds a violation "
                          "caused by new load (line limits, linearised voltage rows) and solve it again; the corrected "
                          "allocation becomes the study's result")
    max_iterations: int = Field(default=DEFAULT_MAX_ITERATIONS, ge=0, le=MAX_ITERATIONS_CEILING,
                                description="re-solves of the AC correction at most")

    def settings(self) -> AcSettings:
        return AcSettings(power_factor=self.power_factor, vmin_pu=self.vmin_pu, vmax_pu=self.vmax_pu)


class EquilibriumConfig(_Section):
    # The checker enumerates 2^m bundles per bidder and 3^m pairs for the efficient allocation.
    # Past 16, 3^m pairs take minutes and gigabytes; larger markets need other certificates.
    max_products: int = Field(default=12, ge=1, le=16, description="markets with up to this many products are "
                              "also checked by exact enumeration")


# The tables that studies other than the auction read (`dcmarket plan`, `dcmarket price`).
STUDY_TABLES = ("plan", "price", "headroom", "dynamics")


class ExperimentConfig(_Section):
    """A whole config file. Every table is declared here, so the schema reads in one place."""

    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="every random stream of the run derives from it")
    solver: str = Field(default="highs", description='the LP and MILP solver: "highs" or "glpk"')
    network: NetworkConfig | None = Field(default=None, description="the network the DSO quantifies capacity on")
    load: LoadConfig | None = Field(default=None, description="the background load scenarios")
    # `[products]` (a table) sets how the DSO makes products; `[[products]]` (a list) gives them.
    products: ProductGridConfig | list[ExplicitProductConfig] | None = Field(
        default=None, description="a table [products]: how the DSO makes products from [network] and [load]; or a "
        "list [[products]]: products listed by hand, instead of those three tables")
    # A run needs bidders and the mechanism's rules; `dcmarket capacity` reads a config without them.
    mechanism: MechanismConfig = Field(default=MechanismConfig(), description="which mechanism sells the products")
    bidders: list[BidderConfig] | None = Field(default=None, min_length=1, max_length=MAX_BIDDERS,  # type: ignore[valid-type]
                                               description="the bidders, one entry each")
    population: PopulationConfig | None = Field(default=None, description="bidders drawn from seeded generators")
    equilibrium: EquilibriumConfig = Field(default=EquilibriumConfig(), description="how the outcome is judged")
    security: SecurityConfig = Field(default=SecurityConfig(), description="what firm and flexible capacity hold "
                                     "against: the draw set and the outages")
    ac: AcConfig = Field(default=AcConfig(), description="the AC power flow check of dcmarket capacity")
    # Each mechanism's rules, in the table its spec names (mechanisms/registry.py); only the chosen
    # mechanism's table may be present.
    auction: AuctionRules | None = Field(default=None, description='the rules of kind = "saa"')
    clock: ClockRules | None = Field(default=None, description='the rules of kind = "clock"')
    vcg: VCGRules | None = Field(default=None, description='the rules of kind = "vcg"')
    queue: QueueRules | None = Field(default=None, description='the rules of kind = "queue"')
    # The post-auction studies' tables.
    plan: PlanConfig | None = Field(default=None, description="the flexible-capacity plan (after a run, or "
                                    "`dcmarket plan`)")
    price: PriceConfig | None = Field(default=None, description="DLMP prices on a feeder (after a run, or "
                                      "`dcmarket price`)")
    headroom: HeadroomConfig | None = Field(default=None, description="hourly headroom per bus on real load data "
                                            "(`dcmarket headroom`)")
    dynamics: DynamicsConfig | None = Field(default=None, description="interconnection over time: allocation regimes "
                                            "compared on the same arrivals (`dcmarket evolve`)")

    @field_validator("solver")
    @classmethod
    def _known_solver(cls, value: str) -> str:
        return one_of(value, SOLVERS, "solver")

    @property
    def product_grid(self) -> ProductGridConfig | None:
        """``[products]`` as a table: how the DSO makes products."""
        return self.products if isinstance(self.products, ProductGridConfig) else None

    @property
    def explicit_products(self) -> list[ExplicitProductConfig] | None:
        """``[[products]]`` as a list: the products themselves."""
        return self.products if isinstance(self.products, list) else None

    @model_validator(mode="after")
    def _one_product_source(self) -> "ExperimentConfig":
        if self.explicit_products is not None:
            if self.network is not None or self.load is not None:
                raise ValueError(
                    "products: explicit [[products]] cannot be combined with [network]/[load]; "
                    "remove [[products]] to quantify products from the network, or remove [network] and [load]"
                )
            if not self.explicit_products:
                raise ValueError("products: [[products]] is empty; list at least one product")
        elif (self.network, self.load, self.product_grid) == (None, None, None) and self.study_only():
            return self  # a study-only config (`dcmarket plan`, `dcmarket price`): its data are in its table
        else:
            for name, section in (("network", self.network), ("load", self.load), ("products", self.product_grid)):
                if section is None:
                    raise ValueError(
                        f"{name}: missing [{name}]; a config needs [network], [load] and [products] "
                        "(or explicit [[products]] instead of all three)"
                    )
        return self

    @model_validator(mode="after")
    def _enough_tail(self) -> "ExperimentConfig":
        """Enough scenarios for the smallest risk level (a scenario file is counted when read)."""
        if self.load is not None and self.load.scenarios is not None and self.product_grid is not None:
            try:
                check_tail(self.product_grid.risk_levels, self.load.scenarios, "products.risk_levels")
            except GridError as error:
                raise ValueError(f"load.scenarios: {error}") from None
        return self

    @field_validator("bidders")
    @classmethod
    def _unique_bidders(cls, bidders: list[BidderConfig] | None) -> list[BidderConfig] | None:
        if bidders is None:
            return None
        names = [b.name for b in bidders]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ValueError(f"bidder name {duplicate!r} is used twice; bidder names must be unique")
        return bidders

    @field_validator("products")
    @classmethod
    def _unique_products(cls, products: ProductGridConfig | list[ExplicitProductConfig] | None
                         ) -> ProductGridConfig | list[ExplicitProductConfig] | None:
        if isinstance(products, list):
            ids = [p.id for p in products]
            duplicate = next((i for i in ids if ids.count(i) > 1), None)
            if duplicate is not None:
                raise ValueError(f"product id {duplicate!r} is listed twice; product ids must be unique")
        return products

    @model_validator(mode="after")
    def _one_rule_table(self) -> "ExperimentConfig":
        chosen = MECHANISMS[self.mechanism.kind]
        for spec in MECHANISMS.values():
            if spec is not chosen and getattr(self, spec.table, None) is not None:
                raise ValueError(
                    f"{spec.table}: [{spec.table}] holds the rules of the {spec.kind!r} mechanism, but "
                    f"[mechanism] kind = {chosen.kind!r}; remove [{spec.table}] or set kind = {spec.kind!r}"
                )
        chosen_strategies = [(f"bidders[{i}]", b.chosen_strategy) for i, b in enumerate(self.bidders or [])]
        if self.population is not None:
            chosen_strategies.append(("population", self.population.chosen_strategy))
        for where, picked in chosen_strategies:
            strategy = picked.spec
            playable = strategy.mechanisms
            if playable is not None and chosen.kind not in playable:
                raise ValueError(
                    f"{where}.strategy: {strategy.name!r} plays only {', '.join(sorted(playable))}, "
                    f"not the {chosen.kind!r} mechanism"
                )
        return self

    def study_only(self) -> bool:
        """Whether some study's table (`[plan]`, `[price]`) is present: such a config may sell nothing."""
        return any(getattr(self, table) is not None for table in STUDY_TABLES)

    def require_market(self) -> tuple[MechanismSpec, Settings, list[Any]]:
        """The mechanism, its rules and the bidders, or a one-line error saying what a run needs."""
        if self.explicit_products is None and self.network is None:
            tables = [t for t in STUDY_TABLES if getattr(self, t) is not None]
            raise ConfigError(f"products: this config has only [{'], ['.join(tables)}] and nothing to sell; run it "
                              f"with dcmarket {' or dcmarket '.join(tables)}, or add [network], [load] and [products] "
                              "(or [[products]])")
        spec = MECHANISMS[self.mechanism.kind]
        rules = getattr(self, spec.table, None)
        if rules is None:
            needed = [name for name, f in spec.rules.model_fields.items() if f.is_required()]
            if needed:
                raise ConfigError(
                    f"{spec.table}: missing [{spec.table}]; the {spec.kind!r} mechanism needs its rules "
                    f"({', '.join(needed)}), and dcmarket run needs [[bidders]] (dcmarket capacity needs neither)"
                )
            rules = spec.rules()
        if self.bidders is None and self.population is None:
            raise ConfigError("bidders: missing [[bidders]]; dcmarket run needs [[bidders]] (or a [population]) and "
                              f"the mechanism's [{spec.table}] (dcmarket capacity needs neither)")
        return spec, rules, list(self.bidders or [])


# Each mechanism's rule table is a field of its own (`[auction]` for the SAA), from the registry;
# so is each study's table (`[plan]`), from the study registry.


# --------------------------------------------------------------------------------------------
def _subclasses(cls: type) -> set[type]:
    return {sub for direct in cls.__subclasses__() for sub in {direct} | _subclasses(direct)}


_SCHEMA_TAGS = frozenset(cls.__name__ for cls in _subclasses(Settings)) | {"list[...]", "dict[...]"}
# Pydantic names a union's branches by their types (`float`, `dict[int,float]`, `list[int]`).
_TYPE_TAG = re.compile(r"(float|int|str|bool|none|any|(list|dict|tuple|set|literal)\[.*\]|"
                       r"function-(after|before|wrap|plain)\[.*\]|constrained-\w+)")
# Errors that say only that the input is not of a branch's type: the other branch's error says more.
_TYPE_ERRORS = frozenset({"float_type", "int_type", "string_type", "bool_type", "list_type", "dict_type",
                          "model_type", "model_attributes_type", "tuple_type", "set_type", "none_required",
                          "is_instance_of", "int_from_float", "literal_error"})


def _is_tag(part: Any) -> bool:
    return isinstance(part, str) and (part in _SCHEMA_TAGS or _TYPE_TAG.fullmatch(part) is not None)
# Tables keyed by bus number: their integer keys print as `.3`, list indices as `[3]`.
_BUS_TABLES = {"buses", "demand_mw", "withdrawal_limit_mw"}


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    previous = None
    for part in loc:
        if isinstance(part, int) and previous in _BUS_TABLES:
            path += f".{part}"
        elif isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            name = str(part)
            name = name if len(name) <= SHOWN_CHARS else name[: SHOWN_CHARS - 3] + "..."
            path += f".{name}" if path else name
        previous = part
    return path


def _describe_error(error: Mapping[str, Any]) -> str:
    message = str(error["msg"])
    if error["type"] in ("model_type", "model_attributes_type"):
        return f"expected a table, e.g. [section] or {{ key = value }} (got {shown(error.get('input'))})"
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    if error["type"] == "missing":
        message = "required field is missing"
    elif error["type"] == "union_tag_invalid":
        message = f"unknown profile {error['ctx']['tag']!r}; choose one of {', '.join(PROFILES)}"
    elif error["type"] == "union_tag_not_found":
        message = f"required field is missing; choose one of {', '.join(PROFILES)}"
    elif error["type"] in ("greater_than", "greater_than_equal", "less_than", "less_than_equal",
                           "int_parsing", "float_parsing", "int_type", "float_type", "list_type",
                           "dict_type", "string_type", "model_type", "bool_type", "literal_error",
                           "too_short", "too_long", "int_from_float", "finite_number"):
        message = f"{message[0].lower()}{message[1:]} (got {shown(error.get('input'))})"
    return message


def _chosen_error(errors: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any], list[str]]:
    """The error to report, and for a value that fits no branch of a union, what each branch
    expects. A union (``float | dict[int, float]``, ``list[int] | SeedRange``) gets one error per
    branch, the first often only "not a number" when the input was a table with a bad entry: a
    branch that got past the type check, or into the input, says more."""
    first = errors[0]
    fork = next((k for k, part in enumerate(first["loc"]) if _is_tag(part)), None)
    if fork is None:
        return first, []
    prefix = first["loc"][:fork]
    branches = [e for e in errors if e["loc"][:fork] == prefix and len(e["loc"]) > fork and _is_tag(e["loc"][fork])]
    deeper = [e for e in branches if e["type"] not in _TYPE_ERRORS or len(e["loc"]) > fork + 1]
    if deeper:
        return deeper[0], []
    expected = list(dict.fromkeys(_branch_words(str(e["msg"])) for e in branches))
    return first, expected


# What a union's branch expects, in the words of a TOML file rather than pydantic's.
_BRANCH_WORDS = (("a valid dictionary", "a table"), ("a valid list", "a list"), ("a valid number", "a number"),
                 ("a valid integer", "an integer"), ("a valid string", "a string"), ("a valid boolean", "true or false"))


def _branch_words(message: str) -> str:
    message = message.removeprefix("Input should be ")
    return next((words for start, words in _BRANCH_WORDS if message.startswith(start)), message)


def format_validation_error(error: ValidationError, source: str) -> str:
    first, expected = _chosen_error(error.errors())
    # Pydantic may tag a path with the schema it tried (a union branch, a validator, a bidder's
    # profile); those are not fields. User keys such as product ids are kept whatever their case.
    raw = first["loc"]
    loc = tuple(
        part for k, part in enumerate(raw)
        if not _is_tag(part)
        and not (k >= 2 and raw[k - 2] == "bidders" and isinstance(raw[k - 1], int) and part in PROFILES)
    )
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc += ("profile",)
    path = _field_path(loc)
    if len(expected) > 1:
        what = f"input should be {', or '.join(expected)} (got {shown(first.get('input'))})"
    else:
        what = cut_quoted(_describe_error(first))
    # Cross-section checks have no single location; their messages start with the field.
    return f"{source}: {path}: {what}" if path else f"{source}: {what}"


def parse_config(raw: Mapping[str, Any], source: str = "config") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None


def read_config_file(path: Path, what: str = "config") -> dict[str, Any]:
    """The TOML file's tables; ``what`` names the file in errors (a config, a sweep file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} file not found; check the path") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read {what} ({error.__class__.__name__}); give a UTF-8 TOML file") from None
    try:
        return load_toml(text)
    except NestingError as error:
        raise ConfigError(f"{path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None


def with_overrides(raw: Mapping[str, Any], sets: Sequence[Override]) -> dict[str, Any]:
    """``raw`` with the ``--set``/``--unset`` overrides applied (sim/config/overrides.py).

    Choosing another mechanism (``--set mechanism.kind=clock``) drops the rule tables of the
    others that came from the file (``[auction]`` of the SAA, ...), which only one mechanism may
    have; rule tables the overrides themselves set stay, and are checked as usual.
    """
    try:
        out = apply_overrides(raw, sets)
    except OverrideError as error:
        raise ConfigError(str(error)) from None
    kinds = [o for o in sets if o.path == ("mechanism", "kind") and not o.unset]
    if kinds:
        chosen = out.get("mechanism", {}).get("kind")
        named = {o.path[0] for o in sets if not o.unset}
        for spec in MECHANISMS.values():
            if spec.kind != chosen and spec.table in out and spec.table not in named:
                del out[spec.table]
    return out


def load_config(path: Path, overrides: Mapping[str, Any] | None = None,
                sets: Sequence[Override] = (), table: str | None = None,
                command: str | None = None, page: str | None = None) -> ExperimentConfig:
    """Read, apply ``--set`` overrides, then command-line options (e.g. seed, solver), and validate.
    ``table``: the study table the command reads (`dcmarket plan`: "plan"), missing is named first;
    ``command`` and ``page`` (docs/studies/<page>.md) default to the table's name."""
    raw = with_overrides(read_config_file(path), sets)
    if table is not None and table not in raw:
        raise ConfigError(f"{path}: {table}: missing [{table}]; dcmarket {command or table} reads the config's "
                          f"[{table}] table: add one (docs/studies/{page or table}.md shows one)")
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return parse_config(raw, source=str(path))


def effective_config(config: ExperimentConfig, *, copied: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The config as it ran, with defaults filled in, ready to write as TOML and run again.

    ``copied`` maps an input role ("scenarios", "correlation", "case") to the name of the copy
    the run directory carries, so that its config.toml re-runs from there.
    """
    for spec in MECHANISMS.values():
        rules = getattr(config, spec.table, None)
        if rules is not None:
            # Write the defaults the run used, so the file says what happened without the code.
            config = config.model_copy(update={spec.table: rules.as_run()})
    data = config.model_dump(mode="json", exclude_none=True)
    copied = dict(copied or {})
    ordered: dict[str, Any] = {"seed": data.pop("seed"), "solver": data.pop("solver")}
    if "network" in data:
        ordered["network"] = data.pop("network")
        if "case" in copied:
            ordered["network"]["case"] = copied["case"]
    if "load" in data:
        ordered["load"] = data.pop("load")
        for role, field in (("scenarios", "scenarios_csv"), ("correlation", "correlation_csv")):
            if role in copied:
                ordered["load"][field] = copied[role]
    if "products" in data:
        ordered["products"] = data.pop("products")
    # The mechanism and its rules, then who bids (each bidder's name first, as users write it).
    ordered["mechanism"] = data.pop("mechanism")
    if "bidders" in data:
        data["bidders"] = [{"name": b["name"], **{k: v for k, v in b.items() if k != "name"}} for b in data["bidders"]]
    for spec in MECHANISMS.values():
        if spec.table in data:
            ordered[spec.table] = data.pop(spec.table)
    ordered.update(data)
    return ordered


def dump_config(data: Mapping[str, Any], command: str = "run") -> str:
    """The effective config as TOML, headed by the command that re-runs it."""
    header = f"# Effective config of this run (defaults filled in). Re-run with: dcmarket {command} config.toml\n"
    return header + tomli_w.dumps(dict(data))
