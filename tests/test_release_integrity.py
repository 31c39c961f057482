"""A release is what meta/info.json says: the loader reads only listed shards and refuses a folder that
disagrees with it; validate reports corrupt input instead of crashing; corrupted payloads are named errors;
shards come in multiples of 8 (docs/release_format.md)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmface4d_datasets.loading import ReleaseMismatchError, load_dataset
from mmface4d_datasets.release.rows import RowChecksumError
from mmface4d_datasets.release.validate import validate_release
from mmface4d_datasets.release.writer import shard_count, shard_plan, write_release
from test_release_support import make_topology, small_sources


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Two releases of the same layout and different content (the second plays a rebuild)."""
    root = tmp_path_factory.mktemp("integrity")
    write_release(small_sources(4, 3), root / "a", topology=make_topology(), progress=False)
    write_release(small_sources(4, 3, frames=9), root / "b", topology=make_topology(), progress=False)
    return root


@pytest.fixture
def release(built, tmp_path):
    target = tmp_path / "release"
    shutil.copytree(built / "a", target)
    return target


def test_stray_shard_copy_is_not_read_by_either_loader(release, tmp_path):
    import datasets

    info = json.loads((release / "meta" / "info.json").read_text())
    expected = info["splits"]["train"]["sequences"]
    shutil.copy(release / "data/train/shard-00000.parquet", release / "data/train/shard-00099.parquet")
    shutil.copy(release / "data/train/shard-00001.parquet", release / "data/train/shard-00001 (copy).parquet")
    assert load_dataset(data_dir=release, split="train").num_rows == expected
    assert load_dataset(data_dir=release, split="train", streaming=True).n_shards == len(info["splits"]["train"]["shards"])
    # the card lists shard files, no globs (own cache: datasets' cache is keyed by the folder's name)
    plain = datasets.load_dataset(str(release), split="train", cache_dir=str(tmp_path / "hf_cache"))
    assert plain.num_rows == expected


def test_swapped_split_folders_are_refused(release):
    (release / "data/train").rename(release / "data/held")
    (release / "data/test").rename(release / "data/train")
    (release / "data/held").rename(release / "data/test")
    with pytest.raises(ReleaseMismatchError, match=r"(is listed but missing|bytes, meta/info.json says|rows).*mmface4d validate"):
        load_dataset(data_dir=release, split="test")


def test_half_finished_rebuild_is_never_served(release, built):
    for shard in sorted((built / "b" / "data" / "train").glob("*.parquet")):  # new shards, old meta/info.json
        shutil.copy(shard, release / "data" / "train" / shard.name)
    with pytest.raises(ReleaseMismatchError, match=r"data/train/shard-0000\d\.parquet has \d+ bytes, meta/info.json says"):
        load_dataset(data_dir=release, split="train")
    assert any("sha256" in str(p) or "size" in str(p) for p in validate_release(release))


def test_missing_listed_shard_is_named(release):
    (release / "data/test/shard-00001.parquet").unlink()
    with pytest.raises(ReleaseMismatchError, match=r"data/test/shard-00001\.parquet is listed but missing.*validate"):
        load_dataset(data_dir=release)


def _row_vertices_offset(shard, row: int = 0) -> int:
    data = shard.read_bytes()
    payload = pq.read_table(shard, columns=["vertices"]).column("vertices")[row].as_py()
    offset = data.find(payload)
    assert offset > 0  # vertices are stored uncompressed, so the codec bytes sit in the file as they are
    return offset + len(payload) // 2


def test_corrupted_vertex_payload_names_the_shard_on_load(release):
    from mmface4d_datasets.release.integrity import ShardReadError

    shard = release / "data" / "test" / "shard-00001.parquet"
    record_id = pq.read_table(shard, columns=["id"]).column("id")[0].as_py()
    data = bytearray(shard.read_bytes())
    data[_row_vertices_offset(shard)] ^= 0x40
    shard.write_bytes(bytes(data))
    # same size, rows and footer: the cheap checks pass, the page CRC catches it as the split is read
    for streaming in (False, True):
        with pytest.raises(ShardReadError) as caught:
            list(load_dataset(data_dir=release, split="test", streaming=streaming))
        message = str(caught.value)
        assert str(release) in message and "data/test/shard-00001.parquet is damaged" in message and "CRC" in message
        assert "mmface4d validate" in message
    assert any(record_id in str(p) and "shard-00001" in str(p) for p in validate_release(release))


