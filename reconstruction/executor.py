"""Run many per-take jobs: in this process, in a local process pool, or as Ray tasks on a cluster.

One executor serves every per-take stage (convert, reconstruct, encode into a release):

- ``Executor(workers=1)`` runs jobs in this process; ``workers=N`` (N > 1) in a local pool of N
  processes (``concurrent.futures``, spawned, so no thread pool is inherited from this process);
  ``ray="auto"`` or ``ray="ray://host:10001"`` / ``"host:6379"`` runs them as Ray tasks on an existing
  cluster (``ray.init(address=...)``); ``ray="local"`` starts a local Ray instance (``workers`` CPUs).
- BLAS / OpenMP / torch threads are pinned to one per task everywhere (environment variables for
  the workers, ``torch.set_num_threads(1)`` and, when ``threadpoolctl`` is installed, its limit),
  so a take's output bytes do not depend on where it ran.
- :meth:`Executor.run` takes :class:`Job` objects, each naming the file it produces: a job whose
  output exists is skipped (a rerun resumes), the job itself writes its output atomically (temp name,
  rename), a job that raises is reported by key with its error and the others go on, and a job whose
  worker process or node was lost (killed, out of memory, segfault; on Ray also a dead node, a
  lost object) is run again up to ``retries`` times, each loss counted and named in the
  :class:`RunSummary` (done, skipped, failed, retried). On Ray the executor resubmits such a task
  itself (Ray's own ``max_retries`` is 0, so no retry goes unseen) and Ray schedules it on a live
  node; the local pool is rebuilt after a ``BrokenProcessPool``.
- No result lives only in a node's object store: a job writes its output into the shared work
  folder itself, and returns a small summary, which Ray keeps in the driver's memory.
  :meth:`Executor.check_shared` tells at start, not after hours, when a cluster's nodes do not see
  the same work folder.
- :meth:`Executor.map` is the plain form the core's release writer takes (``write_release(map=...)``):
  results in input order, the raised exception in place of the result of an item that failed.

Ray is imported only when ``ray`` is given (the ``scale`` extra). Connecting to a cluster with token
authentication finds the token where Ray's clients look (:data:`RAY_TOKEN_PLACES`); a missing one is a
:class:`RayTokenMissing` naming them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from mmface4d_datasets.errors import MMFace4DError

#: Environment of every worker: one thread for each BLAS / OpenMP library.
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "BLIS_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}
DEFAULT_RETRIES = 3
#: Where Ray's clients look for the token of a cluster with token authentication, in this order.
RAY_TOKEN_PLACES = (
    "the RAY_AUTH_TOKEN environment variable",
    "the file named by the RAY_AUTH_TOKEN_PATH environment variable",
    "~/.ray/auth_token",
)
#: The probe file :meth:`Executor.check_shared` writes into the work folder (and removes).
SHARED_PROBE = ".shared-folder-check"


class ExecutorError(MMFace4DError):
    """The executor could not start (bad worker count, Ray missing or unreachable)."""


class RayTokenMissing(ExecutorError):
    """The Ray cluster uses token authentication and no token was found where Ray looks."""


class NotShared(ExecutorError):
    """A node of the Ray cluster does not see the work folder (or an input) as this machine does."""


class WorkerDied(MMFace4DError):
    """The process (or node) running a job was lost more often than retries allow."""


@dataclass(frozen=True)
class Job:
    """One per-take job: ``function(*args)`` writes ``output`` (atomically); ``key`` names the take.

    ``function`` must be importable by name (a module-level function) so that it reaches a worker.
    ``output``: when it exists the job is skipped; ``None`` means always run.
    """

    key: str
    function: Callable
    args: tuple = ()
    output: Path | None = None


@dataclass
class RunSummary:
    """What :meth:`Executor.run` did: keys done, skipped (output already there), failed (key -> error)
    and retried (key -> why each earlier attempt was lost: its worker process or node died)."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    retried: dict[str, list[str]] = field(default_factory=dict)
    results: dict[str, object] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict:
        return {
            "done": sorted(self.done),
            "skipped": sorted(self.skipped),
            "failed": dict(sorted(self.failed.items())),
            "retried": dict(sorted(self.retried.items())),
            "counts": {
                "done": len(self.done),
                "skipped": len(self.skipped),
                "failed": len(self.failed),
                "retried": sum(len(v) for v in self.retried.values()),
            },
        }


def pin_threads() -> None:
    """One BLAS / OpenMP / torch thread in this process (run in every worker before a job)."""
    os.environ.update(THREAD_ENV)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1)


