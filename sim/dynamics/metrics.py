"""What a run of a regime achieved (docs/models/interconnection.md#ic-metrics): a cycle's efficiency
benchmark, the capacity it left idle, and the run's summary from the model's tables."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from mechanisms.interconnection.requests import Request


def fractional_value(requests: Sequence[Request], room_mw: float) -> float:
    """The most value ``room_mw`` can serve if requests may be served in part: the knapsack's LP
    relaxation, solved greedily by value per MW (#eq-ic-benchmark). An upper bound on the value of
    any grants within the room, whole or pro rata."""
    left, value = max(0.0, room_mw), 0.0
    for r in sorted(requests, key=lambda r: (-r.value_usd_per_mw, r.arrival, r.id)):
        take = min(left, r.mw)
        value += take * r.value_usd_per_mw
        left -= take
        if left <= 0.0:
            break
    return value


def idle_mw(waiting: Sequence[Request], room_by_bus: Mapping[int, float]) -> float:
    """Headroom left unused at a bus while requests there wait: sum_b min(room_b, MW waiting at b)."""
    wanted: dict[int, float] = {}
    for r in waiting:
        wanted[r.bus] = wanted.get(r.bus, 0.0) + r.mw
    return sum(min(max(0.0, room_by_bus.get(bus, 0.0)), mw) for bus, mw in wanted.items())


def summarize(requests: Sequence[Mapping[str, Any]], history: pd.DataFrame) -> dict[str, Any]:
    """The run's figures: MW connected, time to connect (median and 90th percentile, cycles), how
    many withdrew (speculative or not), were refused, deterred or lost unused capacity (and its MW),
    revenue (revoked winners' payments included), deposits forfeited,
    MW-cycles of headroom idle while wanted, and the mean efficiency of the cycles with something
    to connect."""
    rows = pd.DataFrame(list(requests))
    connected = rows[rows["status"] == "connected"]
    waits = connected["wait_cycles"].to_numpy(dtype=float)
    withdrawn = rows[rows["status"] == "withdrawn"]
    possible = history["value_possible_usd"].to_numpy(dtype=float)
    served = history["value_connected_usd"].to_numpy(dtype=float)
    active = possible > 0
    return {
        "requests": int(len(rows)),
        "connected": int(len(connected)),
        "connected_mw": float(connected["granted_mw"].sum()),
        "median_wait_cycles": float(np.median(waits)) if waits.size else None,
        "p90_wait_cycles": float(np.quantile(waits, 0.9, method="inverted_cdf")) if waits.size else None,
        "withdrawn": int(len(withdrawn)),
        "withdrawn_speculative": int(withdrawn["speculative"].sum()),
        "refused": int((rows["status"] == "refused").sum()),
        "deterred": int((rows["status"] == "deterred").sum()),
        "waiting_at_end": int((rows["status"] == "waiting").sum()),
        "revoked": int((rows["status"] == "revoked").sum()),
        "revoked_mw": float(rows.loc[rows["status"] == "revoked", "granted_mw"].sum()),
        "revenue_usd": float(rows["payment_usd"].sum()),
        "deposits_forfeited_usd": float(history["deposits_forfeited_usd"].iloc[-1]) if len(history) else 0.0,
        "idle_mw_cycles": float(history["idle_mw"].sum()),
        "mean_cycle_efficiency": float(np.mean(served[active] / possible[active])) if active.any() else None,
    }
