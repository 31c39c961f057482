"""The simulated rig's scene: calibrations, camera placement, head/neck/shoulders/background meshes,
skin colours, and the truth's detail outside the face model's span (docs/simulator.md).

Calibration. Every simulated Azure Kinect carries an Azure Kinect calibration JSON (the layout of
the recorder's ``calibration.json`` attachment) made of:

- the colour camera's intrinsics of the authors' sample take at 1080p (``000337_1.json``:
  fx 911.565, fy 911.164, cx 963.894, cy 544.876), normalised back to the SDK's sensor units;
- the colour lens distortion, the depth camera's intrinsics and distortion, and the
  depth-to-colour transform (32 mm baseline, 6 degree tilt) of the real recording
  ``fixtures/k4a_recording/recording.mkv`` (device 001514394512), copied as numbers.

Cameras then come out of :func:`mmface4d_datasets.camera.k4a_cameras`, the same code path as
``mmface4d rig convert``, so a simulated take and a converted simulated recording use identical
cameras.

Placement (DESIGN.md "Cameras"): colour camera 1 is the reference frame; cameras 0 and 2 are
turned 45 degrees about the vertical through a point 0.72 m in front of camera 1
(:func:`mmface4d_datasets.synthetic.takes.camera_extrinsics`), camera 0 at +x (the subject's left).
"""

from __future__ import annotations

import json

import numpy as np

#: Normalised colour intrinsics (cx, cy, fx, fy) of the 1080P mode's binned 1920x1440 calibration
#: image that give the sample take's camera matrix (cx_px = cx * 1920 - 0.5, cy_px = cy * 1440 - 180 - 0.5).
SAMPLE_COLOUR_1080P = (911.56536865234375, 911.16424560546875, 963.89404296875, 544.8760986328125)
#: The real recording's colour lens (k1..k6, codx, cody, p2, p1 as the calibration JSON stores them).
REAL_COLOUR_LENS = (
    0.33012130856513977,
    -2.4893965721130371,
    1.453670859336853,
    0.20891207456588745,
    -2.302915096282959,
    1.3751275539398193,
    0.0,
    0.0,
    -0.00012944525224156678,
    -0.00016178244550246745,
)
#: The real recording's depth camera: 14 model parameters and metric radius.
REAL_DEPTH_PARAMETERS = (
    0.51296979188919067,
    0.51692354679107666,
    0.4927808940410614,
    0.49290284514427185,
    0.54793977737426758,
    -0.020971370860934258,
    -0.0026522316038608551,
    0.88967907428741455,
    0.086130209267139435,
    -0.013910384848713875,
    0.0,
    0.0,
    -7.2104157879948616e-5,
    2.0557534298859537e-5,
)
REAL_DEPTH_METRIC_RADIUS = 1.7399997711181641
#: The real recording's colour camera pose relative to its depth camera (Rt of the PhotoVideo camera).
REAL_COLOUR_ROTATION = (
    0.99999922513961792,
    0.0011817576596513391,
    -0.00044814043212682009,
    -0.0011387512786313891,
    0.99628061056137085,
    0.0861603245139122,
    0.0005482942215166986,
    -0.086159750819206238,
    0.9962812066078186,
)
REAL_COLOUR_TRANSLATION = (-0.032083429396152496, -0.0022053730208426714, 0.0038836926687508821)
REAL_SERIAL = "001514394512"

#: Resolution presets: name -> (colour resolution, depth mode, colour image size or None for the
#: mode's own). Only presets with a Kinect colour size can be written as MKV recordings.
RESOLUTIONS = {
    "1080p": ("1080P", "NFOV_UNBINNED", None),
    "720p": ("720P", "NFOV_UNBINNED", None),
    "720p-binned": ("720P", "NFOV_2X2BINNED", None),
    "small": ("720P", "NFOV_2X2BINNED", (480, 270)),
}

#: Background wall: distance from camera 1 (metres, along its axis); side walls at x = +-SIDE_WALL_X.
BACKGROUND_DEPTH = 1.5
SIDE_WALL_X = 1.6


def serial_number(camera: int) -> str:
    return f"SIM00000000{camera}"


