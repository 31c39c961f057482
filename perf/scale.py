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

With ``--from-recordings K``: instead, the whole maintainer path (`mmface4d build from-recordings`)
on K simulated takes (`rig simulate --mkv`, ``--sim-resolution``, ``--sim-frames`` frames each, a
``--vertices`` face model), with 1 and with 2 local workers (and a local 2-CPU Ray cluster unless
``--no-ray``), each from an empty work folder: seconds per take of each stage (convert,
reconstruct: the mean of the per-take job times the summary reports), the release stage's and the
whole run's wall clock, and takes per hour.

    .venv/bin/python perf/scale.py --from-recordings 4 --sim-frames 5 --vertices 2000

With ``--nodes``: a real multi-node Ray cluster on this machine (``ray start --head`` and ``ray start
--address`` per node, :mod:`reconstruction.local_cluster`, run inside a loopback-only network namespace:
the script re-runs itself under ``unshare -rn``), the same total of ``--cpus`` CPUs split over 1, 2
and 3 nodes (1: the head holds them all; 2: head + one worker node; 3: a head without CPUs + two
worker nodes), the executor connected by address with token authentication: takes per hour of the
same ``--takes`` encode jobs, scheduling overhead per task (``--noop`` empty tasks), how long the
cluster took to start, and, on 3 nodes, the time a killed node costs: one worker node's raylet is
SIGKILLed ``--kill-after`` s into the run; the run's wall clock against the unkilled 3-node run,
how long until the loss was reported, and the retries counted.

    .venv/bin/python perf/scale.py --nodes --takes 12 --vertices 5023 --noop 100
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
    source = SyntheticSource(key=take_id_of(subject, sentence), subject_index=subject, sentence_index=sentence, seed=seed, model=model)
    sequence = source.load()
    sequence.check(topology.num_vertices)
    stable = canonical.stable_vertex_ids(topology.region_masks, topology.keypoints)
    reference = canonical.take_reference(sequence.vertices, stable)
    template = canonical.canonical_template([reference], topology.keypoints, stable)
    vertices, head_pose = canonical.canonicalize(sequence.vertices, template, stable)
    atomic_write_bytes(
        Path(out), npz_bytes({"vertices": np.frombuffer(encode(vertices, max_error=1e-5), dtype=np.uint8), "head_pose": head_pose})
    )
    return {
        "frames": int(sequence.vertices.shape[0]),
        "pid": os.getpid(),
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def noop_job(value: int) -> int:
    return value


def measure(executor, takes: int, num_vertices: int, seed: int, warm_each: int | None = None, on_start=None) -> dict:
    """The encode jobs' figures; ``warm_each`` warm-up jobs first (default: one per worker);
    ``on_start()`` just before the timed run."""
    from reconstruction.executor import Job

    folder = Path(tempfile.mkdtemp(prefix="mmface4d-perf-scale-"))
    try:
        warm = [
            Job(f"warm{i}", encode_take_job, (99, i, seed, num_vertices, str(folder / f"warm{i}.npz")))
            for i in range(max(1, warm_each or executor.workers))
        ]
        executor.run(warm)  # workers started, model loaded in each
        jobs = [
            Job(f"{i:03d}", encode_take_job, (i // 3, i % 3, seed, num_vertices, str(folder / f"{i:03d}.npz")), folder / f"{i:03d}.npz")
            for i in range(takes)
        ]
        if on_start is not None:
            on_start()
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
            "takes": takes,
            "frames": frames,
            "seconds": round(seconds, 2),
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


def from_recordings(takes: int, frames: int, resolution: str, num_vertices: int, ray: bool) -> dict:
    """The figures of `build from-recordings` on ``takes`` simulated takes (see the module docstring)."""
    from builders.from_recordings import FaceModelSpec, build_from_recordings
    from capture_rig.simulate import SimulationOptions, simulate
    from reconstruction.executor import Executor

    subjects = max(2, (takes + 1) // 2)
    sentences = max(1, -(-takes // subjects))
    folder = Path(tempfile.mkdtemp(prefix="mmface4d-perf-from-recordings-"))
    try:
        start = time.perf_counter()
        sim = simulate(
            folder / "sim",
            subjects,
            sentences,
            seed=0,
            progress=False,
            options=SimulationOptions(resolution=resolution, max_frames=frames, mkv=True, num_vertices=num_vertices),
        )
        report = {
            "job": f"build from-recordings on {len(sim['written'])} simulated takes ({subjects} subjects x "
            f"{sentences} sentences, {resolution}, {frames} frames, {num_vertices}-vertex model)",
            "simulate_seconds": round(time.perf_counter() - start, 2),
            "runs": {},
        }
        kinds = [("workers_1", 1, None), ("workers_2", 2, None)] + ([("ray_local_2", 2, "local")] if ray else [])
        for name, workers, address in kinds:
            out = folder / name
            start = time.perf_counter()
            with Executor(workers=workers, ray=address) as executor:
                init = time.perf_counter() - start
                start = time.perf_counter()
                summary = build_from_recordings(
                    [folder / "sim" / "session"],
                    out,
                    executor=executor,
                    face_model=FaceModelSpec("default", num_vertices),
                    detect=False,
                    progress=False,
                )
                seconds = time.perf_counter() - start
            if not summary["ok"]:
                raise RuntimeError(f"{name}: the run failed: {json.dumps(summary['stages'], indent=1)[:3000]}")
            stages = summary["stages"]
            done = len(summary["takes"])
            report["runs"][name] = {
                "executor": summary["executor"],
                "executor_start_s": round(init, 2),
                "takes": done,
                "seconds": round(seconds, 2),
                "takes_per_hour": round(done / seconds * 3600, 1),
                "stage_wall_seconds": {k: stages[k]["seconds"] for k in ("convert", "reconstruct", "release")},
                "seconds_per_take": {k: round(sum(stages[k]["take_seconds"].values()) / done, 3) for k in ("convert", "reconstruct")},
                "seconds_per_frame": {
                    k: round(sum(stages[k]["take_seconds"].values()) / (done * frames), 3) for k in ("convert", "reconstruct")
                },
            }
        return report
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _cluster_run(cpus_split: tuple, takes: int, num_vertices: int, seed: int, noop: int, folder: Path, kill_after: float | None) -> dict:
    """One cluster (``cpus_split`` = (head CPUs, worker node CPUs...)): start, connect, measure, stop."""
    import threading

    from reconstruction.executor import Executor
    from reconstruction.local_cluster import LocalCluster

    root = str(Path(__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    head, *workers = cpus_split
    cluster = LocalCluster(folder, tuple(workers), head_cpus=head, env=env, token=folder.parent / "auth_token")
    start = time.perf_counter()
    try:
        cluster.start()
        started = time.perf_counter() - start
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(cluster.token_path)
        os.environ.pop("RAY_AUTH_MODE", None)
        start = time.perf_counter()
        executor = Executor(ray=cluster.address)
        connect = time.perf_counter() - start
        try:
            out = {"nodes": 1 + len(workers), "cpus_per_node": list(cpus_split), "cluster_start_s": round(started, 2)}
            out["connect_s"] = round(connect, 2)
            out["executor"] = executor.describe()
            killed: dict = {}

            def kill():
                time.sleep(kill_after)
                for node in cluster.nodes[1:]:
                    if node.busy_workers("_call"):
                        killed.update(node=node.name, raylet_pid=cluster.kill_raylet(node.name), time=time.time())
                        return

            on_start = None if kill_after is None else (lambda: threading.Thread(target=kill, daemon=True).start())
            out |= measure(executor, takes, num_vertices, seed, warm_each=sum(cpus_split), on_start=on_start)
            if kill_after is not None:
                losses = executor.losses
                out["killed"] = {k: v for k, v in killed.items() if k != "time"}
                out["retried"] = len(losses)
                if killed and losses:
                    out["loss_reported_after_s"] = round(losses[0]["time"] - killed["time"], 2)
            else:
                out["overhead_ms_per_task"] = overhead(executor, noop)
            return out
        finally:
            executor.close()
    finally:
        cluster.stop()


def nodes(takes: int, num_vertices: int, seed: int, noop: int, cpus: int, kill_after: float) -> dict:
    """The ``--nodes`` figures (see the module docstring)."""
    folder = Path(tempfile.mkdtemp(prefix="mmface4d-perf-nodes-"))
    splits = {3: (0, cpus - cpus // 2, cpus // 2), 2: (cpus - cpus // 2, cpus // 2), 1: (cpus,)}
    report = {"job": f"synthesise + canonicalize + encode one synthetic take at {num_vertices} vertices", "runs": {}}
    try:
        for count, split in splits.items():
            report["runs"][f"nodes_{count}"] = _cluster_run(split, takes, num_vertices, seed, noop, folder / f"n{count}", None)
        killed = _cluster_run(splits[3], takes, num_vertices, seed, noop, folder / "killed", kill_after)
        # the extra wall clock: the lost attempt redone, Ray's detection, and the rest of the run on the
        # CPUs left (no replacement node here)
        killed["lost_s"] = round(killed["seconds"] - report["runs"]["nodes_3"]["seconds"], 2)
        report["runs"]["nodes_3_one_killed"] = killed
        return report
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--takes", type=int, default=12)
    parser.add_argument("--vertices", type=int, default=5023)
    parser.add_argument("--noop", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument(
        "--from-recordings", type=int, default=None, metavar="K", help="measure `build from-recordings` on K simulated takes instead"
    )
    parser.add_argument("--sim-frames", type=int, default=5)
    parser.add_argument("--sim-resolution", default="720p-binned")
    parser.add_argument("--nodes", action="store_true", help="measure a 1-, 2- and 3-node local Ray cluster instead")
    parser.add_argument("--cpus", type=int, default=2, help="with --nodes: the cluster's CPUs in total")
    parser.add_argument("--kill-after", type=float, default=3.0, help="with --nodes: seconds into the run a worker node is killed")
    args = parser.parse_args()
    if args.nodes:
        from reconstruction.local_cluster import loopback_namespace_command, only_loopback

        if not only_loopback():  # every node on 127.0.0.1: run again in a loopback-only namespace
            import subprocess
            import sys

            raise SystemExit(subprocess.run(loopback_namespace_command([sys.executable, *sys.argv])).returncode)
        import contextlib
        import sys

        report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average_at_start": os.getloadavg()}}
        with contextlib.redirect_stdout(sys.stderr):  # Ray's driver prints a lost node's log on stdout
            report |= nodes(args.takes, args.vertices, args.seed, args.noop, args.cpus, args.kill_after)
        report["machine"]["load_average_at_end"] = os.getloadavg()
        print(json.dumps(report, indent=2))
        return
    if args.from_recordings:
        report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average_at_start": os.getloadavg()}}
        report |= from_recordings(args.from_recordings, args.sim_frames, args.sim_resolution, args.vertices, ray=not args.no_ray)
        report["machine"]["load_average_at_end"] = os.getloadavg()
        print(json.dumps(report, indent=2))
        return

    from reconstruction.executor import Executor

    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "job": f"synthesise + canonicalize + encode one synthetic take at {args.vertices} vertices",
        "local": {},
        "ray": {},
        "overhead_ms_per_task": {},
    }
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
