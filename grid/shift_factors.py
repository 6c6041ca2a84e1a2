"""Shift-factor matrices H: line flows caused by nodal withdrawals (DC power flow).

Convention (spec 2.1, 7.2): withdrawal-positive. ``H[l, j]`` is the flow on line ``l``, counted in
its from_bus -> to_bus direction, caused by withdrawing 1 MW at bus ``j`` and supplying it from the
reference bus. Rows follow ``network.lines``, columns ``network.bus_numbers``; the reference bus
column is zero.
"""

from __future__ import annotations

from collections import deque
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from grid.errors import GridError
from grid.network import Network

# PTDF entries are fractions in [-1, 1]; anything this small is round-off from the LU solve, and
# zeroing it lets the capacity models recognise constraints that no candidate bus can affect.
_ROUNDOFF = 1e-12

# Right-hand sides solved per block, so the dense work array stays small next to the result.
_RHS_BLOCK = 1024


def path_matrix(network: Network) -> np.ndarray:
    """Spec (10): the radial path matrix, signed by line orientation.

    ``H[l, j]`` is +1 when line ``l`` lies on the path from the reference bus to bus ``j`` and is
    oriented away from the reference bus, -1 when it lies on that path but points towards the
    reference bus, and 0 otherwise. On a tree this equals the DC PTDF for any reactances, because
    the whole withdrawal must travel along the unique path.
    """
    if not network.is_radial():
        raise GridError(
            f"network {network.name!r} is meshed ({len(network.lines)} lines, {len(network.buses)} buses); "
            "the path matrix needs a radial network; use ptdf() and give every line reactance_pu"
        )
    n_bus, n_line = len(network.buses), len(network.lines)
    # Built bus-major so each bus row is one contiguous copy of its parent's row plus one entry:
    # the path to bus j is the path to its parent extended by the line between them.
    by_bus = np.zeros((n_bus, n_line))
    seen = {network.reference_bus}
    queue = deque([network.reference_bus])
    adjacency = network.adjacency
    while queue:
        parent = queue.popleft()
        parent_row = by_bus[network.bus_index(parent)]
        for child, line_pos in adjacency[parent]:
            if child in seen:
                continue
            seen.add(child)
            queue.append(child)
            row = by_bus[network.bus_index(child)]
            row[:] = parent_row
            row[line_pos] = 1.0 if network.lines[line_pos].from_bus == parent else -1.0
    return np.ascontiguousarray(by_bus.T)


def ptdf(network: Network) -> np.ndarray:
    """DC power-transfer distribution factors from line reactances (any topology).

    With susceptances b = 1/x, incidence A (+1 at from_bus, -1 at to_bus) and the reference
    angle fixed at 0, a withdrawal at bus j gives angles theta = -B_red^{-1} e_j and flows
    b * (A theta), so H_red = -diag(b) A_red B_red^{-1}. B_red is sparse; one sparse LU serves
    every column, which keeps 10k-bus networks tractable.
    """
    missing = next((line.name for line in network.lines if line.reactance_pu is None), None)
    if missing is not None:
        raise GridError(
            f"network {network.name!r}: line {missing} has no reactance_pu; the PTDF of a meshed "
            "network needs a reactance on every line"
        )
    n_bus, n_line = len(network.buses), len(network.lines)
    result = np.zeros((n_line, n_bus))
    if n_bus == 1 or n_line == 0:
        return result
    rows = np.repeat(np.arange(n_line), 2)
    cols = np.array(
        [network.bus_index(b) for line in network.lines for b in (line.from_bus, line.to_bus)]
    )
    signs = np.tile([1.0, -1.0], n_line)
    incidence = sp.csr_matrix((signs, (rows, cols)), shape=(n_line, n_bus))
    susceptance = 1.0 / np.array([line.reactance_pu for line in network.lines], dtype=float)
    weighted = sp.diags(susceptance) @ incidence            # diag(b) A, lines x buses
    b_bus = (incidence.T @ weighted).tocsc()                 # A^T diag(b) A
    keep = np.array([i for i in range(n_bus) if i != network.bus_index(network.reference_bus)])
    try:
        lu = splu(b_bus[keep][:, keep].tocsc())
    except RuntimeError as exc:
        raise GridError(
            f"network {network.name!r}: the reduced susceptance matrix is singular ({exc}); "
            "check for reactances that cancel around a loop"
        ) from None
    weighted_t = weighted[:, keep].T.tocsc()                 # (diag(b) A_red)^T, buses x lines
    for start in range(0, n_line, _RHS_BLOCK):
        stop = min(start + _RHS_BLOCK, n_line)
        block = lu.solve(weighted_t[:, start:stop].toarray())   # B_red^{-1} (diag(b) A_red)^T
        result[start:stop, keep] = -block.T
    result[np.abs(result) < _ROUNDOFF] = 0.0
    if not np.all(np.isfinite(result)):
        raise GridError(
            f"network {network.name!r}: the PTDF is not finite; check for reactances that cancel around a loop"
        )
    return result


def shift_factors(network: Network) -> np.ndarray:
    """The H used by the capacity models: the path matrix when radial, else the PTDF."""
    return path_matrix(network) if network.is_radial() else ptdf(network)


@lru_cache(maxsize=2)
def shared_shift_factors(network: Network) -> np.ndarray:
    """``shift_factors`` computed once per network and shared, read-only.

    The firm and flexible models of one network need the same H; for a meshed 10k-bus network it
    takes seconds to build, so they share this copy. Do not modify it (it is read-only anyway).
    """
    matrix = shift_factors(network)
    matrix.flags.writeable = False
    return matrix
