"""`mmface4d build` and its output folder: a user's files are never touched, --out inside SRC is
refused, a rebuild removes only what an earlier build wrote, and the folder's lock (real processes:
a holder, a killed holder, two builds at once)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys

import pytest

from mmface4d_datasets.output_folders import LOCK_NAME, MARKER_NAME
from test_builders_support import kill_9_once_staged, small_take
from test_output_folders import hold_lock


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "mmface4d_datasets", *args], capture_output=True, text=True, timeout=timeout)


def snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def valid(release) -> bool:
    from mmface4d_datasets.release.validate import validate_release

    return list(validate_release(release)) == []


@pytest.fixture
def source(tmp_path):
    """Three small takes of two subjects in the flat layout."""
    src = tmp_path / "src"
    small_take(src, "000001", subject="S1")
    small_take(src, "000002", subject="S1", sentence="210001", seed=1)
    small_take(src, "000003", subject="S2", seed=2)
    return src


def users_folder(root):
    for relative, content in {
        "README.md": b"# my own notes\n",
        "data/train/mine.parquet": b"PAR1 mine PAR1",
        "meta/info.json": b'{"mine": true}',
        ".staging/keep.txt": b"my staging area",
    }.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    return snapshot(root)


@pytest.mark.parametrize("command", ["release", "synthetic"])
def test_a_build_into_a_folder_of_user_files_is_refused_and_leaves_them_byte_identical(source, tmp_path, command):
    out = tmp_path / "theirs"
    before = users_folder(out)
    args = ["release", str(source)] if command == "release" else ["synthetic", "--subjects", "2", "--sentences", "1", "--vertices", "500"]
    result = cli("build", *args, "--out", str(out), "--quiet")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refusing to write mmface4d release output into a folder that holds files mmface4d did not write" in result.stderr
    assert "README.md" in result.stderr and "Give a new or empty folder" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(out) == before


def test_out_equal_to_or_inside_the_source_is_refused(source):
    before = snapshot(source)
    (source / "README.md").write_text("the source's own README")
    before = snapshot(source)
    for out, message in ((source, "is the input folder itself"), (source / "release", "is inside the input folder")):
        result = cli("build", "release", str(source), "--out", str(out), "--quiet")
        assert result.returncode == 2 and message in result.stderr, result.stderr
    assert snapshot(source) == before and not (source / "release").exists()


@pytest.mark.slow
def test_a_rebuild_removes_only_what_the_earlier_build_wrote(source, tmp_path):
    out = tmp_path / "release"
    first = cli("build", "release", str(source), "--out", str(out), "--quiet", "--shard-size", "0.000001")
    assert first.returncode == 0, first.stderr
    many = sorted(p.relative_to(out).as_posix() for p in out.glob("data/*/*.parquet"))
    assert len(many) == 3 and json.loads((out / MARKER_NAME).read_text())["kind"] == "release"
    # a person puts files into the release folder after the build
    (out / "notes.txt").write_text("notes")
    (out / "data" / "train" / "users.parquet").write_bytes(b"PAR1 theirs PAR1")
    # one take fewer: S1 keeps a single sequence, so no subject can be in test and the test shards
    # of the first build are stale
    assert "data/test/shard-00000.parquet" in many
    for path in source.glob("000002*"):
        path.unlink()
    refused = cli("build", "release", str(source), "--out", str(out), "--quiet")  # other arguments: no silent replacement
    assert refused.returncode == 2 and "built with other parameters" in refused.stderr and "--overwrite" in refused.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("data/*/*.parquet")) == many + ["data/train/users.parquet"]
    second = cli("build", "release", str(source), "--out", str(out), "--quiet", "--overwrite")
    assert second.returncode == 0, second.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("data/*/shard-*.parquet")) == [
        "data/train/shard-00000.parquet",
        "data/train/shard-00001.parquet",
    ]
    assert (out / "notes.txt").read_text() == "notes"
    assert (out / "data" / "train" / "users.parquet").read_bytes() == b"PAR1 theirs PAR1"
    assert "users.parquet was not written by mmface4d; left in place" in second.stderr
    assert not (out / LOCK_NAME).exists()


def test_a_second_build_says_who_holds_the_folder_and_a_killed_holders_lock_is_taken_over(source, tmp_path):
    out = tmp_path / "release"
    holder = hold_lock(out)
    try:
        busy = cli("build", "release", str(source), "--out", str(out), "--quiet")
        assert busy.returncode == 2, busy.stderr
        assert f"is in use by process {holder.pid} on host {socket.gethostname()!r}, started 20" in busy.stderr
        assert "wait for it to finish" in busy.stderr and "Traceback" not in busy.stderr
        assert not (out / "meta").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    taken = cli("build", "release", str(source), "--out", str(out), "--quiet")
    assert taken.returncode == 0, taken.stderr
    assert f"taking over the stale lock of {out}" in taken.stderr and f"process {holder.pid} on this host is gone" in taken.stderr
    assert valid(out)


def test_two_builds_at_once_never_leave_a_release_that_validate_rejects(source, tmp_path):
    out = tmp_path / "release"
    command = [sys.executable, "-m", "mmface4d_datasets", "build", "release", str(source), "--out", str(out), "--quiet"]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in processes]
    codes = [code for code, _, _ in results]
    assert 0 in codes, results
    for code, stdout, stderr in results:
        if code != 0:  # the loser stopped at the lock and said so
            assert code == 2 and "is in use by" in stderr, stderr  # by process N, or by one not yet named (the race)
        else:
            assert json.loads(stdout)["num_sequences"] == 3
    assert valid(out)


@pytest.mark.slow
def test_a_killed_build_resumes_after_taking_over_its_stale_lock(tmp_path):
    out = tmp_path / "synthetic"
    args = ["build", "synthetic", "--subjects", "4", "--sentences", "3", "--vertices", "500", "--quiet", "--out", str(out)]
    killed = kill_9_once_staged([sys.executable, "-m", "mmface4d_datasets", *args], out / ".staging")
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == killed  # left behind by the kill
    resumed = cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert "taking over the stale lock" in resumed.stderr and json.loads(resumed.stdout)["resumed"]
    assert valid(out)
