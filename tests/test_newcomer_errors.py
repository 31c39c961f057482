"""What a person trying the project meets first: one name for a release everywhere, errors that name
the right path or choice and write nothing, no silent replacement, messages on their own lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmface4d_datasets.cli import main
from mmface4d_datasets.errors import MMFace4DError


def _files(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def run(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mmface4d_datasets", *map(str, args)], capture_output=True, text=True, timeout=300, env=env, cwd=cwd
    )


# ------------------------------------------------------------------------------ one resolver


def test_validate_names_the_path_the_user_gave(tmp_path, capsys):
    missing = tmp_path / "nonexistent" / "release"
    assert main(["validate", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: no such release folder" in err and ".: does not exist" not in err
    assert not (tmp_path / "nonexistent").exists()  # nothing was made on the way


def test_a_folder_that_is_no_release_is_named_by_every_command(tmp_path, capsys):
    folder = tmp_path / "not-a-release"
    folder.mkdir()
    for argv in (
        ["bench", "run", "--model", "static", "--data", str(folder), "--out", str(tmp_path / "run")],
        ["stats", str(folder), "--out", str(tmp_path / "stats")],
        ["render", "--data", str(folder), "--id", "x/y", "--out", str(tmp_path / "x.mp4")],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"{folder}: not a release folder (it has no meta/info.json)" in err, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-release"]  # no output folder was made


def test_mini_is_the_same_release_for_the_loader_and_the_commands(mini_release, monkeypatch, tmp_path, capsys):
    from mmface4d_datasets.loading import load_dataset
    from mmface4d_datasets.release.resolve import resolve_release

    folder, home = mini_release
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("MMFACE4D_CACHE", raising=False)
    lines = []
    assert resolve_release("mini", announce=lines.append) == folder
    assert str(folder) in lines[0]  # its path is said
    assert resolve_release(folder.name) == folder  # the cached build by its name
    assert load_dataset("mini", split="test").num_rows == load_dataset("mmface4d", name="mini", split="test").num_rows
    assert main(["validate", "mini"]) == 0
    assert "mini: valid" in capsys.readouterr().out


def test_an_unknown_name_lists_the_forms(tmp_path, monkeypatch):
    from mmface4d_datasets.release.resolve import ReleaseNotFoundError, resolve_release

    monkeypatch.setenv("MMFACE4D_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ReleaseNotFoundError, match=r"^relase\.v2: no such release folder .*`mini`.*Hub"):
        resolve_release("relase.v2")


def test_offline_hub_load_prints_one_error_without_the_chain(tmp_path):
    code = "from mmface4d_datasets import load_dataset; load_dataset('mmface4d', split='train')"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMFACE4D_")}
    env |= {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1
    assert "During handling of the above exception" not in done.stderr and "direct cause" not in done.stderr
    assert done.stderr.count("Traceback") == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("mmface4d_datasets.release.resolve.DatasetNotAvailableError") and "name='mini'" in last


def test_hub_name_of_the_commands_fails_offline_with_the_ways_out(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert main(["validate", "someone/faces"]) == 2
    err = capsys.readouterr().err
    assert "someone/faces: no such release folder here, and as a Hub dataset name" in err and "--data mini" in err
    assert "Traceback" not in err


# ------------------------------------------------------------------------------ choices and interrupts


def test_misspelled_commands_and_choices_get_a_suggestion(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["valdate", "x"])
    assert exited.value.code == 2 and "did you mean 'validate'?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "leaderbord"])
    assert "did you mean 'leaderboard'?" in capsys.readouterr().err
    with pytest.raises(MMFace4DError, match="did you mean 'static'"):
        from benchmark.models import load_model

        load_model("statc")


def test_ctrl_c_says_so_on_a_line_of_its_own(monkeypatch, capsys, tmp_path):
    import mmface4d_datasets.quickstart as quickstart

    def interrupted(*args, **kwargs):
        sys.stderr.write("mini: 40%|####      | 4/10")  # a progress bar's line, no newline yet
        raise KeyboardInterrupt

    monkeypatch.setattr(quickstart, "run_quickstart", interrupted)
    assert main(["quickstart", "--out", str(tmp_path / "q")]) == 130
    assert capsys.readouterr().err.endswith("4/10\nmmface4d: interrupted\n")


# ------------------------------------------------------------------------------ no silent replacement


SYNTH = ("build", "synthetic", "--subjects", "2", "--sentences", "2", "--vertices", "500", "--quiet")


@pytest.fixture(scope="module")
def synthetic_release(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("no-silent-replacement") / "R"
    done = run(*SYNTH, "--out", out)
    assert done.returncode == 0, done.stderr
    return out


def test_build_over_a_release_of_other_parameters_is_refused(synthetic_release):
    before = _files(synthetic_release)
    done = run(*SYNTH[:3], "3", *SYNTH[4:], "--out", synthetic_release)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{synthetic_release}: holds a release built with other parameters (subjects: 2 then, 3 now)" in done.stderr
    assert "--overwrite" in done.stderr
    assert _files(synthetic_release) == before  # nothing was touched


def test_a_rerun_with_the_same_parameters_still_goes_on(synthetic_release):
    info = (synthetic_release / "meta" / "info.json").read_bytes()
    done = run(*SYNTH, "--out", synthetic_release)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["num_sequences"] == 4 and (synthetic_release / "meta" / "info.json").read_bytes() == info


def test_out_inside_another_release_is_refused(synthetic_release):
    inner = synthetic_release / "data" / "more"
    done = run(*SYNTH, "--out", inner)
    assert done.returncode == 2 and f"--out {inner} is inside the release {synthetic_release}" in done.stderr
    assert not inner.exists()
    assert main(["validate", str(synthetic_release)]) == 0  # no stray files


def test_export_takes_a_release_name_too(mini_release, monkeypatch, tmp_path, capsys):
    import trimesh

    from mmface4d_datasets.release.reader import Release

    folder, home = mini_release
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("MMFACE4D_CACHE", raising=False)
    release = Release(folder)
    sequence_id = release.sequences("test")["id"][0]
    assert main(["export", "--data", "mini", "--id", sequence_id, "--frames", "0:2", "--out", str(tmp_path / "ply")]) == 0
    assert "wrote 2 PLY files" in capsys.readouterr().out
    mesh = trimesh.load(tmp_path / "ply" / "frame_00001.ply", process=False)
    assert (mesh.vertices == release.record(sequence_id)["vertices"][1]).all() and len(mesh.faces) == len(release.topology["triangles"])
    assert main(["export", "--out", str(tmp_path / "none")]) == 2
    assert (
        "give PREFIX (with --num-vertices and --faces), faceformer RELEASE, or --data RELEASE --id ID" in capsys.readouterr().err
        and not (tmp_path / "none").exists()
    )
