"""Allocation regimes over time (docs/models/interconnection.md) on the hand-checked case: three
developers at one bus, every connection time, MW and payment worked out by hand below."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from mechanisms.errors import MechanismError
from mechanisms.interconnection.registry import REGIMES, regime_spec
from mechanisms.interconnection.requests import Headroom, Ledger, Request

BUS = 7
TARIFF = 2.0  # $/MW
A = Request("A", BUS, 60.0, 10.0, arrival=0, readiness=0.2)
B = Request("B", BUS, 50.0, 20.0, arrival=0, readiness=0.9)
C = Request("C", BUS, 30.0, 5.0, arrival=1, readiness=0.5)


def run(kind: str, cycles: int, **rules) -> tuple[dict, dict]:
    """Step a regime through ``cycles`` cycles as the simulation would: the pending requests are
    those arrived and not yet decided, and each connection takes its MW off the bus's headroom
    (firm 100 MW, flexible 150 MW at the start). Returns request -> (cycle, MW, flexible, $) for the
    connected and request -> cycle for the refused."""
    spec = regime_spec(kind)
    regime = spec.build(spec.rules(**rules))
    firm, flexible = 100.0, 150.0
    connected: dict[str, tuple] = {}
    refused: dict[str, int] = {}
    for cycle in range(cycles):
        pending = [r for r in (A, B, C) if r.arrival <= cycle and r.id not in connected and r.id not in refused]
        result = regime.step(cycle, pending, {BUS: Headroom(firm, flexible)})
        for c in result.connections:
            connected[c.request] = (c.cycle, pytest.approx(c.mw), c.flexible, pytest.approx(c.payment_usd))
            flexible -= c.mw
            firm = min(firm - (0.0 if c.flexible else c.mw), flexible)
        refused.update({r.request: r.cycle for r in result.refusals})
        assert set(result.kept) == {r.id for r in pending} - set(connected) - set(refused)
    return connected, refused


def test_serial_queue_by_hand():
    # Cycle 0: A's study starts (one at a time). Cycle 1: A's study ends, 60 <= 100: A connects,
    # pays 2 x 60; B's study starts. Cycle 2: B's ends, 50 > 40 left: refused; C's starts.
    # Cycle 3: C's ends, 30 <= 40: C connects, pays 60.
    connected, refused = run("queue", 4, study_cycles=1, studies_at_once=1, tariff_usd_per_mw=TARIFF)
    assert connected == {"A": (1, 60.0, False, 120.0), "C": (3, 30.0, False, 60.0)}
    assert refused == {"B": 2}


def test_cluster_queue_by_hand():
    # Every study at once: A and B both end at cycle 1; A first in the queue takes 60, B finds 40.
    # C (arrived at 1) is studied at 1 and connects at 2.
    connected, refused = run("queue", 3, study_cycles=1, studies_at_once=0, tariff_usd_per_mw=TARIFF)
    assert connected == {"A": (1, 60.0, False, 120.0), "C": (2, 30.0, False, 60.0)}
    assert refused == {"B": 1}


def test_a_longer_study_delays_every_connection():
    connected, refused = run("queue", 5, study_cycles=2, studies_at_once=0)
    assert connected == {"A": (2, 60.0, False, 0.0), "C": (3, 30.0, False, 0.0)} and refused == {"B": 2}


def test_batch_pro_rata_by_hand():
    # A and B (at least 40 MW) join the batch of cycle 0, studied for one cycle. At cycle 1 they
    # share 100 MW pro rata: 100 / 110 of each request. C (30 MW, under the threshold) skips the
    # batch but finds no firm headroom left, and waits (cycles 1 and 2).
    connected, refused = run("batch", 3, first_cycle=0, every_cycles=2, study_cycles=1, threshold_mw=40.0,
                             allocation="pro_rata", tariff_usd_per_mw=TARIFF)
    share = 100.0 / 110.0
    assert connected == {"A": (1, 60.0 * share, False, 120.0 * share), "B": (1, 50.0 * share, False, 100.0 * share)}
    assert refused == {}


def test_batch_by_readiness_by_hand():
    # B (readiness 0.9) first: 50 of 100 MW; A (0.2) needs 60 > 50: refused. C connects in the
    # same cycle on the 50 MW left.
    connected, refused = run("batch", 2, study_cycles=1, threshold_mw=40.0, allocation="readiness",
                             tariff_usd_per_mw=TARIFF)
    assert connected == {"B": (1, 50.0, False, 100.0), "C": (1, 30.0, False, 60.0)}
    assert refused == {"A": 1}


def test_batch_on_flexible_headroom_by_hand():
    # Curtailable: A and B fit in the 150 MW of flexible headroom whole. Firm room is then
    # min(100, 150 - 110) = 40, which still holds C's 30 MW.
    connected, refused = run("batch", 2, study_cycles=1, threshold_mw=40.0, flexible_above_threshold=True)
    assert connected == {"A": (1, 60.0, True, 0.0), "B": (1, 50.0, True, 0.0), "C": (1, 30.0, False, 0.0)}
    assert refused == {}


def test_a_large_request_after_the_only_batch_is_refused():
    connected, refused = run("batch", 3, first_cycle=0, study_cycles=1, threshold_mw=25.0)
    assert refused == {"C": 1} and set(connected) == {"A", "B"}


def test_a_withdrawn_request_frees_its_study_slot():
    regime = regime_spec("queue").build(REGIMES["queue"].rules(study_cycles=2, studies_at_once=1))
    room = {BUS: Headroom(100.0, 100.0)}
    regime.step(0, [A, B], room)          # A studied from 0
    regime.step(1, [B], room)             # A withdrew: B's study starts at 1
    assert regime.step(2, [B], room).connections == ()
    assert [c.request for c in regime.step(3, [B], room).connections] == ["B"]


def test_the_ledger_keeps_firm_below_flexible():
    ledger = Ledger({BUS: Headroom(100.0, 150.0)})
    ledger.take(BUS, 120.0, True)
    assert ledger.room(BUS, True) == 30.0 and ledger.room(BUS, False) == 30.0
    ledger.take(BUS, 30.0, False)
    assert ledger.room(BUS, True) == 0.0 == ledger.room(BUS, False)


@pytest.mark.parametrize("kind, rules, message", [
    ("batch", {"every_cycles": 1, "study_cycles": 2}, "every_cycles: 1 is shorter than a study"),
    ("batch", {"allocation": "lottery"}, "allocation: unknown rule 'lottery'"),
    ("batch", {"studies_at_once": 1}, "unknown field 'studies_at_once'"),
    ("queue", {"threshold_mw": 75.0}, "unknown field 'threshold_mw'"),
    ("queue", {"study_cycles": 0}, "study_cycles"),
    ("auction", {"payment": "first_price"}, "payment: unknown rule 'first_price'"),
    ("auction", {"study_cycles": 2}, "unknown field 'study_cycles'"),
    ("auction", {"every_cycles": 0}, "every_cycles"),
    ("auction", {"use_it_or_lose_it_cycles": -1}, "use_it_or_lose_it_cycles"),
    ("queue", {"use_it_or_lose_it_cycles": 2}, "unknown field 'use_it_or_lose_it_cycles'"),
])
def test_bad_rules_are_one_line(kind, rules, message):
    with pytest.raises(ValidationError, match=message):
        REGIMES[kind].rules(**rules)


def test_unknown_regime_and_bad_requests():
    with pytest.raises(MechanismError, match="unknown regime 'lottery'; choose one of queue, batch, auction"):
        regime_spec("lottery")
    with pytest.raises(MechanismError, match="mw"):
        Request("X", 1, 0.0, 1.0, 0)
    with pytest.raises(MechanismError, match="readiness"):
        Request("X", 1, 1.0, 1.0, 0, readiness=2.0)
    with pytest.raises(MechanismError, match="headroom"):
        Headroom(10.0, 5.0)


def test_auction_by_hand():
    # One auction at cycle 1 on 100 MW: bids A 60 MW x 10 = 600 $, B 50 x 20 = 1,000 $, C 30 x 5 = 150 $.
    # {A, B} needs 110 MW; the best fitting set is {B, C}, 1,150 $. VCG: B pays the best the others
    # do without it ({A, C}: 750 $) less what they get with it (C: 150 $) = 600 $; C pays
    # 1,000 $ (B alone, without C) - 1,000 $ = 0. A waits for the next auction.
    connected, refused = run("auction", 2, first_cycle=1, every_cycles=4)
    assert connected == {"B": (1, 50.0, False, 600.0), "C": (1, 30.0, False, 0.0)} and refused == {}
    connected, _ = run("auction", 2, first_cycle=1, every_cycles=4, payment="pay_as_bid")
    assert connected == {"B": (1, 50.0, False, 1000.0), "C": (1, 30.0, False, 150.0)}


def test_auction_with_a_reserve_by_hand():
    # Reserve 6 $/MW: C (5 $/MW) cannot win. Net values A (10 - 6) x 60 = 240 $, B 14 x 50 = 700 $;
    # only one fits: B. B pays 6 x 50 + (240 - 0) = 540 $.
    connected, _ = run("auction", 2, first_cycle=1, reserve_usd_per_mw=6.0)
    assert connected == {"B": (1, 50.0, False, 540.0)}


def test_auction_on_flexible_headroom_sells_more():
    # 150 MW curtailable: A and B fit (110 MW), C too (140 MW): nobody's presence costs the others
    # anything, so VCG charges nothing.
    connected, _ = run("auction", 2, first_cycle=1, flexible=True)
    assert connected == {r: (1, mw, True, 0.0) for r, mw in (("A", 60.0), ("B", 50.0), ("C", 30.0))}


def test_no_auction_no_connection():
    regime = regime_spec("auction").build(REGIMES["auction"].rules(first_cycle=2, every_cycles=3))
    assert [c for c in range(10) if regime.is_auction(c)] == [2, 5, 8]
    assert regime.step(1, [A], {BUS: Headroom(100.0, 100.0)}).kept == ("A",)


def _brute_vcg(values, sizes, room):
    """Every subset: the welfare-maximising one (fewest items, then lowest indices, on ties) and each
    winner's Clarke payment."""
    n = len(values)
    best = (-1.0, ())
    for mask in range(1 << n):
        chosen = tuple(k for k in range(n) if mask >> k & 1)
        if sum(sizes[k] for k in chosen) <= room + 1e-9:
            welfare = sum(values[k] for k in chosen)
            if welfare > best[0] + 1e-9:
                best = (welfare, chosen)

    def without(k):
        return max(sum(values[j] for j in range(n) if mask >> j & 1)
                   for mask in range(1 << n) if not mask >> k & 1
                   and sum(sizes[j] for j in range(n) if mask >> j & 1) <= room + 1e-9)

    return best[0], {k: without(k) - (best[0] - values[k]) for k in best[1]}


