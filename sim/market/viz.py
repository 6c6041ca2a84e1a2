"""The auction's part of `dcmarket view` (the page: sim/view.py): the standings after the current
round (product, standing bidder, price) and what each bidder holds, as the Mesa model plays it,
one round of the mechanism per step of Mesa's controls (Step, Play, Reset)."""

from __future__ import annotations

import html
from typing import Any

import solara
from mesa.visualization.utils import update_counter

from sim.market.model import MarketModel


def standings(model: MarketModel) -> list[tuple[str, str, float]]:
    """(product, standing bidder or "", price in $) after the model's last round."""
    if model.last_round is None:
        return [(p, "", 0.0) for p in model.mechanism.products]
    last = model.last_round.standings
    return [(p, last[p].bidder if last[p] else "", float(last[p].price) if last[p] else 0.0)
            for p in model.mechanism.products]


def html_table(headers: list[str], rows: list[tuple[Any, ...]]) -> str:
    # Plain HTML rather than Markdown: Solara's Markdown loads KaTeX, which the offline assets lack.
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table border='1' cellpadding='4'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@solara.component
def Standings(model: MarketModel) -> None:
    update_counter.get()  # re-render after every step
    rounds = model.mechanism.rounds_run
    state = "the auction has closed" if not model.running else "the auction is open"
    now = standings(model)
    rows = [(p, b or "-", f"{price:,.2f}") for p, b, price in now]
    held: dict[str, list[str]] = {}
    for product, bidder, _ in now:
        if bidder:
            held.setdefault(bidder, []).append(product)
    holdings = [(b, ", ".join(held.get(b, [])) or "-") for b in (a.name for a in model.bidders)]
    solara.HTML(tag="div", unsafe_innerHTML=(
        f"<h2>Round {rounds}: {html.escape(state)}</h2>"
        + html_table(["product", "standing bidder", "price ($)"], rows)
        + "<h3>Holdings</h3>" + html_table(["bidder", "stands on"], holdings)))
