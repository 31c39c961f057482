"""Synthetic takes: speech, face motion and ground truth, in memory or on disk.

:func:`synthesize_take` makes one take in memory (a :class:`SyntheticTake`);
:func:`write_take` writes it in the DESIGN.md take layout; :func:`generate_takes` does both for
a whole set with a progress bar, resumably.

Identifiers. Actor ``i`` (0-based) is subject ``synth{i+1:04d}``; its sentence ``j`` (0-based)
is take ``{i+1:03d}{j+1:03d}`` (six digits, unique in the set and the same whatever the set's
size, hence at most 999 subjects and 999 sentences each).

Randomness. Every take draws from its own generator seeded by (seed, subject, sentence) (see
:func:`~mmface4d_datasets.synthetic.actors.stream`): one take never depends on another, so takes
can be made in any order or in parallel and the same seed gives the same bytes.

Geometry. Canonical vertices are the face model's ``vertices(identity, expression)`` (metres,
+y up, +z out of the face). ``head_pose[t]`` maps them into camera 1's frame
(``x_cam = R x + t``, Azure Kinect axes: +x right, +y down, +z forward), placing the face about
0.66 to 0.78 m in front of the camera and looking at it, as in the authors' sample take (there
the face centre is at about (-0.014, 0.033, 0.72) m, chin below the eyes in +y and the nose tip
nearer the camera than the eyes). The ``.nut`` meshes hold these camera-frame vertices.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmface4d_datasets.vocabulary import FPS, SAMPLE_RATE
from mmface4d_datasets.files import atomic_write_bytes, json_bytes, npz_bytes

from mmface4d_datasets.errors import MMFace4DError
from mmface4d_datasets.synthetic.actors import STREAM_SENTENCES, STREAM_TAKE, Actor, emotional_voice, make_actor, stream
from mmface4d_datasets.synthetic.corpus import CORPUS_VERSION, Sentence, draw_sentences
from mmface4d_datasets.synthetic.motion import (
    ANIMATED_MODES,
    FACE_TO_CAMERA,
    animate,
    head_pose_matrices,
    rotation_matrix,
)
from mmface4d_datasets.synthetic.speech import synthesize_speech

#: Version of the generator's rules: bumped whenever the same seed would give different takes.
GENERATOR_VERSION = "2"  # 2: side cameras at 45 degrees, camera 0 at +x (was 30 degrees, mirrored)
#: The kind of output a `mmface4d synth` folder is (mmface4d_datasets.output_folders).
SYNTH_KIND = "synth"
#: Durations of the paper's sentences (seconds); every take's audio lies within.
MIN_DURATION, MAX_DURATION = 0.7, 11.4
MAX_SUBJECTS = MAX_SENTENCES = 999
#: RMS of the background noise added to the audio (-60 dB re full scale), like a quiet room.
NOISE_FLOOR = 1e-3
#: Yaw (degrees) of cameras 0, 1, 2 around the face; camera 1 is frontal and the reference frame.
#: DESIGN.md "Cameras": camera 0 on the subject's left (+x of camera 1's frame), camera 2 on the
#: right (-x), both 45 degrees off the frontal axis (the rotation is camera c from camera 1, so
#: yaw +45 puts camera 0's centre at +x).
CAMERA_YAWS = (45.0, 0.0, -45.0)
#: Distance (metres) from camera 1 at which cameras 0 and 2 look at the same point.
CAMERA_TARGET_DEPTH = 0.72


class SynthesisError(MMFace4DError):
    """Bad arguments for the synthetic generator, or an output folder it cannot use."""


@dataclass(frozen=True)
class SyntheticTake:
    """One synthetic take with its ground truth.

    Attributes:
        take_id: six digits. actor, sentence: who says what.
        audio: (S,) float32 at ``sample_rate`` (16 kHz), mono.
        vertices: (T, N, 3) float32 metres in camera 1's frame (head motion included), T = round(S / 16000 * 30).
        expression: (T, K_exp) float32 expression coefficients (named modes animated, the rest 0).
        identity: (K_id,) float32 identity coefficients.
        head_pose: (T, 4, 4) float32 camera-from-canonical transforms.
        phoneme_starts, phoneme_ends: (P,) float64 seconds from the first audio sample; phonemes: (P,) ``<U8``.
        head_angles: (T, 3) float32 degrees (pitch, yaw, roll) of the motion before the actor's base orientation.
        prominence: (T,) float32, the prosodic drive of the brows.
        topology: the face model's topology name. seed: the generation seed.
        voice: the eSpeak NG settings used (dict).
    """

    take_id: str
    actor: Actor
    sentence: Sentence
    audio: np.ndarray
    sample_rate: int
    vertices: np.ndarray
    expression: np.ndarray
    identity: np.ndarray
    head_pose: np.ndarray
    phoneme_starts: np.ndarray
    phoneme_ends: np.ndarray
    phonemes: np.ndarray
    head_angles: np.ndarray
    prominence: np.ndarray
    expression_names: tuple
    topology: str
    seed: int
    voice: dict

    @property
    def num_frames(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[1])

    @property
    def duration(self) -> float:
        """Audio length in seconds."""
        return self.audio.shape[0] / self.sample_rate

    def canonical_vertices(self) -> np.ndarray:
        """(T, N, 3) float32: the head-pose-free vertices, ``R^T (x_cam - t)`` per frame."""
        rotation = self.head_pose[:, :3, :3].astype(np.float64)
        translation = self.head_pose[:, :3, 3].astype(np.float64)
        local = self.vertices.astype(np.float64) - translation[:, None, :]
        return np.matmul(local, rotation).astype(np.float32)

    def metadata(self) -> dict:
        """The ``ID.meta.json`` content (DESIGN.md, Takes), JSON-serialisable."""
        from mmface4d_datasets import __version__

        actor = self.actor
        return {
            "take_id": self.take_id,
            "subject_id": actor.subject_id,
            "sentence_id": self.sentence.sentence_id,
            "emotion": self.sentence.emotion,
            "text": self.sentence.text,
            "gender": actor.gender,
            "age": actor.age,
            "fps": FPS,
            "sample_rate": self.sample_rate,
            "num_frames": self.num_frames,
            "num_vertices": self.num_vertices,
            "duration_s": round(self.duration, 6),
            "topology": self.topology,
            "synthetic": True,
            "devices": {
                "cameras": {str(c): {"serial_number": f"SYNTHETIC-CAM{c}", "model": "simulated Azure Kinect"} for c in range(3)},
                "microphone": {"serial_number": "SYNTHETIC-MIC0", "model": "simulated"},
            },
            "sync": {
                "mode": "daisy_chain",
                "master_camera": 1,
                "subordinate_delay_usec": {"0": 160, "2": 320},
                "audio_video_offset_s": 0.0,
                "note": "simulated: meshes and audio share one clock; frame t covers [t/30, (t+1)/30) s of the audio",
            },
            "extrinsics": {
                "reference_camera": 1,
                "convention": "4x4 camera-c-from-camera-1 transforms, x_c = R x_1 + t, metres",
                "cameras": {str(c): camera_extrinsics(c).round(9).tolist() for c in range(3)},
            },
            "formats": {
                "mesh": "authors' .nut: ID_filt_{0,1,2}.nut, FFV1 gray16le, per-frame min/max header (DESIGN.md)",
                "mesh_frame": "camera 1, metres",
                "audio": "WAV, 32-bit float, mono, 16 kHz",
                "ground_truth": "ID.gt.npz (numpy .npz, no pickles), ground-truth format 1",
            },
            "generator": {
                "name": "mmface4d_datasets.synthetic",
                "version": GENERATOR_VERSION,
                "package_version": __version__,
                "seed": self.seed,
                "corpus_version": CORPUS_VERSION,
                "speech": {"engine": "eSpeak NG (espeakng-loader)", **self.voice},
                "style": {k: (list(v) if isinstance(v, tuple) else round(float(v), 6)) for k, v in actor.style.__dict__.items()},
            },
        }

    def ground_truth(self) -> dict[str, np.ndarray]:
        """The ``ID.gt.npz`` arrays (ground-truth format 1); strings are fixed-width unicode, never objects."""
        return {
            "expression": self.expression,
            "expression_names": np.asarray(self.expression_names, dtype="<U16"),
            "identity": self.identity,
            "head_pose": self.head_pose,
            "head_angles": self.head_angles,
            "phoneme_starts": self.phoneme_starts,
            "phoneme_ends": self.phoneme_ends,
            "phonemes": self.phonemes,
            "prominence": self.prominence,
            "topology": np.asarray(self.topology),
            "fps": np.asarray(FPS, dtype=np.int64),
            "seed": np.asarray(self.seed, dtype=np.int64),
        }


def camera_extrinsics(camera: int) -> np.ndarray:
    """(4, 4) float64 transform from camera 1's frame to camera ``camera``'s (0, 1 or 2).

    Camera c is turned by ``CAMERA_YAWS[c]`` degrees about the vertical axis through the point
    ``(0, 0, CAMERA_TARGET_DEPTH)`` of camera 1's frame, which therefore stays on every camera's axis.
    """
    rotation = rotation_matrix(np.array([0.0, CAMERA_YAWS[camera], 0.0]))
    target = np.array([0.0, 0.0, CAMERA_TARGET_DEPTH])
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = target - rotation @ target
    return out


def take_id_of(subject_index: int, sentence_index: int) -> str:
    """Six-digit take id of sentence ``sentence_index`` of actor ``subject_index`` (both 0-based)."""
    if not (0 <= subject_index < MAX_SUBJECTS and 0 <= sentence_index < MAX_SENTENCES):
        raise SynthesisError(
            f"take ids cover {MAX_SUBJECTS} subjects x {MAX_SENTENCES} sentences; got subject {subject_index}, sentence {sentence_index}"
        )
    return f"{subject_index + 1:03d}{sentence_index + 1:03d}"


def _face_model(model, num_vertices):
    if model is not None:
        if num_vertices is not None and num_vertices != model.num_vertices:
            raise SynthesisError(
                f"num_vertices={num_vertices} disagrees with the given face model ({model.topology}, {model.num_vertices} vertices)"
            )
        return model
    from mmface4d_datasets.facemodel import load_face_model

    options = {} if num_vertices is None else {"num_vertices": int(num_vertices)}
    return load_face_model("default", **options)


def speak_for_take(text: str, actor: Actor, emotion: str, rng: np.random.Generator):
    """Speech for one take, padded with silence and fitted into [MIN_DURATION, MAX_DURATION].

    Returns (audio, starts, ends, phonemes, voice). Leading and trailing silences are uniform in
    [0.15, 0.4] s; a take that would exceed MAX_DURATION is re-spoken faster (up to three times),
    one shorter than MIN_DURATION gets longer silences.
    """
    lead, trail = rng.uniform(0.15, 0.4, size=2)
    espeak_seed = int(rng.integers(2**31 - 1))
    rate_factor = 1.0
    for _ in range(4):
        voice = emotional_voice(actor.voice, emotion, rate_factor)
        speech = synthesize_speech(text, voice, seed=espeak_seed)
        budget = MAX_DURATION - lead - trail - 0.05
        if speech.duration <= budget or voice.rate >= 450:
            break
        rate_factor *= speech.duration / budget * 1.03
    if speech.duration + lead + trail > MAX_DURATION:
        raise SynthesisError(f"sentence {text!r} lasts {speech.duration:.2f} s even at the fastest rate")
    missing = MIN_DURATION + 0.01 - (speech.duration + lead + trail)
    if missing > 0:
        lead, trail = lead + missing / 2, trail + missing / 2
    lead_samples, trail_samples = int(round(lead * SAMPLE_RATE)), int(round(trail * SAMPLE_RATE))
    audio = np.concatenate([np.zeros(lead_samples), speech.samples, np.zeros(trail_samples)])
    audio = audio + rng.normal(0.0, NOISE_FLOOR, size=audio.shape)
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    offset = lead_samples / SAMPLE_RATE
    voice_settings = {
        "voice": voice.name,
        "rate_wpm": voice.rate,
        "pitch": voice.pitch,
        "pitch_range": voice.pitch_range,
        "volume": voice.volume,
        "espeak_seed": espeak_seed,
    }
    return audio, speech.phoneme_starts + offset, speech.phoneme_ends + offset, speech.phonemes, voice_settings


def synthesize_take(subject_index: int, sentence_index: int, seed: int = 0, model=None, num_vertices: int | None = None) -> SyntheticTake:
    """Make take ``(subject_index, sentence_index)`` of the set generated with ``seed``, in memory.

    Args:
        subject_index, sentence_index: 0-based, each below 999.
        seed: generation seed (>= 0).
        model: a :class:`~mmface4d_datasets.facemodel.FaceModel` naming the modes of
            :data:`~mmface4d_datasets.synthetic.motion.ANIMATED_MODES` (default: the embedded model).
        num_vertices: vertex count of the embedded model when ``model`` is None (its default otherwise).

    Returns:
        :class:`SyntheticTake`; the same arguments give identical arrays.

    Raises:
        SynthesisError: bad indices or a model without the needed named modes.
    """
    if seed < 0:
        raise SynthesisError(f"seed must be >= 0, got {seed}")
    take_id = take_id_of(subject_index, sentence_index)
    model = _face_model(model, num_vertices)
    missing = [m for m in ANIMATED_MODES if m not in model.expression_names]
    if missing:
        raise SynthesisError(
            f"face model {model.topology} does not name the expression modes {missing}; the generator animates {list(ANIMATED_MODES)}"
        )
    actor = make_actor(seed, subject_index, model.num_identity)
    sentence = draw_sentences(sentence_index + 1, stream(seed, STREAM_SENTENCES, subject_index))[sentence_index]
    rng = stream(seed, STREAM_TAKE, subject_index, sentence_index)
    audio, starts, ends, phonemes, voice = speak_for_take(sentence.text, actor, sentence.emotion, rng)
    num_frames = int(round(audio.shape[0] / SAMPLE_RATE * FPS))
    motion = animate(audio, SAMPLE_RATE, starts, ends, phonemes, actor.style, sentence.emotion, num_frames, rng, FPS)

    expression = np.zeros((num_frames, model.num_expression), dtype=np.float32)
    for mode in ANIMATED_MODES:
        expression[:, model.expression_index(mode)] = motion.curves[mode]
    canonical = model.vertices(actor.identity, expression).astype(np.float64)

    mean = np.asarray(model.mean, dtype=np.float64)
    low, high = mean.min(axis=0), mean.max(axis=0)
    centre = (low + high) / 2
    # Pivot of the head: in the neck, a quarter of the face height above the chin, 15 cm behind the nose tip.
    pivot = np.array([centre[0], low[1] + 0.25 * (high[1] - low[1]), high[2] - 0.15])
    pivot_in_camera = actor.camera_offset + FACE_TO_CAMERA @ (pivot - centre)
    poses = head_pose_matrices(motion.head_angles, motion.head_translation, pivot, pivot_in_camera, actor.base_rotation)
    # The stored float32 pose is THE pose: the camera-frame vertices are made with exactly it.
    poses = poses.astype(np.float32).astype(np.float64)
    vertices = np.matmul(canonical, poses[:, :3, :3].transpose(0, 2, 1)) + poses[:, None, :3, 3]
    return SyntheticTake(
        take_id=take_id,
        actor=actor,
        sentence=sentence,
        audio=audio,
        sample_rate=SAMPLE_RATE,
        vertices=vertices.astype(np.float32),
        expression=expression,
        identity=actor.identity.astype(np.float32),
        head_pose=poses.astype(np.float32),
        phoneme_starts=np.asarray(starts, dtype=np.float64),
        phoneme_ends=np.asarray(ends, dtype=np.float64),
        phonemes=np.asarray(phonemes, dtype="<U8"),
        head_angles=motion.head_angles.astype(np.float32),
        prominence=motion.prominence.astype(np.float32),
        expression_names=tuple(model.expression_names),
        topology=model.topology,
        seed=int(seed),
        voice=voice,
    )


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as a compressed ``.npz`` readable by ``np.load`` (``allow_pickle=False``), byte-reproducibly.

    Members keep the given order and a fixed ZIP date (:func:`mmface4d_datasets.files.npz_bytes`);
    object arrays are refused. Written atomically.
    """
    try:
        data = npz_bytes(arrays, compressed=True, sort=False)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    atomic_write_bytes(path, data)