def calibration_json(camera: int) -> str:
    """The Azure Kinect calibration JSON of simulated device ``camera`` (compact, fixed key order)."""
    fx, fy, cx, cy = SAMPLE_COLOUR_1080P
    # invert the SDK's scaling of the 1080P mode (binned 1920x1440, 180 rows cropped at the top)
    colour = [(cx + 0.5) / 1920.0, (cy + 180.0 + 0.5) / 1440.0, fx / 1920.0, fy / 1440.0, *REAL_COLOUR_LENS]

    def entry(params, purpose, location, radius, rotation, translation, width, height):
        return {
            "Intrinsics": {
                "ModelParameterCount": 14,
                "ModelParameters": [float(p) for p in params],
                "ModelType": "CALIBRATION_LensDistortionModelBrownConrady",
            },
            "Location": location,
            "Purpose": purpose,
            "MetricRadius": float(radius),
            "Rt": {"Rotation": [float(r) for r in rotation], "Translation": [float(t) for t in translation]},
            "SensorHeight": height,
            "SensorWidth": width,
            "Shutter": "CALIBRATION_ShutterTypeUndefined",
        }

    data = {
        "CalibrationInformation": {
            "Cameras": [
                entry(
                    REAL_DEPTH_PARAMETERS,
                    "CALIBRATION_CameraPurposeDepth",
                    "CALIBRATION_CameraLocationD0",
                    REAL_DEPTH_METRIC_RADIUS,
                    (1, 0, 0, 0, 1, 0, 0, 0, 1),
                    (0, 0, 0),
                    1024,
                    1024,
                ),
                entry(
                    colour,
                    "CALIBRATION_CameraPurposePhotoVideo",
                    "CALIBRATION_CameraLocationPV0",
                    0,
                    REAL_COLOUR_ROTATION,
                    REAL_COLOUR_TRANSLATION,
                    4096,
                    3072,
                ),
            ],
            "Metadata": {
                "SerialId": serial_number(camera),
                "DeviceName": "AzureKinect-PV (simulated)",
                "Notes": f"mmface4d rig simulate: colour intrinsics of the sample take 000337_1.json, lenses "
                f"and depth-to-colour of device {REAL_SERIAL}",
                "Version": {"Major": 1, "Minor": 2},
            },
        }
    }
    return json.dumps(data, separators=(",", ":"))


def rig_extrinsics() -> dict[int, np.ndarray]:
    """Colour camera c -> camera 1 (DESIGN.md convention, ``x_1 = R x_c + t``), c = 0, 1, 2."""
    from mmface4d_datasets.synthetic.takes import camera_extrinsics

    return {c: np.linalg.inv(camera_extrinsics(c)) for c in range(3)}


def device_cameras(camera: int, resolution: str):
    """(colour camera with extrinsics to camera 1, depth camera with extrinsics to its colour camera,
    K4ACameras) of simulated device ``camera`` at a :data:`RESOLUTIONS` preset."""
    from mmface4d_datasets.camera import k4a_cameras

    colour_mode, depth_mode, size = RESOLUTIONS[resolution]
    cams = k4a_cameras(calibration_json(camera), colour_mode, depth_mode, source=f"simulated camera {camera}")
    colour = cams.color
    if size is not None:
        colour = colour.resized(*size)
    colour = colour.with_extrinsics(rig_extrinsics()[camera])
    return colour, cams.depth, cams


# ------------------------------------------------------------------------ smooth random fields
def smooth_field(points: np.ndarray, rng: np.random.Generator, count: int, wavelengths: tuple[float, float]) -> np.ndarray:
    """A smooth scalar field at ``points`` (N, 3): a sum of ``count`` plane waves with random
    directions, phases and wavelengths (metres) log-uniform in ``wavelengths``; zero mean, unit RMS
    over the points."""
    directions = rng.normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    lo, hi = np.log(wavelengths[0]), np.log(wavelengths[1])
    k = 2 * np.pi / np.exp(rng.uniform(lo, hi, size=count))
    phase = rng.uniform(0, 2 * np.pi, size=count)
    values = np.sin(points @ (directions * k[:, None]).T + phase).sum(axis=1)
    values -= values.mean()
    return values / max(float(np.sqrt(np.mean(values**2))), 1e-12)


# ------------------------------------------------------------------------ detail outside the model's span
class SpanProjector:
    """Removes from displacement fields (N, 3) their least-squares component in the span of the
    face model's identity and expression bases and of the six rigid motions about the mean shape,
    so that no linear fit of the model (plus a pose) can represent what is left."""

    def __init__(self, model):
        mean = np.asarray(model.mean, dtype=np.float64)
        n = mean.shape[0]
        centred = mean - mean.mean(axis=0)
        columns = [
            np.asarray(model.identity_basis, dtype=np.float64).reshape(-1, 3 * n),
            np.asarray(model.expression_basis, dtype=np.float64).reshape(-1, 3 * n),
        ]
        rigid = []
        for axis in range(3):
            t = np.zeros((n, 3))
            t[:, axis] = 1.0
            rigid.append(t.reshape(-1))
            e = np.zeros(3)
            e[axis] = 1.0
            rigid.append(np.cross(e, centred).reshape(-1))
        basis = np.concatenate(columns + [np.asarray(rigid)], axis=0).T  # (3N, K)
        self._q, _ = np.linalg.qr(basis)

    def __call__(self, field: np.ndarray) -> np.ndarray:
        flat = np.asarray(field, dtype=np.float64).reshape(-1)
        flat = flat - self._q @ (self._q.T @ flat)
        return flat.reshape(-1, 3)

    def residual_rms(self, field: np.ndarray) -> float:
        """RMS (per vertex, 3-D) of what remains of ``field`` after its best fit in the span."""
        rest = self(field)
        return float(np.sqrt((rest**2).sum(axis=1).mean()))


