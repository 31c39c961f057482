"""`mmface4d export`: a mesh sequence to one PLY or OBJ file per frame, for MeshLab or Blender; and
`mmface4d export faceformer RELEASE`, a release in the FaceFormer layout (mmface4d_datasets.faceformer.export).

Vertex order is kept exactly (trimesh with ``process=False``), so frame files of one sequence
share their topology and any per-vertex data (masks, errors) still lines up. Binary PLY stores the
float32 coordinates exactly; OBJ is text with :data:`OBJ_DECIMALS` decimals (0.1 nm in metres) and
about a hundred times slower to write.

This module holds the sub-command's ``register`` and imports only the standard library at module
level; numpy, trimesh and the readers are imported by the functions that use them.
"""

from __future__ import annotations

import argparse
import sys
import os
from dataclasses import dataclass
from pathlib import Path

from mmface4d_datasets.arguments import add_release_argument, whole_number
from mmface4d_datasets.vocabulary import BFM_NUM_VERTICES

#: Output formats and the file suffix of each.
FORMATS = ("ply", "obj")
#: The kind of output an export folder is (mmface4d_datasets.output_folders).
EXPORT_KIND = "export"
#: Decimals written per OBJ coordinate (metres): rounding error at most 5e-11 m.
OBJ_DECIMALS = 10


def load_faces(path: str | os.PathLike, num_vertices: int | None = None):
    """Triangles (F, 3) int64, 0-based, from one of the formats faces come in.

    - ``.npy``: an integer (F, 3) array, 0-based (``np.load(allow_pickle=False)``);
    - ``.pkl``: the authors' ``bfm_faces.pkl`` (a pickled trimesh TrackedArray) or any pickled
      integer array / list of triples, read through the restricted unpickler (never executed);
    - ``.mat``: a BFM ``facemodel_info.mat``, its ``tri`` variable, 1-based (converted to 0-based).

    With ``num_vertices`` given, every index must lie in ``0 .. num_vertices - 1``.
    Raises FormatError naming the file for another suffix, shape, dtype or an index out of range.
    """
    import numpy as np

    from mmface4d_datasets.errors import FormatError
    from mmface4d_datasets.safe_pickle import load_array

    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: faces file is missing")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        from mmface4d_datasets.files import read_npy

        faces = read_npy(path)  # header checked against the file's size; objects refused
    elif suffix == ".pkl":
        faces = load_array(path, kinds="iuf")
    elif suffix == ".mat":
        faces = _faces_from_mat(path)
    else:
        raise FormatError(f"{path}: unknown faces format {suffix or '(no suffix)'}; expected .npy, .pkl or .mat")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise FormatError(f"{path}: faces must be a non-empty (F, 3) array, found shape {faces.shape}")
    if faces.dtype.kind == "f":  # MATLAB and some pickles store indices as floats
        if not (np.isfinite(faces).all() and (faces == np.round(faces)).all()):
            raise FormatError(f"{path}: face indices are not whole numbers")
    elif faces.dtype.kind not in "iu":
        raise FormatError(f"{path}: face indices have dtype {faces.dtype}, expected integers")
    faces = faces.astype(np.int64)
    low, high = int(faces.min()), int(faces.max())
    if low < 0 or (num_vertices is not None and high >= num_vertices):
        limit = f"0 .. {num_vertices - 1}" if num_vertices is not None else "0 or more"
        raise FormatError(f"{path}: face indices span {low} .. {high}, expected {limit}")
    return faces


def _faces_from_mat(path: Path):
    import scipy.io

    from mmface4d_datasets.errors import FormatError

    try:
        variables = scipy.io.loadmat(path, variable_names=["tri"])
    except (ValueError, TypeError, OSError, NotImplementedError) as exc:
        raise FormatError(f"{path}: not a readable MATLAB file: {exc}") from exc
    if "tri" not in variables:
        raise FormatError(f"{path}: MATLAB file has no 'tri' variable")
    tri = variables["tri"]
    if tri.size and tri.min() < 1:
        raise FormatError(f"{path}: 'tri' must be 1-based (BFM convention), found index {tri.min()}")
    return tri - 1


