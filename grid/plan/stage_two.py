"""Stage II of the plan, (F-5) to (F-13), written once as sparse rows: docs/models/plan.md#fcm-stage-2.

One formulation, two back ends: `grid.plan.dispatch` hands one scenario's rows straight to HiGHS
(the fast evaluation of a fixed plan), and `grid.plan.milp` adds every scenario's rows to the
Pyomo model of the two-stage MILP, where the stock at each hub is Stage I's expression (F-6).

Per site event (a site disturbed in a scenario): units x_{d,l} sent from each hub in reach,
"stabilized" u, and per module type the power supplied (a surge) or absorbed (a drop) over the
event's steps. Our readings of what the paper leaves open are the ones docs/models/plan.md marks
[ours]: the need at each step is the deviation (F-7), a unit helps from its arrival tau_{d,i},
a stabilized site gets no unit later than T_stab(i) and has its need covered from T_stab(i) on
(F-8), a unit brings its energy and ramp when it arrives, T_i is how long the site is disturbed.

Exact size reduction (docs/models/plan.md#eq-f-stretch): an event's steps fall into stretches over
which the need, the units present and the stabilization rule are constant. Over such a stretch
one power per module type, held for the stretch, does what any schedule does: the bounds are the
same at every step, and since the stretch only supplies or only absorbs, the state of charge (or
the energy curtailed) moves one way, so its limits need checking at the stretch's end only. That
holds while no generator supplies in the stretch: a generator's ramp (F-12) ties its steps
together, and the others would have to follow it step by step, so where a generator can supply
every step keeps its own power (the energy rows still close at the stretch's end).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from grid.plan.data import ModuleType, PlanData
from grid.plan.shocks import ShockScenarios
from grid.plan.stage_two_limits import EventRelief, LimitStates, limit_row_terms, limit_states

INF = float("inf")

# Column kinds.
UNITS, STABLE, SUPPLY, ABSORB, LEVEL, SHED = range(6)


@dataclass(frozen=True)
class SiteEvent:
    """One (scenario, site) with a disturbance, and the steps where it needs modules."""

    scenario: int
    site: int
    steps: np.ndarray  # step indices k0..k1 (contiguous)
    up: np.ndarray  # MW to supply at each of those steps
    down: np.ndarray  # MW to absorb
    onset_min: float
    disturbed_h: float


def _event_ranges(shocks: ShockScenarios) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where Stage II has work: per (scenario, site), whether it has an event, and the first and
    last step with a non-zero deviation (a zero crossing inside an event stays in it)."""
    active = np.abs(shocks.deviation_mw) > 1e-12
    hit = active.any(axis=2)
    first = np.argmax(active, axis=2)
    last = active.shape[2] - 1 - np.argmax(active[:, :, ::-1], axis=2)
    return hit, first, last


def event_steps(shocks: ShockScenarios) -> int:
    """Site-steps that Stage II models: from each event's first to its last non-zero step."""
    hit, first, last = _event_ranges(shocks)
    return int(np.where(hit, last - first + 1, 0).sum())


def site_events(shocks: ShockScenarios) -> list[SiteEvent]:
    """Every site event, by scenario then site."""
    hit, first, last = _event_ranges(shocks)
    up, down = shocks.need_up_mw(), shocks.need_down_mw()
    events = []
    for s, i in zip(*np.nonzero(hit)):
        steps = np.arange(first[s, i], last[s, i] + 1)
        events.append(SiteEvent(int(s), int(i), steps, up[s, i, steps], down[s, i, steps],
                                float(shocks.onset_min[s, i]), float(shocks.disturbed_h[s, i])))
    return events


