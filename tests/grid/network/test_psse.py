"""PSS/E RAW import (grid/network/psse.py, grid/network/psse_check.py): a round trip through RAW
files that the tests write from MATPOWER tables (tests/grid/network/raw_writer.py) in v33 and v35
syntax, against the same tables as a .m file, and the one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from grid.capacity.inputs.candidates import make_candidates
from grid.capacity.study import capacity_study
from grid.errors import GridError
from grid.load.scenarios import BaseLoadSpread, sample_base_load
from grid.network.cases import load_case
from grid.network.psse import read_raw_tables
from tests.grid.network import raw_writer as rw

VERSIONS = (33, 35)
WINDV2 = 1.01  # a second winding ratio, so that MATPOWER's tap is WINDV1 / WINDV2


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[object, Path]:
    folder = tmp_path_factory.mktemp("psse")
    tables = rw.rated_ieee30()
    found: dict[object, Path] = {"tables": tables}  # type: ignore[dict-item]
    (folder / "ieee30x.m").write_text(rw.m_text(tables, "ieee30x"))
    found["m"] = folder / "ieee30x.m"
    for version in VERSIONS:
        found[version] = rw.write_raw(folder / f"ieee30x_v{version}.raw", tables, version, windv2=WINDV2)
    return found


def raw_order(branch: np.ndarray) -> np.ndarray:
    """MATPOWER branches in a RAW file's order: lines first, then transformers."""
    transformer = (branch[:, rw.TAP] != 0) | (branch[:, rw.SHIFT] != 0)
    return np.vstack([branch[~transformer], branch[transformer]])


@pytest.mark.parametrize("version", VERSIONS)
def test_the_tables_come_back_from_a_raw_file(files, version):
    tables = files["tables"]
    raw = read_raw_tables(files[version], "x.raw")
    assert raw.version == version and raw.base_mva == 100.0
    bus = raw.bus.to_numpy()
    for column in ("BUS_I", "PD", "QD", "GS", "BS", "BASE_KV", "VM", "VA"):
        np.testing.assert_allclose(raw.bus[column], tables["bus"][:, getattr(rw, column)], rtol=1e-12, atol=1e-12,
                                   err_msg=column)
    assert bus[:, 1].tolist().count(3.0) == 1 and raw.bus.loc[raw.bus.BUS_TYPE == 3, "BUS_I"].item() == 1
    expected = raw_order(tables["branch"])
    for column in ("F_BUS", "T_BUS", "BR_R", "BR_X", "BR_B", "RATE_A", "SHIFT", "BR_STATUS"):
        np.testing.assert_allclose(raw.branch[column], expected[:, getattr(rw, column)], rtol=1e-12, atol=1e-12,
                                   err_msg=column)
    # Lines carry no ratio (TAP 0); a transformer's is WINDV1 / WINDV2 = MATPOWER's TAP (1 where it gave 0).
    tap = expected[:, rw.TAP]
    lines = (tap == 0) & (expected[:, rw.SHIFT] == 0)
    np.testing.assert_allclose(raw.branch["TAP"], np.where(lines, 0.0, np.where(tap == 0, 1.0, tap)), rtol=1e-12)
    # The reader keeps RATE1 only (docs/reference/cases.md#pss-e-raw-files).
    assert (raw.branch[["RATE_B", "RATE_C"]].to_numpy() == 0).all()
    for column in ("GEN_BUS", "PG", "QG", "QMAX", "QMIN", "VG", "GEN_STATUS", "PMAX", "PMIN"):
        np.testing.assert_allclose(raw.gen[column], tables["gen"][:, getattr(rw, column)], rtol=1e-12, err_msg=column)


def _lines(network) -> dict[str, tuple]:
    return {line.name: (line.from_bus, line.to_bus, line.thermal_limit_mw, line.reactance_pu, line.shift_flow_mw)
            for line in network.lines}


@pytest.mark.parametrize("version", VERSIONS)
def test_the_network_of_a_raw_file_is_the_matpower_files(files, version):
    raw, mfile = load_case(str(files[version])), load_case(str(files["m"]))
    assert [(b.number, b.base_load_mw) for b in raw.buses] == [(b.number, b.base_load_mw) for b in mfile.buses]
    assert (raw.reference_bus, raw.slack) == (mfile.reference_bus, mfile.slack)
    assert [g.bus for g in raw.generators] == [g.bus for g in mfile.generators]
    np.testing.assert_allclose([(g.output_mw, g.max_mw) for g in raw.generators],
                               [(g.output_mw, g.max_mw) for g in mfile.generators], rtol=1e-12)
    ours, theirs = _lines(raw), _lines(mfile)
    assert sorted(ours) == sorted(theirs) and len(ours) == 40  # 41 branches, one out of service
    for name, values in theirs.items():
        assert ours[name][:2] == values[:2]
        assert ours[name][2:] == pytest.approx(values[2:], rel=1e-12, abs=1e-9), name
    assert all(line.emergency_limit_mw is None for line in raw.lines)
    assert any("pypowsybl" in note for note in raw.notes)


def test_capacity_on_the_raw_file_is_the_matpower_files(files):
    """The same study (same scenarios, candidates, tiers) on both gives the same MW per bus."""
    studies = []
    for path in (files[35], files["m"]):
        network = load_case(str(path))
        scenarios = sample_base_load(network, BaseLoadSpread(), 200, np.random.default_rng(7))
        candidates = make_candidates(network, {bus: 80.0 for bus in network.load_buses})
        studies.append(capacity_study(network, scenarios, candidates, [0.05]))
    raw, mfile = studies
    assert sum(mfile.firm.capacity_mw.values()) > 0
    for mine, theirs in ((raw.firm, mfile.firm), (raw.tiers[0], mfile.tiers[0])):
        assert mine.capacity_mw == pytest.approx(theirs.capacity_mw, abs=1e-6)


