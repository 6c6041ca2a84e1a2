"""`dcmarket price` end to end through the CLI: the files, their numbers against each other and
against an independent OPF, reproducibility, and one-line errors."""

from __future__ import annotations

import csv
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from grid.feeder.inputs import DistributedGenerator, OpfSettings
from grid.feeder.opf import dso_opf
from grid.network.three_phase import load_ieee37, voltage_unbalance
from sim.cli import main
from tests.conftest import write_toml

EXPERIMENTS = Path(__file__).resolve().parents[4] / "experiments"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

FILES = {"summary.json", "config.toml", "voltages.csv", "dlmp.csv", "sites.csv", "voltage_profile.png",
         "unbalance.png", "dlmp_map.png", "dlmp_parts.png", "costs.png"}


def _config() -> dict:
    return tomllib.loads((EXPERIMENTS / "ieee37_price.toml").read_text())



def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def priced(tmp_path_factory):
    folder = tmp_path_factory.mktemp("price")
    # The linear study itself, as the independent OPFs below see it: no AC correction moves its floors
    # (tests/sim/studies/price/test_ac.py runs the example as it ships).
    assert main(["price", str(EXPERIMENTS / "ieee37_price.toml"), "--out", str(folder / "out"), "--quiet",
                 "--set", "price.ac_check=false"]) == 0
    return folder / "out"


def test_price_directory_holds_every_file_and_figure(priced):
    assert {p.name for p in priced.iterdir()} == FILES
    for name in FILES:
        if name.endswith(".png"):
            assert (priced / name).read_bytes().startswith(PNG_SIGNATURE)
    summary = json.loads((priced / "summary.json").read_text())
    assert list(summary["cases"]) == ["pro-rata", "no-svg", "svg"]
    assert summary["sites_from"] == "price.sites"


def test_the_voltage_ranges_thin_the_milp_and_leave_the_answer(priced, tmp_path):
    """`voltage_ranges = false` (every bound's M from the band, docs/models/dlmp.md#eq-d-27): the
    same payments, decisions and prices with more binaries in both MILPs."""
    assert main(["price", str(EXPERIMENTS / "ieee37_price.toml"), "--out", str(tmp_path / "full"), "--quiet",
                 "--set", "price.ac_check=false", "--set", "price.voltage_ranges=false", "--no-plots"]) == 0
    thin, full = (json.loads((d / "summary.json").read_text())["periods"][0]["cases"] for d in (priced, tmp_path / "full"))
    for case in ("no-svg", "svg"):
        assert full[case]["milp"]["binaries"] > thin[case]["milp"]["binaries"]
        # The optimum's value; the decision may differ among equally good ones. Where the OPF's
        # duals at a decision are not unique the MILP pays the ones best for the aggregator
        # (docs/models/dlmp.md#eq-d-29); the shipped run's decisions have unique prices.
        assert full[case]["milp"]["payment_usd_per_h"] == pytest.approx(thin[case]["milp"]["payment_usd_per_h"],
                                                                        rel=1e-7)
        assert thin[case]["payment_usd_per_h"] == pytest.approx(thin[case]["milp"]["payment_usd_per_h"], rel=1e-7)


def test_the_api_in_process_gives_the_price_directory(priced):
    """sim.api's price study writes the files of the command line's run, byte for byte, and reads
    its tables as DataFrames (the other studies: tests/sim/test_api.py)."""
    from sim import api

    result = api.run("price", api.load_config(priced / "config.toml"))
    written = {path.name: path.read_bytes() for path in priced.iterdir()}
    assert sorted(result.files) == sorted(written)
    assert [name for name in written if result.files[name] != written[name]] == []
    dlmp = result.table("dlmp")
    assert set(dlmp["case"]) == set(result.summary["cases"]) and (dlmp["dlmp_usd_per_mwh"] > 0).all()


def test_every_case_places_the_whole_load_within_the_sites(priced):
    summary = json.loads((priced / "summary.json").read_text())
    total, step = summary["workload"]["total_kw"], summary["workload"]["step_kw"]
    limits = {str(s["bus"]): s["max_kw"] for s in summary["sites"]}
    assert [p["period"] for p in summary["periods"]] == ["snapshot"]
    cases = summary["periods"][0]["cases"]
    for case in cases.values():
        assert sum(case["load_kw"].values()) == pytest.approx(total)
        for bus, kw in case["load_kw"].items():
            assert 0 <= kw <= limits[bus] and (kw / step) == pytest.approx(round(kw / step))
    # Pro rata over three equal sites: a third each.
    assert set(cases["pro-rata"]["load_kw"].values()) == {500.0}
    assert cases["no-svg"]["svg_kvar"] == {}
    for outputs in cases["svg"]["svg_kvar"].values():
        assert all(abs(q) <= 200.0 and q % 50.0 == 0 for q in outputs)


