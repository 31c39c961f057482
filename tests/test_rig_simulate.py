"""`mmface4d rig simulate`: the files, the depth against the truth, the take readers, the MKV round
trip through `rig convert`, a release built from the truth, and reproducibility.

Tests run at the reduced resolutions ("small", "720p-binned") on a few frames; perf/rig.py measures
the full 1080p path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from capture_rig.errors import RigError
from capture_rig.simulate import SimulationOptions, simulate
from capture_rig.simulate_noise import NO_NOISE, NoiseSettings, parse_noise
from mmface4d_datasets import official
from mmface4d_datasets.camera import read_take_cameras
from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.take_files import read_colour_video, read_depth_video, read_landmarks

TAKE = "001001"
FRAMES = 3


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "out"
    summary = simulate(out, 1, 1, seed=3, options=SimulationOptions(resolution="small", max_frames=FRAMES), progress=False)
    assert summary["written"] == [TAKE] and summary["frames"] == FRAMES
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_layout_names_every_file(sim):
    takes = sorted(p.name for p in (sim / "takes" / TAKE).iterdir())
    assert takes == sorted(
        [f"{TAKE}.wav", f"{TAKE}.meta.json"] + [f"{TAKE}_{c}{ext}" for c in range(3) for ext in (".json", ".mp4", ".nut", ".landmarks.npy")]
    )
    truth = sorted(p.name for p in (sim / "truth" / TAKE).iterdir())
    assert truth == sorted([f"{TAKE}.wav", f"{TAKE}.meta.json", f"{TAKE}.gt.npz"] + [f"{TAKE}_filt_{a}.nut" for a in range(3)])
    meta = json.loads((sim / "takes" / TAKE / f"{TAKE}.meta.json").read_text())
    assert {"subject_id", "sentence_id", "emotion", "text"} <= set(meta)
    assert not {"extrinsics", "sync", "simulation"} & set(meta)  # no truth in the take
    truth_meta = json.loads((sim / "truth" / TAKE / f"{TAKE}.meta.json").read_text())
    assert truth_meta["simulation"]["options"]["noise"] == NoiseSettings().as_dict()
    assert abs(truth_meta["sync"]["audio_offset_s"]) <= 0.020
    assert max(abs(v) for c in "02" for v in truth_meta["sync"]["clock_offsets_s"][c]) <= 0.0005


def test_take_readers_read_the_simulated_take_like_the_sample_take(sim):
    with pytest.raises(FormatError, match="missing 001001_filt_0.nut"):
        official.read_take(sim / "takes" / TAKE)  # meshes are asked for by default
    take = official.read_take(sim / "takes" / TAKE, meshes=False)
    assert [t.take_id for t in official.find_takes(sim / "takes", meshes=False)] == [TAKE]
    assert sorted(take.calibrations) == [0, 1, 2] and sorted(take.landmarks) == [0, 1, 2]
    assert sorted(take.depth_videos) == sorted(take.colour_videos) == [0, 1, 2]
    for c in range(3):
        calibration = official.read_calibration(take.calibrations[c])
        assert calibration["color_mode"] == "MJPG_720P" and calibration["depth_mode"] == "NFOV_2X2BINNED"
        colour, depth = read_take_cameras(take.calibrations[c])
        assert (colour.width, colour.height) == (480, 270) and (depth.width, depth.height) == (320, 288)
        assert colour.distortion is not None and depth.extrinsics is not None
        assert (colour.extrinsics is not None) == (c == 1)  # only the reference camera's pose is known
        assert read_depth_video(take.depth_videos[c]).shape == (FRAMES, 270, 480)
        assert read_colour_video(take.colour_videos[c]).shape == (FRAMES, 270, 480, 3)
        landmarks = read_landmarks(take.landmarks[c])
        assert landmarks.shape == (FRAMES, 68, 2)
        assert 30 <= np.isfinite(landmarks[..., 0]).sum(axis=1).min()
    samples, rate = official.read_audio(take.audio)
    assert rate == 16000 and abs(len(samples) / rate - FRAMES / 30) < 1 / 30
    truth = official.read_take(sim / "truth" / TAKE)
    gt = np.load(truth.ground_truth)
    assert gt["landmarks"].shape == (3, FRAMES, 68, 2) and gt["landmarks_visible"].shape == (3, FRAMES, 68)
    vertices = truth.vertices(int(json.loads(truth.meta.read_text())["num_vertices"]))
    assert vertices.shape[0] == FRAMES


def test_camera_0_sees_the_subjects_left_side(sim):
    """DESIGN.md: in camera 0 the nose tip sits beside the contour's first point (image left)."""
    gt = np.load(sim / "truth" / TAKE / f"{TAKE}.gt.npz")
    lm = gt["landmarks"][:, 0]
    nose = lm[:, 30, 0]
    assert abs(nose[0] - lm[0, 0, 0]) < abs(nose[0] - lm[0, 16, 0])
    assert abs(nose[2] - lm[2, 16, 0]) < abs(nose[2] - lm[2, 0, 0])