def detail_patterns(
    model, rng: np.random.Generator, count: int, rms_m: float, wavelengths=(0.02, 0.06), projector: SpanProjector | None = None
) -> np.ndarray:
    """(count, N, 3) displacement fields along the mean shape's normals, smooth over ``wavelengths``
    metres, with their in-span part removed, each scaled to ``rms_m`` metres RMS (3-D, per vertex)."""
    from mmface4d_datasets.render import vertex_normals

    mean = np.asarray(model.mean, dtype=np.float64)
    normals = vertex_normals(mean, np.asarray(model.triangles))
    projector = projector or SpanProjector(model)
    out = np.empty((count, len(mean), 3))
    for i in range(count):
        field = smooth_field(mean, rng, 6, wavelengths)[:, None] * normals
        field = projector(field)
        out[i] = field * (rms_m / max(float(np.sqrt((field**2).sum(axis=1).mean())), 1e-15))
    return out


# ------------------------------------------------------------------------ scenery meshes
def _orient(vertices: np.ndarray, triangles: np.ndarray, outward: np.ndarray) -> np.ndarray:
    """Flip triangles whose normal cross(b - a, c - a) points against ``outward`` (F, 3)."""
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    normal = np.cross(b - a, c - a)
    flip = (normal * outward).sum(axis=1) < 0
    triangles = triangles.copy()
    triangles[flip] = triangles[flip][:, [0, 2, 1]]
    return triangles


def _grid_triangles(rows: int, cols: int, wrap: bool) -> np.ndarray:
    """Triangles of a (rows, cols) vertex grid (columns wrapped around when ``wrap``)."""
    tris = []
    ncols = cols if wrap else cols - 1
    for i in range(rows - 1):
        for j in range(ncols):
            a, b = i * cols + j, i * cols + (j + 1) % cols
            c, d = a + cols, b + cols
            tris += [(a, b, c), (b, d, c)]
    return np.asarray(tris, dtype=np.int64)


def ellipsoid(centre, axes, rows: int = 24, cols: int = 36) -> tuple[np.ndarray, np.ndarray]:
    """A closed-enough UV ellipsoid (poles left open, hidden in practice), outward triangles."""
    theta = np.linspace(0.04 * np.pi, 0.96 * np.pi, rows)
    phi = np.linspace(0, 2 * np.pi, cols, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    unit = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], axis=-1).reshape(-1, 3)
    vertices = np.asarray(centre) + unit * np.asarray(axes)
    triangles = _grid_triangles(rows, cols, wrap=True)
    tri_centre = vertices[triangles].mean(axis=1)
    return vertices, _orient(vertices, triangles, tri_centre - np.asarray(centre))


