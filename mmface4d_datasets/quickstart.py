"""`mmface4d quickstart`: run the end-to-end path that exists, on embedded defaults, and say what it measured.

The run is a list of steps (:data:`STEPS`). Each step reports one section of readable lines
(through ``echo``: the command prints them on stdout, a library caller gets them as INFO records of
this module's logger unless it passes its own) and returns a summary dict (JSON-serialisable); the whole run writes ``summary.json`` into the output
folder. Steps pass objects to later steps through ``QuickstartContext.state``; a step that cannot
run (its input is absent) returns ``{"status": "skipped", "reason": ...}`` instead of failing, so
later steps can be added without reordering the earlier ones.

The core's steps use the authors' sample take when it is present (``--fixtures DIR``, else
``$MMFACE4D_FIXTURES``, else the project's CI copy; see :mod:`mmface4d_datasets.paths`, whose
``SAMPLE_SOURCE`` says where a user gets it): find the take, decode its
mesh sequence, audio, calibration and landmarks, and export the frames as PLY files; then they build
(or reuse) the synthetic mini release and load it with ``load_dataset``. Packages above the core add
their steps through the entry-point group ``mmface4d.quickstart`` (each entry point names a list of
:class:`QuickstartStep`), run after the core's in entry-point name order, so the core never imports
them (the benchmark adds: score ``static``, train the paper's model briefly, score it, leaderboard).
A step that needs a command-line option registers it itself (:attr:`QuickstartStep.add_arguments`);
its value reaches the step as ``context.options[dest]``, so the core's command carries no option of
a package above it.

This module holds the sub-command's ``register`` and imports only the standard library at module level.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mmface4d_datasets.vocabulary import BFM_NUM_VERTICES

#: Version of the layout of summary.json.
SUMMARY_VERSION = 1
DEFAULT_OUT = "mmface4d-quickstart"
#: The kind of output a quickstart folder is (mmface4d_datasets.output_folders).
QUICKSTART_KIND = "quickstart"
_log = logging.getLogger(__name__)


@dataclass
class QuickstartContext:
    """What steps share: the output folder, the printer, earlier summaries and in-memory objects.

    ``options``: the values of the options steps registered (:attr:`QuickstartStep.add_arguments`),
    by ``dest`` name; a step reads its own with its default (``options.get(name, default)``).
    """

    out_dir: Path
    echo: Callable[[str], None] = _log.info
    sample_dir: Path | None = None  # None: search official_sample_candidates()
    summaries: dict[str, dict] = field(default_factory=dict)
    state: dict[str, object] = field(default_factory=dict)
    options: dict[str, object] = field(default_factory=dict)

    def line(self, label: str, value) -> None:
        """Print one ``label: value`` line of the current section."""
        self.echo(f"  {label:<28} {value}")


@dataclass(frozen=True)
class QuickstartStep:
    """One section of the quickstart: ``run(context)`` prints its lines and returns its summary.

    ``add_arguments(group)``: adds the step's own command-line options to ``group`` (an argparse
    argument group of ``mmface4d quickstart``); None when it has none.
    """

    name: str
    title: str
    run: Callable[[QuickstartContext], dict]
    add_arguments: Callable[[argparse._ArgumentGroup], None] | None = None


def _skipped(context: QuickstartContext, reason: str) -> dict:
    context.line("skipped", reason)
    return {"status": "skipped", "reason": reason}


def step_find_sample(context: QuickstartContext) -> dict:
    """Locate the authors' sample take and list its files."""
    from mmface4d_datasets.official import read_take
    from mmface4d_datasets.paths import SAMPLE_SOURCE, official_sample_candidates, official_sample_dir

    if context.sample_dir is not None:
        looked_in = [context.sample_dir]
        folder = context.sample_dir if (context.sample_dir / "reconstruct_filt_0.nut").is_file() else None
    else:
        looked_in = official_sample_candidates()
        folder = official_sample_dir()
    looked = [str(p) for p in looked_in]
    if folder is None:
        context.line("looked in", "; ".join(looked) + " (a folder holding reconstruct_filt_0.nut)")
        summary = _skipped(context, "the authors' sample take is absent; the decode and export steps need it")
        context.line("where to get it", SAMPLE_SOURCE)
        return {**summary, "looked_in": looked, "where_to_get_it": SAMPLE_SOURCE}
    take = read_take(folder)
    context.state["take"] = take
    context.line("folder", folder)
    context.line("take id", take.take_id)
    context.line("mesh files", ", ".join(p.name for p in take.mesh_paths))
    context.line("cameras with calibration", sorted(take.calibrations))
    context.line("cameras with landmarks", sorted(take.landmarks))
    return {
        "status": "ok",
        "folder": str(folder),
        "looked_in": looked,
        "take_id": take.take_id,
        "mesh_files": [p.name for p in take.mesh_paths],
        "calibrated_cameras": sorted(take.calibrations),
        "landmark_cameras": sorted(take.landmarks),
    }


