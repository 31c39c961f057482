"""What "a release" means wherever a user names one: `resolve_release(name) -> Path`.

Every command that reads a release (`validate`, `stats`, `render --data`, `export --data`, `bench
run|score|validate|leaderboard|render|train|write-submission --data`, the quickstart) and
`load_dataset` accept the same names, tried in this order:

1. a folder that exists: it must hold `meta/info.json` (else the error names the folder as given);
2. `mini`: the small synthetic release, built offline into the cache on first use
   (`release/mini.py`), its path said when it is built or first found;
3. a folder name inside the cache (`mmface4d_datasets.paths.cache_dir()`), e.g. an earlier build
   put there, or the mini release's own versioned name;
4. a Hub dataset repository `owner/name` (exactly one `/`, Hub characters only, no such local
   folder): downloaded (or found in the Hugging Face cache) with `huggingface_hub.snapshot_download`.

The commands' parsers describe the forms with `mmface4d_datasets.arguments.RELEASE_HELP` (standard
library only); their handlers import this module. Anything else is a `ReleaseNotFoundError` naming what the user wrote and listing the forms above.
A failed Hub download is one `DatasetNotAvailableError` with the ways out, raised without the
chain of the HTTP stack's exceptions (the cause is logged at DEBUG level on this module's logger).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from mmface4d_datasets.arguments import RELEASE_HELP
from mmface4d_datasets.errors import MMFace4DError
from mmface4d_datasets.release.info import INFO_FILE

#: The name of the small synthetic release.
MINI = "mini"
#: Hub repository ids: owner/name with letters, digits, '-', '_' and '.' (no '--' or '..' rules checked here).
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
DATA_DIR_ENV = "MMFACE4D_DATA_DIR"
REPO_ENV = "MMFACE4D_REPO_ID"
_log = logging.getLogger(__name__)


class ReleaseNotFoundError(MMFace4DError):
    """A name that is none of the release forms (names it and lists the forms)."""


class DatasetNotAvailableError(MMFace4DError):
    """No release could be found or downloaded; the message says what to do."""


def is_hub_id(name: str) -> bool:
    """True for a string shaped like a Hub repository id `owner/name`."""
    return bool(_HUB_ID.match(name)) and ".." not in name


def _is_release(folder: Path) -> bool:
    return (folder / INFO_FILE).is_file()


def resolve_release(
    name: str | os.PathLike,
    *,
    progress: bool = False,
    announce: Callable[[str], None] | None = None,
    revision: str | None = None,
    patterns: Sequence[str] | None = None,
    require_info: bool = True,
) -> Path:
    """The release folder for `name` (the forms of the module docstring).

    progress: show the mini build's progress bars. announce: where to say which folder a name stood
    for (default: INFO records of this module's logger, which the `mmface4d` command shows on stderr).
    revision, patterns: of a Hub download (`patterns` None: the whole release).
    require_info: False returns any existing path as it is, even a file or a folder without meta/info.json
        (`validate` lists what is wrong with it).
    """
    say = announce if announce is not None else _log.info
    text = os.fspath(name)
    if not text.strip():
        raise ReleaseNotFoundError(f"no release given; expected {RELEASE_HELP}")
    path = Path(text).expanduser()
    if path.exists():
        if not require_info:  # validate lists what is wrong with whatever is there
            return path
        if not path.is_dir():
            raise ReleaseNotFoundError(f"{text}: is a file, not a release folder (expected {RELEASE_HELP})")
        if not _is_release(path):
            raise ReleaseNotFoundError(
                f"{text}: not a release folder (it has no {INFO_FILE}); build one with `mmface4d build release` or "
                f"`mmface4d build synthetic`, or give {RELEASE_HELP}"
            )
        return path
    if text == MINI:
        return mini_release(progress=progress, announce=say)
    from mmface4d_datasets.paths import cache_dir

    cached = cache_dir() / text
    if os.sep not in text and "/" not in text and _is_release(cached):
        say(f"{text}: the release in the cache, {cached}")
        return cached
    if is_hub_id(text):
        try:
            folder = download_release(text, revision=revision, patterns=patterns)
        except DatasetNotAvailableError as exc:
            raise ReleaseNotFoundError(f"{text}: no such release folder here, and as a Hub dataset name: {exc}") from None
        say(f"{text}: the Hub release, in {folder}")
        return folder
    raise ReleaseNotFoundError(f"{text}: no such release folder (and not `{MINI}`, a cached release or a Hub `owner/name`)")


def mini_release(*, progress: bool = False, announce: Callable[[str], None] | None = None) -> Path:
    """The mini release's folder, built first when the cache has none; says where it is."""
    from mmface4d_datasets.release.mini import ensure_mini_release, mini_release_dir

    say = announce if announce is not None else _log.info
    folder = mini_release_dir()
    if _is_release(folder):
        say(f"{MINI}: the mini release in the cache, {folder}")
        return folder
    from mmface4d_datasets.extras import require

    for module in ("scipy", "espeakng_loader"):  # the synthetic generator builds it on first use
        require(module, "synthetic", "building the mini release")
    say(f"{MINI}: building the mini release (about 20 s, once) into {folder}")
    return ensure_mini_release(progress=progress)


def download_release(repo_id: str, *, revision: str | None = None, patterns: Sequence[str] | None = None) -> Path:
    """`snapshot_download` of the dataset repository `repo_id` (only `patterns` when given); any failure
    becomes one `DatasetNotAvailableError` saying what to do (the library's exception chain is logged
    at DEBUG level, not shown)."""
    try:
        from huggingface_hub import snapshot_download

        options = {"repo_type": "dataset", "revision": revision}
        if patterns is not None:
            options["allow_patterns"] = list(patterns)
        folder = snapshot_download(repo_id, **options)
    except Exception as exc:  # offline mode, no network, no such repo, gated and not logged in: same ways out
        _log.debug("snapshot_download of %s failed", repo_id, exc_info=exc)
        raise DatasetNotAvailableError(
            f"could not get the MMFace4D release {repo_id!r} from the Hugging Face Hub ({_reason(exc)}). "
            f"Ways out: (1) use a local release: load_dataset('mmface4d', data_dir=PATH) or set {DATA_DIR_ENV}=PATH "
            f"(make one with `mmface4d build release`); (2) use the small synthetic release, built offline: "
            f"load_dataset('mmface4d', name='mini') (`--data mini` for the commands); (3) for the gated Hub release: "
            f"accept its conditions at https://huggingface.co/datasets/{repo_id}, log in with `hf auth login`, make sure "
            f"HF_HUB_OFFLINE is not set (another repository: set {REPO_ENV})."
        ) from None
    folder = Path(folder)
    if not _is_release(folder):
        raise DatasetNotAvailableError(f"Hub repository {repo_id!r} has no {INFO_FILE}: it is not an MMFace4D release")
    return folder


def _reason(exc: BaseException) -> str:
    """The exception in one short line: its type and the first line of its text."""
    first = (str(exc).strip().splitlines() or [""])[0]
    if len(first) > 200:
        first = first[:197] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
