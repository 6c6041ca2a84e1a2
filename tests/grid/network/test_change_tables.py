"""MATPOWER change tables: the reader, hourly loads, contingencies and islanding.

Expectations come from loads worked out by hand on a 5-bus case written here, from the raw rows
of MATPOWER's shipped files (split here with plain Python and numpy), from the case tables read
here with matpowercaseframes, and from breadth-first searches written here; never from the code
under test.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from grid.errors import GridError
from grid.load.hourly import HourlyLoads, hourly_loads, hourly_scenarios
from grid.network import change_tables
from grid.network.cases import load_case, matpower_data_dir
from grid.network.change_tables import (
    CT_TAREALOAD,
    contingencies,
    islanded_buses,
    read_change_table,
    single_branch_outages,
)
from grid.network.network import Bus, Line, Network

DATA = matpower_data_dir()

# Areas 1 (buses 1-3: 0 + 20 + 30 = 50 MW) and 2 (buses 4-5: 10 + 40 = 50 MW); zones 1 (buses
# 1-2) and 2 (buses 3-5). A ring 1-2-3-4-5-1, a second 1-2 circuit (row 6) and an
# out-of-service 3-5 branch (row 7). GEN_ROWS is filled in per test.
CASE = """function mpc = case5areas
mpc.version = '2';
mpc.baseMVA = 100;
%% bus_i type Pd Qd Gs Bs area Vm Va baseKV zone Vmax Vmin
mpc.bus = [
\t1\t3\t0\t0\t0\t0\t1\t1\t0\t100\t1\t1.1\t0.9;
\t2\t1\t20\t5\t0\t0\t1\t1\t0\t100\t1\t1.1\t0.9;
\t3\t1\t30\t5\t0\t0\t1\t1\t0\t100\t2\t1.1\t0.9;
\t4\t1\t10\t2\t0\t0\t2\t1\t0\t100\t2\t1.1\t0.9;
\t5\t1\t40\t8\t0\t0\t2\t1\t0\t100\t2\t1.1\t0.9;
];
%% bus Pg Qg Qmax Qmin Vg mBase status Pmax Pmin
mpc.gen = [
GEN_ROWS
];
%% fbus tbus r x b rateA rateB rateC ratio angle status angmin angmax
mpc.branch = [
\t1\t2\t0.01\t0.1\t0\t200\t200\t200\t0\t0\t1\t-360\t360;
\t2\t3\t0.01\t0.1\t0\t200\t200\t200\t0\t0\t1\t-360\t360;
\t3\t4\t0.01\t0.1\t0\t200\t200\t200\t0\t0\t1\t-360\t360;
\t4\t5\t0.01\t0.1\t0\t200\t200\t200\t0\t0\t1\t-360\t360;
\t5\t1\t0.01\t0.1\t0\t200\t200\t200\t0\t0\t1\t-360\t360;
\t1\t2\t0.01\t0.1\t0\t200\t200\t200\t0\t0\t1\t-360\t360;
\t3\t5\t0.01\t0.1\t0\t200\t200\t200\t0\t0\t0\t-360\t360;
];
"""
ONE_UNIT = "\t1\t100\t0\t100\t-100\t1\t100\t1\t300\t0;"
# Unit 2 is a dispatchable load at bus 5 (PMIN -20 < 0 = PMAX), dispatched at 15 MW (PG -15).
WITH_DISPATCHABLE = ONE_UNIT.replace("\t100\t0\t100", "\t115\t0\t100") + "\n\t5\t-15\t0\t0\t0\t1\t100\t1\t0\t-20;"
BASE = [0.0, 20.0, 30.0, 10.0, 40.0]


def write_case(tmp_path: Path, gen_rows: str = ONE_UNIT) -> Path:
    path = tmp_path / "case5areas.m"
    path.write_text(CASE.replace("GEN_ROWS", gen_rows), encoding="utf-8")
    return path


def write_table(tmp_path: Path, rows: str, name: str = "chgtab_test.m") -> Path:
    path = tmp_path / name
    path.write_text(f"function chgtab = {path.stem}\n%  a test table\ndefine_constants;\nchgtab = [\n{rows}\n];\n",
                    encoding="utf-8")
    return path


def one_line(exc: pytest.ExceptionInfo) -> str:
    """The message is one line and the error carries no chained traceback."""
    text = str(exc.value)
    assert "\n" not in text, text
    assert exc.value.__cause__ is None and (exc.value.__context__ is None or exc.value.__suppress_context__)
    return text


# --------------------------------------------------------------------------------------------
# Hand-computed loads on the 5-bus case
# --------------------------------------------------------------------------------------------

LOAD_ROWS = """\
 1  0  CT_TAREALOAD  1  CT_LOAD_ALL_P   CT_REP  100;   % area 1: 50 -> 100 MW, every load x 2
 2  0  CT_TAREALOAD  2  CT_LOAD_ALL_P   CT_REL  1.5
 3, 0, CT_TAREALOAD, 2, CT_LOAD_ALL_PQ, CT_ADD, 10;    % area 2: 50 + 10 = 60 MW, x 1.2
 4  0  CT_TBUS       2  PD              CT_REP  7;  4 0 CT_TAREALOAD 1 CT_LOAD_ALL_P CT_REL 2
 5  0  CT_TBRCH      1  BR_STATUS       CT_REP  0;
 6  0  CT_TAREABUS   2  PD              CT_REP  4;
 7  0  CT_TLOAD      0  CT_LOAD_ALL_PQ  CT_REL  0.5;
 8  0  CT_TLOAD      3  -CT_LOAD_ALL_P  CT_REP  12;
 9  0  CT_TBUS       0  PD              CT_ADD  1;
