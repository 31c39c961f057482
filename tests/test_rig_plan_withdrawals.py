"""Session plans (main environment) and the withdrawal list honoured by `mmface4d build release`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from builders.build import REPORT_NAME, build_release
from capture_rig import consent
from capture_rig.errors import ConsentError
from capture_rig.plan import make_plan
from capture_rig.recorder.prompter import read_plan
from mmface4d_datasets.errors import MMFace4DError
from test_builders_support import small_take


def test_plan_is_balanced_deterministic_and_readable(tmp_path):
    plan = make_plan("A017", first_take=1700)
    items = plan["items"]
    assert len(items) == 100 and items[0]["take_id"] == "001700" and items[-1]["take_id"] == "001799"
    counts = {}
    for item in items:
        counts[item["emotion"]] = counts.get(item["emotion"], 0) + 1
        assert {"00": "neutral", "21": "happy", "22": "angry", "23": "sad", "24": "surprise", "25": "fear", "26": "disgust"}[
            item["sentence_id"][:2]
        ] == item["emotion"]
    assert len(counts) == 7 and max(counts.values()) - min(counts.values()) <= 1
    assert make_plan("A017", first_take=1700) == plan and make_plan("A018", first_take=1700) != plan
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmface4d_datasets",
            "rig",
            "plan",
            "--actor",
            "A017",
            "--first-take",
            "1700",
            "--out",
            str(tmp_path / "plan.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert read_plan(tmp_path / "plan.json")["items"] == items
    with pytest.raises(MMFace4DError, match="six digits"):
        make_plan("A017", first_take=999_950)


def test_withdrawn_actor_is_left_out_of_a_build_and_counted(tmp_path):
    src = tmp_path / "src"
    small_take(src, "000001", subject="S1")
    small_take(src, "000002", subject="S2", sentence="210001", seed=2)
    small_take(src, "000003", subject="S2", sentence="220001", seed=3)
    registry = tmp_path / "registry"
    consent.withdraw(registry, "S2", "2026-11-30", "asked to be removed")
    summary = build_release(src, tmp_path / "out", withdrawals=registry / "withdrawals.json", progress=False)
    assert summary.sequences == ["S1/000001"] and summary.withdrawn == ["000002", "000003"]
    assert json.loads((tmp_path / "out" / REPORT_NAME).read_text())["withdrawn"] == ["000002", "000003"]
    # through the command line: the count is reported
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmface4d_datasets",
            "build",
            "release",
            str(src),
            "--out",
            str(tmp_path / "cli"),
            "--withdrawals",
            str(registry),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "2 take(s) of withdrawn actors left out" in out.stderr
    assert json.loads(out.stdout)["sequences"] == ["S1/000001"]
    # a withdrawal list named but missing is an error, not an empty list
    with pytest.raises(ConsentError, match="withdrawal list not found"):
        build_release(src, tmp_path / "x", withdrawals=tmp_path / "nope.json", progress=False)


@pytest.mark.parametrize(
    "args, expected",
    [
        ((), ["convert", "plan", "consent", "record"]),
        (("convert",), ["--take", "--session", "--audio", "--take-log", "--camera-ids", "--crf"]),
        (("plan",), ["--actor", "--first-take", "--sentences"]),
        (("consent",), ["--registry", "--scope", "withdraw"]),
        (("record",), ["--session", "--plan", "--registry", "--serials", "--simulate"]),
    ],
)
def test_help_of_every_rig_subcommand(args, expected, capsys):
    from mmface4d_datasets.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["rig", *args, "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    for word in expected:
        assert word in out


def test_record_outside_the_recording_environment_says_where_to_run(tmp_path, capsys):
    from mmface4d_datasets.cli import main

    plan = tmp_path / "plan.json"
    from capture_rig.plan import write_plan

    write_plan(plan, make_plan("A1", first_take=1, sentences=3))
    consent.record_consent(tmp_path / "reg", "A1", "2026-11-30", ["research_release"])
    pytest.importorskip("numpy")
    try:
        import pyk4a  # noqa: F401

        pytest.skip("pyk4a is importable here")
    except ImportError:
        pass
    code = main(["rig", "record", "--session", str(tmp_path / "s"), "--plan", str(plan), "--registry", str(tmp_path / "reg")])
    assert code == 2 and "setup-rig.sh" in capsys.readouterr().err
