"""The AC correction of a capacity study (docs/models/ac-check.md#correction).

Linear study, AC check at the checked states (grid/ac/study_check.py), and for every violation
the new load causes:

- an overloaded line that binds in DC at that state has its limit, in the direction of its DC
  flow, tightened by the active power the AC flow must shed to come back to its rating (A-11);
  deratings add up over the iterations. Where it does not bind, the state gets a row: the line's
  DC flow there must fall by that much;
- a bus outside the voltage band gets a row: its voltage linearised through the AC solution in
  the capacities and in the background, from the power-flow Jacobian (A-10, A-12);
- a state with an AC solution without the new load and none with it gets the voltage rows at the
  largest fraction of that load that has one (A-13);

then the study is solved again with these corrections (grid/capacity/inputs/corrections.py), until the
AC check finds no violation caused by new load, or after ``max_iterations`` re-solves, or when
nothing is left that the linear model can take, or when solving again changes nothing. The
result says, per iteration, the violations and the MW of each model, and at the end what the
correction cost and what it could not fix.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from grid.ac.check import (
    CAUSED,
    LOW_VOLTAGE,
    OVERLOAD,
    AcCheck,
    StateCheck,
    Violation,
)
from grid.ac.states import CheckState, DenseFlows, line_limits
from grid.ac.study_check import (
    AcTarget,
    ModelCheck,
    RunCache,
    check_study,
    model_names,
)
from grid.ac.tier_risk import hold_products, tier_interruptions
from grid.capacity.inputs.corrections import Corrections, LinearRow
from grid.capacity.rows.limits import LOWER, UPPER, line_limit_name
from grid.capacity.study import CapacityStudy
from grid.errors import GridError
from grid.load.scenarios import Scenarios

DEFAULT_MAX_ITERATIONS = 10
# Re-solves at most: each one is a whole capacity study and an AC check.
MAX_ITERATIONS_CEILING = 20
# A derating below this (MW) or a voltage row whose largest candidate sensitivity is below this
# (p.u. per MW) would not move the allocation: the violation is left as not correctable.
_SMALL_MW = 1e-9
_SMALL_SENSITIVITY = 1e-12
# A voltage row aims this far inside the band [ours] (at most as far as the voltage without the new
# load): the voltage falls faster than linearly as load grows, so a row at the band's edge leaves
# violations of a few 1e-4 p.u. for another round.
VOLTAGE_MARGIN_PU = 1e-3
# A line binds at a state when its DC flow there is within this share of its (corrected) limit:
# then its limit is derated, else the state gets a row of its own.
BINDS = 0.01
# Halvings of the new load in search of the largest fraction with an AC solution: 1/16.
BISECTIONS = 4

STOP_CLEAN = "no violation caused by new load"
STOP_NOTHING = "nothing left that the linear model can correct"
STOP_STALLED = "the corrections no longer change the allocation"


def stop_at_limit(max_iterations: int) -> str:
    return f"max_iterations ({max_iterations}) reached"


def check_max_iterations(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= MAX_ITERATIONS_CEILING:
        raise GridError(f"max_iterations must be an integer in [0, {MAX_ITERATIONS_CEILING}], got {value!r}")
    return int(value)


@dataclass(frozen=True, eq=False)
class Iteration:
    """One AC check of one study: 0 is the linear study, k the study after k re-solves."""

    number: int
    total_mw: dict[str, float]           # per model name (firm, each tier)
    checks: tuple[ModelCheck, ...]
    derated_lines: int                   # lines whose limit carried a derating in this study
    state_rows: int                      # rows of and in this study

    @property
    def caused(self) -> list[tuple[str, Violation]]:
        return [(check.name, v) for check in self.checks for v in check.caused]

    def found(self) -> int:
        """Violations caused by new load, and states with no AC solution with it (but one without)."""
        return len(self.caused) + sum(len(check.diverged()) for check in self.checks)


@dataclass(frozen=True, eq=False)
class Correction:
    """The corrected study, the corrections it carries, and how it got there."""

    study: CapacityStudy
    corrections: Corrections
    iterations: tuple[Iteration, ...]    # one per study, the linear one first
    stopped: str
    line_names: tuple[str, ...] = field(repr=False, default=())

    @property
    def resolves(self) -> int:
        """Times the study was solved again."""
        return len(self.iterations) - 1

    @property
    def linear_mw(self) -> dict[str, float]:
        return self.iterations[0].total_mw

    @property
    def corrected_mw(self) -> dict[str, float]:
        return self.iterations[-1].total_mw

    @property
    def cost_mw(self) -> dict[str, float]:
        return {name: self.linear_mw[name] - self.corrected_mw[name] for name in self.linear_mw}

    def unfixed(self) -> list[str]:
        """What the last check still finds: each element the new load breaks, per model, and the
        states without an AC solution."""
        last = self.iterations[-1]
        found = sorted({f"{v.element} ({model}, {v.kind})" for model, v in last.caused})
        return found + [failure for check in last.checks for failure in check.failures()]

    def deratings(self) -> dict[str, dict[str, float]]:
        """MW taken off each derated line's limits, by direction."""
        return {name: {"upper": float(up), "lower": float(low)}
                for name, (up, low) in zip(self.line_names, self.corrections.derating_mw) if up > 0 or low > 0}


