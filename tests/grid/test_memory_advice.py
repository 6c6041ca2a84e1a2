"""grid/memory_advice.py: numpy's huge-page advice is off inside the context (and inside the
capacity study), and what it was before comes back after, also on an error."""

from __future__ import annotations

import numpy as np
import pytest

from grid.memory_advice import _advice_switch, without_hugepage_advice


def _advice() -> bool:
    """The current setting, read by setting it and putting it back."""
    switch = _advice_switch()
    now = switch(True)
    switch(now)
    return bool(now)


pytestmark = pytest.mark.skipif(_advice_switch() is None, reason="this numpy has no huge-page switch")


@pytest.mark.parametrize("start", [True, False])
def test_the_advice_is_off_inside_and_as_it_was_after(start):
    switch = _advice_switch()
    before = switch(start)
    try:
        with without_hugepage_advice():
            assert _advice() is False
        assert _advice() is start
        with pytest.raises(RuntimeError):
            with without_hugepage_advice():
                raise RuntimeError("a study that fails")
        assert _advice() is start
    finally:
        switch(before)


def test_the_capacity_study_runs_without_it(monkeypatch):
    import grid.capacity.study as study_module
    from grid.capacity.inputs.candidates import make_candidates
    from grid.load.scenarios import BaseLoadSpread, sample_base_load
    from grid.network.cases import load_case

    seen = []
    solve = study_module._solve_model
    monkeypatch.setattr(study_module, "_solve_model", lambda *a, **k: seen.append(_advice()) or solve(*a, **k))
    network = load_case("ieee14")
    scenarios = sample_base_load(network, BaseLoadSpread(), 50, np.random.default_rng(0))
    candidates = make_candidates(network, {bus.number: 20.0 for bus in network.buses if bus.base_load_mw > 0})
    switch = _advice_switch()
    before = switch(True)
    try:
        study_module.capacity_study(network, scenarios, candidates, [0.1], threads=1)
        assert seen and not any(seen) and _advice() is True
    finally:
        switch(before)