def parse_frames(text: str | None, num_frames: int) -> range:
    """Frames selected by ``A:B`` (Python slice rules, B exclusive, either may be empty or negative).

    ``None`` selects every frame. Raises ValueError for text that is not ``A:B`` or an empty selection.
    """
    if text is None:
        return range(num_frames)
    parts = text.split(":")
    if len(parts) != 2:
        raise ValueError(f"--frames must look like A:B (e.g. 0:30), got {text!r}")
    try:
        start, stop = (int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise ValueError(f"--frames must hold integers A:B, got {text!r}") from None
    selected = range(num_frames)[slice(start, stop)]
    if len(selected) == 0:
        raise ValueError(f"--frames {text} selects no frame of a {num_frames}-frame sequence")
    return selected


def frame_file_name(index: int, fmt: str) -> str:
    """``frame_00000.ply``: the frame's index in the whole sequence, five digits or more."""
    return f"frame_{index:05d}.{fmt}"


def export_sequence(vertices, faces, out_dir: str | os.PathLike, fmt: str = "ply", frames=None) -> list[Path]:
    """Write frames of a (T, N, 3) sequence as one mesh file each; returns the paths written.

    ``faces`` (F, 3) 0-based; ``frames`` an iterable of frame indices (default: all). File names
    are :func:`frame_file_name` of the index in the whole sequence, so a partial export lines up
    with a full one. Each file is written to a temporary name in ``out_dir`` and renamed when
    complete; ``out_dir`` is created if needed. PLY is binary little-endian float32 (exact); OBJ
    has :data:`OBJ_DECIMALS` decimals. ``out_dir`` must be new, empty or an earlier export's folder
    (:mod:`mmface4d_datasets.output_folders`); a file there that no export wrote is never overwritten.
    """
    import numpy as np
    import trimesh
    from trimesh.exchange.obj import export_obj

    from mmface4d_datasets.files import atomic_write_bytes
    from mmface4d_datasets.output_folders import output_folder

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    vertices = np.asarray(vertices)
    faces = np.asarray(faces)
    if vertices.ndim != 3 or vertices.shape[2] != 3:
        raise ValueError(f"vertices must be (T, N, 3), got {vertices.shape}")
    if faces.size and faces.max() >= vertices.shape[1]:
        raise ValueError(f"faces index vertex {faces.max()} of a {vertices.shape[1]}-vertex sequence")
    out_dir = Path(out_dir)
    indices = list(range(len(vertices)) if frames is None else frames)
    written = []
    with output_folder(out_dir, EXPORT_KIND) as output:
        output.will_write(*(out_dir / frame_file_name(index, fmt) for index in indices))
        for index in indices:
            mesh = trimesh.Trimesh(vertices=vertices[index], faces=faces, process=False, validate=False)
            if fmt == "ply":
                data = mesh.export(file_type="ply", encoding="binary")
            else:
                data = export_obj(mesh, include_normals=False, include_color=False, include_texture=False, digits=OBJ_DECIMALS).encode(
                    "utf-8"
                )
            path = out_dir / frame_file_name(index, fmt)
            atomic_write_bytes(path, data)
            written.append(path)
    return written


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_mesh_files` did: frames decoded, files written, triangles per file, seconds spent."""

    num_frames: int
    paths: list[Path]
    num_triangles: int
    decode_seconds: float
    export_seconds: float


def export_mesh_files(
    prefix: str | os.PathLike,
    faces_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    num_vertices: int = BFM_NUM_VERTICES,
    fmt: str = "ply",
    frames: str | None = None,
) -> ExportResult:
    """Decode the authors' mesh sequence ``prefix_{0,1,2}.nut`` (``num_vertices`` vertices) and write the
    frames ``frames`` names (:func:`parse_frames`; default all) with the triangles of ``faces_path``
    (:func:`load_faces`) as one ``fmt`` file each into ``out_dir`` (:func:`export_sequence`)."""
    import time

    from mmface4d_datasets.errors import MMFace4DError
    from mmface4d_datasets.official import read_mesh_sequence

    if num_vertices < 1:
        raise MMFace4DError(f"--num-vertices must be positive, got {num_vertices}")
    faces = load_faces(faces_path, num_vertices)
    start = time.perf_counter()
    vertices = read_mesh_sequence(prefix, num_vertices)
    return _export_decoded(vertices, faces, out_dir, fmt, frames, time.perf_counter() - start)


def _export_decoded(vertices, faces, out_dir, fmt: str, frames: str | None, decode_seconds: float) -> ExportResult:
    """The frames ``frames`` (:func:`parse_frames`) of decoded ``vertices`` written by :func:`export_sequence`."""
    import time

    from mmface4d_datasets.errors import MMFace4DError

    start = time.perf_counter()
    try:
        selected = parse_frames(frames, len(vertices))
    except ValueError as exc:
        raise MMFace4DError(str(exc)) from None
    paths = export_sequence(vertices, faces, out_dir, fmt=fmt, frames=selected)
    return ExportResult(len(vertices), paths, len(faces), decode_seconds, time.perf_counter() - start)


def export_release_row(
    release: str | os.PathLike, sequence_id: str, out_dir: str | os.PathLike, *, fmt: str = "ply", frames: str | None = None
) -> ExportResult:
    """Decode the sequence ``sequence_id`` of a release (any name of `mmface4d_datasets.release.resolve`;
    canonical head frame, metres) and write its frames with the release's triangles, as :func:`export_mesh_files`."""
    import time

    import numpy as np

    from mmface4d_datasets.release.reader import Release
    from mmface4d_datasets.release.resolve import resolve_release

    opened = Release(resolve_release(release))
    start = time.perf_counter()
    vertices = opened.record(sequence_id)["vertices"]
    faces = np.asarray(opened.topology["triangles"], dtype=np.int64)
    return _export_decoded(vertices, faces, out_dir, fmt, frames, time.perf_counter() - start)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a .nut mesh sequence as PLY/OBJ meshes, or a release in the FaceFormer layout",
        usage=(
            "mmface4d export PREFIX --num-vertices N --faces FILE --out DIR [--format ply|obj] [--frames A:B]\n"
            "       mmface4d export --data RELEASE --id ID --out DIR [--format ply|obj] [--frames A:B]\n"
            "       mmface4d export faceformer RELEASE --out DIR [--split train,test] [--fps 30|25|60] [--val-subjects K] [--seed S]"
        ),
        description=(
            "Two exports. (1) `export PREFIX`: decode a mesh sequence in the authors' .nut encoding (PREFIX_0.nut, "
            "PREFIX_1.nut, PREFIX_2.nut) and write one mesh per frame, frame_00000.ply, ..., into DIR, vertex order kept; "
            "binary PLY stores the decoded float32 coordinates (metres) exactly. "
            "(2) `export faceformer RELEASE`: write a release in the layout FaceFormer, CodeTalker, SelfTalk and "
            "FaceDiffuser read: vertices_npy/<name>.npy float32 (T, N*3) in the canonical head frame (metres, the "
            "release's vertex order), wav/<name>.wav at 16 kHz, templates.pkl (a dict of numpy arrays for "
            "pickle.load(f, encoding='latin1')), subjects/{train,val,test}.txt, options.txt (their main.py option "
            "strings), names.csv, topology.npz and a README.md with the conventions. The release's test split is their "
            "test; its train split their train minus --val-subjects held-out subjects (their val). --fps 30 keeps the "
            "release's frames; 25 (BIWI mode) and 60 (vocaset mode, whose loader keeps every second frame) resample "
            "linearly in time, and the README says so. See docs/faceformer.md. "
            "(3) `export --data RELEASE --id ID`: one sequence of a release (any release name: a folder, mini, a cached "
            "release or a Hub name) as in (1), with the release's triangles."
        ),
    )
    parser.add_argument(
        "prefix",
        nargs="*",
        metavar="PREFIX | faceformer RELEASE",
        help="mesh files PREFIX_0.nut, PREFIX_1.nut, PREFIX_2.nut; or the word faceformer and a release (folder, mini, "
        "a cached release or a Hub name); none with --data",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder to write: new, empty, or an earlier export of the same kind (a folder holding other files is refused)",
    )
    meshes = parser.add_argument_group("PLY/OBJ export (export PREFIX)")
    meshes.add_argument(
        "--num-vertices", type=whole_number(1), metavar="N", help=f"vertices per frame ({BFM_NUM_VERTICES} for the BFM front topology)"
    )
    add_release_argument(meshes, required=False, what="export a release's sequence instead of PREFIX (with --id)")
    meshes.add_argument("--id", dest="sequence_id", metavar="ID", help="sequence id in the release (with --data)")
    meshes.add_argument(
        "--faces",
        metavar="FILE",
        help="triangles: .npy (0-based), the authors' bfm_faces.pkl (restricted unpickling) or a BFM facemodel_info.mat ('tri', 1-based)",
    )
    meshes.add_argument("--format", choices=FORMATS, default=None, help="ply (binary, default) or obj (text, slower)")
    meshes.add_argument("--frames", metavar="A:B", default=None, help="export only frames A to B-1 (Python slice rules); default: all")
    faceformer = parser.add_argument_group("FaceFormer layout (export faceformer RELEASE)")
    faceformer.add_argument(
        "--split", default=None, metavar="SPLITS", help="release splits to export, comma-separated (default: train,test)"
    )
    faceformer.add_argument(
        "--fps",
        type=int,
        choices=(30, 25, 60),
        default=None,
        help="frame rate of vertices_npy: 30 the release's frames (default), 25 for BIWI-mode scripts, 60 for vocaset-mode "
        "scripts (their loader's [::2] gives the 30 fps frames back exactly); 25 and 60 are resampled linearly in time",
    )
    faceformer.add_argument(
        "--val-subjects",
        type=whole_number(0),
        default=None,
        metavar="K",
        help="train subjects held out as their val split (default: 5%% of the train subjects, at least 1)",
    )
    faceformer.add_argument("--seed", type=whole_number(0), default=0, help="seed of the choice of val subjects (default: 0)")
    faceformer.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from mmface4d_datasets.errors import MMFace4DError

    mesh_options = {"--num-vertices": args.num_vertices, "--faces": args.faces, "--format": args.format, "--frames": args.frames}
    layout_options = {"--split": args.split, "--fps": args.fps, "--val-subjects": args.val_subjects}
    if args.data is not None or args.sequence_id is not None:
        return _run_release_row(args, layout_options)
    if not args.prefix:
        raise MMFace4DError("give PREFIX (with --num-vertices and --faces), faceformer RELEASE, or --data RELEASE --id ID")
    if args.prefix[0] == "faceformer":
        if len(args.prefix) != 2:
            raise MMFace4DError("export faceformer takes one release folder: mmface4d export faceformer RELEASE --out DIR")
        wrong = [name for name, value in mesh_options.items() if value is not None]
        if wrong:
            raise MMFace4DError(f"{', '.join(wrong)}: options of the PLY/OBJ export, not of export faceformer")
        return _run_faceformer(args)
    if len(args.prefix) != 1:
        raise MMFace4DError(
            f"export takes one PREFIX, got {len(args.prefix)} ({' '.join(args.prefix)}); for a release: export faceformer RELEASE"
        )
    wrong = [name for name, value in layout_options.items() if value is not None]
    if wrong:
        raise MMFace4DError(f"{', '.join(wrong)}: options of export faceformer, not of the PLY/OBJ export")
    missing = [name for name in ("--num-vertices", "--faces") if mesh_options[name] is None]
    if missing:
        raise MMFace4DError(f"export PREFIX needs {' and '.join(missing)}")
    fmt = args.format or "ply"
    prefix = args.prefix[0]
    result = export_mesh_files(prefix, args.faces, args.out, num_vertices=args.num_vertices, fmt=fmt, frames=args.frames)
    paths = result.paths
    print(f"decoded {result.num_frames} frames x {args.num_vertices} vertices from {prefix}_{{0,1,2}}.nut in {result.decode_seconds:.2f} s")
    print(
        f"wrote {len(paths)} {fmt.upper()} files ({paths[0].name} .. {paths[-1].name}, "
        f"{result.num_triangles} triangles each) to {args.out} in {result.export_seconds:.2f} s"
    )
    return 0


def _run_release_row(args: argparse.Namespace, layout_options: dict) -> int:
    from mmface4d_datasets.errors import MMFace4DError

    if args.prefix or args.data is None or not args.sequence_id:
        raise MMFace4DError("export --data RELEASE --id ID takes no PREFIX and needs both --data and --id")
    wrong = [
        name for name, value in {**layout_options, "--num-vertices": args.num_vertices, "--faces": args.faces}.items() if value is not None
    ]
    if wrong:
        raise MMFace4DError(f"{', '.join(wrong)}: not options of export --data (the release gives the triangles)")
    fmt = args.format or "ply"
    result = export_release_row(args.data, args.sequence_id, args.out, fmt=fmt, frames=args.frames)
    paths = result.paths
    print(f"decoded {result.num_frames} frames of {args.sequence_id} from {args.data} in {result.decode_seconds:.2f} s")
    print(
        f"wrote {len(paths)} {fmt.upper()} files ({paths[0].name} .. {paths[-1].name}, "
        f"{result.num_triangles} triangles each) to {args.out} in {result.export_seconds:.2f} s"
    )
    return 0


def _run_faceformer(args: argparse.Namespace) -> int:
    import json

    from mmface4d_datasets.faceformer.export import export_faceformer
    from mmface4d_datasets.release.resolve import resolve_release

    result = export_faceformer(
        str(resolve_release(args.prefix[1], progress=not args.quiet)),
        args.out,
        splits=args.split,
        fps=30 if args.fps is None else args.fps,
        val_subjects=args.val_subjects,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(json.dumps(result.as_dict(), indent=2, sort_keys=True))
    print(f"wrote {sum(result.sequences.values())} sequences to {result.out_dir}; see {result.out_dir / 'README.md'}", file=sys.stderr)
    return 0
