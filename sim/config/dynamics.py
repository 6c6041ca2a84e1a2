"""The ``[dynamics]`` table: interconnection over time (docs/studies/interconnection.md).

Declared here and registered by the study (sim/studies/registry.py, `dcmarket evolve`). Each
``[[dynamics.regimes]]`` names its regime by ``kind`` and carries that regime's own rules, checked
by the regime's rule table (mechanisms/interconnection/registry.py); a rule of another regime is
named as such.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from agents.developers import ArrivalSettings, WithdrawalSettings
from mechanisms.interconnection.registry import REGIMES
from mechanisms.interconnection.requests import Headroom, Regime
from mechanisms.settings import MAX_MW, Settings, first_error
from sim.config.names import one_of

# Ceilings: cycles of a run (a century of months), buses listed, regimes compared in one run.
MAX_CYCLES = 1200
MAX_BUSES = 10_000
MAX_REGIMES = 20


class BusHeadroom(Settings):
    """``[[dynamics.buses]]``: a bus and the headroom the DSO found there."""

    bus: int = Field(description="the bus number, as the capacity study names it")
    firm_mw: float = Field(ge=0, le=MAX_MW, description="MW that connect without curtailment")
    flexible_mw: float | None = Field(default=None, ge=0, le=MAX_MW, description="MW that connect if curtailable "
                                      "(at least firm_mw); default: firm_mw")

    @model_validator(mode="after")
    def _flexible_above_firm(self) -> "BusHeadroom":
        if self.flexible_mw is not None and self.flexible_mw < self.firm_mw:
            raise ValueError(f"flexible_mw: {self.flexible_mw:g} MW is below firm_mw ({self.firm_mw:g} MW); it "
                             "counts the firm MW too")
        return self

    def headroom(self) -> Headroom:
        return Headroom(self.firm_mw, self.firm_mw if self.flexible_mw is None else self.flexible_mw)


class RegimeTable(Settings):
    """``[[dynamics.regimes]]``: ``kind``, an optional ``name`` (default: the kind), and the regime's rules."""

    kind: str = Field(description="the regime: " + ", ".join(f"{k} ({s.summary})" for k, s in REGIMES.items()))
    name: str | None = Field(default=None, min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$",
                             description="its label in the files (letters, digits, _ and -); default: the kind")
    rules: dict[str, Any] = Field(default_factory=dict, description="the regime's own rules, written beside kind "
                                  "(docs/models/interconnection.md has each regime's table)")

    @model_validator(mode="before")
    @classmethod
    def _split_rules(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        extra = {k: v for k, v in data.items() if k not in ("kind", "name", "rules")}
        if "rules" in data and extra:
            raise ValueError(f"give the rules either beside kind or in rules, not both ({', '.join(extra)})")
        own = {k: data[k] for k in ("kind", "name", "rules") if k in data}
        own.setdefault("rules", extra)
        return own

    @field_validator("kind")
    @classmethod
    def _known(cls, value: str) -> str:
        return one_of(value, REGIMES, "regime kind")

    @model_validator(mode="after")
    def _rules_of_the_kind(self) -> "RegimeTable":
        spec = REGIMES[self.kind]
        try:
            spec.rules(**self.rules)
        except ValidationError as error:
            message = first_error(error)
            for key in self.rules:
                if key not in spec.rules.model_fields:
                    owners = [k for k, s in REGIMES.items() if key in s.rules.model_fields]
                    if owners:
                        raise ValueError(f"{key!r} is a rule of the {' and '.join(owners)} regime, not of "
                                         f"{self.kind}; remove it or change kind") from None
            raise ValueError(message) from None
        return self

    @property
    def label(self) -> str:
        return self.name or self.kind

    def build(self) -> Regime:
        """A fresh regime with these rules (a regime keeps state across cycles: one per run)."""
        spec = REGIMES[self.kind]
        return spec.build(spec.rules(**self.rules))


class DynamicsConfig(Settings):
    """``[dynamics]``: the clock, the buses and their headroom, who arrives, who withdraws, and the
    regimes compared on the same arrivals."""

    cycles: int = Field(default=40, ge=1, le=MAX_CYCLES, description="cycles the run lasts")
    cycle_months: int = Field(default=3, ge=1, le=12, description="months in a cycle (3: quarters)")
    buses: list[BusHeadroom] = Field(min_length=1, max_length=MAX_BUSES, description="the buses requests may ask at")
    arrivals: ArrivalSettings = Field(default_factory=ArrivalSettings, description="who arrives: "
                                      "[dynamics.arrivals]")
    withdrawal: WithdrawalSettings = Field(default_factory=WithdrawalSettings, description="when a waiting "
                                           "developer gives up: [dynamics.withdrawal]")
    regimes: list[RegimeTable] = Field(min_length=1, max_length=MAX_REGIMES, description="the regimes compared")

    @model_validator(mode="after")
    def _consistent(self) -> "DynamicsConfig":
        seen: set[int] = set()
        for bus in self.buses:
            if bus.bus in seen:
                raise ValueError(f"buses: bus {bus.bus} is listed twice; list each bus once")
            seen.add(bus.bus)
        labels = [r.label for r in self.regimes]
        for label in labels:
            if labels.count(label) > 1:
                raise ValueError(f"regimes: two regimes are called {label!r}; give each a distinct name")
        largest = max(b.headroom().flexible_mw for b in self.buses)
        if self.arrivals.mw[0] > largest:
            raise ValueError(f"arrivals.mw: the smallest request ({self.arrivals.mw[0]:g} MW) exceeds every bus's "
                             f"headroom (at most {largest:g} MW), so nothing could ever connect; lower arrivals.mw or "
                             "raise the buses' headroom")
        return self

    def headroom(self) -> dict[int, Headroom]:
        return {b.bus: b.headroom() for b in self.buses}
