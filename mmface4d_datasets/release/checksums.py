"""Checksums on the read path of a release (docs/release_format.md, Checksums).

Three layers, so that a flipped byte anywhere in a shard is a named error and never a wrong row:

- per row: every table row carries a `checksums` struct with one xxh3-64 digest per other column
  (`row_checksums`), written by the release writer and checked wherever a row is decoded
  (`rows.decode_row`, so the loader map-style and streaming, DataLoader workers, `Release`, the
  scorer and export); a mismatch is a `rows.RowChecksumError` naming shard, row and column;
- per page: Parquet page CRC-32s (pyarrow's `write_page_checksum`), verified where our code reads
  pages (`PAGE_VERIFICATION` for `pq.ParquetFile`, `fragment_scan_options()` for `datasets`);
- per file: the sha256 of each shard's Parquet footer (schema, features metadata, row-group offsets)
  in `meta/info.json`, checked on open (`footer_sha256`), and, with `verification_mode="all_checks"`,
  the sha256 of the whole file (cached by path, size and modification time).

xxh3-64 (the `xxhash` package, already a dependency of `datasets`) runs at several GB/s on one core
(perf/checksums.py measures it per GB beside CRC-32), so the per-row check is a small part of a decode.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping

#: The column that holds a row's checksums (a struct: column name -> int64, the xxh3-64 digest as a signed integer).
CHECKSUM_COLUMN = "checksums"
#: Name of the digest, as docs/release_format.md states it.
ALGORITHM = "xxh3-64"
#: Keyword arguments of `pyarrow.parquet.ParquetFile` / `read_table` that verify page CRCs.
PAGE_VERIFICATION = {"page_checksum_verification": True}
#: Writer option of `pyarrow.parquet.ParquetWriter` that writes them.
PAGE_CHECKSUMS = {"write_page_checksum": True}

_FOOTER_TAIL = 8  # 4-byte little-endian footer length + b"PAR1"


def _digest(data) -> int:
    """xxh3-64 as a signed 64-bit integer (Arrow int64: `datasets` infers int64 for Python ints, so a map output
    keeps the type)."""
    import xxhash

    value = xxhash.xxh3_64_intdigest(data)
    return value - (1 << 64) if value >= 1 << 63 else value


def value_digest(value) -> int:
    """xxh3-64 of one stored value: bytes as they are; None, numbers, strings and nested lists through a
    tagged canonical form (so that an edited or re-typed value never keeps its digest)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _digest(value)
    if value is None:
        return _digest(b"\x00none")
    if isinstance(value, str):
        return _digest(b"\x01" + value.encode("utf-8", "surrogatepass"))
    if isinstance(value, bool):
        return _digest(b"\x02" + (b"1" if value else b"0"))
    if isinstance(value, int):
        return _digest(b"\x03" + str(value).encode())
    if isinstance(value, float):
        return _digest(b"\x04" + repr(value).encode())
    if isinstance(value, (list, tuple)):
        return _digest(b"\x05" + json.dumps(list(value), separators=(",", ":"), allow_nan=True).encode())
    raise TypeError(f"no checksum rule for a stored value of type {type(value).__name__}")


def row_checksums(row: Mapping, columns) -> dict[str, int]:
    """The `checksums` struct of a row: column -> digest of its stored value, for `columns`."""
    return {name: value_digest(row[name]) for name in columns}


def mismatched_columns(row: Mapping) -> list[tuple[str, int, int]]:
    """(column, stored digest, computed digest) of every column of `row` whose stored value does not match
    the row's `checksums`; empty when all match or the row has no checksums (older release, column removed).
    Columns missing from the row (removed by the user) are not checked."""
    stored = row.get(CHECKSUM_COLUMN)
    if not isinstance(stored, Mapping):
        return []
    bad = []
    for name, expected in stored.items():
        if expected is None or name not in row:
            continue
        try:
            actual = value_digest(row[name])
        except TypeError:  # a value decoded already (a map output): nothing stored to check
            continue
        if actual != expected:
            bad.append((name, int(expected), actual))
    return bad


def refreshed(output: Mapping, before: Mapping | None) -> dict | None:
    """The `checksums` for a row a `map` function returned (`output`, stored forms) from the stored row
    `before`: digests of changed values recomputed, the others kept (a value the function never touched
    keeps the digest the writer gave it). None when `before` has no checksums: the row stays unchecked."""
    old = before.get(CHECKSUM_COLUMN) if before is not None else None
    if not isinstance(old, Mapping):
        return None
    new = dict(old)
    for name in old:
        if name in output and (name not in before or output[name] is not before[name] and output[name] != before[name]):
            try:
                new[name] = value_digest(output[name])
            except TypeError:
                new[name] = None
    return new


# --------------------------------------------------------------------------- files


def footer_bytes(path: str | os.PathLike) -> bytes:
    """The Parquet footer of `path` (file metadata + length + magic). ValueError for a file too short or
    without the magic; OSError passes through."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        if size < 12:
            raise ValueError(f"{size} bytes: too short for a Parquet file")
        handle.seek(size - _FOOTER_TAIL)
        tail = handle.read(_FOOTER_TAIL)
        if tail[4:] != b"PAR1":
            raise ValueError("does not end with the Parquet magic bytes")
        length = int.from_bytes(tail[:4], "little")
        if length + _FOOTER_TAIL + 4 > size:
            raise ValueError(f"declares a footer of {length} bytes in a file of {size}")
        handle.seek(size - _FOOTER_TAIL - length)
        return handle.read(length + _FOOTER_TAIL)


def footer_sha256(path: str | os.PathLike) -> str:
    """sha256 (hex) of the Parquet footer of `path` (what meta/info.json `files.*.footer_sha256` records)."""
    return hashlib.sha256(footer_bytes(path)).hexdigest()


def fragment_scan_options():
    """`pyarrow.dataset.ParquetFragmentScanOptions` that verify page CRCs (for `datasets.load_dataset("parquet")`)."""
    import pyarrow.dataset as ds

    return ds.ParquetFragmentScanOptions(**PAGE_VERIFICATION)
