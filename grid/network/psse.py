"""PSS/E RAW case files (v33 and v35) as MATPOWER tables, read with pypowsybl.

The reader is pypowsybl (PowSyBl, LF Energy), chosen by test among the pip readers
(docs/reference/cases.md#pss-e-raw-files): it reads real v33 and v35 files, including
PSS/E's own v35 layout, three-winding transformers and switched shunts. It builds a network of
physical quantities (ohms, siemens, kV, amperes); this module turns it back into MATPOWER's
bus, gen and branch tables (per unit on the file's SBASE, MW, Mvar, MVA), the form that both
the DC network (grid/network/matpower.py) and the AC model (grid/ac/case_model.py) read, so a
RAW case goes through the same checks, status filters and conventions as a .m file:

- buses: numbers as in the file; the swing bus (IDE = 3) is the reference; a bus with an
  in-service generator is type 2; a bus no in-service element reaches is type 4 (dropped).
  PD, QD are the sums of the in-service loads; GS, BS those of the fixed shunts, of the
  switched shunts at their present step and of the branch end shunts beyond charging.
- lines: R, X, B in per unit on the bus base voltage; RATE_A from the normal rating (RATE1 /
  RATEA: the reader keeps only that one, as a current limit, converted back at the nominal
  voltage). The reader does not keep RATE2/RATE3 (RATEB/RATEC), so RATE_B = RATE_C = 0 and
  N-1 uses the study's emergency factor on RATE_A.
- two-winding transformers: TAP = the off-nominal ratio at the from-bus (WINDV1 / WINDV2 in
  per unit of the bus base voltages), SHIFT = ANG1, R and X referred to the to-bus side, the
  magnetising admittance a shunt at the from-bus; three-winding ones: three branches to a star
  bus numbered above the file's buses.
- generators: PG, QG, QT/QB, VS, PT/PB, MBASE and the status as given.
- not read: areas and zones (BUS_AREA = ZONE = 1), owners, RATE2-RATE12, DC lines and FACTS
  devices (counted in the notes), the voltage limits only where the file gives none (1.1/0.9).
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from grid.errors import GridError
from grid.network.matpower import MatpowerData, assemble_network, matpower_tables
from grid.network.network import Network
from grid.network.psse_check import RawOutline, check_raw
from grid.network.ratings import RatingRule

BUS_COLUMNS = ("BUS_I", "BUS_TYPE", "PD", "QD", "GS", "BS", "BUS_AREA", "VM", "VA", "BASE_KV", "ZONE", "VMAX", "VMIN")
GEN_COLUMNS = ("GEN_BUS", "PG", "QG", "QMAX", "QMIN", "VG", "MBASE", "GEN_STATUS", "PMAX", "PMIN")
BRANCH_COLUMNS = ("F_BUS", "T_BUS", "BR_R", "BR_X", "BR_B", "RATE_A", "RATE_B", "RATE_C", "TAP", "SHIFT",
                  "BR_STATUS", "ANGMIN", "ANGMAX")
_SQRT3 = math.sqrt(3.0)
# What the importer leaves out (counted in the notes): the reader's getter and the words.
_IGNORED = (("get_hvdc_lines", "DC lines"), ("get_static_var_compensators", "static var compensators"),
            ("get_batteries", "batteries"), ("get_boundary_lines", "boundary lines"))


@dataclass(frozen=True)
class RawTables:
    """A RAW case as MATPOWER tables (DataFrames with MATPOWER's column names), file order."""

    version: int
    base_mva: float
    bus: pd.DataFrame
    gen: pd.DataFrame
    branch: pd.DataFrame
    notes: list[str] = field(default_factory=list)


@contextmanager
def _quiet() -> Iterator[None]:
    """pypowsybl logs its import through Python logging; the notes say what matters."""
    logger = logging.getLogger("powsybl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _load_network(path: Path, label: str) -> Any:
    try:
        import pypowsybl
    except ImportError:
        raise GridError(f"case {label}: reading PSS/E RAW files needs pypowsybl; pip install 'pypowsybl>=1.16,<2'") from None
    try:
        with _quiet():
            return pypowsybl.network.load(str(path), parameters={"psse.import.ignore-node-breaker-topology": "true"})
    except Exception as exc:  # pypowsybl raises PyPowsyblError with a short text and no line
        raise GridError(f"case {label}: the RAW reader (pypowsybl) cannot read the file ({' '.join(str(exc).split())[:200]}); "
                        "check it against PSS/E's RAW format") from None


def _in_file_order(frame: pd.DataFrame, keys: list[Any], what: str, label: str) -> pd.DataFrame:
    """The reader's table in the file's record order; a record it dropped or added is an error.
    Blanks do not count: the reader keeps those of a quoted id ('1 '), the keys have none."""
    frame = frame.set_axis([str(key).replace(" ", "") for key in frame.index], axis=0)
    missing = [key for key in keys if key not in frame.index]
    extra = sorted(set(frame.index) - set(keys))
    if missing or extra:
        which = f"dropped {what} {missing[0]}" if missing else f"made a {what} {extra[0]} the file does not have"
        raise GridError(f"case {label}: the RAW reader {which}; check that record against PSS/E's RAW format")
    return frame.loc[keys]


@dataclass(frozen=True)
class _Tables:
    """The reader's tables this module reads, each in the file's record order."""

    buses: pd.DataFrame
    lines: pd.DataFrame
    two: pd.DataFrame
    three: pd.DataFrame
    generators: pd.DataFrame

    @classmethod
    def of(cls, network: Any, outline: RawOutline, label: str) -> _Tables:
        keys = outline.records
        two = network.get_2_windings_transformers(all_attributes=True)
        three = network.get_3_windings_transformers(all_attributes=True)
        transformers = list(keys["TRANSFORMER"])
        _in_file_order(pd.concat([two[[]], three[[]]]), transformers, "transformer", label)
        two, three = (frame.set_axis([str(key).replace(" ", "") for key in frame.index], axis=0) for frame in (two, three))
        return cls(
            buses=_in_file_order(network.get_bus_breaker_view_buses(all_attributes=True),
                                 [f"B{bus}" for bus in keys["BUS"]], "bus", label),
            lines=_in_file_order(network.get_lines(all_attributes=True), list(keys["BRANCH"]), "branch", label),
            two=two.loc[[key for key in transformers if key in two.index]],
            three=three.loc[[key for key in transformers if key in three.index]],
            generators=_in_file_order(network.get_generators(all_attributes=True), list(keys["GENERATOR"]),
                                      "generator", label),
        )


class _Buses:
    """Bus-breaker buses by PSS/E number, their nominal voltages and the shunts summed on them."""

    def __init__(self, network: Any, frame: pd.DataFrame, numbers: tuple[Any, ...]) -> None:
        levels = network.get_voltage_levels(all_attributes=True)
        self.frame = frame
        self.number = pd.Series(numbers, index=frame.index)
        self.nominal = levels.loc[frame["voltage_level_id"], "nominal_v"].to_numpy(dtype=float)
        self.high = levels.loc[frame["voltage_level_id"], "high_voltage_limit"].to_numpy(dtype=float)
        self.low = levels.loc[frame["voltage_level_id"], "low_voltage_limit"].to_numpy(dtype=float)
        self.position = {bus_id: i for i, bus_id in enumerate(frame.index)}
        self.gs = np.zeros(len(frame))
        self.bs = np.zeros(len(frame))

    def at(self, ids: pd.Series) -> np.ndarray:
        return np.array([self.position[i] for i in ids], dtype=np.int64)

    def add_shunt(self, ids: pd.Series, g_mw: np.ndarray, b_mvar: np.ndarray) -> None:
        where = self.at(ids)
        np.add.at(self.gs, where, g_mw)
        np.add.at(self.bs, where, b_mvar)


def _rating(limits: pd.DataFrame, ids: pd.Index, side: str, nominal_kv: np.ndarray) -> np.ndarray:
    """The normal rating (MVA) per element from its permanent current limit (A) on ``side``."""
    if limits.empty:
        return np.zeros(len(ids))
    permanent = limits[(limits["type"] == "CURRENT") & (limits["name"] == "permanent_limit") & (limits["side"] == side)]
    amperes = permanent.set_index("element_id")["value"].groupby(level=0).first()
    current = amperes.reindex(ids).to_numpy(dtype=float)
    mva = _SQRT3 * current * nominal_kv / 1000.0
    return np.where(np.isfinite(mva), mva, 0.0)


def _lines(lines: pd.DataFrame, buses: _Buses, base: float, limits: pd.DataFrame) -> pd.DataFrame:
    f, t = buses.at(lines["bus_breaker_bus1_id"]), buses.at(lines["bus_breaker_bus2_id"])
    z_base = buses.nominal[f] * buses.nominal[t] / base
    b1, b2 = lines["b1"].to_numpy(float), lines["b2"].to_numpy(float)
    charging = np.minimum(b1, b2)
    # End shunts beyond the symmetric charging (PSS/E's GI, BI, GJ, BJ) become bus shunts.
    v1, v2 = buses.nominal[f] ** 2, buses.nominal[t] ** 2
    buses.add_shunt(lines["bus_breaker_bus1_id"], lines["g1"].to_numpy(float) * v1, (b1 - charging) * v1)
    buses.add_shunt(lines["bus_breaker_bus2_id"], lines["g2"].to_numpy(float) * v2, (b2 - charging) * v2)
    return pd.DataFrame({
        "F_BUS": buses.number.iloc[f].to_numpy(), "T_BUS": buses.number.iloc[t].to_numpy(),
        "BR_R": lines["r"].to_numpy(float) / z_base, "BR_X": lines["x"].to_numpy(float) / z_base,
        "BR_B": 2.0 * charging * z_base, "RATE_A": _rating(limits, lines.index, "ONE", buses.nominal[f]),
        "TAP": 0.0, "SHIFT": 0.0, "BR_STATUS": (lines["connected1"] & lines["connected2"]).astype(float).to_numpy(),
    })


def _winding(buses: _Buses, ids: pd.Series, rho: np.ndarray, alpha: np.ndarray, r: np.ndarray, x: np.ndarray,
             g: np.ndarray, b: np.ndarray, far_kv: np.ndarray, base: float) -> dict[str, np.ndarray]:
    """One winding as a MATPOWER branch from its bus: pypowsybl's ratio rho e^(j alpha) at that
    bus, then g + jb and r + jx in ohms/siemens at ``far_kv``. MATPOWER's tap t e^(j shift) at
    the from-bus divides its voltage, so t = far_kv / (rho x the bus's nominal kV), shift = -alpha;
    the admittance seen through the ratio is a shunt of (g + jb) far_kv^2 / t^2 at the bus."""
    near = buses.at(ids)
    tap = far_kv / (rho * buses.nominal[near])
    z_base = far_kv ** 2 / base
    buses.add_shunt(ids, g * far_kv ** 2 / tap ** 2, b * far_kv ** 2 / tap ** 2)
    return {"F_BUS": buses.number.iloc[near].to_numpy(), "BR_R": r / z_base, "BR_X": x / z_base, "BR_B": 0.0,
            "TAP": tap, "SHIFT": 0.0 - alpha}  # 0.0 - : no -0.0


def _two_winding(frame: pd.DataFrame, buses: _Buses, base: float, limits: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=BRANCH_COLUMNS)
    far = buses.at(frame["bus_breaker_bus2_id"])
    columns = _winding(buses, frame["bus_breaker_bus1_id"], frame["rho"].to_numpy(float),
                       frame["alpha"].to_numpy(float), *(frame[c].to_numpy(float) for c in ("r", "x", "g", "b")),
                       buses.nominal[far], base)
    near = buses.at(frame["bus_breaker_bus1_id"])
    return pd.DataFrame({**columns, "T_BUS": buses.number.iloc[far].to_numpy(),
                         "RATE_A": _rating(limits, frame.index, "ONE", buses.nominal[near]),
                         "BR_STATUS": (frame["connected1"] & frame["connected2"]).astype(float).to_numpy()})


def _three_winding(frame: pd.DataFrame, buses: _Buses, base: float, limits: pd.DataFrame,
                   first_star: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each three-winding transformer as three branches to a star bus (numbered from ``first_star``)."""
    if frame.empty:
        return pd.DataFrame(columns=BRANCH_COLUMNS), pd.DataFrame(columns=BUS_COLUMNS)
    stars = np.arange(first_star, first_star + len(frame))
    star_kv = frame["rated_u0"].to_numpy(float)
    legs = []
    for leg, side in ((1, "ONE"), (2, "TWO"), (3, "THREE")):
        ids = frame[f"bus_breaker_bus{leg}_id"]
        columns = _winding(buses, ids, frame[f"rho{leg}"].to_numpy(float), frame[f"alpha{leg}"].to_numpy(float),
                           *(frame[f"{c}{leg}"].to_numpy(float) for c in ("r", "x", "g", "b")), star_kv, base)
        legs.append(pd.DataFrame({**columns, "T_BUS": stars,
                                  "RATE_A": _rating(limits, frame.index, side, buses.nominal[buses.at(ids)]),
                                  "BR_STATUS": frame[f"connected{leg}"].astype(float).to_numpy()}))
    # Legs in transformer order (1, 2, 3 of the first, then of the second, ...).
    branch = pd.concat(legs).sort_index(kind="stable").reset_index(drop=True)
    on = np.column_stack([frame[f"connected{leg}"].to_numpy(bool) for leg in (1, 2, 3)]).any(axis=1)
    star = pd.DataFrame({"BUS_I": stars, "BUS_TYPE": np.where(on, 1.0, 4.0), "BASE_KV": star_kv})
    return branch, star


def _generators(frame: pd.DataFrame, buses: _Buses, base: float) -> pd.DataFrame:
    at = buses.at(frame["bus_breaker_bus_id"])
    regulated = frame["regulated_bus_breaker_bus_id"].where(frame["regulated_bus_breaker_bus_id"] != "",
                                                            frame["bus_breaker_bus_id"])
    return pd.DataFrame({
        "GEN_BUS": buses.number.iloc[at].to_numpy(), "PG": frame["target_p"].to_numpy(float),
        "QG": frame["target_q"].fillna(0.0).to_numpy(float), "QMAX": frame["max_q"].to_numpy(float),
        "QMIN": frame["min_q"].to_numpy(float),
        "VG": frame["target_v"].to_numpy(float) / buses.nominal[buses.at(regulated)],
        "MBASE": frame["rated_s"].fillna(base).to_numpy(float), "GEN_STATUS": frame["connected"].astype(float).to_numpy(),
        "PMAX": frame["max_p"].to_numpy(float), "PMIN": frame["min_p"].to_numpy(float),
    })


def _bus_table(network: Any, units: pd.DataFrame, buses: _Buses, branch: pd.DataFrame, label: str) -> pd.DataFrame:
    """Bus rows in file order: loads and shunts summed, the type from the swing bus, the units and
    the in-service branches (a bus none of them reaches is isolated, type 4)."""
    frame = buses.frame
    loads = network.get_loads(all_attributes=True)
    loads = loads[loads["connected"]]
    pd_mw, qd_mvar = np.zeros(len(frame)), np.zeros(len(frame))
    np.add.at(pd_mw, buses.at(loads["bus_breaker_bus_id"]), loads["p0"].to_numpy(float))
    np.add.at(qd_mvar, buses.at(loads["bus_breaker_bus_id"]), loads["q0"].to_numpy(float))
    shunts = network.get_shunt_compensators(all_attributes=True)
    shunts = shunts[shunts["connected"]]
    volts = buses.nominal[buses.at(shunts["bus_breaker_bus_id"])] ** 2
    buses.add_shunt(shunts["bus_breaker_bus_id"], shunts["g"].to_numpy(float) * volts, shunts["b"].to_numpy(float) * volts)
    number = buses.number.to_numpy()
    with_unit = np.isin(number, buses.number.loc[units.loc[units["connected"], "bus_breaker_bus_id"]].to_numpy())
    on = branch[branch["BR_STATUS"] > 0]
    reached = np.isin(number, np.concatenate([on["F_BUS"].to_numpy(), on["T_BUS"].to_numpy()]))
    kind = np.where(with_unit, 2.0, 1.0)
    kind[number == _swing_bus(network, buses, label)] = 3.0
    kind[~reached & (kind != 3.0)] = 4.0
    vm = frame["v_mag"].to_numpy(float) / buses.nominal
    return pd.DataFrame({
        "BUS_I": number, "BUS_TYPE": kind, "PD": pd_mw, "QD": qd_mvar, "GS": buses.gs, "BS": buses.bs,
        "BUS_AREA": 1.0, "VM": np.where(np.isfinite(vm), vm, 1.0),
        "VA": np.nan_to_num(frame["v_angle"].to_numpy(float)), "BASE_KV": buses.nominal, "ZONE": 1.0,
        "VMAX": np.where(np.isfinite(buses.high), buses.high / buses.nominal, 1.1),
        "VMIN": np.where(np.isfinite(buses.low), buses.low / buses.nominal, 0.9),
    })


def _swing_bus(network: Any, buses: _Buses, label: str) -> int:
    """The first swing bus (IDE = 3), which the reader keeps as a slack terminal."""
    slack = network.get_extensions("slackTerminal")
    if slack.empty:
        raise GridError(f"case {label}: no swing bus (IDE = 3) in the bus data; give the slack bus IDE 3")
    first = np.flatnonzero((buses.frame["bus_id"] == slack["bus_id"].iloc[0]).to_numpy())
    if first.size == 0:
        raise GridError(f"case {label}: the swing bus (IDE = 3) is not connected to the network; connect it")
    return int(buses.number.iloc[first[0]])


def _notes(network: Any, version: int, stars: int) -> list[str]:
    notes = [f"PSS/E v{version} RAW read with pypowsybl; RATE2/RATE3 (RATEB/RATEC) are not read, so N-1 rates "
             "branches at RATE1 x the emergency factor; areas and zones not read"]
    if stars:
        notes.append(f"{stars} three-winding transformers as three branches to a star bus each "
                     "(numbered above the file's buses)")
    for getter, words in _IGNORED:
        count = len(getattr(network, getter)())
        if count:
            notes.append(f"{count} {words} ignored")
    return notes


def _full(frame: pd.DataFrame, columns: tuple[str, ...], defaults: dict[str, float]) -> pd.DataFrame:
    """Every MATPOWER column in order, filled with its default where a part left it out."""
    out = frame.reindex(columns=list(columns))
    for column, value in defaults.items():
        out[column] = out[column].fillna(value)
    return out.astype(float).reset_index(drop=True)


def read_raw_tables(path: Path, label: str) -> RawTables:
    """The MATPOWER tables of a RAW file; every fault is a one-line GridError (file, line, fix)."""
    outline = check_raw(path, label)
    network = _load_network(path, label)
    if len(network.get_switches()):
        raise GridError(f"case {label}: {len(network.get_switches())} system switching devices are not read; "
                        "close them into their buses or replace them by branches")
    frames = _Tables.of(network, outline, label)
    buses = _Buses(network, frames.buses, outline.records["BUS"])
    limits = network.get_loading_limits(all_attributes=True).reset_index()
    base = outline.base_mva
    lines, two = _lines(frames.lines, buses, base, limits), _two_winding(frames.two, buses, base, limits)
    three, stars = _three_winding(frames.three, buses, base, limits, int(buses.number.max()) + 1)
    parts = [part for part in (lines, two, three) if len(part)]
    branch = _full(pd.concat(parts) if parts else pd.DataFrame(columns=BRANCH_COLUMNS), BRANCH_COLUMNS,
                   {"RATE_B": 0.0, "RATE_C": 0.0, "ANGMIN": -360.0, "ANGMAX": 360.0})
    bus = _bus_table(network, frames.generators, buses, branch, label)
    if len(stars):
        bus = pd.concat([bus, stars])
    bus = _full(bus, BUS_COLUMNS, {"PD": 0.0, "QD": 0.0, "GS": 0.0, "BS": 0.0, "BUS_AREA": 1.0, "VM": 1.0, "VA": 0.0,
                                   "ZONE": 1.0, "VMAX": 1.1, "VMIN": 0.9})
    gen = _full(_generators(frames.generators, buses, base), GEN_COLUMNS, {})
    return RawTables(outline.version, base, bus, gen, branch, _notes(network, outline.version, len(stars)))


def raw_matpower_data(tables: RawTables, name: str) -> MatpowerData:
    """The tables as the MATPOWER importer's data, for its checks and DC conventions."""

    def columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {column: frame[column].to_numpy(dtype=float) for column in frame.columns}

    return MatpowerData(function_name=name, base_mva=tables.base_mva, bus=columns(tables.bus),
                        gen=columns(tables.gen), branch=columns(tables.branch), dclines=0)


def load_raw_case(path: Path, *, name: str | None = None, label: str | None = None, rule: RatingRule | None = None,
                  slack: str | None = None) -> tuple[Network, int]:
    """The DC network of a PSS/E RAW file and its number of unrated branches (as load_matpower_case)."""
    name = name or path.stem
    label = label or str(path)
    tables = read_raw_tables(path, label)
    case = matpower_tables(raw_matpower_data(tables, name), name, label)
    case.notes[:0] = tables.notes
    return assemble_network(case, rule, slack), len(case.unrated)
