"""A take to a fitted mesh sequence and its fit report; the output folder.

Per take: read the inputs (:mod:`~reconstruction.take_input`), align the cameras
(:mod:`~reconstruction.align`), fit the first usable frame with stages 1, 2 and 3, track every
later frame warm-started from the previous one (stage 1 and 2 on pose and expression with the
identity and scale of the first frame, then stage 3), fill frames where the face is lost, smooth
(:mod:`~reconstruction.smoothing`), check for divergence, write.

Rules (recorded in ``fit_report.json``):

- a frame is LOST when camera 1 sees fewer than :data:`MIN_LANDMARKS` of the 68 landmarks or fewer
  than 6 of them have depth; lost frames are filled by linear interpolation of the neighbouring
  fitted frames (held at the ends) and listed with their reason;
- the take is DROPPED (:class:`~reconstruction.errors.FaceLostError`) when more than
  :data:`MAX_LOST_FRACTION` of its frames are lost (the authors drop a take whose front camera finds
  no face);
- a fit DIVERGES (:class:`~reconstruction.errors.FitDivergedError`, nothing written) when its energy
  is not finite, when the mean landmark error in camera 1 exceeds :data:`MAX_LANDMARK_ERROR` of the
  image width, when the depth RMS exceeds :data:`MAX_DEPTH_RMS_M`, or when a coefficient leaves
  +-:data:`MAX_COEFFICIENT` standard deviations of its prior or the scale leaves [0.7, 1.4].
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reconstruction import fitting
from reconstruction.errors import FaceLostError, FitDivergedError, ReconstructionError

MIN_LANDMARKS = 20
MAX_LOST_FRACTION = 0.25
MAX_LANDMARK_ERROR = 0.02
MAX_DEPTH_RMS_M = 0.006
#: In standard deviations of each coefficient's prior. 8 prior sd is stricter than the earlier 6 raw
#: sd for the embedded model's identity (2.8 raw at its 0.35 spread) and leaves room for the MAP of
#: one of ~660 coefficients (model, subject detail, per-frame detail): 5.7 was the largest measured
#: on 3 x 2 simulator takes (perf/reconstruct.py), 4.1-4.4 on most.
MAX_COEFFICIENT = 8.0
REPORT_VERSION = 1
#: Marker file that makes an output folder this command's own (it may then add takes to it).
OUTPUT_MARKER = ".mmface4d-reconstruct"


@dataclass
class Options:
    """What the reconstruction does; defaults are the documented pipeline."""

    smoothing: bool = True
    stage3: bool = True
    cameras: tuple = (0, 1, 2)
    depth_samples: int = 3000
    first_stage1_steps: int = 20
    first_stage2_rounds: int = 4
    first_stage2_steps: int = 5
    track_stage1_steps: int = 0
    track_stage2_rounds: int = 2
    track_stage2_steps: int = 2
    track_depth_stride: int = 3
    gates_m: tuple = (0.02, 0.01, 0.005)
    weights: fitting.Weights = field(default_factory=fitting.Weights)
    use_file_extrinsics: bool = False
    fit_scale: bool = False
    keep_stages: bool = False
    seed: int = 0
    detail: bool = True
    #: prior sd of the per-frame detail, relative to the subject's (reconstruction.detail)
    frame_detail_sd: float = 0.8


@dataclass
class Reconstruction:
    take_id: str
    vertices: np.ndarray  # (T, N, 3) float32, the final sequence in camera 1's frame
    report: dict
    stages: dict = field(default_factory=dict)  # name -> (T, N, 3) when Options.keep_stages
    params: list = field(default_factory=list)  # per frame fitting.Params (None where lost)


def _frame_lost(take, f: int) -> str | None:
    lm = take.landmarks[1][f]
    seen = int(np.isfinite(lm).all(1).sum())
    if seen < MIN_LANDMARKS:
        return f"camera 1 sees {seen} of 68 landmarks (< {MIN_LANDMARKS})"
    return None


def _check(take_id, stage, f, p: fitting.Params, terms, views, problem, X, matches=None, prior_sd=None):
    if not np.isfinite(terms.total) or not np.isfinite(X).all():
        raise FitDivergedError(take_id, stage, f, "the energy or the vertices are not finite")
    # in standard deviations of each coefficient's prior (a model's identity spread, the detail's prior)
    z = np.abs(problem.coefficients(p) / (1.0 if prior_sd is None else prior_sd))
    if z.max() > MAX_COEFFICIENT or not 0.7 <= p.scale <= 1.4:
        raise FitDivergedError(take_id, stage, f, f"coefficients reach {z.max():.1f} prior sd, scale {p.scale:.3f}")
    ref = [v for v in views if v.index == 1][0]
    err = fitting.landmark_errors_px(problem, p, [ref], X)[1]
    if err is not None and err > MAX_LANDMARK_ERROR * ref.camera.width:
        raise FitDivergedError(
            take_id, stage, f, f"mean landmark error in camera 1 is {err:.1f} px (limit {MAX_LANDMARK_ERROR * ref.camera.width:.1f} px)"
        )
    if matches:
        res = fitting.depth_residuals_mm(matches, X, problem)
        for c, r in res.items():
            if r["rms_mm"] is not None and r["rms_mm"] > MAX_DEPTH_RMS_M * 1000:
                raise FitDivergedError(take_id, stage, f, f"depth RMS in camera {c} is {r['rms_mm']:.1f} mm")


class _Stats:
    """Per stage and camera: sums of residuals over frames, for the report."""

    def __init__(self):
        self.lm, self.depth, self.time = {}, {}, {}

    def add(self, stage, lm_errors: dict, depth: dict | None, seconds: float):
        for c, e in lm_errors.items():
            if e is not None:
                self.lm.setdefault(stage, {}).setdefault(c, []).append(e)
        for c, r in (depth or {}).items():
            if r["rms_mm"] is not None:
                self.depth.setdefault(stage, {}).setdefault(c, []).append(r["rms_mm"])
        self.time[stage] = self.time.get(stage, 0.0) + seconds

    def summary(self) -> dict:
        out = {}
        for stage in sorted(set(self.lm) | set(self.depth) | set(self.time)):
            out[stage] = {
                "landmark_error_px": {str(c): float(np.mean(v)) for c, v in sorted(self.lm.get(stage, {}).items())},
                "depth_rms_mm": {str(c): float(np.mean(v)) for c, v in sorted(self.depth.get(stage, {}).items())},
                "seconds": round(self.time.get(stage, 0.0), 4),
            }
        return out


def reconstruct_take(take, model, options: Options | None = None, progress=None) -> Reconstruction:
    """Fit ``take`` (a :class:`~reconstruction.take_input.TakeInput`) with ``model`` (a core
    FaceModel). ``progress``: an object with ``update(n)`` (a tqdm bar) or None. Raises
    :class:`FaceLostError`, :class:`FitDivergedError` or :class:`ReconstructionError`."""
    from reconstruction.align import align_cameras
    from reconstruction.offsets import offset_solver, offset_targets

    options = options or Options()
    w = options.weights
    started = time.perf_counter()
    T = take.num_frames
    use = [c for c in options.cameras if c in take.cameras]
    if 1 not in use:
        raise ReconstructionError(f"take {take.take_id}: camera 1 (the reference) is not among the cameras used {use}")
    report = {
        "report_version": REPORT_VERSION,
        "take_id": take.take_id,
        "num_frames": T,
        "face_model": model.topology,
        "num_vertices": model.num_vertices,
        "cameras_used": use,
        "cameras_missing": {str(c): why for c, why in take.missing.items()},
        "options": {"smoothing": options.smoothing, "stage3": options.stage3, "depth_samples": options.depth_samples},
        "decode_seconds": round(take.decode_seconds, 4),
    }

    lost = {f: why for f in range(T) if (why := _frame_lost(take, f))}
    if len(lost) > MAX_LOST_FRACTION * T:
        raise FaceLostError(
            f"take {take.take_id}: the face is lost in {len(lost)} of {T} frames "
            f"(more than {MAX_LOST_FRACTION:.0%}); first: frame {min(lost)}: {lost[min(lost)]}; take dropped"
        )

    # ---- cameras
    t0 = time.perf_counter()
    cameras = {}
    if options.use_file_extrinsics and all(take.cameras[c].extrinsics is not None for c in use):
        cameras = {c: take.cameras[c] for c in use}
        report["alignment"] = {"source": "calibration files"}
    else:
        sub = _subset_take(take, use, skip=lost)
        aligned = align_cameras(sub)
        cameras = {c: take.cameras[c].with_extrinsics(aligned[c]["extrinsics"]) for c in use}
        report["alignment"] = {
            "source": "estimated (Kabsch on lifted landmarks + point-to-plane ICP)",
            "cameras": {
                str(c): {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in info.items()} for c, info in aligned.items()
            },
        }
    report["alignment"]["seconds"] = round(time.perf_counter() - t0, 4)
    rays = {c: fitting.camera_rays(cameras[c]) for c in use}

    N = model.num_vertices
    problem = make_problem(model, options)
    prior_sd = problem.prior_sd(w)
    t0 = time.perf_counter()
    solver = offset_solver(model) if options.stage3 else None
    report["offset_factorisation_seconds"] = round(time.perf_counter() - t0, 4)
    vertex_normals = problem.normals
    all_ids = np.arange(N)
    stats = _Stats()
    names = ("stage1", "stage2", "stage3")
    seqs = {n: np.zeros((T, N, 3), np.float32) for n in names} if options.keep_stages else {}
    final = np.zeros((T, N, 3), np.float32)
    params: list = [None] * T
    good = [f for f in range(T) if f not in lost]
    prev = None
    first_seconds = None
    tracked_seconds = []
    for f in good:
        t_frame = time.perf_counter()
        views = [fitting.make_view(c, cameras[c], take.depth[c][f], take.landmarks[c][f], rays[c]) for c in use]
        first = prev is None
        # ---- stage 1: landmarks
        t0 = time.perf_counter()
        w1 = fitting.Weights(**{**w.__dict__, "depth": False})
        if first:
            p = fitting.initial_params(problem, views, fit_scale=options.fit_scale)
            free = fitting.free_mask(problem, scale=options.fit_scale, frame_detail=False)
            steps = options.first_stage1_steps
        else:
            p = prev.copy()
            free = fitting.free_mask(problem, scale=False, identity=False)
            steps = options.track_stage1_steps
        lm3d_mask = _landmark_3d_inliers(problem, p, views)
        if steps:
            p, terms = fitting.levenberg_marquardt(problem, p, views, None, w1, free, steps=steps, lm3d_mask=lm3d_mask)
        else:  # tracked frames go straight to the joint fit (as the authors); stage 1 is the warm start
            terms = fitting.assemble(problem, p, views, None, w1, free, lm3d_mask, want_jacobian=False)
        X = problem.vertices(p)
        _check(take.take_id, "stage 1 (landmarks)", f, p, terms, views, problem, X, prior_sd=prior_sd)
        stats.add("stage1", fitting.landmark_errors_px(problem, p, views, X), None, time.perf_counter() - t0)
        if options.keep_stages:
            seqs["stage1"][f] = X
        # ---- stage 2: depth of all cameras + landmarks + priors
        t0 = time.perf_counter()
        rounds = options.first_stage2_rounds if first else options.track_stage2_rounds
        steps = options.first_stage2_steps if first else options.track_stage2_steps
        gates = options.gates_m if first else options.gates_m[1:]
        lm3d_mask = _landmark_3d_inliers(problem, p, views)
        matches = None
        w2 = fitting.Weights(**{**w.__dict__, "landmarks_3d": w.landmarks_3d_stage2})
        for k in range(rounds):
            gate = gates[min(k, len(gates) - 1)]
            normals = vertex_normals(X)
            matches = fitting.depth_matches(problem, views, X, normals, gate, 1 if first else options.track_depth_stride)
            p, terms = fitting.levenberg_marquardt(problem, p, views, matches, w2, free, steps=steps, lm3d_mask=lm3d_mask)
            X = problem.vertices(p)
        _check(take.take_id, "stage 2 (RGB-D)", f, p, terms, views, problem, X, matches, prior_sd)
        stats.add(
            "stage2",
            fitting.landmark_errors_px(problem, p, views, X),
            fitting.depth_residuals_mm(matches, X, problem),
            time.perf_counter() - t0,
        )
        if options.keep_stages:
            seqs["stage2"][f] = X
        if first:
            report["energy_first_frame"] = {k: float(v) for k, v in terms.__dict__.items()}
        # ---- stage 3: vertex offsets
        out = X
        if solver is not None:
            t0 = time.perf_counter()
            normals = vertex_normals(X)
            tau, observed = offset_targets(views, X, normals, all_ids)
            out = X + solver.solve(tau)
            if not np.isfinite(out).all():
                raise FitDivergedError(take.take_id, "stage 3 (vertex offsets)", f, "offsets are not finite")
            matches3 = fitting.depth_matches(problem, views, out, normals, options.gates_m[-1])
            stats.add(
                "stage3",
                fitting.landmark_errors_px(problem, p, views, out),
                fitting.depth_residuals_mm(matches3, out, problem),
                time.perf_counter() - t0,
            )
            if options.keep_stages:
                seqs["stage3"][f] = out
        final[f] = out
        params[f] = p
        prev = p
        seconds = time.perf_counter() - t_frame
        if first:
            first_seconds = seconds
        else:
            tracked_seconds.append(seconds)
        if progress is not None:
            progress.update(1)
    if not good:
        raise FaceLostError(f"take {take.take_id}: camera 1 finds no face in any frame; take dropped")
    # ---- lost frames
    if lost:
        for key in [None] + list(seqs):
            arr = final if key is None else seqs[key]
            _fill(arr, good)
        if progress is not None:
            progress.update(len(lost))
    report["frames_lost"] = [
        {"frame": f, "reason": why, "filled": "linear interpolation of the neighbouring fitted frames"} for f, why in sorted(lost.items())
    ]
    # ---- smoothing
    if options.smoothing:
        import scipy.signal  # noqa: F401  (imported before the clock starts: its import is slow, not the filter)

        from reconstruction.smoothing import smooth_sequence
    t0 = time.perf_counter()
    if options.smoothing:
        final = smooth_sequence(final, float(take.meta.get("fps", 30)))
        if options.keep_stages:
            seqs["smoothed"] = final
    stats.time["smoothing"] = time.perf_counter() - t0
    report["stages"] = stats.summary()
    report["offset_solver"] = None if solver is None else solver.backend
    report["seconds"] = {
        "first_frame": round(first_seconds, 4) if first_seconds else None,
        "tracked_frame_mean": round(float(np.mean(tracked_seconds)), 4) if tracked_seconds else None,
        "total_fit": round(time.perf_counter() - started, 4),
        "decode": round(take.decode_seconds, 4),
    }
    report["identity"] = problem.model_coefficients(params[good[0]])[0].tolist()
    report["detail"] = _detail_summary(problem, params[good[0]], options)
    report["scale"] = params[good[0]].scale
    report["extrinsics"] = {str(c): cameras[c].extrinsics.tolist() for c in use}
    return Reconstruction(take.take_id, final.astype(np.float32), report, seqs, params)


def make_problem(model, options: Options | None = None) -> fitting.Problem:
    """The fitting problem :func:`reconstruct_take` builds for ``model``: the depth-sampled vertices
    (``options.depth_samples``, drawn with ``options.seed``) and the detail modes."""
    options = options or Options()
    rng = np.random.default_rng(options.seed)
    N = model.num_vertices
    depth_ids = np.sort(rng.choice(N, size=min(options.depth_samples, N), replace=False))
    detail = frame_detail = None
    if options.detail:
        from reconstruction.detail import DETAIL_SD_M, model_detail_basis

        detail = model_detail_basis(model)
        if options.frame_detail_sd > 0:
            frame_detail = model_detail_basis(model, per_frame=True) * np.float32(options.frame_detail_sd * DETAIL_SD_M)
    return fitting.Problem(model, depth_ids, detail=detail, frame_detail=frame_detail)


def _detail_summary(problem, p, options) -> dict:
    """What the detail modes (:mod:`reconstruction.detail`) hold in the first fitted frame."""
    if not problem.kd:
        return {"modes": 0}
    from reconstruction import detail

    z = p.identity[problem.ki_model :]
    field = np.tensordot(z, _detail_modes(problem), 1)
    return {
        "modes": int(problem.kd),
        "per_frame_modes": int(problem.kd_frame),
        "prior": {
            "sd_mm": detail.DETAIL_SD_M * 1000,
            "length_mm": detail.DETAIL_LENGTH_M * 1000,
            "per_frame_sd_mm": options.frame_detail_sd * detail.DETAIL_SD_M * 1000,
            "per_frame_length_mm": detail.FRAME_DETAIL_LENGTH_M * 1000,
        },
        "subject_rms_mm": round(float(np.sqrt((field**2).sum(1).mean()) * 1000), 4),
        "max_coefficient": round(float(np.abs(z).max()), 3),
    }


def _detail_modes(problem) -> np.ndarray:
    return problem.full_basis[problem.ki_model : problem.ki].reshape(problem.kd, -1, 3)


def _landmark_3d_inliers(problem, p, views) -> dict:
    """Lifted landmarks more than 2 cm from the current fit's keypoints are left out of the 3-D
    landmark term (at a silhouette the depth belongs to another surface)."""
    X = problem.vertices(p)[problem.model.keypoints]
    out = {}
    for v in views:
        with np.errstate(invalid="ignore"):
            out[v.index] = np.linalg.norm(v.landmarks_3d - X, axis=1) < 0.02
    return out


def _fill(arr: np.ndarray, good: list[int]) -> None:
    T = arr.shape[0]
    good = np.asarray(good)
    for f in range(T):
        if f in set(good.tolist()):
            continue
        after = good[good > f]
        before = good[good < f]
        if len(before) and len(after):
            a, b = before[-1], after[0]
            u = (f - a) / (b - a)
            arr[f] = (1 - u) * arr[a] + u * arr[b]
        else:
            arr[f] = arr[before[-1]] if len(before) else arr[after[0]]


def _subset_take(take, use, skip):
    """The take restricted to the cameras ``use`` and without the lost frames (for alignment)."""
    from reconstruction.take_input import TakeInput

    keep = [f for f in range(take.num_frames) if f not in skip]
    return TakeInput(
        take.take_id,
        take.folder,
        {c: take.cameras[c] for c in use},
        {c: take.depth[c][keep] for c in use},
        {c: take.landmarks[c][keep] for c in use},
    )


# ----------------------------------------------------------------------------- output
def prepare_output(out: str | os.PathLike) -> Path:
    """The output folder rule: ``out`` must be new, empty, or one this command made before (it holds
    :data:`OUTPUT_MARKER`); anything else is refused rather than mixed into."""
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise ReconstructionError(f"{out}: the output is a file, not a folder")
        if any(out.iterdir()) and not (out / OUTPUT_MARKER).exists():
            raise ReconstructionError(
                f"{out}: folder is not empty and was not made by `mmface4d reconstruct`; choose a new or empty folder"
            )
    out.mkdir(parents=True, exist_ok=True)
    marker = out / OUTPUT_MARKER
    if not marker.exists():
        marker.write_text("made by mmface4d reconstruct\n")
    return out


def write_reconstruction(out: Path, take, result: Reconstruction) -> Path:
    """Write ``out/ID/``: ``ID_filt_{0,1,2}.nut`` (authors' encoding), ``ID.wav``, ``ID.meta.json``
    (the take's, plus a ``reconstruction`` entry) and ``fit_report.json``; staged in a hidden sibling
    folder and renamed, so the folder appears complete or not at all."""
    from mmface4d_datasets.files import json_bytes
    from mmface4d_datasets.official import write_mesh_sequence

    take_id = take.take_id
    folder = Path(out) / take_id
    staging = Path(out) / f".{take_id}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        write_mesh_sequence(staging / f"{take_id}_filt", result.vertices, fps=int(take.meta.get("fps", 30)))
        wav = take.folder / f"{take_id}.wav"
        if not wav.exists():
            raise ReconstructionError(f"take {take_id}: {wav} is missing (the release needs the take's audio)")
        shutil.copyfile(wav, staging / f"{take_id}.wav")
        meta = dict(take.meta)
        meta.setdefault("take_id", take_id)
        meta["topology"] = result.report["face_model"]  # the release builder reads the topology from here
        meta["num_frames"] = int(result.vertices.shape[0])  # the frames fitted (a max_frames run fits fewer)
        meta["reconstruction"] = {
            "face_model": result.report["face_model"],
            "report": "fit_report.json",
            "extrinsics": result.report["extrinsics"],
        }
        (staging / f"{take_id}.meta.json").write_bytes(json_bytes(meta))
        (staging / "fit_report.json").write_bytes(json_bytes(result.report))
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def reconstruct_folder(take_folder, out, model, options: Options | None = None, progress_factory=None) -> Path:
    """Read, fit and write one take folder; returns the written folder."""
    from reconstruction.take_input import read_take_input

    take = read_take_input(take_folder)
    bar = progress_factory(take) if progress_factory else None
    try:
        result = reconstruct_take(take, model, options, bar)
    finally:
        if bar is not None:
            bar.close()
    return write_reconstruction(Path(out), take, result)