#: The process whose threads `_call` has pinned (workers run many jobs; threadpoolctl's limit walks the
#: loaded libraries, so it is set once per process, not per job).
_pinned_pid: int | None = None


def _call(function: Callable, args: tuple):
    """Run one job in a worker, threads pinned (once per worker process)."""
    global _pinned_pid
    if _pinned_pid != os.getpid():
        pin_threads()
        _pinned_pid = os.getpid()
    return function(*args)


@contextlib.contextmanager
def _thread_environment():
    """THREAD_ENV in this process's environment for the duration (what spawned workers inherit)."""
    saved = {name: os.environ.get(name) for name in THREAD_ENV}
    os.environ.update(THREAD_ENV)
    try:
        yield
    finally:
        _restore_environment(saved)


def _restore_environment(saved: dict) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextlib.contextmanager
def _pinned_here():
    """Pin threads in this process for the duration (workers=1), then restore what can be restored."""
    saved = {name: os.environ.get(name) for name in THREAD_ENV}
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    limits = contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(1)
    except ImportError:
        pass
    os.environ.update(THREAD_ENV)
    if torch is not None:
        torch.set_num_threads(1)
    try:
        with limits:
            yield
    finally:
        _restore_environment(saved)
        if torch is not None and torch_threads is not None:
            torch.set_num_threads(torch_threads)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MMFace4DError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class Executor:
    """Runs per-take jobs (see the module docstring). Use as a context manager or call :meth:`close`.

    workers: processes of the local pool (1: in this process); with ``ray``, the CPUs of a Ray
        instance this executor starts itself (``ray="local"``), ignored for an existing cluster.
    ray: ``None`` (local), ``"local"`` (start a local Ray instance), ``"auto"`` or an address
        (connect to an existing cluster).
    retries: how often a job whose worker died is run again.
    """

    def __init__(self, workers: int = 1, *, ray: str | None = None, retries: int = DEFAULT_RETRIES):
        if not isinstance(workers, int) or workers < 1:
            raise ExecutorError(f"--workers must be a whole number >= 1, got {workers!r}")
        if retries < 0:
            raise ExecutorError(f"retries must be >= 0, got {retries}")
        self.workers = workers
        self.retries = retries
        self.ray_address = ray
        #: Every lost attempt of this executor's jobs: {"description", "item" (key or index), "error", "time"}.
        self.losses: list[dict] = []
        self._ray = None
        self._ray_started_here = False
        self._pool: ProcessPoolExecutor | None = None
        if ray is not None:
            self._ray, self._ray_started_here = _connect_ray(ray, workers)

    # ----------------------------------------------------------------- public
    def describe(self) -> str:
        if self._ray is not None:
            cpus = int(self._ray.cluster_resources().get("CPU", 0))
            nodes = sum(1 for node in self._ray.nodes() if node.get("Alive"))
            return f"Ray ({self.ray_address}, {cpus} CPUs on {nodes} node{'s' if nodes != 1 else ''})"
        return "this process" if self.workers == 1 else f"a local pool of {self.workers} processes"

    def map(self, function: Callable, items: Iterable[tuple], *, progress: bool = False, description: str = "takes") -> list:
        """``[function(*args) for args in items]`` run by the workers, in input order; an item whose
        function raised (or whose worker died ``retries + 1`` times) gives its exception instead."""
        items = [tuple(args) for args in items]
        bar = _bar(len(items), description) if progress and items else None
        outcomes = self._execute(
            function,
            items,
            lambda index, outcome: bar is not None and bar.update(1),
            lambda index, reason: self._lost(description, index, reason),
        )
        if bar is not None:
            bar.close()
        return outcomes

    def run(self, jobs: Sequence[Job], *, progress: bool = False, description: str = "takes") -> RunSummary:
        """Run ``jobs`` (keys unique); skip those whose output exists; see the module docstring."""
        keys = [job.key for job in jobs]
        if len(set(keys)) != len(keys):
            raise ExecutorError("job keys given more than once: " + ", ".join(sorted({k for k in keys if keys.count(k) > 1})))
        summary = RunSummary()
        todo = []
        for job in jobs:
            if job.output is not None and Path(job.output).exists():
                summary.skipped.append(job.key)
            else:
                todo.append(job)
        bar = _bar(len(todo), description) if progress and todo else None

        def record(index, outcome):
            job = todo[index]
            if isinstance(outcome, BaseException):
                summary.failed[job.key] = _describe(outcome)
                if progress:
                    logging.getLogger(__name__).warning("mmface4d: take %r failed: %s", job.key, _describe(outcome))
            else:
                summary.done.append(job.key)
                summary.results[job.key] = outcome
            if bar is not None:
                bar.update(1)

        def lost(index, reason):
            job = todo[index]
            summary.retried.setdefault(job.key, []).append(reason)
            self._lost(description, job.key, reason)
            if progress:
                logging.getLogger(__name__).warning("mmface4d: take %r lost, running it again: %s", job.key, reason)

        # One function per run keeps the calls uniform: each job brings its own function.
        self._execute(_job_call, [(job.function, job.args) for job in todo], record, lost)
        if bar is not None:
            bar.close()
        return summary

    def _lost(self, description: str, item, reason: str) -> None:
        self.losses.append({"description": description, "item": item, "error": reason, "time": time.time()})

    def check_shared(self, folder: str | os.PathLike, paths: Iterable[str | os.PathLike] = (), *, timeout: float = 120.0) -> None:
        """On a Ray cluster: check that every live node sees ``folder`` (a probe file written here into
        it, read back on each node) and each of ``paths`` (a file: the same size; a folder: there) as
        this machine does; raise :class:`NotShared` naming the nodes and paths that do not. The jobs
        pass paths, not data, so a cluster without a shared file system must fail here, at start.
        Nothing to check for a local executor."""
        if self._ray is None:
            return
        import secrets

        from mmface4d_datasets.files import atomic_write_bytes

        ray = self._ray
        folder = Path(folder).resolve()
        probe = folder / SHARED_PROBE
        token = secrets.token_hex(16)
        expected = {str(probe): len(token)}
        for path in paths:
            path = Path(path).resolve()
            expected[str(path)] = path.stat().st_size if path.is_file() else -1
        atomic_write_bytes(probe, token.encode())
        try:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            nodes = [node for node in ray.nodes() if node.get("Alive")]
            remote = ray.remote(_seen_here)
            refs = {
                remote.options(
                    num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
                ).remote(expected, str(probe), token): node
                for node in nodes
            }
            ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
            problems = []
            for ref in ready:
                node = refs[ref]
                try:
                    missing = ray.get(ref)
                except Exception as exc:  # the check itself could not run there
                    missing = [f"(the check failed: {_describe(_ray_cause(exc))})"]
                if missing:
                    problems.append(f"node {_node_name(node)}: " + "; ".join(missing))
            problems += [f"node {_node_name(refs[ref])}: no answer in {timeout:.0f} s" for ref in late]
        finally:
            probe.unlink(missing_ok=True)
        if problems:
            raise NotShared(
                f"--ray {self.ray_address}: the cluster's nodes do not share this machine's folders "
                "(the jobs pass paths: the work folder, the inputs and the release must be on a file "
                "system every node mounts at the same path, e.g. NFS): " + " | ".join(problems)
            )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._ray is not None and self._ray_started_here:
            self._ray.shutdown()
        self._ray = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ----------------------------------------------------------------- engines
    def _execute(self, function, items: list[tuple], record, lost) -> list:
        """``record(index, outcome)`` once per item; ``lost(index, reason)`` for each lost attempt."""
        if not items:
            return []
        if self._ray is not None:
            return self._execute_ray(function, items, record, lost)
        if self.workers == 1:
            return self._execute_here(function, items, record)
        return self._execute_pool(function, items, record, lost)

    def _execute_here(self, function, items, record) -> list:
        outcomes = []
        with _pinned_here():
            for index, args in enumerate(items):
                try:
                    outcome = function(*args)
                except Exception as exc:  # reported per item; the others go on
                    outcome = exc
                outcomes.append(outcome)
                record(index, outcome)
        return outcomes

    def _execute_pool(self, function, items, record, lost) -> list:
        """At most `workers` items in flight, so a worker's death implicates only those. A death with
        one item in flight counts one crash against it; with several, none is charged (the pool kills
        the bystanders too) and each of them runs again alone, so the next death names its take. An
        item is given up (`WorkerDied`) once its crashes exceed `retries`."""
        outcomes: list = [None] * len(items)
        queue = deque(range(len(items)))
        crashes = [0] * len(items)
        alone: set[int] = set()  # items that were in flight at a death shared with others: they run alone
        while queue:
            pool = self._local_pool()
            in_flight: dict = {}
            broken: list[int] = []
            while (queue or in_flight) and not broken:
                while queue and len(in_flight) < self.workers and not alone.intersection(in_flight.values()):
                    if queue[0] in alone and in_flight:
                        break
                    index = queue.popleft()
                    with _thread_environment():  # inherited by workers spawned here, before they import numpy
                        in_flight[pool.submit(_call, function, items[index])] = index
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = in_flight.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        broken.append(index)
                        continue
                    except Exception as exc:
                        outcome = exc
                    outcomes[index] = outcome
                    record(index, outcome)
            if not broken:
                continue
            # A worker died: the pool is unusable; every take in flight is suspect and runs again.
            broken += list(in_flight.values())
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            retry = []
            if len(broken) > 1:
                alone.update(broken)
                for index in sorted(broken):
                    lost(index, "a worker process of the pool died while this take was in flight (not charged)")
                queue.extendleft(reversed(sorted(broken)))
                continue
            for index in broken:
                crashes[index] += 1
                if crashes[index] > self.retries:
                    outcome = WorkerDied(f"the worker process died {crashes[index]} times running this take")
                    outcomes[index] = outcome
                    record(index, outcome)
                else:
                    lost(index, "the worker process running this take died")
                    retry.append(index)
            queue.extendleft(reversed(retry))
        return outcomes

    def _local_pool(self) -> ProcessPoolExecutor:
        """The local pool, kept between calls (workers stay warm: imports and caches), spawned so that
        no BLAS thread pool or lock is inherited from this process."""
        import multiprocessing

        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_exit_with_parent,
                initargs=(os.getpid(),),
            )
        return self._pool

    def _execute_ray(self, function, items, record, lost) -> list:
        """One task per item, all submitted at once (Ray queues them for free CPUs). A task lost with
        its worker or node (:func:`_lost_reason`) is submitted again, up to `retries` times, and Ray
        places it on a live node; the function travels inline with each task (a module-level function
        pickles by name: bytes), never through one node's object store."""
        ray = self._ray
        remote = ray.remote(_call).options(num_cpus=1, max_retries=0, retry_exceptions=False)
        refs = {remote.remote(function, args): index for index, args in enumerate(items)}
        outcomes: list = [None] * len(items)
        losses: list[list[str]] = [[] for _ in items]
        remaining = list(refs)
        while remaining:
            finished, remaining = ray.wait(remaining, num_returns=1)
            for ref in finished:
                index = refs.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:
                    reason = _lost_reason(exc)
                    if reason is not None:
                        losses[index].append(reason)
                        if len(losses[index]) <= self.retries:
                            lost(index, reason)
                            again = remote.remote(function, items[index])
                            refs[again] = index
                            remaining.append(again)
                            continue
                        outcome = WorkerDied(f"lost {len(losses[index])} times running this take: " + " | ".join(losses[index]))
                    else:
                        outcome = _ray_cause(exc)
                outcomes[index] = outcome
                record(index, outcome)
        return outcomes


