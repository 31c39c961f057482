"""Landmark layouts: the WFLW 98-point layout (the authors' released 2-D landmarks) to iBUG 68.

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

__all__ = ["WFLW98_TO_IBUG68", "wflw98_to_ibug68"]

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
