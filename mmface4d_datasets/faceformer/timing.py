"""Frame-rate conversion of vertex sequences: linear interpolation in time, exact where frames coincide.

Frame k of a sequence at ``fps`` is the instant ``k / fps`` (frame 0 at time 0, as audio-driven codes
align frames with audio). Converting from ``source_fps`` to ``target_fps``, target frame k is the
source at time ``k / target_fps``: at source position ``p = k * source_fps / target_fps`` (an exact
fraction), ``(1 - f) * x[floor p] + f * x[floor p + 1]`` with ``f = p - floor p``, in float64, rounded
to float32 once. A target instant past the last source frame holds the last frame. Where ``f = 0`` the
source frame is copied bit for bit, so 30 -> 60 fps keeps every source frame at the even indices
(their vocaset loader's ``[::2]`` gives the 30 fps frames back exactly) and 60 -> 30 is ``[::2]``.
"""

from __future__ import annotations

import numpy as np


def frames_at_rate(num_frames: int, source_fps: int, target_fps: int) -> int:
    """Frames at ``target_fps`` that cover the instants of ``num_frames`` source frames:
    ``floor((num_frames - 1) * target_fps / source_fps) + 1`` (30 -> 60: 2T - 1; 30 -> 25: about 5T/6)."""
    if num_frames < 1:
        raise ValueError(f"a sequence needs at least one frame, got {num_frames}")
    if source_fps < 1 or target_fps < 1:
        raise ValueError(f"frame rates must be positive, got {source_fps} and {target_fps}")
    return (int(num_frames) - 1) * int(target_fps) // int(source_fps) + 1


def resample_frames(vertices: np.ndarray, source_fps: int, target_fps: int, num_frames: int | None = None) -> np.ndarray:
    """``vertices`` (T, ...) at ``source_fps`` -> (num_frames, ...) float32 at ``target_fps`` (module docstring).

    ``num_frames`` defaults to :func:`frames_at_rate`; more frames than that hold the last source frame.
    The same rates return a float32 copy (cut or held to ``num_frames``).
    """
    vertices = np.asarray(vertices)
    count = vertices.shape[0]
    total = frames_at_rate(count, source_fps, target_fps) if num_frames is None else int(num_frames)
    if total < 1:
        raise ValueError(f"num_frames must be positive, got {total}")
    positions = np.arange(total, dtype=np.int64) * int(source_fps)
    lower = np.minimum(positions // int(target_fps), count - 1)
    remainder = np.where(positions // int(target_fps) >= count - 1, 0, positions % int(target_fps))
    upper = np.minimum(lower + 1, count - 1)
    out = vertices[lower].astype(np.float32, copy=True)
    between = np.nonzero(remainder)[0]
    if between.size:
        weight = (remainder[between] / int(target_fps)).reshape((-1,) + (1,) * (vertices.ndim - 1))
        low = vertices[lower[between]].astype(np.float64)
        high = vertices[upper[between]].astype(np.float64)
        out[between] = ((1.0 - weight) * low + weight * high).astype(np.float32)
    return out
