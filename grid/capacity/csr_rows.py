"""Sparse rows built from dense blocks.

The capacity study makes its coefficient and touch rows a block of dense shift factors at a time
(each line's upper row, then its lower row). scipy's conversion of a dense array goes through
coordinate form; reading the non-zeros once, row by row, gives the same arrays in about 40 % of
the time, which the N-1 screen pays at every pass for every pair it adds.
"""

from __future__ import annotations

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
    indices = np.nonzero(mask)[1].astype(index, copy=False)
    return sp.csr_matrix((dense[mask], indices, indptr), shape=dense.shape)


def interleaved(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Rows [u0, l0, u1, l1, ...] of two arrays of the same shape: each limit's upper row, then
    its lower row, as the limit table orders them."""
    return np.stack([upper, lower], axis=1).reshape(2 * upper.shape[0], *upper.shape[1:])
