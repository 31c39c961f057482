"""Takes on disk -> sources for the writer: discovery, topology, checks reported by take id."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile

from builders.sources import SourceError, TakeError, scan_source
from test_builders_support import SMALL_N, fixture_copies, small_take


def test_flat_source_loads_bit_exact(tmp_path):
    vertices, samples = small_take(tmp_path, "000002", subject="S2", sentence="230001")
    small_take(tmp_path, "000001", seed=1)
    plan = scan_source(tmp_path)
    assert [s.key for s in plan.sources] == ["000001", "000002"]
    assert plan.problems == {}
    assert plan.topology.name == f"synthetic_v1@{SMALL_N}" and plan.topology.num_vertices == SMALL_N
    sequence = plan.sources[1].load()
    sequence.check(SMALL_N)
    assert (sequence.subject_id, sequence.sentence_id, sequence.text, sequence.age) == ("S2", "230001", "你好", 30)
    assert sequence.audio_subtype == "FLOAT" and sequence.audio.dtype == np.float32
    assert np.array_equal(sequence.audio, samples)
    assert sequence.vertices.shape == vertices.shape
    # the authors' 16-bit quantisation over the frame range padded by 0.05 m: within (range + 0.1) / 2^16
    span = float(vertices.max() - vertices.min()) + 0.1
    assert np.abs(sequence.vertices - vertices).max() <= span / 65536 + 1e-6


def test_integer_pcm_is_kept_as_integers(tmp_path):
    _, samples = small_take(tmp_path, "000001", subtype="PCM_16")
    sequence = scan_source(tmp_path).sources[0].load()
    assert sequence.audio_subtype == "PCM_16" and sequence.audio.dtype == np.int16
    assert np.array_equal(sequence.audio, samples)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(sample_rate=22050), r"take 000001\b.*22050 Hz.*expected 16000 Hz"),
        (dict(audio_seconds=2.0), r"take 000001 .*15 mesh frames last 0.500 s .*audio lasts 2.000 s.*at most 0.1 s"),
        (dict(subtype="DOUBLE"), r"take 000001 .*subtype DOUBLE cannot be stored bit-exact"),
    ],
)
def test_bad_audio_is_reported_by_take_on_load(tmp_path, change, message):
    small_take(tmp_path, "000001", **change)
    small_take(tmp_path, "000002", seed=3)
    plan = scan_source(tmp_path)
    with pytest.raises(TakeError, match=message):
        plan.sources[0].load()
    plan.sources[1].load()  # the good take still loads


def test_scan_keeps_problems_for_the_writer(tmp_path):
    small_take(tmp_path, "000001")
    small_take(tmp_path, "000002", write_meta=False)
    small_take(tmp_path, "000003", sentence="990001")
    small_take(tmp_path, "000004")
    (tmp_path / "000004_filt_2.nut").unlink()
    plan = scan_source(tmp_path)
    assert sorted(plan.problems) == ["000002", "000003", "000004"]
    assert "no metadata" in plan.problems["000002"]
    assert "unknown emotion prefix" in plan.problems["000003"]
    assert "missing 000004_filt_2.nut" in plan.problems["000004"] and plan.problems["000004"].count("take 000004") == 1
    for key in ("000002", "000003", "000004"):
        source = next(s for s in plan.sources if s.key == key)
        with pytest.raises(TakeError, match=f"take {key}"):
            source.load()


def test_nan_vertices_are_refused(tmp_path):
    small_take(tmp_path, "000001")
    source = scan_source(tmp_path).sources[0]

    class NanTake:
        def __init__(self, take):
            self.__dict__.update(vars(take))

        def vertices(self, num_vertices):
            v = np.zeros((15, num_vertices, 3), np.float32)
            v[4, 7, 1] = np.nan
            return v

    with pytest.raises(TakeError, match=r"take 000001 .*NaN or infinite coordinates in 1 frame\(s\), first at frame 4"):
        replace(source, take=NanTake(source.take)).load()


def test_mixed_topologies_are_refused_naming_the_takes(tmp_path):
    small_take(tmp_path, "000001")
    small_take(tmp_path, "000002", num_vertices=SMALL_N + 40)
    with pytest.raises(SourceError, match=rf"mix topologies.*synthetic_v1@{SMALL_N}: 000001.*synthetic_v1@{SMALL_N + 40}: 000002"):
        scan_source(tmp_path)


def test_declared_topology_must_fit_the_frames(tmp_path):
    small_take(tmp_path, "000001", meta_extra={"topology": "synthetic_v1@5000"})
    small_take(tmp_path, "000002")
    plan = scan_source(tmp_path)
    assert "synthetic_v1@5000" in plan.problems["000001"] and "frames are" in plan.problems["000001"]


def test_empty_or_unusable_sources_are_refused(tmp_path):
    with pytest.raises(SourceError, match="no take found"):
        scan_source(tmp_path)
    small_take(tmp_path, "000001", write_meta=False)
    with pytest.raises(SourceError, match=r"(?s)none of the 1 take\(s\) can be built.*take 000001"):
        scan_source(tmp_path)


def test_manifest_rows_without_a_take_are_listed(tmp_path):
    small_take(tmp_path / "src", "000001")
    csv = tmp_path / "m.csv"
    csv.write_text("take_id,subject_id,sentence_id,text,gender,age\n000001,S5,000001,,,\n000777,S6,000001,,,\n")
    plan = scan_source(tmp_path / "src", manifest=csv)
    assert plan.manifest_unmatched == ["000777"]
    assert plan.sources[0].load().subject_id == "S5"  # the CSV wins over meta.json


def test_extrinsics_from_meta_json_go_to_raw(tmp_path):
    pose = np.eye(4)
    pose[:3, 3] = [0.1, 0.2, 0.3]
    small_take(tmp_path, "000001", meta_extra={"extrinsics": {"0": pose.tolist()}})
    raw = scan_source(tmp_path).sources[0].load().raw
    assert list(raw.extrinsics) == [0] and np.array_equal(raw.extrinsics[0], pose)
    small_take(tmp_path / "bad", "000001", meta_extra={"extrinsics": {"0": [[1, 2], [3, 4]]}})
    with pytest.raises(TakeError, match="extrinsics: camera 0 is not a finite 4x4"):
        scan_source(tmp_path / "bad").sources[0].load()


def test_the_authors_sample_take_is_bfm_front(official_sample, tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text("take_id,subject_id,sentence_id,text,gender,age\n000337,S001,000001,,,\n")
    plan = scan_source(official_sample, manifest=csv)
    assert plan.topology.name == "bfm_front" and plan.topology.num_vertices == 35_709
    assert plan.topology.triangles.shape == (70_789, 3) and plan.topology.keypoints.shape == (68,)
    (source,) = plan.sources
    sequence = source.load()
    assert sequence.vertices.shape == (67, 35_709, 3) and sequence.topology == "bfm_front"
    reference, rate = soundfile.read(str(official_sample / "000337.wav"), dtype="float32")
    assert sequence.sample_rate == rate == 16000 and sequence.audio_subtype == "FLOAT"
    assert np.array_equal(sequence.audio, reference)
    assert sorted(sequence.raw.intrinsics) == [0, 1, 2]
    calibration = json.loads((official_sample / "000337_1.json").read_text())
    fx, cx, cy = calibration["intrinsic_matrix"][0], calibration["intrinsic_matrix"][6], calibration["intrinsic_matrix"][7]
    assert sequence.raw.intrinsics[1][0, 0] == pytest.approx(fx) and sequence.raw.intrinsics[1][:2, 2] == pytest.approx([cx, cy])
    assert sequence.raw.landmarks[1].shape == (67, 98, 2)


def test_bfm_front_without_facemodel_info_says_how_to_give_it(official_sample, tmp_path):
    source, manifest = fixture_copies(official_sample, tmp_path, {"000401": "S1"}, with_bfm=False)
    with pytest.raises(SourceError, match=r"facemodel_info.mat.*--bfm-info"):
        scan_source(source, manifest=manifest)
    plan = scan_source(source, manifest=manifest, bfm_info=official_sample / "BFM" / "facemodel_info.mat")
    assert plan.topology.name == "bfm_front"


def test_a_take_id_seen_twice_is_refused(official_sample, tmp_path):
    source, manifest = fixture_copies(official_sample, tmp_path, {"000401": "S1"})
    twin = source / "again"
    twin.mkdir()
    for path in (source / "000401").iterdir():
        (twin / path.name).symlink_to(path.resolve())
    with pytest.raises(SourceError, match="take 000401 appears twice"):
        scan_source(source, manifest=manifest)


def test_extrinsics_conventions():
    from builders.sources import extrinsics_from_meta

    pose = np.eye(4)
    pose[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    pose[:3, 3] = [0.2, 0.0, 0.1]
    inverse = np.linalg.inv(pose)
    nested = {"reference_camera": 1, "convention": "4x4 camera-c-from-camera-1 transforms", "cameras": {"2": pose.tolist()}}
    assert np.allclose(extrinsics_from_meta({"extrinsics": nested})[2], inverse)
    kept = nested | {"convention": "camera-1-from-camera-c"}
    assert np.array_equal(extrinsics_from_meta({"extrinsics": kept})[2], pose)
    assert extrinsics_from_meta({}) == {} and extrinsics_from_meta(None) == {}
    with pytest.raises(ValueError, match="names neither"):
        extrinsics_from_meta({"extrinsics": nested | {"convention": "world"}})
    with pytest.raises(ValueError, match="reference_camera is 0"):
        extrinsics_from_meta({"extrinsics": nested | {"reference_camera": 0}})
