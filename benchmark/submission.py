"""Benchmark submissions: writing them, and validating them without trusting them.

Format (DESIGN.md, Submissions to the benchmark): ONE Parquet file with the columns

| column | type | content |
| --- | --- | --- |
| ``id`` | string | the test sequence's record id |
| ``num_frames`` | int32 | T |
| ``num_vertices`` | int32 | N |
| ``encoding`` | string | ``codec`` (our codec's bytes) or ``float32le`` (raw little-endian float32, C order (T, N, 3)) |
| ``vertices`` | binary | the prediction, canonical head frame of the subject, metres |

and a JSON object under the key ``mmface4d_submission`` of the file's key-value metadata (the
header: model name, url, inputs used, hardware, release format version, topology).

Validation never unpickles, never trusts a declared size: the file's metadata, the small columns
and the Parquet column-chunk sizes are checked first (:func:`open_submission`,
:func:`check_declared`); a payload is read only when its declared shape matches the ground truth,
its column chunk is no larger than that shape can need, and its codec header (``codec.peek``)
agrees (:func:`read_prediction`). Every problem becomes an :class:`Issue` naming the id and the rule.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmface4d_datasets.errors import MMFace4DError

#: Key of the JSON header in the Parquet file's key-value metadata.
HEADER_KEY = "mmface4d_submission"
#: Payload encodings a submission may use.
ENCODINGS = ("codec", "float32le")
#: Inputs the protocol allows (benchmark.protocol.ProtocolInputs); a header may list a subset.
PROTOCOL_INPUTS = ("audio", "template", "style_reference", "subject_id", "emotion")
#: Largest header accepted, in bytes of its JSON text: a header is a few lines (model, url, inputs,
#: hardware, versions), never data; a larger one is refused instead of being copied into reports.
HEADER_MAX_BYTES = 64 * 1024
#: Header fields that must be present.
REQUIRED_HEADER_FIELDS = ("model", "release_format_version")
#: Columns, in file order.
COLUMNS = ("id", "num_frames", "num_vertices", "encoding", "vertices")

# The codec's worst case (lossless mode: raw float32 behind zstd, plus headers) is a little
# above the raw size; these bound the bytes a payload of declared shape may take.
_PAYLOAD_SLACK_RATIO = 1.01
_PAYLOAD_SLACK_BYTES = 1 << 16


class SubmissionError(MMFace4DError):
    """A submission cannot be written (bad arguments) or a payload fails a check (names the id)."""


@dataclass(frozen=True)
class Issue:
    """One violation (``severity="error"``) or one notice (``"warning"``, e.g. a trimmed frame).

    ``id`` is the sequence id, or None for a problem of the whole file; ``rule`` a short name
    (missing_id, duplicate_id, extra_id, frame_count, vertex_count, non_finite, size_mismatch,
    header_missing, header_invalid, unknown_encoding, corrupted_payload, unreadable, schema, ...).
    """

    id: str | None
    rule: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = self.id if self.id is not None else "(file)"
        return f"{self.severity}: {where}: {self.rule}: {self.message}"


# ------------------------------------------------------------------------------------------- writing


def make_header(
    model: str,
    *,
    release_format_version: str,
    url: str = "",
    inputs: Iterable[str] = PROTOCOL_INPUTS,
    hardware: str = "",
    topology: str = "",
    split: str = "test",
    **extra: Any,
) -> dict:
    """The submission header as a JSON-ready dict (model name, url, inputs used, hardware, versions)."""
    import platform

    from mmface4d_datasets import __version__

    header = {
        "model": str(model),
        "url": str(url),
        "inputs": sorted(set(inputs)),
        "hardware": hardware or f"{platform.machine()} {platform.processor() or ''}".strip(),
        "release_format_version": str(release_format_version),
        "topology": str(topology),
        "split": str(split),
        "package_version": __version__,
    }
    header.update(extra)
    return header


class SubmissionWriter:
    """Writes a submission one sequence at a time (one Parquet row group per sequence).

    The file is written under a temporary name in the same folder and renamed on :meth:`close`;
    if the ``with`` block raises, the temporary file is removed and nothing is left behind.

    Args:
        path: the ``.parquet`` file to write.
        header: the JSON header (see :func:`make_header`); must hold ``model`` and
            ``release_format_version``.
        encoding: ``"codec"`` (default, about 6-10x smaller) or ``"float32le"``.
        max_error: the codec's per-coordinate bound in metres (default 1e-5 = 10 um).
    """

    def __init__(self, path: str | os.PathLike, header: Mapping[str, Any], encoding: str = "codec", max_error: float = 1e-5):
        import pyarrow as pa
        import pyarrow.parquet as pq

        from mmface4d_datasets.files import removed_on_failure, temporary_path

        if encoding not in ENCODINGS:
            raise SubmissionError(f"unknown encoding {encoding!r}; use one of {ENCODINGS}")
        missing = [name for name in REQUIRED_HEADER_FIELDS if not header.get(name)]
        if missing:
            raise SubmissionError(f"submission header lacks {missing}")
        header_text = json.dumps(dict(header), sort_keys=True)
        if len(header_text.encode("utf-8")) > HEADER_MAX_BYTES:
            raise SubmissionError(
                f"{path}: the submission header takes {len(header_text.encode('utf-8'))} bytes of "
                f"JSON; at most {HEADER_MAX_BYTES} are allowed (model name, url, inputs, hardware)"
            )
        self.path = Path(path)
        self.encoding = encoding
        self.max_error = float(max_error)
        self._ids: set[str] = set()
        self._schema = pa.schema(
            [
                ("id", pa.string()),
                ("num_frames", pa.int32()),
                ("num_vertices", pa.int32()),
                ("encoding", pa.string()),
                ("vertices", pa.binary()),
            ],
            metadata={HEADER_KEY: header_text},
        )
        self._tmp = temporary_path(self.path)
        with removed_on_failure(self.path, self._tmp):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(
                self._tmp,
                self._schema,
                # codec bytes are already entropy-coded; raw float32 gains a little from zstd
                compression={
                    "id": "zstd",
                    "num_frames": "zstd",
                    "num_vertices": "zstd",
                    "encoding": "zstd",
                    "vertices": "none" if encoding == "codec" else "zstd",
                },
                use_dictionary=["id", "encoding"],
                write_statistics=["id", "num_frames", "num_vertices", "encoding"],
            )

    def add(self, sequence_id: str, vertices: np.ndarray) -> None:
        """Append the prediction (T, N, 3) for ``sequence_id`` (float32, metres, finite)."""
        import pyarrow as pa

        sequence_id = str(sequence_id)
        if sequence_id in self._ids:
            raise SubmissionError(f"{self.path}: id {sequence_id} was already written")
        array = np.asarray(vertices)
        if array.dtype.kind not in "fiu":
            raise SubmissionError(f"{self.path}: prediction for {sequence_id} has dtype {array.dtype}; expected float32 numbers (metres)")
        array = np.ascontiguousarray(array, dtype=np.float32)
        if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] == 0:
            raise SubmissionError(f"{self.path}: prediction for {sequence_id} has shape {array.shape}, expected (T, N, 3)")
        if not (np.isfinite(array.min()) and np.isfinite(array.max())):
            raise SubmissionError(f"{self.path}: prediction for {sequence_id} holds NaN or infinite values")
        if self.encoding == "codec":
            from mmface4d_datasets import codec

            try:
                payload = codec.encode(array, max_error=self.max_error)
            except codec.CodecError as exc:
                raise SubmissionError(f"{self.path}: prediction for {sequence_id} cannot be encoded: {exc}") from None
        else:
            payload = array.astype("<f4", copy=False).tobytes()
        row = pa.table(
            {
                "id": [sequence_id],
                "num_frames": pa.array([array.shape[0]], pa.int32()),
                "num_vertices": pa.array([array.shape[1]], pa.int32()),
                "encoding": [self.encoding],
                "vertices": pa.array([payload], pa.binary()),
            },
            schema=self._schema,
        )
        try:
            self._writer.write_table(row)
        except OSError as exc:  # a full disk, a file-size limit: name the file (the caller aborts)
            from mmface4d_datasets.errors import output_error

            raise output_error(self.path, exc) from exc
        self._ids.add(sequence_id)

    def close(self) -> Path:
        """Finish the file and move it to ``path``; returns ``path``."""
        from mmface4d_datasets.files import removed_on_failure

        with removed_on_failure(self.path, self._tmp):
            self._writer.close()
            os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file (nothing is written at ``path``)."""
        try:
            self._writer.close()
        except OSError:  # closing flushes; on a full disk that fails too, and the file is dropped anyway
            pass
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "SubmissionWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_submission(
    path: str | os.PathLike,
    predictions: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]],
    header: Mapping[str, Any],
    encoding: str = "codec",
    max_error: float = 1e-5,
) -> Path:
    """Write ``predictions`` ({id: (T, N, 3) array} or an iterable of (id, array)) as a submission.

    An iterable is consumed one sequence at a time (only one prediction in memory).
    """
    items = predictions.items() if isinstance(predictions, Mapping) else predictions
    with SubmissionWriter(path, header, encoding=encoding, max_error=max_error) as writer:
        for sequence_id, vertices in items:
            writer.add(sequence_id, vertices)
    return Path(path)


