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


def _first_by_hand(a: sp.csr_matrix, rows: np.ndarray, rooms: np.ndarray) -> list[int]:
    """The positions in ``rows`` of every row whose room / a (over a > 0) is some column's least."""
    dense = a.toarray()[rows]
    expected = set()
    for k in range(dense.shape[1]):
        ratios = [(rooms[rows[i]] / dense[i, k], i) for i in range(rows.size) if dense[i, k] > 0]
        if ratios:
            least = min(r for r, _ in ratios)
            expected |= {i for r, i in ratios if r <= least}
    return sorted(expected)


@pytest.mark.parametrize("entries", [4_000_000, 5, 1])
@pytest.mark.parametrize("density", [0.1, 0.8])
def test_the_first_rows_set_each_columns_stand_alone_bound_in_any_chunking(monkeypatch, entries, density):
    """The rows written at first (grid/capacity/rows/standalone.py FirstRows): per column, every
    row whose room / a (over a > 0) is the column's least, against a dense loop written here; at
    density 0.8 the chunks are worked dense (standalone.DENSE_SHARE)."""
    rng = np.random.default_rng(3)
    a = sp.random(120, 40, density=density, random_state=2, format="csr")
    a.data = np.round(rng.normal(0.2, 0.4, a.nnz), 1)            # ties, and entries <= 0 that do not count
    rooms = np.round(rng.uniform(0.0, 50.0, 120), 0)
    rows = np.flatnonzero(rng.random(120) < 0.8)
    monkeypatch.setattr(standalone, "_ENTRIES", entries)   # the chunks of grid/capacity/rows/standalone.py row_chunks
    assert list(standalone.FirstRows().find(a, rows, rooms)) == _first_by_hand(a, rows, rooms)


@pytest.mark.parametrize("density", [0.1, 0.8])
def test_the_first_rows_of_a_growing_table_read_only_its_new_rows(monkeypatch, density):
    """FirstRows kept across calls whose rows grow at their end (an N-1 pass's table) gives, at
    every call, the rows found by hand over all of them, ties across old and new rows included;
    it reads only the new rows; rooms or rows that differ in front make it read every row again."""
    rng = np.random.default_rng(5)
    a = sp.random(150, 30, density=density, random_state=4, format="csr")
    a.data = np.round(rng.normal(0.2, 0.4, a.nnz), 1)
    rooms = np.round(rng.uniform(0.0, 30.0, 150), 0)
    read = []
    real_ratios = standalone._ratios
    monkeypatch.setattr(standalone, "_ratios", lambda m, rows, r: read.append(rows.size) or real_ratios(m, rows, r))
    first = standalone.FirstRows()
    for stop in (40, 41, 90, 150):
        rows = np.arange(stop)
        read.clear()
        assert list(first.find(a, rows, rooms)) == _first_by_hand(a, rows, rooms)
        assert set(read) == {stop - {40: 0, 41: 40, 90: 41, 150: 90}[stop]}   # the new rows, kept or read twice
    monkeypatch.setattr(standalone, "_KEPT_RATIOS", 0)   # made again for the second pass: the same rows
    read.clear()
    again = standalone.FirstRows()
    assert list(again.find(a, np.arange(150), rooms)) == _first_by_hand(a, np.arange(150), rooms)
    assert read == [150, 150]
    changed = rooms.copy()
    changed[3] += 1.0
    read.clear()
    assert list(first.find(a, np.arange(150), changed)) == _first_by_hand(a, np.arange(150), changed)
    assert set(read) == {150}
    read.clear()
    rows = np.arange(1, 150)
    assert list(first.find(a, rows, changed)) == _first_by_hand(a, rows, changed)
    assert set(read) == {149}
