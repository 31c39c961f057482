"""`mmface4d build release|synthetic`: the fixture take into a release and back, bad takes by name,
determinism, and a kill -9 in the middle of a build."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from builders.build import REPORT_NAME, build_release
from mmface4d_datasets.errors import MMFace4DError
from test_builders_support import fixture_copies, kill_9_once_staged, small_take, tree_bytes

MANIFEST_HEADER = "take_id,subject_id,sentence_id,text,gender,age\n"


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "mmface4d_datasets", "build", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def fixture_release(official_sample, tmp_path_factory):
    """The authors' sample take built into a release by the command line (once for this module):
    (release folder, the JSON summary the command printed)."""
    root = tmp_path_factory.mktemp("fixture-release")
    manifest = root / "manifest.csv"
    manifest.write_text(MANIFEST_HEADER + "000337,S001,000001,,,\n", encoding="utf-8")
    out = cli("release", str(official_sample), "--out", str(root / "out"), "--manifest", str(manifest), "--quiet")
    assert out.returncode == 0, out.stderr
    return root / "out", json.loads(out.stdout)


def test_fixture_take_lands_in_train_with_no_test_split(fixture_release):
    out, summary = fixture_release
    assert summary["sequences"] == ["S001/000337"] and summary["split_counts"] == {"train": 1}
    assert summary["topology"] == "bfm_front" and summary["skipped"] == []
    assert (out / "data" / "train").is_dir() and not (out / "data" / "test").exists()
    splits = json.loads((out / "meta" / "splits.json").read_text())
    assert splits["train"] == ["S001"] and splits["test"] == []
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["num_sequences"] == 1 and report["skipped"] == []
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "extra_gated_prompt" in card and "extra_gated_fields" in card
    assert "| train | 1 | 1 | 67 |" in card  # subjects, sequences, frames computed from the data
    assert "Consent, intended use and risks" in card and "Source: takes in the authors' layout (1 found)" in card


def test_fixture_raw_config_holds_the_three_cameras(fixture_release):
    import pyarrow.parquet as pq

    out, _ = fixture_release
    (raw_shard,) = out.glob("raw/train/*.parquet")
    row = pq.read_table(raw_shard).to_pylist()[0]
    assert row["id"] == "S001/000337" and row["cameras"] == [0, 1, 2]
    assert row["landmarks_shape"] == [[67, 98, 2]] * 3


def test_fixture_take_loads_back_within_the_codec_bound(fixture_release, official_sample):
    from mmface4d_datasets import official
    from mmface4d_datasets.release.reader import Release

    out, _ = fixture_release
    release = Release(out)
    record = release.record("S001/000337")
    source = official.read_mesh_sequence(official_sample / "reconstruct_filt", 35_709)
    assert record["vertices"].shape == source.shape and record["vertices"].dtype == np.float32
    assert (record["num_frames"], record["num_vertices"], record["topology"]) == (67, 35_709, "bfm_front")
    # head_pose maps the canonical vertices back to camera 1's frame: x_cam = R x + t
    pose = record["head_pose"].astype(np.float64)
    back = np.einsum("tij,tvj->tvi", pose[:, :3, :3], record["vertices"].astype(np.float64)) + pose[:, None, :3, 3]
    bound = release.info["max_error"]
    per_vertex = np.linalg.norm(back - source, axis=-1)
    assert per_vertex.max() <= np.sqrt(3) * bound + 1e-6  # codec bound, plus float32 rounding of the pose
    samples, rate = soundfile.read(str(official_sample / "000337.wav"), dtype="float32")
    assert record["audio"]["sampling_rate"] == rate and np.array_equal(record["audio"]["array"], samples)


def test_validate_passes_and_catches_seeded_faults(fixture_release, tmp_path):
    import shutil

    from mmface4d_datasets.release.validate import validate_release

    out, _ = fixture_release
    assert list(validate_release(out)) == []
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shard = next((copy / "data" / "train").glob("shard-*.parquet"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    (copy / "meta" / "splits.json").unlink()
    problems = "\n".join(str(p) for p in validate_release(copy))
    assert "shard-00000.parquet" in problems and "splits.json" in problems


def test_bad_take_stops_the_build_or_is_skipped_and_listed(tmp_path):
    src = tmp_path / "src"
    small_take(src, "000001", subject="S1")
    small_take(src, "000002", subject="S1", audio_seconds=3.0, seed=2)  # audio far longer than the mesh
    small_take(src, "000003", subject="S2", sentence="220001", seed=3)
    with pytest.raises(MMFace4DError, match=r"take 000002 .*mesh frames last"):
        build_release(src, tmp_path / "stopped", progress=False)
    assert not (tmp_path / "stopped" / "meta" / "info.json").exists()

    summary = build_release(src, tmp_path / "skipped", on_error="skip", progress=False)
    assert [s.take_id for s in summary.skipped] == ["000002"]
    assert "mesh frames last" in summary.skipped[0].reason
    assert summary.sequences == ["S1/000001", "S2/000003"]
    report = json.loads((tmp_path / "skipped" / REPORT_NAME).read_text())
    assert [s["take_id"] for s in report["skipped"]] == ["000002"]


def test_incomplete_take_is_skipped_by_name(tmp_path):
    src = tmp_path / "src"
    small_take(src, "000001")
    small_take(src, "000002", seed=2)
    (src / "000002_filt_1.nut").unlink()
    with pytest.raises(MMFace4DError, match=r"000002_filt_1.nut"):
        build_release(src, tmp_path / "stopped", progress=False)
    summary = build_release(src, tmp_path / "skipped", on_error="skip", progress=False)
    assert [s.take_id for s in summary.skipped] == ["000002"] and summary.sequences == ["S1/000001"]


def test_two_builds_are_byte_identical(tmp_path):
    src = tmp_path / "src"
    for index in range(4):
        small_take(src, f"00000{index}", subject=f"S{index % 2}", sentence=("000001", "210001")[index // 2], seed=index)
    build_release(src, tmp_path / "a", progress=False)
    build_release(src, tmp_path / "b", progress=False, seed=0)
    first, second = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert "meta/info.json" in first and "README.md" in first and "meta/splits.json" in first
    assert first == second
    build_release(src, tmp_path / "c", progress=False, seed=1)
    assert json.loads((tmp_path / "c" / "meta" / "splits.json").read_text())["seed"] == 1


def test_cli_reports_a_missing_subject_by_take(official_sample, tmp_path):
    out = cli("release", str(official_sample), "--out", str(tmp_path / "out"), "--quiet")
    assert out.returncode == 2
    assert "take 000337" in out.stderr and "subject_id is required" in out.stderr
    assert "Traceback" not in out.stderr


def test_no_raw_reads_no_camera_data(tmp_path):
    import pyarrow.parquet as pq

    small_take(tmp_path / "src", "000001", meta_extra={"extrinsics": {"0": np.eye(4).tolist()}})
    build_release(tmp_path / "src", tmp_path / "out", raw=False, progress=False)
    (raw_shard,) = (tmp_path / "out").glob("raw/train/*.parquet")
    assert pq.read_table(raw_shard).column("cameras").to_pylist() == [[]]


def test_the_command_module_imports_only_the_standard_library():
    code = (
        "import sys, json, builders.cli; "
        "print(json.dumps([m for m in ('numpy', 'pyarrow', 'torch', 'huggingface_hub', 'mmface4d_datasets.release') "
        "if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize(
    "args, expected",
    [
        ((), ["release", "synthetic", "push"]),
        (("release",), ["--manifest", "--bfm-info", "--on-error", "--no-raw", "--max-error", "--seed"]),
        (("synthetic",), ["--subjects", "--sentences", "--vertices", "--out"]),
        (("push",), ["--repo-id", "--private", "--revision", "--dry-run"]),
    ],
)
def test_help_of_every_subcommand(args, expected):
    out = cli(*args, "--help")
    assert out.returncode == 0, out.stderr
    for option in expected:
        assert option in out.stdout


@pytest.mark.slow
def test_kill_9_mid_build_then_rerun_gives_identical_files(official_sample, tmp_path):
    takes = {f"{400 + i:06d}": f"S{i % 2}" for i in range(3)}
    source, manifest = fixture_copies(official_sample, tmp_path, takes)
    args = ["release", str(source), "--manifest", str(manifest), "--quiet", "--no-raw"]

    reference = cli(*args, "--out", str(tmp_path / "reference"))
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "interrupted"
    # kill once some takes are staged and before the release is complete
    kill_9_once_staged([sys.executable, "-m", "mmface4d_datasets", "build", *args, "--out", str(out)], out / ".staging", poll_s=0.05)
    assert not (out / "meta" / "info.json").exists()

    resumed = cli(*args, "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["resumed"], "the rerun did not pick up the staged takes"
    assert tree_bytes(out) == tree_bytes(tmp_path / "reference")
    assert not [p for p in out.rglob("*") if ".tmp" in p.name or p.name == ".staging"]


def test_synthetic_release_through_the_cli(tmp_path):
    from mmface4d_datasets.release.reader import Release
    from mmface4d_datasets.release.validate import validate_release
    from mmface4d_datasets.synthetic.takes import synthesize_take

    out = cli(
        "synthetic", "--subjects", "3", "--sentences", "2", "--vertices", "500", "--seed", "4", "--out", str(tmp_path / "synth"), "--quiet"
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["topology"] == "synthetic_v1@500" and summary["num_sequences"] == 6
    assert summary["split_counts"] == {"train": 4, "test": 2}  # one of three subjects (2 takes each) is held out
    assert list(validate_release(tmp_path / "synth")) == []
    card = (tmp_path / "synth" / "README.md").read_text(encoding="utf-8")
    assert "pretty_name: MMFace4D synthetic" in card and "synthetic takes (3 subjects x 2 sentences, seed 4)" in card
    release = Release(tmp_path / "synth")
    take = synthesize_take(1, 0, 4, num_vertices=500)
    record = release.record(f"{take.actor.subject_id}/{take.take_id}")
    assert np.array_equal(record["audio"]["array"], take.audio)
    pose = record["head_pose"].astype(np.float64)
    back = np.einsum("tij,tvj->tvi", pose[:, :3, :3], record["vertices"].astype(np.float64)) + pose[:, None, :3, 3]
    assert np.linalg.norm(back - take.vertices, axis=-1).max() <= np.sqrt(3) * release.info["max_error"] + 1e-6
    # the camera extrinsics of the simulator (camera c from camera 1) are stored inverted: camera c -> camera 1
    import pyarrow.parquet as pq

    from mmface4d_datasets.synthetic.takes import camera_extrinsics

    rows = {r["id"]: r for shard in (tmp_path / "synth").glob("raw/*/*.parquet") for r in pq.read_table(shard).to_pylist()}
    row = rows[record["id"]]
    assert row["cameras"] == [0, 1, 2]
    stored = np.asarray(row["extrinsics"][0]).reshape(4, 4)
    assert np.allclose(stored @ camera_extrinsics(0), np.eye(4), atol=1e-9)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(max_error=-1.0), "--max-error must be a finite number"),
        (dict(max_error=float("nan")), "--max-error must be a finite number"),
        (dict(shard_size_bytes=0), "--shard-size must be positive"),
        (dict(subjects=0), "--subjects must be a whole number in 1..999"),
        (dict(sentences=1000), "--sentences must be a whole number in 1..999"),
        (dict(on_error="ignore"), "on_error must be one of stop, skip"),
    ],
)
def test_bad_build_arguments_are_refused_before_any_work(tmp_path, options, message):
    from builders.build import build_synthetic_release

    arguments = dict(subjects=1, sentences=1, num_vertices=500, progress=False) | options
    with pytest.raises(MMFace4DError, match=message):
        build_synthetic_release(tmp_path / "out", **arguments)
    assert not (tmp_path / "out").exists()


def test_a_rerun_with_changed_inputs_does_not_resume_stale_takes(tmp_path):
    src = tmp_path / "src"
    small_take(src, "000001", subject="S1")
    small_take(src, "000002", subject="S1", audio_seconds=3.0, seed=2)  # fails while the writer loads it
    manifest = tmp_path / "m.csv"
    manifest.write_text(MANIFEST_HEADER + "000001,OLD,000001,,,\n000002,S1,000001,,,\n")
    with pytest.raises(MMFace4DError, match="take 000002"):
        build_release(src, tmp_path / "out", manifest=manifest, progress=False)
    assert list((tmp_path / "out" / ".staging").glob("takes/000001.npz"))  # the good take was staged

    small_take(src, "000002", subject="S1", seed=2)  # fixed take
    manifest.write_text(MANIFEST_HEADER + "000001,NEW,000001,,,\n000002,S1,000001,,,\n")  # corrected subject
    summary = build_release(src, tmp_path / "out", manifest=manifest, progress=False)
    assert summary.resumed == [] and summary.sequences == ["NEW/000001", "S1/000002"]


def test_an_unchanged_rerun_resumes(tmp_path):
    src = tmp_path / "src"
    small_take(src, "000001", subject="S1")
    small_take(src, "000002", subject="S1", audio_seconds=3.0, seed=2)
    with pytest.raises(MMFace4DError, match="take 000002"):
        build_release(src, tmp_path / "out", progress=False)
    summary = build_release(src, tmp_path / "out", on_error="skip", progress=False)
    assert summary.resumed == ["000001"] and summary.sequences == ["S1/000001"]
