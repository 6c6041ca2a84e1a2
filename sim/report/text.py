"""Plain-text tables for the terminal: products, capacity, rounds, allocation, equilibrium verdict.

The round table is built from the same rows that go to bids.csv and rounds.csv, so
`dcmarket run` and `dcmarket log` print the same thing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Sequence[bool] | None = None) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    right = right or [False] * len(headers)
    lines = []
    for n, row in enumerate(cells):
        parts = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def money(amount: float) -> str:
    """$ amounts, one format for all: to the cent, trailing zeros dropped, thousands separated
    (20, 2.5, 1,234.56, 15,000,000; never an exponent)."""
    text = f"{amount:,.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def mw(amount: float) -> str:
    """MW (and MWh/h), one format for all: to 0.01 MW, thousands separated (12.35, 5,341.10,
    0.00; never an exponent)."""
    text = f"{amount:,.2f}"
    return "0.00" if text == "-0.00" else text


def probability(value: float) -> str:
    """Probabilities (risk levels, interruption probabilities), one format for all: 4 significant
    digits, trailing zeros dropped, never an exponent (0.05, 0.03502, 0.00003, 1)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}".replace("-0", "0")
    decimals = max(0, 3 - math.floor(math.log10(abs(value))))
    text = f"{round(value, decimals):.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def products_table(products: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        (p["id"], "-" if p["bus"] is None else p["bus"], probability(p["risk"]), mw(p["capacity_mw"]))
        for p in products
    ]
    return format_table(["product", "bus", "risk", "capacity (MW)"], rows, [False, True, True, True])


FULL_STANDINGS_MAX = 8


def _bid_text(bids: Sequence[Mapping[str, Any]]) -> str:
    amounts = {float(b["amount"]) for b in bids}
    names = ", ".join(b["product"] for b in bids)
    if len(amounts) == 1:
        return f"{names} at {money(amounts.pop())}"
    shown = ", ".join(f"{b['product']} at {money(float(b['amount']))}" for b in bids[:BIDS_SHOWN])
    # A sealed report can hold thousands of bundle bids: the table shows a few, bids.csv has all.
    return shown + (f", ... {len(bids) - BIDS_SHOWN} more (bids.csv)" if len(bids) > BIDS_SHOWN else "")


BIDS_SHOWN = 12


