"""Scoring speed: frames per second for the four metrics (prints JSON).

DESIGN.md, Performance: scoring. Two measurements, each beside its anchor in the same run:

1. In memory, one thread: ``benchmark.metrics.frame_errors`` (what the scorer runs) on (T, N, 3)
   float32 arrays, against a plain numpy restatement of the authors' formula on the same arrays
   (``d = sqrt(((G - P) ** 2).sum(-1))``, then the reductions) and against a memory floor (one
   subtraction G - P per frame into a reused buffer: the least work that reads both arrays).
2. End to end: a release built from copies of the authors' sample take (35,709 vertices; when the
   sample is absent, a synthetic face of the same size), a static-model submission written with
   the codec (and one with raw float32), scored by ``benchmark.scoring.score_submission``
   (validation, reading, decoding of both sides, metrics; bootstrap off) — first run (files just
   written, so in the page cache) and a second run.

Threads are pinned to 1 (environment variables set before numpy is imported). Each in-memory
figure is the best and the median of ``--repeats`` timed runs after one untimed warm-up run.

    .venv/bin/python perf/score.py [--frames 600] [--repeats 5] [--skip-end-to-end]
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

BFM_VERTICES = 35_709


def plain_numpy(gt: np.ndarray, pred: np.ndarray, lips: np.ndarray, upper: np.ndarray) -> dict:
    """The authors' formula written the obvious way (their script's shape, on float32 arrays)."""
    d = np.sqrt(((gt - pred) ** 2).sum(-1))
    return {
        "lip_max": d[:, lips].max(1).mean(),
        "lip_mean": d[:, lips].mean(),
        "upper_max": d[:, upper].max(1).mean(),
        "face_max": d.max(1).mean(),
    }


def memory_floor(gt: np.ndarray, pred: np.ndarray) -> None:
    buffer = np.empty(gt.shape[1:], dtype=np.float32)
    for t in range(gt.shape[0]):
        np.subtract(gt[t], pred[t], out=buffer)


def timed(function, repeats: int) -> dict:
    function()  # warm-up: caches, page faults of fresh buffers
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return {"best_s": min(times), "median_s": statistics.median(times), "runs": repeats}


def fixture_topology():
    """(triangles, keypoints, source) of the BFM front topology from the sample, or None."""
    from mmface4d_datasets.paths import official_sample_dir

    sample = official_sample_dir()
    if sample is None:
        return None
    from scipy.io import loadmat

    info = loadmat(sample / "BFM" / "facemodel_info.mat")
    return (np.asarray(info["tri"], np.int64) - 1, np.asarray(info["keypoints"], np.int64).ravel() - 1, sample)


def face_data(frames: int, seed: int = 0):
    """(gt, pred, masks, description): a (frames, 35,709, 3) sequence and a noisy prediction."""
    from mmface4d_datasets.facemodel import region_masks

    rng = np.random.default_rng(seed)
    topology = fixture_topology()
    if topology is not None:
        from mmface4d_datasets import official

        triangles, keypoints, sample = topology
        take = official.read_mesh_sequence(sample / "reconstruct_filt", BFM_VERTICES)
        gt = np.ascontiguousarray(np.resize(take, (frames, *take.shape[1:])), dtype=np.float32)
        masks = region_masks(triangles, keypoints, BFM_VERTICES)
        source = f"authors' sample take 000337 ({take.shape[0]} frames, tiled), BFM front masks"
    else:
        from mmface4d_datasets.facemodel import load_face_model

        model = load_face_model("default", num_vertices=BFM_VERTICES)
        masks = region_masks(model.triangles, model.keypoints, BFM_VERTICES)
        gt = np.broadcast_to(model.mean, (frames, BFM_VERTICES, 3)).astype(np.float32)
        gt += (rng.standard_normal(gt.shape) * 1e-3).astype(np.float32)
        source = "embedded synthetic model (sample take absent)"
    pred = gt + (rng.standard_normal(gt.shape) * 1e-3).astype(np.float32)
    return gt, pred, masks, source


def in_memory(frames: int, repeats: int) -> dict:
    from benchmark import metrics

    gt, pred, masks, source = face_data(frames)
    lips, upper = masks["lips"], masks["upper_face"]
    ours = metrics.sequence_errors(gt, pred, lips, upper)
    reference = plain_numpy(gt, pred, lips, upper)
    agreement = max(abs(ours[k] - float(reference[k])) for k in ours)
    results = {
        "ours_frame_errors": timed(lambda: metrics.frame_errors(gt, pred, lips, upper), repeats),
        "plain_numpy_formula": timed(lambda: plain_numpy(gt, pred, lips, upper), repeats),
        "memory_floor_subtract_only": timed(lambda: memory_floor(gt, pred), repeats),
        "ours_with_codetalker_fdd": timed(
            lambda: (metrics.frame_errors(gt, pred, lips, upper), metrics.upper_face_dynamics_deviation(gt, pred, gt[0], upper)),
            max(1, repeats // 2),
        ),
    }
    for entry in results.values():
        entry["frames_per_s_best"] = frames / entry["best_s"]
        entry["frames_per_s_median"] = frames / entry["median_s"]
    return {
        "data": source,
        "frames": frames,
        "num_vertices": BFM_VERTICES,
        "dtype": "float32",
        "bytes_per_array": int(gt.nbytes),
        "lips": int(lips.size),
        "upper_face": int(upper.size),
        "max_abs_difference_vs_plain_numpy_m": agreement,
        "cache": "warm (one untimed run first); arrays larger than the L3 cache, so streamed from memory",
        "results": results,
        "speedup_vs_plain_numpy": results["plain_numpy_formula"]["best_s"] / results["ours_frame_errors"]["best_s"],
        "fraction_of_memory_floor": results["memory_floor_subtract_only"]["best_s"] / results["ours_frame_errors"]["best_s"],
    }


def build_release(folder: Path, subjects: int, takes: int):
    """A release of ``subjects`` x ``takes`` copies of the sample take (or synthetic sequences)."""
    from mmface4d_datasets.facemodel import REGION_RULE_VERSION, region_masks
    from mmface4d_datasets.release.schema import InMemorySource, SourceSequence, TopologyInfo
    from mmface4d_datasets.release.writer import write_release

    topology = fixture_topology()
    rng = np.random.default_rng(1)
    if topology is not None:
        from mmface4d_datasets import official

        triangles, keypoints, sample = topology
        base = official.read_mesh_sequence(sample / "reconstruct_filt", BFM_VERTICES)
        audio, rate = official.read_audio(sample / "000337.wav")
        name, source = "bfm_front", "copies of the authors' sample take 000337 (67 frames each)"
    else:
        from mmface4d_datasets.facemodel import load_face_model

        model = load_face_model("default", num_vertices=BFM_VERTICES)
        triangles, keypoints = model.triangles, model.keypoints
        base = (model.mean[None] + rng.standard_normal((67, BFM_VERTICES, 3)) * 1e-3).astype(np.float32)
        audio, rate = (rng.standard_normal(35733) * 0.05).astype(np.float32), 16000
        name, source = model.topology, "embedded synthetic model (sample take absent)"
    masks = region_masks(triangles, keypoints, BFM_VERTICES)
    info = TopologyInfo(
        name=name,
        num_vertices=BFM_VERTICES,
        triangles=np.asarray(triangles, np.int64),
        keypoints=np.asarray(keypoints, np.int64),
        region_masks=masks,
        region_rule_version=str(REGION_RULE_VERSION),
    )
    sources = []
    for s in range(subjects):
        for k in range(takes):
            # a small per-take motion so that takes differ; the neutral first take makes the template
            wobble = (rng.standard_normal((1, BFM_VERTICES, 3)) * 2e-4).astype(np.float32)
            sentence = "00001" if k == 0 else f"2{1 + k % 6}{k:03d}"
            sources.append(
                InMemorySource(
                    SourceSequence(
                        take_id=f"{s * 100 + k + 1:06d}",
                        subject_id=f"P{s:03d}",
                        sentence_id=sentence,
                        vertices=base + wobble,
                        audio=audio,
                        sample_rate=rate,
                        audio_subtype="FLOAT",
                        topology=name,
                        gender=("female", "male")[s % 2],
                        age=25 + 5 * s,
                    )
                )
            )
    write_release(sources, folder, topology=info, progress=False)
    return source


def end_to_end(subjects: int, takes: int) -> dict:
    from benchmark.models import load_model
    from benchmark.protocol import write_predictions
    from benchmark.scoring import score_submission
    from mmface4d_datasets.release.reader import Release

    with tempfile.TemporaryDirectory(prefix="perf-score-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        source = build_release(tmp / "release", subjects, takes)
        build_s = time.perf_counter() - start
        release = Release(tmp / "release")
        frames = int(release.sequences("test")["num_frames"].sum())
        out = {
            "data": source,
            "release_build_s": build_s,
            "test_sequences": int(len(release.sequences("test"))),
            "test_frames": frames,
            "num_vertices": BFM_VERTICES,
            "threads": 1,
            "runs": {},
        }
        for encoding in ("codec", "float32le"):
            path = tmp / f"static-{encoding}.parquet"
            start = time.perf_counter()
            write_predictions(load_model("static"), release, path, encoding=encoding)
            write_s = time.perf_counter() - start
            runs = []
            for label in ("first (files just written: page cache warm)", "second"):
                start = time.perf_counter()
                result = score_submission(path, release, bootstrap_samples=0)
                seconds = time.perf_counter() - start
                assert result.report is not None, [str(i) for i in result.validation.issues]
                runs.append({"run": label, "seconds": seconds, "frames_per_s": frames / seconds})
            out["runs"][encoding] = {"submission_bytes": path.stat().st_size, "write_submission_s": write_s, "scoring": runs}
        # anchors in the same run: each stage of the end-to-end path alone
        from benchmark import metrics
        from benchmark.submission import open_submission, read_prediction

        start = time.perf_counter()
        records = {record["id"]: record["vertices"] for record in release.iter_records("test")}
        out["stage_ground_truth_decode_s"] = time.perf_counter() - start
        start = time.perf_counter()
        submission = open_submission(tmp / "static-codec.parquet")
        predictions = {sequence_id: read_prediction(submission, sequence_id) for sequence_id in submission.rows}
        out["stage_read_codec_submission_s"] = time.perf_counter() - start
        masks = release.region_masks()
        start = time.perf_counter()
        for sequence_id, gt in records.items():
            metrics.frame_errors(gt, predictions[sequence_id], masks["lips"], masks["upper_face"])
        out["stage_metrics_s"] = time.perf_counter() - start
        out["note"] = "stages timed separately after the scoring runs; scoring = validation + all three"
        return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600, help="frames of the in-memory sequence (default 600 = 20 s)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--subjects", type=int, default=4, help="subjects of the end-to-end release")
    parser.add_argument("--takes", type=int, default=4, help="takes per subject of the end-to-end release")
    parser.add_argument("--skip-end-to-end", action="store_true")
    args = parser.parse_args(argv)
    report = {
        "measurement": "scoring speed (benchmark.metrics / benchmark.scoring)",
        "machine": {
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
        },
        "threads": 1,
        "load_average_1min_at_start": os.getloadavg()[0],
        "in_memory": in_memory(args.frames, args.repeats),
    }
    if not args.skip_end_to_end:
        report["end_to_end"] = end_to_end(args.subjects, args.takes)
    print(json.dumps(report, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
