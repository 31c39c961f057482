"""The release writer: sources in, a release folder out (DESIGN.md, A release).

Stages, each resumable:

0. Stale staging: the sources' fingerprints (`inputs_fingerprint`) are compared with those recorded in
   `.build-inputs.json` by the build that staged `.staging/`; staged takes of other inputs are discarded.
1. `take` pass: every source is loaded, checked (`SourceSequence.check`) and its light part staged
   atomically as `.staging/takes/<key>.npz`: metadata, audio bytes (bit-exact), raw capture arrays
   and the take's reference mesh (canonical.py rule). A rerun skips staged keys without loading them.
2. Templates: per subject, from the staged references (cheap, recomputed every run).
3. `row` pass: every take is loaded again, moved into its subject's canonical frame and encoded;
   vertices bytes and head poses are staged as `.staging/rows/<key>.npz`. (Loading twice keeps the
   staging area small: no float32 copy of the vertices is ever staged.)
4. Splits, then shards in id order (`data/{split}/shard-XXXXX.parquet`, `raw/{split}/...`),
   `templates/templates.parquet`, `meta/sequences.parquet`, `meta/splits.json`,
   `meta/topology.npz`, `meta/info.json` (with checksums) and `README.md` (the card). Every file is
   written under a temporary name and renamed when complete; files of an earlier build that this one
   does not produce are removed; `.staging/` is removed at the end unless `keep_staging`.

Determinism: rows are sorted by id, row groups and shards are cut at fixed byte counts, Parquet is
written with fixed settings and no timestamps, .npz members carry a fixed date, JSON is canonical.
The same sources with the same pinned dependencies give byte-identical files, resumed or not.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mmface4d_datasets.errors import FileSystemError, FormatError, MMFace4DError, output_error
from mmface4d_datasets.release import canonical
from mmface4d_datasets.release.audio import encode_audio
from mmface4d_datasets.release.checksums import CHECKSUM_COLUMN, PAGE_CHECKSUMS, footer_sha256, row_checksums
from mmface4d_datasets.files import atomic_write_bytes, discard, json_bytes, npz_bytes, read_npz, sha256_file, temporary_path
from mmface4d_datasets.release.schema import (
    EMOTION_NAMES,
    FORMAT_VERSION,
    BuildReport,
    RawCapture,
    SequenceSource,
    SourceSequence,
    TopologyInfo,
    data_schema,
    emotion_of,
    raw_schema,
    sequences_schema,
    template_schema,
)
from mmface4d_datasets.release.info import INFO_FILE, Counts, FileEntry, FrozenMapping, ReleaseInfo, SplitInfo
from mmface4d_datasets.release.splits import assign_splits, split_of_subjects

DEFAULT_SHARD_SIZE_BYTES = 256 * 2**20
#: The codec's per-coordinate bound of a release, metres, unless the caller gives another.
DEFAULT_MAX_ERROR = 1e-5
DEFAULT_ROW_GROUP_SIZE_BYTES = 128 * 2**20
STAGING = ".staging"
#: Fingerprint of the inputs whose takes are staged in `.staging/` (kept beside it, in the release folder).
INPUTS_NAME = ".build-inputs.json"
#: The kind of output a release folder is in its ownership marker (mmface4d_datasets.output_folders).
RELEASE_KIND = "release"
#: The folders whose files the writer replaces from one build to the next.
RELEASE_FOLDERS = ("data/", "raw/", "templates/", "meta/")


_log = logging.getLogger(__name__)


class BuildError(MMFace4DError):
    """A take (named in the message) could not be written into the release."""


def _temporaries_removed_on_failure(function):
    """On any failure of the build, remove the temporary files this process left in the release
    folder (staged files are kept, so a rerun resumes), and name the folder in a file-system error."""
    import functools
    import os

    @functools.wraps(function)
    def wrapper(sources, out_dir, *args, **kwargs):
        try:
            return function(sources, out_dir, *args, **kwargs)
        except BaseException as exc:
            for path in Path(out_dir).glob(f"**/.*.tmp-{os.getpid()}"):
                discard(path)
            if isinstance(exc, OSError) and not isinstance(exc, MMFace4DError):
                raise output_error(out_dir, exc) from exc
            raise

    return wrapper


@_temporaries_removed_on_failure
def write_release(sources: Iterable[SequenceSource], out_dir: str | Path, *, output=None, **options) -> BuildReport:
    """Write a release folder from `sources` (the module docstring lists the stages).

    The folder is taken under the rule of `mmface4d_datasets.output_folders` (new, empty, or a
    release this package wrote; one writer at a time, by its lock). `output`: the
    `OutputFolder` a caller already holds for `out_dir` (the builders take it before their own
    bookkeeping); when None it is taken here and released at the end. `options`: see
    `_write_release`.
    """
    if output is not None:
        return _write_release(sources, out_dir, output=output, **options)
    from mmface4d_datasets.output_folders import output_folder

    with output_folder(out_dir, RELEASE_KIND) as taken:
        return _write_release(sources, out_dir, output=taken, **options)


def _write_release(
    sources: Iterable[SequenceSource],
    out_dir: str | Path,
    *,
    output,
    topology: TopologyInfo,
    seed: int = 0,
    max_error: float = DEFAULT_MAX_ERROR,
    codec_version: str | None = None,
    shard_size_bytes: int = DEFAULT_SHARD_SIZE_BYTES,
    row_group_size_bytes: int = DEFAULT_ROW_GROUP_SIZE_BYTES,
    on_error: str = "stop",
    progress: bool = True,
    card_info: dict | None = None,
    keep_staging: bool = False,
    map=None,
    given_templates: dict[str, np.ndarray] | None = None,
) -> BuildReport:
    """Write a release folder from `sources` (the module docstring lists the stages).

    sources: `SequenceSource` objects (a `key` = take id, and `load() -> SourceSequence`); keys unique.
    out_dir: the release folder (created; an earlier build there is replaced file by file, its
        `.staging/` resumed when it was made with the same topology, codec bound and versions and,
        for sources with fingerprints, the same inputs (`inputs_fingerprint`);
        only files an earlier build wrote are ever removed). output: its `OutputFolder`.
    topology: the topology every sequence must have (`TopologyInfo`).
    seed: seed of the split rule (splits.py). max_error: codec bound, metres per coordinate.
    codec_version: the vertex codec's format to write (`codec.WRITABLE_VERSIONS`; None: the newest,
        `codec.CODEC_VERSION`); "2" makes a release that packages before format 3 can read.
    shard_size_bytes: target largest shard (stored bytes: audio + vertices + head pose); the shard count
        of a split follows `shard_count` (a multiple of 8 from 8 rows on). row_group_size_bytes: a row
        group is closed once its rows' stored bytes reach this count.
    on_error: "stop" raises `BuildError` naming the take; "skip" leaves the take out and lists it in
        `BuildReport.skipped` (and logs it when `progress`).
    card_info: optional card fields (`pretty_name`, `license`, `homepage`, `source`, `citation`).
    map: runs the per-take work of the take and row passes (load, check, stage; load, canonicalize,
        encode, stage): `map(function, items) -> list`, the results of `function(*args)` for each
        `args` in `items` in order, the raised exception in place of an item that failed. `function`
        is a module-level function and the items are picklable, so a process pool or a cluster can
        run them (builders passes `reconstruction.executor.Executor.map`). Default: in this process.
        Each staged file is written atomically, so the output bytes do not depend on the map.
    given_templates: subject_id -> (N, 3) template in the subject's SOURCE frame that the source brings
        (a FaceFormer-layout templates.pkl): used instead of rule steps 2-3 for those subjects, put into
        the canonical frame by step 4 (`canonical.canonical_frame_template`); its row's rule says so.
        Sources whose rows depend on it must say so in their `fingerprint()`.
    Returns a `BuildReport`. Raises `BuildError` when no take is left to write.
    """
    if on_error not in ("stop", "skip"):
        raise ValueError(f"on_error must be 'stop' or 'skip', got {on_error!r}")
    out_dir = Path(out_dir)
    staging = out_dir / STAGING
    sources = list(sources)
    keys = [str(source.key) for source in sources]
    duplicates = sorted(key for key, count in Counter(keys).items() if count > 1)
    if duplicates:
        raise BuildError(f"{out_dir}: take ids given more than once: {', '.join(duplicates[:10])}")

    report = BuildReport(out_dir=str(out_dir))
    _forget_stale_staging(out_dir, inputs_fingerprint(sources, topology), output)
    from mmface4d_datasets.codec import CODEC_VERSION, WRITABLE_VERSIONS

    codec_version = CODEC_VERSION if codec_version is None else str(codec_version)
    if codec_version not in WRITABLE_VERSIONS:
        raise ValueError(f"codec_version must be one of {', '.join(WRITABLE_VERSIONS)}, got {codec_version!r}")
    _prepare_staging(staging, topology, max_error, codec_version)
    stable = canonical.stable_vertex_ids(topology.region_masks, topology.keypoints)

    def fail(key: str, exc: BaseException) -> None:
        if isinstance(exc, FileSystemError):  # the output folder failed, not the take: never skipped
            raise exc
        message = str(exc) if isinstance(exc, MMFace4DError) else f"{type(exc).__name__}: {exc}"
        if on_error == "stop":
            raise BuildError(f"take {key!r}: {message}") from exc
        report.skipped.append((key, message))
        if progress:
            _log.warning("mmface4d: skipping take %r: %s", key, message)

    # 1. take pass
    run = map if map is not None else (lambda function, items: _serial_map(function, items, progress, on_error == "stop"))
    metas: dict[str, dict] = {}
    todo = [(source, key) for source, key in zip(sources, keys) if not (staging / "takes" / f"{key}.npz").exists()]
    todo_keys = {key for _, key in todo}
    report.resumed.extend(key for key in keys if key not in todo_keys)
    failed_take: dict[str, BaseException] = {}
    outcomes = run(_stage_take_job, [(source, key, staging / "takes" / f"{key}.npz", topology, stable) for source, key in todo])
    for (_, key), outcome in zip(todo, outcomes):
        if isinstance(outcome, BaseException):
            failed_take[key] = outcome
    for key in keys:  # in the sources' order, as a single-process build reports them
        if key in failed_take:
            fail(key, failed_take[key])
            continue
        metas[key] = json.loads(read_npz(staging / "takes" / f"{key}.npz")["meta"].tobytes().decode("utf-8"))

    # 2. templates
    templates = _templates(metas, staging, topology, stable, fail, given_templates or {})
    metas = {key: meta for key, meta in metas.items() if meta["subject_id"] in templates}
    if not metas:
        raise BuildError(f"{out_dir}: no take could be written ({len(report.skipped)} skipped)")

    # 3. row pass
    by_key = dict(zip(keys, sources))
    todo = [key for key in sorted(metas) if not (staging / "rows" / f"{key}.npz").exists()]
    outcomes = run(
        _stage_row_job,
        [
            (
                by_key[key],
                key,
                staging / "rows" / f"{key}.npz",
                topology,
                templates[metas[key]["subject_id"]],
                stable,
                max_error,
                codec_version,
            )
            for key in todo
        ],
    )
    for key, outcome in zip(todo, outcomes):
        if isinstance(outcome, BaseException):
            fail(key, outcome)
            metas.pop(key)
    if not metas:
        raise BuildError(f"{out_dir}: no take could be written ({len(report.skipped)} skipped)")

    # 4. splits, shards, meta, card
    manifest = assign_splits(metas.values(), seed=seed)
    split_of = split_of_subjects(manifest)
    produced = _Produced(output)
    output.will_write(*(out_dir / name for name in FIXED_FILES))
    sequence_rows: list[dict] = []
    for split in ("train", "test"):
        split_metas = sorted((m for m in metas.values() if split_of[m["subject_id"]] == split), key=lambda m: m["id"])
        if not split_metas:
            continue
        written, plan = _write_data_shards(out_dir, split, split_metas, staging, shard_size_bytes, row_group_size_bytes, produced)
        sequence_rows += written
        _write_raw_shards(out_dir, split, split_metas, staging, plan, produced)
        report.split_counts[split] = len(split_metas)
    _write_templates(out_dir, templates, metas, topology, produced, set(given_templates or ()))
    _write_parquet(out_dir / "meta" / "sequences.parquet", _sequences_table(sequence_rows), produced)
    atomic_write_bytes(out_dir / "meta" / "splits.json", json_bytes(manifest))
    atomic_write_bytes(out_dir / "meta" / "topology.npz", npz_bytes(_topology_arrays(topology)))
    produced |= {out_dir / "meta" / "splits.json", out_dir / "meta" / "topology.npz"}
    _remove_stale(out_dir, produced, output)
    info = _info(out_dir, metas, sequence_rows, topology, max_error, codec_version, produced)
    atomic_write_bytes(out_dir / INFO_FILE, json_bytes(info.to_json()))

    from mmface4d_datasets.release.card import render_card

    atomic_write_bytes(out_dir / "README.md", render_card(info, manifest, sequence_rows, card_info or {}).encode("utf-8"))
    if not keep_staging:
        shutil.rmtree(staging, ignore_errors=True)
    report.sequences = sorted(m["id"] for m in metas.values())
    return report


def _serial_map(function, items, progress: bool, stop_at_failure: bool) -> list:
    """The default `map` of `write_release`: in this process, one item after the other (with
    `stop_at_failure`, the list ends at the first failure: on_error="stop" raises there)."""
    outcomes = []
    description = "stage takes" if function is _stage_take_job else "encode rows"
    for args in _progress(list(items), progress, description):
        try:
            outcomes.append(function(*args))
        except Exception as exc:  # any failure of one take is reported under its name
            outcomes.append(exc)
            if stop_at_failure:
                break
    return outcomes


def _stage_take_job(source: SequenceSource, key: str, staged: Path, topology: TopologyInfo, stable: np.ndarray) -> None:
    """Take pass, one take: load, check, stage its light part atomically as `staged`."""
    sequence = source.load()
    _check_sequence(sequence, key, topology)
    atomic_write_bytes(staged, npz_bytes(_stage_take(sequence, stable)))


def _stage_row_job(
    source: SequenceSource,
    key: str,
    staged: Path,
    topology: TopologyInfo,
    template: np.ndarray,
    stable: np.ndarray,
    max_error: float,
    codec_version: str,
) -> None:
    """Row pass, one take: load again, move into the subject's canonical frame, encode, stage as `staged`."""
    sequence = source.load()
    _check_sequence(sequence, key, topology)
    atomic_write_bytes(staged, npz_bytes(_stage_row(sequence, template, stable, max_error, codec_version)))


