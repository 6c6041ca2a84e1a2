"""The shift-factor memory guard of the capacity study (grid/memory_guard.py)."""

from __future__ import annotations

import numpy as np
import pytest

from grid.capacity.inputs.candidates import make_candidates
from grid.capacity.study import capacity_study
from grid.errors import GridError
from grid.load.scenarios import BaseLoadSpread, sample_base_load
from grid.memory_guard import (
    SHIFT_FACTOR_BYTES,
    check_shift_factor_memory,
    shift_factor_memory_bytes,
)
from grid.network.cases import load_case


def test_the_estimate_is_32_bytes_per_line_and_bus_and_per_line_and_candidate_twice():
    # IEEE 118 by hand: 186 lines x (118 buses + 2 x 10 candidates) x 32 bytes.
    assert shift_factor_memory_bytes(186, 118, 10) == 32 * 186 * 138 == 821_376
    assert SHIFT_FACTOR_BYTES * 12_706 * (10_000 + 2 * 4_170) > 7.0e9  # the measured 10k peak is covered


def test_a_study_that_fits_passes_and_one_that_does_not_names_what_fits():
    network = load_case("ieee118")
    lines, buses = len(network.lines), len(network.buses)
    need = shift_factor_memory_bytes(lines, buses, 50)
    assert check_shift_factor_memory(network, 50, available_bytes=need * 2) == need
    # 60 % of the memory holds H and exactly 20 candidates' rows: 20 is what the message offers.
    available = int((lines * buses + 2 * lines * 20) * SHIFT_FACTOR_BYTES / 0.6) + 100
    with pytest.raises(GridError) as refused:
        check_shift_factor_memory(network, 50, available_bytes=available)
    message = str(refused.value)
    assert "'ieee118'" in message and f"{lines:,} lines x ({buses:,} buses + 2 x 50 candidate buses)" in message
    assert "name at most 20 candidate buses ([network] candidate_buses)" in message
    with pytest.raises(GridError, match=r"do not fit, whatever the candidates; use a smaller case"):
        check_shift_factor_memory(network, 50, available_bytes=lines * buses * SHIFT_FACTOR_BYTES)


def test_the_study_refuses_before_its_first_shift_factor(monkeypatch):
    import grid.capacity.study as study
    import grid.memory_guard as guard

    network = load_case("ieee14")
    scenarios = sample_base_load(network, BaseLoadSpread(), 200, np.random.default_rng(1))
    candidates = make_candidates(network, {9: 50.0, 14: 50.0})
    monkeypatch.setattr(guard, "_available_memory_bytes", lambda: 1000)
    monkeypatch.setattr(study, "flow_model", lambda _: pytest.fail("shift factors built after all"))
    with pytest.raises(GridError, match=r"'ieee14': 20 lines x \(14 buses \+ 2 x 2 candidate buses\)"):
        capacity_study(network, scenarios, candidates, [0.05])
