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
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmface4d_datasets.vocabulary import FPS
from mmface4d_datasets.errors import FormatError, MMFace4DError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

    from benchmark.protocol import ProtocolInputs

#: Version of the checkpoint folder layout written by :func:`save_checkpoint`.
CHECKPOINT_FORMAT = 1


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


# -- data ---------------------------------------------------------------------------------------
@dataclass
class TrainingSequence:
    """One train sequence, decoded: features (T, F), vertices (T, N, 3) metres, its template."""

    id: str
    subject_id: str
    features: "torch.Tensor"
    vertices: "torch.Tensor"
    template: "torch.Tensor"


class TrainingData:
    """Train sequences with their audio features, and the sampler of aligned training windows.

    Style pairing: a sequence's style reference is drawn uniformly among the OTHER sequences of
    its speaker; a speaker with a single sequence uses that sequence (no other exists).
    """

    def __init__(self, sequences: list[TrainingSequence]):
        if not sequences:
            raise TrainingError("no training sequences (is the release's train split empty?)")
        self.sequences = sequences
        by_subject: dict[str, list[int]] = {}
        for index, sequence in enumerate(sequences):
            by_subject.setdefault(sequence.subject_id, []).append(index)
        self.partners = [
            [other for other in by_subject[s.subject_id] if other != index] or [index]
            for index, s in enumerate(sequences)
        ]
        shapes = {tuple(s.vertices.shape[1:]) for s in sequences}
        if len(shapes) != 1:
            raise TrainingError(f"training sequences differ in vertex count: {sorted(shapes)}")
        self.num_vertices = int(sequences[0].vertices.shape[1])
        self.feature_dim = int(sequences[0].features.shape[1])

    @classmethod
    def from_records(cls, records: Iterable[dict], templates: dict[str, np.ndarray], front_end,
                     progress: bool = False) -> "TrainingData":
        """Decode records (DESIGN.md record dicts, ``vertices`` decoded) and compute their features."""
        import torch
        from tqdm.auto import tqdm

        from benchmark.protocol import record_audio_16k

        sequences = []
        for record in tqdm(records, desc="features", unit="seq", disable=not progress):
            record_id, subject = str(record["id"]), str(record["subject_id"])
            if subject not in templates:
                raise TrainingError(f"record {record_id}: no template for subject {subject}")
            vertices = np.asarray(record["vertices"], dtype=np.float32)
            if vertices.ndim != 3 or vertices.shape[0] < 2:
                raise TrainingError(f"record {record_id}: vertices must be (T >= 2, N, 3), got {vertices.shape}")
            features = front_end(record_audio_16k(record["audio"], record_id), vertices.shape[0])
            sequences.append(TrainingSequence(record_id, subject, features, torch.from_numpy(vertices),
                                              torch.from_numpy(np.asarray(templates[subject], dtype=np.float32))))
        return cls(sequences)

    @classmethod
    def from_release(cls, path: str | os.PathLike, front_end, split: str = "train",
                     progress: bool = False) -> "TrainingData":
        """The ``split`` sequences of the release folder ``path`` (the train split by default)."""
        from mmface4d_datasets.release import Release

        release = Release(path)
        return cls.from_records(release.iter_records(split), release.templates(), front_end, progress)

    def statistics_sample(self, generator: "torch.Generator", max_frames: int = 2048
                          ) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
        """Features (M, F), offsets (M', N, 3) and templates (S, N, 3) for model normalisation."""
        import torch

        features = torch.cat([s.features for s in self.sequences])
        # Random (sequence, frame) picks; never concatenates every frame of the split.
        lengths = torch.tensor([s.vertices.shape[0] for s in self.sequences])
        total = int(lengths.sum())
        picks = torch.randperm(total, generator=generator)[:max_frames].sort().values
        starts = torch.cumsum(lengths, 0) - lengths
        which = torch.searchsorted(starts, picks, right=True) - 1
        offsets = torch.stack([self.sequences[int(i)].vertices[int(f)] - self.sequences[int(i)].template
                               for i, f in zip(which, picks - starts[which])])
        subjects = {}
        for s in self.sequences:
            subjects.setdefault(s.subject_id, s.template)
        return features, offsets, torch.stack(list(subjects.values()))

    def sample_batch(self, batch_size: int, window_frames: int, style_frames: int,
                     generator: "torch.Generator") -> dict[str, "torch.Tensor"]:
        """A batch of aligned windows: ``features`` (B, L, F), ``vertices`` (B, L, N, 3),
        ``template`` (B, N, 3), ``style_vertices`` (B, L', N, 3) padded with the template, ``style_mask`` (B, L') True on real frames.

        ``L = min(window_frames, shortest chosen sequence)``; windows start uniformly at random.
        """
        import torch

        def randint(high: int) -> int:
            return int(torch.randint(high, (1,), generator=generator))

        chosen = [randint(len(self.sequences)) for _ in range(batch_size)]
        length = min(window_frames, *(self.sequences[i].vertices.shape[0] for i in chosen))
        features, vertices, templates, styles = [], [], [], []
        for index in chosen:
            sequence = self.sequences[index]
            start = randint(sequence.vertices.shape[0] - length + 1)
            features.append(sequence.features[start:start + length])
            vertices.append(sequence.vertices[start:start + length])
            templates.append(sequence.template)
            partners = self.partners[index]
            partner = self.sequences[partners[randint(len(partners))]]
            style_length = min(style_frames, partner.vertices.shape[0])
            style_start = randint(partner.vertices.shape[0] - style_length + 1)
            styles.append(partner.vertices[style_start:style_start + style_length])
        longest = max(s.shape[0] for s in styles)
        # Padding frames repeat the template (zero offset), so they encode to zero codes.
        style_vertices = torch.stack(templates)[:, None].repeat(1, longest, 1, 1)
        style_mask = torch.zeros(batch_size, longest, dtype=torch.bool)
        for row, style in enumerate(styles):
            style_vertices[row, :style.shape[0]] = style
            style_mask[row, :style.shape[0]] = True
        return {"features": torch.stack(features), "vertices": torch.stack(vertices),
                "template": torch.stack(templates), "style_vertices": style_vertices, "style_mask": style_mask}


