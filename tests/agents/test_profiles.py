"""The sites, per_mw, budget_capped and complements profiles: each oracle against brute force under
every tie rule, the gross-substitutes flags (checked or refuted on random prices), atoms against
the valuation, hand-computed values, builder errors and the TOML schema."""

from __future__ import annotations

import itertools
import math
import tomllib
import zlib
from pathlib import Path

import numpy as np
import pytest

from agents.bundle_ties import FEWEST_NEW, LARGEST, SMALLEST
from agents.errors import AgentConfigError
from agents.profiles import PROFILES, build_profile
from agents.valuations import (
    BudgetCappedValuation,
    ComplementsValuation,
    Site,
    SitesValuation,
    enumerate_maximisers,
)
from mechanisms.products import Product, ProductCatalog
from sim.config.schema import ConfigError, parse_config

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
RULES = [LARGEST, SMALLEST, FEWEST_NEW]
RULE_IDS = ["largest", "smallest", "fewest_new"]

# Three buses; bus 3's firm capacity is split into two blocks (so a family names two products).
CATALOG = ProductCatalog(
    offered=(
        Product("firm@3#1", 3, 0.0, 2.0),
        Product("firm@3#2", 3, 0.0, 2.0),
        Product("flex@3", 3, 0.05, 1.0),
        Product("firm@4", 4, 0.0, 1.0),
        Product("flex@4", 4, 0.05, 2.0),
        Product("firm@5", 5, 0.0, 1.0),
    ),
    families=frozenset({"firm@3", "flex@3", "firm@4", "flex@4", "firm@5"}),
)
PRODUCTS = [p.id for p in CATALOG.offered]
RANK = {p: i for i, p in enumerate(PRODUCTS)}
KEYS = PRODUCTS + ["firm@3"]  # ids, and one family standing for both of its blocks


# ------------------------------------------------------------------ random valuations by profile
# Values on a 5 $ grid and prices on the same grid (0 included) make ties and free products
# common, which is where the oracles have choices to make.
def _sites(rng):
    keys = rng.choice(KEYS[:-1], size=rng.integers(1, 6), replace=False).tolist()
    if rng.random() < 0.3:  # the family instead of its blocks
        keys = [k for k in keys if not k.startswith("firm@3")] + ["firm@3"]
    values = {k: int(rng.integers(0, 9)) * 5 for k in keys}
    return build_profile("sites", {"site_values": values, "max_sites": int(rng.integers(1, 4))}, CATALOG)


def _per_mw(rng):
    buses = rng.choice([3, 4, 5], size=rng.integers(1, 4), replace=False)
    # 20 $/MW steps, 1-2 MW and risk factors 0.5, 0.75, 1 keep values on a 5 $ grid.
    rates = {str(b): int(rng.integers(0, 4)) * 20 for b in buses}
    fields = {"value_per_mw": rates, "backup_share": float(rng.choice([0.0, 0.5, 1.0]))}
    return build_profile("per_mw", fields, CATALOG)


def _budget(rng):
    values = {p: int(rng.integers(0, 9)) * 5 for p in PRODUCTS if rng.random() < 0.8}
    values = values or {PRODUCTS[0]: 10}
    return build_profile("budget_capped", {"values": values, "budget_usd": int(rng.integers(1, 13)) * 5}, CATALOG)


def _complements(rng):
    buses = rng.choice([3, 4, 5], size=rng.integers(1, 4), replace=False)
    fields = {"site_values": {str(b): int(rng.integers(0, 13)) * 5 for b in buses},
              "synergy_usd": int(rng.choice([0, 5, 10]))}
    return build_profile("complements", fields, CATALOG)


def _additive(rng):
    return build_profile("additive", {"values": {p: int(rng.integers(0, 9)) * 5 for p in PRODUCTS}}, CATALOG)


def _concave(rng):
    marginals = np.sort(rng.integers(0, 7, size=rng.integers(1, 6)) * 5)[::-1]
    return build_profile("symmetric_concave", {"by_size": [int(v) for v in np.cumsum(marginals)]}, CATALOG)