def test_the_numbers_match_an_independent_opf_at_each_decision(priced):
    """Re-solve the DSO's OPF at each case's decision and price it by hand: DLMP x kW plus
    reactive price x (QDC - QSVG), QDC = tan(acos 0.9) PDC."""
    summary = json.loads((priced / "summary.json").read_text())
    feeder = load_ieee37()
    settings = OpfSettings(45.0, 1.03, 0.95, 1.05, line_limits=True)
    generators = (DistributedGenerator("G711", 711, 150.0, 55.0), DistributedGenerator("G733", 733, 150.0, 58.0))
    tan = np.tan(np.arccos(0.9))
    prices = _rows(priced / "dlmp.csv")
    assert {r["period"] for r in prices} == {"snapshot"}
    for name, case in summary["periods"][0]["cases"].items():
        # A snapshot's case over the study is its one period's.
        for key in ("payment_usd_per_h", "min_voltage_pu", "site_unbalance_pct", "dlmp_range_usd_per_mwh"):
            assert {k: v for k, v in summary["cases"][name][key].items() if k != "period"} == case[key] \
                if isinstance(case[key], dict) else summary["cases"][name][key] == case[key]
        kw = {int(b): np.full(3, v / 3) for b, v in case["load_kw"].items()}
        svg = {int(b): np.array(q) for b, q in case["svg_kvar"].items()}
        opf = dso_opf(feeder, generators, settings, extra_kw=kw, extra_kvar={b: v * tan for b, v in kw.items()},
                      svg_kvar=svg)
        paid = sum(opf.dlmp_p[b] @ kw[b] + opf.dlmp_q[b] @ (kw[b] * tan - svg.get(b, 0.0)) for b in kw) / 1e3
        assert case["payment_usd_per_h"] == pytest.approx(paid, rel=1e-6)
        assert case["dso_cost_usd_per_h"] == pytest.approx(opf.cost_per_h, abs=1e-6)  # stored to 6 decimals
        lowest = min(float(v.min()) for v in opf.voltage_pu.values())
        assert case["min_voltage_pu"]["value"] == pytest.approx(lowest, abs=1e-6)
        for bus, pct in case["site_unbalance_pct"].items():
            assert pct == pytest.approx(100 * voltage_unbalance(opf.voltage_pu[int(bus)]), abs=1e-5)
        table = {(int(r["bus"]), r["phase"]): float(r["dlmp_usd_per_mwh"]) for r in prices if r["case"] == name}
        assert table[(738, "a")] == pytest.approx(opf.dlmp_p[738][0], abs=1e-5)
    sites = _rows(priced / "sites.csv")
    for name, case in summary["cases"].items():
        per_site = sum(float(r["payment_usd_per_h"]) for r in sites if r["case"] == name)
        assert per_site == pytest.approx(case["payment_usd_per_h"], abs=1e-5)


def test_pro_rata_congests_703_730_and_the_aggregator_pays_less(priced):
    """What the study shows on this feeder: pro rata puts 1,000 kW behind 703-730 (2/0 AA, 230 A),
    whose limit binds on phases a and c; G711 behind it (55 $/MWh) makes up the rest, so every bus
    behind the segment pays 10 $/MWh of congestion on those phases. The aggregator moves load to
    725 (not behind it) and pays less; its SVGs can only lower that further."""
    summary = json.loads((priced / "summary.json").read_text())
    cases = summary["periods"][0]["cases"]
    lines = {(b["segment"], b["phase"]): b["usd_per_mwh"] for b in cases["pro-rata"]["binding_line_limits"]}
    assert lines == {("703-730", "a"): pytest.approx(10.0, abs=1e-6), ("703-730", "c"): pytest.approx(10.0, abs=1e-6)}
    parts = {(int(r["bus"]), r["phase"]): float(r["congestion_usd_per_mwh"]) for r in _rows(priced / "dlmp.csv")
             if r["case"] == "pro-rata"}
    assert parts[738, "a"] == pytest.approx(10.0, abs=1e-6) and parts[738, "b"] == pytest.approx(0.0, abs=1e-9)
    assert parts[725, "a"] == pytest.approx(0.0, abs=1e-9)   # 725 is not behind 703-730
    assert cases["no-svg"]["payment_usd_per_h"] < cases["pro-rata"]["payment_usd_per_h"] - 1.0
    assert cases["svg"]["payment_usd_per_h"] <= cases["no-svg"]["payment_usd_per_h"] + 1e-9
    assert cases["no-svg"]["load_kw"]["725"] == 600.0


