"""A FaceFormer-layout folder -> release sources (``mmface4d build release --layout faceformer``).

The folder holds ``vertices_npy/<name>.npy`` ((T, N*3) or (T, N, 3) numbers, metres), ``wav/<name>.wav``
(mono; any rate, stored as it is) and ``templates.pkl``, as FaceFormer packed VOCASET and as
``mmface4d export faceformer`` writes it. What makes a release out of it:

- topology: ``--faces FILE`` (``.npy``/``.pkl``/``.mat`` as ``mmface4d export``, or an ``.npz`` with
  ``triangles`` and ``keypoints``) with ``--keypoints FILE`` (68 vertex ids, iBUG order: ``.npy``,
  ``.json`` list or text), named ``--topology-name`` (default ``custom@<N>``); for an export folder,
  its ``topology.npz`` (the release's own topology, name and masks) when no ``--faces`` is given.
  The region masks (lips, upper face, ...) follow from the triangles and keypoints by the one rule;
- metadata: an export's ``names.csv`` (subject, take, sentence, text, gender, age of each name);
  else ``--manifest CSV`` with ``take_id`` = the file name stem; else the subject is the name
  before its last ``_`` (as their loaders read it), the take id the whole stem and the sentence id
  ``00-<rest>`` (neutral: the layout has no emotion);
- frame rate: ``--fps`` of the vertex files (an export says its own; else 30); 60 fps becomes 30 by
  keeping every second frame (exactly what their vocaset loader does), any other rate is resampled
  linearly in time (``mmface4d_datasets.faceformer.timing``) to the release's 30;
- ``templates.pkl`` is read through the restricted unpickler (numpy arrays and plain data only) and
  checked (a dict of (N, 3) or (3N,) arrays with the topology's N). Each subject's template from it is
  the release's template of that subject, put into the canonical frame by the template rule's step 4
  (``release/canonical.py``; for an export folder that frame is the exported one, so a round trip
  keeps the vertices); a subject without one gets the rule's derived template. Split, style
  references and benchmark follow as for any release.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from builders.manifest import read_manifest, read_meta_json, take_metadata
from builders.sources import AUDIO_DTYPES, SourceError, SourcePlan
from mmface4d_datasets.errors import FormatError, MMFace4DError
from mmface4d_datasets.faceformer.layout import TEMPLATES_FILE, VERTICES_DIR, WAV_DIR, parse_name, read_templates
from mmface4d_datasets.faceformer.timing import resample_frames
from mmface4d_datasets.release.take_rules import DEFAULT_DURATION_TOLERANCE_S, TakeError, check_durations
from mmface4d_datasets.vocabulary import FPS

EXPORT_INFO = "mmface4d_export.json"
EXPORT_NAMES = "names.csv"
EXPORT_TOPOLOGY = "topology.npz"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceFormerTake:
    """One ``<name>.npy`` + ``<name>.wav`` pair as a ``SequenceSource`` (``key`` = its take id)."""

    key: str
    name: str
    vertices_path: Path
    audio_path: Path
    metadata: object  # builders.manifest.TakeMetadata
    topology: str
    num_vertices: int
    fps: int
    duration_tolerance_s: float = DEFAULT_DURATION_TOLERANCE_S
    templates_path: Path | None = None  # its subject's template comes from there (the rows depend on it)

    problem = None  # the scan found nothing wrong (SourcePlan.problems)

    def fingerprint(self) -> dict:
        paths = [self.vertices_path, self.audio_path] + ([self.templates_path] if self.templates_path else [])
        files = [[str(p), os.stat(p).st_size, os.stat(p).st_mtime_ns] for p in paths]
        metadata = {k: v for k, v in vars(self.metadata).items() if k != "source"}
        return {"key": self.key, "files": files, "metadata": metadata, "fps": self.fps, "topology": self.topology}

    def _fail(self, path: Path, message: str) -> TakeError:
        return TakeError(f"take {self.key} ({path}): {message}")

    def load(self):
        from mmface4d_datasets.release.schema import SourceSequence

        vertices = self._vertices()
        audio, sample_rate, subtype = self._audio()
        try:
            check_durations(vertices.shape[0], FPS, audio.shape[0], sample_rate, self.duration_tolerance_s)
        except ValueError as exc:
            raise self._fail(self.audio_path, str(exc)) from None
        m = self.metadata
        return SourceSequence(
            take_id=self.key,
            subject_id=m.subject_id,
            sentence_id=m.sentence_id,
            vertices=vertices,
            audio=audio,
            sample_rate=sample_rate,
            audio_subtype=subtype,
            topology=self.topology,
            fps=FPS,
            text=m.text,
            gender=m.gender,
            age=m.age,
        )

    def _vertices(self) -> np.ndarray:
        path, n = self.vertices_path, self.num_vertices
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise self._fail(path, f"not a readable numeric .npy array ({exc})") from None
        if array.dtype.kind not in "fiu":
            raise self._fail(path, f"dtype {array.dtype}, expected float32 numbers")
        if array.ndim == 2 and array.shape[1] == 3 * n:
            array = array.reshape(array.shape[0], n, 3)
        elif not (array.ndim == 3 and array.shape[1:] == (n, 3)):
            raise self._fail(path, f"shape {array.shape}, expected (T, {3 * n}) = (T, N*3) with the topology's N = {n}")
        if array.shape[0] == 0:
            raise self._fail(path, "no frame")
        if not np.isfinite(array).all():
            bad = np.unique(np.nonzero(~np.isfinite(array))[0])
            raise self._fail(path, f"NaN or infinite coordinates in {bad.size} frame(s), first at frame {int(bad[0])}")
        if self.fps != FPS:
            array = resample_frames(array, self.fps, FPS)
        return np.ascontiguousarray(array, dtype=np.float32)

    def _audio(self) -> tuple[np.ndarray, int, str]:
        import soundfile

        path = self.audio_path
        try:
            info = soundfile.info(str(path))
        except Exception as exc:  # soundfile's LibsndfileError / RuntimeError
            raise self._fail(path, f"not a readable audio file ({exc})") from None
        if info.channels != 1:
            raise self._fail(path, f"{info.channels} channels, expected mono")
        if info.subtype not in AUDIO_DTYPES:
            raise self._fail(path, f"audio subtype {info.subtype} cannot be stored bit-exact; expected one of {', '.join(AUDIO_DTYPES)}")
        samples, rate = soundfile.read(str(path), dtype=AUDIO_DTYPES[info.subtype], always_2d=False)
        if samples.size == 0:
            raise self._fail(path, "the audio holds no samples")
        if info.subtype == "FLOAT" and not np.isfinite(samples).all():
            raise self._fail(path, "the audio holds NaN or infinite samples")
        return np.ascontiguousarray(samples), int(rate), info.subtype


@dataclass
class FaceFormerPlan(SourcePlan):
    """A :class:`SourcePlan` plus the subjects' templates read from ``templates.pkl`` (source frame)."""

    templates: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FailedTake:
    """A take the scan found unbuildable: ``load()`` raises its problem, so the writer reports it by id."""

    key: str
    problem: str

    def fingerprint(self) -> dict:
        return {"key": self.key, "problem": self.problem}

    def load(self):
        raise TakeError(self.problem)


