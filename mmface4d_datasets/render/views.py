"""Cameras to look at a mesh with: the rig's three views (DESIGN.md "Cameras") and a fixed framing
for a whole sequence."""

from __future__ import annotations

import numpy as np

from mmface4d_datasets.camera import Camera
from mmface4d_datasets.render.raster import RenderError

#: View names and their yaw about the face (degrees; camera 0 on the subject's left, +x).
VIEWS = {"front": 0.0, "left": 45.0, "right": -45.0}
#: The rig's colour intrinsics at 1920x1080 as measured on the sample take (camera 1).
RIG_FX, RIG_FY, RIG_CX, RIG_CY = 911.565, 911.164, 963.894, 544.876


def look_at(position, target, down=(0.0, 1.0, 0.0)) -> np.ndarray:
    """Extrinsics (4, 4) of a camera at ``position`` looking at ``target``, image rows along ``down``
    (reference frame; camera 1's frame has +y down)."""
    position, target = np.asarray(position, float), np.asarray(target, float)
    forward = target - position
    forward /= np.linalg.norm(forward)
    right = np.cross(np.asarray(down, float), forward)
    if np.linalg.norm(right) < 1e-9:
        raise RenderError("look_at: the view direction is parallel to the down direction")
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    E = np.eye(4)
    E[:3, 0], E[:3, 1], E[:3, 2], E[:3, 3] = right, down, forward, position
    return E


def orbit_extrinsics(target, yaw_degrees: float, distance: float, facing: str = "-z") -> np.ndarray:
    """A camera ``distance`` metres from ``target``, on the side the face looks to (``facing`` "-z":
    camera 1's frame, y down; "+z": the canonical head frame, y up), turned ``yaw_degrees`` about the
    vertical axis towards +x (the subject's left) for positive angles."""
    yaw = np.radians(yaw_degrees)
    target = np.asarray(target, float)
    if facing == "-z":
        out, down = np.array([0.0, 0.0, -1.0]), (0.0, 1.0, 0.0)
    elif facing == "+z":
        out, down = np.array([0.0, 0.0, 1.0]), (0.0, -1.0, 0.0)
    else:
        raise RenderError(f"facing must be '-z' or '+z', found {facing!r}")
    direction = np.cos(yaw) * out + np.sin(yaw) * np.array([1.0, 0.0, 0.0])
    return look_at(target + distance * direction, target, down)


def rig_cameras(target, distance: float = 0.69, width: int = 1920, height: int = 1080) -> list[Camera]:
    """Cameras 0, 1, 2 of the rig around ``target`` (DESIGN.md: 45 degrees left, frontal, 45 degrees
    right, about 0.7 m), with the sample take's colour intrinsics scaled to ``width`` x ``height``."""
    K = np.array([[RIG_FX, 0, RIG_CX], [0, RIG_FY, RIG_CY], [0, 0, 1]])
    base = Camera(K, 1920, 1080)
    if (width, height) != (1920, 1080):
        base = base.resized(width, height)
    return [base.with_extrinsics(orbit_extrinsics(target, yaw, distance)) for yaw in (45.0, 0.0, -45.0)]


def framing_camera(
    vertices, width: int, height: int, view: str = "front", fill: float = 0.85, fov_degrees: float = 20.0, facing: str = "-z"
) -> Camera:
    """One camera that frames every frame of a sequence (T, N, 3) or a mesh (N, 3) from ``view``
    ("front", "left", "right"): looking at the centre of the sequence's bounding box, far enough
    that the bounding sphere fills ``fill`` of the shorter image side."""
    if view not in VIEWS:
        raise RenderError(f"unknown view {view!r}; choose from {', '.join(VIEWS)} or a camera index")
    pts = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    lo, hi = pts.min(0), pts.max(0)
    centre = (lo + hi) / 2
    radius = max(float(np.linalg.norm(pts - centre, axis=1).max()), 1e-6)
    f = 0.5 * min(width, height) / np.tan(np.radians(fov_degrees) / 2)
    # the sphere's image has radius f * r / sqrt(d^2 - r^2) = fill * min(w, h) / 2
    half = fill * min(width, height) / 2
    distance = radius * np.sqrt(1 + (f / half) ** 2)
    K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])
    return Camera(K, width, height, None, orbit_extrinsics(centre, VIEWS[view], distance, facing))
