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
(:class:`AnimationModel`). :func:`iter_protocol_inputs` builds the inputs from a release.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from mmface4d_datasets.errors import FormatError, MMFace4DError
from mmface4d_datasets.release.schema import EMOTION_NAMES

if TYPE_CHECKING:  # the reader pulls in pyarrow; only needed at call time
    from mmface4d_datasets.release import Release

#: Sample rate of ``ProtocolInputs.audio`` (Hz).
SAMPLE_RATE = 16000
#: Frame rate of every mesh sequence (frames per second).
FPS = 30


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


class PredictionError(MMFace4DError):
    """A model returned an array that does not fit the sequence it was asked for."""


def check_prediction(inputs: ProtocolInputs, prediction: Any, model_name: str = "model") -> np.ndarray:
    """Return ``prediction`` as a C-contiguous float32 (T, N, 3) array, or raise PredictionError.

    T and N must equal ``inputs.num_frames`` and ``inputs.num_vertices``; values must be finite.
    """
    array = np.ascontiguousarray(np.asarray(prediction), dtype=np.float32)
    expected = (inputs.num_frames, inputs.num_vertices, 3)
    if array.shape != expected:
        raise PredictionError(
            f"{model_name} returned shape {array.shape} for {inputs.id}; expected {expected}"
        )
    if not np.isfinite(array).all():
        raise PredictionError(f"{model_name} returned non-finite values for {inputs.id}")
    return array


def _mono_16k(audio: Any, record_id: str) -> np.ndarray:
    """The record's audio as float32 mono samples at 16 kHz (resampled polyphase if needed)."""
    if isinstance(audio, dict):
        samples, rate = audio.get("array"), audio.get("sampling_rate")
    else:
        raise FormatError(f"record {record_id}: audio is not decoded (got {type(audio).__name__})")
    if samples is None or rate is None:
        raise FormatError(f"record {record_id}: audio lacks 'array' or 'sampling_rate'")
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:  # (S, C): average the channels
        samples = samples.mean(axis=1, dtype=np.float32)
    rate = int(rate)
    if rate != SAMPLE_RATE:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(rate, SAMPLE_RATE)
        samples = resample_poly(samples, SAMPLE_RATE // g, rate // g).astype(np.float32)
    return np.ascontiguousarray(samples)


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
        raise MMFace4DError(
            f"record {record_id}: style reference {style_record['id']} belongs to another subject"
        )
    style_vertices = np.ascontiguousarray(style_record["vertices"], dtype=np.float32)
    template = np.ascontiguousarray(template, dtype=np.float32)
    return ProtocolInputs(
        id=record_id,
        audio=_mono_16k(record["audio"], record_id),
        sample_rate=SAMPLE_RATE,
        num_frames=int(record["num_frames"]),
        template=template,
        style_reference_id=str(style_record["id"]),
        style_vertices=style_vertices,
        style_audio=_mono_16k(style_record["audio"], str(style_record["id"])),
        subject_id=str(record["subject_id"]),
        emotion=emotion_name(record.get("emotion")),
        fps=int(record.get("fps") or FPS),
        topology=str(record.get("topology") or topology),
    )


def iter_protocol_inputs(release: "Release", split: str = "test") -> Iterator[tuple[ProtocolInputs, dict]]:
    """Stream ``(inputs, ground_truth_record)`` for every sequence of ``split``, one at a time.

    The ground-truth record is returned beside the inputs for the scorer only; the model gets
    ``inputs``. Style references come from ``release.style_reference(id)`` (the frozen manifest).
    Templates are read once. Raises MMFace4DError when a subject has no template.
    """
    templates = release.templates()
    topology = str(release.info.get("topology", ""))
    for record in release.iter_records(split):
        record_id = str(record["id"])
        subject = str(record["subject_id"])
        if subject not in templates:
            raise MMFace4DError(f"release {release.path}: no template for subject {subject} (record {record_id})")
        style_record = release.record(release.style_reference(record_id))
        yield inputs_from_records(record, style_record, templates[subject], topology), record
