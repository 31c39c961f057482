"""One vocabulary: the shared facts live in mmface4d_datasets.vocabulary, and the older public names are
the same objects (re-exports), not copies."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmface4d_datasets import vocabulary as v
from mmface4d_datasets.errors import FormatError, MMFace4DError

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mmface4d_datasets", "builders", "benchmark", "capture_rig", "reconstruction")


def test_the_facts():
    assert (v.FPS, v.SAMPLE_RATE) == (30, 16000)
    assert v.EMOTION_OF_PREFIX == {
        "00": "neutral",
        "21": "happy",
        "22": "angry",
        "23": "sad",
        "24": "surprise",
        "25": "fear",
        "26": "disgust",
    }
    assert v.EMOTION_INDEX_OF_PREFIX == {"00": 0, "21": 1, "22": 2, "23": 3, "24": 4, "25": 5, "26": 6}
    assert v.PREFIX_OF_EMOTION["disgust"] == "26"
    assert (v.BFM_TOPOLOGY, v.BFM_NUM_VERTICES, v.BFM_NUM_TRIANGLES) == ("bfm_front", 35709, 70789)
    assert v.synthetic_topology_name(5023) == "synthetic_v1@5023"
    assert v.topology_num_vertices("synthetic_v1@5023") == 5023 and v.topology_num_vertices("bfm_front") == 35709
    for bad in ("synthetic_v1@", "synthetic_v2@10", "foo", "synthetic_v1@12x"):
        with pytest.raises(FormatError, match="unknown face topology"):
            v.topology_num_vertices(bad)


def test_old_names_are_the_vocabulary():
    from benchmark import features, protocol, training
    from builders import sources
    from capture_rig import simulate
    from capture_rig.recorder import audio, rig
    from mmface4d_datasets import loading, official, quickstart, take_files, torch_data
    from mmface4d_datasets.facemodel import bfm, embedded
    from mmface4d_datasets.release import schema
    from mmface4d_datasets.render import video
    from mmface4d_datasets.synthetic import corpus, speech, takes
    from reconstruction import cli

    for module in (official, takes, video, take_files, torch_data, protocol, features, training, simulate):
        assert module.FPS is v.FPS, module.__name__
    for module in (official, speech, takes, loading, torch_data, protocol, features, audio, rig):
        assert module.SAMPLE_RATE is v.SAMPLE_RATE, module.__name__
    assert schema.EMOTION_NAMES is v.EMOTION_NAMES and corpus.EMOTIONS is v.EMOTION_NAMES
    assert schema.EMOTION_PREFIXES is v.EMOTION_INDEX_OF_PREFIX and corpus.EMOTION_PREFIXES is v.EMOTION_OF_PREFIX
    assert bfm.BFM_NUM_VERTICES == sources.BFM_FRONT_VERTICES == cli.DEFAULT_VERTICES == quickstart.BFM_NUM_VERTICES == 35709
    assert sources.topology_num_vertices is v.topology_num_vertices
    assert embedded.parse_synthetic_topology is v.parse_synthetic_topology
    with pytest.raises(MMFace4DError):  # callers catching MMFace4DError still catch it
        embedded.parse_synthetic_topology("bfm_front")


def test_each_fact_has_one_definition():
    """No module other than the vocabulary assigns these facts (a grep over the packages)."""
    pattern = re.compile(
        r"^\s*(FPS|SAMPLE_RATE|EMOTION_NAMES|EMOTIONS|BFM_NUM_VERTICES|BFM_FRONT_VERTICES|BFM_NUM_TRIANGLES"
        r"|BFM_TOPOLOGY|BFM_FRONT|TOPOLOGY_PREFIX)\s*(:[^=]*)?=\s*([\d_.]+|\"[^\"]*\"|\(\s*\")",
        re.M,
    )
    literals = re.compile(r"=\s*\{\s*\"00\"|\"synthetic_v1@\"|\b35_?709\b(?!,)|\b70_?789\b")
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "vocabulary.py":
                continue
            text = path.read_text(encoding="utf-8")
            code = "\n".join(line.split("#")[0] for line in text.splitlines() if not line.lstrip().startswith(("#", '"', "'")))
            found += [f"{path.relative_to(ROOT)}: {m.group(0).strip()}" for m in pattern.finditer(text)]
            found += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in literals.finditer(code)]
    assert found == []


def test_vocabulary_imports_nothing_heavy():
    code = "import sys, mmface4d_datasets.vocabulary; print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'pyarrow', 'torch')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
