"""The permutohedral lattice: Gaussian filtering in d dimensions in time linear in the pixels.

A fully-connected CRF needs, at every mean-field step, the sum over *all* pixels j of
``k(f_i, f_j) Q_j`` with a Gaussian kernel ``k`` over feature vectors ``f`` (position, colour).
Done naively that is O(N²). Adams, Baek & Davis (2010, "Fast high-dimensional filtering using
the permutohedral lattice") approximate it in O(N·d²) in three steps:

1. **splat**: embed each d-dimensional feature (already divided by its kernel width θ) in the
   hyperplane ``Σ x = 0`` of R^{d+1}, find the enclosing simplex of the permutohedral lattice and
   spread the pixel's value to its d+1 vertices with barycentric weights;
2. **blur**: along each of the d+1 lattice directions, convolve the vertex values with
   ``[½, 1, ½]`` (vertices that no pixel touched count as zero);
3. **slice**: read every pixel's value back from its d+1 vertices with the same weights.

This file mirrors, step for step and in float32, the C++ implementation by Philipp
Krähenbühl that ``pydensecrf`` wraps (``permutohedral.cpp``), including its rounding and
tie-breaking rules, so that the two agree to about 1e-6. It is vectorised over pixels: lattice
keys are packed into one integer each and hashed by a single sort; splat, blur and slice are
sparse matrices (CSR), built once per image and applied at every iteration.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["Lattice", "GaussianFilter"]


def _elevate(features: Tensor) -> Tensor:
    """Map features (N, d) onto the hyperplane Σx = 0 of R^{d+1}, scaled so that the lattice blur
    has standard deviation 1 (the matrix E of Adams et al., p. 5, as in permutohedral.cpp).
    Returns (d+1, N): one row per coordinate, so that the loops below read contiguous rows."""
    d = features.shape[1]
    inv_std_dev = float(torch.tensor(math.sqrt(2.0 / 3.0) * (d + 1), dtype=torch.float32))
    scale = torch.tensor(
        [1.0 / math.sqrt((i + 2) * (i + 1)) * inv_std_dev for i in range(d)],
        dtype=torch.float32,
        device=features.device,
    )  # (d,)
    cf = (features * scale).T.contiguous()  # (d, N)
    # The running sum is accumulated in the C++ order (last coordinate first) so that float32
    # rounding, and hence which simplex a borderline pixel falls into, is the same.
    elevated = torch.empty(d + 1, features.shape[0], dtype=torch.float32, device=features.device)
    running = torch.zeros_like(cf[0])  # (N,)
    for j in range(d, 0, -1):
        elevated[j] = running - j * cf[j - 1]
        running = running + cf[j - 1]
    elevated[0] = running
    return elevated  # (d+1, N)


def _enclosing_simplex(elevated: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """For each elevated point (d+1, N): the nearest remainder-0 lattice point ``rem0``, the rank
    of each coordinate of the offset from it, and the d+1 barycentric weights (Adams et al.,
    p. 10), each (d+1, N)."""
    d1, n = elevated.shape
    d = d1 - 1
    down = float(torch.tensor(1.0 / d1, dtype=torch.float32))
    v = elevated * down  # (d+1, N)
    up_point = torch.ceil(v).mul_(d1)
    down_point = torch.floor(v).mul_(d1)
    nearer_up = up_point - elevated < elevated - down_point  # (d+1, N)
    rem0 = torch.where(nearer_up, up_point, down_point)  # (d+1, N)
    residual = elevated - rem0  # (d+1, N)

    # rank[x] = how many coordinates are larger than coordinate x, ties going to the lower
    # index, exactly as the pairwise loop of permutohedral.cpp counts them: for each pair
    # i < j, i gains one if r_i < r_j, j gains one otherwise. The pairs (i, i+k) of each
    # offset k are one comparison of two slices; all counts come out of one product.
    device = elevated.device
    first_smaller = torch.cat([residual[: d1 - k] < residual[k:] for k in range(1, d1)])  # (P, N)
    first = torch.cat([torch.arange(d1 - k, device=device) for k in range(1, d1)])  # (P,)
    second = torch.cat([torch.arange(k, d1, device=device) for k in range(1, d1)])
    pairs = torch.arange(first.numel(), device=device)
    signed = torch.zeros(d1, first.numel(), device=device)  # (d+1, P)
    signed[first, pairs] = 1.0
    signed[second, pairs] = -1.0
    # without wins, j would get a point from each of its j pairs (i, j). Small integers are
    # exact in float32, so the counting and the wrap below stay in float32 (cheaper).
    rank = (signed @ first_smaller.to(torch.float32)).add_(torch.arange(d1, device=device)[:, None])

    # Points off the plane Σ = 0 are brought back by shifting the ranks cyclically (by at most
    # d); a rank that wraps around moves its rem0 coordinate by d+1 the other way.
    shifted = rank + rem0.sum(0) / d1  # (d+1, N)
    rank = shifted - d1 * torch.floor(shifted / d1)
    rem0 += rank - shifted

    # Barycentric weights from the offsets sorted by rank: v_(r) is the offset of rank r,
    # b_s = v_(d-s) - v_(d-s+1), and b_0 = v_(d) + 1 - v_(0), the last sum in double as in C++.
    step = (elevated - rem0) * down  # (d+1, N)
    rank = rank.round_().to(torch.int64)
    coordinate = torch.arange(d1, device=device).expand(n, d1).T  # (d+1, N)
    by_rank = torch.empty_like(rank).scatter_(0, rank, coordinate)
    ordered = step.gather(0, by_rank).flip(0)  # (d+1, N) row s: v_(d-s)
    barycentric = torch.empty_like(step)
    torch.sub(ordered[1:], ordered[:-1], out=barycentric[1:])
    barycentric[0] = (ordered[0].double() + (1.0 - ordered[d].double())).float()
    return rem0.to(torch.int64), rank, barycentric


def _csr(rows: Tensor, cols: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    """A CSR matrix from trusted parts (checking them would cost more than using them)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta state")
        return torch.sparse_csr_tensor(rows, cols, values, size, check_invariants=False)


