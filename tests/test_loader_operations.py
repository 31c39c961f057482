"""The operations users chain on `load_dataset`'s result keep the decoding (docs/loading.md), on the mini release.

Every operation x every format, the format set BEFORE and AFTER the operation: numpy / torch rows hold
decoded float32 (T, N, 3) vertices and float32 audio; pandas / arrow give the stored columns (codec
bytes), as documented. Plus indexing, iteration, pickling, DataLoaders (fork and spawn, 2 workers),
streaming (shuffle, take, skip, split_dataset_by_node, filter, map) and what `map` sees and stores.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from mmface4d_datasets.decoded_dataset import MMFace4DDataset, concatenate_datasets, split_dataset_by_node
from mmface4d_datasets.loading import load_dataset
from mmface4d_datasets.release.reader import Release

N = 1000  # vertices of the mini release


@pytest.fixture(scope="module")
def mini(mini_release):
    folder, _ = mini_release
    reference = {r["id"]: r for split in ("train", "test") for r in Release(folder).iter_records(split)}
    return folder, load_dataset(data_dir=folder), reference


def _concat(ds, whole):
    return concatenate_datasets([ds, whole["test"]])


OPERATIONS = {
    "none": lambda ds, whole: ds,
    "shuffle": lambda ds, whole: ds.shuffle(seed=3),
    "select": lambda ds, whole: ds.select([5, 1, 2]),
    "filter_metadata": lambda ds, whole: ds.filter(lambda r: r["emotion"] in (0, 1, 2, 3, 4, 5, 6) and r["num_frames"] > 0),
    "filter_decoded": lambda ds, whole: ds.filter(lambda r: r["vertices"].shape == (r["num_frames"], N, 3)),
    "sort": lambda ds, whole: ds.sort("num_frames", reverse=True),
    "remove_audio": lambda ds, whole: ds.remove_columns(["audio"]),
    "remove_head_pose_text": lambda ds, whole: ds.remove_columns(["head_pose", "text"]),
    "rename_vertices": lambda ds, whole: ds.rename_column("vertices", "mesh"),
    "rename_other": lambda ds, whole: ds.rename_column("text", "sentence"),
    "select_columns": lambda ds, whole: ds.select_columns(["id", "num_frames", "vertices"]),
    "train_test_split": lambda ds, whole: ds.train_test_split(test_size=0.25, seed=0)["test"],
    "concatenate": _concat,
    "take_skip_shard": lambda ds, whole: ds.skip(2).take(9).shard(num_shards=2, index=1),
    "shuffle_flatten": lambda ds, whole: ds.shuffle(seed=1).flatten_indices(),
}


def _vertex_key(ds) -> str:
    return "mesh" if "mesh" in ds.column_names else "vertices"


def _check_decoded_row(row, reference, vertex_key, torch_format):
    if torch_format:
        import torch

        assert isinstance(row[vertex_key], torch.Tensor) and row[vertex_key].dtype == torch.float32
        vertices = row[vertex_key].numpy()
    else:
        assert isinstance(row[vertex_key], np.ndarray) and row[vertex_key].dtype == np.float32
        vertices = row[vertex_key]
    expected = reference[row["id"]]
    assert vertices.shape == (expected["num_frames"], N, 3)
    assert np.array_equal(vertices, expected["vertices"])
    if "audio" in row:
        samples = row["audio"]["array"]
        samples = samples.numpy() if torch_format else samples
        assert samples.dtype == np.float32 and samples.ndim == 1
        assert int(row["audio"]["sampling_rate"]) == 16000
        assert abs(samples.shape[0] / 16000 - expected["num_frames"] / 30) < 0.1
    if "head_pose" in row:
        assert tuple(row["head_pose"].shape) == (expected["num_frames"], 4, 4)


@pytest.mark.parametrize("order", ["format_before", "format_after"])
@pytest.mark.parametrize("fmt", ["numpy", "torch", "pandas", "arrow"])
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_operation_keeps_decoding(mini, operation, fmt, order):
    _, whole, reference = mini
    apply = OPERATIONS[operation]
    if order == "format_before":
        result = apply(whole["train"].with_format(fmt), whole.with_format(fmt))
    else:
        result = apply(whole["train"], whole).with_format(fmt)
    assert isinstance(result, MMFace4DDataset) and result.num_rows > 0
    key = _vertex_key(result)
    if fmt in ("numpy", "torch"):
        row = result[0]
        _check_decoded_row(row, reference, key, fmt == "torch")
        if operation in ("remove_audio", "concatenate", "filter_decoded", "select_columns"):
            assert ("audio" in row) == (operation not in ("remove_audio", "select_columns"))
        if operation not in ("none", "shuffle", "rename_vertices", "train_test_split"):
            return  # slices, lists and iteration: checked on a few operations to keep the table fast
        batch = result[0:2]
        assert len(batch["id"]) == min(2, result.num_rows)
        _check_decoded_row({k: v[0] for k, v in batch.items()}, reference, key, fmt == "torch")
        picked = result[[result.num_rows - 1, 0]]
        _check_decoded_row({k: v[0] for k, v in picked.items()}, reference, key, fmt == "torch")
        first = next(iter(result))
        _check_decoded_row(first, reference, key, fmt == "torch")
    elif fmt == "pandas":
        frame = result[0:2]
        assert list(frame.columns) == result.column_names
        assert isinstance(frame[key].iloc[0], bytes)  # stored codec bytes, as docs/loading.md says
        assert frame["id"].iloc[0] in reference
    else:
        import pyarrow as pa

        table = result[0:2]
        assert isinstance(table, pa.Table) and table.schema.field(key).type == pa.binary()
        assert table.column("id")[0].as_py() in reference


def test_getitem_column_and_negative_index(mini):
    _, whole, reference = mini
    train = whole["train"]
    ids = train["id"]
    assert ids == sorted(ids) and len(ids) == train.num_rows
    vertices = train.select(range(3))["vertices"]
    assert [v.shape for v in vertices] == [reference[i]["vertices"].shape for i in ids[:3]]
    assert train[-1]["id"] == ids[-1]
    assert whole.num_rows == {"train": 21, "test": 3}


def test_pickling_keeps_operations_and_decoding(mini):
    _, whole, reference = mini
    chained = whole["train"].shuffle(seed=2).rename_column("vertices", "mesh").remove_columns(["audio"]).with_format("torch")
    again = pickle.loads(pickle.dumps(chained))
    assert again.column_names == chained.column_names and again.format == "torch"
    row = again[0]
    assert row["id"] == chained[0]["id"]
    _check_decoded_row(row, reference, "mesh", True)
    stream = load_dataset(data_dir=mini[0], split="train", streaming=True).shuffle(seed=0, buffer_size=4).take(3)
    assert [r["id"] for r in pickle.loads(pickle.dumps(stream))] == [r["id"] for r in stream]


@pytest.mark.parametrize("start_method", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])  # spawn: ~10-40 s
def test_dataloader_two_workers(mini, start_method):
    from functools import partial

    import torch
    from torch.utils.data import DataLoader

    from mmface4d_datasets.torch_data import collate_sequences

    _, whole, reference = mini
    train = whole["train"].shuffle(seed=5).select(range(8)).with_format("torch")
    loader = DataLoader(train, batch_size=4, num_workers=2, multiprocessing_context=start_method, collate_fn=partial(collate_sequences))
    seen = []
    for batch in loader:
        assert batch["vertices"].dtype == torch.float32 and batch["vertices"].shape[2:] == (N, 3)
        for i, record_id in enumerate(batch["id"]):
            frames = int(batch["num_frames"][i])
            assert np.array_equal(batch["vertices"][i, :frames].numpy(), reference[record_id]["vertices"])
        seen += batch["id"]
    assert sorted(seen) == sorted(train["id"])


def test_streaming_dataloader_two_workers(mini):
    import torch
    from torch.utils.data import DataLoader

    folder, _, reference = mini
    stream = load_dataset(data_dir=folder, split="train", streaming=True).with_format("torch")
    assert isinstance(stream, torch.utils.data.IterableDataset)
    rows = list(DataLoader(stream, batch_size=None, num_workers=2))
    assert sorted(r["id"] for r in rows) == sorted(i for i in reference if i in set(mini[1]["train"]["id"]))
    assert all(isinstance(r["vertices"], torch.Tensor) and r["vertices"].shape[1:] == (N, 3) for r in rows)


STREAM_OPERATIONS = {
    "none": lambda s: s,
    "shuffle": lambda s: s.shuffle(seed=1, buffer_size=5),
    "take": lambda s: s.take(4),
    "skip": lambda s: s.skip(17),
    "filter": lambda s: s.filter(lambda r: r["vertices"].shape[0] == r["num_frames"] and r["emotion"] >= 0),
    "remove_audio": lambda s: s.remove_columns(["audio"]),
    "rename_vertices": lambda s: s.rename_column("vertices", "mesh"),
    "map_new_column": lambda s: s.map(lambda r: {"frames_seen": len(r["vertices"])}),
}


@pytest.mark.parametrize("fmt", ["numpy", "torch"])
@pytest.mark.parametrize("operation", list(STREAM_OPERATIONS))
def test_streaming_operation_keeps_decoding(mini, operation, fmt):
    folder, _, reference = mini
    stream = STREAM_OPERATIONS[operation](load_dataset(data_dir=folder, split="train", streaming=True)).with_format(fmt)
    rows = list(stream)
    expected_count = {"take": 4, "skip": 4}.get(operation, 21)
    assert len(rows) == expected_count
    key = "mesh" if operation == "rename_vertices" else "vertices"
    for row in rows[:3]:
        _check_decoded_row(row, reference, key, fmt == "torch")
        if operation == "map_new_column":
            assert int(row["frames_seen"]) == reference[row["id"]]["num_frames"]


@pytest.mark.parametrize("world_size", [2, 4, 8])
def test_split_dataset_by_node_gives_whole_shards(mini, world_size):
    folder, whole, _ = mini
    stream = load_dataset(data_dir=folder, split="train", streaming=True)
    assert stream.n_shards % 8 == 0
    parts = [[r["id"] for r in split_dataset_by_node(stream, rank, world_size)] for rank in range(world_size)]
    assert sorted(sum(parts, [])) == sorted(whole["train"]["id"])  # every row once
    shard_of = {row["id"]: row["shard"] for _, row in Release(folder).sequences("train").iterrows()}
    shards = [{shard_of[i] for i in part} for part in parts]
    assert all(a.isdisjoint(b) for k, a in enumerate(shards) for b in shards[k + 1 :])  # whole shards per node
    map_style = split_dataset_by_node(whole["train"], 1, world_size)
    assert map_style.num_rows > 0 and map_style[0]["vertices"].dtype == np.float32


def test_map_sees_decoded_rows_and_stores_the_stored_form(mini):
    _, whole, reference = mini
    train = whole["train"].select(range(4))
    seen = train.map(lambda r: {"mean_z": float(r["vertices"][..., 2].mean()), "kind": type(r["vertices"]).__name__})
    assert seen["kind"] == ["ndarray"] * 4  # the function saw decoded arrays
    assert np.allclose(seen["mean_z"], [reference[i]["vertices"][..., 2].mean() for i in seen["id"]])
    assert seen.features["vertices"].dtype == "binary"  # stored form kept
    unchanged = train.map(lambda r: r)
    assert [np.array_equal(unchanged[i]["vertices"], train[i]["vertices"]) for i in range(4)] == [True] * 4
    doubled = train.map(lambda r: {"vertices": r["vertices"] * 2})
    assert doubled.features["vertices"].dtype == "binary"
    for i in range(2):
        assert np.abs(doubled[i]["vertices"] - 2 * train[i]["vertices"]).max() <= 1.01e-5  # the codec's bound
    batched = train.map(lambda b: {"n": [len(v) for v in b["vertices"]]}, batched=True, batch_size=2)
    assert batched["n"] == [reference[i]["num_frames"] for i in batched["id"]]
    by_column = train.filter(lambda v: v.shape[0] > 0, input_columns=["vertices"])
    assert by_column.num_rows == 4


def test_concatenate_and_dict_operations(mini):
    _, whole, _ = mini
    both = concatenate_datasets([whole["train"], whole["test"]])
    assert both.num_rows == 24 and both[23]["vertices"].shape[1:] == (N, 3)
    renamed = whole.rename_column("vertices", "mesh").with_format("numpy")
    assert renamed["test"][0]["mesh"].dtype == np.float32
    assert set(whole.hf_dataset) == {"train", "test"} and whole["train"].hf_dataset[0]["vertices"][:4] != b""


@pytest.mark.parametrize("fmt", ["arrow", "pandas"])
def test_streaming_table_formats_give_stored_columns(mini, fmt):
    folder, _, reference = mini
    first = next(iter(load_dataset(data_dir=folder, split="test", streaming=True).shuffle(seed=0, buffer_size=2).with_format(fmt)))
    if fmt == "arrow":
        assert first.num_rows == 1 and isinstance(first.column("vertices")[0].as_py(), bytes)
        assert first.column("id")[0].as_py() in reference
    else:
        assert len(first) == 1 and isinstance(first["vertices"].iloc[0], bytes) and first["id"].iloc[0] in reference
