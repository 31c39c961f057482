"""Azure Kinect recordings (+ the take's WAV) -> a take folder in the DESIGN.md layout.

``convert_take([REC0.mkv, REC1.mkv, REC2.mkv], "000123", OUT)`` writes ``OUT/000123/``:

- ``ID_c.json``: the authors' fields (``color_mode``, ``depth_mode``, ``width``, ``height``,
  column-major ``intrinsic_matrix``, ``serial_number``, ``stream_length_usec``) and ours
  (``distortion``, ``extrinsics`` where known: camera 1 is the reference, ``depth_camera``);
- ``ID_c.nut``: depth registered to the colour camera (:mod:`capture_rig.registration`),
  FFV1 ``gray16le`` millimetres at the colour resolution;
- ``ID_c.mp4``: the colour video, H.264 at CRF :data:`~mmface4d_datasets.take_files.COLOUR_CRF`;
- ``ID_c.landmarks.npy`` (when the recording has one beside it, ``REC.landmarks.npy`` for
  ``REC.mkv``, from an external detector or annotation): float32 (n, 68 or 98, 2) pixels, one row
  per capture of that recording in file order, carried onto the take's frame grid (a frame the
  camera lacks is NaN); without one, ``detect_landmarks`` (if given) computes them from the
  converted colour video, and ``require_landmarks`` makes its absence a :class:`LandmarkError`;
- ``ID.wav`` (when audio is given): shifted so that sample 0 is video frame 0;
- ``ID.meta.json``: subject, sentence, emotion, text, fps, device serials and sync settings,
  missing frames per camera, the audio offset and how it was found, codec settings.

Every camera's file k is frame k of one frame grid (:func:`capture_rig.sync.match_frames`); a
frame a camera lacks is written as no depth (0) and a black image, and listed in
``ID.meta.json`` ``missing_frames`` (and returned), never filled by shifting the other frames.
The take is written into a hidden temporary folder beside its final place and renamed when
complete; a failure removes it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from capture_rig import mkv
from capture_rig.errors import AudioError, DamagedTake, LandmarkError, ModeMismatch, RigError, TakeExists
from capture_rig.sync import align_audio, audio_offset, match_frames
from mmface4d_datasets.vocabulary import EMOTION_OF_PREFIX

#: Version of what ``mmface4d rig convert`` writes (recorded in ID.meta.json).
_LOG = logging.getLogger(__name__)

CONVERTER_VERSION = "2"  # 2: landmark files carried through, their source in ID.meta.json
#: The take log the recorder writes beside a take's recordings.
TAKE_LOG_SUFFIX = ".take.json"
#: Sentence-id prefix -> emotion name (the core vocabulary).
EMOTIONS = EMOTION_OF_PREFIX


@dataclass
class ConvertReport:
    """What one conversion did."""

    take_id: str
    folder: str
    num_frames: int
    cameras: list[int]
    missing_frames: dict[int, list[int]]
    audio_offset_s: float | None
    seconds: float
    frames_per_second: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(vars(self))


def _check_take_id(take_id: str) -> str:
    if not re.fullmatch(r"[0-9]{6}", str(take_id)):
        raise RigError(f"take id must be six ASCII digits 0-9 (DESIGN.md, Takes), got {take_id!r}")
    return str(take_id)


def read_take_log(path: str | os.PathLike) -> dict:
    """The recorder's per-take log (``ID.take.json``), as a dict."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RigError(f"{path}: cannot read the take log ({exc})") from None
    if not isinstance(data, dict):
        raise RigError(f"{path}: the take log must be a JSON object")
    return data


def _read_wav(path: Path) -> np.ndarray:
    from mmface4d_datasets import official
    from mmface4d_datasets.errors import FormatError

    try:
        samples, _ = official.read_audio(path)
    except FormatError as exc:
        raise AudioError(str(exc)) from None
    return samples


def _check_modes(infos: list[mkv.RecordingInfo]) -> None:
    modes = {info.mode for info in infos}
    if len(modes) > 1:
        listed = "; ".join(f"{info.path}: {info.colour_mode}, {info.depth_mode}, {info.fps:g} fps" for info in infos)
        raise ModeMismatch(
            f"the cameras of one take were recorded in different modes ({listed}); "
            "record every camera with the same colour mode, depth mode and frame rate"
        )