# MKL and cuSPARSE take 32-bit indices; torch would convert 64-bit ones at every product.
_INDEX = torch.int32


def _blur_pair(first: Tensor, then: Tensor) -> Tensor:
    """The blur along one direction and then another, B_then B_first, as one (M, M) CSR matrix.

    ``first`` and ``then`` are (2, M+1) lower and upper neighbours, M meaning "none". Row v of
    the product reaches w = v + a·δ_then + b·δ_first for a, b in {-1, 0, 1} with weight
    (½ or 1)·(½ or 1), when the intermediate vertex and w both exist, as in two blur passes.
    Two directions per product: about twice the nonzeros of one, but the lattice values cross
    memory half as often; the weights (products of ½ and 1) are exact.
    """
    m = first.shape[1] - 1
    itself = torch.arange(m, device=first.device)
    via = torch.stack([then[0, :m], itself, then[1, :m]], 1)  # (M, 3) vertex after one step
    cols = torch.stack([first[0][via], via, first[1][via]], 2).view(m, 9)  # (M, 9) vertex w
    half = torch.tensor([0.5, 1.0, 0.5], device=first.device)
    weights = (half[:, None] * half[None, :]).flatten().repeat(m)  # (9M,) in (a, b) order
    present = cols < m
    per_row = present.sum(1, dtype=_INDEX)  # (M,)
    rows = torch.cat([per_row.new_zeros(1), per_row.cumsum(0, dtype=_INDEX)])
    keep = present.flatten().nonzero()[:, 0]  # (nnz,)
    return _csr(rows, cols.flatten()[keep].to(_INDEX), weights[keep], (m, m))


