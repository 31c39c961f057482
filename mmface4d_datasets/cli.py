"""The `mmface4d` command.

Sub-commands are found through the entry-point group ``mmface4d.commands``: each package
declares its own in pyproject.toml, pointing at a ``register(subparsers)`` function that adds
one sub-parser and sets ``func`` on it. The core therefore never imports the packages above it.
Modules named by entry points keep module-level imports light (argparse and the standard library);
heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

from mmface4d_datasets.errors import MMFace4DError, describe_os_error

COMMAND_GROUP = "mmface4d.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
        print(f"mmface4d {args.command}: error: an input is nested too deeply to read (a hostile or broken "
              "JSON file?)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
