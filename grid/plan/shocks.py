"""Demand-shock scenarios: seeded Monte Carlo of AI data-center load deviating from schedule.

The demand-shock scenarios of docs/models/plan.md#fcm-5, after NERC's large-load work:
AI data centers ramp by hundreds of MW within seconds at transmission level, and training loads
drop suddenly and recover. On a distribution feeder each data center is a site of a few MW; this
module draws, per scenario and site, at most one event in a window of ``window_min`` minutes:

* ``drop``: load falls linearly by ``depth`` (a fraction of the site's scheduled load) over the
  ramp time, stays there for the duration, and comes back linearly over the recovery time;
* ``surge``: the same shape upwards;
* ``oscillation``: the same envelope, modulated by a square wave of the drawn period, so the load
  swings between ``+depth`` and ``-depth`` of schedule (training steps alternating with
  checkpoints or synchronisation).

Sites of one owner (one operator's campus, one training job spread across sites) fail together:
per scenario and owner a common event is drawn, and each site follows it with probability
``owner_correlation`` (scaled to its own load) or draws its own.

The output, ``ShockScenarios.deviation_mw[s, i, k]``, is the signed MW by which site ``i`` is
above (+) or below (-) its schedule at minute ``k * step_min`` of scenario ``s``: what a flexible
capacity product must be able to follow. Every draw comes from the caller's
``numpy.random.Generator`` in a documented order (see ``draw_shocks``), so a seed reproduces the
arrays byte for byte, and drawing more scenarios leaves the first ones unchanged.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from grid.errors import GridError
from grid.memory_guard import MEMORY_SHARE, _available_memory_bytes, _format_bytes

__all__ = [
    "SHOCK_KINDS",
    "ShockScenarios",
    "ShockSettings",
    "ShockSite",
    "draw_shocks",
]

SHOCK_KINDS = ("drop", "surge", "oscillation")
_DROP, _SURGE, _OSCILLATION = range(len(SHOCK_KINDS))
_NO_EVENT = -1
_MINUTES_PER_HOUR = 60.0

# Weights are typed by hand in configs (0.333, 0.333, 0.334); anything further off than this is
# a mistake rather than rounding.
_WEIGHT_SUM_TOLERANCE = 1e-6
# window_min / step_min is a float quotient; 60 / 0.1 is 599.9999999999999.
_STEP_TOLERANCE = 1e-9
# Time steps in a shock window (a week of minutes): every scenario holds a value per site and step.
MAX_STEPS = 10_080
# A zero ramp (or recovery) is a step: this slope makes the linear formula a step without a
# special case, and stays finite so that no 0 * inf turns into nan.
_STEP_SLOPE = 1e300
# Elements of one scenario chunk's temporaries (8 bytes each): the intermediates stay at a few
# tens of MB whatever S is; only the result grows with S.
_CHUNK_ELEMENTS = 1 << 20

# Order of the uniforms drawn per owner (the common event) and per site; part of the contract
# that one seed gives one set of scenarios.
_EVENT_DRAWS = ("kind", "happens", "depth", "ramp", "duration", "recovery", "period", "onset")
_SITE_DRAWS = ("follow",) + _EVENT_DRAWS


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


@dataclass(frozen=True)
class ShockSettings:
    """The distribution of one site's event in one scenario; ranges are uniform ``(lo, hi)``.

    ``depth`` is a fraction of the site's scheduled load; times are in minutes. Every field is
    checked on construction (lists from a config file are accepted and stored as tuples, and
    ``kind_weights`` may be a mapping kind -> weight), and a bad one raises a one-line ``GridError`` starting with the field's name.

    - ``window_min``: the length of each scenario's window;
    - ``step_min``: the time step, which divides the window;
    - ``event_probability``: the chance that a site has an event in a scenario;
    - ``kind_weights``: the chance of each kind of event, ``{ drop = ..., surge = ..., oscillation = ... }``;
    - ``depth``: [lo, hi], the fraction of the site's scheduled load that moves;
    - ``ramp_min``: [lo, hi], the time the load takes to reach its depth;
    - ``duration_min``: [lo, hi], how long it stays there;
    - ``recovery_min``: [lo, hi], the time it takes to come back;
    - ``period_min``: [lo, hi], the period of an oscillation;
    - ``owner_correlation``: the chance that a site follows its owner's common event rather than
      drawing its own.
    """

    window_min: float = 60.0
    step_min: float = 1.0
    event_probability: float = 0.8
    kind_weights: tuple[tuple[str, float], ...] = (("drop", 0.4), ("surge", 0.4), ("oscillation", 0.2))
    depth: tuple[float, float] = (0.2, 0.8)
    ramp_min: tuple[float, float] = (0.5, 5.0)
    duration_min: tuple[float, float] = (5.0, 30.0)
    recovery_min: tuple[float, float] = (1.0, 10.0)
    period_min: tuple[float, float] = (2.0, 6.0)
    owner_correlation: float = 0.7

    def __post_init__(self) -> None:
        for name in ("window_min", "step_min"):
            value = getattr(self, name)
            if not _is_number(value) or value <= 0:
                raise GridError(f"{name}: must be a positive number of minutes, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.step_min > self.window_min:
            raise GridError(
                f"step_min: {self.step_min:g} min is longer than window_min {self.window_min:g} min; "
                "give a step that divides the window"
            )
        ratio = self.window_min / self.step_min
        if ratio > MAX_STEPS:
            raise GridError(
                f"step_min: {self.step_min:g} min cuts window_min {self.window_min:g} min into {ratio:,.0f} steps; "
                f"at most {MAX_STEPS:,} (every scenario holds a value per site and step): lengthen the step"
            )
        if abs(ratio - round(ratio)) > _STEP_TOLERANCE * ratio:
            raise GridError(
                f"step_min: {self.step_min:g} min does not divide window_min {self.window_min:g} min "
                f"({ratio:g} steps); give a step_min that divides the window a whole number of times"
            )
        for name in ("event_probability", "owner_correlation"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise GridError(f"{name}: must be a probability in [0, 1], got {value!r}")
            object.__setattr__(self, name, float(value))
        object.__setattr__(self, "kind_weights", _check_kind_weights(self.kind_weights))
        object.__setattr__(self, "depth", _check_range("depth", self.depth, "fraction"))
        for name in ("ramp_min", "duration_min", "recovery_min", "period_min"):
            object.__setattr__(self, name, _check_range(name, getattr(self, name), "minutes"))
        if self.depth[0] <= 0.0 or self.depth[1] > 1.0:
            raise GridError(
                f"depth: range [{self.depth[0]:g}, {self.depth[1]:g}] must lie in (0, 1]; depth is the "
                "fraction of the site's load that moves, give 0 < lo <= hi <= 1"
            )
        if self.period_min[0] <= 0.0:
            raise GridError(
                f"period_min: lower end {self.period_min[0]:g} would give an oscillation without period; "
                "give a lower end > 0 minutes"
            )

    @property
    def steps(self) -> int:
        """Number of time steps in the window (steps start at minutes 0, step_min, ...)."""
        return int(round(self.window_min / self.step_min))

    @property
    def minutes(self) -> np.ndarray:
        """Start minute of each step, shape (steps,)."""
        return np.arange(self.steps, dtype=np.float64) * self.step_min

    def weights(self) -> np.ndarray:
        """Probability of each kind, in SHOCK_KINDS order (kinds left out of kind_weights get 0)."""
        given = dict(self.kind_weights)
        return np.array([given.get(kind, 0.0) for kind in SHOCK_KINDS], dtype=np.float64)

    def scaled(self, **changes: Any) -> ShockSettings:
        """A copy with ``changes`` applied and checked again, e.g. a shifted distribution for a stress test."""
        unknown = sorted(set(changes) - {field.name for field in dataclasses.fields(self)})
        if unknown:
            raise GridError(
                f"{unknown[0]}: not a ShockSettings field; use one of "
                f"{', '.join(field.name for field in dataclasses.fields(self))}"
            )
        return dataclasses.replace(self, **changes)


def _check_range(name: str, value: object, unit: str) -> tuple[float, float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise GridError(f"{name}: must be a pair [lo, hi] of {unit}, got {value!r}")
    lo, hi = value
    if not _is_number(lo) or not _is_number(hi):
        raise GridError(f"{name}: ends must be finite numbers, got {list(value)!r}; give [lo, hi] in {unit}")
    lo, hi = float(lo), float(hi)
    if lo < 0.0:
        raise GridError(f"{name}: lower end {lo:g} is negative; give [lo, hi] with 0 <= lo <= hi")
    if lo > hi:
        raise GridError(f"{name}: lower end {lo:g} is above upper end {hi:g}; give [lo, hi] with lo <= hi")
    return (lo, hi)


def _check_kind_weights(value: object) -> tuple[tuple[str, float], ...]:
    if isinstance(value, Mapping):  # a TOML table {drop = 0.4, ...}
        value = tuple(value.items())
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise GridError(
            f"kind_weights: must be a list of (kind, weight) pairs with kinds from {', '.join(SHOCK_KINDS)}, "
            f"got {value!r}"
        )
    out: list[tuple[str, float]] = []
    for pair in value:
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise GridError(f"kind_weights: entry {pair!r} is not a (kind, weight) pair")
        kind, weight = pair
        if kind not in SHOCK_KINDS:
            raise GridError(f"kind_weights: unknown kind {kind!r}; use one of {', '.join(SHOCK_KINDS)}")
        if any(kind == seen for seen, _ in out):
            raise GridError(f"kind_weights: kind {kind!r} is listed twice; give each kind once")
        if not _is_number(weight) or weight < 0:
            raise GridError(f"kind_weights: weight of {kind!r} must be a number >= 0, got {weight!r}")
        out.append((str(kind), float(weight)))
    total = math.fsum(weight for _, weight in out)
    if abs(total - 1.0) > _WEIGHT_SUM_TOLERANCE:
        raise GridError(f"kind_weights: weights sum to {total:g}; make them sum to 1")
    return tuple(out)


@dataclass(frozen=True)
class ShockSite:
    """A data center that can shock its feeder: its bus, scheduled load (MW, > 0) and owner.

    Sites with the same owner have correlated events (see ``ShockSettings.owner_correlation``).
    Checked by ``draw_shocks``.
    """

    bus: int
    load_mw: float
    owner: str


@dataclass(frozen=True, eq=False)
class ShockScenarios:
    """Drawn shocks: S scenarios x n sites x T steps; compared by identity (it holds arrays).

    ``deviation_mw[s, i, k]`` is the signed MW of site ``sites[i]`` off schedule at minute
    ``k * settings.step_min`` of scenario ``s`` (+: above schedule, a surge; -: below, a drop).
    ``kind`` is -1 where a site has no event, else an index into SHOCK_KINDS; ``onset_min`` and
    ``depth_fraction`` are nan there, and ``disturbed_h`` is 0. The arrays are read-only.
    """

    sites: tuple[ShockSite, ...]
    settings: ShockSettings
    deviation_mw: np.ndarray
    kind: np.ndarray
    onset_min: np.ndarray
    disturbed_h: np.ndarray
    depth_fraction: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "sites", tuple(self.sites))
        deviation = np.asarray(self.deviation_mw, dtype=np.float64)
        if deviation.ndim != 3 or deviation.shape[1:] != (len(self.sites), self.settings.steps):
            raise GridError(
                f"deviation_mw: shape {deviation.shape} does not match (scenarios, {len(self.sites)} sites, "
                f"{self.settings.steps} steps)"
            )
        arrays = {"deviation_mw": deviation}
        for name, dtype in (("kind", np.int8), ("onset_min", np.float64), ("disturbed_h", np.float64),
                            ("depth_fraction", np.float64)):
            array = np.asarray(getattr(self, name), dtype=dtype)
            if array.shape != deviation.shape[:2]:
                raise GridError(f"{name}: shape {array.shape} does not match (scenarios, sites) {deviation.shape[:2]}")
            arrays[name] = array
        for name, array in arrays.items():
            # Shared between a result and the frames built from it; a write would change both.
            if array.flags.writeable:
                array = array.view()
                array.flags.writeable = False
            object.__setattr__(self, name, array)

    @property
    def count(self) -> int:
        """Number of scenarios S."""
        return int(self.deviation_mw.shape[0])

    def need_up_mw(self) -> np.ndarray:
        """MW a flexible module must supply (load above schedule), shape (S, n, T), >= 0."""
        return np.maximum(self.deviation_mw, 0.0)

    def need_down_mw(self) -> np.ndarray:
        """MW a flexible module must absorb (load below schedule), shape (S, n, T), >= 0."""
        return np.maximum(-self.deviation_mw, 0.0)

    def subset(self, rows: Sequence[int] | slice) -> ShockScenarios:
        """The scenarios at ``rows`` (positions, a boolean mask of length S, or a slice), renumbered from 0."""
        if isinstance(rows, slice):
            index: slice | np.ndarray = rows
        else:
            index = np.asarray(rows)
            if index.dtype == np.bool_:
                if index.shape != (self.count,):
                    raise GridError(f"rows: a mask must have one entry per scenario ({self.count}), got shape {index.shape}")
            elif index.size == 0:
                index = index.astype(np.intp)
            elif not np.issubdtype(index.dtype, np.integer) or index.ndim != 1:
                raise GridError(f"rows: give scenario positions (integers), a boolean mask or a slice, got {rows!r}")
            elif index.min() < -self.count or index.max() >= self.count:
                bad = int(index.max()) if index.max() >= self.count else int(index.min())
                raise GridError(f"rows: scenario {bad} is out of range for {self.count} scenarios")
        return ShockScenarios(
            sites=self.sites,
            settings=self.settings,
            deviation_mw=self.deviation_mw[index],
            kind=self.kind[index],
            onset_min=self.onset_min[index],
            disturbed_h=self.disturbed_h[index],
            depth_fraction=self.depth_fraction[index],
        )

    def table(self) -> pd.DataFrame:
        """One row per (scenario, site, step): scenario, bus, owner, minute, deviation_mw; for CSV.

        Sorted by scenario, then site order, then minute. ``owner`` is categorical (a string per
        row would cost more memory than the deviations).
        """
        count, n, steps = self.deviation_mw.shape
        owners, owner_code = _owner_codes(self.sites)
        site = np.tile(np.repeat(np.arange(n), steps), count)
        return pd.DataFrame({
            "scenario": np.repeat(np.arange(count, dtype=np.int64), n * steps),
            "bus": np.array([s.bus for s in self.sites], dtype=np.int64)[site],
            "owner": pd.Categorical.from_codes(owner_code[site], categories=owners),
            "minute": np.tile(self.settings.minutes, count * n),
            "deviation_mw": self.deviation_mw.reshape(-1),
        })

    def events(self) -> pd.DataFrame:
        """One row per (scenario, site): scenario, bus, owner, kind ("none" without event),
        onset_min, depth_fraction, disturbed_h, peak_up_mw, peak_down_mw."""
        count, n, _ = self.deviation_mw.shape
        names = np.array(SHOCK_KINDS + ("none",), dtype=object)
        return pd.DataFrame({
            "scenario": np.repeat(np.arange(count, dtype=np.int64), n),
            "bus": np.tile(np.array([s.bus for s in self.sites], dtype=np.int64), count),
            "owner": np.tile(np.array([s.owner for s in self.sites], dtype=object), count),
            # Index -1 (no event) picks the last name, "none".
            "kind": names[self.kind.reshape(-1).astype(np.intp)],
            "onset_min": self.onset_min.reshape(-1),
            "depth_fraction": self.depth_fraction.reshape(-1),
            "disturbed_h": self.disturbed_h.reshape(-1),
            "peak_up_mw": np.maximum(self.deviation_mw.max(axis=2, initial=0.0), 0.0).reshape(-1),
            "peak_down_mw": np.maximum(-self.deviation_mw.min(axis=2, initial=0.0), 0.0).reshape(-1),
        })


def _owner_codes(sites: Sequence[ShockSite]) -> tuple[list[str], np.ndarray]:
    """Owners in order of first appearance, and each site's position in that list."""
    owners = list(dict.fromkeys(site.owner for site in sites))
    position = {owner: code for code, owner in enumerate(owners)}
    return owners, np.array([position[site.owner] for site in sites], dtype=np.intp)


