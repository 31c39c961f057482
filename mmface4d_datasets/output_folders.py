"""Output folders: write only where the command may, delete only what it wrote, one writer at a time.

Every command that writes a folder (``mmface4d build release|synthetic``, ``export``, ``synth``,
``quickstart``, ``bench run``, ``bench train``, and the commands still to come) opens it with
:func:`output_folder`, which applies one rule:

- the folder is NEW or EMPTY: the command takes it and writes the ownership marker
  ``.mmface4d-output.json`` (the command's kind and every file it writes there);
- the folder holds the marker of the SAME kind (the command's own earlier output, e.g. its own
  release or its own unfinished build): the command goes on there;
- anything else (a folder with files the command did not write, or another command's output) is
  refused with :class:`OutputFolderError`, naming a few of those files and saying how to proceed.
  Nothing is written or deleted in a refused folder (the lock file taken to look is removed again).

Only files listed in the marker are ever deleted (:meth:`OutputFolder.remove_written`), and a file
the command did not write is never overwritten (:meth:`OutputFolder.will_write`). ``--out`` equal to
one of the command's inputs, or inside one, is refused, and so is a folder inside a release folder
(one holding ``meta/info.json``), which would otherwise carry files its release does not list.

One writer at a time: the folder's lock file ``.mmface4d.lock`` is created with
``O_CREAT | O_EXCL`` (atomic on Linux, macOS and Windows, local and network file systems) and holds
JSON with the host, process id, its start time and the command line. A second command stops with
:class:`FolderBusyError`, saying who holds the lock. A lock whose process is gone (same host) is
stale and is taken over, with a message, so a killed build resumes when run again. A lock from
another host is never judged stale (its process cannot be seen): the message says how to remove it.
:class:`FileLock` is the same lock on any path (the mini release uses it, waiting for its turn).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from mmface4d_datasets.errors import MMFace4DError

MARKER_NAME = ".mmface4d-output.json"
LOCK_NAME = ".mmface4d.lock"
#: Files an operating system puts into folders by itself; they neither make a folder "not empty"
#: nor are ever touched.
IGNORED_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
MARKER_VERSION = 1
#: A lock file that stays unreadable (created, never filled: its writer died at once) this long is stale.
EMPTY_LOCK_STALE_S = 10.0
_OUR_TEMPORARY = re.compile(rf"^{re.escape(MARKER_NAME)}\.tmp-\d+$|^{re.escape(LOCK_NAME)}(\..*)?$")
_log = logging.getLogger(__name__)


class OutputFolderError(MMFace4DError):
    """The output folder may not be written by this command (names it and says how to proceed)."""


class FolderBusyError(OutputFolderError):
    """Another process holds the folder's lock (names it: host, process id, start time)."""


def _log_stderr(line: str) -> None:
    """The default ``log`` of the lock and the folder rule: a warning of this module's logger (the
    ``mmface4d`` command shows it on stderr)."""
    _log.warning("%s", line)


# --------------------------------------------------------------------------------------------
# the lock


