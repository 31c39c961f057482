"""Face motion at 30 fps driven by speech: visemes, prosody, blinks, emotion, head motion.

Everything here works in EXPRESSION-COEFFICIENT space, on the named modes of the face model
(``jaw_open``, ``lip_pucker``, ``lip_stretch``, ``lip_press``, ``smile``, ``brow_raise``,
``eye_blink``), in units of one standard deviation of the mode; :mod:`.takes` turns the curves
into vertices with any model that names these modes.

Lower face, from the phoneme timings of the synthesiser:
  each eSpeak NG phoneme is mapped to viseme targets over (jaw_open, lip_pucker, lip_stretch,
  lip_press); diphthongs glide through two or three targets. Coarticulation follows Cohen and
  Massaro's dominance model: target k has dominance ``D_k(t) = a_k exp(-(|t - c_k| / w_k)^1.5)``
  around its centre ``c_k`` (moved ``ANTICIPATION`` seconds early, as lips lead the sound) with a
  width ``w_k = (d_k / 2 + 0.03 s) / speed`` from its duration ``d_k`` and the actor's articulation
  speed; the mouth is ``sum_k D_k T_k / (sum_k D_k + REST_DOMINANCE)``, so it relaxes to rest in
  silences. Bilabials (p, m) have the highest dominance: the lips close even in fast speech.
  Curves are evaluated 4 times per frame and averaged over the frame (a camera's exposure), so
  there are no frame-wise jumps.
Upper face, partly predictable from audio plus a style reference:
  ``brow_raise = brow_baseline + brow_gain * prominence(t - brow_lag) + emotion offset``, where the
  prosodic prominence comes from the AUDIO (z-scored log pitch and energy, see :func:`prominence`);
  blinks at the actor's rate with random timing (not predictable, by design).
Head: smooth random rotation (degrees, amplitude per actor) plus small nods that follow the
energy, and a few millimetres of translation; see :func:`head_motion`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Mouth modes the visemes drive, in the order of the target vectors.
MOUTH_MODES = ("jaw_open", "lip_pucker", "lip_stretch", "lip_press")
#: Every expression mode the generator animates; a face model must name all of them.
ANIMATED_MODES = MOUTH_MODES + ("smile", "brow_raise", "eye_blink")

ANTICIPATION = 0.04  # seconds the visible articulation leads the sound
REST_DOMINANCE = 0.02  # dominance of the rest pose, everywhere
OVERSAMPLING = 4  # evaluations per frame, averaged over the frame
#: Gain of each mouth mode after the viseme blend: more lip shaping than the raw targets, which
#: brings the per-axis lip speeds nearer those of the authors' sample take while an average actor's
#: open vowels still open the inner lips by about 8 to 11 mm.
MOUTH_GAINS = (1.0, 1.3, 1.3, 1.0)

# Vowel qualities (jaw_open, lip_pucker, lip_stretch, lip_press).
_OPEN = (1.0, 0.0, 0.1, 0.0)
_MID = (0.55, 0.0, 0.25, 0.0)
_ROUND_MID = (0.5, 0.75, 0.0, 0.0)
_ROUND_CLOSE = (0.25, 1.0, 0.0, 0.0)
_SPREAD_CLOSE = (0.2, 0.0, 0.9, 0.0)
_APICAL = (0.2, 0.0, 0.45, 0.0)  # eSpeak's i. and i[ (the "i" of zhi, si)
_NASAL_CODA = (0.3, 0.0, 0.1, 0.0)
_RHOTIC = (0.4, 0.3, 0.0, 0.0)
_VOWEL_LETTERS = {
    "A": _OPEN,
    "a": _OPEN,
    "@": _MID,
    "E": _MID,
    "e": _MID,
    "&": _MID,
    "o": _ROUND_MID,
    "u": _ROUND_CLOSE,
    "y": _ROUND_CLOSE,
    "i": _SPREAD_CLOSE,
}

# Consonants: (targets, dominance).
_CONSONANTS = {
    **{c: ((0.02, 0.0, 0.0, 1.0), 3.0) for c in ("p", "ph", "m", "b")},
    **{c: ((0.1, 0.0, 0.1, 0.5), 2.0) for c in ("f", "v")},
    "w": ((0.1, 0.9, 0.0, 0.0), 1.2),
    "j": ((0.1, 0.0, 0.5, 0.0), 1.0),
    **{c: ((0.1, 0.0, 0.35, 0.0), 0.8) for c in ("s", "ts", "tsh", "z", "S;", "tS;", "tS;h", "Z")},
    **{c: ((0.12, 0.25, 0.1, 0.0), 0.8) for c in ("s.", "ts.", "ts.h", "z.", "r")},
    **{c: ((0.2, 0.0, 0.05, 0.0), 0.4) for c in ("t", "th", "d", "n", "l")},
    **{c: ((0.25, 0.0, 0.0, 0.0), 0.4) for c in ("k", "kh", "g", "X", "h", "N")},
}
_PAUSE = ((0.0, 0.0, 0.0, 0.0), 0.8)
_VOWEL_DOMINANCE = 1.0


def viseme_targets(phoneme: str) -> list[tuple[tuple[float, float, float, float], float]]:
    """The viseme target(s) of one eSpeak NG phoneme mnemonic, each with its dominance.

    Stress marks (``'`` and ``,``) are ignored. A diphthong or a vowel with a coda gives one
    target per part (``'iou'`` -> i, o, u), played in order over the phoneme's duration. Pauses
    (``_``, ``_:``) give the rest pose; language switches (``(en)``) and unknown symbols give nothing.
    """
    name = phoneme.lstrip("',")
    if not name or name.startswith("("):
        return []
    if name.startswith("_"):
        return [_PAUSE]
    if name in _CONSONANTS:
        return [_CONSONANTS[name]]
    parts = []
    i = 0
    while i < len(name):
        letter = name[i]
        if letter == "i" and i + 1 < len(name) and name[i + 1] in ".[":
            parts.append(_APICAL)
            i += 2
            continue
        if name[i : i + 2] == "ng" or letter == "n":
            parts.append(_NASAL_CODA)
            i += 2 if name[i : i + 2] == "ng" else 1
            continue
        if letter == "r":
            parts.append(_RHOTIC)
        elif letter in _VOWEL_LETTERS:
            parts.append(_VOWEL_LETTERS[letter])
        # '-' and other diacritics change nothing visible
        i += 1
    return [(target, _VOWEL_DOMINANCE) for target in parts]


def frame_sample_times(num_frames: int, fps: float) -> np.ndarray:
    """(T, OVERSAMPLING) seconds: evenly spaced instants inside each frame's interval [t/fps, (t+1)/fps)."""
    offsets = (np.arange(OVERSAMPLING) + 0.5) / OVERSAMPLING
    return (np.arange(num_frames)[:, None] + offsets[None, :]) / fps


def viseme_curves(
    starts: np.ndarray, ends: np.ndarray, phonemes, num_frames: int, fps: float = 30.0, articulation_speed: float = 1.0
) -> np.ndarray:
    """Coarticulated mouth curves (T, 4) over :data:`MOUTH_MODES` from phoneme timings (seconds).

    Implements the dominance blend of the module docstring; each frame is the mean of
    :data:`OVERSAMPLING` evaluations inside it. Values are in [0, 1] (before the actor's amplitude).
    """
    centres, widths, dominances, targets = [], [], [], []
    for start, end, phoneme in zip(starts, ends, phonemes):
        parts = viseme_targets(str(phoneme))
        duration = float(end) - float(start)
        if not parts or duration <= 0.0:
            continue
        step = duration / len(parts)
        for k, (target, dominance) in enumerate(parts):
            centres.append(float(start) + (k + 0.5) * step - ANTICIPATION)
            widths.append((0.5 * step + 0.03) / articulation_speed)
            dominances.append(dominance)
            targets.append(target)
    times = frame_sample_times(num_frames, fps).reshape(-1)
    if not centres:
        return np.zeros((num_frames, len(MOUTH_MODES)))
    centres, widths = np.asarray(centres), np.asarray(widths)
    weight = np.asarray(dominances)[None, :] * np.exp(-((np.abs(times[:, None] - centres[None, :]) / widths[None, :]) ** 1.5))
    blended = weight @ np.asarray(targets) / (weight.sum(axis=1, keepdims=True) + REST_DOMINANCE)
    return blended.reshape(num_frames, OVERSAMPLING, len(MOUTH_MODES)).mean(axis=1)


@dataclass(frozen=True)
class Prosody:
    """Per-frame prosody of a take's audio (T,): ``energy_db`` (RMS in dB re full scale),
    ``log_f0`` (natural log of the pitch in Hz, NaN where unvoiced) and ``voiced`` (bool)."""

    energy_db: np.ndarray
    log_f0: np.ndarray
    voiced: np.ndarray


def prosody(
    samples: np.ndarray, sample_rate: int, num_frames: int, fps: float = 30.0, f0_range: tuple[float, float] = (60.0, 450.0)
) -> Prosody:
    """Energy and pitch per video frame.

    Frame t uses a 40 ms window centred on the middle of its interval. Energy is
    ``20 log10(RMS + 1e-6)``. Pitch comes from the Hann-windowed autocorrelation, normalised by
    its value at lag 0 and divided by the window's own autocorrelation (Boersma 1993): the pitch
    period is the SHORTEST lag in ``f0_range`` whose value is within 10% of the best (multiples of
    the period score almost as high; this avoids octave errors). A frame is voiced when that value
    exceeds 0.45 and the energy is within 35 dB of the take's loudest frame.
    """
    samples = np.asarray(samples, dtype=np.float64)
    half = int(round(0.02 * sample_rate))
    padded = np.pad(samples, (half, half + 1))
    centres = np.round((np.arange(num_frames) + 0.5) / fps * sample_rate).astype(int)
    centres = np.clip(centres, 0, len(samples))
    windows = np.stack([padded[c : c + 2 * half] for c in centres]) if num_frames else np.zeros((0, 2 * half))
    energy_db = 20.0 * np.log10(np.sqrt((windows**2).mean(axis=1)) + 1e-6)
    min_lag, max_lag = int(sample_rate / f0_range[1]), int(sample_rate / f0_range[0])
    window = np.hanning(2 * half)
    centred = windows - windows.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(centred * window[None, :], n=4 * half, axis=1)
    autocorr = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, : max_lag + 1]
    # Divide by the window's own autocorrelation (Boersma 1993) so long lags are not penalised.
    window_autocorr = np.fft.irfft(np.abs(np.fft.rfft(window, n=4 * half)) ** 2)[: max_lag + 1]
    normalised = (autocorr / np.maximum(autocorr[:, :1], 1e-12)) / (window_autocorr / window_autocorr[0])
    candidates = normalised[:, min_lag : max_lag + 1]
    # The shortest lag within 10% of the best one: a period's multiples score almost as high.
    near_best = candidates >= 0.9 * candidates.max(axis=1, keepdims=True)
    lags = min_lag + np.argmax(near_best, axis=1)
    peak = normalised[np.arange(num_frames), lags]
    loud = energy_db > (energy_db.max(initial=-120.0) - 35.0)
    voiced = (peak > 0.45) & loud
    log_f0 = np.where(voiced, np.log(sample_rate / np.maximum(lags, 1)), np.nan)
    return Prosody(energy_db=energy_db, log_f0=log_f0, voiced=voiced)


