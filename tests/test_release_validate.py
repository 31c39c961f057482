"""`validate_release` / `mmface4d validate`: a clean release passes; seeded faults are found by file and row."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmface4d_datasets.cli import main
from mmface4d_datasets.release.validate import validate_release
from mmface4d_datasets.release.writer import write_release
from test_release_support import make_topology, small_sources


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("validate") / "rel"
    write_release(small_sources(6, 3), out, topology=make_topology(), progress=False)
    return out


@pytest.fixture
def copy(clean, tmp_path) -> Path:
    target = tmp_path / "rel"
    shutil.copytree(clean, target)
    return target


def messages(path) -> list[str]:
    return [str(p) for p in validate_release(path)]


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_clean_release_is_valid_and_cli_exits_0(clean, capsys):
    assert messages(clean) == []
    assert main(["validate", str(clean)]) == 0
    assert "valid" in capsys.readouterr().out


def test_bad_checksum_names_the_file(copy, capsys):
    shard = copy / "data" / "train" / "shard-00000.parquet"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert "data/train/shard-00000.parquet: sha256 checksum does not match meta/info.json" in messages(copy)
    assert main(["validate", str(copy)]) == 1
    assert "sha256" in capsys.readouterr().out


def test_subject_in_two_splits(copy):
    manifest = json.loads((copy / "meta" / "splits.json").read_text())
    moved = manifest["train"][0]
    edit_json(copy / "meta" / "splits.json", lambda m: m["test"].append(moved))
    found = messages(copy)
    assert f"meta/splits.json: subject {moved!r} is in both train and test" in found


def test_style_reference_to_itself_missing_and_unknown(copy):
    manifest = json.loads((copy / "meta" / "splits.json").read_text())
    first, second, third = sorted(manifest["style_reference"])[:3]

    def change(m):
        m["style_reference"][first] = first
        del m["style_reference"][second]
        m["style_reference"][third] = "nobody/000000"

    edit_json(copy / "meta" / "splits.json", change)
    found = "\n".join(messages(copy))
    assert f"the style reference of {first!r} is the sequence itself" in found
    assert f"test sequence {second!r} has no style reference" in found
    assert f"the style reference of {third!r} is 'nobody/000000', which is not in the release" in found


def test_missing_schema_column_names_file_and_column(copy):
    shard = copy / "data" / "train" / "shard-00000.parquet"
    table = pq.read_table(shard).drop_columns(["head_pose"])
    pq.write_table(table, shard)
    found = messages(copy)
    assert "data/train/shard-00000.parquet: column 'head_pose' is missing" in found


def test_bad_row_is_reported_by_row_number(copy):
    shard = copy / "data" / "train" / "shard-00000.parquet"
    table = pq.read_table(shard)
    frames = table.column("num_frames").to_pylist()
    frames[1] += 1  # shards hold few rows here (a multiple of 8 shards per split)
    table = table.set_column(table.schema.get_field_index("num_frames"), table.schema.field("num_frames"), pa.array(frames, pa.int32()))
    pq.write_table(table, shard)
    row_one = [m for m in messages(copy) if m.startswith("data/train/shard-00000.parquet row 1:")]
    assert any("vertices hold shape" in m for m in row_one) and any("head_pose holds" in m for m in row_one)


def test_wrong_format_version(copy, capsys):
    edit_json(copy / "meta" / "info.json", lambda i: i.update(format_version="9.0"))
    found = messages(copy)
    assert len(found) == 1 and found[0].startswith("meta/info.json: format version '9.0'")
    assert main(["validate", str(copy)]) == 1


def test_not_a_release(tmp_path):
    assert messages(tmp_path) == ["meta/info.json: missing: this is not a release folder"]
