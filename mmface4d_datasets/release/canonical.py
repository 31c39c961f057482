"""Subject templates and the canonical head frame (DESIGN.md, The record).

Rule `template-v1` (what `take_reference`, `subject_template` and `canonical_axes` compute):

1. Stable vertices: the union of the `nose` and `forehead` region masks (they move with the skull,
   not with the jaw or the eyes); without those masks, the nose keypoints 27-35 and the inner and
   outer eye corners 36, 39, 42, 45.
2. Take reference: every frame of a take is aligned rigidly (Kabsch, least squares on the stable
   vertices) onto the take's first frame; the per-vertex median over the aligned frames is the take's
   reference mesh (a talking mouth's median is close to its rest shape).
3. Subject template in the source frame: the references of the subject's neutral takes (emotion
   `neutral`; all its takes when it has none), ordered by take id, aligned onto the first one on the
   stable vertices; the per-vertex median over them.
4. Canonical frame: origin at the centroid of the template's stable vertices; +x along keypoint 36 ->
   45 (the subject's right to left outer eye corner); +y along chin (8) -> brows (mean of 19 and 24),
   made orthogonal to x; +z = x cross y, which points out of the face. Metres. The published template
   is the source-frame template expressed in this frame.

Every frame then gets `head_pose` H (4x4 float32, canonical -> source camera, x_cam = R x + t), the
Kabsch fit of the canonical template's stable vertices onto the frame's, and its canonical vertices
x = H^-1 x_cam, computed in float64 with the float32-ROUNDED H that is stored, so that applying the
stored H to the stored vertices gives back the source up to the codec's error only: per vertex at
most sqrt(3) x the per-coordinate bound (a rotation keeps lengths), plus float32 rounding.
"""

from __future__ import annotations

import numpy as np

TEMPLATE_RULE_VERSION = "template-v1"
TEMPLATE_RULE = (
    "template-v1: frames of each take aligned (Kabsch on nose+forehead vertices) to its first frame and "
    "median-reduced per vertex; the subject's neutral takes' references (all takes if none is neutral), "
    "sorted by take id, aligned to the first and median-reduced per vertex; canonical frame: origin at the "
    "stable vertices' centroid, +x keypoint 36->45, +y chin(8)->brows(19,24) orthogonalised, +z = x cross y "
    "(out of the face), metres"
)

#: The rule of a template the source brings (`write_release(given_templates=...)`), e.g. a FaceFormer
#: layout's templates.pkl: step 4 only.
GIVEN_TEMPLATE_RULE = (
    "given: the source's own neutral template of the subject (e.g. a FaceFormer-layout templates.pkl), put into "
    "the canonical frame by template-v1 step 4 (origin at the stable vertices' centroid, +x keypoint 36->45, +y "
    "chin(8)->brows(19,24) orthogonalised, +z = x cross y), metres"
)

_FALLBACK_STABLE_KEYPOINTS = (27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45)
_FRAME_CHUNK = 64  # frames processed together in float64 (memory: 64 x N x 3 x 8 bytes)


def stable_vertex_ids(region_masks: dict[str, np.ndarray], keypoints: np.ndarray) -> np.ndarray:
    """Sorted int64 ids of the vertices used for rigid alignment (rule step 1).

    Union of the `nose` and `forehead` masks when both exist and together hold at least 3 vertices;
    otherwise the nose keypoints and eye corners of `keypoints` (68, iBUG order).
    """
    parts = [np.asarray(region_masks[name], dtype=np.int64) for name in ("nose", "forehead") if name in region_masks]
    if len(parts) == 2:
        ids = np.unique(np.concatenate(parts))
        if ids.size >= 3:
            return ids
    keypoints = np.asarray(keypoints, dtype=np.int64)
    return np.unique(keypoints[list(_FALLBACK_STABLE_KEYPOINTS)])


