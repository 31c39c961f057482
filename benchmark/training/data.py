"""Train sequences with their audio features, and the sampler of aligned training windows.

The sampler decides WHICH windows a step trains on (which sequences, where the windows start, which
style reference goes with each); cutting the windows and padding them into a batch goes through the
public :mod:`mmface4d_datasets.torch_data` (``cut_window``, ``collate_sequences``), the path users'
own loaders take. The order of the random draws is part of a run's reproducibility: a checkpoint's
``rng.safetensors`` holds the sampler's generator, and a resumed run draws what an uninterrupted one
would.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.training.config import TrainingError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

#: Per-frame fields of a training record besides the vertices: the audio features (T, F).
FRAME_FIELDS = ("features",)


@dataclass
class TrainingSequence:
    """One train sequence, decoded: features (T, F), vertices (T, N, 3) metres, its template."""

    id: str
    subject_id: str
    features: "torch.Tensor"
    vertices: "torch.Tensor"
    template: "torch.Tensor"

    def record(self) -> dict[str, Any]:
        """The sequence as a record dict of :mod:`mmface4d_datasets.torch_data` (``features`` per frame)."""
        return {
            "id": self.id,
            "subject_id": self.subject_id,
            "features": self.features,
            "vertices": self.vertices,
            "template": self.template,
        }


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
        self.partners = [[other for other in by_subject[s.subject_id] if other != index] or [index] for index, s in enumerate(sequences)]
        shapes = {tuple(s.vertices.shape[1:]) for s in sequences}
        if len(shapes) != 1:
            raise TrainingError(f"training sequences differ in vertex count: {sorted(shapes)}")
        self.num_vertices = int(sequences[0].vertices.shape[1])
        self.feature_dim = int(sequences[0].features.shape[1])

    @classmethod
    def from_records(cls, records: Iterable[dict], templates: dict[str, np.ndarray], front_end, progress: bool = False) -> "TrainingData":
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
            sequences.append(
                TrainingSequence(
                    record_id,
                    subject,
                    features,
                    torch.from_numpy(vertices),
                    torch.from_numpy(np.asarray(templates[subject], dtype=np.float32)),
                )
            )
        return cls(sequences)

    @classmethod
    def from_release(cls, path: str | os.PathLike, front_end, split: str = "train", progress: bool = False) -> "TrainingData":
        """The ``split`` sequences of the release folder ``path`` (the train split by default)."""
        from mmface4d_datasets.release import Release

        release = Release(path)
        return cls.from_records(release.iter_records(split), release.templates(), front_end, progress)

    def statistics_sample(
        self, generator: "torch.Generator", max_frames: int = 2048
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
        offsets = torch.stack(
            [self.sequences[int(i)].vertices[int(f)] - self.sequences[int(i)].template for i, f in zip(which, picks - starts[which])]
        )
        subjects = {}
        for s in self.sequences:
            subjects.setdefault(s.subject_id, s.template)
        return features, offsets, torch.stack(list(subjects.values()))

    def sample_batch(
        self, batch_size: int, window_frames: int, style_frames: int, generator: "torch.Generator"
    ) -> dict[str, "torch.Tensor"]:
        """A batch of aligned windows: ``features`` (B, L, F), ``vertices`` (B, L, N, 3),
        ``template`` (B, N, 3), ``style_vertices`` (B, L', N, 3) padded with the template, ``style_mask`` (B, L') True on real frames.

        ``L = min(window_frames, shortest chosen sequence)``; windows start uniformly at random.
        Draws, in this order, from ``generator``: the ``batch_size`` sequences (with replacement),
        then for each of them its window start, its style partner and the style crop's start.
        """
        import torch

        from mmface4d_datasets.torch_data import collate_sequences, cut_window

        def randint(high: int) -> int:
            return int(torch.randint(high, (1,), generator=generator))

        chosen = [randint(len(self.sequences)) for _ in range(batch_size)]
        length = min(window_frames, *(self.sequences[i].vertices.shape[0] for i in chosen))
        windows, styles = [], []
        for index in chosen:
            sequence = self.sequences[index]
            start = randint(sequence.vertices.shape[0] - length + 1)
            windows.append(cut_window(sequence.record(), start, length, frame_fields=FRAME_FIELDS))
            partners = self.partners[index]
            partner = self.sequences[partners[randint(len(partners))]]
            style_length = min(style_frames, partner.vertices.shape[0])
            style_start = randint(partner.vertices.shape[0] - style_length + 1)
            # The style crop is padded with the TARGET's template (zero offset: encodes to zero codes).
            style = {"vertices": partner.vertices, "template": sequence.template}
            styles.append(cut_window(style, style_start, style_length))
        batch = collate_sequences(windows, frame_fields=FRAME_FIELDS)
        style_batch = collate_sequences(styles, pad_with_template=True)
        return {
            "features": batch["features"],
            "vertices": batch["vertices"],
            "template": batch["template"],
            "style_vertices": style_batch["vertices"],
            "style_mask": style_batch["frame_mask"],
        }
