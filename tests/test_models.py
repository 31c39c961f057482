"""The bundled models: shared layers, the paper's composite-and-regional model, the FaceFormer-style baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmark.models.composite import CompositeModel
from benchmark.models.composite import build_module as build_composite
from benchmark.models.faceformer import build_module as build_faceformer
from benchmark.models.layers import (
    ResNet1D,
    adain,
    alibi_slopes,
    alignment_mask,
    masked_mean_std,
    period_biased_causal_mask,
    periodic_positional_encoding,
)

N, F = 24, 10


def faceformer_published_mask(num_heads: int, length: int, period: int) -> torch.Tensor:
    """FaceFormer's init_biased_mask restated from its published description (reference for the test)."""
    slopes = alibi_slopes(num_heads)
    bias = torch.arange(0, length, period).unsqueeze(1).repeat(1, period).view(-1) // period
    bias = -torch.flip(bias, dims=[0])
    alibi = torch.zeros(length, length)
    for i in range(length):
        alibi[i, : i + 1] = bias[-(i + 1) :]
    alibi = slopes[:, None, None] * alibi[None]
    mask = (torch.triu(torch.ones(length, length)) == 1).transpose(0, 1)
    mask = mask.float().masked_fill(mask == 0, float("-inf")).masked_fill(mask == 1, 0.0)
    return mask[None] + alibi


def test_period_biased_mask_matches_the_published_construction():
    ours = period_biased_causal_mask(4, 60, 60, period=30)
    torch.testing.assert_close(ours, faceformer_published_mask(4, 60, 30))
    torch.testing.assert_close(alibi_slopes(4), torch.tensor([0.25, 0.0625, 0.015625, 0.00390625]))
    assert alibi_slopes(6).shape == (6,)
    # Rows of a longer mask, for cached decoding.
    torch.testing.assert_close(
        period_biased_causal_mask(4, 1, 50, 30, query_offset=49)[:, 0], period_biased_causal_mask(4, 50, 50, 30)[:, 49]
    )
    assert period_biased_causal_mask(2, 900, 900, 30).shape == (2, 900, 900)  # past FaceFormer's 600


def test_alignment_mask_and_periodic_encoding():
    mask = alignment_mask(5, 7)
    assert torch.equal(mask == 0, torch.eye(5, 7, dtype=torch.bool))
    encoding = periodic_positional_encoding(70, 16, period=30)
    torch.testing.assert_close(encoding[:30], encoding[30:60])
    assert not torch.allclose(encoding[0], encoding[1])


def test_resnet1d_keeps_any_length():
    net = ResNet1D(F, 16, num_blocks=2)
    for length in (1, 2, 17):
        assert net(torch.randn(3, length, F)).shape == (3, length, 16)