def _exit_with_parent(parent: int) -> None:
    """Pool worker initializer: a daemon thread ends this worker when the process that made the pool is
    gone (killed with -9, the pool's pipes never close and the worker would wait forever)."""
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="mmface4d-exit-with-parent", daemon=True).start()


def _bar(total: int, description: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"mmface4d: {description}", unit="take", file=sys.stderr)


def _job_call(function: Callable, args: tuple):
    return function(*args)


def _seen_here(expected: dict[str, int], probe: str, token: str) -> list[str]:
    """On one node: the paths of ``expected`` (path -> size; -1: a folder) it does not see alike."""
    missing = []
    for path, size in expected.items():
        p = Path(path)
        if size == -1:
            if not p.is_dir():
                missing.append(f"{path}: no such folder")
        elif not p.is_file():
            missing.append(f"{path}: no such file")
        elif p.stat().st_size != size or (path == probe and p.read_text() != token):
            missing.append(f"{path}: another file than this machine's")
    return missing


def _node_name(node: dict) -> str:
    return f"{node.get('NodeManagerAddress', '?')} ({str(node.get('NodeID', ''))[:12]})"


def _lost_reason(exc: BaseException) -> str | None:
    """Why a Ray task was lost (its worker process or node died, its result was lost), or None when
    the error is the job's own (not retried)."""
    import ray.exceptions as rex

    lost = (rex.WorkerCrashedError, rex.NodeDiedError, rex.LocalRayletDiedError, rex.ObjectLostError, rex.OutOfMemoryError)
    if isinstance(exc, lost):
        text = str(exc).strip().splitlines()[0].split(" This can happen")[0]
        return f"{type(exc).__name__}: {text[:300]}"
    return None