def _progress(items, enabled: bool, description: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=f"mmface4d release: {description}", unit="take")


def inputs_fingerprint(sources: list[SequenceSource], topology: TopologyInfo) -> str | None:
    """sha256 over every source's `fingerprint()` and the topology: what the staged takes depend on.

    `fingerprint()` is the optional part of the `SequenceSource` protocol: a JSON-serialisable dict
    that changes whenever the take `load()` returns would (its files' sizes and times, metadata,
    settings). None when a source has none: such inputs are resumed by take id alone.
    """
    import hashlib

    if not all(callable(getattr(source, "fingerprint", None)) for source in sources):
        return None
    content = {"topology": topology.hash, "sources": [source.fingerprint() for source in sources]}
    return hashlib.sha256(json_bytes(content)).hexdigest()


def _forget_stale_staging(out_dir: Path, fingerprint: str | None, output) -> bool:
    """Remove `.staging/` when it was made from other inputs; record the inputs' `fingerprint`.

    The writer resumes from staged takes by take id; if a take's files or metadata changed since
    (a corrected manifest, a re-exported take), its staged copy would be stale. So the fingerprint
    of the inputs is kept in `out_dir/.build-inputs.json` (listed in the folder's ownership marker);
    an unfinished build of other inputs (or of unknown inputs) is discarded and the build starts
    afresh. Sources without fingerprints (`fingerprint` None) leave both alone. Returns True when
    something was removed.
    """
    if fingerprint is None:
        return False
    staging, record = out_dir / STAGING, out_dir / INPUTS_NAME
    previous = None
    if record.is_file():
        try:
            previous = json.loads(record.read_text(encoding="utf-8")).get("sha256")
        except (OSError, ValueError, AttributeError):
            previous = None
    removed = False
    if staging.exists() and previous != fingerprint:
        _log.warning("mmface4d build: %s holds an unfinished build of other inputs; starting afresh", staging)
        shutil.rmtree(staging)
        removed = True
    output.will_write(record)
    atomic_write_bytes(record, json_bytes({"sha256": fingerprint}))
    return removed


