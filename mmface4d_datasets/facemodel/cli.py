"""``mmface4d facemodel``: draw a face model with its regions, or print its topology facts.

Only the standard library is imported at module level (every ``mmface4d`` call loads this file);
the handlers import numpy, scipy and matplotlib.
"""

from __future__ import annotations

import argparse
import json
import sys

from mmface4d_datasets.arguments import seed, whole_number


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "facemodel",
        help="draw a face model's mean shape with its regions and landmarks, or print its topology facts",
        description="Face models: the embedded synthetic_v1@N model (no files needed) or BFM 2009 from your own files.",
    )
    actions = parser.add_subparsers(dest="facemodel_action", metavar="ACTION")
    actions.required = True

    def common(sub):
        sub.add_argument(
            "--model",
            choices=("default", "bfm"),
            default="default",
            help="'default': the embedded synthetic_v1@N model; 'bfm': BFM 2009 front face from --bfm-dir",
        )
        sub.add_argument(
            "--vertices",
            type=whole_number(1),
            default=None,
            metavar="N",
            help="vertex count of the embedded model (500..200000; default 5023)",
        )
        sub.add_argument("--seed", type=seed, default=0, help="seed of the embedded model's random modes (default 0)")
        sub.add_argument(
            "--bfm-dir",
            default=None,
            metavar="DIR",
            help="folder with 01_MorphableModel.mat, Exp_Pca.bin, BFM_front_idx.mat, BFM_exp_idx.mat, "
            "facemodel_info.mat and std_exp.txt (your own licence-gated copies)",
        )

    show = actions.add_parser("show", help="write a PNG of the mean shape, front view, regions coloured, landmarks numbered")
    common(show)
    show.add_argument("--out", required=True, metavar="FILE.png", help="the PNG to write")
    show.add_argument("--no-numbers", action="store_true", help="mark the 68 landmarks without their numbers")
    show.set_defaults(func=_show)

    info = actions.add_parser(
        "info", help="print JSON: topology name, vertex and triangle counts, keypoints, region sizes and rule version"
    )
    common(info)
    info.add_argument(
        "--bfm-info",
        default=None,
        metavar="FILE",
        help="with --model bfm: a facemodel_info.mat alone is enough (no licence-gated files needed)",
    )
    info.set_defaults(func=_info)


def _model(args):
    from mmface4d_datasets.errors import MMFace4DError
    from mmface4d_datasets.facemodel import load_face_model

    if args.model == "bfm":
        if args.bfm_dir is None:
            raise MMFace4DError("--model bfm needs --bfm-dir DIR with your BFM 2009 files")
        return load_face_model("bfm", folder=args.bfm_dir)
    options = {"seed": args.seed}
    if args.vertices is not None:
        options["num_vertices"] = args.vertices
    return load_face_model("default", **options)


def _show(args) -> int:
    from mmface4d_datasets.facemodel.render import render_face_model

    model = _model(args)
    path = render_face_model(model, args.out, number_landmarks=not args.no_numbers)
    print(f"wrote {path} ({model.topology}, {model.num_vertices} vertices)")
    return 0


def _info(args) -> int:
    from mmface4d_datasets.facemodel import REGION_RULE_VERSION

    if args.model == "bfm" and args.bfm_info is not None:
        from mmface4d_datasets.facemodel.bfm import bfm_topology

        model = bfm_topology(args.bfm_info)
    else:
        model = _model(args)
    masks = model.region_masks()
    facts = {
        "topology": model.topology,
        "num_vertices": int(model.num_vertices),
        "num_triangles": int(len(model.triangles)),
        "keypoints": [int(k) for k in model.keypoints],
        "region_rule_version": REGION_RULE_VERSION,
        "region_sizes": {name: int(len(ids)) for name, ids in masks.items()},
    }
    json.dump(facts, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":  # pragma: no cover - for `python -m mmface4d_datasets.facemodel.cli`
    main_parser = argparse.ArgumentParser(prog="mmface4d")
    register(main_parser.add_subparsers(dest="command"))
    parsed = main_parser.parse_args()
    sys.exit(parsed.func(parsed))