# ------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class RowInfo:
    """Where one sequence sits in the file and what its row declares."""

    id: str
    row_group: int
    index_in_group: int
    num_frames: int
    num_vertices: int
    encoding: str


@dataclass
class Submission:
    """An opened submission: the header and the small columns, no payload read yet.

    ``rows`` maps each id (first occurrence) to its :class:`RowInfo`; ``issues`` holds the
    file-level and row-level problems found so far; ``usable`` is False when the file cannot be
    scored at all (unreadable, wrong schema).
    """

    path: Path
    header: dict | None = None
    rows: dict[str, RowInfo] = field(default_factory=dict)
    seen_ids: set[str] = field(default_factory=set)
    issues: list[Issue] = field(default_factory=list)
    usable: bool = True
    row_group_bytes: dict[int, int] = field(default_factory=dict)
    _file: Any = None
    _cached_group: tuple[int, Any] | None = None

    def close(self) -> None:
        self._file = None
        self._cached_group = None


def _schema_problems(schema) -> list[str]:
    import pyarrow as pa

    expected = {
        "id": (pa.types.is_string, pa.types.is_large_string),
        "num_frames": (pa.types.is_integer,),
        "num_vertices": (pa.types.is_integer,),
        "encoding": (pa.types.is_string, pa.types.is_large_string),
        "vertices": (pa.types.is_binary, pa.types.is_large_binary),
    }
    problems = []
    for name, checks in expected.items():
        index = schema.get_field_index(name)
        if index < 0:
            problems.append(f"column {name!r} is missing")
        elif not any(check(schema.field(index).type) for check in checks):
            problems.append(f"column {name!r} has type {schema.field(index).type}")
    return problems


