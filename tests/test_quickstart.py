"""`mmface4d quickstart`: sections printed, summary.json written, absent inputs skipped with a reason."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mmface4d_datasets.cli import main
from mmface4d_datasets.quickstart import STEPS, QuickstartStep, run_quickstart
from mmface4d_datasets.output_folders import MARKER_NAME


def test_quickstart_on_the_sample_take(tmp_path, official_sample, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--out", str(out), "--sample", str(official_sample), "--only", "sample,decode,export"]) == 0
    printed = capsys.readouterr().out
    for text in (
        "1. The authors' sample take",
        "take id                      000337",
        "frames x vertices            67 x 35709 (2.233 s at 30 fps)",
        "encoded size                 121,842 bytes/frame (raw float32: 428,508 bytes/frame)",
        "35733 samples at 16000 Hz",
        "frame 0 reads back identical yes",
    ):
        assert text in printed
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["steps"]) == ["sample", "decode", "export"]
    decode = summary["steps"]["decode"]
    assert decode["status"] == "ok" and decode["num_frames"] == 67 and decode["num_vertices"] == 35709
    assert decode["audio_samples"] == 35733 and abs(decode["audio_minus_mesh_seconds"]) < 1 / 30
    assert all(lo < hi for lo, hi in zip(decode["bbox_min_m"], decode["bbox_max_m"]))
    assert decode["landmark_shapes"] == {"0": [67, 98, 2], "1": [67, 98, 2], "2": [67, 98, 2]}
    export = summary["steps"]["export"]
    assert export["files"] == 67 and export["first_frame_reads_back_identical"] is True
    assert len(list((out / "official_sample_meshes").glob("frame_*.ply"))) == 67
    assert summary["conditions"]["cpu_count"] >= 1 and summary["total_seconds"] > 0
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != MARKER_NAME]  # no temporaries left


def test_absent_sample_is_skipped_with_where_it_looked(tmp_path):
    lines = []
    summary = run_quickstart(tmp_path / "qs", steps=STEPS[:3], echo=lines.append, sample_dir=tmp_path / "empty")
    steps = summary["steps"]
    assert steps["sample"]["status"] == "skipped"
    assert steps["sample"]["looked_in"] == [str(tmp_path / "empty")]
    assert steps["decode"]["status"] == "skipped" and steps["export"]["status"] == "skipped"
    printed = "\n".join(lines)
    assert f"looked in                    {tmp_path / 'empty'}" in printed
    assert "MMFACE4D_FIXTURES=" in printed and "--fixtures DIR" in printed  # how to point at it
    assert "github.com/wuhaozhe/4d_reconstruction" in printed and "test_data" in printed  # where it comes from
    assert "step took" in printed  # every step says how long it took
    assert json.loads((tmp_path / "qs" / "summary.json").read_text())["steps"] == steps


def test_steps_compose_and_share_state(tmp_path):
    def produce(context):
        context.state["answer"] = 42
        context.line("made", 42)
        return {"status": "ok"}

    def consume(context):
        return {"status": "ok", "seen": context.state["answer"], "earlier": sorted(context.summaries)}

    lines = []
    steps = [QuickstartStep("produce", "Produce", produce), QuickstartStep("consume", "Consume", consume)]
    summary = run_quickstart(tmp_path, steps=steps, echo=lines.append)
    assert summary["steps"]["consume"]["seen"] == 42
    assert summary["steps"]["consume"]["earlier"] == ["produce"]
    assert "\n1. Produce" in lines and "\n2. Consume" in lines
    assert any(line.strip().startswith("made") and line.strip().endswith("42") for line in lines)


def test_failing_step_stops_the_run_without_a_summary(tmp_path):
    def broken(context):
        raise RuntimeError("step failed")

    with pytest.raises(RuntimeError, match="step failed"):
        run_quickstart(tmp_path, steps=[QuickstartStep("broken", "Broken", broken)], echo=lambda _: None)
    assert not (tmp_path / "summary.json").exists()


def test_help_is_light_and_true():
    code = (
        "import sys, json, argparse; from mmface4d_datasets import quickstart, export;"
        "p = argparse.ArgumentParser(); s = p.add_subparsers(); quickstart.register(s); export.register(s);"
        "print(json.dumps([m for m in ('numpy', 'torch', 'trimesh', 'av') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
    help_text = subprocess.run([sys.executable, "-m", "mmface4d_datasets", "quickstart", "--help"], capture_output=True, text=True).stdout
    assert "--out DIR" in help_text and "summary.json" in help_text


def test_unknown_step_name_is_refused(tmp_path, capsys):
    assert main(["quickstart", "--out", str(tmp_path), "--only", "sample,nonsense"]) == 2
    assert "unknown step(s) ['nonsense']" in capsys.readouterr().err


def test_mini_release_step_builds_validates_and_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("MMFACE4D_CACHE", str(tmp_path / "cache"))
    lines = []
    summary = run_quickstart(tmp_path / "qs", steps=[s for s in STEPS if s.name == "mini"], echo=lines.append)
    mini = summary["steps"]["mini"]
    assert mini["status"] == "ok" and mini["problems"] == [] and mini["reused"] is False
    assert mini["subjects"]["train"] >= 1 and mini["subjects"]["test"] >= 1
    assert mini["first_vertices_shape"][1:] == [1000, 3]
    assert any("subjects disjoint" in line and line.rstrip().endswith("True") for line in lines)


def test_the_cores_quickstart_has_no_benchmark_option(monkeypatch):
    """Only installed steps register options: with the core's steps alone there is no --train-seconds."""
    import argparse
    from pathlib import Path

    import mmface4d_datasets.quickstart as quickstart

    monkeypatch.setattr(quickstart, "all_steps", lambda: list(STEPS))
    parser = argparse.ArgumentParser(prog="mmface4d")
    quickstart.register(parser.add_subparsers())
    with pytest.raises(SystemExit):
        parser.parse_args(["quickstart", "--train-seconds", "8"])
    assert "train_seconds" not in Path(quickstart.__file__).read_text(encoding="utf-8")


def test_a_step_registers_its_own_option_and_reads_it_from_the_context(tmp_path, monkeypatch, capsys):
    import mmface4d_datasets.quickstart as quickstart

    def add_arguments(group):
        group.add_argument("--answer", type=int, default=7)

    def answer(context):
        context.line("answer", context.options.get("answer"))
        return {"status": "ok", "answer": context.options.get("answer")}

    step = QuickstartStep("answer", "Answer", answer, add_arguments=add_arguments)
    monkeypatch.setattr(quickstart, "all_steps", lambda: [step])
    assert main(["quickstart", "--out", str(tmp_path / "qs"), "--answer", "42"]) == 0
    assert json.loads((tmp_path / "qs" / "summary.json").read_text())["steps"]["answer"]["answer"] == 42
    assert "answer" in capsys.readouterr().out  # the command prints the sections on stdout
    assert run_quickstart(tmp_path / "qs", steps=[step], echo=lambda _: None)["steps"]["answer"]["answer"] is None


def test_the_benchmark_registers_train_seconds():
    help_text = subprocess.run([sys.executable, "-m", "mmface4d_datasets", "quickstart", "--help"], capture_output=True, text=True).stdout
    assert "options of the 'train' step" in help_text and "--train-seconds S" in help_text
