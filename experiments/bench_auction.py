"""Speed of the SAA engine with straightforward bidders, without Mesa.

Random seeded bidders (values on a 5 $ grid, 0-100 $ per product or per marginal product,
increment 1 $, alternating tie-break, 'paper' bundle ties) bid on m products until the auction
closes. Profiles: `additive` (Condition 1), `concave` (symmetric concave, Condition 2) and
`mixed` (alternating additive and concave bidders). For every m x n the table reports rounds,
bids, seconds and seconds per round, split into the bidders' demand queries and the engine
(state + run_round), and compares the cost per round with m * n.

    .venv/bin/python experiments/bench_auction.py [--quick] [--out experiments/out]

Prints a table and writes bench_auction.csv (one row per profile x m x n).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from agents.bundle_ties import bundle_tie_policy
from agents.strategies import Participant, StraightforwardBidding, respond_all
from agents.profiles import build_profile
from agents.valuations import ValuationProfile
from mechanisms.loop import run_to_close
from mechanisms.saa import AuctionRules, SimultaneousAscendingAuction
from sim.outputs import write_table_csv

HERE = Path(__file__).resolve().parent
GRID_USD = 5        # values are multiples of this
TOP_STEPS = 20      # ... from 0 to TOP_STEPS * GRID_USD = 100 $
INCREMENT_USD = 1.0
PROFILES = ("additive", "concave", "mixed")

CSV_FIELDS = [
    "profile", "products", "bidders", "rounds", "rounds_with_bids", "closed_by", "bids",
    "bids_per_round", "seconds", "bidder_seconds", "engine_seconds", "seconds_per_round",
    "us_per_product_bidder_round", "ratio_mn", "ratio_seconds_per_round", "ratio_unit_cost",
    "sold", "revenue_usd",
]


def progress(message: str, end: str = "\n") -> None:
    print(message, end=end, file=sys.stderr, flush=True)


def make_bidders(
    profile: str, products: Sequence[str], n: int, rng: np.random.Generator
) -> list[tuple[str, ValuationProfile]]:
    """n bidders with random valuations on the 5 $ grid, built through the validated builders."""
    bidders = []
    for i in range(n):
        kind = profile if profile != "mixed" else ("additive" if i % 2 == 0 else "concave")
        steps = rng.integers(0, TOP_STEPS + 1, size=len(products))
        if kind == "additive":
            params = {"values": {p: float(GRID_USD * s) for p, s in zip(products, steps)}}
            valuation = build_profile("additive", params, products)
        else:
            # Non-increasing marginal values on the grid make f concave; f(k) stays on the grid.
            marginals = np.sort(steps)[::-1] * GRID_USD
            params = {"by_size": [float(v) for v in np.cumsum(marginals)]}
            valuation = build_profile("symmetric_concave", params, products)
        bidders.append((f"B{i + 1}", valuation))
    return bidders


def run_auction(
    products: Sequence[str], bidders: Sequence[tuple[str, ValuationProfile]], rules: AuctionRules, label: str
) -> dict[str, Any]:
    """The market loop (mechanisms/loop.py), with the bidders' answers and the engine timed apart."""
    auction = SimultaneousAscendingAuction(products, [name for name, _ in bidders], rules)
    policy = bundle_tie_policy("paper")
    respond = respond_all([Participant(name, valuation, StraightforwardBidding(), policy) for name, valuation in bidders])
    clock = {"bidders": 0.0, "bids": 0, "last_report": time.perf_counter()}
    start = time.perf_counter()

    def timed(state: Any) -> list[Any]:
        t0 = time.perf_counter()
        bids = list(respond(state))
        clock["bidders"] += time.perf_counter() - t0
        return bids

    def on_round(result: Any) -> None:
        clock["bids"] += len(result.bids)
        now = time.perf_counter()
        if now - clock["last_report"] > 1.0:
            progress(f"\r{label}: round {result.round}, {clock['bids']} bids, {now - start:.1f} s", end="")
            clock["last_report"] = now

    outcome = run_to_close(auction, timed, on_round)
    seconds = time.perf_counter() - start
    bidder_s, bids_total = clock["bidders"], clock["bids"]
    engine_s = seconds - bidder_s
    return {
        "rounds": outcome.rounds_run,
        "rounds_with_bids": outcome.rounds_with_bids,
        "closed_by": outcome.closed_by,
        "bids": bids_total,
        "seconds": seconds,
        "bidder_seconds": bidder_s,
        "engine_seconds": engine_s,
        "sold": sum(1 for w in outcome.allocation.values() if w is not None),
        "revenue_usd": sum(outcome.prices.values()),
    }