@dataclass
class StageTwoRows:
    """Stage II of some scenarios as  row_lower <= A v <= row_upper,  column bounds and kinds.

    Q_s = constant[s] + sum over scenario s's columns of cost_c v_c (F-5). Rows in ``stock_rows``
    are (F-6): their upper bound is the stock at (hub, module) of ``stock_key``, which the MILP
    replaces by Stage I's expression. Columns carry what reads the solution back: their event,
    module, hub, and for a power the first and last position in the event's steps it holds for.
    """

    count: int
    events: list[SiteEvent]
    step_h: float
    constant: np.ndarray  # (S,) $
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    tie: list[float] = field(default_factory=list)  # $ in the objective only, not in Q_s
    integer: list[bool] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    event: list[int] = field(default_factory=list)
    module: list[int] = field(default_factory=list)
    hub: list[int] = field(default_factory=list)
    first: list[int] = field(default_factory=list)
    last: list[int] = field(default_factory=list)
    row_start: list[int] = field(default_factory=lambda: [0])
    row_index: list[int] = field(default_factory=list)
    row_value: list[float] = field(default_factory=list)
    row_lower: list[float] = field(default_factory=list)
    row_upper: list[float] = field(default_factory=list)
    stock_rows: list[int] = field(default_factory=list)
    stock_key: list[tuple[int, int]] = field(default_factory=list)

    @property
    def columns(self) -> int:
        return len(self.lower)

    @property
    def rows(self) -> int:
        return len(self.row_lower)

    def column(self, lower: float, upper: float, *, kind: int, event: int, cost: float = 0.0, tie: float = 0.0,
               integer: bool = False, module: int = -1, hub: int = -1, first: int = -1, last: int = -1) -> int:
        self.lower.append(lower)
        self.upper.append(upper)
        self.cost.append(cost)
        self.tie.append(tie)
        self.integer.append(integer)
        self.kind.append(kind)
        self.event.append(event)
        self.module.append(module)
        self.hub.append(hub)
        self.first.append(first)
        self.last.append(last)
        return len(self.lower) - 1

    def row(self, terms: dict[int, float], lower: float = -INF, upper: float = INF) -> int:
        for c, a in terms.items():
            if a != 0.0:
                self.row_index.append(c)
                self.row_value.append(a)
        self.row_start.append(len(self.row_index))
        self.row_lower.append(lower)
        self.row_upper.append(upper)
        return len(self.row_lower) - 1

    def scenario_of_columns(self) -> np.ndarray:
        return np.array([self.events[e].scenario for e in self.event], dtype=np.intp)

    def scenario_costs(self, values: np.ndarray) -> np.ndarray:
        """Q_s (F-5) of every scenario at column values ``values``."""
        weighted = np.asarray(self.cost) * values
        return self.constant + np.bincount(self.scenario_of_columns(), weights=weighted, minlength=self.count)


def _add(terms: dict[int, float], column: int, value: float) -> None:
    terms[column] = terms.get(column, 0.0) + value


@dataclass
class _Event:
    """One site event while its rows are added: where its steps break into stretches, and the
    columns so far."""

    rows: StageTwoRows
    data: PlanData
    index: int
    ev: SiteEvent
    minutes: np.ndarray  # minutes since the event's onset, per step
    units: dict[tuple[int, int], int]  # (hub, module) -> x column
    stable: int  # u column
    pieces: list[tuple[int, int]]  # (first, last) step positions a power column holds for
    stretch_of_piece: list[int]
    stretch_ends: list[int]  # last piece of each stretch
    power: dict[tuple[int, int], int] = field(default_factory=dict)  # (module, piece) -> column
    shed: dict[int, int] = field(default_factory=dict)  # piece -> column of load shed for the feeder's limits
    limits: LimitStates | None = None
    to_window_end: bool = False
    latest: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per step: the last arrival so far (-1: none)
    _arrived: dict[tuple[int, float], dict[int, float]] = field(default_factory=dict)

    def arrived(self, k: int, j: int) -> dict[int, float]:
        """Units of module type k present at step position j, as terms over x columns (shared: do
        not change them)."""
        key = (k, float(self.latest[j]))
        if key not in self._arrived:
            tau = self.data.travel_min[:, self.ev.site]
            self._arrived[key] = {c: 1.0 for (d, kk), c in self.units.items() if kk == k and tau[d] <= key[1]}
        return self._arrived[key]

    def width(self, piece: int) -> int:
        first, last = self.pieces[piece]
        return last - first + 1