def test_adain_gives_the_style_statistics():
    content = torch.randn(2, 50, 8) * 3 + 1
    style_mean, style_std = torch.randn(2, 1, 8), torch.rand(2, 1, 8) + 0.5
    out = adain(content, style_mean, style_std)
    mean, std = masked_mean_std(out)
    torch.testing.assert_close(mean, style_mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(std, style_std, atol=1e-3, rtol=1e-3)
    mask = torch.ones(1, 6, dtype=torch.bool)
    mask[0, 4:] = False
    data = torch.tensor([[1.0, 2, 3, 4, 100, 100]])[..., None]
    mean, std = masked_mean_std(data, mask, eps=0.0)
    assert float(mean) == pytest.approx(2.5) and float(std) == pytest.approx(math.sqrt(1.25))


def composite(name="mmface4d", **config):
    torch.manual_seed(0)
    options = {"code_dim": 8, "hidden_dim": 16, "decoder_blocks": 2, "dropout": 0.0, **config}
    return build_composite(name, options, N, F).eval()


def inputs(length=20, style_length=13, seed=0):
    generator = torch.Generator().manual_seed(seed)
    template = torch.randn(N, 3, generator=generator) * 0.05
    style = template + torch.randn(style_length, N, 3, generator=generator) * 1e-3
    return torch.randn(length, F, generator=generator), template, style


def test_composite_model_takes_any_length():
    model = composite()
    for length, style_length in ((1, 1), (7, 40), (333, 5)):
        features, template, style = inputs(length, style_length)
        out = model.generate(features, template, style)
        assert out.shape == (length, N, 3) and torch.isfinite(out).all()


def test_tied_encoding_and_decoding():
    model = composite()
    codes = torch.randn(5, 8)
    # The basis has orthonormal columns: decoding then encoding gives the codes back.
    torch.testing.assert_close(model.encode(model.decode(codes)), codes, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        model.basis.mul_(2.0)
    torch.testing.assert_close(model.decode(codes).reshape(5, -1), (codes @ model.basis.T) * model.offset_scale)


def test_regional_sparsity_formula():
    model = CompositeModel(4, F, code_dim=3, hidden_dim=8)
    weights = torch.rand(4, 3, 3)
    with torch.no_grad():
        model.basis.copy_(weights.reshape(12, 3))
    size = weights.norm(dim=1)  # (vertex, row)
    a = size / size.max(dim=0).values
    expected = sum(a[v, k] * a[v, j] for v in range(4) for k in range(3) for j in range(3) if k != j) / (4 * 3 * 2)
    torch.testing.assert_close(model.regional_sparsity(), torch.as_tensor(expected, dtype=torch.float32))
    with torch.no_grad():  # disjoint regions: each vertex driven by one row only
        model.basis.zero_()
        for vertex in range(4):
            model.basis[3 * vertex, vertex % 3] = 1.0 + vertex
    assert model.regional_sparsity().item() == 0.0
    with torch.no_grad():  # every row flat over every vertex
        model.basis.fill_(0.3)
    assert model.regional_sparsity().item() == pytest.approx(1.0)
    assert composite("mmface4d-no-regional").regularizer().item() == 0.0
    assert composite("mmface4d").regularizer().item() > 0.0


def test_composite_part_uses_the_style_reference_and_the_ablation_does_not():
    features, template, style = inputs()
    other_style = template + torch.randn(13, N, 3) * 3e-3
    full, ablation = composite("mmface4d"), composite("mmface4d-no-composite")
    assert not torch.allclose(full.generate(features, template, style), full.generate(features, template, other_style))
    torch.testing.assert_close(ablation.generate(features, template, style), ablation.generate(features, template, other_style))
    assert ablation.style_encoder is None


def test_style_padding_is_ignored_through_the_mask():
    model = composite(style_blocks=0)  # no convolution over the style: padding cannot leak in
    features, template, style = inputs(style_length=10)
    padded = torch.cat([style, template.expand(5, N, 3) + 0.01])
    mask = torch.tensor([[True] * 10 + [False] * 5])
    with torch.no_grad():
        out = model(features[None], template[None], padded[None], mask)[0]
    torch.testing.assert_close(out, model.generate(features, template, style), atol=1e-6, rtol=1e-5)


def test_initialize_from_data_starts_at_the_principal_directions():
    model = composite()
    generator = torch.Generator().manual_seed(3)
    directions = torch.linalg.qr(torch.randn(3 * N, 4, generator=generator))[0]
    offsets = (torch.randn(200, 4, generator=generator) @ directions.T).reshape(200, N, 3) * 1e-3
    model.initialize_from_data(torch.randn(100, F) * 5 + 2, offsets, torch.randn(3, N, 3) * 0.05)
    reconstructed = model.decode(model.encode(offsets))
    torch.testing.assert_close(reconstructed, offsets, atol=1e-8, rtol=1e-3)
    assert float(model.offset_scale) == pytest.approx(float(offsets.std()), rel=1e-5)


def faceformer(name="faceformer", **config):
    torch.manual_seed(0)
    model = build_faceformer(name, {"d_model": 16, "num_heads": 4, "dropout": 0.0, **config}, N, F)
    with torch.no_grad():  # the published zero initialisation would make every output the template
        model.vertex_map_r.weight.normal_(std=0.3)
        model.vertex_map_r.bias.normal_(std=0.1)
    return model.eval()


@pytest.mark.parametrize("num_layers", [1, 2])
def test_faceformer_cache_computes_the_published_recomputation(num_layers):
    model = faceformer(num_layers=num_layers)
    features, template, style = inputs(length=45)
    published = model.generate(features, template, style, cached=False)
    cached = model.generate(features, template, style, cached=True)
    assert published.shape == (45, N, 3)
    assert (published - template).abs().max() > 1e-4
    torch.testing.assert_close(cached, published, atol=1e-6, rtol=1e-4)


def test_faceformer_teacher_forcing_is_the_same_function_as_inference():
    model = faceformer()
    features, template, style = inputs(length=30)
    generated = model.generate(features, template, style)
    with torch.no_grad():
        forced = model(features[None], template[None], style[None], target=generated[None])[0]
    torch.testing.assert_close(forced, generated, atol=1e-6, rtol=1e-4)


def test_faceformer_is_causal_and_has_no_length_limit():
    model = faceformer("faceformer-cached")
    features, template, style = inputs(length=650)
    target = template + torch.randn(650, N, 3) * 1e-3
    changed = target.clone()
    changed[400:] += 0.01
    with torch.no_grad():
        first = model(features[None], template[None], style[None], target=target[None])[0]
        second = model(features[None], template[None], style[None], target=changed[None])[0]
    torch.testing.assert_close(first[:401], second[:401])
    assert not torch.allclose(first[401:], second[401:])
    assert model.generate(features, template, style).shape == (650, N, 3)


def test_faceformer_style_comes_from_the_reference():
    model = faceformer("faceformer-cached")
    features, template, style = inputs()
    other = template + torch.randn(13, N, 3) * 5e-3
    assert not torch.allclose(model.generate(features, template, style), model.generate(features, template, other))


def test_registry_loaders():
    from benchmark.models import load_model
    from benchmark.protocol import AnimationModel, ProtocolInputs, check_prediction
    from mmface4d_datasets.errors import MMFace4DError

    with pytest.raises(MMFace4DError, match="needs a checkpoint"):
        load_model("mmface4d")
    rng = np.random.default_rng(0)
    template = (rng.standard_normal((N, 3)) * 0.05).astype(np.float32)
    sample = ProtocolInputs(
        id="s/1",
        audio=rng.standard_normal(16000).astype(np.float32),
        sample_rate=16000,
        num_frames=31,
        template=template,
        style_reference_id="s/2",
        style_vertices=np.repeat(template[None], 12, axis=0),
        style_audio=np.zeros(10, np.float32),
        subject_id="s",
        emotion="neutral",
    )
    for name in ("mmface4d", "mmface4d-no-composite", "mmface4d-no-regional", "faceformer", "faceformer-cached"):
        model = (
            load_model(name, untrained=True, num_vertices=N, hidden_dim=16)
            if name.startswith("mmface4d")
            else load_model(name, untrained=True, num_vertices=N, d_model=16)
        )
        assert isinstance(model, AnimationModel) and model.name == name
        prediction = check_prediction(sample, model.predict(sample), name)
        assert prediction.shape == (31, N, 3)
