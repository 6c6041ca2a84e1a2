"""Sparse rows built from dense blocks.

The capacity study makes its coefficient and touch rows a block of dense shift factors at a time
(each line's upper row, then its lower row). scipy's conversion of a dense array goes through
coordinate form; reading the non-zeros once, row by row, gives the same arrays in about 40 % of
the time, which the N-1 screen pays at every pass for every pair it adds. Each pass then puts its
pairs' rows after the table's: in buffers with room at the end, not by stacking copies of the
whole table.
"""

from __future__ import annotations

import weakref

import numpy as np
import scipy.sparse as sp

_INT32_MAX = np.iinfo(np.int32).max


def csr_from_dense(dense: np.ndarray) -> sp.csr_matrix:
    """The CSR matrix of a 2-D array: the data, column indices and row pointers that
    ``scipy.sparse.csr_matrix(dense)`` holds (non-zeros row by row, columns ascending; -0.0 is a
    zero), with its choice of 32- or 64-bit indices."""
    mask = dense != 0
    counts = mask.sum(axis=1)
    nnz = int(counts.sum())
    index = np.int32 if max(nnz, *dense.shape) <= _INT32_MAX else np.int64
    indptr = np.zeros(dense.shape[0] + 1, dtype=index)
    np.cumsum(counts, out=indptr[1:])
    # The column of each non-zero, read through the mask from one row of column numbers: one
    # array of the index type, where np.nonzero makes two of 64 bits (rows and columns).
    indices = np.broadcast_to(np.arange(dense.shape[1], dtype=index), dense.shape)[mask]
    return sp.csr_matrix((dense[mask], indices, indptr), shape=dense.shape)


def csr_entries_where(matrix: sp.csr_matrix, flagged: np.ndarray, *, values: bool = False) -> sp.csr_matrix:
    """The boolean CSR matrix that is True at the stored entries of ``matrix`` flagged (one flag per
    stored value, in storage order): the arrays ``csr_from_dense`` gives for a dense array that is
    True exactly there, made from the stored entries alone. With ``values``, those entries keep
    their values instead (``matrix`` with every other entry dropped)."""
    # The flags of each row, summed; their running sum is the new row pointers. Sums per row, not
    # a running count per entry: no array as long as the entries is made but the flagged values
    # and columns themselves.
    counts = per_row(np.add, matrix, flagged, np.int64)
    nnz = int(counts.sum())
    index = np.int32 if max(nnz, *matrix.shape) <= _INT32_MAX else np.int64
    indptr = np.zeros(matrix.shape[0] + 1, dtype=index)
    np.cumsum(counts, out=indptr[1:])
    indices = matrix.indices[flagged].astype(index, copy=False)
    data = matrix.data[flagged] if values else np.ones(nnz, dtype=bool)
    return sp.csr_matrix((data, indices, indptr), shape=matrix.shape)


def per_row(ufunc: np.ufunc, matrix: sp.csr_matrix, values: np.ndarray, dtype: type) -> np.ndarray:
    """Per row of canonical CSR rows: ``ufunc`` (add, logical_or) reduced over the ``values`` of
    its stored entries (one per stored value, in storage order); 0 for a row without any."""
    found = np.zeros(matrix.shape[0], dtype=dtype)
    filled = np.flatnonzero(np.diff(matrix.indptr) > 0)
    if filled.size:
        found[filled] = ufunc.reduceat(values, matrix.indptr[:-1][filled], dtype=dtype)
    return found


