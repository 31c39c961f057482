"""Takes on disk (the authors' layout, our rig's and our simulator's) -> `SequenceSource`s.

:func:`scan_source` walks a source folder (flat or one folder per take, through
``mmface4d_datasets.official.find_takes``), attaches each take's metadata (manifest CSV or
``ID.meta.json``, see :mod:`builders.manifest`), tells the topology of each take and returns a
:class:`SourcePlan`: one :class:`TakeSource` per take, sorted by take id, plus the release topology.

Checks and where they happen:

- while scanning (cheap, no mesh decoding): metadata present and well-formed, a known emotion prefix,
  the vertex count (from ``meta.json``'s ``topology``, else from the ``.nut`` frame size), all three
  mesh axes present, a ``ID.wav`` present. A take that fails is NOT dropped here: its problem is kept
  and raised by its ``load()``, so the release writer reports it by take id under ``--on-error``
  (``stop`` raises it, ``skip`` leaves the take out and lists it). Problems of the source as a whole
  (no take at all, a repeated take id, mixed topologies, a bfm_front source without
  ``facemodel_info.mat``) raise at once.
- in ``load()`` (the full read): 16 kHz mono audio in a subtype that can be stored bit-exact
  (32-bit float, 16- or 24-bit PCM), finite vertices, and a mesh duration ``T / fps`` that agrees
  with the audio duration ``S / sample_rate`` within ``duration_tolerance_s`` (default 0.1 s, three
  frames at 30 fps; the authors' sample agrees within 1 ms).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmface4d_datasets.vocabulary import BFM_NUM_VERTICES, BFM_TOPOLOGY, topology_num_vertices
from builders.manifest import TakeMetadata, read_manifest, read_meta_json, take_metadata
from mmface4d_datasets import official
from mmface4d_datasets.errors import MMFace4DError
from mmface4d_datasets.release.take_rules import (  # noqa: F401 (check_durations: public here too)
    DEFAULT_DURATION_TOLERANCE_S,
    TakeError,
    check_durations,
    extrinsics_from_meta,
)

#: The authors' topology and its vertex count (defined in mmface4d_datasets.vocabulary).
BFM_FRONT_VERTICES = BFM_NUM_VERTICES
BFM_FRONT = BFM_TOPOLOGY
#: soundfile subtype -> the numpy dtype that holds its samples exactly (SourceSequence's convention).
AUDIO_DTYPES = {"FLOAT": "float32", "PCM_16": "int16", "PCM_24": "int32"}
BFM_INFO_NAME = "facemodel_info.mat"


class SourceError(MMFace4DError):
    """The source folder as a whole cannot be built (names the folder or the takes concerned)."""


def nut_frame_side(path: Path) -> int:
    """Side S of the square frames of an authors' ``.nut`` mesh axis file (S = ceil(sqrt(N + 4))).

    Reads the stream header only. Raises ``ValueError`` (with FFmpeg's reason) for a file that is
    not a video with square frames.
    """
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError("the file holds no video stream")
            stream = container.streams.video[0]
            width, height = int(stream.width), int(stream.height)
    except av.error.FFmpegError as exc:
        raise ValueError(f"not a readable video ({exc})") from None
    if width != height or width == 0:
        raise ValueError(f"frames are {width}x{height}, the mesh encoding uses square frames")
    return width


def detect_topology(take, meta: dict | None) -> str:
    """The topology of ``take``: its ``meta.json`` ``topology`` when given, else from the frame size.

    A frame side of ceil(sqrt(35,709 + 4)) = 189 means ``bfm_front``; another side with no
    ``topology`` in ``meta.json`` cannot be told apart (several N share a side) and raises ``ValueError``.
    When ``meta.json`` names a topology, the frame size must agree with its N.
    """
    side = nut_frame_side(take.mesh_paths[0])
    declared = (meta or {}).get("topology")
    if declared:
        declared = str(declared)
        expected = official.frame_side(topology_num_vertices(declared))
        if side != expected:
            raise ValueError(f"meta.json says topology {declared} (frame side {expected}) but the .nut frames are {side}x{side}")
        return declared
    if side == official.frame_side(BFM_FRONT_VERTICES):
        return BFM_FRONT
    raise ValueError(
        f"the .nut frames are {side}x{side}, which is not the bfm_front size; name the topology (synthetic_v1@<N>) in the take's meta.json"
    )


@dataclass(frozen=True)
class TakeSource:
    """One take as a ``SequenceSource`` for the release writer: ``key`` is the take id.

    ``problem`` holds what the scan found wrong with the take; ``load()`` raises it as a
    :class:`TakeError` so that the writer reports the take by id under its ``on_error`` rule.
    """

    key: str
    take: object  # mmface4d_datasets.official.Take
    metadata: TakeMetadata | None
    topology: str | None
    meta: dict | None = None
    problem: str | None = None
    raw: bool = True
    duration_tolerance_s: float = DEFAULT_DURATION_TOLERANCE_S

    def fingerprint(self) -> dict:
        """What the staged copy of this take depends on: metadata, settings and the files' sizes and
        modification times (a changed input must not be resumed from an old staged copy)."""
        if self.take is None:
            return {"key": self.key, "problem": self.problem}
        take = self.take
        paths = [take.audio, *take.mesh_paths, *take.calibrations.values(), *take.landmarks.values()]
        if take.meta is not None:
            paths.append(take.meta)
        files = []
        for path in paths:
            stat = os.stat(path)  # follows links: the content's file is what counts
            files.append([str(path), stat.st_size, stat.st_mtime_ns])
        metadata = None if self.metadata is None else {k: v for k, v in vars(self.metadata).items() if k != "source"}
        return {
            "key": self.key,
            "problem": self.problem,
            "topology": self.topology,
            "metadata": metadata,
            "raw": self.raw,
            "duration_tolerance_s": self.duration_tolerance_s,
            "files": files,
        }

    def _fail(self, message: str, path: Path | None = None) -> TakeError:
        where = f" ({path})" if path is not None else ""
        return TakeError(f"take {self.key}{where}: {message}")

    def load(self):
        """Read the take fully and return a ``SourceSequence`` (vertices in the source camera frame)."""
        from mmface4d_datasets.release.schema import SourceSequence

        if self.problem is not None:
            raise TakeError(self.problem)
        audio, sample_rate, subtype = self._read_audio()
        vertices = self._read_vertices()
        try:
            check_durations(vertices.shape[0], official.FPS, audio.shape[0], sample_rate, self.duration_tolerance_s)
        except ValueError as exc:
            raise self._fail(str(exc), self.take.audio) from None
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
            fps=official.FPS,
            text=m.text,
            gender=m.gender,
            age=m.age,
            raw=self._read_raw(vertices.shape[0]) if self.raw else None,
        )

    def _read_audio(self) -> tuple[np.ndarray, int, str]:
        """The take's samples exactly as stored, its rate and soundfile subtype.

        ``official.read_audio`` checks the file (16 kHz, mono, complete, finite); integer PCM is then
        read again as integers, which is what is stored bit-exact (FLAC).
        """
        import soundfile

        path = Path(self.take.audio)
        try:
            samples, sample_rate = official.read_audio(path)
            subtype = soundfile.info(str(path)).subtype
        except MMFace4DError as exc:
            raise self._fail(str(exc)) from None
        if subtype not in AUDIO_DTYPES:
            raise self._fail(
                f"audio subtype {subtype} cannot be stored bit-exact; expected one of "
                f"{', '.join(AUDIO_DTYPES)} (32-bit float, 16- or 24-bit PCM)",
                path,
            )
        if samples.size == 0:
            raise self._fail("the audio holds no samples", path)
        if subtype != "FLOAT":
            samples, _ = soundfile.read(str(path), dtype=AUDIO_DTYPES[subtype], always_2d=False)
        return np.ascontiguousarray(samples), int(sample_rate), subtype

    def _read_vertices(self) -> np.ndarray:
        num_vertices = topology_num_vertices(self.topology)
        try:
            vertices = self.take.vertices(num_vertices)
        except MMFace4DError as exc:
            raise self._fail(str(exc)) from None
        except (OSError, ValueError) as exc:  # a damaged video stream surfaces from PyAV as these
            raise self._fail(
                f"the mesh sequence cannot be decoded ({type(exc).__name__}: {exc})", Path(f"{self.take.mesh_prefix}_*.nut")
            ) from None
        vertices = np.asarray(vertices)
        if vertices.ndim != 3 or vertices.shape[1:] != (num_vertices, 3) or vertices.shape[0] == 0:
            raise self._fail(f"the mesh sequence has shape {vertices.shape}, expected (T>0, {num_vertices}, 3)")
        if not np.isfinite(vertices).all():
            bad = np.unique(np.nonzero(~np.isfinite(vertices))[0])
            raise self._fail(
                f"the mesh sequence holds NaN or infinite coordinates in {bad.size} frame(s), first at frame {int(bad[0])}",
                Path(f"{self.take.mesh_prefix}_*.nut"),
            )
        return np.ascontiguousarray(vertices, dtype=np.float32)

    def _read_raw(self, num_frames: int):
        """Intrinsics and landmarks of every camera; landmarks must agree with the mesh sequence's
        ``num_frames`` (``official.check_landmarks_agree``)."""
        from mmface4d_datasets.release.schema import RawCapture

        intrinsics, landmarks = {}, {}
        for camera, path in sorted(self.take.calibrations.items()):
            try:
                intrinsics[int(camera)] = np.asarray(official.read_intrinsics(path), dtype=np.float64)
            except MMFace4DError as exc:
                raise self._fail(str(exc), Path(path)) from None
        for camera, path in sorted(self.take.landmarks.items()):
            try:
                landmarks[int(camera)] = np.asarray(official.read_landmarks(path), dtype=np.float64)
                official.check_landmarks_agree(landmarks[int(camera)], num_frames, path)
            except MMFace4DError as exc:
                raise self._fail(str(exc), Path(path)) from None
        return RawCapture(intrinsics=intrinsics, extrinsics=self._extrinsics(), landmarks=landmarks)

    def _extrinsics(self) -> dict[int, np.ndarray]:
        try:
            return extrinsics_from_meta(self.meta)
        except ValueError as exc:
            raise self._fail(f"meta.json extrinsics: {exc}", self.take.meta) from None


@dataclass
class SourcePlan:
    """What :func:`scan_source` found: the takes as sources and the topology they share."""

    root: Path
    sources: list[TakeSource]
    topology: object  # mmface4d_datasets.release.schema.TopologyInfo
    manifest_unmatched: list[str] = field(default_factory=list)  # manifest take ids with no take in the source

    @property
    def problems(self) -> dict[str, str]:
        """take id -> problem found while scanning (those takes fail when loaded)."""
        return {s.key: s.problem for s in self.sources if s.problem is not None}


def find_bfm_info(root: Path, takes) -> Path | None:
    """``BFM/facemodel_info.mat`` (or ``facemodel_info.mat``) in the source folder, a take folder or
    any folder above the source; None when there is none."""
    folders = [root, *sorted({Path(t.folder) for t in takes})] + list(root.resolve().parents)
    for folder in folders:
        for candidate in (folder / "BFM" / BFM_INFO_NAME, folder / BFM_INFO_NAME):
            if candidate.is_file():
                return candidate
    return None


def topology_info(name: str, *, root: Path, takes, bfm_info: str | os.PathLike | None):
    """The release's ``TopologyInfo`` for the topology ``name`` (triangles, keypoints, region masks)."""
    from mmface4d_datasets import facemodel
    from mmface4d_datasets.release.schema import TopologyInfo

    if name == BFM_FRONT:
        path = Path(bfm_info) if bfm_info is not None else find_bfm_info(root, takes)
        if path is None or not path.is_file():
            where = (
                f"{path} does not exist"
                if path is not None
                else (f"no BFM/{BFM_INFO_NAME} in {root}, its take folders or the folders above it")
            )
            raise SourceError(
                f"{root}: the takes use the bfm_front topology, whose triangles and keypoints come "
                f"from the BFM {BFM_INFO_NAME}, but {where}; give it with --bfm-info FILE"
            )
        return TopologyInfo.from_face_model(facemodel.bfm_topology(path))
    return TopologyInfo.from_face_model(facemodel.face_model_for_topology(name))


def _scan_take(take, manifest, *, raw: bool, duration_tolerance_s: float) -> TakeSource:
    """One take -> a TakeSource; what is wrong is kept in ``problem`` (never raised here)."""
    key = take.take_id
    meta = metadata = topology = None
    problem = None
    try:
        meta = read_meta_json(take.meta) if take.meta is not None else None
        metadata = take_metadata(key, manifest, meta, take.meta)
        try:
            topology = detect_topology(take, meta)
        except (OSError, ValueError) as exc:
            raise TakeError(f"take {key} ({take.mesh_paths[0]}): cannot tell its topology: {exc}") from None
    except MMFace4DError as exc:
        problem = str(exc) if str(exc).startswith(f"take {key}") else f"take {key}: {exc}"
    return TakeSource(
        key=key,
        take=take,
        metadata=metadata,
        topology=topology,
        meta=meta,
        problem=problem,
        raw=raw,
        duration_tolerance_s=duration_tolerance_s,
    )


def discover_takes(root: Path) -> tuple[list, dict[str, str]]:
    """The complete takes under ``root`` and, by take id, why each incomplete one cannot be read.

    Through ``official.scan_takes``, which walks the tree like ``find_takes`` without raising, so that
    ``--on-error skip`` can leave an incomplete take out. What concerns no single take (a stray
    ``.nut``, a take id found in two folders) raises :class:`SourceError` listing every such problem.
    """
    scan = official.scan_takes(root)
    if scan.other_problems:
        listed = "\n  ".join(scan.other_problems[:30])
        more = f"\n  ... and {len(scan.other_problems) - 30} more" if len(scan.other_problems) > 30 else ""
        raise SourceError(f"{root}: {len(scan.other_problems)} problem(s) with the source folder:\n  {listed}{more}")
    return list(scan.takes), {take_id: "; ".join(reasons) for take_id, reasons in scan.problems.items()}


def scan_source(
    root: str | os.PathLike,
    *,
    manifest: str | os.PathLike | None = None,
    bfm_info: str | os.PathLike | None = None,
    raw: bool = True,
    duration_tolerance_s: float = DEFAULT_DURATION_TOLERANCE_S,
    progress: bool = False,
) -> SourcePlan:
    """Find the takes under ``root`` and make them sources for the release writer.

    ``manifest``: a CSV (take_id,subject_id,sentence_id,text,gender,age) whose rows win over the
    takes' meta.json. ``bfm_info``: the BFM ``facemodel_info.mat`` for bfm_front takes (default:
    searched next to the source, see :func:`find_bfm_info`). ``raw``: read intrinsics, extrinsics
    and landmarks for the ``raw`` config. ``progress``: a tqdm bar over the takes being scanned.

    Raises :class:`SourceError` when ``root`` holds no take or a stray file, a take id appears twice,
    the takes mix topologies (naming the takes of each), or no take can be built at all; per-take problems
    are kept for the writer (see the module docstring).
    """
    root = Path(root)
    if not root.is_dir():
        raise SourceError(f"{root}: not a folder")
    takes, incomplete = discover_takes(root)
    if not takes and not incomplete:
        raise SourceError(
            f"{root}: no take found (expected ID.wav with ID_filt_{{0,1,2}}.nut, or a folder per take with reconstruct_filt_{{0,1,2}}.nut)"
        )
    rows = read_manifest(manifest) if manifest is not None else None
    if progress:
        from tqdm.auto import tqdm

        takes_to_scan = tqdm(takes, desc="mmface4d build: scan takes", unit="take")
    else:
        takes_to_scan = takes
    sources = [_scan_take(t, rows, raw=raw, duration_tolerance_s=duration_tolerance_s) for t in takes_to_scan]
    sources += [TakeSource(key=key, take=None, metadata=None, topology=None, problem=problem) for key, problem in incomplete.items()]
    sources.sort(key=lambda s: s.key)

    by_topology: dict[str, list[str]] = defaultdict(list)
    for source in sources:
        if source.problem is None:
            by_topology[source.topology].append(source.key)
    if len(by_topology) > 1:
        listed = "; ".join(f"{name}: {_first(keys)}" for name, keys in sorted(by_topology.items()))
        raise SourceError(f"{root}: the takes mix topologies, a release has one ({listed})")
    if not by_topology:
        problems = "\n  ".join(s.problem for s in sources[:20])
        raise SourceError(f"{root}: none of the {len(sources)} take(s) can be built:\n  {problems}")
    (name,) = by_topology
    found = {s.key for s in sources}
    unmatched = sorted(set(rows) - found) if rows is not None else []
    return SourcePlan(
        root=root, sources=sources, topology=topology_info(name, root=root, takes=takes, bfm_info=bfm_info), manifest_unmatched=unmatched
    )


def _first(keys: list[str], limit: int = 10) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
