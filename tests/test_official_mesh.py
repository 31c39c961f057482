"""The authors' `.nut` mesh encoding: exact decoding, writing, and every malformed case."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.official import (
    dequantise,
    frame_side,
    mesh_axis_paths,
    quantise,
    read_mesh_sequence,
    read_quantised_axis,
    write_mesh_sequence,
    write_quantised_axis,
)

BFM_VERTICES = 35709


def _authors_rule(raw_frame: np.ndarray, num_vertices: int) -> np.ndarray:
    """DESIGN.md's decoding rule, restated here independently of the package."""
    flat = np.ascontiguousarray(raw_frame).reshape(-1).astype("<u2")
    low = flat[0:2].view("<f4")[0]
    high = flat[2:4].view("<f4")[0]
    assert low.dtype == np.float32 and high.dtype == np.float32
    return flat[4 : 4 + num_vertices].astype(np.float32) / 65536 * (high - low) + low


def _pyav_raw_frames(path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray().copy() for frame in container.decode(video=0)]


@pytest.fixture(scope="module")
def sample_prefix(official_sample):
    return official_sample / "reconstruct_filt"


@pytest.fixture(scope="module")
def sample_vertices(sample_prefix):
    return read_mesh_sequence(sample_prefix, BFM_VERTICES)


def test_frame_side_matches_the_release():
    assert frame_side(BFM_VERTICES) == 189
    assert frame_side(5) == 3  # 9 pixels exactly
    assert frame_side(6) == 4


def test_fixture_decodes_bit_for_bit_by_the_authors_rule(sample_prefix, sample_vertices):
    assert sample_vertices.shape == (67, BFM_VERTICES, 3)
    assert sample_vertices.dtype == np.float32
    for axis, path in enumerate(mesh_axis_paths(sample_prefix)):
        raw = _pyav_raw_frames(path)
        assert len(raw) == 67
        for t, frame in enumerate(raw):
            expected = _authors_rule(frame, BFM_VERTICES)
            assert np.array_equal(expected.view(np.uint32), sample_vertices[t, :, axis].view(np.uint32)), (axis, t)
    # metres, a face in front of camera 1: about 0.17 m wide, 0.7-0.8 m away
    extent = sample_vertices.max(axis=(0, 1)) - sample_vertices.min(axis=(0, 1))
    assert 0.1 < extent[0] < 0.3 and 0.5 < sample_vertices[..., 2].mean() < 1.0


def test_fixture_matches_the_ffmpeg_binary_when_present(sample_prefix, sample_vertices):
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        try:  # the imageio-ffmpeg wheel carries a static binary
            import imageio_ffmpeg

            ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
        except (ImportError, RuntimeError):
            pytest.skip("no ffmpeg binary (PATH or imageio-ffmpeg); the PyAV comparison above covers the decoding rule")
    side = frame_side(BFM_VERTICES)
    for axis, path in enumerate(mesh_axis_paths(sample_prefix)):
        out = subprocess.run(
            [ffmpeg, "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray16le", "-"],
            capture_output=True,
            check=True,
        ).stdout
        raw = np.frombuffer(out, dtype="<u2").reshape(-1, side * side)
        assert len(raw) == len(sample_vertices)
        for t, frame in enumerate(raw):
            expected = _authors_rule(frame, BFM_VERTICES)
            assert np.array_equal(expected.view(np.uint32), sample_vertices[t, :, axis].view(np.uint32))