def _standings_text(standings: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for row in standings:
        holder = row["standing_bidder"] or "-"
        price = money(float(row["standing_price"])) if row["standing_bidder"] else "0"
        parts.append(f"{row['product']}: {holder} ({price})")
    return ", ".join(parts)


def round_table(
    bids: Sequence[Mapping[str, Any]],
    standings: Sequence[Mapping[str, Any]],
    bidders: Sequence[str],
    *,
    round_filter: int | None = None,
    bidder_filter: str | None = None,
    product_filter: str | None = None,
) -> str:
    """Table III/V layout: per round, each bidder's new bids, then holder (price) per product."""
    # Group once: a long auction has thousands of rounds and bids.
    bids_by_round: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for bid in bids:
        bids_by_round[int(bid["round"])].append(bid)
    standings_by_round: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for row in standings:
        standings_by_round[int(row["round"])].append(row)
    rounds = sorted(standings_by_round)
    last_round = rounds[-1] if rounds else 0
    if round_filter is not None:
        rounds = [r for r in rounds if r == round_filter]
    # Table III lists every product after each round; past a handful that is unreadable, so
    # larger markets show only the products whose standing changed in the round.
    products_seen = {row["product"] for row in standings}
    # A bidder filter shows that bidder's holdings instead, which are short and show losses too.
    changes_only = len(products_seen) > FULL_STANDINGS_MAX and product_filter is None and bidder_filter is None
    def state(row: Mapping[str, Any]) -> tuple[str, float]:
        return (row["standing_bidder"] or "", float(row["standing_price"] or 0.0))

    previous: dict[str, tuple[str, float]] = {p: ("", 0.0) for p in products_seen}  # before round 1
    for number in sorted(standings_by_round):
        if number >= (rounds[0] if rounds else 0):
            break
        previous.update({r["product"]: state(r) for r in standings_by_round[number]})
    rows = []
    for number in rounds:
        round_bids = bids_by_round.get(number, [])
        any_bid = bool(round_bids)
        round_standings = standings_by_round[number]
        if changes_only:
            current = {r["product"]: state(r) for r in round_standings}
            round_standings = [r for r in round_standings if previous.get(r["product"]) != current[r["product"]]]
            previous.update(current)
        if product_filter is not None:
            # A sealed bundle bid names its products joined by "+".
            round_bids = [b for b in round_bids if product_filter in str(b["product"]).split("+")]
            round_standings = [s for s in round_standings if s["product"] == product_filter]
        if bidder_filter is not None:
            round_standings = [s for s in round_standings if s["standing_bidder"] == bidder_filter]
        after = _standings_text(round_standings) or "-"
        by_bidder: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for bid in round_bids:
            by_bidder[bid["bidder"]].append(bid)
        entries = [
            (bidder, _bid_text(by_bidder[bidder]))
            for bidder in bidders
            if by_bidder.get(bidder) and (bidder_filter is None or bidder == bidder_filter)
        ]
        if not any_bid:
            entries = [("-", "no new bids: the auction closes" if number == last_round else "no new bids")]
        elif not entries:
            entries = [("-", "-")]
        for i, (bidder, text) in enumerate(entries):
            rows.append((number if i == 0 else "", bidder, text, after if i == 0 else ""))
    if changes_only:
        after_header = "changed standings: holder (price $)"
    elif bidder_filter is not None:
        after_header = f"held by {bidder_filter} after the round (price $)"
    else:
        after_header = "after the round: holder (price $)"
    return format_table(["round", "bidder", "new bids ($)", after_header], rows)


# A round table longer than this many lines (a long auction, or many bidders) is not printed by
# `dcmarket run`: one line says how many rounds ran and where to read them
# (docs/getting-started.md#what-each-command-does). `dcmarket log` prints it whole.
ROUND_TABLE_MAX_LINES = 60


def round_table_lines(bids: Sequence[Mapping[str, Any]], standings: Sequence[Mapping[str, Any]]) -> int:
    """How many lines `round_table` prints below its header, unfiltered: one per bidder with new
    bids in a round, and one for a round without any; counted without building the table."""
    bidding: dict[int, set[str]] = defaultdict(set)
    for bid in bids:
        bidding[int(bid["round"])].add(bid["bidder"])
    return sum(max(1, len(bidding.get(number, ()))) for number in {int(row["round"]) for row in standings})


def allocation_table(
    products: Sequence[str], allocation: Mapping[str, str | None], prices: Mapping[str, float]
) -> str:
    rows = [(p, allocation[p] or "(unsold)", money(prices[p])) for p in products]
    return format_table(["product", "winner", "price ($)"], rows, [False, False, True])


def payments_table(bundles: Mapping[str, Sequence[str]], payments: Mapping[str, float], values: Mapping[str, float]) -> str:
    rows = [
        (bidder, ", ".join(bundles[bidder]) or "-", money(values[bidder]), money(payments[bidder]),
         money(values[bidder] - payments[bidder]))
        for bidder in payments
    ]
    headers = ["bidder", "products won", "value ($)", "pays ($)", "surplus ($)"]
    return format_table(headers, rows, [False, False, True, True, True])


def revenue(payments: Mapping[str, float]) -> float:
    """The auction's revenue ($): the sum of the payments."""
    return math.fsum(payments.values())


def _bundle(bundle: Sequence[str]) -> str:
    return "{" + ", ".join(bundle) + "}"


def _yes_no(flag: bool | None) -> str:
    return "yes" if flag else "no"


def equilibrium_text(summary: Mapping[str, Any]) -> str:
    """The verdict in words: what was checked, whether it holds, and what it means."""
    eq = summary["equilibrium"]
    if not eq.get("checked", True):
        return f"Equilibrium: not checked ({eq['reason']})"
    step = eq["increment"]
    allowance = (f"allowing each bidder one increment ({money(step)} $) on every product it does not hold, (8)"
                 if step > 0 else "at exact prices")
    lines = []
    if eq["holds"] is None:
        lines.append(f"Equilibrium at the final prices: not applicable ({eq['checked_what']}).")
    elif eq["holds"]:
        lines.append(f"Equilibrium: holds. Every bidder's bundle maximises its surplus at the final prices "
                     f"({allowance}), and every unsold product is priced 0 ((7a), (7b)).")
    else:
        lines.append(f"Equilibrium: does NOT hold at the final prices ({allowance}):")
        for v in eq["violations"]:
            lines.append(f"  ({v['condition']}) {v['message']}")
        more = eq.get("violation_count", len(eq["violations"])) - len(eq["violations"])
        if more > 0:
            lines.append(f"  ... {more} more (all in summary.json)")
    if step > 0 and eq["holds"] is not None:
        exact = "also holds" if eq["holds_true_valuations"] else "does not hold"
        lines.append(f"Without the increment's allowance (true valuations) it {exact}.")
    if eq.get("walrasian_exists") is None:
        reason = eq.get("skipped") or "not computed"
        lines.append(f"Does any equilibrium exist for these bidders? Not decided: {reason}.")
    elif eq["walrasian_exists"]:
        lines.append("Does any equilibrium exist for these bidders? Yes: the LP relaxation of winner "
                     "determination has an integral optimum, so some prices support the best allocation.")
    else:
        lines.append(f"Does any equilibrium exist for these bidders? No: no item prices support any allocation "
                     f"(the LP relaxation exceeds the best allocation by {money(eq['lp_gap'])} $); complements "
                     "or budgets break gross substitutes.")
    if "maximisers" in eq and eq["holds"] is not None:
        lines.append("Surplus-maximising bundles under (8):")
        for bidder, bundles in eq["maximisers"].items():
            lines.append(f"  {bidder}: " + ", ".join(_bundle(b) for b in bundles))
    elif eq.get("tables_skipped"):
        lines.append(f"(Bundle tables skipped: {eq['tables_skipped']}.)")
    welfare = f"Welfare {money(summary['welfare'])} $"
    if summary.get("efficient_welfare") is None:
        lines.append(f"{welfare}; the best possible was not computed ({eq.get('skipped')}).")
    elif step > 0:
        bound = "within" if eq["efficiency_bound_holds"] else "OUTSIDE"
        lines.append(
            f"{welfare} against the best possible {money(summary['efficient_welfare'])} $ (gap "
            f"{money(eq['efficiency_gap'])} $; {bound} the {money(eq['efficiency_bound'])} $ that increments "
            "can cost, (9))"
        )
    else:
        lines.append(f"{welfare} against the best possible {money(summary['efficient_welfare'])} $ "
                     f"(gap {money(eq['efficiency_gap'])} $)")
    lines.append(f"Revenue {money(revenue(summary['payments']))} $ (the sum of the payments)")
    return "\n".join(lines)
