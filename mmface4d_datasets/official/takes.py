"""Take discovery: which files make a take (DESIGN.md, Takes) and finding them in a folder tree.

`Take` holds a take's paths (nothing is decoded until asked); `find_takes` walks a tree and raises all
problems together, `scan_takes` returns them instead, `read_take` reads one take's folder. Reading and
writing takes stays in the core: the rig writes takes, the reconstruction reads them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.official.audio import read_audio
from mmface4d_datasets.official.mesh import AXES, mesh_axis_paths, read_mesh_sequence


@dataclass(frozen=True)
class Take:
    """The files of one take (DESIGN.md, Takes). Paths only; nothing is decoded until asked.

    ``mesh_prefix``: the mesh files are ``f"{mesh_prefix}_{a}.nut"`` for a = 0, 1, 2 (x, y, z).
    ``calibrations`` / ``landmarks``: camera index (0, 1, 2) -> file, possibly empty.
    ``meta`` (``ID.meta.json``) and ``ground_truth`` (``ID.gt.npz``, synthetic takes) may be None.
    ``depth_videos`` / ``colour_videos``: camera index -> ``ID_c.nut`` / ``ID_c.mp4`` of a rig take
    (read with :mod:`mmface4d_datasets.take_files`), possibly empty.
    """

    take_id: str
    folder: Path
    audio: Path
    mesh_prefix: Path
    calibrations: dict[int, Path] = field(default_factory=dict)
    landmarks: dict[int, Path] = field(default_factory=dict)
    meta: Path | None = None
    ground_truth: Path | None = None
    depth_videos: dict[int, Path] = field(default_factory=dict)
    colour_videos: dict[int, Path] = field(default_factory=dict)

    def __hash__(self) -> int:
        # the dict fields are unhashable; a take is identified by its id and folder
        return hash((self.take_id, self.folder))

    @property
    def mesh_paths(self) -> list[Path]:
        """The three axis files x, y, z."""
        return mesh_axis_paths(self.mesh_prefix)

    def vertices(self, num_vertices: int) -> np.ndarray:
        """The decoded mesh sequence (T, N, 3) float32, metres (see :func:`read_mesh_sequence`)."""
        return read_mesh_sequence(self.mesh_prefix, num_vertices)

    def read_audio(self) -> tuple[np.ndarray, int]:
        """The take's speech (float32 samples, 16000); see :func:`read_audio`."""
        return read_audio(self.audio)


_TAKE_ID = r"(?P<id>[0-9]{6})"
_CAMERA = r"(?P<index>[0-2])"
# (kind, pattern) of every file name that belongs to a take; the first match decides.
_TAKE_FILE_PATTERNS = [
    ("audio", re.compile(rf"{_TAKE_ID}\.wav")),
    ("mesh", re.compile(rf"{_TAKE_ID}_filt_{_CAMERA}\.nut")),
    ("calibration", re.compile(rf"{_TAKE_ID}_{_CAMERA}\.json")),
    ("landmarks", re.compile(rf"{_TAKE_ID}_{_CAMERA}\.pkl")),
    ("landmarks", re.compile(rf"{_TAKE_ID}_{_CAMERA}\.landmarks\.npy")),
    ("camera_video", re.compile(rf"{_TAKE_ID}_{_CAMERA}\.(mp4|nut)")),
    ("meta", re.compile(rf"{_TAKE_ID}\.meta\.json")),
    ("ground_truth", re.compile(rf"{_TAKE_ID}\.gt\.npz")),
]
# A one-take folder's mesh files carry no take id (as in the authors' sample take).
_PER_TAKE_MESH = re.compile(rf"reconstruct_filt_{_CAMERA}\.nut")
_STARTS_WITH_TAKE_ID = re.compile(rf"{_TAKE_ID}[._]")


