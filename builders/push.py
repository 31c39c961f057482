"""Sending a release folder to a dataset repository on the Hugging Face Hub.

Two steps, kept apart so everything up to the network call can be checked offline:

1. :func:`plan_push` lists what would be committed (paths, sizes, files per folder) and checks it
   against the Hub's limits (DESIGN.md: under 10,000 files per folder, under 100,000 per repository,
   about 100 files per commit);
2. :func:`push_release` validates the release with the core's validator, then creates the dataset
   repository (``exist_ok``) and uploads the folder with ``huggingface_hub``'s resumable large-folder
   upload, retrying transient failures. When the Hub cannot be reached (``HF_HUB_OFFLINE=1`` or no
   network) it raises :class:`HubUnreachableError`, which says that nothing was uploaded.

Only the release is pushed: exactly the files :func:`mmface4d_datasets.release.contents.release_files`
names (every file ``meta/info.json`` lists, ``meta/info.json`` itself, the card ``README.md`` and
the images the card shows). Anything else in the folder (a stray ``notes.txt`` or ``photos/``, the
build's hidden bookkeeping) is never uploaded; the plan lists it under ``left_out``.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mmface4d_datasets.errors import MMFace4DError

_log = logging.getLogger(__name__)

#: The Hub's documented limits (https://huggingface.co/docs/hub/repositories-recommendations).
MAX_FILES_PER_FOLDER = 10_000
MAX_FILES_PER_REPO = 100_000
#: Files per commit the Hub recommends; the uploader batches commits itself, the plan reports the count.
FILES_PER_COMMIT = 100

REPO_TYPE = "dataset"


class PushError(MMFace4DError):
    """The release cannot be pushed as it is (names the folder and the problem)."""


class HubUnreachableError(PushError):
    """The Hub could not be reached; nothing was uploaded."""


@dataclass(frozen=True)
class PlannedFile:
    path: str  # POSIX path relative to the release folder, as it will appear in the repository
    size: int  # bytes


@dataclass
class PushPlan:
    """What a push of ``folder`` would commit."""

    folder: Path
    files: list[PlannedFile]
    files_per_folder: dict[str, int] = field(default_factory=dict)  # "" is the repository root
    left_out: list[str] = field(default_factory=list)  # files in the folder that are not part of the release

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def commits(self) -> int:
        """Commits needed at the recommended ``FILES_PER_COMMIT`` files each (at least one)."""
        return max(1, -(-len(self.files) // FILES_PER_COMMIT))

    def problems(self) -> list[str]:
        """Breaches of the Hub's limits, one sentence each; empty when the plan fits."""
        found = []
        if len(self.files) >= MAX_FILES_PER_REPO:
            found.append(f"{len(self.files)} files in all (the Hub allows fewer than {MAX_FILES_PER_REPO})")
        for folder, count in sorted(self.files_per_folder.items()):
            if count >= MAX_FILES_PER_FOLDER:
                found.append(f"{count} files in folder '{folder or '.'}' (the Hub allows fewer than {MAX_FILES_PER_FOLDER})")
        return found

    def as_dict(self) -> dict:
        return {
            "folder": str(self.folder),
            "num_files": len(self.files),
            "total_bytes": self.total_bytes,
            "commits": self.commits,
            "files_per_commit": FILES_PER_COMMIT,
            "files_per_folder": dict(sorted(self.files_per_folder.items())),
            "limits": {"files_per_folder": MAX_FILES_PER_FOLDER, "files_per_repo": MAX_FILES_PER_REPO},
            "problems": self.problems(),
            "files": [{"path": f.path, "size": f.size} for f in self.files],
            "left_out": list(self.left_out),
        }


