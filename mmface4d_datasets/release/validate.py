"""Checking a release folder: `validate_release(path) -> list[Problem]` and `mmface4d validate`.

What is checked (every problem is reported by file and, for table rows, row number):
- `meta/info.json`: present, JSON, this package's format version, every field of its layout (`ReleaseInfo`);
- checksums and sizes of every file listed in `info.files`, and no unlisted shard; each Parquet file's row
  count and footer digest against its entry, and `counts` / `splits` against the rows the shards hold;
- schema: the columns and types of data, raw and template shards and of `meta/sequences.parquet`;
- pages: every page of every shard read with its CRC verified (format 1.1);
- rows: each value against the row's `checksums` (format 1.1), id = subject_id/take_id, unique ids, emotion index and sentence prefix agree, topology and
  vertex count, the codec header's shape against num_frames/num_vertices, head_pose size, audio
  readable, the subject's split in `meta/splits.json` against the shard's folder;
- splits: no subject in two splits, every test sequence has a style reference, which is another
  existing sequence of the same test subject;
- `meta/sequences.parquet` points at the right shard rows; a template exists for every subject;
- `meta/topology.npz` hash matches `info`; the card has its YAML configs and gating fields.
Codec payloads are not decoded (the header CRC is checked, the row checksum covers the payload); audio
headers are read, not samples. So validate applies every check the loader applies (loading.check_listed_shards,
page CRCs, row checksums, decodable values), and more.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

from mmface4d_datasets.release.info import INFO_FILE, InfoFormatError, ReleaseInfo
from mmface4d_datasets.release.schema import EMOTION_NAMES, EMOTION_PREFIXES, SEQUENCE_COLUMNS, UNCHECKED_FORMAT_VERSIONS


@dataclass(frozen=True)
class Problem:
    """One finding: the file (relative to the release), the table row when it is about one, the message."""

    file: str
    message: str
    row: int | None = None

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file} row {self.row}"
        return f"{where}: {self.message}"


class _Findings:
    def __init__(self, root: Path):
        self.root = root
        self.problems: list[Problem] = []

    def add(self, path, message: str, row: int | None = None) -> None:
        path = Path(path)
        relative = path.relative_to(self.root).as_posix() if path.is_absolute() and path.is_relative_to(self.root) else str(path)
        self.problems.append(Problem(relative, message, row))


def validate_release(path: str | Path) -> list[Problem]:
    """All problems found in the release folder at `path` (empty list: valid)."""
    root = Path(path).resolve()
    found = _Findings(root)
    if not root.is_dir():
        # named as the caller gave it (relative to itself it would read ".")
        found.problems.append(Problem(str(path), "is a file, not a release folder" if root.exists() else "does not exist"))
        return found.problems
    try:
        info = ReleaseInfo.from_file(root / INFO_FILE)
    except InfoFormatError as exc:  # missing, not JSON, another format version, fields missing or mistyped
        for problem in exc.problems:
            found.add(exc.path, problem)
        return found.problems

    _check_files(root, info, found)
    manifest = _check_splits_file(root, found)
    ids = _check_data(root, info, manifest, found)
    _check_counts(root, info, ids, found)
    _check_sequences_table(root, ids, found)
    _check_style_references(root, manifest, ids, found)
    _check_templates(root, info, {entry[0] for entry in ids.values()}, found)
    _check_topology(root, info, found)
    _check_card(root, found)
    return found.problems


def _check_files(root, info, found) -> None:
    from mmface4d_datasets.files import sha256_file

    listed = set(info.files)
    for relative, expected in sorted(info.files.items()):
        path = root / relative
        if not path.is_file():
            found.add(path, "listed in meta/info.json but missing")
            continue
        if path.stat().st_size != expected.size:
            found.add(path, f"size {path.stat().st_size} bytes, meta/info.json says {expected.size}")
        elif sha256_file(path) != expected.sha256:
            found.add(path, "sha256 checksum does not match meta/info.json")
        if path.suffix == ".parquet":
            _check_parquet_entry(path, expected, found)
    for config in ("data", "raw", "templates"):
        for path in sorted((root / config).glob("**/*.parquet")):
            if path.relative_to(root).as_posix() not in listed:
                found.add(path, "not listed in meta/info.json files")


def _check_parquet_entry(path, expected, found) -> None:
    """The listed row count and footer digest of a Parquet file (what the loader checks on open)."""
    import pyarrow.parquet as pq

    from mmface4d_datasets.release.integrity import footer_problem

    problem = footer_problem(path, expected.footer_sha256)
    if problem is not None:
        found.add(path, problem)
    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except Exception:  # reported with the shard's own checks (not a readable Parquet file)
        return
    if expected.rows is not None and rows != expected.rows:
        found.add(path, f"holds {rows} rows, meta/info.json says {expected.rows}")


def _check_counts(root, info, ids, found) -> None:
    """`counts` and `splits` of meta/info.json against the rows the data shards hold (`ids`: id -> (subject, split,
    frames))."""
    where = root / "meta" / "info.json"

    def compare(name, stated, rows) -> None:
        actual = {"sequences": len(rows), "subjects": len({r[0] for r in rows}), "frames": sum(r[2] for r in rows)}
        for key, value in actual.items():
            if getattr(stated, key) != value:
                found.add(where, f"{name}.{key} is {getattr(stated, key)}, the data shards hold {value}")

    compare("counts", info.counts, list(ids.values()))
    for split, stated in sorted(info.splits.items()):
        compare(f"splits.{split}", stated, [r for r in ids.values() if r[1] == split])


_EMPTY_MANIFEST = {"train": [], "test": [], "style_reference": {}}


def _check_splits_file(root, found) -> dict:
    path = root / "meta" / "splits.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        found.add(path, "missing")
        return dict(_EMPTY_MANIFEST)
    except (OSError, ValueError) as exc:  # not JSON, not UTF-8, a folder
        found.add(path, f"not valid JSON ({exc})")
        return dict(_EMPTY_MANIFEST)
    if not isinstance(manifest, dict):
        found.add(path, f"holds a JSON {type(manifest).__name__}, not an object with train/test subject lists")
        return dict(_EMPTY_MANIFEST)
    for key in ("version", "rule", "seed", "train", "test", "style_reference"):
        if key not in manifest:
            found.add(path, f"has no {key!r} field")
            manifest.setdefault(key, {} if key == "style_reference" else [])
    for key in ("train", "test"):
        if not isinstance(manifest[key], list) or not all(isinstance(s, str) for s in manifest[key]):
            found.add(path, f"field {key!r} is not a list of subject ids")
            manifest[key] = []
    if not isinstance(manifest["style_reference"], dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in manifest["style_reference"].items()
    ):
        found.add(path, "field 'style_reference' is not an object of sequence ids")
        manifest["style_reference"] = {}
    both = sorted(set(manifest["train"]) & set(manifest["test"]))
    for subject in both:
        found.add(path, f"subject {subject!r} is in both train and test")
    return manifest


def _schema_problems(path, schema, expected) -> list[str]:
    problems = []
    for field in expected:
        if field.name not in schema.names:
            problems.append(f"column {field.name!r} is missing")
        elif not schema.field(field.name).type.equals(field.type):
            problems.append(f"column {field.name!r} has type {schema.field(field.name).type}, expected {field.type}")
    return problems


def _open_table(path, expected, found, checked: bool = True):
    """ParquetFile of `path` (page CRCs verified as it is read, format 1.1) if it opens and has the expected
    columns, else None (problems recorded)."""
    import pyarrow.parquet as pq

    from mmface4d_datasets.release.checksums import PAGE_VERIFICATION

    try:
        parquet = pq.ParquetFile(path, **(PAGE_VERIFICATION if checked else {}))
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for non-Parquet bytes
        found.add(path, f"not a readable Parquet file ({exc})")
        return None
    problems = _schema_problems(path, parquet.schema_arrow, expected)
    for message in problems:
        found.add(path, message)
    return None if problems else parquet


def _check_data(root, info, manifest, found) -> dict[str, tuple[str, str, int]]:
    """Check every data shard row; returns id -> (subject_id, split, num_frames) of the rows seen."""
    import soundfile

    from mmface4d_datasets.codec import peek
    from mmface4d_datasets.release.schema import data_schema, raw_schema

    split_of = {s: split for split in ("train", "test") for s in manifest.get(split, [])}
    ids: dict[str, tuple[str, str, int]] = {}
    checked = info.format_version not in UNCHECKED_FORMAT_VERSIONS
    for split in sorted(info.splits):
        shards = sorted((root / "data" / split).glob("shard-*.parquet"))
        if not shards:
            found.add(root / "data" / split, "split listed in meta/info.json has no shards")
        for shard in shards:
            parquet = _open_table(shard, _expected(data_schema(), checked), found, checked)
            if parquet is None:
                continue
            row = 0
            try:
                for batch in parquet.iter_batches(batch_size=16):
                    for record in batch.to_pylist():
                        _check_row(shard, row, record, split, info, split_of, ids, found, peek, soundfile)
                        ids.setdefault(record["id"], (record["subject_id"], split, int(record["num_frames"] or 0)))
                        row += 1
            except Exception as exc:  # a corrupted page (header, compression): report, go on with the next shard
                found.add(shard, f"cannot be read past row {row} ({type(exc).__name__}: {exc})")
        for shard in sorted((root / "raw" / split).glob("shard-*.parquet")):
            parquet = _open_table(shard, _expected(raw_schema(), checked), found, checked)
            if parquet is not None:
                try:
                    records = parquet.read().to_pylist()
                except Exception as exc:
                    found.add(shard, f"cannot be read ({type(exc).__name__}: {exc})")
                    continue
                for row, record in enumerate(records):
                    _check_checksums(shard, row, record, found)
                    if record["id"] not in ids:
                        found.add(shard, f"raw row for {record['id']!r}, which is not in data/{split}", row)
    return ids


def _expected(schema, checked: bool):
    """The expected Arrow schema; without the `checksums` column for a format 1.0 release."""
    from mmface4d_datasets.release.checksums import CHECKSUM_COLUMN

    return schema if checked else schema.remove(schema.get_field_index(CHECKSUM_COLUMN))


def _check_checksums(path, row, record, found) -> None:
    from mmface4d_datasets.release.checksums import CHECKSUM_COLUMN, mismatched_columns

    if CHECKSUM_COLUMN in record and record[CHECKSUM_COLUMN] is None:
        found.add(path, f"{record.get('id', record.get('subject_id'))!r}: has no checksums", row)
    for name, _expected_digest, _actual in mismatched_columns(record):
        found.add(path, f"{record.get('id', record.get('subject_id'))!r}: column {name!r} does not match its checksum", row)


def _check_row(shard, row, record, split, info, split_of, ids, found, peek, soundfile) -> None:
    def bad(message):
        found.add(shard, f"{record.get('id')!r}: {message}", row)

    _check_checksums(shard, row, record, found)
    if record["id"] in ids:
        bad("id appears twice in the release")
    if record["id"] != f"{record['subject_id']}/{record['take_id']}":
        bad("id is not subject_id/take_id")
    expected_split = split_of.get(record["subject_id"])
    if expected_split is None:
        bad(f"subject {record['subject_id']!r} is in no split of meta/splits.json")
    elif expected_split != split:
        bad(f"subject {record['subject_id']!r} is in {expected_split!r} in meta/splits.json but stored under data/{split}")
    emotion = record["emotion"]
    if emotion is None or not 0 <= emotion < len(EMOTION_NAMES):
        bad(f"emotion index {emotion!r} out of range")
    elif EMOTION_PREFIXES.get(str(record["sentence_id"])[:2]) != emotion:
        bad(f"emotion {EMOTION_NAMES[emotion]!r} does not match sentence id {record['sentence_id']!r}")
    if record["topology"] != info.topology or record["num_vertices"] != info.num_vertices:
        bad(
            f"topology {record['topology']!r} with {record['num_vertices']} vertices, "
            f"meta/info.json says {info.topology!r} with {info.num_vertices}"
        )
    try:
        shape = tuple(peek(record["vertices"])["shape"])
        if shape != (record["num_frames"], record["num_vertices"], 3):
            bad(f"vertices hold shape {shape}, the row says ({record['num_frames']}, {record['num_vertices']}, 3)")
    except Exception as exc:  # CodecError or a truncated header
        bad(f"vertices are not a valid codec stream ({exc})")
    if record["head_pose"] is None or len(record["head_pose"]) != 64 * record["num_frames"]:
        bad(f"head_pose holds {len(record['head_pose'] or b'')} bytes, expected 64 x {record['num_frames']}")
    try:
        audio = soundfile.info(io.BytesIO(record["audio"]))
        if audio.samplerate != record["sample_rate"] or audio.channels != 1:
            bad(f"audio is {audio.channels} channel(s) at {audio.samplerate} Hz, the row says mono at {record['sample_rate']} Hz")
    except Exception as exc:  # soundfile's LibsndfileError for bytes that are no audio file
        bad(f"audio bytes are not readable audio ({exc})")


def _check_sequences_table(root, ids, found) -> None:
    import pyarrow.parquet as pq

    path = root / "meta" / "sequences.parquet"
    if not path.is_file():
        found.add(path, "missing")
        return
    try:
        table = pq.read_table(path)
    except Exception as exc:  # not Parquet, corrupted pages
        found.add(path, f"cannot be read ({type(exc).__name__}: {exc})")
        return
    missing = [c for c in SEQUENCE_COLUMNS if c not in table.column_names]
    if missing:
        found.add(path, f"columns missing: {missing}")
        return
    listed = set()
    shard_ids: dict[str, list[str]] = {}
    for row, record in enumerate(table.select(["id", "shard", "row", "split"]).to_pylist()):
        listed.add(record["id"])
        if record["id"] not in ids:
            found.add(path, f"{record['id']!r} is not in any data shard", row)
            continue
        if ids[record["id"]][1] != record["split"]:
            found.add(path, f"{record['id']!r} says split {record['split']!r}, its shard is in {ids[record['id']][1]!r}", row)
        if record["shard"] not in shard_ids:
            shard_path = root / record["shard"]
            try:
                shard_ids[record["shard"]] = pq.read_table(shard_path, columns=["id"]).column("id").to_pylist()
            except Exception:  # missing or unreadable: reported with the shard itself
                shard_ids[record["shard"]] = []
        stored = shard_ids[record["shard"]]
        if not 0 <= record["row"] < len(stored) or stored[record["row"]] != record["id"]:
            found.add(path, f"{record['id']!r} points at {record['shard']} row {record['row']}, which holds another sequence", row)
    for record_id in sorted(set(ids) - listed):
        found.add(path, f"{record_id!r} of the data shards is not listed")


def _check_style_references(root, manifest, ids, found) -> None:
    path = root / "meta" / "splits.json"
    references = manifest.get("style_reference", {})
    test_subjects = set(manifest.get("test", []))
    for record_id, (subject, _split, _frames) in sorted(ids.items()):
        if subject in test_subjects and record_id not in references:
            found.add(path, f"test sequence {record_id!r} has no style reference")
    for record_id, reference in sorted(references.items()):
        if record_id not in ids:
            found.add(path, f"style reference given for {record_id!r}, which is not in the release")
        elif ids[record_id][0] not in test_subjects:
            found.add(path, f"style reference given for {record_id!r}, which is not a test sequence")
        elif reference == record_id:
            found.add(path, f"the style reference of {record_id!r} is the sequence itself (that leaks the target)")
        elif reference not in ids:
            found.add(path, f"the style reference of {record_id!r} is {reference!r}, which is not in the release")
        elif ids[reference][0] != ids[record_id][0]:
            found.add(path, f"the style reference of {record_id!r} is {reference!r}, of another subject")


def _check_templates(root, info, subjects, found) -> None:
    from mmface4d_datasets.release.schema import template_schema

    path = root / "templates" / "templates.parquet"
    if not path.is_file():
        found.add(path, "missing")
        return
    checked = info.format_version not in UNCHECKED_FORMAT_VERSIONS
    parquet = _open_table(path, _expected(template_schema(), checked), found, checked)
    if parquet is None:
        return
    seen = set()
    try:
        records = parquet.read().to_pylist()
    except Exception as exc:
        found.add(path, f"cannot be read ({type(exc).__name__}: {exc})")
        return
    for row, record in enumerate(records):
        _check_checksums(path, row, record, found)
        seen.add(record["subject_id"])
        if record["num_vertices"] != info.num_vertices or len(record["vertices"] or b"") != 12 * info.num_vertices:
            found.add(path, f"template of {record['subject_id']!r} does not hold {info.num_vertices} float32 vertices", row)
    for subject in sorted(subjects - seen):
        found.add(path, f"no template for subject {subject!r}")


def _check_topology(root, info, found) -> None:
    import numpy as np

    from mmface4d_datasets.files import read_npz

    path = root / "meta" / "topology.npz"
    try:
        arrays = read_npz(path)
    except Exception as exc:  # OSError, ValueError, zipfile.BadZipFile, a damaged member (zlib.error, EOFError)
        found.add(path, f"cannot be read ({type(exc).__name__}: {exc})")
        return
    for key in ("triangles", "keypoints", "hash", "name"):
        if key not in arrays:
            found.add(path, f"has no {key!r} array")
            return
    if str(arrays["hash"]) != info.topology_hash or str(arrays["name"]) != info.topology:
        found.add(path, "topology name/hash differ from meta/info.json")
    if not any(name.startswith("mask_") for name in arrays):
        found.add(path, "holds no region masks (mask_<name>)")
    if arrays["keypoints"].shape != (68,) or np.any(arrays["keypoints"] >= info.num_vertices):
        found.add(path, "keypoints are not 68 vertex ids of this topology")


def _check_card(root, found) -> None:
    from mmface4d_datasets.errors import MMFace4DError
    from mmface4d_datasets.release.card import card_front_matter

    path = root / "README.md"
    if not path.is_file():
        found.add(path, "missing (the dataset card)")
        return
    try:
        front = card_front_matter(path)
    except MMFace4DError as exc:
        found.add(path, str(exc))
        return
    for key in ("configs:", "extra_gated_fields:", "extra_gated_prompt:", "license:"):
        if key not in front:
            found.add(path, f"YAML front matter has no {key.rstrip(':')!r}")