def _rewritten_with_stale_checksums(shard, row: int, column: str, value) -> None:
    """The shard written again (fresh page CRCs) with one value changed and its old checksum kept: damage that
    happened before the pages were written (memory, a cache), which only the per-row checksum can see."""
    table = pq.read_table(shard)
    values = table.column(column).to_pylist()
    values[row] = value
    table = table.set_column(table.schema.get_field_index(column), column, pa.array(values, table.schema.field(column).type))
    pq.write_table(table, shard, write_page_checksum=True)


@pytest.mark.parametrize("streaming", [False, True])
def test_a_value_that_differs_from_its_row_checksum_names_shard_row_id_and_column(release, streaming):
    shard = release / "data" / "test" / "shard-00001.parquet"
    record_id = pq.read_table(shard, columns=["id"]).column("id")[0].as_py()
    audio = bytearray(pq.read_table(shard, columns=["audio"]).column("audio")[0].as_py())
    audio[len(audio) // 2] ^= 0x01  # one sample off by a bit: the WAV still decodes
    _rewritten_with_stale_checksums(shard, 0, "audio", bytes(audio))
    test = load_dataset(data_dir=release, split="test", streaming=streaming, verification_mode="no_checks")
    with pytest.raises(RowChecksumError) as caught:
        list(test)
    message = str(caught.value)
    assert str(release) in message and "data/test/shard-00001.parquet row 0" in message and record_id in message
    assert "'audio'" in message and "xxh3-64" in message and "mmface4d validate" in message
    with pytest.raises(ReleaseMismatchError, match="shard-00001.parquet has .* bytes"):  # the default checks see the new file
        load_dataset(data_dir=release, split="test")
    assert any("'audio'" in str(p) and "checksum" in str(p) and p.row == 0 for p in validate_release(release))


def test_validate_reports_a_corrupted_page_header(release):
    shard = release / "data" / "train" / "shard-00000.parquet"
    column = pq.ParquetFile(shard).metadata.row_group(0).column(0)
    data = bytearray(shard.read_bytes())
    start = column.data_page_offset
    data[start : start + 12] = b"\xff" * 12
    shard.write_bytes(bytes(data))
    found = [str(p) for p in validate_release(release)]
    assert any(m.startswith("data/train/shard-00000.parquet") and ("cannot be read" in m or "not a readable" in m) for m in found)


def test_validate_reports_info_that_is_a_list_and_a_path_that_is_a_file(release, tmp_path):
    from mmface4d_datasets.cli import main

    (release / "meta" / "info.json").write_text("[1, 2]")
    assert [str(p) for p in validate_release(release)] == ["meta/info.json: holds a JSON list, not an object with the release's fields"]
    a_file = tmp_path / "release.tar"
    a_file.write_bytes(b"not a folder")
    found = validate_release(a_file)
    assert len(found) == 1 and "is a file, not a release folder" in str(found[0])
    assert main(["validate", str(a_file)]) == 1


@pytest.mark.parametrize(
    "rows,total,limit,expected",
    [
        (3, 10, 100, 2),
        (5, 10, 100, 4),
        (7, 10, 100, 4),
        (8, 10, 100, 8),
        (21, 10, 100, 8),
        (100, 10_000, 100, 96),
        (1000, 10_000, 100, 104),
        (20, 10_000, 100, 16),
        (1, 5, 100, 1),
    ],
)
def test_shard_count_rule(rows, total, limit, expected):
    assert shard_count(rows, total, limit) == expected


def test_shard_plan_is_balanced_and_complete():
    sizes = [5, 1, 1, 1, 9, 2, 2, 2, 2, 2, 3, 3, 1, 1, 8, 1, 1]
    plan = shard_plan(sizes, shard_size_bytes=1000)
    assert len(plan) == 8 and sum(plan) == len(sizes) and min(plan) >= 1
    big = shard_plan([1] * 1000, shard_size_bytes=40)
    assert len(big) == 32 and set(big) == {31, 32} or len(big) == 32 and max(big) - min(big) <= 1
    np.testing.assert_equal(sum(big), 1000)
