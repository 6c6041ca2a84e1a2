"""The AC model of a MATPOWER case (or a PSS/E RAW case, read into MATPOWER's tables by
grid/network/psse.py): a pandapower net built from the full case data, once per case and process.

The DC network (grid/network) keeps what a DC power flow needs; an AC power flow also needs
resistances, charging, taps and shifts, reactive loads, voltage set points and reactive limits, so
the .m file is read again in full here (matpowercaseframes) and turned into a pandapower net by
pandapower's own converter. What we change before and after the converter, and why:

- Only what MATPOWER would solve: connected buses (BUS_TYPE != 4), in-service branches between
  them, in-service generators at them; the same sets the DC network keeps, in the same order, so
  that lines, buses and generators line up with it one to one.
- Out-of-service generators are dropped: the converter makes the first generator of a PV bus its
  voltage-controlling unit even when that one is off, which turns the bus into a PQ bus.
- A transformer whose from-bus is its low-voltage side is turned around (docs/models/ac-check.md#eq-a-1b):
  the converter puts every tap on the high-voltage side, while MATPOWER's tap is at the from-bus.
- BASE_KV <= 0 (case14 gives none) is read as 1 kV: per-unit values do not depend on it.
- PD and QD are left to the check (one load per bus, set per state); so are the outputs PG.
- A bus with several units: the converter keeps one as the voltage-controlling unit and makes the
  others fixed-Q units (QG). We give those Q = 0 and their reactive limits to the controlling
  unit, so the bus has the reactive range of all its units, as in MATPOWER.
- Ratings (MVA) are the case's RATE_A (or RATE_B, RATE_C); a branch without one gets the rating
  that the DC network's default-rating rule gave it, so DC and AC loadings share a denominator.
"""

from __future__ import annotations

import copy
import functools
import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Hashable, Iterator

import numpy as np

from grid.errors import GridError
from grid.network.cases import CaseOptions, case_file, load_case
from grid.network.network import Network

RATINGS = ("rate_a", "rate_b", "rate_c")
# MATPOWER's 1-based column positions, as 0-based indices into the tables we build.
_BUS_COLUMNS = ("BUS_I", "BUS_TYPE", "PD", "QD", "GS", "BS", "BUS_AREA", "VM", "VA", "BASE_KV", "ZONE", "VMAX", "VMIN")
_GEN_COLUMNS = ("GEN_BUS", "PG", "QG", "QMAX", "QMIN", "VG", "MBASE", "GEN_STATUS", "PMAX", "PMIN")
_BRANCH_COLUMNS = ("F_BUS", "T_BUS", "BR_R", "BR_X", "BR_B", "RATE_A", "RATE_B", "RATE_C", "TAP", "SHIFT",
                   "BR_STATUS", "ANGMIN", "ANGMAX")
# What a column the file leaves out means (MATPOWER's defaults; the bus limits are not used).
_DEFAULTS = {"VMAX": 1.1, "VMIN": 0.9, "PMIN": 0.0, "ANGMIN": -360.0, "ANGMAX": 360.0, "BUS_AREA": 1.0, "ZONE": 1.0}
_F_BUS, _T_BUS, _BR_R, _BR_X, _BR_B, _TAP, _SHIFT = 0, 1, 2, 3, 4, 8, 9
_BUS_I, _BUS_TYPE, _PD, _QD, _BASE_KV = 0, 1, 2, 3, 9
_GEN_BUS, _PG, _QG, _GEN_STATUS = 0, 1, 2, 7
# Where the net keeps each branch kind's end results: (from end P, Q, to end P, Q) in its frame.
_RESULT_COLUMNS = {
    "line": ("res_line", ("p_from_mw", "q_from_mvar", "p_to_mw", "q_to_mvar")),
    "trafo": ("res_trafo", ("p_hv_mw", "q_hv_mvar", "p_lv_mw", "q_lv_mvar")),
    "impedance": ("res_impedance", ("p_from_mw", "q_from_mvar", "p_to_mw", "q_to_mvar")),
}