class _TakeFiles:
    """What one folder holds for one take id while the folder is being scanned."""

    def __init__(self, take_id: str, meshes: bool = True):
        self.take_id = take_id
        self.meshes = meshes
        self.videos: dict[str, dict[int, Path]] = {".nut": {}, ".mp4": {}}
        self.audio: Path | None = None
        self.mesh: dict[int, Path] = {}
        self.reconstruct_mesh: dict[int, Path] = {}
        self.calibrations: dict[int, Path] = {}
        self.landmarks: dict[int, Path] = {}
        self.meta: Path | None = None
        self.ground_truth: Path | None = None
        self.problems: list[str] = []

    def add(self, kind: str, index: int | None, path: Path) -> None:
        if kind in ("audio", "meta", "ground_truth"):
            setattr(self, kind, path)
        elif kind == "mesh":
            self.mesh[index] = path
        elif kind == "calibration":
            self.calibrations[index] = path
        elif kind == "camera_video":
            self.videos[path.suffix][index] = path
        elif kind == "landmarks":
            if index in self.landmarks:
                self.problems.append(f"camera {index} has two landmark files, {self.landmarks[index].name} and {path.name}")
            self.landmarks[index] = path

    def finish(self, folder: Path) -> Take | None:
        """The Take, or None with the reasons appended to ``problems``."""
        if self.mesh and self.reconstruct_mesh:
            self.problems.append(
                "both ID_filt_*.nut and reconstruct_filt_*.nut mesh files: "
                + ", ".join(p.name for p in [*self.mesh.values(), *self.reconstruct_mesh.values()])
            )
        axes = self.mesh or self.reconstruct_mesh
        prefix = folder / (f"{self.take_id}_filt" if self.mesh or not self.reconstruct_mesh else "reconstruct_filt")
        if self.audio is None:
            self.problems.append(f"missing {self.take_id}.wav")
        missing_axes = [a for a in range(len(AXES)) if a not in axes]
        if missing_axes and (self.meshes or axes):
            self.problems.append("missing " + ", ".join(f"{prefix.name}_{a}.nut" for a in missing_axes))
        if self.problems:
            return None
        return Take(
            take_id=self.take_id,
            folder=folder,
            audio=self.audio,
            mesh_prefix=prefix,
            calibrations=dict(sorted(self.calibrations.items())),
            landmarks=dict(sorted(self.landmarks.items())),
            meta=self.meta,
            ground_truth=self.ground_truth,
            depth_videos=dict(sorted(self.videos[".nut"].items())),
            colour_videos=dict(sorted(self.videos[".mp4"].items())),
        )


def _scan_folder(folder: Path, names: list[str], meshes: bool = True) -> tuple[dict[str, Take], dict[str, list[str]], list[str]]:
    """Group one folder's files by take (not recursive).

    Returns (takes by id, problems by take id, problems of the folder itself).
    Files that name no take and are no ``.nut`` (README.md, bfm_faces.pkl, ...) are ignored.
    """
    files: dict[str, _TakeFiles] = {}
    per_take_mesh: dict[int, Path] = {}
    folder_problems: list[str] = []
    for name in sorted(names):
        path = folder / name
        match = _PER_TAKE_MESH.fullmatch(name)
        if match:
            per_take_mesh[int(match["index"])] = path
            continue
        for kind, pattern in _TAKE_FILE_PATTERNS:
            match = pattern.fullmatch(name)
            if match:
                files.setdefault(match["id"], _TakeFiles(match["id"], meshes)).add(
                    kind, int(match["index"]) if "index" in pattern.groupindex else None, path
                )
                break
        else:
            match = _STARTS_WITH_TAKE_ID.match(name)
            if match:
                files.setdefault(match["id"], _TakeFiles(match["id"], meshes)).problems.append(f"unexpected file {name}")
            elif name.endswith(".nut"):
                folder_problems.append(f"unexpected file {name} (a .nut that is no mesh axis or camera video)")
    if per_take_mesh:
        if len(files) == 1:
            next(iter(files.values())).reconstruct_mesh = per_take_mesh
        else:
            found = ", ".join(sorted(files)) or "none"
            folder_problems.append(
                f"reconstruct_filt_*.nut needs exactly one take in its folder (named by its ID.wav); take ids found: {found}"
            )
    takes: dict[str, Take] = {}
    problems: dict[str, list[str]] = {}
    for take_id, take_files in files.items():
        take = take_files.finish(folder)
        if take is None:
            problems[take_id] = take_files.problems
        else:
            takes[take_id] = take
    return takes, problems, folder_problems


def _problem_report(header: str, problems: list[str], limit: int = 30) -> str:
    shown = problems[:limit]
    more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
    return header + "\n  " + "\n  ".join(shown) + more


@dataclass(frozen=True)
class TakeScan:
    """What :func:`scan_takes` found: the complete takes and every problem, nothing raised.

    ``problems`` maps a take id to the reasons that take was left out (missing, unexpected or
    conflicting files), each a line ``"{folder}: take {id}: {reason}"``; ``other_problems`` lists what concerns
    no single take (a stray ``.nut``, a one-take folder holding several ids, a take id in two folders).
    """

    takes: list[Take]
    problems: dict[str, list[str]]
    other_problems: list[str]

    def all_problems(self) -> list[str]:
        """Every problem as one line, take problems first (sorted by take id)."""
        return [line for take_id in sorted(self.problems) for line in self.problems[take_id]] + self.other_problems


