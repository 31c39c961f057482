"""Release writer and reader on small synthetic sequences: round trip, bounds, determinism, resume."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmface4d_datasets.errors import MMFace4DError
from mmface4d_datasets.release.canonical import to_source_frame
from mmface4d_datasets.release.reader import Release, ReleaseVersionError
from mmface4d_datasets.release.schema import CallableSource, InMemorySource
from mmface4d_datasets.release.writer import BuildError, write_release
from test_release_support import make_sequence, make_topology, small_sources

MAX_ERROR = 1e-5


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    sources = small_sources(5, 3, raw=True)
    out = tmp_path_factory.mktemp("release") / "rel"
    report = write_release(sources, out, topology=make_topology(), seed=0, max_error=MAX_ERROR, progress=False)
    return sources, out, report


def test_round_trip_keeps_source_within_codec_bound(built):
    sources, out, report = built
    release = Release(out)
    by_take = {s.key: s.load() for s in sources}
    seen = 0
    for split in release.split_names:
        for record in release.iter_records(split):
            source = by_take[record["take_id"]]
            assert record["id"] == f"{source.subject_id}/{source.take_id}"
            assert record["vertices"].dtype == np.float32 and record["vertices"].shape == source.vertices.shape
            recovered = to_source_frame(record["vertices"], record["head_pose"])
            per_vertex = np.linalg.norm(recovered - source.vertices.astype(np.float64), axis=-1)
            assert per_vertex.max() <= math.sqrt(3) * MAX_ERROR + 1e-7
            assert np.array_equal(record["audio"]["array"], source.audio)  # bit-exact float samples
            assert record["audio"]["sampling_rate"] == 16000
            assert record["emotion"] == (0 if source.sentence_id.startswith("00") else int(source.sentence_id[1]))
            seen += 1
    assert seen == len(sources) == len(report.sequences)


def test_canonical_frame_removes_head_motion(built):
    sources, out, _ = built
    release = Release(out)
    record = next(release.iter_records("train"))
    template = release.templates()[record["subject_id"]]
    masks = release.region_masks()
    stable = np.union1d(masks["nose"], masks["forehead"])
    # the stable vertices stay on the template in the canonical frame; the source frames moved by centimetres
    assert np.abs(record["vertices"][:, stable] - template[stable]).max() < 2e-3
    source = next(s.load() for s in sources if s.key == record["take_id"])
    assert np.abs(source.vertices[:, stable] - source.vertices[0, stable]).max() > 5e-3
    # orientation: +x from keypoint 36 to 45, +y chin -> brows, +z out of the face (nose in front)
    keypoints = release.topology["keypoints"]
    assert template[keypoints[45], 0] - template[keypoints[36], 0] > 0.05
    assert template[keypoints[19], 1] - template[keypoints[8], 1] > 0.05
    assert template[keypoints[30], 2] > template[keypoints[0], 2]
    poses = record["head_pose"]
    assert np.allclose(poses[:, :3, :3] @ poses[:, :3, :3].transpose(0, 2, 1), np.eye(3), atol=1e-5)
    assert np.allclose(poses[:, 3], [0, 0, 0, 1])


def test_info_sequences_and_record_lookup(built):
    sources, out, report = built
    release = Release(out)
    info = release.info
    assert info["format_version"] == "1.1" and info["num_vertices"] == 480
    assert info["counts"]["sequences"] == 15 and info["counts"]["subjects"] == 5
    assert sum(s["sequences"] for s in info["splits"].values()) == 15
    table = release.sequences()
    assert list(table["id"]) == sorted(table["id"])
    assert set(table["split"]) == set(report.split_counts)
    some_id = table["id"].iloc[7]
    record = release.record(some_id)
    assert record["id"] == some_id and record["vertices"].shape[1] == 480
    with pytest.raises(MMFace4DError, match="no sequence"):
        release.record("nobody/000000")
    for name in ("lips", "upper_face", "face", "eyes", "nose", "forehead"):
        assert release.region_masks()[name].dtype == np.int64


def test_splits_and_style_references_in_release(built):
    _, out, report = built
    release = Release(out)
    assert set(release.splits["train"]).isdisjoint(release.splits["test"])
    assert len(release.splits["test"]) == 1 and report.split_counts["test"] == 3
    for record_id in release.sequences("test")["id"]:
        reference = release.style_reference(record_id)
        assert reference != record_id and reference.split("/")[0] == record_id.split("/")[0]
    with pytest.raises(MMFace4DError, match="style reference"):
        release.style_reference(release.sequences("train")["id"].iloc[0])


def test_raw_config_keeps_capture_arrays(built):
    import pyarrow.parquet as pq

    sources, out, _ = built
    row = pq.read_table(sorted((out / "raw" / "train").glob("*.parquet"))[0]).to_pylist()[0]
    source = next(s.load() for s in sources if s.load().id == row["id"])
    assert row["cameras"] == [0, 1, 2]
    assert np.allclose(np.reshape(row["intrinsics"][1], (3, 3)), source.raw.intrinsics[1])
    landmarks = np.frombuffer(row["landmarks"], dtype="<f8")
    sizes = [int(np.prod(s)) for s in row["landmarks_shape"]]
    assert np.array_equal(landmarks[sizes[0] : sizes[0] + sizes[1]].reshape(row["landmarks_shape"][1]), source.raw.landmarks[1])


def test_same_inputs_give_byte_identical_files(built, tmp_path):
    sources, out, _ = built
    again = tmp_path / "again"
    write_release(small_sources(5, 3, raw=True), again, topology=make_topology(), seed=0, max_error=MAX_ERROR, progress=False)
    assert tree_bytes(again) == tree_bytes(out)
    assert not (again / ".staging").exists()


def test_integer_pcm_audio_is_bit_exact_flac(tmp_path):
    sources = [
        InMemorySource(make_sequence("A", "000001", subtype="PCM_16")),
        InMemorySource(make_sequence("A", "000002", subtype="PCM_24")),
    ]
    write_release(sources, tmp_path / "r", topology=make_topology(), progress=False)
    import soundfile
    import io

    for record in Release(tmp_path / "r").iter_records("train", decode=False):
        source = next(s.load() for s in sources if s.key == record["take_id"])
        assert record["audio"][:4] == b"fLaC"
        dtype = "int16" if source.audio_subtype == "PCM_16" else "int32"
        assert np.array_equal(soundfile.read(io.BytesIO(record["audio"]), dtype=dtype)[0], source.audio)


def test_small_shard_size_cuts_shards_and_row_groups(tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "r"
    write_release(small_sources(2, 3), out, topology=make_topology(), shard_size_bytes=40_000, row_group_size_bytes=15_000, progress=False)
    shards = sorted((out / "data" / "train").glob("*.parquet")) + sorted((out / "data" / "test").glob("*.parquet"))
    assert len(shards) >= 3
    assert any(pq.ParquetFile(s).num_row_groups >= 2 for s in shards)
    release = Release(out)
    ids = [r["id"] for split in release.split_names for r in release.iter_records(split, decode=False)]
    assert sorted(ids) == sorted(release.sequences()["id"]) and len(ids) == 6
    assert release.record(ids[-1])["id"] == ids[-1]


def test_bad_take_stop_names_it_and_skip_reports_it(tmp_path):
    good = small_sources(2, 2)
    broken = make_sequence("B", "000777")
    bad_vertices = broken.vertices.copy()
    bad_vertices[0, 0, 0] = np.nan
    import dataclasses

    bad = InMemorySource(dataclasses.replace(broken, vertices=bad_vertices))

    def explode():
        raise OSError("disk says no")

    failing = CallableSource("000888", explode)
    with pytest.raises(BuildError, match="000777.*NaN"):
        write_release(good + [bad], tmp_path / "stop", topology=make_topology(), on_error="stop", progress=False)
    report = write_release(good + [bad, failing], tmp_path / "skip", topology=make_topology(), on_error="skip", progress=False)
    assert [key for key, _ in report.skipped] == ["000777", "000888"]
    assert "disk says no" in report.skipped[1][1]
    assert len(report.sequences) == 4
    wrong_topology = dataclasses.replace(make_sequence("C", "000999"), topology="bfm_front")
    with pytest.raises(BuildError, match="000999.*topology"):
        write_release([InMemorySource(wrong_topology)], tmp_path / "topo", topology=make_topology(), progress=False)
    with pytest.raises(BuildError, match="more than once"):
        write_release(good + good[:1], tmp_path / "dup", topology=make_topology(), progress=False)


def test_other_format_version_is_refused_with_the_way_out(built, tmp_path):
    import shutil

    _, out, _ = built
    copy = tmp_path / "old"
    shutil.copytree(out, copy)
    info = json.loads((copy / "meta" / "info.json").read_text())
    info["format_version"] = "0.3"
    (copy / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(ReleaseVersionError, match="0.3.*mmface4d build release"):
        Release(copy)
    with pytest.raises(MMFace4DError, match="not a release"):
        Release(tmp_path)


KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from mmface4d_datasets.release.schema import CallableSource
from mmface4d_datasets.release.writer import write_release
from test_release_support import small_sources, make_topology

marker = Path({marker!r})
def killer(source):
    def load():
        # the second time the doomed take is loaded (the row pass), die without any cleanup
        count = int(marker.read_text()) if marker.exists() else 0
        marker.write_text(str(count + 1))
        if count + 1 == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)
        return source.load()
    return CallableSource(source.key, load)
sources = [killer(s) if s.key == "000201" else s for s in small_sources(4, 3, raw=True)]
write_release(sources, {out!r}, topology=make_topology(), progress=False)
"""


