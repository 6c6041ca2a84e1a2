"""Equilibrium and welfare checks against the paper's Tables VI-IX, hand computation and brute force."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest

from mechanisms.errors import MechanismError, SizeLimitError
from mechanisms.judge.equilibrium import EquilibriumReport, check_equilibrium
from mechanisms.judge.welfare import allocation_welfare, efficient_allocation

# Paper items 1..4 in order.
P = ("firm@3", "flex@3", "firm@4", "flex@4")
DELTA = 5.0


def items(*numbers: int) -> tuple[str, ...]:
    """Paper item numbers (1-based) -> product ids in product order."""
    return tuple(P[n - 1] for n in sorted(numbers))


def additive(weights: dict[str, float]):
    return lambda bundle: float(sum(weights.get(p, 0.0) for p in bundle))


def by_size(f: list[float]):
    return lambda bundle: float(f[len(bundle)])


def rows(report: EquilibriumReport, bidder: str) -> dict[tuple[str, ...], tuple[float, float, float, float]]:
    (check,) = [b for b in report.bidders if b.bidder == bidder]
    return {r.bundle: (r.value, r.penalty, r.price, r.surplus) for r in check.table}


def bidder_check(report: EquilibriumReport, bidder: str):
    (check,) = [b for b in report.bidders if b.bidder == bidder]
    return check


# ------------------------------------------------ Example 1 (docs/models/auction.md#ca-6-1)


@pytest.fixture(scope="module")
def example1() -> EquilibriumReport:
    valuations = {
        "B1": additive(dict(zip(P, [20, 0, 30, 15]))),
        "B2": additive(dict(zip(P, [30, 20, 10, 10]))),
    }
    allocation = {"firm@3": "B2", "flex@3": "B2", "firm@4": "B1", "flex@4": "B1"}
    prices = dict(zip(P, [20, 5, 10, 5]))
    return check_equilibrium(P, valuations, allocation, prices, DELTA)


# Table VI (bundles with item 2 omitted, as in the paper) and Table VII, keyed by paper item numbers.
TABLE_VI = {
    (): (0, 0, 0, 0),
    (1,): (20, 5, 20, -5),
    (3,): (30, 0, 10, 20),
    (4,): (15, 0, 5, 10),
    (1, 3): (50, 5, 30, 15),
    (1, 4): (35, 5, 25, 5),
    (1, 3, 4): (65, 5, 35, 25),
    (3, 4): (45, 0, 15, 30),
}
TABLE_VII = {
    (): (0, 0, 0, 0),
    (1,): (30, 0, 20, 10),
    (2,): (20, 0, 5, 15),
    (3,): (10, 5, 10, -5),
    (4,): (10, 5, 5, 0),
    (1, 3): (40, 5, 30, 5),
    (1, 4): (40, 5, 25, 10),
    (2, 3): (30, 5, 15, 10),
    (2, 4): (30, 5, 10, 15),
    (3, 4): (20, 10, 15, -5),
    (1, 2, 3): (60, 5, 35, 20),
    (1, 2, 4): (60, 5, 30, 25),
    (1, 3, 4): (50, 10, 35, 5),
    (2, 3, 4): (40, 10, 20, 10),
    (1, 2, 3, 4): (70, 10, 40, 20),
    (1, 2): (50, 0, 25, 25),
}


def test_example1_is_ce_under_modified_valuations(example1: EquilibriumReport) -> None:
    assert example1.holds
    assert example1.violations == ()
    b1, b2 = bidder_check(example1, "B1"), bidder_check(example1, "B2")
    assert b1.bundle == items(3, 4) and b2.bundle == items(1, 2)
    assert b1.maximisers == (items(3, 4),)
    assert b1.surplus == b1.best_surplus == 30
    assert b2.maximisers == (items(1, 2), items(1, 2, 4))
    assert b2.surplus == b2.best_surplus == 25


@pytest.mark.parametrize(("bidder", "table"), [("B1", TABLE_VI), ("B2", TABLE_VII)])
def test_example1_tables_vi_vii(example1: EquilibriumReport, bidder: str, table: dict) -> None:
    got = rows(example1, bidder)
    assert len(got) == 16  # every bundle, including those the paper leaves out
    for numbers, expected in table.items():
        assert got[items(*numbers)] == expected, (bidder, numbers)
    # Tables list bundles by size, then by item index.
    check = bidder_check(example1, bidder)
    bundles = [r.bundle for r in check.table]
    assert bundles == sorted(bundles, key=lambda b: (len(b), [P.index(p) for p in b]))


def test_example1_not_ce_under_true_valuations(example1: EquilibriumReport) -> None:
    assert not example1.holds_true_valuations
    (v,) = example1.violations_true
    assert (v.bidder, v.condition, v.bundle, v.gain) == ("B2", "7a", items(1, 2, 4), 5)
    assert v.message == (
        "B2 prefers {firm@3, flex@3, flex@4} (surplus 30) to its bundle {firm@3, flex@3} (surplus 25) "
        "under true valuations"
    )
    # Hand computation: true surplus of {1,2,4} = 60 - 30 and of {1,2,3,4} = 70 - 40, both 30.
    assert bidder_check(example1, "B2").maximisers_true == (items(1, 2, 4), items(1, 2, 3, 4))
    assert bidder_check(example1, "B2").best_surplus_true == 30


def test_example1_welfare(example1: EquilibriumReport) -> None:
    assert example1.welfare == 95 == example1.efficient_welfare
    assert example1.efficiency_gap == 0
    assert example1.efficient_allocation == {"B1": items(3, 4), "B2": items(1, 2)}
    assert example1.efficiency_bound == DELTA * 4
    assert example1.efficiency_bound_holds


def test_as_dict_is_json_ready(example1: EquilibriumReport) -> None:
    d = example1.as_dict()
    assert set(d) == {
        "holds", "holds_true_valuations", "increment", "violations", "violations_true", "maximisers",
        "maximisers_true", "welfare", "efficient_welfare", "efficient_allocation", "efficiency_gap",
        "efficiency_bound", "efficiency_bound_holds",
    }  # fmt: skip
    assert json.loads(json.dumps(d)) == d
    assert d["maximisers"]["B2"] == [list(items(1, 2)), list(items(1, 2, 4))]
    assert d["violations_true"][0]["bundle"] == list(items(1, 2, 4))
    assert d["efficient_allocation"] == {"B1": list(items(3, 4)), "B2": list(items(1, 2))}


# ------------------------------------------------ Example 2 (docs/models/auction.md#ca-6-2)


@pytest.fixture(scope="module")
def example2() -> EquilibriumReport:
    valuations = {"B1": by_size([0, 30, 50, 55, 60]), "B2": by_size([0, 25, 45, 60, 65])}
    allocation = {"flex@3": "B1", "flex@4": "B1", "firm@3": "B2", "firm@4": "B2"}
    return check_equilibrium(P, valuations, allocation, dict.fromkeys(P, 10), DELTA)


TABLE_VIII = {
    (): (0, 0, 0, 0),
    (1,): (30, 5, 10, 15),
    (2,): (30, 0, 10, 20),
    (3,): (30, 5, 10, 15),
    (4,): (30, 0, 10, 20),
    (1, 2): (50, 5, 20, 25),
    (1, 3): (50, 10, 20, 20),
    (1, 4): (50, 5, 20, 25),
    (2, 3): (50, 5, 20, 25),
    (3, 4): (50, 5, 20, 25),
    (1, 2, 3): (55, 10, 30, 15),
    (1, 2, 4): (55, 5, 30, 20),
    (1, 3, 4): (55, 10, 30, 15),
    (2, 3, 4): (55, 5, 30, 20),
    (1, 2, 3, 4): (60, 10, 40, 10),
    (2, 4): (50, 0, 20, 30),
}
TABLE_IX = {
    (): (0, 0, 0, 0),
    (1,): (25, 0, 10, 15),
    (2,): (25, 5, 10, 10),
    (3,): (25, 0, 10, 15),
    (4,): (25, 5, 10, 10),
    (1, 2): (45, 5, 20, 20),
    (1, 4): (45, 5, 20, 20),
    (2, 3): (45, 5, 20, 20),
    (2, 4): (45, 10, 20, 15),
    (3, 4): (45, 5, 20, 20),
    (1, 2, 3): (60, 5, 30, 25),
    (1, 2, 4): (60, 10, 30, 20),
    (1, 3, 4): (60, 5, 30, 25),
    (2, 3, 4): (60, 10, 30, 20),
    (1, 2, 3, 4): (65, 10, 40, 15),
    (1, 3): (45, 0, 20, 25),
}


def test_example2_is_ce_under_modified_valuations(example2: EquilibriumReport) -> None:
    assert example2.holds
    b1, b2 = bidder_check(example2, "B1"), bidder_check(example2, "B2")
    assert b1.maximisers == (items(2, 4),) and b1.best_surplus == 30
    assert b2.maximisers == (items(1, 3), items(1, 2, 3), items(1, 3, 4)) and b2.best_surplus == 25


@pytest.mark.parametrize(("bidder", "table"), [("B1", TABLE_VIII), ("B2", TABLE_IX)])
def test_example2_tables_viii_ix(example2: EquilibriumReport, bidder: str, table: dict) -> None:
    got = rows(example2, bidder)
    for numbers, expected in table.items():
        assert got[items(*numbers)] == expected, (bidder, numbers)


def test_example2_true_valuations_and_welfare(example2: EquilibriumReport) -> None:
    # Hand computation: under true valuations B1 gets 55 - 30 = 25 < 30 from three items, but B2
    # gets 60 - 30 = 30 > 25 from three, so only B2 deviates.
    assert not example2.holds_true_valuations
    (v,) = example2.violations_true
    assert (v.bidder, v.condition, v.gain) == ("B2", "7a", 5)
    assert len(v.bundle) == 3 and set(items(1, 3)) <= set(v.bundle)
    assert example2.welfare == 95 == example2.efficient_welfare
    assert example2.efficiency_bound_holds


# ---------------------------------------------------------------- complements (hand computation)

AB = ("A", "B")


def complements():
    return {
        "C": lambda s: 30.0 if {"A", "B"} <= s else 0.0,
        "X": additive({"A": 20}),
        "Y": additive({"B": 20}),
    }


def violations_by_bidder(violations) -> dict[str, tuple[tuple[str, ...], float]]:
    return {v.bidder: (v.bundle, v.gain) for v in violations if v.condition == "7a"}


def test_complements_c_holding_half_the_pair() -> None:
    # C holds A at 10, Y holds B at 10, X nothing. C's modified surplus: {} 0, {A} -10, {B} -15,
    # {A,B} 30 - 5 - 20 = 5, so C prefers the pair (gain 5 - (-10) = 15; true: 30 - 20 = 10, gain 20).
    # X, holding nothing, wants A: 20 - 5 - 10 = 5 (true 10). Y's 20 - 10 = 10 is its best.
    report = check_equilibrium(AB, complements(), {"A": "C", "B": "Y"}, {"A": 10, "B": 10}, DELTA)
    assert not report.holds and not report.holds_true_valuations
    assert violations_by_bidder(report.violations) == {"C": (AB, 15), "X": (("A",), 5)}
    assert violations_by_bidder(report.violations_true) == {"C": (AB, 20), "X": (("A",), 10)}
    assert report.efficient_welfare == 40
    assert report.efficient_allocation == {"C": (), "X": ("A",), "Y": ("B",)}
    assert report.welfare == 20 and report.efficiency_gap == 20
    assert report.efficiency_bound == 10 and not report.efficiency_bound_holds


def test_complements_c_prefers_nothing() -> None:
    # Prices A 15, B 20. C: {A,B} = 30 - 5 - 35 = -10 < 0 = {}, so C's best is nothing, against
    # -15 for its {A}. X: 20 - 5 - 15 = 0 ties with {} under (8); Y: 20 - 20 = 0 is a best.
    report = check_equilibrium(AB, complements(), {"A": "C", "B": "Y"}, {"A": 15, "B": 20}, DELTA)
    (v,) = report.violations
    assert (v.bidder, v.condition, v.bundle, v.gain) == ("C", "7a", (), 15)
    assert v.message == "C prefers {} (surplus 0) to its bundle {A} (surplus -15) under modified valuations (8)"
    assert bidder_check(report, "C").maximisers == ((),)
    assert bidder_check(report, "X").maximisers == ((), ("A",))
    # True valuations: C's pair gives 30 - 35 = -5, so nothing is still best; X now wants A (20 - 15).
    assert violations_by_bidder(report.violations_true) == {"C": ((), 15), "X": (("A",), 5)}
    assert report.efficient_welfare == 40


@pytest.mark.parametrize("prices", [{"A": 20, "B": 10}, {"A": 15, "B": 15}])
def test_complements_true_ce(prices: dict[str, float]) -> None:
    # X: 20 - pA >= 0, Y: 20 - pB >= 0, C: 30 - pA - pB <= 0 -> CE under true and modified valuations.
    report = check_equilibrium(AB, complements(), {"A": "X", "B": "Y"}, prices, DELTA)
    assert report.holds and report.holds_true_valuations
    assert report.welfare == 40 == report.efficient_welfare
    assert bidder_check(report, "C").maximisers_true[0] == ()


# ---------------------------------------------------------------- (7b)


def test_unsold_product_with_positive_price_violates_7b() -> None:
    valuations = {"X": additive({"A": 20})}
    report = check_equilibrium(AB, valuations, {"A": "X", "B": None}, {"A": 5, "B": 5}, DELTA)
    assert not report.holds and not report.holds_true_valuations
    (v,) = report.violations
    assert (v.condition, v.bundle, v.gain, v.bidder) == ("7b", ("B",), 5, "")
    assert report.violations_true == report.violations
    assert "B" in v.message and "\n" not in v.message


def test_unsold_products_at_price_zero_satisfy_7b() -> None:
    valuations = {"X": additive({"A": 20})}
    report = check_equilibrium(AB, valuations, {"A": "X", "B": None}, {"A": 5, "B": 0}, DELTA)
    assert report.holds and report.holds_true_valuations
    # A product left out of the allocation counts as unsold.
    assert check_equilibrium(AB, valuations, {"A": "X"}, {"A": 5, "B": 0}, DELTA).holds


def test_several_unsold_priced_products_give_one_7b_violation() -> None:
    report = check_equilibrium(("A", "B", "C"), {"X": additive({})}, {}, {"A": 1, "B": 0, "C": 2}, 0)
    (v,) = report.violations
    assert (v.condition, v.bundle, v.gain) == ("7b", ("A", "C"), 3)


# ---------------------------------------------------------------- brute force


def brute_force_welfare(products, valuations) -> float:
    bidders = list(valuations)
    best = -math.inf
    for owners in itertools.product([None, *bidders], repeat=len(products)):
        total = sum(
            valuations[b](frozenset(p for p, o in zip(products, owners) if o == b)) for b in bidders
        )
        best = max(best, total)
    return best


def random_valuation(rng: random.Random, products: tuple[str, ...]):
    if rng.random() < 0.5:
        return additive({p: rng.randint(0, 30) for p in products})
    # Bundle table: arbitrary (also non-monotone, negative) values, as in a bundle-bid language.
    table = {frozenset(): 0}
    for k in range(1, len(products) + 1):
        for combo in itertools.combinations(products, k):
            table[frozenset(combo)] = rng.randint(-10, 40)
    return table.__getitem__


@pytest.mark.parametrize("seed", range(40))
def test_efficient_allocation_matches_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    products = tuple(f"p{i}" for i in range(rng.randint(1, 5)))
    valuations = {f"b{j}": random_valuation(rng, products) for j in range(rng.randint(2, 3))}
    result = efficient_allocation(products, valuations)
    assert result.welfare == brute_force_welfare(products, valuations)
    assert set(result.allocation) == set(valuations)
    assigned = [p for bundle in result.allocation.values() for p in bundle]
    assert len(assigned) == len(set(assigned))
    for bundle in result.allocation.values():
        assert list(bundle) == sorted(bundle, key=products.index)
    assert allocation_welfare(result.allocation, valuations) == result.welfare


@pytest.mark.parametrize("seed", range(20))
def test_check_equilibrium_matches_naive_enumeration(seed: int) -> None:
    rng = random.Random(1000 + seed)
    products = tuple(f"p{i}" for i in range(rng.randint(1, 4)))
    valuations = {f"b{j}": random_valuation(rng, products) for j in range(rng.randint(1, 3))}
    allocation = {p: rng.choice([None, *valuations]) for p in products}
    prices = {p: rng.choice([0, 0, rng.randint(0, 20)]) for p in products}
    delta = rng.choice([0, 1, 5])
    report = check_equilibrium(products, valuations, allocation, prices, delta)

    def naive(bidder: str, modified: bool) -> tuple[float, list[tuple[str, ...]], float]:
        held = {p for p, o in allocation.items() if o == bidder}
        bundles = [c for k in range(len(products) + 1) for c in itertools.combinations(products, k)]

        def surplus(s: tuple[str, ...]) -> float:
            pen = delta * len(set(s) - held) if modified else 0
            return valuations[bidder](frozenset(s)) - pen - sum(prices[p] for p in s)

        best = max(surplus(s) for s in bundles)
        return best, [s for s in bundles if surplus(s) == best], surplus(tuple(p for p in products if p in held))

    holds = {True: True, False: True}
    for check in report.bidders:
        for modified in (True, False):
            best, maximisers, own = naive(check.bidder, modified)
            got = (check.best_surplus, check.maximisers) if modified else (check.best_surplus_true, check.maximisers_true)
            assert got == (best, tuple(maximisers))
            holds[modified] &= own == best
    unsold_ok = all(prices[p] == 0 for p, o in allocation.items() if o is None)
    assert report.holds == (holds[True] and unsold_ok)
    assert report.holds_true_valuations == (holds[False] and unsold_ok)
    assert report.efficient_welfare == brute_force_welfare(products, valuations)
    if report.holds:  # (9) follows from (8) being a CE
        assert report.efficiency_bound_holds


def test_ties_are_deterministic_and_favour_earlier_bidders() -> None:
    valuations = {"first": additive({"A": 10, "B": 0}), "second": additive({"A": 10, "B": 0})}
    result = efficient_allocation(AB, valuations)
    assert result.welfare == 10
    assert result.allocation == {"first": ("A",), "second": ()}


def test_no_products_and_no_bidders() -> None:
    assert efficient_allocation((), {"X": additive({})}).welfare == 0
    assert efficient_allocation((), {"X": additive({})}).allocation == {"X": ()}
    assert efficient_allocation(AB, {}).welfare == 0
    report = check_equilibrium((), {"X": additive({})}, {}, {}, DELTA)
    assert report.holds and report.efficient_welfare == 0 and report.efficiency_bound == 0


# ---------------------------------------------------------------- limits and bad input


def test_size_limit() -> None:
    products = tuple(f"p{i}" for i in range(20))
    with pytest.raises(SizeLimitError) as err:
        efficient_allocation(products, {"X": additive({})})
    assert str(err.value) == (
        "exact welfare needs 3^m bundle pairs: 20 products exceeds the limit of 12; "
        "pass max_products=20 or use fewer products"
    )
    with pytest.raises(SizeLimitError) as err:
        check_equilibrium(products, {"X": additive({})}, {}, dict.fromkeys(products, 0), DELTA)
    assert "limit of 12" in str(err.value) and "max_products=" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(SizeLimitError):
        efficient_allocation(products[:5], {"X": additive({})}, max_products=4)


def test_raised_size_limit_works() -> None:
    products = tuple(f"p{i}" for i in range(13))
    weights = {p: i + 1 for i, p in enumerate(products)}
    valuations = {"X": additive(weights), "Y": additive({p: w + (1 if w % 2 else -1) for p, w in weights.items()})}
    result = efficient_allocation(products, valuations, max_products=13)
    assert result.welfare == sum(max(w, w + (1 if w % 2 else -1)) for w in weights.values())


def example1_args() -> dict:
    return {
        "products": P,
        "valuations": {"B1": additive({}), "B2": additive({})},
        "allocation": {"firm@3": "B2", "flex@3": "B2", "firm@4": "B1", "flex@4": "B1"},
        "prices": dict(zip(P, [20, 5, 10, 5])),
        "increment": DELTA,
    }


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"allocation": {"firm@9": "B1"}}, "'firm@9'"),
        ({"allocation": {"firm@3": "B7"}}, "'B7'"),
        ({"prices": {**dict.fromkeys(P, 0), "firm@9": 1}}, "'firm@9'"),
        ({"prices": dict.fromkeys(P[:3], 0)}, "'flex@4'"),
        ({"prices": {**dict.fromkeys(P, 0), "flex@3": -1}}, "non-negative"),
        ({"prices": {**dict.fromkeys(P, 0), "flex@3": math.nan}}, "finite"),
        ({"increment": -1}, "increment"),
        ({"products": ("firm@3", "firm@3")}, "twice"),
        ({"valuations": {"B1": lambda s: 1.0, "B2": additive({})}}, "v(empty"),
    ],
)
def test_bad_input(change: dict, fragment: str) -> None:
    args = {**example1_args(), **change}
    with pytest.raises(MechanismError) as err:
        check_equilibrium(**args)
    message = str(err.value)
    assert fragment in message and "\n" not in message


def test_allocation_welfare() -> None:
    valuations = complements()
    assert allocation_welfare({"X": ["A"], "Y": ["B"]}, valuations) == 40
    assert allocation_welfare({"C": ("A", "B")}, valuations) == 30
    with pytest.raises(MechanismError, match="both"):
        allocation_welfare({"X": ["A"], "C": ["A", "B"]}, valuations)
    with pytest.raises(MechanismError, match="'Z'"):
        allocation_welfare({"Z": ["A"]}, valuations)
