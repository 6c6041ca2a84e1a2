"""grid/capacity/matrices/csr_rows.py against scipy's own conversion of a dense array: the same data,
column indices and row pointers, index type included, for floats with -0.0 and tiny values,
booleans, empty rows and an empty array."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from grid.capacity.matrices.csr_rows import csr_from_dense, interleaved


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


def _random_rows(rng: np.random.Generator, rows: int, kind: str = "float") -> sp.csr_matrix:
    dense = rng.normal(size=(rows, 23))
    dense[rng.random(dense.shape) < 0.5] = 0.0
    return csr_from_dense(dense >= 0.3 if kind == "bool" else dense)


def _same(mine: sp.csr_matrix, theirs: sp.csr_matrix) -> bool:
    return mine.shape == theirs.shape and mine.dtype == theirs.dtype and all(
        np.array_equal(getattr(mine, f), getattr(theirs, f)) for f in ("data", "indices", "indptr"))


@pytest.mark.parametrize("kind", ["float", "bool"])
def test_extended_rows_are_vstacks_and_earlier_matrices_keep_theirs(kind):
    """Pass after pass, extended() gives what sp.vstack gives; from the second pass on it writes
    into the buffers the last matrix already uses (no copy); a matrix handed out before, or
    extended again later (a branch), keeps its rows and does not touch the newer matrix's."""
    from grid.capacity.matrices.csr_rows import extended

    rng = np.random.default_rng(2)
    start = _random_rows(rng, 30, kind)
    handed, stacked = [start], [start]
    for rows in (7, 0, 12, 40, 3, 25):
        added = _random_rows(rng, rows, kind)
        handed.append(extended(handed[-1], added))
        stacked.append(sp.vstack([stacked[-1], added], format="csr"))
    copies = [m.copy() for m in handed]
    for mine, theirs in zip(handed, stacked):
        assert _same(mine, theirs)
    assert np.shares_memory(handed[2].data, handed[3].data)   # written in place
    branch_rows = _random_rows(rng, 9, kind)
    branch = extended(handed[3], branch_rows)                  # an earlier matrix, extended again
    assert _same(branch, sp.vstack([stacked[3], branch_rows], format="csr"))
    after_branch = extended(handed[-1], _random_rows(rng, 4, kind))
    assert after_branch.shape[0] == handed[-1].shape[0] + 4
    for mine, copy in zip(handed, copies):                     # nothing handed out has moved
        assert _same(mine, copy)


def test_extended_falls_back_to_a_stack_where_it_cannot_write_in_place():
    """Other values' type, or rows that are not canonical: sp.vstack's result, as it is."""
    from grid.capacity.matrices.csr_rows import extended

    rng = np.random.default_rng(3)
    floats, flags = _random_rows(rng, 5), _random_rows(rng, 4, "bool")
    mixed = extended(floats, flags)
    assert _same(mixed, sp.vstack([floats, flags], format="csr"))
    messy = sp.csr_matrix((np.array([1.0, 2.0]), np.array([3, 1]), np.array([0, 2])), shape=(1, 23))
    assert not messy.has_canonical_format
    assert _same(extended(floats, messy), sp.vstack([floats, messy], format="csr"))


def test_entries_where_are_the_rows_of_the_flagged_dense_array():
    """The flags read off the stored values (a touch matrix from the coefficients) are the very
    arrays csr_from_dense gives for the dense comparison, empty rows and index type included."""
    from grid.capacity.matrices.csr_rows import csr_entries_where

    trailing = _dense("float")
    trailing[-3:] = 0.0              # empty rows at the end, after the last stored entry
    for dense in (_dense("float"), _dense("empty"), trailing):
        rows = csr_from_dense(dense)
        assert _same(csr_entries_where(rows, rows.data >= 0.5), csr_from_dense(dense >= 0.5))


def test_stacked_rows_are_concatenations_and_earlier_arrays_keep_theirs():
    """Pass after pass, stacked() gives np.concatenate's rows; from the second pass on it writes
    after the last array in the same buffer; an array handed out before, stacked again (a branch),
    gets a buffer of its own, and nothing handed out changes."""
    from grid.capacity.matrices.csr_rows import stacked

    rng = np.random.default_rng(4)
    handed, joined = [rng.normal(size=(6, 5))], [None]
    joined[0] = handed[0]
    for rows in (3, 0, 8, 20, 2):
        added = rng.normal(size=(rows, 5))
        handed.append(stacked(handed[-1], added))
        joined.append(np.concatenate([joined[-1], added]))
    copies = [array.copy() for array in handed]
    assert all(np.array_equal(mine, theirs) for mine, theirs in zip(handed, joined))
    assert np.shares_memory(handed[2], handed[3])
    branch = stacked(handed[2], np.ones((4, 5)))
    assert not np.shares_memory(branch, handed[3])
    assert np.array_equal(branch, np.concatenate([joined[2], np.ones((4, 5))]))
    stacked(handed[-1], np.zeros((3, 5)))
    assert all(np.array_equal(mine, copy) for mine, copy in zip(handed, copies))
    whole = stacked(np.zeros((2, 3), dtype=np.int64), np.full((1, 3), -1))
    assert whole.dtype == np.int64 and whole.tolist() == [[0, 0, 0], [0, 0, 0], [-1, -1, -1]]


def test_the_positive_part_is_scipys_maximum_with_zeros_dropped():
    """a+ read off the stored values (criteria.positive_part) is scipy's maximum(0) with its
    explicit zeros eliminated, array for array, for canonical rows and for rows that are not."""
    from grid.capacity.inputs.criteria import positive_part

    rows = csr_from_dense(_dense("float"))
    messy = sp.csr_matrix((np.array([1.0, -2.0, 3.0]), np.array([3, 1, 3]), np.array([0, 3])), shape=(1, 23))
    for matrix in (rows, messy):
        theirs = matrix.maximum(0.0).tocsr()
        theirs.eliminate_zeros()
        assert _same(positive_part(matrix), theirs)


def test_room_asked_for_at_once_keeps_every_later_pass_in_the_same_buffer():
    """With at_most, the first buffer already has room for the rows and non-zeros the caller says
    the matrix can reach: every later pass writes in place, and the rows are vstack's."""
    from grid.capacity.matrices.csr_rows import extended, stacked

    rng = np.random.default_rng(5)
    matrix, dense = _random_rows(rng, 10), rng.normal(size=(10, 4))
    whole, joined = matrix, dense
    for rows in (30, 60, 120):
        added = _random_rows(rng, rows)
        grown = extended(matrix, added, (400, 400 * 23))
        more = stacked(dense, rng.normal(size=(rows, 4)), 400)
        if matrix is not whole:
            assert np.shares_memory(grown.data, matrix.data) and np.shares_memory(more, dense)
        whole, joined = sp.vstack([whole, added], format="csr"), np.concatenate([joined, more[-rows:]])
        matrix, dense = grown, more
        assert _same(matrix, whole) and np.array_equal(dense, joined)
