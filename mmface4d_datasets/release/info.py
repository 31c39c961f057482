"""`meta/info.json` of a release, parsed once into a typed, frozen `ReleaseInfo`.

The writer builds a `ReleaseInfo` and writes `ReleaseInfo.to_json()` (canonical JSON,
`files.json_bytes`); every reader gets one from `ReleaseInfo.from_file` (through `Release.info`,
or directly: `validate`, the loader, the card, the benchmark, `builders`). The fields are the file's
keys (docs/release_format.md, meta/info.json); this module alone knows that layout, checks it and
the format version, and names the file and the problem in an `InfoFormatError` when they are wrong.

A `ReleaseInfo` also reads as a mapping of the JSON as written (`info["splits"]["train"]`), for code
written against the plain dict; the package's own code uses the typed fields.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.release.schema import FORMAT_VERSION

#: Where the file lives in a release folder.
INFO_FILE = "meta/info.json"


class InfoFormatError(FormatError):
    """`meta/info.json` is missing, unreadable or breaks its layout.

    path: the file. problems: what is wrong, one message each (without the path; `validate` reports
    them one by one)."""

    def __init__(self, path: str | os.PathLike, problems: list[str] | tuple[str, ...]):
        self.path = Path(path)
        self.problems = tuple(problems)
        super().__init__(f"{self.path}: {'; '.join(self.problems)}")


class ReleaseVersionError(InfoFormatError):
    """A release of another format version than this package reads."""


def format_version_problem(version) -> str | None:
    """Why a release of format `version` cannot be read by this package (None: it can: same major number)."""
    if str(version).split(".")[0] == FORMAT_VERSION.split(".")[0]:
        return None
    return (
        f"format version {version!r}; this package reads {FORMAT_VERSION}. Install the mmface4d-datasets "
        f"version that matches the release (or upgrade: pip install -U mmface4d-datasets), or convert it by "
        f"rebuilding it from its sources with `mmface4d build release`."
    )


def check_format_version(version, where) -> None:
    """Raise `ReleaseVersionError` (naming `where`) unless `version` has the major number of FORMAT_VERSION."""
    problem = format_version_problem(version)
    if problem is not None:
        raise ReleaseVersionError(where, [problem])


class FrozenMapping(Mapping):
    """A read-only mapping (the tables of a `ReleaseInfo`); compares equal to a dict with the same items."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping | None = None):
        object.__setattr__(self, "_items", dict(items or {}))

    def __getitem__(self, key):
        return self._items[key]

    def __iter__(self) -> Iterator:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __reduce__(self):
        return (type(self), (self._items,))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"


@dataclass(frozen=True)
class FileEntry:
    """One file of `files`: size in bytes, sha256 (hex), and for Parquet files the row count and the sha256 of the
    footer (format 1.1: `release.checksums.footer_sha256`, checked on every open); each may be absent (None)."""

    size: int | None = None
    sha256: str | None = None
    rows: int | None = None
    footer_sha256: str | None = None

    def to_json(self) -> dict:
        pairs = (("bytes", self.size), ("sha256", self.sha256), ("rows", self.rows), ("footer_sha256", self.footer_sha256))
        return {key: value for key, value in pairs if value is not None}


@dataclass(frozen=True)
class SplitInfo:
    """One split of `splits`: sequences, subjects, frames, and its data shards (relative paths, sorted)."""

    sequences: int
    subjects: int
    frames: int
    shards: tuple[str, ...]

    def to_json(self) -> dict:
        return {"sequences": self.sequences, "subjects": self.subjects, "frames": self.frames, "shards": list(self.shards)}


@dataclass(frozen=True)
class Counts:
    """`counts`: sequences, subjects and frames of the whole release."""

    sequences: int
    subjects: int
    frames: int

    def to_json(self) -> dict:
        return {"sequences": self.sequences, "subjects": self.subjects, "frames": self.frames}


@dataclass(frozen=True)
class Figure:
    """One image of `figures`: its path in the release and its title."""

    path: str
    title: str


@dataclass(frozen=True)
class Figures:
    """`figures` (added by `mmface4d build` with the viz extra, builders/stats.py): the numbers file and the images."""

    numbers: str | None
    images: tuple[Figure, ...]

    def to_json(self) -> dict:
        entry: dict[str, Any] = {"images": [{"path": image.path, "title": image.title} for image in self.images]}
        if self.numbers is not None:
            entry["numbers"] = self.numbers
        return entry


