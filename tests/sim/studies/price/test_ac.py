"""`dcmarket price` as it ships: the AC check (OpenDSS) of every case and its correction
(docs/models/dlmp.md#eq-d-24, #eq-d-25, #eq-d-30), on the default study of
experiments/ieee37_price.toml: its voltages alone (without line limits), then its lines."""

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


NO_LINES = ["--set", "price.line_limits=false"]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    folder = tmp_path_factory.mktemp("price_ac")
    assert main(["price", str(EXPERIMENTS / "ieee37_price.toml"), "--out", str(folder / "out"), "--quiet"]) == 0
    return folder / "out"


@pytest.fixture(scope="module")
def voltages(tmp_path_factory):
    """The example without line limits: the voltages' correction (D-25) on its own."""
    folder = tmp_path_factory.mktemp("price_ac_voltages")
    assert main(["price", str(EXPERIMENTS / "ieee37_price.toml"), "--out", str(folder / "out"), "--quiet",
                 *NO_LINES]) == 0
    return folder / "out"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_linear_study_breaks_the_floor_in_ac_and_the_correction_clears_it(voltages, tmp_path):
    """Without line limits and without the correction, the AC flows put five buses of phase a below
    0.95 p.u. in each case without SVG (737, 738, 711, 740, 741: the far end of the 734 lateral), by
    up to 0.0034 p.u. of linear error; one round of raised floors clears every one."""
    summary = json.loads((voltages / "summary.json").read_text())
    correction = summary["ac_correction"]
    assert correction["violations_by_round"] == [10, 0] and correction["clear"] and not correction["lines_held"]
    assert main(["price", str(EXPERIMENTS / "ieee37_price.toml"), "--out", str(tmp_path / "lin"), "--quiet",
                 "--set", "price.ac_correct=false", *NO_LINES]) == 0
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


def test_each_raised_floor_is_the_largest_gap_the_uncorrected_flows_measured(voltages, tmp_path):
    """ac_floors.csv after one round: at each bus and phase, the largest gap over the cases between
    the linear and the AC squared voltage of the uncorrected study, where the linear model was the
    higher, plus the 2e-6 margin."""
    shipped = voltages
    assert main(["price", str(EXPERIMENTS / "ieee37_price.toml"), "--out", str(tmp_path / "lin"), "--quiet",
                 "--set", "price.ac_correct=false", *NO_LINES]) == 0
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


def test_line_limits_and_their_cuts_leave_no_line_over_its_rating(shipped, tmp_path, capsys):
    """As it ships (line limits on): the uncorrected study holds every line's active flow within
    its bound, yet the AC currents of 703-730 (2/0 AA, 230 A), with the reactive flow the bound
    does not see, are over the rating; the correction cuts those bounds (ac_line_cuts.csv: rated
    lines only, each cut positive) until no case has a voltage outside the band or a line over its
    rating, and every current in the summary is within its conductor's rating."""
    assert main(["price", str(EXPERIMENTS / "ieee37_price.toml"), "--out", str(tmp_path / "lin"),
                 "--set", "price.ac_correct=false"]) == 0
    assert "segment-phases over their rating" in capsys.readouterr().out
    linear = json.loads((tmp_path / "lin" / "summary.json").read_text())
    over = [v for c in linear["periods"][0]["cases"].values() for v in c["ac"]["line_violations"]]
    assert over and all(v["current_a"] > v["rating_a"] and v["loading"] > 1.0 for v in over)
    conductor = {f"{s.from_bus}-{s.to_bus}": s.ampacity_a for s in load_ieee37().segments}
    assert "703-730" in {v["segment"] for v in over}
    assert all(v["rating_a"] == conductor[v["segment"]] for v in over)
    summary = json.loads((shipped / "summary.json").read_text())
    correction = summary["ac_correction"]
    assert correction["line_violations_by_round"][0] == len(over) and correction["line_violations_by_round"][-1] == 0
    assert correction["violations_by_round"][-1] == 0 and correction["clear"] and correction["lines_held"]
    cuts = _rows(shipped / "ac_line_cuts.csv")
    rated = {f"{s.from_bus}-{s.to_bus}" for s in load_ieee37().segments if s.ampacity_a}
    assert cuts and all(r["segment"] in rated and float(r["cut_kw"]) > 0 for r in cuts)
    assert correction["lines_cut"] == len(cuts)
    for case in summary["periods"][0]["cases"].values():
        most = case["ac"]["max_line_loading"]
        assert case["ac"]["line_violations"] == [] and most["loading"] <= 1.0
        assert most["current_a"] <= most["rating_a"]


