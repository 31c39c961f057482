"""`mmface4d bench ...` end to end on a small release, and the light-import promise."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mmface4d_datasets.release.reader import Release
from mmface4d_datasets.release.writer import write_release
from test_release_support import make_topology, small_sources


def bench(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "mmface4d_datasets", "bench", *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd
    )


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-cli") / "release"
    write_release(small_sources(4, 3, frames=12), out, topology=make_topology(), progress=False)
    return out


def test_importing_the_benchmark_stays_light():
    code = (
        "import sys, json, benchmark, benchmark.cli;"
        "light = [m for m in ('numpy', 'pyarrow', 'torch') if m in sys.modules];"
        "import benchmark.metrics, benchmark.submission, benchmark.scoring, benchmark.report, "
        "benchmark.leaderboard, benchmark.protocol, benchmark.models, benchmark.models.static;"
        "heavy = [m for m in ('torch', 'transformers', 'matplotlib', 'ray') if m in sys.modules];"
        "print(json.dumps([light, heavy]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [[], []]


def test_help_lists_the_bench_commands():
    out = bench("--help")
    assert out.returncode == 0
    for name in ("score", "validate", "write-submission", "run", "leaderboard", "models", "train"):
        assert name in out.stdout


def test_run_static_writes_submission_and_reports(release_dir, tmp_path):
    out = bench(
        "run",
        "--model",
        "static",
        "--data",
        release_dir,
        "--out",
        tmp_path / "static",
        "--bootstrap",
        100,
        "--quiet",
        "--convention",
        "codetalker",
    )
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "static" / "report.json").read_text())
    assert report["ok"] and report["model"] == "static"
    assert report["num_sequences"] == len(Release(release_dir).sequences("test"))
    assert report["metrics"]["authors"]["values"]["lip_max"]["value"] > 0
    assert "lve_sq" in report["metrics"]["codetalker"]["values"]
    assert (tmp_path / "static" / "report.md").read_text().startswith("# MMFace4D benchmark: static")
    assert "lip_max" in out.stdout

    board = bench("leaderboard", tmp_path / "static" / "report.json", "--csv", tmp_path / "board.csv")
    assert board.returncode == 0, board.stderr
    assert "| 1 | static |" in board.stdout and "paper, own data" in board.stdout
    assert (tmp_path / "board.csv").read_text().count("\n") == 5


def test_write_submission_from_npy_then_score(release_dir, tmp_path):
    release = Release(release_dir)
    folder = tmp_path / "preds"
    for record in release.iter_records("test"):
        path = folder / f"{record['id']}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, record["vertices"])
    submission = tmp_path / "mine.parquet"
    out = bench("write-submission", folder, "--out", submission, "--model", "copycat", "--data", release_dir, "--encoding", "float32le")
    assert out.returncode == 0, out.stderr
    out = bench("score", submission, "--data", release_dir, "--out", tmp_path / "mine.json", "--bootstrap", 50, "--quiet")
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "mine.json").read_text())
    assert report["metrics"]["authors"]["values"]["face_max"]["value"] == 0.0
    assert report["submission"]["header"]["model"] == "copycat"


def test_score_reports_a_bad_file_and_exits_1(release_dir, tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not a parquet file")
    out = bench("score", bad, "--data", release_dir, "--out", tmp_path / "bad.json", "--quiet")
    assert out.returncode == 1
    assert "unreadable" in out.stderr and "Traceback" not in out.stderr
    assert "no report written" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet"]  # a rejected file writes nothing
    default = bench("score", bad, "--data", release_dir, "--quiet")  # nor beside it (<name>.report.json / .md)
    assert default.returncode == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet"]
    validate = bench("validate", bad, "--data", release_dir)
    assert validate.returncode == 1 and "unreadable" in validate.stdout


def test_unknown_model_is_a_clean_error(release_dir, tmp_path):
    out = bench("run", "--model", "nope", "--data", release_dir, "--out", tmp_path / "x")
    assert out.returncode == 2 and "unknown model" in out.stderr and "Traceback" not in out.stderr
