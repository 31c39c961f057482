"""The core's take files: registered depth (.nut), colour (.mp4) and landmarks (.landmarks.npy)."""

from __future__ import annotations

import numpy as np
import pytest

from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.take_files import (
    ColourVideoWriter,
    DepthVideoWriter,
    depth_path,
    read_colour_video,
    read_depth_video,
    read_landmarks,
    write_colour_video,
    write_depth_video,
    write_landmarks,
)


def test_depth_round_trip_is_lossless(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 65535, (3, 36, 50), dtype=np.uint16)
    frames[:, :5] = 0
    path = write_depth_video(depth_path(tmp_path, "000001", 1), frames)
    assert path.name == "000001_1.nut"
    assert np.array_equal(read_depth_video(path), frames)
    with pytest.raises(FormatError, match="FFV1 gray16le"):
        read_depth_video(write_colour_video(tmp_path / "c.mp4", np.zeros((1, 36, 50, 3), np.uint8)))


def test_colour_round_trip_is_close_and_checks_sizes(tmp_path):
    frames = np.zeros((4, 48, 64, 3), np.uint8)
    frames[:, :, :32] = (200, 60, 30)
    back = read_colour_video(write_colour_video(tmp_path / "c.mp4", frames))
    assert back.shape == frames.shape and np.abs(back.astype(int) - frames).mean() < 4
    with pytest.raises(ValueError, match="even frame size"):
        ColourVideoWriter(tmp_path / "odd.mp4", 63, 48)


def test_a_writer_left_by_an_error_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with DepthVideoWriter(tmp_path / "d.nut", 8, 8) as writer:
            writer.write(np.ones((8, 8), np.uint16))
            raise RuntimeError("conversion failed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="uint16"):
        with DepthVideoWriter(tmp_path / "d.nut", 8, 8) as writer:
            writer.write(np.ones((8, 8), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_landmarks_round_trip_and_refusals(tmp_path):
    points = np.random.default_rng(1).random((5, 98, 2)).astype(np.float32) * 100
    points[2, 10] = np.nan
    path = write_landmarks(tmp_path / "000001_0.landmarks.npy", points)
    assert np.array_equal(read_landmarks(path), points, equal_nan=True)
    with pytest.raises(FormatError, match=r"\(T, 68 or 98, 2\)"):
        write_landmarks(tmp_path / "bad.npy", np.zeros((5, 5, 2)))
    np.save(tmp_path / "f64.npy", np.zeros((1, 68, 2)))
    with pytest.raises(FormatError, match="float32"):
        read_landmarks(tmp_path / "f64.npy")
