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

from mmface4d_datasets.arguments import add_release_argument, positive_number, seed, whole_number

_CONVENTION_HELP = (
    "metric convention of the headline: 'authors' (the paper's four Euclidean metrics, always "
    "reported) or 'codetalker' (adds CodeTalker-style LVE from squared distances pooled over frames, "
    "and FDD)"
)


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

    score = bench.add_parser(
        "score",
        help="validate a submission file and score it against a release",
        description="Validate PRED (every test id once, frame and vertex counts, finite values, "
        "header, sizes) and, when it passes, score it. Writes a JSON report (and a "
        "Markdown one beside it), replacing an earlier report of that name. Exit 1 when validation fails: "
        "the problems are listed on stderr and nothing is written.",
    )
    score.add_argument("prediction", metavar="PRED", help="submission .parquet file")
    _release_arguments(score)
    _report_arguments(score)
    score.set_defaults(func=handle_score)

    validate = bench.add_parser("validate", help="validate a submission file against a release without scoring it")
    validate.add_argument("prediction", metavar="PRED", help="submission .parquet file")
    _release_arguments(validate)
    validate.set_defaults(func=handle_validate)

    write = bench.add_parser(
        "write-submission",
        help="write a submission file from .npy/.npz predictions",
        description="INPUT is a folder of .npy files named by id ({subject_id}/{take_id}.npy, i.e. one folder per "
        "subject) or one .npz whose keys are the ids; each array is (T, N, 3) float32 in the canonical "
        "head frame, metres. Nothing is unpickled.",
    )
    write.add_argument("input", metavar="INPUT", help="folder of <subject>/<take>.npy files, or an .npz file")
    write.add_argument("--out", required=True, help="submission .parquet to write")
    write.add_argument("--model", required=True, help="model name for the header")
    write.add_argument("--url", default="", help="paper or code URL for the header")
    write.add_argument("--hardware", default="", help="hardware description for the header (default: this machine)")
    write.add_argument(
        "--inputs",
        default="audio,template,style_reference",
        help="comma-separated protocol inputs the model used (default: audio,template,style_reference)",
    )
    add_release_argument(write, required=False, what="takes its format version and topology, and checks the ids")
    write.add_argument("--split", default="test", help="split the predictions are for (default: test)")
    write.add_argument("--release-format-version", help="release format version (when --data is not given)")
    write.add_argument(
        "--encoding", choices=("codec", "float32le"), default="codec", help="payload encoding (default: codec, lossy within --max-error)"
    )
    write.add_argument("--max-error", type=positive_number(1.0), default=1e-5, help="codec bound per coordinate, metres (default: 1e-5)")
    write.set_defaults(func=handle_write_submission)

    run = bench.add_parser(
        "run",
        help="run a bundled model on a release's test split, write its submission and score it",
        description="Builds the protocol inputs of every test sequence, runs the model one sequence "
        "at a time, writes OUT/submission.parquet, scores it and writes OUT/report.json "
        "and OUT/report.md.",
    )
    run.add_argument("--model", required=True, help="registered model name (see 'mmface4d bench models')")
    run.add_argument("--checkpoint", help="trained model folder (not needed for 'static')")
    run.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="loader option (JSON value, e.g. threads=2); repeatable"
    )
    run.add_argument(
        "--out",
        default=None,
        help="output folder (default: bench-<model>): new, empty or an earlier `bench run`'s, whose submission and "
        "reports are replaced; a folder holding other files, or inside the release, is refused",
    )
    run.add_argument("--encoding", choices=("codec", "float32le"), default="codec", help="submission encoding")
    _release_arguments(run)
    _report_arguments(run, with_out=False)
    run.set_defaults(func=handle_run)

    board = bench.add_parser(
        "leaderboard",
        help="one table of scored reports, with the paper's Table II as reference",
        description="Ranks report JSON files by lip_max; the paper's Table II rows are shown as "
        "reference lines marked 'paper, own data' (not ranked). Every report is "
        "checked: a missing or mistyped field, a negative or non-finite metric, or "
        "headline numbers that are not the means of its own per-sequence errors "
        "refuse it (exit 2, naming the report and the field). With --data each "
        "report's submission is re-scored and the report is refused when the "
        "file's SHA-256, the release's identity or any number differs; without "
        "it rows are marked 'unverified'. Reports of different releases are "
        "ranked in separate tables.",
    )
    board.add_argument("reports", nargs="+", metavar="REPORT", help="report .json files written by score or run")
    add_release_argument(board, required=False, what="re-score every report's submission against it")
    board.add_argument(
        "--submissions", metavar="DIR", help="with --data: find each submission by its file name in DIR instead of its recorded path"
    )
    board.add_argument("--out", help="write the Markdown table here (default: print it)")
    board.add_argument("--csv", help="also write the table as CSV (metres)")
    board.add_argument("--no-paper", action="store_true", help="leave out the paper's reference lines")
    board.set_defaults(func=handle_leaderboard)

    models = bench.add_parser("models", help="list the registered model names")
    models.set_defaults(func=handle_models)

    from benchmark.faceformer_cli import register as register_faceformer
    from benchmark.render_cli import register as register_render

    register_render(bench, score)
    register_faceformer(bench)

    try:
        from benchmark.train_cli import register as register_train
    except ImportError as exc:  # the models part is optional: say so in the help instead of failing
        bench.add_parser("train", help=f"(unavailable: {exc})")
    else:
        register_train(bench)
    return parser