def _table(rng):
    bundles = []
    for size in range(1, 4):
        for combo in itertools.combinations(PRODUCTS[:4], size):
            if rng.random() < 0.3:
                bundles.append({"products": list(combo), "value": int(rng.integers(1, 12)) * 5})
    bundles = bundles or [{"products": PRODUCTS[:2], "value": 20}]
    return build_profile("bundles", {"bundles": bundles}, CATALOG)


def _aggregator(rng):
    # A complements member makes the portfolio fail gross substitutes, as the registry says.
    members = [{"name": "pair", "profile": "complements",
                "site_values": {str(int(rng.choice([3, 4, 5]))): int(rng.integers(1, 13)) * 5}},
               {"name": "one", "profile": "sites",
                "site_values": {p: int(rng.integers(0, 9)) * 5 for p in PRODUCTS[:3]}}]
    return build_profile("aggregator", {"members": members}, CATALOG)


NEW = {"sites": _sites, "per_mw": _per_mw, "budget_capped": _budget, "complements": _complements}
MAKERS = {**NEW, "additive": _additive, "symmetric_concave": _concave, "bundles": _table, "aggregator": _aggregator}


def _prices(rng) -> dict[str, float]:
    return {p: 0.0 if rng.random() < 0.25 else float(rng.integers(1, 9) * 5) for p in PRODUCTS}


def _rng(*words: str) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(w.encode()) for w in words])


# ------------------------------------------------------------------------------- the oracles
@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
@pytest.mark.parametrize("profile", list(NEW))
def test_oracle_picks_the_best_maximiser_under_each_rule(profile, rule):
    rng = _rng(profile, str(rule.size_sign))
    for _ in range(250):
        valuation = NEW[profile](rng)
        prices = _prices(rng)
        held = frozenset(p for p in PRODUCTS if rng.random() < 0.3)
        maximisers = enumerate_maximisers(valuation, PRODUCTS, prices)
        expected = rule.best(maximisers, held, RANK)
        chosen = valuation.choose_bundle(prices, held, rule, RANK)
        assert chosen in maximisers, (valuation, prices, chosen)
        # Bids depend on the new products only, so the key (not the set) must match.
        assert rule.key(chosen, held, RANK) == rule.key(expected, held, RANK), (valuation, prices, held)
        assert valuation.demand(prices) in maximisers


GRID_CASES = {
    "sites": SitesValuation({"firm@3#1": 10, "firm@3#2": 10, "flex@3": 5, "firm@4": 5, "flex@4": 0}, 2),
    "complements": ComplementsValuation(
        (Site(3, frozenset(PRODUCTS[:3]), 15.0), Site(4, frozenset(PRODUCTS[3:5]), 10.0)), synergy=5.0),
    # Three sites of two products each, equally valued: sites tie in size and new products too,
    # so the lowest-index tie-break among them is exercised.
    "complements_equal_sites": ComplementsValuation(
        tuple(Site(b, frozenset(PRODUCTS[2 * b:2 * b + 2]), 10.0) for b in range(3))),
}


@pytest.mark.parametrize("case", list(GRID_CASES))
def test_oracle_on_every_price_vector_of_a_grid_with_free_products(case):
    # Every price vector in {0, 5, 10}^6: free products and ties everywhere, with a random held
    # set each time.
    valuation = GRID_CASES[case]
    rng = _rng("grid", case)
    for levels in itertools.product((0.0, 5.0, 10.0), repeat=len(PRODUCTS)):
        prices = dict(zip(PRODUCTS, levels))
        maximisers = enumerate_maximisers(valuation, PRODUCTS, prices)
        held = frozenset(p for p in PRODUCTS if rng.random() < 0.4)
        for rule in RULES:
            chosen = valuation.choose_bundle(prices, held, rule, RANK)
            assert chosen in maximisers
            assert rule.key(chosen, held, RANK) == rule.key(rule.best(maximisers, held, RANK), held, RANK), \
                (prices, held, rule)


