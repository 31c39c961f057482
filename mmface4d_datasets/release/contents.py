"""What a release consists of: the files its metadata lists, and nothing else in its folder.

A release folder may also hold things that are not part of the release: the build's hidden
bookkeeping (``.staging/``, ``.build-report.json``, the lock and ownership marker) and whatever a
person put there (``notes.txt``, ``photos/``). For a dataset of faces and voices the difference is a
privacy matter, so one function says what the release is, and both ``mmface4d build push`` (which
uploads exactly these files) and ``mmface4d validate`` (which reports every other file) use it:

- every file listed in ``meta/info.json`` ``files`` (data, raw and template shards, the other
  ``meta/`` files), plus ``meta/info.json`` itself and ``README.md`` (the dataset card);
- the images the card shows: relative links in ``README.md`` (Markdown ``![..](path)`` or HTML
  ``<img src="path">``) to files inside the folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.release.info import INFO_FILE as INFO
from mmface4d_datasets.release.info import read_file_table

CARD = "README.md"
_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^)]*[\"'])?\s*\)")
_HTML_IMAGE = re.compile(r"<img\b[^>]*?\bsrc\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)


def _inside(root: Path, relative: str) -> str | None:
    """``relative`` as a clean POSIX path inside ``root``, or None (absolute, ``..``, hidden, a URL)."""
    if not relative or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", relative) or relative.startswith(("/", "#", "\\")):
        return None
    relative = unquote(relative.split("#", 1)[0].split("?", 1)[0])
    parts = [p for p in PurePosixPath(relative.replace("\\", "/")).parts if p != "."]
    if not parts or any(p == ".." or p.startswith(".") for p in parts):
        return None
    return PurePosixPath(*parts).as_posix()


def card_images(root: str | os.PathLike) -> list[str]:
    """Relative paths of the images the card (``README.md``) of the release at ``root`` shows and
    that exist inside the folder, sorted; links to the web or outside the folder are not files of it."""
    root = Path(root)
    try:
        text = (root / CARD).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    found = set()
    for link in _MARKDOWN_IMAGE.findall(text) + _HTML_IMAGE.findall(text):
        relative = _inside(root, link.strip())
        if relative is not None and (root / relative).is_file():
            found.add(relative)
    return sorted(found)


def release_files(root: str | os.PathLike, files: Iterable[str] | None = None) -> list[str]:
    """The files of the release at ``root`` (module docstring), as sorted POSIX paths relative to it.

    ``files``: the paths its ``meta/info.json`` lists (read from it when None; only that table is needed).
    Raises FormatError for an unreadable ``meta/info.json`` and for a listed path that points outside the
    folder or at a hidden file. Listed files that are missing are still returned (``validate`` reports them)."""
    root = Path(root)
    files = read_file_table(root) if files is None else files
    listed = {INFO, CARD}
    for path in files:
        relative = _inside(root, str(path))
        if relative is None or relative != str(path):
            raise FormatError(f"{root / INFO}: lists {path!r}, which is not a plain path inside the release")
        listed.add(relative)
    return sorted(listed | set(card_images(root)))


def unlisted_files(root: str | os.PathLike, files: Iterable[str] | None = None) -> list[str]:
    """Files in the release folder that are not part of the release (not hidden; sorted): what a
    person put there. Hidden entries (the build's bookkeeping) are left out."""
    root = Path(root)
    listed = set(release_files(root, files))
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            relative = (Path(dirpath) / name).relative_to(root).as_posix()
            if relative not in listed:
                found.append(relative)
    return sorted(found)
