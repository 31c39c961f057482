"""Torch collate (padding and masks) and aligned random windows; a 2-worker DataLoader over a release."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmface4d_datasets.torch_data import RandomWindow, audio_span, collate_sequences, cut_window  # noqa: E402


def record(frames: int, vertices: int = 4, name: str = "a/000001", offset: float = 0.0) -> dict:
    """Vertices hold their frame index; audio samples hold their own index (so alignment is visible)."""
    v = np.broadcast_to(np.arange(frames, dtype=np.float32)[:, None, None] + offset, (frames, vertices, 3)).copy()
    samples = np.arange(audio_span(0, frames)[1], dtype=np.float32)
    pose = np.tile(np.eye(4, dtype=np.float32), (frames, 1, 1))
    pose[:, 0, 3] = np.arange(frames)
    return {
        "id": name,
        "vertices": v,
        "head_pose": pose,
        "audio": {"array": samples, "sampling_rate": 16000},
        "num_frames": frames,
        "emotion": 2,
        "text": None,
    }


def test_audio_span_tiles_without_drift():
    assert audio_span(0, 30) == (0, 16000)
    assert audio_span(30, 30) == (16000, 32000)
    spans = [audio_span(f, 1) for f in range(90)]
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert {stop - start for start, stop in spans} == {533, 534}


def test_collate_pads_and_masks():
    batch = collate_sequences([record(5, name="a/1"), record(8, name="b/2", offset=100.0)])
    assert batch["vertices"].shape == (2, 8, 4, 3) and batch["vertices"].dtype == torch.float32
    assert batch["frame_mask"].tolist() == [[True] * 5 + [False] * 3, [True] * 8]
    assert batch["num_frames"].tolist() == [5, 8]
    assert torch.all(batch["vertices"][0, 5:] == 0) and batch["vertices"][1, 7, 0, 0] == 107.0
    assert torch.equal(batch["head_pose"][0, 6], torch.eye(4)) and batch["head_pose"][0, 4, 0, 3] == 4.0
    assert batch["audio"].shape == (2, audio_span(0, 8)[1]) and batch["num_samples"].tolist() == [audio_span(0, 5)[1], audio_span(0, 8)[1]]
    assert int(batch["audio_mask"][0].sum()) == audio_span(0, 5)[1] and batch["sampling_rate"] == 16000
    assert batch["id"] == ["a/1", "b/2"] and batch["emotion"].tolist() == [2, 2] and batch["text"] == [None, None]


def test_collate_accepts_torch_records_and_refuses_mixed_vertex_counts():
    as_torch = {k: (torch.as_tensor(v) if isinstance(v, np.ndarray) else v) for k, v in record(3).items()}
    as_torch["audio"] = {"array": torch.as_tensor(record(3)["audio"]["array"]), "sampling_rate": torch.tensor(16000)}
    assert collate_sequences([as_torch])["vertices"].shape == (1, 3, 4, 3)
    with pytest.raises(ValueError, match="vertex counts"):
        collate_sequences([record(3, vertices=4), record(3, vertices=5)])
    with pytest.raises(ValueError, match="empty"):
        collate_sequences([])


def test_random_window_keeps_audio_and_frames_aligned():
    window = RandomWindow(0.5, seed=3)
    starts = set()
    for _ in range(20):
        cut = window(record(90))
        first = cut["first_frame"]
        starts.add(first)
        assert cut["vertices"].shape[0] == 15 and cut["vertices"][0, 0, 0] == first
        assert cut["head_pose"][0, 0, 3] == first
        start, stop = audio_span(first, 15)
        assert cut["audio"]["array"][0] == start and cut["audio"]["array"].shape[0] == stop - start
    assert len(starts) > 5  # windows move around
    short = record(10)
    assert window(short) is short  # shorter than the window: kept whole
    assert cut_window(record(40), 10, 5)["vertices"][:, 0, 0].tolist() == [10, 11, 12, 13, 14]


def test_random_window_is_reproducible_for_a_seed():
    first = [RandomWindow(0.5, seed=7)(record(90))["first_frame"] for _ in range(1)]
    window_a, window_b = RandomWindow(0.5, seed=7), RandomWindow(0.5, seed=7)
    assert [window_a(record(90))["first_frame"] for _ in range(6)] == [window_b(record(90))["first_frame"] for _ in range(6)]
    assert first[0] == RandomWindow(0.5, seed=7)(record(90))["first_frame"]


def test_dataloader_with_two_workers_over_a_release(tmp_path):
    from torch.utils.data import DataLoader

    from mmface4d_datasets import load_dataset
    from mmface4d_datasets.release.writer import write_release
    from test_release_support import make_topology, small_sources

    write_release(small_sources(3, 3, frames=40), tmp_path / "r", topology=make_topology(), progress=False)
    train = load_dataset(data_dir=tmp_path / "r", split="train").with_format("torch")
    loader = DataLoader(train, batch_size=2, num_workers=2, collate_fn=partial(collate_sequences, window=RandomWindow(1.0, seed=0)))
    seen = []
    for batch in loader:
        assert batch["vertices"].shape[1:] == (30, 480, 3) and bool(batch["frame_mask"].all())
        assert batch["audio"].shape[1] == 16000 and batch["audio_mask"].shape == batch["audio"].shape
        seen += batch["id"]
    assert sorted(seen) == sorted(train["id"]) and len(seen) == train.num_rows


def test_more_frame_fields_are_cut_and_padded_with_the_vertices():
    """`frame_fields` (e.g. audio features, first axis = frames) follow the vertices through windows and collate."""

    def with_features(frames, name, dtype=np.float32):
        r = record(frames, name=name)
        r["features"] = np.arange(frames * 2, dtype=dtype).reshape(frames, 2) + 1
        return r

    cut = cut_window(with_features(40, "a/1"), 10, 5, frame_fields=("features",))
    assert cut["features"][:, 0].tolist() == [21, 23, 25, 27, 29] and cut["vertices"][:, 0, 0].tolist() == [10, 11, 12, 13, 14]
    assert cut_window(record(40), 10, 5, frame_fields=("features",)).get("features") is None  # absent: nothing to cut
    window = RandomWindow(0.5, seed=3, frame_fields=("features",))
    windowed = window(with_features(90, "a/1"))
    assert windowed["features"].shape == (15, 2) and windowed["features"][0, 0] == 2 * windowed["first_frame"] + 1
    batch = collate_sequences([with_features(5, "a/1"), with_features(8, "b/2", np.float64)], frame_fields=("features",))
    assert batch["features"].shape == (2, 8, 2) and batch["features"].dtype == torch.float32  # the first record's dtype
    assert torch.all(batch["features"][0, 5:] == 0) and batch["features"][1, 7].tolist() == [15.0, 16.0]
    as_torch = [dict(with_features(3, "a/1"), features=torch.ones(3, 2, dtype=torch.float64))]
    assert collate_sequences(as_torch, frame_fields=("features",))["features"].dtype == torch.float64
    assert isinstance(collate_sequences([with_features(5, "a/1")])["features"], list)  # not named: kept as values
    with pytest.raises(ValueError, match="frame field 'features'"):
        collate_sequences([with_features(5, "a/1"), record(5)], frame_fields=("features",))


def test_vertices_can_be_padded_with_the_template():
    """Padding frames repeat each record's template (zero offset from the neutral face) on request."""
    short, long = record(3, name="a/1"), record(6, name="b/2", offset=10.0)
    short["template"] = np.full((4, 3), -1.0, np.float32)
    long["template"] = np.full((4, 3), -2.0, np.float32)
    batch = collate_sequences([short, long], pad_with_template=True)
    assert torch.all(batch["vertices"][0, 3:] == -1.0) and batch["vertices"][0, 2, 0, 0] == 2.0
    assert batch["vertices"][1, :, 0, 0].tolist() == [10, 11, 12, 13, 14, 15]
    assert batch["frame_mask"].tolist() == [[True] * 3 + [False] * 3, [True] * 6]
    assert torch.all(collate_sequences([short, long])["vertices"][0, 3:] == 0)  # default: zeros
    with pytest.raises(ValueError, match="pad_with_template needs a template"):
        collate_sequences([short, record(4)], pad_with_template=True)
