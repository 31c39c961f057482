"""The FaceFormer layout: export, read back as their loaders read it, their results scored, the reverse build."""

from __future__ import annotations

import csv
import os
import pickle
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile

from benchmark.faceformer_results import submit_faceformer_results
from benchmark.submission import SubmissionError
from mmface4d_datasets.cli import main
from mmface4d_datasets.errors import MMFace4DError
from mmface4d_datasets.faceformer.export import export_faceformer
from mmface4d_datasets.faceformer.layout import ROLE_NUMBERS, parse_name, sequence_name
from mmface4d_datasets.faceformer.timing import frames_at_rate, resample_frames
from mmface4d_datasets.release.canonical import to_source_frame
from mmface4d_datasets.release.reader import Release
from mmface4d_datasets.safe_pickle import UnsafePickleError

# Their loaders' hard-coded sentence ranges (FaceFormer / CodeTalker data_loader.py).
THEIR_RANGES = {
    "vocaset": {"train": range(1, 41), "val": range(21, 41), "test": range(21, 41)},
    "BIWI": {"train": range(1, 33), "val": range(33, 37), "test": range(37, 41)},
}


@pytest.fixture(scope="module")
def release(mini_release):
    return Release(mini_release[0])


@pytest.fixture(scope="module")
def exported(release, tmp_path_factory):
    out = tmp_path_factory.mktemp("faceformer") / "export"
    export_faceformer(release.path, out, val_subjects=2)
    return out


def their_read_data(folder: Path, dataset: str, subjects: dict[str, list[str]]) -> dict[str, dict[str, dict]]:
    """FaceFormer's read_data, line for line where it matters (soundfile stands in for librosa at 16 kHz)."""
    with open(folder / "templates.pkl", "rb") as fin:
        templates = pickle.load(fin, encoding="latin1")
    data = {}
    for f in sorted(os.listdir(folder / "wav")):
        if f.endswith("wav"):
            speech, rate = soundfile.read(folder / "wav" / f, dtype="float32")
            assert rate == 16000
            key = f.replace("wav", "npy")
            subject_id = "_".join(key.split("_")[:-1])
            data[key] = {
                "audio": speech,
                "name": f,
                "template": templates[subject_id].reshape((-1)),
                "vertice": np.load(folder / "vertices_npy" / key),
            }
    split_data = {"train": {}, "val": {}, "test": {}}
    for k, v in data.items():
        subject_id = "_".join(k.split("_")[:-1])
        sentence_id = int(k.split(".")[0][-2:])
        for role in split_data:
            if subject_id in subjects[role] and sentence_id in THEIR_RANGES[dataset][role]:
                split_data[role][k] = v
    return split_data


def names_table(folder: Path) -> list[dict]:
    with open(folder / "names.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_names_carry_their_role_and_the_id_back():
    for role, numbers in ROLE_NUMBERS.items():
        name = sequence_name("FaceTalk_170728_03272_TA", "000337", role)
        assert int(name[-2:]) in numbers
        assert parse_name(name) == ("FaceTalk_170728_03272_TA", "000337", None)
        assert parse_name(name + "_condition_S_1") == ("FaceTalk_170728_03272_TA", "000337", "S_1")
    assert parse_name("F2_e01") is None
    with pytest.raises(MMFace4DError, match="'_'"):
        sequence_name("S1", "take_1", "train")
    with pytest.raises(MMFace4DError, match="'wav'"):
        sequence_name("wavy", "000001", "train")


def test_resampling_keeps_coinciding_frames_exactly():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(31, 4, 3)).astype(np.float32)
    up = resample_frames(x, 30, 60)
    assert len(up) == 61 and np.array_equal(up[::2], x)
    assert np.allclose(up[1], (x[0].astype(np.float64) + x[1]) / 2, atol=1e-7)
    assert np.array_equal(resample_frames(up, 60, 30), x)
    down = resample_frames(x, 30, 25)
    assert len(down) == frames_at_rate(31, 30, 25) == 26
    assert np.array_equal(down[::5], x[::6])  # instants 0, 0.2 s, ... coincide
    assert np.allclose(down[1], 0.8 * x[1].astype(np.float64) + 0.2 * x[2], atol=1e-6)  # 1/25 s = frame 1.2


