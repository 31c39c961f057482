"""File-system faults and odd input end in named errors (exit 2, no traceback), never half-written files.

Faults are real kernel errors, not mocks where that is possible: a read-only folder (mode 0555, or
the immutable attribute when the tests run as root, since root ignores permission bits), a file
where a folder is needed, and a disk that fills mid-write (a file-size limit, RLIMIT_FSIZE, which
makes the write that crosses it fail with EFBIG, as a full disk fails with ENOSPC).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import subprocess

import numpy as np
import pytest

from mmface4d_datasets.cli import main
from mmface4d_datasets.release.reader import Release
from mmface4d_datasets.release.writer import write_release
from test_builders_support import small_take
from test_release_support import make_topology, small_sources

# ------------------------------------------------------------------------------------------ helpers


def run(capsys, *args) -> tuple[int, str, str]:
    """`mmface4d ARGS` in this process: (exit code, stdout, stderr); argparse errors exit 2 too."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_named(code, err, *needles):
    assert code == 2, err
    assert "Traceback" not in err and "error" in err
    for needle in needles:
        assert str(needle) in err, (needle, err)


def temporaries(folder):
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name)


@contextlib.contextmanager
def read_only(folder):
    """Make ``folder`` read-only for this process: mode 0555, or `chattr +i` when running as root."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)

        def undo():
            folder.chmod(0o755)
    else:
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip("running as root and `chattr +i` is unavailable here: no way to make a read-only folder")

        def undo():
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True)

    try:
        try:
            (folder / ".probe").touch()
        except OSError:
            pass
        else:
            (folder / ".probe").unlink()
            pytest.skip("this file system still lets this process write into a read-only folder")
        yield folder
    finally:
        undo()


@contextlib.contextmanager
def file_size_limit(nbytes):
    """Writes that would make any file larger than ``nbytes`` fail (EFBIG), as on a full disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small release, its test ground truth as an .npz of predictions, a submission, and a take to export."""
    root = tmp_path_factory.mktemp("faults")
    release_dir = root / "release"
    write_release(small_sources(4, 3, frames=12), release_dir, topology=make_topology(), progress=False)
    release = Release(release_dir)
    predictions = {str(r["id"]): r["vertices"] for r in release.iter_records("test")}
    np.savez(root / "predictions.npz", **predictions)
    assert (
        main(
            [
                "bench",
                "write-submission",
                str(root / "predictions.npz"),
                "--out",
                str(root / "sub.parquet"),
                "--model",
                "m",
                "--data",
                str(release_dir),
                "--encoding",
                "float32le",
            ]
        )
        == 0
    )
    small_take(root / "take", "000001", frames=6)
    np.save(root / "faces.npy", np.array([[0, 1, 2], [1, 2, 3]]))
    return root


def commands(world, out):
    """Every writing command, aimed at ``out`` (a folder, or a file path inside it)."""
    from test_builders_support import SMALL_N

    return {
        "build": ["build", "release", world / "take", "--out", out / "release", "--quiet"],
        "export": [
            "export",
            world / "take" / "000001_filt",
            "--num-vertices",
            SMALL_N,
            "--faces",
            world / "faces.npy",
            "--out",
            out / "frames",
        ],
        "synth": ["synth", "--subjects", 1, "--sentences", 1, "--vertices", 500, "--out", out / "takes", "--quiet"],
        "facemodel": ["facemodel", "show", "--vertices", 500, "--out", out / "face.png"],
        "write-submission": [
            "bench",
            "write-submission",
            world / "predictions.npz",
            "--out",
            out / "sub.parquet",
            "--model",
            "m",
            "--release-format-version",
            "1",
            "--encoding",
            "float32le",
        ],
        "score": [
            "bench",
            "score",
            world / "sub.parquet",
            "--data",
            world / "release",
            "--out",
            out / "r.json",
            "--bootstrap",
            10,
            "--quiet",
        ],
    }


WRITERS = ["build", "export", "synth", "facemodel", "write-submission", "score"]

# ------------------------------------------------------------------------------------------ file-system faults


@pytest.mark.parametrize("name", WRITERS)
def test_a_read_only_output_folder_is_named(world, tmp_path, capsys, name):
    with read_only(tmp_path / "ro") as folder:
        code, _, err = run(capsys, *commands(world, folder)[name])
    assert_named(code, err, folder, "permitted" if os.geteuid() == 0 else "permission denied")
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("name", WRITERS)
def test_an_output_path_under_a_file_is_named(world, tmp_path, capsys, name):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    code, _, err = run(capsys, *commands(world, blocker)[name])
    assert_named(code, err, blocker)
    assert ("file" in err or "Not a directory" in err) and blocker.read_text() == "a file, not a folder"
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("name", ["export", "synth", "facemodel", "write-submission", "score"])
def test_a_disk_that_fills_mid_write_is_named_and_a_rerun_starts_clean(world, tmp_path, capsys, name):
    argv = commands(world, tmp_path / "out")[name]
    with file_size_limit(300):
        code, _, err = run(capsys, *argv)
    assert_named(code, err, tmp_path / "out", "file too large")
    assert temporaries(tmp_path) == []
    code, _, err = run(capsys, *argv)
    assert code == 0, err


def test_a_build_that_fills_the_disk_is_named_leaves_no_temporaries_and_resumes(world, tmp_path, capsys):
    argv = commands(world, tmp_path)["build"]
    with file_size_limit(2000):
        code, _, err = run(capsys, *argv)
    assert_named(code, err, tmp_path / "release", "file too large")
    assert temporaries(tmp_path) == []
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert json.loads(out)["num_sequences"] == 1
    assert (tmp_path / "release" / "meta" / "info.json").is_file()


def test_disk_full_in_an_atomic_write_names_the_file_and_removes_the_temporary(tmp_path, monkeypatch):
    from mmface4d_datasets import files
    from mmface4d_datasets.errors import FileSystemError

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(FileSystemError, match=r"x\.json: cannot write: no space left on the device"):
        files.atomic_write_bytes(tmp_path / "x.json", b"{}")
    assert list(tmp_path.iterdir()) == []


def test_validate_names_a_path_that_is_not_a_release_folder(tmp_path, capsys):
    not_a_folder = tmp_path / "release.txt"
    not_a_folder.write_text("x")
    # validate reports what it finds as problems of the release (exit 1, on stdout), never a traceback
    code, out, err = run(capsys, "validate", not_a_folder)
    assert code == 1 and "Traceback" not in err, err
    assert str(not_a_folder) in out and "is a file, not a release folder" in out, out
    (tmp_path / "rel" / "meta" / "info.json").mkdir(parents=True)
    code, out, err = run(capsys, "validate", tmp_path / "rel")
    assert code == 1 and "Traceback" not in err, err
    assert "info.json" in out and "Is a directory" in out, out


# ------------------------------------------------------------------------------------------ odd input


def _parquet_with_header(path, header_bytes: bytes):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "id": pa.array([], pa.string()),
            "num_frames": pa.array([], pa.int32()),
            "num_vertices": pa.array([], pa.int32()),
            "encoding": pa.array([], pa.string()),
            "vertices": pa.array([], pa.binary()),
        }
    )
    pq.write_table(table.replace_schema_metadata({"mmface4d_submission": header_bytes}), path)
    return path


@pytest.mark.parametrize("depth, rule", [(100_000, "header_too_large"), (20_000, "header_invalid")])
def test_a_deeply_nested_submission_header_is_a_named_issue(world, tmp_path, capsys, depth, rule):
    path = _parquet_with_header(tmp_path / "deep.parquet", b"[" * depth + b"]" * depth)
    code, out, err = run(capsys, "bench", "validate", path, "--data", world / "release")
    assert code == 1 and "Traceback" not in err
    assert rule in out and ("nested too deeply" in out or "at most" in out)


def test_a_submission_header_over_the_size_limit_is_refused_and_not_copied(world, tmp_path, capsys):
    from benchmark.submission import HEADER_MAX_BYTES

    header = {"model": "m", "release_format_version": "1", "notes": "x" * (HEADER_MAX_BYTES + 1)}
    path = _parquet_with_header(tmp_path / "big.parquet", json.dumps(header).encode())
    code, out, err = run(capsys, "bench", "score", path, "--data", world / "release", "--out", tmp_path / "r.json", "--quiet")
    assert code == 1 and "header_too_large" in err
    assert len(err) < HEADER_MAX_BYTES and "xxxxxxxx" not in err  # the header is not copied into the message
    assert not (tmp_path / "r.json").exists()  # a rejected file writes no report


def test_a_deeply_nested_calibration_file_is_a_format_error(tmp_path):
    from mmface4d_datasets.errors import FormatError
    from mmface4d_datasets.official import read_calibration

    path = tmp_path / "000001_1.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(FormatError, match=r"000001_1\.json: calibration JSON is nested too deeply"):
        read_calibration(path)


def test_a_gbk_manifest_is_a_named_error_and_a_bom_manifest_reads(tmp_path):
    from builders.manifest import read_manifest, take_metadata
    from mmface4d_datasets.errors import FormatError

    text = "take_id,subject_id,sentence_id,text,gender,age\n000337,S1,000001,你好世界,female,30\n"
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes(text.encode("gbk"))
    with pytest.raises(FormatError, match=r"gbk\.csv: the manifest CSV is not UTF-8 .*GBK"):
        read_manifest(gbk)
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert take_metadata("000337", read_manifest(bom)).text == "你好世界"


def test_a_gbk_manifest_through_the_build_command(world, tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("take_id,subject_id,sentence_id,text,gender,age\n000001,S1,000001,你好,女,30\n".encode("gbk"))
    code, _, err = run(capsys, "build", "release", world / "take", "--out", tmp_path / "out", "--manifest", manifest, "--quiet")
    assert_named(code, err, manifest, "not UTF-8")


def test_take_ids_that_lost_their_leading_zeros_are_refused_with_the_probable_id(tmp_path):
    from builders.manifest import read_manifest
    from mmface4d_datasets.errors import FormatError

    path = tmp_path / "m.csv"
    path.write_text("take_id,subject_id,sentence_id,text,gender,age\n337,S1,000001,,,\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"m\.csv, line 2: take_id '337' .*did you mean '000337'"):
        read_manifest(path)


@pytest.mark.parametrize("subject", ["..", ".", "S1\x00", "S\n1", "S\x1b[31m1", "a\\b"])
def test_subject_ids_that_are_path_steps_or_hold_control_characters_are_refused(subject):
    from builders.manifest import MetadataError, take_metadata

    with pytest.raises(MetadataError, match=r"take 000001 .*subject_id"):
        take_metadata("000001", None, {"subject_id": subject, "sentence_id": "000001"})


def test_object_and_corrupt_npy_files_given_to_write_submission_are_named(tmp_path, capsys):
    folder = tmp_path / "preds" / "S1"
    folder.mkdir(parents=True)
    np.save(folder / "000001.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = run(
        capsys,
        "bench",
        "write-submission",
        tmp_path / "preds",
        "--out",
        tmp_path / "s.parquet",
        "--model",
        "m",
        "--release-format-version",
        "1",
    )
    assert_named(code, err, "000001.npy", "Python objects")
    (folder / "000001.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    code, _, err = run(
        capsys,
        "bench",
        "write-submission",
        tmp_path / "preds",
        "--out",
        tmp_path / "s.parquet",
        "--model",
        "m",
        "--release-format-version",
        "1",
    )
    assert_named(code, err, "000001.npy", "not a readable")
    np.save(folder / "000001.npy", np.array([["a", "b", "c"]]))
    code, _, err = run(
        capsys,
        "bench",
        "write-submission",
        tmp_path / "preds",
        "--out",
        tmp_path / "s.parquet",
        "--model",
        "m",
        "--release-format-version",
        "1",
    )
    assert_named(code, err, "S1/000001", "dtype")
    assert not (tmp_path / "s.parquet").exists() and temporaries(tmp_path) == []


def test_a_codec_error_while_writing_a_submission_names_the_id(tmp_path):
    from benchmark.submission import SubmissionError, make_header, write_submission

    header = make_header("m", release_format_version="1")
    with pytest.raises(SubmissionError, match=r"s\.parquet: prediction for S1/000001 cannot be encoded: .*max_error"):
        write_submission(tmp_path / "s.parquet", {"S1/000001": np.zeros((2, 4, 3), np.float32)}, header, max_error=float("nan"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["bench", "score", "p.parquet", "--data", "d", "--seed", "1e23"], "--seed: expected a whole number from 0 to"),
        (["bench", "score", "p.parquet", "--data", "d", "--seed", "-1"], "--seed: expected a whole number from 0 to"),
        (["bench", "score", "p.parquet", "--data", "d", "--seed", "100000000000000000000000"], "--seed"),
        (["bench", "score", "p.parquet", "--data", "d", "--bootstrap", "-5"], "--bootstrap: expected a whole number from 1"),
        (["bench", "run", "--model", "static", "--data", "d", "--bootstrap", "0"], "--bootstrap"),
        (["build", "synthetic", "--subjects", "2", "--sentences", "2", "--out", "o", "--seed", "-1"], "--seed"),
        (["build", "synthetic", "--subjects", "-2", "--sentences", "2", "--out", "o"], "--subjects"),
        (["build", "release", "src", "--out", "o", "--max-error", "-1"], "--max-error: expected a finite positive"),
        (["build", "release", "src", "--out", "o", "--shard-size", "nan"], "--shard-size"),
        (["facemodel", "info", "--seed", "1e23"], "--seed"),
        (["facemodel", "info", "--seed", "-1"], "--seed"),
        (["synth", "--subjects", "1", "--sentences", "1", "--out", "o", "--seed", "1e23"], "--seed"),
        (["bench", "write-submission", "x.npz", "--out", "o", "--model", "m", "--max-error", "inf"], "--max-error"),
        (["validate", "r", "--max-problems", "-3"], "--max-problems"),
    ],
)
def test_out_of_range_numbers_are_named_errors(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert_named(code, err, needle)
