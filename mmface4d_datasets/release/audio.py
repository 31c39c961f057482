"""Audio bytes of a release: bit-exact to the source samples (DESIGN.md, The record).

Float sources are stored as 32-bit IEEE-float WAV bytes (written here, byte for byte, because
libsndfile would add a PEAK chunk with a timestamp); integer PCM as FLAC (lossless) through
`soundfile`. `decode_audio` reads either with `soundfile`.
"""

from __future__ import annotations

import io
import struct

import numpy as np

from mmface4d_datasets.errors import FormatError

_WAVE_FORMAT_IEEE_FLOAT = 3


def float_wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """Mono 32-bit float WAV (format tag 3) with a `fact` chunk; samples written little-endian as given."""
    data = np.ascontiguousarray(samples, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHHH", _WAVE_FORMAT_IEEE_FLOAT, 1, int(sample_rate), int(sample_rate) * 4, 4, 32, 0)
    fact = struct.pack("<I", len(data) // 4)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<I", 4) + fact
    chunks += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


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
