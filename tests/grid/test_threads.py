"""BLAS threads beside our own threads (grid/threads.py)."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_info

import grid.threads as threads
from grid.capacity.inputs.candidates import make_candidates
from grid.load.scenarios import BaseLoadSpread, sample_base_load
from grid.network.cases import load_case


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_the_cores_left_beside_our_threads_and_never_none(monkeypatch):
    for cores, busy, expected in ((2, 1, 1), (16, 1, 15), (1, 1, 1), (4, 0, 4), (2, 5, 1)):
        monkeypatch.setattr(threads, "usable_cores", lambda cores=cores: cores)
        assert threads.blas_threads_beside(busy) == expected


def test_the_capacity_study_limits_blas_around_itself_and_its_lu_solves(monkeypatch):
    import grid.capacity.study as study

    calls: list[int] = []
    limit = threads.limit_blas

    def recorded(count):
        calls.append(count)
        return limit(count)

    monkeypatch.setattr(threads, "usable_cores", lambda: 3)
    monkeypatch.setattr(threads, "limit_blas", recorded)
    network = load_case("ieee30")  # meshed: its shift factors come from LU solves
    scenarios = sample_base_load(network, BaseLoadSpread(), 200, np.random.default_rng(1))
    before = _blas_threads()
    study.capacity_study(network, scenarios, make_candidates(network, {7: 50.0}), [0.05])
    assert _blas_threads() == before  # the caller's setting comes back
    assert calls[0] == 2  # the study: three cores, one for its LP thread
    assert calls[1:] and set(calls[1:]) == {1}  # every LU solve inside it
