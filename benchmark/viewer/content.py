"""What the viewer page reads, by relative URL: the same paths from the server and in a static export.

::

    index.html                       the page (from ``static/``)
    static/<file>                    its script, style and the vendored three.js (from ``static/``)
    data/takes.json                  the release, the submission (if any) and one entry per take
    data/topology.bin                the triangles, once (MF4F, :mod:`benchmark.viewer.frames`)
    data/takes/<key>/take.json       one take: its fields, the four metrics of the prediction, the error scale
    data/takes/<key>/truth.bin       the release's vertices (MF4V)
    data/takes/<key>/prediction.bin  the submission's vertices (MF4V), when it has this take
    data/takes/<key>/audio.wav       the take's audio (16-bit PCM WAV, the browser plays it)

Paths are looked up in tables built here (file names of ``static/``, keys of the takes); nothing a
request names is ever joined onto a folder, so no URL can reach a file outside these.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmface4d_datasets.errors import MMFace4DError

STATIC_DIR = Path(__file__).with_name("static")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".bin": "application/octet-stream",
    ".wav": "audio/wav",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
}
#: Takes kept encoded in memory by the server (each is a few MB at 35,709 vertices).
CACHED_TAKES = 4
_SAFE_PART = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")


class ViewerInputError(MMFace4DError):
    """A release or submission the viewer cannot show (the message says which file and why)."""


def resolve_release(name: str, ids=None) -> Path:
    """The local folder of the release ``name``, by the core's rule (``mmface4d_datasets.release.resolve``:
    a release folder, ``mini``, a cached release, a Hub ``owner/name``). For a Hub name with ``ids``, only
    the card, ``meta/`` and the shards holding those takes are downloaded, not the whole release."""
    from mmface4d_datasets.release import resolve

    text = str(name)
    if not ids or Path(text).expanduser().exists() or text == resolve.MINI or not resolve.is_hub_id(text):
        return resolve.resolve_release(text)
    import pandas as pd

    folder = resolve.resolve_release(text, patterns=["README.md", "meta/*"])
    table = pd.read_parquet(folder / "meta" / "sequences.parquet", columns=["id", "shard"])
    shards = sorted(set(table[table["id"].isin(list(ids))]["shard"]))
    return resolve.download_release(text, patterns=["README.md", "meta/*", *shards]) if shards else folder


def take_key(sequence_id: str) -> str:
    """The URL folder of a take: ``subject/take`` when both parts are plain names, else a hash of the id."""
    parts = sequence_id.split("/")
    if len(parts) == 2 and all(_SAFE_PART.match(part) and part not in (".", "..") for part in parts):
        return sequence_id
    return "h" + hashlib.sha256(sequence_id.encode("utf-8")).hexdigest()[:24]


def static_files() -> dict[str, Path]:
    """URL path -> package file of the page: ``index.html`` and everything under ``static/``."""
    files = {"index.html": STATIC_DIR / "index.html"}
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file() and path.name != "index.html" and not path.name.startswith("."):
            files["static/" + path.relative_to(STATIC_DIR).as_posix()] = path
    return files


def content_type(path: str) -> str:
    return CONTENT_TYPES.get(Path(path).suffix, "application/octet-stream")


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """16-bit PCM WAV of float samples in [-1, 1] (mono, or (n, channels))."""
    import wave

    array = np.asarray(samples, dtype=np.float32)
    channels = 1 if array.ndim == 1 else array.shape[1]
    pcm = np.clip(np.rint(array * 32767.0), -32768, 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(int(rate))
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


@dataclass
class TakeFiles:
    """The encoded files of one take (``take.json``, ``truth.bin``, ``audio.wav``, ``prediction.bin``)."""

    files: dict[str, bytes]


class PredictionSource:
    """A submission opened and checked against a release before anything is shown.

    Refused (:class:`ViewerInputError`, naming every problem) when the file is not a readable
    submission, or it was made for another release: another topology or vertex count, ids the
    release lacks, frame counts that differ by more than one. Takes the submission leaves out
    are shown without a prediction.
    """

    def __init__(self, path: str | Path, release):
        from benchmark.submission import check_declared, open_submission

        self.path = Path(path)
        if not self.path.is_file():
            raise ViewerInputError(f"{self.path}: no such submission file")
        submission = open_submission(self.path)
        if submission.usable:
            table = release.sequences()
            expected = {str(i): int(n) for i, n in zip(table["id"], table["num_frames"])}
            check_declared(
                submission,
                expected,
                int(release.info.num_vertices),
                topology=release.info.topology,
                release_format_version=release.info.format_version,
            )
        problems = [issue for issue in submission.issues if issue.severity == "error" and issue.rule != "missing_id"]
        if not submission.usable or problems:
            shown = "; ".join(str(issue) for issue in problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
            raise ViewerInputError(f"{self.path}: cannot be shown with the release {release.path}: {shown or 'unreadable'}")
        self.submission = submission
        self.header = dict(submission.header or {})

    def ids(self) -> set[str]:
        return set(self.submission.rows)

    def read(self, sequence_id: str) -> np.ndarray:
        from benchmark.submission import SubmissionError, read_prediction

        try:
            return read_prediction(self.submission, sequence_id)
        except SubmissionError as exc:
            raise ViewerInputError(f"{self.path}: {exc}") from None


class ViewerContent:
    """Every file of the page for one release (and optionally one submission), by relative URL path.

    ``ids``: show only these takes (default: all). ``level``: gzip level of the vertex files
    (:data:`~benchmark.viewer.frames.SERVER_LEVEL` for the server, ``EXPORT_LEVEL`` for an export). Thread-safe: one lock around the release and
    submission readers; the last :data:`CACHED_TAKES` takes stay encoded in memory.
    """

    def __init__(
        self, release_path: str | Path, *, name: str | None = None, prediction: str | Path | None = None, ids=None, level: int | None = None
    ):
        from benchmark.viewer.frames import SERVER_LEVEL
        from mmface4d_datasets.release.reader import Release

        self.level = SERVER_LEVEL if level is None else int(level)
        self.release = Release(release_path)
        self.name = name or str(release_path)
        self.prediction = PredictionSource(prediction, self.release) if prediction is not None else None
        table = self.release.sequences()
        if ids:
            wanted = list(dict.fromkeys(ids))
            unknown = [i for i in wanted if i not in set(table["id"])]
            if unknown:
                raise ViewerInputError(f"release {self.release.path}: no take with id {', '.join(map(repr, unknown[:5]))}")
            table = table.set_index("id").loc[wanted].reset_index()
        self.table = table
        self.keys = {str(i): take_key(str(i)) for i in table["id"]}
        self.by_key = {key: sequence_id for sequence_id, key in self.keys.items()}
        self.static = static_files()
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, TakeFiles] = OrderedDict()
        self._topology: bytes | None = None

    # ------------------------------------------------------------------ catalogue
    def fps(self) -> int:
        fps = self.release.info.fps
        return int(fps if isinstance(fps, int) else fps[0])

    def takes_json(self) -> bytes:
        info = self.release.info
        predicted = self.prediction.ids() if self.prediction else set()
        takes = []
        for row in self.table.to_dict("records"):
            sequence_id = str(row["id"])
            takes.append(
                {
                    **self._take_fields(sequence_id, row),
                    "num_frames": int(row["num_frames"]),
                    "duration_s": float(row["duration_s"]),
                    "has_prediction": sequence_id in predicted,
                }
            )
        document = {
            "viewer_format": 1,
            "release": {
                "name": self.name,
                "format_version": info.format_version,
                "topology": info.topology,
                "topology_hash": info.topology_hash,
                "num_vertices": int(info.num_vertices),
                "fps": self.fps(),
                "units": "metres",
            },
            "prediction": None
            if self.prediction is None
            else {"file": self.prediction.path.name, "model": str(self.prediction.header.get("model", "")), "takes": len(predicted)},
            "takes": takes,
        }
        return json.dumps(document, ensure_ascii=False).encode("utf-8")

    def topology_bin(self) -> bytes:
        if self._topology is None:
            from benchmark.viewer.frames import encode_faces

            self._topology = encode_faces(self.release.topology["triangles"])
        return self._topology

    # ------------------------------------------------------------------ one take
    def take(self, sequence_id: str) -> TakeFiles:
        with self._lock:
            if sequence_id in self._cache:
                self._cache.move_to_end(sequence_id)
                return self._cache[sequence_id]
            files = self._build_take(sequence_id)
            self._cache[sequence_id] = files
            while len(self._cache) > CACHED_TAKES:
                self._cache.popitem(last=False)
            return files

    def _build_take(self, sequence_id: str) -> TakeFiles:
        from benchmark.viewer.frames import encode_frames

        record = self.release.record(sequence_id)
        truth = np.asarray(record["vertices"], dtype=np.float32)
        files = {"truth.bin": encode_frames(truth, self.level)}
        audio = record.get("audio")
        if isinstance(audio, dict) and audio.get("array") is not None:
            files["audio.wav"] = wav_bytes(audio["array"], audio["sampling_rate"])
        metrics = None
        error_scale = None
        if self.prediction is not None and sequence_id in self.prediction.ids():
            predicted = self.prediction.read(sequence_id)
            files["prediction.bin"] = encode_frames(predicted, self.level)
            metrics, error_scale = self._metrics(truth, predicted)
        row = self.table[self.table["id"] == sequence_id].iloc[0].to_dict()
        document = {
            **self._take_fields(sequence_id, row),
            "fps": int(record.get("fps") or self.fps()),
            "num_frames": int(truth.shape[0]),
            "num_vertices": int(truth.shape[1]),
            "duration_s": float(row["duration_s"]),
            "has_audio": "audio.wav" in files,
            "has_prediction": "prediction.bin" in files,
            "prediction_frames": None if "prediction.bin" not in files else int(predicted.shape[0]),
            "metrics": metrics,
            "error_scale_mm": error_scale,
            "bytes": {name: len(data) for name, data in files.items()},
        }
        files["take.json"] = json.dumps(document, ensure_ascii=False).encode("utf-8")
        return TakeFiles(files)

    def _take_fields(self, sequence_id: str, row: dict) -> dict:
        """What the take list and a take's own document both say of a take (its metadata row)."""
        return {
            "id": sequence_id,
            "key": self.keys[sequence_id],
            "subject_id": str(row["subject_id"]),
            "take_id": str(row["take_id"]),
            "sentence_id": str(row["sentence_id"]),
            "split": str(row["split"]),
            "emotion": _text(row.get("emotion")),
            "gender": _text(row.get("gender")),
            "age": None if _missing(row.get("age")) else int(row["age"]),
            "text": _text(row.get("text")),
        }

    def _metrics(self, truth: np.ndarray, predicted: np.ndarray) -> tuple[dict, float]:
        """The take's four metrics (metres and millimetres, on the common frames) and the colour bar's top (mm)."""
        from benchmark.metrics import sequence_errors

        frames = min(len(truth), len(predicted))
        masks = self.release.region_masks()
        errors = sequence_errors(truth[:frames], predicted[:frames], masks["lips"], masks["upper_face"])
        distance = np.linalg.norm(truth[:frames].astype(np.float64) - predicted[:frames], axis=2)
        top = float(np.percentile(distance, 99.5)) * 1000.0 if distance.size else 0.0
        metrics = {name: {"m": float(value), "mm": float(value) * 1000.0} for name, value in errors.items()}
        metrics["frames_scored"] = frames
        return metrics, _nice_ceiling(top)

    # ------------------------------------------------------------------ lookup by URL path
    def get(self, path: str) -> tuple[bytes, str] | None:
        """(bytes, content type) of the URL path ``path`` (no leading slash), or None when there is none."""
        if path in ("", "index.html"):
            return self.static["index.html"].read_bytes(), CONTENT_TYPES[".html"]
        if path in self.static:
            return self.static[path].read_bytes(), content_type(path)
        if path == "data/takes.json":
            return self.takes_json(), CONTENT_TYPES[".json"]
        if path == "data/topology.bin":
            return self.topology_bin(), CONTENT_TYPES[".bin"]
        if path.startswith("data/takes/"):
            key, _, name = path[len("data/takes/") :].rpartition("/")
            sequence_id = self.by_key.get(key)
            if sequence_id is None:
                return None
            data = self.take(sequence_id).files.get(name)
            return None if data is None else (data, content_type(name))
        return None


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _text(value) -> str | None:
    return None if _missing(value) else str(value)


def _nice_ceiling(value_mm: float) -> float:
    """The colour bar's top: ``value_mm`` rounded up to 1, 2 or 5 times a power of ten (1 mm when zero)."""
    if not value_mm > 0:
        return 1.0
    power = 10.0 ** np.floor(np.log10(value_mm))
    for factor in (1.0, 2.0, 5.0, 10.0):
        if value_mm <= factor * power * (1 + 1e-4):  # float32 noise of a round number stays on it
            return float(factor * power)
    return float(10 * power)
