"""File helpers every part shares: atomic writes, canonical JSON, deterministic .npz, checksums."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from mmface4d_datasets.errors import FileSystemError, FormatError, output_error

# A fixed zip timestamp keeps .npz files byte-identical between builds (numpy's savez stamps "now").
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def temporary_path(path: Path) -> Path:
    """A name in the same folder that a complete file is renamed from (never matched by shard globs).

    The one temporary-name rule of the package (``.NAME.tmp-PID``; `output_folders` and the release
    writer recognise it). Not created here (mkstemp would create it with mode 0600, which the rename
    would keep): the writer creates it, so the finished file gets the usual permissions under the umask.
    """
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to a temporary name beside `path`, fsync, then rename onto `path`.

    On any failure the temporary file is removed; an OSError (read-only folder, a file where a
    folder is needed, a full disk) becomes a :class:`FileSystemError` naming `path` and the cause.
    """
    path = Path(path)
    tmp = temporary_path(path)
    with removed_on_failure(path, tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)


def discard(path: Path) -> None:
    """Remove a temporary file if it is there (a failure to remove it is not an error of its own)."""
    try:
        Path(path).unlink(missing_ok=True)
    except OSError:
        pass


@contextlib.contextmanager
def removed_on_failure(target: str | Path, *temporaries: Path):
    """Run the block that writes `target` through `temporaries`; if it fails, remove them.

    An OSError from the block is raised as a :class:`FileSystemError` naming `target` and the cause.
    """
    try:
        yield
    except BaseException as exc:
        for tmp in temporaries:
            discard(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, FileSystemError):
            raise output_error(target, exc) from exc
        raise


def json_bytes(obj) -> bytes:
    """Canonical JSON: sorted keys, two-space indent, UTF-8, trailing newline."""
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def npz_bytes(arrays: dict[str, np.ndarray], *, compressed: bool = False, sort: bool = True) -> bytes:
    """An .npz (readable by `np.load` with ``allow_pickle=False``) whose bytes depend only on the arrays.

    ``np.savez`` stamps each member with the current time; here every member gets a fixed date.
    Members are in name order (``sort``) or in the given order; ``compressed`` deflates them.
    Arrays holding Python objects are refused (they would need a pickle).
    """
    compression = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name in sorted(arrays) if sort else arrays:
            array = np.asarray(arrays[name])
            if array.dtype.hasobject:
                raise ValueError(f"npz: array {name!r} holds Python objects; refusing to write a pickle")
            member = io.BytesIO()
            np.lib.format.write_array(member, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = compression
            if compressed:
                info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def npy_header(handle, available: int, where) -> tuple[tuple[int, ...], np.dtype, bool]:
    """(shape, dtype, fortran_order) of the .npy stream at `handle`'s position, checked BEFORE anything is
    allocated: a known numeric or string dtype (no objects: those need pickle), and a declared size that the
    `available` bytes (file size, or an .npz member's size) can hold. The one bounded reader of .npy headers:
    a header may declare any shape, and numpy allocates it before reading. Raises `FormatError` naming `where`."""
    from numpy.lib import format as npy_format

    try:
        version = npy_format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(handle)
        else:
            shape, fortran, dtype = npy_format.read_array_header_2_0(handle, max_header_size=10000)
    except (ValueError, OSError, SyntaxError, EOFError) as exc:
        raise FormatError(f"{where}: not a .npy array ({exc})") from None
    if dtype.hasobject:
        raise FormatError(f"{where}: not a plain numeric array: it holds Python objects (dtype {dtype}), which need pickle: refused")
    if any(int(n) < 0 for n in shape):
        raise FormatError(f"{where}: declares the negative shape {shape}")
    needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    header = handle.tell()
    if needed > available - header:
        raise FormatError(
            f"{where}: its header declares shape {shape} of {dtype} ({needed:,} bytes), the file holds "
            f"{max(0, available - header):,}: truncated or damaged"
        )
    return tuple(int(n) for n in shape), dtype, bool(fortran)


def read_npy(path: str | Path) -> np.ndarray:
    """One .npy file, without pickles, its header checked against the file's size first (`npy_header`).
    Raises `FormatError` naming the file (missing files raise FileNotFoundError as `np.load` does)."""
    path = Path(path)
    with open(path, "rb") as handle:
        npy_header(handle, os.fstat(handle.fileno()).st_size, path)
        handle.seek(0)
        try:
            return np.load(handle, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise FormatError(f"{path}: not a readable .npy array ({exc})") from None


#: Deflate expands at most about 1032:1; an .npz member declaring more than this per compressed byte lies.
_DEFLATE_RATIO = 1100


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file, loaded without pickles; each member's .npy header is checked against the
    member's size before it is read (`npy_header`), so a damaged file is a `FormatError`, not a huge allocation."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            limit = info.compress_size * _DEFLATE_RATIO + 4096 if info.compress_type != zipfile.ZIP_STORED else info.compress_size
            if info.file_size > limit:
                raise FormatError(f"{path}: member {info.filename} declares {info.file_size:,} bytes from {info.compress_size:,}")
            if info.filename.endswith(".npy"):
                with archive.open(info) as member:
                    npy_header(member, info.file_size, f"{path}: member {info.filename}")
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def sha256_file(path: str | Path, chunk_size: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
