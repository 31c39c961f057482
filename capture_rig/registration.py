"""Depth registered to the colour camera, on the CPU (the SDK's own transformation needs a GPU).

For every measured depth pixel: back-project with the depth camera's model (lens inverted), move
the point into the colour camera by the depth-to-colour extrinsics, and project it with the colour
camera's model (lens applied). A depth pixel covers a patch of the scene, not a point: its
FOOTPRINT in the colour image is the box spanned by the projections of its four corners (the
pixel's edges at ±0.5, at the pixel's depth), and every colour pixel whose centre lies in that box
takes the point's depth along the colour camera's optical axis. Overlapping footprints keep the
nearest depth (a z-buffer), so a foreground edge hides the background behind it, as the SDK does;
neighbouring depth pixels share corners, so their footprints tile the surface without the holes
that projecting pixel centres alone would leave (colour pixels are smaller than depth pixels at
1080p). Colour pixels that no measured depth pixel covers stay 0.

The depth camera's rays and each pixel's footprint shape depend only on the cameras (the
footprint is computed at a nominal depth; the 32 mm baseline changes its size by under 1 % over
the working range), so :class:`DepthRegistration` computes them once (the iterative lens
inversion is the slow part) and each frame costs one forward
projection per measured pixel and a scatter-minimum over the footprints' cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmface4d_datasets.camera import Camera

#: Largest footprint side, in colour pixels, a depth pixel may cover (larger ones are edge
#: artefacts of grazing surfaces and are clipped to this).
MAX_FOOTPRINT = 6
#: Depth at which each pixel's footprint shape is computed once (millimetres).
NOMINAL_DEPTH_MM = 1000.0
#: Colour pixels by which each footprint is widened on every side, so that neighbouring depth
#: pixels at slightly different depths (whose corners then project a little apart) leave no gap;
#: the z-buffer decides the overlap.
FOOTPRINT_MARGIN = 0.25
#: No measurement in a depth image.
NO_DEPTH = 0


@dataclass
class DepthRegistration:
    """Registers depth images of ``depth_camera`` to ``colour_camera``.

    ``depth_camera.extrinsics`` must take depth-camera points to the colour camera (as
    :func:`mmface4d_datasets.camera.k4a_cameras` gives it). Call the object on a uint16 (H, W)
    millimetre image of the depth camera's size; it returns uint16 millimetres at the colour size.
    """

    depth_camera: Camera
    colour_camera: Camera

    def __post_init__(self):
        if self.depth_camera.extrinsics is None:
            raise ValueError("the depth camera needs its extrinsics to the colour camera")
        h, w = self.depth_camera.height, self.depth_camera.width
        extr = self.depth_camera.extrinsics
        self._R = extr[:3, :3]
        self._t = extr[:3, 3] * 1000.0  # millimetres, as the depth images
        # rays (x, y, 1) through each pixel's centre, on the depth camera's normalised image plane
        us, vs = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        centre = self._rays(np.stack([us, vs], -1))
        self._centre = centre
        self._rotated = np.concatenate([centre, np.ones((h, w, 1))], -1) @ self._R.T  # R (x, y, 1)
        # footprint of each pixel relative to its centre's projection, from its four corners
        # projected at NOMINAL_DEPTH_MM (the parallax between the two lenses changes it by < 1 %)
        cu, cv = np.meshgrid(np.arange(w + 1, dtype=np.float64) - 0.5, np.arange(h + 1, dtype=np.float64) - 0.5)
        corners = self._rays(np.stack([cu, cv], -1))
        centre_uv = self._project(centre.reshape(-1, 2), NOMINAL_DEPTH_MM).reshape(h, w, 2)
        corner_uv = self._project(corners.reshape(-1, 2), NOMINAL_DEPTH_MM).reshape(h + 1, w + 1, 2)
        quad = np.stack([corner_uv[:-1, :-1], corner_uv[:-1, 1:], corner_uv[1:, :-1], corner_uv[1:, 1:]])
        with np.errstate(invalid="ignore"):
            self._lo = (quad.min(0) - centre_uv - FOOTPRINT_MARGIN).astype(np.float32)  # (h, w, 2)
            self._hi = (quad.max(0) - centre_uv + FOOTPRINT_MARGIN).astype(np.float32)

    def _rays(self, pixels: np.ndarray) -> np.ndarray:
        xy = self.depth_camera.undistort(self.depth_camera.normalised_from_pixels(pixels))
        xy[~self.depth_camera.in_model_range(xy)] = np.nan
        return xy

    def _project(self, rays: np.ndarray, depth_mm) -> np.ndarray:
        d = np.asarray(depth_mm, dtype=np.float64)
        p = np.stack([rays[:, 0] * d, rays[:, 1] * d, np.broadcast_to(d, rays[:, 0].shape)], axis=1)
        uv, _ = self.colour_camera.project((p @ self._R.T + self._t) / 1000.0)
        return uv

    @property
    def shape(self) -> tuple[int, int]:
        return self.colour_camera.height, self.colour_camera.width

    def points(self, depth_mm: np.ndarray, pixels: np.ndarray | None = None) -> np.ndarray:
        """Measured depth pixels -> points (N, 3) in the colour camera's frame, millimetres.

        ``pixels`` (N, 2) integer (u, v) picks pixels; by default every pixel with depth > 0, in
        row-major order. NaN where the depth camera's lens model is not valid.
        """
        depth_mm = np.asarray(depth_mm)
        if pixels is None:
            vs, us = np.nonzero(depth_mm > NO_DEPTH)
        else:
            pixels = np.asarray(pixels, dtype=np.int64)
            us, vs = pixels[:, 0], pixels[:, 1]
        d = depth_mm[vs, us].astype(np.float64)
        xy = self._centre[vs, us]
        p = np.stack([xy[:, 0] * d, xy[:, 1] * d, d], axis=1)
        return p @ self._R.T + self._t

    def colour_pixels(self, points_mm: np.ndarray) -> np.ndarray:
        """Points (N, 3) in the colour camera (mm) -> colour pixels (N, 2) (NaN where not projectable)."""
        pixels, _ = self.colour_camera.project(np.asarray(points_mm, dtype=np.float64) / 1000.0)
        return pixels

    def __call__(self, depth_mm: np.ndarray) -> np.ndarray:
        depth_mm = np.asarray(depth_mm)
        h, w = self.depth_camera.height, self.depth_camera.width
        if depth_mm.shape != (h, w):
            raise ValueError(f"depth image is {depth_mm.shape[1]}x{depth_mm.shape[0]}, the depth camera is {w}x{h}")
        H, W = self.shape
        flat = np.flatnonzero(depth_mm.reshape(-1) > NO_DEPTH)
        if flat.size == 0:
            return np.zeros((H, W), dtype=np.uint16)
        d = depth_mm.reshape(-1)[flat].astype(np.float64)
        # the pixel's centre point in the colour camera (mm): d R (x, y, 1) + t
        p = self._rotated.reshape(-1, 3)[flat] * d[:, None] + self._t
        z = p[:, 2]
        uv, _ = self.colour_camera.project(p / 1000.0)
        lo = uv + self._lo.reshape(-1, 2)[flat]
        hi = uv + self._hi.reshape(-1, 2)[flat]
        with np.errstate(invalid="ignore"):
            # colour pixels whose centres lie in the footprint: ceil(lo) .. floor(hi), inside the image
            lo = np.maximum(np.ceil(lo), 0)
            hi = np.minimum(np.minimum(np.floor(hi), lo + MAX_FOOTPRINT - 1), [W - 1, H - 1])
            ok = (hi[:, 0] >= lo[:, 0]) & (hi[:, 1] >= lo[:, 1]) & (z > 0)
        lo, hi = lo[ok].astype(np.int32), hi[ok].astype(np.int32)
        zz = np.clip(np.rint(z[ok]), 1, np.iinfo(np.uint16).max - 1).astype(np.uint16)
        extent = hi - lo  # footprint size - 1, per axis
        base = lo[:, 1] * W + lo[:, 0]
        out = np.full(H * W, np.iinfo(np.uint16).max, dtype=np.uint16)
        # footprints grouped by their shape (a handful: 1x1 .. 4x4 pixels), each group scattered at
        # once into a z-buffer by a scatter-minimum over exactly its cells
        shape_code = extent[:, 1] * MAX_FOOTPRINT + extent[:, 0]
        order = np.argsort(shape_code, kind="stable")
        codes, starts = np.unique(shape_code[order], return_index=True)
        for code, begin, end in zip(codes.tolist(), starts.tolist(), [*starts[1:].tolist(), order.size]):
            ev, eu = divmod(code, MAX_FOOTPRINT)
            offsets = (np.arange(ev + 1, dtype=np.int32)[:, None] * W + np.arange(eu + 1, dtype=np.int32)).reshape(-1)
            members = order[begin:end]
            cells = base[members][:, None] + offsets
            np.minimum.at(out, cells.reshape(-1), np.repeat(zz[members], offsets.size))
        out[out == np.iinfo(np.uint16).max] = NO_DEPTH
        return out.reshape(H, W)