def _audio_offset_from_log(log: dict | None, anchor_usec: float) -> tuple[float, str]:
    if not log:
        return 0.0, "none: no take log, the WAV is assumed to start with video frame 0"
    try:
        audio = log["audio"]
        master = log["master"]
        return (
            audio_offset(
                float(audio["first_sample_host_s"]),
                float(master["first_capture_host_s"]),
                float(master["first_capture_device_usec"]),
                anchor_usec,
            ),
            "take log: host-clock times of the first audio sample and of the master's first capture",
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RigError(f"the take log lacks the audio/master timing ({exc}); it cannot align the audio") from None


def convert_take(
    recordings: list,
    take_id: str,
    out_dir: str | os.PathLike,
    *,
    audio: str | os.PathLike | None = None,
    take_log: str | os.PathLike | dict | None = None,
    camera_ids: list[int] | None = None,
    metadata: dict | None = None,
    crf: int | None = None,
    progress: bool = True,
    threads: int = 0,
    workers: int | None = None,
    log=None,
    landmarks: dict | None = None,
    detect_landmarks=None,
    require_landmarks: bool = False,
    allow_damaged: bool = False,
) -> ConvertReport:
    """Convert one take; see the module docstring. Returns a :class:`ConvertReport`.

    ``camera_ids``: the camera index of each recording (default 0, 1, 2 in the order given; a lone
    recording is camera 0 unless told otherwise). ``take_log``: the recorder's ``ID.take.json``
    (path or dict) for the audio offset and the metadata; ``metadata`` adds or overrides
    ``subject_id``, ``sentence_id``, ``text``, ``gender``, ``age``. ``crf``: the H.264 quality.
    ``workers``: cameras converted at once (threads; default one per camera, at most one per core);
    ``threads``: FFmpeg's threads per decoder/encoder (0: its choice).
    ``landmarks``: {camera: landmark file} (default: ``REC.landmarks.npy`` beside each ``REC.mkv``
    where present). ``detect_landmarks(colour_video_path) -> (T, 68, 2)``: called for a camera
    without a landmark file (the caller brings the detector; this layer has none).
    ``require_landmarks``: a camera left without landmarks is a :class:`LandmarkError` (nothing written).
    ``allow_damaged``: keep a take in which a camera lacks more than ``DAMAGED_LIMIT`` of the frames (dropped
    captures, or captures without colour or depth); by default that is a :class:`DamagedTake` (nothing written).
    """
    from mmface4d_datasets.camera import k4a_cameras, take_json_fields
    from mmface4d_datasets.files import atomic_write_bytes, json_bytes
    from mmface4d_datasets.take_files import COLOUR_CRF, COLOUR_PRESET, ColourVideoWriter, DepthVideoWriter
    from mmface4d_datasets import official

    log = log or _LOG.info
    started = time.perf_counter()
    take_id = _check_take_id(take_id)
    recordings = [Path(p) for p in recordings]
    if not 1 <= len(recordings) <= 3:
        raise RigError(f"a take has one to three cameras, got {len(recordings)} recordings")
    camera_ids = list(range(len(recordings))) if camera_ids is None else [int(c) for c in camera_ids]
    if len(camera_ids) != len(recordings) or len(set(camera_ids)) != len(camera_ids) or not set(camera_ids) <= {0, 1, 2}:
        raise RigError(f"camera ids must be distinct numbers 0..2, one per recording; got {camera_ids}")
    crf = COLOUR_CRF if crf is None else int(crf)
    if isinstance(take_log, (str, os.PathLike)):
        take_log = read_take_log(take_log)
    out_dir = Path(out_dir)
    final = out_dir / take_id
    if final.exists():
        raise TakeExists(f"{final}: the take already exists; remove it to convert again")

    landmark_files = landmark_files_beside(recordings, camera_ids) if landmarks is None else {int(c): Path(p) for c, p in landmarks.items()}
    if require_landmarks and detect_landmarks is None:
        lacking = [c for c in camera_ids if c not in landmark_files]
        if lacking:
            raise LandmarkError(_no_landmarks_message(take_id, recordings, camera_ids, lacking))
    infos = [mkv.read_info(p) for p in recordings]
    _check_modes(infos)
    samples = _read_wav(Path(audio)) if audio is not None else None
    fps = infos[0].fps

    # pass 1: timestamps of every capture, and which images each capture has
    captures = []
    for info in infos:
        captures.append(
            [(f.timestamp_usec, f.colour is not None, f.depth is not None) for f in mkv.iter_frames(info.path, info, decode_colour=False)]
        )
    delays = [info.subordinate_delay_usec for info in infos]
    timeline = match_frames([[c[0] for c in caps] for caps in captures], delays, fps, [str(info.path) for info in infos])
    missing = {camera_ids[i]: list(timeline.missing[i]) for i in range(len(infos))}
    # a capture without its colour or depth image (synchronized_images_only off) counts as missing too
    incomplete = {
        camera_ids[i]: [
            k for k in range(timeline.num_frames) if timeline.captures[i][k] >= 0 and not all(captures[i][timeline.captures[i][k]][1:])
        ]
        for i in range(len(infos))
    }
    notes = []
    for camera in camera_ids:
        if missing[camera] or incomplete[camera]:
            note = (
                f"camera {camera}: {len(missing[camera])} frame(s) missing"
                + (f" (first {missing[camera][:10]})" if missing[camera] else "")
                + (
                    f", {len(incomplete[camera])} capture(s) without colour or depth (first {incomplete[camera][:10]})"
                    if incomplete[camera]
                    else ""
                )
                + "; written as no depth and a black image, listed in ID.meta.json"
            )
            notes.append(note)
            log(f"mmface4d rig convert: take {take_id}: {note}")
    _check_damage(take_id, {c: len(set(missing[c]) | set(incomplete[c])) for c in camera_ids}, timeline.num_frames, allow_damaged)

    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{take_id}.converting-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    bar = None
    try:
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=timeline.num_frames * len(infos), unit="frame", desc=f"rig convert {take_id}")
        # one worker per camera: registration (numpy) and FFmpeg's coders release the GIL for most
        # of their work, so the cameras overlap on several cores
        jobs = []
        for i, (info, camera) in enumerate(zip(infos, camera_ids)):
            cams = k4a_cameras(info.calibration_json, info.colour_mode, info.depth_mode, source=f"{info.path} calibration.json")
            jobs.append((i, info, camera, cams, _registration(info, cams)))
        workers = max(1, min(len(jobs), os.cpu_count() or 1)) if workers is None else max(1, int(workers))

        def one_camera(job):
            i, info, camera, cams, registration = job
            W, H = info.colour_size
            blank_depth = np.zeros((H, W), dtype=np.uint16)
            blank_colour = np.zeros((H, W, 3), dtype=np.uint8)
            table = timeline.captures[i]
            with (
                DepthVideoWriter(tmp / f"{take_id}_{camera}.nut", W, H, fps=round(fps)) as depth_out,
                ColourVideoWriter(tmp / f"{take_id}_{camera}.mp4", W, H, fps=round(fps), crf=crf, threads=threads) as colour_out,
            ):
                wanted = {int(index): k for k, index in enumerate(table) if index >= 0}
                written = 0

                def put(depth, colour):
                    nonlocal written
                    depth_out.write(depth)
                    colour_out.write(colour)
                    written += 1
                    if bar is not None:
                        bar.update()

                for frame in mkv.iter_frames(info.path, info, colour_threads=threads):
                    k = wanted.get(frame.index)
                    if k is None:
                        continue
                    while written < k:  # frames this camera lacks before this capture
                        put(blank_depth, blank_colour)
                    put(
                        registration(frame.depth) if frame.depth is not None else blank_depth,
                        frame.colour if frame.colour is not None else blank_colour,
                    )
                while written < timeline.num_frames:
                    put(blank_depth, blank_colour)
            length = max(c[0] for c in captures[i]) - info.start_offset_usec
            authors = {
                "color_mode": info.colour_mode,
                "depth_mode": info.depth_mode,
                "serial_number": info.serial_number,
                "stream_length_usec": int(length),
            }
            colour = cams.color.with_extrinsics(np.eye(4) if camera == 1 else None)
            atomic_write_bytes(tmp / f"{take_id}_{camera}.json", json_bytes(authors | take_json_fields(colour, cams.depth)))
            landmark_source = _write_landmarks(
                tmp, take_id, camera, landmark_files.get(camera), len(captures[i]), table, incomplete[camera], detect_landmarks
            )
            return str(camera), info.as_dict() | {"landmarks": landmark_source}

        if workers == 1:
            cameras_meta = dict(one_camera(job) for job in jobs)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=workers) as pool:
                cameras_meta = dict(pool.map(one_camera, jobs))

        offset = None
        offset_source = None
        if samples is not None:
            offset, offset_source = _audio_offset_from_log(take_log, timeline.anchor_usec)
            official.write_audio(tmp / f"{take_id}.wav", align_audio(samples, official.SAMPLE_RATE, offset))

        meta = _take_meta(take_id, take_log, metadata)
        meta.update(
            {
                "fps": round(fps),
                "num_frames": timeline.num_frames,
                "cameras": cameras_meta,
                "device_serials": {c: m["serial_number"] for c, m in cameras_meta.items()},
                "sync": {
                    "frame_grid_anchor_device_usec": timeline.anchor_usec,
                    "wired_sync_modes": {c: m["wired_sync_mode"] for c, m in cameras_meta.items()},
                    "subordinate_delays_usec": {c: m["subordinate_delay_usec"] for c, m in cameras_meta.items()},
                    "depth_delays_usec": {c: m["depth_delay_usec"] for c, m in cameras_meta.items()},
                    "tolerance_fraction_of_frame": _tolerance(),
                },
                "missing_frames": {str(c): sorted(set(missing[c]) | set(incomplete[c])) for c in camera_ids},
                "audio_offset_s": offset,
                "audio_offset_source": offset_source,
                "formats": {
                    "converter": f"mmface4d rig convert {CONVERTER_VERSION}",
                    "depth": "FFV1 gray16le NUT, millimetres along the colour camera's axis, registered to colour, 0 = none",
                    "colour": f"H.264 yuv420p MP4, libx264 crf {crf} preset {COLOUR_PRESET}",
                },
            }
        )
        atomic_write_bytes(tmp / f"{take_id}.meta.json", json_bytes(meta))
        if final.exists():
            raise TakeExists(f"{final}: the take appeared while it was being converted; not overwriting it")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - started
    return ConvertReport(
        take_id=take_id,
        folder=str(final),
        num_frames=timeline.num_frames,
        cameras=camera_ids,
        missing_frames={c: sorted(set(missing[c]) | set(incomplete[c])) for c in camera_ids},
        audio_offset_s=offset,
        seconds=seconds,
        frames_per_second=timeline.num_frames * len(infos) / seconds if seconds > 0 else 0.0,
        notes=notes,
    )


