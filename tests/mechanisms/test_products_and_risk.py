"""Product ids, risk tiers and blocks, per-MW valuations, and the out-of-sample risk check.

Expected values come from the capacities themselves (sums, differences), hand counts over the
same fresh samples, and closed forms (the Wilson interval).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.capacity_products import products_from_study, split_by_capacity
from agents.errors import AgentConfigError
from agents.profiles import build_profile
from grid.capacity.inputs.binomial import (
    allowed_count,
    scenarios_needed,
    wilson_interval,
)
from grid.capacity.inputs.candidates import make_candidates
from grid.capacity.study import capacity_study
from grid.capacity.verify import verify_risk
from grid.load.scenarios import TruncatedNormalLoad, sample_truncated_normal
from grid.network.cases import load_case
from mechanisms.errors import MechanismError
from mechanisms.products import (
    FIRM,
    FLEX,
    GridProductKey,
    Product,
    ProductCatalog,
    parse_product_id,
    product_id,
    risk_label,
)

PAPER_LOADS = {
    1: TruncatedNormalLoad(25.0, 5.0, 20.0, 30.0),
    2: TruncatedNormalLoad(25.0, 5.0, 20.0, 30.0),
    3: TruncatedNormalLoad(15.0, 5.0, 10.0, 20.0),
    4: TruncatedNormalLoad(20.0, 5.0, 10.0, 30.0),
}
DEMAND = {3: 40.0, 4: 30.0}


@pytest.fixture(scope="module")
def net():
    return load_case("paper-4bus")


@pytest.fixture(scope="module")
def tiered(net):
    scenarios = sample_truncated_normal(net, PAPER_LOADS, 2000, np.random.default_rng(2026))
    return capacity_study(net, scenarios, make_candidates(net, DEMAND), [0.01, 0.05])


# ---------------------------------------------------------------- ids
@pytest.mark.parametrize("risk, label", [(0.05, "5%"), (0.025, "2.5%"), (0.001, "0.1%"), (0.1, "10%"), (0.07, "7%")])
def test_risk_labels(risk, label):
    assert risk_label(risk) == label


def test_product_ids_round_trip():
    cases = [
        (("firm", 3), {}, "firm@3"),
        (("flex", 3), {}, "flex@3"),
        (("flex", 12), {"tier": "5%"}, "flex@12:5%"),
        (("firm", 7), {"block": 2}, "firm@7#2"),
        (("flex", 7), {"tier": "2.5%", "block": 11}, "flex@7:2.5%#11"),
    ]
    for args, kwargs, text in cases:
        assert product_id(*args, **kwargs) == text
        key = parse_product_id(text)
        assert (key.kind, key.bus, key.tier, key.block) == (args[0], args[1], kwargs.get("tier"), kwargs.get("block"))
        assert key.family == product_id(args[0], args[1], tier=kwargs.get("tier"))
    for free_form in ("A", "firm@x", "firm@3:5%", "flex@3#0", "flex@"):
        assert parse_product_id(free_form) is None
    with pytest.raises(MechanismError):
        product_id("firm", 3, tier="5%")
    with pytest.raises(MechanismError):
        product_id("solar", 3)


# ---------------------------------------------------------------- tiers and blocks
def test_one_risk_level_keeps_the_earlier_ids(net):
    scenarios = sample_truncated_normal(net, PAPER_LOADS, 500, np.random.default_rng(1))
    study = capacity_study(net, scenarios, make_candidates(net, DEMAND), [0.05])
    offered, withheld = products_from_study(study)
    assert [p.id for p in offered] == ["firm@3", "flex@3", "firm@4", "flex@4"] and withheld == []


def test_tier_products_are_the_increments_between_nested_tiers(tiered):
    offered, withheld = products_from_study(tiered)
    by_id = {p.id: p for p in offered + withheld}
    for bus in (3, 4):
        firm = tiered.firm.capacity_mw[bus]
        low, high = (t.capacity_mw[bus] for t in tiered.tiers)
        assert by_id[f"firm@{bus}"].capacity_mw == pytest.approx(firm)
        assert by_id[f"flex@{bus}:1%"].capacity_mw == pytest.approx(low - firm)
        assert by_id[f"flex@{bus}:5%"].capacity_mw == pytest.approx(high - low)
        assert by_id[f"flex@{bus}:1%"].risk == 0.01 and by_id[f"flex@{bus}:5%"].risk == 0.05
    assert [p.id for p in offered][:3] == ["firm@3", "flex@3:1%", "flex@3:5%"]


def test_blocks_split_each_product_and_keep_its_total(tiered):
    offered, _ = products_from_study(tiered, block_mw=4.0)
    whole, _ = products_from_study(tiered)
    for product in whole:
        blocks = [p for p in offered if parse_product_id(p.id).family == product.id]
        assert math.fsum(b.capacity_mw for b in blocks) == pytest.approx(product.capacity_mw)
        assert [parse_product_id(b.id).block for b in blocks] == list(range(1, len(blocks) + 1))
        assert all(b.capacity_mw == pytest.approx(4.0) for b in blocks[:-1])
        assert 0 < blocks[-1].capacity_mw <= 4.0 + 1e-9
        assert {b.risk for b in blocks} == {product.risk} and {b.bus for b in blocks} == {product.bus}
    # firm@3 is 10 MW: blocks of 4, 4 and 2 MW.
    assert [p.capacity_mw for p in offered if p.id.startswith("firm@3#")] == pytest.approx([4.0, 4.0, 2.0])


def test_products_below_a_watt_are_withheld():
    offered, withheld = split_by_capacity([Product("a", 1, 0.0, 5.0), Product("b", 1, 0.0, 1e-9)])
    assert [p.id for p in offered] == ["a"] and [p.id for p in withheld] == ["b"]


# ---------------------------------------------------------------- catalog and per-MW values
def _blocks_catalog() -> ProductCatalog:
    offered = (Product("firm@3#1", 3, 0.0, 4.0), Product("firm@3#2", 3, 0.0, 1.5), Product("flex@3", 3, 0.05, 2.0))
    return ProductCatalog(offered=offered, withheld=frozenset({"flex@4"}),
                          families=frozenset({"firm@3", "flex@3", "firm@4", "flex@4"}))


def test_catalog_resolves_families_blocks_and_withheld_products():
    catalog = _blocks_catalog()
    assert [p.id for p in catalog.resolve("firm@3")] == ["firm@3#1", "firm@3#2"]
    assert [p.id for p in catalog.resolve("firm@3#2")] == ["firm@3#2"]
    assert catalog.resolve("firm@3#7") == ()      # a block the capacity does not reach
    assert catalog.resolve("flex@4") == ()        # withheld
    assert catalog.resolve("firm@4") == ()        # a family with no capacity at all
    assert catalog.resolve("firm@9") is None and catalog.resolve("B") is None


def test_value_per_mw_prices_each_product_by_its_capacity():
    catalog = _blocks_catalog()
    profile = build_profile("additive", {"value_per_mw": {"firm@3": 100.0, "flex@3": 40.0, "flex@4": 10.0}}, catalog)
    assert profile(["firm@3#1"]) == pytest.approx(400.0)
    assert profile(["firm@3#2", "flex@3"]) == pytest.approx(150.0 + 80.0)
    assert profile(["firm@3#1", "firm@3#2", "flex@3"]) == pytest.approx(100.0 * 5.5 + 80.0)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"value_per_mw": {"firm@3": 1.0, "firm@3#1": 2.0}}, "value_per_mw.firm@3#1: product firm@3#1 is priced twice"),
        ({"value_per_mw": {"firm@8": 1.0}}, "value_per_mw.firm@8: unknown product 'firm@8'"),
        ({"value_per_mw": {"firm@3": -1.0}}, "value_per_mw.firm@3: value -1 $ is negative"),
        ({"values": {"firm@3": 5.0}}, "values.firm@3: 'firm@3' is split into 2 blocks"),
        ({"values": {"firm@3#1": 5.0}, "value_per_mw": {"flex@3": 1.0}}, "needs one of the fields 'values' or 'value_per_mw', not both"),
    ],
)
def test_value_per_mw_errors_name_the_key(params, message):
    with pytest.raises(AgentConfigError) as exc:
        build_profile("additive", params, _blocks_catalog())
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_abstract_items_cannot_be_priced_per_mw():
    with pytest.raises(AgentConfigError) as exc:
        build_profile("additive", {"value_per_mw": {"A": 3.0}}, ["A", "B"])
    assert "no capacity (MW)" in str(exc.value)


# ---------------------------------------------------------------- the risk check
@pytest.mark.parametrize(
    "successes, trials, low, high",
    # Closed form (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z = 1.959964.
    [(0, 100, 0.0, 0.036994), (10, 100, 0.055229, 0.174366), (50, 50, 0.928652, 1.0)],
)
def test_wilson_interval(successes, trials, low, high):
    assert wilson_interval(successes, trials) == pytest.approx((low, high), abs=1e-6)


@pytest.mark.parametrize("eps", [0.01, 0.05, 0.1])
@pytest.mark.parametrize("trials", [20, 100, 2000, 10_000])
def test_the_joint_target_is_the_largest_count_shown_below_eps(eps, trials):
    # By enumeration: every count up to the target has its upper bound at or below eps, the next
    # one does not (unless even zero does not, when the target is zero).
    allowed = allowed_count(eps, trials)
    uppers = [wilson_interval(k, trials)[1] for k in range(trials + 1)]
    shown = [k for k, upper in enumerate(uppers) if upper <= eps]
    assert allowed == (max(shown) if shown else 0)
    needed = scenarios_needed(eps)
    assert wilson_interval(0, needed)[1] <= eps < wilson_interval(0, needed - 1)[1]


def test_risk_check_counts_each_products_interruptions_by_hand(net, tiered):
    # The same fresh samples, drawn again here; at tier k every bus withdraws c^eps_k. Bus 3 is
    # interrupted when its withdrawal limit (40), line 2-3 (50) or line 1-2 (100) is exceeded.
    def fresh():
        rng = np.random.default_rng(99)
        return lambda n: sample_truncated_normal(net, PAPER_LOADS, n, rng)

    checks = verify_risk(tiered, fresh(), 30_000, product_ids=lambda bus, m: f"{bus}/{m}", chunk=7_000)
    sampler = fresh()  # the same chunks in the same order as verify_risk drew them
    p = np.vstack([sampler(n).samples_mw for n in (7_000, 7_000, 7_000, 7_000, 2_000)])
    models = [tiered.firm, *tiered.tiers]
    by_name = {c.product: c for c in checks}
    for m, model in enumerate(models):
        c3, c4 = model.capacity_mw[3], model.capacity_mw[4]
        trunk = c3 + c4 + p[:, 1] + p[:, 2] + p[:, 3] > 100.0 + 1e-7
        hit = {
            3: (c3 + p[:, 2] > 40.0 + 1e-7) | (c3 + p[:, 2] > 50.0 + 1e-7) | trunk,
            4: (c4 + p[:, 3] > 40.0 + 1e-7) | (c4 + p[:, 3] > 50.0 + 1e-7) | trunk,
        }
        for bus in (3, 4):
            check = by_name.get(f"{bus}/{m}")
            if check is None:  # no increment at this tier
                continue
            assert check.interruptions == int(hit[bus].sum()), (bus, m)
            assert check.scenarios == 30_000 and check.promised_risk == model.risk
    firm_checks = [c for c in checks if c.promised_risk == 0]
    assert firm_checks and all(c.interruptions == 0 for c in firm_checks)  # fresh loads stay in the box
    # Skipping the rows no state of the box can break (C-24) changes no count.
    lower = np.array([PAPER_LOADS[b].lower_mw for b in net.bus_numbers])
    upper = np.array([PAPER_LOADS[b].upper_mw for b in net.bus_numbers])
    assert verify_risk(tiered, fresh(), 30_000, product_ids=lambda bus, m: f"{bus}/{m}", chunk=7_000,
                       box=(lower, upper)) == checks
    first = checks[1]
    assert first.expected_interrupted_mwh == pytest.approx(first.realised_probability * first.capacity_mw)


def test_grid_products_carry_their_key_and_listed_ids_are_read_once():
    key = GridProductKey(FLEX, 3, "5%", 2)
    product = Product.grid(key, 0.05, 4.0)
    assert (product.id, product.bus, product.key) == ("flex@3:5%#2", 3, key) and key.family == "flex@3:5%"
    # A product listed by hand gets the structure its id has, once; a free-form id has none.
    assert Product("firm@4#1", 4, 0.0, 1.0).key == GridProductKey(FIRM, 4, None, 1)
    assert Product("north-site", None, 0.0, 1.0).key is None
    with pytest.raises(MechanismError, match="does not match its key"):
        Product("flex@3", 3, 0.05, 4.0, key)
    # The key is structure, not identity: two products with one id and size are equal.
    assert Product.grid(GridProductKey(FIRM, 4, None, 1), 0.0, 1.0) == Product("firm@4#1", 4, 0.0, 1.0)