def test_writing_reproduces_the_formats_quantisation(tmp_path, sample_vertices):
    clip = sample_vertices[:8]
    prefix = tmp_path / "take" / "000001_filt"
    prefix.parent.mkdir()
    write_mesh_sequence(prefix, clip)
    assert sorted(p.name for p in prefix.parent.iterdir()) == [f"000001_filt_{a}.nut" for a in range(3)]
    for axis, path in enumerate(mesh_axis_paths(prefix)):
        raw = np.stack(_pyav_raw_frames(path)).reshape(len(clip), -1)
        values = clip[:, :, axis].astype(np.float64)
        low = (values.min(axis=1) - 0.05).astype(np.float32)
        high = (values.max(axis=1) + 0.05).astype(np.float32)
        assert np.array_equal(raw[:, 0:2].copy().view("<f4")[:, 0], low)
        assert np.array_equal(raw[:, 2:4].copy().view("<f4")[:, 0], high)
        span = high.astype(np.float64) - low
        expected_q = np.clip(np.rint((values - low[:, None]) / span[:, None] * 65536), 0, 65535)
        assert np.array_equal(raw[:, 4 : 4 + BFM_VERTICES], expected_q)
        assert not raw[:, 4 + BFM_VERTICES :].any()  # padding pixels are zero
    back = read_mesh_sequence(prefix, BFM_VERTICES)
    span = (clip.max(axis=1) - clip.min(axis=1)).astype(np.float64) + 0.1  # (T, 3)
    bound = span / 2**17 + 1e-6 * np.abs(clip).max()  # half a step plus float32 rounding
    assert (np.abs(back.astype(np.float64) - clip).max(axis=1) <= bound).all()
    # writing the read-back sequence again gives the same values within one more half step
    write_mesh_sequence(prefix, back)
    again = read_mesh_sequence(prefix, BFM_VERTICES)
    assert (np.abs(again.astype(np.float64) - back).max(axis=1) <= bound).all()


def test_written_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    write_mesh_sequence(tmp_path / "perm", _small_sequence())
    for path in mesh_axis_paths(tmp_path / "perm"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"perm_{a}.nut" for a in range(3)]


def test_raw_frames_are_stored_losslessly(tmp_path):
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 65536, size=(5, 16), dtype=np.uint16)  # 4 x 4 frames
    path = tmp_path / "raw_0.nut"
    write_quantised_axis(path, frames)
    assert np.array_equal(read_quantised_axis(path, 12), frames)


