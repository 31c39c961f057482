"""A plain install (no extra) loads a release in numpy format and validates it; calls that need an extra say which.

`setup.sh` makes `.venv-minimal` with `pip install -e .` (the plain dependencies only). This test builds a
small release here and runs the plain-install calls there in a subprocess. Where `.venv-minimal` is
absent the test skips, except in CI (`CI=true`), where it fails: CI must test the plain install.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from mmface4d_datasets.release.writer import write_release
from test_release_support import make_topology, small_sources

ROOT = Path(__file__).resolve().parents[1]
MINIMAL_PYTHON = ROOT / ".venv-minimal" / "bin" / "python"

SCRIPT = r"""
import json, sys
import numpy as np
import mmface4d_datasets
from mmface4d_datasets.loading import load_dataset
from mmface4d_datasets.release.validate import validate_release
from mmface4d_datasets.extras import MissingExtraError

out = {"present": sorted(m for m in ("torch", "scipy", "transformers", "matplotlib", "av", "trimesh", "espeakng_loader")
                        if __import__("importlib.util").util.find_spec(m) is not None)}
train = load_dataset(data_dir=sys.argv[1], split="train")
row = train.shuffle(seed=0).select([0])[0]
out["vertices"] = [str(row["vertices"].dtype), list(row["vertices"].shape)]
out["audio"] = [str(row["audio"]["array"].dtype), row["audio"]["sampling_rate"]]
out["problems"] = [str(p) for p in validate_release(sys.argv[1])]
for name, call in (("torch", lambda: train.with_format("torch")), ("mini", lambda: load_dataset(name="mini"))):
    try:
        call()
        out[name] = "no error"
    except MissingExtraError as exc:
        out[name] = str(exc)
print(json.dumps(out))
"""


def test_plain_install_loads_and_validates(tmp_path):
    if not MINIMAL_PYTHON.is_file():
        message = f"{MINIMAL_PYTHON} is missing: ./setup.sh creates the plain-install environment"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: the plain install must be tested)")
        pytest.skip(message)
    release = tmp_path / "release"
    write_release(small_sources(3, 3), release, topology=make_topology(), progress=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMFACE4D_", "PYTHON"))}
    env["HF_HOME"] = str(tmp_path / "hf_home")
    result = subprocess.run(
        [str(MINIMAL_PYTHON), "-c", SCRIPT, str(release)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["present"] == []  # none of the extras' packages is installed there
    assert out["vertices"] == ["float32", [out["vertices"][1][0], 480, 3]]
    assert out["audio"] == ["float32", 16000]
    assert out["problems"] == []
    assert "pip install 'mmface4d-datasets[torch]'" in out["torch"]
    assert "pip install 'mmface4d-datasets[synthetic]'" in out["mini"]
