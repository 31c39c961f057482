"""Submission format: writing, and one bad submission per validation rule."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmark import submission as sub
from mmface4d_datasets import codec

N = 30
EXPECTED = {"s1/000001": 6, "s1/000002": 5, "s2/000003": 4}
HEADER = {"model": "test-model", "release_format_version": "1.0", "topology": "synthetic_v1@30", "inputs": ["audio", "template"]}


def _prediction(frames: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(frames, N, 3)) * 0.01).astype(np.float32)


def _good(tmp_path, encoding="codec"):
    path = tmp_path / f"good-{encoding}.parquet"
    sub.write_submission(path, {k: _prediction(t, i) for i, (k, t) in enumerate(EXPECTED.items())}, HEADER, encoding=encoding)
    return path


def _raw_file(path, rows, header=HEADER, schema=None):
    """Write rows (dicts) with pyarrow directly, the way a careless submitter might."""
    schema = schema or pa.schema(
        [
            ("id", pa.string()),
            ("num_frames", pa.int32()),
            ("num_vertices", pa.int32()),
            ("encoding", pa.string()),
            ("vertices", pa.binary()),
        ]
    )
    if header is not None:
        schema = schema.with_metadata({sub.HEADER_KEY: json.dumps(header) if isinstance(header, dict) else header})
    table = pa.Table.from_pylist(rows, schema=schema)
    pq.write_table(table, path, row_group_size=1)
    return path


def _row(sequence_id, array, encoding="float32le", frames=None, vertices=None):
    payload = array.astype("<f4").tobytes() if encoding == "float32le" else codec.encode(array)
    return {
        "id": sequence_id,
        "num_frames": array.shape[0] if frames is None else frames,
        "num_vertices": array.shape[1] if vertices is None else vertices,
        "encoding": encoding,
        "vertices": payload,
    }


def _validate(path, **kwargs):
    return sub.validate_submission(path, EXPECTED, N, topology="synthetic_v1@30", release_format_version="1.0", **kwargs)


def _rules(report):
    return {(issue.id, issue.rule) for issue in report.errors}


def _good_rows(skip=()):
    return [_row(k, _prediction(t, i)) for i, (k, t) in enumerate(EXPECTED.items()) if k not in skip]


@pytest.mark.parametrize("encoding", ["codec", "float32le"])
def test_a_written_submission_validates_and_round_trips(tmp_path, encoding):
    path = _good(tmp_path, encoding)
    report = _validate(path)
    assert report.ok, [str(i) for i in report.issues]
    assert report.checked == 3
    opened = sub.open_submission(path)
    assert opened.header["model"] == "test-model"
    decoded = sub.read_prediction(opened, "s1/000002")
    tolerance = 1e-5 if encoding == "codec" else 0.0
    assert np.abs(decoded - _prediction(5, 1)).max() <= tolerance


def test_writer_leaves_nothing_behind_when_interrupted(tmp_path):
    path = tmp_path / "partial.parquet"
    with pytest.raises(RuntimeError):
        with sub.SubmissionWriter(path, HEADER) as writer:
            writer.add("s1/000001", _prediction(6))
            raise RuntimeError("model crashed")
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_bad_predictions(tmp_path):
    with sub.SubmissionWriter(tmp_path / "x.parquet", HEADER) as writer:
        writer.add("a", _prediction(2))
        with pytest.raises(sub.SubmissionError, match="already written"):
            writer.add("a", _prediction(2))
        bad = _prediction(2)
        bad[0, 0, 0] = np.nan
        with pytest.raises(sub.SubmissionError, match="NaN"):
            writer.add("b", bad)
    with pytest.raises(sub.SubmissionError, match="lacks"):
        sub.SubmissionWriter(tmp_path / "y.parquet", {"model": "m"})


def test_missing_id(tmp_path):
    path = _raw_file(tmp_path / "s.parquet", _good_rows(skip=["s2/000003"]))
    assert _rules(_validate(path)) == {("s2/000003", "missing_id")}


def test_duplicate_id(tmp_path):
    rows = _good_rows() + [_row("s1/000001", _prediction(6, 9))]
    report = _validate(_raw_file(tmp_path / "s.parquet", rows))
    assert _rules(report) == {("s1/000001", "duplicate_id")}


def test_extra_id(tmp_path):
    rows = _good_rows() + [_row("s9/999999", _prediction(3))]
    assert _rules(_validate(_raw_file(tmp_path / "s.parquet", rows))) == {("s9/999999", "extra_id")}


def test_frame_count_off_by_one_is_trimmed_and_reported(tmp_path):
    rows = _good_rows(skip=["s1/000001", "s1/000002"])
    rows += [_row("s1/000001", _prediction(7)), _row("s1/000002", _prediction(4))]
    report = _validate(_raw_file(tmp_path / "s.parquet", rows))
    assert report.ok
    warnings = {(issue.id, issue.rule) for issue in report.issues if issue.severity == "warning"}
    assert warnings == {("s1/000001", "frames_trimmed"), ("s1/000002", "frames_trimmed")}


def test_frame_count_off_by_more_is_rejected(tmp_path):
    rows = _good_rows(skip=["s1/000001"]) + [_row("s1/000001", _prediction(8))]
    assert _rules(_validate(_raw_file(tmp_path / "s.parquet", rows))) == {("s1/000001", "frame_count")}


def test_wrong_vertex_count(tmp_path):
    wrong = np.zeros((6, N - 1, 3), np.float32)
    rows = _good_rows(skip=["s1/000001"]) + [_row("s1/000001", wrong)]
    assert _rules(_validate(_raw_file(tmp_path / "s.parquet", rows))) == {("s1/000001", "vertex_count")}


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_values(tmp_path, value):
    bad = _prediction(4)
    bad[2, 7, 1] = value
    rows = _good_rows(skip=["s2/000003"]) + [_row("s2/000003", bad)]
    assert _rules(_validate(_raw_file(tmp_path / "s.parquet", rows))) == {("s2/000003", "non_finite")}


def test_payload_shorter_than_declared_size(tmp_path):
    rows = _good_rows(skip=["s2/000003"]) + [_row("s2/000003", _prediction(3), frames=4)]
    report = _validate(_raw_file(tmp_path / "s.parquet", rows))
    assert _rules(report) == {("s2/000003", "size_mismatch")}


def test_codec_shape_different_from_declared(tmp_path):
    rows = _good_rows(skip=["s2/000003"]) + [_row("s2/000003", _prediction(5), encoding="codec", frames=4)]
    assert _rules(_validate(_raw_file(tmp_path / "s.parquet", rows))) == {("s2/000003", "size_mismatch")}


def test_payload_larger_than_declared_is_refused_before_reading(tmp_path, monkeypatch):
    huge = np.zeros((400, N, 3), np.float32).tobytes()  # 400 frames behind a row that declares 4
    rows = _good_rows(skip=["s2/000003"]) + [
        {"id": "s2/000003", "num_frames": 4, "num_vertices": N, "encoding": "float32le", "vertices": huge}
    ]
    path = _raw_file(tmp_path / "s.parquet", rows)
    read = []
    original = sub._payload
    monkeypatch.setattr(sub, "_payload", lambda submission, row: read.append(row.id) or original(submission, row))
    report = _validate(path)
    assert _rules(report) == {("s2/000003", "size_mismatch")}
    assert "s2/000003" not in read and len(read) == 2


def test_missing_header(tmp_path):
    report = _validate(_raw_file(tmp_path / "s.parquet", _good_rows(), header=None))
    assert (None, "header_missing") in _rules(report)


def test_header_that_is_not_json_or_lacks_fields(tmp_path):
    assert (None, "header_invalid") in _rules(_validate(_raw_file(tmp_path / "a.parquet", _good_rows(), header="{not json")))
    assert (None, "header_invalid") in _rules(_validate(_raw_file(tmp_path / "b.parquet", _good_rows(), header={"url": "x"})))


def test_header_declaring_inputs_outside_the_protocol(tmp_path):
    header = dict(HEADER, inputs=["audio", "target_vertices"])
    assert (None, "inputs_outside_protocol") in _rules(_validate(_raw_file(tmp_path / "s.parquet", _good_rows(), header=header)))


def test_topology_mismatch(tmp_path):
    header = dict(HEADER, topology="bfm_front")
    assert (None, "topology") in _rules(_validate(_raw_file(tmp_path / "s.parquet", _good_rows(), header=header)))


def test_unknown_encoding(tmp_path):
    rows = _good_rows(skip=["s1/000002"]) + [dict(_row("s1/000002", _prediction(5)), encoding="npy")]
    assert _rules(_validate(_raw_file(tmp_path / "s.parquet", rows))) == {("s1/000002", "unknown_encoding")}


def test_corrupted_codec_bytes(tmp_path):
    row = _row("s1/000002", _prediction(5), encoding="codec")
    payload = bytearray(row["vertices"])
    payload[len(payload) // 2] ^= 0xFF
    rows = _good_rows(skip=["s1/000002"]) + [dict(row, vertices=bytes(payload))]
    assert _rules(_validate(_raw_file(tmp_path / "s.parquet", rows))) == {("s1/000002", "corrupted_payload")}


def test_not_parquet_is_a_report_not_a_traceback(tmp_path):
    path = tmp_path / "s.parquet"
    path.write_bytes(b"\x80\x04\x95 this is a pickle, not parquet")
    report = _validate(path)
    assert _rules(report) == {(None, "unreadable")}
    assert "s.parquet" in report.errors[0].message


def test_wrong_column_types(tmp_path):
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("num_frames", pa.float64()),
            ("num_vertices", pa.int32()),
            ("encoding", pa.string()),
            ("vertices", pa.binary()),
        ]
    )
    rows = [dict(_row("s1/000001", _prediction(6)), num_frames=6.0)]
    report = _validate(_raw_file(tmp_path / "s.parquet", rows, schema=schema))
    assert (None, "schema") in _rules(report)
    assert "num_frames" in next(i.message for i in report.errors if i.rule == "schema")


def test_many_rows_in_one_row_group_are_read(tmp_path):
    rows = _good_rows()
    table = pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("id", pa.string()),
                ("num_frames", pa.int32()),
                ("num_vertices", pa.int32()),
                ("encoding", pa.string()),
                ("vertices", pa.binary()),
            ],
            metadata={sub.HEADER_KEY: json.dumps(HEADER)},
        ),
    )
    path = tmp_path / "one-group.parquet"
    pq.write_table(table, path)
    assert pq.ParquetFile(path).num_row_groups == 1
    report = _validate(path)
    assert report.ok and report.checked == 3


def test_a_damaged_parquet_page_is_a_payload_issue(tmp_path):
    path = tmp_path / "damaged.parquet"
    sub.write_submission(
        path, {k: _prediction(t, i) for i, (k, t) in enumerate(EXPECTED.items())}, HEADER, encoding="float32le"
    )  # float32le pages are zstd-compressed by the writer
    parquet = pq.ParquetFile(path)
    column = parquet.metadata.row_group(1).column(4)  # the vertices of the second sequence
    data = bytearray(path.read_bytes())
    middle = column.data_page_offset + column.total_compressed_size // 2
    data[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(data))
    report = _validate(path)
    assert _rules(report) == {("s1/000002", "corrupted_payload")}
    assert "row group 1" in report.errors[0].message
