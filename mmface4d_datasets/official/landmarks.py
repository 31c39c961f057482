"""2-D facial landmarks of a take: the authors' ``ID_c.pkl`` (a pickled float64 array (T, 98, 2) in pixels,
read through the restricted unpickler of :mod:`mmface4d_datasets.safe_pickle`) or our rig's
``ID_c.landmarks.npy``; and the check that a take's landmarks match its mesh frames.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mmface4d_datasets.errors import FormatError

#: Landmark layouts a take may carry: 98 points (WFLW / HRNetv2, the authors' files) or 68 (iBUG).
LANDMARK_POINTS = (98, 68)
#: Frames by which a take's landmarks may differ from its mesh sequence: none (the authors' sample
#: has 67 of each; a landmark per mesh frame is what the raw config promises).
LANDMARK_FRAME_TOLERANCE = 0


def check_landmarks_agree(
    landmarks: np.ndarray, num_frames: int, path: str | os.PathLike, tolerance: int = LANDMARK_FRAME_TOLERANCE
) -> None:
    """Raise FormatError naming ``path`` unless the landmarks have as many frames as the take's mesh
    sequence (``num_frames``, within ``tolerance`` frames, stated in the message)."""
    frames = int(np.asarray(landmarks).shape[0])
    if abs(frames - int(num_frames)) > tolerance:
        allowed = "exactly" if tolerance == 0 else f"within {tolerance} frame(s) of"
        raise FormatError(
            f"{path}: landmarks hold {frames} frames, the take's mesh sequence {num_frames}; "
            f"they must have {allowed} as many (one landmark set per mesh frame)"
        )


def read_landmarks(path: str | os.PathLike) -> np.ndarray:
    """2-D facial landmarks of one camera, (T, K, 2) float64 in pixels (K = 98 in the authors' files,
    or 68; see :data:`LANDMARK_POINTS`).

    ``ID_c.pkl`` (the authors') is read through the restricted unpickler (numpy arrays only; any
    other global raises UnsafePickleError and is never executed); ``ID_c.landmarks.npy`` (our rig)
    with ``np.load(allow_pickle=False)``. Raises FormatError naming the file for another shape, a
    non-numeric dtype, or NaN/Inf values.
    """
    from mmface4d_datasets.safe_pickle import load_array

    path = Path(path)
    if path.name.endswith(".npy"):
        from mmface4d_datasets.files import read_npy

        try:
            array = read_npy(path)  # header checked against the file's size before allocating
        except FileNotFoundError:
            raise FormatError(f"{path}: landmark file is missing") from None
        except FormatError:
            raise
        except ValueError as exc:  # object arrays need pickle: refused
            raise FormatError(f"{path}: not a plain numeric .npy array: {exc}") from exc
        if array.dtype.kind not in "iuf":
            raise FormatError(f"{path}: landmark array has dtype {array.dtype}, expected numbers")
    else:
        array = load_array(path, kinds="iuf")
    if array.ndim != 3 or array.shape[2] != 2 or array.shape[0] < 1:
        raise FormatError(f"{path}: landmarks must be (T, K, 2), found shape {array.shape}")
    if array.shape[1] not in LANDMARK_POINTS:
        raise FormatError(f"{path}: landmarks hold {array.shape[1]} points per frame, expected 98 (WFLW) or 68 (iBUG)")
    array = array.astype(np.float64, copy=False)
    finite = np.isfinite(array).all(axis=(1, 2))
    if not finite.all():
        raise FormatError(f"{path}: landmarks of frame {int(np.flatnonzero(~finite)[0])} hold NaN or Inf")
    return array
