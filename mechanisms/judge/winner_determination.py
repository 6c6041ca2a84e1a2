"""Winner determination and Walrasian-equilibrium certificates for XOR bids (docs/models/auction.md#certificates).

Bidders bid in the XOR language: bidder i lists (bundle T, value) pairs and
v_i(S) = max{value(T) : T listed, T ⊆ S} (free disposal), v_i(∅) = 0.

``solve_winner_determination`` solves the configuration LP

    max  sum_{i,S} v_i(S) x_{i,S}
    s.t. sum_S x_{i,S} <= 1                    for every bidder i          (dual: u_i >= 0)
         sum_{i, S ∋ j} x_{i,S} <= 1           for every product j         (dual: p_j >= 0)
         x >= 0

and its integer version (the efficient allocation, the right-hand maximum of (C-9),
docs/models/auction.md#eq-c-9). Its dual is

    min  sum_i u_i + sum_j p_j   s.t.  u_i + sum_{j in S} p_j >= v_i(S),  u, p >= 0,

so u_i >= max_S {v_i(S) - p(S)}: a dual solution is a price vector with each bidder's demand (C-6)
surplus. By the first and second welfare theorems for this LP (Bikhchandani and Mamer 1997;
Bikhchandani and Ostroy 2002), a competitive equilibrium with item prices (docs/models/auction.md#eq-c-7) exists
iff the LP has an integral optimum, and then the equilibrium prices are exactly the p-parts of the
optimal duals. Under gross substitutes (docs/models/auction.md#def-3, docs/models/auction.md#theorem-2) the gap is
always zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from mechanisms.errors import MechanismError, SizeLimitError
from mechanisms.products import checked_ids

XorBids = Mapping[str, Sequence[tuple[frozenset[str], float]]]

# Relative tolerance for "the LP optimum equals the integer optimum"; HiGHS reports basic solutions of
# this 0/1 LP to round-off, far below it.
_REL_TOL = 1e-9


@dataclass(frozen=True)
class WinnerDetermination:
    """Efficient allocation, LP relaxation bound and, when one exists, item-price equilibria
    (docs/models/auction.md#eq-c-7)."""

    welfare: float  # max over feasible allocations of sum_i v_i(X_i), $
    allocation: dict[str, frozenset[str]]  # every bidder, frozenset() when it wins nothing
    lp_value: float  # optimum of the configuration LP relaxation, >= welfare
    lp_gap: float  # lp_value - welfare, 0 when within round-off
    walrasian_exists: bool  # the LP has an integral optimum <=> a CE with item prices exists
    prices: dict[str, float] | None  # CE prices read off the LP dual, None without a CE
    utilities: dict[str, float] | None  # each bidder's demand surplus max_S v_i(S) - p(S) at ``prices``
    minimal_prices: dict[str, float] | None  # CE prices with the smallest sum
    maximal_prices: dict[str, float] | None  # CE prices with the largest sum


@dataclass(frozen=True)
class _Market:
    """Validated bids as LP columns: column k is bidder ``owner[k]`` buying ``bundles[k]`` for ``values[k]``."""

    products: tuple[str, ...]
    bidders: tuple[str, ...]
    owner: tuple[int, ...]
    bundles: tuple[frozenset[str], ...]
    values: np.ndarray


def xor_bids_from_value(
    value: Callable[[frozenset[str]], float], products: Sequence[str], max_products: int = 16
) -> list[tuple[frozenset[str], float]]:
    """XOR bids that represent ``value`` exactly under free disposal, v(S) = max_{T ⊆ S} value(T).

    Every non-empty subset is evaluated once (2^m calls). A bundle is kept only if its value is positive
    and strictly above every strict subset's value: the others are implied by free disposal, so dropping
    them changes no v(S) and keeps the LP small. Bundles come out in bitmask order of ``products``.
    """
    products = checked_ids(products)
    m = len(products)
    if m > max_products:
        raise SizeLimitError(
            f"xor_bids_from_value enumerates 2^m bundles: {m} products exceeds the limit of "
            f"{max_products}; pass max_products={m} or use fewer products"
        )
    size = 1 << m
    bundles: list[frozenset[str]] = [frozenset()]
    for i, product in enumerate(products):
        bundles.extend(b | {product} for b in bundles[: 1 << i])
    own = [0.0] * size
    for mask in range(1, size):
        own[mask] = _checked_value(value(bundles[mask]), "value function", bundles[mask], products)
    # best_with[mask] = max value over subsets of mask (∅ counts 0); a strict subset lies inside some
    # mask minus one product, so those closures give the best strict-subset value.
    best_with = [0.0] * size
    bids: list[tuple[frozenset[str], float]] = []
    for mask in range(1, size):
        below = 0.0
        bits = mask
        while bits:
            low = bits & -bits
            below = max(below, best_with[mask ^ low])
            bits ^= low
        best_with[mask] = max(below, own[mask])
        if own[mask] > below:
            bids.append((bundles[mask], own[mask]))
    return bids


def best_welfare(products: Sequence[str], bids: XorBids) -> tuple[float, dict[str, frozenset[str]]]:
    """The integer optimum alone (welfare, allocation): what a bidder's own valuation needs (an
    aggregator valuing a bundle), without the LP certificates."""
    market = _validated_market(products, bids)
    if not market.bundles:
        return 0.0, {b: frozenset() for b in market.bidders}
    rows, _, _ = _incidence(market)
    allocation, welfare = _integer_optimum(market, rows)
    return welfare, allocation


def solve_winner_determination(products: Sequence[str], bids: XorBids) -> WinnerDetermination:
    """Efficient allocation (integer optimum), configuration-LP bound and item-price CE certificates.

    ``walrasian_exists`` is True iff the LP optimum is integral (lp_gap <= 1e-9 max(1, lp_value)); then
    ``prices`` come from the LP dual and satisfy (7a) and (7b) for ``allocation``, and the minimal /
    maximal vectors minimise / maximise sum_j p_j over the optimal dual face
    {u, p >= 0 : u_i + p(S) >= v_i(S), sum u + sum p = lp_value}. Products nobody bids on are priced 0.
    """
    market = _validated_market(products, bids)
    if not market.bundles:
        return _empty_determination(market)

    rows, bid_products, bidder_rows = _incidence(market)
    n_rows = rows.shape[0]
    # No x <= 1 bounds: the bidder rows imply them, and bound duals would steal the u_i / p_j values.
    lp = linprog(-market.values, A_ub=rows, b_ub=np.ones(n_rows), bounds=(0, None), method="highs")
    _require_optimal(lp, "configuration LP relaxation")
    lp_value = float(-lp.fun)

    allocation, welfare = _integer_optimum(market, rows)
    lp_gap = _integrality_gap(lp_value, welfare)
    walrasian = lp_gap == 0.0

    prices = minimal = maximal = utilities = None
    if walrasian:
        # linprog minimises -v x, so the row marginals are d(-welfare)/d(capacity) <= 0.
        duals = -np.asarray(lp.ineqlin.marginals, dtype=float)
        prices = _price_dict(market.products, bid_products, duals[bidder_rows:])
        utilities = _utilities(market, prices)
        minimal = _extreme_prices(market, rows, bidder_rows, bid_products, lp_value, maximise=False)
        maximal = _extreme_prices(market, rows, bidder_rows, bid_products, lp_value, maximise=True)

    return WinnerDetermination(
        welfare=welfare,
        allocation=allocation,
        lp_value=lp_value,
        lp_gap=lp_gap,
        walrasian_exists=walrasian,
        prices=prices,
        utilities=utilities,
        minimal_prices=minimal,
        maximal_prices=maximal,
    )


def _empty_determination(market: _Market) -> WinnerDetermination:
    """No bids: nothing is sold, and every product at price 0 is an equilibrium."""
    zero = {p: 0.0 for p in market.products}
    return WinnerDetermination(
        welfare=0.0,
        allocation={b: frozenset() for b in market.bidders},
        lp_value=0.0,
        lp_gap=0.0,
        walrasian_exists=True,
        prices=dict(zero),
        utilities={b: 0.0 for b in market.bidders},
        minimal_prices=dict(zero),
        maximal_prices=dict(zero),
    )


def _integrality_gap(lp_value: float, welfare: float) -> float:
    """lp_value - welfare, 0 within round-off; an integer optimum above the LP bound is a solver fault."""
    raw_gap = lp_value - welfare
    tol = _REL_TOL * max(1.0, abs(lp_value))
    if raw_gap < -1e3 * tol:
        raise MechanismError(
            f"winner determination: integer welfare {welfare:.10g} exceeds the LP bound {lp_value:.10g}; "
            "the solver results are inconsistent"
        )
    return raw_gap if raw_gap > tol else 0.0


def _fmt(bundle: frozenset[str], products: Sequence[str]) -> str:
    order = {p: i for i, p in enumerate(products)}
    return "{" + ", ".join(sorted(bundle, key=lambda p: (order.get(p, len(order)), p))) + "}"


def _checked_value(value: object, who: str, bundle: frozenset[str], products: Sequence[str]) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MechanismError(f"{who} bundle {_fmt(bundle, products)}: value {value!r} is not a number") from None
    if not math.isfinite(v) or v < 0:
        raise MechanismError(
            f"{who} bundle {_fmt(bundle, products)}: value {value!r} must be finite and >= 0"
        )
    return v


def _validated_market(products: Sequence[str], bids: XorBids) -> _Market:
    product_ids = checked_ids(products)
    known = set(product_ids)
    bidders = tuple(bids)
    best: dict[tuple[int, frozenset[str]], float] = {}
    for i, bidder in enumerate(bidders):
        who = f"bidder {bidder!r}"
        for bid in bids[bidder]:
            try:
                raw_bundle, raw_value = bid
                bundle = frozenset(raw_bundle)
            except (TypeError, ValueError):
                raise MechanismError(f"{who}: bid {bid!r} is not a (bundle, value) pair") from None
            unknown = sorted(str(p) for p in bundle - known)
            if unknown:
                raise MechanismError(
                    f"{who} bundle {_fmt(bundle, product_ids)}: unknown product(s) {', '.join(unknown)}"
                )
            v = _checked_value(raw_value, who, bundle, product_ids)
            if not bundle and v > 0:
                raise MechanismError(f"{who} bundle {{}}: the empty bundle is worth 0, got {raw_value!r}")
            # A zero bid never beats winning nothing; repeated bundles in an XOR list count at their best.
            if v > 0:
                best[(i, bundle)] = max(v, best.get((i, bundle), 0.0))
    keys = list(best)
    return _Market(
        products=product_ids,
        bidders=bidders,
        owner=tuple(i for i, _ in keys),
        bundles=tuple(b for _, b in keys),
        values=np.array([best[k] for k in keys], dtype=float),
    )


def _incidence(market: _Market) -> tuple[sparse.csr_array, tuple[str, ...], int]:
    """Rows: bidders (all, possibly empty), then the products some bid contains. Columns: bids."""
    used = set().union(*market.bundles)
    bid_products = tuple(p for p in market.products if p in used)
    n_bidders = len(market.bidders)
    row_of = {p: n_bidders + r for r, p in enumerate(bid_products)}
    r_idx: list[int] = []
    c_idx: list[int] = []
    for k, (i, bundle) in enumerate(zip(market.owner, market.bundles)):
        r_idx.append(i)
        c_idx.append(k)
        for p in bundle:
            r_idx.append(row_of[p])
            c_idx.append(k)
    shape = (n_bidders + len(bid_products), len(market.bundles))
    rows = sparse.csr_array((np.ones(len(r_idx)), (r_idx, c_idx)), shape=shape)
    return rows, bid_products, n_bidders


def _require_optimal(res: object, what: str) -> None:
    status = getattr(res, "status", None)
    if status != 0:
        message = " ".join(str(getattr(res, "message", "no message")).split())
        raise MechanismError(f"winner determination: {what} was not solved to optimality (status {status}): {message}")


def _integer_optimum(market: _Market, rows: sparse.csr_array) -> tuple[dict[str, frozenset[str]], float]:
    n = len(market.bundles)
    res = milp(
        -market.values,
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
        constraints=LinearConstraint(rows, -np.inf, np.ones(rows.shape[0])),
        # HiGHS stops at a 1e-4 relative gap by default; the welfare benchmark must be the optimum.
        options={"mip_rel_gap": 0.0},
    )
    _require_optimal(res, "integer winner determination")
    chosen = [k for k in range(n) if res.x[k] > 0.5]
    allocation = {bidder: frozenset() for bidder in market.bidders}
    sold: set[str] = set()
    for k in chosen:
        bidder = market.bidders[market.owner[k]]
        if allocation[bidder] or sold & market.bundles[k]:
            raise MechanismError("winner determination: the integer solution is infeasible after rounding")
        allocation[bidder] = market.bundles[k]
        sold |= market.bundles[k]
    # Summed from the chosen bids rather than read from res.fun, so integral values stay exact.
    welfare = math.fsum(float(market.values[k]) for k in chosen)
    return allocation, welfare


def _price_dict(products: Sequence[str], bid_products: Sequence[str], values: np.ndarray) -> dict[str, float]:
    prices = {p: 0.0 for p in products}
    for p, v in zip(bid_products, values):
        prices[p] = max(0.0, float(v))
    return prices


def _utilities(market: _Market, prices: Mapping[str, float]) -> dict[str, float]:
    # Under free disposal a best bundle among all subsets is a listed one or ∅, since prices are >= 0.
    utilities = {bidder: 0.0 for bidder in market.bidders}
    for i, bundle, v in zip(market.owner, market.bundles, market.values):
        bidder = market.bidders[i]
        utilities[bidder] = max(utilities[bidder], float(v) - math.fsum(prices[p] for p in bundle))
    return utilities


def _extreme_prices(
    market: _Market,
    rows: sparse.csr_array,
    bidder_rows: int,
    bid_products: Sequence[str],
    lp_value: float,
    *,
    maximise: bool,
) -> dict[str, float]:
    """Min- or max-sum p over the optimal dual face; variables are (u, p) in the primal's row order."""
    n_vars = rows.shape[0]
    covering = -rows.T.tocsr()  # u_i + p(S) >= v_i(S), written as <=
    # sum u + sum p == lp_value pins the optimal dual face; HiGHS's feasibility tolerance (1e-7) absorbs
    # the round-off in lp_value, and a slack here would leak into the prices.
    res = linprog(
        np.where(np.arange(n_vars) < bidder_rows, 0.0, -1.0 if maximise else 1.0),
        A_ub=covering,
        b_ub=-market.values,
        A_eq=np.ones((1, n_vars)),
        b_eq=[lp_value],
        bounds=(0, None),
        method="highs",
    )
    _require_optimal(res, ("maximal" if maximise else "minimal") + " equilibrium price LP")
    return _price_dict(market.products, bid_products, res.x[bidder_rows:])
