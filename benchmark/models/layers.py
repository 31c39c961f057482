"""Building blocks shared by the bundled models (PyTorch; sequences are ``(batch, time, channels)``).

- :class:`ResNet1D`: residual 1-D convolutions over time, length-preserving (kernel 3, stride 1,
  "same" padding), so a model built from it takes clips of any length.
- :func:`adain`: adaptive instance normalisation of a sequence by a target mean and std.
- :func:`masked_mean_std`: per-channel temporal statistics that ignore padded frames.
- :func:`period_biased_causal_mask` and :func:`periodic_positional_encoding`: FaceFormer's
  attention bias and positional encoding, computed for any length.

This module imports torch at module level: import it only where torch is wanted.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ResBlock1D(nn.Module):
    """``x + conv(act(norm(conv(act(norm(x))))))`` with kernel ``kernel_size``, stride 1.

    Normalisation is GroupNorm over channels (statistics per frame group, independent of the batch
    and of the clip length); padding keeps the length unchanged. Input and output ``(B, T, C)``.
    """

    def __init__(self, channels: int, kernel_size: int = 3, dropout: float = 0.0, groups: int = 8):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd to preserve the length, got {kernel_size}")
        groups = math.gcd(groups, channels)
        self.norm1 = nn.GroupNorm(groups, channels)
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.norm2 = nn.GroupNorm(groups, channels)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)
        y = self.conv1(torch.nn.functional.gelu(self.norm1(h)))
        y = self.conv2(self.dropout(torch.nn.functional.gelu(self.norm2(y))))
        return (h + y).transpose(1, 2)


class ResNet1D(nn.Module):
    """A linear input projection then ``num_blocks`` :class:`ResBlock1D` (no downsampling).

    ``(B, T, in_channels) -> (B, T, channels)`` for any ``T >= 1``.
    """

    def __init__(self, in_channels: int, channels: int, num_blocks: int = 2, kernel_size: int = 3, dropout: float = 0.0):
        super().__init__()
        self.project = nn.Linear(in_channels, channels)
        self.blocks = nn.ModuleList(ResBlock1D(channels, kernel_size, dropout) for _ in range(num_blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.project(x)
        for block in self.blocks:
            h = block(h)
        return h


def masked_mean_std(x: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Temporal mean and standard deviation per channel of ``x`` ``(B, T, C)``.

    ``mask`` ``(B, T)`` (True = real frame) excludes padding; ``std = sqrt(var + eps)`` with the
    biased variance, so a one-frame sequence has std ``sqrt(eps)`` rather than NaN. Returns two
    ``(B, 1, C)`` tensors.
    """
    if mask is None:
        mean = x.mean(dim=1, keepdim=True)
        var = (x - mean).square().mean(dim=1, keepdim=True)
    else:
        weight = mask.to(x.dtype)[..., None]
        count = weight.sum(dim=1, keepdim=True).clamp(min=1.0)
        mean = (x * weight).sum(dim=1, keepdim=True) / count
        var = ((x - mean).square() * weight).sum(dim=1, keepdim=True) / count
    return mean, torch.sqrt(var + eps)


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Adaptive instance normalisation over time.

    ``adain(x) = style_std * (x - mean_t(x)) / std_t(x) + style_mean`` per batch item and channel,
    where ``mean_t`` / ``std_t`` come from :func:`masked_mean_std` of ``content`` ``(B, T, C)``;
    ``style_mean`` and ``style_std`` are ``(B, 1, C)``.
    """
    mean, std = masked_mean_std(content, mask)
    return style_std * (content - mean) / std + style_mean


def periodic_positional_encoding(length: int, dim: int, period: int, device=None) -> torch.Tensor:
    """FaceFormer's periodic positional encoding, ``(length, dim)``.

    The sinusoidal encoding of position ``t mod period``:
    ``PE[t, 2i] = sin((t mod p) / 10000^(2i/dim))``, ``PE[t, 2i+1] = cos(...)``. Any length.
    """
    position = (torch.arange(length, device=device) % period).to(torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    encoding = torch.zeros(length, dim, device=device)
    encoding[:, 0::2] = torch.sin(position * div)
    encoding[:, 1::2] = torch.cos(position * div[: dim // 2])
    return encoding


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """Per-head slopes of ALiBi (Press et al.), as FaceFormer uses them: a geometric sequence
    starting at ``2^(-8/n)`` for ``n`` heads a power of two, interleaved otherwise."""

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(num_heads).is_integer():
        slopes = power_of_two(num_heads)
    else:
        closest = 2 ** math.floor(math.log2(num_heads))
        slopes = power_of_two(closest) + power_of_two(2 * closest)[0::2][: num_heads - closest]
    return torch.tensor(slopes, dtype=torch.float32)


def period_biased_causal_mask(
    num_heads: int, query_length: int, key_length: int, period: int, query_offset: int = 0, device=None
) -> torch.Tensor:
    """FaceFormer's biased causal self-attention mask, ``(num_heads, query_length, key_length)``.

    For query position ``i = query_offset + q`` and key position ``j``:
    ``bias[h, q, j] = -slope_h * floor((i - j) / period)`` when ``j <= i`` and ``-inf`` when
    ``j > i``. Computed for any length (the published code precomputes 600 positions and fails past
    them). ``query_offset`` gives the rows of a longer mask, for decoding with a key/value cache.
    """
    i = torch.arange(query_length, device=device)[:, None] + query_offset
    j = torch.arange(key_length, device=device)[None, :]
    distance = torch.div(i - j, period, rounding_mode="floor").to(torch.float32)
    slopes = alibi_slopes(num_heads).to(device)[:, None, None]
    bias = -slopes * distance[None]
    return bias.masked_fill((j > i)[None], float("-inf"))


def alignment_mask(query_length: int, key_length: int, query_offset: int = 0, device=None) -> torch.Tensor:
    """FaceFormer's audio-motion alignment mask at equal rates, ``(query_length, key_length)``:
    motion frame ``i`` attends to audio frame ``i`` only (0 there, ``-inf`` elsewhere).

    Our front ends emit one feature per animation frame, so the published mask for equal rates
    (VOCASET's) is the diagonal.
    """
    i = torch.arange(query_length, device=device)[:, None] + query_offset
    j = torch.arange(key_length, device=device)[None, :]
    mask = torch.full((query_length, key_length), float("-inf"), device=device)
    return mask.masked_fill(i == j, 0.0)


def merged_options(name: str, defaults: dict, overrides: dict) -> dict:
    """``defaults`` updated by ``overrides``; ValueError naming model ``name`` for an unknown key."""
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise ValueError(f"unknown options for {name}: {sorted(unknown)}; known: {sorted(defaults)}")
    return {**defaults, **overrides}
