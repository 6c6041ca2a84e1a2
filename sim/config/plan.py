"""The ``[plan]`` table: the flexible-capacity plan study (docs/models/plan.md).

Declared here and registered by the plan study (sim/studies/registry.py), so `dcmarket plan` and a run
with a ``[plan]`` table read the same fields. Every field is checked with a one-line error that
names it; the data checks that need the network (buses, travel times, windows) are in
grid/plan/data.py and name the same fields.
"""

from __future__ import annotations

from typing import Annotated, Any, Mapping

from pydantic import Field, ValidationInfo, field_validator, model_validator

from grid.errors import GridError
from grid.plan.data import Hub, ModuleType, Supplier
from grid.plan.feeder_limits import LimitSettings
from grid.plan.shocks import ShockSettings
from mechanisms.settings import MAX_COUNT, MAX_MW, MAX_SECONDS, Money, Settings

Units = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Km = Annotated[float, Field(ge=0, le=100_000)]
Minutes = Annotated[float, Field(ge=0, le=100_000)]
# A module unit's energy: a terawatt for a thousand hours.
MAX_MWH = 1e9
# Road speed between a hub and a site (km/h).
MAX_KMH = 1000.0


class ModuleConfig(Settings):
    name: str = Field(min_length=1, description="the module type's name, as suppliers' inventory names it")
    kind: str = Field(description='"storage" (supplies and absorbs), "generator" (supplies within its ramp) or '
                      '"demand_response" (supplies within its energy)')
    unit_mw: float = Field(gt=0, le=MAX_MW, description="the power of one unit")
    transport_cost_per_km: Money = Field(ge=0, description="b_l: the cost of moving one unit one km")
    energy_mwh: float | None = Field(default=None, gt=0, le=MAX_MWH, description="per unit: storage's capacity E_max, "
                                     "or demand response's curtailable energy")
    eta_charge: float = Field(default=0.95, gt=0, le=1, description="storage: charging efficiency")
    eta_discharge: float = Field(default=0.95, gt=0, le=1, description="storage: discharging efficiency")
    initial_soc: float = Field(default=0.5, ge=0, le=1, description="storage: the share of E_max charged when an "
                               "event starts")
    ramp_mw_per_min: float | None = Field(default=None, gt=0, le=MAX_MW, description="generator: ramp limit R_max "
                                          "per unit")

    def module_type(self) -> ModuleType:
        return ModuleType(self.name, self.kind, self.unit_mw, self.transport_cost_per_km, self.energy_mwh,
                          self.eta_charge, self.eta_discharge, self.initial_soc, self.ramp_mw_per_min)


class HubConfig(Settings):
    name: str = Field(min_length=1, description="the hub's name, as suppliers and travel name it")
    bus: int = Field(description="the bus it stands at")
    setup_cost: Money = Field(ge=0, description="c_d: the cost of opening it")
    capacity_units: Units = Field(description="Dmax(d): the most units it holds")
    activation_min: Minutes = Field(default=2.0, description="from the start of an event to a module leaving it")

    def hub(self) -> Hub:
        return Hub(self.name, self.bus, self.setup_cost, self.capacity_units, self.activation_min)


class SupplierConfig(Settings):
    name: str = Field(min_length=1, description="the supplier's name")
    # Checked with the modules in grid.plan.data.check_catalogue.
    inventory: dict[str, Annotated[int, Field(le=MAX_COUNT)]] = Field(description="Gg(g, l): units in stock by "
                                                                      "module type")
    distance_km: dict[str, Km] = Field(min_length=1, description="s_gd: the road to each hub it serves, by hub name; "
                                       "a hub that no supplier lists is an error")

    def supplier(self) -> Supplier:
        return Supplier(self.name, dict(self.inventory), dict(self.distance_km))



class SiteConfig(Settings):
    bus: int = Field(description="the site's bus")
    load_mw: float = Field(gt=0, le=MAX_MW, description="its scheduled load")
    owner: str | None = Field(default=None, description='one owner\'s sites shock together; default: the site alone '
                              '("bus <n>")')
    stabilize_min: Minutes | None = Field(default=None, description="T_stab(i); default: [plan] stabilize_min")
    imbalance_cost_per_mwh: Money | None = Field(default=None, ge=0, description="P_i; default: [plan] "
                                                 "imbalance_cost_per_mwh")


class TravelConfig(Settings):
    """Road time from a hub to a site [ours]: feeder sections of ``section_km`` at ``speed_kmh``,
    unless ``minutes`` gives it (by hub name, then site bus)."""

    section_km: float = Field(default=1.0, gt=0, le=100_000, description="the length of one feeder section")
    speed_kmh: float = Field(default=40.0, gt=0, le=MAX_KMH, description="the road speed")
    minutes: dict[str, dict[str, Minutes]] | None = Field(default=None, description="road times by hub name, then "
                                                          "site bus, e.g. { H6 = { 18 = 9 } }")


PerUnit = Annotated[float, Field(gt=0.5, lt=1.5)]


class FeederLimitsConfig(Settings):
    """``[plan.feeder_limits]``: Stage II keeps the feeder within these limits on its linear DistFlow
    (docs/models/plan.md#fcm-feeder); the case must state resistances (ieee33bw, case69)."""

    enabled: bool = Field(default=True, description="false: the table is kept but Stage II ignores the feeder")
    v_min_pu: PerUnit = Field(default=0.95, description="the lowest voltage allowed at any bus")
    v_max_pu: PerUnit = Field(default=1.05, description="the highest voltage allowed (the head's must not pass it)")
    head_voltage_pu: PerUnit = Field(default=1.0, description="the substation's voltage")
    power_factor: float = Field(default=0.95, gt=0, le=1, description="the data-center sites' power factor (lagging), "
                                "of their load, deviations and relief alike")
    background_scale: float = Field(default=1.0, ge=0, le=10, description="the case's own loads times this (e.g. "
                                    "0.5 for a light-load hour)")
    line_rating_mw: float | None = Field(default=None, gt=0, le=MAX_MW, description="every line's rating; default: "
                                         "the case's ratings (its rating rule where it states none)")

    def settings(self) -> LimitSettings:
        return LimitSettings(self.v_min_pu, self.v_max_pu, self.head_voltage_pu, self.power_factor,
                             self.background_scale, self.line_rating_mw)