# -- models and checkpoints ---------------------------------------------------------------------
def build_model(name: str, model_config: dict[str, Any], num_vertices: int, feature_dim: int):
    """The torch module of registry model ``name`` (weights initialised from the global torch seed)."""
    try:
        return model_module(name).build_module(name, dict(model_config), num_vertices, feature_dim)
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"model {name!r}: {exc}") from exc


def _optimizer_tensors(optimizer) -> tuple[dict[str, "torch.Tensor"], dict[str, Any]]:
    """Adam's state as flat tensors plus its JSON-able hyper-parameters."""
    import torch

    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            tensors[f"{index}.{key}"] = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    return tensors, {"param_groups": state["param_groups"]}


def _restore_optimizer(optimizer, tensors: dict[str, "torch.Tensor"], extra: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, _, name = key.partition(".")
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": extra["param_groups"]})


def save_checkpoint(out_dir: Path, meta: dict[str, Any], model, optimizer=None,
                    rng: dict[str, "torch.Tensor"] | None = None, keep: int = 2) -> Path:
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
    for old in list_checkpoints(out_dir)[:-max(keep, 1)]:
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
        raise TrainingError(f"{path}: no checkpoint here (expected checkpoint.json or checkpoint-*/ folders "
                            f"written by 'mmface4d bench train')")
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
        raise FormatError(f"{folder / 'checkpoint.json'}: checkpoint format {meta.get('format')!r}, "
                          f"this version reads {CHECKPOINT_FORMAT}")
    try:
        weights = load_file(str(folder / "model.safetensors"))
    except (OSError, SafetensorError) as exc:
        raise FormatError(f"{folder / 'model.safetensors'} cannot be read as safetensors: {exc}") from exc
    return folder, meta, weights


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
            raise MMFace4DError(f"{self.name}: trained for {self.module.num_vertices} vertices, "
                                f"{inputs.id} has {inputs.num_vertices}")
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


def load_animator(name: str, checkpoint: str | os.PathLike | None = None, *, untrained: bool = False,
                  num_vertices: int | None = None, front_end: str | None = None, threads: int | None = None,
                  seed: int = 0, **model_options: Any) -> TorchAnimator:
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
            raise TrainingError(f"model {name!r} needs a checkpoint (train one with 'mmface4d bench train --model "
                                f"{name} ...'); untrained=True with num_vertices builds random weights for timing only")
        frontend = build_front_end(front_end)
        torch.manual_seed(seed)
        module = build_model(name, model_options, num_vertices, frontend.dim)
        return TorchAnimator(name, module, frontend, threads)
    if model_options or untrained:
        raise TrainingError(f"model {name!r}: options {sorted(model_options)} apply to untrained models only; "
                            f"a checkpoint carries its own")
    folder, meta, weights = read_checkpoint(checkpoint)
    if checkpoint_family(meta.get("model", "")) != checkpoint_family(name):
        raise TrainingError(f"{folder}: this checkpoint holds model {meta.get('model')!r}, not {name!r}")
    frontend = build_front_end(front_end or meta["front_end"])
    if frontend.dim != meta["feature_dim"]:
        raise TrainingError(f"{folder}: trained on {meta['feature_dim']} audio features, "
                            f"front end {frontend.spec()} gives {frontend.dim}")
    module = build_model(name, meta["model_config"], int(meta["num_vertices"]), int(meta["feature_dim"]))
    try:
        module.load_state_dict(weights)
    except RuntimeError as exc:
        raise FormatError(f"{folder / 'model.safetensors'} does not fit model {name!r}: {exc}") from exc
    return TorchAnimator(name, module, frontend, threads)


# -- the training loop --------------------------------------------------------------------------
def training_loss(model, batch: dict[str, "torch.Tensor"], velocity_weight: float, regional_weight: float
                  ) -> dict[str, "torch.Tensor"]:
    """The loss of the module docstring for one batch: ``{"loss", "vertex", "velocity", "regional"}``."""
    prediction = model(batch["features"], batch["template"], batch["style_vertices"], batch["style_mask"],
                       target=batch["vertices"])
    error = (prediction - batch["vertices"]) * 1000.0  # millimetres
    vertex = error.square().mean()
    velocity = (error[:, 1:] - error[:, :-1]).square().mean() if error.shape[1] > 1 else vertex.new_zeros(())
    regional = model.regularizer()
    loss = vertex + velocity_weight * velocity + regional_weight * regional
    return {"loss": loss, "vertex": vertex, "velocity": velocity, "regional": regional}


def _rng_state(generator) -> dict[str, "torch.Tensor"]:
    import torch

    return {"torch": torch.get_rng_state(), "sampler": generator.get_state()}


def train(name: str, data: TrainingData, out_dir: str | os.PathLike, config: TrainConfig,
          resume: bool = True, progress: bool = True, max_seconds: float | None = None,
          front_end=None, extra_meta: dict[str, Any] | None = None) -> dict[str, Any]:
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
        if meta.get("model") != family or meta.get("train_config", {}).get("model") != config.model \
                or meta.get("front_end") != feature_spec or meta.get("num_vertices") != data.num_vertices:
            raise TrainingError(f"{folder}: the run there trained {meta.get('model')!r} with other options, front end "
                                f"or vertex count; use another --out or start over with --no-resume")
        model.load_state_dict(weights)
        from safetensors.torch import load_file

        _restore_optimizer(optimizer, load_file(str(folder / "optimizer.safetensors")), meta["optimizer"])
        rng = load_file(str(folder / "rng.safetensors"))
        torch.set_rng_state(rng["torch"])
        generator.set_state(rng["sampler"])
        step, resumed_from = int(meta["step"]), str(folder)
    else:
        model.initialize_from_data(*data.statistics_sample(generator))

    meta_base = {"model": family, "model_config": {**model_module(family).default_config(family), **config.model},
                 "front_end": feature_spec,
                 "feature_dim": data.feature_dim, "num_vertices": data.num_vertices,
                 "train_config": config.to_dict(), **(extra_meta or {})}
    window_frames = max(2, int(round(config.window_seconds * FPS)))
    style_frames = max(1, int(round(config.style_seconds * FPS)))
    started, losses, last_saved = time.monotonic(), {}, None
    model.train()
    bar = tqdm(total=config.steps, initial=step, desc=f"train {name}", unit="step", disable=not progress)
    while step < config.steps:
        batch = data.sample_batch(config.batch_size, window_frames, style_frames, generator)
        terms = training_loss(model, batch, config.velocity_weight,
                              config.regional_weight if getattr(model, "regional", False) else 0.0)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        step += 1
        losses = {key: value.detach().item() for key, value in terms.items()}
        if not math.isfinite(losses["loss"]):
            raise TrainingError(f"training {name} diverged at step {step} (loss {losses['loss']}); lower lr in the config")
        bar.update(1)
        bar.set_postfix(loss=f"{losses['loss']:.4g}", vertex=f"{losses['vertex']:.4g}",
                        velocity=f"{losses['velocity']:.3g}", regional=f"{losses['regional']:.3g}")
        out_of_time = max_seconds is not None and time.monotonic() - started >= max_seconds
        if step % config.checkpoint_every == 0 or step == config.steps or out_of_time:
            last_saved = save_checkpoint(out_dir, {**meta_base, "step": step, "losses": losses}, model, optimizer,
                                         _rng_state(generator), config.keep_checkpoints)
        if out_of_time:
            break
    bar.close()
    if last_saved is None:
        last_saved = existing[-1] if existing else save_checkpoint(
            out_dir, {**meta_base, "step": step, "losses": losses}, model, optimizer, _rng_state(generator),
            config.keep_checkpoints)
    return {"model": name, "step": step, "checkpoint": str(last_saved), "losses": losses,
            "seconds": time.monotonic() - started, "resumed_from": resumed_from}