def _prepare_staging(staging: Path, topology: TopologyInfo, max_error: float, codec_version: str) -> None:
    """Create `.staging/`; wipe it first when it was made with other settings (its files would not fit)."""
    settings = {
        "format_version": FORMAT_VERSION,
        "codec_version": codec_version,
        "max_error": float(max_error),
        "topology_hash": topology.hash,
        "template_rule": canonical.TEMPLATE_RULE_VERSION,
    }
    marker = staging / "settings.json"
    if marker.exists():
        try:
            previous = json.loads(marker.read_text())
        except ValueError:
            previous = None
        if previous != settings:
            shutil.rmtree(staging)
    (staging / "takes").mkdir(parents=True, exist_ok=True)
    (staging / "rows").mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        atomic_write_bytes(marker, json_bytes(settings))


def _check_sequence(sequence: SourceSequence, key: str, topology: TopologyInfo) -> None:
    if not isinstance(sequence, SourceSequence):
        raise FormatError(f"load() returned {type(sequence).__name__}, not a SourceSequence")
    if str(sequence.take_id) != key:
        raise FormatError(f"the source's key is {key!r} but the loaded take says take_id={sequence.take_id!r}")
    if sequence.topology != topology.name:
        raise FormatError(f"topology {sequence.topology!r}, the release is {topology.name!r}")
    sequence.check(topology.num_vertices)