def write_take(take: SyntheticTake, folder: str | os.PathLike) -> Path:
    """Write ``take`` as the take folder ``folder`` (which must not exist yet), atomically.

    Files (DESIGN.md, Takes): ``ID.wav`` (32-bit float, 16 kHz, :func:`~mmface4d_datasets.official.write_audio`), ``ID_filt_{0,1,2}.nut`` (camera-frame
    vertices in the authors' encoding), ``ID.meta.json``, ``ID.gt.npz``. They are written into a
    hidden sibling folder that is renamed to ``folder`` when complete, so the folder appears complete
    or not at all. Returns ``folder``.
    """
    from mmface4d_datasets.official import write_audio, write_mesh_sequence

    folder = Path(folder)
    if folder.exists():
        raise SynthesisError(f"{folder}: take folder exists already")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        take_id = take.take_id
        write_audio(staging / f"{take_id}.wav", take.audio, take.sample_rate)
        write_mesh_sequence(staging / f"{take_id}_filt", take.vertices, fps=FPS)
        (staging / f"{take_id}.meta.json").write_bytes(json_bytes(take.metadata()))
        write_npz(staging / f"{take_id}.gt.npz", take.ground_truth())
        os.rename(staging, folder)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):  # a full disk, a read-only folder: name the take folder being written
            from mmface4d_datasets.errors import output_error

            raise output_error(folder, exc) from exc
        raise
    return folder


