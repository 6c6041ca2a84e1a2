"""The Mesa model of interconnection over time (docs/models/interconnection.md#ic-model): the
hand-checked case through the model's own bookkeeping, withdrawals and deposits, reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.developers import ArrivalSettings, Developer, WithdrawalSettings, draw_developers
from mechanisms.interconnection.registry import regime_spec
from mechanisms.interconnection.requests import Headroom, Request
from sim.dynamics.model import InterconnectionModel

BUS = 7
NEVER = WithdrawalSettings(serious_hazard=0.0, speculative_hazard=0.0, growth_per_cycle=0.0)
A = Developer(Request("A", BUS, 60.0, 10.0, 0, 0.2), speculative=False)
B = Developer(Request("B", BUS, 50.0, 20.0, 0, 0.9), speculative=False)
C = Developer(Request("C", BUS, 30.0, 5.0, 1, 0.5), speculative=False)


def model(kind: str, developers=(A, B, C), withdrawal=NEVER, headroom=(100.0, 150.0), seed=1, **rules):
    spec = regime_spec(kind)
    return InterconnectionModel(list(developers), spec.build(spec.rules(**rules)), {BUS: Headroom(*headroom)},
                                withdrawal, seed=seed)


def outcomes(m: InterconnectionModel) -> dict:
    return {r["request"]: (r["status"], r["decided_at"], round(r["granted_mw"], 9), round(r["payment_usd"], 9))
            for r in m.requests()}


def test_serial_queue_through_the_model_by_hand():
    # As tests/mechanisms/interconnection/test_regimes.py, the headroom now kept by the model: A
    # connects at 1 (60 MW, 120 $), B is refused at 2 (40 MW left), C connects at 3 (60 $).
    m = model("queue", study_cycles=1, studies_at_once=1, tariff_usd_per_mw=2.0)
    for _ in range(4):
        m.step()
    assert outcomes(m) == {"A": ("connected", 1, 60.0, 120.0), "B": ("refused", 2, 0.0, 0.0),
                           "C": ("connected", 3, 30.0, 60.0)}
    table = m.datacollector.get_model_vars_dataframe()
    assert table["connected_mw"].tolist() == [0.0, 60.0, 60.0, 90.0]
    assert table["backlog_mw"].tolist() == [110.0, 80.0, 30.0, 0.0]
    assert table["revenue_usd"].tolist() == [0.0, 120.0, 120.0, 180.0]
    assert m.headroom() == {BUS: Headroom(10.0, 60.0)}


def test_the_auction_through_the_model_by_hand():
    # The auction at cycle 1 sells B and C (VCG: 600 and 0 $). At the next, cycle 5, A bids alone
    # for 60 MW with 20 MW left: it still waits.
    m = model("auction", first_cycle=1, every_cycles=4)
    for _ in range(6):
        m.step()
    assert outcomes(m) == {"A": ("waiting", None, 0.0, 0.0), "B": ("connected", 1, 50.0, 600.0),
                           "C": ("connected", 1, 30.0, 0.0)}


def test_a_deposit_deters_speculation_and_withdrawals_forfeit_it():
    # P is speculative with a tolerance of 5 $/MW: at a deposit of 4 it enters, and with hazard 1
    # withdraws at the first cycle after its arrival, forfeiting 4 x 40 = 160 $; Q (tolerance 3)
    # never enters.
    p = Developer(Request("P", BUS, 40.0, 10.0, 0), speculative=True, deposit_tolerance_usd_per_mw=5.0)
    q = Developer(Request("Q", BUS, 40.0, 10.0, 0), speculative=True, deposit_tolerance_usd_per_mw=3.0)
    leave = WithdrawalSettings(serious_hazard=0.0, speculative_hazard=1.0, growth_per_cycle=0.0)
    m = model("queue", developers=(p, q), withdrawal=leave, deposit_usd_per_mw=4.0, study_cycles=3)
    for _ in range(2):
        m.step()
    assert outcomes(m) == {"P": ("withdrawn", 1, 0.0, 0.0), "Q": ("deterred", 0, 0.0, 0.0)}
    assert m.datacollector.get_model_vars_dataframe()["deposits_forfeited_usd"].tolist() == [0.0, 160.0]


def test_withdrawals_follow_the_hazard():
    # Nothing can connect (no headroom, studies longer than the run): after one cycle each
    # speculative developer has withdrawn with probability 0.2 (binomial, 4 sd).
    developers = [Developer(Request(f"s{k}", BUS, 10.0, 1.0, 0), speculative=True) for k in range(4000)]
    withdrawal = WithdrawalSettings(serious_hazard=0.0, speculative_hazard=0.2, growth_per_cycle=0.0)
    m = model("queue", developers=developers, withdrawal=withdrawal, headroom=(0.0, 0.0), study_cycles=100)
    m.step()
    m.step()
    share = m.count("withdrawn") / 4000
    assert abs(share - 0.2) < 4 * math.sqrt(0.2 * 0.8 / 4000)


def test_the_same_seed_gives_the_same_history():
    drawn = draw_developers(ArrivalSettings(rate_per_cycle=4.0, mw=[5.0, 60.0]), 12, [BUS],
                            np.random.default_rng(3))
    withdrawal = WithdrawalSettings(serious_hazard=0.05, speculative_hazard=0.3)

    def history(seed):
        m = model("batch", developers=drawn, withdrawal=withdrawal, seed=seed, every_cycles=4, study_cycles=2,
                  threshold_mw=30.0)
        for _ in range(12):
            m.step()
        return m.datacollector.get_model_vars_dataframe(), m.requests()

    first, again, other = history(9), history(9), history(10)
    assert first[0].equals(again[0]) and first[1] == again[1]
    assert first[1] != other[1]  # the withdrawal draws depend on the seed
    rows = first[1]
    assert sum(r["granted_mw"] for r in rows) == pytest.approx(first[0]["connected_mw"].iloc[-1])
    assert sum(r["granted_mw"] for r in rows) <= 150.0 + 1e-9


def test_use_it_or_lose_it_by_hand():
    # S (speculative: never builds) bids 80 MW x 30 $/MW, T 60 MW x 10 $/MW, on 100 MW: only one
    # fits, S wins the auction at cycle 0 and pays T's 600 $ (VCG). With k = 2, S has not used its
    # capacity at cycle 2: it is revoked, unrefunded, and sold at that cycle's auction to T, alone
    # (0 $). Without the rule S holds 80 MW unused and T waits for ever.
    s = Developer(Request("S", BUS, 80.0, 30.0, 0), speculative=True, build_cycles=None)
    t = Developer(Request("T", BUS, 60.0, 10.0, 0), speculative=False, build_cycles=1)
    m = model("auction", developers=(s, t), every_cycles=2, use_it_or_lose_it_cycles=2)
    for _ in range(4):
        m.step()
    rows = {r["request"]: r for r in m.requests()}
    assert (rows["S"]["status"], rows["S"]["decided_at"], rows["S"]["revoked_at"], rows["S"]["payment_usd"]) \
        == ("revoked", 0, 2, 600.0)
    assert (rows["T"]["status"], rows["T"]["decided_at"], rows["T"]["payment_usd"], rows["T"]["in_use"]) \
        == ("connected", 2, 0.0, True)
    history = m.datacollector.get_model_vars_dataframe()
    assert history["unused_mw"].tolist() == [80.0, 80.0, 60.0, 0.0]  # T builds one cycle after its award
    assert history["revenue_usd"].iloc[-1] == 600.0
    kept = model("auction", developers=(s, t), every_cycles=2)
    for _ in range(4):
        kept.step()
    assert {r["request"]: r["status"] for r in kept.requests()} == {"S": "connected", "T": "waiting"}