@dataclass(frozen=True)
class ReleaseInfo(Mapping):
    """`meta/info.json`, typed.

    format_version: of the release layout (`schema.FORMAT_VERSION`). writer: "mmface4d-datasets <version>".
    fps, sample_rate: shared by every sequence, or the sorted distinct values when they differ.
    topology, topology_hash, num_vertices: the mesh topology (`schema.TopologyInfo`).
    vertex_dtype, units, frame: what the decoded vertices are. codec_version, max_error: the vertex codec and
    its bound (metres per coordinate). template_rule: version of the canonical-template rule.
    emotions: ClassLabel names of `emotion`. counts: of the whole release. splits: name -> `SplitInfo`.
    files: relative path -> `FileEntry`, every file of the release but this one and the card, sorted.
    figures: the statistics figures, when drawn. extra: keys of a later minor format version, kept as read.
    """

    format_version: str
    writer: str
    fps: int | tuple[int, ...]
    sample_rate: int | tuple[int, ...]
    topology: str
    topology_hash: str
    num_vertices: int
    vertex_dtype: str
    units: str
    frame: str
    codec_version: str
    max_error: float
    template_rule: str
    emotions: tuple[str, ...]
    counts: Counts
    splits: Mapping[str, SplitInfo]
    files: Mapping[str, FileEntry]
    figures: Figures | None = None
    extra: Mapping[str, Any] = field(default_factory=FrozenMapping)

    __hash__ = None  # holds mappings

    # ------------------------------------------------------------------ reading

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> ReleaseInfo:
        """Parse `path` (a release's meta/info.json). Raises `ReleaseVersionError` for another format version and
        `InfoFormatError` (naming the file and every problem) for a file that is missing, unreadable or incomplete."""
        return cls.from_json(load_json_object(path), path)

    @classmethod
    def of_release(cls, root: str | os.PathLike) -> ReleaseInfo:
        """`from_file` of the release folder `root`."""
        return cls.from_file(Path(root) / INFO_FILE)

    @classmethod
    def from_json(cls, data: dict, where: str | os.PathLike = INFO_FILE) -> ReleaseInfo:
        """A `ReleaseInfo` from the parsed JSON object; errors as `from_file`, naming `where`."""
        problem = format_version_problem(data.get("format_version"))
        if problem is not None:
            raise ReleaseVersionError(where, [problem])
        missing = [f"has no {key!r} field" for key in _FIELDS if key not in data]
        if missing:
            raise InfoFormatError(where, missing)
        problems: list[str] = []
        values = {key: parse(data[key], key, problems) for key, parse in _FIELDS.items()}
        figures = _figures(data["figures"], "figures", problems) if "figures" in data else None
        if problems:
            raise InfoFormatError(where, problems)
        extra = {key: value for key, value in data.items() if key not in _FIELDS and key != "figures"}
        return cls(**values, figures=figures, extra=FrozenMapping(extra))

    # ------------------------------------------------------------------ writing

    def to_json(self) -> dict:
        """The JSON object of meta/info.json (write it with `files.json_bytes`)."""
        data = {
            "format_version": self.format_version,
            "writer": self.writer,
            "fps": _rate_json(self.fps),
            "sample_rate": _rate_json(self.sample_rate),
            "topology": self.topology,
            "topology_hash": self.topology_hash,
            "num_vertices": self.num_vertices,
            "vertex_dtype": self.vertex_dtype,
            "units": self.units,
            "frame": self.frame,
            "codec_version": self.codec_version,
            "max_error": self.max_error,
            "template_rule": self.template_rule,
            "emotions": list(self.emotions),
            "counts": self.counts.to_json(),
            "splits": {name: split.to_json() for name, split in self.splits.items()},
            "files": {path: entry.to_json() for path, entry in self.files.items()},
        }
        if self.figures is not None:
            data["figures"] = self.figures.to_json()
        return {**data, **self.extra}

    # ------------------------------------------------------------------ conveniences

    @property
    def split_names(self) -> list[str]:
        """The splits, "train" first."""
        return sorted(self.splits, key=lambda s: (s != "train", s))

    @property
    def uniform_fps(self) -> int | None:
        """The frame rate of every sequence, or None when they differ."""
        return self.fps if isinstance(self.fps, int) else None

    def listed(self, prefix: str, suffix: str = "") -> list[str]:
        """The listed files whose relative path starts with `prefix` (and ends with `suffix`), sorted."""
        return sorted(path for path in self.files if path.startswith(prefix) and path.endswith(suffix))

    # The JSON as written, read-only (each access is a fresh copy), for code written against the dict.
    def __getitem__(self, key: str):
        return self.to_json()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())