def _read_keypoints(path: Path) -> np.ndarray:
    import json

    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            values = np.load(path, allow_pickle=False)
        elif suffix == ".json":
            values = np.asarray(json.loads(path.read_text(encoding="utf-8")))
        else:
            values = np.asarray(path.read_text(encoding="utf-8").replace(",", " ").split(), dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise FormatError(f"{path}: keypoints cannot be read ({exc})") from None
    values = np.asarray(values).reshape(-1)
    if values.size != 68 or values.dtype.kind not in "iuf" or not np.all(values == np.round(values)):
        raise FormatError(f"{path}: expected 68 whole vertex ids (iBUG 68-point order, 0-based), found {values.size} values")
    return values.astype(np.int64)


def topology_from_npz(path: Path, name: str | None = None):
    """A ``TopologyInfo`` from a release's ``meta/topology.npz`` (an export's ``topology.npz``), or any ``.npz``
    with ``triangles`` and ``keypoints`` (masks then made by the region rule)."""
    from mmface4d_datasets.facemodel import REGION_RULE_VERSION, region_masks
    from mmface4d_datasets.files import read_npz
    from mmface4d_datasets.release.schema import TopologyInfo

    try:
        arrays = read_npz(path)
    except (OSError, ValueError) as exc:
        raise FormatError(f"{path}: not a readable .npz ({exc})") from None
    if "triangles" not in arrays or "keypoints" not in arrays:
        raise FormatError(f"{path}: expected the arrays 'triangles' and 'keypoints'")
    triangles, keypoints = arrays["triangles"].astype(np.int64), arrays["keypoints"].astype(np.int64)
    count = int(arrays["num_vertices"]) if "num_vertices" in arrays else int(triangles.max()) + 1
    masks = {k[len("mask_") :]: v.astype(np.int64) for k, v in arrays.items() if k.startswith("mask_")}
    rule = str(arrays["region_rule_version"]) if "region_rule_version" in arrays and masks else str(REGION_RULE_VERSION)
    if not masks:
        masks = {k: np.asarray(v, dtype=np.int64) for k, v in region_masks(triangles, keypoints, count).items()}
    topology_name = name or (str(arrays["name"]) if "name" in arrays else f"custom@{count}")
    return TopologyInfo(topology_name, count, triangles, keypoints, masks, rule)


def faceformer_topology(root: Path, faces, keypoints, name: str | None, num_vertices_hint: int | None):
    """The release topology of the folder (module docstring)."""
    from mmface4d_datasets.export import load_faces
    from mmface4d_datasets.facemodel import REGION_RULE_VERSION, region_masks
    from mmface4d_datasets.release.schema import TopologyInfo

    if faces is None:
        if (root / EXPORT_TOPOLOGY).is_file():
            return topology_from_npz(root / EXPORT_TOPOLOGY, name)
        raise SourceError(
            f"{root}: the FaceFormer layout does not say the mesh topology: give --faces FILE (triangles) and "
            "--keypoints FILE (68 vertex ids), or a topology .npz as --faces"
        )
    faces = Path(faces)
    if faces.suffix.lower() == ".npz":
        return topology_from_npz(faces, name)
    if keypoints is None:
        raise SourceError(
            f"{faces}: --keypoints FILE (68 vertex ids, iBUG order) is needed with these faces (region masks, canonical frame)"
        )
    triangles = load_faces(faces, num_vertices_hint)
    count = int(num_vertices_hint) if num_vertices_hint else int(triangles.max()) + 1
    points = _read_keypoints(Path(keypoints))
    if points.min() < 0 or points.max() >= count:
        raise FormatError(f"{keypoints}: keypoint ids span {points.min()} .. {points.max()}, the mesh has {count} vertices")
    try:
        masks = region_masks(triangles, points, count)
    except MMFace4DError as exc:
        raise SourceError(f"{faces}, {keypoints}: {exc}") from None
    masks = {k: np.asarray(v, dtype=np.int64) for k, v in masks.items()}
    return TopologyInfo(name or f"custom@{count}", count, triangles, points, masks, str(REGION_RULE_VERSION))


def _vertex_count(path: Path) -> int | None:
    """N from a ``.npy`` header ((T, N*3) or (T, N, 3)); None when it does not say."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape = reader(handle)[0]
    except (OSError, ValueError, SyntaxError):
        return None
    if len(shape) == 2 and shape[1] % 3 == 0:
        return shape[1] // 3
    if len(shape) == 3 and shape[2] == 3:
        return shape[1]
    return None


def scan_faceformer_folder(
    root: str | os.PathLike,
    *,
    faces: str | os.PathLike | None = None,
    keypoints: str | os.PathLike | None = None,
    fps: int | None = None,
    manifest: str | os.PathLike | None = None,
    topology_name: str | None = None,
    duration_tolerance_s: float = DEFAULT_DURATION_TOLERANCE_S,
) -> SourcePlan:
    """The takes of a FaceFormer-layout folder as release sources (module docstring).

    Raises :class:`SourceError` / FormatError for a problem of the folder as a whole (no
    ``vertices_npy/``, no topology, an unreadable ``templates.pkl``); a take's own problem (its
    ``.wav`` missing, metadata) is kept and raised by its ``load()`` under ``--on-error``.
    """
    from mmface4d_datasets.release.take_rules import MetadataError, TakeMetadata, emotion_of_sentence

    root = Path(root)
    vertices_dir, wav_dir = root / VERTICES_DIR, root / WAV_DIR
    if not vertices_dir.is_dir():
        raise SourceError(f"{root}: no {VERTICES_DIR}/ folder; not a FaceFormer-layout folder (vertices_npy/, wav/, templates.pkl)")
    stems = sorted(p.stem for p in vertices_dir.iterdir() if p.suffix == ".npy" and p.is_file())
    if not stems:
        raise SourceError(f"{vertices_dir}: holds no .npy file")
    export = read_meta_json(root / EXPORT_INFO) if (root / EXPORT_INFO).is_file() else None
    if fps is None:
        fps = int(export["fps"]) if export and isinstance(export.get("fps"), int) else FPS
    if fps < 1:
        raise SourceError(f"--fps must be positive, got {fps}")
    topology = faceformer_topology(root, faces, keypoints, topology_name, _vertex_count(vertices_dir / f"{stems[0]}.npy"))
    if (root / TEMPLATES_FILE).is_file():
        templates = read_templates(root / TEMPLATES_FILE, topology.num_vertices)
    else:
        templates = {}
        _log.warning("mmface4d build: %s has no %s (their loaders need it; the release derives its own templates)", root, TEMPLATES_FILE)
    if (root / EXPORT_NAMES).is_file() and manifest is None:
        rows, named = read_manifest(root / EXPORT_NAMES), True
    else:
        rows, named = (read_manifest(manifest) if manifest is not None else None), False
    sources, problems, given = [], {}, {}
    for stem in stems:
        parsed = parse_name(stem) if named else None
        take_id = parsed[1] if parsed else stem
        try:
            if rows is not None:
                metadata = take_metadata(take_id, rows)
            else:
                subject, sep, sentence = stem.rpartition("_")
                if not sep or not subject:
                    raise MetadataError(f"take {take_id}: the name {stem!r} has no '_' between subject and sentence; give --manifest")
                sentence_id = f"00-{sentence}"
                metadata = TakeMetadata(take_id, subject, sentence_id, emotion_of_sentence(sentence_id, where=stem), None, None, None, stem)
        except MMFace4DError as exc:
            problems[take_id] = str(exc)
            continue
        audio = wav_dir / f"{stem}.wav"
        if not audio.is_file():
            problems[take_id] = f"take {take_id}: {audio} is missing"
            continue
        template = templates.get(metadata.subject_id, templates.get(stem.rpartition("_")[0]))
        if template is not None:
            given.setdefault(metadata.subject_id, template)
        elif templates:
            _log.warning(
                "mmface4d build: %s: subject %s has no template in %s; the template rule derives one",
                stem,
                metadata.subject_id,
                TEMPLATES_FILE,
            )
        sources.append(
            FaceFormerTake(
                take_id,
                stem,
                vertices_dir / f"{stem}.npy",
                audio,
                metadata,
                topology.name,
                topology.num_vertices,
                fps,
                duration_tolerance_s,
                root / TEMPLATES_FILE if template is not None else None,
            )
        )
    unpaired = sorted({p.stem for p in wav_dir.glob("*.wav")} - set(stems)) if wav_dir.is_dir() else []
    if unpaired:
        _log.warning(
            "mmface4d build: %d file(s) in %s have no vertices (left out, as their loaders do): %s",
            len(unpaired),
            wav_dir,
            ", ".join(unpaired[:5]),
        )
    keys = [s.key for s in sources] + list(problems)
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise SourceError(f"{root}: take ids found twice: {', '.join(repeated[:10])}")
    if not sources:
        listed = "\n  ".join(list(problems.values())[:20])
        raise SourceError(f"{root}: none of the {len(stems)} sequence(s) can be built:\n  {listed}")
    sources += [FailedTake(key, problem) for key, problem in problems.items()]
    sources.sort(key=lambda s: s.key)
    return FaceFormerPlan(root=root, sources=sources, topology=topology, templates=given)
