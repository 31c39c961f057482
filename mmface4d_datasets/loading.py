"""`load_dataset`: an MMFace4D release, decoded, around a plain Hugging Face `datasets` object.

Where the release comes from, in this order:
1. `name="mini"`: a small synthetic release (8 subjects x 3 sentences, 1,000 vertices) built on first
   use into `mmface4d_datasets.paths.cache_dir()` (under `HF_HOME`), then reused. Needs no network.
2. `data_dir=...`, else the environment variable `MMFACE4D_DATA_DIR`: a local release folder.
3. `path` naming an existing folder, `"mini"` or a release in the cache: the names every command takes
   (`mmface4d_datasets.release.resolve.resolve_release`).
4. The Hub: repository `path` when it contains "/", else `$MMFACE4D_REPO_ID`, else `DEFAULT_REPO_ID`;
   only the README, `meta/` and the files of the asked config and split are downloaded; with
   `streaming=True` only the README and `meta/`, and the shards are read remotely (`hf://` paths).

Only the shards `meta/info.json` lists are read, after cheap checks against it (`check_listed_shards`).
What comes back (`decoded_dataset.py`, docs/loading.md): `MMFace4DDatasetDict` (no `split`),
`MMFace4DDataset` (a split) or `MMFace4DIterableDataset` (`streaming=True`), each holding the plain
`datasets` object as `.hf_dataset` and keeping the decoding through the operations users chain. Rows of the default config have the DESIGN.md fields with `vertices` decoded to
(T, N, 3) float32 (metres, canonical head frame), `head_pose` (T, 4, 4) float32 and `audio`
`{"array": float32 samples at 16 kHz, "sampling_rate": 16000}` (resampled when stored at another
rate), as numpy arrays; `.with_format("torch")` gives torch tensors with the same decoding.
`templates` rows: `vertices` (N, 3). `raw` rows: `intrinsics` (C, 3, 3), `extrinsics` (C, 4, 4),
`landmarks` a list of (T, K, 2) arrays, one per camera. `decode=False` keeps the stored bytes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mmface4d_datasets.vocabulary import SAMPLE_RATE
from mmface4d_datasets.errors import FormatError, MMFace4DError
from mmface4d_datasets.release.resolve import DATA_DIR_ENV, REPO_ENV, DatasetNotAvailableError

__all__ = ["load_dataset", "open_release_dataset", "DatasetNotAvailableError", "DATA_DIR_ENV", "REPO_ENV", "DEFAULT_REPO_ID"]

if TYPE_CHECKING:
    from mmface4d_datasets.release.info import ReleaseInfo

DEFAULT_REPO_ID = "mmface4d/mmface4d"
CONFIGS = ("default", "templates", "raw", "mini")


_log = logging.getLogger(__name__)


def _is_local(path: str) -> bool:
    return "://" not in str(path)


def load_dataset(
    path: str = "mmface4d",
    name: str | None = None,
    split: str | None = None,
    streaming: bool = False,
    data_dir: str | os.PathLike | None = None,
    revision: str | None = None,
    *,
    decode: bool = True,
    verification_mode=None,
):
    """Load an MMFace4D release (see the module docstring for where it is found and what rows hold).

    path: "mmface4d" (the default Hub repo or a local release given by data_dir / MMFACE4D_DATA_DIR),
        a Hub repo id "owner/name", or a release folder.
    name: None or "default" (sequences), "templates", "raw", or "mini" (the default config of the
        small synthetic release, built offline on first use).
    split: "train" or "test" (None: all splits of the release as a DatasetDict).
    streaming: an IterableDataset that reads the shards as it goes.
    revision: Hub revision (branch, tag or commit); ignored for local folders.
    decode: False returns the stored bytes (codec `vertices`, WAV/FLAC `audio`).
    verification_mode: as `datasets` names them: "basic_checks" (default: listed sizes, row counts and Parquet
        footers on open, page CRCs and per-row checksums on read), "all_checks" (also the sha256 of every shard
        before the first read, remembered by path, size and modification time), "no_checks" (no file checks
        on open; page and row checksums stay on). Local releases only; Hub downloads are checked by the Hub client.
    Raises `DatasetNotAvailableError` (with the ways out) when no release can be found, `ReleaseMismatchError` /
    `ShardReadError` for files that are not the ones meta/info.json lists, `RowChecksumError` (on reading a row)
    for a damaged row.
    """
    from mmface4d_datasets.release.integrity import verification_mode_name

    verification_mode = verification_mode_name(verification_mode)
    from mmface4d_datasets.release.resolve import MINI, is_hub_id, mini_release, resolve_release

    config = "default" if name in (None, "default") else name
    if config not in CONFIGS:
        raise MMFace4DError(f"load_dataset: unknown config name {name!r} (known: {', '.join(CONFIGS)})")
    path = os.fspath(path)
    if config == MINI:  # name="mini": the default config of the mini release
        folder, config = mini_release(), "default"
    elif data_dir is not None or os.environ.get(DATA_DIR_ENV):
        folder = Path(data_dir if data_dir is not None else os.environ[DATA_DIR_ENV]).expanduser()
        if not (folder / "meta" / "info.json").is_file():
            given = "data_dir" if data_dir is not None else DATA_DIR_ENV
            raise DatasetNotAvailableError(
                f"{folder} (from {given}) is not an MMFace4D release folder: it has no "
                f"meta/info.json. Build one with `mmface4d build release`."
            )
    elif path not in ("mmface4d", "") and not (is_hub_id(path) and not Path(path).expanduser().exists()):
        folder = resolve_release(path)  # a folder, "mini" or a release in the cache: the names every command takes
    else:
        repo_id = path if "/" in path else os.environ.get(REPO_ENV, DEFAULT_REPO_ID)
        # Streaming downloads only the card and meta/; the shards are read remotely through hf:// paths.
        folder = download_release(repo_id, config, split, revision, metadata_only=streaming)
        if streaming:
            from mmface4d_datasets.release.reader import Release

            remote = hub_stream_files(repo_id, revision, Release(folder).info, config, split)
            return _open_files(remote, config, split, streaming=True, decode=decode, release=Release(folder))
    return open_release_dataset(folder, config, split, streaming=streaming, decode=decode, verification_mode=verification_mode)


def hub_patterns(config: str, split: str | None) -> list[str]:
    """The `allow_patterns` of a Hub download: card, meta/ and the shards of one config (and split)."""
    patterns = ["README.md", "meta/*"]
    if config == "templates":
        return patterns + ["templates/*.parquet"]
    folder = "raw" if config == "raw" else "data"
    return patterns + [f"{folder}/{split or '*'}/*.parquet"]


def hub_stream_files(repo_id: str, revision: str | None, info: ReleaseInfo, config: str, split: str | None) -> dict[str, list[str]]:
    """`hf://` paths of the shards of one config (per split), from the file list of `meta/info.json`."""
    base = f"hf://datasets/{repo_id}@{revision or 'main'}/"
    if config == "templates":
        return {"train": [base + "templates/templates.parquet"]}
    folder = "raw" if config == "raw" else "data"
    splits = [split] if split is not None else info.split_names
    files = {}
    for name in splits:
        listed = info.listed(f"{folder}/{name}/")
        if not listed:
            raise MMFace4DError(
                f"Hub repository {repo_id!r}: meta/info.json lists no {folder}/{name}/ shards (splits: {sorted(info.splits)})"
            )
        files[name] = [base + path for path in listed]
    return files


def download_release(repo_id: str, config: str, split: str | None, revision: str | None, *, metadata_only: bool = False) -> Path:
    """snapshot_download of only the needed files (only README.md and meta/ with `metadata_only`);
    any failure becomes one `DatasetNotAvailableError` saying what to do (`release.resolve.download_release`)."""
    from mmface4d_datasets.release import resolve

    patterns = hub_patterns(config, split)[:2] if metadata_only else hub_patterns(config, split)
    return resolve.download_release(repo_id, revision=revision, patterns=patterns)


class ReleaseMismatchError(FormatError):
    """The files of a release folder are not the ones its meta/info.json lists (names, sizes, row counts)."""


def check_listed_shards(release, config: str, split: str, verification_mode: str = "basic_checks") -> list[Path]:
    """The listed shard files of one config and split, after the cheap checks against meta/info.json.

    Each listed file must exist with the listed size, its Parquet footer must be the one info.json records
    (format 1.1) and the footers must hold the split's sequence count (and each shard its listed row count).
    "all_checks" adds the sha256 of each file (`integrity.verify_full_sha256`, remembered); "no_checks" only
    lists the files. Raises `ReleaseMismatchError` / `ShardReadError` naming the file and saying to validate.
    """
    import pyarrow.parquet as pq

    from mmface4d_datasets.release.info import FileEntry
    from mmface4d_datasets.release.integrity import footer_problem, verify_full_sha256

    info = release.info
    paths, total = [], 0

    def mismatch(what: str) -> ReleaseMismatchError:
        return ReleaseMismatchError(
            f"{release.path}: {what}; the folder is not the release its meta/info.json describes (a half-finished "
            f"rebuild, files swapped or copied by hand?). Run `mmface4d validate {release.path}` to see every problem."
        )

    if config == "templates":
        relatives = ["templates/templates.parquet"]
    else:
        relatives = [p.relative_to(release.path).as_posix() for p in release.shards(split, "raw" if config == "raw" else "data")]
    if not relatives:
        raise mismatch(f"meta/info.json lists no {config} shards for split {split!r}")
    if verification_mode == "no_checks":
        return [release.path / relative for relative in relatives]
    for relative in relatives:
        path = release.path / relative
        if not path.is_file():
            raise mismatch(f"{relative} is listed but missing")
        expected = info.files.get(relative, FileEntry())
        size = path.stat().st_size
        if expected.size is not None and size != expected.size:
            raise mismatch(f"{relative} has {size} bytes, meta/info.json says {expected.size}")
        problem = footer_problem(path, expected.footer_sha256)
        if problem is not None:
            raise mismatch(f"{relative}: {problem}")
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except Exception as exc:  # ArrowInvalid / OSError for a file that is no Parquet file
            raise mismatch(f"{relative} is not a readable Parquet file ({exc})") from exc
        if expected.rows is not None and rows != expected.rows:
            raise mismatch(f"{relative} holds {rows} rows, meta/info.json says {expected.rows}")
        total += rows
        paths.append(path)
    sequences = info.splits[split].sequences if split in info.splits else None
    if config != "templates" and sequences is not None and total != sequences:
        raise mismatch(f"the {config} shards of split {split!r} hold {total} rows, meta/info.json says {sequences} sequences")
    if verification_mode == "all_checks":
        verify_full_sha256(release.path, relatives, info)
    return paths


def _data_files(release, config: str, split: str | None, verification_mode: str = "basic_checks") -> dict[str, list[str]]:
    if config == "templates":
        if split not in (None, "train"):
            raise MMFace4DError(f"{release.path}: the templates config has one split, 'train' (asked: {split!r})")
        return {"train": [str(p) for p in check_listed_shards(release, config, "train", verification_mode)]}
    splits = [split] if split is not None else release.split_names
    return {name: [str(p) for p in check_listed_shards(release, config, name, verification_mode)] for name in splits}


def open_release_dataset(
    folder,
    config: str = "default",
    split: str | None = None,
    *,
    streaming: bool = False,
    decode: bool = True,
    verification_mode: str = "basic_checks",
):
    """A local release folder's config, decoded (see `load_dataset`); only the shards meta/info.json lists."""
    from mmface4d_datasets.release.reader import Release

    release = Release(folder)  # checks the format version first
    files = _data_files(release, config, split, verification_mode)
    return _open_files(files, config, split, streaming=streaming, decode=decode, release=release)


