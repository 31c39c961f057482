"""The registry of bundled models: a name -> the ``load`` function that builds it, imported lazily.

Every loader has the signature ``load(name, checkpoint=None, **options) -> AnimationModel``
(benchmark.protocol.AnimationModel). Importing this module imports no model code (and no torch):
the loader's module is imported by :func:`load_model` when that name is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from mmface4d_datasets.errors import MMFace4DError

if TYPE_CHECKING:
    from benchmark.protocol import AnimationModel

#: Model name -> "module:function" of its loader.
MODELS: dict[str, str] = {
    "static": "benchmark.models.static:load",
    "mmface4d": "benchmark.models.composite:load",
    "mmface4d-no-composite": "benchmark.models.composite:load",
    "mmface4d-no-regional": "benchmark.models.composite:load",
    "faceformer": "benchmark.models.faceformer:load",
    "faceformer-cached": "benchmark.models.faceformer:load",
}


class UnknownModelError(MMFace4DError):
    """The model name is not in the registry, or its loader cannot be imported."""


def available_models() -> list[str]:
    """The registered model names, sorted."""
    return sorted(MODELS)


def load_model(name: str, checkpoint: str | None = None, **options) -> "AnimationModel":
    """Build the model registered under ``name``.

    Args:
        name: a key of :data:`MODELS` (e.g. ``"static"``, ``"mmface4d"``, ``"faceformer"``).
        checkpoint: a folder or file with trained weights, passed on to the loader (``static``
            needs none).
        **options: loader-specific options, passed on unchanged.

    Raises:
        UnknownModelError: the name is not registered, or its loader's module is missing.
    """
    target = MODELS.get(name)
    if target is None:
        from mmface4d_datasets.arguments import did_you_mean

        raise UnknownModelError(
            f"unknown model {name!r}{did_you_mean(name, available_models())} (available: {', '.join(available_models())})"
        )
    module_name, _, function_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):  # the loader's own module is absent
            raise UnknownModelError(f"model {name!r}: its loader {target} is not installed ({exc})") from exc
        raise
    loader = getattr(module, function_name, None)
    if loader is None:
        raise UnknownModelError(f"model {name!r}: {module_name} has no function {function_name!r}")
    return loader(name, checkpoint, **options)
