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
from pathlib import Path

from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.release.take_rules import (  # noqa: F401 (the metadata rule, public here too)
    MetadataError,
    TakeMetadata,
    emotion_of_sentence,
    metadata_from_fields,
    subject_id_problem,
)

MANIFEST_COLUMNS = ("take_id", "subject_id", "sentence_id", "text", "gender", "age")
#: Digits of a take id (DESIGN.md, Takes); shorter all-digit ids in a manifest lost their leading zeros.
TAKE_ID_DIGITS = 6


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
            raise FormatError(
                f"{path}: the manifest CSV is not UTF-8 (byte {exc.start} of the file's text cannot be "
                f"decoded; a spreadsheet may have saved it as GBK or another legacy encoding: save it "
                f"as 'CSV UTF-8')"
            ) from None
        except csv.Error as exc:
            raise FormatError(f"{path}: not a readable CSV ({exc})") from None


def _read_manifest_rows(path: Path, handle, rows: dict[str, dict]) -> dict[str, dict]:
    """The rows of an open manifest CSV into ``rows`` (see :func:`read_manifest`)."""
    reader = csv.DictReader(handle)
    header = [name.strip() for name in (reader.fieldnames or [])]
    missing = [c for c in MANIFEST_COLUMNS if c not in header]
    if missing:
        raise FormatError(
            f"{path}: the manifest CSV lacks the column(s) {', '.join(missing)} (expected header: {','.join(MANIFEST_COLUMNS)})"
        )
    reader.fieldnames = header
    for row in reader:
        line = reader.line_num
        take_id = (row.get("take_id") or "").strip()
        if not take_id:
            raise FormatError(f"{path}, line {line}: take_id is empty")
        if take_id.isdigit() and take_id.isascii() and len(take_id) < TAKE_ID_DIGITS:
            raise FormatError(
                f"{path}, line {line}: take_id {take_id!r} has {len(take_id)} digits; take ids have "
                f"{TAKE_ID_DIGITS} (a spreadsheet drops leading zeros: did you mean "
                f"{take_id.zfill(TAKE_ID_DIGITS)!r}? store the column as text)"
            )
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


def take_metadata(
    take_id: str, manifest: dict[str, dict] | None, meta: dict | None = None, meta_path: str | os.PathLike | None = None
) -> TakeMetadata:
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
