"""``mmface4d rig simulate``: synthetic takes as three Azure Kinects would record them, with the truth.

For each (subject, sentence) of the synthetic generator (:mod:`mmface4d_datasets.synthetic`):

1. the truth: the generator's face (its linear model, head motion, speech) plus per-subject and
   per-frame detail outside the model's linear span (:class:`~capture_rig.simulate_scene.SpanProjector`);
2. the scene: that face on a head shell and neck, static shoulders, a wall 1.5 m away
   (:class:`~capture_rig.simulate_scene.Scenery`), skin colours, one light fixed in the room;
3. each camera c (0, 1, 2) at each frame k, at the time k/30 s plus its clock jitter: the colour
   image (Lambert shading through the real lens), the depth camera's image (rendered in the depth
   camera, then noise, flying pixels, holes and 1 mm quantisation, :mod:`capture_rig.simulate_noise`),
   registered to colour by :class:`capture_rig.registration.DepthRegistration` exactly as
   ``rig convert`` does, and the 68 landmarks (noisy, NaN where hidden);
4. the files (docs/simulator.md):

   - ``DIR/takes/ID/``: ``ID.wav`` (late by the audio offset), ``ID_c.json``, ``ID_c.mp4``,
     ``ID_c.nut``, ``ID_c.landmarks.npy``, ``ID.meta.json`` (subject, sentence, emotion, text);
   - ``DIR/truth/ID/``: ``ID_filt_{0,1,2}.nut`` (true mesh in camera 1's frame), ``ID.wav``,
     ``ID.meta.json`` (true extrinsics, noise settings, audio offset, clock offsets) and
     ``ID.gt.npz`` (the generator's ground truth plus the detail and the true landmarks);
   - with ``mkv=True``, the same take as the recorder leaves it (``mmface4d rig record``'s session
     layout, what ``rig convert --session`` and ``build from-recordings`` read):
     ``DIR/session/takes/ID/``: ``ID_c.mkv`` (Azure Kinect-style recordings of the same frames),
     ``ID_c.landmarks.npy`` (the detected landmarks above, one row per capture: what an external
     detector would leave beside a recording), ``ID.wav`` (the late WAV) and ``ID.take.json`` (the
     recorder's take log: subject, sentence, text, and the host-clock timing from which ``rig
     convert`` recovers the audio offset).

Every take draws from its own seeded generator, so takes can be made in any order or in parallel
and the same arguments give the same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmface4d_datasets.vocabulary import FPS
from capture_rig.errors import RigError
from capture_rig.simulate_noise import NoiseSettings, depth_noise, landmark_noise
from capture_rig.simulate_scene import (
    RESOLUTIONS,
    Scenery,
    SpanProjector,
    calibration_json,
    detail_patterns,
    device_cameras,
    rig_extrinsics,
    serial_number,
)

#: Version of the simulator's rules (bumped whenever the same arguments would give other files).
SIMULATOR_VERSION = "2"  # 2: --mkv writes the recorder's session layout
#: Marker file that makes an output folder this command's own.
MARKER = "simulation.json"
#: With ``mkv=True``: the recording session folder (the recorder's layout) inside the output folder.
SESSION = "session"
#: Random stream of the simulator (the generator's own streams are 0..; this one keeps clear of them).
STREAM_SIMULATOR = 17
#: Number of per-frame expression detail patterns.
EXPRESSION_PATTERNS = 4
#: The light, fixed in the room (camera 1's frame, pointing to the light): above, left, in front.
LIGHT = np.array([-0.35, -0.6, -1.0])


@dataclass(frozen=True)
class SimulationOptions:
    resolution: str = "1080p"
    noise: NoiseSettings = NoiseSettings()
    mkv: bool = False
    num_vertices: int | None = None
    max_frames: int | None = None

    def as_dict(self) -> dict:
        return {
            "resolution": self.resolution,
            "noise": self.noise.as_dict(),
            "mkv": self.mkv,
            "num_vertices": self.num_vertices,
            "max_frames": self.max_frames,
        }


def _rng(seed: int, subject: int, sentence: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), STREAM_SIMULATOR, int(subject), int(sentence), int(purpose)])


class _Device:
    """One simulated Azure Kinect: cameras, the registration, writers."""

    def __init__(self, camera: int, resolution: str):
        self.index = camera
        self.colour, self.depth, self.k4a = device_cameras(camera, resolution)
        # the depth camera in camera 1's frame, for rendering
        self.depth_world = self.depth.with_extrinsics(self.colour.extrinsics @ self.depth.extrinsics)
        # as `rig convert` does (the colour camera's extrinsics play no part in the registration)
        self.registration = _registration(camera, resolution, self.depth, self.colour)
        from mmface4d_datasets.render import pixel_rays

        rays = pixel_rays(self.depth)
        self.depth_rays = np.concatenate([rays, np.ones((len(rays), 1))], axis=1)
        self.depth_rays /= np.linalg.norm(self.depth_rays, axis=1, keepdims=True)


_REGISTRATIONS: dict = {}


def _registration(camera, resolution, depth_camera, colour_camera):
    from capture_rig.registration import DepthRegistration

    key = (camera, resolution)
    if key not in _REGISTRATIONS:
        _REGISTRATIONS[key] = DepthRegistration(depth_camera, colour_camera)
    return _REGISTRATIONS[key]


def _interpolate(sequence: np.ndarray, time_frames: float) -> np.ndarray:
    """Linear interpolation of a (T, ...) sequence at a fractional frame index (clamped)."""
    last = len(sequence) - 1
    t = min(max(time_frames, 0.0), float(last))
    k = min(int(np.floor(t)), max(last - 1, 0))
    w = t - k
    if last == 0 or w == 0:
        return sequence[k].astype(np.float64)
    return (1 - w) * sequence[k].astype(np.float64) + w * sequence[k + 1].astype(np.float64)


def _face_normals_cam(vertices_cam: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (vertices_cam[triangles[:, k]] for k in range(3))
    n = np.cross(b - a, c - a)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-20)


def _tick(timings: dict, name: str, since: float) -> float:
    """Add the CPU seconds since ``since`` to ``timings[name]``; return the time now."""
    now = time.process_time()
    timings[name] = timings.get(name, 0.0) + now - since
    return now


def _jpeg(image: np.ndarray) -> bytes:
    """One MJPG frame as the Kinect's colour camera sends it (4:2:2, FFmpeg's mjpeg at q 2)."""
    from fractions import Fraction

    import av

    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = image.shape[1], image.shape[0], "yuvj422p"
    codec.time_base = Fraction(1, FPS)
    codec.options = {"qmin": "2", "qmax": "2"}
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format="yuvj422p")
    packets = list(codec.encode(frame)) + list(codec.encode(None))
    return b"".join(bytes(p) for p in packets)


def simulate_take(
    subject_index: int,
    sentence_index: int,
    seed: int,
    out_dir: str | os.PathLike,
    options: SimulationOptions = SimulationOptions(),
    model=None,
    projector=None,
) -> dict:
    """Simulate and write one take (takes/ID, truth/ID, session/takes/ID); returns a small report.

    Each take folder is written into a hidden sibling and renamed when complete.
    """
    from mmface4d_datasets import official
    from mmface4d_datasets.camera import take_json_fields
    from mmface4d_datasets.files import atomic_write_bytes, json_bytes
    from mmface4d_datasets.render import project_landmarks, rasterize, shade
    from mmface4d_datasets.synthetic.takes import FPS as GEN_FPS, synthesize_take, write_npz
    from mmface4d_datasets.take_files import ColourVideoWriter, DepthVideoWriter, write_landmarks

    started = time.perf_counter()
    timings: dict[str, float] = {}
    clock = time.process_time()
    out_dir = Path(out_dir)
    noise = options.noise
    take = synthesize_take(subject_index, sentence_index, seed, model=model, num_vertices=options.num_vertices)
    if model is None:
        from mmface4d_datasets.synthetic.takes import _face_model

        model = _face_model(None, options.num_vertices)
    projector = projector or SpanProjector(model)
    take_id = take.take_id
    T = take.num_frames if options.max_frames is None else min(take.num_frames, int(options.max_frames))
    audio = take.audio
    if T < take.num_frames:
        audio = audio[: int(round(T / GEN_FPS * take.sample_rate))]

    # ---- truth: the generator's face plus detail outside the model's span
    rng_detail = _rng(seed, subject_index, 0, 1)  # per subject (sentence 0 stream)
    subject_detail = detail_patterns(model, rng_detail, 1, noise.subject_detail_mm / 1000.0, projector=projector)[0]
    rng_take = _rng(seed, subject_index, sentence_index, 2)
    patterns = detail_patterns(model, rng_take, EXPRESSION_PATTERNS, 1.0, projector=projector)
    # amplitudes: the animated expression curves mixed at random, plus a slow drift; scaled to the RMS asked
    expression = take.expression[:T].astype(np.float64)
    mixing = rng_take.normal(size=(expression.shape[1], EXPRESSION_PATTERNS))
    drift = np.cumsum(rng_take.normal(size=(T, EXPRESSION_PATTERNS)), axis=0) / np.sqrt(max(T, 1))
    kernel = np.hanning(9)
    kernel /= kernel.sum()
    drift = np.stack([np.convolve(np.pad(d, 4, mode="edge"), kernel, mode="valid") for d in drift.T], axis=1)
    amplitudes = expression @ mixing + 0.5 * drift
    amplitudes -= amplitudes.mean(axis=0)
    per_frame = np.einsum("tp,pnc->tnc", amplitudes, patterns)
    scale = noise.expression_detail_mm / 1000.0 / max(float(np.sqrt((per_frame**2).sum(-1).mean())), 1e-15)
    amplitudes *= scale
    canonical = take.canonical_vertices()[:T].astype(np.float64) + subject_detail + per_frame * scale
    poses = take.head_pose[:T].astype(np.float64)
    truth = np.matmul(canonical, poses[:, :3, :3].transpose(0, 2, 1)) + poses[:, None, :3, 3]
    truth32 = truth.astype(np.float32)

    clock = _tick(timings, "truth", clock)
    # ---- scene, cameras, clocks
    rng_scene = _rng(seed, subject_index, 0, 3)
    scenery = Scenery(model, rng_scene, poses[0])
    face_colours = scenery.face_colours(model, rng_scene)
    faces = np.asarray(model.triangles, dtype=np.int64)
    N = model.num_vertices
    n_rigid = len(scenery.rigid_vertices)
    triangles = np.concatenate([faces, scenery.rigid_triangles + N, scenery.static_triangles + N + n_rigid]).astype(np.int64)
    colours = np.concatenate([face_colours, scenery.rigid_colours, scenery.static_colours])
    face_count = len(faces)
    rigid_world = np.matmul(scenery.rigid_vertices[None], poses[:, :3, :3].transpose(0, 2, 1)) + poses[:, None, :3, 3]
    clock = _tick(timings, "scenery", clock)
    devices = [_Device(c, options.resolution) for c in range(3)]
    clock = _tick(timings, "cameras_and_registration_setup", clock)
    rng_clock = _rng(seed, subject_index, sentence_index, 4)
    jitter_s = rng_clock.uniform(-0.5, 0.5, size=(3, T)) * noise.clock_jitter_ms / 1000.0
    jitter_s[1] = 0.0  # camera 1 is the clock reference
    audio_offset_s = float(rng_clock.uniform(-1, 1) * noise.audio_offset_max_ms / 1000.0)
    rng_depth = [_rng(seed, subject_index, sentence_index, 10 + c) for c in range(3)]
    rng_landmarks = [_rng(seed, subject_index, sentence_index, 20 + c) for c in range(3)]

    takes_dir, truth_dir, session_dir = out_dir / "takes", out_dir / "truth", out_dir / SESSION / "takes"
    staging = takes_dir / f".{take_id}.simulating-{os.getpid()}"
    truth_staging = truth_dir / f".{take_id}.simulating-{os.getpid()}"
    mkv_dir = session_dir / f".{take_id}.simulating-{os.getpid()}"
    staged = [staging, truth_staging] + ([mkv_dir] if options.mkv else [])
    for folder in staged:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    light_world = LIGHT / np.linalg.norm(LIGHT)
    true_landmarks = np.full((3, T, 68, 2), np.nan, dtype=np.float32)
    visible_landmarks = np.zeros((3, T, 68), dtype=bool)
    try:
        for device in devices:
            c = device.index
            colour_cam, depth_cam = device.colour, device.depth_world
            W, H = colour_cam.width, colour_cam.height
            R_c = colour_cam.extrinsics[:3, :3]
            light_cam = R_c.T @ light_world
            detected = np.full((T, 68, 2), np.nan, dtype=np.float32)
            jpegs, raw_depths, stamps = [], [], []
            with (
                DepthVideoWriter(staging / f"{take_id}_{c}.nut", W, H, fps=FPS) as depth_out,
                ColourVideoWriter(staging / f"{take_id}_{c}.mp4", W, H, fps=FPS, threads=1) as colour_out,
            ):
                for k in range(T):
                    clock = time.process_time()
                    t_frames = k + jitter_s[c, k] * FPS
                    face = _interpolate(truth, t_frames)
                    rigid = _interpolate(rigid_world, t_frames)
                    vertices = np.concatenate([face, rigid, scenery.static_vertices])
                    # colour
                    fragments = rasterize(vertices, triangles, colour_cam, checked=True)
                    clock = _tick(timings, "render_colour", clock)
                    vertices_cam = colour_cam.to_camera(vertices)
                    image = shade(fragments, vertices_cam, triangles, colors=colours, light=light_cam, ambient=0.3, background=(0, 0, 0))
                    uv, visible = project_landmarks(
                        vertices_cam[:N], model.keypoints, colour_cam, fragments, tolerance=noise.landmark_occlusion_m
                    )
                    true_landmarks[c, k] = uv
                    visible_landmarks[c, k] = visible
                    detected[k] = landmark_noise(uv, visible, noise, rng_landmarks[c])
                    clock = _tick(timings, "shade_and_landmarks", clock)
                    # depth, in the depth camera
                    dfrag = rasterize(vertices, triangles, depth_cam, checked=True)
                    clock = _tick(timings, "render_depth", clock)
                    dverts = depth_cam.to_camera(vertices)
                    mask = dfrag.triangle >= 0
                    cos_incidence = np.zeros(dfrag.depth.shape)
                    normals = _face_normals_cam(dverts, triangles)[dfrag.triangle[mask]]
                    rays = device.depth_rays[mask.reshape(-1)]
                    cos_incidence[mask] = np.abs(np.nan_to_num((normals * rays).sum(axis=1)))
                    raw = depth_noise(dfrag.depth, cos_incidence, noise, rng_depth[c])
                    clock = _tick(timings, "depth_noise", clock)
                    registered = device.registration(raw)
                    clock = _tick(timings, "registration", clock)
                    depth_out.write(registered)
                    colour_out.write(image)
                    clock = _tick(timings, "encode_take_videos", clock)
                    if options.mkv:
                        jpegs.append(_jpeg(image))
                        clock = _tick(timings, "encode_mjpg", clock)
                        raw_depths.append(raw)
                        stamps.append(FIRST_CAPTURE_DEVICE_USEC + int(round(k * 1e6 / FPS)))
            write_landmarks(staging / f"{take_id}_{c}.landmarks.npy", detected)
            if options.mkv:
                write_landmarks(mkv_dir / f"{take_id}_{c}.landmarks.npy", detected)
            authors = {
                "color_mode": f"MJPG_{device.k4a.color_resolution}",
                "depth_mode": device.k4a.depth_mode,
                "serial_number": serial_number(c),
                "stream_length_usec": int(round((T - 1) * 1e6 / FPS)),
            }
            colour_for_json = colour_cam.with_extrinsics(np.eye(4) if c == 1 else None)
            atomic_write_bytes(staging / f"{take_id}_{c}.json", json_bytes(authors | take_json_fields(colour_for_json, device.depth)))
            if options.mkv:
                from capture_rig.mkv_write import write_kinect_mkv

                write_kinect_mkv(
                    mkv_dir / f"{take_id}_{c}.mkv",
                    jpegs=jpegs,
                    depths=raw_depths,
                    timestamps_usec=stamps,
                    calibration_json=calibration_json(c),
                    colour_mode=f"MJPG_{device.k4a.color_resolution}",
                    depth_mode=device.k4a.depth_mode,
                    fps=FPS,
                    serial=serial_number(c),
                    bitexact=True,
                )

        # ---- audio: the truth is aligned to frame 0; the take's WAV is late by the offset
        shift = int(round(audio_offset_s * take.sample_rate))
        late = np.concatenate([np.zeros(max(shift, 0), np.float32), audio[max(-shift, 0) :]])[: len(audio)]
        late = np.pad(late, (0, len(audio) - len(late)))
        official.write_audio(staging / f"{take_id}.wav", late, take.sample_rate)
        official.write_audio(truth_staging / f"{take_id}.wav", audio, take.sample_rate)
        if options.mkv:
            shutil.copyfile(staging / f"{take_id}.wav", mkv_dir / f"{take_id}.wav")
            atomic_write_bytes(mkv_dir / f"{take_id}.take.json", json_bytes(_take_log(take_id, take, T, audio_offset_s, len(late))))

        sentence = take.sentence
        take_meta = {
            "take_id": take_id,
            "subject_id": take.actor.subject_id,
            "sentence_id": sentence.sentence_id,
            "emotion": sentence.emotion,
            "text": sentence.text,
            "fps": FPS,
            "num_frames": T,
            "synthetic": True,
            "formats": {
                "simulator": f"mmface4d rig simulate {SIMULATOR_VERSION}",
                "depth": "FFV1 gray16le NUT, millimetres along the colour camera's axis, registered to colour, 0 = none",
                "colour": "H.264 yuv420p MP4",
                "landmarks": "float32 (T, 68, 2) px, NaN = hidden",
            },
        }
        atomic_write_bytes(staging / f"{take_id}.meta.json", json_bytes(take_meta))

        official.write_mesh_sequence(truth_staging / f"{take_id}_filt", truth32, fps=FPS)
        meta = take.metadata()
        meta["num_frames"] = T
        meta["duration_s"] = round(len(audio) / take.sample_rate, 6)
        extrinsics = rig_extrinsics()
        meta["extrinsics"] = {
            "reference_camera": 1,
            "convention": "4x4 camera-1-from-camera-c transforms of the colour cameras, x_1 = R x_c + t, metres",
            "cameras": {str(c): extrinsics[c].round(12).tolist() for c in range(3)},
            "depth_to_colour": {str(d.index): d.depth.extrinsics.round(12).tolist() for d in devices},
        }
        meta["sync"] = {
            "mode": "simulated",
            "reference_camera": 1,
            "clock_offsets_s": {str(c): jitter_s[c].round(9).tolist() for c in range(3)},
            "audio_offset_s": round(audio_offset_s, 9),
            "note": "camera c's frame k shows the truth at (k + clock_offsets_s[c][k] * 30) / 30 s; "
            "the take's ID.wav is late by audio_offset_s (sample n of it is truth sample "
            "n - audio_offset_s * 16000); the truth's ID.wav is aligned to frame 0",
        }
        meta["simulation"] = {
            "version": SIMULATOR_VERSION,
            "options": options.as_dict(),
            "seed": int(seed),
            "calibration_json": {str(c): json.loads(calibration_json(c)) for c in range(3)},
            "detail_rms_mm": {"subject": noise.subject_detail_mm, "expression": noise.expression_detail_mm},
            "true_landmarks": f"{take_id}.gt.npz: landmarks (3, T, 68, 2) px through each "
            "colour camera's lens, landmarks_visible (3, T, 68)",
        }
        meta["formats"]["ground_truth"] = "ID.gt.npz (numpy .npz, no pickles), ground-truth format 1 + simulator arrays"
        atomic_write_bytes(truth_staging / f"{take_id}.meta.json", json_bytes(meta))
        gt = take.ground_truth()
        for key in ("expression", "head_pose", "head_angles", "prominence"):
            gt[key] = gt[key][:T]
        gt.update(
            {
                "subject_detail": subject_detail.astype(np.float32),
                "expression_detail_patterns": patterns.astype(np.float32),
                "expression_detail_amplitudes": amplitudes.astype(np.float32),
                "landmarks": true_landmarks,
                "landmarks_visible": visible_landmarks,
                "keypoints": np.asarray(model.keypoints, dtype=np.int64),
            }
        )
        write_npz(truth_staging / f"{take_id}.gt.npz", gt)
        finals = [takes_dir / take_id, truth_dir / take_id, session_dir / take_id]
        for folder, final in zip(staged, finals):
            if final.exists():
                shutil.rmtree(final)
            os.rename(folder, final)
    except BaseException:
        for folder in staged:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    seconds = time.perf_counter() - started
    residual = projector.residual_rms(subject_detail) * 1000.0
    return {
        "take_id": take_id,
        "frames": T,
        "seconds": round(seconds, 3),
        "seconds_per_frame": round(seconds / max(T, 1), 4),
        "face_triangles": face_count,
        "cpu_seconds": {k: round(v, 3) for k, v in timings.items()},
        "subject_detail_out_of_span_mm": round(residual, 4),
    }


#: The recorder's host-clock time of camera 1's first capture in the simulated take logs (seconds),
#: and that capture's device timestamp (microseconds; the MKV's first capture).
LOG_FIRST_CAPTURE_HOST_S = 1000.0
FIRST_CAPTURE_DEVICE_USEC = 1_000_000


def _take_log(take_id: str, take, num_frames: int, audio_offset_s: float, samples: int) -> dict:
    """``ID.take.json`` as the recorder writes it (capture_rig.recorder.rig) for a simulated take.

    The WAV is late by ``audio_offset_s`` (its sample n is the truth's sample n - offset x 16000),
    that is, the microphone started ``audio_offset_s`` before frame 0: the first sample's host time
    is frame 0's minus the offset, from which ``rig convert`` aligns the WAV to frame 0 again.
    Gender and age ride along for the release's split (a real session brings them in a manifest).
    """
    sentence, actor = take.sentence, take.actor
    return {
        "take_id": take_id,
        "status": "ok",
        "simulated": True,
        "subject_id": actor.subject_id,
        "sentence_id": sentence.sentence_id,
        "text": sentence.text,
        "emotion": sentence.emotion,
        "gender": actor.gender,
        "age": actor.age,
        "audio": {
            "sample_rate": take.sample_rate,
            "samples": int(samples),
            "first_sample_host_s": LOG_FIRST_CAPTURE_HOST_S - audio_offset_s,
        },
        "master": {"camera": 1, "first_capture_host_s": LOG_FIRST_CAPTURE_HOST_S, "first_capture_device_usec": FIRST_CAPTURE_DEVICE_USEC},
        "cameras": {str(c): {"captures": int(num_frames), "dropped_frames": []} for c in range(3)},
        "host_clock": "simulated",
    }


# ------------------------------------------------------------------------ a whole set
def _check_out(out_dir: Path, settings: dict) -> None:
    """The output folder rule: new or empty, or made by this command with the same settings."""
    marker = out_dir / MARKER
    if out_dir.exists() and not out_dir.is_dir():
        raise RigError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not marker.is_file():
            raise RigError(
                f"{out_dir}: the folder is not empty and was not made by `mmface4d rig simulate` "
                f"(no {MARKER}); choose a new or empty folder"
            )
        try:
            found = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RigError(f"{marker}: unreadable ({exc}); choose a new or empty folder") from None
        if found != settings:
            raise RigError(f"{out_dir}: was simulated with other settings ({marker}); choose a new or empty folder")


_WORKER = {}


def _init_worker(model):
    _WORKER["model"] = model
    _WORKER["projector"] = SpanProjector(model)


def _work(job):
    i, j, seed, out_dir, options = job
    return simulate_take(i, j, seed, out_dir, options, model=_WORKER.get("model"), projector=_WORKER.get("projector"))


def simulate(
    out_dir: str | os.PathLike,
    subjects: int,
    sentences: int,
    seed: int = 0,
    options: SimulationOptions = SimulationOptions(),
    workers: int = 1,
    progress: bool = True,
) -> dict:
    """Simulate ``subjects`` x ``sentences`` takes into ``out_dir`` (see the module docstring).

    Takes already complete from an earlier run with the same settings are kept (the run resumes).
    Returns a summary (takes written and skipped, seconds per frame).
    """
    from mmface4d_datasets.files import atomic_write_bytes, json_bytes
    from mmface4d_datasets.synthetic.takes import _check_set_arguments, _set_model, take_id_of

    try:
        _check_set_arguments(subjects, sentences, seed)
    except Exception as exc:
        raise RigError(str(exc)) from None
    if options.resolution not in RESOLUTIONS:
        raise RigError(f"--resolution must be one of {', '.join(RESOLUTIONS)}, got {options.resolution!r}")
    if options.mkv and RESOLUTIONS[options.resolution][2] is not None:
        raise RigError(
            f"--mkv needs an Azure Kinect colour mode; --resolution {options.resolution} is not one "
            f"(use {', '.join(k for k, v in RESOLUTIONS.items() if v[2] is None)})"
        )
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise RigError(f"--workers must be an integer >= 1, got {workers!r}")
    out_dir = Path(out_dir)
    settings = {
        "tool": "mmface4d rig simulate",
        "version": SIMULATOR_VERSION,
        "subjects": int(subjects),
        "sentences": int(sentences),
        "seed": int(seed),
        "options": options.as_dict(),
    }
    _check_out(out_dir, settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_dir / MARKER, json_bytes(settings))
    model = _set_model(None, options.num_vertices)
    jobs, skipped = [], []
    for i in range(subjects):
        for j in range(sentences):
            take_id = take_id_of(i, j)
            done = (
                (out_dir / "takes" / take_id).is_dir()
                and (out_dir / "truth" / take_id).is_dir()
                and (not options.mkv or (out_dir / SESSION / "takes" / take_id).is_dir())
            )
            if done:
                skipped.append(take_id)
            else:
                jobs.append((i, j, int(seed), out_dir, options))
    from tqdm.auto import tqdm

    reports = []
    started = time.perf_counter()
    with tqdm(total=len(jobs), desc="rig simulate", unit="take", disable=not progress) as bar:
        if workers == 1 or len(jobs) <= 1:
            _init_worker(model)
            for job in jobs:
                reports.append(_work(job))
                bar.update()
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context, initializer=_init_worker, initargs=(model,)) as pool:
                for report in pool.map(_work, jobs):
                    reports.append(report)
                    bar.update()
    frames = sum(r["frames"] for r in reports)
    seconds = time.perf_counter() - started
    return {
        "out": str(out_dir),
        "written": [r["take_id"] for r in reports],
        "skipped_existing": skipped,
        "frames": frames,
        "seconds": round(seconds, 3),
        "seconds_per_frame": round(seconds / frames, 4) if frames else None,
        "takes": reports,
    }
