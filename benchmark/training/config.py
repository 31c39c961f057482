"""Options of a training run: :class:`TrainConfig`, read from JSON or TOML by :func:`load_config`."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmface4d_datasets.errors import FormatError, MMFace4DError


class TrainingError(MMFace4DError):
    """A training run cannot start or continue (names the file, option or record at fault)."""


@dataclass
class TrainConfig:
    """Options of a training run (a JSON or TOML file gives any subset; see :func:`load_config`).

    Attributes:
        model: overrides of the model's own options (``default_config(name)`` of its module).
        front_end: audio front end, ``"logmel"``, ``"hubert:<local path or cached name>"`` or a spec
            table (``{"name": "logmel", "n_mels": 40, "sub_frames": 2}``, see ``benchmark.features``).
        steps: optimisation steps in total (a resumed run continues up to this number).
        batch_size: windows per step.
        window_seconds: length of the training windows (the models take any length at inference).
        style_seconds: the style reference is cropped to at most this long (a random crop).
        lr, weight_decay, grad_clip: Adam learning rate and L2 weight decay; max gradient norm.
        velocity_weight: weight of the velocity term of the loss.
        regional_weight: weight of the regional sparsity term (used by models with ``regional``).
        seed: seeds weights, sampling and dropout.
        checkpoint_every: steps between checkpoints (one is also written at the end).
        keep_checkpoints: how many of the newest checkpoint folders to keep.
        threads: torch intra-op threads (None: leave torch's default).
    """

    model: dict[str, Any] = field(default_factory=dict)
    front_end: str | dict[str, Any] = "logmel"
    steps: int = 2000
    batch_size: int = 8
    window_seconds: float = 2.0
    style_seconds: float = 4.0
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    velocity_weight: float = 1.0
    regional_weight: float = 0.1
    seed: int = 0
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | os.PathLike | None, **overrides: Any) -> TrainConfig:
    """Read a :class:`TrainConfig` from a ``.json`` or ``.toml`` file (or defaults for None).

    ``overrides`` whose value is not None replace the file's values. Unknown keys are an error
    naming the file.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TrainingError(f"cannot read training config {path}: {exc.strerror or exc}") from exc
        try:
            if path.suffix == ".toml":
                import tomllib

                values = tomllib.loads(text)
            else:
                values = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise FormatError(f"training config {path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from exc
        if not isinstance(values, dict):
            raise FormatError(f"training config {path} must hold a table/object of options")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise FormatError(f"training config {path}: unknown options {unknown}; known: {sorted(known)}")
    values.update({key: value for key, value in overrides.items() if value is not None})
    return TrainConfig(**values)
