"""Synthetic generator: speed, size and quality figures (prints JSON).

For each vertex count: seconds per take to synthesise in memory (speech, motion, vertices) and to
write the take folder (WAV, three .nut meshes, JSON, ground truth), per second of audio, and bytes
per take on disk, over ``--subjects`` x ``--sentences`` takes of seed ``--seed``; the face model
is built (and timed) once beforehand and the first take is a warm-up (not timed). Then the quality
figures on the N = 1000 set: audio-visual sync (mouth opening against the speech envelope at
lags 0 and +-5 frames), speaker identification from lip-speed statistics (nearest centroid, leave
one out), and V(lips, axis) and the mean lip vertex speed beside the authors' sample take when it
is found.

    .venv/bin/python perf/synthetic.py [--vertices 1000 5023 35709] [--subjects 4] [--sentences 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def speed(num_vertices: int, subjects: int, sentences: int, seed: int) -> dict:
    from mmface4d_datasets.facemodel import load_face_model
    from mmface4d_datasets.synthetic import synthesize_take, write_take

    start = time.perf_counter()
    model = load_face_model("default", num_vertices=num_vertices)
    model_seconds = time.perf_counter() - start
    synthesize_take(0, 0, seed, model=model)  # warm-up: imports, eSpeak NG data in the page cache
    synth, write, audio_seconds, frames, sizes = [], [], 0.0, 0, []
    folder = Path(tempfile.mkdtemp(prefix="mmface4d-perf-synth-"))
    try:
        for i in range(subjects):
            for j in range(sentences):
                t0 = time.perf_counter()
                take = synthesize_take(i, j, seed, model=model)
                t1 = time.perf_counter()
                target = write_take(take, folder / take.take_id)
                t2 = time.perf_counter()
                synth.append(t1 - t0)
                write.append(t2 - t1)
                audio_seconds += take.duration
                frames += take.num_frames
                sizes.append(sum(p.stat().st_size for p in target.iterdir()))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    count = len(synth)
    return {
        "num_vertices": num_vertices,
        "takes": count,
        "audio_seconds": round(audio_seconds, 2),
        "frames": frames,
        "model_build_s": round(model_seconds, 3),
        "synthesize_s_per_take": round(sum(synth) / count, 4),
        "write_s_per_take": round(sum(write) / count, 4),
        "synthesize_s_per_audio_s": round(sum(synth) / audio_seconds, 4),
        "write_s_per_audio_s": round(sum(write) / audio_seconds, 4),
        "bytes_per_take": int(np.mean(sizes)),
        "bytes_per_frame": int(sum(sizes) / frames),
    }


def quality(subjects: int, sentences: int, seed: int) -> dict:
    from mmface4d_datasets.facemodel import load_face_model
    from mmface4d_datasets.paths import official_sample_dir
    from mmface4d_datasets.synthetic import synthesize_take
    from mmface4d_datasets.synthetic.quality import (
        lagged_correlations,
        mouth_opening,
        nearest_centroid_accuracy,
        region_axis_speed,
        region_speed,
        speech_envelope,
    )

    model = load_face_model("default", num_vertices=1000)
    masks = model.region_masks()
    takes = [synthesize_take(i, j, seed, model=model) for i in range(subjects) for j in range(sentences)]
    at_zero, at_five, wins, lips, upper, camera_lips, camera_speed = [], [], 0, [], [], [], []
    for take in takes:
        canonical = take.canonical_vertices()
        envelope = speech_envelope(take.audio, take.sample_rate, take.num_frames)
        correlations = lagged_correlations(mouth_opening(canonical, model.keypoints), envelope, 5)
        at_zero.append(correlations[0])
        at_five.append(max(correlations[-5], correlations[5]))
        wins += correlations[0] > at_five[-1]
        lips.append(region_axis_speed(canonical, masks["lips"]))
        upper.append(region_axis_speed(canonical, masks["upper_face"]))
        camera_lips.append(region_axis_speed(take.vertices, masks["lips"]))
        camera_speed.append(region_speed(take.vertices, masks["lips"]))
    labels = [take.actor.subject_id for take in takes]
    out = {
        "set": {
            "subjects": subjects,
            "sentences": sentences,
            "seed": seed,
            "num_vertices": 1000,
            "durations_s": [round(min(t.duration for t in takes), 2), round(max(t.duration for t in takes), 2)],
        },
        "sync": {
            "mean_corr_lag0": round(float(np.mean(at_zero)), 3),
            "mean_corr_best_of_lag_pm5": round(float(np.mean(at_five)), 3),
            "takes_lag0_beats_pm5": f"{wins}/{len(takes)}",
        },
        "style": {
            "chance": round(1 / subjects, 3),
            "nearest_centroid_lips": round(nearest_centroid_accuracy(np.array(lips), labels), 3),
            "nearest_centroid_lips_upper": round(nearest_centroid_accuracy(np.hstack([np.array(lips), np.array(upper)]), labels), 3),
        },
        "lip_speed_mm_per_frame": {
            "ours_camera_frame": np.round(np.mean(camera_lips, axis=0) * 1000, 3).tolist(),
            "ours_canonical": np.round(np.mean(lips, axis=0) * 1000, 3).tolist(),
        },
        "lip_vertex_speed_mm_per_frame": {"ours_camera_frame": round(float(np.mean(camera_speed)) * 1000, 3)},
    }
    sample = official_sample_dir()
    if sample is not None:
        from mmface4d_datasets.facemodel import bfm_topology, region_masks
        from mmface4d_datasets.official import read_mesh_sequence

        topology = bfm_topology(sample / "BFM" / "facemodel_info.mat")
        real = read_mesh_sequence(sample / "reconstruct_filt", topology.num_vertices)
        real_lips = region_masks(topology.triangles, topology.keypoints, topology.num_vertices)["lips"]
        out["lip_speed_mm_per_frame"]["authors_sample_camera_frame"] = np.round(region_axis_speed(real, real_lips) * 1000, 3).tolist()
        out["lip_speed_mm_per_frame"]["authors_sample_frames"] = int(real.shape[0])
        out["lip_vertex_speed_mm_per_frame"]["authors_sample_camera_frame"] = round(region_speed(real, real_lips) * 1000, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vertices", type=int, nargs="+", default=[1000, 5023, 35709])
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--sentences", type=int, default=3)
    parser.add_argument("--quality-subjects", type=int, default=6)
    parser.add_argument("--quality-sentences", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    report = {
        "conditions": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "cache": "warm (one warm-up take)",
            "threads": "numpy default",
        },
        "speed": [speed(n, args.subjects, args.sentences, args.seed) for n in args.vertices],
        "quality": quality(args.quality_subjects, args.quality_sentences, args.seed),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
