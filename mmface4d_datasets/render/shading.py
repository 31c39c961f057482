"""Colour images from :class:`~mmface4d_datasets.render.raster.Fragments`: Lambert plus ambient
with per-vertex colours, region colours or a texture; and 2-D landmarks with their visibility."""

from __future__ import annotations

import numpy as np

from mmface4d_datasets.camera import Camera
from mmface4d_datasets.render.raster import Fragments, RenderError

#: Default light: from the camera, a little above and to the left (camera frame, pointing to the light).
DEFAULT_LIGHT = (-0.3, -0.4, -1.0)
DEFAULT_ALBEDO = (0.78, 0.72, 0.68)


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unit area-weighted vertex normals (N, 3), pointing outside for counter-clockwise triangles."""
    from mmface4d_datasets.render import _numba

    if _numba.available():
        return _numba.vertex_normals(vertices, triangles)
    v = np.asarray(vertices, dtype=np.float64)
    tri = np.asarray(triangles)
    face = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])
    normals = np.empty_like(v)
    for c in range(3):
        normals[:, c] = sum(np.bincount(tri[:, k], weights=face[:, c], minlength=len(v)) for k in range(3))
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.where(length > 0, length, 1.0)


def region_colors(num_vertices: int, masks: dict, colors: dict, default=DEFAULT_ALBEDO) -> np.ndarray:
    """Per-vertex colours (N, 3) in 0..1: ``default`` everywhere, then ``colors[name]`` on each
    ``masks[name]`` (boolean (N,) or vertex indices), in the order of ``colors``."""
    out = np.tile(np.asarray(default, dtype=np.float64), (num_vertices, 1))
    for name, color in colors.items():
        if name not in masks:
            raise RenderError(f"region colours: no mask named {name!r} (have: {', '.join(masks)})")
        out[np.asarray(masks[name])] = color
    return out


def interpolate(fragments: Fragments, triangles: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-vertex ``values`` (N, C) interpolated at the covered pixels: (P, C) in row-major pixel order."""
    mask = fragments.mask
    tri = triangles[fragments.triangle[mask]]  # (P, 3)
    bary = fragments.barycentric[mask].astype(np.float64)
    return np.einsum("pk,pkc->pc", bary, values[tri])


def shade(
    fragments: Fragments,
    vertices_cam: np.ndarray,
    triangles: np.ndarray,
    *,
    colors=None,
    texture: np.ndarray | None = None,
    uv: np.ndarray | None = None,
    light=DEFAULT_LIGHT,
    ambient: float = 0.35,
    background=(255, 255, 255),
    normals: np.ndarray | None = None,
) -> np.ndarray:
    """A uint8 (H, W, 3) image: ``albedo * (ambient + (1 - ambient) * max(0, n . l))``.

    ``vertices_cam``: the mesh in the camera's frame (normals and light in that frame);
    albedo from ``colors`` (N, 3) in 0..1 per vertex, or ``texture`` (h, w, 3) uint8 sampled
    bilinearly at per-vertex ``uv`` (N, 2) in 0..1 (v up), or :data:`DEFAULT_ALBEDO`.
    """
    H, W = fragments.triangle.shape
    image = _background(H, W, tuple(int(c) for c in background)).copy()
    if normals is None:
        normals = vertex_normals(vertices_cam, triangles)
    light = np.asarray(light, dtype=np.float64)
    light = light / np.linalg.norm(light)
    if colors is not None:
        colors = np.asarray(colors, dtype=np.float64)
        if colors.shape != (len(vertices_cam), 3):
            raise RenderError(f"per-vertex colours must have shape ({len(vertices_cam)}, 3), found {colors.shape}")
    from mmface4d_datasets.render import _numba

    if texture is None and fragments.extent is not None and _numba.available():
        _numba.shade(
            fragments,
            np.asarray(triangles, np.int64),
            np.ascontiguousarray(normals, np.float64),
            colors,
            np.asarray(DEFAULT_ALBEDO, np.float64),
            light,
            float(ambient),
            image,
        )
        return image
    mask = fragments.mask
    if not mask.any():
        return image
    n = interpolate(fragments, triangles, normals)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    lambert = np.clip(n @ light, 0.0, None)
    if texture is not None:
        if uv is None:
            raise RenderError("a texture needs per-vertex uv coordinates")
        albedo = _sample(texture, interpolate(fragments, triangles, np.asarray(uv, dtype=np.float64)))
    elif colors is not None:
        albedo = interpolate(fragments, triangles, colors)
    else:
        albedo = np.asarray(DEFAULT_ALBEDO)[None, :]
    value = albedo * (ambient + (1.0 - ambient) * lambert)[:, None]
    image[mask] = np.clip(value * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image


_BACKGROUNDS: dict = {}


def _background(H: int, W: int, color: tuple) -> np.ndarray:
    """A cached (H, W, 3) uint8 image of one colour (copied per frame: a memcpy, not a broadcast)."""
    key = (H, W, color)
    if key not in _BACKGROUNDS:
        if len(_BACKGROUNDS) >= 8:
            _BACKGROUNDS.clear()
        image = np.empty((H, W, 3), np.uint8)
        image[:] = np.asarray(color, dtype=np.uint8)
        image.flags.writeable = False
        _BACKGROUNDS[key] = image
    return _BACKGROUNDS[key]


def _sample(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    tex = np.asarray(texture, dtype=np.float64) / 255.0
    h, w = tex.shape[:2]
    x = np.clip(uv[:, 0], 0, 1) * (w - 1)
    y = (1 - np.clip(uv[:, 1], 0, 1)) * (h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = tex[y0, x0] * (1 - fx) + tex[y0, x1] * fx
    bottom = tex[y1, x0] * (1 - fx) + tex[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy)[:, :3]


def project_landmarks(
    vertices_cam: np.ndarray, indices, camera: Camera, fragments: Fragments, tolerance: float = 0.005
) -> tuple[np.ndarray, np.ndarray]:
    """2-D projections (K, 2) of the vertices ``indices`` (camera frame) and their visibility (K,):
    inside the image, lens model valid, and not hidden: the rendered depth at the nearest pixel
    is within ``tolerance`` metres of the vertex's own depth."""
    points = np.asarray(vertices_cam, dtype=np.float64)[np.asarray(indices)]
    uv, z = camera.project(points)
    visible = np.isfinite(uv).all(axis=1)
    ij = np.round(np.nan_to_num(uv, nan=-1.0)).astype(np.int64)
    visible &= (ij[:, 0] >= 0) & (ij[:, 0] < camera.width) & (ij[:, 1] >= 0) & (ij[:, 1] < camera.height)
    rendered = np.zeros(len(points))
    rendered[visible] = fragments.depth[ij[visible, 1], ij[visible, 0]] / 1000.0
    visible &= (rendered > 0) & (np.abs(rendered - z) <= tolerance)
    return uv, visible