class Lattice:
    """The permutohedral lattice of one set of features, built once and reused by every filtering.

    Vertices are numbered in the order in which the pixels (row by row) first touch them, so that
    neighbouring pixels read and write neighbouring memory.

    Attributes:
        dim: d, the feature dimension (2 for position, 5 for position + colour).
        num_points: N, the number of pixels.
        num_vertices: M, how many lattice vertices the pixels touch.
        offsets: (N, d+1) int64, the vertex of each corner of each pixel's simplex.
        weights: (N, d+1) float32, the barycentric weights (they sum to 1 per pixel).
        neighbours: (d+1, 2, M) int64, the two neighbours of each vertex along each blur
            direction; ``M`` stands for "no such vertex" (its value counts as zero).
        splat_rows, splat_pixels, splat_entries: the splat matrix (M, N) in CSR form: row
            pointers and the pixel of each entry (int32), and each entry's position in
            ``weights.flatten()`` (where its barycentric weight is).

    Args:
        features: (N, d) float32 features already divided by the kernel widths, e.g.
            ``x/θα, y/θα, r/θβ, g/θβ, b/θβ``.

    Example:
        >>> f = torch.stack(torch.meshgrid(torch.arange(4.), torch.arange(5.), indexing="ij"), -1)
        >>> lat = Lattice(f.reshape(-1, 2) / 3.0)
        >>> lat.filter(torch.ones(20, 1)).shape
        torch.Size([20, 1])
    """

    def __init__(self, features: Tensor) -> None:
        features = features.to(torch.float32)
        n, d = features.shape
        d1 = d + 1
        device = features.device
        self.dim, self.num_points = d, n
        rem0, rank, barycentric = _enclosing_simplex(_elevate(features))  # (d+1, N) each
        self.weights = barycentric.T.contiguous()  # (N, d+1)

        # Only d coordinates identify a vertex (the last follows from Σ = 0); they are packed
        # into one int64 in mixed radix, with room for the neighbours' steps of ±d.
        key_lo = rem0[:d].amin(1) - 2 * d1  # (d,)
        span = rem0[:d].amax(1) + 2 * d1 - key_lo + 1  # (d,)
        strides = [1]
        for s in span.tolist():
            strides.append(strides[-1] * s)
        if strides[-1] >= 2**62:
            raise ValueError(
                "the features span too many lattice cells to index; use larger kernel widths "
                "(theta) or a smaller image"
            )
        # 32-bit keys sort faster, and a position-only lattice usually fits in them.
        key_type = torch.int32 if strides[-1] < 2**31 else torch.int64
        stride = torch.tensor(strides[:d], dtype=torch.int64, device=device)[:, None]  # (d, 1)
        # Corner r of the simplex is rem0 + r, except coordinates with rank_i > d - r, which
        # get r - (d+1): coordinate i switches at r = d + 1 - rank_i, hence the cumsum.
        base = ((rem0[:d] - key_lo[:, None]) * stride).sum(0)  # (N,)
        switch = torch.zeros(d1 + 1, n, dtype=torch.int64, device=device)
        switch.scatter_add_(0, d1 - rank[:d], stride.expand(d, n))  # (d+2, N)
        corner = torch.arange(d1, device=device)[:, None] * int(stride.sum())  # (d+1, 1)
        keys = (base + corner - d1 * switch.cumsum(0)[:d1]).T.flatten().to(key_type)  # (L,)

        # Hash by sorting: equal keys are one vertex. The sort is stable, so the first entry
        # of each run is where a pixel first touched that vertex: that fixes the numbering.
        sorted_keys, order = torch.sort(keys, stable=True)  # (L,) L = N(d+1)
        is_new = torch.ones_like(sorted_keys, dtype=torch.bool)
        torch.ne(sorted_keys[1:], sorted_keys[:-1], out=is_new[1:])
        run_start = is_new.nonzero()[:, 0]  # (M,) where each vertex's run starts
        m = run_start.numel()
        self.num_vertices = m
        by_number = torch.argsort(order[run_start])  # (M,) the run of the k-th vertex
        numbering = torch.empty_like(by_number)
        numbering[by_number] = torch.arange(m, device=device)  # (M,) the vertex of each run
        size = order.numel()  # L
        run_length = torch.diff(run_start, append=run_start.new_tensor([size]))  # (M,)
        vertex_of_sorted = torch.repeat_interleave(numbering, run_length, output_size=size)
        self.offsets = torch.empty_like(order).scatter_(0, order, vertex_of_sorted).view(n, d1)

        # The splat matrix lists each vertex's entries, vertex after vertex in the numbering:
        # entry s of the sorted order goes to its vertex's row, at its place within its run.
        counts = run_length[by_number]  # (M,) entries of the k-th vertex
        self.splat_rows = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])  # (M+1,)
        run_shift = self.splat_rows[:-1][numbering] - run_start  # (M,) row start minus run start
        place = torch.repeat_interleave(run_shift, run_length, output_size=size)  # (L,)
        place += torch.arange(size, device=device)
        self.splat_entries = torch.empty_like(order).scatter_(0, place, order)  # (L,)
        self.splat_pixels = (self.splat_entries // d1).to(_INDEX)
        self.splat_rows = self.splat_rows.to(_INDEX)

        # Neighbours along direction j: every stored coordinate -1 except coordinate j, +d
        # (for j = d, the implicit last coordinate, all d stored ones are -1); the opposite
        # neighbour is the inverse map.
        vertex_keys = sorted_keys[run_start]  # (M,) ascending, in run order
        ones = int(stride.sum())
        neighbours = torch.full((d1, 2, m + 1), m, dtype=torch.int64, device=device)
        for j in range(d1):
            wanted = vertex_keys + ((d1 * strides[j]) if j < d else 0) - ones  # (M,)
            found = torch.searchsorted(vertex_keys, wanted).clamp_(max=m - 1)  # (M,)
            lower = torch.where(vertex_keys[found] == wanted, numbering[found], m)  # (M,)
            neighbours[j, 0, numbering] = lower
            neighbours[j, 1].scatter_(0, lower, numbering)
        self.neighbours = neighbours[:, :, :m]

    @property
    def alpha(self) -> float:
        """The constant that rescales the lattice blur to a unit Gaussian, 1 / (1 + 2^-d)."""
        return float(torch.tensor(1.0 / (1.0 + 2.0**-self.dim), dtype=torch.float32))

    def row_sums(self) -> Tensor:
        """α K 1, (N,): each pixel's total kernel weight, D in the normalisation D^{-½} K D^{-½}.

        The same splat, blur and slice as :class:`GaussianFilter`, written as plain gathers for
        one channel (and in the C++ order of operations).

        Example:
            >>> Lattice(torch.zeros(3, 2)).row_sums()  # three pixels at the same point
            tensor([2.7000, 2.7000, 2.7000])
        """
        m = self.num_vertices
        values = torch.zeros(m, device=self.weights.device)
        values.index_add_(0, self.offsets.flatten(), self.weights.flatten())  # (M,) splat
        for lower, upper in self.neighbours:  # (M,) each; M = missing, read as zero
            padded = torch.cat([values, values.new_zeros(1)])  # (M+1,)
            values = values + 0.5 * (padded[lower] + padded[upper])
        return (self.weights * values[self.offsets] * self.alpha).sum(1)  # (N,) slice

    def filter(self, values: Tensor) -> Tensor:
        """Gaussian-filter ``values`` (N, C): out_i ≈ Σ_j exp(-½‖f_i - f_j‖²) values_j, j = i too.

        Args:
            values: (N, C) float32 on the lattice's device.

        Returns:
            (N, C) float32, the filtered values.

        Example:
            >>> lat = Lattice(torch.rand(10, 3))
            >>> lat.filter(torch.eye(10)).shape
            torch.Size([10, 10])
        """
        return GaussianFilter([self])(values)


class GaussianFilter:
    """Σ_k diag(b_k) α_k K_k diag(a_k) for one or several lattices, as sparse matrix products.

    ``K_k`` is lattice k's (approximate) Gaussian kernel matrix, α_k its constant, ``a_k`` and
    ``b_k`` per-pixel scales applied before and after it (ones if not given). Several lattices
    over the same pixels are stacked: the splat matrix has their vertices one below the other,
    each blur direction acts on every lattice that has it, and one slice matrix sums all
    kernels into one output. A dense CRF's whole message ``Σ_k w_k D_k^{-½} K_k D_k^{-½} Q``
    is then one call: one splat, d+1 blurs, one slice.

    Args:
        lattices: lattices over the same N pixels, on one device.
        scale_in: per lattice, (N,) float32 a_k.
        scale_out: per lattice, (N,) float32 b_k.

    Example:
        >>> lat = Lattice(torch.rand(10, 2))
        >>> one = torch.ones(10)
        >>> GaussianFilter([lat, lat], [one, one], [one, 2 * one])(torch.ones(10, 1)).shape
        torch.Size([10, 1])
    """

    def __init__(
        self,
        lattices: Sequence[Lattice],
        scale_in: Sequence[Tensor] | None = None,
        scale_out: Sequence[Tensor] | None = None,
    ) -> None:
        n = lattices[0].num_points
        device = lattices[0].weights.device
        ones = [torch.ones(n, device=device)] * len(lattices)
        scale_in, scale_out = scale_in or ones, scale_out or ones
        first = [0]
        for lat in lattices:
            first.append(first[-1] + lat.num_vertices)
        total = first[-1]

        # splat (total, N): lattice k's rows below lattice k-1's, values w·a_k
        shifts = [0]
        for lat in lattices:
            shifts.append(shifts[-1] + lat.splat_pixels.numel())
        rows = torch.cat(
            [lattices[0].splat_rows[:1]]
            + [lat.splat_rows[1:] + s for lat, s in zip(lattices, shifts)]
        )  # (total+1,)
        pixels = torch.cat([lat.splat_pixels for lat in lattices])
        values = torch.cat(
            [(lat.weights * a[:, None]).flatten()[lat.splat_entries]
             for lat, a in zip(lattices, scale_in)]
        )
        self.splat = _csr(rows, pixels, values, (total, n))

        # slice (N, total): each pixel reads its d_k+1 vertices in every lattice, values α_k·w·b_k
        cols = torch.cat([lat.offsets + f for lat, f in zip(lattices, first)], 1)  # (N, width)
        width = cols.shape[1]
        values = torch.cat(
            [lat.weights * (lat.alpha * b)[:, None] for lat, b in zip(lattices, scale_out)], 1
        )
        rows = torch.arange(0, n * width + 1, width, dtype=_INDEX, device=device)
        self.slice = _csr(rows, cols.flatten().to(_INDEX), values.flatten(), (n, total))

        # The blur along one direction is I + ½(lower + upper neighbour). Each lattice's
        # neighbour lists are shifted to its rows; a lattice with fewer directions gets none
        # along the extra ones. "total" stands for "no such vertex".
        directions = []
        for j in range(max(lat.dim for lat in lattices) + 1):
            parts = []
            for lat, f in zip(lattices, first):
                nb = lat.neighbours[j] if j <= lat.dim else torch.full_like(lat.neighbours[0], -1)
                parts.append(torch.where((nb == lat.num_vertices) | (nb < 0), total, nb + f))
            parts.append(torch.full((2, 1), total, device=device))  # "none" has no neighbours
            directions.append(torch.cat(parts, 1))  # (2, total+1)
        none = torch.full_like(directions[0], total)
        self.blur = [
            _blur_pair(directions[j], directions[j + 1] if j + 1 < len(directions) else none)
            for j in range(0, len(directions), 2)
        ]

    def __call__(self, values: Tensor, out: Tensor | None = None) -> Tensor:
        """Filter ``values`` (N, C) float32; returns (N, C), written into ``out`` if given."""
        lattice_values = self.splat @ values  # (total, C)
        spare = torch.empty_like(lattice_values)
        for blur in self.blur:
            torch.mm(blur, lattice_values, out=spare)
            lattice_values, spare = spare, lattice_values
        if out is None:
            return self.slice @ lattice_values  # (N, C)
        return torch.mm(self.slice, lattice_values, out=out)
