"""Camera alignment of one take: extrinsics of the side cameras to camera 1.

1. Lift each camera's 2-D landmarks by its registered depth (:func:`lift_landmarks`), pool the
   landmarks seen by both cameras over the first frames, and solve the rigid transform by Kabsch
   (:func:`kabsch`): ``x_1 = R x_c + t``.
2. Refine by point-to-plane ICP (:func:`point_to_plane_icp`) of camera c's face point cloud onto
   camera 1's (normals from the depth image), nearest neighbours by ``scipy.spatial.cKDTree``.
"""

from __future__ import annotations

import numpy as np

from mmface4d_datasets.camera import Camera
from mmface4d_datasets.release.canonical import similarity_fit
from reconstruction.errors import ReconstructionError

#: Landmarks lifted from depth nearer than this (metres) are ignored (the authors' 0.1 m).
MIN_DEPTH = 0.1


def lift_landmarks(depth_mm: np.ndarray, landmarks: np.ndarray, camera: Camera, *, window: int = 1) -> np.ndarray:
    """3-D points (K, 3) metres in the camera's frame of 2-D landmarks (K, 2) pixels: the median valid
    depth in the (2 window + 1)^2 pixels around each landmark, unprojected. NaN where the landmark is
    missing, outside the image or without depth beyond :data:`MIN_DEPTH`."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    out = np.full((len(landmarks), 3), np.nan)
    ok = np.isfinite(landmarks).all(1)
    ij = np.round(np.nan_to_num(landmarks, nan=-1e6)).astype(np.int64)
    H, W = depth_mm.shape
    ok &= (ij[:, 0] >= window) & (ij[:, 0] < W - window) & (ij[:, 1] >= window) & (ij[:, 1] < H - window)
    z = np.full(len(landmarks), np.nan)
    for k in np.flatnonzero(ok):
        u, v = ij[k]
        patch = depth_mm[v - window : v + window + 1, u - window : u + window + 1]
        patch = patch[patch > 0]
        if patch.size:
            z[k] = np.median(patch) / 1000.0
    ok &= np.isfinite(z) & (np.nan_to_num(z) > MIN_DEPTH)
    if ok.any():
        out[ok] = camera.unproject(landmarks[ok], z[ok])
    return out


def kabsch(source: np.ndarray, target: np.ndarray, weights=None, *, scale: bool = False):
    """Rigid (or similarity) transform minimising sum w ||s R source + t - target||^2.

    ``source``, ``target`` (K, 3) with K >= 3 not collinear. Returns (R (3, 3), t (3,), s); s = 1
    unless ``scale``. Raises :class:`ReconstructionError` for fewer than 3 points. The fit itself is
    the core's :func:`~mmface4d_datasets.release.canonical.similarity_fit`."""
    if len(source) < 3:
        raise ReconstructionError(f"Kabsch needs at least 3 point pairs, found {len(source)}")
    R, t, s = similarity_fit(source, target, weights, scale=scale)
    return R, t, float(s)


def rotation_from_vector(w: np.ndarray) -> np.ndarray:
    """Rodrigues: the rotation matrix of the axis-angle vector ``w`` (3,)."""
    theta = float(np.linalg.norm(w))
    K = np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]])
    if theta < 1e-12:
        return np.eye(3) + K
    K = K / theta
    return np.eye(3) + np.sin(theta) * K + (1 - np.cos(theta)) * K @ K


