"""`dcmarket price` with [price.workload] (docs/studies/price.md#workloads): four schedules of the
same servers' work over three hours, each hour priced by the DSO's OPF, against each other, the
library and enumeration's guarantees; bad workload tables get one line."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from grid.feeder.bilevel import aggregator_payment
from grid.feeder.opf import dso_opf
from sim.cli import main
from tests.conftest import write_toml

EXPERIMENTS = Path(__file__).resolve().parents[4] / "experiments"
SERVERS = dict(count=40, idle_kw=3.0, peak_kw=10.0, capacity=20.0, pue=1.3)   # 156 kW at rest, 36.4 kW a step


def _config() -> dict:
    """experiments/ieee37_price_workload_3h.toml: two of the default study's sites over three hours
    whose floor binds at 11:00; interactive work and two jobs, one of them released at 11:00."""
    data = tomllib.loads((EXPERIMENTS / "ieee37_price_workload_3h.toml").read_text())
    data["price"]["ac_check"] = False   # the linear study, as the OPFs below see it (price/test_ac.py: AC)
    return data



@pytest.fixture(scope="module")
def worked(tmp_path_factory):
    folder = tmp_path_factory.mktemp("price_workload")
    assert main(["price", str(write_toml(folder, _config())), "--out", str(folder / "out"), "--quiet"]) == 0
    return folder / "out"


def test_the_four_schedules_run_the_same_work(worked):
    """Every schedule runs each hour's interactive work and every job's work within its window:
    per hour, the sites' steps above idle add to the interactive steps plus the jobs' steps,
    and over the day to all the work."""
    summary = json.loads((worked / "summary.json").read_text())
    assert list(summary["cases"]) == ["pro-rata", "price-taking", "no-svg", "svg"]
    idle, step = 1.3 * 40 * 3.0, 1.3 * 7.0 * 80.0 / 20.0
    interactive = [6, 10, 5]
    for case in summary["cases"]:
        steps = [round(sum((kw - idle) / step for kw in p["cases"][case]["load_kw"].values()))
                 for p in summary["periods"]]
        batch = [s - i for s, i in zip(steps, interactive)]
        assert min(batch) >= 0 and sum(batch) == 5 + 3, case
        assert batch[0] <= 3, case   # only the index job (3 steps) may run at 10:00
    # Identical sites: every schedule draws the same energy, 2 x 156 kW idle for 3 h and 29 steps of 36.4 kWh.
    assert summary["workload"]["energy_mwh"] == pytest.approx((2 * 156.0 * 3 + 29 * 36.4) / 1e3)
    assert summary["workload"]["servers"]["work_step"] == 80.0


def test_each_hour_is_priced_by_its_opf_and_the_bilevel_day_pays_least(worked):
    """Each case's hourly payment is the OPF's at that hour's decision, priced by hand; over the
    day the bilevel schedule pays at most what pro rata and the price-taking schedule pay (it is
    the cheapest schedule at the prices it causes), and SVGs pay at most that. Here each step is
    strict: the price-taker's schedule moves the prices it planned on."""
    from grid.feeder.periods import period_inputs
    from sim.config.schema import load_config
    from sim.studies.price.periods import price_periods
    from sim.studies.price.study import feeder_inputs, price_sites, price_workload

    summary = json.loads((worked / "summary.json").read_text())
    price = load_config(worked / "config.toml").price
    feeder, generators, settings = feeder_inputs(price)
    sites, _ = price_sites(price, feeder)
    table = price_workload(price, sites)
    periods = price_periods(price, feeder, generators, settings, sites, table)
    from grid.feeder.bilevel import Decision

    for (period, _), entry in zip(periods, summary["periods"]):
        hour = period_inputs(feeder, generators, settings, period)
        for case, mine in entry["cases"].items():
            svg = {int(b): q for b, q in mine["svg_kvar"].items()}
            decision = Decision({int(b): kw for b, kw in mine["load_kw"].items()}, svg)
            opf = dso_opf(*hour, **decision.opf_inputs(sites))
            assert mine["payment_usd_per_h"] == pytest.approx(aggregator_payment(sites, decision, opf, table), abs=1e-5)
    paid = {case: c["payment_usd"] for case, c in summary["cases"].items()}
    assert paid["svg"] < paid["no-svg"] < paid["price-taking"] < paid["pro-rata"]
    assert summary["cases"]["no-svg"]["milp"]["status"] == "optimal"


def test_same_workload_same_bytes(worked, tmp_path):
    assert main(["price", str(worked / "config.toml"), "--out", str(tmp_path / "again"), "--quiet"]) == 0
    for path in worked.iterdir():
        if path.name != "config.toml":
            assert (tmp_path / "again" / path.name).read_bytes() == path.read_bytes(), path.name