def interleaved(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Rows [u0, l0, u1, l1, ...] of two arrays of the same shape: each limit's upper row, then
    its lower row, as the limit table orders them."""
    return np.stack([upper, lower], axis=1).reshape(2 * upper.shape[0], *upper.shape[1:])


def extended(matrix: sp.csr_matrix, added: sp.csr_matrix, at_most: tuple[int, int] | None = None) -> sp.csr_matrix:
    """``matrix`` with the rows of ``added`` after its own: the arrays
    ``sp.vstack([matrix, added], format="csr")`` holds. When ``matrix`` is the last one handed
    out from buffers with room, the rows are written after it and nothing is copied (an N-1 pass
    adds a few thousand rows to a table of tens of millions of coefficients); any matrix handed
    out before keeps its rows, since later ones are written past its end. ``at_most`` (rows,
    non-zeros) is what the matrix can grow to, when the caller knows (the N-1 table's ceiling): a
    new buffer then has that room at once, so no later pass copies the table again; memory the
    rows never reach is never touched."""
    store = matrix.__dict__.get(_STORE)
    if not (isinstance(store, _GrowingRows) and store.ends(matrix) and store.takes(added)):
        if not _GrowingRows.can_hold(matrix, added):
            return sp.vstack([matrix, added], format="csr")
        store = _GrowingRows(matrix, added, at_most)
    store.write(added)
    return store.matrix()


def _room(needed: int, at_most: int | None) -> int:
    """What a new buffer holds: half as much again as needed now, or all a caller says the
    array can reach."""
    return max(needed + needed // 2 + 16, at_most or 0)


_STORE = "_dcmarket_growing_rows"  # where a matrix handed out by extended() keeps its buffers


class _GrowingRows:
    """The CSR arrays of a matrix that grows at its end, with room after the last row."""

    def __init__(self, matrix: sp.csr_matrix, added: sp.csr_matrix, at_most: tuple[int, int] | None = None) -> None:
        most_rows, most_nnz = at_most or (None, None)
        room_rows = _room(matrix.shape[0] + added.shape[0], most_rows)
        room_nnz = _room(matrix.nnz + added.nnz, most_nnz)
        index = np.int32 if max(room_nnz, matrix.shape[1]) <= _INT32_MAX else np.int64
        self.cols = matrix.shape[1]
        self.data = np.empty(room_nnz, dtype=matrix.dtype)
        self.indices = np.empty(room_nnz, dtype=index)
        self.indptr = np.zeros(room_rows + 1, dtype=index)
        self.rows, self.nnz = matrix.shape[0], matrix.nnz
        self.data[:self.nnz] = matrix.data[:self.nnz]
        self.indices[:self.nnz] = matrix.indices[:self.nnz]
        self.indptr[:self.rows + 1] = matrix.indptr[:self.rows + 1]
        self._last: weakref.ref | None = None

    @staticmethod
    def can_hold(matrix: sp.csr_matrix, added: sp.csr_matrix) -> bool:
        """Same columns and values, and canonical rows (what vstack would concatenate as they are)."""
        return (matrix.shape[1] == added.shape[1] and matrix.dtype == added.dtype
                and matrix.has_canonical_format and added.has_canonical_format)

    def ends(self, matrix: sp.csr_matrix) -> bool:
        """Whether ``matrix`` is the last matrix handed out (no row written after it since)."""
        return self._last is not None and self._last() is matrix

    def takes(self, added: sp.csr_matrix) -> bool:
        return (added.shape[1] == self.cols and added.dtype == self.data.dtype and added.has_canonical_format
                and self.rows + added.shape[0] + 1 <= self.indptr.size and self.nnz + added.nnz <= self.data.size)

    def write(self, added: sp.csr_matrix) -> None:
        rows, nnz = self.rows + added.shape[0], self.nnz + added.nnz
        self.data[self.nnz:nnz] = added.data[:added.nnz]
        self.indices[self.nnz:nnz] = added.indices[:added.nnz]
        self.indptr[self.rows + 1:rows + 1] = added.indptr[1:added.shape[0] + 1] + self.nnz
        self.rows, self.nnz = rows, nnz

    def matrix(self) -> sp.csr_matrix:
        """The filled rows, over the buffers (no copy)."""
        matrix = sp.csr_matrix((self.rows, self.cols), dtype=self.data.dtype)
        matrix.data, matrix.indices = self.data[:self.nnz], self.indices[:self.nnz]
        matrix.indptr = self.indptr[:self.rows + 1]
        matrix.__dict__[_STORE] = self
        self._last = weakref.ref(matrix)
        return matrix


def stacked(array: np.ndarray, added: np.ndarray, at_most: int | None = None) -> np.ndarray:
    """``np.concatenate([array, added])`` along the rows, for arrays that grow at their end: when
    ``array`` is the last one handed out from a buffer with room, ``added`` is written after it
    and nothing is copied (an N-1 pass appends the scenario tails of a few thousand pairs to a
    table of tens of thousands of rows, hundreds of samples each). Arrays handed out before keep
    their rows, as with ``extended``, and ``at_most`` rows is the room a new buffer takes at once."""
    store = _DENSE_STORES.get(id(array))
    if store is None or not store.ends(array) or not store.takes(added):
        store = _GrowingDense(array, added, at_most)
    return store.append(added)


_DENSE_STORES: dict[int, "_GrowingDense"] = {}   # by the id of the last array each buffer handed out


class _GrowingDense:
    """A buffer of rows with room after the last row handed out."""

    def __init__(self, array: np.ndarray, added: np.ndarray, at_most: int | None = None) -> None:
        room = _room(array.shape[0] + added.shape[0], at_most)
        self.buffer = np.empty((room, *array.shape[1:]), dtype=np.result_type(array, added))
        self.buffer[:array.shape[0]] = array
        self.rows = array.shape[0]
        self._last: weakref.ref | None = None

    def ends(self, array: np.ndarray) -> bool:
        return self._last is not None and self._last() is array

    def takes(self, added: np.ndarray) -> bool:
        return (added.shape[1:] == self.buffer.shape[1:] and np.can_cast(added.dtype, self.buffer.dtype, "equiv")
                and self.rows + added.shape[0] <= self.buffer.shape[0])

    def append(self, added: np.ndarray) -> np.ndarray:
        rows = self.rows + added.shape[0]
        self.buffer[self.rows:rows] = added
        self.rows = rows
        view = self.buffer[:rows]
        key = id(view)
        _DENSE_STORES[key] = self
        weakref.finalize(view, _DENSE_STORES.pop, key, None)
        self._last = weakref.ref(view)
        return view