def _brute_force_budget(valuation, products, prices, held, rule):
    """Best surplus over all 2^m bundles, and the rule's (size, new count) key of the best
    maximiser, built up one product at a time (numpy arrays, no bundle objects)."""
    value, cost = np.zeros(1), np.zeros(1)
    size, new = np.zeros(1, dtype=int), np.zeros(1, dtype=int)
    for p in products:
        value = np.concatenate([value, value + valuation.values.get(p, 0.0)])
        cost = np.concatenate([cost, cost + prices[p]])
        size = np.concatenate([size, size + 1])
        new = np.concatenate([new, new + (p not in held)])
    surplus = np.minimum(valuation.budget, value) - cost
    best = surplus.max()
    tied = surplus >= best - 1e-9 * max(1.0, best)
    keys = sorted(zip(rule.size_sign * size[tied], new[tied]))
    return best, tuple(int(k) for k in keys[0])


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_budget_capped_milp_beyond_the_enumeration_limit(rule):
    # 18 products all worth at least their price: too many to enumerate in the oracle, so the
    # MILP answers. Its bundle must reach the brute-force best surplus and the rule's size and
    # new-product count.
    rng = _rng("milp", str(rule.size_sign))
    products = [f"p{i}" for i in range(18)]
    rank = {p: i for i, p in enumerate(products)}
    for _ in range(3):
        values = {p: float(rng.integers(1, 21)) for p in products}
        valuation = BudgetCappedValuation(values, budget=float(rng.integers(40, 90)))
        prices = {p: float(max(0, values[p] - rng.integers(0, 6))) for p in products}
        held = frozenset(p for p in products if rng.random() < 0.3)
        best, key = _brute_force_budget(valuation, products, prices, held, rule)
        chosen = valuation.choose_bundle(prices, held, rule, rank)
        assert valuation(chosen) - math.fsum(prices[p] for p in chosen) == pytest.approx(best, abs=1e-9)
        assert rule.key(chosen, held, rank)[:2] == key


# --------------------------------------------------------------------------- gross substitutes
def _gs_failure(valuation, p: dict[str, float], q: dict[str, float]):
    """Kelso-Crawford at p <= q: every X in D(p) needs some Y in D(q) holding X's products whose
    price did not change. The first X without one, or None."""
    demand_q = enumerate_maximisers(valuation, PRODUCTS, q)
    for x in enumerate_maximisers(valuation, PRODUCTS, p):
        unchanged = {i for i in x if q[i] == p[i]}
        if not any(unchanged <= y for y in demand_q):
            return x, unchanged
    return None


def _raised(rng, p: dict[str, float]) -> dict[str, float]:
    return {i: v + (float(rng.integers(1, 5) * 5) if rng.random() < 0.4 else 0.0) for i, v in p.items()}


@pytest.mark.parametrize("profile", [name for name, spec in PROFILES.items() if spec.gross_substitutes])
def test_profiles_flagged_gross_substitutes_satisfy_it(profile):
    rng = _rng("gs", profile)
    for _ in range(150):
        valuation = MAKERS[profile](rng)
        p = _prices(rng)
        q = _raised(rng, p)
        assert _gs_failure(valuation, p, q) is None, (valuation, p, q)


@pytest.mark.parametrize("profile", [name for name, spec in PROFILES.items() if not spec.gross_substitutes])
def test_profiles_flagged_not_gross_substitutes_fail_it_somewhere(profile):
    rng = _rng("not gs", profile)
    for attempt in range(2000):
        valuation = MAKERS[profile](rng)
        p = _prices(rng)
        q = _raised(rng, p)
        failure = _gs_failure(valuation, p, q)
        if failure is not None:
            demanded, unchanged = failure
            # A product whose price did not move is dropped by every bundle demanded at q.
            assert all(not unchanged <= y for y in enumerate_maximisers(valuation, PRODUCTS, q))
            return
    pytest.fail(f"no gross-substitutes counterexample for {profile} in {attempt + 1} random price pairs")


