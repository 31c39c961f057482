"""The recorder's tests, run in the recording environment (.venv-rig: numpy < 2, pyk4a-bundle).

`./setup.sh` makes .venv-rig (through ./setup-rig.sh), so the README's test command runs the
recorder against the real pyk4a there. Where .venv-rig is absent the test skips, except in CI
(CI=true), where it fails: CI must prove the recording environment builds and passes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RIG_PYTHON = ROOT / ".venv-rig" / "bin" / "python"


def rig_python() -> Path:
    if not RIG_PYTHON.exists():
        message = f"the recording environment is missing ({RIG_PYTHON}); ./setup-rig.sh makes it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return RIG_PYTHON


def test_recorder_tests_pass_in_the_recording_environment():
    python = rig_python()
    result = subprocess.run(
        [str(python), "-m", "pytest", "tests/test_rig_recorder.py", "-q", "-p", "no:cacheprovider", "-rs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "skipped" not in result.stdout.splitlines()[-1], result.stdout[-2000:]  # pyk4a really ran


def test_recording_environment_holds_numpy_1_pyk4a_and_sounddevice():
    python = rig_python()
    code = (
        "import ctypes.util, json, numpy, pyk4a\n"
        "portaudio = ctypes.util.find_library('portaudio')\n"
        "if portaudio:\n    import sounddevice\n"
        "else:\n    import importlib.util; assert importlib.util.find_spec('sounddevice')\n"
        "print(json.dumps({'numpy': numpy.__version__, 'portaudio': portaudio}))"
    )
    result = subprocess.run([str(python), "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith('{"numpy": "1.')
    assert sys.executable != str(python)
