"""The trained torch model behind the benchmark's ``AnimationModel`` interface, and the registry loaders' body."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.training.checkpoints import read_checkpoint
from benchmark.training.config import TrainingError
from benchmark.training.registry import build_model, checkpoint_family, model_module
from mmface4d_datasets.errors import FormatError, MMFace4DError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

    from benchmark.protocol import ProtocolInputs


class TorchAnimator:
    """A trained torch model behind the benchmark's ``AnimationModel`` interface.

    ``predict(inputs)`` computes the audio features with ``front_end`` and runs ``module.generate``
    (the module's own inference: one pass for the paper's model, the autoregressive loop for the
    FaceFormer-style one). ``threads`` (if given) sets torch's intra-op threads for each call.
    """

    def __init__(self, name: str, module, front_end, threads: int | None = None):
        self.name, self.module, self.front_end, self.threads = name, module.eval(), front_end, threads

    def features(self, inputs: "ProtocolInputs") -> "torch.Tensor":
        """``(T, F)`` audio features of the target sequence."""
        return self.front_end(inputs.audio, inputs.num_frames, inputs.sample_rate)

    def predict_from_features(self, features: "torch.Tensor", inputs: "ProtocolInputs") -> np.ndarray:
        """Vertices ``(T, N, 3)`` float32 from precomputed features (the part after the front end)."""
        import torch

        if inputs.num_vertices != self.module.num_vertices:
            raise MMFace4DError(f"{self.name}: trained for {self.module.num_vertices} vertices, {inputs.id} has {inputs.num_vertices}")
        style = np.asarray(inputs.style_vertices, dtype=np.float32)
        if style.ndim != 3 or style.shape[0] == 0:
            raise MMFace4DError(f"{self.name}: the style reference of {inputs.id} has no frames ({style.shape})")
        template = torch.from_numpy(np.ascontiguousarray(inputs.template, dtype=np.float32))
        with torch.inference_mode():
            vertices = self.module.generate(features, template, torch.from_numpy(np.ascontiguousarray(style)))
        return vertices.numpy().astype(np.float32, copy=False)

    def predict(self, inputs: "ProtocolInputs") -> np.ndarray:
        import torch

        previous = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            return self.predict_from_features(self.features(inputs), inputs)
        finally:
            torch.set_num_threads(previous)


def load_animator(
    name: str,
    checkpoint: str | os.PathLike | None = None,
    *,
    untrained: bool = False,
    num_vertices: int | None = None,
    front_end: str | None = None,
    threads: int | None = None,
    seed: int = 0,
    **model_options: Any,
) -> TorchAnimator:
    """The registry loaders' shared body.

    With ``checkpoint`` (a run folder or one ``checkpoint-*`` folder): the trained weights, options
    and front end stored there. ``faceformer`` and ``faceformer-cached`` load each other's
    checkpoints; other names must match the checkpoint's model.

    Without a checkpoint, only ``untrained=True`` with ``num_vertices`` is accepted: randomly
    initialised weights (seed ``seed``) of the default sizes (``model_options`` override them), for
    speed measurements; its predictions mean nothing.
    """
    import torch

    from benchmark.features import build_front_end

    model_module(name)  # validates the name
    if checkpoint is None:
        if not untrained or num_vertices is None:
            raise TrainingError(
                f"model {name!r} needs a checkpoint (train one with 'mmface4d bench train --model "
                f"{name} ...'); untrained=True with num_vertices builds random weights for timing only"
            )
        frontend = build_front_end(front_end)
        torch.manual_seed(seed)
        module = build_model(name, model_options, num_vertices, frontend.dim)
        return TorchAnimator(name, module, frontend, threads)
    if model_options or untrained:
        raise TrainingError(f"model {name!r}: options {sorted(model_options)} apply to untrained models only; a checkpoint carries its own")
    folder, meta, weights = read_checkpoint(checkpoint)
    if checkpoint_family(meta.get("model", "")) != checkpoint_family(name):
        raise TrainingError(f"{folder}: this checkpoint holds model {meta.get('model')!r}, not {name!r}")
    frontend = build_front_end(front_end or meta["front_end"])
    if frontend.dim != meta["feature_dim"]:
        raise TrainingError(f"{folder}: trained on {meta['feature_dim']} audio features, front end {frontend.spec()} gives {frontend.dim}")
    module = build_model(name, meta["model_config"], int(meta["num_vertices"]), int(meta["feature_dim"]))
    try:
        module.load_state_dict(weights)
    except RuntimeError as exc:
        raise FormatError(f"{folder / 'model.safetensors'} does not fit model {name!r}: {exc}") from exc
    return TorchAnimator(name, module, frontend, threads)
