"""Triangle rasterisation into a :class:`~mmface4d_datasets.camera.Camera`: depth, triangle ids, barycentrics.

How it works (docs/render.md has the measurements):

- Vertices go to the camera frame and onto the normalised image plane by the pinhole division
  ``(X/Z, Y/Z)``. There a triangle's image is exactly a straight-edged triangle, and ``1/Z`` and
  ``attribute/Z`` are exactly linear, so the rasteriser tests coverage, interpolates depth and
  computes perspective-correct barycentrics on that plane.
- Each pixel centre (DESIGN.md: pixel (i, j)'s centre at (i, j)) is taken onto the same plane by
  the inverse of the camera matrix and, with lens distortion, by the iterative undistortion of the
  Kinect model (a per-camera map computed once and cached). Distortion is therefore applied exactly
  per pixel, not approximated by bending straight edges; the lens model only enters the choice of
  candidate pixels, through each triangle's pixel bounding box from its distorted vertices, padded
  by :data:`BBOX_PAD` pixels.
- No cracks: the edge function of an edge shared by two triangles is computed once from its two
  vertices in a canonical order (lower vertex index first) and negated for the other triangle, so
  a pixel centre is never outside both; a centre exactly on the edge is inside both and the depth
  test picks one.
- Back faces (seen from behind: counter-clockwise triangles whose outside faces away) and
  triangles with a vertex closer than :data:`NEAR` are dropped; the nearest remaining surface wins
  each pixel, ties to the lower triangle id.

numpy only. The ``numba`` back end (the ``viz`` extra) runs the same arithmetic in a compiled loop
and gives the same triangle per pixel and depths equal to float32 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmface4d_datasets.camera import Camera
from mmface4d_datasets.errors import MMFace4DError

#: Triangles with a vertex nearer than this (metres) to the camera plane are not drawn.
NEAR = 1e-3
#: Pixels added around each triangle's bounding box (covers the bending of edges by the lens).
BBOX_PAD = 0.05
#: Candidate pixels processed at once by the numpy back end (bounds its memory).
CHUNK = 1 << 21


class RenderError(MMFace4DError):
    """A mesh or camera that cannot be rendered (named)."""


@dataclass(frozen=True, eq=False)
class Fragments:
    """Per-pixel results of one view: ``depth`` (H, W) float32 millimetres along the optical axis,
    0 where nothing is seen; ``triangle`` (H, W) int32, -1 where nothing is seen; ``barycentric``
    (H, W, 3) float32 perspective-correct weights of the triangle's three vertices (0 elsewhere)."""

    depth: np.ndarray
    triangle: np.ndarray
    barycentric: np.ndarray
    #: (4,) int64 u0, u1, v0, v1 bounds of the covered pixels where known (the numba back end)
    extent: np.ndarray | None = None

    @property
    def mask(self) -> np.ndarray:
        return self.triangle >= 0


