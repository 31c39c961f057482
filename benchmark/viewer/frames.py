"""The viewer's binary vertex form ("MF4V", version 1): a mesh sequence quantised in its own box.

Layout (little-endian)::

    offset  size  field
    0       4     magic b"MF4V"
    4       2     version (1)
    6       2     flags (0)
    8       4     num_frames T
    12      4     num_vertices N
    16      24    origin: float64 x, y, z (metres; the box's minimum corner)
    40      24    step: float64 x, y, z (metres per quantisation unit)
    64      ...   gzip stream of the payload

Each coordinate is quantised to 16 bits in the sequence's box: ``q = round((v - origin) / step)``
with ``step = extent / 65535`` per axis, so the error is at most ``step / 2`` (a 0.3 m box: 2.3 µm;
the page must show positions within 0.1 mm of the release). The payload holds the (T, N, 3) codes
frame by frame as temporal differences modulo 2**16 (frame 0 against zero), zigzag-mapped so that
small steps of either sign become small numbers, and split into two byte planes (all low bytes,
then all high bytes), which gzip packs well; the browser inflates it with its own
``DecompressionStream("gzip")``. Decoding (``static/viewer.js`` and :func:`decode_frames`, the same
rule): un-split, un-zigzag, cumulative sum modulo 2**16, then ``v = origin + q * step``.

The triangles go once per topology (:func:`encode_faces`: "MF4F", uint32 count and gzip of uint32
indices).
"""

from __future__ import annotations

import gzip
import struct

import numpy as np

MAGIC = b"MF4V"
FACES_MAGIC = b"MF4F"
VERSION = 1
HEADER = struct.Struct("<4sHHII3d3d")
FACES_HEADER = struct.Struct("<4sHHI")
LEVELS = 65535
#: gzip levels: the server answers at once with level 1 (about 6x faster than 6, about 40 % larger);
#: a static export, made once and downloaded many times, packs with level 6 (zlib's default).
SERVER_LEVEL = 1
EXPORT_LEVEL = 6


class FrameFormatError(ValueError):
    """Bytes that are not an MF4V / MF4F stream of this version."""


def quantisation_box(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(origin, step) of a (T, N, 3) sequence: its minimum corner and extent / 65535 per axis (float64).
    A flat axis gets a 1 nm step, so that every code stays 0 and nothing divides by zero."""
    flat = np.asarray(vertices).reshape(-1, 3)
    low = flat.min(axis=0).astype(np.float64)
    high = flat.max(axis=0).astype(np.float64)
    step = np.maximum(high - low, 1e-9) / LEVELS
    return low, step


def encode_frames(vertices: np.ndarray, level: int = EXPORT_LEVEL) -> bytes:
    """The MF4V bytes of a finite (T, N, 3) float array in metres (``level``: gzip's, 1..9).

    The codes are computed in float32 (``(v - origin) * (1 / step)``): a code may land one off the
    float64 rounding where a value sits on a half step, so the error stays within ``step / 2`` plus
    float32 rounding (under 10 nm for a face)."""
    array = np.asarray(vertices)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"encode_frames: expected (T, N, 3) vertices, got shape {array.shape}")
    frames, count = array.shape[:2]
    if array.size == 0:
        origin, step = np.zeros(3), np.full(3, 1e-9 / LEVELS)
        codes = np.zeros((frames, count, 3), dtype=np.uint16)
    else:
        origin, step = quantisation_box(array)
        if not (np.isfinite(origin).all() and np.isfinite(step).all()):  # NaN and infinities show in the box
            raise ValueError("encode_frames: the vertices hold NaN or infinite values")
        scaled = (array.astype(np.float32, copy=False) - origin.astype(np.float32)) * (1.0 / step).astype(np.float32)
        codes = np.rint(scaled, out=scaled).clip(0, LEVELS).astype(np.uint16)
    deltas = codes.copy()
    deltas[1:] -= codes[:-1]  # modulo 2**16 (uint16 wraps)
    signed = deltas.view(np.int16).astype(np.int32)
    zigzag = ((signed << 1) ^ (signed >> 15)).astype(np.uint16)
    planes = zigzag.reshape(-1).view(np.uint8).reshape(-1, 2).T  # [low bytes, high bytes]
    payload = gzip.compress(np.ascontiguousarray(planes).tobytes(), compresslevel=level, mtime=0)
    return HEADER.pack(MAGIC, VERSION, 0, frames, count, *origin, *step) + payload


def decode_frames(data: bytes) -> np.ndarray:
    """(T, N, 3) float32 from MF4V bytes: the rule ``static/viewer.js`` applies (a cross-check in Python)."""
    if len(data) < HEADER.size:
        raise FrameFormatError(f"MF4V: {len(data)} bytes, shorter than the {HEADER.size}-byte header")
    magic, version, _flags, frames, count, *box = HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        raise FrameFormatError(f"not an MF4V version {VERSION} stream (magic {magic!r}, version {version})")
    raw = gzip.decompress(data[HEADER.size :])
    values = frames * count * 3
    if len(raw) != 2 * values:
        raise FrameFormatError(f"MF4V: payload holds {len(raw)} bytes, {frames} x {count} x 3 codes need {2 * values}")
    planes = np.frombuffer(raw, dtype=np.uint8).reshape(2, values)
    zigzag = planes[0].astype(np.uint32) | (planes[1].astype(np.uint32) << 8)
    deltas = ((zigzag >> 1) ^ (-(zigzag & 1).astype(np.int64)).astype(np.uint32)) & 0xFFFF
    codes = np.cumsum(deltas.reshape(frames, count, 3).astype(np.uint32), axis=0) & 0xFFFF
    origin, step = np.array(box[:3]), np.array(box[3:])
    return (origin + codes * step).astype(np.float32)


def encode_faces(triangles: np.ndarray) -> bytes:
    """The MF4F bytes of an (F, 3) integer triangle array."""
    faces = np.ascontiguousarray(np.asarray(triangles, dtype="<u4").reshape(-1, 3))
    return FACES_HEADER.pack(FACES_MAGIC, VERSION, 0, len(faces)) + gzip.compress(faces.tobytes(), compresslevel=EXPORT_LEVEL, mtime=0)


def decode_faces(data: bytes) -> np.ndarray:
    """(F, 3) uint32 from MF4F bytes."""
    magic, version, _flags, count = FACES_HEADER.unpack_from(data)
    if magic != FACES_MAGIC or version != VERSION:
        raise FrameFormatError(f"not an MF4F version {VERSION} stream (magic {magic!r}, version {version})")
    return np.frombuffer(gzip.decompress(data[FACES_HEADER.size :]), dtype="<u4").reshape(count, 3)