def _check_sites(sites: Sequence[ShockSite]) -> tuple[ShockSite, ...]:
    if isinstance(sites, (str, bytes)) or not isinstance(sites, Sequence):
        raise GridError(f"sites: give a list of ShockSite, got {type(sites).__name__}")
    sites = tuple(sites)
    if not sites:
        raise GridError("sites: no data-center sites given; give at least one ShockSite(bus, load_mw, owner)")
    seen: set[int] = set()
    for site in sites:
        if not isinstance(site, ShockSite):
            raise GridError(f"sites: {site!r} is not a ShockSite; build each site as ShockSite(bus, load_mw, owner)")
        if isinstance(site.bus, bool) or not isinstance(site.bus, numbers.Integral):
            raise GridError(f"sites: bus {site.bus!r} is not a bus number; give an integer")
        if not _is_number(site.load_mw) or site.load_mw <= 0:
            raise GridError(
                f"sites: bus {site.bus} load_mw must be a positive number of MW (the data center's scheduled "
                f"load), got {site.load_mw!r}"
            )
        if not isinstance(site.owner, str) or not site.owner:
            raise GridError(f"sites: bus {site.bus} owner must be a non-empty name, got {site.owner!r}")
        if site.bus in seen:
            raise GridError(f"sites: bus {site.bus} is listed twice; give one site per bus (add the loads)")
        seen.add(site.bus)
    return sites


