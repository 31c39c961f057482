"""Measures of how good synthetic takes are: audio-visual sync, speaker style, motion statistics.

Pure numpy functions, used by the tests and by ``perf/synthetic.py``:

- sync: :func:`lagged_correlations` of the mouth opening (inner-lip keypoints 62 and 66) with the
  speech envelope (per-frame RMS); synchronised speech correlates best near lag 0;
- style: :func:`region_axis_speed`, the paper's V(region, axis) statistic (mean absolute vertex
  velocity per axis over a region), as per-sequence features for :func:`nearest_centroid_accuracy`;
- realism: the same statistic, and the mean lip vertex speed (:func:`region_speed`), beside a real take's.
"""

from __future__ import annotations

import numpy as np

INNER_LIP_TOP, INNER_LIP_BOTTOM = 62, 66  # iBUG keypoints at the middle of the inner lips


def speech_envelope(samples: np.ndarray, sample_rate: int, num_frames: int, fps: float = 30.0) -> np.ndarray:
    """(T,) RMS of the samples inside each frame's interval [t/fps, (t+1)/fps) (zero past the end)."""
    samples = np.asarray(samples, dtype=np.float64)
    bounds = np.round(np.arange(num_frames + 1) / fps * sample_rate).astype(int)
    out = np.zeros(num_frames)
    for t in range(num_frames):
        chunk = samples[bounds[t] : bounds[t + 1]]
        out[t] = np.sqrt(np.mean(chunk**2)) if chunk.size else 0.0
    return out


def mouth_opening(vertices: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """(T,) metres between the inner-lip keypoints 62 and 66 of (T, N, 3) vertices."""
    top = vertices[:, keypoints[INNER_LIP_TOP]].astype(np.float64)
    bottom = vertices[:, keypoints[INNER_LIP_BOTTOM]].astype(np.float64)
    return np.linalg.norm(top - bottom, axis=-1)


def lagged_correlations(a: np.ndarray, b: np.ndarray, max_lag: int) -> dict[int, float]:
    """Pearson correlation of ``a[t]`` with ``b[t + lag]`` for lag in -max_lag..max_lag (overlap only).

    A positive lag pairs ``a`` with LATER ``b``. NaN where an overlap is shorter than 3 frames or constant.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = {}
    for lag in range(-max_lag, max_lag + 1):
        x = a[max(0, -lag) : len(a) - max(0, lag)]
        y = b[max(0, lag) : len(b) - max(0, -lag)]
        n = min(len(x), len(y))
        x, y = x[:n], y[:n]
        if n < 3 or x.std() == 0 or y.std() == 0:
            out[lag] = float("nan")
        else:
            out[lag] = float(np.corrcoef(x, y)[0, 1])
    return out


def region_axis_speed(vertices: np.ndarray, region: np.ndarray) -> np.ndarray:
    """V(region, axis): (3,) mean over frames t and vertices v in ``region`` of |x[t+1, v, a] - x[t, v, a]|.

    Metres per frame (multiply by the fps for metres per second); zeros for fewer than two frames.
    """
    vertices = np.asarray(vertices)
    if vertices.shape[0] < 2:
        return np.zeros(3)
    part = vertices[:, np.asarray(region)].astype(np.float64)
    return np.abs(np.diff(part, axis=0)).mean(axis=(0, 1))


def region_speed(vertices: np.ndarray, region: np.ndarray) -> float:
    """Mean over frames t and vertices v in ``region`` of ||x[t+1, v] - x[t, v]|| (metres per frame; 0 for T < 2)."""
    vertices = np.asarray(vertices)
    if vertices.shape[0] < 2:
        return 0.0
    part = vertices[:, np.asarray(region)].astype(np.float64)
    return float(np.linalg.norm(np.diff(part, axis=0), axis=-1).mean())


def nearest_centroid_accuracy(features: np.ndarray, labels, *, chunk: int = 512) -> float:
    """Leave-one-out accuracy of a nearest-centroid classifier on standardised features.

    Each sequence is classified by the nearest class centroid (Euclidean, after z-scoring every
    feature over all sequences) computed WITHOUT that sequence; a class left with no other
    sequence cannot be predicted for it (counts as an error). Ties go to the first class in sorted
    order. Returns the fraction correct. Vectorised: sequences ``chunk`` at a time against all
    centroids, so tens of thousands of sequences and hundreds of classes take seconds.
    """
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if len(features) == 0:
        return 0.0
    features = features.reshape(len(features), -1)
    scale = features.std(axis=0)
    z = (features - features.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    classes, own = np.unique(labels, return_inverse=True)
    counts = np.bincount(own, minlength=len(classes)).astype(np.float64)
    sums = np.zeros((len(classes), z.shape[1]))
    np.add.at(sums, own, z)
    centroids = sums / counts[:, None]
    correct = 0
    for begin in range(0, len(z), chunk):
        rows = np.arange(begin, min(begin + chunk, len(z)))
        distance = np.linalg.norm(z[rows, None, :] - centroids[None, :, :], axis=-1)
        # The own class's centroid without the sequence itself (none when it is the class's only one).
        left = counts[own[rows]] - 1
        with np.errstate(invalid="ignore", divide="ignore"):
            own_centroid = (sums[own[rows]] - z[rows]) / left[:, None]
        own_distance = np.where(left > 0, np.linalg.norm(z[rows] - own_centroid, axis=-1), np.inf)
        distance[np.arange(len(rows)), own[rows]] = own_distance
        predicted = np.argmin(distance, axis=1)
        correct += int(np.count_nonzero((predicted == own[rows]) & np.isfinite(distance.min(axis=1))))
    return correct / len(z)
