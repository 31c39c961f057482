"""Output folders (mmface4d_datasets.output_folders): the ownership rule and the cross-platform lock,
with real processes for the lock's holder and for a stale lock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmface4d_datasets.output_folders import (
    LOCK_NAME,
    MARKER_NAME,
    FileLock,
    FolderBusyError,
    OutputFolderError,
    claim_output_folder,
    output_folder,
    pid_alive,
)


def user_files(root: Path) -> dict[str, bytes]:
    """A folder of a user's own: a README, Parquet files under data/ and a .staging/ of their own."""
    files = {
        "README.md": b"# my notes\n",
        "data/train/mine.parquet": b"PAR1 user data PAR1",
        "data/other.parquet": b"PAR1 more PAR1",
        ".staging/keep.txt": b"my staging",
    }
    for relative, content in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    return files


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def dead_pid() -> int:
    """The id of a process of this host that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_new_and_empty_folders_are_taken_and_marked(tmp_path):
    with output_folder(tmp_path / "new" / "deeper", "export") as output:
        assert output.new and (output.path / LOCK_NAME).is_file()
        holder = json.loads((output.path / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["started"]
    marker = json.loads((tmp_path / "new" / "deeper" / MARKER_NAME).read_text())
    assert marker["kind"] == "export" and marker["written"] == []
    assert not (tmp_path / "new" / "deeper" / LOCK_NAME).exists()  # released
    (tmp_path / "empty").mkdir()
    with output_folder(tmp_path / "empty", "export") as output:
        assert output.new
    with output_folder(tmp_path / "empty", "export") as output:  # its own output: taken again
        assert not output.new


def test_a_folder_of_user_files_is_refused_untouched(tmp_path):
    root = tmp_path / "mine"
    user_files(root)
    before = snapshot(root)
    with pytest.raises(OutputFolderError) as caught:
        claim_output_folder(root, "release")
    message = str(caught.value)
    assert "refusing to write" in message and "README.md" in message and "data/" in message
    assert "new or empty folder" in message and "nothing was changed" in message
    assert snapshot(root) == before  # byte-identical, no marker, no lock left behind


def test_another_commands_output_is_refused(tmp_path):
    with output_folder(tmp_path / "out", "synth"):
        pass
    with pytest.raises(OutputFolderError, match="holds the output of mmface4d synth, not of release"):
        claim_output_folder(tmp_path / "out", "release")


def test_out_equal_to_or_inside_an_input_is_refused(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "README.md").write_text("theirs")
    with pytest.raises(OutputFolderError, match="is the input folder itself"):
        claim_output_folder(source, "release", inputs=[source])
    with pytest.raises(OutputFolderError, match="is inside the input folder"):
        claim_output_folder(source / "release", "release", inputs=[source])
    assert not (source / "release").exists() and snapshot(source) == {"README.md": b"theirs"}


def test_only_files_the_command_wrote_are_removed_or_overwritten(tmp_path):
    root = tmp_path / "out"
    with output_folder(root, "release") as output:
        output.will_write(root / "data" / "a.parquet", root / "data" / "b.parquet")
        for name in ("a", "b"):
            (root / "data" / f"{name}.parquet").parent.mkdir(parents=True, exist_ok=True)
            (root / "data" / f"{name}.parquet").write_bytes(name.encode())
        (root / "data" / ".b.parquet.tmp-999").write_bytes(b"left by a killed writer")
    (root / "data" / "users.parquet").write_bytes(b"a user's file, put into our folder later")
    (root / "data" / ".users.parquet.tmp-1").write_bytes(b"also the user's")
    with output_folder(root, "release") as output:
        with pytest.raises(OutputFolderError, match="users.parquet: exists and was not written by mmface4d"):
            output.will_write(root / "data" / "users.parquet")
        assert output.foreign_files("data") == ["data/.users.parquet.tmp-1", "data/users.parquet"]
        removed = output.remove_written([root / "data" / "a.parquet"], under=("data/",))
    assert removed == ["data/b.parquet"]
    assert sorted(p.name for p in (root / "data").iterdir()) == [".users.parquet.tmp-1", "a.parquet", "users.parquet"]
    assert json.loads((root / MARKER_NAME).read_text())["written"] == ["data/a.parquet"]


def hold_lock(folder) -> subprocess.Popen:
    """A real process that takes ``folder`` as a release output and keeps it until killed."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from mmface4d_datasets.output_folders import claim_output_folder;"
            f"claim_output_folder({str(folder)!r}, 'release'); print('held', flush=True); time.sleep(300)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_writer_is_told_who_holds_the_folder(tmp_path):
    holder = hold_lock(tmp_path / "out")
    try:
        with pytest.raises(FolderBusyError) as caught:
            claim_output_folder(tmp_path / "out", "release")
        message = str(caught.value)
        assert f"process {holder.pid} on host {socket.gethostname()!r}" in message
        assert "started 20" in message and "wait for it to finish" in message and LOCK_NAME in message
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed: its lock is stale now and is taken over, with a message
    lines = []
    with output_folder(tmp_path / "out", "release", log=lines.append) as output:
        assert json.loads((output.path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert len(lines) == 1 and "taking over the stale lock" in lines[0] and f"process {holder.pid}" in lines[0]


def test_locks_of_other_hosts_are_never_taken_over_and_unreadable_old_ones_are(tmp_path):
    lock_path = tmp_path / "x.lock"
    lock_path.write_text(json.dumps({"host": "another-machine", "pid": dead_pid(), "started": "2026-01-01T00:00:00Z"}))
    with pytest.raises(FolderBusyError, match="on host 'another-machine'.*delete .*x.lock"):
        FileLock(lock_path).acquire()
    lock_path.write_bytes(b"")  # a holder that died between creating the file and writing it
    with pytest.raises(FolderBusyError, match="has not yet written its name"):
        FileLock(lock_path).acquire()
    old = time.time() - 60
    os.utime(lock_path, (old, old))
    lines = []
    lock = FileLock(lock_path, log=lines.append).acquire()
    assert "stale lock" in lines[0] and "unreadable" in lines[0]
    lock.release()
    assert not lock_path.exists()


def test_pid_alive():
    assert pid_alive(os.getpid())
    assert not pid_alive(dead_pid())
    assert not pid_alive(0) and not pid_alive(-5)


def test_waiting_for_a_lock_gets_it_once_the_holder_lets_go(tmp_path):
    lock_path = tmp_path / "mini.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from mmface4d_datasets.output_folders import FileLock;"
            f"lock = FileLock(__import__('pathlib').Path({str(lock_path)!r})).acquire(); print('held', flush=True);"
            "time.sleep(1.0); lock.release()",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusyError):
            FileLock(lock_path).acquire()
        lock = FileLock(lock_path).acquire(wait=True, poll_s=0.05, timeout_s=60)
        assert holder.wait(timeout=60) == 0
        assert json.loads(lock_path.read_text())["pid"] == os.getpid()
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def _export_inputs(root: Path) -> list[str]:
    import numpy as np

    from mmface4d_datasets.official import write_mesh_sequence

    root.mkdir()
    write_mesh_sequence(root / "take_filt", np.random.default_rng(0).normal(0, 0.1, (2, 3, 3)).astype(np.float32))
    np.save(root / "faces.npy", np.array([[0, 1, 2]]))
    return [str(root / "take_filt"), "--num-vertices", "3", "--faces", str(root / "faces.npy")]


@pytest.mark.parametrize("command", ["export", "synth", "quickstart", "bench run", "bench train"])
def test_every_folder_writing_command_refuses_a_folder_of_user_files(tmp_path, command):
    out = tmp_path / "theirs"
    user_files(out)
    before = snapshot(out)
    # a folder the release resolver takes as a release (it is never read: the output folder is refused first)
    (tmp_path / "release" / "meta").mkdir(parents=True)
    (tmp_path / "release" / "meta" / "info.json").write_text("{}")
    arguments = {
        "export": lambda: ["export", *_export_inputs(tmp_path / "in")],
        "synth": lambda: ["synth", "--subjects", "1", "--sentences", "1", "--vertices", "500", "--quiet"],
        "quickstart": lambda: ["quickstart", "--only", "sample"],
        "bench run": lambda: ["bench", "run", "--model", "static", "--data", str(tmp_path / "release")],
        "bench train": lambda: ["bench", "train", "--model", "mmface4d", "--data", str(tmp_path / "release")],
    }[command]()
    result = subprocess.run(
        [sys.executable, "-m", "mmface4d_datasets", *arguments, "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refusing to write mmface4d" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(out) == before


def test_a_lock_that_cannot_be_written_whole_is_removed_so_the_next_run_is_not_blocked(tmp_path, monkeypatch):
    """A full disk while the lock names its holder (a long command line, a small file-size limit) used to
    leave a nameless lock file behind; the next run then saw 'a process that has not yet written its name'."""
    import resource

    lock_path = tmp_path / ".mmface4d.lock"
    monkeypatch.setattr(sys, "argv", ["mmface4d", "build", "x" * 400])
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (120, hard))
    try:
        with pytest.raises(OSError):
            FileLock(lock_path).acquire()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert not lock_path.exists()
    FileLock(lock_path).acquire().release()