def _check_memory(count: int, n: int, steps: int) -> None:
    """Refuse before drawing when the S x n x T deviations would not fit (the table needs more)."""
    need = 8 * count * n * steps
    available = _available_memory_bytes()
    if available is None or need <= MEMORY_SHARE * available:
        return
    most = int(MEMORY_SHARE * available) // (8 * n * steps)
    raise GridError(
        f"scenarios: {count:,} scenarios x {n} sites x {steps} steps need about {_format_bytes(need)} of deviations; "
        f"this machine has {_format_bytes(available)} available; use at most {most:,} scenarios or a longer step_min"
    )


def _uniform(bounds: tuple[float, float], u: np.ndarray) -> np.ndarray:
    lo, hi = bounds
    return lo + (hi - lo) * u


def _events(u: np.ndarray, settings: ShockSettings) -> dict[str, np.ndarray]:
    """Event parameters from uniforms ``u[..., j]`` in _EVENT_DRAWS order."""
    draws = {name: u[..., j] for j, name in enumerate(_EVENT_DRAWS)}
    cumulative = np.cumsum(settings.weights())
    cumulative /= cumulative[-1]
    # Exactly 1 at the end so that no u < 1 falls past the last kind; side="right" never picks a
    # kind of weight 0 (its cumulative value equals its predecessor's).
    cumulative[-1] = 1.0
    ramp = _uniform(settings.ramp_min, draws["ramp"])
    duration = _uniform(settings.duration_min, draws["duration"])
    # Onset early enough that the site reaches and holds its depth inside the window; an event
    # too long for that starts at 0 and is cut by the window's end.
    room = settings.window_min - ramp - duration
    return {
        "kind": np.searchsorted(cumulative, draws["kind"], side="right").astype(np.int8),
        "happens": draws["happens"] < settings.event_probability,
        "depth": _uniform(settings.depth, draws["depth"]),
        "ramp": ramp,
        "duration": duration,
        "recovery": _uniform(settings.recovery_min, draws["recovery"]),
        "period": _uniform(settings.period_min, draws["period"]),
        "onset": np.where(room > 0, draws["onset"] * room, 0.0),
    }


