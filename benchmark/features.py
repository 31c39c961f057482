"""Audio front ends: speech samples at 16 kHz -> one feature vector per 30 fps animation frame.

Two front ends share one call signature, ``front_end(audio, num_frames) -> (num_frames, D)``:

- :class:`LogMelFrontEnd` (name ``"logmel"``, the offline default): log-mel spectra computed with
  torch, framed so that feature frame ``t`` is centred on video frame ``t``
  (``(t + 0.5) * 16000 / 30`` samples). Needs no weights.
- :class:`HubertFrontEnd` (name ``"hubert"``): a HuBERT model through ``transformers`` (the paper
  uses HuBERT-large's last layer), loaded from a local folder or the user's Hugging Face cache and
  never downloaded; its 50 Hz hidden states are resampled to 30 fps by linear interpolation.

Audio shorter than ``num_frames`` video frames is padded with zeros and longer audio is cut, so
the output always has exactly ``num_frames`` rows. torch and transformers are imported inside the
functions that use them (importing this module stays light).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from mmface4d_datasets.vocabulary import FPS, SAMPLE_RATE
from mmface4d_datasets.errors import MMFace4DError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

#: HuBERT / wav2vec 2.0 emit one hidden state per 320 samples (20 ms) at 16 kHz.
HUBERT_RATE = 50.0


class FrontEndError(MMFace4DError):
    """An audio front end cannot be built or run (names the model path or the input problem)."""


def samples_per_frame(sample_rate: int = SAMPLE_RATE, fps: int = FPS) -> float:
    """Audio samples per animation frame (16,000 / 30 = 533.33...; not an integer)."""
    return sample_rate / fps


def fit_audio_to_frames(audio: np.ndarray, num_frames: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Cut or zero-pad mono ``audio`` to ``round(num_frames * sample_rate / FPS)`` float32 samples.

    Raises :class:`FrontEndError` for a non-mono array or a negative frame count.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise FrontEndError(f"audio must be mono, a 1-D array of samples; got shape {audio.shape}")
    if num_frames < 0:
        raise FrontEndError(f"num_frames must be >= 0, got {num_frames}")
    wanted = int(round(num_frames * sample_rate / FPS))
    if audio.shape[0] >= wanted:
        return audio[:wanted]
    return np.concatenate([audio, np.zeros(wanted - audio.shape[0], dtype=np.float32)])


def _check_rate(sample_rate: int) -> None:
    if sample_rate != SAMPLE_RATE:
        raise FrontEndError(f"audio front ends expect {SAMPLE_RATE} Hz audio, got {sample_rate} Hz; resample first")


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int = SAMPLE_RATE, f_min: float = 0.0, f_max: float | None = None) -> np.ndarray:
    """Triangular mel filters, shape ``(n_mels, n_fft // 2 + 1)``, float32.

    Mel scale (HTK): ``mel(f) = 2595 * log10(1 + f / 700)``. Filter ``m`` rises linearly from mel
    point ``m`` to ``m + 1`` and falls to ``m + 2`` (``n_mels + 2`` points equally spaced in mel
    between ``f_min`` and ``f_max``, default Nyquist); peaks are 1 (no area normalisation).
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise FrontEndError(f"mel band must satisfy 0 <= f_min < f_max <= {sample_rate / 2}; got {f_min}, {f_max}")

    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)

    bin_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bin_hz[None, :] - lower) / np.maximum(centre - lower, 1e-9)
    falling = (upper - bin_hz[None, :]) / np.maximum(upper - centre, 1e-9)
    return np.clip(np.minimum(rising, falling), 0.0, None).astype(np.float32)