def test_truth_carries_detail_outside_the_model_span(sim):
    from capture_rig.simulate_scene import SpanProjector
    from mmface4d_datasets.facemodel import load_face_model

    model = load_face_model("default")
    gt = np.load(sim / "truth" / TAKE / f"{TAKE}.gt.npz")
    detail = gt["subject_detail"].astype(np.float64)
    rms = np.sqrt((detail**2).sum(-1).mean()) * 1000
    assert 0.9 < rms < 1.1
    assert SpanProjector(model).residual_rms(detail) * 1000 > 0.99 * rms  # nothing of it is in the span
    # smooth over centimetres: neighbouring vertices (about 3 mm apart) differ by far less than
    # independent values would (sqrt(2) x the RMS)
    steps = np.linalg.norm(detail[model.triangles[:, 0]] - detail[model.triangles[:, 1]], axis=1) * 1000
    assert np.median(steps) < 0.5 * rms


def test_depth_back_projects_onto_the_true_surface(sim):
    """Registered depth of each camera, back-projected with its own calibration and moved by the true
    extrinsics, lies on the true face within the noise model (1 mm at 0.7 m, 1 mm steps, the
    registration's footprint on slanted skin)."""
    from scipy.spatial import cKDTree

    from mmface4d_datasets.render import vertex_normals

    truth = official.read_take(sim / "truth" / TAKE)
    meta = json.loads(truth.meta.read_text())
    vertices = truth.vertices(meta["num_vertices"])
    from mmface4d_datasets.facemodel import load_face_model

    triangles = load_face_model("default").triangles
    boundary = _boundary_vertices(triangles, len(vertices[0]))
    for c in range(3):
        colour, _ = read_take_cameras(sim / "takes" / TAKE / f"{TAKE}_{c}.json")
        extrinsics = np.asarray(meta["extrinsics"]["cameras"][str(c)])
        depth = read_depth_video(sim / "takes" / TAKE / f"{TAKE}_{c}.nut")
        k = 1
        surface = vertices[k].astype(np.float64)
        normals = vertex_normals(surface, triangles)
        v, u = np.nonzero(depth[k] > 0)
        points = colour.unproject(np.stack([u, v], 1).astype(float), depth[k][v, u] / 1000.0)
        points = points @ extrinsics[:3, :3].T + extrinsics[:3, 3]
        distance, nearest = cKDTree(surface).query(points)
        view = surface[nearest] - extrinsics[:3, 3]
        facing = np.abs((normals[nearest] * view).sum(1)) / np.linalg.norm(view, axis=1) > np.cos(np.radians(50))
        on_face = (distance < 0.004) & ~boundary[nearest] & facing
        assert on_face.sum() > 200, f"camera {c}: only {on_face.sum()} depth pixels on the face"
        residual = ((points - surface[nearest]) * normals[nearest]).sum(1)[on_face] * 1000
        robust_sigma = 1.4826 * np.median(np.abs(residual - np.median(residual)))
        print(f"camera {c}: {on_face.sum()} px, median {np.median(residual):.2f} mm, robust sigma {robust_sigma:.2f} mm")
        assert abs(np.median(residual)) < 1.0, f"camera {c}: median {np.median(residual):.2f} mm"
        assert 0.3 < robust_sigma < 2.5, f"camera {c}: robust sigma {robust_sigma:.2f} mm"


def _boundary_vertices(triangles, n):
    edges = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    mask = np.zeros(n, dtype=bool)
    mask[unique[counts == 1].ravel()] = True
    return mask


