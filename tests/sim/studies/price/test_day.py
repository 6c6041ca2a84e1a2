"""`dcmarket price` over a day ([price.day], docs/studies/price.md#a-day): each hour is the study of
that hour alone, the day's totals are the hours' sums, and bad per-hour inputs get one line."""

from __future__ import annotations

import csv
import dataclasses
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from grid.feeder.bilevel import Workload, aggregator_bilevel, aggregator_payment
from grid.feeder.load_shapes import hourly_shape
from grid.feeder.opf import dso_opf
from grid.feeder.periods import Period, period_inputs
from sim.cli import main
from tests.conftest import write_toml

EXPERIMENTS = Path(__file__).resolve().parents[4] / "experiments"
SCALE = [0.7, 1.0, 1.15]
PRICES = [30.0, 45.0, 70.0]
DEMAND = [1000.0, 1500.0, 1200.0]
SUN = [0.0, 1.0, 0.5]


def _day_config() -> dict:
    """The default study's feeder and sites over three hours that move every input; the head at
    1.0 p.u. so that the floor binds in some hours."""
    data = tomllib.loads((EXPERIMENTS / "ieee37_price.toml").read_text())
    data["price"].update(head_voltage_pu=1.02, ac_check=False)   # the linear study (price/test_ac.py: AC)
    data["price"]["day"] = {"hours": 3, "first_hour": "2026-07-01T12:00", "background": "hourly", "load_scale": SCALE,
                            "substation_price_per_mwh": PRICES, "demand_kw": DEMAND, "availability": {"G733": SUN}}
    return data



@pytest.fixture(scope="module")
def day(tmp_path_factory):
    folder = tmp_path_factory.mktemp("price_day")
    path = write_toml(folder, _day_config())
    assert main(["price", str(path), "--out", str(folder / "out"), "--quiet"]) == 0
    return folder / "out"