class LogMelFrontEnd:
    """Log-mel spectra framed on the video frames (the offline default, no weights).

    For video frame ``t`` and sub-frame ``s`` (``0 <= s < sub_frames``) a Hann window of
    ``win_length`` samples is centred on sample ``(t + (s + 0.5) / sub_frames) * 16000 / 30`` of the
    zero-padded signal; its power spectrum (``n_fft``-point real FFT) goes through ``n_mels``
    triangular mel filters and ``log(mel + 1e-6)``. The feature of frame ``t`` concatenates its
    sub-frames, so ``dim = n_mels * sub_frames`` and there are exactly ``num_frames`` rows. This is
    an STFT with the fractional hop 533.33 / ``sub_frames`` samples, which ``torch.stft`` (integer
    hops) cannot express without drifting off the video frames.
    """

    name = "logmel"

    def __init__(self, n_mels: int = 40, sub_frames: int = 2, win_length: int = 400, n_fft: int = 512):
        if win_length > n_fft:
            raise FrontEndError(f"win_length ({win_length}) must not exceed n_fft ({n_fft})")
        if n_mels < 1 or sub_frames < 1:
            raise FrontEndError(f"n_mels and sub_frames must be >= 1; got {n_mels}, {sub_frames}")
        self.n_mels, self.sub_frames, self.win_length, self.n_fft = n_mels, sub_frames, win_length, n_fft
        self._filters = mel_filterbank(n_mels, n_fft)

    @property
    def dim(self) -> int:
        """Feature size per animation frame."""
        return self.n_mels * self.sub_frames

    def spec(self) -> dict[str, Any]:
        """Options that rebuild this front end with :func:`build_front_end` (stored in checkpoints)."""
        return {"name": self.name, "n_mels": self.n_mels, "sub_frames": self.sub_frames, "win_length": self.win_length, "n_fft": self.n_fft}

    def __call__(self, audio: np.ndarray, num_frames: int, sample_rate: int = SAMPLE_RATE) -> "torch.Tensor":
        """Features ``(num_frames, dim)`` float32 for mono ``audio`` (see the class docstring)."""
        import torch

        _check_rate(sample_rate)
        samples = torch.from_numpy(fit_audio_to_frames(audio, num_frames, sample_rate))
        if num_frames == 0:  # the FFT back end rejects empty batches
            return torch.zeros(0, self.dim)
        half = self.win_length // 2
        padded = torch.nn.functional.pad(samples, (half, half + 1))
        hop = samples_per_frame(sample_rate) / self.sub_frames
        centres = (torch.arange(num_frames * self.sub_frames, dtype=torch.float64) + 0.5) * hop
        # Window starts in the padded signal: centre - half + half (the left pad).
        starts = torch.floor(centres).long()
        frames = padded[starts[:, None] + torch.arange(self.win_length)[None, :]]
        frames = frames * torch.hann_window(self.win_length, periodic=True)
        power = torch.fft.rfft(frames, n=self.n_fft).abs().square()
        mel = power @ torch.from_numpy(self._filters).T
        return torch.log(mel + 1e-6).reshape(num_frames, self.dim).to(torch.float32)


def resample_to_frames(features: "torch.Tensor", num_frames: int) -> "torch.Tensor":
    """Linear interpolation of ``(S, D)`` features at 50 Hz to ``(num_frames, D)`` at 30 fps.

    Output frame ``t`` samples the input at time ``(t + 0.5) / 30`` s, i.e. at input position
    ``(t + 0.5) * 50 / 30 - 0.5`` (positions clamped to ``[0, S - 1]``; the edges repeat).
    """
    import torch

    if features.shape[0] == 0:
        raise FrontEndError("cannot resample an empty feature sequence")
    position = (torch.arange(num_frames, dtype=torch.float64) + 0.5) * (HUBERT_RATE / FPS) - 0.5
    position = position.clamp(0, features.shape[0] - 1)
    left = position.floor().long()
    right = (left + 1).clamp(max=features.shape[0] - 1)
    weight = (position - left).to(features.dtype)[:, None]
    return features[left] * (1 - weight) + features[right] * weight


