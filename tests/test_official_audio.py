"""Reading and writing take audio (16 kHz mono; the authors' files are 32-bit float WAV)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.official import read_audio, write_audio


def test_fixture_audio(official_sample):
    samples, rate = read_audio(official_sample / "000337.wav")
    assert rate == 16000
    assert samples.dtype == np.float32 and samples.shape == (35733,)
    assert soundfile.info(str(official_sample / "000337.wav")).subtype == "FLOAT"
    assert 0 < np.abs(samples).max() <= 1.0


def test_write_audio_is_bit_exact_float_wav(tmp_path):
    samples = np.random.default_rng(0).uniform(-1, 1, 1600).astype(np.float32)
    path = tmp_path / "000001.wav"
    write_audio(path, samples, 16000)
    assert soundfile.info(str(path)).subtype == "FLOAT"
    back, rate = read_audio(path)
    assert rate == 16000 and np.array_equal(back, samples)
    assert [p.name for p in tmp_path.iterdir()] == ["000001.wav"]  # no temporary left behind


def test_fixture_audio_round_trips_byte_for_byte(tmp_path, official_sample):
    """The writer gives the authors' file back from its samples (no time stamps, no extra chunks)."""
    original = official_sample / "000337.wav"
    samples, rate = read_audio(original)
    write_audio(tmp_path / "copy.wav", samples, rate)
    assert (tmp_path / "copy.wav").read_bytes() == original.read_bytes()


def test_write_audio_is_reproducible(tmp_path):
    samples = np.random.default_rng(1).uniform(-1, 1, 1001).astype(np.float32)
    write_audio(tmp_path / "a.wav", samples, 16000)
    write_audio(tmp_path / "b.wav", samples, 16000)
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()


def test_wrong_rate_is_refused_with_what_was_found(tmp_path):
    path = tmp_path / "44k.wav"
    soundfile.write(str(path), np.zeros(441, dtype=np.float32), 44100, subtype="FLOAT")
    with pytest.raises(FormatError, match=r"44k\.wav: audio is 44100 Hz with 1 channel\(s\); expected 16000 Hz mono"):
        read_audio(path)


def test_stereo_is_refused(tmp_path):
    path = tmp_path / "stereo.wav"
    soundfile.write(str(path), np.zeros((160, 2), dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(FormatError, match=r"stereo\.wav: audio is 16000 Hz with 2 channel"):
        read_audio(path)


def test_unreadable_and_missing_audio_are_named(tmp_path):
    path = tmp_path / "junk.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(FormatError, match=r"junk\.wav: not a readable audio file"):
        read_audio(path)
    with pytest.raises(FormatError, match=r"absent\.wav: audio file is missing"):
        read_audio(tmp_path / "absent.wav")


def test_truncated_fixture_wav_is_refused(tmp_path, official_sample):
    data = (official_sample / "000337.wav").read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(data[: len(data) // 2 + 1])
    with pytest.raises(FormatError, match=r"cut\.wav: truncated audio"):
        read_audio(path)


def test_write_audio_refuses_multichannel(tmp_path):
    with pytest.raises(ValueError, match="mono"):
        write_audio(tmp_path / "x.wav", np.zeros((10, 2)), 16000)


def _scipy_wav_bytes(samples, rate) -> bytes:
    import io

    wavfile = pytest.importorskip("scipy.io.wavfile", reason="scipy (the synthetic/bench extras) is not installed")
    buffer = io.BytesIO()
    wavfile.write(buffer, rate, samples)
    return buffer.getvalue()


def test_float_wav_bytes_are_scipys_bytes():
    """Why the float-WAV encoder may stay hand-written: scipy.io.wavfile.write gives the same bytes (float32
    mono at 16 kHz, odd and even lengths, empty), and scipy is not a dependency of the plain install."""
    from mmface4d_datasets.official import float_wav_bytes
    from mmface4d_datasets.release import audio

    assert audio.float_wav_bytes is float_wav_bytes  # one encoder: take files and release rows
    rng = np.random.default_rng(3)
    for samples in (rng.uniform(-1, 1, 1601).astype(np.float32), np.zeros(1600, np.float32), np.zeros(0, np.float32)):
        assert float_wav_bytes(samples, 16000) == _scipy_wav_bytes(samples, 16000)


def test_fixture_wav_is_scipys_bytes(official_sample):
    from mmface4d_datasets.official import float_wav_bytes

    samples, rate = read_audio(official_sample / "000337.wav")
    assert float_wav_bytes(samples, rate) == _scipy_wav_bytes(samples, rate) == (official_sample / "000337.wav").read_bytes()
