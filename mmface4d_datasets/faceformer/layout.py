"""Names, roles, option strings and ``templates.pkl`` of the FaceFormer layout (docs/faceformer.md).

Their loaders take the subject of a file ``<name>.npy`` as everything before its LAST underscore and
its "sentence number" as the last two characters of the name, and keep a file for a split only when
its subject is in that split's list AND its number is in the split's range, hard-coded per dataset:

=========  ===========  ===========  ===========
dataset    train        val          test
=========  ===========  ===========  ===========
vocaset    1 .. 40      21 .. 40     21 .. 40
BIWI       1 .. 32      33 .. 36     37 .. 40
=========  ===========  ===========  ===========

So a sequence is named ``<subject>_<take_id>-<NN>`` where NN says its ROLE: a number in 01..32 for
train, 33..36 for val, 37..40 for test (:data:`ROLE_NUMBERS`, chosen inside the range by a CRC-32 of
the take id, so the name depends on nothing else). Those numbers pass both datasets' filters for
their role; val being a set of held-out SUBJECTS (never held-out sentences of train subjects) is what
makes the vocaset filter right too. The record id ``<subject>/<take_id>`` comes back from the name
(:func:`parse_name`), with or without the ``_condition_<train subject>`` their test scripts append.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mmface4d_datasets.errors import FormatError

VERTICES_DIR = "vertices_npy"
WAV_DIR = "wav"
TEMPLATES_FILE = "templates.pkl"
SUBJECTS_DIR = "subjects"
#: Roles of a sequence in their scripts, in order.
ROLES = ("train", "val", "test")
#: The sentence numbers that put a file into each role under both datasets' filters (module docstring).
ROLE_NUMBERS = {"train": tuple(range(1, 33)), "val": tuple(range(33, 37)), "test": tuple(range(37, 41))}
#: What their test scripts append to a result's name: ``<name>_condition_<train subject>.npy``.
CONDITION_MARK = "_condition_"
#: The dataset keyword of their scripts for each exported frame rate, with the defaults they document.
SCRIPT_MODES = {
    25: {"dataset": "BIWI", "feature_dim": 128, "period": 25},
    60: {"dataset": "vocaset", "feature_dim": 64, "period": 30},
}
#: Characters a subject or take id may not hold: their loaders split names at "_" (take ids) and ".",
#: replace "wav" by "npy" anywhere in a file name, and split subject lists at spaces.
_FORBIDDEN = (".", "/", "\\", " ", "\t", "\n", "wav", CONDITION_MARK)
_NAME = re.compile(r"(?P<base>.+?-\d{2})(?:" + re.escape(CONDITION_MARK) + r"(?P<condition>.+))?")


def check_name_part(value: str, what: str, *, underscore: bool = True) -> str:
    """``value`` if it can be part of a name their loaders split correctly, else FormatError naming it."""
    value = str(value)
    bad = [mark for mark in _FORBIDDEN if mark in value]
    if not underscore and "_" in value:
        bad.append("_")
    if not value or bad:
        shown = ", ".join(repr(b) for b in bad) if bad else "nothing"
        raise FormatError(
            f"{what} {value!r} cannot be written in the FaceFormer layout: it holds {shown} "
            "(their loaders cut names at '_' and '.', replace 'wav' and split subject lists at spaces)"
        )
    return value


def role_number(take_id: str, role: str) -> int:
    """The two-digit number of ``take_id``'s name in ``role`` (one of :data:`ROLE_NUMBERS`' ranges)."""
    numbers = ROLE_NUMBERS[role]
    return numbers[zlib.crc32(str(take_id).encode("utf-8")) % len(numbers)]


def sequence_name(subject_id: str, take_id: str, role: str) -> str:
    """``<subject>_<take_id>-<NN>`` (no suffix): the file name stem of a sequence in ``role``."""
    if role not in ROLE_NUMBERS:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    subject = check_name_part(subject_id, "subject id")
    take = check_name_part(take_id, "take id", underscore=False)
    return f"{subject}_{take}-{role_number(take, role):02d}"


def parse_name(stem: str) -> tuple[str, str, str | None] | None:
    """(subject_id, take_id, condition or None) of a name made by :func:`sequence_name`, optionally
    followed by ``_condition_<subject>``; None for a name of another shape."""
    match = _NAME.fullmatch(str(stem))
    if match is None:
        return None
    subject, sep, rest = match.group("base").rpartition("_")
    take = rest[:-3]
    if not sep or not subject or not take:
        return None
    return subject, take, match.group("condition")


def option_strings(subjects: Mapping[str, Sequence[str]], num_vertices: int, fps: int) -> dict[str, str]:
    """The arguments of their ``main.py`` for this export: ``subjects`` (role -> ids), ``vertice_dim``
    and, where the frame rate matches one of their dataset modes (:data:`SCRIPT_MODES`), the whole line.

    Returns ``{"subjects": '--train_subjects "..." --val_subjects "..." --test_subjects "..."',
    "vertice_dim": "--vertice_dim 3N", "paths": "--wav_path wav ...", "main": full line or ""}``.
    """
    lists = " ".join(f'--{role}_subjects "{" ".join(subjects.get(role, ()))}"' for role in ROLES)
    paths = f"--wav_path {WAV_DIR} --vertices_path {VERTICES_DIR} --template_file {TEMPLATES_FILE}"
    vertice_dim = f"--vertice_dim {3 * int(num_vertices)}"
    mode = SCRIPT_MODES.get(int(fps))
    main = ""
    if mode is not None:
        main = f"--dataset {mode['dataset']} {vertice_dim} --feature_dim {mode['feature_dim']} --period {mode['period']} {paths} {lists}"
    return {"subjects": lists, "vertice_dim": vertice_dim, "paths": paths, "main": main}


# --------------------------------------------------------------------------------------------
# templates.pkl


def templates_pickle_bytes(templates: Mapping[str, np.ndarray]) -> bytes:
    """``templates.pkl``: a plain dict subject -> (N, 3) float32 array, pickle protocol 2.

    numpy 2 pickles its arrays under ``numpy._core.multiarray``, a module numpy 1.x (the numpy of most
    FaceFormer environments) does not have; the stream is rewritten to name ``numpy.core.multiarray``,
    which every numpy provides for old pickles (numpy 2 without a warning). Only the GLOBAL opcodes'
    module names are changed, found by walking the opcodes, never by searching the bytes.
    """
    import pickle
    import pickletools

    plain = {str(k): np.ascontiguousarray(v, dtype=np.float32) for k, v in templates.items()}
    data = pickle.dumps(plain, protocol=2)
    pieces, last = [], 0
    for opcode, arg, position in pickletools.genops(data):
        if opcode.name == "GLOBAL" and str(arg).startswith("numpy._core."):
            start = position + 1  # after the opcode byte: b"module\nname\n"
            module = str(arg).split(" ", 1)[0]
            pieces += [data[last:start], module.replace("numpy._core.", "numpy.core.", 1).encode("ascii")]
            last = start + len(module)
    pieces.append(data[last:])
    return b"".join(pieces)


def read_templates(path: str | os.PathLike, num_vertices: int | None = None) -> dict[str, np.ndarray]:
    """A ``templates.pkl`` from anywhere, through the restricted unpickler (numpy arrays and plain data
    only; nothing named in the file is imported or run): subject -> (N, 3) float32.

    Each value may be (N, 3) or flat (3N,) (their loaders ``reshape(-1)`` either). With
    ``num_vertices`` every template must have that many vertices. Raises FormatError naming the file
    and the subject.
    """
    from mmface4d_datasets.safe_pickle import load

    path = Path(path)
    content = load(path)
    if not isinstance(content, dict) or not content:
        raise FormatError(f"{path}: expected a non-empty dict subject -> template array, found {type(content).__name__}")
    templates = {}
    for subject, value in content.items():
        if not isinstance(subject, str):
            raise FormatError(f"{path}: a key is {type(subject).__name__} {subject!r}, expected a subject name")
        array = np.asarray(value)
        if (
            array.dtype.kind not in "fiu"
            or array.size == 0
            or array.size % 3
            or array.ndim not in (1, 2)
            or (array.ndim == 2 and array.shape[1] != 3)
        ):
            raise FormatError(
                f"{path}: template of {subject!r} has shape {array.shape} and dtype {array.dtype}, expected (N, 3) or (3N,) numbers"
            )
        array = array.reshape(-1, 3).astype(np.float32)
        if num_vertices is not None and len(array) != num_vertices:
            raise FormatError(f"{path}: template of {subject!r} has {len(array)} vertices, the topology has {num_vertices}")
        if not np.isfinite(array).all():
            raise FormatError(f"{path}: template of {subject!r} holds NaN or infinite values")
        templates[subject] = array
    return templates