_REGISTRATIONS: dict = {}


def landmark_files_beside(recordings: list, camera_ids: list[int]) -> dict[int, Path]:
    """{camera: ``REC.landmarks.npy``} for each recording ``REC.mkv`` that has such a file beside it."""
    found = {}
    for path, camera in zip(recordings, camera_ids):
        candidate = Path(path).with_suffix(".landmarks.npy")
        if candidate.is_file():
            found[int(camera)] = candidate
    return found


def _no_landmarks_message(take_id: str, recordings: list, camera_ids: list[int], lacking: list[int]) -> str:
    by_camera = dict(zip(camera_ids, recordings))
    files = ", ".join(str(Path(by_camera[c]).with_suffix(".landmarks.npy")) for c in lacking)
    return (
        f"take {take_id}: camera(s) {', '.join(map(str, lacking))} have no landmark file ({files}) and no "
        "landmark detector is available; the reconstruction needs 68 landmarks per camera and frame. Put "
        "float32 (captures, 68, 2) pixel landmarks there (NaN where unseen; from a detector or annotation), "
        "or install the MediaPipe detector (docs/detector.md; setup.sh does)"
    )


def _write_landmarks(
    tmp: Path, take_id: str, camera: int, source: Path | None, captures: int, table, incomplete: list[int], detect
) -> str | None:
    """Write the take's ``ID_c.landmarks.npy`` on the frame grid; returns where they came from."""
    from mmface4d_datasets.errors import FormatError
    from mmface4d_datasets.take_files import landmarks_path, read_landmarks, write_landmarks

    target = landmarks_path(tmp, take_id, camera)
    if source is not None:
        try:
            rows = read_landmarks(source)
        except FormatError as exc:
            raise LandmarkError(f"take {take_id}: {exc}") from None
        if rows.shape[0] != captures:
            raise LandmarkError(
                f"take {take_id}: {source} has {rows.shape[0]} rows but its recording has {captures} "
                "captures; the landmark file needs one row per capture, in file order"
            )
        table = np.asarray(table)
        grid = np.full((len(table),) + rows.shape[1:], np.nan, dtype=np.float32)
        present = table >= 0
        grid[present] = rows[table[present]]
        grid[list(incomplete)] = np.nan  # a capture without its colour image has no landmarks to carry
        write_landmarks(target, grid)
        return f"carried from {source.name}"
    if detect is not None:
        from mmface4d_datasets.take_files import colour_path

        write_landmarks(target, detect(colour_path(tmp, take_id, camera)))
        return "detected from the converted colour video"
    return None