def check_mesh(vertices, triangles, what: str = "mesh") -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert: vertices (N, 3) finite, triangles (F, 3) integer indices into them."""
    vertices = np.asarray(vertices)
    triangles = np.asarray(triangles)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise RenderError(f"{what}: vertices must have shape (N, 3), found {vertices.shape}")
    if triangles.ndim != 2 or triangles.shape[1] != 3 or triangles.dtype.kind not in "iu":
        raise RenderError(f"{what}: triangles must be an integer (F, 3) array, found {triangles.dtype} {triangles.shape}")
    if len(triangles) and (triangles.min() < 0 or triangles.max() >= len(vertices)):
        raise RenderError(
            f"{what}: triangles index vertices 0..{int(triangles.max())} but there are "
            f"{len(vertices)} vertices (vertex count does not match the triangles)"
        )
    if not np.isfinite(vertices).all():
        bad = int((~np.isfinite(vertices).all(axis=1)).sum())
        raise RenderError(f"{what}: {bad} vertices are NaN or infinite")
    return vertices, triangles.astype(np.int64, copy=False)


# ------------------------------------------------------------------------ per-camera pixel rays
_RAY_CACHE: dict = {}


def _camera_key(camera: Camera) -> bytes:
    dist = b"" if camera.distortion is None else camera.distortion.tobytes()
    return camera.intrinsics.tobytes() + dist + np.array([camera.width, camera.height, camera.metric_radius]).tobytes()


def pixel_rays(camera: Camera) -> np.ndarray | None:
    """(H * W, 2) float64 undistorted normalised coordinates of every pixel centre (NaN where the
    lens model is not valid), or None for a camera without distortion (computed on the fly)."""
    if camera.distortion is None:
        return None
    key = _camera_key(camera)
    rays = _RAY_CACHE.get(key)
    if rays is None:
        jj, ii = np.mgrid[0 : camera.height, 0 : camera.width]
        pixels = np.stack([ii.ravel(), jj.ravel()], axis=1).astype(np.float64)
        rays = camera.undistort(camera.normalised_from_pixels(pixels))
        rays[~camera.in_model_range(rays)] = np.nan
        if len(_RAY_CACHE) >= 8:
            _RAY_CACHE.pop(next(iter(_RAY_CACHE)))
        _RAY_CACHE[key] = rays
    return rays


# ------------------------------------------------------------------------ per-triangle set-up
@dataclass(frozen=True, eq=False)
class _Setup:
    tri_index: np.ndarray  # (M,) ids of the drawable triangles
    edges: np.ndarray  # (M, 3, 3) edge-function coefficients A, B, C (w = A x + B y + C), one row per vertex
    inv_z: np.ndarray  # (M, 3) 1 / Z of the triangle's vertices
    box: np.ndarray  # (M, 4) int64 u0, u1, v0, v1 inclusive pixel bounds


def _setup(vertices_cam: np.ndarray, triangles: np.ndarray, camera: Camera) -> _Setup:
    z = np.ascontiguousarray(vertices_cam[:, 2])
    ok_vertex = z > NEAR
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = vertices_cam[:, :2] / z[:, None]
    xy[~ok_vertex] = np.nan
    uv = camera.pixels_from_normalised(camera.distort(xy))
    uv[~camera.in_model_range(xy)] = np.nan
    x, y = np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1])
    u, v = np.ascontiguousarray(uv[:, 0]), np.ascontiguousarray(uv[:, 1])

    a, b, c = (np.ascontiguousarray(triangles[:, k]) for k in range(3))
    xa, ya, xb, yb, xc, yc = x[a], y[a], x[b], y[b], x[c], y[c]
    # twice the signed area on the normalised plane; < 0 for a triangle whose outside faces the camera
    area = (xb - xa) * (yc - ya) - (yb - ya) * (xc - xa)
    ua, ub, uc, va, vb, vc = u[a], u[b], u[c], v[a], v[b], v[c]
    umin, umax = np.minimum(np.minimum(ua, ub), uc), np.maximum(np.maximum(ua, ub), uc)
    vmin, vmax = np.minimum(np.minimum(va, vb), vc), np.maximum(np.maximum(va, vb), vc)
    with np.errstate(invalid="ignore"):
        keep = area < 0  # NaN (a vertex behind the camera or off the lens model) compares False
        keep &= (umax >= -BBOX_PAD) & (vmax >= -BBOX_PAD)
        keep &= (umin <= camera.width - 1 + BBOX_PAD) & (vmin <= camera.height - 1 + BBOX_PAD)
        keep &= np.isfinite(umin + umax + vmin + vmax)
    idx = np.flatnonzero(keep)
    u0 = np.maximum(np.ceil(umin[idx] - BBOX_PAD), 0).astype(np.int64)
    u1 = np.minimum(np.floor(umax[idx] + BBOX_PAD), camera.width - 1).astype(np.int64)
    v0 = np.maximum(np.ceil(vmin[idx] - BBOX_PAD), 0).astype(np.int64)
    v1 = np.minimum(np.floor(vmax[idx] + BBOX_PAD), camera.height - 1).astype(np.int64)
    nonempty = (u1 >= u0) & (v1 >= v0)
    idx, u0, u1, v0, v1 = idx[nonempty], u0[nonempty], u1[nonempty], v0[nonempty], v1[nonempty]

    corners = (a[idx], b[idx], c[idx])
    edges = np.empty((len(idx), 3, 3))
    for k in range(3):  # edge opposite vertex k runs from vertex k+1 to vertex k+2
        i, j = corners[(k + 1) % 3], corners[(k + 2) % 3]
        flip = i > j
        lo, hi = np.where(flip, j, i), np.where(flip, i, j)
        xi, yi, xj, yj = x[lo], y[lo], x[hi], y[hi]
        A, B, C = -(yj - yi), (xj - xi), (yj - yi) * xi - (xj - xi) * yi
        sign = np.where(flip, -1.0, 1.0)
        edges[:, k, 0], edges[:, k, 1], edges[:, k, 2] = sign * A, sign * B, sign * C
    inv_z = np.stack([1.0 / z[corners[0]], 1.0 / z[corners[1]], 1.0 / z[corners[2]]], axis=1)
    return _Setup(idx, edges, inv_z, np.stack([u0, u1, v0, v1], axis=1))


# ------------------------------------------------------------------------ numpy back end
def _candidates(box: np.ndarray, counts: np.ndarray, lo: int, hi: int):
    box = box[lo:hi]
    n = counts[lo:hi]
    total = int(n.sum())
    t = np.repeat(np.arange(lo, hi), n)
    local = np.arange(total) - np.repeat(np.cumsum(n) - n, n)
    width = np.repeat(box[:, 1] - box[:, 0] + 1, n)
    row = local // width
    px = np.repeat(box[:, 0], n) + (local - row * width)
    py = np.repeat(box[:, 2], n) + row
    return t, px, py


def _rasterize_numpy(setup: _Setup, camera: Camera, rays):
    W, H = camera.width, camera.height
    box = setup.box
    counts = (box[:, 1] - box[:, 0] + 1) * (box[:, 3] - box[:, 2] + 1)
    K = camera.intrinsics
    coef = [np.ascontiguousarray(setup.edges[:, k, m]) for k in range(3) for m in range(3)]
    inv_z = [np.ascontiguousarray(setup.inv_z[:, k]) for k in range(3)]
    pieces = []
    cumulative = np.cumsum(counts)
    lo = 0
    while lo < len(counts):
        base = cumulative[lo - 1] if lo else 0
        hi = max(int(np.searchsorted(cumulative, base + CHUNK, side="right")), lo + 1)
        t, px, py = _candidates(box, counts, lo, hi)
        lo = hi
        pix = py * W + px
        if rays is None:  # the numba kernel computes the same products
            qy = (py - K[1, 2]) * (1.0 / K[1, 1])
            qx = (px - K[0, 2] - K[0, 1] * qy) * (1.0 / K[0, 0])
        else:
            qx, qy = rays[pix, 0], rays[pix, 1]
        w = []
        for k in range(3):  # test one edge at a time, keeping only the candidates still inside
            wk = coef[3 * k][t] * qx + coef[3 * k + 1][t] * qy + coef[3 * k + 2][t]
            keep = wk <= 0  # NaN rays compare False
            t, pix, qx, qy = t[keep], pix[keep], qx[keep], qy[keep]
            w = [prev[keep] for prev in w] + [wk[keep]]
        if not len(t):
            continue
        total = (w[0] + w[1]) + w[2]
        a0, a1, a2 = (w[k] / total * inv_z[k][t] for k in range(3))
        depth = 1.0 / ((a0 + a1) + a2)
        pieces.append((pix, depth, t, np.stack([a0 * depth, a1 * depth, a2 * depth], axis=1)))
    return _resolve(pieces, setup, W, H)


def _resolve(pieces, setup: _Setup, W: int, H: int) -> Fragments:
    """The z-buffer: per pixel the nearest candidate, ties to the lower triangle."""
    depth_img = np.zeros(H * W, np.float32)
    tri_img = np.full(H * W, -1, np.int32)
    bary_img = np.zeros((H * W, 3), np.float32)
    if pieces:
        pix = np.concatenate([p[0] for p in pieces])
        depth = np.concatenate([p[1] for p in pieces])
        t = np.concatenate([p[2] for p in pieces])
        zbuf = np.full(H * W, np.inf)
        np.minimum.at(zbuf, pix, depth)
        win = np.flatnonzero(depth == zbuf[pix])
        tbuf = np.full(H * W, np.iinfo(np.int64).max)
        np.minimum.at(tbuf, pix[win], t[win])
        win = win[t[win] == tbuf[pix[win]]]
        bary = np.concatenate([p[3] for p in pieces]) if len(pieces) > 1 else pieces[0][3]
        depth_img[pix[win]] = depth[win] * 1000.0
        tri_img[pix[win]] = setup.tri_index[t[win]]
        bary_img[pix[win]] = bary[win]
    return Fragments(depth_img.reshape(H, W), tri_img.reshape(H, W), bary_img.reshape(H, W, 3))


# ------------------------------------------------------------------------ entry point
BACKENDS = ("auto", "numpy", "numba")


def available_backends() -> list[str]:
    """Back ends usable here: always "numpy"; "numba" when the ``viz`` extra is installed."""
    from mmface4d_datasets.render import _numba

    return ["numpy"] + (["numba"] if _numba.available() else [])


def rasterize(
    vertices,
    triangles,
    camera: Camera,
    *,
    frame: str = "reference",
    backend: str = "auto",
    checked: bool = False,
    out: Fragments | None = None,
) -> Fragments:
    """Rasterise one triangle mesh into ``camera``.

    ``vertices`` (N, 3) metres in camera 1's frame (``frame="reference"``, through the camera's
    extrinsics) or in the camera's own (``frame="camera"``); ``triangles`` (F, 3) vertex indices,
    counter-clockwise seen from outside. ``backend``: "numpy", "numba" (the ``viz`` extra) or
    "auto" (numba when installed). ``checked=True`` skips the input validation (the caller did it).
    ``out``: Fragments of an earlier call with the same camera size, overwritten in place (the numba
    back end only clears what was drawn before, which saves allocating full images per frame).
    Returns :class:`Fragments`. Raises :class:`RenderError` for NaN/Inf vertices or triangles that
    index missing vertices.
    """
    if not checked:
        vertices, triangles = check_mesh(vertices, triangles)
    if backend not in BACKENDS:
        raise RenderError(f"unknown render back end {backend!r}; choose from {', '.join(BACKENDS)}")
    from mmface4d_datasets.render import _numba

    if backend == "auto":
        backend = "numba" if _numba.available() else "numpy"
    if backend == "numba" and not _numba.available():
        raise RenderError("the numba back end needs the viz extra: pip install 'mmface4d-datasets[viz]'")
    vertices_cam = camera._in_camera_frame(vertices, frame)
    rays = pixel_rays(camera)
    if backend == "numba":
        return _numba.rasterize(vertices_cam, triangles, camera, rays, NEAR, BBOX_PAD, out)
    setup = _setup(vertices_cam, np.asarray(triangles, dtype=np.int64), camera)
    return _rasterize_numpy(setup, camera, rays)


def rasterize_views(
    vertices,
    triangles,
    cameras,
    *,
    frame: str = "reference",
    backend: str = "auto",
    threads: int | None = None,
    out: list[Fragments] | None = None,
) -> list[Fragments]:
    """:func:`rasterize` of one mesh into several cameras; with the numba back end (which releases
    the GIL) the views run in ``threads`` threads (default: one per view, at most the CPU count)."""
    import os

    vertices, triangles = check_mesh(vertices, triangles)
    from mmface4d_datasets.render import _numba

    if backend == "auto":
        backend = "numba" if _numba.available() else "numpy"
    threads = min(len(cameras), threads or os.cpu_count() or 1)
    outs = out if out is not None else [None] * len(cameras)

    def one(k):
        return rasterize(vertices, triangles, cameras[k], frame=frame, backend=backend, checked=True, out=outs[k])

    if backend != "numba" or threads <= 1:
        return [one(k) for k in range(len(cameras))]
    return list(_pool(threads).map(one, range(len(cameras))))


_POOLS: dict = {}


def _pool(threads: int):
    """A lasting thread pool per size (its threads keep their z-buffers between frames)."""
    if threads not in _POOLS:
        from concurrent.futures import ThreadPoolExecutor

        _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="mmface4d-render")
    return _POOLS[threads]
