"""Driver of the multi-node test (tests/test_from_recordings.py), run inside a loopback-only network
namespace: a head and two worker nodes started with the ``ray`` command, ``mmface4d build
from-recordings --ray ADDRESS`` on them, one worker node's raylet killed (SIGKILL by pid) while it
reconstructs a take (the ``--redo`` takes are converted and a Ray worker of that node runs a job:
its process title is ``ray::_call``), every node stopped at the end (also on failure or SIGTERM).
Writes a JSON report.

    python tests/ray_cluster_run.py SESSION --out REL --work WORK --vertices N --redo ID,ID --folder DIR --report R.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reconstruction.local_cluster import LocalCluster, only_loopback  # noqa: E402


def _terminate(signum, frame):
    raise SystemExit(f"signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("session")
    parser.add_argument("--out", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--vertices", required=True)
    parser.add_argument("--redo", required=True, help="the take ids the run redoes (comma-separated)")
    parser.add_argument("--folder", required=True)
    parser.add_argument("--report", required=True)
    parser.add_argument("--deadline", type=float, default=240.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    start = time.monotonic()
    deadline = start + args.deadline
    folder = Path(args.folder)
    report: dict = {"only_loopback": only_loopback()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    cluster = LocalCluster(folder / "cluster", (1, 1), env=env)
    try:
        cluster.start()
        report["start_s"] = round(time.monotonic() - start, 1)
        report["address"] = cluster.address
        command = [sys.executable, "-m", "mmface4d_datasets", "build", "from-recordings", args.session, "--ray", cluster.address]
        command += ["--vertices", args.vertices, "--no-detector", "--quiet"]

        # no token where Ray looks (a HOME without ~/.ray/auth_token, no RAY_AUTH_TOKEN*): a named error,
        # exit 2, before any work; run beside the build (Ray's client retries for about 20 s first)
        empty_home = folder / "home-without-token"
        empty_home.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        refused = subprocess.Popen(
            [*command, "--out", str(folder / "refused"), "--work", str(folder / "refused.work")],
            env=env | {"HOME": str(empty_home)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

        # the token in RAY_AUTH_TOKEN_PATH (RAY_AUTH_MODE unset): found as Ray's clients find it
        work = Path(args.work)
        with open(folder / "build.out", "wb") as out, open(folder / "build.err", "wb") as err:
            build = subprocess.Popen(
                [*command, "--out", args.out, "--work", args.work],
                env=env | {"RAY_AUTH_TOKEN_PATH": str(cluster.token_path)},
                stdout=out,
                stderr=err,
            )
        killed = None
        try:
            while build.poll() is None and time.monotonic() < deadline:
                if killed is None:
                    killed = _kill_a_worker_node(cluster, work / "converted", args.redo.split(","))
                    if killed is not None:
                        killed["after_s"] = round(time.monotonic() - t0, 1)
                time.sleep(0.05)
            if build.poll() is None:
                report["timed_out"] = True
            _, refused_err = refused.communicate(timeout=max(5, deadline - time.monotonic()))
            report["no_token"] = {"returncode": refused.returncode, "stderr": refused_err[-2000:]}
        finally:
            for process in (build, refused):
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(20)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
        report["killed"] = killed
        report["killed_node_ended"] = killed is not None and not cluster.node(killed["node"]).alive()
        report["build"] = {
            "returncode": build.returncode,
            "seconds": round(time.monotonic() - t0, 1),
            "stdout": (folder / "build.out").read_text(errors="replace"),
            "stderr": (folder / "build.err").read_text(errors="replace")[-4000:],
        }
    except BaseException as exc:
        import traceback

        report["error"] = "".join(traceback.format_exception(exc))[-4000:]
        raise
    finally:
        cluster.stop()
        report["leftover_process_groups"] = cluster.leftovers()
        report["total_s"] = round(time.monotonic() - start, 1)
        Path(args.report).write_text(json.dumps(report, indent=1))


_CONVERTED_AT: list[float] = []


def _kill_a_worker_node(cluster: LocalCluster, converted: Path, redo: list[str]) -> dict | None:
    """Once the takes to redo are converted and a second has passed (the reconstruct stage runs: a fit
    takes several seconds), SIGKILL the raylet of the first worker node one of whose Ray workers runs
    a job."""
    if not _CONVERTED_AT:
        if all((converted / key).is_dir() for key in redo):
            _CONVERTED_AT.append(time.monotonic())
        return None
    if time.monotonic() < _CONVERTED_AT[0] + 1.0:
        return None
    for node in cluster.nodes:
        busy = node.busy_workers("_call") if node.name.startswith("worker") else []
        if busy:
            raylet = cluster.kill_raylet(node.name)
            return {"node": node.name, "worker_pids": busy, "raylet_pid": raylet}
    return None


if __name__ == "__main__":
    main()