def _shock_fields(table: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate shock fields by building the generator's settings (one set of rules)."""
    try:
        ShockSettings(**table)
    except GridError as error:
        raise ValueError(str(error)) from None
    except TypeError:
        known = ", ".join(ShockSettings.__dataclass_fields__)
        unknown = next(k for k in table if k not in ShockSettings.__dataclass_fields__)
        raise ValueError(f"unknown field {unknown!r} in [{where}]; allowed fields: {known}") from None
    return table


class PlanConfig(Settings):
    """``[plan]``: sites, hubs, suppliers, module types, shocks and the risk settings."""

    case: str | None = Field(default=None, description="a built-in case name, a MATPOWER .m file or a CSV case "
                             "folder; default: the run's [network] case")
    sites: list[SiteConfig] | None = Field(default=None, description="the data-center sites; default (in a run): "
                                           "the buses whose flexible capacity was sold")
    modules: list[ModuleConfig] = Field(min_length=1, description="the flexible capacity module types")
    hubs: list[HubConfig] = Field(min_length=1, description="the staging hubs it may open")
    suppliers: list[SupplierConfig] = Field(min_length=1, description="who holds the modules")
    travel: TravelConfig = Field(default=TravelConfig(), description="road times from hubs to sites")
    shocks: dict[str, Any] = Field(default_factory=dict, description="the demand-shock generator's fields")
    shift: dict[str, Any] = Field(default_factory=lambda: {"depth": [0.5, 1.0], "duration_min": [15.0, 40.0],
                                                          "owner_correlation": 0.95},
                                  description="the shifted distribution of the out-of-sample test: the shock "
                                  "fields that differ from [plan.shocks]")
    scenarios: int = Field(default=30, ge=1, le=100_000, description="shock scenarios in the MILP (Stage II copies)")
    out_of_sample: int = Field(default=300, ge=0, le=1_000_000, description="fresh scenarios each plan is evaluated "
                               "on, and as many from the shifted generator")
    lam: float = Field(default=0.5, ge=0, le=1, alias="lambda", description="weight of CVaR_alpha against the mean: "
                       "0 risk-neutral, 1 pure CVaR")
    alpha: float = Field(default=0.9, ge=0, lt=1, description="the CVaR level: the mean of the worst 1 - alpha")
    dro_radius: float = Field(default=0.1, ge=0, le=1, description="total-variation radius of the robust plan; 0: "
                              "no robust plan")
    frontier_lambdas: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0], max_length=21,
        description="the lambdas of the cost-CVaR frontier")
    stabilize_min: Minutes = Field(default=15.0, description="T_stab of sites that do not give their own")
    imbalance_cost_per_mwh: Money = Field(default=1000.0, ge=0, description="P_i of sites that do not give their "
                                          "own: the price of each MWh of imbalance left uncovered")
    # gamma > 0: with no price on energy not served, "stabilized" would mean nothing to the model.
    ens_cost_per_mwh: Money = Field(default=5000.0, gt=0, description="gamma: the price of energy not served")
    mip_gap: float = Field(default=1e-3, gt=0, lt=1, description="the relative MIP gap at which the solver stops")
    time_limit_s: float | None = Field(default=300.0, gt=0, le=MAX_SECONDS, description="the solver's time limit "
                                       "per MILP")
    feeder_limits: FeederLimitsConfig | None = Field(default=None, description="the feeder's voltage and line limits "
                                                     "in Stage II; default: none (road times only)")
    group_size: int | None = Field(default=None, ge=1, le=100_000, description="solve each plan by groups of "
                                   "this many in-sample scenarios, bounded from both sides "
                                   "(docs/models/plan.md#fcm-groups); default: one MILP over all of them")

    # `lambda` is the model's name and a Python keyword: the field is `lam`; configs (read and
    # written) say `lambda`.
    model_config = Settings.model_config | {"validate_by_name": False, "serialize_by_alias": True}
    field_aliases = {"lam": "lambda"}

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_fields(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key in data:
                if key != "lambda" and (key not in cls.model_fields or key == "lam"):
                    raise ValueError(cls.unknown_field_message(str(key)))
        return data

    @field_validator("shocks")
    @classmethod
    def _shocks(cls, table: dict[str, Any]) -> dict[str, Any]:
        return _shock_fields(table, "plan.shocks")

    @field_validator("shift")
    @classmethod
    def _shift(cls, table: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # The shifted generator changes what is drawn, not the time grid the plan is built on.
        for grid_field in ("window_min", "step_min"):
            if grid_field in table:
                raise ValueError(f"{grid_field}: the shift changes the shock distribution, not the time grid; "
                                 "set it in [plan.shocks]")
        _shock_fields(table, "plan.shift")
        _shock_fields({**info.data.get("shocks", {}), **table}, "plan.shift")
        return table

    def shock_settings(self) -> ShockSettings:
        return ShockSettings(**self.shocks)

    def shifted_settings(self) -> ShockSettings:
        return self.shock_settings().scaled(**self.shift)


# The samples a plan is evaluated on, in report order.
SAMPLES = ("in-sample", "out-of-sample", "shifted")
