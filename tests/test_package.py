"""The package's own promises: light imports and a discoverable command."""

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "matplotlib", "ray")


def test_importing_the_core_stays_light():
    code = f"import sys, json, mmface4d_datasets, mmface4d_datasets.cli;print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_command_lists_its_subcommands():
    out = subprocess.run([sys.executable, "-m", "mmface4d_datasets", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "could not be loaded" not in out.stderr, out.stderr
    for name in ("quickstart", "export"):
        assert name in out.stdout


def test_building_the_command_line_imports_only_the_standard_library():
    """Every `mmface4d` call loads all sub-command modules: they must not pull numpy in."""
    code = (
        "import sys, json; from mmface4d_datasets.cli import build_parser; build_parser();"
        "print(json.dumps([m for m in ('numpy', 'pyarrow', 'torch', 'datasets') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