def test_quantise_refuses_non_finite_values():
    values = np.zeros((2, 5), dtype=np.float32)
    values[1, 3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        quantise(values)


def test_write_refuses_nan_and_names_the_target(tmp_path):
    vertices = np.zeros((2, 5, 3), dtype=np.float32)
    vertices[0, 0, 2] = np.inf
    with pytest.raises(ValueError, match="seq.*non-finite"):
        write_mesh_sequence(tmp_path / "seq", vertices)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def _small_sequence(num_frames=4, num_vertices=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 0.05, size=(num_frames, num_vertices, 3)).astype(np.float32)


def test_truncated_video_is_refused(tmp_path, sample_prefix):
    paths = mesh_axis_paths(sample_prefix)
    prefix = tmp_path / "cut"
    for src, dst in zip(paths, mesh_axis_paths(prefix)):
        shutil.copyfile(src, dst)
    target = mesh_axis_paths(prefix)[1]
    data = target.read_bytes()
    target.write_bytes(data[: len(data) - 1000])  # cuts into the last frame: FFmpeg alone would not notice
    with pytest.raises(FormatError, match=r"cut_1\.nut.*truncated"):
        read_mesh_sequence(prefix, BFM_VERTICES)
    target.write_bytes(data[:100])
    with pytest.raises(FormatError, match=r"cut_1\.nut"):
        read_mesh_sequence(prefix, BFM_VERTICES)


def test_not_a_video_is_refused(tmp_path):
    prefix = tmp_path / "junk"
    write_mesh_sequence(prefix, _small_sequence())
    mesh_axis_paths(prefix)[2].write_bytes(b"not a video at all" * 10)
    with pytest.raises(FormatError, match=r"junk_2\.nut.*not a NUT file"):
        read_mesh_sequence(prefix, 12)


def test_axes_with_different_frame_counts_are_refused(tmp_path, sample_prefix):
    prefix = tmp_path / "uneven"
    for axis, (src, dst) in enumerate(zip(mesh_axis_paths(sample_prefix), mesh_axis_paths(prefix))):
        frames = read_quantised_axis(src, BFM_VERTICES)
        write_quantised_axis(dst, frames[: 5 if axis == 2 else 6])
    with pytest.raises(FormatError, match=r"uneven_2\.nut: 5 frames.*uneven_0\.nut has 6"):
        read_mesh_sequence(prefix, BFM_VERTICES)


def test_wrong_vertex_count_for_the_frame_size_is_refused(tmp_path):
    prefix = tmp_path / "small"
    write_mesh_sequence(prefix, _small_sequence(num_vertices=12))  # 4 x 4 frames
    assert read_mesh_sequence(prefix, 12).shape == (4, 12, 3)
    assert read_mesh_sequence(prefix, 11).shape == (4, 11, 3)  # still 4 x 4: fits
    with pytest.raises(FormatError, match=r"small_0\.nut: frames are 4x4, but 35709 vertices need 189x189"):
        read_mesh_sequence(prefix, BFM_VERTICES)
    with pytest.raises(FormatError, match=r"small_0\.nut: frames are 4x4, but 5 vertices need 3x3"):
        read_mesh_sequence(prefix, 5)


def _sequence_with_edited_header(tmp_path, name, axis, edit):
    """Write a small sequence, then rewrite one axis file with ``edit(frames)`` applied to its raw frames."""
    prefix = tmp_path / name
    write_mesh_sequence(prefix, _small_sequence())
    path = mesh_axis_paths(prefix)[axis]
    frames = read_quantised_axis(path, 12)
    edit(frames)
    write_quantised_axis(path, frames)
    return prefix


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_header_is_refused(tmp_path, bad):
    def set_max(frames):
        frames[2, 2:4] = np.array([bad], dtype="<f4").view("<u2")

    prefix = _sequence_with_edited_header(tmp_path, "nan", 1, set_max)
    with pytest.raises(FormatError, match=r"nan_1\.nut: frame 2 has a non-finite header"):
        read_mesh_sequence(prefix, 12)


def test_inverted_header_is_refused(tmp_path):
    def swap_min_and_max(frames):
        frames[0, 0:4] = frames[0, [2, 3, 0, 1]]

    prefix = _sequence_with_edited_header(tmp_path, "inv", 0, swap_min_and_max)
    with pytest.raises(FormatError, match=r"inv_0\.nut: frame 0 has max <= min"):
        read_mesh_sequence(prefix, 12)


def test_missing_axis_is_named(tmp_path):
    prefix = tmp_path / "two"
    write_mesh_sequence(prefix, _small_sequence())
    mesh_axis_paths(prefix)[2].unlink()
    with pytest.raises(FormatError, match=r"missing axis file\(s\) .*two_2\.nut"):
        read_mesh_sequence(prefix, 12)


@settings(max_examples=60, deadline=None)
@given(
    num_frames=st.integers(1, 4),
    num_vertices=st.integers(1, 60),
    scale=st.floats(1e-6, 2.0),
    offset=st.floats(-2.0, 2.0),
    seed=st.integers(0, 2**16),
)
def test_quantise_then_dequantise_stays_within_half_a_step(num_frames, num_vertices, scale, offset, seed):
    values = (np.random.default_rng(seed).normal(offset, scale, (num_frames, num_vertices))).astype(np.float32)
    frames = quantise(values)
    assert frames.shape == (num_frames, frame_side(num_vertices) ** 2) and frames.dtype == np.uint16
    back = dequantise(frames, num_vertices)
    span = values.max(axis=1).astype(np.float64) - values.min(axis=1) + 0.1
    # half a step, plus float32 rounding of the span, the product and the sum (an ulp each at most)
    bound = span / 2**17 + 2 * np.spacing((np.abs(values).max(axis=1) + span).astype(np.float32)).astype(np.float64)
    assert (np.abs(back.astype(np.float64) - values).max(axis=1) <= bound).all()


def test_other_pixel_formats_are_refused(tmp_path):
    import av

    path = tmp_path / "gray8_0.nut"
    with av.open(str(path), mode="w", format="nut") as container:
        stream = container.add_stream("ffv1", rate=30)
        stream.width = stream.height = 4
        stream.pix_fmt = "gray"
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((4, 4), np.uint8), format="gray")):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(FormatError, match=r"gray8_0\.nut: frame 0 has pixel format gray, expected gray16le"):
        read_quantised_axis(path, 12)
