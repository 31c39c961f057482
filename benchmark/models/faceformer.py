"""A FaceFormer-style baseline (Fan et al., CVPR 2022), as published, with one change of conditioning.

As published:
- audio features (here one per animation frame, from our front ends) are projected to ``d_model``;
- a vertex map (``3N -> d_model``) embeds past motion (offsets from the template), a zero-initialised
  vertex map back (``d_model -> 3N``) gives the offsets;
- a transformer decoder (post-norm, ReLU feed-forward of ``2 * d_model``, one layer) with causal
  self-attention biased per head by ``-slope_h * floor((i - j) / period)`` (ALiBi-like with period
  ``p``) and a periodic positional encoding, plus cross-attention to the audio restricted by the
  alignment mask (frame ``i`` sees audio frame ``i``);
- teacher forcing in training (the input at frame ``i`` is the embedded ground-truth frame
  ``i - 1``); autoregressive inference.

Inference modes (registry names):
- ``faceformer``: the published loop, which re-runs the decoder over the whole prefix and maps the
  whole prefix back to vertices at every step (no key/value cache; cost grows about ``T^2``);
- ``faceformer-cached``: the same function with a key/value cache: each step runs the decoder on the
  new frame only, and the output-map-then-vertex-map feedback ``vertex_map(vertex_map_r(h))`` is
  applied as the single exact ``d x d`` affine map it is; vertices are decoded once at the end.

Unlike the original, which fails past its 600-frame precomputed mask, masks and encodings are
built for any length.

Conditioning (the change): FaceFormer adds a learned one-hot embedding of the TRAINING speaker to
the start token and to every fed-back frame; test speakers are unseen, so that cannot work under
our protocol. We compute the style vector from the style reference instead: the reference's
offsets, vertex-mapped, averaged over time and passed through a linear layer. Training pairs each
sequence with another sequence of the same train speaker, as the protocol does at test time.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from benchmark.models.layers import (
    alignment_mask,
    merged_options,
    period_biased_causal_mask,
    periodic_positional_encoding,
)

#: Registry names this module builds.
MODEL_NAMES = ("faceformer", "faceformer-cached")


def default_config(name: str) -> dict[str, Any]:
    """Model options for ``name`` (VOCASET's published sizes: 64 features, 4 heads, period 30)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"faceformer.py builds {MODEL_NAMES}, not {name!r}")
    return {"d_model": 64, "num_heads": 4, "num_layers": 1, "period": 30, "dropout": 0.1}


class _Attention(nn.Module):
    """Multi-head attention with an additive float mask and optional cached keys/values."""

    def __init__(self, d_model: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, d_model // num_heads
        self.query, self.key, self.value = (nn.Linear(d_model, d_model) for _ in range(3))
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def split(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` (B, Lq, d); ``keys``/``values`` already split, (B, H, Lk, d/H); ``mask`` broadcastable to (B, H, Lq, Lk)."""
        attended = F.scaled_dot_product_attention(
            self.split(self.query(x)), keys, values, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(attended.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))


class DecoderLayer(nn.Module):
    """``nn.TransformerDecoderLayer``'s post-norm computation, written out so keys/values can be cached."""

    def __init__(self, d_model: int, num_heads: int, dropout: float):
        super().__init__()
        self.self_attention = _Attention(d_model, num_heads, dropout)
        self.cross_attention = _Attention(d_model, num_heads, dropout)
        self.feed_forward = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.ReLU(), nn.Dropout(dropout), nn.Linear(2 * d_model, d_model))
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.drop1, self.drop2, self.drop3 = (nn.Dropout(dropout) for _ in range(3))

    def forward(
        self,
        x: torch.Tensor,
        memory_kv: tuple[torch.Tensor, torch.Tensor],
        self_mask: torch.Tensor,
        memory_mask: torch.Tensor,
        cache: dict | None = None,
    ) -> torch.Tensor:
        """``x`` (B, L, d) new positions. With ``cache`` (from :meth:`new_cache`), their keys/values
        are written after those of earlier calls and attention runs over all of them."""
        attention = self.self_attention
        keys, values = attention.split(attention.key(x)), attention.split(attention.value(x))
        if cache is not None:
            start, stop = cache["length"], cache["length"] + x.shape[1]
            cache["keys"][:, :, start:stop] = keys
            cache["values"][:, :, start:stop] = values
            cache["length"] = stop
            keys, values = cache["keys"][:, :, :stop], cache["values"][:, :, :stop]
        x = self.norm1(x + self.drop1(attention(x, keys, values, self_mask)))
        x = self.norm2(x + self.drop2(self.cross_attention(x, *memory_kv, memory_mask)))
        return self.norm3(x + self.drop3(self.feed_forward(x)))

    def new_cache(self, batch: int, max_length: int, like: torch.Tensor) -> dict:
        """Preallocated key/value buffers for ``max_length`` positions (filled as decoding goes)."""
        heads, head_dim = self.self_attention.num_heads, self.self_attention.head_dim
        shape = (batch, heads, max_length, head_dim)
        return {"keys": like.new_empty(shape), "values": like.new_empty(shape), "length": 0}

    def memory_keys_values(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cross = self.cross_attention
        return cross.split(cross.key(memory)), cross.split(cross.value(memory))


class FaceFormerModel(nn.Module):
    """The network of the module docstring for ``num_vertices`` vertices and ``feature_dim`` audio features."""

    def __init__(
        self,
        num_vertices: int,
        feature_dim: int,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 1,
        period: int = 30,
        dropout: float = 0.1,
        cached: bool = False,
    ):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of num_heads ({num_heads})")
        self.num_vertices, self.feature_dim, self.d_model = num_vertices, feature_dim, d_model
        self.num_heads, self.period, self.cached = num_heads, period, cached
        self.register_buffer("feature_mean", torch.zeros(feature_dim))
        self.register_buffer("feature_std", torch.ones(feature_dim))
        self.register_buffer("offset_scale", torch.tensor(1e-3))
        self.audio_map = nn.Linear(feature_dim, d_model)
        self.vertex_map = nn.Linear(3 * num_vertices, d_model)
        self.vertex_map_r = nn.Linear(d_model, 3 * num_vertices)
        nn.init.zeros_(self.vertex_map_r.weight)  # as published: start from the template
        nn.init.zeros_(self.vertex_map_r.bias)
        self.style_map = nn.Linear(d_model, d_model)
        self.layers = nn.ModuleList(DecoderLayer(d_model, num_heads, dropout) for _ in range(num_layers))

    @torch.no_grad()
    def initialize_from_data(self, features: torch.Tensor, offsets: torch.Tensor, templates: torch.Tensor) -> None:
        """Audio normalisation and the offset scale from train-split samples (see CompositeModel)."""
        del templates
        self.feature_mean.copy_(features.mean(dim=0))
        self.feature_std.copy_(features.std(dim=0, unbiased=False).clamp(min=1e-3))
        self.offset_scale.copy_(offsets.std().clamp(min=1e-6))

    def regularizer(self) -> torch.Tensor:
        """No model-specific loss term."""
        return self.vertex_map.weight.new_zeros(())

    def _flat_offsets(self, vertices: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
        offsets = (vertices - template[:, None]) / self.offset_scale
        return offsets.reshape(*offsets.shape[:2], 3 * self.num_vertices)

    def _style(self, template: torch.Tensor, style_vertices: torch.Tensor, style_mask: torch.Tensor | None) -> torch.Tensor:
        embedded = self.vertex_map(self._flat_offsets(style_vertices, template))  # (B, T', d)
        if style_mask is None:
            pooled = embedded.mean(dim=1)
        else:
            weight = style_mask.to(embedded.dtype)[..., None]
            pooled = (embedded * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)
        return self.style_map(pooled)[:, None]  # (B, 1, d)

    def _memory(self, features: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        memory = self.audio_map((features - self.feature_mean) / self.feature_std)
        return [layer.memory_keys_values(memory) for layer in self.layers]

    def _decode(
        self, tokens: torch.Tensor, memory_kv, self_mask: torch.Tensor, memory_mask: torch.Tensor, caches: list[dict] | None = None
    ) -> torch.Tensor:
        hidden = tokens
        for index, layer in enumerate(self.layers):
            hidden = layer(hidden, memory_kv[index], self_mask, memory_mask, None if caches is None else caches[index])
        return hidden

    def _masks(self, length: int, audio_length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Self-attention (1, H, L, L) and audio (1, 1, L, A) masks for ``length`` positions from 0."""
        self_mask = period_biased_causal_mask(self.num_heads, length, length, self.period, device=device)
        return self_mask[None], alignment_mask(length, audio_length, device=device)[None, None]

    def forward(
        self,
        features: torch.Tensor,
        template: torch.Tensor,
        style_vertices: torch.Tensor,
        style_mask: torch.Tensor | None = None,
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher-forced prediction ``(B, T, N, 3)`` (training); without ``target``, :meth:`generate` per item.

        ``features`` (B, T, F), ``template`` (B, N, 3), ``style_vertices`` (B, T', N, 3),
        ``target`` (B, T, N, 3) ground truth whose frames ``0..T-2`` are fed as inputs ``1..T-1``.
        """
        if target is None:
            return torch.stack([self.generate(features[b], template[b], style_vertices[b]) for b in range(len(features))])
        style = self._style(template, style_vertices, style_mask)
        past = self.vertex_map(self._flat_offsets(target[:, :-1], template)) + style
        tokens = torch.cat([style, past], dim=1)
        tokens = tokens + periodic_positional_encoding(tokens.shape[1], self.d_model, self.period, tokens.device)
        hidden = self._decode(tokens, self._memory(features), *self._masks(tokens.shape[1], features.shape[1], tokens.device))
        offsets = self.vertex_map_r(hidden) * self.offset_scale
        return template[:, None] + offsets.reshape(*offsets.shape[:2], self.num_vertices, 3)

    @torch.no_grad()
    def generate(
        self, features: torch.Tensor, template: torch.Tensor, style_vertices: torch.Tensor, cached: bool | None = None
    ) -> torch.Tensor:
        """Autoregressive inference: ``(T, F)``, ``(N, 3)``, ``(T', N, 3)`` -> ``(T, N, 3)`` vertices.

        ``cached`` (default: the model's mode) picks the key/value-cached loop; both compute the
        same function (up to float rounding).
        """
        cached = self.cached if cached is None else cached
        template = template[None]
        style = self._style(template, style_vertices[None], None)
        memory_kv = self._memory(features[None])
        num_frames = features.shape[0]
        if num_frames == 0:
            return template[0, None].expand(0, -1, -1).clone()
        run = self._generate_cached if cached else self._generate_published
        offsets = run(style, memory_kv, num_frames) * self.offset_scale
        return (template + offsets.reshape(1, num_frames, self.num_vertices, 3))[0]

    def _generate_published(self, style: torch.Tensor, memory_kv, num_frames: int) -> torch.Tensor:
        # FaceFormer's loop: positional encoding, decoder and output map over the whole prefix each
        # step; like the published code, the masks are built once and sliced.
        self_mask, memory_mask = self._masks(num_frames, memory_kv[0][0].shape[2], style.device)
        encoding = periodic_positional_encoding(num_frames, self.d_model, self.period, style.device)
        tokens = style
        for step in range(num_frames):
            hidden = self._decode(
                tokens + encoding[: step + 1], memory_kv, self_mask[:, :, : step + 1, : step + 1], memory_mask[:, :, : step + 1]
            )
            offsets = self.vertex_map_r(hidden)  # (1, step + 1, 3N)
            if step + 1 < num_frames:
                tokens = torch.cat([tokens, self.vertex_map(offsets[:, -1:]) + style], dim=1)
        return offsets

    def _generate_cached(self, style: torch.Tensor, memory_kv, num_frames: int) -> torch.Tensor:
        # vertex_map(vertex_map_r(h)) = (A_in A_out) h + (A_in b_out + b_in): one d x d affine map.
        feedback_weight = self.vertex_map.weight @ self.vertex_map_r.weight
        feedback_bias = self.vertex_map.weight @ self.vertex_map_r.bias + self.vertex_map.bias
        encoding = periodic_positional_encoding(num_frames, self.d_model, self.period, style.device)
        # Row i of the biased mask over keys 0..i is bias_by_distance[:, i - j]: keep the reversed
        # distances once and slice (memory O(H T), not O(H T^2)).
        distance_bias = period_biased_causal_mask(self.num_heads, num_frames, 1, self.period, device=style.device)
        reversed_bias = distance_bias[:, :, 0].flip(-1)[:, None, None, :]  # (H, 1, 1, T): distance T-1 .. 0
        audio_length = memory_kv[0][0].shape[2]
        caches = [layer.new_cache(1, num_frames, style) for layer in self.layers]
        token, outputs = style, []
        for step in range(num_frames):
            self_mask = reversed_bias[..., num_frames - 1 - step :].transpose(0, 1)  # (1, H, 1, step + 1)
            memory_mask = style.new_full((1, 1, 1, audio_length), float("-inf"))
            memory_mask[..., step] = 0.0  # alignment: frame i sees audio i
            hidden = self._decode(token + encoding[step], memory_kv, self_mask, memory_mask, caches)
            outputs.append(hidden)
            token = F.linear(hidden, feedback_weight, feedback_bias) + style
        return self.vertex_map_r(torch.cat(outputs, dim=1))


def build_module(name: str, config: dict[str, Any], num_vertices: int, feature_dim: int) -> FaceFormerModel:
    """A :class:`FaceFormerModel` for registry ``name`` (``faceformer-cached`` turns the cache on)."""
    options = merged_options(name, default_config(name), config)
    return FaceFormerModel(num_vertices, feature_dim, cached=name == "faceformer-cached", **options)


def load(name: str, checkpoint: str | None = None, **options):
    """Registry loader: the trained model in ``checkpoint`` (a ``mmface4d bench train`` folder).

    ``faceformer`` and ``faceformer-cached`` read the same checkpoints (same weights) and differ
    only in the inference loop. See :func:`benchmark.training.load_animator` for ``options``.
    """
    from benchmark.training import load_animator

    return load_animator(name, checkpoint, **options)