def test_noise_settings_parse_and_refuse():
    assert parse_noise("") == NoiseSettings()
    assert parse_noise("none") == NO_NOISE
    assert parse_noise("depth_sigma_mm=2,hole-angle-deg=70").hole_angle_deg == 70.0
    for bad in ("depth_sigma_mm", "nosuch=1", "depth_sigma_mm=-1", "depth_quantum_mm=0.5"):
        with pytest.raises(RigError):
            parse_noise(bad)


def test_depth_noise_model_statistics():
    from capture_rig.simulate_noise import depth_noise

    rng = np.random.default_rng(0)
    flat = np.full((200, 200), 1400.0)
    out = depth_noise(flat, np.ones_like(flat), NoiseSettings(), rng).astype(float)
    assert abs(out.std() - 4.0) < 0.3  # sigma grows with the square of the distance: 1 mm * (1.4 / 0.7)^2
    step = np.full((100, 100), 700.0)
    step[:, 50:] = 1500.0
    grazing = np.ones_like(step)
    grazing[:10] = np.cos(np.radians(80))
    out = depth_noise(step, grazing, NoiseSettings(depth_sigma_mm=0.0), rng)
    assert (out[:10] == 0).all() and (out[10:] > 0).all()  # holes beyond 75 degrees
    edge = out[10:, 49:51].astype(float)
    flying = (edge > 705) & (edge < 1495)
    assert 0.2 < flying.mean() < 0.45  # a third of the edge pixels fly


def test_same_seed_same_bytes_and_the_folder_rule(sim, tmp_path):
    again = tmp_path / "again"
    simulate(again, 1, 1, seed=3, options=SimulationOptions(resolution="small", max_frames=FRAMES), progress=False)
    assert _files(again) == _files(sim)
    summary = simulate(again, 1, 1, seed=3, options=SimulationOptions(resolution="small", max_frames=FRAMES), progress=False)
    assert summary["skipped_existing"] == [TAKE] and summary["written"] == []
    with pytest.raises(RigError, match="other settings"):
        simulate(again, 1, 1, seed=4, options=SimulationOptions(resolution="small", max_frames=FRAMES), progress=False)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x.txt").write_text("x")
    with pytest.raises(RigError, match="not empty"):
        simulate(tmp_path / "foreign", 1, 1, options=SimulationOptions(resolution="small", max_frames=1), progress=False)


def test_build_release_on_the_truth_loads(sim, tmp_path):
    from builders.build import build_release
    from mmface4d_datasets.release.reader import Release

    build_release(sim / "truth", tmp_path / "release", progress=False)
    release = Release(tmp_path / "release")
    truth = official.read_take(sim / "truth" / TAKE)
    meta = json.loads(truth.meta.read_text())
    record = release.record(f"{meta['subject_id']}/{TAKE}")
    pose = record["head_pose"].astype(np.float64)
    back = np.einsum("tij,tvj->tvi", pose[:, :3, :3], record["vertices"].astype(np.float64)) + pose[:, None, :3, 3]
    source = truth.vertices(meta["num_vertices"])
    assert np.linalg.norm(back - source, axis=-1).max() <= np.sqrt(3) * release.info["max_error"] + 1e-5


