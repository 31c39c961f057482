"""Many take folders -> fitted mesh sequences in one output folder: what ``mmface4d reconstruct`` runs.

:func:`reconstruct_folders` fits each take in turn with :func:`reconstruction.pipeline.reconstruct_take`
(one tqdm bar per take) and writes it with :func:`~reconstruction.pipeline.write_reconstruction`. A take
already in the output folder is skipped unless ``overwrite``; a take that cannot be fitted is logged
(``error: ...``, a warning of this module's logger) and listed in the result, and the others go on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.vocabulary import BFM_NUM_VERTICES, BFM_TOPOLOGY, parse_synthetic_topology

#: Vertex count of the embedded model when neither the take's meta nor the caller names one.
DEFAULT_VERTICES = BFM_NUM_VERTICES
_log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    """What :func:`reconstruct_folders` did: take ids written and skipped (already in ``out``), and the
    error of every take that failed."""

    out: Path
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def model_for(face_model: Sequence[str], vertices: int | None, take_meta: dict, cache: dict):
    """The face model ``face_model`` names (``["default"]`` or ``["bfm", PATH]``) for a take whose
    ``meta.json`` is ``take_meta``; the embedded model's vertex count is ``vertices``, else the take's
    ``topology``, else :data:`DEFAULT_VERTICES`. Models are kept in ``cache`` across takes."""
    from mmface4d_datasets.errors import MMFace4DError
    from mmface4d_datasets.facemodel import load_face_model

    name = face_model[0]
    if name == "bfm":
        if len(face_model) != 2:
            raise MMFace4DError("--face-model bfm needs the folder of the BFM files: --face-model bfm PATH")
        key = ("bfm", face_model[1])
        if key not in cache:
            cache[key] = load_face_model("bfm", folder=face_model[1])
        return cache[key]
    if name not in ("default", "synthetic", "embedded") or len(face_model) != 1:
        raise MMFace4DError(f"unknown --face-model {' '.join(face_model)!r}; use 'default' or 'bfm PATH'")
    n = vertices
    topology = take_meta.get("topology")
    if topology not in (None, ""):  # a name the face model cannot make is refused, not replaced by the default
        if topology == BFM_TOPOLOGY:
            raise MMFace4DError(f"take meta topology {topology!r} needs the BFM model: --face-model bfm PATH")
        try:
            named = parse_synthetic_topology(str(topology))
        except FormatError as exc:
            raise MMFace4DError(f"take meta.json: {exc}") from None
        n = named if n is None else n
    if n is None:
        n = DEFAULT_VERTICES
    if n not in cache:
        cache[n] = load_face_model("default", num_vertices=n)
    return cache[n]


def reconstruct_folders(
    takes: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    face_model: Sequence[str] = ("default",),
    vertices: int | None = None,
    cameras: tuple[int, ...] = (0, 1, 2),
    smoothing: bool = True,
    stage3: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> BatchResult:
    """Fit every take folder of ``takes`` into ``out`` (new, empty or made by this command:
    :func:`reconstruction.pipeline.prepare_output`). See the module docstring."""
    from tqdm import tqdm

    from mmface4d_datasets.errors import MMFace4DError
    from reconstruction.pipeline import Options, prepare_output, reconstruct_take, write_reconstruction
    from reconstruction.take_input import read_take_input

    out = prepare_output(out)
    result = BatchResult(out=out)
    options = Options(smoothing=smoothing, stage3=stage3, cameras=tuple(cameras))
    cache: dict = {}
    for folder in takes:
        try:
            take = read_take_input(folder)
            if (out / take.take_id).exists() and not overwrite:
                result.skipped.append(take.take_id)
                continue
            model = model_for(face_model, vertices, take.meta, cache)
            bar = tqdm(total=take.num_frames, desc=f"take {take.take_id}", unit="frame", disable=not progress)
            try:
                fitted = reconstruct_take(take, model, options, bar)
            finally:
                bar.close()
            write_reconstruction(out, take, fitted)
            result.written.append(take.take_id)
        except MMFace4DError as exc:
            result.failed.append(str(exc))
            _log.warning("error: %s", exc)
    return result