def plan_push(folder: str | os.PathLike) -> PushPlan:
    """List the files a push of the release ``folder`` would commit, sorted by path: exactly the
    release's files (module docstring), with their sizes; every other non-hidden file in the folder
    is named in ``left_out`` and not uploaded.

    Raises :class:`PushError` when ``folder`` is not a directory, has no readable ``meta/info.json``,
    or a file the release lists is missing.
    """
    from mmface4d_datasets.errors import FormatError
    from mmface4d_datasets.release.contents import release_files, unlisted_files

    root = Path(folder)
    if not root.is_dir():
        raise PushError(f"{root}: not a folder (expected a release folder made by `mmface4d build`)")
    try:
        listed = release_files(root)
        left_out = unlisted_files(root)
    except FormatError as exc:
        raise PushError(f"{root}: not a release that can be pushed: {exc}") from None
    missing = [relative for relative in listed if not (root / relative).is_file()]
    if missing:
        raise PushError(
            f"{root}: the release lists files that are missing ({', '.join(missing[:10])}); "
            "rebuild it with `mmface4d build`, nothing was uploaded"
        )
    files = [PlannedFile(relative, (root / relative).stat().st_size) for relative in listed]
    # The repository root is counted under "" (PurePosixPath("a").parent is ".").
    per_folder = Counter(str(PurePosixPath(f.path).parent).removeprefix(".") for f in files)
    return PushPlan(folder=root, files=files, files_per_folder=dict(per_folder), left_out=left_out)


def _is_network_failure(exc: BaseException) -> bool:
    """True for a failure to reach the Hub at all (offline mode, DNS, refused connection, timeout)."""
    if isinstance(exc, (ConnectionError, TimeoutError)):  # includes huggingface_hub's OfflineModeIsEnabled
        return True
    for module_name in ("httpx2", "httpx", "requests"):  # the HTTP client depends on the hub's version
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        transport = getattr(module, "TransportError", None) or getattr(getattr(module, "exceptions", None), "ConnectionError", None)
        if transport is not None and isinstance(exc, transport):
            return True
    return False


def _is_offline_mode(exc: BaseException) -> bool:
    try:
        from huggingface_hub.errors import OfflineModeIsEnabled
    except ImportError:  # older hubs keep it elsewhere; the environment variable says the same
        return bool(os.environ.get("HF_HUB_OFFLINE"))
    return isinstance(exc, OfflineModeIsEnabled)


def _is_transient(exc: BaseException) -> bool:
    """Worth retrying: the network failed or the Hub answered 429 / 5xx."""
    if _is_network_failure(exc) and not _is_offline_mode(exc):
        return True
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status is not None and (status == 429 or status >= 500)


def with_retries(
    call: Callable[[], object],
    *,
    retries: int,
    backoff_s: float,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] | None = None,
):
    """Run ``call`` and retry transient failures up to ``retries`` more times.

    The wait before retry k (1-based) is ``backoff_s * 2 ** (k - 1)`` seconds; each retry is
    reported to ``log`` (default: a warning of this module's logger). Offline mode is not
    transient and is never retried. Returns what ``call`` returns; re-raises the last failure.
    """
    attempt = 0
    while True:
        try:
            return call()
        except Exception as exc:
            if attempt >= retries or not _is_transient(exc):
                raise
            attempt += 1
            wait = backoff_s * 2 ** (attempt - 1)
            (log or _log.warning)(f"{what} failed ({type(exc).__name__}: {exc}); retry {attempt}/{retries} in {wait:g} s")
            sleep(wait)


def exact_patterns(paths) -> list[str]:
    """fnmatch patterns that match exactly these paths and nothing else (``*?[`` escaped)."""
    import re

    return [re.sub(r"([*?\[])", r"[\1]", path) for path in paths]


