"""The rules a take passes on its way into a release, whatever it came from (a take folder in the
authors' layout, our rig, the synthetic generator): its metadata fields, the agreement of its mesh
and audio durations and the camera transforms of its ``meta.json`` (DESIGN.md, Takes).

The builders' take scanner (``builders.sources``) and the synthetic source
(:mod:`mmface4d_datasets.release.synthetic_source`, which the core's mini release uses) both apply
them, so a take is held to the same rules by every path into a release.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmface4d_datasets.errors import FormatError, MMFace4DError
from mmface4d_datasets.release.schema import EMOTION_NAMES, emotion_of

#: Largest accepted difference between the mesh duration (T / fps) and the audio duration, seconds.
DEFAULT_DURATION_TOLERANCE_S = 0.1


class TakeError(MMFace4DError):
    """One take is bad; the message starts with ``take <id>`` and names the file concerned."""


class MetadataError(MMFace4DError):
    """A take's metadata is missing or wrong (names the take and the source of its metadata)."""


@dataclass(frozen=True)
class TakeMetadata:
    """The record fields that come from metadata rather than from the take's data files."""

    take_id: str
    subject_id: str
    sentence_id: str
    emotion: str
    text: str | None
    gender: str | None
    age: int | None
    source: str  # where these fields came from: the CSV (with its line) or the meta.json path


def emotion_of_sentence(sentence_id: str, *, where: str) -> str:
    """The emotion name carried by the two-digit prefix of ``sentence_id`` (the core's rule).

    ``where`` names the take (and file) for the error raised on an unknown prefix.
    """
    try:
        return EMOTION_NAMES[emotion_of(sentence_id, where=where)]
    except FormatError as exc:  # re-raised as a metadata error: the file is fine, its content is not
        raise MetadataError(str(exc)) from None


def _optional_text(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _optional_age(value, *, where: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise MetadataError(f"{where}: age {value!r} is not a whole number of years")
    if isinstance(value, int):
        age = value
    elif isinstance(value, float) and value.is_integer():
        age = int(value)
    else:
        try:
            age = int(str(value).strip())
        except ValueError:
            raise MetadataError(f"{where}: age {value!r} is not a whole number of years") from None
    if not 0 <= age < 150:
        raise MetadataError(f"{where}: age {age} is out of range (0..149)")
    return age


def subject_id_problem(subject_id: str) -> str | None:
    """Why ``subject_id`` cannot name a subject (it becomes part of record ids and of file paths
    of predictions, ``<subject_id>/<take_id>.npy``), or None when it can."""
    if "/" in subject_id or "\\" in subject_id:
        return "must not contain '/' or '\\' (record ids are subject/take)"
    if subject_id in (".", ".."):
        return "is a path step ('.' or '..'), not a name"
    if any(ord(c) < 32 or 127 <= ord(c) < 160 or c in "\u2028\u2029" for c in subject_id):
        return "holds a control character"
    return None


def metadata_from_fields(take_id: str, fields: dict, *, source: str) -> TakeMetadata:
    """Check and normalise one take's fields (a CSV row or a meta.json object)."""
    where = f"take {take_id} ({source})"
    subject_id = _optional_text(fields.get("subject_id"))
    if subject_id is None:
        raise MetadataError(f"{where}: subject_id is missing; every take needs one (give a manifest CSV with --manifest)")
    problem = subject_id_problem(subject_id)
    if problem:
        raise MetadataError(f"{where}: subject_id {subject_id!r} {problem}")
    sentence_id = _optional_text(fields.get("sentence_id"))
    if sentence_id is None:
        raise MetadataError(f"{where}: sentence_id is missing; the emotion is read from its prefix")
    return TakeMetadata(
        take_id=take_id,
        subject_id=subject_id,
        sentence_id=sentence_id,
        emotion=emotion_of_sentence(sentence_id, where=where),
        text=_optional_text(fields.get("text")),
        gender=_optional_text(fields.get("gender")),
        age=_optional_age(fields.get("age"), where=where),
        source=source,
    )


def check_durations(
    num_frames: int, fps: int, num_samples: int, sample_rate: int, tolerance_s: float = DEFAULT_DURATION_TOLERANCE_S
) -> None:
    """Raise ``ValueError`` unless ``|num_frames / fps - num_samples / sample_rate| <= tolerance_s``."""
    mesh_s, audio_s = num_frames / fps, num_samples / sample_rate
    if abs(mesh_s - audio_s) > tolerance_s:
        raise ValueError(
            f"{num_frames} mesh frames last {mesh_s:.3f} s at {fps} fps but the audio lasts "
            f"{audio_s:.3f} s ({num_samples} samples at {sample_rate} Hz); they may differ by at "
            f"most {tolerance_s:g} s"
        )


#: Conventions a meta.json may name for its camera transforms, and whether they must be inverted to
#: give the release's convention (camera c -> reference camera 1: x_1 = E x_c).
_EXTRINSICS_CONVENTIONS = {"camera-c-from-camera-1": True, "camera-1-from-camera-c": False}


def extrinsics_from_meta(meta: dict | None) -> dict[int, np.ndarray]:
    """Camera transforms of a take's meta.json, as the release stores them: camera c -> camera 1.

    Two forms are read: ``{"extrinsics": {"0": 4x4, ...}}`` (already camera c -> camera 1), or our
    rig's and simulator's ``{"extrinsics": {"reference_camera": 1, "convention": "...", "cameras":
    {"0": 4x4, ...}}}`` whose convention string names ``camera-c-from-camera-1`` (inverted here) or
    ``camera-1-from-camera-c``. Returns {} when there are none; raises ``ValueError`` for a matrix
    that is not a finite 4x4, another reference camera or an unknown convention.
    """
    found = (meta or {}).get("extrinsics") or {}
    if not isinstance(found, dict):
        raise ValueError(f"expected an object, found {type(found).__name__}")
    invert = False
    if "cameras" in found:
        if int(found.get("reference_camera", 1)) != 1:
            raise ValueError(f"reference_camera is {found.get('reference_camera')}, the release's reference is camera 1")
        convention = str(found.get("convention", ""))
        named = [name for name in _EXTRINSICS_CONVENTIONS if name in convention]
        if len(named) != 1:
            raise ValueError(f"convention {convention!r} names neither of {', '.join(_EXTRINSICS_CONVENTIONS)}")
        invert = _EXTRINSICS_CONVENTIONS[named[0]]
        found = found["cameras"] or {}
    out = {}
    for camera, matrix in sorted(found.items(), key=lambda item: int(item[0])):
        array = np.asarray(matrix, dtype=np.float64)
        if array.shape != (4, 4) or not np.isfinite(array).all():
            raise ValueError(f"camera {camera} is not a finite 4x4 matrix (shape {array.shape})")
        out[int(camera)] = np.linalg.inv(array) if invert else array
    return out
