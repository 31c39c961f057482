"""No silent wrong data (issue 24, docs/release_format.md, Checksums): a flipped byte anywhere in a shard gives
a named error or the right rows, map-style and streaming; the per-row checksums survive the operations users
chain; a format 1.0 release still loads, with a note; validate and stats name damaged inputs by file."""

from __future__ import annotations

import json
import logging
import random
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from mmface4d_datasets.errors import MMFace4DError
from mmface4d_datasets.files import json_bytes, sha256_file
from mmface4d_datasets.loading import load_dataset
from mmface4d_datasets.release.checksums import CHECKSUM_COLUMN, footer_sha256, row_checksums, value_digest
from mmface4d_datasets.release.validate import validate_release
from mmface4d_datasets.release.writer import write_release
from test_release_support import make_topology, small_sources


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("checked") / "release"
    write_release(small_sources(2, 2, frames=6), root, topology=make_topology(), progress=False)
    return root


@pytest.fixture
def release(built, tmp_path):
    target = tmp_path / "release"
    shutil.copytree(built, target)
    return target


def _rows(dataset) -> list[dict]:
    return [dict(row) for row in dataset]


def _same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, dict):
            if not _same(x, y):
                return False
        elif isinstance(x, np.ndarray):
            if x.shape != y.shape or not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True


def test_every_row_carries_a_digest_of_every_column(built):
    table = pq.read_table(built / "data" / "train" / "shard-00000.parquet")
    row = table.slice(0, 1).to_pylist()[0]
    columns = [c for c in table.column_names if c != CHECKSUM_COLUMN]
    assert row[CHECKSUM_COLUMN] == row_checksums(row, columns)
    assert value_digest(b"abc") != value_digest("abc") and value_digest(None) != value_digest("")
    assert pq.ParquetFile(built / "data" / "train" / "shard-00000.parquet").metadata.row_group(0).column(0).total_compressed_size > 0
    info = json.loads((built / "meta" / "info.json").read_text())
    entry = info["files"]["data/train/shard-00000.parquet"]
    assert info["format_version"] == "1.1" and entry["footer_sha256"] == footer_sha256(built / "data" / "train" / "shard-00000.parquet")


@pytest.mark.parametrize("streaming", [False, True])
def test_seeded_byte_flips_anywhere_in_a_shard_give_named_errors_or_the_right_rows(built, tmp_path, streaming):
    """A small seeded sample here (perf/checksums.py runs 200+ positions): every flip is named or harmless."""
    reference = _rows(load_dataset(data_dir=built, split="train"))
    shards = sorted((built / "data" / "train").glob("*.parquet"))
    rng = random.Random(24 + streaming)
    outcomes = {"named": 0, "right": 0}
    for trial in range(10):
        work = tmp_path / f"trial{trial}"
        shutil.copytree(built, work)
        shard = work / rng.choice(shards).relative_to(built)
        data = bytearray(shard.read_bytes())
        position = rng.randrange(len(data))
        data[position] ^= 1 << rng.randrange(8)
        shard.write_bytes(bytes(data))
        try:
            rows = _rows(load_dataset(data_dir=work, split="train", streaming=streaming))
        except MMFace4DError as exc:
            assert "shard-0000" in str(exc) or "checksum" in str(exc), str(exc)
            outcomes["named"] += 1
        else:  # a byte no reader looks at (e.g. column statistics): the rows must be the right ones
            assert len(rows) == len(reference) and all(_same(a, b) for a, b in zip(rows, reference)), (shard.name, position)
            outcomes["right"] += 1
        shutil.rmtree(work)
    assert outcomes["named"] >= 5


def test_operations_keep_checksums_true(release):
    train = load_dataset(data_dir=release, split="train")
    changed = train.map(lambda row: {"text": row["text"] + " (edited)"})
    assert changed[0]["text"].endswith("(edited)")
    again = train.map(lambda row: row)  # decoded fields re-encoded: their digests follow
    assert again[0]["vertices"].shape == train[0]["vertices"].shape
    batched = train.map(lambda batch: {"gender": ["x"] * len(batch["gender"])}, batched=True)
    assert batched[1]["gender"] == "x"
    positional = train.map(lambda text: {"text": text.upper()}, input_columns="text")  # old digests unknown: unchecked
    assert positional[0]["text"] == train[0]["text"].upper() and positional.hf_dataset[0][CHECKSUM_COLUMN] is None
    renamed = train.rename_column("vertices", "mesh")
    assert renamed[0]["mesh"].shape == train[0]["vertices"].shape
    assert CHECKSUM_COLUMN not in train[0] and CHECKSUM_COLUMN not in next(
        iter(load_dataset(data_dir=release, split="train", streaming=True))
    )


