"""The training loss and loop: :func:`train` (resumable, deterministic for a seed)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.training.checkpoints import list_checkpoints, read_checkpoint, restore_optimizer, rng_state, save_checkpoint
from benchmark.training.config import TrainConfig, TrainingError
from benchmark.training.data import TrainingData
from benchmark.training.registry import build_model, checkpoint_family, model_module
from mmface4d_datasets.vocabulary import FPS

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch


def training_loss(model, batch: dict[str, "torch.Tensor"], velocity_weight: float, regional_weight: float) -> dict[str, "torch.Tensor"]:
    """The loss of the package docstring for one batch: ``{"loss", "vertex", "velocity", "regional"}``."""
    prediction = model(batch["features"], batch["template"], batch["style_vertices"], batch["style_mask"], target=batch["vertices"])
    error = (prediction - batch["vertices"]) * 1000.0  # millimetres
    vertex = error.square().mean()
    velocity = (error[:, 1:] - error[:, :-1]).square().mean() if error.shape[1] > 1 else vertex.new_zeros(())
    regional = model.regularizer()
    loss = vertex + velocity_weight * velocity + regional_weight * regional
    return {"loss": loss, "vertex": vertex, "velocity": velocity, "regional": regional}


def train(
    name: str,
    data: TrainingData,
    out_dir: str | os.PathLike,
    config: TrainConfig,
    resume: bool = True,
    progress: bool = True,
    max_seconds: float | None = None,
    front_end=None,
    extra_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train registry model ``name`` on ``data`` into ``out_dir``; returns a summary dict.

    Resumes from the newest checkpoint in ``out_dir`` when ``resume`` (its model, front end and
    options must match); stops at ``config.steps`` or, if given, after ``max_seconds`` of wall
    time (a checkpoint is written either way). Summary: ``step``, ``checkpoint``, ``losses``
    (last step's), ``seconds``, ``resumed_from``. ``front_end`` (the object that computed
    ``data``'s features) is stored by its ``spec()``; without it, ``config.front_end`` is stored.
    """
    import torch
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    feature_spec = front_end.spec() if front_end is not None else config.front_end
    if front_end is not None and front_end.dim != data.feature_dim:
        raise TrainingError(f"the front end {feature_spec} gives {front_end.dim} features, the data has {data.feature_dim}")
    family = checkpoint_family(name)
    torch.manual_seed(config.seed)
    model = build_model(family, config.model, data.num_vertices, data.feature_dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    step, resumed_from = 0, None
    existing = list_checkpoints(out_dir) if resume else []
    if existing:
        folder, meta, weights = read_checkpoint(existing[-1])
        if (
            meta.get("model") != family
            or meta.get("train_config", {}).get("model") != config.model
            or meta.get("front_end") != feature_spec
            or meta.get("num_vertices") != data.num_vertices
        ):
            raise TrainingError(
                f"{folder}: the run there trained {meta.get('model')!r} with other options, front end "
                f"or vertex count; use another --out or start over with --no-resume"
            )
        model.load_state_dict(weights)
        from safetensors.torch import load_file

        restore_optimizer(optimizer, load_file(str(folder / "optimizer.safetensors")), meta["optimizer"])
        rng = load_file(str(folder / "rng.safetensors"))
        torch.set_rng_state(rng["torch"])
        generator.set_state(rng["sampler"])
        step, resumed_from = int(meta["step"]), str(folder)
    else:
        model.initialize_from_data(*data.statistics_sample(generator))

    meta_base = {
        "model": family,
        "model_config": {**model_module(family).default_config(family), **config.model},
        "front_end": feature_spec,
        "feature_dim": data.feature_dim,
        "num_vertices": data.num_vertices,
        "train_config": config.to_dict(),
        **(extra_meta or {}),
    }
    window_frames = max(2, int(round(config.window_seconds * FPS)))
    style_frames = max(1, int(round(config.style_seconds * FPS)))
    started, losses, last_saved = time.monotonic(), {}, None
    model.train()
    bound = f" (at most {max_seconds:.0f} s)" if max_seconds is not None else ""
    bar = tqdm(total=config.steps, initial=step, desc=f"train {name}{bound}", unit="step", disable=not progress)
    while step < config.steps:
        batch = data.sample_batch(config.batch_size, window_frames, style_frames, generator)
        terms = training_loss(model, batch, config.velocity_weight, config.regional_weight if getattr(model, "regional", False) else 0.0)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        step += 1
        losses = {key: value.detach().item() for key, value in terms.items()}
        if not math.isfinite(losses["loss"]):
            raise TrainingError(f"training {name} diverged at step {step} (loss {losses['loss']}); lower lr in the config")
        bar.update(1)
        elapsed = time.monotonic() - started
        # with a time bound, the bar's own estimate (for all steps) may end after the bound: say when it stops
        bound_left = {} if max_seconds is None else {"stops_in": f"{max(0.0, max_seconds - elapsed):.0f}s"}
        bar.set_postfix(
            loss=f"{losses['loss']:.4g}",
            vertex=f"{losses['vertex']:.4g}",
            velocity=f"{losses['velocity']:.3g}",
            regional=f"{losses['regional']:.3g}",
            **bound_left,
        )
        out_of_time = max_seconds is not None and elapsed >= max_seconds
        if step % config.checkpoint_every == 0 or step == config.steps or out_of_time:
            last_saved = save_checkpoint(
                out_dir, {**meta_base, "step": step, "losses": losses}, model, optimizer, rng_state(generator), config.keep_checkpoints
            )
        if out_of_time:
            break
    bar.close()
    if last_saved is None:
        last_saved = (
            existing[-1]
            if existing
            else save_checkpoint(
                out_dir, {**meta_base, "step": step, "losses": losses}, model, optimizer, rng_state(generator), config.keep_checkpoints
            )
        )
    return {
        "model": name,
        "step": step,
        "checkpoint": str(last_saved),
        "losses": losses,
        "seconds": time.monotonic() - started,
        "resumed_from": resumed_from,
    }