def load_json_object(path: str | os.PathLike) -> dict:
    """The JSON object in `path` (meta/info.json); `InfoFormatError` naming it when missing, unreadable, not JSON,
    or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InfoFormatError(path, ["missing: this is not a release folder"]) from None
    except (OSError, ValueError) as exc:  # not JSON, not UTF-8, a folder, unreadable
        raise InfoFormatError(path, [f"cannot be read as JSON ({exc})"]) from None
    if not isinstance(data, dict):
        raise InfoFormatError(path, [f"holds a JSON {type(data).__name__}, not an object with the release's fields"])
    return data


def read_file_table(root: str | os.PathLike) -> Mapping[str, FileEntry]:
    """Only the `files` table of the release at `root` (what `release.contents` needs to list a release's files,
    e.g. before a push; the other fields are not required). `InfoFormatError` when it cannot be read."""
    path = Path(root) / INFO_FILE
    data = load_json_object(path)
    if not isinstance(data.get("files"), dict):
        raise InfoFormatError(path, ["has no 'files' table listing the release's files"])
    problems: list[str] = []
    files = _files(data["files"], "files", problems)
    if problems:
        raise InfoFormatError(path, problems)
    return files


# ---------------------------------------------------------------------- field parsers (value, name, problems)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _typed(check, description: str):
    def parse(value, name: str, problems: list[str]):
        if not check(value):
            problems.append(f"field {name!r} is not {description}")
        return value

    return parse


_string = _typed(lambda v: isinstance(v, str), "a string")
_integer = _typed(_is_int, "an integer")
_number = _typed(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number")


def _rate(value, name, problems):
    if _is_int(value):
        return value
    if isinstance(value, list) and value and all(_is_int(v) for v in value):
        return tuple(value)
    problems.append(f"field {name!r} is not an integer or a list of integers")
    return value


def _rate_json(value):
    return list(value) if isinstance(value, tuple) else value


def _strings(value, name, problems):
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"field {name!r} is not a list of strings")
        return ()
    return tuple(value)


def _object(value, name, problems, fields: dict):
    """The fields of a nested object as keyword arguments (problems recorded for missing or mistyped ones)."""
    if not isinstance(value, dict):
        problems.append(f"field {name!r} is not an object")
        return None
    missing = [key for key in fields if key not in value]
    if missing:
        problems.append(f"field {name!r} has no {', '.join(map(repr, missing))}")
        return None
    before = len(problems)
    parsed = {key: parse(value[key], f"{name}.{key}", problems) for key, parse in fields.items()}
    return parsed if len(problems) == before else None


def _table(value, name, problems) -> dict | None:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        problems.append(f"field {name!r} is not an object of objects")
        return None
    return value


def _counts(value, name, problems):
    parsed = _object(value, name, problems, {"sequences": _integer, "subjects": _integer, "frames": _integer})
    return Counts(**parsed) if parsed is not None else None


def _splits(value, name, problems):
    table = _table(value, name, problems)
    if table is None:
        return FrozenMapping()
    fields = {"sequences": _integer, "subjects": _integer, "frames": _integer, "shards": _strings}
    splits = {}
    for split, entry in table.items():
        parsed = _object(entry, f"{name}.{split}", problems, fields)
        if parsed is not None:
            splits[split] = SplitInfo(**parsed)
    return FrozenMapping(splits)


def _files(value, name, problems):
    table = _table(value, name, problems)
    if table is None:
        return FrozenMapping()
    optional = (("bytes", _integer), ("sha256", _string), ("rows", _integer), ("footer_sha256", _string))
    files = {}
    for path, entry in table.items():
        before = len(problems)
        parsed = {key: parse(entry[key], f"{name}.{path}.{key}", problems) for key, parse in optional if key in entry}
        if len(problems) == before:
            files[path] = FileEntry(
                size=parsed.get("bytes"), sha256=parsed.get("sha256"), rows=parsed.get("rows"), footer_sha256=parsed.get("footer_sha256")
            )
    return FrozenMapping(files)


def _figures(value, name, problems):
    if not isinstance(value, dict) or not isinstance(value.get("images", []), list):
        problems.append(f"field {name!r} is not an object with a list of images")
        return None
    images = []
    for index, image in enumerate(value.get("images", [])):
        parsed = _object(image, f"{name}.images[{index}]", problems, {"path": _string, "title": _string})
        if parsed is not None:
            images.append(Figure(**parsed))
    numbers = value.get("numbers")
    if numbers is not None and not isinstance(numbers, str):
        problems.append(f"field '{name}.numbers' is not a string")
    return Figures(numbers=numbers, images=tuple(images))


#: The fields every meta/info.json has, in the order they are checked, with their parsers.
_FIELDS = {
    "format_version": _string,
    "writer": _string,
    "fps": _rate,
    "sample_rate": _rate,
    "topology": _string,
    "topology_hash": _string,
    "num_vertices": _integer,
    "vertex_dtype": _string,
    "units": _string,
    "frame": _string,
    "codec_version": _string,
    "max_error": _number,
    "template_rule": _string,
    "emotions": _strings,
    "counts": _counts,
    "splits": _splits,
    "files": _files,
}
