"""Where to draw each bus: positions on a plane for network plots.

Cases rarely carry coordinates, yet a capacity map is only readable if the buses sit where the
network's structure puts them. Three layouts, chosen by what the network is:

- every bus has ``coordinates``: use them (only scaled), since a reader knows the real map;
- radial (a tree once parallel lines are merged): a layered tree hanging from the reference bus,
  which is how distribution feeders are drawn on one-line diagrams;
- meshed: a spectral layout (two low eigenvectors of the degree-normalised Laplacian) refined by
  a force-directed pass whose repulsion runs on a grid, so 10,000 buses take seconds, not minutes.

Every layout is deterministic (no unseeded randomness; eigenvector signs and the final rotation
are fixed), so the same network always yields the same picture, and is returned in the unit box.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import ArpackNoConvergence, eigsh

from grid.network.network import Network

__all__ = ["bus_positions"]

# Below this many buses LAPACK on the dense matrix is faster than ARPACK and needs no k < n care.
_DENSE_EIGEN_LIMIT = 200
# Refinement budget: enough to untangle what the spectral start folds onto itself (degree-1 buses
# land on their neighbour) while keeping a 10,000-bus layout within a few seconds.
_FORCE_ITERATIONS = 100


def bus_positions(network: Network) -> dict[int, tuple[float, float]]:
    """Bus number -> (x, y) in the unit box [0, 1]^2, the same for every call on the same network.

    Given coordinates keep their aspect ratio (a map must not be stretched); a tree layout fills
    the box (depth down, leaves across); a meshed layout keeps its aspect ratio, its longer axis
    horizontal, because the force pass gives lines roughly equal lengths that stretching would undo.
    """
    numbers = network.bus_numbers
    coordinates = [bus.coordinates for bus in network.buses]
    if all(c is not None for c in coordinates):
        xy = _normalise(np.asarray(coordinates, dtype=float), keep_aspect=True)
    else:
        rows, cols = _simple_edges(network)
        if len(rows) == len(numbers) - 1:
            # Judged on distinct bus pairs, not is_radial(): a feeder with a doubled line is still a tree.
            xy = _tree_layout(network)
        else:
            start = _spectral_layout(len(numbers), rows, cols)
            refined = _force_directed(start, rows, cols, _FORCE_ITERATIONS)
            xy = _normalise(_canonical_orientation(refined), keep_aspect=True)
    return {bus: (float(x), float(y)) for bus, (x, y) in zip(numbers, xy)}


def _simple_edges(network: Network) -> tuple[np.ndarray, np.ndarray]:
    """Distinct undirected bus pairs as index arrays (i < j), in first-seen line order."""
    index = {bus: position for position, bus in enumerate(network.bus_numbers)}
    seen: dict[tuple[int, int], None] = {}
    for line in network.lines:
        a, b = index[line.from_bus], index[line.to_bus]
        seen.setdefault((min(a, b), max(a, b)), None)
    if not seen:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pairs = np.array(list(seen), dtype=np.int64)
    return pairs[:, 0], pairs[:, 1]


def _normalise(xy: np.ndarray, *, keep_aspect: bool) -> np.ndarray:
    """Scale into [0, 1]^2; a flat axis (one point, a straight feeder) is centred at 0.5."""
    low, high = xy.min(axis=0), xy.max(axis=0)
    span = high - low
    out = np.full_like(xy, 0.5)
    if keep_aspect:
        scale = span.max()
        if scale > 0:
            # Centre the shorter axis so the picture sits in the middle of the box.
            out = (xy - low) / scale + (1.0 - span / scale) / 2.0
    else:
        for axis in range(2):
            if span[axis] > 0:
                out[:, axis] = (xy[:, axis] - low[axis]) / span[axis]
    return np.clip(out, 0.0, 1.0)


def _tree_layout(network: Network) -> np.ndarray:
    """Layered tree from the reference bus: y = 1 at the root, one level per depth step downward.

    Leaves are spaced evenly across in depth-first order (adjacency order, so deterministic) and
    each parent sits midway between its outermost children, so subtrees never overlap. Iterative,
    because a long feeder would overflow Python's recursion limit.
    """
    numbers = network.bus_numbers
    n = len(numbers)
    index = {bus: position for position, bus in enumerate(numbers)}
    root = index[network.reference_bus]
    children: list[list[int]] = [[] for _ in range(n)]
    depth = np.zeros(n, dtype=np.int64)
    visited = np.zeros(n, dtype=bool)
    visited[root] = True
    preorder: list[int] = []
    stack = [root]
    while stack:
        node = stack.pop()
        preorder.append(node)
        fresh = []
        for neighbour_bus, _ in network.adjacency[numbers[node]]:
            neighbour = index[neighbour_bus]
            if not visited[neighbour]:  # also skips the second of two parallel lines
                visited[neighbour] = True
                depth[neighbour] = depth[node] + 1
                fresh.append(neighbour)
        children[node] = fresh
        # Reversed so that the first child is popped (and so placed) first.
        stack.extend(reversed(fresh))

    x = np.zeros(n)
    leaves = [node for node in preorder if not children[node]]
    leaf_x = np.linspace(0.0, 1.0, len(leaves)) if len(leaves) > 1 else np.array([0.5])
    x[leaves] = leaf_x
    for node in reversed(preorder):  # children before their parent
        if children[node]:
            x[node] = (x[children[node][0]] + x[children[node][-1]]) / 2.0
    deepest = depth.max()
    y = 1.0 - depth / deepest if deepest > 0 else np.full(n, 0.5)
    return np.column_stack([x, y])


def _spectral_layout(n: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Two lowest non-trivial generalised eigenvectors of (L, D) (Koren's degree-normalised layout).

    The plain Laplacian's low eigenvectors localise on long radial spurs, squeezing the meshed core
    into a dot; dividing by degree spreads the core. Solved as the symmetric normalised Laplacian
    N = I - D^-1/2 A D^-1/2 with shift-invert just below 0, which finds the smallest eigenvalues in
    a few factorised solves. One spare eigenvector is requested so that a near-tie between the 2nd
    and 3rd eigenvalues does not slow ARPACK or leave the 2-D subspace half-converged.
    """
    weights = np.ones(len(rows))
    adjacency = sp.coo_matrix((weights, (rows, cols)), shape=(n, n)).tocsr()
    adjacency = adjacency + adjacency.T
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    inv_sqrt = 1.0 / np.sqrt(degree)
    scaled = sp.diags(inv_sqrt) @ adjacency @ sp.diags(inv_sqrt)
    normalised = (sp.identity(n, format="csr") - scaled).tocsc()

    if n <= _DENSE_EIGEN_LIMIT:
        values, vectors = np.linalg.eigh(normalised.toarray())
    else:
        values, vectors = _smallest_eigenpairs(normalised, count=min(4, n - 1))
    order = np.argsort(values, kind="stable")
    vectors = vectors[:, order]

    # Back to generalised eigenvectors v = D^-1/2 u, then remove any trace of the trivial (constant)
    # one in the D inner product: with a tiny spectral gap ARPACK may mix it into the next vector.
    generalised = vectors * inv_sqrt[:, None]
    constant = np.ones(n)
    picked = []
    for column in range(1, generalised.shape[1]):
        v = generalised[:, column]
        v = v - (v @ (degree * constant)) / degree.sum() * constant
        for earlier in picked:
            v = v - (v @ (degree * earlier)) / (earlier @ (degree * earlier)) * earlier
        size = np.sqrt(v @ (degree * v))
        if size > 1e-9:
            picked.append(v / size)
        if len(picked) == 2:
            break
    while len(picked) < 2:  # degenerate input (cannot happen for a connected meshed graph)
        picked.append(np.zeros(n))
    return np.column_stack([_fixed_sign(v) for v in picked])


