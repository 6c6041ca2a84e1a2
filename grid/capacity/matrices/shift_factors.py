"""Shift-factor matrices H: line flows caused by nodal withdrawals (DC power flow).

Convention (docs/models/capacity.md#ca-2-1, docs/models/capacity.md#ca-7-2):
withdrawal-positive. ``H[l, j]`` is the flow on line ``l``, counted in
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
from grid.network.network import Network
from grid.network.ratings import phase_shift_flows
from grid.threads import one_blas_thread

# PTDF entries are fractions in [-1, 1]; anything this small is round-off from the LU solve, and
# zeroing it lets the capacity models recognise constraints that no candidate bus can affect.
_ROUNDOFF = 1e-12

# Right-hand sides solved per block, so the dense work array stays small next to the result.
_RHS_BLOCK = 1024


def path_matrix(network: Network) -> np.ndarray:
    """The radial path matrix (C-10), docs/models/capacity.md#eq-c-10, signed by line orientation.

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
    """DC power-transfer distribution factors from line reactances (any topology), reference slack.

    With susceptances b = 1/x, incidence A (+1 at from_bus, -1 at to_bus) and the reference
    angle fixed at 0, a withdrawal at bus j gives angles theta = -B_red^{-1} e_j and flows
    b * (A theta), so H_red = -diag(b) A_red B_red^{-1}. B_red is sparse; one sparse LU serves
    every column, which keeps 10k-bus networks tractable.
    """
    return FlowModel(network, path=False).reference_rows(np.arange(len(network.lines)))


def _participation_vector(network: Network) -> np.ndarray:
    """alpha over buses (bus order): who supplies a change of net withdrawal (sums to 1)."""
    alpha = np.zeros(len(network.buses))
    for bus, share in network.participation().items():
        alpha[network.bus_index(bus)] = share
    return alpha


def shift_factors(network: Network) -> np.ndarray:
    """The H used by the capacity models, for the network's slack model.

    Reference slack: the path matrix when radial, else the PTDF. Distributed slack: withdrawing
    x is supplied by the generators in shares alpha, so the net withdrawal is x - alpha 1'x and
    H = H_ref - (H_ref alpha) 1' (every column shifts by the flows that the supply itself causes).
    """
    return FlowModel(network).rows(np.arange(len(network.lines)))


