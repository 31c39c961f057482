"""Per-take metadata: a manifest CSV, else each take's ``ID.meta.json`` (DESIGN.md, Takes).

The manifest CSV has the header ``take_id,subject_id,sentence_id,text,gender,age`` (in any order;
extra columns are ignored). A take listed in the CSV takes these six fields from its row, where an
empty cell means null; a take not listed takes them from its ``ID.meta.json``. ``subject_id`` and
``sentence_id`` are required; ``text``, ``gender`` and ``age`` may be null. The emotion is the
sentence id's two-digit prefix: 00 neutral, 21 happy, 22 angry, 23 sad, 24 surprise, 25 fear,
26 disgust; any other prefix is an error naming the take.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

from mmface4d_datasets.errors import FormatError, MMFace4DError
from mmface4d_datasets.release.schema import EMOTION_NAMES, emotion_of

MANIFEST_COLUMNS = ("take_id", "subject_id", "sentence_id", "text", "gender", "age")
#: Digits of a take id (DESIGN.md, Takes); shorter all-digit ids in a manifest lost their leading zeros.
TAKE_ID_DIGITS = 6

class MetadataError(MMFace4DError):
    """A take's metadata is missing or wrong (names the take and the source of its metadata)."""


@dataclass(frozen=True)
class TakeMetadata:
    """The record fields that come from metadata rather than from the take's data files."""

    take_id: str
    subject_id: str
    sentence_id: str
    emotion: str
    text: str | None
    gender: str | None
    age: int | None
    source: str  # where these fields came from: the CSV (with its line) or the meta.json path


def emotion_of_sentence(sentence_id: str, *, where: str) -> str:
    """The emotion name carried by the two-digit prefix of ``sentence_id`` (the core's rule).

    ``where`` names the take (and file) for the error raised on an unknown prefix.
    """
    try:
        return EMOTION_NAMES[emotion_of(sentence_id, where=where)]
    except FormatError as exc:  # re-raised as a metadata error: the file is fine, its content is not
        raise MetadataError(str(exc)) from None


