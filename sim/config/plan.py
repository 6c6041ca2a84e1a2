"""The ``[plan]`` table: the flexible-capacity plan study (spec `fcm-two-stage.md`).

Declared here and registered by the plan study (sim/studies/registry.py), so `dcmarket plan` and a run
with a ``[plan]`` table read the same fields. Every field is checked with a one-line error that
names it; the data checks that need the network (buses, travel times, windows) are in
grid/plan/data.py and name the same fields.
"""

from __future__ import annotations

from typing import Annotated, Any, Mapping

from pydantic import Field, ValidationInfo, field_validator, model_validator

from grid.errors import GridError
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
    name: str = Field(min_length=1)
    kind: str
    unit_mw: float = Field(gt=0, le=MAX_MW)
    transport_cost_per_km: Money = Field(ge=0)
    energy_mwh: float | None = Field(default=None, gt=0, le=MAX_MWH)
    eta_charge: float = Field(default=0.95, gt=0, le=1)
    eta_discharge: float = Field(default=0.95, gt=0, le=1)
    initial_soc: float = Field(default=0.5, ge=0, le=1)
    ramp_mw_per_min: float | None = Field(default=None, gt=0, le=MAX_MW)


class HubConfig(Settings):
    name: str = Field(min_length=1)
    bus: int
    setup_cost: Money = Field(ge=0)
    capacity_units: Units
    activation_min: Minutes = 2.0


class SupplierConfig(Settings):
    name: str = Field(min_length=1)
    # Units of each module type in stock (Gg); checked with the modules (grid.plan.data.check_catalogue).
    inventory: dict[str, Annotated[int, Field(le=MAX_COUNT)]]
    distance_km: dict[str, Km] = Field(min_length=1)



class SiteConfig(Settings):
    bus: int
    load_mw: float = Field(gt=0, le=MAX_MW)
    owner: str | None = None  # default: the site alone ("bus <n>")
    stabilize_min: Minutes | None = None  # default: [plan] stabilize_min
    imbalance_cost_per_mwh: Money | None = Field(default=None, ge=0)  # default: [plan] imbalance_cost_per_mwh


class TravelConfig(Settings):
    """Road time from a hub to a site [ours]: feeder sections of ``section_km`` at ``speed_kmh``,
    unless ``minutes`` gives it (by hub name, then site bus)."""

    section_km: float = Field(default=1.0, gt=0, le=100_000)
    speed_kmh: float = Field(default=40.0, gt=0, le=MAX_KMH)
    minutes: dict[str, dict[str, Minutes]] | None = None


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

    # A built-in case name, a MATPOWER .m file or a CSV case folder; default: the run's [network].
    case: str | None = None
    # The data-center sites; default (in a run): the buses whose flexible capacity was sold.
    sites: list[SiteConfig] | None = None
    modules: list[ModuleConfig] = Field(min_length=1)
    hubs: list[HubConfig] = Field(min_length=1)
    suppliers: list[SupplierConfig] = Field(min_length=1)
    travel: TravelConfig = TravelConfig()
    shocks: dict[str, Any] = Field(default_factory=dict)
    # The shifted distribution of the out-of-sample test: shock fields that differ from [plan.shocks].
    shift: dict[str, Any] = Field(default_factory=lambda: {"depth": [0.5, 1.0], "duration_min": [15.0, 40.0],
                                                          "owner_correlation": 0.95})
    scenarios: int = Field(default=30, ge=1, le=100_000)
    out_of_sample: int = Field(default=300, ge=0, le=1_000_000)
    # Risk: lambda weighs CVaR_alpha against the mean; dro_radius is the total-variation radius.
    lam: float = Field(default=0.5, ge=0, le=1, alias="lambda")
    alpha: float = Field(default=0.9, ge=0, lt=1)
    dro_radius: float = Field(default=0.1, ge=0, le=1)
    frontier_lambdas: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0], max_length=21)
    stabilize_min: Minutes = 15.0
    imbalance_cost_per_mwh: Money = Field(default=1000.0, ge=0)
    # gamma > 0: with no price on energy not served, "stabilized" would mean nothing to the model.
    ens_cost_per_mwh: Money = Field(default=5000.0, gt=0)
    mip_gap: float = Field(default=1e-3, gt=0, lt=1)
    time_limit_s: float | None = Field(default=300.0, gt=0, le=MAX_SECONDS)

    # `lambda` is the spec's name and a Python keyword: the field is `lam`; configs (read and
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