def test_budget_and_complements_counterexamples_by_hand():
    # Budget 20, values a 20, b 10, c 10. At (10, 2, 2): {b, c} gives 20 - 4 = 16 > {a} 10.
    # Raise c to 9: {b, c} 9, {a} 10, {a, b} 20 - 12 = 8, {b} 8: only {a}, which drops b
    # although b's price did not change.
    budget = BudgetCappedValuation({"a": 20, "b": 10, "c": 10}, budget=20.0)
    items = ["a", "b", "c"]
    assert enumerate_maximisers(budget, items, {"a": 10.0, "b": 2.0, "c": 2.0}) == [frozenset({"b", "c"})]
    assert enumerate_maximisers(budget, items, {"a": 10.0, "b": 2.0, "c": 9.0}) == [frozenset({"a"})]
    # One site of two products worth 10 together: at (3, 3) both; raising one to 8 drops both.
    pair = ComplementsValuation((Site(3, frozenset({"x", "y"}), 10.0),))
    assert enumerate_maximisers(pair, ["x", "y"], {"x": 3.0, "y": 3.0}) == [frozenset({"x", "y"})]
    assert enumerate_maximisers(pair, ["x", "y"], {"x": 3.0, "y": 8.0}) == [frozenset()]


def test_each_valuation_class_mirrors_its_registry_flag():
    rng = _rng("flags")
    for name, spec in PROFILES.items():
        valuation = MAKERS[name](rng)
        assert valuation.gross_substitutes is spec.gross_substitutes, name
        assert valuation.kind == name and valuation.describe()


# --------------------------------------------------------------------------------------- atoms
def _or_value(atoms, bundle: frozenset[str]) -> float:
    """Best assignment of the bundle's products to the atoms, each atom taking at most one of
    its bids and no product used twice (brute force)."""
    best = 0.0
    choices = [[None] + [(b, v) for b, v in atom if b <= bundle] for atom in atoms]
    for pick in itertools.product(*choices):
        used: set[str] = set()
        total = 0.0
        for item in pick:
            if item is None:
                continue
            if used & item[0]:
                break
            used |= item[0]
            total += item[1]
        else:
            best = max(best, total)
    return best


@pytest.mark.parametrize("profile", list(NEW))
def test_the_or_of_the_atoms_is_the_valuation(profile):
    rng = _rng("atoms", profile)
    for _ in range(15):
        valuation = NEW[profile](rng)
        atoms = valuation.atoms(PRODUCTS)
        assert atoms is not None
        for size in range(len(PRODUCTS) + 1):
            for combo in itertools.combinations(PRODUCTS, size):
                bundle = frozenset(combo)
                assert _or_value(atoms, bundle) == pytest.approx(valuation(bundle)), (valuation, bundle)


def test_atoms_are_none_when_too_large():
    many = [f"p{i}" for i in range(13)]
    assert BudgetCappedValuation({p: 1.0 for p in many}, budget=5.0).atoms(many) is None
    assert BudgetCappedValuation({p: 1.0 for p in many[:12]}, budget=5.0).atoms(many) is not None
    sites = tuple(Site(i, frozenset({f"p{i}"}), 1.0) for i in range(11))
    assert ComplementsValuation(sites).atoms(many) is None
    assert ComplementsValuation(sites[:10]).atoms(many) is not None
    # k = 3 slots over two valued products: only two slots can ever fill.
    assert len(SitesValuation({"a": 5.0, "b": 3.0}, max_sites=3).atoms(["a", "b", "c"])) == 2


