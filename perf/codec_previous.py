"""The codec's decoder as it was before its speed-up (commit 7975ae4): the anchor that
``perf/codec.py`` times the current decoder against, in the same run.

A measurement anchor only, not a format pin: the format is pinned by the golden vectors in
``tests/data/codec_golden`` (``tests/test_codec_golden.py``). It reads a stream through the codec's own
section parser and decodes it the straightforward way (nibble table look-up, one cumulative sum along
the vertices, segment bases by pointer jumping, a gather of each frame's bases, sums over time).
"""

from __future__ import annotations

import numpy as np

from mmface4d_datasets import codec
from mmface4d_datasets.codec import CodecError


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


def decode(data):
    """Decode ``data`` the way the codec did before its speed-up (same float32 bits, slower)."""
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
