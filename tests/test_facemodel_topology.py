"""Topology utilities on hand-made meshes whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from mmface4d_datasets.facemodel.topology import adjacency, edges, laplacian, vertex_normals, vertex_triangles

# A unit square split along its diagonal, in the z = 0 plane, counter-clockwise seen from +z.
SQUARE = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
SQUARE_TRIANGLES = np.array([[0, 1, 2], [0, 2, 3]])


def _grid(n=6):
    """An n x n vertex grid on the unit square, two triangles per cell."""
    ys, xs = np.mgrid[0:n, 0:n] / (n - 1)
    vertices = np.stack([xs.ravel(), ys.ravel(), np.zeros(n * n)], axis=1)
    triangles = []
    for r in range(n - 1):
        for c in range(n - 1):
            a, b, d, e = r * n + c, r * n + c + 1, (r + 1) * n + c, (r + 1) * n + c + 1
            triangles += [[a, b, e], [a, e, d]]
    return vertices, np.array(triangles)


def test_edges_are_unique_sorted_and_order_free():
    expected = np.array([[0, 1], [0, 2], [0, 3], [1, 2], [2, 3]])
    assert np.array_equal(edges(SQUARE_TRIANGLES), expected)
    assert np.array_equal(edges(SQUARE_TRIANGLES[::-1][:, [2, 1, 0]]), expected)
    assert edges(np.zeros((0, 3), dtype=int)).shape == (0, 2)


def test_adjacency_is_symmetric_with_vertex_degrees():
    matrix = adjacency(SQUARE_TRIANGLES, 5)  # vertex 4 is in no triangle
    assert matrix.shape == (5, 5) and (matrix != matrix.T).nnz == 0
    assert np.array_equal(np.asarray(matrix.sum(axis=1)).ravel(), [3, 2, 3, 2, 0])


@pytest.mark.parametrize("kind", ["uniform", "cotangent"])
def test_laplacians_kill_constants_and_are_positive_semidefinite(kind):
    vertices, triangles = _grid()
    lap = laplacian(triangles, len(vertices), kind=kind, vertices=vertices)
    assert np.allclose(lap @ np.ones(len(vertices)), 0.0)
    assert (lap != lap.T).nnz == 0
    assert np.linalg.eigvalsh(lap.toarray()).min() > -1e-9


def test_cotangent_laplacian_is_exact_for_linear_fields_inside():
    vertices, triangles = _grid()
    lap = laplacian(triangles, len(vertices), kind="cotangent", vertices=vertices)
    field = 2.0 * vertices[:, 0] - 3.0 * vertices[:, 1]
    interior = (vertices[:, 0] > 0) & (vertices[:, 0] < 1) & (vertices[:, 1] > 0) & (vertices[:, 1] < 1)
    assert np.allclose((lap @ field)[interior], 0.0, atol=1e-12)
    # on the right-angled diagonal split, an edge's weight is (cot a + cot b) / 2: 1 for grid edges
    square = laplacian(SQUARE_TRIANGLES, 4, kind="cotangent", vertices=SQUARE).toarray()
    assert square[0, 1] == pytest.approx(-0.5) and square[0, 2] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="vertex positions"):
        laplacian(triangles, len(vertices), kind="cotangent")
    with pytest.raises(ValueError, match="unknown Laplacian"):
        laplacian(triangles, len(vertices), kind="spectral")


def test_vertex_normals_point_out_and_batch():
    normals = vertex_normals(SQUARE.astype(np.float32), SQUARE_TRIANGLES)
    assert normals.dtype == np.float32 and np.allclose(normals, [0, 0, 1])
    # a rotated copy in a batch gives the rotated normals
    rotation = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=float)
    batch = np.stack([SQUARE, SQUARE @ rotation.T])
    out = vertex_normals(batch, SQUARE_TRIANGLES)
    assert out.shape == (2, 4, 3) and np.allclose(out[1], [0, -1, 0])
    # a vertex in no triangle gets the zero vector
    lonely = np.concatenate([SQUARE, [[5.0, 5.0, 5.0]]])
    assert np.allclose(vertex_normals(lonely, SQUARE_TRIANGLES)[4], 0.0)


def test_vertex_triangles_list_each_vertex_s_triangles():
    table = vertex_triangles(SQUARE_TRIANGLES, 5)
    assert table.shape == (5, 2)
    assert table.tolist() == [[0, 1], [0, -1], [0, 1], [1, -1], [-1, -1]]