def stage_two_rows(data: PlanData, shocks: ShockScenarios, *, stock: np.ndarray | None = None,
                   aggregate: bool = True, tie_break: float = 0.0) -> StageTwoRows:
    """Stage II rows of every scenario in ``shocks``.

    ``stock`` (hub, module) is a fixed plan's: units that cannot be there get no column. Without it
    every unit a hub could ever hold has one (the MILP). ``aggregate``: the exact reduction over
    constant stretches. ``tie_break``: $ per unit sent (and as much again per hour of travel),
    left out of Q_s; see grid.plan.dispatch.UNIT_TIE_BREAK_USD.
    """
    events = site_events(shocks)
    step_h = shocks.settings.step_min / 60.0
    rows = StageTwoRows(shocks.count, events, step_h, np.zeros(shocks.count))
    states = limit_states(data.limits, shocks, _rule_changes(data, shocks, events)) if data.limits is not None else None
    coupling: dict[tuple[int, int, int], dict[int, float]] = {}
    reliefs = []
    for e, ev in enumerate(events):
        event = _start_event(rows, data, shocks, e, ev, stock, aggregate, tie_break, states)
        for (d, k), c in event.units.items():
            coupling.setdefault((ev.scenario, d, k), {})[c] = 1.0
        _add_powers(event)
        if states is not None and states.binding[ev.scenario].any():
            reliefs.append(_relief(event))
    for (s, d, k), terms in coupling.items():  # (F-6)
        bound = float(stock[d, k]) if stock is not None else INF
        rows.stock_rows.append(rows.row(terms, upper=bound))
        rows.stock_key.append((d, k))
    if states is not None:
        assert data.limits is not None
        for terms, lower in limit_row_terms(data.limits, shocks, states, reliefs):  # (#eq-f-limits)
            if terms:
                rows.row(terms, lower=lower)
    return rows


def _rule_changes(data: PlanData, shocks: ShockScenarios, events: list[SiteEvent]) -> np.ndarray:
    """(S, steps): where some site's coverage rule starts (T_stab) or some hub's units arrive; a
    superset of where `_cut_stretches` breaks a site's stretches for its own reasons."""
    changes = np.zeros((shocks.count, shocks.deviation_mw.shape[2]), dtype=bool)
    step_min = shocks.settings.step_min
    for ev in events:
        minutes = ev.steps * step_min - ev.onset_min
        marks = np.append(data.travel_min[:, ev.site], data.sites[ev.site].stabilize_min)
        rule = np.searchsorted(np.sort(marks), minutes, side="right")
        changes[ev.scenario, ev.steps[1:][rule[1:] != rule[:-1]]] = True
    return changes


def _relief(event: _Event) -> EventRelief:
    """The event's relief columns at each of its steps: supplied and shed +1, absorbed -1."""
    kinds = event.rows.kind
    by_piece: list[dict[int, float]] = [{} for _ in event.pieces]
    for (_, p), c in event.power.items():
        by_piece[p][c] = 1.0 if kinds[c] == SUPPLY else -1.0
    for p, c in event.shed.items():
        by_piece[p][c] = 1.0
    terms: list[dict[int, float]] = [{} for _ in event.ev.steps]
    for p, (first, last) in enumerate(event.pieces):
        for j in range(first, last + 1):
            terms[j] = by_piece[p]
    return EventRelief(event.ev.scenario, event.ev.site, event.ev.steps, terms)


def _start_event(rows: StageTwoRows, data: PlanData, shocks: ShockScenarios, e: int, ev: SiteEvent,
                 stock: np.ndarray | None, aggregate: bool, tie_break: float, limits: LimitStates | None) -> _Event:
    """The event's units and u, its cost's constant part, and its stretches."""
    site = data.sites[ev.site]
    step_min = shocks.settings.step_min
    minutes = ev.steps * step_min - ev.onset_min
    loss = data.ens_cost_per_mwh * site.load_mw * ev.disturbed_h
    need_mwh = float((ev.up.sum() + ev.down.sum()) * rows.step_h)
    # (F-5) and (F-13): imbalance at P_i, plus ENS at gamma unless stabilized.
    rows.constant[ev.scenario] += site.imbalance_cost_per_mwh * need_mwh + loss
    stable = rows.column(0.0, 1.0, kind=STABLE, event=e, cost=-loss, integer=True)
    units = _add_units(rows, data, e, ev, stable, stock, tie_break)
    event = _Event(rows, data, e, ev, minutes, units, stable, [], [], [], limits=limits,
                   to_window_end=int(ev.steps[-1]) >= round(data.window_min / step_min) - 1)
    _cut_stretches(event, aggregate)
    return event


