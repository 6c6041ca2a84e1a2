"""The default-rating rule for branches that a case leaves unrated.

MATPOWER writes RATE_A = 0 for "unlimited", and our CSV format allows a blank rating. A capacity
model would then never see the line, so an unrated branch silently turns into infinite capacity.
We never allow that: every unrated branch gets

    rating = max(floor_mw, margin x |base-case DC flow|)

where either part may be absent but not both. The floor keeps lightly loaded branches from being
rated at a few MW (which would make them the binding limit of every allocation for no physical
reason); the margin keeps heavily loaded branches from being rated below what they already carry
in the case's own base case, which would make the base case infeasible.

The base case withdraws each bus's base load minus its committed generation (already scaled to
the load by the importer) and the reference bus supplies any remainder. Both importers (MATPOWER
and the CSV folder format) and the bundled IEEE 33-bus feeder call :func:`rate_unrated_lines`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from grid.errors import GridError
from grid.network.network import Network

# Below this a margin-only rating is a flow of round-off size, not a rating.
_SMALLEST_RATING_MW = 1e-6


def _format_number(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class RatingRule:
    """max(floor_mw, margin x |base-case DC flow|) for unrated branches; one part may be None."""

    floor_mw: float | None = None
    margin: float | None = None

    def __post_init__(self) -> None:
        if self.floor_mw is None and self.margin is None:
            raise GridError(
                "a default-rating rule needs default_rating_mw (MW) or rating_margin (or both)"
            )
        for name, value, option in (
            ("floor_mw", self.floor_mw, "default_rating_mw"),
            ("margin", self.margin, "rating_margin"),
        ):
            if value is None:
                continue
            if (
                not isinstance(value, numbers.Real)
                or isinstance(value, bool)
                or not math.isfinite(value)
                or value <= 0
            ):
                unit = " MW" if name == "floor_mw" else ""
                raise GridError(f"{option} must be a finite number > 0{unit}, got {value!r}")

    def describe(self) -> str:
        """The rule as it appears in notes and case descriptions."""
        flow = f"{_format_number(self.margin)} x |base-case DC flow|" if self.margin is not None else None
        floor = f"{_format_number(self.floor_mw)} MW" if self.floor_mw is not None else None
        if floor and flow:
            return f"max({floor}, {flow})"
        return floor or flow or ""

    def with_overrides(self, floor_mw: float | None, margin: float | None) -> RatingRule:
        """This rule with the given parts replaced (None keeps this rule's part)."""
        return RatingRule(
            self.floor_mw if floor_mw is None else floor_mw,
            self.margin if margin is None else margin,
        )


def base_case_withdrawals(network: Network) -> np.ndarray:
    """Net withdrawal per bus (MW, ``bus_numbers`` order): base load minus committed generation."""
    withdrawals = np.array([bus.base_load_mw for bus in network.buses], dtype=float)
    for bus, output in network.committed_generation_mw().items():
        withdrawals[network.bus_index(bus)] -= output
    return withdrawals


def base_case_flows(network: Network, withdrawals_mw: np.ndarray) -> np.ndarray:
    """DC line flows (MW, from_bus -> to_bus) for these withdrawals, supplied by the reference bus.

    This equals ``shift_factors(network) @ withdrawals_mw``, but solves one right-hand side
    instead of building H: for a 10k-bus case H is a dense 1 GB matrix that takes seconds,
    while one sparse LU solve takes milliseconds and keeps case loading fast.
    """
    if network.lines and all(line.reactance_pu is not None for line in network.lines):
        return _meshed_flows(network, withdrawals_mw)
    if network.is_radial():
        return _radial_flows(network, withdrawals_mw)
    missing = next(line.name for line in network.lines if line.reactance_pu is None)
    raise GridError(
        f"network {network.name!r}: line {missing} has no reactance_pu; the DC flows of a meshed "
        "network need a reactance on every line"
    )


def phase_shift_flows(network: Network) -> np.ndarray:
    """The line flows (MW) that the phase shifters cause with no withdrawal anywhere
    (docs/models/capacity.md#phase-shifters): each shifter's flow at flat angles, Pfinj, plus the
    flows of the bus injections it balances, A' Pfinj, through the network. Zero without a shifter,
    and zero on a radial network (a tree has no loop for the flow to circulate in)."""
    pushed = np.array([line.shift_flow_mw for line in network.lines], dtype=float)
    if not np.any(pushed) or network.is_radial():
        return np.zeros(len(network.lines))
    at_buses = np.zeros(len(network.buses))
    for line, value in zip(network.lines, pushed):
        at_buses[network.bus_index(line.from_bus)] += value
        at_buses[network.bus_index(line.to_bus)] -= value
    # The injections A' Pfinj act as withdrawals w with B theta = -w (they sum to zero: no slack).
    return pushed + _meshed_flows(network, at_buses)


def _radial_flows(network: Network, withdrawals_mw: np.ndarray) -> np.ndarray:
    """On a tree a line carries everything withdrawn beyond it, whatever the reactances."""
    flows = np.zeros(len(network.lines))
    order: list[int] = []
    parent_line: dict[int, int] = {}
    seen = {network.reference_bus}
    queue = deque([network.reference_bus])
    while queue:
        bus = queue.popleft()
        order.append(bus)
        for other, position in network.adjacency[bus]:
            if other not in seen:
                seen.add(other)
                parent_line[other] = position
                queue.append(other)
    subtree = {bus: float(withdrawals_mw[network.bus_index(bus)]) for bus in order}
    for bus in reversed(order[1:]):
        position = parent_line[bus]
        line = network.lines[position]
        # Positive flow runs from_bus -> to_bus; the withdrawal beyond `bus` flows towards it.
        flows[position] = subtree[bus] if line.to_bus == bus else -subtree[bus]
        parent = line.from_bus if line.to_bus == bus else line.to_bus
        subtree[parent] += subtree[bus]
    return flows


def _meshed_flows(network: Network, withdrawals_mw: np.ndarray) -> np.ndarray:
    """flows = diag(b) A theta with B_red theta_red = -w_red and the reference angle at 0."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    n_bus, n_line = len(network.buses), len(network.lines)
    index = {bus: position for position, bus in enumerate(network.bus_numbers)}
    ends = np.array([(index[line.from_bus], index[line.to_bus]) for line in network.lines], dtype=np.int64)
    rows = np.repeat(np.arange(n_line), 2)
    signs = np.tile([1.0, -1.0], n_line)
    incidence = sp.csr_matrix((signs, (rows, ends.ravel())), shape=(n_line, n_bus))
    susceptance = 1.0 / np.array([line.reactance_pu for line in network.lines], dtype=float)
    weighted = sp.diags(susceptance) @ incidence
    b_bus = (incidence.T @ weighted).tocsc()
    keep = np.delete(np.arange(n_bus), index[network.reference_bus])
    theta = np.zeros(n_bus)
    if keep.size:
        try:
            lu = splu(b_bus[keep][:, keep].tocsc())
        except RuntimeError as exc:
            raise GridError(
                f"network {network.name!r}: the reduced susceptance matrix is singular ({exc}); "
                "check for reactances that cancel around a loop"
            ) from None
        theta[keep] = lu.solve(-np.asarray(withdrawals_mw, dtype=float)[keep])
    flows = weighted @ theta
    if not np.all(np.isfinite(flows)):
        raise GridError(
            f"network {network.name!r}: the base-case DC flows are not finite; check for reactances "
            "that cancel around a loop"
        )
    return np.asarray(flows, dtype=float)


def rate_unrated_lines(
    network: Network,
    unrated: Sequence[int],
    rule: RatingRule,
    what: str,
    case_label: str,
) -> Network:
    """``network`` with the lines at positions ``unrated`` rated by ``rule``, and a note saying so.

    ``what`` names the unrated lines in the note ("branches without RATE_A"); ``case_label`` names
    the case in errors. Rated lines are untouched.
    """
    if not unrated:
        return network
    flows = np.abs(base_case_flows(network, base_case_withdrawals(network)) + phase_shift_flows(network))
    lines = list(network.lines)
    for position in unrated:
        line = lines[position]
        candidates = []
        if rule.floor_mw is not None:
            candidates.append(float(rule.floor_mw))
        if rule.margin is not None:
            candidates.append(float(rule.margin) * float(flows[position]))
        rating = max(candidates)
        if not rating > _SMALLEST_RATING_MW:
            raise GridError(
                f"case {case_label}: line {line.name} is unrated and carries no base-case flow, so "
                f"rating_margin alone rates it {rating:g} MW; set default_rating_mw (MW) as a floor, "
                "or rate the line in the file"
            )
        lines[position] = dataclasses.replace(line, thermal_limit_mw=rating)
    note = f"{len(unrated)} {what} rated {rule.describe()}"
    return dataclasses.replace(network, lines=tuple(lines), notes=network.notes + (note,))
