"""Real Mandarin speech with phoneme timings from eSpeak NG.

The ``espeakng-loader`` wheel carries ``libespeak-ng.so`` (1.52) and its data, so speech needs
nothing beyond ``pip install``. The library is driven through ctypes in synchronous mode with
phoneme events: every phoneme the synthesiser utters arrives as an event (type 7) whose
``sample`` field is its start in samples of the 22,050 Hz output. The samples are resampled to
16 kHz (``scipy.signal.resample_poly`` by 320/441), the format of the MMFace4D takes.

eSpeak NG is a process-global singleton (one voice, one set of parameters, one callback), so
every synthesis holds a module lock and sets the voice and all parameters afresh: the same text
and :class:`Voice` give the same samples, whatever was synthesised before.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

from mmface4d_datasets.vocabulary import SAMPLE_RATE
from mmface4d_datasets.errors import MMFace4DError


# Constants of speak_lib.h (eSpeak NG 1.52).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_END = 5
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_PARAM_PUNCTUATION = 5
_PARAM_CAPITALS = 6
_PARAM_WORDGAP = 7

#: eSpeak NG's voice variants used for Mandarin speakers (files of ``espeak-ng-data/voices/!v``).
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5")


class SpeechError(MMFace4DError):
    """eSpeak NG could not be loaded or refused a text or voice."""


class _Event(ctypes.Structure):
    # espeak_EVENT; the union ``id`` holds the phoneme mnemonic (up to 8 UTF-8 bytes) for phoneme events.
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK_TYPE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Voice:
    """How eSpeak NG speaks.

    Attributes:
        variant: voice variant appended to the Mandarin voice (``"m3"`` gives ``cmn+m3``); empty for the plain voice.
        rate: speaking rate in words per minute (eSpeak NG accepts 80..450; 175 is its default).
        pitch: base pitch, 0..100 (50 is the voice's default).
        pitch_range: pitch range, 0..100 (0 is monotone, 50 the default).
        volume: amplitude, 0..200 (100 is the default).
    """

    variant: str = ""
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50
    volume: int = 100

    def __post_init__(self):
        checks = (
            ("rate", self.rate, 80, 450),
            ("pitch", self.pitch, 0, 100),
            ("pitch_range", self.pitch_range, 0, 100),
            ("volume", self.volume, 0, 200),
        )
        for name, value, low, high in checks:
            if not low <= int(value) <= high:
                raise SpeechError(f"voice {name}={value} is outside eSpeak NG's range {low}..{high}")
        if self.variant and self.variant not in MALE_VARIANTS + FEMALE_VARIANTS:
            raise SpeechError(f"unknown voice variant {self.variant!r}; use one of {MALE_VARIANTS + FEMALE_VARIANTS}")

    @property
    def name(self) -> str:
        """The eSpeak NG voice name, e.g. ``cmn+f3``."""
        return f"cmn+{self.variant}" if self.variant else "cmn"


@dataclass(frozen=True)
class Speech:
    """Synthesised speech and the phonemes in it.

    Attributes:
        samples: (S,) float32 mono samples in [-1, 1] at ``sample_rate``.
        sample_rate: 16,000 Hz.
        phoneme_starts, phoneme_ends: (P,) float64 seconds from the first sample; a phoneme ends where the
            next one starts, the last one where eSpeak NG reports the end of the utterance.
        phonemes: (P,) eSpeak NG phoneme mnemonics (``'`` marks stress, ``_`` pauses), fixed-width unicode.
    """

    samples: np.ndarray
    sample_rate: int
    phoneme_starts: np.ndarray
    phoneme_ends: np.ndarray
    phonemes: np.ndarray

    @property
    def duration(self) -> float:
        """Length of the audio in seconds."""
        return self.samples.shape[0] / self.sample_rate


class _Engine:
    """One loading of ``libespeak-ng``: initialise, speak one text, terminate, unload.

    eSpeak NG keeps state between utterances in static variables (the phase of its pitch cycle,
    its flutter index), so the same text spoken twice in one process comes out a few samples
    apart. Each synthesis therefore loads the library afresh (about a millisecond) and unloads
    it afterwards, and seeds the library's random generator (otherwise seeded from the clock).
    Used only under ``_LOCK``. If another package of the same process holds ``libespeak-ng`` open,
    the unload cannot take effect and repeated syntheses may differ by a pitch cycle.
    """

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise SpeechError("speech needs the 'espeakng-loader' package: pip install espeakng-loader") from exc
        self.library_path = espeakng_loader.get_library_path()
        self.data_path = espeakng_loader.get_data_path()
        self.chunks: list[np.ndarray] = []
        self.events: list[tuple[int, int, str]] = []
        self.callback = _CALLBACK_TYPE(self._on_audio)  # kept referenced: C holds the pointer

    def _load(self):
        try:
            lib = ctypes.CDLL(self.library_path)
        except OSError as exc:
            raise SpeechError(f"could not load eSpeak NG from {self.library_path}: {exc}") from exc
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        native_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data_path.encode(), _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT
        )
        if native_rate <= 0:
            self._unload(lib, initialised=False)
            raise SpeechError(f"eSpeak NG failed to initialise with data at {self.data_path}")
        lib.espeak_SetSynthCallback(self.callback)
        return lib, native_rate

    @staticmethod
    def _unload(lib, initialised=True):
        import _ctypes

        if initialised:
            lib.espeak_Terminate()
        _ctypes.dlclose(lib._handle)

    def _on_audio(self, wav, num_samples, events):
        if num_samples > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type in (_EVENT_PHONEME, _EVENT_END):
                name = bytes(event.id).split(b"\0", 1)[0].decode("utf-8", "replace") if event.type == _EVENT_PHONEME else ""
                self.events.append((event.type, event.sample, name))
            i += 1
        return 0

    def synthesize(self, text: str, voice: Voice, seed: int) -> tuple[np.ndarray, list[tuple[int, int, str]], int]:
        """Speak ``text``; return int16 samples at the native rate, events (type, sample, name), native rate."""
        self.chunks, self.events = [], []
        lib, native_rate = self._load()
        try:
            lib.espeak_ng_SetRandSeed(int(seed))
            if lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise SpeechError(f"eSpeak NG has no voice {voice.name!r}")
            for parameter, value in (
                (_PARAM_RATE, voice.rate),
                (_PARAM_VOLUME, voice.volume),
                (_PARAM_PITCH, voice.pitch),
                (_PARAM_RANGE, voice.pitch_range),
                (_PARAM_PUNCTUATION, 0),
                (_PARAM_CAPITALS, 0),
                (_PARAM_WORDGAP, 0),
            ):
                lib.espeak_SetParameter(parameter, int(value), 0)
            data = text.encode("utf-8")
            buffer = ctypes.create_string_buffer(data)
            status = lib.espeak_Synth(buffer, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if status != 0:
                raise SpeechError(f"eSpeak NG refused the text {text!r} (error {status})")
            lib.espeak_Synchronize()
        finally:
            self._unload(lib)
        samples = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
        return samples, self.events, native_rate


_LOCK = threading.Lock()
_ENGINE: _Engine | None = None


def synthesize_speech(text: str, voice: Voice = Voice(), seed: int = 0) -> Speech:
    """Speak Mandarin ``text`` with eSpeak NG and return 16 kHz samples with phoneme timings.

    Args:
        text: Mandarin text (UTF-8 capable str); punctuation gives pauses.
        voice: variant, rate, pitch, range and volume (:class:`Voice`).
        seed: seed of eSpeak NG's own random generator (it varies pitch and noise); the same text, voice
            and seed give the same samples.

    Returns:
        :class:`Speech`. Phoneme times are the synthesiser's own sample positions divided by its
        22,050 Hz rate, so they are exact for the audio returned (resampling keeps time).

    Raises:
        SpeechError: empty text, a text eSpeak NG produces no sound for, or a failure of the library.
    """
    global _ENGINE
    if not text or not text.strip():
        raise SpeechError("cannot synthesise an empty text")
    with _LOCK:
        if _ENGINE is None:
            _ENGINE = _Engine()
        native, events, native_rate = _ENGINE.synthesize(text, voice, seed)
    if native.size == 0:
        raise SpeechError(f"eSpeak NG produced no audio for {text!r}")
    from scipy.signal import resample_poly

    samples = resample_poly(native.astype(np.float64) / 32768.0, SAMPLE_RATE, native_rate)
    samples = np.clip(samples, -1.0, 1.0).astype(np.float32)
    duration = samples.shape[0] / SAMPLE_RATE
    starts, names = [], []
    end_of_speech = duration
    for kind, sample, name in events:
        if kind == _EVENT_END:
            end_of_speech = min(duration, sample / native_rate)
        elif name:
            starts.append(min(duration, sample / native_rate))
            names.append(name)
    starts_array = np.asarray(starts, dtype=np.float64)
    ends_array = np.append(starts_array[1:], max(end_of_speech, starts_array[-1]) if starts else duration)
    # eSpeak NG reports the END of an utterance before its trailing pause events at times; keep ends ordered.
    ends_array = np.maximum(ends_array, starts_array)
    return Speech(
        samples=samples,
        sample_rate=SAMPLE_RATE,
        phoneme_starts=starts_array,
        phoneme_ends=ends_array,
        phonemes=np.asarray(names, dtype="<U8"),
    )
