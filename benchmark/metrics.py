"""Vertex-error metrics of the benchmark: pure functions on (T, N, 3) arrays in metres.

The authors' convention (MMFace4D Table II), for ground truth G and prediction P of one
sequence, with d[t, v] = ||G[t, v] - P[t, v]||_2 (Euclidean distance, metres):

- ``lip_max``   = mean over t of (max over v in lips of d[t, v])        (Table II "LVE")
- ``lip_mean``  = mean over t and over v in lips of d[t, v]
- ``upper_max`` = mean over t of (max over v in upper_face of d[t, v])
- ``face_max``  = mean over t of (max over all v of d[t, v])

The split score is the mean of these per-sequence values over sequences.

The CodeTalker convention (CodeTalker's and FaceFormer's public evaluation scripts and their
followers), offered by name so numbers compare with that family:

- ``lve_sq``  = mean over ALL frames pooled across sequences of (max over v in lips of d[t, v]^2):
  squared distances (m^2), frames pooled, so long sequences weigh more.
- ``fdd``     = mean over sequences of dyn(G) - dyn(P), where
  dyn(X) = mean over v in upper_face of std over t of ||X[t, v] - template[v]||^2
  (population std, m^2; signed, as their script: positive when the prediction moves the
  upper face less than the ground truth).

Everything here is vectorised per frame in float32 (one frame of 35,709 vertices is 428 KB,
which stays in cache), with per-frame results accumulated in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The authors' four metrics, in Table II order.
METRIC_NAMES = ("lip_max", "lip_mean", "upper_max", "face_max")
#: The CodeTalker-style metrics.
CODETALKER_NAMES = ("lve_sq", "fdd")


class MetricInputError(ValueError):
    """Arrays or index sets that the metrics cannot be computed on (shape, dtype, range)."""


def _as_sequence(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[2] != 3:
        raise MetricInputError(f"{name} must have shape (T, N, 3); got {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise MetricInputError(f"{name} is empty: shape {array.shape}")
    # float32 everywhere: a float64 input would double the memory traffic of the hot loop.
    return np.ascontiguousarray(array, dtype=np.float32)


def _as_indices(indices: np.ndarray, num_vertices: int, name: str) -> np.ndarray:
    indices = np.asarray(indices)
    if indices.dtype == bool:
        if indices.shape != (num_vertices,):
            raise MetricInputError(f"{name} boolean mask must have shape ({num_vertices},); got {indices.shape}")
        indices = np.flatnonzero(indices)
    if indices.ndim != 1 or indices.size == 0:
        raise MetricInputError(f"{name} must be a non-empty 1-D array of vertex indices; got shape {indices.shape}")
    if not np.issubdtype(indices.dtype, np.integer):
        raise MetricInputError(f"{name} must hold integer vertex indices; got dtype {indices.dtype}")
    if indices.min() < 0 or indices.max() >= num_vertices:
        raise MetricInputError(f"{name} holds indices outside [0, {num_vertices}): min {indices.min()}, max {indices.max()}")
    # Sorted indices gather with better locality; the metrics do not depend on the order.
    return np.sort(indices).astype(np.intp, copy=False)


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt = _as_sequence(gt, "gt")
    pred = _as_sequence(pred, "pred")
    if gt.shape != pred.shape:
        raise MetricInputError(f"gt and pred differ in shape: {gt.shape} vs {pred.shape}")
    return gt, pred


@dataclass(frozen=True)
class FrameErrors:
    """Per-frame reductions of one sequence, float64 arrays of shape (T,).

    ``lip_max_sq``, ``upper_max_sq``, ``face_max_sq`` are maxima of SQUARED distances (m^2)
    (the square root of a maximum is the maximum of square roots, so both conventions share
    them); ``lip_mean`` is the mean Euclidean distance over lip vertices (metres).
    """

    lip_max_sq: np.ndarray
    lip_mean: np.ndarray
    upper_max_sq: np.ndarray
    face_max_sq: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.lip_mean.shape[0])

    def sequence_errors(self) -> dict[str, float]:
        """The authors' four metrics of the sequence (metres): per-frame values averaged over t."""
        return {
            "lip_max": float(np.sqrt(self.lip_max_sq).mean()),
            "lip_mean": float(self.lip_mean.mean()),
            "upper_max": float(np.sqrt(self.upper_max_sq).mean()),
            "face_max": float(np.sqrt(self.face_max_sq).mean()),
        }


