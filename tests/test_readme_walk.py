"""The README's promises to a newcomer: what the project is on its first screen, the two commands first,
figures held to setup.sh, nothing pointing outside the repository; and its user path walked on a fresh
copy of the repository in a temporary folder (no `../shared` beside it, an empty cache, no network)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
FIRST_COMMANDS = ["./setup.sh && .venv/bin/mmface4d quickstart", "./setup.sh && .venv/bin/python -m pytest"]


def test_the_first_screen_says_what_this_is_then_the_two_commands():
    lines = README.splitlines()
    assert lines[0] == "# mmface4d-datasets"
    before_commands = README[: README.index("```")]
    assert "MMFace4D" in before_commands and "audio-driven 3D face animation" in before_commands  # what, and for whom
    commands = re.findall(r"```bash\n(.*?)\n```", README, flags=re.S)
    assert commands[:2] == FIRST_COMMANDS  # CI runs the second as written
    assert README.index(FIRST_COMMANDS[1]) < 40 * 80  # both within the first screen or so


def test_setup_figures_name_what_setup_sh_installs():
    setup = (ROOT / "setup.sh").read_text(encoding="utf-8")
    extras = re.findall(r'-e "\.\[([a-z,]+)\]"', setup)
    assert extras, "setup.sh installs the package with extras"
    for extra in extras:
        assert f"`.[{extra}]`" in README, f"README does not name the extras setup.sh installs: .[{extra}]"
    assert re.search(r"\d,\d{3} MB", README[: README.index("**The authors' sample take**")])  # the sizes are on the first page


def test_no_user_facing_text_points_outside_the_repository():
    texts = {"README.md": README} | {f"docs/{p.name}": p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md")}
    offenders = [name for name, text in texts.items() if "../shared" in text]
    assert offenders == []


def _fresh_copy(target: Path) -> Path:
    """What a clone holds: the files git tracks (and new ones not ignored), nothing else."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):  # no git here: copy the tree without environments and caches
        ignore = shutil.ignore_patterns(".git", ".venv*", "__pycache__", "*.egg-info", ".pytest_cache")
        shutil.copytree(ROOT, target, ignore=ignore, symlinks=True)
        return target
    for name in filter(None, (raw.decode() for raw in listed)):
        source = ROOT / name
        if source.is_file() or source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name, follow_symlinks=False)
    return target


@pytest.mark.slow
def test_the_readme_user_path_on_a_fresh_copy(tmp_path):
    clone = _fresh_copy(tmp_path / "clone" / "mmface4d-datasets")
    assert not (clone.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMFACE4D_")}
    # set-up is taken as done (this interpreter's environment); the copy's code runs, from the copy
    env |= {"PYTHONPATH": str(clone), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "MMFACE4D_CACHE": str(tmp_path / "cache")}

    def step(*args, code: str | None = None, rc: int = 0) -> subprocess.CompletedProcess:
        command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "mmface4d_datasets", *map(str, args)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=clone)
        assert done.returncode == rc, (args or code, done.stdout[-1500:], done.stderr[-3000:])
        return done

    def first_line(text: str) -> str:
        return next(line for line in text.splitlines() if line.strip())

    quick = step("quickstart", "--train-seconds", "5")
    assert first_line(quick.stdout) == "1. The authors' sample take"
    assert "github.com/wuhaozhe/4d_reconstruction" in quick.stdout and "--fixtures DIR" in quick.stdout
    assert quick.stdout.count("step took") == 8 and "train mmface4d" in quick.stderr  # timings; a progress bar
    summary = json.loads((clone / "mmface4d-quickstart" / "summary.json").read_text())["steps"]
    # the copy's code ran: it looked beside the copy, where a clone has nothing
    assert summary["sample"]["status"] == "skipped" and summary["sample"]["looked_in"][0].startswith(str(clone.parent))
    assert [summary[name]["status"] for name in ("mini", "static", "train", "score", "leaderboard")] == ["ok"] * 5
    static, trained = summary["static"]["metrics_m"], summary["score"]["metrics_m"]
    assert all(0 < value < 0.05 for value in (*static.values(), *trained.values()))  # metres, plausible
    board = (clone / "mmface4d-quickstart" / "benchmark" / "leaderboard.md").read_text()
    assert "| static |" in board and "| mmface4d |" in board and "paper, own data" in board

    mini = Path(summary["mini"]["release_dir"])
    run = step("bench", "run", "--model", "static", "--data", "mini", "--out", "runs/static", "--bootstrap", "20", "--quiet")
    assert first_line(run.stdout) == "# MMFace4D benchmark: static" and str(mini) in run.stderr
    stats = step("stats", "mini", "--out", "figs", "--quiet")
    assert first_line(stats.stdout) == "{" and json.loads(stats.stdout)["release"] == str(mini)
    assert first_line(step("validate", "mini").stdout) == "mini: valid"
    test_id = json.loads((clone / "runs" / "static" / "report.json").read_text())["sequences"][0]["id"]
    rendered = step("render", "--data", "mini", "--id", test_id, "--out", "one.mp4", "--size", "96x96", "--quiet")
    assert first_line(rendered.stdout).startswith("wrote one.mp4") and (clone / "one.mp4").stat().st_size > 0
    loaded = step(
        code="from mmface4d_datasets import load_dataset; train = load_dataset('mmface4d', name='mini', split='train'); "
        "print(train.num_rows, train[0]['vertices'].shape)"
    )
    assert first_line(loaded.stdout) == f"{summary['mini']['sequences']['train']} (180, 1000, 3)"
    missing = step("validate", "/nonexistent/release", rc=2)
    assert first_line(missing.stderr) == (
        "mmface4d validate: error: /nonexistent/release: no such release folder (and not `mini`, a cached release or a Hub `owner/name`)"
    )
