"""The codec's formats are pinned by committed golden vectors, one folder per format version
(tests/data/codec_golden/v2, v3; written by make_codec_golden.py there): each stored stream decodes to
the stored float32 (exactly for the element-wise modes; within the stream's float32 rounding margin for
the low-rank mode, whose product runs in BLAS), the encoder still makes exactly the stored bytes of each
stored array (``encode(..., version=V)``), and the authors' sample take encodes to the recorded hashes.
A failure here means a format (or the encoder's output) changed: releases written before would no longer
read back, or rebuilt releases would differ."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from mmface4d_datasets import codec

GOLDEN = Path(__file__).resolve().parent / "data" / "codec_golden"
VERSIONS = ("2", "3")
CASES = [(version, p.stem) for version in VERSIONS for p in sorted((GOLDEN / f"v{version}").glob("*.npz"))]


def load(version: str, name: str) -> dict:
    with np.load(GOLDEN / f"v{version}" / f"{name}.npz") as z:
        return {k: z[k] for k in z.files}


def lowrank_margin(info: dict) -> float:
    """The float32 rounding margin a low-rank stream reserved: max_error - residual step / (2 (1 - 2**-20))."""
    return info["max_error"] - info["step"] / (2.0 * codec._STEP_FRACTION)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_golden_set_covers_every_mode_and_section(version):
    names = [name for v, name in CASES if v == version]
    assert len(names) >= 14
    seen_modes, nonempty = set(), set()
    for name in names:
        case = load(version, name)
        assert str(case["codec_version"]) == version
        info = codec.peek(case["encoded"].tobytes())
        assert info["codec_version"] == version
        seen_modes.add(info["mode"])
        nonempty |= {s for s, v in info.get("sections", {}).items() if v["raw_bytes"] > 0}
        if name == "grid_beyond_int32":
            assert info["grid_levels"] >= 2**31
        if name.startswith("temporal_weight_"):
            assert info["temporal_weight"] == int(name[-1]) / 4
    common = {"RAWF", "RESN", "RESX", "SEGS", "SREF", "EXIX", "EXVL"}
    if version == "2":
        assert seen_modes == {"empty", "raw-float32", "grid"} and common <= nonempty
    else:
        assert seen_modes == {"empty", "raw-float32", "grid", "lowrank"}
        assert common - {"SEGS", "SREF"} | {"CHNK", "STPS", "TCOF", "MAPS", "MAPX", "RPOS", "RVAL", "SEGS"} <= nonempty
        chunked = codec.peek(load("3", "chunks_3")["encoded"].tobytes())
        assert chunked["sections"]["CHNK"]["raw_bytes"] == 6  # three chunks of (frames, components), one byte each


@pytest.mark.parametrize("version, name", CASES)
def test_golden_stream_decodes_to_the_golden_values(version, name):
    case = load(version, name)
    data = case["encoded"].tobytes()
    decoded = codec.decode(data)
    assert decoded.dtype == np.float32 and decoded.shape == case["decoded"].shape
    info = codec.peek(data)
    if info["mode"] == "lowrank":
        margin = lowrank_margin(info)
        assert 0 < margin <= info["max_error"] / 2
        # both decodings lie within the margin of the same exact value
        assert np.abs(decoded.astype(np.float64) - case["decoded"]).max() <= 2 * margin
    else:
        assert decoded.tobytes() == case["decoded"].tobytes()
    if float(case["max_error"]) > 0 and decoded.size:
        assert np.abs(decoded.astype(np.float64) - case["vertices"]).max() <= float(case["max_error"])
    elif decoded.size:
        assert decoded.tobytes() == case["vertices"].tobytes()


@pytest.mark.parametrize("version, name", CASES)
def test_encoder_makes_the_golden_bytes(version, name, monkeypatch):
    case = load(version, name)
    weight = int(case["temporal_weight"])
    if weight >= 0:
        monkeypatch.setattr(codec, "_best_temporal_weight", lambda residual: weight)
    assert codec.encode(case["vertices"], float(case["max_error"]), version=version) == case["encoded"].tobytes()


def test_the_default_is_the_newest_version():
    case = load("3", "face_lowrank_1e-05")
    assert codec.CODEC_VERSION == "3"
    assert codec.encode(case["vertices"], float(case["max_error"])) == case["encoded"].tobytes()


@pytest.mark.parametrize("version", VERSIONS)
def test_sample_take_encodes_and_decodes_to_the_recorded_hashes(official_sample, version):
    from mmface4d_datasets import official

    pin = json.loads((GOLDEN / f"v{version}" / "official_sample.json").read_text(encoding="utf-8"))
    vertices = official.read_mesh_sequence(official_sample / "reconstruct_filt", pin["shape"][1])
    assert list(vertices.shape) == pin["shape"]
    assert hashlib.sha256(np.ascontiguousarray(vertices, np.float32).tobytes()).hexdigest() == pin["input_sha256"]
    assert len(pin["streams"]) == 3
    for stream in pin["streams"]:
        encoded = codec.encode(vertices, stream["max_error"], version=version)
        assert codec.peek(encoded)["mode"] == ("grid" if version == "2" else "lowrank")
        assert hashlib.sha256(encoded).hexdigest() == stream["encoded_sha256"], stream["max_error"]
        decoded = codec.decode(encoded)
        if version == "2":  # element-wise arithmetic: the same bits on every machine
            assert hashlib.sha256(decoded.tobytes()).hexdigest() == stream["decoded_sha256"], stream["max_error"]
        assert float(np.abs(decoded.astype(np.float64) - vertices).max()) <= stream["max_error"]
