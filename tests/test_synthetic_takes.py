"""Synthetic takes in memory and on disk, and the `mmface4d synth` command."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from mmface4d_datasets.errors import MMFace4DError
from mmface4d_datasets.cli import main
from mmface4d_datasets.facemodel import FaceModel, load_face_model
from mmface4d_datasets.official import find_takes, read_audio
from mmface4d_datasets.synthetic import SyntheticTake, generate_takes, iter_takes, synthesize_take, write_take
from mmface4d_datasets.synthetic.actors import make_actor
from mmface4d_datasets.synthetic.takes import (
    FPS,
    MAX_DURATION,
    MIN_DURATION,
    SynthesisError,
    camera_extrinsics,
    speak_for_take,
    take_id_of,
    write_npz,
)

N = 1000


@pytest.fixture(scope="module")
def model():
    return load_face_model("default", num_vertices=N)


@pytest.fixture(scope="module")
def take(model) -> SyntheticTake:
    return synthesize_take(1, 2, seed=3, model=model)


def test_take_is_deterministic(model, take):
    again = synthesize_take(1, 2, seed=3, model=model)
    for name in ("audio", "vertices", "expression", "identity", "head_pose", "phoneme_starts", "phonemes"):
        assert np.array_equal(getattr(take, name), getattr(again, name)), name
    other = synthesize_take(1, 2, seed=4, model=model)
    assert not np.array_equal(other.identity, take.identity)


def test_take_shapes_ids_and_durations(take, model):
    assert take.take_id == "002003" and take.actor.subject_id == "synth0002"
    assert take.sample_rate == 16000 and take.audio.dtype == np.float32
    assert MIN_DURATION <= take.duration <= MAX_DURATION
    assert take.num_frames == round(take.duration * FPS)
    assert take.vertices.shape == (take.num_frames, N, 3) and take.vertices.dtype == np.float32
    assert take.expression.shape == (take.num_frames, model.num_expression)
    assert take.head_pose.shape == (take.num_frames, 4, 4)
    assert take.topology == f"synthetic_v1@{N}"
    assert take.phoneme_starts[0] >= 0.15 - 1e-9  # leading silence
    assert take.phoneme_ends[-1] <= take.duration


def test_canonical_vertices_are_the_face_model_of_the_ground_truth(take, model):
    canonical = take.canonical_vertices()
    assert np.abs(canonical - model.vertices(take.identity, take.expression)).max() < 1e-5
    # Only the named modes move; the rest stay at zero.
    named = [model.expression_index(n) for n in model.expression_names]
    rest = np.delete(take.expression, named, axis=1)
    assert not rest.any()
    assert take.expression[:, model.expression_index("jaw_open")].max() > 0.3


def test_mesh_sits_in_camera_one_like_the_authors_sample(take, model):
    kp = model.keypoints
    centre = take.vertices.mean(axis=(0, 1))
    assert 0.6 < centre[2] < 0.85 and abs(centre[0]) < 0.08 and abs(centre[1]) < 0.1
    first = take.vertices[0]
    assert first[kp[8], 1] > first[kp[36], 1] + 0.05  # chin below the eyes: +y points down
    assert first[kp[30], 2] < first[kp[36], 2]  # nose tip nearer the camera than the eyes
    # Head motion is small and smooth: a few degrees.
    rotations = take.head_pose[:, :3, :3].astype(np.float64)
    relative = rotations[1:] @ rotations[:-1].transpose(0, 2, 1)
    step = np.degrees(np.arccos(np.clip((np.trace(relative, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert step.max() < 2.0 and 0 < step.mean()


def test_sentences_are_fitted_into_the_paper_durations():
    """A slow, sad actor on the longest sentence is re-spoken faster to stay under 11.4 s; a two-character
    reply gets longer silences to last at least 0.7 s."""
    import dataclasses

    from mmface4d_datasets.synthetic.corpus import mandarin_corpus
    from mmface4d_datasets.synthetic.speech import Voice

    actor = dataclasses.replace(make_actor(0, 0), voice=Voice("m1", rate=120, pitch=40))
    longest = max(mandarin_corpus(), key=lambda s: len(s.text))
    audio, starts, ends, phonemes, voice = speak_for_take(longest.text, actor, "sad", np.random.default_rng(0))
    assert voice["rate_wpm"] > 120 * 0.82  # faster than the sad voice asked for
    assert MAX_DURATION - 1.0 < len(audio) / 16000 <= MAX_DURATION
    quick = dataclasses.replace(actor, voice=Voice("f1", rate=230, pitch=60))
    durations = []
    for seed in range(8):
        audio, starts, *_ = speak_for_take("呸！", quick, "fear", np.random.default_rng(seed))
        durations.append(len(audio) / 16000)
        assert 0.15 <= starts[0]
    assert min(durations) >= MIN_DURATION and min(durations) < MIN_DURATION + 0.02  # some needed padding


def test_extrinsics_keep_the_target_on_every_camera_axis():
    target = np.array([0.0, 0.0, 0.72, 1.0])
    assert np.allclose(camera_extrinsics(1), np.eye(4))
    for camera in (0, 2):
        moved = camera_extrinsics(camera) @ target
        assert np.allclose(moved[:2], 0.0) and np.isclose(moved[2], 0.72)


def test_take_ids_are_six_digits_and_bounded():
    assert take_id_of(0, 0) == "001001" and take_id_of(998, 998) == "999999"
    with pytest.raises(SynthesisError):
        take_id_of(999, 0)


def test_a_model_without_named_modes_is_refused(model):
    anonymous = FaceModel(
        topology="anonymous",
        mean=model.mean,
        identity_basis=model.identity_basis,
        expression_basis=model.expression_basis,
        triangles=model.triangles,
        keypoints=model.keypoints,
    )
    with pytest.raises(SynthesisError, match="jaw_open"):
        synthesize_take(0, 0, model=anonymous)
    with pytest.raises(SynthesisError, match="disagrees"):
        synthesize_take(0, 0, model=model, num_vertices=2000)


def test_npz_writer_is_reproducible_and_refuses_objects(tmp_path):
    arrays = {"a": np.arange(5.0), "s": np.asarray(["p", "'A"], dtype="<U8")}
    write_npz(tmp_path / "one.npz", arrays)
    os.utime(tmp_path, None)
    write_npz(tmp_path / "two.npz", arrays)
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    loaded = np.load(tmp_path / "one.npz", allow_pickle=False)
    assert np.array_equal(loaded["s"], arrays["s"])
    with pytest.raises(ValueError, match="objects"):
        write_npz(tmp_path / "bad.npz", {"x": np.array([{}], dtype=object)})


@pytest.fixture(scope="module")
def written(tmp_path_factory, model):
    out = tmp_path_factory.mktemp("synth") / "set"
    folders = generate_takes(out, subjects=2, sentences=2, seed=11, model=model, progress=False)
    return out, folders


def _tree_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generated_set_has_the_take_layout(written, model):
    out, folders = written
    assert [f.name for f in folders] == ["001001", "001002", "002001", "002002"]
    takes = find_takes(out)
    assert [t.take_id for t in takes] == ["001001", "001002", "002001", "002002"]
    for folder, found in zip(folders, takes):
        take_id = folder.name
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [f"{take_id}.wav", f"{take_id}.meta.json", f"{take_id}.gt.npz"] + [f"{take_id}_filt_{a}.nut" for a in range(3)]
        )
        assert found.ground_truth == folder / f"{take_id}.gt.npz" and found.meta == folder / f"{take_id}.meta.json"
    header = (out / "manifest.csv").read_text(encoding="utf-8").splitlines()
    assert header[0] == "take_id,subject_id,sentence_id,text,gender,age" and len(header) == 5


def test_written_take_reads_back(written, model):
    out, folders = written
    found = find_takes(out)[3]
    take = synthesize_take(1, 1, seed=11, model=model)
    vertices = found.vertices(N)
    span = take.vertices.max(axis=1) - take.vertices.min(axis=1) + 0.1  # the format pads extremes by 5 cm
    assert np.all(np.abs(vertices - take.vertices) <= span[:, None, :] / 2**16)
    audio, rate = read_audio(found.audio)
    assert rate == 16000 and np.array_equal(audio, take.audio)
    meta = json.loads(found.meta.read_text(encoding="utf-8"))
    for key in (
        "subject_id",
        "sentence_id",
        "emotion",
        "text",
        "gender",
        "age",
        "fps",
        "devices",
        "sync",
        "extrinsics",
        "formats",
        "generator",
    ):
        assert key in meta, key
    assert meta["subject_id"] == "synth0002" and meta["fps"] == 30 and meta["generator"]["seed"] == 11
    assert meta["sentence_id"] == take.sentence.sentence_id and meta["text"] == take.sentence.text
    truth = np.load(found.ground_truth, allow_pickle=False)
    assert np.array_equal(truth["expression"], take.expression)
    assert np.array_equal(truth["head_pose"], take.head_pose)
    assert np.array_equal(truth["phonemes"], take.phonemes)
    assert truth["phoneme_starts"].shape == truth["phoneme_ends"].shape == truth["phonemes"].shape
    assert str(truth["topology"]) == take.topology


def test_same_seed_same_bytes_and_resume(written, model, tmp_path):
    out, _ = written
    again = tmp_path / "again"
    generate_takes(again, subjects=2, sentences=2, seed=11, model=model, progress=False)
    reference = _tree_bytes(out)
    assert _tree_bytes(again) == reference
    # An interrupted run: one take missing, one staging folder left behind. Rerunning completes it.
    victim = again / "synth0002" / "002001"
    for path in victim.iterdir():
        path.unlink()
    victim.rmdir()
    (again / "synth0002" / ".002001.partial-1").mkdir()
    kept = again / "synth0001" / "001001" / "001001.wav"
    stamp = kept.stat().st_mtime_ns
    generate_takes(again, subjects=2, sentences=2, seed=11, model=model, progress=False)
    assert kept.stat().st_mtime_ns == stamp  # kept, not rewritten
    files = _tree_bytes(again)
    files.pop("synth0002/.002001.partial-1", None)
    assert files == reference
    with pytest.raises(SynthesisError, match="seed"):
        generate_takes(again, subjects=1, sentences=1, seed=12, model=model, progress=False)


@pytest.mark.slow
def test_parallel_workers_write_the_same_bytes(written, model, tmp_path):
    out, _ = written
    parallel = tmp_path / "parallel"
    folders = generate_takes(parallel, subjects=2, sentences=2, seed=11, model=model, progress=False, workers=2)
    assert [f.name for f in folders] == ["001001", "001002", "002001", "002002"]
    assert _tree_bytes(parallel) == _tree_bytes(out)


def test_in_memory_takes_are_the_written_ones(written, model):
    out, _ = written
    takes = list(iter_takes(2, 2, seed=11, model=model))
    assert [t.take_id for t in takes] == ["001001", "001002", "002001", "002002"]
    assert np.array_equal(read_audio(out / "synth0001" / "001002" / "001002.wav")[0], takes[1].audio)


def test_write_take_refuses_an_existing_folder_and_leaves_nothing_half_written(take, tmp_path):
    target = tmp_path / "t"
    target.mkdir()
    with pytest.raises(SynthesisError, match="exists"):
        write_take(take, target)
    broken = SyntheticTake(**{**take.__dict__, "vertices": np.full_like(take.vertices, np.nan)})
    with pytest.raises(ValueError):
        write_take(broken, tmp_path / "u")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"subjects": 0, "sentences": 1}, "subjects"),
        ({"subjects": 1, "sentences": 1000}, "sentences"),
        ({"subjects": 1, "sentences": 1, "seed": -1}, "seed"),
        ({"subjects": 1, "sentences": 1, "num_vertices": 20}, "500"),
        ({"subjects": 1, "sentences": 1, "workers": 0}, "workers"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, message):
    with pytest.raises(SynthesisError, match=message):
        generate_takes(tmp_path / "out", progress=False, **kwargs)


def test_output_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(MMFace4DError, match="not a folder"):
        generate_takes(path, 1, 1, num_vertices=N, progress=False)


def test_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["synth", "--subjects", "1", "--sentences", "1", "--out", str(out), "--vertices", str(N), "--seed", "2", "--quiet"]) == 0
    assert "wrote 1 takes" in capsys.readouterr().out
    assert len(find_takes(out)) == 1
    assert main(["synth", "--subjects", "1", "--sentences", "1", "--out", str(out), "--vertices", "20"]) == 2
    assert "500" in capsys.readouterr().err
    for bad in (["--subjects", "0"], ["--subjects", "x"], ["--seed", "-3", "--subjects", "1"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["synth", "--sentences", "1", "--out", str(out), *bad])
        assert exit_info.value.code == 2
