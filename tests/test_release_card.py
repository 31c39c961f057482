"""The dataset card: YAML configs and gating fields, numbers computed from the data, protocol and ethics text."""

from __future__ import annotations

import pytest
import yaml

from mmface4d_datasets.errors import MMFace4DError
from mmface4d_datasets.release.card import card_front_matter, render_card
from mmface4d_datasets.release.reader import Release
from mmface4d_datasets.release.writer import write_release
from test_release_support import make_topology, small_sources


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("card") / "release"
    write_release(small_sources(5, 3, frames=15), out, topology=make_topology(), progress=False, card_info={"pretty_name": "Card test"})
    return out


def test_yaml_front_matter_has_configs_and_gating(release):
    front = yaml.safe_load(card_front_matter(release / "README.md"))
    configs = {c["config_name"]: c for c in front["configs"]}
    assert set(configs) == {"default", "templates", "raw"} and configs["default"]["default"] is True
    assert [f["split"] for f in configs["default"]["data_files"]] == ["train", "test"]
    info = Release(release).info  # shard files listed one by one (no globs), as meta/info.json lists them
    assert configs["default"]["data_files"][0]["path"] == info["splits"]["train"]["shards"]
    assert configs["raw"]["data_files"][1]["path"] == sorted(p for p in info["files"] if p.startswith("raw/test/"))
    assert "re-identify" in front["extra_gated_prompt"] and len(front["extra_gated_fields"]) >= 4
    assert front["pretty_name"] == "Card test" and front["license"]


def test_numbers_come_from_the_data(release):
    text = (release / "README.md").read_text()
    info = Release(release).info
    train, test = info["splits"]["train"], info["splits"]["test"]
    assert f"| train | {train['subjects']} | {train['sequences']} | {train['frames']} | " in text
    assert f"| test | {test['subjects']} | {test['sequences']} | {test['frames']} | " in text
    assert "0.50 / 0.50 / 0.50" in text  # every take has 15 frames at 30 fps
    assert "neutral 5, happy 5, angry 5" in text
    assert "{{" not in text


def test_protocol_and_ethics_paragraphs(release):
    text = (release / "README.md").read_text()
    assert "never the target sequence itself" in text and "leak" in text
    assert "deepfakes" in text and "Intended use" in text and "arXiv:2303.09797" in text


def test_unknown_card_field_is_refused(release):
    release_info = Release(release)
    with pytest.raises(MMFace4DError, match="unknown fields"):
        render_card(release_info.info, release_info.splits, [], {"colour": "blue"})
