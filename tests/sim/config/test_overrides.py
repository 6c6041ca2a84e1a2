"""`--set KEY=VALUE` overrides: parsing, applying to the config's tables, and a run with an
override against the same run from an edited file."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import tomli_w

from sim.cli import main
from sim.config.overrides import (
    OverrideError,
    apply_overrides,
    parse_override,
    parse_path,
    parse_unset,
    parse_value,
)

EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"


@pytest.mark.parametrize("key, path", [
    ("seed", ("seed",)),
    ("auction.increment", ("auction", "increment")),
    ("bidders[1].values.firm@3", ("bidders", 1, "values", "firm@3")),
    ("network.demand_mw.18", ("network", "demand_mw", "18")),
    ("a[0][2].b", ("a", 0, 2, "b")),
])
def test_paths_split_into_keys_and_indices(key, path):
    assert parse_path(key) == path


@pytest.mark.parametrize("text, value", [
    ("2", 2), ("2.5", 2.5), ("true", True), ("[0.05, 0.1]", [0.05, 0.1]), ('"ieee37"', "ieee37"),
    ("ieee37", "ieee37"), ("{ a = 1 }", {"a": 1}), ("1e3", 1000.0),
])
def test_values_are_toml_or_else_strings(text, value):
    assert parse_value(text) == value


@pytest.mark.parametrize("text, message", [
    ("seed", "has no '='"),
    ("=3", "names no field"),
    ("a..b=1", "is not a field path"),
])
def test_malformed_overrides_say_how_to_write_them(text, message):
    with pytest.raises(ValueError, match=message):
        parse_override(text)


def test_overrides_set_nested_fields_create_tables_and_leave_the_input_alone():
    raw = {"seed": 1, "auction": {"increment": 1}, "bidders": [{"name": "A", "values": {"x": 1}}]}
    out = apply_overrides(raw, [parse_override(t) for t in (
        "seed=9", "auction.increment=2.5", "bidders[0].values.y=4", "price.total_kw=900", "seed=10")])
    assert out == {"seed": 10, "auction": {"increment": 2.5}, "price": {"total_kw": 900},
                   "bidders": [{"name": "A", "values": {"x": 1, "y": 4}}]}
    assert raw["seed"] == 1 and raw["bidders"][0]["values"] == {"x": 1}  # a copy


@pytest.mark.parametrize("text, message", [
    ("bidders.name=x", r"bidders is a list; index it as bidders\[0\]"),
    ("bidders[3].name=x", r"bidders\[3\] does not exist \(the list has 1 entries\)"),
    ("seed.value=3", "seed is not a table"),
    ("auction[0]=1", "auction is not a list; drop the \\[index\\]"),
])
def test_overrides_that_do_not_fit_the_tables_name_the_place(text, message):
    raw = {"seed": 1, "auction": {"increment": 1}, "bidders": [{"name": "A"}]}
    with pytest.raises(OverrideError, match=message):
        apply_overrides(raw, [parse_override(text)])


def test_a_run_with_set_equals_the_run_of_the_edited_file(tmp_path):
    """Same bytes, config.toml included: the override is validated and written like the file."""
    source = EXPERIMENTS / "paper_4bus_additive.toml"
    data = tomllib.loads(source.read_text())
    data["auction"]["increment"] = 2.0
    data["seed"] = 7
    edited = tmp_path / "edited.toml"
    edited.write_text(tomli_w.dumps(data))
    assert main(["run", str(edited), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["run", str(source), "--out", str(tmp_path / "b"), "--quiet",
                 "--set", "auction.increment=2", "--set", "seed=7"]) == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_bad_overrides_are_one_line_errors(tmp_path, capsys):
    source = str(EXPERIMENTS / "paper_4bus_additive.toml")
    assert main(["run", source, "--out", str(tmp_path / "x"), "--quiet", "--set", "auction.incremnt=2"]) == 2
    assert "auction: unknown field 'incremnt'; did you mean 'increment'?" in capsys.readouterr().err
    assert main(["run", source, "--out", str(tmp_path / "x"), "--quiet", "--set", "auction.increment=-1"]) == 2
    assert "auction.increment" in capsys.readouterr().err
    assert main(["run", source, "--out", str(tmp_path / "x"), "--quiet", "--set", "bidders.name=x"]) == 2
    assert "--set bidders.name=x: bidders is a list" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_set_reaches_the_plan_price_and_capacity_studies(tmp_path):
    assert main(["price", str(EXPERIMENTS / "ieee37_price.toml"), "--out", str(tmp_path / "p"), "--quiet",
                 "--no-plots", "--set", "price.total_kw=900"]) == 0
    assert tomllib.loads((tmp_path / "p" / "config.toml").read_text())["price"]["total_kw"] == 900
    assert main(["capacity", "ieee14", "--out", str(tmp_path / "c"), "--quiet", "--verify", "0", "--no-plots",
                 "--set", "load.scenarios=300"]) == 0
    assert tomllib.loads((tmp_path / "c" / "config.toml").read_text())["load"]["scenarios"] == 300


def test_unset_removes_a_table_or_field_in_order_with_set():
    raw = {"seed": 1, "price": {"total_kw": 900}, "bidders": [{"name": "A", "values": {"x": 1, "y": 2}}]}
    out = apply_overrides(raw, [parse_unset("price"), parse_unset("bidders[0].values.y"),
                                parse_override("price.total_kw=5"), parse_unset("seed")])
    assert out == {"price": {"total_kw": 5}, "bidders": [{"name": "A", "values": {"x": 1}}]}
    assert raw["price"] == {"total_kw": 900}  # a copy


@pytest.mark.parametrize("text, message", [
    ("pricee", "--unset pricee: pricee is not in the config; check the path"),
    ("bidders[3].name", r"--unset bidders\[3\].name: bidders\[3\] is not in the config"),
    ("auction.increment.x", r"--unset auction.increment.x: auction.increment is not a table"),
])
def test_unset_of_what_is_not_there_names_the_place(text, message):
    raw = {"seed": 1, "auction": {"increment": 1}, "bidders": [{"name": "A"}]}
    with pytest.raises(OverrideError, match=message):
        apply_overrides(raw, [parse_unset(text)])


def test_unset_price_equals_the_run_of_the_file_without_it(tmp_path):
    """Same bytes as the edited file, config.toml included."""
    source = EXPERIMENTS / "ieee37_auction_price.toml"
    data = tomllib.loads(source.read_text())
    del data["price"]
    edited = tmp_path / source.name
    edited.write_text(tomli_w.dumps(data))
    assert main(["run", str(edited), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["run", str(source), "--out", str(tmp_path / "b"), "--quiet", "--unset", "price"]) == 0
    assert not (tmp_path / "b" / "price").exists()
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_choosing_another_mechanism_drops_the_rule_tables_of_the_file(tmp_path, capsys):
    """--set mechanism.kind on a config with [auction]: the SAA's rules leave, the clock's are checked."""
    source = str(EXPERIMENTS / "paper_4bus_additive.toml")
    assert main(["run", source, "--out", str(tmp_path / "x"), "--quiet", "--set", "mechanism.kind=clock"]) == 2
    assert "clock: missing [clock]; the 'clock' mechanism needs its rules (increment)" in capsys.readouterr().err
    assert main(["run", source, "--out", str(tmp_path / "c"), "--quiet", "--set", "mechanism.kind=clock",
                 "--set", "clock.increment=2"]) == 0
    effective = tomllib.loads((tmp_path / "c" / "config.toml").read_text())
    assert effective["mechanism"]["kind"] == "clock" and "auction" not in effective
    assert json.loads((tmp_path / "c" / "summary.json").read_text())["mechanism"] == "clock"
    # A rule table the overrides set themselves is kept, and refused for another mechanism as usual.
    assert main(["run", source, "--out", str(tmp_path / "y"), "--quiet", "--set", "mechanism.kind=vcg",
                 "--set", "clock.increment=2"]) == 2
    assert "[clock] holds the rules of the 'clock' mechanism" in capsys.readouterr().err


def test_a_set_value_nested_past_the_ceiling_is_refused(tmp_path, capsys):
    from sim.config.overrides import NestingError

    with pytest.raises(NestingError, match="nested more than 32 deep"):
        parse_value("[" * 3000 + "]" * 3000)
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(EXPERIMENTS / "paper_4bus_additive.toml"), "--out", str(tmp_path / "run"), "--set", "x=" + "[" * 3000 + "]" * 3000])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --set: lists or tables are nested more than 32 deep" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