def _stage_take(sequence: SourceSequence, stable: np.ndarray) -> dict[str, np.ndarray]:
    meta = {
        "id": sequence.id,
        "subject_id": str(sequence.subject_id),
        "take_id": str(sequence.take_id),
        "sentence_id": str(sequence.sentence_id),
        "emotion": emotion_of(sequence.sentence_id, where=f"take {sequence.take_id!r}"),
        "text": sequence.text,
        "gender": sequence.gender,
        "age": None if sequence.age is None else int(sequence.age),
        "fps": int(sequence.fps),
        "num_frames": int(sequence.vertices.shape[0]),
        "num_vertices": int(sequence.vertices.shape[1]),
        "topology": sequence.topology,
        "sample_rate": int(sequence.sample_rate),
        "audio_subtype": sequence.audio_subtype,
        "num_samples": int(sequence.audio.shape[0]),
    }
    arrays = {
        "meta": np.frombuffer(json_bytes(meta), dtype=np.uint8),
        "audio": np.frombuffer(encode_audio(sequence.audio, sequence.sample_rate, sequence.audio_subtype), dtype=np.uint8),
        "reference": canonical.take_reference(sequence.vertices, stable),
    }
    raw = sequence.raw or RawCapture()
    cameras = sorted({int(c) for c in (*raw.intrinsics, *raw.extrinsics, *raw.landmarks)})
    arrays["raw_cameras"] = np.asarray(cameras, dtype=np.int32)
    arrays["raw_intrinsics"] = np.stack([_matrix_or_nan(raw.intrinsics, c, 3) for c in cameras]) if cameras else np.zeros((0, 3, 3))
    arrays["raw_extrinsics"] = np.stack([_matrix_or_nan(raw.extrinsics, c, 4) for c in cameras]) if cameras else np.zeros((0, 4, 4))
    for camera in cameras:
        arrays[f"raw_landmarks_{camera}"] = np.asarray(raw.landmarks.get(camera, np.zeros((0, 0, 2))), dtype=np.float64)
    return arrays