def draw_shocks(
    sites: Sequence[ShockSite], settings: ShockSettings, count: int, rng: np.random.Generator
) -> ShockScenarios:
    """Draw ``count`` scenarios of demand shocks at ``sites``.

    Draw order (one seed, one result): for each scenario in turn, one block of uniforms from
    ``rng.random``: first, per owner (in order of first appearance in ``sites``), the common
    event's kind, happens, depth, ramp, duration, recovery, period, onset; then, per site, follow,
    and the same eight for its own event. A site follows its owner's common event (kind, timing,
    depth fraction, and whether it happens at all) when follow < owner_correlation. Because each
    scenario takes one block, the first K scenarios of a draw of S > K equal a draw of K.
    """
    if not isinstance(settings, ShockSettings):
        raise GridError(f"settings: give a ShockSettings, got {type(settings).__name__}")
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
        raise GridError(f"scenarios: count must be an integer >= 1, got {count!r}")
    if not isinstance(rng, np.random.Generator):
        raise GridError(f"rng: give a numpy.random.Generator (e.g. sim.random_streams.stream(seed, name)), got {rng!r}")
    sites = _check_sites(sites)
    count, n, steps = int(count), len(sites), settings.steps
    _check_memory(count, n, steps)
    owners, owner_of = _owner_codes(sites)

    common_width = len(owners) * len(_EVENT_DRAWS)
    u = rng.random((count, common_width + n * len(_SITE_DRAWS)))
    common = _events(u[:, :common_width].reshape(count, len(owners), len(_EVENT_DRAWS))[:, owner_of], settings)
    site_u = u[:, common_width:].reshape(count, n, len(_SITE_DRAWS))
    own = _events(site_u[..., 1:], settings)
    follows = site_u[..., 0] < settings.owner_correlation
    event = {name: np.where(follows, common[name], own[name]) for name in common}
    happens = event["happens"]

    kind = np.where(happens, event["kind"], _NO_EVENT).astype(np.int8)
    load_mw = np.array([site.load_mw for site in sites], dtype=np.float64)
    end = event["ramp"] + event["duration"] + event["recovery"]
    disturbed_h = np.where(
        happens, (np.minimum(event["onset"] + end, settings.window_min) - event["onset"]) / _MINUTES_PER_HOUR, 0.0
    )
    sign = np.where(kind == _DROP, -1.0, 1.0)
    amplitude_mw = np.where(happens, sign * event["depth"] * load_mw, 0.0)
    deviation = _profiles(event, amplitude_mw, kind, settings)
    return ShockScenarios(
        sites=sites,
        settings=settings,
        deviation_mw=deviation,
        kind=kind,
        onset_min=np.where(happens, event["onset"], np.nan),
        disturbed_h=disturbed_h,
        depth_fraction=np.where(happens, event["depth"], np.nan),
    )


