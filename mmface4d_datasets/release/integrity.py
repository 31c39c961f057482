"""File-level checks of a release's shards on the read path (docs/release_format.md, Checksums).

- `footer_problem`: the shard's Parquet footer against `meta/info.json` `footer_sha256` (every open; a few KB);
- `verify_full_sha256`: the whole file against `sha256` (`verification_mode="all_checks"`), the verdict cached
  by (path, size, modification time) in `paths.cache_dir()/verified-shards.json`, so a second load is free;
- `damaged_shard`: which listed shard differs from `meta/info.json` (called only after a read failed, to name it);
- `ShardReadError`: a shard that cannot be read (pyarrow error, page CRC mismatch), naming the release and shard.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from mmface4d_datasets.errors import FormatError

_log = logging.getLogger(__name__)

#: `verification_mode` values, as `datasets` names them: no_checks (listed files only), basic_checks (sizes,
#: row counts, footers: the default), all_checks (+ the sha256 of every shard read, cached).
VERIFICATION_MODES = ("no_checks", "basic_checks", "all_checks")
_CACHE_NAME = "verified-shards.json"


class ShardReadError(FormatError):
    """A listed shard of a release cannot be read as stored (damaged pages, a footer or checksum that differs
    from meta/info.json); the message names the release and, where it can be found, the shard."""


def verification_mode_name(mode) -> str:
    """'no_checks' / 'basic_checks' / 'all_checks' from a string or a `datasets.VerificationMode`; None: basic."""
    if mode is None:
        return "basic_checks"
    name = str(getattr(mode, "value", mode)).lower()
    if name not in VERIFICATION_MODES:
        raise ValueError(f"verification_mode {mode!r}: expected one of {', '.join(VERIFICATION_MODES)}")
    return name


def footer_problem(path: Path, expected: str | None) -> str | None:
    """Why the footer of `path` is not the one meta/info.json records (None: it is, or none is recorded)."""
    if expected is None:
        return None
    from mmface4d_datasets.release.checksums import footer_sha256

    try:
        actual = footer_sha256(path)
    except (OSError, ValueError) as exc:
        return f"its Parquet footer cannot be read ({exc})"
    if actual != expected:
        return "its Parquet footer (schema, row-group offsets) differs from the one meta/info.json records (sha256)"
    return None


def _cache_path() -> Path:
    from mmface4d_datasets.paths import cache_dir

    return cache_dir() / _CACHE_NAME


def _load_cache() -> dict:
    try:
        data = json.loads(_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _key(path: Path) -> tuple[str, str]:
    stat = path.stat()
    return str(path.resolve()), f"{stat.st_size}:{stat.st_mtime_ns}"


def verify_full_sha256(root: Path, relatives: list[str], info) -> None:
    """Check the sha256 of each listed file against meta/info.json, skipping files verified before with the same
    size and modification time; raise `ShardReadError` naming the first that differs. The cache is best effort:
    a cache folder that cannot be written only costs the next load a re-check."""
    from mmface4d_datasets.files import atomic_write_bytes, json_bytes, sha256_file

    cache = _load_cache()
    changed = False
    for relative in relatives:
        path = root / relative
        expected = info.files[relative].sha256 if relative in info.files else None
        if expected is None:
            continue
        name, stamp = _key(path)
        if cache.get(name) == f"{stamp}:{expected}":
            continue
        if sha256_file(path) != expected:
            raise ShardReadError(
                f"{root}: {relative}: sha256 differs from meta/info.json (the file is damaged or is another build's); "
                f"run `mmface4d validate {root}` to see every problem"
            )
        cache[name] = f"{stamp}:{expected}"
        changed = True
    if changed:
        try:
            atomic_write_bytes(_cache_path(), json_bytes(cache))
        except OSError as exc:  # FileSystemError too: the verdict is only not remembered
            _log.debug("mmface4d: cannot remember verified shards in %s (%s)", _cache_path(), exc)


def damaged_shard(root: Path, relatives: list[str], info) -> str | None:
    """The first of `relatives` whose size or sha256 differs from meta/info.json, or None (only after a failed read:
    it reads the files)."""
    from mmface4d_datasets.files import sha256_file

    for relative in relatives:
        path = root / relative
        entry = info.files.get(relative)
        if entry is None or not path.is_file():
            continue
        try:
            if (entry.size is not None and path.stat().st_size != entry.size) or (entry.sha256 and sha256_file(path) != entry.sha256):
                return relative
        except OSError:
            return relative
    return None


def read_failure(release, relatives: list[str], exc: BaseException, what: str) -> ShardReadError:
    """A `ShardReadError` for a failure of `what` (e.g. "loading split 'train'") on the local release `release`:
    names the damaged shard when a sha256 comparison finds it."""
    root = Path(release.path)
    shard = damaged_shard(root, relatives, release.info) if os.path.isdir(root) else None
    where = f"{shard} is damaged (its sha256 differs from meta/info.json)" if shard else "a shard cannot be read"
    cause = root_cause(exc)
    text = str(cause).splitlines()[0][:300] if str(cause) else ""
    return ShardReadError(f"{root}: {what}: {where} ({type(cause).__name__}: {text}); run `mmface4d validate {root}` to see every problem")


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a chain (`datasets` wraps pyarrow's error in its own)."""
    seen = set()
    while (exc.__cause__ or exc.__context__) is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return exc
