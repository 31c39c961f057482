"""The `mmface4d` command.

Sub-commands are found through the entry-point group ``mmface4d.commands``: each package
declares its own in pyproject.toml, pointing at a ``register(subparsers)`` function that adds
one sub-parser and sets ``func`` on it. The core therefore never imports the packages above it.
Modules named by entry points keep module-level imports light (argparse and the standard library);
heavy imports happen inside the handlers.

Library code reports through module loggers (``logging.getLogger(__name__)``), never ``print``;
:func:`log_to_stderr`, called once by :func:`main`, shows their notes and warnings on stderr as
plain lines, so that stdout holds only what a command prints as its result (e.g. a JSON summary).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from importlib.metadata import entry_points

from mmface4d_datasets.arguments import did_you_mean
from mmface4d_datasets.errors import MMFace4DError, describe_os_error

COMMAND_GROUP = "mmface4d.commands"


class _CurrentStderr(logging.StreamHandler):
    """Writes each record as one plain line to ``sys.stderr`` as it is when the record is emitted
    (so a caller's ``redirect_stderr`` or a test's capture sees it, like a ``print`` would)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; the current sys.stderr is always used
        pass


_INVALID_CHOICE = re.compile(r"invalid choice: '?(?P<value>.*?)'? \(choose from (?P<choices>.*)\)$")


def suggest_choice(message: str) -> str:
    """``message`` of argparse with "did you mean ...?" added when it is an invalid choice close to a valid one."""
    found = _INVALID_CHOICE.search(message)
    if not found:
        return message
    choices = [choice.strip().strip("'\"") for choice in found["choices"].split(",")]
    return message + did_you_mean(found["value"], choices)


class CommandParser(argparse.ArgumentParser):
    """argparse's parser whose errors suggest the closest valid choice (sub-commands, ``--model`` names, ...).

    ``error`` is argparse's documented hook for subclasses; sub-parsers are made of the same class."""

    def error(self, message: str):
        super().error(suggest_choice(message))


def command_packages() -> list[str]:
    """The top-level packages that declare ``mmface4d`` sub-commands (the core first): whose loggers
    the command shows. Read from the entry points' names, so nothing above the core is imported."""
    names = ["mmface4d_datasets"]
    for ep in entry_points(group=COMMAND_GROUP):
        package = ep.value.split(":", 1)[0].split(".", 1)[0].strip()
        if package and package not in names:
            names.append(package)
    return names


def log_to_stderr(packages: list[str] | None = None) -> None:
    """Show the INFO and higher records of the loggers of ``packages`` (default: :func:`command_packages`)
    on stderr, one plain line each. Idempotent (one handler per logger, however often it is called)."""
    for name in packages if packages is not None else command_packages():
        logger = logging.getLogger(name)
        if not any(isinstance(handler, _CurrentStderr) for handler in logger.handlers):
            logger.addHandler(_CurrentStderr())
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)


@contextlib.contextmanager
def library_output_to_stderr():
    """Inside, whatever writes to file descriptor 1 (a library's C code, or a child process started
    here, such as Ray's raylet and workers, which keep the descriptor) goes to stderr instead, so that
    stdout holds only the result the command prints after the block (e.g. its JSON summary)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no stdout descriptor at all: nothing to protect
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="mmface4d",
        description="MMFace4D: audio-driven 3D face animation data, releases and benchmark.",
    )
    from mmface4d_datasets import __version__

    parser.add_argument("--version", action="version", version=f"mmface4d-datasets {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for ep in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        try:
            register = ep.load()
        except Exception as exc:  # a broken plug-in must not take the other commands down
            print(f"mmface4d: sub-command {ep.name!r} could not be loaded ({ep.value}): {exc}", file=sys.stderr)
            continue
        register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    log_to_stderr()
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except MMFace4DError as exc:
        print(f"mmface4d {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file-system fault no command named itself: still the path and the cause
        print(f"mmface4d {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except RecursionError:  # e.g. a JSON document nested deeper than Python's parser can follow
        print(f"mmface4d {args.command}: error: an input is nested too deeply to read (a hostile or broken JSON file?)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # on a line of its own: a progress bar may have left the cursor at the end of its line
        print("\nmmface4d: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