def _read_header(path: Path, metadata: dict | None, issues: list[Issue]) -> dict | None:
    raw = (metadata or {}).get(HEADER_KEY.encode())
    if raw is None:
        issues.append(Issue(None, "header_missing", f"{path}: no {HEADER_KEY!r} entry in the file's key-value metadata"))
        return None
    if len(raw) > HEADER_MAX_BYTES:
        issues.append(
            Issue(
                None,
                "header_too_large",
                f"{path}: the {HEADER_KEY!r} header takes {len(raw)} bytes; at most "
                f"{HEADER_MAX_BYTES} are allowed (it is not read or copied)",
            )
        )
        return None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        issues.append(Issue(None, "header_invalid", f"{path}: the {HEADER_KEY!r} header is not JSON ({exc})"))
        return None
    except RecursionError:
        issues.append(Issue(None, "header_invalid", f"{path}: the {HEADER_KEY!r} header is nested too deeply to read"))
        return None
    if not isinstance(header, dict):
        issues.append(Issue(None, "header_invalid", f"{path}: the header is a JSON {type(header).__name__}, not an object"))
        return None
    missing = [name for name in REQUIRED_HEADER_FIELDS if not header.get(name)]
    if missing:
        issues.append(Issue(None, "header_invalid", f"{path}: the header lacks {', '.join(missing)}"))
    inputs = header.get("inputs", [])
    if not isinstance(inputs, list):
        issues.append(Issue(None, "header_invalid", f"{path}: header 'inputs' must be a list, got {type(inputs).__name__}"))
    else:
        outside = sorted(set(map(str, inputs)) - set(PROTOCOL_INPUTS))
        if outside:
            issues.append(
                Issue(
                    None,
                    "inputs_outside_protocol",
                    f"{path}: the header declares inputs the protocol does not allow: {outside} (allowed: {list(PROTOCOL_INPUTS)})",
                )
            )
    return header


