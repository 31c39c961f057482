"""Writes the codec's golden vectors (tests/test_codec_golden.py reads them), one folder per format
version (``v2/``, ``v3/``): small float32 arrays, the bytes ``mmface4d_datasets.codec.encode(...,
version=V)`` makes of them, and the float32 arrays ``decode`` gives back.

Run it only when a format changes on purpose (a new format gets a new ``codec.CODEC_VERSION`` and its
own folder; an old folder is rewritten only to prove the encoder still makes its bytes):

    .venv/bin/python tests/data/codec_golden/make_codec_golden.py 3 [OUT_DIR]

One .npz per case: ``vertices`` (T, N, 3) float32, ``max_error``, ``temporal_weight`` (the encoder's
choice forced to this value, -1: left to the encoder), ``encoded`` (uint8 bytes) and ``decoded``.
Format 2's cases cover each mode and section of format 2: a smooth face at three bounds, white noise
whose residuals all escape (RESX), scanned rows (SEGS), every temporal weight, a grid beyond int32
levels, float32 exceptions (EXIX/EXVL), raw float32 (bound 0) and tiny and empty shapes. Format 3's
add the low-rank mode: smooth faces at two bounds, scanned rows, several chunks, a constant sequence
(no components), random walks, and keep the grid, raw and empty modes of format 3.
With the authors' sample take present (as the tests find it), ``official_sample.json`` also records the
sha256 of its encoded bytes and of the decoded float32 bits at three bounds (the take itself is never
copied here). Low-rank decoding multiplies in float32 BLAS, whose rounding may differ between
machines within the stream's margin: its decoded bits are recorded as this machine made them.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from mmface4d_datasets import codec

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the tests' own array makers (the stored arrays are the pin)
from test_codec import talking_face  # noqa: E402


def scanned_surface(num_frames: int, row_lengths: list[int], seed: int, noise: float = 2e-6) -> np.ndarray:
    """Rows of a scanned sheet (so the encoder stores segment references), moving smoothly."""
    rng = np.random.default_rng(seed)
    rows = [
        np.stack([np.linspace(-0.08, 0.08, length), np.full(length, 0.01 * r), np.zeros(length)], axis=1)
        for r, length in enumerate(row_lengths)
    ]
    surface = np.concatenate(rows)
    time = np.linspace(0.0, 1.0, num_frames)[:, None, None]
    bump = 0.004 * np.sin(6.0 * surface[None, :, :1] + 3.0 * time) * np.cos(4.0 * surface[None, :, 1:2])
    noise = rng.normal(0.0, noise, (num_frames, surface.shape[0], 3))
    return (surface[None] + bump + noise).astype(np.float32)


def cases_v2():
    """(name, vertices, max_error, forced temporal weight or -1) of format 2."""
    for bound in (1e-5, 1e-6, 1e-7):
        yield f"face_{bound:.0e}", talking_face(6, 200), bound, -1
    yield "white_noise_escapes", np.random.default_rng(0).uniform(-1.0, 1.0, (4, 151, 3)).astype(np.float32), 1e-4, -1
    for bound in (1e-5, 5e-7):
        yield f"scanned_rows_{bound:.0e}", scanned_surface(8, [40, 55, 37, 60, 48, 52], seed=1), bound, -1
    for weight in range(4):
        yield f"temporal_weight_{weight}", scanned_surface(6, [30, 44, 35, 41] * 2, seed=2), 1e-6, weight
    beyond = talking_face(4, 50)
    beyond[0, 0, 0] = -0.5  # 1 m range at 0.1 nm: about 3e9 grid levels, 64-bit sums
    yield "grid_beyond_int32", beyond, 1e-10, -1
    far = talking_face(3, 200)
    far[:, :3] += np.float32(300.0)  # float32 spacing there rivals the bound: exceptions
    yield "float32_exceptions", far, 1.6e-5, -1
    for shape in ((1, 1, 3), (1, 2, 3), (2, 1, 3), (0, 5, 3), (3, 0, 3)):
        tiny = np.random.default_rng(4).uniform(-0.1, 0.1, shape).astype(np.float32)
        label = "x".join(map(str, shape))
        yield f"tiny_{label}", tiny, 1e-5, -1
        yield f"tiny_{label}_raw", tiny, 0.0, -1
    yield "face_raw", talking_face(3, 40), 0.0, -1
    for seed in range(2):
        rng = np.random.default_rng(seed)
        num_frames, num_vertices = int(rng.integers(1, 9)), int(rng.integers(1, 300))
        start = rng.uniform(-0.2, 0.2, (1, num_vertices, 3))
        walk = (start + np.cumsum(rng.normal(0.0, 3e-4, (num_frames, num_vertices, 3)), axis=0)).astype(np.float32)
        for bound in (1e-3, 1e-5):
            yield f"random_walk_{seed}_{bound:.0e}", walk, bound, -1


def cases_v3():
    """(name, vertices, max_error, -1) of format 3: the low-rank mode, and the other modes in format 3."""
    for bound in (1e-5, 2e-6):
        yield f"face_lowrank_{bound:.0e}", talking_face(40, 300), bound, -1
    yield "scanned_rows_lowrank", scanned_surface(24, [40, 55, 37, 60, 48, 52] * 3, seed=5), 1e-5, -1
    yield "chunks_3", talking_face(300, 24, seed=3), 1e-5, -1
    yield "constant", np.repeat(talking_face(1, 400, seed=6), 12, axis=0), 1e-5, -1
    for seed in range(2):
        rng = np.random.default_rng(10 + seed)
        start = rng.uniform(-0.2, 0.2, (1, 150, 3))
        walk = (start + np.cumsum(rng.normal(0.0, 3e-4, (30, 150, 3)), axis=0)).astype(np.float32)
        yield f"random_walk_{seed}", walk, 1e-5, -1
    yield "single_frame", talking_face(1, 500, seed=7), 1e-5, -1
    far = talking_face(3, 200)
    far[:, :3] += np.float32(300.0)
    yield "float32_exceptions", far, 1.6e-5, -1
    beyond = talking_face(4, 50)
    beyond[0, 0, 0] = -0.5
    yield "grid_beyond_int32", beyond, 1e-10, -1
    for shape in ((1, 1, 3), (2, 1, 3), (0, 5, 3)):
        tiny = np.random.default_rng(4).uniform(-0.1, 0.1, shape).astype(np.float32)
        yield f"tiny_{'x'.join(map(str, shape))}", tiny, 1e-5, -1
    yield "face_raw", talking_face(3, 40), 0.0, -1


CASES = {"2": cases_v2, "3": cases_v3}


def encode_forced(vertices: np.ndarray, max_error: float, weight: int, version: str) -> bytes:
    """``codec.encode(..., version=version)``, with the temporal weight forced when ``weight`` >= 0."""
    if weight < 0:
        return codec.encode(vertices, max_error, version=version)
    chooser = codec._best_temporal_weight
    codec._best_temporal_weight = lambda residual: weight
    try:
        return codec.encode(vertices, max_error, version=version)
    finally:
        codec._best_temporal_weight = chooser


def main() -> None:
    version = sys.argv[1] if len(sys.argv) > 1 else codec.CODEC_VERSION
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else HERE / f"v{version}"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.npz"):
        old.unlink()
    for name, vertices, max_error, weight in CASES[version]():
        encoded = encode_forced(vertices, max_error, weight, version)
        np.savez_compressed(out / f"{name}.npz", vertices=vertices, max_error=np.float64(max_error),
                            temporal_weight=np.int64(weight), encoded=np.frombuffer(encoded, np.uint8),
                            decoded=codec.decode(encoded), codec_version=np.str_(version))
        print(f"{name}: {vertices.shape} at {max_error:g} -> {len(encoded)} bytes, {codec.peek(encoded)['mode']}")
    print(json.dumps(official_sample_pin(out, version)))


#: Bounds of the sample-take pins, metres.
SAMPLE_BOUNDS = (5e-5, 1e-5, 2e-6)


def official_sample_pin(out: Path, version: str) -> dict | None:
    from mmface4d_datasets import official
    from mmface4d_datasets.paths import official_sample_dir
    from mmface4d_datasets.vocabulary import BFM_NUM_VERTICES

    folder = official_sample_dir()
    if folder is None:
        return None
    vertices = official.read_mesh_sequence(folder / "reconstruct_filt", BFM_NUM_VERTICES)
    pin = {"take": "official_sample/reconstruct_filt", "shape": list(vertices.shape),
           "input_sha256": hashlib.sha256(np.ascontiguousarray(vertices, np.float32).tobytes()).hexdigest(), "streams": []}
    for bound in SAMPLE_BOUNDS:
        encoded = codec.encode(vertices, bound, version=version)
        pin["streams"].append({"max_error": bound, "encoded_sha256": hashlib.sha256(encoded).hexdigest(),
                               "decoded_sha256": hashlib.sha256(codec.decode(encoded).tobytes()).hexdigest()})
    (out / "official_sample.json").write_text(json.dumps(pin, indent=1) + "\n", encoding="utf-8")
    return pin


if __name__ == "__main__":
    main()