# --------------------------------------------------------------------------------- hand values
def test_sites_values_and_oracle_by_hand():
    two = SitesValuation({"a": 30.0, "b": 20.0, "c": 10.0}, max_sites=2)
    assert [two(s) for s in ((), ("c",), ("a", "c"), ("a", "b", "c"))] == [0, 10, 40, 50]
    assert SitesValuation({"a": 30.0, "b": 20.0}, max_sites=1)({"a", "b"}) == 30
    # Prices a 25, b 5, c 0: surpluses 5, 15, 10; two places -> {b, c} (25) beats any set with a.
    rank = {"a": 0, "b": 1, "c": 2}
    for rule in RULES:
        assert two.choose_bundle({"a": 25.0, "b": 5.0, "c": 0.0}, frozenset(), rule, rank) == {"b", "c"}
    # Unit demand, a 30 at 10 and b 20 at 0: {a}, {b} and {a, b} (30 - 10) all give 20. Largest
    # takes both, smallest the lowest index, {a}; fewest_new holding b bids on nothing new.
    one = SitesValuation({"a": 30.0, "b": 20.0}, max_sites=1)
    prices = {"a": 10.0, "b": 0.0}
    assert one.choose_bundle(prices, frozenset(), LARGEST, rank) == {"a", "b"}
    assert one.choose_bundle(prices, frozenset(), SMALLEST, rank) == {"a"}
    assert one.choose_bundle(prices, frozenset({"b"}), FEWEST_NEW, rank) - {"b"} == set()


def test_per_mw_values_by_hand():
    catalog = ProductCatalog(offered=(
        Product("firm@3", 3, 0.0, 10.0),
        Product("flex@3", 3, 0.05, 5.315),
        Product("flex@4", 4, 0.05, 8.0),
        Product("flex@5", 5, 0.1, 4.0),
    ))
    valuation = build_profile(
        "per_mw", {"value_per_mw": {"3": 100, "5": 50}, "backup_share": 0.5, "outage_penalty": 10}, catalog)
    # flex@3: 5.315 MW * 100 $/MW * (1 - 0.05 * 0.5 * 10) = 398.625 $; firm keeps the full rate;
    # bus 4 has no rate; flex@5: 4 * 50 * (1 - 0.1 * 0.5 * 10) = 100.
    assert valuation({"flex@3"}) == pytest.approx(398.625)
    assert valuation({"firm@3"}) == pytest.approx(1000.0)
    assert valuation({"flex@4"}) == 0
    assert valuation({"flex@5"}) == pytest.approx(100.0)
    assert valuation({"firm@3", "flex@3", "flex@4", "flex@5"}) == pytest.approx(1498.625)
    # Without backup the default penalty 10 halves a 5 % product and wipes out a 10 % one.
    bare = build_profile("per_mw", {"value_per_mw": {"3": 100, "5": 50}}, catalog)
    assert bare({"flex@3"}) == pytest.approx(265.75) and bare({"flex@5"}) == 0
    # Full backup: risk costs nothing.
    backed = build_profile("per_mw", {"value_per_mw": {3: 100}, "backup_share": 1}, catalog)
    assert backed({"flex@3"}) == pytest.approx(531.5)
    assert valuation.kind == "per_mw" and valuation.describe().startswith("per MW")
    assert valuation.choose_bundle({"firm@3": 999.0, "flex@3": 399.0, "flex@4": 0.0, "flex@5": 50.0},
                                   frozenset(), SMALLEST, {p.id: i for i, p in enumerate(catalog.offered)}) \
        == {"firm@3", "flex@5"}


def test_budget_capped_values_by_hand():
    valuation = BudgetCappedValuation({"a": 20.0, "b": 10.0, "c": 10.0}, budget=25.0)
    assert [valuation(s) for s in ((), ("b",), ("b", "c"), ("a", "b"), ("a", "b", "c"))] == [0, 10, 20, 25, 25]
    # Prices 12, 4, 4: {a, b} 25 - 16 = 9; {b, c} 20 - 8 = 12; {a, b, c} 25 - 20 = 5 -> {b, c}.
    rank = {"a": 0, "b": 1, "c": 2}
    assert valuation.choose_bundle({"a": 12.0, "b": 4.0, "c": 4.0}, frozenset(), LARGEST, rank) == {"b", "c"}
    via_mw = build_profile("budget_capped", {"value_per_mw": {"firm@3": 10}, "budget_usd": 30}, CATALOG)
    assert via_mw.values == {"firm@3#1": 20.0, "firm@3#2": 20.0} and via_mw({"firm@3#1", "firm@3#2"}) == 30