def open_submission(path: str | os.PathLike) -> Submission:
    """Open a submission and check everything that needs no payload.

    Checks: the file is Parquet; the schema has the five columns with the right types; the header
    is present, JSON, has the required fields and declares only protocol inputs; every row has an
    id (no duplicates), non-negative sizes and a known encoding. Never raises for a bad file:
    problems go to ``Submission.issues`` (``usable=False`` when nothing can be read).
    """
    import pyarrow.parquet as pq

    path = Path(path)
    submission = Submission(path=path)
    issues = submission.issues
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        issues.append(Issue(None, "unreadable", f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})"))
        submission.usable = False
        return submission
    submission._file = parquet
    submission.header = _read_header(path, parquet.metadata.metadata, issues)
    problems = _schema_problems(schema)
    if problems:
        issues.append(Issue(None, "schema", f"{path}: {'; '.join(problems)} (expected {', '.join(COLUMNS)})"))
        submission.usable = False
        return submission

    vertices_column = schema.get_field_index("vertices")
    seen: dict[str, int] = {}
    for group in range(parquet.num_row_groups):
        submission.row_group_bytes[group] = int(parquet.metadata.row_group(group).column(vertices_column).total_uncompressed_size)
        try:
            table = parquet.read_row_group(group, columns=["id", "num_frames", "num_vertices", "encoding"])
        except Exception as exc:
            issues.append(Issue(None, "unreadable", f"{path}: row group {group} cannot be read ({type(exc).__name__}: {exc})"))
            submission.usable = False
            return submission
        columns = table.to_pydict()
        for index, (sequence_id, num_frames, num_vertices, encoding) in enumerate(
            zip(columns["id"], columns["num_frames"], columns["num_vertices"], columns["encoding"])
        ):
            if sequence_id is None:
                issues.append(Issue(None, "null_id", f"{path}: row {index} of row group {group} has no id"))
                continue
            submission.seen_ids.add(sequence_id)
            seen[sequence_id] = seen.get(sequence_id, 0) + 1
            if seen[sequence_id] > 1:
                issues.append(Issue(sequence_id, "duplicate_id", f"appears {seen[sequence_id]} times (each id once)"))
                continue
            if num_frames is None or num_vertices is None or num_frames < 0 or num_vertices < 0:
                issues.append(
                    Issue(sequence_id, "size_mismatch", f"declared sizes num_frames={num_frames}, num_vertices={num_vertices} are invalid")
                )
                continue
            if encoding not in ENCODINGS:
                issues.append(Issue(sequence_id, "unknown_encoding", f"encoding {encoding!r} is not one of {ENCODINGS}"))
                continue
            submission.rows[sequence_id] = RowInfo(sequence_id, group, index, int(num_frames), int(num_vertices), encoding)
    # a duplicated id cannot be scored: which copy would count?
    for sequence_id, count in seen.items():
        if count > 1:
            submission.rows.pop(sequence_id, None)
    return submission