def depth_cloud(depth_mm: np.ndarray, camera: Camera, box=None, step: int = 1):
    """Points (M, 3) and unit normals (M, 3) in the camera's frame of a depth image (inside ``box``
    = (u0, v0, u1, v1) pixels when given, every ``step``-th pixel); normals from the cross product of
    the neighbouring points' differences, pointing towards the camera; pixels whose neighbours lack
    depth or jump by more than 1 cm are left out."""
    H, W = depth_mm.shape
    u0, v0, u1, v1 = (0, 0, W, H) if box is None else box
    u0, v0 = max(int(u0), 1), max(int(v0), 1)
    u1, v1 = min(int(u1), W - 1), min(int(v1), H - 1)
    if u1 - u0 < 3 or v1 - v0 < 3:
        return np.zeros((0, 3)), np.zeros((0, 3))
    vs, us = np.mgrid[v0 - 1 : v1 + 1, u0 - 1 : u1 + 1]
    z = depth_mm[v0 - 1 : v1 + 1, u0 - 1 : u1 + 1].astype(np.float64) / 1000.0
    pts = camera.unproject(np.stack([us, vs], -1).astype(np.float64), np.where(z > 0, z, np.nan))
    dx = pts[1:-1, 2:] - pts[1:-1, :-2]
    dy = pts[2:, 1:-1] - pts[:-2, 1:-1]
    n = np.cross(dx, dy)
    centre = pts[1:-1, 1:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        n = n / np.linalg.norm(n, axis=-1, keepdims=True)
        flip = (n * centre).sum(-1) > 0
        n[flip] *= -1
        ok = np.isfinite(n).all(-1) & np.isfinite(centre).all(-1)
        ok &= (np.abs(dx[..., 2]) < 0.02) & (np.abs(dy[..., 2]) < 0.02)
    sel = np.zeros_like(ok)
    sel[::step, ::step] = True
    ok &= sel
    return centre[ok], n[ok]


def point_to_plane_icp(pairs, R, t, *, iterations: int = 20, max_distance=(0.01, 0.005, 0.003)):
    """Refine ``x_1 = R x_c + t`` by point-to-plane ICP.

    ``pairs``: list of (source points (M, 3) in camera c, target points (P, 3) in camera 1, target
    normals (P, 3)), one per frame. Each iteration matches every transformed source point to its
    nearest target point (cKDTree), keeps pairs nearer than the current ``max_distance`` (the
    schedule's entries are spent evenly over the iterations) and solves the linearised
    ``sum (n . (R p + t - q))^2`` for a small rotation and translation. Returns (R, t, rms metres,
    pairs used)."""
    from scipy.spatial import cKDTree

    trees = [cKDTree(q) for _, q, _ in pairs]
    rms, used = float("nan"), 0
    for it in range(iterations):
        limit = max_distance[min(len(max_distance) - 1, it * len(max_distance) // iterations)]
        A, b = [], []
        for (src, q, n), tree in zip(pairs, trees):
            p = src @ R.T + t
            d, idx = tree.query(p, distance_upper_bound=limit)
            ok = np.isfinite(d)
            if not ok.any():
                continue
            p, qq, nn = p[ok], q[idx[ok]], n[idx[ok]]
            A.append(np.concatenate([np.cross(p, nn), nn], 1))
            b.append(-((p - qq) * nn).sum(1))
        if not A:
            break
        A, b = np.concatenate(A), np.concatenate(b)
        used = len(b)
        if used < 6:
            break
        x = np.linalg.solve(A.T @ A + 1e-9 * np.eye(6), A.T @ b)
        dR = rotation_from_vector(x[:3])
        R, t = dR @ R, dR @ t + x[3:]
        rms = float(np.sqrt(np.mean((A @ x - b) ** 2)))
        if np.linalg.norm(x) < 1e-7:
            break
    return R, t, rms, used


def landmark_box(landmarks: np.ndarray, camera: Camera, margin: float = 0.15):
    ok = np.isfinite(landmarks).all(1)
    if ok.sum() < 3:
        return None
    lo, hi = landmarks[ok].min(0), landmarks[ok].max(0)
    pad = (hi - lo) * margin
    return (lo[0] - pad[0], lo[1] - pad[1] * 2.5, hi[0] + pad[0], hi[1] + pad[1])


def align_cameras(take, *, frames: int = 5, icp: bool = True) -> dict:
    """Extrinsics (4, 4) to camera 1 of every camera of ``take`` (a TakeInput), estimated from its
    data. Returns {c: {"extrinsics", "landmark_pairs", "kabsch_rms_m", "icp_rms_m", "icp_pairs"}};
    camera 1 is the identity. Raises :class:`ReconstructionError` when a side camera shares fewer
    than 6 lifted landmarks with camera 1 over the first ``frames`` frames."""
    ref = 1
    out = {ref: {"extrinsics": np.eye(4), "landmark_pairs": 0, "kabsch_rms_m": 0.0, "icp_rms_m": 0.0, "icp_pairs": 0}}
    T = take.num_frames
    use = np.linspace(0, T - 1, min(frames, T)).round().astype(int)
    lifted = {c: [lift_landmarks(take.depth[c][f], take.landmarks[c][f], take.cameras[c]) for f in use] for c in take.cameras}
    for c in take.cameras:
        if c == ref:
            continue
        A = np.concatenate(lifted[c])
        B = np.concatenate(lifted[ref])
        ok = np.isfinite(A).all(1) & np.isfinite(B).all(1)
        if ok.sum() < 6:
            raise ReconstructionError(
                f"take {take.take_id}: camera {c} shares only {int(ok.sum())} landmarks with "
                f"depth with camera 1 over frames {use.tolist()}; cannot align it"
            )
        R, t, _ = kabsch(A[ok], B[ok])
        res = np.linalg.norm(A[ok] @ R.T + t - B[ok], axis=1)
        # one re-fit without the worst landmarks (lifted onto another surface at a silhouette)
        keep = res < max(3 * np.median(res), 0.004)
        if keep.sum() >= 6:
            R, t, _ = kabsch(A[ok][keep], B[ok][keep])
            res = np.linalg.norm(A[ok][keep] @ R.T + t - B[ok][keep], axis=1)
        info = {"landmark_pairs": int(ok.sum()), "kabsch_rms_m": float(np.sqrt(np.mean(res**2))), "icp_rms_m": None, "icp_pairs": 0}
        if icp:
            pairs = []
            for f in use[:3]:
                box_c = landmark_box(take.landmarks[c][f], take.cameras[c])
                box_1 = landmark_box(take.landmarks[ref][f], take.cameras[ref])
                if box_c is None or box_1 is None:
                    continue
                src, _ = depth_cloud(take.depth[c][f], take.cameras[c], box_c, step=2)
                dst, nrm = depth_cloud(take.depth[ref][f], take.cameras[ref], box_1, step=1)
                if len(src) and len(dst):
                    pairs.append((src, dst, nrm))
            if pairs:
                R, t, rms, used = point_to_plane_icp(pairs, R, t)
                info["icp_rms_m"], info["icp_pairs"] = rms, used
        E = np.eye(4)
        E[:3, :3], E[:3, 3] = R, t
        info["extrinsics"] = E
        out[c] = info
    return out


def extrinsics_error(estimated: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(rotation error degrees, translation error metres) between two 4x4 extrinsics."""
    dR = estimated[:3, :3] @ truth[:3, :3].T
    angle = np.degrees(np.arccos(np.clip((np.trace(dR) - 1) / 2, -1, 1)))
    return float(angle), float(np.linalg.norm(estimated[:3, 3] - truth[:3, 3]))