def totals(study: CapacityStudy) -> dict[str, float]:
    return {name: float(sum(model.capacity_mw.values()))
            for name, model in zip(model_names(study), (study.firm, *study.tiers))}


def correct_study(study: CapacityStudy, scenarios: Scenarios, dense: DenseFlows, target: AcTarget, *, worst: int,
                  solve: Callable[[Corrections], CapacityStudy], max_iterations: int = DEFAULT_MAX_ITERATIONS,
                  progress: Callable[[str], None] = lambda _: None) -> Correction:
    """The loop of the module doc. Each AC check (grid/ac/study_check.py, ``worst`` sampled
    states) also revisits, per model, the states where an earlier one found a violation caused by
    new load, so that the last check sees every state the correction acted on. ``solve`` is the
    capacity study with corrections."""
    max_iterations = check_max_iterations(max_iterations)
    corrections = Corrections.none(len(study.network.lines))
    iterations: list[Iteration] = []
    revisit: dict[str, list[CheckState]] = {}
    linear = tier_interruptions(study, scenarios, dense.h)[0]
    cache = RunCache()  # each state solved without the new load once, and with the same new load once
    while True:
        checks = check_study(study, scenarios, dense, target, worst=worst, sensitivities=True, revisit=revisit,
                             cache=cache, progress=progress)
        iterations.append(_iteration(len(iterations), study, checks, corrections))
        found = iterations[-1].found()
        progress(f"AC correction, iteration {len(iterations) - 1}: {found} violation(s) caused by new load")
        if not found:
            # The tiers' products must also keep the linear study's risk (grid/ac/tier_risk.py);
            # a study held to it is checked again.
            held, held_corrections = hold_products(study, scenarios, dense.h, linear, corrections, solve, progress)
            if held_corrections is corrections or len(iterations) > max_iterations:
                stopped = STOP_CLEAN if held_corrections is corrections else stop_at_limit(max_iterations)
                break
            study, corrections = held, held_corrections
            continue
        if len(iterations) > max_iterations:
            stopped = stop_at_limit(max_iterations)
            break
        grown = tighten(study, dense, checks, corrections, target)
        if grown is None:
            stopped = STOP_NOTHING
            break
        for model in checks:
            broken = {v.state for v in model.caused} | {state.label for state, _ in model.diverged()}
            revisit.setdefault(model.name, []).extend(state for state in model.states if state.label in broken)
        corrections, before = grown, study
        study = solve(corrections)
        if _same_allocation(before, study):  # the last check holds for this study too: no need to run it
            iterations.append(_iteration(len(iterations), study, checks, corrections))
            stopped = STOP_STALLED
            break
    return Correction(study, corrections, tuple(iterations), stopped, tuple(line.name for line in study.network.lines))


def _iteration(number: int, study: CapacityStudy, checks: tuple[ModelCheck, ...], corrections: Corrections) -> Iteration:
    return Iteration(number, totals(study), checks, int(np.count_nonzero(corrections.derating_mw.any(axis=1))),
                     len(corrections.rows))