def _broken(change) -> dict:
    data = _config()
    change(data["price"])
    return data


@pytest.mark.parametrize("change, expected", [
    (lambda p: p["workload"]["servers"][0].update(bus=731), "price.workload.servers[0].bus: no site at bus 731"),
    (lambda p: p["workload"].update(servers=p["workload"]["servers"][:1]),
     "price.workload.servers: the site at bus 725 has no servers"),
    (lambda p: p["workload"]["servers"][0].update(count=400), "the servers draw 1560 kW at rest, above the site's "
     "max_kw 600"),
    (lambda p: p["workload"]["interactive"].__setitem__(1, 810.0),
     "price.workload.interactive[1]: 810 is not a whole number of 80-unit steps"),
    (lambda p: p["workload"]["interactive"].__setitem__(1, 1_000_000.0), "hour 1: 12500 steps, but the sites run 0 to"),
    (lambda p: p["workload"]["jobs"][0].update(deadline=5), "workload.jobs[0].deadline: hour 5 is past the day's last"),
    (lambda p: p["workload"]["jobs"][0].update(release=2, deadline=1), "its deadline (hour 1) comes before its release"),
    (lambda p: p["workload"]["jobs"][0].update(work=8000.0), "batch job train: 100 steps do not fit hours 1 to 2"),
    (lambda p: p["workload"].update(interactive=[480.0]), "workload.interactive: 1 values for 3 hours"),
    (lambda p: p.pop("day"), "workload: schedules work over hours; add [price.day]"),
    (lambda p: p["day"].update(demand_kw=[100.0, 100.0, 100.0]), "day.demand_kw: the workload sets each hour's load"),
    (lambda p: p["workload"].update(batteries=[{"bus": 731, "kw": 100.0, "kwh": 200.0}]),
     "price.workload.batteries[0].bus: no site at bus 731"),
    (lambda p: p["workload"].update(batteries=[{"bus": 738, "kw": 100.0, "kwh": 200.0}] * 2),
     "price.workload.batteries[1].bus: bus 738 has a battery already"),
    (lambda p: (p.update(linearization="mccormick"), p["workload"].update(batteries=[{"bus": 738, "kw": 100.0,
                                                                                      "kwh": 200.0}])),
     'price.workload.batteries: a battery needs linearization = "strong-duality"'),
    (lambda p: p["workload"].update(batteries=[{"bus": 738, "kw": 100.0, "kwh": 0.0}]),
     "price.workload.batteries[0].kwh: input should be greater than 0"),
])
def test_bad_workload_tables_get_one_line_errors_naming_the_field(tmp_path, capsys, change, expected):
    path = write_toml(tmp_path, _broken(change))
    assert main(["price", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_the_ieee123_workload_example_orders_the_schedules_as_theory_says(tmp_path):
    """experiments/ieee123_price_workload_3h.toml (a battery at 66), the linear study: every
    schedule runs the same work; each is a schedule the bilevel day could have chosen (pro rata
    with its battery idle), so the aggregator without SVGs pays at most what pro rata and the
    price-taker pay, and with SVGs (at zero a schedule of the case without) at most that. The
    battery stays within its rating and ends the day where it began (D-28)."""
    assert main(["price", str(EXPERIMENTS / "ieee123_price_workload_3h.toml"), "--out", str(tmp_path / "out"),
                 "--quiet", "--no-plots", "--set", "price.ac_check=false"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    pays = {case: entry["payment_usd"] for case, entry in summary["cases"].items()}
    served = {case: sum(sum(p["cases"][case]["load_kw"].values()) for p in summary["periods"]) for case in pays}
    assert len({round(e, 6) for e in served.values()}) == 1
    assert pays["no-svg"] <= min(pays["pro-rata"], pays["price-taking"]) + 1e-5   # payments rounded to 1e-6 $
    assert pays["svg"] <= pays["no-svg"] + 1e-5
    assert pays["pro-rata"] - pays["svg"] > 5.0   # coordination is worth dollars here, not round-off
    one_way = 0.9 ** 0.5
    for case in ("price-taking", "no-svg", "svg"):
        draws = [p["cases"][case]["battery_kw"]["66"] for p in summary["periods"]]
        assert all(abs(d) <= 200.0 + 1e-6 for d in draws)
        assert sum(one_way * max(d, 0.0) - max(-d, 0.0) / one_way for d in draws) == pytest.approx(0.0, abs=1e-5)
    assert "battery_kw" not in summary["periods"][0]["cases"]["pro-rata"]