def kabsch(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rigid least-squares fit: R, t minimising sum_i ||R source_i + t - target_i||^2 (no scale).

    source, target: (..., K, 3) corresponding points (K >= 3, not collinear), any float dtype.
    Returns R (..., 3, 3) float64 proper rotations (det +1) and t (..., 3) float64.
    """
    rotation, translation, _ = similarity_fit(source, target)
    return rotation, translation


def similarity_fit(
    source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None, *, scale: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | float]:
    """Weighted Kabsch (Umeyama with ``scale``): R, t, s minimising sum_i w_i ||s R source_i + t - target_i||^2.

    source, target: (..., K, 3); weights: (K,) or (..., K), default uniform. s is 1.0 unless ``scale``.
    The one rigid-fit routine of the package: the release's canonical frame and the reconstruction's
    camera alignment and pose fits use it. The unweighted path uses plain means (the release's bytes
    depend on its exact rounding).
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if weights is None:
        w = None
        source_mean = source.mean(axis=-2)
        target_mean = target.mean(axis=-2)
    else:
        w = np.asarray(weights, dtype=np.float64)
        w = w / w.sum(axis=-1, keepdims=True)
        source_mean = np.einsum("...k,...ki->...i", w, source)
        target_mean = np.einsum("...k,...ki->...i", w, target)
    centred_source = source - source_mean[..., None, :]
    centred_target = target - target_mean[..., None, :]
    weighted_target = centred_target if w is None else centred_target * w[..., :, None]
    covariance = np.einsum("...ki,...kj->...ij", weighted_target, centred_source)
    u, singular, vt = np.linalg.svd(covariance)
    # Flip the last axis where the best orthogonal fit is a reflection.
    sign = np.sign(np.linalg.det(u @ vt))
    sign = np.where(sign == 0, 1.0, sign)
    correction = np.ones(u.shape[:-2] + (3,))
    correction[..., 2] = sign
    rotation = (u * correction[..., None, :]) @ vt
    factor = 1.0
    if scale:
        spread = (centred_source**2).sum(axis=-1)
        spread = spread.sum(axis=-1) if w is None else (w * spread).sum(axis=-1)  # as the covariance is summed
        factor = (singular * correction).sum(axis=-1) / spread
    translation = target_mean - np.asarray(factor)[..., None] * np.einsum("...ij,...j->...i", rotation, source_mean)
    return rotation, translation, factor


def _apply(rotation: np.ndarray, translation: np.ndarray, points: np.ndarray) -> np.ndarray:
    """R p + t for points (..., N, 3) (matmul, not einsum: BLAS is several times faster here)."""
    return points @ np.swapaxes(rotation, -1, -2) + translation[..., None, :]


def take_reference(vertices: np.ndarray, stable: np.ndarray) -> np.ndarray:
    """Rule step 2: (T, N, 3) source-frame vertices -> (N, 3) float32 median of the frames aligned to frame 0."""
    vertices = np.asarray(vertices)
    target = vertices[0, stable].astype(np.float64)
    aligned = np.empty(vertices.shape, dtype=np.float32)
    for start in range(0, vertices.shape[0], _FRAME_CHUNK):
        chunk = vertices[start : start + _FRAME_CHUNK].astype(np.float64)
        rotation, translation = kabsch(chunk[:, stable], np.broadcast_to(target, (chunk.shape[0],) + target.shape))
        aligned[start : start + _FRAME_CHUNK] = _apply(rotation, translation, chunk)
    return np.median(aligned, axis=0).astype(np.float32)


def subject_template_source(references: list[np.ndarray], stable: np.ndarray) -> np.ndarray:
    """Rule step 3: take references (already chosen and ordered) -> (N, 3) float64 template, source frame."""
    if not references:
        raise ValueError("subject_template_source needs at least one take reference")
    first = np.asarray(references[0], dtype=np.float64)
    aligned = [first]
    for reference in references[1:]:
        reference = np.asarray(reference, dtype=np.float64)
        rotation, translation = kabsch(reference[stable], first[stable])
        aligned.append(_apply(rotation, translation, reference))
    return np.median(np.stack(aligned), axis=0)


def canonical_axes(template: np.ndarray, keypoints: np.ndarray, stable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rule step 4: rotation A (3, 3, rows = canonical axes in source coordinates) and origin o (3,).

    A canonical point is `A (x_source - o)`. Raises ValueError when the keypoints are degenerate
    (eye corners on top of each other, or chin-brow direction parallel to the eye line).
    """
    template = np.asarray(template, dtype=np.float64)
    keypoints = np.asarray(keypoints, dtype=np.int64)
    x_axis = template[keypoints[45]] - template[keypoints[36]]
    up = 0.5 * (template[keypoints[19]] + template[keypoints[24]]) - template[keypoints[8]]
    if np.linalg.norm(x_axis) < 1e-9:
        raise ValueError("canonical_axes: keypoints 36 and 45 coincide")
    x_axis /= np.linalg.norm(x_axis)
    y_axis = up - np.dot(up, x_axis) * x_axis
    if np.linalg.norm(y_axis) < 1e-9:
        raise ValueError("canonical_axes: the chin-brow direction is parallel to the eye line")
    y_axis /= np.linalg.norm(y_axis)
    z_axis = np.cross(x_axis, y_axis)
    return np.stack([x_axis, y_axis, z_axis]), template[stable].mean(axis=0)


def canonical_template(references: list[np.ndarray], keypoints: np.ndarray, stable: np.ndarray) -> np.ndarray:
    """Rule steps 3 and 4: the subject's template in its canonical frame, (N, 3) float32, metres."""
    return canonical_frame_template(subject_template_source(references, stable), keypoints, stable)


def canonical_frame_template(template: np.ndarray, keypoints: np.ndarray, stable: np.ndarray) -> np.ndarray:
    """Rule step 4 alone: a given source-frame template (N, 3) in its canonical frame, (N, 3) float32."""
    source = np.asarray(template, dtype=np.float64)
    axes, origin = canonical_axes(source, keypoints, stable)
    return ((source - origin) @ axes.T).astype(np.float32)


def canonicalize(vertices: np.ndarray, template: np.ndarray, stable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source-frame (T, N, 3) vertices -> (canonical vertices (T, N, 3) float32, head_pose (T, 4, 4) float32).

    head_pose[t] maps canonical to source: x_source = R x + t with [R t; 0 0 0 1] = head_pose[t], the
    Kabsch fit of `template[stable]` (canonical) onto `vertices[t, stable]`. Canonical vertices are
    the stored (float32) head pose inverted in float64 and applied to the source vertices.
    """
    vertices = np.asarray(vertices)
    template_stable = np.asarray(template, dtype=np.float64)[stable]
    count = vertices.shape[0]
    head_pose = np.zeros((count, 4, 4), dtype=np.float32)
    canonical = np.empty(vertices.shape, dtype=np.float32)
    for start in range(0, count, _FRAME_CHUNK):
        chunk = vertices[start : start + _FRAME_CHUNK].astype(np.float64)
        rotation, translation = kabsch(np.broadcast_to(template_stable, (chunk.shape[0],) + template_stable.shape), chunk[:, stable])
        pose = head_pose[start : start + _FRAME_CHUNK]
        pose[:, :3, :3] = rotation
        pose[:, :3, 3] = translation
        pose[:, 3, 3] = 1.0
        stored_rotation = pose[:, :3, :3].astype(np.float64)
        stored_translation = pose[:, :3, 3].astype(np.float64)
        inverse = np.linalg.inv(stored_rotation)
        canonical[start : start + _FRAME_CHUNK] = (chunk - stored_translation[:, None, :]) @ np.swapaxes(inverse, -1, -2)
    return canonical, head_pose


def to_source_frame(canonical: np.ndarray, head_pose: np.ndarray) -> np.ndarray:
    """Inverse of `canonicalize`: x_source = R x + t per frame; (T, N, 3) float64 out."""
    head_pose = np.asarray(head_pose, dtype=np.float64)
    return _apply(head_pose[:, :3, :3], head_pose[:, :3, 3], np.asarray(canonical, dtype=np.float64))
