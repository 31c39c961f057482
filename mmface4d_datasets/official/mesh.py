"""The authors' mesh sequences: three FFV1 ``gray16le`` videos in NUT containers (DESIGN.md, "The `.nut`
mesh encoding").

``{prefix}_0.nut`` (x), ``{prefix}_1.nut`` (y), ``{prefix}_2.nut`` (z). Each frame is an S x S image with
``S = ceil(sqrt(N + 4))``; flattened, pixels 0-1 hold the frame's float32 minimum and pixels 2-3 its
float32 maximum (the float's four bytes as two little-endian uint16), pixels 4 .. 4+N-1 the quantised
coordinates ``q``. Decoding, every operand float32: ``v = q.astype(float32) / 65536 * (max - min) + min``.

Here: the quantisation (`quantise` / `dequantise`), reading (with the complete-file check and the FFV1
slice-CRC check) and writing (FFV1 version 3 with slice CRCs, temporary names renamed when complete).
Videos are decoded with PyAV (imported on use), never with a system binary.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import numpy as np

from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.files import temporary_path
from mmface4d_datasets.vocabulary import FPS

#: Padding (metres) added below the minimum and above the maximum of each frame's axis on write.
QUANTISATION_PADDING = 0.05
#: Number of uint16 pixels that hold the frame header (float32 min, float32 max).
HEADER_PIXELS = 4
#: Axis names in file-suffix order.
AXES = ("x", "y", "z")

# The NUT index startcode ("NX" + 0xDD672F23E64E). FFmpeg's NUT muxer ends every complete file
# with an index whose last 12 bytes are its length (u64, big-endian) and a checksum (u32).
_NUT_INDEX_STARTCODE = bytes.fromhex("4e58dd672f23e64e")
_NUT_FILE_MAGIC = b"nut/multimedia container\x00"


def frame_side(num_vertices: int) -> int:
    """Side S of the square frame that holds ``num_vertices`` coordinates plus the 4-pixel header.

    ``S = ceil(sqrt(N + 4))`` (189 for the BFM front topology's 35,709 vertices).
    """
    if num_vertices < 1:
        raise ValueError(f"num_vertices must be positive, got {num_vertices}")
    side = math.isqrt(num_vertices + HEADER_PIXELS)
    return side if side * side == num_vertices + HEADER_PIXELS else side + 1


def mesh_axis_paths(prefix: str | os.PathLike) -> list[Path]:
    """The three files of a mesh sequence: ``{prefix}_0.nut``, ``{prefix}_1.nut``, ``{prefix}_2.nut``."""
    prefix = os.fspath(prefix)
    return [Path(f"{prefix}_{axis}.nut") for axis in range(len(AXES))]


def _check_nut_complete(path: Path) -> None:
    """Refuse a NUT file that is not complete: it must start with the NUT magic and end with an index.

    FFV1 version 1 frames carry no checksum and FFmpeg decodes a cut-off last frame without an error,
    so a truncated file is recognised by its missing trailer instead.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(len(_NUT_FILE_MAGIC))
            if head != _NUT_FILE_MAGIC:
                raise FormatError(f"{path}: not a NUT file (it does not start with the NUT magic)")
            if size < len(_NUT_FILE_MAGIC) + 12:
                raise FormatError(f"{path}: truncated NUT file ({size} bytes)")
            handle.seek(size - 12)
            (index_length,) = struct.unpack(">Q", handle.read(8))
            start = size - index_length
            if index_length < 12 or start < len(_NUT_FILE_MAGIC):
                raise FormatError(f"{path}: truncated NUT file (it does not end with a NUT index)")
            handle.seek(start)
            if handle.read(8) != _NUT_INDEX_STARTCODE:
                raise FormatError(
                    f"{path}: truncated NUT file (it does not end with a NUT index; files written without an index are not accepted either)"
                )
    except FileNotFoundError:
        raise FormatError(f"{path}: mesh axis file is missing") from None


class ChecksumError(FormatError):
    """A `.nut` file's FFV1 slice CRC does not match: the file was changed after it was written."""


def _crc_reports(logs) -> list[str]:
    """FFmpeg's reports of failed FFV1 checksums among captured log lines (level, name, message)."""
    return [message.strip() for _, _, message in logs if "CRC mismatch" in message]


def _capture_ffmpeg_errors():
    """A context that collects FFmpeg's error log lines (PyAV leaves FFmpeg's log off by default)."""
    import contextlib

    import av.logging

    @contextlib.contextmanager
    def capture():
        previous = av.logging.get_level()
        av.logging.set_level(av.logging.ERROR)
        try:
            with av.logging.Capture(local=False) as logs:
                yield logs
        finally:
            av.logging.set_level(previous)

    return capture()


def check_slice_crcs(path: str | os.PathLike, num_vertices: int) -> None:
    """Decode one axis file alone (no frame threads) and raise `ChecksumError` if FFmpeg reports an FFV1
    slice CRC mismatch. Files written by FFV1 version 3 with slice CRCs (ours, `write_mesh_sequence`)
    are checked; the authors' files (FFV1 version 1) carry no CRC, so nothing is reported for them."""
    with _capture_ffmpeg_errors() as logs:
        read_quantised_axis(path, num_vertices, threads=False, check_crc=False)
    reports = _crc_reports(logs)
    if reports:
        raise ChecksumError(f"{path}: FFV1 slice checksum mismatch ({'; '.join(reports[:4])}): the file is corrupted")


def read_quantised_axis(path: str | os.PathLike, num_vertices: int, *, threads: bool = True, check_crc: bool = True) -> np.ndarray:
    """Raw frames of one axis file as uint16, shape (T, S*S), flattened in row order.

    Pixels 0-3 of each row are the header (float32 min and max as little-endian uint16 pairs),
    pixels 4 .. 4+N-1 the quantised coordinates, the rest padding.
    Raises FormatError (naming the file) for a missing, truncated or undecodable file, a pixel format
    other than gray16le, or a frame size that does not fit ``num_vertices``; `ChecksumError` when the
    file carries FFV1 slice CRCs and one does not match (`check_crc`, see `check_slice_crcs`).
    """
    if check_crc:
        with _capture_ffmpeg_errors() as logs:
            frames = read_quantised_axis(path, num_vertices, threads=threads, check_crc=False)
        if _crc_reports(logs):
            check_slice_crcs(path, num_vertices)
        return frames
    import av

    path = Path(path)
    side = frame_side(num_vertices)
    _check_nut_complete(path)
    try:
        container = av.open(os.fspath(path))
    except av.error.FFmpegError as exc:
        raise FormatError(f"{path}: cannot open as a video: {exc}") from exc
    with container:
        if not container.streams.video:
            raise FormatError(f"{path}: holds no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO" if threads else "SLICE"
        # Start with room for the container's announced duration and grow if it was short.
        duration_s = (container.duration or 0) / 1e6
        capacity = max(16, int(math.ceil(duration_s * FPS)) + 2)
        frames = np.empty((capacity, side * side), dtype="<u2")
        count = 0
        try:
            for frame in container.decode(stream):
                if frame.format.name != "gray16le":
                    raise FormatError(f"{path}: frame {count} has pixel format {frame.format.name}, expected gray16le")
                if frame.width != side or frame.height != side:
                    raise FormatError(
                        f"{path}: frames are {frame.width}x{frame.height}, but {num_vertices} vertices "
                        f"need {side}x{side} (S = ceil(sqrt(N + 4)))"
                    )
                if count == len(frames):
                    frames = np.concatenate([frames, np.empty_like(frames)])
                plane = frame.planes[0]
                # Rows are padded to the plane's line size: view the buffer with its stride, copy once.
                stride = plane.line_size // 2
                rows = np.frombuffer(plane, dtype="<u2", count=side * stride).reshape(side, stride)
                frames[count].reshape(side, side)[...] = rows[:, :side]
                count += 1
        except av.error.FFmpegError as exc:
            raise FormatError(f"{path}: cannot decode frame {count}: {exc}") from exc
    if count == 0:
        raise FormatError(f"{path}: holds no frames")
    return frames[:count]


def dequantise(frames: np.ndarray, num_vertices: int, path: str | os.PathLike = "<frames>") -> np.ndarray:
    """Apply the authors' decoding rule to raw frames (T, S*S) uint16 -> (T, N) float32.

    ``v = q.astype(float32) / 65536 * (max - min) + min`` evaluated left to right with every operand
    float32 (``max - min`` taken in float32), which is what the authors' numpy decoder computes.
    Raises FormatError naming ``path`` and the frame when a header float is NaN or infinite, or when
    ``max <= min``.
    """
    header = np.ascontiguousarray(frames[:, :HEADER_PIXELS]).view("<f4")  # (T, 2): min, max
    low, high = header[:, 0].astype(np.float32), header[:, 1].astype(np.float32)
    bad = ~(np.isfinite(low) & np.isfinite(high))
    if bad.any():
        t = int(np.flatnonzero(bad)[0])
        raise FormatError(
            f"{path}: frame {t} has a non-finite header (min={low[t]}, max={high[t]}); {int(bad.sum())} of {len(bad)} frames are affected"
        )
    inverted = ~(high > low)
    if inverted.any():
        t = int(np.flatnonzero(inverted)[0])
        raise FormatError(f"{path}: frame {t} has max <= min in its header (min={low[t]}, max={high[t]})")
    span = (high - low)[:, None]  # float32 difference, as the authors' decoder takes it
    values = frames[:, HEADER_PIXELS : HEADER_PIXELS + num_vertices].astype(np.float32)
    values /= np.float32(65536)
    values *= span
    values += low[:, None]
    return values


def read_mesh_sequence(prefix: str | os.PathLike, num_vertices: int) -> np.ndarray:
    """Decode a mesh sequence from ``{prefix}_0.nut``, ``{prefix}_1.nut``, ``{prefix}_2.nut``.

    Returns (T, N, 3) float32 in metres (the coordinate frame the files were written in; for the
    authors' release that is camera 1's), bit for bit equal to DESIGN.md's float32 decoding rule
    (see :func:`dequantise`). ``num_vertices`` is N; the frames must be S x S with
    ``S = ceil(sqrt(N + 4))``.
    Raises FormatError naming the file for a missing or truncated axis file, axes with different
    frame counts, a frame size that does not fit N, or a non-finite/inverted header.
    """
    paths = mesh_axis_paths(prefix)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FormatError(f"mesh sequence {os.fspath(prefix)!s}: missing axis file(s) {', '.join(missing)}")
    from concurrent.futures import ThreadPoolExecutor

    # FFmpeg releases the GIL while decoding: the three axes decode side by side. FFmpeg's log does not
    # say which file a CRC report is about, so on a report each file is checked again alone.
    with _capture_ffmpeg_errors() as logs:
        with ThreadPoolExecutor(max_workers=len(paths)) as pool:
            raw = list(pool.map(lambda path: read_quantised_axis(path, num_vertices, check_crc=False), paths))
    if _crc_reports(logs):
        for path in paths:
            check_slice_crcs(path, num_vertices)
    vertices = np.empty((len(raw[0]), num_vertices, 3), dtype=np.float32)
    for axis, (path, frames) in enumerate(zip(paths, raw)):
        if len(frames) != len(vertices):
            raise FormatError(
                f"{path}: {len(frames)} frames, but {paths[0]} has {len(vertices)} "
                "(the three axes of a mesh sequence must have the same number of frames)"
            )
        vertices[:, :, axis] = dequantise(frames, num_vertices, path)
    return vertices


def quantise(values: np.ndarray) -> np.ndarray:
    """Encode one axis of a sequence, (T, N) float -> raw frames (T, S*S) uint16 by the authors' rule.

    Per frame: ``min = float32(v.min() - 0.05)``, ``max = float32(v.max() + 0.05)`` (metres),
    ``q = round((v - min) / (max - min) * 2^16)`` computed in float64 from the float32 header values
    and clipped to 0..65535; header pixels 0-1 / 2-3 hold min / max as little-endian uint16 pairs,
    padding pixels are 0. Decoding gives back ``v`` within ``(max - min) / 2^17`` plus float32
    rounding. ``values`` must be finite (ValueError otherwise).
    """
    values = np.asarray(values)
    num_frames, num_vertices = values.shape
    if not np.isfinite(values).all():
        raise ValueError("cannot encode non-finite coordinates (NaN or Inf)")
    side = frame_side(num_vertices)
    low = (values.min(axis=1).astype(np.float64) - QUANTISATION_PADDING).astype(np.float32)
    high = (values.max(axis=1).astype(np.float64) + QUANTISATION_PADDING).astype(np.float32)
    span = high.astype(np.float64) - low.astype(np.float64)
    scaled = (values.astype(np.float64) - low[:, None]) / span[:, None] * 65536.0
    frames = np.zeros((num_frames, side * side), dtype="<u2")
    frames[:, HEADER_PIXELS : HEADER_PIXELS + num_vertices] = np.clip(np.rint(scaled), 0, 65535)
    frames[:, :HEADER_PIXELS] = np.stack([low, high], axis=1).astype("<f4").view("<u2")
    return frames


def write_quantised_axis(path: str | os.PathLike, frames: np.ndarray, fps: int = FPS) -> None:
    """Write raw frames (T, S*S) uint16 as a lossless FFV1 gray16le video in a NUT container.

    Written to a temporary name in the same folder and renamed when complete.
    """
    path = Path(path)
    side = math.isqrt(frames.shape[1])
    if side * side != frames.shape[1]:
        raise ValueError(f"{path}: frames of {frames.shape[1]} pixels are not square")
    tmp = temporary_path(path)
    try:
        _encode_ffv1(tmp, frames.reshape(len(frames), side, side), fps)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _encode_ffv1(path: Path, images: np.ndarray, fps: int) -> None:
    import av

    with av.open(os.fspath(path), mode="w", format="nut") as container:
        # FFV1 version 3 with a CRC per slice: a changed byte is reported when read (check_slice_crcs).
        stream = container.add_stream("ffv1", rate=fps, options={"level": "3", "slicecrc": "1"})
        stream.width = images.shape[2]
        stream.height = images.shape[1]
        stream.pix_fmt = "gray16le"
        images = images.astype("<u2", copy=False)
        for image in images:
            frame = av.VideoFrame.from_ndarray(image, format="gray16le")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_mesh_sequence(prefix: str | os.PathLike, vertices: np.ndarray, fps: int = FPS) -> None:
    """Write a (T, N, 3) sequence (metres) as ``{prefix}_{0,1,2}.nut`` in the authors' encoding.

    Each axis is quantised by :func:`quantise` (per-frame extremes padded by 0.05 m, 16 bits) and
    stored losslessly (FFV1 gray16le, NUT). Reading the files back with :func:`read_mesh_sequence`
    gives the dequantised values: within ``(max - min) / 2^17`` (about 1.5 µm for a 0.2 m face)
    of the input per coordinate. All three files are written to temporary names first and renamed
    only when all three are complete. Raises ValueError for a wrong shape or non-finite coordinates.
    """
    vertices = np.asarray(vertices)
    if vertices.ndim != 3 or vertices.shape[2] != 3 or vertices.shape[0] < 1 or vertices.shape[1] < 1:
        raise ValueError(f"{os.fspath(prefix)}: vertices must be (T, N, 3) with T, N >= 1, got {vertices.shape}")
    if not np.isfinite(vertices).all():
        raise ValueError(f"{os.fspath(prefix)}: cannot write non-finite coordinates (NaN or Inf)")
    paths = mesh_axis_paths(prefix)
    temporaries = [temporary_path(p) for p in paths]
    try:
        for axis, tmp in enumerate(temporaries):
            frames = quantise(vertices[:, :, axis])
            side = frame_side(vertices.shape[1])
            _encode_ffv1(tmp, frames.reshape(len(frames), side, side), fps)
        for tmp, path in zip(temporaries, paths):
            os.replace(tmp, path)
    finally:
        for tmp in temporaries:
            if tmp.exists():
                tmp.unlink()