def test_a_day_writes_every_hour_and_its_figure(day):
    summary = json.loads((day / "summary.json").read_text())
    labels = ["2026-07-01T12:00", "2026-07-01T13:00", "2026-07-01T14:00"]
    assert [p["period"] for p in summary["periods"]] == labels
    assert (day / "day.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    for name in ("dlmp.csv", "voltages.csv", "sites.csv"):
        with (day / name).open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert [r["period"] for r in rows][::len(rows) // 3] == labels, name
    assert [p["demand_kw"] for p in summary["periods"]] == DEMAND
    assert [p["substation_price_usd_per_mwh"] for p in summary["periods"]] == PRICES


def test_each_hour_is_the_study_of_that_hour_alone(day):
    """Per hour, from the library with the hour's inputs made by hand: the bilevel optimum's
    decision and payment, and the OPF at each case's decision (pro rata: a third each)."""
    from sim.config.schema import load_config
    from sim.studies.price.study import feeder_inputs, price_sites

    summary = json.loads((day / "summary.json").read_text())
    price = load_config(day / "config.toml").price
    feeder, generators, settings = feeder_inputs(price)
    sites, _ = price_sites(price, feeder)
    scale = hourly_shape(feeder, SCALE)
    for t, entry in enumerate(summary["periods"]):
        period = Period(entry["period"], PRICES[t], scale[t], {"G733": SUN[t]})
        hour = period_inputs(feeder, generators, settings, period)
        workload = Workload(DEMAND[t], 100.0, 50.0, 0.0)
        for case, svg in (("no-svg", False), ("svg", True)):
            alone = aggregator_bilevel(*hour, sites, workload, svg=svg, price_bound=price.price_bound,
                                       linearization=price.linearization)
            mine = entry["cases"][case]
            assert mine["load_kw"] == {str(b): kw for b, kw in alone.decision.load_kw.items()}
            assert mine["payment_usd_per_h"] == pytest.approx(alone.payment_per_h, rel=1e-7)
            opf = dso_opf(*hour, **alone.decision.opf_inputs(sites))
            assert mine["dso_cost_usd_per_h"] == pytest.approx(opf.cost_per_h, abs=1e-6)
            assert mine["payment_usd_per_h"] == pytest.approx(
                aggregator_payment(sites, alone.decision, opf, workload), abs=1e-6)
    # Pro rata in whole 100-kW steps over three equal sites; a step left over goes to the lowest
    # bus number (equal remainders).
    assert [p["cases"]["pro-rata"]["load_kw"] for p in summary["periods"]] == [
        {"738": 300.0, "725": 400.0, "731": 300.0}, {"738": 500.0, "725": 500.0, "731": 500.0},
        {"738": 400.0, "725": 400.0, "731": 400.0}]
    # The inputs move the answers: the floor binds in some hour, not in every one.
    lowest = [p["cases"]["no-svg"]["min_voltage_pu"]["value"] for p in summary["periods"]]
    assert min(lowest) == pytest.approx(0.95, abs=1e-7) and max(lowest) > 0.955


def test_the_days_totals_are_the_sums_of_its_hours(day):
    summary = json.loads((day / "summary.json").read_text())
    periods = summary["periods"]
    assert summary["workload"]["energy_mwh"] == pytest.approx(sum(DEMAND) / 1e3)
    for case, total in summary["cases"].items():
        hours = [p["cases"][case] for p in periods]
        assert total["feasible"] and total["infeasible_periods"] == []
        assert total["payment_usd"] == pytest.approx(sum(h["payment_usd_per_h"] for h in hours), abs=1e-5)
        assert total["payment_usd_per_h"] == pytest.approx(total["payment_usd"] / 3, abs=1e-5)
        assert total["average_price_usd_per_mwh"] == pytest.approx(total["payment_usd"] / (sum(DEMAND) / 1e3), abs=1e-5)
        assert total["dso_cost_usd"] == pytest.approx(sum(h["dso_cost_usd_per_h"] for h in hours), abs=1e-5)
        t = int(np.argmin([h["min_voltage_pu"]["value"] for h in hours]))
        assert total["min_voltage_pu"] == {**hours[t]["min_voltage_pu"], "period": periods[t]["period"]}
        assert total["dlmp_range_usd_per_mwh"] == [min(h["dlmp_range_usd_per_mwh"][0] for h in hours),
                                                   max(h["dlmp_range_usd_per_mwh"][1] for h in hours)]
        for bus, pct in total["site_unbalance_pct"].items():
            assert pct == max(h["site_unbalance_pct"][bus] for h in hours)


def test_every_dlmp_of_the_day_is_the_sum_of_its_parts(day):
    """dlmp.csv: energy + loss + congestion + voltage = the DLMP (to the 1e-6 the file is written
    to), the energy part the hour's substation price; the voltage part differs from zero in some
    hour and is zero in others, and where it is not zero the hour's case names a binding limit."""
    summary = json.loads((day / "summary.json").read_text())
    with (day / "dlmp.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    price = {p["period"]: p["substation_price_usd_per_mwh"] for p in summary["periods"]}
    binding = {(p["period"], case): bool(e["binding_voltage_limits"]) for p in summary["periods"]
               for case, e in p["cases"].items()}
    moved = set()
    for r in rows:
        parts = [float(r[f"{name}_usd_per_mwh"]) for name in ("energy", "loss", "congestion", "voltage")]
        assert sum(parts) == pytest.approx(float(r["dlmp_usd_per_mwh"]), abs=3e-6)
        assert parts[0] == price[r["period"]] and parts[1] == parts[2] == 0.0
        if abs(parts[3]) > 1e-6:
            assert binding[r["period"], r["case"]]
            moved.add(r["period"])
    assert 0 < len(moved) < 3


def test_same_day_same_bytes_on_two_worker_processes(day, tmp_path):
    """The hours solved side by side (sim/execution/ordered_pool.py) write what one process wrote."""
    assert main(["price", str(day / "config.toml"), "--out", str(tmp_path / "again"), "--quiet",
                 "--workers", "2"]) == 0
    for path in day.iterdir():
        if path.name != "config.toml":
            assert (tmp_path / "again" / path.name).read_bytes() == path.read_bytes(), path.name


def test_the_example_day_follows_activsg2000s_peak_day(tmp_path):
    """The shipped example's background: 24 hours, the sum of the areas' loads, 1.00 of the spot
    loads at 15:00 (2,457 kW on the feeder), less at 03:00."""
    from sim.config.schema import load_config
    from sim.studies.price.periods import price_periods
    from sim.studies.price.study import feeder_inputs, price_sites, price_workload

    price = load_config(EXPERIMENTS / "ieee37_price_day.toml").price
    feeder, generators, settings = feeder_inputs(price)
    sites, _ = price_sites(price, feeder)
    periods = price_periods(price, feeder, generators, settings, sites, price_workload(price, sites))
    assert len(periods) == 24 and periods[15][0].label == "2016-08-11T15:00"
    background = [sum(float(kw.sum()) for kw in period_inputs(feeder, generators, settings, p)[0].load_kw.values())
                  for p, _ in periods]
    assert background[15] == pytest.approx(2457.0) and min(background) == background[3] < 0.62 * 2457.0


def _broken(change) -> dict:
    data = _day_config()
    change(data["price"]["day"])
    return data


@pytest.mark.parametrize("change, expected", [
    (lambda d: d.update(demand_kw=[1000.0, 1000.0]), "price.day: demand_kw: 2 values for 3 hours; give one per hour"),
    (lambda d: d.update(demand_kw=[1000.0, 5000.0, 1000.0]),
     "price.day.demand_kw[1]: 5000 kW does not fit the sites (0 to 1800 kW"),
    (lambda d: d.update(demand_kw=[1000.0, 1050.0, 1000.0]),
     "price.day.demand_kw[1]: total_kw: 1050 kW is not a whole number of 100-kW steps"),
    (lambda d: d.update(availability={"G999": [1.0, 1.0, 1.0]}), "price.day.availability.G999: no generator of that"),
    (lambda d: d.update(availability={"G733": [1.0, 1.5, 1.0]}), "availability.G733: 1.5 is out of range"),
    (lambda d: d.pop("load_scale"), "load_scale: give it with background \"hourly\", and only then"),
    (lambda d: d.update(background="flat", area=3), "area: only background activsg2000 reads it"),
    (lambda d: d.update(background="weekly"), "unknown background shape 'weekly'; choose one of activsg2000, flat"),
    (lambda d: (d.update(background="activsg2000"), d.pop("load_scale")),
     "price.day: first_hour 2026-07-01T12:00: the ACTIVSg2000 series covers whole hours from 2016-01-01T00:00"),
    (lambda d: d.update(first_hour="noon"), "'noon' is not an ISO 8601 time"),
    (lambda d: d.update(hours=1000), "price.day.hours: input should be less than or equal to 168"),
    (lambda d: d.update(substation_price_per_mwh=[30.0, -1.0, 30.0]), "substation_price_per_mwh"),
])
def test_bad_day_configs_get_one_line_errors_naming_the_field(tmp_path, capsys, change, expected):
    path = write_toml(tmp_path, _broken(change))
    assert main(["price", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_after_an_auction_the_aggregator_runs_the_day_for_the_sites_it_won(tmp_path):
    """A run with [price.day]: the aggregator operates the sites its members won (as for a snapshot)
    hour by hour; the price directory holds each hour, and the run's summary the day's payments."""
    from tests.sim.test_view import day_config  # the auction on IEEE 37 and two flat hours at 40 and 60 $/MWh

    assert main(["run", str(day_config(tmp_path)), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    run = json.loads((tmp_path / "run" / "summary.json").read_text())
    priced = json.loads((tmp_path / "run" / "price" / "summary.json").read_text())
    assert priced["sites_from"] == "the auction" and [p["period"] for p in priced["periods"]] == [
        "2016-08-11T14:00", "2016-08-11T15:00"]
    assert run["price"]["payment_usd_per_h"]["svg"] == priced["cases"]["svg"]["payment_usd_per_h"]
    # Nearly all the load stands behind 703-730 (731 and 738 won 558 kW each, 725 42 kW). At 40
    # $/MWh the line's limit binds and G711 (55 $/MWh) behind it makes up the rest, so the case
    # without SVG pays 15 $/MWh of congestion on phases a and c; at 60 $/MWh G711 is the cheaper
    # source, runs anyway, the line no longer binds, and every case pays the substation's price.
    first, second = (p["cases"] for p in priced["periods"])
    kw = [sum(p["cases"]["svg"]["load_kw"].values()) for p in priced["periods"]]
    lines = {(b["segment"], b["phase"]): b["usd_per_mwh"] for b in first["no-svg"]["binding_line_limits"]}
    assert lines == {("703-730", "a"): pytest.approx(15.0), ("703-730", "c"): pytest.approx(15.0)}
    assert first["no-svg"]["payment_usd_per_h"] > 40.0 * kw[0] / 1e3 + 1.0
    assert first["svg"]["milp"]["payment_usd_per_h"] <= first["no-svg"]["milp"]["payment_usd_per_h"] + 1e-6
    for case in second.values():
        assert case["payment_usd_per_h"] == pytest.approx(60.0 * kw[1] / 1e3, rel=1e-6)
        assert case["binding_line_limits"] == []


def _ieee123_hours(first: int, hours: int, ac: bool, demand_kw: float | None = None) -> dict:
    """The shipped IEEE 123 example's hours ``first`` to ``first + hours - 1`` (at ``demand_kw``
    every hour, if given)."""
    data = tomllib.loads((EXPERIMENTS / "ieee123_price_day.toml").read_text())
    day = data["price"]["day"]
    for name in ("substation_price_per_mwh", "demand_kw"):
        day[name] = day[name][first:first + hours]
    day["availability"] = {g: v[first:first + hours] for g, v in day["availability"].items()}
    day.update(hours=hours, first_hour=f"2016-08-11T{first:02d}:00")
    if demand_kw is not None:
        day["demand_kw"] = [demand_kw] * hours
    data["price"]["ac_check"] = ac
    return data


def test_ieee123_hours_dlmps_equal_an_opf_written_from_scratch(tmp_path):
    """Three late-morning hours of the IEEE 123 example at 1.5 MW (sites on three-phase buses at the far
    ends, a PV plant on a phase-a lateral, four regulators): at every case's decision, each hour's DLMPs and
    voltages in dlmp.csv and voltages.csv are those of the LP written from scratch in
    tests/grid/feeder/test_periods.py, on every phase each bus has and on no other; the floor binds
    without coordination, so prices differ by bus and phase."""
    from sim.config.schema import load_config
    from sim.studies.price.periods import MILP_ROUND_OFF_KW, MILP_ROUND_OFF_PU, price_periods
    from sim.studies.price.study import feeder_inputs, price_sites, price_workload
    from tests.grid.feeder.test_periods import independent_opf

    path = write_toml(tmp_path, _ieee123_hours(10, 3, ac=False, demand_kw=1500.0))
    assert main(["price", str(path), "--out", str(tmp_path / "out"), "--quiet", "--no-plots"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    with (tmp_path / "out" / "dlmp.csv").open(newline="") as handle:
        prices = {(r["period"], r["case"], int(r["bus"]), r["phase"]): float(r["dlmp_usd_per_mwh"])
                  for r in csv.DictReader(handle)}
    price = load_config(path).price
    feeder, generators, settings = feeder_inputs(price)
    sites, _ = price_sites(price, feeder)
    periods = price_periods(price, feeder, generators, settings, sites, price_workload(price, sites))
    tan = {s.bus: s.kvar_per_kw for s in sites}
    spread = 0.0
    for (period, _), entry in zip(periods, summary["periods"]):
        hour_feeder, hour_generators, hour_settings = period_inputs(feeder, generators, settings, period)
        for case, outcome in entry["cases"].items():
            if not outcome["feasible"]:
                continue
            kw = {b: hour_feeder.load_kw[b].copy() for b in feeder.buses}
            kvar = {b: hour_feeder.load_kvar[b].copy() for b in feeder.buses}
            for bus, load in outcome["load_kw"].items():
                kw[int(bus)] += load / 3
                kvar[int(bus)] += tan[int(bus)] * load / 3 - np.array(outcome["svg_kvar"].get(bus, [0.0] * 3))
            try:
                _, dlmp, _ = independent_opf(feeder, hour_generators, hour_settings, kw, kvar)
            except AssertionError:   # a bilevel decision on a limit, within the MILP's round-off (periods.py)
                assert case in ("no-svg", "svg")
                widened = dataclasses.replace(hour_settings, v_min_pu=hour_settings.v_min_pu - MILP_ROUND_OFF_PU,
                                              v_max_pu=hour_settings.v_max_pu + MILP_ROUND_OFF_PU,
                                              line_slack_kw=MILP_ROUND_OFF_KW)
                _, dlmp, _ = independent_opf(feeder, hour_generators, widened, kw, kvar)
            for bus, values in dlmp.items():
                for k, phase in enumerate("abc"):
                    key = (period.label, case, bus, phase)
                    if np.isnan(values[k]):
                        assert key not in prices
                    else:
                        assert prices[key] == pytest.approx(values[k], abs=2e-6)
            spread = max(spread, max(v for v in dlmp.values() for v in v if not np.isnan(v))
                         - min(v for v in dlmp.values() for v in v if not np.isnan(v)))
    assert spread > 10.0


def test_ieee123_ac_correction_clears_every_violation_opendss_finds(tmp_path):
    """Two midday hours of the IEEE 123 example with the AC check: OpenDSS finds voltages below the
    band and trunk currents above 530 A that LinDist3Flow called feasible; the correction leaves
    none, in any case, and cuts only the trunk's bounds."""
    path = write_toml(tmp_path, _ieee123_hours(11, 2, ac=True))
    assert main(["price", str(path), "--out", str(tmp_path / "out"), "--quiet", "--no-plots"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    correction = summary["ac_correction"]
    assert correction["violations_by_round"][0] > 0 and correction["line_violations_by_round"][0] > 0
    assert correction["violations_by_round"][-1] == 0 and correction["line_violations_by_round"][-1] == 0
    assert correction["clear"] and correction["lines_cut"] > 0
    with (tmp_path / "out" / "ac_line_cuts.csv").open(newline="") as handle:
        assert {r["segment"] for r in csv.DictReader(handle)} <= {"149-1", "1-7", "7-8", "8-13"}
    for period in summary["periods"]:
        for case, entry in period["cases"].items():
            assert entry["ac"]["violations"] == [] and entry["ac"]["line_violations"] == [], (period["period"], case)
            assert entry["ac"]["min_voltage_pu"]["value"] >= 0.95 - 1e-6
            assert entry["ac"]["max_line_loading"]["loading"] <= 1.0
