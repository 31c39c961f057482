"""One stored release row in, one decoded row out (and back): the only place that knows the stored forms.

The loader (`mmface4d_datasets.loading`), the release reader (`Release.iter_records` / `.record`), the
benchmark protocol and the trainer all decode through `decode_row`; `encode_fields` is its inverse for
the columns a `map` function returns decoded.

Stored forms (DESIGN.md, The record; docs/release_format.md):
- config "default": `vertices` codec bytes -> (T, N, 3) float32; `head_pose` little-endian float32 bytes
  -> (T, 4, 4) float32; `audio` WAV/FLAC bytes -> {"array": float32 (S,), "sampling_rate": int}.
- config "templates": `vertices` little-endian float32 bytes -> (N, 3) float32.
- config "raw": `landmarks` float64 bytes + `landmarks_shape` -> a list of (T, K, 2) float64 arrays, one
  per camera; `intrinsics` / `extrinsics` nested lists -> (C, 3, 3) / (C, 4, 4) float64.
A field missing from the row (a removed column) is skipped; a value that is already decoded is kept.
Before decoding, every stored value is checked against the row's `checksums` struct (format 1.1,
`release.checksums`): a mismatch is a `RowChecksumError` naming the row and the column. The decoded row
does not hold `checksums` (it is of the stored bytes); `verify_row` checks a stored row without decoding it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.release.checksums import ALGORITHM, CHECKSUM_COLUMN, mismatched_columns

#: Columns that hold a stored form, per config.
DECODED_FIELDS = {
    "default": ("vertices", "head_pose", "audio"),
    "templates": ("vertices",),
    "raw": ("landmarks", "intrinsics", "extrinsics"),
}


class RowDecodeError(FormatError):
    """A stored value of a row cannot be decoded; the message names where (release, shard, row, id)."""


class RowChecksumError(RowDecodeError):
    """A stored value of a row differs from the digest the release writer recorded for it (damaged bytes on disk,
    in a cache or on the network); the message names where (release, shard, row, id) and the column."""


def verify_row(row: Mapping, *, where: str = "row") -> None:
    """Raise `RowChecksumError` naming `where` and the column(s) when a stored value of `row` does not match
    its `checksums` entry; a row without checksums (format 1.0, column removed) passes unchecked."""
    bad = mismatched_columns(row)
    if bad:
        columns = ", ".join(
            f"{name!r} (stored {expected & (1 << 64) - 1:016x}, read {actual & (1 << 64) - 1:016x})" for name, expected, actual in bad
        )
        raise RowChecksumError(
            f"{where}: column {columns} does not match its {ALGORITHM} checksum: the stored bytes are damaged "
            f"(a bad disk, an interrupted copy or download); fetch the shard again"
        )


def decode_row(row: Mapping, config: str = "default", *, where: str = "row", sample_rate: int | None = None) -> dict:
    """A copy of `row` with its stored fields decoded (see the module docstring).

    config: "default", "templates" or "raw". where: prefix of error messages (e.g. "release X: shard Y
    row 3 ('S1/000001')"). sample_rate: resample audio to this rate (polyphase) and set the row's
    `sample_rate` to it; None keeps the stored rate.
    Raises `RowChecksumError` (a `RowDecodeError`) for a stored value that does not match the row's checksums,
    `RowDecodeError` naming `where` and the field for a value that does not decode or whose shape disagrees
    with the row's `num_frames` / `num_vertices`.
    """
    if config not in DECODED_FIELDS:
        raise ValueError(f"decode_row: unknown config {config!r} (known: {', '.join(DECODED_FIELDS)})")
    record = dict(row)
    verify_row(record, where=where)
    record.pop(CHECKSUM_COLUMN, None)
    try:
        if config == "default":
            _decode_sequence_fields(record, where, sample_rate)
        elif config == "templates":
            _decode_template_fields(record, where)
        else:
            _decode_raw_fields(record)
    except RowDecodeError:
        raise
    except Exception as exc:  # CodecError, soundfile errors, reshape errors: one named error
        raise RowDecodeError(f"{where}: {exc}") from exc
    return record


def _stored(value) -> bool:
    return isinstance(value, (bytes, bytearray, memoryview))


def _decode_sequence_fields(record: dict, where: str, sample_rate: int | None) -> None:
    frames = record.get("num_frames")
    if _stored(record.get("vertices")):
        from mmface4d_datasets.codec import decode

        try:
            vertices = decode(record["vertices"])
        except Exception as exc:
            raise RowDecodeError(f"{where}: vertices: {exc}") from exc
        expected = (frames, record.get("num_vertices"))
        if frames is not None and record.get("num_vertices") is not None and vertices.shape[:2] != expected:
            raise RowDecodeError(f"{where}: vertices decode to {vertices.shape}, the row says ({expected[0]}, {expected[1]}, 3)")
        record["vertices"] = vertices
    if _stored(record.get("head_pose")):
        pose = np.frombuffer(record["head_pose"], dtype="<f4")
        if pose.size % 16 or (frames is not None and pose.size != int(frames) * 16):
            raise RowDecodeError(f"{where}: head_pose holds {pose.size} floats, expected {frames} x 16")
        record["head_pose"] = pose.reshape(-1, 4, 4).astype(np.float32)
    if _stored(record.get("audio")):
        from mmface4d_datasets.release.audio import decode_audio, resample

        samples, rate = decode_audio(record["audio"], where=f"{where}: audio")
        if sample_rate is not None and rate != sample_rate:
            samples, rate = resample(samples, rate, sample_rate), int(sample_rate)
        record["audio"] = {"array": np.asarray(samples, dtype=np.float32), "sampling_rate": int(rate)}
        if "sample_rate" in record:
            record["sample_rate"] = int(rate)


def _decode_template_fields(record: dict, where: str) -> None:
    if _stored(record.get("vertices")):
        flat = np.frombuffer(record["vertices"], dtype="<f4")
        count = record.get("num_vertices")
        if flat.size % 3 or (count is not None and flat.size != 3 * int(count)):
            raise RowDecodeError(f"{where}: template vertices hold {flat.size} floats, expected {count} x 3")
        record["vertices"] = flat.reshape(-1, 3).astype(np.float32)


def _decode_raw_fields(record: dict) -> None:
    if _stored(record.get("landmarks")) and record.get("landmarks_shape") is not None:
        flat = np.frombuffer(record["landmarks"], dtype="<f8")
        arrays, offset = [], 0
        for shape in record["landmarks_shape"]:
            size = int(np.prod(shape))
            arrays.append(flat[offset : offset + size].reshape(shape).copy())
            offset += size
        if offset != flat.size:
            raise ValueError(f"landmarks hold {flat.size} floats, landmarks_shape accounts for {offset}")
        record["landmarks"] = arrays
    for name, size in (("intrinsics", 3), ("extrinsics", 4)):
        if isinstance(record.get(name), list):
            record[name] = np.asarray(record[name], dtype=np.float64).reshape(-1, size, size)


def encode_fields(values: Mapping, config: str = "default", *, max_error: float = 1e-5) -> dict:
    """The stored form of decoded fields in `values` (the inverse of `decode_row`), for `map` outputs.

    Decoded `vertices` are encoded with the codec at `max_error` (lossy within that bound, so a field read
    and written back moves by at most the bound); `head_pose` and template vertices as float32 bytes; an
    audio dict as 32-bit float WAV at its `sampling_rate`. `num_frames` / `num_vertices` / `sample_rate`
    are set from what was encoded. Stored values and other fields pass through unchanged.
    """
    out = dict(values)
    if config == "default":
        if isinstance(out.get("vertices"), np.ndarray) or _is_tensor(out.get("vertices")):
            from mmface4d_datasets.codec import encode

            vertices = np.ascontiguousarray(_numpy(out["vertices"]), dtype=np.float32)
            out["vertices"] = encode(vertices, max_error=max_error)
            out["num_frames"], out["num_vertices"] = int(vertices.shape[0]), int(vertices.shape[1])
        if isinstance(out.get("head_pose"), np.ndarray) or _is_tensor(out.get("head_pose")):
            out["head_pose"] = np.ascontiguousarray(_numpy(out["head_pose"]), dtype="<f4").tobytes()
        if isinstance(out.get("audio"), Mapping):
            from mmface4d_datasets.release.audio import float_wav_bytes

            rate = int(out["audio"]["sampling_rate"])
            out["audio"] = float_wav_bytes(np.asarray(_numpy(out["audio"]["array"]), dtype=np.float32), rate)
            out["sample_rate"] = rate
    elif config == "templates":
        if isinstance(out.get("vertices"), np.ndarray) or _is_tensor(out.get("vertices")):
            vertices = np.ascontiguousarray(_numpy(out["vertices"]), dtype="<f4")
            out["vertices"], out["num_vertices"] = vertices.tobytes(), int(vertices.shape[0])
    elif config == "raw":
        if isinstance(out.get("landmarks"), list) and all(isinstance(a, np.ndarray) for a in out["landmarks"]):
            out["landmarks_shape"] = [list(a.shape) for a in out["landmarks"]]
            out["landmarks"] = b"".join(np.ascontiguousarray(a, dtype="<f8").tobytes() for a in out["landmarks"])
        for name in ("intrinsics", "extrinsics"):
            if isinstance(out.get(name), np.ndarray):
                out[name] = [m.reshape(-1).tolist() for m in out[name]]
    return out


def _is_tensor(value) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "numpy")


def _numpy(value):
    return value.detach().cpu().numpy() if _is_tensor(value) else np.asarray(value)
