"""The benchmark protocol: what a model may see for one test sequence, and the model interface.

Per test sequence a model gets exactly:

- the sequence's speech audio (float32 samples at 16 kHz, mono),
- the number of frames to produce (30 fps, equal to the ground truth's),
- the neutral template of the speaker (N, 3) in the canonical head frame, metres,
- the style reference frozen in the release's ``meta/splits.json``: ONE OTHER sequence of the
  same test subject (its vertices (T', N, 3) and its audio), never the target,
- the subject id and the sentence's emotion label.

It never gets the target vertices. The authors' own evaluation script fed the target sequence
(or picked, among training sequences, the one with the smallest ground-truth error) as the style
input, which lets the ground truth leak into the prediction; this protocol fixes the reference
in the split manifest before any model is run.

A model is anything with a ``name`` and a ``predict(inputs) -> (T, N, 3) float32`` method
(:class:`AnimationModel`). :func:`iter_protocol_inputs` builds the inputs from a release and
:func:`write_predictions` runs a model over a split into a submission file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from mmface4d_datasets.vocabulary import EMOTION_NAMES, FPS, SAMPLE_RATE
from mmface4d_datasets.errors import FormatError, MMFace4DError

if TYPE_CHECKING:  # the reader pulls in pyarrow; only needed at call time
    from mmface4d_datasets.release import Release


@dataclass(frozen=True, eq=False)
class ProtocolInputs:
    """Everything a model may use to animate one test sequence (never the target vertices).

    Attributes:
        id: the test sequence's record id (``{subject_id}/{take_id}``).
        audio: (S,) float32 speech samples at ``sample_rate`` Hz, mono.
        sample_rate: always :data:`SAMPLE_RATE` (16,000 Hz).
        num_frames: T, the number of frames the prediction must have (30 fps).
        template: (N, 3) float32, the subject's neutral template, canonical head frame, metres.
        style_reference_id: id of the style reference (another sequence of the same subject).
        style_vertices: (T', N, 3) float32, the style reference's vertices, canonical frame, metres.
        style_audio: (S',) float32 samples of the style reference at ``sample_rate`` Hz.
        subject_id: the speaker's identity (a test identity: never seen in training).
        emotion: the sentence's emotion name (neutral, happy, angry, sad, surprise, fear, disgust).
        fps: frames per second of ``num_frames`` (30).
        topology: the mesh topology name (``bfm_front`` or ``synthetic_v1@<N>``).
    """

    id: str
    audio: np.ndarray
    sample_rate: int
    num_frames: int
    template: np.ndarray
    style_reference_id: str
    style_vertices: np.ndarray
    style_audio: np.ndarray
    subject_id: str
    emotion: str
    fps: int = FPS
    topology: str = ""

    @property
    def num_vertices(self) -> int:
        """N, the vertex count of the template (and of the prediction)."""
        return int(self.template.shape[0])


@runtime_checkable
class AnimationModel(Protocol):
    """A speech-driven face animation model under the benchmark protocol.

    ``predict`` returns a (inputs.num_frames, inputs.num_vertices, 3) float32 array in the
    canonical head frame of the subject, metres. It must not read anything of the test split
    beyond ``inputs``.
    """

    name: str

    def predict(self, inputs: ProtocolInputs) -> np.ndarray: ...


# A model may also state which inputs it reads (a subset of benchmark.submission.PROTOCOL_INPUTS)
# in an ``inputs`` attribute; the submission header records it (all protocol inputs when absent).


class PredictionError(MMFace4DError):
    """A model returned an array that does not fit the sequence it was asked for."""


def check_prediction(inputs: ProtocolInputs, prediction: Any, model_name: str = "model") -> np.ndarray:
    """Return ``prediction`` as a C-contiguous float32 (T, N, 3) array, or raise PredictionError.

    T and N must equal ``inputs.num_frames`` and ``inputs.num_vertices``; values must be finite.
    """
    array = np.ascontiguousarray(np.asarray(prediction), dtype=np.float32)
    expected = (inputs.num_frames, inputs.num_vertices, 3)
    if array.shape != expected:
        raise PredictionError(f"{model_name} returned shape {array.shape} for {inputs.id}; expected {expected}")
    if not np.isfinite(array).all():
        raise PredictionError(f"{model_name} returned non-finite values for {inputs.id}")
    return array


def record_audio_16k(audio: Any, record_id: str) -> np.ndarray:
    """The record's audio as float32 mono samples at 16 kHz.

    Accepts a decoded ``{"array", "sampling_rate"}`` dict or the stored WAV/FLAC bytes (a record
    read with ``decode=False``); other rates are resampled (polyphase, the core's resampler).
    """
    from mmface4d_datasets.release.audio import resample
    from mmface4d_datasets.release.rows import decode_row

    if isinstance(audio, (bytes, bytearray, memoryview)):
        decoded = decode_row({"audio": audio}, "default", where=f"record {record_id}")["audio"]
        samples, rate = decoded["array"], decoded["sampling_rate"]
    elif isinstance(audio, dict) and audio.get("array") is not None and audio.get("sampling_rate"):
        samples, rate = audio["array"], audio["sampling_rate"]
    else:
        raise FormatError(f"record {record_id}: audio is neither stored bytes nor a decoded dict (got {type(audio).__name__})")
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise FormatError(f"record {record_id}: audio must be mono, got shape {samples.shape}")
    return np.ascontiguousarray(resample(samples, int(rate), SAMPLE_RATE), dtype=np.float32)


def emotion_name(value: Any) -> str:
    """The emotion as a name: records may carry the ClassLabel integer or the string."""
    if isinstance(value, (int, np.integer)):
        return EMOTION_NAMES[int(value)] if 0 <= int(value) < len(EMOTION_NAMES) else str(int(value))
    return "" if value is None else str(value)


def inputs_from_records(record: dict, style_record: dict, template: np.ndarray, topology: str = "") -> ProtocolInputs:
    """Build :class:`ProtocolInputs` from a decoded test record and its style reference's record.

    Only the target's id, audio, frame count, subject and emotion are read from ``record``;
    its vertices are not passed on.
    """
    record_id = str(record["id"])
    if style_record["id"] == record_id:
        raise MMFace4DError(f"record {record_id}: the style reference must be another sequence, not the target")
    if str(style_record["subject_id"]) != str(record["subject_id"]):
        raise MMFace4DError(f"record {record_id}: style reference {style_record['id']} belongs to another subject")
    style_vertices = np.ascontiguousarray(style_record["vertices"], dtype=np.float32)
    template = np.ascontiguousarray(template, dtype=np.float32)
    return ProtocolInputs(
        id=record_id,
        audio=record_audio_16k(record["audio"], record_id),
        sample_rate=SAMPLE_RATE,
        num_frames=int(record["num_frames"]),
        template=template,
        style_reference_id=str(style_record["id"]),
        style_vertices=style_vertices,
        style_audio=record_audio_16k(style_record["audio"], str(style_record["id"])),
        subject_id=str(record["subject_id"]),
        emotion=emotion_name(record.get("emotion")),
        fps=int(record.get("fps") or FPS),
        topology=str(record.get("topology") or topology),
    )


def iter_protocol_inputs(release: "Release", split: str = "test") -> Iterator[ProtocolInputs]:
    """Stream the :class:`ProtocolInputs` of every sequence of ``split``, one at a time, in id order.

    The target's vertices are never decoded: records are read with ``decode=False`` and only
    their audio is decoded. Style references come from ``release.style_reference(id)`` (the
    manifest frozen in ``meta/splits.json``); templates are read once. Raises MMFace4DError when
    a subject has no template or a sequence has no style reference.
    """
    from mmface4d_datasets.release.rows import decode_row

    templates = release.templates()
    topology = release.info.topology
    for stored in release.iter_records(split, decode=False):
        record_id = str(stored["id"])
        subject = str(stored["subject_id"])
        if subject not in templates:
            raise MMFace4DError(f"release {release.path}: no template for subject {subject} (record {record_id})")
        target = {key: value for key, value in stored.items() if key not in ("vertices", "head_pose")}
        style_id = release.style_reference(record_id)
        style_record = release.record(style_id, decode=False)
        style_record = decode_row(style_record, "default", where=f"release {release.path}: style reference {style_id}")
        yield inputs_from_records(target, style_record, templates[subject], topology)


def write_predictions(
    model: AnimationModel,
    release: "Release",
    path: str | os.PathLike,
    *,
    split: str = "test",
    encoding: str = "codec",
    max_error: float = 1e-5,
    header_extra: dict | None = None,
    progress: bool = False,
) -> Path:
    """Run ``model`` on every sequence of ``split`` under the protocol and write a submission.

    One sequence at a time: inputs built, ``model.predict`` called, the prediction checked
    (:func:`check_prediction`) and appended to the file; the file appears at ``path`` only when
    complete. The header names the model, the inputs of the protocol, the hardware and the
    release's format version and topology, and the model's ``inputs`` attribute when it has one.
    """
    from benchmark.submission import PROTOCOL_INPUTS, SubmissionWriter, make_header

    header = make_header(
        getattr(model, "name", type(model).__name__),
        inputs=getattr(model, "inputs", PROTOCOL_INPUTS),
        release_format_version=release.info.format_version,
        topology=release.info.topology,
        split=split,
        **(header_extra or {}),
    )
    inputs_stream = iter_protocol_inputs(release, split)
    if progress:
        from tqdm import tqdm

        total = (release.info.splits[split].sequences or None) if split in release.info.splits else None
        inputs_stream = tqdm(inputs_stream, total=total, desc=f"{header['model']} on {split}", unit="seq")
    with SubmissionWriter(path, header, encoding=encoding, max_error=max_error) as writer:
        for inputs in inputs_stream:
            prediction = check_prediction(inputs, model.predict(inputs), header["model"])
            writer.add(inputs.id, prediction)
    return Path(path)