def _smallest_eigenpairs(matrix: sp.csc_matrix, count: int) -> tuple[np.ndarray, np.ndarray]:
    """ARPACK shift-invert for the ``count`` smallest eigenpairs of a PSD matrix with eigenvalue 0.

    sigma sits just below 0 so that (N - sigma I) is positive definite and factorisable. The start
    vector comes from a fixed seed: ARPACK's default is random (non-deterministic), and a constant
    start would be orthogonal to the antisymmetric eigenvectors of a symmetric network.
    """
    start = np.random.default_rng(0).uniform(-1.0, 1.0, matrix.shape[0])
    try:
        return eigsh(matrix, k=count, sigma=-1e-4, which="LM", v0=start)
    except ArpackNoConvergence:
        # A cluster of nearly equal eigenvalues needs a larger Krylov space; one retry is enough
        # in practice, and a failure after it is a genuine error worth surfacing.
        return eigsh(matrix, k=count, sigma=-1e-4, which="LM", v0=start, ncv=min(matrix.shape[0], 8 * count + 20), maxiter=20 * matrix.shape[0])


def _fixed_sign(v: np.ndarray) -> np.ndarray:
    """Flip an eigenvector so its sign does not depend on the solver: skewness positive, or, for
    a symmetric vector, the first entry of largest magnitude positive."""
    scale = np.abs(v).max()
    if scale == 0:
        return v
    skew = np.sum((v / scale) ** 3)
    if abs(skew) > 1e-6 * len(v):
        return v if skew > 0 else -v
    first = int(np.flatnonzero(np.abs(v) >= scale * (1 - 1e-9))[0])
    return v if v[first] > 0 else -v


