"""The ``--layout faceformer`` options of ``mmface4d build release`` (standard library only at module level)."""

from __future__ import annotations

import argparse

from mmface4d_datasets.arguments import whole_number

#: Options of the authors' layout that a FaceFormer-layout folder has no use for.
_AUTHORS_ONLY = {"bfm_info": "--bfm-info", "no_raw": "--no-raw", "withdrawals": "--withdrawals"}


def add_layout_arguments(parser: argparse.ArgumentParser) -> None:
    """``--layout`` and the options of the FaceFormer layout (docs/faceformer.md)."""
    parser.add_argument(
        "--layout",
        choices=("authors", "faceformer"),
        default="authors",
        help="SRC's layout: the authors' takes (default) or FaceFormer's (vertices_npy/<name>.npy (T, N*3), "
        "wav/<name>.wav, templates.pkl, e.g. a VOCASET copy or an `mmface4d export faceformer` folder)",
    )
    group = parser.add_argument_group("--layout faceformer")
    group.add_argument(
        "--faces",
        metavar="FILE",
        default=None,
        help="triangles of the mesh: .npy (0-based), .pkl (restricted unpickling), BFM .mat, or a topology .npz "
        "(triangles, keypoints); default for an export folder: its topology.npz",
    )
    group.add_argument("--keypoints", metavar="FILE", default=None, help="68 vertex ids (iBUG order, 0-based): .npy, .json list or text")
    group.add_argument(
        "--fps",
        type=whole_number(1, 1000),
        default=None,
        help="frame rate of the vertex files (default: an export's own, else 30); 60 keeps every second frame, "
        "others are resampled linearly in time to the release's 30",
    )
    group.add_argument("--topology-name", metavar="NAME", default=None, help="name of a topology given by --faces (default: custom@<N>)")


def run_faceformer_release(args, executor, writer_options: dict):
    """``build release SRC --layout faceformer``: the summary of :func:`builders.build.build_faceformer_release`."""
    from builders.build import build_faceformer_release
    from mmface4d_datasets.errors import MMFace4DError

    wrong = [flag for name, flag in _AUTHORS_ONLY.items() if getattr(args, name, None)]
    if wrong:
        raise MMFace4DError(f"{', '.join(wrong)}: options of the authors' layout, not of --layout faceformer")
    return build_faceformer_release(
        args.source,
        args.out,
        faces=args.faces,
        keypoints=args.keypoints,
        fps=args.fps,
        manifest=args.manifest,
        topology_name=args.topology_name,
        on_error=args.on_error,
        executor=executor,
        overwrite=getattr(args, "overwrite", False),
        **writer_options,
    )


def refuse_layout_options(args) -> None:
    """The FaceFormer options given with the authors' layout: a named error (they would be ignored)."""
    from mmface4d_datasets.errors import MMFace4DError

    flags = {"faces": "--faces", "keypoints": "--keypoints", "fps": "--fps", "topology_name": "--topology-name"}
    wrong = [flag for name, flag in flags.items() if getattr(args, name, None) is not None]
    if wrong:
        raise MMFace4DError(f"{', '.join(wrong)}: options of --layout faceformer (SRC is read in the authors' layout)")
