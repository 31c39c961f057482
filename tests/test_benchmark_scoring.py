"""Protocol, scoring, reports and leaderboard on a small release built by the core's writer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmark import metrics
from benchmark.leaderboard import PAPER_SOURCE, build_leaderboard, render_csv, render_markdown
from benchmark.models import UnknownModelError, available_models, load_model
from benchmark.protocol import (
    AnimationModel,
    PredictionError,
    ProtocolInputs,
    check_prediction,
    iter_protocol_inputs,
    write_predictions,
)
from benchmark.report import (
    bootstrap_ratios,
    compare_reports,
    load_report,
    percentile_interval,
    render_markdown as render_report,
    write_report,
)
from benchmark.scoring import score_submission
from benchmark.submission import make_header, write_submission
from mmface4d_datasets.errors import FormatError, MMFace4DError
from mmface4d_datasets.release.reader import Release
from mmface4d_datasets.release.writer import write_release
from test_release_support import make_topology, small_sources


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Release:
    """Five subjects with three takes each; the split rule puts at least one subject in test."""
    out = tmp_path_factory.mktemp("bench-release") / "release"
    write_release(small_sources(5, 3, frames=15), out, topology=make_topology(), progress=False)
    release = Release(out)
    assert len(release.sequences("test")) >= 2
    return release


def _ground_truth(release):
    return {record["id"]: record for record in release.iter_records("test")}


def _header(release, model="test"):
    return make_header(model, release_format_version=release.info["format_version"], topology=release.info["topology"])


class SpyModel:
    """Records what it is given and predicts the template plus a fixed offset."""

    name = "spy"

    def __init__(self, offset=0.0):
        self.seen: list[ProtocolInputs] = []
        self.offset = np.float32(offset)

    def predict(self, inputs: ProtocolInputs) -> np.ndarray:
        self.seen.append(inputs)
        return np.broadcast_to(inputs.template + self.offset, (inputs.num_frames, *inputs.template.shape)).copy()


def test_protocol_inputs_carry_the_frozen_style_reference_never_the_target(release):
    truth = _ground_truth(release)
    templates = release.templates()
    inputs_by_id = {inputs.id: inputs for inputs in iter_protocol_inputs(release, "test")}
    assert set(inputs_by_id) == set(truth)
    for sequence_id, inputs in inputs_by_id.items():
        record = truth[sequence_id]
        assert inputs.style_reference_id == release.splits["style_reference"][sequence_id] != sequence_id
        style = release.record(inputs.style_reference_id)
        assert style["subject_id"] == record["subject_id"] == inputs.subject_id
        assert np.array_equal(inputs.style_vertices, style["vertices"])
        assert np.array_equal(inputs.style_audio, style["audio"]["array"])
        assert np.array_equal(inputs.template, templates[record["subject_id"]])
        assert np.array_equal(inputs.audio, record["audio"]["array"]) and inputs.sample_rate == 16000
        assert inputs.num_frames == record["num_frames"] and inputs.num_vertices == record["num_vertices"]
        assert inputs.emotion in ("neutral", "happy", "angry", "sad", "surprise", "fear", "disgust")
        # nothing in the inputs equals the target's vertices
        for value in vars(inputs).values():
            if isinstance(value, np.ndarray) and value.shape == record["vertices"].shape:
                assert not np.array_equal(value, record["vertices"])


def test_check_prediction_refuses_wrong_shapes_and_nan(release):
    inputs = next(iter_protocol_inputs(release, "test"))
    good = np.zeros((inputs.num_frames, inputs.num_vertices, 3))
    assert check_prediction(inputs, good).dtype == np.float32
    with pytest.raises(PredictionError, match="shape"):
        check_prediction(inputs, good[1:])
    good[0, 0, 0] = np.nan
    with pytest.raises(PredictionError, match="non-finite"):
        check_prediction(inputs, good)


def test_registry_loads_static_and_names_unknown_models():
    model = load_model("static")
    assert isinstance(model, AnimationModel) and model.name == "static"
    assert {"static", "mmface4d", "faceformer", "faceformer-cached"} <= set(available_models())
    with pytest.raises(UnknownModelError, match="available"):
        load_model("no-such-model")
    with pytest.raises(MMFace4DError, match="no checkpoint"):
        load_model("static", checkpoint="somewhere")


def test_static_end_to_end_equals_the_metrics_of_the_template(release, tmp_path):
    path = write_predictions(load_model("static"), release, tmp_path / "static.parquet")
    result = score_submission(path, release, conventions=("authors", "codetalker"), bootstrap_samples=200)
    assert result.validation.ok and result.report is not None
    report = result.report
    masks, templates = release.region_masks(), release.templates()
    expected = []
    for record in release.iter_records("test"):
        template = np.broadcast_to(templates[record["subject_id"]], record["vertices"].shape)
        expected.append(metrics.sequence_errors(record["vertices"], template, masks["lips"], masks["upper_face"]))
    values = report["metrics"]["authors"]["values"]
    for name in metrics.METRIC_NAMES:
        mean = np.mean([e[name] for e in expected])
        # the codec stores the template within its 10 um bound per coordinate
        assert values[name]["value"] == pytest.approx(mean, abs=2e-5)
        assert values[name]["value_scaled"] == pytest.approx(values[name]["value"] * 1e3)
    assert report["submission"]["header"]["inputs"] == ["template"]
    assert report["release"]["format_version"] == release.info["format_version"]
    assert report["release"]["splits_version"] == release.splits["version"]
    assert report["release"]["codec_version"] and report["release"]["region_rule_version"] == "test-grid"
    assert "codetalker" in report["metrics"] and report["metrics"]["codetalker"]["unit"] == "m^2"
    assert sum(e["num_sequences"] for e in report["breakdowns"]["emotion"].values()) == report["num_sequences"]


def test_ground_truth_as_submission_scores_zero(release, tmp_path):
    truth = _ground_truth(release)
    path = write_submission(tmp_path / "gt.parquet", {k: r["vertices"] for k, r in truth.items()}, _header(release), encoding="float32le")
    report = score_submission(path, release, bootstrap_samples=50).report
    assert all(entry["value"] == 0.0 for entry in report["metrics"]["authors"]["values"].values())


def test_an_off_by_one_submission_is_trimmed_and_reported(release, tmp_path):
    truth = _ground_truth(release)
    first = sorted(truth)[0]
    predictions = {k: r["vertices"] for k, r in truth.items()}
    predictions[first] = np.concatenate([predictions[first], predictions[first][-1:]])
    path = write_submission(tmp_path / "long.parquet", predictions, _header(release), encoding="float32le")
    report = score_submission(path, release, bootstrap_samples=50).report
    assert report["trimmed"] == {first: 1}
    assert any(n["rule"] == "frames_trimmed" and n["id"] == first for n in report["notices"])
    assert report["metrics"]["authors"]["values"]["lip_max"]["value"] == 0.0


def test_a_bad_submission_is_reported_not_scored(release, tmp_path):
    truth = _ground_truth(release)
    ids = sorted(truth)
    predictions = {k: truth[k]["vertices"] for k in ids[1:]}
    predictions["nobody/000000"] = truth[ids[1]]["vertices"]
    path = write_submission(tmp_path / "bad.parquet", predictions, _header(release))
    result = score_submission(path, release)
    assert result.report is None
    assert {(i.id, i.rule) for i in result.validation.errors} == {(ids[0], "missing_id"), ("nobody/000000", "extra_id")}


def test_bootstrap_is_seeded_and_brackets_the_mean():
    values = np.random.default_rng(0).normal(1.0, 0.1, 200)
    first = bootstrap_ratios([values], [None], samples=500, seed=7)
    assert np.array_equal(first, bootstrap_ratios([values], [None], samples=500, seed=7))
    assert not np.array_equal(first, bootstrap_ratios([values], [None], samples=500, seed=8))
    low, high = percentile_interval(first[:, 0])
    assert low < values.mean() < high
    # the standard error of a mean of 200 draws with sd 0.1 is about 0.007: the 95% interval is about +-0.014
    assert 0.02 < high - low < 0.04
    constant = bootstrap_ratios([np.full(5, 2.0)], [np.full(5, 4.0)], samples=50)
    assert np.all(constant == 0.5)


def _scored(release, tmp_path, name, offset):
    path = write_predictions(SpyModel(offset), release, tmp_path / f"{name}.parquet", encoding="float32le")
    report = score_submission(path, release, bootstrap_samples=300).report
    report["model"] = name
    return report


def test_paired_comparison_finds_the_better_model(release, tmp_path):
    near = _scored(release, tmp_path, "near", 0.0)
    far = _scored(release, tmp_path, "far", 0.004)
    comparison = compare_reports(near, far)
    assert comparison["num_shared"] == near["num_sequences"]
    lip = comparison["values"]["lip_max"]
    assert lip["difference"] < 0 and lip["ci"][1] < 0 and lip["verdict"] == "this is better"
    assert compare_reports(far, near)["values"]["lip_max"]["verdict"] == "other is better"
    same = compare_reports(near, near)["values"]["face_max"]
    assert same["difference"] == 0.0 and same["verdict"] == "no significant difference"
    near["comparisons"].append(comparison)
    json_path, markdown_path = tmp_path / "near.json", tmp_path / "near.md"
    write_report(near, json_path, markdown_path)
    loaded = load_report(json_path)
    assert loaded["metrics"] == json.loads(json.dumps(near["metrics"]))
    text = markdown_path.read_text()
    assert "Paired comparison against far" in text and "| lip_max |" in text and "95% CI" in text
    assert text == render_report(loaded)


def test_load_report_names_a_file_that_is_not_a_report(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"kind": "something else"}')
    with pytest.raises(FormatError, match="x.json"):
        load_report(path)


def test_leaderboard_sorts_by_lip_max_and_marks_the_paper_rows(release, tmp_path):
    near = _scored(release, tmp_path, "near", 0.001)
    far = _scored(release, tmp_path, "far", 0.004)
    ranked, references = build_leaderboard([far, near])
    assert [entry.model for entry in ranked] == ["near", "far"]
    assert [entry.source for entry in references] == [PAPER_SOURCE] * 3
    assert references[2].values["lip_max"] == 0.00152
    table = render_markdown(ranked, references)
    lines = table.splitlines()
    assert lines[2].startswith("| 1 | near |") and lines[3].startswith("| 2 | far |")
    assert sum(PAPER_SOURCE in line for line in lines) == 3
    assert render_csv(ranked, []).splitlines()[1].startswith("1,near,")
    with pytest.raises(ValueError, match="not scored"):
        build_leaderboard([{"ok": False, "model": "broken"}])
