"""The benchmark's part of `mmface4d quickstart` (entry-point group ``mmface4d.quickstart``).

Runs after the core's steps, on the release the core's ``mini`` step left in
``context.state["release_dir"]``: score the ``static`` floor, train the paper's model for a bounded
time (``--train-seconds``, an option the ``train`` step registers itself: the core's command knows
nothing of it), score it, and print the leaderboard. Reports land in ``<out>/benchmark/``. Heavy
imports happen inside the steps.
"""

from __future__ import annotations

from pathlib import Path

from mmface4d_datasets.arguments import positive_number
from mmface4d_datasets.quickstart import QuickstartContext, QuickstartStep

#: The model the quickstart trains: the paper's composite-and-regional model.
TRAINED_MODEL = "mmface4d"
#: Small enough to train meaningfully in about a minute on 2 cores at the mini release's size.
QUICK_TRAIN_OVERRIDES = {"steps": 400, "batch_size": 4, "checkpoint_every": 100, "threads": 2}
METRICS = ("lip_max", "lip_mean", "upper_max", "face_max")
#: Time bound of the training step in seconds (``--train-seconds``).
DEFAULT_TRAIN_SECONDS = 120.0


def _release(context: QuickstartContext):
    """The release of the core's ``mini`` step; when that step did not run (``--only train``), the mini
    release itself (`release.resolve.mini_release`: the cached one, or built now, saying so)."""
    from mmface4d_datasets.release.reader import Release
    from mmface4d_datasets.release.resolve import mini_release

    path = context.state.get("release_dir")
    if path is None and "mini" not in context.summaries:
        path = mini_release(progress=True, announce=lambda message: context.line("release", message))
        context.state["release_dir"] = path
    if path is None:
        return None
    return Release(path)


def _score_model(context: QuickstartContext, name: str, checkpoint: Path | None) -> dict:
    """Run model ``name`` over the test split, score its submission and write its reports."""
    from benchmark.models import load_model
    from benchmark.protocol import write_predictions
    from benchmark.report import write_report
    from benchmark.scoring import score_submission

    release = _release(context)
    out = context.out_dir / "benchmark" / name
    model = load_model(name, checkpoint)
    submission = write_predictions(model, release, out / "submission.parquet", split="test", progress=False)
    result = score_submission(submission, release, "test", progress=False)
    if result.report is None:
        errors = [str(issue) for issue in result.validation.errors]
        context.line("validation", f"{len(errors)} error(s): {errors[:1]}")
        return {"status": "invalid", "errors": errors}
    report_path = out / "report.json"
    write_report(result.report, report_path, report_path.with_suffix(".md"))
    values = result.report["metrics"]["authors"]["values"]
    for key in METRICS:
        low, high = values[key]["ci_scaled"]
        context.line(key, f"{values[key]['value_scaled']:.3f} mm (95% CI {low:.3f} to {high:.3f})")
    context.line("report", report_path)
    context.state.setdefault("reports", []).append(report_path)
    return {"status": "ok", "report": str(report_path), "metrics_m": {key: values[key]["value"] for key in METRICS}}


def step_static(context: QuickstartContext) -> dict:
    if _release(context) is None:
        context.line("skipped", "no release from the mini step")
        return {"status": "skipped", "reason": "no release"}
    return _score_model(context, "static", None)


def add_train_arguments(group) -> None:
    """The ``train`` step's option of ``mmface4d quickstart``."""
    group.add_argument(
        "--train-seconds",
        type=positive_number(),
        default=DEFAULT_TRAIN_SECONDS,
        metavar="S",
        help=f"time bound of the training step in seconds (default: {DEFAULT_TRAIN_SECONDS:g})",
    )


def _train_seconds(context: QuickstartContext) -> float:
    return float(context.options.get("train_seconds", DEFAULT_TRAIN_SECONDS))


def step_train(context: QuickstartContext) -> dict:
    from benchmark.features import build_front_end
    from benchmark.training import TrainingData, load_config, train

    release = _release(context)
    if release is None:
        context.line("skipped", "no release from the mini step")
        return {"status": "skipped", "reason": "no release"}
    config = load_config(None, **QUICK_TRAIN_OVERRIDES)
    front_end = build_front_end(config.front_end)
    context.line("training", f"up to {config.steps} steps or {_train_seconds(context):.0f} s, whichever comes first (progress on stderr)")
    data = TrainingData.from_release(release.path, front_end, progress=True)
    out = context.out_dir / "benchmark" / f"{TRAINED_MODEL}-checkpoint"
    # A rerun of the quickstart resumes this run; once it reached its steps it trains no further.
    summary = train(
        TRAINED_MODEL,
        data,
        out,
        config,
        progress=True,
        max_seconds=_train_seconds(context),
        front_end=front_end,
        extra_meta={"release": str(release.path)},
    )
    spec = front_end.spec()
    context.line(
        "model",
        f"{TRAINED_MODEL} ({len(data.sequences)} train sequences, front end {spec.get('name', spec) if isinstance(spec, dict) else spec})",
    )
    context.line("steps", f"{summary['step']} of {config.steps} in {summary['seconds']:.1f} s (bound {_train_seconds(context):.0f} s)")
    context.line("last losses", ", ".join(f"{k} {v:.4g}" for k, v in summary["losses"].items()))
    context.line("checkpoint", summary["checkpoint"])
    context.state["checkpoint"] = Path(summary["checkpoint"])
    return {"status": "ok", **summary}


def step_score_trained(context: QuickstartContext) -> dict:
    checkpoint = context.state.get("checkpoint")
    if checkpoint is None or _release(context) is None:
        context.line("skipped", "no trained checkpoint")
        return {"status": "skipped", "reason": "no checkpoint"}
    return _score_model(context, TRAINED_MODEL, checkpoint)


def step_leaderboard(context: QuickstartContext) -> dict:
    from benchmark.leaderboard import build_leaderboard, render_markdown
    from benchmark.report import load_report
    from mmface4d_datasets.files import atomic_write_bytes

    paths = context.state.get("reports", [])
    if not paths:
        context.line("skipped", "no scored report")
        return {"status": "skipped", "reason": "no reports"}
    ranked, references = build_leaderboard([load_report(p) for p in paths], sources=[str(p) for p in paths])
    table = render_markdown(ranked, references)
    path = context.out_dir / "benchmark" / "leaderboard.md"
    atomic_write_bytes(path, table.encode("utf-8"))
    for line in table.rstrip().splitlines():
        context.echo(f"  {line}")
    context.line("leaderboard", path)
    return {"status": "ok", "leaderboard": str(path), "order": [entry.model for entry in ranked]}


STEPS = [
    QuickstartStep("static", "Benchmark: the static floor on the mini test split", step_static),
    QuickstartStep("train", "Training the paper's model (bounded time)", step_train, add_arguments=add_train_arguments),
    QuickstartStep("score", "Benchmark: the trained model", step_score_trained),
    QuickstartStep("leaderboard", "Leaderboard", step_leaderboard),
]