def test_one_stated_rating_replaces_the_conductors_and_is_reported_without_line_limits(voltages, tmp_path, capsys):
    """line_rating_a gives every line one rating; without line limits the AC check lists every
    segment-phase above it, counts it over the case and names it in the report, and the voltages'
    correction is what it was (nothing holds the lines)."""
    summary = json.loads((voltages / "summary.json").read_text())
    top = summary["periods"][0]["cases"]["svg"]["ac"]["max_line_current"]
    rating = round(top["current_a"] / 2)
    assert main(["price", str(EXPERIMENTS / "ieee37_price.toml"), "--out", str(tmp_path / "rated"), *NO_LINES,
                 "--set", f"price.line_rating_a={rating}"]) == 0
    out = capsys.readouterr().out
    rated = json.loads((tmp_path / "rated" / "summary.json").read_text())
    over = rated["periods"][0]["cases"]["svg"]["ac"]["line_violations"]
    assert over and all(v["current_a"] > rating and v["rating_a"] == rating for v in over)
    assert any(v["segment"] == top["segment"] and v["phase"] == top["phase"] for v in over)
    assert rated["cases"]["svg"]["ac"]["line_violations"] == len(over)
    assert "over their rating" in out and "lines reported, not held" in out
    assert rated["ac_correction"]["violations_by_round"] == summary["ac_correction"]["violations_by_round"]


def test_a_cut_scales_the_linear_flow_by_rating_over_current():
    """D-30 by hand: 703-730 phase a carries 250 A in AC (of 230) at a linear flow of 600 kW and 300
    kvar; its bound is cut to the active flow that, with the 300 kvar, makes the apparent flow
    |600 + j300| x 230 / 250, less 0.1 % of the rated flow; a larger earlier cut stays."""
    from grid.feeder.inputs import OpfSettings
    from grid.feeder.opendss import AcFlow
    from sim.studies.price.ac import AcCheck, next_correction
    from sim.studies.price.periods import HourCorrection

    feeder = load_ieee37()
    settings = OpfSettings(v_min_pu=0.95, line_limits=True)
    volts = {b: np.ones(3) for b in feeder.buses}
    amps = {(s.from_bus, s.to_bus): np.full(3, 100.0) for s in feeder.segments}
    amps[703, 730] = np.array([250.0, 200.0, 100.0])
    flows = {(s.from_bus, s.to_bus): np.full(3, 100.0) for s in feeder.segments}
    flows[703, 730] = np.array([600.0, 500.0, 200.0])
    ratings = {(s.from_bus, s.to_bus): s.ampacity_a for s in feeder.segments}
    kvar = {key: 0.5 * value for key, value in flows.items()}
    check = AcCheck(AcFlow(volts, 0.0, 1, amps), volts, flows, kvar, ratings)
    rated = 0.95 * 4800 / math.sqrt(3) * 230 / 1e3
    cut = rated - (math.sqrt((600.0 ** 2 + 300.0 ** 2) * (230 / 250) ** 2 - 300.0 ** 2) - 1e-3 * rated)
    (hour,) = next_correction({}, {(0, "svg"): check}, feeder, settings).values()
    assert hour.floors == () and hour.cuts == ((703, 730, 0, pytest.approx(cut, rel=1e-12)),)
    kept = next_correction({0: HourCorrection(cuts=((703, 730, 0, cut + 5.0),))}, {(0, "svg"): check}, feeder,
                           settings)
    assert kept[0].cuts == ((703, 730, 0, cut + 5.0),)