def step_decode_sample(context: QuickstartContext) -> dict:
    """Decode the take's mesh sequence, speech, calibration and landmarks; report shapes and sizes."""
    import numpy as np

    from mmface4d_datasets.official import FPS, read_intrinsics, read_landmarks, read_mesh_sequence

    take = context.state.get("take")
    if take is None:
        return _skipped(context, "no sample take")
    timings = []
    for _ in range(2):  # the first read may come from disk, the second from a warm page cache
        start = time.perf_counter()
        vertices = read_mesh_sequence(take.mesh_prefix, BFM_NUM_VERTICES)
        timings.append(time.perf_counter() - start)
    context.state["vertices"] = vertices
    num_frames, num_vertices, _ = vertices.shape
    low, high = vertices.min(axis=(0, 1)), vertices.max(axis=(0, 1))
    motion = np.linalg.norm(vertices - vertices[:1], axis=2)  # (T, N) metres from frame 0
    encoded_bytes = sum(p.stat().st_size for p in take.mesh_paths)
    samples, rate = take.read_audio()
    audio_seconds = len(samples) / rate
    mesh_seconds = num_frames / FPS
    context.line("frames x vertices", f"{num_frames} x {num_vertices} ({mesh_seconds:.3f} s at {FPS} fps)")
    context.line(
        "decode time", f"{timings[0] * 1e3:.0f} ms first, {timings[1] * 1e3:.0f} ms again ({num_frames / timings[1]:.0f} frames/s)"
    )
    context.line("encoded size", f"{encoded_bytes / num_frames:,.0f} bytes/frame (raw float32: {num_vertices * 12:,} bytes/frame)")
    context.line("bounding box min (m)", np.array2string(low, precision=4))
    context.line("bounding box max (m)", np.array2string(high, precision=4))
    context.line("extent (mm)", np.array2string((high - low) * 1e3, precision=1))
    context.line("largest motion from frame 0", f"{motion.max() * 1e3:.2f} mm (vertex {int(motion.max(axis=0).argmax())})")
    context.line(
        "audio",
        f"{len(samples)} samples at {rate} Hz = {audio_seconds:.3f} s, "
        f"peak {np.abs(samples).max():.3f}, rms {np.sqrt(np.mean(samples.astype(np.float64) ** 2)):.4f}",
    )
    context.line("audio - mesh duration", f"{(audio_seconds - mesh_seconds) * 1e3:+.2f} ms")
    cameras = {}
    for camera, path in take.calibrations.items():
        matrix = read_intrinsics(path)
        cameras[camera] = {"fx": matrix[0, 0], "fy": matrix[1, 1], "cx": matrix[0, 2], "cy": matrix[1, 2]}
        context.line(f"camera {camera} intrinsics (px)", ", ".join(f"{k} {v:.1f}" for k, v in cameras[camera].items()))
    landmark_shapes = {}
    for camera, path in take.landmarks.items():
        landmark_shapes[camera] = list(read_landmarks(path).shape)
        context.line(f"camera {camera} landmarks", f"{landmark_shapes[camera]} (frames, points, xy)")
    return {
        "status": "ok",
        "num_frames": num_frames,
        "num_vertices": num_vertices,
        "fps": FPS,
        "mesh_seconds": mesh_seconds,
        "decode_seconds_first": timings[0],
        "decode_seconds_again": timings[1],
        "encoded_bytes_per_frame": encoded_bytes / num_frames,
        "bbox_min_m": low.tolist(),
        "bbox_max_m": high.tolist(),
        "max_motion_from_first_frame_m": float(motion.max()),
        "audio_samples": len(samples),
        "audio_sample_rate": rate,
        "audio_seconds": audio_seconds,
        "audio_minus_mesh_seconds": audio_seconds - mesh_seconds,
        "intrinsics_px": {str(c): {k: float(v) for k, v in m.items()} for c, m in cameras.items()},
        "landmark_shapes": {str(c): s for c, s in landmark_shapes.items()},
    }


