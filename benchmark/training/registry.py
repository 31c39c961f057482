"""The registry's trainable models: which module builds a name, and which names share weights."""

from __future__ import annotations

from typing import Any

from benchmark.training.config import TrainingError


def model_module(name: str):
    """The module that builds registry model ``name`` (composite or faceformer)."""
    import importlib

    from benchmark.models import MODELS

    target = MODELS.get(name)
    if target is None or name == "static":
        trainable = sorted(n for n in MODELS if n != "static")
        raise TrainingError(f"model {name!r} cannot be trained here; trainable models: {', '.join(trainable)}")
    return importlib.import_module(target.partition(":")[0])


def checkpoint_family(name: str) -> str:
    """Names that share weights: ``faceformer`` and ``faceformer-cached`` differ only at inference."""
    return "faceformer" if name.startswith("faceformer") else name


def build_model(name: str, model_config: dict[str, Any], num_vertices: int, feature_dim: int):
    """The torch module of registry model ``name`` (weights initialised from the global torch seed)."""
    try:
        return model_module(name).build_module(name, dict(model_config), num_vertices, feature_dim)
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"model {name!r}: {exc}") from exc
