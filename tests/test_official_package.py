"""`mmface4d_datasets.official` is a package with one module per format; its top level re-exports every
public name, and importing it stays light enough for the recorder's numpy-only environment."""

from __future__ import annotations

import subprocess
import sys

from mmface4d_datasets import official
from mmface4d_datasets.official import audio, calibration, landmarks, mesh, takes


def test_every_public_name_is_the_format_modules_object():
    homes = {}
    for module in (mesh, audio, calibration, landmarks, takes):
        homes |= {name: module for name in dir(module) if not name.startswith("_") and name in official.__all__}
    assert official.__all__ and len(set(official.__all__)) == len(official.__all__)
    for name in official.__all__:
        assert hasattr(official, name), name
        if name in homes:
            assert getattr(official, name) is getattr(homes[name], name), name
    # the names callers use, one per module
    assert official.read_mesh_sequence is mesh.read_mesh_sequence and official.write_audio is audio.write_audio
    assert official.read_intrinsics is calibration.read_intrinsics and official.read_landmarks is landmarks.read_landmarks
    assert official.find_takes is takes.find_takes and official.Take is takes.Take


def test_import_needs_numpy_only():
    code = (
        "import sys, mmface4d_datasets.official; "
        "print(sorted(m for m in ('av', 'soundfile', 'scipy', 'torch', 'pyarrow', 'pandas', 'datasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
