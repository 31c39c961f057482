"""Azure Kinect calibration files of a take: ``ID_c.json`` per camera c (DESIGN.md, Takes; the fixture README).

`read_calibration` validates the whole file (required keys and their JSON types, positive size, a
COLUMN-major ``intrinsic_matrix``); `read_intrinsics` gives the camera matrix K.
Every malformed input raises :class:`~mmface4d_datasets.errors.FormatError` naming the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mmface4d_datasets.errors import FormatError

#: Keys of an Azure Kinect calibration file and the JSON types each must have.
CALIBRATION_KEYS = {
    "color_mode": str,
    "depth_mode": str,
    "width": int,
    "height": int,
    "intrinsic_matrix": list,
    "serial_number": str,
    "stream_length_usec": int,
}


def read_calibration(path: str | os.PathLike) -> dict:
    """Read and validate one camera's calibration JSON (``ID_c.json``); returns the whole dict.

    Required keys and JSON types: :data:`CALIBRATION_KEYS` (further keys are kept as they are).
    ``width``/``height`` are positive pixels; ``intrinsic_matrix`` is 9 finite numbers in
    COLUMN-major order ``(fx, 0, 0, 0, fy, 0, cx, cy, 1)`` with fx, fy > 0 - a row-major list (cx at
    position 2) is refused rather than silently transposed.
    Raises FormatError naming the file and the missing key / problem for unreadable or invalid JSON.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FormatError(f"{path}: calibration file is missing") from None
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: calibration is not UTF-8 text: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}: calibration is not valid JSON: {exc}") from exc
    except RecursionError:
        raise FormatError(f"{path}: calibration JSON is nested too deeply to be a calibration") from None
    if not isinstance(data, dict):
        raise FormatError(f"{path}: calibration must be a JSON object, found {type(data).__name__}")
    missing = [key for key in CALIBRATION_KEYS if key not in data]
    if missing:
        raise FormatError(f"{path}: calibration lacks the key(s) {', '.join(missing)}")
    for key, kind in CALIBRATION_KEYS.items():
        value = data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            expected = {str: "a string", int: "an integer", list: "a list"}[kind]
            raise FormatError(f"{path}: calibration key {key!r} must be {expected}, found {value!r}")
    for key in ("width", "height"):
        if data[key] <= 0:
            raise FormatError(f"{path}: calibration key {key!r} must be positive, found {data[key]}")
    _intrinsics_from_list(data["intrinsic_matrix"], path)
    return data


def _intrinsics_from_list(values, path: Path) -> np.ndarray:
    if len(values) != 9 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise FormatError(f"{path}: intrinsic_matrix must be a list of 9 numbers, found {values!r}")
    matrix = np.asarray(values, dtype=np.float64).reshape(3, 3, order="F")
    if not np.isfinite(matrix).all():
        raise FormatError(f"{path}: intrinsic_matrix holds NaN or infinite values")
    if matrix[1, 0] != 0 or matrix[2, 0] != 0 or matrix[2, 1] != 0 or matrix[2, 2] != 1:
        raise FormatError(f"{path}: intrinsic_matrix is not column-major (fx, 0, 0, 0, fy, 0, cx, cy, 1): {values!r}")
    if matrix[0, 0] <= 0 or matrix[1, 1] <= 0:
        raise FormatError(f"{path}: intrinsic_matrix has non-positive focal lengths: {values!r}")
    return matrix


def read_intrinsics(path: str | os.PathLike) -> np.ndarray:
    """The camera matrix K (3, 3) float64 of a calibration JSON, in pixels.

    ``K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` from the column-major ``intrinsic_matrix`` list;
    the file is validated by :func:`read_calibration` first.
    """
    path = Path(path)
    return _intrinsics_from_list(read_calibration(path)["intrinsic_matrix"], path)
