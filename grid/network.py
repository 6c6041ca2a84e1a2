"""Network data: buses with withdrawal limits, lines with thermal limits, a reference bus.

The dataclasses validate on construction so that every later stage (shift factors, the capacity
LPs) can assume a connected network with positive limits and can name buses and lines in messages.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections import deque
from dataclasses import dataclass
from functools import cached_property

from grid.errors import GridError


def _as_int(value: object, what: str) -> int:
    """Bus numbers must be integers (numpy integers allowed); bools and floats are data errors."""
    if isinstance(value, bool):
        raise GridError(f"{what} must be an integer bus number, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise GridError(f"{what} must be an integer bus number, got {value!r}") from None


@dataclass(frozen=True)
class Bus:
    """A bus; ``withdrawal_limit_mw`` is w-bar of (1b) (e.g. a transformer rating), inf = no limit."""

    number: int
    withdrawal_limit_mw: float = math.inf

    def __post_init__(self) -> None:
        _as_int(self.number, "Bus.number")
        limit = self.withdrawal_limit_mw
        if not isinstance(limit, numbers.Real) or math.isnan(limit) or limit <= 0:
            raise GridError(
                f"bus {self.number}: withdrawal_limit_mw must be > 0 MW (got {limit!r}); "
                "use math.inf for no limit"
            )


@dataclass(frozen=True)
class Line:
    """A line, oriented from_bus -> to_bus: positive flow runs in that direction.

    ``reactance_pu`` is needed only for meshed networks (the PTDF); a radial network's shift
    factors are its path matrix, which is independent of reactances.
    """

    name: str
    from_bus: int
    to_bus: int
    thermal_limit_mw: float
    reactance_pu: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise GridError(f"line {self.from_bus}-{self.to_bus}: name must be a non-empty string")
        _as_int(self.from_bus, f"line {self.name}: from_bus")
        _as_int(self.to_bus, f"line {self.name}: to_bus")
        if self.from_bus == self.to_bus:
            raise GridError(
                f"line {self.name}: from_bus and to_bus are both {self.from_bus} (self-loop); "
                "connect two different buses"
            )
        limit = self.thermal_limit_mw
        if not isinstance(limit, numbers.Real) or math.isnan(limit) or limit <= 0:
            raise GridError(
                f"line {self.name}: thermal_limit_mw must be > 0 MW (got {limit!r}); "
                "use math.inf for no limit"
            )
        x = self.reactance_pu
        if x is not None and (not isinstance(x, numbers.Real) or not math.isfinite(x) or x == 0):
            raise GridError(
                f"line {self.name}: reactance_pu must be a finite non-zero number or None (got {x!r})"
            )


@dataclass(frozen=True)
class Network:
    """A connected transmission/distribution network with one reference (slack) bus.

    ``bus_numbers`` fixes the bus order used by every matrix and array in grid/.
    """

    name: str
    buses: tuple[Bus, ...]
    lines: tuple[Line, ...]
    reference_bus: int

    def __post_init__(self) -> None:
        # Accept lists from callers but store tuples so the network stays hashable and immutable.
        object.__setattr__(self, "buses", tuple(self.buses))
        object.__setattr__(self, "lines", tuple(self.lines))
        if not self.buses:
            raise GridError(f"network {self.name!r} has no buses; give at least one Bus")
        index: dict[int, int] = {}
        for position, bus in enumerate(self.buses):
            if not isinstance(bus, Bus):
                raise GridError(f"network {self.name!r}: buses[{position}] is not a Bus ({bus!r})")
            if bus.number in index:
                raise GridError(
                    f"network {self.name!r}: bus {bus.number} appears twice; bus numbers must be unique"
                )
            index[bus.number] = position

        names: set[str] = set()
        for position, line in enumerate(self.lines):
            if not isinstance(line, Line):
                raise GridError(f"network {self.name!r}: lines[{position}] is not a Line ({line!r})")
            if line.name in names:
                raise GridError(
                    f"network {self.name!r}: line name {line.name!r} appears twice; line names must be unique"
                )
            names.add(line.name)
            for end in (line.from_bus, line.to_bus):
                if end not in index:
                    raise GridError(
                        f"network {self.name!r}: line {line.name} names unknown bus {end}; "
                        f"known buses are {self._bus_list()}"
                    )

        _as_int(self.reference_bus, f"network {self.name!r}: reference_bus")
        if self.reference_bus not in index:
            raise GridError(
                f"network {self.name!r}: reference bus {self.reference_bus} is not a bus; "
                f"choose one of {self._bus_list()}"
            )
        unreachable = self._first_unreachable_bus()
        if unreachable is not None:
            raise GridError(
                f"network {self.name!r} is not connected: bus {unreachable} cannot be reached from "
                f"reference bus {self.reference_bus}; add a line to it or remove it"
            )

    @cached_property
    def _index(self) -> dict[int, int]:
        return {bus.number: position for position, bus in enumerate(self.buses)}

    def _bus_list(self) -> str:
        numbers = self.bus_numbers
        shown = ", ".join(str(n) for n in numbers[:20])
        return shown + (f", ... ({len(numbers)} buses)" if len(numbers) > 20 else "")

    def _first_unreachable_bus(self) -> int | None:
        reached = {self.reference_bus}
        queue = deque([self.reference_bus])
        neighbours = self.adjacency
        while queue:
            bus = queue.popleft()
            for other, _ in neighbours[bus]:
                if other not in reached:
                    reached.add(other)
                    queue.append(other)
        for bus in self.buses:
            if bus.number not in reached:
                return bus.number
        return None

    @cached_property
    def adjacency(self) -> dict[int, tuple[tuple[int, int], ...]]:
        """bus -> ((neighbour bus, line position), ...), in line order."""
        pairs: dict[int, list[tuple[int, int]]] = {bus.number: [] for bus in self.buses}
        for position, line in enumerate(self.lines):
            pairs[line.from_bus].append((line.to_bus, position))
            pairs[line.to_bus].append((line.from_bus, position))
        return {bus: tuple(items) for bus, items in pairs.items()}

    @property
    def bus_numbers(self) -> tuple[int, ...]:
        """Bus numbers in the given order; every array in grid/ uses this column order."""
        return self._bus_numbers

    @cached_property
    def _bus_numbers(self) -> tuple[int, ...]:
        return tuple(bus.number for bus in self.buses)

    @property
    def line_names(self) -> tuple[str, ...]:
        """Line names in the given order; rows of the shift-factor matrix follow it."""
        return tuple(line.name for line in self.lines)

    def bus_index(self, bus: int) -> int:
        """Position of ``bus`` in ``bus_numbers``."""
        try:
            return self._index[bus]
        except (KeyError, TypeError):
            raise GridError(
                f"unknown bus {bus}; network {self.name!r} has buses {self._bus_list()}"
            ) from None

    def has_bus(self, bus: int) -> bool:
        try:
            return bus in self._index
        except TypeError:
            return False

    def bus(self, number: int) -> Bus:
        """The Bus with this number (GridError if unknown)."""
        return self.buses[self.bus_index(number)]

    def is_radial(self) -> bool:
        """A connected network is a tree exactly when it has one line fewer than buses."""
        return len(self.lines) == len(self.buses) - 1
