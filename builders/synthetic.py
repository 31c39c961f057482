"""Synthetic takes (the core's generator) -> sources for the release writer.

The generator (``mmface4d_datasets.synthetic.generate_takes``) writes takes in the DESIGN.md layout
(``ID.wav``, ``ID_filt_{0,1,2}.nut``, ``ID.meta.json`` with subject, sentence, text and the topology
``synthetic_v1@N``). They are generated into a work folder, then read back by the same path as the
authors' takes (:func:`builders.sources.scan_source`), so a synthetic release goes through exactly
the checks and the writer a real one does.

Resume: the work folder gets a ``complete.json`` naming the generator's parameters once every take is
written; a rerun with the same parameters reuses the takes instead of generating them again (the
generator is deterministic for its seed, so regenerating would give the same takes, only slower).
Different parameters start the work folder afresh.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from builders.sources import scan_source
from mmface4d_datasets.errors import MMFace4DError

COMPLETE_NAME = "complete.json"


def _parameters(subjects: int, sentences: int, seed: int, num_vertices: int | None) -> dict:
    from mmface4d_datasets import __version__

    # The package version is part of the key: another generator version may make other takes.
    return {"subjects": subjects, "sentences": sentences, "seed": seed, "num_vertices": num_vertices,
            "package_version": __version__}


def generate_work_takes(work_dir: str | os.PathLike, *, subjects: int, sentences: int, seed: int = 0,
                        num_vertices: int | None = None, progress: bool = True) -> Path:
    """Make sure ``work_dir`` holds the takes of these generator parameters; return it.

    Raises :class:`MMFace4DError` for a count below 1.
    """
    if subjects < 1 or sentences < 1:
        raise MMFace4DError(f"--subjects and --sentences must be at least 1 (got {subjects} and {sentences})")
    from mmface4d_datasets.synthetic import generate_takes

    work = Path(work_dir)
    wanted = _parameters(subjects, sentences, seed, num_vertices)
    marker = work / COMPLETE_NAME
    if marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")) == wanted:
                return work
        except (OSError, json.JSONDecodeError):
            pass  # an unreadable marker means: generate again
    if work.exists():
        shutil.rmtree(work)  # takes of other parameters, or an interrupted generation
    work.mkdir(parents=True)
    generate_takes(work, subjects, sentences, seed=seed, num_vertices=num_vertices, progress=progress)
    temporary = marker.with_name(COMPLETE_NAME + ".tmp")
    temporary.write_text(json.dumps(wanted, sort_keys=True), encoding="utf-8")
    os.replace(temporary, marker)
    return work


def synthetic_sources(*, subjects: int, sentences: int, seed: int = 0, num_vertices: int | None = None,
                      work_dir: str | os.PathLike, progress: bool = True):
    """``(sources, topology)`` of ``subjects`` x ``sentences`` synthetic takes, generated in ``work_dir``.

    The sources are :class:`builders.sources.TakeSource` objects, sorted by take id; ``topology`` is
    the ``TopologyInfo`` of ``synthetic_v1@N``.
    """
    work = generate_work_takes(work_dir, subjects=subjects, sentences=sentences, seed=seed,
                               num_vertices=num_vertices, progress=progress)
    plan = scan_source(work, raw=True, progress=progress)
    return plan.sources, plan.topology
