"""Topology utilities for triangle meshes: edges, adjacency, Laplacians, normals.

Every function takes ``triangles`` as an (F, 3) integer array of 0-based vertex ids. None of
them needs the vertex positions except the cotangent Laplacian and the normals, so the masks
and graphs built on them work for licence-gated topologies without their geometry.
"""

from __future__ import annotations

import numpy as np

__all__ = ["edges", "adjacency", "laplacian", "vertex_normals", "vertex_triangles", "check_triangles"]


def check_triangles(triangles, num_vertices: int, *, where: str = "triangles") -> np.ndarray:
    """Return ``triangles`` as a C-contiguous (F, 3) int64 array, or raise ``ValueError``.

    ``where`` names the source (a file, a topology name) in the message. Ids must lie in
    ``[0, num_vertices)``.
    """
    tri = np.ascontiguousarray(np.asarray(triangles), dtype=np.int64)
    if tri.ndim != 2 or tri.shape[1] != 3:
        raise ValueError(f"{where}: expected an (F, 3) triangle array, found shape {tri.shape}")
    if tri.size and (tri.min() < 0 or tri.max() >= num_vertices):
        raise ValueError(f"{where}: triangle vertex ids must lie in [0, {num_vertices}), found {tri.min()} .. {tri.max()}")
    return tri


def edges(triangles) -> np.ndarray:
    """Unique undirected edges of a triangle mesh.

    Returns an (E, 2) int64 array with ``edge[:, 0] < edge[:, 1]``, sorted lexicographically, so
    the result depends only on the set of triangles (not on their order or orientation).
    An empty triangle array gives an empty (0, 2) array.
    """
    tri = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    pairs = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]], axis=0)
    pairs.sort(axis=1)
    if len(pairs) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(pairs, axis=0)


def boundary_vertices(triangles, num_vertices: int) -> np.ndarray:
    """Boolean mask (N,) of the vertices on the mesh's boundary (on an edge that only one triangle has)."""
    tri = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    pairs = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]], axis=0), axis=1)
    mask = np.zeros(num_vertices, dtype=bool)
    if len(pairs):
        unique, count = np.unique(pairs, axis=0, return_counts=True)
        mask[unique[count == 1].ravel()] = True
    return mask


def farthest_points(points, count: int, start: int = 0) -> np.ndarray:
    """(K,) int64 ids of points (N, 3) by farthest-point sampling: ``start`` first, then repeatedly the
    point farthest (Euclidean) from every one chosen so far (the first such on ties); K = min(count,
    number of distinct points)."""
    points = np.asarray(points, dtype=np.float64)
    count = max(1, min(int(count), len(points)))
    chosen = [int(start)]
    nearest = np.linalg.norm(points - points[start], axis=1)
    for _ in range(count - 1):
        if nearest.max() <= 0:  # fewer distinct points than asked for
            break
        chosen.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return np.asarray(chosen, dtype=np.int64)


def adjacency(triangles, num_vertices: int):
    """Symmetric vertex adjacency matrix (scipy CSR, float64, 1.0 per edge, zero diagonal).

    ``num_vertices`` fixes the matrix size so that vertices used by no triangle are rows of zeros.
    """
    from scipy import sparse

    e = edges(triangles)
    rows = np.concatenate([e[:, 0], e[:, 1]])
    cols = np.concatenate([e[:, 1], e[:, 0]])
    data = np.ones(len(rows), dtype=np.float64)
    return sparse.csr_matrix((data, (rows, cols)), shape=(num_vertices, num_vertices))


