"""The codec's format is pinned by committed golden vectors (tests/data/codec_golden, written by
make_codec_golden.py there): each stored stream decodes to the stored float32 bits, the encoder still
makes exactly the stored bytes of each stored array, and the authors' sample take encodes and decodes
to the recorded hashes. A failure here means the format (or the encoder's output) changed: releases
written before would no longer read back bit for bit, or rebuilt releases would differ."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from mmface4d_datasets import codec

GOLDEN = Path(__file__).resolve().parent / "data" / "codec_golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.npz"))


def load(name: str) -> dict:
    with np.load(GOLDEN / f"{name}.npz") as z:
        return {k: z[k] for k in z.files}


def test_the_golden_set_covers_every_mode_and_section():
    assert len(CASES) >= 20
    seen_modes, nonempty = set(), set()
    for name in CASES:
        case = load(name)
        assert str(case["codec_version"]) == codec.CODEC_VERSION
        info = codec.peek(case["encoded"].tobytes())
        seen_modes.add(info["mode"])
        nonempty |= {s for s, v in info.get("sections", {}).items() if v["raw_bytes"] > 0}
        if name == "grid_beyond_int32":
            assert info["grid_levels"] >= 2**31
        if name.startswith("temporal_weight_"):
            assert info["temporal_weight"] == int(name[-1]) / 4
    assert seen_modes == {"empty", "raw-float32", "grid"}
    assert {"RAWF", "RESN", "RESX", "SEGS", "SREF", "EXIX", "EXVL"} <= nonempty


@pytest.mark.parametrize("name", CASES)
def test_golden_stream_decodes_to_the_golden_bits(name):
    case = load(name)
    decoded = codec.decode(case["encoded"].tobytes())
    assert decoded.dtype == np.float32 and decoded.shape == case["decoded"].shape
    assert decoded.tobytes() == case["decoded"].tobytes()
    if float(case["max_error"]) > 0 and decoded.size:
        assert np.abs(decoded.astype(np.float64) - case["vertices"]).max() <= float(case["max_error"])
    elif decoded.size:
        assert decoded.tobytes() == case["vertices"].tobytes()


@pytest.mark.parametrize("name", CASES)
def test_encoder_makes_the_golden_bytes(name, monkeypatch):
    case = load(name)
    weight = int(case["temporal_weight"])
    if weight >= 0:
        monkeypatch.setattr(codec, "_best_temporal_weight", lambda residual: weight)
    assert codec.encode(case["vertices"], float(case["max_error"])) == case["encoded"].tobytes()


def test_sample_take_encodes_and_decodes_to_the_recorded_hashes(official_sample):
    from mmface4d_datasets import official

    pin = json.loads((GOLDEN / "official_sample.json").read_text(encoding="utf-8"))
    vertices = official.read_mesh_sequence(official_sample / "reconstruct_filt", pin["shape"][1])
    assert list(vertices.shape) == pin["shape"]
    assert hashlib.sha256(np.ascontiguousarray(vertices, np.float32).tobytes()).hexdigest() == pin["input_sha256"]
    assert len(pin["streams"]) == 3
    for stream in pin["streams"]:
        encoded = codec.encode(vertices, stream["max_error"])
        assert codec.peek(encoded)["mode"] == "grid"
        assert hashlib.sha256(encoded).hexdigest() == stream["encoded_sha256"], stream["max_error"]
        decoded = codec.decode(encoded)
        assert hashlib.sha256(decoded.tobytes()).hexdigest() == stream["decoded_sha256"], stream["max_error"]
        assert float(np.abs(decoded.astype(np.float64) - vertices).max()) <= stream["max_error"]
