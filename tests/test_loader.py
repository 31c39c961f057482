"""`mmface4d_datasets.load_dataset`: local folders, the mini release offline, formats, streaming, clear errors."""

from __future__ import annotations

import os

import numpy as np
import pytest

import mmface4d_datasets
from mmface4d_datasets.loading import DatasetNotAvailableError, hub_patterns, load_dataset
from mmface4d_datasets.release.schema import InMemorySource
from mmface4d_datasets.release.validate import validate_release
from mmface4d_datasets.release.writer import write_release
from test_release_support import make_sequence, make_topology, small_sources


@pytest.fixture(scope="module")
def local_release(tmp_path_factory):
    out = tmp_path_factory.mktemp("loader") / "release"
    sources = small_sources(5, 3, raw=True) + [InMemorySource(make_sequence("S900", "090001", sample_rate=8000))]
    write_release(sources, out, topology=make_topology(), progress=False)
    return out, {s.key: s.load() for s in sources}


@pytest.fixture(scope="module")
def mini(mini_release):
    """The session's mini release (conftest.py), loaded through load_dataset(name="mini") with its HF_HOME."""
    folder, home = mini_release
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HOME", str(home))
        patch.delenv("MMFACE4D_CACHE", raising=False)
        patch.setenv("HF_HUB_OFFLINE", "1")
        dataset = load_dataset("mmface4d", name="mini")
        from mmface4d_datasets.release.mini import mini_release_dir

        assert mini_release_dir() == folder
        yield dataset, folder, home, patch


@pytest.mark.slow  # builds the mini release: about 10-20 s on 2 busy cores
def test_mini_builds_offline_from_empty_cache_with_disjoint_splits(mini):
    dataset, folder, home, _ = mini
    assert folder.is_relative_to(home) and (folder / "meta" / "info.json").is_file()
    assert set(dataset) == {"train", "test"}
    train_subjects, test_subjects = set(dataset["train"]["subject_id"]), set(dataset["test"]["subject_id"])
    assert train_subjects and test_subjects and train_subjects.isdisjoint(test_subjects)
    assert len(train_subjects | test_subjects) == 8 and dataset["train"].num_rows + dataset["test"].num_rows == 24
    row = dataset["test"][0]
    assert row["vertices"].dtype == np.float32 and row["vertices"].shape == (row["num_frames"], 1000, 3)
    assert row["audio"]["sampling_rate"] == 16000 and row["audio"]["array"].dtype == np.float32
    assert abs(row["audio"]["array"].shape[0] / 16000 - row["num_frames"] / 30) < 0.1
    assert validate_release(folder) == []


@pytest.mark.slow
def test_mini_is_reused_not_rebuilt(mini, monkeypatch):
    _, folder, _, _ = mini

    def refuse(*args, **kwargs):
        raise AssertionError("the mini release was built again")

    monkeypatch.setattr("mmface4d_datasets.release.writer.write_release", refuse)
    stamp = (folder / "meta" / "info.json").stat().st_mtime_ns
    again = mmface4d_datasets.load_dataset("mmface4d", name="mini", split="train")
    assert again.num_rows == 21 and (folder / "meta" / "info.json").stat().st_mtime_ns == stamp


def test_local_release_by_data_dir_env_and_path(local_release, monkeypatch):
    out, sources = local_release
    by_dir = load_dataset("mmface4d", data_dir=out, split="train")
    monkeypatch.setenv("MMFACE4D_DATA_DIR", str(out))
    by_env = load_dataset("mmface4d", split="train")
    by_path = load_dataset(str(out), split="train")
    assert by_dir["id"] == by_env["id"] == by_path["id"] == sorted(by_dir["id"])
    row = by_dir[1]
    source = sources[row["take_id"]]
    assert row["vertices"].shape == source.vertices.shape and row["head_pose"].shape == (source.vertices.shape[0], 4, 4)
    assert np.array_equal(row["audio"]["array"], source.audio)


def test_other_sample_rates_are_resampled_to_16k(local_release):
    out, sources = local_release
    train = load_dataset(data_dir=out, split="train")
    row = train[train["id"].index("S900/090001")]
    assert row["audio"]["sampling_rate"] == 16000 and row["sample_rate"] == 16000
    assert row["audio"]["array"].shape[0] == 2 * sources["090001"].audio.shape[0]


def test_torch_format_keeps_decoding(local_release):
    import torch

    out, _ = local_release
    dataset = load_dataset(data_dir=out, split="train").with_format("torch")
    row = dataset[0]
    assert isinstance(row["vertices"], torch.Tensor) and row["vertices"].dtype == torch.float32 and row["vertices"].ndim == 3
    assert isinstance(row["audio"]["array"], torch.Tensor)
    assert int(row["num_frames"]) == row["vertices"].shape[0]
    shuffled = load_dataset(data_dir=out)["train"].shuffle(seed=1).select(range(2))
    assert isinstance(shuffled[0]["vertices"], np.ndarray)