def step_export_sample(context: QuickstartContext) -> dict:
    """Write the decoded frames as binary PLY files and check that trimesh reads one back unchanged."""
    import numpy as np
    import trimesh

    from mmface4d_datasets.export import export_sequence, load_faces

    take, vertices = context.state.get("take"), context.state.get("vertices")
    if take is None or vertices is None:
        return _skipped(context, "no decoded sample take")
    faces_path = take.folder / "bfm_faces.pkl"
    if not faces_path.is_file():
        return _skipped(context, f"no triangles beside the take ({faces_path} is absent)")
    faces = load_faces(faces_path, vertices.shape[1])
    out = context.out_dir / "official_sample_meshes"
    start = time.perf_counter()
    paths = export_sequence(vertices, faces, out, fmt="ply")
    seconds = time.perf_counter() - start
    written = sum(p.stat().st_size for p in paths)
    check = trimesh.load(paths[0], process=False)
    same = bool(np.array_equal(check.vertices, vertices[0]) and np.array_equal(check.faces, faces))
    context.line("triangles", f"{len(faces)} (from {faces_path.name}, restricted unpickling)")
    context.line("written", f"{len(paths)} PLY files, {written / 1e6:.1f} MB, to {out}")
    context.line("export time", f"{seconds:.2f} s ({seconds / len(paths) * 1e3:.1f} ms/frame)")
    context.line("frame 0 reads back identical", "yes" if same else "NO")
    if not same:
        from mmface4d_datasets.errors import MMFace4DError

        raise MMFace4DError(f"{paths[0]}: trimesh does not read back the vertices that were written")
    return {
        "status": "ok",
        "folder": str(out),
        "files": len(paths),
        "bytes": written,
        "num_triangles": len(faces),
        "export_seconds": seconds,
        "first_frame_reads_back_identical": same,
    }