@pytest.mark.slow
def test_mkv_round_trip_through_rig_convert(tmp_path):
    """The recorder-layout session (`DIR/session/takes/ID/`) converted by `rig convert --session` gives
    the simulated take's depth exactly, its colour within MJPG's loss, its landmark files carried
    through, and the WAV aligned to frame 0 again from the take log's timing."""
    from capture_rig.convert import convert_session, find_session_takes

    out = tmp_path / "sim"
    simulate(out, 1, 1, seed=5, options=SimulationOptions(resolution="720p-binned", max_frames=2, mkv=True), progress=False)
    session = out / "session"
    assert sorted(p.name for p in (session / "takes" / TAKE).iterdir()) == sorted(
        [f"{TAKE}.take.json", f"{TAKE}.wav"] + [f"{TAKE}_{c}.{x}" for c in range(3) for x in ("mkv", "landmarks.npy")]
    )
    [found] = find_session_takes(session)
    assert found.take_id == TAKE and sorted(found.landmarks) == [0, 1, 2] and found.take_log is not None
    summary = convert_session(session, tmp_path / "converted", progress=False)
    assert not summary["failed"] and [r["take_id"] for r in summary["converted"]] == [TAKE]
    report = summary["converted"][0]
    assert report["num_frames"] == 2 and all(not m for m in report["missing_frames"].values())
    converted = tmp_path / "converted" / TAKE
    for c in range(3):
        direct = read_depth_video(out / "takes" / TAKE / f"{TAKE}_{c}.nut")
        assert np.array_equal(read_depth_video(converted / f"{TAKE}_{c}.nut"), direct)
        a = read_colour_video(out / "takes" / TAKE / f"{TAKE}_{c}.mp4").astype(float)
        b = read_colour_video(converted / f"{TAKE}_{c}.mp4").astype(float)
        psnr = 10 * np.log10(255**2 / np.mean((a - b) ** 2))
        assert psnr > 38, f"camera {c}: colour PSNR {psnr:.1f} dB"
        sim_json = json.loads((out / "takes" / TAKE / f"{TAKE}_{c}.json").read_text())
        conv_json = json.loads((converted / f"{TAKE}_{c}.json").read_text())
        for key in ("intrinsic_matrix", "distortion", "depth_camera", "width", "height", "color_mode", "depth_mode"):
            assert sim_json[key] == conv_json[key], key
        assert np.array_equal(
            read_landmarks(converted / f"{TAKE}_{c}.landmarks.npy"),
            read_landmarks(out / "takes" / TAKE / f"{TAKE}_{c}.landmarks.npy"),
            equal_nan=True,
        )
    # the take log's timing puts the late WAV back on frame 0: the truth's samples, less the shift at the end
    truth_meta = json.loads((out / "truth" / TAKE / f"{TAKE}.meta.json").read_text())
    meta = json.loads((converted / f"{TAKE}.meta.json").read_text())
    assert meta["audio_offset_s"] == pytest.approx(-truth_meta["sync"]["audio_offset_s"], abs=1e-6)
    assert meta["subject_id"] == truth_meta["subject_id"] and meta["gender"] == truth_meta["gender"]
    aligned, _ = official.read_audio(converted / f"{TAKE}.wav")
    truth, _ = official.read_audio(out / "truth" / TAKE / f"{TAKE}.wav")
    shift = round(truth_meta["sync"]["audio_offset_s"] * 16000)
    start = max(-shift, 0)  # a microphone that started late lost the first samples (silence there)
    n = min(len(aligned), len(truth)) - abs(shift)
    assert n > 0 and np.array_equal(aligned[start : start + n], truth[start : start + n])


def test_cli_refuses_a_foreign_folder_with_exit_2(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmface4d_datasets",
            "rig",
            "simulate",
            "--subjects",
            "1",
            "--sentences",
            "1",
            "--out",
            str(tmp_path),
            "--resolution",
            "small",
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "not empty" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmface4d_datasets",
            "rig",
            "simulate",
            "--subjects",
            "1",
            "--sentences",
            "1",
            "--out",
            str(tmp_path / "n"),
            "--resolution",
            "small",
            "--mkv",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "--mkv needs" in out.stderr


def test_full_range_mjpg_frames_keep_their_levels_in_the_take_video(tmp_path):
    """`rig convert` passes decoded MJPG frames (full-range yuvj422p) to the H.264 writer; their
    levels must survive (they were stretched: 20 -> 5, 220 -> 238)."""
    import av

    from capture_rig.simulate import _jpeg
    from mmface4d_datasets.take_files import ColourVideoWriter

    ramp = np.zeros((64, 256, 3), np.uint8)
    ramp[:] = np.arange(256, dtype=np.uint8)[None, :, None]
    frame = av.CodecContext.create("mjpeg", "r").decode(av.Packet(_jpeg(ramp)))[0]
    assert frame.format.name == "yuvj422p"
    with ColourVideoWriter(tmp_path / "ramp.mp4", 256, 64) as writer:
        writer.write(frame)
    back = read_colour_video(tmp_path / "ramp.mp4")[0].astype(int)
    assert np.abs(back[32, 8:248] - ramp[32, 8:248]).max() <= 3
