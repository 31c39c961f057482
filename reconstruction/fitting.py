"""Stages 1 and 2: the model-parameter fit, by Levenberg-Marquardt on a CPU.

The mesh in camera 1's frame is ``X = s R (mean + B_id a + B_exp b) + t`` (metres), with rotation
``R``, translation ``t``, scale ``s`` and identity / expression coefficients ``a``, ``b`` in
standard deviations of their modes. The energy of one frame (all terms summed over the cameras
that see the face; ``sigma`` are noise levels, so the weights are inverse variances, MAP style):

- 2-D landmarks: ``sum huber(||pi_c(X_k) - x_ck||) / sigma_2d^2`` (quadratic ``e^2 / 2`` up to 3 px,
  linear beyond, so a detector's outliers do not pull the face), the residual taken on the
  undistorted normalised image plane of camera c and converted to pixels by the focal length;
- 3-D landmarks: ``sum ||X_k - P_ck||^2 / (2 sigma_3d^2)``, P_ck the landmark lifted by camera c's
  depth (beyond 0.1 m), in camera 1's frame;
- depth (stage 2): ``sum rho(n_v . (X_v - p_cv))`` over sampled vertices seen by camera c, p_cv
  the registered depth point at the vertex's projection (projective association), n_v the model's
  normal, rho the Geman-McClure ``2 (x/s)^2 / ((x/s)^2 + 4)`` with s = 2 mm;
- priors: ``(||a||^2 + ||b||^2) / 2`` and ``(s - 1)^2 / (2 sigma_s^2)``.

Gauss-Newton normal equations (151 unknowns at 80 + 64 modes) with Levenberg damping; the
Geman-McClure term by iteratively reweighted least squares; correspondences refreshed every
``inner`` steps. The rotation is updated multiplicatively (``R <- exp([w]x) R``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmface4d_datasets.camera import Camera
from reconstruction.align import kabsch, lift_landmarks, rotation_from_vector

GM_SCALE_DEPTH = 0.002


@dataclass
class Weights:
    """Noise levels of the energy terms (see the module docstring) and what each stage uses."""

    sigma_2d_px: float = 1.0
    landmark_huber_px: float = 3.0
    sigma_3d_m: float = 0.005
    sigma_scale: float = 0.05
    depth_scale_m: float = GM_SCALE_DEPTH
    depth_weight: float = 4.0
    landmarks_3d: bool = True
    landmarks_3d_stage2: bool = False
    depth: bool = True
    #: prior standard deviations of the identity (None: the face model's ``identity_spread``) and
    #: expression coefficients, in the model's standard deviations
    identity_sd: float | None = None
    expression_sd: float = 1.0


@dataclass
class Params:
    R: np.ndarray
    t: np.ndarray
    scale: float
    identity: np.ndarray
    expression: np.ndarray

    def copy(self) -> "Params":
        return Params(self.R.copy(), self.t.copy(), float(self.scale), self.identity.copy(), self.expression.copy())


@dataclass
class View:
    """One camera in one frame: the camera (extrinsics to camera 1), its depth (H, W) metres, its
    landmarks as undistorted normalised coordinates (68, 2) and pixels, lifted 3-D landmarks in
    camera 1's frame (68, 3), NaN where missing."""

    index: int
    camera: Camera
    depth: np.ndarray
    rays: np.ndarray
    landmarks_px: np.ndarray
    landmarks_norm: np.ndarray
    landmarks_3d: np.ndarray

    @property
    def focal(self) -> float:
        return float(self.camera.intrinsics[0, 0] + self.camera.intrinsics[1, 1]) / 2


def camera_rays(camera: Camera) -> np.ndarray:
    """(H, W, 3) rays (x, y, 1) of every pixel centre in the camera's frame (undistorted)."""
    jj, ii = np.mgrid[0 : camera.height, 0 : camera.width]
    px = np.stack([ii, jj], -1).astype(np.float64)
    xy = camera.undistort(camera.normalised_from_pixels(px))
    return np.concatenate([xy, np.ones(xy.shape[:-1] + (1,))], -1)


