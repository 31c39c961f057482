"""meta/info.json parsed once into a typed, frozen ReleaseInfo; the tables' schemas owned by release/schema.py."""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil

import pytest

from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.files import json_bytes
from mmface4d_datasets.release.info import INFO_FILE, InfoFormatError, ReleaseInfo, ReleaseVersionError
from mmface4d_datasets.release.reader import Release
from mmface4d_datasets.release.validate import validate_release
from mmface4d_datasets.release.writer import write_release
from test_release_support import make_topology, small_sources


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("info") / "rel"
    write_release(small_sources(4, 2), out, topology=make_topology(), progress=False)
    return out


@pytest.fixture
def copy(release, tmp_path):
    target = tmp_path / "rel"
    shutil.copytree(release, target)
    return target


def edit_info(root, change) -> None:
    data = json.loads((root / INFO_FILE).read_text())
    change(data)
    (root / INFO_FILE).write_text(json.dumps(data))


def test_the_written_file_parses_into_typed_fields_and_writes_back_byte_identical(release):
    path = release / INFO_FILE
    info = ReleaseInfo.from_file(path)
    assert json_bytes(info.to_json()) == path.read_bytes()
    assert info.format_version == "1.1" and info.topology == "synthetic_v1@480" and info.num_vertices == 480
    assert info.fps == 30 and info.uniform_fps == 30 and info.sample_rate == 16000 and info.codec_version == "3"
    assert info.split_names == ["train", "test"]
    train = info.splits["train"]
    assert train.shards == tuple(info.listed("data/train/", ".parquet")) and train.sequences == len(Release(release).sequences("train"))
    assert sum(info.files[shard].rows for shard in train.shards) == train.sequences
    assert info.files["meta/splits.json"].rows is None and len(info.files["meta/splits.json"].sha256) == 64
    assert info.counts.sequences == 8 and info.emotions[0] == "neutral" and info.figures is None
    assert Release(release).info == info and pickle.loads(pickle.dumps(info)) == info


def test_it_is_frozen_and_its_json_view_is_a_copy(release):
    info = ReleaseInfo.from_file(release / INFO_FILE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.num_vertices = 3
    with pytest.raises(TypeError):
        info.files["data/extra.parquet"] = None
    view = info["splits"]
    assert view["train"]["sequences"] == info.splits["train"].sequences and "figures" not in info
    view["train"]["sequences"] = -1
    assert info["splits"]["train"]["sequences"] == info.splits["train"].sequences


def test_keys_of_a_later_minor_version_and_figures_are_kept(copy):
    figures = {"numbers": "meta/figures/stats.json", "images": [{"path": "meta/figures/a.png", "title": "(a) a"}]}
    edit_info(copy, lambda i: i.update(format_version="1.3", future={"x": [1, 2]}, figures=figures))
    info = ReleaseInfo.from_file(copy / INFO_FILE)
    assert info.extra == {"future": {"x": [1, 2]}} and info.figures.images[0].title == "(a) a"
    assert info.to_json() == json.loads((copy / INFO_FILE).read_text())


def test_problems_name_the_file_and_every_field(copy):
    edit_info(copy, lambda i: [i.pop("num_vertices"), i.pop("splits")])
    with pytest.raises(InfoFormatError) as caught:
        Release(copy)
    assert str(caught.value).startswith(str(copy / INFO_FILE))
    assert caught.value.problems == ("has no 'num_vertices' field", "has no 'splits' field")
    assert [str(p) for p in validate_release(copy)] == [
        "meta/info.json: has no 'num_vertices' field",
        "meta/info.json: has no 'splits' field",
    ]


def test_mistyped_fields_are_named(copy):
    def change(info):
        info["num_vertices"] = "480"
        info["fps"] = [30, "25"]
        info["splits"]["train"]["shards"] = "data/train/shard-00000.parquet"
        info["files"]["meta/splits.json"]["rows"] = 1.5

    edit_info(copy, change)
    with pytest.raises(FormatError) as caught:
        ReleaseInfo.from_file(copy / INFO_FILE)
    assert caught.value.problems == (
        "field 'fps' is not an integer or a list of integers",
        "field 'num_vertices' is not an integer",
        "field 'splits.train.shards' is not a list of strings",
        "field 'files.meta/splits.json.rows' is not an integer",
    )


def test_another_major_version_is_a_version_error_before_anything_else(copy):
    edit_info(copy, lambda i: [i.update(format_version="2.0"), i.pop("files")])
    with pytest.raises(ReleaseVersionError, match=r"format version '2.0'; this package reads 1.1.*mmface4d build release"):
        Release(copy)
    (copy / INFO_FILE).write_text("not json")
    with pytest.raises(InfoFormatError, match=r"info.json: cannot be read as JSON"):
        Release(copy)
    (copy / INFO_FILE).unlink()
    with pytest.raises(InfoFormatError, match=r"info.json: missing: this is not a release folder"):
        Release(copy)


def test_shards_carry_the_schema_of_release_schema(release):
    import datasets
    import pyarrow.parquet as pq

    from mmface4d_datasets.release import schema

    tables = {
        "data/train/shard-00000.parquet": (schema.data_schema(), schema.data_features()),
        "raw/test/shard-00000.parquet": (schema.raw_schema(), schema.raw_features()),
        "templates/templates.parquet": (schema.template_schema(), schema.template_features()),
    }
    for relative, (arrow, features) in tables.items():
        stored = pq.read_schema(release / relative)  # (Parquet names list items "element", Arrow "item")
        assert stored.metadata == arrow.metadata and stored.names == arrow.names, relative
        assert datasets.Features.from_arrow_schema(stored) == features and tuple(features) == tuple(arrow.names)
        assert arrow.equals(features.arrow_schema, check_metadata=False)
    assert pq.read_schema(release / "meta" / "sequences.parquet").equals(schema.sequences_schema(), check_metadata=True)
    assert schema.data_schema().names == list(schema.DATA_COLUMNS)


def test_the_benchmark_states_the_fields_the_writer_writes(release):
    from benchmark.scoring import release_context

    info = Release(release).info
    context = release_context(Release(release), "test")
    assert (
        (context["format_version"], context["topology"], context["num_vertices"], context["codec_version"])
        == (info.format_version, info.topology, info.num_vertices, info.codec_version)
        == ("1.1", "synthetic_v1@480", 480, "3")
    )
    assert context["region_rule_version"] == "test-grid" and len(context["content_hash"]) == 64
