"""The camera model (mmface4d_datasets.camera) against the Azure Kinect SDK's own numbers.

tests/data/k4a_oracle.json holds what libk4a's convert_3d_to_2d / convert_2d_to_3d returned on the
real recording's calibration (made by tests/oracles/make_k4a_oracle.py in a numpy < 2 environment);
the calibration itself is read from the recording (skip when it is absent).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from mmface4d_datasets.camera import (
    Camera,
    CameraError,
    cameras_from_take_json,
    k4a_cameras,
    read_take_cameras,
    take_json_fields,
    write_take_json,
)
from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.paths import REPO_ROOT

ORACLE = Path(__file__).parent / "data" / "k4a_oracle.json"
#: Our projection against the SDK's (pixels). The SDK computes in float32, we in float64.
PROJECTION_TOLERANCE_PX = 0.01
#: Our unprojection against the SDK's (millimetres, points 0.3-3 m away).
UNPROJECTION_TOLERANCE_MM = 0.01


def _recording() -> Path:
    path = Path(os.environ.get("MMFACE4D_K4A_RECORDING", REPO_ROOT.parent / "shared" / "fixtures" / "k4a_recording" / "recording.mkv"))
    if not path.is_file():
        pytest.skip(f"the real Azure Kinect recording is absent ({path}); set MMFACE4D_K4A_RECORDING")
    return path


@pytest.fixture(scope="module")
def calibration_text() -> str:
    import av

    with av.open(str(_recording())) as container:
        for stream in container.streams:
            if stream.type == "attachment" and stream.name == "calibration.json":
                return bytes(stream.data).decode("utf-8")
    pytest.fail("the recording has no calibration.json attachment")


@pytest.fixture(scope="module")
def oracle(calibration_text) -> dict:
    data = json.loads(ORACLE.read_text())
    assert data["calibration_sha256"] == hashlib.sha256(calibration_text.encode("utf-8")).hexdigest(), (
        "the oracle was recorded on another calibration"
    )
    return data


def _modes(oracle):
    return [(m["color_resolution"], m["depth_mode"], m) for m in oracle["modes"]]


def test_mode_scaling_matches_sdk_camera_matrices(calibration_text, oracle):
    for color_res, depth_mode, record in _modes(oracle):
        cams = k4a_cameras(calibration_text, color_res, depth_mode)
        np.testing.assert_allclose(cams.color.intrinsics, record["color_matrix"], atol=1e-3)
        np.testing.assert_allclose(cams.depth.intrinsics, record["depth_matrix"], atol=1e-3)
        np.testing.assert_allclose(cams.color.distortion, record["color_distortion"], atol=1e-7)
        np.testing.assert_allclose(cams.depth.distortion, record["depth_distortion"], atol=1e-7)


def _check_projection(camera, rows, frame_points, what):
    points = np.array([p for p, _ in rows]) / 1000.0
    expected = [uv for _, uv in rows]
    uv, z = camera.project(frame_points(points))
    valid = np.array([e is not None for e in expected])
    assert valid.sum() >= len(rows) // 2, what
    errors = np.abs(uv[valid] - np.array([e for e in expected if e is not None])).max()
    assert errors < PROJECTION_TOLERANCE_PX, f"{what}: max error {errors} px"
    # where the SDK calls a point invalid (beyond the lens model's metric radius), so do we
    np.testing.assert_array_equal(~np.isnan(uv).any(1), valid, err_msg=what)
    return errors


def test_projection_matches_sdk_convert_3d_to_2d(calibration_text, oracle):
    worst = 0.0
    for color_res, depth_mode, record in _modes(oracle):
        cams = k4a_cameras(calibration_text, color_res, depth_mode)
        ident = lambda p: p  # noqa: E731
        worst = max(worst, _check_projection(cams.color, record["color_to_color_2d"], ident, f"colour {color_res}"))
        worst = max(worst, _check_projection(cams.depth, record["depth_to_depth_2d"], ident, f"depth {depth_mode}"))
        # depth-camera points into the colour image: through the depth camera's extrinsics
        to_color = cams.depth.to_reference
        worst = max(worst, _check_projection(cams.color, record["depth_to_color_2d"], to_color, "depth->colour"))
    assert worst < PROJECTION_TOLERANCE_PX


def test_unprojection_matches_sdk_convert_2d_to_3d(calibration_text, oracle):
    for color_res, depth_mode, record in _modes(oracle):
        cams = k4a_cameras(calibration_text, color_res, depth_mode)
        for camera, key, frame in (
            (cams.color, "color_2d_to_3d", "camera"),
            (cams.depth, "depth_2d_to_3d", "camera"),
            (cams.depth, "depth_2d_to_color_3d", "reference"),
        ):
            valid = np.array([r[2] is not None for r in record[key]])
            assert valid.sum() >= len(valid) // 2
            pixels = np.array([r[0] for r in record[key]])
            depth = np.array([r[1] for r in record[key]]) / 1000.0
            points = camera.unproject(pixels, depth, frame=frame) * 1000.0
            np.testing.assert_array_equal(~np.isnan(points).any(1), valid, err_msg=key)
            error = np.abs(points[valid] - np.array([r[2] for r in record[key] if r[2] is not None])).max()
            assert error < UNPROJECTION_TOLERANCE_MM, f"{key} {color_res}/{depth_mode}: {error} mm"


def test_project_unproject_round_trip_with_extrinsics():
    rng = np.random.default_rng(0)
    angle = 0.7
    E = np.eye(4)
    E[:3, :3] = [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
    E[:3, 3] = [0.5, 0.01, 0.2]
    K = np.array([[900.0, 0, 960], [0, 901, 540], [0, 0, 1]])
    cam = Camera(K, 1920, 1080, np.array([0.33, -2.49, -1.6e-4, -1.3e-4, 1.45, 0.21, -2.30, 1.38]), E)
    local = np.stack([rng.uniform(-0.3, 0.3, 200), rng.uniform(-0.2, 0.2, 200), rng.uniform(0.5, 1.5, 200)], 1)
    world = cam.to_reference(local)
    uv, z = cam.project(world, frame="reference")
    np.testing.assert_allclose(z, local[:, 2])
    back = cam.unproject(uv, z, frame="reference")
    np.testing.assert_allclose(back, world, atol=1e-9)
    # behind the camera: no pixel
    uv, _ = cam.project(np.array([[0.0, 0.0, -1.0]]))
    assert np.isnan(uv).all()


def test_pixel_centre_convention_and_resize():
    K = np.array([[100.0, 0, 49.5], [0, 100, 49.5], [0, 0, 1]])
    cam = Camera(K, 100, 100)
    uv, _ = cam.project(np.array([[0.0, 0.0, 1.0], [0.01, 0.0, 1.0]]))
    np.testing.assert_allclose(uv, [[49.5, 49.5], [50.5, 49.5]])
    half = cam.resized(50, 50)
    np.testing.assert_allclose(half.intrinsics[:2, 2], [24.5, 24.5])  # the image centre stays the centre


def test_bad_parameters_are_named():
    K = np.eye(3)
    with pytest.raises(CameraError, match="distortion"):
        Camera(K, 10, 10, np.ones(5))
    with pytest.raises(CameraError, match="rotation"):
        Camera(K, 10, 10, None, np.diag([2.0, 1, 1, 1]))
    with pytest.raises(CameraError, match="extrinsics"):
        Camera(K, 10, 10, None, None).to_reference(np.zeros((1, 3)))
    with pytest.raises(CameraError, match="depth mode"):
        k4a_cameras('{"CalibrationInformation": {"Cameras": []}}', "1080P", "NFOV_FAST")
    with pytest.raises(FormatError, match="no depth"):
        k4a_cameras('{"CalibrationInformation": {"Cameras": []}}', "1080P", "NFOV_UNBINNED")


def test_authors_take_json_camera_1_is_reference(official_sample):
    color, depth = read_take_cameras(official_sample / "000337_1.json")
    assert depth is None and color.distortion is None
    np.testing.assert_array_equal(color.extrinsics, np.eye(4))
    assert (color.width, color.height) == (1920, 1080)
    assert color.intrinsics[0, 0] == pytest.approx(911.56536865234375)
    side, _ = read_take_cameras(official_sample / "000337_0.json")
    assert side.extrinsics is None  # the authors' side cameras carry no extrinsics


def test_take_json_round_trip(tmp_path, calibration_text):
    cams = k4a_cameras(calibration_text, "1080P", "NFOV_UNBINNED")
    E = np.eye(4)
    E[:3, 3] = [0.49, 0.0, 0.2]
    color = cams.color.with_extrinsics(E)
    path = tmp_path / "000001_0.json"
    write_take_json(path, color, cams.depth, color_mode="MJPG_1080P", depth_mode="NFOV_UNBINNED", serial_number="x", stream_length_usec=1)
    data = json.loads(path.read_text())
    assert data["color_mode"] == "MJPG_1080P" and len(data["distortion"]) == 8
    # the authors' reader still accepts the file
    from mmface4d_datasets.official import read_intrinsics

    np.testing.assert_allclose(read_intrinsics(path), color.intrinsics)
    back_color, back_depth = read_take_cameras(path)
    for a, b in ((color, back_color), (cams.depth, back_depth)):
        np.testing.assert_array_equal(a.intrinsics, b.intrinsics)
        np.testing.assert_array_equal(a.distortion, b.distortion)
        np.testing.assert_array_equal(a.extrinsics, b.extrinsics)
        assert (a.width, a.height, a.metric_radius) == (b.width, b.height, b.metric_radius)
    assert take_json_fields(color)["extrinsics"][0][3] == 0.49
    with pytest.raises(FormatError, match="distortion"):
        cameras_from_take_json({**data, "distortion": [1, 2]}, 0, source="x.json")
