"""The authors' sample take builds into a release and loads back (one subject: train only)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmface4d_datasets.release.canonical import to_source_frame
from mmface4d_datasets.release.reader import Release
from mmface4d_datasets.release.schema import CallableSource, RawCapture, SourceSequence, TopologyInfo
from mmface4d_datasets.release.validate import validate_release
from mmface4d_datasets.release.writer import write_release

BFM_VERTICES = 35709
MAX_ERROR = 1e-5


def bfm_topology_info(fixture) -> TopologyInfo:
    """BFM front topology from the fixture's facemodel_info.mat (tri and keypoints are 1-based there)."""
    import scipy.io

    from mmface4d_datasets.facemodel import REGION_RULE_VERSION, region_masks

    info = scipy.io.loadmat(fixture / "BFM" / "facemodel_info.mat")
    triangles = info["tri"].astype(np.int64) - 1
    keypoints = info["keypoints"].reshape(-1).astype(np.int64) - 1
    masks = region_masks(triangles, keypoints, BFM_VERTICES)
    return TopologyInfo(
        "bfm_front", BFM_VERTICES, triangles, keypoints, {k: np.asarray(v, np.int64) for k, v in masks.items()}, REGION_RULE_VERSION
    )


def load_fixture_take(fixture) -> SourceSequence:
    from mmface4d_datasets import official

    take = official.read_take(fixture)
    samples, rate = official.read_audio(take.audio)
    raw = RawCapture(
        intrinsics={c: official.read_intrinsics(p) for c, p in take.calibrations.items()},
        landmarks={c: official.read_landmarks(p) for c, p in take.landmarks.items()},
    )
    return SourceSequence(
        take_id=take.take_id,
        subject_id="sample",
        sentence_id="00001",
        vertices=take.vertices(BFM_VERTICES),
        audio=samples,
        sample_rate=rate,
        audio_subtype="FLOAT",
        topology="bfm_front",
        raw=raw,
    )


@pytest.fixture(scope="module")
def fixture_release(official_sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("fixture") / "release"
    topology = bfm_topology_info(official_sample)
    report = write_release(
        [CallableSource("000337", lambda: load_fixture_take(official_sample))], out, topology=topology, max_error=MAX_ERROR, progress=False
    )
    return out, report, load_fixture_take(official_sample)


def test_fixture_take_lands_in_train_without_test_split(fixture_release):
    out, report, _ = fixture_release
    release = Release(out)
    assert report.split_counts == {"train": 1}
    assert release.split_names == ["train"] and release.splits["test"] == [] and release.splits["style_reference"] == {}
    assert not (out / "data" / "test").exists()
    assert "split: test" not in (out / "README.md").read_text()
    assert validate_release(out) == []


def test_fixture_take_loads_back_within_codec_bound(fixture_release, official_sample):
    import soundfile

    out, _, source = fixture_release
    record = next(Release(out).iter_records("train"))
    assert record["id"] == "sample/000337" and record["vertices"].shape == (67, BFM_VERTICES, 3)
    recovered = to_source_frame(record["vertices"], record["head_pose"])
    assert np.linalg.norm(recovered - source.vertices, axis=-1).max() <= math.sqrt(3) * MAX_ERROR + 1e-7
    original, rate = soundfile.read(official_sample / "000337.wav", dtype="float32")
    assert np.array_equal(record["audio"]["array"], original) and record["audio"]["sampling_rate"] == rate == 16000


def test_fixture_canonical_frame_is_upright_and_facing_plus_z(fixture_release):
    out, _, _ = fixture_release
    release = Release(out)
    template = release.templates()["sample"]
    keypoints = release.topology["keypoints"]
    eye_line = template[keypoints[45]] - template[keypoints[36]]
    assert eye_line[0] > 0.07 and abs(eye_line[1]) < 1e-6 and abs(eye_line[2]) < 1e-6  # +x by construction
    assert template[keypoints[27], 1] > template[keypoints[8], 1] + 0.05  # +y up
    assert template[keypoints[30], 2] > template[keypoints[0], 2] + 0.02  # nose tip in front: +z out
    # the stable (nose, forehead) vertices of every frame stay on the template: under a millimetre RMS
    # (brows raise the forehead of a real face by a few millimetres at most)
    record = next(release.iter_records("train"))
    masks = release.region_masks()
    stable = np.union1d(masks["nose"], masks["forehead"])
    offsets = np.linalg.norm(record["vertices"][:, stable] - template[stable], axis=-1)
    assert np.sqrt(np.mean(offsets**2)) < 1e-3 and offsets.max() < 5e-3


def test_fixture_raw_config_keeps_landmarks_bit_exact(fixture_release):
    import pyarrow.parquet as pq

    out, _, source = fixture_release
    row = pq.read_table(out / "raw" / "train" / "shard-00000.parquet").to_pylist()[0]
    assert row["cameras"] == [0, 1, 2] and row["landmarks_shape"][1] == [67, 98, 2]
    blob = np.frombuffer(row["landmarks"], dtype="<f8")
    size = 67 * 98 * 2
    assert np.array_equal(blob[size : 2 * size].reshape(67, 98, 2), source.raw.landmarks[1])
    assert np.allclose(np.reshape(row["intrinsics"][1], (3, 3)), source.raw.intrinsics[1])
