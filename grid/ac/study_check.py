"""The AC check of a capacity study: firm capacity and the riskiest tier, each at its own states
(grid/ac/states.py), one check_allocation per pattern of products drawn (docs/models/ac-check.md#states).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from grid.ac.check import (
    CAUSED,
    OVERLOAD,
    SUMMARY_KEYS,
    AcCheck,
    AcSettings,
    BackgroundStates,
    PowerFlow,
    StateCheck,
    Violation,
    check_allocation,
)
from grid.ac.states import CheckState, DenseFlows, check_states, holding, unique_states
from grid.capacity.study import CapacityResult, CapacityStudy
from grid.load.scenarios import Scenarios
from grid.network.cases import CaseOptions

Progress = Callable[[str], None]


@dataclass(frozen=True, eq=False)
class ModelCheck:
    """One model's allocation checked: its states, and the AC checks (one per draw pattern)."""

    name: str                          # "firm" or "flexible 0.1"
    capacity_mw: np.ndarray = field(repr=False)   # candidates order
    states: tuple[CheckState, ...] = ()
    results: tuple[AcCheck, ...] = ()

    def solved(self) -> Iterator[tuple[CheckState, StateCheck, AcCheck]]:
        """Each state with its power flows and the check it belongs to."""
        by_label = {state.label: state for state in self.states}
        for result in self.results:
            for run in result.states:
                yield by_label[run.label], run, result

    @property
    def violations(self) -> list[Violation]:
        return [v for result in self.results for v in result.violations]

    @property
    def caused(self) -> list[Violation]:
        return [v for v in self.violations if v.origin == CAUSED]

    def diverged(self) -> list[tuple[CheckState, StateCheck]]:
        """States with an AC solution without the new load and none with it (the new load's doing),
        with their runs."""
        return [(state, run) for state, run, _ in self.solved() if not run.converged and run.without_load.converged]

    def broken(self) -> tuple[list[str], list[int]]:
        """The lines (names) and buses (numbers) whose limit the new load breaks in some state."""
        lines, buses = set(), set()
        for result in self.results:
            for v in result.violations:
                if v.origin == CAUSED and v.kind == OVERLOAD:
                    lines.add(result.lines[v.position])
                elif v.origin == CAUSED:
                    buses.add(result.buses[v.position])
        return sorted(lines), sorted(buses)

    def counts(self) -> dict[str, int]:
        """AcCheck.summary() summed over the draw patterns."""
        counts = dict.fromkeys(SUMMARY_KEYS, 0)
        for result in self.results:
            for key, value in result.summary().items():
                counts[key] += value
        return counts

    def failures(self) -> list[str]:
        return [line for result in self.results for line in result.failures()]


@dataclass(frozen=True)
class AcTarget:
    """What every AC check of one study runs on: the case as the study loaded it, the settings."""

    case: str | Path
    settings: AcSettings
    options: CaseOptions | None = None
    base_dir: Path | None = None

    def check(self, study: CapacityStudy, capacity: np.ndarray, states: Sequence[CheckState], *,
              sensitivities: bool = False, without: Sequence[PowerFlow] | None = None) -> AcCheck:
        """check_allocation of ``capacity`` (candidates order) at states that draw the same products
        (``without``: their runs without the new load, if known)."""
        drawn = states[0].drawn
        allocation = {bus: float(c) if on else 0.0 for bus, c, on in zip(study.candidates.buses, capacity, drawn)}
        background = BackgroundStates.from_net_withdrawals(study.network, [s.label for s in states],
                                                           np.array([s.withdrawal_mw for s in states]))
        return check_allocation(self.case, allocation, background, self.settings, options=self.options,
                                base_dir=self.base_dir, sensitivities=sensitivities, without=without)


def model_names(study: CapacityStudy) -> list[str]:
    """Names of the study's models, firm then each tier, as reports print them."""
    return ["firm"] + [f"flexible {tier.risk:g}" for tier in study.tiers]


