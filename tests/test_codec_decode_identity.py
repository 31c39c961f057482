"""The decoder must keep producing exactly the float32 bits of the format-2 decoder as first released.

``_reference_decode`` below is a frozen copy of ``mmface4d_datasets.codec.decode`` as it was before
its speed-up (commit 7975ae4): the straightforward path (nibble table look-up, one cumulative sum
along the vertices, segment bases by pointer jumping over the segment tree, a gather of each
frame's bases, sums over time, the shared float64 reconstruction). It is kept here, deliberately
duplicated, so that any later change to the fast decoder is compared byte for byte against it on
streams encoded at several bounds: the authors' sample take, random and structured arrays, grids
beyond int32, exceptions and every temporal weight.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmface4d_datasets import codec
from mmface4d_datasets.codec import CodecError, decode, encode
from test_codec import talking_face

# ------------------------------------------------------------------ frozen reference (do not edit)


def _ref_unzigzag(unsigned):
    unsigned = unsigned.astype(np.uint64)
    return ((unsigned >> np.uint64(1)) ^ (np.uint64(0) - (unsigned & np.uint64(1)))).view(np.int64)


def _ref_unshuffle(planes, dtype):
    raw = np.frombuffer(planes, dtype=np.uint8).reshape(dtype.itemsize, -1)
    return np.ascontiguousarray(raw.T).view(dtype).reshape(-1)


def _ref_declared_count(sections, name, limit):
    if name not in sections:
        raise CodecError(f"codec stream lacks its {name.decode()} section")
    _, element_code, _, raw_bytes = sections[name]
    itemsize = codec._ELEMENT_DTYPES[element_code].itemsize
    if raw_bytes % itemsize or raw_bytes // itemsize > limit:
        raise CodecError(f"codec section {name.decode()} declares {raw_bytes} bytes, inconsistent with the shape")
    return raw_bytes // itemsize


def _ref_section_array(sections, name, count, allowed_elements):
    import zstandard

    if name not in sections:
        raise CodecError(f"codec stream lacks its {name.decode()} section")
    compression, element_code, stored, raw_bytes = sections[name]
    if element_code not in allowed_elements:
        raise CodecError(f"codec section {name.decode()} has element code {element_code}, not allowed there")
    dtype = codec._ELEMENT_DTYPES[element_code]
    if raw_bytes != count * dtype.itemsize:
        raise CodecError(f"codec section {name.decode()} declares {raw_bytes} bytes but the shape needs {count * dtype.itemsize}")
    if compression == 0:
        planes = bytes(stored)
    else:
        planes = zstandard.ZstdDecompressor().decompress(bytes(stored), max_output_size=raw_bytes)
    return _ref_unshuffle(planes, dtype)


def _ref_nibble_pair_table(integer):
    signed = np.array([(symbol >> 1) ^ -(symbol & 1) for symbol in range(16)], dtype=integer)
    pairs = np.stack([signed[np.arange(256) & 15], signed[np.arange(256) >> 4]], axis=1)
    wide = np.dtype(integer).itemsize * 2
    return np.ascontiguousarray(pairs).view(np.dtype(f"<i{wide}") if wide == 8 else np.dtype([("pair", integer, 2)])).ravel()


_REF_NIBBLE_PAIRS = {np.int32: _ref_nibble_pair_table(np.int32), np.int64: _ref_nibble_pair_table(np.int64)}


def _ref_dequantise_frame(grid_index, step, origin, out, scaled):
    np.multiply(grid_index, step, out=scaled, dtype=np.float64)
    np.add(scaled, origin[:, None], out=out.T, dtype=np.float64, casting="same_kind")


def _ref_segment_sums(residual, starts, references):
    sums = np.cumsum(residual, axis=-1, out=residual)
    if not starts.size:
        return None
    base = np.zeros(residual.shape[:-1] + (starts.size + 1,), dtype=residual.dtype)
    base[..., 1:] = sums[..., references] - sums[..., starts - 1]
    pointer = np.concatenate([[0], np.searchsorted(starts, references, side="right")])
    while np.any(pointer):
        base += base[..., pointer]
        pointer = pointer[pointer]
    return base


def _ref_decode_grid(sections, header):
    count = header.num_frames * header.num_vertices * 3
    segment_count = _ref_declared_count(sections, b"SEGS", header.num_vertices)
    starts = np.cumsum(_ref_unzigzag(_ref_section_array(sections, b"SEGS", segment_count, {0, 1, 2, 3})))
    references = starts - _ref_unzigzag(_ref_section_array(sections, b"SREF", segment_count, {0, 1, 2, 3}))
    integer = np.int32 if header.grid_levels < 2**31 else np.int64
    packed = _ref_section_array(sections, b"RESN", (count + 1) // 2, {0})
    residual = np.take(_REF_NIBBLE_PAIRS[integer], packed).view(integer)[:count]
    escaped = np.flatnonzero(residual == -8)
    escapes = _ref_section_array(sections, b"RESX", escaped.size, {0, 1, 2, 3}).astype(np.uint64)
    residual[escaped] = _ref_unzigzag(escapes + np.uint64(15)).astype(integer)
    residual = residual.reshape(header.num_frames, 3, header.num_vertices)
    if header.temporal_weight:
        for frame in range(2, header.num_frames):
            residual[frame] += (header.temporal_weight * residual[frame - 1] + 2) >> 2
    base = _ref_segment_sums(residual, starts, references)
    segment_of = np.repeat(np.arange(starts.size + 1), np.diff(np.concatenate([[0], starts, [header.num_vertices]])))
    origin = np.asarray(header.origin, dtype=np.float64)
    vertices = np.empty((header.num_frames, header.num_vertices, 3), dtype=np.float32)
    scaled = np.empty((3, header.num_vertices), dtype=np.float64)
    offsets = np.empty((3, header.num_vertices), dtype=integer)
    for frame in range(header.num_frames):
        grid_index = residual[frame]
        if base is not None:
            grid_index += np.take(base[frame], segment_of, axis=-1, out=offsets)
        if frame:
            grid_index += residual[frame - 1]
        _ref_dequantise_frame(grid_index, header.step, origin, vertices[frame], scaled)
    return vertices


def _reference_decode(data):
    header, sections = codec._checked_sections(data)
    shape = (header.num_frames, header.num_vertices, 3)
    count = header.num_frames * header.num_vertices * 3
    if header.mode == 0:
        return np.empty(shape, dtype=np.float32)
    if header.mode == 1:
        return _ref_section_array(sections, b"RAWF", count, {4}).reshape(shape)
    vertices = _ref_decode_grid(sections, header)
    if b"EXIX" in sections:
        exception_count = _ref_declared_count(sections, b"EXIX", count)
        positions = np.cumsum(_ref_unzigzag(_ref_section_array(sections, b"EXIX", exception_count, {0, 1, 2, 3})))
        values = _ref_section_array(sections, b"EXVL", exception_count, {4})
        vertices.reshape(-1)[positions] = values
    return vertices


# ----------------------------------------------------------------------------------------- tests


def assert_same_bits(data: bytes) -> np.ndarray:
    """decode(data) equals the frozen reference byte for byte (shape, dtype and every float32 bit)."""
    expected = _reference_decode(data)
    actual = decode(data)
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    assert actual.tobytes() == expected.tobytes()
    return actual


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


@pytest.mark.parametrize("max_error", [1e-5, 2e-6, 5e-5])
def test_fixture_take_decodes_to_the_reference_bits(official_sample, max_error):
    from mmface4d_datasets import official

    vertices = official.read_mesh_sequence(official_sample / "reconstruct_filt", 35709)
    data = encode(vertices, max_error)
    assert codec.peek(data)["mode"] == "grid"
    restored = assert_same_bits(data)
    assert float(np.abs(restored.astype(np.float64) - vertices).max()) <= max_error


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("max_error", [1e-3, 1e-5, 1e-6])
def test_random_walks_decode_to_the_reference_bits(seed, max_error):
    rng = np.random.default_rng(seed)
    num_frames, num_vertices = int(rng.integers(1, 9)), int(rng.integers(1, 700))
    start = rng.uniform(-0.2, 0.2, (1, num_vertices, 3))
    vertices = (start + np.cumsum(rng.normal(0.0, 3e-4, (num_frames, num_vertices, 3)), axis=0)).astype(np.float32)
    assert_same_bits(encode(vertices, max_error))


@pytest.mark.parametrize("seed", range(3))
def test_white_noise_with_escapes_decodes_to_the_reference_bits(seed):
    rng = np.random.default_rng(seed)
    vertices = rng.uniform(-1.0, 1.0, (5, 301, 3)).astype(np.float32)  # every residual escapes
    data = encode(vertices, 1e-4)
    assert codec.peek(data)["sections"]["RESX"]["raw_bytes"] > 0
    assert_same_bits(data)


@pytest.mark.parametrize("max_error", [1e-5, 2e-6, 5e-7])
def test_row_structured_meshes_decode_to_the_reference_bits(max_error):
    vertices = scanned_surface(12, [40, 55, 37, 60, 48, 52, 41, 58, 45, 50] * 3, seed=1)
    data = encode(vertices, max_error)
    assert codec.peek(data)["sections"]["SEGS"]["raw_bytes"] > 0
    assert_same_bits(data)


@pytest.mark.parametrize("weight", [0, 1, 2, 3])
def test_every_temporal_weight_decodes_to_the_reference_bits(monkeypatch, weight):
    monkeypatch.setattr(codec, "_best_temporal_weight", lambda residual: weight)
    vertices = scanned_surface(9, [30, 44, 35, 41] * 4, seed=2)
    data = encode(vertices, 1e-6)
    assert codec.peek(data)["temporal_weight"] == weight / 4
    assert_same_bits(data)


def test_grids_beyond_int32_and_exceptions_decode_to_the_reference_bits():
    vertices = talking_face(4, 50)
    vertices[0, 0, 0] = -0.5  # 1 m range at 0.1 nm: about 3e9 grid levels, 64-bit sums
    data = encode(vertices, 1e-10)
    info = codec.peek(data)
    assert info["mode"] == "grid" and info["grid_levels"] >= 2**31
    assert_same_bits(data)
    vertices = talking_face(3, 400)
    vertices[:, :3] += np.float32(300.0)  # float32 spacing there rivals the bound: exceptions
    data = encode(vertices, 1.6e-5)
    assert "EXIX" in codec.peek(data)["sections"]
    assert_same_bits(data)


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 2, 3), (2, 1, 3), (0, 5, 3), (3, 0, 3)])
def test_tiny_and_empty_shapes_decode_to_the_reference_bits(shape):
    vertices = np.random.default_rng(4).uniform(-0.1, 0.1, shape).astype(np.float32)
    assert_same_bits(encode(vertices, 1e-5))
    assert_same_bits(encode(vertices, 0.0))
