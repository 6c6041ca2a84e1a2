"""`dcmarket headroom`, end to end through the CLI: the files it writes, the hourly sources it
reads (a CSV by bus or by area, a MATPOWER change table), and the inputs it refuses (one line,
exit code 2, no directory).

The loads the files should give are built here with numpy from the case's base loads; the
headroom they should give comes from the grid functions on those loads (grid/capacity's own tests
check those against flows recomputed from scratch)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from grid.capacity.headroom import (
    following_withdrawals,
    hourly_background,
    hourly_headroom,
)
from grid.capacity.inputs.candidates import make_candidates
from grid.capacity.matrices.shift_factors import flow_model
from grid.capacity.rows.limits import limit_rows
from grid.load.scenarios import Scenarios
from grid.network.cases import load_case
from sim.cli import main

HOURS = 48
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _loads() -> tuple[tuple[int, ...], np.ndarray]:
    """IEEE 14's load buses and 48 hours of their loads: a daily shape times a seeded spread."""
    network = load_case("ieee14")
    base = np.array([bus.base_load_mw for bus in network.buses])
    shape = 0.75 + 0.35 * np.sin(np.arange(HOURS) * 2 * np.pi / 24)
    spread = np.random.default_rng(4).uniform(0.85, 1.15, size=(HOURS, base.size))
    return network.load_buses, base[None, :] * shape[:, None] * spread


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _hours_csv(folder: Path) -> Path:
    buses, load = _loads()
    network = load_case("ieee14")
    columns = [network.bus_index(b) for b in buses]
    stamps = [f"2016-01-{1 + t // 24:02d}T{t % 24:02d}:00" for t in range(HOURS)]
    return _write_csv(folder / "hours.csv", ["timestamp", *[str(b) for b in buses]],
                      [[stamps[t], *load[t, columns].tolist()] for t in range(HOURS)])


def _config(folder: Path, **fields: object) -> Path:
    table = {"case": "ieee14", "hourly": "hours.csv", "curtailment": [0.05, 0.1], "top": 3, **fields}
    text = "[headroom]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in table.items())
    path = folder / "headroom.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def ieee14_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("headroom")
    _hours_csv(folder)
    out = folder / "out"
    assert main(["headroom", str(_config(folder)), "--out", str(out), "--quiet"]) == 0
    return folder, out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_headroom_writes_the_contract(ieee14_run):
    _, out = ieee14_run
    assert sorted(p.name for p in out.iterdir()) == ["config.toml", "headroom.csv", "headroom_duration.png",
                                                     "headroom_map.png", "hourly.csv", "summary.json", "totals.csv"]
    summary = json.loads((out / "summary.json").read_text())
    h = summary["headroom"]
    assert summary["seed"] == 0 and h["levels"] == [0.0, 0.05, 0.1] and h["hours"]["count"] == HOURS
    assert h["hours"]["first"] == "2016-01-01T00:00" and h["hours"]["last"] == "2016-01-02T23:00"
    assert "NOT deliverable at once" in h["standalone"] and "CVaR" in h["joint"]
    totals = _rows(out / "totals.csv")
    assert [int(r["hours_allowed"]) for r in totals] == [0, 2, 4]          # floor(p x 48)
    rows = _rows(out / "headroom.csv")
    buses, _ = _loads()
    assert [int(r["bus"]) for r in rows] == list(buses)
    for j, tag in enumerate(("firm", "p5", "p10")):
        values = np.array([float(r[f"{tag}_mw"]) for r in rows])
        assert float(totals[j]["standalone_sum_mw"]) == pytest.approx(values.sum(), abs=1e-5)
        assert all(int(r[f"{tag}_hours_curtailed"]) <= (0, 2, 4)[j] for r in rows)
        assert all(r[f"{tag}_binding_hour"].startswith("2016-01-0") for r in rows)
        joint = np.array([float(r[f"joint_{tag}_mw"]) for r in rows])
        assert np.all(joint <= values + 1e-6) and float(totals[j]["joint_mw"]) == pytest.approx(joint.sum(), abs=1e-5)
    for name in ("headroom_duration.png", "headroom_map.png"):
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE


def test_the_csv_hours_give_the_headroom_of_those_loads(ieee14_run):
    """The study's numbers are those of its loads: the same loads, put through the grid functions
    here, give the same MW per bus and level."""
    _, out = ieee14_run
    buses, load = _loads()
    network = load_case("ieee14")
    samples = following_withdrawals(network, load, "scaled")
    scenarios = Scenarios(network.bus_numbers, samples, samples.min(axis=0), samples.max(axis=0))
    table, shift = limit_rows(network, flow_model(network), scenarios, make_candidates(network, {b: 1.0 for b in buses}),
                              0.05)
    found = hourly_headroom(table, hourly_background(table, shift, samples), (0.0, 0.05, 0.1), touch_factor=0.05)
    rows = _rows(out / "headroom.csv")
    for j, tag in enumerate(("firm", "p5", "p10")):
        np.testing.assert_allclose([float(r[f"{tag}_mw"]) for r in rows], found.capacity_mw[:, j], atol=1e-5)


def test_headroom_is_byte_reproducible_and_replaces_with_force(ieee14_run, capsys):
    """The same config again, without the figures: every other file the same bytes (the figures'
    own bytes are compared between the command and sim.api below)."""
    folder, out = ieee14_run
    again = folder / "again"
    assert main(["headroom", str(folder / "headroom.toml"), "--out", str(again), "--quiet", "--no-plots"]) == 0
    figures = {p.name for p in out.iterdir() if p.suffix == ".png"}
    assert figures == {"headroom_duration.png", "headroom_map.png"}
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in out.iterdir() if p.name not in figures)
    for path in again.iterdir():
        assert path.read_bytes() == (out / path.name).read_bytes(), path.name
    assert main(["headroom", str(folder / "headroom.toml"), "--out", str(again), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    # The directory carries a copy of the hours, and its config.toml re-runs from there alone.
    assert (again / "hourly.csv").read_bytes() == (folder / "hours.csv").read_bytes()
    rerun = folder / "rerun"
    assert main(["headroom", str(again / "config.toml"), "--out", str(rerun), "--quiet", "--no-plots"]) == 0
    assert (rerun / "headroom.csv").read_bytes() == (out / "headroom.csv").read_bytes()
    assert main(["headroom", str(folder / "headroom.toml"), "--out", str(again), "--quiet", "--force", "--no-joint",
                 "--curtailment", "0.1", "--no-plots"]) == 0
    summary = json.loads((again / "summary.json").read_text())["headroom"]
    assert summary["levels"] == [0.0, 0.1] and summary["joint_request_mw"] is None


def test_area_columns_share_the_area_total_by_base_load(tmp_path):
    """case14.m puts every bus in area 1: an 'area 1' column of 0.8 x the base total gives each
    bus 0.8 x its base load, the same hours as a bus file of those loads."""
    network = load_case("ieee14")
    base = np.array([bus.base_load_mw for bus in network.buses])
    factors = np.linspace(0.6, 1.0, 30)
    stamps = [f"2016-03-01T{t % 24:02d}:00" if t < 24 else f"2016-03-02T{t - 24:02d}:00" for t in range(30)]
    _write_csv(tmp_path / "area.csv", ["timestamp", "area 1"], [[s, f * base.sum()] for s, f in zip(stamps, factors)])
    buses = network.load_buses
    columns = [network.bus_index(b) for b in buses]
    _write_csv(tmp_path / "bus.csv", ["timestamp", *[f"bus {b}" for b in buses]],
               [[s, *(f * base[columns]).tolist()] for s, f in zip(stamps, factors)])
    results = []
    for name in ("area", "bus"):
        out = tmp_path / name
        assert main(["headroom", str(_config(tmp_path, hourly=f"{name}.csv")), "--out", str(out), "--quiet",
                     "--no-joint", "--no-plots"]) == 0
        results.append([[r["firm_mw"], r["p5_mw"], r["p10_mw"]] for r in _rows(out / "headroom.csv")])
    np.testing.assert_allclose(np.array(results[0], dtype=float), np.array(results[1], dtype=float), atol=1e-6)


def _change_table(folder: Path, rows: list[str]) -> Path:
    path = folder / "hours.m"
    path.write_text("function chgtab = hours\ndefine_constants;\nchgtab = [\n" + "\n".join(rows) + "\n];\n")
    return path


def test_a_change_table_names_its_hours_from_first_hour(tmp_path):
    """24 labels, each replacing area 1's load; with first_hour the labels become hours."""
    network = load_case("ieee14")
    total = sum(bus.base_load_mw for bus in network.buses)
    _change_table(tmp_path, [f"{t + 1} 0 CT_TAREALOAD 1 CT_LOAD_ALL_P CT_REP {total * (0.6 + 0.01 * t):.3f};"
                             for t in range(24)])
    out = tmp_path / "out"
    assert main(["headroom", str(_config(tmp_path, hourly="hours.m", first_hour="2016-07-01T00:00")), "--out",
                 str(out), "--quiet", "--no-joint", "--no-plots"]) == 0
    summary = json.loads((out / "summary.json").read_text())["headroom"]
    assert summary["hours"]["first"] == "2016-07-01T00:00" and summary["hours"]["last"] == "2016-07-01T23:00"
    # The heaviest hour (the last) sets every bus's firm headroom, unless a bus has no limit.
    assert {r["firm_binding_hour"] for r in _rows(out / "headroom.csv")} <= {"2016-07-01T23:00"}


@pytest.mark.parametrize("case, expected", [
    ("unknown area", ("hours.m, line 5", "area 9", "headroom.area_column")),
    ("no timestamp", ("hours.csv has no timestamp column",)),
    ("unknown bus", ("column 'bus 999'", "not a bus of case ieee14")),
    ("bad time", ("row 2", "not an ISO 8601 time")),
    ("level too high", ("headroom.curtailment", "0.7")),
    ("level zero", ("headroom.curtailment", "0 is firm")),
    ("no hourly", ("ships no hourly loads",)),
    ("no table", ("missing [headroom]",)),
])
def test_bad_inputs_are_one_line_exit_2_and_nothing_written(tmp_path, capsys, case, expected):
    config = _config(tmp_path)
    stamps = ["2016-01-01T00:00", "2016-01-01T01:00"]
    if case == "unknown area":
        _change_table(tmp_path, ["1 0 CT_TAREALOAD 1 CT_LOAD_ALL_P CT_REL 0.9;", "2 0 CT_TAREALOAD 9 CT_LOAD_ALL_P CT_REL 1.1;"])
        config = _config(tmp_path, hourly="hours.m")
    elif case == "no timestamp":
        _write_csv(tmp_path / "hours.csv", ["time", "2"], [[s, 20.0] for s in stamps])
    elif case == "unknown bus":
        _write_csv(tmp_path / "hours.csv", ["timestamp", "2", "bus 999"], [[s, 20.0, 5.0] for s in stamps])
    elif case == "bad time":
        _write_csv(tmp_path / "hours.csv", ["timestamp", "2"], [[stamps[0], 20.0], ["yesterday", 21.0]])
    elif case == "level too high":
        config = _config(tmp_path, curtailment=[0.01, 0.7])
    elif case == "level zero":
        config = _config(tmp_path, curtailment=[0.0, 0.01])
    elif case == "no table":
        config.write_text('seed = 1\n')
    args = ["ieee14"] if case == "no hourly" else [str(config)]
    out = tmp_path / "out"
    assert main(["headroom", *args, "--out", str(out), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    for fragment in expected:
        assert fragment in error, (fragment, error)
    assert not out.exists()


def test_the_python_api_returns_the_bytes_the_command_writes(ieee14_run):
    from sim import api

    folder, out = ieee14_run
    result = api.run("headroom", folder / "headroom.toml")
    assert sorted(result.files) == sorted(p.name for p in out.iterdir())
    for name, content in result.files.items():
        assert (out / name).read_bytes() == content, name
    assert list(result.table("totals")["hours_allowed"]) == [0, 2, 4]


def test_the_example_config_is_valid():
    from sim.config.schema import load_config

    config = load_config(Path(__file__).resolve().parents[4] / "experiments" / "activsg2000_headroom.toml",
                         table="headroom")
    assert config.headroom.case == "case_ACTIVSg2000" and config.headroom.curtailment == [0.0025, 0.005, 0.01]