def _release_arguments(parser: argparse.ArgumentParser) -> None:
    add_release_argument(parser)
    parser.add_argument("--split", default="test", help="split to score (default: test)")


def _report_arguments(parser: argparse.ArgumentParser, with_out: bool = True) -> None:
    parser.add_argument("--convention", choices=("authors", "codetalker"), default="authors", help=_CONVENTION_HELP)
    if with_out:
        parser.add_argument(
            "--out",
            help="report JSON path (default: PRED with .report.json); Markdown beside it; an existing report "
            "there is replaced, and nothing is written when PRED is rejected",
        )
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="REPORT",
        help="another report JSON to compare with, paired on shared ids; repeatable",
    )
    parser.add_argument(
        "--bootstrap", type=whole_number(1, 1_000_000), default=2000, help="bootstrap resamples for the 95%% intervals (default: 2000)"
    )
    parser.add_argument("--seed", type=seed, default=0, help="bootstrap seed, 0..2**32-1 (default: 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def release_of(args, option: str = "data") -> str | None:
    """The release folder the user named with ``--data`` (`mmface4d_datasets.release.resolve`), or None."""
    value = getattr(args, option, None)
    if not value:
        return None
    from mmface4d_datasets.release.resolve import resolve_release

    return str(resolve_release(value, progress=not getattr(args, "quiet", False)))


def _conventions(args) -> tuple[str, ...]:
    return ("authors", "codetalker") if args.convention == "codetalker" else ("authors",)


def _scoring_options(args) -> dict:
    return {
        "conventions": _conventions(args),
        "bootstrap_samples": args.bootstrap,
        "seed": args.seed,
        "progress": not args.quiet,
        "compare": args.compare,
    }


def _print_scored(scored, args) -> int:
    """The result of ``bench score`` / ``bench run``: the Markdown report on stdout (or the failure on stderr)."""
    if not scored.ok:
        print(
            f"{scored.prediction}: {scored.num_errors} validation error(s), listed above; not scored, no report written "
            f"(`mmface4d bench validate` lists them again)",
            file=sys.stderr,
        )
        return 1
    from benchmark.render_cli import render_worst_after_score
    from benchmark.report import render_markdown

    print(render_markdown(scored.report))
    print(f"report: {scored.json_path} and {scored.markdown_path}", file=sys.stderr)
    render_worst_after_score(args, scored.prediction, scored.release, scored.report, scored.json_path)
    return 0


def handle_score(args) -> int:
    from benchmark.runs import score_and_report

    prediction = Path(args.prediction)
    json_path = Path(args.out) if args.out else prediction.with_name(prediction.stem + ".report.json")
    return _print_scored(score_and_report(prediction, release_of(args), args.split, json_path, **_scoring_options(args)), args)


def handle_validate(args) -> int:
    from benchmark.runs import check_submission

    report = check_submission(args.prediction, release_of(args), args.split)
    for issue in report.issues:
        print(issue)
    print(json.dumps({"ok": report.ok, "checked": report.checked, "errors": len(report.errors)}))
    return 0 if report.ok else 1


def handle_write_submission(args) -> int:
    from benchmark.runs import write_submission_from_files

    inputs = [name.strip() for name in args.inputs.split(",") if name.strip()]
    path, report = write_submission_from_files(
        args.input,
        args.out,
        model=args.model,
        release_dir=release_of(args),
        release_format_version=args.release_format_version,
        url=args.url,
        inputs=inputs,
        hardware=args.hardware,
        split=args.split,
        encoding=args.encoding,
        max_error=args.max_error,
    )
    print(f"wrote {path}")
    if report is not None:
        for issue in report.issues:
            print(issue, file=sys.stderr)
        return 0 if report.ok else 1
    return 0


def handle_run(args) -> int:
    from benchmark.runs import parse_model_options, run_model

    out = Path(args.out or f"bench-{args.model}")
    scoring = _scoring_options(args)
    scored = run_model(
        args.model,
        release_of(args),
        out,
        split=args.split,
        checkpoint=args.checkpoint,
        options=parse_model_options(args.option),
        encoding=args.encoding,
        progress=scoring.pop("progress"),
        **scoring,
    )
    return _print_scored(scored, args)


def handle_leaderboard(args) -> int:
    from benchmark.leaderboard import render_csv, render_markdown
    from benchmark.runs import leaderboard_from_reports
    from mmface4d_datasets.files import atomic_write_bytes

    ranked, references = leaderboard_from_reports(
        args.reports, release_dir=release_of(args), submission_dir=args.submissions, include_paper=not args.no_paper
    )
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