def _registration(info, cams):
    """One :class:`DepthRegistration` per device calibration and mode (its set-up is the slow part;
    a session's takes share three calibrations)."""
    from capture_rig.registration import DepthRegistration

    key = (info.calibration_json, info.colour_mode, info.depth_mode)
    if key not in _REGISTRATIONS:
        if len(_REGISTRATIONS) >= 8:
            _REGISTRATIONS.pop(next(iter(_REGISTRATIONS)))
        _REGISTRATIONS[key] = DepthRegistration(cams.depth, cams.color)
    return _REGISTRATIONS[key]


def _tolerance() -> float:
    from capture_rig.sync import TOLERANCE_FRACTION

    return TOLERANCE_FRACTION


def _take_meta(take_id: str, take_log: dict | None, metadata: dict | None) -> dict:
    meta = {"take_id": take_id}
    for key in ("subject_id", "sentence_id", "text", "gender", "age"):
        if take_log and take_log.get(key) is not None:
            meta[key] = take_log[key]
    for key, value in (metadata or {}).items():
        if value is not None:
            meta[key] = value
    sentence = meta.get("sentence_id")
    if sentence is not None:
        meta["emotion"] = EMOTIONS.get(str(sentence)[:2])
    return meta


@dataclass
class SessionTake:
    take_id: str
    recordings: list[Path]
    camera_ids: list[int]
    audio: Path | None
    take_log: Path | None
    landmarks: dict = field(default_factory=dict)  # camera -> ID_c.landmarks.npy beside its MKV


