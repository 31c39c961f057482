"""Our storage format for mesh sequences: (T, N, 3) float32 in metres, with a guaranteed error bound.

``encode(vertices, max_error=1e-5)`` returns bytes that ``decode`` turns back into a (T, N, 3) float32
array whose every coordinate lies within ``max_error`` metres of the input:
``max |decode(encode(v, e)) - v| <= e``.  The encoder checks this on its own output with exactly the
arithmetic the decoder uses, so the bound holds for every input it accepts, not on average.

Format 3 (the default; docs/codec.md has the byte layout, the proof and the measurements) adds the
LOW-RANK mode, chosen whenever it is smaller: per chunk of at most 128 frames, a mean shape plus K
temporal components (eigenvectors of the frames' Gram matrix, rounded to 2**-15) times K spatial
maps (integers, predicted along the vertex order like the grid mode's frames, then from two places
back), decoded by one float32 BLAS product; then an exact L-infinity residual stage on a step that
keeps back a proven bound on any float32 summation order's rounding (the margin), so the bound holds
on every machine. Decoded bits of this mode may differ between BLAS builds within the margin.
``encode(..., version="2")`` still writes format 2; ``decode`` reads both.

The grid mode (all of format 2):

1. Quantise. Every coordinate goes onto a uniform grid per axis,
   ``q = rint((v - origin) / step)`` with ``step = 2 * max_error * (1 - 2**-20)`` (slightly under
   twice the bound, so grid rounding alone stays strictly inside it) and ``origin`` the axis minimum.
   The decoder reconstructs ``float32(origin + float64(q) * step)``: correctly rounded IEEE
   operations, identical on every machine.
2. Check. The encoder runs that same reconstruction and compares with the input. The float32 cast
   can add up to half a float32 ulp, which matters only for coordinates of hundreds of metres; any
   coordinate that misses the bound is stored verbatim as an exception (index + float32 value).
   If exceptions are many, or the grid would need 2**53 levels or more, the whole sequence is
   stored losslessly instead (raw float32, byte-shuffled, zstd). Finally the encoder decodes its
   own bytes and falls back to the lossless mode should the bound not hold (it always has).
3. Predict the integers (lossless): every frame after the first by the previous frame, then the
   change of each vertex by the change of its predecessor in the vertex order (motion is smooth
   over the surface). Where the vertex order jumps (a new scan row), the vertex is predicted from
   the nearest earlier vertex instead; the encoder finds these on frame 0 and stores the
   (start, reference) table, so the decoder needs no mesh and no rule from outside the bytes.
   Optionally (a weight in the header, chosen by trial compression) that residual is further
   predicted by a quarter, half or three quarters of the previous frame's.
4. Entropy-code: residuals are zig-zag mapped to 4-bit symbols, two per byte (15 escapes to a
   side stream), and compressed with zstd.

Only the integer path must be exact; the prediction decides how small the numbers are.

Robustness: the bytes start with a magic, the format version, the shape and the bound, and end the
header with a CRC-32 of everything. ``decode`` refuses a short, corrupted or unknown-version stream
with :class:`CodecError` (a :class:`~mmface4d_datasets.errors.FormatError`) and validates every
declared size against the shape *before* it allocates: a header that claims 10**12 frames behind a
small payload is refused at once.

Edge cases: NaN or Inf in the input raise :class:`CodecError` (they have no place on a grid and a
bound cannot be checked against them). T = 0 or N = 0 is allowed and round-trips to an empty array
of the same shape. ``max_error = 0`` means lossless. Non-float32 input is first converted to float32
(``np.asarray(vertices, np.float32)``); the bound is against that float32 array.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from mmface4d_datasets.errors import FormatError

__all__ = ["CODEC_VERSION", "DEFAULT_LEVEL", "CodecError", "decode", "encode", "peek"]

#: Version of the byte format written by :func:`encode` (bumped whenever the layout changes).
CODEC_VERSION = "3"
_FORMAT = 3
_READABLE_FORMATS = (2, 3)
#: Versions :func:`encode` can still write (``version=``): the newest by default, the previous one on request.
WRITABLE_VERSIONS = ("2", "3")

_MAGIC = b"MF4C"
# magic, format, mode, temporal weight (quarters), T, N, max_error, step, grid levels, origin x y z,
# number of sections, payload bytes, crc32 (of the header before it and the whole payload)
_HEADER = struct.Struct("<4sHBBQQddQ3dIQI")
_PREFIX = struct.Struct("<4sH")
# name, compression, element code, stored bytes, raw bytes
_SECTION = struct.Struct("<4sBBQQ")

_MODE_EMPTY = 0
_MODE_RAW = 1
_MODE_GRID = 2
_MODE_LOWRANK = 3
_MODE_NAMES = {_MODE_EMPTY: "empty", _MODE_RAW: "raw-float32", _MODE_GRID: "grid", _MODE_LOWRANK: "lowrank"}
#: The modes each format defines (format 2 has no low-rank mode).
_FORMAT_MODES = {2: (_MODE_EMPTY, _MODE_RAW, _MODE_GRID), 3: (_MODE_EMPTY, _MODE_RAW, _MODE_GRID, _MODE_LOWRANK)}

_STORED = 0
_ZSTD = 1

_ELEMENT_DTYPES = {
    0: np.dtype("u1"),
    1: np.dtype("<u2"),
    2: np.dtype("<u4"),
    3: np.dtype("<u8"),
    4: np.dtype("<f4"),
    5: np.dtype("<i8"),
    6: np.dtype("<f8"),
}
_ELEMENT_CODES = {dtype: code for code, dtype in _ELEMENT_DTYPES.items()}

#: The grid step is this fraction of twice the bound, so rounding to the grid stays inside the bound.
_STEP_FRACTION = 1.0 - 2.0**-20
#: Largest grid index: beyond it float64 no longer holds every integer exactly.
_MAX_GRID_INDEX = 2**53
#: Above this share of exception coordinates the lossless mode is smaller and simpler.
_MAX_EXCEPTION_SHARE = 0.01
#: zstd expands data at most about 32,768-fold (a 3-byte RLE block header per 128 KiB), so a declared
#: raw size above ``_MAX_ZSTD_RATIO * stored + 2**16`` cannot be genuine and is refused before allocating.
_MAX_ZSTD_RATIO = 65536
#: zstd level of the payload: 12 encodes the fixture take in under a second; 19 is about 3.5% smaller
#: at four times the encoding time. Decoding speed does not depend on it.
DEFAULT_LEVEL = 12
#: Segment starts beyond one in this many vertices mean there is no row structure to describe.
_MAX_SEGMENT_SHARE = 8
#: How far back (in vertex order) a segment start looks for its nearest earlier vertex.
_REFERENCE_WINDOW = 1024
#: Vertices in the block on which the temporal weight is chosen.
_WEIGHT_SAMPLE = 4096


class CodecError(FormatError):
    """Bytes that are not a valid codec stream, or an input the codec cannot store within its bound."""


@dataclass(frozen=True)
class _Header:
    format: int
    mode: int
    temporal_weight: int
    num_frames: int
    num_vertices: int
    max_error: float
    step: float
    grid_levels: int
    origin: tuple[float, float, float]
    num_sections: int
    payload_bytes: int
    crc32: int


# ---------------------------------------------------------------------------------------------- encode


def encode(vertices, max_error: float = 1e-5, *, level: int = DEFAULT_LEVEL, version: str = CODEC_VERSION) -> bytes:
    """Encode a (T, N, 3) mesh sequence (metres) so every decoded coordinate is within ``max_error``.

    Args:
        vertices: array-like of shape (T, N, 3); converted to float32. T = 0 or N = 0 is allowed.
        max_error: the guaranteed maximum per-coordinate error in metres (default 10 µm); 0 means
            lossless. Must be finite and >= 0.
        level: zstd level (1..22) of the payload: higher is smaller and slower to encode, never
            slower to decode.
        version: the format to write, one of :data:`WRITABLE_VERSIONS` (default: the newest,
            :data:`CODEC_VERSION`). Version "2" writes exactly the bytes the previous release did.

    Returns:
        Self-contained bytes: shape, bound and codec version travel inside.

    Raises:
        CodecError: NaN or Inf in ``vertices``, a wrong shape, an invalid ``max_error``, ``level`` or
            ``version``.
    """
    if str(version) not in WRITABLE_VERSIONS:
        raise CodecError(f"codec version {version!r} cannot be written (this package writes {', '.join(WRITABLE_VERSIONS)})")
    fmt = int(version)
    array = _validated_input(vertices)
    max_error = _validated_bound(max_error)
    if not isinstance(level, int) or not 1 <= level <= 22:
        raise CodecError(f"level must be a zstd level from 1 to 22, got {level!r}")
    num_frames, num_vertices, _ = array.shape
    if array.size == 0:
        return _pack(_MODE_EMPTY, num_frames, num_vertices, max_error, 0.0, (0.0, 0.0, 0.0), [], fmt=fmt)
    if max_error > 0.0:
        if fmt >= 3:
            with _one_blas_thread():
                best = _encode_lowrank(array, max_error, level)
            if best is None or _worth_trying_the_grid(best, array):
                grid = _encode_grid(array, max_error, level, fmt)
                if grid is not None and (best is None or len(grid) < len(best)):
                    best = grid
            if best is not None:
                return best
        else:
            grid = _encode_grid(array, max_error, level, fmt)
            if grid is not None:
                return grid
    return _encode_raw(array, max_error, level, fmt)


def _validated_input(vertices) -> np.ndarray:
    array = np.asarray(vertices)
    if array.dtype.kind not in "fiub":
        raise CodecError(f"codec input must be real numbers, got dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.ndim != 3 or array.shape[2] != 3:
        raise CodecError(f"codec input must have shape (T, N, 3), got {array.shape}")
    if array.size and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise CodecError(
            f"codec input holds NaN or Inf (first at frame {bad[0]}, vertex {bad[1]}, axis {bad[2]}); "
            "a bounded-error codec cannot store non-finite coordinates"
        )
    return array


def _validated_bound(max_error) -> float:
    try:
        value = float(max_error)
    except (TypeError, ValueError):
        raise CodecError(f"max_error must be a number of metres, got {max_error!r}") from None
    if not np.isfinite(value) or value < 0.0:
        raise CodecError(f"max_error must be finite and >= 0 metres, got {max_error!r}")
    return value


def _grid_step(max_error: float) -> float:
    return 2.0 * max_error * _STEP_FRACTION


def _dequantise(grid_index: np.ndarray, step: float, origin: np.ndarray) -> np.ndarray:
    """float32(origin + float64(q) * step) per axis: the one reconstruction both sides compute.

    ``grid_index`` is axis-major (T, 3, N) int; the result is (T, N, 3) float32. Each operation is
    one correctly rounded IEEE operation, so every machine computes the same bits.
    """
    num_frames, _, num_vertices = grid_index.shape
    vertices = np.empty((num_frames, num_vertices, 3), dtype=np.float32)
    scaled = np.empty((3, num_vertices), dtype=np.float64)
    for frame in range(num_frames):
        _dequantise_frame(grid_index[frame], step, origin, vertices[frame], scaled)
    return vertices


def _dequantise_frame(grid_index: np.ndarray, step: float, origin: np.ndarray, out: np.ndarray, scaled: np.ndarray) -> None:
    """One frame of :func:`_dequantise`: (3, N) integers into ``out`` (N, 3) float32.

    ``scaled`` is a reusable (3, N) float64 buffer; a frame at a time it stays in cache.
    """
    np.multiply(grid_index, step, out=scaled, dtype=np.float64)
    # computed in float64, rounded to the nearest float32 on the way out
    np.add(scaled, origin[:, None], out=out.T, dtype=np.float64, casting="same_kind")


def _encode_grid(array: np.ndarray, max_error: float, level: int, fmt: int = _FORMAT) -> bytes | None:
    """The lossy grid mode, or None when the lossless mode must be used instead."""
    num_frames, num_vertices, _ = array.shape
    step = _grid_step(max_error)
    if step == 0.0 or not np.isfinite(step):
        return None
    origin = array.reshape(-1, 3).min(axis=0).astype(np.float64)
    extent = array.reshape(-1, 3).max(axis=0).astype(np.float64) - origin
    if not np.all(np.isfinite(extent)) or float(extent.max()) / step >= _MAX_GRID_INDEX:
        return None
    grid_index = np.rint((array.transpose(0, 2, 1).astype(np.float64) - origin[:, None]) / step).astype(np.int64)
    exception_index, exception_value = _exceptions(array, grid_index, step, origin, max_error)
    if exception_index.size > _MAX_EXCEPTION_SHARE * array.size:
        return None

    starts, references = _row_segments(grid_index[0].T)
    residual = _spatial_residual(_temporal_residual(grid_index), starts, references)
    weight = _best_temporal_weight(residual)
    symbols, escapes = _nibbles(_predict_from_previous_frame(residual, weight))
    sections = [
        _section(b"SEGS", _zigzag_narrow(np.diff(starts, prepend=0)), level),
        _section(b"SREF", _zigzag_narrow(starts - references), level),
        _section(b"RESN", _Stream(np.dtype("u1"), symbols), level),
        _section(b"RESX", escapes, level),
    ]
    if exception_index.size:
        sections.append(_section(b"EXIX", _zigzag_narrow(np.diff(exception_index, prepend=0)), level))
        sections.append(_section(b"EXVL", _shuffle(exception_value.astype("<f4")), level))
    levels = int(grid_index.max()) + 1
    data = _pack(_MODE_GRID, num_frames, num_vertices, max_error, step, tuple(origin.tolist()), sections, levels, weight, fmt)
    if len(data) >= array.nbytes or not _within_bound(data, array, max_error):
        return None  # the lossless mode is then smaller, or (never expected) the self-check failed
    return data


def _exceptions(array, grid_index, step, origin, max_error):
    """Flat indices (int64, increasing) and float32 values of the coordinates the grid misses."""
    reconstruction = _dequantise(grid_index, step, origin)
    error = np.abs(reconstruction.astype(np.float64) - array.astype(np.float64))
    exception_index = np.flatnonzero(error > max_error)
    return exception_index, array.reshape(-1)[exception_index]


def _temporal_residual(grid_index: np.ndarray) -> np.ndarray:
    """Frame 0 as it is, every later frame minus the previous frame (any layout with time first)."""
    residual = grid_index.copy()
    residual[1:] -= grid_index[:-1]
    return residual


def _row_segments(first_frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the vertex order jumps, and the vertex each jump is better predicted from.

    Meshes scanned row by row (the BFM front face) keep neighbours next to each other in the
    vertex order except at the start of a row. A vertex that lies more than twice the median
    consecutive distance from its predecessor (on frame 0) starts a segment; its reference is the
    nearest earlier vertex within ``_REFERENCE_WINDOW``. The encoder decides this; the decoder only
    reads the stored (start, reference) pairs, so no rule has to be reproduced bit for bit.
    Returns two int64 arrays (starts increasing, 0 < start; 0 <= reference < start).
    """
    num_vertices = first_frame.shape[0]
    empty = np.zeros(0, dtype=np.int64)
    if num_vertices < 3:
        return empty, empty
    positions = first_frame.astype(np.float64)
    gap = ((positions[1:] - positions[:-1]) ** 2).sum(axis=1)
    starts = np.flatnonzero(gap > 4.0 * np.median(gap)) + 1
    if starts.size == 0 or starts.size > num_vertices // _MAX_SEGMENT_SHARE:
        return empty, empty  # no row structure worth describing (noise, or one smooth strip)
    references = np.empty_like(starts)
    for i, start in enumerate(starts):
        low = max(0, int(start) - _REFERENCE_WINDOW)
        distance = ((positions[low:start] - positions[start]) ** 2).sum(axis=1)
        references[i] = low + int(np.argmin(distance))
    return starts.astype(np.int64), references.astype(np.int64)


