"""`mmface4d validate RELEASE`: check a release folder and list every problem by file and row.

Only the standard library is imported here; the handler imports the checker.
"""

from __future__ import annotations

import argparse

from mmface4d_datasets.arguments import RELEASE_HELP, whole_number


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a release folder (format version, checksums, schema, splits, style references)",
        description=(
            "Check a release folder written by `mmface4d build release`: its format version, the sha256 "
            "of every data file listed in meta/info.json, the columns of every shard, every row (ids, "
            "emotion, shapes, audio header), the splits (no subject in two splits) and the frozen style "
            "references. Prints one line per problem (file and row) and exits 1 when there is any, 0 "
            "when the release is valid. Files in the folder that meta/info.json does not list (other "
            "than the card and its images) are reported too: they are not part of the release and "
            "`mmface4d build push` does not upload them."
        ),
    )
    parser.add_argument("release", metavar="RELEASE", help=RELEASE_HELP)
    parser.add_argument(
        "--max-problems", type=whole_number(0), default=200, metavar="N", help="print at most N problems (all are counted; default 200)"
    )
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from mmface4d_datasets.errors import FormatError
    from mmface4d_datasets.release.contents import unlisted_files
    from mmface4d_datasets.release.resolve import resolve_release
    from mmface4d_datasets.release.validate import validate_release

    # A folder is checked as it is (a broken meta/info.json is a problem to list); a name is resolved first.
    folder = resolve_release(args.release, require_info=False)
    problems = validate_release(folder)
    try:
        unlisted = unlisted_files(folder)
    except FormatError:  # no readable meta/info.json: validate_release has said so
        unlisted = []
    for relative in unlisted[: args.max_problems]:
        print(f"{relative}: not part of the release (not listed in meta/info.json; `mmface4d build push` does not upload it)")
    if len(unlisted) > args.max_problems:
        print(f"... and {len(unlisted) - args.max_problems} more files not part of the release")
    for problem in problems[: args.max_problems]:
        print(problem)
    if len(problems) > args.max_problems:
        print(f"... and {len(problems) - args.max_problems} more")
    if problems:
        print(f"{args.release}: {len(problems)} problem(s)")
        return 1
    print(f"{args.release}: valid")
    return 0
