"""The executor (reconstruction/executor.py): in this process, a local process pool, a real local Ray
cluster (two CPUs, started once per test session). Jobs write their output atomically, reruns skip
finished takes, a failing take is reported by id, a crashed worker's take is run again, and a
release encoded by 1 worker, 2 workers or Ray has the same bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmface4d_datasets.files import atomic_write_bytes
from reconstruction.executor import SHARED_PROBE, Executor, ExecutorError, Job, WorkerDied


# Jobs (module level, so a worker process can import them by name).
def square_job(value: int, out: str | None = None) -> int:
    if value < 0:
        raise ValueError(f"negative value {value}")
    if out is not None:
        atomic_write_bytes(Path(out), str(value * value).encode())
    return value * value


def die_once_job(marker: str, value: int) -> int:
    """Kills its own process the first time it runs (a crash, not an exception), then succeeds."""
    if not os.path.exists(marker):
        Path(marker).write_text("died")
        os._exit(3)
    return value + 1


def always_die_job() -> None:
    os._exit(4)


def threads_job() -> tuple:
    """What a worker sees: the thread environment, and a BLAS-heavy result's bytes."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 300))
    return os.environ.get("OMP_NUM_THREADS"), (a @ a.T).tobytes()


@pytest.fixture(scope="session")
def ray_executor():
    """One real local Ray cluster of two CPUs for the whole session (Ray's local_mode no longer exists)."""
    pytest.importorskip("ray", reason="Ray is not installed (the `scale` extra: pip install -e '.[scale]')")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test jobs travel by value
    executor = Executor(workers=2, ray="local", retries=2)
    yield executor
    executor.close()


def _check_run(executor: Executor, tmp_path: Path) -> None:
    jobs = [Job(f"take{v}", square_job, (v, str(tmp_path / f"take{v}.txt")), tmp_path / f"take{v}.txt") for v in (3, -1, 4)]
    summary = executor.run(jobs)
    assert sorted(summary.done) == ["take3", "take4"]
    assert list(summary.failed) == ["take-1"] and "negative value -1" in summary.failed["take-1"]
    assert (tmp_path / "take4.txt").read_text() == "16" and not (tmp_path / "take-1.txt").exists()
    assert summary.results["take3"] == 9
    again = executor.run(jobs)  # a rerun skips what is done and retries what failed
    assert sorted(again.skipped) == ["take3", "take4"] and list(again.failed) == ["take-1"] and not again.done
    assert again.as_dict()["counts"] == {"done": 0, "skipped": 2, "failed": 1, "retried": 0}


@pytest.mark.parametrize("workers", [1, 2])
def test_local_run_skips_finished_takes_and_reports_failures_by_id(workers, tmp_path):
    with Executor(workers=workers) as executor:
        _check_run(executor, tmp_path)
        outcomes = executor.map(square_job, [(2,), (-5,), (7,)])
    assert outcomes[0] == 4 and outcomes[2] == 49
    assert isinstance(outcomes[1], ValueError) and "negative value -5" in str(outcomes[1])


@pytest.mark.slow
def test_local_pool_reruns_a_take_whose_worker_died(tmp_path):
    with Executor(workers=2, retries=2) as executor:
        outcomes = executor.map(die_once_job, [(str(tmp_path / "a"), 1), (str(tmp_path / "b"), 10)])
        assert outcomes == [2, 11]
        summary = executor.run([Job("doomed", always_die_job), Job("fine", square_job, (5,))])
    assert summary.done == ["fine"] and "died 3 times" in summary.failed["doomed"]
    assert len(summary.retried["doomed"]) >= 2 and summary.as_dict()["counts"]["retried"] >= 2  # each loss counted


def test_threads_are_pinned_and_results_equal_in_process_and_pool():
    with Executor(workers=1) as here, Executor(workers=2) as pool:
        in_process = here.map(threads_job, [()])[0]
        in_pool = pool.map(threads_job, [(), ()])
    assert in_process[0] == "1" and all(outcome[0] == "1" for outcome in in_pool)
    assert in_pool[0][1] == in_pool[1][1] == in_process[1]


def test_bad_arguments_are_named():
    with pytest.raises(ExecutorError, match="--workers"):
        Executor(workers=0)


@pytest.mark.slow
def test_ray_cluster_runs_retries_and_reports(ray_executor, tmp_path):
    assert "Ray" in ray_executor.describe()
    _check_run(ray_executor, tmp_path)
    outcomes = ray_executor.map(die_once_job, [(str(tmp_path / "a"), 1), (str(tmp_path / "b"), 10)])
    assert outcomes == [2, 11]  # each task's worker died once and the executor ran it again
    summary = ray_executor.run([Job("once", die_once_job, (str(tmp_path / "c"), 3))])
    assert summary.results["once"] == 4 and summary.retried["once"][0].startswith("WorkerCrashedError")
    assert summary.as_dict()["counts"]["retried"] == 1 and ray_executor.losses[-1]["item"] == "once"
    recording = tmp_path / "recording.mkv"
    recording.write_bytes(b"x" * 10)
    ray_executor.check_shared(tmp_path, [recording, tmp_path])  # one node, one file system: seen alike
    assert not (tmp_path / SHARED_PROBE).exists()
    crashed = ray_executor.map(always_die_job, [()])[0]
    assert isinstance(crashed, WorkerDied)
    pinned = ray_executor.map(threads_job, [()])[0]
    with Executor(workers=1) as here:
        assert pinned[0] == "1" and pinned[1] == here.map(threads_job, [()])[0][1]


