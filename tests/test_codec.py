"""The mesh-sequence codec: the error bound on random and adversarial inputs, metadata, robust decoding."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mmface4d_datasets import codec
from mmface4d_datasets.codec import CODEC_VERSION, CodecError, decode, encode, peek
from mmface4d_datasets.errors import FormatError

HYPOTHESIS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_within_bound(original: np.ndarray, max_error: float) -> np.ndarray:
    """Round-trip ``original`` and check shape, dtype and the per-coordinate bound; returns the decoding."""
    data = encode(original, max_error)
    decoded = decode(data)
    expected = np.asarray(original, dtype=np.float32)
    assert decoded.shape == expected.shape
    assert decoded.dtype == np.float32
    if expected.size:
        error = np.abs(decoded.astype(np.float64) - expected.astype(np.float64))
        assert float(error.max()) <= max_error, (float(error.max()), max_error)
    return decoded


def talking_face(num_frames: int, num_vertices: int, seed: int = 0) -> np.ndarray:
    """A smooth, low-rank (T, N, 3) sequence in metres, like a fitted face: shape plus a few moving modes."""
    rng = np.random.default_rng(seed)
    u = np.linspace(0.0, 1.0, num_vertices)
    shape = np.stack([0.15 * (u - 0.5), 0.2 * np.sin(3 * u), 0.7 + 0.05 * np.cos(5 * u)], axis=1)
    modes = np.stack([np.stack([np.sin((k + 1) * 7 * u + a) for a in range(3)], axis=1) for k in range(4)])
    time = np.linspace(0.0, 2 * np.pi, num_frames)
    weights = np.stack([0.002 * np.sin((k + 1) * time + rng.uniform(0, 6)) for k in range(4)], axis=1)
    noise = rng.normal(0.0, 2e-6, size=(num_frames, num_vertices, 3))
    return (shape[None] + np.einsum("tk,knc->tnc", weights, modes) + noise).astype(np.float32)


# ----------------------------------------------------------------------------------------- the bound


@HYPOTHESIS
@given(
    vertices=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=12).map(lambda s: (s[0], s[1], 3)),
        elements=st.floats(-2.0, 2.0, width=32),
    ),
    max_error=st.sampled_from([1e-5, 2e-6, 1e-3, 3.7e-7]),
)
def test_bound_holds_on_random_sequences(vertices, max_error):
    assert_within_bound(vertices, max_error)


@HYPOTHESIS
@given(
    vertices=hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 4), st.integers(1, 6), st.just(3)),
        elements=st.floats(allow_nan=False, allow_infinity=False, width=32),
    ),
    max_error=st.sampled_from([1e-5, 1e-9, 0.5, 1e30]),
)
def test_bound_holds_on_any_finite_float32(vertices, max_error):
    """The whole float32 range, subnormals and extreme magnitudes included."""
    assert_within_bound(vertices, max_error)


@HYPOTHESIS
@given(
    magnitude=st.sampled_from([1.0, 100.0, 200.0, 300.0, 1e4, 1e7, 3e38]),
    max_error=st.sampled_from([1e-5, 2e-6, 1e-12, 7.6e-6]),
    seed=st.integers(0, 2**16),
)
def test_bound_holds_where_float32_spacing_rivals_the_bound(magnitude, max_error, seed):
    """Coordinates of hundreds of metres: the float32 cast alone can exceed the bound there."""
    rng = np.random.default_rng(seed)
    vertices = (magnitude * rng.uniform(0.5, 1.0, size=(3, 50, 3))).astype(np.float32)
    assert_within_bound(vertices, max_error)


def test_single_frame_constant_and_single_vertex():
    assert_within_bound(talking_face(1, 300), 1e-5)
    assert_within_bound(np.full((20, 40, 3), 0.7, dtype=np.float32), 1e-5)
    assert_within_bound(talking_face(30, 1), 1e-5)
    assert_within_bound(np.zeros((1, 1, 3), dtype=np.float32), 2e-6)


def test_tiny_bound_and_lossless_mode():
    vertices = talking_face(10, 200)
    assert_within_bound(vertices, 1e-9)
    assert np.array_equal(decode(encode(vertices, 0.0)), vertices)


def test_huge_coordinate_range():
    vertices = talking_face(5, 100)
    vertices[2, 7, 1] = 3.0e38
    vertices[3, 9, 0] = -3.0e38
    decoded = assert_within_bound(vertices, 1e-5)
    assert decoded[2, 7, 1] == vertices[2, 7, 1]


def test_float64_input_is_bounded_against_its_float32_cast():
    vertices = talking_face(6, 80).astype(np.float64) + 1e-9
    decoded = assert_within_bound(vertices, 1e-5)
    assert np.abs(decoded - vertices).max() <= 1e-5 + 1e-7


# ------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_refused_with_its_position(bad):
    vertices = talking_face(4, 10)
    vertices[2, 5, 1] = bad
    with pytest.raises(CodecError, match=r"NaN or Inf.*frame 2, vertex 5, axis 1"):
        encode(vertices)


@pytest.mark.parametrize("shape", [(10, 3), (2, 10, 2), (1, 2, 3, 4)])
def test_wrong_shape_is_refused(shape):
    with pytest.raises(CodecError, match=r"\(T, N, 3\)"):
        encode(np.zeros(shape, dtype=np.float32))


@pytest.mark.parametrize("bound", [-1e-5, float("nan"), float("inf"), "ten"])
def test_invalid_bound_is_refused(bound):
    with pytest.raises(CodecError, match="max_error"):
        encode(talking_face(2, 5), bound)


def test_empty_sequences_round_trip_with_their_shape():
    for shape in [(0, 35709, 3), (12, 0, 3), (0, 0, 3)]:
        decoded = decode(encode(np.zeros(shape, dtype=np.float32)))
        assert decoded.shape == shape and decoded.dtype == np.float32


# ------------------------------------------------------------------------------------- metadata


def test_peek_reports_the_header_without_decoding():
    vertices = talking_face(7, 50)
    data = encode(vertices, 2e-6)
    info = peek(data)
    assert info["shape"] == (7, 50, 3)
    assert info["max_error"] == 2e-6
    assert info["codec_version"] == CODEC_VERSION
    assert info["total_bytes"] == len(data)
    assert sum(s["stored_bytes"] for s in info["sections"].values()) < info["payload_bytes"] <= len(data)


def test_encoding_is_deterministic_and_self_contained():
    vertices = talking_face(9, 120)
    first, second = encode(vertices), encode(vertices.copy())
    assert first == second
    assert np.array_equal(decode(first), decode(bytearray(first)))
    assert np.array_equal(decode(first), decode(memoryview(first)))


def test_codec_error_is_a_format_error():
    assert issubclass(CodecError, FormatError)


# --------------------------------------------------------------------------------- robust decoding


def test_truncated_streams_are_refused():
    data = encode(talking_face(8, 100))
    for length in [0, 3, 10, codec._HEADER.size, len(data) // 2, len(data) - 1]:
        with pytest.raises(CodecError, match="truncated|magic"):
            decode(data[:length])


def test_trailing_bytes_are_refused():
    data = encode(talking_face(3, 10))
    with pytest.raises(CodecError, match="unexpected bytes"):
        decode(data + b"\x00")


@HYPOTHESIS
@given(position=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_bit_flip_is_detected(position, bit):
    data = bytearray(encode(talking_face(5, 60)))
    data[position % len(data)] ^= 1 << bit
    with pytest.raises(CodecError):
        decode(bytes(data))


def test_not_a_codec_stream():
    with pytest.raises(CodecError, match="magic"):
        decode(b"PK\x03\x04" + bytes(200))


def _rewrite_header(data: bytes, **changes) -> bytes:
    """Change header fields and fix the CRC, as a forger (or a buggy writer) would."""
    fields = list(codec._HEADER.unpack_from(data))
    names = [
        "magic",
        "format",
        "mode",
        "reserved",
        "frames",
        "vertices",
        "max_error",
        "step",
        "levels",
        "ox",
        "oy",
        "oz",
        "sections",
        "payload",
        "crc",
    ]
    for name, value in changes.items():
        fields[names.index(name)] = value
    header = codec._HEADER.pack(*fields)
    body = data[codec._HEADER.size :]
    crc = zlib.crc32(body, zlib.crc32(header[:-4]))
    return header[:-4] + struct.pack("<I", crc) + body


def test_unknown_version_is_refused_by_name():
    data = _rewrite_header(encode(talking_face(3, 10)), format=999)
    with pytest.raises(CodecError, match="version 999"):
        decode(data)
    with pytest.raises(CodecError, match="version 999"):
        peek(data)


@pytest.mark.parametrize("frames, vertices", [(10**12, 35709), (4, 11), (2**40, 2**20)])
def test_declared_shape_that_does_not_match_the_payload_is_refused(frames, vertices):
    """A forged header with a valid CRC: refused from the sizes, before anything large is allocated."""
    data = _rewrite_header(encode(talking_face(3, 10)), frames=frames, vertices=vertices)
    with pytest.raises(CodecError, match="declares"):
        decode(data)


# ------------------------------------------------------------------------------------ the real take


def test_authors_sample_take_round_trips_within_both_bounds(official_sample):
    official = pytest.importorskip("mmface4d_datasets.official")
    vertices = official.read_mesh_sequence(official_sample / "reconstruct_filt", 35709)
    for max_error in (1e-5, 2e-6):
        data = encode(vertices, max_error)
        decoded = decode(data)
        assert len(data) < vertices.nbytes
        assert decoded.shape == vertices.shape and decoded.dtype == np.float32
        assert float(np.abs(decoded.astype(np.float64) - vertices).max()) <= max_error


# --------------------------------------------------------------------------- modelling paths


def scanned_surface(num_frames: int, row_lengths: list[int]) -> np.ndarray:
    """A curved sheet scanned row by row (rows of different lengths, like the BFM front face), moving."""
    rows = []
    for row, length in enumerate(row_lengths):
        x = np.linspace(-0.08, 0.08, length) + 0.001 * (row % 3)
        rows.append(np.stack([x, np.full(length, 0.001 * row), 0.7 + 4.0 * x**2], axis=1))
    shape = np.concatenate(rows)
    time = np.linspace(0.0, 1.0, num_frames)[:, None, None]
    motion = 0.003 * np.sin(2 * np.pi * time + 20 * shape[None, :, 1:2]) * np.array([0.2, 1.0, 0.5])
    return (shape[None] + motion).astype(np.float32)


@pytest.mark.parametrize("version", ["2", "3"])
def test_row_structured_meshes_get_segment_references(version):
    vertices = scanned_surface(12, [60 + (row % 7) for row in range(40)])
    info = peek(encode(vertices, version=version))
    assert info["mode"] == ("grid" if version == "2" else "lowrank")
    assert info["sections"]["SEGS"]["raw_bytes"] >= 39  # one segment per row after the first
    assert_within_bound(vertices, 1e-5)
    assert_within_bound(vertices[:1], 1e-5)


def test_grids_beyond_int32_decode_with_64_bit_sums():
    vertices = talking_face(4, 50)
    vertices[0, 0, 0] = -0.5  # 1 m range at 0.1 um: about 5e9 grid levels
    info = peek(encode(vertices, 1e-10))
    assert info["mode"] == "grid" and info["grid_levels"] > 2**31
    assert_within_bound(vertices, 1e-10)


def test_a_failing_self_check_falls_back_to_lossless(monkeypatch):
    """If the grid or low-rank path ever decoded wrongly, the encoder must not emit it."""
    for name in ("_decode_grid", "_decode_lowrank"):
        real = getattr(codec, name)

        def off_by_a_step(*args, real=real):
            values = real(*args)
            values.reshape(-1)[7] += 2e-5
            return values

        monkeypatch.setattr(codec, name, off_by_a_step)
    vertices = talking_face(6, 40)
    data = encode(vertices, 1e-5)
    assert peek(data)["mode"] == "raw-float32"
    assert np.array_equal(decode(data), vertices)


def test_development_format_1_is_refused_with_advice():
    data = _rewrite_header(encode(talking_face(3, 10)), format=1)
    with pytest.raises(CodecError, match="version 1 .*encode the data again"):
        decode(data)


def test_authors_sample_take_is_at_least_3x_smaller_than_their_encoding(official_sample):
    official = pytest.importorskip("mmface4d_datasets.official")
    vertices = official.read_mesh_sequence(official_sample / "reconstruct_filt", 35709)
    authors_bytes_per_frame = sum((official_sample / f"reconstruct_filt_{a}.nut").stat().st_size for a in range(3))
    authors_bytes_per_frame /= vertices.shape[0]
    ours = len(encode(vertices, 1e-5)) / vertices.shape[0]
    assert ours * 3 <= authors_bytes_per_frame


@pytest.mark.parametrize("weight", [0, 1, 2, 3])
def test_every_temporal_weight_round_trips(monkeypatch, weight):
    monkeypatch.setattr(codec, "_best_temporal_weight", lambda residual: weight)
    vertices = scanned_surface(9, [50 + (row % 5) for row in range(20)])
    data = encode(vertices, 2e-6, version="2")
    assert peek(data)["temporal_weight"] == weight / 4
    assert np.abs(decode(data).astype(np.float64) - vertices).max() <= 2e-6


def test_undefined_temporal_weight_is_refused():
    data = _rewrite_header(encode(scanned_surface(5, [30] * 10), version="2"), reserved=9)
    with pytest.raises(CodecError, match="temporal weight 9"):
        decode(data)


def test_higher_levels_are_no_larger_and_decode_the_same():
    vertices = scanned_surface(10, [70 + (row % 3) for row in range(30)])
    fast, small = encode(vertices, level=1), encode(vertices, level=19)
    assert len(small) <= len(fast)
    assert np.array_equal(decode(fast), decode(small))
    with pytest.raises(CodecError, match="level"):
        encode(vertices, level=0)


def test_forged_section_sizes_are_refused_before_allocating():
    """Header and section both claim 10**12 frames, CRC fixed: refused from the compressed size."""
    data = bytearray(encode(scanned_surface(3, [10] * 4), version="2"))
    offset = codec._HEADER.size
    frames = 10**12
    num_vertices = 40
    while True:  # walk the sections to RESN and forge its raw size to match the forged shape
        name, compression, element, stored, raw = codec._SECTION.unpack_from(data, offset)
        if name == b"RESN":
            codec._SECTION.pack_into(data, offset, name, compression, element, stored, (frames * num_vertices * 3 + 1) // 2)
            break
        offset += codec._SECTION.size + stored
    forged = _rewrite_header(bytes(data), frames=frames)
    with pytest.raises(CodecError, match="impossible|holds"):
        decode(forged)


@HYPOTHESIS
@given(junk=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_codec_error(junk):
    for data in (junk, b"MF4C" + junk, encode(talking_face(2, 5))[:90] + junk):
        with pytest.raises(CodecError):
            decode(data)
