"""The whole main job, `mmface4d quickstart`, end to end with the benchmark's steps (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mmface4d_datasets.quickstart import STEPS, all_steps


def test_the_benchmark_plugs_its_steps_in_after_the_core():
    names = [step.name for step in all_steps()]
    assert names[: len(STEPS)] == [step.name for step in STEPS]
    assert names[len(STEPS) :] == ["static", "train", "score", "leaderboard"]


@pytest.mark.slow
def test_quickstart_runs_end_to_end_on_embedded_defaults(tmp_path):
    env = dict(os.environ, MMFACE4D_CACHE=str(tmp_path / "cache"))
    out = tmp_path / "qs"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmface4d_datasets",
            "quickstart",
            "--out",
            str(out),
            "--train-seconds",
            "8",
            "--sample",
            str(tmp_path / "no-sample"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    steps = json.loads((out / "summary.json").read_text())["steps"]
    assert steps["sample"]["status"] == "skipped"  # pointed at an empty folder on purpose
    assert [steps[name]["status"] for name in ("mini", "static", "train", "score", "leaderboard")] == ["ok"] * 5
    assert steps["train"]["step"] >= 1
    static, trained = steps["static"]["metrics_m"], steps["score"]["metrics_m"]
    assert all(0 < value < 0.05 for value in (*static.values(), *trained.values()))  # metres, plausible
    board = (out / "benchmark" / "leaderboard.md").read_text()
    assert "| static |" in board and "| mmface4d |" in board and "paper, own data" in board
    assert "8. Leaderboard" in done.stdout