def laplacian(triangles, num_vertices: int, *, kind: str = "uniform", vertices=None):
    """Graph Laplacian ``L = D - W`` as a scipy CSR matrix (float64, positive semi-definite).

    ``kind="uniform"``: ``W`` is the adjacency (1 per edge), ``D`` the vertex degrees.
    ``kind="cotangent"``: ``W[i, j] = (cot a + cot b) / 2`` over the angles opposite edge (i, j)
    in its one or two triangles (needs ``vertices``, (N, 3), any length unit); boundary edges
    have one term. Rows of ``L`` sum to zero, so ``L @ x`` of a constant field is zero.
    Degenerate triangles (zero area) contribute nothing rather than infinities.
    """
    from scipy import sparse

    if kind == "uniform":
        weights = adjacency(triangles, num_vertices)
    elif kind == "cotangent":
        if vertices is None:
            raise ValueError("laplacian(kind='cotangent') needs the vertex positions")
        v = np.asarray(vertices, dtype=np.float64)
        tri = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
        rows, cols, vals = [], [], []
        for k in range(3):
            # The angle at corner k is opposite the edge (k+1, k+2).
            i, j, o = tri[:, (k + 1) % 3], tri[:, (k + 2) % 3], tri[:, k]
            a, b = v[i] - v[o], v[j] - v[o]
            cross = np.linalg.norm(np.cross(a, b), axis=1)
            dot = np.einsum("ij,ij->i", a, b)
            cot = np.divide(dot, cross, out=np.zeros_like(dot), where=cross > 1e-30)
            rows += [i, j]
            cols += [j, i]
            vals += [0.5 * cot, 0.5 * cot]
        weights = sparse.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(num_vertices, num_vertices),
        )
    else:
        raise ValueError(f"unknown Laplacian kind {kind!r}; use 'uniform' or 'cotangent'")
    degree = np.asarray(weights.sum(axis=1)).ravel()
    return (sparse.diags(degree) - weights).tocsr()


def vertex_normals(vertices, triangles) -> np.ndarray:
    """Unit vertex normals: the area-weighted sum of the adjacent triangles' normals, normalised.

    ``vertices`` is (..., N, 3) (leading batch dims allowed); the result has the same shape and
    dtype float32 for float32 input (float64 otherwise). Triangles are taken counter-clockwise
    seen from outside, so on our face models the normals point out of the face (+z). A vertex in
    no triangle, or whose triangles cancel, gets the zero vector.
    """
    v = np.asarray(vertices)
    out_dtype = np.float32 if v.dtype == np.float32 else np.float64
    v = v.astype(np.float64, copy=False)
    tri = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    a, b, c = v[..., tri[:, 0], :], v[..., tri[:, 1], :], v[..., tri[:, 2], :]
    face_normals = np.cross(b - a, c - a)  # length = twice the area: area weighting for free
    # Scatter-add each triangle's normal to its three corners through a sparse incidence matrix
    # (one product handles any number of leading batch dimensions).
    from scipy import sparse

    num_vertices = v.shape[-2]
    incidence = sparse.csr_matrix(
        (np.ones(3 * len(tri)), (tri.T.ravel(), np.tile(np.arange(len(tri)), 3))),
        shape=(num_vertices, len(tri)),
    )
    flat = np.moveaxis(face_normals, -2, 0).reshape(len(tri), -1)
    normals = np.moveaxis((incidence @ flat).reshape((num_vertices,) + v.shape[:-2] + (3,)), 0, -2)
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)
    return normals.astype(out_dtype)


def vertex_triangles(triangles, num_vertices: int) -> np.ndarray:
    """Per-vertex triangle lists as a padded (N, K) int64 array.

    Row ``v`` lists, in increasing order, the ids of the triangles that use vertex ``v``;
    K is the largest such count and the rest of a row is padded with -1 (so indexing an (F + 1)-row
    array of triangle values whose last row is zero sums only real triangles). A vertex in no
    triangle has a row of -1.
    """
    tri = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    vertex_ids = tri.ravel()
    triangle_ids = np.repeat(np.arange(len(tri), dtype=np.int64), 3)
    order = np.lexsort((triangle_ids, vertex_ids))
    vertex_ids, triangle_ids = vertex_ids[order], triangle_ids[order]
    counts = np.bincount(vertex_ids, minlength=num_vertices)
    width = int(counts.max()) if len(counts) else 0
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(vertex_ids)) - starts[vertex_ids]
    table = np.full((num_vertices, width), -1, dtype=np.int64)
    table[vertex_ids, slot] = triangle_ids
    return table
