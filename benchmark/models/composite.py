"""The paper's model: composite (style-modulated) and regional (sparse decoding) facial movements.

Non-autoregressive; every stage is linear in the vertex count or independent of it, and every
convolution preserves length, so clips of any length go through in one pass:

1. Encoding matrix ``W`` (``3N x D``): a frame's offsets from the template, divided by a fixed
   scale ``s`` (metres, the train offsets' std), map to a code ``z = flatten(v - template) / s @ W``.
   Decoding is tied: ``v = template + s * (z @ W^T)``.
2. Audio: front-end features, normalised with train statistics, through a ResNet1D encoder.
3. Composite part: the style reference (another sequence of the same speaker), template
   subtracted and encoded by ``W``, goes through a ResNet1D style encoder; its temporal mean and
   std modulate the audio features by AdaIN (:func:`benchmark.models.layers.adain`).
4. A template embedding (the template, minus the train mean template, encoded by ``W`` and
   projected) is added to every frame.
5. A ResNet1D decoder without downsampling (kernel 3, stride 1) gives per-frame features, a
   linear layer gives codes ``z``, the tied matrix decodes them.
6. Regional part: the sparsity regulariser :meth:`CompositeModel.regional_sparsity` on the
   decoding matrix, added to the training loss.

Ablations (registry names): ``mmface4d-no-composite`` skips step 3; ``mmface4d-no-regional``
trains without step 6.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from benchmark.models.layers import ResNet1D, adain, masked_mean_std, merged_options

#: Registry names this module builds.
MODEL_NAMES = ("mmface4d", "mmface4d-no-composite", "mmface4d-no-regional")


def default_config(name: str) -> dict[str, Any]:
    """Model options for ``name`` (stored in checkpoints; any key may be overridden)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"composite.py builds {MODEL_NAMES}, not {name!r}")
    return {
        "code_dim": 128,  # D, columns of the encoding matrix
        "hidden_dim": 128,  # channels of the ResNet1D stacks
        "audio_blocks": 2,
        "style_blocks": 2,
        "decoder_blocks": 4,
        "kernel_size": 3,
        "dropout": 0.1,
        "composite": name != "mmface4d-no-composite",
        "regional": name != "mmface4d-no-regional",
    }