def _optional_text(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _optional_age(value, *, where: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise MetadataError(f"{where}: age {value!r} is not a whole number of years")
    if isinstance(value, int):
        age = value
    elif isinstance(value, float) and value.is_integer():
        age = int(value)
    else:
        try:
            age = int(str(value).strip())
        except ValueError:
            raise MetadataError(f"{where}: age {value!r} is not a whole number of years") from None
    if not 0 <= age < 150:
        raise MetadataError(f"{where}: age {age} is out of range (0..149)")
    return age


def subject_id_problem(subject_id: str) -> str | None:
    """Why ``subject_id`` cannot name a subject (it becomes part of record ids and of file paths
    of predictions, ``<subject_id>/<take_id>.npy``), or None when it can."""
    if "/" in subject_id or "\\" in subject_id:
        return "must not contain '/' or '\\' (record ids are subject/take)"
    if subject_id in (".", ".."):
        return "is a path step ('.' or '..'), not a name"
    if any(ord(c) < 32 or 127 <= ord(c) < 160 or c in "\u2028\u2029" for c in subject_id):
        return "holds a control character"
    return None


def metadata_from_fields(take_id: str, fields: dict, *, source: str) -> TakeMetadata:
    """Check and normalise one take's fields (a CSV row or a meta.json object)."""
    where = f"take {take_id} ({source})"
    subject_id = _optional_text(fields.get("subject_id"))
    if subject_id is None:
        raise MetadataError(f"{where}: subject_id is missing; every take needs one (give a manifest CSV with --manifest)")
    problem = subject_id_problem(subject_id)
    if problem:
        raise MetadataError(f"{where}: subject_id {subject_id!r} {problem}")
    sentence_id = _optional_text(fields.get("sentence_id"))
    if sentence_id is None:
        raise MetadataError(f"{where}: sentence_id is missing; the emotion is read from its prefix")
    return TakeMetadata(
        take_id=take_id,
        subject_id=subject_id,
        sentence_id=sentence_id,
        emotion=emotion_of_sentence(sentence_id, where=where),
        text=_optional_text(fields.get("text")),
        gender=_optional_text(fields.get("gender")),
        age=_optional_age(fields.get("age"), where=where),
        source=source,
    )


def read_manifest(path: str | os.PathLike) -> dict[str, dict]:
    """Read a manifest CSV into ``{take_id: {column: cell}}`` (cells as strings, unchecked).

    Raises :class:`FormatError` naming the file when a required column is missing, a take id is
    empty or repeated. The rows are checked per take by :func:`metadata_from_fields`.
    """
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")  # -sig: spreadsheets often write a BOM
    except OSError as exc:
        raise FormatError(f"{path}: cannot read the manifest CSV ({exc.strerror})") from None
    with handle:
        try:
            return _read_manifest_rows(path, handle, {})
        except UnicodeDecodeError as exc:
            raise FormatError(f"{path}: the manifest CSV is not UTF-8 (byte {exc.start} of the file's text cannot be "
                              f"decoded; a spreadsheet may have saved it as GBK or another legacy encoding: save it "
                              f"as 'CSV UTF-8')") from None
        except csv.Error as exc:
            raise FormatError(f"{path}: not a readable CSV ({exc})") from None


def _read_manifest_rows(path: Path, handle, rows: dict[str, dict]) -> dict[str, dict]:
    """The rows of an open manifest CSV into ``rows`` (see :func:`read_manifest`)."""
    reader = csv.DictReader(handle)
    header = [name.strip() for name in (reader.fieldnames or [])]
    missing = [c for c in MANIFEST_COLUMNS if c not in header]
    if missing:
        raise FormatError(f"{path}: the manifest CSV lacks the column(s) {', '.join(missing)} "
                          f"(expected header: {','.join(MANIFEST_COLUMNS)})")
    reader.fieldnames = header
    for row in reader:
        line = reader.line_num
        take_id = (row.get("take_id") or "").strip()
        if not take_id:
            raise FormatError(f"{path}, line {line}: take_id is empty")
        if take_id.isdigit() and take_id.isascii() and len(take_id) < TAKE_ID_DIGITS:
            raise FormatError(f"{path}, line {line}: take_id {take_id!r} has {len(take_id)} digits; take ids have "
                              f"{TAKE_ID_DIGITS} (a spreadsheet drops leading zeros: did you mean "
                              f"{take_id.zfill(TAKE_ID_DIGITS)!r}? store the column as text)")
        if take_id in rows:
            raise FormatError(f"{path}, line {line}: take {take_id} is listed twice (first at {rows[take_id]['_where']})")
        rows[take_id] = {c: row.get(c) for c in MANIFEST_COLUMNS} | {"_where": f"{path}, line {line}"}
    return rows


def read_meta_json(path: str | os.PathLike) -> dict:
    """The JSON object of an ``ID.meta.json``; :class:`FormatError` naming the file if it is not one."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: not a readable JSON file ({exc})") from None
    except RecursionError:
        raise FormatError(f"{path}: the JSON is nested too deeply to be take metadata") from None
    if not isinstance(value, dict):
        raise FormatError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value


def take_metadata(take_id: str, manifest: dict[str, dict] | None, meta: dict | None = None,
                  meta_path: str | os.PathLike | None = None) -> TakeMetadata:
    """The metadata of one take: its manifest row when it has one, else its meta.json object ``meta``
    (read from ``meta_path``, which names it in errors).

    Raises :class:`MetadataError` naming the take when neither holds it or a field is wrong.
    """
    if manifest is not None and take_id in manifest:
        row = manifest[take_id]
        return metadata_from_fields(take_id, row, source=row["_where"])
    if meta is not None:
        return metadata_from_fields(take_id, meta, source=str(meta_path or f"{take_id}.meta.json"))
    hint = "it is not in the manifest CSV and has no" if manifest is not None else "no manifest CSV was given and it has no"
    raise MetadataError(f"take {take_id}: no metadata ({hint} {take_id}.meta.json); subject_id is required")
