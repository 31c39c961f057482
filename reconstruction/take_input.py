"""One take's inputs, read through the core: cameras, registered depth, 2-D landmarks.

A take folder (DESIGN.md "Takes") holds ``ID_c.json``, ``ID_c.nut`` (depth registered to the
colour camera, millimetres) and ``ID_c.landmarks.npy`` (float32 (T, 68 or 98, 2) pixels, NaN where
missing) for cameras c = 0, 1, 2, plus ``ID.wav`` and ``ID.meta.json``. Camera 1 (frontal) is
required; a side camera whose files are absent, or whose landmark file is all NaN (a detector
found no face in that view), is left out (the fit then uses fewer views) and the fit report says so. 98-point WFLW landmarks are mapped to the iBUG 68.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmface4d_datasets.camera import Camera, read_take_cameras
from mmface4d_datasets.errors import FormatError
from reconstruction.errors import TakeInputError

CAMERAS = (0, 1, 2)
REFERENCE = 1


@dataclass
class TakeInput:
    """Decoded inputs of one take.

    ``cameras``: {c: colour Camera} (extrinsics to camera 1 as the file states them, None where
    unknown); ``depth``: {c: (T, H, W) uint16 millimetres as decoded, 0 = none}; ``landmarks``: {c: (T, 68, 2)
    float64 pixels, NaN where missing}; ``missing``: {c: why a camera was left out}.
    """

    take_id: str
    folder: Path
    cameras: dict
    depth: dict
    landmarks: dict
    missing: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    decode_seconds: float = 0.0

    @property
    def num_frames(self) -> int:
        return int(self.depth[REFERENCE].shape[0])

    @property
    def views(self) -> list[int]:
        return sorted(self.cameras)


def find_take_id(folder: Path) -> str:
    """The six-digit take id of a take folder (from ``ID.meta.json``, ``ID_1.json`` or the folder name)."""
    for pattern in ("*.meta.json", "*_1.json"):
        for path in sorted(folder.glob(pattern)):
            stem = path.name.split(".")[0].split("_")[0]
            if stem.isdigit():
                return stem
    if folder.name.isdigit():
        return folder.name
    raise TakeInputError(f"{folder}: not a take folder (no ID.meta.json or ID_1.json)")


def _landmarks_68(landmarks: np.ndarray) -> np.ndarray:
    if landmarks.shape[1] == 98:
        from mmface4d_datasets.facemodel.landmarks import wflw98_to_ibug68

        landmarks = wflw98_to_ibug68(landmarks)
    return landmarks.astype(np.float64)


def read_take_input(folder: str | os.PathLike, *, max_frames: int | None = None) -> TakeInput:
    """Read a take folder's inputs (see the module docstring). Raises :class:`TakeInputError` naming
    the file for: no camera 1, missing or empty landmark files, depth all zero, frame counts that
    disagree, landmarks beside depth of another length."""
    import time

    from mmface4d_datasets import take_files

    folder = Path(folder)
    if not folder.is_dir():
        raise TakeInputError(f"{folder}: take folder not found")
    take_id = find_take_id(folder)
    started = time.perf_counter()
    cameras, depth, landmarks, missing = {}, {}, {}, {}
    for c in CAMERAS:
        calib = folder / f"{take_id}_{c}.json"
        dpath = take_files.depth_path(folder, take_id, c)
        lpath = take_files.landmarks_path(folder, take_id, c)
        absent = [p.name for p in (calib, dpath, lpath) if not p.exists()]
        if absent:
            if c == REFERENCE:
                raise TakeInputError(f"take {take_id} ({folder}): camera 1 (the reference) lacks {', '.join(absent)}")
            if lpath.name in absent and len(absent) == 1:
                raise TakeInputError(f"take {take_id}: {lpath} is missing (camera {c} has depth but no landmarks)")
            missing[c] = f"missing {', '.join(absent)}"
            continue
        try:
            colour, _ = read_take_cameras(calib, c)
            lm = take_files.read_landmarks(lpath)
        except FormatError as exc:
            raise TakeInputError(f"take {take_id}: {exc}") from None
        if lm.shape[0] == 0 or np.isnan(lm).all():
            if c != REFERENCE and lm.shape[0]:  # a side view where the detector found no face: fit without it
                missing[c] = f"{lpath.name} holds no landmarks (no face found in any frame)"
                continue
            raise TakeInputError(f"take {take_id}: {lpath} holds no landmarks (empty or all NaN)")
        try:
            frames = take_files.read_depth_video(dpath) if max_frames is None else _first_depth_frames(dpath, max_frames)
        except FormatError as exc:
            raise TakeInputError(f"take {take_id}: {exc}") from None
        if not frames.any():
            raise TakeInputError(f"take {take_id}: {dpath} holds no depth (every pixel is 0)")
        if frames.shape[1:] != (colour.height, colour.width):
            raise TakeInputError(
                f"take {take_id}: {dpath} is {frames.shape[2]}x{frames.shape[1]} pixels but "
                f"{calib.name} says {colour.width}x{colour.height} (depth must be registered to colour)"
            )
        recorded = int(lm.shape[0])  # the take's frame count (landmarks are never cut by max_frames)
        if max_frames is not None:
            lm = lm[:max_frames]
        if lm.shape[0] != frames.shape[0]:
            raise TakeInputError(f"take {take_id}: {lpath} has {lm.shape[0]} frames, {dpath.name} has {frames.shape[0]}")
        cameras[c], depth[c], landmarks[c] = colour, frames, _landmarks_68(lm)
    counts = {c: d.shape[0] for c, d in depth.items()}
    if len(set(counts.values())) != 1:
        raise TakeInputError(f"take {take_id}: cameras have different frame counts {counts}")
    meta = {}
    meta_path = folder / f"{take_id}.meta.json"
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TakeInputError(f"take {take_id}: {meta_path} is not readable JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise TakeInputError(f"take {take_id}: {meta_path} holds a JSON {type(meta).__name__}, not an object")
    frames_stated = meta.get("num_frames")
    if frames_stated is not None and frames_stated != recorded:
        raise TakeInputError(f"take {take_id}: {meta_path.name} says num_frames {frames_stated!r}, the take's files hold {recorded} frames")
    _check_audio(folder / f"{take_id}.wav", take_id, recorded, meta.get("fps", 30))
    return TakeInput(take_id, folder, cameras, depth, landmarks, missing, meta, time.perf_counter() - started)


#: How far a take's speech may run past or fall short of its video, in frames (the rig aligns it to the grid).
AUDIO_SLACK_FRAMES = 2


def _check_audio(path: Path, take_id: str, frames: int, fps) -> None:
    """The take's WAV decodes (16 kHz mono, `official.read_audio`) and lasts as long as its video, within
    AUDIO_SLACK_FRAMES frames; a `TakeInputError` naming the file otherwise. An absent WAV is left to the
    writer, which names it."""
    import soundfile

    from mmface4d_datasets import official

    if not path.exists():
        return
    try:
        official.read_audio(path)
        seconds = soundfile.info(os.fspath(path)).duration
    except (FormatError, RuntimeError) as exc:
        raise TakeInputError(f"take {take_id}: {exc}") from None
    try:
        video = frames / float(fps)
    except (TypeError, ValueError, ZeroDivisionError):
        raise TakeInputError(f"take {take_id}: meta.json fps {fps!r} is not a frame rate") from None
    if abs(seconds - video) > AUDIO_SLACK_FRAMES / float(fps):
        raise TakeInputError(
            f"take {take_id}: {path} lasts {seconds:.3f} s, the video {video:.3f} s ({frames} frames at {fps} fps); "
            f"they must agree within {AUDIO_SLACK_FRAMES} frames"
        )


def _first_depth_frames(path: Path, count: int) -> np.ndarray:
    from mmface4d_datasets.take_files import iter_depth_video

    frames = []
    for frame in iter_depth_video(path):
        frames.append(frame)
        if len(frames) >= count:
            break
    return np.stack(frames) if frames else np.zeros((0, 1, 1), np.uint16)


def reference_camera(cameras: dict) -> Camera:
    return cameras[REFERENCE]
