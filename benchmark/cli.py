"""``mmface4d bench``: score submissions, write them, run bundled models, print the leaderboard.

Only the standard library is imported at module level (every ``mmface4d`` call loads this
module); the handlers import numpy, pyarrow and the benchmark code.

Exit codes: 0 success; 1 the submission failed validation (the report lists every issue);
2 a usage or input error (printed by the ``mmface4d`` entry without a traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mmface4d_datasets.arguments import positive_number, seed, whole_number

_CONVENTION_HELP = ("metric convention of the headline: 'authors' (the paper's four Euclidean metrics, always "
                    "reported) or 'codetalker' (adds CodeTalker-style LVE from squared distances pooled over frames, "
                    "and FDD)")


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``bench`` and its nested sub-commands to the ``mmface4d`` parser."""
    parser = subparsers.add_parser(
        "bench",
        help="benchmark: score submissions, run bundled models, leaderboard",
        description="The MMFace4D benchmark. A model sees, per test sequence, its audio, the subject's template and "
                    "the style reference frozen in meta/splits.json, never the target.",
    )
    bench = parser.add_subparsers(dest="bench_command", metavar="BENCH_COMMAND")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    score = bench.add_parser("score", help="validate a submission file and score it against a release",
                             description="Validate PRED (every test id once, frame and vertex counts, finite values, "
                                         "header, sizes) and, when it passes, score it. Writes a JSON report (and a "
                                         "Markdown one beside it). Exit 1 when validation fails.")
    score.add_argument("prediction", metavar="PRED", help="submission .parquet file")
    _release_arguments(score)
    _report_arguments(score)
    score.set_defaults(func=handle_score)

    validate = bench.add_parser("validate", help="validate a submission file against a release without scoring it")
    validate.add_argument("prediction", metavar="PRED", help="submission .parquet file")
    _release_arguments(validate)
    validate.set_defaults(func=handle_validate)

    write = bench.add_parser(
        "write-submission", help="write a submission file from .npy/.npz predictions",
        description="INPUT is a folder of .npy files named by id ({subject_id}/{take_id}.npy, i.e. one folder per "
                    "subject) or one .npz whose keys are the ids; each array is (T, N, 3) float32 in the canonical "
                    "head frame, metres. Nothing is unpickled.")
    write.add_argument("input", metavar="INPUT", help="folder of <subject>/<take>.npy files, or an .npz file")
    write.add_argument("--out", required=True, help="submission .parquet to write")
    write.add_argument("--model", required=True, help="model name for the header")
    write.add_argument("--url", default="", help="paper or code URL for the header")
    write.add_argument("--hardware", default="", help="hardware description for the header (default: this machine)")
    write.add_argument("--inputs", default="audio,template,style_reference",
                       help="comma-separated protocol inputs the model used (default: audio,template,style_reference)")
    write.add_argument("--data", help="release folder: takes its format version and topology, and checks the ids")
    write.add_argument("--split", default="test", help="split the predictions are for (default: test)")
    write.add_argument("--release-format-version", help="release format version (when --data is not given)")
    write.add_argument("--encoding", choices=("codec", "float32le"), default="codec",
                       help="payload encoding (default: codec, lossy within --max-error)")
    write.add_argument("--max-error", type=positive_number(1.0), default=1e-5,
                       help="codec bound per coordinate, metres (default: 1e-5)")
    write.set_defaults(func=handle_write_submission)

    run = bench.add_parser("run", help="run a bundled model on a release's test split, write its submission and score it",
                           description="Builds the protocol inputs of every test sequence, runs the model one sequence "
                                       "at a time, writes OUT/submission.parquet, scores it and writes OUT/report.json "
                                       "and OUT/report.md.")
    run.add_argument("--model", required=True, help="registered model name (see 'mmface4d bench models')")
    run.add_argument("--checkpoint", help="trained model folder (not needed for 'static')")
    run.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                     help="loader option (JSON value, e.g. threads=2); repeatable")
    run.add_argument("--out", default=None, help="output folder (default: bench-<model>)")
    run.add_argument("--encoding", choices=("codec", "float32le"), default="codec", help="submission encoding")
    _release_arguments(run)
    _report_arguments(run, with_out=False)
    run.set_defaults(func=handle_run)

    board = bench.add_parser("leaderboard", help="one table of scored reports, with the paper's Table II as reference",
                             description="Ranks report JSON files by lip_max; the paper's Table II rows are shown as "
                                         "reference lines marked 'paper, own data' (not ranked). Every report is "
                                         "checked: a missing or mistyped field, a negative or non-finite metric, or "
                                         "headline numbers that are not the means of its own per-sequence errors "
                                         "refuse it (exit 2, naming the report and the field). With --data each "
                                         "report's submission is re-scored and the report is refused when the "
                                         "file's SHA-256, the release's identity or any number differs; without "
                                         "it rows are marked 'unverified'. Reports of different releases are "
                                         "ranked in separate tables.")
    board.add_argument("reports", nargs="+", metavar="REPORT", help="report .json files written by score or run")
    board.add_argument("--data", metavar="RELEASE", help="release folder: re-score every report's submission against it")
    board.add_argument("--submissions", metavar="DIR",
                       help="with --data: find each submission by its file name in DIR instead of its recorded path")
    board.add_argument("--out", help="write the Markdown table here (default: print it)")
    board.add_argument("--csv", help="also write the table as CSV (metres)")
    board.add_argument("--no-paper", action="store_true", help="leave out the paper's reference lines")
    board.set_defaults(func=handle_leaderboard)

    models = bench.add_parser("models", help="list the registered model names")
    models.set_defaults(func=handle_models)

    from benchmark.render_cli import register as register_render

    register_render(bench, score)

    try:
        from benchmark.train_cli import register as register_train
    except ImportError as exc:  # the models part is optional: say so in the help instead of failing
        bench.add_parser("train", help=f"(unavailable: {exc})")
    else:
        register_train(bench)
    return parser