class CompositeModel(nn.Module):
    """The network of the module docstring for ``num_vertices`` vertices and ``feature_dim`` audio features.

    Buffers set by :meth:`initialize_from_data` (train split only): ``feature_mean``/``feature_std``
    (audio normalisation), ``offset_scale`` (metres), ``mean_template`` (N, 3) and
    ``template_scale`` (metres).
    """

    def __init__(
        self,
        num_vertices: int,
        feature_dim: int,
        code_dim: int = 128,
        hidden_dim: int = 128,
        audio_blocks: int = 2,
        style_blocks: int = 2,
        decoder_blocks: int = 4,
        kernel_size: int = 3,
        dropout: float = 0.1,
        composite: bool = True,
        regional: bool = True,
    ):
        super().__init__()
        self.num_vertices, self.feature_dim, self.code_dim = num_vertices, feature_dim, code_dim
        self.composite, self.regional = composite, regional
        basis = torch.empty(3 * num_vertices, code_dim)
        nn.init.orthogonal_(basis)
        self.basis = nn.Parameter(basis)
        self.register_buffer("feature_mean", torch.zeros(feature_dim))
        self.register_buffer("feature_std", torch.ones(feature_dim))
        self.register_buffer("offset_scale", torch.tensor(1e-3))
        self.register_buffer("mean_template", torch.zeros(num_vertices, 3))
        self.register_buffer("template_scale", torch.tensor(1e-2))
        self.audio_encoder = ResNet1D(feature_dim, hidden_dim, audio_blocks, kernel_size, dropout)
        self.style_encoder = ResNet1D(code_dim, hidden_dim, style_blocks, kernel_size, dropout) if composite else None
        self.template_embedding = nn.Linear(code_dim, hidden_dim)
        self.decoder = ResNet1D(hidden_dim, hidden_dim, decoder_blocks, kernel_size, dropout)
        self.to_code = nn.Linear(hidden_dim, code_dim)

    # -- the tied linear map ---------------------------------------------------------------
    def encode(self, offsets: torch.Tensor) -> torch.Tensor:
        """``(..., N, 3)`` offsets in metres -> ``(..., D)`` codes: ``flatten(offsets) / s @ W``."""
        flat = offsets.reshape(*offsets.shape[:-2], 3 * self.num_vertices)
        return (flat @ self.basis) / self.offset_scale  # scale the small result, not the large input

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``(..., D)`` codes -> ``(..., N, 3)`` offsets in metres: ``s * (z @ W^T)`` (tied)."""
        flat = (codes * self.offset_scale) @ self.basis.T
        return flat.reshape(*codes.shape[:-1], self.num_vertices, 3)

    def regional_sparsity(self) -> torch.Tensor:
        """The regional regulariser on the decoding matrix ``W^T`` (``D`` rows of ``N`` vertices x 3).

        With ``m[k, v] = ||W[3v:3v+3, k]||_2`` (absolute size of row ``k`` at vertex ``v``) and each
        row normalised by its maximum, ``a[k, v] = m[k, v] / max_v' m[k, v']`` (in [0, 1]), the
        mutual exclusivity of rows per vertex is

            L = 1 / (N * D * (D - 1)) * sum_v sum_{k != l} a[k, v] * a[l, v]
              = 1 / (N * D * (D - 1)) * sum_v [ (sum_k a[k, v])^2 - sum_k a[k, v]^2 ],

        zero when every vertex is driven by a single row (disjoint regions), 1 when all rows are
        flat. Returns 0 for ``D = 1``.
        """
        if self.code_dim < 2:
            return self.basis.new_zeros(())
        size = self.basis.reshape(self.num_vertices, 3, self.code_dim).norm(dim=1)  # (N, D)
        normalised = size / size.max(dim=0, keepdim=True).values.clamp(min=1e-12)
        pairs = normalised.sum(dim=1).square() - normalised.square().sum(dim=1)
        return pairs.sum() / (self.num_vertices * self.code_dim * (self.code_dim - 1))

    def regularizer(self) -> torch.Tensor:
        """The model's own loss term: :meth:`regional_sparsity` when ``regional``, else 0."""
        return self.regional_sparsity() if self.regional else self.basis.new_zeros(())

    # -- data statistics -------------------------------------------------------------------
    @torch.no_grad()
    def initialize_from_data(self, features: torch.Tensor, offsets: torch.Tensor, templates: torch.Tensor) -> None:
        """Set the normalisation buffers and start ``W`` at the principal directions of the data.

        ``features`` (M, F) audio features, ``offsets`` (M', N, 3) frames minus their template,
        ``templates`` (S, N, 3), all from the train split. ``W`` becomes the top-``D`` right
        singular vectors of the scaled offsets (orthonormal columns; random orthonormal columns
        fill in when there are fewer than ``D`` frames).
        """
        self.feature_mean.copy_(features.mean(dim=0))
        self.feature_std.copy_(features.std(dim=0, unbiased=False).clamp(min=1e-3))
        self.offset_scale.copy_(offsets.std().clamp(min=1e-6))
        self.mean_template.copy_(templates.mean(dim=0))
        self.template_scale.copy_((templates - self.mean_template).std().clamp(min=1e-6))
        flat = offsets.reshape(offsets.shape[0], -1) / self.offset_scale
        found = min(self.code_dim, *flat.shape)
        # Randomised SVD (Halko et al.): exact for data of rank <= q, seconds instead of minutes at 3N ~ 1e4.
        _, _, v = torch.svd_lowrank(flat, q=min(found + 16, *flat.shape), niter=3, M=flat.mean(dim=0, keepdim=True))
        self.basis[:, :found] = v[:, :found].to(self.basis.dtype)

    # -- forward ---------------------------------------------------------------------------
    def forward(
        self,
        features: torch.Tensor,
        template: torch.Tensor,
        style_vertices: torch.Tensor,
        style_mask: torch.Tensor | None = None,
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predicted vertices ``(B, T, N, 3)`` in metres.

        Args:
            features: ``(B, T, F)`` audio features, one row per output frame.
            template: ``(B, N, 3)`` neutral templates.
            style_vertices: ``(B, T', N, 3)`` style reference frames (same speaker, another sentence).
            style_mask: ``(B, T')`` True for real style frames (padding excluded from the statistics).
            target: unused (non-autoregressive); accepted so every bundled model trains alike.
        """
        del target
        audio = self.audio_encoder((features - self.feature_mean) / self.feature_std)
        if self.composite:
            style_codes = self.encode(style_vertices - template[:, None])
            style = self.style_encoder(style_codes)
            style_mean, style_std = masked_mean_std(style, style_mask)
            audio = adain(audio, style_mean, style_std)
        template_codes = self.encode((template - self.mean_template) * (self.offset_scale / self.template_scale))
        hidden = self.decoder(audio + self.template_embedding(template_codes)[:, None])
        return template[:, None] + self.decode(self.to_code(hidden))

    @torch.no_grad()
    def generate(self, features: torch.Tensor, template: torch.Tensor, style_vertices: torch.Tensor) -> torch.Tensor:
        """Inference: ``(T, F)``, ``(N, 3)``, ``(T', N, 3)`` -> ``(T, N, 3)`` vertices (one pass)."""
        return self.forward(features[None], template[None], style_vertices[None])[0]


def build_module(name: str, config: dict[str, Any], num_vertices: int, feature_dim: int) -> CompositeModel:
    """A :class:`CompositeModel` for registry ``name`` with ``config`` (see :func:`default_config`)."""
    options = merged_options(name, default_config(name), config)
    return CompositeModel(num_vertices, feature_dim, **options)


def load(name: str, checkpoint: str | None = None, **options):
    """Registry loader: the trained model in ``checkpoint`` (a ``mmface4d bench train`` folder).

    See :func:`benchmark.training.load_animator` for ``options`` (``untrained=True`` with
    ``num_vertices`` builds randomly initialised weights, for speed measurements only).
    """
    from benchmark.training import load_animator

    return load_animator(name, checkpoint, **options)
