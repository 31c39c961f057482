"""`mmface4d facemodel show|info` and the renderer."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mmface4d_datasets.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_show_writes_a_png_of_the_embedded_model(tmp_path, capsys):
    out = tmp_path / "pictures" / "face.png"
    assert main(["facemodel", "show", "--vertices", "800", "--seed", "2", "--out", str(out)]) == 0
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000
    assert "synthetic_v1@800" in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == ["face.png"]  # no temporary file left behind


def test_rendered_regions_are_coloured(tmp_path):
    """Decode the picture: each region's colour really appears in it."""
    import matplotlib.image

    from mmface4d_datasets.facemodel import load_face_model
    from mmface4d_datasets.facemodel.render import REGION_COLOURS, render_face_model

    model = load_face_model(num_vertices=800)
    path = render_face_model(model, tmp_path / "r.png", number_landmarks=False)
    pixels = matplotlib.image.imread(path)[..., :3]
    for name in ("lips", "eyes", "nose", "forehead"):
        colour = np.array(matplotlib.colors.to_rgb(REGION_COLOURS[name]))
        # shaded colours are the region colour times a brightness factor: compare hue directions
        norms = np.linalg.norm(pixels, axis=-1) * np.linalg.norm(colour)
        cosine = np.divide(pixels @ colour, norms, out=np.zeros(pixels.shape[:2]), where=norms > 0)
        assert (cosine > 0.995).sum() > 200, name


def test_info_of_the_bfm_topology_needs_only_the_public_file(official_sample, capsys):
    code = main(["facemodel", "info", "--model", "bfm", "--bfm-info", str(official_sample / "BFM" / "facemodel_info.mat")])
    assert code == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["topology"] == "bfm_front" and facts["num_vertices"] == 35709 and facts["num_triangles"] == 70789
    assert facts["region_rule_version"] == "hop_bands_v2" and facts["region_sizes"]["face"] == 35709
    assert len(facts["keypoints"]) == 68


def test_info_of_the_embedded_model(capsys):
    assert main(["facemodel", "info", "--vertices", "600"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["topology"] == "synthetic_v1@600" and facts["num_vertices"] == 600
    assert all(size > 0 for size in facts["region_sizes"].values())


def test_user_errors_exit_2_with_a_message(tmp_path, capsys):
    assert main(["facemodel", "show", "--model", "bfm", "--out", str(tmp_path / "x.png")]) == 2
    assert "--bfm-dir" in capsys.readouterr().err
    assert main(["facemodel", "show", "--model", "bfm", "--bfm-dir", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert "01_MorphableModel.mat does not exist" in capsys.readouterr().err
    assert main(["facemodel", "show", "--vertices", "10", "--out", str(tmp_path / "x.png")]) == 2
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("module", ["mmface4d_datasets.facemodel.cli", "mmface4d_datasets.facemodel"])
def test_importing_the_command_module_stays_on_the_standard_library(module):
    code = f"import sys, {module}; print(json.dumps(sorted(m for m in ('numpy', 'scipy', 'matplotlib', 'torch') if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
