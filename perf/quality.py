"""Quality check of the bundled models on a benchmark-sized synthetic release (prints JSON).

Builds (or reuses) a synthetic release with ``mmface4d synth`` and ``mmface4d build release
--no-raw`` (default 64 identities x 12 sentences), trains each model for a bounded wall time with ``mmface4d bench train``, runs and
scores each with ``mmface4d bench run`` (which writes a submission and a report), runs ``static``,
and compares the paper's model with each other model by the harness's paired bootstrap
(``benchmark.report.compare_reports``: same resamples of the shared test ids for both, 95%
intervals of the difference). Everything goes through the command line a user would type, so
the figures are what a user gets. Rerunning resumes training where it stopped (the training
budget is per invocation; use a fresh ``--work`` folder for a clean run).

    .venv/bin/python perf/quality.py --work /tmp/mmface4d-quality [--minutes 4] [--vertices 1500]

The issue's done-criterion: ``mmface4d`` beats ``static`` on all four metrics and
``mmface4d-no-composite`` on ``upper_max``, each with an interval that excludes zero.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from mmface4d_datasets.release.info import ReleaseInfo

METRICS = ("lip_max", "lip_mean", "upper_max", "face_max")
TRAINED = ("mmface4d", "mmface4d-no-composite", "mmface4d-no-regional", "faceformer")


def command(*args: str) -> list[str]:
    """The ``mmface4d`` command of this interpreter's environment."""
    return [str(Path(sys.executable).with_name("mmface4d")), *args]


def run(args: list[str], log: Path, env: dict | None = None) -> None:
    """Run a command, its output appended to ``log``; raise with the log's tail on failure."""
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(args)}\n")
        handle.flush()
        result = subprocess.run(args, stdout=handle, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"command failed ({result.returncode}): {' '.join(args)}\n{tail}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="folder for the release, runs and reports")
    parser.add_argument("--release", help="use this release instead of building one in WORK/release")
    parser.add_argument("--subjects", type=int, default=64)
    parser.add_argument("--sentences", type=int, default=12)
    parser.add_argument("--vertices", type=int, default=1500)
    parser.add_argument("--minutes", type=float, default=4.0, help="training wall time per model (per invocation)")
    parser.add_argument(
        "--steps",
        type=int,
        help="train every model to this many steps instead (resuming a run below it), so that "
        "all get the same number of steps whatever the machine's load",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for training and inference (default 1: on a shared 2-core machine "
        "two threads run 10-20x slower per step under load)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=list(TRAINED), choices=TRAINED)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument(
        "--keep-trained", action="store_true", help="do not train a model whose run folder already holds a checkpoint (score it as it is)"
    )
    args = parser.parse_args(argv)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "quality.log"
    release = Path(args.release) if args.release else work / "release"
    timings: dict[str, float] = {}
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))  # torch's default thread count in the commands
    if not (release / "meta" / "info.json").is_file():
        started = time.monotonic()
        # Takes, then a release without the maintainers' raw config (the models do not read it).
        takes = work / "takes"
        run(
            command(
                "synth",
                "--subjects",
                str(args.subjects),
                "--sentences",
                str(args.sentences),
                "--vertices",
                str(args.vertices),
                "--seed",
                str(args.seed),
                "--out",
                str(takes),
                "--quiet",
            ),
            log,
            env,
        )
        timings["synthesize_takes_s"] = time.monotonic() - started
        started = time.monotonic()
        run(command("build", "release", str(takes), "--no-raw", "--seed", str(args.seed), "--out", str(release), "--quiet"), log, env)
        timings["build_release_s"] = time.monotonic() - started
    info = ReleaseInfo.of_release(release)
    splits = json.loads((release / "meta" / "splits.json").read_text())

    config = {"seed": args.seed, "threads": args.threads, "steps": 1_000_000, "checkpoint_every": 250, "style_seconds": 2.0}
    config_path = work / "train_config.json"
    config_path.write_text(json.dumps(config, indent=2))
    reports: dict[str, dict] = {}
    training: dict[str, dict] = {}
    for name in ("static", *args.models):
        checkpoint: list[str] = []
        if name != "static":
            from benchmark.training import find_checkpoint, list_checkpoints

            started = time.monotonic()
            if not (args.keep_trained and list_checkpoints(work / f"train-{name}")):
                budget = ["--steps", str(args.steps)] if args.steps else ["--max-minutes", str(args.minutes)]
                run(
                    command(
                        "bench",
                        "train",
                        "--model",
                        name,
                        "--data",
                        str(release),
                        "--out",
                        str(work / f"train-{name}"),
                        "--config",
                        str(config_path),
                        *budget,
                        "--quiet",
                    ),
                    log,
                    env,
                )
            timings[f"train_{name}_s"] = time.monotonic() - started
            meta = json.loads((find_checkpoint(work / f"train-{name}") / "checkpoint.json").read_text())
            training[name] = {"steps": meta["step"], "last_losses": meta["losses"]}
            checkpoint = ["--checkpoint", str(work / f"train-{name}")]
        started = time.monotonic()
        run(
            command(
                "bench",
                "run",
                "--model",
                name,
                *checkpoint,
                "--data",
                str(release),
                "--out",
                str(work / f"run-{name}"),
                "--bootstrap",
                str(args.bootstrap),
                "--quiet",
            ),
            log,
            env,
        )
        timings[f"run_{name}_s"] = time.monotonic() - started
        reports[name] = json.loads((work / f"run-{name}" / "report.json").read_text())

    from benchmark.report import compare_reports

    def split_value(report: dict, metric: str) -> float:
        """The split score of ``metric`` (metres, authors' convention) in a harness report."""
        return report["metrics"]["authors"]["values"][metric]["value"]

    table = {name: {metric: split_value(report, metric) for metric in METRICS} for name, report in reports.items()}
    comparisons = {}
    for other in ("static", *[m for m in args.models if m != "mmface4d"]):
        if "mmface4d" in reports and other in reports:
            result = compare_reports(reports["mmface4d"], reports[other], samples=args.bootstrap, seed=args.seed)
            comparisons[f"mmface4d_vs_{other}"] = {
                metric: {"difference_m": v["difference"], "ci95_m": v["ci"], "verdict": v["verdict"]}
                for metric, v in result["values"].items()
                if metric in METRICS
            } | {"num_shared": result["num_shared"]}

    def better(key: str, metric: str) -> bool:
        entry = comparisons.get(key, {}).get(metric)
        return bool(entry) and entry["ci95_m"][1] < 0

    output = {
        "conditions": {
            "release": str(release),
            "num_vertices": info.num_vertices,
            "topology": info.topology,
            "counts": info.counts.to_json(),
            "train_subjects": len(splits.get("train", [])),
            "test_subjects": len(splits.get("test", [])),
            "training_budget": f"{args.steps} steps" if args.steps else f"{args.minutes} minutes per invocation",
            "threads": args.threads,
            "seed": args.seed,
            "bootstrap_samples": args.bootstrap,
            "front_end": "logmel (default)",
            "cpu_count": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
        },
        "training": training,
        "table_m": table,
        "comparisons": comparisons,
        "done_criterion": {
            "beats_static_on_all_four": all(better("mmface4d_vs_static", m) for m in METRICS),
            "beats_no_composite_on_upper_max": better("mmface4d_vs_mmface4d-no-composite", "upper_max"),
        },
        "timings_s": timings,
        "reports": {name: str(work / f"run-{name}" / "report.json") for name in reports},
    }
    print(json.dumps(output, indent=2, default=str))
    (work / "quality.json").write_text(json.dumps(output, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