def scan_takes(root: str | os.PathLike, *, meshes: bool = True) -> TakeScan:
    """Walk ``root`` like :func:`find_takes` but return the problems instead of raising.

    For callers that want to go on without the incomplete takes (e.g. a builder's ``--on-error
    skip``). A take id found in two folders is an ``other_problem`` and both copies are left out.
    """
    root = Path(root)
    if not root.is_dir():
        raise FormatError(f"{root}: no such folder")
    takes: dict[str, Take] = {}
    problems: dict[str, list[str]] = {}
    other: list[str] = []
    duplicated: set[str] = set()
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        folder = Path(folder)
        found, take_problems, folder_problems = _scan_folder(folder, filenames, meshes)
        other += [f"{folder}: {p}" for p in folder_problems]
        for take_id, reasons in take_problems.items():
            problems.setdefault(take_id, []).extend(f"{folder}: take {take_id}: {reason}" for reason in reasons)
        for take_id, take in found.items():
            if take_id in takes:
                other.append(f"take {take_id} appears twice: in {takes[take_id].folder} and in {folder}")
                duplicated.add(take_id)
            else:
                takes[take_id] = take
    return TakeScan(
        takes=[takes[t] for t in sorted(takes) if t not in duplicated and t not in problems],
        problems={t: problems[t] for t in sorted(problems)},
        other_problems=other,
    )


def find_takes(root: str | os.PathLike, *, meshes: bool = True) -> list[Take]:
    """Every take under ``root``, sorted by take id (DESIGN.md, Takes).

    ``root`` is walked recursively (hidden folders skipped, symlinked folders not followed). A folder
    is FLAT (takes side by side, mesh files ``ID_filt_a.nut``) or holds ONE TAKE whose mesh files may
    be ``reconstruct_filt_a.nut`` (its id from the ``ID.wav`` name). A take needs ``ID.wav`` and all
    three mesh axes; calibrations, landmarks, ``ID.meta.json`` and ``ID.gt.npz`` are optional.
    Unexpected files are those whose name starts with a take id but match no known name (e.g.
    ``ID_3.json``, ``ID_filt_3.nut``) and ``.nut`` files that are neither mesh axes nor camera videos;
    other files (README.md, bfm_faces.pkl, ...) are ignored. All problems of the tree (missing files,
    unexpected files, a take id found in two folders) are raised together as one FormatError that
    names each file. An existing tree without takes gives an empty list. :func:`scan_takes` returns
    the problems instead. ``meshes=False`` also accepts rig takes without meshes (``mmface4d rig
    convert`` / ``rig simulate``: ``ID_c.nut`` depth and ``ID_c.mp4`` colour videos instead); a take
    with only some of the three axes is still a problem.
    """
    scan = scan_takes(root, meshes=meshes)
    problems = scan.all_problems()
    if problems:
        raise FormatError(_problem_report(f"{root}: {len(problems)} problem(s) with the takes found:", problems))
    return scan.takes


def read_take(path: str | os.PathLike, take_id: str | None = None, *, meshes: bool = True) -> Take:
    """One take from a folder (not recursive), or from the path of one of its files.

    With ``take_id`` None the folder must hold exactly one take (a file path names its take when
    its name starts with the id). Raises FormatError naming the folder and every missing or
    unexpected file of that take; problems of other takes in a flat folder are not this take's.
    ``meshes=False`` accepts a rig take without meshes (see :func:`find_takes`).
    """
    path = Path(path)
    if path.is_file():
        match = _STARTS_WITH_TAKE_ID.match(path.name)
        if take_id is None and match:
            take_id = match["id"]
        path = path.parent
    if not path.is_dir():
        raise FormatError(f"{path}: no such take folder")
    takes, take_problems, folder_problems = _scan_folder(path, [p.name for p in path.iterdir() if p.is_file()], meshes)
    if take_id is None:
        ids = sorted({*takes, *take_problems})
        if len(ids) != 1:
            raise FormatError(f"{path}: holds {len(ids)} takes ({', '.join(ids) or 'none'}); pass take_id to choose one")
        take_id = ids[0]
    reasons = take_problems.get(take_id, []) + folder_problems
    if reasons:
        raise FormatError(_problem_report(f"{path}: take {take_id}: {len(reasons)} problem(s):", reasons))
    if take_id not in takes:
        raise FormatError(f"{path}: no take {take_id} here (takes: {', '.join(sorted(takes)) or 'none'})")
    return takes[take_id]