def _spatial_residual(values: np.ndarray, starts: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Axis-major (T, 3, N): each vertex minus its predecessor, a segment start minus its reference."""
    residual = values.copy()
    residual[..., 1:] -= values[..., :-1]
    residual[..., starts] = values[..., starts] - values[..., references]
    return residual


def _segment_steps(residual: np.ndarray, starts: np.ndarray, references: np.ndarray) -> np.ndarray:
    """What to add to ``residual[..., starts]`` so that one plain cumulative sum undoes :func:`_spatial_residual`.

    ``residual`` is axis-major (T, 3, N) integers; it is only read. A plain cumulative sum ``c``
    along the vertices gives the true values minus a per-segment constant ``base``, where a start's
    base is ``c[reference] - c[start - 1] + base[segment of reference]`` and the reference lies in an
    earlier segment. ``c`` is needed only at ``references`` and ``starts - 1``: one read-only
    ``add.reduceat`` pass over the pieces between those places gives it. The bases are sums along
    paths of the segment tree, done by pointer jumping (log2 of its depth passes over a small
    (S + 1, T * 3) array whose rows are contiguous). The returned (T, 3, S) steps are
    ``base[segment] - base[segment - 1]``: added at the starts, the cumulative sum carries each
    base to the end of its segment. Integer sums may wrap, exactly as the encoder's differences
    did: everything is exact modulo 2**bits and the true values fit.
    """
    num_frames, _, num_vertices = residual.shape
    rows = residual.reshape(-1, num_vertices)
    boundaries = np.unique(np.concatenate([[0], starts, references + 1]))
    # prefix[:, i] = rows[:, :boundaries[i + 1]].sum(-1), a past-the-end boundary read as N
    prefix = np.add.reduceat(rows, boundaries, axis=-1, dtype=rows.dtype)
    np.cumsum(prefix, axis=-1, dtype=rows.dtype, out=prefix)
    prefix = np.ascontiguousarray(prefix.T)
    base = np.zeros((starts.size + 1, rows.shape[0]), dtype=rows.dtype)
    np.subtract(
        prefix[np.searchsorted(boundaries, references + 1) - 1],
        prefix[np.searchsorted(boundaries, starts) - 1],
        out=base[1:],
    )
    pointer = np.concatenate([[0], np.searchsorted(starts, references, side="right")])  # 0: the root, base 0
    while np.any(pointer):
        base += base[pointer]
        pointer = pointer[pointer]
    steps = base[1:] - base[:-1]
    return np.ascontiguousarray(steps.T).reshape(num_frames, 3, starts.size)


def _predict_from_previous_frame(residual: np.ndarray, weight: int) -> np.ndarray:
    """Frames 2.. minus ``(weight * previous + 2) >> 2``: the local strain rate persists a little.

    ``residual`` is the spatial residual of the temporal differences (T, 3, N); frame 1 has no
    predecessor of the same kind (frame 0 holds positions) and is kept as it is.
    """
    if weight == 0 or residual.shape[0] < 3:
        return residual
    predicted = residual.copy()
    predicted[2:] -= (weight * residual[1:-1] + 2) >> 2
    return predicted


def _best_temporal_weight(residual: np.ndarray) -> int:
    """The weight in quarters (0..3) that compresses a contiguous block of vertices best.

    0 unless the values are small enough (< 2**28) for the decoder's int32 arithmetic to follow
    the prediction exactly: a shift does not commute with wrap-around.
    """
    if residual.shape[0] < 3 or int(np.abs(residual[1:]).max()) >= 2**28:
        return 0
    import zstandard

    first = max(0, residual.shape[2] // 2 - _WEIGHT_SAMPLE // 2)
    sample = residual[:, :, first : first + _WEIGHT_SAMPLE]  # contiguous, so zstd sees real repeats
    compressor = zstandard.ZstdCompressor(level=3)
    costs = [len(compressor.compress(_nibbles(_predict_from_previous_frame(sample, weight))[0])) for weight in range(4)]
    return int(np.argmin(costs))


def _nibbles(residual: np.ndarray) -> tuple[bytes, _Stream]:
    """Zig-zag values as 4-bit symbols (two per byte, 15 = escape) plus the escaped remainders.

    Most residuals are 0, +-1, +-2: packing two per byte lets zstd's byte-wise entropy stage spend
    well under one bit on each, which it cannot do with one value per byte.
    """
    unsigned = _zigzag(residual)
    symbols = np.minimum(unsigned, 15).astype(np.uint8)
    escapes = unsigned[symbols == 15] - np.uint64(15)
    if symbols.size % 2:
        symbols = np.append(symbols, np.uint8(0))
    packed = symbols[0::2] | (symbols[1::2] << np.uint8(4))
    return packed.tobytes(), _narrow(escapes)


def _nibble_pair_table(integer) -> np.ndarray:
    """For each byte, its two symbols zig-zagged back (low nibble first), as one wide word.

    Taking this table at the packed bytes yields the signed residuals in one pass.
    """
    signed = np.array([(symbol >> 1) ^ -(symbol & 1) for symbol in range(16)], dtype=integer)
    pairs = np.stack([signed[np.arange(256) & 15], signed[np.arange(256) >> 4]], axis=1)
    wide = np.dtype(integer).itemsize * 2
    return np.ascontiguousarray(pairs).view(np.dtype(f"<i{wide}") if wide == 8 else np.dtype([("pair", integer, 2)])).ravel()


_NIBBLE_PAIRS = {np.int32: _nibble_pair_table(np.int32), np.int64: _nibble_pair_table(np.int64)}


_UNPACK_CHUNK = 1 << 16


def _unpack_nibble_pairs(packed: np.ndarray, out: np.ndarray, table: np.ndarray, count: int) -> np.ndarray:
    """``out[i] = table[packed[i]]`` (both symbols of each byte at once); returns the escapes' places.

    The returned array holds the increasing symbol positions (< ``count``) of the escapes
    (symbol 15), whose true values come from the ``RESX`` section. Done in pieces of 64 KiB:
    ``take`` widens its indices to intp first, and a whole-stream index copy would be a fresh
    8-bytes-per-byte array (three times slower here than pieces kept in cache); the escapes are
    looked for on each piece of packed bytes while it is in cache. Byte indices never leave the
    256-entry table, and ``mode="clip"`` lets ``take`` write straight into ``out`` instead of
    through a buffer.
    """
    hits = []
    for first in range(0, packed.size, _UNPACK_CHUNK):
        piece = packed[first : first + _UNPACK_CHUNK]
        np.take(table, piece, out=out[first : first + _UNPACK_CHUNK], mode="clip")
        escaped_bytes = np.flatnonzero(((piece & np.uint8(15)) == 15) | (piece >= 240))
        if escaped_bytes.size:
            hits.append(escaped_bytes + first)
    hits = np.concatenate(hits) if hits else np.zeros(0, dtype=np.int64)
    hit_bytes = packed[hits]
    positions = np.stack([2 * hits, 2 * hits + 1], axis=1)
    escaped = np.stack([(hit_bytes & np.uint8(15)) == 15, hit_bytes >= 240], axis=1)
    positions = positions[escaped]  # row-major: low nibble before high, bytes in order
    return positions[positions < count]


def _encode_raw(array: np.ndarray, max_error: float, level: int, fmt: int = _FORMAT) -> bytes:
    num_frames, num_vertices, _ = array.shape
    sections = [_section(b"RAWF", _shuffle(array.astype("<f4").reshape(-1)), level)]
    return _pack(_MODE_RAW, num_frames, num_vertices, max_error, 0.0, (0.0, 0.0, 0.0), sections, fmt=fmt)


def _within_bound(data: bytes, array: np.ndarray, max_error: float) -> bool:
    """Decode what was written and confirm the bound, with the decoder's own code path."""
    decoded = decode(data)
    error = np.abs(decoded.astype(np.float64) - array.astype(np.float64))
    return decoded.shape == array.shape and bool(error.max() <= max_error)


# ------------------------------------------------------------------------------ low-rank mode (format 3)

#: Temporal coefficients are integers times 2**-_COEFFICIENT_BITS (entries of unit eigenvectors, |c| <= 1).
_COEFFICIENT_BITS = 15
#: Most frames per chunk; each chunk has its own temporal basis (bounds the encoder's eigenproblem and the rank).
_MAX_CHUNK_FRAMES = 128
#: Most temporal components of one chunk (the decoder refuses more).
_MAX_COMPONENTS = 64
#: Quantisation steps of the mean shape and of the spatial maps, in grid steps (2 * max_error).
_MEAN_STEP = 0.125
_MAP_STEP = 0.9
#: float32 unit roundoff: the decoder's product and its additions run in float32.
_UNIT_ROUNDOFF = 2.0**-24
#: The low-rank mode is used only while the float32 rounding margin is at most this share of the bound.
_MAX_MARGIN_SHARE = 0.5
#: Every n-th coordinate serves to estimate the residual's cost while the encoder chooses the rank.
_RANK_SAMPLE = 29
#: Every n-th coordinate enters the Gram matrix whose eigenvectors are the temporal basis (from 2**15 coordinates a frame).
_GRAM_SAMPLE = 5
#: Map symbols at or above this byte value are escapes whose remainder lies in ``MAPX``.
_MAP_ESCAPE = 255
#: The grid mode is tried as well when the input is this small, or the low-rank stream spends more bits per coordinate.
_TRY_GRID_BELOW_COORDINATES = 1 << 20
_TRY_GRID_ABOVE_BITS = 3.5


@dataclass(frozen=True)
class _Chunk:
    """One chunk of the low-rank model: ``frames`` x (1 + K) coefficients times (1 + K) rows of (N, 3) integers.

    ``coefficients`` (frames, K) int64, units 2**-15; ``rows`` (1 + K, N, 3) int64: the mean shape in
    units of ``steps[0]``, then the K spatial maps in units of ``steps[1]`` (metres).
    """

    coefficients: np.ndarray
    rows: np.ndarray
    steps: tuple[float, float]

    @property
    def components(self) -> int:
        return self.coefficients.shape[1]


def _chunk_bounds(num_frames: int) -> list[tuple[int, int]]:
    """Chunks of at most ``_MAX_CHUNK_FRAMES`` frames, as equal as possible."""
    count = -(-num_frames // _MAX_CHUNK_FRAMES)
    edges = [round(i * num_frames / count) for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _map_residual(rows: np.ndarray, starts: np.ndarray, references: np.ndarray) -> np.ndarray:
    """The spatial prediction of map rows (R, 3, N): the grid mode's (predecessor, or a segment start's
    reference), then that residual minus the one two places back.

    The second step removes what is left of the gradient along a scan row and the alternation between
    neighbours that the BFM front face's two kinds of vertex (4 and 8 triangle neighbours, alternating
    along a row) leave in the maps. It is undone by a cumulative sum over each parity.
    """
    first = _spatial_residual(rows, starts, references)
    second = first.copy()
    second[..., 2:] -= first[..., :-2]
    return second


def _row_values(rows: np.ndarray, steps) -> np.ndarray:
    """The float32 rows the decoder multiplies, (1 + K, N, 3): ``float32(float64(integer) * step)``."""
    scale = np.full((rows.shape[0], 1, 1), steps[1])
    scale[0] = steps[0]
    values = np.empty(rows.shape, dtype=np.float32)
    np.multiply(rows, scale, out=values, dtype=np.float64, casting="same_kind")
    return values


def _basis_matrix(coefficients: np.ndarray) -> np.ndarray:
    """(frames, 1 + K) float32: a column of ones (the mean row), then the coefficients times 2**-15 (exact)."""
    basis = np.ones((coefficients.shape[0], coefficients.shape[1] + 1), dtype=np.float32)
    basis[:, 1:] = coefficients * 2.0**-_COEFFICIENT_BITS
    return basis


def _entropy_bits(values: np.ndarray) -> float:
    """Order-0 entropy of zig-zag integers in bits (values beyond 4,094 cost 16 more bits each)."""
    symbols = _zigzag(values)
    clipped = np.minimum(symbols, 4095).astype(np.intp)
    counts = np.bincount(clipped, minlength=4096).astype(np.float64)
    counts = counts[counts > 0]
    total = counts.sum()
    return float(-(counts * np.log2(counts / total)).sum()) + 16.0 * int(np.count_nonzero(clipped == 4095))


def _fit_chunk(relative: np.ndarray, step: float, starts: np.ndarray, references: np.ndarray) -> _Chunk:
    """Mean shape + K temporal components of one chunk ((frames, 3N) metres from the origin), K by estimated cost.

    The temporal basis is the leading eigenvectors of the frames' Gram matrix on grid integers, each
    signed so that its largest entry is positive and rounded to 2**-15 (orthonormal to about
    2**-15). The maps are the projections of the data, in integers of 1/16 grid step, onto the
    rounded basis, rounded to the map step. The integer products are exact in float64 whatever BLAS
    computes them, so the maps do not depend on the machine.
    """
    frames, width = relative.shape
    steps = (_MEAN_STEP * step, _MAP_STEP * step)
    average = relative.mean(axis=0)
    mean = np.rint(average / steps[0]).astype(np.int64)
    centred = relative - _row_values(mean.reshape(1, -1, 3), steps)[0].reshape(-1)
    empty = _Chunk(np.zeros((frames, 0), dtype=np.int64), mean.reshape(1, -1, 3), steps)
    most = min(frames - 1, _MAX_COMPONENTS)
    if most <= 0:
        return empty
    # centred on the exact average, so that the basis is orthogonal to the constant and the mean's
    # rounding (constant in time) stays out of the maps; every _GRAM_SAMPLE-th coordinate finds the
    # temporal subspace as well as all of them (the maps below use every coordinate)
    stride = _GRAM_SAMPLE if width >= 2**15 else 1
    grid = np.rint((relative[:, ::stride] - average[::stride]) / step)
    eigenvalues, vectors = np.linalg.eigh(grid @ grid.T)
    eigenvalues, vectors = eigenvalues[::-1][:most], vectors[:, ::-1][:, :most]
    vectors = vectors[:, eigenvalues > 0.01 * grid.shape[1]]  # below a tenth of a grid step (rms): noise only
    if vectors.shape[1] == 0:
        return empty
    largest = np.argmax(np.abs(vectors), axis=0)
    vectors = vectors * np.where(vectors[largest, np.arange(vectors.shape[1])] < 0, -1.0, 1.0)
    coefficients = np.rint(vectors * 2.0**_COEFFICIENT_BITS)
    fine = np.rint(centred * (16.0 / steps[1]))  # |fine| < 2**31: the encoder keeps the range below 2**26 steps
    maps = np.rint((coefficients.T @ fine) * 2.0 ** -(_COEFFICIENT_BITS + 4)).astype(np.int64)
    coefficients = coefficients.astype(np.int64)
    rank = _choose_rank(coefficients, maps, centred, step, steps[1], starts, references)
    coefficients, maps = coefficients[:, :rank], maps[:rank]
    rows = np.concatenate([mean.reshape(1, -1), maps]).reshape(rank + 1, -1, 3)
    return _Chunk(coefficients, rows, steps)


def _choose_rank(coefficients, maps, centred, step, map_step, starts, references) -> int:
    """The number of components (0..K) that minimises the estimated bits: maps' plus residual's.

    Map bits: order-0 entropy of each map's spatial residual; residual bits: order-0 entropy of the
    rounded remainder on every ``_RANK_SAMPLE``-th coordinate, scaled up.
    """
    num_vertices = centred.shape[1] // 3
    map_bits = [_entropy_bits(_spatial_residual(m.reshape(num_vertices, 3).T, starts, references)) for m in maps]
    sample = centred[:, ::_RANK_SAMPLE].copy()
    scale = centred.size / sample.size
    rows = (maps[:, ::_RANK_SAMPLE] * map_step).astype(np.float32).astype(np.float64)
    basis = coefficients * 2.0**-_COEFFICIENT_BITS
    costs = [_entropy_bits(np.rint(sample / step)) * scale]
    spent = 0.0
    for k in range(maps.shape[0]):
        sample -= np.outer(basis[:, k], rows[k])
        spent += map_bits[k]
        costs.append(spent + _entropy_bits(np.rint(sample / step)) * scale)
    return int(np.argmin(costs))


def _chunk_model(chunk: _Chunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(basis (frames, 1 + K), rows (1 + K, 3N), exact value of their product) as float64."""
    basis = _basis_matrix(chunk.coefficients).astype(np.float64)
    rows = _row_values(chunk.rows, chunk.steps).reshape(chunk.rows.shape[0], -1).astype(np.float64)
    return basis, rows, basis @ rows


def _rounding_margin(chunks: list[_Chunk], models, reach: float, remainder: float, max_error: float) -> float:
    """An upper bound on how far the decoder's float32 arithmetic can land from the exact model value.

    The decoder computes ``o = float32(float32 product + origin)``, then ``float32(o + float32(q * step))``.
    A float32 inner product of n terms, in any order, with or without fused multiply-adds, is within
    ``gamma_n * sum |a_i b_i|`` of the exact sum (gamma_n = n u / (1 - n u), u = 2**-24, Higham,
    Accuracy and Stability of Numerical Algorithms, 3.1); each further float32 addition or rounding adds
    at most u times its result. ``reach`` bounds |coordinate| and ``remainder`` |input - model|. The
    bound is rounded up to 1/8 of its power of two so that the bytes do not hang on its last bits.
    """
    terms = max(chunk.components for chunk in chunks) + 1
    gamma = terms * _UNIT_ROUNDOFF / (1.0 - terms * _UNIT_ROUNDOFF)
    # sum_k |a_tk| |b_kj| <= sum_k max_t |a_tk| |b_kj|: one vector-matrix product per chunk
    sums = max(float((np.abs(basis).max(axis=0) @ np.abs(rows)).max()) for basis, rows, _ in models)
    product = gamma * sums * (1.0 + 1e-6)
    margin = 1.01 * (product + 2.01 * _UNIT_ROUNDOFF * (reach + product + remainder + 2.0 * max_error)) + 1e-300
    quantum = 2.0 ** (np.floor(np.log2(margin)) - 3)
    return float(np.ceil(margin / quantum) * quantum)


def _encode_lowrank(array: np.ndarray, max_error: float, level: int) -> bytes | None:
    """Low-rank mode (format 3), or None when it cannot hold the bound economically (the caller falls back)."""
    num_frames, num_vertices, _ = array.shape
    step = _grid_step(max_error)
    if num_frames < 2 or num_vertices < 2 or not step > 1e-30:
        return None
    flat = array.reshape(-1, 3)
    low, high = flat.min(axis=0).astype(np.float64), flat.max(axis=0).astype(np.float64)
    if not np.all(np.isfinite(high - low)) or float((high - low).max()) / step >= 2.0**26:
        return None  # the grid mode serves such ranges (the maps' integer products must stay exact)
    origin = ((low + high) / 2).astype(np.float32)
    relative = np.subtract(array, origin, dtype=np.float64).reshape(num_frames, -1)
    starts, references = _row_segments(relative[0].reshape(-1, 3))
    bounds = _chunk_bounds(num_frames)
    chunks = [_fit_chunk(relative[first:last], step, starts, references) for first, last in bounds]
    models = [_chunk_model(chunk) for chunk in chunks]
    offset = relative
    for (first, last), (_, _, model) in zip(bounds, models):
        offset[first:last] -= model
    remainder = float(np.abs(offset).max())
    margin = _rounding_margin(chunks, models, float(np.abs(flat).max()) + remainder, remainder, max_error)
    residual_step = 2.0 * (max_error - margin) * _STEP_FRACTION
    if margin > _MAX_MARGIN_SHARE * max_error or remainder >= 2.0**30 * residual_step:
        return None  # float32 cannot carry the bound with room to spare, or the model is useless
    # |offset - q * step| <= step / 2 < max_error - margin: the float64 rounding here (below
    # remainder * 2**-52 <= step * 2**-22) stays inside the 2**-20 the step keeps in reserve
    residual = np.rint(np.divide(offset, residual_step, out=offset)).reshape(-1)
    places = np.flatnonzero(residual)
    rows = np.concatenate([chunk.rows for chunk in chunks])  # (R, N, 3)
    symbols = _zigzag(_map_residual(rows.transpose(0, 2, 1), starts, references))
    map_bytes = np.minimum(symbols, _MAP_ESCAPE).astype(np.uint8)
    coefficients = np.concatenate([np.diff(chunk.coefficients, axis=0, prepend=0).reshape(-1) for chunk in chunks])
    sections = [
        _section(b"SEGS", _zigzag_narrow(np.diff(starts, prepend=0)), level),
        _section(b"SREF", _zigzag_narrow(starts - references), level),
        _section(
            b"CHNK",
            _narrow(np.array([[last - first, chunk.components] for (first, last), chunk in zip(bounds, chunks)], dtype=np.uint64)),
            level,
        ),
        _section(b"STPS", _shuffle(np.array([chunk.steps for chunk in chunks], dtype="<f8")), level),
        _section(b"TCOF", _zigzag_narrow(coefficients), level),
        _section(b"MAPS", _Stream(np.dtype("u1"), map_bytes.tobytes()), level),
        _section(b"MAPX", _narrow(symbols[map_bytes == _MAP_ESCAPE] - np.uint64(_MAP_ESCAPE)), level),
        _section(b"RPOS", _zigzag_narrow(np.diff(places, prepend=0)), level),
        _section(b"RVAL", _zigzag_narrow(residual[places].astype(np.int64)), level),
    ]
    levels = int(np.abs(rows).max()) + 1
    data = _pack(
        _MODE_LOWRANK, num_frames, num_vertices, max_error, residual_step, tuple(origin.astype(np.float64).tolist()), sections, levels
    )
    if len(data) >= array.nbytes or not _within_bound(data, array, max_error):
        return None
    return data


#: Vertices per block of the decoder's product: the block's rows, product and output stay in cache.
_PRODUCT_BLOCK = 1024


def _reconstruct_chunk(basis: np.ndarray, rows: np.ndarray, steps, origin: np.ndarray, out: np.ndarray) -> None:
    """``out = float32(float32(basis @ row values) + origin)`` for one chunk, a block of vertices at a time.

    ``rows`` (1 + K, 3, N) int32; ``out`` (frames, N, 3) float32. Per block: the rows' float32 values in
    (1 + K, block, 3) layout, one BLAS product into a scratch buffer, then the origin added on the
    way into ``out``, so the output's memory is first touched in order, and only once.
    """
    frames, num_vertices = out.shape[0], out.shape[1]
    count = rows.shape[0]
    block = min(_PRODUCT_BLOCK, num_vertices)
    scale = np.full((count, 1, 1), steps[1])
    scale[0] = steps[0]
    value_buffer = np.empty(count * block * 3, dtype=np.float32)
    product_buffer = np.empty(frames * block * 3, dtype=np.float32)
    tiled_origin = np.tile(origin, block)
    flat_out = out.reshape(frames, -1)
    with _one_blas_thread():
        for first in range(0, num_vertices, block):
            width = min(block, num_vertices - first)
            values = value_buffer[: count * width * 3].reshape(count, width, 3)
            np.multiply(rows[:, :, first : first + width].transpose(0, 2, 1), scale, out=values, dtype=np.float64, casting="same_kind")
            product = product_buffer[: frames * width * 3].reshape(frames, width * 3)
            _product(basis, values.reshape(count, width * 3), product)
            np.add(product, tiled_origin[: width * 3], out=flat_out[:, 3 * first : 3 * (first + width)])


#: Zig-zag symbols 0..255 back to signed integers (255 is the escape, replaced from MAPX).
_MAP_SYMBOLS = ((np.arange(256) >> 1) ^ -(np.arange(256) & 1)).astype(np.int32)


def _product(basis: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
    """``out = basis @ rows`` in float32 (BLAS): the one step whose rounding may differ between machines.

    Its result is within the stream's rounding margin of the exact product whatever the order of the
    additions (tests replace it by other orders to check that the bound still holds). The caller runs
    it on one BLAS thread where threadpoolctl is installed: a decoder usually runs beside others
    (DataLoader workers), where BLAS threads of their own only contend for the same cores.
    """
    np.matmul(basis, rows, out=out)


_BLAS_CONTROLLER: list = []


def _one_blas_thread():
    """A context limiting BLAS to one thread (threadpoolctl), or doing nothing where it is absent."""
    if not _BLAS_CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS_CONTROLLER.append(ThreadpoolController())
        except ImportError:
            _BLAS_CONTROLLER.append(None)
    controller = _BLAS_CONTROLLER[0]
    if controller is None:
        import contextlib

        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


def _worth_trying_the_grid(data: bytes, array: np.ndarray) -> bool:
    """Whether the grid mode might be smaller than this low-rank stream (always tried on small inputs)."""
    return array.size <= _TRY_GRID_BELOW_COORDINATES or 8 * len(data) > _TRY_GRID_ABOVE_BITS * array.size


def _decode_lowrank(sections, header: _Header, out: np.ndarray | None = None) -> np.ndarray:
    """The low-rank reconstruction (T, N, 3) float32 (into ``out`` when given); every table and size is checked before use."""
    num_frames, num_vertices = header.num_frames, header.num_vertices
    count = num_frames * num_vertices * 3
    if not (np.isfinite(header.step) and header.step > 0.0 and all(np.isfinite(header.origin))):
        raise CodecError(f"codec stream declares residual step {header.step} or origin {header.origin}")
    if not 0 < header.grid_levels < 2**31:  # the encoder keeps maps below 2**28 (ranges below 2**26 steps)
        raise CodecError(f"codec stream declares {header.grid_levels} map levels, the low-rank mode allows fewer than 2**31")
    table_count = _declared_count(sections, b"CHNK", 2 * num_frames)
    if table_count % 2:
        raise CodecError(f"codec stream chunk table holds {table_count} numbers, not pairs")
    table = _section_array(sections, b"CHNK", table_count, {0, 1, 2, 3}).astype(np.int64).reshape(-1, 2)
    frames, components = table[:, 0], table[:, 1]
    if (
        frames.sum() != num_frames
        or np.any(frames < 1)
        or np.any(components < 0)
        or np.any(components > np.minimum(frames, _MAX_COMPONENTS))
    ):
        raise CodecError(f"codec stream chunk table {table.tolist()} does not fit {num_frames} frames")
    steps = _section_array(sections, b"STPS", 2 * len(table), {6}).reshape(-1, 2)
    if not np.all(np.isfinite(steps)) or np.any(steps <= 0.0) or 2.0**31 * float(steps.max()) > 1e36:
        raise CodecError("codec stream declares map steps that are not finite and positive, or maps beyond float32")
    starts, references = _segment_table(sections, num_vertices)
    coefficients = _unzigzag(_section_array(sections, b"TCOF", int((frames * components).sum()), {0, 1, 2, 3}))
    row_count = int((components + 1).sum())
    map_bytes = _section_array(sections, b"MAPS", row_count * 3 * num_vertices, {0})
    spatial = np.empty(map_bytes.size, dtype=np.int32)
    for first in range(0, map_bytes.size, _UNPACK_CHUNK):  # pieces keep take's intp copy of the indices in cache
        np.take(_MAP_SYMBOLS, map_bytes[first : first + _UNPACK_CHUNK], out=spatial[first : first + _UNPACK_CHUNK], mode="clip")
    escaped = np.flatnonzero(map_bytes == _MAP_ESCAPE)
    escapes = _section_array(sections, b"MAPX", escaped.size, {0, 1, 2, 3}).astype(np.uint64)
    spatial[escaped] = _unzigzag(escapes + np.uint64(_MAP_ESCAPE)).astype(np.int32)  # wraps if forged: caught below
    spatial = spatial.reshape(row_count, 3, num_vertices)
    for parity in (0, 1):  # undo the difference two places back (see _map_residual)
        np.cumsum(spatial[..., parity::2], axis=-1, out=spatial[..., parity::2])
    if starts.size:
        steps_at_starts = _segment_steps(spatial, starts, references)
        spatial[:, :, starts] += steps_at_starts
    rows = np.cumsum(spatial, axis=-1, dtype=np.int32, out=spatial)  # sums may wrap; int32 * step stays finite
    vertices = np.empty((num_frames, num_vertices, 3), dtype=np.float32) if out is None else out
    origin = np.asarray(header.origin, dtype=np.float32)
    first_frame = first_row = first_coefficient = 0
    for (length, rank), chunk_steps in zip(table.tolist(), steps.tolist()):
        chunk_coefficients = np.cumsum(coefficients[first_coefficient : first_coefficient + length * rank].reshape(length, rank), axis=0)
        if chunk_coefficients.size and np.abs(chunk_coefficients).max() > 2**_COEFFICIENT_BITS:
            raise CodecError("codec stream temporal coefficients exceed 1")
        _reconstruct_chunk(
            _basis_matrix(chunk_coefficients),
            rows[first_row : first_row + rank + 1],
            chunk_steps,
            origin,
            vertices[first_frame : first_frame + length],
        )
        first_frame, first_row, first_coefficient = first_frame + length, first_row + rank + 1, first_coefficient + length * rank
    place_count = _declared_count(sections, b"RPOS", count)
    places = np.cumsum(_unzigzag(_section_array(sections, b"RPOS", place_count, {0, 1, 2, 3})))
    if places.size and (places[0] < 0 or places[-1] >= count or np.any(np.diff(places) <= 0)):
        raise CodecError("codec stream residual positions are out of range")
    values = _unzigzag(_section_array(sections, b"RVAL", place_count, {0, 1, 2, 3, 5}))
    flat = vertices.reshape(-1)
    flat[places] += (values * header.step).astype(np.float32)
    return vertices


# ------------------------------------------------------------------------------------ integer streams


def _zigzag(values: np.ndarray) -> np.ndarray:
    """Signed int64 -> unsigned: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ..."""
    values = np.asarray(values, dtype=np.int64).reshape(-1)
    return (values.view(np.uint64) << np.uint64(1)) ^ (values >> 63).view(np.uint64)


def _narrow(unsigned: np.ndarray) -> "_Stream":
    """Unsigned values in the narrowest of uint8/16/32/64 that holds them, as byte planes."""
    largest = int(unsigned.max()) if unsigned.size else 0
    for dtype in ("u1", "<u2", "<u4"):
        if largest <= np.iinfo(dtype).max:
            return _shuffle(unsigned.astype(dtype))
    return _shuffle(unsigned.astype("<u8"))


def _zigzag_narrow(values: np.ndarray) -> "_Stream":
    return _narrow(_zigzag(values))


def _unzigzag(unsigned: np.ndarray) -> np.ndarray:
    unsigned = unsigned.astype(np.uint64)
    return ((unsigned >> np.uint64(1)) ^ (np.uint64(0) - (unsigned & np.uint64(1)))).view(np.int64)


@dataclass(frozen=True)
class _Stream:
    """A flat array kept as byte planes (all first bytes, then all second bytes, ...)."""

    dtype: np.dtype
    planes: bytes


def _shuffle(values: np.ndarray) -> _Stream:
    values = np.ascontiguousarray(values).reshape(-1)
    dtype = values.dtype.newbyteorder("<") if values.dtype.itemsize > 1 else values.dtype
    values = values.astype(dtype, copy=False)
    planes = values.view(np.uint8).reshape(-1, dtype.itemsize).T.tobytes()
    return _Stream(np.dtype(dtype), planes)


def _unshuffle(planes: bytes, dtype: np.dtype) -> np.ndarray:
    raw = np.frombuffer(planes, dtype=np.uint8).reshape(dtype.itemsize, -1)
    return np.ascontiguousarray(raw.T).view(dtype).reshape(-1)


# ------------------------------------------------------------------------------------------- container


def _section(name: bytes, stream: _Stream, level: int) -> tuple[bytes, int, bytes, int, int]:
    import zstandard

    compressed = zstandard.ZstdCompressor(level=level).compress(stream.planes)
    if len(compressed) < len(stream.planes):
        return name, _ZSTD, compressed, _element_code(stream.dtype), len(stream.planes)
    return name, _STORED, stream.planes, _element_code(stream.dtype), len(stream.planes)


def _element_code(dtype: np.dtype) -> int:
    return _ELEMENT_CODES[np.dtype(dtype).newbyteorder("<") if np.dtype(dtype).itemsize > 1 else np.dtype(dtype)]


def _pack(mode, num_frames, num_vertices, max_error, step, origin, sections, levels=0, weight=0, fmt=_FORMAT) -> bytes:
    body = bytearray()
    for name, compression, stored, element_code, raw_bytes in sections:
        body += _SECTION.pack(name, compression, element_code, len(stored), raw_bytes)
        body += stored
    header = _HEADER.pack(
        _MAGIC, fmt, mode, weight, num_frames, num_vertices, max_error, step, levels, *origin, len(sections), len(body), 0
    )
    crc = zlib.crc32(body, zlib.crc32(header[:-4]))
    return header[:-4] + struct.pack("<I", crc) + bytes(body)


def _read_header(data) -> _Header:
    view = memoryview(data)
    if len(view) < _PREFIX.size or bytes(view[:4]) != _MAGIC:
        if bytes(view[:4]) == _MAGIC[: len(view[:4])]:
            raise CodecError(f"truncated codec stream: {len(view)} bytes, the header alone needs {_HEADER.size}")
        raise CodecError(f"not an mmface4d codec stream (magic {bytes(view[:4])!r}, expected {_MAGIC!r})")
    _, version = _PREFIX.unpack_from(view)
    if version not in _READABLE_FORMATS:
        raise CodecError(
            f"codec format version {version} is unknown to this mmface4d-datasets "
            f"(it reads version {', '.join(map(str, _READABLE_FORMATS))}); "
            + (
                "upgrade the package to decode it"
                if version > max(_READABLE_FORMATS)
                else "it was written by a development version before the first release: encode the data again"
            )
        )
    if len(view) < _HEADER.size:
        raise CodecError(f"truncated codec stream: {len(view)} bytes, the header alone needs {_HEADER.size}")
    fields = _HEADER.unpack_from(view)
    return _Header(
        format=fields[1],
        mode=fields[2],
        temporal_weight=fields[3],
        num_frames=fields[4],
        num_vertices=fields[5],
        max_error=fields[6],
        step=fields[7],
        grid_levels=fields[8],
        origin=tuple(fields[9:12]),
        num_sections=fields[12],
        payload_bytes=fields[13],
        crc32=fields[14],
    )


def _checked_sections(data) -> tuple[_Header, dict[bytes, tuple[int, int, memoryview, int]]]:
    view = memoryview(data)
    header = _read_header(view)
    actual_payload = len(view) - _HEADER.size
    if actual_payload < header.payload_bytes:
        raise CodecError(f"truncated codec stream: payload has {actual_payload} bytes, header declares {header.payload_bytes}")
    if actual_payload > header.payload_bytes:
        raise CodecError(f"codec stream has {actual_payload - header.payload_bytes} unexpected bytes after its payload")
    crc = zlib.crc32(view[_HEADER.size :], zlib.crc32(view[: _HEADER.size - 4]))
    if crc != header.crc32:
        raise CodecError(f"corrupted codec stream: CRC-32 {crc:#010x} does not match the stored {header.crc32:#010x}")
    if header.mode not in _FORMAT_MODES[header.format]:
        raise CodecError(f"codec stream has unknown mode {header.mode} for format {header.format}")
    sections = {}
    offset = _HEADER.size
    for _ in range(header.num_sections):
        if offset + _SECTION.size > len(view):
            raise CodecError("truncated codec stream: a section header runs past the end")
        name, compression, element_code, stored_bytes, raw_bytes = _SECTION.unpack_from(view, offset)
        offset += _SECTION.size
        if offset + stored_bytes > len(view):
            raise CodecError(f"truncated codec stream: section {name!r} runs past the end")
        if compression not in (_STORED, _ZSTD) or element_code not in _ELEMENT_DTYPES:
            raise CodecError(f"codec section {name!r} has unknown compression {compression} or element {element_code}")
        sections[name] = (compression, element_code, view[offset : offset + stored_bytes], raw_bytes)
        offset += stored_bytes
    if offset != len(view):
        raise CodecError("codec stream sections do not fill the declared payload")
    return header, sections


def peek(data) -> dict:
    """Shape, bound, version, mode and section sizes of an encoded stream, without decoding it.

    The header and the CRC-32 are checked, so a corrupted stream raises :class:`CodecError` here too.
    """
    header, sections = _checked_sections(data)
    return {
        "codec_version": str(header.format),
        "shape": (header.num_frames, header.num_vertices, 3),
        "dtype": "float32",
        "max_error": header.max_error,
        "step": header.step,
        "grid_levels": header.grid_levels,
        "temporal_weight": header.temporal_weight / 4,
        "mode": _MODE_NAMES[header.mode],
        "total_bytes": len(memoryview(data)),
        "payload_bytes": header.payload_bytes,
        "sections": {
            name.decode("ascii", "replace"): {"stored_bytes": len(stored), "raw_bytes": raw}
            for name, (_, _, stored, raw) in sections.items()
        },
    }


# ---------------------------------------------------------------------------------------------- decode


def decode(data, *, out: np.ndarray | None = None) -> np.ndarray:
    """Decode bytes made by :func:`encode` into a (T, N, 3) float32 array (metres).

    Args:
        data: the stream (bytes, bytearray, memoryview, or a uint8 array such as an Arrow buffer's).
        out: optional C-contiguous float32 array of the stream's shape to decode into (for example the
            numpy view of a torch tensor in shared memory); the low-rank mode writes its product
            straight into it, the other modes copy their result in. Returned when given.

    Raises:
        CodecError: the stream is truncated, corrupted (CRC-32 mismatch), of an unknown version,
            declares a shape its payload cannot hold (refused before any large allocation), or does
            not match ``out``.
    """
    header, sections = _checked_sections(data)
    shape = (header.num_frames, header.num_vertices, 3)
    if out is not None and (
        not isinstance(out, np.ndarray)
        or out.shape != shape
        or out.dtype != np.float32
        or not out.flags.c_contiguous
        or not out.flags.writeable
    ):
        found = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        raise CodecError(f"decode(out=...) needs a writeable C-contiguous float32 array of shape {shape}, got {found}")
    vertices = _decoded(header, sections, out)
    if out is not None and vertices is not out:
        np.copyto(out, vertices)
        return out
    return vertices


def _decoded(header: _Header, sections, out: np.ndarray | None) -> np.ndarray:
    shape = (header.num_frames, header.num_vertices, 3)
    count = header.num_frames * header.num_vertices * 3
    if header.mode == _MODE_EMPTY:
        if count != 0 or sections:
            raise CodecError(f"codec stream in empty mode declares shape {shape}")
        return np.empty(shape, dtype=np.float32)
    if count == 0:
        raise CodecError(f"codec stream declares empty shape {shape} but holds data")
    if header.mode == _MODE_RAW:
        values = _section_array(sections, b"RAWF", count, {4})
        return values.reshape(shape)
    vertices = _decode_lowrank(sections, header, out) if header.mode == _MODE_LOWRANK else _decode_grid(sections, header)
    if b"EXIX" in sections:
        exception_count = _declared_count(sections, b"EXIX", count)
        positions = np.cumsum(_unzigzag(_section_array(sections, b"EXIX", exception_count, {0, 1, 2, 3})))
        values = _section_array(sections, b"EXVL", exception_count, {4})
        if positions.size and (positions[0] < 0 or positions[-1] >= count or np.any(np.diff(positions) <= 0)):
            raise CodecError("codec stream exception indices are out of range")
        vertices.reshape(-1)[positions] = values
    return vertices


def _decode_grid(sections, header: _Header) -> np.ndarray:
    """The grid reconstruction (T, N, 3) float32 from the sections; every size is checked before use.

    Sums run in int32 when the grid has fewer than 2**31 levels (half the memory traffic of int64);
    wrapping intermediate sums are harmless because the final values fit. The segment corrections
    go into the residual at the segment starts first (:func:`_segment_steps`), so that each frame
    then needs, while it is in cache, only one cumulative sum along the vertices, the previous
    frame (sums over time) and the shared reconstruction.
    """
    count = header.num_frames * header.num_vertices * 3
    starts, references = _segment_table(sections, header.num_vertices)
    if not 0 < header.grid_levels <= _MAX_GRID_INDEX:
        raise CodecError(f"codec stream declares {header.grid_levels} grid levels")
    integer = np.int32 if header.grid_levels < 2**31 else np.int64
    packed = _section_array(sections, b"RESN", (count + 1) // 2, {0})
    shape = (header.num_frames, header.num_vertices, 3)
    if integer is np.int32:
        # The residuals live in the output's own memory: frame f's (3, N) int32 residuals take the
        # bytes of frame f's (N, 3) float32 vertices, which are written only once those are summed.
        storage = np.empty(2 * packed.size, dtype=np.float32)
        vertices = storage[:count].reshape(shape)
    else:
        storage = np.empty(2 * packed.size, dtype=integer)
        vertices = np.empty(shape, dtype=np.float32)
    escaped = _unpack_nibble_pairs(packed, storage.view(_NIBBLE_PAIRS[integer].dtype), _NIBBLE_PAIRS[integer], count)
    residual = storage.view(integer)[:count]
    escapes = _section_array(sections, b"RESX", escaped.size, {0, 1, 2, 3}).astype(np.uint64)
    residual[escaped] = _unzigzag(escapes + np.uint64(15)).astype(integer)  # wraps to int32 if needed
    residual = residual.reshape(header.num_frames, 3, header.num_vertices)
    if header.temporal_weight > 3:
        raise CodecError(f"codec stream declares temporal weight {header.temporal_weight}, at most 3 is defined")
    if header.temporal_weight:
        prediction = np.empty((3, header.num_vertices), dtype=integer)
        for frame in range(2, header.num_frames):  # (w * previous + 2) >> 2, in one reused buffer
            np.multiply(residual[frame - 1], header.temporal_weight, out=prediction)
            prediction += 2
            prediction >>= 2
            residual[frame] += prediction
    steps = _segment_steps(residual, starts, references) if starts.size else None
    # flat places of the starts in one frame's (3, N) rows
    start_places = (np.arange(3)[:, None] * header.num_vertices + starts).reshape(-1)
    origin = np.asarray(header.origin, dtype=np.float64)
    scaled = np.empty((3, header.num_vertices), dtype=np.float64)
    current = np.empty((3, header.num_vertices), dtype=integer)
    previous = np.empty_like(current)
    for frame in range(header.num_frames):
        if steps is not None:  # while the frame's rows come into cache for the sum below
            rows = residual[frame].reshape(-1)
            rows[start_places] += steps[frame].reshape(-1)
        np.cumsum(residual[frame], axis=-1, out=current)
        if frame:
            current += previous  # sums over time
        _dequantise_frame(current, header.step, origin, vertices[frame], scaled)
        current, previous = previous, current
    return vertices


def _segment_table(sections, num_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """The (start, reference) pairs of ``SEGS`` and ``SREF``, checked: 0 < start < N increasing, 0 <= reference < start."""
    segment_count = _declared_count(sections, b"SEGS", num_vertices)
    if _declared_count(sections, b"SREF", num_vertices) != segment_count:
        raise CodecError("codec sections SEGS and SREF disagree on the number of segments")
    starts = np.cumsum(_unzigzag(_section_array(sections, b"SEGS", segment_count, {0, 1, 2, 3})))
    references = starts - _unzigzag(_section_array(sections, b"SREF", segment_count, {0, 1, 2, 3}))
    if starts.size and (
        starts[0] < 1
        or starts[-1] >= num_vertices
        or np.any(np.diff(starts) <= 0)
        or np.any(references < 0)
        or np.any(references >= starts)
    ):
        raise CodecError("codec stream segment table is out of range")
    return starts, references


def _declared_count(sections, name: bytes, limit: int) -> int:
    if name not in sections:
        raise CodecError(f"codec stream lacks its {name.decode()} section")
    _, element_code, _, raw_bytes = sections[name]
    itemsize = _ELEMENT_DTYPES[element_code].itemsize
    if raw_bytes % itemsize or raw_bytes // itemsize > limit:
        raise CodecError(f"codec section {name.decode()} declares {raw_bytes} bytes, inconsistent with the shape")
    return raw_bytes // itemsize


def _section_array(sections, name: bytes, count: int, allowed_elements: set[int]) -> np.ndarray:
    """Decompress one section after checking its declared size against ``count`` elements."""
    if name not in sections:
        raise CodecError(f"codec stream lacks its {name.decode()} section")
    compression, element_code, stored, raw_bytes = sections[name]
    if element_code not in allowed_elements:
        raise CodecError(f"codec section {name.decode()} has element code {element_code}, not allowed there")
    dtype = _ELEMENT_DTYPES[element_code]
    if raw_bytes != count * dtype.itemsize:
        raise CodecError(f"codec section {name.decode()} declares {raw_bytes} bytes but the shape needs {count * dtype.itemsize}")
    if compression == _STORED:
        if len(stored) != raw_bytes:
            raise CodecError(f"codec section {name.decode()} holds {len(stored)} bytes, declares {raw_bytes}")
        planes = bytes(stored)
    else:
        if raw_bytes > _MAX_ZSTD_RATIO * len(stored) + 2**16:
            raise CodecError(f"codec section {name.decode()} declares {raw_bytes} bytes from {len(stored)} compressed: impossible, refused")
        import zstandard

        try:
            planes = zstandard.ZstdDecompressor().decompress(bytes(stored), max_output_size=raw_bytes)
        except zstandard.ZstdError as error:
            raise CodecError(f"codec section {name.decode()} does not decompress: {error}") from None
        if len(planes) != raw_bytes:
            raise CodecError(f"codec section {name.decode()} decompresses to {len(planes)} bytes, declares {raw_bytes}")
    return _unshuffle(planes, dtype)
