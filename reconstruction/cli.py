"""``mmface4d reconstruct``: take folders -> fitted mesh sequences (docs/reconstruction.md).

Only the standard library and the core's vocabulary are imported here (through ``reconstruction.batch``'s
module level); the handler parses the arguments and calls :func:`reconstruction.batch.reconstruct_folders`.
"""

from __future__ import annotations

from reconstruction.batch import DEFAULT_VERTICES  # light: the standard library and the core's vocabulary


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "reconstruct",
        help="fit take folders (depth + landmarks of three cameras) to mesh sequences on the CPU",
        description=(
            "Fit each TAKE folder (ID_c.json, ID_c.nut registered depth, ID_c.landmarks.npy for cameras 0, 1, 2; "
            "ID.wav; ID.meta.json) with a face model: camera alignment (Kabsch + point-to-plane ICP), stage 1 "
            "(landmarks), stage 2 (depth of all cameras + landmarks + priors), stage 3 (vertex offsets), tracking "
            "warm-started from the previous frame, Butterworth smoothing (5 Hz, order 5, zero-phase). Writes "
            "OUT/ID/ID_filt_{0,1,2}.nut (camera 1's frame, metres, the authors' encoding), ID.wav, ID.meta.json "
            "and fit_report.json, so `mmface4d build release OUT` takes the result. OUT must be new, empty or "
            "made by this command; takes already in it are skipped unless --overwrite. A take that cannot be "
            "fitted (missing camera 1, empty landmarks, depth all zero, face lost in too many frames, diverging "
            "fit) is reported by name and not written; the exit status is then 2."
        ),
    )
    parser.add_argument("takes", nargs="+", metavar="TAKE", help="take folders")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--face-model",
        nargs="+",
        default=["default"],
        metavar=("NAME", "PATH"),
        help="'default' (the embedded model; its vertex count from the take's meta 'topology' or "
        f"--vertices, else {DEFAULT_VERTICES}) or 'bfm PATH' (folder of the BFM 2009 files, "
        "see docs/facemodel.md)",
    )
    parser.add_argument("--vertices", type=int, default=None, metavar="N", help="vertex count of the embedded model")
    parser.add_argument("--cameras", default="0,1,2", metavar="LIST", help="cameras to use (default 0,1,2; 1 is required)")
    parser.add_argument("--no-smoothing", action="store_true", help="leave out the temporal low-pass")
    parser.add_argument("--no-stage3", action="store_true", help="model-only fit (no per-vertex offsets)")
    parser.add_argument("--overwrite", action="store_true", help="fit takes already in OUT again")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from mmface4d_datasets.errors import MMFace4DError
    from reconstruction.batch import reconstruct_folders

    try:
        cameras = tuple(int(c) for c in args.cameras.split(","))
    except ValueError:
        raise MMFace4DError(f"--cameras must be a comma-separated list of 0, 1, 2, found {args.cameras!r}") from None
    if 1 not in cameras or not set(cameras) <= {0, 1, 2}:
        raise MMFace4DError(f"--cameras must include camera 1 and name only 0, 1, 2, found {args.cameras!r}")
    result = reconstruct_folders(
        args.takes,
        args.out,
        face_model=args.face_model,
        vertices=args.vertices,
        cameras=cameras,
        smoothing=not args.no_smoothing,
        stage3=not args.no_stage3,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    for take_id in result.skipped:
        print(f"take {take_id}: already in {result.out}, skipped (--overwrite to fit it again)")
    print(f"wrote {len(result.written)} take(s) under {result.out}" + (f"; {len(result.failed)} failed" if result.failed else ""))
    return 2 if result.failed else 0
