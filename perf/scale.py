"""Scaling figures of the executor (reconstruction/executor.py), printed as JSON.

The per-take job is the release encoding available on main: make a synthetic take (the generator),
check it, move it into a canonical frame and encode its vertices with the release codec, and write
the staged row atomically (the work of `write_release`'s take and row passes for one take). It is
run over ``--takes`` takes by:

- the local pool with 1 worker (in this process) and with 2 workers;
- a local Ray cluster started with 1 and with 2 CPUs (``ray.init(num_cpus=N)``), when Ray is installed.

For each: takes per hour (wall clock, after a warm-up that starts the workers and loads the face
model in each), and the peak resident memory of each worker process (``ru_maxrss``). Then the
scheduling overhead per task: ``--noop`` empty tasks on the 2-worker pool and the 2-CPU Ray cluster,
seconds per task; and how long ``ray.init`` took.

    .venv/bin/python perf/scale.py [--takes 12] [--vertices 5023] [--noop 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

_MODEL_CACHE: dict = {}


def encode_take_job(subject: int, sentence: int, seed: int, num_vertices: int, out: str) -> dict:
    """One take: synthesise, check, canonicalize against its own reference, encode, write `out` atomically."""
    import numpy as np

    from builders.synthetic import SyntheticSource
    from mmface4d_datasets.codec import encode
    from mmface4d_datasets.facemodel import load_face_model
    from mmface4d_datasets.files import atomic_write_bytes, npz_bytes
    from mmface4d_datasets.release import canonical
    from mmface4d_datasets.release.schema import TopologyInfo
    from mmface4d_datasets.synthetic.takes import take_id_of

    if num_vertices not in _MODEL_CACHE:
        model = load_face_model("default", num_vertices=num_vertices)
        _MODEL_CACHE[num_vertices] = (model, TopologyInfo.from_face_model(model))
    model, topology = _MODEL_CACHE[num_vertices]
    source = SyntheticSource(key=take_id_of(subject, sentence), subject_index=subject, sentence_index=sentence,
                             seed=seed, model=model)
    sequence = source.load()
    sequence.check(topology.num_vertices)
    stable = canonical.stable_vertex_ids(topology.region_masks, topology.keypoints)
    reference = canonical.take_reference(sequence.vertices, stable)
    template = canonical.canonical_template([reference], topology.keypoints, stable)
    vertices, head_pose = canonical.canonicalize(sequence.vertices, template, stable)
    atomic_write_bytes(Path(out), npz_bytes({"vertices": np.frombuffer(encode(vertices, max_error=1e-5), dtype=np.uint8),
                                             "head_pose": head_pose}))
    return {"frames": int(sequence.vertices.shape[0]), "pid": os.getpid(),
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def noop_job(value: int) -> int:
    return value


def measure(executor, takes: int, num_vertices: int, seed: int) -> dict:
    from reconstruction.executor import Job

    folder = Path(tempfile.mkdtemp(prefix="mmface4d-perf-scale-"))
    try:
        warm = [Job(f"warm{i}", encode_take_job, (99, i, seed, num_vertices, str(folder / f"warm{i}.npz")))
                for i in range(max(1, executor.workers))]
        executor.run(warm)  # workers started, model loaded in each
        jobs = [Job(f"{i:03d}", encode_take_job, (i // 3, i % 3, seed, num_vertices, str(folder / f"{i:03d}.npz")),
                    folder / f"{i:03d}.npz") for i in range(takes)]
        start = time.perf_counter()
        summary = executor.run(jobs)
        seconds = time.perf_counter() - start
        if summary.failed:
            raise RuntimeError(f"takes failed: {summary.failed}")
        results = list(summary.results.values())
        frames = sum(r["frames"] for r in results)
        by_pid: dict[int, float] = {}
        for r in results:
            by_pid[r["pid"]] = max(by_pid.get(r["pid"], 0.0), r["max_rss_mb"])
        return {
            "takes": takes, "frames": frames, "seconds": round(seconds, 2),
            "takes_per_hour": round(takes / seconds * 3600),
            "frames_per_second": round(frames / seconds, 1),
            "seconds_per_frame": round(seconds / frames, 4),
            "worker_processes": len(by_pid),
            "peak_rss_mb_per_worker": sorted(round(v) for v in by_pid.values()),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def overhead(executor, count: int) -> float:
    executor.map(noop_job, [(i,) for i in range(4)])  # warm
    start = time.perf_counter()
    outcomes = executor.map(noop_job, [(i,) for i in range(count)])
    seconds = time.perf_counter() - start
    assert outcomes == list(range(count))
    return round(seconds / count * 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--takes", type=int, default=12)
    parser.add_argument("--vertices", type=int, default=5023)
    parser.add_argument("--noop", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()

    from reconstruction.executor import Executor

    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "job": f"synthesise + canonicalize + encode one synthetic take at {args.vertices} vertices",
              "local": {}, "ray": {}, "overhead_ms_per_task": {}}
    for workers in (1, 2):
        with Executor(workers=workers) as executor:
            report["local"][f"workers_{workers}"] = measure(executor, args.takes, args.vertices, args.seed)
            if workers == 2:
                report["overhead_ms_per_task"]["local_pool_2"] = overhead(executor, args.noop)
    try:
        import ray
    except ImportError:
        ray = None
    if ray is not None and not args.no_ray:
        for workers in (1, 2):
            start = time.perf_counter()
            with Executor(workers=workers, ray="local") as executor:
                report["ray"][f"cpus_{workers}_init_s"] = round(time.perf_counter() - start, 2)
                report["ray"][f"cpus_{workers}"] = measure(executor, args.takes, args.vertices, args.seed)
                if workers == 2:
                    report["overhead_ms_per_task"]["ray_2"] = overhead(executor, args.noop)
    else:
        report["ray"] = "not installed (pip install -e '.[scale]')" if ray is None else "skipped (--no-ray)"
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