10  0  CT_TAREALOAD  1  CT_LOAD_ALL_P   ...
        CT_REL  100;"""
EXPECTED = {
    1: [0, 40, 60, 10, 40],
    2: [0, 20, 30, 15, 60],
    3: [0, 20, 30, 12, 48],
    4: [0, 14, 60, 10, 40],   # bus row 2 replaced by 7, then area 1 doubled: in file order
    5: BASE,                  # a branch outage changes no load
    6: [0, 20, 30, 4, 4],     # CT_TAREABUS replaces each bus's PD, not the area's total
    7: [0, 10, 15, 5, 20],
    8: [0, 20, 12, 10, 40],   # bus row 3 alone
    9: [1, 21, 31, 11, 41],
    10: [0, 2000, 3000, 10, 40],  # CT_REL 100 multiplies; CT_REP 100 (label 1) sets the total
}


def test_the_reader_reads_names_commas_continuations_and_two_rows_on_a_line(tmp_path):
    table = read_change_table(write_table(tmp_path, LOAD_ROWS))
    assert len(table) == 11
    assert table.labels.tolist() == list(range(1, 11))
    assert table.label.tolist() == [1, 2, 3, 4, 4, 5, 6, 7, 8, 9, 10]
    assert table.line.tolist() == [5, 6, 7, 8, 8, 9, 10, 11, 12, 13, 14]
    assert table.table.tolist() == [8, 8, 8, 1, 8, 3, 4, 7, 7, 1, 8]
    assert table.column.tolist() == [4, 4, 1, 3, 4, 11, 3, 1, -4, 3, 4]
    assert table.change_type.tolist() == [1, 2, 3, 1, 2, 1, 1, 2, 1, 3, 2]
    assert table.new_value.tolist() == [100, 1.5, 10, 7, 2, 0, 4, 0.5, 12, 1, 100]
    assert not table.new_value.flags.writeable


def test_area_loads_by_hand(tmp_path):
    case = write_case(tmp_path)
    network = load_case(str(case))
    hourly = hourly_loads(read_change_table(write_table(tmp_path, LOAD_ROWS)), network, case)
    assert hourly.buses == (1, 2, 3, 4, 5)
    assert hourly.labels.tolist() == list(EXPECTED)
    for label, loads in EXPECTED.items():
        np.testing.assert_allclose(hourly.row(label), loads, rtol=1e-12, err_msg=f"label {label}")
    assert hourly.ignored_changes == 1  # the branch outage


def test_zones_instead_of_areas(tmp_path):
    case = write_case(tmp_path)
    network = load_case(str(case))
    table = read_change_table(write_table(tmp_path, "1 0 CT_TAREALOAD 2 CT_LOAD_ALL_P CT_REP 40;"))
    # Area 2 (buses 4, 5: 50 MW) x 0.8; zone 2 (buses 3-5: 80 MW) x 0.5.
    np.testing.assert_allclose(hourly_loads(table, network, case).row(1), [0, 20, 30, 8, 32])
    np.testing.assert_allclose(hourly_loads(table, network, case, area_column="ZONE").row(1), [0, 20, 15, 5, 20])


def test_dispatchable_loads_take_their_share_as_in_scale_load(tmp_path):
    """Area 2 holds 50 MW of fixed load and a 20 MW dispatchable load (dispatched at 15 MW)."""
    case = write_case(tmp_path, WITH_DISPATCHABLE)
    network = load_case(str(case))
    rows = """\
