"""Reconstruction: alignment, fitting, offsets, smoothing, the command and bad input.

Inputs are take folders of known faces drawn by the core renderer (reconstruction.synthetic_inputs):
a small embedded model (2,000 vertices), 320x180 images, a few frames.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mmface4d_datasets.facemodel import load_face_model
from reconstruction import fitting
from reconstruction.align import extrinsics_error, kabsch, point_to_plane_icp, rotation_from_vector
from reconstruction.errors import FaceLostError, FitDivergedError, ReconstructionError, TakeInputError
from reconstruction.pipeline import Options, reconstruct_take
from reconstruction.synthetic_inputs import render_take
from reconstruction.take_input import read_take_input

N = 2000


@pytest.fixture(scope="module")
def model():
    return load_face_model("default", num_vertices=N)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, model):
    folder = tmp_path_factory.mktemp("takes") / "001001"
    return render_take(folder, model, num_frames=3, width=320, height=180, depth_noise_mm=0.3, landmark_noise_px=0.3)


@pytest.fixture(scope="module")
def fitted(rendered, model):
    take = read_take_input(rendered.folder)
    return take, reconstruct_take(take, model, Options(keep_stages=True))


def _copy(rendered, tmp_path):
    dst = tmp_path / rendered.folder.name
    shutil.copytree(rendered.folder, dst)
    return dst


def test_kabsch_recovers_a_rigid_transform():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20, 3))
    R = rotation_from_vector(np.array([0.3, -0.2, 0.5]))
    t = np.array([0.1, -0.05, 0.7])
    R2, t2, s = kabsch(a, a @ R.T + t)
    assert np.allclose(R2, R, atol=1e-10) and np.allclose(t2, t, atol=1e-10) and s == 1.0
    with pytest.raises(ReconstructionError):
        kabsch(a[:2], a[:2])


def test_point_to_plane_icp_recovers_a_small_motion():
    u, v = np.meshgrid(np.linspace(-0.05, 0.05, 60), np.linspace(-0.05, 0.05, 60))
    # a bumpy cap (not degenerate for sliding), normals of the height field towards the camera (-z)
    z = 0.7 + 3 * (u**2 + 0.5 * v**2) + 0.004 * np.sin(120 * u) * np.cos(90 * v)
    q = np.stack([u, v, z], -1).reshape(-1, 3)
    dz_dv, dz_du = np.gradient(z, v[:, 0], u[0])
    n = np.stack([dz_du, dz_dv, -np.ones_like(u)], -1).reshape(-1, 3)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    R = rotation_from_vector(np.radians([1.0, -1.5, 0.5]))
    centre = np.array([0.0, 0.0, 0.7])  # turned about the surface, as a side camera's residual error is
    t = centre - R @ centre + np.array([0.002, -0.001, 0.003])
    src = (q - t) @ R  # camera c's points: x_1 = R x_c + t
    R_est, t_est, rms, used = point_to_plane_icp([(src, q, n)], np.eye(3), np.zeros(3), iterations=30)
    angle, dist = extrinsics_error(
        np.block([[R_est, t_est[:, None]], [np.zeros((1, 3)), 1]]), np.block([[R, t[:, None]], [np.zeros((1, 3)), 1]])
    )
    assert angle < 0.05 and dist < 2e-4 and used > 1000


def test_alignment_finds_the_side_cameras(fitted, rendered):
    take, result = fitted
    for c in (0, 2):
        angle, dist = extrinsics_error(np.array(result.report["extrinsics"][str(c)]), rendered.extrinsics[c])
        assert angle < 1.0 and dist < 0.005, (c, angle, dist)
        info = result.report["alignment"]["cameras"][str(c)]
        assert info["landmark_pairs"] >= 20 and info["icp_pairs"] > 100


def test_fit_recovers_the_known_face(fitted, rendered, model):
    take, result = fitted
    truth = rendered.vertices
    err = {name: np.linalg.norm(seq - truth, axis=-1).mean() for name, seq in result.stages.items()}
    assert err["stage2"] < 0.0025, err
    assert err["stage2"] < err["stage1"]
    assert np.linalg.norm(result.vertices - truth, axis=-1).mean() < 0.0025
    # the identity found correlates with the true one
    ident = np.array(result.report["identity"])
    assert np.corrcoef(ident[:20], rendered.identity[:20])[0, 1] > 0.8
    stage2 = result.report["stages"]["stage2"]
    assert set(stage2["landmark_error_px"]) == {"0", "1", "2"}
    assert max(stage2["landmark_error_px"].values()) < 2.0
    assert max(stage2["depth_rms_mm"].values()) < 1.5
    assert result.report["frames_lost"] == []
    assert result.vertices.shape == truth.shape and result.vertices.dtype == np.float32


def test_stage_one_alone_recovers_pose_from_landmarks(rendered, model):
    take = read_take_input(rendered.folder)
    problem = fitting.Problem(model, np.arange(0, N, 10))
    views = [
        fitting.make_view(
            c,
            take.cameras[c].with_extrinsics(rendered.extrinsics[c]),
            take.depth[c][0],
            take.landmarks[c][0],
            fitting.camera_rays(take.cameras[c]),
        )
        for c in (0, 1, 2)
    ]
    p = fitting.initial_params(problem, views)
    w = fitting.Weights(depth=False)
    p, terms = fitting.levenberg_marquardt(problem, p, views, None, w, fitting.free_mask(problem, scale=False), steps=20)
    err = np.linalg.norm(problem.vertices(p) - rendered.vertices[0], axis=1).mean()
    assert err < 0.005 and np.isfinite(terms.total)


def test_offsets_follow_a_smooth_target(model):
    from reconstruction.offsets import OffsetSolver

    solver = OffsetSolver(model.triangles, model.num_vertices)
    tau = np.zeros((model.num_vertices, 3))
    tau[:, 2] = 0.001
    d = solver.solve(tau)
    # a constant target costs no smoothness: reached up to the offset prior's shrinkage
    assert np.allclose(d[:, 2], 0.001 / (1 + 0.01), rtol=1e-6) and np.abs(d[:, :2]).max() < 1e-12


def test_smoothing_is_zero_phase_low_pass():
    from reconstruction.smoothing import smooth_sequence

    t = np.arange(120) / 30
    slow, fast = np.sin(2 * np.pi * 1.0 * t), 0.5 * np.sin(2 * np.pi * 12.0 * t)
    seq = np.zeros((120, 2, 3), np.float32)
    seq[:, 0, 0] = slow + fast
    out = smooth_sequence(seq)
    assert out.shape == seq.shape
    assert np.abs(out[20:100, 0, 0] - slow[20:100]).max() < 0.02
    assert smooth_sequence(seq[:1]).shape == (1, 2, 3)
    assert smooth_sequence(seq[:5]).shape == (5, 2, 3)


def test_command_output_builds_a_release(rendered, tmp_path, capsys):
    from mmface4d_datasets.cli import main

    out = tmp_path / "fits"
    assert main(["reconstruct", str(rendered.folder), "--out", str(out), "--vertices", str(N), "--quiet"]) == 0
    folder = out / rendered.take_id
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(
        [f"{rendered.take_id}_filt_{a}.nut" for a in range(3)]
        + [f"{rendered.take_id}.wav", f"{rendered.take_id}.meta.json", "fit_report.json"]
    )
    report = json.loads((folder / "fit_report.json").read_text())
    assert report["take_id"] == rendered.take_id and "stage3" in report["stages"]
    from mmface4d_datasets.official import read_mesh_sequence

    meshes = read_mesh_sequence(folder / f"{rendered.take_id}_filt", N)
    assert np.linalg.norm(meshes - rendered.vertices, axis=-1).mean() < 0.0025
    # a second run skips the take; a foreign non-empty folder is refused
    assert main(["reconstruct", str(rendered.folder), "--out", str(out), "--vertices", str(N), "--quiet"]) == 0
    assert "skipped" in capsys.readouterr().out
    assert main(["reconstruct", str(rendered.folder), "--out", str(rendered.folder), "--quiet"]) == 2
    # build release takes the output unchanged
    release = tmp_path / "release"
    assert main(["build", "release", str(out), "--out", str(release), "--quiet"]) == 0
    info = json.loads((release / "meta" / "info.json").read_text())
    assert info["num_vertices"] == N or N in json.dumps(info)


@pytest.mark.slow
def test_missing_side_camera_is_reported_and_fitted_without_it(rendered, tmp_path, model):
    folder = _copy(rendered, tmp_path)
    for name in (f"{rendered.take_id}_2.json", f"{rendered.take_id}_2.nut", f"{rendered.take_id}_2.landmarks.npy"):
        (folder / name).unlink()
    take = read_take_input(folder)
    assert take.views == [0, 1] and "missing" in take.missing[2]
    result = reconstruct_take(take, model, Options(stage3=False))
    assert result.report["cameras_used"] == [0, 1] and "2" in result.report["cameras_missing"]
    assert np.linalg.norm(result.vertices - rendered.vertices, axis=-1).mean() < 0.004


@pytest.mark.parametrize("case", ["no_camera_1", "empty_landmarks", "depth_zero", "landmarks_missing"])
def test_bad_take_inputs_give_named_errors(rendered, tmp_path, case):
    from mmface4d_datasets.take_files import write_depth_video, write_landmarks

    folder = _copy(rendered, tmp_path)
    tid = rendered.take_id
    if case == "no_camera_1":
        (folder / f"{tid}_1.nut").unlink()
        match = "camera 1"
    elif case == "empty_landmarks":  # camera 1 (a side camera's is left out: the next test)
        write_landmarks(folder / f"{tid}_1.landmarks.npy", np.full((3, 68, 2), np.nan, np.float32))
        match = "no landmarks"
    elif case == "depth_zero":
        write_depth_video(folder / f"{tid}_2.nut", np.zeros((3, 180, 320), np.uint16))
        match = "no depth"
    else:
        (folder / f"{tid}_0.landmarks.npy").unlink()
        match = "landmarks"
    with pytest.raises(TakeInputError, match=match) as info:
        read_take_input(folder)
    assert tid in str(info.value)


def test_a_side_camera_where_no_face_was_found_is_left_out(rendered, tmp_path):
    """A detector that finds no face in a side view writes an all-NaN landmark file (docs/detector.md)."""
    from mmface4d_datasets.take_files import write_landmarks

    folder = _copy(rendered, tmp_path)
    write_landmarks(folder / f"{rendered.take_id}_0.landmarks.npy", np.full((3, 68, 2), np.nan, np.float32))
    take = read_take_input(folder)
    assert take.views == [1, 2] and "no face found" in take.missing[0]


@pytest.mark.parametrize("case", ["garbage_wav", "short_wav", "frames_absurd", "huge_landmark_header"])
def test_damaged_take_inputs_are_refused_before_fitting(rendered, tmp_path, case):
    """Issue 24: what `reconstruct` used to copy or pass on to `build release` is refused by name."""
    import json

    from mmface4d_datasets import official

    folder = _copy(rendered, tmp_path)
    tid = rendered.take_id
    if case == "garbage_wav":
        (folder / f"{tid}.wav").write_bytes(b"RIFF\x00\x00garbage!")
        match = rf"{tid}\.wav"
    elif case == "short_wav":
        official.write_audio(folder / f"{tid}.wav", np.zeros(160, np.float32))
        match = "lasts 0.010 s"
    elif case == "frames_absurd":
        meta = json.loads((folder / f"{tid}.meta.json").read_text())
        (folder / f"{tid}.meta.json").write_text(json.dumps(dict(meta, num_frames=10**9)))
        match = "num_frames 1000000000"
    else:
        path = folder / f"{tid}_0.landmarks.npy"
        data = path.read_bytes()
        path.write_bytes(data.replace(b"'shape': (", b"'shape': (1000000000", 1))
        match = "header declares shape"
    with pytest.raises(TakeInputError, match=match):
        read_take_input(folder)


@pytest.mark.parametrize("topology", ["bfm", "../../etc@1000", "bfm_front"])
def test_a_topology_name_the_model_cannot_make_is_refused(topology):
    from mmface4d_datasets.errors import MMFace4DError
    from reconstruction.batch import model_for

    with pytest.raises(MMFace4DError, match="topology|bfm"):
        model_for(["default"], None, {"topology": topology}, {})


@pytest.mark.slow
def test_face_lost_frames_are_filled_and_reported(rendered, tmp_path, model):
    from mmface4d_datasets.take_files import read_landmarks, write_landmarks

    folder = _copy(rendered, tmp_path)
    path = folder / f"{rendered.take_id}_1.landmarks.npy"
    lm = read_landmarks(path)
    lm[1] = np.nan
    write_landmarks(path, lm)
    take = read_take_input(folder)
    # one lost frame in three is more than the 25 % a take may lose: dropped
    with pytest.raises(FaceLostError, match=rendered.take_id):
        reconstruct_take(take, model, Options(stage3=False))
    import reconstruction.pipeline as pipeline

    old = pipeline.MAX_LOST_FRACTION
    pipeline.MAX_LOST_FRACTION = 0.5
    try:
        result = reconstruct_take(take, model, Options(stage3=False, smoothing=False))
    finally:
        pipeline.MAX_LOST_FRACTION = old
    assert [d["frame"] for d in result.report["frames_lost"]] == [1]
    assert "camera 1 sees 0 of 68" in result.report["frames_lost"][0]["reason"]
    assert np.allclose(result.vertices[1], (result.vertices[0] + result.vertices[2]) / 2, atol=1e-6)


@pytest.mark.slow
def test_a_diverging_fit_is_named_and_not_written(rendered, tmp_path, model):
    from mmface4d_datasets.cli import main
    from mmface4d_datasets.take_files import read_landmarks, write_landmarks

    folder = _copy(rendered, tmp_path)
    rng = np.random.default_rng(0)
    for c in (0, 1, 2):
        path = folder / f"{rendered.take_id}_{c}.landmarks.npy"
        lm = read_landmarks(path)
        ok = np.isfinite(lm[2]).all(1)
        lm[2, ok] = rng.uniform([0, 0], [320, 180], size=(ok.sum(), 2))  # frame 2: landmarks scattered at random
        write_landmarks(path, lm)
    take = read_take_input(folder)
    with pytest.raises(FitDivergedError) as info:
        reconstruct_take(take, model, Options(stage3=False))
    assert info.value.take_id == rendered.take_id and info.value.frame == 2 and "stage" in info.value.stage
    out = tmp_path / "out"
    assert main(["reconstruct", str(folder), "--out", str(out), "--vertices", str(N), "--quiet"]) == 2
    assert not (out / rendered.take_id).exists()


@pytest.mark.slow
def test_adam_anchor_lowers_the_same_energy(fitted, model):
    from reconstruction.anchor import adam_track_frame, frame_energy

    take, result = fitted
    problem = fitting.Problem(model, np.arange(0, N, 4))
    cams = {c: take.cameras[c].with_extrinsics(np.array(result.report["extrinsics"][str(c)])) for c in (0, 1, 2)}
    views = [fitting.make_view(c, cams[c], take.depth[c][1], take.landmarks[c][1], fitting.camera_rays(cams[c])) for c in (0, 1, 2)]
    start = result.params[0]
    w = fitting.Weights()
    before = frame_energy(problem, start, views, w)
    p, iterations, seconds, trace = adam_track_frame(problem, start, views, w, max_iterations=15)
    assert iterations == 15 and frame_energy(problem, p, views, w) < before


def test_detector_adapter_up_to_model_loading():
    from reconstruction.detector import DetectorUnavailable, FaceAlignmentDetector

    try:
        import face_alignment  # noqa: F401
    except ImportError:
        with pytest.raises(DetectorUnavailable, match="reconstruct extra"):
            FaceAlignmentDetector()
        pytest.skip("face-alignment is not installed (the reconstruct extra); the adapter names the extra")
    try:
        detector = FaceAlignmentDetector()
    except DetectorUnavailable as exc:
        assert "weights" in str(exc)
        pytest.skip(f"face-alignment cannot download its weights here: {exc}")
    frames = np.zeros((1, 64, 64, 3), np.uint8)
    out = detector.detect(frames)
    assert out.shape == (1, 68, 2) and np.isnan(out).all()
