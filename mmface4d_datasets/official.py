"""Readers and writers of the MMFace4D authors' release formats.

The formats (DESIGN.md, "Takes" and "The `.nut` mesh encoding"; the fixture README):

- mesh sequence: three FFV1 ``gray16le`` videos in NUT containers, ``{prefix}_0.nut`` (x),
  ``{prefix}_1.nut`` (y), ``{prefix}_2.nut`` (z). Each frame is an S x S image with
  ``S = ceil(sqrt(N + 4))``; flattened, pixels 0-1 hold the frame's float32 minimum and pixels 2-3
  its float32 maximum (the float's four bytes as two little-endian uint16), pixels 4 .. 4+N-1 the
  quantised coordinates ``q``. Decoding, every operand float32:
  ``v = q.astype(float32) / 65536 * (max - min) + min``;
- speech: ``ID.wav``, 16 kHz mono (the authors' files hold 32-bit float samples);
- calibration: ``ID_c.json`` per Azure Kinect camera, ``intrinsic_matrix`` column-major;
- landmarks: ``ID_c.pkl``, a pickled float64 numpy array (T, 98, 2) in pixels, read through the
  restricted unpickler of :mod:`mmface4d_datasets.safe_pickle`; our rig may write ``ID_c.landmarks.npy``.

Videos are decoded with PyAV (whose wheels carry FFmpeg), never with a system binary.
Every malformed input raises :class:`~mmface4d_datasets.errors.FormatError` naming the file.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmface4d_datasets.vocabulary import FPS, SAMPLE_RATE
from mmface4d_datasets.errors import FormatError

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


# --------------------------------------------------------------------------------------------
# .nut mesh sequences


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
                    f"{path}: truncated NUT file (it does not end with a NUT index; "
                    "files written without an index are not accepted either)"
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


def read_quantised_axis(path: str | os.PathLike, num_vertices: int, *, threads: bool = True,
                        check_crc: bool = True) -> np.ndarray:
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
            f"{path}: frame {t} has a non-finite header (min={low[t]}, max={high[t]}); "
            f"{int(bad.sum())} of {len(bad)} frames are affected"
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
    tmp = _temporary_sibling(path)
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


def _temporary_sibling(path: Path) -> Path:
    """A fresh hidden name beside ``path`` for writing before the rename.

    Not created here (mkstemp would create it with mode 0600, which the rename would keep): the
    writer creates it, so the finished file gets the usual permissions under the user's umask.
    """
    return path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(6)}.tmp"


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
    temporaries = [_temporary_sibling(p) for p in paths]
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


# --------------------------------------------------------------------------------------------
# audio


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a take's speech: returns (samples, sample_rate) with samples a 1-D float32 array.

    The file must be 16 kHz mono (the authors' WAVs hold 32-bit float samples; integer PCM is
    scaled to [-1, 1) by soundfile). Raises FormatError naming the file for an unreadable file,
    another sample rate or more than one channel (naming what was found).
    """
    import soundfile

    path = Path(path)
    try:
        info = soundfile.info(os.fspath(path))
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        if not path.exists():
            raise FormatError(f"{path}: audio file is missing") from None
        raise FormatError(f"{path}: not a readable audio file: {exc}") from exc
    _check_wav_complete(path)
    if info.samplerate != SAMPLE_RATE or info.channels != 1:
        raise FormatError(
            f"{path}: audio is {info.samplerate} Hz with {info.channels} channel(s); "
            f"expected {SAMPLE_RATE} Hz mono"
        )
    try:
        samples, rate = soundfile.read(os.fspath(path), dtype="float32", always_2d=False)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise FormatError(f"{path}: cannot decode the audio: {exc}") from exc
    if not np.isfinite(samples).all():
        raise FormatError(f"{path}: audio holds NaN or infinite samples")
    return samples, int(rate)