def _same_allocation(before: CapacityStudy, after: CapacityStudy) -> bool:
    """Every model's capacities equal to 1e-9 MW: solving again changed nothing."""
    return all(np.allclose(a.vector(before.candidates), b.vector(after.candidates), rtol=0.0, atol=1e-9)
               for a, b in zip((before.firm, *before.tiers), (after.firm, *after.tiers)))


def tighten(study: CapacityStudy, dense: DenseFlows, checks: tuple[ModelCheck, ...], corrections: Corrections,
            target: AcTarget) -> Corrections | None:
    """The corrections grown by what this check measured, or None when it measured nothing to correct."""
    increment = np.zeros_like(corrections.derating_mw)
    limit = line_limits(study)
    rows = list(corrections.rows)
    for model in checks:
        for state, run, result in model.solved():
            caused = [v for v in result.violations if v.state == run.label and v.origin == CAUSED]
            if not caused:
                continue
            flow = dc_flows(study, dense, state, model.capacity_mw)
            for l in [v.position for v in caused if v.kind == OVERLOAD]:
                side, slack, shed = line_shed(flow[l], limit[l], run.with_load.flows[l], float(result.rating_mva[l]))
                if np.isfinite(limit[l, side]) and slack <= BINDS * limit[l, side]:
                    increment[l, side] = max(increment[l, side], slack + shed)
                else:
                    rows.append(line_row(study, dense, state, model.capacity_mw, l, side, shed, len(rows)))
            rows += voltage_rows(study, state, run, result, model.capacity_mw, len(rows))
        for state, run in model.diverged():
            rows += collapse_rows(study, state, run, model.capacity_mw, target, len(rows))
    increment[increment < _SMALL_MW] = 0.0
    if not increment.any() and len(rows) == len(corrections.rows):
        return None
    return Corrections(corrections.derating_mw + increment, tuple(rows))


def collapse_rows(study: CapacityStudy, state: CheckState, run: StateCheck, capacity: np.ndarray, target: AcTarget,
                  numbered: int) -> list[LinearRow]:
    """docs/models/ac-check.md#eq-a-13: a state with no AC solution with its new load: the voltage
    rows (A-12) at the largest fraction of that load, found by bisection, with which the power flow
    converges; none when the voltages there are all in the band (the correction cannot tell what
    to do)."""
    low, high, solved = 0.0, 1.0, None
    for _ in range(BISECTIONS):
        fraction = (low + high) / 2.0
        result = target.check(study, fraction * capacity, [state], sensitivities=True, without=[run.without_load])
        if result.states[0].converged:
            low, solved = fraction, result
        else:
            high = fraction
    if solved is None:
        return []
    return voltage_rows(study, state, solved.states[0], solved, low * capacity, numbered)


def dc_flows(study: CapacityStudy, dense: DenseFlows, state: CheckState, capacity: np.ndarray) -> np.ndarray:
    """Every line's DC flow (MW, from -> to) at the state with its products drawn."""
    withdrawal = np.array(state.withdrawal_mw, dtype=float)
    withdrawal[study.candidates.positions] += np.where(state.drawn, capacity, 0.0)
    return dense.h @ withdrawal + study.flows.offset_mw


def line_shed(dc_flow: float, limit_mw: np.ndarray, ends: np.ndarray, rating_mva: float) -> tuple[int, float, float]:
    """docs/models/ac-check.md#eq-a-11: the direction (0 upper, 1 lower) of the DC flow, the DC
    slack to that (corrected) limit at the state, and the active power the AC flow must shed at
    its more loaded end, |P| - sqrt(R^2 - Q^2) with Q held (|P| when Q alone exceeds the rating)."""
    side = 0 if dc_flow >= 0 else 1
    slack = max(float(limit_mw[side]) - abs(dc_flow), 0.0)
    p_from, q_from, p_to, q_to = (float(x) for x in ends)
    p, q = (p_from, q_from) if math.hypot(p_from, q_from) >= math.hypot(p_to, q_to) else (p_to, q_to)
    return side, slack, max(abs(p) - math.sqrt(max(rating_mva ** 2 - q ** 2, 0.0)), 0.0)