def test_streaming_decodes_as_it_goes(local_release):
    out, sources = local_release
    stream = load_dataset(data_dir=out, split="test", streaming=True)
    rows = list(stream)
    assert rows and all(r["vertices"].shape == sources[r["take_id"]].vertices.shape for r in rows)
    import torch

    first = next(iter(stream.with_format("torch")))
    assert isinstance(first["vertices"], torch.Tensor)


def test_templates_raw_and_undecoded(local_release):
    out, sources = local_release
    templates = load_dataset(data_dir=out, name="templates", split="train")
    assert templates.num_rows == 6 and templates[0]["vertices"].shape == (480, 3)
    raw = load_dataset(data_dir=out, name="raw", split="train")
    row = raw[0]
    source = sources[row["id"].split("/")[1]]
    assert row["intrinsics"].shape == (3, 3, 3) and np.array_equal(row["landmarks"][2], source.raw.landmarks[2])
    stored = load_dataset(data_dir=out, split="train", decode=False)[0]
    assert isinstance(stored["vertices"], bytes) and stored["audio"][:4] == b"RIFF"


def test_not_a_release_folder_and_unknown_config(tmp_path):
    with pytest.raises(DatasetNotAvailableError, match="no meta/info.json.*mmface4d build release"):
        load_dataset(data_dir=tmp_path)
    with pytest.raises(mmface4d_datasets.errors.MMFace4DError, match="unknown config"):
        load_dataset(data_dir=tmp_path, name="everything")


@pytest.mark.parametrize("how", ["offline-mode", "no-network"])
def test_no_data_no_network_says_what_to_do(tmp_path, monkeypatch, how):
    import huggingface_hub.constants as constants

    monkeypatch.delenv("MMFACE4D_DATA_DIR", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    if how == "offline-mode":
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    else:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
        monkeypatch.setenv("MMFACE4D_REPO_ID", "someone/elsewhere")
    with pytest.raises(DatasetNotAvailableError) as caught:
        load_dataset("mmface4d", split="train")
    message = str(caught.value)
    assert "data_dir" in message and "name='mini'" in message and "hf auth login" in message
    assert ("someone/elsewhere" if how == "no-network" else "mmface4d/mmface4d") in message


def test_hub_path_downloads_only_the_needed_files(local_release, monkeypatch):
    import huggingface_hub

    out, _ = local_release
    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(out)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.delenv("MMFACE4D_DATA_DIR", raising=False)
    monkeypatch.setenv("MMFACE4D_REPO_ID", "lab/faces")
    test = load_dataset("mmface4d", split="test", revision="v1")
    assert test.num_rows == 3 and test[0]["vertices"].ndim == 3
    assert calls == [
        ("lab/faces", {"repo_type": "dataset", "revision": "v1", "allow_patterns": ["README.md", "meta/*", "data/test/*.parquet"]})
    ]


def test_hub_streaming_reads_shards_remotely(local_release):
    from mmface4d_datasets.loading import hub_stream_files
    from mmface4d_datasets.release.reader import Release

    info = Release(local_release[0]).info
    files = hub_stream_files("lab/faces", None, info, "default", None)
    assert list(files) == ["train", "test"]
    assert files["test"] == [f"hf://datasets/lab/faces@main/{path}" for path in info["splits"]["test"]["shards"]]
    assert files["test"][0] == "hf://datasets/lab/faces@main/data/test/shard-00000.parquet"
    assert hub_stream_files("lab/faces", "v2", info, "raw", "train")["train"][0].startswith("hf://datasets/lab/faces@v2/raw/train/")
    with pytest.raises(mmface4d_datasets.errors.MMFace4DError, match="lists no data/validation/"):
        hub_stream_files("lab/faces", None, info, "default", "validation")


def test_hub_downloads_only_what_is_needed():
    assert hub_patterns("default", "test") == ["README.md", "meta/*", "data/test/*.parquet"]
    assert hub_patterns("raw", None) == ["README.md", "meta/*", "raw/*/*.parquet"]
    assert hub_patterns("templates", "train") == ["README.md", "meta/*", "templates/*.parquet"]


def test_importing_the_package_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, mmface4d_datasets, mmface4d_datasets.loading, mmface4d_datasets.release.writer, "
        "mmface4d_datasets.release.reader, mmface4d_datasets.release.validate, mmface4d_datasets.torch_data, "
        "mmface4d_datasets.decoded_dataset, mmface4d_datasets.release.rows, mmface4d_datasets.extras; "
        "print(sorted(m for m in ('torch', 'transformers', 'matplotlib', 'ray', 'datasets') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=dict(os.environ))
    assert result.stdout.strip() == "[]"