def _check_wav_complete(path: Path) -> None:
    """Refuse a RIFF/WAVE file whose ``data`` chunk is longer than the bytes the file holds.

    libsndfile silently shortens such a file to what is there, so a cut-off download would
    otherwise read as a shorter take. Other containers (FLAC, ...) are left to libsndfile.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if handle.read(4) != b"RIFF":
            return
        handle.seek(12)
        position = 12
        while position + 8 <= size:
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            position += 8
            if chunk_id == b"data":
                # 0xFFFFFFFF marks a stream whose length was never filled in: nothing to compare.
                if chunk_size != 0xFFFFFFFF and position + chunk_size > size:
                    raise FormatError(
                        f"{path}: truncated audio (the data chunk announces {chunk_size} bytes, "
                        f"the file holds {size - position})"
                    )
                return
            position += chunk_size + (chunk_size & 1)  # chunks are padded to even length
            handle.seek(position)


def write_audio(path: str | os.PathLike, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono samples as a 32-bit float WAV laid out like the authors' files, atomically.

    ``samples`` is 1-D (any float or int dtype, converted to float32 without rescaling). Chunks:
    ``fmt`` (IEEE float, format tag 3, 18 bytes), ``fact`` (frame count), ``data``; nothing else.
    libsndfile would add a ``PEAK`` chunk carrying the time of writing, so two writes of the same
    samples would differ; these bytes depend on the samples alone (the sample take's WAV comes back
    byte for byte from its samples).
    """
    import struct

    path = Path(path)
    data = np.asarray(samples, dtype="<f4")
    if data.ndim != 1:
        raise ValueError(f"{path}: audio samples must be 1-D (mono), got shape {data.shape}")
    payload = data.tobytes()
    fmt = struct.pack("<HHIIHHH", 3, 1, int(sample_rate), int(sample_rate) * 4, 4, 32, 0)
    chunks = b"".join([b"fmt ", struct.pack("<I", len(fmt)), fmt,
                       b"fact", struct.pack("<II", 4, len(data)),
                       b"data", struct.pack("<I", len(payload)), payload])
    tmp = _temporary_sibling(path)
    try:
        tmp.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# --------------------------------------------------------------------------------------------
# calibration and landmarks

#: Keys of an Azure Kinect calibration file and the JSON types each must have.
CALIBRATION_KEYS = {
    "color_mode": str,
    "depth_mode": str,
    "width": int,
    "height": int,
    "intrinsic_matrix": list,
    "serial_number": str,
    "stream_length_usec": int,
}


def read_calibration(path: str | os.PathLike) -> dict:
    """Read and validate one camera's calibration JSON (``ID_c.json``); returns the whole dict.

    Required keys and JSON types: :data:`CALIBRATION_KEYS` (further keys are kept as they are).
    ``width``/``height`` are positive pixels; ``intrinsic_matrix`` is 9 finite numbers in
    COLUMN-major order ``(fx, 0, 0, 0, fy, 0, cx, cy, 1)`` with fx, fy > 0 - a row-major list (cx at
    position 2) is refused rather than silently transposed.
    Raises FormatError naming the file and the missing key / problem for unreadable or invalid JSON.
    """
    import json

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FormatError(f"{path}: calibration file is missing") from None
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: calibration is not UTF-8 text: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}: calibration is not valid JSON: {exc}") from exc
    except RecursionError:
        raise FormatError(f"{path}: calibration JSON is nested too deeply to be a calibration") from None
    if not isinstance(data, dict):
        raise FormatError(f"{path}: calibration must be a JSON object, found {type(data).__name__}")
    missing = [key for key in CALIBRATION_KEYS if key not in data]
    if missing:
        raise FormatError(f"{path}: calibration lacks the key(s) {', '.join(missing)}")
    for key, kind in CALIBRATION_KEYS.items():
        value = data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            expected = {str: "a string", int: "an integer", list: "a list"}[kind]
            raise FormatError(f"{path}: calibration key {key!r} must be {expected}, found {value!r}")
    for key in ("width", "height"):
        if data[key] <= 0:
            raise FormatError(f"{path}: calibration key {key!r} must be positive, found {data[key]}")
    _intrinsics_from_list(data["intrinsic_matrix"], path)
    return data


def _intrinsics_from_list(values, path: Path) -> np.ndarray:
    if len(values) != 9 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise FormatError(f"{path}: intrinsic_matrix must be a list of 9 numbers, found {values!r}")
    matrix = np.asarray(values, dtype=np.float64).reshape(3, 3, order="F")
    if not np.isfinite(matrix).all():
        raise FormatError(f"{path}: intrinsic_matrix holds NaN or infinite values")
    if matrix[1, 0] != 0 or matrix[2, 0] != 0 or matrix[2, 1] != 0 or matrix[2, 2] != 1:
        raise FormatError(
            f"{path}: intrinsic_matrix is not column-major (fx, 0, 0, 0, fy, 0, cx, cy, 1): {values!r}"
        )
    if matrix[0, 0] <= 0 or matrix[1, 1] <= 0:
        raise FormatError(f"{path}: intrinsic_matrix has non-positive focal lengths: {values!r}")
    return matrix


