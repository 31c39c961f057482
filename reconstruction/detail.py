"""A prior for the shape a face model cannot express: smooth offsets along the mean face's normals.

No linear face model spans a real face: what is left (skin folds, the shape of the brow ridge and
the cheeks, about a millimetre at wavelengths of centimetres) is seen by the depth camera as
point-to-plane residuals that are smooth over the face, i.e. strongly correlated. Fitting only the
model's modes to such residuals as if they were independent noise lets the modes slide the surface
along itself by many millimetres to shave a fraction of a millimetre off the normal residual (the
depth sees motion along the surface only through curvature). Modelling that shape instead of
ignoring it is the remedy: the fit gets extra unknowns, ``z``, with

    offset(v) = n_v sum_k z_k phi_k(v),   z ~ N(0, I),

where ``phi`` is a low-rank (Nystroem) factor of a Gaussian process over the mean face's vertex
positions, squared-exponential covariance with standard deviation ``sd`` and correlation length
``length``: ``phi = sd K(X, Z) K(Z, Z)^-1/2`` for ``count`` inducing points ``Z`` spread over the face
by farthest-point sampling. The energy then decides, MAP style, whether a smooth normal residual
is explained by the model's modes (at their prior's price) or by the detail (at its own), which is
generalised least squares for correlated residuals.

The basis depends on the topology's mean shape only (no data), so it is built once per model.
"""

from __future__ import annotations

import numpy as np

#: Standard deviation (metres) and correlation length (metres) of the detail prior, and the number
#: of inducing points: a millimetre or two at centimetre scales is what a 3DMM misses on real faces
#: (BFM fits to face scans leave 1-2 mm RMS); 400 points cover a face at about the length's spacing.
#: Chosen on simulator takes of seeds 33 and 44 (docs/reconstruction.md, "Choosing the detail
#: prior"): 1.5 mm / 7 mm / 400 against 1 mm / 15 mm / 160 lowered the face mean from 2.3 to 1.4 mm.
DETAIL_SD_M = 0.0015
DETAIL_LENGTH_M = 0.007
DETAIL_COUNT = 400
#: The per-frame part (what an expression changes beyond the model's expression modes) gets a
#: coarser basis: it is fitted in every tracked frame, where each mode costs time.
FRAME_DETAIL_LENGTH_M = 0.012
FRAME_DETAIL_COUNT = 120


def detail_basis(
    mean: np.ndarray, normals: np.ndarray, *, count: int = DETAIL_COUNT, sd: float = DETAIL_SD_M, length: float = DETAIL_LENGTH_M
) -> np.ndarray:
    """(count, N, 3) float32 detail modes of the mean shape ``mean`` (N, 3) with unit ``normals``
    (N, 3), scaled so that their coefficients have a standard normal prior (module docstring)."""
    from mmface4d_datasets.facemodel.topology import farthest_points

    mean = np.asarray(mean, np.float64)
    centres = mean[farthest_points(mean, count, start=int(np.argmin(mean[:, 1])))]

    def kernel(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * length * length))

    Kzz = kernel(centres, centres)
    w, U = np.linalg.eigh(Kzz + 1e-6 * np.eye(len(centres)))
    keep = w > 1e-6 * w.max()
    inv_sqrt = (U[:, keep] / np.sqrt(w[keep])) @ U[:, keep].T
    phi = kernel(mean, centres) @ inv_sqrt * sd  # (N, count): covariance sd^2 K(X,Z) K(Z,Z)^-1 K(Z,X)
    return np.ascontiguousarray((phi.T[:, :, None] * np.asarray(normals, np.float64)[None]).astype(np.float32))


_BASES: dict = {}


def model_detail_basis(model, per_frame: bool = False) -> np.ndarray:
    """:func:`detail_basis` of ``model``'s mean shape with the default prior (``per_frame``: the
    coarser per-frame basis, unit prior sd), made once per process."""
    count, length = (FRAME_DETAIL_COUNT, FRAME_DETAIL_LENGTH_M) if per_frame else (DETAIL_COUNT, DETAIL_LENGTH_M)
    sd = 1.0 if per_frame else DETAIL_SD_M
    key = (model.topology, model.num_vertices, count, length, sd)
    if key not in _BASES:
        from mmface4d_datasets.facemodel.topology import vertex_normals

        if len(_BASES) >= 8:
            _BASES.pop(next(iter(_BASES)))
        mean = np.asarray(model.mean, np.float64)
        normals = vertex_normals(mean, np.asarray(model.triangles))
        _BASES[key] = detail_basis(mean, normals, count=count, sd=sd, length=length)
    return _BASES[key]