def _add_units(rows: StageTwoRows, data: PlanData, e: int, ev: SiteEvent, stable: int, stock: np.ndarray | None,
               tie_break: float) -> dict[tuple[int, int], int]:
    """x per hub in reach and module type that can serve the event (F-7), with (F-8) projected.

    (F-8) says t_i >= tau_{d,i} w_{i,d}, x <= M w and t_i <= T_stab(i) + M (1 - u_i); together
    they say that a stabilized site gets no unit from a hub slower than T_stab(i), which is
    x <= M (1 - u_i) for those hubs. Eliminating t and w keeps the same feasible plans and a
    tighter relaxation; t_i (the last arrival) is read back from x.
    """
    tau = data.travel_min[:, ev.site]
    stabilize_min = data.sites[ev.site].stabilize_min
    units = {}
    for d in range(len(data.hubs)):
        if tau[d] >= data.window_min:
            continue
        for k, module in enumerate(data.modules):
            if not module.absorbs and not ev.up.any():
                continue  # (F-7): this type cannot serve a drop
            bound = data.unit_bound(d, k) if stock is None else min(data.unit_bound(d, k), int(stock[d, k]))
            if bound == 0:
                continue
            c = rows.column(0.0, float(bound), kind=UNITS, event=e, integer=True, module=k, hub=d,
                            tie=tie_break * (1.0 + tau[d] / 60.0))
            units[d, k] = c
            if tau[d] > stabilize_min:
                rows.row({c: 1.0, stable: float(bound)}, upper=float(bound))
    return units


def _cut_stretches(event: _Event, aggregate: bool) -> None:
    """Pieces a power column holds for: a whole stretch where that is exact, else single steps."""
    ev, minutes = event.ev, event.minutes
    tau = event.data.travel_min[:, ev.site]
    arrivals = np.array(sorted({float(tau[d]) for d, _ in event.units}) or [np.inf])
    count = np.searchsorted(arrivals, minutes, side="right")
    event.latest = np.where(count > 0, arrivals[np.maximum(count - 1, 0)], -1.0)
    stabilize_min = event.data.sites[ev.site].stabilize_min
    generator = any(event.data.modules[k].kind == "generator" for _, k in event.units)

    def signature(j: int) -> tuple:
        joint = event.limits.stretch_key(ev.scenario, int(ev.steps[j])) if event.limits is not None else 0
        return (float(ev.up[j]), float(ev.down[j]), bool(minutes[j] >= stabilize_min), int(count[j]), joint)

    start = 0
    for j in range(1, len(ev.steps) + 1):
        if j < len(ev.steps) and signature(j) == signature(start):
            continue
        whole = aggregate and not (generator and ev.up[start] > 0)
        spans = [(start, j - 1)] if whole else [(t, t) for t in range(start, j)]
        stretch = len(event.stretch_ends)
        for span in spans:
            event.pieces.append(span)
            event.stretch_of_piece.append(stretch)
        event.stretch_ends.append(len(event.pieces) - 1)
        start = j


def _add_powers(event: _Event) -> None:
    """Each module type's power per piece (F-7), its own limits (F-10) to (F-12), the need's
    cap and the coverage of a stabilized site (F-8), and the power's part of Q_s (F-5)."""
    rows, ev, data = event.rows, event.ev, event.data
    site = data.sites[ev.site]
    modules = sorted({k for _, k in event.units})
    for k in modules:
        module = data.modules[k]
        for p, (first, _) in enumerate(event.pieces):
            arrived = event.arrived(k, first)
            need = float(ev.up[first]) if ev.up[first] > 0 else float(ev.down[first]) if module.absorbs else 0.0
            if not arrived or need == 0.0:
                continue  # nothing here yet, or nothing this type can do
            kind = SUPPLY if ev.up[first] > 0 else ABSORB
            c = rows.column(0.0, need, kind=kind, event=event.index, module=k, first=first, last=event.pieces[p][1],
                            cost=-site.imbalance_cost_per_mwh * rows.step_h * event.width(p))
            event.power[k, p] = c
            capacity = {a: -module.unit_mw * v for a, v in arrived.items()}
            capacity[c] = 1.0
            rows.row(capacity, upper=0.0)
        MODULE_ROWS[module.kind](event, k, module)
    _add_shed(event)
    for p, (first, _) in enumerate(event.pieces):
        need = float(ev.up[first] + ev.down[first])
        columns = [event.power[k, p] for k in modules if (k, p) in event.power]
        capped = columns + ([event.shed[p]] if p in event.shed else [])
        if len(capped) > 1:  # (F-7): the power served, and the load shed, are at most the need
            rows.row({c: 1.0 for c in capped}, upper=need)
        if need > 0 and event.minutes[first] >= site.stabilize_min:  # (F-8): u = 1 covers the need
            terms = {c: 1.0 for c in columns}
            terms[event.stable] = -need
            rows.row(terms, lower=0.0)