def _release_bytes(folder: Path) -> dict[str, bytes]:
    """The release's files (hidden ones are the build's bookkeeping: reports, ownership marker, lock)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


@pytest.mark.slow
def test_release_is_byte_identical_with_1_2_workers_and_ray(ray_executor, tmp_path):
    """The same release from one process, `mmface4d build synthetic --workers 2` and Ray tasks."""
    from builders.build import build_synthetic_release

    options = dict(subjects=3, sentences=2, seed=5, num_vertices=800, progress=False)
    build_synthetic_release(tmp_path / "one", **options)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmface4d_datasets",
            "build",
            "synthetic",
            "--subjects",
            "3",
            "--sentences",
            "2",
            "--seed",
            "5",
            "--vertices",
            "800",
            "--workers",
            "2",
            "--quiet",
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    build_synthetic_release(tmp_path / "ray", executor=ray_executor, **options)
    one = _release_bytes(tmp_path / "one")
    assert any(name.startswith("data/") for name in one) and json.loads(done.stdout)["num_sequences"] == 6
    assert _release_bytes(tmp_path / "two") == one
    assert _release_bytes(tmp_path / "ray") == one


@pytest.mark.slow
def test_killed_parallel_build_resumes_to_the_same_bytes(tmp_path):
    """kill -9 of `mmface4d build synthetic --workers 2` mid-way; the rerun resumes from the staged takes."""
    import signal
    import time

    args = [
        sys.executable,
        "-m",
        "mmface4d_datasets",
        "build",
        "synthetic",
        "--subjects",
        "4",
        "--sentences",
        "2",
        "--seed",
        "2",
        "--vertices",
        "600",
        "--quiet",
        "--workers",
        "2",
        "--out",
    ]
    reference = subprocess.run(
        [*args[:-3], "--out", str(tmp_path / "reference")], capture_output=True, text=True, timeout=600
    )  # one worker, in its own process
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "killed"
    process = subprocess.Popen([*args, str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while len(list((out / ".staging").glob("*/*.npz"))) < 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the build ended before it could be interrupted"
        workers = [int(pid) for pid in subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()]
        assert len(workers) >= 2, "the build's pool workers were not found"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not (out / "meta" / "info.json").exists()
    while workers and time.monotonic() < deadline:  # the pool's workers end with their parent
        workers = [pid for pid in workers if _alive(pid)]
        time.sleep(0.2)
    assert not workers, f"workers of the killed build still running: {workers}"
    resumed = subprocess.run([*args, str(out)], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["resumed"], "the rerun did not pick up the staged takes"
    assert _release_bytes(out) == _release_bytes(tmp_path / "reference")


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie has ended


def test_a_node_that_sees_other_files_is_named(tmp_path):
    """The check each node runs for `Executor.check_shared`: what it does not see as the driver does."""
    from reconstruction.executor import _seen_here

    probe = tmp_path / SHARED_PROBE
    probe.write_text("token-b")
    (tmp_path / "take.mkv").write_bytes(b"12345")
    expected = {str(probe): 7, str(tmp_path / "take.mkv"): 5, str(tmp_path / "sessions"): -1}
    assert _seen_here(expected | {str(tmp_path): -1, str(probe): 7}, str(probe), "token-b") == [f"{tmp_path / 'sessions'}: no such folder"]
    missing = _seen_here(expected | {str(tmp_path / "take.mkv"): 6}, str(probe), "token-a")
    assert missing[0] == f"{probe}: another file than this machine's" and "take.mkv: another file" in missing[1]


def test_ray_token_is_found_where_ray_looks_and_a_missing_one_names_the_places(tmp_path, monkeypatch):
    from reconstruction.executor import RAY_TOKEN_PLACES, _token_message, ray_token_found

    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ray_token_found() is None
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("abc")
    assert ray_token_found() == str(tmp_path / ".ray" / "auth_token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "elsewhere"))  # named but absent: Ray stops there too
    assert ray_token_found() is None
    (tmp_path / "elsewhere").write_text("def")
    assert ray_token_found() == f"RAY_AUTH_TOKEN_PATH={tmp_path / 'elsewhere'}"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "ghi")
    assert ray_token_found() == "RAY_AUTH_TOKEN"
    message = _token_message("10.0.0.1:6379")
    assert all(place in message for place in RAY_TOKEN_PLACES) and str(tmp_path / ".ray" / "auth_token") in message
