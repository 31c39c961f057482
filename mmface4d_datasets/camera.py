"""The camera model every part shares (DESIGN.md "Cameras"): pinhole intrinsics, the Azure Kinect's
lens distortion, extrinsics to camera 1, projection and unprojection, and the calibrations it comes in.

Conventions (DESIGN.md):

- pixel (0, 0)'s centre is at (0, 0) (OpenCV; the camera matrix the Azure Kinect SDK hands out);
- camera coordinates x right, y down, z forward, metres; depth along the optical axis (z);
- distortion is none, or the Brown-Conrady rational model in OpenCV's order
  ``(k1, k2, p1, p2, k3, k4, k5, k6)``: with ``r2 = x^2 + y^2`` on the normalised image plane,

      d  = (1 + k1 r2 + k2 r2^2 + k3 r2^3) / (1 + k4 r2 + k5 r2^2 + k6 r2^3)
      x' = x d + 2 p1 x y + p2 (r2 + 2 x^2)
      y' = y d + p1 (r2 + 2 y^2) + 2 p2 x y
      u  = fx x' + s y' + cx,  v = fy y' + cy

  which is what the Azure Kinect SDK computes for its ``BrownConrady`` model (its ``Rational6KT``
  model, never seen on a device, differs in the tangential terms and is refused);
- extrinsics of camera c: a 4x4 matrix taking a point in camera c's coordinates to camera 1's,
  ``x_1 = R x_c + t``; a depth camera's extrinsics take its points to its own colour camera.

The Azure Kinect calibration JSON (the ``calibration.json`` attachment of a recording, or
``k4a_device_get_raw_calibration``) stores each camera's parameters normalised to the sensor size
in the order ``cx, cy, fx, fy, k1..k6, codx, cody, p2, p1`` (note p2 before p1); the SDK scales
them to a colour resolution / depth mode by a fixed table (:data:`COLOR_MODES`, :data:`DEPTH_MODES`)
and shifts the principal point by half a pixel to the pixel-centre convention.
:func:`k4a_cameras` does exactly that; ``tests/oracles/make_k4a_oracle.py`` records the SDK's own
numbers, which the tests compare against.

numpy only; every array computed in float64.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmface4d_datasets.errors import FormatError, MMFace4DError

#: Order of the 8 distortion numbers everywhere in this project (OpenCV's).
DISTORTION_ORDER = ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")

#: Newton steps and the residual (normalised image units) at which unprojection stops.
UNDISTORT_ITERATIONS = 20
UNDISTORT_TOLERANCE = 1e-12


class CameraError(MMFace4DError):
    """A camera cannot do what was asked (unknown extrinsics, unknown mode, bad parameters)."""


def _identity() -> np.ndarray:
    return np.eye(4)


@dataclass(frozen=True, eq=False)
class Camera:
    """One calibrated camera.

    ``intrinsics`` (3, 3) pixels; ``width`` x ``height`` pixels; ``distortion`` (8,) in
    :data:`DISTORTION_ORDER` or None for none; ``extrinsics`` (4, 4) camera -> reference frame
    (camera 1, or for a depth camera its colour camera), or None where unknown (the authors' side
    cameras); ``metric_radius`` the radius on the normalised image plane beyond which the
    distortion polynomial is not valid (0: no limit), as the Kinect calibration states it.
    """

    intrinsics: np.ndarray
    width: int
    height: int
    distortion: np.ndarray | None = None
    extrinsics: np.ndarray | None = field(default_factory=_identity)
    metric_radius: float = 0.0

    def __post_init__(self):
        K = np.asarray(self.intrinsics, dtype=np.float64)
        if K.shape != (3, 3) or not np.isfinite(K).all():
            raise CameraError(f"camera intrinsics must be a finite (3, 3) matrix, found {K.shape}")
        if K[0, 0] <= 0 or K[1, 1] <= 0 or K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1:
            raise CameraError(f"camera intrinsics must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0: {K.tolist()}")
        object.__setattr__(self, "intrinsics", K)
        if int(self.width) < 1 or int(self.height) < 1:
            raise CameraError(f"camera size must be positive, found {self.width}x{self.height}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        if self.distortion is not None:
            dist = np.asarray(self.distortion, dtype=np.float64).reshape(-1)
            if dist.shape != (8,) or not np.isfinite(dist).all():
                raise CameraError(f"distortion must be 8 finite numbers {DISTORTION_ORDER}, found {dist.tolist()}")
            object.__setattr__(self, "distortion", None if not dist.any() else dist)
        if self.extrinsics is not None:
            E = np.asarray(self.extrinsics, dtype=np.float64)
            if E.shape != (4, 4) or not np.isfinite(E).all() or not np.allclose(E[3], [0, 0, 0, 1]):
                raise CameraError(f"extrinsics must be a finite 4x4 matrix with last row 0 0 0 1, found {E.tolist()}")
            R = E[:3, :3]
            if not np.allclose(R @ R.T, np.eye(3), atol=1e-5) or np.linalg.det(R) < 0:
                raise CameraError(f"extrinsics rotation is not a rotation matrix: {R.tolist()}")
            object.__setattr__(self, "extrinsics", E)
        object.__setattr__(self, "metric_radius", float(self.metric_radius))

    # -------------------------------------------------------------------- frames
    def _require_extrinsics(self) -> np.ndarray:
        if self.extrinsics is None:
            raise CameraError(
                "this camera's extrinsics are unknown (the authors' calibration files carry none); "
                "only points in its own frame can be projected"
            )
        return self.extrinsics

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """Points (..., 3) in the reference frame -> this camera's frame: ``x_c = R^T (x_1 - t)``."""
        E = self._require_extrinsics()
        points = np.asarray(points, dtype=np.float64)
        return (points - E[:3, 3]) @ E[:3, :3]

    def to_reference(self, points: np.ndarray) -> np.ndarray:
        """Points (..., 3) in this camera's frame -> the reference frame: ``x_1 = R x_c + t``."""
        E = self._require_extrinsics()
        points = np.asarray(points, dtype=np.float64)
        return points @ E[:3, :3].T + E[:3, 3]

    # -------------------------------------------------------------------- lens
    def distort(self, xy: np.ndarray) -> np.ndarray:
        """Normalised image-plane points (..., 2) -> distorted normalised points (identity without distortion)."""
        xy = np.asarray(xy, dtype=np.float64)
        if self.distortion is None:
            return xy.copy()
        return _distort(xy, self.distortion)

    def undistort(self, xy_distorted: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`distort` by Newton's method (analytic Jacobian, at most
        :data:`UNDISTORT_ITERATIONS` steps); NaN where it does not converge to 1e-9."""
        xy_distorted = np.asarray(xy_distorted, dtype=np.float64)
        if self.distortion is None:
            return xy_distorted.copy()
        return _undistort(xy_distorted, self.distortion)

    def in_model_range(self, xy: np.ndarray) -> np.ndarray:
        """Whether normalised undistorted points (..., 2) lie within the metric radius (all True without one)."""
        xy = np.asarray(xy, dtype=np.float64)
        if self.metric_radius <= 0:
            return ~np.isnan(xy).any(-1)
        with np.errstate(invalid="ignore"):
            return (xy * xy).sum(-1) <= self.metric_radius**2

    # -------------------------------------------------------------------- projection
    def project(self, points: np.ndarray, *, frame: str = "camera") -> tuple[np.ndarray, np.ndarray]:
        """3-D points (..., 3) metres -> (pixels (..., 2), depth (...,) metres along the optical axis).

        ``frame``: "camera" (this camera's coordinates) or "reference" (camera 1's, through the
        extrinsics). Pixels are NaN for points at or behind the camera (depth <= 0) and, as the
        SDK's ``convert_3d_to_2d`` calls them invalid, beyond the lens model's metric radius.
        """
        points = self._in_camera_frame(points, frame)
        z = points[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = points[..., :2] / z[..., None]
        xy[(z <= 0) | ~self.in_model_range(xy)] = np.nan
        return self.pixels_from_normalised(self.distort(xy)), z

    def pixels_from_normalised(self, xy: np.ndarray) -> np.ndarray:
        """Distorted normalised points (..., 2) -> pixels with the camera matrix."""
        K = self.intrinsics
        u = K[0, 0] * xy[..., 0] + K[0, 1] * xy[..., 1] + K[0, 2]
        v = K[1, 1] * xy[..., 1] + K[1, 2]
        return np.stack([u, v], axis=-1)

    def normalised_from_pixels(self, uv: np.ndarray) -> np.ndarray:
        """Pixels (..., 2) -> distorted normalised points (inverse of the camera matrix)."""
        uv = np.asarray(uv, dtype=np.float64)
        K = self.intrinsics
        y = (uv[..., 1] - K[1, 2]) / K[1, 1]
        x = (uv[..., 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
        return np.stack([x, y], axis=-1)

    def unproject(self, pixels: np.ndarray, depth, *, frame: str = "camera") -> np.ndarray:
        """Pixels (..., 2) and depth (...,) metres along the optical axis -> 3-D points (..., 3) metres.

        The lens is inverted iteratively (:meth:`undistort`); points where that fails, where the
        ray lies beyond the metric radius (the SDK's ``convert_2d_to_3d`` calls them invalid) or where
        depth <= 0 are NaN. ``frame`` "reference" returns camera 1's coordinates.
        """
        xy = self.undistort(self.normalised_from_pixels(pixels))
        xy[~self.in_model_range(xy)] = np.nan
        depth = np.asarray(depth, dtype=np.float64)
        depth = np.broadcast_to(depth, xy.shape[:-1])
        points = np.concatenate([xy * depth[..., None], depth[..., None]], axis=-1)
        points[depth <= 0] = np.nan
        if frame == "reference":
            return self.to_reference(points)
        if frame != "camera":
            raise CameraError(f"frame must be 'camera' or 'reference', found {frame!r}")
        return points

    def _in_camera_frame(self, points, frame: str) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64)
        if points.shape[-1:] != (3,):
            raise CameraError(f"points must have shape (..., 3), found {points.shape}")
        if frame == "reference":
            return self.to_camera(points)
        if frame != "camera":
            raise CameraError(f"frame must be 'camera' or 'reference', found {frame!r}")
        return points

    # -------------------------------------------------------------------- derived cameras
    def resized(self, width: int, height: int) -> Camera:
        """The same camera seen at another image size (scaled about the pixel-centre convention)."""
        sx, sy = width / self.width, height / self.height
        K = self.intrinsics.copy()
        K[0, :] *= sx
        K[1, :] *= sy
        K[0, 2] = (self.intrinsics[0, 2] + 0.5) * sx - 0.5
        K[1, 2] = (self.intrinsics[1, 2] + 0.5) * sy - 0.5
        return Camera(K, width, height, self.distortion, self.extrinsics, self.metric_radius)

    def with_extrinsics(self, extrinsics: np.ndarray | None) -> Camera:
        return Camera(self.intrinsics, self.width, self.height, self.distortion, extrinsics, self.metric_radius)

    def without_distortion(self) -> Camera:
        return Camera(self.intrinsics, self.width, self.height, None, self.extrinsics, self.metric_radius)

    def __repr__(self) -> str:
        K = self.intrinsics
        return (
            f"Camera({self.width}x{self.height}, fx={K[0, 0]:.3f}, fy={K[1, 1]:.3f}, cx={K[0, 2]:.3f}, "
            f"cy={K[1, 2]:.3f}, distortion={'none' if self.distortion is None else 'rational'}, "
            f"extrinsics={'unknown' if self.extrinsics is None else 'known'})"
        )


# ------------------------------------------------------------------------ distortion math
def _distortion_terms(x, y, dist):
    k1, k2, p1, p2, k3, k4, k5, k6 = dist
    r2 = x * x + y * y
    a = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    b = 1 + r2 * (k4 + r2 * (k5 + r2 * k6))
    return r2, a, b, p1, p2


def _distort(xy: np.ndarray, dist: np.ndarray) -> np.ndarray:
    x, y = xy[..., 0], xy[..., 1]
    r2, a, b, p1, p2 = _distortion_terms(x, y, dist)
    d = a / b
    xd = x * d + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * d + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([xd, yd], axis=-1)


def _distort_jacobian(x, y, dist):
    """Distorted point and the 2x2 Jacobian entries (dxd/dx, dxd/dy, dyd/dx, dyd/dy)."""
    k1, k2, p1, p2, k3, k4, k5, k6 = dist
    r2, a, b, _, _ = _distortion_terms(x, y, dist)
    da = k1 + r2 * (2 * k2 + 3 * k3 * r2)
    db = k4 + r2 * (2 * k5 + 3 * k6 * r2)
    d = a / b
    dd = (da * b - a * db) / (b * b)  # d d / d r2
    xd = x * d + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * d + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    j00 = d + 2 * x * x * dd + 2 * p1 * y + 6 * p2 * x
    j01 = 2 * x * y * dd + 2 * p1 * x + 2 * p2 * y
    j10 = 2 * x * y * dd + 2 * p1 * x + 2 * p2 * y
    j11 = d + 2 * y * y * dd + 6 * p1 * y + 2 * p2 * x
    return xd, yd, j00, j01, j10, j11


def _undistort(target: np.ndarray, dist: np.ndarray) -> np.ndarray:
    tx, ty = target[..., 0], target[..., 1]
    x, y = tx.copy(), ty.copy()
    for _ in range(UNDISTORT_ITERATIONS):
        xd, yd, j00, j01, j10, j11 = _distort_jacobian(x, y, dist)
        ex, ey = xd - tx, yd - ty
        det = j00 * j11 - j01 * j10
        with np.errstate(divide="ignore", invalid="ignore"):
            x = x - (j11 * ex - j01 * ey) / det
            y = y - (-j10 * ex + j00 * ey) / det
        if np.nanmax(np.abs(ex), initial=0) < UNDISTORT_TOLERANCE and np.nanmax(np.abs(ey), initial=0) < UNDISTORT_TOLERANCE:
            break
    result = np.stack([x, y], axis=-1)
    residual = np.abs(_distort(result, dist) - target).max(-1)
    result[~(residual < 1e-9)] = np.nan
    return result


# ------------------------------------------------------------------------ Azure Kinect calibration
#: Colour resolutions: (binned calibration image size, crop offset, output size) as the SDK's table.
COLOR_MODES = {
    "720P": ((1280, 960), (0, 120), (1280, 720)),
    "1080P": ((1920, 1440), (0, 180), (1920, 1080)),
    "1440P": ((2560, 1920), (0, 240), (2560, 1440)),
    "1536P": ((2048, 1536), (0, 0), (2048, 1536)),
    "2160P": ((3840, 2880), (0, 360), (3840, 2160)),
    "3072P": ((4096, 3072), (0, 0), (4096, 3072)),
}
#: The radius the SDK's projection uses where a calibration states none (measured: the colour
#: camera of the fixture recording, ``MetricRadius`` 0, is valid exactly up to 1.7).
K4A_DEFAULT_METRIC_RADIUS = 1.7
#: Depth modes likewise.
DEPTH_MODES = {
    "NFOV_2X2BINNED": ((512, 512), (96, 90), (320, 288)),
    "NFOV_UNBINNED": ((1024, 1024), (192, 180), (640, 576)),
    "WFOV_2X2BINNED": ((512, 512), (0, 0), (512, 512)),
    "WFOV_UNBINNED": ((1024, 1024), (0, 0), (1024, 1024)),
    "PASSIVE_IR": ((1024, 1024), (0, 0), (1024, 1024)),
}


@dataclass(frozen=True, eq=False)
class K4ACameras:
    """An Azure Kinect's colour and depth cameras at one colour resolution and depth mode.

    ``color`` has identity extrinsics (its own frame; set camera-1 extrinsics with
    :meth:`Camera.with_extrinsics`); ``depth.extrinsics`` takes depth-camera points to the
    colour camera (DESIGN.md), the same matrix as ``depth_to_color``.
    """

    color: Camera
    depth: Camera
    depth_to_color: np.ndarray
    color_resolution: str
    depth_mode: str


def _mode_name(name: str, table: dict, what: str) -> str:
    key = str(name).upper()
    for prefix in ("K4A_COLOR_RESOLUTION_", "K4A_DEPTH_MODE_", "RES_", "MJPG_", "NV12_", "YUY2_", "BGRA32_"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    if key not in table:
        raise CameraError(f"unknown Azure Kinect {what} {name!r}; known: {', '.join(table)}")
    return key


def _k4a_camera(entry: dict, mode: tuple, where: str) -> tuple[Camera, np.ndarray]:
    intr = entry.get("Intrinsics", {})
    model = intr.get("ModelType", "")
    if model != "CALIBRATION_LensDistortionModelBrownConrady":
        raise FormatError(f"{where}: lens model {model!r} is not supported (only CALIBRATION_LensDistortionModelBrownConrady)")
    params = [float(v) for v in intr.get("ModelParameters", [])]
    count = int(intr.get("ModelParameterCount", len(params)))
    if count < 14 or len(params) < 14:
        raise FormatError(f"{where}: expected at least 14 ModelParameters, found {len(params)}")
    cx, cy, fx, fy, k1, k2, k3, k4, k5, k6, codx, cody, p2, p1 = params[:14]
    if codx != 0 or cody != 0:
        raise FormatError(f"{where}: a centre of distortion off the principal point (codx={codx}, cody={cody}) is not supported")
    (bw, bh), (ox, oy), (w, h) = mode
    # the SDK: scale the normalised numbers to the binned calibration image, crop, shift to pixel centres
    K = np.array([[fx * bw, 0.0, cx * bw - ox - 0.5], [0.0, fy * bh, cy * bh - oy - 0.5], [0.0, 0.0, 1.0]])
    rt = entry.get("Rt", {})
    R = np.asarray(rt.get("Rotation", []), dtype=np.float64)
    t = np.asarray(rt.get("Translation", []), dtype=np.float64)
    if R.size != 9 or t.size != 3:
        raise FormatError(f"{where}: Rt must hold 9 rotation and 3 translation numbers")
    Rt = np.eye(4)
    Rt[:3, :3] = R.reshape(3, 3)
    Rt[:3, 3] = t
    radius = float(entry.get("MetricRadius", params[14] if len(params) > 14 else 0.0)) or K4A_DEFAULT_METRIC_RADIUS
    camera = Camera(K, w, h, np.array([k1, k2, p1, p2, k3, k4, k5, k6]), None, radius)
    return camera, Rt


def k4a_cameras(
    calibration, color_resolution: str = "1080P", depth_mode: str = "NFOV_UNBINNED", *, source: str = "calibration JSON"
) -> K4ACameras:
    """Colour and depth cameras from an Azure Kinect calibration JSON, scaled as the SDK does.

    ``calibration``: the JSON text, bytes, parsed dict, or a path to the file. ``color_resolution``
    "720P" ... "3072P" (prefixes such as "MJPG_" / "RES_" accepted); ``depth_mode`` "NFOV_UNBINNED",
    "NFOV_2X2BINNED", "WFOV_UNBINNED", "WFOV_2X2BINNED", "PASSIVE_IR". Each camera's ``Rt`` in the
    file takes depth-camera points into that camera (x_cam = R x_depth + t, metres), so
    depth -> colour is ``Rt_color @ inv(Rt_depth)``.
    Raises FormatError naming ``source`` for a file that is not such a calibration.
    """
    if isinstance(calibration, (str, os.PathLike)) and not str(calibration).lstrip().startswith("{"):
        source = str(calibration)
        try:
            calibration = Path(calibration).read_text(encoding="utf-8")
        except OSError as exc:
            raise FormatError(f"{source}: cannot read the calibration: {exc}") from exc
    if isinstance(calibration, (bytes, bytearray)):
        calibration = calibration.decode("utf-8", errors="replace")
    if isinstance(calibration, str):
        try:
            calibration = json.loads(calibration.rstrip("\x00"))
        except json.JSONDecodeError as exc:
            raise FormatError(f"{source}: not valid JSON: {exc}") from exc
    try:
        cameras = calibration["CalibrationInformation"]["Cameras"]
    except (KeyError, TypeError):
        raise FormatError(f"{source}: no CalibrationInformation.Cameras") from None
    color_key = _mode_name(color_resolution, COLOR_MODES, "colour resolution")
    depth_key = _mode_name(depth_mode, DEPTH_MODES, "depth mode")
    found = {}
    for entry in cameras:
        purpose = entry.get("Purpose", "")
        if purpose == "CALIBRATION_CameraPurposeDepth" and "depth" not in found:
            found["depth"] = _k4a_camera(entry, DEPTH_MODES[depth_key], f"{source} (depth camera)")
        elif purpose == "CALIBRATION_CameraPurposePhotoVideo" and "color" not in found:
            found["color"] = _k4a_camera(entry, COLOR_MODES[color_key], f"{source} (colour camera)")
    missing = [name for name in ("depth", "color") if name not in found]
    if missing:
        raise FormatError(f"{source}: no {' and no '.join(missing)} camera in CalibrationInformation.Cameras")
    (color, rt_color), (depth, rt_depth) = found["color"], found["depth"]
    depth_to_color = rt_color @ np.linalg.inv(rt_depth)
    return K4ACameras(color.with_extrinsics(np.eye(4)), depth.with_extrinsics(depth_to_color), depth_to_color, color_key, depth_key)


# ------------------------------------------------------------------------ a take's ID_c.json
def _matrix_from_column_major(values, where: str) -> np.ndarray:
    if not isinstance(values, list) or len(values) != 9:
        raise FormatError(f"{where}: intrinsic_matrix must be a list of 9 numbers, found {values!r}")
    try:
        return np.asarray(values, dtype=np.float64).reshape(3, 3, order="F")
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{where}: intrinsic_matrix must hold numbers: {exc}") from exc


def _optional_array(data: dict, key: str, shape: tuple, where: str):
    if data.get(key) is None:
        return None
    try:
        array = np.asarray(data[key], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{where}: {key} must hold numbers: {exc}") from exc
    if array.shape != shape:
        raise FormatError(f"{where}: {key} must have shape {shape}, found {array.shape}")
    return array


def _camera_from_fields(data: dict, where: str, default_extrinsics) -> Camera:
    try:
        width, height = data["width"], data["height"]
        K = _matrix_from_column_major(data["intrinsic_matrix"], where)
    except KeyError as exc:
        raise FormatError(f"{where}: lacks the key {exc.args[0]!r}") from None
    extrinsics = _optional_array(data, "extrinsics", (4, 4), where)
    try:
        return Camera(
            K,
            width,
            height,
            _optional_array(data, "distortion", (8,), where),
            default_extrinsics if extrinsics is None else extrinsics,
            float(data.get("metric_radius", 0.0)),
        )
    except CameraError as exc:
        raise FormatError(f"{where}: {exc}") from None


def cameras_from_take_json(data: dict, camera_index: int | None = None, *, source: str = "ID_c.json") -> tuple[Camera, Camera | None]:
    """The colour camera and (where recorded) depth camera of one parsed ``ID_c.json``.

    The authors' files carry no ``distortion`` or ``extrinsics``: the colour camera then has no
    distortion, and extrinsics identity for camera 1 (the reference) or unknown (None) for others.
    ``depth_camera`` (ours) gives the depth camera, its extrinsics taking it to the colour camera.
    """
    if not isinstance(data, dict):
        raise FormatError(f"{source}: calibration must be a JSON object")
    default = np.eye(4) if camera_index == 1 else None
    color = _camera_from_fields(data, source, default)
    depth = None
    if data.get("depth_camera") is not None:
        if not isinstance(data["depth_camera"], dict):
            raise FormatError(f"{source}: depth_camera must be a JSON object")
        depth = _camera_from_fields(data["depth_camera"], f"{source} (depth_camera)", None)
        if depth.extrinsics is None:
            raise FormatError(f"{source}: depth_camera lacks its extrinsics to the colour camera")
    return color, depth


def read_take_cameras(path: str | os.PathLike, camera_index: int | None = None) -> tuple[Camera, Camera | None]:
    """:func:`cameras_from_take_json` of a file; the camera index is taken from the name ``ID_c.json`` when not given."""
    path = Path(path)
    if camera_index is None:
        stem = path.stem
        if len(stem) >= 2 and stem[-2] == "_" and stem[-1].isdigit():
            camera_index = int(stem[-1])
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FormatError(f"{path}: calibration file is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: cannot read the calibration JSON: {exc}") from exc
    return cameras_from_take_json(data, camera_index, source=str(path))


def _camera_fields(camera: Camera) -> dict:
    fields = {
        "width": camera.width,
        "height": camera.height,
        "intrinsic_matrix": [float(v) for v in camera.intrinsics.reshape(-1, order="F")],
        "distortion": [0.0] * 8 if camera.distortion is None else [float(v) for v in camera.distortion],
    }
    if camera.extrinsics is not None:
        fields["extrinsics"] = [[float(v) for v in row] for row in camera.extrinsics]
    if camera.metric_radius > 0:
        fields["metric_radius"] = camera.metric_radius
    return fields


def take_json_fields(color: Camera, depth: Camera | None = None) -> dict:
    """The camera fields of an ``ID_c.json`` (DESIGN.md): ``width``, ``height``, ``intrinsic_matrix``
    (column-major), ``distortion``, ``extrinsics`` (to camera 1, when known) and ``depth_camera``.
    Merge them into the authors' fields (``color_mode``, ``depth_mode``, ``serial_number``, ...)."""
    fields = _camera_fields(color)
    if depth is not None:
        if depth.extrinsics is None:
            raise CameraError("a depth camera needs its extrinsics to the colour camera")
        fields["depth_camera"] = _camera_fields(depth)
    return fields


def write_take_json(path: str | os.PathLike, color: Camera, depth: Camera | None = None, **authors_fields) -> None:
    """Write an ``ID_c.json`` (canonical JSON, temporary name then rename): ``authors_fields``
    (``color_mode``, ``depth_mode``, ``serial_number``, ``stream_length_usec``, ...) plus
    :func:`take_json_fields`."""
    from mmface4d_datasets.files import atomic_write_bytes, json_bytes

    data = dict(authors_fields)
    data.update(take_json_fields(color, depth))
    atomic_write_bytes(path, json_bytes(data))