@dataclass(frozen=True)
class BranchResults:
    """Where one kind of branch (line, trafo, impedance) finds its results in the net."""

    table: str                # "res_line", "res_trafo" or "res_impedance"
    columns: tuple[str, ...]  # from-end P, Q and to-end P, Q in the net's orientation
    positions: np.ndarray     # positions in AcCase.lines
    elements: np.ndarray      # the net's element indices, one per position
    turned: np.ndarray        # True where the net's from-end is the case's to-end


@dataclass(frozen=True)
class AcCase:
    """A case's AC model, ready for states; ``net`` is a template: copy it before running it.

    Buses, lines and generators follow the DC network's order. The net has one load per bus
    (``load_index``), zero until a state sets it; units are scheduled through ``unit_table`` and
    ``unit_index`` ("ext_grid" for the reference unit, which balances and is not scheduled).
    """

    name: str
    network: Network
    net: Any                      # pandapowerNet
    base_mva: float
    buses: np.ndarray             # bus numbers
    pd_mw: np.ndarray             # the case's PD and QD per bus
    qd_mvar: np.ndarray
    load_index: np.ndarray        # the net's load per bus
    lines: tuple[str, ...]
    from_bus: np.ndarray
    to_bus: np.ndarray
    ratings_mva: dict[str, np.ndarray]
    branches: tuple[BranchResults, ...]
    charging_pu: np.ndarray       # (lines, 2): transformer charging moved to the from- and to-bus
    unit_pg_mw: np.ndarray        # per in-service unit: where it starts
    unit_share: np.ndarray        # share of a change in total load (the DC model's alpha, per unit)
    unit_table: tuple[str, ...]
    unit_index: np.ndarray

    def fresh_net(self) -> Any:
        """A copy of the template net, for one check."""
        return copy.deepcopy(self.net)

    @functools.cached_property
    def _work_nets(self) -> dict[Any, Any]:
        return {}

    def work_net(self, settings: Hashable) -> Any:
        """One copy of the template per solver settings that the checks of this case run on in
        turn: a run sets every load and unit, and a check starts from scratch (grid/ac/check.py), so
        nothing of an earlier check is left; pandapower's recycled runs keep the settings of the first."""
        if settings not in self._work_nets:
            self._work_nets[settings] = copy.deepcopy(self.net)
        return self._work_nets[settings]


@contextmanager
def quiet_pandapower() -> Iterator[None]:
    """pandapower logs conversion notes (taps between equal voltages, unrated branches) and numpy
    warns on the empty tables it divides; the check reports what matters in its own words."""
    logger = logging.getLogger("pandapower")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def ac_case(case: str | Path, options: CaseOptions | None = None, base_dir: Path | None = None) -> AcCase:
    """The AC model of a case file (a built-in name, a .m or a .raw path, relative to ``base_dir`` if
    given, as load_case resolves it), cached per file and options."""
    options = options or CaseOptions()
    path = case_file(case, base_dir)
    stat = path.stat()
    return _cached_case(str(case), None if base_dir is None else str(base_dir), str(path.resolve()), stat.st_mtime_ns,
                        stat.st_size, options.default_rating_mw, options.rating_margin, options.slack)


@lru_cache(maxsize=8)
def _cached_case(case: str, base_dir: str | None, path: str, mtime_ns: int, size: int,
                 default_rating_mw: float | None, rating_margin: float | None, slack: str | None) -> AcCase:
    del mtime_ns, size  # in the key only: an edited file is read again
    options = CaseOptions(default_rating_mw=default_rating_mw, rating_margin=rating_margin, slack=slack)
    network = load_case(case, options, None if base_dir is None else Path(base_dir))
    return build_case(network, _read_tables(Path(path), case), case)


