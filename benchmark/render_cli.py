"""`mmface4d bench render` and `bench score --render-worst K` (standard library only at module level)."""

from __future__ import annotations

import sys
from pathlib import Path

from mmface4d_datasets.arguments import add_release_argument, positive_number


def register(bench, score) -> None:
    """Add ``bench render`` to the ``bench`` sub-parsers and ``--render-worst`` to ``score``."""
    render = bench.add_parser(
        "render",
        help="video of one sequence: ground truth, prediction and the per-vertex error in mm",
        description="Draw one sequence of a submission beside its ground truth, with a third panel colouring "
        "each vertex by its error (one millimetre scale for the whole video: by default from 0 to the "
        "99th percentile of the sequence's errors, rounded up; larger errors get the top colour; "
        "--error-max fixes it, e.g. to compare videos; colour bar in mm beside it) and the sequence's "
        "four metrics in the frame; H.264 MP4 with the take's audio.",
    )
    render.add_argument("prediction", metavar="PRED", help="submission .parquet file")
    add_release_argument(render)
    render.add_argument("--id", dest="sequence_id", required=True, help="sequence id to draw")
    render.add_argument("--out", help="video path (default: <id>.mp4 in the current folder)")
    render.add_argument("--panel-size", type=int, default=384, help="pixels per panel side (default 384)")
    render.add_argument("--quiet", action="store_true", help="no progress bar")
    _error_max_argument(render)
    render.set_defaults(func=handle_render)
    score.add_argument(
        "--render-worst",
        type=int,
        default=0,
        metavar="K",
        help="after scoring, write comparison videos of the K sequences with the largest lip_max",
    )
    score.add_argument("--render-dir", metavar="DIR", help="folder for those videos (default: beside the report, <report>-worst/)")
    _error_max_argument(score)


def _error_max_argument(parser) -> None:
    parser.add_argument(
        "--error-max",
        type=positive_number(1000.0),
        default=None,
        metavar="MM",
        help="top of the error colour scale in millimetres (default: the sequence's 99th percentile, rounded up)",
    )


def handle_render(args) -> int:
    from benchmark.render import render_submission_sequence, video_name
    from mmface4d_datasets.errors import MMFace4DError
    from mmface4d_datasets.release.reader import Release
    from mmface4d_datasets.release.resolve import resolve_release

    if not 16 <= args.panel_size <= 4096:
        raise MMFace4DError(f"--panel-size must be 16..4096, got {args.panel_size}")
    out = Path(args.out) if args.out else Path(video_name(args.sequence_id))
    result = render_submission_sequence(
        args.prediction,
        Release(resolve_release(args.data, progress=not args.quiet)),
        args.sequence_id,
        out,
        panel_size=args.panel_size,
        progress=not args.quiet,
        vmax_mm=args.error_max,
    )
    values = "  ".join(f"{k} {v * 1000:.3f} mm" for k, v in result["metrics"].items())
    print(
        f"wrote {out} ({result['num_frames']} frames; {values}; colour scale 0-{result['vmax_mm']:g} mm, "
        f"{result['scale']}; largest error {result['max_error_mm']:.2f} mm)"
    )
    return 0


def render_worst_after_score(args, prediction: Path, release, report: dict, json_path: Path) -> None:
    """The ``--render-worst K`` step of ``bench score`` (nothing when K is 0)."""
    k = getattr(args, "render_worst", 0) or 0
    if k <= 0:
        return
    from benchmark.render import render_worst

    out_dir = Path(args.render_dir) if args.render_dir else json_path.with_name(json_path.stem + "-worst")
    paths = render_worst(report, prediction, release, k, out_dir, progress=not args.quiet, vmax_mm=getattr(args, "error_max", None))
    print(f"worst {len(paths)} sequence video(s) by lip_max: {out_dir}", file=sys.stderr)