def _gaussian_smooth(values: np.ndarray, sigma_frames: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(np.asarray(values, dtype=np.float64), sigma_frames, axis=0, mode="nearest")


def prominence(features: Prosody, fps: float = 30.0) -> np.ndarray:
    """Prosodic prominence (T,), >= 0: where pitch and energy peak.

    ``relu(z(log f0) - 0.3)`` on voiced frames plus ``0.5 relu(z(energy) - 0.5)``, z-scores taken
    over the take's voiced frames, then smoothed with a Gaussian of 80 ms. Zero for a take
    without voiced frames.
    """
    voiced = features.voiced
    out = np.zeros(len(voiced))
    if voiced.sum() >= 2:
        f0 = features.log_f0[voiced]
        z_f0 = np.zeros(len(voiced))
        z_f0[voiced] = (f0 - f0.mean()) / max(f0.std(), 1e-3)
        energy = features.energy_db
        z_energy = (energy - energy[voiced].mean()) / max(energy[voiced].std(), 1e-3)
        out = np.maximum(z_f0 - 0.3, 0.0) * voiced + 0.5 * np.maximum(z_energy - 0.5, 0.0)
    return _gaussian_smooth(out, 0.08 * fps)


def shift_frames(values: np.ndarray, seconds: float, fps: float = 30.0) -> np.ndarray:
    """``values`` delayed by ``seconds`` (linear interpolation; the first value fills the start)."""
    times = np.arange(len(values)) / fps
    return np.interp(times - seconds, times, values)


def blink_curve(num_frames: int, rate_per_minute: float, rng: np.random.Generator, fps: float = 30.0) -> np.ndarray:
    """Eyelid closure (T,) in [0, 1] with blinks at ``rate_per_minute`` on average.

    Intervals between blink onsets follow a gamma distribution (shape 2, mean 60 / rate s, at
    least 0.4 s); the first onset is uniform within the first interval. A blink closes in 70 ms,
    stays closed 30 ms and opens in 150 ms (smooth-step edges), amplitude uniform in [0.85, 1].
    Frames average the closure over their interval.
    """
    mean_interval = 60.0 / rate_per_minute
    duration = num_frames / fps
    onsets = []
    t = rng.uniform(0.0, 1.0) * mean_interval
    while t < duration:
        onsets.append((t, rng.uniform(0.85, 1.0)))
        t += max(0.4, rng.gamma(2.0, mean_interval / 2.0))
    times = frame_sample_times(num_frames, fps)
    closure = np.zeros_like(times)
    for onset, amplitude in onsets:
        local = times - onset
        closing = np.clip(local / 0.07, 0.0, 1.0)
        opening = np.clip((local - 0.10) / 0.15, 0.0, 1.0)
        profile = _smoothstep(closing) * (1.0 - _smoothstep(opening))
        closure = np.maximum(closure, amplitude * profile)
    return closure.mean(axis=1)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    return x * x * (3.0 - 2.0 * x)


def smooth_noise(num_frames: int, sigma_seconds: float, rng: np.random.Generator, fps: float = 30.0, channels: int = 1) -> np.ndarray:
    """(T, channels) smooth Gaussian noise with unit standard deviation and correlation time ~``sigma_seconds``.

    White noise filtered by a Gaussian of ``sigma_seconds``, with margins so the ends are not
    special, rescaled by the filter's known gain ``sqrt(2 sqrt(pi) sigma)`` (sigma in frames).
    """
    sigma = sigma_seconds * fps
    margin = int(np.ceil(4 * sigma))
    white = rng.standard_normal((num_frames + 2 * margin, channels))
    from scipy.ndimage import gaussian_filter1d

    filtered = gaussian_filter1d(white, sigma, axis=0, mode="wrap")
    return filtered[margin : margin + num_frames] * np.sqrt(2.0 * np.sqrt(np.pi) * sigma)


def head_motion(
    num_frames: int, amplitude_degrees: float, energy_db: np.ndarray, rng: np.random.Generator, fps: float = 30.0
) -> tuple[np.ndarray, np.ndarray]:
    """Small rigid head motion: (T, 3) angles in degrees (pitch, yaw, roll) and (T, 3) translation in metres.

    Angles: smooth noise (correlation 0.5 s) times ``amplitude_degrees`` (roll at half of it),
    plus a nod on pitch that follows the z-scored energy smoothed over 0.25 s (0.2 x amplitude per unit).
    Translation: smooth noise of 2 mm per axis (correlation 0.8 s).
    """
    angles = smooth_noise(num_frames, 0.5, rng, fps, 3) * amplitude_degrees * np.array([1.0, 1.0, 0.5])
    energy = _gaussian_smooth(energy_db, 0.25 * fps)
    if num_frames > 1 and energy.std() > 0:
        angles[:, 0] += 0.2 * amplitude_degrees * (energy - energy.mean()) / energy.std()
    translation = smooth_noise(num_frames, 0.8, rng, fps, 3) * 0.002
    return angles, translation


def rotation_matrix(pitch_yaw_roll_degrees: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation ``Rz(roll) Ry(yaw) Rx(pitch)`` (angles about x, y, z of the face frame, degrees)."""
    a = np.deg2rad(np.asarray(pitch_yaw_roll_degrees, dtype=np.float64))
    cx, cy, cz = np.cos(a[..., 0]), np.cos(a[..., 1]), np.cos(a[..., 2])
    sx, sy, sz = np.sin(a[..., 0]), np.sin(a[..., 1]), np.sin(a[..., 2])
    one, zero = np.ones_like(cx), np.zeros_like(cx)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(a.shape[:-1] + (3, 3))
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(a.shape[:-1] + (3, 3))
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(a.shape[:-1] + (3, 3))
    return rz @ ry @ rx


#: Rotation from the face model's frame (+y up, +z out of the face) to a camera frame (+y down,
#: +z forward) for a face looking into the camera: 180 degrees about x, as in the authors' sample take.
FACE_TO_CAMERA = np.diag([1.0, -1.0, -1.0])


def head_pose_matrices(
    angles_degrees: np.ndarray, translation: np.ndarray, pivot: np.ndarray, camera_position: np.ndarray, base_angles_degrees: np.ndarray
) -> np.ndarray:
    """(T, 4, 4) camera-from-canonical transforms: ``x_cam = R x + t``.

    The head turns by ``base_angles + angles`` (degrees, see :func:`rotation_matrix`) about
    ``pivot`` (canonical coordinates, metres: a point in the neck) and shifts by ``translation``
    (canonical axes, metres); ``camera_position`` is where the pivot sits in the camera frame.
    With ``F = FACE_TO_CAMERA`` and ``R_h`` the head rotation:
    ``x_cam = F (R_h (x - p) + p + d) - F p + c``, i.e. ``R = F R_h`` and ``t = c - F R_h p + F d``.
    """
    rotations = FACE_TO_CAMERA @ rotation_matrix(np.asarray(base_angles_degrees)[None, :] + angles_degrees)
    translations = np.asarray(camera_position)[None, :] - rotations @ np.asarray(pivot) + (FACE_TO_CAMERA @ np.asarray(translation).T).T
    poses = np.zeros((len(angles_degrees), 4, 4))
    poses[:, :3, :3] = rotations
    poses[:, :3, 3] = translations
    poses[:, 3, 3] = 1.0
    return poses


#: Constant offsets of each emotion on the named modes (before the actor's emotion intensity).
EMOTION_OFFSETS = {
    "neutral": {},
    "happy": {"smile": 0.8, "brow_raise": 0.2, "jaw_open": 0.05},
    "angry": {"brow_raise": -0.6, "lip_press": 0.25, "lip_stretch": 0.1},
    "sad": {"brow_raise": 0.25, "smile": -0.5},
    "surprise": {"brow_raise": 0.9, "jaw_open": 0.15},
    "fear": {"brow_raise": 0.6, "lip_stretch": 0.4},
    "disgust": {"smile": -0.3, "lip_press": 0.2, "brow_raise": -0.35, "lip_stretch": 0.2},
}
#: How widely the mouth moves in each emotion, relative to neutral.
EMOTION_MOUTH_GAIN = {"neutral": 1.0, "happy": 1.1, "angry": 1.2, "sad": 0.8, "surprise": 1.15, "fear": 0.95, "disgust": 0.9}


@dataclass(frozen=True)
class FaceMotion:
    """The animation of one take.

    Attributes:
        curves: mode name (:data:`ANIMATED_MODES`) -> (T,) float64 expression coefficient.
        head_angles: (T, 3) degrees (pitch, yaw, roll) of head motion, before the actor's base orientation.
        head_translation: (T, 3) metres, canonical axes.
        prominence: (T,) the prosodic prominence that drove the brows (for analysis).
    """

    curves: dict
    head_angles: np.ndarray
    head_translation: np.ndarray
    prominence: np.ndarray


def animate(
    samples: np.ndarray,
    sample_rate: int,
    starts: np.ndarray,
    ends: np.ndarray,
    phonemes,
    style,
    emotion: str,
    num_frames: int,
    rng: np.random.Generator,
    fps: float = 30.0,
) -> FaceMotion:
    """Animate one take from its audio and phoneme timings (seconds from the first sample).

    ``style`` is a :class:`~mmface4d_datasets.synthetic.actors.SpeakingStyle`. Mouth:
    :func:`viseme_curves` times ``mouth_amplitude x viseme_weights x EMOTION_MOUTH_GAIN x MOUTH_GAINS``; brows:
    ``brow_baseline + brow_gain x prominence(t - brow_lag)``; smile: ``smile_baseline``; blinks:
    :func:`blink_curve`; every mode plus its emotion offset times ``emotion_intensity``; head:
    :func:`head_motion`. ``rng`` draws the blinks, then the head motion.
    """
    if emotion not in EMOTION_OFFSETS:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {tuple(EMOTION_OFFSETS)}")
    mouth = viseme_curves(starts, ends, phonemes, num_frames, fps, style.articulation_speed)
    mouth = mouth * (style.mouth_amplitude * EMOTION_MOUTH_GAIN[emotion]) * np.asarray(style.viseme_weights) * MOUTH_GAINS
    features = prosody(samples, sample_rate, num_frames, fps)
    drive = prominence(features, fps)
    curves = {mode: mouth[:, k] for k, mode in enumerate(MOUTH_MODES)}
    curves["brow_raise"] = style.brow_baseline + style.brow_gain * shift_frames(drive, style.brow_lag, fps)
    curves["smile"] = np.full(num_frames, style.smile_baseline)
    curves["eye_blink"] = blink_curve(num_frames, style.blink_rate, rng, fps)
    for mode, offset in EMOTION_OFFSETS[emotion].items():
        curves[mode] = curves[mode] + offset * style.emotion_intensity
    angles, translation = head_motion(num_frames, style.head_amplitude, features.energy_db, rng, fps)
    return FaceMotion(curves=curves, head_angles=angles, head_translation=translation, prominence=drive)