def _canonical_orientation(xy: np.ndarray) -> np.ndarray:
    """Rotate onto principal axes (longer one horizontal, as plot panels are wider than tall) and
    fix each axis's sign, so that eigenvectors returned in any rotation of a tied pair draw alike."""
    centred = xy - xy.mean(axis=0)
    _, axes = np.linalg.eigh(centred.T @ centred)
    rotated = centred @ axes[:, ::-1]  # eigh sorts ascending; the major axis goes first (x)
    return np.column_stack([_fixed_sign(rotated[:, 0]), _fixed_sign(rotated[:, 1])])


def _force_directed(start: np.ndarray, rows: np.ndarray, cols: np.ndarray, iterations: int) -> np.ndarray:
    """Fruchterman-Reingold with particle-mesh repulsion: O(buses + lines + G^2 log G) per step.

    Attraction (d^2 / k) runs over the lines. Repulsion (k^2 / d from every bus) is the field of
    all buses, which we get by depositing them on a G x G grid and convolving with the force
    kernel by FFT; pairwise cell buckets would be simpler but go quadratic when the spectral start
    stacks thousands of buses in one cell. Cloud-in-cell deposit and read-back make a bus's force
    on itself cancel exactly. The grid blurs forces below one cell, so buses at most two lines
    apart (neighbours, and leaves of one parent, which the grid alone lets merge) get the exact
    short-range remainder pairwise. The step length is capped by a temperature that cools linearly.
    """
    n = len(start)
    xy = start - start.mean(axis=0)
    # Ideal line length k = 1: scale the start so the layout covers an area of about n k^2.
    radius = np.sqrt((xy**2).sum(axis=1).mean())
    xy = xy * (0.5 * np.sqrt(n) / radius) if radius > 0 else xy
    # Buses the spectral start puts on one spot (leaves of one parent get equal eigenvector
    # entries) feel identical forces; a small seeded nudge gives their repulsion a direction.
    xy = xy + np.random.default_rng(1).uniform(-0.05, 0.05, xy.shape)
    near_a, near_b = _near_pairs(n, rows, cols)
    grid = int(np.clip(2 ** np.ceil(np.log2(np.sqrt(n) * 1.5)), 16, 256))
    kernel_x, kernel_y = _kernel_spectra(grid)
    temperature = 0.1 * np.sqrt(n)
    final = 0.01 * np.sqrt(n)
    for step in range(iterations):
        force, cell = _repulsion(xy, grid, kernel_x, kernel_y)
        # Exact k^2 / d minus the softened kernel the grid already applied (in real units).
        delta = xy[near_a] - xy[near_b]
        squared = np.maximum((delta**2).sum(axis=1), 1e-12)
        push = delta * (1.0 / squared - 1.0 / (squared + cell**2))[:, None]
        delta = xy[cols] - xy[rows]
        distance = np.sqrt((delta**2).sum(axis=1))
        pull = delta * distance[:, None]  # d^2 / k along the line, k = 1
        for axis in range(2):
            force[:, axis] += np.bincount(near_a, push[:, axis], minlength=n)
            force[:, axis] -= np.bincount(near_b, push[:, axis], minlength=n)
            force[:, axis] += np.bincount(rows, pull[:, axis], minlength=n)
            force[:, axis] -= np.bincount(cols, pull[:, axis], minlength=n)
        length = np.sqrt((force**2).sum(axis=1))
        limit = temperature + (final - temperature) * step / max(iterations - 1, 1)
        factor = np.minimum(length, limit) / np.maximum(length, 1e-12)
        xy = xy + force * factor[:, None]
    return xy