def read_intrinsics(path: str | os.PathLike) -> np.ndarray:
    """The camera matrix K (3, 3) float64 of a calibration JSON, in pixels.

    ``K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` from the column-major ``intrinsic_matrix`` list;
    the file is validated by :func:`read_calibration` first.
    """
    path = Path(path)
    return _intrinsics_from_list(read_calibration(path)["intrinsic_matrix"], path)


#: Landmark layouts a take may carry: 98 points (WFLW / HRNetv2, the authors' files) or 68 (iBUG).
LANDMARK_POINTS = (98, 68)
#: Frames by which a take's landmarks may differ from its mesh sequence: none (the authors' sample
#: has 67 of each; a landmark per mesh frame is what the raw config promises).
LANDMARK_FRAME_TOLERANCE = 0


def check_landmarks_agree(landmarks: np.ndarray, num_frames: int, path: str | os.PathLike,
                          tolerance: int = LANDMARK_FRAME_TOLERANCE) -> None:
    """Raise FormatError naming ``path`` unless the landmarks have as many frames as the take's mesh
    sequence (``num_frames``, within ``tolerance`` frames, stated in the message)."""
    frames = int(np.asarray(landmarks).shape[0])
    if abs(frames - int(num_frames)) > tolerance:
        allowed = "exactly" if tolerance == 0 else f"within {tolerance} frame(s) of"
        raise FormatError(f"{path}: landmarks hold {frames} frames, the take's mesh sequence {num_frames}; "
                          f"they must have {allowed} as many (one landmark set per mesh frame)")


def read_landmarks(path: str | os.PathLike) -> np.ndarray:
    """2-D facial landmarks of one camera, (T, K, 2) float64 in pixels (K = 98 in the authors' files,
    or 68; see :data:`LANDMARK_POINTS`).

    ``ID_c.pkl`` (the authors') is read through the restricted unpickler (numpy arrays only; any
    other global raises UnsafePickleError and is never executed); ``ID_c.landmarks.npy`` (our rig)
    with ``np.load(allow_pickle=False)``. Raises FormatError naming the file for another shape, a
    non-numeric dtype, or NaN/Inf values.
    """
    from mmface4d_datasets.safe_pickle import load_array

    path = Path(path)
    if path.name.endswith(".npy"):
        try:
            array = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise FormatError(f"{path}: landmark file is missing") from None
        except ValueError as exc:  # object arrays need pickle: refused
            raise FormatError(f"{path}: not a plain numeric .npy array: {exc}") from exc
        if array.dtype.kind not in "iuf":
            raise FormatError(f"{path}: landmark array has dtype {array.dtype}, expected numbers")
    else:
        array = load_array(path, kinds="iuf")
    if array.ndim != 3 or array.shape[2] != 2 or array.shape[0] < 1:
        raise FormatError(f"{path}: landmarks must be (T, K, 2), found shape {array.shape}")
    if array.shape[1] not in LANDMARK_POINTS:
        raise FormatError(f"{path}: landmarks hold {array.shape[1]} points per frame, expected 98 (WFLW) or 68 (iBUG)")
    array = array.astype(np.float64, copy=False)
    finite = np.isfinite(array).all(axis=(1, 2))
    if not finite.all():
        raise FormatError(f"{path}: landmarks of frame {int(np.flatnonzero(~finite)[0])} hold NaN or Inf")
    return array


# --------------------------------------------------------------------------------------------
# takes