def checked_models(study: CapacityStudy) -> list[tuple[int, CapacityResult]]:
    """The models the AC check runs: firm capacity and the riskiest tier (model index, model)."""
    return [(0, study.firm)] + ([(len(study.tiers), study.tiers[-1])] if study.tiers else [])


def check_study(study: CapacityStudy, scenarios: Scenarios, dense: DenseFlows, target: AcTarget, *, worst: int,
                sensitivities: bool = False, revisit: Mapping[str, Sequence[CheckState]] | None = None,
                cache: RunCache | None = None,
                progress: Progress = lambda _: None) -> tuple[ModelCheck, ...]:
    """Every checked model at its states (firm also at the worst corners), and at the states
    ``revisit`` names per model (where an earlier check found a violation). ``cache`` holds the
    runs of earlier checks of the same target; it is read and filled, so that a state is solved
    without the new load once, and with the same new load once."""
    names = model_names(study)
    found = []
    for index, model in checked_models(study):
        capacity = model.vector(study.candidates)
        chosen = check_states(study, scenarios, dense, capacity, model.draw, corners=index == 0, worst=worst,
                              blocked=model.blocked_rows)
        # States revisited only where the linear model holds: a tier may break a row in its tail.
        again = holding(study, dense, list((revisit or {}).get(names[index], ())), capacity, model.blocked_rows)
        chosen = unique_states(chosen + again)
        progress(f"AC check ({names[index]}): {len(chosen)} states with pandapower")
        groups: dict[bytes, list[CheckState]] = {}
        for state in chosen:
            groups.setdefault(state.drawn.tobytes(), []).append(state)
        results = tuple(result for states in groups.values()
                        for result in _checked(study, capacity, states, target, sensitivities, cache))
        found.append(ModelCheck(names[index], capacity, tuple(chosen), results))
    return tuple(found)


@dataclass(eq=False)
class RunCache:
    """Power flows of earlier checks of one target: each state's run without the new load (by
    background), and each state's check with a given new load (by label, background and load)."""

    baselines: dict[bytes, PowerFlow] = field(default_factory=dict)
    checked: dict[tuple[str, bytes, bytes], AcCheck] = field(default_factory=dict)


def background_key(state: CheckState) -> bytes:
    """What a state's run without the new load depends on: its background."""
    return np.ascontiguousarray(state.withdrawal_mw, dtype=float).tobytes()


def _checked(study: CapacityStudy, capacity: np.ndarray, states: list[CheckState], target: AcTarget,
             sensitivities: bool, cache: RunCache | None) -> list[AcCheck]:
    """target.check of states that draw alike: a state checked before with the same new load is
    taken from ``cache``; of the others, those whose baseline is known are checked with it, the
    rest in full, and every new state's check and baseline kept."""
    if cache is None:
        return [target.check(study, capacity, states, sensitivities=sensitivities)]
    load = np.ascontiguousarray(np.where(states[0].drawn, capacity, 0.0)).tobytes()
    key = {id(s): (s.label, background_key(s), load) for s in states}
    results = [cache.checked[key[id(s)]] for s in states if key[id(s)] in cache.checked]
    fresh = [s for s in states if key[id(s)] not in cache.checked]
    known = [s for s in fresh if background_key(s) in cache.baselines]
    unknown = [s for s in fresh if background_key(s) not in cache.baselines]
    for group, without in ((known, True), (unknown, False)):
        if not group:
            continue
        result = target.check(study, capacity, group, sensitivities=sensitivities,
                              without=[cache.baselines[background_key(s)] for s in group] if without else None)
        for state, run in zip(group, result.states):
            cache.baselines[background_key(state)] = run.without_load
            cache.checked[key[id(state)]] = dataclasses.replace(
                result, states=(run,), violations=tuple(v for v in result.violations if v.state == run.label))
        results.append(result)
    return results