class FlowModel:
    """DC line flows caused by withdrawals, for one network and its slack model.

    Holds the sparse incidence and susceptances and one factorisation of the reduced susceptance
    matrix, and hands out rows of H in blocks, so that a 10,000-bus network never needs its dense
    H (1 GB) in memory at once. A radial network needs no reactances (its flows follow the tree),
    so lines without one count as x = 1 p.u. there.
    """

    def __init__(self, network: Network, *, path: bool | None = None) -> None:
        """``path`` forces (True) or forbids (False) the radial path matrix; default: when radial."""
        self.network = network
        n_bus, n_line = len(network.buses), len(network.lines)
        self.radial = network.is_radial() if path is None else path
        if not self.radial:
            missing = next((line.name for line in network.lines if line.reactance_pu is None), None)
            if missing is not None:
                raise GridError(
                    f"network {network.name!r}: line {missing} has no reactance_pu; the PTDF of a meshed "
                    "network needs a reactance on every line"
                )
        reactance = np.array(
            [1.0 if line.reactance_pu is None else float(line.reactance_pu) for line in network.lines]
        )
        self.susceptance = 1.0 / reactance if n_line else np.zeros(0)
        if n_line:
            rows = np.repeat(np.arange(n_line), 2)
            cols = np.array(
                [network.bus_index(b) for line in network.lines for b in (line.from_bus, line.to_bus)]
            )
            signs = np.tile([1.0, -1.0], n_line)
            self.incidence = sp.csr_matrix((signs, (rows, cols)), shape=(n_line, n_bus))
        else:
            self.incidence = sp.csr_matrix((0, n_bus))
        self.weighted = (sp.diags(self.susceptance) @ self.incidence).tocsr()   # diag(b) A
        self.susceptance_matrix = (self.incidence.T @ self.weighted).tocsc()    # B = A' diag(b) A
        self.alpha = _participation_vector(network)
        # Flows the phase shifters cause with no withdrawal: part of every background flow.
        self.offset_mw = phase_shift_flows(network)
        self.reference = network.bus_index(network.reference_bus)
        self.keep = np.array([i for i in range(n_bus) if i != self.reference], dtype=int)
        self._path = path_matrix(network) if self.radial else None
        self._lu = None
        if not self.radial and n_bus > 1:
            try:
                self._lu = splu(self.susceptance_matrix[self.keep][:, self.keep].tocsc())
            except RuntimeError as exc:
                raise GridError(
                    f"network {network.name!r}: the reduced susceptance matrix is singular ({exc}); "
                    "check for reactances that cancel around a loop"
                ) from None

    def reference_rows(self, lines: np.ndarray) -> np.ndarray:
        """Rows of the reference-slack H for these line positions."""
        if self._path is not None:
            return np.array(self._path[lines], dtype=float)
        result = np.zeros((lines.size, len(self.network.buses)))
        if self._lu is None or lines.size == 0:
            return result
        # SuperLU solves column by column: a Fortran-ordered right-hand side spares it a transposed
        # copy (the same bits, a quarter less time on ACTIVSg70k, more when memory is busy).
        rhs = self.weighted[lines][:, self.keep].T.toarray(order="F")  # (diag(b) A_red)^T columns
        with one_blas_thread():
            result[:, self.keep] = -self._lu.solve(rhs).T             # H_red = -diag(b) A_red B_red^-1
        result[np.abs(result) < _ROUNDOFF] = 0.0
        if not np.all(np.isfinite(result)):
            raise GridError(
                f"network {self.network.name!r}: the shift factors are not finite; check for reactances that "
                "cancel around a loop"
            )
        return result

    def rows(self, lines: np.ndarray) -> np.ndarray:
        """Rows of H (this slack model) for the given line positions, (len(lines), buses)."""
        return self._slack_in_place(self.reference_rows(np.asarray(lines, dtype=int)))

    def with_slack(self, reference: np.ndarray) -> np.ndarray:
        """Reference-slack rows of H turned into this slack model's: with a distributed slack the
        generators supply each withdrawal in shares alpha (a copy; ``reference`` is left as it is)."""
        return self._slack_in_place(np.array(reference, dtype=float))

    def _slack_in_place(self, block: np.ndarray) -> np.ndarray:
        if self.network.slack != "reference":
            block -= (block @ self.alpha)[:, None]
            block[np.abs(block) < _ROUNDOFF] = 0.0
        return block

    def blocks(self, lines: np.ndarray, size: int = _RHS_BLOCK, every_row: np.ndarray | None = None):
        """(line positions, H rows) in blocks of at most ``size`` lines; the rows read from
        ``every_row`` (H whole, when the caller holds it) instead of solved for."""
        lines = np.asarray(lines, dtype=int)
        for start in range(0, lines.size, size):
            chunk = lines[start:start + size]
            yield chunk, self.rows(chunk) if every_row is None else every_row[chunk]

    def flows(self, withdrawals: np.ndarray) -> np.ndarray:
        """Line flows (L,) or (L, k) of one or a few withdrawal vectors (buses,) or (buses, k).

        Solves for angles instead of forming H, so a handful of vectors costs a few sparse
        triangular solves.
        """
        x = np.asarray(withdrawals, dtype=float)
        single = x.ndim == 1
        x = x[:, None] if single else x
        net = x - self.alpha[:, None] * x.sum(axis=0, keepdims=True)
        if self._path is not None:
            result = self._path @ net
        else:
            theta = np.zeros_like(net)
            if self._lu is not None:
                with one_blas_thread():
                    theta[self.keep] = -self._lu.solve(np.asfortranarray(net[self.keep]))
            result = self.weighted @ theta
        return result[:, 0] if single else result


@lru_cache(maxsize=2)
def flow_model(network: Network) -> FlowModel:
    """One FlowModel per network, shared by the firm and flexible models and the risk check."""
    return FlowModel(network)