def _add_shed(event: _Event) -> None:
    """Load shed (MW) on each surge piece where a binding limit row reaches the site
    (docs/models/plan.md#fcm-feeder): at most the surge, at gamma per MWh instead of P_i, since
    energy shed is energy not served rather than imbalance."""
    if event.limits is None:
        return
    rows, ev, data = event.rows, event.ev, event.data
    price = data.ens_cost_per_mwh - data.sites[ev.site].imbalance_cost_per_mwh
    for p, (first, _) in enumerate(event.pieces):
        if ev.up[first] > 0 and event.limits.reach[ev.scenario, ev.site, ev.steps[first]]:
            event.shed[p] = rows.column(0.0, float(ev.up[first]), kind=SHED, event=event.index, first=first,
                                        last=event.pieces[p][1], cost=price * rows.step_h * event.width(p))


def _level_rows(event: _Event, k: int, module: ModuleType, gain: Callable[[int, int], float],
                initial: float) -> None:
    """A running energy per stretch: level = previous + initial * E * (units arriving) + the pieces'
    gain, at most E per unit present; >= 0 by its column bound. Monotone within a stretch, so its
    end is the only place its limits can bind (docs/models/plan.md#eq-f-stretch)."""
    rows = event.rows
    assert module.energy_mwh is not None
    previous: int | None = None
    before: dict[int, float] = {}
    first_piece = 0
    for last_piece in event.stretch_ends:
        present = event.arrived(k, event.pieces[last_piece][1])
        span = [p for p in range(first_piece, last_piece + 1) if (k, p) in event.power]
        first_piece = last_piece + 1
        if not present or (not span and present == before):
            continue  # nothing here yet, or nothing moves: the level stays where it was
        level = rows.column(0.0, INF, kind=LEVEL, event=event.index, module=k)
        terms: dict[int, float] = {level: -1.0}
        if previous is not None:
            terms[previous] = 1.0
        for a, v in present.items():
            _add(terms, a, initial * module.energy_mwh * (v - before.get(a, 0.0)))
        for p in span:
            c = event.power[k, p]
            _add(terms, c, gain(c, p) * rows.step_h * event.width(p))
        rows.row(terms, lower=0.0, upper=0.0)
        limit = {a: -module.energy_mwh * v for a, v in present.items()}
        limit[level] = 1.0
        rows.row(limit, upper=0.0)
        previous, before = level, present


def add_storage(event: _Event, k: int, module: ModuleType) -> None:
    """(F-10), (F-11): the state of charge of the units at the site, each arriving at initial_soc."""
    kinds = event.rows.kind

    def gain(c: int, _: int) -> float:
        return module.eta_charge if kinds[c] == ABSORB else -1.0 / module.eta_discharge

    _level_rows(event, k, module, gain, module.initial_soc)


def add_demand_response(event: _Event, k: int, module: ModuleType) -> None:
    """Demand response: the energy curtailed so far is at most that of the units arrived."""
    _level_rows(event, k, module, lambda c, p: 1.0, 0.0)


def add_generator(event: _Event, k: int, module: ModuleType) -> None:
    """(F-12): |p_{t+1} - p_t| <= R_max per unit present within the window: from zero before the
    event, and back to zero after it when the window goes on (docs/models/plan.md#eq-f-12); an
    event that runs to the window's end has no step after it, so no ramp down. A generator only
    supplies, so its power is zero wherever the event needs absorbing, and its pieces there are
    single steps (`_cut_stretches`)."""
    assert module.ramp_mw_per_min is not None
    steps = len(event.ev.steps)
    at_step = {event.pieces[p][0]: c for (kk, p), c in event.power.items() if kk == k}
    step_min = event.rows.step_h * 60.0
    previous: int | None = None
    for j in range(steps if event.to_window_end else steps + 1):
        current = at_step.get(j) if j < steps else None
        if current is not None or previous is not None:
            present = event.arrived(k, min(j, steps - 1))
            for sign in (1.0, -1.0):
                terms = {a: -module.ramp_mw_per_min * step_min * v for a, v in present.items()}
                if current is not None:
                    _add(terms, current, sign)
                if previous is not None:
                    _add(terms, previous, -sign)
                event.rows.row(terms, upper=0.0)
        previous = current


# Each module kind's own rows (grid.plan.data.MODULE_KINDS), one function per kind.
MODULE_ROWS: dict[str, Callable[[_Event, int, ModuleType], None]] = {
    "storage": add_storage,
    "generator": add_generator,
    "demand_response": add_demand_response,
}