def cylinder(centre_top, radius_xz, height: float, rows: int = 6, cols: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """An open vertical cylinder (canonical frame, +y up) hanging from ``centre_top``."""
    y = np.linspace(0.0, -height, rows)
    phi = np.linspace(0, 2 * np.pi, cols, endpoint=False)
    yy, pp = np.meshgrid(y, phi, indexing="ij")
    rx, rz = radius_xz
    vertices = np.stack([rx * np.cos(pp), yy, rz * np.sin(pp)], axis=-1).reshape(-1, 3) + np.asarray(centre_top)
    triangles = _grid_triangles(rows, cols, wrap=True)
    outward = vertices[triangles].mean(axis=1) - np.asarray(centre_top)
    outward[:, 1] = 0.0
    return vertices, _orient(vertices, triangles, outward)


def room(depth: float, half_width: float = SIDE_WALL_X, half_height: float = 2.0, near: float = -1.0, rows: int = 21, cols: int = 17):
    """Three walls of a room (camera 1's frame), facing inside: the back wall ``depth`` metres in front
    of camera 1 and side walls at x = +-``half_width`` from z = ``near`` to the back wall."""
    y = np.linspace(-half_height, half_height, rows)
    parts = []
    for side in (-1.0, 0.0, 1.0):
        across = np.linspace(-half_width, half_width, cols) if side == 0 else np.linspace(near, depth, cols)
        yy, aa = np.meshgrid(y, across, indexing="ij")
        if side == 0:
            vertices = np.stack([aa, yy, np.full_like(aa, depth)], axis=-1).reshape(-1, 3)
            inward = [0.0, 0.0, -1.0]
        else:
            vertices = np.stack([np.full_like(aa, side * half_width), yy, aa], axis=-1).reshape(-1, 3)
            inward = [-side, 0.0, 0.0]
        triangles = _grid_triangles(rows, cols, wrap=False)
        parts.append((vertices, _orient(vertices, triangles, np.tile(inward, (len(triangles), 1)))))
    vertices = np.concatenate([p[0] for p in parts])
    offsets = np.cumsum([0] + [len(p[0]) for p in parts[:-1]])
    return vertices, np.concatenate([p[1] + o for p, o in zip(parts, offsets)])


class Scenery:
    """Head shell and neck (rigid with the head, canonical frame) and shoulders and background (static,
    camera 1's frame) around the face mask of ``model``, with per-vertex albedo in 0..1."""

    def __init__(self, model, rng: np.random.Generator, rest_pose: np.ndarray):
        mean = np.asarray(model.mean, dtype=np.float64)
        lo, hi = mean.min(axis=0), mean.max(axis=0)
        cx, cy = (lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2 + 0.01
        a = (hi[0] - lo[0]) / 2 * 1.12
        b = (hi[1] - lo[1]) / 2 * 1.12
        c = 0.105
        # the shell's front lies at least 2 mm behind every mask vertex
        inside = 1 - ((mean[:, 0] - cx) / a) ** 2 - ((mean[:, 1] - cy) / b) ** 2
        cz = float(np.min(mean[:, 2] - c * np.sqrt(np.clip(inside, 0, None)))) - 0.002
        head_v, head_t = ellipsoid((cx, cy, cz), (a, b, c))
        neck_top = (cx, lo[1] + 0.03, cz - 0.01)
        neck_v, neck_t = cylinder(neck_top, (0.055, 0.05), 0.14)
        self.rigid_vertices = np.concatenate([head_v, neck_v])
        self.rigid_triangles = np.concatenate([head_t, neck_t + len(head_v)])
        # shoulders: static, under the neck at the rest pose (camera 1's frame)
        R, t = rest_pose[:3, :3], rest_pose[:3, 3]
        neck_bottom = R @ np.array([cx, lo[1] + 0.03 - 0.14, cz - 0.01]) + t
        shoulders_v, shoulders_t = ellipsoid((0.0, 0.0, 0.0), (0.21, 0.075, 0.12), rows=16, cols=40)
        shoulders_v = shoulders_v + neck_bottom + np.array([0.0, 0.03, 0.0])
        wall_v, wall_t = room(BACKGROUND_DEPTH)
        self.static_vertices = np.concatenate([shoulders_v, wall_v])
        self.static_triangles = np.concatenate([shoulders_t, wall_t + len(shoulders_v)])
        # colours: a skin tone per subject, hair on the back and top of the head, a shirt, a grey wall
        skin = np.array([0.80, 0.62, 0.52]) * rng.uniform(0.6, 1.05) + rng.normal(0, 0.02, 3)
        hair = np.array([0.18, 0.13, 0.10]) * rng.uniform(0.5, 1.6)
        shirt = rng.uniform(0.15, 0.75, 3)
        self.skin = np.clip(skin, 0.05, 0.95)
        head_colour = np.tile(self.skin, (len(head_v), 1))
        back_or_top = (head_v[:, 2] < cz - 0.02) | (head_v[:, 1] > cy + 0.6 * b)
        head_colour[back_or_top] = hair
        neck_colour = np.tile(self.skin * 0.92, (len(neck_v), 1))
        self.rigid_colours = _speckle(np.concatenate([head_colour, neck_colour]), self.rigid_vertices, rng, 0.05)
        wall_colour = np.tile(np.array([0.55, 0.56, 0.58]), (len(wall_v), 1))
        self.static_colours = _speckle(
            np.concatenate([np.tile(shirt, (len(shoulders_v), 1)), wall_colour]), self.static_vertices, rng, 0.08
        )

    def face_colours(self, model, rng: np.random.Generator) -> np.ndarray:
        """Per-vertex albedo of the face mask: the skin tone, redder lips, darker brows, mottling."""
        mean = np.asarray(model.mean, dtype=np.float64)
        colours = np.tile(self.skin, (len(mean), 1))
        masks = model.region_masks()
        if "lips" in masks:
            colours[masks["lips"]] = self.skin * np.array([0.85, 0.55, 0.55])
        brow = np.asarray(model.keypoints)[17:27]
        near_brow = np.min(np.linalg.norm(mean[:, None, :] - mean[brow][None], axis=2), axis=1) < 0.006
        colours[near_brow] = self.skin * 0.45
        return _speckle(colours, mean, rng, 0.06)


def _speckle(colours: np.ndarray, points: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Mottle ``colours`` by ``amount`` (relative) with a smooth field of 5-30 mm wavelengths."""
    field = smooth_field(points, rng, 12, (0.005, 0.03))
    return np.clip(colours * (1 + amount * field[:, None] / 2), 0.0, 1.0)
