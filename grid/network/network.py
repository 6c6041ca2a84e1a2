"""Network data: buses, lines, generators, a reference bus and a slack model.

One data object serves every formulation (robust, CVaR, scenario LP). The dataclasses validate on
construction so that every later stage (shift factors, the capacity LPs) can assume a connected
network with positive limits and can name buses and lines in messages.

Supply: new load must be generated somewhere. With ``slack = "reference"`` the reference bus
picks up every change of net withdrawal (up to ``import_limit_mw``, or the headroom of the
generators at that bus); with ``slack = "distributed"`` the in-service generators pick it up in
proportion to their headroom Pmax - Pg (participation factors), so the supply limit is their total
headroom. A network without generators and without an import limit has no supply limit.
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


def _finite(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


# What a case file may give at one bus, line or generator (MW): the config's ceiling
# (mechanisms.settings.MAX_MW, a terawatt); larger sums overflow the flows and the capacity study.
MAX_MW = 1e6


@dataclass(frozen=True)
class Bus:
    """A bus.

    ``withdrawal_limit_mw`` is w-bar of (1b) (e.g. a transformer rating), inf = no limit.
    ``base_load_mw`` is the case's base-case load (MATPOWER Pd), the centre of the default
    background-load scenarios. ``coordinates`` (x, y) place the bus on plots when a case has them.
    """

    number: int
    withdrawal_limit_mw: float = math.inf
    base_load_mw: float = 0.0
    coordinates: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        _as_int(self.number, "Bus.number")
        limit = self.withdrawal_limit_mw
        if not isinstance(limit, numbers.Real) or math.isnan(limit) or limit <= 0:
            raise GridError(
                f"bus {self.number}: withdrawal_limit_mw must be > 0 MW (got {limit!r}); "
                "use math.inf for no limit"
            )
        if not _finite(self.base_load_mw):
            raise GridError(f"bus {self.number}: base_load_mw must be a finite number of MW, got {self.base_load_mw!r}")
        if self.coordinates is not None and (
            len(self.coordinates) != 2 or not all(_finite(v) for v in self.coordinates)
        ):
            raise GridError(f"bus {self.number}: coordinates must be two finite numbers (x, y), got {self.coordinates!r}")


@dataclass(frozen=True)
class Generator:
    """An in-service generator: committed output Pg and maximum output Pmax (MW).

    Its headroom max(Pmax - Pg, 0) is what it can add for new load; under a distributed slack it
    is also its participation factor's weight.
    """

    bus: int
    output_mw: float
    max_mw: float

    def __post_init__(self) -> None:
        _as_int(self.bus, "Generator.bus")
        for name in ("output_mw", "max_mw"):
            if not _finite(getattr(self, name)):
                raise GridError(f"generator at bus {self.bus}: {name} must be a finite number of MW, got {getattr(self, name)!r}")

    @property
    def headroom_mw(self) -> float:
        return max(self.max_mw - self.output_mw, 0.0)


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
    # The flow (MW, from_bus -> to_bus) that the line's phase shifter pushes at flat angles:
    # -baseMVA x shift (rad) / (x tap), MATPOWER makeBdc's Pfinj (docs/models/capacity.md#phase-shifters).
    shift_flow_mw: float = 0.0
    # The rating after an outage elsewhere (MATPOWER RATE_B, else RATE_C); None: the normal rating
    # times the study's emergency factor (docs/models/capacity.md#n-1).
    emergency_limit_mw: float | None = None

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
        emergency = self.emergency_limit_mw
        if emergency is not None and (not isinstance(emergency, numbers.Real) or math.isnan(emergency) or emergency <= 0):
            raise GridError(f"line {self.name}: emergency_limit_mw must be > 0 MW or None (got {emergency!r})")
        shift = self.shift_flow_mw
        if not isinstance(shift, numbers.Real) or not math.isfinite(shift):
            raise GridError(f"line {self.name}: shift_flow_mw must be a finite number of MW (got {shift!r})")


SLACK_MODELS = ("reference", "distributed")


@dataclass(frozen=True)
class Network:
    """A connected transmission/distribution network with one reference (angle) bus.

    ``bus_numbers`` fixes the bus order used by every matrix and array in grid/. ``slack`` says
    who supplies a change of net withdrawal (see the module doc); ``notes`` records what an
    importer assumed (e.g. default ratings), for reports.
    """

    name: str
    buses: tuple[Bus, ...]
    lines: tuple[Line, ...]
    reference_bus: int
    generators: tuple[Generator, ...] = ()
    slack: str = "reference"
    import_limit_mw: float = math.inf
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Accept lists from callers but store tuples so the network stays hashable and immutable.
        object.__setattr__(self, "buses", tuple(self.buses))
        object.__setattr__(self, "lines", tuple(self.lines))
        object.__setattr__(self, "generators", tuple(self.generators))
        object.__setattr__(self, "notes", tuple(self.notes))
        # In this order, so that a network with several faults is always refused for the same one.
        index = self._checked_buses()
        self._check_lines(index)
        self._check_reference(index)
        self._check_generators(index)
        self._check_supply()

    def _checked_buses(self) -> dict[int, int]:
        """Position by bus number, after checking that the buses are Buses with unique numbers."""
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
        return index

    def _check_lines(self, index: dict[int, int]) -> None:
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

    def _check_reference(self, index: dict[int, int]) -> None:
        """The reference bus exists and reaches every bus."""
        _as_int(self.reference_bus, f"network {self.name!r}: reference_bus")
        if self.reference_bus not in index:
            raise GridError(
                f"network {self.name!r}: reference bus {self.reference_bus} is not a bus; "
                f"choose one of {self._bus_list()}"
            )
        unreachable = self._unreachable_buses()
        if unreachable:
            others = f" and {len(unreachable) - 1} other bus{'es' if len(unreachable) > 2 else ''}" if len(unreachable) > 1 else ""
            raise GridError(
                f"network {self.name!r} is not connected: bus {unreachable[0]}{others} form an island that cannot "
                f"be reached from reference bus {self.reference_bus}; connect the island or remove its buses"
            )

    def _check_generators(self, index: dict[int, int]) -> None:
        for position, generator in enumerate(self.generators):
            if not isinstance(generator, Generator):
                raise GridError(f"network {self.name!r}: generators[{position}] is not a Generator ({generator!r})")
            if generator.bus not in index:
                raise GridError(
                    f"network {self.name!r}: a generator names unknown bus {generator.bus}; known buses are {self._bus_list()}"
                )

    def _check_supply(self) -> None:
        """The slack model, and the import limit it may use."""
        if self.slack not in SLACK_MODELS:
            raise GridError(
                f"network {self.name!r}: unknown slack model {self.slack!r}; choose one of {', '.join(SLACK_MODELS)}"
            )
        if self.slack == "distributed" and not any(g.headroom_mw > 0 for g in self.generators):
            raise GridError(
                f"network {self.name!r}: a distributed slack needs generators with headroom (Pmax > Pg); "
                "use slack = 'reference' or add generators"
            )
        limit = self.import_limit_mw
        if not isinstance(limit, numbers.Real) or math.isnan(limit) or limit < 0:
            raise GridError(
                f"network {self.name!r}: import_limit_mw must be >= 0 MW (got {limit!r}); use math.inf for no limit"
            )

    @cached_property
    def _index(self) -> dict[int, int]:
        return {bus.number: position for position, bus in enumerate(self.buses)}

    def _bus_list(self) -> str:
        numbers = self.bus_numbers
        shown = ", ".join(str(n) for n in numbers[:20])
        return shown + (f", ... ({len(numbers)} buses)" if len(numbers) > 20 else "")

    def _unreachable_buses(self) -> list[int]:
        """The buses of the first island found (in bus order), or [] if the network is connected."""
        neighbours = self.adjacency

        def component(start: int) -> set[int]:
            reached = {start}
            queue = deque([start])
            while queue:
                bus = queue.popleft()
                for other, _ in neighbours[bus]:
                    if other not in reached:
                        reached.add(other)
                        queue.append(other)
            return reached

        main = component(self.reference_bus)
        first = next((bus.number for bus in self.buses if bus.number not in main), None)
        if first is None:
            return []
        island = component(first)
        return [bus.number for bus in self.buses if bus.number in island]

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

    @property
    def load_buses(self) -> tuple[int, ...]:
        """Buses with a positive base load, in bus order: the default data-center candidates."""
        return tuple(bus.number for bus in self.buses if bus.base_load_mw > 0)

    def committed_generation_mw(self) -> dict[int, float]:
        """Committed generator output Pg summed per bus (buses without generators are absent)."""
        totals: dict[int, float] = {}
        for generator in self.generators:
            totals[generator.bus] = totals.get(generator.bus, 0.0) + generator.output_mw
        return totals

    def participation(self) -> dict[int, float]:
        """Bus -> share of a change in net withdrawal that the bus's generation picks up (sums to 1).

        Reference slack: the reference bus takes it all. Distributed slack: generators share it in
        proportion to their headroom Pmax - Pg.
        """
        if self.slack == "reference":
            return {self.reference_bus: 1.0}
        headroom: dict[int, float] = {}
        for generator in self.generators:
            if generator.headroom_mw > 0:
                headroom[generator.bus] = headroom.get(generator.bus, 0.0) + generator.headroom_mw
        total = math.fsum(headroom.values())
        return {bus: value / total for bus, value in headroom.items()}

    def supply_limit_mw(self) -> float:
        """How much the net withdrawal may grow before generation (or the import) runs out.

        Distributed slack: the total headroom (with headroom-proportional participation every
        generator reaches Pmax together). Reference slack: ``import_limit_mw`` when stated, else the
        headroom of the generators at the reference bus when it has any, else inf (an outer grid).
        """
        if self.slack == "distributed":
            return math.fsum(g.headroom_mw for g in self.generators)
        if math.isfinite(self.import_limit_mw):
            return float(self.import_limit_mw)
        at_reference = [g for g in self.generators if g.bus == self.reference_bus]
        if at_reference:
            return math.fsum(g.headroom_mw for g in at_reference)
        # No unit at the reference bus: it is the connection to an outer grid (a feeder's
        # substation), bounded only by a stated import limit.
        return math.inf
