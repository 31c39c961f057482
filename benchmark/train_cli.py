"""``mmface4d bench train``: train a bundled model on a release's train split.

Only the standard library is imported here; the handler imports torch and the training code.
"""

from __future__ import annotations

import argparse
import json

from mmface4d_datasets.arguments import add_release_argument, positive_number, seed, whole_number

TRAINABLE = ("mmface4d", "mmface4d-no-composite", "mmface4d-no-regional", "faceformer")


def register(bench_subparsers) -> argparse.ArgumentParser:
    """Add the ``train`` sub-command to ``mmface4d bench``'s sub-parsers."""
    parser = bench_subparsers.add_parser(
        "train",
        help="train a bundled model on a release's train split (resumable safetensors checkpoints)",
        description="Train a bundled model on the train split of a release. Checkpoints "
        "(OUT/checkpoint-<step>/: safetensors weights and optimizer state, JSON options) are "
        "written every checkpoint_every steps and at the end; running the same command again "
        "resumes from the newest one. Score the result with 'mmface4d bench run --model NAME "
        "--checkpoint OUT --data RELEASE'.",
    )
    parser.add_argument(
        "--model", required=True, choices=TRAINABLE, help="model to train (faceformer checkpoints also serve faceformer-cached)"
    )
    add_release_argument(parser, what="the release whose train split is used")
    parser.add_argument("--out", required=True, help="run folder for checkpoints: new, empty or an earlier run's (created if absent)")
    parser.add_argument("--config", help="training options, a .json or .toml file (see docs/models.md)")
    parser.add_argument("--seed", type=seed, help="random seed (overrides the config)")
    parser.add_argument("--steps", type=whole_number(1), help="total optimisation steps (overrides the config)")
    parser.add_argument(
        "--front-end", dest="front_end", help="audio front end: 'logmel' (default) or 'hubert:<local folder or cached name>'"
    )
    parser.add_argument("--threads", type=whole_number(1), help="torch threads (overrides the config)")
    parser.add_argument(
        "--max-minutes", type=positive_number(), help="stop after this much wall time, writing a checkpoint (resume later to go on)"
    )
    parser.add_argument(
        "--no-resume", action="store_true", help="start from scratch even if OUT holds checkpoints (they are overwritten as it goes)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=handle_train)
    return parser


def handle_train(args: argparse.Namespace) -> int:
    """Run the training described by ``args``; prints a JSON summary. Returns the exit code."""
    from mmface4d_datasets.output_folders import output_folder
    from mmface4d_datasets.release.resolve import resolve_release

    args.data = str(resolve_release(args.data, progress=not args.quiet))
    # New, empty or an earlier `bench train` run folder only (mmface4d_datasets.output_folders).
    with output_folder(args.out, "bench-train", inputs=[args.data]):
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    from benchmark.features import build_front_end
    from benchmark.training import TrainingData, load_config, train

    config = load_config(args.config, seed=args.seed, steps=args.steps, front_end=args.front_end, threads=args.threads)
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    front_end = build_front_end(config.front_end)
    data = TrainingData.from_release(args.data, front_end, progress=not args.quiet)
    summary = train(
        args.model,
        data,
        args.out,
        config,
        resume=not args.no_resume,
        progress=not args.quiet,
        max_seconds=None if args.max_minutes is None else 60.0 * args.max_minutes,
        front_end=front_end,
        extra_meta={"release": str(args.data)},
    )
    print(json.dumps(summary, indent=2))
    return 0