def step_mini_release(context: QuickstartContext) -> dict:
    """Build the synthetic mini release into the cache (or reuse it), validate it and load it."""
    from mmface4d_datasets.loading import load_dataset
    from mmface4d_datasets.release.mini import mini_release_dir
    from mmface4d_datasets.release.reader import Release
    from mmface4d_datasets.release.resolve import mini_release
    from mmface4d_datasets.release.validate import validate_release

    reused = (mini_release_dir() / "meta" / "info.json").is_file()
    start = time.perf_counter()
    # building shows the writer's progress bars on stderr (about 20 s, once)
    path = mini_release(progress=True, announce=lambda message: context.line("mini", message))
    build_seconds = time.perf_counter() - start
    problems = validate_release(path)
    release = Release(path)
    start = time.perf_counter()
    dataset = load_dataset("mmface4d", name="mini")
    first = dataset["train"][0]
    load_seconds = time.perf_counter() - start
    subjects = {split: sorted(release.sequences(split)["subject_id"].unique()) for split in release.split_names}
    context.line("release folder", f"{path} ({'reused' if reused else 'built'} in {build_seconds:.1f} s)")
    context.line("validate", "ok" if not problems else f"{len(problems)} problem(s): {problems[0]}")
    for split in release.split_names:
        context.line(f"{split} split", f"{len(dataset[split])} sequences of {len(subjects[split])} subjects")
    context.line("subjects disjoint", not (set(subjects.get("train", [])) & set(subjects.get("test", []))))
    context.line(
        "first train sequence", f"{first['id']}: vertices {tuple(first['vertices'].shape)}, {len(first['audio']['array'])} audio samples"
    )
    context.line("load_dataset + first row", f"{load_seconds:.2f} s")
    context.state["release_dir"] = path
    return {
        "status": "ok" if not problems else "invalid",
        "release_dir": str(path),
        "reused": reused,
        "build_seconds": round(build_seconds, 3),
        "problems": [str(p) for p in problems],
        "sequences": {split: len(dataset[split]) for split in release.split_names},
        "subjects": {split: len(names) for split, names in subjects.items()},
        "first_vertices_shape": list(first["vertices"].shape),
    }


#: The core's quickstart steps, in order; packages above add theirs (``mmface4d.quickstart``).
STEPS: list[QuickstartStep] = [
    QuickstartStep("sample", "The authors' sample take", step_find_sample),
    QuickstartStep("decode", "Decoding it", step_decode_sample),
    QuickstartStep("export", "Exporting frames as meshes", step_export_sample),
    QuickstartStep("mini", "The synthetic mini release: build, validate, load_dataset", step_mini_release),
]

STEP_GROUP = "mmface4d.quickstart"


def all_steps() -> list[QuickstartStep]:
    """The core's :data:`STEPS`, then every installed package's steps (entry points, by name)."""
    from importlib.metadata import entry_points

    steps = list(STEPS)
    for ep in sorted(entry_points(group=STEP_GROUP), key=lambda e: e.name):
        steps.extend(ep.load())
    return steps


def select_steps(only: list[str] | None) -> list[QuickstartStep]:
    """:func:`all_steps`, or just those named in ``only`` (in run order); an unknown name is an error."""
    from mmface4d_datasets.errors import MMFace4DError

    steps = all_steps()
    if not only:
        return steps
    names = [step.name for step in steps]
    unknown = sorted(set(only) - set(names))
    if unknown:
        from mmface4d_datasets.arguments import did_you_mean

        hint = did_you_mean(unknown[0], names) if len(unknown) == 1 else ""
        raise MMFace4DError(f"quickstart: unknown step(s) {unknown}{hint}; the steps are {names}")
    return [step for step in steps if step.name in only]


def run_quickstart(
    out_dir: str | os.PathLike = DEFAULT_OUT,
    steps: list[QuickstartStep] | None = None,
    echo: Callable[[str], None] = _log.info,
    sample_dir: str | os.PathLike | None = None,
    options: dict[str, object] | None = None,
) -> dict:
    """Run ``steps`` (default :func:`all_steps`) in order and write ``out_dir/summary.json``; returns the summary.

    ``echo``: where the readable lines go (default: INFO records of this module's logger; the
    command prints them). ``options``: the steps' own options by name (``QuickstartContext.options``).

    The summary holds the conditions (package, Python, numpy and PyAV versions, CPU count), each step's
    dict under its name with its duration, and the total time. summary.json is written to a temporary
    name and renamed when complete.
    """
    from mmface4d_datasets.output_folders import output_folder

    out_dir = Path(out_dir)
    # New, empty or an earlier quickstart's folder only (mmface4d_datasets.output_folders).
    with output_folder(out_dir, QUICKSTART_KIND) as output:
        output.will_write(out_dir / "summary.json")
        return _run_steps(out_dir, steps, echo, sample_dir, options or {})


