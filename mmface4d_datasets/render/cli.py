"""`mmface4d render`: a mesh sequence to an H.264 MP4 with its audio, or one frame to a PNG.

Imports only the standard library at module level (every `mmface4d` call loads it)."""

from __future__ import annotations

import argparse

from mmface4d_datasets.arguments import add_release_argument


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 512x512, got {text!r}") from None
    if not (16 <= width <= 8192 and 16 <= height <= 8192) or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"size {text}: width and height must be even, 16..8192")
    return width, height


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "render",
        help="draw a mesh sequence (take folder, PLY folder or release row) as an MP4 with its audio",
        description=(
            "Render a mesh sequence with the project's CPU renderer (Lambert shading, one fixed framing for "
            "the whole sequence) to an H.264 MP4 at the sequence's frame rate (30 fps) with the take's audio "
            "as AAC, or one frame to a PNG with --still. SOURCE is a take folder in the authors' layout "
            "(meshes *_filt_{0,1,2}.nut, ID.wav, ID_c.json; triangles from --faces or a bfm_faces.pkl beside "
            "it) or a folder of .ply frames (mmface4d export); or give --data RELEASE --id ID for a release "
            "row. The file is written to a temporary name and renamed when complete."
        ),
    )
    parser.add_argument("source", nargs="?", metavar="SOURCE", help="take folder or folder of .ply frames")
    add_release_argument(parser, required=False, what="a release row's sequence (with --id)")
    parser.add_argument("--id", dest="sequence_id", metavar="ID", help="sequence id in the release (with --data)")
    parser.add_argument("--out", required=True, metavar="FILE", help="the video (.mp4), or the image (.png) with --still")
    parser.add_argument("--faces", metavar="FILE", help="triangles for a take folder (.npy, bfm_faces.pkl, facemodel_info.mat)")
    parser.add_argument("--audio", metavar="WAV", help="audio for a PLY folder (default: its single .wav, if any)")
    parser.add_argument(
        "--size", type=_size, default=None, metavar="WxH", help="image size (default 512x512; a take camera: half its resolution)"
    )
    parser.add_argument(
        "--view",
        default="front",
        help="front, left, right (45 degrees to the subject's left/right) or a take's camera index "
        "whose calibration gives its extrinsics (the authors' files: camera 1 only)",
    )
    parser.add_argument("--background", default="white", help="white, black, grey, R,G,B or #rrggbb (default white)")
    parser.add_argument("--still", type=int, default=None, metavar="FRAME", help="write frame FRAME as a PNG instead")
    parser.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "numpy", "numba"),
        help="rasteriser back end (auto: numba when the viz extra is installed)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import sys
    import warnings

    from mmface4d_datasets.render.video import AudioLengthWarning, load_source, render_sequence

    from mmface4d_datasets.release.resolve import resolve_release

    data = str(resolve_release(args.data, progress=not args.quiet)) if args.data else None
    seq = load_source(args.source, data=data, sequence_id=args.sequence_id, faces=args.faces, audio=args.audio)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AudioLengthWarning)
        path = render_sequence(
            seq,
            args.out,
            view=args.view,
            size=args.size,
            background=args.background,
            still=args.still,
            progress=not args.quiet,
            backend=args.backend,
        )
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    what = f"frame {args.still}" if args.still is not None else f"{len(seq.vertices)} frames"
    audio = "" if args.still is not None or seq.audio is None else " with audio"
    print(f"wrote {path} ({what} of {seq.name}{audio})")
    return 0
