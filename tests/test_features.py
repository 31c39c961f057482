"""Audio front ends: log-mel framing on the video frames, HuBERT through transformers (tiny, offline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.features import (
    FrontEndError,
    HubertFrontEnd,
    LogMelFrontEnd,
    build_front_end,
    fit_audio_to_frames,
    mel_filterbank,
    resample_to_frames,
)

RATE = 16000


def test_mel_filterbank_shape_and_triangles():
    filters = mel_filterbank(40, 512)
    assert filters.shape == (40, 257)
    assert filters.min() >= 0 and filters.max() <= 1.0 + 1e-6
    peaks = filters.argmax(axis=1)
    assert np.all(np.diff(peaks) >= 0), "filters must move up in frequency"
    assert peaks[-1] > peaks[0]
    with pytest.raises(FrontEndError):
        mel_filterbank(10, 512, f_min=9000.0)


@pytest.mark.parametrize("num_frames", [0, 1, 7, 90])
def test_logmel_gives_exactly_one_row_per_video_frame(num_frames):
    front_end = LogMelFrontEnd(n_mels=20, sub_frames=2)
    audio = np.random.default_rng(0).standard_normal(RATE).astype(np.float32)  # 1 s: cut or padded
    features = front_end(audio, num_frames)
    assert features.shape == (num_frames, 40)
    assert features.dtype == torch.float32
    assert torch.isfinite(features).all()


def test_logmel_frames_are_centred_on_video_frames():
    front_end = LogMelFrontEnd(n_mels=20, sub_frames=1, win_length=400)
    audio = np.zeros(RATE, dtype=np.float32)
    centre = int((12 + 0.5) * RATE / 30)  # centre of video frame 12
    audio[centre - 100 : centre + 100] = np.sin(np.arange(200) * 0.7).astype(np.float32)
    energy = front_end(audio, 30).exp().sum(dim=1)
    assert int(energy.argmax()) == 12


def test_logmel_tone_lands_in_the_right_mel_band():
    front_end = LogMelFrontEnd(n_mels=40, sub_frames=1)
    t = np.arange(RATE) / RATE
    low = front_end(np.sin(2 * np.pi * 300 * t).astype(np.float32), 30).mean(dim=0).argmax()
    high = front_end(np.sin(2 * np.pi * 3000 * t).astype(np.float32), 30).mean(dim=0).argmax()
    assert high > low + 10


def test_front_end_rejects_bad_audio():
    front_end = LogMelFrontEnd()
    with pytest.raises(FrontEndError, match="16000 Hz"):
        front_end(np.zeros(100, np.float32), 3, sample_rate=22050)
    with pytest.raises(FrontEndError, match="mono"):
        front_end(np.zeros((100, 2), np.float32), 3)
    assert fit_audio_to_frames(np.ones(10, np.float32), 3).shape == (1600,)


def test_resample_from_50_hz_is_linear_interpolation_at_frame_centres():
    source = torch.arange(50, dtype=torch.float32)[:, None].repeat(1, 2)  # value = position
    out = resample_to_frames(source, 30)
    expected = np.clip((np.arange(30) + 0.5) * 50 / 30 - 0.5, 0, 49)
    np.testing.assert_allclose(out[:, 0].numpy(), expected, atol=1e-5)
    assert out.shape == (30, 2)


def tiny_hubert():
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    config = HubertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=48,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    return HubertModel(config)


def test_hubert_front_end_from_a_local_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = tiny_hubert()
    model.save_pretrained(tmp_path / "hubert")
    front_end = build_front_end(f"hubert:{tmp_path / 'hubert'}")
    assert isinstance(front_end, HubertFrontEnd) and front_end.dim == 32
    audio = np.random.default_rng(1).standard_normal(RATE).astype(np.float32)
    features = front_end(audio, 30)
    assert features.shape == (30, 32)
    # Same as running the model by hand on the normalised audio and interpolating 50 Hz -> 30 fps.
    wave = torch.from_numpy(audio)
    wave = (wave - wave.mean()) / torch.sqrt(wave.var(unbiased=False) + 1e-7)
    with torch.no_grad():
        hidden = model.eval()(wave[None]).last_hidden_state[0]
    assert hidden.shape[0] == 49  # 1 s -> 49 frames of 20 ms (receptive field 400 samples)
    torch.testing.assert_close(features, resample_to_frames(hidden, 30), atol=1e-4, rtol=1e-4)
    assert front_end.spec()["path"] == str(tmp_path / "hubert")


def test_hubert_handles_clips_shorter_than_its_receptive_field():
    front_end = HubertFrontEnd(tiny_hubert())
    assert front_end(np.zeros(100, np.float32), 1).shape == (1, 32)


def test_hubert_missing_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = tmp_path / "no-such-model"
    with pytest.raises(FrontEndError, match="no-such-model"):
        HubertFrontEnd.from_pretrained(str(missing))


def test_build_front_end_names():
    assert isinstance(build_front_end(None), LogMelFrontEnd)
    front_end = build_front_end({"name": "logmel", "n_mels": 16, "sub_frames": 3})
    assert front_end.dim == 48 and build_front_end(front_end.spec()).dim == 48
    with pytest.raises(FrontEndError, match="unknown"):
        build_front_end("wav2vec")
