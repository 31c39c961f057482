"""A multi-node Ray cluster on one machine, started with the ``ray`` command the way a user starts one.

:class:`LocalCluster` runs ``ray start --head`` and ``ray start --address=HEAD`` for each worker node,
every node with its own CPUs, custom resources and temp dir, each as ``ray start --block`` in its own
process group, so that it can be stopped by process id (``ray stop`` would stop every Ray process
of this user on the machine, other people's clusters included) and so that one node's raylet can
be killed by its pid (a node lost mid-run). It is what the multi-node test and ``perf/scale.py``
use; a maintainer can use it to try a cluster run before renting one.

Ray takes the machine's interface address as a node's IP: run a cluster of this class inside a
network namespace that has only loopback (:func:`loopback_namespace_command`: ``unshare -rn``),
where every node and the driver get ``127.0.0.1`` and nothing listens on a real interface.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mmface4d_datasets.errors import MMFace4DError


class ClusterError(MMFace4DError):
    """A node of the local cluster did not start (its log is quoted)."""


def loopback_namespace_command(argv: list[str]) -> list[str]:
    """``argv`` run inside a new user + network namespace with only loopback up (``unshare -rn``)."""
    import shlex

    return ["unshare", "-rn", "sh", "-c", "ip link set lo up && exec " + " ".join(shlex.quote(a) for a in argv)]


def loopback_namespace_problem() -> str | None:
    """Why :func:`loopback_namespace_command` cannot run here (``None`` when it can)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "`unshare` or `ip` is not installed"
    try:
        done = subprocess.run(loopback_namespace_command(["true"]), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`unshare -rn` failed: {exc}"
    if done.returncode != 0:
        return f"`unshare -rn` is not permitted here: {done.stderr.strip() or done.returncode}"
    return None


def only_loopback() -> bool:
    """Whether this process's network namespace has no interface but loopback."""
    try:
        return [name for _, name in socket.if_nameindex()] == ["lo"]
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    """One node: its ``ray start --block`` process (a process group of its own), temp dir and log."""

    name: str
    process: subprocess.Popen
    temp_dir: Path
    log: Path
    cpus: int
    resources: dict = field(default_factory=dict)

    def raylet_pid(self) -> int | None:
        """The pid of this node's raylet (a child of its ``ray start`` process), or None."""
        for pid in _children(self.process.pid):
            if _comm(pid) == "raylet":
                return pid
        return None

    def alive(self) -> bool:
        return self.process.poll() is None

    def busy_workers(self, function: str = "") -> list[int]:
        """Pids of this node's Ray workers running a task (process title ``ray::FUNCTION``; idle ones
        are ``ray::IDLE``), of ``function`` when given."""
        busy = []
        for pid in sorted(_descendants(self.process.pid)):
            title = _cmdline(pid)
            if title.startswith("ray::") and not title.startswith("ray::IDLE") and title[5:].startswith(function):
                busy.append(pid)
        return busy


class LocalCluster:
    """A head node (``head_cpus``, default 0: it schedules, runs no take) and one worker node per entry
    of ``workers`` (its CPUs; custom resource ``workerN``: 1), logs in ``folder`` (temp dirs: short ones under /tmp),
    each with an object store of ``object_store_mb``. Use as a context manager: every node
    started is stopped on exit, also on failure. ``env``: extra environment of the nodes (and of their
    workers), e.g. ``PYTHONPATH`` so that they import the same code as the driver. ``token``: token
    authentication (Ray's default for a head that finds a token): every node runs with
    ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN_PATH`` = ``folder/auth_token`` (made here, 256 random
    bits, as ``ray get-auth-token --generate`` makes one), or the token file given; a client needs
    that token to connect (one process keeps the first token it loaded: give clusters that one
    client connects to in turn the same token file)."""

    def __init__(
        self,
        folder,
        workers=(1, 1),
        *,
        head_cpus: int = 0,
        env: dict | None = None,
        token: bool | str | os.PathLike = True,
        object_store_mb: int = 200,
        ray: str | None = None,
    ):
        self.folder = Path(folder)
        self.worker_cpus = list(workers)
        self.head_cpus = head_cpus
        self.object_store_mb = object_store_mb
        self.env = {**os.environ, **(env or {})}
        self.token_path: Path | None = None
        if token:
            self.token_path = self.folder / "auth_token" if token is True else Path(token)
            self.env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_path)}
        else:
            self.env["RAY_AUTH_MODE"] = "disabled"
        self.ray = ray or str(Path(sys.executable).with_name("ray"))
        self.nodes: list[Node] = []
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"

    # ---------------------------------------------------------------------------------------- start
    def start(self, timeout: float = 120.0) -> LocalCluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.token_path is not None and not self.token_path.exists():
            import secrets

            self.token_path.touch(mode=0o600)
            self.token_path.write_text(secrets.token_hex(32))
        try:
            common = ["--node-ip-address", "127.0.0.1", "--disable-usage-stats", "--block"]
            common += ["--object-store-memory", str(self.object_store_mb * 1024 * 1024)]
            head = [
                self.ray,
                "start",
                "--head",
                "--port",
                str(self.port),
                "--include-dashboard",
                "false",
                "--num-cpus",
                str(self.head_cpus),
            ]
            self._start("head", [*head, *common], self.head_cpus, {})
            self.wait_for_nodes(1, timeout)
            for index, cpus in enumerate(self.worker_cpus, 1):
                name = f"worker{index}"
                resources = {name: 1}
                argv = [self.ray, "start", "--address", self.address, "--num-cpus", str(cpus), "--resources", _json(resources)]
                self._start(name, [*argv, *common], cpus, resources)
            self.wait_for_nodes(1 + len(self.worker_cpus), timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, name: str, argv: list[str], cpus: int, resources: dict) -> None:
        import tempfile

        # Ray's socket paths live under the temp dir and a Unix socket path has at most 107 bytes:
        # a short folder under /tmp (removed by stop), whatever `folder` is.
        temp_dir = Path(tempfile.mkdtemp(prefix=f"mmf4d-{name}-", dir="/tmp"))
        log = self.folder / f"{name}.log"
        argv = [*argv, "--temp-dir", str(temp_dir)]
        with open(log, "wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        self.nodes.append(Node(name, process, temp_dir, log, cpus, resources))

    def wait_for_nodes(self, count: int, timeout: float) -> None:
        """Until ``count`` nodes have a raylet (a node whose ``ray start`` ended is an error)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                if not node.alive():
                    raise ClusterError(f"ray node {node.name} ended at start (exit {node.process.returncode}): {_tail(node.log)}")
            ready = [node for node in self.nodes if node.raylet_pid() is not None and _started(node.log)]
            if len(ready) >= count:
                return
            time.sleep(0.2)
        raise ClusterError(f"the local Ray cluster did not start {count} node(s) in {timeout:.0f} s: {_tail(self.nodes[-1].log)}")

    # ----------------------------------------------------------------------------------- lose, stop
    def kill_raylet(self, name: str) -> int:
        """SIGKILL the raylet of node ``name`` (the node is lost; its ``ray start --block`` notices and
        ends the node's other processes). Returns the raylet's pid."""
        node = self.node(name)
        pid = node.raylet_pid()
        if pid is None:
            raise ClusterError(f"node {name} has no raylet")
        os.kill(pid, signal.SIGKILL)
        return pid

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def node_of_pid(self, pid: int) -> str | None:
        """The node whose process tree holds ``pid`` (a task's worker process), or None."""
        for node in self.nodes:
            if pid in _descendants(node.process.pid):
                return node.name
        return None

    def leftovers(self) -> list[int]:
        """Process groups of this cluster's nodes that still have a process (empty after :meth:`stop`)."""
        left = []
        for node in self.nodes:
            try:
                os.killpg(node.process.pid, 0)
            except ProcessLookupError:
                continue
            except PermissionError:
                pass
            left.append(node.process.pid)
        return left

    def stop(self, grace: float = 10.0) -> None:
        """Stop every node started: SIGTERM to each node's process group, SIGKILL what is left."""
        groups = []
        for node in reversed(self.nodes):
            groups.append(node.process.pid)
            _signal_group(node.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for node in self.nodes:
            try:
                node.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for group in groups:  # the nodes' own processes (raylet, GCS, agents, workers) too
            _signal_group(group, signal.SIGKILL)
        for node in self.nodes:
            if node.process.poll() is None:
                node.process.wait(5)
        deadline = time.monotonic() + 10
        while self.leftovers() and time.monotonic() < deadline:  # killed processes reaped by init
            time.sleep(0.1)
        for node in self.nodes:
            shutil.rmtree(node.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _json(value) -> str:
    import json

    return json.dumps(value)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for child in _children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _started(log: Path) -> bool:
    try:
        return "Ray runtime started" in log.read_text(errors="replace")
    except OSError:
        return False


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