def test_complements_values_and_oracle_by_hand():
    catalog = ProductCatalog(offered=(
        Product("firm@3", 3, 0.0, 10.0), Product("flex@3", 3, 0.05, 5.0),
        Product("firm@4", 4, 0.0, 10.0), Product("flex@4", 4, 0.05, 5.0),
    ))
    rank = {p.id: i for i, p in enumerate(catalog.offered)}
    valuation = build_profile("complements", {"site_values": {"3": 100, "4": 80}, "synergy_usd": 15}, catalog)
    assert valuation({"firm@3"}) == 0 and valuation({"firm@3", "flex@3"}) == 100
    assert valuation({"firm@3", "flex@3", "firm@4"}) == 100
    assert valuation({"firm@3", "flex@3", "firm@4", "flex@4"}) == 195
    # Site nets at (30, 30, 50, 20): 40 and 10; one site 40, both 50 + 15 = 65 -> both.
    prices = {"firm@3": 30.0, "flex@3": 30.0, "firm@4": 50.0, "flex@4": 20.0}
    assert valuation.choose_bundle(prices, frozenset(), SMALLEST, rank) == set(rank)
    # firm@4 at 65: bus 4 nets -5, yet both (35 + 15 = 50) beat bus 3 alone (40) by the synergy.
    prices["firm@4"] = 65.0
    assert valuation.choose_bundle(prices, frozenset(), SMALLEST, rank) == set(rank)
    alone = build_profile("complements", {"site_values": {"3": 100, "4": 80}}, catalog)
    assert alone.choose_bundle(prices, frozenset(), SMALLEST, rank) == {"firm@3", "flex@3"}


