"""`dcmarket price` as it ships: the AC check (OpenDSS) of every case and its correction
(docs/models/dlmp.md#eq-d-24, #eq-d-25), on the default study of experiments/ieee37_price.toml."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from grid.feeder.bilevel import DataCenterSite, Decision
from grid.network.three_phase import load_ieee37
from sim.cli import main
from tests.grid.feeder.test_opendss import sweep_ac

EXPERIMENTS = Path(__file__).resolve().parents[4] / "experiments"


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    folder = tmp_path_factory.mktemp("price_ac")
    assert main(["price", str(EXPERIMENTS / "ieee37_price.toml"), "--out", str(folder / "out"), "--quiet"]) == 0
    return folder / "out"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_linear_study_breaks_the_floor_in_ac_and_the_correction_clears_it(shipped, tmp_path):
    """Without the correction, the AC flows put five buses of phase a below 0.95 p.u. in each case
    without SVG (737, 738, 711, 740, 741: the far end of the 734 lateral), by up to 0.0034 p.u. of
    linear error; one round of raised floors clears every one."""
    summary = json.loads((shipped / "summary.json").read_text())
    correction = summary["ac_correction"]
    assert correction["violations_by_round"] == [10, 0] and correction["clear"]
    assert main(["price", str(EXPERIMENTS / "ieee37_price.toml"), "--out", str(tmp_path / "lin"), "--quiet",
                 "--set", "price.ac_correct=false"]) == 0
    linear = json.loads((tmp_path / "lin" / "summary.json").read_text())["periods"][0]["cases"]
    for case in ("pro-rata", "no-svg"):
        broken = linear[case]["ac"]["violations"]
        assert sorted((v["bus"], v["phase"]) for v in broken) == [(711, "a"), (737, "a"), (738, "a"), (740, "a"),
                                                                  (741, "a")]
        assert all(0.946 < v["voltage_pu"] < 0.95 for v in broken)
        assert linear[case]["ac"]["max_linear_error_pu"]["value"] == pytest.approx(0.0034, abs=1e-4)
    assert linear["svg"]["ac"]["violations"] == []
    for case in summary["periods"][0]["cases"].values():
        assert case["ac"]["violations"] == [] and case["ac"]["min_voltage_pu"]["value"] >= 0.95 - 1e-6


def test_the_ac_voltages_are_a_sweep_of_the_decisions_and_dispatch(shipped):
    """ac_voltages.csv against the backward-forward sweep of tests/grid/feeder/test_opendss.py at each
    case's decision and the OPF's generator dispatch (from summary.json): to 1e-6 p.u."""
    summary = json.loads((shipped / "summary.json").read_text())
    feeder = load_ieee37()
    sites = tuple(DataCenterSite(s["bus"], s["max_kw"], s["min_kw"], s["power_factor"], s["svg_kvar"])
                  for s in summary["sites"])
    bus_of = {g["name"]: g["bus"] for g in summary["generators"]}
    rows = _rows(shipped / "ac_voltages.csv")
    for case, entry in summary["periods"][0]["cases"].items():
        decision = Decision({int(b): kw for b, kw in entry["load_kw"].items()},
                            {int(b): np.array(q) for b, q in entry["svg_kvar"].items()})
        inputs = decision.opf_inputs(sites)
        kw = {b: feeder.load_kw[b] + inputs["extra_kw"].get(b, 0) for b in feeder.buses}
        kvar = {b: feeder.load_kvar[b] + inputs["extra_kvar"].get(b, 0) - inputs["svg_kvar"].get(b, 0)
                for b in feeder.buses}
        for name, out in entry["generators_kw"].items():
            kw[bus_of[name]] = kw[bus_of[name]] - np.array(out)
        swept = sweep_ac(feeder, summary["head_voltage_pu"], kw, kvar)
        mine = {(int(r["bus"]), r["phase"]): float(r["ac_pu"]) for r in rows if r["case"] == case}
        for bus in feeder.buses:
            for k, phase in enumerate("abc"):
                assert mine[bus, phase] == pytest.approx(swept[bus][k], abs=2e-6)


def test_each_raised_floor_is_the_largest_gap_the_uncorrected_flows_measured(shipped, tmp_path):
    """ac_floors.csv after one round: at each bus and phase, the largest gap over the cases between
    the linear and the AC squared voltage of the uncorrected study, where the linear model was the
    higher, plus the 2e-6 margin."""
    assert main(["price", str(EXPERIMENTS / "ieee37_price.toml"), "--out", str(tmp_path / "lin"), "--quiet",
                 "--set", "price.ac_correct=false"]) == 0
    gaps: dict[tuple[int, str], float] = {}
    for r in _rows(tmp_path / "lin" / "ac_voltages.csv"):
        gap = float(r["linear_pu"]) ** 2 - float(r["ac_pu"]) ** 2
        key = (int(r["bus"]), r["phase"])
        gaps[key] = max(gaps.get(key, 0.0), gap)
    rises = {(int(r["bus"]), r["phase"]): float(r["rise_pu2"]) for r in _rows(shipped / "ac_floors.csv")}
    summary = json.loads((shipped / "summary.json").read_text())
    assert summary["ac_correction"]["rounds"] == 1 and summary["ac_correction"]["floors_raised"] == len(rises) > 30
    assert set(rises) == {key for key, gap in gaps.items() if gap > 1e-9 and key[0] != 799}   # not the head
    for key, rise in rises.items():   # the file's voltages are rounded to 1e-6 p.u.
        assert rise == pytest.approx(gaps[key] + 2e-6, abs=5e-6)
    # The correction cost pro rata its extra generation; the SVG case needed none.
    paid = summary["ac_correction"]["payment_usd_by_round"]
    assert paid["pro-rata"][1] > paid["pro-rata"][0] and paid["svg"][0] == paid["svg"][1]
    assert math.isclose(paid["svg"][1], summary["cases"]["svg"]["payment_usd_per_h"], abs_tol=1e-6)


def test_segment_currents_are_reported_and_held_to_a_stated_rating(shipped, tmp_path, capsys):
    """The AC check reports each case's largest segment current (the feeders' data have no
    ampacities, so nothing is over by default); with line_rating_a below it, every segment-phase
    above is listed, counted over the case and named in the report, and the voltages' correction
    is what it was (it moves voltage floors only)."""
    summary = json.loads((shipped / "summary.json").read_text())
    entry = summary["periods"][0]["cases"]["svg"]["ac"]
    top = entry["max_line_current"]
    assert top["current_a"] > 100.0 and entry["line_violations"] == []
    assert summary["cases"]["svg"]["ac"]["max_line_current"]["current_a"] == top["current_a"]
    rating = round(top["current_a"] / 2)
    assert main(["price", str(EXPERIMENTS / "ieee37_price.toml"), "--out", str(tmp_path / "rated"),
                 "--set", f"price.line_rating_a={rating}"]) == 0
    out = capsys.readouterr().out
    rated = json.loads((tmp_path / "rated" / "summary.json").read_text())
    over = rated["periods"][0]["cases"]["svg"]["ac"]["line_violations"]
    assert over and all(v["current_a"] > rating for v in over)
    assert {"segment": top["segment"], "phase": top["phase"], "current_a": top["current_a"]} in over
    assert rated["cases"]["svg"]["ac"]["line_violations"] == len(over)
    assert "over line_rating_a" in out
    assert rated["ac_correction"]["violations_by_round"] == summary["ac_correction"]["violations_by_round"]
