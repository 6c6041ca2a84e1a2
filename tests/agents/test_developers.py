"""Developers over time (docs/models/interconnection.md#ic-developers): their draws and their hazard."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from agents.developers import ArrivalSettings, Developer, WithdrawalSettings, draw_developers, withdrawal_hazard
from mechanisms.interconnection.requests import Request


def test_the_hazard_by_hand():
    settings = WithdrawalSettings(serious_hazard=0.02, speculative_hazard=0.2, growth_per_cycle=0.5)
    serious = Developer(Request("s", 1, 10.0, 1.0, 0), speculative=False)
    speculative = Developer(Request("p", 1, 10.0, 1.0, 0), speculative=True, deposit_tolerance_usd_per_mw=5.0)
    assert withdrawal_hazard(serious, 4, settings) == pytest.approx(0.02 * (1 + 0.5 * 4))
    assert withdrawal_hazard(speculative, 2, settings) == pytest.approx(0.2 * 2.0)
    assert withdrawal_hazard(speculative, 100, settings) == 1.0
    assert serious.enters(1e9) and speculative.enters(5.0) and not speculative.enters(5.01)


def test_draws_follow_their_laws():
    settings = ArrivalSettings(rate_per_cycle=20.0, mw=[10.0, 1000.0], value_usd_per_mw=[1.0, 3.0],
                               speculative_share=0.3, deposit_tolerance_usd_per_mw=100.0)
    cycles = 500
    drawn = draw_developers(settings, cycles, [4, 9], np.random.default_rng(5))
    n = len(drawn)
    # Poisson: 10,000 expected, standard deviation 100.
    assert abs(n - 20.0 * cycles) < 4 * math.sqrt(20.0 * cycles)
    speculative = np.array([d.speculative for d in drawn])
    assert abs(speculative.mean() - 0.3) < 4 * math.sqrt(0.3 * 0.7 / n)
    # Log-uniform sizes: log10 of MW uniform on [1, 3], mean 2, sd 2/sqrt(12).
    logs = np.log10([d.request.mw for d in drawn])
    assert logs.min() >= 1.0 and logs.max() <= 3.0 and abs(logs.mean() - 2.0) < 4 * (2 / math.sqrt(12)) / math.sqrt(n)
    assert {d.request.bus for d in drawn} == {4, 9}
    assert all(d.request.readiness < 0.5 <= e.request.readiness for d in drawn if d.speculative
               for e in drawn[:50] if not e.speculative)
    assert all(math.isinf(d.deposit_tolerance_usd_per_mw) for d in drawn if not d.speculative)
    builds = [d.build_cycles for d in drawn if not d.speculative]
    assert set(builds) == set(range(2, 9)) and all(d.build_cycles is None for d in drawn if d.speculative)
    arrivals = [d.request.arrival for d in drawn]
    assert arrivals == sorted(arrivals) and [d.request.id for d in drawn[:3]] == ["d1", "d2", "d3"]


def test_the_same_seed_draws_the_same_developers():
    settings = ArrivalSettings(rate_per_cycle=3.0)
    first = draw_developers(settings, 40, [1, 2, 3], np.random.default_rng(11))
    assert first == draw_developers(settings, 40, [1, 2, 3], np.random.default_rng(11))
    assert first != draw_developers(settings, 40, [1, 2, 3], np.random.default_rng(12))


@pytest.mark.parametrize("fields, message", [
    ({"mw": [300.0, 20.0]}, "mw: need 0 < low <= high"),
    ({"value_usd_per_mw": [0.0, 1.0]}, "value_usd_per_mw: need 0 < low"),
    ({"speculative_share": 1.5}, "speculative_share"),
    ({"build_cycles": [5, 2]}, "build_cycles: need 0 <= low <= high"),
    ({"rate_per_cycles": 3.0}, "unknown field 'rate_per_cycles'; did you mean 'rate_per_cycle'"),
])
def test_bad_arrival_settings(fields, message):
    with pytest.raises(ValidationError, match=message):
        ArrivalSettings(**fields)