def note_unchecked(release) -> None:
    """One line, once per release folder and process, for a release written before per-row checksums."""
    from mmface4d_datasets.release.schema import UNCHECKED_FORMAT_VERSIONS

    key = str(release.path)
    if release.info.format_version in UNCHECKED_FORMAT_VERSIONS and key not in _NOTED:
        _NOTED.add(key)
        _log.warning(
            "mmface4d: %s is a format %s release: its rows carry no checksums, so damaged bytes may go unnoticed "
            "(rebuild it with `mmface4d build release` for checked rows; `mmface4d validate` checks its sha256s)",
            release.path,
            release.info.format_version,
        )


_NOTED: set[str] = set()


def _open_files(files: dict[str, list[str]], config: str, split: str | None, *, streaming: bool, decode: bool, release=None):
    import datasets

    from mmface4d_datasets.release.checksums import fragment_scan_options
    from mmface4d_datasets.release.integrity import read_failure

    from mmface4d_datasets.decoded_dataset import (
        MMFace4DDataset,
        MMFace4DDatasetDict,
        MMFace4DIterableDataset,
        MMFace4DIterableDatasetDict,
        RowDecoder,
    )

    if release is not None:
        note_unchecked(release)
    try:  # page CRCs verified as pages are read (map-style: now, into the Arrow cache; streaming: as rows go)
        loaded = datasets.load_dataset("parquet", data_files=files, streaming=streaming, fragment_scan_options=fragment_scan_options())
    except Exception as exc:  # pyarrow's errors for damaged pages, wrapped by datasets: name the release and the shard
        if release is None or isinstance(exc, MMFace4DError):
            raise
        relatives = [Path(p).relative_to(release.path).as_posix() for paths in files.values() for p in paths if _is_local(p)]
        raise read_failure(release, relatives, exc, f"loading {config} split(s) {', '.join(files)}") from exc
    max_error = float(release.info.max_error) if release is not None else 1e-5
    decoder = RowDecoder(
        config, decode, release=str(release.path) if release is not None else None, sample_rate=SAMPLE_RATE, max_error=max_error
    )
    wrapper = MMFace4DIterableDataset if streaming else MMFace4DDataset
    result = {name: wrapper(dataset, decoder) for name, dataset in loaded.items()}
    if split is not None:
        return result[split]
    return (MMFace4DIterableDatasetDict if streaming else MMFace4DDatasetDict)(result)
