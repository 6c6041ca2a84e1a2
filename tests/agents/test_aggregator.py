"""The aggregator: its value and demand against brute force, and its hand-out after a run."""

from __future__ import annotations

import itertools
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w

from agents.errors import AgentConfigError
from agents.profiles import build_profile
from agents.valuations import (
    AdditiveValuation,
    BundleTableValuation,
    SitesValuation,
    enumerate_maximisers,
)
from sim.cli import main
from tests.agents.test_profiles import _gs_failure, _prices, _raised

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
ITEMS = ("a", "b", "c", "d")


def brute_value(members, bundle: frozenset[str]) -> float:
    """Best assignment of the bundle's products to the members: every owner per product."""
    names = list(members)
    best = 0.0
    for owners in itertools.product([None, *names], repeat=len(bundle)):
        parts = {n: frozenset(p for p, o in zip(sorted(bundle), owners) if o == n) for n in names}
        best = max(best, sum(members[n](parts[n]) for n in names))
    return best


def random_members(rng):
    return {
        "x": SitesValuation({p: float(rng.integers(0, 6)) for p in ITEMS}, max_sites=int(rng.integers(1, 3))),
        "y": AdditiveValuation(values={p: float(rng.integers(0, 6)) for p in ITEMS if rng.random() < 0.6}),
        "z": BundleTableValuation(bundles=((frozenset(rng.choice(ITEMS, 2, replace=False)), float(rng.integers(1, 12))),)),
    }


def aggregator_of(members):
    from agents.aggregator_valuation import AggregatorValuation

    return AggregatorValuation(members=tuple(members.items()))


@pytest.mark.parametrize("seed", range(8))
def test_value_and_demand_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    members = random_members(rng)
    aggregator = aggregator_of(members)
    for size in range(len(ITEMS) + 1):
        for combo in itertools.combinations(ITEMS, size):
            bundle = frozenset(combo)
            assert aggregator(bundle) == pytest.approx(brute_value(members, bundle))
    for _ in range(5):
        prices = {p: float(rng.integers(0, 8)) for p in ITEMS}
        chosen = aggregator.demand(prices)
        best = enumerate_maximisers(aggregator, list(ITEMS), prices)
        surplus = aggregator(chosen) - sum(prices[p] for p in chosen)
        top = aggregator(best[0]) - sum(prices[p] for p in best[0])
        assert surplus == pytest.approx(top)


def test_an_aggregator_of_gross_substitutes_members_is_gross_substitutes():
    # Kelso-Crawford on random price pairs, brute force over maximisers (as for the profiles).
    rng = np.random.default_rng(3)
    products = ["firm@3", "flex@3", "firm@4", "flex@4", "firm@5", "flex@5"]
    for _ in range(15):
        members = {
            "s": SitesValuation({p: float(rng.integers(0, 8) * 5) for p in products[:4]}, max_sites=2),
            "t": AdditiveValuation(values={p: float(rng.integers(0, 8) * 5) for p in products[2:]}),
        }
        aggregator = aggregator_of(members)
        assert aggregator.gross_substitutes
        p = _prices(rng)
        assert _gs_failure(aggregator, p, _raised(rng, p)) is None


def test_member_errors_name_the_member():
    with pytest.raises(AgentConfigError, match=r"members\[1\].values.zz: unknown product 'zz'"):
        build_profile("aggregator", {"members": [{"name": "m", "profile": "additive", "values": {"a": 1}},
                                                 {"name": "n", "profile": "additive", "values": {"zz": 1}}]}, ITEMS)
    with pytest.raises(AgentConfigError, match="listed twice"):
        build_profile("aggregator", {"members": [{"name": "m", "profile": "additive", "values": {"a": 1}}] * 2}, ITEMS)
    with pytest.raises(AgentConfigError, match="cannot be a member of an aggregator"):
        build_profile("aggregator", {"members": [{"name": "m", "profile": "aggregator", "members": []}]}, ITEMS)


def test_a_run_hands_the_products_to_the_members(tmp_path):
    # The 4-bus Example 1 with B1 replaced by an aggregator of two sites: "north" wants one
    # product at bus 3 (firm@3 30, flex@3 12), "south" one at bus 4 (firm@4 25, flex@4 20).
    # Against B2 (firm@3 30, flex@3 20, firm@4 10, flex@4 10) at increment 5 the aggregator
    # keeps firm@4 for south and wins flex@4 too; B2 takes bus 3.
    config = tomllib.loads((EXPERIMENTS / "paper_4bus_additive.toml").read_text())
    config["load"]["scenarios"] = 300
    config["bidders"][0] = {
        "name": "AGG", "profile": "aggregator",
        "members": [
            {"name": "north", "profile": "sites", "site_values": {"firm@3": 30, "flex@3": 12}},
            {"name": "south", "profile": "sites", "site_values": {"firm@4": 25, "flex@4": 20}},
        ],
    }
    path = tmp_path / "agg.toml"
    path.write_text(tomli_w.dumps(config))
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    handed = s["aggregators"]["AGG"]
    won = s["bundles"]["AGG"]
    members = handed["members"]
    # Every product won is either a member's or unassigned; member payments are their prices.
    assigned = [p for m in members.values() for p in m["products"]]
    assert sorted(assigned + handed["unassigned"]) == sorted(won)
    for m in members.values():
        assert m["payment"] == pytest.approx(sum(s["prices"][p] for p in m["products"]))
        assert m["surplus"] == pytest.approx(m["value"] - m["payment"])
    total = sum(m["payment"] for m in members.values()) + handed["unassigned_cost"]
    assert total == pytest.approx(s["payments"]["AGG"])
    # Each member is unit demand (one site each): at most one product each.
    assert all(len(m["products"]) <= 1 for m in members.values())
    assert s["values"]["AGG"] == pytest.approx(sum(m["value"] for m in members.values()))
