"""FaceFormer-style ``result/`` folders into benchmark submissions (``mmface4d bench submit-faceformer``).

Their test scripts write one ``result/<name>.npy`` per test sequence and condition, named
``<name>_condition_<train subject>.npy`` (FaceFormer, CodeTalker) or ``<name>.npy``, each float32
(T, N*3). :func:`submit_faceformer_results`:

1. lists the folder's ``.npy`` files and maps each name back to its sequence id
   (``mmface4d_datasets.faceformer.layout.parse_name``: ``<subject>_<take_id>-<NN>`` -> ``<subject>/<take_id>``);
2. checks everything before writing anything, and names every problem: a name that is no sequence
   of the scored split (``extra``), a sequence without a prediction (``missing``), several conditions
   and no ``condition`` chosen, a shape other than (T, N*3) or (T, N, 3) with the release's N (read
   from the ``.npy`` header, before the data), a non-float dtype, NaN or infinite values, and a frame
   count that is off by more than ``max_frame_difference`` frames once counted at the release's rate;
3. converts each prediction from ``fps`` to the release's rate (linear in time,
   ``mmface4d_datasets.faceformer.timing``) onto exactly the ground truth's frame count: a prediction
   that ends a few frames early holds its last frame, one that runs longer is cut (audio front ends
   such as wav2vec 2.0 give ``50 d - 1`` features for ``d`` seconds, so their last frame is often
   missing);
4. writes the submission (``benchmark.submission``), in the canonical head frame as exported.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.submission import SubmissionError
from mmface4d_datasets.faceformer.layout import parse_name
from mmface4d_datasets.faceformer.timing import frames_at_rate, resample_frames

#: Default tolerance on the frame count at the release's rate: 3 frames = 0.1 s at 30 fps (the
#: builders' audio/mesh duration tolerance).
DEFAULT_MAX_FRAME_DIFFERENCE = 3
#: Inputs a FaceFormer-style model uses under the protocol: the audio and the subject's template
#: (the condition is a TRAIN speaker's one-hot, not the test speaker's data).
FACEFORMER_INPUTS = ("audio", "template")
_SHOWN = 30


@dataclass
class ResultFile:
    path: Path
    id: str
    condition: str | None


@dataclass
class SubmittedResults:
    """What :func:`submit_faceformer_results` wrote: the submission, its sequences, the condition used,
    and the ids whose frame count was adjusted (held or cut) to the ground truth's."""

    path: Path
    sequences: int
    condition: str | None
    fps: int
    held: list[str] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "submission": str(self.path),
            "sequences": self.sequences,
            "condition": self.condition,
            "result_fps": self.fps,
            "frames_held": len(self.held),
            "frames_cut": len(self.cut),
        }


def _problems_error(folder: Path, problems: list[str]) -> SubmissionError:
    shown = "\n  ".join(problems[:_SHOWN])
    more = f"\n  ... and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
    return SubmissionError(f"{folder}: {len(problems)} problem(s); no submission was written:\n  {shown}{more}")


