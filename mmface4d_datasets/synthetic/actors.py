"""Synthetic actors: who speaks, with which voice, face shape and speaking style.

An actor depends only on the generation seed and its own index (never on how many actors a set
has), so takes can be generated in any order, in parallel, or resumed.

Metadata follow the paper's statistics: ages 15 to 68 with median 28, male:female 1.65. With few
actors no draw can match those figures exactly; we use low-discrepancy sequences (the golden-ratio
and silver-ratio additive recurrences from a seeded start) so that every prefix of the actor list
is spread as evenly as possible: the male share of the first K actors is within about 1/K of
1.65/2.65 and the ages fill the quantiles of the age distribution evenly.

Style (what a style reference reveals and a model can learn), per actor:
- ``mouth_amplitude``: overall scale of the viseme targets (how widely the actor articulates),
  log-normal (sigma 0.25) clipped to [0.65, 1.5];
- ``viseme_weights``: the actor's own balance of jaw opening, lip rounding, lip stretch and lip
  press (some people speak mostly with the jaw, others with the lips): geometric mean 1, each in
  [0.5, 2];
- ``articulation_speed``: how sharply one viseme hands over to the next (and the speaking rate);
- ``brow_gain``, ``brow_baseline``, ``brow_lag``: brow raise per unit of prosodic prominence,
  the resting brow, and the delay of the brow after the prosodic peak (the "upper-face habit");
- ``blink_rate``: blinks per minute (the timing is random per take);
- ``head_amplitude``: degrees of small rigid head motion; ``emotion_intensity``: scale of the
  emotion offsets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmface4d_datasets.facemodel import embedded
from mmface4d_datasets.synthetic.speech import FEMALE_VARIANTS, MALE_VARIANTS, Voice

#: Paper statistics the metadata follow.
MIN_AGE, MEDIAN_AGE, MAX_AGE = 15, 28, 68
MALE_TO_FEMALE = 1.65

_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0  # 0.618...: additive recurrence for ages
_SILVER = np.sqrt(2.0) - 1.0  # 0.414...: a second, independent recurrence for genders

#: Standard deviation of the identity coefficients we draw (the embedded model's plausible spread).
IDENTITY_SPREAD = embedded.IDENTITY_SPREAD

# Independent random streams of one generation seed (SeedSequence spawn keys).
STREAM_ACTOR = 1
STREAM_SENTENCES = 2
STREAM_TAKE = 3


def stream(seed: int, kind: int, *keys: int) -> np.random.Generator:
    """A NumPy generator for one purpose (``kind``) of one item (``keys``) under a generation ``seed``.

    Built from ``SeedSequence([seed, kind, *keys])``, so streams never overlap and one item's
    randomness does not depend on any other item's.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(kind), *map(int, keys)]))


@dataclass(frozen=True)
class SpeakingStyle:
    """Per-actor motion style; see the module docstring for the meaning of each field."""

    mouth_amplitude: float
    viseme_weights: tuple[float, float, float, float]  # jaw_open, lip_pucker, lip_stretch, lip_press
    articulation_speed: float
    brow_gain: float
    brow_baseline: float
    brow_lag: float  # seconds
    blink_rate: float  # per minute
    head_amplitude: float  # degrees
    emotion_intensity: float
    smile_baseline: float


@dataclass(frozen=True)
class Actor:
    """One synthetic identity.

    Attributes:
        index: position in the set (0-based); ``subject_id`` is ``f"synth{index + 1:04d}"``.
        gender: ``"male"`` or ``"female"``; age: whole years.
        identity: (K_id,) float32 identity coefficients in standard deviations of the model's identity basis,
            drawn from N(0, IDENTITY_SPREAD^2).
        voice: the actor's neutral voice (emotions modulate it, see :func:`emotional_voice`).
        style: :class:`SpeakingStyle`.
        camera_offset: (3,) metres, where the actor's face centre sits in camera 1's frame.
        base_rotation: (3,) degrees (pitch, yaw, roll) of the actor's habitual head orientation.
    """

    index: int
    subject_id: str
    gender: str
    age: int
    identity: np.ndarray
    voice: Voice
    style: SpeakingStyle
    camera_offset: np.ndarray
    base_rotation: np.ndarray


def age_quantile(u: float) -> int:
    """Age at quantile ``u`` in [0, 1) of our age model: 15 at 0, 28 at the median, 68 at 1.

    Below the median the age rises steeply (many young actors); above it slowly towards 68
    (a long tail), as in the paper's histogram.
    """
    if u < 0.5:
        years = MIN_AGE + (MEDIAN_AGE - MIN_AGE) * (u / 0.5) ** 0.8
    else:
        years = MEDIAN_AGE + (MAX_AGE - MEDIAN_AGE) * ((u - 0.5) / 0.5) ** 1.8
    return int(np.clip(np.floor(years + 0.5), MIN_AGE, MAX_AGE))