def _case_frames(path: Path, label: str) -> Any:
    """The case's tables as DataFrames with MATPOWER's column names (bus, gen, branch, baseMVA): a
    .m file through matpowercaseframes, a PSS/E .raw file through grid/network/psse.py."""
    if path.suffix.lower() == ".raw":
        from types import SimpleNamespace

        from grid.network.psse import read_raw_tables

        raw = read_raw_tables(path, label)
        return SimpleNamespace(baseMVA=raw.base_mva, bus=raw.bus, gen=raw.gen, branch=raw.branch)
    from matpowercaseframes import CaseFrames

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return CaseFrames(str(path))
    except Exception as exc:  # load_case parsed the same file, so this is unexpected
        raise GridError(f"case {label}: cannot read the full MATPOWER tables ({type(exc).__name__}: {exc})") from None


def _read_tables(path: Path, label: str) -> dict[str, Any]:
    """The case's bus, gen and branch tables with every MATPOWER column, as float arrays."""
    frames = _case_frames(path, label)
    tables: dict[str, Any] = {"baseMVA": float(frames.baseMVA)}
    for table, columns in (("bus", _BUS_COLUMNS), ("gen", _GEN_COLUMNS), ("branch", _BRANCH_COLUMNS)):
        frame = getattr(frames, table)
        values = np.empty((len(frame), len(columns)))
        for position, column in enumerate(columns):
            if column in frame.columns:
                values[:, position] = frame[column].to_numpy(dtype=float)
            elif column in _DEFAULTS:
                values[:, position] = _DEFAULTS[column]
            else:
                raise GridError(f"case {label}: mpc.{table} has no {column} column; the AC check needs MATPOWER's "
                                f"full {table} table (columns {columns[0]} ... {columns[-1]})")
        tables[table] = values
    return tables


def _turn_around(branch: np.ndarray) -> np.ndarray:
    """The same branch seen from its other end (docs/models/ac-check.md#eq-a-1b): tap 1/t,
    impedance z t^2, charging b / t^2 and shift -phi give the same bus admittances."""
    turned = branch.copy()
    tap = branch[:, _TAP]
    turned[:, _F_BUS], turned[:, _T_BUS] = branch[:, _T_BUS], branch[:, _F_BUS]
    turned[:, _TAP] = 1.0 / tap
    turned[:, _BR_R] = branch[:, _BR_R] * tap ** 2
    turned[:, _BR_X] = branch[:, _BR_X] * tap ** 2
    turned[:, _BR_B] = branch[:, _BR_B] / tap ** 2
    turned[:, _SHIFT] = -branch[:, _SHIFT]
    return turned


@dataclass(frozen=True)
class _Prepared:
    """The ppc for the converter and how its rows map back to the case."""

    ppc: dict[str, Any]
    gen_rows: np.ndarray       # kept unit rows of mpc.gen
    branch_rows: np.ndarray    # kept branch rows of mpc.branch
    turned: np.ndarray         # per kept branch: written from its other end
    charging: np.ndarray       # per kept branch: (from-end, to-end) susceptance moved to bus shunts, p.u.


def _case_ppc(tables: dict[str, Any]) -> _Prepared:
    """The ppc the converter gets: what MATPOWER would solve, no loads, transformer charging on
    the buses, low-side taps turned around."""
    bus, gen, branch = tables["bus"], tables["gen"], tables["branch"]
    bus = bus[bus[:, _BUS_TYPE] != 4].copy()
    bus[:, [_PD, _QD]] = 0.0
    bus[bus[:, _BASE_KV] <= 0, _BASE_KV] = 1.0
    known = bus[:, _BUS_I].astype(np.int64)
    gen_rows = np.flatnonzero((gen[:, _GEN_STATUS] > 0) & np.isin(gen[:, _GEN_BUS].astype(np.int64), known))
    ends = np.isin(branch[:, _F_BUS].astype(np.int64), known) & np.isin(branch[:, _T_BUS].astype(np.int64), known)
    branch_rows = np.flatnonzero((branch[:, 10] > 0) & ends)
    branch = branch[branch_rows].copy()
    position = {int(b): i for i, b in enumerate(known.tolist())}
    f = np.array([position[int(b)] for b in branch[:, _F_BUS]], dtype=np.int64)
    t = np.array([position[int(b)] for b in branch[:, _T_BUS]], dtype=np.int64)
    # The converter's transformer test: a tap other than 0 and 1, or a shift.
    transformer = ((branch[:, _TAP] != 0) & (branch[:, _TAP] != 1)) | (branch[:, _SHIFT] != 0)
    charging = _charging_to_shunts(bus, branch, transformer, f, t, tables["baseMVA"])
    turned = transformer & (bus[t, _BASE_KV] > bus[f, _BASE_KV])
    tapped = branch[turned]
    tapped[tapped[:, _TAP] == 0, _TAP] = 1.0  # a pure phase shifter: tap 1
    branch[turned] = _turn_around(tapped)
    ppc = {"version": "2", "baseMVA": tables["baseMVA"], "bus": bus, "gen": gen[gen_rows].copy(), "branch": branch}
    return _Prepared(ppc, gen_rows, branch_rows, turned, charging)


