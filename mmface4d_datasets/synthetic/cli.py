"""``mmface4d synth``: write a set of synthetic takes with ground truth.

Only the standard library is imported here; the handler imports the generator.
"""

from __future__ import annotations


from mmface4d_datasets.arguments import seed, whole_number


def register(subparsers) -> None:
    """Add the ``synth`` sub-command."""
    parser = subparsers.add_parser(
        "synth",
        help="write synthetic talking-face takes (speech, meshes, ground truth)",
        description=(
            "Write K subjects x M sentences of synthetic takes: Mandarin speech from eSpeak NG (16 kHz), "
            "face meshes at 30 fps from the embedded face model in camera 1's frame (the authors' .nut "
            "encoding), metadata and ground truth (expression coefficients, head pose, phoneme timings). "
            "Layout: OUT/<subject_id>/<take_id>/ with ID.wav, ID_filt_{0,1,2}.nut, ID.meta.json, ID.gt.npz, "
            "plus OUT/manifest.csv. The same seed gives the same bytes; takes already in OUT from the same "
            "seed are kept, so an interrupted run can be resumed."
        ),
    )
    parser.add_argument("--subjects", type=whole_number(1), required=True, metavar="K", help="number of actors (1..999)")
    parser.add_argument(
        "--sentences",
        type=whole_number(1),
        required=True,
        metavar="M",
        help="sentences per actor, drawn balanced across the seven emotions (1..999)",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output folder: new, empty, or an earlier synth output (created if missing)"
    )
    parser.add_argument("--seed", type=seed, default=0, metavar="S", help="generation seed (default 0)")
    parser.add_argument(
        "--vertices",
        type=whole_number(1),
        default=None,
        metavar="N",
        help="vertex count of the embedded face model, 500..200000 (default: the model's default, 5023)",
    )
    parser.add_argument(
        "--workers",
        type=whole_number(1),
        default=1,
        metavar="W",
        help="processes making takes in parallel (default 1); the output does not depend on it",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from mmface4d_datasets.synthetic.takes import generate_takes

    folders = generate_takes(
        args.out, args.subjects, args.sentences, seed=args.seed, num_vertices=args.vertices, progress=not args.quiet, workers=args.workers
    )
    print(f"wrote {len(folders)} takes under {args.out}")
    return 0