def _matrix_or_nan(matrices: dict, camera: int, size: int) -> np.ndarray:
    if camera not in matrices:
        return np.full((size, size), np.nan)
    matrix = np.asarray(matrices[camera], dtype=np.float64)
    if matrix.shape != (size, size):
        raise FormatError(f"camera {camera}: expected a ({size}, {size}) matrix, got {matrix.shape}")
    return matrix


def _templates(metas, staging, topology, stable, fail, given=None) -> dict[str, np.ndarray]:
    """subject_id -> canonical template (N, 3) float32 (from `given` source-frame templates where there is one);
    a subject whose template fails is skipped via `fail`."""
    given = given or {}
    by_subject: dict[str, list[dict]] = defaultdict(list)
    for key, meta in metas.items():
        by_subject[meta["subject_id"]].append(dict(meta, key=key))
    templates = {}
    for subject in sorted(by_subject):
        takes = sorted(by_subject[subject], key=lambda m: m["take_id"])
        chosen = [m for m in takes if m["emotion"] == 0] or takes
        references = [read_npz(staging / "takes" / f"{m['key']}.npz")["reference"] for m in chosen]
        try:
            if subject in given:
                templates[subject] = canonical.canonical_frame_template(given[subject], topology.keypoints, stable)
                continue
            templates[subject] = canonical.canonical_template(references, topology.keypoints, stable)
        except ValueError as exc:
            for meta in takes:
                fail(meta["key"], FormatError(f"subject {subject!r}: no canonical frame ({exc})"))
    return templates


def _stage_row(
    sequence: SourceSequence, template: np.ndarray, stable: np.ndarray, max_error: float, codec_version: str
) -> dict[str, np.ndarray]:
    from mmface4d_datasets.codec import encode

    vertices, head_pose = canonical.canonicalize(sequence.vertices, template, stable)
    return {
        "vertices": np.frombuffer(encode(vertices, max_error=max_error, version=codec_version), dtype=np.uint8),
        "head_pose": head_pose,
    }