def _profiles(event: dict[str, np.ndarray], amplitude_mw: np.ndarray, kind: np.ndarray,
              settings: ShockSettings) -> np.ndarray:
    """deviation[s, i, k] = envelope(minute k) * amplitude, with a square wave for oscillations.

    The envelope is min(rise, fall) clipped to [0, 1], where rise = t / ramp and fall =
    (ramp + duration + recovery - t) / recovery, t the minutes since onset: 0 before onset, the
    linear ramp, 1 while held, the linear recovery, 0 after. It is evaluated only on the steps an
    event spans (plus one on each side, where the formula itself gives 0): an event lasts tens of
    minutes, a window may last hours, and most of the array is 0. Events are taken in chunks so
    that the temporaries stay small whatever S is.
    """
    count, n = amplitude_mw.shape
    minutes = settings.minutes
    steps = minutes.size
    out = np.zeros((count, n, steps), dtype=np.float64)
    flat_out = out.reshape(-1)

    active = np.flatnonzero(amplitude_mw.reshape(-1) != 0.0)
    onset = event["onset"].reshape(-1)[active]
    ramp = event["ramp"].reshape(-1)[active]
    recovery = event["recovery"].reshape(-1)[active]
    period = event["period"].reshape(-1)[active]
    amplitude = amplitude_mw.reshape(-1)[active]
    swings = kind.reshape(-1)[active] == _OSCILLATION
    end = ramp + event["duration"].reshape(-1)[active] + recovery
    rise_slope = np.where(ramp > 0, 1.0 / np.where(ramp > 0, ramp, 1.0), _STEP_SLOPE)
    # A zero ramp is at full depth at the onset itself (t = 0), which t * slope alone would miss.
    rise_offset = np.where(ramp > 0, 0.0, 1.0)
    fall_slope = np.where(recovery > 0, 1.0 / np.where(recovery > 0, recovery, 1.0), _STEP_SLOPE)
    first = np.clip(np.floor(onset / settings.step_min), 0, steps).astype(np.int64)
    stop = np.clip(np.floor((onset + end) / settings.step_min) + 2, 0, steps).astype(np.int64)
    length = stop - first

    per_chunk = max(1, _CHUNK_ELEMENTS // steps)
    with np.errstate(over="ignore"):
        for lo in range(0, active.size, per_chunk):
            part = slice(lo, lo + per_chunk)
            span = length[part]
            which = np.repeat(np.arange(span.size), span)
            # Step of each element: its event's first step plus its position within the event.
            starts = np.cumsum(span) - span
            k = np.arange(which.size) - starts[which] + first[part][which]
            t = minutes[k] - onset[part][which]
            value = np.minimum(t * rise_slope[part][which] + rise_offset[part][which],
                               (end[part][which] - t) * fall_slope[part][which])
            np.clip(value, 0.0, 1.0, out=value)
            value *= amplitude[part][which]
            swinging = np.flatnonzero(swings[part][which])
            if swinging.size:
                # sign(sin(2 pi t / period)) with sign(0) = +1, read off the phase so that the
                # zero crossings are exact rather than at the mercy of sin's rounding near k * pi.
                phase = np.mod(t[swinging] / period[part][which[swinging]], 1.0)
                value[swinging] *= np.where(phase > 0.5, -1.0, 1.0)
            # No -0.0 in the output (a drop's zero envelope times a negative amplitude): it would
            # print as "-0.0" in the CSV table.
            value += 0.0
            flat_out[active[part][which] * steps + k] = value
    return out
