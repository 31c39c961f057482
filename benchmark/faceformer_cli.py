"""`mmface4d bench submit-faceformer` (standard library only at module level)."""

from __future__ import annotations

import json
import sys

from mmface4d_datasets.arguments import add_release_argument, positive_number, whole_number


def register(bench) -> None:
    """Add ``bench submit-faceformer`` to the ``bench`` sub-parsers."""
    parser = bench.add_parser(
        "submit-faceformer",
        help="turn a FaceFormer-style result/ folder of (T, N*3) .npy files into a checked submission",
        description="Read RESULT_DIR as FaceFormer, CodeTalker and their kin write it (result/<name>.npy or "
        "<name>_condition_<train subject>.npy, float32 (T, N*3), names as `mmface4d export faceformer` made "
        "them), map the names back to the release's sequence ids and write SUBMISSION (a benchmark "
        "submission, canonical head frame, metres). Everything is checked before anything is written; "
        "each problem is named: a file that is no sequence of the scored split (extra), a sequence "
        "without a file (missing), several conditions without --condition, a shape that is not "
        "(T, N*3) with the release's N, NaN or infinite values, a frame count off by more than "
        "--max-frame-difference once counted at the release's rate. Predictions at --fps are "
        "converted to the release's rate (linear in time) onto the ground truth's frame count (a few "
        "missing last frames hold the last one; extra frames are cut). Then: mmface4d bench score "
        "SUBMISSION --data RELEASE. See docs/faceformer.md.",
    )
    parser.add_argument("results", metavar="RESULT_DIR", help="their result/ folder")
    add_release_argument(parser, "--release", what="the release the export was made from")
    parser.add_argument("--out", required=True, metavar="SUBMISSION", help="submission .parquet to write")
    parser.add_argument(
        "--fps",
        type=whole_number(1, 1000),
        default=30,
        help="frame rate of the predictions: 30 (default; vocaset-mode scripts on a --fps 60 export predict at 30) or 25 (BIWI mode)",
    )
    parser.add_argument(
        "--condition",
        metavar="SUBJECT",
        default=None,
        help="the train-speaker condition to submit when their test wrote one file per condition (<name>_condition_<SUBJECT>.npy)",
    )
    parser.add_argument("--split", default="test", help="split the predictions are for (default: test)")
    parser.add_argument("--model", default="faceformer", help="model name for the header (default: faceformer)")
    parser.add_argument("--url", default="", help="paper or code URL for the header")
    parser.add_argument("--hardware", default="", help="hardware description for the header (default: this machine)")
    parser.add_argument("--encoding", choices=("codec", "float32le"), default="codec", help="payload encoding (default: codec)")
    parser.add_argument("--max-error", type=positive_number(1.0), default=1e-5, help="codec bound per coordinate, metres (default: 1e-5)")
    parser.add_argument(
        "--max-frame-difference",
        type=whole_number(0),
        default=3,
        metavar="K",
        help="frames a prediction may be short or long at the release's rate before it is an error (default: 3 = 0.1 s)",
    )
    parser.set_defaults(func=handle_submit)


def handle_submit(args) -> int:
    from benchmark.faceformer_results import submit_faceformer_results
    from mmface4d_datasets.release.resolve import resolve_release

    result = submit_faceformer_results(
        args.results,
        str(resolve_release(args.release)),
        args.out,
        fps=args.fps,
        condition=args.condition,
        split=args.split,
        model=args.model,
        url=args.url,
        hardware=args.hardware,
        encoding=args.encoding,
        max_error=args.max_error,
        max_frame_difference=args.max_frame_difference,
    )
    print(json.dumps(result.as_dict(), indent=2, sort_keys=True))
    if result.held or result.cut:
        print(
            f"mmface4d bench submit-faceformer: {len(result.held)} prediction(s) ended early (last frame held), "
            f"{len(result.cut)} ran longer (cut) than the ground truth",
            file=sys.stderr,
        )
    print(f"next: mmface4d bench score {result.path} --data {args.release}", file=sys.stderr)
    return 0