def make_view(index: int, camera: Camera, depth_mm: np.ndarray, landmarks_px: np.ndarray, rays: np.ndarray) -> View:
    lm = np.asarray(landmarks_px, dtype=np.float64)
    norm = camera.undistort(camera.normalised_from_pixels(lm))
    lifted = lift_landmarks(depth_mm, lm, camera)
    lifted_ref = np.full_like(lifted, np.nan)
    ok = np.isfinite(lifted).all(1)
    if ok.any():
        lifted_ref[ok] = camera.to_reference(lifted[ok])
    return View(index, camera, depth_mm.astype(np.float32) / 1000.0, rays, lm, norm, lifted_ref)


class Problem:
    """The face model restricted to the vertices the energy looks at (``depth_vertices`` plus the
    68 keypoints), precomputed once per take."""

    def __init__(
        self,
        model,
        depth_vertices: np.ndarray,
        *,
        num_identity: int | None = None,
        num_expression: int | None = None,
        detail: np.ndarray | None = None,
        frame_detail: np.ndarray | None = None,
    ):
        """``detail``: (kd, N, 3) modes of the shape outside the model (:mod:`reconstruction.detail`,
        standard normal prior), appended to the identity block (one shape per subject, fixed while
        tracking); ``frame_detail``: (kf, N, 3) modes appended to the expression block (the
        per-frame part of that shape, standard normal prior: scale them to their prior sd)."""
        self.model = model
        self.ki_model = model.num_identity if num_identity is None else num_identity
        self.ke_model = model.num_expression if num_expression is None else num_expression
        blocks_id = [model.identity_basis[: self.ki_model]]
        blocks_exp = [model.expression_basis[: self.ke_model]]
        self.kd = 0 if detail is None else len(detail)
        self.kd_frame = 0 if frame_detail is None else len(frame_detail)
        if self.kd:
            blocks_id.append(np.asarray(detail, np.float32))
        if self.kd_frame:
            blocks_exp.append(np.asarray(frame_detail, np.float32))
        self.ki = self.ki_model + self.kd
        self.ke = self.ke_model + self.kd_frame
        keypoints = np.asarray(model.keypoints, dtype=np.int64)
        self.subset = np.unique(np.concatenate([np.asarray(depth_vertices, np.int64), keypoints]))
        position = {int(v): i for i, v in enumerate(self.subset)}
        self.kp_pos = np.array([position[int(v)] for v in keypoints])
        self.depth_pos = np.array([position[int(v)] for v in depth_vertices])
        basis = np.concatenate(blocks_id + blocks_exp, 0)
        self.basis_S = np.ascontiguousarray(basis[:, self.subset, :].transpose(1, 2, 0), dtype=np.float64)
        self.mean_S = np.asarray(model.mean, np.float64)[self.subset]
        self.full_basis = np.ascontiguousarray(basis.reshape(len(basis), -1), dtype=np.float32)  # (K, 3N)
        self.mean = np.asarray(model.mean, np.float32)
        self.K = self.ki + self.ke

    def zero_params(self, R, t, scale) -> "Params":
        return Params(R, t, float(scale), np.zeros(self.ki), np.zeros(self.ke))

    def model_coefficients(self, p: "Params") -> tuple[np.ndarray, np.ndarray]:
        """The face model's own identity and expression coefficients of ``p`` (without detail)."""
        return p.identity[: self.ki_model], p.expression[: self.ke_model]

    @property
    def normals(self) -> "Normals":
        """Vertex normals of the model's topology (built on first use)."""
        if "_normals" not in self.__dict__:
            self.__dict__["_normals"] = Normals(self.model.triangles, self.model.num_vertices)
        return self.__dict__["_normals"]

    def basis_columns(self, free: np.ndarray) -> np.ndarray:
        """The subset's basis (S, 3, k) restricted to the free coefficients (cached per mask)."""
        key = free[7:].tobytes()
        cache = self.__dict__.setdefault("_columns", {})
        if key not in cache:
            cache[key] = np.ascontiguousarray(self.basis_S[:, :, np.flatnonzero(free[7:])])
        return cache[key]

    def prior_precision(self, w: "Weights") -> np.ndarray:
        """(K,) inverse prior variances of the coefficients."""
        return 1.0 / self.prior_sd(w) ** 2

    def prior_sd(self, w: "Weights") -> np.ndarray:
        """(K,) prior standard deviations of the coefficients (identity, detail, expression, frame detail)."""
        identity = getattr(self.model, "identity_spread", 1.0) if w.identity_sd is None else w.identity_sd
        blocks = [np.full(self.ki_model, identity), np.ones(self.kd), np.full(self.ke_model, w.expression_sd)]
        return np.concatenate(blocks + [np.ones(self.kd_frame)])

    def coefficients(self, p: Params) -> np.ndarray:
        return np.concatenate([p.identity[: self.ki], p.expression[: self.ke]])

    def local_subset(self, p: Params) -> np.ndarray:
        return self.mean_S + self.basis_S @ self.coefficients(p)

    def local_full(self, p: Params) -> np.ndarray:
        c = self.coefficients(p).astype(np.float32)
        return (self.mean.reshape(-1) + c @ self.full_basis).reshape(-1, 3).astype(np.float64)

    def vertices(self, p: Params) -> np.ndarray:
        """(N, 3) float64 metres in camera 1's frame."""
        return p.scale * self.local_full(p) @ p.R.T + p.t