def check_declared(
    submission: Submission,
    expected_frames: Mapping[str, int],
    num_vertices: int,
    *,
    topology: str | None = None,
    release_format_version: str | None = None,
) -> None:
    """Check the declared ids and sizes against the ground truth, before any payload is read.

    Rules: every expected id present (missing_id), no other id (extra_id); vertex count equal
    (vertex_count); frame count equal, or off by one (a warning: scored on the common frames),
    else frame_count; each row group's payload no larger than its declared shapes can need
    (size_mismatch, so nothing is allocated for a lying file); the header's topology and release
    format version equal to the release's (topology: error; format version: warning).
    Rows that fail are removed from ``submission.rows``; issues are appended.
    """
    issues = submission.issues
    header = submission.header or {}
    if topology and header.get("topology") and header["topology"] != topology:
        issues.append(Issue(None, "topology", f"the header declares topology {header['topology']!r}; the release has {topology!r}"))
        submission.rows.clear()
    if (
        release_format_version
        and header.get("release_format_version")
        and str(header["release_format_version"]) != str(release_format_version)
    ):
        issues.append(
            Issue(
                None,
                "release_format_version",
                f"the header declares release format {header['release_format_version']!r}; scored against {release_format_version!r}",
                severity="warning",
            )
        )
    for sequence_id in expected_frames:
        if sequence_id not in submission.seen_ids:
            issues.append(Issue(sequence_id, "missing_id", "no prediction for this test sequence"))
    for sequence_id in sorted(submission.seen_ids - set(expected_frames)):
        issues.append(Issue(sequence_id, "extra_id", "not a sequence of the scored split"))
        submission.rows.pop(sequence_id, None)
    for sequence_id in list(submission.rows):
        row = submission.rows[sequence_id]
        if row.num_vertices != num_vertices:
            issues.append(Issue(sequence_id, "vertex_count", f"{row.num_vertices} vertices; the topology has {num_vertices}"))
            del submission.rows[sequence_id]
            continue
        target = int(expected_frames[sequence_id])
        if abs(row.num_frames - target) > 1:
            issues.append(
                Issue(
                    sequence_id,
                    "frame_count",
                    f"{row.num_frames} frames; the ground truth has {target} (only a difference of one frame is trimmed)",
                )
            )
            del submission.rows[sequence_id]
        elif row.num_frames != target:
            issues.append(
                Issue(
                    sequence_id,
                    "frames_trimmed",
                    f"{row.num_frames} frames against {target}: scored on the first {min(row.num_frames, target)}",
                    severity="warning",
                )
            )
    for group, stored in submission.row_group_bytes.items():
        rows = [row for row in submission.rows.values() if row.row_group == group]
        budget = sum(_payload_budget(row) for row in rows)
        if rows and stored > budget:
            for row in rows:
                issues.append(
                    Issue(
                        row.id,
                        "size_mismatch",
                        f"row group {group} holds {stored} payload bytes; the declared shapes need at most "
                        f"{budget} (refused before reading)",
                    )
                )
                del submission.rows[row.id]


def _payload_budget(row: RowInfo) -> int:
    """Most bytes a payload of the row's declared shape can take (plus Parquet's length prefix)."""
    raw = row.num_frames * row.num_vertices * 12
    return int(raw * _PAYLOAD_SLACK_RATIO) + _PAYLOAD_SLACK_BYTES + 4


