"""`mmface4d rig convert` on the real Azure Kinect recording, against the SDK's own numbers.

The SDK's answers (tests/data/k4a_sdk_oracle.json) were recorded by
tests/data/make_k4a_sdk_oracle.py with pyk4a-bundle (libk4a 1.4) on the same recording.
Multi-camera takes and faulty files are made from the recording's own frames with
capture_rig.mkv_write.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from capture_rig import mkv
from capture_rig.convert import convert_session, convert_take
from capture_rig.errors import (
    AudioError,
    MissingCalibration,
    ModeMismatch,
    NotKinectRecording,
    TakeExists,
    TimestampMismatch,
    TruncatedRecording,
)
from capture_rig.mkv_write import first_capture, write_kinect_mkv
from mmface4d_datasets import official
from mmface4d_datasets.take_files import read_colour_video, read_depth_video

ORACLE = Path(__file__).parent / "data" / "k4a_sdk_oracle.json"
RECORDING_ENV = "MMFACE4D_K4A_RECORDING"


def recording_path() -> Path:
    if os.environ.get(RECORDING_ENV):
        return Path(os.environ[RECORDING_ENV])
    return Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "k4a_recording" / "recording.mkv"


@pytest.fixture(scope="module")
def recording() -> Path:
    path = recording_path()
    if not path.is_file():
        pytest.skip(f"the real Azure Kinect recording is absent (looked at {path}; set {RECORDING_ENV})")
    return path


@pytest.fixture(scope="module")
def oracle() -> dict:
    return json.loads(ORACLE.read_text())


@pytest.fixture(scope="module")
def take(recording, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("converted")
    report = convert_take([recording], "000001", out, progress=False, metadata={"subject_id": "S1", "sentence_id": "210003"})
    assert report.num_frames == 1 and report.missing_frames == {0: []}
    return Path(report.folder)


@pytest.fixture(scope="module")
def capture(recording):
    return first_capture(recording)


def test_recording_header_and_depth_are_what_the_sdk_reads(recording, oracle):
    info = mkv.read_info(recording)
    assert (info.colour_mode, info.depth_mode, info.fps) == ("MJPG_720P", "NFOV_UNBINNED", 5.0)
    assert info.serial_number == "001514394512" and info.start_offset_usec == 336277
    frames = list(mkv.iter_frames(recording, info))
    assert len(frames) == 1
    assert frames[0].depth_timestamp_usec == oracle["depth_timestamp_usec"]
    depth = frames[0].depth
    for sample in oracle["samples"]:
        u, v = sample["depth_pixel"]
        assert depth[v, u] == sample["depth_mm"]


def test_fixture_converts_to_a_one_camera_take(take):
    names = sorted(p.name for p in take.iterdir())
    assert names == ["000001.meta.json", "000001_0.json", "000001_0.mp4", "000001_0.nut"]
    calibration = official.read_calibration(take / "000001_0.json")
    assert calibration["color_mode"] == "MJPG_720P" and calibration["depth_mode"] == "NFOV_UNBINNED"
    assert (calibration["width"], calibration["height"]) == (1280, 720)
    assert calibration["serial_number"] == "001514394512"
    assert calibration["stream_length_usec"] == 463945  # what the SDK's playback reports as the length
    assert len(calibration["distortion"]) == 8 and "extrinsics" not in calibration  # camera 0: not the reference
    assert np.asarray(calibration["depth_camera"]["extrinsics"]).shape == (4, 4)
    depth = read_depth_video(take / "000001_0.nut")
    colour = read_colour_video(take / "000001_0.mp4")
    assert depth.shape == (1, 720, 1280) and depth.dtype == np.uint16
    assert colour.shape == (1, 720, 1280, 3) and 40 < colour.mean() < 220
    meta = json.loads((take / "000001.meta.json").read_text())
    assert meta["subject_id"] == "S1" and meta["emotion"] == "happy" and meta["fps"] == 5
    assert meta["device_serials"] == {"0": "001514394512"} and meta["missing_frames"] == {"0": []}


def test_registered_depth_agrees_with_the_sdk(take, oracle):
    """At the colour pixel where the SDK's convert_2d_to_3d / convert_3d_to_2d put each sampled depth
    pixel, the registered image holds that point's depth along the colour axis (mm), unless a nearer
    surface covers the pixel (the z-buffer keeps the nearer one)."""
    registered = read_depth_video(take / "000001_0.nut")[0].astype(np.float64)
    rows = [s for s in oracle["samples"] if s["colour_pixel"] is not None]
    pixels = np.rint(np.array([s["colour_pixel"] for s in rows])).astype(int)
    z = np.array([s["point_colour_camera_mm"][2] for s in rows])
    inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < 1280) & (pixels[:, 1] >= 0) & (pixels[:, 1] < 720)
    values = registered[pixels[inside, 1], pixels[inside, 0]]
    diff = values - z[inside]
    assert inside.sum() > 150
    assert (values > 0).all()  # every measured point lands on a filled pixel
    assert np.mean(np.abs(diff) <= 2.0) > 0.9, np.sort(diff)
    assert np.median(np.abs(diff)) < 1.0
    assert diff.max() <= 2.0  # never FARTHER than the SDK's point: only occlusion makes a difference


def test_point_mapping_matches_the_sdk(recording, oracle, capture):
    from capture_rig.registration import DepthRegistration
    from mmface4d_datasets.camera import k4a_cameras

    _, depth, calibration = capture
    cams = k4a_cameras(calibration, "MJPG_720P", "NFOV_UNBINNED")
    reg = DepthRegistration(cams.depth, cams.color)
    pixels = np.array([s["depth_pixel"] for s in oracle["samples"]])
    points = reg.points(depth, pixels)
    sdk = np.array([s["point_colour_camera_mm"] for s in oracle["samples"]])
    assert np.abs(points - sdk).max() < 0.01  # mm
    uv = reg.colour_pixels(points)
    sdk_uv = np.array([s["colour_pixel"] for s in oracle["samples"]])
    assert np.nanmax(np.abs(uv - sdk_uv)) < 0.01  # px


def test_registration_fills_footprints_without_holes(take, capture):
    from capture_rig.registration import DepthRegistration
    from mmface4d_datasets.camera import k4a_cameras

    registered = read_depth_video(take / "000001_0.nut")[0]

    def isolated_holes(image):
        """Empty pixels between two filled ones, horizontally or vertically (splatting gaps)."""
        valid = np.pad(image > 0, 1)
        across = valid[1:-1, :-2] & valid[1:-1, 2:]
        down = valid[:-2, 1:-1] & valid[2:, 1:-1]
        return int(((image == 0) & (across | down)).sum())

    valid = int((registered > 0).sum())
    assert isolated_holes(registered) < 0.005 * valid
    # the same depth splatted at pixel centres only would be full of holes: the check can fail
    _, depth, calibration = capture
    cams = k4a_cameras(calibration, "MJPG_720P", "NFOV_UNBINNED")
    reg = DepthRegistration(cams.depth, cams.color)
    uv = np.rint(reg.colour_pixels(reg.points(depth)))
    ok = np.isfinite(uv).all(1) & (uv[:, 0] >= 0) & (uv[:, 0] < 1280) & (uv[:, 1] >= 0) & (uv[:, 1] < 720)
    splat = np.zeros((720, 1280), np.uint16)
    splat[uv[ok, 1].astype(int), uv[ok, 0].astype(int)] = 1
    assert isolated_holes(splat) > 0.05 * valid


# ------------------------------------------------------------------ multi-camera takes and bad input
def _camera(tmp, capture, name, frames, *, mode="MJPG_720P", sync="STANDALONE", delay=0, calibration=True, start=2_000_000, shift=0):
    jpeg, depth, cal = capture
    stamps = [start + round(k * 1e6 / 30) + delay + shift for k in frames]
    return write_kinect_mkv(
        tmp / name,
        jpegs=[jpeg] * len(frames),
        depths=[depth] * len(frames),
        timestamps_usec=stamps,
        calibration_json=cal if calibration else None,
        colour_mode=mode,
        wired_sync_mode=sync,
        subordinate_delay_usec=delay,
        serial=name[:12].ljust(12, "0"),
    )


def _wav(path, seconds=0.5, rate=16000):
    import soundfile

    soundfile.write(path, (0.1 * np.sin(np.arange(int(seconds * rate)) / 5)).astype(np.float32), rate, subtype="FLOAT")
    return path


def test_three_cameras_missing_frame_reported_and_audio_aligned(tmp_path, capture):
    recs = [
        _camera(tmp_path, capture, "c0.mkv", [0, 1, 2, 3], sync="SUBORDINATE", delay=160),
        _camera(tmp_path, capture, "c1.mkv", [0, 1, 2, 3], sync="MASTER"),
        _camera(tmp_path, capture, "c2.mkv", [0, 1, 3], sync="SUBORDINATE", delay=320),
    ]
    wav = _wav(tmp_path / "a.wav")
    # the audio's first sample came 0.1 s after the master's first capture (frame 0)
    log = {
        "subject_id": "S2",
        "sentence_id": "000004",
        "text": "好的。",
        "audio": {"first_sample_host_s": 10.1},
        "master": {"first_capture_host_s": 10.0, "first_capture_device_usec": 2_000_000},
    }
    notes = []
    report = convert_take(recs, "000002", tmp_path / "out", audio=wav, take_log=log, progress=False, log=notes.append, allow_damaged=True)
    assert report.num_frames == 4 and report.missing_frames == {0: [], 1: [], 2: [2]}
    assert any("camera 2: 1 frame(s) missing" in n for n in notes)
    take = Path(report.folder)
    d0, d2 = read_depth_video(take / "000002_0.nut"), read_depth_video(take / "000002_2.nut")
    assert d2.shape[0] == 4 and not d2[2].any() and d2[3].any() and np.array_equal(d0[3], d2[3])
    assert read_colour_video(take / "000002_2.mp4")[2].max() < 20  # the missing frame is black
    meta = json.loads((take / "000002.meta.json").read_text())
    assert meta["missing_frames"] == {"0": [], "1": [], "2": [2]}
    assert meta["audio_offset_s"] == pytest.approx(0.1, abs=1e-6) and meta["emotion"] == "neutral"
    assert meta["sync"]["subordinate_delays_usec"] == {"0": 160, "1": 0, "2": 320}
    samples, _ = official.read_audio(take / "000002.wav")
    assert len(samples) == 8000 + 1600 and not samples[:1600].any() and samples[1601:].any()
    assert np.asarray(json.loads((take / "000002_1.json").read_text())["extrinsics"]).tolist() == np.eye(4).tolist()


def test_landmark_files_beside_the_recordings_are_carried_onto_the_frame_grid(tmp_path, capture):
    """REC.landmarks.npy (one row per capture) becomes ID_c.landmarks.npy on the take's frames: a frame
    the camera lacks is NaN; a file with the wrong row count is a named error and nothing is written."""
    from capture_rig.errors import LandmarkError
    from mmface4d_datasets.take_files import read_landmarks

    recs = [
        _camera(tmp_path, capture, "c1.mkv", [0, 1, 2, 3], sync="MASTER"),
        _camera(tmp_path, capture, "c2.mkv", [0, 1, 3], sync="SUBORDINATE", delay=320),
    ]
    rows = np.arange(3 * 68 * 2, dtype=np.float32).reshape(3, 68, 2)
    np.save(tmp_path / "c2.landmarks.npy", rows)
    np.save(tmp_path / "c1.landmarks.npy", np.ones((4, 68, 2), np.float32))
    report = convert_take(recs, "000007", tmp_path / "out", camera_ids=[1, 2], progress=False, log=lambda line: None, allow_damaged=True)
    carried = read_landmarks(Path(report.folder) / "000007_2.landmarks.npy")
    assert carried.shape == (4, 68, 2) and np.isnan(carried[2]).all()
    assert np.array_equal(carried[[0, 1, 3]], rows)
    meta = json.loads((Path(report.folder) / "000007.meta.json").read_text())
    assert meta["cameras"]["2"]["landmarks"] == "carried from c2.landmarks.npy"
    np.save(tmp_path / "c2.landmarks.npy", rows[:2])
    with pytest.raises(LandmarkError, match=r"c2\.landmarks\.npy has 2 rows but its recording has 3 captures"):
        convert_take(recs, "000008", tmp_path / "out", camera_ids=[1, 2], progress=False, log=lambda line: None, allow_damaged=True)
    assert not (tmp_path / "out" / "000008").exists() and not list((tmp_path / "out").glob(".000008*"))


def test_bad_inputs_raise_named_errors_and_leave_nothing(tmp_path, capture, recording):
    out = tmp_path / "out"
    good = _camera(tmp_path, capture, "good.mkv", [0, 1])
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(recording.read_bytes()[:900_000])
    not_kinect = tmp_path / "movie.mkv"
    from mmface4d_datasets.take_files import write_colour_video

    write_colour_video(tmp_path / "movie.mp4", np.zeros((2, 64, 64, 3), np.uint8))
    shutil.copy(tmp_path / "movie.mp4", not_kinect)
    cases = [
        ([cut], {}, TruncatedRecording, "cut off"),
        ([not_kinect], {}, NotKinectRecording, "movie.mkv"),
        ([_camera(tmp_path, capture, "nocal.mkv", [0, 1], calibration=False)], {}, MissingCalibration, "calibration.json"),
        ([good, _camera(tmp_path, capture, "hd.mkv", [0, 1], mode="MJPG_1080P")], {}, ModeMismatch, "MJPG_1080P"),
        ([good, _camera(tmp_path, capture, "late.mkv", [0, 1], shift=10_000)], {}, TimestampMismatch, "late.mkv"),
        ([good], {"audio": _wav(tmp_path / "cd.wav", rate=44100)}, AudioError, "44100 Hz"),
    ]
    for recordings, options, error, words in cases:
        with pytest.raises(error, match=words.replace(".", r"\.")):
            convert_take(recordings, "000003", out, progress=False, **options)
    assert not out.exists() or not list(out.iterdir())  # no take, no temporary folder
    convert_take([good], "000003", out, progress=False)
    with pytest.raises(TakeExists):
        convert_take([good], "000003", out, progress=False)


def test_session_batch_skips_bad_and_finished_takes(tmp_path, capture):
    session = tmp_path / "session"
    for take_id, status in (("000010", "ok"), ("000011", "bad")):
        folder = session / "takes" / take_id
        folder.mkdir(parents=True)
        _camera(folder, capture, f"{take_id}_1.mkv", [0, 1])
        (folder / f"{take_id}.take.json").write_text(json.dumps({"status": status, "subject_id": "S3", "sentence_id": "250001"}))
    summary = convert_session(session, tmp_path / "out", progress=False)
    assert [r["take_id"] for r in summary["converted"]] == ["000010"] and summary["skipped_bad"] == ["000011"]
    meta = json.loads((tmp_path / "out" / "000010" / "000010.meta.json").read_text())
    assert meta["subject_id"] == "S3" and meta["emotion"] == "fear"
    assert sorted(p.name for p in (tmp_path / "out" / "000010").iterdir() if p.suffix == ".json") == ["000010.meta.json", "000010_1.json"]
    again = convert_session(session, tmp_path / "out", progress=False)
    assert again["skipped_existing"] == ["000010"] and not again["converted"]


def test_cli_prints_a_named_error_and_exits_2(tmp_path, capsys):
    from mmface4d_datasets.cli import main

    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"not a video at all" * 10)
    code = main(["rig", "convert", str(junk), "--take", "000005", "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "junk.mkv" in err and "Traceback" not in err


def _unknown_size_segment(data: bytes) -> bytearray:
    """The recording as a writer that died leaves it: its Segment's size is "unknown" (all ones)."""
    data = bytearray(data)
    at = data.find(b"\x18\x53\x80\x67") + 4
    length = 9 - data[at].bit_length()
    data[at : at + length] = bytes([(0xFF >> (length - 1)) | (0x80 >> (length - 1))] + [0xFF] * (length - 1))
    return data


