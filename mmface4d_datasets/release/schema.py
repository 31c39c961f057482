"""What goes into a release and what a release row holds.

The writer (`mmface4d_datasets.release.writer.write_release`) takes an iterable of
`SequenceSource` objects; each one has a `key` (its take id) and a `load()` method that returns a
`SourceSequence`. A resumed build skips the keys it has already staged without calling `load()`,
and a `load()` that raises is reported under that key.

`SourceSequence` is the neutral hand-over format between the ingest code (the authors' release,
synthetic takes, our rig) and the release: vertices in the SOURCE camera frame (the writer moves
them into the subject's canonical head frame and stores the rigid motion in `head_pose`), audio as
the source's own samples plus its subtype so that it can be stored bit-exact.

This module owns the on-disk schema of the tables, so that the reader, the writer and `validate` agree by
construction: `FORMAT_VERSION`, the emotion names, and the columns of every Parquet table with their `datasets`
features (`DATA_FIELDS`, ...; `data_features()`, ...) and Arrow schemas (`data_schema()`, ...). The layout of
`meta/info.json` is `release.info.ReleaseInfo`.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from mmface4d_datasets.vocabulary import EMOTION_INDEX_OF_PREFIX, EMOTION_NAMES, FPS
from mmface4d_datasets.errors import FormatError

#: Version of the on-disk release layout. Separate from the package version; bumped on any change
#: that an older reader could misread.
FORMAT_VERSION = "1.1"
#: Format versions before per-row checksums (`checksums` column, page CRCs, footer digests): still read, unchecked.
UNCHECKED_FORMAT_VERSIONS = ("1.0",)

#: Emotion class names, in ClassLabel order (DESIGN.md, The record), and the sentence-id prefixes
#: that carry them.
#: (Defined in :mod:`mmface4d_datasets.vocabulary`; prefix -> ClassLabel index here.)
EMOTION_PREFIXES = EMOTION_INDEX_OF_PREFIX

#: Audio subtypes the writer stores bit-exact: floats as 32-bit float WAV, integers as FLAC.
FLOAT_SUBTYPES = ("FLOAT",)
PCM_SUBTYPES = ("PCM_16", "PCM_24")


def emotion_of(sentence_id: str, *, where: str = "") -> int:
    """ClassLabel index of the emotion carried by a sentence id's two-digit prefix (00, 21..26).

    Raises `FormatError` naming `where` (a take or file) for an unknown prefix.
    """
    prefix = str(sentence_id)[:2]
    if prefix not in EMOTION_PREFIXES:
        known = ", ".join(f"{p}={EMOTION_NAMES[i]}" for p, i in EMOTION_PREFIXES.items())
        raise FormatError(f"{where or 'sentence'}: sentence id {sentence_id!r} has the unknown emotion prefix {prefix!r} (known: {known})")
    return EMOTION_PREFIXES[prefix]


# --------------------------------------------------------------------------- tables
# The columns of every table of a release, in file order, with their `datasets` feature: a dtype name is a
# `Value`, a one-element list a `List` of it, a dict a struct
# (the last column of each table, `checksums`: `release.checksums`), EMOTION_FEATURE the ClassLabel of the emotion names. The Arrow
# schemas are built from these through `datasets.Features(...).arrow_schema` (imported on first use:
# `import mmface4d_datasets` stays light).

EMOTION_FEATURE = "ClassLabel(emotions)"

#: `data/{split}/shard-*.parquet` (the default config).
DATA_FIELDS = (
    ("id", "string"),
    ("subject_id", "string"),
    ("take_id", "string"),
    ("sentence_id", "string"),
    ("emotion", EMOTION_FEATURE),
    ("text", "string"),
    ("gender", "string"),
    ("age", "int32"),
    ("fps", "int32"),
    ("num_frames", "int32"),
    ("num_vertices", "int32"),
    ("topology", "string"),
    ("sample_rate", "int32"),
    ("audio", "binary"),
    ("vertices", "binary"),
    ("head_pose", "binary"),
)
DATA_FIELDS += (("checksums", {name: "int64" for name, _ in DATA_FIELDS}),)
#: `raw/{split}/shard-*.parquet`.
RAW_FIELDS = (
    ("id", "string"),
    ("cameras", ["int32"]),
    ("intrinsics", [["float64"]]),
    ("extrinsics", [["float64"]]),
    ("landmarks", "binary"),
    ("landmarks_shape", [["int32"]]),
)
RAW_FIELDS += (("checksums", {name: "int64" for name, _ in RAW_FIELDS}),)
#: `templates/templates.parquet`.
TEMPLATE_FIELDS = (
    ("subject_id", "string"),
    ("num_vertices", "int32"),
    ("topology", "string"),
    ("num_sequences", "int32"),
    ("rule", "string"),
    ("vertices", "binary"),
)
TEMPLATE_FIELDS += (("checksums", {name: "int64" for name, _ in TEMPLATE_FIELDS}),)
#: `meta/sequences.parquet` (emotion by name here; stored without `datasets` metadata).
SEQUENCE_FIELDS = (
    ("id", "string"),
    ("subject_id", "string"),
    ("take_id", "string"),
    ("sentence_id", "string"),
    ("split", "string"),
    ("emotion", "string"),
    ("text", "string"),
    ("gender", "string"),
    ("age", "int32"),
    ("num_frames", "int32"),
    ("duration_s", "float64"),
    ("shard", "string"),
    ("row", "int32"),
)

DATA_COLUMNS = tuple(name for name, _ in DATA_FIELDS)
RAW_COLUMNS = tuple(name for name, _ in RAW_FIELDS)
TEMPLATE_COLUMNS = tuple(name for name, _ in TEMPLATE_FIELDS)
SEQUENCE_COLUMNS = tuple(name for name, _ in SEQUENCE_FIELDS)


def _feature(kind):
    import datasets

    if kind == EMOTION_FEATURE:
        return datasets.ClassLabel(names=list(EMOTION_NAMES))
    if isinstance(kind, list):
        return datasets.List(_feature(kind[0]))
    if isinstance(kind, dict):  # a struct (the `checksums` column: one digest per other column)
        return {name: _feature(inner) for name, inner in kind.items()}
    return datasets.Value(kind)


def _features(fields):
    import datasets

    return datasets.Features({name: _feature(kind) for name, kind in fields})


def data_features():
    """`datasets.Features` of the default config (what `datasets` reads from the shards' metadata)."""
    return _features(DATA_FIELDS)


def raw_features():
    """`datasets.Features` of the raw config."""
    return _features(RAW_FIELDS)


def template_features():
    """`datasets.Features` of the templates config."""
    return _features(TEMPLATE_FIELDS)


def _with_canonical_metadata(features):
    """`features.arrow_schema`, its `huggingface` metadata JSON written with sorted keys: `datasets` writes the
    same object in insertion order, and releases store it sorted (the Parquet bytes of every release so far)."""
    import json

    schema = features.arrow_schema
    metadata = json.loads(schema.metadata[b"huggingface"])
    return schema.with_metadata({"huggingface": json.dumps(metadata, sort_keys=True)})


@functools.cache
def data_schema():
    """Arrow schema of `data/{split}/shard-*.parquet` (columns: DATA_COLUMNS)."""
    return _with_canonical_metadata(data_features())


@functools.cache
def raw_schema():
    """Arrow schema of `raw/{split}/shard-*.parquet` (columns: RAW_COLUMNS)."""
    return _with_canonical_metadata(raw_features())


@functools.cache
def template_schema():
    """Arrow schema of `templates/templates.parquet` (columns: TEMPLATE_COLUMNS)."""
    return _with_canonical_metadata(template_features())


@functools.cache
def sequences_schema():
    """Arrow schema of `meta/sequences.parquet` (columns: SEQUENCE_COLUMNS; no `datasets` metadata)."""
    import pyarrow as pa

    return pa.schema(_features(SEQUENCE_FIELDS).type)


@dataclass(frozen=True)
class RawCapture:
    """Per-take capture data for maintainers (the `raw` config); every field may be empty.

    intrinsics: camera index -> (3, 3) float64 pixel intrinsics.
    extrinsics: camera index -> (4, 4) float64, camera -> reference camera (camera 1), metres.
    landmarks: camera index -> (T, K, 2) float64 2-D landmarks in pixels.
    """

    intrinsics: dict[int, np.ndarray] = field(default_factory=dict)
    extrinsics: dict[int, np.ndarray] = field(default_factory=dict)
    landmarks: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceSequence:
    """One take as handed to the release writer.

    take_id: the take's id (six digits for the authors' takes); unique within a release.
    subject_id: identity; required (the split is by it).
    sentence_id: its two-digit prefix carries the emotion (00 neutral, 21..26).
    text, gender, age: may be None.
    fps: frames per second of `vertices` (30).
    vertices: (T, N, 3) float32, metres, in the SOURCE camera frame.
    audio: the source's samples, mono, (S,): float32 for subtype "FLOAT"; int16 for "PCM_16";
        int32 holding the 24-bit value shifted left by 8 (soundfile's convention) for "PCM_24".
    sample_rate: of `audio`, Hz.
    audio_subtype: "FLOAT" (stored as 32-bit float WAV bytes) or "PCM_16"/"PCM_24" (stored as
        FLAC); either way `soundfile` decodes the stored bytes to exactly these samples.
    topology: "bfm_front" or "synthetic_v1@<N>"; must match the release's `TopologyInfo.name`.
    raw: optional capture data (the `raw` config).
    """

    take_id: str
    subject_id: str
    sentence_id: str
    vertices: np.ndarray
    audio: np.ndarray
    sample_rate: int
    audio_subtype: str
    topology: str
    fps: int = FPS
    text: str | None = None
    gender: str | None = None
    age: int | None = None
    raw: RawCapture | None = None

    @property
    def id(self) -> str:
        """The record id, `{subject_id}/{take_id}`."""
        return f"{self.subject_id}/{self.take_id}"

    def check(self, num_vertices: int | None = None) -> None:
        """Raise `FormatError` naming the take if a field breaks the contract above."""
        where = f"take {self.take_id!r}"
        if not self.take_id or "/" in str(self.take_id):
            raise FormatError(f"{where}: take_id must be a non-empty string without '/'")
        if not self.subject_id or "/" in str(self.subject_id):
            raise FormatError(f"{where}: subject_id is missing or contains '/' ({self.subject_id!r})")
        emotion_of(self.sentence_id, where=where)
        v = self.vertices
        if not isinstance(v, np.ndarray) or v.ndim != 3 or v.shape[2] != 3 or v.shape[0] < 1:
            raise FormatError(f"{where}: vertices must be a (T, N, 3) array with T >= 1, got {getattr(v, 'shape', type(v))}")
        if v.dtype != np.float32:
            raise FormatError(f"{where}: vertices must be float32, got {v.dtype}")
        if not np.isfinite(v).all():
            raise FormatError(f"{where}: vertices hold NaN or infinite values")
        if num_vertices is not None and v.shape[1] != num_vertices:
            raise FormatError(f"{where}: {v.shape[1]} vertices, the release topology has {num_vertices}")
        if self.audio_subtype not in FLOAT_SUBTYPES + PCM_SUBTYPES:
            raise FormatError(f"{where}: audio subtype {self.audio_subtype!r} is not one of {FLOAT_SUBTYPES + PCM_SUBTYPES}")
        expected = {"FLOAT": np.float32, "PCM_16": np.int16, "PCM_24": np.int32}[self.audio_subtype]
        a = self.audio
        if not isinstance(a, np.ndarray) or a.ndim != 1 or a.size == 0 or a.dtype != expected:
            raise FormatError(
                f"{where}: audio must be a non-empty mono {np.dtype(expected).name} array for subtype "
                f"{self.audio_subtype}, got {getattr(a, 'dtype', type(a))} {getattr(a, 'shape', '')}"
            )
        if int(self.sample_rate) <= 0 or int(self.fps) <= 0:
            raise FormatError(f"{where}: sample_rate and fps must be positive ({self.sample_rate}, {self.fps})")
        if self.age is not None and not (0 <= int(self.age) < 150):
            raise FormatError(f"{where}: age {self.age!r} is not a plausible age in years")


@runtime_checkable
class SequenceSource(Protocol):
    """A take that the writer can load on demand: `key` is its take id (known without loading).

    Optionally `fingerprint() -> dict` (JSON-serialisable): what `load()`'s result depends on; the
    writer resumes a staged build only for the same fingerprints (`writer.inputs_fingerprint`).
    """

    key: str

    def load(self) -> SourceSequence: ...


@dataclass(frozen=True)
class InMemorySource:
    """A `SequenceSource` around a `SourceSequence` already in memory."""

    sequence: SourceSequence

    @property
    def key(self) -> str:
        return self.sequence.take_id

    def load(self) -> SourceSequence:
        return self.sequence


@dataclass(frozen=True)
class CallableSource:
    """A `SequenceSource` from a key and a zero-argument loader (e.g. reading a take folder)."""

    key: str
    loader: Callable[[], SourceSequence]

    def load(self) -> SourceSequence:
        return self.loader()


@dataclass(frozen=True)
class TopologyInfo:
    """The mesh topology shared by every sequence of a release (written to `meta/topology.npz`).

    name: "bfm_front" or "synthetic_v1@<N>".
    num_vertices: N.
    triangles: (F, 3) int64, 0-based.
    keypoints: (68,) int64, iBUG 68-point order, 0-based vertex ids.
    region_masks: name -> sorted int64 vertex ids (lips, upper_face, face, eyes, nose, forehead, chin, cheeks, border).
    region_rule_version: version of the rule that made the masks.
    """

    name: str
    num_vertices: int
    triangles: np.ndarray
    keypoints: np.ndarray
    region_masks: dict[str, np.ndarray]
    region_rule_version: str

    @property
    def hash(self) -> str:
        """sha256 over N, the triangles and the keypoints (int64 little-endian): identifies the topology."""
        h = hashlib.sha256()
        h.update(str(int(self.num_vertices)).encode())
        h.update(np.ascontiguousarray(self.triangles, dtype="<i8").tobytes())
        h.update(np.ascontiguousarray(self.keypoints, dtype="<i8").tobytes())
        return h.hexdigest()

    @classmethod
    def from_face_model(cls, model) -> "TopologyInfo":
        """Topology of a `facemodel.FaceModel`, with its region masks from `facemodel.region_masks`."""
        from mmface4d_datasets.facemodel import REGION_RULE_VERSION, region_masks

        triangles = np.asarray(model.triangles, dtype=np.int64)
        keypoints = np.asarray(model.keypoints, dtype=np.int64)
        masks = region_masks(triangles, keypoints, model.num_vertices)
        return cls(
            name=model.topology,
            num_vertices=int(model.num_vertices),
            triangles=triangles,
            keypoints=keypoints,
            region_masks={k: np.asarray(v, dtype=np.int64) for k, v in masks.items()},
            region_rule_version=str(REGION_RULE_VERSION),
        )


@dataclass
class BuildReport:
    """What `write_release` did.

    out_dir: the release folder. sequences: ids written, sorted. split_counts: split -> sequences.
    skipped: (take key, message) of takes left out under `on_error="skip"`.
    resumed: take keys found already staged (not loaded again for the first pass).
    """

    out_dir: str
    sequences: list[str] = field(default_factory=list)
    split_counts: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