def _charging_to_shunts(bus: np.ndarray, branch: np.ndarray, transformer: np.ndarray, f: np.ndarray,
                        t: np.ndarray, base_mva: float) -> np.ndarray:
    """Move a transformer's charging b to shunts at its buses: b / 2t^2 at the from-bus, b / 2 at
    the to-bus, the same admittances (docs/models/ac-check.md#eq-a-1c). The converter would make it
    a magnetising admittance of the sign it assumes, which flips a capacitive b."""
    tap = np.where(branch[:, _TAP] == 0, 1.0, branch[:, _TAP])
    b = np.where(transformer, branch[:, _BR_B], 0.0)
    charging = np.column_stack([b / (2 * tap ** 2), b / 2])
    np.add.at(bus[:, 5], f, charging[:, 0] * base_mva)  # BS, Mvar at 1 p.u.
    np.add.at(bus[:, 5], t, charging[:, 1] * base_mva)
    branch[transformer, _BR_B] = 0.0
    return charging


def build_case(network: Network, tables: dict[str, Any], name: str) -> AcCase:
    """The AC model from the DC network (order, ratings, alpha) and the full tables."""
    import pandapower as pp
    from pandapower.converter.pypower import from_ppc

    prepared = _case_ppc(tables)
    _check_alignment(network, prepared.ppc, name)
    with quiet_pandapower():
        net = from_ppc(copy.deepcopy(prepared.ppc), f_hz=60, validate_conversion=False, check_costs=False)
    if net.ext_grid.empty:
        raise GridError(f"case {name}: no in-service generator at the reference bus {network.reference_bus}; "
                        "an AC power flow needs one there to balance the losses")
    buses = np.array(network.bus_numbers, dtype=np.int64)
    load_index = np.asarray(pp.create_loads(net, buses, p_mw=0.0, q_mvar=0.0), dtype=np.int64)
    bus_rows = {int(b): i for i, b in enumerate(tables["bus"][:, _BUS_I].astype(np.int64))}
    case_rows = [bus_rows[int(b)] for b in buses]
    unit_table, unit_index = _units(net)
    _pool_reactive_limits(net, unit_table, unit_index)
    return AcCase(
        name=name, network=network, net=net, base_mva=float(tables["baseMVA"]), buses=buses,
        pd_mw=tables["bus"][case_rows, _PD].copy(), qd_mvar=tables["bus"][case_rows, _QD].copy(),
        load_index=load_index, lines=tuple(line.name for line in network.lines),
        from_bus=np.array([line.from_bus for line in network.lines], dtype=np.int64),
        to_bus=np.array([line.to_bus for line in network.lines], dtype=np.int64),
        ratings_mva=_ratings(network, tables["branch"][prepared.branch_rows]),
        branches=_branch_results(net, prepared.turned), charging_pu=prepared.charging,
        unit_pg_mw=_starting_outputs(network, tables["gen"][prepared.gen_rows, _PG]), unit_share=_unit_shares(network),
        unit_table=unit_table, unit_index=unit_index,
    )


