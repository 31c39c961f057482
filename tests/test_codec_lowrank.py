"""Format 3's low-rank mode: the bound on adversarial inputs, whatever order BLAS adds in, chunks,
versions, forged streams, and its size on the authors' sample take."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmface4d_datasets import codec
from mmface4d_datasets.codec import CodecError, decode, encode, peek
from tests.test_codec import scanned_surface, talking_face

HYPOTHESIS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def max_error_of(original, data) -> float:
    decoded = decode(data)
    assert decoded.shape == np.shape(original) and decoded.dtype == np.float32
    return float(np.abs(decoded.astype(np.float64) - np.asarray(original, np.float32)).max()) if decoded.size else 0.0


def low_rank_motion(frames: int, vertices: int, rank: int, seed: int, amplitude: float = 3e-3) -> np.ndarray:
    """A rest shape plus ``rank`` smooth temporal components with rough spatial maps, plus 1 um noise."""
    rng = np.random.default_rng(seed)
    shape = rng.uniform(-0.1, 0.1, (vertices, 3)) + np.array([0.0, 0.0, 0.7])
    maps = rng.normal(0.0, amplitude, (rank, vertices, 3))
    time = np.linspace(0.0, 1.0, frames)
    weights = np.stack([np.sin((k + 1) * 3.0 * time + rng.uniform(0, 6)) for k in range(rank)], axis=1)
    noise = rng.normal(0.0, 1e-6, (frames, vertices, 3))
    return (shape[None] + np.einsum("tk,knc->tnc", weights, maps) + noise).astype(np.float32)


@HYPOTHESIS
@given(
    frames=st.integers(2, 40),
    vertices=st.integers(20, 300),
    rank=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    max_error=st.sampled_from([1e-5, 2e-6, 5e-5]),
)
def test_low_rank_sequences_take_the_lowrank_mode_within_the_bound(frames, vertices, rank, seed, max_error):
    vertices_ = low_rank_motion(frames, vertices, rank, seed)
    data = encode(vertices_, max_error)
    assert max_error_of(vertices_, data) <= max_error
    lowrank = codec._encode_lowrank(vertices_, max_error, codec.DEFAULT_LEVEL)
    if lowrank is not None:  # the mode itself holds the bound too, whichever mode encode chose
        assert max_error_of(vertices_, lowrank) <= max_error


@pytest.mark.parametrize("seed", range(3))
def test_random_walks_hold_the_bound(seed):
    rng = np.random.default_rng(seed)
    walk = (rng.uniform(-0.2, 0.2, (1, 800, 3)) + np.cumsum(rng.normal(0.0, 5e-4, (60, 800, 3)), axis=0)).astype(np.float32)
    for max_error in (1e-5, 2e-6):
        assert max_error_of(walk, encode(walk, max_error)) <= max_error
        lowrank = codec._encode_lowrank(walk, max_error, 3)
        assert lowrank is None or max_error_of(walk, lowrank) <= max_error


def test_single_frames_and_constant_sequences():
    frame = talking_face(1, 3000)
    assert max_error_of(frame, encode(frame)) <= 1e-5
    constant = np.repeat(talking_face(1, 90000, seed=2), 4, axis=0)  # above the size where the grid is also tried
    data = encode(constant)
    info = peek(data)
    assert info["mode"] == "lowrank" and info["sections"]["TCOF"]["raw_bytes"] == 0  # the mean alone
    assert max_error_of(constant, data) <= 1e-5
    assert len(data) < 0.15 * constant.nbytes


@pytest.mark.parametrize("offset, max_error", [(3.0, 1e-5), (300.0, 1e-5), (1e4, 1e-5), (0.0, 1e-9), (0.0, 0.2)])
def test_extreme_ranges_and_bounds(offset, max_error):
    """Far from the origin float32 spacing eats the bound: the low-rank mode then stands aside."""
    vertices = low_rank_motion(20, 400, 3, seed=1) + np.float32(offset)
    data = encode(vertices, max_error)
    assert max_error_of(vertices, data) <= max_error
    if offset >= 300.0 or max_error < 1e-8:
        assert codec._encode_lowrank(vertices, max_error, 3) is None


def test_nan_is_refused_by_the_new_version_too():
    vertices = low_rank_motion(10, 50, 2, seed=0)
    vertices[3, 7, 2] = np.nan
    with pytest.raises(CodecError, match="frame 3, vertex 7, axis 2"):
        encode(vertices)


def _sequential_product(reverse: bool):
    """float32 products added one term at a time (first to last or last to first): other BLAS orders."""

    def product(basis, rows, out):
        order = range(basis.shape[1] - 1, -1, -1) if reverse else range(basis.shape[1])
        total = np.zeros(out.shape, dtype=np.float32)
        for k in order:
            total += basis[:, k : k + 1] * rows[k : k + 1]
        out[...] = total

    return product


def _float64_product(basis, rows, out):
    out[...] = (basis.astype(np.float64) @ rows.astype(np.float64)).astype(np.float32)


@pytest.mark.parametrize(
    "product", [_sequential_product(False), _sequential_product(True), _float64_product], ids=["forward", "reverse", "float64"]
)
def test_the_bound_holds_whatever_order_the_product_adds_in(monkeypatch, product):
    """The encoder reserves the worst case of any float32 summation order; a decoder on another BLAS stays inside."""
    vertices = low_rank_motion(30, 600, 5, seed=4) + np.float32(2.5)  # 2.5 m out: float32 spacing is 0.24 um
    for max_error in (1e-5, 2e-6):
        data = codec._encode_lowrank(vertices, max_error, 3)
        assert data is not None
        native = decode(data)
        monkeypatch.setattr(codec, "_product", product)
        other = decode(data)
        monkeypatch.undo()
        margin = max_error - peek(data)["step"] / (2 * codec._STEP_FRACTION)
        assert float(np.abs(other.astype(np.float64) - vertices).max()) <= max_error
        assert float(np.abs(other.astype(np.float64) - native).max()) <= 2 * margin


def test_long_sequences_are_cut_into_chunks():
    vertices = low_rank_motion(300, 120, 4, seed=3)
    data = encode(vertices, 1e-5)
    assert peek(data)["mode"] == "lowrank"
    header, sections = codec._checked_sections(data)
    table = codec._section_array(sections, b"CHNK", 6, {0, 1, 2, 3}).reshape(-1, 2)
    assert table[:, 0].tolist() == [100, 100, 100] and all(0 < k <= 64 for k in table[:, 1])
    assert max_error_of(vertices, data) <= 1e-5


def test_versions_written_and_read():
    vertices = scanned_surface(16, [40 + (row % 5) for row in range(20)])
    old, new = encode(vertices, version="2"), encode(vertices)
    assert peek(old)["codec_version"] == "2" and peek(old)["mode"] == "grid"
    assert peek(new)["codec_version"] == "3" and peek(new)["mode"] == "lowrank"
    assert max_error_of(vertices, old) <= 1e-5 and max_error_of(vertices, new) <= 1e-5
    with pytest.raises(CodecError, match="version '4' cannot be written"):
        encode(vertices, version="4")


# ------------------------------------------------------------------------------------- forged streams


def _repacked(data: bytes, *, fmt=None, levels=None, replace=None) -> bytes:
    """The stream with some sections replaced (name -> raw uint8 bytes, stored uncompressed) and the CRC fixed."""
    header, sections = codec._checked_sections(data)
    rebuilt = []
    for name, (compression, element, stored, raw) in sections.items():
        if replace and name in replace:
            planes = replace[name]  # uint8 elements (float64 for STPS)
            rebuilt.append((name, codec._STORED, planes, 6 if name == b"STPS" else 0, len(planes)))
        else:
            rebuilt.append((name, compression, bytes(stored), element, raw))
    return codec._pack(
        header.mode,
        header.num_frames,
        header.num_vertices,
        header.max_error,
        header.step,
        header.origin,
        rebuilt,
        header.grid_levels if levels is None else levels,
        header.temporal_weight,
        header.format if fmt is None else fmt,
    )


@pytest.fixture(scope="module")
def lowrank_stream():
    vertices = low_rank_motion(12, 80, 3, seed=9)
    data = encode(vertices, 1e-5)
    assert peek(data)["mode"] == "lowrank"
    return data


def test_a_repacked_stream_is_still_valid(lowrank_stream):
    assert np.array_equal(decode(_repacked(lowrank_stream)), decode(lowrank_stream))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"replace": {b"CHNK": np.array([11, 3], np.uint8).tobytes()}}, "chunk table"),
        ({"replace": {b"CHNK": np.array([12, 13], np.uint8).tobytes()}}, "chunk table"),
        ({"replace": {b"CHNK": np.array([12, 3, 0], np.uint8).tobytes()}}, "pairs"),
        ({"replace": {b"STPS": np.array([-1.0, 1.0], "<f8").view(np.uint8).reshape(2, 8).T.tobytes()}}, "map steps"),
        ({"levels": 2**31}, "map levels"),
        ({"replace": {b"RPOS": np.array([0, 0], np.uint8).tobytes(), b"RVAL": np.array([1, 1], np.uint8).tobytes()}}, "residual positions"),
        ({"replace": {b"RPOS": np.array([250], np.uint8).tobytes() + bytes(0), b"RVAL": np.array([1], np.uint8).tobytes()}}, None),
        ({"fmt": 2}, "unknown mode 3 for format 2"),
    ],
)
def test_forged_lowrank_streams_are_refused(lowrank_stream, change, message):
    forged = _repacked(lowrank_stream, **change)
    if message is None:  # a residual at flat place 125 (zig-zag 250): valid, it moves one coordinate
        assert decode(forged).shape == (12, 80, 3)
        return
    with pytest.raises(CodecError, match=message):
        decode(forged)


def test_forged_coefficients_beyond_one_are_refused(lowrank_stream):
    header, sections = codec._checked_sections(lowrank_stream)
    count = sections[b"TCOF"][3] // codec._ELEMENT_DTYPES[sections[b"TCOF"][1]].itemsize
    huge = codec._zigzag_narrow(np.full(count, 2**16)).planes
    element = codec._element_code(codec._zigzag_narrow(np.full(count, 2**16)).dtype)
    rebuilt = [
        (name, codec._STORED, huge, element, len(huge)) if name == b"TCOF" else (name, c, bytes(s), e, r)
        for name, (c, e, s, r) in sections.items()
    ]
    forged = codec._pack(
        header.mode, header.num_frames, header.num_vertices, header.max_error, header.step, header.origin, rebuilt, header.grid_levels
    )
    with pytest.raises(CodecError, match="coefficients exceed 1"):
        decode(forged)


def test_forged_map_sizes_are_refused_before_allocating(lowrank_stream):
    """Header and MAPS both claim 10**12 frames' worth of rows behind a small payload: refused from the sizes."""
    header, sections = codec._checked_sections(lowrank_stream)
    rebuilt = []
    for name, (compression, element, stored, raw) in sections.items():
        rebuilt.append((name, compression, bytes(stored), element, 10**15 if name == b"MAPS" else raw))
    forged = codec._pack(
        header.mode, header.num_frames, header.num_vertices, header.max_error, header.step, header.origin, rebuilt, header.grid_levels
    )
    with pytest.raises(CodecError, match="declares"):
        decode(forged)


