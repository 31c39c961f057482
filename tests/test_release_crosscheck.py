"""Release files read by tools no one here wrote: pyarrow, pandas, datasets (parquet and card configs), DuckDB."""

from __future__ import annotations

import numpy as np
import pytest

from mmface4d_datasets.codec import decode
from mmface4d_datasets.release.writer import write_release
from test_release_support import make_topology, small_sources


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("crosscheck") / "release"
    write_release(small_sources(5, 3, raw=True), out, topology=make_topology(), progress=False)
    return out


def test_plain_pyarrow_reads_shards(release):
    import pyarrow.parquet as pq

    table = pq.read_table(release / "data" / "train")
    assert table.num_rows == 12 and table.column_names[:2] == ["id", "subject_id"]
    row = table.slice(0, 1).to_pylist()[0]
    assert decode(row["vertices"]).shape == (row["num_frames"], row["num_vertices"], 3)


def test_pandas_reads_shards_and_meta(release):
    import pandas as pd

    shards = pd.read_parquet(release / "data" / "test")
    sequences = pd.read_parquet(release / "meta" / "sequences.parquet")
    assert len(shards) == 3 and set(shards["id"]) == set(sequences.loc[sequences["split"] == "test", "id"])
    assert sequences["duration_s"].gt(0).all()


def test_datasets_parquet_builder_reads_shards(release):
    import datasets

    files = {"train": sorted(str(p) for p in (release / "data" / "train").glob("*.parquet"))}
    loaded = datasets.load_dataset("parquet", data_files=files, split="train")
    assert loaded.features["emotion"].names[:3] == ["neutral", "happy", "angry"]
    assert isinstance(loaded[0]["vertices"], bytes) and loaded.num_rows == 12


def test_datasets_loads_the_folder_through_card_configs(release):
    import datasets

    default = datasets.load_dataset(str(release))
    assert set(default) == {"train", "test"} and default["train"].num_rows == 12
    assert isinstance(default["train"].features["emotion"], datasets.ClassLabel)
    templates = datasets.load_dataset(str(release), "templates", split="train")
    assert templates.num_rows == 5
    raw = datasets.load_dataset(str(release), "raw", split="test")
    assert raw.num_rows == 3 and raw[0]["cameras"] == [0, 1, 2]
    streamed = next(iter(datasets.load_dataset(str(release), split="test", streaming=True)))
    assert decode(streamed["vertices"]).dtype == np.float32


def test_duckdb_queries_the_sequence_table(release):
    duckdb = pytest.importorskip("duckdb")

    path = str(release / "meta" / "sequences.parquet")
    rows = duckdb.sql(
        f"SELECT split, count(DISTINCT subject_id), count(*), sum(num_frames) FROM '{path}' GROUP BY split ORDER BY split"
    ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [("test", 1, 3), ("train", 4, 12)]
    neutral = duckdb.sql(f"SELECT count(*) FROM '{path}' WHERE emotion = 'neutral'").fetchall()[0][0]
    assert neutral == 5
    shard_rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{release}/data/*/*.parquet')").fetchall()[0][0]
    assert shard_rows == 15