def _process_start_ticks(pid: int) -> str | None:
    """Linux: the process's start time in clock ticks since boot (tells a reused pid apart); else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` runs on this machine (a zombie counts as gone)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would TERMINATE the process on Windows
        import ctypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.get_last_error() == 5  # access denied: it exists
        try:
            code = ctypes.c_ulong()
            if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True
            return code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rfind(")") + 2 :].split()[0] != "Z"
    except OSError:
        return True


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FileLock:
    """An exclusive lock held by the existence of the file ``path`` (see the module docstring).

    ``acquire(wait=False)`` raises :class:`FolderBusyError` when another live process holds it;
    ``acquire(wait=True)`` polls until it is free (or ``timeout_s`` passes). Stale locks (process
    gone, same host) are taken over with a line to ``log``. ``release()`` removes the file if it is
    still this holder's.
    """

    path: Path
    log: Callable[[str], None] = _log_stderr
    what: str = ""  # what the lock protects, for messages (default: the lock file's folder)
    _content: bytes | None = field(default=None, init=False, repr=False)

    def _describe(self) -> str:
        return self.what or str(self.path.parent)

    def _content_bytes(self) -> bytes:
        info = {"host": socket.gethostname(), "pid": os.getpid(), "started": _now(), "command": " ".join(sys.argv)[:500]}
        ticks = _process_start_ticks(os.getpid())
        if ticks is not None:
            info["pid_start_ticks"] = ticks
        return (json.dumps(info, sort_keys=True) + "\n").encode("utf-8")

    def _try_create(self) -> bool:
        flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except FileExistsError:
            return False
        content = self._content_bytes()
        try:
            written = os.write(fd, content)
            if written != len(content):
                raise OSError(errno.ENOSPC, f"only {written} of {len(content)} bytes written", str(self.path))
            os.fsync(fd)
        except BaseException:
            # a lock file without its holder's name would block every later run for a while: remove it
            os.close(fd)
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise
        os.close(fd)
        self._content = content
        return True

    def holder(self) -> tuple[dict | None, bytes | None]:
        """(parsed content or None, raw bytes or None when the file is gone)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError:
            return None, b""
        try:
            info = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None, raw
        return (info if isinstance(info, dict) else None), raw

    def _stale_reason(self, info: dict | None, raw: bytes) -> str | None:
        """Why the lock is stale, or None when it may be held by a live process."""
        if info is None:
            try:
                age = time.time() - self.path.stat().st_mtime
            except OSError:
                return None
            return f"its file has been unreadable for {age:.0f} s" if age > EMPTY_LOCK_STALE_S else None
        if info.get("host") != socket.gethostname():
            return None
        pid = info.get("pid")
        if not isinstance(pid, int):
            return "it names no process id"
        if not pid_alive(pid):
            return f"process {pid} on this host is gone"
        ticks = info.get("pid_start_ticks")
        if ticks is not None and _process_start_ticks(pid) not in (None, ticks):
            return f"process {pid} on this host is gone (its id now belongs to another process)"
        return None

    def _take_over(self, raw: bytes, reason: str) -> None:
        """Remove the stale lock whose bytes are ``raw``, unless it changed meanwhile.

        A second, short-lived guard file (also O_EXCL) makes sure only one process removes it; a
        guard left by a process that died within these few lines is removed after a while.
        """
        guard = self.path.with_name(self.path.name + ".takeover")
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:  # another process is taking it over right now: give it a moment
            try:
                if time.time() - guard.stat().st_mtime > EMPTY_LOCK_STALE_S:
                    guard.unlink()
            except OSError:
                pass
            time.sleep(0.05)
            return
        os.close(fd)
        try:
            _, current = self.holder()
            if current == raw:
                self.path.unlink()
                holder = raw.decode("utf-8", "replace").strip() or "(empty)"
                self.log(f"mmface4d: taking over the stale lock of {self._describe()} ({reason}; it said {holder})")
        except FileNotFoundError:
            pass
        finally:
            try:
                guard.unlink()
            except OSError:
                pass

    def busy_message(self, info: dict | None) -> str:
        if info is None:
            who = "a process that has not yet written its name"
        else:
            who = f"process {info.get('pid')} on host {info.get('host')!r}, started {info.get('started')}" + (
                f" ({info.get('command')})" if info.get("command") else ""
            )
        return (
            f"{self._describe()} is in use by {who}: wait for it to finish, or, if you are sure no such "
            f"process runs any more (e.g. it ran on another machine), delete {self.path} and run again"
        )

    def acquire(self, *, wait: bool = False, poll_s: float = 0.2, timeout_s: float | None = None) -> "FileLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            if self._try_create():
                return self
            info, raw = self.holder()
            if raw is None:
                continue  # released between our attempt and the read: try again at once
            reason = self._stale_reason(info, raw)
            if reason is not None:
                self._take_over(raw, reason)
                continue
            if not wait or (deadline is not None and time.monotonic() > deadline):
                raise FolderBusyError(self.busy_message(info))
            time.sleep(poll_s)

    def release(self) -> None:
        if self._content is None:
            return
        _, current = self.holder()
        if current == self._content:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        self._content = None

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# --------------------------------------------------------------------------------------------
# the ownership rule


def _relative(root: Path, path: str | os.PathLike) -> str:
    """``path`` (a path that includes the folder, as ``root / "meta/info.json"``) relative to ``root``."""
    text = Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root))).as_posix()
    if text == "." or text == ".." or text.startswith("../"):
        raise ValueError(f"{path}: not a file inside {root}")
    return text