def write_csv(rows: list[dict[str, Any]], target: Path) -> None:
    write_table_csv(target, CSV_FIELDS, [{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows])


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"\nSAA with straightforward bidders (no Mesa): values on a {GRID_USD} $ grid up to "
          f"{GRID_USD * TOP_STEPS} $, increment {INCREMENT_USD:g} $")
    header = (f"{'profile':>8} {'m':>4} {'n':>3} {'rounds':>6} {'bids':>8} {'bids/rnd':>8} {'time s':>8} "
              f"{'bidders s':>9} {'engine s':>8} {'ms/round':>8} {'us/(m n rnd)':>12} {'m*n ratio':>9} "
              f"{'s/rnd ratio':>11} {'unit ratio':>10}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['profile']:>8} {r['products']:>4} {r['bidders']:>3} {r['rounds']:>6} {r['bids']:>8} "
            f"{r['bids_per_round']:>8.1f} {r['seconds']:>8.3f} {r['bidder_seconds']:>9.3f} "
            f"{r['engine_seconds']:>8.3f} {1e3 * r['seconds_per_round']:>8.3f} "
            f"{r['us_per_product_bidder_round']:>12.3f} {r['ratio_mn']:>9.0f} "
            f"{r['ratio_seconds_per_round']:>11.1f} {r['ratio_unit_cost']:>10.2f}"
        )
    print("  rounds include the closing round without bids. Ratios are against the smallest m * n of the "
          "same profile; unit ratio = (s/round ratio) / (m*n ratio), near 1 when the cost per round grows "
          "with m * n.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="m 8 32 128, n 4 16, under a minute")
    parser.add_argument("--products", type=int, nargs="+", default=None,
                        help="product counts m [default: 8 32 128 512]")
    parser.add_argument("--bidders", type=int, nargs="+", default=None,
                        help="bidder counts n [default: 4 16 64]")
    parser.add_argument("--profiles", nargs="+", choices=PROFILES, default=list(PROFILES))
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=HERE / "out", help="folder for bench_auction.csv")
    args = parser.parse_args(argv)
    if args.products is None:
        args.products = [8, 32, 128] if args.quick else [8, 32, 128, 512]
    if args.bidders is None:
        args.bidders = [4, 16] if args.quick else [4, 16, 64]
    if any(v < 1 for v in args.products + args.bidders):
        parser.error("--products and --bidders must be at least 1")

    started = time.perf_counter()
    # Rounds are bounded by the top value / increment; the cap only guards against a bug.
    rules = AuctionRules(increment=INCREMENT_USD, tie_break="alternating", max_rounds=100_000)
    plan = [(p, m, n) for p in args.profiles for m in args.products for n in args.bidders]
    rows: list[dict[str, Any]] = []
    for done, (profile, m, n) in enumerate(plan, start=1):
        label = f"[{done}/{len(plan)}] {profile} m={m} n={n}"
        rng = np.random.default_rng([args.seed, PROFILES.index(profile), m, n])
        products = [f"p{k:04d}" for k in range(m)]
        bidders = make_bidders(profile, products, n, rng)
        gc.collect()
        result = run_auction(products, bidders, rules, label)
        progress(f"\r{label}: {result['rounds']} rounds, {result['bids']} bids, {result['seconds']:.3f} s   ")
        per_round = result["seconds"] / result["rounds"]
        rows.append({
            "profile": profile, "products": m, "bidders": n, **result,
            "bids_per_round": result["bids"] / result["rounds"],
            "seconds_per_round": per_round,
            "us_per_product_bidder_round": 1e6 * per_round / (m * n),
        })

    for profile in args.profiles:
        sel = [r for r in rows if r["profile"] == profile]
        base = min(sel, key=lambda r: (r["products"] * r["bidders"], r["products"]))
        for r in sel:
            r["ratio_mn"] = (r["products"] * r["bidders"]) / (base["products"] * base["bidders"])
            r["ratio_seconds_per_round"] = r["seconds_per_round"] / base["seconds_per_round"]
            r["ratio_unit_cost"] = r["ratio_seconds_per_round"] / r["ratio_mn"]

    target = args.out / "bench_auction.csv"
    write_csv(rows, target)
    print_table(rows)
    unfinished = [r for r in rows if r["closed_by"] != "no_new_bids"]
    if unfinished:
        print(f"  WARNING: {len(unfinished)} auctions hit max_rounds before closing")
    print(f"\nWrote {target} ({len(rows)} rows) in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