@dataclass(frozen=True)
class Take:
    """The files of one take (DESIGN.md, Takes). Paths only; nothing is decoded until asked.

    ``mesh_prefix``: the mesh files are ``f"{mesh_prefix}_{a}.nut"`` for a = 0, 1, 2 (x, y, z).
    ``calibrations`` / ``landmarks``: camera index (0, 1, 2) -> file, possibly empty.
    ``meta`` (``ID.meta.json``) and ``ground_truth`` (``ID.gt.npz``, synthetic takes) may be None.
    ``depth_videos`` / ``colour_videos``: camera index -> ``ID_c.nut`` / ``ID_c.mp4`` of a rig take
    (read with :mod:`mmface4d_datasets.take_files`), possibly empty.
    """

    take_id: str
    folder: Path
    audio: Path
    mesh_prefix: Path
    calibrations: dict[int, Path] = field(default_factory=dict)
    landmarks: dict[int, Path] = field(default_factory=dict)
    meta: Path | None = None
    ground_truth: Path | None = None
    depth_videos: dict[int, Path] = field(default_factory=dict)
    colour_videos: dict[int, Path] = field(default_factory=dict)

    def __hash__(self) -> int:
        # the dict fields are unhashable; a take is identified by its id and folder
        return hash((self.take_id, self.folder))

    @property
    def mesh_paths(self) -> list[Path]:
        """The three axis files x, y, z."""
        return mesh_axis_paths(self.mesh_prefix)

    def vertices(self, num_vertices: int) -> np.ndarray:
        """The decoded mesh sequence (T, N, 3) float32, metres (see :func:`read_mesh_sequence`)."""
        return read_mesh_sequence(self.mesh_prefix, num_vertices)

    def read_audio(self) -> tuple[np.ndarray, int]:
        """The take's speech (float32 samples, 16000); see :func:`read_audio`."""
        return read_audio(self.audio)


_TAKE_ID = r"(?P<id>[0-9]{6})"
_CAMERA = r"(?P<index>[0-2])"
# (kind, pattern) of every file name that belongs to a take; the first match decides.
_TAKE_FILE_PATTERNS = [
    ("audio", re.compile(rf"{_TAKE_ID}\.wav")),
    ("mesh", re.compile(rf"{_TAKE_ID}_filt_{_CAMERA}\.nut")),
    ("calibration", re.compile(rf"{_TAKE_ID}_{_CAMERA}\.json")),
    ("landmarks", re.compile(rf"{_TAKE_ID}_{_CAMERA}\.pkl")),
    ("landmarks", re.compile(rf"{_TAKE_ID}_{_CAMERA}\.landmarks\.npy")),
    ("camera_video", re.compile(rf"{_TAKE_ID}_{_CAMERA}\.(mp4|nut)")),
    ("meta", re.compile(rf"{_TAKE_ID}\.meta\.json")),
    ("ground_truth", re.compile(rf"{_TAKE_ID}\.gt\.npz")),
]
# A one-take folder's mesh files carry no take id (as in the authors' sample take).
_PER_TAKE_MESH = re.compile(rf"reconstruct_filt_{_CAMERA}\.nut")
_STARTS_WITH_TAKE_ID = re.compile(rf"{_TAKE_ID}[._]")


class _TakeFiles:
    """What one folder holds for one take id while the folder is being scanned."""

    def __init__(self, take_id: str, meshes: bool = True):
        self.take_id = take_id
        self.meshes = meshes
        self.videos: dict[str, dict[int, Path]] = {".nut": {}, ".mp4": {}}
        self.audio: Path | None = None
        self.mesh: dict[int, Path] = {}
        self.reconstruct_mesh: dict[int, Path] = {}
        self.calibrations: dict[int, Path] = {}
        self.landmarks: dict[int, Path] = {}
        self.meta: Path | None = None
        self.ground_truth: Path | None = None
        self.problems: list[str] = []

    def add(self, kind: str, index: int | None, path: Path) -> None:
        if kind in ("audio", "meta", "ground_truth"):
            setattr(self, kind, path)
        elif kind == "mesh":
            self.mesh[index] = path
        elif kind == "calibration":
            self.calibrations[index] = path
        elif kind == "camera_video":
            self.videos[path.suffix][index] = path
        elif kind == "landmarks":
            if index in self.landmarks:
                self.problems.append(
                    f"camera {index} has two landmark files, {self.landmarks[index].name} and {path.name}"
                )
            self.landmarks[index] = path

    def finish(self, folder: Path) -> Take | None:
        """The Take, or None with the reasons appended to ``problems``."""
        if self.mesh and self.reconstruct_mesh:
            self.problems.append(
                "both ID_filt_*.nut and reconstruct_filt_*.nut mesh files: "
                + ", ".join(p.name for p in [*self.mesh.values(), *self.reconstruct_mesh.values()])
            )
        axes = self.mesh or self.reconstruct_mesh
        prefix = folder / (f"{self.take_id}_filt" if self.mesh or not self.reconstruct_mesh else "reconstruct_filt")
        if self.audio is None:
            self.problems.append(f"missing {self.take_id}.wav")
        missing_axes = [a for a in range(len(AXES)) if a not in axes]
        if missing_axes and (self.meshes or axes):
            self.problems.append("missing " + ", ".join(f"{prefix.name}_{a}.nut" for a in missing_axes))
        if self.problems:
            return None
        return Take(
            take_id=self.take_id,
            folder=folder,
            audio=self.audio,
            mesh_prefix=prefix,
            calibrations=dict(sorted(self.calibrations.items())),
            landmarks=dict(sorted(self.landmarks.items())),
            meta=self.meta,
            ground_truth=self.ground_truth,
            depth_videos=dict(sorted(self.videos[".nut"].items())),
            colour_videos=dict(sorted(self.videos[".mp4"].items())),
        )


