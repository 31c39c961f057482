"""Take speech: ``ID.wav``, 16 kHz mono; the authors' files hold 32-bit IEEE-float samples.

`read_audio` reads (and refuses a cut-off WAV that libsndfile would silently shorten);
`float_wav_bytes` is the one float-WAV encoder of the package (take files here, release rows in
:mod:`mmface4d_datasets.release.audio`); `write_audio` writes a take's WAV with it, atomically.
soundfile is imported on use.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.files import atomic_write_bytes
from mmface4d_datasets.vocabulary import SAMPLE_RATE

_WAVE_FORMAT_IEEE_FLOAT = 3


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a take's speech: returns (samples, sample_rate) with samples a 1-D float32 array.

    The file must be 16 kHz mono (the authors' WAVs hold 32-bit float samples; integer PCM is
    scaled to [-1, 1) by soundfile). Raises FormatError naming the file for an unreadable file,
    another sample rate or more than one channel (naming what was found).
    """
    import soundfile

    path = Path(path)
    try:
        info = soundfile.info(os.fspath(path))
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        if not path.exists():
            raise FormatError(f"{path}: audio file is missing") from None
        raise FormatError(f"{path}: not a readable audio file: {exc}") from exc
    _check_wav_complete(path)
    if info.samplerate != SAMPLE_RATE or info.channels != 1:
        raise FormatError(f"{path}: audio is {info.samplerate} Hz with {info.channels} channel(s); expected {SAMPLE_RATE} Hz mono")
    try:
        samples, rate = soundfile.read(os.fspath(path), dtype="float32", always_2d=False)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise FormatError(f"{path}: cannot decode the audio: {exc}") from exc
    if not np.isfinite(samples).all():
        raise FormatError(f"{path}: audio holds NaN or infinite samples")
    return samples, int(rate)


def _check_wav_complete(path: Path) -> None:
    """Refuse a RIFF/WAVE file whose ``data`` chunk is longer than the bytes the file holds.

    libsndfile silently shortens such a file to what is there, so a cut-off download would
    otherwise read as a shorter take. Other containers (FLAC, ...) are left to libsndfile.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if handle.read(4) != b"RIFF":
            return
        handle.seek(12)
        position = 12
        while position + 8 <= size:
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            position += 8
            if chunk_id == b"data":
                # 0xFFFFFFFF marks a stream whose length was never filled in: nothing to compare.
                if chunk_size != 0xFFFFFFFF and position + chunk_size > size:
                    raise FormatError(
                        f"{path}: truncated audio (the data chunk announces {chunk_size} bytes, the file holds {size - position})"
                    )
                return
            position += chunk_size + (chunk_size & 1)  # chunks are padded to even length
            handle.seek(position)


def float_wav_bytes(samples: np.ndarray, sample_rate: int, *, where: str | os.PathLike = "audio") -> bytes:
    """Mono samples as the bytes of a 32-bit float WAV laid out like the authors' files.

    ``samples`` is 1-D (any float or int dtype, converted to float32 without rescaling; ValueError naming
    ``where`` otherwise). Chunks: ``fmt`` (IEEE float, format tag 3, 18 bytes), ``fact`` (frame count),
    ``data``; nothing else. libsndfile would add a ``PEAK`` chunk carrying the time of writing, so two
    writes of the same samples would differ; these bytes depend on the samples alone (the sample take's
    WAV comes back byte for byte from its samples).
    """
    # Hand-written: scipy.io.wavfile.write gives the same bytes (tests/test_official_audio.py checks it), but
    # scipy is no dependency of the plain install (release rows) nor of the recorder's numpy<2 environment.
    data = np.asarray(samples, dtype="<f4")
    if data.ndim != 1:
        raise ValueError(f"{os.fspath(where)}: audio samples must be 1-D (mono), got shape {data.shape}")
    payload = data.tobytes()
    fmt = struct.pack("<HHIIHHH", _WAVE_FORMAT_IEEE_FLOAT, 1, int(sample_rate), int(sample_rate) * 4, 4, 32, 0)
    chunks = b"".join(
        [
            b"fmt ",
            struct.pack("<I", len(fmt)),
            fmt,
            b"fact",
            struct.pack("<II", 4, len(data)),
            b"data",
            struct.pack("<I", len(payload)),
            payload,
        ]
    )
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def write_audio(path: str | os.PathLike, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono samples as a 32-bit float WAV laid out like the authors' files (`float_wav_bytes`).

    Written to a temporary name beside ``path`` and renamed when complete
    (:func:`~mmface4d_datasets.files.atomic_write_bytes`: a file-system failure is a
    :class:`~mmface4d_datasets.errors.FileSystemError` naming ``path``). ValueError for samples that are not 1-D.
    """
    path = Path(path)
    atomic_write_bytes(path, float_wav_bytes(samples, sample_rate, where=path))
