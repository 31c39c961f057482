"""Take metadata for `mmface4d build release`: manifest CSV, meta.json, and their precedence."""

from __future__ import annotations

import json

import pytest

from builders.manifest import MetadataError, read_manifest, take_metadata
from mmface4d_datasets.errors import FormatError

HEADER = "take_id,subject_id,sentence_id,text,gender,age\n"


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_manifest_row_gives_fields_and_empty_cells_are_null(tmp_path):
    csv = write(tmp_path / "m.csv", HEADER + "000337,S001,000001,,,\n000338,S002,230004,你好,female,31\n")
    rows = read_manifest(csv)
    first = take_metadata("000337", rows)
    assert (first.subject_id, first.sentence_id, first.emotion) == ("S001", "000001", "neutral")
    assert (first.text, first.gender, first.age) == (None, None, None)
    second = take_metadata("000338", rows)
    assert (second.emotion, second.text, second.gender, second.age) == ("sad", "你好", "female", 31)
    assert "m.csv, line 3" in second.source


def test_manifest_wins_over_meta_json(tmp_path):
    rows = read_manifest(write(tmp_path / "m.csv", HEADER + "000337,S001,210001,hi,male,40\n"))
    meta = {"subject_id": "OTHER", "sentence_id": "000001", "age": 20}
    chosen = take_metadata("000337", rows, meta, tmp_path / "000337.meta.json")
    assert (chosen.subject_id, chosen.emotion, chosen.age) == ("S001", "happy", 40)
    # a take the CSV does not list falls back to its meta.json
    fallback = take_metadata("000400", rows, meta, tmp_path / "000400.meta.json")
    assert (fallback.subject_id, fallback.age) == ("OTHER", 20)
    assert fallback.source.endswith("000400.meta.json")


def test_missing_subject_is_an_error_naming_the_take(tmp_path):
    rows = read_manifest(write(tmp_path / "m.csv", HEADER + "000337,,000001,,,\n"))
    with pytest.raises(MetadataError, match=r"take 000337 .*subject_id is missing"):
        take_metadata("000337", rows)
    with pytest.raises(MetadataError, match=r"take 000999: no metadata"):
        take_metadata("000999", rows)
    with pytest.raises(MetadataError, match=r"take 000999: no metadata .*no manifest CSV"):
        take_metadata("000999", None)


@pytest.mark.parametrize("sentence", ["990001", "2", "X10001"])
def test_unknown_emotion_prefix_is_an_error_naming_the_take(tmp_path, sentence):
    with pytest.raises(MetadataError, match=r"take 000337 .*unknown emotion prefix"):
        take_metadata("000337", None, {"subject_id": "S1", "sentence_id": sentence}, tmp_path / "000337.meta.json")


def test_every_emotion_prefix_is_known():
    names = [
        take_metadata("1", None, {"subject_id": "S", "sentence_id": p + "0001"}).emotion for p in ("00", "21", "22", "23", "24", "25", "26")
    ]
    assert names == ["neutral", "happy", "angry", "sad", "surprise", "fear", "disgust"]


@pytest.mark.parametrize("age", ["abc", "12.5", "-3", "200"])
def test_bad_age_is_rejected(tmp_path, age):
    rows = read_manifest(write(tmp_path / "m.csv", HEADER + f"000337,S1,000001,,,{age}\n"))
    with pytest.raises(MetadataError, match=r"take 000337 .*age"):
        take_metadata("000337", rows)


def test_manifest_structure_errors_name_the_file(tmp_path):
    with pytest.raises(FormatError, match=r"m1.csv: the manifest CSV lacks the column\(s\) age"):
        read_manifest(write(tmp_path / "m1.csv", "take_id,subject_id,sentence_id,text,gender\n1,S,000001,,\n"))
    with pytest.raises(FormatError, match=r"m2.csv, line 3: take 000337 is listed twice"):
        read_manifest(write(tmp_path / "m2.csv", HEADER + "000337,S1,000001,,,\n000337,S2,000001,,,\n"))
    with pytest.raises(FormatError, match=r"m3.csv: cannot read"):
        read_manifest(tmp_path / "m3.csv")


def test_subject_with_slash_is_rejected():
    with pytest.raises(MetadataError, match="must not contain '/'"):
        take_metadata("1", None, {"subject_id": "a/b", "sentence_id": "000001"})


def test_manifest_with_bom_and_extra_columns(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ("note," + HEADER).encode() + b"x,000337,S9,240001,,,7\n")
    meta = take_metadata("000337", read_manifest(path))
    assert (meta.subject_id, meta.emotion, meta.age) == ("S9", "surprise", 7)


def test_meta_json_numbers_are_accepted(tmp_path):
    meta = json.loads('{"subject_id": "S3", "sentence_id": "250002", "age": 33.0, "gender": null}')
    chosen = take_metadata("000001", None, meta)
    assert (chosen.emotion, chosen.age, chosen.gender) == ("fear", 33, None)
