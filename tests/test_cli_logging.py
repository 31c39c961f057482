"""Library code reports through module loggers; the `mmface4d` entry shows them on stderr (mmface4d_datasets/cli.py)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("mmface4d_datasets", "builders", "benchmark", "capture_rig", "reconstruction")


def test_the_handler_writes_to_the_stderr_of_the_moment_once():
    from mmface4d_datasets.cli import command_packages, log_to_stderr

    assert command_packages()[0] == "mmface4d_datasets" and {"builders", "benchmark"} <= set(command_packages())
    log_to_stderr()
    log_to_stderr()  # idempotent: one line per record, however often main() runs in a process
    first, second = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(first):
        logging.getLogger("builders.some_module").info("a note from %s", "the library")
    with contextlib.redirect_stderr(second):
        logging.getLogger("mmface4d_datasets.release.writer").warning("a warning")
    assert first.getvalue() == "a note from the library\n" and second.getvalue() == "a warning\n"


def test_library_modules_do_not_print():
    """`print(` only in command modules (cli.py, *_cli.py, and the handlers' part of modules holding a register)."""
    offenders = []
    for package in LIBRARY:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "cli.py" or path.name.endswith("_cli.py") or "recorder" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            if "def register(" in text:  # a command module: its handlers print their results
                continue
            if re.search(r"(?<![\w.])print\(|=\s*print\b", text):  # a call, or print as a default logger
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], f"library modules that print: {offenders}"


def test_build_stdout_holds_only_the_json_summary_and_notes_reach_stderr(tmp_path):
    out = tmp_path / "out"
    args = [
        sys.executable,
        "-m",
        "mmface4d_datasets",
        "build",
        "synthetic",
        "--subjects",
        "2",
        "--sentences",
        "1",
        "--vertices",
        "500",
        "--out",
        str(out),
    ]
    first = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["num_sequences"] == 2  # progress bars and notes never reach stdout
    (out / "data" / "users.parquet").write_bytes(b"not ours")
    second = subprocess.run(args + ["--quiet"], capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    json.loads(second.stdout)
    assert "users.parquet was not written by mmface4d; left in place" in second.stderr  # the writer's logger