def _scan_folder(folder: Path, names: list[str], meshes: bool = True) -> tuple[dict[str, Take], dict[str, list[str]], list[str]]:
    """Group one folder's files by take (not recursive).

    Returns (takes by id, problems by take id, problems of the folder itself).
    Files that name no take and are no ``.nut`` (README.md, bfm_faces.pkl, ...) are ignored.
    """
    files: dict[str, _TakeFiles] = {}
    per_take_mesh: dict[int, Path] = {}
    folder_problems: list[str] = []
    for name in sorted(names):
        path = folder / name
        match = _PER_TAKE_MESH.fullmatch(name)
        if match:
            per_take_mesh[int(match["index"])] = path
            continue
        for kind, pattern in _TAKE_FILE_PATTERNS:
            match = pattern.fullmatch(name)
            if match:
                files.setdefault(match["id"], _TakeFiles(match["id"], meshes)).add(
                    kind, int(match["index"]) if "index" in pattern.groupindex else None, path
                )
                break
        else:
            match = _STARTS_WITH_TAKE_ID.match(name)
            if match:
                files.setdefault(match["id"], _TakeFiles(match["id"], meshes)).problems.append(f"unexpected file {name}")
            elif name.endswith(".nut"):
                folder_problems.append(f"unexpected file {name} (a .nut that is no mesh axis or camera video)")
    if per_take_mesh:
        if len(files) == 1:
            next(iter(files.values())).reconstruct_mesh = per_take_mesh
        else:
            found = ", ".join(sorted(files)) or "none"
            folder_problems.append(
                "reconstruct_filt_*.nut needs exactly one take in its folder (named by its ID.wav); "
                f"take ids found: {found}"
            )
    takes: dict[str, Take] = {}
    problems: dict[str, list[str]] = {}
    for take_id, take_files in files.items():
        take = take_files.finish(folder)
        if take is None:
            problems[take_id] = take_files.problems
        else:
            takes[take_id] = take
    return takes, problems, folder_problems


def _problem_report(header: str, problems: list[str], limit: int = 30) -> str:
    shown = problems[:limit]
    more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
    return header + "\n  " + "\n  ".join(shown) + more


@dataclass(frozen=True)
class TakeScan:
    """What :func:`scan_takes` found: the complete takes and every problem, nothing raised.

    ``problems`` maps a take id to the reasons that take was left out (missing, unexpected or
    conflicting files), each a line ``"{folder}: take {id}: {reason}"``; ``other_problems`` lists what concerns
    no single take (a stray ``.nut``, a one-take folder holding several ids, a take id in two folders).
    """

    takes: list[Take]
    problems: dict[str, list[str]]
    other_problems: list[str]

    def all_problems(self) -> list[str]:
        """Every problem as one line, take problems first (sorted by take id)."""
        return [line for take_id in sorted(self.problems) for line in self.problems[take_id]] + self.other_problems