def result_files(folder: str | os.PathLike) -> list[Path]:
    """The ``.npy`` files directly in ``folder`` (their scripts write flat folders), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SubmissionError(f"{folder}: not a folder (expected their result/ folder of <name>.npy files)")
    files = sorted(p for p in folder.iterdir() if p.suffix == ".npy" and p.is_file())
    if not files:
        raise SubmissionError(f"{folder}: holds no .npy file (expected <name>.npy or <name>_condition_<subject>.npy)")
    return files


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the ``.npy`` header only (no data read)."""
    with open(path, "rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        except (ValueError, OSError, SyntaxError) as exc:
            raise ValueError(f"not a readable .npy file ({exc})") from None
    return tuple(int(n) for n in shape), np.dtype(dtype)


def _choose(files_of: dict[str, list[ResultFile]], condition: str | None, problems: list[str]) -> dict[str, ResultFile]:
    chosen = {}
    for sequence_id, files in sorted(files_of.items()):
        conditions = {f.condition: f for f in files}
        if condition is not None:
            if condition in conditions:
                chosen[sequence_id] = conditions[condition]
            elif set(conditions) == {None}:
                chosen[sequence_id] = conditions[None]
            else:
                problems.append(
                    f"{sequence_id}: no prediction for --condition {condition} (found: {', '.join(sorted(str(c) for c in conditions))})"
                )
        elif len(conditions) == 1:
            chosen[sequence_id] = files[0]
        else:
            problems.append(
                f"{sequence_id}: {len(conditions)} predictions (conditions {', '.join(sorted(str(c) for c in conditions))}); "
                "choose one with --condition SUBJECT"
            )
    return chosen


def submit_faceformer_results(
    folder: str | os.PathLike,
    release_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    fps: int = 30,
    condition: str | None = None,
    split: str = "test",
    model: str = "faceformer",
    url: str = "",
    hardware: str = "",
    encoding: str = "codec",
    max_error: float = 1e-5,
    max_frame_difference: int = DEFAULT_MAX_FRAME_DIFFERENCE,
) -> SubmittedResults:
    """Convert the ``result/`` folder ``folder`` into the submission ``out`` for ``split`` of the release
    (module docstring). ``fps``: the frame rate of the predictions (25 for BIWI-mode scripts). Raises
    :class:`SubmissionError` listing every problem; nothing is written then."""
    from benchmark.scoring import expected_sequences
    from benchmark.submission import make_header, write_submission
    from mmface4d_datasets.release.reader import Release

    folder = Path(folder)
    if int(fps) < 1:
        raise SubmissionError(f"--fps must be positive, got {fps}")
    release = Release(release_dir)
    release_fps = int(release.info.fps)
    expected = {k: v["num_frames"] for k, v in expected_sequences(release, split).items()}
    splits_of = dict(zip(release.sequences()["id"], release.sequences()["split"]))
    num_vertices = int(release.info.num_vertices)
    problems: list[str] = []
    files_of: dict[str, list[ResultFile]] = defaultdict(list)
    for path in result_files(folder):
        parsed = parse_name(path.stem)
        if parsed is None:
            problems.append(f"{path.name}: extra: not a name of the FaceFormer export (<subject>_<take_id>-<NN>[_condition_<subject>].npy)")
            continue
        subject, take, cond = parsed
        sequence_id = f"{subject}/{take}"
        if sequence_id not in expected:
            where = f"a sequence of the {splits_of[sequence_id]} split" if sequence_id in splits_of else "not a sequence of the release"
            problems.append(f"{path.name}: extra: {sequence_id} is {where}, not of the scored {split} split")
            continue
        files_of[sequence_id].append(ResultFile(path, sequence_id, cond))
    for sequence_id in sorted(set(expected) - set(files_of)):
        problems.append(f"{sequence_id}: missing: no prediction in {folder}")
    chosen = _choose(files_of, condition, problems)
    for sequence_id, result in chosen.items():
        problem = _check_file(result.path, num_vertices, expected[sequence_id], int(fps), release_fps, max_frame_difference)
        if problem:
            problems.append(f"{result.path.name}: {problem}")
    if problems:
        raise _problems_error(folder, problems)

    held, cut = [], []

    def predictions():
        for sequence_id in sorted(chosen):
            path = chosen[sequence_id].path
            array = np.load(path, allow_pickle=False)
            array = array.reshape(array.shape[0], num_vertices, 3)
            if not np.isfinite(array).all():
                raise SubmissionError(f"{path}: holds NaN or infinite values")
            target = expected[sequence_id]
            at_release = array.shape[0] if int(fps) == release_fps else frames_at_rate(array.shape[0], int(fps), release_fps)
            (held if at_release < target else cut if at_release > target else []).append(sequence_id)
            yield sequence_id, resample_frames(array, int(fps), release_fps, num_frames=target)

    used = {f.condition for f in chosen.values()} - {None}
    header = make_header(
        model,
        release_format_version=release.info.format_version,
        url=url,
        inputs=FACEFORMER_INPUTS,
        hardware=hardware,
        topology=release.info.topology,
        split=split,
        converted_from="faceformer result folder",
        result_fps=int(fps),
        condition=condition if condition is not None else (sorted(used)[0] if used else ""),
    )
    path = write_submission(out, predictions(), header, encoding=encoding, max_error=max_error)
    return SubmittedResults(path, len(chosen), header["condition"] or None, int(fps), held, cut)


def _check_file(path: Path, num_vertices: int, target: int, fps: int, release_fps: int, max_difference: int) -> str | None:
    """What is wrong with one result file (header first, then its values), or None."""
    try:
        shape, dtype = _npy_header(path)
    except (ValueError, OSError) as exc:
        return str(exc)
    if dtype.kind != "f" or dtype.hasobject:
        return f"wrong dtype: {dtype}, expected float32 (T, {3 * num_vertices})"
    if len(shape) == 2 and shape[1] % 3 == 0 and shape[1] != 3 * num_vertices:
        return f"wrong shape: {shape} is (T, N*3) with N = {shape[1] // 3}; the release's topology has N = {num_vertices}"
    if not (len(shape) == 2 and shape[1] == 3 * num_vertices) and not (len(shape) == 3 and shape[1:] == (num_vertices, 3)):
        return f"wrong shape: {shape}, expected (T, {3 * num_vertices}) = (T, N*3) with N = {num_vertices}"
    if shape[0] < 1:
        return "wrong shape: no frame"
    at_release = shape[0] if fps == release_fps else frames_at_rate(shape[0], fps, release_fps)
    if abs(at_release - target) > max_difference:
        hint = ""
        for other in (25, 30, 60):
            if (
                other != fps
                and abs((shape[0] if other == release_fps else frames_at_rate(shape[0], other, release_fps)) - target) <= max_difference
            ):
                hint = f" (it fits {other} fps: pass --fps {other})"
        rate = (
            f"{shape[0]} frames at {fps} fps = {at_release} at the release's {release_fps} fps"
            if fps != release_fps
            else f"{shape[0]} frames"
        )
        return f"wrong frame count: {rate}; the ground truth has {target} (at most {max_difference} off is adjusted){hint}"
    try:
        values = np.load(path, allow_pickle=False, mmap_mode="r")
        finite = bool(np.isfinite(values).all())
    except (ValueError, OSError) as exc:
        return f"not a readable .npy array ({exc})"
    if not finite:
        bad = np.nonzero(~np.isfinite(np.asarray(values).reshape(shape[0], -1)).all(axis=1))[0]
        return f"NaN or infinite values in {bad.size} frame(s), first at frame {int(bad[0])}"
    return None
