"""Training: config files, data pairing, deterministic and resumable runs, safetensors checkpoints, learning."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmark.features import LogMelFrontEnd
from benchmark.training import (
    TrainConfig,
    TrainingData,
    TrainingError,
    list_checkpoints,
    load_animator,
    load_config,
    read_checkpoint,
    train,
)
from mmface4d_datasets.errors import FormatError

N = 20
FRONT_END = LogMelFrontEnd(n_mels=8, sub_frames=1)


def toy_records(subjects=3, per_subject=3, seed=0):
    """Speech-like bursts whose loudness opens a 'jaw' pattern: learnable from the audio alone."""
    jaw = np.random.default_rng(100).standard_normal((N, 3)).astype(np.float32) * 2e-3  # shared by all speakers
    rng = np.random.default_rng(seed)
    records, templates = [], {}
    for s in range(subjects):
        subject = f"subject{s}"
        templates[subject] = (rng.standard_normal((N, 3)) * 0.05).astype(np.float32)
        for k in range(per_subject):
            frames = int(rng.integers(40, 70))
            loudness = np.clip(np.sin(np.arange(frames) / rng.uniform(2, 5)) + rng.uniform(-0.3, 0.3), 0, None)
            samples = np.repeat(loudness, 16000 // 30 + 1)[: frames * 16000 // 30]
            audio = (samples * np.sin(np.arange(samples.size) * 0.3)).astype(np.float32)
            vertices = templates[subject] + loudness[:, None, None].astype(np.float32) * jaw * (1 + 0.2 * s)
            records.append(
                {"id": f"{subject}/{k}", "subject_id": subject, "vertices": vertices, "audio": {"array": audio, "sampling_rate": 16000}}
            )
    return records, templates


@pytest.fixture(scope="module")
def data():
    records, templates = toy_records()
    return TrainingData.from_records(records, templates, FRONT_END)


def tiny_config(**changes):
    values = dict(
        model={"code_dim": 4, "hidden_dim": 16, "decoder_blocks": 1, "audio_blocks": 1, "style_blocks": 1},
        front_end="logmel",
        steps=6,
        batch_size=4,
        window_seconds=1.0,
        style_seconds=1.0,
        checkpoint_every=3,
        seed=1,
        threads=1,
    )
    values.update(changes)
    return TrainConfig(**values)


def test_load_config_json_and_toml(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"steps": 7, "lr": 0.01, "model": {"code_dim": 32}}))
    (tmp_path / "b.toml").write_text("steps = 9\nseed = 4\n[model]\nd_model = 32\n")
    assert load_config(tmp_path / "a.json").model == {"code_dim": 32}
    config = load_config(tmp_path / "b.toml", seed=11, steps=None)
    assert (config.steps, config.seed, config.model) == (9, 11, {"d_model": 32})
    (tmp_path / "bad.json").write_text('{"stepz": 3}')
    with pytest.raises(FormatError, match="bad.json.*stepz"):
        load_config(tmp_path / "bad.json")
    (tmp_path / "broken.toml").write_text("steps = = 3")
    with pytest.raises(FormatError, match="broken.toml"):
        load_config(tmp_path / "broken.toml")


def test_style_partners_are_other_sequences_of_the_same_speaker(data):
    for index, partners in enumerate(data.partners):
        assert index not in partners
        assert {data.sequences[p].subject_id for p in partners} == {data.sequences[index].subject_id}
    batch = data.sample_batch(5, 30, 45, torch.Generator().manual_seed(0))
    assert batch["features"].shape == (5, 30, FRONT_END.dim)
    assert batch["vertices"].shape == (5, 30, N, 3) and batch["template"].shape == (5, N, 3)
    assert batch["style_vertices"].shape[0] == 5 and batch["style_mask"].any(dim=1).all()


def test_batches_follow_the_documented_draw_order(data):
    """The draws of `sample_batch` (sequences, then per window: start, style partner, style start) are part of
    a run's reproducibility (resumes, same seed same weights); windows are the sequences' frames at those draws."""
    generator = torch.Generator().manual_seed(5)
    replay = torch.Generator().manual_seed(5)
    for batch_size, window, style_window in ((4, 30, 45), (3, 200, 10), (2, 1, 500)):
        batch = data.sample_batch(batch_size, window, style_window, generator)

        def draw(high):
            return int(torch.randint(high, (1,), generator=replay))

        chosen = [draw(len(data.sequences)) for _ in range(batch_size)]
        length = min(window, *(data.sequences[i].vertices.shape[0] for i in chosen))
        assert batch["vertices"].shape[:2] == (batch_size, length) and batch["features"].shape[:2] == (batch_size, length)
        for row, index in enumerate(chosen):
            sequence = data.sequences[index]
            start = draw(sequence.vertices.shape[0] - length + 1)
            assert torch.equal(batch["vertices"][row], sequence.vertices[start : start + length])
            assert torch.equal(batch["features"][row], sequence.features[start : start + length])
            assert torch.equal(batch["template"][row], sequence.template)
            partner = data.sequences[data.partners[index][draw(len(data.partners[index]))]]
            style_length = min(style_window, partner.vertices.shape[0])
            style_start = draw(partner.vertices.shape[0] - style_length + 1)
            assert torch.equal(batch["style_vertices"][row, :style_length], partner.vertices[style_start : style_start + style_length])
            assert int(batch["style_mask"][row].sum()) == style_length and bool(batch["style_mask"][row, :style_length].all())
            assert torch.all(batch["style_vertices"][row, style_length:] == sequence.template)  # padding: the template
        assert torch.equal(generator.get_state(), replay.get_state())  # nothing else was drawn


def test_training_is_deterministic_and_resumes_exactly(tmp_path, data):
    straight = train("mmface4d", data, tmp_path / "straight", tiny_config(), progress=False, front_end=FRONT_END)
    assert straight["step"] == 6
    train("mmface4d", data, tmp_path / "again", tiny_config(), progress=False, front_end=FRONT_END)
    interrupted = train("mmface4d", data, tmp_path / "resumed", tiny_config(steps=3), progress=False, front_end=FRONT_END)
    assert interrupted["step"] == 3
    resumed = train("mmface4d", data, tmp_path / "resumed", tiny_config(), progress=False, front_end=FRONT_END)
    assert resumed["resumed_from"].endswith("checkpoint-0000003") and resumed["step"] == 6
    weights = [read_checkpoint(tmp_path / run)[2] for run in ("straight", "again", "resumed")]
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
        assert torch.equal(weights[0][key], weights[2][key]), key
    # The folder holds only safetensors and JSON, whole checkpoints only.
    folders = list_checkpoints(tmp_path / "straight")
    assert [f.name for f in folders] == ["checkpoint-0000003", "checkpoint-0000006"]
    assert sorted(p.name for p in folders[-1].iterdir()) == [
        "checkpoint.json",
        "model.safetensors",
        "optimizer.safetensors",
        "rng.safetensors",
    ]
    meta = json.loads((folders[-1] / "checkpoint.json").read_text())
    assert meta["step"] == 6 and meta["model"] == "mmface4d" and meta["num_vertices"] == N


def test_resume_refuses_a_run_with_other_options(tmp_path, data):
    train("mmface4d", data, tmp_path / "run", tiny_config(steps=3), progress=False, front_end=FRONT_END)
    with pytest.raises(TrainingError, match="other options"):
        train("mmface4d", data, tmp_path / "run", tiny_config(model={"code_dim": 5}), progress=False, front_end=FRONT_END)


def test_checkpoint_loads_through_the_registry(tmp_path, data):
    from benchmark.models import load_model
    from benchmark.protocol import ProtocolInputs

    config = tiny_config(model={"d_model": 8, "num_heads": 2}, steps=3)
    train("faceformer", data, tmp_path / "ff", config, progress=False, front_end=FRONT_END)
    sequence = data.sequences[0]
    sample = ProtocolInputs(
        id=sequence.id,
        audio=np.zeros(16000, np.float32),
        sample_rate=16000,
        num_frames=25,
        template=sequence.template.numpy(),
        style_reference_id=data.sequences[1].id,
        style_vertices=data.sequences[1].vertices.numpy(),
        style_audio=np.zeros(1, np.float32),
        subject_id=sequence.subject_id,
        emotion="neutral",
    )
    published = load_model("faceformer", str(tmp_path / "ff"))
    cached = load_model("faceformer-cached", str(tmp_path / "ff"))
    np.testing.assert_allclose(published.predict(sample), cached.predict(sample), atol=1e-6)
    assert published.predict(sample).shape == (25, N, 3)
    with pytest.raises(TrainingError, match="holds model 'faceformer'"):
        load_model("mmface4d", str(tmp_path / "ff"))
    with pytest.raises(TrainingError, match="no checkpoint"):
        load_animator("mmface4d", tmp_path / "empty")


def test_the_paper_model_learns_the_toy_task(tmp_path, data):
    """After a short run the model is closer to held-out ground truth than the template (static)."""
    config = tiny_config(steps=120, lr=3e-3, checkpoint_every=1000, batch_size=6)
    train("mmface4d", data, tmp_path / "learn", config, progress=False, front_end=FRONT_END)
    model = load_animator("mmface4d", tmp_path / "learn")
    records, templates = toy_records(subjects=2, per_subject=2, seed=7)  # unseen speakers
    held_out = TrainingData.from_records(records, templates, FRONT_END)
    model_error = static_error = 0.0
    for index, sequence in enumerate(held_out.sequences):
        style = held_out.sequences[held_out.partners[index][0]].vertices
        with torch.no_grad():
            prediction = model.module.generate(sequence.features, sequence.template, style)
        model_error += float((prediction - sequence.vertices).norm(dim=-1).mean())
        static_error += float((sequence.template - sequence.vertices).norm(dim=-1).mean())
    assert model_error < 0.7 * static_error


def test_bench_train_command_on_a_release_then_predict_the_test_split(tmp_path, capsys):
    """`mmface4d bench train` end to end on a small release built by the core's writer."""
    import argparse

    from benchmark.models import load_model
    from benchmark.protocol import check_prediction, iter_protocol_inputs
    from benchmark.train_cli import register
    from mmface4d_datasets.release.reader import Release
    from mmface4d_datasets.release.writer import write_release
    from test_release_support import make_topology, small_sources

    release_dir = tmp_path / "release"
    write_release(small_sources(5, 3), release_dir, topology=make_topology(), seed=0, progress=False)
    (tmp_path / "config.toml").write_text(
        "steps = 4\nbatch_size = 2\nwindow_seconds = 0.5\ncheckpoint_every = 2\nthreads = 1\n"
        "[model]\ncode_dim = 4\nhidden_dim = 8\ndecoder_blocks = 1\n"
    )
    parser = argparse.ArgumentParser(prog="mmface4d bench")
    register(parser.add_subparsers(dest="command"))
    argv = [
        "train",
        "--model",
        "mmface4d",
        "--data",
        str(release_dir),
        "--out",
        str(tmp_path / "run"),
        "--config",
        str(tmp_path / "config.toml"),
        "--seed",
        "3",
        "--quiet",
    ]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 4 and summary["resumed_from"] is None
    # Running it again resumes (and has nothing left to do at 4 of 4 steps).
    args = parser.parse_args(argv[:-1] + ["--steps", "6", "--quiet"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["resumed_from"].endswith("checkpoint-0000004")

    model = load_model("mmface4d", str(tmp_path / "run"))
    release = Release(release_dir)
    test_split = [name for name in release.split_names if name != "train"][0]
    predicted = 0
    for inputs in iter_protocol_inputs(release, test_split):
        prediction = check_prediction(inputs, model.predict(inputs), model.name)
        assert prediction.shape == (inputs.num_frames, inputs.num_vertices, 3)
        predicted += 1
    assert predicted > 0
    meta = json.loads((tmp_path / "run" / "checkpoint-0000006" / "checkpoint.json").read_text())
    assert meta["release"] == str(release_dir) and meta["train_config"]["seed"] == 3


def test_command_module_and_front_end_module_import_light():
    import subprocess
    import sys

    code = (
        "import sys, benchmark.train_cli, benchmark.features, benchmark.training; "
        "heavy = [m for m in ('torch', 'transformers', 'safetensors') if m in sys.modules]; "
        "print(heavy); raise SystemExit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_perf_inference_script_prints_its_conditions(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "perf" / "inference.py"
    spec = importlib.util.spec_from_file_location("perf_inference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    previous = torch.get_num_threads()
    try:
        assert module.main(["--vertices", "60", "--clips", "0.5", "--repeats", "1", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(previous)
    output = capsys.readouterr().out
    result = json.loads(output[output.index("{\n") :])
    assert result["conditions"]["vertices"] == 60 and result["conditions"]["threads"] == 1
    clip = result["models"]["faceformer"]["clips"]["0.5s"]
    assert clip["without_front_end_s_per_s"] > 0 and clip["with_logmel_s_per_s"] > 0
    assert set(result["models"]) == {"mmface4d", "faceformer", "faceformer-cached"}