def test_same_config_same_bytes_and_the_effective_config_reruns(priced, tmp_path):
    again = tmp_path / "again"
    assert main(["price", str(priced / "config.toml"), "--out", str(again), "--quiet"]) == 0
    for name in FILES - {"config.toml"}:
        assert (again / name).read_bytes() == (priced / name).read_bytes(), name
    effective = tomllib.loads((priced / "config.toml").read_text())
    assert effective["seed"] == 2026 and effective["price"]["linearization"] == "strong-duality"


def test_a_mccormick_study_pays_what_strong_duality_pays(tmp_path):
    """`linearization` reaches the bilevel problem: the McCormick study's decision and payment are
    strong duality's on the same instance. The two linearizations are compared once, at the unit
    level: each against the enumeration of every decision, with SVGs, in
    tests/grid/feeder/test_three_phase.py. No SVG here: McCormick's product rows make an SVG case
    take seconds even on a small instance (experiments/bench_dlmp.py)."""
    from grid.feeder.bilevel import aggregator_bilevel
    from sim.config.schema import load_config
    from sim.studies.price.study import feeder_inputs, price_sites, price_workload

    data = _config()
    data["price"].update(linearization="mccormick", total_kw=600.0, svg_kvar=0.0, head_voltage_pu=1.0, ac_check=False)
    data["price"]["sites"] = data["price"]["sites"][:2]
    path = write_toml(tmp_path, data)
    assert main(["price", str(path), "--out", str(tmp_path / "m"), "--quiet", "--no-plots"]) == 0
    assert {p.name for p in (tmp_path / "m").iterdir()} == {n for n in FILES if not n.endswith(".png")}
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    price = load_config(path).price
    feeder, generators, settings = feeder_inputs(price)
    sites, _ = price_sites(price, feeder)
    dual = aggregator_bilevel(feeder, generators, settings, sites, price_workload(price, sites), svg=False,
                              price_bound=price.price_bound, linearization="strong-duality")
    assert summary["linearization"] == "mccormick"
    for case in ("no-svg", "svg"):  # without SVG ratings the two cases are one problem
        mine = summary["periods"][0]["cases"][case]
        assert mine["payment_usd_per_h"] == pytest.approx(dual.payment_per_h, rel=1e-7)
        assert mine["load_kw"] == {str(b): kw for b, kw in dual.decision.load_kw.items()}
        assert mine["milp"]["rows"] > dual.solve.rows  # McCormick's product rows: its own MILP
    # Coordination pays here, so the payments compared are not the pro-rata baseline's.
    assert summary["cases"]["no-svg"]["payment_usd_per_h"] < summary["cases"]["pro-rata"]["payment_usd_per_h"] - 1.0


def _broken(change) -> dict:
    data = _config()
    change(data["price"])
    return data