@dataclass
class OutputFolder:
    """A folder this command may write (from :func:`claim_output_folder`); it holds the lock."""

    path: Path
    kind: str
    lock: FileLock
    written: set[str]
    new: bool  # True when the folder was new or empty when claimed

    @property
    def marker(self) -> Path:
        return self.path / MARKER_NAME

    def _save(self) -> None:
        from mmface4d_datasets.files import atomic_write_bytes, json_bytes

        atomic_write_bytes(
            self.marker,
            json_bytes(
                {
                    "tool": "mmface4d-datasets",
                    "marker_version": MARKER_VERSION,
                    "kind": self.kind,
                    "written": sorted(self.written),
                }
            ),
        )

    def will_write(self, *paths: str | os.PathLike) -> None:
        """Record ``paths`` (inside the folder, given with it: ``folder / "a/b"``) as written by this
        command, before writing them.

        Raises :class:`OutputFolderError` for a path that exists and that the command did not write
        (a user's file inside the command's own folder is never overwritten).
        """
        new = []
        for path in paths:
            relative = _relative(self.path, path)
            if relative in self.written or relative in new:
                continue
            if (self.path / relative).exists() or (self.path / relative).is_symlink():
                raise OutputFolderError(
                    f"{self.path / relative}: exists and was not written by mmface4d {self.kind}; "
                    f"refusing to overwrite it (move it out of {self.path} and run again)"
                )
            new.append(relative)
        if new:
            self.written.update(new)
            self._save()

    def remove_written(self, keep: Iterable[str | os.PathLike], *, under: Iterable[str] = ("",)) -> list[str]:
        """Delete files this command wrote earlier (listed in the marker) that are not in ``keep``
        (paths given with the folder),
        and the temporary files it left beside them. Only paths starting with one of ``under`` are
        considered. Returns the relative paths removed. Nothing else is ever deleted."""
        keep_set = {_relative(self.path, p) for p in keep}
        prefixes = tuple(under)
        removed = []
        for relative in sorted(self.written):
            if not relative.startswith(prefixes):
                continue
            target = self.path / relative
            for leftover in target.parent.glob(f".{_glob_escape(target.name)}.tmp-*"):
                leftover.unlink(missing_ok=True)
            if relative in keep_set:
                continue
            if target.is_file() or target.is_symlink():
                target.unlink()
                removed.append(relative)
            self.written.discard(relative)
        self._save()
        return removed

    def foreign_files(self, under: str = "") -> list[str]:
        """Files under ``under`` (relative) that this command did not write (hidden ones included)."""
        base = self.path / under if under else self.path
        if not base.is_dir():
            return []
        found = []
        for path in sorted(base.rglob("*")):
            relative = path.relative_to(self.path).as_posix()
            if path.is_file() and relative not in self.written and not _ours_by_name(path.name) and not self._temporary_of_written(path):
                found.append(relative)
        return found

    def _temporary_of_written(self, path: Path) -> bool:
        """``.NAME.tmp-PID`` beside a file NAME this command wrote (how files.py names temporaries)."""
        match = re.match(r"^\.(.+)\.tmp-\d+$", path.name)
        return bool(match) and _relative(self.path, path.with_name(match.group(1))) in self.written

    def release(self) -> None:
        self.lock.release()