class Normals:
    """Area-weighted unit vertex normals of one topology, with the triangle-to-vertex incidence built
    once (the same formula as ``mmface4d_datasets.facemodel.topology.vertex_normals``)."""

    def __init__(self, triangles, num_vertices: int):
        from scipy import sparse

        self.tri = np.asarray(triangles, dtype=np.int64)
        F = len(self.tri)
        self.incidence = sparse.csr_matrix((np.ones(3 * F), (self.tri.T.ravel(), np.tile(np.arange(F), 3))), shape=(num_vertices, F))

    def __call__(self, X: np.ndarray) -> np.ndarray:
        a, b, c = X[self.tri[:, 0]], X[self.tri[:, 1]], X[self.tri[:, 2]]
        n = self.incidence @ np.cross(b - a, c - a)
        length = np.linalg.norm(n, axis=1, keepdims=True)
        return np.divide(n, length, out=np.zeros_like(n), where=length > 0)


# ----------------------------------------------------------------------------- correspondences
@dataclass
class DepthMatch:
    view: int
    pos: np.ndarray  # positions in the subset
    point: np.ndarray  # (m, 3) data points in camera 1's frame
    normal: np.ndarray  # (m, 3) model normals in camera 1's frame


def associate(view: View, X: np.ndarray, normals: np.ndarray, ids: np.ndarray, gate: float):
    """Projective association of the vertices ``ids`` of the mesh ``X`` (camera 1's frame) with one
    view's registered depth: the depth pixel nearest the vertex's projection, unprojected along that
    pixel's own ray (a planar surface then gives no quantisation error); kept when the vertex faces
    the camera and its point-to-plane distance is within ``gate`` metres. Returns (kept ids, data
    points (m, 3) in camera 1's frame)."""
    E = view.camera.extrinsics
    Xc = (X[ids] - E[:3, 3]) @ E[:3, :3]
    nc = normals[ids] @ E[:3, :3]
    with np.errstate(invalid="ignore", divide="ignore"):
        facing = (nc * Xc).sum(1) / np.linalg.norm(Xc, axis=1) < -0.15
        uv, z = view.camera.project(Xc)
    H, W = view.depth.shape
    ij = np.round(np.nan_to_num(uv, nan=-1.0)).astype(np.int64)
    ok = facing & (ij[:, 0] >= 0) & (ij[:, 0] < W) & (ij[:, 1] >= 0) & (ij[:, 1] < H)
    d = np.zeros(len(ids))
    d[ok] = view.depth[ij[ok, 1], ij[ok, 0]]
    ok &= d > 0.1
    p = np.zeros_like(Xc)
    p[ok] = view.rays[ij[ok, 1], ij[ok, 0]] * d[ok, None]
    r = np.where(ok, ((Xc - p) * nc).sum(1), np.inf)
    ok &= np.abs(r) < gate
    return ids[ok], p[ok] @ E[:3, :3].T + E[:3, 3]