# ------------------------------------------------------------------------------ builder errors
ABSTRACT = ["a", "b"]
ERRORS = [
    ("sites", {"site_values": {"firm@9": 5}}, CATALOG, r"^site_values\.firm@9: unknown product 'firm@9'"),
    ("sites", {"site_values": {"flex@3": -5}}, CATALOG, r"^site_values\.flex@3: value -5 \$ is negative"),
    ("sites", {"site_values": {"flex@3": 5}, "max_sites": 0}, CATALOG,
     r"^max_sites: input should be greater than or equal to 1"),
    ("sites", {"site_values": {"firm@3": 5, "firm@3#1": 6}}, CATALOG, r"^site_values\.firm@3#1: product firm@3#1 is priced twice"),
    ("sites", {"site_value_per_mw": {"a": 5}}, ABSTRACT, r"^site_value_per_mw\.a: product a has no capacity \(MW\)"),
    ("sites", {"site_values": {"flex@3": 5}, "site_value_per_mw": {"flex@3": 1}}, CATALOG,
     r"needs one of the fields 'site_values' or 'site_value_per_mw', not both"),
    ("per_mw", {"value_per_mw": {"9": 5}}, CATALOG, r"^value_per_mw\.9: no products at bus 9; the products are at buses 3, 4, 5"),
    ("per_mw", {"value_per_mw": {"x": 5}}, CATALOG, r"^value_per_mw\.x: key 'x' is not a bus number"),
    ("per_mw", {"value_per_mw": {"3": -1}}, CATALOG, r"^value_per_mw\.3: value -1 \$ is negative"),
    ("per_mw", {"value_per_mw": {"3": 1, "03": 2}}, CATALOG, r"^value_per_mw: bus 3 is given twice \(as '03'\)"),
    ("per_mw", {"value_per_mw": {"3": 1}, "backup_share": 1.5}, CATALOG,
     r"^backup_share: input should be less than or equal to 1"),
    ("per_mw", {"value_per_mw": {"3": 1}, "backup_share": -0.1}, CATALOG,
     r"^backup_share: input should be greater than or equal to 0"),
    ("per_mw", {"value_per_mw": {"3": 1}, "outage_penalty": -1}, CATALOG, r"^outage_penalty: input should be greater"),
    ("per_mw", {"value_per_mw": {"3": 1}}, ABSTRACT, r"^value_per_mw: product 'a' has no bus; the per_mw profile"),
    ("per_mw", {"value_per_mw": {}}, CATALOG, r"^value_per_mw: the per_mw profile needs a table of bus"),
    ("per_mw", {"value_per_mw": {"3": 1}}, ProductCatalog(offered=(Product("x", 3, 0.0, math.nan),)),
     r"^value_per_mw\.3: product x has no capacity \(MW\) to price per MW"),
    ("budget_capped", {"values": {"flex@3": 5}, "budget_usd": 0}, CATALOG, r"^budget_usd: input should be greater than 0"),
    ("budget_capped", {"values": {"flex@3": 5}, "budget_usd": -10}, CATALOG, r"^budget_usd: input should be greater than 0"),
    ("budget_capped", {"values": {"flex@3": 5}}, CATALOG, r"^budget_usd: field required"),
    ("budget_capped", {"values": {"flex@9": 5}, "budget_usd": 10}, CATALOG, r"^values\.flex@9: unknown product"),
    ("budget_capped", {"values": {"flex@3": -5}, "budget_usd": 10}, CATALOG, r"^values\.flex@3: value -5 \$ is negative"),
    ("budget_capped", {"values": {"firm@3": 5}, "budget_usd": 10}, CATALOG, r"^values\.firm@3: 'firm@3' is split into 2 blocks"),
    ("complements", {"site_values": {"7": 5}}, CATALOG, r"^site_values\.7: no products at bus 7"),
    ("complements", {"site_values": {"3": -5}}, CATALOG, r"^site_values\.3: value -5 \$ is negative"),
    ("complements", {"site_values": {"3": 5}, "synergy_usd": -1}, CATALOG, r"^synergy_usd: value -1 \$ is negative"),
    ("complements", {"site_values": {"3": 5}}, ABSTRACT, r"^site_values: product 'a' has no bus"),
    ("complements", {"synergy_usd": 5}, CATALOG, r"needs the field 'site_values'"),
]


@pytest.mark.parametrize("profile, fields, catalog, message", ERRORS,
                         ids=[f"{e[0]}-{i}" for i, e in enumerate(ERRORS)])
def test_builder_errors_are_one_line_and_name_the_field(profile, fields, catalog, message):
    with pytest.raises(AgentConfigError, match=message) as error:
        build_profile(profile, fields, catalog)
    assert "\n" not in str(error.value)


def test_profiles_build_against_the_families_a_config_can_produce():
    # Before capacity is computed the catalog holds only product families (sim/market/model.py): the
    # builders must accept known buses and families there and reject unknown ones.
    families = ProductCatalog(families=frozenset({"firm@3", "flex@3", "firm@4", "flex@4"}))
    assert build_profile("per_mw", {"value_per_mw": {"3": 5}}, families).values == {}
    assert build_profile("complements", {"site_values": {"4": 5}}, families).sites == ()
    assert build_profile("sites", {"site_value_per_mw": {"flex@3": 5}}, families).values == {}
    with pytest.raises(AgentConfigError, match=r"^site_values\.9: no products at bus 9; the products are at buses 3, 4"):
        build_profile("complements", {"site_values": {"9": 5}}, families)
    # A bus whose capacity is all withheld has no site to complete.
    withheld = ProductCatalog(offered=(Product("firm@3", 3, 0.0, 1.0),), withheld=frozenset({"firm@4"}))
    assert [s.bus for s in build_profile("complements", {"site_values": {"3": 5, "4": 5}}, withheld).sites] == [3]