def scan_takes(root: str | os.PathLike, *, meshes: bool = True) -> TakeScan:
    """Walk ``root`` like :func:`find_takes` but return the problems instead of raising.

    For callers that want to go on without the incomplete takes (e.g. a builder's ``--on-error
    skip``). A take id found in two folders is an ``other_problem`` and both copies are left out.
    """
    root = Path(root)
    if not root.is_dir():
        raise FormatError(f"{root}: no such folder")
    takes: dict[str, Take] = {}
    problems: dict[str, list[str]] = {}
    other: list[str] = []
    duplicated: set[str] = set()
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        folder = Path(folder)
        found, take_problems, folder_problems = _scan_folder(folder, filenames, meshes)
        other += [f"{folder}: {p}" for p in folder_problems]
        for take_id, reasons in take_problems.items():
            problems.setdefault(take_id, []).extend(f"{folder}: take {take_id}: {reason}" for reason in reasons)
        for take_id, take in found.items():
            if take_id in takes:
                other.append(f"take {take_id} appears twice: in {takes[take_id].folder} and in {folder}")
                duplicated.add(take_id)
            else:
                takes[take_id] = take
    return TakeScan(
        takes=[takes[t] for t in sorted(takes) if t not in duplicated and t not in problems],
        problems={t: problems[t] for t in sorted(problems)},
        other_problems=other,
    )


def find_takes(root: str | os.PathLike, *, meshes: bool = True) -> list[Take]:
    """Every take under ``root``, sorted by take id (DESIGN.md, Takes).

    ``root`` is walked recursively (hidden folders skipped, symlinked folders not followed). A folder
    is FLAT (takes side by side, mesh files ``ID_filt_a.nut``) or holds ONE TAKE whose mesh files may
    be ``reconstruct_filt_a.nut`` (its id from the ``ID.wav`` name). A take needs ``ID.wav`` and all
    three mesh axes; calibrations, landmarks, ``ID.meta.json`` and ``ID.gt.npz`` are optional.
    Unexpected files are those whose name starts with a take id but match no known name (e.g.
    ``ID_3.json``, ``ID_filt_3.nut``) and ``.nut`` files that are neither mesh axes nor camera videos;
    other files (README.md, bfm_faces.pkl, ...) are ignored. All problems of the tree (missing files,
    unexpected files, a take id found in two folders) are raised together as one FormatError that
    names each file. An existing tree without takes gives an empty list. :func:`scan_takes` returns
    the problems instead. ``meshes=False`` also accepts rig takes without meshes (``mmface4d rig
    convert`` / ``rig simulate``: ``ID_c.nut`` depth and ``ID_c.mp4`` colour videos instead); a take
    with only some of the three axes is still a problem.
    """
    scan = scan_takes(root, meshes=meshes)
    problems = scan.all_problems()
    if problems:
        raise FormatError(_problem_report(f"{root}: {len(problems)} problem(s) with the takes found:", problems))
    return scan.takes


def read_take(path: str | os.PathLike, take_id: str | None = None, *, meshes: bool = True) -> Take:
    """One take from a folder (not recursive), or from the path of one of its files.

    With ``take_id`` None the folder must hold exactly one take (a file path names its take when
    its name starts with the id). Raises FormatError naming the folder and every missing or
    unexpected file of that take; problems of other takes in a flat folder are not this take's.
    ``meshes=False`` accepts a rig take without meshes (see :func:`find_takes`).
    """
    path = Path(path)
    if path.is_file():
        match = _STARTS_WITH_TAKE_ID.match(path.name)
        if take_id is None and match:
            take_id = match["id"]
        path = path.parent
    if not path.is_dir():
        raise FormatError(f"{path}: no such take folder")
    takes, take_problems, folder_problems = _scan_folder(path, [p.name for p in path.iterdir() if p.is_file()], meshes)
    if take_id is None:
        ids = sorted({*takes, *take_problems})
        if len(ids) != 1:
            raise FormatError(
                f"{path}: holds {len(ids)} takes ({', '.join(ids) or 'none'}); pass take_id to choose one"
            )
        take_id = ids[0]
    reasons = take_problems.get(take_id, []) + folder_problems
    if reasons:
        raise FormatError(_problem_report(f"{path}: take {take_id}: {len(reasons)} problem(s):", reasons))
    if take_id not in takes:
        raise FormatError(f"{path}: no take {take_id} here (takes: {', '.join(sorted(takes)) or 'none'})")
    return takes[take_id]