def test_damaged_inputs_the_checks_used_to_let_through(tmp_path, capture, recording):
    """Issue 24: a take id in non-ASCII digits, a depth block cut off in a live recording (unknown-size
    Segment, so no total to compare with), and frames dropped above the limit are named errors."""
    from capture_rig.errors import DamagedTake, RigError

    good = _camera(tmp_path, capture, "good.mkv", [0, 1])
    with pytest.raises(RigError, match="six ASCII digits"):
        convert_take([good], "\u0660\u0660\u0660\u0660\u0660\u0661", tmp_path / "out", progress=False)
    cut = tmp_path / "live.mkv"
    depth_block = next(p for p in _packets(recording) if p[0] == "DEPTH")
    cut.write_bytes(bytes(_unknown_size_segment(recording.read_bytes())[: depth_block[1] + depth_block[2] // 2]))
    with pytest.raises(TruncatedRecording, match="cut off"):
        convert_take([cut], "000008", tmp_path / "out", progress=False)
    recs = [
        _camera(tmp_path, capture, "c1.mkv", [0, 1, 2, 3], sync="MASTER"),
        _camera(tmp_path, capture, "c2.mkv", [0, 1, 3], sync="SUBORDINATE", delay=320),
    ]
    with pytest.raises(DamagedTake, match=r"camera 2: 1 of 4 frames.*--allow-damaged"):
        convert_take(recs, "000009", tmp_path / "out", camera_ids=[1, 2], progress=False, log=lambda line: None)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def _packets(path: Path) -> list[tuple[str, int, int]]:
    import av

    with av.open(str(path)) as container:
        return [(p.stream.metadata.get("title"), p.pos, p.size) for p in container.demux() if p.pts is not None]