# --------------------------------------------------------------------------- Parquet


def _writer(path: Path, schema):
    import pyarrow.parquet as pq

    binary = [f.name for f in schema if str(f.type) == "binary"]
    return pq.ParquetWriter(
        temporary_path(path),
        schema,
        compression={f.name: ("NONE" if f.name in ("audio", "vertices") else "ZSTD") for f in schema},
        compression_level=None,
        use_dictionary=[f.name for f in schema if f.name not in binary],
        write_statistics=[f.name for f in schema if f.name not in binary],
        version="2.6",
        data_page_version="1.0",
        **PAGE_CHECKSUMS,
    )


def _write_parquet(path: Path, table, produced: set[Path], row_group_rows: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    produced.opening(path)
    writer = _writer(path, table.schema)
    writer.write_table(table, row_group_size=row_group_rows or max(1, table.num_rows))
    writer.close()
    temporary_path(path).replace(path)
    produced.add(path)


def _shard_path(out_dir: Path, config: str, split: str, index: int) -> Path:
    return out_dir / config / split / f"shard-{index:05d}.parquet"


def _data_row(meta: dict, audio: bytes, row: dict) -> dict:
    stored = {
        "id": meta["id"],
        "subject_id": meta["subject_id"],
        "take_id": meta["take_id"],
        "sentence_id": meta["sentence_id"],
        "emotion": meta["emotion"],
        "text": meta["text"],
        "gender": meta["gender"],
        "age": meta["age"],
        "fps": meta["fps"],
        "num_frames": meta["num_frames"],
        "num_vertices": meta["num_vertices"],
        "topology": meta["topology"],
        "sample_rate": meta["sample_rate"],
        "audio": audio,
        "vertices": row["vertices"].tobytes(),
        "head_pose": np.ascontiguousarray(row["head_pose"], dtype="<f4").tobytes(),
    }
    return _with_checksums(stored)


def _with_checksums(row: dict) -> dict:
    """`row` with its `checksums` struct (one digest per column: `release.checksums`)."""
    row[CHECKSUM_COLUMN] = row_checksums(row, [name for name in row if name != CHECKSUM_COLUMN])
    return row


SHARD_MULTIPLE = 8


def shard_count(num_rows: int, total_bytes: int, shard_size_bytes: int) -> int:
    """How many shards a split is cut into (docs/release_format.md, Shards).

    With 8 rows or more: the smallest multiple of 8 that keeps shards at most `shard_size_bytes` (by the
    rows' stored bytes), but no more than the largest multiple of 8 that leaves every shard a row; so
    `split_dataset_by_node` gives every node of a 2-, 4- or 8-node job whole shards. Fewer than 8 rows:
    the largest power of two not above the row count (1, 2 or 4).
    """
    if num_rows < SHARD_MULTIPLE:
        return 1 << (max(1, num_rows).bit_length() - 1)
    needed = max(1, -(-int(total_bytes) // max(1, int(shard_size_bytes))))
    wanted = SHARD_MULTIPLE * -(-needed // SHARD_MULTIPLE)
    return min(wanted, SHARD_MULTIPLE * (num_rows // SHARD_MULTIPLE))


def shard_plan(sizes: list[int], shard_size_bytes: int) -> list[int]:
    """Row counts of the shards of one split: `shard_count` shards of consecutive rows (id order) with
    about equal stored bytes (cut where the running total first reaches k / count of the whole)."""
    count = shard_count(len(sizes), sum(sizes), shard_size_bytes)
    total, running, cuts, row = sum(sizes), 0, [], 0
    for k in range(1, count):
        lowest = (cuts[-1] if cuts else 0) + 1
        highest = len(sizes) - (count - k)
        while row < len(sizes) and running < total * k / count:
            running += sizes[row]
            row += 1
        cuts.append(min(max(row, lowest), highest))
    bounds = [0] + cuts + [len(sizes)]
    return [bounds[i + 1] - bounds[i] for i in range(count)]


def _staged_row_bytes(staging: Path, take_id: str) -> int:
    """Stored bytes of one row (audio + vertices + head pose), from the staged .npz members' sizes."""
    import zipfile

    size = 0
    with zipfile.ZipFile(staging / "rows" / f"{take_id}.npz") as rows:
        size += sum(info.file_size for info in rows.infolist())
    with zipfile.ZipFile(staging / "takes" / f"{take_id}.npz") as take:
        size += sum(info.file_size for info in take.infolist() if info.filename.startswith("audio"))
    return size


def _write_data_shards(out_dir, split, metas, staging, shard_size_bytes, row_group_size_bytes, produced) -> tuple[list[dict], list[int]]:
    """Rows of one split, in id order, into the shards of `shard_plan` with row groups cut at
    `row_group_size_bytes`. Returns the `meta/sequences.parquet` rows of these sequences and the plan."""
    import pyarrow as pa

    schema = data_schema()
    plan = shard_plan([_staged_row_bytes(staging, meta["take_id"]) for meta in metas], shard_size_bytes)
    sequence_rows = []
    start = 0
    for shard_index, count in enumerate(plan):
        path = _shard_path(out_dir, "data", split, shard_index)
        path.parent.mkdir(parents=True, exist_ok=True)
        produced.opening(path)
        writer = _writer(path, schema)
        group: list[dict] = []
        group_bytes = 0
        for shard_row, meta in enumerate(metas[start : start + count]):
            staged_take = read_npz(staging / "takes" / f"{meta['take_id']}.npz")
            row = _data_row(meta, staged_take["audio"].tobytes(), read_npz(staging / "rows" / f"{meta['take_id']}.npz"))
            group.append(row)
            group_bytes += len(row["audio"]) + len(row["vertices"]) + len(row["head_pose"])
            sequence_rows.append(dict(meta, split=split, shard=path.relative_to(out_dir).as_posix(), row=shard_row))
            if group_bytes >= row_group_size_bytes:
                writer.write_table(pa.Table.from_pylist(group, schema=schema), row_group_size=len(group))
                group, group_bytes = [], 0
        if group:
            writer.write_table(pa.Table.from_pylist(group, schema=schema), row_group_size=len(group))
        writer.close()
        temporary_path(path).replace(path)
        produced.add(path)
        start += count
    return sequence_rows, plan


def _write_raw_shards(out_dir, split, metas, staging, plan, produced) -> None:
    """Raw capture rows of one split, in id order, cut like the data shards (`plan`: rows per shard), one row group each."""
    import pyarrow as pa

    rows, shard_index = [], 0
    for meta in metas:
        staged = read_npz(staging / "takes" / f"{meta['take_id']}.npz")
        cameras = [int(c) for c in staged["raw_cameras"]]
        landmarks = [staged[f"raw_landmarks_{c}"] for c in cameras]
        blob = b"".join(np.ascontiguousarray(a, dtype="<f8").tobytes() for a in landmarks)
        rows.append(
            _with_checksums(
                {
                    "id": meta["id"],
                    "cameras": cameras,
                    "intrinsics": [m.reshape(-1).tolist() for m in staged["raw_intrinsics"]],
                    "extrinsics": [m.reshape(-1).tolist() for m in staged["raw_extrinsics"]],
                    "landmarks": blob,
                    "landmarks_shape": [list(a.shape) for a in landmarks],
                }
            )
        )
        if len(rows) == plan[shard_index]:
            _write_parquet(_shard_path(out_dir, "raw", split, shard_index), pa.Table.from_pylist(rows, schema=raw_schema()), produced)
            rows, shard_index = [], shard_index + 1


def _write_templates(out_dir, templates, metas, topology, produced, given=frozenset()) -> None:
    import pyarrow as pa

    counts: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for meta in metas.values():
        neutral, total = counts[meta["subject_id"]]
        counts[meta["subject_id"]] = (neutral + (meta["emotion"] == 0), total + 1)
    rows = []
    for subject in sorted(templates):
        if subject not in counts:
            continue
        neutral, total = counts[subject]
        rows.append(
            _with_checksums(
                {
                    "subject_id": subject,
                    "num_vertices": int(topology.num_vertices),
                    "topology": topology.name,
                    "num_sequences": int(neutral or total),
                    "rule": canonical.GIVEN_TEMPLATE_RULE if subject in given else canonical.TEMPLATE_RULE,
                    "vertices": np.ascontiguousarray(templates[subject], dtype="<f4").tobytes(),
                }
            )
        )
    _write_parquet(
        out_dir / "templates" / "templates.parquet", pa.Table.from_pylist(rows, schema=template_schema()), produced, row_group_rows=256
    )


def _sequences_table(sequence_rows: list[dict]):
    import pyarrow as pa

    rows = [
        {
            "id": r["id"],
            "subject_id": r["subject_id"],
            "take_id": r["take_id"],
            "sentence_id": r["sentence_id"],
            "split": r["split"],
            "emotion": EMOTION_NAMES[r["emotion"]],
            "text": r["text"],
            "gender": r["gender"],
            "age": r["age"],
            "num_frames": r["num_frames"],
            "duration_s": r["num_frames"] / r["fps"],
            "shard": r["shard"],
            "row": r["row"],
        }
        for r in sorted(sequence_rows, key=lambda r: r["id"])
    ]
    return pa.Table.from_pylist(rows, schema=sequences_schema())


def _topology_arrays(topology: TopologyInfo) -> dict[str, np.ndarray]:
    arrays = {
        "triangles": np.asarray(topology.triangles, dtype=np.int64),
        "keypoints": np.asarray(topology.keypoints, dtype=np.int64),
        "name": np.asarray(topology.name),
        "hash": np.asarray(topology.hash),
        "num_vertices": np.asarray(int(topology.num_vertices), dtype=np.int64),
        "region_rule_version": np.asarray(topology.region_rule_version),
    }
    for name, ids in sorted(topology.region_masks.items()):
        arrays[f"mask_{name}"] = np.asarray(ids, dtype=np.int64)
    return arrays


class _Produced(set):
    """The files this build writes; each is recorded in the folder's ownership marker before it is
    opened, so that a later build may remove it (and never anything else)."""

    def __init__(self, output):
        super().__init__()
        self.output = output

    def opening(self, path: Path) -> None:
        self.output.will_write(path)


#: Files of every release besides the shards (written with atomic_write_bytes).
FIXED_FILES = ("meta/splits.json", "meta/topology.npz", "meta/info.json", "README.md")


def _remove_stale(out_dir: Path, produced: set[Path], output) -> None:
    """Delete the files an earlier build in this folder wrote that this build did not (shards of a
    bigger split, ...) and temporary files a killed build left beside them. Only files listed in the
    folder's ownership marker are removed; anything else under data/, raw/ or templates/ is left
    where it is and named on stderr (it is not part of the release; `mmface4d validate` reports it)."""
    keep = set(produced) | {out_dir / name for name in FIXED_FILES}
    output.remove_written(keep, under=RELEASE_FOLDERS)
    for config in ("data", "raw", "templates"):
        for relative in output.foreign_files(config):
            _log.warning(
                "mmface4d: %s was not written by mmface4d; left in place, it is not part of the release (move it out of the folder)",
                out_dir / relative,
            )


def _info(out_dir, metas, sequence_rows, topology, max_error, codec_version, produced) -> ReleaseInfo:
    from mmface4d_datasets import __version__

    def uniform(name):
        values = sorted({m[name] for m in metas.values()})
        return values[0] if len(values) == 1 else tuple(values)

    splits = {}
    for split in sorted({r["split"] for r in sequence_rows}):
        rows = [r for r in sequence_rows if r["split"] == split]
        splits[split] = SplitInfo(
            sequences=len(rows),
            subjects=len({r["subject_id"] for r in rows}),
            frames=int(sum(r["num_frames"] for r in rows)),
            shards=tuple(sorted({r["shard"] for r in rows})),
        )
    files = {}
    for path in sorted(produced):
        rows = None
        if path.suffix == ".parquet":  # the loader checks footers against these counts (loading.check_listed_shards)
            import pyarrow.parquet as pq

            rows = pq.ParquetFile(path).metadata.num_rows
        footer = footer_sha256(path) if path.suffix == ".parquet" else None
        files[path.relative_to(out_dir).as_posix()] = FileEntry(
            size=path.stat().st_size, sha256=sha256_file(path), rows=rows, footer_sha256=footer
        )
    return ReleaseInfo(
        format_version=FORMAT_VERSION,
        writer=f"mmface4d-datasets {__version__}",
        fps=uniform("fps"),
        sample_rate=uniform("sample_rate"),
        topology=topology.name,
        topology_hash=topology.hash,
        num_vertices=int(topology.num_vertices),
        vertex_dtype="float32",
        units="metres",
        frame="canonical head frame of the subject (+y up, +z out of the face); head_pose maps it to the source camera",
        codec_version=codec_version,
        max_error=float(max_error),
        template_rule=canonical.TEMPLATE_RULE_VERSION,
        emotions=tuple(EMOTION_NAMES),
        counts=Counts(
            sequences=len(metas),
            subjects=len({m["subject_id"] for m in metas.values()}),
            frames=int(sum(m["num_frames"] for m in metas.values())),
        ),
        splits=FrozenMapping(splits),
        files=FrozenMapping(files),
    )