# ------------------------------------------------------------------------------------ the real take


def test_authors_sample_take_lowrank_is_smaller_than_format_2(official_sample):
    official = pytest.importorskip("mmface4d_datasets.official")
    vertices = official.read_mesh_sequence(official_sample / "reconstruct_filt", 35709)
    new, old = encode(vertices, 1e-5), encode(vertices, 1e-5, version="2")
    assert peek(new)["mode"] == "lowrank"
    assert len(new) * 1.3 <= len(old)  # measured 1.44x (18,799 against 27,147 bytes per frame)
    assert max_error_of(vertices, new) <= 1e-5


@pytest.mark.parametrize("version", ["2", "3"])
def test_decode_into_a_given_array(version):
    vertices = low_rank_motion(10, 300, 3, seed=5)
    data = encode(vertices, 1e-5, version=version)
    target = np.full(vertices.shape, np.nan, dtype=np.float32)
    assert decode(data, out=target) is target
    assert np.array_equal(target, decode(data))
    assert decode(np.frombuffer(data, dtype=np.uint8)).tobytes() == target.tobytes()  # e.g. an Arrow buffer's view
    for wrong in (
        np.empty((10, 300, 3), np.float64),
        np.empty((10, 299, 3), np.float32),
        np.empty((300, 10, 3), np.float32).transpose(1, 0, 2),
    ):
        with pytest.raises(CodecError, match="out="):
            decode(data, out=wrong)
