"""Every mechanism runs the 4-bus study end to end (`[mechanism] kind`), outcomes by hand."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import tomli_w

from sim.cli import main

EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"


def run(tmp_path: Path, kind: str, rules: dict, *flags: str) -> dict:
    config = tomllib.loads((EXPERIMENTS / "paper_4bus_additive.toml").read_text())
    config["load"]["scenarios"] = 300
    del config["auction"]
    config["mechanism"] = {"kind": kind}
    if rules:
        config[kind] = rules
    path = tmp_path / f"{kind}.toml"
    path.write_text(tomli_w.dumps(config))
    out = tmp_path / kind
    assert main(["run", str(path), "--out", str(out), *(flags or ("--quiet",))]) == 0
    return json.loads((out / "summary.json").read_text())


# Values (docs/models/auction.md#ca-6-1): B1 firm@3 20, flex@3 0, firm@4 30, flex@4 15; B2 30, 20, 10, 10.


def test_vcg_charges_second_prices_for_additive_values(tmp_path):
    # Additive bidders: VCG is a second-price auction per product. firm@3 to B2 at 20,
    # flex@3 to B2 at 0 (B1 values it 0), firm@4 to B1 at 10, flex@4 to B1 at 10.
    s = run(tmp_path, "vcg", {})
    assert s["mechanism"] == "vcg"
    assert s["allocation"] == {"firm@3": "B2", "flex@3": "B2", "firm@4": "B1", "flex@4": "B1"}
    assert s["payments"] == {"B1": 20, "B2": 20}
    assert s["welfare"] == 95 and s["efficient_welfare"] == 95
    assert s["equilibrium"]["holds"] is None and s["equilibrium"]["walrasian_exists"] is True


def test_the_queue_serves_the_first_arrival_whatever_the_others_value(tmp_path):
    # B1 arrives first; at tariff 0 it takes every product it values: firm@3, firm@4 and
    # flex@4 (not flex@3, worth 0 to it). B2 arrives to what is left, flex@3 (20 $), although it
    # values firm@3 at 30 against B1's 20. Welfare 85 of 95.
    s = run(tmp_path, "queue", {"order": "config"})
    assert s["allocation"] == {"firm@3": "B1", "flex@3": "B2", "firm@4": "B1", "flex@4": "B1"}
    assert s["payments"] == {"B1": 0, "B2": 0}
    assert s["welfare"] == 85 and s["efficient_welfare"] == 95
    assert s["surplus"] == {"B1": 65, "B2": 20}


def test_the_clock_runs_an_english_auction_per_product(tmp_path):
    # Clocks open at 5 and rise by 5 on every product two bidders demand; a bidder keeps a
    # product it demanded at zero surplus (the paper's rule after round 1), so the loser quits one
    # step above its value. firm@3: B1 (20) quits at 25, B2 wins at 25. flex@3: only B2: 5.
    # firm@4: B2 (10) quits at 15, B1 wins at 15. flex@4: B2 (10) quits at 15, B1 wins at 15.
    s = run(tmp_path, "clock", {"increment": 5})
    assert s["closed_by"] == "clock_cleared"
    assert s["allocation"] == {"firm@3": "B2", "flex@3": "B2", "firm@4": "B1", "flex@4": "B1"}
    assert s["prices"] == {"firm@3": 25, "flex@3": 5, "firm@4": 15, "flex@4": 15}
    assert s["payments"] == {"B1": 30, "B2": 30}


def test_rules_of_another_mechanism_are_refused(tmp_path, capsys):
    config = tomllib.loads((EXPERIMENTS / "paper_4bus_additive.toml").read_text())
    config["mechanism"] = {"kind": "vcg"}
    path = tmp_path / "both.toml"
    path.write_text(tomli_w.dumps(config))
    assert main(["run", str(path), "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "auction: [auction] holds the rules of the 'saa' mechanism, but [mechanism] kind = 'vcg'" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("kind, rules, closing", [
    ("vcg", {}, "the sealed-bid auction closed after its one round"),
    ("queue", {}, "the queue closed after every bidder's turn"),
    ("clock", {"increment": 5}, "the clock auction closed when no product was wanted by more than one bidder"),
])
def test_the_report_says_how_each_mechanism_ended(tmp_path, capsys, kind, rules, closing):
    run(tmp_path, kind, rules, "--summary-only")
    printed = capsys.readouterr().out
    assert closing in printed and "max_rounds" not in printed
