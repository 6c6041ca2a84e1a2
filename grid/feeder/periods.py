"""The hours of a day on a feeder: what changes from one to the next (docs/models/dlmp.md#eq-d-18).

Each period is one hour. Three things move with it; the feeder itself does not:

- the background load, bus by bus and phase by phase, as a multiple of the feeder's spot loads
  (PL_j,phi,t = s_t,j,phi PL_j,phi, the same for QL: each load keeps its power factor);
- the substation's price of energy c0_t;
- each generator's available output, as a share of its rating (PGmax_g,t = a_g,t PGmax_g: sun
  on a PV plant; a dispatchable unit has a = 1 every hour).

The DSO's OPF of one hour is the OPF of grid/feeder/opf.py on ``period_inputs``: nothing in the
OPF knows about time, so its rows are written in one place for the snapshot and for the day.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from grid.errors import GridError
from grid.feeder.inputs import DistributedGenerator, OpfSettings
from grid.network.three_phase import ThreePhaseFeeder

# A day of hours at most this long: a year of hours, so that a sweep of days cannot ask for more.
MAX_PERIODS = 8784
# Background scale factors above this are no load shape (a feeder loaded to ten times its spot
# loads has no feasible OPF anyway).
MAX_LOAD_SCALE = 10.0


@dataclass(frozen=True, eq=False)
class Period:
    """One hour: its label (e.g. "2016-08-10T14:00"), the substation's price ($/MWh), the
    background load as a multiple of the spot loads per bus and phase (``load_scale``: buses in
    the feeder's order x 3 phases), and each generator's available share of its rating by name
    (a generator not named has all of it)."""

    label: str
    substation_price_per_mwh: float
    load_scale: np.ndarray = field(repr=False)
    availability: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        scale = np.array(self.load_scale, dtype=float)
        scale.flags.writeable = False
        object.__setattr__(self, "load_scale", scale)
        object.__setattr__(self, "availability", dict(self.availability))
        if scale.ndim != 2 or scale.shape[1] != 3:
            raise GridError(f"period {self.label}: load_scale must be buses x 3 phases, got shape {scale.shape}")
        if not np.all(np.isfinite(scale)) or scale.min(initial=0.0) < 0 or scale.max(initial=0.0) > MAX_LOAD_SCALE:
            raise GridError(f"period {self.label}: load scale factors must lie in [0, {MAX_LOAD_SCALE:g}] "
                            f"(x the spot loads), got {scale.min():g} to {scale.max():g}")
        if not (np.isfinite(self.substation_price_per_mwh) and self.substation_price_per_mwh >= 0):
            raise GridError(f"period {self.label}: the substation price must be >= 0 $/MWh, got "
                            f"{self.substation_price_per_mwh!r}")
        for name, share in self.availability.items():
            if not (np.isfinite(share) and 0.0 <= share <= 1.0):
                raise GridError(f"period {self.label}: generator {name}'s availability must lie in [0, 1], "
                                f"got {share!r}")


def snapshot(feeder: ThreePhaseFeeder, settings: OpfSettings, label: str = "snapshot") -> Period:
    """The one period of a study without a day: the spot loads, the settings' price, every
    generator whole."""
    return Period(label, settings.substation_price_per_mwh, np.ones((len(feeder.buses), 3)))


def period_inputs(feeder: ThreePhaseFeeder, generators: Sequence[DistributedGenerator], settings: OpfSettings,
                  period: Period) -> tuple[ThreePhaseFeeder, tuple[DistributedGenerator, ...], OpfSettings]:
    """The feeder, generators and settings of the OPF in ``period`` (docs/models/dlmp.md#eq-d-18)."""
    if period.load_scale.shape[0] != len(feeder.buses):
        raise GridError(f"period {period.label}: load_scale has {period.load_scale.shape[0]} buses, "
                        f"{feeder.name} has {len(feeder.buses)}")
    names = {g.name for g in generators}
    unknown = sorted(set(period.availability) - names)
    if unknown:
        raise GridError(f"period {period.label}: availability names {', '.join(unknown)}, not a generator of the "
                        f"study ({', '.join(sorted(names)) or 'none'})")
    at = {bus: i for i, bus in enumerate(feeder.buses)}
    hour = dataclasses.replace(
        feeder,
        load_kw={bus: kw * period.load_scale[at[bus]] for bus, kw in feeder.load_kw.items()},
        load_kvar={bus: kvar * period.load_scale[at[bus]] for bus, kvar in feeder.load_kvar.items()},
    )
    available = tuple(dataclasses.replace(g, max_kw_per_phase=g.max_kw_per_phase * period.availability.get(g.name, 1.0))
                      for g in generators)
    return hour, available, dataclasses.replace(settings, substation_price_per_mwh=period.substation_price_per_mwh)