@pytest.mark.parametrize("seed", range(12))
def test_auction_winners_and_payments_against_enumeration(seed):
    rng = np.random.default_rng(seed)
    count = int(rng.integers(2, 8))
    requests = [Request(f"r{k}", BUS, float(rng.integers(5, 60)), float(rng.uniform(1.0, 30.0)), 0)
                for k in range(count)]
    room = float(rng.integers(20, 150))
    regime = regime_spec("auction").build(REGIMES["auction"].rules())
    result = regime.step(0, requests, {BUS: Headroom(room, room)})
    welfare, payments = _brute_vcg([r.value_usd_per_mw * r.mw for r in requests], [r.mw for r in requests], room)
    won = {c.request: c for c in result.connections}
    assert sum(r.value_usd_per_mw * r.mw for r in requests if r.id in won) == pytest.approx(welfare, rel=1e-9)
    assert sum(c.mw for c in won.values()) <= room + 1e-9
    assert set(won) == {f"r{k}" for k in payments}  # random values: no ties in these markets
    for k, pay in payments.items():
        assert won[f"r{k}"].payment_usd == pytest.approx(pay, rel=1e-9, abs=1e-9)
    for c in won.values():  # individually rational: nobody pays more than it bid
        bid = next(r for r in requests if r.id == c.request)
        assert -1e-9 <= c.payment_usd <= bid.value_usd_per_mw * bid.mw + 1e-9