def _release_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="release folder (local path)")
    parser.add_argument("--split", default="test", help="split to score (default: test)")


def _report_arguments(parser: argparse.ArgumentParser, with_out: bool = True) -> None:
    parser.add_argument("--convention", choices=("authors", "codetalker"), default="authors", help=_CONVENTION_HELP)
    if with_out:
        parser.add_argument("--out", help="report JSON path (default: PRED with .report.json); Markdown beside it")
    parser.add_argument("--compare", action="append", default=[], metavar="REPORT",
                        help="another report JSON to compare with, paired on shared ids; repeatable")
    parser.add_argument("--bootstrap", type=whole_number(1, 1_000_000), default=2000, help="bootstrap resamples for the 95%% intervals (default: 2000)")
    parser.add_argument("--seed", type=seed, default=0, help="bootstrap seed, 0..2**32-1 (default: 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _conventions(args) -> tuple[str, ...]:
    return ("authors", "codetalker") if args.convention == "codetalker" else ("authors",)


def _score_and_report(prediction: Path, args, json_path: Path) -> int:
    from benchmark.report import check_report, compare_reports, failed_report, load_report, render_markdown, write_report
    from benchmark.scoring import release_context, score_submission
    from mmface4d_datasets.release.reader import Release

    release = Release(args.data)
    result = score_submission(prediction, release, args.split, conventions=_conventions(args),
                              bootstrap_samples=args.bootstrap, seed=args.seed, progress=not args.quiet)
    markdown_path = json_path.with_suffix(".md")
    if result.report is None:
        report = failed_report(result.validation, release=release_context(release, args.split))
        write_report(report, json_path, markdown_path)
        for issue in result.validation.issues:
            print(issue, file=sys.stderr)
        print(f"{prediction}: {len(result.validation.errors)} validation error(s); not scored. Report: {json_path}",
              file=sys.stderr)
        return 1
    report = result.report
    for other in args.compare:
        other_report = load_report(other)
        check_report(other_report, str(other))
        comparison = compare_reports(report, other_report)
        if not comparison["num_shared"]:
            print(f"--compare {other}: no shared sequences with this submission; nothing to compare", file=sys.stderr)
        report["comparisons"].append(comparison)
    write_report(report, json_path, markdown_path)
    for issue in result.validation.issues:
        print(issue, file=sys.stderr)
    print(render_markdown(report))
    print(f"report: {json_path} and {markdown_path}", file=sys.stderr)
    from benchmark.render_cli import render_worst_after_score

    render_worst_after_score(args, prediction, release, report, json_path)
    return 0


def handle_score(args) -> int:
    prediction = Path(args.prediction)
    json_path = Path(args.out) if args.out else prediction.with_name(prediction.stem + ".report.json")
    return _score_and_report(prediction, args, json_path)


def handle_validate(args) -> int:
    from benchmark.scoring import expected_sequences, release_context
    from benchmark.submission import validate_submission
    from mmface4d_datasets.release.reader import Release

    release = Release(args.data)
    context = release_context(release, args.split)
    expected = {k: v["num_frames"] for k, v in expected_sequences(release, args.split).items()}
    report = validate_submission(args.prediction, expected, context["num_vertices"], topology=context["topology"],
                                 release_format_version=context["format_version"])
    for issue in report.issues:
        print(issue)
    print(json.dumps({"ok": report.ok, "checked": report.checked, "errors": len(report.errors)}))
    return 0 if report.ok else 1


def _iter_npy_predictions(root: Path):
    """(id, array) of every <subject>/<take>.npy below ``root``, in id order; never unpickles."""
    import numpy as np

    files = sorted(root.rglob("*.npy"))
    if not files:
        from mmface4d_datasets.errors import MMFace4DError

        raise MMFace4DError(f"{root}: no .npy files (expected <subject_id>/<take_id>.npy)")
    for path in files:
        yield path.relative_to(root).with_suffix("").as_posix(), _load_array(path, lambda: np.load(path, allow_pickle=False))  # noqa: B023 (called at once)


def _load_array(where, load):
    """``load()``, with a damaged or pickled array file as an error naming ``where``."""
    import pickle
    import zipfile

    from benchmark.submission import SubmissionError

    try:
        return load()
    except (ValueError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, KeyError) as exc:
        text = str(exc)
        if "allow_pickle" in text:
            text = "it holds Python objects (object dtype), which would need unpickling; save float32 arrays"
        raise SubmissionError(f"{where}: not a readable numeric .npy array ({text})") from None


def _iter_npz_predictions(path: Path):
    import numpy as np

    archive = _load_array(path, lambda: np.load(path, allow_pickle=False))
    if not hasattr(archive, "files"):
        from benchmark.submission import SubmissionError

        raise SubmissionError(f"{path}: not an .npz archive (a single array; use a folder of .npy files)")
    with archive:
        for key in sorted(archive.files):
            yield key, _load_array(f"{path} [{key}]", lambda: archive[key])  # noqa: B023 (called at once)


def handle_write_submission(args) -> int:
    from benchmark.submission import make_header, validate_submission, write_submission
    from mmface4d_datasets.errors import MMFace4DError

    source = Path(args.input)
    if source.is_dir():
        predictions = _iter_npy_predictions(source)
    elif source.suffix == ".npz" and source.is_file():
        predictions = _iter_npz_predictions(source)
    else:
        raise MMFace4DError(f"{source}: expected a folder of .npy files or an .npz file")
    release = None
    format_version, topology = args.release_format_version, ""
    if args.data:
        from mmface4d_datasets.release.reader import Release

        release = Release(args.data)
        format_version = release.info.format_version
        topology = release.info.topology
    if not format_version:
        raise MMFace4DError("give --data RELEASE or --release-format-version (the header states the release format)")
    inputs = [name.strip() for name in args.inputs.split(",") if name.strip()]
    header = make_header(args.model, release_format_version=format_version, url=args.url, inputs=inputs,
                         hardware=args.hardware, topology=topology, split=args.split)
    path = write_submission(args.out, predictions, header, encoding=args.encoding, max_error=args.max_error)
    print(f"wrote {path}")
    if release is not None:
        from benchmark.scoring import expected_sequences

        expected = {k: v["num_frames"] for k, v in expected_sequences(release, args.split).items()}
        report = validate_submission(path, expected, release.info.num_vertices, topology=topology,
                                     release_format_version=format_version, check_payloads=False)
        for issue in report.issues:
            print(issue, file=sys.stderr)
        return 0 if report.ok else 1
    return 0


def _parse_options(pairs: list[str]) -> dict:
    from mmface4d_datasets.errors import MMFace4DError

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise MMFace4DError(f"--option {pair!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value  # a bare string
    return options


def handle_run(args) -> int:
    from mmface4d_datasets.output_folders import output_folder

    out = Path(args.out or f"bench-{args.model}")
    # New, empty or an earlier `bench run` folder only (mmface4d_datasets.output_folders).
    with output_folder(out, "bench-run", inputs=[args.data]):
        return _run_into(out, args)


def _run_into(out: Path, args) -> int:
    from benchmark.models import load_model
    from benchmark.protocol import write_predictions
    from mmface4d_datasets.release.reader import Release

    model = load_model(args.model, args.checkpoint, **_parse_options(args.option))
    release = Release(args.data)
    submission = write_predictions(model, release, out / "submission.parquet", split=args.split,
                                   encoding=args.encoding, progress=not args.quiet,
                                   header_extra={"checkpoint": str(args.checkpoint or "")})
    print(f"submission: {submission}", file=sys.stderr)
    return _score_and_report(submission, args, out / "report.json")


def handle_leaderboard(args) -> int:
    from benchmark.leaderboard import build_leaderboard, render_csv, render_markdown, verify_report
    from benchmark.report import load_report
    from mmface4d_datasets.errors import MMFace4DError
    from mmface4d_datasets.files import atomic_write_bytes

    release = None
    if args.data:
        from mmface4d_datasets.release.reader import Release

        release = Release(args.data)
    elif args.submissions:
        raise MMFace4DError("--submissions needs --data RELEASE (the submissions are re-scored against it)")
    reports, sources, verified = [], [], []
    for path in args.reports:
        report = load_report(path)
        if not report.get("ok"):
            print(f"{path}: not scored (validation failed); left out", file=sys.stderr)
            continue
        if release is not None:
            verify_report(report, str(path), release, submission_dir=args.submissions)
            print(f"{path}: re-scored from its submission; the numbers agree", file=sys.stderr)
        reports.append(report)
        sources.append(str(path))
        verified.append(release is not None)
    if not reports:
        raise MMFace4DError("no scored report among the given files")
    ranked, references = build_leaderboard(reports, sources=sources, include_paper=not args.no_paper, verified=verified)
    table = render_markdown(ranked, references)
    if args.out:
        atomic_write_bytes(args.out, table.encode("utf-8"))
    else:
        print(table, end="")
    if args.csv:
        atomic_write_bytes(args.csv, render_csv(ranked, references).encode("utf-8"))
    return 0


def handle_models(args) -> int:
    from benchmark.models import available_models

    for name in available_models():
        print(name)
    return 0
