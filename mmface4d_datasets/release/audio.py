"""Audio bytes of a release: bit-exact to the source samples (DESIGN.md, The record).

Float sources are stored as 32-bit IEEE-float WAV bytes laid out like the authors' files
(`float_wav_bytes`, the one float-WAV encoder, defined in :mod:`mmface4d_datasets.official.audio`:
libsndfile would add a PEAK chunk with a timestamp); integer PCM as FLAC (lossless) through
`soundfile`. `decode_audio` reads either with `soundfile`.
"""

from __future__ import annotations

import io

import numpy as np

from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.official.audio import float_wav_bytes

__all__ = ["float_wav_bytes", "encode_audio", "decode_audio", "resample"]


def encode_audio(samples: np.ndarray, sample_rate: int, subtype: str) -> bytes:
    """Bytes that `decode_audio` turns back into exactly `samples`.

    subtype "FLOAT": float32 samples -> float WAV. "PCM_16" (int16 samples) / "PCM_24" (int32
    samples holding the 24-bit value shifted left by 8) -> FLAC of that bit depth.
    """
    if subtype == "FLOAT":
        return float_wav_bytes(samples, sample_rate)
    if subtype in ("PCM_16", "PCM_24"):
        import soundfile

        buffer = io.BytesIO()
        soundfile.write(buffer, np.ascontiguousarray(samples), int(sample_rate), format="FLAC", subtype=subtype)
        return buffer.getvalue()
    raise ValueError(f"encode_audio: unknown subtype {subtype!r}")


def decode_audio(data: bytes, dtype: str = "float32", *, where: str = "audio") -> tuple[np.ndarray, int]:
    """(samples (S,), sample_rate) from WAV/FLAC bytes; `dtype` as soundfile's (float32, int16, int32)."""
    import soundfile

    try:
        samples, sample_rate = soundfile.read(io.BytesIO(bytes(data)), dtype=dtype, always_2d=False)
    except Exception as exc:  # soundfile raises its own LibsndfileError / RuntimeError
        raise FormatError(f"{where}: audio bytes cannot be decoded ({exc})") from exc
    if samples.ndim != 1:
        raise FormatError(f"{where}: audio has {samples.shape[1]} channels, a release stores mono")
    return samples, int(sample_rate)


def resample(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling (scipy) to `target_rate`; returns the input unchanged when rates agree."""
    if int(rate) == int(target_rate):
        return samples
    from math import gcd

    from mmface4d_datasets.extras import require

    resample_poly = require("scipy.signal", "synthetic", f"resampling audio from {rate} Hz to {target_rate} Hz").resample_poly

    divisor = gcd(int(rate), int(target_rate))
    return resample_poly(samples, int(target_rate) // divisor, int(rate) // divisor).astype(np.float32)
