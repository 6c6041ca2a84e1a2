"""The AC step of `dcmarket capacity` (sim/studies/ac_check.py) end to end through the CLI: the
corrected study is the result, what it cost is reported, and switching the correction or the
check off gives the linear study's allocation."""

from __future__ import annotations

import csv
import json

import pytest

from sim.cli import main

IEEE14 = ["capacity", "ieee14", "--demand", "15", "--scenarios", "300", "--no-plots", "--verify", "300", "--quiet"]


def _summary(folder) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.fixture(scope="module")
def corrected(tmp_path_factory):
    """IEEE 14, 15 MW asked at every load bus: the linear study's 165 MW take voltages below 0.95 p.u."""
    out = tmp_path_factory.mktemp("ac") / "corrected"
    assert main([*IEEE14, "--out", str(out)]) == 0
    return out


@pytest.mark.slow  # a capacity study of IEEE 14 corrected in AC: three studies, three AC checks
def test_the_corrected_allocation_is_the_result_and_its_cost_is_reported(corrected, capsys):
    s = _summary(corrected)
    correction = s["ac_check"]["correction"]
    assert correction["iterations"] >= 1 and correction["stopped"] == "no violation caused by new load"
    assert correction["corrected_mw"] == pytest.approx(s["capacity"]["total_mw"])
    for name, linear in correction["linear_mw"].items():
        assert correction["cost_mw"][name] == pytest.approx(linear - correction["corrected_mw"][name])
    assert correction["cost_mw"]["firm"] > 0 and correction["unfixed"] == []
    firm_products = sum(p["capacity_mw"] for p in s["products"] + s["withheld_products"] if p["risk"] == 0)
    assert firm_products == pytest.approx(correction["corrected_mw"]["firm"], abs=1e-6)
    with (corrected / "ac_correction.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["iteration"]) for r in rows][::2] == list(range(correction["iterations"] + 1))
    first = [r for r in rows if r["iteration"] == "0"]
    last = [r for r in rows if int(r["iteration"]) == correction["iterations"]]
    assert sum(int(r["caused_voltage_violations"]) for r in first) > 0
    assert all(int(r["caused_overloads"]) == int(r["caused_voltage_violations"]) == 0 for r in last)
    assert {r["model"]: float(r["total_mw"]) for r in last} == pytest.approx(correction["corrected_mw"])
    assert s["ac_check"]["models"]["firm"]["caused_voltage_violations"] == 0  # the last check's counts


@pytest.mark.slow  # two capacity studies of IEEE 14, one checked in AC without correcting it
def test_without_the_correction_or_the_check_the_linear_allocation_stays(tmp_path):
    assert main([*IEEE14, "--out", str(tmp_path / "off"), "--set", "ac.correct=false"]) == 0
    off = _summary(tmp_path / "off")
    linear = off["capacity"]["total_mw"]
    assert off["ac_check"]["correction"] == {"skipped": "[ac] correct = false"}
    assert off["ac_check"]["models"]["firm"]["caused_voltage_violations"] > 0
    assert not (tmp_path / "off" / "ac_correction.csv").exists()
    assert main([*IEEE14[:-3], "--verify", "0", "--quiet", "--out", str(tmp_path / "v0")]) == 0
    unverified = _summary(tmp_path / "v0")
    assert unverified["ac_check"] == {"skipped": "--verify 0"}
    assert unverified["capacity"]["total_mw"] == pytest.approx(linear)
    assert not (tmp_path / "v0" / "ac_correction.csv").exists()


def test_max_iterations_out_of_range_is_one_line(tmp_path, capsys):
    assert main([*IEEE14, "--out", str(tmp_path / "bad"), "--set", "ac.max_iterations=21"]) == 2
    error = capsys.readouterr().err.strip()
    assert "ac.max_iterations" in error and "\n" not in error
