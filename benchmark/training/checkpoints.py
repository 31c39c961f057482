"""Checkpoint folders ``OUT/checkpoint-<step>/``: safetensors tensors and JSON, written whole, never pickled."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.training.config import TrainingError
from mmface4d_datasets.errors import FormatError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

#: Version of the checkpoint folder layout written by :func:`save_checkpoint`.
CHECKPOINT_FORMAT = 1


def _optimizer_tensors(optimizer) -> tuple[dict[str, "torch.Tensor"], dict[str, Any]]:
    """Adam's state as flat tensors plus its JSON-able hyper-parameters."""
    import torch

    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            tensors[f"{index}.{key}"] = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    return tensors, {"param_groups": state["param_groups"]}


def restore_optimizer(optimizer, tensors: dict[str, "torch.Tensor"], extra: dict[str, Any]) -> None:
    """Load the state :func:`save_checkpoint` wrote (``optimizer.safetensors`` and the JSON part) into ``optimizer``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, _, name = key.partition(".")
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": extra["param_groups"]})


def rng_state(generator) -> dict[str, "torch.Tensor"]:
    """The random states a checkpoint keeps: torch's global one and the sampler's ``generator``."""
    import torch

    return {"torch": torch.get_rng_state(), "sampler": generator.get_state()}


def save_checkpoint(
    out_dir: Path, meta: dict[str, Any], model, optimizer=None, rng: dict[str, "torch.Tensor"] | None = None, keep: int = 2
) -> Path:
    """Write ``out_dir/checkpoint-<step>/`` whole (temporary folder, then rename); prune old ones."""
    from safetensors.torch import save_file

    step = int(meta["step"])
    final = out_dir / f"checkpoint-{step:07d}"
    temporary = out_dir / f".checkpoint-{step:07d}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(temporary / "model.safetensors"))
    meta = dict(meta, format=CHECKPOINT_FORMAT)
    if optimizer is not None:
        tensors, extra = _optimizer_tensors(optimizer)
        save_file(tensors, str(temporary / "optimizer.safetensors"))
        meta["optimizer"] = extra
    if rng is not None:
        save_file(rng, str(temporary / "rng.safetensors"))
    (temporary / "checkpoint.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    os.replace(temporary, final)
    for old in list_checkpoints(out_dir)[: -max(keep, 1)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(out_dir: Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first."""
    if not out_dir.is_dir():
        return []
    found = [p for p in out_dir.glob("checkpoint-*") if p.is_dir() and (p / "checkpoint.json").is_file()]
    return sorted(found, key=lambda p: p.name)


def find_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder: ``path`` itself, or the newest ``checkpoint-*`` inside a run folder."""
    path = Path(path)
    if (path / "checkpoint.json").is_file():
        return path
    found = list_checkpoints(path)
    if not found:
        raise TrainingError(
            f"{path}: no checkpoint here (expected checkpoint.json or checkpoint-*/ folders written by 'mmface4d bench train')"
        )
    return found[-1]


def read_checkpoint(path: str | os.PathLike) -> tuple[Path, dict[str, Any], dict[str, "torch.Tensor"]]:
    """``(folder, meta, weights)`` of a checkpoint; safetensors and JSON only, never pickle."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = find_checkpoint(path)
    try:
        meta = json.loads((folder / "checkpoint.json").read_text(encoding="utf-8"))
    except ValueError as exc:
        raise FormatError(f"{folder / 'checkpoint.json'} is not valid JSON: {exc}") from exc
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise FormatError(f"{folder / 'checkpoint.json'}: checkpoint format {meta.get('format')!r}, this version reads {CHECKPOINT_FORMAT}")
    try:
        weights = load_file(str(folder / "model.safetensors"))
    except (OSError, SafetensorError) as exc:
        raise FormatError(f"{folder / 'model.safetensors'} cannot be read as safetensors: {exc}") from exc
    return folder, meta, weights
