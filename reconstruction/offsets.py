"""Stage 3: per-vertex offsets on top of the model fit, one sparse factorisation per take.

Offsets ``d`` (N, 3) metres minimise

    sum_v c ||d_v - tau_v||^2 + w_lap ||L d||^2 + w_edge sum_(i,j) ||d_i - d_j||^2 + w_off ||d||^2

where ``tau_v = -r_v n_v`` moves vertex v along its normal onto the registered depth (``r_v`` the
mean point-to-plane distance over the cameras that see it, kept under ``gate``; 0 where no camera
sees it), ``L`` the uniform Laplacian ``I - D^-1 W`` (smoothness: the authors' Laplacian term) and
the edge sum keeps the offsets' edge vectors, i.e. the mesh's edge directions, those of the model
(the authors' edge-direction term). The data weight ``c`` is the same for every vertex, so the
matrix ``A = (c + w_off) I + w_lap L^T L + w_edge (D - W)`` depends on the topology only: it is
factorised once (cholespy when installed, else scipy's ``splu``) and each frame costs one
triangular solve with three right-hand sides.
"""

from __future__ import annotations

import numpy as np

#: Default weights (data term per vertex, in units where a metre of offset squared costs 1).
DATA, LAPLACIAN, EDGE, OFFSET = 1.0, 20.0, 2.0, 0.01
#: Largest |point-to-plane distance| (metres) a depth sample may pull a vertex by.
GATE = 0.003


class OffsetSolver:
    """Factorised stage-3 system of one topology and weight set."""

    def __init__(self, triangles, num_vertices: int, *, data=DATA, laplacian=LAPLACIAN, edge=EDGE, offset=OFFSET):
        from scipy import sparse

        from mmface4d_datasets.facemodel.topology import adjacency

        W = adjacency(triangles, num_vertices)
        deg = np.asarray(W.sum(1)).ravel()
        deg[deg == 0] = 1
        L = sparse.identity(num_vertices, format="csr") - sparse.diags(1 / deg) @ W
        G = sparse.diags(np.asarray(W.sum(1)).ravel()) - W
        A = ((data + offset) * sparse.identity(num_vertices) + laplacian * (L.T @ L) + edge * G).tocsc()
        self.data = data
        self.num_vertices = num_vertices
        self.backend = None
        try:
            from cholespy import CholeskySolverD, MatrixType

            A = A.tocoo()
            self._chol = CholeskySolverD(
                num_vertices, A.row.astype(np.int32), A.col.astype(np.int32), A.data.astype(np.float64), MatrixType.COO
            )
            self.backend = "cholespy"
        except ImportError:
            from scipy.sparse.linalg import splu

            self._lu = splu(A)
            self.backend = "scipy.splu"

    def solve(self, targets: np.ndarray) -> np.ndarray:
        """Offsets (N, 3) for per-vertex targets ``tau`` (N, 3) (zeros where unobserved)."""
        b = np.ascontiguousarray(self.data * targets, dtype=np.float64)
        if self.backend == "cholespy":
            x = np.zeros_like(b)
            self._chol.solve(b, x)
            return x
        return self._lu.solve(b)


def offset_targets(views, X: np.ndarray, normals: np.ndarray, ids: np.ndarray, gate: float = GATE):
    """Targets ``tau`` (N, 3) and the observed mask (N,) for the vertices ``ids`` (see the module
    docstring), from projective association with every view's registered depth."""
    from reconstruction.fitting import associate

    total = np.zeros(len(X))
    count = np.zeros(len(X))
    for v in views:
        ok_ids, p_ref = associate(v, X, normals, ids, gate)
        r = ((X[ok_ids] - p_ref) * normals[ok_ids]).sum(1)
        np.add.at(total, ok_ids, r)
        np.add.at(count, ok_ids, 1)
    observed = count > 0
    tau = np.zeros_like(X)
    tau[observed] = -(total[observed] / count[observed])[:, None] * normals[observed]
    return tau, observed


_SOLVERS: dict = {}


def offset_solver(model) -> OffsetSolver:
    """The factorised stage-3 system of ``model``'s topology with the default weights, made once per
    process (the matrix depends on the topology only, so every take of a topology shares it)."""
    key = (model.topology, model.num_vertices, DATA, LAPLACIAN, EDGE, OFFSET)
    if key not in _SOLVERS:
        if len(_SOLVERS) >= 4:
            _SOLVERS.pop(next(iter(_SOLVERS)))
        _SOLVERS[key] = OffsetSolver(model.triangles, model.num_vertices, data=DATA, laplacian=LAPLACIAN, edge=EDGE, offset=OFFSET)
    return _SOLVERS[key]
