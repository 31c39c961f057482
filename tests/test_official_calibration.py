"""Calibration JSON (column-major intrinsics) and landmark files, well-formed and malformed."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.official import read_calibration, read_intrinsics, read_landmarks
from mmface4d_datasets.safe_pickle import UnsafePickleError


@pytest.fixture()
def calibration(official_sample) -> dict:
    return json.loads((official_sample / "000337_1.json").read_text())


def _write_json(tmp_path, name, data) -> os.PathLike:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_fixture_intrinsics_are_read_column_major(official_sample):
    matrix = read_intrinsics(official_sample / "000337_1.json")
    assert matrix.shape == (3, 3) and matrix.dtype == np.float64
    assert matrix[0, 0] == pytest.approx(911.56536865234375)
    assert matrix[1, 1] == pytest.approx(911.16424560546875)
    assert matrix[0, 2] == pytest.approx(963.89404296875)  # cx
    assert matrix[1, 2] == pytest.approx(544.8760986328125)  # cy
    assert np.array_equal(matrix[2], [0, 0, 1]) and matrix[1, 0] == 0
    data = read_calibration(official_sample / "000337_1.json")
    assert data["width"] == 1920 and data["height"] == 1080 and data["serial_number"] == "000308314112"


def test_missing_key_is_named(tmp_path, calibration):
    del calibration["width"]
    del calibration["serial_number"]
    path = _write_json(tmp_path, "000337_1.json", calibration)
    with pytest.raises(FormatError, match=r"000337_1\.json: calibration lacks the key\(s\) width, serial_number"):
        read_calibration(path)


def test_unreadable_json_is_named(tmp_path, official_sample):
    text = (official_sample / "000337_1.json").read_text()
    path = _write_json(tmp_path, "cut.json", text[: len(text) // 2])
    with pytest.raises(FormatError, match=r"cut\.json: calibration is not valid JSON"):
        read_intrinsics(path)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(FormatError, match=r"cut\.json: calibration is not UTF-8"):
        read_calibration(path)
    with pytest.raises(FormatError, match=r"gone\.json: calibration file is missing"):
        read_calibration(tmp_path / "gone.json")
    with pytest.raises(FormatError, match=r"list\.json: calibration must be a JSON object"):
        read_calibration(_write_json(tmp_path, "list.json", [1, 2, 3]))


def test_row_major_matrix_is_refused(tmp_path, calibration):
    column_major = np.asarray(calibration["intrinsic_matrix"]).reshape(3, 3, order="F")
    calibration["intrinsic_matrix"] = column_major.reshape(-1).tolist()  # row-major order
    path = _write_json(tmp_path, "rows.json", calibration)
    with pytest.raises(FormatError, match=r"rows\.json: intrinsic_matrix is not column-major"):
        read_intrinsics(path)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("width", "1920", r"'width' must be an integer"),
        ("height", 0, r"'height' must be positive"),
        ("stream_length_usec", True, r"'stream_length_usec' must be an integer"),
        ("intrinsic_matrix", [1.0] * 8, r"intrinsic_matrix must be a list of 9 numbers"),
        ("intrinsic_matrix", [-900.0, 0, 0, 0, 900.0, 0, 960.0, 540.0, 1.0], r"non-positive focal"),
        ("serial_number", 308314112, r"'serial_number' must be a string"),
    ],
)
def test_wrong_types_and_values_are_refused(tmp_path, calibration, key, value, message):
    calibration[key] = value
    path = _write_json(tmp_path, "bad.json", calibration)
    with pytest.raises(FormatError, match=r"bad\.json: .*" + message):
        read_calibration(path)


def test_non_finite_intrinsics_are_refused(tmp_path, calibration):
    calibration["intrinsic_matrix"][6] = float("nan")
    path = _write_json(tmp_path, "nan.json", calibration)  # json.dumps writes NaN, json.loads reads it
    with pytest.raises(FormatError, match=r"nan\.json: intrinsic_matrix holds NaN"):
        read_intrinsics(path)


def test_fixture_landmarks(official_sample):
    landmarks = read_landmarks(official_sample / "000337_1.pkl")
    assert landmarks.shape == (67, 98, 2) and landmarks.dtype == np.float64
    # pixel coordinates inside the 1920 x 1080 colour image
    assert landmarks[..., 0].min() > 0 and landmarks[..., 0].max() < 1920
    assert landmarks[..., 1].min() > 0 and landmarks[..., 1].max() < 1080


def test_npy_landmarks_match_the_pickle(tmp_path, official_sample):
    landmarks = read_landmarks(official_sample / "000337_1.pkl")
    np.save(tmp_path / "000337_1.landmarks.npy", landmarks)
    assert np.array_equal(read_landmarks(tmp_path / "000337_1.landmarks.npy"), landmarks)


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_landmark_pickle_is_refused_unexecuted(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "000001_0.pkl"
    path.write_bytes(pickle.dumps(_Hostile(marker)))
    with pytest.raises(UnsafePickleError, match=r"000001_0\.pkl: refused to unpickle.*system"):
        read_landmarks(path)
    assert not marker.exists()


def test_malformed_landmarks_are_named(tmp_path, official_sample):
    landmarks = read_landmarks(official_sample / "000337_0.pkl")
    (tmp_path / "flat.pkl").write_bytes(pickle.dumps(landmarks.reshape(67, -1)))
    with pytest.raises(FormatError, match=r"flat\.pkl: landmarks must be \(T, K, 2\), found shape \(67, 196\)"):
        read_landmarks(tmp_path / "flat.pkl")
    broken = landmarks.copy()
    broken[5, 3, 1] = np.inf
    (tmp_path / "inf.pkl").write_bytes(pickle.dumps(broken))
    with pytest.raises(FormatError, match=r"inf\.pkl: landmarks of frame 5 hold NaN or Inf"):
        read_landmarks(tmp_path / "inf.pkl")
    np.save(tmp_path / "obj.landmarks.npy", np.array([[["a", 1]]], dtype=object))
    with pytest.raises(FormatError, match=r"obj\.landmarks\.npy: not a plain numeric"):
        read_landmarks(tmp_path / "obj.landmarks.npy")
    with pytest.raises(FormatError, match=r"none\.landmarks\.npy: landmark file is missing"):
        read_landmarks(tmp_path / "none.landmarks.npy")
