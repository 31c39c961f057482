"""House rules checked by the README's test command: `ruff check` (lint; the rules are in
pyproject.toml), `ruff format --check` (the layout) and `lint-imports` (the layer contract of DESIGN.md, in pyproject.toml)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tool(name: str) -> str:
    """The tool installed beside this interpreter (setup.sh puts it in .venv through the dev extra)."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed (the dev extra of pyproject.toml; run ./setup.sh)")
        pytest.skip(f"{name} is not installed (the dev extra of pyproject.toml; run ./setup.sh)")
    return found


def test_ruff_finds_nothing():
    out = subprocess.run(
        [tool("ruff"), "check", "--no-cache", "--output-format", "concise", "."], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, f"ruff check found problems:\n{out.stdout}{out.stderr}"


def test_ruff_format_leaves_every_file_as_it_is():
    out = subprocess.run([tool("ruff"), "format", "--check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"run `ruff format .` (files it would change):\n{out.stdout}{out.stderr}"


def test_import_layers_hold():
    out = subprocess.run([tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "Contracts: 3 kept, 0 broken." in out.stdout, out.stdout[-4000:] + out.stderr
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr


def test_the_layer_contract_catches_a_core_import_of_an_upper_package(tmp_path):
    """The contract is not vacuous: a copy of the tree where the core imports the rig breaks it."""
    for name in ("mmface4d_datasets", "builders", "benchmark", "capture_rig", "reconstruction"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "mmface4d_datasets" / "paths.py", "a", encoding="utf-8") as f:
        f.write("\n\ndef _upward():\n    import capture_rig.plan  # noqa: F401\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    out = subprocess.run([tool("lint-imports"), "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode != 0 and "mmface4d_datasets.paths -> capture_rig.plan" in out.stdout, out.stdout[-4000:]
