"""Errors a user can act on. The command line prints them without a traceback."""

from __future__ import annotations

import errno
import os


class MMFace4DError(Exception):
    """Base of every error that names a file or input and what is wrong with it."""


class FormatError(MMFace4DError, ValueError):
    """A file does not hold what its format promises (names the file and the problem)."""


class FileSystemError(MMFace4DError, OSError):
    """A file or folder could not be read or written: names the path and the cause
    (read-only folder, a file where a folder is needed, a full disk, ...)."""


_CAUSES = {
    errno.EACCES: "permission denied (a read-only or protected folder?)",
    errno.EPERM: "operation not permitted (a read-only, protected or immutable folder?)",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "no space left on the device (the disk is full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large (a file-size limit, or the file system's maximum)",
    errno.ENOTDIR: "a file is in the way where a folder is needed",
    errno.EEXIST: "already exists (a file where a folder is needed?)",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOENT: "no such file or folder",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EIO: "input/output error of the device",
}


def _cause(exc: OSError) -> str:
    cause = _CAUSES.get(exc.errno) or exc.strerror or str(exc) or type(exc).__name__
    if exc.errno is None and str(exc):  # e.g. pyarrow: the errno is only in the text
        cause = str(exc)
    return cause


def describe_os_error(exc: OSError, path: str | os.PathLike | None = None) -> str:
    """``PATH: cause`` for an OSError, in words; ``path`` names the file when the error does not."""
    where = exc.filename if exc.filename not in (None, "") else path
    if where not in (None, "") and exc.filename2 not in (None, ""):
        where = f"{os.fspath(where)} -> {os.fspath(exc.filename2)}"
    return f"{os.fspath(where)}: {_cause(exc)}" if where not in (None, "") else _cause(exc)


def output_error(path: str | os.PathLike, exc: OSError, action: str = "cannot write") -> FileSystemError:
    """A :class:`FileSystemError` naming ``path`` (the file being written) and the cause of ``exc``.

    The path the system call failed on is added when it is neither ``path`` nor its temporary name.
    """
    if isinstance(exc, FileSystemError):
        return exc
    target = os.fspath(path)
    failed = os.fspath(exc.filename) if exc.filename not in (None, "") else ""
    hidden_sibling = os.path.basename(failed).startswith("." + os.path.basename(target))
    extra = f" ({failed})" if failed and failed != target and not hidden_sibling else ""
    error = FileSystemError(f"{target}: {action}{extra}: {_cause(exc)}")
    error.errno = exc.errno
    return error