class HubertFrontEnd:
    """HuBERT hidden states (last layer by default) resampled to 30 fps.

    ``model`` is a ``transformers.HubertModel``; build one with :meth:`from_pretrained` (local
    folder or Hugging Face cache only) or pass any model object (tests use a tiny random config).
    The audio is normalised to zero mean and unit variance per clip, as HuBERT-large's feature
    extractor does (``do_normalize``), and padded to at least 400 samples (the convolutional
    encoder's receptive field).
    """

    name = "hubert"

    def __init__(self, model: Any, layer: int = -1, source: str | None = None, normalize: bool = True):
        self.model = model.eval()
        self.layer = layer
        self.source = source
        self.normalize = normalize

    @classmethod
    def from_pretrained(cls, path_or_name: str, layer: int = -1) -> "HubertFrontEnd":
        """Load HuBERT from a local folder or the Hugging Face cache; never downloads.

        Raises :class:`FrontEndError` naming ``path_or_name`` when the weights are not present.
        """
        try:
            from transformers import HubertModel
        except ImportError as exc:  # pragma: no cover - transformers is a dependency
            raise FrontEndError(f"the HuBERT front end needs transformers: {exc}") from exc
        try:
            model = HubertModel.from_pretrained(path_or_name, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise FrontEndError(
                f"HuBERT weights {path_or_name!r} are not available locally (a folder with config.json and "
                f"weights, or a model already in the Hugging Face cache); nothing is downloaded. Use the "
                f"offline 'logmel' front end or download the model yourself. ({exc.__class__.__name__})"
            ) from exc
        return cls(model, layer=layer, source=str(path_or_name))

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def spec(self) -> dict[str, Any]:
        if self.source is None:
            raise FrontEndError("this HuBERT front end was built from a model object, not a path; it cannot be stored")
        return {"name": self.name, "path": self.source, "layer": self.layer}

    def __call__(self, audio: np.ndarray, num_frames: int, sample_rate: int = SAMPLE_RATE) -> "torch.Tensor":
        """Features ``(num_frames, dim)`` float32: hidden states of ``layer`` at 30 fps."""
        import torch

        _check_rate(sample_rate)
        samples = fit_audio_to_frames(audio, num_frames, sample_rate)
        if samples.shape[0] < 400:
            samples = np.concatenate([samples, np.zeros(400 - samples.shape[0], dtype=np.float32)])
        wave = torch.from_numpy(samples)
        if self.normalize:
            wave = (wave - wave.mean()) / torch.sqrt(wave.var(unbiased=False) + 1e-7)
        with torch.inference_mode():
            if self.layer == -1:
                hidden = self.model(wave[None]).last_hidden_state[0]
            else:
                hidden = self.model(wave[None], output_hidden_states=True).hidden_states[self.layer][0]
        return resample_to_frames(hidden.float(), num_frames).clone()


def build_front_end(spec: str | dict[str, Any] | None = None) -> LogMelFrontEnd | HubertFrontEnd:
    """A front end from a name or a spec dict.

    ``None`` or ``"logmel"`` -> :class:`LogMelFrontEnd` with defaults; ``"hubert:<path or hub name>"``
    -> :meth:`HubertFrontEnd.from_pretrained`; a dict as returned by ``front_end.spec()``.
    """
    if spec is None:
        spec = {"name": "logmel"}
    if isinstance(spec, str):
        if spec == "logmel":
            spec = {"name": "logmel"}
        elif spec.startswith("hubert:") and len(spec) > len("hubert:"):
            spec = {"name": "hubert", "path": spec[len("hubert:") :]}
        else:
            raise FrontEndError(f"unknown audio front end {spec!r}; use 'logmel' or 'hubert:<path or name>'")
    options = dict(spec)
    name = options.pop("name", None)
    if name == "logmel":
        return LogMelFrontEnd(**options)
    if name == "hubert":
        if "path" not in options:
            raise FrontEndError("a 'hubert' front end needs a 'path' (local folder or cached model name)")
        return HubertFrontEnd.from_pretrained(options["path"], layer=int(options.get("layer", -1)))
    raise FrontEndError(f"unknown audio front end {name!r}; use 'logmel' or 'hubert'")


def frame_count(num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Animation frames that ``num_samples`` of audio cover: ``floor(num_samples * 30 / sample_rate)``."""
    return int(math.floor(num_samples * FPS / sample_rate))
