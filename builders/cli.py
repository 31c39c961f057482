"""``mmface4d build``: make releases (``release``, ``synthetic``) and send them to the Hub (``push``).

Only the standard library is imported here (every ``mmface4d`` call loads this module); the
handlers import the builders and the core when they run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from mmface4d_datasets.arguments import add_release_argument, positive_number, seed, whole_number


def _add_writer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="release folder to write: new, empty, or a release mmface4d built there with the same "
        "arguments (an unfinished build is resumed, a finished one rebuilt in place); one built with "
        "other arguments is refused unless --overwrite; a folder holding other files, inside SRC or "
        "inside another release is refused; one build at a time (lock file DIR/.mmface4d.lock)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a release built in --out with other arguments (only the files mmface4d wrote there are removed)",
    )
    parser.add_argument(
        "--seed",
        type=seed,
        default=0,
        help="seed of the subject split and style references; for `synthetic` also of the generator (default: 0)",
    )
    parser.add_argument(
        "--max-error",
        type=positive_number(1.0),
        default=None,
        metavar="METRES",
        help="per-coordinate error bound of the vertex codec, in metres (default: the release writer's default)",
    )
    parser.add_argument(
        "--shard-size",
        type=positive_number(),
        default=None,
        metavar="MB",
        help="target size of one data shard in megabytes (default: the release writer's default)",
    )
    parser.add_argument(
        "--on-error",
        choices=("stop", "skip"),
        default="stop",
        help="on a bad take: stop with its error (default), or skip it and list it at the "
        "end and in the build report (OUT/.build-report.json)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    from reconstruction.executor import add_executor_arguments

    add_executor_arguments(parser)


def register(subparsers) -> None:
    """Add ``build`` with its sub-commands ``release``, ``synthetic`` and ``push``."""
    build = subparsers.add_parser(
        "build",
        help="make a release from the authors' layout or the synthetic generator; push it to the Hub",
        description="Make MMFace4D releases (Parquet shards, splits, templates, dataset card) and push them "
        "to a dataset repository on the Hugging Face Hub. Builds are deterministic, atomic and "
        "resumable: rerun a stopped build with the same arguments to continue it.",
    )
    commands = build.add_subparsers(dest="build_command", metavar="SUBCOMMAND")
    build.set_defaults(func=lambda args: (build.print_help(), 2)[1])

    release = commands.add_parser(
        "release",
        help="build a release from takes in the authors' layout",
        description="Build a release from a folder of takes in the authors' layout: flat (ID.wav, "
        "ID_filt_{0,1,2}.nut side by side) or one folder per take (mesh files may be named "
        "reconstruct_filt_{0,1,2}.nut). Metadata comes from --manifest CSV "
        "(take_id,subject_id,sentence_id,text,gender,age), else from each take's ID.meta.json; "
        "the CSV wins for the takes it lists. Every take is checked before it is written; a bad "
        "take is reported by its id. With --layout faceformer, SRC is a FaceFormer-layout folder instead "
        "(vertices_npy/, wav/, templates.pkl; docs/faceformer.md).",
    )
    release.add_argument(
        "source", metavar="SRC", help="folder of takes (searched recursively), or a FaceFormer-layout folder with --layout faceformer"
    )
    from builders.faceformer_cli import add_layout_arguments

    add_layout_arguments(release)
    release.add_argument(
        "--manifest", metavar="CSV", default=None, help="metadata of the takes: take_id,subject_id,sentence_id,text,gender,age"
    )
    release.add_argument(
        "--bfm-info",
        metavar="FILE",
        default=None,
        help="BFM facemodel_info.mat giving the bfm_front triangles and keypoints "
        "(default: BFM/facemodel_info.mat found in SRC or a folder above it)",
    )
    release.add_argument(
        "--no-raw",
        action="store_true",
        help="do not read camera calibrations and 2-D landmarks (the raw config's rows then list no camera)",
    )
    release.add_argument(
        "--withdrawals",
        metavar="FILE",
        default=None,
        help="withdrawal list (a consent registry folder or its withdrawals.json, see "
        "`mmface4d rig consent`): the takes of withdrawn actors are left out and counted",
    )
    _add_writer_options(release)
    release.set_defaults(func=_run_release)

    synthetic = commands.add_parser(
        "synthetic",
        help="build a release of synthetic takes from the embedded generator",
        description="Generate K synthetic subjects speaking M sentences each with the embedded face model "
        "and speech synthesiser, and build them into a release of the same format.",
    )
    synthetic.add_argument("--subjects", type=whole_number(1), required=True, metavar="K", help="number of subjects")
    synthetic.add_argument("--sentences", type=whole_number(1), required=True, metavar="M", help="sentences per subject")
    synthetic.add_argument(
        "--vertices",
        type=whole_number(1),
        default=None,
        metavar="N",
        help="vertex count of the embedded synthetic_v1 model, 500..200000 (default: the generator's)",
    )
    _add_writer_options(synthetic)
    synthetic.set_defaults(func=_run_synthetic)

    push = commands.add_parser(
        "push",
        help="validate a release and upload it to a dataset repository on the Hub",
        description="Validate the release in DIR, then upload it to the dataset repository ORG/NAME "
        "(created if missing) in several resumable commits, retrying transient failures. "
        "Only the release is uploaded: the files meta/info.json lists, meta/info.json, the card "
        "README.md and the images the card shows; anything else in DIR (notes, photos, the "
        "build's hidden bookkeeping) is not. Log in first "
        "(`hf auth login` or HF_TOKEN). With --dry-run nothing is sent: it prints what "
        "would be committed.",
    )
    push.add_argument("folder", metavar="DIR", help="release folder made by `mmface4d build`")
    push.add_argument("--repo-id", required=True, metavar="ORG/NAME", help="dataset repository on the Hub")
    push.add_argument("--private", action="store_true", help="create the repository as private (if it is new)")
    push.add_argument("--revision", metavar="BRANCH", default=None, help="branch to commit to, created if missing (default: main)")
    push.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be committed (every file with its size, files per folder against "
        "the Hub's limits, and the files left out) as JSON and send nothing",
    )
    push.add_argument("--retries", type=whole_number(0), default=5, help="retries of a transient failure (default: 5)")
    push.add_argument("--skip-validation", action="store_true", help="upload without running the release validator first")
    push.set_defaults(func=_run_push)
    _register_from_recordings(commands)


def _register_from_recordings(commands) -> None:
    """``build from-recordings``: recording sessions -> takes -> fitted meshes -> a release (docs/from-recordings.md)."""
    parser = commands.add_parser(
        "from-recordings",
        help="recording sessions -> converted takes -> fitted meshes -> a validated release, resumable",
        description="Run the maintainer's whole path on recording sessions as the recorder leaves them "
        "(SESSION/takes/ID/ID_c.mkv for cameras 0-2, ID.wav, ID.take.json): `rig convert` each take into "
        "WORK/converted/ID, `reconstruct` it into WORK/reconstructed/ID, `build release` the "
        "reconstructed takes into RELEASE (withdrawn actors left out), then `validate`. Every stage runs "
        "per take on the executor (--workers, --ray); a take that fails is listed with its error and the "
        "others go on; a rerun skips takes whose stage output is complete, so a killed run resumes. "
        "Landmarks: a file ID_c.landmarks.npy beside a recording (float32 (captures, 68, 2) pixels, "
        "from an external detector or annotation) is carried into the take; without one a landmark "
        "detector runs on the converted colour video (--detector: MediaPipe's face mesh by default, offline, "
        "docs/detector.md), else the take fails naming the file. WORK (default RELEASE.work beside RELEASE) keeps every stage's output: delete "
        "WORK/converted/ID or WORK/reconstructed/ID to redo that stage for that take. Prints a JSON "
        "summary (per stage: done, skipped, failed); exit status 1 when a take failed or the release "
        "does not validate. See docs/from-recordings.md.",
    )
    parser.add_argument("sessions", nargs="+", metavar="SESSION", help="recording session folders (takes/ID/...)")
    parser.add_argument("--out", required=True, metavar="RELEASE", help="release folder (new, empty, or a release mmface4d built there)")
    parser.add_argument(
        "--work",
        metavar="DIR",
        default=None,
        help="folder of the intermediate stages, converted/ and reconstructed/ (default: RELEASE.work "
        "beside RELEASE); new, empty or made by this command",
    )
    from mmface4d_datasets.vocabulary import BFM_NUM_VERTICES

    parser.add_argument(
        "--vertices",
        type=whole_number(1),
        default=None,
        metavar="N",
        help=f"vertex count of the embedded face model of the fit (default: {BFM_NUM_VERTICES})",
    )
    parser.add_argument(
        "--face-model-bfm", metavar="DIR", default=None, help="fit the BFM 2009 model from the files in DIR instead (docs/facemodel.md)"
    )
    parser.add_argument(
        "--detector",
        choices=("mediapipe", "face-alignment"),
        default="mediapipe",
        help="landmark detector for cameras without a landmark file: mediapipe (default; MediaPipe's face mesh, "
        "offline, tracked on crops seeded by depth) or face-alignment (downloads its weights on first use)",
    )
    parser.add_argument(
        "--no-detector", action="store_true", help="never run the landmark detector: a camera without a landmark file fails its take"
    )
    parser.add_argument(
        "--withdrawals",
        metavar="FILE",
        default=None,
        help="withdrawal list (a consent registry folder or its withdrawals.json): those actors' takes are neither converted nor released",
    )
    parser.add_argument(
        "--manifest",
        metavar="CSV",
        default=None,
        help="metadata of the takes for the release: take_id,subject_id,sentence_id,text,gender,age",
    )
    parser.add_argument(
        "--crf",
        type=whole_number(0),
        default=None,
        metavar="N",
        help="H.264 quality of the converted colour videos (default: rig convert's)",
    )
    parser.add_argument("--seed", type=seed, default=0, help="seed of the subject split and style references (default: 0)")
    parser.add_argument(
        "--max-error",
        type=positive_number(1.0),
        default=None,
        metavar="METRES",
        help="per-coordinate error bound of the release's vertex codec (default: the writer's)",
    )
    parser.add_argument(
        "--shard-size",
        type=positive_number(),
        default=None,
        metavar="MB",
        help="target size of one data shard in megabytes (default: the writer's)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    from reconstruction.executor import add_executor_arguments

    add_executor_arguments(parser)
    parser.set_defaults(func=_run_from_recordings)


def _run_from_recordings(args) -> int:
    from builders.from_recordings import FaceModelSpec, build_from_recordings
    from mmface4d_datasets.cli import library_output_to_stderr

    model = FaceModelSpec("bfm", path=args.face_model_bfm) if args.face_model_bfm else FaceModelSpec("default", args.vertices)
    shard_size = None if args.shard_size is None else int(args.shard_size * 1_000_000)
    with library_output_to_stderr():  # stdout holds only the JSON summary (Ray's processes get stderr)
        summary = build_from_recordings(
            args.sessions,
            args.out,
            work=args.work,
            workers=args.workers,
            ray=args.ray,
            face_model=model,
            detect=False if args.no_detector else args.detector,
            withdrawals=args.withdrawals,
            manifest=args.manifest,
            seed=args.seed,
            max_error=args.max_error,
            shard_size_bytes=shard_size,
            crf=args.crf,
            progress=not args.quiet,
        )
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0 if summary["ok"] else 1


def _writer_options(args) -> dict:
    options = {"seed": args.seed, "progress": not args.quiet}
    if args.max_error is not None:
        options["max_error"] = args.max_error
    if args.shard_size is not None:
        options["shard_size_bytes"] = int(args.shard_size * 1_000_000)
    return options


@contextlib.contextmanager
def _executor(args):
    """The executor of ``--workers`` / ``--ray`` (None for one worker: the writer runs in this process)."""
    if args.ray is None and args.workers in (None, 1):
        yield None
        return
    from mmface4d_datasets.cli import library_output_to_stderr
    from reconstruction.executor import executor_from_arguments

    # Ray's processes (and their log lines) keep the stdout they start with: give them stderr.
    with library_output_to_stderr(), executor_from_arguments(args) as executor:
        yield executor


def _print_summary(report) -> int:
    print(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    if report.skipped:
        print(
            f"mmface4d build: {len(report.skipped)} take(s) were SKIPPED: " + ", ".join(s.take_id for s in report.skipped), file=sys.stderr
        )
    return 0


def _run_release(args) -> int:
    from builders.build import build_release

    if args.layout == "faceformer":
        from builders.faceformer_cli import run_faceformer_release

        with _executor(args) as executor:
            return _print_summary(run_faceformer_release(args, executor, _writer_options(args)))
    from builders.faceformer_cli import refuse_layout_options

    refuse_layout_options(args)

    # Progress bars and the library's notes (logging, see mmface4d_datasets.cli) go to stderr, so that
    # stdout holds only the JSON summary.
    with _executor(args) as executor:
        report = build_release(
            args.source,
            args.out,
            manifest=args.manifest,
            bfm_info=args.bfm_info,
            on_error=args.on_error,
            raw=not args.no_raw,
            withdrawals=args.withdrawals,
            executor=executor,
            overwrite=args.overwrite,
            **_writer_options(args),
        )
    if args.withdrawals is not None:
        print(f"mmface4d build: {len(report.withdrawn)} take(s) of withdrawn actors left out", file=sys.stderr)
    return _print_summary(report)


def _run_synthetic(args) -> int:
    from builders.build import build_synthetic_release

    with _executor(args) as executor:
        report = build_synthetic_release(
            args.out,
            subjects=args.subjects,
            sentences=args.sentences,
            num_vertices=args.vertices,
            on_error=args.on_error,
            executor=executor,
            overwrite=args.overwrite,
            **_writer_options(args),
        )
    return _print_summary(report)


def _run_push(args) -> int:
    from builders.push import plan_push, push_release

    if args.dry_run:
        plan = plan_push(args.folder)
        print(
            json.dumps(
                plan.as_dict() | {"repo_id": args.repo_id, "revision": args.revision or "main", "private": args.private, "dry_run": True},
                indent=2,
            )
        )
        return 1 if plan.problems() else 0

    plan = push_release(
        args.folder, args.repo_id, private=args.private, revision=args.revision, retries=args.retries, validate=not args.skip_validation
    )
    print(f"pushed {len(plan.files)} files ({plan.total_bytes} bytes) to https://huggingface.co/datasets/{args.repo_id}")
    return 0


def register_stats(subparsers) -> None:
    """Add ``stats``: the statistics figures of a release (builders/stats.py)."""
    stats = subparsers.add_parser(
        "stats",
        help="draw a release's statistics figures (the paper's Figure 4) as PNG, with the numbers as JSON",
        description="Read a release (a folder, `mini` for the small synthetic release built offline, a release in the "
        "cache or a Hub name) and "
        "write into DIR: velocity.png, V(region, axis) per sequence over V(lips, x/y/z) with the "
        "nearest-centroid accuracy of telling subjects apart against chance; ages_by_gender.png; "
        "durations.png with min, median and max; motion_correlation.png, the correlation graph of "
        "small face regions' motion (edges below 0.5 removed) on the average template; splits.png, "
        "per split sequences, subjects, hours and emotion balance; and stats.json with every "
        "number. DIR must be new, empty, or made by an earlier `mmface4d stats` (it keeps a "
        ".mmface4d-stats marker); files already there are replaced by name, nothing else is "
        "deleted. PNG bytes are deterministic. Needs matplotlib (the viz extra). See docs/stats.md.",
    )
    add_release_argument(stats, "release")
    stats.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs and stats.json")
    stats.add_argument("--quiet", action="store_true", help="no progress bar")
    stats.set_defaults(func=_run_stats)


def _run_stats(args) -> int:
    from builders.stats import main_stats

    summary = main_stats(args.release, args.out, progress=not args.quiet)
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0