def find_session_takes(session: str | os.PathLike) -> list[SessionTake]:
    """The recorded takes of a session folder (``takes/ID/ID_c.mkv``, ``ID.wav``, ``ID.take.json``, and
    ``ID_c.landmarks.npy`` where a detector or annotation left landmarks beside a recording)."""
    session = Path(session)
    root = session / "takes" if (session / "takes").is_dir() else session
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"[0-9]{6}", p.name)):
        take_id = folder.name
        mkvs = sorted(folder.glob(f"{take_id}_[012].mkv"))
        if not mkvs:
            continue
        wav = folder / f"{take_id}.wav"
        log = folder / f"{take_id}{TAKE_LOG_SUFFIX}"
        cameras = [int(p.stem[-1]) for p in mkvs]
        found.append(
            SessionTake(
                take_id, mkvs, cameras, wav if wav.is_file() else None, log if log.is_file() else None, landmark_files_beside(mkvs, cameras)
            )
        )
    if not found:
        raise RigError(f"{session}: no recorded take (expected takes/ID/ID_c.mkv)")
    return found


#: The share of a take's frames a camera may lack (dropped or damaged captures) before the take fails.
DAMAGED_LIMIT = 0.01


def _check_damage(take_id: str, lacking: dict[int, int], frames: int, allow_damaged: bool) -> None:
    over = {c: n for c, n in lacking.items() if n > DAMAGED_LIMIT * frames}
    if over and not allow_damaged:
        listed = ", ".join(f"camera {c}: {n} of {frames} frames" for c, n in sorted(over.items()))
        raise DamagedTake(
            f"take {take_id}: frames dropped or damaged above the {DAMAGED_LIMIT:.0%} limit ({listed}); "
            "re-record the take, or keep it with --allow-damaged (the frames are written as no depth and a black "
            "image and listed in ID.meta.json)"
        )


def convert_session(
    session: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    crf: int | None = None,
    progress: bool = True,
    threads: int = 0,
    workers: int | None = None,
    log=None,
) -> dict:
    """Convert every take of a session folder that is not in ``out_dir`` yet (rerun to resume).

    Takes the recorder marked bad (``"status": "bad"`` in the take log) are left out. One take's
    error does not stop the others: it is listed in the returned summary under ``failed``.
    """
    log = log or _LOG.info
    summary = {"converted": [], "skipped_existing": [], "skipped_bad": [], "failed": {}}
    for take in find_session_takes(session):
        take_log = read_take_log(take.take_log) if take.take_log else None
        if take_log and take_log.get("status") == "bad":
            summary["skipped_bad"].append(take.take_id)
            continue
        if (Path(out_dir) / take.take_id).exists():
            summary["skipped_existing"].append(take.take_id)
            continue
        try:
            report = convert_take(
                take.recordings,
                take.take_id,
                out_dir,
                audio=take.audio,
                take_log=take_log,
                camera_ids=take.camera_ids,
                crf=crf,
                progress=progress,
                threads=threads,
                workers=workers,
                log=log,
                landmarks=take.landmarks,
            )
        except RigError as exc:
            summary["failed"][take.take_id] = str(exc)
            log(f"mmface4d rig convert: take {take.take_id} FAILED: {exc}")
            continue
        summary["converted"].append(report.as_dict())
    return summary