def _near_pairs(n: int, rows: np.ndarray, cols: np.ndarray, window: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Distinct bus pairs at most two lines apart: the lines, plus pairs of one bus's neighbours.

    A hub's neighbours are paired only within a sliding window of their list, so a star with
    thousands of leaves costs O(leaves * window) pairs instead of O(leaves^2).
    """
    adjacency = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    adjacency = (adjacency + adjacency.T).tocsr()
    adjacency.sort_indices()
    starts, neighbours = adjacency.indptr, adjacency.indices
    degree = np.diff(starts)
    owner = np.repeat(np.arange(n), degree)
    slot = np.arange(len(neighbours)) - starts[owner]
    first, second = [rows], [cols]
    for offset in range(1, min(window, int(degree.max(initial=0))) ):
        keep = np.flatnonzero(slot + offset < degree[owner])
        first.append(neighbours[keep])
        second.append(neighbours[keep + offset])
    a, b = np.concatenate(first), np.concatenate(second)
    low, high = np.minimum(a, b), np.maximum(a, b)
    keys = np.unique(low.astype(np.int64) * n + high)
    return keys // n, keys % n


def _kernel_spectra(grid: int) -> tuple[np.ndarray, np.ndarray]:
    """FFT of the repulsion kernel r / (|r|^2 + s^2) in cell units on the zero-padded 2G grid.

    Softening s of one cell: below grid resolution the force is smeared rather than singular.
    """
    size = 2 * grid
    offsets = np.fft.fftfreq(size, d=1.0 / size)  # 0, 1, ..., G-1, -G, ..., -1
    dx, dy = np.meshgrid(offsets, offsets, indexing="ij")
    denominator = dx**2 + dy**2 + 1.0
    kx, ky = dx / denominator, dy / denominator
    # The -G offset has no mirror; zeroing it keeps the kernel exactly odd (no self-force).
    kx[grid, :] = 0.0
    ky[:, grid] = 0.0
    return np.fft.rfft2(kx), np.fft.rfft2(ky)


def _repulsion(xy: np.ndarray, grid: int, kernel_x: np.ndarray, kernel_y: np.ndarray) -> tuple[np.ndarray, float]:
    """k^2 / d repulsion from all buses, through the grid (k = 1), and the cell size used."""
    low = xy.min(axis=0)
    cell = max(float((xy.max(axis=0) - low).max()), 1e-9) / (grid - 2)
    # Cell centres at (i + 0.5) * cell, one cell of margin, so every bus has four cells around it.
    u = (xy - low) / cell + 0.5
    base = np.floor(u).astype(np.int64)
    frac = u - base
    weights = []
    flat = []
    for ox in (0, 1):
        for oy in (0, 1):
            wx = frac[:, 0] if ox else 1.0 - frac[:, 0]
            wy = frac[:, 1] if oy else 1.0 - frac[:, 1]
            weights.append(wx * wy)
            flat.append((base[:, 0] + ox) * grid + (base[:, 1] + oy))
    density = np.zeros((2 * grid, 2 * grid))
    density[:grid, :grid] = np.bincount(
        np.concatenate(flat), np.concatenate(weights), minlength=grid * grid
    ).reshape(grid, grid)
    spectrum = np.fft.rfft2(density)
    size = (2 * grid, 2 * grid)
    # Field in cell units; the kernel r / |r|^2 scales as 1 / cell in real units.
    field_x = np.fft.irfft2(spectrum * kernel_x, s=size)[:grid, :grid].ravel() / cell
    field_y = np.fft.irfft2(spectrum * kernel_y, s=size)[:grid, :grid].ravel() / cell
    force = np.zeros_like(xy)
    for w, f in zip(weights, flat):
        force[:, 0] += w * field_x[f]
        force[:, 1] += w * field_y[f]
    return force, cell
