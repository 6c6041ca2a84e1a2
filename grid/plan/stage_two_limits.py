"""The feeder's limits in Stage II's rows (#eq-f-limits of docs/models/plan.md#fcm-feeder).

At a step, site i's net deviation is its deviation less the relief there: the power its modules
supply, less what they absorb, plus the load shed. A limit row (grid.plan.feeder_limits) reads

    sum_i a[r, i] relief_i  >=  sum_i a[r, i] deviation_i - room[r]

and is written only where it can bind: where the deviations left wholly uncovered would break it.
Those steps are known before solving, and so are the sites each such row reaches, which are the
only ones that need a shed column. Where rows bind, every site's stretches also break wherever any
site's deviation, arrivals, coverage rule or the set of binding rows changes, so that a stretch sees
the same rows and the same rules of every site at each of its steps, and the reduction over
stretches stays exact (docs/models/plan.md#eq-f-stretch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from grid.plan.feeder_limits import LimitRows
from grid.plan.shocks import ShockScenarios

# A row is written where the uncovered deviations come this close to its room (p.u. or MW).
BIND_TOLERANCE = 1e-9


@dataclass(frozen=True)
class LimitStates:
    """Where limit rows can bind, per scenario and step."""

    binding: np.ndarray  # (S, rows, steps) bool
    joint: np.ndarray  # (S, steps) int: equal ids where the binding rows and every site's deviation are equal
    reach: np.ndarray  # (S, sites, steps) bool: the site enters a binding row

    def stretch_key(self, scenario: int, step: int) -> int:
        return int(self.joint[scenario, step])


def limit_states(limits: LimitRows, shocks: ShockScenarios, rule_changes: np.ndarray | None = None) -> LimitStates:
    """Binding rows: the uncovered surges (positive deviations) use up more than a row's room.

    ``rule_changes`` (S, steps) marks where some site's own stretch may break (its arrivals, or its
    coverage rule starting): the sites a row ties together must all break there, or one site's
    constant power would span two different stretches of another's."""
    deviation = shocks.deviation_mw
    worst = np.einsum("ri,sit->srt", limits.a, np.maximum(deviation, 0.0))
    binding = worst > limits.room[None, :, None] - BIND_TOLERANCE
    reach = np.einsum("srt,ri->sit", binding.astype(float), (limits.a > 0.0).astype(float)) > 0.0
    segment = np.cumsum(rule_changes, axis=1) if rule_changes is not None else np.zeros(deviation.shape[::2], int)
    joint = np.zeros(binding.shape[::2], dtype=np.int64)
    for s in np.nonzero(binding.any(axis=(1, 2)))[0]:
        ids: dict[bytes, int] = {}
        for t in range(deviation.shape[2]):
            if binding[s, :, t].any():
                key = binding[s, :, t].tobytes() + deviation[s, :, t].tobytes() + segment[s, t].tobytes()
                joint[s, t] = ids.setdefault(key, len(ids) + 1)
    return LimitStates(binding, joint, reach)


@dataclass(frozen=True)
class EventRelief:
    """One site event's relief columns: per step position, {column: +1 supplied or shed, -1 absorbed}."""

    scenario: int
    site: int
    steps: np.ndarray
    terms: Sequence[dict[int, float]]


def limit_row_terms(limits: LimitRows, shocks: ShockScenarios, states: LimitStates,
                    reliefs: Sequence[EventRelief]) -> list[tuple[dict[int, float], float]]:
    """Each binding limit row as (terms, lower bound); a row repeated over a stretch's steps once."""
    by_step: dict[tuple[int, int], list[tuple[int, dict[int, float]]]] = {}
    for relief in reliefs:
        for j, step in enumerate(relief.steps):
            by_step.setdefault((relief.scenario, int(step)), []).append((relief.site, relief.terms[j]))
    out: list[tuple[dict[int, float], float]] = []
    seen: set[tuple] = set()
    for s, r, t in zip(*np.nonzero(states.binding)):
        lower = float(limits.a[r] @ shocks.deviation_mw[s, :, t] - limits.room[r])
        terms: dict[int, float] = {}
        for site, relief in by_step.get((int(s), int(t)), []):
            weight = float(limits.a[r, site])
            if weight > 0.0:  # a column belongs to one site's event: no two sites share one
                terms.update({c: weight * sign for c, sign in relief.items()})
        key = (int(r), tuple(sorted(terms.items())), round(lower, 12))
        if key not in seen:
            seen.add(key)
            out.append((terms, lower))
    return out
