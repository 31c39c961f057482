"""Training the bundled models, their checkpoints, and the inference wrapper the harness calls.

A training run (``mmface4d bench train``) reads a release's train split, pairs every sequence with
a style reference (another sequence of the same train speaker, as the protocol does at test time),
samples aligned random windows and minimises

    loss = mean((P - G)^2) + velocity_weight * mean((dP - dG)^2) + regional_weight * model.regularizer()

with ``P``, ``G`` predicted and true vertices in MILLIMETRES, ``d`` the difference between
consecutive frames, and ``model.regularizer()`` the regional sparsity term of the paper's model
(0 for the others). Adam, gradient-norm clipping, fixed seed.

Checkpoints are folders ``OUT/checkpoint-<step>/`` holding ``model.safetensors`` (weights),
``optimizer.safetensors`` (Adam state), ``rng.safetensors`` (random states) and ``checkpoint.json``
(model name, model options, front end, vertex count, training options, step, last losses). A
folder is written under a temporary name and renamed when complete, so a checkpoint on disk is
always whole; the run resumes from the highest-numbered one and, for the same seed, continues
exactly as an uninterrupted run would. Nothing is unpickled: tensors come from safetensors,
the rest from JSON.

One module per job; this package re-exports their public names:

- :mod:`.config`: options of a run (:class:`TrainConfig`, :func:`load_config`) and :class:`TrainingError`;
- :mod:`.registry`: the registry's trainable models (:func:`model_module`, :func:`build_model`);
- :mod:`.data`: decoded train sequences and the sampler of aligned windows, which cuts and collates
  them through the public :mod:`mmface4d_datasets.torch_data`;
- :mod:`.checkpoints`: checkpoint folders (safetensors and JSON);
- :mod:`.inference`: :class:`TorchAnimator`, the trained model behind the harness's interface;
- :mod:`.loop`: the loss and the training loop (:func:`train`).

Importing the package imports no torch (each function imports it when called).
"""

from __future__ import annotations

from benchmark.training.checkpoints import (
    CHECKPOINT_FORMAT,
    find_checkpoint,
    list_checkpoints,
    read_checkpoint,
    save_checkpoint,
)
from benchmark.training.config import TrainConfig, TrainingError, load_config
from benchmark.training.data import TrainingData, TrainingSequence
from benchmark.training.inference import TorchAnimator, load_animator
from benchmark.training.loop import train, training_loss
from benchmark.training.registry import build_model, checkpoint_family, model_module
from mmface4d_datasets.vocabulary import FPS

__all__ = [
    "CHECKPOINT_FORMAT",
    "FPS",
    "TorchAnimator",
    "TrainConfig",
    "TrainingData",
    "TrainingError",
    "TrainingSequence",
    "build_model",
    "checkpoint_family",
    "find_checkpoint",
    "list_checkpoints",
    "load_animator",
    "load_config",
    "model_module",
    "read_checkpoint",
    "save_checkpoint",
    "train",
    "training_loss",
]