# -------------------------------------------------------------------------------- TOML schema
NEW_BIDDERS = [
    {"name": "S", "profile": "sites", "site_values": {"firm@3": 30, "firm@4": 25}, "max_sites": 1},
    {"name": "P", "profile": "per_mw", "value_per_mw": {"3": 2.0, "4": 1.5}, "backup_share": 0.5},
    {"name": "B", "profile": "budget_capped", "values": {"firm@3": 20, "flex@3": 10}, "budget_usd": 25},
    {"name": "C", "profile": "complements", "site_values": {"3": 40}, "synergy_usd": 5},
]


def _config(bidders) -> dict:
    config = tomllib.loads((EXPERIMENTS / "paper_4bus_additive.toml").read_text())
    config["bidders"] = bidders
    return config


def test_each_new_profile_validates_as_a_bidder_entry():
    config = parse_config(_config([dict(b) for b in NEW_BIDDERS]))
    assert [b.profile for b in config.bidders] == ["sites", "per_mw", "budget_capped", "complements"]
    # The parsed entries are the profiles' fields: they build against the 4-bus products.
    catalog = ProductCatalog(offered=(
        Product("firm@3", 3, 0.0, 10.0), Product("flex@3", 3, 0.05, 5.789),
        Product("firm@4", 4, 0.0, 10.0), Product("flex@4", 4, 0.05, 6.043),
    ))
    built = {b.name: build_profile(b.profile, b, catalog) for b in config.bidders}
    assert built["S"]({"firm@3", "firm@4"}) == 30
    assert built["P"]({"flex@4"}) == pytest.approx(6.043 * 1.5 * 0.75)
    assert built["B"]({"firm@3", "flex@3"}) == 25
    assert built["C"]({"firm@3", "flex@3"}) == 40 and built["C"]({"firm@3"}) == 0


@pytest.mark.parametrize(
    "index, edit, expected",
    [
        (0, {"site_value": {"firm@3": 1}}, "bidders[0]: unknown field 'site_value'; did you mean 'site_values'?"),
        (1, {"max_sites": 2}, "bidders[1]: field 'max_sites' does not belong to profile 'per_mw'"),
        (1, {"backup_share": 1.5}, "bidders[1].backup_share: input should be less than or equal to 1"),
        (2, {"budget_usd": None}, "bidders[2].budget_usd: required field is missing"),
        (2, {"budget_usd": 0}, "bidders[2].budget_usd: input should be greater than 0"),
        (3, {"synergy": 5}, "bidders[3]: unknown field 'synergy'; did you mean 'synergy_usd'?"),
        (0, {"max_sites": "2"}, "bidders[0].max_sites: input should be a valid integer"),
    ],
)
def test_a_wrong_key_in_toml_names_the_field(index, edit, expected):
    bidders = [dict(b) for b in NEW_BIDDERS]
    for key, value in edit.items():
        if value is None:
            del bidders[index][key]
        else:
            bidders[index][key] = value
    with pytest.raises(ConfigError) as error:
        parse_config(_config(bidders))
    assert expected in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_a_market_of_the_new_profiles_runs_end_to_end(tmp_path):
    # The 4-bus example with one bidder of each new profile: capacity, auction and certificates
    # (which read each valuation's atoms) all run, and the effective config re-validates.
    import json

    import tomli_w

    from sim.cli import main

    config = _config([dict(b) for b in NEW_BIDDERS])
    config["load"]["scenarios"] = 200
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(config))
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    # Best allocation by hand: C completes bus 3 (40 $; S on firm@3 with B on flex@3 only ties
    # it), S takes firm@4 (25 $, more than P's 10 MW * 1.5 = 15 $), P takes flex@4 at
    # 1.5 $/MW * (1 - 0.05 * 0.5 * 10) = 1.125 $/MW.
    flex4 = next(p["capacity_mw"] for p in summary["products"] if p["id"] == "flex@4")
    assert summary["efficient_welfare"] == pytest.approx(40 + 25 + 1.125 * flex4)
    parse_config(tomllib.loads((tmp_path / "run" / "config.toml").read_text()))