def _check_alignment(network: Network, ppc: dict[str, Any], name: str) -> None:
    """The DC network kept the same branches and units in the same order (a bug if not)."""
    branch = ppc["branch"]
    ends = [(line.from_bus, line.to_bus) for line in network.lines]
    ours = [tuple(sorted(pair)) for pair in zip(branch[:, _F_BUS].astype(int).tolist(), branch[:, _T_BUS].astype(int).tolist())]
    units = ppc["gen"][:, _GEN_BUS].astype(int).tolist()
    if [tuple(sorted(pair)) for pair in ends] != ours or [g.bus for g in network.generators] != units:
        raise GridError(f"case {name}: the AC model and the DC network disagree on the branches or generators kept; "
                        "this is a bug in grid/ac/case_model.py")


def _ratings(network: Network, branch: np.ndarray) -> dict[str, np.ndarray]:
    """MVA ratings per line for each of RATE_A, RATE_B, RATE_C; unrated: the DC network's rating."""
    dc = np.array([line.thermal_limit_mw for line in network.lines])
    return {key: np.where(branch[:, position] > 0, branch[:, position], dc)
            for position, key in zip((5, 6, 7), RATINGS)}


def _branch_results(net: Any, turned: np.ndarray) -> tuple[BranchResults, ...]:
    lookup = net._from_ppc_lookups["branch"]
    kinds = lookup["element_type"].to_numpy()
    elements = lookup["element"].to_numpy()
    found = []
    for kind, (table, columns) in _RESULT_COLUMNS.items():
        positions = np.flatnonzero(kinds == kind)
        if positions.size:
            found.append(BranchResults(table, columns, positions, elements[positions].astype(np.int64), turned[positions]))
    return tuple(found)


def _units(net: Any) -> tuple[tuple[str, ...], np.ndarray]:
    lookup = net._from_ppc_lookups["gen"]
    return tuple(lookup["element_type"].tolist()), lookup["element"].to_numpy().astype(np.int64)


def _starting_outputs(network: Network, case_pg: np.ndarray) -> np.ndarray:
    """Where the units start (docs/models/ac-check.md#eq-a-8): at the case's PG, which carries the
    AC losses, when the DC network only scaled it to the base load; at the DC network's outputs
    when it shared a base-load gap that is not losses among them (grid/network/matpower.py), so
    that the AC check solves the operating point the study assumed."""
    dc = np.array([g.output_mw for g in network.generators])
    total = float(case_pg.sum())
    scaled = total != 0 and np.allclose(dc, case_pg * (dc.sum() / total), rtol=1e-9, atol=1e-9)
    return case_pg.copy() if scaled else dc


def _unit_shares(network: Network) -> np.ndarray:
    """Each unit's share of a change in total load: the DC model's alpha, split over the units of a
    bus by headroom (docs/models/ac-check.md#eq-a-8). Reference slack: no unit is scheduled."""
    shares = np.zeros(len(network.generators))
    if network.slack != "distributed":
        return shares
    headroom = np.array([g.headroom_mw for g in network.generators])
    total = headroom.sum()
    return headroom / total if total > 0 else shares


def _pool_reactive_limits(net: Any, unit_table: tuple[str, ...], unit_index: np.ndarray) -> None:
    """Fixed-Q units at a voltage-controlled bus give their reactive range to its controlling unit."""
    controlling = {int(net.gen.at[i, "bus"]): i for i in net.gen.index}
    at_reference = set(net.ext_grid.bus.astype(int).tolist())
    for table, index in zip(unit_table, unit_index.tolist()):
        if table != "sgen":
            continue
        bus = int(net.sgen.at[index, "bus"])
        if bus in controlling:
            main = controlling[bus]
            for column in ("max_q_mvar", "min_q_mvar"):
                net.gen.at[main, column] = net.gen.at[main, column] + net.sgen.at[index, column]
        if bus in controlling or bus in at_reference:
            net.sgen.at[index, "q_mvar"] = 0.0