def line_row(study: CapacityStudy, dense: DenseFlows, state: CheckState, capacity: np.ndarray, line: int, side: int,
             shed_mw: float, numbered: int) -> LinearRow:
    """docs/models/ac-check.md#eq-a-11: a line overloaded where it does not bind in DC: its DC flow
    in that direction, a . c + min(g . (p - p*), 0), at most its value in the state less
    ``shed_mw``; the background counts from the state's, and no more than there."""
    sign = 1.0 if side == 0 else -1.0
    h = sign * dense.h[line]
    on_candidates = h[study.candidates.positions]
    drawn = float(on_candidates @ np.where(state.drawn, capacity, 0.0))
    kind = UPPER if side == 0 else LOWER
    # The background counts from the state's, h . (p - p*), and no more than there.
    return LinearRow(f"{line_limit_name(study.network.lines[line].name, kind)} (AC row {numbered + 1})",
                     on_candidates, h, drawn - shed_mw, background_cap_mw=0.0,
                     background_offset_mw=-float(h @ state.withdrawal_mw))


def voltage_rows(study: CapacityStudy, state: CheckState, run: StateCheck, result: AcCheck, capacity: np.ndarray,
                 numbered: int) -> list[LinearRow]:
    """docs/models/ac-check.md#eq-a-12: one row per bus that the new load takes out of the band in
    this state: its voltage linearised through the state's solution in the capacities (the
    sensitivities of (A-10), or the chord's) and in the background, whose term counts no more than
    it did there; each model holds it with its own statistic of that term."""
    sensitivity = run.voltage
    if sensitivity is None:
        return []
    positions = study.candidates.positions
    drawn = np.where(state.drawn, capacity, 0.0)
    found = []
    for v in result.violations:
        if v.state != run.label or v.origin != CAUSED or v.kind == OVERLOAD:
            continue
        w = sensitivity.watched.index(result.buses[v.position])
        vm = float(sensitivity.vm_pu[w])
        slope = steepest_slope(sensitivity.new_load[w, positions], drawn, vm, v.value_without)
        scale = float(np.max(np.abs(slope))) if slope is not None and slope.size else 0.0
        if scale < _SMALL_SENSITIVITY:
            continue  # no candidate moves this voltage, or the sensitivities contradict what was measured
        sign = -1.0 if v.kind == LOW_VOLTAGE else 1.0
        # Aim inside the band by the margin, but never past the voltage without the new load.
        target = v.limit - sign * min(VOLTAGE_MARGIN_PU, max(sign * (v.limit - v.value_without), 0.0))
        background = sign * sensitivity.background[w] / scale
        kind = "low" if v.kind == LOW_VOLTAGE else "high"
        # The background counts from the state's, g . (p - p*), and no more than there.
        found.append(LinearRow(f"voltage at bus {result.buses[v.position]} ({kind}, AC row {numbered + len(found) + 1})",
                               sign * slope / scale, background, sign * (target - vm + slope @ drawn) / scale,
                               background_cap_mw=0.0, background_offset_mw=-float(background @ state.withdrawal_mw)))
    return found


def steepest_slope(tangent: np.ndarray, drawn: np.ndarray, vm_with: float, vm_without: float) -> np.ndarray | None:
    """docs/models/ac-check.md#eq-a-12: dV/dP on the candidates: the Jacobian's (A-10), or the
    chord's when the two power flows measured a larger change along the drawn load than the tangent
    gives, or one of the other sign. A unit that reaches its reactive limit makes the voltage jump,
    which the tangent at the end does not see; a row through the solution with it would leave no
    room even for no new load. The chord keeps the tangent's pattern over the candidates and takes
    its size and sign from the measurement. None when the drawn load does not move the tangent."""
    along = float(tangent @ drawn)
    ratio = (vm_with - vm_without) / along if along != 0 else math.nan
    if not math.isfinite(ratio):
        return None
    return tangent if 0 < ratio <= 1 else tangent * ratio