def subject_id_of(index: int) -> str:
    """The subject id of actor ``index`` (0-based): ``synth0001`` for 0."""
    return f"synth{index + 1:04d}"


def make_actor(seed: int, index: int, num_identity_modes: int = 80) -> Actor:
    """Actor ``index`` of the set generated with ``seed`` (deterministic, independent of other actors).

    Args:
        seed: generation seed (>= 0).
        index: 0-based actor index.
        num_identity_modes: length of the identity coefficient vector (the face model's identity basis).
    """
    if index < 0:
        raise ValueError(f"actor index must be >= 0, got {index}")
    start = stream(seed, STREAM_ACTOR, 2**31 - 1).random(2)  # seeded start of the two recurrences
    male = (start[1] + index * _SILVER) % 1.0 < MALE_TO_FEMALE / (1.0 + MALE_TO_FEMALE)
    age = age_quantile((start[0] + index * _GOLDEN) % 1.0)
    rng = stream(seed, STREAM_ACTOR, index)
    identity = (IDENTITY_SPREAD * rng.standard_normal(num_identity_modes)).astype(np.float32)

    variants = MALE_VARIANTS if male else FEMALE_VARIANTS
    speed = float(np.exp(rng.normal(0.0, 0.15)))
    voice = Voice(
        variant=variants[int(rng.integers(len(variants)))],
        rate=int(np.clip(round(165 * speed), 120, 230)),
        pitch=int(rng.integers(30, 52) if male else rng.integers(52, 76)),
        pitch_range=int(rng.integers(35, 75)),
    )
    log_weights = rng.normal(0.0, 0.5, size=4)
    weights = np.clip(np.exp(log_weights - log_weights.mean()), 0.5, 2.0)  # a balance, not an amplitude
    style = SpeakingStyle(
        mouth_amplitude=float(np.clip(np.exp(rng.normal(0.0, 0.25)), 0.65, 1.5)),
        viseme_weights=tuple(float(w) for w in weights),
        articulation_speed=speed,
        brow_gain=float(rng.uniform(0.2, 1.6)),
        brow_baseline=float(rng.normal(0.0, 0.35)),
        brow_lag=float(rng.uniform(0.0, 0.12)),
        blink_rate=float(rng.uniform(8.0, 28.0)),
        head_amplitude=float(rng.uniform(1.0, 4.0)),
        emotion_intensity=float(rng.uniform(0.6, 1.2)),
        smile_baseline=float(rng.normal(0.0, 0.2)),
    )
    camera_offset = np.array([rng.uniform(-0.03, 0.01), rng.uniform(0.0, 0.05), rng.uniform(0.66, 0.78)])
    base_rotation = np.array([rng.normal(0.0, 3.0), rng.normal(0.0, 4.0), rng.normal(0.0, 2.0)])
    return Actor(
        index=index,
        subject_id=subject_id_of(index),
        gender="male" if male else "female",
        age=age,
        identity=identity,
        voice=voice,
        style=style,
        camera_offset=camera_offset,
        base_rotation=base_rotation,
    )


#: Per emotion: (rate factor, pitch change, range change, volume factor) applied to an actor's voice.
EMOTION_PROSODY = {
    "neutral": (1.00, 0, 0, 1.00),
    "happy": (1.08, 8, 15, 1.10),
    "angry": (1.12, 2, 20, 1.30),
    "sad": (0.82, -8, -20, 0.80),
    "surprise": (1.05, 14, 25, 1.15),
    "fear": (1.18, 10, 10, 0.90),
    "disgust": (0.90, -5, 5, 1.00),
}


def emotional_voice(voice: Voice, emotion: str, rate_factor: float = 1.0) -> Voice:
    """The actor's ``voice`` as it sounds in ``emotion`` (faster and higher when happy, slower and lower when sad...).

    ``rate_factor`` scales the speaking rate further (used to fit a sentence into the allowed duration).
    Values are clipped to eSpeak NG's ranges.
    """
    rate, pitch, pitch_range, volume = EMOTION_PROSODY[emotion]
    return Voice(
        variant=voice.variant,
        rate=int(np.clip(round(voice.rate * rate * rate_factor), 80, 450)),
        pitch=int(np.clip(voice.pitch + pitch, 0, 100)),
        pitch_range=int(np.clip(voice.pitch_range + pitch_range, 0, 100)),
        volume=int(np.clip(round(voice.volume * volume), 0, 200)),
    )