def _run_steps(out_dir: Path, steps, echo, sample_dir, options: dict[str, object]) -> dict:
    import numpy

    from mmface4d_datasets import __version__
    from mmface4d_datasets.files import atomic_write_bytes

    context = QuickstartContext(out_dir=out_dir, echo=echo, sample_dir=Path(sample_dir) if sample_dir else None, options=dict(options))
    started = time.perf_counter()
    for number, step in enumerate(steps if steps is not None else all_steps(), start=1):
        echo(f"\n{number}. {step.title}")
        step_start = time.perf_counter()
        summary = step.run(context)
        summary["seconds"] = round(time.perf_counter() - step_start, 4)
        context.line("step took", f"{summary['seconds']:.1f} s")
        context.summaries[step.name] = summary
    total = time.perf_counter() - started
    summary = {
        "summary_version": SUMMARY_VERSION,
        "package_version": __version__,
        "conditions": {
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "av": _version_of("av"),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
        },
        "steps": context.summaries,
        "total_seconds": round(total, 4),
    }
    path = out_dir / "summary.json"
    atomic_write_bytes(path, (json.dumps(summary, indent=2, default=_json_default) + "\n").encode("utf-8"))
    echo(f"\ndone in {total:.1f} s; summary written to {path}")
    return summary


def _version_of(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _json_default(value):
    # numpy scalars and paths reach the summary through step dicts
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _registered_steps() -> list[QuickstartStep]:
    """:func:`all_steps` for the parser; a package whose steps cannot be loaded is left out here (the
    run names its error), so that a broken plug-in does not take the command down."""
    try:
        return all_steps()
    except Exception as exc:  # any failure of a plug-in's import
        _log.warning("mmface4d quickstart: the steps of an installed package could not be loaded: %s", exc)
        return list(STEPS)


def register(subparsers) -> None:
    steps = _registered_steps()
    upper = [step for step in steps if step not in STEPS]
    upper_text = ("; then the steps of the installed packages above the core: " + "; ".join(step.title for step in upper)) if upper else ""
    parser = subparsers.add_parser(
        "quickstart",
        help="run the end-to-end path on embedded defaults and print what it measured",
        description=(
            "Run the package's end-to-end path and print what each step measured: find the authors' "
            "sample take, decode its mesh sequence, audio, calibration and landmarks, and export its "
            "frames as PLY meshes; build (or reuse) the synthetic mini release in the cache, validate it "
            f"and load it with load_dataset{upper_text}. Steps whose input is absent say so and are "
            "skipped. Writes summary.json, the meshes and the other steps' reports into the output folder."
        ),
    )
    parser.add_argument(
        "--out", default=DEFAULT_OUT, metavar="DIR", help=f"output folder: new, empty or an earlier quickstart's (default: ./{DEFAULT_OUT})"
    )
    parser.add_argument(
        "--fixtures",
        "--sample",
        dest="sample",
        default=None,
        metavar="DIR",
        help="folder of the authors' sample take, the test_data/ folder of github.com/wuhaozhe/4d_reconstruction "
        "(default: $MMFACE4D_FIXTURES; without it steps 1-3 say where to get it and are skipped)",
    )
    parser.add_argument(
        "--only",
        default=None,
        metavar="STEP[,STEP...]",
        help="run only these steps (names as in summary.json: " + ", ".join(step.name for step in steps) + ")",
    )
    for step in steps:
        if step.add_arguments is not None:
            step.add_arguments(parser.add_argument_group(f"options of the {step.name!r} step"))
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    only = [name.strip() for name in args.only.split(",") if name.strip()] if args.only else None
    run_quickstart(args.out, steps=select_steps(only), echo=print, sample_dir=args.sample, options=vars(args))
    sys.stdout.flush()
    return 0
