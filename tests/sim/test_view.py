"""`dcmarket view`'s page (sim/view.py) without a browser: once the auction has closed, the hours
it shows are those of the price study a run chains after the same auction."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import tomli_w

from sim.cli import main

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def day_config(folder: Path) -> Path:
    """The auction on IEEE 37 with the aggregator (experiments/ieee37_auction_price.toml), and a
    day of two hours at flat load after it; no AC check and coarse SVGs (seconds, not minutes)."""
    data = tomllib.loads((EXPERIMENTS / "ieee37_auction_price.toml").read_text())
    # SVGs of one 100-kvar step a phase: with the cable 703-730 held, finer SVGs make each hour's
    # MILP take tens of seconds, and the page's wiring does not need them.
    data["price"].update(ac_check=False, svg_kvar=100.0, svg_step_kvar=100.0)
    data["price"]["day"] = {"hours": 2, "first_hour": "2016-08-11T14:00", "background": "flat",
                            "substation_price_per_mwh": [40.0, 60.0]}
    path = folder / "view_day.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def test_the_day_shown_after_the_auction_is_the_price_studys(tmp_path):
    from sim.config.schema import load_config
    from sim.market.model import MarketModel
    from sim.view import _priced_day, hour_rows

    path = day_config(tmp_path)
    model = MarketModel(load_config(path), base_dir=path.parent)
    model.run_auction()
    priced = _priced_day(model, path)
    assert [p["period"] for p in priced["periods"]] == ["2016-08-11T14:00", "2016-08-11T15:00"]
    assert _priced_day(model, path) is priced   # the study runs once per model
    # The page's hour is the study's: the same sites (the auction's), the same payments.
    won = {s["bus"]: s["max_kw"] for s in priced["sites"]}
    assert priced["sites_from"] == "the auction" and won
    for k, period in enumerate(priced["periods"]):
        heading, rows = hour_rows(priced, k)
        assert heading.startswith(f"Hour {k + 1} of 2: {period['period']}, substation")
        paid = {row[0]: row[1] for row in rows}
        for case, entry in period["cases"].items():
            assert paid[priced["cases"][case]["title"]] == f"{entry['payment_usd_per_h']:,.2f}"
    # The day is the one `dcmarket run` writes after the same auction.
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    written = json.loads((tmp_path / "run" / "price" / "summary.json").read_text())
    assert written["periods"] == priced["periods"] and written["cases"] == priced["cases"]
