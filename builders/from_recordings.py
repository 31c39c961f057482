"""``mmface4d build from-recordings``: recording sessions -> takes -> fitted meshes -> a release.

:func:`build_from_recordings` chains the library functions of four commands, each stage per take
through the one executor (:mod:`reconstruction.executor`: this process, ``workers`` local
processes, or Ray tasks):

1. **convert** (``rig convert``, :func:`capture_rig.convert.convert_take`): every take of every
   session (``SESSION/takes/ID/ID_c.mkv`` for cameras 0-2, ``ID.wav``, ``ID.take.json``, as the
   recorder leaves them) into ``WORK/converted/ID/``. The reconstruction needs 2-D landmarks per
   camera and frame: a landmark file beside a recording (``ID_c.landmarks.npy``: float32
   (captures, 68, 2) pixels, from an external detector or annotation) is carried into the take;
   without one, a landmark detector (``reconstruction.detector``: MediaPipe's face mesh by
   default, offline, tracked over the take on crops seeded by the registered depth; or
   face-alignment, whose weights are downloaded on first use) runs on the converted colour video,
   otherwise the take fails with an error naming the missing file. Takes the recorder marked bad, and takes of actors on
   the withdrawal list, are left out before anything is read.
2. **reconstruct** (``mmface4d reconstruct``, :func:`reconstruction.pipeline.reconstruct_folder`):
   every converted take into ``WORK/reconstructed/ID/`` (``ID_filt_{0,1,2}.nut``, ``ID.wav``,
   ``ID.meta.json``, ``fit_report.json``).
3. **release** (``mmface4d build release``, :func:`builders.build.build_release`): the
   reconstructed takes into ``RELEASE`` (withdrawn actors left out, a bad take skipped and
   listed); the take and row passes run on the same executor.
4. **validate** (``mmface4d validate``): the release is checked.

Resume: each take's stage output is a folder written under a hidden name and renamed when
complete, so a rerun skips every take whose folder exists and a killed run goes on where it
stopped (the release build resumes from its own staging). The release is rebuilt only when the
reconstructed takes (their files' names, sizes and times) or the build options changed since
the last complete build (``WORK/release-inputs.json``).

The work folder (``WORK``, default ``RELEASE.work`` beside the release) follows the rule of
:mod:`mmface4d_datasets.output_folders`: new, empty or made by this command (its marker lists what
it wrote); it is locked while a run lasts; leftovers of a killed run (hidden staging folders of
its own writers) are removed, nothing else. Its stage folders are kept, so a maintainer can redo
one stage for one take: delete ``WORK/converted/ID`` or ``WORK/reconstructed/ID`` and run again.
The release holds every take reconstructed in the work folder (give one work folder per release).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mmface4d_datasets.errors import MMFace4DError

#: Kind of the work folder in its ownership marker.
WORK_KIND = "from-recordings"
CONVERTED = "converted"
RECONSTRUCTED = "reconstructed"
#: Fingerprint of the reconstructed takes and options of the last complete release build.
RELEASE_INPUTS = "release-inputs.json"
#: The last run's summary (also printed by the command).
SUMMARY = "summary.json"
#: Hidden staging folders of the stage writers (rig convert, reconstruct), left by a killed run.
_STAGING = re.compile(r"^\.\d{6}\.(converting|partial)-\d+$")


@dataclass(frozen=True)
class FaceModelSpec:
    """The face model of the fit: ``"default"`` (the embedded model with ``num_vertices``, default
    35,709) or ``"bfm"`` (the BFM 2009 files in the folder ``path``)."""

    name: str = "default"
    num_vertices: int | None = None
    path: str | None = None


def default_work_folder(out: str | os.PathLike) -> Path:
    """``RELEASE.work`` beside the release folder."""
    out = Path(out)
    return out.with_name(out.name + ".work")


# ------------------------------------------------------------------------------------------ jobs
_MODELS: dict = {}


def _face_model(spec: FaceModelSpec):
    from mmface4d_datasets.facemodel import load_face_model
    from mmface4d_datasets.vocabulary import BFM_NUM_VERTICES

    key = (spec.name, spec.num_vertices, spec.path)
    if key not in _MODELS:
        if spec.name == "bfm":
            _MODELS[key] = load_face_model("bfm", folder=spec.path)
        else:
            _MODELS[key] = load_face_model("default", num_vertices=spec.num_vertices or BFM_NUM_VERTICES)
    return _MODELS[key]


_DETECTOR: dict = {}
_DETECTOR_LOCK = threading.RLock()
#: The note of a take whose stage output an earlier, lost attempt had finished.
_DONE_BY_LOST_ATTEMPT = "complete already (written by an earlier attempt whose worker or node was lost)"


def detect_landmarks(colour_video: Path, detector: str = "mediapipe"):
    """68 landmarks (T, 68, 2) of a converted colour video with ``detector`` (``reconstruction.detector.DETECTORS``:
    MediaPipe's face mesh, offline, by default; crops seeded by the take's registered depth); raises
    :class:`~reconstruction.detector.DetectorUnavailable` naming the video when it cannot run. How many
    frames had a face is logged (info, on stderr; the landmark file holds NaN rows for the others)."""
    import sys

    from reconstruction.detector import DetectorUnavailable, detect_colour_video, make_detector

    colour_video = Path(colour_video)
    take_camera = colour_video.name.split(".")[0]
    try:
        with _DETECTOR_LOCK:
            if detector not in _DETECTOR:
                import contextlib

                with contextlib.redirect_stdout(sys.stderr):  # torch.hub reports its download on stdout: keep it for the JSON
                    _DETECTOR[detector] = make_detector(detector)
    except DetectorUnavailable as exc:
        raise DetectorUnavailable(
            f"{take_camera}: no landmark file beside the recording "
            f"({take_camera}.landmarks.npy) and the {detector} landmark detector cannot run: {exc}"
        ) from None
    with _DETECTOR_LOCK:  # convert runs a take's cameras on threads; a detector runs one video at a time
        found = detect_colour_video(_DETECTOR[detector], colour_video)
    summary = found.summary()
    import logging

    logging.getLogger(__name__).info("%s: %s found a face in %d of %d frames", take_camera, detector, summary["found"], summary["frames"])
    return found.landmarks


def convert_job(
    take_id: str,
    recordings: list[str],
    camera_ids: list[int],
    audio: str | None,
    take_log: str | None,
    landmarks: dict,
    out_dir: str,
    crf: int | None,
    detect: bool | str,
) -> dict:
    """Stage 1 for one take (runs in a worker): ``rig convert`` into ``out_dir/ID``, one FFmpeg thread.
    ``detect``: False, True (the default detector) or a detector's name. A take already there (an
    earlier attempt that renamed it into place and then lost its worker or node before reporting) is
    kept as it is: the outputs are the same bytes wherever they were made."""
    import functools

    from capture_rig.convert import convert_take

    if (Path(out_dir) / take_id).is_dir():
        return {"seconds": 0.0, "frames": None, "notes": [_DONE_BY_LOST_ATTEMPT]}
    report = convert_take(
        recordings,
        take_id,
        out_dir,
        audio=audio,
        take_log=take_log,
        camera_ids=camera_ids,
        crf=crf,
        progress=False,
        threads=1,
        workers=1,
        log=lambda line: None,
        landmarks=landmarks,
        detect_landmarks=functools.partial(detect_landmarks, detector="mediapipe" if detect is True else detect) if detect else None,
        require_landmarks=True,
    )
    return {"seconds": round(report.seconds, 3), "frames": report.num_frames, "notes": report.notes}


def reconstruct_job(take_folder: str, out_dir: str, model: FaceModelSpec) -> dict:
    """Stage 2 for one take (runs in a worker): fit it and write ``out_dir/ID`` (kept when there
    already, as :func:`convert_job` does)."""
    from reconstruction.pipeline import reconstruct_folder

    started = time.perf_counter()
    folder = Path(out_dir) / Path(take_folder).name
    if not folder.is_dir():
        folder = reconstruct_folder(take_folder, out_dir, _face_model(model))
    seconds = time.perf_counter() - started
    report = json.loads((folder / "fit_report.json").read_text(encoding="utf-8"))
    frames = int(report["num_frames"])
    return {
        "seconds": round(seconds, 3),
        "frames": frames,
        "seconds_per_frame": round(seconds / max(frames, 1), 4),
        "frames_lost": len(report.get("frames_lost", [])),
    }


# ------------------------------------------------------------------------------------------ the run
def _stage_summary(run, seconds: float, **extra) -> dict:
    out = run.as_dict() | {"seconds": round(seconds, 3)}
    out["take_seconds"] = {key: result["seconds"] for key, result in sorted(run.results.items())}
    out.update(extra)
    return out


def _session_takes(sessions, withdrawn_actors: set[str]) -> tuple[list, dict[str, str]]:
    """(takes to convert, {take id: why left out}) of every session; a take id in two sessions is an error."""
    from capture_rig.convert import find_session_takes, read_take_log
    from capture_rig.errors import RigError

    takes, left_out, where = [], {}, {}
    for session in sessions:
        for take in find_session_takes(session):
            if take.take_id in where:
                raise MMFace4DError(
                    f"take {take.take_id} is recorded in two sessions ({where[take.take_id]} and {session}); take ids must be unique"
                )
            where[take.take_id] = session
            try:
                log = read_take_log(take.take_log) if take.take_log else {}
            except RigError:  # the convert stage reports it as this take's failure
                log = {}
            if log.get("status") == "bad":
                left_out[take.take_id] = "marked bad by the recorder"
            elif log.get("subject_id") is not None and str(log["subject_id"]) in withdrawn_actors:
                left_out[take.take_id] = f"actor {log['subject_id']} has withdrawn"
            else:
                takes.append(take)
    return takes, left_out


def _lost_staging(folder: Path, run) -> list[str]:
    """After a stage whose takes were retried: the hidden staging folders their lost attempts left (the
    stage is over, so no worker of this run writes there any more)."""
    return _remove_staging_leftovers(folder) if run.retried else []


def _remove_staging_leftovers(folder: Path) -> list[str]:
    """Hidden staging folders of a killed run (its own writers' names) in ``folder``."""
    removed = []
    if folder.is_dir():
        for entry in sorted(folder.iterdir()):
            if entry.is_dir() and _STAGING.match(entry.name):
                shutil.rmtree(entry)
                removed.append(entry.name)
    return removed


def _file_hash(path) -> str | None:
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():  # a consent registry folder: its withdrawal list
        from capture_rig.consent import WITHDRAWALS

        path = path / WITHDRAWALS
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _release_fingerprint(reconstructed: Path, options: dict) -> str:
    """sha256 over the reconstructed takes' files (name, size, modification time) and the options."""
    files = []
    for take in sorted(p for p in reconstructed.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(take.rglob("*")):
            if path.is_file():
                stat = path.stat()
                files.append([path.relative_to(reconstructed).as_posix(), stat.st_size, stat.st_mtime_ns])
    content = json.dumps({"files": files, "options": options}, sort_keys=True).encode("utf-8")
    return hashlib.sha256(content).hexdigest()


def _release_is_current(out: Path, record: Path, fingerprint: str) -> bool:
    try:
        saved = json.loads(record.read_text(encoding="utf-8"))
        info = out / "meta" / "info.json"
        return saved.get("inputs") == fingerprint and saved.get("info_sha256") == hashlib.sha256(info.read_bytes()).hexdigest()
    except (OSError, ValueError, AttributeError):
        return False


def _check_folders(sessions: list[Path], out: Path, work: Path) -> None:
    from mmface4d_datasets.output_folders import OutputFolderError, refuse_inside_inputs

    refuse_inside_inputs(out, sessions)
    refuse_inside_inputs(work, sessions, option="--work")
    a, b = out.resolve(), work.resolve()
    if a == b or a.is_relative_to(b) or b.is_relative_to(a):
        raise OutputFolderError(f"--out {out} and --work {work} must be separate folders, neither inside the other")


def build_from_recordings(
    sessions,
    out: str | os.PathLike,
    *,
    work: str | os.PathLike | None = None,
    workers: int | None = None,
    ray: str | None = None,
    executor=None,
    face_model: FaceModelSpec = FaceModelSpec(),
    detect: bool | str = True,
    withdrawals: str | os.PathLike | None = None,
    manifest: str | os.PathLike | None = None,
    seed: int = 0,
    max_error: float | None = None,
    shard_size_bytes: int | None = None,
    crf: int | None = None,
    progress: bool = True,
) -> dict:
    """Recording sessions -> a validated release in ``out`` (see the module docstring); returns the summary.

    ``work``: the intermediate folder (default ``OUT.work`` beside ``out``). ``workers`` / ``ray``:
    the executor (``reconstruction.executor.executor_from_arguments``); or pass ``executor``.
    ``face_model``: the model of the fit. ``detect``: run the landmark detector for a camera
    without a landmark file (True: MediaPipe's face mesh; or a name of
    ``reconstruction.detector.DETECTORS``; False: that take fails at once). ``withdrawals``: a consent registry
    folder or its withdrawals.json. ``manifest``, ``seed``, ``max_error``, ``shard_size_bytes``: as
    ``build release``; ``crf``: H.264 quality of the converted colour videos.

    The summary (JSON-ready; also written to ``WORK/summary.json``) has per stage ``done``,
    ``skipped`` (already complete), ``failed`` (take id -> error), counts and seconds; a take that
    fails in one stage is left out of the later ones and does not stop the others.
    """
    from types import SimpleNamespace

    from mmface4d_datasets.files import atomic_write_bytes, json_bytes
    from mmface4d_datasets.output_folders import output_folder

    sessions = [Path(s) for s in (sessions if isinstance(sessions, (list, tuple)) else [sessions])]
    if not sessions:
        raise MMFace4DError("give at least one recording session folder")
    for session in sessions:
        if not session.is_dir():
            raise MMFace4DError(f"{session}: recording session folder not found")
    out = Path(out)
    work = default_work_folder(out) if work is None else Path(work)
    _check_folders(sessions, out, work)
    withdrawn_actors = set()
    if withdrawals is not None:
        from capture_rig.consent import read_withdrawals

        withdrawn_actors = set(read_withdrawals(withdrawals))
    takes, left_out = _session_takes(sessions, withdrawn_actors)
    from mmface4d_datasets.release.writer import RELEASE_KIND

    if out.exists():  # a folder the release may not go into is refused now, not after hours of fitting
        with output_folder(out, RELEASE_KIND, inputs=sessions):
            pass
    started = time.perf_counter()
    own_executor = executor is None
    if own_executor:
        from reconstruction.executor import executor_from_arguments

        executor = executor_from_arguments(SimpleNamespace(workers=workers, ray=ray))
    try:
        with output_folder(work, WORK_KIND, inputs=sessions) as output:
            summary = _run(
                takes,
                left_out,
                sessions,
                out,
                work,
                output,
                executor,
                face_model=face_model,
                detect=detect,
                withdrawals=withdrawals,
                manifest=manifest,
                seed=seed,
                max_error=max_error,
                shard_size_bytes=shard_size_bytes,
                crf=crf,
                progress=progress,
            )
            summary["seconds"] = round(time.perf_counter() - started, 3)
            output.will_write(work / SUMMARY)
            atomic_write_bytes(work / SUMMARY, json_bytes(summary))
    finally:
        if own_executor:
            executor.close()
    return summary


def _run(
    takes,
    left_out,
    sessions,
    out: Path,
    work: Path,
    output,
    executor,
    *,
    face_model,
    detect,
    withdrawals,
    manifest,
    seed,
    max_error,
    shard_size_bytes,
    crf,
    progress,
) -> dict:
    from mmface4d_datasets.files import atomic_write_bytes, json_bytes
    from reconstruction.executor import Job
    from reconstruction.pipeline import OUTPUT_MARKER, prepare_output

    from reconstruction.executor import SHARED_PROBE

    converted, reconstructed = work / CONVERTED, work / RECONSTRUCTED
    leftovers = _remove_staging_leftovers(converted) + _remove_staging_leftovers(reconstructed)
    # On a cluster every node must see the work folder, the recordings and the release's parent folder
    # as this machine does: told now, not after hours (a no-op for a local executor).
    output.will_write(work / SHARED_PROBE)
    executor.check_shared(work, [out.parent, *(t.recordings[0] for t in takes[:1])])
    summary = {
        "out": str(out),
        "work": str(work),
        "sessions": [str(s) for s in sessions],
        "executor": executor.describe(),
        "takes": sorted(t.take_id for t in takes),
        "left_out": dict(sorted(left_out.items())),
        "staging_leftovers_removed": leftovers,
        "stages": {},
    }

    # 1. convert
    output.will_write(*(converted / t.take_id for t in takes))
    converted.mkdir(exist_ok=True)
    jobs = [
        Job(
            t.take_id,
            convert_job,
            (
                t.take_id,
                [str(p) for p in t.recordings],
                list(t.camera_ids),
                str(t.audio) if t.audio else None,
                str(t.take_log) if t.take_log else None,
                {c: str(p) for c, p in t.landmarks.items()},
                str(converted),
                crf,
                detect,
            ),
            converted / t.take_id,
        )
        for t in takes
    ]
    t0 = time.perf_counter()
    run = executor.run(jobs, progress=progress, description="convert")
    summary["stages"]["convert"] = _stage_summary(run, time.perf_counter() - t0, staging_leftovers_removed=_lost_staging(converted, run))

    # 2. reconstruct (the converted takes of these sessions)
    ready = [t.take_id for t in takes if (converted / t.take_id).is_dir()]
    output.will_write(reconstructed / OUTPUT_MARKER, *(reconstructed / key for key in ready))
    prepare_output(reconstructed)
    jobs = [Job(key, reconstruct_job, (str(converted / key), str(reconstructed), face_model), reconstructed / key) for key in ready]
    t0 = time.perf_counter()
    run = executor.run(jobs, progress=progress, description="reconstruct")
    summary["stages"]["reconstruct"] = _stage_summary(
        run, time.perf_counter() - t0, staging_leftovers_removed=_lost_staging(reconstructed, run)
    )

    # 3. release
    summary["stages"]["release"] = _release_stage(
        reconstructed,
        out,
        work,
        output,
        executor,
        withdrawals=withdrawals,
        manifest=manifest,
        seed=seed,
        max_error=max_error,
        shard_size_bytes=shard_size_bytes,
        progress=progress,
        atomic_write_bytes=atomic_write_bytes,
        json_bytes=json_bytes,
    )

    # 4. validate
    if (out / "meta" / "info.json").is_file():
        from mmface4d_datasets.release.validate import validate_release

        problems = [str(p) for p in validate_release(out)]
        summary["stages"]["validate"] = {"ok": not problems, "problems": problems}
    else:
        summary["stages"]["validate"] = {"ok": False, "problems": ["no release was built"]}
    failed = {stage: len(s.get("failed", {})) for stage, s in summary["stages"].items() if s.get("failed")}
    summary["ok"] = not failed and "error" not in summary["stages"]["release"] and summary["stages"]["validate"]["ok"]
    return summary


def _release_stage(
    reconstructed: Path,
    out: Path,
    work: Path,
    output,
    executor,
    *,
    withdrawals,
    manifest,
    seed,
    max_error,
    shard_size_bytes,
    progress,
    atomic_write_bytes,
    json_bytes,
) -> dict:
    from builders.build import build_release

    keys = sorted(p.name for p in reconstructed.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not keys:
        return {
            "done": [],
            "skipped": [],
            "failed": {},
            "withdrawn": [],
            "seconds": 0.0,
            "counts": {"done": 0, "skipped": 0, "failed": 0},
            "note": "no reconstructed take; no release built",
        }
    options = {
        "seed": seed,
        "max_error": max_error,
        "shard_size_bytes": shard_size_bytes,
        "withdrawals": _file_hash(withdrawals),
        "manifest": _file_hash(manifest),
    }
    fingerprint = _release_fingerprint(reconstructed, options)
    record = work / RELEASE_INPUTS
    if _release_is_current(out, record, fingerprint):
        return {
            "done": [],
            "skipped": keys,
            "failed": {},
            "withdrawn": [],
            "seconds": 0.0,
            "counts": {"done": 0, "skipped": len(keys), "failed": 0},
            "note": "the release is complete and its inputs are unchanged",
        }
    t0 = time.perf_counter()
    losses_before = len(executor.losses)
    try:
        report = build_release(
            reconstructed,
            out,
            manifest=manifest,
            on_error="skip",
            withdrawals=withdrawals,
            seed=seed,
            max_error=max_error,
            shard_size_bytes=shard_size_bytes,
            progress=progress,
            executor=executor,
        )
    except MMFace4DError as exc:  # about the whole release (a refused folder, every take withdrawn, ...)
        return {
            "done": [],
            "skipped": [],
            "failed": {},
            "error": str(exc),
            "seconds": round(time.perf_counter() - t0, 3),
            "counts": {"done": 0, "skipped": 0, "failed": 0},
        }
    seconds = time.perf_counter() - t0
    output.will_write(record)
    info_sha = hashlib.sha256((out / "meta" / "info.json").read_bytes()).hexdigest()
    atomic_write_bytes(record, json_bytes({"inputs": fingerprint, "info_sha256": info_sha}))
    done = sorted(sequence.split("/")[-1] for sequence in report.sequences)
    failed = {s.take_id: s.reason for s in report.skipped}
    lost = executor.losses[losses_before:]
    return {
        "done": done,
        "skipped": [],
        "failed": dict(sorted(failed.items())),
        "retried": [f"{loss['description']} #{loss['item']}: {loss['error']}" for loss in lost],
        "withdrawn": sorted(report.withdrawn),
        "resumed_from_staging": sorted(report.resumed),
        "split_counts": report.split_counts,
        "seconds": round(seconds, 3),
        "counts": {"done": len(done), "skipped": 0, "failed": len(failed), "retried": len(lost)},
    }