# ------------------------------------------------------------------------------------------
# Bad files: one line naming the file, the line and the fix
# ------------------------------------------------------------------------------------------


def _edited(tmp_path: Path, files, version: int, edit) -> tuple[Path, list[str]]:
    lines = files[version].read_text().splitlines()
    lines = edit(lines)
    path = tmp_path / "bad.raw"
    path.write_text("\n".join(lines) + "\n")
    return path, lines


def _refused(path: Path) -> str:
    with pytest.raises(GridError) as error:
        load_case(str(path))
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"case {path}")
    return message


@pytest.mark.parametrize("version", (32, 34, 36))
def test_a_version_the_reader_does_not_read_is_refused_at_line_1(tmp_path, version):
    path = rw.write_raw(tmp_path / "other.raw", rw.rated_ieee30(), version)
    message = _refused(path)
    assert f"line 1: PSS/E version {version} (REV) is not read" in message and "versions 33 and 35" in message


def _first(lines: list[str], text: str) -> int:
    return next(i for i, line in enumerate(lines) if text in line)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_missing_section_names_it(tmp_path, files, version):
    # The file stops after the generator records: no branch data, no transformers.
    path, lines = _edited(tmp_path, files, version, lambda lines: lines[:_first(lines, "END OF GENERATOR")])
    message = _refused(path)
    assert f"line {len(lines)} (the end of the file): the file ends before its GENERATOR data closes" in message


def _value_replaced(tmp_path, files, version: int, section: str, record: int, position: int,
                    value: str) -> tuple[str, int]:
    """The refusal of the file with one value of one record replaced, and that record's line number."""
    def spoil(lines: list[str]) -> list[str]:
        at = _first(lines, f"BEGIN {section}") + 1 + record
        values = lines[at].split(",")
        values[position] = value
        lines[at] = ",".join(values)
        return lines

    path, lines = _edited(tmp_path, files, version, spoil)
    return _refused(path), _first(lines, f"BEGIN {section}") + 2 + record


@pytest.mark.parametrize("version", VERSIONS)
def test_a_bad_record_names_its_line(tmp_path, files, version):
    message, line = _value_replaced(tmp_path, files, version, "BRANCH", 2, 4, "0.1x")  # X of the third branch
    assert f"line {line}: branch record, value 5 is '0.1x', not a number" in message


@pytest.mark.parametrize("version", VERSIONS)
def test_a_branch_to_a_bus_the_file_lacks_names_its_line(tmp_path, files, version):
    message, line = _value_replaced(tmp_path, files, version, "TRANSFORMER", 0, 0, "99")
    assert f"line {line}: transformer names bus 99, which is not in the bus data" in message


def test_the_command_line_refuses_a_bad_raw_file_with_exit_code_2(tmp_path, files, capsys):
    from sim.cli import main

    path, _ = _edited(tmp_path, files, 33, lambda lines: [lines[0].replace(", 33,", ", 36,")] + lines[1:])
    out = tmp_path / "run"
    assert main(["capacity", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "PSS/E version 36" in err
    assert not out.exists()


@pytest.mark.parametrize("version", VERSIONS)
def test_a_circuit_given_twice_names_both_lines(tmp_path, files, version):
    """The reader would keep one of the two; the check refuses the file (circuit 1 of 1-2 written
    again as 2-1)."""
    def again(lines: list[str]) -> list[str]:
        at = _first(lines, "BEGIN BRANCH") + 1
        values = lines[at].split(",")
        values[0], values[1] = values[1], values[0]
        return lines[:at + 1] + [",".join(values)] + lines[at + 1:]

    path, lines = _edited(tmp_path, files, version, again)
    first = _first(lines, "BEGIN BRANCH") + 2
    assert f"line {first + 1}: branch 2-1 circuit '1' is already on line {first}" in _refused(path)


def test_a_three_winding_transformer_is_three_branches_to_a_star_bus():
    """tests/grid/network/three_winding_v33.raw, written by hand: buses 2 (138 kV), 3 (69 kV) and
    4 (13.8 kV) on one transformer with X1-2 = 0.1, X2-3 = 0.2, X3-1 = 0.15 p.u. and winding 1 at
    1.05. The star equivalent by hand: X1 = (X1-2 + X3-1 - X2-3) / 2 = 0.025, X2 = 0.075,
    X3 = 0.125; the tap sits on winding 1's branch; each winding keeps its own rating."""
    network = load_case(str(Path(__file__).with_name("three_winding_v33.raw")))
    assert network.bus_numbers == (1, 2, 3, 4, 5)  # 5: the star bus, above the file's buses
    assert [line.name for line in network.lines] == ["1-2", "2-5", "3-5", "4-5"]
    np.testing.assert_allclose([line.reactance_pu for line in network.lines], [0.05, 0.025 * 1.05, 0.075, 0.125],
                               rtol=1e-12)
    np.testing.assert_allclose([line.thermal_limit_mw for line in network.lines], [100.0, 80.0, 50.0, 30.0],
                               rtol=1e-12)
    assert [bus.base_load_mw for bus in network.buses] == [0.0, 0.0, 40.0, 20.0, 0.0]
    assert any("three-winding" in note for note in network.notes)
