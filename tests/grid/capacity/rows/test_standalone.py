"""(C-20) stand-alone capacity (grid/capacity/rows/standalone.py) against a dense loop written here,
sparse and dense, whole and a few rows at a time."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import grid.capacity.rows.standalone as standalone


def _by_hand(a: np.ndarray, rooms: np.ndarray, touch: float) -> tuple[np.ndarray, list[str]]:
    """Per column: 0 if a broken row (room < 0) is touched (a >= touch), else the least room / a over
    rows with a > 0; the first row (lowest number) that sets it."""
    capacity, binding = np.full(a.shape[1], np.inf), [""] * a.shape[1]
    for k in range(a.shape[1]):
        for r in range(a.shape[0]):
            if a[r, k] <= 1e-12 or (rooms[r] < 0 and a[r, k] < touch):
                continue
            value = 0.0 if rooms[r] < 0 else rooms[r] / a[r, k]
            if value < capacity[k]:
                capacity[k], binding[k] = value, str(r)
    return capacity, binding


@pytest.mark.parametrize("form", ["sparse", "dense"])
@pytest.mark.parametrize("entries", [4_000_000, 7, 1, 150])
@pytest.mark.parametrize("density", [0.1, 0.8])
def test_stand_alone_capacity_is_the_least_ratio_per_column_in_any_chunking(monkeypatch, entries, form, density):
    """Sparse chunks at density 0.1 are worked entry by entry, at 0.8 dense (DENSE_SHARE)."""
    rng = np.random.default_rng(0)
    a = sp.random(200, 60, density=density, random_state=1, format="csr")
    a.data = np.round(rng.normal(0.0, 0.5, a.nnz), 2)           # ties and both signs
    rooms = np.maximum(np.round(rng.normal(80.0, 40.0, 200), 0), 5.0)
    rooms[150] = -12.0                                           # one broken row
    monkeypatch.setattr(standalone, "_ENTRIES", entries)
    # Dense: row blocks of 1 (entries 7 or 1) or 2 (150) rows, whole otherwise; ties across blocks.
    found = standalone.standalone_capacity(a if form == "sparse" else a.toarray(), rooms, 0.05, str)
    capacity, binding = _by_hand(a.toarray(), rooms, 0.05)
    np.testing.assert_array_equal(found.capacity_mw, capacity)
    assert list(found.binding) == binding
    assert np.isfinite(capacity).sum() > 40 and (capacity == 0).sum() >= 1 and (capacity > 0).sum() > 20


def test_tighter_by_the_least_ratios_is_tighter_by_the_named_capacities():
    """The N-1 sweep's shortcut (only the limits that lower a capacity are named) against
    Standalone.tighter of the fully named block."""
    rng = np.random.default_rng(3)
    a = np.round(rng.normal(0.0, 0.5, (120, 40)), 2)
    rooms = np.round(rng.normal(80.0, 40.0, 120), 0)
    so_far = standalone.Standalone(np.round(rng.uniform(0.0, 400.0, 40), 0), tuple(f"before {k}" for k in range(40)))
    expected = so_far.tighter(standalone.standalone_capacity(a, rooms, 0.05, str))
    found = so_far.tighter_by(*standalone.least_ratios(a, rooms, 0.05), str)
    np.testing.assert_array_equal(found.capacity_mw, expected.capacity_mw)
    assert found.binding == expected.binding
    assert 0 < sum(b.startswith("before") for b in found.binding) < 40   # some lowered, some kept
