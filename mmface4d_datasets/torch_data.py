"""Torch helpers for decoded MMFace4D records: padded batches with masks, aligned random windows.

torch is imported inside the functions (importing this module stays light).

Usage::

    from functools import partial
    from torch.utils.data import DataLoader
    from mmface4d_datasets import load_dataset
    from mmface4d_datasets.torch_data import RandomWindow, collate_sequences

    train = load_dataset("mmface4d", name="mini", split="train").with_format("torch")
    loader = DataLoader(train, batch_size=4, num_workers=2,
                        collate_fn=partial(collate_sequences, window=RandomWindow(2.0, seed=0)))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmface4d_datasets.vocabulary import FPS, SAMPLE_RATE


def _audio_of(record):
    audio = record.get("audio")
    if isinstance(audio, dict):
        return audio["array"], int(audio.get("sampling_rate", SAMPLE_RATE))
    return audio, SAMPLE_RATE


def audio_span(first_frame: int, num_frames: int, fps: int = FPS, sample_rate: int = SAMPLE_RATE) -> tuple[int, int]:
    """Audio samples [start, stop) that cover frames [first_frame, first_frame + num_frames).

    Frame f spans the time [f / fps, (f + 1) / fps); sample boundaries are rounded to the nearest
    sample: start = round(first_frame * sample_rate / fps), stop = round((first_frame + num_frames) *
    sample_rate / fps) (16 kHz at 30 fps: 533 or 534 samples per frame, never drifting).
    """
    start = (2 * first_frame * sample_rate + fps) // (2 * fps)
    stop = (2 * (first_frame + num_frames) * sample_rate + fps) // (2 * fps)
    return int(start), int(stop)


class RandomWindow:
    """Cut a record to a random window of `seconds`, frames and audio aligned (see `audio_span`).

    The first frame is drawn uniformly from the frames where a whole window fits; a record shorter
    than the window is kept whole (the collate pads it). Random numbers come from
    numpy's Generator seeded with (seed, DataLoader worker id), made on first use in each worker,
    so that workers draw different windows and a run is reproducible for the same worker count.
    `vertices`, `head_pose`, the fields named in `frame_fields` (more per-frame arrays, e.g. audio
    features) and audio are cut; other fields are kept.
    """

    def __init__(self, seconds: float, seed: int | None = 0, fps: int = FPS, frame_fields: Sequence[str] = ()):
        if seconds <= 0:
            raise ValueError(f"RandomWindow: seconds must be positive, got {seconds}")
        self.num_frames = max(1, int(round(seconds * fps)))
        self.seed, self.fps, self.frame_fields = seed, fps, tuple(frame_fields)
        self._rng = None

    def _generator(self):
        if self._rng is None:
            from mmface4d_datasets.extras import require

            get_worker_info = require("torch.utils.data", "torch", "RandomWindow").get_worker_info

            worker = get_worker_info()
            worker_id = 0 if worker is None else worker.id
            self._rng = np.random.default_rng(None if self.seed is None else [self.seed, worker_id])
        return self._rng

    def __call__(self, record: dict) -> dict:
        total = int(len(record["vertices"]))
        if total <= self.num_frames:
            return record
        first = int(self._generator().integers(0, total - self.num_frames + 1))
        return cut_window(record, first, self.num_frames, fps=self.fps, frame_fields=self.frame_fields)


def cut_window(record: dict, first_frame: int, num_frames: int, fps: int = FPS, frame_fields: Sequence[str] = ()) -> dict:
    """A copy of `record` with frames [first_frame, first_frame + num_frames) and the audio they span.

    `vertices`, and `head_pose` and the fields named in `frame_fields` (arrays or tensors whose first
    axis is the frame) when present, are sliced along their first axis; the audio is cut to `audio_span`.
    """
    result = dict(record)
    stop = first_frame + num_frames
    result["vertices"] = record["vertices"][first_frame:stop]
    for key in ("head_pose", *frame_fields):
        if record.get(key) is not None:
            result[key] = record[key][first_frame:stop]
    samples, rate = _audio_of(record)
    if samples is not None:
        start, end = audio_span(first_frame, num_frames, fps, rate)
        cut = samples[start:end]
        result["audio"] = {"array": cut, "sampling_rate": rate} if isinstance(record.get("audio"), dict) else cut
    result["num_frames"] = num_frames
    result["first_frame"] = first_frame
    return result


def collate_sequences(
    batch: list[dict], window: RandomWindow | None = None, frame_fields: Sequence[str] = (), pad_with_template: bool = False
) -> dict:
    """Pad a list of decoded records into one batch of tensors with masks.

    Returns a dict with
    - `vertices` (B, T_max, N, 3) float32, zero after each sequence's end (the record's `template`
      there instead with `pad_with_template`: a zero offset from the neutral face); `frame_mask`
      (B, T_max) bool; `num_frames` (B,) int64;
    - `head_pose` (B, T_max, 4, 4) float32 (identity after the end) when the records have one;
    - `audio` (B, S_max) float32 zero-padded; `audio_mask` (B, S_max) bool; `num_samples` (B,) int64;
      `sampling_rate` int (all records must agree);
    - `template` (B, N, 3) when the records carry one;
    - each field named in `frame_fields` (per-frame arrays, e.g. audio features (T, F)): (B, T_max, ...)
      zero after each sequence's end, in the dtype of the first record's value;
    - every other field: a tensor when all values are numbers, else a list (ids, texts).
    `window`, when given, is applied to each record first (e.g. `RandomWindow(2.0, seed=0)`).
    Raises ValueError for an empty batch, mixed vertex counts or mixed sample rates, and for
    `pad_with_template` or a `frame_fields` name that a record lacks.
    """
    from mmface4d_datasets.extras import require

    torch = require("torch", "torch", "collate_sequences")
    if not batch:
        raise ValueError("collate_sequences: empty batch")
    if window is not None:
        batch = [window(record) for record in batch]
    vertices = [
        torch.as_tensor(np.asarray(r["vertices"]) if not torch.is_tensor(r["vertices"]) else r["vertices"], dtype=torch.float32)
        for r in batch
    ]
    counts = {v.shape[1] for v in vertices}
    if len(counts) != 1:
        raise ValueError(f"collate_sequences: records have different vertex counts {sorted(counts)}")
    lengths = torch.tensor([v.shape[0] for v in vertices], dtype=torch.int64)
    longest = int(lengths.max())
    if pad_with_template:
        if not all(r.get("template") is not None for r in batch):
            raise ValueError("collate_sequences: pad_with_template needs a template on every record")
        padded = torch.stack([torch.as_tensor(r["template"], dtype=torch.float32) for r in batch])[:, None]
        padded = padded.repeat(1, longest, *([1] * (padded.ndim - 2)))
    else:
        padded = torch.zeros((len(batch), longest) + tuple(vertices[0].shape[1:]), dtype=torch.float32)
    out = {"vertices": padded, "frame_mask": torch.arange(longest)[None, :] < lengths[:, None], "num_frames": lengths}
    for i, v in enumerate(vertices):
        out["vertices"][i, : v.shape[0]] = v
    for key in frame_fields:
        if not all(r.get(key) is not None for r in batch):
            raise ValueError(f"collate_sequences: frame field {key!r} is missing from a record")
        values = [r[key] if torch.is_tensor(r[key]) else torch.as_tensor(np.asarray(r[key])) for r in batch]
        out[key] = torch.zeros((len(batch), longest) + tuple(values[0].shape[1:]), dtype=values[0].dtype)
        for i, value in enumerate(values):
            out[key][i, : value.shape[0]] = value
    if all(r.get("head_pose") is not None for r in batch):
        out["head_pose"] = torch.eye(4).repeat(len(batch), longest, 1, 1)
        for i, r in enumerate(batch):
            pose = torch.as_tensor(r["head_pose"], dtype=torch.float32)
            out["head_pose"][i, : pose.shape[0]] = pose
    audio = [_audio_of(r) for r in batch]
    if all(samples is not None for samples, _ in audio):
        rates = {rate for _, rate in audio}
        if len(rates) != 1:
            raise ValueError(f"collate_sequences: records have different sample rates {sorted(rates)}")
        tensors = [torch.as_tensor(samples, dtype=torch.float32).reshape(-1) for samples, _ in audio]
        sample_counts = torch.tensor([t.shape[0] for t in tensors], dtype=torch.int64)
        out["audio"] = torch.zeros((len(batch), int(sample_counts.max())), dtype=torch.float32)
        for i, t in enumerate(tensors):
            out["audio"][i, : t.shape[0]] = t
        out["audio_mask"] = torch.arange(out["audio"].shape[1])[None, :] < sample_counts[:, None]
        out["num_samples"] = sample_counts
        out["sampling_rate"] = rates.pop()
    if all(r.get("template") is not None for r in batch):
        out["template"] = torch.stack([torch.as_tensor(r["template"], dtype=torch.float32) for r in batch])
    for key in batch[0]:
        if key in out or key in ("vertices", "head_pose", "audio", "template", "sample_rate"):
            continue
        values = [r.get(key) for r in batch]
        numbers = [int(v) if torch.is_tensor(v) and v.dtype != torch.float32 and v.ndim == 0 else v for v in values]
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in numbers):
            out[key] = torch.tensor([int(v) for v in numbers], dtype=torch.int64)
        else:
            out[key] = values
    return out
