"""Synthetic takes, made in memory by the core's generator, as sources for the release writer.

The one adapter from the generator to the writer: the mini release (:mod:`mmface4d_datasets.release.mini`)
and ``mmface4d build synthetic`` (``builders.build``) both use it.

Take ``(i, j)`` (subject i, sentence j, 0-based) is ``mmface4d_datasets.synthetic.synthesize_take(i,
j, seed, model)``: deterministic, independent of every other take, and cheap (about 0.1 to 0.3 s
each), so a :class:`SyntheticSource` makes its take again whenever the writer loads it instead of
writing take folders to disk. Nothing is quantised on the way: the writer gets the generator's own
float32 camera-frame vertices and float32 audio (stored bit-exact as float WAV bytes).

Each loaded take passes the checks a take from disk passes (:mod:`mmface4d_datasets.release.take_rules`):
metadata (subject, emotion prefix, age) through ``metadata_from_fields`` on the generator's
``meta.json`` content, the mesh/audio duration rule, finite vertices, and, with ``raw``, the
camera extrinsics read with ``extrinsics_from_meta`` into the ``raw`` config.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmface4d_datasets.errors import MMFace4DError
from mmface4d_datasets.release.take_rules import (
    DEFAULT_DURATION_TOLERANCE_S,
    TakeError,
    check_durations,
    extrinsics_from_meta,
    metadata_from_fields,
)

#: The generator's take ids have three digits for the subject and three for the sentence.
MAX_COUNT = 999


@dataclass(frozen=True)
class SyntheticSource:
    """A ``SequenceSource`` for synthetic take ``(subject_index, sentence_index)`` of ``seed``.

    ``raw``: put the generator's camera extrinsics into the ``raw`` config (False: no camera, as the
    mini release has it).
    """

    key: str
    subject_index: int
    sentence_index: int
    seed: int
    model: object  # mmface4d_datasets.facemodel.FaceModel (named expression modes)
    duration_tolerance_s: float = DEFAULT_DURATION_TOLERANCE_S
    raw: bool = True

    def fingerprint(self) -> dict:
        """What the staged copy of this take depends on (the writer's stale-build check)."""
        from mmface4d_datasets.synthetic.takes import GENERATOR_VERSION

        fingerprint = {
            "key": self.key,
            "subject_index": self.subject_index,
            "sentence_index": self.sentence_index,
            "seed": self.seed,
            "topology": self.model.topology,
            "generator_version": GENERATOR_VERSION,
            "duration_tolerance_s": self.duration_tolerance_s,
        }
        # Named only when off, so that the fingerprints of the default (raw) takes stay those of earlier builds.
        return fingerprint if self.raw else fingerprint | {"raw": False}

    def load(self):
        from mmface4d_datasets.release.schema import RawCapture, SourceSequence
        from mmface4d_datasets.synthetic.takes import FPS, synthesize_take

        take = synthesize_take(self.subject_index, self.sentence_index, self.seed, model=self.model)
        meta = take.metadata()
        where = f"synthetic take {take.take_id} (seed {self.seed})"
        metadata = metadata_from_fields(take.take_id, meta, source=where)
        try:
            check_durations(take.num_frames, FPS, take.audio.shape[0], take.sample_rate, self.duration_tolerance_s)
            extrinsics = extrinsics_from_meta(meta) if self.raw else None
        except ValueError as exc:
            raise TakeError(f"take {take.take_id} ({where}): {exc}") from None
        if not np.isfinite(take.vertices).all():
            raise TakeError(f"take {take.take_id} ({where}): the generated vertices hold NaN or infinite values")
        return SourceSequence(
            take_id=take.take_id,
            subject_id=metadata.subject_id,
            sentence_id=metadata.sentence_id,
            vertices=np.ascontiguousarray(take.vertices, dtype=np.float32),
            audio=np.ascontiguousarray(take.audio, dtype=np.float32),
            sample_rate=int(take.sample_rate),
            audio_subtype="FLOAT",
            topology=take.topology,
            fps=FPS,
            text=metadata.text,
            gender=metadata.gender,
            age=metadata.age,
            raw=RawCapture(extrinsics=extrinsics) if self.raw else None,
        )


def synthetic_sources(*, subjects: int, sentences: int, seed: int = 0, num_vertices: int | None = None, raw: bool = True):
    """``(sources, topology)`` for ``subjects`` x ``sentences`` synthetic takes of ``seed``.

    ``sources``: :class:`SyntheticSource` objects sorted by take id; ``topology``: the
    ``TopologyInfo`` of the embedded model ``synthetic_v1@N`` (``num_vertices``, default: the
    model's default size). ``raw``: see :class:`SyntheticSource`. Raises :class:`MMFace4DError` for
    counts outside 1..999, a negative seed or a vertex count the embedded model does not support.
    """
    for name, value in (("subjects", subjects), ("sentences", sentences)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
            raise MMFace4DError(f"--{name} must be a whole number in 1..{MAX_COUNT} (take ids have three digits each), got {value!r}")
    if seed < 0:
        raise MMFace4DError(f"--seed must be >= 0, got {seed}")
    from mmface4d_datasets.facemodel import load_face_model
    from mmface4d_datasets.release.schema import TopologyInfo
    from mmface4d_datasets.synthetic.takes import take_id_of

    model = load_face_model("default", **({} if num_vertices is None else {"num_vertices": int(num_vertices)}))
    sources = [SyntheticSource(take_id_of(i, j), i, j, int(seed), model, raw=raw) for i in range(subjects) for j in range(sentences)]
    sources.sort(key=lambda s: s.key)
    return sources, TopologyInfo.from_face_model(model)