def depth_matches(
    problem: Problem, views: list[View], X_full: np.ndarray, normals: np.ndarray, gate: float, stride: int = 1
) -> list[DepthMatch]:
    """:func:`associate` of the sampled vertices (every ``stride``-th of them) with every view."""
    ids = problem.subset[problem.depth_pos[::stride]]
    where = np.full(problem.model.num_vertices, -1)
    where[ids] = problem.depth_pos[::stride]
    out = []
    for v in views:
        kept, pref = associate(v, X_full, normals, ids, gate)
        out.append(DepthMatch(v.index, where[kept], pref, normals[kept]))
    return out


# ----------------------------------------------------------------------------- residual rows
def _rows(problem: Problem, p: Params, Y: np.ndarray, pos: np.ndarray, a: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Jacobian rows (m, free.sum()) of the scalar residuals ``a_i . X[pos_i]`` with respect to the
    free unknowns among (rotation increment, translation, scale, coefficients)."""
    y = Y[pos]
    J = np.empty((len(pos), 7))
    J[:, 0:3] = np.cross(y, a)
    J[:, 3:6] = a
    J[:, 6] = (a * y).sum(1) / p.scale
    B = problem.basis_columns(free)[pos]
    aR = p.scale * (a @ p.R)
    JB = aR[:, 0:1] * B[:, 0] + aR[:, 1:2] * B[:, 1] + aR[:, 2:3] * B[:, 2]
    return np.concatenate([J[:, free[:7]], JB], 1)


def _gm_weights(r: np.ndarray, s: float) -> np.ndarray:
    return 16.0 / (s * s * ((r / s) ** 2 + 4.0) ** 2)


def gm_rho(r: np.ndarray, s: float) -> np.ndarray:
    """Geman-McClure ``2 (r/s)^2 / ((r/s)^2 + 4)``."""
    q = (r / s) ** 2
    return 2 * q / (q + 4)


@dataclass
class Terms:
    """The energy of one parameter set with fixed correspondences, term by term."""

    landmarks_2d: float = 0.0
    landmarks_3d: float = 0.0
    depth: float = 0.0
    prior: float = 0.0

    @property
    def total(self) -> float:
        return self.landmarks_2d + self.landmarks_3d + self.depth + self.prior


def assemble(
    problem: Problem,
    p: Params,
    views: list[View],
    matches,
    w: Weights,
    free: np.ndarray,
    lm3d_mask: dict | None = None,
    want_jacobian: bool = True,
):
    """Energy terms and (when ``want_jacobian``) the Gauss-Newton system (H, g) over the ``free``
    unknowns (boolean mask over 7 + K)."""
    V = problem.local_subset(p)
    Y = p.scale * V @ p.R.T
    X = Y + p.t
    terms = Terms()
    P = int(free.sum())
    H = np.zeros((P, P)) if want_jacobian else None
    g = np.zeros(P) if want_jacobian else None

    def add(J, r, c):
        if want_jacobian:
            Jf = J * c[:, None] if np.ndim(c) else J * c
            H[:] += Jf.T @ J
            g[:] += Jf.T @ r

    for v in views:
        # 2-D landmarks on the normalised plane
        ok = np.isfinite(v.landmarks_norm).all(1)
        if ok.any():
            pos = problem.kp_pos[ok]
            E = v.camera.extrinsics
            Rc, tc = E[:3, :3], E[:3, 3]
            Xc = (X[pos] - tc) @ Rc
            z = Xc[:, 2:3]
            proj = Xc[:, :2] / z
            r = proj - v.landmarks_norm[ok]
            # Huber on the pixel distance (a detector's outliers must not pull the face): quadratic
            # up to HUBER_PX, linear beyond; by iteratively reweighted least squares.
            e_px = np.linalg.norm(r, axis=1) * v.focal
            k = w.landmark_huber_px
            rob = np.where(e_px <= k, 0.5 * e_px**2, k * (e_px - 0.5 * k)) / w.sigma_2d_px**2
            terms.landmarks_2d += float(rob.sum())
            if want_jacobian:
                c2 = (v.focal / w.sigma_2d_px) ** 2 / 2 * np.where(e_px <= k, 1.0, k / np.maximum(e_px, 1e-12))
                gx = np.stack([1 / z[:, 0], np.zeros(len(z)), -Xc[:, 0] / z[:, 0] ** 2], 1) @ Rc.T
                gy = np.stack([np.zeros(len(z)), 1 / z[:, 0], -Xc[:, 1] / z[:, 0] ** 2], 1) @ Rc.T
                J = np.concatenate([_rows(problem, p, Y, pos, gx, free), _rows(problem, p, Y, pos, gy, free)])
                add(J, np.concatenate([r[:, 0], r[:, 1]]), 2 * np.concatenate([c2, c2]))
        # 3-D landmarks
        if w.landmarks_3d:
            ok = np.isfinite(v.landmarks_3d).all(1)
            if lm3d_mask is not None and v.index in lm3d_mask:
                ok &= lm3d_mask[v.index]
            if ok.any():
                pos = problem.kp_pos[ok]
                r = X[pos] - v.landmarks_3d[ok]
                c3 = 1.0 / (2 * w.sigma_3d_m**2)
                terms.landmarks_3d += c3 * float((r * r).sum())
                if want_jacobian:
                    eye = np.eye(3)
                    J = np.concatenate([_rows(problem, p, Y, pos, np.repeat(eye[i : i + 1], len(pos), 0), free) for i in range(3)])
                    add(J, np.concatenate([r[:, i] for i in range(3)]), 2 * c3)
    if w.depth and matches:
        for m in matches:
            if not len(m.pos):
                continue
            r = ((X[m.pos] - m.point) * m.normal).sum(1)
            terms.depth += w.depth_weight * float(gm_rho(r, w.depth_scale_m).sum())
            if want_jacobian:
                J = _rows(problem, p, Y, m.pos, m.normal, free)
                add(J, r, w.depth_weight * _gm_weights(r, w.depth_scale_m))
    coeff = problem.coefficients(p)
    precision = problem.prior_precision(w)
    terms.prior = 0.5 * float(coeff @ (precision * coeff)) + (p.scale - 1) ** 2 / (2 * w.sigma_scale**2)
    if want_jacobian:
        full_g = np.zeros(7 + problem.K)
        full_h = np.zeros(7 + problem.K)
        full_h[7:], full_g[7:] = precision, precision * coeff
        full_h[6], full_g[6] = 1 / w.sigma_scale**2, (p.scale - 1) / w.sigma_scale**2
        H[np.diag_indices(P)] += full_h[free]
        g += full_g[free]
        return terms, H, g
    return terms


def apply_step(problem: Problem, p: Params, delta: np.ndarray, free: np.ndarray) -> Params:
    full = np.zeros(7 + problem.K)
    full[free] = delta
    q = p.copy()
    dR = rotation_from_vector(full[:3])
    q.R = dR @ p.R  # rotates the model about its own origin (the rows of _rows), then translates
    q.t = p.t + full[3:6]
    q.scale = p.scale + full[6]
    coeff = problem.coefficients(p) + full[7:]
    q.identity = p.identity.copy()
    q.expression = p.expression.copy()
    q.identity[: problem.ki] = coeff[: problem.ki]
    q.expression[: problem.ke] = coeff[problem.ki :]
    return q


def free_mask(problem: Problem, *, pose=True, scale=True, identity=True, expression=True, frame_detail=None) -> np.ndarray:
    """``frame_detail`` (default: as ``expression``) frees the per-frame detail modes."""
    m = np.zeros(7 + problem.K, bool)
    m[:6] = pose
    m[6] = scale
    m[7 : 7 + problem.ki] = identity
    m[7 + problem.ki :] = expression
    if problem.kd_frame:
        m[7 + problem.ki + problem.ke_model :] = expression if frame_detail is None else frame_detail
    return m


def levenberg_marquardt(
    problem: Problem, p: Params, views, matches, w: Weights, free, *, steps: int = 5, lm3d_mask=None, damping: float = 1e-3
):
    """``steps`` damped Gauss-Newton steps with fixed correspondences; a step that raises the
    energy is refused and the damping raised. Returns (params, energy terms)."""
    lam = damping
    terms, H, g = assemble(problem, p, views, matches, w, free, lm3d_mask)
    for _ in range(steps):
        diag = np.diag(H).copy()
        diag[diag <= 0] = 1.0
        for _try in range(6):
            try:
                delta = -np.linalg.solve(H + lam * np.diag(diag), g)
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            q = apply_step(problem, p, delta, free)
            new = assemble(problem, q, views, matches, w, free, lm3d_mask, want_jacobian=False)
            if np.isfinite(new.total) and new.total <= terms.total:
                p, lam = q, max(lam / 3, 1e-7)
                terms, H, g = assemble(problem, p, views, matches, w, free, lm3d_mask)
                break
            lam *= 4
        else:
            break
        if np.abs(delta).max() < 1e-7:
            break
    return p, terms


def initial_params(problem: Problem, views: list[View], fit_scale: bool = False) -> Params:
    """Similarity transform (Umeyama) of the mean face's keypoints onto the lifted 3-D landmarks
    (pooled over the cameras), coefficients zero. The authors start from the mean face scaled by the
    point cloud's x-extent and moved to its centroid; the landmarks give the rotation as well."""
    src, dst = [], []
    kp = np.asarray(problem.model.mean, np.float64)[problem.model.keypoints]
    for v in views:
        ok = np.isfinite(v.landmarks_3d).all(1)
        src.append(kp[ok])
        dst.append(v.landmarks_3d[ok])
    src, dst = np.concatenate(src), np.concatenate(dst)
    from reconstruction.errors import ReconstructionError

    if len(src) < 6:
        raise ReconstructionError(f"only {len(src)} landmarks have depth: cannot place the face")
    R, t, s = kabsch(src, dst, scale=fit_scale)
    res = np.linalg.norm(src @ R.T * s + t - dst, axis=1)
    keep = res < max(3 * np.median(res), 0.01)
    if keep.sum() >= 6:
        R, t, s = kabsch(src[keep], dst[keep], scale=fit_scale)
    return problem.zero_params(R, t, s)


def landmark_errors_px(problem: Problem, p: Params, views: list[View], X_full: np.ndarray | None = None) -> dict:
    """Mean 2-D landmark error (pixels) per camera of the fitted mesh's keypoints."""
    X = problem.vertices(p) if X_full is None else X_full
    kp = X[problem.model.keypoints]
    out = {}
    for v in views:
        uv, _ = v.camera.project(kp, frame="reference")
        err = np.linalg.norm(uv - v.landmarks_px, axis=1)
        err = err[np.isfinite(err)]
        out[v.index] = float(err.mean()) if len(err) else None
    return out


def depth_residuals_mm(matches: list[DepthMatch], X_full: np.ndarray, problem: Problem) -> dict:
    """RMS point-to-plane residual (mm) and the number of matches, per camera."""
    out = {}
    ids = problem.subset
    for m in matches:
        if not len(m.pos):
            out[m.view] = {"rms_mm": None, "matches": 0}
            continue
        r = ((X_full[ids[m.pos]] - m.point) * m.normal).sum(1)
        out[m.view] = {"rms_mm": float(np.sqrt(np.mean(r**2)) * 1000), "matches": int(len(r))}
    return out