def frame_errors(gt: np.ndarray, pred: np.ndarray, lips: np.ndarray, upper_face: np.ndarray) -> FrameErrors:
    """Per-frame maxima and means of the vertex distance between ``gt`` and ``pred``.

    Args:
        gt, pred: (T, N, 3) arrays in metres (converted to float32), same shape, T >= 1.
        lips, upper_face: vertex index arrays (or boolean masks of length N), non-empty.

    Returns:
        :class:`FrameErrors` with (T,) float64 arrays.

    Raises:
        MetricInputError: shapes differ, an array is empty, or an index is out of range.
    """
    gt, pred = _check_pair(gt, pred)
    num_frames, num_vertices, _ = gt.shape
    lips = _as_indices(lips, num_vertices, "lips")
    upper_face = _as_indices(upper_face, num_vertices, "upper_face")

    lip_max_sq = np.empty(num_frames)
    lip_mean = np.empty(num_frames)
    upper_max_sq = np.empty(num_frames)
    face_max_sq = np.empty(num_frames)
    # Buffers reused for every frame: no allocation in the loop.
    diff = np.empty((num_vertices, 3), dtype=np.float32)
    squared = np.empty(num_vertices, dtype=np.float32)
    lip_buffer = np.empty(lips.size, dtype=np.float32)
    upper_buffer = np.empty(upper_face.size, dtype=np.float32)
    for t in range(num_frames):
        np.subtract(gt[t], pred[t], out=diff)
        np.multiply(diff, diff, out=diff)
        np.add(diff[:, 0], diff[:, 1], out=squared)
        np.add(squared, diff[:, 2], out=squared)
        face_max_sq[t] = squared.max()
        np.take(squared, upper_face, out=upper_buffer)
        upper_max_sq[t] = upper_buffer.max()
        np.take(squared, lips, out=lip_buffer)
        lip_max_sq[t] = lip_buffer.max()
        np.sqrt(lip_buffer, out=lip_buffer)
        lip_mean[t] = lip_buffer.sum(dtype=np.float64) / lips.size
    return FrameErrors(lip_max_sq, lip_mean, upper_max_sq, face_max_sq)


def sequence_errors(gt: np.ndarray, pred: np.ndarray, lips: np.ndarray, upper_face: np.ndarray) -> dict[str, float]:
    """The authors' four metrics for one sequence, in metres.

    With d[t, v] = ||gt[t, v] - pred[t, v]||_2:
    ``lip_max`` = mean_t max_{v in lips} d, ``lip_mean`` = mean_{t, v in lips} d,
    ``upper_max`` = mean_t max_{v in upper_face} d, ``face_max`` = mean_t max_v d.

    Args:
        gt, pred: (T, N, 3) ground truth and prediction, metres, same shape, T >= 1.
        lips, upper_face: vertex index arrays (or boolean masks of length N), non-empty.

    Returns:
        ``{"lip_max": ..., "lip_mean": ..., "upper_max": ..., "face_max": ...}`` as Python floats.
    """
    return frame_errors(gt, pred, lips, upper_face).sequence_errors()


def upper_face_dynamics(vertices: np.ndarray, template: np.ndarray, upper_face: np.ndarray) -> float:
    """dyn(X) = mean over v in upper_face of std over t of ||X[t, v] - template[v]||^2 (m^2).

    The std is the population standard deviation (ddof=0), as numpy's default in CodeTalker's
    script. A single frame gives 0. Accumulates in float64, frame by frame (a shifted sum of
    squares, so the (T, |upper_face|) matrix is never held).
    """
    vertices = _as_sequence(vertices, "vertices")
    num_frames, num_vertices, _ = vertices.shape
    template = np.asarray(template, dtype=np.float32)
    if template.shape != (num_vertices, 3):
        raise MetricInputError(f"template must have shape ({num_vertices}, 3); got {template.shape}")
    upper_face = _as_indices(upper_face, num_vertices, "upper_face")
    template_upper = template[upper_face]
    shift = None
    total = np.zeros(upper_face.size)
    total_sq = np.zeros(upper_face.size)
    for t in range(num_frames):
        displacement = vertices[t, upper_face] - template_upper
        value = np.einsum("vc,vc->v", displacement, displacement).astype(np.float64)
        if shift is None:
            shift = value  # subtracting the first frame keeps the sums small (no cancellation)
        centred = value - shift
        total += centred
        total_sq += centred * centred
    mean = total / num_frames
    variance = np.maximum(total_sq / num_frames - mean * mean, 0.0)
    return float(np.sqrt(variance).mean())


def upper_face_dynamics_deviation(gt: np.ndarray, pred: np.ndarray, template: np.ndarray, upper_face: np.ndarray) -> float:
    """FDD of one sequence: ``upper_face_dynamics(gt) - upper_face_dynamics(pred)`` (m^2, signed).

    The split's FDD is the mean of this value over sequences (CodeTalker's convention).
    """
    gt, pred = _check_pair(gt, pred)
    return upper_face_dynamics(gt, template, upper_face) - upper_face_dynamics(pred, template, upper_face)


def lip_vertex_error_squared(gt: np.ndarray, pred: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """Per-frame max over lip vertices of the SQUARED distance, (T,) float64 (m^2).

    CodeTalker's LVE of a split is the mean of these values over all frames of all sequences.
    """
    gt, pred = _check_pair(gt, pred)
    lips = _as_indices(lips, gt.shape[1], "lips")
    diff = gt[:, lips] - pred[:, lips]
    return np.einsum("tvc,tvc->tv", diff, diff).max(axis=1).astype(np.float64)
