"""Landmark layouts: the WFLW 98-point layout (the authors' released 2-D landmarks) and MediaPipe's
468-point face mesh (the default detector's) to iBUG 68.

The standard correspondence, one WFLW index per iBUG point:

| iBUG 68 | part | WFLW 98 |
| --- | --- | --- |
| 0..16 | jaw line | 0, 2, 4, ..., 32 (every other contour point) |
| 17..21 | right brow (image left) | 33..37 (the brow's upper edge) |
| 22..26 | left brow | 42..46 |
| 27..30 | nose bridge | 51..54 |
| 31..35 | nose base | 55..59 |
| 36..41 | right eye | 60, 61, 63, 64, 65, 67 (corner, two upper lid, corner, two lower lid) |
| 42..47 | left eye | 68, 69, 71, 72, 73, 75 |
| 48..59 | outer lip | 76..87 |
| 60..67 | inner lip | 88..95 |

WFLW's points 96 and 97 (pupils) and its brows' lower edges have no iBUG counterpart.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MEDIAPIPE468_TO_IBUG68", "WFLW98_TO_IBUG68", "mediapipe468_to_ibug68", "wflw98_to_ibug68"]

WFLW98_TO_IBUG68 = np.array(
    list(range(0, 33, 2))  # jaw 0..16
    + [33, 34, 35, 36, 37]  # right brow 17..21
    + [42, 43, 44, 45, 46]  # left brow 22..26
    + [51, 52, 53, 54]  # nose bridge 27..30
    + [55, 56, 57, 58, 59]  # nose base 31..35
    + [60, 61, 63, 64, 65, 67]  # right eye 36..41
    + [68, 69, 71, 72, 73, 75]  # left eye 42..47
    + list(range(76, 88))  # outer lip 48..59
    + list(range(88, 96)),  # inner lip 60..67
    dtype=np.int64,
)


def wflw98_to_ibug68(points) -> np.ndarray:
    """(..., 98, D) landmarks in WFLW order -> (..., 68, D) in iBUG order (a copy)."""
    points = np.asarray(points)
    if points.ndim < 2 or points.shape[-2] != 98:
        raise ValueError(f"expected (..., 98, D) WFLW landmarks, found shape {points.shape}")
    return points[..., WFLW98_TO_IBUG68, :].copy()


#: MediaPipe face mesh (468 points, the legacy ``face_mesh`` topology) -> iBUG 68: the commonly used
#: correspondence; a tuple means the iBUG point is the mean of those mesh points. MediaPipe's
#: contour runs higher up the cheeks than iBUG's jaw line (points 0-2 and 14-16 sit nearer the
#: temples), so the jaw agrees least with 68-point detectors; eyes, brows, nose and lips agree best.
MEDIAPIPE468_TO_IBUG68 = (
    # jaw 0..16 (0 = the subject's right, image left in a frontal view)
    127,
    234,
    93,
    (132, 58),
    (58, 172),
    136,
    150,
    176,
    152,
    400,
    379,
    365,
    (397, 288),
    361,
    323,
    454,
    356,
    70,
    63,
    105,
    66,
    107,  # right brow 17..21
    336,
    296,
    334,
    293,
    300,  # left brow 22..26
    (168, 6),
    (197, 195),
    5,
    4,  # nose bridge 27..30
    75,
    97,
    2,
    326,
    305,  # nose base 31..35
    33,
    160,
    158,
    133,
    153,
    144,  # right eye 36..41 (outer corner, two upper lid, inner corner, two lower lid)
    362,
    385,
    387,
    263,
    373,
    380,  # left eye 42..47 (inner corner, two upper lid, outer corner, two lower lid)
    61,
    40,
    37,
    0,
    267,
    270,
    291,
    321,
    314,
    17,
    84,
    91,  # outer lip 48..59
    78,
    82,
    13,
    312,
    308,
    317,
    14,
    87,  # inner lip 60..67
)


def mediapipe468_to_ibug68(points) -> np.ndarray:
    """(..., 468 or 478, D) MediaPipe face-mesh points -> (..., 68, D) in iBUG order (a new array;
    paired points averaged). 478-point meshes (with irises) keep their first 468 points' meaning."""
    points = np.asarray(points)
    if points.ndim < 2 or points.shape[-2] not in (468, 478):
        raise ValueError(f"expected (..., 468, D) MediaPipe face-mesh points, found shape {points.shape}")
    out = [points[..., list(i), :].mean(axis=-2) if isinstance(i, tuple) else points[..., i, :] for i in MEDIAPIPE468_TO_IBUG68]
    return np.stack(out, axis=-2)