def test_export_reads_back_as_their_loaders_read_it(release, exported):
    table = names_table(exported)
    subjects = {role: (exported / "subjects" / f"{role}.txt").read_text().split() for role in ("train", "val", "test")}
    assert len(subjects["val"]) == 2 and subjects["test"] == sorted(release.splits["test"])
    assert sorted(subjects["train"] + subjects["val"]) == sorted(release.splits["train"])
    options = (exported / "options.txt").read_text()
    assert f'--train_subjects "{" ".join(subjects["train"])}"' in options and "--vertice_dim 3000" in options
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy deprecation on their pickle.load
        with open(exported / "templates.pkl", "rb") as fin:
            templates = pickle.load(fin, encoding="latin1")
    assert type(templates) is dict and all(type(v) is np.ndarray and v.shape == (1000, 3) for v in templates.values())
    ours = release.templates()
    assert all(np.array_equal(templates[s], ours[s]) for s in templates)
    for dataset in ("vocaset", "BIWI"):  # their filters put every file into exactly its role
        found = their_read_data(exported, dataset, subjects)
        for role in ("train", "val", "test"):
            assert sorted(k[:-4] for k in found[role]) == sorted(r["name"] for r in table if r["role"] == role)
    found = their_read_data(exported, "BIWI", subjects)
    by_name = {r["name"]: r for r in table}
    for split in ("train", "test"):
        for record in release.iter_records(split):
            row = next(r for r in table if r["id"] == record["id"])
            item = found[row["role"]][row["name"] + ".npy"]
            assert item["vertice"].dtype == np.float32 and np.array_equal(
                item["vertice"], record["vertices"].reshape(record["num_frames"], -1)
            )
            assert np.array_equal(item["audio"], record["audio"]["array"])  # the stored samples, bit for bit
            assert by_name[row["name"]]["sentence_id"] == record["sentence_id"]