def _check_existing(folder: Path, take_id: str, seed: int, topology: str) -> None:
    """Accept a take folder left by an earlier run only if it was made by the same generator, seed and model."""
    meta_path = folder / f"{take_id}.meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        generator = meta["generator"]
        made_with = (generator["version"], generator["seed"], meta["topology"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SynthesisError(
            f"{folder}: exists but is not a complete synthetic take ({exc}); remove it or choose another output folder"
        ) from None
    wanted = (GENERATOR_VERSION, seed, topology)
    if made_with != wanted:
        raise SynthesisError(
            f"{folder}: was generated with (version, seed, topology) = {made_with}, this run uses {wanted}; choose another output folder"
        )


def _check_set_arguments(subjects, sentences, seed) -> None:
    for name, value, high in (("subjects", subjects, MAX_SUBJECTS), ("sentences", sentences, MAX_SENTENCES)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= high:
            raise SynthesisError(f"{name} must be an integer in 1..{high}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SynthesisError(f"seed must be an integer >= 0, got {seed!r}")


def _set_model(model, num_vertices):
    try:
        return _face_model(model, num_vertices)
    except SynthesisError:
        raise
    except MMFace4DError as exc:
        raise SynthesisError(f"--vertices {num_vertices}: {exc}") from None


def iter_takes(subjects: int, sentences: int, seed: int = 0, num_vertices: int | None = None, model=None):
    """Yield the :class:`SyntheticTake` of every (subject, sentence) in order, in memory (nothing written).

    The same takes, in the same order, as :func:`generate_takes` writes; for building a release
    without a round trip through disk. Arguments as for :func:`generate_takes`.
    """
    _check_set_arguments(subjects, sentences, seed)
    model = _set_model(model, num_vertices)
    for subject_index in range(subjects):
        for sentence_index in range(sentences):
            yield synthesize_take(subject_index, sentence_index, int(seed), model=model)


_WORKER_MODEL = None


def _init_worker(model) -> None:
    global _WORKER_MODEL
    _WORKER_MODEL = model


def _make_take(out_dir: Path, subject_index: int, sentence_index: int, seed: int, model=None) -> tuple[Path, list]:
    """Write one take unless an earlier run did; return its folder and its manifest row."""
    model = model if model is not None else _WORKER_MODEL
    take_id = take_id_of(subject_index, sentence_index)
    folder = out_dir / f"synth{subject_index + 1:04d}" / take_id
    if folder.exists():
        _check_existing(folder, take_id, seed, model.topology)
        meta = json.loads((folder / f"{take_id}.meta.json").read_text(encoding="utf-8"))
    else:
        take = synthesize_take(subject_index, sentence_index, seed, model=model)
        write_take(take, folder)
        meta = take.metadata()
    return folder, [take_id, meta["subject_id"], meta["sentence_id"], meta["text"], meta["gender"], meta["age"]]


def generate_takes(
    out_dir,
    subjects: int,
    sentences: int,
    seed: int = 0,
    num_vertices: int | None = None,
    model=None,
    progress: bool = True,
    workers: int = 1,
) -> list[Path]:
    """Write ``subjects`` x ``sentences`` synthetic takes under ``out_dir``; return the take folders.

    Layout: ``out_dir/{subject_id}/{take_id}/`` holding ``ID.wav``, ``ID_filt_{0,1,2}.nut``,
    ``ID.meta.json`` and ``ID.gt.npz`` (one folder per take, as the release builder reads), plus
    ``out_dir/manifest.csv`` (take_id, subject_id, sentence_id, text, gender, age) of this run's takes.
    Each take folder appears atomically. Takes already present from an earlier run with the same
    seed, generator version and model are kept (the run resumes); a take folder from a different
    run is an error. Deterministic: the same arguments give the same bytes, whatever ``workers``.

    Args:
        out_dir: output folder (created if missing).
        subjects, sentences: K >= 1 actors, M >= 1 sentences each (each at most 999).
        seed: generation seed (>= 0).
        num_vertices: vertex count of the embedded model (default: the model's default); not with ``model``.
        model: any face model naming the animated modes (default: the embedded model).
        progress: show a tqdm progress bar on stderr.
        workers: processes making takes in parallel (1: in this process).
    """
    _check_set_arguments(subjects, sentences, seed)
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise SynthesisError(f"workers must be an integer >= 1, got {workers!r}")
    model = _set_model(model, num_vertices)
    out_dir = Path(out_dir)
    from mmface4d_datasets.output_folders import output_folder

    # New, empty or an earlier `synth` output only (mmface4d_datasets.output_folders; it also refuses
    # a file or an unwritable folder); one writer at a time.
    with output_folder(out_dir, SYNTH_KIND) as output:
        output.will_write(out_dir / "manifest.csv")
        return _generate_into(out_dir, subjects, sentences, seed, model, progress, workers)


def _generate_into(out_dir: Path, subjects: int, sentences: int, seed: int, model, progress: bool, workers: int) -> list[Path]:

    from tqdm.auto import tqdm

    jobs = [(i, j) for i in range(subjects) for j in range(sentences)]
    bar = tqdm(total=len(jobs), desc="synthetic takes", unit="take", disable=not progress)
    results = []
    with bar:
        if workers == 1:
            for i, j in jobs:
                results.append(_make_take(out_dir, i, j, int(seed), model))
                bar.update()
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn: a fresh interpreter per worker, nothing inherited from this process's libraries.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context, initializer=_init_worker, initargs=(model,)) as pool:
                futures = [pool.submit(_make_take, out_dir, i, j, int(seed)) for i, j in jobs]
                for future in futures:
                    results.append(future.result())
                    bar.update()
    _write_manifest(out_dir / "manifest.csv", [row for _, row in results])
    return [folder for folder, _ in results]


def _write_manifest(path: Path, rows: list[list]) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["take_id", "subject_id", "sentence_id", "text", "gender", "age"])
    writer.writerows(rows)
    atomic_write_bytes(path, text.getvalue().encode("utf-8"))