1 0 CT_TAREALOAD 2 CT_LOAD_ALL_P CT_REP 90;
2 0 CT_TAREALOAD 2 CT_LOAD_FIX_P CT_REP 90;
3 0 CT_TAREALOAD 2 CT_LOAD_DIS_P CT_REL 2;
3 0 CT_TAREALOAD 2 CT_LOAD_ALL_P CT_REP 100;
4 0 CT_TAREALOAD 2 CT_LOAD_ALL_P CT_ADD 10;
5 0 CT_TAREALOAD 2 CT_LOAD_DIS_P CT_REL 3;"""
    hourly = hourly_loads(read_change_table(write_table(tmp_path, rows)), network, case)
    # 1: 90 / (50 + 20) scales both kinds. 2: fixed load makes up 90 - 20 = 70 of 50: x 1.4.
    np.testing.assert_allclose(hourly.row(1)[3:], [10 * 9 / 7, 40 * 9 / 7])
    np.testing.assert_allclose(hourly.row(2)[3:], [14, 56])
    # 3: the dispatchable load doubles to 40 MW; then 100 / (50 + 40) scales the rest.
    np.testing.assert_allclose(hourly.row(3)[3:], [100 / 9, 400 / 9])
    # 4: total_load.m counts the dispatchable load at its dispatch (15): 50 + 15 + 10 = 75 over 70.
    np.testing.assert_allclose(hourly.row(4)[3:], [10 * 75 / 70, 40 * 75 / 70])
    np.testing.assert_allclose(hourly.row(5), BASE)


def refused(tmp_path: Path, rows: str, apply, gen_rows: str = ONE_UNIT) -> str:
    """The one-line message with which ``apply(table, network, case)`` refuses a table of ``rows``."""
    case = write_case(tmp_path, gen_rows)
    table = read_change_table(write_table(tmp_path, rows))
    with pytest.raises(GridError) as exc:
        apply(table, load_case(str(case)), case)
    return one_line(exc)


def test_a_zone_without_the_load_asked_for_is_refused(tmp_path):
    text = refused(tmp_path, "1 0 CT_TAREALOAD 1 CT_LOAD_DIS_P CT_REP 30;", hourly_loads)
    assert "line 5" in text and "label 1" in text and "area 1" in text and "no dispatchable load" in text
    text = refused(tmp_path, "7 0 CT_TAREALOAD 9 CT_LOAD_ALL_P CT_REP 30;", hourly_loads)
    assert "area 9" in text and "area_column" in text


def test_a_generator_change_is_refused_where_dispatchable_loads_could_move(tmp_path):
    text = refused(tmp_path, "1 0 CT_TGEN 2 PMIN CT_REP -40;", hourly_loads, WITH_DISPATCHABLE)
    assert "label 1" in text and "dispatchable loads" in text


def test_hours_as_scenarios_net_of_committed_generation(tmp_path):
    case = write_case(tmp_path)
    network = load_case(str(case))
    hourly = hourly_loads(read_change_table(write_table(tmp_path, LOAD_ROWS)), network, case)
    scenarios = hourly_scenarios(hourly, network)
    committed = np.zeros(5)
    for generator in network.generators:
        committed[network.bus_numbers.index(generator.bus)] += generator.output_mw
    expected = np.array(list(EXPECTED.values()), dtype=float) - committed
    np.testing.assert_allclose(scenarios.samples_mw, expected)
    np.testing.assert_allclose(scenarios.lower_mw, expected.min(axis=0))
    np.testing.assert_allclose(scenarios.upper_mw, expected.max(axis=0))
    assert scenarios.buses == network.bus_numbers


def test_hourly_loads_refuse_another_network(tmp_path):
    case = write_case(tmp_path)
    table = read_change_table(write_table(tmp_path, "1 0 CT_TAREALOAD 1 CT_LOAD_ALL_P CT_REL 2;"))
    with pytest.raises(GridError) as exc:
        hourly_loads(table, load_case("ieee14"), case)
    assert "does not match case" in one_line(exc)
    hourly = HourlyLoads(np.array([1]), (1, 2), np.zeros((1, 2)))
    with pytest.raises(GridError) as exc:
        hourly_scenarios(hourly, load_case(str(case)))
    assert "other buses" in one_line(exc)


# --------------------------------------------------------------------------------------------
# Contingencies on the 5-bus case
# --------------------------------------------------------------------------------------------

OUTAGE_ROWS = """\
1 0.1 CT_TBRCH 6 BR_STATUS CT_REP 0;
2 0 CT_TBRCH 7 BR_STATUS CT_REP 0;
3 0 CT_TBRCH 2 BR_STATUS CT_REP 0;
3 0 CT_TBRCH 3 BR_STATUS CT_REP 0;
4 0 CT_TGEN 1 GEN_STATUS CT_REP 0;
5 0 CT_TBRCH 4 BR_STATUS CT_REP 0;
5 0 CT_TGEN 1 GEN_STATUS CT_REP 0;
6 0 CT_TAREABRCH 2 BR_STATUS CT_REP 0;
7 0 CT_TBRCH 1 BR_STATUS CT_REP 0;
7 0 CT_TBRCH 1 BR_STATUS CT_REP 1;"""


def test_contingencies_by_hand(tmp_path):
    case = write_case(tmp_path)
    network = load_case(str(case))
    assert network.line_names == ("1-2", "2-3", "3-4", "4-5", "5-1", "1-2#2")
    found = {c.label: c for c in contingencies(read_change_table(write_table(tmp_path, OUTAGE_ROWS)), network, case)}
    assert sorted(found) == [1, 2, 3, 5, 6, 7]  # label 4 outs a generator only
    assert (found[1].branch_rows, found[1].line_positions, found[1].line_names) == ((6,), (5,), ("1-2#2",))
    assert found[1].probability == 0.1
    assert (found[2].branch_rows, found[2].line_positions) == ((7,), ())  # out of service in the case
    assert (found[3].line_positions, found[3].line_names) == ((1, 2), ("2-3", "3-4"))
    assert (found[5].line_positions, found[5].other_changes) == ((3,), 1)
    # Every branch with an end in area 2 (buses 4, 5): rows 3, 4, 5 and the out-of-service row 7.
    assert (found[6].branch_rows, found[6].line_positions) == ((3, 4, 5, 7), (2, 3, 4))
    assert found[7].branch_rows == ()  # out, then back in
    assert islanded_buses(network, found[3].line_positions) == (3,)
    assert islanded_buses(network, found[6].line_positions) == (4, 5)
    assert islanded_buses(network, found[1].line_positions) == ()


def test_a_contingency_on_a_branch_the_case_lacks_is_refused(tmp_path):
    text = refused(tmp_path, "1 0 CT_TBRCH 1 BR_STATUS CT_REP 0;\n42 0 CT_TBRCH 8 BR_STATUS CT_REP 0;", contingencies)
    assert "label 42" in text and "branch row 8" in text and "7 branches" in text and "line 6" in text
    text = refused(tmp_path, "3 0 CT_TBRCH 7 BR_STATUS CT_REP 1;", contingencies)
    assert "label 3" in text and "branch row 7" in text and "back in service" in text


# --------------------------------------------------------------------------------------------
# Islanding
# --------------------------------------------------------------------------------------------


def cut_off(network: Network, out: int) -> set[int]:
    """Buses a breadth-first search from the reference bus no longer reaches without line ``out``."""
    reached = {network.reference_bus}
    queue = deque(reached)
    while queue:
        bus = queue.popleft()
        for other, position in network.adjacency[bus]:
            if position != out and other not in reached:
                reached.add(other)
                queue.append(other)
    return set(network.bus_numbers) - reached


def test_every_line_of_a_radial_feeder_islands():
    network = load_case("ieee33bw")
    outages = single_branch_outages(network)
    assert len(outages) == 32 and all(o.islands for o in outages)
    for outage in outages:
        lost = cut_off(network, outage.position)
        assert outage.stranded_buses == len(lost)
        assert math.isclose(outage.stranded_load_mw, sum(network.bus(b).base_load_mw for b in lost), abs_tol=1e-9)
    assert outages[0].name == "1-2" and outages[0].stranded_buses == 32


def test_no_line_of_a_ring_islands_and_parallel_lines_cover_each_other():
    ring = Network("ring", tuple(Bus(n) for n in range(1, 6)),
                   tuple(Line(f"{n}-{n % 5 + 1}", n, n % 5 + 1, 100.0, 0.1) for n in range(1, 6)), 1)
    assert not any(o.islands for o in single_branch_outages(ring))
    pair = Network("pair", (Bus(1), Bus(2), Bus(3, base_load_mw=5.0)),
                   (Line("1-2", 1, 2, 100.0, 0.1), Line("1-2#2", 1, 2, 100.0, 0.1), Line("2-3", 2, 3, 100.0, 0.1)), 1)
    assert [(o.islands, o.stranded_buses, o.stranded_load_mw) for o in single_branch_outages(pair)] == [
        (False, 0, 0.0), (False, 0, 0.0), (True, 1, 5.0)]


@pytest.mark.parametrize("name", ["ieee118", "ieee300"])
def test_bridges_agree_with_a_search_per_line(name):
    network = load_case(name)
    for outage in single_branch_outages(network):
        lost = cut_off(network, outage.position)
        assert outage.islands == bool(lost), outage.name
        assert outage.stranded_buses == len(lost)
        assert set(islanded_buses(network, [outage.position])) == lost


# --------------------------------------------------------------------------------------------
# Bad input: one line each, naming the file, the line and the fix
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rows", "expected"), [
    ("1 0 CT_TAREALOAD 1 CT_LOAD_ALL_P CT_REP;", "line 5: a row of 6 values; every row needs 7"),
    ("1 0 CT_TAREALOAD 1 CT_LOAD_ALL_P CT_REPP 5;", "line 5: 'CT_REPP' is not a number or a MATPOWER constant"),
    ("1 0 CT_TAREALOAD 1 CT_LOAD_ALL_P CT_REP 5;\n1 0 11 1 4 1 5;", "line 6: table code 11 is unknown"),
    ("1 0 CT_TAREALOAD 1 CT_LOAD_ALL_P 4 5;", "line 5: change type 4 is unknown"),
    ("1 0 CT_TBUS 1 BUS_AREA CT_REP 5;", "line 5: column 7 cannot be changed by a CT_TBUS CT_REP change"),
    ("1 0 CT_TAREALOAD 1 7 CT_REP 5;", "line 5: column 7 cannot be changed by a CT_TAREALOAD"),
    ("1 0 CT_TGENCOST 1 CT_MODCOST_F CT_REP 5;", "line 5: column -1 cannot be changed"),
    ("0 0 CT_TAREALOAD 1 CT_LOAD_ALL_P CT_REP 5;", "line 5: label is 0; labels are integers >= 1"),
    ("1 0 CT_TAREALOAD 1.5 CT_LOAD_ALL_P CT_REP 5;", "line 5: row is 1.5, not a whole number"),
    ("1 2 CT_TAREALOAD 1 CT_LOAD_ALL_P CT_REP 5;", "line 5: prob is 2; give a probability in [0, 1]"),
    ("1 0 CT_TAREALOAD 1 CT_LOAD_ALL_P CT_REP Inf;", "line 5: newval is inf; give a finite number"),
    ("", "chgtab has no rows"),
])
def test_bad_rows(tmp_path, rows, expected):
    path = write_table(tmp_path, rows)
    with pytest.raises(GridError) as exc:
        read_change_table(path)
    text = one_line(exc)
    assert text.startswith(f"change table {path}")
    assert expected in text


def test_bad_files(tmp_path, monkeypatch):
    cases = {
        "no_matrix.m": ("function chgtab = no_matrix\n% nothing here\nchgtab = zeros(0, 7);\n", "no 'chgtab = [ ... ];'"),
        "unclosed.m": ("function chgtab = unclosed\nchgtab = [\n1 0 8 1 4 1 5;\n", "line 2: the chgtab matrix opened here"),
    }
    for name, (text, expected) in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(GridError) as exc:
            read_change_table(tmp_path / name)
        assert expected in one_line(exc), name
    (tmp_path / "binary.m").write_bytes(b"chgtab = [\n1 0 8 1 4 1 \xff;\n];\n")
    with pytest.raises(GridError) as exc:
        read_change_table(tmp_path / "binary.m")
    assert "not a text file" in one_line(exc)
    with pytest.raises(GridError) as exc:
        read_change_table(tmp_path / "missing.m")
    assert "cannot read it" in one_line(exc) and "check the path" in str(exc.value)
    path = write_table(tmp_path, "1 0 CT_TAREALOAD 1 CT_LOAD_ALL_P CT_REP 5;")
    monkeypatch.setattr(change_tables, "MAX_CHANGE_TABLE_BYTES", 50)
    with pytest.raises(GridError) as exc:
        read_change_table(path)
    assert f"change table {path}" in one_line(exc) and "split it" in str(exc.value)


def test_the_size_ceiling_leaves_room_for_the_shipped_tables():
    largest = max((DATA / f"{stem}.m").stat().st_size for stem in (
        "scenarios_ACTIVSg2000", "scenarios_ACTIVSg200", "contab_ACTIVSg10k"))
    assert 20 * largest < change_tables.MAX_CHANGE_TABLE_BYTES


# --------------------------------------------------------------------------------------------
# The shipped ACTIVSg tables
# --------------------------------------------------------------------------------------------


def raw_rows(path: Path) -> list[list[str]]:
    """The chgtab rows of a shipped file, split on blanks (every row there is on one line)."""
    return [line.strip().rstrip(";").split() for line in path.read_text().splitlines()
            if re.match(r"^\s*\d+\s", line)]


def case_frame(stem: str):
    from matpowercaseframes import CaseFrames

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CaseFrames(str(DATA / f"{stem}.m"))


def raw_texas_hours() -> np.ndarray:
    """(label, area, MW) of every row of scenarios_ACTIVSg2000.m."""
    return np.array([[float(r[0]), float(r[3]), float(r[6])] for r in raw_rows(DATA / "scenarios_ACTIVSg2000.m")])


def test_the_shipped_scenarios_file_reads_as_written():
    raw = raw_texas_hours()
    table = read_change_table(DATA / "scenarios_ACTIVSg2000.m")
    assert len(table) == 70_272 == raw.shape[0]
    assert table.labels.tolist() == list(range(1, 8785))
    assert set(table.table.tolist()) == {CT_TAREALOAD}
    assert set(table.column.tolist()) == {4} and set(table.change_type.tolist()) == {1}  # CT_LOAD_ALL_P, CT_REP
    np.testing.assert_array_equal(table.label, raw[:, 0])
    np.testing.assert_array_equal(table.row, raw[:, 1])
    np.testing.assert_array_equal(table.new_value, raw[:, 2])


@pytest.mark.slow
def test_every_hour_holds_the_files_area_totals_and_makes_a_scenario():
    """All 8,784 hours on case_ACTIVSg2000 (one test: the hours take a second to build)."""
    network = load_case("case_ACTIVSg2000")
    raw = raw_texas_hours()
    hourly = hourly_loads(read_change_table(DATA / "scenarios_ACTIVSg2000.m"), network, "case_ACTIVSg2000")
    bus = case_frame("case_ACTIVSg2000").bus
    area = bus["BUS_AREA"].to_numpy(int)
    base = bus["PD"].to_numpy(float)
    assert hourly.load_mw.shape == (8784, 2000) and hourly.buses == network.bus_numbers
    assert hourly.ignored_changes == 0
    # The system total of each hour is the sum of the file's eight area values.
    totals = np.bincount(raw[:, 0].astype(int) - 1, weights=raw[:, 2])
    np.testing.assert_allclose(hourly.load_mw.sum(axis=1), totals, rtol=1e-12)
    for hour in (1, 2000, 5368, 8784):
        values = {int(a): v for label, a, v in raw if label == hour}
        loads = hourly.row(hour)
        for a, value in values.items():
            assert math.isclose(loads[area == a].sum(), value, rel_tol=1e-12), (hour, a)
            # Every load of the area moves by the same factor (CT_LOAD_ALL_P scales, it does not spread).
            np.testing.assert_allclose(loads[area == a], base[area == a] * value / base[area == a].sum(), rtol=1e-12)

    scenarios = hourly_scenarios(hourly, network)
    assert scenarios.count == 8784
    committed = np.zeros(2000)
    for generator in network.generators:
        committed[network.bus_numbers.index(generator.bus)] += generator.output_mw
    np.testing.assert_allclose(scenarios.samples_mw[4321 - 1], hourly.row(4321) - committed)
    np.testing.assert_allclose(scenarios.upper_mw, hourly.load_mw.max(axis=0) - committed)
    np.testing.assert_allclose(scenarios.lower_mw, hourly.load_mw.min(axis=0) - committed)


def test_a_label_that_changes_no_load_is_the_base_case(tmp_path):
    """The first hour's eight rows, then a generator outage: label 2 is the case's own loads."""
    lines = (DATA / "scenarios_ACTIVSg2000.m").read_text().splitlines()
    first_hour = "\n".join(line for line in lines if re.match(r"^\s*1\s", line))
    path = write_table(tmp_path, first_hour + "\n2 0 CT_TGEN 1 GEN_STATUS CT_REP 0;")
    hourly = hourly_loads(read_change_table(path), load_case("case_ACTIVSg2000"), "case_ACTIVSg2000")
    pd = case_frame("case_ACTIVSg2000").bus["PD"].to_numpy(float)
    np.testing.assert_array_equal(hourly.row(2), pd)
    assert math.isclose(hourly.row(2).sum(), 67_109.21, rel_tol=1e-12)
    assert math.isclose(hourly.row(1).sum(), 31_227.9, rel_tol=1e-12)
    assert hourly.ignored_changes == 1


def test_the_200_bus_scenarios_number_zones(tmp_path):
    """scenarios_ACTIVSg200.m names zones 2-7 of a one-area case: BUS_AREA is refused with the hint."""
    path = DATA / "case_ACTIVSg200.m"
    network = load_case(str(path))
    table = read_change_table(DATA / "scenarios_ACTIVSg200.m")
    with pytest.raises(GridError) as exc:
        hourly_loads(table, network, path)
    assert "area 2" in one_line(exc) and "ZONE" in str(exc.value)
    hourly = hourly_loads(table, network, path, area_column="ZONE")
    zone = case_frame("case_ACTIVSg200").bus["ZONE"].to_numpy(int)
    raw = [r for r in raw_rows(DATA / "scenarios_ACTIVSg200.m") if r[0] == "8760"]
    assert len(raw) == 6
    for row in raw:
        assert math.isclose(hourly.row(8760)[zone == int(row[3])].sum(), float(row[6]), rel_tol=1e-12)


def branch_labels(path: Path) -> set[int]:
    return {int(r[0]) for r in raw_rows(path) if r[2] == "CT_TBRCH"}


def test_the_2000_bus_contingency_list():
    path = DATA / "contab_ACTIVSg2000.m"
    network = load_case("case_ACTIVSg2000")
    found = contingencies(read_change_table(path), network, "case_ACTIVSg2000")
    assert [c.label for c in found] == sorted(branch_labels(path))
    assert len(found) == 3190  # and 544 generator outages left out
    assert all(len(c.line_positions) == len(c.branch_rows) == 1 for c in found)  # every branch in service
    branch = case_frame("case_ACTIVSg2000").branch
    ends = list(zip(branch["F_BUS"].astype(int), branch["T_BUS"].astype(int)))
    # Label 1 outs branch row 1, 1001-1064; every branch is in service, so row r is line r - 1.
    assert (found[0].branch_rows, found[0].line_positions, found[0].line_names) == ((1,), (0,), ("1001-1064",))
    assert ends[0] == (1001, 1064)
    # A second circuit: its line is named "#2".
    second = next(c for c in found if ends[c.branch_rows[0] - 1] in ends[:c.branch_rows[0] - 1])
    f, t = ends[second.branch_rows[0] - 1]
    assert second.line_names == (f"{f}-{t}#2",) and second.line_positions == (second.branch_rows[0] - 1,)


@pytest.mark.parametrize("size", ["200", "500", pytest.param("10k", marks=pytest.mark.slow)])
def test_the_other_contingency_lists_map_every_branch(size):
    path = DATA / f"contab_ACTIVSg{size}.m"
    case = DATA / f"case_ACTIVSg{size}.m"
    # The 10k case has unrated branches: its built-in entry states the rule for them.
    network = load_case("case_ACTIVSg10k" if size == "10k" else str(case))
    found = contingencies(read_change_table(path), network, case)
    assert [c.label for c in found] == sorted(branch_labels(path))
    for c in found:
        assert len(c.line_positions) == len(c.branch_rows) >= 1
        for row, position in zip(c.branch_rows, c.line_positions):
            line = network.lines[position]
            assert line.name.split("#")[0] == f"{line.from_bus}-{line.to_bus}"


def test_a_long_table_reads_in_blocks_with_the_same_result(tmp_path, monkeypatch):
    path = write_table(tmp_path, LOAD_ROWS)
    whole = read_change_table(path)
    monkeypatch.setattr(change_tables, "_BLOCK_ROWS", 3)
    blocks = read_change_table(path)
    for name in ("label", "probability", "table", "row", "column", "change_type", "new_value", "line"):
        np.testing.assert_array_equal(getattr(blocks, name), getattr(whole, name), err_msg=name)
    # A bad value in a later block still names its own line.
    bad = write_table(tmp_path, LOAD_ROWS.replace("CT_TBUS       0", "CT_TBUS       zero"), "bad.m")
    with pytest.raises(GridError) as exc:
        read_change_table(bad)
    assert "line 13: 'zero' is not a number" in one_line(exc)
