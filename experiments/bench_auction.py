"""Scale of the auction through the Mesa model: an SAA with 1,000 products and 200 bidders, then
its equilibrium certified.

Products are firm and flexible capacity at m/2 buses (10 MW firm, 5 MW flexible at risk 5 %);
bidders are a seeded gross-substitutes population (agents/populations.py: "up to k sites",
per-MW values by location with a risk discount, additive per-MW values), each interested in
one to three buses, bidding straightforwardly; increment 1 $. Each size runs in one process
through `MarketModel` (the same code as `dcmarket run`), then `MarketModel.judge` certifies the
outcome: the demand-oracle check of (7a)/(7b) under (8) and winner determination (LP and MILP)
for existence and the best welfare.

    .venv/bin/python experiments/bench_auction.py [--sizes 1000x200 ...] [--quick] [--out experiments/out]

For every size the table reports rounds, seconds (auction, certificates), demand-oracle product
evaluations per second (the bidders' work: each round, each bidder prices the products it values
and holds), peak memory, and whether the certificates hold; ratios against the smallest size
show how the cost grows. Writes bench_auction.csv.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from pathlib import Path
from typing import Any

from sim.config.schema import parse_config
from sim.market.model import MarketModel
from sim.output.files import write_bench_csv

HERE = Path(__file__).resolve().parent
INCREMENT_USD = 1.0
COLUMNS = [
    "products", "bidders", "rounds", "bids", "auction_s", "certify_s", "evaluations", "evaluations_per_s",
    "peak_mb", "prices_form_equilibrium", "walrasian_exists", "welfare_usd", "efficient_usd",
    "efficiency_bound_holds", "ratio_size", "ratio_auction_s",
]


def progress(message: str, end: str = "\n") -> None:
    print(message, end=end, file=sys.stderr, flush=True)


def config_for(products: int, bidders: int, seed: int) -> dict[str, Any]:
    buses = max(1, products // 2)
    items = []
    for bus in range(1, buses + 1):
        items.append({"id": f"firm@{bus}", "bus": bus, "risk": 0.0, "capacity_mw": 10.0})
        items.append({"id": f"flex@{bus}", "bus": bus, "risk": 0.05, "capacity_mw": 5.0})
    return {
        "seed": seed,
        "products": items[:products],
        "auction": {"increment": INCREMENT_USD, "max_rounds": 100_000},
        "population": {"count": bidders, "mix": "gross_substitutes"},
    }


def measure(products: int, bidders: int, seed: int) -> dict[str, Any]:
    config = parse_config(config_for(products, bidders, seed), "bench")
    model = MarketModel(config)
    interest = {b.name: len(b.valuation.interest() or model.products) for b in model.bidders}
    evaluations = 0
    bids = 0
    started = time.perf_counter()
    last = started
    while model.running:
        # Each bidder prices what it values and what it holds (held products are among them).
        evaluations += sum(interest.values())
        model.step()
        bids += len(model.last_round.bids)
        now = time.perf_counter()
        if now - last > 2.0:
            progress(f"\r  {products} x {bidders}: round {model.steps}, {bids} bids, {now - started:.1f} s", end="")
            last = now
    auction_s = time.perf_counter() - started
    started = time.perf_counter()
    judgement = model.judge()
    certify_s = time.perf_counter() - started
    certificate = judgement.certificate
    summary = certificate.as_dict()
    outcome = model.mechanism.outcome()
    return {
        "products": products, "bidders": bidders, "rounds": outcome.rounds_run, "bids": bids,
        "auction_s": auction_s, "certify_s": certify_s, "evaluations": evaluations,
        "evaluations_per_s": evaluations / auction_s if auction_s > 0 else float("nan"),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "prices_form_equilibrium": certificate.prices_form_equilibrium,
        "walrasian_exists": summary["walrasian_exists"],
        "welfare_usd": certificate.welfare, "efficient_usd": summary["efficient_welfare"],
        "efficiency_bound_holds": summary["efficiency_bound_holds"],
    }


def parse_size(text: str) -> tuple[int, int]:
    try:
        m, n = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: write PRODUCTSxBIDDERS, e.g. 1000x200") from None
    if m < 1 or n < 1:
        raise argparse.ArgumentTypeError(f"size {text!r}: products and bidders must be at least 1")
    return m, n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=None,
                        help="PRODUCTSxBIDDERS [default: 100x20 300x60 1000x200]")
    parser.add_argument("--quick", action="store_true", help="sizes 20x4 and 40x8: a few seconds")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=HERE / "out", help="folder for bench_auction.csv")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([(20, 4), (40, 8)] if args.quick else [(100, 20), (300, 60), (1000, 200)])
    started = time.perf_counter()
    rows = []
    for m, n in sizes:
        progress(f"{m} products x {n} bidders ...")
        gc.collect()
        rows.append(measure(m, n, args.seed))
        progress(f"\r  {m} x {n}: {rows[-1]['rounds']} rounds in {rows[-1]['auction_s']:.1f} s, certified in "
                 f"{rows[-1]['certify_s']:.1f} s" + " " * 20)
    base = rows[0]
    for r in rows:
        r["ratio_size"] = (r["products"] * r["bidders"]) / (base["products"] * base["bidders"])
        r["ratio_auction_s"] = r["auction_s"] / base["auction_s"] if base["auction_s"] > 0 else float("nan")
    target = args.out / "bench_auction.csv"
    write_bench_csv(target, COLUMNS, rows)
    print(f"SAA through the Mesa model, gross-substitutes population, straightforward bidding, increment "
          f"{INCREMENT_USD:g} $ (seed {args.seed})\n")
    header = (f"{'products':>8} {'bidders':>7} {'rounds':>6} {'bids':>7} {'auction s':>9} {'certify s':>9} "
              f"{'evals/s':>9} {'peak MB':>7} {'CE (8)':>6} {'CE exists':>9} {'(9) holds':>9} {'size ratio':>10} "
              f"{'time ratio':>10}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['products']:>8} {r['bidders']:>7} {r['rounds']:>6} {r['bids']:>7} {r['auction_s']:>9.2f} "
              f"{r['certify_s']:>9.2f} {r['evaluations_per_s']:>9.3g} {r['peak_mb']:>7.0f} "
              f"{str(r['prices_form_equilibrium']):>6} {str(r['walrasian_exists']):>9} "
              f"{str(r['efficiency_bound_holds']):>9} {r['ratio_size']:>10.0f} {r['ratio_auction_s']:>10.1f}")
    print("\nrounds include the closing round; evals = products priced by the bidders' demand oracles; CE (8) = the "
          "final prices form an equilibrium under (8); CE exists = the LP relaxation of winner determination is "
          "integral; (9) = welfare within increment x products of the best.")
    print(f"\nWrote {target} ({len(rows)} rows) in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
