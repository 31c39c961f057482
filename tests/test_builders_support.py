"""Helpers for the builder tests (no tests here): sources made in a temporary folder at test time.

- :func:`small_take` writes a take of our own in the flat layout (``ID.wav``, ``ID_filt_{0,1,2}.nut``,
  ``ID.meta.json``) with a small ``synthetic_v1@N`` topology, so that bad takes can be made on purpose.
- :func:`fixture_copies` lays out several take folders that LINK to the authors' sample take (the
  files are never copied; nothing made from them is kept), with a manifest naming their subjects.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

SMALL_N = 500  # the embedded model's smallest size
FIXTURE_TAKE = "000337"


def small_take(
    folder: Path,
    take_id: str,
    *,
    subject="S1",
    sentence="000001",
    frames=15,
    num_vertices=SMALL_N,
    audio_seconds=None,
    sample_rate=16000,
    subtype="FLOAT",
    meta_extra=None,
    seed=0,
    write_meta=True,
):
    """Write one flat-layout take under ``folder``; return its vertices and samples as written."""
    import soundfile

    from mmface4d_datasets import official

    folder.mkdir(parents=True, exist_ok=True)
    from mmface4d_datasets.facemodel import face_model_for_topology

    rng = np.random.default_rng(seed)
    base = face_model_for_topology(f"synthetic_v1@{num_vertices}").mean[None]
    vertices = (base + rng.normal(0, 0.001, (frames, num_vertices, 3))).astype(np.float32)
    official.write_mesh_sequence(folder / f"{take_id}_filt", vertices)
    seconds = frames / 30 if audio_seconds is None else audio_seconds
    samples = (0.1 * np.sin(np.arange(int(round(seconds * sample_rate))) / 7.0)).astype(np.float32)
    if subtype == "PCM_16":
        samples = (samples * 32767).astype(np.int16)
    soundfile.write(str(folder / f"{take_id}.wav"), samples, sample_rate, subtype=subtype)
    if write_meta:
        meta = {
            "subject_id": subject,
            "sentence_id": sentence,
            "text": "你好",
            "gender": "female",
            "age": 30,
            "topology": f"synthetic_v1@{num_vertices}",
        } | (meta_extra or {})
        (folder / f"{take_id}.meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return vertices, samples


def fixture_copies(official_sample: Path, root: Path, takes: dict[str, str], *, with_bfm=True) -> tuple[Path, Path]:
    """Folder-per-take source under ``root``: one folder per ``take_id -> subject_id`` whose files link
    to the sample take's; returns (source folder, manifest CSV). ``with_bfm`` links ``BFM/`` too."""
    source = root / "source"
    source.mkdir(parents=True)
    lines = ["take_id,subject_id,sentence_id,text,gender,age"]
    for index, (take_id, subject) in enumerate(sorted(takes.items())):
        folder = source / take_id
        folder.mkdir()
        os.symlink(official_sample / f"{FIXTURE_TAKE}.wav", folder / f"{take_id}.wav")
        for axis in range(3):
            os.symlink(official_sample / f"reconstruct_filt_{axis}.nut", folder / f"reconstruct_filt_{axis}.nut")
            os.symlink(official_sample / f"{FIXTURE_TAKE}_{axis}.json", folder / f"{take_id}_{axis}.json")
            os.symlink(official_sample / f"{FIXTURE_TAKE}_{axis}.pkl", folder / f"{take_id}_{axis}.pkl")
        sentence = "000001" if index % 2 == 0 else "210002"
        lines.append(f"{take_id},{subject},{sentence},,female,{30 + index}")
    if with_bfm:
        os.symlink(official_sample / "BFM", source / "BFM")
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return source, manifest


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every non-hidden file under ``root``: relative path -> content."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            found[relative.as_posix()] = path.read_bytes()
    return found


def kill_9_once_staged(command: list[str], staging: Path, takes: int = 2, poll_s: float = 0.02) -> int:
    """Run ``command`` (a build) and SIGKILL it once ``takes`` takes are staged under ``staging`` and
    before it ends; returns the killed process's id. Fails when the build ends first."""
    import signal
    import subprocess
    import time

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while len(list(staging.glob("*/*.npz"))) < takes and process.poll() is None and time.monotonic() < deadline:
            time.sleep(poll_s)
        assert process.poll() is None, "the build ended before it could be interrupted"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.pid
