"""sim.api, dcmarket from Python: every study in process gives the files the command line writes
for the same config, byte for byte; configs load from files and dicts with --set paths; the Mesa
model steps; errors are the command line's one line; and the command line never imports it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from sim import api
from sim.cli import main
from sim.errors import ConfigError
from sim.studies.registry import STUDIES
from sim.studies.result import AuctionResult, CapacityResult, StudyResult
from tests.sim.studies.test_plan import PLAN

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"
ADDITIVE = EXPERIMENTS / "paper_4bus_additive.toml"


def _directory(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its path inside it, as `StudyResult.files` names them."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


def _same_files(result: StudyResult, folder: Path) -> None:
    written = _directory(folder)
    assert sorted(result.files) == sorted(written)
    different = [name for name in written if result.files[name] != written[name]]
    assert different == []


# -- the same bytes as the command line ----------------------------------------------------------
def test_auction_in_process_gives_the_run_directory(tmp_path):
    assert main(["run", str(ADDITIVE), "--out", str(tmp_path / "cli"), "--quiet", "--plots"]) == 0
    result = api.run("auction", ADDITIVE, plots=True)
    assert isinstance(result, AuctionResult)
    _same_files(result, tmp_path / "cli")
    result.write(tmp_path / "api")
    assert _directory(tmp_path / "api") == _directory(tmp_path / "cli")


def test_auction_with_overrides_seed_and_a_loaded_config(tmp_path):
    assert main(["run", str(ADDITIVE), "--out", str(tmp_path / "cli"), "--quiet", "--seed", "7",
                 "--set", "auction.increment=2", "--unset", "auction.max_rounds"]) == 0
    config = api.load_config(ADDITIVE, overrides={"auction.increment": 2}, unset=["auction.max_rounds"], seed=7)
    assert (config.seed, config.auction.increment, config.auction.max_rounds) == (7, 2, 1000)
    _same_files(api.run("auction", config), tmp_path / "cli")


def test_capacity_in_process_gives_the_capacity_directory(tmp_path):
    assert main(["capacity", str(ADDITIVE), "--out", str(tmp_path / "cli"), "--quiet", "--verify", "3000",
                 "--set", "load.scenarios=400", "--no-theory"]) == 0
    config = api.load_config(ADDITIVE, overrides={"load.scenarios": 400})
    result = api.run("capacity", config, verify=3000, theory=False)
    assert isinstance(result, CapacityResult)
    _same_files(result, tmp_path / "cli")
    assert [c.product for c in result.checks] == ["firm@3", "flex@3", "firm@4", "flex@4"]
    assert result.summary["risk_check"]["scenarios"] == 3000


def test_plan_from_a_dict_gives_the_plan_directory(tmp_path):
    tables = {"seed": 7, "plan": {**PLAN, "out_of_sample": 0, "dro_radius": 0.0}}  # one MILP
    path = tmp_path / "plan.toml"
    path.write_text(tomli_w.dumps(tables))
    assert main(["plan", str(path), "--out", str(tmp_path / "cli"), "--quiet", "--no-frontier"]) == 0
    result = api.run("plan", tables, frontier=False)
    _same_files(result, tmp_path / "cli")
    assert set(result.summary["plans"]) == {"sample"} and set(result.table("plan")["plan"]) <= {"sample"}


# The price study in process against the command line's directory: in tests/sim/studies/price/test_study.py,
# on that module's run of the same config (a price study takes seconds).


def test_sweep_runs_into_its_directory(tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(tomli_w.dumps({"base": str(ADDITIVE), "seeds": [1], "grid": {"auction.increment": [2, 5]}}))
    result = api.run("sweep", sweep, out=tmp_path / "out")
    assert (result.runs, result.failed, result.out) == (2, 0, tmp_path / "out")
    assert (tmp_path / "out" / "results.parquet").is_file()
    with pytest.raises(ConfigError, match=r"^sweep: missing option 'out'; its options are out, workers"):
        api.run("sweep", sweep)


# -- configs --------------------------------------------------------------------------------------
def test_a_dict_of_tables_loads_as_its_file():
    tables = tomllib.loads(ADDITIVE.read_text())
    assert api.load_config(tables) == api.load_config(ADDITIVE)
    assert api.load_config(tables, overrides={"auction.increment": 3}, solver="glpk") == api.load_config(
        ADDITIVE, overrides={"auction.increment": 3}, solver="glpk")
    assert tables == tomllib.loads(ADDITIVE.read_text())  # the caller's dict is left as it was


@pytest.mark.parametrize("options, cli", [
    ({"overrides": {"auction.increment": -1}}, ["--set", "auction.increment=-1"]),
    ({"overrides": {"bidders[5].name": "X"}}, ["--set", "bidders[5].name=X"]),
    ({"overrides": {"bidders[0].values": {"firm@3": True}}}, ["--set", "bidders[0].values={\"firm@3\" = true}"]),
    ({"unset": ["nothing.here"]}, ["--unset", "nothing.here"]),
    ({"solver": "cplex-by-mistake"}, ["--set", "solver=cplex-by-mistake"]),
])
def test_config_errors_are_the_command_lines(tmp_path, capsys, options, cli):
    assert main(["run", str(ADDITIVE), "--out", str(tmp_path / "r"), "--quiet", *cli]) == 2
    printed = capsys.readouterr().err.strip()
    with pytest.raises(ConfigError) as error:
        api.load_config(ADDITIVE, **options)
    assert f"error: {error.value}" == printed
    assert "\n" not in str(error.value)


def test_bad_paths_and_a_missing_file_are_one_line():
    with pytest.raises(ConfigError, match=r"^overrides: 'auction\.\.increment' is not a field path"):
        api.load_config(ADDITIVE, overrides={"auction..increment": 2})
    with pytest.raises(ConfigError, match=r"^unset: 'a=1': --unset takes a field path without a value"):
        api.load_config(ADDITIVE, unset="a=1")
    with pytest.raises(ConfigError, match=r"nowhere\.toml: config file not found; check the path$"):
        api.load_config(EXPERIMENTS / "nowhere.toml")


def test_relative_paths_start_from_base_dir_or_the_config_file(tmp_path, monkeypatch):
    # 200 scenarios: at risk 0.05 the tail holds the 10 that a risk level needs.
    (tmp_path / "loads.csv").write_text("1,3,4\n" + "25,15,20\n" * 199 + "22,12,25\n")
    tables = tomllib.loads(ADDITIVE.read_text())
    tables["load"] = {"scenarios_csv": "loads.csv"}
    (tmp_path / "csv.toml").write_text(tomli_w.dumps(tables))
    monkeypatch.chdir(REPO)
    from_file = api.run("auction", tmp_path / "csv.toml")
    from_dict = api.run("auction", tables, base_dir=tmp_path)
    assert from_dict.files == from_file.files and from_file.files["scenarios.csv"] == (tmp_path / "loads.csv").read_bytes()
    with pytest.raises(ConfigError, match=r"^config: .*loads\.csv"):  # the current folder has no loads.csv
        api.market_model(api.load_config(tables))


# -- studies and options -------------------------------------------------------------------------
def test_every_registered_study_runs_in_process():
    assert api.STUDY_NAMES == tuple(STUDIES)
    assert set(api._IN_PROCESS) | {"sweep"} == set(STUDIES)


def test_an_unknown_study_or_option_lists_the_names():
    config = api.load_config(ADDITIVE)
    with pytest.raises(ConfigError, match=r"^unknown study 'auctions'; the studies are auction, capacity, plan, "
                                          r"price, headroom, evolve, sweep$"):
        api.run("auctions", config)
    with pytest.raises(ConfigError, match=r"^auction: unknown option 'verify'; its options are plots, "
                                          r"summary_only, progress$"):
        api.run("auction", config, verify=10)
    with pytest.raises(ConfigError, match=r"^verify: -1 is not a non-negative integer"):
        api.run("capacity", config, verify=-1)


def test_capacity_needs_a_network_and_names_the_config(tmp_path):
    tables = tomllib.loads(ADDITIVE.read_text())
    del tables["network"], tables["load"], tables["products"]
    tables["products"] = [{"id": "A", "capacity_mw": 1.0}]
    with pytest.raises(ConfigError, match=r"^config: dcmarket capacity needs \[network\], \[load\] and \[products\]"):
        api.run("capacity", tables)


def test_progress_goes_to_the_function_given():
    lines: list[str] = []
    api.run("auction", ADDITIVE, progress=lines.append)
    assert lines[0] == "network and background scenarios" and any(line.startswith("round 1:") for line in lines)


# -- tables ---------------------------------------------------------------------------------------
def test_auction_tables_price_paths_allocation_and_payments():
    result = api.run("auction", ADDITIVE)
    summary = result.summary
    paths = result.table("price_paths")
    # The paper's Example 1 (docs/studies/four-bus.md): the standing prices after rounds 1 and 5.
    assert list(paths.columns) == ["firm@3", "flex@3", "firm@4", "flex@4"]
    assert paths.loc[1].tolist() == [5.0, 5.0, 5.0, 5.0] and paths.iloc[-1].tolist() == [20.0, 5.0, 10.0, 5.0]
    rounds = result.table("rounds")
    assert len(paths) == rounds["round"].nunique() == summary["rounds_run"]
    allocation = result.table("allocation").set_index("product")
    assert allocation["winner"].to_dict() == summary["allocation"]
    assert allocation["price"].to_dict() == summary["prices"]
    payments = result.table("payments").set_index("bidder")
    assert payments["payment"].to_dict() == summary["payments"]
    assert payments["surplus"].to_dict() == summary["surplus"]
    with pytest.raises(KeyError, match="allocation, bids, capacity, payments, price_paths, products, rounds"):
        result.table("prices")


def test_capacity_table_has_a_row_per_candidate_bus():
    result = api.run("capacity", ADDITIVE, verify=0, theory=False, plots=False)
    assert "capacity_map.png" not in result.files
    capacity = result.table("capacity")
    assert capacity["bus"].tolist() == [3, 4]
    assert capacity["firm_mw"].tolist() == pytest.approx([10.0, 10.0])  # the paper's firm capacity
    skipped = result.table("risk_check")  # --verify 0: the header alone
    assert skipped.empty and "realised_probability" in skipped.columns and result.checks is None


# -- step by step ---------------------------------------------------------------------------------
def test_market_model_steps_to_the_same_outcome_as_the_run():
    config = api.load_config(ADDITIVE)
    model = api.market_model(config)
    assert model.running and model.datacollector.get_table_dataframe("rounds").empty
    model.step()
    model.step()
    rounds = model.datacollector.get_table_dataframe("rounds")
    assert sorted(set(rounds["round"])) == [1, 2] and len(rounds) == 2 * len(model.products)
    outcome = model.run_auction()
    assert not model.running
    result = api.run("auction", config)
    assert outcome == result.outcome
    assert model.judge().certificate.prices_form_equilibrium == result.summary["equilibrium"]["holds"]


def test_market_model_errors_name_the_config(tmp_path):
    tables = tomllib.loads(ADDITIVE.read_text())
    tables["network"]["candidate_buses"] = [3, 99]
    tables["network"]["demand_mw"] = {"3": 40, "99": 30}
    with pytest.raises(ConfigError, match=r"^config: .*99"):
        api.market_model(tables)


# -- the command line stays fast ------------------------------------------------------------------
def test_the_command_line_never_imports_the_api_nor_what_a_run_does_not_use(tmp_path):
    """A 4-bus auction (HiGHS, no [plan], no [price]) loads neither the API nor Pyomo: its LPs
    go to HiGHS directly, and the studies after an auction are imported only when configured."""
    probe = ("import sys\nfrom sim.cli import main\n"
             f"code = main(['run', {str(ADDITIVE)!r}, '--out', {str(tmp_path / 'r')!r}, '--quiet', '--plots'])\n"
             "print(code, *(name in sys.modules for name in ('sim.api', 'pyomo', 'sim.studies.plan', "
             "'sim.studies.price.study')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.stdout.splitlines()[-1].split() == ["0", "False", "False", "False", "False"], done.stderr[-2000:]
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["welfare"] == 95.0