def _glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _ours_by_name(name: str) -> bool:
    return name == MARKER_NAME or bool(_OUR_TEMPORARY.match(name))


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The ownership marker of ``folder`` (dict) or None when it has none.

    Raises :class:`OutputFolderError` for a marker that cannot be read (the folder is then neither
    provably ours nor empty)."""
    path = Path(folder) / MARKER_NAME
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise OutputFolderError(
            f"{path}: the ownership marker cannot be read ({exc}); move the folder aside or choose another output folder"
        ) from None
    if not isinstance(marker, dict) or not isinstance(marker.get("kind"), str) or not isinstance(marker.get("written", []), list):
        raise OutputFolderError(f"{path}: not an mmface4d ownership marker; choose another output folder")
    return marker


def refuse_inside_inputs(out: str | os.PathLike, inputs: Iterable[str | os.PathLike], *, option: str = "--out") -> None:
    """Raise :class:`OutputFolderError` when ``out`` is one of ``inputs`` or inside one of them."""
    target = Path(out).resolve()
    for source in inputs:
        if source is None or not Path(source).exists():
            continue
        source_path = Path(source).resolve()
        if target == source_path:
            raise OutputFolderError(f"{option} {out} is the input folder itself; write to a new folder outside it")
        if target.is_relative_to(source_path) and source_path.is_dir():
            raise OutputFolderError(
                f"{option} {out} is inside the input folder {source}; write to a new folder "
                "outside it (the input would otherwise pick up the output)"
            )


def refuse_inside_release(out: str | os.PathLike, *, option: str = "--out") -> None:
    """Raise :class:`OutputFolderError` when ``out`` lies inside a release folder (a folder above it holds
    ``meta/info.json``): the release would then hold files it does not list, which ``mmface4d validate``
    reports and ``build push`` leaves out."""
    target = Path(out).resolve()
    for parent in target.parents:
        if (parent / "meta" / "info.json").is_file():
            raise OutputFolderError(
                f"{option} {out} is inside the release {parent}; nothing was written. Write to a folder outside it "
                "(the release would otherwise hold files its meta/info.json does not list)"
            )


def _foreign_entries(folder: Path) -> list[str]:
    return sorted(
        entry.name + ("/" if entry.is_dir() else "")
        for entry in folder.iterdir()
        if entry.name not in IGNORED_NAMES and not _ours_by_name(entry.name)
    )


def claim_output_folder(
    path: str | os.PathLike, kind: str, *, inputs: Iterable[str | os.PathLike] = (), log: Callable[[str], None] = _log_stderr
) -> OutputFolder:
    """Take the folder ``path`` for a command of ``kind`` under the rule of the module docstring.

    Creates the folder when missing, takes its lock (:class:`FolderBusyError` when another process
    holds it), checks ownership (:class:`OutputFolderError` when refused) and writes the marker in a
    new or empty folder. Call :meth:`OutputFolder.release` when done (or use :func:`output_folder`).
    """
    folder = Path(path)
    refuse_inside_inputs(folder, inputs)
    refuse_inside_release(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"{folder}: exists and is not a folder; choose a new folder for the output")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFolderError(f"{folder}: cannot create the output folder ({exc.strerror or exc})") from None
    lock = FileLock(folder / LOCK_NAME, log=log)
    try:
        lock.acquire()
    except PermissionError as exc:
        raise OutputFolderError(f"{folder}: the output folder is not writable ({exc.strerror or exc})") from None
    try:
        marker = read_marker(folder)
        if marker is None:
            foreign = _foreign_entries(folder)
            if foreign:
                shown = ", ".join(foreign[:8]) + (f" and {len(foreign) - 8} more" if len(foreign) > 8 else "")
                raise OutputFolderError(
                    f"{folder}: refusing to write mmface4d {kind} output into a folder that holds files mmface4d "
                    f"did not write ({shown}); nothing was changed. Give a new or empty folder (e.g. "
                    f"{folder.name}-{kind}), or move those files out first. A folder made by mmface4d carries "
                    f"{MARKER_NAME}; one made by an older version without it must be moved aside and rebuilt."
                )
            output = OutputFolder(folder, kind, lock, set(), new=True)
            output._save()
            return output
        if marker["kind"] != kind:
            raise OutputFolderError(
                f"{folder}: holds the output of mmface4d {marker['kind']}, not of {kind}; nothing was changed. "
                "Give a new or empty folder for this output."
            )
        return OutputFolder(folder, kind, lock, {str(p) for p in marker.get("written", [])}, new=False)
    except BaseException:
        lock.release()
        raise


@contextmanager
def output_folder(
    path: str | os.PathLike, kind: str, *, inputs: Iterable[str | os.PathLike] = (), log: Callable[[str], None] = _log_stderr
) -> Iterator[OutputFolder]:
    """:func:`claim_output_folder` as a context manager that releases the lock at the end."""
    output = claim_output_folder(path, kind, inputs=inputs, log=log)
    try:
        yield output
    finally:
        output.release()
