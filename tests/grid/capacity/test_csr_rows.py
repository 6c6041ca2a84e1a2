"""grid/capacity/csr_rows.py against scipy's own conversion of a dense array: the same data,
column indices and row pointers, index type included, for floats with -0.0 and tiny values,
booleans, empty rows and an empty array."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from grid.capacity.csr_rows import csr_from_dense, interleaved


def _dense(kind: str) -> np.ndarray:
    rng = np.random.default_rng(11)
    values = rng.normal(size=(37, 23)) * 10.0 ** rng.uniform(-12, 3, size=(37, 23))
    values[rng.random(values.shape) < 0.4] = 0.0
    values[3] = 0.0                  # an empty row
    values[5, ::2] = -0.0            # negative zeros are zeros
    if kind == "bool":
        return values >= 0.5
    if kind == "empty":
        return values[:0]
    return values


@pytest.mark.parametrize("kind", ["float", "bool", "empty"])
def test_the_rows_are_scipys(kind):
    dense = _dense(kind)
    mine, theirs = csr_from_dense(dense), sp.csr_matrix(dense)
    assert mine.shape == theirs.shape and mine.dtype == theirs.dtype
    for field in ("data", "indices", "indptr"):
        assert getattr(mine, field).dtype == getattr(theirs, field).dtype, field
        assert np.array_equal(getattr(mine, field), getattr(theirs, field)), field
    assert np.array_equal(mine.toarray(), dense)


def test_interleaved_rows_alternate_upper_and_lower():
    upper = np.arange(6.0).reshape(3, 2)
    lower = -upper - 10
    assert interleaved(upper, lower).tolist() == [[0, 1], [-10, -11], [2, 3], [-12, -13], [4, 5], [-14, -15]]
