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
  worker process died (killed, out of memory, segfault) is run again up to ``retries`` times (Ray's
  ``max_retries``; the local pool is rebuilt after a ``BrokenProcessPool``). It returns a
  :class:`RunSummary` (done, skipped, failed).
- :meth:`Executor.map` is the plain form the core's release writer takes (``write_release(map=...)``):
  results in input order, the raised exception in place of the result of an item that failed.

Ray is imported only when ``ray`` is given (the ``scale`` extra).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import deque
import sys
import time
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


class ExecutorError(MMFace4DError):
    """The executor could not start (bad worker count, Ray missing or unreachable)."""


class WorkerDied(MMFace4DError):
    """The process running a job died (killed, out of memory, crashed) more often than retries allow."""


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
    """What :meth:`Executor.run` did: keys done, skipped (output already there) and failed (key -> error)."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    results: dict[str, object] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict:
        return {
            "done": sorted(self.done),
            "skipped": sorted(self.skipped),
            "failed": dict(sorted(self.failed.items())),
            "counts": {"done": len(self.done), "skipped": len(self.skipped), "failed": len(self.failed)},
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
        self._ray = None
        self._ray_started_here = False
        self._pool: ProcessPoolExecutor | None = None
        if ray is not None:
            self._ray, self._ray_started_here = _connect_ray(ray, workers)

    # ----------------------------------------------------------------- public
    def describe(self) -> str:
        if self._ray is not None:
            cpus = int(self._ray.cluster_resources().get("CPU", 0))
            return f"Ray ({self.ray_address}, {cpus} CPUs)"
        return "this process" if self.workers == 1 else f"a local pool of {self.workers} processes"

    def map(self, function: Callable, items: Iterable[tuple], *, progress: bool = False, description: str = "takes") -> list:
        """``[function(*args) for args in items]`` run by the workers, in input order; an item whose
        function raised (or whose worker died ``retries + 1`` times) gives its exception instead."""
        items = [tuple(args) for args in items]
        bar = _bar(len(items), description) if progress and items else None
        outcomes = self._execute(function, items, lambda index, outcome: bar is not None and bar.update(1))
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

        # One function per run keeps the calls uniform: each job brings its own function.
        self._execute(_job_call, [(job.function, job.args) for job in todo], record)
        if bar is not None:
            bar.close()
        return summary

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
    def _execute(self, function, items: list[tuple], record) -> list:
        if not items:
            return []
        if self._ray is not None:
            return self._execute_ray(function, items, record)
        if self.workers == 1:
            return self._execute_here(function, items, record)
        return self._execute_pool(function, items, record)

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

    def _execute_pool(self, function, items, record) -> list:
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
                queue.extendleft(reversed(sorted(broken)))
                continue
            for index in broken:
                crashes[index] += 1
                if crashes[index] > self.retries:
                    outcome = WorkerDied(f"the worker process died {crashes[index]} times running this take")
                    outcomes[index] = outcome
                    record(index, outcome)
                else:
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

    def _execute_ray(self, function, items, record) -> list:
        ray = self._ray
        remote = ray.remote(_call).options(num_cpus=1, max_retries=self.retries, retry_exceptions=False)
        function_ref = ray.put(function)
        refs = {remote.remote(function_ref, args): index for index, args in enumerate(items)}
        outcomes: list = [None] * len(items)
        remaining = list(refs)
        while remaining:
            finished, remaining = ray.wait(remaining, num_returns=1)
            for ref in finished:
                index = refs[ref]
                try:
                    outcome = ray.get(ref)
                except Exception as exc:
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


def _connect_ray(address: str, workers: int):
    """``(ray module, started_here)``."""
    try:
        import ray
    except ImportError:
        raise ExecutorError("--ray needs Ray: pip install 'mmface4d-datasets[scale]' (the scale extra)") from None
    if ray.is_initialized():  # connected already (by the caller): use it, leave it running
        return ray, False
    runtime_env = {"env_vars": dict(THREAD_ENV)}
    try:
        if address == "local":
            ray.init(num_cpus=workers, include_dashboard=False, runtime_env=runtime_env, logging_level="ERROR", log_to_driver=False)
        else:
            ray.init(address=address, runtime_env=runtime_env, logging_level="ERROR", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
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
        "belongs to) or an address such as `ray://head:10001`; `local` starts a Ray "
        "instance on this machine. Needs the scale extra (pip install '.[scale]')",
    )


def executor_from_arguments(args) -> Executor:
    """The executor of ``--workers`` / ``--ray`` (see :func:`add_executor_arguments`)."""
    ray, workers = getattr(args, "ray", None), getattr(args, "workers", None)
    if ray is not None and workers is not None and ray != "local":
        raise ExecutorError("--workers applies to the local pool or `--ray local`; a cluster's size is its own")
    if workers is None:
        workers = (os.cpu_count() or 1) if ray == "local" else 1
    return Executor(workers=workers, ray=ray)
