"""`mmface4d bench leaderboard` checks what it ranks: re-scored numbers, consistent reports, one release per table."""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import shutil

import numpy as np
import pytest

from benchmark.leaderboard import build_leaderboard, render_markdown
from benchmark.protocol import write_predictions
from benchmark import report as report_module
from mmface4d_datasets.cli import main
from mmface4d_datasets.release.reader import Release
from mmface4d_datasets.release.writer import write_release
from test_release_support import make_topology, small_sources


class OffsetModel:
    """The template plus a fixed offset (a deterministic, imperfect model)."""

    def __init__(self, offset, name="offset"):
        self.offset = np.float32(offset)
        self.name = name

    def predict(self, inputs):
        return np.broadcast_to(inputs.template + self.offset, (inputs.num_frames, *inputs.template.shape)).copy()


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A release, two submissions of it scored by `bench score`, and their reports."""
    root = tmp_path_factory.mktemp("leaderboard")
    release_dir = root / "release"
    write_release(small_sources(4, 3, frames=12), release_dir, topology=make_topology(), progress=False)
    release = Release(release_dir)
    reports = {}
    for name, offset in (("near", 0.001), ("far", 0.003)):
        submission = write_predictions(OffsetModel(offset, name), release, root / f"{name}.parquet", encoding="float32le")
        report_path = root / f"{name}.report.json"
        assert (
            main(["bench", "score", str(submission), "--data", str(release_dir), "--out", str(report_path), "--bootstrap", "50", "--quiet"])
            == 0
        )
        reports[name] = report_path
    return release_dir, reports


def edited(tmp_path, source, change, name="edited.json"):
    report = json.loads(source.read_text())
    change(report)
    path = tmp_path / name
    path.write_text(json.dumps(report))
    return path


def test_a_report_records_what_is_needed_to_check_it(scored):
    release_dir, reports = scored
    report = json.loads(reports["near"].read_text())
    submission = report["submission"]
    assert len(submission["sha256"]) == 64 and submission["path"].endswith("near.parquet")
    release = report["release"]
    for key in ("format_version", "splits_version", "codec_version", "topology", "topology_hash", "num_vertices"):
        assert release[key] is not None, key
    assert len(release["content_hash"]) == 64
    assert report["package_version"] and report["scoring"]["headline_convention"] == "authors"
    assert len(report["sequences"]) == report["num_sequences"] > 0


def test_leaderboard_with_data_rescores_and_accepts_honest_reports(scored, capsys):
    release_dir, reports = scored
    code, out, err = run(capsys, "bench", "leaderboard", reports["far"], reports["near"], "--data", release_dir)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[2].startswith("| 1 | near |") and "| re-scored |" in lines[2]
    assert "re-scored from its submission" in err


def test_an_edited_report_is_refused_by_the_rescore(scored, tmp_path, capsys):
    release_dir, reports = scored

    def divide(report):  # every headline metric and every per-sequence error divided by ten: self-consistent
        for entry in report["metrics"]["authors"]["values"].values():
            entry["value"] /= 10
        for row in report["sequences"]:
            for name in ("lip_max", "lip_mean", "upper_max", "face_max"):
                row[name] /= 10

    path = edited(tmp_path, reports["far"], divide)
    code, out, err = run(capsys, "bench", "leaderboard", path, "--data", release_dir)
    assert code == 2 and "Traceback" not in err
    assert "edited.json" in err and "metrics.authors.values.lip_max.value" in err and "re-score" in err
    # without --data the same report is consistent with itself: ranked, but marked unverified
    code, out, err = run(capsys, "bench", "leaderboard", path, "--csv", tmp_path / "board.csv")
    assert code == 0 and "| unverified |" in out
    rows = list(csv.DictReader(io.StringIO((tmp_path / "board.csv").read_text())))
    assert rows[0]["checked"] == "unverified"


def test_a_swapped_submission_file_is_refused_by_its_hash(scored, tmp_path, capsys):
    release_dir, reports = scored
    report = json.loads(reports["near"].read_text())
    folder = tmp_path / "subs"
    folder.mkdir()
    # the far model's file under the near model's name
    shutil.copy(json.loads(reports["far"].read_text())["submission"]["path"], folder / "near.parquet")
    code, _, err = run(capsys, "bench", "leaderboard", reports["near"], "--data", release_dir, "--submissions", folder)
    assert code == 2 and "submission.sha256" in err and str(reports["near"]) in err
    shutil.copy(report["submission"]["path"], folder / "near.parquet")
    code, _, err = run(capsys, "bench", "leaderboard", reports["near"], "--data", release_dir, "--submissions", folder)
    assert code == 0, err


def test_a_report_of_another_release_is_refused_against_this_one(scored, tmp_path, capsys):
    release_dir, reports = scored
    path = edited(tmp_path, reports["near"], lambda r: r["release"].update(num_vertices=35709))
    code, _, err = run(capsys, "bench", "leaderboard", path, "--data", release_dir)
    assert code == 2 and "release.num_vertices" in err


def test_headline_numbers_that_disagree_with_their_own_sequences_are_refused(scored, tmp_path, capsys):
    _, reports = scored

    def headline_only(report):
        report["metrics"]["authors"]["values"]["lip_max"]["value"] /= 10

    code, _, err = run(capsys, "bench", "leaderboard", edited(tmp_path, reports["near"], headline_only))
    assert code == 2 and "metrics.authors.values.lip_max.value" in err and "per-sequence" in err
    code, _, err = run(
        capsys, "bench", "leaderboard", edited(tmp_path, reports["near"], lambda r: r.update(num_sequences=400), "count.json")
    )
    assert code == 2 and "num_sequences" in err and "count.json" in err


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda r: r["metrics"]["authors"]["values"]["lip_max"].update(value=-0.001), "lip_max.value"),
        (lambda r: r["metrics"]["authors"]["values"]["face_max"].update(value=float("inf")), "face_max.value"),
        (lambda r: r["sequences"][0].update(upper_max=float("nan")), "upper_max"),
        (lambda r: r.pop("metrics"), "'metrics"),
        (lambda r: r.update(num_sequences="7"), "num_sequences"),
        (lambda r: r.update(model=["a"]), "model"),
        (lambda r: r["sequences"][0].pop("lip_mean"), "lip_mean"),
    ],
)
def test_missing_mistyped_negative_or_non_finite_fields_are_named(scored, tmp_path, capsys, change, field):
    _, reports = scored
    path = tmp_path / "bad.json"
    report = json.loads(reports["near"].read_text())
    change(report)
    path.write_text(json.dumps(report))  # Python writes NaN/Infinity, as a hand edit could
    code, out, err = run(capsys, "bench", "leaderboard", path)
    assert code == 2 and "Traceback" not in err
    assert "bad.json" in err and field in err


def test_a_deeply_nested_report_file_is_a_named_error(tmp_path, capsys):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    code, _, err = run(capsys, "bench", "leaderboard", path)
    assert code == 2 and "deep.json" in err and "nested too deeply" in err


def test_reports_of_different_releases_get_separate_tables(scored, tmp_path):
    _, reports = scored
    near = json.loads(reports["near"].read_text())
    other = copy.deepcopy(near)
    other["release"]["num_vertices"] = 35709
    other["release"]["content_hash"] = "0" * 64
    other["model"] = "other-release"
    ranked, references = build_leaderboard([near, other], sources=["a.json", "b.json"], include_paper=False)
    table = render_markdown(ranked, references)
    assert table.count("### Release") == 2 and table.count("| 1 |") == 2 and "| 2 |" not in table
    assert "never against the others" in table


def test_text_fields_cannot_inject_rows_or_links(scored, tmp_path, capsys):
    _, reports = scored
    evil = "x | 0.000 | 0.000 | 0.000 | 0.000 |\n| 1 | [winner](http://evil.example) <b>"
    path = edited(tmp_path, reports["near"], lambda r: r.update(model=evil))
    code, out, err = run(capsys, "bench", "leaderboard", path, "--no-paper")
    assert code == 0, err
    table_rows = [line for line in out.splitlines() if line.startswith("|")]
    assert len(table_rows) == 3  # header, rule, one row: nothing injected
    assert re.search(r"(?<!\\)\]\(", out) is None and "<b>" not in out  # no link, no HTML
    assert "x \\| 0.000" in out and "\\[winner\\]" in out
    report = json.loads(path.read_text())
    text = report_module.render_markdown(report)
    assert text.splitlines()[0].startswith("# MMFace4D benchmark: x \\| 0.000") and "<b>" not in text


def test_compare_without_shared_sequences_says_so(scored, tmp_path, capsys):
    release_dir, reports = scored

    def rename(report):
        for row in report["sequences"]:
            row["id"] = "elsewhere/" + row["id"]

    other = edited(tmp_path, reports["far"], rename, "other.json")
    comparison = report_module.compare_reports(json.loads(reports["near"].read_text()), json.loads(other.read_text()))
    assert comparison["num_shared"] == 0 and comparison["values"] == {}
    submission = json.loads(reports["near"].read_text())["submission"]["path"]
    code, out, err = run(
        capsys,
        "bench",
        "score",
        submission,
        "--data",
        release_dir,
        "--out",
        tmp_path / "c.json",
        "--bootstrap",
        "20",
        "--quiet",
        "--compare",
        other,
    )
    assert code == 0, err
    assert "no shared sequences" in err and "No shared sequences" in out
    assert "no significant difference" not in out


def test_a_prediction_of_1e20_metres_fails_with_its_id(scored, tmp_path, capsys):
    release_dir, _ = scored
    release = Release(release_dir)
    ids = sorted(str(r["id"]) for r in release.sequences("test").to_dict("records"))

    class Huge(OffsetModel):
        def predict(self, inputs):
            out = super().predict(inputs)
            if inputs.id == ids[0]:
                out[:] = 1e20
            return out

    submission = write_predictions(Huge(0.001), release, tmp_path / "huge.parquet", encoding="float32le")
    code, out, err = run(
        capsys, "bench", "score", submission, "--data", release_dir, "--out", tmp_path / "huge.json", "--bootstrap", "20", "--quiet"
    )
    assert code == 1
    assert not (tmp_path / "huge.json").exists() and not (tmp_path / "huge.md").exists()  # a rejected file writes no report
    assert ids[0] in err and "non_finite_score" in err


def test_leaderboard_library_refuses_an_unscored_report():
    with pytest.raises(report_module.ReportError, match="not scored"):
        build_leaderboard([{"ok": False, "model": "broken"}])


def test_the_leaderboard_bounds_what_it_reads_and_escapes_control_characters(scored, tmp_path, capsys, monkeypatch):
    """Issue 24: a report far larger than any report (a repeated `sequences` list) is refused before it is read;
    a name holding a newline or an escape sequence is printed escaped, never raw."""
    _, reports = scored
    monkeypatch.setattr(report_module, "MAX_REPORT_BYTES", 4096)
    big = tmp_path / "big.json"
    big.write_text(reports["near"].read_text() + " " * 8192)
    code, _, err = run(capsys, "bench", "leaderboard", big)
    assert code == 2 and "big.json" in err and "more than a report can be" in err
    monkeypatch.setattr(report_module, "MAX_REPORT_BYTES", 64 << 20)
    monkeypatch.setattr(report_module, "MAX_REPORT_SEQUENCES", 1)
    code, _, err = run(capsys, "bench", "leaderboard", reports["near"])
    assert code == 2 and "at most 1" in err
    monkeypatch.setattr(report_module, "MAX_REPORT_SEQUENCES", 100_000)
    path = edited(tmp_path, reports["near"], lambda r: r.update(model="mine\n\x1b[31mred"))
    code, out, err = run(capsys, "bench", "leaderboard", path, "--no-paper")
    assert code == 0, err
    assert "\x1b" not in out and "mine\n" not in out and "x1b" in out  # escaped (and markdown-escaped)