@pytest.mark.parametrize("kill_at", [1, 2], ids=["during-take-pass", "during-row-pass"])
def test_kill_9_then_rerun_gives_byte_identical_files(tmp_path, kill_at):
    out = tmp_path / "killed"
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), marker=str(tmp_path / "count"), kill_at=kill_at, out=str(out))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == -9, result.stderr
    assert (out / ".staging").is_dir() and not (out / "meta" / "info.json").exists()
    staged_before = {p.name for p in (out / ".staging" / "takes").iterdir()}
    assert staged_before  # some takes were staged before the kill
    report = write_release(small_sources(4, 3, raw=True), out, topology=make_topology(), progress=False)
    assert set(report.resumed) >= {name.split(".")[0] for name in staged_before if name.endswith(".npz")}
    fresh = tmp_path / "fresh"
    write_release(small_sources(4, 3, raw=True), fresh, topology=make_topology(), progress=False)
    assert tree_bytes(out) == tree_bytes(fresh)


def test_similarity_fit_recovers_a_weighted_similarity_and_batches_like_single_fits():
    """The one rigid-fit routine (release canonical frame, reconstruction alignment): exact on noise-free
    points, with weights and scale; a batch of fits gives the fits one by one."""
    from mmface4d_datasets.release.canonical import similarity_fit

    rng = np.random.default_rng(3)
    points = rng.normal(size=(4, 25, 3))
    angle = rng.uniform(0.2, 1.0, 4)
    rotations = np.zeros((4, 3, 3))
    rotations[:, 0, 0] = rotations[:, 1, 1] = np.cos(angle)
    rotations[:, 0, 1], rotations[:, 1, 0] = -np.sin(angle), np.sin(angle)
    rotations[:, 2, 2] = 1.0
    scales = rng.uniform(0.5, 2.0, 4)
    shifts = rng.normal(size=(4, 3))
    targets = scales[:, None, None] * np.einsum("bij,bkj->bki", rotations, points) + shifts[:, None, :]
    weights = rng.uniform(0.1, 1.0, (4, 25))
    R, t, s = similarity_fit(points, targets, weights, scale=True)
    np.testing.assert_allclose(R, rotations, atol=1e-12)
    np.testing.assert_allclose(s, scales, rtol=1e-12)
    np.testing.assert_allclose(t, shifts, atol=1e-12)
    for b in range(4):
        Rb, tb, sb = similarity_fit(points[b], targets[b], weights[b], scale=True)
        np.testing.assert_allclose(Rb, R[b], atol=1e-14)
        np.testing.assert_allclose(sb, s[b], rtol=1e-14)
    # a reflection is never returned, and without scale s is exactly 1
    R1, _, s1 = similarity_fit(points[0], points[0] * np.array([1.0, 1.0, -1.0]))
    assert np.isclose(np.linalg.det(R1), 1.0) and s1 == 1.0