def _as_format_1_0(release) -> None:
    """The release as a format 1.0 writer left it: no checksums column, no page CRCs, no footer digests."""
    info = json.loads((release / "meta" / "info.json").read_text())
    info["format_version"] = "1.0"
    for relative, entry in info["files"].items():
        path = release / relative
        if path.suffix == ".parquet" and relative != "meta/sequences.parquet":
            table = pq.read_table(path)
            table = table.drop_columns([CHECKSUM_COLUMN]).replace_schema_metadata(table.schema.metadata)
            pq.write_table(table, path)
        entry.pop("footer_sha256", None)
        entry.update(bytes=path.stat().st_size, sha256=sha256_file(path))
    (release / "meta" / "info.json").write_bytes(json_bytes(info))


def test_a_format_1_0_release_still_loads_with_a_one_line_note(release, caplog):
    import mmface4d_datasets.loading as loading

    _as_format_1_0(release)
    loading._NOTED.clear()
    with caplog.at_level(logging.WARNING, logger="mmface4d_datasets.loading"):
        rows = _rows(load_dataset(data_dir=release, split="train"))
        load_dataset(data_dir=release, split="test", streaming=True)
    notes = [r.getMessage() for r in caplog.records if "carry no checksums" in r.getMessage()]
    assert len(notes) == 1 and "format 1.0" in notes[0]
    assert rows and rows[0]["vertices"].ndim == 3
    assert validate_release(release) == []


def test_all_checks_hashes_each_shard_once_and_names_a_changed_one(release, tmp_path, monkeypatch):
    import mmface4d_datasets.files as files

    monkeypatch.setenv("MMFACE4D_CACHE", str(tmp_path / "cache"))
    calls = []
    real = files.sha256_file
    monkeypatch.setattr(files, "sha256_file", lambda path: calls.append(path) or real(path))
    load_dataset(data_dir=release, split="train", verification_mode="all_checks")
    first = len(calls)
    load_dataset(data_dir=release, split="train", verification_mode="all_checks")
    assert first >= 1 and len(calls) == first  # the verdict is remembered by path, size and mtime
    # a flipped byte that no page or row check sees (a column statistic in a page header): all_checks names it
    shard = release / "data" / "train" / "shard-00000.parquet"
    column = pq.ParquetFile(shard).metadata.row_group(0).column(0)
    data = bytearray(shard.read_bytes())
    data[column.data_page_offset + 1] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(MMFace4DError, match=r"data/train/shard-00000\.parquet"):
        load_dataset(data_dir=release, split="train", verification_mode="all_checks")
    with pytest.raises(ValueError, match="verification_mode"):
        load_dataset(data_dir=release, split="train", verification_mode="some_checks")


# --------------------------------------------------------------------------- validate and stats on damaged releases


def _edit_info(release, edit) -> None:
    path = release / "meta" / "info.json"
    info = json.loads(path.read_text())
    edit(info)
    path.write_bytes(json_bytes(info))


def _cases():
    def rows_edited(release):
        _edit_info(release, lambda info: info["files"]["data/train/shard-00000.parquet"].update(rows=99))

    def frames_absurd(release):
        _edit_info(release, lambda info: info["counts"].update(frames=10**12))

    def topology_corrupt(release):
        (release / "meta" / "topology.npz").write_bytes(b"PK\x03\x04 not a zip at all")

    def splits_a_list(release):
        (release / "meta" / "splits.json").write_text("[]")

    def shard_truncated(release):
        shard = release / "data" / "train" / "shard-00000.parquet"
        shard.write_bytes(shard.read_bytes()[:-200])

    return {
        "rows_edited": (rows_edited, "data/train/shard-00000.parquet", "rows, meta/info.json says 99"),
        "frames_absurd": (frames_absurd, "meta/info.json", "counts.frames is 1000000000000"),
        "topology_corrupt": (topology_corrupt, "meta/topology.npz", "cannot be read"),
        "splits_a_list": (splits_a_list, "meta/splits.json", "holds a JSON list"),
        "shard_truncated": (shard_truncated, "data/train/shard-00000.parquet", ""),
    }


@pytest.mark.parametrize("case", sorted(_cases()))
def test_validate_and_the_command_name_each_damage_by_file(release, case, capsys):
    from mmface4d_datasets.cli import main

    damage, file, words = _cases()[case]
    damage(release)
    problems = [p for p in validate_release(release) if p.file == file]
    assert problems and any(words in p.message for p in problems), validate_release(release)
    assert main(["validate", str(release)]) != 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and file in captured.out + captured.err


@pytest.mark.parametrize("case", ["rows_edited", "topology_corrupt", "splits_a_list", "shard_truncated"])
def test_the_loader_and_stats_refuse_what_validate_reports(release, case):
    """validate applies every check the loader applies: what it reports, the loader or stats refuses by name."""
    from builders.stats import compute_statistics

    damage, file, _ = _cases()[case]
    damage(release)
    with pytest.raises(MMFace4DError, match=file.replace(".", r"\.")):
        if case in ("rows_edited", "shard_truncated"):
            load_dataset(data_dir=release, split="train")
        else:
            compute_statistics(release)
    if case == "shard_truncated":
        with pytest.raises(MMFace4DError, match=r"shard-00000\.parquet"):
            compute_statistics(release)
