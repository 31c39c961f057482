"""FaceFormer's batch tuple straight from :func:`mmface4d_datasets.load_dataset` (torch; imported when used).

FaceFormer's ``Dataset.__getitem__`` (and CodeTalker's, SelfTalk's) returns
``(audio, vertice, template, one_hot, file_name)``:

- ``audio``: float32 (S,), the 16 kHz speech after ``Wav2Vec2Processor``'s normalisation, which is
  ``(x - mean(x)) / sqrt(var(x) + 1e-7)`` (``normalize_audio=True``; False gives the raw samples);
- ``vertice``: float32 (T, N*3), the frames (canonical head frame, metres) at ``fps``;
- ``template``: float32 (N*3,), the subject's neutral face (the release's ``templates`` config);
- ``one_hot``: the subject one-hot convention: for a TRAIN sequence, row ``i`` of
  ``eye(len(train_subjects))`` where ``i`` is the subject's index in ``train_subjects`` (the order of
  their ``--train_subjects``); for val and test (unseen speakers) the whole ``eye`` matrix, one row per
  train-speaker condition, as their validation and test loops expect;
- ``file_name``: ``<name>.wav`` with the name the export gives the sequence
  (``mmface4d_datasets.faceformer.layout.sequence_name``), so results named from it go through
  ``mmface4d bench submit-faceformer`` unchanged.

:func:`faceformer_datasets` gives the three roles as their ``read_data`` does, with the val subjects
chosen as ``mmface4d export faceformer`` chooses them: training on the adapter or on an export is
the same data, names and one-hots. A ``DataLoader(batch_size=1)`` collates the tuple as theirs does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mmface4d_datasets.faceformer.layout import ROLES, sequence_name
from mmface4d_datasets.faceformer.timing import resample_frames
from mmface4d_datasets.vocabulary import FPS


def normalize_audio(samples: np.ndarray) -> np.ndarray:
    """``Wav2Vec2Processor``'s zero-mean unit-variance normalisation: ``(x - mean) / sqrt(var + 1e-7)``, float32."""
    x = np.asarray(samples, dtype=np.float32)
    return ((x - x.mean()) / np.sqrt(x.var() + 1e-7)).astype(np.float32)


def templates_of(templates_dataset) -> dict[str, np.ndarray]:
    """subject -> (N, 3) float32 from the ``templates`` config (``load_dataset(..., name="templates", split="train")``)."""
    return {str(row["subject_id"]): np.asarray(row["vertices"], dtype=np.float32) for row in templates_dataset}


class FaceFormerBatches:
    """A map-style dataset (any ``DataLoader`` takes it) of FaceFormer's tuple (module docstring).

    ``records``: a decoded split from ``load_dataset`` (numpy format) or any sequence of its rows.
    ``templates``: subject -> (N, 3). ``train_subjects``: their ``--train_subjects`` in order.
    ``role``: "train", "val" or "test". ``fps``: 30 (as stored), or 25 / 60 resampled as the export does.
    """

    def __init__(
        self,
        records,
        templates: Mapping[str, np.ndarray],
        train_subjects: Sequence[str],
        role: str = "train",
        *,
        fps: int = FPS,
        normalize: bool = True,
    ):
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        self.records, self.templates, self.role = records, templates, role
        self.train_subjects = list(train_subjects)
        self.fps, self.normalize = int(fps), normalize
        self.one_hot_labels = np.eye(len(self.train_subjects), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.records)

    def one_hot(self, subject: str) -> np.ndarray:
        """The one-hot of ``subject`` in this role (module docstring)."""
        if self.role != "train":
            return self.one_hot_labels
        if subject not in self.train_subjects:
            raise KeyError(f"subject {subject!r} of a train sequence is not in train_subjects ({len(self.train_subjects)} subjects)")
        return self.one_hot_labels[self.train_subjects.index(subject)]

    def __getitem__(self, index: int):
        from mmface4d_datasets.extras import require

        torch = require("torch", "torch", "FaceFormerBatches")
        row = self.records[int(index)]
        subject = str(row["subject_id"])
        if subject not in self.templates:
            raise KeyError(f"no template for subject {subject!r} (give the release's templates config)")
        audio = row["audio"]["array"] if isinstance(row["audio"], dict) else row["audio"]
        audio = normalize_audio(audio) if self.normalize else np.asarray(audio, dtype=np.float32)
        vertices = np.asarray(row["vertices"], dtype=np.float32)
        source_fps = int(row.get("fps") or FPS)
        if self.fps != source_fps:
            vertices = resample_frames(vertices, source_fps, self.fps)
        template = np.asarray(self.templates[subject], dtype=np.float32).reshape(-1)
        file_name = sequence_name(subject, str(row["take_id"]), self.role) + ".wav"
        return (
            torch.from_numpy(np.ascontiguousarray(audio)),
            torch.from_numpy(np.ascontiguousarray(vertices.reshape(vertices.shape[0], -1))),
            torch.from_numpy(template),
            torch.from_numpy(np.ascontiguousarray(self.one_hot(subject))),
            file_name,
        )


def faceformer_datasets(
    path: str = "mmface4d",
    *,
    data_dir=None,
    val_subjects: int | None = None,
    seed: int = 0,
    fps: int = FPS,
    normalize: bool = True,
) -> tuple[dict[str, FaceFormerBatches], dict[str, list[str]]]:
    """``({"train", "val", "test"}: FaceFormerBatches, {role: subjects})`` of a release, as their ``read_data``
    returns them; roles as ``mmface4d export faceformer`` makes them (same ``val_subjects`` and ``seed``)."""
    from mmface4d_datasets.faceformer.export import choose_val_subjects, default_val_count
    from mmface4d_datasets.loading import load_dataset

    train = load_dataset(path, split="train", data_dir=data_dir)
    test = load_dataset(path, split="test", data_dir=data_dir)
    templates = templates_of(load_dataset(path, name="templates", split="train", data_dir=data_dir))
    train_ids = [str(s) for s in train.hf_dataset["subject_id"]]
    all_train = sorted(set(train_ids))
    count = default_val_count(len(all_train)) if val_subjects is None else int(val_subjects)
    if count < 0 or (count and count >= len(all_train)):
        raise ValueError(f"val_subjects {count}: the train split has {len(all_train)} subject(s); at least one must stay in train")
    val = set(choose_val_subjects(all_train, count, seed)) if count else set()
    subjects = {
        "train": [s for s in all_train if s not in val],
        "val": sorted(val),
        "test": sorted({str(s) for s in test.hf_dataset["subject_id"]}),
    }
    parts = {
        "train": train.select([i for i, s in enumerate(train_ids) if s not in val]),
        "val": train.select([i for i, s in enumerate(train_ids) if s in val]),
        "test": test,
    }
    datasets = {role: FaceFormerBatches(parts[role], templates, subjects["train"], role, fps=fps, normalize=normalize) for role in ROLES}
    return datasets, subjects