def _ray_cause(exc: BaseException) -> BaseException:
    """The job's own exception from a Ray error (a worker's death becomes :class:`WorkerDied`)."""
    import ray.exceptions

    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            return cause
        return MMFace4DError(str(exc).strip().splitlines()[-1])
    if isinstance(exc, ray.exceptions.WorkerCrashedError):
        return WorkerDied(f"the Ray worker running this take died more than the allowed retries ({exc})")
    return exc


def ray_token_found() -> str | None:
    """Where a Ray token is found, searching as Ray's clients do (:data:`RAY_TOKEN_PLACES`), or None."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        try:
            return f"RAY_AUTH_TOKEN_PATH={path}" if Path(path).expanduser().read_text().strip() else None
        except OSError:
            return None
    default = Path.home() / ".ray" / "auth_token"
    try:
        return str(default) if default.is_file() and default.stat().st_size > 0 else None
    except OSError:
        return None


def _token_message(address: str) -> str:
    return (
        f"--ray {address}: cannot connect, and no Ray token was found here: a cluster with token "
        "authentication (Ray's default once its head has a token) refuses a client without one. Ray looks in "
        + ", then ".join(RAY_TOKEN_PLACES)
        + f" (here {Path.home() / '.ray' / 'auth_token'}). Copy the head node's token (`ray get-auth-token` "
        "on the head) into one of these; see docs/scale.md"
    )


def _connect_ray(address: str, workers: int):
    """``(ray module, started_here)``. For an explicit cluster address, a token found where Ray looks
    turns token authentication on for this client (``RAY_AUTH_MODE=token``), as ``ray.init("auto")``
    does by itself; ``RAY_AUTH_MODE`` set by the user is kept."""
    if address not in ("local", "auto") and "RAY_AUTH_MODE" not in os.environ and ray_token_found():
        os.environ["RAY_AUTH_MODE"] = "token"  # before Ray reads its configuration
    try:
        import ray
    except ImportError:
        raise ExecutorError("--ray needs Ray: pip install 'mmface4d-datasets[scale]' (the scale extra)") from None
    if ray.is_initialized():  # connected already (by the caller): use it, leave it running
        return ray, False
    import ray.exceptions

    runtime_env = {"env_vars": dict(THREAD_ENV)}
    try:
        if address == "local":
            ray.init(num_cpus=workers, include_dashboard=False, runtime_env=runtime_env, logging_level="ERROR", log_to_driver=False)
        else:
            ray.init(address=address, runtime_env=runtime_env, logging_level="ERROR", log_to_driver=False)
    except ray.exceptions.AuthenticationError as exc:
        if ray_token_found() is None:
            raise RayTokenMissing(_token_message(address)) from None
        raise ExecutorError(f"--ray {address}: the cluster refused the token found in {ray_token_found()} ({exc})") from None
    except (ConnectionError, RuntimeError, ValueError) as exc:
        # Ray reports a refused token only in its log ("InvalidAuthToken"); the exception says "Failed
        # to connect". Without a token here, that is the likely cause on a cluster of Ray >= 2.5x.
        if address not in ("local", "auto") and ray_token_found() is None and os.environ.get("RAY_AUTH_MODE") != "disabled":
            raise RayTokenMissing(f"{_token_message(address)} (Ray: {exc})") from None
        raise ExecutorError(f"--ray {address}: cannot connect to a Ray cluster ({exc})") from None
    return ray, True


def add_executor_arguments(parser) -> None:
    """``--workers N`` and ``--ray auto|ADDRESS`` for a sub-command that runs per-take jobs."""
    from mmface4d_datasets.arguments import whole_number

    parser.add_argument(
        "--workers",
        type=whole_number(1),
        default=None,
        metavar="N",
        help="run takes in a local pool of N processes (default: 1, in this process); with "
        "`--ray local`, the CPUs of the local Ray instance (default: all)",
    )
    parser.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run takes as Ray tasks on an existing cluster: `auto` (the cluster this machine "
        "belongs to) or an address such as `head:6379` or `ray://head:10001`; `local` starts a Ray "
        "instance on this machine. A cluster with token authentication needs its token where Ray "
        "looks: RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token. Every node must "
        "see the inputs, work folder and release at the same paths (`build from-recordings` checks "
        "this at start). Needs the "
        "scale extra (pip install '.[scale]'); see docs/scale.md",
    )


def executor_from_arguments(args) -> Executor:
    """The executor of ``--workers`` / ``--ray`` (see :func:`add_executor_arguments`)."""
    ray, workers = getattr(args, "ray", None), getattr(args, "workers", None)
    if ray is not None and workers is not None and ray != "local":
        raise ExecutorError("--workers applies to the local pool or `--ray local`; a cluster's size is its own")
    if workers is None:
        workers = (os.cpu_count() or 1) if ray == "local" else 1
    return Executor(workers=workers, ray=ray)
