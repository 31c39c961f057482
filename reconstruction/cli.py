"""``mmface4d reconstruct``: take folders -> fitted mesh sequences (docs/reconstruction.md).

Only the standard library and the core's vocabulary are imported here; the handler imports the reconstruction.
"""

from __future__ import annotations

from mmface4d_datasets.vocabulary import BFM_NUM_VERTICES, SYNTHETIC_TOPOLOGY_PREFIX, parse_synthetic_topology

DEFAULT_VERTICES = BFM_NUM_VERTICES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "reconstruct", help="fit take folders (depth + landmarks of three cameras) to mesh sequences on the CPU",
        description=(
            "Fit each TAKE folder (ID_c.json, ID_c.nut registered depth, ID_c.landmarks.npy for cameras 0, 1, 2; "
            "ID.wav; ID.meta.json) with a face model: camera alignment (Kabsch + point-to-plane ICP), stage 1 "
            "(landmarks), stage 2 (depth of all cameras + landmarks + priors), stage 3 (vertex offsets), tracking "
            "warm-started from the previous frame, Butterworth smoothing (5 Hz, order 5, zero-phase). Writes "
            "OUT/ID/ID_filt_{0,1,2}.nut (camera 1's frame, metres, the authors' encoding), ID.wav, ID.meta.json "
            "and fit_report.json, so `mmface4d build release OUT` takes the result. OUT must be new, empty or "
            "made by this command; takes already in it are skipped unless --overwrite. A take that cannot be "
            "fitted (missing camera 1, empty landmarks, depth all zero, face lost in too many frames, diverging "
            "fit) is reported by name and not written; the exit status is then 2."),
    )
    parser.add_argument("takes", nargs="+", metavar="TAKE", help="take folders")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--face-model", nargs="+", default=["default"], metavar=("NAME", "PATH"),
                        help="'default' (the embedded model; its vertex count from the take's meta 'topology' or "
                             f"--vertices, else {DEFAULT_VERTICES}) or 'bfm PATH' (folder of the BFM 2009 files, "
                             "see docs/facemodel.md)")
    parser.add_argument("--vertices", type=int, default=None, metavar="N", help="vertex count of the embedded model")
    parser.add_argument("--cameras", default="0,1,2", metavar="LIST", help="cameras to use (default 0,1,2; 1 is required)")
    parser.add_argument("--no-smoothing", action="store_true", help="leave out the temporal low-pass")
    parser.add_argument("--no-stage3", action="store_true", help="model-only fit (no per-vertex offsets)")
    parser.add_argument("--overwrite", action="store_true", help="fit takes already in OUT again")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=_run)


def _model_for(args, take_meta: dict, cache: dict):
    from mmface4d_datasets.errors import MMFace4DError
    from mmface4d_datasets.facemodel import load_face_model

    name = args.face_model[0]
    if name == "bfm":
        if len(args.face_model) != 2:
            raise MMFace4DError("--face-model bfm needs the folder of the BFM files: --face-model bfm PATH")
        key = ("bfm", args.face_model[1])
        if key not in cache:
            cache[key] = load_face_model("bfm", folder=args.face_model[1])
        return cache[key]
    if name not in ("default", "synthetic", "embedded") or len(args.face_model) != 1:
        raise MMFace4DError(f"unknown --face-model {' '.join(args.face_model)!r}; use 'default' or 'bfm PATH'")
    n = args.vertices
    if n is None:
        topology = str(take_meta.get("topology", ""))
        n = parse_synthetic_topology(topology) if topology.startswith(SYNTHETIC_TOPOLOGY_PREFIX) else DEFAULT_VERTICES
    if n not in cache:
        cache[n] = load_face_model("default", num_vertices=n)
    return cache[n]


def _run(args) -> int:
    import sys

    from tqdm import tqdm

    from mmface4d_datasets.errors import MMFace4DError
    from reconstruction.pipeline import Options, prepare_output, reconstruct_take, write_reconstruction
    from reconstruction.take_input import read_take_input

    try:
        cameras = tuple(int(c) for c in args.cameras.split(","))
    except ValueError:
        raise MMFace4DError(f"--cameras must be a comma-separated list of 0, 1, 2, found {args.cameras!r}") from None
    if 1 not in cameras or not set(cameras) <= {0, 1, 2}:
        raise MMFace4DError(f"--cameras must include camera 1 and name only 0, 1, 2, found {args.cameras!r}")
    out = prepare_output(args.out)
    options = Options(smoothing=not args.no_smoothing, stage3=not args.no_stage3, cameras=cameras)
    cache, failed, written = {}, [], 0
    for folder in args.takes:
        try:
            take = read_take_input(folder)
            if (out / take.take_id).exists() and not args.overwrite:
                print(f"take {take.take_id}: already in {out}, skipped (--overwrite to fit it again)")
                continue
            model = _model_for(args, take.meta, cache)
            bar = tqdm(total=take.num_frames, desc=f"take {take.take_id}", unit="frame", disable=args.quiet)
            try:
                result = reconstruct_take(take, model, options, bar)
            finally:
                bar.close()
            write_reconstruction(out, take, result)
            written += 1
        except MMFace4DError as exc:
            failed.append(str(exc))
            print(f"error: {exc}", file=sys.stderr)
    print(f"wrote {written} take(s) under {out}" + (f"; {len(failed)} failed" if failed else ""))
    return 2 if failed else 0