def test_templates_pickle_loads_under_numpy_1(exported):
    import sys

    # .venv-rig (numpy < 2, made by ./setup-rig.sh) at the repository root, or beside the running venv
    candidates = [Path(__file__).resolve().parents[1] / ".venv-rig", Path(sys.prefix).parent / ".venv-rig"]
    python = next((c / "bin" / "python" for c in candidates if (c / "bin" / "python").exists()), None)
    if python is None:
        pytest.skip("no numpy<2 environment (.venv-rig, made by ./setup-rig.sh)")
    code = (
        "import pickle, numpy; assert numpy.__version__ < '2'; "
        f"t = pickle.load(open({str(exported / 'templates.pkl')!r}, 'rb'), encoding='latin1'); "
        "print(numpy.__version__, len(t), sorted({v.shape for v in t.values()}))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "(1000, 3)" in out.stdout


def test_60_and_25_fps_exports_are_explicit(release, tmp_path):
    export_faceformer(release.path, tmp_path / "v60", fps=60, splits="test", val_subjects=0)
    export_faceformer(release.path, tmp_path / "b25", fps=25, splits="test", val_subjects=0)
    record = next(release.iter_records("test"))
    name = sequence_name(record["subject_id"], record["take_id"], "test")
    v60 = np.load(tmp_path / "v60" / "vertices_npy" / f"{name}.npy")
    assert np.array_equal(v60[::2], record["vertices"].reshape(record["num_frames"], -1))  # their vocaset loader's [::2]
    v25 = np.load(tmp_path / "b25" / "vertices_npy" / f"{name}.npy")
    assert len(v25) == frames_at_rate(record["num_frames"], 30, 25)
    assert "--dataset BIWI --vertice_dim 3000 --feature_dim 128 --period 25" in (tmp_path / "b25" / "options.txt").read_text()
    readme = (tmp_path / "b25" / "README.md").read_text()
    assert "RESAMPLED from the release's 30 fps" in readme and "--fps 25" in readme
    assert "--dataset vocaset" in (tmp_path / "v60" / "options.txt").read_text()


def test_export_cli_refuses_mixed_options_and_foreign_folders(release, tmp_path, capsys):
    assert main(["export", "faceformer", str(release.path), "--out", str(tmp_path / "a"), "--faces", "x.npy"]) == 2
    assert "options of the PLY/OBJ export" in capsys.readouterr().err
    assert main(["export", "somewhere/prefix", "--out", str(tmp_path / "b"), "--fps", "25"]) == 2
    assert "options of export faceformer" in capsys.readouterr().err
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    assert main(["export", "faceformer", str(release.path), "--out", str(tmp_path / "c"), "--quiet"]) == 2
    assert "refusing to write" in capsys.readouterr().err and (tmp_path / "c" / "notes.txt").read_text() == "mine"


def _write_results(folder: Path, arrays: dict[str, np.ndarray], conditions=("",)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        for condition in conditions:
            suffix = f"_condition_{condition}" if condition else ""
            np.save(folder / f"{name}{suffix}.npy", array)


def _metrics(report: dict) -> dict:
    return {k: v["value"] for k, v in report["metrics"]["authors"]["values"].items()}


def _score(path, release):
    from benchmark.scoring import score_submission

    result = score_submission(path, release, "test", bootstrap_samples=10)
    assert result.report is not None, [str(i) for i in result.validation.issues]
    return result.report


def test_ground_truth_results_score_like_the_release_itself(release, exported, tmp_path):
    table = [r for r in names_table(exported) if r["role"] == "test"]
    arrays = {r["name"]: np.load(exported / "vertices_npy" / f"{r['name']}.npy") for r in table}
    _write_results(tmp_path / "result", arrays, conditions=("A", "B"))
    with pytest.raises(SubmissionError, match="choose one with --condition"):
        submit_faceformer_results(tmp_path / "result", release.path, tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()
    code = main(
        [
            "bench",
            "submit-faceformer",
            str(tmp_path / "result"),
            "--release",
            str(release.path),
            "--out",
            str(tmp_path / "s.parquet"),
            "--condition",
            "A",
        ]
    )
    assert code == 0
    ours = tmp_path / "ours"
    for record in release.iter_records("test"):
        (ours / record["subject_id"]).mkdir(parents=True, exist_ok=True)
        np.save(ours / record["subject_id"] / f"{record['take_id']}.npy", record["vertices"])
    from benchmark.runs import write_submission_from_files

    own, _ = write_submission_from_files(ours, tmp_path / "own.parquet", model="gt", release_dir=release.path)
    theirs, mine = _score(tmp_path / "s.parquet", release), _score(own, release)
    assert _metrics(theirs) == _metrics(mine)
    assert max(_metrics(theirs).values()) < 2e-5  # the release against itself: codec rounding only


def test_bad_result_folders_are_named_and_nothing_is_written(release, exported, tmp_path):
    table = [r for r in names_table(exported) if r["role"] == "test"]
    good = {r["name"]: np.load(exported / "vertices_npy" / f"{r['name']}.npy") for r in table}
    first = table[0]["name"]
    train_name = next(r["name"] for r in names_table(exported) if r["role"] == "train")
    cases = {
        "wrong shape": {first: good[first][:, :-1]},
        "N = 999": {first: good[first][:, :2997]},
        "NaN": {first: np.where(np.arange(good[first].shape[1]) == 5, np.nan, good[first]).astype(np.float32)},
        "wrong frame count": {first: good[first][: len(good[first]) // 2]},
        "missing": {first: None},
        "extra": {train_name: good[first], "someone_else": good[first]},
    }
    for expected, change in cases.items():
        arrays = dict(good)
        for name, array in change.items():
            if array is None:
                arrays.pop(name)
            else:
                arrays[name] = array
        folder = tmp_path / expected.replace(" ", "_").replace("=", "")
        _write_results(folder, arrays)
        with pytest.raises(SubmissionError, match=expected.replace("N = 999", r"N = 999")) as info:
            submit_faceformer_results(folder, release.path, folder / "out.parquet")
        assert "no submission was written" in str(info.value) and not (folder / "out.parquet").exists()
    # a short prediction (as wav2vec front ends give) is held to the ground truth's frame count
    short = dict(good, **{first: good[first][:-2]})
    _write_results(tmp_path / "short", short)
    result = submit_faceformer_results(tmp_path / "short", release.path, tmp_path / "short.parquet")
    assert result.held == [table[0]["id"]]


def test_25_fps_results_are_converted_back_and_the_rate_is_checked(release, tmp_path):
    export_faceformer(release.path, tmp_path / "b25", fps=25, splits="test", val_subjects=0)
    arrays = {p.stem: np.load(p) for p in (tmp_path / "b25" / "vertices_npy").glob("*.npy")}
    _write_results(tmp_path / "result", arrays)
    with pytest.raises(SubmissionError, match="pass --fps 25"):
        submit_faceformer_results(tmp_path / "result", release.path, tmp_path / "x.parquet", fps=30, max_frame_difference=1)
    submit_faceformer_results(tmp_path / "result", release.path, tmp_path / "s.parquet", fps=25)
    metrics = _metrics(_score(tmp_path / "s.parquet", release))
    assert 0 < metrics["face_max"] < 5e-3  # 30 -> 25 -> 30 fps interpolation, not the data lost


def test_their_training_convention_round_trip_scores_like_our_submission_path(release, exported, tmp_path):
    """A FaceFormer-shaped model of ours, fed through their file conventions (their read_data, their tuple),
    its result/ folder converted: the same scores as the same predictions through our own submission path."""
    import torch

    from benchmark.features import LogMelFrontEnd
    from benchmark.models.faceformer import FaceFormerModel
    from benchmark.runs import write_submission_from_files

    torch.manual_seed(0)
    subjects = {role: (exported / "subjects" / f"{role}.txt").read_text().split() for role in ("train", "val", "test")}
    data = their_read_data(exported, "vocaset", subjects)
    front = LogMelFrontEnd()
    model = FaceFormerModel(1000, front.dim, d_model=16, num_heads=2)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    for item in list(data["train"].values())[:3]:
        vertice = torch.from_numpy(item["vertice"]).reshape(1, -1, 1000, 3)
        template = torch.from_numpy(item["template"]).reshape(1, 1000, 3)
        features = front(item["audio"], vertice.shape[1])[None]
        loss = torch.nn.functional.mse_loss(model(features, template, template[:, None], target=vertice), vertice)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    result, ours = tmp_path / "result", tmp_path / "ours"
    result.mkdir()
    for key, item in data["test"].items():
        frames = item["vertice"].shape[0]
        template = torch.from_numpy(item["template"]).reshape(1000, 3)
        for condition in subjects["train"][:2]:
            style = torch.from_numpy(their_templates(exported)[condition]).reshape(1, 1000, 3)
            prediction = model.generate(front(item["audio"], frames), template, style, cached=True).numpy()
            np.save(result / f"{key[:-4]}_condition_{condition}.npy", prediction.reshape(frames, -1))  # their (T, N*3)
            if condition == subjects["train"][0]:
                subject, take, _ = parse_name(key[:-4])
                (ours / subject).mkdir(parents=True, exist_ok=True)
                np.save(ours / subject / f"{take}.npy", prediction)
    assert (
        main(
            [
                "bench",
                "submit-faceformer",
                str(result),
                "--release",
                str(release.path),
                "--out",
                str(tmp_path / "theirs.parquet"),
                "--condition",
                subjects["train"][0],
            ]
        )
        == 0
    )
    own, _ = write_submission_from_files(ours, tmp_path / "own.parquet", model="faceformer", release_dir=release.path)
    theirs, mine = _score(tmp_path / "theirs.parquet", release), _score(own, release)
    assert _metrics(theirs) == _metrics(mine) and _metrics(theirs)["lip_max"] > 0
    assert [s["id"] for s in theirs["sequences"]] == [s["id"] for s in mine["sequences"]]


def their_templates(folder: Path) -> dict:
    with open(folder / "templates.pkl", "rb") as fin:
        return pickle.load(fin, encoding="latin1")


def test_build_release_from_the_export_gives_the_release_back(release, exported, tmp_path, capsys):
    out = tmp_path / "rebuilt"
    assert main(["build", "release", str(exported), "--layout", "faceformer", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    rebuilt = Release(out)
    for key in ("train", "test", "style_reference"):
        assert rebuilt.splits[key] == release.splits[key]
    bound = release.info.max_error
    assert rebuilt.info.topology == release.info.topology and rebuilt.info.topology_hash == release.info.topology_hash
    for split in ("train", "test"):
        originals = {r["id"]: r for r in release.iter_records(split)}
        for record in rebuilt.iter_records(split):
            original = originals.pop(record["id"])
            # the writer's guarantee on its input (the exported vertices), and twice the bound to the original
            source = to_source_frame(record["vertices"], record["head_pose"])
            assert np.abs(source - original["vertices"]).max() <= bound * (1 + 1e-3) + 1e-7
            assert np.abs(record["vertices"] - original["vertices"]).max() <= 2 * bound
            assert np.array_equal(record["audio"]["array"], original["audio"]["array"])
            for field in ("sentence_id", "emotion", "text", "gender", "age", "num_frames"):
                assert record[field] == original[field], field
        assert not originals
    rows = rebuilt.templates()
    assert max(np.abs(rows[s] - t).max() for s, t in release.templates().items()) < 1e-6


def test_build_release_faceformer_refuses_a_hostile_templates_pickle(exported, tmp_path, capsys):
    folder = tmp_path / "hostile"
    shutil.copytree(exported, folder, ignore=shutil.ignore_patterns(".mmface4d*"))
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (folder / "templates.pkl").write_bytes(pickle.dumps({"S": Payload()}))
    with pytest.raises(UnsafePickleError, match="posix.system|os.system"):
        from builders.build import build_faceformer_release

        build_faceformer_release(folder, tmp_path / "rel", progress=False)
    assert not marker.exists() and not (tmp_path / "rel").exists()


def test_foreign_folder_needs_its_topology_and_names_what_is_wrong(exported, tmp_path, capsys):
    folder = tmp_path / "voca"
    (folder / "vertices_npy").mkdir(parents=True)
    (folder / "wav").mkdir()
    name = sorted((exported / "vertices_npy").iterdir())[0].stem
    shutil.copy(exported / "vertices_npy" / f"{name}.npy", folder / "vertices_npy" / "FaceTalk_1_sentence01.npy")
    shutil.copy(exported / "wav" / f"{name}.wav", folder / "wav" / "FaceTalk_1_sentence01.wav")
    assert main(["build", "release", str(folder), "--layout", "faceformer", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "give --faces FILE" in capsys.readouterr().err
    assert main(["build", "release", str(folder), "--layout", "authors", "--fps", "60", "--out", str(tmp_path / "r2")]) == 2
    assert "options of --layout faceformer" in capsys.readouterr().err
    code = main(
        [
            "build",
            "release",
            str(folder),
            "--layout",
            "faceformer",
            "--faces",
            str(exported / "topology.npz"),
            "--out",
            str(tmp_path / "r3"),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    record = next(Release(tmp_path / "r3").iter_records("train"))
    assert (record["subject_id"], record["take_id"], record["sentence_id"]) == ("FaceTalk_1", "FaceTalk_1_sentence01", "00-sentence01")


def test_torch_adapter_gives_their_tuple_as_the_export_does(release, exported):
    from torch.utils.data import DataLoader

    from mmface4d_datasets.faceformer.batches import faceformer_datasets, normalize_audio

    datasets, subjects = faceformer_datasets(data_dir=release.path, val_subjects=2)
    assert subjects == {role: (exported / "subjects" / f"{role}.txt").read_text().split() for role in ("train", "val", "test")}
    for role in ("train", "test"):
        audio, vertice, template, one_hot, file_name = next(iter(DataLoader(datasets[role], batch_size=1)))
        name = file_name[0][: -len(".wav")]
        assert np.array_equal(vertice[0].numpy(), np.load(exported / "vertices_npy" / f"{name}.npy"))
        samples, _ = soundfile.read(exported / "wav" / file_name[0], dtype="float32")
        assert np.array_equal(audio[0].numpy(), normalize_audio(samples))
        subject = parse_name(name)[0]
        assert np.array_equal(template[0].numpy(), their_templates(exported)[subject].reshape(-1))
        n = len(subjects["train"])
        if role == "train":
            assert one_hot.shape == (1, n) and one_hot[0, subjects["train"].index(subject)] == 1 and one_hot.sum() == 1
        else:
            assert one_hot.shape == (1, n, n) and np.array_equal(one_hot[0].numpy(), np.eye(n))


def test_fixture_take_exports_and_builds_back(official_sample, tmp_path):
    """The authors' sample take (35,709 vertices) through export and the reverse build."""
    from test_release_fixture import MAX_ERROR, bfm_topology_info, load_fixture_take

    from mmface4d_datasets.release.schema import CallableSource
    from mmface4d_datasets.release.writer import write_release

    source = tmp_path / "release"
    write_release(
        [CallableSource("000337", lambda: load_fixture_take(official_sample))],
        source,
        topology=bfm_topology_info(official_sample),
        max_error=MAX_ERROR,
        progress=False,
    )
    export_faceformer(source, tmp_path / "ff")
    record = next(Release(source).iter_records("train"))
    (path,) = (tmp_path / "ff" / "vertices_npy").glob("*.npy")
    assert np.load(path).shape == (67, 3 * 35709)
    assert np.array_equal(np.load(path), record["vertices"].reshape(67, -1))
    samples, rate = soundfile.read(tmp_path / "ff" / "wav" / f"{path.stem}.wav", dtype="float32")
    assert rate == 16000 and np.array_equal(samples, record["audio"]["array"])
    from builders.build import build_faceformer_release

    build_faceformer_release(tmp_path / "ff", tmp_path / "back", max_error=MAX_ERROR, progress=False)
    back = next(Release(tmp_path / "back").iter_records("train"))
    assert back["id"] == record["id"] and np.abs(back["vertices"] - record["vertices"]).max() <= 2 * MAX_ERROR