def _upload_call(api, *, repo_id: str, folder: Path, revision: str | None, private: bool, plan: PushPlan):
    """The upload call for the installed ``huggingface_hub``.

    ``upload_large_folder`` (huggingface_hub 0.25 to 1.x) where it exists; from 2.x on it is gone and
    ``upload_folder`` itself streams, splits into several commits and resumes (hf_xet), so that is used.
    Both get ``allow_patterns`` matching exactly the plan's files (and hidden paths as ignored, too).
    """
    ignore = [".*", "**/.*", ".*/**", "**/.*/**"]
    allow = exact_patterns(f.path for f in plan.files)
    large = getattr(api, "upload_large_folder", None)
    if large is not None:
        kwargs = dict(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type=REPO_TYPE,
            revision=revision,
            private=private,
            allow_patterns=allow,
            ignore_patterns=ignore,
        )
        # Pass only what this version accepts (``private`` came and went across versions).
        parameters = inspect.signature(large).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            if "allow_patterns" not in parameters:  # never upload the whole folder instead of the release
                raise PushError(
                    "the installed huggingface_hub's upload_large_folder cannot be restricted to the "
                    "release's files (no allow_patterns); upgrade huggingface_hub. Nothing was uploaded"
                )
            kwargs = {k: v for k, v in kwargs.items() if k in parameters}
        return lambda: large(**kwargs)
    return lambda: api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type=REPO_TYPE,
        revision=revision,
        allow_patterns=allow,
        ignore_patterns=ignore,
        commit_message="Upload MMFace4D release with mmface4d build push",
    )


def validate_before_push(folder: Path) -> None:
    """Run the core's release validator; raise :class:`PushError` listing the problems it finds."""
    from mmface4d_datasets.release import validate as core_validate

    problems = core_validate.validate_release(folder)
    if problems:
        listed = "\n  ".join(str(p) for p in problems)
        raise PushError(f"{folder}: the release does not validate, nothing was uploaded:\n  {listed}")


def push_release(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    retries: int = 5,
    backoff_s: float = 2.0,
    validate: bool = True,
    api=None,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] | None = None,
) -> PushPlan:
    """Validate the release ``folder`` and upload it to the dataset repository ``repo_id``.

    Creates the repository if needed (``private`` only applies to a new one), creates ``revision``
    as a branch when given, then uploads exactly the files of :func:`plan_push` with retries (see
    :func:`with_retries`).
    ``api`` defaults to ``huggingface_hub.HfApi(token=token)``. Returns the plan that was pushed.

    Raises :class:`PushError` when the release does not validate or breaks the Hub's limits, and
    :class:`HubUnreachableError` when the Hub cannot be reached (offline mode or no network).
    """
    root = Path(folder)
    if "/" not in repo_id or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PushError(f"--repo-id {repo_id!r}: expected ORG/NAME")
    plan = plan_push(root)
    if plan.problems():
        raise PushError(f"{root}: the release breaks the Hub's limits: " + "; ".join(plan.problems()))
    if validate:
        validate_before_push(root)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)

    steps = [
        (f"creating dataset repository {repo_id}", lambda: api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True))
    ]
    if revision:
        steps.append(
            (f"creating branch {revision}", lambda: api.create_branch(repo_id, branch=revision, repo_type=REPO_TYPE, exist_ok=True))
        )
    steps.append(
        (
            f"uploading {len(plan.files)} files to {repo_id}",
            _upload_call(api, repo_id=repo_id, folder=root, revision=revision, private=private, plan=plan),
        )
    )
    for index, (what, call) in enumerate(steps):
        try:
            with_retries(call, retries=retries, backoff_s=backoff_s, what=what, sleep=sleep, log=log)
        except Exception as exc:
            if _is_network_failure(exc):
                done = (
                    "nothing was uploaded"
                    if index < len(steps) - 1
                    else ("the upload did not complete; run the same command again to resume it")
                )
                reason = "offline mode is on (HF_HUB_OFFLINE)" if _is_offline_mode(exc) else f"{type(exc).__name__}: {exc}"
                raise HubUnreachableError(f"the Hugging Face Hub could not be reached while {what} ({reason}); {done}") from exc
            raise
    return plan
