"""Malformed configs: each gives one line on stderr naming the field, and no run directory."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import tomli_w

from sim.cli import main

EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"


def _base() -> dict:
    config = tomllib.loads((EXPERIMENTS / "paper_4bus_additive.toml").read_text())
    config["load"]["scenarios"] = 200  # errors must not depend on the size of the study
    return config


def _set(config: dict, path: str, value) -> dict:
    *parents, leaf = path.split("/")
    node = config
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if value is _DELETE:
        del node[leaf]
    else:
        node[int(leaf) if isinstance(node, list) else leaf] = value
    return config


_DELETE = object()

# (edit of the additive example, text the one-line error must contain)
CASES = [
    ("auction/increment", -5, "auction.increment"),
    ("auction/incremnt", 5, "unknown field 'incremnt'; did you mean 'increment'?"),
    ("auction", _DELETE, "auction: missing [auction]; the 'saa' mechanism needs its rules (increment)"),
    ("bidders", _DELETE, "bidders: missing [[bidders]]; dcmarket run needs [[bidders]] (or a [population]) and the mechanism's [auction]"),
    ("mechanism", {"kind": "dutch"}, "mechanism.kind: unknown mechanism 'dutch'; choose one of saa"),
    ("auction/tie_break", "coin", "auction.tie_break: unknown tie_break 'coin'"),
    ("auction/max_rounds", 0, "auction.max_rounds"),
    ("seed", -1, "seed"),
    ("solver", "cplex", "solver"),
    ("bidders/0/profile", "linear", "bidders[0].profile: unknown profile 'linear'"),
    ("bidders/0/values/firm@3", -20, "bidders[0].values.firm@3: value -20 $ is negative"),
    ("bidders/1/values/firm@9", 20, "bidders[1].values.firm@9: unknown product 'firm@9'"),
    ("bidders/1/name", "B1", "bidders: bidder name 'B1' is used twice"),
    ("bidders/0/by_size", [30, 50], "bidders[0]: field 'by_size' does not belong to profile 'additive'"),
    ("bidders/0/strategy", "sniping", "bidders[0].strategy: unknown strategy 'sniping'"),
    ("bidders/0/bundle_ties", "coin", "bidders[0].bundle_ties: unknown bundle_ties 'coin'"),
    ("network/case", "ieee-9999", "network.case: unknown network case 'ieee-9999'; known cases: paper-4bus"),
    ("network", {"case": "paper-4bus", "candidate_buses": [3, 7], "demand_mw": 30},
     "network.candidate_buses[1]: unknown bus 7; case 'paper-4bus' has buses 1, 2, 3, 4"),
    ("network/demand_mw", {"3": 40}, "network: demand_mw has no value for candidate bus 4"),
    ("network/demand_mw/4", -30, "network.demand_mw: bus 4: demand must be a positive number of MW"),
    ("network/demand_mw/x", 10, "network.demand_mw: key 'x' is not a bus number"),
    ("seed", True, "seed: input should be a valid integer"),
    ("auction/increment", "5", "auction.increment: input should be a valid number"),
    ("auction/opening_bid", float("inf"), "auction.opening_bid: input should be a finite number"),
    ("auction/increment", 1e300, "auction.increment: input should be less than or equal to 1000000000000"),
    ("bidders/0/values/firm@3", float("nan"), "bidders[0].values.firm@3: input should be a finite number"),
    ("load/buses/9", {"mean": 1, "variance": 1, "lower": 0, "upper": 2}, "load.buses.9: unknown bus 9"),
    ("load/buses/3/lower", 25, "load.buses.3: lower (25 MW) must be below upper (20 MW)"),
    ("load/buses/3/variance", 0, "load.buses.3.variance"),
    ("load/scenarios", 0, "load.scenarios"),
    ("load/scenarios_csv", "p.csv", "load: give either scenarios_csv or scenarios"),
    ("products/risk_levels", [0.05, 0.0500000001], "products.risk_levels: risk levels 0.05 and 0.0500000001 are the same tier (5%)"),
    ("products/risk_mode", "union", "products.risk_mode: unknown risk_mode 'union'; choose one of per_constraint, joint"),
    ("products/formulation", "dense", "products.formulation: unknown formulation 'dense'; choose one of exact, scenario"),
    ("products/block_mw", 0, "products.block_mw: input should be greater than 0"),
    ("products/touch_factor", 1.5, "products.touch_factor: input should be less than or equal to 1"),
    ("network/slack", "sideways", "network.slack: unknown slack 'sideways'; choose one of reference, distributed"),
    ("network/withdrawal_limit_mw", -5, "network.withdrawal_limit_mw: withdrawal limit must be a positive number of MW"),
    ("network/case", "grids/nowhere.m", "network.case: case grids/nowhere.m: no such file or folder"),
    ("load/spread", {"sd_fraction": 0.1}, "load: give either [load.buses] (a distribution per bus) or [load.spread]"),
    ("load/correlation", 1.0, "load.correlation: input should be less than 1"),
    ("load/scenarios", 10**9, "load.scenarios: "),
    ("bidders/0/value_per_mw", {"firm@3": 1}, "bidders[0]: profile 'additive' needs one of the fields 'values' or 'value_per_mw', not both"),
    ("bidders/0/values", _DELETE, "bidders[0]: profile 'additive' needs one of the fields 'values' or 'value_per_mw'"),
    ("products/risk_levels", [1.5], "products.risk_levels: risk level (epsilon) 1.5 must lie in [1e-6, 1)"),
    ("products/risk_levels", [1e-320], "products.risk_levels: risk level (epsilon) 1e-320 must lie in [1e-6, 1)"),
    ("load/scenarios", 10**11, "load.scenarios: input should be less than or equal to 1000000000"),
    ("network/demand_mw/03", 1, "network.demand_mw: bus 3 is given twice (as '03')"),
    ("network/demand_mw/4_0", 1, "network.demand_mw: key '4_0' is not a bus number"),
    ("products", [{"id": "A", "capacity_mw": 5}], "products: explicit [[products]] cannot be combined with [network]"),
    ("network", _DELETE, "network: missing [network]"),
    # Ceilings (Config notes, Ceilings): past them sums overflow (1e308 MW crashed the tie-break QP)
    # or the study never ends (9.2e18 MW hung past 30 s).
    ("network/demand_mw", 1e308, "network.demand_mw: input should be less than or equal to 1000000 (got 1e+308)"),
    ("network/demand_mw/4", 9.2e18, "network.demand_mw.4: input should be less than or equal to 1000000 (got 9.2e+18)"),
    ("network/demand_mw/4", 1e-300, "network.demand_mw: bus 4: demand must be at least 1e-06 MW (the smallest product)"),
    ("network/withdrawal_limit_mw", 1e300, "network.withdrawal_limit_mw: input should be less than or equal to 1000000"),
    ("network/import_limit_mw", 1e300, "network.import_limit_mw: input should be less than or equal to 1000000"),
    ("network/default_rating_mw", 1e300, "network.default_rating_mw: input should be less than or equal to 1000000"),
    ("load/buses/3/mean", -1e300, "load.buses.3.mean: input should be greater than or equal to -1000000"),
    ("load/buses/3/variance", 1e300, "load.buses.3.variance: input should be less than or equal to 1000000000000"),
    ("products/block_mw", 1e-300, "products.block_mw: 1e-300 MW splits firm@3 (10 MW) into 1e+301 blocks; at most 1,000"),
    ("security/budget", 1e300, "security.budget: input should be less than or equal to 1000000"),
    ("seed", 2**63, "seed: input should be less than or equal to 9223372036854775807"),
    ("auction/max_rounds", 10**12, "auction.max_rounds: input should be less than or equal to 1000000"),
    ("auction/waivers", 10**12, "auction.waivers: input should be less than or equal to 1000000"),
    ("bidders/0/strategy", {"name": "demand_reduction", "keep": 10**12}, "bidders[0].strategy: keep: input should be less"),
    # Too few scenarios in the tail of the risk level: firm would equal flexible, silently.
    ("load/scenarios", 100, "load.scenarios: 100 scenarios leave 5 in the tail of products.risk_levels 0.05 (risk "
                            "level x scenarios must be at least 10); use at least 200 scenarios, or risk levels of at least 0.1"),
    ("products/risk_levels", [0.2, 0.01], "load.scenarios: 200 scenarios leave 2 in the tail of products.risk_levels 0.01"),
]


@pytest.mark.parametrize("path, value, expected", CASES, ids=[c[0] + "=" + repr(c[1])[:12] for c in CASES])
def test_malformed_config_gives_one_line_error_and_no_run_directory(tmp_path, capsys, path, value, expected):
    config_path = tmp_path / "bad.toml"
    config_path.write_text(tomli_w.dumps(_set(_base(), path, value)))
    out = tmp_path / "run"
    assert main(["run", str(config_path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert expected in err, err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]  # nothing written, not even a temp dir


@pytest.mark.parametrize(
    "edit, expected",
    [
        # Capitalised product ids stay in the path.
        (lambda c: c["bidders"][1].__setitem__("values", {"A": 2e13}), "bidders[1].values.A: input should be less"),
        (lambda c: c.__setitem__("produts", {"risk_levels": [0.05]}), "unknown field 'produts'; did you mean 'products'?"),
        (lambda c: c.__setitem__("products", 5), "products: input should be a table, or a list (got 5)"),
    ],
    ids=["capital-key", "typo-products", "products-not-table"],
)
def test_messages_use_the_names_users_write(tmp_path, capsys, edit, expected):
    config = tomllib.loads((EXPERIMENTS / "complements_exposure.toml").read_text())
    if "produts" in expected or expected.startswith("products: input"):
        config = _base()
    edit(config)
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(config))
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert expected in err and "product_grid" not in err and "ProductGridConfig" not in err, err


def test_invalid_toml_and_missing_file(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = \n")
    assert main(["run", str(bad), "--out", str(tmp_path / "run")]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "run")]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_missing_scenarios_csv_names_the_field(tmp_path, capsys):
    config = _base()
    config["load"] = {"scenarios_csv": "missing.csv"}
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(config))
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"load\.scenarios_csv: .*missing\.csv", err), err
    assert not (tmp_path / "run").exists()


def test_too_many_scenarios_are_refused_before_any_work_with_the_estimate(tmp_path, capsys):
    config = _base()
    config["load"]["scenarios"] = 10**9
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(config))
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "load.scenarios: " in err and "need about" in err and "use at most" in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, where", [
    ("seed = 1\nx = " + "[" * 5000 + "]" * 5000 + "\n", ""),  # the reader itself would recurse
    ("seed = 1\nx = " + "{ a = " * 3000 + "1" + " }" * 3000 + "\n", ""),
    ("seed = 1\nx = " + "[" * 40 + "]" * 40 + "\n", "x" + "[0]" * 18),  # read, then measured
    ("[" + ".".join(["a"] * 5000) + "]\nb = 1\n", "a.a.a"),  # dotted keys nest without recursion
])
def test_toml_nested_past_the_ceiling_is_one_line(tmp_path, capsys, text, where):
    path = tmp_path / "deep.toml"
    path.write_text(text)
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"error: {path}: {where}" in err and "nested more than 32 deep (the ceiling)" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep.toml"]


def test_toml_nested_to_the_ceiling_is_read(tmp_path, capsys):
    config = _base()
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(config) + "\n[extra]\nx = " + "[" * 31 + "]" * 31 + "\n")
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "unknown field 'extra'" in capsys.readouterr().err  # read, then refused by the schema


LONG = "x" * 100_000


@pytest.mark.parametrize("path, value, expected", [
    # A union (a number, or a table by bus) reports the branch the input took, not "float".
    ("network/demand_mw", {"3": "x", "4": 1}, "network.demand_mw.3: input should be a valid number (got 'x')"),
    ("network/demand_mw", "abc", "network.demand_mw: input should be a number, or a table (got 'abc')"),
    ("bidders/0/strategy", 5, "bidders[0].strategy: input should be a string, or a table (got 5)"),
    ("bidders", [5], "bidders[0]: expected a table, e.g. [section] or { key = value } (got 5)"),
    # Echoed values and keys are cut, so that a 100 KB name gives a line, not a page.
    ("mechanism", {"kind": LONG}, "mechanism.kind: unknown mechanism 'xxxxxxxx"),
    ("auction/increment", LONG, "auction.increment: input should be a valid number (got 'xxxxxx"),
    (LONG, 1, "unknown field 'xxxxxxx"),
    ("bidders/0/strategy", LONG, "bidders[0].strategy: unknown strategy 'xxxxxx"),
], ids=["union-table", "union-neither", "union-strategy", "not-a-table", "long-kind", "long-number",
        "long-key", "long-strategy"])
def test_messages_name_the_branch_and_cut_echoes(tmp_path, capsys, path, value, expected):
    config = _base()
    config.setdefault("mechanism", {})
    path_ = tmp_path / "bad.toml"
    path_.write_text(tomli_w.dumps(_set(config, path, value)))
    assert main(["run", str(path_), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err[:500]
    assert len(err) < 400, len(err)
    for raw in (".float", "dict[", "list[", "extract fields"):
        assert raw not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_a_long_set_value_is_cut(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["run", str(EXPERIMENTS / "paper_4bus_additive.toml"), "--set", LONG])
    err = capsys.readouterr().err
    assert "argument --set: 'xxxxxx" in err and "has no '='" in err and len(err) < 1000, err[:300]


@pytest.mark.parametrize("rows", [1, 199])
def test_a_scenario_file_too_short_for_the_risk_level_is_refused(tmp_path, capsys, rows):
    """A one-row file was accepted silently: firm = flexible, "0 of 0 flexible products"."""
    (tmp_path / "loads.csv").write_text("1,3,4\n" + "25,15,20\n" * rows)
    config = _base()
    config["load"] = {"scenarios_csv": "loads.csv"}
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(config))
    for command in ("run", "capacity"):
        assert main([command, str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"error: {path}: load.scenarios_csv: loads.csv: {rows} scenario" in err, err
        assert "in the tail of products.risk_levels 0.05 (risk level x scenarios must be at least 10); use at least " \
               "200 scenarios" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "loads.csv"]
