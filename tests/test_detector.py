"""The landmark detectors (reconstruction.detector): MediaPipe's face mesh on a real photograph and
the real Azure Kinect recording, its 468 -> 68 mapping, crops from depth. See docs/detector.md."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mmface4d_datasets.facemodel.landmarks import MEDIAPIPE468_TO_IBUG68, mediapipe468_to_ibug68

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Points placed by eye on skimage's ``astronaut`` (512 x 512, Eileen Collins), pixels (x, y).
ASTRONAUT_POINTS = {
    36: (192, 100),  # right eye, outer corner (image left)
    39: (210, 101),  # right eye, inner corner
    42: (238, 103),  # left eye, inner corner
    45: (256, 102),  # left eye, outer corner
    30: (226, 127),  # nose tip
    48: (205, 142),  # mouth corner, image left
    54: (245, 141),  # mouth corner, image right
}
#: Hand placement is good to a few pixels; the inter-ocular distance is about 64 px.
ASTRONAUT_TOLERANCE_PX = 7.0
#: The face in the photograph (x0, y0, x1, y1): every one of the 68 points lies inside.
ASTRONAUT_FACE_BOX = (172, 70, 280, 195)


def _detector():
    from reconstruction.detector import DetectorUnavailable, MediaPipeDetector

    try:
        return MediaPipeDetector()
    except DetectorUnavailable as exc:
        pytest.skip(f"MediaPipe is not installed here (setup.sh installs it): {exc}")


def test_the_68_point_mapping_is_a_subset_of_the_mesh_and_averages_pairs():
    assert len(MEDIAPIPE468_TO_IBUG68) == 68
    flat = [i for e in MEDIAPIPE468_TO_IBUG68 for i in (e if isinstance(e, tuple) else (e,))]
    assert all(0 <= i < 468 for i in flat)
    mesh = np.random.default_rng(0).normal(size=(5, 468, 2))
    out = mediapipe468_to_ibug68(mesh)
    assert out.shape == (5, 68, 2)
    np.testing.assert_allclose(out[:, 36], mesh[:, 33])  # right eye outer corner
    np.testing.assert_allclose(out[:, 27], (mesh[:, 168] + mesh[:, 6]) / 2)  # nose bridge top
    with pytest.raises(ValueError, match="468"):
        mediapipe468_to_ibug68(np.zeros((68, 2)))


def test_mediapipe_finds_the_astronaut_and_tracks_her():
    skimage_data = pytest.importorskip("skimage.data")
    photo = skimage_data.astronaut()
    with _detector() as detector:
        result = detector.detect_take([photo] * 3)
    assert result.found.all() and result.crop[0] == "search" and result.crop[1:] == ["tracked", "tracked"]
    lm = result.landmarks[0]
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    x0, y0, x1, y1 = ASTRONAUT_FACE_BOX
    assert ((lm[:, 0] > x0) & (lm[:, 0] < x1) & (lm[:, 1] > y0) & (lm[:, 1] < y1)).all()
    for i, ref in ASTRONAUT_POINTS.items():
        assert np.linalg.norm(lm[i] - ref) < ASTRONAUT_TOLERANCE_PX, (i, lm[i], ref)
    assert result.mesh.shape == (3, 468, 3)
    # the tracked frames (a crop) agree with the whole-frame search within a few pixels, and with each other within two
    assert np.abs(result.landmarks[1] - lm).max() < 3.0
    assert np.abs(result.landmarks[2] - result.landmarks[1]).max() < 2.0


def test_mediapipe_reports_no_face_in_the_real_azure_kinect_recording():
    """The recording shows a room with a mug (a drawn figure on it, no face): every frame is NaN and not found."""
    av = pytest.importorskip("av")
    path = Path(os.environ.get("MMFACE4D_K4A_RECORDING", REPO_ROOT.parent / "shared" / "fixtures" / "k4a_recording" / "recording.mkv"))
    if not path.is_file():
        pytest.skip(f"the real Azure Kinect recording is absent ({path}); set MMFACE4D_K4A_RECORDING")
    with av.open(str(path)) as container:
        stream = next(s for s in container.streams.video if s.codec_context.name == "mjpeg")
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert frames and frames[0].shape == (720, 1280, 3)
    with _detector() as detector:
        result = detector.detect_take(frames)
    assert not result.found.any() and np.isnan(result.landmarks).all() and result.crop == ["none"] * len(frames)
    assert result.summary()["found"] == 0


def test_a_crop_from_depth_frames_the_head_of_the_nearest_blob():
    from reconstruction.detector import face_box_from_depth

    depth = np.full((576, 640), 2500, np.uint16)  # a wall
    yy, xx = np.mgrid[:576, :640]
    depth[(yy > 300) & (np.abs(xx - 330) < 150)] = 900  # shoulders
    head = ((xx - 330) / 60.0) ** 2 + ((yy - 230) / 80.0) ** 2 < 1  # a head 160 px tall, top at row 150
    depth[head] = 750
    depth[:40] = 0  # no measurement
    cx, cy, side = face_box_from_depth(depth, fx=500.0)
    assert abs(cx - 330) < 5 and 150 < cy < 260 and 150 < side < 300
    assert face_box_from_depth(np.zeros((10, 10), np.uint16), fx=500.0) is None


def test_an_unknown_detector_is_named():
    from reconstruction.detector import make_detector

    with pytest.raises(ValueError, match="unknown landmark detector 'dlib'"):
        make_detector("dlib")