@pytest.mark.parametrize("change, expected", [
    (lambda p: p["sites"][0].update(bus=999), "price.sites[0].bus: bus 999 is not a load bus of ieee37"),
    (lambda p: p["sites"][0].update(bus=799), "price.sites[0].bus: bus 799 is not a load bus of ieee37"),
    (lambda p: p["generators"][0].update(bus=799), "price.generators[0].bus: bus 799 is not a load bus"),
    (lambda p: p.update(total_kw=2000.0), "price.total_kw: 2000 kW does not fit the sites (0 to 1800 kW"),
    (lambda p: p.update(total_kw=1550.0), "price.total_kw: 1550 kW is not a whole number of 100-kW steps"),
    (lambda p: p.update(linearization="fast"),
     "price.linearization: unknown linearization 'fast'; choose one of mccormick, strong-duality"),
    (lambda p: p.update(svg_step_kvar=75.0), "svg_kvar 200 is not a whole number of 75-kvar steps"),
    (lambda p: p["sites"][1].update(bus=738), "price.sites: two sites at one bus"),
    (lambda p: p["sites"][0].update(min_kw=700.0), "price.sites[0]: site at bus 738: need 0 <= min_kw <= max_kw"),
    (lambda p: p.update(head_voltage_pu=0.94), "head_voltage_pu 0.94 must lie inside [v_min_pu, v_max_pu]"),
    (lambda p: p["generators"][0].update(quadratic_cost=0.001),
     "strong duality needs linear generator costs; use \"mccormick\""),
    (lambda p: (p.update(head_voltage_pu=0.99, total_kw=1800.0), p.update(generators=[])),
     "price: no placement of 1800 kW over the sites keeps every voltage within [0.95, 1.05] p.u."),
    (lambda p: p.update(colour="red"), "price: unknown field 'colour'"),
    (lambda p: p.update(feeder="ieee13"), "price.feeder: unknown feeder 'ieee13'; choose one of ieee37, ieee123"),
    (lambda p: (p.update(feeder="ieee123", generators=[]), p["sites"][0].update(bus=114)),
     "price.sites[0].bus: bus 114 of ieee123 has phase(s) a only; a data-center site takes all three: use a "
     "three-phase bus, e.g. 1, 7, 8, 13, 18, ... 450"),
    (lambda p: (p.update(feeder="ieee123", generators=[]), p["sites"][0].update(bus=799)),
     "price.sites[0].bus: bus 799 is not a load bus of ieee123"),
    (lambda p: p.update(time_limit_s=1e308), "price.time_limit_s: input should be less than or equal to 1000000"),
    (lambda p: p.update(ac_rounds=50), "price.ac_rounds: input should be less than or equal to 20"),
])
def test_bad_price_configs_get_one_line_errors_naming_the_field(tmp_path, capsys, change, expected):
    path = write_toml(tmp_path, _broken(change))
    assert main(["price", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_bad_worker_count_is_one_line_before_any_work(tmp_path, capsys):
    assert main(["price", str(EXPERIMENTS / "ieee37_price.toml"), "--out", str(tmp_path / "out"), "--quiet",
                 "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--workers: give 1 to 1024 worker processes" in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_missing_price_table_and_a_price_only_config_in_run(tmp_path, capsys):
    data = {"seed": 1, "price": _config()["price"]}
    assert main(["price", str(EXPERIMENTS / "paper_4bus_additive.toml"), "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "price: missing [price]; dcmarket price reads the config's [price] table: add one" in capsys.readouterr().err
    assert main(["run", str(write_toml(tmp_path, data, "only.toml")), "--quiet"]) == 2
    assert "run it with dcmarket price" in capsys.readouterr().err


def test_log_on_a_price_directory_says_what_it_is(priced, capsys):
    assert main(["log", str(priced)]) == 2
    assert "is a price directory" in capsys.readouterr().err


# --- After the auction: the aggregator operates its members' sites ---------------------------------

@pytest.fixture(scope="module")
def auction_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("auction_price")
    config = EXPERIMENTS / "ieee37_auction_price.toml"
    assert main(["run", str(config), "--out", str(folder / "run"), "--quiet"]) == 0
    return folder / "run"


def test_a_run_with_price_operates_the_sites_the_aggregator_won(auction_run):
    summary = json.loads((auction_run / "summary.json").read_text())
    names = {p.name for p in (auction_run / "price").iterdir()}
    assert FILES - {"config.toml"} | {"ac_voltages.csv"} <= names <= FILES | {"ac_voltages.csv", "ac_floors.csv",
                                                                          "ac_line_cuts.csv"}
    capacity = {p["id"]: p for p in summary["products"]}
    expected: dict[int, float] = {}
    for product in summary["bundles"]["DCA"]:
        expected[capacity[product]["bus"]] = expected.get(capacity[product]["bus"], 0.0) + capacity[product]["capacity_mw"]
    sites = summary["price"]["sites"]
    assert summary["price"]["sites_from"] == "the auction"
    assert {s["bus"]: s["max_kw"] for s in sites} == pytest.approx({b: mw * 1e3 for b, mw in expected.items()})
    # Each site is held by the member the aggregator handed its products to.
    handed = summary["aggregators"]["DCA"]["members"]
    for site in sites:
        holders = {name for name, m in handed.items() if any(capacity[p]["bus"] == site["bus"] for p in m["products"])}
        assert set(site["member"].split("+")) == holders
    # utilization = 1: every whole 100-kW step the sites can take is placed.
    priced = json.loads((auction_run / "price" / "summary.json").read_text())
    steps = sum(int(s["max_kw"] // 100 + 1e-9) for s in sites)
    assert priced["workload"]["total_kw"] == pytest.approx(100.0 * steps)
    assert summary["price"]["payment_usd_per_h"]["svg"] == priced["cases"]["svg"]["payment_usd_per_h"]


def _auction_config(change) -> dict:
    data = tomllib.loads((EXPERIMENTS / "ieee37_auction_price.toml").read_text())
    change(data)
    return data


@pytest.mark.parametrize("change, expected", [
    (lambda d: d["network"].update(case="ieee33bw", candidate_buses=[18], demand_mw={"18": 1.0}),
     "price: the sites would come from the auction on 'ieee33bw', but the price study runs on 'ieee37'"),
    (lambda d: d["price"].update(aggregator="nobody"), "price.aggregator: no aggregator named 'nobody' bids in this run"),
    (lambda d: d.update(bidders=[d["bidders"][1]]), "price.aggregator: the run has 0 aggregators"),
    (lambda d: d["price"]["generators"][0].update(bus=1), "price.generators[0].bus: bus 1 is not a load bus of ieee37"),
])
def test_run_with_a_bad_price_table_fails_in_one_line(tmp_path, capsys, change, expected):
    path = write_toml(tmp_path, _auction_config(change), "run.toml")
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_operated_sites_merge_a_bus_and_keep_unassigned_products():
    """Two members at one bus share its site; a product no member wants stays with the aggregator."""
    from agents.aggregator import Aggregator
    from mechanisms.products import Product

    class Stub:
        name = "AGG"

        def hand_out(self, won, prices):
            from agents.aggregator import MemberShare

            return ({"x": MemberShare(("firm@5",), 1.0, 0.0), "y": MemberShare(("flex@5",), 1.0, 0.0)}, ("firm@7",))

    products = {"firm@5": Product("firm@5", 5, 0.0, 0.3), "flex@5": Product("flex@5", 5, 0.05, 0.1),
                "firm@7": Product("firm@7", 7, 0.0, 0.2)}
    sites = Aggregator.operated_sites(Stub(), ["firm@5", "flex@5", "firm@7"], {}, products)
    assert [(s.member, s.bus, round(s.capacity_mw, 9)) for s in sites] == [("x+y", 5, 0.4), ("AGG", 7, 0.2)]


def test_no_load_to_place_is_reported_not_a_crash(tmp_path, capsys):
    """total_kw = 0 has no average price: the report and costs.png said None.__format__."""
    path = write_toml(tmp_path, _broken(lambda p: p.update(total_kw=0.0)))
    assert main(["price", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "0 kW of data-center load" in captured.out and captured.err == ""
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["cases"]["svg"]["average_price_usd_per_mwh"] is None
    assert (tmp_path / "out" / "costs.png").read_bytes().startswith(b"\x89PNG")


def test_a_milp_decision_on_a_limit_is_priced_within_the_milps_round_off():
    """A decision whose lowest voltage sits 0.5e-6 p.u. under the floor (as a MIP solution may, by
    HiGHS's tolerance) has no OPF in the exact band; from a MILP it is priced in the band widened by
    MILP_ROUND_OFF_PU, at the same voltages. Five times further under, it is infeasible either way,
    and a decision not from a MILP is never widened."""
    import dataclasses

    from grid.feeder.bilevel import DataCenterSite, Decision, Hour
    from grid.feeder.inputs import OpfSettings
    from grid.feeder.opf import dso_opf
    from grid.network.three_phase import load_ieee37
    from sim.studies.price.periods import MILP_ROUND_OFF_PU, decision_opf

    feeder = load_ieee37()
    sites = (DataCenterSite(738, 600.0, 0.0, 0.9, 0.0, "north"),)
    decision = Decision({738: 600.0})
    free = OpfSettings(head_voltage_pu=1.0, v_min_pu=0.5, v_max_pu=1.5)
    lowest = min(float(v.min()) for v in dso_opf(feeder, (), free, **decision.opf_inputs(sites)).voltage_pu.values())
    for under, priced in ((0.5 * MILP_ROUND_OFF_PU, True), (5 * MILP_ROUND_OFF_PU, False)):
        hour = Hour(feeder, (), dataclasses.replace(free, v_min_pu=lowest + under, v_max_pu=1.05))
        assert decision_opf(hour, decision, sites, "highs") is None
        opf = decision_opf(hour, decision, sites, "highs", from_milp=True)
        assert (opf is not None) == priced
        if priced:
            assert min(float(v.min()) for v in opf.voltage_pu.values()) == pytest.approx(lowest, abs=1e-9)