def read_prediction(submission: Submission, sequence_id: str) -> np.ndarray:
    """Read and decode the prediction of ``sequence_id`` as (T, N, 3) float32, checking it first.

    Raises:
        SubmissionError: with the id and the rule in the message (``.issue`` holds the Issue):
            payload size inconsistent with the declared shape, corrupted codec bytes, codec
            shape different from the declared one, non-finite values.
    """
    row = submission.rows[sequence_id]
    try:
        payload = _payload(submission, row)
    except Exception as exc:  # a damaged Parquet page: pyarrow raises OSError, ArrowInvalid, ...
        raise _row_error(
            Issue(sequence_id, "corrupted_payload", f"row group {row.row_group} cannot be read ({type(exc).__name__}: {exc})")
        ) from None
    if payload is None:
        raise _row_error(Issue(sequence_id, "corrupted_payload", "the vertices value is null"))
    expected_shape = (row.num_frames, row.num_vertices, 3)
    if row.encoding == "float32le":
        if len(payload) != row.num_frames * row.num_vertices * 12:
            raise _row_error(
                Issue(
                    sequence_id,
                    "size_mismatch",
                    f"{len(payload)} payload bytes; declared shape {expected_shape} needs {row.num_frames * row.num_vertices * 12}",
                )
            )
        array = np.frombuffer(payload, dtype="<f4").reshape(expected_shape)
    else:
        from mmface4d_datasets import codec

        try:
            info = codec.peek(payload)
            if tuple(info["shape"]) != expected_shape:
                raise _row_error(
                    Issue(
                        sequence_id, "size_mismatch", f"codec header says shape {tuple(info['shape'])}; the row declares {expected_shape}"
                    )
                )
            array = codec.decode(payload)
        except SubmissionError:
            raise
        except Exception as exc:  # CodecError, and anything else hostile bytes may provoke
            raise _row_error(Issue(sequence_id, "corrupted_payload", f"codec bytes do not decode: {exc}")) from None
    # NaN propagates through min/max and an infinity shows in them: two reductions, no mask array
    if not (np.isfinite(array.min()) and np.isfinite(array.max())):
        raise _row_error(Issue(sequence_id, "non_finite", "the prediction holds NaN or infinite values"))
    return array


def _row_error(issue: Issue) -> SubmissionError:
    error = SubmissionError(str(issue))
    error.issue = issue
    return error


def _payload(submission: Submission, row: RowInfo):
    """The row's payload as a zero-copy memoryview; one row group is cached at a time."""
    cached = submission._cached_group
    if cached is None or cached[0] != row.row_group:
        column = submission._file.read_row_group(row.row_group, columns=["vertices"]).column(0)
        submission._cached_group = cached = (row.row_group, column)
    value = cached[1][row.index_in_group]
    if not value.is_valid:
        return None
    return memoryview(value.as_buffer())


@dataclass
class ValidationReport:
    """Outcome of :func:`validate_submission`: ``ok`` when no issue is an error."""

    path: str
    header: dict | None
    issues: list[Issue]
    checked: int

    @property
    def errors(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "ok": self.ok,
            "header": self.header,
            "checked": self.checked,
            "issues": [asdict(issue) for issue in self.issues],
        }


def validate_submission(
    path: str | os.PathLike,
    expected_frames: Mapping[str, int],
    num_vertices: int,
    *,
    topology: str | None = None,
    release_format_version: str | None = None,
    check_payloads: bool = True,
) -> ValidationReport:
    """Every validation rule, without ground-truth arrays: header, schema, ids, sizes, payloads.

    ``expected_frames`` maps each id of the scored split to its ground-truth frame count.
    With ``check_payloads`` every remaining payload is read one at a time (decoded, checked finite).
    """
    submission = open_submission(path)
    if submission.usable:
        check_declared(submission, expected_frames, num_vertices, topology=topology, release_format_version=release_format_version)
        if check_payloads:
            for sequence_id in list(submission.rows):
                try:
                    read_prediction(submission, sequence_id)
                except SubmissionError as exc:
                    submission.issues.append(exc.issue)
                    del submission.rows[sequence_id]
    report = ValidationReport(str(path), submission.header, submission.issues, len(submission.rows))
    submission.close()
    return report
